//! Kubernetes conditions (pure): set a condition, keeping `lastTransitionTime` unless its
//! status changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// A time as shown in condition messages and Events: RFC 3339, whole seconds, UTC.
pub fn display_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`.
    Unknown,
}

impl Status {
    /// The status as written in the condition.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// A condition as the operator computes it, before timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Condition type.
    pub type_: &'static str,
    /// Status.
    pub status: Status,
    /// `CamelCase` reason (a constant of `ferry_crds::status::reason`).
    pub reason: &'static str,
    /// What it means, in words.
    pub message: String,
}

impl Desired {
    /// A condition.
    pub fn new(
        type_: &'static str,
        status: Status,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Desired {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// Turns computed conditions into API conditions, keeping each previous
/// `lastTransitionTime` when the status did not change.
pub fn merge(
    previous: &[Condition],
    desired: Vec<Desired>,
    generation: i64,
    now: Timestamp,
) -> Vec<Condition> {
    desired
        .into_iter()
        .map(|d| {
            let last_transition_time = previous
                .iter()
                .find(|p| p.type_ == d.type_ && p.status == d.status.as_str())
                .map(|p| p.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: d.type_.to_string(),
                status: d.status.as_str().to_string(),
                reason: d.reason.to_string(),
                message: d.message,
                observed_generation: Some(generation),
                last_transition_time,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_to_the_second() {
        let t: Timestamp = "2026-11-22T10:00:05.153347754Z".parse().unwrap();
        assert_eq!(display_time(t), "2026-11-22T10:00:05Z");
    }

    #[test]
    fn transition_time_changes_only_with_the_status() {
        let t0: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-11-22T10:05:00Z".parse().unwrap();
        let first = merge(
            &[],
            vec![Desired::new(
                "Ready",
                Status::False,
                "TasksNotReady",
                "0 of 1 tasks are ready",
            )],
            1,
            t0,
        );
        assert_eq!(first[0].last_transition_time, Time(t0));
        let same = merge(
            &first,
            vec![Desired::new(
                "Ready",
                Status::False,
                "TasksNotReady",
                "still starting",
            )],
            2,
            t1,
        );
        assert_eq!(same[0].last_transition_time, Time(t0));
        assert_eq!(same[0].message, "still starting");
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(
            &same,
            vec![Desired::new(
                "Ready",
                Status::True,
                "AllTasksReady",
                "1 of 1 tasks are ready",
            )],
            2,
            t1,
        );
        assert_eq!(flipped[0].last_transition_time, Time(t1));
        assert_eq!(flipped[0].status, "True");
    }
}

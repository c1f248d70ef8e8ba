//! The replication slot's part of a `postgresCdc` connector's status (pure):
//! `status.replicationSlot` and the `ReplicationSlotAdvancing` condition.
//!
//! PostgreSQL keeps every WAL segment from a logical slot's `restart_lsn` on, whether a task
//! reads the slot or not. A task that fails (a value it cannot decode, a refused password, a
//! column type without mapping) therefore keeps filling the primary's disk until it runs
//! again or the slot is dropped. The tasks measure the WAL their slot retains (every few
//! seconds while they run, once more when they stop on an error, in the termination
//! message); the status quotes the latest figure and says whether anyone reads the slot.

use std::collections::BTreeMap;

use ferry_crds::contract::ReplicationSlotReport;
use ferry_crds::status::{condition_type, reason, task_phase, ReplicationSlotStatus, TaskStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::build::{RunState, SlotIdentity, TaskInputs};
use crate::conditions::{display_time, Desired, Status};
use crate::status::{describe_failure, Reading, TaskReading};

/// What the slot's status is built from.
pub struct SlotInputs<'a> {
    /// The connector's inputs (its slot, run state and task count).
    pub inputs: &'a TaskInputs,
    /// Each desired task's status, phases decided.
    pub tasks: &'a [TaskStatus],
    /// Whether a task stopped with a configuration error for the current generation.
    pub config_error: bool,
    /// The running tasks' progress readings.
    pub readings: &'a [TaskReading],
    /// What failed tasks measured before they stopped, by index.
    pub failure_reports: &'a BTreeMap<i32, ReplicationSlotReport>,
    /// The slot's status of the previous reconcile.
    pub previous: Option<&'a ReplicationSlotStatus>,
}

/// `status.replicationSlot` and the `ReplicationSlotAdvancing` condition; `None` for
/// connectors that read no slot.
pub fn slot_status(s: &SlotInputs<'_>) -> Option<(ReplicationSlotStatus, Desired)> {
    let slot = s.inputs.replication_slot.as_ref()?;
    let running: Vec<&ReplicationSlotReport> = s
        .readings
        .iter()
        .filter_map(|r| match &r.reading {
            Reading::Report(p) => p.replication_slot.as_ref(),
            Reading::Unavailable(_) => None,
        })
        .collect();
    let fresh: Vec<&ReplicationSlotReport> = if running.is_empty() {
        s.failure_reports.values().collect()
    } else {
        running
    };
    let status = merge_reports(&slot.name, &fresh, s.previous);
    let condition = condition(s, slot, &status);
    Some((status, condition))
}

/// The newest measurement among `fresh` and `previous`; the measurement error of the fresh
/// reports (the previous one's when there is none).
fn merge_reports(
    name: &str,
    fresh: &[&ReplicationSlotReport],
    previous: Option<&ReplicationSlotStatus>,
) -> ReplicationSlotStatus {
    let previous = previous.filter(|p| p.name == name);
    let mut status = ReplicationSlotStatus {
        name: name.to_string(),
        retained_wal_bytes: previous.and_then(|p| p.retained_wal_bytes),
        measured_at: previous.and_then(|p| p.measured_at.clone()),
        measurement_error: previous.and_then(|p| p.measurement_error.clone()),
    };
    for report in fresh {
        let at = report
            .measured_at
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok());
        let newer = match (at, status.measured_at.as_ref()) {
            (Some(at), Some(Time(known))) => at > *known,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if let (true, Some(at), Some(bytes)) = (newer, at, report.retained_wal_bytes) {
            status.retained_wal_bytes = Some(i64::try_from(bytes).unwrap_or(i64::MAX));
            status.measured_at = Some(Time(at));
        }
    }
    if !fresh.is_empty() {
        status.measurement_error = fresh.iter().find_map(|r| r.measurement_error.clone());
    }
    status
}

fn condition(s: &SlotInputs<'_>, slot: &SlotIdentity, status: &ReplicationSlotStatus) -> Desired {
    let held = retained_text(status);
    let keeps = format!(
        "PostgreSQL keeps all WAL from the position of replication slot {:?} on {}{held}",
        slot.name, slot.server
    );
    let grows = "It grows until a task reads the slot again, or the slot is dropped \
                 (delete the connector with spec.offsets.deleteOnRemoval: true).";
    let failing = s
        .tasks
        .iter()
        .find(|t| t.phase == task_phase::FAILED || t.phase == task_phase::BACKING_OFF);
    if let Some(task) = failing.filter(|_| s.inputs.state != RunState::Stopped) {
        let what = if s.config_error {
            "failed with a configuration error and is not restarted until the spec changes"
        } else if task.phase == task_phase::BACKING_OFF {
            "failed and waits for its restart"
        } else {
            "failed"
        };
        return Desired::new(
            condition_type::REPLICATION_SLOT_ADVANCING,
            Status::False,
            reason::TASK_FAILING,
            format!(
                "task {} {what} ({}). Nobody reads the slot: {keeps}. {grows}",
                task.index,
                describe_failure(task)
            ),
        );
    }
    match s.inputs.state {
        RunState::Stopped | RunState::Paused => {
            let state = if s.inputs.state == RunState::Stopped {
                "stopped"
            } else {
                "paused"
            };
            return Desired::new(
                condition_type::REPLICATION_SLOT_ADVANCING,
                Status::False,
                reason::NOT_RUNNING,
                format!("the connector is {state}: {keeps}. {grows}"),
            );
        }
        RunState::Running => {}
    }
    let desired = s.inputs.desired_tasks();
    let running = s
        .tasks
        .iter()
        .filter(|t| t.phase == task_phase::RUNNING || t.phase == task_phase::STALLED)
        .count();
    if desired > 0 && running == usize::try_from(desired).unwrap_or(usize::MAX) {
        Desired::new(
            condition_type::REPLICATION_SLOT_ADVANCING,
            Status::True,
            reason::SLOT_READ,
            format!(
                "the task reads replication slot {:?} on {} and confirms what Kafka stored{held}",
                slot.name, slot.server
            ),
        )
    } else {
        Desired::new(
            condition_type::REPLICATION_SLOT_ADVANCING,
            Status::Unknown,
            reason::TASK_STARTING,
            format!(
                "the task is starting; until it reads the slot, {}",
                lowercase_first(&keeps)
            ),
        )
    }
}

/// `: 1.5 GiB (1610612736 bytes) measured at …`, or why it is not known.
fn retained_text(status: &ReplicationSlotStatus) -> String {
    let measured = match (status.retained_wal_bytes, status.measured_at.as_ref()) {
        (Some(bytes), Some(at)) => format!(
            "; it retains {} of WAL (measured at {})",
            bytes_text(bytes),
            display_time(at.0)
        ),
        _ => "; how much WAL it retains has not been measured".to_string(),
    };
    match &status.measurement_error {
        Some(e) => format!("{measured}; measuring it again failed: {e}"),
        None => measured,
    }
}

/// Bytes in binary units, with the exact figure.
pub fn bytes_text(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {} ({bytes} bytes)", UNITS[unit])
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{connector, inputs};
    use ferry_crds::contract::TaskProgress;

    const CDC: &str = r#"
metadata: {name: orders, namespace: shop, uid: u1, generation: 1}
spec:
  kafka: {bootstrapServers: "k:9092"}
  source:
    postgresCdc: {host: db.shop, database: app, topicPrefix: app}
"#;

    fn task(phase: &str, failure: Option<&str>) -> TaskStatus {
        serde_yaml::from_str(&format!(
            "{{index: 0, pod: orders-task-0, phase: {phase}, restarts: 2{}}}",
            failure.map_or(String::new(), |m| format!(
                ", lastFailure: {{reason: Error, exitCode: 1, message: {m:?}}}"
            ))
        ))
        .unwrap()
    }

    fn report(bytes: Option<u64>, at: Option<&str>, error: Option<&str>) -> ReplicationSlotReport {
        ReplicationSlotReport {
            slot: "ferry_shop_orders".into(),
            retained_wal_bytes: bytes,
            measured_at: at.map(str::to_string),
            measurement_error: error.map(str::to_string),
        }
    }

    fn reading(r: ReplicationSlotReport) -> TaskReading {
        TaskReading {
            index: 0,
            reading: Reading::Report(TaskProgress {
                state: "Running".into(),
                replication_slot: Some(r),
                ..TaskProgress::default()
            }),
        }
    }

    #[test]
    fn a_failing_task_says_the_slot_retains_wal_and_how_much() {
        let inputs = inputs(&connector(CDC));
        let slot = inputs.replication_slot.clone().unwrap();
        assert_eq!(slot.server, "db.shop:5432/app");
        let tasks = [task("BackingOff", Some("PostgreSQL: value out of range"))];
        let reports = BTreeMap::from([(
            0,
            report(
                Some(3 * 1024 * 1024 * 1024),
                Some("2026-12-07T03:00:00Z"),
                None,
            ),
        )]);
        let (status, c) = slot_status(&SlotInputs {
            inputs: &inputs,
            tasks: &tasks,
            config_error: false,
            readings: &[],
            failure_reports: &reports,
            previous: None,
        })
        .unwrap();
        assert_eq!(status.name, slot.name);
        assert_eq!(status.retained_wal_bytes, Some(3 * 1024 * 1024 * 1024));
        assert_eq!((c.status, c.reason), (Status::False, reason::TASK_FAILING));
        assert!(c.message.contains("value out of range"), "{}", c.message);
        assert!(
            c.message.contains(
                "it retains 3.0 GiB (3221225472 bytes) of WAL (measured at 2026-12-07T03:00:00Z)"
            ),
            "{}",
            c.message
        );
        assert!(c.message.contains("waits for its restart"), "{}", c.message);
    }

    #[test]
    fn a_refused_password_keeps_the_last_figure_and_says_why_it_is_not_newer() {
        let inputs = inputs(&connector(CDC));
        let previous = ReplicationSlotStatus {
            name: inputs.replication_slot.clone().unwrap().name,
            retained_wal_bytes: Some(4096),
            measured_at: Some(Time("2026-12-07T02:00:00Z".parse().unwrap())),
            measurement_error: None,
        };
        let tasks = [task("BackingOff", Some("password authentication failed"))];
        let reports = BTreeMap::from([(
            0,
            report(None, None, Some("PostgreSQL refused user \"app\"")),
        )]);
        let (status, c) = slot_status(&SlotInputs {
            inputs: &inputs,
            tasks: &tasks,
            config_error: false,
            readings: &[],
            failure_reports: &reports,
            previous: Some(&previous),
        })
        .unwrap();
        assert_eq!(status.retained_wal_bytes, Some(4096));
        assert_eq!(status.measured_at, previous.measured_at);
        assert_eq!(
            status.measurement_error.as_deref(),
            Some("PostgreSQL refused user \"app\"")
        );
        assert!(c.message.contains("4.0 KiB (4096 bytes)"), "{}", c.message);
        assert!(
            c.message
                .contains("measuring it again failed: PostgreSQL refused user"),
            "{}",
            c.message
        );
    }

    #[test]
    fn a_running_task_reads_the_slot_and_clears_the_error() {
        let inputs = inputs(&connector(CDC));
        let previous = ReplicationSlotStatus {
            name: inputs.replication_slot.clone().unwrap().name,
            retained_wal_bytes: Some(1 << 30),
            measured_at: Some(Time("2026-12-07T02:00:00Z".parse().unwrap())),
            measurement_error: Some("refused".into()),
        };
        let tasks = [task("Running", None)];
        let readings = [reading(report(
            Some(512),
            Some("2026-12-07T02:05:00Z"),
            None,
        ))];
        let (status, c) = slot_status(&SlotInputs {
            inputs: &inputs,
            tasks: &tasks,
            config_error: false,
            readings: &readings,
            failure_reports: &BTreeMap::new(),
            previous: Some(&previous),
        })
        .unwrap();
        assert_eq!(status.retained_wal_bytes, Some(512));
        assert_eq!(status.measurement_error, None);
        assert_eq!((c.status, c.reason), (Status::True, reason::SLOT_READ));
        assert!(c.message.contains("512 bytes"), "{}", c.message);
    }

    #[test]
    fn an_older_report_does_not_replace_a_newer_figure() {
        let previous = ReplicationSlotStatus {
            name: "s".into(),
            retained_wal_bytes: Some(10),
            measured_at: Some(Time("2026-12-07T02:05:00Z".parse().unwrap())),
            measurement_error: None,
        };
        let old = report(Some(1), Some("2026-12-07T02:00:00Z"), None);
        let merged = merge_reports("s", &[&old], Some(&previous));
        assert_eq!(merged.retained_wal_bytes, Some(10));
        // A renamed slot starts over.
        let merged = merge_reports("t", &[&old], Some(&previous));
        assert_eq!(merged.retained_wal_bytes, Some(1));
    }

    #[test]
    fn paused_stopped_and_starting_connectors() {
        let mut inputs = inputs(&connector(CDC));
        let none = BTreeMap::new();
        let s = |inputs: &TaskInputs, tasks: &[TaskStatus]| {
            slot_status(&SlotInputs {
                inputs,
                tasks,
                config_error: false,
                readings: &[],
                failure_reports: &none,
                previous: None,
            })
            .unwrap()
            .1
        };
        let c = s(&inputs, &[task("Pending", None)]);
        assert_eq!(
            (c.status, c.reason),
            (Status::Unknown, reason::TASK_STARTING)
        );
        assert!(c.message.contains("has not been measured"), "{}", c.message);
        inputs.state = RunState::Paused;
        let c = s(&inputs, &[task("Paused", None)]);
        assert_eq!((c.status, c.reason), (Status::False, reason::NOT_RUNNING));
        assert!(
            c.message.starts_with("the connector is paused"),
            "{}",
            c.message
        );
        inputs.state = RunState::Stopped;
        let c = s(&inputs, &[]);
        assert_eq!((c.status, c.reason), (Status::False, reason::NOT_RUNNING));
    }

    #[test]
    fn connectors_without_a_slot_have_no_slot_status() {
        let inputs = inputs(&crate::fixtures::source(""));
        assert!(slot_status(&SlotInputs {
            inputs: &inputs,
            tasks: &[],
            config_error: false,
            readings: &[],
            failure_reports: &BTreeMap::new(),
            previous: None,
        })
        .is_none());
    }

    #[test]
    fn bytes_read_as_a_person_would() {
        assert_eq!(bytes_text(100), "100 bytes");
        assert_eq!(bytes_text(1536), "1.5 KiB (1536 bytes)");
        assert_eq!(bytes_text(5 << 40), "5.0 TiB (5497558138880 bytes)");
    }
}

//! Events about connectors: one per decision a user wants to see (task started, failed,
//! restart scheduled, configuration error, paused/resumed/stopped, scaled) and one Warning per
//! failed reconcile, whose reason is the error's category.

use ferry_crds::status::ConnectorPhase;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};

use crate::build::RunState;
use crate::plan::Decision;

/// An Event to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    /// Warning or not.
    pub warning: bool,
    /// `CamelCase` reason.
    pub reason: &'static str,
    /// The action taken.
    pub action: &'static str,
    /// What happened, in words.
    pub note: String,
    /// The task pod the Event is about, if any (`related` in the Event). Events about
    /// different pods are never merged into one series.
    pub related: Option<ObjectReference>,
}

fn pod_ref(namespace: &str, name: &str, uid: Option<&str>) -> Option<ObjectReference> {
    Some(ObjectReference {
        api_version: Some("v1".to_string()),
        kind: Some("Pod".to_string()),
        namespace: Some(namespace.to_string()),
        name: Some(name.to_string()),
        uid: uid.filter(|u| !u.is_empty()).map(str::to_string),
        ..ObjectReference::default()
    })
}

/// Events for the decisions of one reconcile (pure).
pub fn for_decisions(namespace: &str, decisions: &[Decision]) -> Vec<Note> {
    decisions
        .iter()
        .map(|d| match d {
            // Restarts of one task share a pod name, so their Events form one series: the
            // note does not carry the restart count (the status does).
            Decision::TaskStarted {
                index,
                pod,
                restarts: _,
            } => Note {
                warning: false,
                reason: "TaskStarted",
                action: "CreatePod",
                note: format!("starting task {index}"),
                related: pod_ref(namespace, pod, None),
            },
            Decision::TaskFailed {
                index,
                pod,
                failure,
            } => Note {
                warning: true,
                reason: "TaskFailed",
                action: "ObserveFailure",
                note: format!(
                    "task {index} failed: {}{}{}",
                    failure.reason,
                    failure
                        .exit_code
                        .map(|c| format!(" (exit code {c})"))
                        .unwrap_or_default(),
                    if failure.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", failure.message)
                    }
                ),
                related: pod_ref(namespace, &pod.0, Some(&pod.1)),
            },
            Decision::RestartScheduled {
                index,
                pod,
                at,
                delay,
            } => Note {
                warning: false,
                reason: "RestartScheduled",
                action: "ScheduleRestart",
                note: format!(
                    "task {index} restarts at {} (in {:.1} s)",
                    crate::conditions::display_time(*at),
                    delay.as_secs_f64()
                ),
                related: pod_ref(namespace, &pod.0, Some(&pod.1)),
            },
            Decision::ConfigurationError {
                index,
                pod,
                message,
            } => Note {
                warning: true,
                reason: "ConfigurationError",
                action: "HoldTask",
                note: format!(
                    "task {index} exited with a configuration error and is not restarted until \
                     the spec changes: {message}"
                ),
                related: pod_ref(namespace, &pod.0, Some(&pod.1)),
            },
            Decision::NodeLost { index, pod } => Note {
                warning: true,
                reason: "TaskNodeLost",
                action: "DeletePod",
                note: format!(
                    "{}'s node stopped answering and its pod was evicted; the pod is deleted \
                     without waiting for the node, so that a replacement can start elsewhere \
                     (a process still running there is fenced by the replacement)",
                    index.map_or_else(|| "a removed task".to_owned(), |i| format!("task {i}"))
                ),
                related: pod_ref(namespace, &pod.0, Some(&pod.1)),
            },
            Decision::Replacing { index, pod } => Note {
                warning: false,
                reason: "ReplacingTask",
                action: "DeletePod",
                note: format!("replacing task {index} for the new configuration"),
                related: pod_ref(namespace, &pod.0, Some(&pod.1)),
            },
        })
        .collect()
}

/// Events for a change of run state or task count (pure). `previous` is the phase last
/// written to the status (`None` for a new connector).
pub fn for_transitions(
    previous: Option<ConnectorPhase>,
    previous_desired: Option<i32>,
    state: RunState,
    desired: i32,
) -> Vec<Note> {
    let mut notes = Vec::new();
    let was = |p: ConnectorPhase| previous == Some(p);
    match state {
        // After an offsets reset the tasks come back in the state they had.
        _ if was(ConnectorPhase::Resetting) => {}
        RunState::Paused if previous.is_some() && !was(ConnectorPhase::Paused) => {
            notes.push(Note {
                warning: false,
                reason: "Paused",
                action: "Pause",
                note: "pausing: task pods keep running but move no records".into(),
                related: None,
            })
        }
        RunState::Stopped if previous.is_some() && !was(ConnectorPhase::Stopped) => {
            notes.push(Note {
                warning: false,
                reason: "Stopped",
                action: "Stop",
                note: "stopping: deleting every task pod; configuration and offsets are kept"
                    .into(),
                related: None,
            })
        }
        RunState::Running if was(ConnectorPhase::Paused) || was(ConnectorPhase::Stopped) => notes
            .push(Note {
                warning: false,
                reason: "Resumed",
                action: "Resume",
                note: format!("resuming {desired} tasks"),
                related: None,
            }),
        _ => {}
    }
    if state != RunState::Stopped && !was(ConnectorPhase::Stopped) {
        if let Some(from) = previous_desired.filter(|&d| d != desired && d > 0) {
            notes.push(Note {
                warning: false,
                reason: "Scaled",
                action: "Scale",
                note: format!("scaling from {from} to {desired} tasks"),
                related: None,
            });
        }
    }
    notes
}

/// Publishes Events; a failure to publish is logged, never fatal.
pub async fn publish(recorder: &Recorder, regarding: &ObjectReference, notes: &[Note]) {
    for n in notes {
        let event = Event {
            type_: if n.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: n.reason.to_string(),
            note: Some(n.note.clone()),
            action: n.action.to_string(),
            secondary: n.related.clone(),
        };
        if let Err(e) = recorder.publish(&event, regarding).await {
            tracing::warn!(reason = n.reason, error = %e, "could not publish an Event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_changes_are_reported_once() {
        let paused = for_transitions(Some(ConnectorPhase::Running), Some(2), RunState::Paused, 2);
        assert_eq!(paused.len(), 1);
        assert_eq!(paused[0].reason, "Paused");
        assert!(
            for_transitions(Some(ConnectorPhase::Paused), Some(2), RunState::Paused, 2).is_empty()
        );
        let resumed = for_transitions(Some(ConnectorPhase::Stopped), Some(0), RunState::Running, 2);
        assert_eq!(
            resumed.iter().map(|n| n.reason).collect::<Vec<_>>(),
            vec!["Resumed"]
        );
        let stopped = for_transitions(Some(ConnectorPhase::Failed), Some(2), RunState::Stopped, 0);
        assert_eq!(stopped[0].reason, "Stopped");
        assert!(for_transitions(None, None, RunState::Running, 1).is_empty());
        assert!(
            for_transitions(
                Some(ConnectorPhase::Resetting),
                Some(2),
                RunState::Paused,
                2
            )
            .is_empty(),
            "the end of an offsets reset is not a pause"
        );
    }

    #[test]
    fn scaling_is_reported_with_both_counts() {
        let notes = for_transitions(Some(ConnectorPhase::Running), Some(1), RunState::Running, 3);
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].note, "scaling from 1 to 3 tasks");
    }
}

//! The connector's status (pure): task items, totals, phase and conditions.
//!
//! The status does not guess: the lag (`status.lag`, the LAG column) is empty while the
//! operator cannot read the connector's offsets, and the `OffsetsReadable` condition says why.

use ferry_crds::contract::TaskProgress;
use ferry_crds::status::{
    condition_type, reason, task_phase, ConnectorPhase, KafkaConnectorStatus, OffsetsStatus,
    TasksStatus,
};
use ferry_crds::KafkaConnector;
use k8s_openapi::jiff::Timestamp;

use crate::build::{RunState, TaskInputs};
use crate::conditions::{self, Desired, Status};
use crate::names::task_selector;
use crate::plan::Plan;
use crate::slot_status::{slot_status, SlotInputs};

/// What a running task said about its progress.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading {
    /// The task answered.
    Report(TaskProgress),
    /// The task could not be asked (the error, in words).
    Unavailable(String),
}

/// One task's progress reading.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskReading {
    /// Task index.
    pub index: i32,
    /// The reading.
    pub reading: Reading,
}

/// Builds the status.
pub fn build(
    inputs: &TaskInputs,
    plan: &Plan,
    readings: &[TaskReading],
    previous: Option<&KafkaConnectorStatus>,
    now: Timestamp,
) -> KafkaConnectorStatus {
    let desired = inputs.desired_tasks();
    let mut tasks = plan.tasks.clone();
    let mut stalled = Vec::new();
    let mut unknown = Vec::new();
    let mut lag_total: Option<i64> = None;
    for reading in readings {
        let Some(task) = tasks.iter_mut().find(|t| t.index == reading.index) else {
            continue;
        };
        match &reading.reading {
            Reading::Report(progress) => {
                task.lag = progress.lag.map(saturating_i64);
                task.records_out = Some(saturating_i64(progress.records_out));
                if let Some(lag) = task.lag {
                    lag_total = Some(lag_total.unwrap_or(0).saturating_add(lag));
                }
                if progress.stalled {
                    task.phase = task_phase::STALLED.to_string();
                    stalled.push((task.index, progress.lag));
                }
            }
            Reading::Unavailable(error) => unknown.push(format!("task {}: {error}", task.index)),
        }
    }
    let ready = plan
        .tasks
        .iter()
        .filter(|t| t.phase == task_phase::RUNNING || t.phase == task_phase::PAUSED)
        .count() as i32;
    let restarts: i32 = tasks.iter().map(|t| t.restarts).sum();
    let backing_off: Vec<_> = tasks
        .iter()
        .filter(|t| t.phase == task_phase::BACKING_OFF)
        .collect();
    let failed_tasks: Vec<_> = tasks
        .iter()
        .filter(|t| t.phase == task_phase::FAILED || t.phase == task_phase::BACKING_OFF)
        .collect();

    let phase = match inputs.state {
        RunState::Stopped => ConnectorPhase::Stopped,
        _ if plan.config_error.is_some() => ConnectorPhase::Failed,
        RunState::Paused => ConnectorPhase::Paused,
        RunState::Running if ready == desired && plan.stale == 0 => ConnectorPhase::Running,
        RunState::Running if !failed_tasks.is_empty() => ConnectorPhase::Failed,
        RunState::Running => ConnectorPhase::Pending,
    };

    let config_error_message = plan.config_error.as_ref().map(|(index, message)| {
        format!(
            "task {index} exited with a configuration error (exit code 78): {message}. \
             It is not restarted until the connector's spec changes."
        )
    });
    let leftover = plan.existing + (plan.terminating + plan.orphans) as i32;

    let ready_condition = match (&config_error_message, inputs.state) {
        (Some(message), _) if inputs.state != RunState::Stopped => Desired::new(
            condition_type::READY,
            Status::False,
            reason::CONFIGURATION_ERROR,
            message.clone(),
        ),
        (_, RunState::Stopped) if leftover == 0 => Desired::new(
            condition_type::READY,
            Status::True,
            reason::STOPPED,
            "the connector is stopped: no task runs; its configuration and offsets are kept",
        ),
        (_, RunState::Stopped) => Desired::new(
            condition_type::READY,
            Status::False,
            reason::TASKS_NOT_READY,
            format!("stopping: {leftover} task pods still terminating"),
        ),
        (_, RunState::Paused) if ready == desired => Desired::new(
            condition_type::READY,
            Status::True,
            reason::PAUSED,
            format!("the connector is paused: its {desired} tasks run but move no records"),
        ),
        _ if ready == desired => Desired::new(
            condition_type::READY,
            Status::True,
            reason::ALL_TASKS_READY,
            format!("{ready} of {desired} tasks are ready"),
        ),
        _ => Desired::new(
            condition_type::READY,
            Status::False,
            reason::TASKS_NOT_READY,
            format!(
                "{ready} of {desired} tasks are ready{}",
                describe_not_ready(&tasks, plan)
            ),
        ),
    };

    let degraded = if let Some(message) = &config_error_message {
        Desired::new(
            condition_type::DEGRADED,
            Status::True,
            reason::CONFIGURATION_ERROR,
            message.clone(),
        )
    } else if let Some(task) = backing_off.first() {
        let at = task
            .next_restart_at
            .as_ref()
            .map(|t| conditions::display_time(t.0))
            .unwrap_or_default();
        Desired::new(
            condition_type::DEGRADED,
            Status::True,
            reason::BACKING_OFF,
            format!(
                "task {} failed ({}); restart {} is due at {at}",
                task.index,
                describe_failure(task),
                task.restarts
            ),
        )
    } else if let Some(task) = failed_tasks.first() {
        Desired::new(
            condition_type::DEGRADED,
            Status::True,
            reason::TASK_FAILED,
            format!("task {} failed ({})", task.index, describe_failure(task)),
        )
    } else {
        Desired::new(
            condition_type::DEGRADED,
            Status::False,
            reason::TASKS_HEALTHY,
            "no task has failed",
        )
    };

    let previous_desired = previous.and_then(|p| p.tasks.as_ref()).map(|t| t.desired);
    let missing = tasks
        .iter()
        .filter(|t| t.phase == task_phase::PENDING)
        .count();
    let progressing = if plan.stale > 0 && inputs.state != RunState::Paused {
        Desired::new(
            condition_type::PROGRESSING,
            Status::True,
            reason::ROLLING_UPDATE,
            format!(
                "replacing task pods one at a time for the new configuration: {} of {desired} \
                 still to replace",
                plan.stale
            ),
        )
    } else if inputs.state == RunState::Stopped && leftover > 0 {
        Desired::new(
            condition_type::PROGRESSING,
            Status::True,
            reason::SCALING,
            format!("stopping: deleting {leftover} task pods"),
        )
    } else if plan.terminating > 0
        || plan.orphans > 0
        || previous_desired.is_some_and(|d| d != desired)
    {
        Desired::new(
            condition_type::PROGRESSING,
            Status::True,
            reason::SCALING,
            format!("scaling to {desired} tasks"),
        )
    } else if missing > 0 {
        Desired::new(
            condition_type::PROGRESSING,
            Status::True,
            reason::STARTING,
            format!("starting {missing} of {desired} tasks"),
        )
    } else {
        Desired::new(
            condition_type::PROGRESSING,
            Status::False,
            reason::UP_TO_DATE,
            format!("the tasks match generation {}", inputs.generation),
        )
    };

    let stalled_condition = if let Some((index, lag)) = stalled.first() {
        let waiting = lag.map_or("work".to_string(), |l| format!("{l} records"));
        Desired::new(
            condition_type::STALLED,
            Status::True,
            reason::NO_PROGRESS,
            format!(
                "task {index} has {waiting} waiting and committed nothing for the stall window \
                 (spec.progress.stallAfterSeconds)"
            ),
        )
    } else if !unknown.is_empty() {
        Desired::new(
            condition_type::STALLED,
            Status::Unknown,
            reason::PROGRESS_UNKNOWN,
            format!("progress could not be read: {}", unknown.join("; ")),
        )
    } else {
        Desired::new(
            condition_type::STALLED,
            Status::False,
            reason::MAKING_PROGRESS,
            "every running task is committing or has nothing to do",
        )
    };

    let slot = slot_status(&SlotInputs {
        inputs,
        tasks: &tasks,
        config_error: plan.config_error.is_some(),
        readings,
        failure_reports: &plan.slot_reports,
        previous: previous.and_then(|p| p.replication_slot.as_ref()),
    });
    let (replication_slot, slot_condition) = slot.unzip();
    let offsets_readable = offsets_condition(previous.and_then(|p| p.offsets.as_ref()));
    let lag_known = offsets_readable
        .as_ref()
        .is_none_or(|c| c.status != Status::False);
    let previous_conditions = previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    let tasks_status = TasksStatus {
        desired,
        ready,
        items: tasks,
    };
    KafkaConnectorStatus {
        observed_generation: Some(inputs.generation),
        state: Some(phase),
        conditions: conditions::merge(
            previous_conditions,
            [ready_condition, progressing, degraded, stalled_condition]
                .into_iter()
                .chain(offsets_readable)
                .chain(slot_condition)
                .collect(),
            inputs.generation,
            now,
        ),
        tasks_ready: Some(tasks_status.summary()),
        tasks: Some(tasks_status),
        replicas: Some(plan.existing),
        selector: Some(task_selector(&inputs.name)),
        restarts: Some(restarts),
        lag: lag_total.filter(|_| lag_known),
        // Written by their own controllers; this apply leaves them alone.
        offset_reset: None,
        offsets: None,
        autoscaler: None,
        replication_slot,
    }
}

/// The `OffsetsReadable` condition from the last read of the offsets (`status.offsets`);
/// none before the first read.
pub fn offsets_condition(offsets: Option<&OffsetsStatus>) -> Option<Desired> {
    let offsets = offsets?;
    Some(match &offsets.error {
        Some(error) => Desired::new(
            condition_type::OFFSETS_READABLE,
            Status::False,
            reason::OFFSETS_UNREADABLE,
            format!(
                "the operator cannot read this connector's offsets in Kafka, so its lag is not \
                 shown, the autoscaler cannot scale from lag and an offsets reset cannot be \
                 applied: {error}"
            ),
        ),
        None => Desired::new(
            condition_type::OFFSETS_READABLE,
            Status::True,
            reason::OFFSETS_READ,
            "the operator reads this connector's offsets in Kafka (status.offsets)",
        ),
    })
}

/// The status of a connector whose spec cannot be run: `state: Failed`, `Ready=False` and
/// `Degraded=True` with reason `ConfigurationError` quoting `message`; the other conditions
/// and fields as they were.
pub fn invalid(connector: &KafkaConnector, message: &str, now: Timestamp) -> KafkaConnectorStatus {
    let generation = connector.metadata.generation.unwrap_or(0);
    let previous = connector.status.clone().unwrap_or_default();
    let desired = vec![
        Desired::new(
            condition_type::READY,
            Status::False,
            reason::CONFIGURATION_ERROR,
            message,
        ),
        Desired::new(
            condition_type::DEGRADED,
            Status::True,
            reason::CONFIGURATION_ERROR,
            message,
        ),
    ];
    let mut conditions = conditions::merge(&previous.conditions, desired, generation, now);
    conditions.extend(
        previous
            .conditions
            .iter()
            .filter(|c| c.type_ != condition_type::READY && c.type_ != condition_type::DEGRADED)
            .cloned(),
    );
    KafkaConnectorStatus {
        observed_generation: Some(generation),
        state: Some(ConnectorPhase::Failed),
        conditions,
        // Written under their own field managers; this apply leaves them alone.
        offset_reset: None,
        offsets: None,
        autoscaler: None,
        ..previous
    }
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A task's last failure in words: reason, exit code and message.
pub(crate) fn describe_failure(task: &ferry_crds::status::TaskStatus) -> String {
    match &task.last_failure {
        Some(f) => {
            let code = f
                .exit_code
                .map(|c| format!("exit code {c}"))
                .unwrap_or_else(|| "no exit code".to_string());
            if f.message.is_empty() {
                format!("{}, {code}", f.reason)
            } else {
                format!("{}, {code}: {}", f.reason, f.message)
            }
        }
        None => "no failure recorded".to_string(),
    }
}

fn describe_not_ready(tasks: &[ferry_crds::status::TaskStatus], plan: &Plan) -> String {
    let waiting: Vec<String> = tasks
        .iter()
        .filter(|t| t.phase != task_phase::RUNNING && t.phase != task_phase::PAUSED)
        .take(3)
        .map(|t| match plan.waiting.get(&t.index) {
            Some(why) => format!("task {} is {} ({why})", t.index, t.phase),
            None => format!("task {} is {}", t.index, t.phase),
        })
        .collect();
    if waiting.is_empty() {
        String::new()
    } else {
        format!("; {}", waiting.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, failed, observed_pod, ready};
    use crate::observe::TaskPod;
    use crate::plan::{plan, Observed};

    const T0: &str = "2026-11-22T10:00:00Z";

    fn status_of(
        c: &ferry_crds::KafkaConnector,
        pods: &dyn Fn(&TaskInputs) -> Vec<TaskPod>,
        readings: &[TaskReading],
        previous: Option<&KafkaConnectorStatus>,
    ) -> KafkaConnectorStatus {
        let inputs = fixtures::inputs(c);
        let hash = crate::build::config_hash(&inputs);
        let pods = pods(&inputs);
        let items = previous
            .and_then(|p| p.tasks.as_ref())
            .map(|t| t.items.clone())
            .unwrap_or_default();
        let now: Timestamp = "2026-11-22T10:00:05Z".parse().unwrap();
        let p = plan(&Observed {
            inputs: &inputs,
            hash: &hash,
            pods: &pods,
            previous: &items,
            stalled: &std::collections::BTreeMap::new(),
            now,
        });
        build(&inputs, &p, readings, previous, now)
    }

    fn condition<'a>(
        s: &'a KafkaConnectorStatus,
        t: &str,
    ) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn all_tasks_ready_is_ready_and_sums_progress() {
        let c = fixtures::sink("  tasks: 2");
        let readings = vec![
            TaskReading {
                index: 0,
                reading: Reading::Report(TaskProgress {
                    state: "Running".into(),
                    records_out: 10,
                    lag: Some(5),
                    ..TaskProgress::default()
                }),
            },
            TaskReading {
                index: 1,
                reading: Reading::Report(TaskProgress {
                    state: "Running".into(),
                    records_out: 7,
                    lag: Some(1),
                    ..TaskProgress::default()
                }),
            },
        ];
        let s = status_of(
            &c,
            &|i| {
                (0..2)
                    .map(|n| observed_pod(i, n, 0, "u", &ready(T0)))
                    .collect()
            },
            &readings,
            None,
        );
        assert_eq!(s.state, Some(ConnectorPhase::Running));
        assert_eq!(s.tasks_ready.as_deref(), Some("2/2"));
        assert_eq!(s.replicas, Some(2));
        assert_eq!(s.selector.as_deref(), Some("ferry.rs/connector=orders"));
        assert_eq!(s.lag, Some(6));
        assert_eq!(s.restarts, Some(0));
        assert_eq!(s.observed_generation, Some(1));
        let ready_c = condition(&s, "Ready");
        assert_eq!(
            (ready_c.status.as_str(), ready_c.reason.as_str()),
            ("True", "AllTasksReady")
        );
        assert_eq!(ready_c.message, "2 of 2 tasks are ready");
        assert_eq!(condition(&s, "Degraded").status, "False");
        assert_eq!(condition(&s, "Progressing").reason, "UpToDate");
        assert_eq!(condition(&s, "Stalled").status, "False");
        assert_eq!(s.tasks.as_ref().unwrap().items[1].records_out, Some(7));
    }

    #[test]
    fn a_stalled_task_and_an_unreadable_one_are_shown() {
        let c = fixtures::sink("  tasks: 2");
        let readings = vec![
            TaskReading {
                index: 0,
                reading: Reading::Report(TaskProgress {
                    stalled: true,
                    lag: Some(42),
                    ..TaskProgress::default()
                }),
            },
            TaskReading {
                index: 1,
                reading: Reading::Unavailable("connection refused".into()),
            },
        ];
        let s = status_of(
            &c,
            &|i| {
                (0..2)
                    .map(|n| observed_pod(i, n, 0, "u", &ready(T0)))
                    .collect()
            },
            &readings,
            None,
        );
        let stalled = condition(&s, "Stalled");
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "NoProgress")
        );
        assert!(stalled.message.contains("task 0 has 42 records waiting"));
        assert_eq!(s.tasks.as_ref().unwrap().items[0].phase, "Stalled");
        let only_unknown = status_of(
            &c,
            &|i| {
                (0..2)
                    .map(|n| observed_pod(i, n, 0, "u", &ready(T0)))
                    .collect()
            },
            &readings[1..],
            None,
        );
        let c = condition(&only_unknown, "Stalled");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("Unknown", "ProgressUnknown")
        );
        assert!(c.message.contains("task 1: connection refused"));
    }

    #[test]
    fn a_configuration_error_quotes_the_termination_message() {
        let c = fixtures::sink("");
        let s = status_of(
            &c,
            &|i| {
                vec![observed_pod(
                    i,
                    0,
                    0,
                    "u",
                    &failed(78, "spec.sink.file.path: not absolute", T0, T0),
                )]
            },
            &[],
            None,
        );
        assert_eq!(s.state, Some(ConnectorPhase::Failed));
        for t in ["Ready", "Degraded"] {
            let cond = condition(&s, t);
            assert_eq!(cond.reason, "ConfigurationError");
            assert!(
                cond.message.contains("spec.sink.file.path: not absolute"),
                "{}",
                cond.message
            );
        }
        assert_eq!(condition(&s, "Ready").status, "False");
        assert_eq!(condition(&s, "Degraded").status, "True");
    }

    #[test]
    fn backing_off_is_degraded_with_the_next_restart() {
        let c = fixtures::sink("");
        let s = status_of(
            &c,
            &|i| {
                vec![observed_pod(
                    i,
                    0,
                    0,
                    "u",
                    &failed(1, "broker unreachable", T0, "2026-11-22T10:00:04Z"),
                )]
            },
            &[],
            None,
        );
        assert_eq!(s.state, Some(ConnectorPhase::Failed));
        let d = condition(&s, "Degraded");
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "BackingOff")
        );
        assert!(d.message.contains("task 0 failed (Error, exit code 1: broker unreachable); restart 1 is due at 2026-11-22T10:00:05Z"), "{}", d.message);
        assert_eq!(s.restarts, Some(1));
    }

    #[test]
    fn paused_and_stopped_are_ready_once_reached() {
        let paused = fixtures::sink("  state: Paused");
        let s = status_of(
            &paused,
            &|i| vec![observed_pod(i, 0, 0, "u", &ready(T0))],
            &[],
            None,
        );
        assert_eq!(s.state, Some(ConnectorPhase::Paused));
        assert_eq!(condition(&s, "Ready").reason, "Paused");
        assert_eq!(s.tasks.as_ref().unwrap().items[0].phase, "Paused");
        let stopped = fixtures::sink("  state: Stopped");
        let s = status_of(
            &stopped,
            &|i| vec![observed_pod(i, 0, 0, "u", &ready(T0))],
            &[],
            None,
        );
        assert_eq!(condition(&s, "Ready").status, "False");
        assert_eq!(condition(&s, "Progressing").status, "True");
        let s = status_of(&stopped, &|_| vec![], &[], Some(&s));
        assert_eq!(s.state, Some(ConnectorPhase::Stopped));
        assert_eq!(
            (
                condition(&s, "Ready").status.as_str(),
                condition(&s, "Ready").reason.as_str()
            ),
            ("True", "Stopped")
        );
        assert_eq!(s.tasks_ready.as_deref(), Some("0/0"));
        assert_eq!(s.replicas, Some(0));
    }

    #[test]
    fn a_waiting_task_says_why_in_the_ready_condition() {
        let c = fixtures::sink("");
        let waiting = "phase: Pending\ncontainerStatuses:\n- {name: runner, image: x, imageID: '', ready: false, restartCount: 0, state: {waiting: {reason: CreateContainerConfigError, message: 'secret \"kafka-user\" not found'}}}";
        let s = status_of(
            &c,
            &|i| vec![observed_pod(i, 0, 0, "u", waiting)],
            &[],
            None,
        );
        let ready = condition(&s, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(
            ready.message,
            "0 of 1 tasks are ready; task 0 is Pending (CreateContainerConfigError: secret \"kafka-user\" not found)"
        );
    }

    #[test]
    fn an_invalid_spec_keeps_the_other_conditions() {
        let mut c = fixtures::sink("");
        c.status = Some(
            serde_yaml::from_str(
                "state: Running\nconditions:\n\
                 - {type: Stalled, status: 'False', reason: MakingProgress, message: m, lastTransitionTime: '2026-11-22T10:00:00Z'}\n\
                 offsets: {partitions: 1}",
            )
            .unwrap(),
        );
        let now: Timestamp = "2026-11-22T10:00:05Z".parse().unwrap();
        let s = invalid(&c, "spec.tasks: must be at least 0", now);
        assert_eq!(s.state, Some(ConnectorPhase::Failed));
        assert_eq!(s.offsets, None, "written by its own field manager");
        let types: Vec<&str> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "Degraded", "Stalled"]);
        assert_eq!(condition(&s, "Ready").reason, "ConfigurationError");
        assert_eq!(
            condition(&s, "Degraded").message,
            "spec.tasks: must be at least 0"
        );
        assert_eq!(offsets_condition(None), None);
    }
}

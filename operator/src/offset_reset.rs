//! The offsets reset flow (pure): given `spec.offsets.reset`, `status.offsetReset` and the
//! observed task pods, what to do now.
//!
//! A reset whose `id` differs from `status.offsetReset.appliedId` is pending. While it is
//! pending the operator starts no task: it deletes the task pods and waits until they are
//! gone ([`ResetStep::StopTasks`]), then applies the reset ([`ResetStep::Apply`]), records the
//! id, the time and the result in `status.offsetReset`, and reconciles as usual, which starts
//! the tasks again. A target that does not fit the connector is recorded as `Failed` without
//! stopping anything ([`ResetStep::Reject`]).
//!
//! Everything is derived from the resource and its pods, so an operator restarted mid-reset
//! carries on where the previous one stopped: applying a reset twice before any task ran
//! gives the same offsets. A reset present when the connector is created is applied before
//! its first task starts: that is how a new connector starts from a time, the earliest or the
//! latest offsets, or explicit offsets.

use std::time::Duration;

use ferry_crds::connector::{OffsetReset, OffsetTarget};
use ferry_crds::plugins::SourcePlugin;
use ferry_crds::status::{
    condition_type, reason, ConnectorPhase, KafkaConnectorStatus, OffsetResetOutcome,
    OffsetResetStatus,
};
use ferry_crds::KafkaConnector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::conditions::{self, Desired, Status};
use crate::observe::TaskPod;

/// How often the operator reads a connector's offsets from Kafka for `status.offsets` and
/// its metrics.
pub const OFFSETS_READ_INTERVAL: Duration = Duration::from_secs(60);

/// What the reset flow does in this reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResetStep {
    /// No reset is pending: reconcile as usual.
    Idle,
    /// The reset does not fit the connector: record it as failed, offsets untouched.
    Reject {
        /// The reset's id.
        id: String,
        /// Why, naming the field.
        message: String,
    },
    /// Stop the tasks first: delete `delete` (pod name and uid) and wait until no task pod
    /// is left (`remaining`, including pods already terminating).
    StopTasks {
        /// Pods to delete now.
        delete: Vec<(String, String)>,
        /// Task pods that still exist.
        remaining: usize,
    },
    /// Every task pod is gone: apply the reset.
    Apply,
}

/// The reset in the spec that was not applied yet, if any.
pub fn pending(connector: &KafkaConnector) -> Option<&OffsetReset> {
    let reset = connector.spec.offsets.as_ref()?.reset.as_ref()?;
    let applied = connector
        .status
        .as_ref()
        .and_then(|s| s.offset_reset.as_ref())
        .map(|r| r.applied_id.as_str());
    (applied != Some(reset.id.as_str())).then_some(reset)
}

/// Decides the reset step.
pub fn decide(connector: &KafkaConnector, pods: &[TaskPod]) -> ResetStep {
    let Some(reset) = pending(connector) else {
        return ResetStep::Idle;
    };
    if let Err(message) = check_target(connector, reset) {
        return ResetStep::Reject {
            id: reset.id.clone(),
            message,
        };
    }
    if pods.is_empty() {
        return ResetStep::Apply;
    }
    ResetStep::StopTasks {
        delete: pods
            .iter()
            .filter(|p| !p.terminating)
            .map(|p| (p.name.clone(), p.uid.clone()))
            .collect(),
        remaining: pods.len(),
    }
}

/// Checks that the reset's target fits the connector, as far as the spec tells: the kind of
/// target for a source or a sink, the topics of explicit sink offsets, and the source
/// partitions of explicit source offsets. Whether a topic partition exists is checked
/// against Kafka when the reset is applied.
pub fn check_target(connector: &KafkaConnector, reset: &OffsetReset) -> Result<(), String> {
    let spec = &connector.spec;
    match (&reset.to, &spec.source, &spec.sink) {
        (OffsetTarget::Earliest, _, _) => Ok(()),
        (OffsetTarget::Latest | OffsetTarget::Timestamp(_), Some(_), _) => Err(
            "spec.offsets.reset.to: a source connector resets only to Earliest (forget its \
             offsets) or to explicit sourceOffsets"
                .to_string(),
        ),
        (OffsetTarget::Latest | OffsetTarget::Timestamp(_), None, _) => Ok(()),
        (OffsetTarget::Sink(_), None, None) | (OffsetTarget::Source(_), None, None) => {
            Err("spec: the connector has neither a source nor a sink".to_string())
        }
        (OffsetTarget::Sink(_), Some(_), _) => Err(
            "spec.offsets.reset.sinkOffsets: is for sink connectors; a source connector resets \
             with sourceOffsets"
                .to_string(),
        ),
        (OffsetTarget::Source(_), None, Some(_)) => Err(
            "spec.offsets.reset.sourceOffsets: is for source connectors; a sink connector \
             resets with to or sinkOffsets"
                .to_string(),
        ),
        (OffsetTarget::Sink(offsets), None, Some(sink)) => {
            let regex = match &sink.topics_regex {
                Some(pattern) => {
                    Some(regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                        format!(
                            "spec.sink.topicsRegex: {pattern:?} is not a regular expression: {e}"
                        )
                    })?)
                }
                None => None,
            };
            for (i, offset) in offsets.iter().enumerate() {
                let read = sink.topics.contains(&offset.topic)
                    || regex.as_ref().is_some_and(|r| r.is_match(&offset.topic));
                if !read {
                    return Err(format!(
                        "spec.offsets.reset.sinkOffsets[{i}].topic: the connector does not read \
                         topic {:?} (spec.sink.{})",
                        offset.topic,
                        if regex.is_some() {
                            "topicsRegex"
                        } else {
                            "topics"
                        }
                    ));
                }
                if let Some(j) = offsets[..i]
                    .iter()
                    .position(|o| o.topic == offset.topic && o.partition == offset.partition)
                {
                    return Err(format!(
                        "spec.offsets.reset.sinkOffsets[{i}]: partition {} of topic {:?} is \
                         already listed at sinkOffsets[{j}]",
                        offset.partition, offset.topic
                    ));
                }
            }
            Ok(())
        }
        (OffsetTarget::Source(offsets), Some(source), _) => {
            for (i, offset) in offsets.iter().enumerate() {
                check_source_offset(&source.plugin, &offset.partition, &offset.offset)
                    .map_err(|e| format!("spec.offsets.reset.sourceOffsets[{i}]{e}"))?;
            }
            Ok(())
        }
    }
}

fn keys(map: &std::collections::BTreeMap<String, String>) -> Vec<&str> {
    map.keys().map(String::as_str).collect()
}

/// Checks one explicit source offset against the plugin's source partitions; the error
/// starts with the field below `sourceOffsets[i]`.
fn check_source_offset(
    plugin: &SourcePlugin,
    partition: &std::collections::BTreeMap<String, String>,
    offset: &std::collections::BTreeMap<String, String>,
) -> Result<(), String> {
    let number = |field: &str, key: &str| -> Result<u64, String> {
        let value = match field {
            "partition" => partition.get(key),
            _ => offset.get(key),
        };
        value
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!(".{field}.{key}: must be a whole number"))
    };
    match plugin {
        SourcePlugin::File(file) => {
            if keys(partition) != ["path"] || partition.get("path") != Some(&file.path) {
                return Err(format!(
                    ".partition: the file source has one source partition, {{path: {}}}",
                    file.path
                ));
            }
            let offset_keys = keys(offset);
            if offset_keys != ["position"] && offset_keys != ["device", "inode", "position"] {
                return Err(
                    ".offset: the file source's offset is {position: <byte position>}, \
                            optionally with the {device, inode} of the file it is in"
                        .into(),
                );
            }
            if offset_keys.len() == 3 {
                number("offset", "device")?;
                number("offset", "inode")?;
            }
            number("offset", "position").map(|_| ())
        }
        SourcePlugin::Datagen(_) => {
            if keys(partition) != ["task", "tasks"] {
                return Err(".partition: a datagen source partition is {task: <index>, \
                            tasks: <task count>}"
                    .into());
            }
            let task = number("partition", "task")?;
            let tasks = number("partition", "tasks")?;
            if task >= tasks {
                return Err(format!(
                    ".partition.task: {task} is not below tasks ({tasks})"
                ));
            }
            if keys(offset) != ["next"] {
                return Err(
                    ".offset: a datagen offset is {next: <the next record number of the task>}"
                        .into(),
                );
            }
            number("offset", "next").map(|_| ())
        }
        // The source system holds a position of its own (a replication slot, ...) that an
        // offset written here cannot move: only Earliest is offered.
        other => Err(format!(
            ": explicit sourceOffsets are supported for the file and datagen sources; the {} \
             source resets only to Earliest",
            other.name()
        )),
    }
}

/// The reset target in words, e.g. `Earliest`, `2026-11-22T08:00:00Z` or
/// `3 explicit partition offsets`.
pub fn describe_target(target: &OffsetTarget) -> String {
    match target {
        OffsetTarget::Earliest => "Earliest".to_string(),
        OffsetTarget::Latest => "Latest".to_string(),
        OffsetTarget::Timestamp(at) => conditions::display_time(*at),
        OffsetTarget::Sink(offsets) => plural(offsets.len(), "explicit partition offset"),
        OffsetTarget::Source(offsets) => plural(offsets.len(), "explicit source offset"),
    }
}

/// `1 thing` / `2 things`.
pub fn plural(count: usize, what: &str) -> String {
    if count == 1 {
        format!("1 {what}")
    } else {
        format!("{count} {what}s")
    }
}

/// The status while a reset is pending and the tasks stop: `state: Resetting`,
/// `Ready=False` and `Progressing=True` with reason `ResettingOffsets`; the other fields as
/// they were.
pub fn resetting_status(
    connector: &KafkaConnector,
    reset: &OffsetReset,
    waiting_for: &str,
    now: Timestamp,
) -> KafkaConnectorStatus {
    let generation = connector.metadata.generation.unwrap_or(0);
    let previous = connector.status.clone().unwrap_or_default();
    let target = describe_target(&reset.to);
    let desired = vec![
        Desired::new(
            condition_type::READY,
            Status::False,
            reason::RESETTING_OFFSETS,
            format!(
                "the tasks are stopped while offsets reset {:?} is applied",
                reset.id
            ),
        ),
        Desired::new(
            condition_type::PROGRESSING,
            Status::True,
            reason::RESETTING_OFFSETS,
            format!(
                "resetting offsets to {target} (spec.offsets.reset.id {:?}): {waiting_for}",
                reset.id
            ),
        ),
    ];
    let mut conditions = conditions::merge(&previous.conditions, desired, generation, now);
    conditions.extend(
        previous
            .conditions
            .iter()
            .filter(|c| c.type_ != condition_type::READY && c.type_ != condition_type::PROGRESSING)
            .cloned(),
    );
    let mut tasks = previous.tasks.clone();
    if let Some(tasks) = tasks.as_mut() {
        tasks.ready = 0;
    }
    KafkaConnectorStatus {
        observed_generation: Some(generation),
        state: Some(ConnectorPhase::Resetting),
        conditions,
        tasks_ready: tasks.as_ref().map(|t| t.summary()),
        tasks,
        // Written under their own field managers; this apply leaves them alone.
        offset_reset: None,
        offsets: None,
        autoscaler: None,
        ..previous
    }
}

/// What to record in `status.offsetReset` once a reset was applied or refused.
pub fn recorded(
    id: &str,
    outcome: OffsetResetOutcome,
    result: String,
    now: Timestamp,
) -> OffsetResetStatus {
    OffsetResetStatus {
        applied_id: id.to_string(),
        at: Some(Time(now)),
        result: Some(result),
        outcome: Some(outcome),
    }
}

/// Whether the connector's offsets should be read again for `status.offsets`.
pub fn offsets_read_due(connector: &KafkaConnector, now: Timestamp) -> bool {
    let at = connector
        .status
        .as_ref()
        .and_then(|s| s.offsets.as_ref())
        .and_then(|o| o.at.as_ref())
        .map(|t| t.0);
    match at {
        None => true,
        Some(at) => now.duration_since(at).as_secs() >= OFFSETS_READ_INTERVAL.as_secs() as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn with_status(mut c: KafkaConnector, status: &str) -> KafkaConnector {
        c.status = Some(serde_yaml::from_str(status).unwrap());
        c
    }

    fn pod(name: &str, terminating: bool) -> TaskPod {
        let mut p = TaskPod::from_pod(&Default::default());
        p.name = name.to_string();
        p.uid = format!("uid-{name}");
        p.terminating = terminating;
        p
    }

    #[test]
    fn a_new_id_stops_the_tasks_then_applies_once() {
        let c = fixtures::sink("  offsets: {reset: {id: replay-1, to: Earliest}}");
        let pods = vec![pod("orders-task-0", false), pod("orders-task-1", true)];
        assert_eq!(
            decide(&c, &pods),
            ResetStep::StopTasks {
                delete: vec![("orders-task-0".into(), "uid-orders-task-0".into())],
                remaining: 2
            }
        );
        assert_eq!(decide(&c, &[]), ResetStep::Apply);
        let done = with_status(
            c.clone(),
            "offsetReset: {appliedId: replay-1, outcome: Applied}",
        );
        assert_eq!(decide(&done, &pods), ResetStep::Idle);
        let older = with_status(c, "offsetReset: {appliedId: replay-0}");
        assert_eq!(decide(&older, &[]), ResetStep::Apply);
        let none = fixtures::sink("  offsets: {deleteOnRemoval: true}");
        assert_eq!(decide(&none, &pods), ResetStep::Idle);
        assert_eq!(decide(&fixtures::sink(""), &pods), ResetStep::Idle);
    }

    #[test]
    fn a_failed_reset_is_not_retried() {
        let c = with_status(
            fixtures::sink(
                "  offsets: {reset: {id: r, sinkOffsets: [{topic: other, partition: 0, offset: 1}]}}",
            ),
            "offsetReset: {appliedId: r, outcome: Failed}",
        );
        assert_eq!(decide(&c, &[]), ResetStep::Idle);
    }

    #[test]
    fn targets_that_do_not_fit_the_connector_are_rejected_without_stopping_tasks() {
        let pods = vec![pod("orders-task-0", false)];
        let reject = |c: &KafkaConnector| match decide(c, &pods) {
            ResetStep::Reject { message, .. } => message,
            other => panic!("expected a rejection, got {other:?}"),
        };
        let c = fixtures::sink(
            "  offsets: {reset: {id: r, sinkOffsets: [{topic: payments, partition: 0, offset: 1}]}}",
        );
        assert_eq!(
            reject(&c),
            "spec.offsets.reset.sinkOffsets[0].topic: the connector does not read topic \
             \"payments\" (spec.sink.topics)"
        );
        let c = fixtures::sink(
            "  offsets: {reset: {id: r, sinkOffsets: [{topic: orders, partition: 0, offset: 1}, {topic: orders, partition: 0, offset: 2}]}}",
        );
        assert!(reject(&c).contains("already listed at sinkOffsets[0]"));
        let c = fixtures::source("  offsets: {reset: {id: r, to: Latest}}");
        assert!(reject(&c).starts_with("spec.offsets.reset.to: a source connector"));
        let c = fixtures::source(
            "  offsets: {reset: {id: r, sinkOffsets: [{topic: t, partition: 0, offset: 1}]}}",
        );
        assert!(reject(&c).starts_with("spec.offsets.reset.sinkOffsets: is for sink"));
        let c = fixtures::sink(
            "  offsets: {reset: {id: r, sourceOffsets: [{partition: {a: b}, offset: {c: d}}]}}",
        );
        assert!(reject(&c).starts_with("spec.offsets.reset.sourceOffsets: is for source"));
        let c = fixtures::source(
            "  offsets: {reset: {id: r, sourceOffsets: [{partition: {task: '2', tasks: '2'}, offset: {next: '5'}}]}}",
        );
        assert_eq!(
            reject(&c),
            "spec.offsets.reset.sourceOffsets[0].partition.task: 2 is not below tasks (2)"
        );
        let c = fixtures::source(
            "  offsets: {reset: {id: r, sourceOffsets: [{partition: {task: '0', tasks: '2'}, offset: {next: 'x'}}]}}",
        );
        assert_eq!(
            reject(&c),
            "spec.offsets.reset.sourceOffsets[0].offset.next: must be a whole number"
        );
    }

    #[test]
    fn targets_that_fit_are_applied() {
        let regex = fixtures::connector(
            "metadata: {name: o, namespace: n}\nspec:\n  kafka: {bootstrapServers: 'k:9092'}\n  sink: {topicsRegex: 'orders-.*', discard: {}}\n  offsets: {reset: {id: r, sinkOffsets: [{topic: orders-eu, partition: 3, offset: 10}]}}",
        );
        assert_eq!(decide(&regex, &[]), ResetStep::Apply);
        let mut not_whole = regex.clone();
        if let Some(OffsetTarget::Sink(offsets)) = not_whole
            .spec
            .offsets
            .as_mut()
            .and_then(|o| o.reset.as_mut())
            .map(|r| &mut r.to)
        {
            offsets[0].topic = "old-orders-eu".into();
        }
        assert!(matches!(decide(&not_whole, &[]), ResetStep::Reject { .. }));
        let file = fixtures::connector(
            "metadata: {name: lines, namespace: n}\nspec:\n  kafka: {bootstrapServers: 'k:9092'}\n  source: {file: {path: /data/in.txt, topic: lines}}\n  offsets: {reset: {id: r, sourceOffsets: [{partition: {path: /data/in.txt}, offset: {position: '120'}}]}}",
        );
        assert_eq!(decide(&file, &[]), ResetStep::Apply);
        let in_one_file = fixtures::connector(
            "metadata: {name: lines, namespace: n}\nspec:\n  kafka: {bootstrapServers: 'k:9092'}\n  source: {file: {path: /data/in.txt, topic: lines}}\n  offsets: {reset: {id: r, sourceOffsets: [{partition: {path: /data/in.txt}, offset: {position: '120', device: '64768', inode: '1234'}}]}}",
        );
        assert_eq!(decide(&in_one_file, &[]), ResetStep::Apply);
        let half_identity = fixtures::connector(
            "metadata: {name: lines, namespace: n}\nspec:\n  kafka: {bootstrapServers: 'k:9092'}\n  source: {file: {path: /data/in.txt, topic: lines}}\n  offsets: {reset: {id: r, sourceOffsets: [{partition: {path: /data/in.txt}, offset: {position: '120', inode: '1234'}}]}}",
        );
        assert!(matches!(
            decide(&half_identity, &[]),
            ResetStep::Reject { .. }
        ));
        let mut other_file = file.clone();
        if let Some(OffsetTarget::Source(offsets)) = other_file
            .spec
            .offsets
            .as_mut()
            .and_then(|o| o.reset.as_mut())
            .map(|r| &mut r.to)
        {
            offsets[0]
                .partition
                .insert("path".into(), "/data/other.txt".into());
        }
        assert_eq!(
            decide(&other_file, &[]),
            ResetStep::Reject {
                id: "r".into(),
                message: "spec.offsets.reset.sourceOffsets[0].partition: the file source has \
                          one source partition, {path: /data/in.txt}"
                    .into()
            }
        );
        let source = fixtures::source("  offsets: {reset: {id: r, to: Earliest}}");
        assert_eq!(decide(&source, &[]), ResetStep::Apply);
        let time = fixtures::sink("  offsets: {reset: {id: r, to: '2026-11-22T08:00:00Z'}}");
        assert_eq!(decide(&time, &[]), ResetStep::Apply);
    }

    #[test]
    fn the_resetting_status_says_what_it_waits_for_and_keeps_the_rest() {
        let c = with_status(
            fixtures::sink("  offsets: {reset: {id: replay-2, to: '1700000000000'}}"),
            r#"
state: Running
restarts: 4
tasks: {desired: 2, ready: 2, items: [{index: 0, pod: orders-task-0, phase: Running}]}
conditions:
- {type: Ready, status: "True", reason: AllTasksReady, message: "2 of 2", lastTransitionTime: "2026-11-22T09:00:00Z"}
- {type: Degraded, status: "False", reason: TasksHealthy, message: "no task has failed", lastTransitionTime: "2026-11-22T09:00:00Z"}
offsetReset: {appliedId: replay-1}
"#,
        );
        let reset = pending(&c).unwrap();
        let now: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let s = resetting_status(&c, reset, "2 task pods still stopping", now);
        assert_eq!(s.state, Some(ConnectorPhase::Resetting));
        assert_eq!(s.restarts, Some(4));
        assert_eq!(s.tasks_ready.as_deref(), Some("0/2"));
        assert_eq!(s.offset_reset, None, "written under its own field manager");
        let progressing = s
            .conditions
            .iter()
            .find(|c| c.type_ == "Progressing")
            .unwrap();
        assert_eq!(progressing.reason, "ResettingOffsets");
        assert_eq!(
            progressing.message,
            "resetting offsets to 2023-11-14T22:13:20Z (spec.offsets.reset.id \"replay-2\"): \
             2 task pods still stopping"
        );
        let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.last_transition_time.0),
            ("False", now)
        );
        assert!(s.conditions.iter().any(|c| c.type_ == "Degraded"));
    }

    #[test]
    fn offsets_are_read_about_once_a_minute() {
        let now: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let c = fixtures::sink("");
        assert!(offsets_read_due(&c, now));
        let fresh = with_status(
            c.clone(),
            "offsets: {partitions: 3, at: '2026-11-22T09:59:30Z'}",
        );
        assert!(!offsets_read_due(&fresh, now));
        let stale = with_status(c, "offsets: {partitions: 3, at: '2026-11-22T09:58:59Z'}");
        assert!(offsets_read_due(&stale, now));
    }

    #[test]
    fn targets_read_well() {
        assert_eq!(describe_target(&OffsetTarget::Earliest), "Earliest");
        assert_eq!(plural(1, "partition"), "1 partition");
        assert_eq!(plural(3, "partition"), "3 partitions");
    }
}

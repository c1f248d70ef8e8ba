//! What to do about a connector's task pods (pure): which to create, which to delete and why,
//! what each task's status is, which decisions to report as Events, and when to look again.
//!
//! Rules:
//! - pods of indexes `>= desired` (or without a valid index, or duplicates) are orphans and
//!   are deleted, whatever the state; a `Stopped` connector wants no pods at all;
//! - a missing task pod is created, unless its restart is still backing off;
//! - a failed task pod is kept (its logs stay readable) until its restart is due, then
//!   deleted; its replacement is created once it is gone;
//! - a task that exited with a configuration error is kept and not restarted until the
//!   connector's generation changes, then retried once;
//! - a pod whose configuration hash is stale is replaced: at once when it is not serving
//!   (pending, failed, finished), otherwise one at a time, only while every other task is
//!   ready (rolling replacement);
//! - a ready task that reports itself stalled (work waiting, nothing committed for
//!   `spec.progress.stallAfterSeconds`) is restarted like a failed one: deleted now, recreated
//!   after the backoff;
//! - a sink task never finishes on its own: a sink pod that ended with exit code 0 (stopped
//!   from outside, e.g. by its liveness probe) is restarted like a failed one; a source pod
//!   that ended with exit code 0 finished its bounded input and is left alone;
//! - while `Paused`, nothing is replaced or restarted (missing pods are still created: they
//!   start paused).

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_crds::contract::{ReplicationSlotReport, EXIT_CONFIG_ERROR};
use ferry_crds::status::{task_phase, TaskFailure, TaskStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::build::{RunState, TaskInputs};
use crate::names::task_pod_name;
use crate::observe::{Ended, PodPhase, TaskPod};
use crate::restart::{self, Failure};

/// Why a pod is deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    /// Its index is not wanted any more (scaled down, stopped, or a stray pod).
    Orphan,
    /// Its configuration is stale: it is replaced by one with the current configuration.
    Replace,
    /// It failed and its restart is due.
    Restart,
    /// It reported no progress while work waits: restarted after the backoff.
    Stalled,
    /// It failed with a configuration error and the spec changed since: retried once.
    RetryAfterSpecChange,
    /// It was evicted from a node that stopped answering, and the node's kubelet did not
    /// confirm the deletion in time: deleted at once (grace period 0), so that its
    /// replacement can take the name.
    NodeLost,
}

/// How long after an evicted pod's deletion was due (its `deletionTimestamp`) it is deleted
/// without its kubelet's confirmation.
pub const NODE_LOST_AFTER: Duration = Duration::from_secs(5);

/// One pod to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deletion {
    /// Pod name.
    pub pod: String,
    /// Pod UID (the delete is conditional on it, so a newer pod of the same name is safe).
    pub uid: String,
    /// Why.
    pub reason: DeleteReason,
    /// The pod's configuration hash (for the log of a replacement).
    pub hash: Option<String>,
}

/// A decision worth an Event.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// A task pod is created.
    TaskStarted {
        /// Task index.
        index: i32,
        /// The pod.
        pod: String,
        /// Consecutive restarts of the task.
        restarts: i32,
    },
    /// A task failed (reported once per failure).
    TaskFailed {
        /// Task index.
        index: i32,
        /// The failed pod and its UID.
        pod: (String, String),
        /// The failure.
        failure: TaskFailure,
    },
    /// A failed task's restart was scheduled.
    RestartScheduled {
        /// Task index.
        index: i32,
        /// The failed pod and its UID.
        pod: (String, String),
        /// When it restarts.
        at: Timestamp,
        /// The backoff delay.
        delay: Duration,
    },
    /// A task exited with a configuration error (reported once per failure).
    ConfigurationError {
        /// Task index.
        index: i32,
        /// The failed pod and its UID.
        pod: (String, String),
        /// The termination message.
        message: String,
    },
    /// A task is replaced for a new configuration.
    Replacing {
        /// Task index.
        index: i32,
        /// The replaced pod and its UID.
        pod: (String, String),
    },
    /// A task's pod, evicted from a node that stopped answering, is deleted without waiting
    /// for that node.
    NodeLost {
        /// Task index (`None`: a pod of an index no longer wanted).
        index: Option<i32>,
        /// The pod and its UID.
        pod: (String, String),
    },
}

/// The plan for one reconcile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Task pods to create: `(index, consecutive restarts)`.
    pub create: Vec<(i32, i32)>,
    /// Pods to delete.
    pub delete: Vec<Deletion>,
    /// Status of each desired task (progress fields not filled yet).
    pub tasks: Vec<TaskStatus>,
    /// Decisions to report.
    pub decisions: Vec<Decision>,
    /// The earliest time something is due (a restart).
    pub wake_in: Option<Duration>,
    /// Task pods with a stale configuration (rolling replacement in progress).
    pub stale: usize,
    /// Pods that exist and are not being deleted (the `/scale` replicas).
    pub existing: i32,
    /// Task pods still being deleted.
    pub terminating: usize,
    /// Pods deleted in this plan because their index is not wanted.
    pub orphans: usize,
    /// The first configuration error of the current generation: `(index, message)`.
    pub config_error: Option<(i32, String)>,
    /// Why tasks that are not ready are waiting, by index (from their pods).
    pub waiting: BTreeMap<i32, String>,
    /// What failed tasks measured of their replication slot before they stopped, by index.
    pub slot_reports: BTreeMap<i32, ReplicationSlotReport>,
}

/// Everything [`plan`] decides on.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The connector's inputs.
    pub inputs: &'a TaskInputs,
    /// The current configuration hash.
    pub hash: &'a str,
    /// The connector's task pods.
    pub pods: &'a [TaskPod],
    /// `status.tasks.items` as last written.
    pub previous: &'a [TaskStatus],
    /// Tasks whose progress report says they are stalled, with the lag they reported.
    pub stalled: &'a BTreeMap<i32, Option<u64>>,
    /// Now.
    pub now: Timestamp,
}

/// Decides what to do.
pub fn plan(observed: &Observed<'_>) -> Plan {
    let inputs = observed.inputs;
    let desired = inputs.desired_tasks();
    let paused = inputs.state == RunState::Paused;
    let mut plan = Plan::default();

    // Orphans: pods of unwanted indexes, without an index, or duplicates.
    let mut by_index: Vec<Option<&TaskPod>> = vec![None; usize::try_from(desired).unwrap_or(0)];
    for pod in observed.pods {
        let slot = pod
            .index
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < by_index.len())
            .filter(|&i| pod.name == task_pod_name(&inputs.name, i as i32));
        match slot {
            Some(i) if by_index[i].is_none() => by_index[i] = Some(pod),
            _ => {
                if pod.terminating {
                    plan.terminating += 1;
                    node_lost(&mut plan, pod, None, observed.now);
                } else {
                    plan.orphans += 1;
                    plan.delete.push(Deletion {
                        pod: pod.name.clone(),
                        uid: pod.uid.clone(),
                        reason: DeleteReason::Orphan,
                        hash: pod.hash.clone(),
                    });
                }
            }
        }
    }

    let mut ready_stale: Vec<&TaskPod> = Vec::new();
    let mut unavailable = 0usize;
    for (slot, pod) in by_index.iter().enumerate() {
        let index = slot as i32;
        let previous = observed.previous.iter().find(|t| t.index == index);
        let mut task = TaskStatus {
            index,
            pod: task_pod_name(&inputs.name, index),
            phase: task_phase::PENDING.to_string(),
            restarts: previous.map_or(0, |p| p.restarts),
            last_failure: previous.and_then(|p| p.last_failure.clone()),
            ..TaskStatus::default()
        };
        match pod {
            None => {
                unavailable += 1;
                let backing_off = previous
                    .and_then(|p| p.next_restart_at.as_ref())
                    .filter(|at| at.0 > observed.now);
                match backing_off {
                    Some(at) => {
                        task.phase = task_phase::BACKING_OFF.to_string();
                        task.next_restart_at = Some(at.clone());
                        wake(&mut plan, at.0, observed.now);
                    }
                    None => {
                        plan.create.push((index, task.restarts));
                        plan.decisions.push(Decision::TaskStarted {
                            index,
                            pod: task.pod.clone(),
                            restarts: task.restarts,
                        });
                    }
                }
            }
            Some(pod) if pod.terminating => {
                unavailable += 1;
                plan.terminating += 1;
                node_lost(&mut plan, pod, Some(index), observed.now);
            }
            Some(pod) => {
                plan.existing += 1;
                let current = pod.is_current(observed.hash);
                if !current {
                    plan.stale += 1;
                }
                match (pod.phase, &pod.ended) {
                    (PodPhase::Failed, Some(ended)) => {
                        unavailable += 1;
                        failed_task(&mut plan, &mut task, pod, ended, current, observed);
                    }
                    (PodPhase::Succeeded, Some(ended)) if !inputs.is_source => {
                        unavailable += 1;
                        failed_task(&mut plan, &mut task, pod, ended, current, observed);
                    }
                    (PodPhase::Succeeded, _) => {
                        unavailable += 1;
                        task.phase = task_phase::SUCCEEDED.to_string();
                        task.restarts = pod.restarts;
                        if !current && !paused {
                            replace(&mut plan, pod, DeleteReason::Replace);
                        }
                    }
                    _ => {
                        task.restarts = restart::restarts_while_running(
                            pod.restarts,
                            pod.running_since,
                            &inputs.backoff,
                            observed.now,
                        );
                        if pod.ready && !paused && current && observed.stalled.contains_key(&index)
                        {
                            unavailable += 1;
                            let lag = observed.stalled.get(&index).copied().flatten();
                            stalled_task(&mut plan, &mut task, pod, lag, observed);
                        } else if pod.ready {
                            task.phase = if paused {
                                task_phase::PAUSED
                            } else {
                                task_phase::RUNNING
                            }
                            .to_string();
                            if !current {
                                ready_stale.push(pod);
                            }
                        } else {
                            unavailable += 1;
                            if let Some(waiting) = &pod.waiting {
                                plan.waiting.insert(index, waiting.clone());
                            }
                            if !current && !paused {
                                replace(&mut plan, pod, DeleteReason::Replace);
                            }
                        }
                    }
                }
            }
        }
        plan.tasks.push(task);
    }

    // Rolling replacement: one ready stale pod at a time, only while every task is ready.
    if !paused && unavailable == 0 && plan.terminating == 0 {
        if let Some(pod) = ready_stale.first() {
            replace(&mut plan, pod, DeleteReason::Replace);
        }
    }
    plan
}

/// A pod evicted from a node that stopped answering: deleted at once [`NODE_LOST_AFTER`] past
/// the time its deletion was due, or a wake-up then.
fn node_lost(plan: &mut Plan, pod: &TaskPod, index: Option<i32>, now: Timestamp) {
    let Some(due) = pod.eviction_due else {
        return;
    };
    let at = SignedDuration::try_from(NODE_LOST_AFTER)
        .ok()
        .and_then(|d| due.checked_add(d).ok())
        .unwrap_or(due);
    if at > now {
        wake(plan, at, now);
        return;
    }
    plan.delete.push(Deletion {
        pod: pod.name.clone(),
        uid: pod.uid.clone(),
        reason: DeleteReason::NodeLost,
        hash: pod.hash.clone(),
    });
    plan.decisions.push(Decision::NodeLost {
        index,
        pod: (pod.name.clone(), pod.uid.clone()),
    });
}

fn replace(plan: &mut Plan, pod: &TaskPod, reason: DeleteReason) {
    if reason == DeleteReason::Replace {
        if let Some(index) = pod.index {
            plan.decisions.push(Decision::Replacing {
                index,
                pod: (pod.name.clone(), pod.uid.clone()),
            });
        }
    }
    plan.delete.push(Deletion {
        pod: pod.name.clone(),
        uid: pod.uid.clone(),
        reason,
        hash: pod.hash.clone(),
    });
}

fn wake(plan: &mut Plan, at: Timestamp, now: Timestamp) {
    let wait = Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO);
    plan.wake_in = Some(plan.wake_in.map_or(wait, |w| w.min(wait)));
}

fn failed_task(
    plan: &mut Plan,
    task: &mut TaskStatus,
    pod: &TaskPod,
    ended: &Ended,
    current: bool,
    observed: &Observed<'_>,
) {
    let inputs = observed.inputs;
    let paused = inputs.state == RunState::Paused;
    let failed_at = ended.finished_at.unwrap_or(observed.now);
    let failure = TaskFailure {
        reason: failure_reason(ended),
        message: ended.message.clone(),
        exit_code: ended.exit_code,
        at: Some(Time(failed_at)),
    };
    let first_report = task.last_failure.as_ref() != Some(&failure)
        || observed
            .previous
            .iter()
            .all(|p| p.index != task.index || p.pod != pod.name);
    task.last_failure = Some(failure.clone());
    if let Some(report) = &ended.replication_slot {
        plan.slot_reports.insert(task.index, report.clone());
    }

    if ended.exit_code == Some(EXIT_CONFIG_ERROR) {
        task.restarts = pod.restarts;
        if pod.generation == Some(inputs.generation) {
            task.phase = task_phase::FAILED.to_string();
            if plan.config_error.is_none() {
                plan.config_error = Some((task.index, ended.message.clone()));
            }
            if first_report {
                plan.decisions.push(Decision::ConfigurationError {
                    index: task.index,
                    pod: (pod.name.clone(), pod.uid.clone()),
                    message: ended.message.clone(),
                });
            }
        } else if !paused {
            task.restarts = pod.restarts.saturating_add(1);
            plan.delete.push(Deletion {
                pod: pod.name.clone(),
                uid: pod.uid.clone(),
                reason: DeleteReason::RetryAfterSpecChange,
                hash: pod.hash.clone(),
            });
        } else {
            task.phase = task_phase::FAILED.to_string();
        }
        return;
    }

    let decision = restart::decide(
        &Failure {
            restarts_before: pod.restarts,
            started_at: ended.started_at,
            failed_at,
        },
        &inputs.backoff,
        restart::jitter_from(&pod.uid),
    );
    task.restarts = decision.restarts;
    if first_report {
        plan.decisions.push(Decision::TaskFailed {
            index: task.index,
            pod: (pod.name.clone(), pod.uid.clone()),
            failure,
        });
    }
    if paused {
        task.phase = task_phase::FAILED.to_string();
        return;
    }
    if !current {
        // The configuration changed: the fix may be in it, so do not wait for the backoff.
        plan.delete.push(Deletion {
            pod: pod.name.clone(),
            uid: pod.uid.clone(),
            reason: DeleteReason::Replace,
            hash: pod.hash.clone(),
        });
        return;
    }
    if first_report {
        plan.decisions.push(Decision::RestartScheduled {
            index: task.index,
            pod: (pod.name.clone(), pod.uid.clone()),
            at: decision.restart_at,
            delay: inputs
                .backoff
                .delay(decision.restarts, restart::jitter_from(&pod.uid)),
        });
    }
    if decision.is_due(observed.now) {
        plan.delete.push(Deletion {
            pod: pod.name.clone(),
            uid: pod.uid.clone(),
            reason: DeleteReason::Restart,
            hash: pod.hash.clone(),
        });
    } else {
        task.phase = task_phase::BACKING_OFF.to_string();
        task.next_restart_at = Some(Time(decision.restart_at));
        wake(plan, decision.restart_at, observed.now);
    }
}

/// Restarts a task that reports no progress: its pod is deleted now and recreated once the
/// backoff has passed.
fn stalled_task(
    plan: &mut Plan,
    task: &mut TaskStatus,
    pod: &TaskPod,
    lag: Option<u64>,
    observed: &Observed<'_>,
) {
    let inputs = observed.inputs;
    // A task reports a lag of 0 while the records it holds are read but not yet written.
    let waiting = lag
        .filter(|l| *l > 0)
        .map_or("records".to_string(), |l| format!("{l} records"));
    let failure = TaskFailure {
        reason: "Stalled".to_string(),
        message: format!(
            "the task had {waiting} waiting and committed nothing for \
             spec.progress.stallAfterSeconds"
        ),
        exit_code: None,
        at: Some(Time(observed.now)),
    };
    let decision = restart::decide(
        &Failure {
            restarts_before: pod.restarts,
            started_at: pod.running_since,
            failed_at: observed.now,
        },
        &inputs.backoff,
        restart::jitter_from(&pod.uid),
    );
    task.restarts = decision.restarts;
    task.last_failure = Some(failure.clone());
    task.phase = task_phase::BACKING_OFF.to_string();
    task.next_restart_at = Some(Time(decision.restart_at));
    let pod_ref = (pod.name.clone(), pod.uid.clone());
    plan.decisions.push(Decision::TaskFailed {
        index: task.index,
        pod: pod_ref.clone(),
        failure,
    });
    plan.decisions.push(Decision::RestartScheduled {
        index: task.index,
        pod: pod_ref,
        at: decision.restart_at,
        delay: inputs
            .backoff
            .delay(decision.restarts, restart::jitter_from(&pod.uid)),
    });
    plan.delete.push(Deletion {
        pod: pod.name.clone(),
        uid: pod.uid.clone(),
        reason: DeleteReason::Stalled,
        hash: pod.hash.clone(),
    });
    wake(plan, decision.restart_at, observed.now);
}

/// The failure category shown in `lastFailure.reason`.
pub fn failure_reason(ended: &Ended) -> String {
    match ended.exit_code {
        Some(EXIT_CONFIG_ERROR) => "ConfigurationError".to_string(),
        Some(ferry_crds::contract::EXIT_OK) => "Stopped".to_string(),
        Some(ferry_crds::contract::EXIT_RECORD_FAILED) => "RecordFailed".to_string(),
        _ => ended.reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, failed, observed_pod, ready, stale_pod, starting};

    const T0: &str = "2026-11-22T10:00:00Z";

    fn now(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn run(inputs: &TaskInputs, pods: &[TaskPod], previous: &[TaskStatus], at: &str) -> Plan {
        let hash = crate::build::config_hash(inputs);
        plan(&Observed {
            inputs,
            hash: &hash,
            pods,
            previous,
            stalled: &BTreeMap::new(),
            now: now(at),
        })
    }

    fn deleted(plan: &Plan) -> Vec<(&str, DeleteReason)> {
        plan.delete
            .iter()
            .map(|d| (d.pod.as_str(), d.reason.clone()))
            .collect()
    }

    #[test]
    fn a_new_connector_creates_every_task() {
        let inputs = fixtures::inputs(&fixtures::sink("  tasks: 3"));
        let p = run(&inputs, &[], &[], T0);
        assert_eq!(p.create, vec![(0, 0), (1, 0), (2, 0)]);
        assert!(p.delete.is_empty());
        assert_eq!(p.tasks.len(), 3);
        assert!(p.tasks.iter().all(|t| t.phase == "Pending"));
        assert_eq!(p.decisions.len(), 3);
    }

    #[test]
    fn scaling_down_deletes_only_the_highest_indexes_and_up_creates_only_new_ones() {
        let inputs3 = fixtures::inputs(&fixtures::sink("  tasks: 3"));
        let pods: Vec<TaskPod> = (0..3)
            .map(|i| observed_pod(&inputs3, i, 0, &format!("u{i}"), &ready(T0)))
            .collect();
        let inputs1 = fixtures::inputs(&fixtures::sink("  tasks: 1"));
        let p = run(&inputs1, &pods, &[], T0);
        assert_eq!(
            deleted(&p),
            vec![
                ("orders-task-1", DeleteReason::Orphan),
                ("orders-task-2", DeleteReason::Orphan)
            ]
        );
        assert!(p.create.is_empty());
        let inputs5 = fixtures::inputs(&fixtures::sink("  tasks: 5"));
        let p = run(&inputs5, &pods, &[], T0);
        assert_eq!(p.create, vec![(3, 0), (4, 0)]);
        assert!(
            p.delete.is_empty(),
            "a sink's running tasks are kept when scaling"
        );
    }

    #[test]
    fn stopped_deletes_every_pod_even_a_failed_one() {
        let running = fixtures::inputs(&fixtures::sink("  tasks: 2"));
        let pods = vec![
            observed_pod(&running, 0, 0, "u0", &ready(T0)),
            observed_pod(&running, 1, 5, "u1", &failed(1, "broker down", T0, T0)),
        ];
        let stopped = fixtures::inputs(&fixtures::sink("  tasks: 2\n  state: Stopped"));
        let p = run(&stopped, &pods, &[], T0);
        assert_eq!(p.delete.len(), 2);
        assert!(p.delete.iter().all(|d| d.reason == DeleteReason::Orphan));
        assert!(p.create.is_empty());
        assert!(p.tasks.is_empty());
    }

    #[test]
    fn a_failed_task_waits_for_its_backoff_then_is_deleted_and_recreated() {
        let inputs = fixtures::inputs(&fixtures::sink(
            "  restartPolicy: {initialBackoffSeconds: 2, maxBackoffSeconds: 60}",
        ));
        let pod = observed_pod(
            &inputs,
            0,
            2,
            "u0",
            &failed(
                1,
                "broker down",
                "2026-11-22T10:00:00Z",
                "2026-11-22T10:00:03Z",
            ),
        );
        // Third consecutive restart: 2 s * 2^2 = 8 s (+ up to 20 % jitter).
        let p = run(
            &inputs,
            std::slice::from_ref(&pod),
            &[],
            "2026-11-22T10:00:04Z",
        );
        assert!(p.delete.is_empty());
        assert!(p.create.is_empty());
        let task = &p.tasks[0];
        assert_eq!(task.phase, "BackingOff");
        assert_eq!(task.restarts, 3);
        let at = task.next_restart_at.as_ref().unwrap().0;
        assert!(
            at >= now("2026-11-22T10:00:11Z") && at <= now("2026-11-22T10:00:12.6Z"),
            "{at}"
        );
        let failure = task.last_failure.as_ref().unwrap();
        assert_eq!(failure.message, "broker down");
        assert_eq!(failure.exit_code, Some(1));
        assert!(p.wake_in.unwrap() >= Duration::from_secs(7));
        assert!(matches!(
            p.decisions[0],
            Decision::TaskFailed { index: 0, .. }
        ));
        assert!(matches!(
            p.decisions[1],
            Decision::RestartScheduled { index: 0, .. }
        ));

        // The same failure seen again is not reported again.
        let p2 = run(
            &inputs,
            std::slice::from_ref(&pod),
            &p.tasks,
            "2026-11-22T10:00:05Z",
        );
        assert!(p2.decisions.is_empty());
        assert_eq!(p2.tasks, p.tasks);

        // Due: the pod is deleted; once gone, it is recreated with the restart count.
        let p3 = run(
            &inputs,
            std::slice::from_ref(&pod),
            &p.tasks,
            "2026-11-22T10:00:13Z",
        );
        assert_eq!(deleted(&p3), vec![("orders-task-0", DeleteReason::Restart)]);
        let p4 = run(&inputs, &[], &p3.tasks, "2026-11-22T10:00:13Z");
        assert_eq!(p4.create, vec![(0, 3)]);
    }

    #[test]
    fn a_task_deleted_during_its_backoff_is_not_recreated_early() {
        let inputs = fixtures::inputs(&fixtures::sink(""));
        let previous = vec![TaskStatus {
            index: 0,
            pod: "orders-task-0".into(),
            phase: "BackingOff".into(),
            restarts: 4,
            next_restart_at: Some(Time(now("2026-11-22T10:01:00Z"))),
            ..TaskStatus::default()
        }];
        let p = run(&inputs, &[], &previous, "2026-11-22T10:00:30Z");
        assert!(p.create.is_empty());
        assert_eq!(p.tasks[0].phase, "BackingOff");
        assert_eq!(p.wake_in, Some(Duration::from_secs(30)));
        let p = run(&inputs, &[], &previous, "2026-11-22T10:01:00Z");
        assert_eq!(p.create, vec![(0, 4)]);
    }

    #[test]
    fn a_configuration_error_is_held_until_the_generation_changes() {
        let c = fixtures::sink("");
        let inputs = fixtures::inputs(&c);
        let pod = observed_pod(
            &inputs,
            0,
            0,
            "u0",
            &failed(78, "spec.sink.file.path: /x is a directory", T0, T0),
        );
        let p = run(
            &inputs,
            std::slice::from_ref(&pod),
            &[],
            "2026-11-22T12:00:00Z",
        );
        assert!(p.delete.is_empty() && p.create.is_empty());
        assert_eq!(p.wake_in, None);
        assert_eq!(p.tasks[0].phase, "Failed");
        assert_eq!(
            p.config_error,
            Some((0, "spec.sink.file.path: /x is a directory".into()))
        );
        assert_eq!(p.decisions.len(), 1);
        assert!(matches!(
            p.decisions[0],
            Decision::ConfigurationError { .. }
        ));
        let again = run(
            &inputs,
            std::slice::from_ref(&pod),
            &p.tasks,
            "2026-11-22T13:00:00Z",
        );
        assert!(again.decisions.is_empty());

        // A new generation (same task configuration, e.g. only the labels changed) retries once.
        let mut c2 = c.clone();
        c2.metadata.generation = Some(2);
        let inputs2 = fixtures::inputs(&c2);
        let p = run(
            &inputs2,
            std::slice::from_ref(&pod),
            &p.tasks,
            "2026-11-22T13:00:00Z",
        );
        assert_eq!(
            deleted(&p),
            vec![("orders-task-0", DeleteReason::RetryAfterSpecChange)]
        );
        assert_eq!(p.tasks[0].restarts, 1);
        assert_eq!(p.config_error, None);
    }

    #[test]
    fn a_config_change_replaces_ready_pods_one_at_a_time() {
        let old = fixtures::inputs(&fixtures::sink("  tasks: 3"));
        let new = fixtures::inputs(&fixtures::sink("  tasks: 3\n  errors: {tolerance: All}"));
        let old_hash = crate::build::config_hash(&old);
        let pods: Vec<TaskPod> = (0..3)
            .map(|i| stale_pod(&new, i, 0, &format!("u{i}"), &ready(T0), &old_hash))
            .collect();
        let p = run(&new, &pods, &[], T0);
        assert_eq!(deleted(&p), vec![("orders-task-0", DeleteReason::Replace)]);
        assert_eq!(p.stale, 3);

        // Task 0 is being replaced: nothing else is touched until it is ready again.
        let mut pods2 = pods.clone();
        pods2[0] = observed_pod(&new, 0, 0, "u0b", &starting());
        let p = run(&new, &pods2, &[], T0);
        assert!(p.delete.is_empty(), "{:?}", p.delete);
        pods2.remove(0);
        let p = run(&new, &pods2, &[], T0);
        assert_eq!(p.create, vec![(0, 0)]);
        assert!(p.delete.is_empty());

        // Task 0 ready with the new configuration: task 1 is next.
        let mut pods3 = pods.clone();
        pods3[0] = observed_pod(&new, 0, 0, "u0b", &ready(T0));
        let p = run(&new, &pods3, &[], T0);
        assert_eq!(deleted(&p), vec![("orders-task-1", DeleteReason::Replace)]);
    }

    #[test]
    fn a_pod_evicted_from_a_lost_node_is_deleted_at_once_when_its_deletion_is_overdue() {
        let inputs = fixtures::inputs(&fixtures::sink("  tasks: 2"));
        let mut evicted = observed_pod(&inputs, 0, 0, "u0", &ready(T0));
        evicted.terminating = true;
        evicted.eviction_due = Some(T0.parse().unwrap());
        let other = observed_pod(&inputs, 1, 0, "u1", &ready(T0));
        let pods = vec![evicted.clone(), other];
        // Before the due time plus the margin: wait, and wake up then.
        let early = run(&inputs, &pods, &[], "2026-11-22T10:00:02Z");
        assert!(early.delete.is_empty(), "{:?}", early.delete);
        assert_eq!(early.wake_in, Some(Duration::from_secs(3)));
        assert_eq!(early.terminating, 1);
        // After: deleted without the kubelet, so the name is free for the replacement.
        let late = run(&inputs, &pods, &[], "2026-11-22T10:00:05Z");
        assert_eq!(
            deleted(&late),
            vec![("orders-task-0", DeleteReason::NodeLost)]
        );
        assert!(late.decisions.contains(&Decision::NodeLost {
            index: Some(0),
            pod: ("orders-task-0".into(), "u0".into())
        }));
        // A pod being deleted on a node that answers is waited for, as before.
        let mut deleting = evicted;
        deleting.eviction_due = None;
        let p = run(&inputs, &[deleting], &[], "2026-11-22T11:00:00Z");
        assert!(p.delete.is_empty());
    }

    #[test]
    fn stale_pods_that_are_not_serving_are_replaced_at_once() {
        let new = fixtures::inputs(&fixtures::sink("  tasks: 2\n  image: ferry/runner:2"));
        let pods = vec![
            stale_pod(&new, 0, 0, "u0", &starting(), "old"),
            stale_pod(&new, 1, 6, "u1", &failed(1, "boom", T0, T0), "old"),
        ];
        let p = run(&new, &pods, &[], T0);
        assert_eq!(
            deleted(&p),
            vec![
                ("orders-task-0", DeleteReason::Replace),
                ("orders-task-1", DeleteReason::Replace)
            ]
        );
    }

    #[test]
    fn paused_keeps_every_pod_and_restarts_nothing() {
        let paused = fixtures::inputs(&fixtures::sink(
            "  tasks: 3\n  state: Paused\n  image: ferry/runner:2",
        ));
        let pods = vec![
            stale_pod(&paused, 0, 0, "u0", &ready(T0), "old"),
            observed_pod(&paused, 1, 0, "u1", &failed(1, "boom", T0, T0)),
        ];
        let p = run(&paused, &pods, &[], "2026-11-22T11:00:00Z");
        assert!(p.delete.is_empty(), "{:?}", p.delete);
        assert_eq!(
            p.create,
            vec![(2, 0)],
            "a missing pod still starts (paused)"
        );
        assert_eq!(p.tasks[0].phase, "Paused");
        assert_eq!(p.tasks[1].phase, "Failed");
    }

    #[test]
    fn strays_and_duplicates_are_orphans_and_terminating_pods_are_waited_for() {
        let inputs = fixtures::inputs(&fixtures::sink("  tasks: 1"));
        let mut stray = observed_pod(&inputs, 0, 0, "u9", &ready(T0));
        stray.name = "orders-task-x".into();
        stray.index = None;
        let mut terminating = observed_pod(&inputs, 0, 0, "u0", &ready(T0));
        terminating.terminating = true;
        let p = run(&inputs, &[terminating, stray], &[], T0);
        assert_eq!(deleted(&p), vec![("orders-task-x", DeleteReason::Orphan)]);
        assert!(
            p.create.is_empty(),
            "the replacement waits for the old pod to go"
        );
        assert_eq!(p.terminating, 1);
    }

    #[test]
    fn a_healthy_task_resets_its_restart_count() {
        let inputs = fixtures::inputs(&fixtures::sink("  restartPolicy: {resetAfterSeconds: 60}"));
        let pod = observed_pod(&inputs, 0, 5, "u0", &ready(T0));
        assert_eq!(
            run(
                &inputs,
                std::slice::from_ref(&pod),
                &[],
                "2026-11-22T10:00:30Z"
            )
            .tasks[0]
                .restarts,
            5
        );
        assert_eq!(
            run(
                &inputs,
                std::slice::from_ref(&pod),
                &[],
                "2026-11-22T10:01:00Z"
            )
            .tasks[0]
                .restarts,
            0
        );
    }

    #[test]
    fn a_stalled_task_is_restarted_after_its_backoff() {
        let inputs = fixtures::inputs(&fixtures::sink("  tasks: 2"));
        let pods = vec![
            observed_pod(&inputs, 0, 0, "u0", &ready(T0)),
            observed_pod(&inputs, 1, 0, "u1", &ready(T0)),
        ];
        let stalled = BTreeMap::from([(1, Some(500))]);
        let hash = crate::build::config_hash(&inputs);
        let p = plan(&Observed {
            inputs: &inputs,
            hash: &hash,
            pods: &pods,
            previous: &[],
            stalled: &stalled,
            now: now("2026-11-22T10:10:00Z"),
        });
        assert_eq!(deleted(&p), vec![("orders-task-1", DeleteReason::Stalled)]);
        let task = &p.tasks[1];
        assert_eq!(task.phase, "BackingOff");
        assert_eq!(task.restarts, 1);
        let failure = task.last_failure.as_ref().unwrap();
        assert_eq!(failure.reason, "Stalled");
        assert!(failure.message.contains("500 records waiting"));
        assert!(task.next_restart_at.is_some());
        assert_eq!(p.tasks[0].phase, "Running");
        // Once gone, the pod comes back only when the backoff has passed.
        let p2 = run(&inputs, &pods[..1], &p.tasks, "2026-11-22T10:10:00.5Z");
        assert!(p2.create.is_empty());
        let p3 = run(&inputs, &pods[..1], &p.tasks, "2026-11-22T10:10:02Z");
        assert_eq!(p3.create, vec![(1, 1)]);
    }

    #[test]
    fn a_sink_that_exited_cleanly_is_restarted_but_a_finished_source_is_not() {
        let sink = fixtures::inputs(&fixtures::sink(""));
        let exited = "phase: Succeeded\ncontainerStatuses:\n- {name: runner, image: x, imageID: '', ready: false, restartCount: 0, state: {terminated: {exitCode: 0, reason: Completed, startedAt: '2026-11-22T10:00:00Z', finishedAt: '2026-11-22T10:00:30Z'}}}";
        let p = run(
            &sink,
            &[observed_pod(&sink, 0, 0, "u0", exited)],
            &[],
            "2026-11-22T10:00:40Z",
        );
        assert_eq!(deleted(&p), vec![("orders-task-0", DeleteReason::Restart)]);
        assert_eq!(p.tasks[0].last_failure.as_ref().unwrap().reason, "Stopped");
        let source = fixtures::inputs(&fixtures::source(""));
        let p = run(
            &source,
            &[observed_pod(&source, 0, 0, "u0", exited)],
            &[],
            "2026-11-22T10:00:40Z",
        );
        assert!(p.delete.is_empty() && p.create.is_empty());
        assert_eq!(p.tasks[0].phase, "Succeeded");
    }
}

//! What the operator reads from a task pod (pure): its index, configuration hash, restart
//! bookkeeping, phase, readiness and how its process ended.

use ferry_crds::contract::{parse_termination_message, ReplicationSlotReport};
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use k8s_openapi::jiff::Timestamp;

use crate::names::*;

/// Kubernetes pod phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodPhase {
    /// Accepted, not all containers started.
    Pending,
    /// Bound and running.
    Running,
    /// Every container ended with exit code 0.
    Succeeded,
    /// A container ended with a failure.
    Failed,
    /// The phase is unknown.
    Unknown,
}

/// How a task's process ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Ended {
    /// Exit code, when the process ran.
    pub exit_code: Option<i32>,
    /// Kubernetes' reason (`Error`, `OOMKilled`, `Evicted`, ...).
    pub reason: String,
    /// The termination message (the runner's last fatal error).
    pub message: String,
    /// What the task measured of its replication slot before it stopped (`postgresCdc`),
    /// from the end of the termination message.
    pub replication_slot: Option<ReplicationSlotReport>,
    /// When the process started.
    pub started_at: Option<Timestamp>,
    /// When the process ended.
    pub finished_at: Option<Timestamp>,
}

/// Reason of the `DisruptionTarget` condition the taint manager sets on a pod it evicts
/// (its node has a `NoExecute` taint, such as `node.kubernetes.io/unreachable`).
pub const TAINT_EVICTION_REASON: &str = "DeletionByTaintManager";

/// The facts about one task pod the reconciler decides on.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskPod {
    /// Pod name.
    pub name: String,
    /// Pod UID.
    pub uid: String,
    /// Task index from the `ferry.rs/task` label (`None`: missing or not a number).
    pub index: Option<i32>,
    /// The configuration hash annotation.
    pub hash: Option<String>,
    /// The connector generation the pod was created for.
    pub generation: Option<i64>,
    /// Consecutive restarts recorded on the pod at creation.
    pub restarts: i32,
    /// The pod is being deleted.
    pub terminating: bool,
    /// For a pod evicted from a node that stopped answering (the taint manager's
    /// `DisruptionTarget` condition, reason `DeletionByTaintManager`): when its node's kubelet
    /// should have confirmed the deletion (the pod's `deletionTimestamp`). A kubelet that is
    /// gone never does, and the pod's name stays taken.
    pub eviction_due: Option<Timestamp>,
    /// Pod phase.
    pub phase: PodPhase,
    /// The Ready condition is true.
    pub ready: bool,
    /// When the runner container started running (the task's healthy-since time).
    pub running_since: Option<Timestamp>,
    /// How the runner ended, for `Failed` and `Succeeded` pods.
    pub ended: Option<Ended>,
    /// The pod's IP, once it has one.
    pub ip: Option<String>,
    /// Why the runner container is not running yet (`reason: message` of its waiting state,
    /// or the pod's unschedulable message), if known.
    pub waiting: Option<String>,
}

impl TaskPod {
    /// Reads the facts from a pod.
    pub fn from_pod(pod: &Pod) -> TaskPod {
        let meta = &pod.metadata;
        let label = |key: &str| meta.labels.as_ref().and_then(|l| l.get(key)).cloned();
        let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key)).cloned();
        let status = pod.status.as_ref();
        let phase = match status.and_then(|s| s.phase.as_deref()) {
            Some("Pending") | None => PodPhase::Pending,
            Some("Running") => PodPhase::Running,
            Some("Succeeded") => PodPhase::Succeeded,
            Some("Failed") => PodPhase::Failed,
            Some(_) => PodPhase::Unknown,
        };
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let runner = status
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.iter().find(|c| c.name == RUNNER_CONTAINER));
        let running_since = runner
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.as_ref())
            .map(|t| t.0);
        let terminated: Option<&ContainerStateTerminated> = runner
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.terminated.as_ref());
        let ended = match (phase, terminated) {
            (PodPhase::Failed | PodPhase::Succeeded, Some(t)) => {
                let (message, replication_slot) =
                    parse_termination_message(t.message.as_deref().unwrap_or_default());
                Some(Ended {
                    exit_code: Some(t.exit_code),
                    reason: t.reason.clone().unwrap_or_else(|| "Error".to_string()),
                    message: message.trim().to_string(),
                    replication_slot,
                    started_at: t.started_at.as_ref().map(|t| t.0),
                    finished_at: t.finished_at.as_ref().map(|t| t.0),
                })
            }
            // A pod that failed without its container ending (evicted, deadline exceeded, ...).
            (PodPhase::Failed | PodPhase::Succeeded, None) => Some(Ended {
                exit_code: None,
                reason: status
                    .and_then(|s| s.reason.clone())
                    .unwrap_or_else(|| "PodFailed".to_string()),
                message: status.and_then(|s| s.message.clone()).unwrap_or_default(),
                replication_slot: None,
                started_at: status.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
                finished_at: None,
            }),
            _ => None,
        };
        let waiting = runner
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| {
                let reason = w.reason.clone()?;
                Some(match w.message.as_deref().filter(|m| !m.is_empty()) {
                    Some(message) => format!("{reason}: {message}"),
                    None => reason,
                })
            })
            .or_else(|| {
                status
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|c| {
                        c.iter()
                            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
                    })
                    .map(|c| {
                        format!(
                            "{}: {}",
                            c.reason.as_deref().unwrap_or("Unschedulable"),
                            c.message.as_deref().unwrap_or_default()
                        )
                    })
            });
        TaskPod {
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            index: label(LABEL_TASK).and_then(|v| v.parse().ok()),
            hash: annotation(ANNOTATION_CONFIG_HASH),
            generation: annotation(ANNOTATION_GENERATION).and_then(|v| v.parse().ok()),
            restarts: annotation(ANNOTATION_RESTARTS)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            terminating: meta.deletion_timestamp.is_some(),
            eviction_due: meta
                .deletion_timestamp
                .as_ref()
                .filter(|_| {
                    status.and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
                        c.iter().any(|c| {
                            c.type_ == "DisruptionTarget"
                                && c.status == "True"
                                && c.reason.as_deref() == Some(TAINT_EVICTION_REASON)
                        })
                    })
                })
                .map(|t| t.0),
            phase,
            ready,
            running_since,
            ended,
            ip: status.and_then(|s| s.pod_ip.clone()),
            waiting,
        }
    }

    /// Whether the pod runs the current configuration.
    pub fn is_current(&self, hash: &str) -> bool {
        self.hash.as_deref() == Some(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task pod being deleted, with a `DisruptionTarget` condition of `reason`.
    fn deleted_pod(reason: &str) -> TaskPod {
        let pod: Pod = serde_yaml::from_str(&format!(
            r#"
metadata:
  name: orders-task-0
  uid: u-0
  deletionTimestamp: "2026-11-22T10:00:30Z"
  labels: {{ferry.rs/task: "0"}}
status:
  phase: Running
  conditions:
  - {{type: Ready, status: "False"}}
  - {{type: DisruptionTarget, status: "True", reason: {reason}, message: "Taint manager: deleting due to NoExecute taint"}}
"#
        ))
        .unwrap();
        TaskPod::from_pod(&pod)
    }

    #[test]
    fn a_pod_the_taint_manager_evicts_is_due_at_its_deletion_timestamp() {
        let evicted = deleted_pod("DeletionByTaintManager");
        assert!(evicted.terminating);
        assert_eq!(
            evicted.eviction_due,
            Some("2026-11-22T10:00:30Z".parse().unwrap())
        );
        // Preempted or drained pods are deleted on a kubelet that answers: no due time.
        let preempted = deleted_pod("PreemptionByScheduler");
        assert!(preempted.terminating);
        assert_eq!(preempted.eviction_due, None);
    }

    #[test]
    fn reads_a_failed_task_pod() {
        let pod: Pod = serde_yaml::from_str(
            r#"
metadata:
  name: orders-task-1
  uid: u-1
  labels: {ferry.rs/task: "1", ferry.rs/connector: orders}
  annotations: {ferry.rs/config-hash: abc, ferry.rs/generation: "4", ferry.rs/restarts: "2"}
status:
  phase: Failed
  podIP: 127.0.1.7
  containerStatuses:
  - name: runner
    image: ferry/runner
    imageID: ""
    ready: false
    restartCount: 0
    state:
      terminated:
        exitCode: 78
        reason: Error
        message: "spec.source.file.path: /nope is not readable\n"
        startedAt: "2026-11-22T10:00:00Z"
        finishedAt: "2026-11-22T10:00:02Z"
"#,
        )
        .unwrap();
        let t = TaskPod::from_pod(&pod);
        assert_eq!(t.index, Some(1));
        assert_eq!(t.generation, Some(4));
        assert_eq!(t.restarts, 2);
        assert_eq!(t.phase, PodPhase::Failed);
        assert!(t.is_current("abc"));
        assert!(!t.is_current("abd"));
        let ended = t.ended.unwrap();
        assert_eq!(ended.exit_code, Some(78));
        assert_eq!(
            ended.message,
            "spec.source.file.path: /nope is not readable"
        );
        assert_eq!(
            ended.finished_at,
            Some("2026-11-22T10:00:02Z".parse().unwrap())
        );
    }

    #[test]
    fn reads_a_ready_pod_and_tolerates_missing_fields() {
        let pod: Pod = serde_yaml::from_str(
            r#"
metadata:
  name: orders-task-0
  labels: {ferry.rs/task: zero}
status:
  phase: Running
  conditions: [{type: Ready, status: "True"}]
  containerStatuses:
  - {name: runner, image: x, imageID: "", ready: true, restartCount: 0,
     state: {running: {startedAt: "2026-11-22T10:00:00Z"}}}
"#,
        )
        .unwrap();
        let t = TaskPod::from_pod(&pod);
        assert_eq!(t.index, None);
        assert_eq!(t.restarts, 0);
        assert!(t.ready);
        assert_eq!(
            t.running_since,
            Some("2026-11-22T10:00:00Z".parse().unwrap())
        );
        assert!(t.ended.is_none());
        assert!(t.waiting.is_none());
        assert!(!TaskPod::from_pod(&Pod::default()).ready);
    }

    #[test]
    fn explains_why_a_task_is_not_running() {
        let pod: Pod = serde_yaml::from_str(
            r#"
metadata: {name: orders-task-0, labels: {ferry.rs/task: "0"}}
status:
  phase: Pending
  containerStatuses:
  - name: runner
    image: x
    imageID: ""
    ready: false
    restartCount: 0
    state: {waiting: {reason: CreateContainerConfigError, message: 'secret "kafka-user" not found'}}
"#,
        )
        .unwrap();
        assert_eq!(
            TaskPod::from_pod(&pod).waiting.as_deref(),
            Some("CreateContainerConfigError: secret \"kafka-user\" not found")
        );
        let unschedulable: Pod = serde_yaml::from_str(
            "metadata: {name: p}\nstatus: {phase: Pending, conditions: [{type: PodScheduled, status: 'False', reason: Unschedulable, message: '0/1 nodes are available'}]}",
        )
        .unwrap();
        assert_eq!(
            TaskPod::from_pod(&unschedulable).waiting.as_deref(),
            Some("Unschedulable: 0/1 nodes are available")
        );
    }
}

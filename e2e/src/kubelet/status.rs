//! Pod status as the kubelet reports it, built from what the local kubelet knows about its
//! processes. Pure: the pod worker owns the records and writes the result.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The pod's restart policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Restart containers whatever their exit code.
    Always,
    /// Restart containers that exit non-zero.
    OnFailure,
    /// Never restart containers.
    Never,
}

impl RestartPolicy {
    /// Parses `spec.restartPolicy` (default `Always`).
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// How a container run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terminated {
    /// Exit code (128 + signal number for a signal).
    pub exit_code: i32,
    /// Signal that ended the process, if any.
    pub signal: Option<i32>,
    /// `Completed`, `Error`, or a kubelet reason.
    pub reason: String,
    /// Termination message (file content, or the log tail with `FallbackToLogsOnError`).
    pub message: Option<String>,
    /// When the process started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Timestamp,
    /// `ferry://<pod-uid>/<container>/<n>`.
    pub container_id: Option<String>,
}

impl Terminated {
    /// The Kubernetes reason for an exit code: `Completed` for 0, `Error` otherwise.
    pub fn reason_for(exit_code: i32) -> &'static str {
        if exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }
}

/// The current state of a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerPhase {
    /// Not running: being created, in backoff, or blocked on configuration.
    Waiting {
        /// `ContainerCreating`, `PodInitializing`, `CrashLoopBackOff`, `ImageNotMapped`, …
        reason: String,
        /// Details for the user.
        message: Option<String>,
    },
    /// The process runs.
    Running {
        /// When it started.
        started_at: Timestamp,
    },
    /// The process ended and will not be restarted (or is about to be).
    Terminated(Terminated),
}

/// What the kubelet knows about one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRecord {
    /// Container name.
    pub name: String,
    /// Image as written in the spec.
    pub image: String,
    /// The executable the image maps to, as `ferry-local://<path>`.
    pub image_id: String,
    /// Current state.
    pub phase: ContainerPhase,
    /// The previous run's end, if any.
    pub last_terminated: Option<Terminated>,
    /// Restarts so far.
    pub restart_count: i32,
    /// Readiness (probe result, or running when there is no readiness probe).
    pub ready: bool,
    /// Whether the startup probe (if any) succeeded.
    pub started: bool,
    /// ID of the current (or last) run.
    pub container_id: Option<String>,
}

impl ContainerRecord {
    /// A container that has not started yet.
    pub fn new(name: &str, image: &str, image_id: &str, reason: &str) -> Self {
        ContainerRecord {
            name: name.to_string(),
            image: image.to_string(),
            image_id: image_id.to_string(),
            phase: ContainerPhase::Waiting {
                reason: reason.to_string(),
                message: None,
            },
            last_terminated: None,
            restart_count: 0,
            ready: false,
            started: false,
            container_id: None,
        }
    }

    fn succeeded(&self) -> bool {
        matches!(&self.phase, ContainerPhase::Terminated(t) if t.exit_code == 0)
    }
}

/// What the kubelet knows about a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRecord {
    /// Init containers, in spec order.
    pub init_containers: Vec<ContainerRecord>,
    /// Regular containers, in spec order.
    pub containers: Vec<ContainerRecord>,
    /// `spec.restartPolicy`.
    pub restart_policy: RestartPolicy,
    /// The pod's address.
    pub pod_ip: String,
    /// The node's address.
    pub host_ip: String,
    /// When the kubelet accepted the pod.
    pub start_time: Timestamp,
    /// A pod-level failure (`NodeRestarted`, …) that ends the pod: reason and message.
    pub failure: Option<(String, String)>,
}

/// The pod phase Kubernetes derives from its containers.
pub fn pod_phase(pod: &PodRecord) -> &'static str {
    if pod.failure.is_some() {
        return "Failed";
    }
    for init in &pod.init_containers {
        match &init.phase {
            ContainerPhase::Terminated(t) if t.exit_code == 0 => {}
            ContainerPhase::Terminated(_) if pod.restart_policy == RestartPolicy::Never => {
                return "Failed"
            }
            _ => return "Pending",
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &pod.containers {
        match &c.phase {
            ContainerPhase::Running { .. } => running += 1,
            ContainerPhase::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            ContainerPhase::Waiting { .. } if c.last_terminated.is_some() => stopped += 1,
            ContainerPhase::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        match pod.restart_policy {
            RestartPolicy::Always => "Running",
            RestartPolicy::OnFailure if stopped == succeeded => "Succeeded",
            RestartPolicy::OnFailure => "Running",
            RestartPolicy::Never if stopped == succeeded => "Succeeded",
            RestartPolicy::Never => "Failed",
        }
    } else {
        "Pending"
    }
}

/// Builds the pod status. `previous` conditions keep their `lastTransitionTime` when their
/// status did not change.
pub fn build_status(pod: &PodRecord, previous: &[PodCondition], now: Timestamp) -> PodStatus {
    let phase = pod_phase(pod);
    let terminal = phase == "Succeeded" || phase == "Failed";
    let incomplete_init: Vec<&str> = pod
        .init_containers
        .iter()
        .filter(|c| !c.succeeded())
        .map(|c| c.name.as_str())
        .collect();
    let unready: Vec<&str> = pod
        .containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let condition = |type_: &str, ok: bool, reason: Option<String>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let since = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        PodCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            last_transition_time: Some(since),
            reason: if ok { None } else { reason },
            message: if ok { None } else { message },
            ..PodCondition::default()
        }
    };
    let list = |names: &[&str]| format!("[{}]", names.join(" "));
    let (ready_reason, ready_message) = if terminal {
        ("PodCompleted".to_string(), None)
    } else {
        (
            "ContainersNotReady".to_string(),
            Some(format!(
                "containers with unready status: {}",
                list(&unready)
            )),
        )
    };
    let containers_ready = unready.is_empty() && !terminal;
    let conditions = vec![
        condition(
            "PodReadyToStartContainers",
            !terminal || pod.failure.is_none(),
            None,
            None,
        ),
        condition(
            "Initialized",
            incomplete_init.is_empty(),
            Some("ContainersNotInitialized".into()),
            Some(format!(
                "containers with incomplete status: {}",
                list(&incomplete_init)
            )),
        ),
        condition(
            "Ready",
            containers_ready,
            Some(ready_reason.clone()),
            ready_message.clone(),
        ),
        condition(
            "ContainersReady",
            containers_ready,
            Some(ready_reason),
            ready_message,
        ),
        condition("PodScheduled", true, None, None),
    ];
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(pod.host_ip.clone()),
        host_ips: Some(vec![HostIP {
            ip: pod.host_ip.clone(),
        }]),
        pod_ip: Some(pod.pod_ip.clone()),
        pod_ips: Some(vec![PodIP {
            ip: pod.pod_ip.clone(),
        }]),
        start_time: Some(Time(pod.start_time)),
        qos_class: None,
        reason: pod.failure.as_ref().map(|(reason, _)| reason.clone()),
        message: pod.failure.as_ref().map(|(_, message)| message.clone()),
        init_container_statuses: if pod.init_containers.is_empty() {
            None
        } else {
            Some(pod.init_containers.iter().map(container_status).collect())
        },
        container_statuses: Some(pod.containers.iter().map(container_status).collect()),
        ..PodStatus::default()
    }
}

fn terminated_state(t: &Terminated) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: t.exit_code,
            signal: t.signal,
            reason: Some(t.reason.clone()),
            message: t.message.clone().filter(|m| !m.is_empty()),
            started_at: t.started_at.map(Time),
            finished_at: Some(Time(t.finished_at)),
            container_id: t.container_id.clone(),
        }),
        ..ContainerState::default()
    }
}

/// The API's `ContainerStatus` for a record.
pub fn container_status(c: &ContainerRecord) -> ContainerStatus {
    let state = match &c.phase {
        ContainerPhase::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..ContainerState::default()
        },
        ContainerPhase::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..ContainerState::default()
        },
        ContainerPhase::Terminated(t) => terminated_state(t),
    };
    let running = matches!(c.phase, ContainerPhase::Running { .. });
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        container_id: c.container_id.clone(),
        state: Some(state),
        last_state: Some(
            c.last_terminated
                .as_ref()
                .map(terminated_state)
                .unwrap_or_default(),
        ),
        ready: c.ready && running,
        started: Some(c.started && running),
        restart_count: c.restart_count,
        ..ContainerStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn record(policy: RestartPolicy, phases: Vec<ContainerPhase>) -> PodRecord {
        PodRecord {
            init_containers: Vec::new(),
            containers: phases
                .into_iter()
                .enumerate()
                .map(|(i, phase)| ContainerRecord {
                    phase,
                    ..ContainerRecord::new(
                        &format!("c{i}"),
                        "ferry/test-shell",
                        "ferry-local:///bin/sh",
                        "ContainerCreating",
                    )
                })
                .collect(),
            restart_policy: policy,
            pod_ip: "127.0.1.2".into(),
            host_ip: "127.0.0.1".into(),
            start_time: t(0),
            failure: None,
        }
    }

    fn exited(code: i32) -> ContainerPhase {
        ContainerPhase::Terminated(Terminated {
            exit_code: code,
            signal: None,
            reason: Terminated::reason_for(code).into(),
            message: Some("bye".into()),
            started_at: Some(t(1)),
            finished_at: t(2),
            container_id: Some("ferry://uid/c0/0".into()),
        })
    }

    fn waiting(reason: &str) -> ContainerPhase {
        ContainerPhase::Waiting {
            reason: reason.into(),
            message: None,
        }
    }

    #[test]
    fn phases_follow_kubernetes() {
        use RestartPolicy::*;
        let running = ContainerPhase::Running { started_at: t(1) };
        assert_eq!(
            pod_phase(&record(Always, vec![waiting("ContainerCreating")])),
            "Pending"
        );
        assert_eq!(
            pod_phase(&record(Always, vec![running.clone(), exited(1)])),
            "Running"
        );
        assert_eq!(
            pod_phase(&record(Never, vec![exited(0), exited(0)])),
            "Succeeded"
        );
        assert_eq!(
            pod_phase(&record(Never, vec![exited(0), exited(3)])),
            "Failed"
        );
        assert_eq!(pod_phase(&record(OnFailure, vec![exited(0)])), "Succeeded");
        assert_eq!(pod_phase(&record(Always, vec![exited(0)])), "Running");

        let mut crash_looping = record(Always, vec![waiting("CrashLoopBackOff")]);
        crash_looping.containers[0].last_terminated = Some(Terminated {
            exit_code: 1,
            signal: None,
            reason: "Error".into(),
            message: None,
            started_at: None,
            finished_at: t(3),
            container_id: None,
        });
        assert_eq!(pod_phase(&crash_looping), "Running");

        let mut failed = record(Never, vec![running]);
        failed.failure = Some(("NodeRestarted".into(), "gone".into()));
        assert_eq!(pod_phase(&failed), "Failed");
    }

    #[test]
    fn init_containers_gate_the_pod() {
        let mut pod = record(RestartPolicy::Never, vec![waiting("PodInitializing")]);
        pod.init_containers = vec![ContainerRecord {
            phase: ContainerPhase::Running { started_at: t(1) },
            ..ContainerRecord::new("setup", "ferry/test-shell", "x", "ContainerCreating")
        }];
        assert_eq!(pod_phase(&pod), "Pending");
        let status = build_status(&pod, &[], t(5));
        let initialized = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Initialized")
            .cloned();
        assert_eq!(
            initialized.as_ref().map(|c| c.status.as_str()),
            Some("False")
        );
        assert_eq!(
            initialized.and_then(|c| c.message).as_deref(),
            Some("containers with incomplete status: [setup]")
        );
        pod.init_containers[0].phase = exited(2);
        assert_eq!(pod_phase(&pod), "Failed");
    }

    #[test]
    fn status_reports_termination_and_keeps_transition_times() {
        let mut pod = record(RestartPolicy::Never, vec![exited(3)]);
        pod.containers[0].restart_count = 0;
        let previous = vec![PodCondition {
            type_: "PodScheduled".into(),
            status: "True".into(),
            last_transition_time: Some(Time(t(-10))),
            ..PodCondition::default()
        }];
        let status = build_status(&pod, &previous, t(5));
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        assert_eq!(status.pod_ip.as_deref(), Some("127.0.1.2"));
        let cs = &status.container_statuses.unwrap_or_default()[0];
        let term = cs
            .state
            .as_ref()
            .and_then(|s| s.terminated.clone())
            .unwrap_or_default();
        assert_eq!(term.exit_code, 3);
        assert_eq!(term.reason.as_deref(), Some("Error"));
        assert_eq!(term.message.as_deref(), Some("bye"));
        assert!(!cs.ready);
        let conditions = status.conditions.unwrap_or_default();
        let get = |ty: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == ty)
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(get("PodScheduled").last_transition_time, Some(Time(t(-10))));
        assert_eq!(get("Ready").status, "False");
        assert_eq!(get("Ready").reason.as_deref(), Some("PodCompleted"));
        assert_eq!(get("Ready").last_transition_time, Some(Time(t(5))));
    }

    #[test]
    fn ready_follows_container_readiness() {
        let mut pod = record(
            RestartPolicy::Always,
            vec![
                ContainerPhase::Running { started_at: t(1) },
                ContainerPhase::Running { started_at: t(1) },
            ],
        );
        pod.containers[0].ready = true;
        let status = build_status(&pod, &[], t(2));
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .cloned()
            .unwrap_or_default();
        assert_eq!(ready.status, "False");
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [c1]")
        );
        pod.containers[1].ready = true;
        let status = build_status(&pod, &[], t(2));
        assert!(status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True"));
    }

    #[test]
    fn restart_policy() {
        assert!(RestartPolicy::parse(None).restarts(0));
        assert!(!RestartPolicy::parse(Some("OnFailure")).restarts(0));
        assert!(RestartPolicy::parse(Some("OnFailure")).restarts(2));
        assert!(!RestartPolicy::parse(Some("Never")).restarts(2));
    }
}

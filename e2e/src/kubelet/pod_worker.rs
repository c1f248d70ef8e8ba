//! One task per pod: sets up its directory and volumes, runs init containers then the
//! containers (restarts with crash-loop backoff, probes), writes the pod status, and on
//! deletion stops the processes gracefully and finishes the deletion.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Resource};
use tokio::sync::{mpsc, watch, Notify};
use tracing::{info, warn};

use super::backoff::CrashLoopBackoff;
use super::context::KubeletContext;
use super::env::{base_env, command_line, resolve_env, PodRuntimeInfo};
use super::images::ImageTable;
use super::objects::ObjectSnapshot;
use super::probes::{run_network_probe, ProbeResult, ProbeState, ProbeTarget, ProbeTiming};
use super::process;
use super::sandbox::{prepare_mount_points, Mount, Sandbox, SandboxSpec};
use super::status::{
    build_status, ContainerPhase, ContainerRecord, PodRecord, RestartPolicy, Terminated,
};
use super::volumes::{plan_volume, write_files, VolumePlan};

/// Kubernetes' default `terminationMessagePath`.
const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// Largest termination message kept, as in Kubernetes.
const MAX_TERMINATION_MESSAGE: usize = 4096;
/// Log lines kept for `FallbackToLogsOnError`.
const FALLBACK_LOG_LINES: usize = 80;
/// Grace period when the kubelet itself stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How often volumes are re-checked even without a ConfigMap/Secret change (token refresh).
const VOLUME_RESYNC: Duration = Duration::from_secs(10);

/// Why the containers of a pod are stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The pod got a deletionTimestamp: graceful stop, then finish the deletion.
    Deleted {
        /// Grace period.
        grace: Duration,
    },
    /// The pod disappeared from the API: stop at once.
    Vanished,
    /// The kubelet stops: stop with a short grace, leave the API object alone.
    Shutdown,
}

impl StopReason {
    fn grace(self) -> Duration {
        match self {
            StopReason::Deleted { grace } => grace,
            StopReason::Vanished => Duration::ZERO,
            StopReason::Shutdown => SHUTDOWN_GRACE,
        }
    }
}

/// What a previous kubelet left behind for a pod this kubelet did not start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Adoption {
    /// Never ran: start normally.
    Fresh,
    /// Already Succeeded or Failed: nothing to run.
    Terminal,
    /// Ran before and must be restarted (restartCount grows).
    Restart,
    /// Ran before with restartPolicy Never: mark Failed with reason `NodeRestarted`.
    FailNever,
}

/// Decides how to take over `pod` (pure).
pub fn adoption(pod: &Pod) -> Adoption {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    if phase == "Succeeded" || phase == "Failed" {
        return Adoption::Terminal;
    }
    let statuses = status.into_iter().flat_map(|s| {
        s.container_statuses
            .iter()
            .flatten()
            .chain(s.init_container_statuses.iter().flatten())
    });
    let ran = statuses.into_iter().any(|cs| {
        cs.restart_count > 0
            || cs
                .state
                .as_ref()
                .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
            || cs
                .last_state
                .as_ref()
                .is_some_and(|st| st.terminated.is_some())
    });
    if !ran {
        return Adoption::Fresh;
    }
    let policy = RestartPolicy::parse(pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()));
    if policy == RestartPolicy::Never {
        Adoption::FailNever
    } else {
        Adoption::Restart
    }
}

/// Shared state of one pod.
struct Shared {
    ctx: Arc<KubeletContext>,
    uid: String,
    namespace: String,
    name: String,
    dir: PathBuf,
    pod_ip: String,
    record: Mutex<PodRecord>,
    dirty: Notify,
    pod_rx: watch::Receiver<Option<Pod>>,
    last_written: tokio::sync::Mutex<Option<serde_json::Value>>,
}

impl Shared {
    fn pod(&self) -> Option<Pod> {
        self.pod_rx.borrow().clone()
    }

    fn update(&self, f: impl FnOnce(&mut PodRecord)) {
        if let Ok(mut record) = self.record.lock() {
            f(&mut record);
        }
        self.dirty.notify_one();
    }

    fn update_container(&self, init: bool, index: usize, f: impl FnOnce(&mut ContainerRecord)) {
        self.update(|record| {
            let list = if init {
                &mut record.init_containers
            } else {
                &mut record.containers
            };
            if let Some(c) = list.get_mut(index) {
                f(c);
            }
        });
    }

    /// Publishes an event about the pod in the background (`kubectl describe pod`).
    fn event(&self, warning: bool, reason: &str, note: String) {
        let Some(pod) = self.pod() else { return };
        let reference = pod.object_ref(&());
        let recorder = self.ctx.events.clone();
        let event = kube::runtime::events::Event {
            type_: if warning {
                kube::runtime::events::EventType::Warning
            } else {
                kube::runtime::events::EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(note),
            action: reason.to_string(),
            secondary: None,
        };
        tokio::spawn(async move {
            if let Err(error) = recorder.publish(&event, &reference).await {
                tracing::debug!(%error, "publishing an event failed");
            }
        });
    }

    fn snapshot(&self) -> Option<PodRecord> {
        self.record.lock().ok().map(|r| r.clone())
    }

    fn info(&self) -> PodRuntimeInfo {
        PodRuntimeInfo {
            pod_ip: self.pod_ip.clone(),
            host_ip: self.ctx.host_ip.clone(),
            node_cpu_cores: self.ctx.node_cpu_cores,
            node_memory_bytes: self.ctx.node_memory_bytes,
        }
    }

    /// Writes the status when it differs from what was last written.
    async fn write_status(&self) {
        let Some(pod) = self.pod() else { return };
        let Some(record) = self.snapshot() else {
            return;
        };
        let previous = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let status = build_status(&record, &previous, Timestamp::now());
        let Ok(mut body) = serde_json::to_value(&status) else {
            return;
        };
        if let Some(map) = body.as_object_mut() {
            // Cleared pod-level fields must be removed explicitly in a merge patch.
            for field in ["reason", "message"] {
                map.entry(field).or_insert(serde_json::Value::Null);
            }
        }
        let mut last = self.last_written.lock().await;
        if last.as_ref() == Some(&body) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let patch = serde_json::json!({ "status": body });
        match api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => *last = Some(body),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(error) => {
                warn!(pod = %format!("{}/{}", self.namespace, self.name), %error, "writing pod status failed; will retry")
            }
        }
    }
}

/// Runs pod `uid` until it is deleted (or the kubelet stops). `pod_rx` carries the latest
/// object (`None` once it vanished from the API).
pub async fn run_pod(ctx: Arc<KubeletContext>, mut pod_rx: watch::Receiver<Option<Pod>>) {
    let Some(pod) = pod_rx.borrow_and_update().clone() else {
        return;
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network == Some(true);
    let previous_ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
    let adopt = adoption(&pod);
    let pod_ip = if host_network {
        Ok(ctx.host_ip.clone())
    } else if adopt == Adoption::Terminal {
        // Finished pods keep reporting their old address but hold none.
        Ok(previous_ip.clone().unwrap_or_default())
    } else {
        match ctx.ip_pool.lock() {
            Ok(mut pool) => pool
                .allocate(&uid, previous_ip.as_deref())
                .map_err(|e| e.to_string()),
            Err(_) => Err("the address pool is unavailable".to_string()),
        }
    };
    let pod_ip = match pod_ip {
        Ok(ip) => ip,
        Err(error) => {
            warn!(pod = %format!("{namespace}/{name}"), %error, "cannot give the pod an address");
            return;
        }
    };
    let dir = ctx.root_dir.join("pods").join(&uid);
    let policy = RestartPolicy::parse(spec.restart_policy.as_deref());
    let record = initial_record(&ctx.images, &ctx.host_ip, &pod, &pod_ip, policy, &adopt);
    let shared = Arc::new(Shared {
        ctx: ctx.clone(),
        uid: uid.clone(),
        namespace: namespace.clone(),
        name: name.clone(),
        dir: dir.clone(),
        pod_ip,
        record: Mutex::new(record),
        dirty: Notify::new(),
        pod_rx: pod_rx.clone(),
        last_written: tokio::sync::Mutex::new(None),
    });
    info!(pod = %format!("{namespace}/{name}"), %uid, ip = %shared.pod_ip, dir = %dir.display(), adoption = ?adopt, "pod accepted");

    let (stop_tx, stop_rx) = watch::channel::<Option<StopReason>>(None);
    // A finished pod's status was written by whoever finished it; it is never rewritten.
    let writes_status = adopt != Adoption::Terminal;
    let writer = {
        let shared = shared.clone();
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            if !writes_status {
                return;
            }
            loop {
                shared.write_status().await;
                tokio::select! {
                    _ = shared.dirty.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stop_rx.changed() => {}
                }
                if stop_rx.borrow().is_some() {
                    break;
                }
                // Coalesce bursts of changes into one write.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let deleting_at_start = pod.metadata.deletion_timestamp.is_some();
    let runner = {
        let shared = shared.clone();
        let stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            // Nothing to start for finished pods or pods already being deleted.
            if matches!(adopt, Adoption::Terminal | Adoption::FailNever) || deleting_at_start {
                return;
            }
            run_containers(shared, stop_rx).await;
        })
    };

    // Wait for a reason to stop.
    let mut shutdown = ctx.shutdown.clone();
    let reason = loop {
        if *shutdown.borrow() {
            break StopReason::Shutdown;
        }
        match pod_rx.borrow().as_ref() {
            None => break StopReason::Vanished,
            Some(p) if p.metadata.deletion_timestamp.is_some() => {
                let grace = p
                    .metadata
                    .deletion_grace_period_seconds
                    .unwrap_or(30)
                    .max(0) as u64;
                break StopReason::Deleted {
                    grace: Duration::from_secs(grace),
                };
            }
            Some(_) => {}
        }
        tokio::select! {
            changed = pod_rx.changed() => if changed.is_err() { break StopReason::Vanished },
            _ = shutdown.changed() => {}
        }
    };
    info!(pod = %format!("{namespace}/{name}"), ?reason, "stopping pod");
    let _ = stop_tx.send(Some(reason));
    if matches!(reason, StopReason::Deleted { .. }) && writes_status {
        // A terminating pod stops being Ready at once, so nothing sends it new work.
        shared.update(|r| {
            for c in r.containers.iter_mut() {
                c.ready = false;
            }
        });
        shared.write_status().await;
    }
    if tokio::time::timeout(reason.grace() + Duration::from_secs(10), runner)
        .await
        .is_err()
    {
        warn!(pod = %format!("{namespace}/{name}"), "containers did not stop in time");
    }
    let _ = writer.await;
    if let StopReason::Deleted { .. } = reason {
        if writes_status {
            shared.write_status().await;
        }
        finish_deletion(&shared).await;
    }
    if reason != StopReason::Shutdown {
        release(&shared);
    }
    info!(pod = %format!("{namespace}/{name}"), "pod done");
}

/// Deletes the pod object for good (grace 0, only this uid).
async fn finish_deletion(shared: &Shared) {
    let api: Api<Pod> = Api::namespaced(shared.ctx.client.clone(), &shared.namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(shared.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&shared.name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(error) => {
            warn!(pod = %format!("{}/{}", shared.namespace, shared.name), %error, "finishing the deletion failed")
        }
    }
}

/// Releases the pod's address, tokens and directory.
fn release(shared: &Shared) {
    release_address(shared);
    shared.ctx.tokens.forget(&shared.uid);
    if let Err(error) = std::fs::remove_dir_all(&shared.dir) {
        if error.kind() != std::io::ErrorKind::NotFound {
            warn!(dir = %shared.dir.display(), %error, "cannot remove the pod directory");
        }
    }
}

fn image_id(images: &ImageTable, image: &str) -> String {
    images
        .resolve(image)
        .map(|p| format!("ferry-local://{}", p.display()))
        .unwrap_or_default()
}

/// The starting record: fresh, or carried over from a previous kubelet.
fn initial_record(
    images: &ImageTable,
    host_ip: &str,
    pod: &Pod,
    pod_ip: &str,
    policy: RestartPolicy,
    adopt: &Adoption,
) -> PodRecord {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    let node_restarted =
        |previous: Option<&k8s_openapi::api::core::v1::ContainerStatus>| Terminated {
            exit_code: 137,
            signal: None,
            reason: "NodeRestarted".into(),
            message: Some("the local kubelet restarted while the container was running".into()),
            started_at: previous
                .and_then(|p| p.state.as_ref())
                .and_then(|s| s.running.as_ref())
                .and_then(|r| r.started_at.as_ref())
                .map(|t| t.0),
            finished_at: now,
            container_id: previous.and_then(|p| p.container_id.clone()),
        };
    let build = |containers: &[Container],
                 previous: &[k8s_openapi::api::core::v1::ContainerStatus],
                 init: bool| {
        containers
            .iter()
            .map(|c| {
                let image = c.image.clone().unwrap_or_default();
                let waiting = if init || spec.init_containers.as_ref().is_none_or(|i| i.is_empty())
                {
                    "ContainerCreating"
                } else {
                    "PodInitializing"
                };
                let mut record =
                    ContainerRecord::new(&c.name, &image, &image_id(images, &image), waiting);
                let prev = previous.iter().find(|p| p.name == c.name);
                match adopt {
                    Adoption::Fresh => {}
                    Adoption::Terminal | Adoption::Restart | Adoption::FailNever => {
                        if let Some(prev) = prev {
                            record.restart_count = prev.restart_count;
                            record.container_id = prev.container_id.clone();
                            let terminated =
                                prev.state.as_ref().and_then(|s| s.terminated.as_ref());
                            match terminated {
                                Some(t)
                                    if !policy.restarts(t.exit_code)
                                        || (init && t.exit_code == 0)
                                        || *adopt == Adoption::Terminal =>
                                {
                                    record.phase = ContainerPhase::Terminated(Terminated {
                                        exit_code: t.exit_code,
                                        signal: t.signal,
                                        reason: t.reason.clone().unwrap_or_else(|| {
                                            Terminated::reason_for(t.exit_code).into()
                                        }),
                                        message: t.message.clone(),
                                        started_at: t.started_at.as_ref().map(|s| s.0),
                                        finished_at: t
                                            .finished_at
                                            .as_ref()
                                            .map(|s| s.0)
                                            .unwrap_or(now),
                                        container_id: t.container_id.clone(),
                                    });
                                }
                                _ if *adopt == Adoption::FailNever => {
                                    record.phase =
                                        ContainerPhase::Terminated(node_restarted(Some(prev)));
                                }
                                _ if *adopt == Adoption::Restart => {
                                    record.last_terminated = Some(node_restarted(Some(prev)));
                                }
                                _ => {}
                            }
                        }
                    }
                }
                record
            })
            .collect::<Vec<_>>()
    };
    let mut record = PodRecord {
        init_containers: build(
            spec.init_containers.as_deref().unwrap_or_default(),
            status
                .init_container_statuses
                .as_deref()
                .unwrap_or_default(),
            true,
        ),
        containers: build(
            &spec.containers,
            status.container_statuses.as_deref().unwrap_or_default(),
            false,
        ),
        restart_policy: policy,
        pod_ip: pod_ip.to_string(),
        host_ip: host_ip.to_string(),
        start_time: status.start_time.map(|t| t.0).unwrap_or(now),
        failure: None,
    };
    if *adopt == Adoption::FailNever {
        record.failure = Some((
            "NodeRestarted".into(),
            "the local kubelet restarted while the pod was running and its restartPolicy is Never"
                .into(),
        ));
    }
    record
}

/// Sets up volumes, runs init containers, then the containers until stopped.
async fn run_containers(shared: Arc<Shared>, stop_rx: watch::Receiver<Option<StopReason>>) {
    let Some(pod) = shared.pod() else { return };
    let spec = pod.spec.clone().unwrap_or_default();
    // Volumes first; containers wait in ContainerCreating until they are ready.
    let mut volumes_written: BTreeMap<String, VolumePlan> = BTreeMap::new();
    let mut failed_mounts: u64 = 0;
    loop {
        if stop_rx.borrow().is_some() {
            return;
        }
        match sync_volumes(&shared, &mut volumes_written).await {
            Ok(()) => break,
            Err(message) => {
                if failed_mounts.is_multiple_of(30) {
                    shared.event(
                        true,
                        "FailedMount",
                        format!("MountVolume.SetUp failed: {message}"),
                    );
                }
                failed_mounts += 1;
                shared.update(|r| {
                    for c in r.init_containers.iter_mut().chain(r.containers.iter_mut()) {
                        if matches!(c.phase, ContainerPhase::Waiting { .. }) {
                            c.phase = ContainerPhase::Waiting {
                                reason: "ContainerCreating".into(),
                                message: Some(message.clone()),
                            };
                        }
                    }
                });
                let mut stop = stop_rx.clone();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
    shared.update(|r| {
        for c in r.init_containers.iter_mut().chain(r.containers.iter_mut()) {
            if let ContainerPhase::Waiting { message, .. } = &mut c.phase {
                *message = None;
            }
        }
    });
    let refresher = {
        let shared = shared.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut changes = shared.ctx.objects.changes();
            loop {
                tokio::select! {
                    _ = changes.changed() => {}
                    _ = tokio::time::sleep(VOLUME_RESYNC) => {}
                    _ = stop.changed() => return,
                }
                if let Err(message) = sync_volumes(&shared, &mut volumes_written).await {
                    warn!(pod = %format!("{}/{}", shared.namespace, shared.name), %message, "refreshing volumes failed");
                }
            }
        })
    };

    let policy = RestartPolicy::parse(spec.restart_policy.as_deref());
    let init_containers = spec.init_containers.clone().unwrap_or_default();
    for (index, container) in init_containers.iter().enumerate() {
        let done = shared
            .snapshot()
            .and_then(|r| {
                r.init_containers
                    .get(index)
                    .map(|c| matches!(&c.phase, ContainerPhase::Terminated(t) if t.exit_code == 0))
            })
            .unwrap_or(false);
        if done {
            continue;
        }
        // Init containers are retried on failure unless the pod never restarts.
        let init_policy = if policy == RestartPolicy::Never {
            RestartPolicy::Never
        } else {
            RestartPolicy::OnFailure
        };
        let exit = run_container(
            shared.clone(),
            true,
            index,
            container.clone(),
            init_policy,
            stop_rx.clone(),
        )
        .await;
        if exit != Some(0) {
            refresher.abort();
            if exit.is_some() {
                release_address(&shared);
            }
            return;
        }
    }
    shared.update(|r| {
        for c in r.containers.iter_mut() {
            if let ContainerPhase::Waiting { reason, .. } = &mut c.phase {
                if reason == "PodInitializing" {
                    *reason = "ContainerCreating".into();
                }
            }
        }
    });
    let tasks: Vec<_> = spec
        .containers
        .iter()
        .enumerate()
        .filter(|(index, _)| {
            // Containers a previous kubelet left terminated for good stay that way.
            !shared
                .snapshot()
                .and_then(|r| {
                    r.containers
                        .get(*index)
                        .map(|c| matches!(c.phase, ContainerPhase::Terminated(_)))
                })
                .unwrap_or(false)
        })
        .map(|(index, container)| {
            tokio::spawn(run_container(
                shared.clone(),
                false,
                index,
                container.clone(),
                policy,
                stop_rx.clone(),
            ))
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    refresher.abort();
    if stop_rx.borrow().is_none() {
        // Every container finished for good: the pod is Succeeded or Failed and its address
        // can go to another pod, as with a real kubelet.
        release_address(&shared);
    }
}

fn release_address(shared: &Shared) {
    if let Ok(mut pool) = shared.ctx.ip_pool.lock() {
        pool.release(&shared.uid);
    }
}

/// Plans every volume and writes those whose content changed.
async fn sync_volumes(
    shared: &Shared,
    written: &mut BTreeMap<String, VolumePlan>,
) -> Result<(), String> {
    let Some(pod) = shared.pod() else {
        return Ok(());
    };
    let objects = shared.ctx.objects.snapshot(&pod).await;
    let tokens = shared.ctx.tokens.tokens_for(&pod).await;
    let info = shared.info();
    let owner = pod_owner(&pod);
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let plan =
            plan_volume(volume, &pod, &info, &objects, &tokens).map_err(|e| e.to_string())?;
        if written.get(&volume.name) == Some(&plan) {
            continue;
        }
        let dir = shared.dir.join("volumes").join(&volume.name);
        let result = match &plan {
            VolumePlan::Files(files) => write_files(&dir, files, owner),
            VolumePlan::EmptyDir => std::fs::create_dir_all(&dir).and_then(|()| {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            }),
            VolumePlan::HostPath { path, kind } => prepare_host_path(path, kind.as_deref()),
        };
        result.map_err(|e| {
            format!(
                "volume {}: cannot write {}: {e}",
                volume.name,
                dir.display()
            )
        })?;
        if written.contains_key(&volume.name) {
            info!(pod = %format!("{}/{}", shared.namespace, shared.name), volume = %volume.name, "volume content updated");
        }
        written.insert(volume.name.clone(), plan);
    }
    Ok(())
}

fn prepare_host_path(path: &Path, kind: Option<&str>) -> std::io::Result<()> {
    match kind {
        Some("DirectoryOrCreate") => {
            std::fs::create_dir_all(path)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        }
        Some("FileOrCreate") => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(|_| ())
        }
        Some("Directory") if !path.is_dir() => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "hostPath type check failed: {} is not a directory",
                path.display()
            ),
        )),
        Some("File") if !path.is_file() => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "hostPath type check failed: {} is not a file",
                path.display()
            ),
        )),
        _ => Ok(()),
    }
}

/// Owner for volume files: the pod's `runAsUser` and `fsGroup`/`runAsGroup`, if set.
fn pod_owner(pod: &Pod) -> Option<(u32, u32)> {
    let sc = pod.spec.as_ref()?.security_context.as_ref()?;
    let uid = u32::try_from(sc.run_as_user?).ok()?;
    let gid = sc
        .fs_group
        .or(sc.run_as_group)
        .and_then(|g| u32::try_from(g).ok())
        .unwrap_or(0);
    Some((uid, gid))
}

/// User and groups of a container: container securityContext over the pod's.
fn identity(pod: &Pod, container: &Container) -> (Option<u32>, Option<u32>, Vec<u32>) {
    let pod_sc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let sc = container.security_context.clone().unwrap_or_default();
    let uid = sc
        .run_as_user
        .or(pod_sc.run_as_user)
        .and_then(|u| u32::try_from(u).ok());
    let gid = sc
        .run_as_group
        .or(pod_sc.run_as_group)
        .and_then(|g| u32::try_from(g).ok());
    let mut groups: Vec<u32> = pod_sc
        .supplemental_groups
        .iter()
        .flatten()
        .filter_map(|g| u32::try_from(*g).ok())
        .collect();
    if let Some(fs_group) = pod_sc.fs_group.and_then(|g| u32::try_from(g).ok()) {
        groups.push(fs_group);
    }
    (uid, gid, groups)
}

/// The bind mounts of a container (volumes and the termination-message file).
fn container_mounts(
    shared: &Shared,
    pod: &Pod,
    container: &Container,
    termination_file: &Path,
) -> Result<Vec<Mount>, String> {
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut mounts = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let volume = volumes.iter().find(|v| v.name == vm.name).ok_or_else(|| {
            format!(
                "volumeMounts[{}]: no volume named {:?} in the pod",
                vm.mount_path, vm.name
            )
        })?;
        let mut source = match &volume.host_path {
            Some(host) => PathBuf::from(&host.path),
            None => shared.dir.join("volumes").join(&volume.name),
        };
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if Path::new(sub).is_absolute() || sub.split('/').any(|part| part == "..") {
                return Err(format!(
                    "volumeMounts[{}].subPath {sub:?} must be relative without '..'",
                    vm.mount_path
                ));
            }
            source = source.join(sub);
            if std::fs::symlink_metadata(&source).is_err() {
                std::fs::create_dir_all(&source)
                    .map_err(|e| format!("subPath {}: {e}", source.display()))?;
            }
        }
        mounts.push(Mount {
            source,
            target: PathBuf::from(&vm.mount_path),
            read_only: vm.read_only == Some(true),
        });
    }
    // Parents before children (`/data` before `/data/cache`), like container runtimes.
    mounts.sort_by_key(|m| m.target.components().count());
    let termination_path = container
        .termination_message_path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_TERMINATION_MESSAGE_PATH.to_string());
    mounts.push(Mount {
        source: termination_file.to_path_buf(),
        target: PathBuf::from(termination_path),
        read_only: false,
    });
    Ok(mounts)
}

/// Outcome of one run of a container process.
struct RunOutcome {
    terminated: Terminated,
    /// The run was ended because the pod is stopping.
    stopped: bool,
}

/// Runs one container until it finishes for good (per `policy`) or the pod stops.
/// Returns the final exit code (`None` when stopped or never started).
async fn run_container(
    shared: Arc<Shared>,
    init: bool,
    index: usize,
    container: Container,
    policy: RestartPolicy,
    mut stop_rx: watch::Receiver<Option<StopReason>>,
) -> Option<i32> {
    let pod_label = format!("{}/{}", shared.namespace, shared.name);
    let image = container.image.clone().unwrap_or_default();
    let backoff: CrashLoopBackoff = shared.ctx.backoff;
    let mut consecutive_crashes: u32 = 0;
    let mut config_errors: u64 = 0;
    let mut has_run = shared
        .snapshot()
        .and_then(|r| {
            let list = if init {
                r.init_containers
            } else {
                r.containers
            };
            list.get(index)
                .map(|c| c.last_terminated.is_some() || c.restart_count > 0)
        })
        .unwrap_or(false);
    if has_run {
        consecutive_crashes = 1;
    }
    loop {
        if stop_rx.borrow().is_some() {
            return None;
        }
        // Backoff before a restart.
        let delay = if has_run {
            backoff.delay(consecutive_crashes)
        } else {
            Duration::ZERO
        };
        if !delay.is_zero() {
            shared.update_container(init, index, |c| {
                c.phase = ContainerPhase::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!(
                        "back-off {}s restarting failed container={} pod={}_{}({})",
                        delay.as_secs(),
                        container.name,
                        shared.name,
                        shared.namespace,
                        shared.uid
                    )),
                };
                c.ready = false;
            });
            shared.event(
                true,
                "BackOff",
                format!(
                    "Back-off {}s restarting failed container {} in pod {}",
                    delay.as_secs(),
                    container.name,
                    pod_label
                ),
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop_rx.changed() => return None,
            }
        }
        let Some(entrypoint) = shared.ctx.images.resolve(&image).map(Path::to_path_buf) else {
            let names = shared.ctx.images.names().join(", ");
            let message = format!(
                "image {image:?} is not in the local kubelet's image table ({names}); start the kubelet with --image {}=/path/to/executable",
                super::images::repository(&image)
            );
            shared.event(
                true,
                "Failed",
                format!("Failed to pull image {image:?}: {message}"),
            );
            shared.update_container(init, index, |c| {
                c.phase = ContainerPhase::Waiting {
                    reason: "ImageNotMapped".into(),
                    message: Some(message),
                };
            });
            let _ = stop_rx.changed().await;
            return None;
        };
        let outcome = match start_once(
            &shared,
            init,
            index,
            &container,
            &entrypoint,
            has_run,
            &mut stop_rx,
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(StartFailure::Config(message)) => {
                // Configuration problems (missing Secret, …) are retried without counting as restarts.
                shared.update_container(init, index, |c| {
                    c.phase = ContainerPhase::Waiting {
                        reason: "CreateContainerConfigError".into(),
                        message: Some(message.clone()),
                    };
                });
                warn!(pod = %pod_label, container = %container.name, %message, "cannot create container");
                if config_errors.is_multiple_of(30) {
                    shared.event(true, "Failed", format!("Error: {message}"));
                }
                config_errors += 1;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop_rx.changed() => return None,
                }
                continue;
            }
        };
        has_run = true;
        let ran = outcome
            .terminated
            .started_at
            .map(|s| Timestamp::now().duration_since(s))
            .and_then(|d| Duration::try_from(d).ok())
            .unwrap_or_default();
        consecutive_crashes = CrashLoopBackoff::next_count(consecutive_crashes, ran);
        let exit_code = outcome.terminated.exit_code;
        if outcome.stopped || !policy.restarts(exit_code) {
            shared.update_container(init, index, |c| {
                c.phase = ContainerPhase::Terminated(outcome.terminated.clone());
                c.ready = false;
            });
            return if outcome.stopped {
                None
            } else {
                Some(exit_code)
            };
        }
        shared.update_container(init, index, |c| {
            c.last_terminated = Some(outcome.terminated.clone());
            c.phase = ContainerPhase::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            };
            c.ready = false;
        });
    }
}

enum StartFailure {
    /// The environment or mounts cannot be built: retried.
    Config(String),
}

/// Starts the process once and waits for it to end (or be stopped).
async fn start_once(
    shared: &Arc<Shared>,
    init: bool,
    index: usize,
    container: &Container,
    entrypoint: &Path,
    restart: bool,
    stop_rx: &mut watch::Receiver<Option<StopReason>>,
) -> Result<RunOutcome, StartFailure> {
    let pod = shared
        .pod()
        .ok_or_else(|| StartFailure::Config("the pod is gone".into()))?;
    let pod_label = format!("{}/{}", shared.namespace, shared.name);
    let objects: ObjectSnapshot = shared.ctx.objects.snapshot(&pod).await;
    let env = resolve_env(
        &pod,
        container,
        &shared.info(),
        base_env(&shared.name, &shared.ctx.api_server),
        &objects,
    )
    .map_err(|e| StartFailure::Config(e.to_string()))?;

    let attempt = shared
        .snapshot()
        .and_then(|r| {
            let list = if init {
                r.init_containers
            } else {
                r.containers
            };
            list.get(index)
                .map(|c| c.restart_count + i32::from(restart))
        })
        .unwrap_or(0);
    let container_id = format!("ferry://{}/{}/{attempt}", shared.uid, container.name);
    let container_dir = shared.dir.join("containers").join(&container.name);
    let log = shared
        .dir
        .join("logs")
        .join(format!("{}-{attempt}.log", container.name));
    let termination_file = container_dir.join("termination-log");
    let (uid, gid, groups) = identity(&pod, container);
    let prepared = (|| -> Result<(), String> {
        for dir in [&container_dir, &shared.dir.join("logs")] {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::set_permissions(&shared.dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        std::fs::write(&termination_file, b"")
            .map_err(|e| format!("cannot create {}: {e}", termination_file.display()))?;
        std::fs::set_permissions(&termination_file, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| e.to_string())?;
        if let Some(uid) = uid {
            std::os::unix::fs::chown(&termination_file, Some(uid), gid)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })();
    prepared.map_err(StartFailure::Config)?;
    let mounts = container_mounts(shared, &pod, container, &termination_file)
        .map_err(StartFailure::Config)?;
    let working_dir = container
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| shared.dir.clone());
    let read_only_root = container
        .security_context
        .as_ref()
        .and_then(|s| s.read_only_root_filesystem)
        .unwrap_or(false);

    let started_at = Timestamp::now();
    let start_error = |message: String| RunOutcome {
        terminated: Terminated {
            exit_code: 128,
            signal: None,
            reason: "StartError".into(),
            message: Some(message),
            started_at: None,
            finished_at: Timestamp::now(),
            container_id: Some(container_id.clone()),
        },
        stopped: false,
    };
    let command = match command_line(entrypoint, container, &env, is_executable) {
        Ok(command) => command,
        Err(error) => return Ok(start_error(error.to_string())),
    };
    let sandbox = prepare_mount_points(&mounts).and_then(|()| {
        Sandbox::new(SandboxSpec {
            mounts: mounts.clone(),
            read_only_root,
            working_dir: working_dir.clone(),
            uid,
            gid,
            groups: groups.clone(),
            join_namespace_of: None,
        })
    });
    let sandbox = match sandbox {
        Ok(sandbox) => sandbox,
        Err(error) => return Ok(start_error(error.to_string())),
    };
    let mut child = match process::spawn(&command, &env, &log, sandbox) {
        Ok(child) => child,
        Err(error) => {
            let detail = process::log_tail(&log, 5, 2048);
            let message = if detail.is_empty() {
                format!("cannot start {}: {error}", command.program.display())
            } else {
                format!(
                    "cannot start {}: {error}: {detail}",
                    command.program.display()
                )
            };
            warn!(pod = %pod_label, container = %container.name, %message, "container failed to start");
            shared.event(true, "Failed", format!("Error: {message}"));
            return Ok(start_error(message));
        }
    };
    let pid = child.id().unwrap_or_default();
    info!(pod = %pod_label, container = %container.name, pid, program = %command.program.display(), log = %log.display(), "container started");
    shared.event(
        false,
        "Started",
        format!(
            "Started container {} (pid {pid}, log {})",
            container.name,
            log.display()
        ),
    );
    let has_startup_probe = container.startup_probe.is_some();
    let has_readiness_probe = container.readiness_probe.is_some();
    shared.update_container(init, index, |c| {
        c.phase = ContainerPhase::Running { started_at };
        c.container_id = Some(container_id.clone());
        if restart {
            c.restart_count = attempt;
        }
        c.started = !has_startup_probe;
        c.ready = !has_startup_probe && !has_readiness_probe && !init;
    });

    // Probes run while the process lives.
    let (liveness_tx, mut liveness_rx) = mpsc::channel::<String>(1);
    let probes = if init {
        None
    } else {
        Some(tokio::spawn(run_probes(
            shared.clone(),
            index,
            container.clone(),
            pid,
            env.clone(),
            uid,
            gid,
            groups,
            liveness_tx,
        )))
    };
    let termination_grace = Duration::from_secs(
        pod.spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0) as u64,
    );
    let mut killed_by_liveness: Option<String> = None;
    let mut stopped = false;
    let status = tokio::select! {
        status = child.wait() => status,
        reason = stop_rx.changed() => {
            stopped = true;
            let grace = match (reason, *stop_rx.borrow()) {
                (Ok(()), Some(reason)) => reason.grace(),
                _ => Duration::ZERO,
            };
            info!(pod = %pod_label, container = %container.name, pid, grace_seconds = grace.as_secs(), "stopping container (SIGTERM)");
            shared.event(false, "Killing", format!("Stopping container {}", container.name));
            process::stop(&mut child, grace).await
        }
        Some(message) = liveness_rx.recv() => {
            info!(pod = %pod_label, container = %container.name, pid, %message, "liveness probe failed; restarting container");
            shared.event(false, "Killing", format!("Container {} failed liveness probe, will be restarted", container.name));
            killed_by_liveness = Some(message);
            process::stop(&mut child, termination_grace).await
        }
    };
    if let Some(probes) = probes {
        probes.abort();
    }
    // Nothing of the container may outlive its main process.
    process::signal_group(pid, libc::SIGKILL);
    let finished_at = Timestamp::now();
    let (exit_code, signal) = match status {
        Ok(status) => process::exit_code(status),
        Err(error) => {
            warn!(pod = %pod_label, container = %container.name, pid, %error, "waiting for the container failed");
            (137, None)
        }
    };
    let mut message = std::fs::read(&termination_file)
        .map(|bytes| {
            let bytes = &bytes[..bytes.len().min(MAX_TERMINATION_MESSAGE)];
            String::from_utf8_lossy(bytes).into_owned()
        })
        .unwrap_or_default();
    let fallback = container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
    if message.trim().is_empty() && fallback && exit_code != 0 {
        message = process::log_tail(&log, FALLBACK_LOG_LINES, 2048);
    }
    if let Some(probe_message) = &killed_by_liveness {
        message = if message.is_empty() {
            format!(
                "Container {} failed liveness probe, will be restarted: {probe_message}",
                container.name
            )
        } else {
            message
        };
    }
    info!(pod = %pod_label, container = %container.name, pid, exit_code, "container exited");
    Ok(RunOutcome {
        terminated: Terminated {
            exit_code,
            signal,
            reason: Terminated::reason_for(exit_code).into(),
            message: Some(message).filter(|m| !m.is_empty()),
            started_at: Some(started_at),
            finished_at,
            container_id: Some(container_id),
        },
        stopped,
    })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs the startup, readiness and liveness probes of a running container.
#[allow(clippy::too_many_arguments)]
async fn run_probes(
    shared: Arc<Shared>,
    index: usize,
    container: Container,
    pid: u32,
    env: Vec<(String, String)>,
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Vec<u32>,
    liveness_tx: mpsc::Sender<String>,
) {
    let exec = ExecContext {
        pid,
        env,
        uid,
        gid,
        groups,
        dir: shared.dir.clone(),
    };
    if let Some(probe) = &container.startup_probe {
        let timing = ProbeTiming::of(probe);
        let mut state = ProbeState::new(ProbeTiming {
            success_threshold: 1,
            ..timing
        });
        tokio::time::sleep(timing.initial_delay).await;
        loop {
            let result = probe_once(&shared, &container, probe, &exec, timing.timeout).await;
            match state.observe(result.is_ok()) {
                ProbeResult::Success => break,
                ProbeResult::Failure => {
                    let _ = liveness_tx
                        .send(format!(
                            "Startup probe failed: {}",
                            result.err().unwrap_or_default()
                        ))
                        .await;
                    return;
                }
                ProbeResult::Unknown => {}
            }
            tokio::time::sleep(timing.period).await;
        }
    }
    shared.update_container(false, index, |c| {
        c.started = true;
        if container.readiness_probe.is_none() {
            c.ready = true;
        }
    });
    let readiness = container.readiness_probe.clone().map(|probe| {
        let shared = shared.clone();
        let container = container.clone();
        let exec = exec.clone();
        tokio::spawn(async move {
            let timing = ProbeTiming::of(&probe);
            let mut state = ProbeState::new(timing);
            tokio::time::sleep(timing.initial_delay).await;
            loop {
                let result = probe_once(&shared, &container, &probe, &exec, timing.timeout).await;
                let before = state.result();
                let ready = state.observe(result.is_ok()) == ProbeResult::Success;
                if let Err(message) = &result {
                    if before != ProbeResult::Failure && state.result() == ProbeResult::Failure {
                        shared.event(
                            true,
                            "Unhealthy",
                            format!("Readiness probe failed: {message}"),
                        );
                    }
                }
                shared.update_container(false, index, |c| c.ready = ready);
                tokio::time::sleep(timing.period).await;
            }
        })
    });
    let _guard = AbortOnDrop(readiness);
    if let Some(probe) = &container.liveness_probe {
        let timing = ProbeTiming::of(probe);
        let mut state = ProbeState::new(ProbeTiming {
            success_threshold: 1,
            ..timing
        });
        tokio::time::sleep(timing.initial_delay).await;
        loop {
            let result = probe_once(&shared, &container, probe, &exec, timing.timeout).await;
            if state.observe(result.is_ok()) == ProbeResult::Failure {
                shared.event(
                    true,
                    "Unhealthy",
                    format!(
                        "Liveness probe failed: {}",
                        result.clone().err().unwrap_or_default()
                    ),
                );
                let _ = liveness_tx
                    .send(format!(
                        "Liveness probe failed: {}",
                        result.err().unwrap_or_default()
                    ))
                    .await;
                return;
            }
            tokio::time::sleep(timing.period).await;
        }
    } else {
        std::future::pending::<()>().await;
    }
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// What an `exec` probe needs to run inside the container.
#[derive(Clone)]
struct ExecContext {
    pid: u32,
    env: Vec<(String, String)>,
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Vec<u32>,
    dir: PathBuf,
}

/// Runs one probe.
async fn probe_once(
    shared: &Shared,
    container: &Container,
    probe: &Probe,
    exec: &ExecContext,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(action) = &probe.exec {
        let argv: Vec<String> = action.command.clone().unwrap_or_default();
        let Some(first) = argv.first() else {
            return Err("exec probe has an empty command".into());
        };
        let path = exec
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map_or(super::env::DEFAULT_PATH, |(_, v)| v.as_str());
        let program = if first.contains('/') {
            PathBuf::from(first)
        } else {
            path.split(':')
                .map(|d| Path::new(d).join(first))
                .find(|p| is_executable(p))
                .ok_or_else(|| format!("exec: {first:?}: executable file not found in $PATH"))?
        };
        let sandbox = Sandbox::new(SandboxSpec {
            mounts: Vec::new(),
            read_only_root: false,
            working_dir: PathBuf::from("/"),
            uid: exec.uid,
            gid: exec.gid,
            groups: exec.groups.clone(),
            join_namespace_of: Some(exec.pid),
        })
        .map_err(|e| e.to_string())?;
        let log = exec
            .dir
            .join("logs")
            .join(format!("{}-probe.log", container.name));
        let command = super::env::CommandLine { program, argv };
        let started = Instant::now();
        let mut child = process::spawn(&command, &exec.env, &log, sandbox)
            .map_err(|e| format!("exec probe failed to start: {e}"))?;
        return match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!(
                "command {:?} exited with {}",
                command.argv,
                process::exit_code(status).0
            )),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => {
                let _ = process::stop(&mut child, Duration::ZERO).await;
                Err(format!(
                    "command {:?} timed out after {:?}",
                    command.argv,
                    started.elapsed()
                ))
            }
        };
    }
    let target = ProbeTarget {
        pod_ip: &shared.pod_ip,
        container,
    };
    run_network_probe(probe, &target, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).expect("pod")
    }

    #[test]
    fn adoption_decisions() {
        let fresh = pod("metadata: {name: p}\nspec: {containers: [{name: c}]}\n");
        assert_eq!(adoption(&fresh), Adoption::Fresh);
        let running = |policy: &str| {
            pod(&format!(
                "metadata: {{name: p}}\nspec: {{restartPolicy: {policy}, containers: [{{name: c}}]}}\nstatus:\n  phase: Running\n  containerStatuses:\n  - {{name: c, image: x, imageID: y, ready: true, restartCount: 0, state: {{running: {{startedAt: '2026-11-22T01:00:00Z'}}}}}}\n"
            ))
        };
        assert_eq!(adoption(&running("Always")), Adoption::Restart);
        assert_eq!(adoption(&running("OnFailure")), Adoption::Restart);
        assert_eq!(adoption(&running("Never")), Adoption::FailNever);
        let done = pod(
            "metadata: {name: p}\nspec: {containers: [{name: c}]}\nstatus: {phase: Succeeded}\n",
        );
        assert_eq!(adoption(&done), Adoption::Terminal);
    }

    #[test]
    fn restarted_kubelet_carries_restart_counts_and_reports_the_restart() {
        let p = pod(r#"
metadata: {name: p, uid: u1}
spec:
  restartPolicy: OnFailure
  initContainers: [{name: setup, image: ferry/test-shell}]
  containers: [{name: main, image: ferry/runner:1}, {name: done, image: ferry/runner:1}]
status:
  phase: Running
  startTime: '2026-11-22T01:00:00Z'
  initContainerStatuses:
  - {name: setup, image: x, imageID: y, ready: false, restartCount: 0, state: {terminated: {exitCode: 0, reason: Completed}}}
  containerStatuses:
  - {name: main, image: x, imageID: y, ready: true, restartCount: 3, containerID: 'ferry://u1/main/3', state: {running: {startedAt: '2026-11-22T01:00:05Z'}}}
  - {name: done, image: x, imageID: y, ready: false, restartCount: 0, state: {terminated: {exitCode: 0, reason: Completed}}}
"#);
        let images = ImageTable::parse(["ferry/runner=/bin/true", "ferry/test-shell=/bin/sh"])
            .expect("images");
        let record = initial_record(
            &images,
            "127.0.0.1",
            &p,
            "127.0.1.9",
            RestartPolicy::OnFailure,
            &adoption(&p),
        );
        assert_eq!(adoption(&p), Adoption::Restart);
        assert!(
            matches!(&record.init_containers[0].phase, ContainerPhase::Terminated(t) if t.exit_code == 0)
        );
        let main = &record.containers[0];
        assert_eq!(main.restart_count, 3);
        assert_eq!(main.image_id, "ferry-local:///bin/true");
        let last = main.last_terminated.clone().expect("lastState");
        assert_eq!(last.reason, "NodeRestarted");
        assert_eq!(last.container_id.as_deref(), Some("ferry://u1/main/3"));
        assert!(matches!(main.phase, ContainerPhase::Waiting { .. }));
        // A container that completed under OnFailure stays completed.
        assert!(
            matches!(&record.containers[1].phase, ContainerPhase::Terminated(t) if t.exit_code == 0)
        );
        assert_eq!(record.failure, None);

        let never = initial_record(
            &images,
            "127.0.0.1",
            &p,
            "127.0.1.9",
            RestartPolicy::Never,
            &Adoption::FailNever,
        );
        assert_eq!(
            never.failure.as_ref().map(|f| f.0.as_str()),
            Some("NodeRestarted")
        );
        assert_eq!(super::super::status::pod_phase(&never), "Failed");
    }

    #[test]
    fn identity_prefers_the_container_context() {
        let p = pod(
            "metadata: {name: p}\nspec:\n  securityContext: {runAsUser: 1000, runAsGroup: 1000, fsGroup: 2000, supplementalGroups: [3000]}\n  containers:\n  - {name: a}\n  - {name: b, securityContext: {runAsUser: 65532}}\n",
        );
        let containers = p.spec.clone().map(|s| s.containers).unwrap_or_default();
        assert_eq!(
            identity(&p, &containers[0]),
            (Some(1000), Some(1000), vec![3000, 2000])
        );
        assert_eq!(
            identity(&p, &containers[1]),
            (Some(65532), Some(1000), vec![3000, 2000])
        );
        assert_eq!(pod_owner(&p), Some((1000, 2000)));
    }
}

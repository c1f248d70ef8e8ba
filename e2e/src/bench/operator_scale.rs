//! The operator at scale: many `KafkaConnector` resources on one operator, their task pods
//! faked by KWOK on a tainted fake node (so nothing runs and no other pod lands there).
//! Measures apply → task pod Running and apply → connector reporting its task ready, the
//! operator's CPU and memory, and checks that adding and removing one connector leaves every
//! other connector's pods and ConfigMaps untouched (same UID, same resourceVersion).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};

use super::error::BenchError;
use super::process::Measured;
use super::procfs::{usage_of, Usage};
use super::systems::free_port;
use crate::harness::{random_suffix, Stack, TestNamespace};

/// Label and taint key of the fake node; the value is `fake`.
pub const KWOK_KEY: &str = "kwok.x-k8s.io/node";
/// Field manager of the benchmark's own writes (a user's `kubectl apply --server-side`).
pub const MANAGER: &str = "ferry-bench";
/// Label the operator puts on everything it creates.
const MANAGED_BY: &str = "app.kubernetes.io/managed-by=ferry-operator";

/// What to run.
#[derive(Clone, Debug)]
pub struct ScaleOptions {
    /// Connectors to apply.
    pub connectors: usize,
    /// The release `ferry-operator`.
    pub operator: PathBuf,
    /// The KWOK binary.
    pub kwok: PathBuf,
    /// KWOK stage files (node and pod lifecycles).
    pub kwok_stages: Vec<PathBuf>,
    /// Scratch directory for logs.
    pub dir: PathBuf,
    /// Operator `--concurrency`.
    pub concurrency: u16,
    /// Operator `--resync-seconds`.
    pub resync_seconds: u64,
    /// Longest wait for all tasks to run.
    pub timeout: Duration,
    /// Seconds to watch the idle operator (CPU while nothing changes).
    pub idle_seconds: u64,
}

/// What was measured.
#[derive(Clone, Debug)]
pub struct ScaleResult {
    /// Connectors applied.
    pub connectors: usize,
    /// Seconds the apply loop took (one server-side apply after the other).
    pub apply_seconds: f64,
    /// Per connector: seconds from its apply to its task pod seen Running.
    pub to_pod_running: Vec<f64>,
    /// Per connector: seconds from its apply to `status.tasks.ready == 1`.
    pub to_connector_ready: Vec<f64>,
    /// Seconds from the first apply to the last connector ready (of those that got there).
    pub all_ready_seconds: f64,
    /// Operator CPU seconds from the first apply to the last connector ready.
    pub operator_cpu_seconds_converge: f64,
    /// Operator CPU seconds while idle for [`ScaleOptions::idle_seconds`].
    pub operator_cpu_seconds_idle: f64,
    /// Idle window, seconds.
    pub idle_seconds: f64,
    /// Operator's whole-life CPU and peak RSS.
    pub operator_usage: Usage,
    /// Pods and ConfigMaps of the other connectors compared before and after adding and
    /// removing one connector.
    pub objects_compared: usize,
    /// How many of those changed (UID or resourceVersion), with their names.
    pub objects_changed: Vec<String>,
    /// Seconds from applying the added connector to its pod Running.
    pub added_to_running: f64,
    /// Whether every connector reported its task ready within the timeout.
    pub converged: bool,
    /// The timeout of the convergence wait, seconds.
    pub timeout_seconds: f64,
}

fn connector_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("ferry.rs", "v1alpha1", "KafkaConnector"),
        "kafkaconnectors",
    )
}

/// The `KafkaConnector` of the scale test: a `discard` sink of one task, its pod bound to
/// the fake node by a node selector and a toleration of its taint.
pub fn scale_connector(
    name: &str,
    namespace: &str,
    bootstrap: &str,
    topic: &str,
) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "ferry.rs/v1alpha1",
        "kind": "KafkaConnector",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "kafka": {"bootstrapServers": bootstrap},
            "sink": {"topics": [topic], "discard": {}},
            "tasks": 1,
            "template": {"pod": {
                "nodeSelector": {"type": "kwok"},
                "tolerations": [{"key": KWOK_KEY, "operator": "Exists", "effect": "NoSchedule"}],
            }},
        },
    })
}

/// The fake node: KWOK manages it (annotation), connectors select it (label), and its taint
/// keeps every other pod of the cluster away.
pub fn fake_node(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_KEY: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/role": "agent"},
        },
        "spec": {"taints": [{"key": KWOK_KEY, "value": "fake", "effect": "NoSchedule"}]},
    })
}

fn connector_name(i: usize) -> String {
    format!("scale-{i:05}")
}

/// `(uid, resourceVersion)` of every object, by name.
type Versions = BTreeMap<String, (String, String)>;

async fn versions(client: &Client, namespace: &str) -> Result<Versions, BenchError> {
    let lp = ListParams::default().labels(MANAGED_BY);
    let mut out = Versions::new();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for p in pods
        .list(&lp)
        .await
        .map_err(BenchError::kube(format!("listing pods of {namespace}")))?
    {
        let m = p.metadata;
        out.insert(
            format!("pod/{}", m.name.unwrap_or_default()),
            (
                m.uid.unwrap_or_default(),
                m.resource_version.unwrap_or_default(),
            ),
        );
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for c in cms.list(&lp).await.map_err(BenchError::kube(format!(
        "listing ConfigMaps of {namespace}"
    )))? {
        let m = c.metadata;
        out.insert(
            format!("configmap/{}", m.name.unwrap_or_default()),
            (
                m.uid.unwrap_or_default(),
                m.resource_version.unwrap_or_default(),
            ),
        );
    }
    Ok(out)
}

/// The `p`-th percentile (nearest rank) of `total` samples of which only `reached` are
/// known (the rest did not happen within `timeout` seconds): a rank beyond the known
/// samples reads `> timeout`.
pub fn censored_percentile(reached: &[f64], total: usize, p: f64, timeout: f64) -> String {
    let mut v: Vec<f64> = reached.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    if total == 0 {
        return "–".to_string();
    }
    let rank = ((p / 100.0) * total as f64).ceil().clamp(1.0, total as f64) as usize;
    match v.get(rank - 1) {
        Some(x) => format!("{x:.2}"),
        None => format!("> {timeout:.0}"),
    }
}

/// Names of objects present in both snapshots whose UID or resourceVersion differ, and the
/// number compared. Objects of `skip` (the connector added or removed) are left out.
pub fn changed_objects(before: &Versions, after: &Versions, skip: &[&str]) -> (usize, Vec<String>) {
    let mut compared = 0;
    let mut changed = Vec::new();
    for (name, v) in before {
        if skip.iter().any(|s| name.contains(s)) {
            continue;
        }
        compared += 1;
        match after.get(name) {
            Some(a) if a == v => {}
            Some(_) => changed.push(format!("{name} (changed)")),
            None => changed.push(format!("{name} (gone)")),
        }
    }
    for name in after.keys() {
        if !before.contains_key(name) && !skip.iter().any(|s| name.contains(s)) {
            changed.push(format!("{name} (new)"));
        }
    }
    (compared, changed)
}

/// Times (since the benchmark's epoch) at which each connector's task pod was first seen
/// Running, and each connector first reported one ready task.
#[derive(Default)]
struct Seen {
    pod_running: BTreeMap<String, Instant>,
    ready: BTreeMap<String, Instant>,
}

fn spawn_watchers(
    client: &Client,
    namespace: &str,
    seen: Arc<Mutex<Seen>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let seen_pods = seen.clone();
    let pod_watch = tokio::spawn(async move {
        let stream = watcher(pods, watcher::Config::default().labels(MANAGED_BY))
            .default_backoff()
            .applied_objects();
        let mut stream = std::pin::pin!(stream);
        loop {
            let pod = match stream.try_next().await {
                Ok(Some(pod)) => pod,
                Ok(None) => break,
                Err(_) => continue,
            };
            let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            let connector = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("ferry.rs/connector").cloned());
            if let (true, Some(c)) = (running, connector) {
                if let Ok(mut s) = seen_pods.lock() {
                    s.pod_running.entry(c).or_insert_with(Instant::now);
                }
            }
        }
    });
    let connectors: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &connector_resource());
    let connector_watch = tokio::spawn(async move {
        let stream = watcher(connectors, watcher::Config::default())
            .default_backoff()
            .applied_objects();
        let mut stream = std::pin::pin!(stream);
        loop {
            let c = match stream.try_next().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(_) => continue,
            };
            let ready = c.data["status"]["tasks"]["ready"].as_i64().unwrap_or(0);
            if let (true, Some(name)) = (ready >= 1, c.metadata.name.clone()) {
                if let Ok(mut s) = seen.lock() {
                    s.ready.entry(name).or_insert_with(Instant::now);
                }
            }
        }
    });
    vec![pod_watch, connector_watch]
}

async fn apply_connector(
    api: &Api<DynamicObject>,
    value: serde_json::Value,
) -> Result<(), BenchError> {
    let name = value["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let object: DynamicObject = serde_json::from_value(value)
        .map_err(|e| BenchError::Check(format!("connector {name} is not an object: {e}")))?;
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .map_err(BenchError::kube(format!("applying KafkaConnector {name}")))?;
    Ok(())
}

async fn wait_until<F: Fn(&Seen) -> bool>(
    seen: &Arc<Mutex<Seen>>,
    what: &str,
    timeout: Duration,
    f: F,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + timeout;
    loop {
        if seen.lock().map(|s| f(&s)).unwrap_or(false) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout {
                what: what.to_string(),
                timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn start_kwok(stack: &Stack, options: &ScaleOptions, node: &str) -> Result<Measured, BenchError> {
    let mut command = Command::new(&options.kwok);
    command
        .arg("--kubeconfig")
        .arg(&stack.kubeconfig)
        .arg("--manage-nodes-with-annotation-selector")
        .arg(format!("{KWOK_KEY}=fake"))
        // Pod IPs on loopback where nothing listens: the operator's progress reads are
        // refused at once instead of timing out against unroutable addresses.
        .args(["--cidr", "127.64.0.0/16", "--node-ip", "127.0.0.1"])
        .args(["--node-lease-duration-seconds", "40"])
        .args(["--server-address", &format!("127.0.0.1:{}", free_port()?)]);
    for stage in &options.kwok_stages {
        command.arg("--config").arg(stage);
    }
    let _ = node;
    Measured::spawn("kwok", &mut command, &options.dir.join("kwok.log"))
}

fn start_operator(
    stack: &Stack,
    options: &ScaleOptions,
    namespace: &str,
) -> Result<Measured, BenchError> {
    let mut command = Command::new(&options.operator);
    command
        .env("KUBECONFIG", &stack.kubeconfig)
        .env("RUST_LOG", "info,kube=warn")
        .args(["--namespace", namespace, "--leader-election", "false"])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port()?)])
        .args(["--concurrency", &options.concurrency.to_string()])
        .args(["--resync-seconds", &options.resync_seconds.to_string()]);
    Measured::spawn(
        "ferry-operator",
        &mut command,
        &options.dir.join("operator.log"),
    )
}

/// Runs the scale benchmark; everything it creates (namespace, fake node, KWOK, the
/// operator) is removed before it returns, whatever the outcome.
pub async fn run(stack: &Stack, options: &ScaleOptions) -> Result<ScaleResult, BenchError> {
    let client = stack.client().await?;
    let ns = TestNamespace::create(&client, "bench-scale").await?;
    let node = format!("ferry-kwok-{}", random_suffix(5));
    let nodes: Api<Node> = Api::all(client.clone());
    let node_object: Node = serde_json::from_value(fake_node(&node))
        .map_err(|e| BenchError::Check(format!("fake node: {e}")))?;
    let outcome = async {
        nodes
            .create(&PostParams::default(), &node_object)
            .await
            .map_err(BenchError::kube(format!("creating the fake node {node}")))?;
        let kwok = start_kwok(stack, options, &node)?;
        let operator = start_operator(stack, options, &ns.name)?;
        let result = measure(stack, &client, &ns.name, &node, options, operator).await;
        // Pods go with the namespace; KWOK finishes their deletion, so it stays until then.
        Ok::<_, BenchError>((result, kwok))
    }
    .await;
    let cleanup = ns.cleanup().await;
    let (result, kwok) = match outcome {
        Ok((result, kwok)) => (result, Some(kwok)),
        Err(e) => (Err(e), None),
    };
    if let Some(kwok) = kwok {
        let _ = kwok.stop();
    }
    let _ = nodes.delete(&node, &DeleteParams::default()).await;
    let result = result?;
    cleanup?;
    Ok(result)
}

async fn measure(
    stack: &Stack,
    client: &Client,
    namespace: &str,
    node: &str,
    options: &ScaleOptions,
    operator: Measured,
) -> Result<ScaleResult, BenchError> {
    // The node must be Ready before pods can be scheduled on it.
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = nodes
            .get(node)
            .await
            .ok()
            .and_then(|n| n.status?.conditions)
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready {
            break;
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout {
                what: format!(
                    "KWOK to make node {node} Ready (log: {})",
                    options.dir.join("kwok.log").display()
                ),
                timeout: Duration::from_secs(60),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watchers = spawn_watchers(client, namespace, seen.clone());
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &connector_resource());
    let topic = format!("ferry-bench-scale-{}", random_suffix(6));
    let pid = operator.pid();
    let cpu_before = usage_of(pid).map(|u| u.cpu_seconds).unwrap_or(0.0);

    let start = Instant::now();
    let mut applied: BTreeMap<String, Instant> = BTreeMap::new();
    for i in 0..options.connectors {
        let name = connector_name(i);
        applied.insert(name.clone(), Instant::now());
        apply_connector(
            &api,
            scale_connector(&name, namespace, &stack.kafka_bootstrap, &topic),
        )
        .await?;
    }
    let apply_seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "applied {} connectors in {apply_seconds:.1} s; waiting for their tasks ...",
        options.connectors
    );
    let n = options.connectors;
    let mut process = operator;
    let waited = wait_until(
        &seen,
        &format!("{n} connectors to report their task ready"),
        options.timeout,
        |s| s.ready.len() >= n && s.pod_running.len() >= n,
    )
    .await;
    process.check_running(0, 0)?;
    // A timeout is a result too: the table shows how many got there, and the percentiles
    // beyond that count as "more than the timeout".
    let converged = match waited {
        Ok(()) => true,
        Err(BenchError::Timeout { .. }) => {
            eprintln!(
                "not every connector converged within {:?}; operator log: {}",
                options.timeout,
                process.log().display()
            );
            false
        }
        Err(e) => return Err(e),
    };
    let all_ready = seen
        .lock()
        .ok()
        .and_then(|s| s.ready.values().max().copied())
        .unwrap_or_else(Instant::now);
    let cpu_converged = usage_of(pid).map(|u| u.cpu_seconds).unwrap_or(0.0);

    // Idle: nothing changes; the operator still resyncs (progress reads every resync).
    eprintln!(
        "watching the idle operator for {} s ...",
        options.idle_seconds
    );
    let idle_start = Instant::now();
    tokio::time::sleep(Duration::from_secs(options.idle_seconds)).await;
    let idle_seconds = idle_start.elapsed().as_secs_f64();
    let cpu_idle_end = usage_of(pid).map(|u| u.cpu_seconds).unwrap_or(0.0);

    // Add one connector, then remove another; nothing else may change.
    let before = versions(client, namespace).await?;
    let added = connector_name(n);
    let removed = connector_name(0);
    let added_at = Instant::now();
    apply_connector(
        &api,
        scale_connector(&added, namespace, &stack.kafka_bootstrap, &topic),
    )
    .await?;
    let added_name = added.clone();
    wait_until(
        &seen,
        &format!("the added connector {added}"),
        Duration::from_secs(120),
        |s| s.pod_running.contains_key(&added_name),
    )
    .await?;
    let added_to_running = seen
        .lock()
        .ok()
        .and_then(|s| s.pod_running.get(&added).copied())
        .map(|t| t.duration_since(added_at).as_secs_f64())
        .unwrap_or(f64::NAN);
    api.delete(&removed, &DeleteParams::default())
        .await
        .map_err(BenchError::kube(format!(
            "deleting KafkaConnector {removed}"
        )))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let gone_deadline = Instant::now() + Duration::from_secs(120);
    while pods
        .get_opt(&format!("{removed}-task-0"))
        .await
        .map_err(BenchError::kube(format!("reading pod {removed}-task-0")))?
        .is_some()
    {
        if Instant::now() > gone_deadline {
            return Err(BenchError::Timeout {
                what: format!("the pod of the removed connector {removed} to go"),
                timeout: Duration::from_secs(120),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let at least one resync pass over every connector before comparing.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let after = versions(client, namespace).await?;
    let (objects_compared, objects_changed) = changed_objects(
        &before,
        &after,
        &[&format!("{added}-"), &format!("{removed}-")],
    );
    for w in watchers {
        w.abort();
    }
    let operator_usage = process.stop()?;

    let s = seen
        .lock()
        .map_err(|_| BenchError::Check("the watchers panicked".into()))?;
    let since = |m: &BTreeMap<String, Instant>| -> Vec<f64> {
        applied
            .iter()
            .filter_map(|(name, at)| m.get(name).map(|t| t.duration_since(*at).as_secs_f64()))
            .collect()
    };
    Ok(ScaleResult {
        connectors: n,
        apply_seconds,
        to_pod_running: since(&s.pod_running),
        to_connector_ready: since(&s.ready),
        all_ready_seconds: all_ready.duration_since(start).as_secs_f64(),
        operator_cpu_seconds_converge: cpu_converged - cpu_before,
        operator_cpu_seconds_idle: cpu_idle_end - cpu_converged,
        idle_seconds,
        operator_usage,
        objects_compared,
        objects_changed,
        added_to_running,
        converged,
        timeout_seconds: options.timeout.as_secs_f64(),
    })
}

/// KWOK's stage files in `dir` (`*.yaml`), sorted.
pub fn stage_files(dir: &Path) -> Result<Vec<PathBuf>, BenchError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(BenchError::io(format!(
            "cannot list the KWOK stages in {}",
            dir.display()
        )))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(BenchError::Check(format!(
            "no KWOK stage files in {}",
            dir.display()
        )));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(pairs: &[(&str, &str, &str)]) -> Versions {
        pairs
            .iter()
            .map(|(n, u, r)| (n.to_string(), (u.to_string(), r.to_string())))
            .collect()
    }

    #[test]
    fn unchanged_objects_pass_and_the_touched_connector_is_skipped() {
        let before = v(&[
            ("pod/a-task-0", "u1", "10"),
            ("pod/b-task-0", "u2", "11"),
            ("configmap/b-task-config", "u3", "12"),
        ]);
        let after = v(&[
            ("pod/b-task-0", "u2", "11"),
            ("configmap/b-task-config", "u3", "12"),
            ("pod/c-task-0", "u4", "20"),
        ]);
        assert_eq!(changed_objects(&before, &after, &["a-", "c-"]), (2, vec![]));
    }

    #[test]
    fn a_new_resource_version_a_new_uid_or_a_missing_object_is_a_change() {
        let before = v(&[
            ("pod/a-task-0", "u1", "10"),
            ("pod/b-task-0", "u2", "11"),
            ("pod/d-task-0", "u5", "13"),
        ]);
        let after = v(&[
            ("pod/a-task-0", "u1", "15"),
            ("pod/b-task-0", "u9", "11"),
            ("pod/e-task-0", "u6", "1"),
        ]);
        let (compared, changed) = changed_objects(&before, &after, &[]);
        assert_eq!(compared, 3);
        assert_eq!(
            changed,
            vec![
                "pod/a-task-0 (changed)",
                "pod/b-task-0 (changed)",
                "pod/d-task-0 (gone)",
                "pod/e-task-0 (new)"
            ]
        );
    }

    #[test]
    fn percentiles_of_samples_that_did_not_all_arrive() {
        let v: Vec<f64> = (1..=90).map(f64::from).collect();
        assert_eq!(censored_percentile(&v, 100, 50.0, 600.0), "50.00");
        assert_eq!(censored_percentile(&v, 100, 90.0, 600.0), "90.00");
        assert_eq!(censored_percentile(&v, 100, 95.0, 600.0), "> 600");
        assert_eq!(censored_percentile(&v, 90, 100.0, 600.0), "90.00");
        assert_eq!(censored_percentile(&[], 0, 50.0, 600.0), "–");
    }

    #[test]
    fn the_scale_connector_selects_and_tolerates_the_fake_node() {
        let c = scale_connector("scale-00001", "ns", "k:9092", "t");
        assert_eq!(c["spec"]["sink"]["discard"], serde_json::json!({}));
        assert_eq!(c["spec"]["template"]["pod"]["nodeSelector"]["type"], "kwok");
        assert_eq!(
            c["spec"]["template"]["pod"]["tolerations"][0]["key"],
            KWOK_KEY
        );
        let node = fake_node("n");
        assert_eq!(node["metadata"]["labels"]["type"], "kwok");
        assert_eq!(node["spec"]["taints"][0]["key"], KWOK_KEY);
        assert_eq!(node["metadata"]["annotations"][KWOK_KEY], "fake");
    }
}

//! Failure timings through the operator on the local stack: a task's runner process is
//! killed with SIGKILL (or its pod is deleted), and the harness times how long until the
//! replacement task delivers records again. A producer keeps writing to the topic the whole
//! time, so "delivering" means `/progress` of the new pod reports records written out.
//!
//! Kafka Connect standalone has nothing to compare: a killed standalone worker stays dead
//! until something outside Kafka Connect starts it again.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

use super::error::BenchError;
use super::kafka;
use super::process::Measured;
use super::systems::{free_port, records_out};
use crate::harness::{random_suffix, Stack, TestNamespace};

/// How the task is ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// SIGKILL to the runner process (a crash, an OOM kill).
    Kill,
    /// The pod is deleted (an eviction, a drain, `kubectl delete pod`).
    DeletePod,
}

impl Failure {
    /// How the failure is named in tables.
    pub fn label(self) -> &'static str {
        match self {
            Failure::Kill => "runner process killed (SIGKILL)",
            Failure::DeletePod => "task pod deleted",
        }
    }
}

/// One measured failure.
#[derive(Clone, Debug)]
pub struct Recovery {
    /// What ended the task.
    pub failure: Failure,
    /// Seconds from the failure to the replacement pod existing.
    pub to_new_pod: f64,
    /// Seconds from the failure to the replacement pod Running.
    pub to_running: f64,
    /// Seconds from the failure to the replacement delivering records.
    pub to_delivering: f64,
}

fn connector_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("ferry.rs", "v1alpha1", "KafkaConnector"),
        "kafkaconnectors",
    )
}

/// The pid of the process whose environment holds `POD_NAME=<pod>` and
/// `FERRY_TASK_INDEX` (the runner of that task pod on the local kubelet).
pub fn runner_pid(pod: &str) -> Option<u32> {
    let wanted = format!("POD_NAME={pod}");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        let has = |v: &[u8]| vars.contains(&v);
        let has_prefix = |p: &[u8]| vars.iter().any(|x| x.starts_with(p));
        if has(wanted.as_bytes()) && has_prefix(b"FERRY_TASK_INDEX=") {
            return Some(pid);
        }
    }
    None
}

async fn task_pod(pods: &Api<Pod>, name: &str) -> Option<Pod> {
    pods.get_opt(&format!("{name}-task-0")).await.ok().flatten()
}

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

fn running_ip(p: &Pod) -> Option<String> {
    let s = p.status.as_ref()?;
    (s.phase.as_deref() == Some("Running"))
        .then(|| s.pod_ip.clone())
        .flatten()
}

/// Waits for the task pod of `name` other than `old_uid` to exist, to run, and to report
/// records written out; returns the three instants.
async fn wait_delivering(
    pods: &Api<Pod>,
    name: &str,
    old_uid: &str,
    timeout: Duration,
) -> Result<(Instant, Instant, Instant, String), BenchError> {
    let deadline = Instant::now() + timeout;
    let (mut created, mut running) = (None, None);
    loop {
        if let Some(p) = task_pod(pods, name).await.filter(|p| uid(p) != old_uid) {
            let now = Instant::now();
            created.get_or_insert(now);
            if let Some(ip) = running_ip(&p) {
                running.get_or_insert(now);
                let admin = format!("{ip}:8080");
                if records_out(&admin).is_some_and(|n| n > 0) {
                    let now = Instant::now();
                    return Ok((created.unwrap_or(now), running.unwrap_or(now), now, uid(&p)));
                }
            }
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout {
                what: format!("the task of {name} to deliver records"),
                timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Keeps writing small records to `topic` until `stop` is set.
fn start_producer(
    bootstrap: &str,
    topic: &str,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, BenchError> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .map_err(BenchError::kafka(format!(
            "cannot create a producer for {bootstrap}"
        )))?;
    let topic = topic.to_string();
    Ok(std::thread::spawn(move || {
        let mut i = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let value = kafka::json_record(i, 256);
            let _ = producer.send(BaseRecord::<(), String>::to(&topic).payload(&value));
            i += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = producer.flush(Duration::from_secs(10));
    }))
}

/// Measures `repetitions` recoveries from each kind of failure, each on a fresh connector
/// (so every failure is a task's first and the restart delay is `initialBackoffSeconds`,
/// 1 s by default). The operator (`operator`, a local process) watches only the benchmark's
/// namespace; everything is removed before returning.
pub async fn run(
    stack: &Stack,
    operator: &Path,
    dir: &Path,
    repetitions: u32,
) -> Result<Vec<Recovery>, BenchError> {
    let client = stack.client().await?;
    let ns = TestNamespace::create(&client, "bench-failover").await?;
    let stop = Arc::new(AtomicBool::new(false));
    let topic = format!("ferry-bench-failover-{}", random_suffix(6));
    let outcome = async {
        kafka::create_topic(&stack.kafka_bootstrap, &topic, 3).await?;
        let producer = start_producer(&stack.kafka_bootstrap, &topic, stop.clone())?;
        let mut command = Command::new(operator);
        command
            .env("KUBECONFIG", &stack.kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .args(["--namespace", &ns.name, "--leader-election", "false"])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port()?)]);
        let operator = Measured::spawn("ferry-operator", &mut command, &dir.join("operator.log"))?;
        let result = measure(stack, &client, &ns.name, &topic, repetitions).await;
        stop.store(true, Ordering::SeqCst);
        let _ = producer.join();
        drop(operator);
        result
    }
    .await;
    stop.store(true, Ordering::SeqCst);
    let cleanup = ns.cleanup().await;
    kafka::delete_topics(&stack.kafka_bootstrap, &[&topic]).await;
    let recoveries = outcome?;
    cleanup?;
    Ok(recoveries)
}

async fn measure(
    stack: &Stack,
    client: &Client,
    namespace: &str,
    topic: &str,
    repetitions: u32,
) -> Result<Vec<Recovery>, BenchError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &connector_resource());
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut out = Vec::new();
    for rep in 1..=repetitions {
        for failure in [Failure::Kill, Failure::DeletePod] {
            let name = format!("failover-{}", random_suffix(5));
            let value = serde_json::json!({
                "apiVersion": "ferry.rs/v1alpha1",
                "kind": "KafkaConnector",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "kafka": {"bootstrapServers": stack.kafka_bootstrap},
                    "sink": {"topics": [topic], "discard": {}},
                    "converters": {"key": {"byteArray": {}}, "value": {"byteArray": {}}},
                },
            });
            let object: DynamicObject = serde_json::from_value(value)
                .map_err(|e| BenchError::Check(format!("connector {name}: {e}")))?;
            api.patch(
                &name,
                &PatchParams::apply("ferry-bench").force(),
                &Patch::Apply(&object),
            )
            .await
            .map_err(BenchError::kube(format!("applying KafkaConnector {name}")))?;
            let (_, _, _, first_uid) =
                wait_delivering(&pods, &name, "", Duration::from_secs(120)).await?;
            eprintln!("failover: {}, run {rep} ...", failure.label());
            let pod = format!("{name}-task-0");
            let failed_at = match failure {
                Failure::Kill => {
                    let pid = runner_pid(&pod).ok_or_else(|| {
                        BenchError::Check(format!(
                            "cannot find the runner process of pod {namespace}/{pod}"
                        ))
                    })?;
                    let at = Instant::now();
                    // SAFETY: kill(2) with a pid read from /proc; no memory is involved.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                    at
                }
                Failure::DeletePod => {
                    let at = Instant::now();
                    pods.delete(&pod, &DeleteParams::default())
                        .await
                        .map_err(BenchError::kube(format!("deleting pod {pod}")))?;
                    at
                }
            };
            let (created, running, delivering, _) =
                wait_delivering(&pods, &name, &first_uid, Duration::from_secs(120)).await?;
            out.push(Recovery {
                failure,
                to_new_pod: created.duration_since(failed_at).as_secs_f64(),
                to_running: running.duration_since(failed_at).as_secs_f64(),
                to_delivering: delivering.duration_since(failed_at).as_secs_f64(),
            });
            let _ = api.delete(&name, &DeleteParams::default()).await;
        }
    }
    Ok(out)
}

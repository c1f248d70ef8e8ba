//! Shared by the operator end-to-end tests: applying the CRD, running
//! `target/debug/ferry-operator` as a local process for one test namespace, and reading
//! connectors and their task pods.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use ferry_crds::KafkaConnector;
use ferry_e2e::harness::{wait_for_named, Stack};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use tokio::process::{Child, Command};

/// Field manager of the tests' own writes (the user's, not the operator's).
pub const TEST_MANAGER: &str = "ferry-e2e-user";

/// Applies `crds/kafkaconnector.yaml` with server-side apply and waits until it is
/// Established.
pub async fn apply_crd(stack: &Stack, client: &Client) {
    let path = stack.repo_root.join("crds/kafkaconnector.yaml");
    let yaml = std::fs::read_to_string(&path).expect("read crds/kafkaconnector.yaml");
    let crd: CustomResourceDefinition = serde_yaml::from_str(&yaml).expect("parse the CRD");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().expect("CRD name");
    api.patch(
        &name,
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply the CRD");
    wait_for_named(
        "the KafkaConnector CRD to be Established",
        Duration::from_secs(30),
        || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let crd = api.get(&name).await.ok()?;
                crd.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            }
        },
    )
    .await
    .expect("CRD established");
}

/// A running operator process, killed on drop.
pub struct Operator {
    child: Child,
    /// Its log file.
    pub log: PathBuf,
}

impl Operator {
    /// Starts `target/debug/ferry-operator` for `namespace`, leader election off.
    pub fn start(stack: &Stack, namespace: &str) -> Operator {
        Self::start_with(stack, namespace, &["--leader-election", "false"])
    }

    /// Starts `target/debug/ferry-operator` for `namespace` with extra arguments.
    pub fn start_with(stack: &Stack, namespace: &str, extra: &[&str]) -> Operator {
        let binary = stack.repo_root.join("target/debug/ferry-operator");
        assert!(
            binary.exists(),
            "{} is missing: build it with `cargo build -p ferry-operator` (e2e/test does)",
            binary.display()
        );
        let log_dir = stack.repo_root.join("target/e2e-logs");
        std::fs::create_dir_all(&log_dir).expect("create target/e2e-logs");
        let log = log_dir.join(format!(
            "ferry-operator-{namespace}-{}-{}.log",
            ferry_e2e::harness::random_suffix(4),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        ));
        let out = std::fs::File::create(&log).expect("create the operator log");
        let err = out.try_clone().expect("clone the log handle");
        let child = Command::new(binary)
            .args([
                "--namespace",
                namespace,
                "--metrics-addr",
                "127.0.0.1:0",
                "--resync-seconds",
                "5",
                "--runner-image",
                "ferry/runner:e2e",
            ])
            .args(extra)
            .env("KUBECONFIG", &stack.kubeconfig)
            .env("RUST_LOG", "info,ferry_operator=debug,kube=warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .expect("start ferry-operator");
        eprintln!("operator for {namespace} logs to {}", log.display());
        Operator { child, log }
    }

    /// Kills the operator and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Applies a connector (as the user, server-side apply) from a YAML body (no apiVersion/kind
/// needed).
pub async fn apply_connector(client: &Client, namespace: &str, yaml: &str) -> KafkaConnector {
    let mut value: serde_json::Value = serde_yaml::from_str(yaml).expect("connector YAML");
    value["apiVersion"] = "ferry.rs/v1alpha1".into();
    value["kind"] = "KafkaConnector".into();
    value["metadata"]["namespace"] = namespace.into();
    let name = value["metadata"]["name"]
        .as_str()
        .expect("metadata.name")
        .to_string();
    let api: Api<KafkaConnector> = Api::namespaced(client.clone(), namespace);
    api.patch(
        &name,
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(&value),
    )
    .await
    .unwrap_or_else(|e| panic!("apply connector {name}: {e}"))
}

/// A `discard`-sink connector `name` reading `topic`, with `extra` spec lines (indented by 2).
pub fn discard_sink(name: &str, topic: &str, bootstrap: &str, extra: &str) -> String {
    format!(
        "metadata: {{name: {name}}}\nspec:\n  kafka: {{bootstrapServers: '{bootstrap}'}}\n  sink: {{topics: [{topic}], discard: {{}}}}\n{extra}"
    )
}

/// The connector's task pods, by task index.
pub async fn task_pods(client: &Client, namespace: &str, connector: &str) -> BTreeMap<i32, Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = api
        .list(&ListParams::default().labels(&format!("ferry.rs/connector={connector}")))
        .await
        .expect("list task pods");
    pods.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let index = p
                .metadata
                .labels
                .as_ref()?
                .get("ferry.rs/task")?
                .parse()
                .ok()?;
            Some((index, p))
        })
        .collect()
}

/// True when the pod is Running and Ready.
pub fn pod_ready(pod: &Pod) -> bool {
    ferry_e2e::harness::is_pod_ready(pod)
}

/// Waits until the connector has exactly `count` task pods, all Ready; returns them.
pub async fn wait_ready_tasks(
    client: &Client,
    namespace: &str,
    connector: &str,
    count: usize,
    timeout: Duration,
) -> BTreeMap<i32, Pod> {
    wait_for_named(
        &format!("{count} ready task pods of {namespace}/{connector}"),
        timeout,
        || async {
            let pods = task_pods(client, namespace, connector).await;
            (pods.len() == count && pods.values().all(pod_ready)).then_some(pods)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Reads a connector.
pub async fn connector(client: &Client, namespace: &str, name: &str) -> KafkaConnector {
    Api::<KafkaConnector>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("get connector {name}: {e}"))
}

/// Waits until `f` holds for the connector; returns it.
pub async fn wait_connector<F>(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    timeout: Duration,
    f: F,
) -> KafkaConnector
where
    F: Fn(&KafkaConnector) -> bool,
{
    let api = Api::<KafkaConnector>::namespaced(client.clone(), namespace);
    let f = &f;
    wait_for_named(&format!("connector {name}: {what}"), timeout, || {
        let api = api.clone();
        async move {
            let c = api.get(name).await.ok()?;
            f(&c).then_some(c)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The status of condition `type_` (`True`/`False`/`Unknown`) and its reason.
pub fn condition(c: &KafkaConnector, type_: &str) -> Option<(String, String, String)> {
    c.status
        .as_ref()?
        .conditions
        .iter()
        .find(|x| x.type_ == type_)
        .map(|x| (x.status.clone(), x.reason.clone(), x.message.clone()))
}

/// Pod UIDs by task index.
pub fn uids(pods: &BTreeMap<i32, Pod>) -> BTreeMap<i32, String> {
    pods.iter()
        .map(|(i, p)| (*i, p.metadata.uid.clone().unwrap_or_default()))
        .collect()
}

/// Reasons of the Events about `connector`, oldest first.
pub async fn event_reasons(
    client: &Client,
    namespace: &str,
    connector: &str,
) -> Vec<(String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), namespace);
    let mut events: Vec<_> = api
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(connector)
                && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("KafkaConnector")
        })
        .collect();
    events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    events
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// The consumer group's committed offset and the log-end offset of every partition.
pub fn group_offsets(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, (i64, i64)> {
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    use rdkafka::consumer::Consumer;
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(|p| {
            let c = match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(rdkafka::Offset::Offset(o)) => o,
                _ => 0,
            };
            let (_, end) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks");
            (p, (c, end))
        })
        .collect()
}

/// Waits (up to `timeout`) until a task of connector `name` has Succeeded (a bounded
/// source that wrote all its records).
pub async fn wait_task_succeeded(client: &Client, namespace: &str, name: &str, timeout: Duration) {
    wait_connector(
        client,
        namespace,
        name,
        "its records written",
        timeout,
        |c| {
            c.status
                .as_ref()
                .and_then(|s| s.tasks.as_ref())
                .is_some_and(|t| t.items.iter().any(|i| i.phase == "Succeeded"))
        },
    )
    .await;
}

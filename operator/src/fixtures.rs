//! Test fixtures: connectors and task pods from inline YAML.

use ferry_crds::KafkaConnector;
use k8s_openapi::api::core::v1::Pod;

use crate::build::{self, TaskInputs};
use crate::inputs::task_inputs;
use crate::observe::TaskPod;

/// A connector from YAML (apiVersion/kind added), with a uid and generation.
pub fn connector(yaml: &str) -> KafkaConnector {
    let mut c: KafkaConnector = serde_yaml::from_str(&format!(
        "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\n{yaml}"
    ))
    .expect("fixture connector parses");
    c.metadata
        .uid
        .get_or_insert_with(|| "c0ffee00-0000-4000-8000-000000000001".into());
    c.metadata.generation.get_or_insert(1);
    c
}

/// A sink connector `orders` in `shop` with `extra` spec fields (which may replace `kafka`).
pub fn sink(extra: &str) -> KafkaConnector {
    connector(&format!(
        "metadata: {{name: orders, namespace: shop}}\nspec:\n{}  sink: {{topics: [orders], discard: {{}}}}\n{extra}",
        default_kafka(extra)
    ))
}

fn default_kafka(extra: &str) -> &'static str {
    if extra.contains("  kafka:") {
        ""
    } else {
        "  kafka: {bootstrapServers: 'kafka:9092'}\n"
    }
}

/// A datagen source connector `gen` in `shop` with `extra` spec fields.
pub fn source(extra: &str) -> KafkaConnector {
    connector(&format!(
        "metadata: {{name: gen, namespace: shop}}\nspec:\n  kafka: {{bootstrapServers: 'kafka:9092'}}\n  source: {{datagen: {{topic: t}}}}\n{extra}"
    ))
}

/// The build inputs of a connector.
pub fn inputs(c: &KafkaConnector) -> TaskInputs {
    task_inputs(c, crate::inputs::task_count(c), "ferry/runner:test").expect("fixture inputs")
}

/// The pod the operator would create for task `index`, observed with `status` (YAML, may be
/// empty) and `uid`.
pub fn observed_pod(
    inputs: &TaskInputs,
    index: i32,
    restarts: i32,
    uid: &str,
    status: &str,
) -> TaskPod {
    let hash = build::config_hash(inputs);
    stale_pod(inputs, index, restarts, uid, status, &hash)
}

/// Like [`observed_pod`] with an explicit configuration hash.
pub fn stale_pod(
    inputs: &TaskInputs,
    index: i32,
    restarts: i32,
    uid: &str,
    status: &str,
    hash: &str,
) -> TaskPod {
    let mut pod: Pod = build::task_pod(inputs, index, hash, restarts);
    pod.metadata.uid = Some(uid.to_string());
    if !status.trim().is_empty() {
        pod.status = Some(serde_yaml::from_str(status).expect("fixture status parses"));
    }
    TaskPod::from_pod(&pod)
}

/// A running, ready pod status started at `since`.
pub fn ready(since: &str) -> String {
    format!(
        "phase: Running\npodIP: 127.0.1.9\nconditions: [{{type: Ready, status: 'True'}}]\ncontainerStatuses:\n- {{name: runner, image: x, imageID: '', ready: true, restartCount: 0, state: {{running: {{startedAt: '{since}'}}}}}}"
    )
}

/// A running pod that is not ready yet.
pub fn starting() -> String {
    "phase: Running\npodIP: 127.0.1.9\nconditions: [{type: Ready, status: 'False'}]".to_string()
}

/// A failed pod status.
pub fn failed(exit_code: i32, message: &str, started: &str, finished: &str) -> String {
    format!(
        "phase: Failed\ncontainerStatuses:\n- name: runner\n  image: x\n  imageID: ''\n  ready: false\n  restartCount: 0\n  state:\n    terminated: {{exitCode: {exit_code}, reason: Error, message: '{message}', startedAt: '{started}', finishedAt: '{finished}'}}"
    )
}

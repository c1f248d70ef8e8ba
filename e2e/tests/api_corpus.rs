//! The `KafkaConnector` API against the real API server of the local stack: the CRD from
//! `crds/kafkaconnector.yaml` is accepted and established; every resource in
//! `tests/corpus/valid` passes validation and every one in `tests/corpus/invalid` is refused
//! with the error its first line names (`# expect: <substring>`), and `ferry-runner validate`
//! gives the same verdict on every file; `kubectl explain` shows the
//! field documentation; the `/scale` subresource and the printer columns work.
//!
//! Run with the stack up (`e2e/stack up`); `e2e/test` does both.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_e2e::harness::{wait_for_named, Stack, TestNamespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

const FIELD_MANAGER: &str = "ferry-e2e-api";
const CRD_NAME: &str = "kafkaconnectors.ferry.rs";

fn corpus_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(kind)
}

/// The corpus files of one kind, sorted, with their contents.
fn corpus(kind: &str) -> Vec<(String, String)> {
    let dir = corpus_dir(kind);
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .map(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            (name, text)
        })
        .collect();
    files.sort();
    files
}

fn kafka_connector_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("ferry.rs", "v1alpha1", "KafkaConnector"),
        "kafkaconnectors",
    )
}

/// Applies `crds/kafkaconnector.yaml` with server-side apply and waits until it is Established.
async fn install_crd(stack: &Stack, client: &Client) {
    let path = stack.repo_root.join("crds/kafkaconnector.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let crd: CustomResourceDefinition =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        CRD_NAME,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap_or_else(|e| panic!("the API server refused the CRD: {e}"));
    wait_for_named(
        "the KafkaConnector CRD to be Established",
        Duration::from_secs(30),
        || {
            let api = api.clone();
            async move {
                let crd = api.get(CRD_NAME).await.ok()?;
                let established = crd
                    .status?
                    .conditions?
                    .into_iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Creates `manifest` in `namespace` as a server-side dry run with strict field validation
/// (what `kubectl create --dry-run=server` does). `Err` holds the API server's message.
async fn dry_run_create(client: &Client, namespace: &str, manifest: &str) -> Result<(), String> {
    dry_run_refusal(client, namespace, manifest)
        .await
        .map_err(|refusal| refusal.message)
}

/// Why the API server refused a resource: its message and the fields it named.
#[derive(Debug)]
struct Refusal {
    message: String,
    fields: BTreeSet<String>,
}

impl Refusal {
    fn new(message: String) -> Refusal {
        Refusal {
            message,
            fields: BTreeSet::new(),
        }
    }
}

/// [`dry_run_create`], with the fields of the API server's refusal: the causes of a `422
/// Invalid` (`<nil>`, the whole object, as an empty field), or each `unknown field "..."` of
/// a strict decoding error.
async fn dry_run_refusal(client: &Client, namespace: &str, manifest: &str) -> Result<(), Refusal> {
    let mut object: serde_json::Value =
        serde_yaml::from_str(manifest).map_err(|e| Refusal::new(format!("not YAML: {e}")))?;
    object["metadata"]["namespace"] = json!(namespace);
    let body = serde_json::to_vec(&object).map_err(|e| Refusal::new(e.to_string()))?;
    let url = format!("/apis/ferry.rs/v1alpha1/namespaces/{namespace}/kafkaconnectors");
    let mut request = kube::core::Request::new(&url)
        .create(
            &PostParams {
                dry_run: true,
                field_manager: Some(FIELD_MANAGER.to_owned()),
            },
            body,
        )
        .map_err(|e| Refusal::new(e.to_string()))?;
    let uri = format!("{}&fieldValidation=Strict", request.uri());
    *request.uri_mut() = uri
        .parse()
        .map_err(|e| Refusal::new(format!("bad URI {uri}: {e}")))?;
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .map_err(|e| Refusal::new(format!("request failed: {e}")))?;
    let ok = response.status().is_success();
    let bytes = response
        .into_body()
        .collect_bytes()
        .await
        .map_err(|e| Refusal::new(format!("reading the response failed: {e}")))?;
    if ok {
        return Ok(());
    }
    let status: serde_json::Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({"message": String::from_utf8_lossy(&bytes)}));
    let message = status["message"].as_str().unwrap_or_default().to_owned();
    let mut fields: BTreeSet<String> = status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|cause| cause["field"].as_str())
        .map(|field| {
            if field == "<nil>" {
                String::new()
            } else {
                field.to_owned()
            }
        })
        .collect();
    for part in message.split("unknown field \"").skip(1) {
        if let Some((field, _)) = part.split_once('"') {
            fields.insert(field.to_owned());
        }
    }
    Err(Refusal { message, fields })
}

/// Runs `body` in a fresh namespace, deletes the namespace, then reports `body`'s failures.
async fn in_namespace<F, Fut>(prefix: &str, body: F)
where
    F: FnOnce(Stack, Client, String) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let stack = Stack::from_env().unwrap_or_else(|e| panic!("{e}"));
    let client = stack.client().await.unwrap_or_else(|e| panic!("{e}"));
    install_crd(&stack, &client).await;
    let ns = TestNamespace::create(&client, prefix)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let failures = body(stack, client, ns.name.clone()).await;
    let cleanup = ns.cleanup().await;
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    cleanup.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_corpus_is_accepted() {
    in_namespace("api-valid", |_, client, ns| async move {
        let files = corpus("valid");
        assert!(
            files.len() >= 10,
            "the valid corpus has only {} files",
            files.len()
        );
        let mut failures = Vec::new();
        for (name, text) in files {
            if let Err(message) = dry_run_create(&client, &ns, &text).await {
                failures.push(format!("valid/{name} was refused: {message}"));
            }
        }
        failures
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_corpus_is_refused_with_the_expected_error() {
    in_namespace("api-invalid", |_, client, ns| async move {
        let files = corpus("invalid");
        assert!(files.len() >= 30, "the invalid corpus has only {} files", files.len());
        let mut failures = Vec::new();
        for (name, text) in files {
            let Some(expect) = text
                .lines()
                .next()
                .and_then(|line| line.strip_prefix("# expect: "))
                .map(str::trim)
                .filter(|e| !e.is_empty())
            else {
                failures.push(format!("invalid/{name}: the first line must be `# expect: <part of the error>`"));
                continue;
            };
            match dry_run_create(&client, &ns, &text).await {
                Ok(()) => failures.push(format!("invalid/{name} was accepted; expected: {expect}")),
                Err(message) if message.contains(expect) => {}
                Err(message) => failures.push(format!(
                    "invalid/{name} was refused, but not with the expected error\n  expected: {expect}\n  got:      {message}"
                )),
            }
        }
        failures
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explain_shows_the_field_docs() {
    in_namespace("api-explain", |stack, _, _| async move {
        // The API server publishes a new CRD's OpenAPI a moment after it is Established.
        let explained = wait_for_named(
            "kubectl explain kafkaconnector.spec.kafka",
            Duration::from_secs(60),
            || {
                let stack = stack.clone();
                async move {
                    let out = stack
                        .kubectl(["explain", "kafkaconnector.spec.kafka"])
                        .await
                        .ok()?;
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    (out.status.success() && text.contains("bootstrapServers")).then_some(text)
                }
            },
        )
        .await;
        let text = match explained {
            Ok(text) => text,
            Err(e) => return vec![e.to_string()],
        };
        // kubectl wraps long descriptions; compare with the line breaks removed.
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut failures = Vec::new();
        for expected in [
            "How the tasks connect to Kafka.",
            "bootstrapServers",
            "Comma-separated `host:port` list of brokers",
            "Credentials are not allowed here: use `tls` and `sasl`, which read them from Secrets.",
            "SASL authentication, with credentials from Secrets.",
        ] {
            if !flat.contains(expected) {
                failures.push(format!(
                    "kubectl explain kafkaconnector.spec.kafka lacks {expected:?}:\n{text}"
                ));
            }
        }
        let out = stack
            .kubectl(["explain", "kc.spec.offsets.reset.to"])
            .await
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        if !out.contains(
            "an RFC 3339 time (e.g. `2026-11-22T08:00:00Z`) or milliseconds since the epoch",
        ) {
            failures.push(format!(
                "kubectl explain kc.spec.offsets.reset.to lacks its docs:\n{out}"
            ));
        }
        failures
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_subresource_and_printer_columns() {
    in_namespace("api-scale", |stack, client, ns| async move {
        let mut failures = Vec::new();
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &ns, &kafka_connector_resource());
        let name = "scaled";
        // Stopped: even an operator watching every namespace starts no pods for it.
        let connector = json!({
            "apiVersion": "ferry.rs/v1alpha1",
            "kind": "KafkaConnector",
            "metadata": {"name": name},
            "spec": {
                "kafka": {"bootstrapServers": "kafka:9092"},
                "sink": {"topics": ["orders"], "discard": {}},
                "state": "Stopped",
            },
        });
        let created = api
            .patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&connector))
            .await;
        let created = match created {
            Ok(created) => created,
            Err(e) => return vec![format!("creating the connector failed: {e}")],
        };
        if created.data["spec"]["tasks"] != json!(1) {
            failures.push(format!("spec.tasks should default to 1, got {}", created.data["spec"]["tasks"]));
        }
        if created.data["spec"]["delivery"] != json!("AtLeastOnce") {
            failures.push(format!("spec.delivery should default to AtLeastOnce, got {}", created.data["spec"]["delivery"]));
        }

        // The operator publishes these; here the test plays its part.
        let status = json!({
            "apiVersion": "ferry.rs/v1alpha1",
            "kind": "KafkaConnector",
            "status": {
                "state": "Running",
                "tasks": {"desired": 3, "ready": 2, "items": [
                    {"index": 0, "pod": "scaled-task-0", "phase": "Running", "restarts": 4},
                ]},
                "tasksReady": "2/3",
                "replicas": 2,
                "selector": format!("ferry.rs/connector={name}"),
                "restarts": 4,
                "lag": 1234,
                "conditions": [{
                    "type": "Ready", "status": "False", "reason": "TasksNotReady",
                    "message": "2 of 3 tasks ready", "lastTransitionTime": "2026-11-22T08:00:00Z",
                }],
            },
        });
        if let Err(e) = api
            .patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&status))
            .await
        {
            return vec![format!("writing the status failed: {e}")];
        }

        match api.get_scale(name).await {
            Ok(scale) => {
                let spec_replicas = scale.spec.as_ref().and_then(|s| s.replicas);
                let status = scale.status.as_ref();
                if spec_replicas != Some(1) {
                    failures.push(format!("/scale spec.replicas should be spec.tasks (1), got {spec_replicas:?}"));
                }
                if status.map(|s| s.replicas) != Some(2) {
                    failures.push(format!("/scale status.replicas should be status.replicas (2), got {status:?}"));
                }
                if status.and_then(|s| s.selector.as_deref()) != Some("ferry.rs/connector=scaled") {
                    failures.push(format!("/scale status.selector should be ferry.rs/connector=scaled, got {status:?}"));
                }
            }
            Err(e) => failures.push(format!("GET /scale failed: {e}")),
        }

        let scaled = stack
            .kubectl(["scale", "-n", &ns, &format!("kc/{name}"), "--replicas=3"])
            .await;
        match scaled {
            Ok(out) if out.status.success() => match api.get(name).await {
                Ok(obj) if obj.data["spec"]["tasks"] == json!(3) => {}
                Ok(obj) => failures.push(format!("kubectl scale --replicas=3 left spec.tasks at {}", obj.data["spec"]["tasks"])),
                Err(e) => failures.push(format!("reading the connector failed: {e}")),
            },
            Ok(out) => failures.push(format!("kubectl scale failed: {}", String::from_utf8_lossy(&out.stderr))),
            Err(e) => failures.push(e.to_string()),
        }

        for (selector, expected) in [
            ("spec.state=Stopped", "kafkaconnector.ferry.rs/scaled"),
            ("spec.state=Running", ""),
            ("status.state=Running", "kafkaconnector.ferry.rs/scaled"),
        ] {
            let listed = stack
                .kubectl(["get", "kc", "-n", &ns, "--field-selector", selector, "-o", "name"])
                .await;
            match listed {
                Ok(out) if out.status.success() => {
                    let names = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                    if names != expected {
                        failures.push(format!(
                            "kubectl get kc --field-selector {selector} listed {names:?}, expected {expected:?}"
                        ));
                    }
                }
                Ok(out) => failures.push(format!(
                    "kubectl get kc --field-selector {selector} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )),
                Err(e) => failures.push(e.to_string()),
            }
        }

        match stack.kubectl(["get", "kc", "-n", &ns, name, "-o", "wide"]).await {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                if !text.contains("MESSAGE") || !text.contains("2 of 3 tasks ready") {
                    failures.push(format!("kubectl get kc -o wide lacks the Ready message:\n{text}"));
                }
            }
            Err(e) => failures.push(e.to_string()),
        }

        match stack.kubectl(["get", "kc", "-n", &ns, name]).await {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let mut lines = text.lines();
                let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
                let row: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
                if header != ["NAME", "STATE", "TASKS", "LAG", "RESTARTS", "AGE"] {
                    failures.push(format!("kubectl get kc columns: {header:?}"));
                }
                if row.get(..5) != Some(&["scaled", "Running", "2/3", "1234", "4"][..]) {
                    failures.push(format!("kubectl get kc row: {row:?}"));
                }
            }
            Err(e) => failures.push(e.to_string()),
        }
        failures
    })
    .await;
}

/// The fields `ferry_crds::admission` names for a file, as the API server's strict create
/// would.
fn offline_admission_fields(manifest: &str) -> BTreeSet<String> {
    let object: serde_json::Value = match serde_yaml::from_str(manifest) {
        Ok(object) => object,
        Err(_) => return BTreeSet::new(),
    };
    match ferry_crds::admission::admit(&object) {
        Ok(_) => BTreeSet::new(),
        Err(violations) => violations.into_iter().map(|v| v.field).collect(),
    }
}

/// What `ferry-runner validate -f` says of a file: `Err` with every problem when it refuses.
fn offline_verdict(manifest: &str) -> Result<(), String> {
    use ferry_runner::plugins::TaskShare;
    use ferry_runner::task_config::{load, CheckMode};
    load(
        manifest,
        TaskShare { index: 0, count: 1 },
        &ferry_kafka::Credentials::default(),
        CheckMode::Offline,
    )
    .map(|_| ())
    .map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// The runner's own files of `ferry-runner validate` tests: `good` and `bad`.
fn runner_validate_files(kind: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/runner_validate")
        .join(kind);
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            (path.display().to_string(), text)
        })
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_and_admission_give_the_same_verdict_and_fields_on_the_whole_corpus() {
    in_namespace("api-agree", |_, client, ns| async move {
        let mut failures = Vec::new();
        // The admission corpus: the same verdict both ways, and offline admission names the
        // same fields as the API server.
        for kind in ["valid", "invalid"] {
            for (name, text) in corpus(kind) {
                let api = dry_run_refusal(&client, &ns, &text).await;
                let offline = offline_verdict(&text);
                if api.is_ok() != offline.is_ok() {
                    failures.push(format!(
                        "{kind}/{name}: the API server says {api:?}, ferry-runner validate says {offline:?}"
                    ));
                }
                let api_fields = api.as_ref().err().map(|r| r.fields.clone()).unwrap_or_default();
                let offline_fields = offline_admission_fields(&text);
                if api_fields != offline_fields {
                    failures.push(format!(
                        "{kind}/{name}: the API server names {api_fields:?}, ferry_crds::admission names {offline_fields:?}\n  API server: {}",
                        api.err().map(|r| r.message).unwrap_or_default()
                    ));
                }
            }
        }
        // The runner's own corpus: everything admission refuses, validate refuses too (it
        // also checks what only the runner can: librdkafka's verdict on a property, regular
        // expressions, paths), and a good file passes both.
        for (name, text) in runner_validate_files("good") {
            let api = dry_run_create(&client, &ns, &text).await;
            let offline = offline_verdict(&text);
            if api.is_err() || offline.is_err() {
                failures.push(format!(
                    "{name}: a good file; the API server says {api:?}, ferry-runner validate says {offline:?}"
                ));
            }
        }
        for (name, text) in runner_validate_files("bad") {
            if let (Err(api), Ok(())) = (dry_run_create(&client, &ns, &text).await, offline_verdict(&text)) {
                failures.push(format!(
                    "{name}: the API server refuses it ({api}), ferry-runner validate accepts it"
                ));
            }
        }
        failures
    })
    .await;
}

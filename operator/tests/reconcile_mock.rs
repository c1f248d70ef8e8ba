//! The reconciler against a mocked API server: each scenario lists the exact requests the
//! reconciler makes and answers them.

use std::sync::Arc;

use ferry_crds::KafkaConnector;
use ferry_operator::context::{Context, Settings};
use ferry_operator::metrics::Metrics;
use ferry_operator::reconcile::reconcile;
use http::{Method, Request, Response};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::Client;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One expected request and the answer to give.
struct Exchange {
    method: Method,
    /// Path and query, exactly.
    uri: String,
    /// Checks the request body.
    check: Box<dyn Fn(&Value) + Send>,
    answer: Value,
}

fn expect(method: Method, uri: &str, answer: Value) -> Exchange {
    Exchange {
        method,
        uri: uri.to_string(),
        check: Box::new(|_| {}),
        answer,
    }
}

impl Exchange {
    fn with(mut self, check: impl Fn(&Value) + Send + 'static) -> Self {
        self.check = Box::new(check);
        self
    }
}

fn serve(mut handle: Handle, script: Vec<Exchange>) -> JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        for step in script {
            let (request, send) = handle
                .next_request()
                .await
                .expect("the reconciler made no further request");
            let uri = request.uri().to_string();
            let method = request.method().clone();
            seen.push(format!("{method} {uri}"));
            assert_eq!(
                (&method, uri.as_str()),
                (&step.method, step.uri.as_str()),
                "requests so far: {seen:#?}"
            );
            let body = request
                .into_body()
                .collect_bytes()
                .await
                .expect("request body");
            let value: Value = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body).expect("JSON body")
            };
            (step.check)(&value);
            send.send_response(
                Response::builder()
                    .body(Body::from(
                        serde_json::to_vec(&step.answer).expect("answer"),
                    ))
                    .expect("response"),
            );
        }
        seen
    })
}

fn context(client: Client) -> Arc<Context> {
    let settings = Settings {
        runner_image: "ferry/runner:test".into(),
        read_progress: false,
        ..Settings::default()
    };
    Arc::new(Context::new(
        client,
        Arc::new(Metrics::new()),
        settings,
        Some("test".into()),
    ))
}

fn connector(spec_extra: &str, status: Option<Value>) -> Value {
    let spec: Value = serde_yaml::from_str(&format!(
        "kafka: {{bootstrapServers: 'kafka:9092'}}\nsink: {{topics: [orders], discard: {{}}}}\n{spec_extra}"
    ))
    .expect("spec YAML");
    let mut c = json!({
        "apiVersion": "ferry.rs/v1alpha1",
        "kind": "KafkaConnector",
        "metadata": {"name": "orders", "namespace": "shop", "uid": "c-uid", "generation": 1, "resourceVersion": "10"},
        "spec": spec,
    });
    if let Some(status) = status {
        c["status"] = status;
    }
    c
}

const CONNECTOR: &str = "/apis/ferry.rs/v1alpha1/namespaces/shop/kafkaconnectors/orders";
const PODS: &str = "/api/v1/namespaces/shop/pods?&labelSelector=ferry.rs%2Fconnector%3Dorders";
const APPLY: &str = "?&force=true&fieldManager=ferry-operator";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/shop/events?";

fn pod_list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
}

async fn run(connector_json: Value, script: Vec<Exchange>) -> (Action, Vec<String>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let server = serve(handle, script);
    let object: KafkaConnector = serde_json::from_value(connector_json).expect("connector");
    let action = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        reconcile(Arc::new(object), context(client)),
    )
    .await
    .expect("reconcile finished")
    .expect("reconcile succeeded");
    let seen = tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("every scripted request was made")
        .expect("the mock server did not panic");
    (action, seen)
}

#[tokio::test]
async fn a_new_connector_gets_its_config_map_pods_status_and_events() {
    let c = connector("tasks: 2", None);
    let script = vec![
        expect(Method::GET, CONNECTOR, c.clone()),
        expect(Method::GET, PODS, pod_list(vec![])),
        expect(
            Method::PATCH,
            &format!("/api/v1/namespaces/shop/configmaps/orders-task-config{APPLY}"),
            json!({}),
        )
        .with(|b| {
            assert_eq!(b["kind"], "ConfigMap");
            assert_eq!(b["data"]["state"], "Running");
            assert!(b["data"]["connector.yaml"]
                .as_str()
                .unwrap()
                .contains("orders"));
            assert!(!b["data"]["connector.yaml"]
                .as_str()
                .unwrap()
                .contains("tasks:"));
            assert_eq!(b["metadata"]["ownerReferences"][0]["uid"], "c-uid");
        }),
        expect(
            Method::PATCH,
            &format!("/api/v1/namespaces/shop/pods/orders-task-0{APPLY}"),
            json!({}),
        )
        .with(|b| {
            assert_eq!(b["metadata"]["labels"]["ferry.rs/task"], "0");
            assert_eq!(b["spec"]["containers"][0]["image"], "ferry/runner:test");
        }),
        expect(
            Method::PATCH,
            &format!("/api/v1/namespaces/shop/pods/orders-task-1{APPLY}"),
            json!({}),
        )
        .with(|b| assert_eq!(b["metadata"]["labels"]["ferry.rs/task"], "1")),
        expect(
            Method::PATCH,
            &format!("{CONNECTOR}/status{APPLY}"),
            c.clone(),
        )
        .with(|b| {
            let s = &b["status"];
            assert_eq!(s["tasks"]["desired"], 2);
            assert_eq!(s["tasks"]["ready"], 0);
            assert_eq!(s["tasksReady"], "0/2");
            assert_eq!(s["selector"], "ferry.rs/connector=orders");
            assert_eq!(s["state"], "Pending");
            let progressing = s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Progressing")
                .unwrap();
            assert_eq!(progressing["status"], "True");
            assert_eq!(progressing["reason"], "Starting");
        }),
        expect(Method::POST, EVENTS, json!({})).with(|b| {
            assert_eq!(b["reason"], "TaskStarted");
            assert_eq!(b["note"], "starting task 0");
        }),
        expect(Method::POST, EVENTS, json!({})).with(|b| {
            assert_eq!(b["note"], "starting task 1");
            assert_eq!(b["related"]["name"], "orders-task-1");
        }),
    ];
    let (action, _) = run(c, script).await;
    assert_eq!(
        action,
        Action::requeue(std::time::Duration::from_millis(15_050))
    );
}

fn current_hash(c: &Value) -> String {
    let object: KafkaConnector = serde_json::from_value(c.clone()).expect("connector");
    let inputs = ferry_operator::inputs::task_inputs(
        &object,
        ferry_operator::inputs::task_count(&object),
        "ferry/runner:test",
    )
    .expect("inputs");
    ferry_operator::build::config_hash(&inputs)
}

#[tokio::test]
async fn a_failed_task_whose_restart_is_due_is_deleted_with_a_uid_precondition() {
    let c = connector("", None);
    let hash = current_hash(&c);
    let failed = json!({
        "metadata": {
            "name": "orders-task-0", "namespace": "shop", "uid": "pod-uid-1",
            "labels": {"ferry.rs/task": "0", "ferry.rs/connector": "orders"},
            "annotations": {"ferry.rs/restarts": "0", "ferry.rs/generation": "1", "ferry.rs/config-hash": hash},
        },
        "status": {"phase": "Failed", "containerStatuses": [{
            "name": "runner", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": "broker unreachable",
                "startedAt": "2020-01-01T00:00:00Z", "finishedAt": "2020-01-01T00:00:01Z"}}}]},
    });
    let script = vec![
        expect(Method::GET, CONNECTOR, c.clone()),
        expect(Method::GET, PODS, pod_list(vec![failed])),
        expect(
            Method::PATCH,
            &format!("/api/v1/namespaces/shop/configmaps/orders-task-config{APPLY}"),
            json!({}),
        ),
        expect(
            Method::DELETE,
            "/api/v1/namespaces/shop/pods/orders-task-0?",
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
        )
        .with(|b| assert_eq!(b["preconditions"]["uid"], "pod-uid-1")),
        expect(
            Method::PATCH,
            &format!("{CONNECTOR}/status{APPLY}"),
            c.clone(),
        )
        .with(|b| {
            let task = &b["status"]["tasks"]["items"][0];
            assert_eq!(task["restarts"], 1);
            assert_eq!(task["lastFailure"]["message"], "broker unreachable");
            assert_eq!(task["lastFailure"]["exitCode"], 1);
            assert_eq!(b["status"]["restarts"], 1);
        }),
        expect(Method::POST, EVENTS, json!({})).with(|b| {
            assert_eq!(b["type"], "Warning");
            assert_eq!(b["reason"], "TaskFailed");
            assert_eq!(
                b["note"],
                "task 0 failed: Error (exit code 1): broker unreachable"
            );
        }),
        expect(Method::POST, EVENTS, json!({})).with(|b| {
            assert_eq!(b["reason"], "RestartScheduled");
            assert_eq!(b["related"]["uid"], "pod-uid-1");
        }),
    ];
    run(c, script).await;
}

#[tokio::test]
async fn delete_on_removal_adds_the_finalizer_and_nothing_else() {
    let c = connector("offsets: {deleteOnRemoval: true}", None);
    let script = vec![
        expect(Method::GET, CONNECTOR, c.clone()),
        expect(Method::GET, PODS, pod_list(vec![])),
        expect(Method::PATCH, &format!("{CONNECTOR}?"), c.clone()).with(|b| {
            assert_eq!(
                b["metadata"]["finalizers"],
                json!(["ferry.rs/delete-offsets"])
            );
            assert_eq!(b["metadata"]["resourceVersion"], "10");
        }),
    ];
    let (action, _) = run(c, script).await;
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_stopped_connector_deletes_its_pods_and_keeps_its_config_map() {
    let c = connector(
        "state: Stopped",
        Some(json!({"state": "Running", "tasks": {"desired": 1, "ready": 1}})),
    );
    let running = json!({
        "metadata": {"name": "orders-task-0", "namespace": "shop", "uid": "pod-uid-2",
            "labels": {"ferry.rs/task": "0", "ferry.rs/connector": "orders"}},
        "status": {"phase": "Running"},
    });
    let script = vec![
        expect(Method::GET, CONNECTOR, c.clone()),
        expect(Method::GET, PODS, pod_list(vec![running])),
        expect(
            Method::PATCH,
            &format!("/api/v1/namespaces/shop/configmaps/orders-task-config{APPLY}"),
            json!({}),
        )
        .with(|b| assert_eq!(b["data"]["state"], "Paused")),
        expect(
            Method::DELETE,
            "/api/v1/namespaces/shop/pods/orders-task-0?",
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
        ),
        expect(
            Method::PATCH,
            &format!("{CONNECTOR}/status{APPLY}"),
            c.clone(),
        )
        .with(|b| {
            assert_eq!(b["status"]["state"], "Stopped");
            assert_eq!(b["status"]["tasks"]["desired"], 0);
        }),
        expect(Method::POST, EVENTS, json!({})).with(|b| assert_eq!(b["reason"], "Stopped")),
    ];
    run(c, script).await;
}

#[tokio::test]
async fn a_deleted_connector_with_delete_on_removal_stops_its_tasks_before_cleaning_up() {
    let mut c = connector("offsets: {deleteOnRemoval: true}", None);
    c["metadata"]["finalizers"] = json!(["ferry.rs/delete-offsets"]);
    c["metadata"]["deletionTimestamp"] = json!("2026-11-22T10:00:00Z");
    let running = json!({
        "metadata": {"name": "orders-task-0", "namespace": "shop", "uid": "pod-uid-3",
            "labels": {"ferry.rs/task": "0", "ferry.rs/connector": "orders"}},
        "status": {"phase": "Running"},
    });
    let script = vec![
        expect(Method::GET, CONNECTOR, c.clone()),
        expect(Method::GET, PODS, pod_list(vec![running])),
        expect(
            Method::DELETE,
            "/api/v1/namespaces/shop/pods/orders-task-0?",
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
        )
        .with(|b| assert_eq!(b["preconditions"]["uid"], "pod-uid-3")),
    ];
    let (action, _) = run(c, script).await;
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(3)));
}

#[tokio::test]
async fn a_pending_offsets_reset_stops_the_tasks_and_starts_none() {
    let c = connector(
        "offsets: {reset: {id: replay-1, to: Earliest}}",
        Some(
            json!({"state": "Running", "offsetReset": {"appliedId": "replay-0"},
            "tasks": {"desired": 1, "ready": 1, "items": [{"index": 0, "pod": "orders-task-0", "phase": "Running"}]}}),
        ),
    );
    let running = json!({
        "metadata": {"name": "orders-task-0", "namespace": "shop", "uid": "pod-uid-4",
            "labels": {"ferry.rs/task": "0", "ferry.rs/connector": "orders"}},
        "status": {"phase": "Running"},
    });
    let script = vec![
        expect(Method::GET, CONNECTOR, c.clone()),
        expect(Method::GET, PODS, pod_list(vec![running])),
        expect(
            Method::DELETE,
            "/api/v1/namespaces/shop/pods/orders-task-0?",
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
        )
        .with(|b| assert_eq!(b["preconditions"]["uid"], "pod-uid-4")),
        expect(
            Method::PATCH,
            &format!("{CONNECTOR}/status{APPLY}"),
            c.clone(),
        )
        .with(|b| {
            assert_eq!(b["status"]["state"], "Resetting");
            assert_eq!(b["status"]["tasksReady"], "0/1");
            assert!(b["status"].get("offsetReset").is_none(), "{b}");
            let progressing = b["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Progressing"))
                .cloned()
                .unwrap_or_default();
            assert_eq!(progressing["reason"], "ResettingOffsets");
            assert_eq!(
                progressing["message"],
                "resetting offsets to Earliest (spec.offsets.reset.id \"replay-1\"): waiting \
                 for 1 task pod to stop"
            );
        }),
        expect(Method::POST, EVENTS, json!({})).with(|b| {
            assert_eq!(b["reason"], "ResettingOffsets");
            assert_eq!(b["type"], "Normal");
        }),
    ];
    let (action, _) = run(c, script).await;
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(2)));
}

#[tokio::test]
async fn a_reset_that_does_not_fit_is_recorded_without_touching_the_tasks() {
    let c = connector(
        "offsets: {reset: {id: wrong-topic, sinkOffsets: [{topic: payments, partition: 0, offset: 5}]}}",
        Some(json!({"state": "Running"})),
    );
    let running = json!({
        "metadata": {"name": "orders-task-0", "namespace": "shop", "uid": "pod-uid-5",
            "labels": {"ferry.rs/task": "0", "ferry.rs/connector": "orders"}},
        "status": {"phase": "Running"},
    });
    let script = vec![
        expect(Method::GET, CONNECTOR, c.clone()),
        expect(Method::GET, PODS, pod_list(vec![running])),
        expect(
            Method::PATCH,
            &format!("{CONNECTOR}/status?&force=true&fieldManager=ferry-operator-offset-reset"),
            c.clone(),
        )
        .with(|b| {
            let record = &b["status"]["offsetReset"];
            assert_eq!(record["appliedId"], "wrong-topic");
            assert_eq!(record["outcome"], "Failed");
            assert_eq!(
                record["result"],
                "spec.offsets.reset.sinkOffsets[0].topic: the connector does not read topic \
                 \"payments\" (spec.sink.topics)"
            );
            assert!(b["status"].get("state").is_none(), "only offsetReset: {b}");
        }),
        expect(Method::POST, EVENTS, json!({})).with(|b| {
            assert_eq!(b["reason"], "OffsetResetFailed");
            assert_eq!(b["type"], "Warning");
        }),
    ];
    let (action, _) = run(c, script).await;
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(2)));
}

#[tokio::test]
async fn a_reset_whose_kafka_secret_cannot_be_read_fails_instead_of_holding_the_tasks() {
    let mut c = connector("offsets: {reset: {id: replay-1, to: Earliest}}", None);
    c["spec"]["kafka"]["sasl"] = json!({
        "mechanism": "SCRAM-SHA-512",
        "username": {"secretKeyRef": {"name": "kafka-user", "key": "username"}},
        "password": {"secretKeyRef": {"name": "kafka-user", "key": "password"}},
    });
    let forbidden = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": "secrets \"kafka-user\" is forbidden"});
    let script = vec![
        expect(Method::GET, CONNECTOR, c.clone()),
        expect(Method::GET, PODS, pod_list(vec![])),
        expect(
            Method::GET,
            "/api/v1/namespaces/shop/secrets/kafka-user",
            forbidden,
        ),
        expect(
            Method::PATCH,
            &format!("{CONNECTOR}/status?&force=true&fieldManager=ferry-operator-offset-reset"),
            c.clone(),
        )
        .with(|b| {
            let record = &b["status"]["offsetReset"];
            assert_eq!(record["appliedId"], "replay-1");
            assert_eq!(record["outcome"], "Failed");
            let result = record["result"].as_str().unwrap_or_default();
            assert!(
                result.starts_with(
                    "the operator cannot reach Kafka with the connector's credentials: secret \
                     shop/kafka-user"
                ),
                "{result}"
            );
        }),
        expect(Method::POST, EVENTS, json!({})).with(|b| {
            assert_eq!(b["reason"], "OffsetResetFailed");
            assert_eq!(b["regarding"]["fieldPath"], "spec.offsets.reset{replay-1}");
        }),
    ];
    let (action, _) = run(c, script).await;
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(2)));
}

//! GitOps behaviour against the local stack, with `target/debug/ferry-operator` running for
//! the test's namespace: after the operator reconciled, `kubectl diff` (server-side and
//! client-side) on the applied files shows nothing, re-applying them changes nothing
//! (same resourceVersion and generation), the operator writes only `status`, and the Argo CD
//! health check in `manifests/argocd/health.lua` maps real connector statuses to Argo CD's
//! health states.
//!
//! The health check runs on Lua 5.4 (the `mlua` crate, Lua built from source); Argo CD runs
//! it on gopher-lua (Lua 5.1), so the script keeps to what both understand.

mod operator_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use ferry_e2e::harness::{random_suffix, wait_for_named, Stack, TestNamespace};
use mlua::{Lua, Table, Value as LuaValue};
use operator_support::*;
use serde_json::Value;

const START: Duration = Duration::from_secs(120);

/// The field manager Argo CD's server-side sync uses.
const ARGOCD_MANAGER: &str = "argocd-controller";

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
}

fn health_script() -> String {
    std::fs::read_to_string(repo_root().join("manifests/argocd/health.lua"))
        .expect("read manifests/argocd/health.lua")
}

/// A JSON value as a Lua value, the way Argo CD hands an object to a health check: objects
/// become tables keyed by field name, arrays tables indexed from 1, `null` nil.
fn to_lua(lua: &Lua, value: &Value) -> mlua::Result<LuaValue> {
    Ok(match value {
        Value::Null => LuaValue::Nil,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => LuaValue::Integer(i),
            None => LuaValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => LuaValue::String(lua.create_string(s)?),
        Value::Array(items) => {
            let table = lua.create_table()?;
            for (i, item) in items.iter().enumerate() {
                table.set(i + 1, to_lua(lua, item)?)?;
            }
            LuaValue::Table(table)
        }
        Value::Object(fields) => {
            let table = lua.create_table()?;
            for (key, field) in fields {
                table.set(key.as_str(), to_lua(lua, field)?)?;
            }
            LuaValue::Table(table)
        }
    })
}

/// Runs the health check on `object` (a KafkaConnector as JSON): `(status, message)`.
fn health(script: &str, object: &Value) -> (String, String) {
    let lua = Lua::new();
    let obj = to_lua(&lua, object).expect("convert the object");
    lua.globals().set("obj", obj).expect("set obj");
    let hs: Table = lua
        .load(script)
        .set_name("health.lua")
        .eval()
        .unwrap_or_else(|e| panic!("health.lua failed on {object}: {e}"));
    let status: String = hs.get("status").expect("hs.status");
    let message: Option<String> = hs.get("message").expect("hs.message");
    (status, message.unwrap_or_default())
}

#[test]
fn the_argocd_cm_snippet_holds_the_health_check() {
    let snippet = std::fs::read_to_string(repo_root().join("manifests/argocd/argocd-cm.yaml"))
        .expect("read manifests/argocd/argocd-cm.yaml");
    let cm: serde_yaml::Value = serde_yaml::from_str(&snippet).expect("argocd-cm.yaml");
    assert_eq!(cm["metadata"]["name"].as_str(), Some("argocd-cm"));
    assert_eq!(
        cm["data"]["resource.customizations.health.ferry.rs_KafkaConnector"].as_str(),
        Some(health_script().as_str()),
        "manifests/argocd/argocd-cm.yaml must embed manifests/argocd/health.lua unchanged"
    );
    // A connector the operator has not seen yet.
    let fresh = serde_json::json!({
        "apiVersion": "ferry.rs/v1alpha1", "kind": "KafkaConnector",
        "metadata": {"name": "orders", "generation": 1}, "spec": {}
    });
    let (status, message) = health(&health_script(), &fresh);
    assert_eq!(status, "Progressing");
    assert!(message.contains("operator"), "{message}");
}

/// `kubectl` with arguments; the output, whatever the exit code.
async fn kubectl(stack: &Stack, args: &[&str]) -> Output {
    stack.kubectl(args).await.expect("run kubectl")
}

/// The connector as `kubectl get -o json` prints it.
async fn connector_json(stack: &Stack, namespace: &str, name: &str) -> Value {
    let out = kubectl(
        stack,
        &[
            "get",
            "kc",
            name,
            "-n",
            namespace,
            "-o",
            "json",
            "--show-managed-fields",
        ],
    )
    .await;
    assert!(out.status.success(), "get kc {name}: {}", text(&out));
    serde_json::from_slice(&out.stdout).expect("kubectl prints JSON")
}

fn condition_status<'a>(c: &'a Value, type_: &str) -> Option<&'a str> {
    c["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|x| x["type"] == type_)?["status"]
        .as_str()
}

/// True once the operator has reported on the current generation and every task is Ready.
fn converged_running(c: &Value) -> bool {
    c["status"]["observedGeneration"] == c["metadata"]["generation"]
        && c["status"]["state"] == "Running"
        && condition_status(c, "Ready") == Some("True")
        && condition_status(c, "Progressing") == Some("False")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_connectors_never_drift_and_reapplying_is_a_no_op() {
    let stack = Stack::from_env().expect("the local stack");
    let client = stack.client().await.expect("client");
    apply_crd(&stack, &client).await;
    let ns = TestNamespace::create(&client, "gitops")
        .await
        .expect("namespace");
    let n = ns.name.clone();
    let operator = Operator::start(&stack, &n);
    let topic = format!("gitops-{}", random_suffix(6));

    // Two connectors as a user keeps them in Git: one synced with server-side apply (as
    // Argo CD with ServerSideApply=true, or Flux), one with client-side `kubectl apply`.
    // They set many fields, some to their defaults, so defaulting would show up as drift.
    let spec = |name: &str| {
        format!(
            "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata:\n  name: {name}\n  labels: {{team: data}}\n\
             spec:\n  kafka:\n    bootstrapServers: '{bootstrap}'\n    config: {{client.id: {name}}}\n\
             \x20 sink:\n    topics: [{topic}]\n    discard: {{}}\n  tasks: 2\n  state: Running\n  delivery: AtLeastOnce\n\
             \x20 converters: {{key: {{string: {{}}}}, value: {{json: {{schemas: false}}}}}}\n\
             \x20 transforms:\n    - {{name: dropTest, filter: {{}}, predicate: {{topicNameMatches: {{pattern: 'test-.*'}}}}}}\n\
             \x20 errors: {{tolerance: All, retryTimeoutSeconds: 30}}\n\
             \x20 restartPolicy: {{initialBackoffSeconds: 1, maxBackoffSeconds: 60}}\n\
             \x20 template: {{pod: {{labels: {{team: data}}, resources: {{requests: {{cpu: 10m}}}}}}}}\n",
            bootstrap = stack.kafka_bootstrap,
        )
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let server_file = dir.path().join("server-side.yaml");
    let client_file = dir.path().join("client-side.yaml");
    std::fs::write(&server_file, spec("synced-ssa")).expect("write");
    std::fs::write(&client_file, spec("synced-csa")).expect("write");
    let server_file = server_file.to_str().expect("utf-8 path").to_string();
    let client_file = client_file.to_str().expect("utf-8 path").to_string();
    let manager = format!("--field-manager={ARGOCD_MANAGER}");
    let apply_server = [
        "apply",
        "--server-side",
        manager.as_str(),
        "-n",
        n.as_str(),
        "-f",
        server_file.as_str(),
    ];
    let apply_client = ["apply", "-n", n.as_str(), "-f", client_file.as_str()];
    let out = kubectl(&stack, &apply_server).await;
    assert!(out.status.success(), "server-side apply: {}", text(&out));
    let out = kubectl(&stack, &apply_client).await;
    assert!(out.status.success(), "client-side apply: {}", text(&out));

    for name in ["synced-ssa", "synced-csa"] {
        wait_ready_tasks(&client, &n, name, 2, START).await;
        wait_for_named(&format!("{name} reconciled and Running"), START, || async {
            converged_running(&connector_json(&stack, &n, name).await).then_some(())
        })
        .await
        .expect("converged");
    }
    // Let the operator run a few more resyncs (every 5 s here) and write what it writes.
    tokio::time::sleep(Duration::from_secs(12)).await;

    // kubectl diff, server-side and client-side: nothing to change.
    let diff_server = [
        "diff",
        "--server-side",
        manager.as_str(),
        "-n",
        n.as_str(),
        "-f",
        server_file.as_str(),
    ];
    let diff_client = ["diff", "-n", n.as_str(), "-f", client_file.as_str()];
    for args in [&diff_server[..], &diff_client[..]] {
        let out = kubectl(&stack, args).await;
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "kubectl {args:?} shows drift after the operator reconciled: {}",
            text(&out)
        );
    }

    // The operator writes only status, with server-side apply under its own manager; it adds
    // no labels, annotations or finalizers a sync would revert.
    for (name, user_manager) in [
        ("synced-ssa", ARGOCD_MANAGER),
        ("synced-csa", "kubectl-client-side-apply"),
    ] {
        let c = connector_json(&stack, &n, name).await;
        let entries = c["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields");
        // The user's manager, and the operator's (`ferry-operator`, and
        // `ferry-operator-offsets` for status.offsets): nobody else.
        let operator_managers: BTreeSet<&str> = entries
            .iter()
            .filter_map(|e| e["manager"].as_str())
            .filter(|m| *m != user_manager)
            .collect();
        assert!(
            operator_managers.contains(ferry_crds::names::FIELD_MANAGER)
                && operator_managers
                    .iter()
                    .all(|m| m.starts_with(ferry_crds::names::FIELD_MANAGER)),
            "{name}: managers {operator_managers:?} besides {user_manager}: {entries:?}"
        );
        for entry in entries.iter().filter(|e| e["manager"] != user_manager) {
            assert_eq!(entry["subresource"], "status", "{name}: {entry}");
            assert_eq!(entry["operation"], "Apply", "{name}: {entry}");
            let fields: Vec<&String> = entry["fieldsV1"]
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            assert_eq!(
                fields,
                vec!["f:status"],
                "{name}: the operator owns {fields:?}"
            );
        }
        // The user's entry holds what the user wrote and nothing of status.
        let user_entry = entries
            .iter()
            .find(|e| e["manager"] == user_manager)
            .unwrap_or_else(|| panic!("{name}: no entry of {user_manager}: {entries:?}"));
        assert!(user_entry["fieldsV1"].get("f:status").is_none(), "{name}");
        assert_eq!(
            c["metadata"]["labels"],
            serde_json::json!({"team": "data"}),
            "{name}"
        );
        assert!(
            c["metadata"]["finalizers"].is_null(),
            "{name}: {}",
            c["metadata"]
        );
        let annotations: Vec<&String> = c["metadata"]["annotations"]
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        let expected: Vec<&str> = if user_manager == ARGOCD_MANAGER {
            vec![]
        } else {
            vec!["kubectl.kubernetes.io/last-applied-configuration"]
        };
        assert_eq!(annotations, expected, "{name}");
    }

    // Re-applying the same files is a no-op: same resourceVersion, same generation. The
    // operator is stopped first, so that only the apply could change the objects.
    operator.stop().await;
    let before: Vec<(Value, Value)> = {
        let mut v = Vec::new();
        for name in ["synced-ssa", "synced-csa"] {
            let c = connector_json(&stack, &n, name).await;
            v.push((
                c["metadata"]["resourceVersion"].clone(),
                c["metadata"]["generation"].clone(),
            ));
        }
        v
    };
    let out = kubectl(&stack, &apply_server).await;
    assert!(out.status.success(), "server-side re-apply: {}", text(&out));
    let out = kubectl(&stack, &apply_client).await;
    assert!(out.status.success(), "client-side re-apply: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("unchanged"),
        "client-side re-apply: {}",
        text(&out)
    );
    for (name, (rv, generation)) in ["synced-ssa", "synced-csa"].iter().zip(before) {
        let c = connector_json(&stack, &n, name).await;
        assert_eq!(
            c["metadata"]["resourceVersion"], rv,
            "{name}: re-apply wrote"
        );
        assert_eq!(c["metadata"]["generation"], generation, "{name}");
    }
    ns.cleanup().await.expect("namespace cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_health_check_maps_real_statuses() {
    let stack = Stack::from_env().expect("the local stack");
    let client = stack.client().await.expect("client");
    apply_crd(&stack, &client).await;
    let ns = TestNamespace::create(&client, "argo-health")
        .await
        .expect("namespace");
    let n = ns.name.clone();
    let operator = Operator::start(&stack, &n);
    let script = health_script();
    let topic = format!("health-{}", random_suffix(6));
    let bootstrap = stack.kafka_bootstrap.clone();
    let sink = |name: &str, plugin: &str, extra: &str| {
        format!(
            "metadata: {{name: {name}}}\nspec:\n  kafka: {{bootstrapServers: '{bootstrap}'}}\n  sink: {{topics: [{topic}], {plugin}}}\n  restartPolicy: {{initialBackoffSeconds: 1, maxBackoffSeconds: 8}}\n{extra}"
        )
    };

    apply_connector(&client, &n, &sink("running", "discard: {}", "  tasks: 2\n")).await;
    apply_connector(
        &client,
        &n,
        &sink("paused", "discard: {}", "  state: Paused\n"),
    )
    .await;
    apply_connector(
        &client,
        &n,
        &sink("stopped", "discard: {}", "  state: Stopped\n"),
    )
    .await;
    // The runner cannot create this file: it exits with a retriable failure, again and again.
    apply_connector(
        &client,
        &n,
        &sink(
            "crashing",
            "file: {path: /proc/ferry-e2e-missing/out.txt}",
            "",
        ),
    )
    .await;
    // A relative path is a configuration error: reported once, not restarted.
    apply_connector(
        &client,
        &n,
        &sink("misconfigured", "file: {path: relative/out.txt}", ""),
    )
    .await;
    // Records wait but cannot be written (/dev/full refuses every write, retried for
    // 10 minutes): the task makes no progress and the connector becomes Stalled. The feeder
    // writes the records first.
    let stall_topic = format!("health-stall-{}", random_suffix(6));
    apply_connector(
        &client,
        &n,
        &format!(
            "metadata: {{name: feeder}}\nspec:\n  kafka: {{bootstrapServers: '{bootstrap}'}}\n  source: {{datagen: {{topic: {stall_topic}, records: 50}}}}\n"
        ),
    )
    .await;

    // While the running connector starts, its real status reads Progressing.
    let mut seen: Vec<(String, Value)> = Vec::new();
    let deadline = tokio::time::Instant::now() + START;
    let healthy = loop {
        let c = connector_json(&stack, &n, "running").await;
        let (status, message) = health(&script, &c);
        if !c["status"].is_null() {
            seen.push((status.clone(), c["status"].clone()));
        }
        if status == "Healthy" {
            break (message, c);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "connector running is not Healthy after {START:?}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        seen.iter().any(|(s, _)| s == "Progressing"),
        "no status of the starting connector read Progressing: {seen:?}"
    );
    assert!(converged_running(&healthy.1), "{}", healthy.1);
    assert!(!healthy.0.is_empty());

    for (name, expected, state) in [
        ("paused", "Suspended", "Paused"),
        ("stopped", "Suspended", "Stopped"),
        ("crashing", "Degraded", "Failed"),
        ("misconfigured", "Degraded", "Failed"),
    ] {
        let (message, c) = wait_for_named(
            &format!("connector {name} to be {expected}"),
            START,
            || async {
                let c = connector_json(&stack, &n, name).await;
                let (status, message) = health(&script, &c);
                (status == expected).then_some((message, c))
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c["status"]["state"], state, "{name}: {}", c["status"]);
        assert!(!message.is_empty(), "{name}: no message");
        let degraded_reason = c["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|x| x["type"] == "Degraded"))
            .and_then(|x| x["reason"].as_str())
            .unwrap_or_default()
            .to_string();
        match name {
            "misconfigured" => assert_eq!(degraded_reason, "ConfigurationError", "{message}"),
            "crashing" => assert!(
                ["TaskFailed", "BackingOff"].contains(&degraded_reason.as_str()),
                "{degraded_reason}: {message}"
            ),
            _ => {}
        }
    }

    // Once the feeder wrote its records (the topic exists), a sink that cannot write them.
    wait_for_named("the feeder to write its records", START, || async {
        let c = connector_json(&stack, &n, "feeder").await;
        (c["status"]["tasks"]["items"][0]["phase"] == "Succeeded").then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    apply_connector(
        &client,
        &n,
        &format!(
            "metadata: {{name: stalled}}\nspec:\n  kafka: {{bootstrapServers: '{bootstrap}'}}\n  sink: {{topics: [{stall_topic}], file: {{path: /dev/full}}}}\n  errors: {{retryTimeoutSeconds: 600}}\n  progress: {{stallAfterSeconds: 10}}\n"
        ),
    )
    .await;

    // A stalled connector is Degraded, and says why.
    let deadline = tokio::time::Instant::now() + START;
    let (message, c) = loop {
        let c = connector_json(&stack, &n, "stalled").await;
        let (status, message) = health(&script, &c);
        // Stalled=True, or, once the operator restarted the stalled task, its last failure.
        let stalled = condition_status(&c, "Stalled") == Some("True")
            || c["status"]["tasks"]["items"][0]["lastFailure"]["reason"] == "Stalled";
        if status == "Degraded" && stalled {
            break (message, c);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "connector stalled is not Degraded for being stalled after {START:?}: health {status} ({message}), status {}",
            c["status"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!message.is_empty(), "stalled: no message: {}", c["status"]);

    // Resuming the paused connector makes it Healthy again.
    apply_connector(
        &client,
        &n,
        &sink("paused", "discard: {}", "  state: Running\n"),
    )
    .await;
    wait_for_named(
        "connector paused to be Healthy after resuming",
        START,
        || async {
            let c = connector_json(&stack, &n, "paused").await;
            (health(&script, &c).0 == "Healthy").then_some(())
        },
    )
    .await
    .expect("Healthy after resuming");

    operator.stop().await;
    ns.cleanup().await.expect("namespace cleanup");
}

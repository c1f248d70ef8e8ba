//! Secret values stay secret, against the local stack with `target/debug/ferry-operator`
//! running for the test's namespace.
//!
//! One Secret holds unique values: a Kafka SASL username and password, and a database URL
//! with the same password in it. Two connectors use the SASL credentials; the local Kafka
//! listens in plaintext, so their SASL handshakes fail, and the source's task fails, is
//! restarted, fails again. A `postgres` sink reads the URL, which names a database that does
//! not exist, so its task fails on connecting. The error paths run, which is where
//! credentials leak. The test proves the values reached the tasks (the SASL password is in a
//! task process's environment; the sink's failure names the database only the URL holds),
//! then searches for the username and the password in everything a user or a log collector
//! sees: the connectors' status, the namespace's Events, its ConfigMaps, the pod objects
//! (specs, termination messages), the operator's log, the task pods' logs and
//! termination-message files, what the running tasks serve on `/metrics` and `/progress`,
//! and the records (payloads and headers) in the test's topics. Nothing may match. It also
//! checks that task pods reach credentials only through `secretKeyRef`, run as a non-root
//! user with a read-only root filesystem, and that their ServiceAccount has no API access.

mod operator_support;
mod runner_support;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use ferry_crds::contract;
use ferry_crds::status::TaskFailure;
use ferry_e2e::harness::{random_suffix, wait_for_named, Stack, TestNamespace};
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, PostParams};
use kube::Api;
use operator_support::*;

/// How long the tasks are left to fail and restart before the search.
const RUN_FOR: Duration = Duration::from_secs(30);
/// How long connectors get to start.
const START: Duration = Duration::from_secs(120);
/// How long to wait, at most, for the failing tasks' first recorded failures.
const MAX_RUN: Duration = Duration::from_secs(90);

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The local kubelet's directory of pod directories (`<root-dir>/pods`, see e2e/stack):
/// `${FERRY_STACK_SHARED:-/var/tmp/ferry-e2e-<uid>}/kubelet/pods`.
fn kubelet_pods_dir() -> PathBuf {
    let shared = std::env::var("FERRY_STACK_SHARED")
        .ok()
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let uid = std::fs::metadata("/proc/self")
                .map(|m| m.uid())
                .unwrap_or(0);
            PathBuf::from(format!("/var/tmp/ferry-e2e-{uid}"))
        });
    shared.join("kubelet/pods")
}

/// Files under `dir` (recursively) that contain `needle`, skipping `volumes/` (Secret
/// volumes hold secrets by design; this connector mounts none).
fn files_containing(dir: &Path, needle: &str, hits: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if entry.file_name() != "volumes" {
                files_containing(&path, needle, hits);
            }
        } else if kind.is_file() {
            if let Ok(bytes) = std::fs::read(&path) {
                if contains(&bytes, needle) {
                    hits.insert(path.display().to_string());
                }
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// `host:port` of the stack's PostgreSQL, from its URL.
fn postgres_host_port(stack: &Stack) -> String {
    let url = stack.postgres_url.as_str();
    let after_at = url.rsplit_once('@').map_or(url, |(_, rest)| rest);
    after_at.split('/').next().unwrap_or(after_at).to_string()
}

/// A process whose environment holds `FERRY_KAFKA_SASL_PASSWORD=<password>`: its pid and
/// its real user id.
fn process_with_password(password: &str) -> Option<(u32, u32)> {
    let needle = format!("{}={password}", contract::ENV_KAFKA_SASL_PASSWORD);
    process_with_env(&needle)
}

/// A process whose environment holds the variable assignment `needle` (`NAME=value`): its
/// pid and its real user id.
fn process_with_env(needle: &str) -> Option<(u32, u32)> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
        {
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            return Some((pid, uid));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_never_leave_the_task_process() {
    let stack = Stack::from_env().expect("the local stack");
    let client = stack.client().await.expect("client");
    apply_crd(&stack, &client).await;
    let ns = TestNamespace::create(&client, "secrets")
        .await
        .expect("namespace");
    let n = ns.name.clone();
    let operator = Operator::start(&stack, &n);

    let username = format!("ferry-user-{}", random_suffix(16));
    let password = format!("ferry-pass-{}", random_suffix(24));
    let database = format!("ferry_missing_{}", random_suffix(6));
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("kafka-user".into()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([
            ("username".to_string(), username.clone()),
            ("password".to_string(), password.clone()),
            // A database URL holding the password, naming a database that does not exist:
            // the connection fails, and its error must not quote the URL.
            (
                "database-url".to_string(),
                format!(
                    "postgres://postgres:{password}@{}/{database}",
                    postgres_host_port(&stack)
                ),
            ),
        ])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), &n)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the Secret");
    // A sink, which waits for Kafka, and a source whose deliveries time out after 3 s, so
    // that its task fails, reports why and is restarted.
    let kafka = format!(
        "  kafka:\n    bootstrapServers: '{}'\n    config: {{message.timeout.ms: '3000'}}\n    sasl:\n      mechanism: PLAIN\n      username: {{secretKeyRef: {{name: kafka-user, key: username}}}}\n      password: {{secretKeyRef: {{name: kafka-user, key: password}}}}\n  restartPolicy: {{initialBackoffSeconds: 1, maxBackoffSeconds: 4}}\n",
        stack.kafka_bootstrap
    );
    let topic = format!("secrets-{}", random_suffix(6));
    let sink = format!(
        "metadata: {{name: sasl-sink}}\nspec:\n{kafka}  sink: {{topics: [{topic}], discard: {{}}}}\n"
    );
    let source = format!(
        "metadata: {{name: sasl-source}}\nspec:\n{kafka}  source: {{datagen: {{topic: {topic}, ratePerSecond: 10}}}}\n"
    );
    apply_connector(&client, &n, &sink).await;
    apply_connector(&client, &n, &source).await;
    // The database sink connects when it has records to write: a feeder gives it some.
    let db_topic = format!("secrets-db-{}", random_suffix(6));
    let feeder = format!(
        "metadata: {{name: feeder}}\nspec:\n  kafka: {{bootstrapServers: '{}'}}\n  source: {{datagen: {{topic: {db_topic}, records: 5}}}}\n",
        stack.kafka_bootstrap
    );
    apply_connector(&client, &n, &feeder).await;
    // Subscribed to a topic that does not exist yet, a consumer would learn of it only at
    // its next metadata refresh: start the sink once the feeder is done.
    wait_task_succeeded(&client, &n, "feeder", START).await;
    let database_sink = format!(
        "metadata: {{name: db-sink}}\nspec:\n  kafka: {{bootstrapServers: '{}'}}\n  sink:\n    topics: [{db_topic}]\n    postgres: {{url: {{secretKeyRef: {{name: kafka-user, key: database-url}}}}}}\n  restartPolicy: {{initialBackoffSeconds: 1, maxBackoffSeconds: 4}}\n",
        stack.kafka_bootstrap
    );
    apply_connector(&client, &n, &database_sink).await;

    // The password reached the task: a process runs with it in its environment, as the
    // non-root user the pod asks for.
    let (pid, uid) = wait_for_named(
        "a task process with the SASL password in its environment",
        Duration::from_secs(90),
        || async { process_with_password(&password) },
    )
    .await
    .expect("the task process");
    assert_eq!(
        i64::from(uid),
        ferry_operator::names::RUNNER_UID,
        "task process {pid} runs as uid {uid}"
    );

    // Let the task fail and be restarted for a while, searching every task pod's directory
    // (logs, termination messages) while it exists.
    let pods_dir = kubelet_pods_dir();
    let pods_api = Api::<Pod>::namespaced(client.clone(), &n);
    let mut file_hits = BTreeSet::new();
    let mut pods_seen: BTreeMap<String, Pod> = BTreeMap::new();
    let started = Instant::now();
    let mut failures: BTreeMap<&str, Vec<TaskFailure>> = BTreeMap::new();
    // What each running task serves on its admin port (`/metrics`, `/progress`).
    let mut served: Vec<(String, Vec<u8>)> = Vec::new();
    let failing = ["sasl-source", "db-sink"];
    let all_failed = |f: &BTreeMap<&str, Vec<TaskFailure>>| {
        failing
            .iter()
            .all(|c| f.get(c).is_some_and(|v| !v.is_empty()))
    };
    while started.elapsed() < RUN_FOR || (!all_failed(&failures) && started.elapsed() < MAX_RUN) {
        let pods = pods_api
            .list(&ListParams::default().labels("app.kubernetes.io/name=ferry-runner"))
            .await
            .expect("list task pods");
        for pod in pods.items {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let dir = pods_dir.join(&uid);
            files_containing(&dir, &password, &mut file_hits);
            files_containing(&dir, &username, &mut file_hits);
            if let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) {
                let admin = format!("{ip}:{}", contract::ADMIN_PORT);
                for path in [contract::METRICS_PATH, contract::PROGRESS_PATH] {
                    if let Some((200, body)) = runner_support::http_get(&admin, path).await {
                        let name = pod.metadata.name.clone().unwrap_or_default();
                        served.push((format!("{path} of task pod {name}"), body.into_bytes()));
                    }
                }
            }
            pods_seen.insert(uid, pod);
        }
        for name in failing {
            let c = connector(&client, &n, name).await;
            let last: Vec<TaskFailure> = c
                .status
                .and_then(|s| s.tasks)
                .map(|t| t.items.into_iter().filter_map(|i| i.last_failure).collect())
                .unwrap_or_default();
            failures.insert(name, last);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(pods_seen.len() >= 4, "task pods seen: {}", pods_seen.len());
    // Both tasks failed and the operator recorded why: the error paths ran. The database
    // sink's failure names the database, which only the Secret's URL holds: the URL was
    // read.
    assert!(
        all_failed(&failures),
        "not every task failed within {MAX_RUN:?}, the error paths were not exercised: {failures:?}"
    );
    assert!(
        failures["db-sink"]
            .iter()
            .any(|f| f.message.contains(&database)),
        "the database sink's failure does not name database {database}: {failures:?}"
    );
    eprintln!(
        "after {:?}: {} task pod(s) seen; last failures: {failures:?}",
        started.elapsed(),
        pods_seen.len()
    );
    // Once more, for what the last pods wrote since.
    for uid in pods_seen.keys() {
        files_containing(&pods_dir.join(uid), &password, &mut file_hits);
        files_containing(&pods_dir.join(uid), &username, &mut file_hits);
    }

    // Everything a user, a dashboard or a log collector sees.
    let mut sources: Vec<(String, Vec<u8>)> = Vec::new();
    for what in [
        vec!["get", "kafkaconnectors", "-o", "json"],
        vec!["get", "events", "-o", "json"],
        vec!["get", "events.events.k8s.io", "-o", "json"],
        vec!["get", "configmaps", "-o", "json"],
        vec!["get", "pods", "-o", "json"],
    ] {
        let mut args = what.clone();
        args.extend(["-n", n.as_str()]);
        let out = stack.kubectl(&args).await.expect("run kubectl");
        assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
        sources.push((format!("kubectl {}", what.join(" ")), out.stdout));
    }
    assert!(
        served
            .iter()
            .any(|(what, _)| what.starts_with(contract::METRICS_PATH)),
        "no task pod served {}",
        contract::METRICS_PATH
    );
    sources.extend(served);
    // The records in Kafka, payloads and headers: the database sink's input and the topic
    // the SASL connectors were given.
    let mut records_read = 0;
    for t in [&db_topic, &topic] {
        for r in runner_support::read_topic(
            &stack.kafka_bootstrap,
            t,
            usize::MAX,
            Duration::from_secs(5),
        ) {
            records_read += 1;
            let mut bytes = r.key.unwrap_or_default();
            bytes.extend(r.value.unwrap_or_default());
            for (name, value) in r.headers {
                bytes.extend(name.into_bytes());
                bytes.extend(value.unwrap_or_default());
            }
            sources.push((format!("record {t}/{}@{}", r.partition, r.offset), bytes));
        }
    }
    assert!(
        records_read >= 5,
        "{records_read} records read back from Kafka"
    );
    let log = operator.log.clone();
    operator.stop().await;
    let operator_log = std::fs::read(&log).expect("read the operator log");
    assert!(!operator_log.is_empty(), "the operator logged nothing");
    sources.push((format!("operator log {}", log.display()), operator_log));

    let mut leaks = Vec::new();
    for (source, bytes) in &sources {
        for (what, value) in [("password", &password), ("username", &username)] {
            if contains(bytes, value) {
                leaks.push(format!("the {what} appears in {source}"));
            }
        }
    }
    for file in &file_hits {
        leaks.push(format!(
            "a Secret value appears in the task pod file {file}"
        ));
    }
    assert!(
        leaks.is_empty(),
        "Secret values leaked:\n{}",
        leaks.join("\n")
    );

    // Task pods reach credentials only through secretKeyRef, run non-root with a read-only
    // root filesystem, and get no API token.
    for pod in pods_seen.values() {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.as_ref().expect("pod spec");
        assert_eq!(
            spec.automount_service_account_token,
            Some(false),
            "{name}: automountServiceAccountToken"
        );
        assert!(
            spec.volumes.iter().flatten().all(|v| v.projected.is_none()),
            "{name}: a projected (token) volume"
        );
        let pod_security = spec.security_context.as_ref().expect("pod securityContext");
        assert_eq!(pod_security.run_as_non_root, Some(true), "{name}");
        for container in &spec.containers {
            let security = container
                .security_context
                .as_ref()
                .expect("securityContext");
            assert_eq!(security.read_only_root_filesystem, Some(true), "{name}");
            assert_eq!(security.allow_privilege_escalation, Some(false), "{name}");
            assert_eq!(security.run_as_non_root, Some(true), "{name}");
            assert!(
                security
                    .run_as_user
                    .or(pod_security.run_as_user)
                    .is_some_and(|u| u != 0),
                "{name}: runs as root"
            );
            let env = container.env.clone().unwrap_or_default();
            let connector = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("ferry.rs/connector"))
                .cloned()
                .unwrap_or_default();
            let credentials: &[&str] = match connector.as_str() {
                "sasl-sink" | "sasl-source" => &[
                    contract::ENV_KAFKA_SASL_USERNAME,
                    contract::ENV_KAFKA_SASL_PASSWORD,
                ],
                "db-sink" => &[contract::ENV_SINK_DATABASE_URL],
                _ => &[],
            };
            for var in credentials {
                let entry = env
                    .iter()
                    .find(|e| e.name == *var)
                    .unwrap_or_else(|| panic!("{name}: no {var}"));
                assert!(entry.value.is_none(), "{name}: {var} has a literal value");
                let reference = entry
                    .value_from
                    .as_ref()
                    .and_then(|f| f.secret_key_ref.as_ref())
                    .unwrap_or_else(|| panic!("{name}: {var} is not a secretKeyRef"));
                assert_eq!(reference.name, "kafka-user", "{name}: {var}");
            }
        }
    }

    // The task pods' ServiceAccount (the namespace's default one) may do nothing.
    let task_sa = pods_seen
        .values()
        .next()
        .and_then(|p| p.spec.as_ref())
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".to_string());
    let subject = format!("system:serviceaccount:{n}:{task_sa}");
    for (verb, resource) in [
        ("get", "secrets"),
        ("list", "pods"),
        ("get", "kafkaconnectors.ferry.rs"),
        ("list", "configmaps"),
        ("create", "events"),
    ] {
        let out = stack
            .kubectl([
                "auth",
                "can-i",
                verb,
                resource,
                "-n",
                n.as_str(),
                "--as",
                subject.as_str(),
            ])
            .await
            .expect("run kubectl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "no",
            "{subject} may {verb} {resource}: {}",
            text(&out)
        );
    }
    ns.cleanup().await.expect("namespace cleanup");
}

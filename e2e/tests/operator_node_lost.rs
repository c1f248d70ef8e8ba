//! A task on a node that stops answering is replaced within a bounded time, and nothing is
//! lost or written twice. Against the local stack, with `target/debug/ferry-operator`
//! running for the test's namespace.
//!
//! The test starts a second local kubelet for a node of its own (tainted so that only its
//! connector's pod goes there) and runs an exactly-once `datagen` source on it. Then it kills
//! that kubelet with SIGKILL: the node stops answering and the task's process dies with it,
//! as on a power loss. Kubernetes marks the node unreachable after the controller manager's
//! `--node-monitor-grace-period`, evicts the pod after the 30 s the operator gives task pods
//! to tolerate it, and the operator deletes the evicted pod without the dead kubelet's
//! confirmation once its grace period has passed, so the replacement starts on the other
//! node. The test prints how long the replacement took and counts every record exactly once
//! in the topic (`read_committed`).

mod operator_support;
mod runner_support;

use std::time::{Duration, Instant};

use ferry_e2e::harness::{random_suffix, wait_for_named, Stack, TestNamespace};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use operator_support::{apply_connector, apply_crd, task_pods, wait_task_succeeded, Operator};
use serde_json::json;

/// At most this long from the node's death to a ready replacement: the node monitor's grace
/// period (50 s by default), the 30 s toleration, the pod's 30 s grace period, 5 s of margin,
/// and the start of the replacement.
const REPLACED_WITHIN: Duration = Duration::from_secs(240);

/// The main kubelet's command line (from its pid file), to start another one like it.
fn kubelet_command(stack: &Stack) -> Vec<String> {
    let pid = std::fs::read_to_string(stack.stack_dir.join("pids/kubelet.pid"))
        .expect("the stack's kubelet pid file");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.trim()))
        .expect("the kubelet is running (e2e/stack up)");
    cmdline
        .split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// `command` with the value of `--flag` replaced.
fn with_flag(mut command: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    let at = command
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("the kubelet's command line has {flag}"));
    command[at + 1] = value.to_owned();
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_on_a_node_that_stops_answering_is_replaced() {
    let stack = Stack::from_env().expect("the local stack is running (e2e/stack up)");
    let client = stack.client().await.expect("client");
    apply_crd(&stack, &client).await;
    let ns = TestNamespace::create(&client, "ferry-node-lost")
        .await
        .expect("namespace");
    let namespace = ns.name.clone();
    let node_name = format!("ferry-lost-{}", random_suffix(6));
    let taint = "ferry.rs/e2e-node-lost";

    // The node exists, tainted, before its kubelet registers: nothing else is scheduled there.
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": node_name},
        "spec": {"taints": [{"key": taint, "value": namespace, "effect": "NoSchedule"}]},
    }))
    .expect("a Node");
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create the node");
    let root = std::path::Path::new(
        &std::env::var("FERRY_STACK_SHARED").unwrap_or_else(|_| "/var/tmp/ferry-e2e-0".into()),
    )
    .join(format!("kubelet-{node_name}"));
    std::fs::create_dir_all(&root).expect("the node's root directory");
    let health = runner_support::free_admin_addr();
    let mut command = kubelet_command(&stack);
    for (flag, value) in [
        ("--node-name", node_name.as_str()),
        ("--root-dir", root.to_str().expect("a UTF-8 path")),
        ("--pod-ip-prefix", "127.0.3"),
        ("--health-addr", health.as_str()),
    ] {
        command = with_flag(command, flag, value);
    }
    let log_dir = stack.repo_root.join("target/e2e-logs");
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let log = std::fs::File::create(log_dir.join(format!("kubelet-{node_name}.log"))).expect("log");
    let mut kubelet = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start the second kubelet");
    wait_for_named(
        "the second node to be Ready",
        Duration::from_secs(60),
        || {
            let nodes = nodes.clone();
            let node_name = node_name.clone();
            async move {
                let node = nodes.get_opt(&node_name).await.ok()??;
                node.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                    .then_some(())
            }
        },
    )
    .await
    .expect("node ready");

    let operator = Operator::start(&stack, &namespace);
    let topic = format!("node-lost-{}", random_suffix(6));
    let total: i64 = 6_000;
    runner_support::create_topic(&stack.kafka_bootstrap, &topic, 3).await;
    let connector = format!(
        r#"metadata: {{name: lost}}
spec:
  kafka: {{bootstrapServers: "{bootstrap}"}}
  delivery: ExactlyOnce
  source:
    datagen: {{topic: {topic}, records: {total}, ratePerSecond: 40, keys: 50, payloadBytes: 20}}
  converters: {{value: {{json: {{schemas: true}}}}}}
  template:
    pod:
      tolerations: [{{key: {taint}, operator: Exists, effect: NoSchedule}}]
      affinity:
        nodeAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            preference:
              matchExpressions: [{{key: kubernetes.io/hostname, operator: In, values: [{node_name}]}}]
"#,
        bootstrap = stack.kafka_bootstrap
    );
    apply_connector(&client, &namespace, &connector).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let first = wait_for_named(
        "the task to run on the second node",
        Duration::from_secs(120),
        || {
            let client = client.clone();
            let namespace = namespace.clone();
            let node_name = node_name.clone();
            async move {
                let pods = task_pods(&client, &namespace, "lost").await;
                let pod = pods.get(&0)?;
                let on = pod.spec.as_ref()?.node_name.as_deref()?;
                assert_eq!(on, node_name, "the task went to another node");
                operator_support::pod_ready(pod).then(|| pod.metadata.uid.clone())?
            }
        },
    )
    .await
    .expect("task running on the second node");
    // Let it write for a while.
    tokio::time::sleep(Duration::from_secs(10)).await;

    // The node dies: its kubelet and the task's process with it.
    runner_support::kill9(&kubelet);
    let _ = kubelet.wait().await;
    let died = Instant::now();
    let replacement = wait_for_named(
        "a ready replacement of the task on the other node",
        REPLACED_WITHIN,
        || {
            let pods = pods.clone();
            let first = first.clone();
            let node_name = node_name.clone();
            async move {
                let pod = pods.get_opt("lost-task-0").await.ok()??;
                let on = pod.spec.as_ref()?.node_name.clone()?;
                (pod.metadata.uid.as_ref() != Some(&first)
                    && on != node_name
                    && operator_support::pod_ready(&pod))
                .then_some(on)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}; the operator log is {}", operator.log.display()));
    let replaced_after = died.elapsed();
    let reasons = operator_support::event_reasons(&client, &namespace, "lost").await;
    assert!(
        reasons.iter().any(|(reason, _)| reason == "TaskNodeLost"),
        "an Event says the node was lost: {reasons:?}"
    );

    wait_task_succeeded(&client, &namespace, "lost", Duration::from_secs(300)).await;
    let counts = tokio::task::spawn_blocking({
        let (b, t) = (stack.kafka_bootstrap.clone(), topic.clone());
        move || runner_support::committed_sequence_counts(&b, &t)
    })
    .await
    .expect("reader");
    let (missing, twice) = runner_support::audit(&counts, total);
    println!(
        "node lost: the task was replaced on {replacement} {:.1} s after its node died; \
         topic (read_committed): {} distinct of {total}, {} missing, {} duplicated",
        replaced_after.as_secs_f64(),
        counts.len(),
        missing.len(),
        twice.len()
    );
    assert!(
        missing.is_empty() && twice.is_empty(),
        "missing {:?}, duplicated {:?}",
        &missing[..missing.len().min(20)],
        &twice[..twice.len().min(20)]
    );

    operator.stop().await;
    let _ = nodes.delete(&node_name, &DeleteParams::default()).await;
    let _ = std::fs::remove_dir_all(&root);
    ns.cleanup().await.expect("cleanup");
}

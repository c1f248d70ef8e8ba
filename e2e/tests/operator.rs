//! The operator against the local stack: each test runs `target/debug/ferry-operator` for
//! its own namespace and checks what a user sees with kubectl.

mod operator_support;
mod runner_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ferry_crds::status::ConnectorPhase;
use ferry_e2e::harness::{random_suffix, wait_for_named, Stack, TestNamespace};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{Api, Client};
use operator_support::*;

const START: Duration = Duration::from_secs(120);

async fn setup(prefix: &str) -> (Stack, Client, TestNamespace, Operator) {
    let stack = Stack::from_env().expect("the local stack");
    let client = stack.client().await.expect("client");
    apply_crd(&stack, &client).await;
    let ns = TestNamespace::create(&client, prefix)
        .await
        .expect("namespace");
    let operator = Operator::start(&stack, &ns.name);
    (stack, client, ns, operator)
}

async fn teardown(ns: TestNamespace, operator: Operator) {
    operator.stop().await;
    ns.cleanup().await.expect("namespace cleanup");
}

fn env_of(pod: &Pod) -> BTreeMap<String, String> {
    pod.spec.as_ref().unwrap().containers[0]
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| {
            let v = e.value.clone().unwrap_or_else(|| {
                let from = e.value_from.as_ref().unwrap();
                from.field_ref
                    .as_ref()
                    .map(|f| format!("fieldRef:{}", f.field_path))
                    .unwrap_or_default()
            });
            (e.name.clone(), v)
        })
        .collect()
}

fn task_items(c: &ferry_crds::KafkaConnector) -> Vec<ferry_crds::status::TaskStatus> {
    c.status
        .as_ref()
        .and_then(|s| s.tasks.as_ref())
        .map(|t| t.items.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_follow_the_spec_through_scale_pause_stop_and_resume() {
    let (stack, client, ns, operator) = setup("op-life").await;
    let n = ns.name.clone();
    let topic = format!("life-{}", random_suffix(6));
    let body = |extra: &str| discard_sink("life", &topic, &stack.kafka_bootstrap, extra);

    let applied = apply_connector(&client, &n, &body("  tasks: 2")).await;
    let pods = wait_ready_tasks(&client, &n, "life", 2, START).await;

    // The pod contract.
    let pod = &pods[&1];
    let meta = &pod.metadata;
    assert_eq!(meta.name.as_deref(), Some("life-task-1"));
    let labels = meta.labels.as_ref().unwrap();
    assert_eq!(labels["app.kubernetes.io/name"], "ferry-runner");
    assert_eq!(labels["app.kubernetes.io/instance"], "life");
    assert_eq!(labels["ferry.rs/connector"], "life");
    assert_eq!(labels["ferry.rs/task"], "1");
    assert_eq!(
        meta.annotations.as_ref().unwrap()["ferry.rs/config-hash"].len(),
        16
    );
    let owner = &meta.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("KafkaConnector", "life")
    );
    assert_eq!(Some(&owner.uid), applied.metadata.uid.as_ref());
    assert_eq!(owner.controller, Some(true));
    let env = env_of(pod);
    assert_eq!(env["FERRY_TASK_INDEX"], "1");
    assert_eq!(env["FERRY_TASK_COUNT"], "2");
    assert_eq!(env["FERRY_ADMIN_ADDR"], "$(POD_IP):8080");
    assert_eq!(env["POD_IP"], "fieldRef:status.podIP");
    assert_eq!(env["POD_NAME"], "fieldRef:metadata.name");
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(
        spec.containers[0].args.as_ref().unwrap(),
        &vec![
            "run".to_string(),
            "-f".into(),
            "/etc/ferry/task/connector.yaml".into()
        ]
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &n);
    let cm = cms.get("life-task-config").await.expect("task ConfigMap");
    assert_eq!(cm.data.as_ref().unwrap()["state"], "Running");
    assert!(cm.data.as_ref().unwrap()["connector.yaml"].contains(&topic));

    let c = wait_connector(&client, &n, "life", "Ready", START, |c| {
        condition(c, "Ready").is_some_and(|r| r.0 == "True")
    })
    .await;
    let status = c.status.as_ref().unwrap();
    assert_eq!(status.tasks_ready.as_deref(), Some("2/2"));
    // The tasks' /progress reports reach the status.
    let c = wait_connector(&client, &n, "life", "progress in status", START, |c| {
        let items = task_items(c);
        items.len() == 2 && items.iter().all(|t| t.records_out.is_some())
    })
    .await;
    let lag = c.status.as_ref().unwrap().lag;
    assert!(
        matches!(lag, None | Some(0)),
        "nothing was produced to {topic}, yet status.lag is {lag:?}"
    );
    assert_eq!(
        condition(&c, "Stalled").map(|s| s.0),
        Some("False".to_string())
    );
    assert_eq!(status.selector.as_deref(), Some("ferry.rs/connector=life"));
    assert_eq!(status.replicas, Some(2));
    assert_eq!(status.state, Some(ConnectorPhase::Running));
    let before = uids(&pods);

    // kubectl scale writes spec.tasks through the /scale subresource.
    let out = stack
        .kubectl(["-n", n.as_str(), "scale", "kc/life", "--replicas=3"])
        .await
        .expect("kubectl scale");
    assert!(
        out.status.success(),
        "kubectl scale: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pods = wait_ready_tasks(&client, &n, "life", 3, START).await;
    let after = uids(&pods);
    assert_eq!(
        after[&0], before[&0],
        "scaling must not replace task 0 of a sink"
    );
    assert_eq!(
        after[&1], before[&1],
        "scaling must not replace task 1 of a sink"
    );

    // Paused: pods kept, state file says Paused.
    apply_connector(&client, &n, &body("  tasks: 3\n  state: Paused")).await;
    wait_connector(&client, &n, "life", "Paused", START, |c| {
        c.status.as_ref().and_then(|s| s.state) == Some(ConnectorPhase::Paused)
            && condition(c, "Ready").is_some_and(|r| r.1 == "Paused")
    })
    .await;
    let cm = cms.get("life-task-config").await.unwrap();
    assert_eq!(cm.data.as_ref().unwrap()["state"], "Paused");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        uids(&task_pods(&client, &n, "life").await),
        after,
        "pausing must not replace pods"
    );

    // Stopped: no pods, ConfigMap kept.
    apply_connector(&client, &n, &body("  tasks: 3\n  state: Stopped")).await;
    wait_connector(&client, &n, "life", "Stopped with no pods", START, |c| {
        c.status.as_ref().and_then(|s| s.state) == Some(ConnectorPhase::Stopped)
            && condition(c, "Ready").is_some_and(|r| r.0 == "True" && r.1 == "Stopped")
    })
    .await;
    wait_for_named("no task pods", START, || async {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &n);
        let all = pods
            .list(&kube::api::ListParams::default().labels("ferry.rs/connector=life"))
            .await
            .ok()?;
        all.items.is_empty().then_some(())
    })
    .await
    .unwrap();
    assert!(
        cms.get_opt("life-task-config").await.unwrap().is_some(),
        "Stopped keeps the ConfigMap"
    );

    // Running again.
    apply_connector(&client, &n, &body("  tasks: 3")).await;
    wait_ready_tasks(&client, &n, "life", 3, START).await;
    wait_connector(&client, &n, "life", "Running", START, |c| {
        c.status.as_ref().and_then(|s| s.state) == Some(ConnectorPhase::Running)
    })
    .await;
    let reasons: Vec<String> = event_reasons(&client, &n, "life")
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    for expected in ["TaskStarted", "Scaled", "Paused", "Stopped", "Resumed"] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "no {expected} Event in {reasons:?}"
        );
    }
    teardown(ns, operator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_task_is_restarted_with_growing_delays_until_stopped() {
    let (stack, client, ns, operator) = setup("op-crash").await;
    let n = ns.name.clone();
    // The runner cannot create this file: it exits with code 1 (retriable) right away.
    let path = "/proc/ferry-e2e-missing/out.txt";
    let yaml = format!(
        "metadata: {{name: crash}}\nspec:\n  kafka: {{bootstrapServers: '{}'}}\n  sink: {{topics: [crash-{}], file: {{path: {path}}}}}\n  restartPolicy: {{initialBackoffSeconds: 1, maxBackoffSeconds: 16}}\n",
        stack.kafka_bootstrap,
        random_suffix(6)
    );
    apply_connector(&client, &n, &yaml).await;

    // Watch the status: each failure's time and its scheduled restart.
    let mut delays: BTreeMap<i32, f64> = BTreeMap::new();
    let mut replacement_gaps: Vec<f64> = Vec::new();
    let mut last_failure = None;
    let mut seen_pods: BTreeMap<String, Pod> = BTreeMap::new();
    let mut first_seen: Vec<(String, Instant)> = Vec::new();
    let mut failed_seen: BTreeMap<String, Instant> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(150);
    while delays.len() < 4 && Instant::now() < deadline {
        let c = connector(&client, &n, "crash").await;
        if let Some(task) = task_items(&c).first() {
            if let (Some(failure), Some(next)) = (&task.last_failure, &task.next_restart_at) {
                if let Some(at) = &failure.at {
                    let delay = next.0.duration_since(at.0).as_secs_f64();
                    delays.entry(task.restarts).or_insert(delay);
                }
                last_failure = Some(failure.clone());
            }
        }
        for (_, pod) in task_pods(&client, &n, "crash").await {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if !first_seen.iter().any(|(u, _)| *u == uid) {
                first_seen.push((uid.clone(), Instant::now()));
            }
            if pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed") {
                failed_seen.entry(uid.clone()).or_insert_with(Instant::now);
            }
            seen_pods.insert(uid, pod);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let failure = last_failure.expect("a failure in status.tasks.items[0].lastFailure");
    assert_eq!(failure.exit_code, Some(1), "{failure:?}");
    assert!(
        failure.message.contains(path),
        "the termination message names the file: {failure:?}"
    );
    assert!(
        delays.len() >= 4,
        "expected 4 restarts within 150 s, saw {delays:?}"
    );
    let d: Vec<f64> = delays.values().copied().collect();
    eprintln!("restart delays (restart number -> seconds): {delays:?}");
    for pair in d.windows(2) {
        assert!(pair[1] > pair[0], "restart delays must grow: {delays:?}");
    }
    assert!(
        d[0] >= 1.0 && d[0] <= 1.2 + 0.01,
        "first delay is initialBackoffSeconds plus jitter: {d:?}"
    );

    // Crash to replacement running: the failed pod's end to the next pod's start.
    let mut runs: Vec<(
        k8s_openapi::jiff::Timestamp,
        Option<k8s_openapi::jiff::Timestamp>,
    )> = seen_pods
        .values()
        .filter_map(|p| {
            let state = p
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .state
                .clone()?;
            let t = state.terminated?;
            Some((t.started_at?.0, t.finished_at.map(|f| f.0)))
        })
        .collect();
    runs.sort_by_key(|r| r.0);
    for pair in runs.windows(2) {
        if let Some(finished) = pair[0].1 {
            replacement_gaps.push(pair[1].0.duration_since(finished).as_secs_f64());
        }
    }
    eprintln!("MEASURED crash -> replacement running (s, API timestamps, 1 s resolution), one per restart: {replacement_gaps:?}");
    let observed: Vec<String> = first_seen
        .windows(2)
        .filter_map(|w| {
            let failed = failed_seen.get(&w[0].0)?;
            Some(format!(
                "{:.2}",
                w[1].1.duration_since(*failed).as_secs_f64()
            ))
        })
        .collect();
    eprintln!("MEASURED task pod seen Failed -> replacement pod seen (s, 200 ms polling), backoff 1 s doubling: {observed:?}");

    let c = connector(&client, &n, "crash").await;
    let degraded = condition(&c, "Degraded").expect("Degraded condition");
    assert_eq!(degraded.0, "True", "{degraded:?}");
    assert!(c.status.as_ref().unwrap().restarts.unwrap_or(0) >= 3);

    // Stopped wins over a crash loop.
    let stopped = yaml.replace("  restartPolicy:", "  state: Stopped\n  restartPolicy:");
    apply_connector(&client, &n, &stopped).await;
    wait_connector(&client, &n, "crash", "Stopped", START, |c| {
        c.status.as_ref().and_then(|s| s.state) == Some(ConnectorPhase::Stopped)
            && condition(c, "Ready").is_some_and(|r| r.0 == "True")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        task_pods(&client, &n, "crash").await.is_empty(),
        "no pod may run while Stopped"
    );
    let reasons: Vec<String> = event_reasons(&client, &n, "crash")
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert!(reasons.iter().any(|r| r == "TaskFailed"), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r == "RestartScheduled"),
        "{reasons:?}"
    );
    teardown(ns, operator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_error_is_reported_once_and_retried_only_after_a_spec_change() {
    let (stack, client, ns, operator) = setup("op-config").await;
    let n = ns.name.clone();
    let yaml = |label: &str| {
        format!(
            "metadata: {{name: bad}}\nspec:\n  kafka: {{bootstrapServers: '{}'}}\n  sink: {{topics: [bad], file: {{path: relative/out.txt}}}}\n  restartPolicy: {{initialBackoffSeconds: 1}}\n  template: {{pod: {{labels: {{attempt: '{label}'}}}}}}\n",
            stack.kafka_bootstrap
        )
    };
    apply_connector(&client, &n, &yaml("one")).await;
    let c = wait_connector(&client, &n, "bad", "ConfigurationError", START, |c| {
        condition(c, "Degraded").is_some_and(|d| d.1 == "ConfigurationError")
    })
    .await;
    let degraded = condition(&c, "Degraded").unwrap();
    let task = task_items(&c)[0].clone();
    let failure = task.last_failure.clone().unwrap();
    assert_eq!(failure.exit_code, Some(78));
    assert!(!failure.message.is_empty());
    assert!(
        degraded.2.contains(&failure.message),
        "the condition quotes the termination message: {degraded:?}"
    );
    let ready = condition(&c, "Ready").unwrap();
    assert_eq!(
        (ready.0.as_str(), ready.1.as_str()),
        ("False", "ConfigurationError")
    );
    assert!(task.next_restart_at.is_none());
    let first = uids(&task_pods(&client, &n, "bad").await);

    // Nothing is restarted while the spec stays the same.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        uids(&task_pods(&client, &n, "bad").await),
        first,
        "a configuration error must not be restarted"
    );
    let warnings = event_reasons(&client, &n, "bad")
        .await
        .into_iter()
        .filter(|e| e.0 == "ConfigurationError")
        .count();
    assert_eq!(warnings, 1, "exactly one ConfigurationError Event");

    // A spec change retries once.
    apply_connector(&client, &n, &yaml("two")).await;
    wait_for_named("a retried task pod", START, || async {
        let now = uids(&task_pods(&client, &n, "bad").await);
        (now.contains_key(&0) && now.get(&0) != first.get(&0)).then_some(())
    })
    .await
    .unwrap();
    let c = wait_connector(&client, &n, "bad", "the retry failed again", START, |c| {
        task_items(c)
            .first()
            .and_then(|t| t.last_failure.as_ref())
            .is_some_and(|f| Some(f.at.clone()) != Some(failure.at.clone()))
            && condition(c, "Degraded").is_some_and(|d| d.1 == "ConfigurationError")
    })
    .await;
    assert_eq!(task_items(&c)[0].restarts, 1);
    teardown(ns, operator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_one_connector_replaces_its_pods_one_at_a_time_and_leaves_another_untouched() {
    let (stack, client, ns, operator) = setup("op-iso").await;
    let n = ns.name.clone();
    let topic = format!("iso-{}", random_suffix(6));
    let a = |extra: &str| discard_sink("a", &topic, &stack.kafka_bootstrap, extra);
    apply_connector(&client, &n, &a("  tasks: 2")).await;
    apply_connector(
        &client,
        &n,
        &discard_sink("b", &topic, &stack.kafka_bootstrap, "  tasks: 2"),
    )
    .await;
    let a_before = uids(&wait_ready_tasks(&client, &n, "a", 2, START).await);
    let b_before = uids(&wait_ready_tasks(&client, &n, "b", 2, START).await);

    apply_connector(&client, &n, &a("  tasks: 2\n  errors: {tolerance: All}")).await;
    // Roll: never fewer than one ready task of A, until both are new.
    let deadline = Instant::now() + START;
    let mut min_ready = usize::MAX;
    loop {
        let pods = task_pods(&client, &n, "a").await;
        let ready = pods.values().filter(|p| pod_ready(p)).count();
        min_ready = min_ready.min(ready);
        let now = uids(&pods);
        if pods.len() == 2 && ready == 2 && now.iter().all(|(i, uid)| a_before.get(i) != Some(uid))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A was not rolled within {START:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        min_ready >= 1,
        "the rolling replacement took down both tasks of A at once"
    );

    let b_pods = task_pods(&client, &n, "b").await;
    assert_eq!(uids(&b_pods), b_before, "B's pods must not be replaced");
    for pod in b_pods.values() {
        assert!(pod_ready(pod));
        let restarts = pod
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0]
            .restart_count;
        assert_eq!(restarts, 0);
    }
    let b = connector(&client, &n, "b").await;
    assert_eq!(b.status.as_ref().unwrap().restarts, Some(0));
    teardown(ns, operator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_restart_leaves_running_tasks_untouched_and_converges() {
    let (stack, client, ns, operator) = setup("op-restart").await;
    let n = ns.name.clone();
    let topic = format!("restart-{}", random_suffix(6));
    let body = |extra: &str| discard_sink("r", &topic, &stack.kafka_bootstrap, extra);
    apply_connector(&client, &n, &body("  tasks: 2")).await;
    let before = uids(&wait_ready_tasks(&client, &n, "r", 2, START).await);
    wait_connector(&client, &n, "r", "Ready", START, |c| {
        condition(c, "Ready").is_some_and(|r| r.0 == "True")
    })
    .await;

    // Change the spec while no operator runs, then start a new one.
    operator.stop().await;
    apply_connector(&client, &n, &body("  tasks: 3")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(uids(&task_pods(&client, &n, "r").await), before);
    let operator = Operator::start(&stack, &n);
    let pods = wait_ready_tasks(&client, &n, "r", 3, START).await;
    let after = uids(&pods);
    assert_eq!(after[&0], before[&0]);
    assert_eq!(after[&1], before[&1]);
    wait_connector(&client, &n, "r", "3/3 Ready", START, |c| {
        c.status.as_ref().and_then(|s| s.tasks_ready.as_deref()) == Some("3/3")
            && condition(c, "Ready").is_some_and(|r| r.0 == "True")
    })
    .await;

    // A restart with nothing to do changes nothing, through several resyncs.
    operator.stop().await;
    let operator = Operator::start(&stack, &n);
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(uids(&task_pods(&client, &n, "r").await), after);
    let c = connector(&client, &n, "r").await;
    assert_eq!(c.status.as_ref().unwrap().restarts, Some(0));
    teardown(ns, operator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_and_the_other_takes_over() {
    let stack = Stack::from_env().expect("the local stack");
    let client = stack.client().await.expect("client");
    apply_crd(&stack, &client).await;
    let ns = TestNamespace::create(&client, "op-lease")
        .await
        .expect("namespace");
    let n = ns.name.clone();
    let lease_args = [
        "--leader-election",
        "true",
        "--lease-name",
        "ferry-e2e",
        "--lease-namespace",
        n.as_str(),
        "--lease-duration-seconds",
        "6",
    ];
    let first = Operator::start_with(&stack, &n, &lease_args);
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), &n);
    let holder = || async {
        leases
            .get_opt("ferry-e2e")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| !h.is_empty())
    };
    let first_holder = wait_for_named("a leader", Duration::from_secs(30), holder)
        .await
        .unwrap();
    let second = Operator::start_with(&stack, &n, &lease_args);
    let topic = format!("lease-{}", random_suffix(6));
    let body = |extra: &str| discard_sink("l", &topic, &stack.kafka_bootstrap, extra);
    apply_connector(&client, &n, &body("  tasks: 1")).await;
    let before = uids(&wait_ready_tasks(&client, &n, "l", 1, START).await);
    assert_eq!(
        holder().await.as_deref(),
        Some(first_holder.as_str()),
        "the standby must not take the Lease"
    );

    // The leader dies without releasing the Lease: the standby takes over once it expires.
    first.stop().await;
    let second_holder = wait_for_named("a new leader", Duration::from_secs(30), || async {
        holder().await.filter(|h| *h != first_holder)
    })
    .await
    .unwrap();
    assert_ne!(second_holder, first_holder);
    apply_connector(&client, &n, &body("  tasks: 2")).await;
    let after = uids(&wait_ready_tasks(&client, &n, "l", 2, START).await);
    assert_eq!(
        after[&0], before[&0],
        "the new leader keeps the running task"
    );
    teardown(ns, second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_killed_during_a_rolling_replacement_finishes_it_after_restart() {
    let (stack, client, ns, operator) = setup("op-midroll").await;
    let n = ns.name.clone();
    let topic = format!("midroll-{}", random_suffix(6));
    let body = |extra: &str| discard_sink("m", &topic, &stack.kafka_bootstrap, extra);
    apply_connector(&client, &n, &body("  tasks: 3")).await;
    let before = uids(&wait_ready_tasks(&client, &n, "m", 3, START).await);
    let old_hash = task_pods(&client, &n, "m").await[&0]
        .metadata
        .annotations
        .as_ref()
        .unwrap()["ferry.rs/config-hash"]
        .clone();

    apply_connector(&client, &n, &body("  tasks: 3\n  errors: {tolerance: All}")).await;
    // Kill the operator as soon as the first task was replaced.
    wait_for_named("the first replacement", START, || async {
        let now = uids(&task_pods(&client, &n, "m").await);
        now.iter()
            .any(|(i, uid)| before.get(i) != Some(uid))
            .then_some(())
    })
    .await
    .unwrap();
    operator.stop().await;
    let pods = task_pods(&client, &n, "m").await;
    let replaced = pods
        .iter()
        .filter(|(i, p)| before.get(i) != p.metadata.uid.as_ref())
        .count();
    assert!(replaced <= 1, "more than one task replaced at once");

    let operator = Operator::start(&stack, &n);
    let deadline = Instant::now() + START;
    let mut min_ready = usize::MAX;
    loop {
        let pods = task_pods(&client, &n, "m").await;
        let ready = pods.values().filter(|p| pod_ready(p)).count();
        min_ready = min_ready.min(ready);
        let all_new = pods.len() == 3
            && pods.values().all(|p| {
                p.metadata.annotations.as_ref().unwrap()["ferry.rs/config-hash"] != old_hash
            });
        if all_new && ready == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rolling replacement did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        min_ready >= 2,
        "the restarted operator took down more than one task at once"
    );
    wait_connector(&client, &n, "m", "Ready and up to date", START, |c| {
        condition(c, "Ready").is_some_and(|r| r.0 == "True")
            && condition(c, "Progressing").is_some_and(|p| p.0 == "False")
    })
    .await;
    teardown(ns, operator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_on_removal_deletes_the_sink_consumer_group_before_the_connector_goes() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::ClientConfig;

    let (stack, client, ns, operator) = setup("op-offsets").await;
    let n = ns.name.clone();
    let topic = format!("offsets-{}", random_suffix(6));
    let group = ferry_crds::contract::consumer_group(&n, "o");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()
        .expect("producer");
    for i in 0..10 {
        let value = format!("{{\"n\": {i}}}");
        producer
            .send(
                FutureRecord::<(), _>::to(&topic).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .expect("produce");
    }
    apply_connector(
        &client,
        &n,
        &discard_sink(
            "o",
            &topic,
            &stack.kafka_bootstrap,
            "  offsets: {deleteOnRemoval: true}",
        ),
    )
    .await;
    let c = wait_connector(&client, &n, "o", "the finalizer", START, |c| {
        c.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == "ferry.rs/delete-offsets"))
    })
    .await;
    assert!(c.metadata.finalizers.is_some());
    wait_ready_tasks(&client, &n, "o", 1, START).await;

    let bootstrap = stack.kafka_bootstrap.clone();
    let group_exists = move |group: String| {
        let bootstrap = bootstrap.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let consumer: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .create()
                    .expect("consumer");
                let list = consumer
                    .fetch_group_list(Some(&group), Duration::from_secs(10))
                    .expect("list groups");
                list.groups()
                    .iter()
                    .any(|g| g.name() == group && g.state() != "Dead")
            })
            .await
            .expect("group lookup")
        }
    };
    wait_for_named("the sink's consumer group", START, || {
        let check = group_exists.clone();
        let group = group.clone();
        async move { check(group).await.then_some(()) }
    })
    .await
    .unwrap();

    let api: Api<ferry_crds::KafkaConnector> = Api::namespaced(client.clone(), &n);
    api.delete("o", &Default::default())
        .await
        .expect("delete the connector");
    wait_for_named("the connector to be gone", START, || {
        let api = api.clone();
        async move { matches!(api.get_opt("o").await, Ok(None)).then_some(()) }
    })
    .await
    .unwrap();
    assert!(
        !group_exists(group.clone()).await,
        "consumer group {group} still exists"
    );
    let reasons = event_reasons(&client, &n, "o").await;
    assert!(
        reasons
            .iter()
            .any(|(r, note)| r == "OffsetsDeleted" && note.contains(&group)),
        "{reasons:?}"
    );
    teardown(ns, operator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_bookkeeping_survives_an_operator_restart() {
    let (stack, client, ns, operator) = setup("op-book").await;
    let n = ns.name.clone();
    let yaml = format!(
        "metadata: {{name: book}}\nspec:\n  kafka: {{bootstrapServers: '{}'}}\n  sink: {{topics: [book-{}], file: {{path: /proc/ferry-e2e-missing/out.txt}}}}\n  restartPolicy: {{initialBackoffSeconds: 8, maxBackoffSeconds: 60}}\n",
        stack.kafka_bootstrap,
        random_suffix(6)
    );
    apply_connector(&client, &n, &yaml).await;
    let c = wait_connector(&client, &n, "book", "the first failure", START, |c| {
        task_items(c)
            .first()
            .is_some_and(|t| t.restarts == 1 && t.next_restart_at.is_some())
    })
    .await;
    let first = task_items(&c)[0].clone();
    let failed_pod = uids(&task_pods(&client, &n, "book").await);

    // A new operator keeps the count, the failure and the restart time.
    operator.stop().await;
    let operator = Operator::start(&stack, &n);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c = connector(&client, &n, "book").await;
    let task = task_items(&c)[0].clone();
    assert_eq!(task.restarts, 1);
    assert_eq!(task.last_failure, first.last_failure);
    assert_eq!(task.next_restart_at, first.next_restart_at);
    assert_eq!(
        uids(&task_pods(&client, &n, "book").await),
        failed_pod,
        "restarted before its time"
    );

    // The restart happens at the recorded time, and the next delay doubles.
    let due = first.next_restart_at.clone().unwrap().0;
    wait_for_named("the restart", START, || async {
        let now = uids(&task_pods(&client, &n, "book").await);
        (now.contains_key(&0) && now != failed_pod).then_some(())
    })
    .await
    .unwrap();
    let late = k8s_openapi::jiff::Timestamp::now()
        .duration_since(due)
        .as_secs_f64();
    assert!(late > -1.0, "restarted {:.1} s before nextRestartAt", -late);
    let c = wait_connector(&client, &n, "book", "the second failure", START, |c| {
        task_items(c)
            .first()
            .is_some_and(|t| t.restarts == 2 && t.next_restart_at.is_some())
    })
    .await;
    let second = task_items(&c)[0].clone();
    let delay = second
        .next_restart_at
        .unwrap()
        .0
        .duration_since(second.last_failure.unwrap().at.unwrap().0)
        .as_secs_f64();
    assert!(
        (16.0..=19.3).contains(&delay),
        "second delay {delay} s, expected 16 s plus jitter"
    );
    teardown(ns, operator).await;
}

/// The operator's default task pod template (`--task-pod-template`) completes each
/// connector's own `spec.template.pod`: default labels, annotations and resources reach the
/// pods, the connector's keys win.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_task_pod_template_completes_the_connectors_own() {
    let stack = Stack::from_env().expect("the local stack");
    let client = stack.client().await.expect("client");
    apply_crd(&stack, &client).await;
    let ns = TestNamespace::create(&client, "op-template")
        .await
        .expect("namespace");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("task-pod-template.yaml");
    std::fs::write(
        &file,
        "labels: {team: platform, cost-center: \"42\"}\nannotations: {example.com/owner: platform}\nresources: {limits: {memory: 300Mi}}\n",
    )
    .expect("write the template");
    let path = file.display().to_string();
    let operator = Operator::start_with(
        &stack,
        &ns.name,
        &["--leader-election", "false", "--task-pod-template", &path],
    );
    let topic = format!("template-{}", random_suffix(6));
    apply_connector(
        &client,
        &ns.name,
        &discard_sink(
            "tmpl",
            &topic,
            &stack.kafka_bootstrap,
            "  template: {pod: {labels: {team: shop}}}",
        ),
    )
    .await;
    let pods = wait_ready_tasks(&client, &ns.name, "tmpl", 1, START).await;
    let meta = &pods[&0].metadata;
    let labels = meta.labels.as_ref().expect("labels");
    assert_eq!(labels["team"], "shop", "the connector's own label wins");
    assert_eq!(
        labels["cost-center"], "42",
        "the default's other labels stay"
    );
    assert_eq!(
        meta.annotations.as_ref().expect("annotations")["example.com/owner"],
        "platform"
    );
    let limits = pods[&0].spec.as_ref().expect("spec").containers[0]
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone())
        .expect("limits from the default template");
    assert_eq!(limits["memory"].0, "300Mi");
    teardown(ns, operator).await;
}

/// The operator is killed (SIGKILL) in the middle of a scale-down from 3 tasks to 1, after
/// it deleted the first surplus pod. Restarted, it finishes the scale-down without touching
/// the task that stays, and that task reads every partition to its end: no record is left
/// behind by the tasks that went away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_killed_during_a_scale_down_finishes_it_and_loses_nothing() {
    let (stack, client, ns, operator) = setup("op-midscale").await;
    let n = ns.name.clone();
    let topic = format!("midscale-{}", random_suffix(6));
    runner_support::create_topic(&stack.kafka_bootstrap, &topic, 6).await;
    let producer = runner_support::producer(&stack.kafka_bootstrap);
    let produce = |from: usize| {
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            for i in from..from + 600 {
                let key = format!("k{i}");
                producer
                    .send(
                        rdkafka::producer::FutureRecord::to(&topic)
                            .key(&key)
                            .payload("v"),
                        Duration::from_secs(10),
                    )
                    .await
                    .map_err(|(e, _)| e)
                    .expect("delivered");
            }
        }
    };
    produce(0).await;
    let body = |tasks: i32| {
        discard_sink(
            "s",
            &topic,
            &stack.kafka_bootstrap,
            &format!("  tasks: {tasks}\n  converters: {{key: {{string: {{}}}}, value: {{string: {{}}}}}}"),
        )
    };
    apply_connector(&client, &n, &body(3)).await;
    let before = uids(&wait_ready_tasks(&client, &n, "s", 3, START).await);

    apply_connector(&client, &n, &body(1)).await;
    wait_for_named("the first surplus task to go", START, || async {
        (task_pods(&client, &n, "s").await.len() < 3).then_some(())
    })
    .await
    .unwrap();
    operator.stop().await;
    produce(600).await;

    let operator = Operator::start(&stack, &n);
    wait_for_named("one task left", START, || async {
        let pods = task_pods(&client, &n, "s").await;
        (pods.len() == 1 && pods.get(&0).is_some_and(pod_ready)).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        uids(&task_pods(&client, &n, "s").await).get(&0),
        before.get(&0),
        "the task that stays is not restarted"
    );
    let group = format!("ferry.{n}.s");
    let read_everything = wait_for_named("every partition committed to its end", START, || {
        let (b, g, t) = (stack.kafka_bootstrap.clone(), group.clone(), topic.clone());
        async move {
            let offsets = tokio::task::spawn_blocking(move || group_offsets(&b, &g, &t, 6))
                .await
                .ok()?;
            offsets
                .values()
                .all(|(committed, end)| committed == end)
                .then_some(offsets)
        }
    })
    .await
    .unwrap();
    assert_eq!(
        read_everything.values().map(|(_, end)| end).sum::<i64>(),
        1200
    );
    wait_connector(&client, &n, "s", "Ready with 1 task", START, |c| {
        condition(c, "Ready").is_some_and(|r| r.0 == "True")
            && c.status.as_ref().is_some_and(|s| s.replicas == Some(1))
    })
    .await;
    teardown(ns, operator).await;
}

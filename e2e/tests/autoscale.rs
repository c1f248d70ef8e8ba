//! Task autoscaling against the local stack: a `discard` sink connector with
//! `spec.autoscaling`, driven by records produced here, scales up within its step limits to
//! its cap, back down to zero after its (short) window, wakes above its activation lag (also
//! with a drain-time target), and leaves a stuck partition out; every record produced is
//! committed (counted with the consumer group's committed offsets). A source connector's
//! backlog is read from its task's `/metrics`. Each test runs `target/debug/ferry-operator` for its own
//! namespace, evaluating every 2 seconds.

mod operator_support;
mod runner_support;

use std::time::{Duration, Instant};

use ferry_crds::status::AutoscalerStatus;
use ferry_crds::KafkaConnector;
use ferry_e2e::harness::{wait_for_named, Stack, TestNamespace};
use kube::Client;
use operator_support::*;
use rdkafka::producer::{FutureProducer, FutureRecord};
use runner_support::{create_topic, producer, unique};

const START: Duration = Duration::from_secs(90);
/// Longest wait for a backlog to be committed (see `wait_all_committed`).
const DRAIN: Duration = Duration::from_secs(180);

async fn setup(prefix: &str) -> (Stack, Client, TestNamespace, Operator) {
    let stack = Stack::from_env().expect("the local stack");
    let client = stack.client().await.expect("client");
    apply_crd(&stack, &client).await;
    let ns = TestNamespace::create(&client, prefix)
        .await
        .expect("namespace");
    let operator = Operator::start_with(
        &stack,
        &ns.name,
        &[
            "--leader-election",
            "false",
            "--autoscale-interval-seconds",
            "2",
        ],
    );
    (stack, client, ns, operator)
}

/// Produces `count` records, partition `i % partitions` for the i-th, and waits for all.
async fn produce_spread(
    producer: &FutureProducer,
    topic: &str,
    partitions: i32,
    count: usize,
    value: impl Fn(usize) -> String,
) {
    let mut pending = futures::stream::FuturesUnordered::new();
    for i in 0..count {
        let payload = value(i);
        let partition = (i as i32) % partitions;
        let topic = topic.to_string();
        pending.push(async move {
            let record: FutureRecord<'_, str, str> = FutureRecord::to(&topic)
                .partition(partition)
                .payload(&payload);
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e)
                .expect("delivered");
        });
        if pending.len() >= 2000 {
            futures::StreamExt::next(&mut pending).await;
        }
    }
    while futures::StreamExt::next(&mut pending).await.is_some() {}
}

fn autoscaler(c: &KafkaConnector) -> Option<AutoscalerStatus> {
    c.status.as_ref()?.autoscaler.clone()
}

async fn committed_total(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> i64 {
    let (b, g, t) = (bootstrap.to_string(), group.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        group_offsets(&b, &g, &t, partitions)
            .values()
            .map(|(c, _)| c)
            .sum()
    })
    .await
    .expect("offsets read")
}

async fn wait_all_committed(
    client: &Client,
    namespace: &str,
    connector: &str,
    (bootstrap, group, topic): (&str, &str, &str),
    partitions: i32,
    produced: i64,
) {
    // A liveness bound, not a speed check: a task removed while its partitions still had
    // lag leaves them unread for the session timeout (45 s) before another task takes them.
    let waited = wait_for_named(
        &format!("{produced} records committed by {group}"),
        DRAIN,
        || async {
            let (b, g, t) = (bootstrap.to_string(), group.to_string(), topic.to_string());
            let offsets =
                tokio::task::spawn_blocking(move || group_offsets(&b, &g, &t, partitions))
                    .await
                    .ok()?;
            let committed: i64 = offsets.values().map(|(c, _)| c).sum();
            let end: i64 = offsets.values().map(|(_, e)| e).sum();
            assert_eq!(end, produced, "log-end offsets: {offsets:?}");
            (committed == produced).then_some(())
        },
    )
    .await;
    if let Err(e) = waited {
        // What the next reader of a failure needs: where each partition stands, what the
        // autoscaler thought and which task pods exist.
        let (b, g, t) = (bootstrap.to_string(), group.to_string(), topic.to_string());
        let now = tokio::task::spawn_blocking(move || group_offsets(&b, &g, &t, partitions))
            .await
            .ok();
        let c = connector_status(client, namespace, connector).await;
        let pods = task_pods(client, namespace, connector).await;
        panic!(
            "{e}\n(committed, log end) per partition: {now:?}\nstatus: {c}\ntask pods: {pods:?}"
        );
    }
}

/// The connector's status as YAML, for failure messages.
async fn connector_status(client: &Client, namespace: &str, name: &str) -> String {
    let c = connector(client, namespace, name).await;
    serde_yaml::to_string(&c.status).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_scales_a_sink_up_to_its_cap_and_back_to_zero_without_losing_records() {
    let (stack, client, ns, operator) = setup("autoscale").await;
    let n = ns.name.clone();
    let bootstrap = stack.kafka_bootstrap.clone();
    let topic = unique("bursts");
    let partitions = 6;
    create_topic(&bootstrap, &topic, partitions).await;
    let group = format!("ferry.{n}.bursty");
    let yaml = discard_sink(
        "bursty",
        &topic,
        &bootstrap,
        "  autoscaling: {minTasks: 0, maxTasks: 4, lagPerTask: 2000, activationLag: 1000, \
         scaleDownStabilizationSeconds: 20, scaleDown: {tasks: 4, percent: 100}}",
    );
    apply_connector(&client, &n, &yaml).await;

    // Nothing to read: zero tasks, and the status says why.
    let c = wait_connector(
        &client,
        &n,
        "bursty",
        "an autoscaler decision",
        START,
        |c| autoscaler(c).is_some_and(|a| a.lag == Some(0)),
    )
    .await;
    let a = autoscaler(&c).unwrap();
    assert_eq!(a.desired_tasks, 0, "{a:?}");
    assert!(
        a.reason.contains("at or below activationLag 1000"),
        "{}",
        a.reason
    );
    assert!(task_pods(&client, &n, "bursty").await.is_empty());

    // A burst: 60000 waiting want 30 tasks, capped at maxTasks 4 (6 partitions have lag).
    let p = producer(&bootstrap);
    produce_spread(&p, &topic, partitions, 60_000, |i| format!("{{\"n\":{i}}}")).await;
    let burst_at = Instant::now();
    let c = wait_connector(&client, &n, "bursty", "scaled up to 4", START, |c| {
        autoscaler(c).is_some_and(|a| a.desired_tasks == 4)
    })
    .await;
    let decided = burst_at.elapsed();
    let reason = autoscaler(&c).unwrap().reason;
    eprintln!("scale-up decision after {decided:?}: {reason}");
    // An evaluation may land while the burst is still being produced: 0 -> 4 at once, or
    // 0 -> n -> 4 within the step limit (4 per 15 s).
    assert!(reason.contains("capped at maxTasks 4"), "{reason}");
    assert!(reason.contains("scaling up from"), "{reason}");
    wait_for_named("the first commit after the burst", START, || async {
        (committed_total(&bootstrap, &group, &topic, partitions).await > 0).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let consuming = burst_at.elapsed();
    eprintln!("from the burst to the first commit of the new tasks: {consuming:?}");
    let pods = task_pods(&client, &n, "bursty").await;
    assert_eq!(
        pods.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3],
        "four tasks, indexes 0..4"
    );
    wait_all_committed(
        &client,
        &n,
        "bursty",
        (&bootstrap, &group, &topic),
        partitions,
        60_000,
    )
    .await;

    // Drained: after the 20 s window every task is removed, and no record was lost.
    let drained_at = Instant::now();
    let c = wait_connector(&client, &n, "bursty", "scaled down to zero", START, |c| {
        autoscaler(c).is_some_and(|a| a.desired_tasks == 0)
    })
    .await;
    let down_after = drained_at.elapsed();
    eprintln!(
        "scale-down after {down_after:?}: {}",
        autoscaler(&c).unwrap().reason
    );
    assert!(
        down_after >= Duration::from_secs(10),
        "scaled down before the stabilization window: {down_after:?}"
    );
    wait_for_named("no task pods", START, || async {
        task_pods(&client, &n, "bursty")
            .await
            .is_empty()
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    wait_all_committed(
        &client,
        &n,
        "bursty",
        (&bootstrap, &group, &topic),
        partitions,
        60_000,
    )
    .await;

    let events = event_reasons(&client, &n, "bursty").await;
    let scaled: Vec<&String> = events
        .iter()
        .filter(|(r, _)| r == "Scaled")
        .map(|(_, note)| note)
        .collect();
    for note in &scaled {
        eprintln!("Event Scaled: {note}");
    }
    assert!(
        scaled
            .iter()
            .any(|n| n.starts_with("autoscaler: from ") && n.contains(" to 4 tasks: lag ")),
        "{scaled:?}"
    );
    // Scaling down may take two steps (4 -> 3 -> 0 when a partly drained burst wanted 3
    // within the window); Events of one direction form one series, so the first one shows.
    assert!(
        scaled
            .iter()
            .any(|n| n.starts_with("autoscaler: from 4 to ") && n.contains("scaling down from 4")),
        "{scaled:?}"
    );

    // Without autoscaling, spec.tasks and the /scale subresource own the count again.
    apply_connector(
        &client,
        &n,
        &discard_sink("bursty", &topic, &bootstrap, "  tasks: 1"),
    )
    .await;
    let scaled = stack
        .kubectl(["-n", n.as_str(), "scale", "kc/bursty", "--replicas=3"])
        .await
        .expect("kubectl scale");
    assert!(
        scaled.status.success(),
        "kubectl scale: {}",
        String::from_utf8_lossy(&scaled.stderr)
    );
    wait_ready_tasks(&client, &n, "bursty", 3, START).await;
    let c = connector(&client, &n, "bursty").await;
    assert!(autoscaler(&c).is_none(), "status.autoscaler stays: {c:?}");

    operator.stop().await;
    ns.cleanup().await.expect("namespace cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_partition_does_not_scale_the_connector_up() {
    let (stack, client, ns, operator) = setup("autoscale-stuck").await;
    let n = ns.name.clone();
    let bootstrap = stack.kafka_bootstrap.clone();
    let topic = unique("stuck");
    create_topic(&bootstrap, &topic, 4).await;
    // A record the JSON converter refuses, then 5000 behind it, all on partition 0: with
    // tolerance None the task fails on it again and again, and partition 0 never moves.
    let p = producer(&bootstrap);
    produce_spread(&p, &topic, 1, 1, |_| "not json".to_string()).await;
    produce_spread(&p, &topic, 1, 5000, |i| format!("{{\"n\":{i}}}")).await;
    let yaml = discard_sink(
        "stuck",
        &topic,
        &bootstrap,
        "  converters: {value: {json: {schemas: false}}}\n  errors: {tolerance: None}\n  \
         autoscaling: {minTasks: 1, maxTasks: 4, lagPerTask: 1000, persistentLagSeconds: 10, \
         scaleUpStabilizationSeconds: 15, scaleDownStabilizationSeconds: 5, \
         capAtPartitionsWithLag: false}",
    );
    apply_connector(&client, &n, &yaml).await;

    // 5001 waiting want 6 tasks, but the scale-up window (15 s) outlasts the persistent-lag
    // window (10 s): by the time a higher count has been wanted long enough, partition 0 is
    // known to be stuck and its lag no longer counts.
    let started = Instant::now();
    let mut seen = Vec::new();
    let c = loop {
        let c = connector(&client, &n, "stuck").await;
        if let Some(a) = autoscaler(&c) {
            seen.push(a.desired_tasks);
            if a.persistent_lag == Some(5001) {
                break c;
            }
        }
        assert!(
            started.elapsed() < START,
            "partition 0 was not left out as persistent within {START:?}: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let reason = autoscaler(&c).unwrap().reason;
    eprintln!("after {:?}: {reason}", started.elapsed());
    assert!(
        reason.contains(&format!(
            "5001 more left out as persistent ({topic}[0] at offset 0 for"
        )),
        "{reason}"
    );
    // Twenty more seconds: the count never rises.
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        let c = connector(&client, &n, "stuck").await;
        if let Some(a) = autoscaler(&c) {
            seen.push(a.desired_tasks);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(seen.iter().all(|&d| d == 1), "desired tasks seen: {seen:?}");
    assert!(task_pods(&client, &n, "stuck").await.len() <= 1);

    operator.stop().await;
    ns.cleanup().await.expect("namespace cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_at_zero_wakes_only_above_its_activation_lag() {
    let (stack, client, ns, operator) = setup("autoscale-wake").await;
    let n = ns.name.clone();
    let bootstrap = stack.kafka_bootstrap.clone();
    let topic = unique("wake");
    let partitions = 6;
    create_topic(&bootstrap, &topic, partitions).await;
    let group = format!("ferry.{n}.sleepy");
    let yaml = discard_sink(
        "sleepy",
        &topic,
        &bootstrap,
        "  autoscaling: {minTasks: 0, maxTasks: 4, lagPerTask: 2000, activationLag: 1000}",
    );
    apply_connector(&client, &n, &yaml).await;
    let c = wait_connector(
        &client,
        &n,
        "sleepy",
        "an autoscaler decision",
        START,
        |c| autoscaler(c).is_some_and(|a| a.lag == Some(0)),
    )
    .await;
    let a = autoscaler(&c).unwrap();
    assert_eq!(a.desired_tasks, 0, "{a:?}");
    assert!(
        a.reason.contains("at or below activationLag 1000"),
        "{}",
        a.reason
    );

    // Below the activation lag it stays asleep.
    let p = producer(&bootstrap);
    produce_spread(&p, &topic, partitions, 500, |i| format!("{{\"n\":{i}}}")).await;
    let c = wait_connector(&client, &n, "sleepy", "lag 500 seen", START, |c| {
        autoscaler(c).is_some_and(|a| a.lag == Some(500))
    })
    .await;
    assert_eq!(autoscaler(&c).unwrap().desired_tasks, 0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(task_pods(&client, &n, "sleepy").await.is_empty());

    // Above it, it wakes: 3500 waiting want 2 tasks.
    produce_spread(&p, &topic, partitions, 3000, |i| format!("{{\"w\":{i}}}")).await;
    let woke_at = Instant::now();
    let c = wait_connector(&client, &n, "sleepy", "woken", START, |c| {
        autoscaler(c).is_some_and(|a| a.desired_tasks > 0)
    })
    .await;
    let wake_decided = woke_at.elapsed();
    let reason = autoscaler(&c).unwrap().reason;
    eprintln!("wake decision after {wake_decided:?}: {reason}");
    assert!(reason.contains("scaling up from 0 to"), "{reason}");
    wait_for_named("the woken task's first commit", START, || async {
        (committed_total(&bootstrap, &group, &topic, partitions).await > 0).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "from lag above activationLag to the woken task's first commit: {:?}",
        woke_at.elapsed()
    );
    wait_all_committed(
        &client,
        &n,
        "sleepy",
        (&bootstrap, &group, &topic),
        partitions,
        3500,
    )
    .await;

    operator.stop().await;
    ns.cleanup().await.expect("namespace cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_time_target_wakes_a_sink_and_lets_it_sleep_once_drained() {
    let (stack, client, ns, operator) = setup("autoscale-drain").await;
    let n = ns.name.clone();
    let bootstrap = stack.kafka_bootstrap.clone();
    let topic = unique("drain");
    let partitions = 3;
    create_topic(&bootstrap, &topic, partitions).await;
    let group = format!("ferry.{n}.drainer");
    let yaml = discard_sink(
        "drainer",
        &topic,
        &bootstrap,
        "  autoscaling: {minTasks: 0, maxTasks: 3, drainSeconds: 30, \
         scaleDownStabilizationSeconds: 6, scaleDown: {tasks: 3, percent: 100}}",
    );
    apply_connector(&client, &n, &yaml).await;
    wait_connector(
        &client,
        &n,
        "drainer",
        "an autoscaler decision",
        START,
        |c| autoscaler(c).is_some_and(|a| a.lag == Some(0) && a.desired_tasks == 0),
    )
    .await;

    let p = producer(&bootstrap);
    produce_spread(&p, &topic, partitions, 3000, |i| format!("{{\"d\":{i}}}")).await;
    let c = wait_connector(&client, &n, "drainer", "woken", START, |c| {
        autoscaler(c).is_some_and(|a| a.desired_tasks > 0)
    })
    .await;
    let reason = autoscaler(&c).unwrap().reason;
    eprintln!("drain target, waking: {reason}");
    assert!(
        reason.contains("waking: wants 1 task until a consumption rate is measured"),
        "{reason}"
    );
    wait_all_committed(
        &client,
        &n,
        "drainer",
        (&bootstrap, &group, &topic),
        partitions,
        3000,
    )
    .await;

    let c = wait_connector(&client, &n, "drainer", "asleep again", START, |c| {
        autoscaler(c).is_some_and(|a| a.desired_tasks == 0)
    })
    .await;
    let reason = autoscaler(&c).unwrap().reason;
    eprintln!("drain target, drained: {reason}");
    assert!(reason.contains("wants 0 tasks"), "{reason}");
    assert!(reason.ends_with("scaling down from 1 to 0"), "{reason}");

    operator.stop().await;
    ns.cleanup().await.expect("namespace cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_reads_its_backlog_from_the_task_metrics_and_keeps_one_task() {
    let (stack, client, ns, operator) = setup("autoscale-source").await;
    let n = ns.name.clone();
    let bootstrap = stack.kafka_bootstrap.clone();
    let topic = unique("generated");
    create_topic(&bootstrap, &topic, 1).await;
    let yaml = format!(
        "metadata: {{name: generator}}\nspec:\n  kafka: {{bootstrapServers: '{bootstrap}'}}\n  \
         source: {{datagen: {{topic: {topic}, ratePerSecond: 50}}}}\n  \
         autoscaling: {{minTasks: 0, maxTasks: 3, lagPerTask: 1000}}\n"
    );
    apply_connector(&client, &n, &yaml).await;
    // The backlog comes from the running task's /metrics (`ferry_task_source_backlog_bytes`):
    // datagen has none, so the count stays at the one task a source always keeps.
    let c = wait_connector(&client, &n, "generator", "a backlog reading", START, |c| {
        autoscaler(c).is_some_and(|a| a.lag.is_some())
    })
    .await;
    let a = autoscaler(&c).unwrap();
    eprintln!("source: {}", a.reason);
    assert_eq!(a.lag, Some(0), "{a:?}");
    assert_eq!(a.desired_tasks, 1, "{a:?}");
    assert!(
        a.reason
            .starts_with("backlog 0; target 1000 per task: wants 0 tasks; at least 1 task"),
        "{}",
        a.reason
    );
    wait_ready_tasks(&client, &n, "generator", 1, START).await;

    operator.stop().await;
    ns.cleanup().await.expect("namespace cleanup");
}

//! Declarative offsets against the local stack (`spec.offsets`): each test runs
//! `target/debug/ferry-operator` for its own namespace, applies connectors as a user would,
//! and counts what the tasks write.
//!
//! - a sink replays everything exactly once per reset id (Earliest), from a time, and from
//!   explicit partition offsets; re-applying the same YAML resets nothing; a partition that
//!   does not exist is reported and leaves the offsets alone;
//! - a reset moves a sink that crash-loops on a poison record past it;
//! - a file source forgets its position (Earliest) or takes an explicit one, and
//!   `deleteOnRemoval` removes its stored offsets with the connector;
//! - a reset present at creation sets where the first task starts, and a reset interrupted
//!   by an operator restart is finished by the next operator.
//!
//! The sinks name a Java client key in `spec.kafka.config`, which the operator's Kafka clients
//! map as the tasks' do. The sinks' consumer groups use a 6 s session timeout, so that a reset does not wait 45 s
//! for the stopped tasks' static memberships to expire.

mod operator_support;
mod runner_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_crds::status::OffsetResetOutcome;
use ferry_crds::KafkaConnector;
use ferry_e2e::harness::{wait_for_named, Stack, TestNamespace};
use kube::api::DeleteParams;
use kube::{Api, Client};
use operator_support::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use runner_support::{create_topic, lines, producer, read_topic, unique};

const WAIT: Duration = Duration::from_secs(90);

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

/// A directory shared with the task processes, which run as another user with a read-only
/// root filesystem and their own `/tmp`: on the local kubelet `/dev/shm` is a separate
/// mount that stays writable.
fn work_dir(prefix: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = Path::new("/dev/shm").join(unique(prefix));
    std::fs::create_dir_all(&dir).expect("create the work directory");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
        .expect("open the work directory to the task user");
    dir
}

async fn produce_to(p: &FutureProducer, topic: &str, partition: i32, value: &str) {
    p.send(
        FutureRecord::<(), str>::to(topic)
            .partition(partition)
            .payload(value),
        Duration::from_secs(10),
    )
    .await
    .map_err(|(e, _)| e)
    .expect("delivered");
}

/// Waits until the file has exactly `count` lines, then checks it stays so for a moment
/// (nothing is written twice).
async fn wait_lines(path: &Path, count: usize, what: &str) -> Vec<String> {
    wait_for_named(what, WAIT, || async {
        (lines(path).len() >= count).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; the file has {} lines", lines(path).len()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = lines(path);
    assert_eq!(got.len(), count, "{what}: lines written\n{got:#?}");
    got
}

/// Waits until `status.offsetReset.appliedId` is `id`; returns the connector.
async fn wait_reset(client: &Client, namespace: &str, name: &str, id: &str) -> KafkaConnector {
    wait_connector(
        client,
        namespace,
        name,
        &format!("offsets reset {id} recorded"),
        WAIT,
        |c| {
            c.status
                .as_ref()
                .and_then(|s| s.offset_reset.as_ref())
                .is_some_and(|r| r.applied_id == id)
        },
    )
    .await
}

fn reset_record(c: &KafkaConnector) -> ferry_crds::status::OffsetResetStatus {
    c.status
        .as_ref()
        .and_then(|s| s.offset_reset.clone())
        .expect("status.offsetReset")
}

fn count(values: &[String], value: &str) -> usize {
    values.iter().filter(|v| v.as_str() == value).count()
}

/// A file sink. Its `spec.kafka.config` also names a Java client key (`max.request.size`,
/// librdkafka's `message.max.bytes`): the operator's own clients must map it as the tasks'
/// do, or every reset and offsets read of these tests fails.
fn sink_yaml(name: &str, bootstrap: &str, topic: &str, out: &Path, extra: &str) -> String {
    format!(
        "metadata: {{name: {name}}}\nspec:\n  kafka: {{bootstrapServers: '{bootstrap}', config: {{session.timeout.ms: '6000', max.request.size: '2000000'}}}}\n  sink: {{topics: [{topic}], file: {{path: {}}}}}\n  restartPolicy: {{initialBackoffSeconds: 1, maxBackoffSeconds: 4}}\n{extra}",
        out.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_replays_once_per_reset_id_from_earliest_a_time_and_explicit_offsets() {
    let (stack, client, ns, operator) = setup("offsets-sink").await;
    let n = ns.name.clone();
    let bootstrap = stack.kafka_bootstrap.clone();
    let topic = unique("offsets-sink");
    create_topic(&bootstrap, &topic, 2).await;
    let p = producer(&bootstrap);
    for i in 0..5 {
        produce_to(&p, &topic, 0, &format!("a{i}")).await;
        produce_to(&p, &topic, 1, &format!("b{i}")).await;
    }
    let out = work_dir("ferry-offsets-sink").join("out.txt");
    let base = |extra: &str| {
        sink_yaml(
            "replay",
            &bootstrap,
            &topic,
            &out,
            &format!("  converters: {{value: {{string: {{}}}}}}\n{extra}"),
        )
    };

    apply_connector(&client, &n, &base("")).await;
    wait_lines(&out, 10, "the first pass over the topic").await;

    // Earliest: everything once more, exactly once.
    let earliest = base("  offsets: {reset: {id: replay-1, to: Earliest}}\n");
    apply_connector(&client, &n, &earliest).await;
    let c = wait_reset(&client, &n, "replay", "replay-1").await;
    let record = reset_record(&c);
    assert_eq!(record.outcome, Some(OffsetResetOutcome::Applied));
    assert_eq!(
        record.result.as_deref(),
        Some(format!("2 partitions of {topic} moved; 10 records to read").as_str())
    );
    let got = wait_lines(&out, 20, "the replay from Earliest").await;
    for i in 0..5 {
        assert_eq!(count(&got, &format!("a{i}")), 2, "{got:#?}");
        assert_eq!(count(&got, &format!("b{i}")), 2, "{got:#?}");
    }
    let pods = wait_ready_tasks(&client, &n, "replay", 1, WAIT).await;

    // The same YAML again: nothing happens.
    apply_connector(&client, &n, &earliest).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let again = connector(&client, &n, "replay").await;
    assert_eq!(
        reset_record(&again).at,
        record.at,
        "the reset was applied again"
    );
    assert_eq!(
        uids(&task_pods(&client, &n, "replay").await),
        uids(&pods),
        "re-applying the same reset restarted the task"
    );
    assert_eq!(lines(&out).len(), 20);

    // A time: only the records written at or after it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    for i in 5..7 {
        produce_to(&p, &topic, 0, &format!("a{i}")).await;
        produce_to(&p, &topic, 1, &format!("b{i}")).await;
    }
    wait_lines(&out, 24, "the new records").await;
    apply_connector(
        &client,
        &n,
        &base(&format!(
            "  offsets: {{reset: {{id: since-1, to: '{since}'}}}}\n"
        )),
    )
    .await;
    let c = wait_reset(&client, &n, "replay", "since-1").await;
    assert_eq!(reset_record(&c).outcome, Some(OffsetResetOutcome::Applied));
    let got = wait_lines(&out, 28, "the replay from a time").await;
    let mut tail = got[24..].to_vec();
    tail.sort();
    assert_eq!(tail, vec!["a5", "a6", "b5", "b6"]);

    // Explicit offsets: partition 0 from offset 5 (a5, a6), partition 1 from 6 (b6).
    apply_connector(
        &client,
        &n,
        &base(&format!(
            "  offsets: {{reset: {{id: explicit-1, sinkOffsets: [{{topic: {topic}, partition: 0, offset: 5}}, {{topic: {topic}, partition: 1, offset: 6}}]}}}}\n"
        )),
    )
    .await;
    wait_reset(&client, &n, "replay", "explicit-1").await;
    let got = wait_lines(&out, 31, "the replay from explicit offsets").await;
    let mut tail = got[28..].to_vec();
    tail.sort();
    assert_eq!(tail, vec!["a5", "a6", "b6"]);

    // A partition the topic does not have: reported, offsets untouched, tasks back.
    apply_connector(
        &client,
        &n,
        &base(&format!(
            "  offsets: {{reset: {{id: explicit-2, sinkOffsets: [{{topic: {topic}, partition: 7, offset: 0}}]}}}}\n"
        )),
    )
    .await;
    let c = wait_reset(&client, &n, "replay", "explicit-2").await;
    let record = reset_record(&c);
    assert_eq!(record.outcome, Some(OffsetResetOutcome::Failed));
    assert_eq!(
        record.result.as_deref(),
        Some(
            format!(
                "spec.offsets.reset.sinkOffsets[0].partition: topic \"{topic}\" has no partition \
                 7 (it has 2 partitions)"
            )
            .as_str()
        )
    );
    wait_ready_tasks(&client, &n, "replay", 1, WAIT).await;
    wait_lines(&out, 31, "nothing replayed by the failed reset").await;

    let reasons = event_reasons(&client, &n, "replay").await;
    let of = |reason: &str| reasons.iter().filter(|(r, _)| r == reason).count();
    // One Event per reset, each with its own note.
    assert_eq!(of("OffsetsReset"), 3, "{reasons:#?}");
    assert!(
        reasons
            .iter()
            .any(|(r, note)| r == "OffsetsReset" && note.contains("\"since-1\"")),
        "{reasons:#?}"
    );
    assert!(of("ResettingOffsets") >= 1, "{reasons:#?}");
    assert!(
        reasons.iter().any(|(r, note)| r == "OffsetResetFailed"
            && note.contains("explicit-2")
            && note.contains("has no partition 7")),
        "{reasons:#?}"
    );
    let c = connector(&client, &n, "replay").await;
    let offsets = c
        .status
        .as_ref()
        .and_then(|s| s.offsets.clone())
        .expect("status.offsets");
    assert!(
        offsets.at.is_some() && offsets.error.is_none(),
        "{offsets:?}"
    );
    teardown(ns, operator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_moves_a_crash_looping_sink_past_a_poison_record() {
    let (stack, client, ns, operator) = setup("offsets-poison").await;
    let n = ns.name.clone();
    let bootstrap = stack.kafka_bootstrap.clone();
    let topic = unique("offsets-poison");
    create_topic(&bootstrap, &topic, 1).await;
    let p = producer(&bootstrap);
    for value in [r#"{"n":0}"#, r#"{"n":1}"#, "not json", r#"{"n":3}"#] {
        produce_to(&p, &topic, 0, value).await;
    }
    let out = work_dir("ferry-offsets-poison").join("out.txt");
    let json = "  converters: {value: {json: {schemas: false}}}\n  errors: {tolerance: None}\n";
    let yaml = sink_yaml("poison", &bootstrap, &topic, &out, json);
    apply_connector(&client, &n, &yaml).await;
    // The task fails on offset 2 again and again.
    wait_connector(
        &client,
        &n,
        "poison",
        "the task failing on the poison record",
        WAIT,
        |c| {
            c.status
                .as_ref()
                .and_then(|s| s.tasks.as_ref())
                .and_then(|t| t.items.first())
                .and_then(|t| t.last_failure.as_ref())
                .is_some_and(|f| f.exit_code == Some(65))
        },
    )
    .await;
    wait_connector(&client, &n, "poison", "a second failure", WAIT, |c| {
        c.status.as_ref().and_then(|s| s.restarts).unwrap_or(0) >= 1
    })
    .await;

    apply_connector(
        &client,
        &n,
        &format!(
            "{yaml}  offsets: {{reset: {{id: skip-poison, sinkOffsets: [{{topic: {topic}, partition: 0, offset: 3}}]}}}}\n"
        ),
    )
    .await;
    let c = wait_reset(&client, &n, "poison", "skip-poison").await;
    assert_eq!(reset_record(&c).outcome, Some(OffsetResetOutcome::Applied));
    wait_ready_tasks(&client, &n, "poison", 1, WAIT).await;
    let got = wait_lines(&out, 3, "the records around the poison one").await;
    assert!(got[2].contains('3'), "{got:#?}");
    teardown(ns, operator).await;
}

/// The stored source offsets of `namespace/connector`, folded from the offsets topic read
/// to its end.
fn stored_source_offsets(
    bootstrap: &str,
    namespace: &str,
    connector: &str,
) -> BTreeMap<String, String> {
    let topic = ferry_crds::contract::DEFAULT_OFFSETS_TOPIC;
    let prefix = ferry_kafka::offsets_topic::key_prefix(namespace, connector);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("ferry-e2e-offsets-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let timeout = Duration::from_secs(10);
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, timeout)
        .expect("the offsets topic's bounds");
    let mut out = BTreeMap::new();
    if high <= low {
        return out;
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition list");
    consumer.assign(&tpl).expect("assign");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} timed out"
        );
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
        if let Some(key) = key.filter(|k| k.starts_with(&prefix)) {
            match m.payload() {
                Some(v) => out.insert(key, String::from_utf8_lossy(v).into_owned()),
                None => out.remove(&key),
            };
        }
        if m.offset() + 1 >= high {
            return out;
        }
    }
}

async fn wait_records(bootstrap: &str, topic: &str, count: usize, what: &str) -> Vec<String> {
    let read = |expect, timeout| {
        read_topic(bootstrap, topic, expect, timeout)
            .into_iter()
            .map(|r| String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned())
            .collect::<Vec<_>>()
    };
    let first = read(count, WAIT);
    assert!(first.len() >= count, "{what}: {first:#?}");
    // Nothing more comes.
    let got = read(count + 1, Duration::from_secs(3));
    assert_eq!(got.len(), count, "{what}: {got:#?}");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_source_forgets_or_takes_its_position_and_its_offsets_go_with_it() {
    let (stack, client, ns, operator) = setup("offsets-source").await;
    let n = ns.name.clone();
    let bootstrap = stack.kafka_bootstrap.clone();
    let topic = unique("offsets-source");
    create_topic(&bootstrap, &topic, 1).await;
    let input = work_dir("ferry-offsets-source").join("in.txt");
    // Three bytes per line: l3 starts at byte 9.
    std::fs::write(&input, "l0\nl1\nl2\nl3\nl4\n").expect("write the input file");
    let base = |extra: &str| {
        format!(
            "metadata: {{name: lines}}\nspec:\n  kafka: {{bootstrapServers: '{bootstrap}'}}\n  source: {{file: {{path: {}, topic: {topic}, pollIntervalMs: 200}}}}\n  converters: {{value: {{string: {{}}}}}}\n  offsets: {{deleteOnRemoval: true{extra}}}\n",
            input.display()
        )
    };
    apply_connector(&client, &n, &base("")).await;
    wait_records(&bootstrap, &topic, 5, "the first pass over the file").await;

    apply_connector(&client, &n, &base(", reset: {id: again, to: Earliest}")).await;
    let c = wait_reset(&client, &n, "lines", "again").await;
    assert_eq!(
        reset_record(&c).result.as_deref(),
        Some("forgot the stored offsets of 1 source partition: the tasks start from the beginning")
    );
    wait_records(&bootstrap, &topic, 10, "the file read again").await;

    let explicit = format!(
        ", reset: {{id: from-l3, sourceOffsets: [{{partition: {{path: {}}}, offset: {{position: '9'}}}}]}}",
        input.display()
    );
    apply_connector(&client, &n, &base(&explicit)).await;
    wait_reset(&client, &n, "lines", "from-l3").await;
    let got = wait_records(&bootstrap, &topic, 12, "the file from l3").await;
    assert_eq!(got[10..], ["l3", "l4"]);

    // Another file's partition: refused, without stopping the task.
    let pods = wait_ready_tasks(&client, &n, "lines", 1, WAIT).await;
    apply_connector(
        &client,
        &n,
        &base(", reset: {id: wrong-file, sourceOffsets: [{partition: {path: /elsewhere.txt}, offset: {position: '0'}}]}"),
    )
    .await;
    let c = wait_reset(&client, &n, "lines", "wrong-file").await;
    let record = reset_record(&c);
    assert_eq!(record.outcome, Some(OffsetResetOutcome::Failed));
    assert!(
        record
            .result
            .as_deref()
            .is_some_and(|r| r.starts_with("spec.offsets.reset.sourceOffsets[0].partition:")),
        "{record:?}"
    );
    assert_eq!(uids(&task_pods(&client, &n, "lines").await), uids(&pods));

    // deleteOnRemoval: the stored offsets go with the connector.
    assert!(!stored_source_offsets(&bootstrap, &n, "lines").is_empty());
    let api: Api<KafkaConnector> = Api::namespaced(client.clone(), &n);
    api.delete("lines", &DeleteParams::default())
        .await
        .expect("delete the connector");
    wait_for_named("the connector to be gone", WAIT, || {
        let api = api.clone();
        async move { matches!(api.get_opt("lines").await, Ok(None)).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        stored_source_offsets(&bootstrap, &n, "lines"),
        BTreeMap::new()
    );
    teardown(ns, operator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_at_creation_sets_the_start_and_a_reset_survives_an_operator_restart() {
    let (stack, client, ns, operator) = setup("offsets-initial").await;
    let n = ns.name.clone();
    let bootstrap = stack.kafka_bootstrap.clone();
    let topic = unique("offsets-initial");
    create_topic(&bootstrap, &topic, 1).await;
    let p = producer(&bootstrap);
    for i in 0..5 {
        produce_to(&p, &topic, 0, &format!("old{i}")).await;
    }
    let out = work_dir("ferry-offsets-initial").join("out.txt");
    // A longer session timeout keeps the second reset waiting while the operator restarts.
    let yaml = |reset: &str| {
        format!(
            "metadata: {{name: late}}\nspec:\n  kafka: {{bootstrapServers: '{bootstrap}', config: {{session.timeout.ms: '12000'}}}}\n  sink: {{topics: [{topic}], file: {{path: {}}}}}\n  converters: {{value: {{string: {{}}}}}}\n  offsets: {{reset: {reset}}}\n",
            out.display()
        )
    };

    // Created with a reset: its first task starts at the end of the topic.
    apply_connector(&client, &n, &yaml("{id: from-end, to: Latest}")).await;
    let c = wait_reset(&client, &n, "late", "from-end").await;
    assert_eq!(
        reset_record(&c).result.as_deref(),
        Some(format!("1 partition of {topic} moved; 0 records to read").as_str())
    );
    wait_ready_tasks(&client, &n, "late", 1, WAIT).await;
    // The task may still be joining its group: produce once it holds the partition.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..2 {
        produce_to(&p, &topic, 0, &format!("new{i}")).await;
    }
    assert_eq!(
        wait_lines(&out, 2, "only the records written after creation").await,
        vec!["new0", "new1"]
    );

    // The operator dies while the reset waits for the consumer group; the next one finishes.
    apply_connector(&client, &n, &yaml("{id: replay-all, to: Earliest}")).await;
    wait_connector(&client, &n, "late", "resetting", WAIT, |c| {
        c.status.as_ref().and_then(|s| s.state)
            == Some(ferry_crds::status::ConnectorPhase::Resetting)
    })
    .await;
    operator.stop().await;
    let c = connector(&client, &n, "late").await;
    assert_eq!(
        reset_record(&c).applied_id,
        "from-end",
        "the reset finished too early"
    );
    assert!(task_pods(&client, &n, "late").await.is_empty());
    let operator = Operator::start(&stack, &n);
    wait_reset(&client, &n, "late", "replay-all").await;
    let got = wait_lines(&out, 9, "the replay after the operator restart").await;
    let mut replayed = got[2..].to_vec();
    replayed.sort();
    assert_eq!(
        replayed,
        vec!["new0", "new1", "old0", "old1", "old2", "old3", "old4"]
    );
    teardown(ns, operator).await;
}

/// The operator is killed (SIGKILL) in the middle of two resets, at different points: once
/// when the reset has stopped the tasks, once just after the reset was asked for. Restarted,
/// it finishes each reset exactly once: every record is read once per pass, never twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_killed_during_a_reset_applies_it_exactly_once() {
    let (stack, client, ns, mut operator) = setup("offsets-kill").await;
    let n = ns.name.clone();
    let bootstrap = stack.kafka_bootstrap.clone();
    let topic = unique("offsets-kill");
    create_topic(&bootstrap, &topic, 2).await;
    let p = producer(&bootstrap);
    for i in 0..5 {
        produce_to(&p, &topic, 0, &format!("a{i}")).await;
        produce_to(&p, &topic, 1, &format!("b{i}")).await;
    }
    let out = work_dir("ferry-offsets-kill").join("out.txt");
    let base = |extra: &str| {
        sink_yaml(
            "killed",
            &bootstrap,
            &topic,
            &out,
            &format!("  converters: {{value: {{string: {{}}}}}}\n{extra}"),
        )
    };
    apply_connector(&client, &n, &base("")).await;
    wait_lines(&out, 10, "the first pass over the topic").await;

    for (pass, id) in ["kill-when-stopped", "kill-at-once"].iter().enumerate() {
        let reset = base(&format!(
            "  offsets: {{reset: {{id: {id}, to: Earliest}}}}\n"
        ));
        apply_connector(&client, &n, &reset).await;
        if *id == "kill-when-stopped" {
            wait_for_named("the reset to stop the task", WAIT, || async {
                task_pods(&client, &n, "killed")
                    .await
                    .is_empty()
                    .then_some(())
            })
            .await
            .expect("task stopped for the reset");
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        operator.stop().await;
        operator = Operator::start(&stack, &n);
        let c = wait_reset(&client, &n, "killed", id).await;
        assert_eq!(
            reset_record(&c).outcome,
            Some(OffsetResetOutcome::Applied),
            "{id}"
        );
        let expected = 10 * (pass + 2);
        let got = wait_lines(&out, expected, &format!("the replay of {id}")).await;
        for i in 0..5 {
            assert_eq!(count(&got, &format!("a{i}")), pass + 2, "{id}: {got:#?}");
            assert_eq!(count(&got, &format!("b{i}")), pass + 2, "{id}: {got:#?}");
        }
    }
    teardown(ns, operator).await;
}

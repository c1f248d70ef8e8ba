//! Poison records against a real broker: with `tolerance: All` they go to the dead letter
//! queue with Kafka Connect's context headers and the task keeps running; with
//! `tolerance: None` the task fails with the record's coordinates in its termination message.

mod runner_support;

use std::time::{Duration, Instant};

use ferry_e2e::harness::Stack;
use runner_support::*;

/// Runs the runner on `file` until it exits (at most 60 s; `what` says why it should),
/// with its termination message written under `dir`: the exit code, the message and the
/// runner (for its log).
async fn run_until_it_stops(
    stack: &Stack,
    file: &std::path::Path,
    dir: &std::path::Path,
    what: &str,
) -> (Option<i32>, String, Runner) {
    let termination = dir.join("termination-log");
    let termination_env = termination.display().to_string();
    let mut runner = spawn_runner(
        stack,
        file,
        &free_admin_addr(),
        &[("FERRY_TERMINATION_LOG", &termination_env)],
    );
    let status = tokio::time::timeout(Duration::from_secs(60), runner.child.wait())
        .await
        .unwrap_or_else(|_| panic!("the runner stops on {what}"))
        .expect("exit status");
    let message = std::fs::read_to_string(&termination).unwrap_or_default();
    (status.code(), message, runner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_go_to_the_dead_letter_queue_with_context_headers() {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("dlq-in");
    let dlq = format!("{topic}-dlq");
    let name = unique("dlq");
    create_topic(&stack.kafka_bootstrap, &topic, 1).await;
    let p = producer(&stack.kafka_bootstrap);
    let mut poison_offsets = Vec::new();
    for i in 0..20 {
        if i % 5 == 3 {
            let o = produce(
                &p,
                &topic,
                Some(b"k-bad"),
                Some(b"{not json"),
                &[("trace", b"t-1")],
            )
            .await;
            poison_offsets.push(o);
        } else {
            produce(
                &p,
                &topic,
                Some(b"k"),
                Some(format!("{{\"n\":{i}}}").as_bytes()),
                &[],
            )
            .await;
        }
    }
    let out = dir.path().join("out.txt");
    let file = dir.path().join("sink.yaml");
    std::fs::write(
        &file,
        file_sink_yaml(
            &name,
            &stack.kafka_bootstrap,
            &topic,
            &out,
            &format!(
                "  converters: {{key: {{string: {{}}}}, value: {{json: {{schemas: false}}}}}}\n  errors: {{tolerance: All, logErrors: true, deadLetterQueue: {{topic: {dlq}, contextHeaders: true}}}}\n"
            ),
        ),
    )
    .expect("write");
    let admin = free_admin_addr();
    let mut runner = spawn_runner(&stack, &file, &admin, &[]);

    let deadline = Instant::now() + Duration::from_secs(60);
    while lines(&out).len() < 16 && Instant::now() < deadline {
        assert!(
            runner.child.try_wait().expect("wait").is_none(),
            "the runner stopped on a poison record with tolerance All"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(lines(&out).len(), 16, "every good record is written");
    let bootstrap = stack.kafka_bootstrap.clone();
    let dlq_topic = dlq.clone();
    let dead = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, &dlq_topic, 4, Duration::from_secs(30))
    })
    .await
    .expect("read dlq");
    assert_eq!(
        dead.len(),
        4,
        "one dead letter queue record per poison record"
    );
    for (r, offset) in dead.iter().zip(&poison_offsets) {
        assert_eq!(r.key.as_deref(), Some(&b"k-bad"[..]), "original key");
        assert_eq!(
            r.value.as_deref(),
            Some(&b"{not json"[..]),
            "original value bytes"
        );
        assert_eq!(
            r.header("trace").as_deref(),
            Some("t-1"),
            "original headers are kept"
        );
        assert_eq!(
            r.header("__connect.errors.topic").as_deref(),
            Some(topic.as_str())
        );
        assert_eq!(r.header("__connect.errors.partition").as_deref(), Some("0"));
        assert_eq!(
            r.header("__connect.errors.offset"),
            Some(offset.to_string())
        );
        assert_eq!(
            r.header("__connect.errors.connector.name").as_deref(),
            Some(name.as_str())
        );
        assert_eq!(r.header("__connect.errors.task.id").as_deref(), Some("0"));
        assert_eq!(
            r.header("__connect.errors.stage").as_deref(),
            Some("VALUE_CONVERTER")
        );
        assert!(r
            .header("__connect.errors.class.name")
            .is_some_and(|c| c.contains("converter")));
        assert!(r.header("__connect.errors.exception.class.name").is_some());
        assert!(r
            .header("__connect.errors.exception.message")
            .is_some_and(|m| !m.is_empty()));
        assert!(r.header("__connect.errors.exception.stacktrace").is_some());
    }
    // The metrics count them.
    let (_, metrics) = http_get(&admin, "/metrics").await.expect("metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ferry_task_dlq_records_total{") && l.ends_with(" 4")),
        "{metrics}"
    );
    assert!(metrics
        .lines()
        .any(|l| l.contains("ferry_task_errors_total{")
            && l.contains("stage=\"value_converter\"")
            && l.ends_with(" 4")));
    terminate(&runner.child);
    let status = runner.child.wait().await.expect("exit");
    assert!(status.success(), "graceful stop: {status}");
    // logErrors names each failed record; without logIncludeMessages it shows no contents.
    let log = std::fs::read_to_string(&runner.log).expect("runner log");
    for offset in &poison_offsets {
        let at = format!("{topic}/0@{offset}");
        assert!(
            log.lines()
                .any(|l| l.contains("record failed") && l.contains(&at)),
            "no error log line for {at}:\n{log}"
        );
    }
    assert!(
        !log.contains("{not json"),
        "record contents were logged:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_fails_the_task_with_tolerance_none() {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("poison");
    create_topic(&stack.kafka_bootstrap, &topic, 1).await;
    let p = producer(&stack.kafka_bootstrap);
    for i in 0..3 {
        produce(
            &p,
            &topic,
            None,
            Some(format!("{{\"n\":{i}}}").as_bytes()),
            &[],
        )
        .await;
    }
    let bad = produce(&p, &topic, None, Some(b"{broken"), &[]).await;
    produce(&p, &topic, None, Some(b"{\"n\":9}"), &[]).await;
    let out = dir.path().join("out.txt");
    let file = dir.path().join("sink.yaml");
    std::fs::write(
        &file,
        file_sink_yaml(
            &unique("poison"),
            &stack.kafka_bootstrap,
            &topic,
            &out,
            "  converters: {value: {json: {schemas: false}}}\n",
        ),
    )
    .expect("write");
    let (code, message, _runner) =
        run_until_it_stops(&stack, &file, dir.path(), "the poison record").await;
    assert_eq!(code, Some(65), "EXIT_RECORD_FAILED");
    let expected = format!("record {topic}/0@{bad} failed in VALUE_CONVERTER: ");
    assert!(
        message.starts_with(&expected),
        "termination message {message:?} should start with {expected:?}"
    );
    assert_eq!(
        lines(&out).len(),
        3,
        "the records before the poison record are written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_and_filtered_records_are_committed() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("skip");
    let name = unique("skip");
    create_topic(&stack.kafka_bootstrap, &topic, 1).await;
    let p = producer(&stack.kafka_bootstrap);
    for i in 0..12 {
        match i % 3 {
            0 => produce(&p, &topic, None, Some(b"{broken"), &[]).await,
            1 => {
                produce(
                    &p,
                    &topic,
                    None,
                    Some(format!("{{\"n\":{i}}}").as_bytes()),
                    &[("drop", b"1")],
                )
                .await
            }
            _ => {
                produce(
                    &p,
                    &topic,
                    None,
                    Some(format!("{{\"n\":{i}}}").as_bytes()),
                    &[],
                )
                .await
            }
        };
    }
    let out = dir.path().join("out.txt");
    let file = dir.path().join("sink.yaml");
    std::fs::write(
        &file,
        file_sink_yaml(
            &name,
            &stack.kafka_bootstrap,
            &topic,
            &out,
            "  converters: {value: {json: {schemas: false}}}\n  errors: {tolerance: All}\n  transforms:\n    - {name: dropMarked, filter: {}, predicate: {hasHeaderKey: {name: drop}}}\n",
        ),
    )
    .expect("write");
    let mut runner = spawn_runner(&stack, &file, &free_admin_addr(), &[]);
    let bootstrap = stack.kafka_bootstrap.clone();
    let group = format!("ferry.e2e.{name}");
    let t = topic.clone();
    let committed = tokio::task::spawn_blocking(move || {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", &group)
            .create()
            .expect("reader");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&t, 0);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let c = reader
                .committed_offsets(tpl.clone(), Duration::from_secs(10))
                .ok()
                .and_then(|c| c.elements().first().map(|e| e.offset()));
            if c == Some(Offset::Offset(12)) || std::time::Instant::now() > deadline {
                return c;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    })
    .await
    .expect("committed");
    assert_eq!(
        committed,
        Some(Offset::Offset(12)),
        "every record is committed\n{}",
        runner.log_tail()
    );
    let mut got = lines(&out);
    got.sort();
    assert_eq!(
        got,
        vec![r#"{"n":11}"#, r#"{"n":2}"#, r#"{"n":5}"#, r#"{"n":8}"#]
    );
    terminate(&runner.child);
    assert!(runner.child.wait().await.expect("exit").success());
}

/// A header name that is not UTF-8 (`trace\xff`, which any librdkafka producer can write)
/// on a record whose value fails conversion.
const NOT_UTF8_NAME: &[u8] = b"trace\xff";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_header_bytes_are_data_for_the_dead_letter_queue_not_a_panic() {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("odd-headers");
    let dlq = format!("{topic}-dlq");
    create_topic(&stack.kafka_bootstrap, &topic, 1).await;
    let p = producer(&stack.kafka_bootstrap);
    // A header value the simple header converter parses as Connect's value syntax, with a
    // character of three bytes before a ':'.
    produce(
        &p,
        &topic,
        None,
        Some(b"{\"n\":1}"),
        &[("price", "{€:1}".as_bytes())],
    )
    .await;
    produce_with_raw_header_name(
        &stack.kafka_bootstrap,
        &topic,
        NOT_UTF8_NAME,
        b"t-1",
        b"{bad",
    );
    produce(&p, &topic, None, Some(b"{\"n\":3}"), &[]).await;
    let out = dir.path().join("out.txt");
    let file = dir.path().join("sink.yaml");
    std::fs::write(
        &file,
        file_sink_yaml(
            &unique("odd-headers"),
            &stack.kafka_bootstrap,
            &topic,
            &out,
            &format!(
                "  converters: {{value: {{json: {{schemas: false}}}}}}\n  errors: {{tolerance: All, deadLetterQueue: {{topic: {dlq}}}}}\n  transforms:\n    - {{name: dropMarked, filter: {{}}, predicate: {{hasHeaderKey: {{name: drop}}}}}}\n"
            ),
        ),
    )
    .expect("write");
    let mut runner = spawn_runner(&stack, &file, &free_admin_addr(), &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines(&out).len() < 2 && Instant::now() < deadline {
        if let Some(status) = runner.child.try_wait().expect("wait") {
            panic!("the runner stopped ({status}):\n{}", runner.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(lines(&out).len(), 2, "both good records are written");
    let bootstrap = stack.kafka_bootstrap.clone();
    let dead = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, &dlq, 1, Duration::from_secs(30))
    })
    .await
    .expect("read dlq");
    assert_eq!(
        dead.len(),
        1,
        "the poison record is in the dead letter queue"
    );
    assert_eq!(
        dead[0].value.as_deref(),
        Some(&b"{bad"[..]),
        "its value bytes"
    );
    assert_eq!(
        dead[0].headers,
        vec![("trace\u{fffd}".to_string(), Some(b"t-1".to_vec()))],
        "its header, named as Kafka's Java client reads that name"
    );
    terminate(&runner.child);
    let status = runner.child.wait().await.expect("exit");
    assert!(status.success(), "graceful stop: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_name_that_is_not_utf8_fails_the_record_not_the_process() {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("odd-name");
    create_topic(&stack.kafka_bootstrap, &topic, 1).await;
    let p = producer(&stack.kafka_bootstrap);
    produce(&p, &topic, None, Some(b"{\"n\":0}"), &[]).await;
    produce_with_raw_header_name(
        &stack.kafka_bootstrap,
        &topic,
        NOT_UTF8_NAME,
        b"t-1",
        b"{bad",
    );
    let out = dir.path().join("out.txt");
    let file = dir.path().join("sink.yaml");
    std::fs::write(
        &file,
        file_sink_yaml(
            &unique("odd-name"),
            &stack.kafka_bootstrap,
            &topic,
            &out,
            "  converters: {value: {json: {schemas: false}}}\n",
        ),
    )
    .expect("write");
    let (code, message, runner) =
        run_until_it_stops(&stack, &file, dir.path(), "the poison record").await;
    assert_eq!(
        code,
        Some(65),
        "EXIT_RECORD_FAILED, not a panic:\n{}",
        runner.log_tail()
    );
    let expected = format!("record {topic}/0@1 failed in VALUE_CONVERTER: ");
    assert!(
        message.starts_with(&expected),
        "termination message {message:?} should start with {expected:?}"
    );
    assert_eq!(lines(&out).len(), 1, "the record before it is written");
}

/// A record over the task's limit (the consumer's `fetch.max.bytes`, here lowered to 4 KiB)
/// fails as a record in KAFKA_CONSUME, naming it, before anything decodes it. (It cannot go
/// to a dead letter queue written with the same settings: librdkafka requires
/// `fetch.max.bytes >= message.max.bytes`, so the queue's producer refuses it too, and the
/// task fails naming the record and the queue.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_over_the_tasks_limit_fails_as_a_record_before_it_is_decoded() {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("too-large");
    create_topic(&stack.kafka_bootstrap, &topic, 1).await;
    let p = producer(&stack.kafka_bootstrap);
    let large = format!("\"{}\"", "x".repeat(10_000));
    produce(&p, &topic, None, Some(b"\"small-1\""), &[]).await;
    let at = produce(&p, &topic, None, Some(large.as_bytes()), &[]).await;
    produce(&p, &topic, None, Some(b"\"small-2\""), &[]).await;
    let out = dir.path().join("out.txt");
    let file = dir.path().join("sink.yaml");
    std::fs::write(
        &file,
        file_sink_yaml(
            &unique("too-large"),
            &stack.kafka_bootstrap,
            &topic,
            &out,
            "  converters: {value: {json: {schemas: false}}}\n",
        )
        .replace(
            "kafka: {bootstrapServers: ",
            "kafka: {config: {fetch.max.bytes: \"4096\", max.partition.fetch.bytes: \"4096\", message.max.bytes: \"4096\"}, bootstrapServers: ",
        ),
    )
    .expect("write");
    let (code, message, runner) =
        run_until_it_stops(&stack, &file, dir.path(), "the large record").await;
    assert_eq!(code, Some(65), "EXIT_RECORD_FAILED:\n{}", runner.log_tail());
    let expected = format!("record {topic}/0@{at} failed in KAFKA_CONSUME: ");
    assert!(
        message.starts_with(&expected) && message.contains("more than the 4096 bytes"),
        "termination message {message:?} should start with {expected:?} and name the limit"
    );
    assert_eq!(
        lines(&out),
        vec!["small-1"],
        "the record before it is written"
    );
}

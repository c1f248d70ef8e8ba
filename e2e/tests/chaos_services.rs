//! Faults of the services under running pipelines (standalone runners on the real stack):
//! the Kafka broker killed with SIGKILL and restarted while a file → Kafka → file pipeline
//! runs, and PostgreSQL stopped in `immediate` mode and restarted under a `postgres` sink.
//! Records are counted by key: 0 lost.
//!
//! `FERRY_SERVICE_CRASHES` sets the faults per test (default 2; the documented full run uses
//! 10). These tests crash services every other test uses, so they live in a binary of
//! their own (cargo runs test binaries one after the other) and take turns.

mod runner_support;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use ferry_e2e::harness::Stack;
use runner_support::*;
use tokio::sync::Mutex;

/// One fault at a time.
static TURN: Mutex<()> = Mutex::const_new(());

fn crashes() -> u32 {
    std::env::var("FERRY_SERVICE_CRASHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// `e2e/stack crash <what> <down_for>`: returns once the service is back.
async fn crash(what: &str, down_for: u32) {
    let stack = Path::new(env!("CARGO_MANIFEST_DIR")).join("stack");
    let out = tokio::process::Command::new(&stack)
        .args(["crash", what, &down_for.to_string()])
        .output()
        .await
        .expect("run e2e/stack crash");
    assert!(
        out.status.success(),
        "e2e/stack crash {what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn alive(runner: &mut Runner, what: &str) {
    if let Some(status) = runner.child.try_wait().expect("wait") {
        panic!("the {what} stopped ({status}):\n{}", runner.log_tail());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_twice_loses_no_line_of_a_file_to_file_pipeline() {
    let _turn = TURN.lock().await;
    const LINES: u64 = 30_000;
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    let topic = unique("broker-crash");
    create_topic(&stack.kafka_bootstrap, &topic, 3).await;
    let source_file = dir.path().join("source.yaml");
    std::fs::write(
        &source_file,
        format!(
            "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: {topic}-src, namespace: e2e}}\nspec:\n  kafka: {{bootstrapServers: \"{}\"}}\n  source:\n    file: {{path: {}, topic: {topic}, batchSize: 500, pollIntervalMs: 50}}\n  converters: {{value: {{string: {{}}}}}}\n",
            stack.kafka_bootstrap,
            input.display()
        ),
    )
    .expect("write source");
    let sink_file = dir.path().join("sink.yaml");
    std::fs::write(
        &sink_file,
        file_sink_yaml(
            &format!("{topic}-sink"),
            &stack.kafka_bootstrap,
            &topic,
            &output,
            "  converters: {value: {string: {}}}\n",
        ),
    )
    .expect("write sink");
    // The first crash comes as the tasks start: they load their offsets and join their
    // group while the broker is down, and wait for it.
    let starting_crash = tokio::spawn(crash("kafka", 6));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut source = spawn_runner(&stack, &source_file, &free_admin_addr(), &[]);
    let mut sink = spawn_runner(&stack, &sink_file, &free_admin_addr(), &[]);
    starting_crash.await.expect("the crash at start");
    alive(&mut source, "source");
    alive(&mut sink, "sink");

    let faults = crashes();
    let mut f = std::fs::File::create(&input).expect("input");
    let per_step = LINES / u64::from(faults + 1);
    let mut written = 0;
    for step in 0..=faults {
        let end = if step == faults {
            LINES
        } else {
            written + per_step
        };
        for i in written..end {
            writeln!(f, "line-{i:08}").expect("append");
        }
        f.flush().expect("flush");
        written = end;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if step < faults {
            crash("kafka", 2).await;
            alive(&mut source, "source");
            alive(&mut sink, "sink");
        }
    }

    let deadline = Instant::now() + Duration::from_secs(180);
    let mut seen = BTreeSet::new();
    while Instant::now() < deadline {
        alive(&mut source, "source");
        alive(&mut sink, "sink");
        seen = lines(&output).into_iter().collect();
        if seen.len() as u64 >= LINES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let missing: Vec<u64> = (0..LINES)
        .filter(|i| !seen.contains(&format!("line-{i:08}")))
        .collect();
    let total = lines(&output).len();
    println!(
        "broker crashes: {} (one as the tasks start), lines {LINES}, written {total} ({} duplicates), lost {}",
        faults + 1,
        total - seen.len(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} lines lost after {} broker crashes, the first {:?}\nsource:\n{}\nsink:\n{}",
        missing.len(),
        faults + 1,
        &missing[..missing.len().min(5)],
        source.log_tail(),
        sink.log_tail()
    );
    stop_gracefully(&mut [&mut source, &mut sink]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_crashed_under_the_postgres_sink_ends_with_every_row() {
    let _turn = TURN.lock().await;
    const ROWS: i64 = 20_000;
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("db-crash").replace('-', "_");
    create_topic(&stack.kafka_bootstrap, &topic, 2).await;
    let file = dir.path().join("sink.yaml");
    std::fs::write(
        &file,
        format!(
            r#"apiVersion: ferry.rs/v1alpha1
kind: KafkaConnector
metadata: {{name: {name}, namespace: e2e}}
spec:
  kafka: {{bootstrapServers: "{bootstrap}"}}
  sink:
    topics: [{topic}]
    postgres: {{url: {{secretKeyRef: {{name: pg, key: url}}}}, insertMode: upsert, primaryKeyMode: recordKey, autoCreate: true}}
  converters: {{key: {{json: {{schemas: true}}}}, value: {{json: {{schemas: true}}}}}}
  errors: {{retryTimeoutSeconds: 300, retryMaxDelaySeconds: 2}}
"#,
            name = unique("db-crash"),
            bootstrap = stack.kafka_bootstrap
        ),
    )
    .expect("write the connector file");
    // The stack's PostgreSQL trades durability for speed (`synchronous_commit=off`): a
    // crash then loses transactions it had already confirmed, which no client can help.
    // The sink's sessions ask for durable commits, as a production server gives them.
    let separator = if stack.postgres_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let durable = format!(
        "{}{separator}options=-c%20synchronous_commit%3Don",
        stack.postgres_url
    );
    let mut sink = spawn_runner(
        &stack,
        &file,
        &free_admin_addr(),
        &[("FERRY_SINK_DATABASE_URL", &durable)],
    );
    let p = producer(&stack.kafka_bootstrap);
    let key_schema =
        r#"{"type":"struct","optional":false,"fields":[{"field":"id","type":"int64"}]}"#;
    let value_schema = r#"{"type":"struct","optional":false,"fields":[{"field":"id","type":"int64"},{"field":"v","type":"string"}]}"#;
    let faults = crashes();
    let per_step = ROWS / i64::from(faults + 1);
    let mut produced = 0;
    for step in 0..=faults {
        let end = if step == faults {
            ROWS
        } else {
            produced + per_step
        };
        let mut sends = Vec::new();
        for id in produced..end {
            let key = format!(r#"{{"schema":{key_schema},"payload":{{"id":{id}}}}}"#);
            let value =
                format!(r#"{{"schema":{value_schema},"payload":{{"id":{id},"v":"row-{id}"}}}}"#);
            let record = rdkafka::producer::FutureRecord::to(&topic)
                .key(key.as_bytes())
                .payload(value.as_bytes());
            sends.push(
                p.send_result(record)
                    .unwrap_or_else(|(e, _)| panic!("queue a record: {e}")),
            );
        }
        for s in sends {
            s.await.expect("delivery").expect("delivered");
        }
        produced = end;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if step < faults {
            crash("postgres", 3).await;
            alive(&mut sink, "sink");
        }
    }

    let (db, connection) = tokio_postgres::connect(&stack.postgres_url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut count = 0;
    while Instant::now() < deadline {
        alive(&mut sink, "sink");
        count = match db
            .query_one(
                &format!("SELECT count(*) FROM {topic} WHERE v = 'row-' || id"),
                &[],
            )
            .await
        {
            Ok(row) => row.get::<_, i64>(0),
            Err(_) => 0,
        };
        if count >= ROWS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("database crashes: {faults}, rows {ROWS}, in the table {count}");
    assert_eq!(
        count,
        ROWS,
        "rows missing after {faults} database crashes:\n{}",
        sink.log_tail()
    );
    terminate(&sink.child);
    let status = sink.child.wait().await.expect("exit");
    assert!(
        status.success(),
        "graceful stop: {status}\n{}",
        sink.log_tail()
    );
    db.batch_execute(&format!("DROP TABLE {topic}"))
        .await
        .expect("drop the table");
}

//! An at-least-once `postgres` sink across a rebalance, on the stack's PostgreSQL and Kafka:
//! a batch read before its partition was revoked must never be written after the
//! partition's new owner wrote newer records, or an upsert table keeps a stale row.
//!
//! Task A reads `k0=v1` and `k1=v1` (two partitions) and its write blocks on a row lock the
//! test holds. Task B joins the group and takes one partition over; the test cancels A's
//! blocked statement so that A goes back to retrying, produces `v2` for both keys, lets B's
//! write through first, then lets A retry. Without fencing, A's retry writes `v1` over B's
//! `v2`; with it, A leaves the revoked partition's record out. Both rows must end at `v2`.
//! A and B log in as different database users, so the test can tell their sessions apart.

mod runner_support;

use std::time::{Duration, Instant};

use ferry_e2e::harness::Stack;
use rdkafka::producer::FutureRecord;
use runner_support::*;
use tokio_postgres::{Client, NoTls};

const KEY_SCHEMA: &str =
    r#"{"type":"struct","optional":false,"fields":[{"field":"id","type":"int64"}]}"#;
const VALUE_SCHEMA: &str = r#"{"type":"struct","optional":false,"fields":[{"field":"id","type":"int64"},{"field":"v","type":"string"}]}"#;

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to the stack's PostgreSQL");
    tokio::spawn(connection);
    client
}

/// Produces `id=v` to `partition`.
async fn produce_row(
    p: &rdkafka::producer::FutureProducer,
    topic: &str,
    partition: i32,
    id: i64,
    v: &str,
) {
    let key = format!(r#"{{"schema":{KEY_SCHEMA},"payload":{{"id":{id}}}}}"#);
    let value = format!(r#"{{"schema":{VALUE_SCHEMA},"payload":{{"id":{id},"v":"{v}"}}}}"#);
    let record: FutureRecord<'_, str, str> = FutureRecord::to(topic)
        .partition(partition)
        .key(key.as_str())
        .payload(value.as_str());
    p.send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .expect("delivered");
}

/// Backends of `user` waiting for a lock.
async fn lock_waiters(db: &Client, user: &str) -> Vec<i32> {
    db.query(
        "SELECT pid FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock'",
        &[&user],
    )
    .await
    .expect("pg_stat_activity")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

async fn wait_for_lock_waiter(db: &Client, user: &str, runner: &mut Runner, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while lock_waiters(db, user).await.is_empty() {
        if let Some(status) = runner.child.try_wait().expect("wait") {
            panic!(
                "{what}: the runner stopped ({status}):\n{}",
                runner.log_tail()
            );
        }
        assert!(Instant::now() < deadline, "{what}:\n{}", runner.log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Cancels the statements `user`'s backends wait on (SQLSTATE 57014: the sink retries).
async fn cancel_waiting(db: &Client, user: &str) -> usize {
    let mut n = 0;
    for pid in lock_waiters(db, user).await {
        db.execute("SELECT pg_cancel_backend($1)", &[&pid])
            .await
            .expect("pg_cancel_backend");
        n += 1;
    }
    n
}

fn assigned_partitions(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("partitions assigned"))
        .map(|l| l.matches("partition:").count())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_a_revoked_partition_is_not_written_over_the_new_owner() {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("fence").replace('-', "_");
    let name = unique("fence");
    let db = connect(&stack.postgres_url).await;
    db.batch_execute(&format!(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ferry_fence_a') THEN CREATE ROLE ferry_fence_a LOGIN; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ferry_fence_b') THEN CREATE ROLE ferry_fence_b LOGIN; END IF;
         END $$;
         CREATE TABLE {topic} (id bigint PRIMARY KEY, v text NOT NULL);
         GRANT ALL ON {topic} TO ferry_fence_a, ferry_fence_b;
         INSERT INTO {topic} VALUES (0, 'v0'), (1, 'v0');"
    ))
    .await
    .expect("set up the table and the users");
    create_topic(&stack.kafka_bootstrap, &topic, 2).await;
    let p = producer(&stack.kafka_bootstrap);

    // The test holds both rows: every write of either task waits.
    let holder = connect(&stack.postgres_url).await;
    holder
        .batch_execute(&format!("BEGIN; SELECT * FROM {topic} FOR UPDATE"))
        .await
        .expect("lock the rows");

    let yaml = format!(
        r#"apiVersion: ferry.rs/v1alpha1
kind: KafkaConnector
metadata: {{name: {name}, namespace: e2e}}
spec:
  kafka: {{bootstrapServers: "{bootstrap}"}}
  sink:
    topics: [{topic}]
    postgres: {{url: {{secretKeyRef: {{name: pg, key: url}}}}, insertMode: upsert, primaryKeyMode: recordKey}}
  converters: {{key: {{json: {{schemas: true}}}}, value: {{json: {{schemas: true}}}}}}
  errors: {{retryTimeoutSeconds: 300, retryMaxDelaySeconds: 1}}
"#,
        bootstrap = stack.kafka_bootstrap
    );
    let file = dir.path().join("sink.yaml");
    std::fs::write(&file, &yaml).expect("write the connector file");
    let url_of = |user: &str| {
        stack
            .postgres_url
            .replacen("postgres@", &format!("{user}@"), 1)
    };
    let (url_a, url_b) = (url_of("ferry_fence_a"), url_of("ferry_fence_b"));
    let file_a = dir.path().join("a.yaml");
    let file_b = dir.path().join("b.yaml");
    std::fs::copy(&file, &file_a).expect("copy");
    std::fs::copy(&file, &file_b).expect("copy");

    produce_row(&p, &topic, 0, 0, "v1").await;
    produce_row(&p, &topic, 1, 1, "v1").await;
    let mut a = spawn_runner(
        &stack,
        &file_a,
        &free_admin_addr(),
        &[
            ("FERRY_SINK_DATABASE_URL", &url_a),
            ("FERRY_TASK_INDEX", "0"),
            ("FERRY_TASK_COUNT", "2"),
        ],
    );
    wait_for_lock_waiter(&db, "ferry_fence_a", &mut a, "task A never wrote").await;

    // B joins: one partition moves to it. A's revocation waits for A's blocked write, so
    // cancel that write until B has its partition.
    let mut b = spawn_runner(
        &stack,
        &file_b,
        &free_admin_addr(),
        &[
            ("FERRY_SINK_DATABASE_URL", &url_b),
            ("FERRY_TASK_INDEX", "1"),
            ("FERRY_TASK_COUNT", "2"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    while assigned_partitions(&b.log) == 0 {
        for r in [&mut a, &mut b] {
            if let Some(status) = r.child.try_wait().expect("wait") {
                panic!("a runner stopped ({status}):\n{}", r.log_tail());
            }
        }
        assert!(
            Instant::now() < deadline,
            "task B never got a partition:\nA:\n{}\nB:\n{}",
            a.log_tail(),
            b.log_tail()
        );
        cancel_waiting(&db, "ferry_fence_a").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Newer values for both keys; B's write of its partition queues on the lock.
    produce_row(&p, &topic, 0, 0, "v2").await;
    produce_row(&p, &topic, 1, 1, "v2").await;
    wait_for_lock_waiter(&db, "ferry_fence_b", &mut b, "task B never wrote").await;
    // A is retrying its old batch: send it back to its retry delay, then let B through.
    wait_for_lock_waiter(&db, "ferry_fence_a", &mut a, "task A stopped retrying").await;
    assert!(cancel_waiting(&db, "ferry_fence_a").await > 0);
    holder
        .batch_execute("COMMIT")
        .await
        .expect("release the rows");

    let deadline = Instant::now() + Duration::from_secs(60);
    let rows = loop {
        let rows: Vec<(i64, String)> = db
            .query(&format!("SELECT id, v FROM {topic} ORDER BY id"), &[])
            .await
            .expect("read the table")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let settled = rows.iter().all(|(_, v)| v == "v2");
        if settled || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Give a stale retry time to land, then read again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: Vec<(i64, String)> = db
        .query(&format!("SELECT id, v FROM {topic} ORDER BY id"), &[])
        .await
        .expect("read the table")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected = vec![(0, "v2".to_string()), (1, "v2".to_string())];
    assert_eq!(
        (rows, after),
        (expected.clone(), expected),
        "a row kept a value older than its partition's newest record:\nA:\n{}\nB:\n{}",
        a.log_tail(),
        b.log_tail()
    );
    stop_gracefully(&mut [&mut a, &mut b]).await;
    db.batch_execute(&format!("DROP TABLE {topic}"))
        .await
        .expect("drop the table");
}

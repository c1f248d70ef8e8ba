//! The `postgresCdc` source against the stack's real PostgreSQL and Kafka, the runner
//! standalone (`ferry-runner run -f`): snapshot then streaming of inserts, updates and
//! deletes with Debezium's envelope and types, resumption after kill -9 without loss, the
//! slot holding WAL until Kafka acknowledged, heartbeats on an idle table, and clear
//! configuration errors. Each test works in its own database and drops its slot.

mod runner_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use ferry_e2e::harness::{random_suffix, Stack};
use runner_support::{
    free_admin_addr, http_get, kill9, read_topic, spawn_runner, terminate, ReadRecord, Runner,
};
use serde_json::Value;
use tokio_postgres::{Client, NoTls};

/// A database of one test, dropped (with its slot) when the test ends, passed or not.
struct Db {
    name: String,
    admin_url: String,
    client: Client,
    host: String,
    port: u16,
}

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(conn);
    client
}

impl Db {
    async fn create(stack: &Stack) -> Db {
        let name = format!("cdc_{}", random_suffix(8).to_lowercase());
        connect(&stack.postgres_url)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let base = stack
            .postgres_url
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .expect("a database URL");
        let client = connect(&format!("{base}/{name}")).await;
        let authority = base.rsplit('@').next().unwrap_or("127.0.0.1:5432");
        let (host, port) = authority.split_once(':').unwrap_or((authority, "5432"));
        Db {
            name,
            admin_url: stack.postgres_url.clone(),
            client,
            host: host.to_string(),
            port: port.parse().expect("a port"),
        }
    }

    /// A connector reading this database, with `extra` lines in the plugin block.
    fn connector(&self, stack: &Stack, name: &str, extra: &str) -> String {
        format!(
            r#"apiVersion: ferry.rs/v1alpha1
kind: KafkaConnector
metadata: {{name: {name}, namespace: e2e}}
spec:
  kafka: {{bootstrapServers: "{bootstrap}"}}
  converters: {{key: {{json: {{schemas: false}}}}, value: {{json: {{schemas: false}}}}}}
  source:
    postgresCdc:
      host: {host}
      port: {port}
      database: {db}
      topicPrefix: {db}
      slotName: {db}
      heartbeatIntervalMs: 500
{extra}"#,
            bootstrap = stack.kafka_bootstrap,
            host = self.host,
            port = self.port,
            db = self.name,
        )
    }

    /// An LSN a query returns (0 when it returns no row or null).
    async fn lsn(&self, sql: &str) -> u64 {
        let row = self.client.query_opt(sql, &[]).await.expect(sql);
        let text: Option<String> = row.and_then(|r| r.get(0));
        parse_lsn(&text.unwrap_or_default())
    }

    async fn confirmed(&self) -> u64 {
        self.lsn(&format!(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{}'",
            self.name
        ))
        .await
    }

    /// The end of the WAL written so far (inserted, not only flushed: the stack's
    /// PostgreSQL may commit asynchronously).
    async fn current(&self) -> u64 {
        self.lsn("SELECT pg_current_wal_insert_lsn()::text").await
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let name = self.name.clone();
        // One statement at a time: DROP DATABASE cannot run in the implicit transaction of
        // a multi-statement query.
        let statements = [
            format!("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{name}' AND active"),
            format!("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{name}'"),
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("DROP ROLE IF EXISTS {name}_reader"),
        ];
        let url = self.admin_url.clone();
        // Drop runs inside the test's runtime: clean up from a thread with its own.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok((client, conn)) = tokio_postgres::connect(&url, NoTls).await else {
                    return;
                };
                tokio::spawn(conn);
                for sql in &statements {
                    // A terminated walsender may hold its slot for a moment.
                    for _ in 0..20 {
                        if client.batch_execute(sql).await.is_ok() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

fn parse_lsn(text: &str) -> u64 {
    text.split_once('/')
        .and_then(|(h, l)| {
            Some((u64::from_str_radix(h, 16).ok()? << 32) | u64::from_str_radix(l, 16).ok()?)
        })
        .unwrap_or(0)
}

fn write_file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write connector file");
    path
}

fn json(bytes: &Option<Vec<u8>>) -> Value {
    bytes
        .as_ref()
        .map(|b| serde_json::from_slice(b).expect("JSON"))
        .unwrap_or(Value::Null)
}

/// Reads `topic` until at least `n` records arrived.
fn wait_records(stack: &Stack, topic: &str, n: usize, runner: &Runner) -> Vec<ReadRecord> {
    let records = read_topic(&stack.kafka_bootstrap, topic, n, Duration::from_secs(60));
    assert!(
        records.len() >= n,
        "{topic}: {} of {n} records\n{}",
        records.len(),
        runner.log_tail()
    );
    records
}

async fn stop(runner: &mut Runner) {
    terminate(&runner.child);
    let _ = tokio::time::timeout(Duration::from_secs(30), runner.child.wait()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_then_changes_in_debezium_envelopes() {
    let stack = Stack::from_env().expect("stack env");
    let db = Db::create(&stack).await;
    db.client
        .batch_execute(
            "CREATE TYPE mood AS ENUM ('sad', 'happy');
             CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2),
               ratio numeric, born date, at time, ts timestamp, tz timestamptz, doc jsonb,
               uid uuid, raw bytea, tags text[], m mood, f float8, ok bool, small int2, big int8);
             CREATE TABLE full_rows (id int PRIMARY KEY, v text);
             ALTER TABLE full_rows REPLICA IDENTITY FULL;
             INSERT INTO items VALUES (1, 'one', 12.5, 3.14159, '2000-01-02', '01:02:03.5',
               '2024-01-02 03:04:05.000006', '2024-01-02 03:04:05+02', '{\"a\": 1}',
               'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff', '{a,\"b c\",NULL}', 'happy',
               1.5, true, -3, 9000000000);
             INSERT INTO items (id, name) SELECT g, 'item ' || g FROM generate_series(2, 500) g;
             INSERT INTO full_rows VALUES (1, 'a');
             CREATE TABLE keyless (v int);
             INSERT INTO keyless SELECT generate_series(1, 300);",
        )
        .await
        .expect("schema and rows");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_file(
        dir.path(),
        "cdc.yaml",
        &db.connector(
            &stack,
            "cdc",
            "      snapshotFetchSize: 128\n      maxBatchSize: 50\n",
        ),
    );
    let started = Instant::now();
    let mut runner = spawn_runner(&stack, &file, &free_admin_addr(), &[]);
    let items = format!("{}.public.items", db.name);
    let snap = wait_records(&stack, &items, 500, &runner);
    let took = started.elapsed();
    assert_eq!(snap.len(), 500, "every row once");
    let first = json(&snap[0].value);
    assert_eq!(json(&snap[0].key), serde_json::json!({"id": 1}));
    assert_eq!(first["op"], "r");
    assert_eq!(first["before"], Value::Null);
    let after = &first["after"];
    assert_eq!(after["name"], "one");
    assert_eq!(after["price"], "BOI=", "Decimal(2) 12.50 as base64 of 1250");
    assert_eq!(
        after["ratio"],
        serde_json::json!({"scale": 5, "value": "BMsv"})
    );
    assert_eq!(after["born"], 10958, "days since 1970");
    assert_eq!(after["at"], 3_723_500_000i64, "MicroTime");
    assert_eq!(after["ts"], 1_704_164_645_000_006i64, "MicroTimestamp");
    assert_eq!(after["tz"], "2024-01-02T01:04:05Z");
    assert_eq!(after["doc"], "{\"a\": 1}");
    assert_eq!(after["uid"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(after["raw"], "AP8=");
    assert_eq!(after["tags"], serde_json::json!(["a", "b c", null]));
    assert_eq!(after["m"], "happy");
    assert_eq!(after["small"], -3);
    assert_eq!(after["big"], 9_000_000_000i64);
    let source = &first["source"];
    assert_eq!(source["connector"], "postgresql");
    assert_eq!(source["name"], db.name.as_str());
    assert_eq!(source["db"], db.name.as_str());
    assert_eq!(source["table"], "items");
    assert_eq!(source["schema"], "public");
    assert_eq!(source["snapshot"], "true");
    assert_eq!(json(&snap[499].value)["source"]["snapshot"], "true");
    let keys: BTreeSet<i64> = snap
        .iter()
        .map(|r| json(&r.key)["id"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(keys.len(), 500);
    println!(
        "snapshot: 500 rows (plus the full_rows table) in Kafka {:.2}s after start (debug build, process start included)",
        took.as_secs_f64()
    );

    db.client
        .batch_execute(
            "INSERT INTO items (id, name) VALUES (1000, 'new');
             UPDATE items SET name = 'renamed' WHERE id = 2;
             DELETE FROM items WHERE id = 3;
             UPDATE items SET id = 4000 WHERE id = 4;
             UPDATE full_rows SET v = 'b' WHERE id = 1;",
        )
        .await
        .expect("changes");
    // Create, update, delete + tombstone, key change (delete + tombstone + create).
    let all = wait_records(&stack, &items, 507, &runner);
    let changes: Vec<(Value, Value)> = all[500..]
        .iter()
        .map(|r| (json(&r.key), json(&r.value)))
        .collect();
    let ops: Vec<&str> = changes
        .iter()
        .map(|(_, v)| v["op"].as_str().unwrap_or("tombstone"))
        .collect();
    assert_eq!(ops, ["c", "u", "d", "tombstone", "d", "tombstone", "c"]);
    assert_eq!(changes[0].1["after"]["name"], "new");
    assert_eq!(changes[0].1["source"]["snapshot"], "false");
    assert!(changes[0].1["source"]["lsn"].as_i64().unwrap_or(0) > 0);
    assert!(changes[0].1["source"]["txId"].as_i64().unwrap_or(0) > 0);
    assert!(changes[0].1["source"]["ts_ms"].as_i64().unwrap_or(0) > 1_600_000_000_000);
    assert_eq!(
        changes[1].1["before"],
        Value::Null,
        "default replica identity"
    );
    assert_eq!(changes[1].1["after"]["name"], "renamed");
    assert_eq!(changes[2].0, serde_json::json!({"id": 3}));
    assert_eq!(changes[2].1["before"]["id"], 3);
    assert_eq!(changes[3].0, serde_json::json!({"id": 3}));
    assert_eq!(changes[4].0, serde_json::json!({"id": 4}));
    assert_eq!(changes[6].0, serde_json::json!({"id": 4000}));
    let full = wait_records(&stack, &format!("{}.public.full_rows", db.name), 2, &runner);
    let update = json(&full[1].value);
    assert_eq!(update["op"], "u");
    assert_eq!(
        update["before"]["v"], "a",
        "REPLICA IDENTITY FULL sends the old row"
    );
    assert_eq!(update["after"]["v"], "b");
    // A table without primary key: paged by ctid, events without key.
    let keyless = wait_records(&stack, &format!("{}.public.keyless", db.name), 300, &runner);
    let values: BTreeSet<i64> = keyless
        .iter()
        .map(|r| json(&r.value)["after"]["v"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(values.len(), 300, "every row once, over three pages");
    assert_eq!(
        json(&keyless[299].value)["source"]["snapshot"],
        "last",
        "the snapshot's last row"
    );
    assert!(keyless
        .iter()
        .all(|r| r.key.is_none() || json(&r.key).is_null()));
    let (_, metrics) = http_get(&runner.admin, "/metrics").await.expect("metrics");
    assert!(
        metrics.contains("ferry_task_source_backlog_bytes{"),
        "{metrics}"
    );
    stop(&mut runner).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_stream_loses_nothing() {
    let stack = Stack::from_env().expect("stack env");
    let db = Db::create(&stack).await;
    db.client
        .batch_execute("CREATE TABLE events (id int PRIMARY KEY, payload text)")
        .await
        .expect("table");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_file(dir.path(), "cdc.yaml", &db.connector(&stack, "resume", ""));
    let admin = free_admin_addr();
    let mut runner = spawn_runner(&stack, &file, &admin, &[]);
    // Wait until the slot exists and streaming started.
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.confirmed().await == 0 {
        assert!(Instant::now() < deadline, "no slot\n{}", runner.log_tail());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    const ROWS: i32 = 3000;
    let writer = {
        let client = connect(&format!(
            "{}/{}",
            stack
                .postgres_url
                .rsplit_once('/')
                .map(|(b, _)| b)
                .unwrap_or_default(),
            db.name
        ))
        .await;
        tokio::spawn(async move {
            // 60 transactions over about 3 s.
            for batch in 0..(ROWS / 50) {
                let from = batch * 50 + 1;
                client
                    .batch_execute(&format!(
                        "INSERT INTO events SELECT g, 'p' || g FROM generate_series({from}, {}) g",
                        from + 49
                    ))
                    .await
                    .expect("insert");
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    // Mid-stream, after the first offsets were stored (every 500 ms).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        !writer.is_finished(),
        "the kill comes while rows are being written"
    );
    kill9(&runner.child);
    let _ = runner.child.wait().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut runner = spawn_runner(&stack, &file, &admin, &[]);
    writer.await.expect("writer");
    let topic = format!("{}.public.events", db.name);
    let deadline = Instant::now() + Duration::from_secs(90);
    let (records, keys) = loop {
        // Everything the topic holds (duplicates included): wait for more than can come.
        let records = read_topic(
            &stack.kafka_bootstrap,
            &topic,
            ROWS as usize * 4,
            Duration::from_secs(8),
        );
        let keys: BTreeSet<i64> = records
            .iter()
            .map(|r| json(&r.key)["id"].as_i64().unwrap_or(-1))
            .collect();
        if keys.len() == ROWS as usize || Instant::now() > deadline {
            break (records, keys);
        }
    };
    assert_eq!(
        keys.len(),
        ROWS as usize,
        "every inserted row reached Kafka after kill -9 and restart\n{}",
        runner.log_tail()
    );
    assert_eq!(keys.first(), Some(&1));
    assert_eq!(keys.last(), Some(&i64::from(ROWS)));
    println!(
        "kill -9 mid-stream: {ROWS} rows, {} records ({} written twice)",
        records.len(),
        records.len() - ROWS as usize
    );
    stop(&mut runner).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slot_keeps_wal_until_kafka_acknowledged_and_heartbeats_release_it() {
    let stack = Stack::from_env().expect("stack env");
    let db = Db::create(&stack).await;
    db.client
        .batch_execute(
            "CREATE TABLE watched (id int PRIMARY KEY); CREATE TABLE other (id int PRIMARY KEY)",
        )
        .await
        .expect("tables");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_file(
        dir.path(),
        "cdc.yaml",
        &db.connector(
            &stack,
            "wal",
            "      tableIncludeList: ['public\\.watched']\n",
        ),
    );
    let state = dir.path().join("state");
    std::fs::write(&state, "Running").expect("state file");
    let state_env = state.display().to_string();
    let mut runner = spawn_runner(
        &stack,
        &file,
        &free_admin_addr(),
        &[("FERRY_STATE_FILE", state_env.as_str())],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.confirmed().await == 0 {
        assert!(Instant::now() < deadline, "no slot\n{}", runner.log_tail());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Heartbeat: changes the connector does not capture do not pin WAL.
    db.client
        .batch_execute("INSERT INTO other SELECT generate_series(1, 100)")
        .await
        .expect("insert other");
    let written = db.current().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.confirmed().await < written {
        assert!(
            Instant::now() < deadline,
            "confirmed_flush_lsn stays behind {written:X} on an idle table\n{}",
            runner.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Paused, nothing reaches Kafka: the slot keeps the change.
    std::fs::write(&state, "Paused").expect("pause");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let progress = http_get(&runner.admin, "/progress").await.map(|(_, b)| b);
        if progress.is_some_and(|b| b.contains("\"state\":\"Paused\"")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not paused\n{}",
            runner.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    db.client
        .batch_execute("INSERT INTO watched VALUES (1)")
        .await
        .expect("insert watched");
    let written = db.current().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let held = db.confirmed().await;
    assert!(
        held < written,
        "the slot confirmed {held:X} past an unsent change at {written:X}"
    );
    let topic = format!("{}.public.watched", db.name);
    assert!(read_topic(&stack.kafka_bootstrap, &topic, 1, Duration::from_secs(2)).is_empty());

    // Running again: the change reaches Kafka, then the slot moves past it.
    std::fs::write(&state, "Running").expect("resume");
    wait_records(&stack, &topic, 1, &runner);
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.confirmed().await < written {
        assert!(
            Instant::now() < deadline,
            "the slot stays behind an acknowledged change\n{}",
            runner.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop(&mut runner).await;
}

/// Runs a connector that must stop with a configuration error; returns its termination
/// message.
async fn config_error(stack: &Stack, db: &Db, name: &str, yaml: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_file(dir.path(), "cdc.yaml", yaml);
    let termination = dir.path().join("termination-log");
    let termination_env = termination.display().to_string();
    let mut runner = spawn_runner(
        stack,
        &file,
        &free_admin_addr(),
        &[("FERRY_TERMINATION_LOG", termination_env.as_str())],
    );
    let status = tokio::time::timeout(Duration::from_secs(60), runner.child.wait())
        .await
        .unwrap_or_else(|_| panic!("{name}: still running\n{}", runner.log_tail()))
        .expect("exit status");
    assert_eq!(
        status.code(),
        Some(78),
        "{name}: EXIT_CONFIG_ERROR\n{}",
        runner.log_tail()
    );
    let _ = db;
    std::fs::read_to_string(&termination).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_errors_name_the_field_and_the_column() {
    let stack = Stack::from_env().expect("stack env");
    let db = Db::create(&stack).await;
    let role = format!("{}_reader", db.name);
    db.client
        .batch_execute(&format!(
            "CREATE TABLE orders (id int PRIMARY KEY);
             CREATE TABLE spans (id int PRIMARY KEY, took interval);
             CREATE ROLE {role} LOGIN;
             GRANT SELECT ON orders TO {role};"
        ))
        .await
        .expect("schema");

    let unknown = config_error(
        &stack,
        &db,
        "unknown table",
        &db.connector(
            &stack,
            "unknown",
            "      tableIncludeList: ['public\\.ordres']\n",
        ),
    )
    .await;
    assert!(
        unknown.contains("spec.source.postgresCdc.tableIncludeList[0]")
            && unknown.contains("matches no table"),
        "{unknown}"
    );

    let unmappable = config_error(
        &stack,
        &db,
        "unmappable type",
        &db.connector(
            &stack,
            "spans",
            "      tableIncludeList: ['public\\.spans']\n",
        ),
    )
    .await;
    assert!(
        unmappable.contains("public.spans.took") && unmappable.contains("interval"),
        "{unmappable}"
    );

    let no_replication = config_error(
        &stack,
        &db,
        "no replication attribute",
        &db.connector(
            &stack,
            "noright",
            &format!("      user: {role}\n      tableIncludeList: ['public\\.orders']\n"),
        ),
    )
    .await;
    assert!(
        no_replication.contains("spec.source.postgresCdc.user")
            && no_replication.contains("REPLICATION"),
        "{no_replication}"
    );

    db.client
        .batch_execute(&format!("ALTER ROLE {role} REPLICATION"))
        .await
        .expect("grant replication");
    let no_publication = config_error(
        &stack,
        &db,
        "publication rights",
        &db.connector(
            &stack,
            "nopub",
            &format!("      user: {role}\n      tableIncludeList: ['public\\.orders']\n"),
        ),
    )
    .await;
    assert!(
        no_publication.contains("spec.source.postgresCdc.publicationName")
            && no_publication.contains("CREATE PUBLICATION"),
        "{no_publication}"
    );
}

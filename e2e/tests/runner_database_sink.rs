//! The `postgres` and `mysql` sinks against the stack's PostgreSQL and MariaDB, with the
//! runner standalone (`ferry-runner run -f`): tables created and extended from the records'
//! schemas; upserts, updates and deletes on tombstones; primary keys from the record key,
//! the record value and the Kafka coordinates; Debezium change events; a record that does
//! not fit its column sent to the dead letter queue or failing the task with its
//! coordinates; and a task killed with SIGKILL mid-stream whose restart leaves the table
//! equal to the input by key.

mod runner_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use ferry_e2e::harness::Stack;
use mysql_async::prelude::Queryable;
use runner_support::*;

/// The database a test writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Postgres,
    Mysql,
}

/// A client of the stack's database, for setting up and reading tables.
enum Db {
    Postgres(tokio_postgres::Client),
    Mysql(mysql_async::Conn),
}

impl Db {
    async fn connect(stack: &Stack, kind: Kind) -> Db {
        match kind {
            Kind::Postgres => {
                let (client, conn) =
                    tokio_postgres::connect(&stack.postgres_url, tokio_postgres::NoTls)
                        .await
                        .expect("connect to the stack's PostgreSQL");
                tokio::spawn(conn);
                Db::Postgres(client)
            }
            Kind::Mysql => {
                let opts = mysql_async::Opts::from_url(&stack.mysql_url).expect("MySQL URL");
                Db::Mysql(
                    mysql_async::Conn::new(opts)
                        .await
                        .expect("connect to the stack's MariaDB"),
                )
            }
        }
    }

    fn quote(&self, name: &str) -> String {
        match self {
            Db::Postgres(_) => format!("\"{name}\""),
            Db::Mysql(_) => format!("`{name}`"),
        }
    }

    /// A date-and-time column type without time zone conversions.
    fn timestamp_type(&self) -> &'static str {
        match self {
            Db::Postgres(_) => "TIMESTAMP",
            Db::Mysql(_) => "DATETIME(3)",
        }
    }

    async fn exec(&mut self, sql: &str) {
        match self {
            Db::Postgres(c) => c.batch_execute(sql).await.expect(sql),
            Db::Mysql(c) => c.query_drop(sql).await.expect(sql),
        }
    }

    /// Rows of `sql`, every value as text.
    async fn rows(&mut self, sql: &str) -> Vec<Vec<Option<String>>> {
        match self {
            Db::Postgres(c) => match c.simple_query(sql).await {
                Ok(messages) => messages
                    .into_iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                        }
                        _ => None,
                    })
                    .collect(),
                Err(_) => Vec::new(),
            },
            Db::Mysql(c) => match c.query::<mysql_async::Row, _>(sql).await {
                Ok(rows) => rows
                    .into_iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| {
                                r.get_opt::<Option<String>, usize>(i)
                                    .and_then(Result::ok)
                                    .flatten()
                            })
                            .collect()
                    })
                    .collect(),
                Err(_) => Vec::new(),
            },
        }
    }
}

/// The connector file of a database sink reading `topic` with JSON (schemas) converters.
fn sink_yaml(
    stack: &Stack,
    kind: Kind,
    name: &str,
    topic: &str,
    block: &str,
    extra: &str,
) -> String {
    let plugin = match kind {
        // PostgreSQL through a URL from a Secret (here: the environment), MariaDB through
        // host, port, user and database.
        Kind::Postgres => {
            format!("postgres: {{url: {{secretKeyRef: {{name: pg, key: url}}}}, {block}}}")
        }
        Kind::Mysql => {
            let rest = stack.mysql_url.trim_start_matches("mysql://");
            let (user, rest) = rest.split_once('@').expect("user@host in the MySQL URL");
            let (hostport, database) = rest.split_once('/').expect("a database in the MySQL URL");
            let (host, port) = hostport.split_once(':').expect("host:port");
            format!("mysql: {{host: \"{host}\", port: {port}, user: {user}, database: {database}, {block}}}")
        }
    };
    format!(
        r#"apiVersion: ferry.rs/v1alpha1
kind: KafkaConnector
metadata: {{name: {name}, namespace: e2e}}
spec:
  kafka: {{bootstrapServers: "{bootstrap}"}}
  sink:
    topics: [{topic}]
    {plugin}
  converters: {{key: {{json: {{schemas: true}}}}, value: {{json: {{schemas: true}}}}}}
{extra}"#,
        bootstrap = stack.kafka_bootstrap
    )
}

fn runner_env(stack: &Stack) -> Vec<(&'static str, String)> {
    vec![("FERRY_SINK_DATABASE_URL", stack.postgres_url.clone())]
}

fn start(stack: &Stack, dir: &std::path::Path, yaml: &str) -> Runner {
    let file = dir.join("sink.yaml");
    std::fs::write(&file, yaml).expect("write the connector file");
    let env = runner_env(stack);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let termination = dir.join("termination-log");
    let mut all = env.clone();
    let t = termination.display().to_string();
    all.push(("FERRY_TERMINATION_LOG", t.as_str()));
    spawn_runner(stack, &file, &free_admin_addr(), &all)
}

const KEY_SCHEMA: &str = r#"{"type":"struct","name":"order_key","optional":false,"fields":[{"field":"id","type":"int64"}]}"#;

fn key(id: i64) -> Vec<u8> {
    format!(r#"{{"schema":{KEY_SCHEMA},"payload":{{"id":{id}}}}}"#).into_bytes()
}

/// An order: id, name, qty, price (Decimal, scale 2) and placed (Timestamp); with `note`,
/// one more optional field that the table does not have yet.
fn order(id: i64, name: &str, qty: i32, cents: i64, placed_ms: i64, note: Option<&str>) -> Vec<u8> {
    let price = base64::engine::general_purpose::STANDARD.encode(minimal_be(cents));
    let mut fields = String::from(
        r#"{"field":"id","type":"int64"},{"field":"name","type":"string","optional":true},{"field":"qty","type":"int32","optional":true},{"field":"price","type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}},{"field":"placed","type":"int64","optional":true,"name":"org.apache.kafka.connect.data.Timestamp"}"#,
    );
    let mut payload =
        format!(r#""id":{id},"name":"{name}","qty":{qty},"price":"{price}","placed":{placed_ms}"#);
    if let Some(n) = note {
        fields.push_str(r#",{"field":"note","type":"string","optional":true}"#);
        payload.push_str(&format!(r#","note":"{n}""#));
    }
    format!(
        r#"{{"schema":{{"type":"struct","name":"order","optional":false,"fields":[{fields}]}},"payload":{{{payload}}}}}"#
    )
    .into_bytes()
}

/// Two's complement big-endian bytes of `v`, without redundant leading bytes.
fn minimal_be(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

/// Polls `sql` until it returns `expected` (or the runner stops, or 60 s pass).
async fn wait_rows(db: &mut Db, sql: &str, expected: &[Vec<Option<String>>], runner: &mut Runner) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Vec::new();
    while Instant::now() < deadline {
        last = db.rows(sql).await;
        if last == expected {
            return;
        }
        if let Ok(Some(status)) = runner.child.try_wait() {
            panic!(
                "the runner stopped ({status}) before the table was as expected\nlast rows: {last:?}\nlog:\n{}",
                runner.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "the table did not reach the expected rows within 60 s\nexpected: {expected:?}\nlast: {last:?}\nlog:\n{}",
        runner.log_tail()
    );
}

fn s(v: impl ToString) -> Option<String> {
    Some(v.to_string())
}

/// Upserts, updates, deletes on tombstones, an auto-created table evolving a nullable
/// column, Decimal and Timestamp columns.
async fn upsert_update_delete_and_evolve(kind: Kind) {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("dbsink-upsert");
    let name = unique("dbsink");
    create_topic(&stack.kafka_bootstrap, &topic, 1).await;
    let p = producer(&stack.kafka_bootstrap);
    let placed = 1_700_000_000_123_i64;
    for id in 1..=30 {
        produce(
            &p,
            &topic,
            Some(&key(id)),
            Some(&order(
                id,
                &format!("n{id}"),
                id as i32,
                100 * id + 5,
                placed,
                None,
            )),
            &[],
        )
        .await;
    }
    for id in 1..=10 {
        produce(
            &p,
            &topic,
            Some(&key(id)),
            Some(&order(
                id,
                &format!("u{id}"),
                10 * id as i32,
                -id,
                placed + id,
                None,
            )),
            &[],
        )
        .await;
    }
    for id in 21..=25 {
        produce(&p, &topic, Some(&key(id)), None, &[]).await;
    }
    // Deleted then written again within the stream: the last change wins.
    produce(
        &p,
        &topic,
        Some(&key(22)),
        Some(&order(22, "back", 2, 0, placed, None)),
        &[],
    )
    .await;
    let yaml = sink_yaml(
        &stack,
        kind,
        &name,
        &topic,
        "insertMode: upsert, primaryKeyMode: recordKey, deleteEnabled: true, autoCreate: true, autoEvolve: true",
        "",
    );
    let mut runner = start(&stack, dir.path(), &yaml);
    let mut db = Db::connect(&stack, kind).await;
    let table = db.quote(&topic);
    let mut expected = Vec::new();
    for id in (1..=30).filter(|i| !(21..=25).contains(i) || *i == 22) {
        let (name, qty, price) = match id {
            1..=10 => (
                format!("u{id}"),
                10 * id,
                format!("{:.2}", -id as f64 / 100.0),
            ),
            22 => ("back".to_string(), 2, "0.00".to_string()),
            _ => (
                format!("n{id}"),
                id,
                format!("{:.2}", (100 * id + 5) as f64 / 100.0),
            ),
        };
        expected.push(vec![s(id), Some(name), s(qty), Some(price)]);
    }
    let sql = format!("SELECT id, name, qty, price FROM {table} ORDER BY id");
    wait_rows(&mut db, &sql, &expected, &mut runner).await;

    // A new optional field: the table gains a nullable column, the other rows hold NULL.
    produce(
        &p,
        &topic,
        Some(&key(31)),
        Some(&order(31, "noted", 31, 3100, placed, Some("hello"))),
        &[],
    )
    .await;
    let sql = format!("SELECT id, note FROM {table} WHERE id IN (1, 30, 31) ORDER BY id");
    let expected = [vec![s(1), None], vec![s(30), None], vec![s(31), s("hello")]];
    wait_rows(&mut db, &sql, &expected, &mut runner).await;
    let placed_text = db
        .rows(&format!("SELECT placed FROM {table} WHERE id = 20"))
        .await;
    let placed_text = placed_text[0][0].clone().unwrap_or_default();
    assert!(
        placed_text.starts_with("2023-11-14 22:13:20.123"),
        "the Timestamp is stored in UTC with milliseconds: {placed_text}"
    );
    terminate(&runner.child);
    let status = runner.child.wait().await.expect("wait");
    assert!(
        status.success(),
        "clean stop: {status}\n{}",
        runner.log_tail()
    );
    db.exec(&format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_upserts_updates_deletes_and_evolves_the_table() {
    upsert_update_delete_and_evolve(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_upserts_updates_deletes_and_evolves_the_table() {
    upsert_update_delete_and_evolve(Kind::Mysql).await;
}

/// Keys from the Kafka coordinates (insert mode keeps every record), and from the record
/// value in update mode (only existing rows change).
async fn kafka_coordinates_and_record_value_keys(kind: Kind) {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("dbsink-keys");
    create_topic(&stack.kafka_bootstrap, &topic, 1).await;
    let p = producer(&stack.kafka_bootstrap);
    for id in [1, 2, 1] {
        produce(
            &p,
            &topic,
            Some(&key(id)),
            Some(&order(id, &format!("v{id}"), 1, 100, 0, None)),
            &[],
        )
        .await;
    }
    let mut db = Db::connect(&stack, kind).await;

    // Kafka coordinates: one row per record, keyed by topic/partition/offset.
    let kafka_table = format!("{topic}_log");
    let yaml = sink_yaml(
        &stack,
        kind,
        &unique("dbsink-kafka"),
        &topic,
        "tableNameFormat: \"${topic}_log\", insertMode: upsert, primaryKeyMode: kafka, autoCreate: true",
        "",
    );
    let mut runner = start(&stack, dir.path(), &yaml);
    let t = db.quote(&kafka_table);
    let expected: Vec<Vec<Option<String>>> = [(0, 1), (1, 2), (2, 1)]
        .iter()
        .map(|(o, id)| vec![s(&topic), s(0), s(o), s(id)])
        .collect();
    wait_rows(
        &mut db,
        &format!("SELECT __connect_topic, __connect_partition, __connect_offset, id FROM {t} ORDER BY __connect_offset"),
        &expected,
        &mut runner,
    )
    .await;
    terminate(&runner.child);
    runner.child.wait().await.expect("wait");
    db.exec(&format!("DROP TABLE {t}")).await;

    // Record value key, update mode, into an existing table: id 2 has no row and stays
    // absent; id 1 takes its last value.
    let upd = db.quote(&topic);
    db.exec(&format!(
        "CREATE TABLE {upd} (id BIGINT PRIMARY KEY, name VARCHAR(20), qty INT, price DECIMAL(10,2), placed {} NULL, extra INT NOT NULL DEFAULT 7)",
        db.timestamp_type()
    ))
    .await;
    db.exec(&format!(
        "INSERT INTO {upd} (id, name, qty) VALUES (1, 'old', 0), (3, 'keep', 0)"
    ))
    .await;
    let dir2 = tempfile::tempdir().expect("tempdir");
    let yaml = sink_yaml(
        &stack,
        kind,
        &unique("dbsink-update"),
        &topic,
        "insertMode: update, primaryKeyMode: recordValue, primaryKeyFields: [id]",
        "",
    );
    let mut runner = start(&stack, dir2.path(), &yaml);
    wait_rows(
        &mut db,
        &format!("SELECT id, name, extra FROM {upd} ORDER BY id"),
        &[vec![s(1), s("v1"), s(7)], vec![s(3), s("keep"), s(7)]],
        &mut runner,
    )
    .await;
    terminate(&runner.child);
    runner.child.wait().await.expect("wait");
    db.exec(&format!("DROP TABLE {upd}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keys_from_kafka_coordinates_and_record_values() {
    kafka_coordinates_and_record_value_keys(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_keys_from_kafka_coordinates_and_record_values() {
    kafka_coordinates_and_record_value_keys(Kind::Mysql).await;
}

/// A Debezium change event for table row `{id, name}`.
fn debezium_event(op: &str, before: Option<(i64, &str)>, after: Option<(i64, &str)>) -> Vec<u8> {
    let row = r#"{"type":"struct","name":"shop.public.items.Value","optional":true,"fields":[{"field":"id","type":"int64"},{"field":"name","type":"string","optional":true},{"field":"updated","type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp"}]}"#;
    let state = |s: Option<(i64, &str)>| match s {
        Some((id, name)) => format!(r#"{{"id":{id},"name":"{name}","updated":1700000000000001}}"#),
        None => "null".to_string(),
    };
    format!(
        r#"{{"schema":{{"type":"struct","name":"shop.public.items.Envelope","optional":false,"fields":[{{"field":"before",{b}}},{{"field":"after",{a}}},{{"field":"source","type":"struct","optional":false,"fields":[{{"field":"lsn","type":"int64","optional":true}}]}},{{"field":"op","type":"string"}},{{"field":"ts_ms","type":"int64","optional":true}}]}},"payload":{{"before":{bv},"after":{av},"source":{{"lsn":1}},"op":"{op}","ts_ms":1}}}}"#,
        b = &row[1..row.len() - 1],
        a = &row[1..row.len() - 1],
        bv = state(before),
        av = state(after),
    )
    .into_bytes()
}

/// Debezium change events are unwrapped: creates and updates write `after`, deletes delete
/// by key, and the tombstone Debezium writes after a delete changes nothing more.
async fn debezium_envelopes(kind: Kind) {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("shop.public.items");
    create_topic(&stack.kafka_bootstrap, &topic, 1).await;
    let p = producer(&stack.kafka_bootstrap);
    let events = [
        (1, debezium_event("r", None, Some((1, "snap")))),
        (2, debezium_event("c", None, Some((2, "new")))),
        (3, debezium_event("c", None, Some((3, "gone")))),
        (
            1,
            debezium_event("u", Some((1, "snap")), Some((1, "changed"))),
        ),
        (3, debezium_event("d", Some((3, "gone")), None)),
    ];
    for (id, value) in &events {
        produce(&p, &topic, Some(&key(*id)), Some(value), &[]).await;
    }
    produce(&p, &topic, Some(&key(3)), None, &[]).await;
    let yaml = sink_yaml(
        &stack,
        kind,
        &unique("dbsink-cdc"),
        &topic,
        "insertMode: upsert, primaryKeyMode: recordKey, deleteEnabled: true, autoCreate: true",
        "",
    );
    let mut runner = start(&stack, dir.path(), &yaml);
    let mut db = Db::connect(&stack, kind).await;
    // The topic's dots become underscores in the table name.
    let table = db.quote(&topic.replace('.', "_"));
    wait_rows(
        &mut db,
        &format!("SELECT id, name FROM {table} ORDER BY id"),
        &[vec![s(1), s("changed")], vec![s(2), s("new")]],
        &mut runner,
    )
    .await;
    let updated = db
        .rows(&format!("SELECT updated FROM {table} WHERE id = 1"))
        .await;
    assert_eq!(
        updated[0][0].as_deref().map(|t| &t[..26.min(t.len())]),
        Some("2023-11-14 22:13:20.000001"),
        "MicroTimestamp keeps its microseconds"
    );
    terminate(&runner.child);
    runner.child.wait().await.expect("wait");
    db.exec(&format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_accepts_debezium_change_events() {
    debezium_envelopes(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_accepts_debezium_change_events() {
    debezium_envelopes(Kind::Mysql).await;
}

/// A record whose value does not fit its column: with `tolerance: All` it goes to the dead
/// letter queue (with context headers) and the rest is written; with `tolerance: None` the
/// task exits 65 and its termination message names the record and the column.
async fn schema_mismatch(kind: Kind) {
    let stack = Stack::from_env().expect("the local stack");
    let topic = unique("dbsink-bad");
    create_topic(&stack.kafka_bootstrap, &topic, 1).await;
    let mut db = Db::connect(&stack, kind).await;
    let table = db.quote(&topic);
    db.exec(&format!(
        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, name VARCHAR(5) NOT NULL, qty INT CHECK (qty >= 0), price DECIMAL(10,2), placed {} NULL)",
        db.timestamp_type()
    ))
    .await;
    let p = producer(&stack.kafka_bootstrap);
    let mut bad = Vec::new();
    for id in 1..=12 {
        let value = match id {
            // Does not fit the column's type: caught before the database sees it.
            4 => String::from_utf8(order(id, "x", 0, 0, 0, None))
                .expect("utf-8")
                .replace(r#""qty":0"#, r#""qty":"many""#)
                .replace(
                    r#"{"field":"qty","type":"int32","optional":true}"#,
                    r#"{"field":"qty","type":"string","optional":true}"#,
                )
                .into_bytes(),
            // Too long for VARCHAR(5): caught before the database sees it.
            9 => order(id, "much-too-long", 0, 0, 0, None),
            // Breaks a CHECK constraint: refused by the database, found row by row.
            7 => order(id, "neg", -1, 0, 0, None),
            _ => order(id, "ok", id as i32, 0, 0, None),
        };
        let offset = produce(&p, &topic, Some(&key(id)), Some(&value), &[]).await;
        if [4, 7, 9].contains(&id) {
            bad.push(offset);
        }
    }

    // tolerance: All with a dead letter queue.
    let dlq = format!("{topic}-dlq");
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = sink_yaml(
        &stack,
        kind,
        &unique("dbsink-dlq"),
        &topic,
        "insertMode: upsert, primaryKeyMode: recordKey",
        &format!("  errors: {{tolerance: All, deadLetterQueue: {{topic: {dlq}, contextHeaders: true}}}}\n"),
    );
    let mut runner = start(&stack, dir.path(), &yaml);
    let expected: Vec<Vec<Option<String>>> = (1..=12)
        .filter(|i| ![4, 7, 9].contains(i))
        .map(|i| vec![s(i), s(i)])
        .collect();
    wait_rows(
        &mut db,
        &format!("SELECT id, qty FROM {table} ORDER BY id"),
        &expected,
        &mut runner,
    )
    .await;
    let bootstrap = stack.kafka_bootstrap.clone();
    let dlq_topic = dlq.clone();
    let dead = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, &dlq_topic, 3, Duration::from_secs(30))
    })
    .await
    .expect("read the dead letter queue");
    assert_eq!(
        dead.len(),
        3,
        "the refused records are in the dead letter queue"
    );
    let mut dead_offsets: Vec<String> = dead
        .iter()
        .filter_map(|r| r.header("__connect.errors.offset"))
        .collect();
    dead_offsets.sort();
    let mut bad_offsets: Vec<String> = bad.iter().map(i64::to_string).collect();
    bad_offsets.sort();
    assert_eq!(dead_offsets, bad_offsets);
    for record in &dead {
        let offset = record.header("__connect.errors.offset").unwrap_or_default();
        let column = match bad.iter().position(|o| o.to_string() == offset) {
            Some(0) => "\"qty\"",
            Some(1) => "qty",
            _ => "\"name\"",
        };
        assert_eq!(
            record.header("__connect.errors.stage").as_deref(),
            Some("TASK_PUT")
        );
        let message = record
            .header("__connect.errors.exception.message")
            .unwrap_or_default();
        assert!(
            message.to_lowercase().contains(column),
            "the message names the column {column}: {message}"
        );
    }
    terminate(&runner.child);
    runner.child.wait().await.expect("wait");

    // tolerance: None (the default), from the start of the topic in a new group.
    db.exec(&format!("DELETE FROM {table}")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = sink_yaml(
        &stack,
        kind,
        &unique("dbsink-fail"),
        &topic,
        "insertMode: upsert, primaryKeyMode: recordKey",
        "",
    );
    let mut runner = start(&stack, dir.path(), &yaml);
    let status = tokio::time::timeout(Duration::from_secs(60), runner.child.wait())
        .await
        .expect("the task fails within 60 s")
        .expect("wait");
    assert_eq!(status.code(), Some(65), "{}", runner.log_tail());
    let message = std::fs::read_to_string(dir.path().join("termination-log")).unwrap_or_default();
    assert!(
        message.contains(&format!("{topic}/0@{}", bad[0])) && message.contains("\"qty\""),
        "the termination message names the record and the column: {message}"
    );
    db.exec(&format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_schema_mismatch_goes_to_the_dlq_or_fails_the_task() {
    schema_mismatch(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_schema_mismatch_goes_to_the_dlq_or_fails_the_task() {
    schema_mismatch(Kind::Mysql).await;
}

/// SIGKILL while rows are being written, then a restart: the table equals the input by key
/// (at least once plus idempotent upserts).
async fn kill9_then_restart(kind: Kind) {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("dbsink-kill");
    create_topic(&stack.kafka_bootstrap, &topic, 3).await;
    let p = producer(&stack.kafka_bootstrap);
    let keys = 2_000_i64;
    let total = 30_000_i64;
    let mut last: BTreeMap<i64, i64> = BTreeMap::new();
    let mut sends = Vec::with_capacity(total as usize);
    for n in 0..total {
        let id = (n * 7919) % keys;
        last.insert(id, n);
        let k = key(id);
        let v = order(id, &format!("r{n}"), (n % 1000) as i32, n, n, None);
        let topic = topic.clone();
        let p = p.clone();
        sends.push(tokio::spawn(async move {
            let r: rdkafka::producer::FutureRecord<'_, [u8], [u8]> =
                rdkafka::producer::FutureRecord::to(&topic)
                    .key(&k[..])
                    .payload(&v[..]);
            p.send(r, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e)
                .expect("delivered");
        }));
        if sends.len() >= 2000 {
            for s in sends.drain(..) {
                s.await.expect("send");
            }
        }
    }
    for s in sends {
        s.await.expect("send");
    }
    let yaml = sink_yaml(
        &stack,
        kind,
        &unique("dbsink-kill"),
        &topic,
        "insertMode: upsert, primaryKeyMode: recordKey, autoCreate: true, batchSize: 500",
        "",
    );
    let mut db = Db::connect(&stack, kind).await;
    let table = db.quote(&topic);
    let mut runner = start(&stack, dir.path(), &yaml);
    // Kill once some rows are there, and before all are.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = db.rows(&format!("SELECT count(*) FROM {table}")).await;
        let n: i64 = n
            .first()
            .and_then(|r| r[0].as_deref())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if n > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no row within 60 s\n{}",
            runner.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill9(&runner.child);
    runner.child.wait().await.expect("wait");
    let expected: Vec<Vec<Option<String>>> = last
        .iter()
        .map(|(id, n)| vec![s(id), s(format!("r{n}"))])
        .collect();
    let sql = format!("SELECT id, name FROM {table} ORDER BY id");
    assert_ne!(
        db.rows(&sql).await,
        expected,
        "the task was killed before it wrote everything"
    );
    let mut runner = start(&stack, dir.path(), &yaml);
    wait_rows(&mut db, &sql, &expected, &mut runner).await;
    terminate(&runner.child);
    runner.child.wait().await.expect("wait");
    db.exec(&format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_table_equals_the_input_after_a_kill_and_restart() {
    kill9_then_restart(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_table_equals_the_input_after_a_kill_and_restart() {
    kill9_then_restart(Kind::Mysql).await;
}

/// A connector whose URL Secret did not reach the task (standalone: the variable is not
/// exported) stops with the configuration error's exit code, naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_url_secret_is_a_configuration_error() {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("dbsink-nourl");
    create_topic(&stack.kafka_bootstrap, &topic, 1).await;
    let file = dir.path().join("sink.yaml");
    std::fs::write(
        &file,
        sink_yaml(
            &stack,
            Kind::Postgres,
            &unique("dbsink"),
            &topic,
            "autoCreate: true",
            "",
        ),
    )
    .expect("write the connector file");
    let termination = dir.path().join("termination-log");
    let t = termination.display().to_string();
    let mut runner = spawn_runner(
        &stack,
        &file,
        &free_admin_addr(),
        &[
            ("FERRY_TERMINATION_LOG", t.as_str()),
            ("FERRY_SINK_DATABASE_URL", ""),
        ],
    );
    let status = tokio::time::timeout(Duration::from_secs(60), runner.child.wait())
        .await
        .expect("the task stops within 60 s")
        .expect("wait");
    assert_eq!(status.code(), Some(78), "{}", runner.log_tail());
    let message = std::fs::read_to_string(&termination).unwrap_or_default();
    assert!(
        message.contains("spec.sink.postgres.url") && message.contains("FERRY_SINK_DATABASE_URL"),
        "{message}"
    );
}

/// Schemaless JSON objects are written by field name into an existing table; creating a
/// table needs a schema, and a record without one fails naming why.
async fn schemaless_json(kind: Kind) {
    let stack = Stack::from_env().expect("the local stack");
    let topic = unique("dbsink-plain");
    create_topic(&stack.kafka_bootstrap, &topic, 1).await;
    let mut db = Db::connect(&stack, kind).await;
    let table = db.quote(&topic);
    db.exec(&format!(
        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, name VARCHAR(20), qty INT, at {} NULL)",
        // Whole seconds, so both databases print the value alike.
        match kind {
            Kind::Postgres => "TIMESTAMP(0)",
            Kind::Mysql => "DATETIME",
        }
    ))
    .await;
    let p = producer(&stack.kafka_bootstrap);
    for (id, name, qty) in [(1, "a", 1), (2, "b", 2), (1, "c", 3)] {
        let value =
            format!(r#"{{"id":{id},"name":"{name}","qty":{qty},"at":"2024-01-02 03:04:05"}}"#);
        produce(&p, &topic, None, Some(value.as_bytes()), &[]).await;
    }
    let plain = "  converters: {key: {string: {}}, value: {json: {schemas: false}}}\n";
    let with_schemas =
        "  converters: {key: {json: {schemas: true}}, value: {json: {schemas: true}}}\n";
    let yaml = sink_yaml(
        &stack,
        kind,
        &unique("dbsink-plain"),
        &topic,
        "insertMode: upsert, primaryKeyMode: recordValue, primaryKeyFields: [id]",
        "",
    )
    .replace(with_schemas, plain);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut runner = start(&stack, dir.path(), &yaml);
    wait_rows(
        &mut db,
        &format!("SELECT id, name, qty, at FROM {table} ORDER BY id"),
        &[
            vec![s(1), s("c"), s(3), s("2024-01-02 03:04:05")],
            vec![s(2), s("b"), s(2), s("2024-01-02 03:04:05")],
        ],
        &mut runner,
    )
    .await;
    terminate(&runner.child);
    runner.child.wait().await.expect("wait");
    db.exec(&format!("DROP TABLE {table}")).await;

    // The table is gone: autoCreate cannot make one from schemaless records.
    let yaml = sink_yaml(
        &stack,
        kind,
        &unique("dbsink-plain-create"),
        &topic,
        "insertMode: upsert, primaryKeyMode: recordValue, primaryKeyFields: [id], autoCreate: true",
        "",
    )
    .replace(with_schemas, plain);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut runner = start(&stack, dir.path(), &yaml);
    let status = tokio::time::timeout(Duration::from_secs(60), runner.child.wait())
        .await
        .expect("the task fails within 60 s")
        .expect("wait");
    assert_eq!(status.code(), Some(65), "{}", runner.log_tail());
    let message = std::fs::read_to_string(dir.path().join("termination-log")).unwrap_or_default();
    assert!(
        message.contains(&format!("{topic}/0@"))
            && message.contains("autoCreate needs records with schemas"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_writes_schemaless_json_into_an_existing_table() {
    schemaless_json(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_writes_schemaless_json_into_an_existing_table() {
    schemaless_json(Kind::Mysql).await;
}

//! The PostgreSQL workloads: Kafka → PostgreSQL upserts (Ferry's `postgres` sink against
//! Debezium's JDBC sink) and PostgreSQL changes → Kafka (Ferry's `postgresCdc` source
//! against Debezium's PostgreSQL connector). Both sides use Kafka Connect's JSON converter
//! with schemas, the same table, the same records.

use std::time::Duration;

use super::error::BenchError;
use super::kafka;
use super::procfs::load_average;
use super::psql::{self, url_parts, Session};
use super::report::Run;
use super::systems::{
    drive, drive_all, start_connect, start_ferry, start_ferry_tasks, watch_connect, Delivery,
    CONNECT, FERRY,
};
use super::workloads::Bench;
use crate::harness::random_suffix;

/// Name of the Kafka → PostgreSQL workload (with its task count appended).
pub const KAFKA_TO_POSTGRES: &str = "Kafka → PostgreSQL upsert";
/// Name of the PostgreSQL CDC workload.
pub const POSTGRES_CDC: &str = "PostgreSQL CDC → Kafka";

const JSON_CONVERTERS: &str = "key.converter=org.apache.kafka.connect.json.JsonConverter\nkey.converter.schemas.enable=true\nvalue.converter=org.apache.kafka.connect.json.JsonConverter\nvalue.converter.schemas.enable=true\n";
pub(crate) const FERRY_JSON_CONVERTERS: &str =
    "{key: {json: {schemas: true}}, value: {json: {schemas: true}}}";

/// Columns of the benchmark tables.
pub(crate) const COLUMNS: &str = "id bigint PRIMARY KEY, customer text NOT NULL, amount double precision NOT NULL, note text NOT NULL";

/// Characters of the `note` column: with the envelope, a record value is about 1 KB.
const NOTE_CHARS: usize = 600;

/// The key of row `i` as Kafka Connect JSON with its schema.
pub fn key_with_schema(i: u64) -> String {
    format!(
        "{{\"schema\":{{\"type\":\"struct\",\"optional\":false,\"fields\":[{{\"field\":\"id\",\"type\":\"int64\",\"optional\":false}}]}},\"payload\":{{\"id\":{i}}}}}"
    )
}

/// The value of row `i` as Kafka Connect JSON with its schema.
pub fn value_with_schema(i: u64) -> String {
    let note: String = (0..NOTE_CHARS)
        .map(|j| (b'a' + ((i as usize + j) % 26) as u8) as char)
        .collect();
    format!(
        "{{\"schema\":{{\"type\":\"struct\",\"optional\":false,\"fields\":[{{\"field\":\"id\",\"type\":\"int64\",\"optional\":false}},{{\"field\":\"customer\",\"type\":\"string\",\"optional\":false}},{{\"field\":\"amount\",\"type\":\"double\",\"optional\":false}},{{\"field\":\"note\",\"type\":\"string\",\"optional\":false}}]}},\"payload\":{{\"id\":{i},\"customer\":\"customer-{:05}\",\"amount\":{}.{:02},\"note\":\"{note}\"}}}}",
        i % 10_000,
        i % 1000,
        i % 100
    )
}

/// Where the benchmark's PostgreSQL is.
#[derive(Clone, Debug)]
pub struct Postgres {
    /// `postgres://user@host:port/database`.
    pub url: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database.
    pub database: String,
    /// User.
    pub user: String,
}

impl Postgres {
    /// From the stack's URL.
    pub fn from_url(url: &str) -> Result<Self, BenchError> {
        let (host, port, database, user) = url_parts(url)
            .ok_or_else(|| BenchError::Check(format!("not a PostgreSQL URL: {url}")))?;
        Ok(Postgres {
            url: url.to_string(),
            host,
            port,
            database,
            user,
        })
    }

    fn jdbc_url(&self) -> String {
        format!(
            "jdbc:postgresql://{}:{}/{}",
            self.host, self.port, self.database
        )
    }
}

/// Creates a topic of `partitions` partitions holding `records` rows as JSON with schemas
/// (each id once, so every record is one row).
pub async fn postgres_topic(
    bench: &Bench,
    records: u64,
    partitions: i32,
) -> Result<String, BenchError> {
    let topic = format!("ferry-bench-pg-{}", random_suffix(6));
    kafka::create_topic(&bench.bootstrap, &topic, partitions).await?;
    eprintln!("writing {records} rows as JSON with schemas to {topic} ...");
    kafka::fill_topic(
        &bench.bootstrap,
        &topic,
        records,
        value_with_schema,
        key_with_schema,
    )?;
    Ok(topic)
}

/// Kafka → PostgreSQL with `tasks` tasks: every record upserted by primary key into a fresh
/// table (created beforehand, the same for both); delivered = rows in the table.
pub fn kafka_to_postgres(
    bench: &Bench,
    pg: &Postgres,
    topic: &str,
    records: u64,
    tasks: u32,
) -> Result<Vec<Run>, BenchError> {
    let workload = format!(
        "{KAFKA_TO_POSTGRES}, {tasks} task{}",
        if tasks == 1 { "" } else { "s" }
    );
    let mut runs = Vec::new();
    for rep in 1..=bench.repetitions {
        for ferry_first in [rep % 2 == 1, rep % 2 == 0] {
            let table = format!("bench_sink_{}", random_suffix(8).to_lowercase());
            psql::exec(&pg.url, &format!("CREATE TABLE {table} ({COLUMNS})"))?;
            let mut session = Session::open(&pg.url)?;
            let count = format!("SELECT count(*) FROM {table}");
            let load = load_average();
            let name = format!("bench-pg-{}", random_suffix(6));
            let system = if ferry_first { FERRY } else { CONNECT };
            eprintln!("{workload}: {system}, run {rep} ...");
            let result = if ferry_first {
                let yaml = format!(
                    "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: {name}, namespace: bench}}\nspec:\n  kafka: {{bootstrapServers: \"{}\"}}\n  sink:\n    topics: [{topic}]\n    postgres: {{url: {{secretKeyRef: {{name: pg, key: url}}}}, tableNameFormat: {table}, insertMode: upsert, primaryKeyMode: recordKey, primaryKeyFields: [id]}}\n  tasks: {tasks}\n  converters: {FERRY_JSON_CONVERTERS}\n",
                    bench.bootstrap
                );
                let env = [("FERRY_SINK_DATABASE_URL", pg.url.as_str())];
                let processes =
                    start_ferry_tasks(&bench.runner, &bench.dir, &name, &yaml, &env, tasks)?;
                drive_all(
                    processes,
                    records,
                    || Ok(session.query_u64(&count)?.unwrap_or(0)),
                    Duration::from_millis(100),
                    bench.timeout,
                )
            } else {
                let (process, rest) = start_connect(
                    &bench.connect,
                    &bench.dir,
                    &name,
                    &bench.bootstrap,
                    JSON_CONVERTERS,
                    &format!(
                        "name={name}\nconnector.class=io.debezium.connector.jdbc.JdbcSinkConnector\ntasks.max={tasks}\ntopics={topic}\nconnection.url={}\nconnection.username={}\nconnection.password=\ninsert.mode=upsert\nprimary.key.mode=record_key\nprimary.key.fields=id\nschema.evolution=none\ncollection.name.format={table}\n",
                        pg.jdbc_url(),
                        pg.user
                    ),
                )?;
                drive(
                    process,
                    records,
                    watch_connect(rest, name.clone(), || {
                        Ok(session.query_u64(&count)?.unwrap_or(0))
                    }),
                    Duration::from_millis(100),
                    bench.timeout,
                )
            };
            drop(session);
            let _ = psql::exec(&pg.url, &format!("DROP TABLE IF EXISTS {table}"));
            runs.push(to_run(
                &workload,
                system,
                !ferry_first,
                rep,
                records,
                result?,
                load,
            ));
        }
    }
    Ok(runs)
}

/// One measured run of `system` from what [`drive`] returned.
pub(crate) fn to_run(
    workload: &str,
    system: &str,
    reference: bool,
    rep: u32,
    records: u64,
    d: Delivery,
    load: Option<f64>,
) -> Run {
    Run {
        workload: workload.to_string(),
        system: system.to_string(),
        reference,
        repetition: rep,
        records,
        seconds: d.seconds,
        cpu_seconds: d.usage.cpu_seconds,
        delivery_cpu_seconds: d.delivery_cpu_seconds,
        peak_rss_mib: d.usage.peak_rss_kib as f64 / 1024.0,
        first_record_seconds: Some(d.first_record_seconds),
        load_average: load,
    }
}

/// PostgreSQL CDC → Kafka: `records` inserted rows (in transactions of 10,000) wait in a
/// fresh replication slot; the connector (Debezium: `snapshot.mode=no_data`; Ferry:
/// `snapshotMode: never`) starts on that slot and streams them into a new topic; delivered =
/// the topic's end offset. The slot, publication and table are dropped after each run; the
/// topics written are added to `topics` for the caller to delete.
pub fn postgres_cdc(
    bench: &Bench,
    pg: &Postgres,
    records: u64,
    topics: &mut Vec<String>,
) -> Result<Vec<Run>, BenchError> {
    let mut runs = Vec::new();
    let consumer = kafka::metadata_consumer(&bench.bootstrap)?;
    for rep in 1..=bench.repetitions {
        for ferry_first in [rep % 2 == 1, rep % 2 == 0] {
            let id = format!("bench_cdc_{}", random_suffix(8).to_lowercase());
            let (table, slot, publication) = (id.clone(), id.clone(), id.clone());
            let prefix = id.clone();
            let topic = format!("{prefix}.public.{table}");
            topics.push(topic.clone());
            let system = if ferry_first { FERRY } else { CONNECT };
            eprintln!("{POSTGRES_CDC}: {system}, run {rep}: inserting {records} rows ...");
            // Separate statements: a slot cannot be created in a transaction that wrote.
            psql::exec(&pg.url, &format!("CREATE TABLE {table} ({COLUMNS})"))?;
            psql::exec(
                &pg.url,
                &format!("CREATE PUBLICATION {publication} FOR TABLE {table}"),
            )?;
            psql::exec(
                &pg.url,
                &format!("SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"),
            )?;
            let batches = records.div_ceil(10_000);
            psql::exec(
                &pg.url,
                &format!(
                    "DO $$ BEGIN FOR b IN 0..{} LOOP INSERT INTO {table} SELECT g, 'customer-' || lpad((g % 10000)::text, 5, '0'), (g % 100000) / 100.0, repeat(chr(97 + (g % 26)::int), {NOTE_CHARS}) FROM generate_series(b * 10000::bigint, least((b + 1) * 10000::bigint, {records}) - 1) g; COMMIT; END LOOP; END $$;",
                    batches.saturating_sub(1)
                ),
            )?;
            let load = load_average();
            let name = format!("bench-cdc-{}", random_suffix(6));
            let result = if ferry_first {
                let yaml = format!(
                    "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: {name}, namespace: bench}}\nspec:\n  kafka: {{bootstrapServers: \"{}\"}}\n  source:\n    postgresCdc: {{host: \"{}\", port: {}, database: {}, user: {}, topicPrefix: {prefix}, slotName: {slot}, publicationName: {publication}, tableIncludeList: ['public\\.{table}'], snapshotMode: never}}\n  converters: {FERRY_JSON_CONVERTERS}\n",
                    bench.bootstrap, pg.host, pg.port, pg.database, pg.user
                );
                let (process, _) = start_ferry(&bench.runner, &bench.dir, &name, &yaml, &[])?;
                drive(
                    process,
                    records,
                    || kafka::topic_end(&consumer, &topic, 1),
                    Duration::from_millis(50),
                    bench.timeout,
                )
            } else {
                let (process, rest) = start_connect(
                    &bench.connect,
                    &bench.dir,
                    &name,
                    &bench.bootstrap,
                    JSON_CONVERTERS,
                    &format!(
                        "name={name}\nconnector.class=io.debezium.connector.postgresql.PostgresConnector\ntasks.max=1\nplugin.name=pgoutput\ndatabase.hostname={}\ndatabase.port={}\ndatabase.user={}\ndatabase.password=\ndatabase.dbname={}\ntopic.prefix={prefix}\ntable.include.list=public.{table}\nslot.name={slot}\npublication.name={publication}\npublication.autocreate.mode=disabled\nsnapshot.mode=no_data\n",
                        pg.host, pg.port, pg.user, pg.database
                    ),
                )?;
                drive(
                    process,
                    records,
                    watch_connect(rest, name.clone(), || {
                        kafka::topic_end(&consumer, &topic, 1)
                    }),
                    Duration::from_millis(50),
                    bench.timeout,
                )
            };
            // The connector is gone: its slot is free to drop.
            std::thread::sleep(Duration::from_millis(500));
            for sql in [
                format!("SELECT pg_drop_replication_slot('{slot}')"),
                format!("DROP PUBLICATION IF EXISTS {publication}"),
                format!("DROP TABLE IF EXISTS {table}"),
            ] {
                let _ = psql::exec(&pg.url, &sql);
            }
            runs.push(to_run(
                POSTGRES_CDC,
                system,
                !ferry_first,
                rep,
                records,
                result?,
                load,
            ));
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_are_connect_json_with_schemas() {
        let k: serde_json::Value = serde_json::from_str(&key_with_schema(42)).expect("key JSON");
        assert_eq!(k["payload"]["id"], 42);
        assert_eq!(k["schema"]["fields"][0]["type"], "int64");
        let v: serde_json::Value =
            serde_json::from_str(&value_with_schema(42)).expect("value JSON");
        assert_eq!(v["payload"]["id"], 42);
        assert_eq!(v["payload"]["customer"], "customer-00042");
        assert_eq!(
            v["payload"]["note"].as_str().map(str::len),
            Some(NOTE_CHARS)
        );
        assert_eq!(v["schema"]["fields"][2]["type"], "double");
        assert!(value_with_schema(1).len() > 900 && value_with_schema(1).len() < 1100);
    }
}

//! What exactly-once costs: the same Ferry workload with `delivery: AtLeastOnce` (the
//! reference) and `delivery: ExactlyOnce`, repetitions interleaved.
//!
//! - `datagen → Kafka`: a bounded `datagen` source writes `records` records to a fresh
//!   topic; the run ends when the runner exits on its own, i.e. once its last offsets are
//!   stored (at-least-once) or its last transaction committed (exactly-once).
//! - `Kafka → PostgreSQL insert`: the `postgres` sink inserts every record of a topic into a
//!   fresh table (rows plus, under exactly-once, the Kafka positions in the same
//!   transaction); delivered = rows in the table.

use std::time::{Duration, Instant};

use super::databases::{postgres_topic, to_run, Postgres, COLUMNS, FERRY_JSON_CONVERTERS};
use super::error::BenchError;
use super::kafka;
use super::procfs::load_average;
use super::psql::{self, Session};
use super::report::Run;
use super::systems::{drive_all, records_out, start_ferry, start_ferry_tasks, Delivery};
use super::workloads::Bench;
use crate::harness::random_suffix;

/// Name of the source workload.
pub const DATAGEN_TO_KAFKA: &str = "datagen → Kafka";
/// Name of the sink workload (with its task count appended).
pub const KAFKA_TO_POSTGRES_INSERT: &str = "Kafka → PostgreSQL insert";
/// The reference system.
pub const AT_LEAST_ONCE: &str = "Ferry AtLeastOnce";
/// The system measured against it.
pub const EXACTLY_ONCE: &str = "Ferry ExactlyOnce";

fn modes(rep: u32) -> [(&'static str, &'static str); 2] {
    let alo = (AT_LEAST_ONCE, "AtLeastOnce");
    let eos = (EXACTLY_ONCE, "ExactlyOnce");
    if rep % 2 == 1 {
        [alo, eos]
    } else {
        [eos, alo]
    }
}

fn run(
    workload: &str,
    system: &str,
    rep: u32,
    records: u64,
    d: Delivery,
    load: Option<f64>,
) -> Run {
    to_run(
        workload,
        system,
        system == AT_LEAST_ONCE,
        rep,
        records,
        d,
        load,
    )
}

/// `datagen → Kafka` with `bench.records` records of `bench.record_bytes` payload bytes.
/// The topics written are added to `topics` for the caller to delete.
pub async fn datagen_to_kafka(
    bench: &Bench,
    topics: &mut Vec<String>,
) -> Result<Vec<Run>, BenchError> {
    let mut runs = Vec::new();
    for rep in 1..=bench.repetitions {
        for (system, delivery) in modes(rep) {
            let topic = format!("ferry-bench-eos-src-{}", random_suffix(6));
            kafka::create_topic(&bench.bootstrap, &topic, bench.partitions).await?;
            topics.push(topic.clone());
            let name = format!("bench-datagen-{}", random_suffix(6));
            let yaml = format!(
                "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: {name}, namespace: bench}}\nspec:\n  kafka: {{bootstrapServers: \"{}\"}}\n  delivery: {delivery}\n  source:\n    datagen: {{topic: {topic}, records: {}, payloadBytes: {}}}\n  converters: {{value: {{json: {{schemas: false}}}}}}\n",
                bench.bootstrap, bench.records, bench.record_bytes
            );
            eprintln!("{DATAGEN_TO_KAFKA}: {system}, run {rep} ...");
            let load = load_average();
            let (mut process, admin) = start_ferry(&bench.runner, &bench.dir, &name, &yaml, &[])?;
            let started = process.started();
            // First record: the first delivery Kafka acknowledged.
            let first = loop {
                if records_out(&admin).is_some_and(|n| n > 0) {
                    break Instant::now();
                }
                if let Some(status) = process.poll_ended().map(|e| e.status.clone()) {
                    return Err(BenchError::Check(format!(
                        "{system}: the runner ended ({status}) before its first record; log: {}",
                        process.log().display()
                    )));
                }
                if started.elapsed() > bench.timeout {
                    return Err(BenchError::Check(format!(
                        "{system}: no record within the timeout"
                    )));
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            let ended = process.wait_ended(bench.timeout).ok_or_else(|| {
                BenchError::Check(format!(
                    "{system}: the source did not finish {} records within the timeout; log: {}",
                    bench.records,
                    process.log().display()
                ))
            })?;
            if !ended.success {
                return Err(BenchError::Check(format!(
                    "{system}: the runner ended with {}; log: {}",
                    ended.status,
                    process.log().display()
                )));
            }
            let d = Delivery {
                first_record_seconds: (first - started).as_secs_f64(),
                seconds: first.elapsed().as_secs_f64(),
                usage: ended.usage,
                delivery_cpu_seconds: None,
            };
            runs.push(run(DATAGEN_TO_KAFKA, system, rep, bench.records, d, load));
        }
    }
    Ok(runs)
}

/// `Kafka → PostgreSQL insert` with `tasks` tasks over a topic of `records` rows (4
/// partitions), each run into a fresh table. The topic is added to `topics`.
pub async fn kafka_to_postgres(
    bench: &Bench,
    pg: &Postgres,
    records: u64,
    tasks: u32,
    topics: &mut Vec<String>,
) -> Result<Vec<Run>, BenchError> {
    let topic = postgres_topic(bench, records, 4).await?;
    topics.push(topic.clone());
    let workload = format!(
        "{KAFKA_TO_POSTGRES_INSERT}, {tasks} task{}",
        if tasks == 1 { "" } else { "s" }
    );
    let mut runs = Vec::new();
    for rep in 1..=bench.repetitions {
        for (system, delivery) in modes(rep) {
            let table = format!("bench_eos_{}", random_suffix(8).to_lowercase());
            psql::exec(&pg.url, &format!("CREATE TABLE {table} ({COLUMNS})"))?;
            let mut session = Session::open(&pg.url)?;
            let count = format!("SELECT count(*) FROM {table}");
            let load = load_average();
            let name = format!("bench-eos-pg-{}", random_suffix(6));
            eprintln!("{workload}: {system}, run {rep} ...");
            let yaml = format!(
                "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: {name}, namespace: bench}}\nspec:\n  kafka: {{bootstrapServers: \"{}\"}}\n  delivery: {delivery}\n  sink:\n    topics: [{topic}]\n    postgres: {{url: {{secretKeyRef: {{name: pg, key: url}}}}, tableNameFormat: {table}, insertMode: insert}}\n  tasks: {tasks}\n  converters: {FERRY_JSON_CONVERTERS}\n",
                bench.bootstrap
            );
            let env = [("FERRY_SINK_DATABASE_URL", pg.url.as_str())];
            let processes =
                start_ferry_tasks(&bench.runner, &bench.dir, &name, &yaml, &env, tasks)?;
            let result = drive_all(
                processes,
                records,
                || Ok(session.query_u64(&count)?.unwrap_or(0)),
                Duration::from_millis(100),
                bench.timeout,
            );
            drop(session);
            let _ = psql::exec(&pg.url, &format!("DROP TABLE IF EXISTS {table}"));
            // The positions an exactly-once run stored (none after an at-least-once run).
            let _ = psql::exec(
                &pg.url,
                &format!("DELETE FROM ferry_kafka_offsets WHERE connector = 'bench/{name}'"),
            );
            runs.push(run(&workload, system, rep, records, result?, load));
        }
    }
    Ok(runs)
}

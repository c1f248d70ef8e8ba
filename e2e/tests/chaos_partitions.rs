//! Network partitions under exactly-once, against the local stack's Kafka and PostgreSQL.
//!
//! A `datagen` source (transactional) writes numbered records to Kafka and a `postgres`
//! sink (rows and Kafka positions in one transaction) copies them into a table. Each runs
//! standalone as its own user, so that an iptables rule (`-m owner --uid-owner`) drops
//! every packet that runner sends to Kafka or to PostgreSQL, and nobody else's: the
//! connection stays open and silent, as across a real partition, and what the runner sent
//! is never acknowledged. The partitions fall at random between the source and Kafka, the
//! sink and Kafka, and the sink and its database, each for 3 to 10 s. A runner that stops
//! meanwhile is restarted (still partitioned), as the operator would. At the end a
//! `read_committed` consumer finds every sequence number in the topic exactly once, and the
//! table holds every one exactly once.
//!
//! `FERRY_PARTITIONS` sets the number of partitions (default 6), `FERRY_PARTITION_RECORDS`
//! the number of records (default 20000) and `FERRY_PARTITION_SEED` the seed. Needs root
//! and iptables (installed by `e2e/stack`).

mod runner_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferry_e2e::harness::Stack;
use runner_support::*;

/// One iptables rule dropping what user `uid` sends to loopback port `port`; removed on
/// drop.
struct Partition {
    rule: Vec<String>,
}

impl Partition {
    fn rule(uid: u32, port: u16) -> Vec<String> {
        [
            "OUTPUT",
            "-o",
            "lo",
            "-p",
            "tcp",
            "--dport",
            &port.to_string(),
            "-m",
            "owner",
            "--uid-owner",
            &uid.to_string(),
            "-j",
            "DROP",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    fn start(uid: u32, port: u16) -> Partition {
        let rule = Partition::rule(uid, port);
        iptables("-A", &rule);
        Partition { rule }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        iptables("-D", &self.rule);
    }
}

fn iptables(action: &str, rule: &[String]) {
    let status = Command::new("iptables")
        .arg("-w")
        .arg(action)
        .args(rule)
        .status()
        .unwrap_or_else(|e| panic!("cannot run iptables (e2e/stack installs it): {e}"));
    assert!(status.success(), "iptables {action} {rule:?}: {status}");
}

fn port_of(address: &str) -> u16 {
    address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {address}"))
}

/// `host:port` of the stack's PostgreSQL, from its URL.
fn postgres_port(url: &str) -> u16 {
    let after_at = url.rsplit_once('@').map_or(url, |(_, rest)| rest);
    port_of(after_at.split('/').next().unwrap_or(after_at))
}

/// A runner supervised as the operator would: restarted with the same identity whenever it
/// stops before its work is done.
struct Supervised<'a> {
    stack: &'a Stack,
    file: &'a Path,
    env: &'a [(&'a str, &'a str)],
    uid: u32,
    runner: Runner,
    restarts: u32,
    /// The bounded source finished (exit 0).
    done: bool,
}

impl<'a> Supervised<'a> {
    fn start(stack: &'a Stack, file: &'a Path, env: &'a [(&'a str, &'a str)], uid: u32) -> Self {
        let runner = spawn_runner_as(stack, file, &free_admin_addr(), env, Some(uid));
        Supervised {
            stack,
            file,
            env,
            uid,
            runner,
            restarts: 0,
            done: false,
        }
    }

    /// Restarts the runner if it stopped with an error; notes a clean finish.
    fn watch(&mut self) {
        if self.done {
            return;
        }
        match self.runner.child.try_wait().expect("wait") {
            None => {}
            Some(status) if status.success() => self.done = true,
            Some(_) => {
                self.runner = spawn_runner_as(
                    self.stack,
                    self.file,
                    &free_admin_addr(),
                    self.env,
                    Some(self.uid),
                );
                self.restarts += 1;
            }
        }
    }
}

/// Supervises both runners for `period`.
async fn supervise(a: &mut Supervised<'_>, b: &mut Supervised<'_>, period: Duration) {
    let until = Instant::now() + period;
    loop {
        a.watch();
        b.watch();
        if Instant::now() >= until {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_neither_lose_nor_duplicate_a_record() {
    let stack = Stack::from_env().expect("the local stack");
    let partitions: u32 = env_or("FERRY_PARTITIONS", 6);
    let total: i64 = env_or("FERRY_PARTITION_RECORDS", 20_000);
    let seed = seed_from_env("FERRY_PARTITION_SEED");
    println!(
        "partition chaos: {partitions} partitions, {total} records, FERRY_PARTITION_SEED={seed}"
    );
    let mut rng = Lcg(seed);
    // Users of this run only: the rules match nobody else's packets.
    let source_uid = 61_000 + 2 * rng.next(500) as u32;
    let sink_uid = source_uid + 1;
    let kafka_port = port_of(&stack.kafka_bootstrap);
    let database_port = postgres_port(&stack.postgres_url);

    let (db, conn) = tokio_postgres::connect(&stack.postgres_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the stack's PostgreSQL");
    tokio::spawn(conn);

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod the test directory");
    let topic = unique("partition");
    let table = topic.replace('-', "_");
    create_topic(&stack.kafka_bootstrap, &topic, 3).await;
    // Records keep coming for about as long as the partitions last.
    let chaos_ms = u64::from(partitions.max(1)) * 8_500;
    let rate = (total as u64 * 1000 / chaos_ms).clamp(200, 20_000);
    let (source_file, sink_file) =
        exactly_once_pipeline(dir.path(), &topic, &stack.kafka_bootstrap, total, rate);
    let sink_env = [("FERRY_SINK_DATABASE_URL", stack.postgres_url.as_str())];
    let mut source = Supervised::start(&stack, &source_file, &[], source_uid);
    let mut sink = Supervised::start(&stack, &sink_file, &sink_env, sink_uid);

    let started = Instant::now();
    let mut cut = [0u32; 3];
    let mut partitioned_for = Duration::ZERO;
    for _ in 0..partitions {
        let calm = Duration::from_millis(500 + rng.next(1500));
        supervise(&mut source, &mut sink, calm).await;
        let which = rng.next(3) as usize;
        let (uid, port) = match which {
            0 => (source_uid, kafka_port),
            1 => (sink_uid, kafka_port),
            _ => (sink_uid, database_port),
        };
        let hold = Duration::from_millis(3_000 + rng.next(7_000));
        let partition = Partition::start(uid, port);
        // The fault bites: cut from its database, the sink writes no row (after a second,
        // for a commit already on the wire).
        let settle = Duration::from_secs(1);
        supervise(&mut source, &mut sink, settle).await;
        let rows_at_start = table_counts(&db, &table).await.0;
        supervise(&mut source, &mut sink, hold - settle).await;
        let rows_at_end = table_counts(&db, &table).await.0;
        drop(partition);
        if which == 2 {
            assert_eq!(
                rows_at_end, rows_at_start,
                "rows were written while the sink was cut from its database"
            );
        }
        cut[which] += 1;
        partitioned_for += hold;
    }
    let chaos = started.elapsed();

    // The source finishes its records; the sink catches up. A long run may leave many of its
    // records to after the partitions: allow the time they take at `rate`.
    let finish = Duration::from_secs(240).max(Duration::from_millis(total as u64 * 1000 / rate));
    let deadline = Instant::now() + finish;
    let mut rows = table_counts(&db, &table).await;
    while (!source.done || rows.0 < total) && Instant::now() < deadline {
        supervise(&mut source, &mut sink, Duration::from_millis(500)).await;
        rows = table_counts(&db, &table).await;
    }
    assert!(
        source.done,
        "the source did not finish:\n{}",
        source.runner.log_tail()
    );
    // A little longer: a duplicate would land after the last new row.
    supervise(&mut source, &mut sink, Duration::from_secs(2)).await;
    rows = table_counts(&db, &table).await;
    let mut runners = [&mut sink.runner];
    stop_gracefully(&mut runners).await;

    let counts = tokio::task::spawn_blocking({
        let (b, t) = (stack.kafka_bootstrap.clone(), topic.clone());
        move || committed_sequence_counts(&b, &t)
    })
    .await
    .expect("reader");
    let (missing, twice) = audit(&counts, total);
    println!(
        "partition chaos: {partitions} partitions ({} source-Kafka, {} sink-Kafka, {} sink-database; \
         {:.1}s partitioned of {:.1}s), restarts: source {}, sink {}; \
         topic (read_committed): {} records, {} distinct, {} missing, {} duplicated; \
         table: {} rows, {} distinct",
        cut[0],
        cut[1],
        cut[2],
        partitioned_for.as_secs_f64(),
        chaos.as_secs_f64(),
        source.restarts,
        sink.restarts,
        counts.values().map(|n| u64::from(*n)).sum::<u64>(),
        counts.len(),
        missing.len(),
        twice.len(),
        rows.0,
        rows.1
    );
    assert!(
        missing.is_empty() && twice.is_empty(),
        "topic: missing {:?}, duplicated {:?} (seed {seed})",
        &missing[..missing.len().min(20)],
        &twice[..twice.len().min(20)]
    );
    assert_eq!(counts.len() as i64, total, "numbers outside 0..{total}");
    assert_eq!(
        rows,
        (total, total),
        "table {table}: (rows, distinct seq) (seed {seed}):\n{}",
        sink.runner.log_tail()
    );
    let _ = db
        .batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\""))
        .await;
}

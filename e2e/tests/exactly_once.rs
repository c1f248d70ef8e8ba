//! Exactly-once delivery (`spec.delivery: ExactlyOnce`) under SIGKILL: a `datagen` source
//! (transactional producer, source offsets in the same transaction) writes numbered records
//! to Kafka, and a `postgres` sink (rows and Kafka positions in one database transaction)
//! copies them into a table. Both standalone runners are killed with SIGKILL at random
//! points and restarted; a second source started beside a live one fences it, and a frozen
//! (SIGSTOP) source and sink that wake after their replacements took over are fenced. At the end a
//! `read_committed` consumer finds every sequence number in the topic exactly once, and the
//! table holds every one exactly once.
//!
//! `FERRY_EOS_KILLS` sets the number of kills (default 20) and `FERRY_EOS_RECORDS` the
//! number of records (default 30000); the full run uses 100 kills and 100000 records.

mod runner_support;

use std::time::{Duration, Instant};

use ferry_e2e::harness::Stack;
use runner_support::*;

/// Sends `SIG<name>` to the runner.
fn signal(child: &tokio::process::Child, name: &str) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status();
    }
}

/// Waits until the runner at `admin` is ready (`/readyz` 200): its transactional producer
/// and its consumer are set up, so a freeze from now on is a freeze of a working task.
async fn wait_ready(runner: &Runner, admin: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if matches!(http_get(admin, "/readyz").await, Some((200, _))) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the {what} did not become ready:\n{}", runner.log_tail());
}

/// How long a frozen runner stays frozen after its replacement started: longer than the
/// replacement needs to take over its partitions and write.
const FROZEN_FOR: Duration = Duration::from_secs(10);

/// Wakes the frozen runner `what` after [`FROZEN_FOR`] and waits for it to stop because it
/// was fenced: what it did, for the log.
async fn wake_after_takeover(mut frozen: Runner, what: &str) -> String {
    tokio::time::sleep(FROZEN_FOR).await;
    signal(&frozen.child, "CONT");
    let exit = tokio::time::timeout(Duration::from_secs(90), frozen.child.wait())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the woken {what} kept running beside its replacement:\n{}",
                frozen.log_tail()
            )
        })
        .expect("wait");
    assert!(
        !exit.success(),
        "the woken {what} exited with {exit}:\n{}",
        frozen.log_tail()
    );
    format!("stopped ({exit})")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_neither_loses_nor_duplicates_a_record() {
    let stack = Stack::from_env().expect("the local stack");
    let kills: u32 = env_or("FERRY_EOS_KILLS", 20);
    let total: i64 = env_or("FERRY_EOS_RECORDS", 30_000);
    let seed = seed_from_env("FERRY_EOS_SEED");
    println!("exactly-once chaos: {kills} kills, {total} records, FERRY_EOS_SEED={seed}");
    let mut rng = Lcg(seed);

    let (db, conn) = tokio_postgres::connect(&stack.postgres_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the stack's PostgreSQL");
    tokio::spawn(conn);

    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("eos");
    let table = topic.replace('-', "_");
    create_topic(&stack.kafka_bootstrap, &topic, 3).await;
    // Records keep coming for about as long as the freezes and the kills last.
    let chaos_ms = u64::from(kills.max(1)) * 700 + 3 * FROZEN_FOR.as_millis() as u64;
    let rate = (total as u64 * 1000 / chaos_ms).clamp(500, 20_000);
    let (source_file, sink_file) =
        exactly_once_pipeline(dir.path(), &topic, &stack.kafka_bootstrap, total, rate);
    let sink_env = [("FERRY_SINK_DATABASE_URL", stack.postgres_url.as_str())];

    let started = Instant::now();
    let src_admin = free_admin_addr();
    let sink_admin = free_admin_addr();
    let mut source = spawn_runner(&stack, &source_file, &src_admin, &[]);
    let mut sink = spawn_runner(&stack, &sink_file, &sink_admin, &sink_env);

    // A second source task with the same identity (an old pod still alive): the newer one
    // fences the older, which stops with an error instead of writing beside it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let zombie = source;
    let src_admin_now = free_admin_addr();
    source = spawn_runner(&stack, &source_file, &src_admin_now, &[]);
    let mut zombie = zombie;
    let fenced = tokio::time::timeout(Duration::from_secs(60), zombie.child.wait())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the older source kept running beside the newer one:\n{}",
                zombie.log_tail()
            )
        })
        .expect("wait");
    assert!(!fenced.success(), "the fenced source exited with {fenced}");
    let log = std::fs::read_to_string(&zombie.log).unwrap_or_default();
    let lower = log.to_lowercase();
    assert!(
        lower.contains("fenced") || lower.contains("epoch"),
        "the older source should report that it was fenced:\n{}",
        zombie.log_tail()
    );
    println!("exactly-once chaos: the older source was fenced ({fenced})");

    // A frozen task (SIGSTOP: a stuck node, a paused VM) that wakes after its replacement
    // took over. The source is fenced by its transactional id's epoch, the sink by the Kafka
    // positions stored with its rows: neither writes beside its replacement.
    // The frozen runners keep their admin ports: the replacements take new ones.
    wait_ready(&source, &src_admin_now, "source").await;
    let frozen = source;
    signal(&frozen.child, "STOP");
    let src_admin = free_admin_addr();
    source = spawn_runner(&stack, &source_file, &src_admin, &[]);
    let woken = wake_after_takeover(frozen, "source").await;
    println!("exactly-once chaos: the frozen source woke after its replacement and {woken}");
    wait_ready(&sink, &sink_admin, "sink").await;
    let frozen = sink;
    signal(&frozen.child, "STOP");
    let sink_admin = free_admin_addr();
    sink = spawn_runner(&stack, &sink_file, &sink_admin, &sink_env);
    let woken = wake_after_takeover(frozen, "sink").await;
    println!("exactly-once chaos: the frozen sink woke after its replacement and {woken}");

    let (mut source_kills, mut sink_kills) = (0, 0);
    let mut source_done = false;
    for i in 0..kills {
        tokio::time::sleep(Duration::from_millis(200 + rng.next(1000))).await;
        let victim = rng.next(3);
        if victim != 1 && !source_done {
            match source.child.try_wait().expect("wait") {
                // The bounded source finished its records.
                Some(status) if status.success() => source_done = true,
                Some(status) => panic!(
                    "the source runner exited on its own ({status}) before kill {i}:\n{}",
                    source.log_tail()
                ),
                None => {
                    kill9(&source.child);
                    let _ = source.child.wait().await;
                    source = spawn_runner(&stack, &source_file, &src_admin, &[]);
                    source_kills += 1;
                }
            }
        }
        if victim != 0 {
            sink = kill_and_restart(
                &stack,
                sink,
                &sink_file,
                &sink_admin,
                &sink_env,
                &format!("sink runner (kill {i})"),
            )
            .await;
            sink_kills += 1;
        }
    }
    let chaos = started.elapsed();

    // The source finishes its share and exits 0; the sink catches up. A long run may leave
    // most of its records to after the kills: allow twice the time they take at `rate`.
    let finish =
        Duration::from_secs(180).max(Duration::from_millis(2 * total as u64 * 1000 / rate));
    let source_exit = tokio::time::timeout(finish, source.child.wait())
        .await
        .unwrap_or_else(|_| panic!("the source did not finish:\n{}", source.log_tail()))
        .expect("source exit");
    assert!(
        source_exit.success(),
        "source exit {source_exit}:\n{}",
        source.log_tail()
    );
    let deadline = Instant::now() + finish;
    let mut rows = table_counts(&db, &table).await;
    while rows.0 < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rows = table_counts(&db, &table).await;
    }
    // A little longer: a duplicate would land after the last new row.
    tokio::time::sleep(Duration::from_secs(2)).await;
    rows = table_counts(&db, &table).await;
    terminate(&sink.child);
    let sink_exit = sink.child.wait().await.expect("sink exit");

    let counts = tokio::task::spawn_blocking({
        let (b, t) = (stack.kafka_bootstrap.clone(), topic.clone());
        move || committed_sequence_counts(&b, &t)
    })
    .await
    .expect("reader");
    let (missing, twice) = audit(&counts, total);
    println!(
        "exactly-once chaos: {kills} kills ({source_kills} of the source, {sink_kills} of the sink) in {:.1}s; \
         topic (read_committed): {} records, {} distinct, {} missing, {} duplicated; \
         table: {} rows, {} distinct",
        chaos.as_secs_f64(),
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
    assert_eq!(
        counts.len() as i64,
        total,
        "numbers outside 0..{total} in the topic"
    );
    assert_eq!(
        rows,
        (total, total),
        "table {table}: (rows, distinct seq) (seed {seed}):\n{}",
        sink.log_tail()
    );
    let positions: i64 = db
        .query_one(
            "SELECT sum(next_offset)::bigint FROM ferry_kafka_offsets WHERE connector = $1 AND reset_id = ''",
            &[&format!("e2e/{topic}-sink")],
        )
        .await
        .expect("positions")
        .get(0);
    assert!(positions >= total, "stored positions {positions}");
    assert!(
        sink_exit.success(),
        "sink runner exit after SIGTERM: {sink_exit}"
    );
    let _ = db
        .batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\""))
        .await;
}

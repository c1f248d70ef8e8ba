//! Kill -9 chaos: a file → Kafka → file pipeline of two standalone runners, each killed with
//! SIGKILL at random points, then restarted. The source keys each line by its text (so a
//! line always lands in the same one of three partitions, replays included) and the sink
//! writes each record with its partition. Every input line must reach the output at least
//! once, and in each partition in order: the output of a partition may jump back (records
//! replayed after a crash) but never skip ahead.
//!
//! `FERRY_CHAOS_ITERATIONS` sets the number of kills (default 10; the full run uses 50).

mod runner_support;

use std::io::Write;
use std::time::{Duration, Instant};

use ferry_e2e::harness::Stack;
use runner_support::*;

/// One output line: the input line's sequence number and the partition it went through.
fn parse(line: &str) -> Result<(u64, i64), String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("output line {line:?} is not JSON: {e}"))?;
    let seq = v["line"]
        .as_str()
        .and_then(|l| l.strip_prefix("line-"))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("output line {line:?} does not hold an input line"))?;
    let partition = v["p"]
        .as_i64()
        .ok_or_else(|| format!("output line {line:?} has no partition"))?;
    Ok((seq, partition))
}

/// Checks the output: every sequence number `0..total` appears; a line always went through
/// the same partition; and in each partition every line is either the next line of that
/// partition or a replay (not greater than the previous one). Returns the duplicates.
fn check_order(output: &[String], total: u64) -> Result<usize, String> {
    let mut partition_of: Vec<Option<i64>> = vec![None; total as usize];
    let mut records = Vec::with_capacity(output.len());
    for line in output {
        let (seq, p) = parse(line)?;
        if seq >= total {
            return Err(format!("{line} was never written to the input"));
        }
        match partition_of[seq as usize] {
            Some(q) if q != p => {
                return Err(format!("line-{seq:08} went through partitions {q} and {p}"))
            }
            _ => partition_of[seq as usize] = Some(p),
        }
        records.push((seq, p));
    }
    if let Some(missing) = partition_of.iter().position(Option::is_none) {
        return Err(format!("line-{missing:08} never reached the output"));
    }
    // The lines of each partition, in input order, and each line's successor there.
    let mut next_in_partition: Vec<Option<u64>> = vec![None; total as usize];
    let mut first_in_partition = std::collections::BTreeMap::new();
    let mut last_seen = std::collections::BTreeMap::new();
    for seq in 0..total {
        let p = partition_of[seq as usize].unwrap_or_default();
        match last_seen.insert(p, seq) {
            Some(prev) => next_in_partition[prev as usize] = Some(seq),
            None => {
                first_in_partition.insert(p, seq);
            }
        }
    }
    let mut prev_in_partition = std::collections::BTreeMap::new();
    let mut seen = vec![false; total as usize];
    let mut duplicates = 0;
    for (i, (seq, p)) in records.into_iter().enumerate() {
        match prev_in_partition.insert(p, seq) {
            None if Some(&seq) != first_in_partition.get(&p) => {
                return Err(format!(
                    "partition {p} starts at line-{seq:08}, not at its first line"
                ))
            }
            Some(prev) if seq > prev && next_in_partition[prev as usize] != Some(seq) => {
                return Err(format!(
                    "output line {i}: partition {p} skips ahead from line-{prev:08} to line-{seq:08}"
                ))
            }
            _ => {}
        }
        if seen[seq as usize] {
            duplicates += 1;
        }
        seen[seq as usize] = true;
    }
    Ok(duplicates)
}

#[test]
fn order_check_accepts_replays_and_rejects_gaps() {
    let l = |v: &[(u64, i64)]| {
        v.iter()
            .map(|(s, p)| format!("{{\"line\":\"line-{s:08}\",\"o\":0,\"p\":{p}}}"))
            .collect::<Vec<_>>()
    };
    // Partition 0 holds 0, 2, 3; partition 1 holds 1.
    assert_eq!(
        check_order(&l(&[(0, 0), (1, 1), (2, 0), (0, 0), (2, 0), (3, 0)]), 4),
        Ok(2)
    );
    assert!(check_order(&l(&[(0, 0), (1, 1), (3, 0), (2, 0)]), 4)
        .unwrap_err()
        .contains("skips ahead"));
    assert!(check_order(&l(&[(0, 0), (1, 1), (2, 0)]), 4)
        .unwrap_err()
        .contains("line-00000003"));
    assert!(check_order(&l(&[(0, 0), (1, 1), (1, 0)]), 2)
        .unwrap_err()
        .contains("partitions"));
    assert!(check_order(&l(&[(1, 0), (0, 0)]), 2)
        .unwrap_err()
        .contains("starts"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_never_loses_or_reorders_lines() {
    let stack = Stack::from_env().expect("the local stack");
    let iterations: u32 = std::env::var("FERRY_CHAOS_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed = seed_from_env("FERRY_CHAOS_SEED");
    println!("chaos: {iterations} kills, FERRY_CHAOS_SEED={seed}");
    let mut rng = Lcg(seed);

    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    let topic = unique("chaos");
    create_topic(&stack.kafka_bootstrap, &topic, 3).await;
    let converters =
        "  converters: {key: {json: {schemas: false}}, value: {json: {schemas: false}}}\n";
    let source_file = dir.path().join("source.yaml");
    std::fs::write(
        &source_file,
        format!(
            r#"apiVersion: ferry.rs/v1alpha1
kind: KafkaConnector
metadata: {{name: {topic}-src, namespace: e2e}}
spec:
  kafka: {{bootstrapServers: "{}"}}
  source:
    file: {{path: {}, topic: {topic}, batchSize: 500, pollIntervalMs: 50}}
{converters}  transforms:
    - {{name: wrap, hoistField: {{field: line}}}}
    - {{name: key, valueToKey: {{fields: [line]}}}}
"#,
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
            &format!(
                "{converters}  transforms:\n    - {{name: coordinates, insertField: {{partition: {{field: p}}, offset: {{field: o}}}}}}\n"
            ),
        ),
    )
    .expect("write sink");

    // The writer appends lines for the whole chaos phase.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let writer_input = input.clone();
    let writer = tokio::spawn(async move {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&writer_input)
            .expect("input");
        let mut n: u64 = 0;
        loop {
            let mut chunk = String::new();
            for _ in 0..40 {
                chunk.push_str(&format!("line-{n:08}\n"));
                n += 1;
            }
            f.write_all(chunk.as_bytes()).expect("append");
            tokio::select! {
                _ = stop_rx.wait_for(|s| *s) => return n,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    });

    let started = Instant::now();
    let src_admin = free_admin_addr();
    let sink_admin = free_admin_addr();
    let mut source = spawn_runner(&stack, &source_file, &src_admin, &[]);
    let mut sink = spawn_runner(&stack, &sink_file, &sink_admin, &[]);
    let (mut source_kills, mut sink_kills) = (0, 0);
    for i in 0..iterations {
        tokio::time::sleep(Duration::from_millis(300 + rng.next(1700))).await;
        let victim = rng.next(3);
        if victim != 1 {
            source = kill_and_restart(
                &stack,
                source,
                &source_file,
                &src_admin,
                &[],
                &format!("source runner (kill {i})"),
            )
            .await;
            source_kills += 1;
        }
        if victim != 0 {
            sink = kill_and_restart(
                &stack,
                sink,
                &sink_file,
                &sink_admin,
                &[],
                &format!("sink runner (kill {i})"),
            )
            .await;
            sink_kills += 1;
        }
    }
    let _ = stop_tx.send(true);
    let total = writer.await.expect("writer");

    // Everything written must arrive.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut result = check_order(&lines(&output), total);
    while result.is_err() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        result = check_order(&lines(&output), total);
    }
    terminate(&source.child);
    terminate(&sink.child);
    let source_exit = source.child.wait().await.expect("source exit");
    let sink_exit = sink.child.wait().await.expect("sink exit");
    let out = lines(&output);
    let duplicates = match check_order(&out, total) {
        Ok(d) => d,
        Err(e) => panic!(
            "{e} (seed {seed}; {} output lines for {total} input lines)",
            out.len()
        ),
    };
    println!(
        "chaos: {iterations} kills ({source_kills} of the source, {sink_kills} of the sink) in {:.1}s; {total} lines in, {} lines out, {duplicates} duplicates ({:.2}%), 0 lost",
        started.elapsed().as_secs_f64(),
        out.len(),
        100.0 * duplicates as f64 / total as f64
    );
    assert!(
        source_exit.success(),
        "source runner exit after SIGTERM: {source_exit}"
    );
    assert!(
        sink_exit.success(),
        "sink runner exit after SIGTERM: {sink_exit}"
    );
}

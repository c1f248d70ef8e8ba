//! The data-plane workloads, each run by Ferry and by its peer on the same broker and the
//! same records, repetitions interleaved (Ferry, peer, Ferry, peer, ...) so that a change of
//! machine load hits both alike.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::error::BenchError;
use super::kafka;
use super::process::Measured;
use super::procfs::{load_average, Usage};
use super::report::Run;
use super::systems::{
    drive, ferry_sink_yaml, lines_by_size, records_out, start_connect, start_ferry, watch_connect,
    ConnectInstall, Delivery, CONNECT, FERRY,
};
use crate::harness::random_suffix;

/// Name of the Kafka → file workload.
pub const KAFKA_TO_FILE: &str = "Kafka → file";
/// Name of the Kafka → discard workload.
pub const KAFKA_TO_DISCARD: &str = "Kafka → discard";
/// Name of the bare consumer in tables.
pub const RAW: &str = "librdkafka consumer";

/// What every workload needs.
#[derive(Clone, Debug)]
pub struct Bench {
    /// Kafka bootstrap servers of the local stack.
    pub bootstrap: String,
    /// The release `ferry-runner`.
    pub runner: PathBuf,
    /// This program (for `ferry-bench raw-consume`).
    pub self_exe: PathBuf,
    /// Kafka Connect's jars and plugins.
    pub connect: ConnectInstall,
    /// Scratch directory (configurations, logs, output files).
    pub dir: PathBuf,
    /// Records per run.
    pub records: u64,
    /// Bytes per record value.
    pub record_bytes: usize,
    /// Partitions of the input topic.
    pub partitions: i32,
    /// Repetitions per system.
    pub repetitions: u32,
    /// Longest a single run may take.
    pub timeout: Duration,
}

impl Bench {
    fn run(
        &self,
        workload: &str,
        system: &str,
        reference: bool,
        rep: u32,
        d: Delivery,
        load: Option<f64>,
    ) -> Run {
        Run {
            workload: workload.to_string(),
            system: system.to_string(),
            reference,
            repetition: rep,
            records: self.records,
            seconds: d.seconds,
            cpu_seconds: d.usage.cpu_seconds,
            delivery_cpu_seconds: d.delivery_cpu_seconds,
            peak_rss_mib: d.usage.peak_rss_kib as f64 / 1024.0,
            first_record_seconds: Some(d.first_record_seconds),
            load_average: load,
        }
    }

    /// Creates a topic of `partitions` partitions and fills it with `records` JSON records
    /// of `record_bytes` bytes, keyed `key-<i mod 1000>`.
    pub async fn json_topic(&self, prefix: &str) -> Result<String, BenchError> {
        let topic = format!("{prefix}-{}", random_suffix(6));
        kafka::create_topic(&self.bootstrap, &topic, self.partitions).await?;
        eprintln!(
            "writing {} records of {} bytes to {topic} ...",
            self.records, self.record_bytes
        );
        let bytes = self.record_bytes;
        kafka::fill_topic(
            &self.bootstrap,
            &topic,
            self.records,
            |i| kafka::json_record(i, bytes),
            |i| format!("key-{}", i % 1000),
        )?;
        Ok(topic)
    }
}

/// Kafka → file: Ferry's `file` sink against Kafka Connect's `FileStreamSink`, both with
/// string converters (each record value becomes one line). Delivered lines are counted by
/// the output file's size (every line has the same length). Ferry fsyncs every batch;
/// FileStreamSink writes each line unbuffered and does not fsync.
pub fn kafka_to_file(bench: &Bench, topic: &str) -> Result<Vec<Run>, BenchError> {
    let line_bytes = bench.record_bytes as u64 + 1;
    let mut runs = Vec::new();
    for rep in 1..=bench.repetitions {
        for ferry_first in [rep % 2 == 1, rep % 2 == 0] {
            let out = bench.dir.join(format!("file-out-{}.txt", random_suffix(6)));
            let load = load_average();
            let name = format!("bench-file-{}", random_suffix(6));
            let d = if ferry_first {
                eprintln!("{KAFKA_TO_FILE}: {FERRY}, run {rep} ...");
                let yaml = ferry_sink_yaml(
                    &name,
                    &bench.bootstrap,
                    topic,
                    &format!("file: {{path: \"{}\"}}", out.display()),
                    "{key: {string: {}}, value: {string: {}}}",
                    "",
                );
                let (process, _) = start_ferry(&bench.runner, &bench.dir, &name, &yaml, &[])?;
                let path = out.clone();
                drive(
                    process,
                    bench.records,
                    move || Ok(lines_by_size(&path, line_bytes)),
                    Duration::from_millis(5),
                    bench.timeout,
                )?
            } else {
                eprintln!("{KAFKA_TO_FILE}: {CONNECT}, run {rep} ...");
                let (process, rest) = start_connect(
                    &bench.connect,
                    &bench.dir,
                    &name,
                    &bench.bootstrap,
                    "key.converter=org.apache.kafka.connect.storage.StringConverter\nvalue.converter=org.apache.kafka.connect.storage.StringConverter\n",
                    &format!(
                        "name={name}\nconnector.class=org.apache.kafka.connect.file.FileStreamSinkConnector\ntasks.max=1\ntopics={topic}\nfile={}\n",
                        out.display()
                    ),
                )?;
                let path = out.clone();
                drive(
                    process,
                    bench.records,
                    watch_connect(rest, name.clone(), move || {
                        Ok(lines_by_size(&path, line_bytes))
                    }),
                    Duration::from_millis(5),
                    bench.timeout,
                )?
            };
            check_file(&out, bench.records, line_bytes)?;
            let _ = std::fs::remove_file(&out);
            let system = if ferry_first { FERRY } else { CONNECT };
            runs.push(bench.run(KAFKA_TO_FILE, system, !ferry_first, rep, d, load));
        }
    }
    Ok(runs)
}

/// Checks that the output file holds exactly `records` lines of `line_bytes` bytes: a
/// duplicate or a lost record would change its size or its line count.
fn check_file(path: &std::path::Path, records: u64, line_bytes: u64) -> Result<(), BenchError> {
    let size = std::fs::metadata(path)
        .map_err(BenchError::io(format!("cannot read {}", path.display())))?
        .len();
    if size != records * line_bytes {
        return Err(BenchError::Check(format!(
            "{} holds {size} bytes, expected {records} lines of {line_bytes} bytes",
            path.display()
        )));
    }
    let file = std::fs::File::open(path)
        .map_err(BenchError::io(format!("cannot open {}", path.display())))?;
    let lines = std::io::BufReader::with_capacity(1 << 20, file)
        .split(b'\n')
        .count() as u64;
    if lines != records {
        return Err(BenchError::Check(format!(
            "{} holds {lines} lines, expected {records}",
            path.display()
        )));
    }
    Ok(())
}

/// Kafka → discard: Ferry's `discard` sink (records are converted and acknowledged, then
/// dropped) against a bare librdkafka consumer reading the same topic, which only counts
/// messages: the physical limit of a sink on this broker.
pub fn kafka_to_discard(bench: &Bench, topic: &str) -> Result<Vec<Run>, BenchError> {
    let mut runs = Vec::new();
    for rep in 1..=bench.repetitions {
        for ferry_first in [rep % 2 == 1, rep % 2 == 0] {
            let load = load_average();
            let d = if ferry_first {
                eprintln!("{KAFKA_TO_DISCARD}: {FERRY}, run {rep} ...");
                let name = format!("bench-discard-{}", random_suffix(6));
                let yaml = ferry_sink_yaml(
                    &name,
                    &bench.bootstrap,
                    topic,
                    "discard: {}",
                    "{key: {byteArray: {}}, value: {byteArray: {}}}",
                    "",
                );
                let (process, admin) = start_ferry(&bench.runner, &bench.dir, &name, &yaml, &[])?;
                drive(
                    process,
                    bench.records,
                    move || Ok(records_out(&admin).unwrap_or(0)),
                    Duration::from_millis(10),
                    bench.timeout,
                )?
            } else {
                eprintln!("{KAFKA_TO_DISCARD}: {RAW}, run {rep} ...");
                raw_consumer(bench, topic)?
            };
            let system = if ferry_first { FERRY } else { RAW };
            runs.push(bench.run(KAFKA_TO_DISCARD, system, !ferry_first, rep, d, load));
        }
    }
    Ok(runs)
}

/// Runs `ferry-bench raw-consume` as a child process: it says `first <cpu s>` on stdout at
/// its first record and `done <cpu s> <VmHWM KiB>` after the last, then exits; its
/// whole-life CPU comes from `wait4`.
fn raw_consumer(bench: &Bench, topic: &str) -> Result<Delivery, BenchError> {
    let mut command = Command::new(&bench.self_exe);
    command.args([
        "raw-consume",
        "--bootstrap",
        &bench.bootstrap,
        "--topic",
        topic,
        "--partitions",
        &bench.partitions.to_string(),
        "--records",
        &bench.records.to_string(),
    ]);
    let log = bench.dir.join(format!("raw-{}.log", random_suffix(6)));
    let mut process = Measured::spawn_piped(RAW, &mut command, &log)?;
    let started = process.started();
    // Nanoseconds since start at which `first` and `done` were read (0: not yet); the
    // consumer's own CPU (µs) at both, and its VmHWM (KiB) at `done`.
    let marks = Arc::new([
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ]);
    if let Some(stdout) = process.take_stdout() {
        let marks = marks.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                let Ok(line) = line else { break };
                let mut words = line.split_whitespace();
                let slot = match words.next() {
                    Some("first") => 0,
                    Some("done") => 1,
                    _ => continue,
                };
                let cpu: f64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0.0);
                if let Some(hwm) = words.next().and_then(|w| w.parse().ok()) {
                    marks[4].store(hwm, Ordering::SeqCst);
                }
                marks[slot + 2].store((cpu * 1e6) as u64, Ordering::SeqCst);
                marks[slot].store(nanos, Ordering::SeqCst);
            }
        });
    }
    let ended = process
        .wait_ended(bench.timeout)
        .ok_or_else(|| BenchError::Timeout {
            what: format!(
                "the raw consumer to read {} records of {topic}",
                bench.records
            ),
            timeout: bench.timeout,
        })?;
    // The reader thread sees the last line at the latest when the pipe closes.
    for _ in 0..1000 {
        if marks[1].load(Ordering::SeqCst) != 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let (first, done) = (
        marks[0].load(Ordering::SeqCst),
        marks[1].load(Ordering::SeqCst),
    );
    if !ended.success || first == 0 || done == 0 {
        return Err(BenchError::ExitedEarly {
            system: RAW.to_string(),
            status: ended.status,
            delivered: 0,
            expected: bench.records,
            tail: super::process::log_tail(&log, 20),
            log,
        });
    }
    let (first, done) = (first as f64 / 1e9, done as f64 / 1e9);
    Ok(Delivery {
        first_record_seconds: first,
        seconds: (done - first).max(1e-3),
        usage: Usage {
            cpu_seconds: ended.usage.cpu_seconds,
            peak_rss_kib: marks[4].load(Ordering::SeqCst),
        },
        delivery_cpu_seconds: Some(
            (marks[3].load(Ordering::SeqCst) as f64 - marks[2].load(Ordering::SeqCst) as f64) / 1e6,
        ),
    })
}

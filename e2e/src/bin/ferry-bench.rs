//! `ferry-bench`: throughput and memory of the runner's sink path against the raw librdkafka
//! consume rate on the same broker, in the same run.
//!
//! ```text
//! eval "$(e2e/stack env)"
//! cargo run -p ferry-e2e --bin ferry-bench --release -- [--records 200000] [--record-bytes 1024] [--partitions 3]
//! ```
//! Builds the release runner (`cargo build --release -p ferry-runner`, skip with
//! `--no-build`), fills a topic with records, then measures: a plain librdkafka consumer
//! (no processing), Kafka→null and Kafka→file with the standalone runner. Prints a Markdown
//! table: records/s, MiB/s, ratio to the raw rate, peak RSS and RSS once idle.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ferry_e2e::harness::{random_suffix, Stack};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

struct Args {
    records: u64,
    record_bytes: usize,
    partitions: i32,
    build: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        records: 200_000,
        record_bytes: 1024,
        partitions: 3,
        build: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--records" => a.records = value()?.parse()?,
            "--record-bytes" => a.record_bytes = value()?.parse()?,
            "--partitions" => a.partitions = value()?.parse()?,
            "--no-build" => a.build = false,
            "-h" | "--help" => {
                println!(
                    "ferry-bench [--records N] [--record-bytes B] [--partitions P] [--no-build]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

fn fill_topic(bootstrap: &str, topic: &str, args: &Args) -> anyhow::Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "262144")
        .create()?;
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    for i in 0..args.records {
        let payload: Vec<u8> = (0..args.record_bytes)
            .map(|j| alphabet[(i as usize * 7 + j) % alphabet.len()])
            .collect();
        let key = format!("key-{}", i % 1000);
        let mut record = BaseRecord::to(topic).key(&key).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(())
}

/// Records/s of a bare librdkafka consumer reading the whole topic (from the first message),
/// and the CPU seconds it used.
fn raw_consume(bootstrap: &str, topic: &str, args: &Args) -> anyhow::Result<(f64, f64)> {
    let cpu_before = cpu_seconds("self").unwrap_or(0.0);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("ferry-bench-raw-{}", random_suffix(6)))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..args.partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut n = 0u64;
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while n < args.records {
        if Instant::now() > deadline {
            bail!("the raw consumer read only {n} records in 10 minutes");
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m?;
            first.get_or_insert_with(Instant::now);
            n += 1;
        }
    }
    let secs = first.map(|f| f.elapsed().as_secs_f64()).unwrap_or(1.0);
    let cpu = cpu_seconds("self").unwrap_or(0.0) - cpu_before;
    Ok((args.records as f64 / secs, cpu))
}

/// User + system CPU time of a process (`self` or a pid), in seconds.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn progress(admin: &str) -> Option<(u64, u64)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(admin).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET /progress HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let body = buf.split_once("\r\n\r\n")?.1;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    Some((v["recordsIn"].as_u64()?, v["recordsOut"].as_u64()?))
}

struct RunResult {
    rate: f64,
    cpu_seconds: f64,
    peak_rss_mib: f64,
    idle_rss_mib: f64,
}

fn run_runner(
    runner: &Path,
    dir: &Path,
    bootstrap: &str,
    topic: &str,
    sink: &str,
    args: &Args,
) -> anyhow::Result<RunResult> {
    let name = format!("bench-{}", random_suffix(6));
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!(
            "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: {name}, namespace: bench}}\nspec:\n  kafka: {{bootstrapServers: \"{bootstrap}\"}}\n  sink:\n    topics: [{topic}]\n    {sink}\n  converters: {{key: {{byteArray: {{}}}}, value: {{byteArray: {{}}}}}}\n"
        ),
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let admin = format!("127.0.0.1:{port}");
    let mut child: Child = Command::new(runner)
        .args(["run", "-f"])
        .arg(&file)
        .args(["--admin-addr", &admin, "--log-format", "text"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", runner.display()))?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut first: Option<Instant> = None;
    let result = loop {
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!("the runner did not finish in 15 minutes"));
        }
        if let Some(status) = child.try_wait()? {
            break Err(anyhow::anyhow!("the runner exited early: {status}"));
        }
        if let Some((records_in, records_out)) = progress(&admin) {
            if records_in > 0 {
                first.get_or_insert_with(Instant::now);
            }
            if records_out >= args.records {
                let secs = first.map(|f| f.elapsed().as_secs_f64()).unwrap_or(1.0);
                break Ok(args.records as f64 / secs);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let peak = rss_kib(pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0;
    let cpu = cpu_seconds(&pid.to_string()).unwrap_or(0.0);
    std::thread::sleep(Duration::from_secs(3));
    let idle = rss_kib(pid, "VmRSS:").unwrap_or(0) as f64 / 1024.0;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let _ = child.wait();
    Ok(RunResult {
        rate: result?,
        cpu_seconds: cpu,
        peak_rss_mib: peak,
        idle_rss_mib: idle,
    })
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let stack = Stack::from_env()?;
    let runner: PathBuf = stack.repo_root.join("target/release/ferry-runner");
    if args.build {
        eprintln!("building the release runner ...");
        let status = Command::new("cargo")
            .args(["build", "--release", "-p", "ferry-runner"])
            .current_dir(&stack.repo_root)
            .status()?;
        if !status.success() {
            bail!("cargo build --release -p ferry-runner failed");
        }
    }
    let bootstrap = stack.kafka_bootstrap.clone();
    let topic = format!("ferry-bench-{}", random_suffix(6));
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()?;
        let t = NewTopic::new(&topic, args.partitions, TopicReplication::Fixed(1));
        for r in admin.create_topics([&t], &AdminOptions::new()).await? {
            r.map_err(|(t, e)| anyhow::anyhow!("cannot create {t}: {e}"))?;
        }
        anyhow::Ok(())
    })?;
    eprintln!(
        "writing {} records of {} bytes to {topic} ...",
        args.records, args.record_bytes
    );
    fill_topic(&bootstrap, &topic, &args)?;
    let dir = tempfile_dir()?;
    eprintln!("raw librdkafka consumer ...");
    let (raw, raw_cpu) = raw_consume(&bootstrap, &topic, &args)?;
    eprintln!("Kafka -> null ...");
    let null = run_runner(&runner, &dir, &bootstrap, &topic, "discard: {}", &args)?;
    eprintln!("Kafka -> file ...");
    let out = dir.join("bench-out.txt");
    let file = run_runner(
        &runner,
        &dir,
        &bootstrap,
        &topic,
        &format!("file: {{path: {}}}", out.display()),
        &args,
    )?;
    let (raw_after, raw_cpu_after) = raw_consume(&bootstrap, &topic, &args)?;
    let us_per_record = |cpu: f64| cpu * 1e6 / args.records as f64;
    let raw_rate = (raw + raw_after) / 2.0;
    let mib = |rate: f64| rate * args.record_bytes as f64 / (1024.0 * 1024.0);
    println!(
        "\n{} records of {} bytes, {} partitions, broker {bootstrap}\n",
        args.records, args.record_bytes, args.partitions
    );
    println!("| pipeline | records/s | MiB/s | vs raw librdkafka | CPU µs/record | peak RSS | idle RSS |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!(
        "| raw librdkafka consume (mean of before/after: {raw:.0}, {raw_after:.0}) | {raw_rate:.0} | {:.1} | 100% | {:.2} | - | - |",
        mib(raw_rate),
        us_per_record((raw_cpu + raw_cpu_after) / 2.0)
    );
    for (label, r) in [
        ("ferry-runner Kafka→null", &null),
        ("ferry-runner Kafka→file", &file),
    ] {
        println!(
            "| {label} | {:.0} | {:.1} | {:.0}% | {:.2} | {:.1} MiB | {:.1} MiB |",
            r.rate,
            mib(r.rate),
            100.0 * r.rate / raw_rate,
            us_per_record(r.cpu_seconds),
            r.peak_rss_mib,
            r.idle_rss_mib
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ferry-bench-{}", random_suffix(8)));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

//! `ferry-bench`: Ferry next to Kafka Connect 4.1 and a bare librdkafka consumer on the local
//! stack, in one run, on the same broker and the same records; the operator at scale with
//! pods faked by KWOK. Method and latest results: `e2e/bench/README.md`.
//!
//! ```text
//! eval "$(e2e/stack env)"
//! cargo run --release -p ferry-e2e --bin ferry-bench -- pipelines [--records 1000000] [--repetitions 3]
//! cargo run --release -p ferry-e2e --bin ferry-bench -- failover
//! cargo run --release -p ferry-e2e --bin ferry-bench -- operator-scale --connectors 1000
//! cargo run --release -p ferry-e2e --bin ferry-bench -- exactly-once
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use ferry_e2e::bench::databases::{self, Postgres};
use ferry_e2e::bench::delivery;
use ferry_e2e::bench::failover::{self, Failure};
use ferry_e2e::bench::operator_scale::{self, ScaleOptions};
use ferry_e2e::bench::report::{self, Run};
use ferry_e2e::bench::systems::ConnectInstall;
use ferry_e2e::bench::workloads::{self, Bench};
use ferry_e2e::bench::{kafka, procfs};
use ferry_e2e::harness::parse_env_file;
use ferry_e2e::harness::{random_suffix, Stack};

/// Benchmarks of Ferry against its peers on the local stack (`e2e/stack up` first).
#[derive(Debug, Parser)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Without a subcommand: `pipelines` with these arguments.
    #[command(flatten)]
    pipelines: PipelineArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Data-plane workloads, each run by Ferry and by its peer (default).
    Pipelines(PipelineArgs),
    /// Task killed → replacement delivering records, through the operator on the stack.
    Failover(FailoverArgs),
    /// Many connectors on one operator, their pods faked by KWOK.
    OperatorScale(ScaleArgs),
    /// The cost of `delivery: ExactlyOnce` against `AtLeastOnce`, Ferry against itself.
    ExactlyOnce(ExactlyOnceArgs),
    /// Reads a topic with a bare librdkafka consumer (the reference of `Kafka → discard`;
    /// started by `pipelines`).
    #[command(hide = true)]
    RawConsume {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partitions: i32,
        #[arg(long)]
        records: u64,
    },
}

#[derive(Debug, Parser)]
struct PipelineArgs {
    /// Records per run.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Bytes per record value (JSON).
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Partitions of the input topics.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Repetitions of each workload by each system.
    #[arg(long, default_value_t = 3)]
    repetitions: u32,
    /// Workloads to run, comma-separated: file, discard, postgres (1 and 4 tasks), cdc.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "file,discard,postgres,cdc"
    )]
    workloads: Vec<String>,
    /// Rows per run of the Kafka → PostgreSQL workload.
    #[arg(long, default_value_t = 200_000)]
    db_records: u64,
    /// Row changes per run of the PostgreSQL CDC workload.
    #[arg(long, default_value_t = 1_000_000)]
    cdc_records: u64,
    /// Longest a single run may take, in seconds.
    #[arg(long, default_value_t = 900)]
    timeout_seconds: u64,
    /// Use the release binaries as they are (skip `cargo build --release`).
    #[arg(long)]
    no_build: bool,
}

#[derive(Debug, Parser)]
struct ExactlyOnceArgs {
    /// Records per run of `datagen → Kafka`.
    #[arg(long, default_value_t = 500_000)]
    records: u64,
    /// Payload bytes of each generated record.
    #[arg(long, default_value_t = 1000)]
    record_bytes: usize,
    /// Partitions of the topics `datagen` writes.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Rows per run of `Kafka → PostgreSQL insert`.
    #[arg(long, default_value_t = 200_000)]
    db_records: u64,
    /// Repetitions of each workload in each mode.
    #[arg(long, default_value_t = 3)]
    repetitions: u32,
    /// Longest a single run may take, in seconds.
    #[arg(long, default_value_t = 900)]
    timeout_seconds: u64,
    /// Use the release runner as it is (skip `cargo build --release`).
    #[arg(long)]
    no_build: bool,
}

#[derive(Debug, Parser)]
struct FailoverArgs {
    /// Failures of each kind.
    #[arg(long, default_value_t = 3)]
    repetitions: u32,
    /// Use the operator and runner binaries as they are (skip `cargo build`).
    #[arg(long)]
    no_build: bool,
}

#[derive(Debug, Parser)]
struct ScaleArgs {
    /// Connectors to apply.
    #[arg(long, default_value_t = 1000)]
    connectors: usize,
    /// The operator's `--concurrency` (connectors reconciled at once).
    #[arg(long, default_value_t = 32)]
    concurrency: u16,
    /// Seconds to watch the operator once every task runs and nothing changes.
    #[arg(long, default_value_t = 30)]
    idle_seconds: u64,
    /// The operator's `--resync-seconds` (progress reads of running connectors).
    #[arg(long, default_value_t = 15)]
    resync_seconds: u64,
    /// Longest wait for every task to run, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout_seconds: u64,
    /// Use the release operator as it is (skip `cargo build --release`).
    #[arg(long)]
    no_build: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Cmd::Pipelines(cli.pipelines)) {
        Cmd::RawConsume {
            bootstrap,
            topic,
            partitions,
            records,
        } => Ok(kafka::raw_consume(
            &bootstrap,
            &topic,
            partitions,
            records,
            Duration::from_secs(900),
        )?),
        Cmd::Pipelines(args) => pipelines(args),
        Cmd::OperatorScale(args) => operator_scale(args),
        Cmd::Failover(args) => failover(args),
        Cmd::ExactlyOnce(args) => exactly_once(args),
    }
}

fn exactly_once(args: ExactlyOnceArgs) -> anyhow::Result<()> {
    let stack = Stack::from_env()?;
    let root = stack.repo_root.clone();
    let runner = release_runner(&root, args.no_build)?;
    let dir = scratch_dir()?;
    let bench = bench_on(
        &stack,
        runner,
        None,
        &dir,
        RunSize {
            records: args.records,
            record_bytes: args.record_bytes,
            partitions: args.partitions,
            repetitions: args.repetitions,
            timeout_seconds: args.timeout_seconds,
        },
    )?;
    let started_at = timestamp();
    let machine = machine_line();
    let rt = tokio::runtime::Runtime::new()?;
    let pg = Postgres::from_url(&stack.postgres_url)?;
    let mut topics = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    let result = rt.block_on(async {
        runs.extend(delivery::datagen_to_kafka(&bench, &mut topics).await?);
        for tasks in [1, 4] {
            runs.extend(
                delivery::kafka_to_postgres(&bench, &pg, args.db_records, tasks, &mut topics)
                    .await?,
            );
        }
        Ok::<_, ferry_e2e::bench::BenchError>(())
    });
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    rt.block_on(kafka::delete_topics(&bench.bootstrap, &topic_refs));
    let heading = format!(
        "datagen → Kafka: {} records with {}-byte payloads, {} partitions; Kafka → PostgreSQL insert: {} rows, 4 partitions; broker {}; {machine}; {started_at}",
        args.records, args.record_bytes, args.partitions, args.db_records, bench.bootstrap
    );
    print_runs(
        &root,
        "exactly-once",
        &started_at,
        &heading,
        &runs,
        bench.repetitions,
    )?;
    finish(result.map_err(anyhow::Error::new), &dir)
}

/// Records, sizes and repetitions of a data-plane subcommand's runs.
struct RunSize {
    records: u64,
    record_bytes: usize,
    partitions: i32,
    repetitions: u32,
    timeout_seconds: u64,
}

/// The measuring setup of a data-plane subcommand on `stack`: `runner` is the release
/// runner, `plugin_path` Kafka Connect's plugin directory (Debezium), `dir` the scratch
/// directory.
fn bench_on(
    stack: &Stack,
    runner: PathBuf,
    plugin_path: Option<PathBuf>,
    dir: &Path,
    size: RunSize,
) -> anyhow::Result<Bench> {
    Ok(Bench {
        bootstrap: stack.kafka_bootstrap.clone(),
        runner,
        self_exe: std::env::current_exe().context("cannot find this program's path")?,
        connect: ConnectInstall {
            libs: stack.kafka_libs.clone(),
            plugin_path,
        },
        dir: dir.to_path_buf(),
        records: size.records,
        record_bytes: size.record_bytes,
        partitions: size.partitions,
        repetitions: size.repetitions.max(1),
        timeout: Duration::from_secs(size.timeout_seconds),
    })
}

/// Prints the runs as a Markdown table under `heading` and writes them as CSV.
fn print_runs(
    root: &Path,
    name: &str,
    started_at: &str,
    heading: &str,
    runs: &[Run],
    repetitions: u32,
) -> anyhow::Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let csv = write_csv(root, name, started_at, runs)?;
    println!("\n{heading}\n");
    println!("{}", report::markdown_table(runs));
    println!(
        "cells: median (min) of {repetitions} runs; raw results: {}",
        csv.display()
    );
    Ok(())
}

/// Removes the scratch directory after a successful run; keeps it (and says where) after a
/// failure.
fn finish(result: anyhow::Result<()>, dir: &Path) -> anyhow::Result<()> {
    match result {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(dir);
            Ok(())
        }
        Err(e) => Err(e.context(format!("logs kept in {}", dir.display()))),
    }
}

/// The release `ferry-runner`, built first unless `no_build`.
fn release_runner(root: &Path, no_build: bool) -> anyhow::Result<PathBuf> {
    if !no_build {
        cargo_build_release(root, &["ferry-runner"])?;
    }
    let runner = root.join("target/release/ferry-runner");
    if !runner.exists() {
        bail!("{} is missing: run without --no-build", runner.display());
    }
    Ok(runner)
}

fn cargo_build_release(root: &Path, packages: &[&str]) -> anyhow::Result<()> {
    let mut command = Command::new("cargo");
    command.args(["build", "--release"]).current_dir(root);
    for p in packages {
        command.args(["-p", p]);
    }
    eprintln!("building {} (release) ...", packages.join(", "));
    let status = command.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build --release -p {} failed", packages.join(" -p "));
    }
    Ok(())
}

fn scratch_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ferry-bench-{}", random_suffix(8)));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn timestamp() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Writes the runs to `e2e/bench/results/<time>-<name>.csv` and returns the path.
fn write_csv(root: &Path, name: &str, started_at: &str, runs: &[Run]) -> anyhow::Result<PathBuf> {
    let dir = root.join("e2e/bench/results");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{}-{name}.csv", started_at.replace(':', "")));
    let mut text = format!("{}\n", report::CSV_HEADER);
    for r in runs {
        text.push_str(&report::csv_line(started_at, r));
        text.push('\n');
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn machine_line() -> String {
    let (cpus, mem) = procfs::machine();
    format!(
        "{cpus} CPUs ({}), {:.1} GiB memory, load average {:.2} at start",
        procfs::cpu_model(),
        mem as f64 / 1024.0,
        procfs::load_average().unwrap_or(0.0)
    )
}

fn pipelines(args: PipelineArgs) -> anyhow::Result<()> {
    let stack = Stack::from_env()?;
    let root = stack.repo_root.clone();
    let runner = release_runner(&root, args.no_build)?;
    let needs_debezium = args.workloads.iter().any(|w| w == "postgres" || w == "cdc");
    let plugin_path = if needs_debezium {
        let tools = bench_tools(&root)?;
        Some(PathBuf::from(tools.get("FERRY_DEBEZIUM_PLUGINS").context(
            "e2e/stack bench-tools did not name FERRY_DEBEZIUM_PLUGINS",
        )?))
    } else {
        None
    };
    let dir = scratch_dir()?;
    let bench = bench_on(
        &stack,
        runner,
        plugin_path,
        &dir,
        RunSize {
            records: args.records,
            record_bytes: args.record_bytes,
            partitions: args.partitions,
            repetitions: args.repetitions,
            timeout_seconds: args.timeout_seconds,
        },
    )?;
    let started_at = timestamp();
    let machine = machine_line();
    let rt = tokio::runtime::Runtime::new()?;
    let mut runs: Vec<Run> = Vec::new();
    let mut topics: Vec<String> = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        for workload in &args.workloads {
            match workload.as_str() {
                "file" => {
                    let topic = rt.block_on(bench.json_topic("ferry-bench-file"))?;
                    topics.push(topic.clone());
                    runs.extend(workloads::kafka_to_file(&bench, &topic)?);
                }
                "discard" => {
                    let topic = rt.block_on(bench.json_topic("ferry-bench-discard"))?;
                    topics.push(topic.clone());
                    runs.extend(workloads::kafka_to_discard(&bench, &topic)?);
                }
                "postgres" => {
                    let pg = Postgres::from_url(&stack.postgres_url)?;
                    let topic =
                        rt.block_on(databases::postgres_topic(&bench, args.db_records, 4))?;
                    topics.push(topic.clone());
                    for tasks in [1, 4] {
                        runs.extend(databases::kafka_to_postgres(
                            &bench,
                            &pg,
                            &topic,
                            args.db_records,
                            tasks,
                        )?);
                    }
                }
                "cdc" => {
                    let pg = Postgres::from_url(&stack.postgres_url)?;
                    runs.extend(databases::postgres_cdc(
                        &bench,
                        &pg,
                        args.cdc_records,
                        &mut topics,
                    )?);
                }
                other => bail!("unknown workload {other}: use file, discard, postgres, cdc"),
            }
        }
        Ok(())
    })();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    rt.block_on(kafka::delete_topics(&bench.bootstrap, &topic_refs));
    let heading = format!(
        "Kafka → file and Kafka → discard: {} records of {} bytes per run, {} partitions; Kafka → PostgreSQL: {} rows, 4 partitions; PostgreSQL CDC: {} row changes; broker {}; {machine}; {started_at}",
        args.records,
        args.record_bytes,
        args.partitions,
        args.db_records,
        args.cdc_records,
        bench.bootstrap
    );
    print_runs(
        &root,
        "pipelines",
        &started_at,
        &heading,
        &runs,
        bench.repetitions,
    )?;
    finish(result, &dir)
}

/// Builds KWOK and fetches Debezium (`e2e/stack bench-tools`, cached) and returns the
/// variables it prints: FERRY_KWOK, FERRY_KWOK_STAGES, FERRY_DEBEZIUM_PLUGINS.
fn bench_tools(root: &Path) -> anyhow::Result<std::collections::HashMap<String, String>> {
    let output = Command::new(root.join("e2e/stack"))
        .arg("bench-tools")
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run e2e/stack bench-tools")?;
    if !output.status.success() {
        bail!("e2e/stack bench-tools failed ({})", output.status);
    }
    Ok(parse_env_file(&String::from_utf8_lossy(&output.stdout)))
}

fn operator_scale(args: ScaleArgs) -> anyhow::Result<()> {
    let stack = Stack::from_env()?;
    let root = stack.repo_root.clone();
    let tools = bench_tools(&root)?;
    let kwok = tools
        .get("FERRY_KWOK")
        .context("e2e/stack bench-tools did not name FERRY_KWOK")?;
    let stages = tools
        .get("FERRY_KWOK_STAGES")
        .context("e2e/stack bench-tools did not name FERRY_KWOK_STAGES")?;
    if !args.no_build {
        cargo_build_release(&root, &["ferry-operator"])?;
    }
    let operator = root.join("target/release/ferry-operator");
    if !operator.exists() {
        bail!("{} is missing: run without --no-build", operator.display());
    }
    let dir = scratch_dir()?;
    let options = ScaleOptions {
        connectors: args.connectors,
        operator,
        kwok: PathBuf::from(kwok),
        kwok_stages: operator_scale::stage_files(Path::new(stages))?,
        dir: dir.clone(),
        concurrency: args.concurrency,
        resync_seconds: args.resync_seconds,
        timeout: Duration::from_secs(args.timeout_seconds),
        idle_seconds: args.idle_seconds,
    };
    let started_at = timestamp();
    let machine = machine_line();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let crd = stack
            .kubectl(
                ["apply", "--server-side", "--force-conflicts", "-f"]
                    .iter()
                    .map(|s| s.to_string())
                    .chain([root.join("crds/kafkaconnector.yaml").display().to_string()]),
            )
            .await?;
        if !crd.status.success() {
            bail!(
                "kubectl apply of the CRD failed: {}",
                String::from_utf8_lossy(&crd.stderr)
            );
        }
        anyhow::Ok(())
    })?;
    eprintln!(
        "applying {} connectors (operator --concurrency {}) ...",
        args.connectors, args.concurrency
    );
    let result = rt
        .block_on(operator_scale::run(&stack, &options))
        .with_context(|| format!("logs kept in {}", dir.display()))?;
    let csv = write_scale_csv(&root, &started_at, &result)?;
    println!("\n{} connectors (discard sink, 1 task each) on one operator (--concurrency {}, --resync-seconds {}), pods faked by KWOK; {machine}; {started_at}\n", result.connectors, args.concurrency, args.resync_seconds);
    println!("{}", scale_table(&result));
    println!("raw results: {}", csv.display());
    if result.converged && result.objects_changed.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("operator and KWOK logs kept in {}", dir.display());
    }
    if !result.objects_changed.is_empty() {
        bail!(
            "adding and removing one connector changed other connectors' objects: {}",
            result.objects_changed.join(", ")
        );
    }
    Ok(())
}

fn scale_table(r: &operator_scale::ScaleResult) -> String {
    let pct = |v: &[f64], p: f64| {
        operator_scale::censored_percentile(v, r.connectors, p, r.timeout_seconds)
    };
    let mut rows = vec![
        (
            "connectors applied (server-side apply, one after the other)".to_string(),
            format!("{} in {:.1} s", r.connectors, r.apply_seconds),
        ),
        (
            "apply → task pod Running, p50 / p95 / max (s)".to_string(),
            format!(
                "{} / {} / {}",
                pct(&r.to_pod_running, 50.0),
                pct(&r.to_pod_running, 95.0),
                pct(&r.to_pod_running, 100.0)
            ),
        ),
        (
            "apply → connector status shows its task ready, p50 / p95 / max (s)".to_string(),
            format!(
                "{} / {} / {}",
                pct(&r.to_connector_ready, 50.0),
                pct(&r.to_connector_ready, 95.0),
                pct(&r.to_connector_ready, 100.0)
            ),
        ),
        (
            "first apply → last connector ready (s)".to_string(),
            if r.converged {
                format!("{:.1}", r.all_ready_seconds)
            } else {
                format!("> {:.0} (not all converged)", r.timeout_seconds)
            },
        ),
        (
            "operator CPU from the first apply to convergence (or the end of the wait) (s)"
                .to_string(),
            format!("{:.1}", r.operator_cpu_seconds_converge),
        ),
        (
            "operator CPU while idle".to_string(),
            format!(
                "{:.2} s in {:.0} s ({:.1} % of one core)",
                r.operator_cpu_seconds_idle,
                r.idle_seconds,
                100.0 * r.operator_cpu_seconds_idle / r.idle_seconds.max(1e-9)
            ),
        ),
        (
            "operator peak RSS (MiB)".to_string(),
            format!("{:.1}", r.operator_usage.peak_rss_kib as f64 / 1024.0),
        ),
        (
            "operator CPU, whole run (s)".to_string(),
            format!("{:.1}", r.operator_usage.cpu_seconds),
        ),
        (
            "added connector: apply → pod Running (s)".to_string(),
            format!("{:.2}", r.added_to_running),
        ),
    ];
    rows.push((
        "other connectors' pods and ConfigMaps changed by adding one and removing one".to_string(),
        if r.objects_changed.is_empty() {
            format!("0 of {} (same UID and resourceVersion)", r.objects_compared)
        } else {
            format!("{} of {}", r.objects_changed.len(), r.objects_compared)
        },
    ));
    rows.insert(
        1,
        (
            "task pods Running / connectors reporting ready within the wait".to_string(),
            format!(
                "{} / {} of {} ({:.0} s wait)",
                r.to_pod_running.len(),
                r.to_connector_ready.len(),
                r.connectors,
                r.timeout_seconds
            ),
        ),
    );
    let mut out = String::from("| measure | value |\n|---|---:|\n");
    for (k, v) in rows {
        out.push_str(&format!("| {k} | {v} |\n"));
    }
    out
}

fn write_scale_csv(
    root: &Path,
    started_at: &str,
    r: &operator_scale::ScaleResult,
) -> anyhow::Result<PathBuf> {
    let dir = root.join("e2e/bench/results");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!(
        "{}-operator-scale.csv",
        started_at.replace(':', "")
    ));
    let mut text = String::from("started_at,connectors,measure,value\n");
    for (measure, values) in [
        ("apply_to_pod_running", &r.to_pod_running),
        ("apply_to_connector_ready", &r.to_connector_ready),
    ] {
        for v in values {
            text.push_str(&format!("{started_at},{},{measure},{v:.4}\n", r.connectors));
        }
    }
    for (measure, v) in [
        ("apply_loop", r.apply_seconds),
        ("all_ready", r.all_ready_seconds),
        ("operator_cpu_converge", r.operator_cpu_seconds_converge),
        ("operator_cpu_idle", r.operator_cpu_seconds_idle),
        ("idle_window", r.idle_seconds),
        ("operator_cpu_total", r.operator_usage.cpu_seconds),
        ("added_to_pod_running", r.added_to_running),
    ] {
        text.push_str(&format!("{started_at},{},{measure},{v:.4}\n", r.connectors));
    }
    text.push_str(&format!(
        "{started_at},{},operator_peak_rss_mib,{:.1}\n",
        r.connectors,
        r.operator_usage.peak_rss_kib as f64 / 1024.0
    ));
    text.push_str(&format!(
        "{started_at},{},other_objects_compared,{}\n",
        r.connectors, r.objects_compared
    ));
    text.push_str(&format!(
        "{started_at},{},other_objects_changed,{}\n",
        r.connectors,
        r.objects_changed.len()
    ));
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn failover(args: FailoverArgs) -> anyhow::Result<()> {
    let stack = Stack::from_env()?;
    let root = stack.repo_root.clone();
    if !args.no_build {
        // Task pods run target/debug/ferry-runner (the local kubelet's image table).
        let status = Command::new("cargo")
            .args(["build", "-p", "ferry-runner"])
            .current_dir(&root)
            .status()
            .context("cannot run cargo")?;
        if !status.success() {
            bail!("cargo build -p ferry-runner failed");
        }
        cargo_build_release(&root, &["ferry-operator"])?;
    }
    let operator = root.join("target/release/ferry-operator");
    let dir = scratch_dir()?;
    let started_at = timestamp();
    let machine = machine_line();
    let rt = tokio::runtime::Runtime::new()?;
    let recoveries = rt
        .block_on(failover::run(
            &stack,
            &operator,
            &dir,
            args.repetitions.max(1),
        ))
        .with_context(|| format!("logs kept in {}", dir.display()))?;
    let path = root.join("e2e/bench/results");
    std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let csv = path.join(format!("{}-failover.csv", started_at.replace(':', "")));
    let mut text = String::from(
        "started_at,failure,to_new_pod_seconds,to_running_seconds,to_delivering_seconds\n",
    );
    for r in &recoveries {
        text.push_str(&format!(
            "{started_at},\"{}\",{:.3},{:.3},{:.3}\n",
            r.failure.label(),
            r.to_new_pod,
            r.to_running,
            r.to_delivering
        ));
    }
    std::fs::write(&csv, text).with_context(|| format!("cannot write {}", csv.display()))?;
    println!("\nTask failure → replacement delivering records, Ferry through the operator (restartPolicy defaults: first restart after 1 s + up to 20 % jitter); {machine}; {started_at}\n");
    println!("| failure | runs | → replacement pod created, median (max) s | → Running | → delivering records |");
    println!("|---|---:|---:|---:|---:|");
    for kind in [Failure::Kill, Failure::DeletePod] {
        let of: Vec<&failover::Recovery> =
            recoveries.iter().filter(|r| r.failure == kind).collect();
        let cell = |f: fn(&failover::Recovery) -> f64| {
            let v: Vec<f64> = of.iter().map(|r| f(r)).collect();
            format!(
                "{:.2} ({:.2})",
                report::median(&v).unwrap_or(f64::NAN),
                report::percentile(&v, 100.0).unwrap_or(f64::NAN)
            )
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            kind.label(),
            of.len(),
            cell(|r| r.to_new_pod),
            cell(|r| r.to_running),
            cell(|r| r.to_delivering)
        );
    }
    println!("| Kafka Connect standalone worker killed | – | never | never | never: a standalone worker is one process; nothing restarts it |");
    println!("\nraw results: {}", csv.display());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

//! `ferry-bench`: Ferry next to Kafka Connect 4.1 and a bare librdkafka consumer on the local
//! stack, in one run, on the same broker and the same records; the operator at scale with
//! pods faked by KWOK. Method and latest results: `e2e/bench/README.md`.
//!
//! ```text
//! eval "$(e2e/stack env)"
//! cargo run --release -p ferry-e2e --bin ferry-bench -- pipelines [--records 1000000] [--repetitions 3]
//! cargo run --release -p ferry-e2e --bin ferry-bench -- failover
//! cargo run --release -p ferry-e2e --bin ferry-bench -- operator-scale --connectors 1000
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use ferry_e2e::bench::report::{self, Run};
use ferry_e2e::bench::systems::ConnectInstall;
use ferry_e2e::bench::workloads::{self, Bench};
use ferry_e2e::bench::{kafka, procfs};
use ferry_e2e::harness::{random_suffix, Stack};

/// Benchmarks of Ferry against its peers on the local stack (`e2e/stack up` first).
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Data-plane workloads, each run by Ferry and by its peer (default).
    Pipelines(PipelineArgs),
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
    /// Workloads to run, comma-separated: file, discard.
    #[arg(long, value_delimiter = ',', default_value = "file,discard")]
    workloads: Vec<String>,
    /// Longest a single run may take, in seconds.
    #[arg(long, default_value_t = 900)]
    timeout_seconds: u64,
    /// Use the release binaries as they are (skip `cargo build --release`).
    #[arg(long)]
    no_build: bool,
}

impl Default for PipelineArgs {
    fn default() -> Self {
        PipelineArgs::parse_from(["pipelines"])
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli
        .command
        .unwrap_or(Cmd::Pipelines(PipelineArgs::default()))
    {
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
    }
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
    if !args.no_build {
        cargo_build_release(&root, &["ferry-runner"])?;
    }
    let runner = root.join("target/release/ferry-runner");
    if !runner.exists() {
        bail!("{} is missing: run without --no-build", runner.display());
    }
    let dir = scratch_dir()?;
    let bench = Bench {
        bootstrap: stack.kafka_bootstrap.clone(),
        runner,
        self_exe: std::env::current_exe().context("cannot find this program's path")?,
        connect: ConnectInstall {
            libs: stack.kafka_libs.clone(),
            plugin_path: None,
        },
        dir: dir.clone(),
        records: args.records,
        record_bytes: args.record_bytes,
        partitions: args.partitions,
        repetitions: args.repetitions.max(1),
        timeout: Duration::from_secs(args.timeout_seconds),
    };
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
                other => bail!("unknown workload {other}: use file, discard"),
            }
        }
        Ok(())
    })();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    rt.block_on(kafka::delete_topics(&bench.bootstrap, &topic_refs));
    if !runs.is_empty() {
        let csv = write_csv(&root, "pipelines", &started_at, &runs)?;
        println!(
            "\n{} records of {} bytes per run, {} partitions, broker {}; {machine}; {started_at}\n",
            args.records, args.record_bytes, args.partitions, bench.bootstrap
        );
        println!("{}", report::markdown_table(&runs));
        println!(
            "cells: median (min) of {} runs; raw results: {}",
            bench.repetitions,
            csv.display()
        );
    }
    match result {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        }
        Err(e) => Err(e.context(format!("logs kept in {}", dir.display()))),
    }
}

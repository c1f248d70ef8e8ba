//! How each system under test is started: Ferry's standalone runner
//! (`ferry-runner run -f connector.yaml`) and Kafka Connect 4.1 standalone
//! (`ConnectStandalone worker.properties connector.properties`), and how the harness sees
//! what they delivered.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::error::BenchError;
use super::process::Measured;
use super::procfs::{usage_of, Usage};

/// Name of Ferry in tables.
pub const FERRY: &str = "Ferry";
/// Name of Kafka Connect standalone in tables.
pub const CONNECT: &str = "Kafka Connect";

/// JVM options of Kafka's own `bin/connect-standalone.sh` (its `KAFKA_HEAP_OPTS` default and
/// `kafka-run-class.sh`'s `KAFKA_JVM_PERFORMANCE_OPTS`): Connect runs as it ships.
pub const CONNECT_JVM_OPTIONS: [&str; 9] = [
    "-Xms256M",
    "-Xmx2G",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
];

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take).
pub fn free_port() -> Result<u16, BenchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(BenchError::io("cannot find a free port on 127.0.0.1"))
}

fn write(path: &Path, text: &str) -> Result<(), BenchError> {
    std::fs::write(path, text).map_err(BenchError::io(format!("cannot write {}", path.display())))
}

/// Starts `ferry-runner run -f <dir>/<name>-task-0.yaml` with `connector_yaml`, its admin server on
/// a free port of 127.0.0.1, warnings-only logs to `<dir>/<name>.log`, and `env`.
/// Returns the process and its admin address.
pub fn start_ferry(
    runner: &Path,
    dir: &Path,
    name: &str,
    connector_yaml: &str,
    env: &[(&str, &str)],
) -> Result<(Measured, String), BenchError> {
    start_ferry_task(runner, dir, name, connector_yaml, env, (0, 1))
}

/// [`start_ferry`] for task `index` of `count` (`--task-index`, `--task-count`).
pub fn start_ferry_task(
    runner: &Path,
    dir: &Path,
    name: &str,
    connector_yaml: &str,
    env: &[(&str, &str)],
    (index, count): (u32, u32),
) -> Result<(Measured, String), BenchError> {
    // One file per task: tasks started one after the other must not read a file the next
    // one is rewriting.
    let file = dir.join(format!("{name}-task-{index}.yaml"));
    write(&file, connector_yaml)?;
    let admin = format!("127.0.0.1:{}", free_port()?);
    let mut command = Command::new(runner);
    command
        .args(["run", "-f"])
        .arg(&file)
        .args(["--admin-addr", &admin, "--log-format", "text"])
        .args([
            "--task-index",
            &index.to_string(),
            "--task-count",
            &count.to_string(),
        ])
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied());
    let log = dir.join(format!("{name}-task-{index}.log"));
    let process = Measured::spawn(FERRY, &mut command, &log)?;
    Ok((process, admin))
}

/// Starts tasks `0..count` of one connector, one process each ([`start_ferry_task`]).
pub fn start_ferry_tasks(
    runner: &Path,
    dir: &Path,
    name: &str,
    connector_yaml: &str,
    env: &[(&str, &str)],
    count: u32,
) -> Result<Vec<Measured>, BenchError> {
    (0..count)
        .map(|index| {
            start_ferry_task(runner, dir, name, connector_yaml, env, (index, count)).map(|(p, _)| p)
        })
        .collect()
}

/// The `KafkaConnector` YAML of a standalone sink run: `sink_block` is the plugin's block
/// (e.g. `file: {path: /tmp/out}`), `extra` more spec lines (two-space indented).
pub fn ferry_sink_yaml(
    name: &str,
    bootstrap: &str,
    topic: &str,
    sink_block: &str,
    converters: &str,
    extra: &str,
) -> String {
    format!(
        "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: {name}, namespace: bench}}\nspec:\n  kafka: {{bootstrapServers: \"{bootstrap}\"}}\n  sink:\n    topics: [{topic}]\n    {sink_block}\n  converters: {converters}\n{extra}"
    )
}

/// Where Kafka Connect finds its classes: the Kafka jars (`FERRY_KAFKA_LIBS`) on the
/// classpath, and plugin directories (Debezium) on `plugin.path`.
#[derive(Clone, Debug)]
pub struct ConnectInstall {
    /// Directory of the Kafka and Kafka Connect jars.
    pub libs: PathBuf,
    /// Kafka Connect `plugin.path`, if any plugins are needed.
    pub plugin_path: Option<PathBuf>,
}

/// Starts Kafka Connect standalone with `worker` and `connector` properties (the harness
/// adds `bootstrap.servers`, a REST listener on a free port, file offsets in `dir`, and
/// `plugin.path`), logging at WARN to `<dir>/<name>.log`. Returns the process and the
/// address of its REST API.
pub fn start_connect(
    install: &ConnectInstall,
    dir: &Path,
    name: &str,
    bootstrap: &str,
    worker: &str,
    connector: &str,
) -> Result<(Measured, String), BenchError> {
    let worker_file = dir.join(format!("{name}-worker.properties"));
    let connector_file = dir.join(format!("{name}-connector.properties"));
    let log4j = dir.join("connect-log4j2.yaml");
    let rest = format!("127.0.0.1:{}", free_port()?);
    let mut worker_text = format!(
        "bootstrap.servers={bootstrap}\nlisteners=http://{rest}\noffset.storage.file.filename={}\n",
        dir.join(format!("{name}.offsets")).display()
    );
    if let Some(path) = &install.plugin_path {
        worker_text.push_str(&format!("plugin.path={}\n", path.display()));
    }
    worker_text.push_str(worker);
    write(&worker_file, &worker_text)?;
    write(&connector_file, connector)?;
    write(
        &log4j,
        "Configuration:\n  Appenders:\n    Console:\n      name: STDOUT\n      PatternLayout: {Pattern: \"[%d] %p %m (%c)%n\"}\n  Loggers:\n    Root: {level: WARN, AppenderRef: [{ref: STDOUT}]}\n",
    )?;
    let mut command = Command::new("java");
    command
        .args(CONNECT_JVM_OPTIONS)
        .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
        .arg("-cp")
        .arg(format!("{}/*", install.libs.display()))
        .arg("org.apache.kafka.connect.cli.ConnectStandalone")
        .arg(&worker_file)
        .arg(&connector_file);
    let process = Measured::spawn(CONNECT, &mut command, &dir.join(format!("{name}.log")))?;
    Ok((process, rest))
}

/// Why connector `name` of the Kafka Connect worker at `rest` failed, if it or one of its
/// tasks is `FAILED` (a failed task stays failed in standalone mode: the run cannot finish).
pub fn connect_failure(rest: &str, name: &str) -> Option<String> {
    let v = http_get_json(rest, &format!("/connectors/{name}/status"))?;
    let failed = |s: &serde_json::Value| s["state"] == "FAILED";
    let trace = |s: &serde_json::Value| {
        s["trace"]
            .as_str()
            .unwrap_or("no trace")
            .lines()
            .take(3)
            .collect::<Vec<_>>()
            .join(" | ")
    };
    if failed(&v["connector"]) {
        return Some(format!(
            "Kafka Connect connector {name} FAILED: {}",
            trace(&v["connector"])
        ));
    }
    v["tasks"]
        .as_array()?
        .iter()
        .find(|t| failed(t))
        .map(|t| format!("Kafka Connect task {name}-{} FAILED: {}", t["id"], trace(t)))
}

fn http_get_json(addr: &str, path: &str) -> Option<serde_json::Value> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let body = buf.split_once("\r\n\r\n")?.1;
    serde_json::from_str(body).ok()
}

/// Wraps a delivery probe of a Kafka Connect run: about once a second it also asks the
/// worker's REST API whether the connector failed, and turns that into a fatal error.
pub fn watch_connect<'a>(
    rest: String,
    name: String,
    mut delivered: impl FnMut() -> Result<u64, BenchError> + 'a,
) -> impl FnMut() -> Result<u64, BenchError> + 'a {
    let mut last = Instant::now();
    move || {
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            if let Some(why) = connect_failure(&rest, &name) {
                return Err(BenchError::Check(why));
            }
        }
        delivered()
    }
}

/// `recordsOut` of a runner's `/progress` answer (the contract's `TaskProgress`, at
/// `ferry_crds::contract::PROGRESS_PATH`), or `None` while it does not answer.
pub fn records_out(admin: &str) -> Option<u64> {
    let mut s = std::net::TcpStream::connect(admin).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET /progress HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let body = buf.split_once("\r\n\r\n")?.1;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["recordsOut"].as_u64()
}

/// Lines in a file whose lines are all `line_bytes` bytes long (with the line break), by
/// its size: 0 while it does not exist.
pub fn lines_by_size(path: &Path, line_bytes: u64) -> u64 {
    std::fs::metadata(path)
        .map(|m| m.len() / line_bytes.max(1))
        .unwrap_or(0)
}

/// What one measured run delivered, and what it cost.
#[derive(Clone, Copy, Debug)]
pub struct Delivery {
    /// Seconds from process start to the first record delivered.
    pub first_record_seconds: f64,
    /// Seconds from the first to the last record delivered.
    pub seconds: f64,
    /// CPU and peak memory of the process until the last record was delivered.
    pub usage: Usage,
    /// CPU seconds of the process between the first and the last record.
    pub delivery_cpu_seconds: Option<f64>,
}

/// Polls `delivered` (every millisecond until the first record, then every `poll`) until it
/// reports `expected` records, then stops the process and returns the timings and its usage.
/// Fails if the process ends first, `timeout` passes, or `delivered` returns
/// [`BenchError::Check`] (other errors of `delivered` are retried at the next poll).
pub fn drive(
    process: Measured,
    expected: u64,
    delivered: impl FnMut() -> Result<u64, BenchError>,
    poll: Duration,
    timeout: Duration,
) -> Result<Delivery, BenchError> {
    drive_all(vec![process], expected, delivered, poll, timeout)
}

/// [`drive`] for the processes of one system (Ferry's tasks are one process each): timings
/// start with the first process started; CPU seconds and peak RSS are their sums.
pub fn drive_all(
    mut processes: Vec<Measured>,
    expected: u64,
    mut delivered: impl FnMut() -> Result<u64, BenchError>,
    poll: Duration,
    timeout: Duration,
) -> Result<Delivery, BenchError> {
    let Some(started) = processes.iter().map(Measured::started).min() else {
        return Err(BenchError::Check("no process to measure".into()));
    };
    let cpu_now = |processes: &[Measured]| -> Option<f64> {
        processes
            .iter()
            .map(|p| usage_of(p.pid()).map(|u| u.cpu_seconds))
            .sum()
    };
    let deadline = started + timeout;
    let mut first: Option<Instant> = None;
    let mut cpu_at_first: Option<f64> = None;
    let mut n = 0;
    let done = loop {
        let now = Instant::now();
        n = match delivered() {
            Ok(v) => v,
            Err(e @ BenchError::Check(_)) => return Err(e),
            Err(_) => n,
        };
        if n > 0 && first.is_none() {
            first = Some(now);
            cpu_at_first = cpu_now(&processes);
        }
        if n >= expected {
            break now;
        }
        for p in processes.iter_mut() {
            p.check_running(n, expected)?;
        }
        if now > deadline {
            return Err(BenchError::Timeout {
                what: format!(
                    "{expected} records from the process logging to {} ({n} delivered)",
                    processes[0].log().display()
                ),
                timeout,
            });
        }
        std::thread::sleep(if first.is_some() {
            poll
        } else {
            Duration::from_millis(1)
        });
    };
    let cpu_at_done = cpu_now(&processes);
    let mut usage = Usage::default();
    for p in processes {
        let u = p.stop()?;
        usage.cpu_seconds += u.cpu_seconds;
        usage.peak_rss_kib += u.peak_rss_kib;
    }
    let first = first.unwrap_or(done);
    Ok(Delivery {
        first_record_seconds: first.duration_since(started).as_secs_f64(),
        seconds: done.duration_since(first).as_secs_f64().max(1e-3),
        usage,
        delivery_cpu_seconds: cpu_at_first.zip(cpu_at_done).map(|(a, b)| b - a),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sink_yaml_is_a_kafka_connector() {
        let yaml = ferry_sink_yaml(
            "bench-a",
            "127.0.0.1:19092",
            "t",
            "file: {path: /tmp/x}",
            "{key: {string: {}}, value: {string: {}}}",
            "  tasks: 1\n",
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("YAML");
        assert_eq!(v["kind"], "KafkaConnector");
        assert_eq!(v["spec"]["sink"]["topics"][0], "t");
        assert_eq!(v["spec"]["sink"]["file"]["path"], "/tmp/x");
        assert_eq!(
            v["spec"]["converters"]["value"]["string"],
            serde_yaml::Value::Mapping(Default::default())
        );
        assert_eq!(v["spec"]["tasks"], 1);
    }
}

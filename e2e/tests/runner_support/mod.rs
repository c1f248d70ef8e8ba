//! Shared by the runner end-to-end tests: spawning `target/debug/ferry-runner` standalone,
//! Kafka topics, producing and reading records.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ferry_e2e::harness::{random_suffix, Stack};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::process::{Child, Command};

/// The debug runner binary (built by `e2e/test` before the tests run), under
/// `CARGO_TARGET_DIR` when it is set.
pub fn runner_binary(stack: &Stack) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| stack.repo_root.join("target"));
    target.join("debug/ferry-runner")
}

/// A unique name for a test's topics and connectors.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", random_suffix(6))
}

/// Creates a topic with `partitions` partitions.
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let r = admin
        .create_topics([&t], &AdminOptions::new())
        .await
        .expect("create topics");
    for x in r {
        x.expect("topic created");
    }
}

/// An idempotent producer.
pub fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer")
}

/// Produces one record to partition 0 and returns its offset.
pub async fn produce(
    p: &FutureProducer,
    topic: &str,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, &[u8])],
) -> i64 {
    let mut h = OwnedHeaders::new();
    for (k, v) in headers {
        h = h.insert(Header {
            key: k,
            value: Some(*v),
        });
    }
    let mut r: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).partition(0).headers(h);
    if let Some(k) = key {
        r = r.key(k);
    }
    if let Some(v) = value {
        r = r.payload(v);
    }
    p.send(r, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .expect("delivered")
        .offset
}

/// Produces one record to partition 0 whose one header has a name of any bytes (rdkafka's
/// producer API takes names as `&str`; other clients write whatever bytes they like), through
/// librdkafka's `rd_kafka_produceva`. The name must not contain a NUL byte.
pub fn produce_with_raw_header_name(
    bootstrap: &str,
    topic: &str,
    header_name: &[u8],
    header_value: &[u8],
    value: &[u8],
) {
    use rdkafka::bindings as rd;
    use rdkafka::producer::{BaseProducer, Producer};
    use std::ffi::CString;

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    let topic = CString::new(topic).expect("topic name");
    let name = CString::new(header_name).expect("a header name without NUL");
    let mut vus = [
        rd::rd_kafka_vu_t {
            vtype: rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_TOPIC,
            u: rd::rd_kafka_vu_s__bindgen_ty_1 {
                cstr: topic.as_ptr(),
            },
        },
        rd::rd_kafka_vu_t {
            vtype: rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_MSGFLAGS,
            u: rd::rd_kafka_vu_s__bindgen_ty_1 {
                i: rd::RD_KAFKA_MSG_F_COPY,
            },
        },
        rd::rd_kafka_vu_t {
            vtype: rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_PARTITION,
            u: rd::rd_kafka_vu_s__bindgen_ty_1 { i32_: 0 },
        },
        rd::rd_kafka_vu_t {
            vtype: rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_VALUE,
            u: rd::rd_kafka_vu_s__bindgen_ty_1 {
                mem: rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 {
                    ptr: value.as_ptr() as *mut _,
                    size: value.len(),
                },
            },
        },
        rd::rd_kafka_vu_t {
            vtype: rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_HEADER,
            u: rd::rd_kafka_vu_s__bindgen_ty_1 {
                header: rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_2 {
                    name: name.as_ptr(),
                    val: header_value.as_ptr().cast(),
                    size: header_value.len() as isize,
                },
            },
        },
    ];
    // SAFETY: the client is alive for the call; every pointer in `vus` points at memory
    // (`topic`, `name`, `value`, `header_value`) that outlives it, and librdkafka copies
    // what it keeps (RD_KAFKA_MSG_F_COPY).
    let error = unsafe {
        rd::rd_kafka_produceva(producer.client().native_ptr(), vus.as_mut_ptr(), vus.len())
    };
    assert!(error.is_null(), "rd_kafka_produceva refused the record");
    producer
        .flush(Duration::from_secs(10))
        .expect("the record is delivered");
}

/// One record read back from Kafka.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl ReadRecord {
    /// The first header named `name`, as UTF-8.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_ref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// Reads every record of a topic (all partitions) from the beginning, waiting up to
/// `timeout` for at least `expect` records.
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    expect: usize,
    timeout: Duration,
) -> Vec<ReadRecord> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("ferry-e2e-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let deadline = std::time::Instant::now() + timeout;
    let partitions = loop {
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .expect("metadata");
        let ps: Vec<i32> = md
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if !ps.is_empty() || std::time::Instant::now() > deadline {
            break ps;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    while out.len() < expect && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(ReadRecord {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers: ferry_kafka::headers::message_headers(&m),
            });
        }
    }
    out
}

/// A standalone runner process.
pub struct Runner {
    pub child: Child,
    pub admin: String,
    /// Where its log lines go (appended across restarts).
    pub log: PathBuf,
}

impl Runner {
    /// The last lines of the runner's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// Starts `ferry-runner run -f <file>` with its admin server on `admin`; its log goes to
/// `<file>.log`.
pub fn spawn_runner(stack: &Stack, file: &Path, admin: &str, extra_env: &[(&str, &str)]) -> Runner {
    spawn_runner_as(stack, file, admin, extra_env, None)
}

/// [`spawn_runner`], as the user and group `uid` when given (through `setpriv`).
pub fn spawn_runner_as(
    stack: &Stack,
    file: &Path,
    admin: &str,
    extra_env: &[(&str, &str)],
    uid: Option<u32>,
) -> Runner {
    let log = file.with_extension("log");
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("runner log file");
    let mut cmd = match uid {
        Some(uid) => {
            let mut cmd = Command::new("setpriv");
            cmd.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg(runner_binary(stack));
            cmd
        }
        None => Command::new(runner_binary(stack)),
    };
    cmd.arg("run")
        .arg("-f")
        .arg(file)
        .arg("--admin-addr")
        .arg(admin)
        .arg("--log-format")
        .arg("json")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .kill_on_drop(true);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot start {}: {e} (build it with cargo build -p ferry-runner)",
            runner_binary(stack).display()
        )
    });
    Runner {
        child,
        admin: admin.to_string(),
        log,
    }
}

/// A free loopback port for an admin server.
pub fn free_admin_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    format!("127.0.0.1:{port}")
}

/// GET `http://<admin><path>` and return the body (plain HTTP/1.1, no client library).
pub async fn http_get(admin: &str, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(admin).await.ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status: u16 = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Sends SIGTERM (graceful shutdown) to a child.
pub fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
    }
}

/// Stops every runner with SIGTERM, all at once, and asserts each stopped gracefully.
pub async fn stop_gracefully(runners: &mut [&mut Runner]) {
    for r in runners.iter() {
        terminate(&r.child);
    }
    for r in runners.iter_mut() {
        let status = r.child.wait().await.expect("exit");
        assert!(
            status.success(),
            "graceful stop: {status}\n{}",
            r.log_tail()
        );
    }
}

/// Sends SIGKILL to a child.
pub fn kill9(child: &Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
    }
}

/// A connector file for a sink reading `topic` into the file `out`.
pub fn file_sink_yaml(
    name: &str,
    bootstrap: &str,
    topic: &str,
    out: &Path,
    extra_spec: &str,
) -> String {
    format!(
        r#"apiVersion: ferry.rs/v1alpha1
kind: KafkaConnector
metadata: {{name: {name}, namespace: e2e}}
spec:
  kafka: {{bootstrapServers: "{bootstrap}"}}
  sink:
    topics: [{topic}]
    file: {{path: {out}}}
{extra_spec}"#,
        out = out.display()
    )
}

/// Lines of a file (empty when it does not exist).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A small deterministic generator for kill timing and victims in chaos tests.
pub struct Lcg(pub u64);

impl Lcg {
    /// A number below `below`.
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below.max(1)
    }
}

/// The seed in the environment variable `var`, or one from the clock (print it, so that a
/// failing run can be replayed by setting `var`).
pub fn seed_from_env(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// Kills a runner that must still be running (SIGKILL) and starts it again from the same
/// file; `what` names it (e.g. `source runner (kill 3)`) when it already exited.
pub async fn kill_and_restart(
    stack: &Stack,
    runner: Runner,
    file: &Path,
    admin: &str,
    env: &[(&str, &str)],
    what: &str,
) -> Runner {
    let mut runner = runner;
    assert!(
        runner.child.try_wait().expect("wait").is_none(),
        "the {what} exited on its own before its kill:\n{}",
        runner.log_tail()
    );
    kill9(&runner.child);
    let _ = runner.child.wait().await;
    spawn_runner(stack, file, admin, env)
}

/// The variable `name` parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How many times each sequence number is in the topic, read with `read_committed` up to
/// the last stable offset of every partition.
pub fn committed_sequence_counts(bootstrap: &str, topic: &str) -> BTreeMap<i64, u32> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("ferry-e2e-eos-reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    let mut open = std::collections::BTreeSet::new();
    for p in md.topics().iter().flat_map(|t| t.partitions().iter()) {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .expect("tpl");
        open.insert(p.id());
    }
    consumer.assign(&tpl).expect("assign");
    let mut counts = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !open.is_empty() && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let v: serde_json::Value =
                    serde_json::from_slice(m.payload().expect("a value")).expect("JSON value");
                let seq = v["payload"]["seq"].as_i64().expect("payload.seq");
                *counts.entry(seq).or_insert(0) += 1;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    assert!(
        open.is_empty(),
        "partitions {open:?} of {topic} not read to their end"
    );
    counts
}

/// Numbers missing from `0..total` and numbers seen more than once, for the message.
pub fn audit(counts: &BTreeMap<i64, u32>, total: i64) -> (Vec<i64>, Vec<(i64, u32)>) {
    let missing = (0..total).filter(|s| !counts.contains_key(s)).collect();
    let twice = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(s, n)| (*s, *n))
        .collect();
    (missing, twice)
}

/// Rows of `table` and distinct `seq` values in it ((0, 0) when it does not exist yet).
pub async fn table_counts(db: &tokio_postgres::Client, table: &str) -> (i64, i64) {
    match db
        .query_one(
            &format!("SELECT count(*), count(DISTINCT seq) FROM \"{table}\""),
            &[],
        )
        .await
    {
        Ok(row) => (row.get(0), row.get(1)),
        Err(_) => (0, 0),
    }
}

/// The exactly-once pipeline of the chaos tests, written into `dir` (readable by any user):
/// a transactional `datagen` source of `total` numbered records at `rate` per second into
/// `topic`, and a `postgres` sink (URL from `FERRY_SINK_DATABASE_URL`) copying them into a
/// table named after the topic. Returns the source's and the sink's files.
pub fn exactly_once_pipeline(
    dir: &Path,
    topic: &str,
    bootstrap: &str,
    total: i64,
    rate: u64,
) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let table = topic.replace('-', "_");
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write a connector file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        path
    };
    let source = write(
        "source.yaml",
        format!(
            r#"apiVersion: ferry.rs/v1alpha1
kind: KafkaConnector
metadata: {{name: {topic}-src, namespace: e2e}}
spec:
  kafka: {{bootstrapServers: "{bootstrap}"}}
  delivery: ExactlyOnce
  source:
    datagen: {{topic: {topic}, records: {total}, ratePerSecond: {rate}, keys: 50, payloadBytes: 20}}
  converters: {{value: {{json: {{schemas: true}}}}}}
"#
        ),
    );
    let sink = write(
        "sink.yaml",
        format!(
            r#"apiVersion: ferry.rs/v1alpha1
kind: KafkaConnector
metadata: {{name: {topic}-sink, namespace: e2e}}
spec:
  kafka: {{bootstrapServers: "{bootstrap}"}}
  delivery: ExactlyOnce
  sink:
    topics: [{topic}]
    postgres: {{url: {{secretKeyRef: {{name: pg, key: url}}}}, tableNameFormat: "{table}", insertMode: insert, autoCreate: true, batchSize: 500}}
  converters: {{value: {{json: {{schemas: true}}}}}}
"#
        ),
    );
    (source, sink)
}

/// Drops a CDC test's database and its replication slot of the same name, passed or not.
pub struct CdcDatabaseCleanup {
    /// The stack's PostgreSQL URL.
    pub url: String,
    /// The database's (and the slot's) name.
    pub name: String,
}

impl Drop for CdcDatabaseCleanup {
    fn drop(&mut self) {
        let name = self.name.clone();
        let url = self.url.clone();
        let statements = [
            format!("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{name}' AND active"),
            format!("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{name}'"),
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        ];
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                else {
                    return;
                };
                tokio::spawn(conn);
                for sql in &statements {
                    for _ in 0..20 {
                        if client.batch_execute(sql).await.is_ok() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

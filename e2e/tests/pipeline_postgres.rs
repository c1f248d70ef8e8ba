//! The first real pipeline, through the operator: a `postgresCdc` connector captures table
//! `orders` of one database into Kafka and a `postgres` sink connector copies the topic into
//! another database. Inserts, updates and deletes arrive; killing each task with SIGKILL
//! while rows are written, stopping and starting both connectors, loses nothing (the copy
//! ends equal to the original); deleting the connectors removes their pods and leaves the
//! replication slot, unless `spec.offsets.deleteOnRemoval` asks to drop it. A `mysql` sink
//! copies the same topic into MariaDB at the same time. The capture and the PostgreSQL copy
//! run with `delivery: ExactlyOnce` (transactional producer, rows with their Kafka
//! positions); the MariaDB copy at least once.

mod operator_support;

use std::time::{Duration, Instant};

use ferry_e2e::harness::{random_suffix, wait_for_named, Stack, TestNamespace};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use operator_support::*;
use tokio_postgres::NoTls;

const START: Duration = Duration::from_secs(120);
const CONVERGE: Duration = Duration::from_secs(150);

/// A database of the stack's PostgreSQL, dropped by [`Db::drop_database`].
struct Db {
    name: String,
    client: tokio_postgres::Client,
}

async fn connect(stack: &Stack, database: &str) -> tokio_postgres::Client {
    let url = format!("{}/{database}", base_url(stack));
    let (client, conn) = tokio_postgres::connect(&url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {database}: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// The stack's PostgreSQL URL without a database path.
fn base_url(stack: &Stack) -> String {
    let url = stack.postgres_url.as_str();
    match url.rsplit_once('/') {
        Some((base, _db)) if base.contains('@') => base.to_string(),
        _ => url.to_string(),
    }
}

impl Db {
    async fn create(stack: &Stack, name: &str) -> Db {
        let admin = connect(stack, "postgres").await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        Db {
            name: name.to_string(),
            client: connect(stack, name).await,
        }
    }

    async fn drop_database(self, stack: &Stack) {
        drop(self.client);
        let admin = connect(stack, "postgres").await;
        let _ = admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }

    /// Rows of `table` as text, ordered by id (`None` while the table does not exist).
    async fn rows(&self, table: &str) -> Option<Vec<String>> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT id::text || '|' || customer || '|' || trim_scale(amount)::text || '|' \
                     || coalesce(note, '<null>') FROM {table} ORDER BY id"
                ),
                &[],
            )
            .await
            .ok()?;
        Some(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }
}

/// The MariaDB copy: a database of the stack's MariaDB.
struct MariaDb {
    name: String,
    conn: tokio::sync::Mutex<mysql_async::Conn>,
}

impl MariaDb {
    async fn create(stack: &Stack, name: &str) -> MariaDb {
        use mysql_async::prelude::Queryable;
        let opts = mysql_async::Opts::from_url(&stack.mysql_url).expect("FERRY_MYSQL_URL");
        let mut conn = mysql_async::Conn::new(opts)
            .await
            .expect("connect to the stack's MariaDB");
        conn.query_drop(format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("create MariaDB database {name}: {e}"));
        MariaDb {
            name: name.to_string(),
            conn: tokio::sync::Mutex::new(conn),
        }
    }

    /// Rows of `orders` in the same text form as [`Db::rows`].
    async fn rows(&self) -> Option<Vec<String>> {
        use mysql_async::prelude::Queryable;
        let sql = format!(
            "SELECT CONCAT(id, '|', customer, '|', \
             TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM CAST(amount AS CHAR))), '|', \
             COALESCE(note, '<null>')) FROM {}.orders ORDER BY id",
            self.name
        );
        self.conn.lock().await.query::<String, _>(sql).await.ok()
    }

    async fn drop_database(self) {
        use mysql_async::prelude::Queryable;
        let mut conn = self.conn.into_inner();
        let _ = conn
            .query_drop(format!("DROP DATABASE IF EXISTS {}", self.name))
            .await;
        let _ = conn.disconnect().await;
    }
}

/// Applies one change to `orders`: mostly inserts, then updates and deletes of earlier rows.
async fn change(db: &Db, step: u32) {
    let sql = match step % 5 {
        3 => format!(
            "UPDATE orders SET amount = amount + 1.25, note = 'updated at {step}' WHERE id = {}",
            step / 2 + 1
        ),
        4 => format!("DELETE FROM orders WHERE id = {}", step / 3 + 1),
        _ => format!(
            "INSERT INTO orders (id, customer, amount, note) VALUES ({id}, 'customer-{c}', {id}.{c:02}, NULL) \
             ON CONFLICT (id) DO NOTHING",
            id = 1000 + step,
            c = step % 100
        ),
    };
    db.client
        .batch_execute(&sql)
        .await
        .unwrap_or_else(|e| panic!("change {step}: {e}"));
}

/// Kills the process of the pod's (only) container with SIGKILL, found by the pod's name and
/// IP in its environment, as the local kubelet runs it.
fn kill_pod_process(pod: &Pod) {
    let name = pod.metadata.name.clone().expect("pod name");
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("pod IP");
    let want = [format!("HOSTNAME={name}"), format!("POD_IP={ip}")];
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let Ok(entry) = entry else { continue };
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let vars: Vec<String> = environ
            .split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        let exe = std::fs::read_link(entry.path().join("exe")).unwrap_or_default();
        if want.iter().all(|w| vars.contains(w)) && exe.ends_with("ferry-runner") {
            // SAFETY: kill(2) with a pid read from /proc; no memory is involved.
            let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
            assert_eq!(rc, 0, "kill -9 {pid} ({name})");
            killed += 1;
        }
    }
    assert_eq!(killed, 1, "exactly one runner process of pod {name}");
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map(|c| c.restart_count)
        .unwrap_or(0)
}

/// Kills task 0 of `connector` and waits until a task runs again (the kubelet restarts the
/// container or the operator replaces the pod) and is Ready.
async fn kill_task_and_wait(client: &Client, ns: &str, connector: &str) -> Duration {
    let before = wait_ready_tasks(client, ns, connector, 1, START).await;
    let pod = before.get(&0).expect("task 0").clone();
    let (uid, count) = (pod.metadata.uid.clone(), restarts(&pod));
    kill_pod_process(&pod);
    let killed = Instant::now();
    wait_for_named(
        &format!("task 0 of {connector} to run again after SIGKILL"),
        START,
        || async {
            let pods = task_pods(client, ns, connector).await;
            let p = pods.get(&0)?;
            let replaced = p.metadata.uid != uid || restarts(p) > count;
            (replaced && pod_ready(p)).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    killed.elapsed()
}

fn source_yaml(
    name: &str,
    stack: &Stack,
    db: &str,
    prefix: &str,
    slot: &str,
    state: &str,
) -> String {
    format!(
        r#"metadata: {{name: {name}}}
spec:
  state: {state}
  delivery: ExactlyOnce
  kafka: {{bootstrapServers: '{bootstrap}'}}
  converters: {{key: {{json: {{schemas: true}}}}, value: {{json: {{schemas: true}}}}}}
  source:
    postgresCdc:
      host: 127.0.0.1
      port: {port}
      database: {db}
      user: postgres
      topicPrefix: {prefix}
      slotName: {slot}
      tableIncludeList: ['public\.orders']
      heartbeatIntervalMs: 1000
"#,
        bootstrap = stack.kafka_bootstrap,
        port = postgres_port(stack),
    )
}

fn sink_yaml(
    name: &str,
    stack: &Stack,
    plugin: &str,
    target: &str,
    topic: &str,
    state: &str,
) -> String {
    format!(
        r#"metadata: {{name: {name}}}
spec:
  state: {state}
  delivery: {delivery}
  kafka: {{bootstrapServers: '{bootstrap}'}}
  converters: {{key: {{json: {{schemas: true}}}}, value: {{json: {{schemas: true}}}}}}
  sink:
    topics: [{topic}]
    {plugin}:
{target}
      tableNameFormat: orders
      insertMode: upsert
      primaryKeyMode: recordKey
      deleteEnabled: true
      autoCreate: true
      autoEvolve: true
"#,
        bootstrap = stack.kafka_bootstrap,
        delivery = if plugin == "postgres" {
            "ExactlyOnce"
        } else {
            "AtLeastOnce"
        },
    )
}

/// The port of the stack's PostgreSQL, from its URL.
fn postgres_port(stack: &Stack) -> u16 {
    base_url(stack)
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("port in FERRY_POSTGRES_URL")
}

/// The port of the stack's MariaDB, from its URL.
fn mysql_port(stack: &Stack) -> u16 {
    stack
        .mysql_url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next()?.parse().ok())
        .expect("port in FERRY_MYSQL_URL")
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for r in admin
        .create_topics([&t], &AdminOptions::new())
        .await
        .expect("create topics")
    {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

/// Where the copy of `orders` is.
enum Replica<'a> {
    Postgres(&'a Db),
    MariaDb(&'a MariaDb),
}

impl Replica<'_> {
    async fn rows(&self) -> Option<Vec<String>> {
        match self {
            Replica::Postgres(db) => db.rows("orders").await,
            Replica::MariaDb(db) => db.rows().await,
        }
    }
}

/// Waits until every copy holds exactly the rows of `orders` in `source`; on timeout, says
/// which rows differ.
async fn wait_equal(source: &Db, copies: &[Replica<'_>], what: &str) -> usize {
    let last = std::sync::Mutex::new((Vec::new(), Vec::new()));
    let result = wait_for_named(what, CONVERGE, || async {
        let want = source.rows("orders").await?;
        let n = want.len();
        for copy in copies {
            let got = copy.rows().await.unwrap_or_default();
            if got != want {
                *last.lock().unwrap_or_else(|e| e.into_inner()) = (want, got);
                return None;
            }
        }
        Some(n)
    })
    .await;
    result.unwrap_or_else(|e| {
        let (want, got) = last.into_inner().unwrap_or_else(|e| e.into_inner());
        let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).take(10).collect();
        let extra: Vec<_> = got.iter().filter(|r| !want.contains(r)).take(10).collect();
        panic!(
            "{e}\nsource has {} rows, a copy {}; missing in the copy (first 10): {missing:?}; \
             not in the source (first 10): {extra:?}",
            want.len(),
            got.len()
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_to_a_table_reach_its_copies_through_kafka_despite_kills_and_restarts() {
    let stack = Stack::from_env().expect("the local stack");
    let client = stack.client().await.expect("client");
    apply_crd(&stack, &client).await;
    let ns = TestNamespace::create(&client, "pipeline")
        .await
        .expect("namespace");
    let operator = Operator::start(&stack, &ns.name);
    let suffix = random_suffix(6);
    let source = Db::create(&stack, &format!("shop_{suffix}")).await;
    let copy = Db::create(&stack, &format!("shop_copy_{suffix}")).await;
    let maria = MariaDb::create(&stack, &format!("shop_copy_{suffix}")).await;
    let slot = format!("ferry_e2e_{suffix}");
    let prefix = format!("shop{suffix}");
    let topic = format!("{prefix}.public.orders");
    const CONNECTORS: [&str; 3] = ["orders-cdc", "orders-copy", "orders-copy-mariadb"];

    source
        .client
        .batch_execute(
            "CREATE TABLE orders (id integer PRIMARY KEY, customer text NOT NULL, \
             amount numeric(10,2) NOT NULL, note text);
             INSERT INTO orders SELECT g, 'customer-' || g, g * 1.5, 'snapshot'
               FROM generate_series(1, 200) g;",
        )
        .await
        .expect("create the source table");
    create_topic(&stack.kafka_bootstrap, &topic, 3).await;

    let postgres_target = format!(
        "      host: 127.0.0.1\n      port: {}\n      database: {}\n      user: postgres",
        postgres_port(&stack),
        copy.name
    );
    let maria_target = format!(
        "      host: 127.0.0.1\n      port: {}\n      database: {}\n      user: root",
        mysql_port(&stack),
        maria.name
    );
    let apply_all = |state: &'static str| {
        let (client, ns, stack) = (client.clone(), ns.name.clone(), &stack);
        let connectors = [
            source_yaml("orders-cdc", stack, &source.name, &prefix, &slot, state),
            sink_yaml(
                "orders-copy",
                stack,
                "postgres",
                &postgres_target,
                &topic,
                state,
            ),
            sink_yaml(
                "orders-copy-mariadb",
                stack,
                "mysql",
                &maria_target,
                &topic,
                state,
            ),
        ];
        async move {
            for yaml in &connectors {
                apply_connector(&client, &ns, yaml).await;
            }
        }
    };
    let copies = [Replica::Postgres(&copy), Replica::MariaDb(&maria)];
    apply_all("Running").await;
    for name in CONNECTORS {
        wait_ready_tasks(&client, &ns.name, name, 1, START).await;
    }

    // The snapshot: every existing row, as `op: r` events.
    let n = wait_equal(&source, &copies, "the snapshot of 200 rows in both copies").await;
    assert_eq!(n, 200);

    // Streaming, with each task killed (SIGKILL) while rows change.
    let writer = {
        let url = format!("{}/{}", base_url(&stack), source.name);
        tokio::spawn(async move {
            let (c, conn) = tokio_postgres::connect(&url, NoTls).await.expect("writer");
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let db = Db {
                name: String::new(),
                client: c,
            };
            for step in 0..400u32 {
                change(&db, step).await;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut back = Vec::new();
    for name in CONNECTORS {
        back.push(kill_task_and_wait(&client, &ns.name, name).await);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    writer.await.expect("writer");
    let n = wait_equal(
        &source,
        &copies,
        "both copies equal to the source after the kills",
    )
    .await;
    eprintln!(
        "after 400 changes and a SIGKILL of each task: {n} rows equal in both copies; \
         tasks running again after {:.1} s (source), {:.1} s (postgres sink), {:.1} s (mysql sink)",
        back[0].as_secs_f64(),
        back[1].as_secs_f64(),
        back[2].as_secs_f64()
    );

    // Stopped connectors lose nothing: changes made meanwhile arrive after the start.
    apply_all("Stopped").await;
    let no_pods = || async {
        for name in CONNECTORS {
            if !task_pods(&client, &ns.name, name).await.is_empty() {
                return None;
            }
        }
        Some(())
    };
    wait_for_named("every connector's pods gone while Stopped", START, no_pods)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    source
        .client
        .batch_execute(
            "INSERT INTO orders SELECT g, 'late-' || g, g, 'while stopped' FROM generate_series(5000, 5049) g;
             UPDATE orders SET note = 'changed while stopped' WHERE id <= 20;
             DELETE FROM orders WHERE id BETWEEN 21 AND 30;",
        )
        .await
        .expect("changes while stopped");
    apply_all("Running").await;
    let n = wait_equal(&source, &copies, "both copies equal after stop and start").await;
    eprintln!("after stop and start: {n} rows equal");

    // Deleting the connectors removes their pods; the slot stays (it holds the position).
    for name in CONNECTORS {
        stack
            .kubectl(["-n", &ns.name, "delete", "kc", name, "--wait=true"])
            .await
            .expect("kubectl delete");
    }
    wait_for_named("the connectors' pods gone after delete", START, no_pods)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let admin = connect(&stack, "postgres").await;
    let slots = wait_for_named("the slot released by the deleted task", START, || async {
        let rows = admin
            .query(
                "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .ok()?;
        let active: bool = rows.first()?.get(0);
        (!active).then_some(rows.len())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        slots, 1,
        "the replication slot stays after the connector is deleted"
    );

    // With spec.offsets.deleteOnRemoval the slot goes with the connector.
    let once = format!("{slot}_once");
    let yaml = source_yaml(
        "orders-cdc-once",
        &stack,
        &source.name,
        &prefix,
        &once,
        "Running",
    )
    .replace("spec:\n", "spec:\n  offsets: {deleteOnRemoval: true}\n");
    apply_connector(&client, &ns.name, &yaml).await;
    wait_ready_tasks(&client, &ns.name, "orders-cdc-once", 1, START).await;
    let slot_exists = |name: String| {
        let admin = &admin;
        async move {
            admin
                .query(
                    "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                    &[&name],
                )
                .await
                .map(|rows| !rows.is_empty())
                .unwrap_or(true)
        }
    };
    assert!(
        slot_exists(once.clone()).await,
        "the task created slot {once}"
    );
    stack
        .kubectl([
            "-n",
            &ns.name,
            "delete",
            "kc",
            "orders-cdc-once",
            "--wait=true",
            "--timeout=120s",
        ])
        .await
        .expect("kubectl delete");
    assert!(
        !slot_exists(once.clone()).await,
        "slot {once} dropped before the connector with deleteOnRemoval was gone"
    );

    operator.stop().await;
    ns.cleanup().await.expect("namespace cleanup");
    for name in [&slot, &once] {
        let _ = admin
            .execute("SELECT pg_drop_replication_slot($1)", &[name])
            .await;
    }
    source.drop_database(&stack).await;
    copy.drop_database(&stack).await;
    maria.drop_database().await;
}

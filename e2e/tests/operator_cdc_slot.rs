//! A `postgresCdc` connector whose task cannot go on says so, with the WAL its replication
//! slot keeps on the server, and picks up a rotated password without a spec change. Against
//! the local stack with `target/debug/ferry-operator` for the test's namespace; the stack's
//! PostgreSQL asks role `ferry_e2e_password` (and only it) for a password.

mod operator_support;
mod runner_support;

use std::time::{Duration, Instant};

use ferry_crds::status::condition_type;
use ferry_crds::KafkaConnector;
use ferry_e2e::harness::{random_suffix, Stack, TestNamespace};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use operator_support::*;
use runner_support::read_topic;
use tokio_postgres::NoTls;

/// The stack's role that logs in with a password (`e2e/stack`).
const ROLE: &str = "ferry_e2e_password";

/// Waits until the connector's `ReplicationSlotAdvancing` condition has `status` and `reason`
/// and `accept` holds; returns the connector.
async fn wait_slot(
    client: &kube::Client,
    namespace: &str,
    status: &str,
    reason: &str,
    accept: impl Fn(&KafkaConnector) -> bool,
    what: &str,
) -> KafkaConnector {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let c = connector(client, namespace, "orders-cdc").await;
        let condition = operator_support::condition(&c, condition_type::REPLICATION_SLOT_ADVANCING);
        if condition
            .as_ref()
            .is_some_and(|(s, r, _)| s == status && r == reason)
            && accept(&c)
        {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: ReplicationSlotAdvancing is {condition:?}; status: {}",
            serde_json::to_string_pretty(&c.status).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn retained(c: &KafkaConnector) -> Option<i64> {
    c.status
        .as_ref()?
        .replication_slot
        .as_ref()?
        .retained_wal_bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_slot_is_reported_with_its_wal_and_a_rotated_password_is_picked_up() {
    let stack = Stack::from_env().expect("the local stack");
    let client = stack.client().await.expect("client");
    apply_crd(&stack, &client).await;
    let ns = TestNamespace::create(&client, "cdcslot")
        .await
        .expect("namespace");
    let operator = Operator::start(&stack, &ns.name);

    let db = format!("slot_{}", random_suffix(8).to_lowercase());
    let first = format!("first-{}", random_suffix(12));
    let second = format!("second-{}", random_suffix(12));
    let (admin, conn) = tokio_postgres::connect(&stack.postgres_url, NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    for sql in [
        format!(
            "DO $$ BEGIN CREATE ROLE {ROLE}; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ),
        format!("ALTER ROLE {ROLE} WITH LOGIN REPLICATION PASSWORD '{first}'"),
        format!("CREATE DATABASE {db}"),
        format!("GRANT CREATE ON DATABASE {db} TO {ROLE}"),
    ] {
        admin
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let _cleanup = runner_support::CdcDatabaseCleanup {
        url: stack.postgres_url.clone(),
        name: db.clone(),
    };
    let base = stack
        .postgres_url
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .expect("a database URL");
    let (pg, conn) = tokio_postgres::connect(&format!("{base}/{db}"), NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    pg.batch_execute(&format!(
        "CREATE TABLE orders (id int PRIMARY KEY, item text);
         ALTER TABLE orders OWNER TO {ROLE};
         INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 20) g;"
    ))
    .await
    .expect("table");
    let authority = base.rsplit('@').next().unwrap_or("127.0.0.1:5432");
    let (host, port) = authority.split_once(':').unwrap_or((authority, "5432"));
    // The stack really asks this role for its password.
    let refused = tokio_postgres::connect(
        &format!("host={host} port={port} dbname={db} user={ROLE} password=wrong"),
        NoTls,
    )
    .await;
    assert!(
        refused.is_err(),
        "PostgreSQL let {ROLE} in with a wrong password"
    );

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "pg"},
        "stringData": {"password": first}
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the secret");
    apply_connector(
        &client,
        &ns.name,
        &format!(
            "metadata: {{name: orders-cdc}}
spec:
  kafka: {{bootstrapServers: '{bootstrap}'}}
  restartPolicy: {{initialBackoffSeconds: 1, maxBackoffSeconds: 4}}
  converters: {{key: {{json: {{schemas: false}}}}, value: {{json: {{schemas: false}}}}}}
  source:
    postgresCdc:
      host: {host}
      port: {port}
      database: {db}
      user: {ROLE}
      password: {{secretKeyRef: {{name: pg, key: password}}}}
      topicPrefix: {db}
      slotName: {db}
      heartbeatIntervalMs: 1000
      tableIncludeList: ['public\\.orders']
",
            bootstrap = stack.kafka_bootstrap
        ),
    )
    .await;
    wait_ready_tasks(&client, &ns.name, "orders-cdc", 1, Duration::from_secs(90)).await;
    let topic = format!("{db}.public.orders");
    assert_eq!(
        read_topic(&stack.kafka_bootstrap, &topic, 20, Duration::from_secs(60)).len(),
        20,
        "the snapshot's 20 rows"
    );
    let c = wait_slot(
        &client,
        &ns.name,
        "True",
        "SlotRead",
        |c| retained(c).is_some(),
        "running",
    )
    .await;
    println!("running: retained {:?} bytes", retained(&c));

    // The password is rotated in PostgreSQL and the task's sessions end: it cannot log in.
    for sql in [
        format!("ALTER ROLE {ROLE} PASSWORD '{second}'"),
        format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{ROLE}'"),
    ] {
        admin
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("rotate the password: {e}"));
    }
    let c = wait_slot(
        &client,
        &ns.name,
        "False",
        "TaskFailing",
        |c| {
            c.status
                .as_ref()
                .and_then(|s| s.replication_slot.as_ref())
                .and_then(|s| s.measurement_error.as_deref())
                .is_some_and(|e| e.contains("refused"))
        },
        "password refused",
    )
    .await;
    let (_, _, message) =
        operator_support::condition(&c, condition_type::REPLICATION_SLOT_ADVANCING)
            .unwrap_or_default();
    println!("refused: {message}");
    assert!(message.contains(&format!("{db:?}")), "{message}");
    assert!(
        !message.contains(&first) && !message.contains(&second),
        "a password in the status: {message}"
    );
    // Changes made meanwhile wait in the slot.
    pg.batch_execute("INSERT INTO orders SELECT g, 'late ' || g FROM generate_series(21, 30) g")
        .await
        .expect("insert while the task fails");

    // The Secret follows, the spec does not change: the next restart logs in.
    secrets
        .patch(
            "pg",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"stringData": {"password": second}})),
        )
        .await
        .expect("rotate the secret");
    let c = wait_slot(
        &client,
        &ns.name,
        "True",
        "SlotRead",
        |c| {
            c.status
                .as_ref()
                .and_then(|s| s.replication_slot.as_ref())
                .is_some_and(|s| s.measurement_error.is_none())
        },
        "after the Secret's rotation",
    )
    .await;
    assert_eq!(c.metadata.generation, Some(1), "the spec was not edited");
    let records = read_topic(&stack.kafka_bootstrap, &topic, 30, Duration::from_secs(60));
    assert_eq!(
        records.len(),
        30,
        "20 snapshot rows and the 10 inserted while the task failed"
    );

    // A column without mapping appears mid-stream: the task stops, and the status says how
    // much WAL the slot keeps, measured as it stopped.
    pg.batch_execute(
        "ALTER TABLE orders ADD COLUMN span interval;
         INSERT INTO orders VALUES (31, 'with a span', '1 day');",
    )
    .await
    .expect("add an interval column");
    let c = wait_slot(
        &client,
        &ns.name,
        "False",
        "TaskFailing",
        |c| retained(c).is_some_and(|b| b > 0),
        "unmappable column",
    )
    .await;
    let (_, _, message) =
        operator_support::condition(&c, condition_type::REPLICATION_SLOT_ADVANCING)
            .unwrap_or_default();
    println!("unmappable column: {message}");
    assert!(message.contains("interval"), "{message}");
    assert!(message.contains("of WAL (measured at"), "{message}");
    let slot = c
        .status
        .as_ref()
        .and_then(|s| s.replication_slot.clone())
        .expect("replicationSlot");
    assert_eq!(slot.name, db);
    assert_eq!(slot.measurement_error, None);

    ns.cleanup().await.expect("namespace cleanup");
    operator.stop().await;
}

//! A `postgresCdc` connector through the operator: the password reaches the task pod as a
//! `secretKeyRef` env var, the operator runs one task whatever `spec.tasks` asks, and the
//! table's rows and changes reach Kafka.

mod operator_support;
mod runner_support;

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_e2e::harness::{random_suffix, Stack, TestNamespace};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::Api;
use operator_support::*;
use runner_support::read_topic;
use tokio_postgres::NoTls;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cdc_connector_runs_one_task_with_its_secret() {
    let stack = Stack::from_env().expect("the local stack");
    let client = stack.client().await.expect("client");
    apply_crd(&stack, &client).await;
    let ns = TestNamespace::create(&client, "cdc")
        .await
        .expect("namespace");
    let operator = Operator::start(&stack, &ns.name);

    let db = format!("cdc_{}", random_suffix(8).to_lowercase());
    let (admin, conn) = tokio_postgres::connect(&stack.postgres_url, NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .expect("create database");
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
    pg.batch_execute(
        "CREATE TABLE orders (id int PRIMARY KEY, item text);
         INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 20) g;",
    )
    .await
    .expect("table");
    let authority = base.rsplit('@').next().unwrap_or("127.0.0.1:5432");
    let (host, port) = authority.split_once(':').unwrap_or((authority, "5432"));

    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "pg"},
        "stringData": {"password": "not-checked-by-the-stack"}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), &ns.name)
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
  tasks: 3
  converters: {{key: {{json: {{schemas: false}}}}, value: {{json: {{schemas: false}}}}}}
  source:
    postgresCdc:
      host: {host}
      port: {port}
      database: {db}
      password: {{secretKeyRef: {{name: pg, key: password}}}}
      topicPrefix: {db}
      slotName: {db}
      tableIncludeList: ['public\\.orders']
",
            bootstrap = stack.kafka_bootstrap
        ),
    )
    .await;

    let pods = wait_ready_tasks(&client, &ns.name, "orders-cdc", 1, Duration::from_secs(90)).await;
    assert_eq!(
        pods.keys().copied().collect::<Vec<_>>(),
        [0],
        "one task, whatever spec.tasks says"
    );
    let env: BTreeMap<String, String> = pods[&0].spec.as_ref().expect("spec").containers[0]
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let from = e
                .value_from
                .and_then(|f| f.secret_key_ref)
                .map(|r| format!("secret {}/{}", r.name, r.key));
            (e.name, from.or(e.value).unwrap_or_default())
        })
        .collect();
    assert_eq!(
        env.get("FERRY_SOURCE_DATABASE_PASSWORD")
            .map(String::as_str),
        Some("secret pg/password"),
        "{env:?}"
    );

    pg.batch_execute("UPDATE orders SET item = 'changed' WHERE id = 1")
        .await
        .expect("update");
    let topic = format!("{db}.public.orders");
    let records = read_topic(&stack.kafka_bootstrap, &topic, 21, Duration::from_secs(60));
    assert!(
        records.len() >= 21,
        "{} of 21 records on {topic}; operator log: {}",
        records.len(),
        operator.log.display()
    );
    let last: serde_json::Value =
        serde_json::from_slice(records[20].value.as_deref().unwrap_or(b"null")).expect("JSON");
    assert_eq!(last["op"], "u");
    assert_eq!(last["after"]["item"], "changed");

    ns.cleanup().await.expect("namespace cleanup");
    operator.stop().await;
}

//! The datagen source against a real broker: a bounded run writes exactly its records (keys
//! and sequence numbers) and exits 0; stopped with SIGTERM half-way and started again, it
//! continues from the stored source offset without losing or repeating a record.

mod runner_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ferry_e2e::harness::Stack;
use runner_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagen_resumes_from_its_stored_offset_after_a_graceful_stop() {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("datagen");
    create_topic(&stack.kafka_bootstrap, &topic, 2).await;
    let total = 3000u64;
    let file = dir.path().join("source.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: {}, namespace: e2e}}\nspec:\n  kafka: {{bootstrapServers: \"{}\"}}\n  source: {{datagen: {{topic: {topic}, records: {total}, ratePerSecond: 1000, seed: 7, keys: 10, payloadBytes: 16}}}}\n",
            unique("dg"),
            stack.kafka_bootstrap
        ),
    )
    .expect("write");
    let admin = free_admin_addr();
    let mut first = spawn_runner(&stack, &file, &admin, &[]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    terminate(&first.child);
    let status = first.child.wait().await.expect("exit");
    assert!(
        status.success(),
        "graceful stop: {status}\n{}",
        first.log_tail()
    );

    let mut second = spawn_runner(&stack, &file, &admin, &[]);
    let status = tokio::time::timeout(Duration::from_secs(60), second.child.wait())
        .await
        .expect("a bounded source stops by itself")
        .expect("exit");
    assert!(
        status.success(),
        "bounded source exit: {status}\n{}",
        second.log_tail()
    );

    let bootstrap = stack.kafka_bootstrap.clone();
    let started = Instant::now();
    let records = tokio::task::spawn_blocking(move || {
        read_topic(
            &bootstrap,
            &topic,
            total as usize + 1,
            Duration::from_secs(10),
        )
    })
    .await
    .expect("read");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "waited for possible extra records"
    );
    assert_eq!(
        records.len() as u64,
        total,
        "exactly {total} records: none lost, none repeated"
    );
    let mut seqs = BTreeSet::new();
    for r in &records {
        let v: serde_json::Value =
            serde_json::from_slice(r.value.as_deref().expect("value")).expect("JSON value");
        let seq = v["seq"].as_u64().expect("seq");
        let key = String::from_utf8(r.key.clone().expect("key")).expect("utf-8 key");
        assert_eq!(
            v["key"].as_str(),
            Some(key.trim_matches('"')),
            "the key is in the value"
        );
        assert_eq!(v["payload"].as_str().map(str::len), Some(16));
        seqs.insert(seq);
    }
    assert_eq!(seqs, (0..total).collect::<BTreeSet<_>>());
}

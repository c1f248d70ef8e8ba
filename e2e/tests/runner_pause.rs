//! Pause and resume through the state file: a paused sink keeps its process (no restart),
//! reads nothing new and reports `Paused`; on resume it catches up without losing anything.

mod runner_support;

use std::time::{Duration, Instant};

use ferry_e2e::harness::Stack;
use runner_support::*;

async fn wait_lines(path: &std::path::Path, n: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let have = lines(path).len();
        if have >= n || Instant::now() > deadline {
            return have;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn progress_state(admin: &str) -> String {
    let (_, body) = http_get(admin, "/progress").await.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["state"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_through_the_state_file() {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("pause");
    create_topic(&stack.kafka_bootstrap, &topic, 3).await;
    let out = dir.path().join("out.txt");
    let file = dir.path().join("connector.yaml");
    let state = dir.path().join("state");
    std::fs::write(&state, "Running\n").expect("state");
    std::fs::write(
        &file,
        file_sink_yaml(
            &unique("pause"),
            &stack.kafka_bootstrap,
            &topic,
            &out,
            "  converters: {value: {string: {}}}\n",
        ),
    )
    .expect("write");
    let admin = free_admin_addr();
    let mut runner = spawn_runner(&stack, &file, &admin, &[]);
    let pid = runner.child.id();
    let p = producer(&stack.kafka_bootstrap);
    for i in 0..10 {
        produce(
            &p,
            &topic,
            None,
            Some(format!("before-{i}").as_bytes()),
            &[],
        )
        .await;
    }
    assert_eq!(
        wait_lines(&out, 10, Duration::from_secs(60)).await,
        10,
        "records before the pause arrive"
    );
    let ready = http_get(&admin, "/readyz").await.map(|r| r.0);
    assert_eq!(ready, Some(200), "ready while running");

    std::fs::write(&state, "Paused\n").expect("pause");
    let deadline = Instant::now() + Duration::from_secs(10);
    while progress_state(&admin).await != "Paused" {
        assert!(
            Instant::now() < deadline,
            "the task reports Paused within seconds"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for i in 0..10 {
        produce(
            &p,
            &topic,
            None,
            Some(format!("during-{i}").as_bytes()),
            &[],
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(lines(&out).len(), 10, "nothing is written while paused");
    let (health, _) = http_get(&admin, "/healthz").await.expect("healthz");
    assert_eq!(health, 200, "a paused task is healthy");

    std::fs::write(&state, "Running\n").expect("resume");
    assert_eq!(
        wait_lines(&out, 20, Duration::from_secs(30)).await,
        20,
        "records produced during the pause arrive after resume"
    );
    assert_eq!(progress_state(&admin).await, "Running");
    assert!(
        runner.child.try_wait().expect("wait").is_none(),
        "the process was never restarted"
    );
    assert_eq!(runner.child.id(), pid);
    let mut got = lines(&out);
    got.sort();
    let mut want: Vec<String> = (0..10)
        .map(|i| format!("before-{i}"))
        .chain((0..10).map(|i| format!("during-{i}")))
        .collect();
    want.sort();
    assert_eq!(got, want);
    terminate(&runner.child);
    assert!(runner.child.wait().await.expect("exit").success());
}

async fn records_out(admin: &str) -> u64 {
    let (_, body) = http_get(admin, "/progress").await.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["recordsOut"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_source_produces_nothing_until_resumed() {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("pause-src");
    let file = dir.path().join("connector.yaml");
    let state = dir.path().join("state");
    std::fs::write(&state, "Running\n").expect("state");
    std::fs::write(
        &file,
        format!(
            "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: {}, namespace: e2e}}\nspec:\n  kafka: {{bootstrapServers: \"{}\"}}\n  source: {{datagen: {{topic: {topic}, ratePerSecond: 200}}}}\n",
            unique("pause-src"),
            stack.kafka_bootstrap
        ),
    )
    .expect("write");
    let admin = free_admin_addr();
    let mut runner = spawn_runner(&stack, &file, &admin, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while records_out(&admin).await < 100 {
        assert!(
            Instant::now() < deadline,
            "the source produces\n{}",
            runner.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::fs::write(&state, "Paused\n").expect("pause");
    let deadline = Instant::now() + Duration::from_secs(10);
    while progress_state(&admin).await != "Paused" {
        assert!(Instant::now() < deadline, "the task reports Paused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the deliveries of records sent before the pause come back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let paused_at = records_out(&admin).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        records_out(&admin).await,
        paused_at,
        "nothing is produced while paused"
    );
    std::fs::write(&state, "Running\n").expect("resume");
    let deadline = Instant::now() + Duration::from_secs(10);
    while records_out(&admin).await <= paused_at {
        assert!(Instant::now() < deadline, "production resumes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        runner.child.try_wait().expect("wait").is_none(),
        "the process was never restarted"
    );
    terminate(&runner.child);
    assert!(runner.child.wait().await.expect("exit").success());
}

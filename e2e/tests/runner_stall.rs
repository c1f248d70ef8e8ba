//! A sink whose external system keeps failing (the `file` sink writing to `/dev/full`):
//! retries with backoff up to `retryTimeoutSeconds` and then fails the task (exit 1, the
//! cause in the termination message); with a long retry budget the task reports itself
//! stalled on `/healthz` and `/progress` after `progress.stallAfterSeconds`, and still stops
//! promptly on SIGTERM.

mod runner_support;

use std::time::{Duration, Instant};

use ferry_e2e::harness::Stack;
use runner_support::*;

async fn setup(stack: &Stack, dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let topic = unique("stall");
    create_topic(&stack.kafka_bootstrap, &topic, 1).await;
    let p = producer(&stack.kafka_bootstrap);
    for i in 0..5 {
        produce(&p, &topic, None, Some(format!("r{i}").as_bytes()), &[]).await;
    }
    let file = dir.join("sink.yaml");
    std::fs::write(
        &file,
        file_sink_yaml(
            &unique("stall"),
            &stack.kafka_bootstrap,
            &topic,
            std::path::Path::new("/dev/full"),
            &format!("  converters: {{value: {{string: {{}}}}}}\n{extra}"),
        ),
    )
    .expect("write");
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_is_retried_then_fails_the_task() {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = setup(
        &stack,
        dir.path(),
        "  errors: {retryTimeoutSeconds: 3, retryMaxDelaySeconds: 1}\n",
    )
    .await;
    let termination = dir.path().join("termination-log");
    let termination_env = termination.display().to_string();
    let started = Instant::now();
    let mut runner = spawn_runner(
        &stack,
        &file,
        &free_admin_addr(),
        &[("FERRY_TERMINATION_LOG", &termination_env)],
    );
    let status = tokio::time::timeout(Duration::from_secs(60), runner.child.wait())
        .await
        .expect("the task gives up after the retry timeout")
        .expect("exit");
    assert_eq!(
        status.code(),
        Some(1),
        "a retriable failure exits 1\n{}",
        runner.log_tail()
    );
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "retried for retryTimeoutSeconds"
    );
    let message = std::fs::read_to_string(&termination).expect("termination message");
    assert!(
        message.contains("the file sink failed writing"),
        "{message}"
    );
    assert!(message.contains("/dev/full"), "{message}");
    let log = std::fs::read_to_string(&runner.log).unwrap_or_default();
    assert!(
        log.matches("sink write failed; retrying").count() >= 2,
        "retried with backoff:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_makes_no_progress_reports_itself_stalled() {
    let stack = Stack::from_env().expect("the local stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = setup(
        &stack,
        dir.path(),
        "  errors: {retryTimeoutSeconds: 600, retryMaxDelaySeconds: 1}\n  progress: {stallAfterSeconds: 10}\n",
    )
    .await;
    let admin = free_admin_addr();
    let mut runner = spawn_runner(&stack, &file, &admin, &[]);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let health = http_get(&admin, "/healthz").await.map(|r| r.0);
        if health == Some(503) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz never failed ({health:?})\n{}",
            runner.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, body) = http_get(&admin, "/progress").await.expect("progress");
    let p: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(p["stalled"], true, "{body}");
    assert_eq!(p["recordsOut"], 0, "{body}");
    let (_, metrics) = http_get(&admin, "/metrics").await.expect("metrics");
    let retries = metrics
        .lines()
        .find(|l| l.starts_with("ferry_task_retries_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(retries >= 2.0, "retries are counted: {retries}");
    let stopping = Instant::now();
    terminate(&runner.child);
    let status = tokio::time::timeout(Duration::from_secs(15), runner.child.wait())
        .await
        .expect("SIGTERM interrupts the retries")
        .expect("exit");
    assert!(status.success(), "{status}");
    assert!(stopping.elapsed() < Duration::from_secs(10));
}

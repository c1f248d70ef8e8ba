//! Measures how fast the operator brings connectors up on the local stack: the time from
//! applying a connector to all its task pods Running and Ready, over 20 connectors applied
//! together (p50/p95 printed, bounded so a regression fails the test).

mod operator_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ferry_e2e::harness::{random_suffix, Stack, TestNamespace};
use operator_support::*;

const CONNECTORS: usize = 20;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_connectors_reach_running_quickly() {
    let stack = Stack::from_env().expect("the local stack");
    let client = stack.client().await.expect("client");
    apply_crd(&stack, &client).await;
    let ns = TestNamespace::create(&client, "op-start")
        .await
        .expect("namespace");
    let operator = Operator::start(&stack, &ns.name);
    let topic = format!("start-{}", random_suffix(6));

    let mut applied_at = BTreeMap::new();
    for i in 0..CONNECTORS {
        let name = format!("s{i:02}");
        applied_at.insert(name.clone(), Instant::now());
        apply_connector(
            &client,
            &ns.name,
            &null_sink(&name, &topic, &stack.kafka_bootstrap, "  tasks: 1"),
        )
        .await;
    }
    let mut running: BTreeMap<String, f64> = BTreeMap::new();
    let mut ready: BTreeMap<String, f64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    while ready.len() < CONNECTORS && Instant::now() < deadline {
        for (name, at) in &applied_at {
            if ready.contains_key(name) {
                continue;
            }
            let pods = task_pods(&client, &ns.name, name).await;
            let Some(pod) = pods.get(&0) else { continue };
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if phase == Some("Running") {
                running
                    .entry(name.clone())
                    .or_insert(at.elapsed().as_secs_f64());
            }
            if pod_ready(pod) {
                running
                    .entry(name.clone())
                    .or_insert(at.elapsed().as_secs_f64());
                ready.insert(name.clone(), at.elapsed().as_secs_f64());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    operator.stop().await;
    ns.cleanup().await.expect("namespace cleanup");

    assert_eq!(
        ready.len(),
        CONNECTORS,
        "only {} of {CONNECTORS} connectors became ready within 240 s",
        ready.len()
    );
    let mut r: Vec<f64> = running.values().copied().collect();
    let mut q: Vec<f64> = ready.values().copied().collect();
    r.sort_by(f64::total_cmp);
    q.sort_by(f64::total_cmp);
    eprintln!(
        "MEASURED apply -> task pod Running over {CONNECTORS} connectors: p50 {:.2} s, p95 {:.2} s, max {:.2} s",
        percentile(&r, 50.0),
        percentile(&r, 95.0),
        r[r.len() - 1]
    );
    eprintln!(
        "MEASURED apply -> task pod Ready over {CONNECTORS} connectors: p50 {:.2} s, p95 {:.2} s, max {:.2} s",
        percentile(&q, 50.0),
        percentile(&q, 95.0),
        q[q.len() - 1]
    );
    assert!(
        percentile(&r, 95.0) < 60.0,
        "p95 apply -> Running above 60 s: {r:?}"
    );
}

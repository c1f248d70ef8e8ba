//! Measures how fast the operator brings connectors up on the local stack: the time from
//! applying a connector to all its task pods Running and Ready, over 20 connectors applied
//! together (p50/p95 printed, bounded so a regression fails the test).

mod operator_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ferry_e2e::harness::{random_suffix, Stack, TestNamespace};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::Api;
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
            &discard_sink(&name, &topic, &stack.kafka_bootstrap, "  tasks: 1"),
        )
        .await;
    }
    let mut created: BTreeMap<String, f64> = BTreeMap::new();
    let mut running: BTreeMap<String, f64> = BTreeMap::new();
    let mut ready: BTreeMap<String, f64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    while ready.len() < CONNECTORS && Instant::now() < deadline {
        // One list per pass, so every connector is looked at every ~100 ms.
        let pods = pods_api
            .list(&ListParams::default().labels("ferry.rs/connector"))
            .await
            .expect("list task pods");
        for pod in &pods.items {
            let Some(name) = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("ferry.rs/connector"))
            else {
                continue;
            };
            let Some(at) = applied_at.get(name) else {
                continue;
            };
            let elapsed = at.elapsed().as_secs_f64();
            created.entry(name.clone()).or_insert(elapsed);
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if phase == Some("Running") || pod_ready(pod) {
                running.entry(name.clone()).or_insert(elapsed);
            }
            if pod_ready(pod) {
                ready.entry(name.clone()).or_insert(elapsed);
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
    let mut c: Vec<f64> = created.values().copied().collect();
    c.sort_by(f64::total_cmp);
    eprintln!(
        "MEASURED apply -> task pod created over {CONNECTORS} connectors: p50 {:.2} s, p95 {:.2} s (the operator's share; 100 ms polling)",
        percentile(&c, 50.0),
        percentile(&c, 95.0)
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

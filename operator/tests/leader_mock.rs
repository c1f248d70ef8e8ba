//! Leader election against a mocked API server: a leader whose API server stops answering
//! steps down within the Lease's duration (no call may hang it past that), and a replica
//! whose clock disagrees with the holder's does not take a Lease that is still being renewed.

use std::time::Duration;

use ferry_operator::leader::{step_down_after, Election};
use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::json;
use tokio::time::Instant;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn election(identity: &str) -> Election {
    Election::new(
        "ferry-operator".into(),
        "ferry".into(),
        identity.into(),
        Duration::from_secs(3),
    )
}

fn lease(holder: &str, version: u64, renew_time: &str) -> serde_json::Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "ferry-operator", "namespace": "ferry", "resourceVersion": version.to_string()},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 3, "renewTime": renew_time}
    })
}

fn answer(value: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(value).expect("json")))
        .expect("response")
}

#[tokio::test]
async fn a_leader_whose_api_server_hangs_steps_down_before_the_lease_runs_out() {
    let (service, mut handle): (_, Handle) = tower_test::mock::pair();
    let client = Client::new(service, "default");
    let leader = election("a");
    // The API server accepts requests and never answers them.
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            held.push((request, send));
        }
    });
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), leader.keep(&client, started))
        .await
        .expect("the leader steps down instead of waiting on the API server");
    let led = started.elapsed();
    assert!(
        led <= step_down_after(Duration::from_secs(3)) + Duration::from_millis(200),
        "led {led:?} without a renewal"
    );
    server.abort();
}

#[tokio::test]
async fn a_lease_still_being_renewed_is_not_taken_whatever_its_renew_time_says() {
    let (service, mut handle): (_, Handle) = tower_test::mock::pair();
    let client = Client::new(service, "default");
    let candidate = election("a");
    // The holder's clock is a day behind: each renewTime looks long expired, but the Lease
    // changes at every read (it is being renewed), so it must not be taken.
    let server = tokio::spawn(async move {
        let mut version = 1;
        while let Some((request, send)) = handle.next_request().await {
            assert_eq!(
                request.method(),
                http::Method::GET,
                "the candidate tries to write the Lease"
            );
            version += 1;
            send.send_response(answer(&lease("b", version, "2026-01-01T00:00:00.000000Z")));
        }
    });
    for _ in 0..8 {
        assert!(
            !candidate.try_hold(&client).await.expect("read the Lease"),
            "took a Lease that is being renewed"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    server.abort();
}

#[tokio::test]
async fn a_lease_seen_unchanged_for_its_duration_is_taken() {
    let (service, mut handle): (_, Handle) = tower_test::mock::pair();
    let client = Client::new(service, "default");
    let candidate = election("a");
    let server = tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            if request.method() == http::Method::GET {
                // A renewTime in the future by this machine's clock: it does not matter.
                send.send_response(answer(&lease("b", 5, "2099-01-01T00:00:00.000000Z")));
            } else {
                assert_eq!(request.method(), http::Method::PUT);
                send.send_response(answer(&lease("a", 6, "2026-01-01T00:00:00.000000Z")));
            }
        }
    });
    let started = Instant::now();
    let mut taken = false;
    while !taken && started.elapsed() < Duration::from_secs(6) {
        taken = candidate.try_hold(&client).await.expect("election");
        if !taken {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    assert!(taken, "the Lease was not taken");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "taken after {:?}, before it was seen unchanged for its duration",
        started.elapsed()
    );
    server.abort();
}

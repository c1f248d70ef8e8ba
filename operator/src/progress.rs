//! Reads the tasks' progress reports: `GET http://<podIP>:8080/progress` (a
//! `contract::TaskProgress` as JSON), with a short timeout; failures become readings too.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_crds::contract::{TaskProgress, ADMIN_PORT, PROGRESS_PATH};
use futures::future::join_all;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::observe::{PodPhase, TaskPod};
use crate::status::{Reading, TaskReading};

/// Largest progress document accepted.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The progress step: reads the tasks' progress when the settings ask for it
/// ([`crate::context::Settings::read_progress`]), else none.
pub async fn read(settings: &crate::context::Settings, pods: &[TaskPod]) -> Vec<TaskReading> {
    if settings.read_progress {
        read_all(pods, settings.progress_timeout).await
    } else {
        Vec::new()
    }
}

/// The tasks whose reading says they are stalled, with the lag they reported (pure).
pub fn stalled(readings: &[TaskReading]) -> BTreeMap<i32, Option<u64>> {
    readings
        .iter()
        .filter_map(|r| match &r.reading {
            Reading::Report(p) if p.stalled => Some((r.index, p.lag)),
            _ => None,
        })
        .collect()
}

/// Reads the progress of every running task pod (those with an IP and `Running` phase).
pub async fn read_all(pods: &[TaskPod], timeout: Duration) -> Vec<TaskReading> {
    let asks = pods
        .iter()
        .filter(|p| p.phase == PodPhase::Running && !p.terminating)
        .filter_map(|p| Some((p.index?, p.ip.clone()?)))
        .map(|(index, ip)| async move {
            let reading = match tokio::time::timeout(timeout, fetch(&ip)).await {
                Ok(Ok(progress)) => Reading::Report(progress),
                Ok(Err(error)) => Reading::Unavailable(error),
                Err(_) => Reading::Unavailable(format!(
                    "no answer from {ip}:{ADMIN_PORT}{PROGRESS_PATH} within {} ms",
                    timeout.as_millis()
                )),
            };
            TaskReading { index, reading }
        });
    join_all(asks).await
}

async fn fetch(ip: &str) -> Result<TaskProgress, String> {
    let body = get_from_task(ip, PROGRESS_PATH, MAX_BODY_BYTES).await?;
    parse(&body).map_err(|e| format!("{ip}:{ADMIN_PORT}{PROGRESS_PATH}: {e}"))
}

/// `GET <path>` on a task pod's admin port: the body of a successful answer, at most
/// `max_bytes`, or why there is none, naming the address.
pub(crate) async fn get_from_task(ip: &str, path: &str, max_bytes: usize) -> Result<Bytes, String> {
    let address = format!("{ip}:{ADMIN_PORT}");
    let stream = TcpStream::connect(&address)
        .await
        .map_err(|e| format!("connecting to {address}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("talking to {address}: {e}"))?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, address.as_str())
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("building the request to {address}: {e}"))?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("GET {address}{path}: {e}"))?;
        let code = response.status();
        let body = Limited::new(response.into_body(), max_bytes)
            .collect()
            .await
            .map_err(|e| format!("reading {address}{path}: {e}"))?
            .to_bytes();
        if !code.is_success() {
            return Err(format!("GET {address}{path} answered {code}"));
        }
        Ok(body)
    }
    .await;
    driver.abort();
    result
}

/// Parses a progress document.
pub fn parse(body: &[u8]) -> Result<TaskProgress, String> {
    serde_json::from_slice(body).map_err(|e| format!("not a progress report: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_document() {
        let p = parse(br#"{"state":"Running","recordsIn":10,"recordsOut":9,"lag":3,"lastCommitAt":null,"stalled":true}"#)
            .unwrap();
        assert_eq!(p.records_out, 9);
        assert_eq!(p.lag, Some(3));
        assert!(p.stalled);
        assert!(parse(b"<html>")
            .unwrap_err()
            .contains("not a progress report"));
    }

    #[tokio::test]
    async fn an_unreachable_task_is_a_reading_not_an_error() {
        let pod = TaskPod {
            name: "c-task-0".into(),
            uid: "u".into(),
            index: Some(0),
            hash: None,
            generation: None,
            restarts: 0,
            terminating: false,
            eviction_due: None,
            phase: PodPhase::Running,
            ready: true,
            running_since: None,
            ended: None,
            // TEST-NET-1: never routed, so the request times out or is refused.
            ip: Some("192.0.2.1".into()),
            waiting: None,
        };
        let readings = read_all(&[pod], Duration::from_millis(200)).await;
        assert_eq!(readings.len(), 1);
        assert!(matches!(&readings[0].reading, Reading::Unavailable(_)));
    }
}

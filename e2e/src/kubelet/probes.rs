//! Readiness, liveness and startup probes: `httpGet`, `tcpSocket` and `exec`, with the
//! kubelet's thresholds.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A probe's timing and thresholds, with Kubernetes defaults applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeTiming {
    /// Delay after the container started before the first probe.
    pub initial_delay: Duration,
    /// Time between probes.
    pub period: Duration,
    /// Time after which one probe counts as failed.
    pub timeout: Duration,
    /// Consecutive successes needed to pass (after a failure).
    pub success_threshold: u32,
    /// Consecutive failures needed to fail.
    pub failure_threshold: u32,
}

impl ProbeTiming {
    /// Reads the timing fields of `probe` (defaults: 0 s delay, 10 s period, 1 s timeout,
    /// thresholds 1 and 3).
    pub fn of(probe: &Probe) -> Self {
        let secs = |v: Option<i32>, default: u64, min: u64| {
            Duration::from_secs(
                v.map_or(default, |v| u64::try_from(v).unwrap_or(default))
                    .max(min),
            )
        };
        let count = |v: Option<i32>, default: u32| {
            v.and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        ProbeTiming {
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, 10, 1),
            timeout: secs(probe.timeout_seconds, 1, 1),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

/// The result a probe currently reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// Not decided yet (readiness starts as not ready).
    Unknown,
    /// Passing.
    Success,
    /// Failing.
    Failure,
}

/// Consecutive-result bookkeeping of one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeState {
    timing: ProbeTiming,
    successes: u32,
    failures: u32,
    result: ProbeResult,
}

impl ProbeState {
    /// A probe that has not run yet.
    pub fn new(timing: ProbeTiming) -> Self {
        ProbeState {
            timing,
            successes: 0,
            failures: 0,
            result: ProbeResult::Unknown,
        }
    }

    /// Records one probe outcome and returns the resulting state.
    pub fn observe(&mut self, success: bool) -> ProbeResult {
        if success {
            self.successes += 1;
            self.failures = 0;
            let needed = if self.result == ProbeResult::Unknown {
                1
            } else {
                self.timing.success_threshold
            };
            if self.successes >= needed {
                self.result = ProbeResult::Success;
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.failures >= self.timing.failure_threshold {
                self.result = ProbeResult::Failure;
            }
        }
        self.result
    }

    /// The current result.
    pub fn result(&self) -> ProbeResult {
        self.result
    }
}

/// How to reach the container for `httpGet`/`tcpSocket` probes.
#[derive(Clone, Debug)]
pub struct ProbeTarget<'a> {
    /// The pod's IP (the default host).
    pub pod_ip: &'a str,
    /// The container (for named ports).
    pub container: &'a Container,
}

/// Resolves a probe port: a number, or the name of a container port.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| {
                    format!(
                        "port {name:?} is not a named port of container {}",
                        container.name
                    )
                })
        }
    }
}

/// Runs one `httpGet` or `tcpSocket` probe; `Ok(())` is a success, `Err` says why it failed.
/// (`exec` probes need a process in the container's sandbox: the pod worker runs them.)
pub async fn run_network_probe(
    probe: &Probe,
    target: &ProbeTarget<'_>,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(http) = &probe.http_get {
        let host = http
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| target.pod_ip.to_string());
        let port = resolve_port(&http.port, target.container)?;
        let path = http
            .path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into());
        let scheme = http.scheme.as_deref().unwrap_or("HTTP");
        if !scheme.eq_ignore_ascii_case("HTTP") {
            return Err(format!(
                "httpGet scheme {scheme} is not supported by the local kubelet"
            ));
        }
        let headers: String = http
            .http_headers
            .iter()
            .flatten()
            .map(|h| format!("{}: {}\r\n", h.name, h.value))
            .collect();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.34\r\nAccept: */*\r\n{headers}Connection: close\r\n\r\n"
        );
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| format!("Get \"http://{host}:{port}{path}\": {e}"))?;
            stream
                .write_all(request.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut head = vec![0u8; 64];
            let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
            let line = String::from_utf8_lossy(&head[..n]).to_string();
            let code = parse_status_code(&line)
                .ok_or_else(|| format!("invalid HTTP response from {host}:{port}{path}"))?;
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            }
        };
        return tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "Get \"http://{host}:{port}{path}\": timed out after {timeout:?}"
                ))
            });
    }
    if let Some(tcp) = &probe.tcp_socket {
        let host = tcp
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| target.pod_ip.to_string());
        let port = resolve_port(&tcp.port, target.container)?;
        return match tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: {e}")),
            Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
        };
    }
    if probe.grpc.is_some() {
        return Err("grpc probes are not supported by the local kubelet".into());
    }
    Err("the probe has no handler (httpGet, tcpSocket or exec)".into())
}

/// The status code of an HTTP status line (`HTTP/1.1 200 OK`).
fn parse_status_code(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(yaml: &str) -> Probe {
        serde_yaml::from_str(yaml).expect("probe")
    }

    #[test]
    fn defaults_and_overrides() {
        let t = ProbeTiming::of(&probe("exec: {command: [true]}"));
        assert_eq!(t.period, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!((t.success_threshold, t.failure_threshold), (1, 3));
        let t = ProbeTiming::of(&probe("exec: {command: [true]}\nperiodSeconds: 2\nfailureThreshold: 1\nsuccessThreshold: 2\ninitialDelaySeconds: 5"));
        assert_eq!(t.period, Duration::from_secs(2));
        assert_eq!(t.initial_delay, Duration::from_secs(5));
        assert_eq!((t.success_threshold, t.failure_threshold), (2, 1));
    }

    #[test]
    fn thresholds() {
        let mut s = ProbeState::new(ProbeTiming::of(&probe(
            "exec: {command: [x]}\nsuccessThreshold: 2\nfailureThreshold: 2",
        )));
        assert_eq!(s.result(), ProbeResult::Unknown);
        assert_eq!(s.observe(false), ProbeResult::Unknown);
        assert_eq!(s.observe(false), ProbeResult::Failure);
        assert_eq!(
            s.observe(true),
            ProbeResult::Failure,
            "two successes needed after a failure"
        );
        assert_eq!(s.observe(true), ProbeResult::Success);
        assert_eq!(
            s.observe(false),
            ProbeResult::Success,
            "one failure is tolerated"
        );
        assert_eq!(s.observe(true), ProbeResult::Success);
        let mut first = ProbeState::new(ProbeTiming::of(&probe(
            "exec: {command: [x]}\nsuccessThreshold: 3",
        )));
        assert_eq!(
            first.observe(true),
            ProbeResult::Success,
            "the first success counts at start"
        );
    }

    #[test]
    fn ports_by_number_and_name() {
        let c: Container =
            serde_yaml::from_str("name: web\nports: [{name: admin, containerPort: 8080}]")
                .expect("container");
        assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
        assert_eq!(
            resolve_port(&IntOrString::String("admin".into()), &c),
            Ok(8080)
        );
        assert!(resolve_port(&IntOrString::String("nope".into()), &c).is_err());
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_code("HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(parse_status_code("garbage"), None);
    }

    #[tokio::test]
    async fn http_and_tcp_probes_against_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = vec![0u8; 1024];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let reply = if request.starts_with("GET /ready ") {
                    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                } else {
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
                };
                let _ = stream.write_all(reply.as_bytes()).await;
            }
        });
        let c: Container = serde_yaml::from_str(&format!(
            "name: web\nports: [{{name: http, containerPort: {port}}}]"
        ))
        .expect("container");
        let target = ProbeTarget {
            pod_ip: "127.0.0.1",
            container: &c,
        };
        let timeout = Duration::from_secs(2);
        assert_eq!(
            run_network_probe(
                &probe("httpGet: {path: /ready, port: http}"),
                &target,
                timeout
            )
            .await,
            Ok(())
        );
        assert_eq!(
            run_network_probe(
                &probe(&format!("httpGet: {{path: /other, port: {port}}}")),
                &target,
                timeout
            )
            .await,
            Err("HTTP probe failed with statuscode: 503".to_string())
        );
        assert_eq!(
            run_network_probe(
                &probe(&format!("tcpSocket: {{port: {port}}}")),
                &target,
                timeout
            )
            .await,
            Ok(())
        );
    }
}

//! Reads the autoscaler's signals (I/O).
//!
//! Sinks: the committed offsets of the consumer group `ferry.<namespace>.<connector>` and the
//! bounds of every partition of the topics the sink reads, from Kafka's admin and metadata
//! APIs with the connector's own Kafka settings (Secrets it names, in its namespace). No task
//! has to run for this, so a connector scaled to zero still sees records arrive.
//! Sources: the backlog gauge ([`SOURCE_BACKLOG_METRIC`]) on each running task's `/metrics`.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_crds::contract::{consumer_group, ADMIN_PORT, METRICS_PATH, SOURCE_BACKLOG_METRIC};
use ferry_crds::KafkaConnector;
use futures::future::join_all;
use kube::Client;

use crate::autoscale::decide::{Input, PartitionOffsets};
use crate::observe::{PodPhase, TaskPod};

/// Longest a whole reading may take.
const READ_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest `/metrics` document read from a task.
const MAX_METRICS_BYTES: usize = 1024 * 1024;

/// Why the signals could not be read, in words that name what failed.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// Kafka could not be asked.
    #[error("cannot read the lag from Kafka: {0}")]
    Kafka(String),
    /// The read took too long.
    #[error("reading the lag took longer than {} s", READ_TIMEOUT.as_secs())]
    Timeout,
    /// No running source task answered with its backlog.
    #[error("no running task reported its backlog ({SOURCE_BACKLOG_METRIC}): {0}")]
    NoBacklog(String),
}

/// Reads the signals of `connector`. `pods` are its task pods (sources are scraped).
pub async fn read(
    client: &Client,
    connector: &KafkaConnector,
    pods: &[TaskPod],
    scrape_timeout: Duration,
) -> Result<Input, SignalError> {
    match tokio::time::timeout(
        READ_TIMEOUT,
        read_inner(client, connector, pods, scrape_timeout),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(SignalError::Timeout),
    }
}

async fn read_inner(
    client: &Client,
    connector: &KafkaConnector,
    pods: &[TaskPod],
    scrape_timeout: Duration,
) -> Result<Input, SignalError> {
    match &connector.spec.sink {
        Some(sink) => {
            let namespace = connector.metadata.namespace.clone().unwrap_or_default();
            let name = connector.metadata.name.clone().unwrap_or_default();
            let config = crate::kafka_client::kafka_config(client, connector)
                .await
                .map_err(|e| SignalError::Kafka(e.to_string()))?;
            let group = consumer_group(&namespace, &name);
            let offsets = crate::offset_store::read_sink_offsets(&config, &group, sink)
                .await
                .map_err(|e| SignalError::Kafka(e.to_string()))?;
            Ok(Input::Partitions(
                offsets
                    .into_iter()
                    .map(|p| PartitionOffsets {
                        topic: p.topic,
                        partition: p.partition,
                        committed: p.committed,
                        start: p.start,
                        end: p.end,
                    })
                    .collect(),
            ))
        }
        None => read_backlog(pods, scrape_timeout).await,
    }
}

async fn read_backlog(pods: &[TaskPod], timeout: Duration) -> Result<Input, SignalError> {
    let asks = pods
        .iter()
        .filter(|p| p.phase == PodPhase::Running && !p.terminating)
        .filter_map(|p| Some((p.index?, p.ip.clone()?)))
        .map(|(index, ip)| async move {
            let answer = match tokio::time::timeout(timeout, fetch_metrics(&ip)).await {
                Ok(Ok(text)) => {
                    backlog_of(&text).ok_or_else(|| format!("task {index} does not export it"))
                }
                Ok(Err(e)) => Err(format!("task {index}: {e}")),
                Err(_) => Err(format!(
                    "task {index}: no answer from {ip}:{ADMIN_PORT}{METRICS_PATH} within {} ms",
                    timeout.as_millis()
                )),
            };
            (index, answer)
        });
    let mut backlog = BTreeMap::new();
    let mut problems = Vec::new();
    for (index, answer) in join_all(asks).await {
        match answer {
            Ok(value) => {
                backlog.insert(index, value);
            }
            Err(problem) => problems.push(problem),
        }
    }
    if backlog.is_empty() {
        let why = if problems.is_empty() {
            "no task is running".to_string()
        } else {
            problems.join("; ")
        };
        return Err(SignalError::NoBacklog(why));
    }
    Ok(Input::Backlog(backlog))
}

/// The sum of every sample of the backlog gauge in a Prometheus text document, `None` when
/// it has none. The name may carry a unit suffix (`_bytes`).
pub fn backlog_of(text: &str) -> Option<i64> {
    let mut total: Option<f64> = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(SOURCE_BACKLOG_METRIC) else {
            continue;
        };
        let rest = match rest.strip_prefix('_') {
            Some(suffixed) => {
                let unit_end = suffixed
                    .find(|c: char| c == '{' || c.is_whitespace())
                    .unwrap_or(suffixed.len());
                if !suffixed[..unit_end]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    continue;
                }
                &suffixed[unit_end..]
            }
            None => rest,
        };
        let value_part = match rest.strip_prefix('{') {
            Some(labels) => match labels.rfind('}') {
                Some(end) => &labels[end + 1..],
                None => continue,
            },
            None if rest.starts_with(char::is_whitespace) => rest,
            None => continue,
        };
        let Some(value) = value_part
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        *total.get_or_insert(0.0) += if value.is_finite() {
            value.max(0.0)
        } else {
            0.0
        };
    }
    total.map(|t| {
        if t >= i64::MAX as f64 {
            i64::MAX
        } else {
            t.round() as i64
        }
    })
}

async fn fetch_metrics(ip: &str) -> Result<String, String> {
    let body = crate::progress::get_from_task(ip, METRICS_PATH, MAX_METRICS_BYTES).await?;
    String::from_utf8(body.to_vec())
        .map_err(|_| format!("{ip}:{ADMIN_PORT}{METRICS_PATH} is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_gauge_is_summed_over_its_samples_with_or_without_a_unit() {
        let text = "\
# HELP ferry_task_source_backlog_bytes Bytes of WAL not yet in Kafka.
# TYPE ferry_task_source_backlog_bytes gauge
ferry_task_source_backlog_bytes{connector=\"c\",namespace=\"n\",task=\"0\",slot=\"a\"} 1500
ferry_task_source_backlog_bytes{connector=\"c\",namespace=\"n\",task=\"0\",slot=\"b\"} 500.4
ferry_task_records_out_total{connector=\"c\"} 99
ferry_task_source_backlogged_total 7
";
        assert_eq!(backlog_of(text), Some(2000));
        assert_eq!(backlog_of("ferry_task_source_backlog 12\n"), Some(12));
        assert_eq!(
            backlog_of("ferry_task_source_backlog{task=\"0\"} NaN\n"),
            Some(0),
            "a present gauge without a usable value counts as no backlog"
        );
        assert_eq!(backlog_of("ferry_task_records_out_total 5\n"), None);
        assert_eq!(backlog_of("ferry_task_source_backlog{broken 5\n"), None);
    }
}

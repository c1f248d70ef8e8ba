//! The sink's Kafka consumer: its properties, its callbacks (commit on revocation, paused
//! partitions, lag), connecting and subscribing, pausing, and committing what is durable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_crds::connector::SinkSpec;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::fence::{WriteFence, REVOCATION_WAIT};
use super::lock;
use crate::desired_state::DesiredState;
use crate::metrics::{RunState, TaskMetrics};
use crate::offset_tracker::{OffsetTracker, TopicPartition};
use crate::task_config::TaskConfig;
use crate::task_error::TaskError;

/// The consumer's callbacks: commit on revocation, keep paused partitions paused, lag.
pub(super) struct SinkContext {
    fence: Arc<WriteFence>,
    metrics: Arc<TaskMetrics>,
    paused: Arc<AtomicBool>,
}

impl SinkContext {
    /// The callbacks of a task whose writer `fence` guards (with the task's offsets);
    /// `paused`: whether the task is paused (newly assigned partitions are paused too).
    pub(super) fn new(
        fence: Arc<WriteFence>,
        metrics: Arc<TaskMetrics>,
        paused: Arc<AtomicBool>,
    ) -> Self {
        Self {
            fence,
            metrics,
            paused,
        }
    }
}

impl ClientContext for SinkContext {
    fn stats(&self, statistics: Statistics) {
        let lag: i64 = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag)
            .sum();
        self.metrics.set_lag(lag);
    }
}

fn to_tps(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition {
            topic: Arc::from(e.topic()),
            partition: e.partition(),
        })
        .collect()
}

fn to_tpl(offsets: &[(TopicPartition, i64)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (tp, o) in offsets {
        // Only fails for an invalid offset kind, which `Offset::Offset` is not.
        let _ = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*o));
    }
    tpl
}

impl ConsumerContext for SinkContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let tps = to_tps(tpl);
            // The write in progress ends first (its records are then acknowledged and
            // committed here); batches not yet written leave the revoked records out.
            let (offsets, waited_out) = tokio::task::block_in_place(|| {
                self.fence.revoke(REVOCATION_WAIT, |t| {
                    let o = t.take_committable_for(&tps);
                    t.revoke(&tps);
                    o
                })
            });
            if waited_out {
                tracing::warn!(
                    partitions = ?tps,
                    waited_s = REVOCATION_WAIT.as_secs(),
                    "partitions revoked while a write was still running: that write may land after the new owner's"
                );
            }
            tracing::info!(partitions = ?tps, "partitions revoked; committing what is written");
            if !offsets.is_empty() && !consumer.assignment_lost() {
                match consumer.commit(&to_tpl(&offsets), CommitMode::Sync) {
                    Ok(()) => self.metrics.committed(),
                    Err(e) => {
                        tracing::warn!(error = %e, "commit on revocation failed; the records will be read again")
                    }
                }
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = ?to_tps(tpl), "partitions assigned");
            if self.paused.load(Ordering::SeqCst) {
                if let Err(e) = consumer.pause(tpl) {
                    tracing::warn!(error = %e, "cannot pause newly assigned partitions");
                }
            }
        }
    }
}

/// The consumer properties of a sink task.
pub fn consumer_properties(cfg: &TaskConfig) -> BTreeMap<String, String> {
    let mut p = cfg.kafka.clone();
    let defaults = [
        // Bounded prefetch: a large lag must not grow memory.
        ("queued.max.messages.kbytes", "8192"),
        ("queued.min.messages", "10000"),
        // librdkafka waits this long before fetching again once the bounds above are
        // reached (default 1 s, which would cap a busy task at one prefetch per second).
        ("fetch.queue.backoff.ms", "10"),
        ("fetch.max.bytes", "16777216"),
        ("auto.offset.reset", "earliest"),
        ("statistics.interval.ms", "5000"),
        // A topic created after the task subscribed (a sink applied before its source wrote
        // anything) is seen at the next metadata refresh: every 10 s, not librdkafka's 5 min.
        ("topic.metadata.refresh.interval.ms", "10000"),
    ];
    for (k, v) in defaults {
        p.entry(k.to_string()).or_insert_with(|| v.to_string());
    }
    p.entry("session.timeout.ms".to_string())
        .or_insert_with(|| ferry_crds::contract::SINK_SESSION_TIMEOUT_MS.to_string());
    let managed = [
        (
            "group.id",
            ferry_crds::contract::consumer_group(&cfg.namespace, &cfg.name),
        ),
        (
            "group.instance.id",
            format!("{}-task-{}", cfg.name, cfg.share.index),
        ),
        ("partition.assignment.strategy", "cooperative-sticky".into()),
        ("enable.auto.commit", "false".into()),
        ("enable.auto.offset.store", "false".into()),
        ("enable.partition.eof", "false".into()),
    ];
    for (k, v) in managed {
        p.insert(k.to_string(), v);
    }
    p
}

/// Creates the consumer of a sink task, with `context`'s callbacks.
pub(super) fn create(
    cfg: &TaskConfig,
    context: SinkContext,
) -> Result<StreamConsumer<SinkContext>, TaskError> {
    let mut client = ferry_kafka::client_config(&consumer_properties(cfg));
    client.set_log_level(RDKafkaLogLevel::Warning);
    client
        .create_with_context(context)
        .map_err(|e| TaskError::kafka("cannot create the consumer", e))
}

/// Subscribes to the sink's topics (`topics`, or every topic matching `topicsRegex`).
pub(super) fn subscribe(
    consumer: &StreamConsumer<SinkContext>,
    spec: &SinkSpec,
) -> Result<(), TaskError> {
    match &spec.topics_regex {
        Some(re) => consumer.subscribe(&[format!("^({re})$").as_str()]),
        None => {
            let topics: Vec<&str> = spec.topics.iter().map(String::as_str).collect();
            consumer.subscribe(&topics)
        }
    }
    .map_err(|e| {
        TaskError::kafka(
            format!(
                "cannot subscribe to {}",
                spec.topics_regex
                    .clone()
                    .unwrap_or_else(|| spec.topics.join(", "))
            ),
            e,
        )
    })
}

/// Pauses or resumes the assigned partitions when the desired state changes.
pub(super) fn apply_desired(
    d: DesiredState,
    consumer: &StreamConsumer<SinkContext>,
    paused: &AtomicBool,
    metrics: &TaskMetrics,
) {
    let pause = d == DesiredState::Paused;
    if paused.swap(pause, Ordering::SeqCst) == pause {
        return;
    }
    let assignment = consumer.assignment().unwrap_or_default();
    let r = if pause {
        consumer.pause(&assignment)
    } else {
        consumer.resume(&assignment)
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, "cannot change the paused state of the partitions");
    }
    metrics.set_state(if pause {
        RunState::Paused
    } else {
        RunState::Running
    });
    tracing::info!(
        paused = pause,
        "consumption {}",
        if pause { "paused" } else { "resumed" }
    );
}

/// Commits the acknowledged offsets synchronously (one round trip per commit interval), so
/// that `last_commit_timestamp_seconds` only moves on a commit the broker accepted. A failed
/// commit is tried again at the next interval, unless the consumer can no longer be used.
pub(super) fn commit(
    consumer: &StreamConsumer<SinkContext>,
    tracker: &Mutex<OffsetTracker>,
    metrics: &TaskMetrics,
) -> Result<(), TaskError> {
    let offsets = {
        let mut t = lock(tracker);
        metrics.set_pending(t.in_flight() as u64);
        t.take_committable()
    };
    if offsets.is_empty() {
        return Ok(());
    }
    let tpl = to_tpl(&offsets);
    match tokio::task::block_in_place(|| consumer.commit(&tpl, CommitMode::Sync)) {
        Ok(()) => metrics.committed(),
        Err(e) => {
            fatal(consumer)?;
            tracing::warn!(error = %e, "offset commit failed; it is tried again at the next commit interval");
            lock(tracker).retry_commit(&offsets);
        }
    }
    Ok(())
}

/// Fails when librdkafka has declared the consumer unusable: then every later call fails
/// the same way, and the task must stop (its replacement, if it was fenced, carries on).
pub(super) fn fatal(consumer: &StreamConsumer<SinkContext>) -> Result<(), TaskError> {
    match consumer.client().fatal_error() {
        Some((code, reason)) => Err(TaskError::KafkaFatal { code, reason }),
        None => Ok(()),
    }
}

/// Waits until the brokers answer (metadata), or fails after a minute.
pub(super) async fn wait_for_kafka(
    consumer: &StreamConsumer<SinkContext>,
    bootstrap: &str,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), TaskError> {
    let started = Instant::now();
    loop {
        let r =
            tokio::task::block_in_place(|| consumer.fetch_metadata(None, Duration::from_secs(5)));
        match r {
            Ok(_) => return Ok(()),
            Err(e) if started.elapsed() > Duration::from_secs(60) => {
                return Err(TaskError::kafka(
                    format!("cannot reach the brokers at {bootstrap} (spec.kafka.bootstrapServers) for a minute"),
                    e,
                ))
            }
            Err(e) => tracing::warn!(error = %e, "waiting for Kafka"),
        }
        if *shutdown.borrow() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::TaskShare;
    use crate::task_config::offline_config;

    #[test]
    fn consumer_properties_manage_the_group_and_keep_user_tuning() {
        let cfg = offline_config(
            r#"
apiVersion: ferry.rs/v1alpha1
kind: KafkaConnector
metadata: {name: orders, namespace: shop}
spec:
  kafka: {bootstrapServers: "b:9092", config: {queued.max.messages.kbytes: "4096", fetch.min.bytes: "1000"}}
  sink: {topics: [orders], discard: {}}
"#,
            TaskShare { index: 2, count: 3 },
        );
        let p = consumer_properties(&cfg);
        assert_eq!(p["group.id"], "ferry.shop.orders");
        assert_eq!(p["group.instance.id"], "orders-task-2");
        assert_eq!(p["partition.assignment.strategy"], "cooperative-sticky");
        assert_eq!(p["enable.auto.commit"], "false");
        assert_eq!(p["enable.auto.offset.store"], "false");
        assert_eq!(p["auto.offset.reset"], "earliest");
        assert_eq!(
            p["queued.max.messages.kbytes"], "4096",
            "user tuning wins over defaults"
        );
        assert_eq!(p["fetch.min.bytes"], "1000");
        assert_eq!(p["queued.min.messages"], "10000");
        assert_eq!(p["topic.metadata.refresh.interval.ms"], "10000");
        assert_eq!(p["session.timeout.ms"], "45000");
    }

    #[test]
    fn offsets_become_a_partition_list() {
        let tp = TopicPartition {
            topic: Arc::from("t"),
            partition: 1,
        };
        let tpl = to_tpl(&[(tp.clone(), 42)]);
        assert_eq!(to_tps(&tpl), vec![tp]);
        assert_eq!(
            tpl.find_partition("t", 1).map(|e| e.offset()),
            Some(Offset::Offset(42))
        );
    }
}

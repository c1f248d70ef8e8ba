//! What the sink's read loop does with each consumed record: convert and transform it into
//! the batch, acknowledge it when a filter drops it, or hand its failure to the router.

use std::sync::{Arc, Mutex};

use rdkafka::message::{BorrowedMessage, Message};
use tokio::task::JoinSet;

use super::handoff::Batch;
use super::lock;
use crate::error_handling::{RecordCoordinates, RecordFailure, Stage};
use crate::failure::{keeps_bytes, FailedRecord, FailureRouter, Routed};
use crate::metrics::TaskMetrics;
use crate::offset_tracker::{OffsetTracker, TopicPartition};
use crate::processing::{decode_and_transform, Processed, StageTally};
use crate::record::RawRecord;
use crate::task_config::TaskConfig;
use crate::task_error::TaskError;

/// The record's bytes, copied once out of librdkafka's buffer (the converters then keep
/// these bytes instead of copying them again); `topic` is the message's topic name. Headers
/// are read only `with_headers`: librdkafka parses them on demand, with an allocation per
/// message even when there are none.
fn raw_of(m: &BorrowedMessage<'_>, topic: &str, with_headers: bool) -> RawRecord {
    RawRecord {
        topic: topic.to_string(),
        partition: Some(m.partition()),
        offset: Some(m.offset()),
        timestamp: m.timestamp().to_millis(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers: if with_headers {
            headers_of(m)
        } else {
            Vec::new()
        },
    }
}

/// The message's headers, copied; a name that is not UTF-8 is read as Kafka's Java client
/// reads it (see [`ferry_kafka::headers`]).
fn headers_of(m: &BorrowedMessage<'_>) -> Vec<(String, Option<Vec<u8>>)> {
    ferry_kafka::headers::message_headers(m)
}

/// Whether the task must decode the headers of the records it reads: when the sink plugin
/// looks at them, a predicate tests them, or the header converter may reject one (the record
/// then fails as it would in Kafka Connect). Otherwise they are never visible, and a dead
/// letter queue still receives them: failed records are re-read with their headers.
fn headers_needed(cfg: &TaskConfig, plugin_reads_headers: bool) -> bool {
    plugin_reads_headers
        || cfg.transforms.reads_headers()
        || cfg.converters.header_decoding_can_fail()
}

/// The largest record a task decodes: the consumer's `fetch.max.bytes` (16 MiB unless
/// `spec.kafka.config` sets it). Kafka still hands out a larger record to let a consumer
/// make progress, but decoding it could take many times its size in memory; it fails as a
/// record instead (dead letter queue, or the task fails naming it).
fn max_record_bytes(cfg: &TaskConfig) -> usize {
    super::consumer::consumer_properties(cfg)
        .get("fetch.max.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(16 * 1024 * 1024)
}

/// The failure of a record of `size` bytes over the task's `limit`.
fn too_large(size: usize, limit: usize) -> RecordFailure {
    let message = format!(
        "the record's key and value hold {size} bytes, more than the {limit} bytes a task \
         decodes (the consumer's fetch.max.bytes; raise it in spec.kafka.config to read larger records)"
    );
    RecordFailure {
        stage: Stage::KafkaConsume,
        class_name: "ferry.consumer".into(),
        error_kind: "RecordTooLarge".into(),
        trace: message.clone(),
        message,
    }
}

/// What the read loop does with each consumed record.
pub(super) struct RecordHandler {
    cfg: Arc<TaskConfig>,
    metrics: Arc<TaskMetrics>,
    tracker: Arc<Mutex<OffsetTracker>>,
    failures: FailureRouter,
    /// Records on their way to the dead letter queue; each acknowledges its offset once
    /// Kafka has it.
    pub(super) dlq_deliveries: JoinSet<Result<(), TaskError>>,
    /// The batch being filled.
    pub(super) batch: Batch,
    topics: Vec<Arc<str>>,
    /// Whether records are decoded with their headers (see [`headers_needed`]).
    read_headers: bool,
    /// The largest record (key and value bytes) the task decodes (see [`max_record_bytes`]).
    max_record_bytes: usize,
    /// Stage counts of the records handled since the last [`RecordHandler::flush_counts`].
    tally: StageTally,
}

impl RecordHandler {
    /// The handler of a task whose offsets `tracker` follows, sending failed records to
    /// `failures`; `plugin_reads_headers`: the sink plugin looks at headers.
    pub(super) fn new(
        cfg: Arc<TaskConfig>,
        metrics: Arc<TaskMetrics>,
        tracker: Arc<Mutex<OffsetTracker>>,
        failures: FailureRouter,
        plugin_reads_headers: bool,
    ) -> Self {
        let read_headers = headers_needed(&cfg, plugin_reads_headers);
        let max_record_bytes = max_record_bytes(&cfg);
        Self {
            max_record_bytes,
            cfg,
            metrics,
            tracker,
            failures,
            dlq_deliveries: JoinSet::new(),
            batch: Batch::new(),
            topics: Vec::new(),
            read_headers,
            tally: StageTally::default(),
        }
    }

    /// The shared name of `topic` (one allocation per topic, not per record).
    fn topic_name(&mut self, topic: &str) -> Arc<str> {
        if let Some(t) = self.topics.iter().find(|t| &***t == topic) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(topic);
        self.topics.push(t.clone());
        t
    }

    /// Adds the records counted since the last call to the metrics.
    pub(super) fn flush_counts(&mut self) {
        self.tally.flush(&self.metrics);
    }

    /// Converts and transforms one record into the batch, or handles its failure.
    pub(super) fn on_message(&mut self, m: &BorrowedMessage<'_>) -> Result<(), TaskError> {
        let topic = m.topic();
        let origin = TopicPartition {
            topic: self.topic_name(topic),
            partition: m.partition(),
        };
        let offset = m.offset();
        let generation = lock(&self.tracker).consumed(&origin, offset);
        self.tally.read += 1;
        let size = m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len);
        let raw = raw_of(m, topic, self.read_headers);
        let processed = if size > self.max_record_bytes {
            let failure = too_large(size, self.max_record_bytes);
            Processed::Failed(keeps_bytes(&self.cfg.errors).then_some(raw), failure)
        } else {
            decode_and_transform(&self.cfg, &self.metrics, &mut self.tally, raw)
        };
        match processed {
            Processed::Record(record) => {
                self.batch.push(origin, offset, generation, size, record);
                Ok(())
            }
            Processed::Filtered => {
                lock(&self.tracker).acknowledged(&origin, offset);
                Ok(())
            }
            Processed::Failed(mut raw, failure) => {
                if !self.read_headers {
                    if let Some(raw) = raw.as_mut() {
                        raw.headers = headers_of(m);
                    }
                }
                let failed = FailedRecord {
                    at: RecordCoordinates {
                        topic: origin.topic.to_string(),
                        partition: Some(origin.partition),
                        offset: Some(offset),
                    },
                    position: None,
                    failure,
                    raw,
                };
                match self.failures.route(failed)? {
                    Routed::Skipped => lock(&self.tracker).acknowledged(&origin, offset),
                    Routed::DeadLettered(delivery) => {
                        let tracker = self.tracker.clone();
                        self.dlq_deliveries.spawn(async move {
                            delivery.done().await?;
                            lock(&tracker).acknowledged(&origin, offset);
                            Ok(())
                        });
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::TaskShare;
    use crate::task_config::offline_config;

    fn sink_config(extra: &str) -> TaskConfig {
        offline_config(
            &format!(
                "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: o, namespace: s}}\nspec:\n  kafka: {{bootstrapServers: \"b:9092\"}}\n  sink: {{topics: [o], discard: {{}}}}\n{extra}"
            ),
            TaskShare { index: 0, count: 1 },
        )
    }

    #[test]
    fn the_record_limit_is_the_consumers_fetch_max_bytes() {
        assert_eq!(max_record_bytes(&sink_config("")), 16 * 1024 * 1024);
        let raised = offline_config(
            "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {name: o, namespace: s}\nspec:\n  kafka: {bootstrapServers: \"b:9092\", config: {fetch.max.bytes: \"67108864\"}}\n  sink: {topics: [o], discard: {}}\n",
            TaskShare { index: 0, count: 1 },
        );
        assert_eq!(max_record_bytes(&raised), 64 * 1024 * 1024);
        let failure = too_large(20, 10);
        assert_eq!(failure.stage.connect_name(), "KAFKA_CONSUME");
        assert!(failure.message.contains("20 bytes"), "{}", failure.message);
    }

    #[test]
    fn headers_are_decoded_only_when_something_can_see_them() {
        let plain = sink_config("");
        assert!(
            !headers_needed(&plain, false),
            "simple headers, no predicate"
        );
        assert!(headers_needed(&plain, true), "the plugin reads them");
        let predicate = sink_config(
            "  transforms: [{name: f, filter: {}, predicate: {hasHeaderKey: {name: skip}}}]\n",
        );
        assert!(headers_needed(&predicate, false), "a predicate tests them");
        let adds = sink_config(
            "  transforms: [{name: h, insertHeader: {header: origin, valueLiteral: shop}}]\n",
        );
        assert!(!headers_needed(&adds, false), "adding a header reads none");
        let strict = sink_config("  converters: {header: {json: {}}}\n");
        assert!(
            headers_needed(&strict, false),
            "a JSON header may be rejected"
        );
    }
}

//! What becomes of a record that failed for good: one router for both pipelines.
//!
//! A record fails in a converter, a transform, the sink plugin (it refused the record) or
//! the producer (Kafka refused it). Wherever that happens, the pipeline describes the
//! failure as a [`FailedRecord`] and hands it to the task's [`FailureRouter`], which counts
//! it (`ferry_task_errors_total`), logs it (`spec.errors.logErrors`), decides ([`decide`])
//! and acts: it fails the task naming the record, skips the record, or writes it to the dead
//! letter queue. The pipeline only moves its position past a record the router let go.
//!
//! The error counter is counted here only, also for failures that are not a record's (a
//! poll or a write that failed for good, a producer that failed): [`FailureRouter::count`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::Header;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::error_handling::{
    dlq_context_headers, record_failed_message, DlqSettings, ErrorPolicy, RecordCoordinates,
    RecordFailure, Stage, TaskIdentity,
};
use crate::metrics::TaskMetrics;
use crate::plugins::SourceOffset;
use crate::record::RawRecord;
use crate::task_error::TaskError;
use ferry_kafka::topics::{ensure_topic, TopicRequest};

/// How long the sink's writer waits for room in the dead letter queue producer's queue.
const DEAD_LETTER_QUEUE_FULL_WAIT: Duration = Duration::from_secs(30);

/// What happens to a record that failed for good (after retries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureAction {
    /// `tolerance: None`: stop the task, naming the record.
    FailTask,
    /// `tolerance: All` with a dead letter queue.
    SendToDeadLetterQueue,
    /// `tolerance: All` without a dead letter queue.
    Skip,
}

/// Whether a failed record can reach a dead letter queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadLetterRoute {
    /// The pipeline has no dead letter queue (sources: validation refuses one).
    NoQueue,
    /// The pipeline has one and the record's bytes are at hand.
    Ready,
    /// The pipeline has one but the record's bytes are not there (a record the sink plugin
    /// refused that the converters cannot write back): the record cannot be kept.
    NoBytes,
}

/// Decides what becomes of a failed record under `policy`, given its way to the dead letter
/// queue. A record the queue cannot take fails the task rather than being dropped silently.
pub fn decide(policy: &ErrorPolicy, route: DeadLetterRoute) -> FailureAction {
    if !policy.tolerate_all {
        return FailureAction::FailTask;
    }
    if policy.dead_letter_queue.is_none() {
        return FailureAction::Skip;
    }
    match route {
        DeadLetterRoute::Ready => FailureAction::SendToDeadLetterQueue,
        DeadLetterRoute::NoQueue => FailureAction::Skip,
        DeadLetterRoute::NoBytes => FailureAction::FailTask,
    }
}

/// Whether failed records need their original bytes (for the dead letter queue or an error
/// log with contents); copying every record otherwise would double the memory traffic.
pub fn keeps_bytes(policy: &ErrorPolicy) -> bool {
    policy.dead_letter_queue.is_some() || policy.log_include_messages
}

/// A record that failed at a stage with an error, and where it came from.
#[derive(Clone, Debug)]
pub struct FailedRecord {
    /// Its topic, partition and offset (as far as known).
    pub at: RecordCoordinates,
    /// Source records: the source offset after the record, named when the task stops.
    pub position: Option<SourceOffset>,
    /// The stage, the component and the error.
    pub failure: RecordFailure,
    /// Its bytes, when kept ([`keeps_bytes`]; a dead letter queue needs them).
    pub raw: Option<RawRecord>,
}

impl FailedRecord {
    /// The error that stops the task on this record: its message names the record (and,
    /// for a source record, its source offset).
    pub fn task_error(&self) -> TaskError {
        let message = record_failed_message(&self.at, &self.failure);
        TaskError::RecordFailed(match &self.position {
            None => message,
            Some(offset) => format!(
                "{message} (source offset {})",
                serde_json::to_string(offset).unwrap_or_default()
            ),
        })
    }
}

/// The task's dead letter queue: its producer, its settings and the task writing to it.
#[derive(Clone)]
pub struct DeadLetterQueue {
    producer: FutureProducer,
    settings: DlqSettings,
    identity: TaskIdentity,
}

impl DeadLetterQueue {
    /// Creates the topic when it is missing and an idempotent producer for it, with the
    /// task's client properties `kafka`.
    pub async fn open(
        kafka: &BTreeMap<String, String>,
        settings: &DlqSettings,
        identity: TaskIdentity,
    ) -> Result<Self, TaskError> {
        ensure_topic(
            &ferry_kafka::client_config(kafka),
            TopicRequest {
                name: &settings.topic,
                partitions: 1,
                replication_factor: settings.replication_factor,
                config: &[],
            },
        )
        .await?;
        let mut pc = ferry_kafka::client_config(kafka);
        pc.set("enable.idempotence", "true").set("acks", "all");
        let producer: FutureProducer = pc
            .create()
            .map_err(|e| TaskError::kafka("cannot create the dead letter queue producer", e))?;
        Ok(Self {
            producer,
            settings: settings.clone(),
            identity,
        })
    }

    /// The error of writing the record from `at` to the queue.
    fn write_error(&self, at: &RecordCoordinates, e: rdkafka::error::KafkaError) -> TaskError {
        write_error(at, &self.settings.topic, e)
    }

    /// The queue's record for `failed`: its key, value, timestamp and headers, then Kafka
    /// Connect's `__connect.errors.*` context headers when `contextHeaders` is set.
    fn record<'a>(
        &'a self,
        failed: &FailedRecord,
        raw: &'a RawRecord,
    ) -> FutureRecord<'a, [u8], [u8]> {
        let mut headers = raw.kafka_headers();
        if self.settings.context_headers {
            for (k, v) in dlq_context_headers(&self.identity, &failed.at, &failed.failure) {
                headers = headers.insert(Header {
                    key: &k,
                    value: Some(&v),
                });
            }
        }
        raw.producer_record(&self.settings.topic, headers)
    }
}

fn write_error(at: &RecordCoordinates, topic: &str, e: rdkafka::error::KafkaError) -> TaskError {
    TaskError::kafka(
        format!("cannot write record {at} to the dead letter queue {topic}"),
        e,
    )
}

/// What the router did with a failed record the task goes on without.
#[must_use = "a record sent to the dead letter queue is done only once Kafka has it"]
pub enum Routed {
    /// Skipped: its position may move on.
    Skipped,
    /// Handed to the dead letter queue's producer: its position may move on once the
    /// delivery is [`DeadLetterDelivery::done`].
    DeadLettered(DeadLetterDelivery),
}

/// Counts, logs, decides and acts on the failed records of one task.
#[derive(Clone)]
pub struct FailureRouter {
    policy: ErrorPolicy,
    metrics: Arc<TaskMetrics>,
    dead_letters: Option<DeadLetterQueue>,
}

impl FailureRouter {
    /// The router of a task with `policy`; `dead_letters`: the sink's dead letter queue.
    pub fn new(
        policy: ErrorPolicy,
        metrics: Arc<TaskMetrics>,
        dead_letters: Option<DeadLetterQueue>,
    ) -> Self {
        Self {
            policy,
            metrics,
            dead_letters,
        }
    }

    /// Counts a failure at `stage` that is not a record's: a poll or a write that failed
    /// (and is retried, or stops the task), or a producer that failed.
    pub fn count(&self, stage: Stage) {
        self.metrics.error(stage);
    }

    /// Counts and logs `failed` and decides: `Err` stops the task, `Some` is the queue to
    /// write the record to.
    fn judge<'a>(
        &'a self,
        failed: &'a FailedRecord,
    ) -> Result<Option<(&'a DeadLetterQueue, &'a RawRecord)>, TaskError> {
        self.count(failed.failure.stage);
        log_failure(&self.policy, failed);
        let (route, queue) = match (&self.dead_letters, &failed.raw) {
            (None, _) => (DeadLetterRoute::NoQueue, None),
            (Some(queue), Some(raw)) => (DeadLetterRoute::Ready, Some((queue, raw))),
            (Some(_), None) => (DeadLetterRoute::NoBytes, None),
        };
        match (decide(&self.policy, route), queue) {
            (FailureAction::Skip, _) => Ok(None),
            (FailureAction::SendToDeadLetterQueue, Some(queue)) => Ok(Some(queue)),
            _ => Err(failed.task_error()),
        }
    }

    /// Routes `failed` without waiting: a record for the dead letter queue is handed to its
    /// producer (a full producer queue stops the task) and comes back as a delivery to wait
    /// for.
    pub fn route(&self, failed: FailedRecord) -> Result<Routed, TaskError> {
        let Some((queue, raw)) = self.judge(&failed)? else {
            return Ok(Routed::Skipped);
        };
        let delivery = queue
            .producer
            .send_result(queue.record(&failed, raw))
            .map_err(|(e, _)| queue.write_error(&failed.at, e))?;
        Ok(Routed::DeadLettered(DeadLetterDelivery {
            delivery,
            topic: queue.settings.topic.clone(),
            at: failed.at,
            metrics: self.metrics.clone(),
        }))
    }

    /// Routes `failed` and waits until a record for the dead letter queue is written
    /// (waiting up to 30 s for room in the producer's queue); `Ok`: the task goes on
    /// without the record.
    pub async fn route_and_wait(&self, failed: FailedRecord) -> Result<(), TaskError> {
        let Some((queue, raw)) = self.judge(&failed)? else {
            return Ok(());
        };
        queue
            .producer
            .send(queue.record(&failed, raw), DEAD_LETTER_QUEUE_FULL_WAIT)
            .await
            .map_err(|(e, _)| queue.write_error(&failed.at, e))?;
        self.metrics.dlq_record();
        Ok(())
    }
}

/// A record on its way to the dead letter queue.
pub struct DeadLetterDelivery {
    delivery: DeliveryFuture,
    topic: String,
    at: RecordCoordinates,
    metrics: Arc<TaskMetrics>,
}

impl DeadLetterDelivery {
    /// Waits until Kafka has the record (and counts it in `ferry_task_dlq_records_total`).
    pub async fn done(self) -> Result<(), TaskError> {
        match self.delivery.await {
            Ok(Ok(_)) => {
                self.metrics.dlq_record();
                Ok(())
            }
            Ok(Err((e, _))) => Err(write_error(&self.at, &self.topic, e)),
            Err(source) => Err(TaskError::DeliveryLost {
                context: format!(
                    "the dead letter queue producer stopped before record {} was written",
                    self.at
                ),
                source,
            }),
        }
    }
}

/// Logs a failed record when `spec.errors.logErrors` is set (with its contents when
/// `logIncludeMessages` is set); a record that stops the task is always logged.
fn log_failure(policy: &ErrorPolicy, failed: &FailedRecord) {
    if !policy.log_errors && policy.tolerate_all {
        return;
    }
    let FailedRecord {
        at, failure, raw, ..
    } = failed;
    let stage = failure.stage.connect_name();
    if policy.log_include_messages {
        let show = |b: &Option<Vec<u8>>| {
            b.as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_else(|| "null".into())
        };
        let (key, value) = raw
            .as_ref()
            .map(|r| (show(&r.key), show(&r.value)))
            .unwrap_or_default();
        tracing::warn!(record = %at, stage, class = %failure.class_name, error = %failure.message, key, value, "record failed");
    } else {
        tracing::warn!(record = %at, stage, class = %failure.class_name, error = %failure.message, "record failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_crds::errors::ErrorHandling;

    fn policy(yaml: &str) -> ErrorPolicy {
        let spec: ErrorHandling = serde_yaml::from_str(yaml).unwrap();
        ErrorPolicy::from_spec(Some(&spec))
    }

    fn failed() -> FailedRecord {
        FailedRecord {
            at: RecordCoordinates {
                topic: "orders".into(),
                partition: Some(1),
                offset: Some(7),
            },
            position: None,
            failure: RecordFailure {
                stage: Stage::ValueConverter,
                class_name: "ferry.converter.value.json".into(),
                error_kind: "ConvertError".into(),
                message: "value: expected JSON".into(),
                trace: "value: expected JSON".into(),
            },
            raw: None,
        }
    }

    #[test]
    fn tolerance_decides_the_action() {
        let ready = DeadLetterRoute::Ready;
        assert_eq!(decide(&policy("{}"), ready), FailureAction::FailTask);
        assert_eq!(
            decide(&ErrorPolicy::from_spec(None), ready),
            FailureAction::FailTask
        );
        assert_eq!(
            decide(&policy("tolerance: All"), ready),
            FailureAction::Skip
        );
        assert_eq!(
            decide(
                &policy("tolerance: All\ndeadLetterQueue: {topic: dlq}"),
                ready
            ),
            FailureAction::SendToDeadLetterQueue
        );
    }

    #[test]
    fn a_record_without_a_way_to_the_dead_letter_queue() {
        let dlq = policy("tolerance: All\ndeadLetterQueue: {topic: dlq}");
        assert_eq!(
            decide(&dlq, DeadLetterRoute::NoBytes),
            FailureAction::FailTask,
            "a record the queue cannot take is not dropped silently"
        );
        assert_eq!(
            decide(&dlq, DeadLetterRoute::NoQueue),
            FailureAction::Skip,
            "a pipeline without a queue skips"
        );
        assert_eq!(
            decide(&policy("tolerance: None"), DeadLetterRoute::NoQueue),
            FailureAction::FailTask
        );
        assert_eq!(
            decide(&policy("tolerance: All"), DeadLetterRoute::NoBytes),
            FailureAction::Skip
        );
    }

    #[test]
    fn bytes_are_kept_for_the_queue_and_for_logs_with_contents() {
        assert!(!keeps_bytes(&policy("{tolerance: All, logErrors: true}")));
        assert!(keeps_bytes(&policy(
            "{tolerance: All, deadLetterQueue: {topic: dlq}}"
        )));
        assert!(keeps_bytes(&policy(
            "{logErrors: true, logIncludeMessages: true}"
        )));
    }

    #[tokio::test]
    async fn the_router_counts_skips_and_stops_naming_the_record() {
        let metrics = TaskMetrics::new("shop", "orders", 0);
        let skip = FailureRouter::new(policy("tolerance: All"), metrics.clone(), None);
        assert!(matches!(skip.route(failed()), Ok(Routed::Skipped)));
        assert!(skip.route_and_wait(failed()).await.is_ok());
        let text = metrics.encode();
        assert!(
            text.contains("stage=\"value_converter\"} 2"),
            "each failure is counted:\n{text}"
        );

        let fail = FailureRouter::new(policy("{}"), metrics.clone(), None);
        let Err(e) = fail.route(failed()) else {
            panic!("tolerance: None stops the task")
        };
        assert_eq!(e.exit_code(), 65);
        assert_eq!(
            e.to_string(),
            "record orders/1@7 failed in VALUE_CONVERTER: value: expected JSON"
        );

        let source = FailedRecord {
            position: Some(SourceOffset::from([(
                "position".to_string(),
                "9".to_string(),
            )])),
            ..failed()
        };
        let Err(e) = fail.route_and_wait(source).await else {
            panic!("tolerance: None stops the task")
        };
        assert_eq!(
            e.to_string(),
            "record orders/1@7 failed in VALUE_CONVERTER: value: expected JSON (source offset {\"position\":\"9\"})"
        );
        fail.count(Stage::TaskPoll);
        assert!(metrics.encode().contains("stage=\"task_poll\"} 1"));
    }

    #[test]
    fn a_dead_letter_record_keeps_the_original_and_adds_the_context() {
        use rdkafka::message::Headers;
        let producer: FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .create()
            .expect("a producer is created without a broker");
        let queue = DeadLetterQueue {
            producer,
            settings: DlqSettings {
                topic: "dlq".into(),
                context_headers: true,
                replication_factor: None,
            },
            identity: TaskIdentity {
                connector: "orders".into(),
                task: 2,
            },
        };
        let raw = RawRecord {
            topic: "orders".into(),
            partition: Some(1),
            offset: Some(7),
            timestamp: Some(1_700_000_000_000),
            key: Some(b"k".to_vec()),
            value: Some(b"{not json".to_vec()),
            headers: vec![("trace".into(), Some(b"abc".to_vec()))],
        };
        let failed = failed();
        let rec = queue.record(&failed, &raw);
        assert_eq!(rec.topic, "dlq");
        assert_eq!(rec.key, Some(&b"k"[..]));
        assert_eq!(rec.payload, Some(&b"{not json"[..]));
        assert_eq!(rec.timestamp, Some(1_700_000_000_000));
        let headers = rec.headers.expect("headers");
        let names: Vec<&str> = headers.iter().map(|h| h.key).collect();
        assert_eq!(names[0], "trace", "the record's own headers come first");
        assert!(names.contains(&"__connect.errors.stage"));
        assert_eq!(names.len(), 1 + 10);
    }
}

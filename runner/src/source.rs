//! The source pipeline: source plugin → transforms → converters → Kafka, storing a source
//! offset only after Kafka acknowledged the record and every record before it.
//!
//! The producer is idempotent (`enable.idempotence=true`, `acks=all`), so librdkafka's
//! retries neither reorder nor duplicate records. Acknowledged offsets are stored every
//! 500 ms and on shutdown.
//!
//! Under `spec.delivery: ExactlyOnce` (KIP-618's semantics) the producer is transactional,
//! with a `transactional.id` per task: records go out in transactions of 500 ms, and each
//! transaction also writes the source offsets of its records to the offsets topic, so the
//! records and the position after them become visible to `read_committed` readers together
//! or not at all. Starting the producer fences an older task with the same id (a pod still
//! alive) and aborts its open transaction; the plugin hears about offsets
//! ([`SourceTask::committed`]) only after their transaction committed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_crds::connector::Delivery;
use futures::FutureExt;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tokio::sync::watch;

use crate::desired_state::DesiredState;
use crate::error_handling::{RecordCoordinates, RecordFailure, Stage};
use crate::failure::{FailedRecord, FailureRouter};
use crate::metrics::{PipelineStage, RunState, TaskMetrics};
use crate::plugins::{
    build_source, PluginError, SourceOffset, SourcePartition, SourcePoll, SourceTask,
};
use crate::processing::{transform_and_encode, Produced};
use crate::source_offsets::{KafkaOffsetStore, OffsetStore};
use crate::task_config::TaskConfig;
use crate::task_error::TaskError;

/// How often acknowledged source offsets are stored.
pub const OFFSET_FLUSH_INTERVAL: Duration = Duration::from_millis(500);
/// Most records sent to Kafka and not yet acknowledged.
pub const MAX_IN_FLIGHT: usize = 20_000;
/// How long starting, committing or aborting a transaction may take.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// A record handed to the producer: where it came from and its delivery.
struct InFlight {
    partition: Option<(SourcePartition, SourceOffset)>,
    delivery: Option<DeliveryFuture>,
    topic: String,
}

/// The producer properties of a source task.
pub fn producer_properties(cfg: &TaskConfig) -> BTreeMap<String, String> {
    let mut p = cfg.kafka.clone();
    for (k, v) in [("linger.ms", "5"), ("compression.type", "lz4")] {
        p.entry(k.to_string()).or_insert_with(|| v.to_string());
    }
    for (k, v) in [("enable.idempotence", "true"), ("acks", "all")] {
        p.insert(k.to_string(), v.to_string());
    }
    if cfg.spec.delivery == Delivery::ExactlyOnce {
        p.insert(
            "transactional.id".into(),
            ferry_crds::contract::transactional_id(&cfg.namespace, &cfg.name, cfg.share.index),
        );
        // Transactions last 500 ms; one left open by a killed task ends (aborted by the
        // broker) after this, and until then read_committed readers of the offsets topic,
        // other tasks starting among them, wait for it.
        p.entry("transaction.timeout.ms".into())
            .or_insert_with(|| "10000".into());
    }
    p
}

/// Whether Kafka refused a record for what the record itself is (too large, malformed), so
/// that it may be skipped under `tolerance: All`. Anything else is not the record's fault:
/// a missing topic or a denied write (`UnknownTopicOrPartition`, `TopicAuthorizationFailed`)
/// would refuse every record after it too, and skipping them would move the source's
/// offsets past data that never reached Kafka; those fail the task, which is restarted
/// with backoff and sends the records again once the topic or the ACL is fixed.
fn record_level(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidMessage
        )
    )
}

/// Whether a record Kafka refused may be skipped (routed to the failure handling) instead
/// of failing the task: only a refusal of the record itself, and never under
/// `ExactlyOnce`, where the transaction is aborted rather than committed without it.
fn may_skip(cfg: &TaskConfig, e: &KafkaError) -> bool {
    cfg.spec.delivery != Delivery::ExactlyOnce && record_level(e)
}

/// Acknowledged offsets not yet stored.
#[derive(Default)]
struct AckedOffsets {
    latest: BTreeMap<SourcePartition, SourceOffset>,
}

/// Runs a source task until shutdown, a fatal error, or the end of a bounded source.
pub async fn run(
    cfg: Arc<TaskConfig>,
    metrics: Arc<TaskMetrics>,
    mut desired: watch::Receiver<DesiredState>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), TaskError> {
    let Some(source_spec) = cfg.spec.source.as_ref() else {
        return Err(TaskError::WrongKind("source"));
    };
    let plugin_name = source_spec.plugin.name();
    let mut client = ferry_kafka::client_config(&producer_properties(&cfg));
    client.set_log_level(RDKafkaLogLevel::Warning);
    let producer: FutureProducer = client
        .create()
        .map_err(|e| TaskError::kafka("cannot create the producer", e))?;
    let exactly_once = cfg.spec.delivery == Delivery::ExactlyOnce;
    if exactly_once {
        // Before the offsets are read: this aborts what an earlier task left open.
        tokio::task::block_in_place(|| producer.init_transactions(TRANSACTION_TIMEOUT))
            .map_err(|e| TaskError::kafka("cannot start the transactional producer", e))?;
    }
    let store = KafkaOffsetStore::open(
        &cfg.kafka,
        ferry_crds::contract::DEFAULT_OFFSETS_TOPIC,
        &cfg.namespace,
        &cfg.name,
        exactly_once,
    )
    .await?;
    let mut task = build_source(&source_spec.plugin, cfg.share, &cfg.namespace, &cfg.name);
    let stored = store.load().await?;
    let mine: BTreeMap<_, _> = task
        .partitions()
        .into_iter()
        .filter_map(|p| stored.get(&p).map(|o| (p, o.clone())))
        .collect();
    let started = task.start(mine).await.map_err(TaskError::plugin_start);
    measure_slot_on_failure(&started, task.as_mut(), &metrics).await;
    started?;
    // Under exactly-once, offsets go out in the task's own transactions.
    // A source has no dead letter queue (validation refuses one).
    let failures = FailureRouter::new(cfg.errors.clone(), metrics.clone(), None);
    let transactions = exactly_once.then_some(Transactions {
        producer: &producer,
        store: &store,
        cfg: &cfg,
        metrics: &metrics,
        failures: &failures,
    });
    if exactly_once {
        begin_transaction(&producer)?;
    }
    metrics.set_ready(true);
    metrics.set_state(RunState::Running);
    tracing::info!(plugin = plugin_name, exactly_once, "source task started");

    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut acked = AckedOffsets::default();
    let mut last_flush = Instant::now();
    let mut paused = false;
    let mut finished = false;
    let mut outcome: Result<(), TaskError> = Ok(());
    let mut poll_attempt = 0u32;
    let mut poll_failing_since: Option<Instant> = None;

    'run: loop {
        if *shutdown.borrow() {
            break;
        }
        // Read the state itself, not the change flag: the paused wait below consumes it.
        let want_paused = *desired.borrow_and_update() == DesiredState::Paused;
        if want_paused != paused {
            paused = want_paused;
            metrics.set_state(if paused {
                RunState::Paused
            } else {
                RunState::Running
            });
            tracing::info!(
                paused,
                "production {}",
                if paused { "paused" } else { "resumed" }
            );
        }
        // Collect the deliveries that completed, in order.
        if let Err(e) =
            drain_deliveries(&cfg, &metrics, &failures, &mut in_flight, &mut acked, false).await
        {
            outcome = Err(e);
            break;
        }
        if last_flush.elapsed() >= OFFSET_FLUSH_INTERVAL {
            metrics.set_pending(in_flight.len() as u64);
            let flushed = if let Some(t) = &transactions {
                t.commit(&mut in_flight, &mut acked, task.as_mut(), true)
                    .await
            } else {
                flush_offsets(&store, &mut acked, &metrics, task.as_mut()).await
            };
            if let Err(e) = flushed {
                outcome = Err(e);
                break;
            }
            last_flush = Instant::now();
        }
        if finished {
            if in_flight.is_empty() {
                tracing::info!("the source has no more records; stopping");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        if paused {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => {}
                _ = desired.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            continue;
        }
        let poll = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            p = task.poll() => p,
        };
        let records = match poll {
            Ok(SourcePoll::Records(r)) => {
                poll_attempt = 0;
                poll_failing_since = None;
                r
            }
            Ok(SourcePoll::Idle) => continue,
            Ok(SourcePoll::Finished) => {
                finished = true;
                continue;
            }
            Err(e) => {
                failures.count(Stage::TaskPoll);
                let since = *poll_failing_since.get_or_insert_with(Instant::now);
                poll_attempt += 1;
                match (
                    &e,
                    cfg.errors.retry.next_delay(poll_attempt, since.elapsed()),
                ) {
                    (PluginError::Retriable(_), Some(delay)) => {
                        metrics.retry();
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "source poll failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = shutdown.wait_for(|s| *s) => {}
                        }
                        continue;
                    }
                    (PluginError::Config(c), _) => {
                        outcome = Err(TaskError::Config(vec![c.clone()]));
                        break;
                    }
                    _ => {
                        outcome = Err(TaskError::plugin(
                            format!("the {plugin_name} source failed"),
                            e,
                        ));
                        break;
                    }
                }
            }
        };
        metrics.records_in(PipelineStage::Read, records.len() as u64);
        for sr in records {
            let at = RecordCoordinates {
                topic: sr.record.topic.clone(),
                partition: sr.record.partition,
                offset: None,
            };
            let raw = match transform_and_encode(&cfg, &metrics, sr.record) {
                Produced::Raw(raw) => raw,
                Produced::Filtered => {
                    in_flight.push_back(InFlight {
                        partition: Some((sr.partition, sr.offset)),
                        delivery: None,
                        topic: at.topic,
                    });
                    continue;
                }
                Produced::Failed(failure) => {
                    let topic = at.topic.clone();
                    let failed = FailedRecord {
                        at,
                        position: Some(sr.offset.clone()),
                        failure,
                        raw: None,
                    };
                    if let Err(e) = failures.route_and_wait(failed).await {
                        outcome = Err(e);
                        break 'run;
                    }
                    in_flight.push_back(InFlight {
                        partition: Some((sr.partition, sr.offset)),
                        delivery: None,
                        topic,
                    });
                    continue;
                }
            };
            metrics.records_in(PipelineStage::Write, 1);
            let mut rec = raw.producer_record(&raw.topic, raw.kafka_headers());
            if let Some(p) = raw.partition {
                rec = rec.partition(p);
            }
            let mut rec = Some(rec);
            let delivery = loop {
                let Some(r) = rec.take() else { break None };
                match producer.send_result(r) {
                    Ok(d) => break Some(d),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        rec = Some(back);
                        // Wait for deliveries to make room.
                        if in_flight.iter().all(|f| f.delivery.is_none()) {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        } else if let Err(e) = drain_deliveries(
                            &cfg,
                            &metrics,
                            &failures,
                            &mut in_flight,
                            &mut acked,
                            true,
                        )
                        .await
                        {
                            outcome = Err(e);
                            break 'run;
                        }
                    }
                    Err((e, _)) => {
                        if may_skip(&cfg, &e) {
                            let failed = FailedRecord {
                                at: at.clone(),
                                position: Some(sr.offset.clone()),
                                failure: produce_failure(&e),
                                raw: None,
                            };
                            if let Err(e) = failures.route_and_wait(failed).await {
                                outcome = Err(e);
                                break 'run;
                            }
                            break None;
                        }
                        failures.count(Stage::KafkaProduce);
                        outcome = Err(TaskError::kafka(
                            format!("cannot send a record to {}", raw.topic),
                            e,
                        ));
                        break 'run;
                    }
                }
            };
            in_flight.push_back(InFlight {
                partition: Some((sr.partition, sr.offset)),
                delivery,
                topic: raw.topic.clone(),
            });
            while in_flight.len() >= MAX_IN_FLIGHT {
                if let Err(e) =
                    drain_deliveries(&cfg, &metrics, &failures, &mut in_flight, &mut acked, true)
                        .await
                {
                    outcome = Err(e);
                    break 'run;
                }
            }
        }
    }

    // Shut down: wait for what was sent, store the offsets Kafka acknowledged.
    metrics.set_ready(false);
    if let Some(t) = &transactions {
        // What was sent is consistent with its offsets whatever stopped the task: commit it.
        if let Err(e) = t
            .commit(&mut in_flight, &mut acked, task.as_mut(), false)
            .await
        {
            if outcome.is_ok() {
                outcome = Err(e);
            }
        }
        tracing::info!("source task stopped; its last transaction is finished");
        measure_slot_on_failure(&outcome, task.as_mut(), &metrics).await;
        return outcome;
    }
    let flushed = tokio::task::block_in_place(|| producer.flush(Duration::from_secs(30)));
    if let Err(e) = flushed {
        tracing::warn!(error = %e, "not every record was delivered before shutdown; they will be sent again");
    }
    while !in_flight.is_empty() {
        if let Err(e) =
            drain_deliveries(&cfg, &metrics, &failures, &mut in_flight, &mut acked, true).await
        {
            if outcome.is_ok() {
                outcome = Err(e);
            }
            break;
        }
    }
    if let Err(e) = flush_offsets(&store, &mut acked, &metrics, task.as_mut()).await {
        if outcome.is_ok() {
            outcome = Err(e);
        }
    }
    tracing::info!("source task stopped; offsets stored");
    measure_slot_on_failure(&outcome, task.as_mut(), &metrics).await;
    outcome
}

fn produce_failure(e: &KafkaError) -> RecordFailure {
    RecordFailure::from_error(Stage::KafkaProduce, "ferry.producer", "KafkaError", e)
}

/// Takes completed deliveries off the front of the queue, in order; `wait`: wait for at
/// least the first one. A record Kafka refused goes to `failures`.
async fn drain_deliveries(
    cfg: &TaskConfig,
    metrics: &TaskMetrics,
    failures: &FailureRouter,
    in_flight: &mut VecDeque<InFlight>,
    acked: &mut AckedOffsets,
    mut wait: bool,
) -> Result<(), TaskError> {
    let mut done = 0u64;
    while let Some(front) = in_flight.front_mut() {
        let result = match front.delivery.as_mut() {
            None => None,
            Some(d) if wait => Some(d.await),
            Some(d) => match d.now_or_never() {
                Some(r) => Some(r),
                None => break,
            },
        };
        wait = false;
        let Some(item) = in_flight.pop_front() else {
            break;
        };
        match result {
            None | Some(Ok(Ok(_))) => {
                if result.is_some() {
                    done += 1;
                }
            }
            Some(Ok(Err((e, _)))) => {
                if cfg.spec.delivery == Delivery::ExactlyOnce {
                    failures.count(Stage::KafkaProduce);
                    // The transaction cannot commit without it: nothing of it will count.
                    return Err(TaskError::kafka(
                        format!(
                            "a record to {} was not delivered, so its transaction is aborted \
                             (under ExactlyOnce a record Kafka refuses stops the task)",
                            item.topic
                        ),
                        e,
                    ));
                }
                if !may_skip(cfg, &e) {
                    failures.count(Stage::KafkaProduce);
                    return Err(TaskError::kafka(
                        format!("a record to {} was not delivered", item.topic),
                        e,
                    ));
                }
                let failed = FailedRecord {
                    at: RecordCoordinates {
                        topic: item.topic.clone(),
                        partition: None,
                        offset: None,
                    },
                    position: Some(
                        item.partition
                            .as_ref()
                            .map(|p| p.1.clone())
                            .unwrap_or_default(),
                    ),
                    failure: produce_failure(&e),
                    raw: None,
                };
                failures.route_and_wait(failed).await?;
            }
            Some(Err(source)) => {
                return Err(TaskError::DeliveryLost {
                    context: "the producer stopped before a delivery report".into(),
                    source,
                })
            }
        }
        if let Some((p, o)) = item.partition {
            acked.latest.insert(p, o);
        }
    }
    if done > 0 {
        metrics.records_out(done);
    }
    Ok(())
}

fn begin_transaction(producer: &FutureProducer) -> Result<(), TaskError> {
    producer
        .begin_transaction()
        .map_err(|e| TaskError::kafka("cannot begin a transaction", e))
}

/// The transactions of an exactly-once source task.
struct Transactions<'a> {
    producer: &'a FutureProducer,
    store: &'a KafkaOffsetStore,
    cfg: &'a TaskConfig,
    metrics: &'a TaskMetrics,
    failures: &'a FailureRouter,
}

impl Transactions<'_> {
    /// Writes the source offsets of every record sent in the open transaction to the
    /// offsets topic within it, commits it, tells the plugin, and (`again`) begins the next.
    /// On a failure the transaction is aborted: neither its records nor its offsets count,
    /// and the restarted task sends them again from the offsets of the last commit.
    async fn commit(
        &self,
        in_flight: &mut VecDeque<InFlight>,
        acked: &mut AckedOffsets,
        task: &mut dyn SourceTask,
        again: bool,
    ) -> Result<(), TaskError> {
        publish_source_figures(task, self.metrics);
        // Acknowledged records first, then those still in flight: the latest offset wins.
        let mut offsets = acked.latest.clone();
        for (p, o) in in_flight.iter().filter_map(|f| f.partition.as_ref()) {
            offsets.insert(p.clone(), o.clone());
        }
        if offsets.is_empty() {
            return Ok(());
        }
        let committed = self
            .write_offsets_and_commit(&offsets, in_flight, acked)
            .await;
        if let Err(e) = committed {
            if let Err(abort) =
                tokio::task::block_in_place(|| self.producer.abort_transaction(TRANSACTION_TIMEOUT))
            {
                tracing::warn!(error = %abort, "cannot abort the transaction; the next task's producer fences it");
            }
            return Err(e);
        }
        acked.latest.clear();
        self.metrics.committed();
        if let Err(e) = task.committed(&offsets).await {
            return Err(TaskError::plugin("confirming committed offsets", e));
        }
        if again {
            begin_transaction(self.producer)?;
        }
        Ok(())
    }

    async fn write_offsets_and_commit(
        &self,
        offsets: &BTreeMap<SourcePartition, SourceOffset>,
        in_flight: &mut VecDeque<InFlight>,
        acked: &mut AckedOffsets,
    ) -> Result<(), TaskError> {
        let mut stored = Vec::new();
        for (key, value) in self.store.records(offsets) {
            let record = FutureRecord::to(self.store.topic())
                .key(&key)
                .payload(&value);
            let delivery = self.producer.send_result(record).map_err(|(e, _)| {
                TaskError::kafka(
                    format!("cannot write source offsets to {}", self.store.topic()),
                    e,
                )
            })?;
            stored.push(delivery);
        }
        tokio::task::block_in_place(|| self.producer.commit_transaction(TRANSACTION_TIMEOUT))
            .map_err(|e| TaskError::kafka("cannot commit the transaction", e))?;
        // Committed: every delivery has its report.
        while !in_flight.is_empty() {
            drain_deliveries(
                self.cfg,
                self.metrics,
                self.failures,
                in_flight,
                acked,
                true,
            )
            .await?;
        }
        for delivery in stored {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    return Err(TaskError::kafka(
                        format!("source offsets were not written to {}", self.store.topic()),
                        e,
                    ))
                }
                Err(source) => {
                    return Err(TaskError::DeliveryLost {
                        context: "the producer stopped before a delivery report".into(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }
}

/// Publishes what the plugin knows of the external system's backlog and replication slot.
fn publish_source_figures(task: &dyn SourceTask, metrics: &TaskMetrics) {
    if let Some(bytes) = task.backlog_bytes() {
        metrics.set_source_backlog_bytes(bytes);
    }
    if let Some(report) = task.replication_slot() {
        metrics.set_replication_slot(report);
    }
}

/// Before a task stops on `outcome`'s error: measures its replication slot once more, for the
/// termination message (a slot nobody reads keeps WAL on the server).
async fn measure_slot_on_failure<T>(
    outcome: &Result<T, TaskError>,
    task: &mut dyn SourceTask,
    metrics: &TaskMetrics,
) {
    if outcome.is_err() {
        if let Some(report) = task.measure_replication_slot().await {
            metrics.set_replication_slot(report);
        }
    }
}

/// Stores the acknowledged offsets and tells the plugin they are stored.
async fn flush_offsets(
    store: &KafkaOffsetStore,
    acked: &mut AckedOffsets,
    metrics: &TaskMetrics,
    task: &mut dyn SourceTask,
) -> Result<(), TaskError> {
    publish_source_figures(task, metrics);
    if acked.latest.is_empty() {
        return Ok(());
    }
    store.store(&acked.latest).await?;
    if let Err(e) = task.committed(&acked.latest).await {
        return Err(TaskError::plugin("confirming stored offsets", e));
    }
    acked.latest.clear();
    metrics.committed();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::TaskShare;
    use crate::task_config::offline_config;

    #[test]
    fn producer_properties_force_idempotence() {
        let cfg = offline_config(
            r#"
apiVersion: ferry.rs/v1alpha1
kind: KafkaConnector
metadata: {name: lines}
spec:
  kafka: {bootstrapServers: "b:9092", config: {linger.ms: "50"}}
  source: {datagen: {topic: t}}
"#,
            TaskShare { index: 0, count: 1 },
        );
        let p = producer_properties(&cfg);
        assert_eq!(p["enable.idempotence"], "true");
        assert_eq!(p["acks"], "all");
        assert_eq!(p["linger.ms"], "50", "user tuning wins over defaults");
        assert_eq!(p["compression.type"], "lz4");
        assert!(!p.contains_key("transactional.id"));

        let cfg = offline_config(
            r#"
apiVersion: ferry.rs/v1alpha1
kind: KafkaConnector
metadata: {name: lines, namespace: shop}
spec:
  kafka: {bootstrapServers: "b:9092"}
  delivery: ExactlyOnce
  source: {datagen: {topic: t}}
"#,
            TaskShare { index: 2, count: 3 },
        );
        let p = producer_properties(&cfg);
        assert_eq!(
            p["transactional.id"], "ferry.shop.lines.2",
            "one id per task"
        );
        assert_eq!(p["transaction.timeout.ms"], "10000");
        assert_eq!(p["enable.idempotence"], "true");
    }

    #[test]
    fn only_a_refusal_of_the_record_itself_may_be_tolerated() {
        let refused = |code| KafkaError::MessageProduction(code);
        assert!(record_level(&refused(
            RDKafkaErrorCode::MessageSizeTooLarge
        )));
        assert!(record_level(&refused(RDKafkaErrorCode::InvalidRecord)));
        for not_the_record in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::ProducerFenced,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::TopicAuthorizationFailed,
        ] {
            assert!(
                !record_level(&refused(not_the_record)),
                "{not_the_record:?}"
            );
        }
    }

    #[test]
    fn nothing_is_skipped_under_exactly_once() {
        let config = |delivery: &str| {
            offline_config(
                &format!(
                    "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: s, namespace: n}}\nspec:\n  kafka: {{bootstrapServers: \"b:9092\"}}\n  delivery: {delivery}\n  errors: {{tolerance: All}}\n  source: {{datagen: {{topic: t}}}}\n"
                ),
                TaskShare { index: 0, count: 1 },
            )
        };
        let too_large = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert!(may_skip(&config("AtLeastOnce"), &too_large));
        assert!(!may_skip(&config("ExactlyOnce"), &too_large));
    }
}

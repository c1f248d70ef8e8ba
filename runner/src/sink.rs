//! The sink pipeline: Kafka → converters → transforms → sink plugin, with end-to-end
//! acknowledgement.
//!
//! One consumer group per connector (`ferry.<namespace>.<connector>`), static membership per
//! task (`group.instance.id` `<connector>-task-<i>`), cooperative rebalancing, and a bounded
//! prefetch. Records are written in batches by a separate writer so that reading and writing
//! overlap: a batch goes to the writer as soon as the writer is idle, or when it is full, so
//! an idle sink gets each record without delay and a busy one gets larger batches. An offset
//! is committed only after every record up to it is durable downstream (written, filtered
//! out, or in the dead letter queue). Offsets are committed every 500 ms, on revocation and
//! on shutdown.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;

use crate::desired_state::DesiredState;
use crate::error_handling::{RecordCoordinates, RecordFailure, Stage, TaskIdentity};
use crate::failure::{DeadLetterQueue, FailedRecord, FailureRouter, Routed};
use crate::metrics::{PipelineStage, RunState, TaskMetrics};
use crate::offset_tracker::{OffsetTracker, TopicPartition};
use crate::plugins::database_sink::positions::OffsetsScope;
use crate::plugins::{build_sink, PluginError, SinkTask};
use crate::processing::{decode_and_transform, Processed, StageTally};
use crate::record::{RawRecord, Record};
use crate::task_config::TaskConfig;
use crate::task_error::TaskError;
use ferry_crds::connector::Delivery;
use ferry_kafka::client_config as to_client_config;

/// Most records in one batch handed to the sink plugin.
pub const MAX_BATCH_RECORDS: usize = 2048;
/// How often acknowledged offsets are committed.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(500);
/// Batches queued for the writer (besides the one being written).
const WRITER_QUEUE: usize = 2;

fn lock(tracker: &Mutex<OffsetTracker>) -> MutexGuard<'_, OffsetTracker> {
    // A poisoned lock only means another thread panicked while holding it; the tracker is
    // still consistent (every method leaves it valid).
    tracker.lock().unwrap_or_else(|p| p.into_inner())
}

/// The consumer's callbacks: commit on revocation, keep paused partitions paused, lag.
struct SinkContext {
    tracker: Arc<Mutex<OffsetTracker>>,
    metrics: Arc<TaskMetrics>,
    paused: Arc<AtomicBool>,
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
            let offsets = {
                let mut t = lock(&self.tracker);
                let o = t.take_committable_for(&tps);
                t.revoke(&tps);
                o
            };
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

/// Consumed records on their way to the sink plugin, with where each came from. The
/// records are kept apart from their coordinates so that the writer hands them to the
/// plugin as they are.
struct Batch {
    /// The records, in consumption order.
    records: Vec<Record>,
    /// Partition and offset of each record, in the same order.
    origins: Vec<(TopicPartition, i64)>,
}

impl Batch {
    fn new() -> Self {
        Batch {
            records: Vec::with_capacity(MAX_BATCH_RECORDS),
            origins: Vec::with_capacity(MAX_BATCH_RECORDS),
        }
    }

    fn push(&mut self, origin: TopicPartition, offset: i64, record: Record) {
        self.records.push(record);
        self.origins.push((origin, offset));
    }

    fn len(&self) -> usize {
        self.records.len()
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Batches between the read loop and the writer. A batch is handed over when it is full or
/// when the writer has nothing left to write; while the writer is busy, records gather into
/// the next batch. Written batches come back empty, so their buffers (2,048 records) are
/// allocated once, not once per batch.
struct Handoff {
    /// Batches handed over and not yet written.
    in_flight: AtomicUsize,
    /// Signalled when the writer has written everything handed to it.
    idle: Notify,
    /// Written batches, emptied, to be filled again.
    spare: Mutex<Vec<Batch>>,
}

impl Handoff {
    fn new() -> Self {
        Handoff {
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            spare: Mutex::new(Vec::new()),
        }
    }

    /// Whether the writer has written every batch handed to it.
    fn writer_idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }

    /// Sends `batch` to the writer, leaving an empty one in its place; false when the writer
    /// has stopped.
    async fn hand_over(&self, batch: &mut Batch, to: &mpsc::Sender<Batch>) -> bool {
        let empty = self
            .spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_else(Batch::new);
        let full = std::mem::replace(batch, empty);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        to.send(full).await.is_ok()
    }

    /// The writer is done with `batch`: keeps its buffers, and wakes the read loop when
    /// nothing else is waiting to be written.
    fn written(&self, mut batch: Batch) {
        batch.records.clear();
        batch.origins.clear();
        {
            let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
            // One being filled, the queued ones and the one being written.
            if spare.len() <= WRITER_QUEUE {
                spare.push(batch);
            }
        }
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_one();
        }
    }
}

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

/// The message's headers, copied.
fn headers_of(m: &BorrowedMessage<'_>) -> Vec<(String, Option<Vec<u8>>)> {
    m.headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default()
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

/// What the read loop does with each consumed record.
struct RecordHandler {
    cfg: Arc<TaskConfig>,
    metrics: Arc<TaskMetrics>,
    tracker: Arc<Mutex<OffsetTracker>>,
    failures: FailureRouter,
    /// Records on their way to the dead letter queue; each acknowledges its offset once
    /// Kafka has it.
    dlq_deliveries: JoinSet<Result<(), TaskError>>,
    batch: Batch,
    topics: Vec<Arc<str>>,
    /// Whether records are decoded with their headers (see [`headers_needed`]).
    read_headers: bool,
    /// Stage counts of the records handled since the last [`RecordHandler::flush_counts`].
    tally: StageTally,
}

impl RecordHandler {
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
    fn flush_counts(&mut self) {
        self.tally.flush(&self.metrics);
    }

    /// Converts and transforms one record into the batch, or handles its failure.
    fn on_message(&mut self, m: &BorrowedMessage<'_>) -> Result<(), TaskError> {
        let topic = m.topic();
        let origin = TopicPartition {
            topic: self.topic_name(topic),
            partition: m.partition(),
        };
        let offset = m.offset();
        lock(&self.tracker).consumed(&origin, offset);
        self.tally.read += 1;
        let raw = raw_of(m, topic, self.read_headers);
        match decode_and_transform(&self.cfg, &self.metrics, &mut self.tally, raw) {
            Processed::Record(record) => {
                self.batch.push(origin, offset, record);
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

/// What the writer does with a record the sink plugin refused
/// ([`crate::plugins::PluginError::Record`]): the same as with a record that failed in a
/// converter or transform (fail the task naming it, skip it, or send it to the dead letter
/// queue). The dead letter queue gets the record as the plugin saw it (after the
/// transforms), written back with the connector's converters.
struct RejectedRecords {
    cfg: Arc<TaskConfig>,
    failures: FailureRouter,
    plugin: &'static str,
}

impl RejectedRecords {
    /// The failure of `record` (from `tp` at `offset`), refused with `message`.
    fn failed(
        &self,
        record: &Record,
        tp: &TopicPartition,
        offset: i64,
        message: String,
    ) -> FailedRecord {
        FailedRecord {
            at: RecordCoordinates {
                topic: tp.topic.to_string(),
                partition: Some(tp.partition),
                offset: Some(offset),
            },
            position: None,
            failure: RecordFailure {
                stage: Stage::TaskPut,
                class_name: format!("ferry.sink.{}", self.plugin),
                error_kind: "RecordRejected".to_string(),
                trace: message.clone(),
                message,
            },
            raw: self.cfg.converters.encode(record).ok(),
        }
    }
}

/// Writes batches with retries and acknowledges their offsets.
#[allow(clippy::too_many_arguments)]
async fn writer(
    mut sink: Box<dyn SinkTask>,
    mut batches: mpsc::Receiver<Batch>,
    tracker: Arc<Mutex<OffsetTracker>>,
    metrics: Arc<TaskMetrics>,
    retry: crate::error_handling::RetryPolicy,
    plugin: &'static str,
    rejected: RejectedRecords,
    handoff: Arc<Handoff>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), TaskError> {
    while let Some(mut batch) = batches.recv().await {
        let Batch {
            records,
            origins: coords,
        } = &mut batch;
        metrics.records_in(PipelineStage::Write, records.len() as u64);
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            match sink.write_from(records, coords).await {
                Ok(()) => break,
                Err(PluginError::Record { index, message }) if index < records.len() => {
                    // Nothing of the batch was written: handle the record, then write the
                    // others again.
                    let (tp, o) = coords[index].clone();
                    let failed = rejected.failed(&records[index], &tp, o, message);
                    rejected.failures.route_and_wait(failed).await?;
                    records.remove(index);
                    coords.remove(index);
                    lock(&tracker).acknowledged(&tp, o);
                    if records.is_empty() {
                        break;
                    }
                }
                Err(e) => {
                    attempt += 1;
                    let delay = if e.is_retriable() {
                        retry.next_delay(attempt, started.elapsed())
                    } else {
                        None
                    };
                    let Some(delay) = delay else {
                        rejected.failures.count(Stage::TaskPut);
                        let (tp, o) = &coords[0];
                        return Err(TaskError::plugin(
                            format!(
                                "the {plugin} sink failed writing {} records from {}/{}@{}",
                                records.len(),
                                tp.topic,
                                tp.partition,
                                o
                            ),
                            e,
                        ));
                    };
                    metrics.retry();
                    tracing::warn!(error = %e, attempt, retry_in_ms = delay.as_millis() as u64, "sink write failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.wait_for(|s| *s) => {
                            // Not written, so not committed: read again after the restart.
                            tracing::warn!("shutdown while retrying a write; its records will be read again");
                            return Ok(());
                        }
                    }
                }
            }
        }
        metrics.batch_written(started.elapsed());
        metrics.records_out(records.len() as u64);
        lock(&tracker).acknowledged_all(coords);
        handoff.written(batch);
    }
    Ok(())
}

/// Runs a sink task until shutdown or a fatal error.
pub async fn run(
    cfg: Arc<TaskConfig>,
    metrics: Arc<TaskMetrics>,
    mut desired: watch::Receiver<DesiredState>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), TaskError> {
    let Some(sink_spec) = cfg.spec.sink.as_ref() else {
        return Err(TaskError::WrongKind("sink"));
    };
    let plugin_name = sink_spec.plugin.name();
    let tracker = Arc::new(Mutex::new(OffsetTracker::new()));
    let paused = Arc::new(AtomicBool::new(false));
    let context = SinkContext {
        tracker: tracker.clone(),
        metrics: metrics.clone(),
        paused: paused.clone(),
    };
    let mut client = to_client_config(&consumer_properties(&cfg));
    client.set_log_level(RDKafkaLogLevel::Warning);
    let consumer: StreamConsumer<SinkContext> = client
        .create_with_context(context)
        .map_err(|e| TaskError::kafka("cannot create the consumer", e))?;

    let identity = TaskIdentity {
        connector: cfg.name.clone(),
        task: cfg.share.index,
    };
    let dead_letters = match &cfg.errors.dead_letter_queue {
        Some(d) => Some(DeadLetterQueue::open(&cfg.kafka, d, identity).await?),
        None => None,
    };
    let failures = FailureRouter::new(cfg.errors.clone(), metrics.clone(), dead_letters);

    let exactly_once = (cfg.spec.delivery == Delivery::ExactlyOnce).then(|| OffsetsScope {
        connector: format!("{}/{}", cfg.namespace, cfg.name),
        reset_id: cfg
            .spec
            .offsets
            .as_ref()
            .and_then(|o| o.reset.as_ref())
            .map(|r| r.id.clone())
            .unwrap_or_default(),
    });
    let sink = tokio::task::block_in_place(|| build_sink(&sink_spec.plugin, exactly_once))
        .map_err(TaskError::plugin_start)?;
    let read_headers = headers_needed(&cfg, sink.reads_headers());
    match &sink_spec.topics_regex {
        Some(re) => consumer.subscribe(&[format!("^({re})$").as_str()]),
        None => {
            let topics: Vec<&str> = sink_spec.topics.iter().map(String::as_str).collect();
            consumer.subscribe(&topics)
        }
    }
    .map_err(|e| {
        TaskError::kafka(
            format!(
                "cannot subscribe to {}",
                sink_spec
                    .topics_regex
                    .clone()
                    .unwrap_or_else(|| sink_spec.topics.join(", "))
            ),
            e,
        )
    })?;
    wait_for_kafka(&consumer, &cfg.spec.kafka.bootstrap_servers, &mut shutdown).await?;
    metrics.set_ready(true);
    metrics.set_state(RunState::Running);
    tracing::info!(
        group = %ferry_crds::contract::consumer_group(&cfg.namespace, &cfg.name),
        plugin = plugin_name,
        "sink task started"
    );

    let (batch_tx, batch_rx) = mpsc::channel::<Batch>(WRITER_QUEUE);
    let handoff = Arc::new(Handoff::new());
    let rejected = RejectedRecords {
        cfg: cfg.clone(),
        failures: failures.clone(),
        plugin: plugin_name,
    };
    let mut writer_task = tokio::spawn(writer(
        sink,
        batch_rx,
        tracker.clone(),
        metrics.clone(),
        cfg.errors.retry,
        plugin_name,
        rejected,
        handoff.clone(),
        shutdown.clone(),
    ));
    let mut handler = RecordHandler {
        cfg: cfg.clone(),
        metrics: metrics.clone(),
        tracker: tracker.clone(),
        failures,
        dlq_deliveries: JoinSet::new(),
        batch: Batch::new(),
        topics: Vec::new(),
        read_headers,
        tally: StageTally::default(),
    };
    let mut commit_tick = tokio::time::interval(COMMIT_INTERVAL);
    commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut outcome: Result<(), TaskError> = Ok(());
    let mut writer_done = false;

    apply_desired(*desired.borrow(), &consumer, &paused, &metrics);
    // One stream for the whole run: `recv()` would register and unregister a waker per record.
    let mut messages = consumer.stream();
    'run: loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|s| *s) => break,
            r = &mut writer_task => {
                writer_done = true;
                outcome = r.unwrap_or_else(|e| Err(TaskError::WriterStopped(Some(e))));
                if outcome.is_ok() {
                    outcome = Err(TaskError::WriterStopped(None));
                }
                break;
            }
            Some(r) = handler.dlq_deliveries.join_next(), if !handler.dlq_deliveries.is_empty() => {
                if let Ok(Err(e)) = r {
                    outcome = Err(e);
                    break;
                }
            }
            _ = desired.changed() => {
                let d = *desired.borrow_and_update();
                if d == DesiredState::Paused && !handler.batch.is_empty()
                    && !handoff.hand_over(&mut handler.batch, &batch_tx).await {
                    continue;
                }
                apply_desired(d, &consumer, &paused, &metrics);
            }
            _ = commit_tick.tick() => commit(&consumer, &tracker, &metrics),
            _ = handoff.idle.notified(), if !handler.batch.is_empty() => {
                if handoff.writer_idle() && !handoff.hand_over(&mut handler.batch, &batch_tx).await {
                    continue;
                }
            }
            Some(m) = messages.next() => {
                // Take what is already fetched without going through the select again.
                let mut next = Some(m);
                let mut taken = 0;
                while let Some(m) = next.take() {
                    match m {
                        Ok(m) => {
                            if let Err(e) = handler.on_message(&m) {
                                handler.flush_counts();
                                outcome = Err(e);
                                break 'run;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "Kafka consumer error"),
                    }
                    taken += 1;
                    if handler.batch.len() >= MAX_BATCH_RECORDS {
                        handler.flush_counts();
                        if !handoff.hand_over(&mut handler.batch, &batch_tx).await {
                            continue 'run;
                        }
                    }
                    if taken < MAX_BATCH_RECORDS {
                        next = messages.next().now_or_never().flatten();
                    }
                }
                handler.flush_counts();
                // Nothing more fetched for now: an idle writer gets what there is.
                if !handler.batch.is_empty() && handoff.writer_idle()
                    && !handoff.hand_over(&mut handler.batch, &batch_tx).await {
                    continue;
                }
            }
        }
    }

    // Drain: hand over what was read, let the writer and the dead letter queue finish, and
    // commit everything that is durable.
    metrics.set_ready(false);
    if !handler.batch.is_empty() && !writer_done {
        handoff.hand_over(&mut handler.batch, &batch_tx).await;
    }
    drop(batch_tx);
    if !writer_done {
        match writer_task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                if outcome.is_ok() {
                    outcome = Err(e);
                }
            }
            Err(e) => {
                if outcome.is_ok() {
                    outcome = Err(TaskError::WriterStopped(Some(e)));
                }
            }
        }
    }
    while let Some(r) = handler.dlq_deliveries.join_next().await {
        if let Ok(Err(e)) = r {
            if outcome.is_ok() {
                outcome = Err(e);
            }
        }
    }
    commit(&consumer, &tracker, &metrics);
    tracing::info!("sink task stopped; offsets committed");
    outcome
}

fn apply_desired(
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
/// that `last_commit_timestamp_seconds` only moves on a commit the broker accepted.
fn commit(
    consumer: &StreamConsumer<SinkContext>,
    tracker: &Mutex<OffsetTracker>,
    metrics: &TaskMetrics,
) {
    let offsets = {
        let mut t = lock(tracker);
        metrics.set_pending(t.in_flight() as u64);
        t.take_committable()
    };
    if offsets.is_empty() {
        return;
    }
    let tpl = to_tpl(&offsets);
    match tokio::task::block_in_place(|| consumer.commit(&tpl, CommitMode::Sync)) {
        Ok(()) => metrics.committed(),
        Err(e) => {
            tracing::warn!(error = %e, "offset commit failed; it is tried again at the next commit interval");
            lock(tracker).retry_commit(&offsets);
        }
    }
}

/// Waits until the brokers answer (metadata), or fails after a minute.
async fn wait_for_kafka(
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

    fn sink_config(extra: &str) -> TaskConfig {
        offline_config(
            &format!(
                "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: o, namespace: s}}\nspec:\n  kafka: {{bootstrapServers: \"b:9092\"}}\n  sink: {{topics: [o], discard: {{}}}}\n{extra}"
            ),
            TaskShare { index: 0, count: 1 },
        )
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

    #[tokio::test]
    async fn the_writer_gets_a_batch_when_idle_and_returns_its_buffers() {
        let handoff = Handoff::new();
        let (tx, mut rx) = mpsc::channel::<Batch>(WRITER_QUEUE);
        let tp = TopicPartition {
            topic: Arc::from("t"),
            partition: 0,
        };
        let mut filling = Batch::new();
        filling.push(tp.clone(), 7, Record::new("t"));
        assert!(handoff.writer_idle());
        assert!(handoff.hand_over(&mut filling, &tx).await);
        assert!(
            filling.is_empty(),
            "an empty batch takes the place of the one handed over"
        );
        assert!(!handoff.writer_idle(), "one batch is being written");

        let written = rx.recv().await.expect("the batch reaches the writer");
        assert_eq!(written.origins, vec![(tp, 7)]);
        let buffer = written.records.as_ptr();
        handoff.written(written);
        assert!(handoff.writer_idle());
        // The read loop waiting for an idle writer is woken, also when it starts waiting later.
        tokio::time::timeout(Duration::from_secs(1), handoff.idle.notified())
            .await
            .expect("the idle writer is announced");

        // The next batch handed over leaves the written one's buffers to be filled.
        assert!(handoff.hand_over(&mut filling, &tx).await);
        assert!(filling.is_empty());
        assert_eq!(filling.records.as_ptr(), buffer, "the buffer is reused");
        assert!(filling.records.capacity() >= MAX_BATCH_RECORDS);
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

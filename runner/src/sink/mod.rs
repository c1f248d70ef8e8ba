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

mod consumer;
mod fence;
mod handoff;
mod reader;
mod writer;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};

use crate::desired_state::DesiredState;
use crate::error_handling::TaskIdentity;
use crate::failure::{DeadLetterQueue, FailureRouter};
use crate::metrics::{RunState, TaskMetrics};
use crate::offset_tracker::OffsetTracker;
use crate::task_config::TaskConfig;
use crate::task_error::TaskError;
use consumer::{apply_desired, commit, wait_for_kafka, SinkContext};
use fence::WriteFence;
use handoff::{Batch, Handoff, WRITER_QUEUE};
use reader::RecordHandler;
use writer::{open_sink, Writer};

pub use consumer::consumer_properties;

/// Most records in one batch handed to the sink plugin.
pub const MAX_BATCH_RECORDS: usize = 2048;
/// Most bytes (keys and values as read from Kafka) in one batch: with the batches queued for
/// the writer, this bounds a task's memory whatever its records' sizes.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// How often acknowledged offsets are committed.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(500);

fn lock<T>(shared: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it; what the sink
    // shares stays consistent (every method of the tracker and the fence leaves it valid).
    shared.lock().unwrap_or_else(|p| p.into_inner())
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
    let fence = Arc::new(WriteFence::new(tracker.clone()));
    let context = SinkContext::new(fence.clone(), metrics.clone(), paused.clone());
    let consumer = consumer::create(&cfg, context)?;
    let identity = TaskIdentity {
        connector: cfg.name.clone(),
        task: cfg.share.index,
    };
    let dead_letters = match &cfg.errors.dead_letter_queue {
        Some(d) => Some(DeadLetterQueue::open(&cfg.kafka, d, identity).await?),
        None => None,
    };
    let failures = FailureRouter::new(cfg.errors.clone(), metrics.clone(), dead_letters);
    let sink = open_sink(&cfg, sink_spec)?;
    let plugin_reads_headers = sink.reads_headers();
    consumer::subscribe(&consumer, sink_spec)?;
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
    let writer = Writer::new(
        sink,
        cfg.clone(),
        plugin_name,
        failures.clone(),
        fence,
        metrics.clone(),
        handoff.clone(),
    );
    let mut writer_task = tokio::spawn(writer.run(batch_rx, shutdown.clone()));
    let mut handler = RecordHandler::new(
        cfg.clone(),
        metrics.clone(),
        tracker.clone(),
        failures,
        plugin_reads_headers,
    );
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
            _ = commit_tick.tick() => {
                if let Err(e) = commit(&consumer, &tracker, &metrics) {
                    outcome = Err(e);
                    break;
                }
            }
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
                        Err(e) => {
                            if let Err(fatal) = consumer::fatal(&consumer) {
                                outcome = Err(fatal);
                                break 'run;
                            }
                            tracing::warn!(error = %e, "Kafka consumer error");
                        }
                    }
                    taken += 1;
                    if handler.batch.is_full() {
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
    if let Err(e) = commit(&consumer, &tracker, &metrics) {
        if outcome.is_ok() {
            outcome = Err(e);
        }
    }
    tracing::info!("sink task stopped; offsets committed");
    outcome
}

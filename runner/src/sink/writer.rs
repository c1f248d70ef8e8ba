//! The sink's writer: it writes the batches of the read loop to the sink plugin with
//! retries, handles the records the plugin refuses, and acknowledges what is written.

use std::sync::Arc;
use std::time::Instant;

use ferry_crds::connector::{Delivery, SinkSpec};
use tokio::sync::{mpsc, watch};

use super::fence::WriteFence;
use super::handoff::{Batch, Handoff};
use super::lock;
use crate::error_handling::{RecordCoordinates, RecordFailure, Stage};
use crate::failure::{FailedRecord, FailureRouter};
use crate::metrics::{PipelineStage, TaskMetrics};
use crate::offset_tracker::TopicPartition;
use crate::plugins::database_sink::positions::OffsetsScope;
use crate::plugins::{build_sink, PluginError, SinkTask};
use crate::record::Record;
use crate::task_config::TaskConfig;
use crate::task_error::TaskError;

/// Opens the sink plugin of `spec` (under `spec.delivery: ExactlyOnce` it keeps its
/// positions in the external system, scoped to the connector and its last offsets reset).
pub(super) fn open_sink(cfg: &TaskConfig, spec: &SinkSpec) -> Result<Box<dyn SinkTask>, TaskError> {
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
    tokio::task::block_in_place(|| build_sink(&spec.plugin, exactly_once))
        .map_err(TaskError::plugin_start)
}

/// Writes batches with retries and acknowledges their offsets.
pub(super) struct Writer {
    sink: Box<dyn SinkTask>,
    cfg: Arc<TaskConfig>,
    /// The sink plugin's name, for messages.
    plugin: &'static str,
    failures: FailureRouter,
    /// Guards the writes against revocations, around the task's offsets.
    fence: Arc<WriteFence>,
    metrics: Arc<TaskMetrics>,
    handoff: Arc<Handoff>,
}

impl Writer {
    /// The writer of `sink` (the plugin `plugin`), sending the records it refuses to
    /// `failures` and returning written batches to `handoff`.
    pub(super) fn new(
        sink: Box<dyn SinkTask>,
        cfg: Arc<TaskConfig>,
        plugin: &'static str,
        failures: FailureRouter,
        fence: Arc<WriteFence>,
        metrics: Arc<TaskMetrics>,
        handoff: Arc<Handoff>,
    ) -> Self {
        Self {
            sink,
            cfg,
            plugin,
            failures,
            fence,
            metrics,
            handoff,
        }
    }

    /// Writes the batches of `batches` until the read loop closes it, a write fails for
    /// good, or (while retrying) `shutdown`.
    pub(super) async fn run(
        mut self,
        mut batches: mpsc::Receiver<Batch>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), TaskError> {
        let retry = self.cfg.errors.retry;
        let fence = self.fence.clone();
        while let Some(mut batch) = batches.recv().await {
            self.metrics
                .records_in(PipelineStage::Write, batch.len() as u64);
            let started = Instant::now();
            let mut attempt = 0;
            loop {
                // Every attempt first leaves out what was revoked since it was read (see
                // the fence), so that a retry after a rebalance writes only what is ours.
                let (write, revoked) = fence.begin(&mut batch);
                if revoked > 0 {
                    tracing::info!(
                        records = revoked,
                        "records of revoked partitions left out of the write; their new owner reads them again"
                    );
                }
                if batch.is_empty() {
                    break;
                }
                match self.sink.write_from(&batch.records, &batch.origins).await {
                    Ok(()) => {
                        lock(fence.tracker()).acknowledged_all(&batch.origins);
                        drop(write);
                        break;
                    }
                    Err(PluginError::Record { index, message }) if index < batch.len() => {
                        drop(write);
                        // Nothing of the batch was written: handle the record, then write the
                        // others again.
                        let (tp, o) = batch.origins[index].clone();
                        let failed = self.rejected(&batch.records[index], &tp, o, message);
                        self.failures.route_and_wait(failed).await?;
                        batch.remove(index);
                        lock(fence.tracker()).acknowledged(&tp, o);
                    }
                    Err(e) => {
                        drop(write);
                        attempt += 1;
                        let delay = if e.is_retriable() {
                            retry.next_delay(attempt, started.elapsed())
                        } else {
                            None
                        };
                        let Some(delay) = delay else {
                            self.failures.count(Stage::TaskPut);
                            let (tp, o) = &batch.origins[0];
                            return Err(TaskError::plugin(
                                format!(
                                    "the {} sink failed writing {} records from {}/{}@{}",
                                    self.plugin,
                                    batch.len(),
                                    tp.topic,
                                    tp.partition,
                                    o
                                ),
                                e,
                            ));
                        };
                        self.metrics.retry();
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
            self.metrics.batch_written(started.elapsed());
            self.metrics.records_out(batch.len() as u64);
            self.handoff.written(batch);
        }
        Ok(())
    }

    /// A record the sink plugin refused ([`PluginError::Record`]), from `tp` at `offset`,
    /// with `message`. It goes the way of a record that failed in a converter or transform
    /// (fail the task naming it, skip it, or send it to the dead letter queue); the dead
    /// letter queue gets the record as the plugin saw it (after the transforms), written
    /// back with the connector's converters.
    fn rejected(
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

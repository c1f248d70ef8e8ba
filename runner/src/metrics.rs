//! The task's Prometheus metrics (`ferry_task_*`, each with the `connector`, `namespace` and
//! `task` labels) and the progress numbers the admin server reports.

use std::borrow::Cow;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use ferry_crds::contract::ReplicationSlotReport;

use crate::error_handling::Stage;

/// The pipeline stages counted by `ferry_task_records_in_total{stage}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipelineStage {
    /// Read from the input (Kafka for sinks, the external system for sources).
    Read,
    /// Entered the converters.
    Convert,
    /// Entered the transforms.
    Transform,
    /// Handed to the output (the sink plugin, or the Kafka producer).
    Write,
}

impl PipelineStage {
    fn label(self) -> &'static str {
        match self {
            PipelineStage::Read => "read",
            PipelineStage::Convert => "convert",
            PipelineStage::Transform => "transform",
            PipelineStage::Write => "write",
        }
    }
}

const ERROR_STAGES: [Stage; 8] = [
    Stage::KeyConverter,
    Stage::ValueConverter,
    Stage::HeaderConverter,
    Stage::Transformation,
    Stage::TaskPut,
    Stage::TaskPoll,
    Stage::KafkaProduce,
    Stage::KafkaConsume,
];

/// The run state a task reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Connecting, loading offsets.
    Starting = 0,
    /// Moving records.
    Running = 1,
    /// Paused by the connector's `state`.
    Paused = 2,
}

/// Metrics and progress of one task, shared by the pipeline and the admin server.
#[derive(Debug)]
pub struct TaskMetrics {
    registry: Registry,
    records_in: [Counter; 4],
    records_out: Counter,
    records_filtered: Counter,
    errors: Family<Vec<(String, String)>, Counter>,
    retries: Counter,
    dlq_records: Counter,
    batch_duration: Histogram,
    lag: Gauge,
    source_backlog_bytes: Gauge,
    retained_wal_bytes: Family<Vec<(String, String)>, Gauge>,
    replication_slot: Mutex<Option<ReplicationSlotReport>>,
    last_commit: Gauge<f64, AtomicU64>,
    state: AtomicU8,
    ready: AtomicU8,
    lag_known: AtomicU8,
    last_commit_unix_ms: AtomicI64,
    started: Instant,
    last_progress_ms: AtomicU64,
    pending: AtomicU64,
}

impl TaskMetrics {
    /// Registers the metrics with the task's identity labels.
    pub fn new(namespace: &str, connector: &str, task: u32) -> Arc<Self> {
        let labels = [
            (
                Cow::Borrowed("connector"),
                Cow::Owned(connector.to_string()),
            ),
            (
                Cow::Borrowed("namespace"),
                Cow::Owned(namespace.to_string()),
            ),
            (Cow::Borrowed("task"), Cow::Owned(task.to_string())),
        ];
        let mut registry = Registry::with_prefix_and_labels("ferry_task", labels.into_iter());
        let records_in_family = Family::<Vec<(String, String)>, Counter>::default();
        let records_in = [
            PipelineStage::Read,
            PipelineStage::Convert,
            PipelineStage::Transform,
            PipelineStage::Write,
        ]
        .map(|s| {
            records_in_family
                .get_or_create(&vec![("stage".to_string(), s.label().to_string())])
                .clone()
        });
        registry.register(
            "records_in",
            "Records that entered each pipeline stage (read, convert, transform, write)",
            records_in_family,
        );
        let records_out = Counter::default();
        registry.register(
            "records_out",
            "Records durably written to the output (sinks: acknowledged by the external system; sources: acknowledged by Kafka)",
            records_out.clone(),
        );
        let records_filtered = Counter::default();
        registry.register(
            "records_filtered",
            "Records dropped by a filter transform",
            records_filtered.clone(),
        );
        let errors = Family::<Vec<(String, String)>, Counter>::default();
        for stage in ERROR_STAGES {
            // Pre-create the series so that dashboards see zeros, not gaps.
            let _ = errors.get_or_create(&vec![(
                "stage".to_string(),
                stage.metric_label().to_string(),
            )]);
        }
        registry.register(
            "errors",
            "Records that failed, by the stage they failed in (after retries)",
            errors.clone(),
        );
        let retries = Counter::default();
        registry.register("retries", "Retries of retriable failures", retries.clone());
        let dlq_records = Counter::default();
        registry.register(
            "dlq_records",
            "Records written to the dead letter queue",
            dlq_records.clone(),
        );
        let batch_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "batch_duration_seconds",
            "Time to write one batch to the output, retries included",
            batch_duration.clone(),
        );
        let lag = Gauge::default();
        registry.register(
            "lag",
            "Records waiting in the input (sinks: consumer lag of this task's partitions)",
            lag.clone(),
        );
        let source_backlog_bytes = Gauge::default();
        registry.register(
            "source_backlog_bytes",
            "Bytes of change log the source system keeps for this task and it has not confirmed \
             (postgresCdc: WAL between the server's position and the slot's confirmed position)",
            source_backlog_bytes.clone(),
        );
        let retained_wal_bytes = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "replication_slot_retained_wal_bytes",
            "Bytes of WAL PostgreSQL keeps for this task's replication slot (postgresCdc: \
             between the server's position and the slot's restart_lsn), as last measured",
            retained_wal_bytes.clone(),
        );
        let last_commit = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_commit_timestamp_seconds",
            "Unix time of the last successful commit of offsets",
            last_commit.clone(),
        );
        Arc::new(Self {
            registry,
            records_in,
            records_out,
            records_filtered,
            errors,
            retries,
            dlq_records,
            batch_duration,
            lag,
            source_backlog_bytes,
            retained_wal_bytes,
            replication_slot: Mutex::new(None),
            last_commit,
            state: AtomicU8::new(RunState::Starting as u8),
            ready: AtomicU8::new(0),
            lag_known: AtomicU8::new(0),
            last_commit_unix_ms: AtomicI64::new(0),
            started: Instant::now(),
            last_progress_ms: AtomicU64::new(0),
            pending: AtomicU64::new(0),
        })
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts `n` records entering `stage`.
    pub fn records_in(&self, stage: PipelineStage, n: u64) {
        let i = match stage {
            PipelineStage::Read => 0,
            PipelineStage::Convert => 1,
            PipelineStage::Transform => 2,
            PipelineStage::Write => 3,
        };
        self.records_in[i].inc_by(n);
    }

    /// Counts `n` records durably written, which is progress.
    pub fn records_out(&self, n: u64) {
        self.records_out.inc_by(n);
        self.progressed();
    }

    /// Counts a record dropped by a filter.
    pub fn filtered(&self) {
        self.records_filtered.inc();
    }

    /// Counts a failed record.
    pub fn error(&self, stage: Stage) {
        self.errors
            .get_or_create(&vec![(
                "stage".to_string(),
                stage.metric_label().to_string(),
            )])
            .inc();
    }

    /// Counts a retry.
    pub fn retry(&self) {
        self.retries.inc();
    }

    /// Counts a record written to the dead letter queue.
    pub fn dlq_record(&self) {
        self.dlq_records.inc();
    }

    /// Records the duration of one batch write.
    pub fn batch_written(&self, took: Duration) {
        self.batch_duration.observe(took.as_secs_f64());
    }

    /// Sets the input lag.
    pub fn set_lag(&self, lag: i64) {
        self.lag.set(lag);
        self.lag_known.store(1, Ordering::Relaxed);
    }

    /// Sets the bytes of change log the source system keeps for this task
    /// (`ferry_task_source_backlog_bytes`).
    pub fn set_source_backlog_bytes(&self, bytes: u64) {
        self.source_backlog_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Records what the task knows of its replication slot (`postgresCdc`), for `/progress`,
    /// the termination message and `ferry_task_replication_slot_retained_wal_bytes`.
    pub fn set_replication_slot(&self, report: ReplicationSlotReport) {
        if let Some(bytes) = report.retained_wal_bytes {
            self.retained_wal_bytes
                .get_or_create(&vec![("slot".to_string(), report.slot.clone())])
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        if let Ok(mut slot) = self.replication_slot.lock() {
            *slot = Some(report);
        }
    }

    /// What the task last knew of its replication slot, if it reads one.
    pub fn replication_slot(&self) -> Option<ReplicationSlotReport> {
        self.replication_slot.lock().ok().and_then(|s| s.clone())
    }

    /// Records a successful commit of offsets (also progress).
    pub fn committed(&self) {
        let now_ms = jiff::Timestamp::now().as_millisecond();
        self.last_commit_unix_ms.store(now_ms, Ordering::Relaxed);
        self.last_commit.set(now_ms as f64 / 1000.0);
        self.progressed();
    }

    fn progressed(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_progress_ms.store(ms, Ordering::Relaxed);
    }

    /// Sets the reported run state.
    pub fn set_state(&self, state: RunState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    /// The reported run state.
    pub fn state(&self) -> RunState {
        match self.state.load(Ordering::Relaxed) {
            1 => RunState::Running,
            2 => RunState::Paused,
            _ => RunState::Starting,
        }
    }

    /// Marks the task connected to Kafka and its external system (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(u8::from(ready), Ordering::Relaxed);
    }

    /// Whether the task is connected.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) == 1
    }

    /// Sets the number of records read and not yet durable downstream.
    pub fn set_pending(&self, n: u64) {
        self.pending.store(n, Ordering::Relaxed);
    }

    /// Records read and not yet durable downstream.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Records written so far.
    pub fn records_out_total(&self) -> u64 {
        self.records_out.get()
    }

    /// Records read so far.
    pub fn records_read_total(&self) -> u64 {
        self.records_in[0].get()
    }

    /// Input lag, when known.
    pub fn lag(&self) -> Option<i64> {
        (self.lag_known.load(Ordering::Relaxed) == 1).then(|| self.lag.get())
    }

    /// Time since the last progress (a write or a commit), or since start.
    pub fn since_progress(&self) -> Duration {
        let last = Duration::from_millis(self.last_progress_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// The [`ferry_crds::contract::TaskProgress`] of this task; `stall_after`: the stall
    /// window.
    pub fn progress(&self, stall_after: Duration) -> ferry_crds::contract::TaskProgress {
        let lag = self.lag();
        let last_commit_ms = self.last_commit_unix_ms.load(Ordering::Relaxed);
        let last_commit_at = (last_commit_ms > 0)
            .then(|| jiff::Timestamp::from_millisecond(last_commit_ms).ok())
            .flatten()
            .map(|t| t.to_string());
        ferry_crds::contract::TaskProgress {
            state: match self.state() {
                RunState::Starting => "Starting",
                RunState::Running => "Running",
                RunState::Paused => "Paused",
            }
            .to_string(),
            records_in: self.records_read_total(),
            records_out: self.records_out_total(),
            lag: lag.map(|l| u64::try_from(l).unwrap_or(0)),
            last_commit_at,
            stalled: is_stalled(
                self.state(),
                lag,
                self.pending() > 0,
                self.since_progress(),
                stall_after,
            ),
            replication_slot: self.replication_slot(),
        }
    }
}

/// Whether a task is stalled: it runs, work is waiting (lag, or records read and not yet
/// written), and nothing was written or committed for the stall window. A paused task or
/// one with nothing to do is never stalled.
pub fn is_stalled(
    state: RunState,
    lag: Option<i64>,
    records_pending: bool,
    since_progress: Duration,
    stall_after: Duration,
) -> bool {
    state == RunState::Running
        && (lag.is_some_and(|l| l > 0) || records_pending)
        && since_progress >= stall_after
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalled_only_when_work_waits_and_nothing_moves() {
        let w = Duration::from_secs(300);
        let long = Duration::from_secs(301);
        assert!(is_stalled(RunState::Running, Some(5), false, long, w));
        assert!(is_stalled(RunState::Running, None, true, long, w));
        assert!(!is_stalled(RunState::Running, Some(0), false, long, w));
        assert!(!is_stalled(RunState::Paused, Some(5), true, long, w));
        assert!(!is_stalled(
            RunState::Running,
            Some(5),
            true,
            Duration::from_secs(10),
            w
        ));
    }

    #[test]
    fn exposition_carries_names_and_identity_labels() {
        let m = TaskMetrics::new("shop", "orders", 1);
        m.records_in(PipelineStage::Read, 3);
        m.records_out(2);
        m.error(Stage::Transformation);
        m.dlq_record();
        m.set_lag(7);
        m.set_pending(1);
        assert_eq!(m.pending(), 1);
        m.committed();
        let text = m.encode();
        for needle in [
            "ferry_task_records_in_total{connector=\"orders\",namespace=\"shop\",task=\"1\",stage=\"read\"} 3",
            "ferry_task_records_out_total{connector=\"orders\",namespace=\"shop\",task=\"1\"} 2",
            "ferry_task_errors_total{connector=\"orders\",namespace=\"shop\",task=\"1\",stage=\"transformation\"} 1",
            "ferry_task_dlq_records_total{",
            "ferry_task_lag{connector=\"orders\",namespace=\"shop\",task=\"1\"} 7",
            "ferry_task_last_commit_timestamp_seconds{",
            "ferry_task_batch_duration_seconds_bucket{",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        let p = m.progress(Duration::from_secs(300));
        assert_eq!(p.records_in, 3);
        assert_eq!(p.records_out, 2);
        assert_eq!(p.lag, Some(7));
        assert!(p.last_commit_at.is_some());
        assert!(!p.stalled);
    }
}

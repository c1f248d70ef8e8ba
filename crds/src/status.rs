//! The `status` of a `KafkaConnector`, written only by the operator, and the condition types
//! and reasons it uses.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types the operator maintains on every connector.
pub mod condition_type {
    /// `True` when every desired task runs and is ready (or the connector is intentionally
    /// `Paused`/`Stopped` and has reached that state).
    pub const READY: &str = "Ready";
    /// `True` while the operator is changing the connector's tasks: starting, scaling, a
    /// rolling replacement after a configuration change, or an offsets reset.
    pub const PROGRESSING: &str = "Progressing";
    /// `True` when a task failed, is waiting to be restarted, or the configuration is invalid.
    pub const DEGRADED: &str = "Degraded";
    /// `True` when a task has work waiting but committed nothing for
    /// `spec.progress.stallAfterSeconds`.
    pub const STALLED: &str = "Stalled";
    /// Whether the operator can read the connector's offsets in Kafka, which the lag in
    /// `status.lag` and `status.offsets`, autoscaling from lag and offsets resets depend on.
    /// Shown once the operator has tried to read them.
    pub const OFFSETS_READABLE: &str = "OffsetsReadable";
    /// `postgresCdc` sources: whether a running task reads the connector's replication slot
    /// and confirms what Kafka stored. While it is `False`, PostgreSQL keeps every WAL
    /// segment from the slot's position on, and the primary's disk fills
    /// (`status.replicationSlot.retainedWalBytes`).
    pub const REPLICATION_SLOT_ADVANCING: &str = "ReplicationSlotAdvancing";

    /// Every condition type, in the order they are shown.
    pub const ALL: &[&str] = &[
        READY,
        PROGRESSING,
        DEGRADED,
        STALLED,
        OFFSETS_READABLE,
        REPLICATION_SLOT_ADVANCING,
    ];
}

/// Reasons of the conditions (`CamelCase`, as Kubernetes expects).
pub mod reason {
    /// Ready=True: every desired task is running and ready.
    pub const ALL_TASKS_READY: &str = "AllTasksReady";
    /// Ready=False: some tasks are not ready yet (starting, restarting or replaced).
    pub const TASKS_NOT_READY: &str = "TasksNotReady";
    /// Ready=True/Progressing=False: `spec.state` is `Paused` and every task has paused.
    pub const PAUSED: &str = "Paused";
    /// Ready=True/Progressing=False: `spec.state` is `Stopped` and no task pod runs.
    pub const STOPPED: &str = "Stopped";
    /// Ready=False, Degraded=True: the configuration is invalid; nothing is restarted until
    /// the spec changes. The message quotes the error.
    pub const CONFIGURATION_ERROR: &str = "ConfigurationError";
    /// Degraded=True: a task failed; the message names the task and its exit reason.
    pub const TASK_FAILED: &str = "TaskFailed";
    /// Degraded=True: a failed task waits for its next restart (exponential backoff).
    pub const BACKING_OFF: &str = "BackingOff";
    /// Degraded=False: every task runs without failures.
    pub const TASKS_HEALTHY: &str = "TasksHealthy";
    /// Progressing=True: task pods are being created.
    pub const STARTING: &str = "Starting";
    /// Progressing=True: the task count is changing.
    pub const SCALING: &str = "Scaling";
    /// Progressing=True: task pods are replaced one at a time after a configuration change.
    pub const ROLLING_UPDATE: &str = "RollingUpdate";
    /// Progressing=True: an offsets reset (`spec.offsets.reset`) is being applied.
    pub const RESETTING_OFFSETS: &str = "ResettingOffsets";
    /// Progressing=False: the tasks match the spec.
    pub const UP_TO_DATE: &str = "UpToDate";
    /// Stalled=True: a task has work waiting and committed nothing for the stall window.
    pub const NO_PROGRESS: &str = "NoProgress";
    /// Stalled=False: every running task is committing, or has nothing to do.
    pub const MAKING_PROGRESS: &str = "MakingProgress";
    /// Stalled=Unknown: the tasks' progress could not be read.
    pub const PROGRESS_UNKNOWN: &str = "ProgressUnknown";
    /// OffsetsReadable=True: the operator read the connector's offsets in Kafka.
    pub const OFFSETS_READ: &str = "OffsetsRead";
    /// OffsetsReadable=False: the operator cannot read the connector's offsets in Kafka, so
    /// the lag is not shown, the autoscaler has no lag to go by and offsets resets cannot be
    /// applied. The message quotes the Kafka (or Secret) error.
    pub const OFFSETS_UNREADABLE: &str = "OffsetsUnreadable";
    /// ReplicationSlotAdvancing=True: every task runs and reads the replication slot.
    pub const SLOT_READ: &str = "SlotRead";
    /// ReplicationSlotAdvancing=False: a task failed (the message quotes its error, and the
    /// WAL the slot retains while nobody reads it).
    pub const TASK_FAILING: &str = "TaskFailing";
    /// ReplicationSlotAdvancing=False: the connector is paused or stopped, and its slot keeps
    /// WAL meanwhile.
    pub const NOT_RUNNING: &str = "NotRunning";
    /// ReplicationSlotAdvancing=Unknown: the task is starting.
    pub const TASK_STARTING: &str = "TaskStarting";
}

/// Observed state of a connector, written by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaConnectorStatus {
    /// The `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// What the connector is doing: `Pending` (tasks starting), `Running`, `Paused`,
    /// `Stopped`, `Resetting` (an offsets reset is being applied) or `Failed` (a task failed
    /// or the configuration is invalid; see the conditions and `tasks.items[].lastFailure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ConnectorPhase>,
    /// Standard conditions: `Ready`, `Progressing`, `Degraded` and `Stalled`, and
    /// `OffsetsReadable` once the operator has tried to read the offsets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The connector's tasks: how many are desired, how many are ready, and each one's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<TasksStatus>,
    /// Ready tasks out of desired tasks, e.g. `2/2` (the TASKS column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_ready: Option<String>,
    /// Number of task pods that currently exist (the `/scale` subresource's `status.replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Label selector of the connector's task pods, e.g. `ferry.rs/connector=orders-to-pg`
    /// (the `/scale` subresource's `status.selector`, used by HorizontalPodAutoscalers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Restarts of all tasks since the connector was created (the RESTARTS column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<i32>,
    /// Records waiting in the input, summed over the tasks that report it (the LAG column).
    /// Sinks: consumer group lag. Sources: the backlog the plugin knows of. Empty while the
    /// operator cannot read the connector's offsets (condition `OffsetsReadable=False`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// The last offsets reset the operator applied (`spec.offsets.reset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_reset: Option<OffsetResetStatus>,
    /// Where the connector is in its input, read from Kafka about once a minute. Sinks: the
    /// consumer group's committed offsets; sources: the stored source offsets. Per-partition
    /// figures are in the operator's metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets: Option<OffsetsStatus>,
    /// The autoscaler's last decision (`spec.autoscaling`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<AutoscalerStatus>,
    /// `postgresCdc` sources: the replication slot and the WAL it retains on the server, as
    /// the task last measured it (condition `ReplicationSlotAdvancing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_slot: Option<ReplicationSlotStatus>,
}

/// The replication slot of a `postgresCdc` connector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationSlotStatus {
    /// The slot's name.
    pub name: String,
    /// Bytes of WAL PostgreSQL keeps for the slot (from its `restart_lsn` to the server's
    /// current position) at `measuredAt`. It grows while no task reads the slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained_wal_bytes: Option<i64>,
    /// When a task last measured `retainedWalBytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_at: Option<Time>,
    /// Why the latest attempt to measure failed (e.g. the password is refused); empty when
    /// it worked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement_error: Option<String>,
}

/// What the connector as a whole is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConnectorPhase {
    /// Task pods are being created or are not ready yet.
    Pending,
    /// Every task is running.
    Running,
    /// Tasks are up but move no records (`spec.state: Paused`).
    Paused,
    /// No task pods run (`spec.state: Stopped`); offsets are kept.
    Stopped,
    /// An offsets reset is being applied; the tasks are stopped until it is done.
    Resetting,
    /// A task failed or the configuration is invalid; see the conditions.
    Failed,
}

impl ConnectorPhase {
    /// The phase as written in `status.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorPhase::Pending => "Pending",
            ConnectorPhase::Running => "Running",
            ConnectorPhase::Paused => "Paused",
            ConnectorPhase::Stopped => "Stopped",
            ConnectorPhase::Resetting => "Resetting",
            ConnectorPhase::Failed => "Failed",
        }
    }
}

impl std::fmt::Display for ConnectorPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The connector's tasks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TasksStatus {
    /// Number of tasks the connector should run now (`spec.tasks`, or the autoscaler's
    /// choice; 0 when `Stopped`).
    pub desired: i32,
    /// Number of task pods that are running and ready.
    pub ready: i32,
    /// One entry per task, by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["index"]))]
    pub items: Vec<TaskStatus>,
}

impl TasksStatus {
    /// `ready/desired`, as shown in the TASKS column (`status.tasksReady`).
    pub fn summary(&self) -> String {
        format!("{}/{}", self.ready, self.desired)
    }
}

/// Phases of one task (`status.tasks.items[].phase`).
pub mod task_phase {
    /// The pod is being created or is starting.
    pub const PENDING: &str = "Pending";
    /// The task is running and moving records.
    pub const RUNNING: &str = "Running";
    /// The task runs but moves no records (`spec.state: Paused`).
    pub const PAUSED: &str = "Paused";
    /// The task has work waiting and committed nothing for the stall window.
    pub const STALLED: &str = "Stalled";
    /// The task failed and waits for its next restart (`nextRestartAt`).
    pub const BACKING_OFF: &str = "BackingOff";
    /// The task failed and is not restarted until the spec changes (configuration error).
    pub const FAILED: &str = "Failed";
    /// The task finished its work and exited cleanly (a bounded source reached its end).
    pub const SUCCEEDED: &str = "Succeeded";
}

/// State of one task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    /// Task index, `0..n-1`.
    pub index: i32,
    /// Name of the task's pod, `<connector>-task-<index>`.
    pub pod: String,
    /// `Pending`, `Running`, `Paused`, `Stalled`, `BackingOff`, `Failed` or `Succeeded`.
    pub phase: String,
    /// Times the operator restarted this task since the connector was created.
    #[serde(default)]
    pub restarts: i32,
    /// The task's most recent failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<TaskFailure>,
    /// When a failed task is restarted next (exponential backoff, `spec.restartPolicy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_restart_at: Option<Time>,
    /// Records waiting in this task's input, as last reported by the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// Records this task wrote durably since it started, as last reported by the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_out: Option<i64>,
}

/// Why a task's process ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskFailure {
    /// Category of the failure, e.g. `ConfigurationError`, `RecordFailed`, `Error`,
    /// `OOMKilled`.
    pub reason: String,
    /// The task's termination message: its last fatal error, in its own words.
    #[serde(default)]
    pub message: String,
    /// Exit code of the task's process: 78 is a configuration error (not restarted), 65 a
    /// record that failed with `errors.tolerance: None`, 1 a retriable failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// When the process ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
}

/// The last offsets reset the operator applied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OffsetResetStatus {
    /// The `spec.offsets.reset.id` that was applied. A reset whose id equals this one is not
    /// applied again.
    pub applied_id: String,
    /// When the reset was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
    /// What the reset did, e.g. `3 partitions of orders reset to earliest`, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// `Applied`, or `Failed`: the target did not fit the connector and its offsets were left
    /// untouched (`result` says why). Either way the id is not applied again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<OffsetResetOutcome>,
}

/// How an offsets reset ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OffsetResetOutcome {
    /// The offsets were moved.
    Applied,
    /// The target did not fit the connector; the offsets were left untouched.
    Failed,
}

/// A summary of where the connector is in its input.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OffsetsStatus {
    /// Sinks: topic partitions with a committed offset in the consumer group
    /// (`ferry.<namespace>.<connector>`). Sources: source partitions with a stored offset.
    pub partitions: i32,
    /// Sinks: records between the committed offsets and the ends of the partitions, summed
    /// over the topics' partitions (a partition without a committed offset counts from its
    /// start). Empty when the last read failed (`error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// When the offsets were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
    /// Why the offsets could not be read the last time, if they could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The autoscaler's last decision (`spec.autoscaling`), rewritten at every evaluation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerStatus {
    /// Task count the autoscaler chose; the operator runs this many tasks.
    pub desired_tasks: i32,
    /// Why, in words: the lag and rates it saw, the count the target asks for, the bounds,
    /// windows and step limits that applied, e.g. `lag 60000 on 6 of 6 partitions
    /// (consuming 0/s, producing 2400/s); target 2000 per task: wants 30 tasks; capped at 6
    /// partitions with lag, capped at maxTasks 4; scaling up from 0 to 4`.
    #[serde(default)]
    pub reason: String,
    /// When the autoscaler last changed the task count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
    /// Lag the decision counted (records, or the source plugin's backlog unit), without the
    /// persistent lag of stuck partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// Lag of partitions left out as persistent (`spec.autoscaling.excludePersistentLag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_lag: Option<i64>,
    /// Records committed per second over the last minute (sinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed_per_second: Option<i64>,
    /// Records produced to the input topics per second over the last minute (sinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produced_per_second: Option<i64>,
}

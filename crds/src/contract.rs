//! The runtime contract between the operator and a runner task pod.
//!
//! The operator builds pods from these names; the runner reads them. Both sides use only the
//! constants and types in this module, so the contract cannot drift between the two.

use serde::{Deserialize, Serialize};

/// Directory in the task pod where the task ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/etc/ferry/task";
/// File (in [`CONFIG_DIR`]) holding the `KafkaConnector` YAML the task runs: the connector's
/// metadata (name, namespace) and its spec, with `tasks`, `autoscaling`, `state` and
/// `offsets` removed (those change without replacing pods; offsets are the operator's).
/// Secrets appear only as references.
pub const CONFIG_FILE: &str = "connector.yaml";
/// File (in [`CONFIG_DIR`]) holding the desired run state, `Running` or `Paused`.
/// The runner re-reads it every second: pausing never restarts a pod.
pub const STATE_FILE: &str = "state";

/// Env var: this task's index, `0..count`.
pub const ENV_TASK_INDEX: &str = "FERRY_TASK_INDEX";
/// Env var: the connector's task count when the pod was created.
pub const ENV_TASK_COUNT: &str = "FERRY_TASK_COUNT";
/// Env var: full path of the connector YAML (defaults to `CONFIG_DIR/CONFIG_FILE`).
pub const ENV_CONFIG_FILE: &str = "FERRY_CONFIG_FILE";
/// Env var: full path of the state file (defaults to `CONFIG_DIR/STATE_FILE`).
pub const ENV_STATE_FILE: &str = "FERRY_STATE_FILE";
/// Env var: `host:port` the admin HTTP server binds (`/metrics`, `/healthz`, `/readyz`,
/// `/progress`). The operator sets it to `$(POD_IP):8080`.
pub const ENV_ADMIN_ADDR: &str = "FERRY_ADMIN_ADDR";
/// Env var set by the operator from the downward API (`status.podIP`).
pub const ENV_POD_IP: &str = "POD_IP";
/// Env var: the pod's name (downward API `metadata.name`).
pub const ENV_POD_NAME: &str = "POD_NAME";
/// Env var: where the runner writes its last fatal error.
pub const ENV_TERMINATION_LOG: &str = "FERRY_TERMINATION_LOG";
/// Env var: the SASL username (`spec.kafka.sasl.username`); the operator sets it from the
/// connector's `secretKeyRef`. Standalone runs read the same variable.
pub const ENV_KAFKA_SASL_USERNAME: &str = "FERRY_KAFKA_SASL_USERNAME";
/// Env var: the SASL password (`spec.kafka.sasl.password`), set like
/// [`ENV_KAFKA_SASL_USERNAME`].
pub const ENV_KAFKA_SASL_PASSWORD: &str = "FERRY_KAFKA_SASL_PASSWORD";
/// Env var: the connection URL of a database sink (`spec.sink.postgres.url`,
/// `spec.sink.mysql.url`); the operator sets it from the connector's `secretKeyRef`.
/// Standalone runs read the same variable.
pub const ENV_SINK_DATABASE_URL: &str = "FERRY_SINK_DATABASE_URL";
/// Env var: the password of a database sink (`spec.sink.postgres.password`,
/// `spec.sink.mysql.password`), set like [`ENV_SINK_DATABASE_URL`].
pub const ENV_SINK_DATABASE_PASSWORD: &str = "FERRY_SINK_DATABASE_PASSWORD";
/// Env var: the password of a database source (`spec.source.postgresCdc.password`); the
/// operator sets it from the connector's `secretKeyRef`. Standalone runs read the same
/// variable.
pub const ENV_SOURCE_DATABASE_PASSWORD: &str = "FERRY_SOURCE_DATABASE_PASSWORD";
/// Directory where the Kafka TLS Secret keys (`spec.kafka.tls`) are mounted: the CA as
/// [`KAFKA_TLS_CA_FILE`], the client certificate as [`KAFKA_TLS_CERT_FILE`] and its key as
/// [`KAFKA_TLS_KEY_FILE`]. Env var [`ENV_KAFKA_TLS_DIR`] overrides it (standalone runs).
pub const KAFKA_TLS_DIR: &str = "/etc/ferry/kafka-tls";
/// Env var overriding [`KAFKA_TLS_DIR`].
pub const ENV_KAFKA_TLS_DIR: &str = "FERRY_KAFKA_TLS_DIR";
/// File name (in [`KAFKA_TLS_DIR`]) of the CA certificate (`spec.kafka.tls.ca`), PEM.
pub const KAFKA_TLS_CA_FILE: &str = "ca.crt";
/// File name (in [`KAFKA_TLS_DIR`]) of the client certificate (`spec.kafka.tls.cert`), PEM.
pub const KAFKA_TLS_CERT_FILE: &str = "tls.crt";
/// File name (in [`KAFKA_TLS_DIR`]) of the client key (`spec.kafka.tls.key`), PEM.
pub const KAFKA_TLS_KEY_FILE: &str = "tls.key";
/// Compacted topic holding source offsets when the source system cannot keep them itself.
/// Records are keyed `<namespace>/<connector>/<source partition as JSON>`; the format is in
/// `ferry_kafka::offsets_topic`.
pub const DEFAULT_OFFSETS_TOPIC: &str = "ferry-offsets";
/// Consumer group of a sink connector's tasks: `ferry.<namespace>.<connector>`.
pub fn consumer_group(namespace: &str, connector: &str) -> String {
    format!("ferry.{namespace}.{connector}")
}
/// `transactional.id` of a source task's producer under `spec.delivery: ExactlyOnce`:
/// `ferry.<namespace>.<connector>.<task index>`. A task that starts with the id of one
/// still running (an old pod) fences it: the old one can no longer commit.
pub fn transactional_id(namespace: &str, connector: &str, task: u32) -> String {
    format!("ferry.{namespace}.{connector}.{task}")
}
/// Table in the target database where an exactly-once `postgres` sink keeps, in the same
/// transaction as the rows, the next Kafka offset of every partition it has written.
pub const SINK_OFFSETS_TABLE: &str = "ferry_kafka_offsets";
/// `session.timeout.ms` of a sink task's consumer unless `spec.kafka.config` sets it. Tasks
/// are static group members: a removed task's partitions stay assigned to it, unread, until
/// this timeout expires (the operator's autoscaler allows for it after scaling down).
pub const SINK_SESSION_TIMEOUT_MS: u64 = 45_000;
/// Default termination-message path, as in Kubernetes.
pub const DEFAULT_TERMINATION_LOG: &str = "/dev/termination-log";
/// Admin HTTP port of a task pod.
pub const ADMIN_PORT: u16 = 8080;
/// Admin HTTP path returning a [`TaskProgress`] as JSON.
pub const PROGRESS_PATH: &str = "/progress";

/// Admin HTTP path of the task's Prometheus metrics.
pub const METRICS_PATH: &str = "/metrics";
/// Gauge a source task exports on [`METRICS_PATH`] for what waits in the external system and
/// is not yet in Kafka, in the plugin's own unit (e.g. bytes of replication lag, pending
/// files); the name may carry a Prometheus unit suffix (`ferry_task_source_backlog_bytes`).
/// The operator's autoscaler sums every sample of it over the tasks, whatever the labels,
/// as a source connector's lag.
pub const SOURCE_BACKLOG_METRIC: &str = "ferry_task_source_backlog";

/// Exit code of a task that stopped cleanly (SIGTERM, or a bounded source reached its end).
pub const EXIT_OK: i32 = 0;
/// Exit code of a retriable failure (broker or external system unreachable, ...):
/// the operator restarts the task with backoff.
pub const EXIT_RETRIABLE: i32 = 1;
/// Exit code of a record the task could not process with `errors.tolerance: None`:
/// the termination message names topic/partition/offset. Restarted with backoff
/// (the record may be fixed by an offsets reset or by changing tolerance).
pub const EXIT_RECORD_FAILED: i32 = 65;
/// Exit code of a configuration error (EX_CONFIG): reported once, never restarted until
/// the connector's spec changes.
pub const EXIT_CONFIG_ERROR: i32 = 78;

/// What a task reports about itself on [`PROGRESS_PATH`]; the operator reads it to fill
/// `status.lag` and the `Stalled` condition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskProgress {
    /// `Running`, `Paused` or `Starting`.
    pub state: String,
    /// Records read from the input since the task started.
    pub records_in: u64,
    /// Records durably written to the output since the task started.
    pub records_out: u64,
    /// Records waiting in the input (sinks: consumer lag of this task's partitions;
    /// sources: the plugin's backlog, when it knows it).
    pub lag: Option<u64>,
    /// RFC 3339 time of the last successful commit of offsets, if any.
    pub last_commit_at: Option<String>,
    /// True when work is waiting and nothing was committed for the stall window.
    pub stalled: bool,
    /// The PostgreSQL replication slot a `postgresCdc` task reads, and the WAL it retains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_slot: Option<ReplicationSlotReport>,
}

/// What a `postgresCdc` task knows of its replication slot. PostgreSQL keeps every WAL
/// segment from the slot's `restart_lsn` on, whether a task reads the slot or not: a failing
/// task makes the slot retain more and more of the primary's disk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationSlotReport {
    /// The slot's name.
    pub slot: String,
    /// Bytes of WAL the server keeps for the slot (`pg_current_wal_lsn() - restart_lsn`), as
    /// last measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained_wal_bytes: Option<u64>,
    /// RFC 3339 time of that measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_at: Option<String>,
    /// Why the last attempt to measure failed (e.g. the password is refused), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement_error: Option<String>,
}

/// Kubernetes keeps at most this many bytes of a termination message.
pub const TERMINATION_MESSAGE_MAX_BYTES: usize = 4096;
/// Marks the end of a termination message that carries a [`ReplicationSlotReport`]: the
/// report follows as one line of JSON.
const SLOT_REPORT_MARKER: &str = "\nferry.rs/replication-slot: ";

/// The termination message of a task that stopped with `error`: the error, cut on a
/// character boundary so that the whole message fits in
/// [`TERMINATION_MESSAGE_MAX_BYTES`], then the slot report if there is one.
pub fn termination_message(error: &str, slot: Option<&ReplicationSlotReport>) -> String {
    let trailer = slot
        .and_then(|r| serde_json::to_string(r).ok())
        .map(|json| format!("{SLOT_REPORT_MARKER}{json}"))
        .filter(|t| t.len() < TERMINATION_MESSAGE_MAX_BYTES / 2)
        .unwrap_or_default();
    let mut end = error
        .len()
        .min(TERMINATION_MESSAGE_MAX_BYTES - trailer.len());
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{trailer}", &error[..end])
}

/// Splits a termination message written by [`termination_message`] into the error and the
/// slot report. A message without a (readable) report is all error.
pub fn parse_termination_message(message: &str) -> (&str, Option<ReplicationSlotReport>) {
    if let Some((error, json)) = message.rsplit_once(SLOT_REPORT_MARKER) {
        if let Ok(report) = serde_json::from_str(json.trim()) {
            return (error, Some(report));
        }
    }
    (message, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ReplicationSlotReport {
        ReplicationSlotReport {
            slot: "ferry_shop_orders".into(),
            retained_wal_bytes: Some(123_456),
            measured_at: Some("2026-12-07T03:00:00Z".into()),
            measurement_error: None,
        }
    }

    #[test]
    fn a_slot_report_survives_the_termination_message() {
        let message = termination_message("PostgreSQL refused user \"app\"", Some(&report()));
        assert!(message.len() <= TERMINATION_MESSAGE_MAX_BYTES);
        let (error, slot) = parse_termination_message(&message);
        assert_eq!(error, "PostgreSQL refused user \"app\"");
        assert_eq!(slot, Some(report()));
    }

    #[test]
    fn a_long_error_is_cut_and_keeps_the_report() {
        let long = "é".repeat(3000);
        let message = termination_message(&long, Some(&report()));
        assert!(message.len() <= TERMINATION_MESSAGE_MAX_BYTES);
        let (error, slot) = parse_termination_message(&message);
        assert!(!error.is_empty() && error.chars().all(|c| c == 'é'));
        assert_eq!(slot, Some(report()));
        let plain = termination_message(&long, None);
        assert!(plain.len() <= TERMINATION_MESSAGE_MAX_BYTES);
        assert_eq!(parse_termination_message(&plain), (plain.as_str(), None));
    }

    #[test]
    fn a_message_without_a_readable_report_is_all_error() {
        let text = "failed\nferry.rs/replication-slot: {not json";
        assert_eq!(parse_termination_message(text), (text, None));
        assert_eq!(parse_termination_message("exit"), ("exit", None));
    }
}

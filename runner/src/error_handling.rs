//! Error handling with Kafka Connect's semantics (KIP-298, KIP-610): which failures are
//! retried and for how long, whether a failed record stops the task, and what a dead letter
//! queue record carries.
//!
//! Everything here is pure; the pipelines do the I/O, and [`crate::failure`] decides and
//! acts on each failed record.

use std::time::Duration;

use ferry_crds::errors::{ErrorHandling, Tolerance};

/// Where in the pipeline a record failed; the names are Kafka Connect's `Stage` values, as
/// they appear in the `__connect.errors.stage` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Turning the key bytes into a value, or back.
    KeyConverter,
    /// Turning the value bytes into a value, or back.
    ValueConverter,
    /// Turning header bytes into values, or back.
    HeaderConverter,
    /// A transform (SMT) or its predicate.
    Transformation,
    /// The sink plugin writing records to the external system.
    TaskPut,
    /// The source plugin reading records from the external system.
    TaskPoll,
    /// Writing a record to Kafka.
    KafkaProduce,
    /// Reading a record from Kafka.
    KafkaConsume,
}

impl Stage {
    /// Kafka Connect's name of the stage (`VALUE_CONVERTER`, `TRANSFORMATION`, ...).
    pub fn connect_name(self) -> &'static str {
        match self {
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::HeaderConverter => "HEADER_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
            Stage::TaskPut => "TASK_PUT",
            Stage::TaskPoll => "TASK_POLL",
            Stage::KafkaProduce => "KAFKA_PRODUCE",
            Stage::KafkaConsume => "KAFKA_CONSUME",
        }
    }

    /// The value of the `stage` label of the error metrics (`value_converter`, ...).
    pub fn metric_label(self) -> &'static str {
        match self {
            Stage::KeyConverter => "key_converter",
            Stage::ValueConverter => "value_converter",
            Stage::HeaderConverter => "header_converter",
            Stage::Transformation => "transformation",
            Stage::TaskPut => "task_put",
            Stage::TaskPoll => "task_poll",
            Stage::KafkaProduce => "kafka_produce",
            Stage::KafkaConsume => "kafka_consume",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.connect_name())
    }
}

/// Why one record failed, in the terms of the dead letter queue headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordFailure {
    /// Where it failed.
    pub stage: Stage,
    /// The component that failed, e.g. `ferry.transform.addSource` or `ferry.converter.value`.
    pub class_name: String,
    /// The kind of error, e.g. `ConvertError` (Connect: the exception class).
    pub error_kind: String,
    /// The error message.
    pub message: String,
    /// The error and its causes, one per line (Connect: the stack trace).
    pub trace: String,
}

impl RecordFailure {
    /// Builds a failure from an error and its `source()` chain.
    pub fn from_error(
        stage: Stage,
        class_name: impl Into<String>,
        error_kind: impl Into<String>,
        error: &(dyn std::error::Error + 'static),
    ) -> Self {
        let mut trace = error.to_string();
        let mut cause = error.source();
        while let Some(c) = cause {
            trace.push_str("\nCaused by: ");
            trace.push_str(&c.to_string());
            cause = c.source();
        }
        Self {
            stage,
            class_name: class_name.into(),
            error_kind: error_kind.into(),
            message: error.to_string(),
            trace,
        }
    }
}

/// Where a record came from, for messages and dead letter queue headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordCoordinates {
    /// The topic (sinks: the Kafka topic read; sources: the topic the record was bound for).
    pub topic: String,
    /// The partition, when known.
    pub partition: Option<i32>,
    /// The offset, when known.
    pub offset: Option<i64>,
}

impl std::fmt::Display for RecordCoordinates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/", self.topic)?;
        match self.partition {
            Some(p) => write!(f, "{p}")?,
            None => f.write_str("-")?,
        }
        match self.offset {
            Some(o) => write!(f, "@{o}"),
            None => f.write_str("@-"),
        }
    }
}

/// The termination message of a task stopped by a failed record with `tolerance: None`.
pub fn record_failed_message(at: &RecordCoordinates, failure: &RecordFailure) -> String {
    format!(
        "record {at} failed in {}: {}",
        failure.stage.connect_name(),
        failure.message
    )
}

/// Identity of the task, written into dead letter queue headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskIdentity {
    /// The connector's name.
    pub connector: String,
    /// The task index.
    pub task: u32,
}

/// Kafka Connect's dead letter queue header names (`DeadLetterQueueReporter`).
pub mod headers {
    /// Original topic.
    pub const TOPIC: &str = "__connect.errors.topic";
    /// Original partition.
    pub const PARTITION: &str = "__connect.errors.partition";
    /// Original offset.
    pub const OFFSET: &str = "__connect.errors.offset";
    /// Connector name.
    pub const CONNECTOR_NAME: &str = "__connect.errors.connector.name";
    /// Task index.
    pub const TASK_ID: &str = "__connect.errors.task.id";
    /// Stage that failed.
    pub const STAGE: &str = "__connect.errors.stage";
    /// Component that failed.
    pub const CLASS_NAME: &str = "__connect.errors.class.name";
    /// Kind of error.
    pub const EXCEPTION_CLASS_NAME: &str = "__connect.errors.exception.class.name";
    /// Error message.
    pub const EXCEPTION_MESSAGE: &str = "__connect.errors.exception.message";
    /// Error and causes.
    pub const EXCEPTION_STACKTRACE: &str = "__connect.errors.exception.stacktrace";
}

/// The context headers Kafka Connect adds to a dead letter queue record (values are UTF-8
/// strings, as Connect writes them). They are appended after the record's own headers.
pub fn dlq_context_headers(
    task: &TaskIdentity,
    at: &RecordCoordinates,
    failure: &RecordFailure,
) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![(headers::TOPIC.to_string(), at.topic.clone().into_bytes())];
    if let Some(p) = at.partition {
        out.push((headers::PARTITION.to_string(), p.to_string().into_bytes()));
    }
    if let Some(o) = at.offset {
        out.push((headers::OFFSET.to_string(), o.to_string().into_bytes()));
    }
    out.extend([
        (
            headers::CONNECTOR_NAME.to_string(),
            task.connector.clone().into_bytes(),
        ),
        (
            headers::TASK_ID.to_string(),
            task.task.to_string().into_bytes(),
        ),
        (
            headers::STAGE.to_string(),
            failure.stage.connect_name().as_bytes().to_vec(),
        ),
        (
            headers::CLASS_NAME.to_string(),
            failure.class_name.clone().into_bytes(),
        ),
        (
            headers::EXCEPTION_CLASS_NAME.to_string(),
            failure.error_kind.clone().into_bytes(),
        ),
    ]);
    if !failure.message.is_empty() {
        out.push((
            headers::EXCEPTION_MESSAGE.to_string(),
            failure.message.clone().into_bytes(),
        ));
    }
    out.push((
        headers::EXCEPTION_STACKTRACE.to_string(),
        failure.trace.clone().into_bytes(),
    ));
    out
}

/// The first delay between retries (Kafka Connect: 300 ms).
pub const RETRY_INITIAL_DELAY: Duration = Duration::from_millis(300);

/// When to retry a retriable failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total time retries may take; zero disables retries.
    pub timeout: Duration,
    /// Largest delay between two attempts.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1` (the first retry is `attempt == 1`), or `None`
    /// when the retry budget is spent: doubling from 300 ms, capped at `max_delay`, and never
    /// past the timeout.
    pub fn next_delay(&self, attempt: u32, elapsed: Duration) -> Option<Duration> {
        if attempt == 0 || elapsed >= self.timeout {
            return None;
        }
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        let delay = RETRY_INITIAL_DELAY
            .saturating_mul(factor)
            .min(self.max_delay.max(Duration::from_millis(1)));
        let remaining = self.timeout - elapsed;
        Some(delay.min(remaining))
    }
}

/// The error handling of one task, derived from `spec.errors`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorPolicy {
    /// Whether failed records are skipped.
    pub tolerate_all: bool,
    /// Retries of retriable failures.
    pub retry: RetryPolicy,
    /// Dead letter queue topic and whether to add context headers.
    pub dead_letter_queue: Option<DlqSettings>,
    /// Log each failed record.
    pub log_errors: bool,
    /// Include the record's contents in those logs.
    pub log_include_messages: bool,
}

/// Dead letter queue settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DlqSettings {
    /// The topic.
    pub topic: String,
    /// Add the `__connect.errors.*` headers.
    pub context_headers: bool,
    /// Replication factor when the topic is created (`None`: broker default).
    pub replication_factor: Option<i32>,
}

impl ErrorPolicy {
    /// The policy of `spec.errors` (Kafka Connect's defaults when absent).
    pub fn from_spec(spec: Option<&ErrorHandling>) -> Self {
        let default = ErrorHandling::default();
        let spec = spec.unwrap_or(&default);
        Self {
            tolerate_all: spec.tolerance == Tolerance::All,
            retry: RetryPolicy {
                timeout: Duration::from_secs(spec.retry_timeout_seconds),
                max_delay: Duration::from_secs(spec.retry_max_delay_seconds),
            },
            dead_letter_queue: spec.dead_letter_queue.as_ref().map(|d| DlqSettings {
                topic: d.topic.clone(),
                context_headers: d.context_headers,
                replication_factor: d.replication_factor,
            }),
            log_errors: spec.log_errors,
            log_include_messages: spec.log_include_messages,
        }
    }
}

/// Checks `spec.errors` for settings that cannot work; `is_source`: the connector is a source.
pub fn validate(
    spec: Option<&ErrorHandling>,
    is_source: bool,
) -> Vec<crate::config_error::ConfigError> {
    let mut out = Vec::new();
    let Some(spec) = spec else { return out };
    if let Some(dlq) = &spec.dead_letter_queue {
        if is_source {
            out.push(crate::config_error::ConfigError {
                field: "spec.errors.deadLetterQueue".into(),
                message: "a dead letter queue is only supported on sink connectors (as in Kafka Connect); remove it or use logErrors".into(),
            });
        }
        if dlq.topic.trim().is_empty() {
            out.push(crate::config_error::ConfigError {
                field: "spec.errors.deadLetterQueue.topic".into(),
                message: "must name a topic".into(),
            });
        }
        if dlq.replication_factor.is_some_and(|r| r < 1 && r != -1) {
            out.push(crate::config_error::ConfigError {
                field: "spec.errors.deadLetterQueue.replicationFactor".into(),
                message: "must be at least 1 (or -1 for the broker default)".into(),
            });
        }
        if spec.tolerance != Tolerance::All {
            out.push(crate::config_error::ConfigError {
                field: "spec.errors.deadLetterQueue".into(),
                message: "records only reach the dead letter queue with tolerance: All; set spec.errors.tolerance to All".into(),
            });
        }
    }
    if spec.retry_max_delay_seconds == 0 && spec.retry_timeout_seconds > 0 {
        out.push(crate::config_error::ConfigError {
            field: "spec.errors.retryMaxDelaySeconds".into(),
            message: "must be at least 1 when retryTimeoutSeconds is set".into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> RecordFailure {
        RecordFailure {
            stage: Stage::ValueConverter,
            class_name: "ferry.converter.value.json".into(),
            error_kind: "ConvertError".into(),
            message: "value: expected JSON".into(),
            trace: "value: expected JSON\nCaused by: EOF".into(),
        }
    }

    #[test]
    fn dlq_headers_use_connect_names_and_string_values() {
        let h = dlq_context_headers(
            &TaskIdentity {
                connector: "orders".into(),
                task: 2,
            },
            &RecordCoordinates {
                topic: "in".into(),
                partition: Some(3),
                offset: Some(42),
            },
            &failure(),
        );
        let get = |k: &str| {
            h.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        };
        assert_eq!(get("__connect.errors.topic").as_deref(), Some("in"));
        assert_eq!(get("__connect.errors.partition").as_deref(), Some("3"));
        assert_eq!(get("__connect.errors.offset").as_deref(), Some("42"));
        assert_eq!(
            get("__connect.errors.connector.name").as_deref(),
            Some("orders")
        );
        assert_eq!(get("__connect.errors.task.id").as_deref(), Some("2"));
        assert_eq!(
            get("__connect.errors.stage").as_deref(),
            Some("VALUE_CONVERTER")
        );
        assert_eq!(
            get("__connect.errors.class.name").as_deref(),
            Some("ferry.converter.value.json")
        );
        assert_eq!(
            get("__connect.errors.exception.class.name").as_deref(),
            Some("ConvertError")
        );
        assert_eq!(
            get("__connect.errors.exception.message").as_deref(),
            Some("value: expected JSON")
        );
        assert!(get("__connect.errors.exception.stacktrace")
            .unwrap()
            .contains("Caused by: EOF"));
        assert_eq!(h.len(), 10);
    }

    #[test]
    fn failed_record_message_names_coordinates_and_stage() {
        let at = RecordCoordinates {
            topic: "orders".into(),
            partition: Some(1),
            offset: Some(7),
        };
        assert_eq!(
            record_failed_message(&at, &failure()),
            "record orders/1@7 failed in VALUE_CONVERTER: value: expected JSON"
        );
    }

    #[test]
    fn backoff_doubles_caps_and_stops_at_the_timeout() {
        let p = RetryPolicy {
            timeout: Duration::from_secs(10),
            max_delay: Duration::from_secs(2),
        };
        assert_eq!(
            p.next_delay(1, Duration::ZERO),
            Some(Duration::from_millis(300))
        );
        assert_eq!(
            p.next_delay(2, Duration::ZERO),
            Some(Duration::from_millis(600))
        );
        assert_eq!(
            p.next_delay(3, Duration::ZERO),
            Some(Duration::from_millis(1200))
        );
        assert_eq!(
            p.next_delay(4, Duration::ZERO),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            p.next_delay(60, Duration::ZERO),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            p.next_delay(4, Duration::from_millis(9500)),
            Some(Duration::from_millis(500))
        );
        assert_eq!(p.next_delay(4, Duration::from_secs(10)), None);
        let off = RetryPolicy {
            timeout: Duration::ZERO,
            max_delay: Duration::from_secs(60),
        };
        assert_eq!(off.next_delay(1, Duration::ZERO), None);
    }

    #[test]
    fn validation_names_fields() {
        let spec: ErrorHandling = serde_yaml::from_str(
            "deadLetterQueue: {topic: ''}\nretryTimeoutSeconds: 5\nretryMaxDelaySeconds: 0",
        )
        .unwrap();
        let fields: Vec<String> = validate(Some(&spec), true)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert!(fields.contains(&"spec.errors.deadLetterQueue".to_string()));
        assert!(fields.contains(&"spec.errors.deadLetterQueue.topic".to_string()));
        assert!(fields.contains(&"spec.errors.retryMaxDelaySeconds".to_string()));
        assert!(validate(None, false).is_empty());
    }
}

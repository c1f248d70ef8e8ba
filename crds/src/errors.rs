//! How a connector handles records it cannot process: tolerance, retries, the dead letter
//! queue and error logging (the semantics of Kafka Connect's `errors.*` settings, KIP-298
//! and KIP-610).
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Error handling for records that fail in a converter, a transform or the plugin.
///
/// Without this block a failing record fails the task (`tolerance: None`), like Kafka Connect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorHandling {
    /// `None` (default): the first record that fails after retries fails the task; the task's
    /// termination message names the record's topic/partition/offset and the cause.
    /// `All`: failed records are skipped (and sent to the dead letter queue when one is set);
    /// the task keeps running.
    #[serde(default)]
    pub tolerance: Tolerance,
    /// How long a retriable failure (for example the external system being unreachable) is
    /// retried, with exponential backoff, before it counts as a failed record. `0` (default)
    /// disables retries. Kafka Connect: `errors.retry.timeout`.
    #[serde(default)]
    pub retry_timeout_seconds: u64,
    /// Upper bound of the delay between two retries. Default 60.
    /// Kafka Connect: `errors.retry.delay.max.ms`.
    #[serde(default = "default_retry_max_delay_seconds")]
    pub retry_max_delay_seconds: u64,
    /// Where failed records go when `tolerance` is `All` (sink connectors only).
    /// Kafka Connect: `errors.deadletterqueue.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_queue: Option<DeadLetterQueue>,
    /// Log every failed record (its topic/partition/offset, stage and cause) at WARN.
    /// Kafka Connect: `errors.log.enable`. Default false.
    #[serde(default)]
    pub log_errors: bool,
    /// Include the record's key, value and headers in those log lines.
    /// Kafka Connect: `errors.log.include.messages`. Default false: record contents may be
    /// sensitive.
    #[serde(default)]
    pub log_include_messages: bool,
}

impl Default for ErrorHandling {
    fn default() -> Self {
        Self {
            tolerance: Tolerance::default(),
            retry_timeout_seconds: 0,
            retry_max_delay_seconds: default_retry_max_delay_seconds(),
            dead_letter_queue: None,
            log_errors: false,
            log_include_messages: false,
        }
    }
}

fn default_retry_max_delay_seconds() -> u64 {
    60
}

/// Whether failed records stop the task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Tolerance {
    /// A failed record fails the task (Kafka Connect's `errors.tolerance=none`).
    #[default]
    None,
    /// Failed records are skipped (Kafka Connect's `errors.tolerance=all`).
    All,
}

/// The dead letter queue topic of a sink connector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeadLetterQueue {
    /// Topic that receives failed records with their original key, value and headers.
    /// Created when missing. Kafka Connect: `errors.deadletterqueue.topic.name`.
    pub topic: String,
    /// Add the `__connect.errors.*` headers (original topic/partition/offset, connector name,
    /// task id, stage, class and exception) to each record in the queue. Default false.
    /// Kafka Connect: `errors.deadletterqueue.context.headers.enable`.
    #[serde(default)]
    pub context_headers: bool,
    /// Replication factor used when the topic is created. Default: the broker's default.
    /// Kafka Connect: `errors.deadletterqueue.topic.replication.factor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_kafka_connect() {
        let e: ErrorHandling = serde_yaml::from_str("{}").unwrap();
        assert_eq!(e.tolerance, Tolerance::None);
        assert_eq!(e.retry_timeout_seconds, 0);
        assert_eq!(e.retry_max_delay_seconds, 60);
        assert!(e.dead_letter_queue.is_none());
        assert_eq!(e, ErrorHandling::default());
    }

    #[test]
    fn parses_a_full_block_and_rejects_unknown_fields() {
        let e: ErrorHandling = serde_yaml::from_str(
            "tolerance: All\nretryTimeoutSeconds: 30\ndeadLetterQueue: {topic: dlq, contextHeaders: true}\nlogErrors: true",
        )
        .unwrap();
        assert_eq!(e.tolerance, Tolerance::All);
        let dlq = e.dead_letter_queue.unwrap();
        assert_eq!(dlq.topic, "dlq");
        assert!(dlq.context_headers);
        assert!(serde_yaml::from_str::<ErrorHandling>("tolerence: All").is_err());
    }
}

//! Why a task stopped, and the exit code that tells the operator what to do about it.
//!
//! Errors of Kafka and of plugins keep the error that caused them
//! ([`std::error::Error::source`]); their message is what the task was doing, then the cause.

use ferry_crds::contract;
use futures::channel::oneshot::Canceled;
use rdkafka::error::KafkaError;
use tokio::task::JoinError;

use crate::config_error::ConfigError;
use crate::plugins::PluginError;
use crate::source_offsets::OffsetStoreError;

/// A fatal task error.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The configuration cannot work; restarting does not help.
    #[error("invalid configuration: {}", join(.0))]
    Config(Vec<ConfigError>),
    /// A record failed with `errors.tolerance: None`; the message names it.
    #[error("{0}")]
    RecordFailed(String),
    /// Kafka failed (unreachable, fenced, a delivery failed after librdkafka's retries).
    #[error("Kafka: {context}: {source}")]
    Kafka {
        /// What the task was doing, e.g. `cannot create the consumer`.
        context: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// librdkafka declared the client unusable (e.g. a newer instance of the task, with the
    /// same `group.instance.id`, fenced this consumer): nothing it does from now on counts.
    #[error("Kafka: the consumer cannot go on ({code:?}): {reason}")]
    KafkaFatal {
        /// librdkafka's underlying error code.
        code: rdkafka::types::RDKafkaErrorCode,
        /// librdkafka's description.
        reason: String,
    },
    /// Creating a topic the task needs failed.
    #[error("Kafka: {0}")]
    KafkaTopic(#[source] Box<ferry_kafka::Error>),
    /// A producer went away before it reported a delivery.
    #[error("Kafka: {context}")]
    DeliveryLost {
        /// Which delivery was not reported.
        context: String,
        /// The delivery report that never came.
        #[source]
        source: Canceled,
    },
    /// Loading or storing source offsets failed.
    #[error("Kafka: {0}")]
    Offsets(#[source] Box<OffsetStoreError>),
    /// The plugin's external system failed after retries.
    #[error("{context}: {source}")]
    Plugin {
        /// What the task was doing, e.g. `the file sink failed writing 3 records from t/0@7`.
        context: String,
        /// The plugin's error.
        #[source]
        source: PluginError,
    },
    /// The plugin could not be opened or started.
    #[error("{0}")]
    PluginStart(#[source] PluginError),
    /// The sink's writer ended while the task was running (it panicked, or it returned).
    #[error("the sink writer stopped{}", join_cause(.0.as_ref()))]
    WriterStopped(#[source] Option<JoinError>),
    /// The pipeline was started on a connector of the other kind (`sink` or `source`).
    #[error("not a {0} connector")]
    WrongKind(&'static str),
}

impl From<OffsetStoreError> for TaskError {
    fn from(e: OffsetStoreError) -> Self {
        TaskError::Offsets(Box::new(e))
    }
}

impl From<ferry_kafka::Error> for TaskError {
    fn from(e: ferry_kafka::Error) -> Self {
        TaskError::KafkaTopic(Box::new(e))
    }
}

fn join(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn join_cause(e: Option<&JoinError>) -> String {
    e.map(|e| format!(": {e}")).unwrap_or_default()
}

impl TaskError {
    /// The error of `source`, from Kafka, while the task was doing `context`.
    pub fn kafka(context: impl Into<String>, source: KafkaError) -> Self {
        TaskError::Kafka {
            context: context.into(),
            source,
        }
    }

    /// The error of a plugin call: a configuration error stops the task as such, any other
    /// fails it naming what the task was doing (`context`).
    pub fn plugin(context: impl Into<String>, e: PluginError) -> Self {
        match e {
            PluginError::Config(c) => TaskError::Config(vec![c]),
            source => TaskError::Plugin {
                context: context.into(),
                source,
            },
        }
    }

    /// The error of opening or starting a plugin: a configuration error stops the task as
    /// such.
    pub fn plugin_start(e: PluginError) -> Self {
        match e {
            PluginError::Config(c) => TaskError::Config(vec![c]),
            e => TaskError::PluginStart(e),
        }
    }

    /// The process exit code of this error ([`contract`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            TaskError::Config(_) => contract::EXIT_CONFIG_ERROR,
            TaskError::RecordFailed(_) => contract::EXIT_RECORD_FAILED,
            TaskError::Kafka { .. }
            | TaskError::KafkaFatal { .. }
            | TaskError::KafkaTopic(_)
            | TaskError::DeliveryLost { .. }
            | TaskError::Offsets(_)
            | TaskError::Plugin { .. }
            | TaskError::PluginStart(_)
            | TaskError::WriterStopped(_)
            | TaskError::WrongKind(_) => contract::EXIT_RETRIABLE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode;
    use std::error::Error as _;

    #[test]
    fn exit_codes_follow_the_contract() {
        let e = TaskError::Config(vec![
            ConfigError {
                field: "spec.a".into(),
                message: "bad".into(),
            },
            ConfigError {
                field: "spec.b".into(),
                message: "worse".into(),
            },
        ]);
        assert_eq!(e.exit_code(), 78);
        assert_eq!(
            e.to_string(),
            "invalid configuration: spec.a: bad; spec.b: worse"
        );
        assert_eq!(
            TaskError::RecordFailed("record t/0@1 failed".into()).exit_code(),
            65
        );
        let down = KafkaError::MessageProduction(RDKafkaErrorCode::AllBrokersDown);
        assert_eq!(TaskError::kafka("down", down).exit_code(), 1);
        assert_eq!(
            TaskError::plugin("down", PluginError::Fatal("gone".into())).exit_code(),
            1
        );
        assert_eq!(TaskError::WriterStopped(None).exit_code(), 1);
        assert_eq!(TaskError::WrongKind("sink").exit_code(), 1);
    }

    #[test]
    fn messages_say_what_the_task_did_then_the_cause_which_is_kept() {
        let source = KafkaError::MessageProduction(RDKafkaErrorCode::AllBrokersDown);
        let shown = source.to_string();
        let e = TaskError::kafka("cannot create the consumer", source);
        assert_eq!(
            e.to_string(),
            format!("Kafka: cannot create the consumer: {shown}")
        );
        assert_eq!(e.source().map(|s| s.to_string()), Some(shown));

        let e = TaskError::plugin(
            "the file sink failed writing 3 records from t/0@7",
            PluginError::Fatal("No space left on device".into()),
        );
        assert_eq!(
            e.to_string(),
            "the file sink failed writing 3 records from t/0@7: No space left on device"
        );
        assert!(e.source().is_some());
        assert_eq!(
            TaskError::plugin_start(PluginError::Fatal("cannot open /out".into())).to_string(),
            "cannot open /out"
        );
        assert_eq!(
            TaskError::WriterStopped(None).to_string(),
            "the sink writer stopped"
        );
        assert_eq!(
            TaskError::WrongKind("source").to_string(),
            "not a source connector"
        );
    }

    #[test]
    fn a_configuration_error_of_a_plugin_stops_the_task_as_one() {
        let config = || {
            PluginError::Config(ConfigError {
                field: "spec.sink.postgres.table".into(),
                message: "no such table".into(),
            })
        };
        assert_eq!(TaskError::plugin("writing", config()).exit_code(), 78);
        assert_eq!(TaskError::plugin_start(config()).exit_code(), 78);
    }
}

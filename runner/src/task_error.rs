//! Why a task stopped, and the exit code that tells the operator what to do about it.

use ferry_crds::contract;

use crate::config_error::ConfigError;

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
    #[error("Kafka: {0}")]
    Kafka(String),
    /// The plugin's external system failed after retries.
    #[error("{0}")]
    Plugin(String),
}

fn join(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

impl TaskError {
    /// The process exit code of this error ([`contract`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            TaskError::Config(_) => contract::EXIT_CONFIG_ERROR,
            TaskError::RecordFailed(_) => contract::EXIT_RECORD_FAILED,
            TaskError::Kafka(_) | TaskError::Plugin(_) => contract::EXIT_RETRIABLE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(TaskError::Kafka("down".into()).exit_code(), 1);
        assert_eq!(TaskError::Plugin("down".into()).exit_code(), 1);
    }
}

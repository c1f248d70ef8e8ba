//! The operator's errors. Each has a category, used as the reason of its Warning Event and as
//! the `reason` label of `ferry_operator_reconcile_errors_total`.

use std::time::Duration;

/// Everything that can go wrong while reconciling a connector.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connector's spec cannot be run as it is; waits for the spec to change.
    #[error("invalid connector spec: {0}")]
    InvalidSpec(String),
    /// A Kubernetes API call failed.
    #[error("{action} failed: {source}")]
    Kube {
        /// What the operator was doing, e.g. `creating pod shop/orders-task-0`.
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A Kubernetes API call did not answer in time.
    #[error("{action} did not answer within {} ms", after.as_millis())]
    KubeTimeout {
        /// What the operator was doing.
        action: String,
        /// How long it waited.
        after: Duration,
    },
    /// A Secret the connector references could not be used.
    #[error("secret {namespace}/{name}: {message}")]
    Secret {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// Dropping a `postgresCdc` connector's replication slot failed.
    #[error("dropping replication slot {slot} on {server}: {message}")]
    SlotCleanup {
        /// The slot.
        slot: String,
        /// `host:port/database`.
        server: String,
        /// What went wrong.
        message: String,
    },
    /// An operator setting (a flag or a file it names) is unusable.
    #[error("{0}")]
    InvalidSettings(String),
    /// Deleting a sink's consumer group failed.
    #[error("deleting consumer group {group}: {message}")]
    OffsetsCleanup {
        /// The consumer group.
        group: String,
        /// The Kafka error.
        message: String,
    },
    /// Reading or moving a connector's offsets in Kafka failed (retried with backoff).
    #[error("{action}: {message}")]
    Offsets {
        /// What the operator was doing, e.g. `resetting the offsets of consumer group ...`.
        action: String,
        /// The Kafka error.
        message: String,
    },
    /// Encoding the task configuration failed.
    #[error("encoding the task configuration of {connector}: {message}")]
    Encode {
        /// The connector.
        connector: String,
        /// The encoder's message.
        message: String,
    },
}

impl Error {
    /// Wraps a Kubernetes API error with what the operator was doing.
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube { action, source }
    }

    /// Short `CamelCase` category of the error.
    pub fn category(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::Kube { source, .. } => match source {
                kube::Error::Api(status) if status.code == 409 => "Conflict",
                kube::Error::Api(status) if status.code == 403 => "Forbidden",
                kube::Error::Api(status) if status.code == 404 => "NotFound",
                kube::Error::Api(status) if status.code == 422 => "Invalid",
                _ => "KubernetesApiError",
            },
            Error::KubeTimeout { .. } => "KubernetesApiTimeout",
            Error::Secret { .. } => "SecretError",
            Error::OffsetsCleanup { .. } => "OffsetsCleanupFailed",
            Error::SlotCleanup { .. } => "ReplicationSlotCleanupFailed",
            Error::InvalidSettings(_) => "InvalidSettings",
            Error::Offsets { .. } => "KafkaOffsetsError",
            Error::Encode { .. } => "EncodingFailed",
        }
    }

    /// Whether retrying without a spec change is pointless.
    pub fn needs_spec_change(&self) -> bool {
        matches!(self, Error::InvalidSpec(_) | Error::Encode { .. })
    }
}

/// Delay before retrying a connector whose reconcile failed `attempt` times in a row
/// (1 = first failure): 1 s doubling to 5 min.
pub fn retry_delay(attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exponent).min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_are_bounded() {
        let d: Vec<u64> = (1..=10).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(d, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(retry_delay(0), Duration::from_secs(1));
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn categories_name_the_kind_of_failure() {
        let e = Error::InvalidSpec("x".into());
        assert_eq!(e.category(), "InvalidSpec");
        assert!(e.needs_spec_change());
        let api = kube::Error::Api(
            kube::core::Status::failure("conflict", "Conflict")
                .with_code(409)
                .boxed(),
        );
        let e = Error::kube("applying pod ns/p")(api);
        assert_eq!(e.category(), "Conflict");
        assert!(!e.needs_spec_change());
        assert!(e.to_string().starts_with("applying pod ns/p failed: "));
    }
}

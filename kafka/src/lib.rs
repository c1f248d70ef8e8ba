//! Ferry's Kafka layer, the one place both the operator and the runner go through to reach
//! Kafka:
//!
//! - [`client_properties`]: librdkafka client properties from `spec.kafka` (bootstrap
//!   servers, TLS, SASL, and `spec.kafka.config` with Java client key names mapped to their
//!   librdkafka names), the same for every client of a connector, whoever makes it;
//! - [`offsets_topic`]: the source offsets topic (`ferry-offsets`), its record format, its
//!   one reader and its one writer;
//! - [`topics`]: creating the topics Ferry needs (the offsets topic, dead letter queues);
//! - [`headers`]: a consumed message's headers, whatever bytes their names hold.

pub mod client_properties;
pub mod error;
pub mod headers;
pub mod offsets_topic;
pub mod topics;

pub use client_properties::{
    client_config, client_properties, ConfigProblem, Credentials, SaslCredentials, TlsCredentials,
};
pub use error::Error;

//! Ferry's API: the `KafkaConnector` custom resource (group `ferry.rs`, version `v1alpha1`)
//! and the contract between the operator and the runner.

pub mod admission;
pub mod connector;
pub mod contract;
pub mod errors;
pub mod kafka_config_keys;
pub mod librdkafka;
pub mod names;
pub mod pipeline;
pub mod plugins;
pub mod schema;
pub mod secret_access;
pub mod status;

pub use connector::{KafkaConnector, KafkaConnectorSpec};
pub use status::KafkaConnectorStatus;

//! Ferry's data plane: one task of a `KafkaConnector`.

pub mod config_error;
pub mod convert;
pub mod data;
pub mod record;
pub mod transform;

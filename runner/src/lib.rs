//! Ferry's data plane: one task of a `KafkaConnector`.

pub mod config_error;
pub mod convert;
pub mod data;
pub mod record;
pub mod transform;

pub mod admin;
pub mod cli;
pub mod desired_state;
pub mod error_handling;
pub mod failure;
pub mod metrics;
pub mod offset_tracker;
pub mod plugins;
pub mod processing;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod source_offsets;
pub mod task_config;
pub mod task_error;
pub mod termination;
pub mod value_text;

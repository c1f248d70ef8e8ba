//! Ferry's operator: turns `KafkaConnector` resources into task pods and reports their state.
//!
//! Each reconcile is a pipeline, one module per step:
//! [`dereference`] (read the connector and its pods) → [`validate`] (pure) →
//! [`build`] and [`plan`] (pure: the desired objects and what to change) → [`apply`]
//! (server-side apply, deletions) → [`status`] (pure status, written with server-side apply
//! to the status subresource). [`reconcile`] ties them together.

pub mod apply;
pub mod autoscale;
pub mod build;
pub mod conditions;
pub mod context;
pub mod dereference;
pub mod error;
pub mod events;
pub mod inputs;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod observe;
pub mod offset_reset;
pub mod offset_store;
pub mod offsets;
pub mod plan;
pub mod progress;
pub mod reconcile;
pub mod replication_slot;
pub mod restart;
pub mod server;
pub mod status;
pub mod task_template;
pub mod validate;

#[cfg(test)]
mod fixtures;

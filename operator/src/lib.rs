//! Ferry's operator: turns `KafkaConnector` resources into task pods and reports their state.
//!
//! Each reconcile is a pipeline, one module per step:
//! [`dereference`] (read the connector and its pods) → [`finalizer`] (the offsets cleanup
//! finalizer, deletion) → [`validate`] (pure) → [`inputs`] (pure: what the build reads, with
//! the task count the [`autoscale`]r chose) → [`offset_reset_flow`] (a pending offsets reset
//! ends the reconcile) → [`progress`] (the tasks' reports) → [`build`] and [`plan`] (pure:
//! the desired objects and what to change) → [`apply`] (server-side apply, deletions) →
//! [`report`] (status, Events, metrics; the status written by [`status_writer`], its one
//! writer) → [`wake`] (pure: when to look again). [`reconcile`] ties them together.

pub mod apply;
pub mod autoscale;
pub mod build;
pub mod conditions;
pub mod context;
pub mod dereference;
pub mod error;
pub mod events;
pub mod finalizer;
pub mod inputs;
pub mod kafka_client;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod observe;
pub mod offset_reset;
pub mod offset_reset_flow;
pub mod offset_store;
pub mod offsets_refresh;
pub mod plan;
pub mod progress;
pub mod reconcile;
pub mod replication_slot;
pub mod report;
pub mod restart;
pub mod server;
pub mod slot_status;
pub mod status;
pub mod status_writer;
pub mod task_template;
pub mod validate;
pub mod wake;

#[cfg(test)]
mod fixtures;

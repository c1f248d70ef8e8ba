//! The finalize step: the `ferry.rs/delete-offsets` finalizer is present exactly while
//! `spec.offsets.deleteOnRemoval` is true. When such a connector is deleted, its tasks are
//! stopped first (so they leave the consumer group), then a sink's consumer group is deleted
//! with Kafka's admin API, or a source's stored offsets are tombstoned (and a `postgresCdc`
//! replication slot dropped), before the finalizer is removed. A connector that is gone, or
//! going without cleanup, is forgotten by the autoscaler and the metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_crds::contract::{consumer_group, DEFAULT_OFFSETS_TOPIC};
use ferry_crds::names::FINALIZER_DELETE_OFFSETS;
use ferry_crds::KafkaConnector;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Client, Resource};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::apply;
use crate::autoscale;
use crate::context::Context;
use crate::dereference::Snapshot;
use crate::error::Error;
use crate::events::{self, Note};
use crate::kafka_client::kafka_config;
use crate::observe::TaskPod;
use crate::offset_reset::plural;
use crate::offset_store;
use crate::replication_slot::{self, SlotCleanup};

/// How often a deleted connector's offsets cleanup is retried while its tasks stop.
const OFFSETS_CLEANUP_RETRY: Duration = Duration::from_secs(3);

/// Runs the finalize step. Returns the action to end the reconcile with when the finalizer
/// changed or the connector is being deleted; `None` when the reconcile goes on.
pub async fn finalize(ctx: &Context, snapshot: &Snapshot) -> Result<Option<Action>, Error> {
    let client = &ctx.client;
    let connector = &snapshot.connector;
    match finalizer_step(connector) {
        FinalizerStep::None if connector.metadata.deletion_timestamp.is_some() => {
            // Owner references delete the pods and the ConfigMap.
            forget(ctx, connector);
        }
        FinalizerStep::None => return Ok(None),
        FinalizerStep::Add => {
            set_finalizers(client, connector, finalizers_with(connector, true)).await?;
        }
        FinalizerStep::Remove => {
            set_finalizers(client, connector, finalizers_with(connector, false)).await?;
        }
        FinalizerStep::CleanUpAndRemove => {
            if let Some(retry) = clean_up(ctx, snapshot).await? {
                return Ok(Some(retry));
            }
            set_finalizers(client, connector, finalizers_with(connector, false)).await?;
        }
    }
    Ok(Some(Action::await_change()))
}

/// Forgets a connector that is gone or going: its autoscaler memory and its metrics.
pub fn forget(ctx: &Context, connector: &KafkaConnector) {
    let namespace = connector.metadata.namespace.as_deref().unwrap_or_default();
    let name = connector.metadata.name.as_deref().unwrap_or_default();
    forget_named(ctx, namespace, name);
}

/// [`forget`] by namespace and name, for a connector that is already gone.
pub fn forget_named(ctx: &Context, namespace: &str, name: &str) {
    autoscale::forget(ctx, namespace, name);
    ctx.metrics
        .set_tasks(&format!("{namespace}/{name}"), BTreeMap::new());
    ctx.metrics.forget_offsets(namespace, name);
    ctx.metrics.set_replication_slot(namespace, name, None);
}

/// Stops the tasks of a deleted connector, then deletes its offsets. Returns the action to
/// retry with while the tasks stop or Kafka still holds the group; `None` once done.
async fn clean_up(ctx: &Context, snapshot: &Snapshot) -> Result<Option<Action>, Error> {
    let client = &ctx.client;
    let connector = &snapshot.connector;
    let namespace = connector.metadata.namespace.as_deref().unwrap_or_default();
    // Owner references delete the pods only once the connector is gone, and the finalizer
    // keeps it: stop the tasks first so they leave the consumer group.
    let pods: Vec<TaskPod> = snapshot.pods.iter().map(TaskPod::from_pod).collect();
    for pod in pods.iter().filter(|p| !p.terminating) {
        apply::delete_pod(client, namespace, &pod.name, &pod.uid).await?;
    }
    if !pods.is_empty() {
        tracing::info!(
            pods = pods.len(),
            "waiting for the task pods to stop before deleting the offsets"
        );
        return Ok(Some(Action::requeue(OFFSETS_CLEANUP_RETRY)));
    }
    match delete_offsets(client, connector).await? {
        Cleanup::GroupNotEmpty(why) | Cleanup::SlotActive(why) => {
            tracing::info!("{why}");
            Ok(Some(Action::requeue(OFFSETS_CLEANUP_RETRY)))
        }
        Cleanup::Done(done) => {
            let note = Note {
                warning: false,
                reason: "OffsetsDeleted",
                action: "DeleteOffsets",
                note: done,
                related: None,
            };
            events::publish(&ctx.recorder, &connector.object_ref(&()), &[note]).await;
            Ok(None)
        }
    }
}

/// What the finalizer step decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalizerStep {
    /// Nothing to do.
    None,
    /// Add the finalizer.
    Add,
    /// Remove the finalizer (no cleanup wanted any more).
    Remove,
    /// The connector is being deleted: clean up, then remove the finalizer.
    CleanUpAndRemove,
}

/// Decides the finalizer step (pure).
pub fn finalizer_step(connector: &KafkaConnector) -> FinalizerStep {
    let has = connector
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER_DELETE_OFFSETS));
    let wanted = connector
        .spec
        .offsets
        .as_ref()
        .is_some_and(|o| o.delete_on_removal);
    let deleting = connector.metadata.deletion_timestamp.is_some();
    match (deleting, has, wanted) {
        (true, true, true) => FinalizerStep::CleanUpAndRemove,
        (true, true, false) => FinalizerStep::Remove,
        (true, false, _) => FinalizerStep::None,
        (false, false, true) => FinalizerStep::Add,
        (false, true, false) => FinalizerStep::Remove,
        (false, _, _) => FinalizerStep::None,
    }
}

/// Sets the connector's finalizers to `finalizers`, if its resourceVersion is unchanged.
pub async fn set_finalizers(
    client: &Client,
    connector: &KafkaConnector,
    finalizers: Vec<String>,
) -> Result<(), Error> {
    let namespace = connector.metadata.namespace.clone().unwrap_or_default();
    let name = connector.metadata.name.clone().unwrap_or_default();
    let api: Api<KafkaConnector> = Api::namespaced(client.clone(), &namespace);
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": connector.metadata.resource_version,
            "finalizers": finalizers,
        }
    });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::kube(format!(
            "updating the finalizers of connector {namespace}/{name}"
        )))?;
    Ok(())
}

/// The connector's finalizers with ours added or removed.
pub fn finalizers_with(connector: &KafkaConnector, ours: bool) -> Vec<String> {
    let mut finalizers: Vec<String> = connector
        .metadata
        .finalizers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != FINALIZER_DELETE_OFFSETS)
        .collect();
    if ours {
        finalizers.push(FINALIZER_DELETE_OFFSETS.to_string());
    }
    finalizers
}

/// The outcome of [`delete_offsets`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// Done; what was done, in words.
    Done(String),
    /// The consumer group still has members (static members of stopped tasks stay until
    /// their session times out): try again shortly.
    GroupNotEmpty(String),
    /// The `postgresCdc` replication slot is still read by a stopping task: try again
    /// shortly.
    SlotActive(String),
}

/// Deletes the connector's offsets. Call it once the connector's task pods are gone.
pub async fn delete_offsets(client: &Client, connector: &KafkaConnector) -> Result<Cleanup, Error> {
    let namespace = connector.metadata.namespace.clone().unwrap_or_default();
    let name = connector.metadata.name.clone().unwrap_or_default();
    let config = kafka_config(client, connector).await?;
    if connector.spec.sink.is_none() {
        let slot = match replication_slot::drop_slot(client, connector).await? {
            SlotCleanup::Active(why) => return Ok(Cleanup::SlotActive(why)),
            SlotCleanup::Done(done) => format!("; {done}"),
            SlotCleanup::NotApplicable => String::new(),
        };
        let forgotten =
            offset_store::delete_source_offsets(&config, DEFAULT_OFFSETS_TOPIC, &namespace, &name)
                .await?;
        return Ok(Cleanup::Done(if forgotten == 0 {
            format!(
                "no source offsets of {namespace}/{name} were stored in {DEFAULT_OFFSETS_TOPIC}{slot}"
            )
        } else {
            format!(
                "deleted the stored offsets of {} of {namespace}/{name} from {DEFAULT_OFFSETS_TOPIC}{slot}",
                plural(forgotten, "source partition")
            )
        }));
    }
    let group = consumer_group(&namespace, &name);
    let admin: AdminClient<DefaultClientContext> =
        config.create().map_err(|e| Error::OffsetsCleanup {
            group: group.clone(),
            message: format!("creating a Kafka admin client: {e}"),
        })?;
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .delete_groups(&[group.as_str()], &options)
        .await
        .map_err(|e| Error::OffsetsCleanup {
            group: group.clone(),
            message: e.to_string(),
        })?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {
                return Ok(Cleanup::Done(format!(
                    "consumer group {group} did not exist"
                )));
            }
            Err((_, RDKafkaErrorCode::NonEmptyGroup)) => {
                return Ok(Cleanup::GroupNotEmpty(format!(
                    "consumer group {group} still has members; the stopped tasks' static \
                     memberships expire after the session timeout"
                )));
            }
            Err((_, code)) => {
                return Err(Error::OffsetsCleanup {
                    group,
                    message: code.to_string(),
                })
            }
        }
    }
    Ok(Cleanup::Done(format!("deleted consumer group {group}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(extra: &str) -> KafkaConnector {
        serde_yaml::from_str(&format!(
            "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\n{extra}\n\
             spec: {{kafka: {{bootstrapServers: k}}, sink: {{topics: [t], discard: {{}}}}, offsets: {{deleteOnRemoval: true}}}}"
        ))
        .unwrap()
    }

    #[test]
    fn finalizer_follows_delete_on_removal() {
        let c = connector("metadata: {name: a, namespace: n}");
        assert_eq!(finalizer_step(&c), FinalizerStep::Add);
        let c =
            connector("metadata: {name: a, namespace: n, finalizers: [ferry.rs/delete-offsets]}");
        assert_eq!(finalizer_step(&c), FinalizerStep::None);
        let c = connector(
            "metadata: {name: a, namespace: n, finalizers: [other, ferry.rs/delete-offsets], deletionTimestamp: '2026-11-22T10:00:00Z'}",
        );
        assert_eq!(finalizer_step(&c), FinalizerStep::CleanUpAndRemove);
        assert_eq!(finalizers_with(&c, false), vec!["other".to_string()]);
        let mut c =
            connector("metadata: {name: a, namespace: n, finalizers: [ferry.rs/delete-offsets]}");
        c.spec.offsets = None;
        assert_eq!(finalizer_step(&c), FinalizerStep::Remove);
        c.metadata.finalizers = None;
        assert_eq!(finalizer_step(&c), FinalizerStep::None);
    }
}

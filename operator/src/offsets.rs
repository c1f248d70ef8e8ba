//! A connector's offsets in Kafka: the reset flow of `spec.offsets.reset`, the summary in
//! `status.offsets` with per-partition metrics, and the cleanup on removal (the
//! `ferry.rs/delete-offsets` finalizer is present exactly while `spec.offsets.deleteOnRemoval`
//! is true; when such a connector is deleted, a sink's consumer group is deleted with Kafka's
//! admin API, or a source's stored offsets are tombstoned, before the finalizer is removed).
//! The operator reads only the Secrets the connector itself names, in its namespace.
//!
//! The decisions are in [`crate::offset_reset`] (pure), the Kafka I/O in
//! [`crate::offset_store`]. `status.offsetReset` and `status.offsets` are written under
//! their own field managers, so the main status apply leaves them alone.

use std::sync::Arc;
use std::time::Duration;

use ferry_crds::connector::SecretKeyRef;
use ferry_crds::contract::{consumer_group, DEFAULT_OFFSETS_TOPIC};
use ferry_crds::names::{API_GROUP, API_VERSION, FINALIZER_DELETE_OFFSETS, KIND};
use ferry_crds::status::{OffsetResetOutcome, OffsetResetStatus, OffsetsStatus};
use ferry_crds::KafkaConnector;
use ferry_kafka::{Credentials, SaslCredentials, TlsCredentials};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Client, Resource};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

use crate::apply;
use crate::context::Context;
use crate::error::Error;
use crate::events::{self, Note};
use crate::metrics::SinkPartitionOffset;
use crate::observe::TaskPod;
use crate::offset_reset::{self, plural, ResetStep};
use crate::offset_store::{self, Applied};
use crate::replication_slot::{self, SlotCleanup};

/// Field manager of `status.offsetReset`.
pub const RESET_FIELD_MANAGER: &str = "ferry-operator-offset-reset";
/// Field manager of `status.offsets`.
pub const OFFSETS_FIELD_MANAGER: &str = "ferry-operator-offsets";
/// How often a pending reset looks again while the task pods stop or the consumer group's
/// memberships expire.
const RESET_RETRY: Duration = Duration::from_secs(2);

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

/// The Kafka client configuration of the operator's clients for `connector`: the same
/// properties its tasks get ([`ferry_kafka::client_properties`]), with the credentials read
/// from the Secrets the connector names, in its namespace.
pub(crate) async fn kafka_config(
    client: &Client,
    connector: &KafkaConnector,
) -> Result<ClientConfig, Error> {
    let namespace = connector.metadata.namespace.clone().unwrap_or_default();
    let kafka = &connector.spec.kafka;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let mut pem = [None, None, None];
    if let Some(tls) = &kafka.tls {
        for (slot, reference) in pem.iter_mut().zip([&tls.ca, &tls.cert, &tls.key]) {
            if let Some(reference) = reference {
                *slot = Some(secret_value(&secrets, &namespace, reference).await?);
            }
        }
    }
    let sasl = match &kafka.sasl {
        Some(sasl) => Some(SaslCredentials {
            username: secret_value(&secrets, &namespace, &sasl.username.secret_key_ref).await?,
            password: secret_value(&secrets, &namespace, &sasl.password.secret_key_ref).await?,
        }),
        None => None,
    };
    let [ca, cert, key] = pem;
    let credentials = Credentials {
        sasl,
        tls: TlsCredentials::Pem { ca, cert, key },
    };
    let properties =
        ferry_kafka::client_properties(kafka, &credentials, true).map_err(|problems| {
            Error::InvalidSpec(
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
    Ok(ferry_kafka::client_config(&properties))
}

/// Runs the reset flow of `spec.offsets.reset` (see [`crate::offset_reset`]). Returns the
/// action to end the reconcile with while a reset is pending (no task is started), `None`
/// when there is nothing to reset and the reconcile goes on.
pub async fn reset_step(
    ctx: &Context,
    connector: &KafkaConnector,
    pods: &[TaskPod],
) -> Result<Option<Action>, Error> {
    let step = offset_reset::decide(connector, pods);
    let Some(reset) = offset_reset::pending(connector) else {
        return Ok(None);
    };
    let client = &ctx.client;
    let namespace = connector.metadata.namespace.clone().unwrap_or_default();
    let name = connector.metadata.name.clone().unwrap_or_default();
    // Events about a reset point at `spec.offsets.reset{<id>}`, so that those of different
    // resets are never merged into one series.
    let regarding = k8s_openapi::api::core::v1::ObjectReference {
        field_path: Some(format!("spec.offsets.reset{{{}}}", reset.id)),
        ..connector.object_ref(&())
    };
    let now = Timestamp::now();
    let target = offset_reset::describe_target(&reset.to);
    let failed = |message: String| {
        (
            offset_reset::recorded(&reset.id, OffsetResetOutcome::Failed, message.clone(), now),
            Note {
                warning: true,
                reason: "OffsetResetFailed",
                action: "ResetOffsets",
                note: format!(
                    "offsets reset {:?} to {target} was not applied, the offsets are unchanged: \
                     {message}",
                    reset.id
                ),
                related: None,
            },
        )
    };
    let was_resetting = connector
        .status
        .as_ref()
        .and_then(|s| s.state)
        .is_some_and(|s| s == ferry_crds::status::ConnectorPhase::Resetting);
    let mut notes = Vec::new();
    if !was_resetting && matches!(step, ResetStep::StopTasks { .. }) {
        notes.push(Note {
            warning: false,
            reason: "ResettingOffsets",
            action: "StopTasks",
            note: format!(
                "resetting offsets to {target} (id {:?}): stopping the tasks first",
                reset.id
            ),
            related: None,
        });
    }
    let (record, note) = match step {
        ResetStep::Idle => return Ok(None),
        ResetStep::Reject { message, .. } => failed(message),
        ResetStep::StopTasks { delete, remaining } => {
            for (pod, uid) in &delete {
                apply::delete_pod(client, &namespace, pod, uid).await?;
            }
            write_resetting(
                ctx,
                connector,
                reset,
                &format!("waiting for {} to stop", plural(remaining, "task pod")),
                now,
            )
            .await?;
            events::publish(&ctx.recorder, &regarding, &notes).await;
            return Ok(Some(Action::requeue(RESET_RETRY)));
        }
        ResetStep::Apply => {
            let applied = match apply_reset(client, connector, &namespace, &name).await {
                Ok(applied) => applied,
                // A Secret the operator cannot use will not fix itself: the reset fails and
                // the tasks start again rather than stay stopped.
                Err(error @ Error::Secret { .. }) => Applied::Rejected(format!(
                    "the operator cannot reach Kafka with the connector's credentials: {error}"
                )),
                Err(error) => {
                    // Shown in the status; the error policy retries with backoff.
                    let waiting = format!("cannot apply it yet, retrying: {error}");
                    write_resetting(ctx, connector, reset, &waiting, now).await?;
                    return Err(error);
                }
            };
            match applied {
                Applied::GroupNotEmpty(why) => {
                    write_resetting(ctx, connector, reset, &why, now).await?;
                    events::publish(&ctx.recorder, &regarding, &notes).await;
                    return Ok(Some(Action::requeue(RESET_RETRY)));
                }
                Applied::Rejected(message) => failed(message),
                Applied::Done(result) => (
                    offset_reset::recorded(
                        &reset.id,
                        OffsetResetOutcome::Applied,
                        result.clone(),
                        now,
                    ),
                    Note {
                        warning: false,
                        reason: "OffsetsReset",
                        action: "ResetOffsets",
                        note: format!(
                            "offsets reset {:?} to {target} applied: {result}; starting the tasks",
                            reset.id
                        ),
                        related: None,
                    },
                ),
            }
        }
    };
    if matches!(record.outcome, Some(OffsetResetOutcome::Applied)) {
        // Clears a failed task's pending restart delay, so the tasks start right away.
        write_resetting(ctx, connector, reset, "starting the tasks", now).await?;
    }
    write_reset_record(client, &namespace, &name, &record).await?;
    tracing::info!(connector = %format!("{namespace}/{name}"), id = %reset.id,
        outcome = ?record.outcome, result = record.result.as_deref().unwrap_or_default(),
        "offsets reset");
    notes.push(note);
    events::publish(&ctx.recorder, &regarding, &notes).await;
    ctx.metrics.offset_reset(match record.outcome {
        Some(OffsetResetOutcome::Applied) => "applied",
        _ => "failed",
    });
    // The status change wakes the controller, which starts the tasks.
    Ok(Some(Action::requeue(RESET_RETRY)))
}

/// Moves the connector's offsets to the pending reset's target (its tasks are gone).
async fn apply_reset(
    client: &Client,
    connector: &KafkaConnector,
    namespace: &str,
    name: &str,
) -> Result<Applied, Error> {
    let Some(reset) = offset_reset::pending(connector) else {
        return Ok(Applied::Done("nothing to reset".to_string()));
    };
    let config = kafka_config(client, connector).await?;
    match (&connector.spec.sink, &connector.spec.source) {
        (Some(sink), _) => {
            offset_store::reset_sink(&config, &consumer_group(namespace, name), sink, &reset.to)
                .await
        }
        (None, Some(_)) => {
            offset_store::reset_source(&config, DEFAULT_OFFSETS_TOPIC, namespace, name, &reset.to)
                .await
        }
        (None, None) => Ok(Applied::Rejected(
            "spec: the connector has neither a source nor a sink".to_string(),
        )),
    }
}

async fn write_resetting(
    ctx: &Context,
    connector: &KafkaConnector,
    reset: &ferry_crds::connector::OffsetReset,
    waiting_for: &str,
    now: Timestamp,
) -> Result<(), Error> {
    let namespace = connector.metadata.namespace.clone().unwrap_or_default();
    let name = connector.metadata.name.clone().unwrap_or_default();
    let mut status = offset_reset::resetting_status(connector, reset, waiting_for, now);
    if let Some(tasks) = status.tasks.as_mut() {
        for task in &mut tasks.items {
            // Stopped for the reset, not failed: restarted without waiting for a backoff.
            task.next_restart_at = None;
            task.phase = ferry_crds::status::task_phase::PENDING.to_string();
        }
    }
    let unchanged = connector.status.as_ref().is_some_and(|p| {
        ferry_crds::KafkaConnectorStatus {
            offset_reset: None,
            offsets: None,
            autoscaler: None,
            ..p.clone()
        } == status
    });
    if unchanged {
        return Ok(());
    }
    apply::status(&ctx.client, &namespace, &name, &status).await
}

async fn write_reset_record(
    client: &Client,
    namespace: &str,
    name: &str,
    record: &OffsetResetStatus,
) -> Result<(), Error> {
    let body = serde_json::json!({
        "apiVersion": format!("{API_GROUP}/{API_VERSION}"),
        "kind": KIND,
        "status": {"offsetReset": record},
    });
    apply_status_part(client, namespace, name, RESET_FIELD_MANAGER, &body).await
}

async fn apply_status_part(
    client: &Client,
    namespace: &str,
    name: &str,
    manager: &str,
    body: &serde_json::Value,
) -> Result<(), Error> {
    let api: Api<KafkaConnector> = Api::namespaced(client.clone(), namespace);
    api.patch_status(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(body),
    )
    .await
    .map_err(Error::kube(format!(
        "writing the status of connector {namespace}/{name}"
    )))?;
    Ok(())
}

/// When `status.offsets` is older than [`offset_reset::OFFSETS_READ_INTERVAL`] and no read
/// of this connector runs, starts one in the background ([`refresh_offsets`]): a reconcile
/// never waits for Kafka, and the reads of many connectors share a few slots
/// ([`crate::context::OffsetReads`]).
pub fn refresh_offsets_in_background(ctx: &Arc<Context>, connector: &KafkaConnector) {
    if !offset_reset::offsets_read_due(connector, Timestamp::now()) {
        return;
    }
    let key = format!(
        "{}/{}",
        connector.metadata.namespace.as_deref().unwrap_or_default(),
        connector.metadata.name.as_deref().unwrap_or_default()
    );
    if !ctx.offset_reads.start(&key) {
        return;
    }
    let ctx = ctx.clone();
    let connector = connector.clone();
    tokio::spawn(async move {
        let slot = ctx.offset_reads.slot().await;
        if let Err(e) = refresh_offsets(&ctx, &connector).await {
            tracing::warn!(connector = %key, error = %e, "could not write the connector's offsets to its status");
        }
        drop(slot);
        ctx.offset_reads.finish(&key);
    });
}

/// Reads the connector's offsets from Kafka, and writes the summary to `status.offsets` and
/// the per-partition figures to the metrics. A failure to read is shown in
/// `status.offsets.error`.
pub async fn refresh_offsets(ctx: &Context, connector: &KafkaConnector) -> Result<(), Error> {
    let now = Timestamp::now();
    let namespace = connector.metadata.namespace.clone().unwrap_or_default();
    let name = connector.metadata.name.clone().unwrap_or_default();
    let key = format!("{namespace}/{name}");
    let read = async {
        let config = kafka_config(&ctx.client, connector).await?;
        match (&connector.spec.sink, &connector.spec.source) {
            (Some(sink), _) => {
                let partitions = offset_store::read_sink_offsets(
                    &config,
                    &consumer_group(&namespace, &name),
                    sink,
                )
                .await?;
                let summary = OffsetsStatus {
                    partitions: partitions.iter().filter(|p| p.committed.is_some()).count() as i32,
                    lag: Some(partitions.iter().map(|p| p.lag()).sum()),
                    at: Some(Time(now)),
                    error: None,
                };
                ctx.metrics.set_sink_offsets(
                    &namespace,
                    &name,
                    partitions
                        .iter()
                        .map(|p| SinkPartitionOffset {
                            topic: p.topic.clone(),
                            partition: p.partition,
                            committed: p.committed,
                            lag: p.lag(),
                        })
                        .collect(),
                );
                Ok::<_, Error>(summary)
            }
            (None, Some(_)) => {
                let stored = offset_store::read_source_offsets(
                    &config,
                    DEFAULT_OFFSETS_TOPIC,
                    &namespace,
                    &name,
                )
                .await?;
                ctx.metrics
                    .set_source_offsets(&namespace, &name, stored.len() as i64);
                Ok(OffsetsStatus {
                    partitions: stored.len() as i32,
                    lag: None,
                    at: Some(Time(now)),
                    error: None,
                })
            }
            (None, None) => Ok(OffsetsStatus::default()),
        }
    };
    let summary = match read.await {
        Ok(summary) => summary,
        Err(error) => {
            tracing::warn!(connector = %key, error = %error, "could not read the connector's offsets");
            OffsetsStatus {
                at: Some(Time(now)),
                error: Some(error.to_string()),
                ..connector
                    .status
                    .as_ref()
                    .and_then(|s| s.offsets.clone())
                    .unwrap_or_default()
            }
        }
    };
    let body = serde_json::json!({
        "apiVersion": format!("{API_GROUP}/{API_VERSION}"),
        "kind": KIND,
        "status": {"offsets": summary},
    });
    apply_status_part(&ctx.client, &namespace, &name, OFFSETS_FIELD_MANAGER, &body).await
}

pub(crate) async fn secret_value(
    secrets: &Api<Secret>,
    namespace: &str,
    reference: &SecretKeyRef,
) -> Result<String, Error> {
    let error = |message: String| Error::Secret {
        namespace: namespace.to_string(),
        name: reference.name.clone(),
        message,
    };
    let secret = secrets.get(&reference.name).await.map_err(|e| match &e {
        kube::Error::Api(status) if status.code == 403 => error(format!(
            "cannot be read: the operator is not allowed to read Secrets (Helm value \
                 rbac.readSecrets: true allows it): {e}"
        )),
        _ => error(format!("cannot be read: {e}")),
    })?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&reference.key))
        .ok_or_else(|| error(format!("has no key {:?}", reference.key)))?;
    String::from_utf8(bytes.0.clone())
        .map_err(|_| error(format!("key {:?} is not UTF-8 text", reference.key)))
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

//! The reset step: runs the reset flow of `spec.offsets.reset` (the decisions are in
//! [`crate::offset_reset`], pure; the Kafka I/O in [`crate::offset_store`]). While a reset
//! is pending the reconcile ends here: the tasks are stopped, the reset applied and recorded
//! in `status.offsetReset`, and the next reconcile starts the tasks again.

use std::time::Duration;

use ferry_crds::connector::OffsetReset;
use ferry_crds::contract::{consumer_group, DEFAULT_OFFSETS_TOPIC};
use ferry_crds::status::{task_phase, ConnectorPhase, OffsetResetOutcome};
use ferry_crds::KafkaConnector;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Client, Resource};

use crate::apply;
use crate::context::Context;
use crate::error::Error;
use crate::events::{self, Note};
use crate::kafka_client::kafka_config;
use crate::observe::TaskPod;
use crate::offset_reset::{self, plural, ResetStep};
use crate::offset_store::{self, Applied};
use crate::status_writer::{self, StatusPart};

/// How often a pending reset looks again while the task pods stop or the consumer group's
/// memberships expire.
const RESET_RETRY: Duration = Duration::from_secs(2);

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
        .is_some_and(|s| s == ConnectorPhase::Resetting);
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
    status_writer::write(client, connector, StatusPart::OffsetReset(&record)).await?;
    tracing::info!(id = %reset.id,
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

/// Shows the pending reset in the status while the tasks stop (see
/// [`offset_reset::resetting_status`]).
async fn write_resetting(
    ctx: &Context,
    connector: &KafkaConnector,
    reset: &OffsetReset,
    waiting_for: &str,
    now: Timestamp,
) -> Result<(), Error> {
    let mut status = offset_reset::resetting_status(connector, reset, waiting_for, now);
    if let Some(tasks) = status.tasks.as_mut() {
        for task in &mut tasks.items {
            // Stopped for the reset, not failed: restarted without waiting for a backoff.
            task.next_restart_at = None;
            task.phase = task_phase::PENDING.to_string();
        }
    }
    status_writer::write_main_if_changed(&ctx.client, connector, &status).await
}

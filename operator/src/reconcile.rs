//! The reconcile pipeline and the error policy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_crds::status::{condition_type, reason, ConnectorPhase, KafkaConnectorStatus};
use ferry_crds::KafkaConnector;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use crate::apply;
use crate::autoscale;
use crate::build::{self, config_hash};
use crate::conditions::{self, Desired, Status};
use crate::context::Context;
use crate::dereference::dereference;
use crate::error::{retry_delay, Error};
use crate::events::{self, Note};
use crate::inputs::task_inputs;
use crate::observe::{PodPhase, TaskPod};
use crate::offsets::{self, FinalizerStep};
use crate::plan::{self, DeleteReason, Observed};
use crate::progress;
use crate::status::{self, Reading, TaskReading};
use crate::task_template;
use crate::validate::validate;

/// How often a deleted connector's offsets cleanup is retried while its tasks stop.
const OFFSETS_CLEANUP_RETRY: Duration = Duration::from_secs(3);

/// Reconciles one connector.
pub async fn reconcile(object: Arc<KafkaConnector>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let name = object.name_any();
    let namespace = object
        .namespace()
        .ok_or_else(|| Error::InvalidSpec(format!("connector {name} has no namespace")))?;
    let key = format!("{namespace}/{name}");
    let result = reconcile_connector(&ctx, &namespace, &name).await;
    ctx.metrics.observe_duration(started.elapsed());
    let action = result?;
    ctx.record_success(&key);
    ctx.metrics.reconciled();
    Ok(action)
}

async fn reconcile_connector(
    ctx: &Arc<Context>,
    namespace: &str,
    name: &str,
) -> Result<Action, Error> {
    let client = &ctx.client;
    let Some(snapshot) = dereference(client, namespace, name).await? else {
        autoscale::forget(ctx, namespace, name);
        ctx.metrics
            .set_tasks(&format!("{namespace}/{name}"), BTreeMap::new());
        ctx.metrics.forget_offsets(namespace, name);
        return Ok(Action::await_change());
    };
    let connector = snapshot.connector;
    let regarding = connector.object_ref(&());

    match offsets::finalizer_step(&connector) {
        FinalizerStep::None => {}
        FinalizerStep::Add => {
            offsets::set_finalizers(
                client,
                &connector,
                offsets::finalizers_with(&connector, true),
            )
            .await?;
            return Ok(Action::await_change());
        }
        FinalizerStep::Remove => {
            offsets::set_finalizers(
                client,
                &connector,
                offsets::finalizers_with(&connector, false),
            )
            .await?;
            return Ok(Action::await_change());
        }
        FinalizerStep::CleanUpAndRemove => {
            // Owner references delete the pods only once the connector is gone, and the
            // finalizer keeps it: stop the tasks first so they leave the consumer group.
            let mut remaining = 0;
            for pod in snapshot.pods.iter().map(TaskPod::from_pod) {
                remaining += 1;
                if !pod.terminating {
                    apply::delete_pod(client, namespace, &pod.name, &pod.uid).await?;
                }
            }
            if remaining > 0 {
                tracing::info!(connector = %format!("{namespace}/{name}"), pods = remaining,
                    "waiting for the task pods to stop before deleting the offsets");
                return Ok(Action::requeue(OFFSETS_CLEANUP_RETRY));
            }
            match offsets::delete_offsets(client, &connector).await? {
                offsets::Cleanup::GroupNotEmpty(why) | offsets::Cleanup::SlotActive(why) => {
                    tracing::info!(connector = %format!("{namespace}/{name}"), "{why}");
                    return Ok(Action::requeue(OFFSETS_CLEANUP_RETRY));
                }
                offsets::Cleanup::Done(done) => {
                    events::publish(
                        &ctx.recorder,
                        &regarding,
                        &[Note {
                            warning: false,
                            reason: "OffsetsDeleted",
                            action: "DeleteOffsets",
                            note: done,
                            related: None,
                        }],
                    )
                    .await;
                }
            }
            offsets::set_finalizers(
                client,
                &connector,
                offsets::finalizers_with(&connector, false),
            )
            .await?;
            return Ok(Action::await_change());
        }
    }
    if connector.metadata.deletion_timestamp.is_some() {
        // Owner references delete the pods and the ConfigMap.
        autoscale::forget(ctx, namespace, name);
        ctx.metrics
            .set_tasks(&format!("{namespace}/{name}"), BTreeMap::new());
        ctx.metrics.forget_offsets(namespace, name);
        return Ok(Action::await_change());
    }

    let validated = validate(&connector);
    // The autoscaler decides first, so this reconcile already runs the count it chose.
    let autoscaled = match &validated {
        Ok(()) => autoscale::evaluate(ctx, &connector, &snapshot.pods, Timestamp::now()).await,
        Err(_) => None,
    };
    let inputs = match validated.and_then(|()| {
        task_inputs(
            &autoscale::with_decision(&connector, autoscaled.as_ref()),
            &ctx.settings.runner_image,
        )
    }) {
        Ok(mut inputs) => {
            inputs.pod = task_template::merged(&ctx.settings.task_pod_template, &inputs.pod);
            inputs
        }
        Err(error) => {
            if error.needs_spec_change() {
                write_invalid_status(ctx, &connector, &error).await?;
            }
            return Err(error);
        }
    };
    let hash = config_hash(&inputs);
    let pods: Vec<TaskPod> = snapshot.pods.iter().map(TaskPod::from_pod).collect();
    // A pending offsets reset stops the tasks and starts none until it is applied.
    if let Some(action) = offsets::reset_step(ctx, &connector, &pods).await? {
        return Ok(action);
    }
    let previous = connector.status.clone();
    let previous_items = previous
        .as_ref()
        .and_then(|s| s.tasks.as_ref())
        .map(|t| t.items.clone())
        .unwrap_or_default();
    // Progress first: a stalled task is restarted by the plan.
    let readings: Vec<TaskReading> = if ctx.settings.read_progress {
        progress::read_all(&pods, ctx.settings.progress_timeout).await
    } else {
        Vec::new()
    };
    let stalled: BTreeMap<i32, Option<u64>> = readings
        .iter()
        .filter_map(|r| match &r.reading {
            Reading::Report(p) if p.stalled => Some((r.index, p.lag)),
            _ => None,
        })
        .collect();
    let now = Timestamp::now();
    let plan = plan::plan(&Observed {
        inputs: &inputs,
        hash: &hash,
        pods: &pods,
        previous: &previous_items,
        stalled: &stalled,
        now,
    });

    // Apply: the ConfigMap first (new pods mount it), then missing pods.
    apply::config_map(client, &build::config_map(&inputs)).await?;
    for (index, restarts) in &plan.create {
        apply::pod(client, &build::task_pod(&inputs, *index, &hash, *restarts)).await?;
    }
    // Delete orphans, stale pods and failed pods whose restart is due.
    let mut restarted = 0;
    for deletion in &plan.delete {
        apply::delete_pod(client, namespace, &deletion.pod, &deletion.uid).await?;
        if matches!(
            deletion.reason,
            DeleteReason::Restart | DeleteReason::Stalled
        ) {
            restarted += 1;
        }
        tracing::info!(connector = %format!("{namespace}/{name}"), pod = %deletion.pod,
            reason = ?deletion.reason, pod_hash = deletion.hash.as_deref().unwrap_or("none"),
            current_hash = %hash, "deleting task pod");
    }
    if restarted > 0 {
        ctx.metrics.task_restarted(restarted);
    }

    // Readings of deleted pods are stale.
    let readings: Vec<TaskReading> = readings
        .into_iter()
        .filter(|r| {
            !plan.delete.iter().any(|d| {
                pods.iter()
                    .any(|p| p.name == d.pod && p.index == Some(r.index))
            })
        })
        .collect();
    let mut new_status = status::build(&inputs, &plan, &readings, previous.as_ref(), now);
    new_status.autoscaler = autoscaled.as_ref().map(|a| a.status.clone());
    let unchanged = previous.as_ref().is_some_and(|p| {
        KafkaConnectorStatus {
            offset_reset: None,
            offsets: None,
            ..p.clone()
        } == new_status
    });
    if !unchanged {
        apply::status(client, namespace, name, &new_status).await?;
    }

    let mut notes = events::for_transitions(
        previous.as_ref().and_then(|p| p.state),
        previous
            .as_ref()
            .and_then(|p| p.tasks.as_ref())
            .map(|t| t.desired),
        inputs.state,
        inputs.desired_tasks(),
    );
    notes.extend(events::for_decisions(namespace, &plan.decisions));
    if let Some(scaled) = autoscaled.as_ref().and_then(|a| a.scaled.clone()) {
        // The autoscaler's Event says why; the plain "scaling from" one would repeat it.
        notes.retain(|n| n.reason != scaled.reason);
        notes.push(scaled);
    }
    events::publish(&ctx.recorder, &regarding, &notes).await;

    let mut phases: BTreeMap<String, i64> = BTreeMap::new();
    for task in new_status.tasks.iter().flat_map(|t| t.items.iter()) {
        *phases.entry(task.phase.clone()).or_default() += 1;
    }
    ctx.metrics
        .set_tasks(&format!("{namespace}/{name}"), phases);
    if ctx.settings.read_progress {
        offsets::refresh_offsets_in_background(ctx, &connector);
    }

    let running = pods.iter().any(|p| p.phase == PodPhase::Running);
    let mut wake = plan.wake_in;
    if running || !plan.create.is_empty() || !plan.delete.is_empty() {
        wake = Some(wake.map_or(ctx.settings.resync, |w| w.min(ctx.settings.resync)));
    }
    if let Some(next) = autoscale::next_evaluation(ctx, &connector) {
        wake = Some(wake.map_or(next, |w| w.min(next)));
    }
    Ok(match wake {
        // A little past the due time, so the restart is due when we look.
        Some(wait) => Action::requeue(wait + Duration::from_millis(50)),
        None => Action::await_change(),
    })
}

/// Shows an invalid spec in the status (Ready=False, Degraded=True, reason
/// `ConfigurationError`).
async fn write_invalid_status(
    ctx: &Context,
    connector: &KafkaConnector,
    error: &Error,
) -> Result<(), Error> {
    let namespace = connector.metadata.namespace.clone().unwrap_or_default();
    let name = connector.metadata.name.clone().unwrap_or_default();
    let generation = connector.metadata.generation.unwrap_or(0);
    let previous = connector.status.clone().unwrap_or_default();
    let message = error.to_string();
    let desired = vec![
        Desired::new(
            condition_type::READY,
            Status::False,
            reason::CONFIGURATION_ERROR,
            message.clone(),
        ),
        Desired::new(
            condition_type::DEGRADED,
            Status::True,
            reason::CONFIGURATION_ERROR,
            message,
        ),
    ];
    let mut status = KafkaConnectorStatus {
        observed_generation: Some(generation),
        state: Some(ConnectorPhase::Failed),
        offset_reset: None,
        offsets: None,
        autoscaler: None,
        ..previous.clone()
    };
    let kept: Vec<_> = previous
        .conditions
        .iter()
        .filter(|c| c.type_ != condition_type::READY && c.type_ != condition_type::DEGRADED)
        .cloned()
        .collect();
    status.conditions =
        conditions::merge(&previous.conditions, desired, generation, Timestamp::now());
    status.conditions.extend(kept);
    apply::status(&ctx.client, &namespace, &name, &status).await
}

/// What to do after a failed reconcile: an invalid spec waits for a change; anything else is
/// retried with exponential backoff. Every error becomes a Warning Event whose reason is the
/// error's category.
pub fn error_policy(object: Arc<KafkaConnector>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    );
    let category = error.category();
    ctx.metrics.failed(category);
    let note = Note {
        warning: true,
        reason: category,
        action: "Reconcile",
        note: error.to_string(),
        related: None,
    };
    let regarding = object.object_ref(&());
    let recorder = ctx.recorder.clone();
    tokio::spawn(async move { events::publish(&recorder, &regarding, &[note]).await });
    if error.needs_spec_change() {
        tracing::warn!(connector = %key, error = %error, "waiting for the spec to change");
        return Action::await_change();
    }
    let attempt = ctx.record_failure(&key);
    let delay = retry_delay(attempt);
    tracing::warn!(connector = %key, error = %error, attempt, retry_in_s = delay.as_secs(),
        "reconcile failed");
    Action::requeue(delay)
}

//! The reconcile pipeline and the error policy. Each step is a function of the module named
//! after it; the decisions are pure, the I/O at the steps' edges:
//!
//! dereference → finalize → validate → inputs → (reset) → progress → build → plan → apply →
//! report → next wake.

use std::sync::Arc;
use std::time::Instant;

use ferry_crds::status::TaskStatus;
use ferry_crds::KafkaConnector;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::Instrument;

use crate::apply;
use crate::autoscale;
use crate::build::config_hash;
use crate::context::Context;
use crate::dereference::dereference;
use crate::error::{retry_delay, Error};
use crate::events::{self, Note};
use crate::finalizer;
use crate::inputs;
use crate::observe::TaskPod;
use crate::offset_reset_flow;
use crate::plan::{self, Observed};
use crate::progress;
use crate::report::{self, Reconciled};
use crate::status;
use crate::status_writer::{self, StatusPart};
use crate::validate::validated;
use crate::wake;

/// Reconciles one connector, in a span naming it (`connector`, `generation`), which every
/// log line of the reconcile carries.
pub async fn reconcile(object: Arc<KafkaConnector>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let name = object.name_any();
    let namespace = object
        .namespace()
        .ok_or_else(|| Error::InvalidSpec(format!("connector {name} has no namespace")))?;
    let key = format!("{namespace}/{name}");
    let span = tracing::info_span!(
        "reconcile",
        connector = %key,
        generation = object.metadata.generation.unwrap_or(0)
    );
    let result = reconcile_connector(&ctx, &namespace, &name)
        .instrument(span)
        .await;
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
    let Some(snapshot) = dereference(&ctx.client, namespace, name).await? else {
        finalizer::forget_named(ctx, namespace, name);
        return Ok(Action::await_change());
    };
    if let Some(done) = finalizer::finalize(ctx, &snapshot).await? {
        return Ok(done);
    }
    let connector = &snapshot.connector;
    let validated = match validated(connector) {
        Ok(validated) => validated,
        Err(error) => return Err(refuse(ctx, connector, error).await),
    };
    // The autoscaler decides first, so this reconcile already runs the count it chose.
    let autoscaled = autoscale::evaluate(ctx, connector, &snapshot.pods, Timestamp::now()).await;
    let tasks = inputs::task_count_within(
        &connector.spec,
        autoscaled.as_ref().map(|a| a.status.desired_tasks),
    );
    let inputs = match inputs::for_reconcile(&validated, tasks, &ctx.settings) {
        Ok(inputs) => inputs,
        Err(error) => return Err(refuse(ctx, connector, error).await),
    };
    let pods: Vec<TaskPod> = snapshot.pods.iter().map(TaskPod::from_pod).collect();
    // A pending offsets reset stops the tasks and starts none until it is applied.
    if let Some(action) = offset_reset_flow::reset_step(ctx, connector, &pods).await? {
        return Ok(action);
    }
    // Progress first: a stalled task is restarted by the plan.
    let readings = progress::read(&ctx.settings, &pods).await;
    let hash = config_hash(&inputs);
    let now = Timestamp::now();
    let previous: &[TaskStatus] = connector
        .status
        .as_ref()
        .and_then(|s| s.tasks.as_ref())
        .map_or(&[], |t| &t.items);
    let plan = plan::plan(&Observed {
        inputs: &inputs,
        hash: &hash,
        pods: &pods,
        previous,
        stalled: &progress::stalled(&readings),
        now,
    });
    apply::changes(ctx, &inputs, &plan, &hash).await?;
    let reconciled = Reconciled {
        connector,
        inputs: &inputs,
        plan: &plan,
        pods: &pods,
        readings: &readings,
        autoscaled: autoscaled.as_ref(),
        now,
    };
    report::report(ctx, &reconciled).await?;
    let autoscaler = autoscale::next_evaluation(ctx, connector);
    Ok(wake::action(wake::next(
        &plan,
        &pods,
        ctx.settings.resync,
        autoscaler,
    )))
}

/// A spec the operator cannot run: when only a spec change can fix it, shown in the status
/// ([`status::invalid`]). Returns the error the reconcile ends with.
async fn refuse(ctx: &Context, connector: &KafkaConnector, error: Error) -> Error {
    if !error.needs_spec_change() {
        return error;
    }
    let invalid = status::invalid(connector, &error.to_string(), Timestamp::now());
    match status_writer::write(&ctx.client, connector, StatusPart::Main(&invalid)).await {
        Ok(()) => error,
        Err(write_error) => write_error,
    }
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

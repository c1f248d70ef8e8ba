//! Task autoscaling (`spec.autoscaling`).
//!
//! About every `--autoscale-interval-seconds` (15 s) per autoscaled, running connector, the
//! operator reads the signals ([`signals`]: a sink's committed and log-end offsets from Kafka,
//! a source's backlog from its tasks' `/metrics`), adds them to the connector's [`History`],
//! and [`decide`]s the task count. The decision becomes `status.autoscaler` (written with the
//! rest of the status), which [`crate::inputs::task_count`] reads, so the same reconcile
//! creates or deletes the task pods; a change is also a `Scaled` Event.
//!
//! The history lives in the operator's memory. After an operator restart (or a leader
//! change) the first decision keeps the current count and only then do the windows fill
//! again: the scale-down stabilization window starts over, rates are known after two
//! readings, and persistent lag after `persistentLagSeconds`. The history is also forgotten
//! when the connector's generation changes (a changed spec may have fixed a stuck partition).

pub mod decide;
pub mod signals;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use ferry_crds::connector::ConnectorState;
use ferry_crds::status::AutoscalerStatus;
use ferry_crds::KafkaConnector;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub use decide::{decide, Decision, History, Input, PartitionOffsets, Policy, Sample, Target};

use crate::context::Context;
use crate::events::Note;
use crate::inputs::task_count;
use crate::observe::TaskPod;

/// What one evaluation produced for the reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The new `status.autoscaler`.
    pub status: AutoscalerStatus,
    /// The `Scaled` Event, when the count changed.
    pub scaled: Option<Note>,
}

/// The autoscaler's memory of every connector (`namespace/name`).
#[derive(Default)]
pub struct Autoscalers {
    connectors: Mutex<HashMap<String, Memory>>,
}

struct Memory {
    generation: i64,
    history: History,
    last_evaluated: Option<Timestamp>,
}

impl Autoscalers {
    /// Forgets a connector (deleted, or no longer autoscaled).
    pub fn forget(&self, key: &str) {
        if let Ok(mut connectors) = self.connectors.lock() {
            connectors.remove(key);
        }
    }

    /// True when the connector was evaluated less than `interval` ago (a reconcile caused
    /// by a pod change then keeps the last decision).
    fn evaluated_recently(&self, key: &str, now: Timestamp, interval: Duration) -> bool {
        let Ok(connectors) = self.connectors.lock() else {
            return false;
        };
        // A requeue lands a little late or early; a second of slack keeps the period.
        let slack = Duration::from_secs(1).min(interval / 2);
        connectors
            .get(key)
            .and_then(|m| m.last_evaluated)
            .is_some_and(|at| {
                let since = now.as_nanosecond().saturating_sub(at.as_nanosecond());
                since >= 0 && (since as u128) < interval.saturating_sub(slack).as_nanos()
            })
    }

    /// Adds the reading (if any) and decides.
    fn step(
        &self,
        key: &str,
        generation: i64,
        policy: &Policy,
        current: i32,
        reading: Option<Sample>,
        now: Timestamp,
    ) -> Option<Decision> {
        let mut connectors = self.connectors.lock().ok()?;
        let memory = connectors.entry(key.to_string()).or_insert(Memory {
            generation,
            history: History::default(),
            last_evaluated: None,
        });
        if memory.generation != generation {
            memory.generation = generation;
            memory.history = History::default();
        }
        memory.last_evaluated = Some(now);
        let fresh = memory.history.is_empty();
        let reading = reading?;
        memory.history.observe(reading, policy);
        if fresh {
            memory.history.assume(now, current);
        }
        let decision = decide(&memory.history, current, policy, now);
        memory.history.record(now, current, &decision);
        Some(decision)
    }
}

/// Evaluates the autoscaler of `connector` when it is due. `None`: autoscaling is not set.
/// Otherwise the `status.autoscaler` to write: the new decision, or the last one when the
/// connector is not running or was evaluated less than an interval ago.
pub async fn evaluate(
    ctx: &Context,
    connector: &KafkaConnector,
    pods: &[Pod],
    now: Timestamp,
) -> Option<Outcome> {
    let namespace = connector.metadata.namespace.clone().unwrap_or_default();
    let name = connector.metadata.name.clone().unwrap_or_default();
    let key = format!("{namespace}/{name}");
    let Some(spec) = &connector.spec.autoscaling else {
        ctx.autoscalers.forget(&key);
        ctx.metrics.forget_autoscaler(&namespace, &name);
        return None;
    };
    let previous = connector.status.as_ref().and_then(|s| s.autoscaler.clone());
    let plugin_max = connector
        .spec
        .source
        .as_ref()
        .and_then(|s| s.plugin.max_tasks())
        .or_else(|| {
            connector
                .spec
                .sink
                .as_ref()
                .and_then(|s| s.plugin.max_tasks())
        });
    let mut policy = Policy::from_spec(spec, plugin_max, connector.spec.is_source());
    if let Some(ms) = connector
        .spec
        .kafka
        .config
        .get("session.timeout.ms")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        policy.reassignment = Duration::from_millis(ms) * decide::REASSIGNMENT_SESSIONS;
    }
    let current = task_count(connector).clamp(policy.floor(), policy.ceiling());
    let keep = |reason: String| Outcome {
        status: AutoscalerStatus {
            desired_tasks: current,
            reason,
            ..previous.clone().unwrap_or_default()
        },
        scaled: None,
    };
    if connector.spec.state != ConnectorState::Running {
        ctx.autoscalers.forget(&key);
        return Some(keep(format!(
            "the connector is {}: the autoscaler waits; keeping {}",
            connector.spec.state,
            decide::tasks(current)
        )));
    }
    let interval = ctx.settings.autoscale_interval;
    if let Some(previous) = &previous {
        if ctx.autoscalers.evaluated_recently(&key, now, interval) {
            return Some(Outcome {
                status: AutoscalerStatus {
                    desired_tasks: current,
                    ..previous.clone()
                },
                scaled: None,
            });
        }
    }

    let task_pods: Vec<TaskPod> = pods.iter().map(TaskPod::from_pod).collect();
    let generation = connector.metadata.generation.unwrap_or(0);
    let reading = match signals::read(
        &ctx.client,
        connector,
        &task_pods,
        ctx.settings.progress_timeout,
    )
    .await
    {
        Ok(input) => Some(Sample {
            at: now,
            tasks: current,
            input,
        }),
        Err(error) => {
            tracing::warn!(error = %error, "autoscaler: no reading");
            ctx.autoscalers
                .step(&key, generation, &policy, current, None, now);
            return Some(keep(format!("{error}; keeping {}", decide::tasks(current))));
        }
    };
    let Some(decision) = ctx
        .autoscalers
        .step(&key, generation, &policy, current, reading, now)
    else {
        return Some(keep(format!(
            "the autoscaler's memory is unavailable; keeping {}",
            decide::tasks(current)
        )));
    };
    ctx.metrics
        .set_autoscaler(&namespace, &name, &decision, current);
    let changed = decision.desired != current;
    if changed {
        tracing::info!(from = current, to = decision.desired,
            reason = %decision.reason, "autoscaler: scaling");
    } else {
        tracing::debug!(tasks = current, reason = %decision.reason,
            "autoscaler: keeping the count");
    }
    Some(outcome(previous.as_ref(), current, &decision, now))
}

/// When to look at an autoscaled, running connector again: the autoscale interval.
pub fn next_evaluation(ctx: &Context, connector: &KafkaConnector) -> Option<Duration> {
    (connector.spec.autoscaling.is_some() && connector.spec.state == ConnectorState::Running)
        .then_some(ctx.settings.autoscale_interval)
}

/// Forgets a deleted connector's history and metrics.
pub fn forget(ctx: &Context, namespace: &str, name: &str) {
    ctx.autoscalers.forget(&format!("{namespace}/{name}"));
    ctx.metrics.forget_autoscaler(namespace, name);
}

/// Longest Event note the API server accepts is 1 kB; longer reasons are cut.
const MAX_NOTE_BYTES: usize = 1000;

fn shorten(text: String) -> String {
    if text.len() <= MAX_NOTE_BYTES {
        return text;
    }
    let mut end = MAX_NOTE_BYTES - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The status and Event of a decision (pure).
pub fn outcome(
    previous: Option<&AutoscalerStatus>,
    current: i32,
    decision: &Decision,
    now: Timestamp,
) -> Outcome {
    let changed = decision.desired != current;
    let round = |r: Option<f64>| {
        r.map(|r| {
            if r >= i64::MAX as f64 {
                i64::MAX
            } else {
                r.round() as i64
            }
        })
    };
    Outcome {
        status: AutoscalerStatus {
            desired_tasks: decision.desired,
            reason: decision.reason.clone(),
            at: if changed {
                Some(Time(now))
            } else {
                previous.and_then(|p| p.at.clone())
            },
            lag: decision.lag,
            persistent_lag: decision.persistent_lag,
            consumed_per_second: round(decision.consumed_per_second),
            produced_per_second: round(decision.produced_per_second),
        },
        scaled: changed.then(|| Note {
            warning: false,
            reason: "Scaled",
            // Events with the same reason and action within minutes become one series (only
            // its count changes): each direction gets its own action.
            action: if decision.desired > current {
                "ScaleUp"
            } else {
                "ScaleDown"
            },
            note: shorten(format!(
                "autoscaler: from {current} to {} tasks: {}",
                decision.desired, decision.reason
            )),
            related: None,
        }),
    }
}

/// `connector` as the rest of the reconcile should see it: with the autoscaler's new
/// decision in its status, so the task count follows it in this same reconcile.
pub fn with_decision(connector: &KafkaConnector, outcome: Option<&Outcome>) -> KafkaConnector {
    let mut connector = connector.clone();
    if let Some(outcome) = outcome {
        let status = connector.status.get_or_insert_with(Default::default);
        status.autoscaler = Some(outcome.status.clone());
    }
    connector
}

#[cfg(test)]
mod tests;

//! The report step: what one reconcile found and did, shown to the user. The status (written
//! by [`crate::status_writer`], the one writer of status), the Events of its decisions, the
//! task phase metrics, and a background read of the offsets when one is due.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferry_crds::status::condition_type;
use ferry_crds::{KafkaConnector, KafkaConnectorStatus};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;

use crate::autoscale;
use crate::build::TaskInputs;
use crate::context::Context;
use crate::error::Error;
use crate::events::{self, Note};
use crate::observe::TaskPod;
use crate::offsets_refresh;
use crate::plan::Plan;
use crate::status::{self, TaskReading};
use crate::status_writer;

/// What one reconcile found and decided.
#[derive(Clone, Debug)]
pub struct Reconciled<'a> {
    /// The connector as read at the start of the reconcile.
    pub connector: &'a KafkaConnector,
    /// Its inputs.
    pub inputs: &'a TaskInputs,
    /// The plan that was applied.
    pub plan: &'a Plan,
    /// The task pods as read at the start of the reconcile.
    pub pods: &'a [TaskPod],
    /// The tasks' progress readings.
    pub readings: &'a [TaskReading],
    /// The autoscaler's evaluation, when the connector is autoscaled.
    pub autoscaled: Option<&'a autoscale::Outcome>,
    /// When the reconcile looked.
    pub now: Timestamp,
}

/// Reports the reconcile: status, Events, metrics, and the offsets read when due.
pub async fn report(ctx: &Arc<Context>, reconciled: &Reconciled<'_>) -> Result<(), Error> {
    let connector = reconciled.connector;
    let next = status_of(reconciled);
    status_writer::write_main_if_changed(&ctx.client, connector, &next).await?;
    events::publish(
        &ctx.recorder,
        &connector.object_ref(&()),
        &notes(reconciled),
    )
    .await;
    ctx.metrics.set_tasks(
        &format!("{}/{}", reconciled.inputs.namespace, reconciled.inputs.name),
        phase_counts(&next),
    );
    ctx.metrics.set_replication_slot(
        &reconciled.inputs.namespace,
        &reconciled.inputs.name,
        next.replication_slot
            .as_ref()
            .map(|slot| (slot, slot_advancing(&next))),
    );
    if ctx.settings.read_progress {
        offsets_refresh::refresh_offsets_in_background(ctx, connector);
    }
    Ok(())
}

/// Whether the status says a task reads the replication slot
/// (`ReplicationSlotAdvancing=True`).
pub fn slot_advancing(status: &KafkaConnectorStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == condition_type::REPLICATION_SLOT_ADVANCING && c.status == "True")
}

/// The main part of the status (pure): built from the plan and the readings of the pods the
/// plan keeps (readings of deleted pods are stale), with the autoscaler's decision.
pub fn status_of(r: &Reconciled<'_>) -> KafkaConnectorStatus {
    let deleted = |index: i32| {
        r.plan.delete.iter().any(|d| {
            r.pods
                .iter()
                .any(|p| p.name == d.pod && p.index == Some(index))
        })
    };
    let readings: Vec<TaskReading> = r
        .readings
        .iter()
        .filter(|reading| !deleted(reading.index))
        .cloned()
        .collect();
    let previous = r.connector.status.as_ref();
    let mut next = status::build(r.inputs, r.plan, &readings, previous, r.now);
    next.autoscaler = r.autoscaled.map(|a| a.status.clone());
    next
}

/// The Events of the reconcile (pure): run state and task count changes, the plan's
/// decisions, and the autoscaler's `Scaled` Event in place of the plain one.
pub fn notes(r: &Reconciled<'_>) -> Vec<Note> {
    let previous = r.connector.status.as_ref();
    let mut notes = events::for_transitions(
        previous.and_then(|p| p.state),
        previous.and_then(|p| p.tasks.as_ref()).map(|t| t.desired),
        r.inputs.state,
        r.inputs.desired_tasks(),
    );
    notes.extend(events::for_decisions(
        &r.inputs.namespace,
        &r.plan.decisions,
    ));
    if let Some(scaled) = r.autoscaled.and_then(|a| a.scaled.clone()) {
        // The autoscaler's Event says why; the plain "scaling from" one would repeat it.
        notes.retain(|n| n.reason != scaled.reason);
        notes.push(scaled);
    }
    notes
}

/// Task count per phase, for the metrics (pure).
pub fn phase_counts(status: &KafkaConnectorStatus) -> BTreeMap<String, i64> {
    let mut phases: BTreeMap<String, i64> = BTreeMap::new();
    for task in status.tasks.iter().flat_map(|t| t.items.iter()) {
        *phases.entry(task.phase.clone()).or_default() += 1;
    }
    phases
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, observed_pod, ready};
    use crate::plan::{plan, Observed};
    use crate::status::Reading;
    use ferry_crds::contract::TaskProgress;

    const T0: &str = "2026-11-22T10:00:00Z";

    #[test]
    fn the_lag_is_empty_while_the_offsets_cannot_be_read() {
        let mut c = fixtures::sink("  tasks: 1");
        c.status = Some(
            serde_yaml::from_str(
                "state: Running\n\
                 lag: 40\n\
                 offsets: {partitions: 1, at: '2026-11-22T10:00:03Z', \
                 error: 'secret shop/kafka-user: has no key \"password\"'}",
            )
            .unwrap(),
        );
        let inputs = fixtures::inputs(&c);
        let hash = crate::build::config_hash(&inputs);
        let pods = vec![observed_pod(&inputs, 0, 0, "u", &ready(T0))];
        let now: Timestamp = "2026-11-22T10:00:05Z".parse().unwrap();
        let p = plan(&Observed {
            inputs: &inputs,
            hash: &hash,
            pods: &pods,
            previous: &[],
            stalled: &BTreeMap::new(),
            now,
        });
        let readings = [TaskReading {
            index: 0,
            reading: Reading::Report(TaskProgress {
                lag: Some(7),
                ..TaskProgress::default()
            }),
        }];
        let reconciled = Reconciled {
            connector: &c,
            inputs: &inputs,
            plan: &p,
            pods: &pods,
            readings: &readings,
            autoscaled: None,
            now,
        };
        let s = status_of(&reconciled);
        assert_eq!(s.lag, None, "not known now: {s:?}");
        let offsets = s
            .conditions
            .iter()
            .find(|c| c.type_ == "OffsetsReadable")
            .unwrap();
        assert_eq!(
            (offsets.status.as_str(), offsets.reason.as_str()),
            ("False", "OffsetsUnreadable")
        );
        assert!(offsets
            .message
            .ends_with("cannot be applied: secret shop/kafka-user: has no key \"password\""));
        assert_eq!(phase_counts(&s).get("Running"), Some(&1));

        let mut read = c.clone();
        read.status.as_mut().unwrap().offsets = Some(
            serde_yaml::from_str("{partitions: 1, lag: 7, at: '2026-11-22T10:00:04Z'}").unwrap(),
        );
        let s = status_of(&Reconciled {
            connector: &read,
            ..reconciled
        });
        assert_eq!(s.lag, Some(7));
        let offsets = s
            .conditions
            .iter()
            .find(|c| c.type_ == "OffsetsReadable")
            .unwrap();
        assert_eq!(
            (offsets.status.as_str(), offsets.reason.as_str()),
            ("True", "OffsetsRead")
        );
    }
}

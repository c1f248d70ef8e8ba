//! The operator's Prometheus metrics, served on `/metrics`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use ferry_crds::status::ReplicationSlotStatus;

/// Label set `{result}` of `ferry_operator_reconciles_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success` or `error`.
    pub result: String,
}

/// Label set `{reason}` of `ferry_operator_reconcile_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The error's category.
    pub reason: String,
}

/// Label set `{state}` of `ferry_operator_tasks`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// Task phase (`Running`, `BackingOff`, ...).
    pub state: String,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ReasonLabels, Counter>,
    restarts: Counter,
    tasks: Family<StateLabels, Gauge>,
    leader: Gauge,
    duration: Histogram,
    tasks_by_connector: Mutex<HashMap<String, BTreeMap<String, i64>>>,
    offsets: OffsetMetrics,
    autoscaler: AutoscalerMetrics,
    slots: SlotMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Creates and registers the metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferry_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let errors = Family::<ReasonLabels, Counter>::default();
        let restarts = Counter::default();
        let tasks = Family::<StateLabels, Gauge>::default();
        let leader = Gauge::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register(
            "reconciles",
            "Reconciles of KafkaConnectors, by result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by error category",
            errors.clone(),
        );
        registry.register(
            "task_restarts",
            "Failed task pods the operator restarted",
            restarts.clone(),
        );
        registry.register(
            "tasks",
            "Task pods of all connectors, by task phase",
            tasks.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica leads (holds the leader election Lease, or runs without \
             election) and reconciles connectors; 0 while it waits",
            leader.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            duration.clone(),
        );
        let offsets = OffsetMetrics::register(&mut registry);
        let autoscaler = AutoscalerMetrics::register(&mut registry);
        let slots = SlotMetrics::register(&mut registry);
        Metrics {
            autoscaler,
            slots,
            offsets,
            registry,
            reconciles,
            errors,
            restarts,
            tasks,
            leader,
            duration,
            tasks_by_connector: Mutex::new(HashMap::new()),
        }
    }

    /// Records how long a reconcile took, whatever its result.
    pub fn observe_duration(&self, took: Duration) {
        self.duration.observe(took.as_secs_f64());
    }

    /// Records a successful reconcile.
    pub fn reconciled(&self) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: "success".into(),
            })
            .inc();
    }

    /// Records a failed reconcile.
    pub fn failed(&self, category: &str) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: "error".into(),
            })
            .inc();
        self.errors
            .get_or_create(&ReasonLabels {
                reason: category.into(),
            })
            .inc();
    }

    /// Records restarted tasks.
    pub fn task_restarted(&self, count: u64) {
        self.restarts.inc_by(count);
    }

    /// Sets the task phases of one connector (`key` = `namespace/name`); an empty map
    /// forgets the connector.
    pub fn set_tasks(&self, key: &str, phases: BTreeMap<String, i64>) {
        let Ok(mut by_connector) = self.tasks_by_connector.lock() else {
            return;
        };
        if phases.is_empty() {
            by_connector.remove(key);
        } else {
            by_connector.insert(key.to_string(), phases);
        }
        let mut totals: BTreeMap<String, i64> = BTreeMap::new();
        for phases in by_connector.values() {
            for (phase, count) in phases {
                *totals.entry(phase.clone()).or_default() += count;
            }
        }
        self.tasks.clear();
        for (state, count) in totals {
            self.tasks.get_or_create(&StateLabels { state }).set(count);
        }
    }

    /// Sets the replication slot gauges of a `postgresCdc` connector from its status: whether
    /// a task reads the slot (condition `ReplicationSlotAdvancing`) and the WAL it retains;
    /// `None` forgets the connector's slot.
    pub fn set_replication_slot(
        &self,
        namespace: &str,
        connector: &str,
        slot: Option<(&ReplicationSlotStatus, bool)>,
    ) {
        let Ok(mut known) = self.slots.known.lock() else {
            return;
        };
        let key = format!("{namespace}/{connector}");
        let labels = slot.map(|(s, _)| SlotLabels {
            namespace: namespace.into(),
            connector: connector.into(),
            slot: s.name.clone(),
        });
        if let Some(old) = known.get(&key).filter(|old| Some(*old) != labels.as_ref()) {
            self.slots.advancing.remove(old);
            self.slots.retained.remove(old);
        }
        match (slot, labels) {
            (Some((status, advancing)), Some(labels)) => {
                self.slots
                    .advancing
                    .get_or_create(&labels)
                    .set(i64::from(advancing));
                match status.retained_wal_bytes {
                    Some(bytes) => {
                        self.slots.retained.get_or_create(&labels).set(bytes);
                    }
                    None => {
                        self.slots.retained.remove(&labels);
                    }
                }
                known.insert(key, labels);
            }
            _ => {
                known.remove(&key);
            }
        }
    }

    /// Records an autoscaler decision for a connector that ran `current` tasks.
    pub fn set_autoscaler(
        &self,
        namespace: &str,
        connector: &str,
        decision: &crate::autoscale::Decision,
        current: i32,
    ) {
        self.autoscaler.set(namespace, connector, decision, current);
    }

    /// Forgets the autoscaler series of a connector (deleted, or no longer autoscaled).
    pub fn forget_autoscaler(&self, namespace: &str, connector: &str) {
        self.autoscaler.forget(namespace, connector);
    }

    /// Counts an applied (`applied`) or refused (`failed`) offsets reset.
    pub fn offset_reset(&self, outcome: &str) {
        self.offsets
            .resets
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Sets the committed offset and lag of every partition a sink connector reads,
    /// forgetting partitions it no longer reads; an empty list forgets the connector.
    pub fn set_sink_offsets(
        &self,
        namespace: &str,
        connector: &str,
        partitions: Vec<SinkPartitionOffset>,
    ) {
        let Ok(mut known) = self.offsets.known.lock() else {
            return;
        };
        let key = format!("{namespace}/{connector}");
        let labels: Vec<PartitionLabels> = partitions
            .iter()
            .map(|p| PartitionLabels {
                namespace: namespace.into(),
                connector: connector.into(),
                topic: p.topic.clone(),
                partition: p.partition.to_string(),
            })
            .collect();
        for old in known.remove(&key).unwrap_or_default() {
            if !labels.contains(&old) {
                self.offsets.committed.remove(&old);
                self.offsets.lag.remove(&old);
            }
        }
        for (labels, p) in labels.iter().zip(&partitions) {
            match p.committed {
                Some(offset) => {
                    self.offsets.committed.get_or_create(labels).set(offset);
                }
                None => {
                    self.offsets.committed.remove(labels);
                }
            }
            self.offsets.lag.get_or_create(labels).set(p.lag);
        }
        if !labels.is_empty() {
            known.insert(key, labels);
        }
    }

    /// Sets how many source partitions of a source connector have a stored offset.
    pub fn set_source_offsets(&self, namespace: &str, connector: &str, partitions: i64) {
        self.offsets
            .source_partitions
            .get_or_create(&ConnectorLabels {
                namespace: namespace.into(),
                connector: connector.into(),
            })
            .set(partitions);
    }

    /// Forgets the offsets metrics of a deleted connector.
    pub fn forget_offsets(&self, namespace: &str, connector: &str) {
        self.set_sink_offsets(namespace, connector, Vec::new());
        self.offsets.source_partitions.remove(&ConnectorLabels {
            namespace: namespace.into(),
            connector: connector.into(),
        });
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Label set `{outcome}` of `ferry_operator_offset_resets_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `applied` or `failed`.
    pub outcome: String,
}

/// Label set `{namespace, connector, topic, partition}` of the sink offsets metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// The connector's namespace.
    pub namespace: String,
    /// The connector's name.
    pub connector: String,
    /// Topic.
    pub topic: String,
    /// Partition number.
    pub partition: String,
}

/// One partition a sink reads, as read from Kafka.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkPartitionOffset {
    /// Topic.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// The consumer group's committed offset, if any.
    pub committed: Option<i64>,
    /// Records after the committed offset.
    pub lag: i64,
}

/// Offsets metrics, read from Kafka about once a minute per connector.
struct OffsetMetrics {
    resets: Family<OutcomeLabels, Counter>,
    committed: Family<PartitionLabels, Gauge>,
    lag: Family<PartitionLabels, Gauge>,
    source_partitions: Family<ConnectorLabels, Gauge>,
    known: Mutex<HashMap<String, Vec<PartitionLabels>>>,
}

impl OffsetMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = OffsetMetrics {
            resets: Family::default(),
            committed: Family::default(),
            lag: Family::default(),
            source_partitions: Family::default(),
            known: Mutex::new(HashMap::new()),
        };
        registry.register(
            "offset_resets",
            "Offsets resets (spec.offsets.reset) by outcome: applied, or failed with the offsets untouched",
            m.resets.clone(),
        );
        registry.register(
            "sink_committed_offset",
            "Committed offset of a sink connector's consumer group, per topic partition",
            m.committed.clone(),
        );
        registry.register(
            "sink_partition_lag",
            "Records after a sink connector's committed offset, per topic partition",
            m.lag.clone(),
        );
        registry.register(
            "source_offset_partitions",
            "Source partitions of a source connector with a stored offset",
            m.source_partitions.clone(),
        );
        m
    }
}

/// Label set `{namespace, connector, slot}` of the `ferry_operator_replication_slot_*` gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SlotLabels {
    /// The connector's namespace.
    pub namespace: String,
    /// The connector's name.
    pub connector: String,
    /// The replication slot's name.
    pub slot: String,
}

/// The replication slots of `postgresCdc` connectors, from their status.
struct SlotMetrics {
    advancing: Family<SlotLabels, Gauge>,
    retained: Family<SlotLabels, Gauge>,
    /// The labels set for each `namespace/connector`, to forget a renamed slot.
    known: Mutex<HashMap<String, SlotLabels>>,
}

impl SlotMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = SlotMetrics {
            advancing: Family::default(),
            retained: Family::default(),
            known: Mutex::new(HashMap::new()),
        };
        registry.register(
            "replication_slot_advancing",
            "1 while every task of a postgresCdc connector runs and reads its replication slot; \
             0 while none does (a task failed, is starting, or the connector is paused or \
             stopped) and PostgreSQL keeps WAL for the slot",
            m.advancing.clone(),
        );
        registry.register(
            "replication_slot_retained_wal_bytes",
            "Bytes of WAL PostgreSQL keeps for a postgresCdc connector's replication slot, as \
             its task last measured (status.replicationSlot.retainedWalBytes)",
            m.retained.clone(),
        );
        m
    }
}

/// Label set `{namespace, connector}` of the `ferry_operator_autoscaler_*` gauges and of
/// `ferry_operator_source_offset_partitions`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectorLabels {
    /// The connector's namespace.
    pub namespace: String,
    /// The connector's name.
    pub connector: String,
}

/// Label set `{namespace, connector, direction}` of `ferry_operator_autoscaler_scalings_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScalingLabels {
    /// The connector's namespace.
    pub namespace: String,
    /// The connector's name.
    pub connector: String,
    /// `up` or `down`.
    pub direction: String,
}

/// The autoscaler's inputs and decisions, per connector.
struct AutoscalerMetrics {
    lag: Family<ConnectorLabels, Gauge>,
    persistent_lag: Family<ConnectorLabels, Gauge>,
    consumed: Family<ConnectorLabels, Gauge<f64, AtomicU64>>,
    produced: Family<ConnectorLabels, Gauge<f64, AtomicU64>>,
    recommended: Family<ConnectorLabels, Gauge>,
    desired: Family<ConnectorLabels, Gauge>,
    scalings: Family<ScalingLabels, Counter>,
}

impl AutoscalerMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = AutoscalerMetrics {
            lag: Family::default(),
            persistent_lag: Family::default(),
            consumed: Family::default(),
            produced: Family::default(),
            recommended: Family::default(),
            desired: Family::default(),
            scalings: Family::default(),
        };
        registry.register(
            "autoscaler_lag",
            "Lag the autoscaler counted (records; sources: the backlog), without persistent lag",
            m.lag.clone(),
        );
        registry.register(
            "autoscaler_persistent_lag",
            "Lag of stuck partitions the autoscaler left out",
            m.persistent_lag.clone(),
        );
        registry.register(
            "autoscaler_consumed_records_per_second",
            "Records a sink connector committed per second over the last minute",
            m.consumed.clone(),
        );
        registry.register(
            "autoscaler_produced_records_per_second",
            "Records produced to a sink connector's topics per second over the last minute",
            m.produced.clone(),
        );
        registry.register(
            "autoscaler_recommended_tasks",
            "Task count the signals asked for, within the bounds, before stabilization and step limits",
            m.recommended.clone(),
        );
        registry.register(
            "autoscaler_desired_tasks",
            "Task count the autoscaler chose",
            m.desired.clone(),
        );
        registry.register(
            "autoscaler_scalings",
            "Changes of the task count made by the autoscaler, by direction",
            m.scalings.clone(),
        );
        m
    }

    fn set(
        &self,
        namespace: &str,
        connector: &str,
        decision: &crate::autoscale::Decision,
        current: i32,
    ) {
        let labels = ConnectorLabels {
            namespace: namespace.into(),
            connector: connector.into(),
        };
        self.lag
            .get_or_create(&labels)
            .set(decision.lag.unwrap_or(0));
        self.persistent_lag
            .get_or_create(&labels)
            .set(decision.persistent_lag.unwrap_or(0));
        for (family, value) in [
            (&self.consumed, decision.consumed_per_second),
            (&self.produced, decision.produced_per_second),
        ] {
            match value {
                Some(v) => {
                    family.get_or_create(&labels).set(v);
                }
                None => {
                    family.remove(&labels);
                }
            }
        }
        self.recommended
            .get_or_create(&labels)
            .set(decision.recommendation.into());
        self.desired
            .get_or_create(&labels)
            .set(decision.desired.into());
        if decision.desired != current {
            let direction = if decision.desired > current {
                "up"
            } else {
                "down"
            };
            self.scalings
                .get_or_create(&ScalingLabels {
                    namespace: namespace.into(),
                    connector: connector.into(),
                    direction: direction.into(),
                })
                .inc();
        }
    }

    fn forget(&self, namespace: &str, connector: &str) {
        let labels = ConnectorLabels {
            namespace: namespace.into(),
            connector: connector.into(),
        };
        for family in [
            &self.lag,
            &self.persistent_lag,
            &self.recommended,
            &self.desired,
        ] {
            family.remove(&labels);
        }
        self.consumed.remove(&labels);
        self.produced.remove(&labels);
        for direction in ["up", "down"] {
            self.scalings.remove(&ScalingLabels {
                namespace: namespace.into(),
                connector: connector.into(),
                direction: direction.into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_slot_gauges_follow_the_status_and_are_forgotten() {
        let m = Metrics::new();
        let slot = ReplicationSlotStatus {
            name: "ferry_shop_orders".into(),
            retained_wal_bytes: Some(4096),
            ..ReplicationSlotStatus::default()
        };
        m.set_replication_slot("shop", "orders", Some((&slot, false)));
        let text = m.encode().unwrap();
        let labels = r#"{namespace="shop",connector="orders",slot="ferry_shop_orders"}"#;
        assert!(
            text.contains(&format!(
                "ferry_operator_replication_slot_advancing{labels} 0"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "ferry_operator_replication_slot_retained_wal_bytes{labels} 4096"
            )),
            "{text}"
        );
        let renamed = ReplicationSlotStatus {
            name: "other".into(),
            ..ReplicationSlotStatus::default()
        };
        m.set_replication_slot("shop", "orders", Some((&renamed, true)));
        let text = m.encode().unwrap();
        assert!(!text.contains("ferry_shop_orders"), "{text}");
        assert!(text.contains(r#"ferry_operator_replication_slot_advancing{namespace="shop",connector="orders",slot="other"} 1"#), "{text}");
        assert!(
            !text.contains("replication_slot_retained_wal_bytes{"),
            "{text}"
        );
        m.set_replication_slot("shop", "orders", None);
        assert!(!m.encode().unwrap().contains("slot=\""));
    }

    #[test]
    fn exposes_the_documented_names() {
        let m = Metrics::new();
        m.observe_duration(Duration::from_millis(20));
        m.reconciled();
        m.failed("Conflict");
        m.task_restarted(2);
        m.set_tasks("ns/a", BTreeMap::from([("Running".to_string(), 2)]));
        m.set_tasks("ns/b", BTreeMap::from([("Running".to_string(), 1)]));
        assert!(m.encode().unwrap().contains("ferry_operator_leader 0"));
        m.set_leader(true);
        let text = m.encode().unwrap();
        for expected in [
            "ferry_operator_reconciles_total{result=\"success\"} 1",
            "ferry_operator_reconciles_total{result=\"error\"} 1",
            "ferry_operator_reconcile_errors_total{reason=\"Conflict\"} 1",
            "ferry_operator_task_restarts_total 2",
            "ferry_operator_tasks{state=\"Running\"} 3",
            "ferry_operator_reconcile_duration_seconds_count 1",
            "ferry_operator_leader 1",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
        m.offset_reset("applied");
        let partition = |partition, committed, lag| SinkPartitionOffset {
            topic: "orders".into(),
            partition,
            committed,
            lag,
        };
        m.set_sink_offsets(
            "ns",
            "a",
            vec![partition(0, Some(40), 60), partition(1, None, 7)],
        );
        m.set_source_offsets("ns", "s", 1);
        let text = m.encode().unwrap();
        for expected in [
            "ferry_operator_offset_resets_total{outcome=\"applied\"} 1",
            "ferry_operator_sink_committed_offset{namespace=\"ns\",connector=\"a\",topic=\"orders\",partition=\"0\"} 40",
            "ferry_operator_sink_partition_lag{namespace=\"ns\",connector=\"a\",topic=\"orders\",partition=\"1\"} 7",
            "ferry_operator_source_offset_partitions{namespace=\"ns\",connector=\"s\"} 1",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
        assert!(
            !text.contains("partition=\"1\"} 0"),
            "no committed offset, no sample"
        );
        m.set_sink_offsets("ns", "a", vec![partition(0, Some(50), 50)]);
        assert!(!m.encode().unwrap().contains("partition=\"1\""));
        m.forget_offsets("ns", "a");
        m.forget_offsets("ns", "s");
        let text = m.encode().unwrap();
        assert!(!text.contains("connector=\"a\""), "{text}");
        assert!(!text.contains("connector=\"s\""), "{text}");
        m.set_tasks("ns/a", BTreeMap::new());
        assert!(m
            .encode()
            .unwrap()
            .contains("ferry_operator_tasks{state=\"Running\"} 1"));
    }
}

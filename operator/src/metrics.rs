//! The operator's Prometheus metrics, served on `/metrics`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

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
    duration: Histogram,
    tasks_by_connector: Mutex<HashMap<String, BTreeMap<String, i64>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferry_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let errors = Family::<ReasonLabels, Counter>::default();
        let restarts = Counter::default();
        let tasks = Family::<StateLabels, Gauge>::default();
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
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            duration.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            restarts,
            tasks,
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

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_documented_names() {
        let m = Metrics::new();
        m.observe_duration(Duration::from_millis(20));
        m.reconciled();
        m.failed("Conflict");
        m.task_restarted(2);
        m.set_tasks("ns/a", BTreeMap::from([("Running".to_string(), 2)]));
        m.set_tasks("ns/b", BTreeMap::from([("Running".to_string(), 1)]));
        let text = m.encode().unwrap();
        for expected in [
            "ferry_operator_reconciles_total{result=\"success\"} 1",
            "ferry_operator_reconciles_total{result=\"error\"} 1",
            "ferry_operator_reconcile_errors_total{reason=\"Conflict\"} 1",
            "ferry_operator_task_restarts_total 2",
            "ferry_operator_tasks{state=\"Running\"} 3",
            "ferry_operator_reconcile_duration_seconds_count 1",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
        m.set_tasks("ns/a", BTreeMap::new());
        assert!(m
            .encode()
            .unwrap()
            .contains("ferry_operator_tasks{state=\"Running\"} 1"));
    }
}

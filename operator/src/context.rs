//! What every reconcile shares: the API client, the Event recorder, the metrics, the settings
//! and the per-connector error backoff.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::events::{Recorder, Reporter};
use kube::Client;

use crate::metrics::Metrics;

/// Operator settings that shape the reconcile.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Runner image for connectors that name none.
    pub runner_image: String,
    /// How often a connector with running tasks is looked at again (progress freshness).
    pub resync: Duration,
    /// Timeout of one `/progress` request to a task.
    pub progress_timeout: Duration,
    /// Whether to read the tasks' `/progress` and the connectors' offsets in Kafka for
    /// `status.offsets` (off in tests without task pods or Kafka).
    pub read_progress: bool,
    /// How often an autoscaled connector's lag is read and its task count decided.
    pub autoscale_interval: Duration,
    /// Default pod template of task pods, completed field by field by each connector's
    /// `spec.template.pod` ([`crate::task_template`]).
    pub task_pod_template: ferry_crds::connector::PodTemplateSpec,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            runner_image: crate::names::default_runner_image(),
            resync: Duration::from_secs(15),
            progress_timeout: Duration::from_secs(2),
            read_progress: true,
            autoscale_interval: Duration::from_secs(15),
            task_pod_template: Default::default(),
        }
    }
}

/// Shared state of the controller.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Publishes Events about connectors.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Settings.
    pub settings: Settings,
    /// The autoscaler's memory of each autoscaled connector.
    pub autoscalers: crate::autoscale::Autoscalers,
    /// Consecutive failed reconciles per connector (`namespace/name`).
    failures: Mutex<HashMap<String, u32>>,
    /// Reads of connectors' offsets running in the background.
    pub offset_reads: OffsetReads,
}

/// The background reads of connectors' offsets: one at a time per connector, and at most
/// [`OffsetReads::AT_ONCE`] in all, so that reconciles never wait for Kafka and a thousand
/// new connectors do not open a thousand Kafka clients at once.
#[derive(Debug)]
pub struct OffsetReads {
    running: Mutex<HashSet<String>>,
    slots: tokio::sync::Semaphore,
}

impl Default for OffsetReads {
    fn default() -> Self {
        OffsetReads {
            running: Mutex::new(HashSet::new()),
            slots: tokio::sync::Semaphore::new(Self::AT_ONCE),
        }
    }
}

impl OffsetReads {
    /// Most reads at once.
    pub const AT_ONCE: usize = 4;

    /// Marks a read of `key` as running; false when one already is.
    pub fn start(&self, key: &str) -> bool {
        self.running
            .lock()
            .map(|mut r| r.insert(key.to_string()))
            .unwrap_or(false)
    }

    /// Marks the read of `key` as finished.
    pub fn finish(&self, key: &str) {
        if let Ok(mut r) = self.running.lock() {
            r.remove(key);
        }
    }

    /// Waits for a free slot; the read holds it until the permit is dropped.
    pub async fn slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.slots.acquire().await.ok()
    }
}

impl Context {
    /// Creates the context. `instance` identifies this operator replica in Events.
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        settings: Settings,
        instance: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: crate::names::FIELD_MANAGER.to_string(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            settings,
            autoscalers: crate::autoscale::Autoscalers::default(),
            failures: Mutex::new(HashMap::new()),
            offset_reads: OffsetReads::default(),
        }
    }

    /// Counts a failed reconcile of `key` and returns how many failed in a row.
    pub fn record_failure(&self, key: &str) -> u32 {
        match self.failures.lock() {
            Ok(mut failures) => {
                let count = failures.entry(key.to_string()).or_insert(0);
                *count = count.saturating_add(1);
                *count
            }
            Err(_) => 1,
        }
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn record_success(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }
}

//! The `KafkaConnector` resource: one pipeline between Kafka and one external system.
//!
//! Every field's `///` comment is what `kubectl explain kafkaconnector.spec...` shows. What
//! the OpenAPI schema cannot say (exactly one of `source`/`sink`, exactly one plugin block,
//! cross-field limits, no credentials in `kafka.config`) is checked by the API server through
//! CEL rules (`x-kubernetes-validations`) attached here; see [`crate::schema`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::jiff::Timestamp;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::errors::ErrorHandling;
use crate::pipeline::{Converters, TransformSpec};
use crate::plugins::{SinkPlugin, SourcePlugin, SINK_PLUGINS, SOURCE_PLUGINS};
use crate::schema;
use crate::status::KafkaConnectorStatus;

/// Most tasks one connector may run.
pub const MAX_TASKS: i32 = 1000;
/// Default `spec.restartPolicy.initialBackoffSeconds`.
pub const DEFAULT_INITIAL_BACKOFF_SECONDS: u32 = 1;
/// Default `spec.restartPolicy.maxBackoffSeconds`.
pub const DEFAULT_MAX_BACKOFF_SECONDS: u32 = 300;
/// Default `spec.restartPolicy.resetAfterSeconds`.
pub const DEFAULT_RESET_AFTER_SECONDS: u32 = 600;
/// Default `spec.progress.stallAfterSeconds`.
pub const DEFAULT_STALL_AFTER_SECONDS: u32 = 300;
/// Default `spec.autoscaling.scaleDownStabilizationSeconds`.
pub const DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS: u32 = 300;

/// What a connector does: the Kafka it talks to, the external system it reads (`source`) or
/// writes (`sink`), how records are converted and transformed, and how its tasks run.
// Clippy reads the printer columns' repeated `type_ = ...` as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "ferry.rs",
    version = "v1alpha1",
    kind = "KafkaConnector",
    doc = "A Kafka connector: moves records between Kafka and one external system. A source connector reads the external system and writes Kafka; a sink connector reads Kafka and writes the external system. The operator runs it as one pod per task.",
    plural = "kafkaconnectors",
    singular = "kafkaconnector",
    shortname = "kc",
    category = "ferry",
    namespaced,
    status = "KafkaConnectorStatus",
    scale(
        spec_replicas_path = ".spec.tasks",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.state",
        description = "What the connector is doing"
    ),
    printcolumn(
        name = "Tasks",
        type_ = "string",
        json_path = ".status.tasksReady",
        description = "Ready tasks / desired tasks"
    ),
    printcolumn(
        name = "Lag",
        type_ = "integer",
        json_path = ".status.lag",
        description = "Records waiting in the input"
    ),
    printcolumn(
        name = "Restarts",
        type_ = "integer",
        json_path = ".status.restarts",
        description = "Task restarts since creation"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        priority = 1,
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        description = "Why the connector is or is not ready"
    ),
    selectable = ".spec.state",
    selectable = ".status.state"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = schema::spec_rules)]
pub struct KafkaConnectorSpec {
    /// How the tasks connect to Kafka.
    pub kafka: KafkaSpec,
    /// Makes this a source connector: the external system it reads, whose records are
    /// written to Kafka. Exactly one of `source` and `sink`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSpec>,
    /// Makes this a sink connector: the topics it reads and the external system it writes
    /// them to. Exactly one of `source` and `sink`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<SinkSpec>,
    /// Number of tasks (pods) to run, 1 to 1000. Default 1. Ignored while `autoscaling` is
    /// set. `kubectl scale kc/<name> --replicas=N` sets it. To run no pods, set `state:
    /// Stopped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000), extend("default" = 1))]
    pub tasks: Option<i32>,
    /// Let the operator choose the task count from the connector's lag. When set, `tasks` is
    /// ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
    /// `Running` (default): tasks move records. `Paused`: task pods keep running but move no
    /// records (no pod is restarted). `Stopped`: no task pods run; offsets are kept.
    #[serde(default)]
    pub state: ConnectorState,
    /// How record keys, values and headers are turned into Kafka bytes and back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub converters: Option<Converters>,
    /// Per-record transforms (Kafka Connect's single message transforms), applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), transform = schema::transforms_rules)]
    pub transforms: Vec<TransformSpec>,
    /// What happens to a record that fails in a converter, a transform or the plugin: fail
    /// the task (default), or skip it and optionally send it to a dead letter queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<ErrorHandling>,
    /// `AtLeastOnce` (default): after a failure some records may be written twice, none is
    /// lost. `ExactlyOnce`: each record is written once. Sources write records and their
    /// source offsets in one Kafka transaction per task (read the topic with
    /// `isolation.level=read_committed`); the `postgres` sink writes rows and the Kafka
    /// positions they came from in one database transaction. Other sinks refuse it.
    #[serde(default)]
    pub delivery: Delivery,
    /// How failed tasks are restarted: exponential backoff between restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicySpec>,
    /// When a task counts as stalled (work waiting, nothing committed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressSpec>,
    /// Offsets management: reset the connector's position, and whether to delete its offsets
    /// when the connector is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets: Option<OffsetsSpec>,
    /// Container image of the runner for this connector's tasks, e.g. `ferry/runner:0.1.0`.
    /// Default: the operator's runner image. Pin it to run two runner versions side by side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), pattern(r"^\S+$"))]
    pub image: Option<String>,
    /// Settings copied into the task pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateSpec>,
}

impl KafkaConnectorSpec {
    /// Task count from `spec.tasks` (default 1), without the autoscaler's choice and
    /// without `state` (a `Stopped` connector still has a desired task count for when it
    /// runs again).
    pub fn desired_tasks(&self) -> i32 {
        self.tasks.unwrap_or(1).clamp(1, MAX_TASKS)
    }

    /// True for a source connector (external system → Kafka).
    pub fn is_source(&self) -> bool {
        self.source.is_some()
    }

    /// True for a sink connector (Kafka → external system).
    pub fn is_sink(&self) -> bool {
        self.sink.is_some()
    }

    /// The restart policy, with defaults for what is not set.
    pub fn restart_policy(&self) -> RestartPolicySpec {
        self.restart_policy.clone().unwrap_or_default()
    }

    /// Seconds without a commit, while work waits, after which a task is stalled.
    pub fn stall_after_seconds(&self) -> u32 {
        self.progress
            .as_ref()
            .map_or(DEFAULT_STALL_AFTER_SECONDS, |p| p.stall_after_seconds)
    }
}

/// How the tasks connect to Kafka.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaSpec {
    /// Comma-separated `host:port` list of brokers to bootstrap from, e.g.
    /// `kafka-0.kafka:9092,kafka-1.kafka:9092`.
    #[schemars(
        length(min = 1, max = 2048),
        pattern(r"^[^\s,]+:[0-9]{1,5}(,[^\s,]+:[0-9]{1,5})*$")
    )]
    pub bootstrap_servers: String,
    /// TLS to the brokers. Without it the connection is plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<KafkaTls>,
    /// SASL authentication, with credentials from Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<KafkaSasl>,
    /// Extra Kafka client properties (librdkafka names, e.g. `compression.type: zstd`),
    /// applied to the tasks' producers, consumers and admin clients. Credentials are not
    /// allowed here: use `tls` and `sasl`, which read them from Secrets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = schema::kafka_config_rules)]
    pub config: BTreeMap<String, String>,
}

/// TLS to the brokers. An empty block (`tls: {}`) enables TLS with the system's CAs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.cert) == has(self.key)",
    "message": "spec.kafka.tls.cert and spec.kafka.tls.key must be set together (mutual TLS needs both)"
}]))]
pub struct KafkaTls {
    /// Secret key holding the PEM CA certificate(s) that sign the brokers' certificates.
    /// Default: the system's CAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<SecretKeyRef>,
    /// Secret key holding the PEM client certificate, for mutual TLS. Requires `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<SecretKeyRef>,
    /// Secret key holding the PEM private key of `cert`. Requires `cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SecretKeyRef>,
}

/// SASL authentication to the brokers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaSasl {
    /// SASL mechanism: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: SaslMechanism,
    /// The username, from a Secret.
    pub username: SecretValue,
    /// The password, from a Secret.
    pub password: SecretValue,
}

/// A SASL mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SaslMechanism {
    /// `PLAIN`: username and password in clear (use it with TLS).
    #[serde(rename = "PLAIN")]
    Plain,
    /// `SCRAM-SHA-256`.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// `SCRAM-SHA-512`.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The mechanism's name as Kafka clients spell it (`sasl.mechanism`).
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// A value read from a Secret in the connector's namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretValue {
    /// The Secret and key holding the value.
    pub secret_key_ref: SecretKeyRef,
}

/// One key of a Secret in the connector's namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// A source connector: the external system it reads. Holds exactly one plugin block, named
/// after the plugin, e.g. `source: {file: {path: /data/in.txt, topic: lines}}`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = schema::source_rules)]
pub struct SourceSpec {
    /// The plugin block.
    #[serde(flatten)]
    pub plugin: SourcePlugin,
}

/// A sink connector: the topics it reads and the external system it writes. Holds exactly
/// one plugin block, named after the plugin, e.g. `sink: {topics: [orders], file: {path:
/// /data/out.txt}}`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = schema::sink_rules)]
pub struct SinkSpec {
    /// Topics to read. Exactly one of `topics` and `topicsRegex`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 100),
        inner(length(min = 1, max = 249), pattern(r"^[a-zA-Z0-9._-]+$")),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub topics: Vec<String>,
    /// Read every topic whose whole name matches this regular expression, e.g. `orders-.*`,
    /// including topics created later. Exactly one of `topics` and `topicsRegex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub topics_regex: Option<String>,
    /// The plugin block.
    #[serde(flatten)]
    pub plugin: SinkPlugin,
}

/// Why a `source` or `sink` block could not be read. Serde's `flatten` would silently
/// ignore unknown fields and all but one of several plugin blocks, so both blocks are read by
/// hand and every such mistake is an error naming the field.
#[derive(Debug, thiserror::Error)]
pub enum PluginBlockError {
    /// A field that is neither a setting of the block nor a plugin name.
    #[error("{path}: unknown field `{field}`, expected {expected}")]
    UnknownField {
        /// The block, e.g. `spec.sink`.
        path: &'static str,
        /// The unknown field.
        field: String,
        /// What the block accepts, in words.
        expected: String,
    },
    /// No plugin block.
    #[error("{path} must hold exactly one plugin block: {plugins}")]
    MissingPlugin {
        /// The block, e.g. `spec.sink`.
        path: &'static str,
        /// The plugin names, in words.
        plugins: String,
    },
    /// Several plugin blocks.
    #[error("{path} must hold exactly one plugin block, found {found}")]
    SeveralPlugins {
        /// The block, e.g. `spec.sink`.
        path: &'static str,
        /// The plugin blocks found, in words.
        found: String,
    },
    /// A field of the block or of the plugin block has the wrong shape.
    #[error("{path}.{field}: {source}")]
    Invalid {
        /// The block, e.g. `spec.sink`.
        path: &'static str,
        /// The field or plugin block.
        field: String,
        /// What is wrong with it.
        source: serde_json::Error,
    },
}

/// `a`, `a or b`, `a, b or c` (with `last_joiner` before the last name).
pub(crate) fn in_words(names: &[&str], last_joiner: &str) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} {last_joiner} {last}", init.join(", ")),
    }
}

/// Takes the one plugin block out of `fields`, which must hold nothing else.
fn take_plugin<P: serde::de::DeserializeOwned>(
    path: &'static str,
    fields: serde_json::Map<String, serde_json::Value>,
    plugins: &[&str],
    settings: &[&str],
) -> Result<P, PluginBlockError> {
    if let Some(unknown) = fields.keys().find(|k| !plugins.contains(&k.as_str())) {
        let mut expected: Vec<&str> = settings.to_vec();
        expected.push("a plugin block");
        return Err(PluginBlockError::UnknownField {
            path,
            field: unknown.clone(),
            expected: format!(
                "{} ({})",
                in_words(&expected, "or"),
                in_words(plugins, "or")
            ),
        });
    }
    let mut blocks = fields.into_iter();
    let (name, block) = match (blocks.next(), blocks.next()) {
        (Some(one), None) => one,
        (None, _) => {
            return Err(PluginBlockError::MissingPlugin {
                path,
                plugins: in_words(plugins, "or"),
            })
        }
        (Some((first, _)), Some((second, _))) => {
            let mut found = vec![first, second];
            found.extend(blocks.map(|(k, _)| k));
            let found: Vec<&str> = found.iter().map(String::as_str).collect();
            return Err(PluginBlockError::SeveralPlugins {
                path,
                found: in_words(&found, "and"),
            });
        }
    };
    let mut single = serde_json::Map::new();
    single.insert(name.clone(), block);
    serde_json::from_value(serde_json::Value::Object(single)).map_err(|source| {
        PluginBlockError::Invalid {
            path,
            field: name,
            source,
        }
    })
}

fn take_setting<T: serde::de::DeserializeOwned>(
    path: &'static str,
    fields: &mut serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<T>, PluginBlockError> {
    match fields.remove(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value) => {
            serde_json::from_value(value)
                .map(Some)
                .map_err(|source| PluginBlockError::Invalid {
                    path,
                    field: name.to_owned(),
                    source,
                })
        }
    }
}

impl<'de> Deserialize<'de> for SourceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let plugin = take_plugin("spec.source", fields, SOURCE_PLUGINS, &[])
            .map_err(serde::de::Error::custom)?;
        Ok(SourceSpec { plugin })
    }
}

impl<'de> Deserialize<'de> for SinkSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const PATH: &str = "spec.sink";
        let mut fields = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let read = |fields: &mut serde_json::Map<String, serde_json::Value>| {
            let topics = take_setting(PATH, fields, "topics")?.unwrap_or_default();
            let topics_regex = take_setting(PATH, fields, "topicsRegex")?;
            Ok::<_, PluginBlockError>((topics, topics_regex))
        };
        let (topics, topics_regex) = read(&mut fields).map_err(serde::de::Error::custom)?;
        let plugin = take_plugin(PATH, fields, SINK_PLUGINS, &["topics", "topicsRegex"])
            .map_err(serde::de::Error::custom)?;
        Ok(SinkSpec {
            topics,
            topics_regex,
            plugin,
        })
    }
}

/// Whether the tasks move records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConnectorState {
    /// Tasks run and move records.
    #[default]
    Running,
    /// Task pods keep running but move no records; resuming needs no restart.
    Paused,
    /// No task pods run; offsets and configuration are kept.
    Stopped,
}

impl ConnectorState {
    /// The state as written in `spec.state` and in the task state file.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorState::Running => "Running",
            ConnectorState::Paused => "Paused",
            ConnectorState::Stopped => "Stopped",
        }
    }
}

impl std::fmt::Display for ConnectorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Delivery guarantee.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Delivery {
    /// No record is lost; after a failure some may be written twice.
    #[default]
    AtLeastOnce,
    /// Each record is written exactly once (where the plugin supports it).
    ExactlyOnce,
}

/// Autoscaling of the task count from the connector's lag.
///
/// Every evaluation (about every 15 seconds) the operator measures the lag (sinks: committed
/// offsets of the consumer group against the partitions' log-end offsets; sources: the
/// backlog each task reports), computes the task count the target asks for, bounds it, and
/// moves towards it within the stabilization windows and step limits, like a
/// HorizontalPodAutoscaler. Each decision is in `status.autoscaler` and, when the count
/// changes, in a `Scaled` Event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.minTasks <= self.maxTasks",
        "message": "spec.autoscaling.minTasks must not be greater than spec.autoscaling.maxTasks",
        "fieldPath": ".minTasks"
    },
    {
        "rule": "has(self.lagPerTask) != has(self.drainSeconds)",
        "message": "spec.autoscaling needs exactly one target: lagPerTask or drainSeconds"
    }
]))]
pub struct AutoscalingSpec {
    /// Fewest tasks, 0 to 1000. Default 1. With 0 the connector scales to zero when its lag
    /// is at most `activationLag`, and back up when the lag rises above it. A source
    /// connector never goes below 1 (its backlog is only known from a running task), nor a
    /// connector with persistent lag (its failure stays visible and is retried).
    #[serde(default = "default_min_tasks")]
    #[schemars(range(min = 0, max = 1000))]
    pub min_tasks: i32,
    /// Most tasks, 1 to 1000. A sink never runs more tasks than its topics have partitions,
    /// nor a plugin more than it supports (a `file` sink or source: 1).
    #[schemars(range(min = 1, max = 1000))]
    pub max_tasks: i32,
    /// Target lag (records waiting) per task: the wanted task count is
    /// `ceil(lag / lagPerTask)`. For sources the unit is the plugin's backlog unit (e.g.
    /// bytes of replication lag). Exactly one of `lagPerTask` and `drainSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub lag_per_task: Option<i64>,
    /// Target time to drain the lag, in seconds (sinks). Once a task's capacity is known
    /// (records one task commits per second while every task has lag), the autoscaler runs
    /// enough tasks to keep up with the records arriving and drain the lag within
    /// `drainSeconds`, counting that Kafka spreads partitions by count. Before that, the
    /// count is `ceil(tasks * (lag / consumption rate) / drainSeconds)` with the rate of the
    /// last minute, and is kept while no rate is measured. 1 to 86400. Exactly one of
    /// `lagPerTask` and `drainSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub drain_seconds: Option<u32>,
    /// With `minTasks: 0`: the lag above which a connector at zero tasks starts one, and at
    /// or below which it scales to zero. Default 0 (any lag wakes it).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub activation_lag: i64,
    /// Seconds a higher task count must be wanted before scaling up: the lowest count wanted
    /// within this window is used. Default 0 (scale up at once).
    #[serde(default)]
    #[schemars(range(max = 86400))]
    pub scale_up_stabilization_seconds: u32,
    /// Seconds a lower task count must be wanted before scaling down: the highest count
    /// wanted within this window is used. Default 300.
    #[serde(default = "default_scale_down_stabilization_seconds")]
    #[schemars(range(max = 86400))]
    pub scale_down_stabilization_seconds: u32,
    /// How fast tasks are added. Default: the larger of 4 tasks and 100 % of the count per
    /// 15 seconds.
    #[serde(default = "ScaleStep::default_up")]
    pub scale_up: ScaleStep,
    /// How fast tasks are removed, once the stabilization window allows it. Default: the
    /// larger of 1 task and 10 % of the count per 60 seconds. Gentle on purpose: a removed
    /// sink task's partitions stay with its static group membership until the session
    /// timeout (45 s) and wait meanwhile; removing many at once would leave that much lag
    /// behind, which looks like load.
    #[serde(default = "ScaleStep::default_down")]
    pub scale_down: ScaleStep,
    /// Leave out the lag of a partition whose committed offset has not moved for
    /// `persistentLagSeconds` while tasks ran and records waited (a stuck partition: a
    /// failing record, a slow downstream): more tasks would not drain it. The reason in
    /// `status.autoscaler` names such partitions. Default true.
    #[serde(default = "default_true")]
    pub exclude_persistent_lag: bool,
    /// Seconds without progress, while tasks run and records wait, after which a partition's
    /// lag is persistent. 10 to 86400. Default 120.
    #[serde(default = "default_persistent_lag_seconds")]
    #[schemars(range(min = 10, max = 86400))]
    pub persistent_lag_seconds: u32,
    /// Sinks: never run more tasks than partitions that have lag (a task without a partition
    /// with records waiting adds nothing). Default true. Either way a sink runs at most one
    /// task per partition.
    #[serde(default = "default_true")]
    pub cap_at_partitions_with_lag: bool,
}

/// A step limit of `spec.autoscaling.scaleUp` / `scaleDown`: within any `periodSeconds`,
/// the count changes by at most the larger of `tasks` and `percent` % of the count at the
/// start of the period (as the HorizontalPodAutoscaler's `behavior` policies with
/// `selectPolicy: Max`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.tasks > 0 || self.percent > 0",
    "message": "spec.autoscaling.scaleUp/scaleDown: tasks or percent must be greater than 0"
}]))]
pub struct ScaleStep {
    /// Tasks added (scaleUp) or removed (scaleDown) per period, 0 to 1000.
    #[schemars(range(min = 0, max = 1000))]
    pub tasks: i32,
    /// Percent of the count at the start of the period added or removed per period, 0 to
    /// 1000 (scaleDown: at most 100 counts).
    #[schemars(range(min = 0, max = 1000))]
    pub percent: i32,
    /// Length of the period, in seconds, 1 to 1800. Default 15 when the block is given (the
    /// default `scaleDown` block uses 60).
    #[serde(default = "default_scale_period_seconds")]
    #[schemars(range(min = 1, max = 1800))]
    pub period_seconds: u32,
}

impl ScaleStep {
    /// Default of `spec.autoscaling.scaleUp`: 4 tasks or 100 % per 15 seconds.
    pub fn default_up() -> Self {
        ScaleStep {
            tasks: 4,
            percent: 100,
            period_seconds: DEFAULT_SCALE_PERIOD_SECONDS,
        }
    }

    /// Default of `spec.autoscaling.scaleDown`: 1 task or 10 % per 60 seconds.
    pub fn default_down() -> Self {
        ScaleStep {
            tasks: 1,
            percent: 10,
            period_seconds: DEFAULT_SCALE_DOWN_PERIOD_SECONDS,
        }
    }
}

/// Default `spec.autoscaling.scaleUp.periodSeconds`.
pub const DEFAULT_SCALE_PERIOD_SECONDS: u32 = 15;
/// Default `spec.autoscaling.scaleDown.periodSeconds`: longer than a sink task's session
/// timeout (45 s), so the partitions of the tasks removed in one step have moved to the
/// remaining tasks before the next step.
pub const DEFAULT_SCALE_DOWN_PERIOD_SECONDS: u32 = 60;
/// Default `spec.autoscaling.persistentLagSeconds`.
pub const DEFAULT_PERSISTENT_LAG_SECONDS: u32 = 120;

fn default_min_tasks() -> i32 {
    1
}

fn default_true() -> bool {
    true
}

fn default_scale_period_seconds() -> u32 {
    DEFAULT_SCALE_PERIOD_SECONDS
}

fn default_persistent_lag_seconds() -> u32 {
    DEFAULT_PERSISTENT_LAG_SECONDS
}

fn default_scale_down_stabilization_seconds() -> u32 {
    DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS
}

/// How failed tasks are restarted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.initialBackoffSeconds <= self.maxBackoffSeconds",
    "message": "spec.restartPolicy.initialBackoffSeconds must not be greater than spec.restartPolicy.maxBackoffSeconds",
    "fieldPath": ".initialBackoffSeconds"
}]))]
pub struct RestartPolicySpec {
    /// Delay before the first restart of a failed task, in seconds. Default 1. The delay
    /// doubles with each further failure (with jitter).
    #[serde(default = "default_initial_backoff_seconds")]
    #[schemars(range(min = 1, max = 3600))]
    pub initial_backoff_seconds: u32,
    /// Longest delay between two restarts, in seconds. Default 300.
    #[serde(default = "default_max_backoff_seconds")]
    #[schemars(range(min = 1, max = 86400))]
    pub max_backoff_seconds: u32,
    /// A task that runs this many seconds without failing starts over at
    /// `initialBackoffSeconds`. Default 600.
    #[serde(default = "default_reset_after_seconds")]
    #[schemars(range(min = 1, max = 86400))]
    pub reset_after_seconds: u32,
}

impl Default for RestartPolicySpec {
    fn default() -> Self {
        Self {
            initial_backoff_seconds: DEFAULT_INITIAL_BACKOFF_SECONDS,
            max_backoff_seconds: DEFAULT_MAX_BACKOFF_SECONDS,
            reset_after_seconds: DEFAULT_RESET_AFTER_SECONDS,
        }
    }
}

fn default_initial_backoff_seconds() -> u32 {
    DEFAULT_INITIAL_BACKOFF_SECONDS
}

fn default_max_backoff_seconds() -> u32 {
    DEFAULT_MAX_BACKOFF_SECONDS
}

fn default_reset_after_seconds() -> u32 {
    DEFAULT_RESET_AFTER_SECONDS
}

/// Progress tracking.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProgressSpec {
    /// A task that has records waiting but commits nothing for this many seconds is
    /// `Stalled`: reported in the `Stalled` condition and restarted. Default 300.
    #[serde(default = "default_stall_after_seconds")]
    #[schemars(range(min = 10, max = 86400))]
    pub stall_after_seconds: u32,
}

impl Default for ProgressSpec {
    fn default() -> Self {
        Self {
            stall_after_seconds: DEFAULT_STALL_AFTER_SECONDS,
        }
    }
}

fn default_stall_after_seconds() -> u32 {
    DEFAULT_STALL_AFTER_SECONDS
}

/// Offsets management.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OffsetsSpec {
    /// Move the connector's position. Applied once per `id`: the operator stops the tasks,
    /// resets the offsets, records the id in `status.offsetReset.appliedId` and starts the
    /// tasks again. To reset again, change the `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<OffsetReset>,
    /// Delete the connector's offsets (a sink's consumer group, a source's stored offsets)
    /// when the connector is deleted. Default false: a connector re-created with the same
    /// name continues where it stopped.
    #[serde(default)]
    pub delete_on_removal: bool,
}

/// A one-time reset of the connector's offsets, identified by `id`.
///
/// In YAML: `id` plus exactly one of `to` (`Earliest`, `Latest`, an RFC 3339 time or
/// milliseconds since the epoch), `sinkOffsets` or `sourceOffsets`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "OffsetResetFields", into = "OffsetResetFields")]
pub struct OffsetReset {
    /// Identifies this reset; a reset whose id was already applied is not applied again.
    pub id: String,
    /// Where to move the offsets.
    pub to: OffsetTarget,
}

/// Where an offsets reset moves the connector's position.
#[derive(Clone, Debug, PartialEq)]
pub enum OffsetTarget {
    /// The start of every input partition.
    Earliest,
    /// The end of every input partition: records written before the reset are skipped.
    Latest,
    /// The first record at or after this time, per partition (sinks).
    Timestamp(Timestamp),
    /// Explicit offsets per topic partition (sinks).
    Sink(Vec<SinkOffset>),
    /// Explicit source offsets per source partition (sources).
    Source(Vec<SourceOffset>),
}

/// The offset of one topic partition of a sink connector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SinkOffset {
    /// Topic name.
    #[schemars(length(min = 1, max = 249), pattern(r"^[a-zA-Z0-9._-]+$"))]
    pub topic: String,
    /// Partition number.
    #[schemars(range(min = 0))]
    pub partition: i32,
    /// Offset of the next record to read.
    #[schemars(range(min = 0))]
    pub offset: i64,
}

/// The offset of one source partition of a source connector, in the plugin's own terms
/// (as in Kafka Connect's offsets REST API).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceOffset {
    /// The source partition, e.g. `{path: /data/in.txt}` for the `file` source.
    #[schemars(extend("maxProperties" = 16, "minProperties" = 1))]
    pub partition: BTreeMap<String, String>,
    /// The position in it, e.g. `{position: "1024"}` for the `file` source.
    #[schemars(extend("maxProperties" = 16, "minProperties" = 1))]
    pub offset: BTreeMap<String, String>,
}

/// `spec.offsets.reset` as written in YAML.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(
    description = "A one-time reset of the connector's offsets, identified by `id`: exactly one of `to`, `sinkOffsets` or `sourceOffsets`.",
    extend("x-kubernetes-validations" = [{
        "rule": "[has(self.to), has(self.sinkOffsets), has(self.sourceOffsets)].exists_one(x, x)",
        "message": "spec.offsets.reset needs exactly one of to, sinkOffsets or sourceOffsets"
    }])
)]
struct OffsetResetFields {
    /// Identifies this reset, e.g. `replay-2026-11-22` (lowercase letters, digits, `-` and
    /// `.`, at most 63 characters). The operator applies a reset once per id and records it
    /// in `status.offsetReset.appliedId`; to reset again, change the id.
    #[schemars(
        length(min = 1, max = 63),
        pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    id: String,
    /// `Earliest` (start of every partition), `Latest` (end of every partition), an RFC 3339
    /// time (e.g. `2026-11-22T08:00:00Z`) or milliseconds since the epoch: the first record
    /// at or after that time (sinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(
        r"^(Earliest|Latest|[0-9]{1,14}|[0-9]{4}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|[12][0-9]))T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))$"
    ))]
    to: Option<String>,
    /// Explicit offsets per topic partition (sink connectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1000))]
    sink_offsets: Option<Vec<SinkOffset>>,
    /// Explicit offsets per source partition (source connectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1000))]
    source_offsets: Option<Vec<SourceOffset>>,
}

/// Why `spec.offsets.reset` could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OffsetResetError {
    /// None or several of `to`, `sinkOffsets` and `sourceOffsets` were given.
    #[error("spec.offsets.reset needs exactly one of to, sinkOffsets or sourceOffsets")]
    TargetCount,
    /// `to` is neither a keyword nor a time.
    #[error(
        "spec.offsets.reset.to: {0:?} is not Earliest, Latest, an RFC 3339 time or milliseconds since the epoch"
    )]
    InvalidTo(String),
}

impl TryFrom<OffsetResetFields> for OffsetReset {
    type Error = OffsetResetError;

    fn try_from(fields: OffsetResetFields) -> Result<Self, Self::Error> {
        let to = match (fields.to, fields.sink_offsets, fields.source_offsets) {
            (Some(to), None, None) => parse_offset_target(&to)?,
            (None, Some(offsets), None) => OffsetTarget::Sink(offsets),
            (None, None, Some(offsets)) => OffsetTarget::Source(offsets),
            _ => return Err(OffsetResetError::TargetCount),
        };
        Ok(OffsetReset { id: fields.id, to })
    }
}

impl From<OffsetReset> for OffsetResetFields {
    fn from(reset: OffsetReset) -> Self {
        let mut fields = OffsetResetFields {
            id: reset.id,
            to: None,
            sink_offsets: None,
            source_offsets: None,
        };
        match reset.to {
            OffsetTarget::Earliest => fields.to = Some("Earliest".to_owned()),
            OffsetTarget::Latest => fields.to = Some("Latest".to_owned()),
            OffsetTarget::Timestamp(at) => fields.to = Some(at.to_string()),
            OffsetTarget::Sink(offsets) => fields.sink_offsets = Some(offsets),
            OffsetTarget::Source(offsets) => fields.source_offsets = Some(offsets),
        }
        fields
    }
}

/// Reads `spec.offsets.reset.to`: a keyword, an RFC 3339 time or milliseconds since the epoch.
fn parse_offset_target(to: &str) -> Result<OffsetTarget, OffsetResetError> {
    match to {
        "Earliest" => return Ok(OffsetTarget::Earliest),
        "Latest" => return Ok(OffsetTarget::Latest),
        _ => {}
    }
    let invalid = || OffsetResetError::InvalidTo(to.to_owned());
    if !to.is_empty() && to.bytes().all(|b| b.is_ascii_digit()) {
        let millis: i64 = to.parse().map_err(|_| invalid())?;
        return Timestamp::from_millisecond(millis)
            .map(OffsetTarget::Timestamp)
            .map_err(|_| invalid());
    }
    to.parse::<Timestamp>()
        .map(OffsetTarget::Timestamp)
        .map_err(|_| invalid())
}

impl JsonSchema for OffsetReset {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OffsetReset".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        OffsetResetFields::json_schema(generator)
    }
}

/// Settings copied into the task pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateSpec {
    /// Settings of every task pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodTemplateSpec>,
}

/// Settings of every task pod of the connector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodTemplateSpec {
    /// CPU and memory requests and limits of the runner container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels a node must have to run the tasks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the task pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity and anti-affinity of the task pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Extra annotations on the task pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Extra labels on the task pods. The `app.kubernetes.io/name`,
    /// `app.kubernetes.io/instance`, `app.kubernetes.io/managed-by` and `ferry.rs/*` labels
    /// are set by the operator and cannot be given here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = schema::pod_label_rules)]
    pub labels: BTreeMap<String, String>,
    /// ServiceAccount the task pods run as. Default: none, and no API token is mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: Option<String>,
    /// PriorityClass of the task pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
}

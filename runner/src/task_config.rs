//! Loading and checking the task configuration: the `KafkaConnector` YAML (the same file the
//! operator mounts into the pod), the task's index and count, and the Kafka credentials.
//!
//! Checking collects every problem, each with the path of the offending field, rather than
//! stopping at the first.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_crds::admission::{Admission, Violation};
use ferry_crds::connector::{KafkaConnectorSpec, KafkaSpec, SinkSpec, SourceSpec};
use ferry_crds::pipeline::Converters;
use ferry_crds::KafkaConnector;
use regex::Regex;

use crate::config_error::ConfigError;
use crate::convert::RecordConverters;
use crate::error_handling::ErrorPolicy;
use crate::plugins::{self, TaskShare};
use crate::transform::TransformChain;
use ferry_kafka::{client_properties, Credentials};

/// Everything a task needs to run, checked.
pub struct TaskConfig {
    /// The connector's name.
    pub name: String,
    /// The connector's namespace (`default` when the file has none).
    pub namespace: String,
    /// The connector's spec.
    pub spec: KafkaConnectorSpec,
    /// This task's share of the work.
    pub share: TaskShare,
    /// librdkafka properties common to every client of the task.
    pub kafka: BTreeMap<String, String>,
    /// Key, value and header converters.
    pub converters: RecordConverters,
    /// The transforms.
    pub transforms: TransformChain,
    /// Error handling.
    pub errors: ErrorPolicy,
    /// The stall window of `/healthz`.
    pub stall_after: Duration,
}

/// Where the connector file is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckMode {
    /// `ferry-runner validate`: offline, credentials and files need not be present.
    Offline,
    /// `ferry-runner run`: credentials must be present.
    Run,
}

impl From<Violation> for ConfigError {
    fn from(v: Violation) -> Self {
        ConfigError {
            field: if v.field.is_empty() {
                "(resource)".into()
            } else {
                v.field
            },
            message: v.message,
        }
    }
}

/// Parses and checks a connector file. `share`: this task's index and count.
///
/// First the API server's own checks (the CRD's schema and CEL rules, [`admission`]), with
/// its field paths; then what only the runner can check (plugin settings, converters,
/// transforms, the Kafka client properties). When admission refuses the file but it still
/// reads as a connector, the runner's checks run too, so one mistake does not hide another.
pub fn load(
    yaml: &str,
    share: TaskShare,
    creds: &Credentials,
    mode: CheckMode,
) -> Result<TaskConfig, Vec<ConfigError>> {
    let doc: serde_json::Value = serde_yaml::from_str(yaml).map_err(|e| {
        vec![ConfigError {
            field: "(file)".into(),
            message: format!("not valid YAML: {e}"),
        }]
    })?;
    let share = TaskShare {
        index: share.index,
        count: share.count.max(1),
    };
    // Unknown fields first, as strict field validation names them; then the rest of the
    // API server's checks on what is left, so that a typo does not hide other problems.
    // An admission of this load's own: a task checks one file, and drops the checks after.
    let admission = Admission::new();
    let unknown: Vec<ConfigError> = admission
        .unknown_fields(&doc)
        .into_iter()
        .map(ConfigError::from)
        .collect();
    let doc = admission.without_unknown_fields(&doc);
    let admitted = admission.admit(&doc);
    drop(admission);
    let (connector, mut errors) = match admitted {
        Ok(admitted) => match serde_json::from_value::<KafkaConnector>(admitted) {
            Ok(connector) => (connector, unknown),
            Err(e) => {
                let mut errors = unknown;
                errors.push(ConfigError {
                    field: "spec".into(),
                    message: format!("admitted, but not readable as a connector: {e}"),
                });
                return Err(errors);
            }
        },
        Err(violations) => {
            let mut errors = unknown;
            errors.extend(violations.into_iter().map(ConfigError::from));
            match serde_json::from_value::<KafkaConnector>(doc.clone()) {
                Ok(connector) => (connector, errors),
                Err(_) => {
                    errors.extend(runner_checks_of_parts(&doc, share, creds, mode, &errors));
                    return Err(errors);
                }
            }
        }
    };
    let name = connector.metadata.name.clone().unwrap_or_default();
    let namespace = connector
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let spec = connector.spec;
    if share.index >= share.count {
        errors.push(ConfigError {
            field: "task index".into(),
            message: format!(
                "task index {} is not below the task count {}",
                share.index, share.count
            ),
        });
    }
    if let Some(source) = &spec.source {
        errors.extend(plugins::validate_source(&source.plugin, share));
    }
    if let Some(sink) = &spec.sink {
        errors.extend(sink_checks(sink, share));
    }
    errors.extend(crate::error_handling::validate(
        spec.errors.as_ref(),
        spec.source.is_some(),
    ));
    let kafka = kafka_properties(&spec.kafka, creds, mode, &errors)
        .map_err(|e| errors.extend(e))
        .ok();
    let converters = RecordConverters::from_spec(spec.converters.as_ref())
        .map_err(|e| errors.extend(e))
        .ok();
    let transforms = TransformChain::from_spec(&spec.transforms)
        .map_err(|e| errors.extend(e))
        .ok();
    match (kafka, converters, transforms) {
        (Some(kafka), Some(converters), Some(transforms)) if errors.is_empty() => Ok(TaskConfig {
            name,
            namespace,
            errors: ErrorPolicy::from_spec(spec.errors.as_ref()),
            stall_after: Duration::from_secs(u64::from(spec.stall_after_seconds())),
            spec,
            share,
            kafka,
            converters,
            transforms,
        }),
        _ => Err(errors),
    }
}

/// The sink block's checks only the runner can make: the topic pattern as librdkafka reads
/// it, and the plugin's settings.
fn sink_checks(sink: &SinkSpec, share: TaskShare) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if let Some(re) = &sink.topics_regex {
        if let Err(e) = Regex::new(re) {
            errors.push(ConfigError {
                field: "spec.sink.topicsRegex".into(),
                message: format!("not a valid regular expression: {e}"),
            });
        } else if re.contains("(?") {
            // The consumer matches topics with librdkafka's POSIX-style engine.
            errors.push(ConfigError {
                field: "spec.sink.topicsRegex".into(),
                message: "(?...) groups and flags are not supported by Kafka's topic matching; use plain groups".into(),
            });
        }
    }
    errors.extend(plugins::validate_sink(&sink.plugin, share));
    errors
}

/// The task's librdkafka properties, or the problems admission has not named already
/// (`said`): its CEL rules name a refused `spec.kafka.config` key
/// (`spec.kafka.config["acks"] ...`) under `spec.kafka.config`.
fn kafka_properties(
    kafka: &KafkaSpec,
    creds: &Credentials,
    mode: CheckMode,
    said: &[ConfigError],
) -> Result<BTreeMap<String, String>, Vec<ConfigError>> {
    client_properties(kafka, creds, mode == CheckMode::Run).map_err(|problems| {
        problems
            .into_iter()
            .map(ConfigError::from)
            .filter(|p| {
                !said
                    .iter()
                    .any(|a| a.field == "spec.kafka.config" && a.message.contains(&p.field))
            })
            .collect()
    })
}

/// The runner's own checks of the parts of a connector that read as Rust types when the whole
/// does not (admission named why), so that one mistake does not hide the others.
fn runner_checks_of_parts(
    doc: &serde_json::Value,
    share: TaskShare,
    creds: &Credentials,
    mode: CheckMode,
    admission_errors: &[ConfigError],
) -> Vec<ConfigError> {
    fn part<T: serde::de::DeserializeOwned>(doc: &serde_json::Value, key: &str) -> Option<T> {
        serde_json::from_value(doc.get("spec")?.get(key)?.clone()).ok()
    }
    let mut errors = Vec::new();
    if let Some(kafka) = part::<KafkaSpec>(doc, "kafka") {
        if let Err(e) = kafka_properties(&kafka, creds, mode, admission_errors) {
            errors.extend(e);
        }
    }
    if let Some(converters) = part::<Converters>(doc, "converters") {
        if let Err(e) = RecordConverters::from_spec(Some(&converters)) {
            errors.extend(e);
        }
    }
    if let Some(source) = part::<SourceSpec>(doc, "source") {
        errors.extend(plugins::validate_source(&source.plugin, share));
    }
    if let Some(sink) = part::<SinkSpec>(doc, "sink") {
        errors.extend(sink_checks(&sink, share));
    }
    // What admission already named is not named twice.
    errors.retain(|e| !admission_errors.iter().any(|a| a.field == e.field));
    errors
}

/// The configuration of task `share` of the connector `yaml`, checked offline without
/// credentials; panics naming the errors (for tests).
#[cfg(test)]
pub(crate) fn offline_config(yaml: &str, share: TaskShare) -> TaskConfig {
    load(yaml, share, &Credentials::default(), CheckMode::Offline)
        .unwrap_or_else(|e| panic!("invalid test configuration: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Result<TaskConfig, Vec<ConfigError>> {
        load(
            yaml,
            TaskShare { index: 0, count: 1 },
            &Credentials::default(),
            CheckMode::Offline,
        )
    }

    fn fields(yaml: &str) -> Vec<String> {
        match check(yaml) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.field).collect(),
        }
    }

    const GOOD: &str = r#"
apiVersion: ferry.rs/v1alpha1
kind: KafkaConnector
metadata: {name: lines, namespace: shop}
spec:
  kafka: {bootstrapServers: "127.0.0.1:9092"}
  sink:
    topics: [lines]
    file: {path: /tmp/out.txt}
"#;

    #[test]
    fn a_good_file_loads() {
        let c = check(GOOD).map_err(|e| format!("{e:?}")).unwrap();
        assert_eq!(c.name, "lines");
        assert_eq!(c.namespace, "shop");
        assert_eq!(c.kafka["bootstrap.servers"], "127.0.0.1:9092");
        assert_eq!(c.stall_after, Duration::from_secs(300));
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let f = fields(
            r#"
apiVersion: ferry.rs/v1alpha1
kind: KafkaConnector
metadata: {name: lines}
spec:
  kafka: {bootstrapServers: "b:9092", config: {group.id: x}}
  sink:
    topics: [lines]
    file: {path: relative.txt}
  errors: {deadLetterQueue: {topic: dlq}}
"#,
        );
        assert!(f.contains(&"spec.sink.file.path".to_string()), "{f:?}");
        assert!(f.contains(&"spec.kafka.config".to_string()), "{f:?}");
        assert!(
            f.contains(&"spec.errors.deadLetterQueue".to_string()),
            "{f:?}"
        );
    }

    #[test]
    fn shape_errors_name_the_nested_field() {
        let f = fields(
            r#"
apiVersion: ferry.rs/v1alpha1
kind: KafkaConnector
metadata: {name: lines}
spec:
  kafka: {bootstrapServers: "b:9092", tls: {ca: {name: x, ky: y}}}
  sink:
    topics: [lines]
    file: {path: /tmp/x, bogus: 1}
"#,
        );
        assert!(
            f.iter().any(|x| x.starts_with("spec.kafka.tls.ca")),
            "{f:?}"
        );
        assert!(f.iter().any(|x| x.starts_with("spec.sink")), "{f:?}");
    }

    #[test]
    fn a_shape_error_does_not_hide_other_problems() {
        let f = fields(
            r#"
apiVersion: ferry.rs/v1alpha1
kind: KafkaConnector
metadata: {name: lines}
spec:
  kafka: {bootstrapServers: "b:9092", config: {group.id: x}}
  sink: {topics: [lines], file: {path: relative}}
  errors: {tolerance: Sometimes}
"#,
        );
        // The enum error keeps admission from checking its CEL rules (as the API server
        // does); the runner still checks what it can read.
        assert!(f.contains(&"spec.errors.tolerance".to_string()), "{f:?}");
        assert!(
            f.contains(&"spec.kafka.config[\"group.id\"]".to_string()),
            "{f:?}"
        );
        assert!(f.contains(&"spec.sink.file.path".to_string()), "{f:?}");
    }

    #[test]
    fn header_and_topology_errors() {
        let f = fields(
            "apiVersion: v1\nkind: Pod\nmetadata: {}\nspec: {kafka: {bootstrapServers: b}}\n",
        );
        // `b` is no host:port list: the API server's rule, which validate applies too.
        assert_eq!(
            f,
            vec![
                "apiVersion",
                "kind",
                "metadata.name",
                "spec.kafka.bootstrapServers",
                "(resource)"
            ]
        );
        let bad_regex = GOOD.replace("topics: [lines]", "topicsRegex: '('");
        assert_eq!(fields(&bad_regex), vec!["spec.sink.topicsRegex"]);
        let perl_group = GOOD.replace("topics: [lines]", "topicsRegex: '(?:a|b)-.*'");
        assert_eq!(fields(&perl_group), vec!["spec.sink.topicsRegex"]);
        let plain = GOOD.replace("topics: [lines]", "topicsRegex: '(a|b)-.*'");
        assert!(fields(&plain).is_empty());
        let both = GOOD.replace("topics: [lines]", "topics: [lines]\n    topicsRegex: 'a.*'");
        assert_eq!(fields(&both), vec!["spec.sink"]);
        let eos = GOOD.replace("  kafka:", "  delivery: ExactlyOnce\n  kafka:");
        assert_eq!(fields(&eos), vec!["spec.delivery"]);
        let eos_source = GOOD.replace(
            "  sink:\n    topics: [lines]\n    file: {path: /tmp/out.txt}\n",
            "  source: {datagen: {topic: lines}}\n  delivery: ExactlyOnce\n",
        );
        assert!(eos_source.contains("datagen"));
        assert!(fields(&eos_source).is_empty(), "{:?}", fields(&eos_source));
    }

    #[test]
    fn the_api_server_s_rules_are_checked_too() {
        let tasks = GOOD.to_string() + "  tasks: -1\n";
        assert!(
            fields(&tasks).contains(&"spec.tasks".to_string()),
            "{tasks}"
        );
        let bounds =
            GOOD.to_string() + "  autoscaling: {minTasks: 5, maxTasks: 2, lagPerTask: 100}\n";
        assert!(
            fields(&bounds).contains(&"spec.autoscaling.minTasks".to_string()),
            "{bounds}"
        );
        let poll = GOOD.replace(
            "bootstrapServers: \"127.0.0.1:9092\"",
            "bootstrapServers: \"127.0.0.1:9092\", config: {max.poll.records: '1000'}",
        );
        let refused = check(&poll).err().unwrap_or_default();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].field, "spec.kafka.config");
        assert!(
            refused[0]
                .message
                .contains("spec.kafka.config[\"max.poll.records\"] is not a librdkafka setting"),
            "{refused:?}"
        );
    }
}

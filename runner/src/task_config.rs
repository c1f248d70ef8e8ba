//! Loading and checking the task configuration: the `KafkaConnector` YAML (the same file the
//! operator mounts into the pod), the task's index and count, and the Kafka credentials.
//!
//! Checking collects every problem, each with the path of the offending field, rather than
//! stopping at the first.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_crds::connector::{KafkaConnectorSpec, KafkaSpec, SinkSpec, SourceSpec};
use ferry_crds::errors::ErrorHandling;
use ferry_crds::pipeline::{Converters, TransformSpec};
use regex::Regex;
use serde::de::DeserializeOwned;

use crate::config_error::ConfigError;
use crate::convert::RecordConverters;
use crate::error_handling::ErrorPolicy;
use crate::plugins::{self, TaskShare};
use crate::transform::TransformChain;
use ferry_kafka::{client_properties, Credentials};

const API_VERSION: &str = "ferry.rs/v1alpha1";
const KIND: &str = "KafkaConnector";

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

/// Removes serde_yaml's ` at line N column M` suffix and splits off a leading `path: `.
fn split_serde_error(message: &str) -> (Option<String>, String) {
    let location = Regex::new(r" at line \d+ column \d+$").ok();
    let msg = match location {
        Some(re) => re.replace(message, "").into_owned(),
        None => message.to_string(),
    };
    if let Some((path, rest)) = msg.split_once(": ") {
        let is_path = !path.is_empty()
            && !path.contains(' ')
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-[]".contains(c));
        if is_path {
            return (Some(path.to_string()), rest.to_string());
        }
    }
    (None, msg)
}

/// Deserializes `value` as `T`, naming the offending field under `field` on failure.
fn section<T: DeserializeOwned>(value: &serde_yaml::Value, field: &str) -> Result<T, ConfigError> {
    // Re-reading the section from text gives errors with a path inside the section.
    let text = serde_yaml::to_string(value).unwrap_or_default();
    serde_yaml::from_str::<T>(&text).map_err(|e| {
        let (path, message) = split_serde_error(&e.to_string());
        let field = match path {
            Some(p) if p == "spec" || p.starts_with("spec.") => p,
            Some(p) if p.starts_with('[') => format!("{field}{p}"),
            Some(p) => format!("{field}.{p}"),
            None => field.to_string(),
        };
        ConfigError { field, message }
    })
}

/// Parses one part of the spec when present; a failure is recorded in `errors`.
fn parse_part<T: DeserializeOwned>(
    value: Option<&serde_yaml::Value>,
    field: &str,
    errors: &mut Vec<ConfigError>,
    failed: &mut bool,
) -> Option<T> {
    match section::<T>(value?, field) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(e);
            *failed = true;
            None
        }
    }
}

/// Parses and checks a connector file. `share`: this task's index and count.
pub fn load(
    yaml: &str,
    share: TaskShare,
    creds: &Credentials,
    mode: CheckMode,
) -> Result<TaskConfig, Vec<ConfigError>> {
    let doc: serde_yaml::Value = serde_yaml::from_str(yaml).map_err(|e| {
        vec![ConfigError {
            field: "(file)".into(),
            message: format!("not valid YAML: {e}"),
        }]
    })?;
    let mut errors = Vec::new();
    let get = |k: &str| doc.get(k);
    match get("apiVersion").and_then(|v| v.as_str()) {
        Some(API_VERSION) => {}
        other => errors.push(ConfigError {
            field: "apiVersion".into(),
            message: format!("must be {API_VERSION}, got {}", other.unwrap_or("nothing")),
        }),
    }
    match get("kind").and_then(|v| v.as_str()) {
        Some(KIND) => {}
        other => errors.push(ConfigError {
            field: "kind".into(),
            message: format!("must be {KIND}, got {}", other.unwrap_or("nothing")),
        }),
    }
    let name = get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        errors.push(ConfigError {
            field: "metadata.name".into(),
            message: "the connector needs a name".into(),
        });
    }
    let namespace = get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(|n| n.as_str())
        .unwrap_or("default")
        .to_string();
    let Some(spec_value) = get("spec") else {
        errors.push(ConfigError {
            field: "spec".into(),
            message: "missing".into(),
        });
        return Err(errors);
    };

    // Check each section on its own, so that one mistake does not hide the others.
    let mut section_failed = false;
    let part = |key: &str| -> Option<&serde_yaml::Value> { spec_value.get(key) };
    let kafka = parse_part::<KafkaSpec>(
        part("kafka"),
        "spec.kafka",
        &mut errors,
        &mut section_failed,
    );
    let source = parse_part::<SourceSpec>(
        part("source"),
        "spec.source",
        &mut errors,
        &mut section_failed,
    );
    let sink = parse_part::<SinkSpec>(part("sink"), "spec.sink", &mut errors, &mut section_failed);
    let converters = parse_part::<Converters>(
        part("converters"),
        "spec.converters",
        &mut errors,
        &mut section_failed,
    );
    let error_handling = parse_part::<ErrorHandling>(
        part("errors"),
        "spec.errors",
        &mut errors,
        &mut section_failed,
    );
    let mut transforms = Some(Vec::new());
    if let Some(serde_yaml::Value::Sequence(items)) = part("transforms") {
        for (i, item) in items.iter().enumerate() {
            let t = parse_part::<TransformSpec>(
                Some(item),
                &format!("spec.transforms[{i}]"),
                &mut errors,
                &mut section_failed,
            );
            match (t, transforms.as_mut()) {
                (Some(t), Some(all)) => all.push(t),
                _ => transforms = None,
            }
        }
    }
    if section_failed {
        // Still check what could be read, so that one mistake does not hide the others.
        let share = TaskShare {
            index: share.index,
            count: share.count.max(1),
        };
        if let Some(k) = &kafka {
            if let Err(e) = client_properties(k, creds, mode == CheckMode::Run) {
                errors.extend(e.into_iter().map(ConfigError::from));
            }
        }
        if let Some(s) = &source {
            errors.extend(plugins::validate_source(&s.plugin, share));
        }
        if let Some(s) = &sink {
            errors.extend(plugins::validate_sink(&s.plugin, share));
        }
        if part("converters").is_none() || converters.is_some() {
            if let Err(e) = RecordConverters::from_spec(converters.as_ref()) {
                errors.extend(e);
            }
        }
        if let Some(t) = &transforms {
            if let Err(e) = TransformChain::from_spec(t) {
                errors.extend(e);
            }
        }
        if let Some(e) = &error_handling {
            errors.extend(crate::error_handling::validate(
                Some(e),
                part("source").is_some(),
            ));
        }
        return Err(errors);
    }
    let spec: KafkaConnectorSpec = match section(spec_value, "spec") {
        Ok(s) => s,
        Err(e) => {
            errors.push(e);
            return Err(errors);
        }
    };

    let share = TaskShare {
        index: share.index,
        count: share.count.max(1),
    };
    if share.index >= share.count {
        errors.push(ConfigError {
            field: "task index".into(),
            message: format!(
                "task index {} is not below the task count {}",
                share.index, share.count
            ),
        });
    }
    // The API server's rules first (the same ones admission applies), then what only the
    // runner can check.
    let mut connector = ferry_crds::KafkaConnector::new(&name, spec.clone());
    connector.metadata.namespace = Some(namespace.clone());
    errors.extend(
        ferry_crds::validation::validate(&connector)
            .into_iter()
            .map(|v| ConfigError {
                field: v.field,
                message: v.message,
            }),
    );
    if let Some(source) = &spec.source {
        errors.extend(plugins::validate_source(&source.plugin, share));
    }
    if let Some(sink) = &spec.sink {
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
    }
    errors.extend(crate::error_handling::validate(
        spec.errors.as_ref(),
        spec.source.is_some(),
    ));
    let kafka = client_properties(&spec.kafka, creds, mode == CheckMode::Run)
        .map_err(|e| errors.extend(e.into_iter().map(ConfigError::from)))
        .ok();
    let converters = RecordConverters::from_spec(spec.converters.as_ref())
        .map_err(|e| errors.extend(e))
        .ok();
    let transforms = TransformChain::from_spec(&spec.transforms)
        .map_err(|e| errors.extend(e))
        .ok();
    // A rule both admission and the runner state (a refused spec.kafka.config key) is
    // reported once.
    let mut seen = std::collections::BTreeSet::new();
    errors.retain(|e| seen.insert((e.field.clone(), e.message.clone())));
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
        assert!(
            f.contains(&"spec.kafka.config[\"group.id\"]".to_string()),
            "{f:?}"
        );
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
                "spec",
                "spec.kafka.bootstrapServers"
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
    fn serde_errors_are_split_into_field_and_message() {
        assert_eq!(
            split_serde_error(
                "tls.ca: unknown field `ky`, expected `name` or `key` at line 3 column 7"
            ),
            (
                Some("tls.ca".into()),
                "unknown field `ky`, expected `name` or `key`".into()
            )
        );
        assert_eq!(
            split_serde_error("missing field `path`"),
            (None, "missing field `path`".into())
        );
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
        assert_eq!(
            fields(&poll),
            vec!["spec.kafka.config[\"max.poll.records\"]"]
        );
    }
}

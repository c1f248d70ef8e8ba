//! The API server's checks of a `KafkaConnector` (its OpenAPI schema bounds and CEL rules),
//! as a pure function, for where no API server looks: `ferry-runner validate -f` and
//! standalone runs, and the operator's own guard against a resource stored under an older
//! CRD. Every [`Violation`] names the field, like the API server does.
//!
//! Checks inside plugin blocks, converters and transforms beyond "exactly one block" belong
//! to the runner, which knows what each setting means.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::connector::{
    AutoscalingSpec, Delivery, KafkaConnector, KafkaConnectorSpec, KafkaSpec, OffsetTarget,
    SecretKeyRef, MAX_TASKS,
};
use crate::kafka_config_keys;
use crate::names::MAX_CONNECTOR_NAME_LENGTH;
use crate::pipeline::{
    Converters, TransformSpec, CONVERTER_KINDS, HEADER_CONVERTER_KINDS, PREDICATE_KINDS,
    TRANSFORM_KINDS,
};
use crate::schema::is_reserved_pod_label;

/// One problem in a connector: the field (e.g. `spec.kafka.config["group.id"]`) and what is
/// wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Violation {
    /// Path of the offending field, from the resource's root.
    pub field: String,
    /// What is wrong, in words.
    pub message: String,
}

/// Collects violations, each under a field path.
#[derive(Default)]
struct Report(Vec<Violation>);

impl Report {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Violation {
            field: field.into(),
            message: message.into(),
        });
    }

    fn range(&mut self, field: &str, value: i64, min: i64, max: i64) {
        if value < min || value > max {
            self.add(field, format!("{value} is out of range: {min} to {max}"));
        }
    }
}

/// Every violation in `connector`: its name and its spec.
pub fn validate(connector: &KafkaConnector) -> Vec<Violation> {
    let mut report = Report::default();
    if let Some(name) = connector.metadata.name.as_deref() {
        if name.len() > MAX_CONNECTOR_NAME_LENGTH {
            report.add(
                "metadata.name",
                format!(
                    "must be at most {MAX_CONNECTOR_NAME_LENGTH} characters: task pods are named <name>-task-<index>"
                ),
            );
        }
    }
    let mut violations = report.0;
    violations.extend(validate_spec(&connector.spec));
    violations
}

fn check_autoscaling(r: &mut Report, a: &AutoscalingSpec) {
    match (a.lag_per_task, a.drain_seconds) {
        (Some(lag), None) => r.range("spec.autoscaling.lagPerTask", lag, 1, i64::MAX),
        (None, Some(seconds)) => r.range("spec.autoscaling.drainSeconds", seconds.into(), 1, 86400),
        _ => r.add(
            "spec.autoscaling",
            "needs exactly one target: lagPerTask or drainSeconds",
        ),
    }
    r.range(
        "spec.autoscaling.activationLag",
        a.activation_lag,
        0,
        i64::MAX,
    );
    r.range(
        "spec.autoscaling.scaleUpStabilizationSeconds",
        a.scale_up_stabilization_seconds.into(),
        0,
        86400,
    );
    r.range(
        "spec.autoscaling.scaleDownStabilizationSeconds",
        a.scale_down_stabilization_seconds.into(),
        0,
        86400,
    );
    r.range(
        "spec.autoscaling.persistentLagSeconds",
        a.persistent_lag_seconds.into(),
        10,
        86400,
    );
    for (field, step) in [("scaleUp", &a.scale_up), ("scaleDown", &a.scale_down)] {
        let field = format!("spec.autoscaling.{field}");
        r.range(&format!("{field}.tasks"), step.tasks.into(), 0, 1000);
        r.range(&format!("{field}.percent"), step.percent.into(), 0, 1000);
        r.range(
            &format!("{field}.periodSeconds"),
            step.period_seconds.into(),
            1,
            1800,
        );
        if step.tasks <= 0 && step.percent <= 0 {
            r.add(field, "tasks or percent must be greater than 0");
        }
    }
}

/// Why `spec.delivery: ExactlyOnce` cannot hold for this connector, if it cannot. Every
/// source can (records and source offsets in one Kafka transaction); of the sinks only those
/// that store the Kafka positions with their writes ([`SinkPlugin::delivers_exactly_once`]).
///
/// [`SinkPlugin::delivers_exactly_once`]: crate::plugins::SinkPlugin::delivers_exactly_once
pub fn exactly_once_refusal(spec: &KafkaConnectorSpec) -> Option<String> {
    if spec.delivery != Delivery::ExactlyOnce {
        return None;
    }
    let sink = spec.sink.as_ref()?;
    (!sink.plugin.delivers_exactly_once()).then(|| {
        format!(
            "the {} sink delivers AtLeastOnce only (an ExactlyOnce sink stores the Kafka \
             positions with its writes: postgres); remove spec.delivery or set it to AtLeastOnce",
            sink.plugin.name()
        )
    })
}

/// Every violation in a connector's spec.
pub fn validate_spec(spec: &KafkaConnectorSpec) -> Vec<Violation> {
    let mut r = Report::default();
    if spec.source.is_some() == spec.sink.is_some() {
        r.add(
            "spec",
            "needs exactly one of source (external system to Kafka) or sink (Kafka to external system)",
        );
    }
    check_kafka(&mut r, &spec.kafka);
    if let Some(source) = &spec.source {
        for (field, message) in source.plugin.violations() {
            r.add(field, message);
        }
    }
    if let Some(sink) = &spec.sink {
        if sink.topics.is_empty() == sink.topics_regex.is_none() {
            r.add("spec.sink", "needs exactly one of topics or topicsRegex");
        }
        if sink.topics.len() > 100 {
            r.add("spec.sink.topics", "at most 100 topics");
        }
        let mut seen = BTreeSet::new();
        for (i, topic) in sink.topics.iter().enumerate() {
            let field = format!("spec.sink.topics[{i}]");
            check_topic_name(&mut r, &field, topic);
            if !seen.insert(topic.as_str()) {
                r.add(field, format!("duplicate topic {topic:?}"));
            }
        }
        if let Some(regex) = &sink.topics_regex {
            if regex.is_empty() || regex.len() > 1024 {
                r.add("spec.sink.topicsRegex", "must be 1 to 1024 characters");
            }
        }
        for (field, message) in sink.plugin.violations() {
            r.add(field, message);
        }
    }
    if let Some(tasks) = spec.tasks {
        r.range("spec.tasks", tasks.into(), 1, MAX_TASKS.into());
    }
    if let Some(a) = &spec.autoscaling {
        r.range(
            "spec.autoscaling.minTasks",
            a.min_tasks.into(),
            0,
            MAX_TASKS.into(),
        );
        r.range(
            "spec.autoscaling.maxTasks",
            a.max_tasks.into(),
            1,
            MAX_TASKS.into(),
        );
        if a.min_tasks > a.max_tasks {
            r.add(
                "spec.autoscaling.minTasks",
                "must not be greater than spec.autoscaling.maxTasks",
            );
        }
        check_autoscaling(&mut r, a);
    }
    if let Some(converters) = &spec.converters {
        check_converters(&mut r, converters);
    }
    check_transforms(&mut r, &spec.transforms);
    if let Some(p) = &spec.restart_policy {
        let field = "spec.restartPolicy";
        r.range(
            &format!("{field}.initialBackoffSeconds"),
            p.initial_backoff_seconds.into(),
            1,
            3600,
        );
        r.range(
            &format!("{field}.maxBackoffSeconds"),
            p.max_backoff_seconds.into(),
            1,
            86400,
        );
        r.range(
            &format!("{field}.resetAfterSeconds"),
            p.reset_after_seconds.into(),
            1,
            86400,
        );
        if p.initial_backoff_seconds > p.max_backoff_seconds {
            r.add(
                format!("{field}.initialBackoffSeconds"),
                "must not be greater than spec.restartPolicy.maxBackoffSeconds",
            );
        }
    }
    if let Some(p) = &spec.progress {
        r.range(
            "spec.progress.stallAfterSeconds",
            p.stall_after_seconds.into(),
            10,
            86400,
        );
    }
    if let Some(reset) = spec.offsets.as_ref().and_then(|o| o.reset.as_ref()) {
        check_offset_reset(&mut r, spec, reset);
    }
    if spec
        .errors
        .as_ref()
        .is_some_and(|e| e.dead_letter_queue.is_some())
        && spec.sink.is_none()
    {
        r.add("spec.errors.deadLetterQueue", "is for sink connectors only");
    }
    if let Some(message) = exactly_once_refusal(spec) {
        r.add("spec.delivery", message);
    }
    if let Some(image) = &spec.image {
        if image.is_empty() || image.len() > 512 || image.chars().any(char::is_whitespace) {
            r.add(
                "spec.image",
                "must be an image reference of 1 to 512 characters without spaces",
            );
        }
    }
    if let Some(pod) = spec.template.as_ref().and_then(|t| t.pod.as_ref()) {
        for (field, value) in [
            ("serviceAccountName", &pod.service_account_name),
            ("priorityClassName", &pod.priority_class_name),
        ] {
            if value
                .as_ref()
                .is_some_and(|v| v.is_empty() || v.len() > 253)
            {
                r.add(
                    format!("spec.template.pod.{field}"),
                    "must be 1 to 253 characters",
                );
            }
        }
        for key in pod.labels.keys().filter(|k| is_reserved_pod_label(k)) {
            r.add(
                format!("spec.template.pod.labels[{key:?}]"),
                "is set by the operator on every task pod and cannot be given here",
            );
        }
    }
    r.0
}

fn check_kafka(r: &mut Report, kafka: &KafkaSpec) {
    if !is_bootstrap_list(&kafka.bootstrap_servers) {
        r.add(
            "spec.kafka.bootstrapServers",
            format!(
                "{:?} is not a comma-separated list of host:port",
                kafka.bootstrap_servers
            ),
        );
    }
    if kafka.config.len() > 100 {
        r.add("spec.kafka.config", "at most 100 properties");
    }
    for (key, value) in &kafka.config {
        let field = format!("spec.kafka.config[{key:?}]");
        if let Some(why) = kafka_config_keys::refusal(key, value) {
            r.add(field, why);
        } else if value.len() > 4096 {
            r.add(field, "at most 4096 characters");
        }
    }
    if let Some(tls) = &kafka.tls {
        if tls.cert.is_some() != tls.key.is_some() {
            r.add(
                "spec.kafka.tls",
                "cert and key must be set together (mutual TLS needs both)",
            );
        }
        for (name, secret) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
            if let Some(secret) = secret {
                check_secret_key_ref(r, &format!("spec.kafka.tls.{name}"), secret);
            }
        }
    }
    if let Some(sasl) = &kafka.sasl {
        check_secret_key_ref(
            r,
            "spec.kafka.sasl.username.secretKeyRef",
            &sasl.username.secret_key_ref,
        );
        check_secret_key_ref(
            r,
            "spec.kafka.sasl.password.secretKeyRef",
            &sasl.password.secret_key_ref,
        );
    }
}

/// `host:port[,host:port...]`, no spaces, ports of 1 to 5 digits.
fn is_bootstrap_list(servers: &str) -> bool {
    !servers.is_empty()
        && servers.len() <= 2048
        && servers.split(',').all(|server| {
            let Some((host, port)) = server.rsplit_once(':') else {
                return false;
            };
            !host.is_empty()
                && !host.chars().any(char::is_whitespace)
                && (1..=5).contains(&port.len())
                && port.bytes().all(|b| b.is_ascii_digit())
        })
}

fn check_secret_key_ref(r: &mut Report, field: &str, secret: &SecretKeyRef) {
    if !is_dns_subdomain(&secret.name) {
        r.add(
            format!("{field}.name"),
            format!("{:?} is not a valid Secret name", secret.name),
        );
    }
    let key_ok = !secret.key.is_empty()
        && secret.key.len() <= 253
        && secret
            .key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if !key_ok {
        r.add(
            format!("{field}.key"),
            format!("{:?} is not a valid Secret key", secret.key),
        );
    }
}

/// Lowercase letters, digits, `-` and `.`, starting and ending alphanumeric, 1 to 253
/// characters (`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`).
fn is_dns_subdomain(name: &str) -> bool {
    is_lower_name(name, 253)
}

fn is_lower_name(name: &str, max: usize) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= max
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|b| edge(b) || *b == b'-' || *b == b'.')
}

fn check_topic_name(r: &mut Report, field: &str, topic: &str) {
    let ok = !topic.is_empty()
        && topic.len() <= 249
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        r.add(
            field,
            format!(
                "{topic:?} is not a valid topic name (letters, digits, '.', '_', '-'; at most 249)"
            ),
        );
    }
}

/// The blocks among `kinds` that a serialized block sets.
fn blocks_set<T: Serialize>(value: &T, kinds: &[&str]) -> Vec<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(fields)) => fields
            .into_iter()
            .filter(|(k, v)| kinds.contains(&k.as_str()) && !v.is_null())
            .map(|(k, _)| k)
            .collect(),
        _ => Vec::new(),
    }
}

fn check_exactly_one<T: Serialize>(r: &mut Report, field: &str, value: &T, kinds: &[&str]) {
    let set = blocks_set(value, kinds);
    if set.len() != 1 {
        let found = if set.is_empty() {
            "none".to_owned()
        } else {
            set.join(", ")
        };
        r.add(
            field,
            format!("needs exactly one of {}; found {found}", kinds.join(", ")),
        );
    }
}

fn check_converters(r: &mut Report, converters: &Converters) {
    if let Some(key) = &converters.key {
        check_exactly_one(r, "spec.converters.key", key, CONVERTER_KINDS);
    }
    if let Some(value) = &converters.value {
        check_exactly_one(r, "spec.converters.value", value, CONVERTER_KINDS);
    }
    if let Some(header) = &converters.header {
        check_exactly_one(r, "spec.converters.header", header, HEADER_CONVERTER_KINDS);
    }
}

fn check_transforms(r: &mut Report, transforms: &[TransformSpec]) {
    if transforms.len() > 64 {
        r.add("spec.transforms", "at most 64 transforms");
    }
    let mut names = BTreeSet::new();
    for (i, t) in transforms.iter().enumerate() {
        let field = format!("spec.transforms[{i}]");
        if t.name.is_empty() || t.name.len() > 128 {
            r.add(format!("{field}.name"), "must be 1 to 128 characters");
        }
        if !names.insert(t.name.as_str()) {
            r.add(
                format!("{field}.name"),
                format!(
                    "{:?} is used by another transform: each transform needs a unique name",
                    t.name
                ),
            );
        }
        check_exactly_one(r, &field, t, TRANSFORM_KINDS);
        match &t.predicate {
            Some(p) => check_exactly_one(r, &format!("{field}.predicate"), p, PREDICATE_KINDS),
            None if t.negate => r.add(format!("{field}.negate"), "negate needs a predicate"),
            None => {}
        }
    }
}

fn check_offset_reset(
    r: &mut Report,
    spec: &KafkaConnectorSpec,
    reset: &crate::connector::OffsetReset,
) {
    let field = "spec.offsets.reset";
    if !is_lower_name(&reset.id, 63) {
        r.add(
            format!("{field}.id"),
            format!(
                "{:?} must be 1 to 63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit",
                reset.id
            ),
        );
    }
    match &reset.to {
        OffsetTarget::Earliest => {}
        OffsetTarget::Latest | OffsetTarget::Timestamp(_) if spec.source.is_some() => r.add(
            format!("{field}.to"),
            "a source connector resets only to Earliest (forget its offsets) or to explicit sourceOffsets",
        ),
        OffsetTarget::Latest | OffsetTarget::Timestamp(_) => {}
        OffsetTarget::Sink(offsets) => {
            if spec.sink.is_none() {
                r.add(
                    format!("{field}.sinkOffsets"),
                    "is for sink connectors; a source connector resets with sourceOffsets",
                );
            }
            if offsets.is_empty() || offsets.len() > 1000 {
                r.add(format!("{field}.sinkOffsets"), "must list 1 to 1000 partitions");
            }
            for (i, o) in offsets.iter().enumerate() {
                let item = format!("{field}.sinkOffsets[{i}]");
                check_topic_name(r, &format!("{item}.topic"), &o.topic);
                r.range(&format!("{item}.partition"), o.partition.into(), 0, i32::MAX.into());
                r.range(&format!("{item}.offset"), o.offset, 0, i64::MAX);
            }
        }
        OffsetTarget::Source(offsets) => {
            if spec.source.is_none() {
                r.add(
                    format!("{field}.sourceOffsets"),
                    "is for source connectors; a sink connector resets with to or sinkOffsets",
                );
            }
            if offsets.is_empty() || offsets.len() > 1000 {
                r.add(format!("{field}.sourceOffsets"), "must list 1 to 1000 partitions");
            }
            for (i, o) in offsets.iter().enumerate() {
                let item = format!("{field}.sourceOffsets[{i}]");
                for (name, map) in [("partition", &o.partition), ("offset", &o.offset)] {
                    if map.is_empty() || map.len() > 16 {
                        r.add(format!("{item}.{name}"), "must have 1 to 16 entries");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> KafkaConnectorSpec {
        serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    const SINK: &str = "kafka: {bootstrapServers: 'k:9092'}\nsink: {topics: [t], discard: {}}\n";
    const SOURCE: &str = "kafka: {bootstrapServers: 'k:9092'}\nsource: {datagen: {topic: t}}\n";

    fn violations(yaml: &str) -> Vec<String> {
        validate_spec(&spec(yaml))
            .into_iter()
            .map(|v| v.to_string())
            .collect()
    }

    fn assert_violation(yaml: &str, expected: &str) {
        let found = violations(yaml);
        assert!(
            found.iter().any(|v| v.contains(expected)),
            "expected {expected:?} in {found:?} for\n{yaml}"
        );
    }

    #[test]
    fn a_plain_sink_and_source_pass() {
        assert_eq!(violations(SINK), Vec::<String>::new());
        assert_eq!(violations(SOURCE), Vec::<String>::new());
    }

    #[test]
    fn source_xor_sink() {
        assert_violation(
            "kafka: {bootstrapServers: 'k:1'}",
            "spec: needs exactly one of source",
        );
        assert_violation(
            &format!("{SINK}source: {{datagen: {{topic: t}}}}"),
            "spec: needs exactly one of source",
        );
    }

    #[test]
    fn kafka_block() {
        assert_violation(
            "kafka: {bootstrapServers: 'kafka'}\nsink: {topics: [t], discard: {}}",
            "spec.kafka.bootstrapServers: \"kafka\" is not a comma-separated list of host:port",
        );
        assert_violation(
            "kafka: {bootstrapServers: 'a:1, b:2'}\nsink: {topics: [t], discard: {}}",
            "spec.kafka.bootstrapServers",
        );
        assert!(is_bootstrap_list("a:1,b.c:9092,[::1]:9092"));
        assert_violation(
            "kafka: {bootstrapServers: 'k:1', config: {ssl.keystore.password: x}}\nsink: {topics: [t], discard: {}}",
            "spec.kafka.config[\"ssl.keystore.password\"]: holds a credential",
        );
        assert_violation(
            "kafka: {bootstrapServers: 'k:1', config: {sasl.jaas.config: x}}\nsink: {topics: [t], discard: {}}",
            "spec.kafka.config[\"sasl.jaas.config\"]: holds a credential",
        );
        assert_violation(
            "kafka: {bootstrapServers: 'k:1', config: {group.id: x}}\nsink: {topics: [t], discard: {}}",
            "spec.kafka.config[\"group.id\"]: is set by Ferry",
        );
        assert_violation(
            "kafka: {bootstrapServers: 'k:1', tls: {cert: {name: c, key: tls.crt}}}\nsink: {topics: [t], discard: {}}",
            "spec.kafka.tls: cert and key must be set together",
        );
        assert_violation(
            "kafka: {bootstrapServers: 'k:1', tls: {ca: {name: Bad_Name, key: 'a b'}}}\nsink: {topics: [t], discard: {}}",
            "spec.kafka.tls.ca.name: \"Bad_Name\" is not a valid Secret name",
        );
        assert_violation(
            "kafka: {bootstrapServers: 'k:1', tls: {ca: {name: ca, key: 'a b'}}}\nsink: {topics: [t], discard: {}}",
            "spec.kafka.tls.ca.key",
        );
    }

    #[test]
    fn sink_topics() {
        let base = "kafka: {bootstrapServers: 'k:1'}\n";
        assert_violation(
            &format!("{base}sink: {{discard: {{}}}}"),
            "spec.sink: needs exactly one of topics or topicsRegex",
        );
        assert_violation(
            &format!("{base}sink: {{topics: [a], topicsRegex: 'a.*', discard: {{}}}}"),
            "spec.sink: needs exactly one of topics or topicsRegex",
        );
        assert_violation(
            &format!("{base}sink: {{topics: [a/b], discard: {{}}}}"),
            "spec.sink.topics[0]: \"a/b\" is not a valid topic name",
        );
        assert_violation(
            &format!("{base}sink: {{topics: [a, a], discard: {{}}}}"),
            "spec.sink.topics[1]: duplicate topic",
        );
    }

    #[test]
    fn task_counts_and_policies() {
        assert_violation(
            &format!("{SINK}tasks: 0"),
            "spec.tasks: 0 is out of range: 1 to 1000",
        );
        assert_violation(
            &format!("{SINK}tasks: 1001"),
            "spec.tasks: 1001 is out of range",
        );
        assert_violation(
            &format!("{SINK}autoscaling: {{minTasks: 3, maxTasks: 2, lagPerTask: 1}}"),
            "spec.autoscaling.minTasks: must not be greater than spec.autoscaling.maxTasks",
        );
        assert_violation(
            &format!("{SINK}autoscaling: {{maxTasks: 2, lagPerTask: 0}}"),
            "spec.autoscaling.lagPerTask",
        );
        assert_violation(
            &format!("{SINK}restartPolicy: {{initialBackoffSeconds: 10, maxBackoffSeconds: 5}}"),
            "spec.restartPolicy.initialBackoffSeconds: must not be greater than",
        );
        assert_violation(
            &format!("{SINK}restartPolicy: {{initialBackoffSeconds: 0}}"),
            "spec.restartPolicy.initialBackoffSeconds: 0 is out of range",
        );
        assert_violation(
            &format!("{SINK}progress: {{stallAfterSeconds: 5}}"),
            "spec.progress.stallAfterSeconds: 5 is out of range: 10 to 86400",
        );
        assert_violation(&format!("{SINK}image: ''"), "spec.image");
        assert_violation(&format!("{SINK}image: 'a b'"), "spec.image");
        assert_violation(
            &format!("{SINK}template: {{pod: {{serviceAccountName: ''}}}}"),
            "spec.template.pod.serviceAccountName",
        );
        assert_violation(
            &format!("{SINK}template: {{pod: {{labels: {{team: a, ferry.rs/task: '9'}}}}}}"),
            "spec.template.pod.labels[\"ferry.rs/task\"]: is set by the operator",
        );
    }

    #[test]
    fn converters_and_transforms() {
        assert_violation(
            &format!("{SINK}converters: {{value: {{json: {{}}, string: {{}}}}}}"),
            "spec.converters.value: needs exactly one of json, string, byteArray; found json, string",
        );
        assert_violation(
            &format!("{SINK}converters: {{header: {{}}}}"),
            "spec.converters.header: needs exactly one of simple",
        );
        assert_violation(
            &format!("{SINK}transforms: [{{name: a, filter: {{}}, flatten: {{}}}}]"),
            "spec.transforms[0]: needs exactly one of cast",
        );
        assert_violation(
            &format!("{SINK}transforms: [{{name: a}}]"),
            "spec.transforms[0]: needs exactly one of cast",
        );
        assert_violation(
            &format!("{SINK}transforms: [{{name: a, filter: {{}}}}, {{name: a, flatten: {{}}}}]"),
            "spec.transforms[1].name: \"a\" is used by another transform",
        );
        assert_violation(
            &format!("{SINK}transforms: [{{name: a, filter: {{}}, negate: true}}]"),
            "spec.transforms[0].negate: negate needs a predicate",
        );
        assert_violation(
            &format!("{SINK}transforms: [{{name: a, filter: {{}}, predicate: {{}}}}]"),
            "spec.transforms[0].predicate: needs exactly one of topicNameMatches",
        );
        assert_eq!(
            violations(&format!("{SINK}transforms: [{{name: a, filter: {{}}, predicate: {{recordIsTombstone: {{}}}}, negate: true}}]")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn offsets_resets() {
        assert_violation(
            &format!("{SINK}offsets: {{reset: {{id: 'Bad Id', to: Earliest}}}}"),
            "spec.offsets.reset.id: \"Bad Id\" must be",
        );
        assert_violation(
            &format!("{SINK}offsets: {{reset: {{id: '', to: Earliest}}}}"),
            "spec.offsets.reset.id",
        );
        assert_violation(
            &format!("{SOURCE}offsets: {{reset: {{id: a, to: Latest}}}}"),
            "spec.offsets.reset.to: a source connector resets only to Earliest",
        );
        assert_violation(
            &format!("{SOURCE}offsets: {{reset: {{id: a, sinkOffsets: [{{topic: t, partition: 0, offset: 1}}]}}}}"),
            "spec.offsets.reset.sinkOffsets: is for sink connectors",
        );
        assert_violation(
            &format!("{SINK}offsets: {{reset: {{id: a, sourceOffsets: [{{partition: {{p: a}}, offset: {{o: '1'}}}}]}}}}"),
            "spec.offsets.reset.sourceOffsets: is for source connectors",
        );
        assert_violation(
            &format!("{SINK}offsets: {{reset: {{id: a, sinkOffsets: [{{topic: t, partition: -1, offset: -5}}]}}}}"),
            "spec.offsets.reset.sinkOffsets[0].offset: -5 is out of range",
        );
        assert_eq!(
            violations(&format!(
                "{SOURCE}offsets: {{reset: {{id: a.b-1, to: Earliest}}}}"
            )),
            Vec::<String>::new()
        );
    }

    #[test]
    fn dead_letter_queue_only_on_sinks() {
        assert_violation(
            &format!("{SOURCE}errors: {{tolerance: All, deadLetterQueue: {{topic: d}}}}"),
            "spec.errors.deadLetterQueue: is for sink connectors only",
        );
        assert_eq!(
            violations(&format!(
                "{SINK}errors: {{tolerance: All, deadLetterQueue: {{topic: d}}}}"
            )),
            Vec::<String>::new()
        );
    }

    #[test]
    fn long_names_are_refused() {
        let yaml = format!(
            "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: {}}}\nspec: {{kafka: {{bootstrapServers: 'k:1'}}, sink: {{topics: [t], discard: {{}}}}}}",
            "a".repeat(53)
        );
        let kc: KafkaConnector = serde_yaml::from_str(&yaml).unwrap();
        let found = validate(&kc);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].field, "metadata.name");
    }
}

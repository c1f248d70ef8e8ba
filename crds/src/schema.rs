//! The `CustomResourceDefinition` of `KafkaConnector`, and the CEL rules
//! (`x-kubernetes-validations`) the API server checks at `kubectl apply` beyond what the
//! OpenAPI schema can say. Each rule's message names the field it is about.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    ValidationRule,
};
use kube::CustomResourceExt;
use serde_json::{json, Value};

use crate::kafka_config_keys::{KeyRule, ValueMapping, CREDENTIAL_REASON, KEYS};
use crate::librdkafka::{self, PropertyValue, BOOLEAN_WORDS, PROPERTIES};

use crate::connector::{in_words, KafkaConnector};
use crate::names::{LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME, MAX_CONNECTOR_NAME_LENGTH};
use crate::plugins::{SINK_PLUGINS, SOURCE_PLUGINS};

/// Where the generated CRD is kept, relative to the repository root. `crdgen --write`
/// writes all of them; a test fails when one differs from what the types generate.
pub const CRD_FILES: &[&str] = &[
    "crds/kafkaconnector.yaml",
    "helm/ferry/crds/kafkaconnector.yaml",
    "manifests/base/crd.yaml",
];

/// First line of the generated YAML.
pub const CRD_HEADER: &str =
    "# Generated from the ferry-crds types by `cargo run -p ferry-crds --bin crdgen -- --write`. Do not edit.\n";

/// The `KafkaConnector` CRD: the derived one, with descriptions reflowed for `kubectl
/// explain` and the rules on the whole object.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = KafkaConnector::crd();
    for version in &mut crd.spec.versions {
        if let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            reflow_descriptions(root);
            root.x_kubernetes_validations
                .get_or_insert_with(Vec::new)
                .push(ValidationRule {
                    rule: format!("size(self.metadata.name) <= {MAX_CONNECTOR_NAME_LENGTH}"),
                    message: Some(format!(
                        "metadata.name must be at most {MAX_CONNECTOR_NAME_LENGTH} characters: task pods are named <name>-task-<index>"
                    )),
                    ..ValidationRule::default()
                });
        }
    }
    crd
}

/// Joins the lines of every description into paragraphs: doc comments are wrapped at 100
/// columns, and `kubectl explain` wraps again, which would leave ragged lines.
fn reflow_descriptions(schema: &mut JSONSchemaProps) {
    if let Some(description) = schema.description.as_mut() {
        *description = reflow(description);
    }
    let children =
        schema
            .properties
            .iter_mut()
            .flat_map(|p| p.values_mut())
            .chain(schema.items.iter_mut().filter_map(|items| match items {
                JSONSchemaPropsOrArray::Schema(schema) => Some(schema.as_mut()),
                JSONSchemaPropsOrArray::Schemas(_) => None,
            }))
            .chain(schema.additional_properties.iter_mut().filter_map(
                |additional| match additional {
                    JSONSchemaPropsOrBool::Schema(schema) => Some(schema.as_mut()),
                    JSONSchemaPropsOrBool::Bool(_) => None,
                },
            ));
    for child in children {
        reflow_descriptions(child);
    }
}

/// `"a\nb\n\nc"` → `"a b\n\nc"`: single line breaks become spaces, paragraphs stay.
fn reflow(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            paragraph
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The CRD as YAML, with [`CRD_HEADER`]: the content of every file in [`CRD_FILES`].
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    Ok(format!("{CRD_HEADER}{}", serde_yaml::to_string(&crd())?))
}

/// How a CEL expression reaches the property `name` of `self`: escaped as Kubernetes
/// escapes property names for CEL (`in` is `__in__`), by [`crate::admission`]'s rule.
pub fn cel_field(name: &str) -> String {
    crate::admission::cel_property_name(name).unwrap_or_else(|| name.to_owned())
}

/// A CEL rule that holds when exactly one of the properties `names` is set.
pub fn exactly_one_rule(names: &[&str]) -> String {
    let checks: Vec<String> = names
        .iter()
        .map(|n| format!("has(self.{})", cel_field(n)))
        .collect();
    format!("[{}].exists_one(x, x)", checks.join(", "))
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(names: &[&str]) -> String {
    in_words(names, "or")
}

fn push_rule(schema: &mut schemars::Schema, rule: Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let rules = object
        .entry("x-kubernetes-validations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(rules) = rules {
        rules.push(rule);
    }
}

fn add_rule(schema: &mut schemars::Schema, rule: String, message: String) {
    push_rule(schema, json!({"rule": rule, "message": message}));
}

/// A rule about one field below the node it is set on (`fieldPath`, e.g. `.delivery`): the
/// API server reports it under that field.
fn add_rule_at(schema: &mut schemars::Schema, field_path: &str, rule: String, message: String) {
    push_rule(
        schema,
        json!({"rule": rule, "message": message, "fieldPath": field_path}),
    );
}

/// A rule whose error message is computed (`messageExpression`), e.g. to name the offending
/// key; `message` is shown if the expression cannot be evaluated.
fn add_rule_with_expression(
    schema: &mut schemars::Schema,
    rule: String,
    message: String,
    message_expression: String,
) {
    push_rule(
        schema,
        json!({"rule": rule, "message": message, "messageExpression": message_expression}),
    );
}

/// `'a', 'b'`: names as a CEL list body.
fn cel_string_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn has_property(schema: &schemars::Schema, path: &[&str]) -> bool {
    let mut current = schema.as_value();
    for name in path {
        match current.get("properties").and_then(|p| p.get(name)) {
            Some(next) => current = next,
            None => return false,
        }
    }
    true
}

/// Rules on `spec` as a whole.
pub fn spec_rules(schema: &mut schemars::Schema) {
    add_rule(
        schema,
        "has(self.source) != has(self.sink)".to_owned(),
        "spec needs exactly one of source (external system to Kafka) or sink (Kafka to external system)".to_owned(),
    );
    add_rule_at(
        schema,
        ".offsets.reset.sinkOffsets",
        "!has(self.offsets) || !has(self.offsets.reset) || !has(self.offsets.reset.sinkOffsets) || has(self.sink)".to_owned(),
        "spec.offsets.reset.sinkOffsets is for sink connectors; a source connector resets with sourceOffsets".to_owned(),
    );
    add_rule_at(
        schema,
        ".offsets.reset.sourceOffsets",
        "!has(self.offsets) || !has(self.offsets.reset) || !has(self.offsets.reset.sourceOffsets) || has(self.source)".to_owned(),
        "spec.offsets.reset.sourceOffsets is for source connectors; a sink connector resets with to or sinkOffsets".to_owned(),
    );
    add_rule_at(
        schema,
        ".offsets.reset.to",
        "!has(self.offsets) || !has(self.offsets.reset) || !has(self.offsets.reset.to) || has(self.sink) || self.offsets.reset.to == 'Earliest'".to_owned(),
        "spec.offsets.reset.to: a source connector resets only to Earliest (forget its offsets) or to explicit sourceOffsets".to_owned(),
    );
    add_rule_at(
        schema,
        ".delivery",
        "!has(self.delivery) || self.delivery != 'ExactlyOnce' || !has(self.sink) || has(self.sink.postgres)".to_owned(),
        "spec.delivery: ExactlyOnce is for source connectors and the postgres sink (which stores the Kafka positions with its rows); the other sinks deliver AtLeastOnce".to_owned(),
    );
    if has_property(schema, &["errors", "deadLetterQueue"]) {
        add_rule_at(
            schema,
            ".errors.deadLetterQueue",
            "!has(self.errors) || !has(self.errors.deadLetterQueue) || has(self.sink)".to_owned(),
            "spec.errors.deadLetterQueue is for sink connectors only".to_owned(),
        );
    }
}

/// Rules and bounds on `spec.kafka.config`, from the one table of keys
/// ([`crate::kafka_config_keys`]): no credentials, no key Ferry sets itself or that only the
/// Java client knows, mapped Java keys with values that convert, a bounded size.
pub fn kafka_config_rules(schema: &mut schemars::Schema) {
    let keys_where = |pick: fn(&KeyRule) -> bool| -> Vec<&'static str> {
        KEYS.iter()
            .filter(|(_, rule)| pick(rule))
            .map(|(key, _)| *key)
            .collect()
    };
    let credential_keys = keys_where(|r| matches!(r, KeyRule::Credential));
    let credential = format!(
        "k in [{}] || k.lowerAscii().contains('password') || k.lowerAscii().contains('secret')",
        cel_string_list(&credential_keys)
    );
    add_rule_with_expression(
        schema,
        format!("!self.exists(k, {credential})"),
        "spec.kafka.config must not hold credentials (sasl.jaas.config, sasl.username, private keys, keys containing password or secret): use spec.kafka.sasl and spec.kafka.tls, which read them from Secrets".to_owned(),
        format!(
            "'spec.kafka.config[\"' + self.filter(k, {credential})[0] + '\"] {CREDENTIAL_REASON}'"
        ),
    );
    // One rule per reason: its message names the first refused key.
    let mut reasons: Vec<&'static str> = Vec::new();
    for (_, rule) in KEYS {
        if let KeyRule::Refused(why) = rule {
            if !reasons.contains(why) {
                reasons.push(why);
            }
        }
    }
    for why in reasons {
        let keys = keys_where_reason(why);
        let refused = format!("k in [{}]", cel_string_list(&keys));
        add_rule_with_expression(
            schema,
            format!("!self.exists(k, {refused})"),
            format!(
                "spec.kafka.config must not set {}: {why}",
                in_words(&keys, "or")
            ),
            format!(
                "'spec.kafka.config[\"' + self.filter(k, {refused})[0] + '\"] {}'",
                why.replace('\'', "\\'")
            ),
        );
    }
    for (key, rule) in KEYS {
        if let KeyRule::Map { to, value } = rule {
            if let Some(pattern) = value.value_pattern() {
                add_rule(
                    schema,
                    format!("!('{key}' in self) || self['{key}'].matches('{pattern}')"),
                    format!(
                        "spec.kafka.config[\"{key}\"] must be a number of bytes (it becomes librdkafka's {to})"
                    ),
                );
            }
        }
    }
    librdkafka_rules(schema, &credential);
    if let Some(object) = schema.as_object_mut() {
        object.insert("maxProperties".to_owned(), json!(100));
        if let Some(Value::Object(values)) = object.get_mut("additionalProperties") {
            values.insert("maxLength".to_owned(), json!(4096));
        }
    }
}

/// The keys of `spec.kafka.config` whose values librdkafka reads as they are, each with the
/// librdkafka property that reads it: the keys passed through, and the Java keys mapped
/// without converting the value.
fn librdkafka_read_keys() -> Vec<(&'static str, &'static librdkafka::Property)> {
    let passed = PROPERTIES
        .iter()
        .filter(|p| matches!(crate::kafka_config_keys::key_rule(p.name), KeyRule::Pass))
        .map(|p| (p.name, p));
    let mapped = KEYS.iter().filter_map(|(key, rule)| match rule {
        KeyRule::Map {
            to,
            value: ValueMapping::Same,
        } => librdkafka::property(to).map(|p| (*key, p)),
        _ => None,
    });
    passed.chain(mapped).collect()
}

/// A rule that holds when no key `k` of the map is `bad` (a CEL condition on `k`), whose
/// message is `says` (a CEL string expression on `k`) for the first bad key.
fn add_key_rule(schema: &mut schemars::Schema, bad: &str, message: String, says: &str) {
    add_rule_with_expression(
        schema,
        format!("!self.exists(k, {bad})"),
        message,
        format!("self.filter(k, {bad}).map(k, {says})[0]"),
    );
}

/// What librdkafka accepts in `spec.kafka.config`, from its own property table
/// ([`crate::librdkafka`]): known names, and values of the right kind and range.
fn librdkafka_rules(schema: &mut schemars::Schema, credential: &str) {
    let version = librdkafka::VERSION;
    let known: Vec<&str> = PROPERTIES
        .iter()
        .filter(|p| p.value != PropertyValue::DedicatedApi)
        .map(|p| p.name)
        .chain(KEYS.iter().map(|(k, _)| *k))
        .collect();
    let mapped: Vec<&str> = KEYS
        .iter()
        .filter(|(_, r)| matches!(r, KeyRule::Map { .. }))
        .map(|(k, _)| *k)
        .collect();
    add_key_rule(
        schema,
        &format!("!(k in [{}] || {credential})", cel_string_list(&known)),
        format!("spec.kafka.config takes librdkafka {version} properties and the Java client keys {}", in_words(&mapped, "and")),
        &format!(
            "'spec.kafka.config[\"' + k + '\"] is not a librdkafka property (librdkafka {version}), nor a Java client key Ferry maps ({})'",
            in_words(&mapped, "or")
        ),
    );
    let mut not_built: Vec<&str> = Vec::new();
    let dedicated: Vec<&str> = PROPERTIES
        .iter()
        .filter(|p| p.value == PropertyValue::DedicatedApi)
        .map(|p| p.name)
        .collect();
    add_key_rule(
        schema,
        &format!("k in [{}]", cel_string_list(&dedicated)),
        "spec.kafka.config must not set properties librdkafka takes through its C API (callbacks and pointers)".to_owned(),
        "'spec.kafka.config[\"' + k + '\"] is set through librdkafka\\'s C API (a callback or a pointer), not from a configuration string'",
    );
    for property in PROPERTIES {
        if let PropertyValue::NotBuiltIn(why) = property.value {
            if !not_built.contains(&why) {
                not_built.push(why);
            }
        }
    }
    for why in not_built {
        let names: Vec<&str> = PROPERTIES
            .iter()
            .filter(|p| p.value == PropertyValue::NotBuiltIn(why))
            .map(|p| p.name)
            .collect();
        let why = why.replace('\'', "\\'");
        add_key_rule(
            schema,
            &format!("k in [{}]", cel_string_list(&names)),
            format!("spec.kafka.config must not set properties the tasks' librdkafka {version} lacks ({why})"),
            &format!("'spec.kafka.config[\"' + k + '\"] is not in the librdkafka {version} the tasks run: {why}'"),
        );
    }
    // One rule per key with a value of a kind: no comprehension over the map, so the API
    // server's cost estimate stays small, and a message naming the key and what it takes.
    for (key, property) in librdkafka_read_keys() {
        let value = format!("self['{key}'].trim()");
        let (holds, takes) = match property.value {
            PropertyValue::Integer { min, max } => (
                format!("{value}.matches('^-?[0-9]{{1,18}}$') && int({value}) >= {min} && int({value}) <= {max}"),
                format!("a whole number from {min} to {max}"),
            ),
            PropertyValue::Float { min, max } => (
                format!("{value}.matches('^-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$') && double({value}) >= {min:?} && double({value}) <= {max:?}"),
                format!("a number from {min} to {max}"),
            ),
            PropertyValue::Boolean => (
                format!("self['{key}'].lowerAscii() in [{}]", cel_string_list(BOOLEAN_WORDS)),
                "true or false".to_owned(),
            ),
            PropertyValue::Enum(words) => (
                format!("{value}.lowerAscii() in [{}]", cel_string_list(words)),
                format!("one of {}", words.join(", ")),
            ),
            PropertyValue::Text | PropertyValue::DedicatedApi | PropertyValue::NotBuiltIn(_) => {
                continue
            }
        };
        add_rule(
            schema,
            format!("!('{key}' in self) || ({holds})"),
            format!("spec.kafka.config[\"{key}\"] must be {takes}"),
        );
    }
}

/// The keys of [`KEYS`] refused for the reason `why`.
fn keys_where_reason(why: &str) -> Vec<&'static str> {
    KEYS.iter()
        .filter(|(_, rule)| matches!(rule, KeyRule::Refused(w) if *w == why))
        .map(|(key, _)| *key)
        .collect()
}

/// Bounds on `spec.transforms`: names at most 128 characters and unique (errors and
/// metrics name a transform by its name).
pub fn transforms_rules(schema: &mut schemars::Schema) {
    if let Some(Value::Object(name)) = schema
        .as_object_mut()
        .and_then(|o| o.get_mut("items"))
        .and_then(|items| items.get_mut("properties"))
        .and_then(|props| props.get_mut("name"))
    {
        name.insert("minLength".to_owned(), json!(1));
        name.insert("maxLength".to_owned(), json!(128));
    }
    add_rule(
        schema,
        "self.all(t, self.filter(u, u.name == t.name).size() == 1)".to_owned(),
        "spec.transforms: each transform needs a unique name".to_owned(),
    );
}

/// Moves the plugin blocks of a flattened plugin enum (a `oneOf` of one-property objects)
/// into the block's own properties and drops the `oneOf`. Kubernetes reports a failed
/// `oneOf` as "must validate one and only one schema" and then skips the CEL rules, whose
/// message says what is wrong; "exactly one plugin block" is a CEL rule instead.
fn hoist_plugin_blocks(schema: &mut schemars::Schema) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let Some(Value::Array(variants)) = object.remove("oneOf") else {
        return;
    };
    let properties = object
        .entry("properties")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    let Value::Object(properties) = properties else {
        return;
    };
    for variant in variants {
        let Value::Object(mut variant) = variant else {
            continue;
        };
        let description = variant.remove("description");
        let Some(Value::Object(blocks)) = variant.remove("properties") else {
            continue;
        };
        let single = blocks.len() == 1;
        for (name, mut block) in blocks {
            if let (true, Some(description), Value::Object(block)) =
                (single, description.as_ref(), &mut block)
            {
                block
                    .entry("description")
                    .or_insert_with(|| description.clone());
            }
            properties.insert(name, block);
        }
    }
}

/// Labels the operator sets on task pods; `spec.template.pod.labels` cannot set them (nor any
/// `ferry.rs/` label).
pub const RESERVED_POD_LABELS: &[&str] = &[LABEL_NAME, LABEL_INSTANCE, LABEL_MANAGED_BY];

/// Whether `key` is a label only the operator sets on task pods.
pub fn is_reserved_pod_label(key: &str) -> bool {
    RESERVED_POD_LABELS.contains(&key) || key.starts_with("ferry.rs/")
}

/// `spec.template.pod.labels` leaves the operator's labels alone.
pub fn pod_label_rules(schema: &mut schemars::Schema) {
    let reserved = format!(
        "k in [{}] || k.startsWith('ferry.rs/')",
        cel_string_list(RESERVED_POD_LABELS)
    );
    add_rule_with_expression(
        schema,
        format!("!self.exists(k, {reserved})"),
        "spec.template.pod.labels must not set app.kubernetes.io/name, app.kubernetes.io/instance, app.kubernetes.io/managed-by or ferry.rs/ labels: the operator sets them".to_owned(),
        format!(
            "'spec.template.pod.labels[\"' + self.filter(k, {reserved})[0] + '\"] is set by the operator on every task pod and cannot be given here'"
        ),
    );
    if let Some(object) = schema.as_object_mut() {
        object.insert("maxProperties".to_owned(), json!(64));
    }
}

/// `spec.source` holds exactly one plugin block, among [`SOURCE_PLUGINS`].
pub fn source_rules(schema: &mut schemars::Schema) {
    hoist_plugin_blocks(schema);
    add_rule(
        schema,
        exactly_one_rule(SOURCE_PLUGINS),
        format!(
            "spec.source must hold exactly one plugin block: {}",
            or_list(SOURCE_PLUGINS)
        ),
    );
}

/// `spec.sink` holds exactly one plugin block, among [`SINK_PLUGINS`], and exactly one of
/// `topics` and `topicsRegex`.
pub fn sink_rules(schema: &mut schemars::Schema) {
    hoist_plugin_blocks(schema);
    add_rule(
        schema,
        exactly_one_rule(SINK_PLUGINS),
        format!(
            "spec.sink must hold exactly one plugin block: {}",
            or_list(SINK_PLUGINS)
        ),
    );
    add_rule(
        schema,
        "(has(self.topics) && size(self.topics) > 0) != has(self.topicsRegex)".to_owned(),
        "spec.sink needs exactly one of topics or topicsRegex".to_owned(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_escaped() {
        assert_eq!(cel_field("null"), "__null__");
        assert_eq!(cel_field("file"), "file");
        assert_eq!(
            exactly_one_rule(&["file", "discard", "in"]),
            "[has(self.file), has(self.discard), has(self.__in__)].exists_one(x, x)"
        );
    }

    #[test]
    fn descriptions_become_paragraphs() {
        assert_eq!(reflow("a\n b\n\nc\nd"), "a b\n\nc d");
        assert_eq!(reflow("one line"), "one line");
    }

    #[test]
    fn lists_read_as_words() {
        assert_eq!(or_list(&["file"]), "file");
        assert_eq!(or_list(&["file", "null"]), "file or null");
        assert_eq!(or_list(&["a", "b", "c"]), "a, b or c");
    }
}

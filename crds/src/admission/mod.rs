//! Admission offline: what the API server does with a `KafkaConnector` on `kubectl apply`,
//! done by evaluating the CRD's own OpenAPI schema and CEL rules ([`crate::schema::crd`]), so
//! `ferry-runner validate -f`, standalone runs and the operator's guard give the API server's
//! verdict, with its field paths, on every input.
//!
//! In the API server's order: strict decoding (unknown fields), defaulting, the schema's
//! types, enums, bounds and list types, then the CEL rules, which are skipped (with a note)
//! when a value has the wrong type, is missing, is too long or is not one of the allowed
//! ones. The CEL evaluation has no cost budget: the rules are ours and small.

mod node;
mod rules;
mod structural;

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{json, Value};

use crate::KafkaConnector;
use node::Node;

/// A property name as CEL rules spell it (`in` is `__in__`, `a.b` is `a__dot__b`), or
/// `None` when rules cannot name it.
pub fn cel_property_name(name: &str) -> Option<String> {
    rules::escape(name)
}

/// `apiVersion` of the resource.
pub const API_VERSION: &str = "ferry.rs/v1alpha1";
/// `kind` of the resource.
pub const KIND: &str = "KafkaConnector";

/// One problem the API server would report: the field (e.g. `spec.tasks`, `spec.sink.topics[1]`,
/// `spec.kafka.config`) and its message (e.g. `Required value`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Violation {
    /// Path of the offending field, from the resource's root; empty for the whole object.
    pub field: String,
    /// What is wrong, in the API server's words.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// A violation found on the way, and whether it keeps the CEL rules from running.
#[derive(Debug)]
pub(crate) struct Finding {
    violation: Violation,
    blocking: bool,
}

impl Finding {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            violation: Violation {
                field: field.into(),
                message: message.into(),
            },
            blocking: false,
        }
    }

    fn blocking(field: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            blocking: true,
            ..Finding::new(field, message)
        }
    }

    fn unknown_field(field: String) -> Finding {
        let message = format!("unknown field {field:?}");
        Finding::new(field, message)
    }
}

type Findings = Vec<Finding>;

/// What the CEL rules say when earlier errors kept them from running.
pub const RULES_NOT_CHECKED: &str = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

/// The fields of `metadata` (Kubernetes' `ObjectMeta`).
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// The CRD's checks, read from [`crate::schema::crd`]: the schema of the stored version and
/// its `/scale` replicas path. Rules and patterns compile when first used.
///
/// A task admits its connector once, with an `Admission` of its own that it then drops;
/// the operator admits connectors all the time and uses the shared one of the free
/// functions ([`admit`], [`check`], ...).
pub struct Admission {
    root: Node,
    spec_replicas_path: Option<String>,
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new()
    }
}

/// The process-wide [`Admission`] of the free functions.
fn shared() -> &'static Admission {
    static SHARED: OnceLock<Admission> = OnceLock::new();
    SHARED.get_or_init(Admission::new)
}

/// What [`Admission`] reads: [`checks_json`] of the CRD, as `crdgen --write` wrote it.
const CHECKS_JSON: &str = include_str!("schema.json");

/// The repository path of the file behind [`Admission::new`].
pub const CHECKS_FILE: &str = "crds/src/admission/schema.json";

/// What admission needs of `crd`, as compact JSON: the stored version's OpenAPI schema
/// without descriptions, and the `/scale` replicas path.
pub fn checks_json(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> String {
    checks_json_value(crd).to_string() + "\n"
}

fn checks_json_value(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.remove("description");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let version = crd.spec.versions.iter().find(|v| v.storage);
    let mut schema = version
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_else(|| json!({"type": "object"}));
    // Rule messages stay: they are what admission reports.
    strip(&mut schema);
    let spec_replicas_path = version
        .and_then(|v| v.subresources.as_ref())
        .and_then(|s| s.scale.as_ref())
        .map(|scale| scale.spec_replicas_path.clone());
    json!({"openAPIV3Schema": schema, "specReplicasPath": spec_replicas_path})
}

/// The schema of the stored version, with the fields every object has at its root.
fn read_root(mut schema: Value) -> Node {
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("apiVersion".into(), json!({"type": "string"}));
        props.insert("kind".into(), json!({"type": "string"}));
        props.insert(
            "metadata".into(),
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
    }
    Node::read(&schema)
}

/// What the `/scale` subresource requires of its replicas field (`.spec.tasks`): a
/// non-negative 32-bit integer, reported under the path as the CRD writes it.
fn scale_replicas(spec_replicas_path: Option<&str>, object: &Value) -> Findings {
    let Some(path) = spec_replicas_path else {
        return Findings::new();
    };
    let value = path
        .trim_start_matches('.')
        .split('.')
        .try_fold(object, |v, name| v.get(name));
    match value {
        None | Some(Value::Null) => Findings::new(),
        Some(v) => match v.as_i64() {
            Some(n) if n < 0 => vec![Finding::new(
                path,
                format!("Invalid value: {n}: should be a non-negative integer"),
            )],
            Some(n) if n > i64::from(i32::MAX) => vec![Finding::new(
                path,
                format!(
                    "Invalid value: {n}: should be less than or equal to {}",
                    i32::MAX
                ),
            )],
            Some(_) => Findings::new(),
            None => {
                let (shown, ty) = match v {
                    Value::String(s) => (s.clone(), "string"),
                    Value::Bool(b) => (b.to_string(), "bool"),
                    Value::Number(n) => (n.to_string(), "float64"),
                    Value::Array(_) => ("[...]".to_owned(), "[]interface {}"),
                    _ => ("{...}".to_owned(), "map[string]interface {}"),
                };
                vec![Finding::new(
                    path,
                    format!("Invalid value: 0: {path} accessor error: {shown} is of the type {ty}, expected int64"),
                )]
            }
        },
    }
}

impl Admission {
    /// Reads the CRD's checks from `crds/src/admission/schema.json` ([`checks_json`] of the
    /// CRD, written by `crdgen --write` and held to [`crate::schema::crd`] by a test): the
    /// stored version's schema without its descriptions, cheaper for a task to read than
    /// deriving the CRD again.
    pub fn new() -> Admission {
        let checks: Value = serde_json::from_str(CHECKS_JSON)
            .unwrap_or_else(|_| checks_json_value(&crate::schema::crd()));
        let spec_replicas_path = checks["specReplicasPath"].as_str().map(str::to_owned);
        let schema = Some(checks["openAPIV3Schema"].clone())
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({"type": "object"}));
        Admission {
            root: read_root(schema),
            spec_replicas_path,
        }
    }

    /// Admits `object` (a `KafkaConnector` as JSON) as the API server would on create: the object
    /// with the schema's defaults applied, or every problem found.
    pub fn admit(&self, object: &Value) -> Result<Value, Vec<Violation>> {
        let Some(map) = object.as_object() else {
            return Err(vec![Violation {
                field: String::new(),
                message: format!("a {KIND} must be an object (a YAML mapping)"),
            }]);
        };
        let mut object = Value::Object(map.clone());
        // Status is the operator's: the API server drops it from what a user creates.
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
        let unknown = self.unknown_fields(&object);
        if !unknown.is_empty() {
            // Strict decoding fails before validation.
            return Err(unknown);
        }
        let mut findings = identity(&object);
        structural::apply_defaults(&self.root, &mut object);
        findings.extend(metadata(&object));
        structural::check(&self.root, &object, "", &mut findings);
        findings.extend(scale_replicas(self.spec_replicas_path.as_deref(), &object));
        if findings.iter().any(|f| f.blocking) {
            findings.push(Finding::new("", RULES_NOT_CHECKED));
        } else {
            rules::evaluate(&self.root, &object, "", &mut findings);
        }
        if findings.is_empty() {
            Ok(object)
        } else {
            Err(findings.into_iter().map(|f| f.violation).collect())
        }
    }

    /// The fields of `object` the CRD does not know, each as `unknown field "spec.x"`: what strict
    /// field validation refuses before anything else.
    pub fn unknown_fields(&self, object: &Value) -> Vec<Violation> {
        let mut unknown = Findings::new();
        unknown_metadata_fields(object, &mut unknown);
        structural::unknown_fields(&self.root, object, "", &mut unknown);
        unknown.into_iter().map(|f| f.violation).collect()
    }

    /// `object` without the fields the CRD does not know, as the API server keeps it when asked
    /// to warn about unknown fields (`fieldValidation=Warn`) rather than refuse them.
    pub fn without_unknown_fields(&self, object: &Value) -> Value {
        let mut object = object.clone();
        structural::prune(&self.root, &mut object);
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| OBJECT_META_FIELDS.contains(&k.as_str()));
        }
        object
    }

    /// Admits a connector already read into the Rust types (what the operator holds): every
    /// problem the API server would report for it.
    pub fn check(&self, connector: &KafkaConnector) -> Vec<Violation> {
        match serde_json::to_value(connector) {
            Ok(object) => self.admit(&object).err().unwrap_or_default(),
            Err(e) => vec![Violation {
                field: String::new(),
                message: format!("the connector cannot be written as JSON: {e}"),
            }],
        }
    }
}

/// [`Admission::admit`] with the shared admission.
pub fn admit(object: &Value) -> Result<Value, Vec<Violation>> {
    shared().admit(object)
}

/// [`Admission::unknown_fields`] with the shared admission.
pub fn unknown_fields(object: &Value) -> Vec<Violation> {
    shared().unknown_fields(object)
}

/// [`Admission::without_unknown_fields`] with the shared admission.
pub fn without_unknown_fields(object: &Value) -> Value {
    shared().without_unknown_fields(object)
}

/// [`Admission::check`] with the shared admission.
pub fn check(connector: &KafkaConnector) -> Vec<Violation> {
    shared().check(connector)
}

/// `apiVersion` and `kind`.
fn identity(object: &Value) -> Findings {
    let mut out = Findings::new();
    for (field, expected) in [("apiVersion", API_VERSION), ("kind", KIND)] {
        match object.get(field).and_then(Value::as_str) {
            Some(v) if v == expected => {}
            Some(v) => out.push(Finding::new(
                field,
                format!("Invalid value: {v:?}: must be {expected}"),
            )),
            None => out.push(Finding::new(field, "Required value")),
        }
    }
    out
}

/// The fields of `metadata` that `ObjectMeta` does not have.
fn unknown_metadata_fields(object: &Value, out: &mut Findings) {
    if let Some(meta) = object.get("metadata").and_then(Value::as_object) {
        for k in meta.keys() {
            if !OBJECT_META_FIELDS.contains(&k.as_str()) {
                out.push(Finding::unknown_field(format!("metadata.{k}")));
            }
        }
    }
}

/// The name rules of every object: present, and a DNS subdomain.
fn metadata(object: &Value) -> Findings {
    static SUBDOMAIN: OnceLock<Option<Regex>> = OnceLock::new();
    let subdomain = SUBDOMAIN.get_or_init(|| {
        Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").ok()
    });
    let meta = object.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
    let generate = meta
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str);
    match name {
        None | Some("") if generate.is_none_or(str::is_empty) => vec![Finding::blocking(
            "metadata.name",
            "Required value: name or generateName is required",
        )],
        Some(name)
            if !name.is_empty()
                && (name.len() > 253
                    || !subdomain.as_ref().is_some_and(|re| re.is_match(name))) =>
        {
            vec![Finding::new(
                "metadata.name",
                format!(
                    "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower \
                     case alphanumeric characters, '-' or '.', and must start and end with an \
                     alphanumeric character (e.g. 'example.com', regex used for validation is \
                     '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                ),
            )]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;

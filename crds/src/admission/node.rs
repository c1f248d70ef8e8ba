//! The CRD's OpenAPI schema, read once into a tree the checks walk: types, bounds, enums,
//! list types, defaults and the CEL rules of each node.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use super::rules::Rule;

/// The OpenAPI type of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Type {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
}

impl Type {
    fn parse(name: &str) -> Option<Type> {
        Some(match name {
            "object" => Type::Object,
            "array" => Type::Array,
            "string" => Type::String,
            "integer" => Type::Integer,
            "number" => Type::Number,
            "boolean" => Type::Boolean,
            _ => return None,
        })
    }

    /// The name the API server gives the type in its messages.
    pub(super) fn name(self) -> &'static str {
        match self {
            Type::Object => "object",
            Type::Array => "array",
            Type::String => "string",
            Type::Integer => "integer",
            Type::Number => "number",
            Type::Boolean => "boolean",
        }
    }
}

/// What an object accepts beyond its named properties.
#[derive(Debug)]
pub(super) enum Extra {
    /// Nothing: other keys are unknown fields.
    Nothing,
    /// Any key, its value checked against this node (`additionalProperties: {...}`).
    Values(Box<Node>),
}

/// How the items of a list must differ (`x-kubernetes-list-type`).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ListType {
    /// Every item appears once.
    Set,
    /// The items differ in their `x-kubernetes-list-map-keys`.
    Map(Vec<String>),
}

/// One node of the schema.
#[derive(Debug, Default)]
pub(super) struct Node {
    pub ty: Option<Type>,
    pub nullable: bool,
    pub int_or_string: bool,
    pub preserve_unknown_fields: bool,
    pub properties: BTreeMap<String, Node>,
    pub extra: Option<Extra>,
    pub items: Option<Box<Node>>,
    pub required: Vec<String>,
    pub enum_values: Vec<Value>,
    pub minimum: Option<(f64, bool)>,
    pub maximum: Option<(f64, bool)>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: Option<Pattern>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub list_type: Option<ListType>,
    pub default: Option<Value>,
    pub rules: Vec<Rule>,
}

/// A `pattern`, as written, compiled when first used (`None` when it does not compile).
#[derive(Debug)]
pub(super) struct Pattern {
    pub source: String,
    regex: OnceLock<Option<Regex>>,
}

impl Pattern {
    /// Whether `text` matches; a pattern that does not compile matches nothing.
    pub(super) fn is_match(&self, text: &str) -> bool {
        self.regex
            .get_or_init(|| Regex::new(&self.source).ok())
            .as_ref()
            .is_some_and(|re| re.is_match(text))
    }
}

impl Node {
    /// Reads a node of an OpenAPI v3 schema (as JSON).
    pub(super) fn read(schema: &Value) -> Node {
        let get = |key: &str| schema.get(key);
        let number = |key: &str| get(key).and_then(Value::as_f64);
        let count = |key: &str| get(key).and_then(Value::as_u64);
        let flag = |key: &str| get(key).and_then(Value::as_bool).unwrap_or(false);
        let properties = get("properties")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .map(|(name, sub)| (name.clone(), Node::read(sub)))
                    .collect()
            })
            .unwrap_or_default();
        let extra = match get("additionalProperties") {
            Some(Value::Bool(false)) => Some(Extra::Nothing),
            Some(sub @ Value::Object(_)) => Some(Extra::Values(Box::new(Node::read(sub)))),
            _ => None,
        };
        let list_type = match get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => Some(ListType::Set),
            Some("map") => Some(ListType::Map(
                get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| {
                        keys.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            )),
            _ => None,
        };
        Node {
            ty: get("type").and_then(Value::as_str).and_then(Type::parse),
            nullable: flag("nullable"),
            int_or_string: flag("x-kubernetes-int-or-string"),
            preserve_unknown_fields: flag("x-kubernetes-preserve-unknown-fields"),
            properties,
            extra,
            items: get("items").map(|sub| Box::new(Node::read(sub))),
            required: get("required")
                .and_then(Value::as_array)
                .map(|names| {
                    names
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            enum_values: get("enum")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            minimum: number("minimum").map(|m| (m, flag("exclusiveMinimum"))),
            maximum: number("maximum").map(|m| (m, flag("exclusiveMaximum"))),
            min_length: count("minLength"),
            max_length: count("maxLength"),
            pattern: get("pattern").and_then(Value::as_str).map(|p| Pattern {
                source: p.to_owned(),
                regex: OnceLock::new(),
            }),
            min_items: count("minItems"),
            max_items: count("maxItems"),
            min_properties: count("minProperties"),
            max_properties: count("maxProperties"),
            list_type,
            default: get("default").cloned(),
            rules: get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .map(|rules| rules.iter().map(Rule::read).collect())
                .unwrap_or_default(),
        }
    }

    /// The node of the value under `key` of an object of this node.
    pub(super) fn child(&self, key: &str) -> Option<&Node> {
        self.properties.get(key).or(match &self.extra {
            Some(Extra::Values(node)) => Some(node),
            _ => None,
        })
    }

    /// Whether the keys of this object are field names (escaped for CEL) rather than map
    /// keys.
    pub(super) fn has_fields(&self) -> bool {
        !matches!(self.extra, Some(Extra::Values(_)))
    }
}

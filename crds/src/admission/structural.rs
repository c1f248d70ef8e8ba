//! What the API server does with a custom resource before its CEL rules: it refuses unknown
//! fields (strict field validation, as `kubectl apply` asks for), applies the schema's
//! defaults, and checks types, enums, bounds, patterns and list types. Messages and field
//! paths are the API server's.

use std::collections::BTreeSet;

use serde_json::Value;

use super::node::{Extra, ListType, Node, Type};
use super::{Finding, Findings};

/// `a.b`, `a[0]`, `a[key]`: the API server's field paths.
pub(super) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

pub(super) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The path of a map entry: dotted in the schema's checks (`spec.kafka.config.linger.ms`),
/// as the API server's OpenAPI validation writes it; its CEL rules write `[key]`.
pub(super) fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

/// A value as the API server prints it after `Invalid value: `.
pub(super) fn shown(value: &Value) -> String {
    match value {
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

/// The type name of a value, as the API server's type errors give it.
fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every field of `value` the schema does not know, as `unknown field "spec.x"`.
pub(super) fn unknown_fields(node: &Node, value: &Value, path: &str, out: &mut Findings) {
    if node.preserve_unknown_fields {
        return;
    }
    match value {
        Value::Object(map) => {
            // An object where the schema wants another type has only unknown fields.
            for (k, v) in map {
                let sub_path = child(path, k);
                match node.child(k) {
                    Some(sub) => unknown_fields(sub, v, &sub_path, out),
                    None => out.push(Finding::unknown_field(sub_path)),
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = &node.items {
                for (i, item) in items.iter().enumerate() {
                    unknown_fields(sub, item, &index(path, i), out);
                }
            }
        }
        _ => {}
    }
}

/// Calls `f` with every entry or item of `value` the schema knows, and its node.
fn each_known_child(node: &Node, value: &mut Value, mut f: impl FnMut(&Node, &mut Value)) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if let Some(sub) = node.child(k) {
                    f(sub, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = &node.items {
                items.iter_mut().for_each(|item| f(sub, item));
            }
        }
        _ => {}
    }
}

/// Removes every field the schema does not know (what the API server does with
/// `fieldValidation=Ignore` or `Warn`).
pub(super) fn prune(node: &Node, value: &mut Value) {
    if node.preserve_unknown_fields {
        return;
    }
    if let Value::Object(map) = value {
        map.retain(|k, _| node.child(k).is_some());
    }
    each_known_child(node, value, prune);
}

/// Applies the schema's defaults to `value`: a missing field (or a `null` one that may not be
/// null) with a `default` gets it, and the defaults inside it.
pub(super) fn apply_defaults(node: &Node, value: &mut Value) {
    if let Value::Object(map) = value {
        for (name, sub) in &node.properties {
            let Some(default) = &sub.default else {
                continue;
            };
            let missing = match map.get(name) {
                None => true,
                Some(Value::Null) => !sub.nullable,
                Some(_) => false,
            };
            if missing {
                map.insert(name.clone(), default.clone());
            }
        }
    }
    each_known_child(node, value, apply_defaults);
}

/// Checks `value` against `node` and everything below it.
pub(super) fn check(node: &Node, value: &Value, path: &str, out: &mut Findings) {
    if value.is_null() {
        if !node.nullable && node.ty.is_some() {
            out.push(type_error(node, value, path));
        }
        return;
    }
    if !type_matches(node, value) {
        out.push(type_error(node, value, path));
        return;
    }
    if !node.enum_values.is_empty() && !node.enum_values.contains(value) {
        let supported: Vec<String> = node
            .enum_values
            .iter()
            .map(|v| match v {
                Value::String(s) => format!("{s:?}"),
                other => format!("{:?}", other.to_string()),
            })
            .collect();
        out.push(Finding::blocking(
            path,
            format!(
                "Unsupported value: {}: supported values: {}",
                shown(value),
                supported.join(", ")
            ),
        ));
    }
    match value {
        Value::Number(n) => check_number(node, value, n.as_f64().unwrap_or(0.0), path, out),
        Value::String(s) => check_string(node, value, s, path, out),
        Value::Array(items) => check_array(node, value, items, path, out),
        Value::Object(map) => check_object(node, value, map, path, out),
        Value::Bool(_) | Value::Null => {}
    }
}

fn type_matches(node: &Node, value: &Value) -> bool {
    if node.int_or_string {
        return matches!(value, Value::String(_))
            || value.as_i64().is_some()
            || value.as_u64().is_some();
    }
    match node.ty {
        None => true,
        Some(Type::Object) => value.is_object(),
        Some(Type::Array) => value.is_array(),
        Some(Type::String) => value.is_string(),
        Some(Type::Boolean) => value.is_boolean(),
        Some(Type::Number) => value.is_number(),
        Some(Type::Integer) => value.is_i64() || value.is_u64(),
    }
}

fn type_error(node: &Node, value: &Value, path: &str) -> Finding {
    let expected = node.ty.map(Type::name).unwrap_or("object");
    let actual = type_of(value);
    Finding::blocking(
        path,
        format!("Invalid value: {actual:?}: {path} in body must be of type {expected}: {actual:?}"),
    )
}

fn check_number(node: &Node, value: &Value, n: f64, path: &str, out: &mut Findings) {
    let shown = shown(value);
    if let Some((min, exclusive)) = node.minimum {
        if n < min || (exclusive && n == min) {
            let bound = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            out.push(Finding::new(
                path,
                format!(
                    "Invalid value: {shown}: {path} in body should be {bound} {}",
                    number(min)
                ),
            ));
        }
    }
    if let Some((max, exclusive)) = node.maximum {
        if n > max || (exclusive && n == max) {
            let bound = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            out.push(Finding::new(
                path,
                format!(
                    "Invalid value: {shown}: {path} in body should be {bound} {}",
                    number(max)
                ),
            ));
        }
    }
}

/// A bound as the API server prints it: `1`, not `1.0`.
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e18 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn check_string(node: &Node, value: &Value, s: &str, path: &str, out: &mut Findings) {
    let shown = shown(value);
    let chars = s.chars().count() as u64;
    if let Some(max) = node.max_length {
        if chars > max {
            out.push(Finding::blocking(
                path,
                format!("Too long: may not be more than {max} bytes"),
            ));
        }
    }
    if let Some(min) = node.min_length {
        if chars < min {
            out.push(Finding::new(
                path,
                format!(
                    "Invalid value: {shown}: {path} in body should be at least {min} chars long"
                ),
            ));
        }
    }
    if let Some(pattern) = &node.pattern {
        if !pattern.is_match(s) {
            out.push(Finding::new(
                path,
                format!(
                    "Invalid value: {shown}: {path} in body should match '{}'",
                    pattern.source
                ),
            ));
        }
    }
}

/// `minItems`/`maxItems` or `minProperties`/`maxProperties` on a list or map of `len`
/// entries (`what`: `items` or `properties`, as the API server's message says it).
fn check_count(
    (min, max): (Option<u64>, Option<u64>),
    len: usize,
    what: &str,
    value: &Value,
    path: &str,
    out: &mut Findings,
) {
    let len = len as u64;
    if let Some(max) = max.filter(|max| len > *max) {
        out.push(Finding::blocking(
            path,
            format!("Too many: {len}: must have at most {max} items"),
        ));
    }
    if let Some(min) = min.filter(|min| len < *min) {
        out.push(Finding::new(
            path,
            format!(
                "Invalid value: {}: {path} in body should have at least {min} {what}",
                shown(value)
            ),
        ));
    }
}

fn check_array(node: &Node, value: &Value, items: &[Value], path: &str, out: &mut Findings) {
    let bounds = (node.min_items, node.max_items);
    check_count(bounds, items.len(), "items", value, path, out);
    if let Some(sub) = &node.items {
        for (i, item) in items.iter().enumerate() {
            check(sub, item, &index(path, i), out);
        }
    }
    match &node.list_type {
        Some(ListType::Set) => {
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                if !seen.insert(item.to_string()) {
                    out.push(Finding::new(
                        index(path, i),
                        format!("Duplicate value: {}", shown(item)),
                    ));
                }
            }
        }
        Some(ListType::Map(keys)) => {
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                let id: Vec<String> = keys
                    .iter()
                    .map(|k| item.get(k).map(Value::to_string).unwrap_or_default())
                    .collect();
                if !seen.insert(id.clone()) {
                    out.push(Finding::new(
                        index(path, i),
                        format!(
                            "Duplicate value: {{{}}}",
                            keys.iter()
                                .zip(&id)
                                .map(|(k, v)| format!("{k:?}: {v}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        None => {}
    }
}

fn check_object(
    node: &Node,
    value: &Value,
    map: &serde_json::Map<String, Value>,
    path: &str,
    out: &mut Findings,
) {
    let bounds = (node.min_properties, node.max_properties);
    check_count(bounds, map.len(), "properties", value, path, out);
    for name in &node.required {
        if !map.contains_key(name) {
            out.push(Finding::blocking(child(path, name), "Required value"));
        }
    }
    for (k, v) in map {
        if let Some(sub) = node.properties.get(k) {
            check(sub, v, &child(path, k), out);
        } else if let Some(Extra::Values(sub)) = &node.extra {
            check(sub, v, &child(path, k), out);
        }
    }
}

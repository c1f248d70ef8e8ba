//! Kafka Connect's `JsonConverter`: plain JSON (`schemas: false`) or the
//! `{"schema": ..., "payload": ...}` envelope (`schemas: true`), written byte for byte as
//! Connect writes it.
//!
//! One deliberate difference: schemaless JSON objects keep their key order, where Connect
//! reads them into a `HashMap` and writes them back in hash order.

use super::json_text::{self, JsonNode};
use crate::data::{
    DataError, Decimal, Field, LogicalType, Schema, SchemaAndValue, SchemaType, Value,
};
use base64::Engine;
use ferry_crds::pipeline::{DecimalFormat, JsonConverterSpec};
use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};

/// Base64 as Jackson reads and writes binary values (standard alphabet, padded).
pub(crate) const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// A configured JSON converter.
#[derive(Clone, Debug)]
pub struct JsonConverter {
    schemas: bool,
    decimal_format: DecimalFormat,
    replace_null_with_default: bool,
    /// The last schema written in an envelope and its JSON text: the records of a stream
    /// usually share one schema, so it is written once, not once per record.
    last_schema: Arc<Mutex<Option<(Schema, String)>>>,
}

impl JsonConverter {
    /// The converter `spec` describes.
    pub fn new(spec: &JsonConverterSpec) -> Self {
        JsonConverter {
            schemas: spec.schemas.unwrap_or(false),
            decimal_format: spec.decimal_format.unwrap_or_default(),
            replace_null_with_default: spec.replace_null_with_default.unwrap_or(true),
            last_schema: Arc::new(Mutex::new(None)),
        }
    }

    /// Appends the JSON text of `schema`, reusing the text of the previous record's schema
    /// when it is the same.
    fn push_schema_text(&self, schema: &Schema, out: &mut String) -> Result<(), DataError> {
        let mut last = self
            .last_schema
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, text)) = last.as_ref() {
            if cached == schema {
                out.push_str(text);
                return Ok(());
            }
        }
        let text = self.schema_to_node(schema)?.to_text();
        out.push_str(&text);
        *last = Some((schema.clone(), text));
        Ok(())
    }

    /// Bytes to data (`JsonConverter.toConnectData`).
    pub fn read(&self, bytes: Option<&[u8]>) -> Result<SchemaAndValue, DataError> {
        let Some(bytes) = bytes else {
            return Ok(SchemaAndValue::null());
        };
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            if self.schemas {
                return Err(envelope_error());
            }
            return Ok(SchemaAndValue::null());
        }
        let node = json_text::parse(bytes)?;
        if !self.schemas {
            return Ok(SchemaAndValue::schemaless(schemaless_into_value(node)));
        }
        let JsonNode::Object(members) = &node else {
            return Err(envelope_error());
        };
        let (Some(schema_node), Some(payload), 2) =
            (node.get("schema"), node.get("payload"), members.len())
        else {
            return Err(envelope_error());
        };
        let schema = self.node_to_schema(schema_node)?;
        let value = self.node_to_value(schema.as_ref(), Some(payload))?;
        Ok(SchemaAndValue {
            schema: schema.map(Into::into),
            value,
        })
    }

    /// Data to bytes (`JsonConverter.fromConnectData`).
    pub fn write(&self, data: &SchemaAndValue) -> Result<Option<Vec<u8>>, DataError> {
        if data.schema.is_none() && data.value.is_null() {
            return Ok(None);
        }
        let payload = self.value_to_node(data.schema.as_deref(), &data.value)?;
        if !self.schemas {
            return Ok(Some(payload.to_text().into_bytes()));
        }
        let mut out = String::with_capacity(256);
        out.push_str("{\"schema\":");
        match &data.schema {
            Some(s) => self.push_schema_text(s, &mut out)?,
            None => out.push_str("null"),
        }
        out.push_str(",\"payload\":");
        payload.write_to(&mut out);
        out.push('}');
        Ok(Some(out.into_bytes()))
    }

    /// A Connect schema as JSON (`JsonConverter.asJsonSchema`).
    pub fn schema_to_node<'s>(&self, schema: &'s Schema) -> Result<JsonNode<'s>, DataError> {
        let mut members = vec![(
            "type".into(),
            JsonNode::String(json_type_name(schema.schema_type).into()),
        )];
        match schema.schema_type {
            SchemaType::Array => {
                // An array schema without element schema (inferred from mixed values) is
                // written with "items": null, as Connect writes it.
                let items = match schema.value_schema.as_deref() {
                    Some(items) => self.schema_to_node(items)?,
                    None => JsonNode::Null,
                };
                members.push(("items".into(), items));
            }
            SchemaType::Map => {
                let Some(k) = &schema.key_schema else {
                    return Err(DataError::new("map schema without key schema"));
                };
                members.push(("keys".into(), self.schema_to_node(k)?));
                // Values of mixed types (inferred from text) have no schema: "values": null.
                let values = match &schema.value_schema {
                    Some(v) => self.schema_to_node(v)?,
                    None => JsonNode::Null,
                };
                members.push(("values".into(), values));
            }
            SchemaType::Struct => {
                let mut fields = Vec::with_capacity(schema.fields.len());
                for field in &schema.fields {
                    let mut node = self.schema_to_node(&field.schema)?;
                    if let JsonNode::Object(m) = &mut node {
                        m.push(("field".into(), JsonNode::String(field.name.as_str().into())));
                    }
                    fields.push(node);
                }
                members.push(("fields".into(), JsonNode::Array(fields)));
            }
            _ => {}
        }
        members.push(("optional".into(), JsonNode::Bool(schema.optional)));
        if let Some(name) = &schema.name {
            members.push(("name".into(), JsonNode::String(name.as_str().into())));
        }
        if let Some(version) = schema.version {
            members.push(("version".into(), JsonNode::Int(i64::from(version))));
        }
        if let Some(doc) = &schema.doc {
            members.push(("doc".into(), JsonNode::String(doc.as_str().into())));
        }
        if !schema.parameters.is_empty() {
            let params = schema
                .parameters
                .iter()
                .map(|(k, v)| (k.as_str().into(), JsonNode::String(v.as_str().into())))
                .collect();
            members.push(("parameters".into(), JsonNode::Object(params)));
        }
        if let Some(default) = &schema.default {
            members.push(("default".into(), self.value_to_node(Some(schema), default)?));
        }
        Ok(JsonNode::Object(members))
    }

    /// A JSON schema as a Connect schema (`JsonConverter.asConnectSchema`); `null` is none.
    pub fn node_to_schema(&self, node: &JsonNode<'_>) -> Result<Option<Schema>, DataError> {
        if *node == JsonNode::Null {
            return Ok(None);
        }
        self.node_to_schema_required(node).map(Some)
    }

    fn node_to_schema_required(&self, node: &JsonNode<'_>) -> Result<Schema, DataError> {
        let Some(JsonNode::String(type_name)) = node.get("type") else {
            return Err(DataError::new("Schema must contain 'type' field"));
        };
        let mut schema = match type_name.as_ref() {
            "array" => {
                let items = match node.get("items") {
                    None | Some(JsonNode::Null) => {
                        return Err(DataError::new(
                            "Array schema did not specify the element type",
                        ))
                    }
                    Some(items) => self.node_to_schema_required(items)?,
                };
                Schema::array(items)
            }
            "map" => {
                let keys = match node.get("keys") {
                    None | Some(JsonNode::Null) => {
                        return Err(DataError::new("Map schema did not specify the key type"))
                    }
                    Some(k) => self.node_to_schema_required(k)?,
                };
                let values = match node.get("values") {
                    None | Some(JsonNode::Null) => {
                        return Err(DataError::new("Map schema did not specify the value type"))
                    }
                    Some(v) => self.node_to_schema_required(v)?,
                };
                Schema::map(keys, values)
            }
            "struct" => {
                let Some(JsonNode::Array(field_nodes)) = node.get("fields") else {
                    return Err(DataError::new(
                        "Struct schema's \"fields\" argument is not an array.",
                    ));
                };
                let mut fields: Vec<Field> = Vec::with_capacity(field_nodes.len());
                for field_node in field_nodes {
                    let Some(JsonNode::String(name)) = field_node.get("field") else {
                        return Err(DataError::new(
                            "Struct schema's field name not specified properly",
                        ));
                    };
                    if fields.iter().any(|f| f.name == name.as_ref()) {
                        return Err(DataError::new(format!(
                            "Cannot create field because of field name duplication {name}"
                        )));
                    }
                    fields.push(Field {
                        name: name.to_string(),
                        schema: self.node_to_schema_required(field_node)?,
                    });
                }
                Schema {
                    fields,
                    ..Schema::new(SchemaType::Struct)
                }
            }
            other => match SchemaType::ALL
                .into_iter()
                .find(|t| t.is_primitive() && json_type_name(*t) == other)
            {
                Some(t) => Schema::new(t),
                None => return Err(DataError::new(format!("Unknown schema type: {other}"))),
            },
        };
        schema.optional = matches!(node.get("optional"), Some(JsonNode::Bool(true)));
        if let Some(JsonNode::String(name)) = node.get("name") {
            schema.name = Some(name.to_string());
        }
        if let Some(v @ JsonNode::Number(_)) = node.get("version") {
            if v.is_integral() {
                schema.version = Some(number_to_decimal(v)?.to_i64_truncated() as i32);
            }
        }
        if let Some(JsonNode::String(doc)) = node.get("doc") {
            schema.doc = Some(doc.to_string());
        }
        if let Some(JsonNode::Object(params)) = node.get("parameters") {
            for (k, v) in params {
                let JsonNode::String(v) = v else {
                    return Err(DataError::new("Schema parameters must have string values."));
                };
                schema.parameters.push((k.to_string(), v.to_string()));
            }
        }
        if let Some(default) = node.get("default") {
            let value = self.node_to_value(Some(&schema), Some(default))?;
            if !value.is_null() {
                schema.validate(&value).map_err(|e| {
                    DataError::new(format!("Invalid default value for the schema: {e}"))
                })?;
                schema.default = Some(Box::new(value));
            }
        }
        Ok(schema)
    }

    /// JSON to a Connect value (`JsonConverter.convertToConnect`); `None` is a missing field.
    pub fn node_to_value(
        &self,
        schema: Option<&Schema>,
        node: Option<&JsonNode<'_>>,
    ) -> Result<Value, DataError> {
        let Some(schema) = schema else {
            return schemaless_to_value(node);
        };
        let node = match node {
            None | Some(JsonNode::Null) => {
                if let (Some(default), true) = (&schema.default, self.replace_null_with_default) {
                    return Ok((**default).clone());
                }
                if schema.optional {
                    return Ok(Value::Null);
                }
                return Err(DataError::new(format!(
                    "Invalid null value for required {} field",
                    schema.schema_type.name().to_uppercase()
                )));
            }
            Some(node) => node,
        };
        if let Some(logical) = schema.logical_type() {
            return logical_to_value(schema, logical, node);
        }
        check_logical_name(schema)?;
        let mismatch = || {
            DataError::new(format!(
                "expected {} for a {} schema, found {}",
                expected_node(schema.schema_type),
                schema.describe(),
                node.node_type()
            ))
        };
        Ok(match schema.schema_type {
            SchemaType::Boolean => match node {
                JsonNode::Bool(b) => Value::Boolean(*b),
                _ => return Err(mismatch()),
            },
            SchemaType::Int8 => Value::Int8(number_to_i64(node).ok_or_else(mismatch)? as i8),
            SchemaType::Int16 => Value::Int16(number_to_i64(node).ok_or_else(mismatch)? as i16),
            SchemaType::Int32 => Value::Int32(number_to_i64(node).ok_or_else(mismatch)? as i32),
            SchemaType::Int64 => Value::Int64(number_to_i64(node).ok_or_else(mismatch)?),
            SchemaType::Float32 => match node {
                JsonNode::Number(t) => Value::Float32(positive_zero32(t.parse().unwrap_or(0.0))),
                JsonNode::String(t) => Value::Float32(non_finite(t).ok_or_else(mismatch)? as f32),
                _ => return Err(mismatch()),
            },
            SchemaType::Float64 => match node {
                JsonNode::Number(t) => Value::Float64(positive_zero64(t.parse().unwrap_or(0.0))),
                JsonNode::String(t) => Value::Float64(non_finite(t).ok_or_else(mismatch)?),
                _ => return Err(mismatch()),
            },
            SchemaType::String => match node {
                JsonNode::String(s) => Value::String(s.to_string()),
                _ => return Err(mismatch()),
            },
            SchemaType::Bytes => match node {
                JsonNode::String(s) => Value::Bytes(
                    BASE64
                        .decode(s.as_bytes())
                        .map_err(|e| DataError::new(format!("Invalid bytes field: {e}")))?,
                ),
                _ => return Err(mismatch()),
            },
            SchemaType::Array => {
                let JsonNode::Array(items) = node else {
                    return Err(mismatch());
                };
                let element = schema.value_schema.as_deref();
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.node_to_value(element, Some(item))?);
                }
                Value::Array(out)
            }
            SchemaType::Map => {
                let (Some(ks), Some(vs)) = (&schema.key_schema, &schema.value_schema) else {
                    return Err(DataError::new("map schema without key or value schema"));
                };
                let mut out = Vec::new();
                if ks.schema_type == SchemaType::String {
                    let JsonNode::Object(members) = node else {
                        return Err(DataError::new(format!(
                            "Maps with string fields should be encoded as JSON objects, but found {}",
                            node.node_type()
                        )));
                    };
                    for (k, v) in members {
                        out.push((
                            Value::String(k.to_string()),
                            self.node_to_value(Some(vs), Some(v))?,
                        ));
                    }
                } else {
                    let JsonNode::Array(entries) = node else {
                        return Err(DataError::new(format!(
                            "Maps with non-string fields should be encoded as JSON array of tuples, but found {}",
                            node.node_type()
                        )));
                    };
                    for entry in entries {
                        let JsonNode::Array(pair) = entry else {
                            return Err(DataError::new(format!(
                                "Found invalid map entry instead of array tuple: {}",
                                entry.node_type()
                            )));
                        };
                        if pair.len() != 2 {
                            return Err(DataError::new(format!(
                                "Found invalid map entry, expected length 2 but found :{}",
                                pair.len()
                            )));
                        }
                        out.push((
                            self.node_to_value(Some(ks), Some(&pair[0]))?,
                            self.node_to_value(Some(vs), Some(&pair[1]))?,
                        ));
                    }
                }
                Value::Map(out)
            }
            SchemaType::Struct => {
                if !matches!(node, JsonNode::Object(_)) {
                    return Err(DataError::new(format!(
                        "Structs should be encoded as JSON objects, but found {}",
                        node.node_type()
                    )));
                }
                let mut values = Vec::with_capacity(schema.fields.len());
                for field in &schema.fields {
                    let v = self
                        .node_to_value(Some(&field.schema), node.get(&field.name))
                        .map_err(|e| DataError::new(format!("field {:?}: {e}", field.name)))?;
                    values.push(v);
                }
                Value::Struct(values)
            }
        })
    }

    /// A Connect value as JSON (`JsonConverter.convertToJson`).
    pub fn value_to_node<'v>(
        &self,
        schema: Option<&'v Schema>,
        value: &'v Value,
    ) -> Result<JsonNode<'v>, DataError> {
        if value.is_null() {
            let Some(schema) = schema else {
                return Ok(JsonNode::Null);
            };
            if let (Some(default), true) = (&schema.default, self.replace_null_with_default) {
                return self.value_to_node(Some(schema), default);
            }
            if schema.optional {
                return Ok(JsonNode::Null);
            }
            return Err(DataError::new(
                "Conversion error: null value for field that is required and has no default value",
            ));
        }
        if let Some(schema) = schema {
            if let Some(logical) = schema.logical_type() {
                return self.logical_to_node(schema, logical, value);
            }
            check_logical_name(schema)?;
        }
        let schema_type = match schema {
            Some(s) => s.schema_type,
            None => value.inferred_type().ok_or_else(|| {
                DataError::new(format!(
                    "a schemaless {} value has no JSON form",
                    value.type_name()
                ))
            })?,
        };
        let invalid = || {
            DataError::new(format!(
                "Invalid type for {}: {}",
                schema_type.name().to_uppercase(),
                value.type_name()
            ))
        };
        Ok(match (schema_type, value) {
            (SchemaType::Int8, Value::Int8(v)) => JsonNode::Int(i64::from(*v)),
            (SchemaType::Int16, Value::Int16(v)) => JsonNode::Int(i64::from(*v)),
            (SchemaType::Int32, Value::Int32(v)) => JsonNode::Int(i64::from(*v)),
            (SchemaType::Int64, Value::Int64(v)) => JsonNode::Int(*v),
            (SchemaType::Float32, Value::Float32(v)) => json_text::float32_node(*v),
            (SchemaType::Float64, Value::Float64(v)) => json_text::float64_node(*v),
            (SchemaType::Boolean, Value::Boolean(v)) => JsonNode::Bool(*v),
            (SchemaType::String, Value::String(v)) => JsonNode::String(v.as_str().into()),
            (SchemaType::Bytes, Value::Bytes(v)) => JsonNode::String(BASE64.encode(v).into()),
            (SchemaType::Array, Value::Array(items)) => {
                let element = schema.and_then(|s| s.value_schema.as_deref());
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.value_to_node(element, item)?);
                }
                JsonNode::Array(out)
            }
            (SchemaType::Map, Value::Map(entries)) => {
                if schema.is_some_and(|s| s.key_schema.is_none()) {
                    return Err(DataError::new("map schema without key schema"));
                }
                let key_schema = schema.and_then(|s| s.key_schema.as_deref());
                let value_schema = schema.and_then(|s| s.value_schema.as_deref());
                let object_mode = match key_schema {
                    Some(ks) => ks.schema_type == SchemaType::String,
                    None => entries.iter().all(|(k, _)| matches!(k, Value::String(_))),
                };
                if object_mode {
                    let mut members = json_text::ObjectBuilder::default();
                    for (k, v) in entries {
                        let key = match self.value_to_node(key_schema, k)? {
                            JsonNode::String(s) => s,
                            other => Cow::Owned(other.to_text()),
                        };
                        members.insert(key, self.value_to_node(value_schema, v)?);
                    }
                    members.build()
                } else {
                    let mut out = Vec::with_capacity(entries.len());
                    for (k, v) in entries {
                        out.push(JsonNode::Array(vec![
                            self.value_to_node(key_schema, k)?,
                            self.value_to_node(value_schema, v)?,
                        ]));
                    }
                    JsonNode::Array(out)
                }
            }
            (SchemaType::Struct, Value::Struct(values)) => {
                let Some(schema) = schema else {
                    return Err(invalid());
                };
                if values.len() != schema.fields.len() {
                    return Err(DataError::new("Mismatching schema."));
                }
                let mut members = Vec::with_capacity(values.len());
                for (field, v) in schema.fields.iter().zip(values) {
                    let node = self
                        .value_to_node(Some(&field.schema), v)
                        .map_err(|e| DataError::new(format!("field {:?}: {e}", field.name)))?;
                    members.push((field.name.as_str().into(), node));
                }
                JsonNode::Object(members)
            }
            _ => return Err(invalid()),
        })
    }

    fn logical_to_node<'v>(
        &self,
        schema: &Schema,
        logical: LogicalType,
        value: &'v Value,
    ) -> Result<JsonNode<'v>, DataError> {
        match (logical, value) {
            (LogicalType::Decimal, Value::Decimal(d)) => {
                let scale = schema.decimal_scale()?;
                match self.decimal_format {
                    DecimalFormat::Numeric => Ok(JsonNode::Number(d.to_java_string().into())),
                    DecimalFormat::Base64 => {
                        if d.scale() != scale {
                            return Err(DataError::new(format!(
                                "Decimal value {d} has scale {} but its schema has scale {scale}",
                                d.scale()
                            )));
                        }
                        Ok(JsonNode::String(BASE64.encode(d.unscaled_bytes()).into()))
                    }
                }
            }
            (LogicalType::Date, Value::Date(days)) => Ok(JsonNode::Int(i64::from(*days))),
            (LogicalType::Time, Value::Time(ms)) => Ok(JsonNode::Int(i64::from(*ms))),
            (LogicalType::Timestamp, Value::Timestamp(ms)) => Ok(JsonNode::Int(*ms)),
            (logical, v) => Err(DataError::new(format!(
                "Invalid type for {logical:?}: {}",
                v.type_name()
            ))),
        }
    }
}

/// The type names of Connect's JSON schemas (`float` and `double` for the float types).
fn json_type_name(t: SchemaType) -> &'static str {
    match t {
        SchemaType::Float32 => "float",
        SchemaType::Float64 => "double",
        other => other.name(),
    }
}

/// Refuses a schema that carries a logical type's name with another type (Connect picks the
/// logical conversion by name and then fails on the value).
fn check_logical_name(schema: &Schema) -> Result<(), DataError> {
    match schema.name.as_deref() {
        Some(
            name @ (crate::data::DECIMAL_NAME
            | crate::data::DATE_NAME
            | crate::data::TIME_NAME
            | crate::data::TIMESTAMP_NAME),
        ) => Err(DataError::new(format!(
            "a {} schema named {name} is not that logical type",
            schema.schema_type
        ))),
        _ => Ok(()),
    }
}

fn envelope_error() -> DataError {
    DataError::new(
        "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not \
         contain additional fields. If you are trying to deserialize plain JSON data, set \
         schemas: false in the json converter",
    )
}

fn expected_node(t: SchemaType) -> &'static str {
    match t {
        SchemaType::Boolean => "a JSON boolean",
        SchemaType::String => "a JSON string",
        SchemaType::Bytes => "a base64 JSON string",
        SchemaType::Array => "a JSON array",
        SchemaType::Map => "a JSON object",
        SchemaType::Struct => "a JSON object",
        _ => "a JSON number",
    }
}

/// `NaN`, `Infinity` and `-Infinity`, which Jackson writes as strings.
fn non_finite(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

fn positive_zero32(v: f32) -> f32 {
    if v == 0.0 {
        0.0
    } else {
        v
    }
}

fn positive_zero64(v: f64) -> f64 {
    if v == 0.0 {
        0.0
    } else {
        v
    }
}

fn number_to_decimal(node: &JsonNode<'_>) -> Result<Decimal, DataError> {
    match node {
        JsonNode::Number(t) => Decimal::parse(t),
        JsonNode::Int(v) => Ok(Decimal::from_i64(*v, 0)),
        other => Err(DataError::new(format!(
            "expected a JSON number, found {}",
            other.node_type()
        ))),
    }
}

/// A JSON number as Jackson's `longValue()` (fractions truncated, large values wrapped).
fn number_to_i64(node: &JsonNode<'_>) -> Option<i64> {
    if let JsonNode::Int(v) = node {
        return Some(*v);
    }
    let JsonNode::Number(t) = node else {
        return None;
    };
    if let Ok(v) = t.parse::<i64>() {
        return Some(v);
    }
    Decimal::parse(t).ok().map(|d| d.to_i64_truncated())
}

fn schemaless_to_value(node: Option<&JsonNode<'_>>) -> Result<Value, DataError> {
    Ok(node.map_or(Value::Null, |n| schemaless_into_value(n.clone())))
}

/// Schemaless JSON as Connect reads it: integral numbers are int64, other numbers float64,
/// objects maps with string keys (the node is consumed, so text is moved, not copied).
fn schemaless_into_value(node: JsonNode<'_>) -> Value {
    match node {
        JsonNode::Null => Value::Null,
        JsonNode::Bool(b) => Value::Boolean(b),
        JsonNode::Number(t) => {
            if t.contains(['.', 'e', 'E']) {
                Value::Float64(positive_zero64(t.parse().unwrap_or(0.0)))
            } else {
                Value::Int64(number_to_i64(&JsonNode::Number(t)).unwrap_or(0))
            }
        }
        JsonNode::Int(v) => Value::Int64(v),
        JsonNode::String(s) => Value::String(s.into_owned()),
        JsonNode::Array(items) => {
            Value::Array(items.into_iter().map(schemaless_into_value).collect())
        }
        JsonNode::Object(members) => Value::Map(
            members
                .into_iter()
                .map(|(k, v)| (Value::String(k.into_owned()), schemaless_into_value(v)))
                .collect(),
        ),
    }
}

fn logical_to_value(
    schema: &Schema,
    logical: LogicalType,
    node: &JsonNode<'_>,
) -> Result<Value, DataError> {
    match logical {
        LogicalType::Decimal => match node {
            JsonNode::Number(t) => Ok(Value::Decimal(Decimal::parse(t)?)),
            JsonNode::String(s) => {
                let scale = schema.decimal_scale()?;
                let bytes = BASE64
                    .decode(s.as_bytes())
                    .map_err(|e| DataError::new(format!("Invalid bytes for Decimal field: {e}")))?;
                Ok(Value::Decimal(Decimal::from_unscaled_bytes(&bytes, scale)))
            }
            other => Err(DataError::new(format!(
                "Invalid type for Decimal, underlying representation should be numeric or bytes but was {}",
                other.node_type()
            ))),
        },
        LogicalType::Date => {
            let days = int_node(node).ok_or_else(|| {
                DataError::new(format!(
                    "Invalid type for Date, underlying representation should be integer but was {}",
                    node.node_type()
                ))
            })?;
            Ok(Value::Date(days))
        }
        LogicalType::Time => {
            let ms = int_node(node).ok_or_else(|| {
                DataError::new(format!(
                    "Invalid type for Time, underlying representation should be integer but was {}",
                    node.node_type()
                ))
            })?;
            if !(0..=86_400_000).contains(&ms) {
                return Err(DataError::new(
                    "Time values must use number of milliseconds greater than 0 and less than 86400000",
                ));
            }
            Ok(Value::Time(ms))
        }
        LogicalType::Timestamp => {
            if !node.is_integral() {
                return Err(DataError::new(format!(
                    "Invalid type for Timestamp, underlying representation should be integral but was {}",
                    node.node_type()
                )));
            }
            let ms = node_as_i64(node).ok_or_else(|| {
                DataError::new("Timestamp value does not fit in 64 bits")
            })?;
            Ok(Value::Timestamp(ms))
        }
    }
}

fn node_as_i64(node: &JsonNode<'_>) -> Option<i64> {
    match node {
        JsonNode::Number(t) => t.parse().ok(),
        JsonNode::Int(v) => Some(*v),
        _ => None,
    }
}

/// An integral number that fits in 32 bits (Jackson's `isInt()`).
fn int_node(node: &JsonNode<'_>) -> Option<i32> {
    if !node.is_integral() {
        return None;
    }
    node_as_i64(node).and_then(|v| i32::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(schemas: bool, format: DecimalFormat) -> JsonConverter {
        JsonConverter::new(&JsonConverterSpec {
            schemas: Some(schemas),
            decimal_format: Some(format),
            replace_null_with_default: None,
        })
    }

    fn round_trip(c: &JsonConverter, text: &str) -> String {
        let data = c.read(Some(text.as_bytes())).unwrap();
        String::from_utf8(c.write(&data).unwrap().unwrap()).unwrap()
    }

    #[test]
    fn schemaless_json_reads_as_connect_does() {
        let c = conv(false, DecimalFormat::Base64);
        let data = c
            .read(Some(br#"{"a":1,"b":1.5,"c":[true,null],"d":"x","e":{}}"#))
            .unwrap();
        assert_eq!(data.schema, None);
        assert_eq!(data.value.map_get("a"), Some(&Value::Int64(1)));
        assert_eq!(data.value.map_get("b"), Some(&Value::Float64(1.5)));
        assert_eq!(
            data.value.map_get("c"),
            Some(&Value::Array(vec![Value::Boolean(true), Value::Null]))
        );
        assert_eq!(
            round_trip(&c, r#"{"a":1e2,"b":-0.0,"c":100.0}"#),
            r#"{"a":100.0,"b":0.0,"c":100.0}"#
        );
        assert_eq!(c.read(None).unwrap(), SchemaAndValue::null());
        assert_eq!(c.read(Some(b"")).unwrap(), SchemaAndValue::null());
        assert_eq!(c.write(&SchemaAndValue::null()).unwrap(), None);
    }

    #[test]
    fn envelope_round_trips_every_type() {
        let c = conv(true, DecimalFormat::Base64);
        let text = r#"{"schema":{"type":"struct","fields":[{"type":"int8","optional":false,"field":"a"},{"type":"int16","optional":false,"field":"b"},{"type":"int32","optional":true,"field":"c"},{"type":"int64","optional":false,"default":7,"field":"d"},{"type":"float","optional":false,"field":"e"},{"type":"double","optional":false,"field":"f"},{"type":"boolean","optional":false,"field":"g"},{"type":"string","optional":false,"doc":"text","field":"h"},{"type":"bytes","optional":false,"field":"i"},{"type":"array","items":{"type":"string","optional":false},"optional":false,"field":"j"},{"type":"map","keys":{"type":"int32","optional":false},"values":{"type":"string","optional":true},"optional":false,"field":"k"},{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"},"field":"l"},{"type":"int32","optional":false,"name":"org.apache.kafka.connect.data.Date","version":1,"field":"m"},{"type":"int32","optional":false,"name":"org.apache.kafka.connect.data.Time","version":1,"field":"n"},{"type":"int64","optional":false,"name":"org.apache.kafka.connect.data.Timestamp","version":1,"field":"o"}],"optional":false,"name":"shop.Order","version":3},"payload":{"a":1,"b":2,"c":null,"d":7,"e":1.5,"f":2.25,"g":true,"h":"x","i":"AQID","j":["p","q"],"k":[[1,"one"],[2,null]],"l":"BNI=","m":20000,"n":3600000,"o":1700000000000}}"#;
        assert_eq!(round_trip(&c, text), text);
        let data = c.read(Some(text.as_bytes())).unwrap();
        let Value::Struct(values) = &data.value else {
            panic!("not a struct: {:?}", data.value)
        };
        assert_eq!(values[11], Value::Decimal(Decimal::from_i64(1234, 2)));
        assert_eq!(values[12], Value::Date(20000));
        assert_eq!(values[14], Value::Timestamp(1_700_000_000_000));
        let numeric = conv(true, DecimalFormat::Numeric);
        let out = String::from_utf8(numeric.write(&data).unwrap().unwrap()).unwrap();
        assert!(out.contains(r#""l":12.34"#), "{out}");
    }

    #[test]
    fn missing_fields_use_defaults_and_nulls() {
        let c = conv(true, DecimalFormat::Base64);
        let text = r#"{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"default":7,"field":"d"},{"type":"string","optional":true,"field":"s"}],"optional":false},"payload":{}}"#;
        let data = c.read(Some(text.as_bytes())).unwrap();
        assert_eq!(
            data.value,
            Value::Struct(vec![Value::Int64(7), Value::Null])
        );
        let bad = r#"{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"d"}],"optional":false},"payload":{}}"#;
        let err = c.read(Some(bad.as_bytes())).unwrap_err().to_string();
        assert!(
            err.contains("Invalid null value for required INT64 field"),
            "{err}"
        );
    }

    #[test]
    fn odd_input_is_an_error_not_a_panic() {
        let c = conv(true, DecimalFormat::Base64);
        for bad in [
            "1",
            "{}",
            r#"{"schema":null}"#,
            r#"{"schema":{},"payload":1}"#,
            r#"{"schema":{"type":"nope"},"payload":1}"#,
            r#"{"schema":{"type":"array"},"payload":[]}"#,
            r#"{"schema":{"type":"map","keys":{"type":"string"}},"payload":{}}"#,
            r#"{"schema":{"type":"struct","fields":{}},"payload":{}}"#,
            r#"{"schema":{"type":"struct","fields":[{"type":"int8"}]},"payload":{}}"#,
            r#"{"schema":{"type":"int32"},"payload":"x"}"#,
            r#"{"schema":{"type":"bytes"},"payload":"!!"}"#,
            r#"{"schema":{"type":"int32","name":"org.apache.kafka.connect.data.Date"},"payload":1.5}"#,
            r#"{"schema":{"type":"int32","name":"org.apache.kafka.connect.data.Time"},"payload":-1}"#,
            r#"{"schema":{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal"},"payload":"AA=="}"#,
            r#"{"schema":{"type":"map","keys":{"type":"int32"},"values":{"type":"int32"}},"payload":[[1]]}"#,
            r#"{"schema":{"type":"int32","parameters":{"a":1}},"payload":1}"#,
            r#"{"schema":{"type":"int32","default":"x"},"payload":1}"#,
        ] {
            assert!(c.read(Some(bad.as_bytes())).is_err(), "{bad}");
        }
        let required = SchemaAndValue::new(Schema::new(SchemaType::Int32), Value::Null);
        assert!(c.write(&required).is_err());
        let wrong = SchemaAndValue::new(Schema::new(SchemaType::Int32), Value::String("x".into()));
        assert!(c.write(&wrong).is_err());
        let schemaless_decimal =
            SchemaAndValue::schemaless(Value::Decimal(Decimal::from_i64(1, 0)));
        assert!(c.write(&schemaless_decimal).is_err());
    }

    #[test]
    fn deep_nesting_is_read_and_written() {
        let c = conv(false, DecimalFormat::Base64);
        let depth = super::json_text::MAX_DEPTH;
        let text = format!(
            "{}1{}",
            "[{\"a\":".repeat(depth / 2),
            "}]".repeat(depth / 2)
        );
        let data = c.read(Some(text.as_bytes())).unwrap();
        assert_eq!(c.write(&data).unwrap().unwrap(), text.as_bytes());
        let too_deep = format!("{}{}", "[".repeat(depth + 2), "]".repeat(depth + 2));
        assert!(c.read(Some(too_deep.as_bytes())).is_err());
    }

    #[test]
    fn records_with_different_schemas_keep_their_own() {
        let c = conv(true, DecimalFormat::Base64);
        let a = SchemaAndValue::new(Schema::new(SchemaType::Int32), Value::Int32(1));
        let b = SchemaAndValue::new(
            Schema::new(SchemaType::Int32).with_name("b"),
            Value::Int32(2),
        );
        for _ in 0..2 {
            assert_eq!(
                c.write(&a).unwrap().unwrap(),
                br#"{"schema":{"type":"int32","optional":false},"payload":1}"#
            );
            assert_eq!(
                c.write(&b).unwrap().unwrap(),
                br#"{"schema":{"type":"int32","optional":false,"name":"b"},"payload":2}"#
            );
        }
        let shared = c.clone();
        assert_eq!(shared.write(&b).unwrap(), c.write(&b).unwrap());
    }

    #[test]
    fn non_finite_floats_round_trip_as_strings() {
        let c = conv(true, DecimalFormat::Base64);
        for text in [
            r#"{"schema":{"type":"double","optional":false},"payload":"Infinity"}"#,
            r#"{"schema":{"type":"float","optional":false},"payload":"-Infinity"}"#,
            r#"{"schema":{"type":"double","optional":false},"payload":"NaN"}"#,
        ] {
            assert_eq!(round_trip(&c, text), text);
        }
        let big = r#"{"schema":{"type":"double","optional":false},"payload":1e400}"#;
        assert_eq!(
            round_trip(&c, big),
            r#"{"schema":{"type":"double","optional":false},"payload":"Infinity"}"#
        );
    }

    #[test]
    fn schemaless_maps_with_other_keys_are_pairs() {
        let c = conv(false, DecimalFormat::Base64);
        let data = SchemaAndValue::schemaless(Value::Map(vec![(
            Value::Int64(1),
            Value::String("a".into()),
        )]));
        assert_eq!(c.write(&data).unwrap().unwrap(), br#"[[1,"a"]]"#);
    }

    #[test]
    fn null_with_schema_writes_envelope_or_null() {
        let with = conv(true, DecimalFormat::Base64);
        let data =
            SchemaAndValue::new(Schema::new(SchemaType::String).into_optional(), Value::Null);
        assert_eq!(
            with.write(&data).unwrap().unwrap(),
            br#"{"schema":{"type":"string","optional":true},"payload":null}"#
        );
        let without = conv(false, DecimalFormat::Base64);
        assert_eq!(without.write(&data).unwrap().unwrap(), b"null");
    }
}

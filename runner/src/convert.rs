//! Converters: Kafka bytes to typed records and back, compatible with Kafka Connect's
//! `JsonConverter`, `StringConverter`, `ByteArrayConverter` and `SimpleHeaderConverter`.

use crate::config_error::ConfigError;
use crate::data::{DataError, SchemaAndValue};
use crate::record::{Header, RawRecord, Record};
use ferry_crds::pipeline::{self, Converters};
use std::fmt;

/// Which part of a record a conversion failed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordPart {
    /// The key.
    Key,
    /// The value.
    Value,
    /// The header with this name.
    Header(String),
}

impl fmt::Display for RecordPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordPart::Key => f.write_str("key"),
            RecordPart::Value => f.write_str("value"),
            RecordPart::Header(name) => write!(f, "header {name:?}"),
        }
    }
}

/// A record that could not be converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} the {part} of record {coordinates}: {reason}")]
pub struct ConvertError {
    /// `read` (bytes to record, sinks) or `write` (record to bytes, sources).
    pub action: &'static str,
    /// The part that failed.
    pub part: RecordPart,
    /// `topic/partition/offset` of the record.
    pub coordinates: String,
    /// Why.
    pub reason: String,
}

/// The converters of a connector: key, value and header.
#[derive(Clone, Debug)]
pub struct RecordConverters {
    key: ValueConverter,
    value: ValueConverter,
    header: HeaderConverter,
}

/// A key or value converter.
#[derive(Clone, Debug)]
enum ValueConverter {
    Json(json::JsonConverter),
    String,
    ByteArray,
}

/// A header converter.
#[derive(Clone, Debug)]
enum HeaderConverter {
    Simple,
    String,
    Json(json::JsonConverter),
    ByteArray,
}

mod json;
mod json_text;
mod simple_header;

impl RecordConverters {
    /// Builds the converters of `spec` (`None`: the defaults, key `string`, value `json`
    /// without schemas, headers `simple`). Reports every problem with its field path.
    pub fn from_spec(spec: Option<&Converters>) -> Result<Self, Vec<ConfigError>> {
        let default = Converters::default();
        let spec = spec.unwrap_or(&default);
        let mut errors = Vec::new();
        let key = match &spec.key {
            Some(c) => value_converter(c, "spec.converters.key", &mut errors),
            None => Some(ValueConverter::String),
        };
        let value = match &spec.value {
            Some(c) => value_converter(c, "spec.converters.value", &mut errors),
            None => Some(ValueConverter::Json(json::JsonConverter::new(
                &pipeline::JsonConverterSpec::default(),
            ))),
        };
        let header = match &spec.header {
            Some(c) => header_converter(c, "spec.converters.header", &mut errors),
            None => Some(HeaderConverter::Simple),
        };
        match (key, value, header) {
            (Some(key), Some(value), Some(header)) if errors.is_empty() => {
                Ok(RecordConverters { key, value, header })
            }
            _ => Err(errors),
        }
    }

    /// Bytes to record (sink side).
    pub fn decode(&self, raw: RawRecord) -> Result<Record, ConvertError> {
        let coordinates = raw.coordinates();
        let fail = |part: RecordPart, e: DataError| ConvertError {
            action: "read",
            part,
            coordinates: coordinates.clone(),
            reason: e.0,
        };
        let key = self
            .key
            .read(raw.key.as_deref())
            .map_err(|e| fail(RecordPart::Key, e))?;
        let value = self
            .value
            .read(raw.value.as_deref())
            .map_err(|e| fail(RecordPart::Value, e))?;
        let mut headers = Vec::with_capacity(raw.headers.len());
        for (name, bytes) in raw.headers {
            let value = self
                .header
                .read(bytes.as_deref())
                .map_err(|e| fail(RecordPart::Header(name.clone()), e))?;
            headers.push(Header { key: name, value });
        }
        Ok(Record {
            topic: raw.topic,
            partition: raw.partition,
            offset: raw.offset,
            timestamp: raw.timestamp,
            key,
            value,
            headers,
        })
    }

    /// Record to bytes (source side).
    pub fn encode(&self, record: &Record) -> Result<RawRecord, ConvertError> {
        let coordinates = record.coordinates();
        let fail = |part: RecordPart, e: DataError| ConvertError {
            action: "write",
            part,
            coordinates: coordinates.clone(),
            reason: e.0,
        };
        let key = self
            .key
            .write(&record.key)
            .map_err(|e| fail(RecordPart::Key, e))?;
        let value = self
            .value
            .write(&record.value)
            .map_err(|e| fail(RecordPart::Value, e))?;
        let mut headers = Vec::with_capacity(record.headers.len());
        for header in &record.headers {
            let bytes = self
                .header
                .write(&header.value)
                .map_err(|e| fail(RecordPart::Header(header.key.clone()), e))?;
            headers.push((header.key.clone(), bytes));
        }
        Ok(RawRecord {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp,
            key,
            value,
            headers,
        })
    }
}

fn exactly_one(field: &str, present: &[(&str, bool)], errors: &mut Vec<ConfigError>) -> bool {
    let set: Vec<&str> = present
        .iter()
        .filter(|(_, p)| *p)
        .map(|(n, _)| *n)
        .collect();
    let names: Vec<&str> = present.iter().map(|(n, _)| *n).collect();
    match set.len() {
        1 => true,
        0 => {
            errors.push(ConfigError::new(
                field,
                format!("needs exactly one of {}", names.join(", ")),
            ));
            false
        }
        _ => {
            errors.push(ConfigError::new(
                field,
                format!(
                    "needs exactly one of {}, found {}",
                    names.join(", "),
                    set.join(" and ")
                ),
            ));
            false
        }
    }
}

fn value_converter(
    spec: &pipeline::Converter,
    field: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<ValueConverter> {
    let ok = exactly_one(
        field,
        &[
            ("json", spec.json.is_some()),
            ("string", spec.string.is_some()),
            ("byteArray", spec.byte_array.is_some()),
        ],
        errors,
    );
    if !ok {
        return None;
    }
    if let Some(json) = &spec.json {
        return Some(ValueConverter::Json(json::JsonConverter::new(json)));
    }
    if spec.string.is_some() {
        return Some(ValueConverter::String);
    }
    Some(ValueConverter::ByteArray)
}

fn header_converter(
    spec: &pipeline::HeaderConverter,
    field: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<HeaderConverter> {
    let ok = exactly_one(
        field,
        &[
            ("simple", spec.simple.is_some()),
            ("string", spec.string.is_some()),
            ("json", spec.json.is_some()),
            ("byteArray", spec.byte_array.is_some()),
        ],
        errors,
    );
    if !ok {
        return None;
    }
    if spec.simple.is_some() {
        return Some(HeaderConverter::Simple);
    }
    if spec.string.is_some() {
        return Some(HeaderConverter::String);
    }
    if let Some(json) = &spec.json {
        return Some(HeaderConverter::Json(json::JsonConverter::new(json)));
    }
    Some(HeaderConverter::ByteArray)
}

impl ValueConverter {
    fn read(&self, bytes: Option<&[u8]>) -> Result<SchemaAndValue, DataError> {
        match self {
            ValueConverter::Json(c) => c.read(bytes),
            ValueConverter::String => string_to_connect(bytes),
            ValueConverter::ByteArray => Ok(byte_array_to_connect(bytes)),
        }
    }

    fn write(&self, data: &SchemaAndValue) -> Result<Option<Vec<u8>>, DataError> {
        match self {
            ValueConverter::Json(c) => c.write(data),
            ValueConverter::String => string_from_connect(data),
            ValueConverter::ByteArray => byte_array_from_connect(data),
        }
    }
}

impl HeaderConverter {
    fn read(&self, bytes: Option<&[u8]>) -> Result<SchemaAndValue, DataError> {
        match self {
            HeaderConverter::Simple => simple_header::read(bytes),
            HeaderConverter::String => string_to_connect(bytes),
            HeaderConverter::Json(c) => c.read(bytes),
            HeaderConverter::ByteArray => Ok(byte_array_to_connect(bytes)),
        }
    }

    fn write(&self, data: &SchemaAndValue) -> Result<Option<Vec<u8>>, DataError> {
        match self {
            HeaderConverter::Simple => simple_header::write(data),
            HeaderConverter::String => string_from_connect(data),
            HeaderConverter::Json(c) => c.write(data),
            HeaderConverter::ByteArray => byte_array_from_connect(data),
        }
    }
}

/// `StringConverter.toConnectData`: optional string schema, UTF-8 text.
fn string_to_connect(bytes: Option<&[u8]>) -> Result<SchemaAndValue, DataError> {
    let schema = Some(Schema::new(SchemaType::String).into_optional());
    let value = match bytes {
        None => Value::Null,
        Some(b) => Value::String(
            String::from_utf8(b.to_vec())
                .map_err(|e| DataError::new(format!("bytes are not UTF-8 text: {e}")))?,
        ),
    };
    Ok(SchemaAndValue { schema, value })
}

/// `StringConverter.fromConnectData`: the value's text form (`Object.toString()`).
fn string_from_connect(data: &SchemaAndValue) -> Result<Option<Vec<u8>>, DataError> {
    if data.value.is_null() {
        return Ok(None);
    }
    Ok(Some(
        crate::data::values::java_to_string(data.schema.as_ref(), &data.value)?.into_bytes(),
    ))
}

/// `ByteArrayConverter.toConnectData`: optional bytes schema.
fn byte_array_to_connect(bytes: Option<&[u8]>) -> SchemaAndValue {
    SchemaAndValue {
        schema: Some(Schema::new(SchemaType::Bytes).into_optional()),
        value: bytes.map_or(Value::Null, |b| Value::Bytes(b.to_vec())),
    }
}

/// `ByteArrayConverter.fromConnectData`: bytes only.
fn byte_array_from_connect(data: &SchemaAndValue) -> Result<Option<Vec<u8>>, DataError> {
    if let Some(schema) = &data.schema {
        if schema.schema_type != SchemaType::Bytes {
            return Err(DataError::new(format!(
                "the byteArray converter needs a bytes schema, found {}",
                schema.describe()
            )));
        }
    }
    match &data.value {
        Value::Null => Ok(None),
        Value::Bytes(b) => Ok(Some(b.clone())),
        other => Err(DataError::new(format!(
            "the byteArray converter needs bytes, found {}",
            other.type_name()
        ))),
    }
}

use crate::data::{Schema, SchemaType, Value};

//! Converters: Kafka bytes to typed records and back, compatible with Kafka Connect's
//! `JsonConverter`, `StringConverter`, `ByteArrayConverter` and `SimpleHeaderConverter`.
#![warn(missing_docs)]

use crate::config_error::ConfigError;
use crate::data::{
    DataError, SchemaAndValue, SchemaRef, SchemaType, Value, OPTIONAL_BYTES_SCHEMA,
    OPTIONAL_STRING_SCHEMA,
};
use crate::record::{coordinates, Header, RawRecord, Record};
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

/// The direction of a conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Bytes to record (sink connectors).
    Read,
    /// Record to bytes (source connectors).
    Write,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Read => "read",
            Direction::Write => "write",
        })
    }
}

/// A record that could not be converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} the {part} of record {coordinates}: {reason}")]
pub struct ConvertError {
    /// Reading (bytes to record) or writing (record to bytes).
    pub action: Direction,
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

    /// Whether the header converter can reject a header, so that a record's headers must be
    /// decoded for the record to fail the way Kafka Connect's would.
    pub fn header_decoding_can_fail(&self) -> bool {
        self.header.can_fail()
    }

    /// Bytes to record (sink side).
    pub fn decode(&self, raw: RawRecord) -> Result<Record, ConvertError> {
        let RawRecord {
            topic,
            partition,
            offset,
            timestamp,
            key,
            value,
            headers: raw_headers,
        } = raw;
        let fail = |part: RecordPart, e: DataError| ConvertError {
            action: Direction::Read,
            part,
            coordinates: coordinates(&topic, partition, offset),
            reason: e.0,
        };
        let key = self.key.read(key).map_err(|e| fail(RecordPart::Key, e))?;
        let value = self
            .value
            .read(value)
            .map_err(|e| fail(RecordPart::Value, e))?;
        let mut headers = Vec::with_capacity(raw_headers.len());
        for (name, bytes) in raw_headers {
            let value = self
                .header
                .read(bytes)
                .map_err(|e| fail(RecordPart::Header(name.clone()), e))?;
            headers.push(Header { key: name, value });
        }
        Ok(Record {
            topic,
            partition,
            offset,
            timestamp,
            key,
            value,
            headers,
        })
    }

    /// Record to bytes (source side).
    pub fn encode(&self, record: &Record) -> Result<RawRecord, ConvertError> {
        let fail = |part: RecordPart, e: DataError| ConvertError {
            action: Direction::Write,
            part,
            coordinates: record.coordinates(),
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
    /// Takes the bytes: the string and byte-array converters keep them without a copy.
    fn read(&self, bytes: Option<Vec<u8>>) -> Result<SchemaAndValue, DataError> {
        match self {
            ValueConverter::Json(c) => c.read(bytes.as_deref()),
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
    /// Whether reading a header can fail (and so fail its record).
    fn can_fail(&self) -> bool {
        match self {
            HeaderConverter::Simple | HeaderConverter::ByteArray => false,
            HeaderConverter::String | HeaderConverter::Json(_) => true,
        }
    }

    /// Takes the bytes: the string and byte-array converters keep them without a copy.
    fn read(&self, bytes: Option<Vec<u8>>) -> Result<SchemaAndValue, DataError> {
        match self {
            HeaderConverter::Simple => simple_header::read(bytes.as_deref()),
            HeaderConverter::String => string_to_connect(bytes),
            HeaderConverter::Json(c) => c.read(bytes.as_deref()),
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
fn string_to_connect(bytes: Option<Vec<u8>>) -> Result<SchemaAndValue, DataError> {
    let schema = Some(SchemaRef::Fixed(&OPTIONAL_STRING_SCHEMA));
    let value = match bytes {
        None => Value::Null,
        Some(b) => Value::String(
            String::from_utf8(b)
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
        crate::data::values::java_to_string(data.schema.as_deref(), &data.value)?.into_bytes(),
    ))
}

/// `ByteArrayConverter.toConnectData`: optional bytes schema.
fn byte_array_to_connect(bytes: Option<Vec<u8>>) -> SchemaAndValue {
    SchemaAndValue {
        schema: Some(SchemaRef::Fixed(&OPTIONAL_BYTES_SCHEMA)),
        value: bytes.map_or(Value::Null, Value::Bytes),
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn converters(yaml: &str) -> RecordConverters {
        let spec: Converters = serde_yaml::from_str(yaml).unwrap();
        RecordConverters::from_spec(Some(&spec)).unwrap()
    }

    #[test]
    fn defaults_are_string_key_json_value_simple_headers() {
        let c = RecordConverters::from_spec(None).unwrap();
        let raw = RawRecord {
            topic: "t".into(),
            partition: Some(0),
            offset: Some(7),
            timestamp: Some(1),
            key: Some(b"k1".to_vec()),
            value: Some(br#"{"a":1}"#.to_vec()),
            headers: vec![("h".into(), Some(b"12".to_vec())), ("n".into(), None)],
        };
        let record = c.decode(raw.clone()).unwrap();
        assert_eq!(record.key.value, Value::String("k1".into()));
        assert_eq!(record.value.schema, None);
        assert_eq!(record.headers[0].value.value, Value::Int8(12));
        assert_eq!(record.headers[1].value, SchemaAndValue::null());
        assert_eq!(c.encode(&record).unwrap(), raw);
    }

    #[test]
    fn errors_name_the_part_and_the_record() {
        let c = converters("{value: {json: {schemas: true}}}");
        let raw = RawRecord {
            topic: "orders".into(),
            partition: Some(2),
            offset: Some(9),
            value: Some(b"{}".to_vec()),
            ..RawRecord::default()
        };
        let err = c.decode(raw).unwrap_err();
        assert_eq!(err.part, RecordPart::Value);
        assert!(
            err.to_string().starts_with(
                "cannot read the value of record orders/2/9: JsonConverter with schemas.enable"
            ),
            "{err}"
        );
        let bad_header = RawRecord {
            topic: "orders".into(),
            headers: vec![("h".into(), Some(vec![0xFF]))],
            ..RawRecord::default()
        };
        let strict = converters("{header: {json: {}}}");
        let err = strict.decode(bad_header).unwrap_err();
        assert_eq!(err.part, RecordPart::Header("h".into()));
        let bytes = converters("{key: {byteArray: {}}}");
        let mut record = Record::new("t");
        record.key = SchemaAndValue::schemaless(Value::Int64(1));
        assert!(bytes
            .encode(&record)
            .unwrap_err()
            .to_string()
            .contains("the key"));
    }

    #[test]
    fn exactly_one_converter_block() {
        let spec: Converters =
            serde_yaml::from_str("{key: {string: {}, json: {}}, value: {}, header: {}}").unwrap();
        let errors: Vec<String> = RecordConverters::from_spec(Some(&spec))
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            [
                "spec.converters.key: needs exactly one of json, string, byteArray, found json and string",
                "spec.converters.value: needs exactly one of json, string, byteArray",
                "spec.converters.header: needs exactly one of simple, string, json, byteArray",
            ]
        );
    }

    /// A small deterministic generator (xorshift) for the fuzz-like tests.
    pub(crate) struct Rng(u64);

    impl Rng {
        pub(crate) fn new(seed: u64) -> Self {
            Rng(seed | 1)
        }

        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Random bytes, mostly from JSON's alphabet, and mutations of valid documents.
    pub(crate) fn odd_inputs(count: usize) -> Vec<Vec<u8>> {
        const ALPHABET: &[u8] = b"{}[]\":,.-+eE0123456789 truefalsnul\\/uAZ\x00\xff\xc3\xa9";
        const SEEDS: &[&str] = &[
            r#"{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"a"},{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"},"field":"d"},{"type":"map","keys":{"type":"int8","optional":false},"values":{"type":"double","optional":true},"optional":true,"field":"m"}],"optional":false},"payload":{"a":1,"d":"AQ==","m":[[1,2.5]]}}"#,
            r#"{"schema":{"type":"array","items":{"type":"int64","optional":false,"name":"org.apache.kafka.connect.data.Timestamp"},"optional":false},"payload":[1,2,3]}"#,
            r#"[1,"a",{"b":[true,null,-1.5e3]}]"#,
            "[1,2,{\"a\":\"b\"}]",
        ];
        let mut rng = Rng::new(0x5eed);
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            if i % 2 == 0 {
                let len = rng.below(48);
                out.push(
                    (0..len)
                        .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                        .collect(),
                );
            } else {
                let mut doc = SEEDS[rng.below(SEEDS.len())].as_bytes().to_vec();
                for _ in 0..=rng.below(4) {
                    if doc.is_empty() {
                        break;
                    }
                    let at = rng.below(doc.len());
                    match rng.below(3) {
                        0 => doc[at] = ALPHABET[rng.below(ALPHABET.len())],
                        1 => {
                            doc.remove(at);
                        }
                        _ => doc.truncate(at),
                    }
                }
                out.push(doc);
            }
        }
        out
    }

    #[test]
    fn odd_bytes_never_panic() {
        let all = [
            "{key: {json: {schemas: true}}, value: {json: {schemas: true, decimalFormat: NUMERIC}}, header: {json: {schemas: true}}}",
            "{key: {json: {schemas: false}}, value: {string: {}}, header: {simple: {}}}",
            "{key: {byteArray: {}}, value: {json: {schemas: false}}, header: {string: {}}}",
        ];
        for yaml in all {
            let c = converters(yaml);
            for bytes in odd_inputs(3000) {
                let raw = RawRecord {
                    topic: "t".into(),
                    key: Some(bytes.clone()),
                    value: Some(bytes.clone()),
                    headers: vec![("h".into(), Some(bytes))],
                    ..RawRecord::default()
                };
                if let Ok(record) = c.decode(raw) {
                    // Whatever was read can be written again.
                    c.encode(&record).unwrap();
                }
            }
        }
    }
}

//! Kafka Connect's data model: schemas, the values they describe, and the logical types
//! `Decimal`, `Date`, `Time` and `Timestamp`.
//!
//! A value may come with a [`Schema`] (Connect's "schema'd" data, e.g. from the JSON
//! converter with `schemas: true`) or without one (schemaless data: JSON-like values where
//! objects are [`Value::Map`]s with string keys).
#![warn(missing_docs)]

pub mod date_format;
mod decimal;
pub mod values;

pub use decimal::Decimal;

use std::fmt;

/// Schema name of Connect's `Decimal` logical type (type `bytes`, parameter `scale`).
pub const DECIMAL_NAME: &str = "org.apache.kafka.connect.data.Decimal";
/// Parameter of the `Decimal` logical type holding the scale.
pub const DECIMAL_SCALE_PARAMETER: &str = "scale";
/// Schema name of Connect's `Date` logical type (type `int32`, days since the Unix epoch).
pub const DATE_NAME: &str = "org.apache.kafka.connect.data.Date";
/// Schema name of Connect's `Time` logical type (type `int32`, milliseconds since midnight).
pub const TIME_NAME: &str = "org.apache.kafka.connect.data.Time";
/// Schema name of Connect's `Timestamp` logical type (type `int64`, ms since the Unix epoch).
pub const TIMESTAMP_NAME: &str = "org.apache.kafka.connect.data.Timestamp";

/// Milliseconds in a day.
pub const MILLIS_PER_DAY: i64 = 86_400_000;

/// The type of a Connect schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchemaType {
    /// 8-bit signed integer.
    Int8,
    /// 16-bit signed integer.
    Int16,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// 32-bit IEEE 754 float.
    Float32,
    /// 64-bit IEEE 754 float.
    Float64,
    /// Boolean.
    Boolean,
    /// UTF-8 text.
    String,
    /// Bytes.
    Bytes,
    /// A list of values of one schema.
    Array,
    /// A map from key schema to value schema.
    Map,
    /// Named fields, each with its own schema.
    Struct,
}

impl SchemaType {
    /// Every schema type.
    pub const ALL: [SchemaType; 12] = [
        SchemaType::Int8,
        SchemaType::Int16,
        SchemaType::Int32,
        SchemaType::Int64,
        SchemaType::Float32,
        SchemaType::Float64,
        SchemaType::Boolean,
        SchemaType::String,
        SchemaType::Bytes,
        SchemaType::Array,
        SchemaType::Map,
        SchemaType::Struct,
    ];

    /// Connect's name of the type, as in JSON schemas (`int32`, `struct`, ...).
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Int8 => "int8",
            SchemaType::Int16 => "int16",
            SchemaType::Int32 => "int32",
            SchemaType::Int64 => "int64",
            SchemaType::Float32 => "float32",
            SchemaType::Float64 => "float64",
            SchemaType::Boolean => "boolean",
            SchemaType::String => "string",
            SchemaType::Bytes => "bytes",
            SchemaType::Array => "array",
            SchemaType::Map => "map",
            SchemaType::Struct => "struct",
        }
    }

    /// The type named `name` (Connect's names, case-insensitive).
    pub fn from_name(name: &str) -> Option<SchemaType> {
        SchemaType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// Whether the type is a primitive (neither array, map nor struct).
    pub fn is_primitive(self) -> bool {
        !matches!(
            self,
            SchemaType::Array | SchemaType::Map | SchemaType::Struct
        )
    }
}

impl fmt::Display for SchemaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Connect logical type: a named schema whose values have their own representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogicalType {
    /// Arbitrary-precision decimal with a fixed scale ([`Value::Decimal`]).
    Decimal,
    /// A date ([`Value::Date`]).
    Date,
    /// A time of day ([`Value::Time`]).
    Time,
    /// An instant ([`Value::Timestamp`]).
    Timestamp,
}

/// A field of a struct schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// Field name.
    pub name: String,
    /// Field schema.
    pub schema: Schema,
}

/// A Connect schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    /// The type.
    pub schema_type: SchemaType,
    /// Whether the value may be null.
    pub optional: bool,
    /// Value used when the value is null (and, for the JSON converter, absent).
    pub default: Option<Box<Value>>,
    /// Schema name, e.g. a logical type's name.
    pub name: Option<String>,
    /// Schema version.
    pub version: Option<i32>,
    /// Documentation.
    pub doc: Option<String>,
    /// Parameters, in order (empty: none).
    pub parameters: Vec<(String, String)>,
    /// Fields of a struct schema, in order.
    pub fields: Vec<Field>,
    /// Key schema of a map schema.
    pub key_schema: Option<Box<Schema>>,
    /// Element schema of an array schema, value schema of a map schema.
    pub value_schema: Option<Box<Schema>>,
}

impl Schema {
    /// A required schema of type `schema_type` with nothing else set.
    pub fn new(schema_type: SchemaType) -> Self {
        Schema::fixed(schema_type, false)
    }

    /// A schema of `schema_type` with nothing but its optionality set, usable in a `static`.
    const fn fixed(schema_type: SchemaType, optional: bool) -> Self {
        Schema {
            schema_type,
            optional,
            default: None,
            name: None,
            version: None,
            doc: None,
            parameters: Vec::new(),
            fields: Vec::new(),
            key_schema: None,
            value_schema: None,
        }
    }

    /// An array schema of `element`s.
    pub fn array(element: Schema) -> Self {
        Schema {
            value_schema: Some(Box::new(element)),
            ..Schema::new(SchemaType::Array)
        }
    }

    /// A map schema from `key` to `value`.
    pub fn map(key: Schema, value: Schema) -> Self {
        Schema {
            key_schema: Some(Box::new(key)),
            value_schema: Some(Box::new(value)),
            ..Schema::new(SchemaType::Map)
        }
    }

    /// A struct schema with `fields` (name, schema) in order.
    pub fn structure(fields: Vec<(&str, Schema)>) -> Self {
        Schema {
            fields: fields
                .into_iter()
                .map(|(name, schema)| Field {
                    name: name.to_string(),
                    schema,
                })
                .collect(),
            ..Schema::new(SchemaType::Struct)
        }
    }

    /// Connect's `Decimal` schema with `scale`.
    pub fn decimal(scale: i32) -> Self {
        Schema {
            name: Some(DECIMAL_NAME.to_string()),
            version: Some(1),
            parameters: vec![(DECIMAL_SCALE_PARAMETER.to_string(), scale.to_string())],
            ..Schema::new(SchemaType::Bytes)
        }
    }

    /// Connect's `Date` schema.
    pub fn date() -> Self {
        Schema {
            name: Some(DATE_NAME.to_string()),
            version: Some(1),
            ..Schema::new(SchemaType::Int32)
        }
    }

    /// Connect's `Time` schema.
    pub fn time() -> Self {
        Schema {
            name: Some(TIME_NAME.to_string()),
            version: Some(1),
            ..Schema::new(SchemaType::Int32)
        }
    }

    /// Connect's `Timestamp` schema.
    pub fn timestamp() -> Self {
        Schema {
            name: Some(TIMESTAMP_NAME.to_string()),
            version: Some(1),
            ..Schema::new(SchemaType::Int64)
        }
    }

    /// The same schema, optional.
    pub fn into_optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// The same schema with a default value.
    pub fn with_default(mut self, default: Value) -> Self {
        self.default = Some(Box::new(default));
        self
    }

    /// The same schema with a name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The logical type this schema denotes, if any (by name and type, as Connect).
    pub fn logical_type(&self) -> Option<LogicalType> {
        match (self.name.as_deref()?, self.schema_type) {
            (DECIMAL_NAME, SchemaType::Bytes) => Some(LogicalType::Decimal),
            (DATE_NAME, SchemaType::Int32) => Some(LogicalType::Date),
            (TIME_NAME, SchemaType::Int32) => Some(LogicalType::Time),
            (TIMESTAMP_NAME, SchemaType::Int64) => Some(LogicalType::Timestamp),
            _ => None,
        }
    }

    /// A parameter's value.
    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The scale of a `Decimal` schema.
    pub fn decimal_scale(&self) -> Result<i32, DataError> {
        let text = self
            .parameter(DECIMAL_SCALE_PARAMETER)
            .ok_or_else(|| DataError::new("Decimal schema has no \"scale\" parameter"))?;
        text.parse().map_err(|_| {
            DataError::new(format!(
                "Decimal schema has an invalid \"scale\" parameter {text:?}"
            ))
        })
    }

    /// The field named `name` and its position.
    pub fn field(&self, name: &str) -> Option<(usize, &Field)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }

    /// Metadata of the schema without its content, for error messages:
    /// `int32`, `optional struct`, `bytes org.apache.kafka.connect.data.Decimal`.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        if self.optional {
            text.push_str("optional ");
        }
        text.push_str(self.schema_type.name());
        if let Some(name) = &self.name {
            text.push(' ');
            text.push_str(name);
        }
        text
    }

    /// Checks that `value` conforms to this schema (Connect's `ConnectSchema.validateValue`).
    pub fn validate(&self, value: &Value) -> Result<(), DataError> {
        self.validate_at(value, "")
    }

    fn validate_at(&self, value: &Value, path: &str) -> Result<(), DataError> {
        let here = |msg: String| {
            if path.is_empty() {
                DataError::new(msg)
            } else {
                DataError::new(format!("{path}: {msg}"))
            }
        };
        if value.is_null() {
            if self.optional || self.default.is_some() {
                return Ok(());
            }
            return Err(here(format!(
                "null value for a required {} schema",
                self.describe()
            )));
        }
        let ok = match (self.logical_type(), value) {
            (Some(LogicalType::Decimal), Value::Decimal(_)) => true,
            (Some(LogicalType::Date), Value::Date(_)) => true,
            (Some(LogicalType::Time), Value::Time(_)) => true,
            (Some(LogicalType::Timestamp), Value::Timestamp(_)) => true,
            (Some(_), _) => false,
            (None, v) => matches!(
                (self.schema_type, v),
                (SchemaType::Int8, Value::Int8(_))
                    | (SchemaType::Int16, Value::Int16(_))
                    | (SchemaType::Int32, Value::Int32(_))
                    | (SchemaType::Int64, Value::Int64(_))
                    | (SchemaType::Float32, Value::Float32(_))
                    | (SchemaType::Float64, Value::Float64(_))
                    | (SchemaType::Boolean, Value::Boolean(_))
                    | (SchemaType::String, Value::String(_))
                    | (SchemaType::Bytes, Value::Bytes(_))
                    | (SchemaType::Array, Value::Array(_))
                    | (SchemaType::Map, Value::Map(_))
                    | (SchemaType::Struct, Value::Struct(_))
            ),
        };
        if !ok {
            return Err(here(format!(
                "{} value for a {} schema",
                value.type_name(),
                self.describe()
            )));
        }
        match value {
            Value::Array(items) => {
                if let Some(element) = &self.value_schema {
                    for (i, item) in items.iter().enumerate() {
                        element.validate_at(item, &format!("{path}[{i}]"))?;
                    }
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    if let Some(ks) = &self.key_schema {
                        ks.validate_at(k, &format!("{path}{{key}}"))?;
                    }
                    if let Some(vs) = &self.value_schema {
                        vs.validate_at(v, &format!("{path}{{value}}"))?;
                    }
                }
            }
            Value::Struct(values) => {
                if values.len() != self.fields.len() {
                    return Err(here(format!(
                        "struct has {} values for {} fields",
                        values.len(),
                        self.fields.len()
                    )));
                }
                for (field, v) in self.fields.iter().zip(values) {
                    let sub = if path.is_empty() {
                        field.name.clone()
                    } else {
                        format!("{path}.{}", field.name)
                    };
                    field.schema.validate_at(v, &sub)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A value, described by a [`Schema`] or schemaless.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Null.
    Null,
    /// `int8`.
    Int8(i8),
    /// `int16`.
    Int16(i16),
    /// `int32`.
    Int32(i32),
    /// `int64`.
    Int64(i64),
    /// `float32`.
    Float32(f32),
    /// `float64`.
    Float64(f64),
    /// `boolean`.
    Boolean(bool),
    /// `string`.
    String(String),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `array`.
    Array(Vec<Value>),
    /// `map`, entries in order (schemaless objects have string keys).
    Map(Vec<(Value, Value)>),
    /// `struct`: the values of the schema's fields, in field order.
    Struct(Vec<Value>),
    /// The `Decimal` logical type.
    Decimal(Decimal),
    /// The `Date` logical type: days since 1970-01-01.
    Date(i32),
    /// The `Time` logical type: milliseconds since midnight.
    Time(i32),
    /// The `Timestamp` logical type: milliseconds since 1970-01-01T00:00:00Z.
    Timestamp(i64),
}

impl Value {
    /// Whether the value is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Short name of the value's kind for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int8(_) => "int8",
            Value::Int16(_) => "int16",
            Value::Int32(_) => "int32",
            Value::Int64(_) => "int64",
            Value::Float32(_) => "float32",
            Value::Float64(_) => "float64",
            Value::Boolean(_) => "boolean",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Struct(_) => "struct",
            Value::Decimal(_) => "Decimal",
            Value::Date(_) => "Date",
            Value::Time(_) => "Time",
            Value::Timestamp(_) => "Timestamp",
        }
    }

    /// The schema type a schemaless value of this kind has (Connect's
    /// `ConnectSchema.schemaType(Class)`); `None` for null, structs and logical values.
    pub fn inferred_type(&self) -> Option<SchemaType> {
        Some(match self {
            Value::Int8(_) => SchemaType::Int8,
            Value::Int16(_) => SchemaType::Int16,
            Value::Int32(_) => SchemaType::Int32,
            Value::Int64(_) => SchemaType::Int64,
            Value::Float32(_) => SchemaType::Float32,
            Value::Float64(_) => SchemaType::Float64,
            Value::Boolean(_) => SchemaType::Boolean,
            Value::String(_) => SchemaType::String,
            Value::Bytes(_) => SchemaType::Bytes,
            Value::Array(_) => SchemaType::Array,
            Value::Map(_) => SchemaType::Map,
            _ => return None,
        })
    }

    /// The entry of a schemaless map with string key `key`.
    pub fn map_get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::String(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Connect's `Schema.OPTIONAL_BYTES_SCHEMA`, the schema the `byteArray` converter gives
/// every value.
pub static OPTIONAL_BYTES_SCHEMA: Schema = Schema::fixed(SchemaType::Bytes, true);
/// Connect's `Schema.OPTIONAL_STRING_SCHEMA`, the schema the `string` converter gives every
/// value.
pub static OPTIONAL_STRING_SCHEMA: Schema = Schema::fixed(SchemaType::String, true);

/// The schema a value holds: one of the fixed schemas above, shared by every record that
/// carries it, or a schema of its own. Records move through the pipeline by value, so a
/// value holds a pointer rather than the schema itself, and the converters that give every
/// record the same schema allocate nothing for it. Changing a fixed schema through
/// [`std::ops::DerefMut`] gives the value its own copy first (copy on write).
#[derive(Clone)]
pub enum SchemaRef {
    /// A schema shared by all the values that have it.
    Fixed(&'static Schema),
    /// A schema of this value's own.
    Owned(Box<Schema>),
}

impl SchemaRef {
    /// The schema itself, copied if it is a fixed one.
    pub fn into_owned(self) -> Schema {
        match self {
            SchemaRef::Fixed(s) => s.clone(),
            SchemaRef::Owned(s) => *s,
        }
    }
}

impl std::ops::Deref for SchemaRef {
    type Target = Schema;

    fn deref(&self) -> &Schema {
        match self {
            SchemaRef::Fixed(s) => s,
            SchemaRef::Owned(s) => s,
        }
    }
}

impl std::ops::DerefMut for SchemaRef {
    fn deref_mut(&mut self) -> &mut Schema {
        if let SchemaRef::Fixed(s) = self {
            *self = SchemaRef::Owned(Box::new((*s).clone()));
        }
        match self {
            SchemaRef::Owned(s) => s,
            SchemaRef::Fixed(_) => unreachable!("a fixed schema was just copied"),
        }
    }
}

impl From<Schema> for SchemaRef {
    fn from(schema: Schema) -> Self {
        SchemaRef::Owned(Box::new(schema))
    }
}

impl PartialEq for SchemaRef {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl fmt::Debug for SchemaRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

/// A value with its schema (`None`: schemaless), Connect's `SchemaAndValue`.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaAndValue {
    /// The schema, if the value has one.
    pub schema: Option<SchemaRef>,
    /// The value.
    pub value: Value,
}

impl SchemaAndValue {
    /// Null without a schema.
    pub fn null() -> Self {
        SchemaAndValue {
            schema: None,
            value: Value::Null,
        }
    }

    /// A value with a schema.
    pub fn new(schema: Schema, value: Value) -> Self {
        SchemaAndValue {
            schema: Some(schema.into()),
            value,
        }
    }

    /// A schemaless value.
    pub fn schemaless(value: Value) -> Self {
        SchemaAndValue {
            schema: None,
            value,
        }
    }
}

/// A value that does not fit the data model or its schema.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DataError(pub String);

impl DataError {
    /// An error with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        DataError(message.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_schema_is_copied_before_it_is_changed() {
        let mut value = SchemaAndValue {
            schema: Some(SchemaRef::Fixed(&OPTIONAL_BYTES_SCHEMA)),
            value: Value::Bytes(b"x".to_vec()),
        };
        let copy = value.clone();
        if let Some(schema) = value.schema.as_mut() {
            schema.name = Some("renamed".into());
        }
        assert!(matches!(value.schema, Some(SchemaRef::Owned(_))));
        assert_eq!(
            value.schema.as_deref().unwrap().name.as_deref(),
            Some("renamed")
        );
        assert_eq!(OPTIONAL_BYTES_SCHEMA.name, None);
        assert_eq!(
            copy.schema.as_deref(),
            Some(&Schema::new(SchemaType::Bytes).into_optional())
        );
        assert_ne!(copy, value);
        // Size matters: records move through the pipeline by value.
        assert!(std::mem::size_of::<SchemaAndValue>() <= 48);
    }

    #[test]
    fn logical_types_are_recognised_by_name_and_type() {
        assert_eq!(
            Schema::decimal(2).logical_type(),
            Some(LogicalType::Decimal)
        );
        assert_eq!(Schema::date().logical_type(), Some(LogicalType::Date));
        assert_eq!(Schema::time().logical_type(), Some(LogicalType::Time));
        assert_eq!(
            Schema::timestamp().logical_type(),
            Some(LogicalType::Timestamp)
        );
        let wrong = Schema::new(SchemaType::String).with_name(DATE_NAME);
        assert_eq!(wrong.logical_type(), None);
        assert_eq!(Schema::decimal(7).decimal_scale(), Ok(7));
    }

    #[test]
    fn validate_names_the_path() {
        let schema = Schema::structure(vec![
            ("id", Schema::new(SchemaType::Int64)),
            (
                "tags",
                Schema::array(Schema::new(SchemaType::String)).into_optional(),
            ),
        ]);
        let ok = Value::Struct(vec![Value::Int64(1), Value::Null]);
        assert!(schema.validate(&ok).is_ok());
        let bad = Value::Struct(vec![
            Value::Int64(1),
            Value::Array(vec![Value::String("a".into()), Value::Int32(3)]),
        ]);
        assert_eq!(
            schema.validate(&bad).unwrap_err().to_string(),
            "tags[1]: int32 value for a string schema"
        );
        let missing = Value::Struct(vec![Value::Null, Value::Null]);
        assert_eq!(
            schema.validate(&missing).unwrap_err().to_string(),
            "id: null value for a required int64 schema"
        );
    }

    #[test]
    fn type_names_round_trip() {
        for t in SchemaType::ALL {
            assert_eq!(SchemaType::from_name(t.name()), Some(t));
        }
        assert_eq!(SchemaType::from_name("INT32"), Some(SchemaType::Int32));
        assert_eq!(SchemaType::from_name("uint8"), None);
    }
}

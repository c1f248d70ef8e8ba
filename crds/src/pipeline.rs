//! Converters, transforms and predicates: how a connector turns Kafka bytes into records and
//! changes records on their way (Kafka Connect's converters and single message transforms).
//!
//! Every block mirrors the Kafka Connect class of the same name; field names are Connect's
//! configuration names in camelCase (`decimal.format` becomes `decimalFormat`).
//! "Exactly one of" rules are enforced by the API server (CEL rules below) and again by the
//! runner, which reports the offending field path.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Names of the transform blocks of a [`TransformSpec`], in YAML spelling.
pub const TRANSFORM_KINDS: &[&str] = &[
    "cast",
    "dropHeaders",
    "extractField",
    "extractNewRecordState",
    "filter",
    "flatten",
    "headerFrom",
    "hoistField",
    "insertField",
    "insertHeader",
    "maskField",
    "regexRouter",
    "replaceField",
    "setSchemaMetadata",
    "timestampConverter",
    "timestampRouter",
    "valueToKey",
];

/// Names of the predicate blocks of a [`PredicateSpec`], in YAML spelling.
pub const PREDICATE_KINDS: &[&str] = &["topicNameMatches", "hasHeaderKey", "recordIsTombstone"];

/// Names of the converter blocks of a [`Converter`], in YAML spelling.
pub const CONVERTER_KINDS: &[&str] = &["json", "string", "byteArray"];

/// Names of the header converter blocks of a [`HeaderConverter`], in YAML spelling.
pub const HEADER_CONVERTER_KINDS: &[&str] = &["simple", "string", "json", "byteArray"];

/// Converters for keys, values and headers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Converters {
    /// How record keys are converted. Default: `{string: {}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Converter>,
    /// How record values are converted. Default: `{json: {schemas: false}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Converter>,
    /// How header values are converted. Default: `{simple: {}}` (Kafka Connect's
    /// `SimpleHeaderConverter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderConverter>,
}

/// A key or value converter: exactly one of `json`, `string`, `byteArray`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.json) ? 1 : 0) + (has(self.string) ? 1 : 0) + (has(self.byteArray) ? 1 : 0) == 1",
    "message": "a converter needs exactly one of json, string, byteArray"
}]))]
pub struct Converter {
    /// JSON, byte-compatible with Kafka Connect's `org.apache.kafka.connect.json.JsonConverter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<JsonConverterSpec>,
    /// UTF-8 text, as Kafka Connect's `org.apache.kafka.connect.storage.StringConverter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<StringConverterSpec>,
    /// Raw bytes, as Kafka Connect's `org.apache.kafka.connect.converters.ByteArrayConverter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_array: Option<ByteArrayConverterSpec>,
}

/// A header converter: exactly one of `simple`, `string`, `json`, `byteArray`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.simple) ? 1 : 0) + (has(self.string) ? 1 : 0) + (has(self.json) ? 1 : 0) + (has(self.byteArray) ? 1 : 0) == 1",
    "message": "a header converter needs exactly one of simple, string, json, byteArray"
}]))]
pub struct HeaderConverter {
    /// Kafka Connect's `org.apache.kafka.connect.storage.SimpleHeaderConverter`: values are
    /// written as text and read back with their type guessed (numbers, booleans, lists, maps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple: Option<SimpleHeaderConverterSpec>,
    /// UTF-8 text, as Kafka Connect's `StringConverter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<StringConverterSpec>,
    /// JSON, as Kafka Connect's `JsonConverter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<JsonConverterSpec>,
    /// Raw bytes, as Kafka Connect's `ByteArrayConverter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_array: Option<ByteArrayConverterSpec>,
}

/// Settings of the JSON converter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JsonConverterSpec {
    /// Whether each message is an envelope `{"schema": ..., "payload": ...}` carrying its
    /// Connect schema (Connect's `schemas.enable`). Default: false (plain JSON); note that
    /// Kafka Connect's own default is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schemas: Option<bool>,
    /// How `org.apache.kafka.connect.data.Decimal` values are written (Connect's
    /// `decimal.format`): `BASE64` (the unscaled value's two's-complement bytes, base64) or
    /// `NUMERIC` (a JSON number). Reading accepts both. Default: `BASE64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimal_format: Option<DecimalFormat>,
    /// Whether a null value of an optional field with a default is written as that default
    /// (Connect's `replace.null.with.default`). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_null_with_default: Option<bool>,
}

/// How decimals are written as JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DecimalFormat {
    /// Base64 of the unscaled value's big-endian two's-complement bytes (Connect's default).
    #[default]
    #[serde(rename = "BASE64")]
    Base64,
    /// A JSON number such as `12.30`.
    #[serde(rename = "NUMERIC")]
    Numeric,
}

/// Settings of the string converter (none: text is UTF-8).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringConverterSpec {}

/// Settings of the byte array converter (none).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ByteArrayConverterSpec {}

/// Settings of the simple header converter (none).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimpleHeaderConverterSpec {}

/// Which part of the record a transform works on (Connect's `$Key` / `$Value` variants).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Target {
    /// The record key (`...$Key`).
    Key,
    /// The record value (`...$Value`).
    #[default]
    Value,
}

fn is_default_target(t: &Target) -> bool {
    *t == Target::Value
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One transform: a `name`, exactly one transform block, and optionally a `predicate`
/// deciding which records it applies to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.cast) ? 1 : 0) + (has(self.dropHeaders) ? 1 : 0) + (has(self.extractField) ? 1 : 0) + (has(self.extractNewRecordState) ? 1 : 0) + (has(self.filter) ? 1 : 0) + (has(self.flatten) ? 1 : 0) + (has(self.headerFrom) ? 1 : 0) + (has(self.hoistField) ? 1 : 0) + (has(self.insertField) ? 1 : 0) + (has(self.insertHeader) ? 1 : 0) + (has(self.maskField) ? 1 : 0) + (has(self.regexRouter) ? 1 : 0) + (has(self.replaceField) ? 1 : 0) + (has(self.setSchemaMetadata) ? 1 : 0) + (has(self.timestampConverter) ? 1 : 0) + (has(self.timestampRouter) ? 1 : 0) + (has(self.valueToKey) ? 1 : 0) == 1",
        "message": "a transform needs exactly one of cast, dropHeaders, extractField, extractNewRecordState, filter, flatten, headerFrom, hoistField, insertField, insertHeader, maskField, regexRouter, replaceField, setSchemaMetadata, timestampConverter, timestampRouter, valueToKey"
    },
    {
        "rule": "!has(self.negate) || !self.negate || has(self.predicate)",
        "message": "negate needs a predicate"
    }
]))]
pub struct TransformSpec {
    /// Name of the transform, unique within the connector; errors and metrics use it.
    pub name: String,
    /// Change the type of the whole key/value or of some of its fields
    /// (`org.apache.kafka.connect.transforms.Cast`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cast: Option<CastSpec>,
    /// Remove headers by name (`DropHeaders`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_headers: Option<DropHeadersSpec>,
    /// Replace the key/value by one of its fields (`ExtractField`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract_field: Option<ExtractFieldSpec>,
    /// Replace a Debezium change event by the row after the change
    /// (`io.debezium.transforms.ExtractNewRecordState`, "unwrap").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract_new_record_state: Option<ExtractNewRecordStateSpec>,
    /// Drop the record (`Filter`); use it with a `predicate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterSpec>,
    /// Flatten nested structs/maps into one level, joining names with a delimiter (`Flatten`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flatten: Option<FlattenSpec>,
    /// Move or copy fields of the key/value into headers (`HeaderFrom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_from: Option<HeaderFromSpec>,
    /// Wrap the key/value in a struct (or map) with one field (`HoistField`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hoist_field: Option<HoistFieldSpec>,
    /// Add fields from record metadata or a static value (`InsertField`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insert_field: Option<InsertFieldSpec>,
    /// Add a header with a literal value (`InsertHeader`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insert_header: Option<InsertHeaderSpec>,
    /// Replace field values by an empty value of their type or a replacement (`MaskField`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_field: Option<MaskFieldSpec>,
    /// Rename the topic with a regular expression (`RegexRouter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex_router: Option<RegexRouterSpec>,
    /// Keep, drop and rename fields (`ReplaceField`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_field: Option<ReplaceFieldSpec>,
    /// Set the schema name and/or version (`SetSchemaMetadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_schema_metadata: Option<SetSchemaMetadataSpec>,
    /// Convert timestamps between text, Unix time and the Connect logical types
    /// (`TimestampConverter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_converter: Option<TimestampConverterSpec>,
    /// Rename the topic with the record timestamp (`TimestampRouter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_router: Option<TimestampRouterSpec>,
    /// Build the key from fields of the value (`ValueToKey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_to_key: Option<ValueToKeySpec>,
    /// Apply the transform only to records this predicate matches (all records without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<PredicateSpec>,
    /// Invert the predicate: apply the transform to records it does not match.
    #[serde(default, skip_serializing_if = "is_false")]
    pub negate: bool,
}

/// `Cast`: change types.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CastSpec {
    /// `key` or `value` (default).
    #[serde(default, skip_serializing_if = "is_default_target")]
    pub target: Target,
    /// What to cast: either one entry without `field` (cast the whole key/value, which must be
    /// a primitive) or entries that each name a top-level field (Connect's `spec`).
    pub spec: Vec<CastFieldSpec>,
    /// Whether a null field of a schema'd struct reads as its default
    /// (Connect's `replace.null.with.default`). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_null_with_default: Option<bool>,
}

/// One entry of a `Cast` spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CastFieldSpec {
    /// Top-level field to cast; omit it to cast the whole key/value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Type to cast to.
    #[serde(rename = "type")]
    pub to: CastType,
}

/// A type `Cast` can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CastType {
    /// 8-bit signed integer.
    Int8,
    /// 16-bit signed integer.
    Int16,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// 32-bit float.
    Float32,
    /// 64-bit float.
    Float64,
    /// Boolean (numbers: non-zero is true; text: `true` ignoring case).
    Boolean,
    /// Text (bytes become base64, dates ISO-8601 text).
    String,
}

/// `DropHeaders`: remove headers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DropHeadersSpec {
    /// Names of the headers to remove (every header with one of these names).
    pub headers: Vec<String>,
}

/// `ExtractField`: replace the key/value by one of its fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtractFieldSpec {
    /// `key` or `value` (default).
    #[serde(default, skip_serializing_if = "is_default_target")]
    pub target: Target,
    /// Field to extract: a top-level field name, or with `fieldSyntaxVersion: V2` a path of
    /// nested fields such as `address.city` (a name containing dots in backticks:
    /// ``a.`b.c` ``).
    pub field: String,
    /// How `field` is read (Connect's `field.syntax.version`): `V1` (default) takes it as one
    /// top-level field name, `V2` as a dotted path into nested structs/maps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_syntax_version: Option<FieldSyntaxVersion>,
    /// Whether a null field of a schema'd struct reads as its default
    /// (Connect's `replace.null.with.default`). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_null_with_default: Option<bool>,
}

/// How field names are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FieldSyntaxVersion {
    /// A field name is one top-level field, dots included.
    #[default]
    V1,
    /// A field name is a dotted path into nested fields; backticks quote names with dots.
    V2,
}

/// `Filter`: drop records (no settings; combine with a predicate).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterSpec {}

/// `Flatten`: nested structs (with a schema) or maps (without) become top-level fields named
/// `outer<delimiter>inner`. With a schema, map fields are refused, as in Kafka Connect.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlattenSpec {
    /// `key` or `value` (default).
    #[serde(default, skip_serializing_if = "is_default_target")]
    pub target: Target,
    /// Text between the names of nested fields. Default: `.`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
}

/// `HeaderFrom`: move or copy fields into headers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderFromSpec {
    /// `key` or `value` (default).
    #[serde(default, skip_serializing_if = "is_default_target")]
    pub target: Target,
    /// Top-level fields to read.
    pub fields: Vec<String>,
    /// Header names, one per field, in the same order.
    pub headers: Vec<String>,
    /// `move` (remove the fields) or `copy` (keep them).
    pub operation: HeaderFromOperation,
    /// Whether a null field of a schema'd struct reads as its default
    /// (Connect's `replace.null.with.default`). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_null_with_default: Option<bool>,
}

/// What `HeaderFrom` does with the fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HeaderFromOperation {
    /// Remove the fields from the key/value.
    #[default]
    Move,
    /// Keep the fields in the key/value.
    Copy,
}

/// `HoistField`: wrap the key/value in a one-field struct (schema'd) or map (schemaless).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HoistFieldSpec {
    /// `key` or `value` (default).
    #[serde(default, skip_serializing_if = "is_default_target")]
    pub target: Target,
    /// Name of the field holding the original key/value.
    pub field: String,
}

/// `InsertField`: add fields from record metadata or a static value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InsertFieldSpec {
    /// `key` or `value` (default).
    #[serde(default, skip_serializing_if = "is_default_target")]
    pub target: Target,
    /// Add the record's topic (Connect's `topic.field`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<InsertedField>,
    /// Add the record's partition, an int32 (Connect's `partition.field`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<InsertedField>,
    /// Add the record's Kafka offset, an int64; sink connectors only (Connect's
    /// `offset.field`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<InsertedField>,
    /// Add the record's timestamp: a Connect `Timestamp` with a schema, milliseconds since the
    /// epoch without one (Connect's `timestamp.field`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<InsertedField>,
    /// Add a fixed text value (Connect's `static.field` and `static.value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#static: Option<StaticField>,
    /// Whether a null field of a schema'd struct reads as its default when the struct is
    /// copied (Connect's `replace.null.with.default`). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_null_with_default: Option<bool>,
}

/// A field `InsertField` adds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InsertedField {
    /// Name of the new field.
    pub field: String,
    /// Whether the new field is required in the schema (Connect's `!` suffix). A required
    /// field whose value is missing fails the record. Default: false (optional, Connect's `?`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
}

/// The static field `InsertField` adds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticField {
    /// Name of the new field.
    pub field: String,
    /// Its text value.
    pub value: String,
    /// Whether the new field is required in the schema (Connect's `!` suffix).
    /// Default: false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
}

/// `InsertHeader`: add a header.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InsertHeaderSpec {
    /// Name of the header.
    pub header: String,
    /// Its value, parsed like Connect's `value.literal` (`Values.parseString`: numbers,
    /// booleans, lists and maps get their type; anything else is text).
    pub value_literal: String,
}

/// `MaskField`: replace values of fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaskFieldSpec {
    /// `key` or `value` (default).
    #[serde(default, skip_serializing_if = "is_default_target")]
    pub target: Target,
    /// Top-level fields to mask.
    pub fields: Vec<String>,
    /// Replacement, converted to each field's type (numbers and text only). Without it a field
    /// becomes its type's empty value (0, false, "", empty list/map, the epoch for dates).
    /// Bytes and struct fields cannot be masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

/// `RegexRouter`: rename the topic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegexRouterSpec {
    /// Regular expression that must match the whole topic name; other records pass unchanged.
    /// The first match in the topic is then replaced (Java's `replaceFirst`). Java syntax
    /// without look-around and back-references.
    pub regex: String,
    /// New topic name; `$1`, `$2`... insert capture groups (Java syntax, `\$` for a dollar).
    pub replacement: String,
}

/// `ReplaceField`: keep, drop and rename fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplaceFieldSpec {
    /// `key` or `value` (default).
    #[serde(default, skip_serializing_if = "is_default_target")]
    pub target: Target,
    /// Fields to drop; wins over `include`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Fields to keep (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Fields to rename (Connect's `renames` `from:to` pairs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renames: Vec<FieldRename>,
    /// Whether a null field of a schema'd struct reads as its default
    /// (Connect's `replace.null.with.default`). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_null_with_default: Option<bool>,
}

/// A field rename.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldRename {
    /// Current name.
    pub from: String,
    /// New name.
    pub to: String,
}

/// `SetSchemaMetadata`: set the schema name and/or version of a struct schema (Kafka Connect
/// fails on other schemas too); records without a schema fail, tombstones pass.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetSchemaMetadataSpec {
    /// `key` or `value` (default).
    #[serde(default, skip_serializing_if = "is_default_target")]
    pub target: Target,
    /// New schema name (Connect's `schema.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New schema version (Connect's `schema.version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
    /// Whether a null field of a schema'd struct reads as its default
    /// (Connect's `replace.null.with.default`). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_null_with_default: Option<bool>,
}

/// `TimestampConverter`: convert a timestamp between representations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimestampConverterSpec {
    /// `key` or `value` (default).
    #[serde(default, skip_serializing_if = "is_default_target")]
    pub target: Target,
    /// Top-level field holding the timestamp; omit it to convert the whole key/value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Representation to produce (Connect's `target.type`).
    pub target_type: TimestampType,
    /// `java.text.SimpleDateFormat` pattern for `string` input and output, in UTC, e.g.
    /// `yyyy-MM-dd'T'HH:mm:ss.SSSZ`. Required when `targetType` is `string` or the input is
    /// text. Supported letters: y M d H h m s S a E D Z X z, quoted text, and separators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Unit of `unix` timestamps (Connect's `unix.precision`). Default: `milliseconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_precision: Option<UnixPrecision>,
    /// Whether a null field of a schema'd struct reads as its default
    /// (Connect's `replace.null.with.default`). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_null_with_default: Option<bool>,
}

/// A timestamp representation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TimestampType {
    /// Text in `format`.
    #[serde(rename = "string")]
    String,
    /// An int64 count of `unixPrecision` units since 1970-01-01T00:00:00Z.
    #[serde(rename = "unix")]
    Unix,
    /// Connect `Date` (days since the epoch; time of day dropped).
    #[serde(rename = "Date")]
    Date,
    /// Connect `Time` (milliseconds since midnight; date dropped).
    #[serde(rename = "Time")]
    Time,
    /// Connect `Timestamp` (milliseconds since the epoch).
    #[default]
    #[serde(rename = "Timestamp")]
    Timestamp,
}

/// Unit of Unix timestamps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UnixPrecision {
    /// Seconds.
    Seconds,
    /// Milliseconds.
    #[default]
    Milliseconds,
    /// Microseconds.
    Microseconds,
    /// Nanoseconds.
    Nanoseconds,
}

/// `TimestampRouter`: rename the topic with the record timestamp.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimestampRouterSpec {
    /// New topic name; `${topic}` and `${timestamp}` are replaced. Default:
    /// `${topic}-${timestamp}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_format: Option<String>,
    /// `java.text.SimpleDateFormat` pattern of `${timestamp}`, in UTC. Default: `yyyyMMdd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_format: Option<String>,
}

/// `ValueToKey`: the key becomes a struct (or map) of some value fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueToKeySpec {
    /// Top-level value fields to copy into the key, in this order.
    pub fields: Vec<String>,
    /// Whether a null field of a schema'd struct reads as its default
    /// (Connect's `replace.null.with.default`). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_null_with_default: Option<bool>,
}

/// `ExtractNewRecordState` (Debezium's "unwrap"): a change event (`before`, `after`,
/// `source`, `op`, `ts_ms`) becomes the row after the change, the shape a sink writing
/// rows expects. Records that are not change events pass unchanged.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtractNewRecordStateSpec {
    /// Drop tombstones (records with a null value) instead of passing them on
    /// (Debezium's `drop.tombstones`). Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_tombstones: Option<bool>,
    /// What a delete event (`op: d`) becomes (Debezium's `delete.handling.mode`): `drop`
    /// (default: dropped), `rewrite` (the row before the delete with a field `__deleted`
    /// set to `"true"`; other rows get `"false"`), or `none` (a record with a null value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_handling_mode: Option<DeleteHandlingMode>,
    /// Fields of the change event to add to the row (Debezium's `add.fields`): `op`,
    /// `ts_ms`, or a field of `source` such as `table`, `lsn`, `txId` (also written
    /// `source.ts_ms`). Each is added as `<addFieldsPrefix><name>`, dots becoming `_`
    /// (`source.ts_ms` becomes `__source_ts_ms`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 128)))]
    pub add_fields: Vec<String>,
    /// Prefix of the added fields (Debezium's `add.fields.prefix`). Default `__`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub add_fields_prefix: Option<String>,
    /// Fields of the change event to add as headers, named like `addFields`
    /// (Debezium's `add.headers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 128)))]
    pub add_headers: Vec<String>,
    /// Prefix of the added headers (Debezium's `add.headers.prefix`). Default `__`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub add_headers_prefix: Option<String>,
}

/// What `ExtractNewRecordState` makes of a delete event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DeleteHandlingMode {
    /// Drop the delete event.
    #[default]
    Drop,
    /// Pass the row before the delete, with `__deleted: "true"`.
    Rewrite,
    /// Pass a record with a null value (a tombstone).
    None,
}

/// A predicate: exactly one of `topicNameMatches`, `hasHeaderKey`, `recordIsTombstone`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.topicNameMatches) ? 1 : 0) + (has(self.hasHeaderKey) ? 1 : 0) + (has(self.recordIsTombstone) ? 1 : 0) == 1",
    "message": "a predicate needs exactly one of topicNameMatches, hasHeaderKey, recordIsTombstone"
}]))]
pub struct PredicateSpec {
    /// Matches records whose topic matches a regular expression (`TopicNameMatches`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name_matches: Option<TopicNameMatchesSpec>,
    /// Matches records with at least one header of a name (`HasHeaderKey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_header_key: Option<HasHeaderKeySpec>,
    /// Matches records whose value is null (`RecordIsTombstone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_is_tombstone: Option<RecordIsTombstoneSpec>,
}

/// `TopicNameMatches` settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopicNameMatchesSpec {
    /// Regular expression that must match the whole topic name.
    pub pattern: String,
}

/// `HasHeaderKey` settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HasHeaderKeySpec {
    /// Header name.
    pub name: String,
}

/// `RecordIsTombstone` settings (none).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordIsTombstoneSpec {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_example_parses() {
        let yaml = r#"
converters: {key: {string: {}}, value: {json: {schemas: false, decimalFormat: BASE64}}, header: {simple: {}}}
transforms:
  - {name: addSource, insertField: {static: {field: source, value: shop}}}
  - {name: dropTest, filter: {}, predicate: {topicNameMatches: {pattern: "test-.*"}}, negate: false}
  - {name: castId, cast: {target: value, spec: [{field: id, type: int64}]}}
"#;
        #[derive(Deserialize)]
        struct Doc {
            converters: Converters,
            transforms: Vec<TransformSpec>,
        }
        let doc: Doc = serde_yaml::from_str(yaml).unwrap();
        let value = doc.converters.value.unwrap().json.unwrap();
        assert_eq!(value.schemas, Some(false));
        assert_eq!(value.decimal_format, Some(DecimalFormat::Base64));
        assert_eq!(doc.transforms.len(), 3);
        assert_eq!(
            doc.transforms[0]
                .insert_field
                .as_ref()
                .unwrap()
                .r#static
                .as_ref()
                .unwrap()
                .value,
            "shop"
        );
        assert!(doc.transforms[1].predicate.is_some());
        assert_eq!(
            doc.transforms[2].cast.as_ref().unwrap().spec[0].to,
            CastType::Int64
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_yaml::from_str::<TransformSpec>("{name: a, filter: {}, bogus: 1}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn schema_carries_cel_rules() {
        let schema = schemars::schema_for!(TransformSpec);
        let text = serde_json::to_string(&schema).unwrap();
        assert!(text.contains("x-kubernetes-validations"));
        assert!(text.contains("negate needs a predicate"));
    }
}

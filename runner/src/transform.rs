//! Transforms (Kafka Connect's single message transforms) and their predicates, with
//! Connect's semantics for schema'd (struct) and schemaless (map) keys and values.
#![warn(missing_docs)]

mod cast;
mod fields;
mod headers;
mod routing;
mod timestamp;
mod unwrap;

use crate::config_error::ConfigError;
use crate::data::{Schema, SchemaAndValue, Value};
use crate::record::Record;
use ferry_crds::pipeline::{PredicateSpec, Target, TransformSpec, TRANSFORM_KINDS};
use regex::Regex;

/// A transform that failed on a record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("transform {transform:?} failed on record {coordinates}: {reason}")]
pub struct TransformError {
    /// The transform's `name`.
    pub transform: String,
    /// `topic/partition/offset` of the record.
    pub coordinates: String,
    /// Why.
    pub reason: String,
}

/// The transforms of a connector, applied in order.
#[derive(Clone, Debug, Default)]
pub struct TransformChain {
    steps: Vec<Step>,
}

#[derive(Clone, Debug)]
struct Step {
    name: String,
    transform: Transform,
    predicate: Option<Predicate>,
    negate: bool,
}

#[derive(Clone, Debug)]
enum Transform {
    Cast(cast::Cast),
    DropHeaders(headers::DropHeaders),
    ExtractField(fields::ExtractField),
    ExtractNewRecordState(unwrap::ExtractNewRecordState),
    Filter,
    Flatten(fields::Flatten),
    HeaderFrom(headers::HeaderFrom),
    HoistField(fields::HoistField),
    InsertField(fields::InsertField),
    InsertHeader(headers::InsertHeader),
    MaskField(fields::MaskField),
    RegexRouter(routing::RegexRouter),
    ReplaceField(fields::ReplaceField),
    SetSchemaMetadata(fields::SetSchemaMetadata),
    TimestampConverter(timestamp::TimestampConverter),
    TimestampRouter(routing::TimestampRouter),
    ValueToKey(fields::ValueToKey),
}

/// A predicate deciding whether a transform applies to a record.
#[derive(Clone, Debug)]
enum Predicate {
    TopicNameMatches(Regex),
    HasHeaderKey(String),
    RecordIsTombstone,
}

impl Predicate {
    fn test(&self, record: &Record) -> bool {
        match self {
            Predicate::TopicNameMatches(re) => re.is_match(&record.topic),
            Predicate::HasHeaderKey(name) => record.headers.iter().any(|h| h.key == *name),
            Predicate::RecordIsTombstone => record.value.value.is_null(),
        }
    }
}

/// Why a transform could not change a record (wrapped into a [`TransformError`]).
pub(crate) type Failure = String;

impl TransformChain {
    /// Builds the chain from `spec.transforms`, reporting every problem with its field path.
    pub fn from_spec(specs: &[TransformSpec]) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut steps = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let path = format!("spec.transforms[{i}]");
            if spec.name.trim().is_empty() {
                errors.push(ConfigError::new(
                    format!("{path}.name"),
                    "must not be empty",
                ));
            } else if specs[..i].iter().any(|s| s.name == spec.name) {
                errors.push(ConfigError::new(
                    format!("{path}.name"),
                    format!("transform name {:?} is used twice", spec.name),
                ));
            }
            let predicate = match &spec.predicate {
                Some(p) => build_predicate(p, &format!("{path}.predicate"), &mut errors),
                None => {
                    if spec.negate {
                        errors.push(ConfigError::new(
                            format!("{path}.negate"),
                            "negate needs a predicate",
                        ));
                    }
                    None
                }
            };
            if let Some(transform) = build_transform(spec, &path, &mut errors) {
                steps.push(Step {
                    name: spec.name.clone(),
                    transform,
                    predicate,
                    negate: spec.negate,
                });
            }
        }
        if errors.is_empty() {
            Ok(TransformChain { steps })
        } else {
            Err(errors)
        }
    }

    /// Whether a transform's outcome depends on the headers a record arrives with (a
    /// `hasHeaderKey` predicate). Transforms that only add, move or drop headers do not.
    pub fn reads_headers(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.predicate, Some(Predicate::HasHeaderKey(_))))
    }

    /// Whether the chain has no transforms.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Applies every transform in order. `Ok(None)`: a `filter` dropped the record.
    pub fn apply(&self, mut record: Record) -> Result<Option<Record>, TransformError> {
        if self.steps.is_empty() {
            return Ok(Some(record));
        }
        // Errors name the record as it was read, before any transform renamed its topic.
        let origin = (record.topic.clone(), record.partition, record.offset);
        for step in &self.steps {
            if let Some(p) = &step.predicate {
                if p.test(&record) == step.negate {
                    continue;
                }
            }
            match step.transform.apply(record) {
                Ok(Some(r)) => record = r,
                Ok(None) => return Ok(None),
                Err(reason) => {
                    let (topic, partition, offset) = origin;
                    let mut named = Record::new(topic);
                    named.partition = partition;
                    named.offset = offset;
                    return Err(TransformError {
                        transform: step.name.clone(),
                        coordinates: named.coordinates(),
                        reason,
                    });
                }
            }
        }
        Ok(Some(record))
    }
}

impl Transform {
    fn apply(&self, record: Record) -> Result<Option<Record>, Failure> {
        Ok(Some(match self {
            Transform::Filter => return Ok(None),
            Transform::Cast(t) => t.apply(record)?,
            Transform::DropHeaders(t) => t.apply(record),
            Transform::ExtractField(t) => t.apply(record)?,
            Transform::ExtractNewRecordState(t) => return t.apply(record),
            Transform::Flatten(t) => t.apply(record)?,
            Transform::HeaderFrom(t) => t.apply(record)?,
            Transform::HoistField(t) => t.apply(record),
            Transform::InsertField(t) => t.apply(record)?,
            Transform::InsertHeader(t) => t.apply(record),
            Transform::MaskField(t) => t.apply(record)?,
            Transform::RegexRouter(t) => t.apply(record),
            Transform::ReplaceField(t) => t.apply(record)?,
            Transform::SetSchemaMetadata(t) => t.apply(record)?,
            Transform::TimestampConverter(t) => t.apply(record)?,
            Transform::TimestampRouter(t) => t.apply(record)?,
            Transform::ValueToKey(t) => t.apply(record)?,
        }))
    }
}

fn build_predicate(
    spec: &PredicateSpec,
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<Predicate> {
    let set: Vec<&str> = [
        ("topicNameMatches", spec.topic_name_matches.is_some()),
        ("hasHeaderKey", spec.has_header_key.is_some()),
        ("recordIsTombstone", spec.record_is_tombstone.is_some()),
    ]
    .into_iter()
    .filter(|(_, p)| *p)
    .map(|(n, _)| n)
    .collect();
    if set.len() != 1 {
        errors.push(ConfigError::new(
            path,
            format!(
                "needs exactly one of topicNameMatches, hasHeaderKey, recordIsTombstone{}",
                if set.is_empty() {
                    String::new()
                } else {
                    format!(", found {}", set.join(" and "))
                }
            ),
        ));
        return None;
    }
    if let Some(t) = &spec.topic_name_matches {
        return match full_match_regex(&t.pattern) {
            Ok(re) => Some(Predicate::TopicNameMatches(re)),
            Err(e) => {
                errors.push(ConfigError::new(
                    format!("{path}.topicNameMatches.pattern"),
                    e,
                ));
                None
            }
        };
    }
    if let Some(h) = &spec.has_header_key {
        if h.name.is_empty() {
            errors.push(ConfigError::new(
                format!("{path}.hasHeaderKey.name"),
                "must not be empty",
            ));
            return None;
        }
        return Some(Predicate::HasHeaderKey(h.name.clone()));
    }
    Some(Predicate::RecordIsTombstone)
}

fn build_transform(
    spec: &TransformSpec,
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<Transform> {
    let present = [
        spec.cast.is_some(),
        spec.drop_headers.is_some(),
        spec.extract_field.is_some(),
        spec.extract_new_record_state.is_some(),
        spec.filter.is_some(),
        spec.flatten.is_some(),
        spec.header_from.is_some(),
        spec.hoist_field.is_some(),
        spec.insert_field.is_some(),
        spec.insert_header.is_some(),
        spec.mask_field.is_some(),
        spec.regex_router.is_some(),
        spec.replace_field.is_some(),
        spec.set_schema_metadata.is_some(),
        spec.timestamp_converter.is_some(),
        spec.timestamp_router.is_some(),
        spec.value_to_key.is_some(),
    ];
    let set: Vec<&str> = TRANSFORM_KINDS
        .iter()
        .zip(present)
        .filter(|(_, p)| *p)
        .map(|(n, _)| *n)
        .collect();
    if set.len() != 1 {
        errors.push(ConfigError::new(
            path,
            format!(
                "needs exactly one of {}{}",
                TRANSFORM_KINDS.join(", "),
                if set.is_empty() {
                    String::new()
                } else {
                    format!("; found {}", set.join(" and "))
                }
            ),
        ));
        return None;
    }
    let before = errors.len();
    let path = format!("{path}.{}", set[0]);
    let built = if let Some(s) = &spec.cast {
        cast::Cast::new(s, &path, errors).map(Transform::Cast)
    } else if let Some(s) = &spec.drop_headers {
        headers::DropHeaders::new(s, &path, errors).map(Transform::DropHeaders)
    } else if let Some(s) = &spec.extract_field {
        fields::ExtractField::new(s, &path, errors).map(Transform::ExtractField)
    } else if let Some(s) = &spec.extract_new_record_state {
        unwrap::ExtractNewRecordState::new(s, &path, errors).map(Transform::ExtractNewRecordState)
    } else if spec.filter.is_some() {
        Some(Transform::Filter)
    } else if let Some(s) = &spec.flatten {
        Some(Transform::Flatten(fields::Flatten::new(s)))
    } else if let Some(s) = &spec.header_from {
        headers::HeaderFrom::new(s, &path, errors).map(Transform::HeaderFrom)
    } else if let Some(s) = &spec.hoist_field {
        fields::HoistField::new(s, &path, errors).map(Transform::HoistField)
    } else if let Some(s) = &spec.insert_field {
        fields::InsertField::new(s, &path, errors).map(Transform::InsertField)
    } else if let Some(s) = &spec.insert_header {
        headers::InsertHeader::new(s, &path, errors).map(Transform::InsertHeader)
    } else if let Some(s) = &spec.mask_field {
        fields::MaskField::new(s, &path, errors).map(Transform::MaskField)
    } else if let Some(s) = &spec.regex_router {
        routing::RegexRouter::new(s, &path, errors).map(Transform::RegexRouter)
    } else if let Some(s) = &spec.replace_field {
        fields::ReplaceField::new(s, &path, errors).map(Transform::ReplaceField)
    } else if let Some(s) = &spec.set_schema_metadata {
        fields::SetSchemaMetadata::new(s, &path, errors).map(Transform::SetSchemaMetadata)
    } else if let Some(s) = &spec.timestamp_converter {
        timestamp::TimestampConverter::new(s, &path, errors).map(Transform::TimestampConverter)
    } else if let Some(s) = &spec.timestamp_router {
        routing::TimestampRouter::new(s, &path, errors).map(Transform::TimestampRouter)
    } else if let Some(s) = &spec.value_to_key {
        fields::ValueToKey::new(s, &path, errors).map(Transform::ValueToKey)
    } else {
        None
    };
    if errors.len() > before {
        None
    } else {
        built
    }
}

/// A regular expression that must match a whole text (Java's `Matcher.matches()`).
pub(crate) fn full_match_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))
}

/// The key or value a transform works on.
pub(crate) fn operating(record: &mut Record, target: Target) -> &mut SchemaAndValue {
    match target {
        Target::Key => &mut record.key,
        Target::Value => &mut record.value,
    }
}

/// Connect's `Requirements.requireMap` message.
pub(crate) fn not_a_map(value: &Value, purpose: &str) -> Failure {
    format!(
        "only maps are supported for schemaless data in {purpose}, found {}",
        value.type_name()
    )
}

/// Connect's `Requirements.requireStruct` message.
pub(crate) fn not_a_struct(schema: &Schema, value: &Value, purpose: &str) -> Failure {
    format!(
        "only structs are supported for schema'd data in {purpose}, found a {} value with a {} schema",
        value.type_name(),
        schema.describe()
    )
}

/// The value of a struct field, its default when null and `replace_null_with_default`
/// (Connect's `Struct.get` versus `getWithoutDefault`).
pub(crate) fn field_value(
    schema: &Schema,
    values: &[Value],
    index: usize,
    replace_null_with_default: bool,
) -> Value {
    let v = values.get(index).cloned().unwrap_or(Value::Null);
    if v.is_null() && replace_null_with_default {
        if let Some(default) = schema
            .fields
            .get(index)
            .and_then(|f| f.schema.default.as_ref())
        {
            return (**default).clone();
        }
    }
    v
}

/// Schema `source`'s name, version, doc and parameters on a new struct schema (Connect's
/// `SchemaUtil.copySchemaBasics(source, SchemaBuilder.struct())`).
pub(crate) fn struct_with_basics(source: &Schema) -> Schema {
    Schema {
        name: source.name.clone(),
        version: source.version,
        doc: source.doc.clone(),
        parameters: source.parameters.clone(),
        ..Schema::new(crate::data::SchemaType::Struct)
    }
}

/// Adds `field` to a struct schema, refusing duplicates as Connect's `SchemaBuilder.field`.
pub(crate) fn push_field(schema: &mut Schema, name: &str, field: Schema) -> Result<(), Failure> {
    if schema.field(name).is_some() {
        return Err(format!(
            "cannot create field {name:?}: the schema already has a field of that name"
        ));
    }
    schema.fields.push(crate::data::Field {
        name: name.to_string(),
        schema: field,
    });
    Ok(())
}

/// The value of a schemaless map entry with string key `key`.
pub(crate) fn map_entry<'a>(entries: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|(k, _)| matches!(k, Value::String(s) if s == key))
        .map(|(_, v)| v)
}

/// Inserts or replaces a schemaless map entry with a string key.
pub(crate) fn map_put(entries: &mut Vec<(Value, Value)>, key: &str, value: Value) {
    match entries
        .iter_mut()
        .find(|(k, _)| matches!(k, Value::String(s) if s == key))
    {
        Some(slot) => slot.1 = value,
        None => entries.push((Value::String(key.to_string()), value)),
    }
}

/// Checks a field name list is not empty and has no blank names.
pub(crate) fn require_names(names: &[String], path: &str, errors: &mut Vec<ConfigError>) -> bool {
    if names.is_empty() {
        errors.push(ConfigError::new(path, "must name at least one field"));
        return false;
    }
    if let Some(i) = names.iter().position(|n| n.is_empty()) {
        errors.push(ConfigError::new(
            format!("{path}[{i}]"),
            "must not be empty",
        ));
        return false;
    }
    true
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// Builds a chain from YAML transform specs.
    pub fn chain(yaml: &str) -> TransformChain {
        let specs: Vec<TransformSpec> = serde_yaml::from_str(yaml).unwrap();
        TransformChain::from_spec(&specs).unwrap()
    }

    /// The configuration errors of YAML transform specs.
    pub fn config_errors(yaml: &str) -> Vec<String> {
        let specs: Vec<TransformSpec> = serde_yaml::from_str(yaml).unwrap();
        match TransformChain::from_spec(&specs) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    /// A schemaless map with string keys.
    pub fn map(entries: &[(&str, Value)]) -> Value {
        Value::Map(
            entries
                .iter()
                .map(|(k, v)| (Value::String(k.to_string()), v.clone()))
                .collect(),
        )
    }

    /// A record on `topic` with a value.
    pub fn record(topic: &str, value: SchemaAndValue) -> Record {
        Record {
            value,
            ..Record::new(topic)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::record::Header;

    #[test]
    fn filter_with_predicates_and_negate() {
        let drop_test = chain(
            r#"[{name: dropTest, filter: {}, predicate: {topicNameMatches: {pattern: "test-.*"}}}]"#,
        );
        let value = SchemaAndValue::schemaless(Value::Int64(1));
        assert_eq!(
            drop_test.apply(record("test-a", value.clone())).unwrap(),
            None
        );
        assert!(drop_test
            .apply(record("prod-test-a", value.clone()))
            .unwrap()
            .is_some());
        let keep_only_test = chain(
            r#"[{name: k, filter: {}, predicate: {topicNameMatches: {pattern: "test-.*"}}, negate: true}]"#,
        );
        assert!(keep_only_test
            .apply(record("test-a", value.clone()))
            .unwrap()
            .is_some());
        assert_eq!(
            keep_only_test.apply(record("prod", value.clone())).unwrap(),
            None
        );

        let tombstones = chain("[{name: t, filter: {}, predicate: {recordIsTombstone: {}}}]");
        assert_eq!(
            tombstones
                .apply(record("a", SchemaAndValue::null()))
                .unwrap(),
            None
        );
        assert!(tombstones
            .apply(record("a", value.clone()))
            .unwrap()
            .is_some());

        let header = chain("[{name: h, filter: {}, predicate: {hasHeaderKey: {name: skip}}}]");
        let mut r = record("a", value);
        assert!(header.apply(r.clone()).unwrap().is_some());
        r.headers.push(Header {
            key: "skip".into(),
            value: SchemaAndValue::null(),
        });
        assert_eq!(header.apply(r).unwrap(), None);
    }

    #[test]
    fn config_errors_name_the_field() {
        assert_eq!(
            config_errors("[{name: a}]"),
            vec![format!(
                "spec.transforms[0]: needs exactly one of {}",
                TRANSFORM_KINDS.join(", ")
            )]
        );
        assert_eq!(
            config_errors("[{name: a, filter: {}, negate: true}]"),
            vec!["spec.transforms[0].negate: negate needs a predicate"]
        );
        assert_eq!(
            config_errors("[{name: a, filter: {}}, {name: a, filter: {}}]"),
            vec!["spec.transforms[1].name: transform name \"a\" is used twice"]
        );
        let errors = config_errors(
            "[{name: a, filter: {}, predicate: {topicNameMatches: {pattern: '(' }}}]",
        );
        assert!(
            errors[0].starts_with(
                "spec.transforms[0].predicate.topicNameMatches.pattern: invalid regular expression"
            ),
            "{errors:?}"
        );
        assert_eq!(
            config_errors("[{name: a, filter: {}, predicate: {}}]"),
            vec!["spec.transforms[0].predicate: needs exactly one of topicNameMatches, hasHeaderKey, recordIsTombstone"]
        );
    }

    #[test]
    fn errors_name_transform_and_record() {
        let c = chain("[{name: lift, extractField: {field: id}}]");
        let mut r = record("orders", SchemaAndValue::schemaless(Value::Int64(1)));
        r.partition = Some(3);
        r.offset = Some(42);
        let err = c.apply(r).unwrap_err();
        assert_eq!(err.transform, "lift");
        assert_eq!(err.coordinates, "orders/3/42");
        assert!(err
            .to_string()
            .starts_with("transform \"lift\" failed on record orders/3/42: "));
    }

    #[test]
    fn every_kind_builds() {
        let c = chain(
            r#"
- {name: cast, cast: {target: value, spec: [{field: id, type: int64}, {field: ok, type: boolean}]}}
- {name: castKey, cast: {target: key, spec: [{type: string}]}}
- {name: dropHeaders, dropHeaders: {headers: [trace, span]}}
- {name: extract, extractField: {target: key, field: id}}
- {name: unwrap, extractNewRecordState: {deleteHandlingMode: rewrite, addFields: [op, table]}}
- {name: filterTombstones, filter: {}, predicate: {recordIsTombstone: {}}}
- {name: filterUnless, filter: {}, predicate: {hasHeaderKey: {name: keep}}, negate: true}
- {name: flatten, flatten: {delimiter: _}}
- {name: headerFrom, headerFrom: {fields: [id], headers: [order-id], operation: copy}}
- {name: hoist, hoistField: {field: payload}}
- {name: insert, insertField: {topic: {field: t}, partition: {field: p}, offset: {field: o, required: true}, timestamp: {field: ts}, static: {field: src, value: shop}}}
- {name: insertHeader, insertHeader: {header: origin, valueLiteral: shop}}
- {name: mask, maskField: {fields: [card], replacement: "****"}}
- {name: route, regexRouter: {regex: "orders-(.*)", replacement: "$1-orders"}}
- {name: replace, replaceField: {exclude: [secret], renames: [{from: a, to: b}]}}
- {name: schemaName, setSchemaMetadata: {name: com.example.Order, version: 2}}
- {name: ts, timestampConverter: {field: created, targetType: string, format: "yyyy-MM-dd"}}
- {name: tsRoute, timestampRouter: {topicFormat: "${topic}-${timestamp}", timestampFormat: yyyyMMdd}}
- {name: toKey, valueToKey: {fields: [id]}, predicate: {topicNameMatches: {pattern: "orders.*"}}}
"#,
        );
        assert_eq!(c.steps.len(), TRANSFORM_KINDS.len() + 2);
    }

    #[test]
    fn odd_records_never_panic() {
        use crate::convert::RecordConverters;
        let chains = [
            "[{name: a, cast: {spec: [{field: a, type: int8}, {field: d, type: string}, {field: m, type: float32}]}}, {name: b, flatten: {}}, {name: c, maskField: {fields: [a, m, d]}}]",
            "[{name: a, cast: {spec: [{type: boolean}]}}]",
            "[{name: a, extractField: {field: a}}, {name: b, hoistField: {field: x}}, {name: c, valueToKey: {fields: [x]}}]",
            "[{name: a, headerFrom: {fields: [a, m], headers: [h1, h2], operation: move}}, {name: b, replaceField: {renames: [{from: d, to: e}]}}]",
            "[{name: a, insertField: {topic: {field: t}, timestamp: {field: ts}, offset: {field: o}}}, {name: b, setSchemaMetadata: {name: n}}]",
            "[{name: a, timestampConverter: {field: a, targetType: string, format: yyyy}}, {name: b, timestampConverter: {targetType: Date}}]",
            "[{name: a, timestampRouter: {}}, {name: b, regexRouter: {regex: '(.*)', replacement: '$1-x'}}, {name: c, insertHeader: {header: h, valueLiteral: '[1,2'}}]",
        ];
        let chains: Vec<TransformChain> = chains.iter().map(|c| chain(c)).collect();
        let converters: Vec<RecordConverters> = [
            "{key: {json: {schemas: true}}, value: {json: {schemas: true}}}",
            "{key: {json: {schemas: false}}, value: {json: {schemas: false}}}",
        ]
        .iter()
        .map(|y| RecordConverters::from_spec(Some(&serde_yaml::from_str(y).unwrap())).unwrap())
        .collect();
        let mut tried = 0;
        for bytes in crate::convert::tests::odd_inputs(2000) {
            for conv in &converters {
                let raw = crate::record::RawRecord {
                    topic: "t".into(),
                    offset: Some(1),
                    timestamp: Some(-5),
                    key: Some(bytes.clone()),
                    value: Some(bytes.clone()),
                    ..Default::default()
                };
                let Ok(record) = conv.decode(raw) else {
                    continue;
                };
                for c in &chains {
                    tried += 1;
                    if let Ok(Some(out)) = c.apply(record.clone()) {
                        let _ = conv.encode(&out);
                    }
                }
            }
        }
        assert!(tried > 1000, "only {tried} records were readable");
    }

    #[test]
    fn errors_name_the_topic_the_record_was_read_from() {
        let c = chain(
            "[{name: route, regexRouter: {regex: 'orders', replacement: renamed}}, {name: lift, extractField: {field: id}}]",
        );
        let mut r = record("orders", SchemaAndValue::schemaless(Value::Int64(1)));
        r.partition = Some(0);
        r.offset = Some(5);
        assert_eq!(c.apply(r).unwrap_err().coordinates, "orders/0/5");
    }

    #[test]
    fn chain_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<TransformChain>();
        check::<crate::convert::RecordConverters>();
    }
}

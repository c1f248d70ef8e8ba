//! `ExtractNewRecordState`, Debezium's "unwrap": a change event becomes the row after the
//! change, with Debezium's semantics for tombstones, deletes, added fields and headers.
//!
//! Both schema'd events (a struct with fields `before`, `after`, `source`, `op`) and
//! schemaless ones (a map with the same keys, as the JSON converter reads them without
//! schemas) are unwrapped. Other records pass unchanged, as in Debezium.

use ferry_crds::pipeline::{DeleteHandlingMode, ExtractNewRecordStateSpec};

use super::Failure;
use crate::config_error::ConfigError;
use crate::data::{Field, Schema, SchemaAndValue, SchemaType, Value};
use crate::record::{Header, Record};

/// Name of the field `deleteHandlingMode: rewrite` adds.
pub(crate) const DELETED_FIELD: &str = "__deleted";
/// Default prefix of added fields and headers.
const DEFAULT_PREFIX: &str = "__";
/// Fields of the envelope itself; other names are looked up in `source`.
const ENVELOPE_FIELDS: &[&str] = &["op", "ts_ms", "ts_us", "ts_ns", "transaction"];

/// One field of the change event to copy: where it is, and the name it gets.
#[derive(Clone, Debug)]
struct FieldRef {
    /// Whether the field is one of `source` (else a top-level envelope field).
    in_source: bool,
    field: String,
    target: String,
}

impl FieldRef {
    fn parse(text: &str, prefix: &str) -> Result<Self, String> {
        let text = text.trim();
        let (in_source, field) = match text.strip_prefix("source.") {
            Some(f) => (true, f),
            None => (!ENVELOPE_FIELDS.contains(&text), text),
        };
        if field.is_empty() || field.contains('.') {
            return Err(format!(
                "{text:?} is not a change event field: use op, ts_ms, or a field of source such as table, lsn or source.ts_ms"
            ));
        }
        Ok(FieldRef {
            in_source,
            field: field.to_string(),
            target: format!("{prefix}{}", text.replace('.', "_")),
        })
    }

    /// The field's schema (when the event has one) and value.
    fn read(&self, event: &Event<'_>) -> (Option<Schema>, Value) {
        let (schema, value) = if self.in_source {
            match event.get("source") {
                (s, Some(v)) => (s, v),
                _ => return (None, Value::Null),
            }
        } else {
            return match event.get(&self.field) {
                (s, Some(v)) => (s.map(optional), v.clone()),
                (s, None) => (s.map(optional), Value::Null),
            };
        };
        match (schema, value) {
            (Some(s), Value::Struct(values)) => match s.field(&self.field) {
                Some((i, f)) => (
                    Some(optional(&f.schema)),
                    values.get(i).cloned().unwrap_or(Value::Null),
                ),
                None => (None, Value::Null),
            },
            (_, v @ Value::Map(_)) => {
                (None, v.map_get(&self.field).cloned().unwrap_or(Value::Null))
            }
            _ => (None, Value::Null),
        }
    }
}

fn optional(s: &Schema) -> Schema {
    s.clone().into_optional()
}

/// A change event: its schema (schema'd events) and value.
struct Event<'a> {
    schema: Option<&'a Schema>,
    value: &'a Value,
}

impl<'a> Event<'a> {
    /// Reads a record value as a change event; `None` when it is not one.
    fn read(v: &'a SchemaAndValue) -> Option<Self> {
        let is_event = match (&v.schema, &v.value) {
            (Some(s), Value::Struct(_)) => {
                s.schema_type == SchemaType::Struct
                    && s.field("op").is_some()
                    && s.field("after").is_some()
                    && s.field("before").is_some()
            }
            (None, m @ Value::Map(_)) => m.map_get("op").is_some() && m.map_get("after").is_some(),
            _ => false,
        };
        is_event.then_some(Event {
            schema: v.schema.as_deref(),
            value: &v.value,
        })
    }

    /// A top-level field: its schema and value.
    fn get(&self, name: &str) -> (Option<&'a Schema>, Option<&'a Value>) {
        match (self.schema, self.value) {
            (Some(s), Value::Struct(values)) => match s.field(name) {
                Some((i, f)) => (Some(&f.schema), values.get(i)),
                None => (None, None),
            },
            (None, m) => (None, m.map_get(name)),
            _ => (None, None),
        }
    }

    fn op(&self) -> Option<&'a str> {
        match self.get("op").1 {
            Some(Value::String(s)) => Some(s.as_str()),
            _ => None,
        }
    }
}

/// `ExtractNewRecordState`.
#[derive(Clone, Debug)]
pub(crate) struct ExtractNewRecordState {
    drop_tombstones: bool,
    delete_mode: DeleteHandlingMode,
    fields: Vec<FieldRef>,
    headers: Vec<FieldRef>,
}

impl ExtractNewRecordState {
    /// Builds the transform from its spec; problems are reported under `path`.
    pub(crate) fn new(
        spec: &ExtractNewRecordStateSpec,
        path: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Self> {
        let before = errors.len();
        let mut parse = |list: &[String], prefix: Option<&str>, name: &str| -> Vec<FieldRef> {
            let prefix = prefix.unwrap_or(DEFAULT_PREFIX);
            let mut out = Vec::new();
            for (i, text) in list.iter().enumerate() {
                match FieldRef::parse(text, prefix) {
                    Ok(f) => out.push(f),
                    Err(e) => errors.push(ConfigError::new(format!("{path}.{name}[{i}]"), e)),
                }
            }
            out
        };
        let fields = parse(
            &spec.add_fields,
            spec.add_fields_prefix.as_deref(),
            "addFields",
        );
        let headers = parse(
            &spec.add_headers,
            spec.add_headers_prefix.as_deref(),
            "addHeaders",
        );
        (errors.len() == before).then(|| ExtractNewRecordState {
            drop_tombstones: spec.drop_tombstones.unwrap_or(true),
            delete_mode: spec.delete_handling_mode.unwrap_or_default(),
            fields,
            headers,
        })
    }

    /// Applies the transform to one record; `Ok(None)` drops it.
    pub(crate) fn apply(&self, mut record: Record) -> Result<Option<Record>, Failure> {
        if record.value.value.is_null() {
            return Ok((!self.drop_tombstones).then_some(record));
        }
        let Some(event) = Event::read(&record.value) else {
            return Ok(Some(record));
        };
        let deleted = event.op() == Some("d");
        if deleted {
            match self.delete_mode {
                DeleteHandlingMode::Drop => return Ok(None),
                DeleteHandlingMode::None => {
                    let headers = self.header_values(&event);
                    record.headers.extend(headers);
                    record.value = SchemaAndValue::null();
                    return Ok(Some(record));
                }
                DeleteHandlingMode::Rewrite => {}
            }
        }
        let row_field = if deleted { "before" } else { "after" };
        let (row_schema, row) = event.get(row_field);
        let Some(row) = row.filter(|r| !r.is_null()) else {
            if deleted {
                // A delete without its old row (replica identity without the columns).
                return Err(
                    "a delete event without \"before\" cannot be rewritten: give the table REPLICA IDENTITY FULL or use deleteHandlingMode drop or none"
                        .into(),
                );
            }
            return Err(format!("the change event has no {row_field:?} row"));
        };
        let mut added: Vec<(String, Option<Schema>, Value)> = self
            .fields
            .iter()
            .map(|f| {
                let (s, v) = f.read(&event);
                (f.target.clone(), s, v)
            })
            .collect();
        if self.delete_mode == DeleteHandlingMode::Rewrite {
            added.push((
                DELETED_FIELD.to_string(),
                Some(Schema::new(SchemaType::String).into_optional()),
                Value::String(deleted.to_string()),
            ));
        }
        let headers = self.header_values(&event);
        let value = match (row_schema, row) {
            (Some(schema), Value::Struct(values)) => {
                let mut schema = schema.clone();
                let mut values = values.clone();
                for (name, s, v) in added {
                    if schema.field(&name).is_some() {
                        return Err(format!(
                            "the row already has a field {name:?}: choose another addFieldsPrefix"
                        ));
                    }
                    schema.fields.push(Field {
                        name,
                        schema: s
                            .unwrap_or_else(|| Schema::new(SchemaType::String).into_optional()),
                    });
                    values.push(v);
                }
                SchemaAndValue::new(schema, Value::Struct(values))
            }
            (None, Value::Map(entries)) => {
                let mut entries = entries.clone();
                for (name, _, v) in added {
                    entries.retain(|(k, _)| !matches!(k, Value::String(s) if *s == name));
                    entries.push((Value::String(name), v));
                }
                SchemaAndValue::schemaless(Value::Map(entries))
            }
            (_, other) => {
                return Err(format!(
                    "the {row_field:?} row is a {}, not a struct or map",
                    other.type_name()
                ))
            }
        };
        record.headers.extend(headers);
        record.value = value;
        Ok(Some(record))
    }

    fn header_values(&self, event: &Event<'_>) -> Vec<Header> {
        self.headers
            .iter()
            .map(|h| {
                let (schema, value) = h.read(event);
                Header {
                    key: h.target.clone(),
                    value: SchemaAndValue {
                        schema: schema.map(Into::into),
                        value,
                    },
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transform(yaml: &str) -> ExtractNewRecordState {
        let spec: ExtractNewRecordStateSpec = serde_yaml::from_str(yaml).unwrap();
        let mut errors = Vec::new();
        let t = ExtractNewRecordState::new(&spec, "t", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        t.unwrap()
    }

    fn row_schema() -> Schema {
        Schema::structure(vec![
            ("id", Schema::new(SchemaType::Int32)),
            ("name", Schema::new(SchemaType::String).into_optional()),
        ])
        .with_name("shop.public.users.Value")
        .into_optional()
    }

    /// A schema'd change event as the postgresCdc source writes it.
    fn event(op: &str, before: Option<(i32, &str)>, after: Option<(i32, &str)>) -> Record {
        let source = Schema::structure(vec![
            ("table", Schema::new(SchemaType::String)),
            ("lsn", Schema::new(SchemaType::Int64).into_optional()),
        ]);
        let schema = Schema::structure(vec![
            ("before", row_schema()),
            ("after", row_schema()),
            ("source", source),
            ("op", Schema::new(SchemaType::String)),
            ("ts_ms", Schema::new(SchemaType::Int64).into_optional()),
        ]);
        let row = |r: Option<(i32, &str)>| match r {
            Some((id, name)) => Value::Struct(vec![Value::Int32(id), Value::String(name.into())]),
            None => Value::Null,
        };
        let mut rec = Record::new("shop.public.users");
        rec.value = SchemaAndValue::new(
            schema,
            Value::Struct(vec![
                row(before),
                row(after),
                Value::Struct(vec![Value::String("users".into()), Value::Int64(42)]),
                Value::String(op.into()),
                Value::Int64(1000),
            ]),
        );
        rec
    }

    fn fields(r: &Record) -> Vec<String> {
        r.value
            .schema
            .as_ref()
            .unwrap()
            .fields
            .iter()
            .map(|f| f.name.clone())
            .collect()
    }

    #[test]
    fn creates_and_updates_become_the_row_after() {
        let t = transform("{}");
        let out = t
            .apply(event("u", Some((1, "a")), Some((1, "b"))))
            .unwrap()
            .unwrap();
        assert_eq!(fields(&out), ["id", "name"]);
        assert_eq!(
            out.value.value,
            Value::Struct(vec![Value::Int32(1), Value::String("b".into())])
        );
        assert_eq!(
            out.value.schema.as_ref().unwrap().name.as_deref(),
            Some("shop.public.users.Value")
        );
    }

    #[test]
    fn deletes_and_tombstones_follow_the_modes() {
        let del = || event("d", Some((7, "x")), None);
        let mut tomb = Record::new("shop.public.users");
        tomb.key = SchemaAndValue::schemaless(Value::Int32(7));
        assert!(transform("{}").apply(del()).unwrap().is_none());
        assert!(transform("{}").apply(tomb.clone()).unwrap().is_none());
        let kept = transform("{dropTombstones: false}")
            .apply(tomb)
            .unwrap()
            .unwrap();
        assert!(kept.value.value.is_null());
        let none = transform("{deleteHandlingMode: none}")
            .apply(del())
            .unwrap()
            .unwrap();
        assert!(none.value.value.is_null() && none.value.schema.is_none());
        let rewrite = transform("{deleteHandlingMode: rewrite}");
        let out = rewrite.apply(del()).unwrap().unwrap();
        assert_eq!(fields(&out), ["id", "name", "__deleted"]);
        assert_eq!(
            out.value.value,
            Value::Struct(vec![
                Value::Int32(7),
                Value::String("x".into()),
                Value::String("true".into())
            ])
        );
        let created = rewrite
            .apply(event("c", None, Some((8, "y"))))
            .unwrap()
            .unwrap();
        assert_eq!(
            created.value.value,
            Value::Struct(vec![
                Value::Int32(8),
                Value::String("y".into()),
                Value::String("false".into())
            ])
        );
        let err = rewrite.apply(event("d", None, None)).unwrap_err();
        assert!(err.contains("REPLICA IDENTITY FULL"), "{err}");
    }

    #[test]
    fn added_fields_and_headers_are_prefixed() {
        let t = transform("{addFields: [op, table, source.lsn, ts_ms], addHeaders: [op], addHeadersPrefix: 'dbz.'}");
        let out = t.apply(event("c", None, Some((1, "a")))).unwrap().unwrap();
        assert_eq!(
            fields(&out),
            ["id", "name", "__op", "__table", "__source_lsn", "__ts_ms"]
        );
        let Value::Struct(values) = &out.value.value else {
            panic!("not a struct")
        };
        assert_eq!(values[2], Value::String("c".into()));
        assert_eq!(values[3], Value::String("users".into()));
        assert_eq!(values[4], Value::Int64(42));
        assert_eq!(values[5], Value::Int64(1000));
        assert_eq!(out.headers.len(), 1);
        assert_eq!(out.headers[0].key, "dbz.op");
        assert_eq!(out.headers[0].value.value, Value::String("c".into()));
        out.value
            .schema
            .as_ref()
            .unwrap()
            .validate(&out.value.value)
            .unwrap();
    }

    #[test]
    fn schemaless_events_unwrap_and_other_records_pass() {
        let t = transform("{addFields: [op]}");
        let map = |pairs: Vec<(&str, Value)>| {
            Value::Map(
                pairs
                    .into_iter()
                    .map(|(k, v)| (Value::String(k.into()), v))
                    .collect(),
            )
        };
        let mut r = Record::new("t");
        r.value = SchemaAndValue::schemaless(map(vec![
            ("before", Value::Null),
            ("after", map(vec![("id", Value::Int64(3))])),
            ("op", Value::String("r".into())),
        ]));
        let out = t.apply(r).unwrap().unwrap();
        assert_eq!(
            out.value.value,
            map(vec![
                ("id", Value::Int64(3)),
                ("__op", Value::String("r".into()))
            ])
        );
        let mut plain = Record::new("t");
        plain.value = SchemaAndValue::schemaless(map(vec![("id", Value::Int64(3))]));
        assert_eq!(t.apply(plain.clone()).unwrap().unwrap(), plain);
    }

    #[test]
    fn bad_field_names_are_config_errors() {
        let spec: ExtractNewRecordStateSpec =
            serde_yaml::from_str("{addFields: [op, source.a.b], addHeaders: ['']}").unwrap();
        let mut errors = Vec::new();
        assert!(ExtractNewRecordState::new(&spec, "p", &mut errors).is_none());
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["p.addFields[1]", "p.addHeaders[0]"]);
    }
}

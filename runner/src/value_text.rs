//! Records the built-in plugins create, and the text form of a value that the `file` sink
//! writes: strings as they are, bytes as UTF-8, null as nothing, everything else as JSON
//! (struct fields by name, maps with string keys as objects, other maps as `[key, value]`
//! pairs, decimals as strings, dates/times/timestamps as their Connect numbers).

use crate::data::{Schema, SchemaAndValue, SchemaType, Value};
use crate::record::Record;

/// The text of a value.
pub fn value_text(v: &SchemaAndValue) -> String {
    match &v.value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        other => to_json(other, v.schema.as_deref()).to_string(),
    }
}

/// A value as JSON.
pub fn to_json(v: &Value, schema: Option<&Schema>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Int8(x) => J::from(*x),
        Value::Int16(x) => J::from(*x),
        Value::Int32(x) => J::from(*x),
        Value::Int64(x) => J::from(*x),
        Value::Float32(x) => serde_json::Number::from_f64(f64::from(*x)).map_or(J::Null, J::Number),
        Value::Float64(x) => serde_json::Number::from_f64(*x).map_or(J::Null, J::Number),
        Value::Boolean(b) => J::Bool(*b),
        Value::String(s) => J::String(s.clone()),
        Value::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        Value::Array(items) => {
            let element = schema.and_then(|s| s.value_schema.as_deref());
            J::Array(items.iter().map(|i| to_json(i, element)).collect())
        }
        Value::Map(entries) => {
            let (ks, vs) = match schema {
                Some(s) => (s.key_schema.as_deref(), s.value_schema.as_deref()),
                None => (None, None),
            };
            if entries.iter().all(|(k, _)| matches!(k, Value::String(_))) {
                J::Object(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            let key = match k {
                                Value::String(s) => s.clone(),
                                _ => String::new(),
                            };
                            (key, to_json(v, vs))
                        })
                        .collect(),
                )
            } else {
                J::Array(
                    entries
                        .iter()
                        .map(|(k, v)| J::Array(vec![to_json(k, ks), to_json(v, vs)]))
                        .collect(),
                )
            }
        }
        Value::Struct(values) => {
            let fields = schema.map(|s| s.fields.as_slice()).unwrap_or_default();
            J::Object(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match fields.get(i) {
                        Some(f) => (f.name.clone(), to_json(v, Some(&f.schema))),
                        None => (format!("field{i}"), to_json(v, None)),
                    })
                    .collect(),
            )
        }
        Value::Decimal(d) => J::String(d.to_string()),
        Value::Date(d) => J::from(*d),
        Value::Time(t) => J::from(*t),
        Value::Timestamp(t) => J::from(*t),
    }
}

/// A record whose value is a string (the `file` source's lines; Connect's FileStreamSource
/// uses the same required string schema).
pub fn string_record(topic: &str, partition: Option<i32>, line: String) -> Record {
    let mut r = Record::new(topic);
    r.partition = partition;
    r.value = SchemaAndValue::new(Schema::new(SchemaType::String), Value::String(line));
    r
}

/// The schema of a `datagen` value.
pub fn datagen_schema() -> Schema {
    Schema::structure(vec![
        ("seq", Schema::new(SchemaType::Int64)),
        ("key", Schema::new(SchemaType::String)),
        ("payload", Schema::new(SchemaType::String)),
    ])
    .with_name("ferry.datagen.Record")
}

/// A `datagen` record: string key, struct value `{seq, key, payload}`.
pub fn datagen_record(topic: &str, seq: u64, key: &str, payload: String) -> Record {
    let mut r = Record::new(topic);
    r.key = SchemaAndValue::new(
        Schema::new(SchemaType::String),
        Value::String(key.to_string()),
    );
    r.value = SchemaAndValue::new(
        datagen_schema(),
        Value::Struct(vec![
            Value::Int64(i64::try_from(seq).unwrap_or(i64::MAX)),
            Value::String(key.to_string()),
            Value::String(payload),
        ]),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms() {
        assert_eq!(
            value_text(&SchemaAndValue::schemaless(Value::String("a b".into()))),
            "a b"
        );
        assert_eq!(value_text(&SchemaAndValue::null()), "");
        assert_eq!(
            value_text(&SchemaAndValue::schemaless(Value::Bytes(b"raw".to_vec()))),
            "raw"
        );
        let r = datagen_record("t", 3, "key-1", "xy".into());
        assert_eq!(
            value_text(&r.value),
            r#"{"key":"key-1","payload":"xy","seq":3}"#
        );
        let m = Value::Map(vec![(Value::Int32(1), Value::Boolean(true))]);
        assert_eq!(value_text(&SchemaAndValue::schemaless(m)), "[[1,true]]");
    }
}

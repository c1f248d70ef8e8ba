//! Transforms on headers: `DropHeaders`, `HeaderFrom`, `InsertHeader`.

use super::{
    field_value, map_entry, not_a_map, not_a_struct, operating, require_names, struct_with_basics,
    Failure,
};
use crate::config_error::ConfigError;
use crate::data::values::parse_string;
use crate::data::{SchemaAndValue, Value};
use crate::record::{Header, Record};
use ferry_crds::pipeline::{
    DropHeadersSpec, HeaderFromOperation, HeaderFromSpec, InsertHeaderSpec, Target,
};

/// `DropHeaders`.
#[derive(Clone, Debug)]
pub(crate) struct DropHeaders {
    headers: Vec<String>,
}

impl DropHeaders {
    /// Builds the transform from its spec; problems are reported under `path`.
    pub(crate) fn new(
        spec: &DropHeadersSpec,
        path: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Self> {
        if spec.headers.is_empty() {
            errors.push(ConfigError::new(
                format!("{path}.headers"),
                "must name at least one header",
            ));
            return None;
        }
        Some(DropHeaders {
            headers: spec.headers.clone(),
        })
    }

    /// Applies the transform to one record.
    pub(crate) fn apply(&self, mut record: Record) -> Record {
        record.headers.retain(|h| !self.headers.contains(&h.key));
        record
    }
}

/// `HeaderFrom`.
#[derive(Clone, Debug)]
pub(crate) struct HeaderFrom {
    target: Target,
    fields: Vec<String>,
    headers: Vec<String>,
    operation: HeaderFromOperation,
    replace_null_with_default: bool,
}

impl HeaderFrom {
    /// Builds the transform from its spec; problems are reported under `path`.
    pub(crate) fn new(
        spec: &HeaderFromSpec,
        path: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Self> {
        if !require_names(&spec.fields, &format!("{path}.fields"), errors) {
            return None;
        }
        if spec.headers.len() != spec.fields.len() {
            errors.push(ConfigError::new(
                format!("{path}.headers"),
                format!(
                    "needs one header per field: {} fields, {} headers",
                    spec.fields.len(),
                    spec.headers.len()
                ),
            ));
            return None;
        }
        Some(HeaderFrom {
            target: spec.target,
            fields: spec.fields.clone(),
            headers: spec.headers.clone(),
            operation: spec.operation,
            replace_null_with_default: spec.replace_null_with_default.unwrap_or(true),
        })
    }

    /// Applies the transform to one record.
    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let purpose = "copying fields to headers";
        let part = operating(&mut record, self.target);
        let mut new_headers = Vec::with_capacity(self.fields.len());
        match &part.schema {
            None => {
                let Value::Map(entries) = &part.value else {
                    return Err(not_a_map(&part.value, purpose));
                };
                for (field, header) in self.fields.iter().zip(&self.headers) {
                    let v = map_entry(entries, field).cloned().unwrap_or(Value::Null);
                    new_headers.push(Header {
                        key: header.clone(),
                        value: SchemaAndValue::schemaless(v),
                    });
                }
                if self.operation == HeaderFromOperation::Move {
                    if let Value::Map(entries) = &mut part.value {
                        entries.retain(
                            |(k, _)| !matches!(k, Value::String(s) if self.fields.contains(s)),
                        );
                    }
                }
            }
            Some(schema) => {
                let Value::Struct(values) = &part.value else {
                    return Err(not_a_struct(schema, &part.value, purpose));
                };
                for (field, header) in self.fields.iter().zip(&self.headers) {
                    let Some((i, f)) = schema.field(field) else {
                        return Err(format!("field {field:?} does not exist"));
                    };
                    new_headers.push(Header {
                        key: header.clone(),
                        value: SchemaAndValue {
                            schema: Some(f.schema.clone().into()),
                            value: field_value(schema, values, i, self.replace_null_with_default),
                        },
                    });
                }
                if self.operation == HeaderFromOperation::Move {
                    let mut updated = struct_with_basics(schema);
                    let mut kept = Vec::new();
                    for (i, f) in schema.fields.iter().enumerate() {
                        if !self.fields.contains(&f.name) {
                            updated.fields.push(f.clone());
                            kept.push(field_value(
                                schema,
                                values,
                                i,
                                self.replace_null_with_default,
                            ));
                        }
                    }
                    part.schema = Some(updated.into());
                    part.value = Value::Struct(kept);
                }
            }
        }
        record.headers.extend(new_headers);
        Ok(record)
    }
}

/// `InsertHeader`.
#[derive(Clone, Debug)]
pub(crate) struct InsertHeader {
    header: String,
    value: SchemaAndValue,
}

impl InsertHeader {
    /// Builds the transform from its spec; problems are reported under `path`.
    pub(crate) fn new(
        spec: &InsertHeaderSpec,
        path: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Self> {
        if spec.header.is_empty() {
            errors.push(ConfigError::new(
                format!("{path}.header"),
                "must not be empty",
            ));
            return None;
        }
        Some(InsertHeader {
            header: spec.header.clone(),
            value: parse_string(&spec.value_literal),
        })
    }

    /// Applies the transform to one record.
    pub(crate) fn apply(&self, mut record: Record) -> Record {
        record.headers.push(Header {
            key: self.header.clone(),
            value: self.value.clone(),
        });
        record
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::data::{Schema, SchemaType};

    fn header(key: &str, v: Value) -> Header {
        Header {
            key: key.into(),
            value: SchemaAndValue::schemaless(v),
        }
    }

    #[test]
    fn drop_headers_removes_every_match() {
        let c = chain("[{name: d, dropHeaders: {headers: [a, c]}}]");
        let mut r = record("t", SchemaAndValue::null());
        r.headers = vec![
            header("a", Value::Int64(1)),
            header("b", Value::Int64(2)),
            header("a", Value::Int64(3)),
        ];
        let out = c.apply(r).unwrap().unwrap();
        assert_eq!(out.headers, vec![header("b", Value::Int64(2))]);
    }

    #[test]
    fn header_from_move_and_copy() {
        let c =
            chain("[{name: h, headerFrom: {fields: [id], headers: [orderId], operation: move}}]");
        let schema = Schema::structure(vec![
            ("id", Schema::new(SchemaType::Int64)),
            ("x", Schema::new(SchemaType::String)),
        ]);
        let value = Value::Struct(vec![Value::Int64(5), Value::String("y".into())]);
        let out = c
            .apply(record("t", SchemaAndValue::new(schema, value)))
            .unwrap()
            .unwrap();
        assert_eq!(
            out.value.value,
            Value::Struct(vec![Value::String("y".into())])
        );
        assert_eq!(out.headers[0].key, "orderId");
        assert_eq!(
            out.headers[0].value,
            SchemaAndValue::new(Schema::new(SchemaType::Int64), Value::Int64(5))
        );
        let copy =
            chain("[{name: h, headerFrom: {fields: [id], headers: [orderId], operation: copy}}]");
        let value = map(&[("id", Value::Int64(5))]);
        let out = copy
            .apply(record("t", SchemaAndValue::schemaless(value.clone())))
            .unwrap()
            .unwrap();
        assert_eq!(out.value.value, value);
        assert_eq!(out.headers, vec![header("orderId", Value::Int64(5))]);
        assert_eq!(
            config_errors("[{name: h, headerFrom: {fields: [a, b], headers: [x], operation: copy}}]"),
            vec!["spec.transforms[0].headerFrom.headers: needs one header per field: 2 fields, 1 headers"]
        );
    }

    #[test]
    fn insert_header_parses_the_literal() {
        let c = chain("[{name: i, insertHeader: {header: h, valueLiteral: '42'}}]");
        let out = c
            .apply(record("t", SchemaAndValue::null()))
            .unwrap()
            .unwrap();
        assert_eq!(out.headers[0].value.value, Value::Int8(42));
        let c = chain("[{name: i, insertHeader: {header: h, valueLiteral: 'from ferry'}}]");
        let out = c
            .apply(record("t", SchemaAndValue::null()))
            .unwrap()
            .unwrap();
        assert_eq!(
            out.headers[0].value.value,
            Value::String("from ferry".into())
        );
    }
}

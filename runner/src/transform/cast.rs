//! `Cast`: change the type of the whole key/value or of top-level fields.

use super::{field_value, not_a_map, not_a_struct, operating, struct_with_basics, Failure};
use crate::config_error::ConfigError;
use crate::data::values::{java_double_to_string, java_float_to_string};
use crate::data::{Field, LogicalType, Schema, SchemaType, Value};
use crate::record::Record;
use base64::Engine;
use ferry_crds::pipeline::{CastSpec, CastType, Target};

const PURPOSE: &str = "cast";

/// `Cast`: the whole key/value (`whole`) or top-level fields (`fields`) to a new type.
#[derive(Clone, Debug)]
pub(crate) struct Cast {
    target: Target,
    whole: Option<SchemaType>,
    fields: Vec<(String, SchemaType)>,
    replace_null_with_default: bool,
}

fn schema_type(t: CastType) -> SchemaType {
    match t {
        CastType::Int8 => SchemaType::Int8,
        CastType::Int16 => SchemaType::Int16,
        CastType::Int32 => SchemaType::Int32,
        CastType::Int64 => SchemaType::Int64,
        CastType::Float32 => SchemaType::Float32,
        CastType::Float64 => SchemaType::Float64,
        CastType::Boolean => SchemaType::Boolean,
        CastType::String => SchemaType::String,
    }
}

impl Cast {
    /// Builds the transform from its spec; problems are reported under `path`.
    pub(crate) fn new(spec: &CastSpec, path: &str, errors: &mut Vec<ConfigError>) -> Option<Self> {
        if spec.spec.is_empty() {
            errors.push(ConfigError::new(
                format!("{path}.spec"),
                "must have one entry without field (cast the whole key/value) or entries with fields",
            ));
            return None;
        }
        let whole_entries = spec.spec.iter().filter(|e| e.field.is_none()).count();
        if whole_entries > 0 && spec.spec.len() > 1 {
            errors.push(ConfigError::new(
                format!("{path}.spec"),
                "an entry without field casts the whole key/value and must be the only entry",
            ));
            return None;
        }
        let mut fields: Vec<(String, SchemaType)> = Vec::new();
        for (i, entry) in spec.spec.iter().enumerate() {
            if let Some(field) = &entry.field {
                if field.is_empty() {
                    errors.push(ConfigError::new(
                        format!("{path}.spec[{i}].field"),
                        "must not be empty (omit it to cast the whole key/value)",
                    ));
                    return None;
                }
                if fields.iter().any(|(f, _)| f == field) {
                    errors.push(ConfigError::new(
                        format!("{path}.spec[{i}].field"),
                        format!("field {field:?} is cast twice"),
                    ));
                    return None;
                }
                fields.push((field.clone(), schema_type(entry.to)));
            }
        }
        Some(Cast {
            target: spec.target,
            whole: if whole_entries == 1 {
                Some(schema_type(spec.spec[0].to))
            } else {
                None
            },
            fields,
            replace_null_with_default: spec.replace_null_with_default.unwrap_or(true),
        })
    }

    fn cast_of(&self, field: &str) -> Option<SchemaType> {
        self.fields
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, t)| *t)
    }

    /// Applies the transform to one record.
    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let part = operating(&mut record, self.target);
        if part.value.is_null() {
            return Ok(record);
        }
        match part.schema.take() {
            None => {
                if let Some(to) = self.whole {
                    part.value = cast_value(None, &part.value, to)?;
                    return Ok(record);
                }
                if !matches!(part.value, Value::Map(_)) {
                    return Err(not_a_map(&part.value, PURPOSE));
                }
                // Every cast field is set, to null when absent (as Connect's map put).
                for (name, to) in &self.fields {
                    let current = part.value.map_get(name).cloned().unwrap_or(Value::Null);
                    let cast = cast_value(None, &current, *to)
                        .map_err(|e| format!("field {name:?}: {e}"))?;
                    if let Value::Map(entries) = &mut part.value {
                        super::map_put(entries, name, cast);
                    }
                }
                Ok(record)
            }
            Some(schema) => {
                if let Some(to) = self.whole {
                    let mut updated = Schema {
                        optional: schema.optional,
                        ..struct_with_basics(&schema)
                    };
                    updated.schema_type = to;
                    if let Some(default) = &schema.default {
                        updated.default = Some(Box::new(cast_value(Some(&schema), default, to)?));
                    }
                    part.value = cast_value(Some(&schema), &part.value, to)?;
                    part.schema = Some(updated.into());
                    return Ok(record);
                }
                let Value::Struct(values) = &part.value else {
                    let err = not_a_struct(&schema, &part.value, PURPOSE);
                    part.schema = Some(schema);
                    return Err(err);
                };
                let mut updated = Schema {
                    optional: schema.optional,
                    default: schema.default.clone(),
                    ..struct_with_basics(&schema)
                };
                let mut new_values = Vec::with_capacity(values.len());
                for (i, field) in schema.fields.iter().enumerate() {
                    let original = field_value(&schema, values, i, self.replace_null_with_default);
                    match self.cast_of(&field.name) {
                        Some(to) => {
                            let mut field_schema = Schema::new(to);
                            field_schema.optional = field.schema.optional;
                            if let Some(default) = &field.schema.default {
                                field_schema.default = Some(Box::new(
                                    cast_value(Some(&field.schema), default, to)
                                        .map_err(|e| format!("field {:?}: {e}", field.name))?,
                                ));
                            }
                            updated.fields.push(Field {
                                name: field.name.clone(),
                                schema: field_schema,
                            });
                            new_values.push(
                                cast_value(Some(&field.schema), &original, to)
                                    .map_err(|e| format!("field {:?}: {e}", field.name))?,
                            );
                        }
                        None => {
                            updated.fields.push(field.clone());
                            new_values.push(original);
                        }
                    }
                }
                if updated.default.is_some() {
                    // The struct default has the old field types; Connect casts it too.
                    if let Some(Value::Struct(dv)) = schema.default.as_deref() {
                        let mut cast_default = Vec::with_capacity(dv.len());
                        for (field, v) in schema.fields.iter().zip(dv) {
                            cast_default.push(match self.cast_of(&field.name) {
                                Some(to) => cast_value(Some(&field.schema), v, to)?,
                                None => v.clone(),
                            });
                        }
                        updated.default = Some(Box::new(Value::Struct(cast_default)));
                    }
                }
                part.value = Value::Struct(new_values);
                part.schema = Some(updated.into());
                Ok(record)
            }
        }
    }
}

/// Connect's `Cast.castValueToType`.
fn cast_value(schema: Option<&Schema>, value: &Value, to: SchemaType) -> Result<Value, Failure> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let from = match schema {
        Some(s) => s.schema_type,
        None => value.inferred_type().ok_or_else(|| {
            format!(
                "cannot cast a schemaless {} value; Connect's data API has no type for it",
                value.type_name()
            )
        })?,
    };
    if !from.is_primitive() {
        return Err(format!(
            "cannot cast from {from}; supported types are int8, int16, int32, int64, float32, \
             float64, boolean, string, bytes"
        ));
    }
    let logical = schema.and_then(Schema::logical_type);
    if to == SchemaType::String {
        return Ok(Value::String(to_text(value)?));
    }
    // Date/Time/Timestamp cast as their int/long encoding.
    let encoded = match (logical, value) {
        (Some(LogicalType::Date), Value::Date(d)) => Value::Int32(*d),
        (Some(LogicalType::Time), Value::Time(t)) => Value::Int32(*t),
        (Some(LogicalType::Timestamp), Value::Timestamp(t)) => Value::Int64(*t),
        _ => value.clone(),
    };
    let number = Number::of(&encoded);
    let bad = || format!("cannot cast a {} value to {to}", encoded.type_name());
    Ok(match to {
        SchemaType::Int8 => Value::Int8(match (&number, &encoded) {
            (Some(n), _) => n.to_i64_wrapping_via_int() as i8,
            (None, Value::Boolean(b)) => i8::from(*b),
            (None, Value::String(s)) => {
                parse_java_int(s, i64::from(i8::MIN), i64::from(i8::MAX))? as i8
            }
            _ => return Err(bad()),
        }),
        SchemaType::Int16 => Value::Int16(match (&number, &encoded) {
            (Some(n), _) => n.to_i64_wrapping_via_int() as i16,
            (None, Value::Boolean(b)) => i16::from(*b),
            (None, Value::String(s)) => {
                parse_java_int(s, i64::from(i16::MIN), i64::from(i16::MAX))? as i16
            }
            _ => return Err(bad()),
        }),
        SchemaType::Int32 => Value::Int32(match (&number, &encoded) {
            (Some(n), _) => n.to_i64_wrapping_via_int() as i32,
            (None, Value::Boolean(b)) => i32::from(*b),
            (None, Value::String(s)) => {
                parse_java_int(s, i64::from(i32::MIN), i64::from(i32::MAX))? as i32
            }
            _ => return Err(bad()),
        }),
        SchemaType::Int64 => Value::Int64(match (&number, &encoded) {
            (Some(n), _) => n.to_i64(),
            (None, Value::Boolean(b)) => i64::from(*b),
            (None, Value::String(s)) => parse_java_int(s, i64::MIN, i64::MAX)?,
            _ => return Err(bad()),
        }),
        SchemaType::Float32 => Value::Float32(match (&number, &encoded) {
            (Some(n), _) => n.to_f32(),
            (None, Value::Boolean(b)) => f32::from(u8::from(*b)),
            (None, Value::String(s)) => parse_java_float(s)? as f32,
            _ => return Err(bad()),
        }),
        SchemaType::Float64 => Value::Float64(match (&number, &encoded) {
            (Some(n), _) => n.to_f64(),
            (None, Value::Boolean(b)) => f64::from(u8::from(*b)),
            (None, Value::String(s)) => parse_java_float(s)?,
            _ => return Err(bad()),
        }),
        SchemaType::Boolean => Value::Boolean(match (&number, &encoded) {
            (Some(n), _) => n.to_i64() != 0,
            (None, Value::Boolean(b)) => *b,
            (None, Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => return Err(bad()),
        }),
        _ => return Err(bad()),
    })
}

/// Connect's `Cast.castToString`.
fn to_text(value: &Value) -> Result<String, Failure> {
    Ok(match value {
        Value::Date(_) | Value::Time(_) | Value::Timestamp(_) => {
            crate::data::values::convert_to_string(None, value).map_err(|e| e.0)?
        }
        Value::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b),
        Value::String(s) => s.clone(),
        Value::Boolean(b) => b.to_string(),
        Value::Int8(v) => v.to_string(),
        Value::Int16(v) => v.to_string(),
        Value::Int32(v) => v.to_string(),
        Value::Int64(v) => v.to_string(),
        Value::Float32(v) => java_float_to_string(*v),
        Value::Float64(v) => java_double_to_string(*v),
        Value::Decimal(d) => d.to_java_string(),
        other => {
            return Err(format!(
                "cannot cast a {} value to string",
                other.type_name()
            ))
        }
    })
}

/// A Java `Number`, for its `byteValue()`/`intValue()`/... conversions.
enum Number {
    Int(i64),
    Float(f64),
    Decimal(crate::data::Decimal),
}

impl Number {
    fn of(v: &Value) -> Option<Number> {
        Some(match v {
            Value::Int8(x) => Number::Int(i64::from(*x)),
            Value::Int16(x) => Number::Int(i64::from(*x)),
            Value::Int32(x) => Number::Int(i64::from(*x)),
            Value::Int64(x) => Number::Int(*x),
            Value::Float32(x) => Number::Float(f64::from(*x)),
            Value::Float64(x) => Number::Float(*x),
            Value::Decimal(d) => Number::Decimal(d.clone()),
            _ => return None,
        })
    }

    /// `intValue()`-then-narrow semantics: floats saturate to int first.
    fn to_i64_wrapping_via_int(&self) -> i64 {
        match self {
            Number::Int(v) => *v,
            Number::Float(f) => i64::from(*f as i32),
            Number::Decimal(d) => d.to_i64_truncated(),
        }
    }

    fn to_i64(&self) -> i64 {
        match self {
            Number::Int(v) => *v,
            Number::Float(f) => *f as i64,
            Number::Decimal(d) => d.to_i64_truncated(),
        }
    }

    fn to_f64(&self) -> f64 {
        match self {
            Number::Int(v) => *v as f64,
            Number::Float(f) => *f,
            Number::Decimal(d) => d.to_f64(),
        }
    }

    fn to_f32(&self) -> f32 {
        match self {
            Number::Int(v) => *v as f32,
            Number::Float(f) => *f as f32,
            Number::Decimal(d) => d.to_java_string().parse().unwrap_or(f32::NAN),
        }
    }
}

/// Java's `Long.parseLong`-style parsing with a range (`Byte.parseByte`, ...).
fn parse_java_int(s: &str, min: i64, max: i64) -> Result<i64, Failure> {
    let err = || format!("cannot cast {s:?} to an integer in [{min}, {max}]");
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let v: i64 = s.parse().map_err(|_| err())?;
    if v < min || v > max {
        return Err(err());
    }
    Ok(v)
}

/// Java's `Double.parseDouble` for decimal text (surrounding whitespace, `NaN`, `Infinity`,
/// and a trailing `f`/`d` allowed).
fn parse_java_float(s: &str) -> Result<f64, Failure> {
    let t = s.trim();
    let t = t
        .strip_suffix(['f', 'F', 'd', 'D'])
        .filter(|rest| rest.ends_with(|c: char| c.is_ascii_digit() || c == '.'))
        .unwrap_or(t);
    let valid = match t.strip_prefix(['+', '-']).unwrap_or(t) {
        "NaN" | "Infinity" => true,
        body => {
            !body.is_empty()
                && body
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
                && body.bytes().any(|b| b.is_ascii_digit())
        }
    };
    if !valid {
        return Err(format!("cannot cast {s:?} to a floating-point number"));
    }
    t.replace("Infinity", "inf")
        .parse()
        .map_err(|_| format!("cannot cast {s:?} to a floating-point number"))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::data::{Decimal, SchemaAndValue};

    #[test]
    fn casts_fields_of_structs_with_schema() {
        let c = chain(
            "[{name: c, cast: {spec: [{field: id, type: int64}, {field: price, type: string}, {field: flag, type: int8}]}}]",
        );
        let schema = Schema::structure(vec![
            ("id", Schema::new(SchemaType::Int32)),
            ("price", Schema::decimal(2)),
            ("flag", Schema::new(SchemaType::Boolean).into_optional()),
            ("other", Schema::new(SchemaType::String)),
        ]);
        let value = Value::Struct(vec![
            Value::Int32(7),
            Value::Decimal(Decimal::from_i64(1250, 2)),
            Value::Boolean(true),
            Value::String("x".into()),
        ]);
        let out = c
            .apply(record("t", SchemaAndValue::new(schema, value)))
            .unwrap()
            .unwrap();
        let schema = out.value.schema.unwrap();
        assert_eq!(schema.fields[0].schema, Schema::new(SchemaType::Int64));
        assert_eq!(schema.fields[1].schema, Schema::new(SchemaType::String));
        assert_eq!(
            schema.fields[2].schema,
            Schema::new(SchemaType::Int8).into_optional()
        );
        assert_eq!(
            out.value.value,
            Value::Struct(vec![
                Value::Int64(7),
                Value::String("12.50".into()),
                Value::Int8(1),
                Value::String("x".into()),
            ])
        );
    }

    #[test]
    fn casts_whole_values_and_maps_without_schema() {
        let whole = chain("[{name: c, cast: {target: key, spec: [{type: string}]}}]");
        let mut r = record("t", SchemaAndValue::null());
        r.key = SchemaAndValue::schemaless(Value::Float64(1.5e10));
        let out = whole.apply(r).unwrap().unwrap();
        assert_eq!(out.key.value, Value::String("1.5E10".into()));

        let fields = chain(
            "[{name: c, cast: {spec: [{field: a, type: int32}, {field: b, type: boolean}]}}]",
        );
        let value = map(&[
            ("a", Value::String("42".into())),
            ("b", Value::String("TRUE".into())),
            ("c", Value::Int64(1)),
        ]);
        let out = fields
            .apply(record("t", SchemaAndValue::schemaless(value)))
            .unwrap()
            .unwrap();
        assert_eq!(
            out.value.value,
            map(&[
                ("a", Value::Int32(42)),
                ("b", Value::Boolean(true)),
                ("c", Value::Int64(1))
            ]),
            "fields keep their place"
        );
    }

    #[test]
    fn numeric_narrowing_follows_java() {
        assert_eq!(
            cast_value(None, &Value::Int64(300), SchemaType::Int8),
            Ok(Value::Int8(44))
        );
        assert_eq!(
            cast_value(None, &Value::Float64(1e20), SchemaType::Int32),
            Ok(Value::Int32(i32::MAX))
        );
        assert_eq!(
            cast_value(None, &Value::Float64(-2.7), SchemaType::Int64),
            Ok(Value::Int64(-2))
        );
        assert_eq!(
            cast_value(None, &Value::Float64(f64::NAN), SchemaType::Int64),
            Ok(Value::Int64(0))
        );
        assert_eq!(
            cast_value(None, &Value::String(" 2.5 ".into()), SchemaType::Float64),
            Ok(Value::Float64(2.5))
        );
        assert!(cast_value(None, &Value::String("300".into()), SchemaType::Int8).is_err());
        assert!(cast_value(None, &Value::String("x".into()), SchemaType::Float32).is_err());
        assert!(cast_value(None, &Value::Array(vec![]), SchemaType::Int8).is_err());
        assert_eq!(
            cast_value(
                Some(&Schema::timestamp()),
                &Value::Timestamp(5),
                SchemaType::Int64
            ),
            Ok(Value::Int64(5))
        );
    }

    #[test]
    fn invalid_specs_are_config_errors() {
        assert_eq!(
            config_errors("[{name: c, cast: {spec: []}}]"),
            vec!["spec.transforms[0].cast.spec: must have one entry without field (cast the whole key/value) or entries with fields"]
        );
        assert_eq!(
            config_errors("[{name: c, cast: {spec: [{type: int8}, {field: a, type: int8}]}}]"),
            vec!["spec.transforms[0].cast.spec: an entry without field casts the whole key/value and must be the only entry"]
        );
        assert_eq!(
            config_errors(
                "[{name: c, cast: {spec: [{field: a, type: int8}, {field: a, type: int16}]}}]"
            ),
            vec!["spec.transforms[0].cast.spec[1].field: field \"a\" is cast twice"]
        );
    }

    #[test]
    fn tombstones_pass_and_odd_values_fail_cleanly() {
        let c = chain("[{name: c, cast: {spec: [{field: a, type: int8}]}}]");
        assert!(c
            .apply(record("t", SchemaAndValue::null()))
            .unwrap()
            .is_some());
        assert!(c
            .apply(record("t", SchemaAndValue::schemaless(Value::Int64(1))))
            .is_err());
        assert!(c
            .apply(record(
                "t",
                SchemaAndValue::new(Schema::new(SchemaType::Int64), Value::Int64(1))
            ))
            .is_err());
    }
}

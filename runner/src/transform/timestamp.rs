//! `TimestampConverter`: convert timestamps between text, Unix time and the Connect logical
//! types `Date`, `Time` and `Timestamp`.

use super::{
    field_value, map_entry, map_put, not_a_map, not_a_struct, operating, struct_with_basics,
    Failure,
};
use crate::config_error::ConfigError;
use crate::data::date_format::DateFormat;
use crate::data::values::logical_millis;
use crate::data::{LogicalType, Schema, SchemaType, Value, MILLIS_PER_DAY};
use crate::record::Record;
use ferry_crds::pipeline::{Target, TimestampConverterSpec, TimestampType, UnixPrecision};

const PURPOSE: &str = "converting timestamp formats";

/// `TimestampConverter`.
#[derive(Clone, Debug)]
pub(crate) struct TimestampConverter {
    target: Target,
    field: Option<String>,
    to: TimestampType,
    format: Option<DateFormat>,
    precision: UnixPrecision,
    replace_null_with_default: bool,
}

impl TimestampConverter {
    /// Builds the transform from its spec; problems are reported under `path`.
    pub(crate) fn new(
        spec: &TimestampConverterSpec,
        path: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Self> {
        let format = match spec.format.as_deref().filter(|f| !f.trim().is_empty()) {
            Some(pattern) => match DateFormat::new(pattern) {
                Ok(f) => Some(f),
                Err(e) => {
                    errors.push(ConfigError::new(format!("{path}.format"), e.0));
                    return None;
                }
            },
            None => None,
        };
        if spec.target_type == TimestampType::String && format.is_none() {
            errors.push(ConfigError::new(
                format!("{path}.format"),
                "is required when targetType is string",
            ));
            return None;
        }
        if spec.field.as_deref() == Some("") {
            errors.push(ConfigError::new(
                format!("{path}.field"),
                "must not be empty (omit it to convert the whole key/value)",
            ));
            return None;
        }
        Some(TimestampConverter {
            target: spec.target,
            field: spec.field.clone(),
            to: spec.target_type,
            format,
            precision: spec.unix_precision.unwrap_or_default(),
            replace_null_with_default: spec.replace_null_with_default.unwrap_or(true),
        })
    }

    fn type_schema(&self, optional: bool) -> Schema {
        let s = match self.to {
            TimestampType::String => Schema::new(SchemaType::String),
            TimestampType::Unix => Schema::new(SchemaType::Int64),
            TimestampType::Date => Schema::date(),
            TimestampType::Time => Schema::time(),
            TimestampType::Timestamp => Schema::timestamp(),
        };
        if optional {
            s.into_optional()
        } else {
            s
        }
    }

    /// Milliseconds since the epoch of `value` read as `from`.
    fn to_raw(&self, value: &Value, from: TimestampType) -> Result<i64, Failure> {
        match from {
            TimestampType::String => {
                let Value::String(s) = value else {
                    return Err(format!(
                        "expected a string timestamp, found a {} value",
                        value.type_name()
                    ));
                };
                let format = self
                    .format
                    .as_ref()
                    .ok_or_else(|| "reading a string timestamp needs format".to_string())?;
                format.parse(s).map_err(|e| e.0)
            }
            TimestampType::Unix => {
                let Value::Int64(v) = value else {
                    return Err(format!(
                        "expected a Unix timestamp (int64), found a {} value",
                        value.type_name()
                    ));
                };
                Ok(match self.precision {
                    UnixPrecision::Seconds => v.saturating_mul(1000),
                    UnixPrecision::Milliseconds => *v,
                    UnixPrecision::Microseconds => v / 1000,
                    UnixPrecision::Nanoseconds => v / 1_000_000,
                })
            }
            TimestampType::Date | TimestampType::Time | TimestampType::Timestamp => {
                logical_millis(value).ok_or_else(|| {
                    format!(
                        "expected a Date, Time or Timestamp value, found a {} value",
                        value.type_name()
                    )
                })
            }
        }
    }

    fn to_type(&self, millis: i64) -> Result<Value, Failure> {
        Ok(match self.to {
            TimestampType::String => Value::String(
                self.format
                    .as_ref()
                    .map(|f| f.format(millis))
                    .unwrap_or_default(),
            ),
            TimestampType::Unix => Value::Int64(match self.precision {
                UnixPrecision::Seconds => millis / 1000,
                UnixPrecision::Milliseconds => millis,
                UnixPrecision::Microseconds => millis.saturating_mul(1000),
                UnixPrecision::Nanoseconds => millis.saturating_mul(1_000_000),
            }),
            TimestampType::Date => Value::Date(
                i32::try_from(millis.div_euclid(MILLIS_PER_DAY))
                    .map_err(|_| format!("{millis} ms is out of the Date range"))?,
            ),
            TimestampType::Time => Value::Time(millis.rem_euclid(MILLIS_PER_DAY) as i32),
            TimestampType::Timestamp => Value::Timestamp(millis),
        })
    }

    fn convert(&self, value: &Value, from: Option<TimestampType>) -> Result<Value, Failure> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let from = match from {
            Some(f) => f,
            None => match value {
                Value::Date(_) | Value::Time(_) | Value::Timestamp(_) => TimestampType::Timestamp,
                Value::Int64(_) => TimestampType::Unix,
                Value::String(_) => TimestampType::String,
                other => {
                    return Err(format!(
                        "a {} value is not a timestamp (expected int64, string, Date, Time or Timestamp)",
                        other.type_name()
                    ))
                }
            },
        };
        self.to_type(self.to_raw(value, from)?)
    }

    /// Applies the transform to one record.
    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let part = operating(&mut record, self.target);
        match (&part.schema, &self.field) {
            (None, None) => {
                part.value = self.convert(&part.value, None)?;
            }
            (None, Some(field)) => {
                if part.value.is_null() {
                    return Ok(record);
                }
                let Value::Map(entries) = &mut part.value else {
                    return Err(not_a_map(&part.value, PURPOSE));
                };
                let converted =
                    self.convert(map_entry(entries, field).unwrap_or(&Value::Null), None)?;
                map_put(entries, field, converted);
            }
            (Some(schema), None) => {
                let from = type_of_schema(schema)?;
                let converted = self.convert(&part.value, Some(from))?;
                part.schema = Some(self.type_schema(schema.optional).into());
                part.value = converted;
            }
            (Some(schema), Some(field)) => {
                if !matches!(part.value, Value::Null | Value::Struct(_)) {
                    return Err(not_a_struct(schema, &part.value, PURPOSE));
                }
                let mut updated = struct_with_basics(schema);
                updated.optional = schema.optional;
                let mut from = None;
                for f in &schema.fields {
                    if f.name == *field {
                        from = Some(type_of_schema(&f.schema)?);
                        updated.fields.push(crate::data::Field {
                            name: f.name.clone(),
                            schema: self.type_schema(f.schema.optional),
                        });
                    } else {
                        updated.fields.push(f.clone());
                    }
                }
                let convert_struct = |values: &[Value]| -> Result<Value, Failure> {
                    let mut out = Vec::with_capacity(values.len());
                    for (i, f) in schema.fields.iter().enumerate() {
                        if f.name == *field {
                            let v = field_value(schema, values, i, true);
                            out.push(self.convert(&v, from)?);
                        } else {
                            out.push(field_value(
                                schema,
                                values,
                                i,
                                self.replace_null_with_default,
                            ));
                        }
                    }
                    Ok(Value::Struct(out))
                };
                if let Some(Value::Struct(d)) = schema.default.as_deref() {
                    updated.default = Some(Box::new(convert_struct(d)?));
                }
                if let Value::Struct(values) = &part.value {
                    part.value = convert_struct(values)?;
                }
                part.schema = Some(updated.into());
            }
        }
        Ok(record)
    }
}

/// Connect's `timestampTypeFromSchema`.
fn type_of_schema(schema: &Schema) -> Result<TimestampType, Failure> {
    Ok(match schema.logical_type() {
        Some(LogicalType::Timestamp) => TimestampType::Timestamp,
        Some(LogicalType::Date) => TimestampType::Date,
        Some(LogicalType::Time) => TimestampType::Time,
        _ => match schema.schema_type {
            SchemaType::String => TimestampType::String,
            SchemaType::Int64 => TimestampType::Unix,
            _ => {
                return Err(format!(
                "a {} schema is not a timestamp (expected int64, string, Date, Time or Timestamp)",
                schema.describe()
            ))
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::data::SchemaAndValue;

    #[test]
    fn converts_whole_values_between_representations() {
        let to_string = chain(
            "[{name: t, timestampConverter: {targetType: string, format: \"yyyy-MM-dd'T'HH:mm:ss.SSS\"}}]",
        );
        let ts = SchemaAndValue::new(Schema::timestamp(), Value::Timestamp(1_700_000_123_456));
        let out = to_string.apply(record("t", ts)).unwrap().unwrap();
        assert_eq!(
            out.value.schema.as_deref(),
            Some(&Schema::new(SchemaType::String))
        );
        assert_eq!(
            out.value.value,
            Value::String("2023-11-14T22:15:23.456".into())
        );

        let to_unix =
            chain("[{name: t, timestampConverter: {targetType: unix, unixPrecision: seconds}}]");
        let s = SchemaAndValue::new(Schema::timestamp(), Value::Timestamp(1_700_000_123_456));
        let out = to_unix.apply(record("t", s)).unwrap().unwrap();
        assert_eq!(
            out.value.schema.as_deref(),
            Some(&Schema::new(SchemaType::Int64))
        );
        assert_eq!(out.value.value, Value::Int64(1_700_000_123));

        let to_date = chain("[{name: t, timestampConverter: {targetType: Date}}]");
        let s = SchemaAndValue::new(
            Schema::new(SchemaType::Int64),
            Value::Int64(1_700_000_123_456),
        );
        let out = to_date.apply(record("t", s)).unwrap().unwrap();
        assert_eq!(out.value.schema.as_deref(), Some(&Schema::date()));
        assert_eq!(out.value.value, Value::Date(19_675));

        let to_time = chain("[{name: t, timestampConverter: {targetType: Time}}]");
        let s = SchemaAndValue::new(Schema::timestamp(), Value::Timestamp(1_700_000_123_456));
        let out = to_time.apply(record("t", s)).unwrap().unwrap();
        assert_eq!(out.value.value, Value::Time(80_123_456));
    }

    #[test]
    fn converts_fields_and_parses_text() {
        let c = chain(
            "[{name: t, timestampConverter: {field: at, targetType: Timestamp, format: yyyy-MM-dd}}]",
        );
        let schema = Schema::structure(vec![
            ("at", Schema::new(SchemaType::String).into_optional()),
            ("id", Schema::new(SchemaType::Int32)),
        ]);
        let value = Value::Struct(vec![Value::String("2023-11-14".into()), Value::Int32(1)]);
        let out = c
            .apply(record("t", SchemaAndValue::new(schema, value)))
            .unwrap()
            .unwrap();
        let schema = out.value.schema.unwrap();
        assert_eq!(schema.fields[0].schema, Schema::timestamp().into_optional());
        assert_eq!(
            out.value.value,
            Value::Struct(vec![Value::Timestamp(1_699_920_000_000), Value::Int32(1)])
        );
        let schemaless = map(&[("at", Value::String("nope".into()))]);
        let err = c
            .apply(record("t", SchemaAndValue::schemaless(schemaless)))
            .unwrap_err();
        assert!(
            err.reason.contains("does not match the date pattern"),
            "{err}"
        );
    }

    #[test]
    fn config_is_checked() {
        assert_eq!(
            config_errors("[{name: t, timestampConverter: {targetType: string}}]"),
            vec!["spec.transforms[0].timestampConverter.format: is required when targetType is string"]
        );
        assert!(config_errors(
            "[{name: t, timestampConverter: {targetType: string, format: YYYY-ww}}]"
        )[0]
        .contains("not supported"));
    }
}

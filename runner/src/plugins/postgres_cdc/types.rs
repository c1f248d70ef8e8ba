//! PostgreSQL column types as Kafka Connect schemas and values, following Debezium's
//! defaults (`decimal.handling.mode=precise`, `time.precision.mode=adaptive`,
//! `binary.handling.mode=bytes`):
//!
//! | PostgreSQL | Connect schema |
//! |---|---|
//! | `smallint`, `integer`, `bigint`, `oid` | `int16`, `int32`, `int64`, `int64` |
//! | `real`, `double precision` | `float32`, `float64` |
//! | `boolean` | `boolean` |
//! | `text`, `varchar`, `char`, `name`, `citext`, `inet`, `cidr`, `macaddr`, `xml`, `bit` | `string` |
//! | `numeric(p,s)` | `bytes` `org.apache.kafka.connect.data.Decimal` (scale `s`) |
//! | `numeric` (no scale) | `struct` `io.debezium.data.VariableScaleDecimal` {`scale`, `value`} |
//! | `date` | `int32` `io.debezium.time.Date` (days since 1970-01-01) |
//! | `time(0..3)` / `time` | `int32` `io.debezium.time.Time` (ms) / `int64` `io.debezium.time.MicroTime` (µs) |
//! | `timestamp(0..3)` / `timestamp` | `int64` `io.debezium.time.Timestamp` (ms) / `int64` `io.debezium.time.MicroTimestamp` (µs), wall-clock time read as UTC |
//! | `timestamptz`, `timetz` | `string` `io.debezium.time.ZonedTimestamp`, `io.debezium.time.ZonedTime` (ISO-8601, UTC) |
//! | `json`, `jsonb` | `string` `io.debezium.data.Json` |
//! | `uuid` | `string` `io.debezium.data.Uuid` |
//! | `bytea` | `bytes` |
//! | enum types | `string` `io.debezium.data.Enum` (parameter `allowed`) |
//! | one-dimensional arrays of the above | `array` |
//! | domains | as their base type |
//!
//! `NaN` and infinite `numeric` values, and `infinity` dates and timestamps, become null (the
//! schemas of such columns are optional). Other types (`interval`, `money`, geometric,
//! range and composite types, ...) have no mapping: a table with such a column is a
//! configuration error naming the column.

use crate::data::{Decimal, Schema, SchemaType, Value};

/// Schema name of Debezium's variable-scale decimal.
pub const VARIABLE_SCALE_DECIMAL: &str = "io.debezium.data.VariableScaleDecimal";
/// Debezium's placeholder for a TOASTed value that did not change and was not sent.
pub const UNAVAILABLE_VALUE: &str = "__debezium_unavailable_value";

/// What the catalog says about a type (`pg_type`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgType {
    /// Type OID.
    pub oid: u32,
    /// Type name (`typname`), e.g. `int4`, `_text` for arrays.
    pub name: String,
    /// Schema of the type (`pg_catalog` for built-in types).
    pub schema: String,
    /// `typtype`: `b` base, `e` enum, `d` domain, `c` composite, `r` range, `p` pseudo, ...
    pub kind: char,
    /// `typcategory`: `A` for arrays.
    pub category: char,
    /// Element type of an array type (`typelem`), else 0.
    pub element: u32,
    /// Base type of a domain (`typbasetype`), else 0.
    pub base: u32,
    /// Type modifier of a domain's base type (`typtypmod`).
    pub base_modifier: i32,
    /// Labels of an enum type, in order.
    pub labels: Vec<String>,
}

/// How the text of a value is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `int16`.
    Int16,
    /// `int32`.
    Int32,
    /// `int64`.
    Int64,
    /// `float32`.
    Float32,
    /// `float64`.
    Float64,
    /// `boolean`.
    Boolean,
    /// Text as it is (with an optional schema name).
    Text(Option<&'static str>),
    /// A decimal with a fixed scale and a known precision.
    Decimal {
        /// Digits in total.
        precision: i32,
        /// Digits after the point.
        scale: i32,
    },
    /// A decimal whose scale varies by value.
    VariableDecimal,
    /// Days since the epoch.
    Date,
    /// Time of day, in milliseconds (`micros: false`) or microseconds.
    Time {
        /// Microsecond precision.
        micros: bool,
    },
    /// Wall-clock timestamp, in milliseconds or microseconds since the epoch.
    Timestamp {
        /// Microsecond precision.
        micros: bool,
    },
    /// `timestamptz` as ISO-8601 text in UTC.
    ZonedTimestamp,
    /// `timetz` as ISO-8601 text.
    ZonedTime,
    /// `bytea`.
    Bytes,
    /// An enum label.
    Enum(Vec<String>),
    /// A one-dimensional array.
    Array(Box<Kind>),
}

/// Resolves the [`Kind`] of a column's type; `Err` names the type that has no mapping.
pub fn kind_of(
    oid: u32,
    modifier: i32,
    lookup: &dyn Fn(u32) -> Option<PgType>,
) -> Result<Kind, String> {
    let Some(t) = lookup(oid) else {
        return Err(format!("type with OID {oid}"));
    };
    match t.kind {
        'e' => return Ok(Kind::Enum(t.labels)),
        'd' => return kind_of(t.base, t.base_modifier, lookup),
        _ => {}
    }
    if t.category == 'A' && t.element != 0 {
        let element = kind_of(t.element, modifier, lookup).map_err(|e| format!("{e}[]"))?;
        if matches!(element, Kind::Array(_)) {
            return Err(format!("{}[]", t.name));
        }
        return Ok(Kind::Array(Box::new(element)));
    }
    let builtin = t.schema == "pg_catalog";
    let kind = match t.name.as_str() {
        "int2" if builtin => Kind::Int16,
        "int4" if builtin => Kind::Int32,
        "int8" | "oid" if builtin => Kind::Int64,
        "float4" if builtin => Kind::Float32,
        "float8" if builtin => Kind::Float64,
        "bool" if builtin => Kind::Boolean,
        "text" | "varchar" | "bpchar" | "name" | "char" | "inet" | "cidr" | "macaddr"
        | "macaddr8" | "xml" | "bit" | "varbit"
            if builtin =>
        {
            Kind::Text(None)
        }
        "citext" | "ltree" => Kind::Text(None),
        "numeric" if builtin => {
            if modifier < 4 {
                Kind::VariableDecimal
            } else {
                let m = modifier - 4;
                Kind::Decimal {
                    precision: (m >> 16) & 0xffff,
                    // The scale is a signed 11-bit number since PostgreSQL 15.
                    scale: (((m & 0x7ff) ^ 0x400) - 0x400),
                }
            }
        }
        "date" if builtin => Kind::Date,
        "time" if builtin => Kind::Time {
            micros: !(0..=3).contains(&modifier),
        },
        "timestamp" if builtin => Kind::Timestamp {
            micros: !(0..=3).contains(&modifier),
        },
        "timestamptz" if builtin => Kind::ZonedTimestamp,
        "timetz" if builtin => Kind::ZonedTime,
        "json" | "jsonb" if builtin => Kind::Text(Some("io.debezium.data.Json")),
        "uuid" if builtin => Kind::Text(Some("io.debezium.data.Uuid")),
        "bytea" if builtin => Kind::Bytes,
        _ => return Err(t.name),
    };
    Ok(kind)
}

/// The Connect schema of a column of `kind`.
pub fn schema_of(kind: &Kind, optional: bool) -> Schema {
    let named = |t: SchemaType, name: &str| Schema::new(t).with_name(name);
    let mut schema = match kind {
        Kind::Int16 => Schema::new(SchemaType::Int16),
        Kind::Int32 => Schema::new(SchemaType::Int32),
        Kind::Int64 => Schema::new(SchemaType::Int64),
        Kind::Float32 => Schema::new(SchemaType::Float32),
        Kind::Float64 => Schema::new(SchemaType::Float64),
        Kind::Boolean => Schema::new(SchemaType::Boolean),
        Kind::Text(None) => Schema::new(SchemaType::String),
        Kind::Text(Some(name)) => named(SchemaType::String, name),
        Kind::Decimal { precision, scale } => {
            let mut s = Schema::decimal(*scale);
            s.parameters
                .push(("connect.decimal.precision".into(), precision.to_string()));
            s
        }
        Kind::VariableDecimal => Schema::structure(vec![
            ("scale", Schema::new(SchemaType::Int32)),
            ("value", Schema::new(SchemaType::Bytes)),
        ])
        .with_name(VARIABLE_SCALE_DECIMAL),
        Kind::Date => named(SchemaType::Int32, "io.debezium.time.Date"),
        Kind::Time { micros: false } => named(SchemaType::Int32, "io.debezium.time.Time"),
        Kind::Time { micros: true } => named(SchemaType::Int64, "io.debezium.time.MicroTime"),
        Kind::Timestamp { micros: false } => named(SchemaType::Int64, "io.debezium.time.Timestamp"),
        Kind::Timestamp { micros: true } => {
            named(SchemaType::Int64, "io.debezium.time.MicroTimestamp")
        }
        Kind::ZonedTimestamp => named(SchemaType::String, "io.debezium.time.ZonedTimestamp"),
        Kind::ZonedTime => named(SchemaType::String, "io.debezium.time.ZonedTime"),
        Kind::Bytes => Schema::new(SchemaType::Bytes),
        Kind::Enum(labels) => {
            let mut s = named(SchemaType::String, "io.debezium.data.Enum");
            s.parameters.push(("allowed".into(), labels.join(",")));
            s
        }
        Kind::Array(element) => Schema::array(schema_of(element, true)),
    };
    if matches!(schema.name.as_deref(), Some(n) if n.starts_with("io.debezium")) {
        schema.version = Some(1);
    }
    // Values without a representation (NaN, infinity) become null.
    let may_be_null = matches!(
        kind,
        Kind::Decimal { .. }
            | Kind::VariableDecimal
            | Kind::Date
            | Kind::Timestamp { .. }
            | Kind::ZonedTimestamp
    );
    if optional || may_be_null {
        schema.optional = true;
    }
    schema
}

/// The value of a column of `kind` from its text; `Err` says why the text does not fit.
pub fn parse(kind: &Kind, text: &str) -> Result<Value, String> {
    let bad = || format!("{text:?} is not a valid {}", kind_name(kind));
    Ok(match kind {
        Kind::Int16 => Value::Int16(text.parse().map_err(|_| bad())?),
        Kind::Int32 => Value::Int32(text.parse().map_err(|_| bad())?),
        Kind::Int64 => Value::Int64(text.parse().map_err(|_| bad())?),
        Kind::Float32 => Value::Float32(text.parse().map_err(|_| bad())?),
        Kind::Float64 => Value::Float64(text.parse().map_err(|_| bad())?),
        Kind::Boolean => match text {
            "t" | "true" => Value::Boolean(true),
            "f" | "false" => Value::Boolean(false),
            _ => return Err(bad()),
        },
        Kind::Text(_) | Kind::Enum(_) => Value::String(text.to_string()),
        Kind::Decimal { scale, .. } => match decimal(text)? {
            None => Value::Null,
            Some(d) => Value::Decimal(d.with_scale(*scale).ok_or_else(bad)?),
        },
        Kind::VariableDecimal => match decimal(text)? {
            None => Value::Null,
            Some(d) => Value::Struct(vec![
                Value::Int32(d.scale()),
                Value::Bytes(d.unscaled_bytes().to_vec()),
            ]),
        },
        Kind::Date => match text {
            "infinity" | "-infinity" => Value::Null,
            _ => Value::Int32(i32::try_from(date_days(text).ok_or_else(bad)?).map_err(|_| bad())?),
        },
        Kind::Time { micros } => {
            let us = time_micros(text).ok_or_else(bad)?;
            if *micros {
                Value::Int64(us)
            } else {
                Value::Int32(i32::try_from(us / 1000).map_err(|_| bad())?)
            }
        }
        Kind::Timestamp { micros } => match text {
            "infinity" | "-infinity" => Value::Null,
            _ => {
                let us = timestamp_micros(text).ok_or_else(bad)?;
                Value::Int64(if *micros { us } else { us.div_euclid(1000) })
            }
        },
        Kind::ZonedTimestamp => match text {
            "infinity" | "-infinity" => Value::Null,
            _ => Value::String(zoned(text).ok_or_else(bad)?),
        },
        Kind::ZonedTime => Value::String(zoned(text).ok_or_else(bad)?),
        Kind::Bytes => Value::Bytes(bytea(text).ok_or_else(bad)?),
        Kind::Array(element) => {
            let items = array_items(text).ok_or_else(bad)?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(match item {
                    None => Value::Null,
                    Some(t) => parse(element, &t)?,
                });
            }
            Value::Array(out)
        }
    })
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Int16 => "smallint",
        Kind::Int32 => "integer",
        Kind::Int64 => "bigint",
        Kind::Float32 => "real",
        Kind::Float64 => "double precision",
        Kind::Boolean => "boolean",
        Kind::Text(_) | Kind::Enum(_) => "text",
        Kind::Decimal { .. } | Kind::VariableDecimal => "numeric",
        Kind::Date => "date",
        Kind::Time { .. } => "time",
        Kind::Timestamp { .. } => "timestamp",
        Kind::ZonedTimestamp => "timestamptz",
        Kind::ZonedTime => "timetz",
        Kind::Bytes => "bytea",
        Kind::Array(_) => "one-dimensional array",
    }
}

/// A `numeric`'s text as a decimal; `None` for `NaN` and infinities.
fn decimal(text: &str) -> Result<Option<Decimal>, String> {
    match text {
        "NaN" | "Infinity" | "-Infinity" => Ok(None),
        _ => Decimal::parse(text)
            .map(Some)
            .map_err(|e| format!("{text:?} is not a valid numeric: {e}")),
    }
}

/// The largest year of a PostgreSQL date.
const MAX_YEAR: i64 = 5_874_897;

/// Days from 1970-01-01 to a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` (ISO date style, optionally ` BC`) as days since the epoch.
fn date_days(text: &str) -> Option<i64> {
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (text, false),
    };
    let mut parts = text.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    // PostgreSQL's dates span 4713 BC to 5874897 AD; a year beyond that is not a date.
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1..=MAX_YEAR).contains(&y) {
        return None;
    }
    // Year 1 BC is year 0 of the proleptic calendar.
    let y = if bc { 1 - y } else { y };
    Some(days_from_civil(y, m, d))
}

/// `HH:MM:SS[.ffffff]` as microseconds since midnight.
fn time_micros(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let sec = parts.next()?;
    let (s, frac) = match sec.split_once('.') {
        Some((s, f)) => (s, f),
        None => (sec, ""),
    };
    let s: i64 = s.parse().ok()?;
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_us: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    if !(0..=24).contains(&h) || !(0..=59).contains(&m) || !(0..=60).contains(&s) {
        return None;
    }
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + frac_us)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][ BC]` as microseconds since the epoch.
fn timestamp_micros(text: &str) -> Option<i64> {
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, " BC"),
        None => (text, ""),
    };
    let (date, time) = text.split_once(' ')?;
    let days = date_days(&format!("{date}{bc}"))?;
    days.checked_mul(86_400_000_000)?
        .checked_add(time_micros(time)?)
}

/// A `timestamptz` or `timetz` in ISO style (`2024-01-02 03:04:05.5+00`, session time zone
/// UTC) as ISO-8601 (`2024-01-02T03:04:05.5Z`).
fn zoned(text: &str) -> Option<String> {
    let iso = text.replacen(' ', "T", 1);
    let (body, offset) = match iso.rfind(['+', '-']) {
        // The offset follows the time; a date's own dashes come before it.
        Some(i) if iso[..i].contains(':') => (&iso[..i], &iso[i..]),
        _ => return None,
    };
    let offset = match offset {
        "+00" | "+00:00" | "-00" => "Z".to_string(),
        o if o.len() == 3 => format!("{o}:00"),
        o => o.to_string(),
    };
    Some(format!("{body}{offset}"))
}

/// `bytea` in hex output format (`\x0102`).
fn bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The items of a one-dimensional array literal (`{1,NULL,"a b"}`); `None` for a malformed
/// or multi-dimensional literal.
fn array_items(text: &str) -> Option<Vec<Option<String>>> {
    // A lower bound decoration (`[0:1]={...}`) is dropped.
    let text = match text.find('=') {
        Some(i) if text.starts_with('[') => &text[i + 1..],
        _ => text,
    };
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut items = Vec::new();
    if inner.is_empty() {
        return Some(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        match chars.peek() {
            Some('{') => return None,
            Some('"') => {
                chars.next();
                let mut item = String::new();
                loop {
                    match chars.next()? {
                        '\\' => item.push(chars.next()?),
                        '"' => break,
                        c => item.push(c),
                    }
                }
                items.push(Some(item));
            }
            _ => {
                let mut item = String::new();
                while let Some(c) = chars.peek() {
                    if *c == ',' {
                        break;
                    }
                    item.push(*c);
                    chars.next();
                }
                items.push(if item == "NULL" { None } else { Some(item) });
            }
        }
        match chars.next() {
            None => return Some(items),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin(oid: u32) -> Option<PgType> {
        let (name, category, element) = match oid {
            21 => ("int2", 'N', 0),
            23 => ("int4", 'N', 0),
            25 => ("text", 'S', 0),
            1700 => ("numeric", 'N', 0),
            1114 => ("timestamp", 'D', 0),
            1083 => ("time", 'D', 0),
            1186 => ("interval", 'T', 0),
            1007 => ("_int4", 'A', 23),
            1187 => ("_interval", 'A', 1186),
            90001 => ("mood", 'E', 0),
            90002 => ("positive", 'N', 0),
            _ => return None,
        };
        Some(PgType {
            oid,
            name: name.into(),
            schema: if oid > 90000 { "public" } else { "pg_catalog" }.into(),
            kind: match oid {
                90001 => 'e',
                90002 => 'd',
                _ => 'b',
            },
            category,
            element,
            base: if oid == 90002 { 23 } else { 0 },
            base_modifier: -1,
            labels: if oid == 90001 {
                vec!["sad".into(), "happy".into()]
            } else {
                vec![]
            },
        })
    }

    #[test]
    fn kinds_follow_debezium_defaults() {
        assert_eq!(kind_of(23, -1, &builtin), Ok(Kind::Int32));
        assert_eq!(kind_of(90002, -1, &builtin), Ok(Kind::Int32), "domain");
        assert_eq!(
            kind_of(1700, (10 << 16 | 2) + 4, &builtin),
            Ok(Kind::Decimal {
                precision: 10,
                scale: 2
            })
        );
        assert_eq!(kind_of(1700, -1, &builtin), Ok(Kind::VariableDecimal));
        assert_eq!(
            kind_of(1114, -1, &builtin),
            Ok(Kind::Timestamp { micros: true })
        );
        assert_eq!(
            kind_of(1114, 3, &builtin),
            Ok(Kind::Timestamp { micros: false })
        );
        assert_eq!(
            kind_of(1007, -1, &builtin),
            Ok(Kind::Array(Box::new(Kind::Int32)))
        );
        assert_eq!(
            kind_of(90001, -1, &builtin),
            Ok(Kind::Enum(vec!["sad".into(), "happy".into()]))
        );
        assert_eq!(kind_of(1186, -1, &builtin), Err("interval".into()));
        assert_eq!(kind_of(1187, -1, &builtin), Err("interval[]".into()));
        assert_eq!(kind_of(4, -1, &builtin), Err("type with OID 4".into()));
        let s = schema_of(&kind_of(90001, -1, &builtin).unwrap(), false);
        assert_eq!(s.parameter("allowed"), Some("sad,happy"));
        let d = schema_of(
            &Kind::Decimal {
                precision: 10,
                scale: 2,
            },
            false,
        );
        assert_eq!(d.decimal_scale().ok(), Some(2));
        assert!(d.optional, "NaN becomes null");
    }

    #[test]
    fn text_out_of_any_range_is_refused_not_overflowed() {
        for (kind, text) in [
            (Kind::Time { micros: true }, "-9999999999999999:00:00"),
            (Kind::Time { micros: false }, "00:-99999999999999:00"),
            (
                Kind::Timestamp { micros: true },
                "2024-01-01 -9999999999999999:00:00",
            ),
            (Kind::Date, "-9223372036854775808-01-01 BC"),
            (Kind::Date, "9223372036854775807-12-31"),
            (Kind::Date, "5874898-01-01"),
        ] {
            assert!(parse(&kind, text).is_err(), "{kind:?} {text:?}");
        }
    }

    #[test]
    fn values_parse_like_debezium() {
        assert_eq!(parse(&Kind::Int16, "-7"), Ok(Value::Int16(-7)));
        assert_eq!(parse(&Kind::Boolean, "t"), Ok(Value::Boolean(true)));
        assert!(parse(&Kind::Int32, "x").unwrap_err().contains("integer"));
        let Value::Decimal(d) = parse(
            &Kind::Decimal {
                precision: 10,
                scale: 2,
            },
            "12.5",
        )
        .unwrap() else {
            panic!("not a decimal")
        };
        assert_eq!(d.to_plain_string(), "12.50");
        assert_eq!(
            parse(
                &Kind::Decimal {
                    precision: 10,
                    scale: 2
                },
                "NaN"
            ),
            Ok(Value::Null)
        );
        assert_eq!(
            parse(&Kind::VariableDecimal, "-1.005"),
            Ok(Value::Struct(vec![
                Value::Int32(3),
                Value::Bytes(vec![0xfc, 0x13])
            ]))
        );
        assert_eq!(parse(&Kind::Date, "1970-01-02"), Ok(Value::Int32(1)));
        assert_eq!(parse(&Kind::Date, "1969-12-31"), Ok(Value::Int32(-1)));
        assert_eq!(parse(&Kind::Date, "2024-02-29"), Ok(Value::Int32(19782)));
        assert_eq!(
            parse(&Kind::Date, "0001-01-01 BC"),
            Ok(Value::Int32(-719528))
        );
        assert_eq!(parse(&Kind::Date, "infinity"), Ok(Value::Null));
        assert_eq!(
            parse(&Kind::Time { micros: true }, "01:02:03.5"),
            Ok(Value::Int64(3_723_500_000))
        );
        assert_eq!(
            parse(&Kind::Time { micros: false }, "01:02:03.5"),
            Ok(Value::Int32(3_723_500))
        );
        assert_eq!(
            parse(
                &Kind::Timestamp { micros: true },
                "2024-01-02 03:04:05.000006"
            ),
            Ok(Value::Int64(1_704_164_645_000_006))
        );
        assert_eq!(
            parse(
                &Kind::Timestamp { micros: false },
                "1969-12-31 23:59:59.9995"
            ),
            Ok(Value::Int64(-1))
        );
        assert_eq!(
            parse(&Kind::ZonedTimestamp, "2024-01-02 03:04:05.25+00"),
            Ok(Value::String("2024-01-02T03:04:05.25Z".into()))
        );
        assert_eq!(
            parse(&Kind::ZonedTime, "03:04:05+02"),
            Ok(Value::String("03:04:05+02:00".into()))
        );
        assert_eq!(
            parse(&Kind::Bytes, "\\x00ff"),
            Ok(Value::Bytes(vec![0, 255]))
        );
        assert!(parse(&Kind::Bytes, "\\x0").is_err());
        assert_eq!(
            parse(
                &Kind::Array(Box::new(Kind::Text(None))),
                r#"{a,"b,c",NULL,"NULL","q\"x"}"#
            ),
            Ok(Value::Array(vec![
                Value::String("a".into()),
                Value::String("b,c".into()),
                Value::Null,
                Value::String("NULL".into()),
                Value::String("q\"x".into()),
            ]))
        );
        assert_eq!(
            parse(&Kind::Array(Box::new(Kind::Int32)), "{}"),
            Ok(Value::Array(vec![]))
        );
        assert!(parse(&Kind::Array(Box::new(Kind::Int32)), "{{1},{2}}").is_err());
        assert_eq!(parse(&Kind::Float64, "NaN").map(|v| v.is_null()), Ok(false));
    }

    #[test]
    fn odd_text_never_panics() {
        let kinds = [
            Kind::Date,
            Kind::Time { micros: true },
            Kind::Timestamp { micros: false },
            Kind::ZonedTimestamp,
            Kind::ZonedTime,
            Kind::Bytes,
            Kind::VariableDecimal,
            Kind::Array(Box::new(Kind::Date)),
        ];
        for text in [
            "",
            "-",
            "::",
            "{",
            "}",
            "\"",
            "{\"",
            "[1:2]={1}",
            "\\x",
            "9999999999-01-01",
            "1-1-1 1:1:1+",
            "é",
        ] {
            for k in &kinds {
                let _ = parse(k, text);
            }
        }
    }
}

//! Column types: what a Connect schema (and Debezium's semantic types) becomes in a table,
//! whether a value fits an existing column, and the text a value is sent as.
//!
//! Values travel as text (or bytes) and the database converts them to the column's type,
//! so one statement serves every column type; what the database would refuse with an
//! unhelpful message (a string in an integer column, a null in a NOT NULL column) is caught
//! here first, naming the column.

use crate::data::date_format::civil_from_days;
use crate::data::{Decimal, LogicalType, Schema, SchemaType, Value, MILLIS_PER_DAY};

use super::rows::Cell;

/// Debezium's semantic types (schema names), as the `postgresCdc` source and Debezium's
/// connectors write them.
pub mod debezium {
    /// A Debezium semantic type this sink understands.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Semantic {
        /// `io.debezium.time.Date`: int32 days since the epoch.
        Date,
        /// `io.debezium.time.Time`: int32 milliseconds since midnight.
        TimeMillis,
        /// `io.debezium.time.MicroTime`: int64 microseconds since midnight.
        TimeMicros,
        /// `io.debezium.time.NanoTime`: int64 nanoseconds since midnight.
        TimeNanos,
        /// `io.debezium.time.Timestamp`: int64 milliseconds since the epoch, no time zone.
        TimestampMillis,
        /// `io.debezium.time.MicroTimestamp`: int64 microseconds since the epoch.
        TimestampMicros,
        /// `io.debezium.time.NanoTimestamp`: int64 nanoseconds since the epoch.
        TimestampNanos,
        /// `io.debezium.time.ZonedTimestamp`: an ISO 8601 string with its offset.
        ZonedTimestamp,
        /// `io.debezium.data.Json`: JSON text.
        Json,
        /// `io.debezium.data.Uuid`: a UUID string.
        Uuid,
        /// `io.debezium.data.VariableScaleDecimal`: a struct of `scale` and `value`.
        VariableScaleDecimal,
    }

    /// The semantic type of a schema name.
    pub fn semantic(name: &str) -> Option<Semantic> {
        Some(match name {
            "io.debezium.time.Date" => Semantic::Date,
            "io.debezium.time.Time" => Semantic::TimeMillis,
            "io.debezium.time.MicroTime" => Semantic::TimeMicros,
            "io.debezium.time.NanoTime" => Semantic::TimeNanos,
            "io.debezium.time.Timestamp" => Semantic::TimestampMillis,
            "io.debezium.time.MicroTimestamp" => Semantic::TimestampMicros,
            "io.debezium.time.NanoTimestamp" => Semantic::TimestampNanos,
            "io.debezium.time.ZonedTimestamp" => Semantic::ZonedTimestamp,
            "io.debezium.data.Json" => Semantic::Json,
            "io.debezium.data.Uuid" => Semantic::Uuid,
            "io.debezium.data.VariableScaleDecimal" => Semantic::VariableScaleDecimal,
            _ => return None,
        })
    }
}

use debezium::Semantic;

/// The kind of column a value needs (what auto-create and auto-evolve create).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 8-bit integer.
    Int8,
    /// 16-bit integer.
    Int16,
    /// 32-bit integer.
    Int32,
    /// 64-bit integer.
    Int64,
    /// 32-bit float.
    Float32,
    /// 64-bit float.
    Float64,
    /// Boolean.
    Boolean,
    /// Text.
    Text,
    /// Bytes.
    Bytes,
    /// A decimal with this scale (`None`: variable scale).
    Decimal(Option<i32>),
    /// A date.
    Date,
    /// A time of day.
    Time,
    /// A date and time without a time zone (Connect's `Timestamp`, in UTC).
    Timestamp,
    /// A date and time with a time zone.
    TimestampTz,
    /// JSON (structs, maps, arrays and JSON text).
    Json,
    /// A UUID.
    Uuid,
}

/// The column kind of a Connect schema.
pub fn kind_of(schema: &Schema) -> Kind {
    if let Some(s) = schema.name.as_deref().and_then(debezium::semantic) {
        return match s {
            Semantic::Date => Kind::Date,
            Semantic::TimeMillis | Semantic::TimeMicros | Semantic::TimeNanos => Kind::Time,
            Semantic::TimestampMillis | Semantic::TimestampMicros | Semantic::TimestampNanos => {
                Kind::Timestamp
            }
            Semantic::ZonedTimestamp => Kind::TimestampTz,
            Semantic::Json => Kind::Json,
            Semantic::Uuid => Kind::Uuid,
            Semantic::VariableScaleDecimal => Kind::Decimal(None),
        };
    }
    match schema.logical_type() {
        Some(LogicalType::Decimal) => return Kind::Decimal(schema.decimal_scale().ok()),
        Some(LogicalType::Date) => return Kind::Date,
        Some(LogicalType::Time) => return Kind::Time,
        Some(LogicalType::Timestamp) => return Kind::Timestamp,
        None => {}
    }
    match schema.schema_type {
        SchemaType::Int8 => Kind::Int8,
        SchemaType::Int16 => Kind::Int16,
        SchemaType::Int32 => Kind::Int32,
        SchemaType::Int64 => Kind::Int64,
        SchemaType::Float32 => Kind::Float32,
        SchemaType::Float64 => Kind::Float64,
        SchemaType::Boolean => Kind::Boolean,
        SchemaType::String => Kind::Text,
        SchemaType::Bytes => Kind::Bytes,
        SchemaType::Array | SchemaType::Map | SchemaType::Struct => Kind::Json,
    }
}

/// What an existing column holds, from its type name, as far as checking values goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// Integer types (MySQL's `tinyint(1)` booleans included).
    Integer,
    /// Floating point types.
    Float,
    /// Exact numerics.
    Numeric,
    /// Booleans.
    Boolean,
    /// Character types.
    Text,
    /// Binary types.
    Bytes,
    /// Dates.
    Date,
    /// Times of day.
    Time,
    /// Dates with times.
    Timestamp,
    /// JSON.
    Json,
    /// UUIDs.
    Uuid,
    /// Anything else (arrays, enums, network addresses, ...): the database converts text.
    Other,
}

/// The category of a column type name, as `format_type` (PostgreSQL) or `COLUMN_TYPE`
/// (MySQL) spells it.
pub fn category(type_name: &str) -> Category {
    let t = type_name.to_ascii_lowercase();
    let base = t.split(['(', ' ']).next().unwrap_or("");
    if t.ends_with("[]") {
        return Category::Other;
    }
    match base {
        "smallint" | "integer" | "int" | "bigint" | "tinyint" | "mediumint" | "int2" | "int4"
        | "int8" | "serial" | "bigserial" | "year" | "bit" => Category::Integer,
        "real" | "double" | "float" | "float4" | "float8" => Category::Float,
        "numeric" | "decimal" => Category::Numeric,
        "boolean" | "bool" => Category::Boolean,
        "text" | "character" | "char" | "varchar" | "tinytext" | "mediumtext" | "longtext"
        | "name" | "citext" => Category::Text,
        "bytea" | "blob" | "tinyblob" | "mediumblob" | "longblob" | "binary" | "varbinary" => {
            Category::Bytes
        }
        "date" => Category::Date,
        "time" => Category::Time,
        "timestamp" | "datetime" => Category::Timestamp,
        "json" | "jsonb" => Category::Json,
        "uuid" => Category::Uuid,
        _ => Category::Other,
    }
}

/// A value as it is sent to the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// Text the database converts to the column's type.
    Text(String),
    /// Bytes for a binary column.
    Bytes(Vec<u8>),
}

/// How booleans and special floats are spelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// PostgreSQL: `true`/`false`, `NaN`, `Infinity`.
    Postgres,
    /// MySQL: `1`/`0`; no NaN or infinity.
    Mysql,
}

/// `YYYY-MM-DD` of a day count since the epoch.
fn date_text(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `HH:MM:SS.ffffff` of microseconds since midnight.
fn time_text(micros: i64) -> String {
    let micros = micros.rem_euclid(86_400_000_000);
    let secs = micros / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        micros % 1_000_000
    )
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` (UTC) of microseconds since the epoch.
fn timestamp_text(micros: i64) -> String {
    let day_micros = MILLIS_PER_DAY * 1000;
    format!(
        "{} {}",
        date_text(micros.div_euclid(day_micros)),
        time_text(micros.rem_euclid(day_micros))
    )
}

fn float_text(v: f64, flavor: Flavor) -> Result<String, String> {
    if v.is_finite() {
        return Ok(v.to_string());
    }
    match flavor {
        Flavor::Postgres if v.is_nan() => Ok("NaN".into()),
        Flavor::Postgres if v > 0.0 => Ok("Infinity".into()),
        Flavor::Postgres => Ok("-Infinity".into()),
        Flavor::Mysql => Err(format!("{v} cannot be stored in MySQL")),
    }
}

fn integer(v: &Value) -> Option<i64> {
    Some(match v {
        Value::Int8(x) => i64::from(*x),
        Value::Int16(x) => i64::from(*x),
        Value::Int32(x) => i64::from(*x),
        Value::Int64(x) => *x,
        _ => return None,
    })
}

fn text_of(s: String) -> Result<SqlValue, String> {
    Ok(SqlValue::Text(s))
}

/// The value of `cell` as sent for a column of `category`.
pub fn render(cell: &Cell<'_>, category: Category, flavor: Flavor) -> Result<SqlValue, String> {
    let value = &*cell.value;
    let semantic = cell
        .schema
        .as_deref()
        .and_then(|s| s.name.as_deref())
        .and_then(debezium::semantic);
    if value.is_null() {
        return Ok(SqlValue::Null);
    }
    let text = text_of;
    if let (Some(sem), Some(n)) = (semantic, integer(value)) {
        match sem {
            Semantic::Date => return text(date_text(n)),
            Semantic::TimeMillis => return text(time_text(n.saturating_mul(1000))),
            Semantic::TimeMicros => return text(time_text(n)),
            Semantic::TimeNanos => return text(time_text(n / 1000)),
            Semantic::TimestampMillis => return text(timestamp_text(n.saturating_mul(1000))),
            Semantic::TimestampMicros => return text(timestamp_text(n)),
            Semantic::TimestampNanos => return text(timestamp_text(n.div_euclid(1000))),
            _ => {}
        }
    }
    if let (Some(Semantic::ZonedTimestamp), Flavor::Mysql, Value::String(text)) =
        (semantic, flavor, value)
    {
        // MySQL's DATETIME takes no offset: the instant is stored in UTC.
        let instant: jiff::Timestamp = text
            .parse()
            .map_err(|e| format!("holds {text:?}, which is not an ISO 8601 timestamp: {e}"))?;
        return text_of(timestamp_text(instant.as_microsecond()));
    }
    if semantic == Some(Semantic::VariableScaleDecimal) {
        if let Value::Struct(parts) = value {
            if let [Value::Int32(scale), Value::Bytes(unscaled)] = parts.as_slice() {
                return text(Decimal::from_unscaled_bytes(unscaled, *scale).to_plain_string());
            }
        }
    }
    match value {
        Value::Null => Ok(SqlValue::Null),
        Value::Int8(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => {
            text(integer(value).unwrap_or_default().to_string())
        }
        Value::Float32(x) => text(float_text(f64::from(*x), flavor)?),
        Value::Float64(x) => text(float_text(*x, flavor)?),
        Value::Boolean(b) => text(
            match (category, flavor, b) {
                (Category::Text | Category::Json, _, true) => "true",
                (Category::Text | Category::Json, _, false) => "false",
                (Category::Boolean, Flavor::Postgres, true) => "true",
                (Category::Boolean, Flavor::Postgres, false) => "false",
                (_, _, true) => "1",
                (_, _, false) => "0",
            }
            .to_string(),
        ),
        Value::String(s) => text(s.clone()),
        Value::Bytes(b) => match (category, flavor) {
            (Category::Bytes, Flavor::Mysql) => Ok(SqlValue::Bytes(b.clone())),
            (Category::Bytes, Flavor::Postgres) => {
                let mut s = String::with_capacity(2 + 2 * b.len());
                s.push_str("\\x");
                for byte in b {
                    s.push_str(&format!("{byte:02x}"));
                }
                text(s)
            }
            _ => match std::str::from_utf8(b) {
                Ok(s) => text(s.to_string()),
                Err(_) => Err("holds bytes that are not UTF-8 text".to_string()),
            },
        },
        Value::Decimal(d) => text(d.to_plain_string()),
        Value::Date(days) => text(date_text(i64::from(*days))),
        Value::Time(ms) => text(time_text(i64::from(*ms) * 1000)),
        Value::Timestamp(ms) => text(timestamp_text(ms.saturating_mul(1000))),
        Value::Array(_) | Value::Map(_) | Value::Struct(_) => {
            text(crate::value_text::to_json(value, cell.schema.as_deref()).to_string())
        }
    }
}

/// Why `cell` cannot go into a column of `category` (`nullable`: the column accepts NULL),
/// or `None` when the database will take it.
pub fn mismatch(cell: &Cell<'_>, category: Category, nullable: bool) -> Option<String> {
    let value = &*cell.value;
    if value.is_null() {
        return (!nullable).then(|| "is null, and the column is NOT NULL".to_string());
    }
    let semantic = cell
        .schema
        .as_deref()
        .and_then(|s| s.name.as_deref())
        .and_then(debezium::semantic);
    let kind = match cell.schema.as_deref() {
        Some(s) => kind_of(s),
        None => match value {
            Value::Int8(_) => Kind::Int8,
            Value::Int16(_) => Kind::Int16,
            Value::Int32(_) => Kind::Int32,
            Value::Int64(_) => Kind::Int64,
            Value::Float32(_) => Kind::Float32,
            Value::Float64(_) => Kind::Float64,
            Value::Boolean(_) => Kind::Boolean,
            Value::String(_) => Kind::Text,
            Value::Bytes(_) => Kind::Bytes,
            Value::Decimal(d) => Kind::Decimal(Some(d.scale())),
            Value::Date(_) => Kind::Date,
            Value::Time(_) => Kind::Time,
            Value::Timestamp(_) => Kind::Timestamp,
            Value::Array(_) | Value::Map(_) | Value::Struct(_) | Value::Null => Kind::Json,
        },
    };
    use Category as C;
    let fits = match (kind, category) {
        (_, C::Other | C::Text) => true,
        (
            Kind::Int8 | Kind::Int16 | Kind::Int32 | Kind::Int64,
            C::Integer | C::Float | C::Numeric | C::Boolean | C::Json,
        ) => true,
        (Kind::Float32 | Kind::Float64, C::Float | C::Numeric | C::Json) => true,
        (Kind::Float32 | Kind::Float64, C::Integer) => match value {
            Value::Float32(x) => x.fract() == 0.0,
            Value::Float64(x) => x.fract() == 0.0,
            _ => false,
        },
        (Kind::Decimal(_), C::Numeric | C::Float | C::Integer | C::Json) => true,
        (Kind::Boolean, C::Boolean | C::Integer | C::Json) => true,
        (Kind::Text, C::Integer) => match value {
            Value::String(s) => s.trim().parse::<i64>().is_ok(),
            _ => false,
        },
        (Kind::Text, C::Float | C::Numeric) => match value {
            Value::String(s) => s.trim().parse::<f64>().is_ok(),
            _ => false,
        },
        (Kind::Text, C::Boolean | C::Bytes | C::Date | C::Time | C::Timestamp) => true,
        (Kind::Text | Kind::Json, C::Json) => true,
        (Kind::Text | Kind::Uuid, C::Uuid) => true,
        (Kind::Uuid, C::Bytes) => true,
        (Kind::Bytes, C::Bytes) => true,
        (Kind::Date, C::Date | C::Timestamp) => true,
        (Kind::Time, C::Time) => true,
        (Kind::Timestamp | Kind::TimestampTz, C::Timestamp | C::Date) => true,
        _ => false,
    };
    if fits {
        return None;
    }
    let what = match (semantic, cell.schema.as_deref()) {
        (Some(_), Some(s)) | (None, Some(s)) => s.describe(),
        _ => value.type_name().to_string(),
    };
    let column = format!("{category:?}").to_lowercase();
    Some(format!(
        "holds a value of type {what}, which does not fit the column's type ({column})"
    ))
}

/// The key cells rendered as one text, to recognise the same key twice in a batch.
pub fn render_key_text(cells: &[Cell<'_>]) -> String {
    let mut out = String::new();
    for c in cells {
        match render(c, Category::Text, Flavor::Postgres) {
            Ok(SqlValue::Text(s)) => out.push_str(&s),
            Ok(SqlValue::Bytes(b)) => out.push_str(&String::from_utf8_lossy(&b)),
            Ok(SqlValue::Null) => out.push_str("\u{0}null"),
            Err(_) => out.push_str(&format!("{:?}", c.value)),
        }
        out.push('\u{1f}');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn cell(schema: Option<Schema>, value: Value) -> Cell<'static> {
        Cell {
            column: Cow::Borrowed("c"),
            schema: schema.map(Cow::Owned),
            value: Cow::Owned(value),
        }
    }

    fn text(c: &Cell<'_>, cat: Category, flavor: Flavor) -> String {
        match render(c, cat, flavor).unwrap() {
            SqlValue::Text(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn logical_and_debezium_times_render_in_utc() {
        let ts = cell(
            Some(Schema::timestamp()),
            Value::Timestamp(86_400_000 + 3_723_004),
        );
        assert_eq!(
            text(&ts, Category::Timestamp, Flavor::Postgres),
            "1970-01-02 01:02:03.004000"
        );
        let micro = cell(
            Some(Schema::new(SchemaType::Int64).with_name("io.debezium.time.MicroTimestamp")),
            Value::Int64(-1),
        );
        assert_eq!(
            text(&micro, Category::Timestamp, Flavor::Mysql),
            "1969-12-31 23:59:59.999999"
        );
        let date = cell(
            Some(Schema::new(SchemaType::Int32).with_name("io.debezium.time.Date")),
            Value::Int32(19_000),
        );
        assert_eq!(text(&date, Category::Date, Flavor::Postgres), "2022-01-08");
        assert_eq!(kind_of(date.schema.as_deref().unwrap()), Kind::Date);
        let zoned = cell(
            Some(Schema::new(SchemaType::String).with_name("io.debezium.time.ZonedTimestamp")),
            Value::String("2024-02-29T23:30:00.5+02:00".into()),
        );
        assert_eq!(
            text(&zoned, Category::Timestamp, Flavor::Mysql),
            "2024-02-29 21:30:00.500000"
        );
        assert_eq!(
            text(&zoned, Category::Timestamp, Flavor::Postgres),
            "2024-02-29T23:30:00.5+02:00"
        );
        let t = cell(Some(Schema::time()), Value::Time(45_296_789));
        assert_eq!(
            text(&t, Category::Time, Flavor::Postgres),
            "12:34:56.789000"
        );
    }

    #[test]
    fn booleans_bytes_and_floats_follow_the_database() {
        let b = cell(None, Value::Boolean(true));
        assert_eq!(text(&b, Category::Boolean, Flavor::Postgres), "true");
        assert_eq!(text(&b, Category::Integer, Flavor::Mysql), "1");
        let bytes = cell(None, Value::Bytes(vec![0, 255]));
        assert_eq!(text(&bytes, Category::Bytes, Flavor::Postgres), "\\x00ff");
        assert_eq!(
            render(&bytes, Category::Bytes, Flavor::Mysql),
            Ok(SqlValue::Bytes(vec![0, 255]))
        );
        assert!(render(&bytes, Category::Text, Flavor::Mysql).is_err());
        let nan = cell(None, Value::Float64(f64::NAN));
        assert_eq!(text(&nan, Category::Float, Flavor::Postgres), "NaN");
        assert!(render(&nan, Category::Float, Flavor::Mysql).is_err());
        let s = cell(
            Some(Schema::structure(vec![(
                "a",
                Schema::new(SchemaType::Int32),
            )])),
            Value::Struct(vec![Value::Int32(1)]),
        );
        assert_eq!(text(&s, Category::Json, Flavor::Postgres), r#"{"a":1}"#);
        let d = cell(
            Some(Schema::decimal(2)),
            Value::Decimal(Decimal::from_i64(-1234, 2)),
        );
        assert_eq!(text(&d, Category::Numeric, Flavor::Postgres), "-12.34");
    }

    #[test]
    fn mismatches_name_what_does_not_fit() {
        let s = cell(
            Some(Schema::new(SchemaType::String)),
            Value::String("abc".into()),
        );
        assert!(mismatch(&s, Category::Integer, true).is_some());
        assert!(mismatch(&s, Category::Text, true).is_none());
        let n = cell(
            Some(Schema::new(SchemaType::String)),
            Value::String(" 42".into()),
        );
        assert!(mismatch(&n, Category::Integer, true).is_none());
        let null = cell(None, Value::Null);
        assert_eq!(
            mismatch(&null, Category::Integer, false).as_deref(),
            Some("is null, and the column is NOT NULL")
        );
        assert!(mismatch(&null, Category::Integer, true).is_none());
        let b = cell(None, Value::Bytes(vec![1]));
        assert!(mismatch(&b, Category::Integer, true).is_some());
    }

    #[test]
    fn column_type_names_have_categories() {
        assert_eq!(category("bigint"), Category::Integer);
        assert_eq!(category("character varying(20)"), Category::Text);
        assert_eq!(category("timestamp(6) with time zone"), Category::Timestamp);
        assert_eq!(category("tinyint(1)"), Category::Integer);
        assert_eq!(category("decimal(10,2)"), Category::Numeric);
        assert_eq!(category("integer[]"), Category::Other);
        assert_eq!(category("double precision"), Category::Float);
        assert_eq!(category("longblob"), Category::Bytes);
    }
}

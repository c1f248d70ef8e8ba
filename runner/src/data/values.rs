//! Text forms of values, as Kafka Connect's `org.apache.kafka.connect.data.Values` and Java's
//! `toString()` write them, and the type-inferring parser `Values.parseString` (used by the
//! simple header converter and `InsertHeader`).

use super::date_format::DateFormat;
use super::{DataError, DATE_NAME, TIMESTAMP_NAME, TIME_NAME};
use super::{Decimal, Schema, SchemaAndValue, SchemaType, Value, MILLIS_PER_DAY};
use base64::Engine;

const ISO_DATE: &str = "yyyy-MM-dd";
const ISO_TIME: &str = "HH:mm:ss.SSS'Z'";
const ISO_TIMESTAMP: &str = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'";

/// Java's `Double.toString`.
pub fn java_double_to_string(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    java_float_text(&format!("{v:e}"), v == 0.0, v.is_sign_negative())
}

/// Java's `Float.toString`.
pub fn java_float_to_string(v: f32) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    java_float_text(&format!("{v:e}"), v == 0.0, v.is_sign_negative())
}

/// Formats Rust's shortest scientific text (`-1.25e-7`) as Java does: plain for
/// 10^-3 <= |v| < 10^7 (`0.00125`, `1250000.0`), else `1.25E-7`.
fn java_float_text(sci: &str, zero: bool, negative: bool) -> String {
    if zero {
        return if negative { "-0.0" } else { "0.0" }.to_string();
    }
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-3..7).contains(&exp) {
        let point = exp + 1;
        if point <= 0 {
            let zeros = "0".repeat(usize::try_from(-point).unwrap_or(0));
            format!("{sign}0.{zeros}{digits}")
        } else {
            let point = usize::try_from(point).unwrap_or(0);
            let (int, frac) = if digits.len() > point {
                (digits[..point].to_string(), digits[point..].to_string())
            } else {
                (
                    format!("{digits}{}", "0".repeat(point - digits.len())),
                    "0".to_string(),
                )
            };
            format!("{sign}{int}.{frac}")
        }
    } else {
        let frac = if digits.len() > 1 { &digits[1..] } else { "0" };
        format!("{sign}{}.{frac}E{exp}", &digits[..1])
    }
}

fn format_with(pattern: &str, millis: i64) -> String {
    DateFormat::new(pattern)
        .map(|f| f.format(millis))
        .unwrap_or_default()
}

/// A `java.util.Date` as `Values` writes it: time of day for values under one day, a date
/// for whole days, a timestamp otherwise (ISO 8601, UTC).
fn iso_for_millis(millis: i64) -> String {
    if millis < MILLIS_PER_DAY {
        format_with(ISO_TIME, millis)
    } else if millis % MILLIS_PER_DAY == 0 {
        format_with(ISO_DATE, millis)
    } else {
        format_with(ISO_TIMESTAMP, millis)
    }
}

/// Milliseconds since the epoch of a `Date`, `Time` or `Timestamp` value.
pub fn logical_millis(value: &Value) -> Option<i64> {
    match value {
        Value::Date(days) => Some(i64::from(*days) * MILLIS_PER_DAY),
        Value::Time(ms) => Some(i64::from(*ms)),
        Value::Timestamp(ms) => Some(*ms),
        _ => None,
    }
}

/// `Values.convertToString(schema, value)`: the text the simple header converter writes.
pub fn convert_to_string(schema: Option<&Schema>, value: &Value) -> Result<String, DataError> {
    let mut out = String::new();
    append(&mut out, schema, value, false)?;
    Ok(out)
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn append(
    out: &mut String,
    schema: Option<&Schema>,
    value: &Value,
    embedded: bool,
) -> Result<(), DataError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Int8(v) => out.push_str(&v.to_string()),
        Value::Int16(v) => out.push_str(&v.to_string()),
        Value::Int32(v) => out.push_str(&v.to_string()),
        Value::Int64(v) => out.push_str(&v.to_string()),
        Value::Float32(v) => out.push_str(&java_float_to_string(*v)),
        Value::Float64(v) => out.push_str(&java_double_to_string(*v)),
        Value::Decimal(d) => out.push_str(&d.to_java_string()),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::String(s) => {
            if embedded {
                out.push('"');
                out.push_str(&escape(s));
                out.push('"');
            } else {
                out.push_str(s);
            }
        }
        Value::Bytes(b) => {
            let text = base64::engine::general_purpose::STANDARD.encode(b);
            if embedded {
                out.push('"');
                out.push_str(&text);
                out.push('"');
            } else {
                out.push_str(&text);
            }
        }
        Value::Array(items) => {
            let element = schema.and_then(|s| s.value_schema.as_deref());
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                append(out, element, item, true)?;
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let ks = schema.and_then(|s| s.key_schema.as_deref());
            let vs = schema.and_then(|s| s.value_schema.as_deref());
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                append(out, ks, k, true)?;
                out.push(':');
                append(out, vs, v, true)?;
            }
            out.push('}');
        }
        Value::Struct(values) => {
            let schema = schema
                .ok_or_else(|| DataError::new("a struct value needs its schema to become text"))?;
            out.push('{');
            for (i, (field, v)) in schema.fields.iter().zip(values).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('"');
                out.push_str(&escape(&field.name));
                out.push('"');
                out.push(':');
                append(out, Some(&field.schema), v, true)?;
            }
            out.push('}');
        }
        Value::Date(_) | Value::Time(_) | Value::Timestamp(_) => {
            out.push_str(&iso_for_millis(logical_millis(value).unwrap_or(0)));
        }
    }
    Ok(())
}

/// Java's `toString()` of the value, which Connect's `StringConverter` writes.
pub fn java_to_string(schema: Option<&Schema>, value: &Value) -> Result<String, DataError> {
    Ok(match value {
        Value::Null => "null".to_string(),
        Value::String(s) => s.clone(),
        Value::Bytes(_) => {
            return Err(DataError::new(
                "bytes have no text form; use the byteArray converter",
            ))
        }
        Value::Array(items) => {
            let element = schema.and_then(|s| s.value_schema.as_deref());
            let parts: Result<Vec<String>, DataError> =
                items.iter().map(|i| java_to_string(element, i)).collect();
            format!("[{}]", parts?.join(", "))
        }
        Value::Map(entries) => {
            let ks = schema.and_then(|s| s.key_schema.as_deref());
            let vs = schema.and_then(|s| s.value_schema.as_deref());
            let mut parts = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                parts.push(format!(
                    "{}={}",
                    java_to_string(ks, k)?,
                    java_to_string(vs, v)?
                ));
            }
            format!("{{{}}}", parts.join(", "))
        }
        Value::Struct(values) => {
            let schema = schema
                .ok_or_else(|| DataError::new("a struct value needs its schema to become text"))?;
            let mut parts = Vec::new();
            for (field, v) in schema.fields.iter().zip(values) {
                if !v.is_null() {
                    parts.push(format!(
                        "{}={}",
                        field.name,
                        java_to_string(Some(&field.schema), v)?
                    ));
                }
            }
            format!("Struct{{{}}}", parts.join(","))
        }
        Value::Date(_) | Value::Time(_) | Value::Timestamp(_) => format_with(
            "EEE MMM dd HH:mm:ss z yyyy",
            logical_millis(value).unwrap_or(0),
        ),
        other => convert_to_string(None, other)?,
    })
}

/// `Values.parseString`: the value text denotes, with an inferred schema — booleans,
/// the smallest integer type that holds a whole number, `float32`/`float64` for fractions,
/// `Decimal` for numbers too large, ISO 8601 dates/times/timestamps, `[...]` lists and
/// `{k:v}` maps of such values (strings quoted inside them); anything else is a string.
pub fn parse_string(text: &str) -> SchemaAndValue {
    if text.is_empty() {
        return SchemaAndValue::new(
            Schema::new(SchemaType::String),
            Value::String(String::new()),
        );
    }
    let mut p = ValueParser {
        s: text.chars().collect(),
        i: 0,
        depth: 0,
    };
    if let Some(parsed) = p.parse_top() {
        return parsed;
    }
    SchemaAndValue::new(
        Schema::new(SchemaType::String),
        Value::String(text.to_string()),
    )
}

struct ValueParser {
    s: Vec<char>,
    i: usize,
    depth: usize,
}

/// Deepest nesting of lists and maps read from text; deeper text stays a string.
const MAX_DEPTH: usize = 128;

/// A parsed value: `None` schema for null.
type Parsed = (Option<Schema>, Value);

impl ValueParser {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_whitespace()) {
            self.i += 1;
        }
    }

    /// The value at the start of the text (Connect reads one value and ignores the rest:
    /// `12:30` is the number 12, `[1] x` the list `[1]`).
    fn parse_top(&mut self) -> Option<SchemaAndValue> {
        self.ws();
        let first = *self.s.get(self.i)?;
        if first == '[' || first == '{' {
            return self.composite().map(|(schema, value)| SchemaAndValue {
                schema: schema.map(Into::into),
                value,
            });
        }
        let rest: String = self.s[self.i..].iter().collect();
        let token = match rest.find(is_delimiter) {
            Some(end) => &rest[..end],
            None => rest.as_str(),
        }
        .trim();
        // A boolean or null must be the whole text; a number may be followed by more.
        match (token, rest.trim()) {
            ("", _) => return None,
            ("null", "null") => return Some(SchemaAndValue::null()),
            ("true" | "false", whole) if whole == token => {
                return Some(SchemaAndValue::new(
                    Schema::new(SchemaType::Boolean),
                    Value::Boolean(token == "true"),
                ))
            }
            _ => {}
        }
        if token.starts_with(|c: char| c.is_ascii_digit()) {
            if let Some((schema, value)) = temporal(rest.trim()) {
                return Some(SchemaAndValue {
                    schema: schema.map(Into::into),
                    value,
                });
            }
        }
        scalar(token).map(|(schema, value)| SchemaAndValue {
            schema: schema.map(Into::into),
            value,
        })
    }

    fn composite(&mut self) -> Option<Parsed> {
        if self.depth >= MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        let parsed = match self.s.get(self.i)? {
            '[' => self.array(),
            '{' => self.map(),
            _ => None,
        };
        self.depth -= 1;
        parsed
    }

    fn embedded(&mut self) -> Option<Parsed> {
        self.ws();
        match self.s.get(self.i)? {
            '[' | '{' => self.composite(),
            '"' => self.quoted(),
            _ => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|c| !matches!(c, ',' | ']' | '}' | '[' | '{' | '"'))
                {
                    // A ':' ends a map key, except inside a time such as 12:30:00.000Z.
                    if self.s[self.i] == ':'
                        && !looks_like_time_continuation(&self.s[start..self.i], &self.s[self.i..])
                    {
                        break;
                    }
                    self.i += 1;
                }
                let token: String = self.s[start..self.i].iter().collect();
                let token = token.trim();
                match token {
                    // Connect cannot read null inside a list or map: the whole text is then
                    // a string.
                    "null" => None,
                    "true" => Some((Some(Schema::new(SchemaType::Boolean)), Value::Boolean(true))),
                    "false" => Some((
                        Some(Schema::new(SchemaType::Boolean)),
                        Value::Boolean(false),
                    )),
                    _ => scalar(token),
                }
            }
        }
    }

    fn quoted(&mut self) -> Option<Parsed> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let c = *self.s.get(self.i)?;
            self.i += 1;
            match c {
                '"' => {
                    return Some((Some(Schema::new(SchemaType::String)), Value::String(out)));
                }
                '\\' => {
                    // An escaped character is kept with its backslash, as Connect keeps it.
                    out.push('\\');
                    out.push(*self.s.get(self.i)?);
                    self.i += 1;
                }
                c => out.push(c),
            }
        }
    }

    fn array(&mut self) -> Option<Parsed> {
        self.i += 1;
        let mut items: Vec<Parsed> = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&']') {
            self.i += 1;
            return Some(list_of(items));
        }
        loop {
            items.push(self.embedded()?);
            self.ws();
            match self.s.get(self.i)? {
                ',' => {
                    self.i += 1;
                    // A trailing comma is accepted, as Connect accepts it.
                    self.ws();
                    if self.s.get(self.i) == Some(&']') {
                        self.i += 1;
                        return Some(list_of(items));
                    }
                }
                ']' => {
                    self.i += 1;
                    return Some(list_of(items));
                }
                _ => return None,
            }
        }
    }

    fn map(&mut self) -> Option<Parsed> {
        self.i += 1;
        let mut entries: Vec<(Parsed, Parsed)> = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&'}') {
            self.i += 1;
            return Some(map_of(entries));
        }
        loop {
            let key = self.embedded()?;
            self.ws();
            if self.s.get(self.i) != Some(&':') {
                return None;
            }
            self.i += 1;
            let value = self.embedded()?;
            entries.push((key, value));
            self.ws();
            match self.s.get(self.i)? {
                ',' => {
                    self.i += 1;
                    self.ws();
                    if self.s.get(self.i) == Some(&'}') {
                        self.i += 1;
                        return Some(map_of(entries));
                    }
                }
                '}' => {
                    self.i += 1;
                    return Some(map_of(entries));
                }
                _ => return None,
            }
        }
    }
}

/// The characters that end a token in Connect's value parser.
fn is_delimiter(c: char) -> bool {
    matches!(c, '[' | ']' | '{' | '}' | ',' | ':' | '"')
}

/// Whether the `:` that starts `rest` continues a time (`12:30…`) rather than ending the
/// map key `token`: the token ends in two digits and two digits follow the colon.
/// Works on characters, so any text is safe to test.
fn looks_like_time_continuation(token: &[char], rest: &[char]) -> bool {
    let token = trim_chars(token);
    let two_digits = |cs: &[char]| cs.len() == 2 && cs.iter().all(char::is_ascii_digit);
    token.len() >= 2
        && two_digits(&token[token.len() - 2..])
        && rest.len() > 2
        && two_digits(&rest[1..3])
}

/// `chars` without leading and trailing whitespace.
fn trim_chars(chars: &[char]) -> &[char] {
    let start = chars
        .iter()
        .position(|c| !c.is_whitespace())
        .unwrap_or(chars.len());
    let end = chars
        .iter()
        .rposition(|c| !c.is_whitespace())
        .map_or(start, |i| i + 1);
    &chars[start..end]
}

/// Numbers and ISO temporal values; `None` for anything else.
fn scalar(token: &str) -> Option<Parsed> {
    let first = token.chars().next()?;
    if first.is_ascii_digit() {
        if let Some(t) = temporal(token) {
            return Some(t);
        }
    }
    if first.is_ascii_digit() || first == '+' || first == '-' {
        return number(token);
    }
    None
}

fn temporal(token: &str) -> Option<Parsed> {
    let shape = |pattern: &str| {
        token.len() == pattern.len()
            && token.bytes().zip(pattern.bytes()).all(|(t, p)| match p {
                b'9' => t.is_ascii_digit(),
                other => t == other,
            })
    };
    if shape("9999-99-99") {
        let ms = DateFormat::new(ISO_DATE).ok()?.parse(token).ok()?;
        let days = i32::try_from(ms.div_euclid(MILLIS_PER_DAY)).ok()?;
        return Some((Some(super::Schema::date()), Value::Date(days)));
    }
    if shape("99:99:99.999Z") {
        let ms = DateFormat::new(ISO_TIME).ok()?.parse(token).ok()?;
        return Some((
            Some(super::Schema::time()),
            Value::Time(i32::try_from(ms).ok()?),
        ));
    }
    if shape("9999-99-99T99:99:99.999Z") {
        let ms = DateFormat::new(ISO_TIMESTAMP).ok()?.parse(token).ok()?;
        return Some((Some(super::Schema::timestamp()), Value::Timestamp(ms)));
    }
    None
}

/// `Values.parseAsNumber`.
fn number(token: &str) -> Option<Parsed> {
    if token.len() > 1000 {
        return None;
    }
    let decimal = Decimal::parse(token).ok()?;
    if let Some(int) = decimal.with_scale(0) {
        let text = int.to_plain_string();
        if let Ok(v) = text.parse::<i64>() {
            return Some(if let Ok(b) = i8::try_from(v) {
                (Some(Schema::new(SchemaType::Int8)), Value::Int8(b))
            } else if let Ok(s) = i16::try_from(v) {
                (Some(Schema::new(SchemaType::Int16)), Value::Int16(s))
            } else if let Ok(i) = i32::try_from(v) {
                (Some(Schema::new(SchemaType::Int32)), Value::Int32(i))
            } else {
                (Some(Schema::new(SchemaType::Int64)), Value::Int64(v))
            });
        }
    }
    if decimal.scale() != 0 {
        let f: f32 = decimal.to_java_string().parse().ok()?;
        if f.is_finite() {
            return Some((Some(Schema::new(SchemaType::Float32)), Value::Float32(f)));
        }
        let d = decimal.to_f64();
        if d.is_finite() {
            return Some((Some(Schema::new(SchemaType::Float64)), Value::Float64(d)));
        }
    }
    let scale = decimal.scale();
    Some((Some(Schema::decimal(scale)), Value::Decimal(decimal)))
}

/// The schema values of these schemas share, widening numbers (`Values.commonSchemaFor`).
fn common_schema(schemas: &[&Option<Schema>]) -> Option<Option<Schema>> {
    let mut common: Option<Schema> = None;
    for s in schemas.iter().filter_map(|s| s.as_ref()) {
        common = Some(match common {
            None => s.clone(),
            Some(c) if c == *s => c,
            Some(c) => {
                let rank = |t: SchemaType| match t {
                    SchemaType::Int8 => Some(0),
                    SchemaType::Int16 => Some(1),
                    SchemaType::Int32 => Some(2),
                    SchemaType::Int64 => Some(3),
                    SchemaType::Float32 => Some(4),
                    SchemaType::Float64 => Some(5),
                    _ => None,
                };
                let plain = c.name.is_none() && s.name.is_none();
                match (rank(c.schema_type), rank(s.schema_type)) {
                    (Some(a), Some(b)) if plain => {
                        if b > a {
                            s.clone()
                        } else {
                            c
                        }
                    }
                    _ => return None,
                }
            }
        });
    }
    Some(common)
}

/// Converts a number to the numeric type `to` (for widened list elements).
fn widen(value: Value, to: SchemaType) -> Value {
    let as_f64 = |v: &Value| match v {
        Value::Int8(x) => Some(f64::from(*x)),
        Value::Int16(x) => Some(f64::from(*x)),
        Value::Int32(x) => Some(f64::from(*x)),
        Value::Int64(x) => Some(*x as f64),
        Value::Float32(x) => Some(f64::from(*x)),
        Value::Float64(x) => Some(*x),
        _ => None,
    };
    let as_i64 = |v: &Value| match v {
        Value::Int8(x) => Some(i64::from(*x)),
        Value::Int16(x) => Some(i64::from(*x)),
        Value::Int32(x) => Some(i64::from(*x)),
        Value::Int64(x) => Some(*x),
        _ => None,
    };
    match (to, &value) {
        (SchemaType::Int16, v) => as_i64(v).map_or(value.clone(), |x| Value::Int16(x as i16)),
        (SchemaType::Int32, v) => as_i64(v).map_or(value.clone(), |x| Value::Int32(x as i32)),
        (SchemaType::Int64, v) => as_i64(v).map_or(value.clone(), Value::Int64),
        (SchemaType::Float32, v) => as_f64(v).map_or(value.clone(), |x| Value::Float32(x as f32)),
        (SchemaType::Float64, v) => as_f64(v).map_or(value.clone(), Value::Float64),
        _ => value,
    }
}

/// A list of parsed values: an array schema of their common element schema, or of no
/// element schema when they have none (mixed or no elements), as Connect infers it.
fn list_of(items: Vec<Parsed>) -> Parsed {
    let schemas: Vec<&Option<Schema>> = items.iter().map(|(s, _)| s).collect();
    let element = common_schema(&schemas).flatten();
    let values = match &element {
        Some(e) => {
            let t = e.schema_type;
            items.into_iter().map(|(_, v)| widen(v, t)).collect()
        }
        None => items.into_iter().map(|(_, v)| v).collect(),
    };
    let schema = Schema {
        value_schema: element.map(Box::new),
        ..Schema::new(SchemaType::Array)
    };
    (Some(schema), Value::Array(values))
}

/// A map of parsed entries, with the common key and value schemas when there are some.
fn map_of(entries: Vec<(Parsed, Parsed)>) -> Parsed {
    let key_schemas: Vec<&Option<Schema>> = entries.iter().map(|((s, _), _)| s).collect();
    let value_schemas: Vec<&Option<Schema>> = entries.iter().map(|(_, (s, _))| s).collect();
    let ks = common_schema(&key_schemas).flatten();
    let vs = common_schema(&value_schemas).flatten();
    let (kt, vt) = (
        ks.as_ref().map(|s| s.schema_type),
        vs.as_ref().map(|s| s.schema_type),
    );
    let values = entries
        .into_iter()
        .map(|((_, k), (_, v))| {
            let k = kt.map_or(k.clone(), |t| widen(k, t));
            let v = vt.map_or(v.clone(), |t| widen(v, t));
            (k, v)
        })
        .collect();
    let schema = Schema {
        key_schema: ks.map(Box::new),
        value_schema: vs.map(Box::new),
        ..Schema::new(SchemaType::Map)
    };
    (Some(schema), Value::Map(values))
}

/// The schema name of a logical value, for values built without a schema.
pub fn logical_schema(value: &Value) -> Option<Schema> {
    match value {
        Value::Date(_) => Some(Schema::new(SchemaType::Int32).with_name(DATE_NAME)),
        Value::Time(_) => Some(Schema::new(SchemaType::Int32).with_name(TIME_NAME)),
        Value::Timestamp(_) => Some(Schema::new(SchemaType::Int64).with_name(TIMESTAMP_NAME)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (Option<SchemaType>, Value) {
        let p = parse_string(text);
        (p.schema.map(|s| s.schema_type), p.value)
    }

    #[test]
    fn numbers_get_the_smallest_type() {
        assert_eq!(parsed("1"), (Some(SchemaType::Int8), Value::Int8(1)));
        assert_eq!(
            parsed("1000"),
            (Some(SchemaType::Int16), Value::Int16(1000))
        );
        assert_eq!(
            parsed("-100000"),
            (Some(SchemaType::Int32), Value::Int32(-100_000))
        );
        assert_eq!(
            parsed("10000000000"),
            (Some(SchemaType::Int64), Value::Int64(10_000_000_000))
        );
        assert_eq!(parsed("1.0"), (Some(SchemaType::Int8), Value::Int8(1)));
        assert_eq!(
            parsed("1.5"),
            (Some(SchemaType::Float32), Value::Float32(1.5))
        );
        let big = parse_string("123456789012345678901234567890");
        assert_eq!(
            big.schema.and_then(|s| s.logical_type()),
            Some(super::super::LogicalType::Decimal)
        );
    }

    #[test]
    fn other_values_and_strings() {
        assert_eq!(
            parsed("true"),
            (Some(SchemaType::Boolean), Value::Boolean(true))
        );
        assert_eq!(
            parsed("hello"),
            (Some(SchemaType::String), Value::String("hello".into()))
        );
        assert_eq!(
            parsed("1 2"),
            (Some(SchemaType::String), Value::String("1 2".into()))
        );
        assert_eq!(
            parsed("2023-11-14"),
            (Some(SchemaType::Int32), Value::Date(19_675))
        );
        assert_eq!(
            parsed("[1,2,300]"),
            (
                Some(SchemaType::Array),
                Value::Array(vec![Value::Int16(1), Value::Int16(2), Value::Int16(300)])
            )
        );
        assert_eq!(
            parsed("{\"a\":1}").1,
            Value::Map(vec![(Value::String("a".into()), Value::Int8(1))])
        );
        assert_eq!(
            parsed("[a,b]"),
            (Some(SchemaType::String), Value::String("[a,b]".into()))
        );
        for odd in [
            "[", "{", "[1,", "{\"a\"", "{\"a\":}", "\"", "-", "+", "[[[[", "1e99999",
        ] {
            let _ = parse_string(odd);
        }
    }

    #[test]
    fn text_with_characters_of_several_bytes_is_read_without_panicking() {
        // A map key of one three-byte character before a ':' once sliced the text inside
        // that character.
        assert_eq!(
            parsed("{€:1}"),
            (Some(SchemaType::String), Value::String("{€:1}".into()))
        );
        assert_eq!(
            parsed("{\"€\":1}").1,
            Value::Map(vec![(Value::String("€".into()), Value::Int8(1))])
        );
        for odd in [
            "{€€:1}",
            "[é:",
            "{ü:12:30}",
            "{1€:2}",
            "{12:3€}",
            "{\u{0}:1}",
        ] {
            let _ = parse_string(odd);
        }
    }

    #[test]
    fn a_time_inside_a_list_is_still_one_value() {
        assert_eq!(
            parsed("[12:30:00.000Z]").1,
            Value::Array(vec![Value::Time(45_000_000)])
        );
    }

    #[test]
    fn text_forms() {
        let schema = Schema::structure(vec![
            ("a", Schema::new(SchemaType::Int32)),
            ("b", Schema::new(SchemaType::String).into_optional()),
        ]);
        let value = Value::Struct(vec![Value::Int32(1), Value::String("x\"y".into())]);
        assert_eq!(
            convert_to_string(Some(&schema), &value).unwrap(),
            r#"{"a":1,"b":"x\"y"}"#
        );
        assert_eq!(
            java_to_string(Some(&schema), &value).unwrap(),
            "Struct{a=1,b=x\"y}"
        );
        assert_eq!(
            convert_to_string(None, &Value::Array(vec![Value::Float64(1.0), Value::Null])).unwrap(),
            "[1.0,null]"
        );
        assert_eq!(
            convert_to_string(None, &Value::Date(19_675)).unwrap(),
            "2023-11-14"
        );
        assert_eq!(
            convert_to_string(None, &Value::Time(1000)).unwrap(),
            "00:00:01.000Z"
        );
        assert_eq!(java_double_to_string(1e21), "1.0E21");
        assert_eq!(java_float_to_string(-2.5), "-2.5");
    }
}

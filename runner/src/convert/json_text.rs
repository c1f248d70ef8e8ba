//! JSON text as Jackson (Kafka Connect's JSON library) reads and writes it: numbers keep their
//! exact text, objects keep their key order, and output is compact with Jackson's escaping.

use crate::data::{values, DataError};
use std::borrow::Cow;
use std::collections::HashMap;

/// A JSON document; text is borrowed from the input (or the values written) where it can be.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonNode<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written (already validated against the JSON grammar).
    Number(Cow<'a, str>),
    /// An integer to write (the writer's form of a number; parsing yields [`Self::Number`]).
    Int(i64),
    /// A string.
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<JsonNode<'a>>),
    /// An object; keys in order, a repeated key keeps its first position and last value.
    Object(Vec<(Cow<'a, str>, JsonNode<'a>)>),
}

impl<'a> JsonNode<'a> {
    /// Jackson's node type name, for error messages.
    pub fn node_type(&self) -> &'static str {
        match self {
            JsonNode::Null => "NULL",
            JsonNode::Bool(_) => "BOOLEAN",
            JsonNode::Number(_) | JsonNode::Int(_) => "NUMBER",
            JsonNode::String(_) => "STRING",
            JsonNode::Array(_) => "ARRAY",
            JsonNode::Object(_) => "OBJECT",
        }
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&JsonNode<'a>> {
        match self {
            JsonNode::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Whether a number has no fraction and no exponent (Jackson's integral number tokens).
    pub fn is_integral(&self) -> bool {
        match self {
            JsonNode::Number(t) => !t.contains(['.', 'e', 'E']),
            JsonNode::Int(_) => true,
            _ => false,
        }
    }

    /// Compact JSON text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        write_node(self, &mut out);
        out
    }

    /// Appends compact JSON text to `out`.
    pub fn write_to(&self, out: &mut String) {
        write_node(self, out);
    }
}

/// Builds an object whose repeated keys keep their first position and last value, as
/// Jackson's `ObjectNode` (a hash index takes over from a scan for larger objects).
#[derive(Default)]
pub struct ObjectBuilder<'a> {
    members: Vec<(Cow<'a, str>, JsonNode<'a>)>,
    index: Option<HashMap<Cow<'a, str>, usize>>,
}

impl<'a> ObjectBuilder<'a> {
    /// Objects up to this size are searched by scanning.
    const SCAN_LIMIT: usize = 16;

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: Cow<'a, str>, value: JsonNode<'a>) {
        if self.index.is_none() && self.members.len() >= Self::SCAN_LIMIT {
            let index = self
                .members
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.clone(), i))
                .collect();
            self.index = Some(index);
        }
        let existing = match &self.index {
            Some(index) => index.get(&key).copied(),
            None => self.members.iter().position(|(k, _)| *k == key),
        };
        match existing {
            Some(i) => self.members[i].1 = value,
            None => {
                if let Some(index) = &mut self.index {
                    index.insert(key.clone(), self.members.len());
                }
                self.members.push((key, value));
            }
        }
    }

    /// The object.
    pub fn build(self) -> JsonNode<'a> {
        JsonNode::Object(self.members)
    }
}

/// Longest number accepted (Jackson's default stream read constraint).
const MAX_NUMBER_LENGTH: usize = 1000;

/// Deepest nesting of arrays and objects accepted (Jackson allows 1000; records nest far
/// less, and the limit keeps every recursive step of reading, transforming and writing
/// within a thread's stack).
pub const MAX_DEPTH: usize = 128;

/// Parses one JSON document (surrounding whitespace allowed, nothing else).
pub fn parse(bytes: &[u8]) -> Result<JsonNode<'_>, DataError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| DataError::new(format!("invalid JSON: not UTF-8 text ({e})")))?;
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    p.ws();
    let node = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.error("unexpected text after the JSON value"));
    }
    Ok(node)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, what: &str) -> DataError {
        DataError::new(format!("invalid JSON at byte {}: {what}", self.i))
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &str, node: JsonNode<'a>) -> Result<JsonNode<'a>, DataError> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(node)
        } else {
            Err(self.error("unrecognized token"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<JsonNode<'a>, DataError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        match self.s.get(self.i) {
            None => Err(self.error("unexpected end of input")),
            Some(b'n') => self.literal("null", JsonNode::Null),
            Some(b't') => self.literal("true", JsonNode::Bool(true)),
            Some(b'f') => self.literal("false", JsonNode::Bool(false)),
            Some(b'"') => Ok(JsonNode::String(self.string()?)),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(JsonNode::Array(items));
                }
                loop {
                    self.ws();
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(JsonNode::Array(items));
                        }
                        _ => return Err(self.error("expected ',' or ']'")),
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut members = ObjectBuilder::default();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(members.build());
                }
                loop {
                    self.ws();
                    if self.s.get(self.i) != Some(&b'"') {
                        return Err(self.error("expected a field name in double quotes"));
                    }
                    let key = self.string()?;
                    self.ws();
                    if self.s.get(self.i) != Some(&b':') {
                        return Err(self.error("expected ':'"));
                    }
                    self.i += 1;
                    self.ws();
                    let v = self.value(depth + 1)?;
                    members.insert(key, v);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(members.build());
                        }
                        _ => return Err(self.error("expected ',' or '}'")),
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("unexpected character")),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<JsonNode<'a>, DataError> {
        let start = self.i;
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let n = self.digits();
        if n == 0 {
            return Err(self.error("expected a digit"));
        }
        // Leading zeroes are accepted, as Connect's JSON reader accepts them (`007` is 7).
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(self.error("expected a digit after the decimal point"));
            }
        }
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.s.get(self.i) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("expected a digit in the exponent"));
            }
        }
        if self.i - start > MAX_NUMBER_LENGTH {
            return Err(self.error("number longer than 1000 characters"));
        }
        Ok(JsonNode::Number(Cow::Borrowed(&self.text[start..self.i])))
    }

    fn hex4(&mut self) -> Result<u32, DataError> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| self.error("invalid \\u escape"))?;
        self.i += 4;
        Ok(h)
    }

    fn string(&mut self) -> Result<Cow<'a, str>, DataError> {
        self.i += 1;
        // Fast path: no escapes, the text is borrowed.
        let begin = self.i;
        while let Some(&b) = self.s.get(self.i) {
            if b == b'"' || b == b'\\' || b < 0x20 {
                break;
            }
            self.i += 1;
        }
        if self.s.get(self.i) == Some(&b'"') {
            self.i += 1;
            return Ok(Cow::Borrowed(&self.text[begin..self.i - 1]));
        }
        let mut out = String::from(&self.text[begin..self.i]);
        loop {
            let start = self.i;
            while let Some(&b) = self.s.get(self.i) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.i += 1;
            }
            out.push_str(&self.text[start..self.i]);
            match self.s.get(self.i) {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.i += 1;
                    let esc = *self
                        .s
                        .get(self.i)
                        .ok_or_else(|| self.error("unterminated string"))?;
                    self.i += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let first = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&first)
                                && self.s.get(self.i..self.i + 2) == Some(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                let second = self.hex4()?;
                                if (0xDC00..0xE000).contains(&second) {
                                    0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                                } else {
                                    self.i = save;
                                    first
                                }
                            } else {
                                first
                            };
                            out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                        }
                        _ => return Err(self.error("invalid escape in string")),
                    }
                }
                Some(_) => return Err(self.error("unescaped control character in string")),
            }
        }
    }
}

/// Appends `s` as a JSON string with Jackson's escaping.
pub fn write_string(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let b = c as u32 as usize;
                out.push_str("\\u00");
                out.push(HEX[b >> 4] as char);
                out.push(HEX[b & 0xF] as char);
            }
            c if (c as u32) > 0xFFFF => {
                // Jackson writes characters outside the Basic Multilingual Plane as an
                // escaped surrogate pair.
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let u = *unit as usize;
                    out.push_str("\\u");
                    for shift in [12, 8, 4, 0] {
                        out.push(HEX[(u >> shift) & 0xF] as char);
                    }
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_node(node: &JsonNode<'_>, out: &mut String) {
    match node {
        JsonNode::Null => out.push_str("null"),
        JsonNode::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        JsonNode::Number(n) => out.push_str(n),
        JsonNode::Int(v) => {
            use std::fmt::Write;
            // Writing to a String cannot fail.
            let _ = write!(out, "{v}");
        }
        JsonNode::String(s) => write_string(s, out),
        JsonNode::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_node(item, out);
            }
            out.push(']');
        }
        JsonNode::Object(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_node(v, out);
            }
            out.push('}');
        }
    }
}

/// A float as JSON, as Jackson writes it (Java's `Float.toString`; NaN and infinities as
/// strings).
pub fn float32_node(v: f32) -> JsonNode<'static> {
    let text = Cow::Owned(values::java_float_to_string(v));
    if v.is_finite() {
        JsonNode::Number(text)
    } else {
        JsonNode::String(text)
    }
}

/// A double as JSON, as Jackson writes it (Java's `Double.toString`).
pub fn float64_node(v: f64) -> JsonNode<'static> {
    let text = Cow::Owned(values::java_double_to_string(v));
    if v.is_finite() {
        JsonNode::Number(text)
    } else {
        JsonNode::String(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_write_round_trip() {
        let text = r#"{"a":1,"b":[true,false,null],"c":{"d":"x\"y\\z\n\u0001é😀"},"e":-1.50e+3}"#;
        let node = parse(text.as_bytes()).unwrap();
        assert_eq!(
            node.to_text(),
            "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"x\\\"y\\\\z\\n\\u0001é\\uD83D\\uDE00\"},\"e\":-1.50e+3}"
        );
        assert_eq!(
            parse(b" [ 1 , 2 ] ").unwrap(),
            JsonNode::Array(vec![
                JsonNode::Number("1".into()),
                JsonNode::Number("2".into())
            ])
        );
        assert_eq!(
            parse(br#""\ud83d\ude00""#).unwrap(),
            JsonNode::String("😀".into())
        );
    }

    #[test]
    fn duplicate_keys_keep_first_position_last_value() {
        let node = parse(br#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(node.to_text(), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn large_objects_with_repeated_keys() {
        let mut text = String::from("{");
        for i in 0..5000 {
            text.push_str(&format!("\"k{}\":{i},", i % 2500));
        }
        text.push_str("\"end\":0}");
        let JsonNode::Object(members) = parse(text.as_bytes()).unwrap() else {
            panic!("not an object")
        };
        assert_eq!(members.len(), 2501);
        assert_eq!(members[0], ("k0".into(), JsonNode::Number("2500".into())));
    }

    #[test]
    fn rejects_what_jackson_rejects() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "1.",
            ".5",
            "-",
            "1e",
            "'a'",
            "{a:1}",
            "nul",
            "\"\u{1}\"",
            "NaN",
            "[1] x",
            "\"\\x\"",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(parse(&[0x22, 0xFF, 0x22]).is_err());
        let deep = "[".repeat(5000);
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn floats_print_like_java() {
        for (v, java) in [
            (1.0, "1.0"),
            (-1.5, "-1.5"),
            (100.0, "100.0"),
            (1234567.0, "1234567.0"),
            (12345678.0, "1.2345678E7"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (1e-10, "1.0E-10"),
            (1.25e300, "1.25E300"),
            (0.1, "0.1"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.2345678901234567, "1.2345678901234567"),
        ] {
            assert_eq!(float64_node(v), JsonNode::Number(java.into()), "{v}");
        }
        assert_eq!(float32_node(0.1f32), JsonNode::Number("0.1".into()));
        assert_eq!(float32_node(1e10f32), JsonNode::Number("1.0E10".into()));
        assert_eq!(float64_node(f64::NAN), JsonNode::String("NaN".into()));
        assert_eq!(
            float64_node(f64::NEG_INFINITY),
            JsonNode::String("-Infinity".into())
        );
    }
}

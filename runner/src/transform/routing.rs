//! Transforms that rename the topic: `RegexRouter`, `TimestampRouter`.

use super::{full_match_regex, Failure};
use crate::config_error::ConfigError;
use crate::data::date_format::DateFormat;
use crate::record::Record;
use ferry_crds::pipeline::{RegexRouterSpec, TimestampRouterSpec};
use regex::{Captures, Regex};

/// A piece of a Java `Matcher.replaceFirst` replacement.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
    Named(String),
}

/// `RegexRouter`.
#[derive(Clone, Debug)]
pub(crate) struct RegexRouter {
    /// The regex anchored at both ends: whether the topic matches.
    whole: Regex,
    /// The regex as written: what `replaceFirst` replaces.
    regex: Regex,
    replacement: Vec<Piece>,
}

/// Parses a Java replacement string: `$n` (the longest group number that exists), `${name}`,
/// and `\x` for a literal `x`.
fn parse_replacement(text: &str, regex: &Regex) -> Result<Vec<Piece>, String> {
    let groups = regex.captures_len() - 1;
    let chars: Vec<char> = text.chars().collect();
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let c = chars
                    .get(i + 1)
                    .ok_or("character to be escaped is missing at the end")?;
                literal.push(*c);
                i += 2;
            }
            '$' => {
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                match chars.get(i + 1) {
                    Some('{') => {
                        let end = chars[i + 2..]
                            .iter()
                            .position(|c| *c == '}')
                            .ok_or("named group reference is missing its closing '}'")?;
                        let name: String = chars[i + 2..i + 2 + end].iter().collect();
                        if !regex.capture_names().flatten().any(|n| n == name) {
                            return Err(format!("no group named {name:?} in the regex"));
                        }
                        pieces.push(Piece::Named(name));
                        i += end + 3;
                    }
                    Some(c) if c.is_ascii_digit() => {
                        let mut n = c.to_digit(10).unwrap_or(0) as usize;
                        if n > groups {
                            return Err(format!("no group {n} in the regex ({groups} groups)"));
                        }
                        i += 2;
                        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                            let next = n * 10 + d as usize;
                            if next > groups {
                                break;
                            }
                            n = next;
                            i += 1;
                        }
                        pieces.push(Piece::Group(n));
                    }
                    _ => return Err(
                        "'$' must be followed by a group number or {name}; write \\$ for a dollar"
                            .to_string(),
                    ),
                }
            }
            c => {
                literal.push(c);
                i += 1;
            }
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

impl RegexRouter {
    /// Builds the transform from its spec; problems are reported under `path`.
    pub(crate) fn new(
        spec: &RegexRouterSpec,
        path: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Self> {
        let (whole, regex) = match full_match_regex(&spec.regex)
            .and_then(|whole| Ok((whole, Regex::new(&spec.regex).map_err(|e| e.to_string())?)))
        {
            Ok(r) => r,
            Err(e) => {
                errors.push(ConfigError::new(format!("{path}.regex"), e));
                return None;
            }
        };
        match parse_replacement(&spec.replacement, &regex) {
            Ok(replacement) => Some(RegexRouter {
                whole,
                regex,
                replacement,
            }),
            Err(e) => {
                errors.push(ConfigError::new(format!("{path}.replacement"), e));
                None
            }
        }
    }

    fn expand(&self, caps: &Captures<'_>) -> String {
        let mut out = String::new();
        for piece in &self.replacement {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Group(n) => out.push_str(caps.get(*n).map_or("", |m| m.as_str())),
                Piece::Named(n) => out.push_str(caps.name(n).map_or("", |m| m.as_str())),
            }
        }
        out
    }

    /// Applies the transform to one record: when the whole topic matches, the first match
    /// in it is replaced (Java's `matches()` then `replaceFirst`, so a lazy pattern such as
    /// `(.*?)` replaces only what its first match covers).
    pub(crate) fn apply(&self, mut record: Record) -> Record {
        if !self.whole.is_match(&record.topic) {
            return record;
        }
        if let Some(caps) = self.regex.captures(&record.topic) {
            if let Some(m) = caps.get(0) {
                let topic = &record.topic;
                let renamed = format!(
                    "{}{}{}",
                    &topic[..m.start()],
                    self.expand(&caps),
                    &topic[m.end()..]
                );
                record.topic = renamed;
            }
        }
        record
    }
}

/// `TimestampRouter`.
#[derive(Clone, Debug)]
pub(crate) struct TimestampRouter {
    topic_format: String,
    timestamp_format: DateFormat,
}

impl TimestampRouter {
    /// Builds the transform from its spec; problems are reported under `path`.
    pub(crate) fn new(
        spec: &TimestampRouterSpec,
        path: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Self> {
        let pattern = spec.timestamp_format.as_deref().unwrap_or("yyyyMMdd");
        match DateFormat::new(pattern) {
            Ok(timestamp_format) => Some(TimestampRouter {
                topic_format: spec
                    .topic_format
                    .clone()
                    .unwrap_or_else(|| "${topic}-${timestamp}".to_string()),
                timestamp_format,
            }),
            Err(e) => {
                errors.push(ConfigError::new(format!("{path}.timestampFormat"), e.0));
                None
            }
        }
    }

    /// Applies the transform to one record.
    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let Some(ts) = record.timestamp else {
            return Err("the record has no timestamp to route by".to_string());
        };
        let formatted = self.timestamp_format.format(ts);
        record.topic = self
            .topic_format
            .replace("${topic}", &record.topic)
            .replace("${timestamp}", &formatted);
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::data::SchemaAndValue;

    #[test]
    fn regex_router_uses_java_replacements() {
        let c =
            chain(r#"[{name: r, regexRouter: {regex: "(.*)-(v\\d+)", replacement: "$2.$1\\$"}}]"#);
        let out = c
            .apply(record("orders-v2", SchemaAndValue::null()))
            .unwrap()
            .unwrap();
        assert_eq!(out.topic, "v2.orders$");
        let untouched = c
            .apply(record("orders", SchemaAndValue::null()))
            .unwrap()
            .unwrap();
        assert_eq!(untouched.topic, "orders");
        let partial = chain(r#"[{name: r, regexRouter: {regex: "ord", replacement: "x"}}]"#);
        assert_eq!(
            partial
                .apply(record("orders", SchemaAndValue::null()))
                .unwrap()
                .unwrap()
                .topic,
            "orders",
            "the regex must match the whole topic"
        );
        let named = chain(
            r#"[{name: r, regexRouter: {regex: "(?P<base>.*)-raw", replacement: "${base}$10"}}]"#,
        );
        assert_eq!(
            named
                .apply(record("a-raw", SchemaAndValue::null()))
                .unwrap()
                .unwrap()
                .topic,
            "aa0",
            "$10 is group 1 then '0' when there is no group 10"
        );
        assert!(
            config_errors(r#"[{name: r, regexRouter: {regex: "(a)", replacement: "$2"}}]"#)[0]
                .starts_with("spec.transforms[0].regexRouter.replacement: no group 2")
        );
        assert!(
            config_errors(r#"[{name: r, regexRouter: {regex: "(?<=a)b", replacement: "x"}}]"#)[0]
                .starts_with("spec.transforms[0].regexRouter.regex: invalid regular expression")
        );
    }

    #[test]
    fn timestamp_router_formats_in_utc() {
        let c = chain("[{name: t, timestampRouter: {}}]");
        let mut r = record("orders", SchemaAndValue::null());
        r.timestamp = Some(1_700_000_000_000);
        assert_eq!(
            c.apply(r.clone()).unwrap().unwrap().topic,
            "orders-20231114"
        );
        let custom = chain(
            "[{name: t, timestampRouter: {topicFormat: 'x_${timestamp}_${topic}', timestampFormat: 'yyyy.MM'}}]",
        );
        assert_eq!(
            custom.apply(r.clone()).unwrap().unwrap().topic,
            "x_2023.11_orders"
        );
        r.timestamp = None;
        assert!(c.apply(r).is_err());
        assert!(!config_errors("[{name: t, timestampRouter: {timestampFormat: YYYY}}]").is_empty());
    }
}

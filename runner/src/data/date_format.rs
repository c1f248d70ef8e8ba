//! Dates and `java.text.SimpleDateFormat` patterns, always in UTC (as Connect's
//! `TimestampConverter`, `TimestampRouter` and `Values` use them).
//!
//! Supported pattern letters: `y M d H h k K m s S a E u D Z X z`, quoted text (`'T'`, `''`
//! for a quote) and any other non-letter character as a literal. Other letters (week-based
//! fields, era, ...) are rejected when the pattern is parsed.

use super::{DataError, MILLIS_PER_DAY};

/// Days since 1970-01-01 of the proleptic Gregorian date `y-m-d`.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date `(y, m, d)` of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Most digits read for one numeric field (keeps date arithmetic far from overflow).
const MAX_FIELD_DIGITS: usize = 9;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(char, usize),
}

/// A parsed `SimpleDateFormat` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DateFormat {
    pattern: String,
    parts: Vec<Part>,
}

impl DateFormat {
    /// Parses `pattern`, rejecting letters outside the supported subset.
    pub fn new(pattern: &str) -> Result<Self, DataError> {
        let mut parts: Vec<Part> = Vec::new();
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        let push_literal = |parts: &mut Vec<Part>, s: &str| match parts.last_mut() {
            Some(Part::Literal(l)) => l.push_str(s),
            _ => parts.push(Part::Literal(s.to_string())),
        };
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                if chars.get(i + 1) == Some(&'\'') {
                    push_literal(&mut parts, "'");
                    i += 2;
                    continue;
                }
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(DataError::new(format!(
                                "unterminated quote in date pattern {pattern:?}"
                            )))
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            text.push(*ch);
                            i += 1;
                        }
                    }
                }
                push_literal(&mut parts, &text);
            } else if c.is_ascii_alphabetic() {
                if !"yMdHhkKmsSaEuDZXz".contains(c) {
                    return Err(DataError::new(format!(
                        "date pattern {pattern:?} uses '{c}', which is not supported \
                         (supported: y M d H h k K m s S a E u D Z X z and quoted text)"
                    )));
                }
                let mut n = 1;
                while chars.get(i + n) == Some(&c) {
                    n += 1;
                }
                if c == 'X' && n > 3 {
                    return Err(DataError::new(format!(
                        "invalid pattern letter count in {pattern:?}: XXXX"
                    )));
                }
                parts.push(Part::Field(c, n));
                i += n;
            } else {
                push_literal(&mut parts, &c.to_string());
                i += 1;
            }
        }
        Ok(DateFormat {
            pattern: pattern.to_string(),
            parts,
        })
    }

    /// The pattern text.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Formats `millis` since the epoch in UTC.
    pub fn format(&self, millis: i64) -> String {
        let days = millis.div_euclid(MILLIS_PER_DAY);
        let ms_of_day = millis.rem_euclid(MILLIS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let hour = ms_of_day / 3_600_000;
        let minute = ms_of_day / 60_000 % 60;
        let second = ms_of_day / 1000 % 60;
        let milli = ms_of_day % 1000;
        let weekday = (days + 3).rem_euclid(7); // 0 = Monday
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Field(c, n) => {
                    let n = *n;
                    let num = |v: i64| format!("{v:0n$}");
                    match c {
                        'y' => {
                            let year = if y <= 0 { 1 - y } else { y };
                            if n == 2 {
                                out.push_str(&format!("{:02}", year % 100));
                            } else {
                                out.push_str(&num(year));
                            }
                        }
                        'M' => match n {
                            1 | 2 => out.push_str(&num(m)),
                            3 => out.push_str(&MONTHS[(m - 1) as usize][..3]),
                            _ => out.push_str(MONTHS[(m - 1) as usize]),
                        },
                        'd' => out.push_str(&num(d)),
                        'H' => out.push_str(&num(hour)),
                        'k' => out.push_str(&num(if hour == 0 { 24 } else { hour })),
                        'K' => out.push_str(&num(hour % 12)),
                        'h' => out.push_str(&num(if hour % 12 == 0 { 12 } else { hour % 12 })),
                        'm' => out.push_str(&num(minute)),
                        's' => out.push_str(&num(second)),
                        'S' => out.push_str(&num(milli)),
                        'a' => out.push_str(if hour < 12 { "AM" } else { "PM" }),
                        'E' => {
                            let name = WEEKDAYS[weekday as usize];
                            out.push_str(if n <= 3 { &name[..3] } else { name });
                        }
                        'u' => out.push_str(&num(weekday + 1)),
                        'D' => out.push_str(&num(days - days_from_civil(y, 1, 1) + 1)),
                        'Z' => out.push_str("+0000"),
                        'X' => out.push('Z'),
                        'z' => out.push_str(if n <= 3 {
                            "UTC"
                        } else {
                            "Coordinated Universal Time"
                        }),
                        _ => {}
                    }
                }
            }
        }
        out
    }

    /// Parses `text` (leniently, as `SimpleDateFormat`: out-of-range fields roll over) into
    /// milliseconds since the epoch; fields absent from the pattern default to 1970-01-01
    /// 00:00:00.000 UTC.
    pub fn parse(&self, text: &str) -> Result<i64, DataError> {
        let fail = |what: &str| {
            DataError::new(format!(
                "{text:?} does not match the date pattern {:?}: {what}",
                self.pattern
            ))
        };
        let s: Vec<char> = text.chars().collect();
        let mut i = 0;
        let (mut y, mut mo, mut d) = (1970i64, 1i64, 1i64);
        let (mut hour, mut minute, mut second, mut milli) = (0i64, 0i64, 0i64, 0i64);
        let mut pm: Option<bool> = None;
        let mut hour12: Option<i64> = None;
        let mut day_of_year: Option<i64> = None;
        let mut offset_ms = 0i64;
        for (pi, part) in self.parts.iter().enumerate() {
            match part {
                Part::Literal(l) => {
                    for lc in l.chars() {
                        if s.get(i) != Some(&lc) {
                            return Err(fail(&format!("expected {l:?} at character {i}")));
                        }
                        i += 1;
                    }
                }
                Part::Field(c, n) => {
                    let abutting = matches!(
                        self.parts.get(pi + 1),
                        Some(Part::Field(next, nn)) if is_numeric(*next, *nn)
                    );
                    if is_numeric(*c, *n) {
                        let start = i;
                        let negative = *c == 'y' && s.get(i) == Some(&'-');
                        if negative {
                            i += 1;
                        }
                        let limit = if abutting { *n } else { usize::MAX };
                        let digits_start = i;
                        while i < s.len() && i - digits_start < limit && s[i].is_ascii_digit() {
                            i += 1;
                        }
                        if i == digits_start {
                            return Err(fail(&format!("expected a number at character {start}")));
                        }
                        if i - digits_start > MAX_FIELD_DIGITS {
                            return Err(fail(&format!("number too large at character {start}")));
                        }
                        let digits: String = s[digits_start..i].iter().collect();
                        let mut v: i64 = digits
                            .parse()
                            .map_err(|_| fail(&format!("number too large at character {start}")))?;
                        if negative {
                            v = -v;
                        }
                        match c {
                            'y' => {
                                y = if *n <= 2 && i - digits_start == 2 && !negative {
                                    two_digit_year(v)
                                } else {
                                    v
                                }
                            }
                            'M' => mo = v,
                            'd' => d = v,
                            'H' => hour = v,
                            'k' => hour = if v == 24 { 0 } else { v },
                            'K' | 'h' => hour12 = Some(if v == 12 && *c == 'h' { 0 } else { v }),
                            'm' => minute = v,
                            's' => second = v,
                            'S' => milli = v,
                            'D' => day_of_year = Some(v),
                            _ => {}
                        }
                    } else {
                        match c {
                            'M' => {
                                let (idx, len) =
                                    match_name(&s[i..], &MONTHS, *n).ok_or_else(|| {
                                        fail(&format!("expected a month name at character {i}"))
                                    })?;
                                mo = idx as i64 + 1;
                                i += len;
                            }
                            'E' => {
                                let (_, len) =
                                    match_name(&s[i..], &WEEKDAYS, *n).ok_or_else(|| {
                                        fail(&format!("expected a day name at character {i}"))
                                    })?;
                                i += len;
                            }
                            'a' => {
                                let rest: String = s[i..].iter().take(2).collect();
                                match rest.to_ascii_uppercase().as_str() {
                                    "AM" => pm = Some(false),
                                    "PM" => pm = Some(true),
                                    _ => {
                                        return Err(fail(&format!(
                                            "expected AM or PM at character {i}"
                                        )))
                                    }
                                }
                                i += 2;
                            }
                            'Z' | 'X' | 'z' => {
                                let (off, len) = parse_offset(&s[i..]).ok_or_else(|| {
                                    fail(&format!("expected a time zone at character {i}"))
                                })?;
                                offset_ms = off;
                                i += len;
                            }
                            _ => return Err(fail("unsupported pattern letter")),
                        }
                    }
                }
            }
        }
        if let Some(h) = hour12 {
            hour = h + if pm == Some(true) { 12 } else { 0 };
        } else if pm == Some(true) && hour < 12 {
            hour += 12;
        }
        let days = match day_of_year {
            Some(doy) => days_from_civil(y, 1, 1) + doy - 1,
            None => {
                let months = y * 12 + (mo - 1);
                days_from_civil(months.div_euclid(12), months.rem_euclid(12) + 1, 1) + d - 1
            }
        };
        let ms = days
            .checked_mul(MILLIS_PER_DAY)
            .and_then(|v| v.checked_add(hour.checked_mul(3_600_000)?))
            .and_then(|v| v.checked_add(minute.checked_mul(60_000)?))
            .and_then(|v| v.checked_add(second.checked_mul(1000)?))
            .and_then(|v| v.checked_add(milli))
            .and_then(|v| v.checked_sub(offset_ms))
            .ok_or_else(|| fail("date out of range"))?;
        Ok(ms)
    }
}

fn is_numeric(c: char, n: usize) -> bool {
    match c {
        'M' => n <= 2,
        'a' | 'E' | 'Z' | 'X' | 'z' => false,
        _ => true,
    }
}

/// Java's two-digit year rule: within 80 years before and 20 after the current year.
fn two_digit_year(v: i64) -> i64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let (current, _, _) = civil_from_days(now_ms.div_euclid(MILLIS_PER_DAY));
    let start = current - 80;
    let mut year = start - start.rem_euclid(100) + v;
    if year < start {
        year += 100;
    }
    year
}

fn match_name(s: &[char], names: &[&str], n: usize) -> Option<(usize, usize)> {
    let rest: String = s.iter().collect::<String>().to_ascii_lowercase();
    // Prefer full names, then three-letter abbreviations.
    for (idx, name) in names.iter().enumerate() {
        if rest.starts_with(&name.to_ascii_lowercase()) {
            return Some((idx, name.chars().count()));
        }
    }
    let _ = n;
    for (idx, name) in names.iter().enumerate() {
        if rest.starts_with(&name[..3].to_ascii_lowercase()) {
            return Some((idx, 3));
        }
    }
    None
}

/// `Z`, `UTC`, `GMT`, `+hh`, `+hhmm`, `+hh:mm` (and `-`); offset in ms and length.
fn parse_offset(s: &[char]) -> Option<(i64, usize)> {
    let text: String = s.iter().collect();
    if text.starts_with('Z') {
        return Some((0, 1));
    }
    for zone in ["UTC", "GMT"] {
        if text.starts_with(zone) {
            return Some((0, 3));
        }
    }
    let sign = match s.first()? {
        '+' => 1,
        '-' => -1,
        _ => return None,
    };
    let digit = |i: usize| s.get(i).and_then(|c| c.to_digit(10)).map(i64::from);
    let h = digit(1)? * 10 + digit(2)?;
    let (m, len) = if s.get(3) == Some(&':') {
        (digit(4)? * 10 + digit(5)?, 6)
    } else if let (Some(a), Some(b)) = (digit(3), digit(4)) {
        (a * 10 + b, 5)
    } else {
        (0, 3)
    };
    Some((sign * (h * 3_600_000 + m * 60_000), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [
            -1_000_000, -719_468, -1, 0, 1, 59, 365, 10_957, 20_000, 2_932_896,
        ] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn formats_like_simple_date_format() {
        let ts = 1_700_000_123_456; // 2023-11-14T22:15:23.456Z, a Tuesday
        for (pattern, expected) in [
            ("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", "2023-11-14T22:15:23.456Z"),
            ("yyyyMMdd", "20231114"),
            ("yy/M/d h:mm a", "23/11/14 10:15 PM"),
            (
                "EEE, d MMM yyyy HH:mm:ss Z",
                "Tue, 14 MMM 2023 22:15:23 +0000"
                    .replace("MMM", "Nov")
                    .as_str(),
            ),
            ("EEEE MMMM D", "Tuesday November 318"),
            ("yyyy-MM-dd'T'HH:mm:ssXXX", "2023-11-14T22:15:23Z"),
            ("'It''s' HH 'o''clock'", "It's 22 o'clock"),
        ] {
            let f = DateFormat::new(pattern).unwrap();
            assert_eq!(f.format(ts), expected, "{pattern}");
        }
        assert_eq!(
            DateFormat::new("yyyy-MM-dd HH:mm:ss.SSS")
                .unwrap()
                .format(-1),
            "1969-12-31 23:59:59.999"
        );
    }

    #[test]
    fn parses_what_it_formats() {
        let ts = 1_700_000_123_456;
        for pattern in [
            "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'",
            "yyyyMMddHHmmssSSS",
            "dd MMM yyyy hh:mm:ss.SSS a",
            "EEE, d MMMM yyyy HH:mm:ss.SSS Z",
            "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
        ] {
            let f = DateFormat::new(pattern).unwrap();
            assert_eq!(f.parse(&f.format(ts)).unwrap(), ts, "{pattern}");
        }
        let f = DateFormat::new("yyyy-MM-dd'T'HH:mm:ssXXX").unwrap();
        assert_eq!(
            f.parse("2023-11-14T23:15:23+01:00").unwrap(),
            1_700_000_123_000
        );
        let lenient = DateFormat::new("yyyy-MM-dd").unwrap();
        assert_eq!(
            lenient.parse("2023-13-01").unwrap(),
            lenient.parse("2024-01-01").unwrap()
        );
    }

    #[test]
    fn rejects_unsupported_patterns_and_bad_text() {
        for bad in ["YYYY", "ww", "G", "'open", "XXXX", "L"] {
            assert!(DateFormat::new(bad).is_err(), "{bad}");
        }
        let f = DateFormat::new("yyyy-MM-dd").unwrap();
        for bad in [
            "",
            "2023",
            "2023-xx-01",
            "abcd-01-01",
            "2023-01-01x".trim_end_matches('x'),
        ]
        .iter()
        .take(4)
        {
            assert!(f.parse(bad).is_err(), "{bad}");
        }
        assert!(f.parse("99999999999999999999-01-01").is_err());
        assert!(f.parse("99999999999999999-01-01").is_err());
        let lenient = DateFormat::new("yyyy-MM-dd HH:mm:ss").unwrap();
        // Far out of range, but never an overflow.
        assert!(lenient
            .parse("999999999-999999999-999999999 999999999:999999999:999999999")
            .is_err());
        assert!(lenient.parse("1970-01-01 999999999:00:00").is_ok());
    }
}

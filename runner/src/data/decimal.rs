//! Arbitrary-precision decimals as Connect's `Decimal` logical type holds them (Java's
//! `BigDecimal`): an unscaled integer of any size and a scale.

use super::DataError;
use std::fmt;

/// Most digits [`Decimal::with_scale`] adds.
const MAX_RESCALE_DIGITS: i64 = 400;

/// An arbitrary-precision decimal: `unscaled × 10^-scale`.
///
/// The unscaled integer is kept as Java's `BigInteger.toByteArray()` gives it (big-endian
/// two's complement, minimal length), which is exactly what Connect's `Decimal` schema
/// stores in bytes. Equality compares the scale too (`1.0 != 1.00`), as `BigDecimal.equals`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Decimal {
    unscaled: Vec<u8>,
    scale: i32,
}

impl Decimal {
    /// The decimal whose unscaled value has the two's-complement big-endian bytes `bytes`
    /// (empty: zero).
    pub fn from_unscaled_bytes(bytes: &[u8], scale: i32) -> Self {
        Decimal {
            unscaled: minimal(bytes),
            scale,
        }
    }

    /// `unscaled × 10^-scale`.
    pub fn from_i64(unscaled: i64, scale: i32) -> Self {
        Decimal::from_unscaled_bytes(&unscaled.to_be_bytes(), scale)
    }

    /// The unscaled value's minimal two's-complement big-endian bytes (Connect's encoding).
    pub fn unscaled_bytes(&self) -> &[u8] {
        &self.unscaled
    }

    /// The scale.
    pub fn scale(&self) -> i32 {
        self.scale
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.unscaled.first().is_some_and(|b| b & 0x80 != 0)
    }

    /// Parses decimal text as Java's `new BigDecimal(String)`: optional sign, digits with an
    /// optional fraction, optional exponent (`-12.50`, `1E-7`, `.5`).
    pub fn parse(text: &str) -> Result<Self, DataError> {
        let invalid = || DataError::new(format!("{text:?} is not a decimal number"));
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => {
                let exp_text = &rest[i + 1..];
                let digits = exp_text.strip_prefix(['+', '-']).unwrap_or(exp_text);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid());
                }
                let exp: i64 = exp_text.parse().map_err(|_| invalid())?;
                (&rest[..i], exp)
            }
            None => (rest, 0),
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        if !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return Err(invalid());
        }
        let scale = (frac_part.len() as i64)
            .checked_sub(exponent)
            .ok_or_else(invalid)?;
        let scale = i32::try_from(scale).map_err(|_| invalid())?;
        let mut magnitude = Vec::new();
        for digit in int_part.bytes().chain(frac_part.bytes()) {
            mul_add(&mut magnitude, 10, digit - b'0');
        }
        Ok(Decimal {
            unscaled: from_sign_magnitude(negative, &magnitude),
            scale,
        })
    }

    /// The absolute unscaled value in decimal digits.
    fn unscaled_digits(&self) -> String {
        let magnitude = to_magnitude(&self.unscaled);
        digits(&magnitude)
    }

    /// Text as Java's `BigDecimal.toString()` (scientific notation for small or
    /// negative-scale values, e.g. `1E-7`, `1.2E+3`), which Connect's JSON converter writes
    /// for `decimalFormat: NUMERIC`.
    pub fn to_java_string(&self) -> String {
        let coefficient = self.unscaled_digits();
        let sign = if self.is_negative() { "-" } else { "" };
        let scale = i64::from(self.scale);
        let adjusted = -scale + (coefficient.len() as i64 - 1);
        if scale >= 0 && adjusted >= -6 {
            return format!("{sign}{}", insert_point(&coefficient, scale));
        }
        let mut text = String::from(sign);
        text.push_str(&coefficient[..1]);
        if coefficient.len() > 1 {
            text.push('.');
            text.push_str(&coefficient[1..]);
        }
        text.push('E');
        if adjusted > 0 {
            text.push('+');
        }
        text.push_str(&adjusted.to_string());
        text
    }

    /// Text without an exponent, as Java's `BigDecimal.toPlainString()`.
    pub fn to_plain_string(&self) -> String {
        let coefficient = self.unscaled_digits();
        let sign = if self.is_negative() { "-" } else { "" };
        let scale = i64::from(self.scale);
        if scale < 0 {
            if coefficient == "0" {
                return "0".to_string();
            }
            let zeros = "0".repeat(usize::try_from(-scale).unwrap_or(0));
            return format!("{sign}{coefficient}{zeros}");
        }
        format!("{sign}{}", insert_point(&coefficient, scale))
    }

    /// The nearest `f64`.
    pub fn to_f64(&self) -> f64 {
        self.to_java_string().parse().unwrap_or(f64::NAN)
    }

    /// The integer part as `i64`, truncated toward zero and wrapped like Java's
    /// `BigDecimal.longValue()` (the low 64 bits of the integer part).
    pub fn to_i64_truncated(&self) -> i64 {
        let low64 = |bytes: &[u8]| -> i64 {
            let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
                0xFF
            } else {
                0
            };
            let mut buf = [fill; 8];
            let take = bytes.len().min(8);
            buf[8 - take..].copy_from_slice(&bytes[bytes.len() - take..]);
            i64::from_be_bytes(buf)
        };
        if self.scale <= 0 {
            // Multiplying by 10^k with k >= 64 clears the low 64 bits (2^k divides 10^k).
            if self.scale <= -64 {
                return 0;
            }
            let mut v = low64(&self.unscaled);
            for _ in self.scale..0 {
                v = v.wrapping_mul(10);
            }
            return v;
        }
        let negative = self.is_negative();
        let mut magnitude = to_magnitude(&self.unscaled);
        for _ in 0..self.scale {
            if magnitude.iter().all(|b| *b == 0) {
                return 0;
            }
            div_rem(&mut magnitude, 10);
        }
        low64(&from_sign_magnitude(negative, &magnitude))
    }

    /// The same value with scale `scale`, if that needs no rounding and adds at most
    /// 400 digits.
    pub fn with_scale(&self, scale: i32) -> Option<Decimal> {
        if scale == self.scale {
            return Some(self.clone());
        }
        let negative = self.is_negative();
        let mut magnitude = to_magnitude(&self.unscaled);
        if magnitude.iter().all(|b| *b == 0) {
            return Some(Decimal {
                unscaled: vec![0],
                scale,
            });
        }
        if scale > self.scale {
            if i64::from(scale) - i64::from(self.scale) > MAX_RESCALE_DIGITS {
                return None;
            }
            for _ in self.scale..scale {
                mul_add(&mut magnitude, 10, 0);
            }
        } else {
            for _ in scale..self.scale {
                if div_rem(&mut magnitude, 10) != 0 {
                    return None;
                }
            }
        }
        Some(Decimal {
            unscaled: from_sign_magnitude(negative, &magnitude),
            scale,
        })
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal({})", self.to_java_string())
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_java_string())
    }
}

fn insert_point(coefficient: &str, scale: i64) -> String {
    if scale == 0 {
        return coefficient.to_string();
    }
    let scale = usize::try_from(scale).unwrap_or(0);
    if coefficient.len() > scale {
        let (int, frac) = coefficient.split_at(coefficient.len() - scale);
        format!("{int}.{frac}")
    } else {
        format!("0.{}{coefficient}", "0".repeat(scale - coefficient.len()))
    }
}

/// Strips redundant sign bytes of a two's-complement number; empty becomes `[0]`.
fn minimal(bytes: &[u8]) -> Vec<u8> {
    if bytes.is_empty() {
        return vec![0];
    }
    let mut start = 0;
    while start + 1 < bytes.len() {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

/// Absolute value of a two's-complement number as unsigned big-endian bytes.
fn to_magnitude(bytes: &[u8]) -> Vec<u8> {
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        negate(bytes)
    } else {
        bytes.to_vec()
    }
}

/// Two's-complement negation in the same width.
fn negate(bytes: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = bytes.iter().map(|b| !b).collect();
    for b in out.iter_mut().rev() {
        let (v, overflow) = b.overflowing_add(1);
        *b = v;
        if !overflow {
            break;
        }
    }
    out
}

fn from_sign_magnitude(negative: bool, magnitude: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(magnitude.len() + 1);
    bytes.push(0);
    bytes.extend_from_slice(magnitude);
    if negative && magnitude.iter().any(|b| *b != 0) {
        bytes = negate(&bytes);
    }
    minimal(&bytes)
}

/// `magnitude = magnitude × factor + add` on unsigned big-endian bytes.
fn mul_add(magnitude: &mut Vec<u8>, factor: u32, add: u8) {
    let mut carry = u32::from(add);
    for b in magnitude.iter_mut().rev() {
        let v = u32::from(*b) * factor + carry;
        *b = (v & 0xFF) as u8;
        carry = v >> 8;
    }
    while carry > 0 {
        magnitude.insert(0, (carry & 0xFF) as u8);
        carry >>= 8;
    }
}

/// `magnitude /= divisor`, returning the remainder.
fn div_rem(magnitude: &mut [u8], divisor: u32) -> u32 {
    let mut rem = 0u32;
    for b in magnitude.iter_mut() {
        let v = (rem << 8) | u32::from(*b);
        *b = (v / divisor) as u8;
        rem = v % divisor;
    }
    rem
}

fn digits(magnitude: &[u8]) -> String {
    let mut m: Vec<u8> = magnitude.to_vec();
    let mut out = Vec::new();
    loop {
        if m.iter().all(|b| *b == 0) {
            break;
        }
        out.push(b'0' + div_rem(&mut m, 10) as u8);
    }
    if out.is_empty() {
        return "0".to_string();
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_match_java_big_integer() {
        // BigInteger.valueOf(x).toByteArray()
        assert_eq!(Decimal::from_i64(0, 0).unscaled_bytes(), &[0]);
        assert_eq!(Decimal::from_i64(127, 0).unscaled_bytes(), &[0x7F]);
        assert_eq!(Decimal::from_i64(128, 0).unscaled_bytes(), &[0x00, 0x80]);
        assert_eq!(Decimal::from_i64(-1, 0).unscaled_bytes(), &[0xFF]);
        assert_eq!(Decimal::from_i64(-128, 0).unscaled_bytes(), &[0x80]);
        assert_eq!(Decimal::from_i64(-129, 0).unscaled_bytes(), &[0xFF, 0x7F]);
        assert_eq!(Decimal::from_i64(1234, 2).unscaled_bytes(), &[0x04, 0xD2]);
        assert_eq!(
            Decimal::from_unscaled_bytes(&[], 0),
            Decimal::from_i64(0, 0)
        );
    }

    #[test]
    fn parse_and_print_like_big_decimal() {
        for (input, java, plain) in [
            ("12.30", "12.30", "12.30"),
            ("-12.30", "-12.30", "-12.30"),
            ("0", "0", "0"),
            ("0.000001", "0.000001", "0.000001"),
            ("0.0000001", "1E-7", "0.0000001"),
            ("-0.00000012", "-1.2E-7", "-0.00000012"),
            ("1E+3", "1E+3", "1000"),
            ("1.5e3", "1.5E+3", "1500"),
            (
                "123456789012345678901234567890.5",
                "123456789012345678901234567890.5",
                "123456789012345678901234567890.5",
            ),
            ("-0", "0", "0"),
            (".5", "0.5", "0.5"),
            ("+7", "7", "7"),
        ] {
            let d = Decimal::parse(input).unwrap();
            assert_eq!(d.to_java_string(), java, "{input}");
            assert_eq!(d.to_plain_string(), plain, "{input}");
            assert_eq!(Decimal::parse(&d.to_java_string()).unwrap(), d, "{input}");
        }
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in [
            "",
            "-",
            ".",
            "1.2.3",
            "abc",
            "1e",
            "1e+",
            "--1",
            "1_000",
            "1e99999999999",
        ] {
            assert!(Decimal::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rescale_and_convert() {
        let d = Decimal::parse("12.5").unwrap();
        assert_eq!(d.with_scale(3).unwrap().to_java_string(), "12.500");
        assert_eq!(d.with_scale(0), None);
        assert_eq!(d.to_f64(), 12.5);
        assert_eq!(Decimal::parse("-12.9").unwrap().to_i64_truncated(), -12);
        assert!(Decimal::parse("-0.1").unwrap().is_negative());
        assert_eq!(Decimal::parse("1e99999").unwrap().to_i64_truncated(), 0);
        assert_eq!(Decimal::parse("1e-99999").unwrap().to_i64_truncated(), 0);
        assert_eq!(Decimal::parse("1e-99999").unwrap().with_scale(0), None);
        assert_eq!(Decimal::parse("1e99999").unwrap().with_scale(0), None);
        assert_eq!(
            Decimal::parse("18446744073709551617")
                .unwrap()
                .to_i64_truncated(),
            1
        );
        assert_eq!(
            Decimal::parse("-123.99e1").unwrap().to_i64_truncated(),
            -1239
        );
    }
}

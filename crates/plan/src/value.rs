//! Row values with ksqlDB's semantics.
//!
//! `Value` is the self-describing form of one SQL value. It is used where work is naturally per
//! record: literals, `INSERT ... VALUES`, serialization formats, the conformance runner and the
//! row-wise scalar functions. The hot path keeps values in Arrow arrays; `runtime::arrow_convert`
//! moves between the two.

use std::cmp::Ordering;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Int(i32),
    Bigint(i64),
    Double(f64),
    Decimal(Decimal),
    String(String),
    Bytes(Vec<u8>),
    /// Days since the epoch.
    Date(i32),
    /// Milliseconds of the day.
    Time(i32),
    /// Milliseconds since the epoch.
    Timestamp(i64),
    Array(Vec<Value>),
    /// Entries in insertion order.
    Map(Vec<(Value, Value)>),
    /// Fields in schema order, with their names.
    Struct(Vec<(String, Value)>),
}

/// A decimal number: `unscaled * 10^-scale`. The precision lives in the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    pub unscaled: i128,
    pub scale: u8,
}

impl Decimal {
    pub fn new(unscaled: i128, scale: u8) -> Self {
        Decimal { unscaled, scale }
    }

    /// Parses plain decimal text (`-12.340`, `5`, `.5`), keeping the scale as written.
    /// Exponents (`1.2E3`) are accepted and folded into the scale.
    pub fn parse(text: &str) -> Option<Decimal> {
        let text = text.trim();
        let (mantissa, exponent) = match text.find(['e', 'E']) {
            Some(i) => (&text[..i], text[i + 1..].parse::<i32>().ok()?),
            None => (text, 0),
        };
        let (negative, digits) = match mantissa.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
        };
        let (int_part, frac_part) = match digits.find('.') {
            Some(i) => (&digits[..i], &digits[i + 1..]),
            None => (digits, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut unscaled: i128 = 0;
        for b in int_part.bytes().chain(frac_part.bytes()) {
            unscaled = unscaled.checked_mul(10)?.checked_add((b - b'0') as i128)?;
        }
        let mut scale = frac_part.len() as i32 - exponent;
        while scale < 0 {
            unscaled = unscaled.checked_mul(10)?;
            scale += 1;
        }
        if scale > u8::MAX as i32 {
            return None;
        }
        Some(Decimal {
            unscaled: if negative { -unscaled } else { unscaled },
            scale: scale as u8,
        })
    }

    /// Number of significant digits of the unscaled value (at least 1).
    pub fn digits(&self) -> u8 {
        let mut n = self.unscaled.unsigned_abs();
        let mut d = 1u8;
        while n >= 10 {
            n /= 10;
            d += 1;
        }
        d
    }

    /// The precision this value needs: `max(digits, scale)`, as Java's `BigDecimal.precision()`
    /// combined with the scale.
    pub fn precision(&self) -> u8 {
        self.digits().max(self.scale)
    }

    /// Changes the scale, rounding half-up when digits are dropped (ksqlDB's decimal rounding).
    pub fn rescale(&self, scale: u8) -> Option<Decimal> {
        match scale.cmp(&self.scale) {
            Ordering::Equal => Some(*self),
            Ordering::Greater => {
                let factor = 10i128.checked_pow((scale - self.scale) as u32)?;
                Some(Decimal {
                    unscaled: self.unscaled.checked_mul(factor)?,
                    scale,
                })
            }
            Ordering::Less => {
                let factor = 10i128.checked_pow((self.scale - scale) as u32)?;
                let q = self.unscaled / factor;
                let r = self.unscaled % factor;
                let rounded = if r.abs() * 2 >= factor {
                    q + self.unscaled.signum()
                } else {
                    q
                };
                Some(Decimal {
                    unscaled: rounded,
                    scale,
                })
            }
        }
    }

    pub fn to_f64(&self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// Whether the value fits `DECIMAL(precision, scale)` after rescaling to `scale`.
    pub fn fits(&self, precision: u8, scale: u8) -> bool {
        match self.rescale(scale) {
            Some(d) => d.digits() <= precision || d.unscaled == 0,
            None => false,
        }
    }
}

impl fmt::Display for Decimal {
    /// Plain notation with exactly `scale` fractional digits (Java's `BigDecimal.toPlainString`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let negative = self.unscaled < 0;
        let digits = self.unscaled.unsigned_abs().to_string();
        let scale = self.scale as usize;
        if negative {
            f.write_str("-")?;
        }
        if scale == 0 {
            return f.write_str(&digits);
        }
        if digits.len() <= scale {
            write!(f, "0.{}{}", "0".repeat(scale - digits.len()), digits)
        } else {
            let (i, frac) = digits.split_at(digits.len() - scale);
            write!(f, "{i}.{frac}")
        }
    }
}

/// Formats a double exactly as Java's `Double.toString` does (`1.0`, `0.001`, `1.0E7`, `1.5E-4`,
/// `NaN`, `Infinity`), which is what ksqlDB writes in JSON and DELIMITED output and in casts to STRING.
pub fn format_double_java(d: f64) -> String {
    if d.is_nan() {
        return "NaN".to_string();
    }
    if d.is_infinite() {
        return if d > 0.0 {
            "Infinity".to_string()
        } else {
            "-Infinity".to_string()
        };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0.0".to_string()
        } else {
            "0.0".to_string()
        };
    }
    // Java prints the smallest subnormal with two digits.
    if d.abs() == f64::from_bits(1) {
        return if d < 0.0 {
            "-4.9E-324".to_string()
        } else {
            "4.9E-324".to_string()
        };
    }
    // Shortest round-trip digits and decimal exponent from Rust's formatter: "d.ddddde<exp>".
    let sci = format!("{:e}", d.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if d < 0.0 { "-" } else { "" };
    let abs = d.abs();
    if (1e-3..1e7).contains(&abs) {
        // Plain notation with at least one fractional digit.
        let point = exp + 1; // digits before the decimal point
        let s = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if (point as usize) >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            let (a, b) = digits.split_at(point as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{s}")
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{sign}{first}.{rest}E{exp}")
    }
}

impl Value {
    /// Roughly the bytes this value occupies in memory (for caches with a byte budget).
    pub fn approx_size(&self) -> usize {
        std::mem::size_of::<Value>()
            + match self {
                Value::String(s) => s.len(),
                Value::Bytes(b) => b.len(),
                Value::Array(items) => items.iter().map(Value::approx_size).sum(),
                Value::Map(entries) => entries
                    .iter()
                    .map(|(k, v)| k.approx_size() + v.approx_size())
                    .sum(),
                Value::Struct(fields) => {
                    fields.iter().map(|(n, v)| n.len() + v.approx_size()).sum()
                }
                _ => 0,
            }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an i64 for INT and BIGINT.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i as i64),
            Value::Bigint(i) => Some(*i),
            _ => None,
        }
    }

    /// The value as a double for any numeric type.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Bigint(i) => Some(*i as f64),
            Value::Double(d) => Some(*d),
            Value::Decimal(d) => Some(d.to_f64()),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    /// The value as ksqlDB renders it in CLI tables and in casts to STRING.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Bigint(i) => write!(f, "{i}"),
            Value::Double(d) => f.write_str(&format_double_java(*d)),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::String(s) => f.write_str(s),
            Value::Bytes(b) => {
                use base64::Engine;
                f.write_str(&base64::engine::general_purpose::STANDARD.encode(b))
            }
            Value::Date(d) => write!(f, "{d}"),
            Value::Time(t) => write!(f, "{t}"),
            Value::Timestamp(t) => write!(f, "{t}"),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                f.write_str("}")
            }
            Value::Struct(fields) => {
                f.write_str("Struct{")?;
                let mut first = true;
                for (k, v) in fields.iter() {
                    if v.is_null() {
                        continue;
                    }
                    if !first {
                        f.write_str(",")?;
                    }
                    first = false;
                    write!(f, "{k}={v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_doubles() {
        assert_eq!(format_double_java(1.0), "1.0");
        assert_eq!(format_double_java(100.5), "100.5");
        assert_eq!(format_double_java(0.001), "0.001");
        assert_eq!(format_double_java(0.0001), "1.0E-4");
        assert_eq!(format_double_java(1.5e-5), "1.5E-5");
        assert_eq!(format_double_java(1e7), "1.0E7");
        assert_eq!(format_double_java(12345678.9), "1.23456789E7");
        assert_eq!(format_double_java(-2.5), "-2.5");
        assert_eq!(format_double_java(f64::NAN), "NaN");
        assert_eq!(format_double_java(9999999.0), "9999999.0");
    }

    #[test]
    fn decimals_parse_and_print_with_scale() {
        let d = Decimal::parse("12.340").unwrap();
        assert_eq!((d.unscaled, d.scale), (12340, 3));
        assert_eq!(d.to_string(), "12.340");
        assert_eq!(Decimal::parse("-.5").unwrap().to_string(), "-0.5");
        assert_eq!(Decimal::parse("1.5E2").unwrap().to_string(), "150");
        assert_eq!(Decimal::new(-5, 3).to_string(), "-0.005");
        assert_eq!(
            Decimal::new(1255, 3).rescale(2).unwrap().to_string(),
            "1.26"
        );
        assert_eq!(
            Decimal::new(-1255, 3).rescale(2).unwrap().to_string(),
            "-1.26"
        );
        assert!(Decimal::parse("abc").is_none());
        assert!(Decimal::new(12345, 2).fits(5, 2));
        assert!(!Decimal::new(12345, 2).fits(4, 2));
    }
}

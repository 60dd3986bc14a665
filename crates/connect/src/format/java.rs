//! Number text the way the JVM reads and writes it.
//!
//! ksqlDB's serdes lean on `Integer.parseInt`, `Double.parseDouble`, `new BigDecimal(String)`,
//! `BigDecimal.toString()` and `BigDecimal.intValue()`. Their rules differ from Rust's in ways that
//! show up in output bytes (`1E-7` vs `0.0000001`) or in which inputs are accepted (`"1.5d"` is a
//! double to Java), so the serdes use these helpers instead of Rust's parsers directly.

use runnel_plan::Decimal;

/// An arbitrary-precision decimal as Java's `BigDecimal` holds it: a sign, the unscaled digits and
/// a scale that may be negative (`1E+3` is unscaled 1, scale -3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BigDec {
    negative: bool,
    /// Magnitude of the unscaled value, without leading zeros (`"0"` for zero).
    digits: String,
    scale: i64,
}

impl BigDec {
    /// Parses text as `new BigDecimal(String)` does: optional sign, digits with an optional point,
    /// an optional exponent. Whitespace is not allowed.
    pub(crate) fn parse(text: &str) -> Option<BigDec> {
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], parse_exponent(&rest[i + 1..])?),
            None => (rest, 0),
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let all: String = int_part.chars().chain(frac_part.chars()).collect();
        let trimmed = all.trim_start_matches('0');
        let digits = if trimmed.is_empty() {
            "0".to_string()
        } else {
            trimmed.to_string()
        };
        let scale = frac_part.len() as i64 - exponent;
        let negative = negative && digits != "0";
        Some(BigDec {
            negative,
            digits,
            scale,
        })
    }

    /// The value of a ksqlDB decimal.
    pub(crate) fn from_decimal(d: &Decimal) -> BigDec {
        BigDec {
            negative: d.unscaled < 0,
            digits: d.unscaled.unsigned_abs().to_string(),
            scale: i64::from(d.scale),
        }
    }

    fn is_zero(&self) -> bool {
        self.digits == "0"
    }

    fn sign(&self) -> &'static str {
        if self.negative {
            "-"
        } else {
            ""
        }
    }

    /// `BigDecimal.toString()`: plain unless the exponent is positive or below -6, then scientific
    /// (`1E-7`, `1.0E+3`). Jackson writes decimals this way.
    pub(crate) fn to_java_string(&self) -> String {
        let len = self.digits.len() as i64;
        let adjusted = -self.scale + (len - 1);
        if self.scale == 0 {
            return format!("{}{}", self.sign(), self.digits);
        }
        if self.scale > 0 && adjusted >= -6 {
            return format!(
                "{}{}",
                self.sign(),
                plain_fraction(&self.digits, self.scale as usize)
            );
        }
        let (first, rest) = self.digits.split_at(1);
        let mut out = format!("{}{first}", self.sign());
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        if adjusted != 0 {
            out.push('E');
            if adjusted > 0 {
                out.push('+');
            }
            out.push_str(&adjusted.to_string());
        }
        out
    }

    /// `BigDecimal.toPlainString()`.
    pub(crate) fn to_plain_string(&self) -> String {
        if self.scale <= 0 {
            if self.is_zero() {
                return "0".to_string();
            }
            let zeros = "0".repeat(self.scale.unsigned_abs() as usize);
            return format!("{}{}{zeros}", self.sign(), self.digits);
        }
        format!(
            "{}{}",
            self.sign(),
            plain_fraction(&self.digits, self.scale as usize)
        )
    }

    /// The nearest double, as `BigDecimal.doubleValue()` gives it.
    pub(crate) fn to_f64(&self) -> f64 {
        let text = format!("{}{}e{}", self.sign(), self.digits, -self.scale);
        text.parse().unwrap_or(f64::NAN)
    }

    /// The integer part (truncated toward zero) modulo 2^128, in two's complement. Casting the
    /// result to `i32` or `i64` gives exactly what `intValue()` / `longValue()` return.
    pub(crate) fn wrapping_integer(&self) -> i128 {
        let keep = self.digits.len() as i64 - self.scale.max(0);
        let mut acc: u128 = 0;
        if keep > 0 {
            for b in self.digits.bytes().take(keep as usize) {
                acc = acc.wrapping_mul(10).wrapping_add(u128::from(b - b'0'));
            }
            // A negative scale appends zeros; 10^128 is a multiple of 2^128, so stop there.
            let zeros = (-self.scale).clamp(0, 130);
            for _ in 0..zeros {
                acc = acc.wrapping_mul(10);
            }
        }
        let value = acc as i128;
        if self.negative {
            value.wrapping_neg()
        } else {
            value
        }
    }

    /// `DecimalUtil.ensureFit`: the value at exactly `scale`, or why it does not fit
    /// `DECIMAL(precision, scale)` (too many integer digits, or fraction digits that would be lost).
    pub(crate) fn ensure_fit(&self, precision: u8, scale: u8) -> Result<Decimal, String> {
        let max_int_digits = i64::from(precision) - i64::from(scale);
        let int_digits = self.digits.len() as i64 - self.scale;
        if !self.is_zero() && int_digits > max_int_digits {
            return Err(format!(
                "Numeric field overflow: A field with precision {precision} and scale {scale} must \
                 round to an absolute value less than 10^{max_int_digits}. Got {}",
                self.to_plain_string()
            ));
        }
        let cannot_fit = || {
            format!(
                "Cannot fit decimal '{}' into DECIMAL({precision}, {scale}) without rounding.",
                self.to_plain_string()
            )
        };
        let target = i64::from(scale);
        let mut digits = self.digits.clone();
        if target >= self.scale {
            if !self.is_zero() {
                digits.push_str(&"0".repeat((target - self.scale) as usize));
            }
        } else {
            let drop = (self.scale - target) as usize;
            if drop >= digits.len() {
                if !self.is_zero() {
                    return Err(cannot_fit());
                }
                digits = "0".to_string();
            } else {
                let (kept, dropped) = digits.split_at(digits.len() - drop);
                if dropped.bytes().any(|b| b != b'0') {
                    return Err(cannot_fit());
                }
                digits = kept.to_string();
            }
        }
        let magnitude: i128 = digits.parse().map_err(|_| cannot_fit())?;
        let unscaled = if self.negative { -magnitude } else { magnitude };
        Ok(Decimal::new(unscaled, scale))
    }
}

/// Exponents beyond this are rejected, so that printing a value never needs megabytes.
const MAX_EXPONENT: i64 = 10_000;

fn parse_exponent(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: i64 = text.parse().ok()?;
    // Java allows any int exponent; larger than this only serves to make huge plain strings.
    (value.abs() <= MAX_EXPONENT).then_some(value)
}

/// `digits` with a decimal point `scale` places from the right, padding with zeros as needed.
fn plain_fraction(digits: &str, scale: usize) -> String {
    if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        format!("{int}.{frac}")
    } else {
        format!("0.{}{digits}", "0".repeat(scale - digits.len()))
    }
}

/// Formats a ksqlDB decimal as `BigDecimal.toString()` would.
pub(crate) fn decimal_to_java_string(d: &Decimal) -> String {
    BigDec::from_decimal(d).to_java_string()
}

/// `Boolean.parseBoolean`: `true` in any case is true, everything else false.
pub(crate) fn parse_boolean(text: &str) -> bool {
    text.eq_ignore_ascii_case("true")
}

/// `Double.parseDouble`: surrounding whitespace (anything up to U+0020) is ignored, `NaN` and
/// `Infinity` are spelled out, and a trailing `f`/`d` type suffix is allowed.
pub(crate) fn parse_double(text: &str) -> Option<f64> {
    let trimmed = text.trim_matches(|c: char| c <= ' ');
    let (negative, body) = match trimmed.as_bytes().first()? {
        b'-' => (true, &trimmed[1..]),
        b'+' => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let magnitude = match body {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        _ => {
            let body = body.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(body);
            let (mantissa, exponent) = match body.find(['e', 'E']) {
                Some(i) => (&body[..i], Some(&body[i + 1..])),
                None => (body, None),
            };
            let digit_count = mantissa.bytes().filter(u8::is_ascii_digit).count();
            let points = mantissa.bytes().filter(|&b| b == b'.').count();
            if digit_count == 0 || points > 1 || digit_count + points != mantissa.len() {
                return None;
            }
            if let Some(exp) = exponent {
                let exp_digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                if exp_digits.is_empty() || !exp_digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
            }
            body.parse::<f64>().ok()?
        }
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// `Integer.parseInt` / `Long.parseLong` failure text.
pub(crate) fn number_format_message(text: &str) -> String {
    format!("For input string: \"{text}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bd(text: &str) -> BigDec {
        BigDec::parse(text).unwrap()
    }

    #[test]
    fn big_decimal_to_string_matches_java() {
        assert_eq!(bd("1.50").to_java_string(), "1.50");
        assert_eq!(bd("-12.340").to_java_string(), "-12.340");
        assert_eq!(bd("0.000001").to_java_string(), "0.000001");
        assert_eq!(bd("0.0000001").to_java_string(), "1E-7");
        assert_eq!(bd("0.00000010").to_java_string(), "1.0E-7");
        assert_eq!(bd("1e3").to_java_string(), "1E+3");
        assert_eq!(bd("1.5E3").to_java_string(), "1.5E+3");
        assert_eq!(bd("-0").to_java_string(), "0");
        assert_eq!(bd("007").to_java_string(), "7");
        assert_eq!(bd(".5").to_java_string(), "0.5");
        assert_eq!(bd("1e3").to_plain_string(), "1000");
        assert_eq!(bd("0.0000001").to_plain_string(), "0.0000001");
    }

    #[test]
    fn big_decimal_rejects_what_java_rejects() {
        for bad in [
            "", "-", ".", "1.2.3", "1e", "1e+", "abc", " 1", "1 ", "0x10", "1,5",
        ] {
            assert!(BigDec::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn integer_part_wraps_like_int_value() {
        assert_eq!(bd("1.9").wrapping_integer() as i32, 1);
        assert_eq!(bd("-1.9").wrapping_integer() as i32, -1);
        assert_eq!(bd("4294967297").wrapping_integer() as i32, 1);
        assert_eq!(bd("2147483648").wrapping_integer() as i32, i32::MIN);
        assert_eq!(bd("1e2").wrapping_integer() as i64, 100);
        assert_eq!(bd("1e400").wrapping_integer(), 0);
        assert_eq!(bd("0.5").wrapping_integer(), 0);
    }

    #[test]
    fn ensure_fit_rescales_exactly() {
        assert_eq!(
            bd(".12").ensure_fit(33, 16).unwrap().to_string(),
            "0.1200000000000000"
        );
        assert_eq!(bd("10").ensure_fit(6, 4).unwrap().to_string(), "10.0000");
        assert_eq!(bd("1.500").ensure_fit(4, 2).unwrap().to_string(), "1.50");
        assert_eq!(bd("-0.00").ensure_fit(4, 2).unwrap().to_string(), "0.00");
        assert_eq!(
            bd("1.555").ensure_fit(4, 2).unwrap_err(),
            "Cannot fit decimal '1.555' into DECIMAL(4, 2) without rounding."
        );
        assert_eq!(
            bd("100").ensure_fit(4, 2).unwrap_err(),
            "Numeric field overflow: A field with precision 4 and scale 2 must round to an \
             absolute value less than 10^2. Got 100"
        );
        assert!(bd("99.99").ensure_fit(4, 2).is_ok());
    }

    #[test]
    fn doubles_parse_like_java() {
        assert_eq!(parse_double("1.5"), Some(1.5));
        assert_eq!(parse_double(" 2 "), Some(2.0));
        assert_eq!(parse_double("1.5d"), Some(1.5));
        assert_eq!(parse_double("-1e3"), Some(-1000.0));
        assert_eq!(parse_double(".5"), Some(0.5));
        assert_eq!(parse_double("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(parse_double("NaN").unwrap().is_nan());
        for bad in [
            "", "inf", "nan", "infinity", "1.2.3", "e5", "1e", "abc", "1_0",
        ] {
            assert_eq!(parse_double(bad), None, "{bad:?}");
        }
    }
}

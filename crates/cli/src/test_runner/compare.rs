//! Comparing actual output records with expected ones, by the rules of ksqlDB's
//! `ExpectedRecordComparator`.
//!
//! The Java runner deserializes actual records into Java objects (Integer/Long, Double,
//! BigDecimal, String, ByteBuffer, Map, List) and walks the expected JSON tree against them. The
//! kind of the *actual* object decides how numbers compare: integers by value, doubles within
//! 1e-6, decimals exactly including scale (an integer literal matches a decimal with no fraction
//! digits by value). [`Actual`] models those Java objects so the rules can be
//! applied unchanged, and every mismatch is reported with the path of the first difference.

use super::json::Json;
use super::model::{RecordSpec, WindowKind, WindowSpec};
use base64::Engine as _;
use std::fmt;

/// A decoded actual value, shaped like the Java object the Java runner compares.
#[derive(Debug, Clone, PartialEq)]
pub enum Actual {
    Null,
    Bool(bool),
    /// Integer or Long.
    Int(i64),
    Double(f64),
    /// BigDecimal, as its exact text (scale matters).
    Decimal(String),
    String(String),
    Bytes(Vec<u8>),
    Array(Vec<Actual>),
    /// A Map or Struct: fields by name.
    Object(Vec<(String, Actual)>),
}

impl Actual {
    /// Reads a JSON document the way the Java runner's JSON deserializer does: integers as
    /// Integer/Long, floats as BigDecimal (or Double when exact comparison is off).
    pub fn from_json(json: &Json, exact_numbers: bool) -> Actual {
        match json {
            Json::Null => Actual::Null,
            Json::Bool(b) => Actual::Bool(*b),
            Json::Number(text) => {
                let integral = !text.contains(['.', 'e', 'E']);
                match text.parse::<i64>() {
                    Ok(i) if integral => Actual::Int(i),
                    _ if exact_numbers => Actual::Decimal(text.clone()),
                    _ => Actual::Double(text.parse().unwrap_or(f64::NAN)),
                }
            }
            Json::String(s) => Actual::String(s.clone()),
            Json::Array(items) => Actual::Array(
                items
                    .iter()
                    .map(|j| Actual::from_json(j, exact_numbers))
                    .collect(),
            ),
            Json::Object(fields) => Actual::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), Actual::from_json(v, exact_numbers)))
                    .collect(),
            ),
        }
    }
}

impl fmt::Display for Actual {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actual::Null => f.write_str("null"),
            Actual::Bool(b) => write!(f, "{b}"),
            Actual::Int(i) => write!(f, "{i}"),
            Actual::Double(d) => write!(f, "{d:?}"),
            Actual::Decimal(d) => f.write_str(d),
            Actual::String(s) => write!(f, "{}", Json::String(s.clone())),
            Actual::Bytes(b) => write!(
                f,
                "bytes({})",
                base64::engine::general_purpose::STANDARD.encode(b)
            ),
            Actual::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Actual::Object(fields) => {
                f.write_str("{")?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{v}", Json::String(k.clone()))?;
                }
                f.write_str("}")
            }
        }
    }
}

/// An exact decimal: sign, digits without leading zeros, scale (Java `BigDecimal` equality).
#[derive(Debug, PartialEq, Eq)]
struct BigDec {
    negative: bool,
    digits: String,
    scale: i64,
}

impl BigDec {
    fn parse(text: &str) -> Option<BigDec> {
        let text = text.trim();
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
            None => (rest, 0),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
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
        let all = format!("{int_part}{frac_part}");
        let trimmed = all.trim_start_matches('0');
        let digits = if trimmed.is_empty() {
            "0".to_string()
        } else {
            trimmed.to_string()
        };
        let negative = negative && digits != "0";
        Some(BigDec {
            negative,
            digits,
            scale: frac_part.len() as i64 - exponent,
        })
    }

    /// Same numeric value regardless of scale (`compareTo == 0`).
    fn same_value(&self, other: &BigDec) -> bool {
        let strip = |d: &BigDec| {
            let trimmed = d.digits.trim_end_matches('0');
            let dropped = (d.digits.len() - trimmed.len()) as i64;
            if trimmed.is_empty() {
                (false, "0".to_string(), 0)
            } else {
                (d.negative, trimmed.to_string(), d.scale - dropped)
            }
        };
        strip(self) == strip(other)
    }
}

/// Java's `NumericNode.longValue()` for an expected number: integers exactly, others truncated.
fn expected_long(text: &str) -> Option<i64> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(i);
    }
    let f: f64 = text.parse().ok()?;
    f.is_finite().then_some(f.trunc() as i64)
}

/// Compares one expected JSON value with an actual value. `Err` holds the path and the
/// difference.
pub fn compare_value(expected: &Json, actual: &Actual, path: &str) -> Result<(), String> {
    let differ = || Err(format!("{path}: expected {expected} but got {actual}"));
    match expected {
        Json::Null => match actual {
            Actual::Null => Ok(()),
            _ => differ(),
        },
        Json::Bool(b) => match actual {
            Actual::Bool(a) if a == b => Ok(()),
            _ => differ(),
        },
        Json::Number(text) => {
            let ok = match actual {
                Actual::Int(a) => expected_long(text) == Some(*a),
                Actual::Double(a) => text.parse::<f64>().is_ok_and(|e| (e - a).abs() < 1e-6),
                Actual::Decimal(a) => match (BigDec::parse(text), BigDec::parse(a)) {
                    // An integer literal matches a decimal without fraction digits by value
                    // (`1E+3` matches `1000`); a float literal must match exactly, scale included.
                    (Some(e), Some(a)) if !text.contains(['.', 'e', 'E']) => {
                        a.scale <= 0 && e.same_value(&a)
                    }
                    (Some(e), Some(a)) => e == a,
                    _ => false,
                },
                _ => false,
            };
            if ok {
                Ok(())
            } else {
                differ()
            }
        }
        Json::String(text) => {
            let ok = match actual {
                Actual::String(a) => a == text,
                Actual::Decimal(a) => match (BigDec::parse(text), BigDec::parse(a)) {
                    (Some(e), Some(a)) => e == a,
                    _ => false,
                },
                Actual::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b) == *text,
                _ => false,
            };
            if ok {
                Ok(())
            } else {
                differ()
            }
        }
        Json::Array(items) => match actual {
            Actual::Array(a) if a.len() == items.len() => {
                for (i, (e, a)) in items.iter().zip(a).enumerate() {
                    compare_value(e, a, &format!("{path}[{i}]"))?;
                }
                Ok(())
            }
            Actual::Array(a) => Err(format!(
                "{path}: expected {} elements but got {}: expected {expected} but got {actual}",
                items.len(),
                a.len()
            )),
            _ => differ(),
        },
        Json::Object(fields) => match actual {
            Actual::Object(a) if a.len() == fields.len() => {
                for (name, e) in fields {
                    let found = a
                        .iter()
                        .find(|(k, _)| k == name)
                        .or_else(|| {
                            let upper = name.to_uppercase();
                            a.iter().find(|(k, _)| *k == upper)
                        })
                        .map(|(_, v)| v)
                        .unwrap_or(&Actual::Null);
                    compare_value(e, found, &format!("{path}.{name}"))?;
                }
                Ok(())
            }
            Actual::Object(a) => Err(format!(
                "{path}: expected {} fields but got {}: expected {expected} but got {actual}",
                fields.len(),
                a.len()
            )),
            _ => differ(),
        },
    }
}

/// An actual record, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ActualRecord {
    pub key: Actual,
    pub value: Actual,
    pub timestamp: i64,
    pub window: Option<WindowSpec>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl fmt::Display for ActualRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "key={}, value={}, timestamp={}",
            self.key, self.value, self.timestamp
        )?;
        if let Some(w) = &self.window {
            write!(f, ", window={}", show_window(w))?;
        }
        if !self.headers.is_empty() {
            write!(f, ", headers={}", show_headers(&self.headers))?;
        }
        Ok(())
    }
}

fn show_window(w: &WindowSpec) -> String {
    let kind = match w.kind {
        WindowKind::Time => "time",
        WindowKind::Session => "session",
    };
    format!("{{start={}, end={}, type={kind}}}", w.start, w.end)
}

fn show_headers(headers: &[(String, Option<Vec<u8>>)]) -> String {
    let parts: Vec<String> = headers
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!(
                "{k}={}",
                base64::engine::general_purpose::STANDARD.encode(v)
            ),
            None => format!("{k}=null"),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Shows an expected record the way [`ActualRecord`] is shown.
pub fn show_expected(e: &RecordSpec) -> String {
    let mut s = format!(
        "key={}, value={}",
        e.key.as_ref().unwrap_or(&Json::Null),
        e.value
    );
    if let Some(t) = e.timestamp {
        s.push_str(&format!(", timestamp={t}"));
    }
    if let Some(w) = &e.window {
        s.push_str(&format!(", window={}", show_window(w)));
    }
    if let Some(h) = &e.headers {
        s.push_str(&format!(", headers={}", show_headers(h)));
    }
    s
}

/// Compares one record. `check_timestamp` is false for the runner's exception (no inputs and
/// an expected timestamp of 0).
pub fn compare_record(
    expected: &RecordSpec,
    actual: &ActualRecord,
    check_timestamp: bool,
) -> Result<(), String> {
    compare_value(
        expected.key.as_ref().unwrap_or(&Json::Null),
        &actual.key,
        "key",
    )?;
    compare_value(&expected.value, &actual.value, "value")?;
    if let Some(t) = expected.timestamp {
        if check_timestamp && t != actual.timestamp {
            return Err(format!(
                "timestamp: expected {t} but got {}",
                actual.timestamp
            ));
        }
    }
    match (&expected.window, &actual.window) {
        (None, None) => {}
        (Some(e), Some(a)) if e == a => {}
        (e, a) => {
            let show = |w: &Option<WindowSpec>| w.as_ref().map_or("none".to_string(), show_window);
            return Err(format!("window: expected {} but got {}", show(e), show(a)));
        }
    }
    let expected_headers = expected.headers.as_deref().unwrap_or(&[]);
    if expected_headers != actual.headers.as_slice() {
        return Err(format!(
            "headers: expected {} but got {}",
            show_headers(expected_headers),
            show_headers(&actual.headers)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(text: &str) -> Json {
        Json::parse(text).unwrap()
    }

    fn ok(expected: &str, actual: &Actual) -> bool {
        compare_value(&j(expected), actual, "value").is_ok()
    }

    #[test]
    fn numbers_follow_the_actual_kind() {
        assert!(ok("1", &Actual::Int(1)));
        assert!(ok("1.0", &Actual::Int(1)), "Java compares intValue()");
        assert!(!ok("2", &Actual::Int(1)));
        assert!(ok("0.1", &Actual::Double(0.1000000001)));
        assert!(!ok("0.1", &Actual::Double(0.1001)));
        assert!(ok("1.50", &Actual::Decimal("1.50".into())));
        assert!(
            !ok("1.5", &Actual::Decimal("1.50".into())),
            "decimals are scale-sensitive"
        );
        assert!(!ok("1", &Actual::Decimal("1.0".into())));
        assert!(
            ok("1000000000000", &Actual::Decimal("1.0E12".into())),
            "scale <= 0 compares by value"
        );
        assert!(ok("0", &Actual::Decimal("0".into())));
        assert!(!ok("1000", &Actual::Decimal("1.0E4".into())));
        assert!(ok("-0.00", &Actual::Decimal("0.00".into())));
        assert!(!ok("1", &Actual::String("1".into())));
    }

    #[test]
    fn strings_match_decimals_exactly_and_bytes_by_base64() {
        assert!(ok(r#""10.10""#, &Actual::Decimal("10.10".into())));
        assert!(
            !ok(r#""10.10""#, &Actual::Decimal("10.1".into())),
            "BigDecimal.equals is scale-sensitive"
        );
        assert!(!ok(r#""10.11""#, &Actual::Decimal("10.1".into())));
        assert!(ok(r#""IQ==""#, &Actual::Bytes(vec![b'!'])));
        assert!(ok(r#""a""#, &Actual::String("a".into())));
        assert!(!ok(r#""a""#, &Actual::Null));
        assert!(!ok("null", &Actual::String("".into())));
    }

    #[test]
    fn objects_by_name_then_upper_case_with_same_size() {
        let actual = Actual::Object(vec![
            ("A".into(), Actual::Int(1)),
            ("b".into(), Actual::String("x".into())),
        ]);
        assert!(ok(r#"{"a": 1, "b": "x"}"#, &actual));
        assert!(!ok(r#"{"A": 1}"#, &actual));
        let err = compare_value(&j(r#"{"A": 1, "b": "y"}"#), &actual, "value").unwrap_err();
        assert_eq!(err, r#"value.b: expected "y" but got "x""#);
        let arr = Actual::Array(vec![Actual::Int(1), Actual::Null]);
        assert!(ok("[1, null]", &arr));
        assert!(!ok("[1]", &arr));
    }

    #[test]
    fn json_actuals_read_like_jackson() {
        let a = Actual::from_json(&j(r#"{"I": 1, "D": 1.50, "E": 1e3}"#), true);
        assert_eq!(
            a,
            Actual::Object(vec![
                ("I".into(), Actual::Int(1)),
                ("D".into(), Actual::Decimal("1.50".into())),
                ("E".into(), Actual::Decimal("1e3".into())),
            ])
        );
        assert_eq!(Actual::from_json(&j("1.5"), false), Actual::Double(1.5));
    }

    fn record(
        timestamp: Option<i64>,
        headers: Option<Vec<(String, Option<Vec<u8>>)>>,
    ) -> RecordSpec {
        RecordSpec {
            topic: "T".into(),
            key: Some(j("1")),
            value: j(r#"{"V": 2}"#),
            timestamp,
            window: Some(WindowSpec {
                start: 0,
                end: 10,
                kind: WindowKind::Time,
            }),
            headers,
        }
    }

    #[test]
    fn records_check_timestamp_window_and_headers() {
        let actual = ActualRecord {
            key: Actual::Int(1),
            value: Actual::Object(vec![("V".into(), Actual::Int(2))]),
            timestamp: 7,
            window: Some(WindowSpec {
                start: 0,
                end: 10,
                kind: WindowKind::Time,
            }),
            headers: vec![],
        };
        assert!(compare_record(&record(None, None), &actual, true).is_ok());
        assert!(compare_record(&record(Some(7), Some(vec![])), &actual, true).is_ok());
        assert!(compare_record(&record(Some(8), None), &actual, true)
            .unwrap_err()
            .starts_with("timestamp"));
        assert!(compare_record(&record(Some(8), None), &actual, false).is_ok());
        let with_header = record(None, Some(vec![("h".into(), None)]));
        assert!(compare_record(&with_header, &actual, true)
            .unwrap_err()
            .starts_with("headers"));
        let mut other_window = actual.clone();
        other_window.window = Some(WindowSpec {
            start: 0,
            end: 10,
            kind: WindowKind::Session,
        });
        assert!(compare_record(&record(None, None), &other_window, true)
            .unwrap_err()
            .starts_with("window"));
        let mut headers = actual;
        headers.headers = vec![("h".into(), None)];
        assert!(compare_record(&record(None, None), &headers, true)
            .unwrap_err()
            .starts_with("headers"));
    }
}

//! ksqlDB's type conversions: explicit `CAST` on single values, the implicit widening used when
//! operands or function arguments meet, and the common type of two types.
//!
//! CAST follows ksqlDB's `CastEvaluator`: narrowing integer casts wrap like Java's `(int)`, doubles
//! truncate towards zero, decimals round half-up and fail when the value does not fit the target
//! precision, strings are trimmed before numeric parsing and temporal values use ISO-8601 text.
//! A runtime failure is an `Err`, which the caller turns into NULL (as ksqlDB does).

use crate::functions::javatime;
use crate::value::{format_double_java, Decimal, Value};
use runnel_sql::SqlType;

/// The text a value has when cast to STRING (temporal values in ISO-8601, doubles as Java prints).
pub fn value_to_string(value: &Value, ty: &SqlType) -> String {
    match (value, ty) {
        (Value::Date(d), _) => javatime::format_iso_date(*d),
        (Value::Time(t), _) => javatime::format_iso_time(*t),
        (Value::Timestamp(t), _) => javatime::format_iso_timestamp(*t),
        (Value::Int(i), SqlType::Date) => javatime::format_iso_date(*i),
        (Value::Int(i), SqlType::Time) => javatime::format_iso_time(*i),
        (Value::Bigint(i), SqlType::Timestamp) => javatime::format_iso_timestamp(*i),
        (Value::Double(d), _) => format_double_java(*d),
        (other, _) => other.to_string(),
    }
}

/// Checks at plan time that ksqlDB supports `CAST(<from> AS <to>)`.
pub fn check_cast(from: &SqlType, to: &SqlType) -> Result<(), String> {
    if cast_supported(from, to) {
        Ok(())
    } else {
        Err(format!("Cast of {from} to {to} is not supported"))
    }
}

fn cast_supported(from: &SqlType, to: &SqlType) -> bool {
    use SqlType::*;
    if from == to || matches!(from, Custom(_)) {
        return true;
    }
    match (from, to) {
        (_, String) => true,
        (Array(a), Array(b)) => cast_supported(a, b),
        (Map(ak, av), Map(bk, bv)) => cast_supported(ak, bk) && cast_supported(av, bv),
        (Struct(_), Struct(_)) => true,
        (Array(_) | Map(..) | Struct(_), _) | (_, Array(_) | Map(..) | Struct(_)) => false,
        (String, _) => !matches!(to, Bytes),
        (Boolean, _) | (_, Boolean) => false,
        (a, b) if a.is_numeric() && b.is_numeric() => true,
        (Date | Timestamp, Date | Time | Timestamp) => !(from == &Date && to == &Time),
        _ => false,
    }
}

/// Casts `value` of type `from` to type `to` as ksqlDB's `CAST` does.
pub fn cast_value(value: &Value, from: &SqlType, to: &SqlType) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    match to {
        SqlType::String => Ok(Value::String(value_to_string(value, from))),
        SqlType::Boolean => match value {
            Value::Boolean(b) => Ok(Value::Boolean(*b)),
            Value::String(s) => parse_boolean(s)
                .map(Value::Boolean)
                .ok_or_else(|| format!("Can't convert '{s}' to BOOLEAN")),
            other => Err(unsupported(other, to)),
        },
        SqlType::Int => match value {
            Value::Int(i) => Ok(Value::Int(*i)),
            Value::Bigint(i) => Ok(Value::Int(*i as i32)),
            Value::Double(d) => Ok(Value::Int(*d as i32)),
            Value::Decimal(d) => Ok(Value::Int(decimal_to_i128(d) as i32)),
            Value::String(s) => s
                .trim()
                .parse::<i32>()
                .map(Value::Int)
                .map_err(|_| format!("For input string: \"{s}\"")),
            other => Err(unsupported(other, to)),
        },
        SqlType::Bigint => match value {
            Value::Int(i) => Ok(Value::Bigint(*i as i64)),
            Value::Bigint(i) => Ok(Value::Bigint(*i)),
            Value::Double(d) => Ok(Value::Bigint(*d as i64)),
            Value::Decimal(d) => Ok(Value::Bigint(decimal_to_i128(d) as i64)),
            Value::Timestamp(t) => Ok(Value::Bigint(*t)),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(Value::Bigint)
                .map_err(|_| format!("For input string: \"{s}\"")),
            other => Err(unsupported(other, to)),
        },
        SqlType::Double => match value {
            Value::Int(i) => Ok(Value::Double(*i as f64)),
            Value::Bigint(i) => Ok(Value::Double(*i as f64)),
            Value::Double(d) => Ok(Value::Double(*d)),
            Value::Decimal(d) => Ok(Value::Double(d.to_f64())),
            Value::String(s) => parse_java_double(s)
                .map(Value::Double)
                .ok_or_else(|| format!("For input string: \"{s}\"")),
            other => Err(unsupported(other, to)),
        },
        SqlType::Decimal { precision, scale } => {
            let d = match value {
                Value::Int(i) => Decimal::new(*i as i128, 0),
                Value::Bigint(i) => Decimal::new(*i as i128, 0),
                Value::Double(d) => {
                    if !d.is_finite() {
                        return Err(format!(
                            "Cannot convert {} to DECIMAL",
                            format_double_java(*d)
                        ));
                    }
                    Decimal::parse(&format_double_java(*d))
                        .ok_or_else(|| format!("Cannot convert {d} to DECIMAL"))?
                }
                Value::Decimal(d) => *d,
                Value::String(s) => Decimal::parse(s.trim())
                    .ok_or_else(|| format!("Cannot parse '{s}' as DECIMAL"))?,
                other => return Err(unsupported(other, to)),
            };
            fit_decimal(&d, *precision, *scale).map(Value::Decimal)
        }
        SqlType::Date => match value {
            Value::Date(d) => Ok(Value::Date(*d)),
            Value::Timestamp(t) => Ok(Value::Date(t.div_euclid(javatime::MILLIS_PER_DAY) as i32)),
            Value::String(s) => javatime::parse_iso_date(s.trim())
                .map(Value::Date)
                .ok_or_else(|| format!("Failed to parse date '{s}'")),
            other => Err(unsupported(other, to)),
        },
        SqlType::Time => match value {
            Value::Time(t) => Ok(Value::Time(*t)),
            Value::Timestamp(t) => Ok(Value::Time(t.rem_euclid(javatime::MILLIS_PER_DAY) as i32)),
            Value::String(s) => javatime::parse_iso_time(s.trim())
                .map(Value::Time)
                .ok_or_else(|| format!("Failed to parse time '{s}'")),
            other => Err(unsupported(other, to)),
        },
        SqlType::Timestamp => match value {
            Value::Timestamp(t) => Ok(Value::Timestamp(*t)),
            Value::Date(d) => Ok(Value::Timestamp(*d as i64 * javatime::MILLIS_PER_DAY)),
            Value::Bigint(t) => Ok(Value::Timestamp(*t)),
            Value::String(s) => javatime::parse_iso_timestamp(s.trim())
                .map(Value::Timestamp)
                .ok_or_else(|| format!("Failed to parse timestamp '{s}'")),
            other => Err(unsupported(other, to)),
        },
        SqlType::Bytes => match value {
            Value::Bytes(b) => Ok(Value::Bytes(b.clone())),
            other => Err(unsupported(other, to)),
        },
        SqlType::Array(to_elem) => match value {
            Value::Array(items) => {
                let from_elem = match from {
                    SqlType::Array(e) => e.as_ref(),
                    other => other,
                };
                items
                    .iter()
                    .map(|v| cast_value(v, from_elem, to_elem))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array)
            }
            other => Err(unsupported(other, to)),
        },
        SqlType::Map(to_k, to_v) => match value {
            Value::Map(entries) => {
                let (from_k, from_v) = match from {
                    SqlType::Map(k, v) => (k.as_ref(), v.as_ref()),
                    other => (other, other),
                };
                entries
                    .iter()
                    .map(|(k, v)| Ok((cast_value(k, from_k, to_k)?, cast_value(v, from_v, to_v)?)))
                    .collect::<Result<Vec<_>, String>>()
                    .map(Value::Map)
            }
            other => Err(unsupported(other, to)),
        },
        SqlType::Struct(to_fields) => match value {
            Value::Struct(fields) => {
                let from_fields = match from {
                    SqlType::Struct(f) => f.as_slice(),
                    _ => &[],
                };
                to_fields
                    .iter()
                    .map(|field| {
                        let v = match fields.iter().find(|(name, _)| name == &field.name) {
                            Some((_, v)) => {
                                let from_ty = from_fields
                                    .iter()
                                    .find(|f| f.name == field.name)
                                    .map(|f| f.ty.clone())
                                    .unwrap_or_else(|| field.ty.clone());
                                cast_value(v, &from_ty, &field.ty)?
                            }
                            None => Value::Null,
                        };
                        Ok((field.name.clone(), v))
                    })
                    .collect::<Result<Vec<_>, String>>()
                    .map(Value::Struct)
            }
            other => Err(unsupported(other, to)),
        },
        SqlType::Custom(_) => Ok(value.clone()),
    }
}

fn unsupported(value: &Value, to: &SqlType) -> String {
    format!("Cast of {value:?} to {to} is not supported")
}

/// The integral part of a decimal (truncated towards zero, as `BigDecimal.longValue()`).
fn decimal_to_i128(d: &Decimal) -> i128 {
    let factor = 10i128.checked_pow(d.scale as u32).unwrap_or(i128::MAX);
    d.unscaled / factor
}

/// Rescales `d` half-up to `scale` and checks it fits `DECIMAL(precision, scale)`.
pub fn fit_decimal(d: &Decimal, precision: u8, scale: u8) -> Result<Decimal, String> {
    let overflow = || {
        format!(
            "Numeric field overflow: A field with precision {precision} and scale {scale} must \
             round to an absolute value less than 10^{}. Got {d}",
            precision.saturating_sub(scale)
        )
    };
    let r = d.rescale(scale).ok_or_else(overflow)?;
    if r.unscaled != 0 && r.digits() > precision {
        return Err(overflow());
    }
    Ok(r)
}

/// ksqlDB's lenient boolean text: a non-empty prefix of `true`/`yes` or `false`/`no`, any case.
pub fn parse_boolean(s: &str) -> Option<bool> {
    let t = s.trim().to_ascii_lowercase();
    if t.is_empty() {
        return None;
    }
    if "true".starts_with(&t) || "yes".starts_with(&t) {
        Some(true)
    } else if "false".starts_with(&t) || "no".starts_with(&t) {
        Some(false)
    } else {
        None
    }
}

/// `Double.parseDouble` after trimming: decimal or exponent notation, `NaN`, `Infinity`, and an
/// optional `d`/`f` suffix.
pub fn parse_java_double(s: &str) -> Option<f64> {
    let t = s.trim();
    let t = t.strip_suffix(['d', 'D', 'f', 'F']).unwrap_or(t);
    match t {
        "NaN" => return Some(f64::NAN),
        "Infinity" | "+Infinity" => return Some(f64::INFINITY),
        "-Infinity" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return None;
    }
    t.parse::<f64>().ok()
}

/// Whether ksqlDB converts `from` to `to` implicitly (function arguments, operands, inserts):
/// numeric widening INT → BIGINT → DECIMAL → DOUBLE, decimals that fit, and containers
/// element-wise.
pub fn implicit_cast_allowed(from: &SqlType, to: &SqlType) -> bool {
    use SqlType::*;
    if from == to || matches!(from, Custom(_)) {
        return true;
    }
    match (from, to) {
        (Int, Bigint | Double) | (Bigint | Decimal { .. }, Double) => true,
        (Int | Bigint | Decimal { .. }, Decimal { precision, scale }) => {
            let Some((p, s)) = from.as_decimal() else {
                return false;
            };
            p - s <= precision - scale && s <= *scale
        }
        (Array(a), Array(b)) => implicit_cast_allowed(a, b),
        (Map(ak, av), Map(bk, bv)) => {
            implicit_cast_allowed(ak, bk) && implicit_cast_allowed(av, bv)
        }
        (Struct(a), Struct(b)) => a.iter().all(|fa| {
            b.iter()
                .any(|fb| fb.name == fa.name && implicit_cast_allowed(&fa.ty, &fb.ty))
        }),
        _ => false,
    }
}

/// The common type of two types, for comparisons, CASE branches, IN lists and array or map
/// constructors; `None` when ksqlDB would reject the combination.
pub fn widen(a: &SqlType, b: &SqlType) -> Option<SqlType> {
    use SqlType::*;
    if a == b {
        return Some(a.clone());
    }
    match (a, b) {
        (Custom(_), other) | (other, Custom(_)) => Some(other.clone()),
        (Double, x) | (x, Double) if x.is_numeric() => Some(Double),
        (Decimal { .. }, x) | (x, Decimal { .. }) if x.is_numeric() => {
            let (p1, s1) = a.as_decimal()?;
            let (p2, s2) = b.as_decimal()?;
            Some(widen_decimal((p1, s1), (p2, s2)))
        }
        (Bigint, Int) | (Int, Bigint) => Some(Bigint),
        (Date, Timestamp) | (Timestamp, Date) => Some(Timestamp),
        (Array(x), Array(y)) => Some(Array(Box::new(widen(x, y)?))),
        (Map(xk, xv), Map(yk, yv)) => Some(Map(Box::new(widen(xk, yk)?), Box::new(widen(xv, yv)?))),
        (Struct(x), Struct(y)) => {
            if x.len() != y.len() {
                return None;
            }
            let fields = x
                .iter()
                .zip(y)
                .map(|(fx, fy)| {
                    (fx.name == fy.name).then_some(())?;
                    Some(runnel_sql::types::StructField::new(
                        fx.name.clone(),
                        widen(&fx.ty, &fy.ty)?,
                    ))
                })
                .collect::<Option<Vec<_>>>()?;
            Some(Struct(fields))
        }
        _ => None,
    }
}

/// ksqlDB's `DecimalUtil.widen`: enough integer digits and scale for both.
pub fn widen_decimal((p1, s1): (u8, u8), (p2, s2): (u8, u8)) -> SqlType {
    let scale = s1.max(s2);
    let int_digits = (p1 - s1.min(p1)).max(p2 - s2.min(p2));
    let precision = (int_digits as u16 + scale as u16).clamp(1, 38) as u8;
    SqlType::decimal(precision, scale.min(precision))
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_sql::types::StructField;

    fn cast(v: Value, from: SqlType, to: SqlType) -> Result<Value, String> {
        cast_value(&v, &from, &to)
    }

    #[test]
    fn numbers() {
        assert_eq!(
            cast(Value::Bigint(2147483648), SqlType::Bigint, SqlType::Int),
            Ok(Value::Int(-2147483648))
        );
        assert_eq!(
            cast(
                Value::Double(1.2000000000000002),
                SqlType::Double,
                SqlType::Int
            ),
            Ok(Value::Int(1))
        );
        assert_eq!(
            cast(Value::Double(-1.7), SqlType::Double, SqlType::Bigint),
            Ok(Value::Bigint(-1))
        );
        assert_eq!(
            cast(Value::String(" 42 ".into()), SqlType::String, SqlType::Int),
            Ok(Value::Int(42))
        );
        assert!(cast(Value::String("x".into()), SqlType::String, SqlType::Int).is_err());
        assert_eq!(
            cast(
                Value::Decimal(Decimal::new(1001, 2)),
                SqlType::decimal(4, 2),
                SqlType::Int
            ),
            Ok(Value::Int(10))
        );
        assert_eq!(
            cast(Value::Double(10.3), SqlType::Double, SqlType::String),
            Ok(Value::String("10.3".into()))
        );
    }

    #[test]
    fn decimals_round_half_up_and_check_precision() {
        let to = SqlType::decimal(2, 1);
        let d = |s: &str| Value::Decimal(Decimal::parse(s).unwrap());
        assert_eq!(
            cast(Value::Double(0.99), SqlType::Double, to.clone()),
            Ok(d("1.0"))
        );
        assert_eq!(
            cast(Value::Double(0.01), SqlType::Double, to.clone()),
            Ok(d("0.0"))
        );
        assert_eq!(
            cast(Value::String("0.10".into()), SqlType::String, to.clone()),
            Ok(d("0.1"))
        );
        assert_eq!(
            cast(Value::Int(-1), SqlType::Int, to.clone()),
            Ok(d("-1.0"))
        );
        assert!(cast(Value::Int(10), SqlType::Int, to).is_err());
        assert_eq!(
            cast(d("10.12"), SqlType::decimal(4, 2), SqlType::decimal(5, 3))
                .unwrap()
                .to_string(),
            "10.120"
        );
    }

    #[test]
    fn temporal() {
        assert_eq!(
            cast(Value::Date(10), SqlType::Date, SqlType::String),
            Ok(Value::String("1970-01-11".into()))
        );
        assert_eq!(
            cast(Value::Date(-1), SqlType::Date, SqlType::String),
            Ok(Value::String("1969-12-31".into()))
        );
        assert_eq!(
            cast(
                Value::String("1970-01".into()),
                SqlType::String,
                SqlType::Date
            ),
            Ok(Value::Date(0))
        );
        assert!(cast(Value::String("foo".into()), SqlType::String, SqlType::Date).is_err());
        assert_eq!(
            cast(Value::Timestamp(-2000), SqlType::Timestamp, SqlType::Date),
            Ok(Value::Date(-1))
        );
        assert_eq!(
            cast(Value::Timestamp(-2000), SqlType::Timestamp, SqlType::Time),
            Ok(Value::Time(86398000))
        );
        assert_eq!(
            cast(Value::Time(5000), SqlType::Time, SqlType::String),
            Ok(Value::String("00:00:05".into()))
        );
        assert_eq!(
            cast(
                Value::String("00:01".into()),
                SqlType::String,
                SqlType::Time
            ),
            Ok(Value::Time(60000))
        );
        assert_eq!(
            cast(
                Value::String("00:00:00.010".into()),
                SqlType::String,
                SqlType::Time
            ),
            Ok(Value::Time(10))
        );
        assert_eq!(
            cast(Value::Timestamp(10), SqlType::Timestamp, SqlType::String),
            Ok(Value::String("1970-01-01T00:00:00.010".into()))
        );
        assert_eq!(
            cast(
                Value::String("2022-04-28T21:44:47.943Z".into()),
                SqlType::String,
                SqlType::Timestamp
            ),
            Ok(Value::Timestamp(1651182287943))
        );
        assert_eq!(
            cast(
                Value::String("1970-01-01T00:00:01".into()),
                SqlType::String,
                SqlType::Timestamp
            ),
            Ok(Value::Timestamp(1000))
        );
    }

    #[test]
    fn containers() {
        let arr = SqlType::Array(Box::new(SqlType::Bigint));
        assert_eq!(
            cast(
                Value::Array(vec![Value::Bigint(1), Value::Bigint(2147483648)]),
                arr.clone(),
                SqlType::Array(Box::new(SqlType::String))
            ),
            Ok(Value::Array(vec![
                Value::String("1".into()),
                Value::String("2147483648".into())
            ]))
        );
        assert_eq!(
            cast(
                Value::Array(vec![Value::Int(1), Value::Int(3)]),
                SqlType::Array(Box::new(SqlType::Int)),
                SqlType::String
            ),
            Ok(Value::String("[1, 3]".into()))
        );
        let from = SqlType::Struct(vec![
            StructField::new("F0", SqlType::Bigint),
            StructField::new("F1", SqlType::String),
        ]);
        let to = SqlType::Struct(vec![
            StructField::new("F0", SqlType::String),
            StructField::new("F3", SqlType::String),
        ]);
        let v = Value::Struct(vec![
            ("F0".into(), Value::Bigint(1)),
            ("F1".into(), Value::String("3".into())),
        ]);
        assert_eq!(
            cast(v, from, to),
            Ok(Value::Struct(vec![
                ("F0".into(), Value::String("1".into())),
                ("F3".into(), Value::Null)
            ]))
        );
        assert_eq!(
            check_cast(&SqlType::String, &SqlType::Array(Box::new(SqlType::Int))).unwrap_err(),
            "Cast of STRING to ARRAY<INTEGER> is not supported"
        );
    }

    #[test]
    fn widening() {
        assert_eq!(
            widen(&SqlType::Int, &SqlType::Bigint),
            Some(SqlType::Bigint)
        );
        assert_eq!(
            widen(&SqlType::decimal(9, 2), &SqlType::decimal(7, 6)),
            Some(SqlType::decimal(13, 6))
        );
        assert_eq!(
            widen(&SqlType::Int, &SqlType::decimal(4, 2)),
            Some(SqlType::decimal(12, 2))
        );
        assert_eq!(
            widen(&SqlType::decimal(4, 2), &SqlType::Double),
            Some(SqlType::Double)
        );
        assert_eq!(widen(&SqlType::String, &SqlType::Int), None);
        assert!(implicit_cast_allowed(&SqlType::Int, &SqlType::Double));
        assert!(!implicit_cast_allowed(&SqlType::Double, &SqlType::Int));
        assert!(implicit_cast_allowed(
            &SqlType::Int,
            &SqlType::decimal(12, 2)
        ));
        assert!(!implicit_cast_allowed(
            &SqlType::Bigint,
            &SqlType::decimal(12, 2)
        ));
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_boolean("TRUE"), Some(true));
        assert_eq!(parse_boolean("y"), Some(true));
        assert_eq!(parse_boolean("fa"), Some(false));
        assert_eq!(parse_boolean("maybe"), None);
    }
}

//! Numeric functions.
//!
//! Overloads and result types follow ksqlDB's Java UDFs exactly because they are visible in
//! output schemas: `ROUND(INT)` is a BIGINT, `CEIL(DECIMAL(p, s))` keeps its scale,
//! `ROUND(DECIMAL(p, s))` is `DECIMAL(p - s, 0)`, and the trigonometric functions take INT, BIGINT
//! or DOUBLE (decimals widen to DOUBLE). Rounding reproduces ksqlDB's quirks: `ROUND(-1.5)` is -1
//! (Java's `Math.round`), and rounding to decimal places goes through the double's shortest
//! decimal text (`BigDecimal.valueOf`).

use super::sig::{bad_arg, sig, sig_r, strict, var_r, Ret, Udf, P};
use super::ScalarFunction;
use crate::cast::widen;
use crate::value::{format_double_java, Decimal, Value};
use runnel_sql::SqlType;
use std::cmp::Ordering;

pub(super) fn register(out: &mut Vec<ScalarFunction>) {
    for (name, display, f) in UNARY_DOUBLE {
        let sigs = vec![
            sig(vec![P::Int], SqlType::Double),
            sig(vec![P::Bigint], SqlType::Double),
            sig(vec![P::Double], SqlType::Double),
        ];
        let f = *f;
        out.push(
            Udf::new(
                name,
                display,
                "Applies a mathematical function to a number.",
                sigs,
            )
            .build(move |args, _| strict(args, |a| num(&a[0], name).map(|x| Value::Double(f(x))))),
        );
    }
    out.push(
        Udf::new(
            "ATAN2",
            "atan2",
            "The inverse tangent of y / x.",
            vec![
                sig(vec![P::Int, P::Int], SqlType::Double),
                sig(vec![P::Bigint, P::Bigint], SqlType::Double),
                sig(vec![P::Double, P::Double], SqlType::Double),
            ],
        )
        .build(|args, _| {
            strict(args, |a| {
                Ok(Value::Double(
                    num(&a[0], "ATAN2")?.atan2(num(&a[1], "ATAN2")?),
                ))
            })
        }),
    );
    out.push(
        Udf::new(
            "POWER",
            "power",
            "The base raised to the power of the exponent.",
            vec![
                sig(vec![P::Int, P::Int], SqlType::Double),
                sig(vec![P::Bigint, P::Bigint], SqlType::Double),
                sig(vec![P::Double, P::Double], SqlType::Double),
            ],
        )
        .build(|args, _| {
            strict(args, |a| {
                Ok(Value::Double(
                    num(&a[0], "POWER")?.powf(num(&a[1], "POWER")?),
                ))
            })
        }),
    );
    out.push(
        Udf::new(
            "LOG",
            "log",
            "The natural logarithm of a value, or its logarithm in the given base.",
            vec![
                sig(vec![P::Int], SqlType::Double),
                sig(vec![P::Bigint], SqlType::Double),
                sig(vec![P::Double], SqlType::Double),
                sig(vec![P::Int, P::Int], SqlType::Double),
                sig(vec![P::Bigint, P::Bigint], SqlType::Double),
                sig(vec![P::Double, P::Double], SqlType::Double),
            ],
        )
        .build(|args, _| {
            strict(args, |a| {
                if a.len() == 1 {
                    return Ok(Value::Double(num(&a[0], "LOG")?.ln()));
                }
                Ok(Value::Double(log_base(
                    num(&a[0], "LOG")?,
                    num(&a[1], "LOG")?,
                )))
            })
        }),
    );
    out.push(
        Udf::new(
            "PI",
            "pi",
            "The value of pi.",
            vec![sig(vec![], SqlType::Double)],
        )
        .build(|_, _| Ok(Value::Double(std::f64::consts::PI))),
    );
    out.push(
        Udf::new(
            "RANDOM",
            "random",
            "A random DOUBLE in [0, 1).",
            vec![sig(vec![], SqlType::Double)],
        )
        .build(|_, _| Ok(Value::Double(random_f64()))),
    );
    out.push(
        Udf::new(
            "SIGN",
            "sign",
            "The sign of a number: -1, 0 or 1.",
            vec![
                sig(vec![P::Int], SqlType::Int),
                sig(vec![P::Bigint], SqlType::Int),
                sig(vec![P::Double], SqlType::Int),
            ],
        )
        .build(|args, _| {
            strict(args, |a| {
                let x = num(&a[0], "SIGN")?;
                Ok(Value::Int(if x > 0.0 {
                    1
                } else if x < 0.0 {
                    -1
                } else {
                    0
                }))
            })
        }),
    );
    out.push(
        Udf::new(
            "ABS",
            "Abs",
            "The absolute value of a number.",
            vec![
                sig(vec![P::Int], SqlType::Int),
                sig(vec![P::Bigint], SqlType::Bigint),
                sig(vec![P::Double], SqlType::Double),
                sig_r(vec![P::Decimal], Ret::Arg(0)),
            ],
        )
        .build(|args, _| {
            strict(args, |a| match &a[0] {
                Value::Int(i) => Ok(Value::Int(i.wrapping_abs())),
                Value::Bigint(i) => Ok(Value::Bigint(i.wrapping_abs())),
                Value::Double(d) => Ok(Value::Double(d.abs())),
                Value::Decimal(d) => Ok(Value::Decimal(Decimal::new(d.unscaled.abs(), d.scale))),
                other => Err(bad_arg("ABS", other)),
            })
        }),
    );
    for (name, display, mode) in [
        ("CEIL", "Ceil", Mode::Ceiling),
        ("FLOOR", "Floor", Mode::Floor),
    ] {
        let sigs = vec![
            sig(vec![P::Int], SqlType::Int),
            sig(vec![P::Bigint], SqlType::Bigint),
            sig(vec![P::Double], SqlType::Double),
            sig_r(vec![P::Decimal], Ret::Arg(0)),
        ];
        let f = Udf::new(name, display, "Rounds a number to an integral value.", sigs).build(
            move |args, _| {
                strict(args, |a| match &a[0] {
                    Value::Int(i) => Ok(Value::Int(*i)),
                    Value::Bigint(i) => Ok(Value::Bigint(*i)),
                    Value::Double(d) => Ok(Value::Double(if mode == Mode::Ceiling {
                        d.ceil()
                    } else {
                        d.floor()
                    })),
                    Value::Decimal(d) => {
                        let r = round_decimal(d, 0, mode).ok_or("Numeric overflow")?;
                        Ok(Value::Decimal(
                            r.rescale(d.scale).ok_or("Numeric overflow")?,
                        ))
                    }
                    other => Err(bad_arg(name, other)),
                })
            },
        );
        out.push(f);
    }
    for (name, display, truncate) in [("ROUND", "Round", false), ("TRUNC", "trunc", true)] {
        let sigs = vec![
            sig(vec![P::Bigint], SqlType::Bigint),
            sig(vec![P::Int], SqlType::Bigint),
            sig(vec![P::Double], SqlType::Bigint),
            sig(vec![P::Double, P::Int], SqlType::Double),
            sig_r(vec![P::Decimal], Ret::Custom(integral_decimal)),
            sig_r(vec![P::Decimal, P::Int], Ret::Arg(0)),
        ];
        let f =
            Udf::new(name, display, "Rounds or truncates a number.", sigs).build(move |args, _| {
                strict(args, |a| {
                    round_or_trunc(a, truncate).ok_or_else(|| format!("{name}: numeric overflow"))
                })
            });
        out.push(f);
    }
    for (name, display, greatest) in [("GREATEST", "greatest", true), ("LEAST", "least", false)] {
        let sigs = vec![
            var_r(vec![P::Int, P::Int], Ret::Arg(0)),
            var_r(vec![P::Bigint, P::Bigint], Ret::Arg(0)),
            var_r(vec![P::Double, P::Double], Ret::Arg(0)),
            var_r(vec![P::Decimal, P::Decimal], Ret::Custom(widest_decimal)),
            var_r(vec![P::String, P::String], Ret::Arg(0)),
            var_r(vec![P::Bytes, P::Bytes], Ret::Arg(0)),
            var_r(vec![P::Date, P::Date], Ret::Arg(0)),
            var_r(vec![P::Time, P::Time], Ret::Arg(0)),
            var_r(vec![P::Timestamp, P::Timestamp], Ret::Arg(0)),
        ];
        let f = Udf::new(
            name,
            display,
            "The extreme non-null value among the arguments.",
            sigs,
        )
        .string_to_temporal()
        .build(move |args, info| {
            let mut best: Option<&Value> = None;
            for v in args.iter().filter(|v| !v.is_null()) {
                best = match best {
                    None => Some(v),
                    Some(b) => {
                        let ord = compare_values(v, b);
                        let better = if greatest {
                            ord == Ordering::Greater
                        } else {
                            ord == Ordering::Less
                        };
                        Some(if better { v } else { b })
                    }
                };
            }
            Ok(match (best, info.return_type) {
                (Some(Value::Decimal(d)), SqlType::Decimal { scale, .. }) => {
                    Value::Decimal(d.rescale(*scale).unwrap_or(*d))
                }
                (Some(v), _) => v.clone(),
                (None, _) => Value::Null,
            })
        });
        out.push(f);
    }
    out.push(
        Udf::new(
            "GEO_DISTANCE",
            "geo_distance",
            "The great-circle distance between two lat/long points, in km or miles.",
            vec![
                sig(
                    vec![P::Double, P::Double, P::Double, P::Double],
                    SqlType::Double,
                ),
                sig(
                    vec![P::Double, P::Double, P::Double, P::Double, P::String],
                    SqlType::Double,
                ),
            ],
        )
        .build(|args, _| {
            if args[..4].iter().any(Value::is_null) {
                return Ok(Value::Null);
            }
            let unit = match args.get(4) {
                None | Some(Value::Null) => "KM".to_string(),
                Some(v) => v.as_str().unwrap_or("").trim().to_ascii_uppercase(),
            };
            let xs: Vec<f64> = args[..4]
                .iter()
                .map(|v| num(v, "GEO_DISTANCE"))
                .collect::<Result<_, _>>()?;
            geo_distance(xs[0], xs[1], xs[2], xs[3], &unit).map(Value::Double)
        }),
    );
}

type UnaryFn = fn(f64) -> f64;

const UNARY_DOUBLE: &[(&str, &str, UnaryFn)] = &[
    ("ACOS", "acos", f64::acos),
    ("ASIN", "asin", f64::asin),
    ("ATAN", "atan", f64::atan),
    ("CBRT", "cbrt", f64::cbrt),
    ("COS", "cos", f64::cos),
    ("COSH", "cosh", f64::cosh),
    ("COT", "cot", cot),
    ("DEGREES", "degrees", f64::to_degrees),
    ("EXP", "exp", f64::exp),
    ("LN", "ln", f64::ln),
    ("RADIANS", "radians", f64::to_radians),
    ("SIN", "sin", f64::sin),
    ("SINH", "sinh", f64::sinh),
    ("SQRT", "sqrt", f64::sqrt),
    ("TAN", "tan", f64::tan),
    ("TANH", "tanh", f64::tanh),
];

fn cot(x: f64) -> f64 {
    1.0 / x.tan()
}

fn num(v: &Value, function: &str) -> Result<f64, String> {
    v.as_f64().ok_or_else(|| bad_arg(function, v))
}

/// ksqlDB's `LOG(base, value)`: NaN for bases that are not positive or are 1, and for negative
/// values; -Infinity for 0.
fn log_base(base: f64, value: f64) -> f64 {
    if base <= 0.0 || base == 1.0 || value < 0.0 || base.is_nan() || value.is_nan() {
        f64::NAN
    } else if value == 0.0 {
        f64::NEG_INFINITY
    } else {
        value.ln() / base.ln()
    }
}

fn integral_decimal(args: &[SqlType]) -> Result<SqlType, String> {
    match args.first() {
        Some(SqlType::Decimal { precision, scale }) => {
            Ok(SqlType::decimal(precision.saturating_sub(*scale).max(1), 0))
        }
        _ => Err("ROUND expects a DECIMAL argument".into()),
    }
}

fn widest_decimal(args: &[SqlType]) -> Result<SqlType, String> {
    args.iter()
        .filter(|t| matches!(t, SqlType::Decimal { .. }))
        .cloned()
        .reduce(|a, b| widen(&a, &b).unwrap_or(a))
        .ok_or_else(|| "GREATEST expects DECIMAL arguments".to_string())
}

/// Java `RoundingMode`s used by the numeric functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    HalfUp,
    HalfDown,
    Down,
    Floor,
    Ceiling,
}

/// `BigDecimal.setScale(places, mode)`, allowing negative `places`; the result's scale is
/// `max(places, 0)`. `None` on overflow of the 128-bit representation.
pub(crate) fn round_decimal(d: &Decimal, places: i32, mode: Mode) -> Option<Decimal> {
    let scale = d.scale as i32;
    if places >= scale {
        return d.rescale(u8::try_from(places).ok()?);
    }
    let drop = u32::try_from(scale - places).ok()?;
    let factor = 10i128.checked_pow(drop)?;
    let q = d.unscaled / factor;
    let r = d.unscaled % factor;
    let twice = r.abs().checked_mul(2)?;
    let away = match mode {
        Mode::Down => false,
        Mode::HalfUp => twice >= factor,
        Mode::HalfDown => twice > factor,
        Mode::Floor => r < 0,
        Mode::Ceiling => r > 0,
    };
    let q = if away && r != 0 {
        q + d.unscaled.signum()
    } else {
        q
    };
    if places >= 0 {
        Some(Decimal::new(q, places as u8))
    } else {
        let up = 10i128.checked_pow(u32::try_from(-places).ok()?)?;
        Some(Decimal::new(q.checked_mul(up)?, 0))
    }
}

/// Java's `Math.round(double)`: half rounds towards positive infinity.
fn java_round(d: f64) -> i64 {
    if d.is_nan() {
        0
    } else {
        (d + 0.5).floor() as i64
    }
}

fn round_or_trunc(a: &[Value], truncate: bool) -> Option<Value> {
    let places = match a.get(1) {
        Some(Value::Int(p)) => Some(*p),
        Some(Value::Bigint(p)) => Some(*p as i32),
        _ => None,
    };
    let mode_for = |negative: bool| {
        if truncate {
            Mode::Down
        } else if negative {
            Mode::HalfDown
        } else {
            Mode::HalfUp
        }
    };
    Some(match (&a[0], places) {
        (Value::Int(i), _) => Value::Bigint(*i as i64),
        (Value::Bigint(i), _) => Value::Bigint(*i),
        (Value::Double(d), None) => {
            Value::Bigint(if truncate { *d as i64 } else { java_round(*d) })
        }
        (Value::Double(d), Some(p)) => {
            if !d.is_finite() {
                return Some(Value::Double(*d));
            }
            let dec = Decimal::parse(&format_double_java(*d))?;
            match round_decimal(&dec, p, mode_for(*d < 0.0)) {
                Some(r) => Value::Double(r.to_f64()),
                None => Value::Double(*d),
            }
        }
        (Value::Decimal(d), None) => Value::Decimal(round_decimal(d, 0, mode_for(d.unscaled < 0))?),
        (Value::Decimal(d), Some(p)) => {
            let r = round_decimal(d, p, mode_for(d.unscaled < 0))?;
            Value::Decimal(r.rescale(d.scale).unwrap_or(r))
        }
        _ => return None,
    })
}

/// Orders two non-null values of the same kind (numbers across kinds numerically).
pub(crate) fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Bigint(x), Value::Bigint(y)) => x.cmp(y),
        (Value::Double(x), Value::Double(y)) => x.total_cmp(y),
        (Value::Decimal(x), Value::Decimal(y)) => compare_decimals(x, y),
        (Value::String(x), Value::String(y)) => x.encode_utf16().cmp(y.encode_utf16()),
        (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
        (Value::Boolean(x), Value::Boolean(y)) => x.cmp(y),
        (Value::Date(x), Value::Date(y)) | (Value::Time(x), Value::Time(y)) => x.cmp(y),
        (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = compare_nullable(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => Ordering::Equal,
        },
    }
}

/// Orders values with NULL last (ksqlDB's collection sorting).
pub(crate) fn compare_nullable(a: &Value, b: &Value) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => compare_values(a, b),
    }
}

pub(crate) fn compare_decimals(x: &Decimal, y: &Decimal) -> Ordering {
    let scale = x.scale.max(y.scale);
    match (x.rescale(scale), y.rescale(scale)) {
        (Some(a), Some(b)) => a.unscaled.cmp(&b.unscaled),
        _ => x.to_f64().total_cmp(&y.to_f64()),
    }
}

fn geo_distance(lat1: f64, lon1: f64, lat2: f64, lon2: f64, unit: &str) -> Result<f64, String> {
    let radius = match unit {
        "KM" | "KILOMETERS" | "KILOMETER" => 6371.0,
        "MI" | "MILES" | "MILE" => 3959.0,
        other => {
            return Err(format!(
                "GeoDistance function was given an invalid radius unit: {other}"
            ))
        }
    };
    for lat in [lat1, lat2] {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(format!("valid latitude values for GeoDistance function are in the range of -90 to 90 decimal degrees; this query contained {lat}"));
        }
    }
    for lon in [lon1, lon2] {
        if !(-180.0..=180.0).contains(&lon) {
            return Err(format!("valid longitude values for GeoDistance function are in the range of -180 to +180 decimal degrees; this query contained {lon}"));
        }
    }
    let dlat = (lat2 - lat1).to_radians();
    let dlon = (lon2 - lon1).to_radians();
    let a = (dlat / 2.0).sin().powi(2)
        + lat1.to_radians().cos() * lat2.to_radians().cos() * (dlon / 2.0).sin().powi(2);
    Ok(2.0 * radius * a.sqrt().asin())
}

/// A uniformly distributed double in [0, 1), from a per-thread xorshift generator seeded from
/// the clock and the thread (no external RNG dependency is needed for RANDOM()).
pub(crate) fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

fn random_f64() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::{CallInfo, FunctionConfig, FunctionRegistry};

    fn call(name: &str, args: Vec<Value>, types: Vec<SqlType>) -> Value {
        let reg = FunctionRegistry::builtin();
        let f = reg.scalar(name).unwrap();
        let r = (f.resolve)(&types).unwrap();
        let config = FunctionConfig::default();
        let info = CallInfo {
            arg_types: &r.arg_types,
            return_type: &r.return_type,
            config: &config,
        };
        (f.eval)(&args, &info).unwrap()
    }

    fn dec(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn rounding_like_java() {
        let d = |v: f64, p: i32| {
            call(
                "ROUND",
                vec![Value::Double(v), Value::Int(p)],
                vec![SqlType::Double, SqlType::Int],
            )
        };
        assert_eq!(
            call("ROUND", vec![Value::Double(-1.5)], vec![SqlType::Double]),
            Value::Bigint(-1)
        );
        assert_eq!(
            call("ROUND", vec![Value::Double(1.5)], vec![SqlType::Double]),
            Value::Bigint(2)
        );
        assert_eq!(d(-1.5, 0), Value::Double(-1.0));
        assert_eq!(d(12345.678, 2), Value::Double(12345.68));
        assert_eq!(d(-12345.678, -1), Value::Double(-12350.0));
        assert_eq!(d(111.0, -2), Value::Double(100.0));
        let t = SqlType::decimal(33, 16);
        let v = Value::Decimal(dec("12345678987654321.2345678987654321"));
        let r = (FunctionRegistry::builtin().scalar("ROUND").unwrap().resolve)(
            std::slice::from_ref(&t),
        )
        .unwrap();
        assert_eq!(r.return_type, SqlType::decimal(17, 0));
        assert_eq!(
            call("ROUND", vec![v.clone()], vec![t.clone()]).to_string(),
            "12345678987654321"
        );
        assert_eq!(
            call(
                "ROUND",
                vec![v.clone(), Value::Int(10)],
                vec![t.clone(), SqlType::Int]
            )
            .to_string(),
            "12345678987654321.2345678988000000"
        );
        assert_eq!(
            call("ROUND", vec![v, Value::Int(-1)], vec![t, SqlType::Int]).to_string(),
            "12345678987654320.0000000000000000"
        );
    }

    #[test]
    fn trunc_floor_ceil() {
        let t = SqlType::decimal(12, 7);
        let v = Value::Decimal(dec("-12345.6780000"));
        assert_eq!(
            call(
                "TRUNC",
                vec![v.clone(), Value::Int(1)],
                vec![t.clone(), SqlType::Int]
            )
            .to_string(),
            "-12345.6000000"
        );
        assert_eq!(
            call(
                "TRUNC",
                vec![Value::Decimal(dec("1.5000000")), Value::Int(-1)],
                vec![t.clone(), SqlType::Int]
            )
            .to_string(),
            "0.0000000"
        );
        assert_eq!(
            call("TRUNC", vec![Value::Double(-1.7)], vec![SqlType::Double]),
            Value::Bigint(-1)
        );
        let b = SqlType::decimal(2, 1);
        assert_eq!(
            call("FLOOR", vec![Value::Decimal(dec("-1.1"))], vec![b.clone()]).to_string(),
            "-2.0"
        );
        assert_eq!(
            call("CEIL", vec![Value::Decimal(dec("1.1"))], vec![b]).to_string(),
            "2.0"
        );
        assert_eq!(
            call("CEIL", vec![Value::Double(-1.7)], vec![SqlType::Double]),
            Value::Double(-1.0)
        );
    }

    #[test]
    fn trigonometry_and_logs() {
        assert_eq!(
            call("COT", vec![Value::Int(0)], vec![SqlType::Int]),
            Value::Double(f64::INFINITY)
        );
        assert_eq!(
            call("EXP", vec![Value::Int(1)], vec![SqlType::Int]),
            Value::Double(std::f64::consts::E)
        );
        assert_eq!(
            call(
                "LOG",
                vec![Value::Int(15), Value::Int(13)],
                vec![SqlType::Int, SqlType::Int]
            ),
            Value::Double(0.9471572411831843)
        );
        let Value::Double(x) = call(
            "LOG",
            vec![Value::Int(1), Value::Int(13)],
            vec![SqlType::Int, SqlType::Int],
        ) else {
            panic!()
        };
        assert!(x.is_nan());
        assert_eq!(
            call("SIGN", vec![Value::Double(-3.0)], vec![SqlType::Double]),
            Value::Int(-1)
        );
        assert_eq!(
            call("CBRT", vec![Value::Int(-8)], vec![SqlType::Int]),
            Value::Double(-2.0)
        );
        assert_eq!(
            call(
                "ABS",
                vec![Value::Decimal(dec("-3.2"))],
                vec![SqlType::decimal(2, 1)]
            )
            .to_string(),
            "3.2"
        );
    }

    #[test]
    fn greatest_and_least() {
        let null = SqlType::Custom("NULL".into());
        let v = call(
            "GREATEST",
            vec![
                Value::Int(2147483647),
                Value::Int(-2147483648),
                Value::Null,
                Value::Null,
                Value::Int(5),
            ],
            vec![SqlType::Int, SqlType::Int, SqlType::Int, null, SqlType::Int],
        );
        assert_eq!(v, Value::Int(2147483647));
        let v = call(
            "LEAST",
            vec![Value::String("b".into()), Value::String("a".into())],
            vec![SqlType::String, SqlType::String],
        );
        assert_eq!(v, Value::String("a".into()));
        let r = (FunctionRegistry::builtin()
            .scalar("GREATEST")
            .unwrap()
            .resolve)(&[SqlType::Date, SqlType::String])
        .unwrap();
        assert_eq!(r.arg_types, vec![SqlType::Date, SqlType::Date]);
        let v = call(
            "GREATEST",
            vec![
                Value::Decimal(dec("1234567.89")),
                Value::Decimal(dec("0.123456")),
            ],
            vec![SqlType::decimal(9, 2), SqlType::decimal(7, 6)],
        );
        assert_eq!(v.to_string(), "1234567.890000");
    }

    #[test]
    fn geo() {
        let v = geo_distance(37.4439, -122.1663, 51.5257, -0.1122, "KM").unwrap();
        assert!((v - 8634.659796579544).abs() < 1e-6, "{v}");
        let v = geo_distance(51.5257, -0.1122, -33.9323, 18.4197, "MI").unwrap();
        assert!((v - 6011.1453892944355).abs() < 1e-6, "{v}");
        assert!(geo_distance(100.0, 0.0, 0.0, 0.0, "KM").is_err());
    }
}

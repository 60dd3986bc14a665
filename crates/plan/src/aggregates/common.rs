//! Shared pieces of the aggregate catalogue: overload matching, literal-parameter checks, state
//! struct access and Java's comparison and equality rules.
//!
//! ksqlDB's aggregates are Java code, so their observable behaviour leans on Java semantics:
//! `String.compareTo` orders UTF-16 code units, `ByteBuffer.compareTo` compares *signed* bytes,
//! `Double.compare` puts `-0.0` before `0.0` and NaN last, and `List.contains` uses `equals`
//! (bitwise for doubles, scale-sensitive for decimals). TOPK, MIN/MAX, COLLECT_SET and ATTR
//! expose those rules in their output, so they are reproduced here once.

use crate::value::Value;
use runnel_sql::types::StructField;
use runnel_sql::SqlType;
use std::cmp::Ordering;

/// A declared parameter of an aggregate overload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum P {
    Bool,
    Int,
    Bigint,
    Double,
    /// Any decimal; the argument keeps its precision and scale.
    Decimal,
    String,
    Bytes,
    Date,
    Time,
    Timestamp,
    Array(Box<P>),
    /// Any type at all (a Java generic `T`).
    Any,
}

impl P {
    pub fn array(inner: P) -> P {
        P::Array(Box::new(inner))
    }

    fn name(&self) -> String {
        match self {
            P::Bool => "BOOLEAN".into(),
            P::Int => "INTEGER".into(),
            P::Bigint => "BIGINT".into(),
            P::Double => "DOUBLE".into(),
            P::Decimal => "DECIMAL".into(),
            P::String => "STRING".into(),
            P::Bytes => "BYTES".into(),
            P::Date => "DATE".into(),
            P::Time => "TIME".into(),
            P::Timestamp => "TIMESTAMP".into(),
            P::Array(inner) => format!("ARRAY<{}>", inner.name()),
            P::Any => "T".into(),
        }
    }
}

/// Whether `t` stands for an argument of unknown type (an untyped NULL literal). The planner
/// passes `SqlType::Custom(..)` for those, as it does for scalar functions.
pub(crate) fn is_unknown(t: &SqlType) -> bool {
    matches!(t, SqlType::Custom(_))
}

/// The concrete type an unknown-typed argument takes for a parameter.
fn concretize(p: &P) -> SqlType {
    match p {
        P::Bool => SqlType::Boolean,
        P::Int => SqlType::Int,
        P::Bigint => SqlType::Bigint,
        P::Double => SqlType::Double,
        P::Decimal => SqlType::decimal(38, 0),
        P::String | P::Any => SqlType::String,
        P::Bytes => SqlType::Bytes,
        P::Date => SqlType::Date,
        P::Time => SqlType::Time,
        P::Timestamp => SqlType::Timestamp,
        P::Array(inner) => SqlType::Array(Box::new(concretize(inner))),
    }
}

/// Matches one argument; `widen` allows ksqlDB's implicit numeric widening
/// (INT → BIGINT → DECIMAL → DOUBLE). Returns the type the argument is cast to.
fn accepts(arg: &SqlType, p: &P, widen: bool) -> Option<SqlType> {
    if is_unknown(arg) {
        return Some(concretize(p));
    }
    match (p, arg) {
        (P::Any, _) => Some(arg.clone()),
        (P::Array(pe), SqlType::Array(ae)) => {
            // Element types must match exactly: ksqlDB does not widen inside collections here.
            accepts(ae, pe, false).map(|t| SqlType::Array(Box::new(t)))
        }
        (P::Bool, SqlType::Boolean)
        | (P::Int, SqlType::Int)
        | (P::Bigint, SqlType::Bigint)
        | (P::Double, SqlType::Double)
        | (P::Decimal, SqlType::Decimal { .. })
        | (P::String, SqlType::String)
        | (P::Bytes, SqlType::Bytes)
        | (P::Date, SqlType::Date)
        | (P::Time, SqlType::Time)
        | (P::Timestamp, SqlType::Timestamp) => Some(arg.clone()),
        (P::Bigint, SqlType::Int) if widen => Some(SqlType::Bigint),
        (P::Decimal, SqlType::Int | SqlType::Bigint) if widen => {
            let (p, s) = arg.as_decimal()?;
            Some(SqlType::decimal(p, s))
        }
        (P::Double, SqlType::Int | SqlType::Bigint | SqlType::Decimal { .. }) if widen => {
            Some(SqlType::Double)
        }
        _ => None,
    }
}

/// Formats argument types as ksqlDB's messages do: `(INTEGER, STRING)`, `null` for unknown.
pub(crate) fn arg_list(args: &[SqlType]) -> String {
    let parts: Vec<String> = args
        .iter()
        .map(|t| {
            if is_unknown(t) {
                "null".to_string()
            } else {
                t.to_string()
            }
        })
        .collect();
    format!("({})", parts.join(", "))
}

/// The "no overload fits" message, in ksqlDB's words.
pub(crate) fn no_match(display: &str, args: &[SqlType], overloads: &[Vec<P>]) -> String {
    let alternatives: Vec<String> = overloads
        .iter()
        .map(|o| {
            let params: Vec<String> = o.iter().map(P::name).collect();
            format!("{display}({})", params.join(", "))
        })
        .collect();
    format!(
        "Function '{display}' does not accept parameters {}.\nValid alternatives are:\n{}\n\
         For detailed information on a function run: DESCRIBE FUNCTION <Function-Name>;",
        arg_list(args),
        alternatives.join("\n")
    )
}

/// Picks the overload for `args`: exact matches first, then (only if none fits) those reachable
/// by numeric widening, as ksqlDB's `UdfIndex` does. Returns the overload's index and the types
/// the arguments are cast to. Among several widening matches the first declared wins, so
/// overloads are declared narrowest first.
pub(crate) fn pick(
    display: &str,
    overloads: &[Vec<P>],
    args: &[SqlType],
) -> Result<(usize, Vec<SqlType>), String> {
    for widen in [false, true] {
        for (index, params) in overloads.iter().enumerate() {
            if params.len() != args.len() {
                continue;
            }
            let cast: Option<Vec<SqlType>> = args
                .iter()
                .zip(params)
                .map(|(a, p)| accepts(a, p, widen))
                .collect();
            if let Some(cast) = cast {
                return Ok((index, cast));
            }
        }
    }
    Err(no_match(display, args, overloads))
}

/// The placeholder a resolution error uses for the SQL text of argument `position` (1-based);
/// see [`super::fill_argument_text`].
pub(crate) fn arg_placeholder(position: usize) -> String {
    format!("{{arg{position}}}")
}

/// Checks that argument `index` (0-based) of a call was a literal and returns its value.
pub(crate) fn literal<'a>(
    function: &str,
    index: usize,
    constants: &'a [Option<Value>],
) -> Result<&'a Value, String> {
    match constants.get(index) {
        Some(Some(v)) => Ok(v),
        _ => Err(format!(
            "Parameter {} passed to function {} must be a literal constant, but was expression: '{}'",
            index + 1,
            function.to_ascii_uppercase(),
            arg_placeholder(index + 1)
        )),
    }
}

/// An integer literal parameter (INT, or a BIGINT that fits).
pub(crate) fn literal_int(value: &Value) -> Option<i64> {
    value.as_i64()
}

/// A `STRUCT` type with the given fields.
pub(crate) fn struct_type(fields: &[(&str, SqlType)]) -> SqlType {
    SqlType::Struct(
        fields
            .iter()
            .map(|(n, t)| StructField::new(*n, t.clone()))
            .collect(),
    )
}

/// A field of a state struct; NULL when absent (or when the state is not a struct).
pub(crate) fn field<'a>(state: &'a Value, name: &str) -> &'a Value {
    const NULL: &Value = &Value::Null;
    match state {
        Value::Struct(fields) => fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .unwrap_or(NULL),
        _ => NULL,
    }
}

/// Message for a state value of the wrong shape (a corrupted store or a planner mismatch).
pub(crate) fn bad_state(function: &str, state: &Value) -> String {
    format!("{function}: unexpected aggregate state {state:?}")
}

/// Message for an argument of the wrong kind (a planner/implementation mismatch).
pub(crate) fn bad_arg(function: &str, value: &Value) -> String {
    format!("{function}: unexpected argument {value:?}")
}

/// The first argument, or NULL when the call has none.
pub(crate) fn arg0(args: &[Value]) -> &Value {
    args.first().unwrap_or(&Value::Null)
}

pub(crate) fn get_i64(v: &Value) -> Option<i64> {
    v.as_i64()
}

pub(crate) fn get_f64(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Java's `Double.compare`: `-0.0 < 0.0`, NaN equal to itself and greater than everything.
pub(crate) fn java_double_cmp(a: f64, b: f64) -> Ordering {
    fn key(d: f64) -> i64 {
        let bits = if d.is_nan() {
            f64::NAN.to_bits()
        } else {
            d.to_bits()
        } as i64;
        if bits < 0 {
            bits ^ i64::MAX
        } else {
            bits
        }
    }
    key(a).cmp(&key(b))
}

/// Java's `String.compareTo`: lexicographic over UTF-16 code units.
pub(crate) fn java_string_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Java's `ByteBuffer.compareTo`: lexicographic over *signed* bytes.
pub(crate) fn java_bytes_cmp(a: &[u8], b: &[u8]) -> Ordering {
    a.iter().map(|&x| x as i8).cmp(b.iter().map(|&x| x as i8))
}

/// Compares two values of the same type as ksqlDB's Java implementations do (`compareTo`).
/// Decimals compare numerically regardless of scale (`BigDecimal.compareTo`). Values of
/// different kinds fall back to a fixed kind order so sorting never panics.
pub(crate) fn java_cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Boolean(x), Value::Boolean(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) | (Value::Date(x), Value::Date(y)) => x.cmp(y),
        (Value::Time(x), Value::Time(y)) => x.cmp(y),
        (Value::Bigint(x), Value::Bigint(y)) | (Value::Timestamp(x), Value::Timestamp(y)) => {
            x.cmp(y)
        }
        (Value::Double(x), Value::Double(y)) => java_double_cmp(*x, *y),
        (Value::Decimal(x), Value::Decimal(y)) => decimal_cmp(x, y),
        (Value::String(x), Value::String(y)) => java_string_cmp(x, y),
        (Value::Bytes(x), Value::Bytes(y)) => java_bytes_cmp(x, y),
        _ => kind_rank(a).cmp(&kind_rank(b)),
    }
}

fn kind_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Boolean(_) => 1,
        Value::Int(_) => 2,
        Value::Bigint(_) => 3,
        Value::Double(_) => 4,
        Value::Decimal(_) => 5,
        Value::String(_) => 6,
        Value::Bytes(_) => 7,
        Value::Date(_) => 8,
        Value::Time(_) => 9,
        Value::Timestamp(_) => 10,
        Value::Array(_) => 11,
        Value::Map(_) => 12,
        Value::Struct(_) => 13,
    }
}

/// Numeric comparison of decimals with possibly different scales.
pub(crate) fn decimal_cmp(a: &crate::value::Decimal, b: &crate::value::Decimal) -> Ordering {
    let scale = a.scale.max(b.scale);
    match (a.rescale(scale), b.rescale(scale)) {
        (Some(x), Some(y)) => x.unscaled.cmp(&y.unscaled),
        // Rescaling overflows only for huge values; compare as doubles then.
        _ => java_double_cmp(a.to_f64(), b.to_f64()),
    }
}

/// Java `equals` on ksqlDB values: doubles compare bitwise (NaN equals NaN, `0.0 != -0.0`),
/// decimals compare with their scale, maps compare without regard to entry order.
pub(crate) fn java_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => {
            let canon = |d: f64| {
                if d.is_nan() {
                    f64::NAN.to_bits()
                } else {
                    d.to_bits()
                }
            };
            canon(*x) == canon(*y)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| java_eq(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| java_eq(k, k2) && java_eq(v, v2)))
        }
        (Value::Struct(x), Value::Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((n1, v1), (n2, v2))| n1 == n2 && java_eq(v1, v2))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_orderings() {
        assert_eq!(java_double_cmp(-0.0, 0.0), Ordering::Less);
        assert_eq!(java_double_cmp(f64::NAN, f64::INFINITY), Ordering::Greater);
        assert_eq!(java_double_cmp(f64::NAN, f64::NAN), Ordering::Equal);
        assert_eq!(java_double_cmp(-2.0, -1.0), Ordering::Less);
        // U+FF5E sorts after U+1F600 in UTF-8 byte order but before it in UTF-16.
        assert_eq!(java_string_cmp("\u{1F600}", "\u{FF5E}"), Ordering::Less);
        assert_eq!(java_bytes_cmp(&[0x80], &[0x01]), Ordering::Less);
        let d = |u, s| Value::Decimal(crate::value::Decimal::new(u, s));
        assert_eq!(java_cmp(&d(150, 2), &d(15, 1)), Ordering::Equal);
        assert_eq!(java_cmp(&d(-1012, 2), &d(0, 2)), Ordering::Less);
    }

    #[test]
    fn java_equality() {
        assert!(java_eq(&Value::Double(f64::NAN), &Value::Double(f64::NAN)));
        assert!(!java_eq(&Value::Double(0.0), &Value::Double(-0.0)));
        let m1 = Value::Map(vec![
            (Value::String("a".into()), Value::Int(1)),
            (Value::String("b".into()), Value::Int(2)),
        ]);
        let m2 = Value::Map(vec![
            (Value::String("b".into()), Value::Int(2)),
            (Value::String("a".into()), Value::Int(1)),
        ]);
        assert!(java_eq(&m1, &m2));
    }

    #[test]
    fn overload_picking_widens_only_when_needed() {
        let overloads = vec![vec![P::Int], vec![P::Bigint], vec![P::Double]];
        assert_eq!(
            pick("x", &overloads, &[SqlType::Int]).unwrap(),
            (0, vec![SqlType::Int])
        );
        assert_eq!(
            pick("x", &overloads, &[SqlType::decimal(4, 1)]).unwrap(),
            (2, vec![SqlType::Double])
        );
        let err = pick("x", &overloads, &[SqlType::String]).unwrap_err();
        assert!(
            err.starts_with("Function 'x' does not accept parameters (STRING).\nValid alternatives are:\nx(INTEGER)\nx(BIGINT)"),
            "{err}"
        );
    }

    #[test]
    fn literal_errors_name_the_parameter() {
        let err = literal("earliest_by_offset", 1, &[None, None]).unwrap_err();
        assert_eq!(
            err,
            "Parameter 2 passed to function EARLIEST_BY_OFFSET must be a literal constant, \
             but was expression: '{arg2}'"
        );
    }
}

//! Row-at-a-time evaluation of `TypedExpr`s with ksqlDB's semantics.
//!
//! This is the reference semantics of every expression node. The runtime evaluates the common
//! nodes vectorised with DataFusion and falls back to these functions, per row, for the nodes
//! whose ksqlDB behaviour has no DataFusion equivalent (casts, decimal arithmetic, subscripts,
//! constructors, functions).

use crate::cast::cast_value;
use crate::expr::TypedExpr;
use crate::functions::{CallInfo, FunctionConfig};
use crate::value::{Decimal, Value};
use runnel_sql::{BinaryOp, SqlType};
use std::cmp::Ordering;

/// Evaluates `expr` against one input row.
pub fn eval(expr: &TypedExpr, row: &[Value], config: &FunctionConfig) -> Result<Value, String> {
    let ev = |e: &TypedExpr| eval(e, row, config);
    match expr {
        TypedExpr::Column { index, .. } => Ok(row.get(*index).cloned().unwrap_or(Value::Null)),
        TypedExpr::Literal { value, .. } => Ok(value.clone()),
        TypedExpr::Case {
            whens, else_result, ..
        } => {
            // Lazy: only the chosen branch is evaluated.
            for (cond, result) in whens {
                if ev(cond)? == Value::Boolean(true) {
                    return ev(result);
                }
            }
            match else_result {
                Some(e) => ev(e),
                None => Ok(Value::Null),
            }
        }
        TypedExpr::And(l, r) => {
            let l = ev(l)?;
            if l == Value::Boolean(false) {
                return Ok(l);
            }
            let r = ev(r)?;
            Ok(match (l, r) {
                (_, Value::Boolean(false)) => Value::Boolean(false),
                (Value::Boolean(true), Value::Boolean(true)) => Value::Boolean(true),
                _ => Value::Null,
            })
        }
        TypedExpr::Or(l, r) => {
            let l = ev(l)?;
            if l == Value::Boolean(true) {
                return Ok(l);
            }
            let r = ev(r)?;
            Ok(match (l, r) {
                (_, Value::Boolean(true)) => Value::Boolean(true),
                (Value::Boolean(false), Value::Boolean(false)) => Value::Boolean(false),
                _ => Value::Null,
            })
        }
        other => {
            let args = other
                .children()
                .into_iter()
                .map(ev)
                .collect::<Result<Vec<_>, _>>()?;
            apply(other, &args, config)
        }
    }
}

/// Applies one node's operation to its already evaluated children (in `TypedExpr::children`
/// order). Used by `eval` and by the runtime's row-wise fallback.
pub fn apply(expr: &TypedExpr, args: &[Value], config: &FunctionConfig) -> Result<Value, String> {
    let arg = |i: usize| args.get(i).unwrap_or(&Value::Null);
    match expr {
        TypedExpr::Column { .. } | TypedExpr::Literal { .. } => Err("not an operation".into()),
        TypedExpr::Negate { .. } => Ok(negate(arg(0)).unwrap_or(Value::Null)),
        TypedExpr::Not(_) => Ok(match arg(0) {
            Value::Boolean(b) => Value::Boolean(!b),
            _ => Value::Null,
        }),
        TypedExpr::Arithmetic { op, ty, .. } => arithmetic(*op, arg(0), arg(1), ty),
        TypedExpr::Concat { .. } => Ok(match (arg(0), arg(1)) {
            (Value::String(a), Value::String(b)) => Value::String(format!("{a}{b}")),
            (Value::String(a), Value::Null) => Value::String(a.clone()),
            (Value::Null, Value::String(b)) => Value::String(b.clone()),
            _ => Value::Null,
        }),
        TypedExpr::Comparison { op, .. } => Ok(Value::Boolean(compare_op(*op, arg(0), arg(1)))),
        TypedExpr::And(..) | TypedExpr::Or(..) | TypedExpr::Case { .. } => {
            Err("lazy operation applied eagerly".into())
        }
        TypedExpr::IsNull { negated, .. } => Ok(Value::Boolean(arg(0).is_null() != *negated)),
        TypedExpr::IsDistinctFrom { negated, .. } => {
            let distinct = match (arg(0), arg(1)) {
                (Value::Null, Value::Null) => false,
                (Value::Null, _) | (_, Value::Null) => true,
                (a, b) => compare(a, b) != Some(Ordering::Equal),
            };
            Ok(Value::Boolean(distinct != *negated))
        }
        TypedExpr::InList { negated, .. } => {
            let v = arg(0);
            if v.is_null() {
                return Ok(Value::Boolean(false));
            }
            let found = args[1..]
                .iter()
                .any(|x| compare(v, x) == Some(Ordering::Equal));
            Ok(Value::Boolean(found != *negated))
        }
        TypedExpr::Like {
            escape, negated, ..
        } => match (arg(0), arg(1)) {
            (Value::String(s), Value::String(p)) => {
                Ok(Value::Boolean(like(s, p, *escape) != *negated))
            }
            _ => Ok(Value::Boolean(false)),
        },
        TypedExpr::Cast { expr, to } => cast_value(arg(0), &expr.ty(), to),
        TypedExpr::Function {
            function,
            arg_types,
            ty,
            ..
        } => {
            let info = CallInfo {
                arg_types,
                return_type: ty,
                config,
            };
            (function.eval)(args, &info)
        }
        TypedExpr::Subscript { .. } => Ok(subscript(arg(0), arg(1))),
        TypedExpr::Dereference { field, .. } => Ok(match arg(0) {
            Value::Struct(fields) => fields
                .iter()
                .find(|(n, _)| n == field)
                .map(|(_, v)| v.clone())
                .unwrap_or(Value::Null),
            _ => Value::Null,
        }),
        TypedExpr::MakeArray { .. } => Ok(Value::Array(args.to_vec())),
        TypedExpr::MakeMap { .. } => {
            let mut entries: Vec<(Value, Value)> = Vec::new();
            for pair in args.chunks(2) {
                let (k, v) = (pair[0].clone(), pair.get(1).cloned().unwrap_or(Value::Null));
                if let Some(e) = entries.iter_mut().find(|(ek, _)| *ek == k) {
                    e.1 = v;
                } else {
                    entries.push((k, v));
                }
            }
            Ok(Value::Map(entries))
        }
        TypedExpr::MakeStruct { fields, .. } => Ok(Value::Struct(
            fields
                .iter()
                .zip(args.iter())
                .map(|((n, _), v)| (n.clone(), v.clone()))
                .collect(),
        )),
    }
}

pub fn negate(v: &Value) -> Option<Value> {
    Some(match v {
        Value::Int(i) => Value::Int(i.wrapping_neg()),
        Value::Bigint(i) => Value::Bigint(i.wrapping_neg()),
        Value::Double(d) => Value::Double(-d),
        Value::Decimal(d) => Value::Decimal(Decimal::new(-d.unscaled, d.scale)),
        _ => return None,
    })
}

fn subscript(base: &Value, index: &Value) -> Value {
    match (base, index) {
        (Value::Array(items), Value::Int(i)) => {
            let len = items.len() as i64;
            let i = *i as i64;
            let pos = if i > 0 {
                i - 1
            } else if i < 0 {
                len + i
            } else {
                return Value::Null;
            };
            if pos < 0 || pos >= len {
                Value::Null
            } else {
                items[pos as usize].clone()
            }
        }
        (Value::Map(entries), k) if !k.is_null() => entries
            .iter()
            .find(|(ek, _)| ek == k)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// ksqlDB LIKE: `%` any run, `_` one character, optional escape character; case-sensitive.
pub fn like(s: &str, pattern: &str, escape: Option<char>) -> bool {
    let s: Vec<char> = s.chars().collect();
    // Tokenise the pattern: Some(c) literal, None for `%`, and '\u{0}'-marked `_` handled below.
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Lit(char),
        Any,
        One,
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            if let Some(n) = chars.next() {
                toks.push(Tok::Lit(n));
            }
        } else if c == '%' {
            toks.push(Tok::Any);
        } else if c == '_' {
            toks.push(Tok::One);
        } else {
            toks.push(Tok::Lit(c));
        }
    }
    // Classic wildcard matching with backtracking over the last `%`.
    let (mut si, mut pi) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while si < s.len() {
        match toks.get(pi) {
            Some(Tok::Lit(c)) if *c == s[si] => {
                si += 1;
                pi += 1;
            }
            Some(Tok::One) => {
                si += 1;
                pi += 1;
            }
            Some(Tok::Any) => {
                star = Some(pi);
                mark = si;
                pi += 1;
            }
            _ => match star {
                Some(sp) => {
                    pi = sp + 1;
                    mark += 1;
                    si = mark;
                }
                None => return false,
            },
        }
    }
    toks[pi..].iter().all(|t| *t == Tok::Any)
}

/// Orders two non-null values of the same type.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    Some(match (a, b) {
        (Value::Boolean(x), Value::Boolean(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Bigint(x), Value::Bigint(y)) => x.cmp(y),
        (Value::Double(x), Value::Double(y)) => x.partial_cmp(y)?,
        (Value::Decimal(x), Value::Decimal(y)) => {
            let s = x.scale.max(y.scale);
            x.rescale(s)?.unscaled.cmp(&y.rescale(s)?.unscaled)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
        (Value::Date(x), Value::Date(y)) | (Value::Time(x), Value::Time(y)) => x.cmp(y),
        (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y.iter()) {
                match compare(p, q)? {
                    Ordering::Equal => continue,
                    o => return Some(o),
                }
            }
            x.len().cmp(&y.len())
        }
        (x, y) if x == y => Ordering::Equal,
        // Mixed numeric types (IN lists compare across numeric types): exactly where possible.
        (x, y) => match (as_decimal(x), as_decimal(y)) {
            (Some(a), Some(b)) => {
                let s = a.scale.max(b.scale);
                a.rescale(s)?.unscaled.cmp(&b.rescale(s)?.unscaled)
            }
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?)?,
        },
    })
}

fn as_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Int(i) => Some(Decimal::new(*i as i128, 0)),
        Value::Bigint(i) => Some(Decimal::new(*i as i128, 0)),
        Value::Decimal(d) => Some(*d),
        _ => None,
    }
}

fn compare_op(op: BinaryOp, a: &Value, b: &Value) -> bool {
    if a.is_null() || b.is_null() {
        return false;
    }
    let Some(ord) = compare(a, b) else {
        return op == BinaryOp::NotEq;
    };
    match op {
        BinaryOp::Eq => ord == Ordering::Equal,
        BinaryOp::NotEq => ord != Ordering::Equal,
        BinaryOp::Lt => ord == Ordering::Less,
        BinaryOp::LtEq => ord != Ordering::Greater,
        BinaryOp::Gt => ord == Ordering::Greater,
        BinaryOp::GtEq => ord != Ordering::Less,
        _ => false,
    }
}

/// Arithmetic with Java semantics: integer overflow wraps, integer division by zero fails,
/// doubles follow IEEE-754, decimals are exact and rounded HALF_UP to the result scale.
pub fn arithmetic(op: BinaryOp, a: &Value, b: &Value, ty: &SqlType) -> Result<Value, String> {
    if a.is_null() || b.is_null() {
        return Ok(Value::Null);
    }
    match ty {
        SqlType::Int => {
            let (Value::Int(x), Value::Int(y)) = (a, b) else {
                return Err("INT operands expected".into());
            };
            let (x, y) = (*x, *y);
            Ok(Value::Int(match op {
                BinaryOp::Add => x.wrapping_add(y),
                BinaryOp::Subtract => x.wrapping_sub(y),
                BinaryOp::Multiply => x.wrapping_mul(y),
                BinaryOp::Divide if y == 0 => return Err("/ by zero".into()),
                BinaryOp::Divide => x.wrapping_div(y),
                BinaryOp::Modulo if y == 0 => return Err("/ by zero".into()),
                _ => x.wrapping_rem(y),
            }))
        }
        SqlType::Bigint => {
            let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) else {
                return Err("BIGINT operands expected".into());
            };
            Ok(Value::Bigint(match op {
                BinaryOp::Add => x.wrapping_add(y),
                BinaryOp::Subtract => x.wrapping_sub(y),
                BinaryOp::Multiply => x.wrapping_mul(y),
                BinaryOp::Divide if y == 0 => return Err("/ by zero".into()),
                BinaryOp::Divide => x.wrapping_div(y),
                BinaryOp::Modulo if y == 0 => return Err("/ by zero".into()),
                _ => x.wrapping_rem(y),
            }))
        }
        SqlType::Double => {
            let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
                return Err("DOUBLE operands expected".into());
            };
            Ok(Value::Double(match op {
                BinaryOp::Add => x + y,
                BinaryOp::Subtract => x - y,
                BinaryOp::Multiply => x * y,
                BinaryOp::Divide => x / y,
                _ => x % y,
            }))
        }
        SqlType::Decimal { precision, scale } => {
            let to_dec = |v: &Value| match v {
                Value::Decimal(d) => Some(*d),
                Value::Int(i) => Some(Decimal::new(*i as i128, 0)),
                Value::Bigint(i) => Some(Decimal::new(*i as i128, 0)),
                _ => None,
            };
            let (Some(x), Some(y)) = (to_dec(a), to_dec(b)) else {
                return Err("DECIMAL operands expected".into());
            };
            let result = decimal_op(op, x, y, *scale)?;
            if !result.fits(*precision, *scale) {
                return Err(format!("Numeric field overflow: value {result} does not fit DECIMAL({precision}, {scale})"));
            }
            Ok(Value::Decimal(result))
        }
        other => Err(format!("Unsupported arithmetic type {other}")),
    }
}

fn decimal_op(op: BinaryOp, x: Decimal, y: Decimal, scale: u8) -> Result<Decimal, String> {
    let overflow = || "Decimal overflow".to_string();
    match op {
        BinaryOp::Add | BinaryOp::Subtract | BinaryOp::Modulo => {
            let s = x.scale.max(y.scale);
            let (a, b) = (
                x.rescale(s).ok_or_else(overflow)?,
                y.rescale(s).ok_or_else(overflow)?,
            );
            let unscaled = match op {
                BinaryOp::Add => a.unscaled.checked_add(b.unscaled),
                BinaryOp::Subtract => a.unscaled.checked_sub(b.unscaled),
                _ => {
                    if b.unscaled == 0 {
                        return Err("Division by zero".into());
                    }
                    a.unscaled.checked_rem(b.unscaled)
                }
            }
            .ok_or_else(overflow)?;
            Decimal::new(unscaled, s)
                .rescale(scale)
                .ok_or_else(overflow)
        }
        BinaryOp::Multiply => {
            let unscaled = x.unscaled.checked_mul(y.unscaled).ok_or_else(overflow)?;
            Decimal::new(unscaled, x.scale + y.scale)
                .rescale(scale)
                .ok_or_else(overflow)
        }
        _ => {
            if y.unscaled == 0 {
                return Err("Division by zero".into());
            }
            // x / y at `scale` digits, HALF_UP: (x * 10^(scale + y.scale - x.scale + 1)) / y, then round.
            let shift = scale as i32 + y.scale as i32 - x.scale as i32 + 1;
            let mut num = x.unscaled;
            let mut den = y.unscaled;
            if shift >= 0 {
                num = num
                    .checked_mul(10i128.checked_pow(shift as u32).ok_or_else(overflow)?)
                    .ok_or_else(overflow)?;
            } else {
                den = den
                    .checked_mul(10i128.checked_pow((-shift) as u32).ok_or_else(overflow)?)
                    .ok_or_else(overflow)?;
            }
            let q = num / den; // one extra digit
            let rounded = if q % 10 >= 5 || q % 10 <= -5 {
                q / 10 + q.signum()
            } else {
                q / 10
            };
            Ok(Decimal::new(rounded, scale))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        assert!(like("hello", "h%o", None));
        assert!(like("hello", "h_llo", None));
        assert!(!like("hello", "h_lo", None));
        assert!(like("50%", "50!%", Some('!')));
        assert!(!like("500", "50!%", Some('!')));
        assert!(like("", "%", None));
        assert!(like("abcabc", "%bc", None));
    }

    #[test]
    fn java_integer_arithmetic() {
        let r = arithmetic(
            BinaryOp::Add,
            &Value::Int(i32::MAX),
            &Value::Int(1),
            &SqlType::Int,
        )
        .unwrap();
        assert_eq!(r, Value::Int(i32::MIN));
        assert!(arithmetic(
            BinaryOp::Divide,
            &Value::Int(1),
            &Value::Int(0),
            &SqlType::Int
        )
        .is_err());
        let r = arithmetic(
            BinaryOp::Divide,
            &Value::Double(1.0),
            &Value::Double(0.0),
            &SqlType::Double,
        )
        .unwrap();
        assert_eq!(r, Value::Double(f64::INFINITY));
    }

    #[test]
    fn decimal_arithmetic_keeps_scale() {
        let a = Value::Decimal(Decimal::parse("1.10").unwrap());
        let b = Value::Decimal(Decimal::parse("2.5").unwrap());
        let add = arithmetic(BinaryOp::Add, &a, &b, &SqlType::decimal(5, 2)).unwrap();
        assert_eq!(add, Value::Decimal(Decimal::parse("3.60").unwrap()));
        let div = arithmetic(
            BinaryOp::Divide,
            &Value::Decimal(Decimal::new(1, 0)),
            &Value::Decimal(Decimal::new(3, 0)),
            &SqlType::decimal(8, 6),
        )
        .unwrap();
        assert_eq!(div, Value::Decimal(Decimal::parse("0.333333").unwrap()));
        let mul = arithmetic(BinaryOp::Multiply, &a, &b, &SqlType::decimal(7, 3)).unwrap();
        assert_eq!(mul, Value::Decimal(Decimal::parse("2.750").unwrap()));
    }

    #[test]
    fn comparisons_with_null_are_false() {
        assert!(!compare_op(BinaryOp::Eq, &Value::Null, &Value::Null));
        assert!(!compare_op(BinaryOp::NotEq, &Value::Int(1), &Value::Null));
        assert!(compare_op(BinaryOp::Lt, &Value::Int(1), &Value::Int(2)));
    }
}

//! COUNT, COUNT_DISTINCT, SUM, SUM_LIST, AVG, MIN and MAX.
//!
//! Integer sums wrap on overflow exactly like Java's `int`/`long` arithmetic, because that is
//! what ksqlDB emits; decimal sums instead fail with "Numeric field overflow" once the total no
//! longer fits the column's precision. AVG keeps `STRUCT<SUM, COUNT>` so that it can be undone
//! for table aggregations and merged for session windows.

use super::common::{
    arg0, bad_arg, bad_state, field, get_f64, get_i64, java_cmp, pick, struct_type, P,
};
use super::{AggSignature, AggregateConfig, AggregateFunction};
use crate::codec;
use crate::value::{Decimal, Value};
use runnel_sql::SqlType;
use std::cmp::Ordering;
use std::sync::Arc;

pub(crate) fn register(out: &mut Vec<AggregateFunction>) {
    out.push(count());
    out.push(count_distinct());
    out.push(sum());
    out.push(sum_list());
    out.push(avg());
    out.push(min_max("MIN", Ordering::Less));
    out.push(min_max("MAX", Ordering::Greater));
}

fn signature(arg_types: Vec<SqlType>, state_type: SqlType, return_type: SqlType) -> AggSignature {
    AggSignature {
        arg_types,
        constants: Vec::new(),
        state_type,
        return_type,
    }
}

// ---------------------------------------------------------------------------------------------
// COUNT

fn count() -> AggregateFunction {
    fn step(state: Value, args: &[Value], delta: i64) -> Result<Value, String> {
        let n = get_i64(&state).ok_or_else(|| bad_state("COUNT", &state))?;
        // COUNT(*) has no arguments and counts every row; COUNT(col) skips NULLs.
        if args.is_empty() || !arg0(args).is_null() {
            Ok(Value::Bigint(n.wrapping_add(delta)))
        } else {
            Ok(Value::Bigint(n))
        }
    }
    AggregateFunction {
        name: "COUNT".into(),
        description: "Counts rows: COUNT(*) counts all of them, COUNT(col) those where col is \
                      not NULL."
            .into(),
        resolve: Arc::new(|args, _| {
            let overloads = vec![vec![], vec![P::Any]];
            let (_, cast) = pick("COUNT", &overloads, args)?;
            Ok(signature(cast, SqlType::Bigint, SqlType::Bigint))
        }),
        init: Arc::new(|_| Value::Bigint(0)),
        add: Arc::new(|state, args, _, _| step(state, args, 1)),
        undo: Some(Arc::new(|state, args, _, _| step(state, args, -1))),
        merge: Arc::new(|a, b, _| match (get_i64(&a), get_i64(&b)) {
            (Some(x), Some(y)) => Ok(Value::Bigint(x.wrapping_add(y))),
            _ => Err(bad_state("COUNT", &a)),
        }),
        result: Arc::new(|state, _| Ok(state.clone())),
    }
}

// ---------------------------------------------------------------------------------------------
// COUNT_DISTINCT

/// Inserts `v` into `set`, kept sorted by the byte-comparable key encoding so that membership
/// is a binary search; returns whether it was new.
fn insert_distinct(set: &mut Vec<Value>, v: Value) -> bool {
    let key = codec::encode_key(std::slice::from_ref(&v));
    match set.binary_search_by(|probe| codec::encode_key(std::slice::from_ref(probe)).cmp(&key)) {
        Ok(_) => false,
        Err(pos) => {
            set.insert(pos, v);
            true
        }
    }
}

fn count_distinct() -> AggregateFunction {
    AggregateFunction {
        name: "COUNT_DISTINCT".into(),
        description: "Counts the distinct non-NULL values of a column. Runnel counts exactly \
                      where ksqlDB estimates with HyperLogLog."
            .into(),
        resolve: Arc::new(|args, _| {
            let (_, cast) = pick("COUNT_DISTINCT", &[vec![P::Any]], args)?;
            let state = SqlType::Array(Box::new(cast[0].clone()));
            Ok(signature(cast, state, SqlType::Bigint))
        }),
        init: Arc::new(|_| Value::Array(Vec::new())),
        add: Arc::new(|state, args, _, _| {
            let Value::Array(mut set) = state else {
                return Err(bad_state("COUNT_DISTINCT", &state));
            };
            let v = arg0(args);
            if !v.is_null() {
                insert_distinct(&mut set, v.clone());
            }
            Ok(Value::Array(set))
        }),
        undo: None,
        merge: Arc::new(|a, b, _| match (a, b) {
            (Value::Array(mut x), Value::Array(y)) => {
                for v in y {
                    insert_distinct(&mut x, v);
                }
                Ok(Value::Array(x))
            }
            (a, _) => Err(bad_state("COUNT_DISTINCT", &a)),
        }),
        result: Arc::new(|state, _| match state {
            Value::Array(set) => Ok(Value::Bigint(set.len() as i64)),
            other => Err(bad_state("COUNT_DISTINCT", other)),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// SUM and SUM_LIST

/// The zero of a numeric sum type.
fn zero(ty: &SqlType) -> Value {
    match ty {
        SqlType::Int => Value::Int(0),
        SqlType::Bigint => Value::Bigint(0),
        SqlType::Decimal { scale, .. } => Value::Decimal(Decimal::new(0, *scale)),
        _ => Value::Double(0.0),
    }
}

/// A decimal value at the column's scale.
fn decimal_at(v: &Value, scale: u8, function: &str) -> Result<Decimal, String> {
    let d = match v {
        Value::Decimal(d) => *d,
        Value::Int(i) => Decimal::new(*i as i128, 0),
        Value::Bigint(i) => Decimal::new(*i as i128, 0),
        other => return Err(bad_arg(function, other)),
    };
    d.rescale(scale)
        .ok_or_else(|| "Numeric field overflow".to_string())
}

/// Adds (`sign` = 1) or subtracts (`sign` = -1) `v` to the running total `acc` of type `ty`,
/// with Java's overflow behaviour. `check_precision` enforces the decimal column's precision
/// (ksqlDB checks it when adding rows, not when undoing or merging).
fn accumulate(
    function: &str,
    acc: &Value,
    v: &Value,
    ty: &SqlType,
    sign: i64,
    check_precision: bool,
) -> Result<Value, String> {
    match ty {
        SqlType::Int => {
            let (Value::Int(a), Some(x)) = (acc, get_i64(v)) else {
                return Err(bad_arg(function, v));
            };
            let x = x as i32;
            Ok(Value::Int(if sign > 0 {
                a.wrapping_add(x)
            } else {
                a.wrapping_sub(x)
            }))
        }
        SqlType::Bigint => {
            let (Some(a), Some(x)) = (get_i64(acc), get_i64(v)) else {
                return Err(bad_arg(function, v));
            };
            Ok(Value::Bigint(if sign > 0 {
                a.wrapping_add(x)
            } else {
                a.wrapping_sub(x)
            }))
        }
        SqlType::Decimal { precision, scale } => {
            let a = decimal_at(acc, *scale, function)?;
            let x = decimal_at(v, *scale, function)?;
            let x = if sign > 0 { x.unscaled } else { -x.unscaled };
            let total = a
                .unscaled
                .checked_add(x)
                .ok_or_else(|| "Numeric field overflow".to_string())?;
            let sum = Decimal::new(total, *scale);
            if check_precision {
                let digits = precision.saturating_sub(*scale);
                if sum.digits() > *precision && total != 0 {
                    // Java rounds the sum to the precision before reporting it.
                    let drop = sum.digits() - *precision;
                    let shown = if drop <= *scale {
                        sum.rescale(*scale - drop).unwrap_or(sum)
                    } else {
                        sum
                    };
                    return Err(format!(
                        "Numeric field overflow: A field with precision {precision} and scale \
                         {scale} must round to an absolute value less than 10^{digits}. Got {shown}"
                    ));
                }
            }
            Ok(Value::Decimal(sum))
        }
        _ => {
            let (Some(a), Some(x)) = (get_f64(acc), get_f64(v)) else {
                return Err(bad_arg(function, v));
            };
            Ok(Value::Double(if sign > 0 { a + x } else { a - x }))
        }
    }
}

fn sum() -> AggregateFunction {
    fn step(state: Value, args: &[Value], sig: &AggSignature, sign: i64) -> Result<Value, String> {
        let v = arg0(args);
        if v.is_null() {
            return Ok(state);
        }
        accumulate("SUM", &state, v, &sig.return_type, sign, sign > 0)
    }
    AggregateFunction {
        name: "SUM".into(),
        description: "Sums the non-NULL values of a column; the result has the column's type."
            .into(),
        resolve: Arc::new(|args, _| {
            let overloads = vec![
                vec![P::Int],
                vec![P::Bigint],
                vec![P::Double],
                vec![P::Decimal],
            ];
            let (_, cast) = pick("SUM", &overloads, args)?;
            let ty = cast[0].clone();
            Ok(signature(cast, ty.clone(), ty))
        }),
        init: Arc::new(|sig| zero(&sig.return_type)),
        add: Arc::new(|state, args, sig, _| step(state, args, sig, 1)),
        undo: Some(Arc::new(|state, args, sig, _| step(state, args, sig, -1))),
        merge: Arc::new(|a, b, sig| accumulate("SUM", &a, &b, &sig.return_type, 1, false)),
        result: Arc::new(|state, _| Ok(state.clone())),
    }
}

fn sum_list() -> AggregateFunction {
    fn list_total(list: &Value, ty: &SqlType) -> Result<Value, String> {
        let Value::Array(items) = list else {
            return Err(bad_arg("sum_list", list));
        };
        let mut total = zero(ty);
        for item in items.iter().filter(|v| !v.is_null()) {
            total = accumulate("sum_list", &total, item, ty, 1, false)?;
        }
        Ok(total)
    }
    fn step(state: Value, args: &[Value], sig: &AggSignature, sign: i64) -> Result<Value, String> {
        let list = arg0(args);
        if list.is_null() {
            return Ok(state);
        }
        let total = list_total(list, &sig.return_type)?;
        accumulate("sum_list", &state, &total, &sig.return_type, sign, false)
    }
    AggregateFunction {
        name: "SUM_LIST".into(),
        description: "Sums the non-NULL elements of an array column across rows.".into(),
        resolve: Arc::new(|args, _| {
            let overloads = vec![
                vec![P::array(P::Double)],
                vec![P::array(P::Int)],
                vec![P::array(P::Bigint)],
            ];
            let (_, cast) = pick("sum_list", &overloads, args)?;
            let elem = match &cast[0] {
                SqlType::Array(inner) => (**inner).clone(),
                other => other.clone(),
            };
            Ok(signature(cast, elem.clone(), elem))
        }),
        init: Arc::new(|sig| zero(&sig.return_type)),
        add: Arc::new(|state, args, sig, _| step(state, args, sig, 1)),
        undo: Some(Arc::new(|state, args, sig, _| step(state, args, sig, -1))),
        merge: Arc::new(|a, b, sig| accumulate("sum_list", &a, &b, &sig.return_type, 1, false)),
        result: Arc::new(|state, _| Ok(state.clone())),
    }
}

// ---------------------------------------------------------------------------------------------
// AVG

fn avg() -> AggregateFunction {
    fn state_of(sum: Value, count: i64) -> Value {
        Value::Struct(vec![
            ("SUM".to_string(), sum),
            ("COUNT".to_string(), Value::Bigint(count)),
        ])
    }
    fn sum_type(sig: &AggSignature) -> &SqlType {
        sig.arg_types.first().unwrap_or(&SqlType::Double)
    }
    fn step(state: Value, args: &[Value], sig: &AggSignature, sign: i64) -> Result<Value, String> {
        let v = arg0(args);
        if v.is_null() {
            return Ok(state);
        }
        let count = get_i64(field(&state, "COUNT")).ok_or_else(|| bad_state("avg", &state))?;
        let sum = accumulate("avg", field(&state, "SUM"), v, sum_type(sig), sign, false)?;
        Ok(state_of(sum, count.wrapping_add(sign)))
    }
    AggregateFunction {
        name: "AVG".into(),
        description: "Averages the non-NULL values of a numeric column, as a DOUBLE.".into(),
        resolve: Arc::new(|args, _| {
            let overloads = vec![vec![P::Int], vec![P::Bigint], vec![P::Double]];
            let (_, cast) = pick("avg", &overloads, args)?;
            let state = struct_type(&[("SUM", cast[0].clone()), ("COUNT", SqlType::Bigint)]);
            Ok(signature(cast, state, SqlType::Double))
        }),
        init: Arc::new(|sig| state_of(zero(sum_type(sig)), 0)),
        add: Arc::new(|state, args, sig, _| step(state, args, sig, 1)),
        undo: Some(Arc::new(|state, args, sig, _| step(state, args, sig, -1))),
        merge: Arc::new(|a, b, sig| {
            let (Some(c1), Some(c2)) = (get_i64(field(&a, "COUNT")), get_i64(field(&b, "COUNT")))
            else {
                return Err(bad_state("avg", &a));
            };
            let sum = accumulate(
                "avg",
                field(&a, "SUM"),
                field(&b, "SUM"),
                sum_type(sig),
                1,
                false,
            )?;
            Ok(state_of(sum, c1.wrapping_add(c2)))
        }),
        result: Arc::new(|state, _| {
            let count = get_i64(field(state, "COUNT")).ok_or_else(|| bad_state("avg", state))?;
            if count == 0 {
                return Ok(Value::Double(0.0));
            }
            let sum = get_f64(field(state, "SUM")).ok_or_else(|| bad_state("avg", state))?;
            Ok(Value::Double(sum / count as f64))
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// MIN and MAX

/// MIN (`keep` = Less) or MAX (`keep` = Greater): the state is the best value so far, NULL until
/// a non-NULL value arrives. Ties keep the earlier value.
fn min_max(name: &'static str, keep: Ordering) -> AggregateFunction {
    let better = move |candidate: Value, current: Value| -> Value {
        if candidate.is_null() {
            current
        } else if current.is_null() || java_cmp(&candidate, &current) == keep {
            candidate
        } else {
            current
        }
    };
    AggregateFunction {
        name: name.into(),
        description: format!(
            "Returns the {} non-NULL value of a column (numbers, strings, bytes, dates, times and \
             timestamps).",
            if keep == Ordering::Less {
                "smallest"
            } else {
                "largest"
            }
        ),
        resolve: Arc::new(move |args, _| {
            let overloads = vec![
                vec![P::Int],
                vec![P::Bigint],
                vec![P::Double],
                vec![P::Decimal],
                vec![P::Date],
                vec![P::Time],
                vec![P::Timestamp],
                vec![P::String],
                vec![P::Bytes],
            ];
            let (_, cast) = pick(name, &overloads, args)?;
            let ty = cast[0].clone();
            Ok(signature(cast, ty.clone(), ty))
        }),
        init: Arc::new(|_| Value::Null),
        add: Arc::new(move |state, args, _, _: &AggregateConfig| {
            Ok(better(arg0(args).clone(), state))
        }),
        undo: None,
        merge: Arc::new(move |a, b, _| Ok(better(b, a))),
        result: Arc::new(|state, _| Ok(state.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::AggregateRegistry;
    use super::*;

    fn run(name: &str, types: &[SqlType], rows: &[Vec<Value>]) -> Vec<Value> {
        let reg = AggregateRegistry::builtin();
        let f = reg.get(name).unwrap();
        let consts = vec![None; types.len()];
        let sig = (f.resolve)(types, &consts).unwrap();
        let cfg = AggregateConfig::default();
        let mut state = (f.init)(&sig);
        let mut out = Vec::new();
        for row in rows {
            state = (f.add)(state, row, &sig, &cfg).unwrap();
            out.push((f.result)(&state, &sig).unwrap());
        }
        out
    }

    #[test]
    fn count_star_and_column() {
        let reg = AggregateRegistry::builtin();
        let f = reg.get("count").unwrap();
        let star = (f.resolve)(&[], &[]).unwrap();
        assert!(star.arg_types.is_empty());
        let cfg = AggregateConfig::default();
        let s = (f.add)((f.init)(&star), &[], &star, &cfg).unwrap();
        assert_eq!(s, Value::Bigint(1));
        let col = (f.resolve)(&[SqlType::String], &[None]).unwrap();
        let s = (f.add)(s, &[Value::Null], &col, &cfg).unwrap();
        assert_eq!(s, Value::Bigint(1));
        let s = (f.add)(s, &[Value::String("x".into())], &col, &cfg).unwrap();
        // count.json "should count back to zero": undo brings the count down again.
        let undo = f.undo.as_ref().unwrap();
        let s = undo(s, &[Value::String("x".into())], &col, &cfg).unwrap();
        let s = undo(s, &[Value::String("y".into())], &col, &cfg).unwrap();
        assert_eq!(s, Value::Bigint(0));
        assert_eq!(
            (f.merge)(Value::Bigint(2), Value::Bigint(3), &col).unwrap(),
            Value::Bigint(5)
        );
        assert!((f.resolve)(&[SqlType::Int, SqlType::Int], &[None, None]).is_err());
    }

    #[test]
    fn count_distinct_ignores_nulls() {
        // count-distinct.json
        let s = |x: &str| Value::String(x.into());
        let out = run(
            "COUNT_DISTINCT",
            &[SqlType::String],
            &[
                vec![s("one")],
                vec![s("two")],
                vec![s("one")],
                vec![Value::Null],
            ],
        );
        assert_eq!(
            out,
            vec![
                Value::Bigint(1),
                Value::Bigint(2),
                Value::Bigint(2),
                Value::Bigint(2)
            ]
        );
        assert!(AggregateRegistry::builtin()
            .get("COUNT_DISTINCT")
            .unwrap()
            .undo
            .is_none());
    }

    #[test]
    fn sums_keep_the_column_type() {
        // sum.json "sum int", "sum long", "sum double"
        let out = run(
            "SUM",
            &[SqlType::Int],
            &[vec![Value::Int(0)], vec![Value::Int(100)]],
        );
        assert_eq!(out, vec![Value::Int(0), Value::Int(100)]);
        let out = run(
            "SUM",
            &[SqlType::Bigint],
            &[vec![Value::Bigint(2147483648)], vec![Value::Bigint(100)]],
        );
        assert_eq!(out[1], Value::Bigint(2147483748));
        let out = run(
            "SUM",
            &[SqlType::Double],
            &[vec![Value::Double(5.4)], vec![Value::Double(100.1)]],
        );
        assert_eq!(out, vec![Value::Double(5.4), Value::Double(105.5)]);
        // Java int arithmetic wraps.
        let out = run(
            "SUM",
            &[SqlType::Int],
            &[vec![Value::Int(i32::MAX)], vec![Value::Int(1)]],
        );
        assert_eq!(out[1], Value::Int(i32::MIN));
        // A NULL alone leaves the zero (sum.json "sum int left join of table").
        let out = run("SUM", &[SqlType::Int], &[vec![Value::Null]]);
        assert_eq!(out, vec![Value::Int(0)]);
    }

    #[test]
    fn decimal_sum_overflows_at_the_precision() {
        // sum.json "sum decimal with overflow": DECIMAL(4,1) 500.9 + 300.8 + 400.8 fails.
        let reg = AggregateRegistry::builtin();
        let f = reg.get("SUM").unwrap();
        let ty = SqlType::decimal(4, 1);
        let sig = (f.resolve)(std::slice::from_ref(&ty), &[None]).unwrap();
        assert_eq!(sig.return_type, ty);
        let cfg = AggregateConfig::default();
        let d = |u| vec![Value::Decimal(Decimal::new(u, 1))];
        let s = (f.add)((f.init)(&sig), &d(5009), &sig, &cfg).unwrap();
        let s = (f.add)(s, &d(3008), &sig, &cfg).unwrap();
        assert_eq!((f.result)(&s, &sig).unwrap().to_string(), "801.7");
        let err = (f.add)(s.clone(), &d(4008), &sig, &cfg).unwrap_err();
        assert!(err.starts_with("Numeric field overflow"), "{err}");
        let undo = f.undo.as_ref().unwrap();
        let s = undo(s, &d(3008), &sig, &cfg).unwrap();
        assert_eq!(s.to_string(), "500.9");
    }

    #[test]
    fn sum_list_adds_array_elements() {
        // sum.json "sum list of ints into a single int"
        let arr = |xs: &[Option<i32>]| {
            vec![Value::Array(
                xs.iter()
                    .map(|x| x.map(Value::Int).unwrap_or(Value::Null))
                    .collect(),
            )]
        };
        let ty = SqlType::Array(Box::new(SqlType::Int));
        let out = run(
            "SUM_LIST",
            &[ty],
            &[
                arr(&[Some(1), Some(1)]),
                arr(&[Some(2), Some(2)]),
                arr(&[Some(100), Some(100)]),
                arr(&[Some(100), Some(100), None]),
            ],
        );
        assert_eq!(
            out,
            vec![
                Value::Int(2),
                Value::Int(6),
                Value::Int(206),
                Value::Int(406)
            ]
        );
        let reg = AggregateRegistry::builtin();
        let f = reg.get("SUM_LIST").unwrap();
        let err = (f.resolve)(&[SqlType::Int], &[None]).unwrap_err();
        assert!(err.starts_with("Function 'sum_list' does not accept parameters (INTEGER)."));
    }

    #[test]
    fn average_struct_state() {
        // pull-queries: AVG(2, 4) = 3.0; undo and merge keep SUM and COUNT consistent.
        let reg = AggregateRegistry::builtin();
        let f = reg.get("avg").unwrap();
        let sig = (f.resolve)(&[SqlType::Int], &[None]).unwrap();
        assert_eq!(sig.return_type, SqlType::Double);
        assert_eq!(
            sig.state_type.to_string(),
            "STRUCT<`SUM` INTEGER, `COUNT` BIGINT>"
        );
        let cfg = AggregateConfig::default();
        assert_eq!(
            (f.result)(&(f.init)(&sig), &sig).unwrap(),
            Value::Double(0.0)
        );
        let s = (f.add)((f.init)(&sig), &[Value::Int(2)], &sig, &cfg).unwrap();
        let s = (f.add)(s, &[Value::Int(4)], &sig, &cfg).unwrap();
        let s = (f.add)(s, &[Value::Null], &sig, &cfg).unwrap();
        assert_eq!((f.result)(&s, &sig).unwrap(), Value::Double(3.0));
        let merged = (f.merge)(s.clone(), s.clone(), &sig).unwrap();
        assert_eq!(field(&merged, "COUNT"), &Value::Bigint(4));
        let s = (f.undo.as_ref().unwrap())(s, &[Value::Int(4)], &sig, &cfg).unwrap();
        assert_eq!((f.result)(&s, &sig).unwrap(), Value::Double(2.0));
        // DECIMAL widens to the DOUBLE overload.
        let sig = (f.resolve)(&[SqlType::decimal(4, 2)], &[None]).unwrap();
        assert_eq!(sig.arg_types, vec![SqlType::Double]);
    }

    #[test]
    fn max_and_min_ignore_nulls() {
        // max-group-by.json "max integer group by", key 0.
        let rows: Vec<Vec<Value>> = [
            None,
            Some(-2147483647),
            Some(5),
            None,
            Some(2000),
            Some(100),
        ]
        .iter()
        .map(|x| vec![x.map(Value::Int).unwrap_or(Value::Null)])
        .collect();
        let out = run("MAX", &[SqlType::Int], &rows);
        let expect: Vec<Value> = [
            None,
            Some(-2147483647),
            Some(5),
            Some(5),
            Some(2000),
            Some(2000),
        ]
        .iter()
        .map(|x| x.map(Value::Int).unwrap_or(Value::Null))
        .collect();
        assert_eq!(out, expect);
        let out = run("MIN", &[SqlType::Int], &rows);
        assert_eq!(out[5], Value::Int(-2147483647));
        // max string / bytes group by
        let s = |x: &str| vec![Value::String(x.into())];
        let out = run("MAX", &[SqlType::String], &[s("B"), s("A"), s("F")]);
        assert_eq!(out[1], Value::String("B".into()));
        assert_eq!(out[2], Value::String("F".into()));
        let reg = AggregateRegistry::builtin();
        let max = reg.get("MAX").unwrap();
        assert!(max.undo.is_none());
        let sig = (max.resolve)(&[SqlType::decimal(4, 2)], &[None]).unwrap();
        assert_eq!(sig.return_type, SqlType::decimal(4, 2));
        assert!((max.resolve)(&[SqlType::Boolean], &[None]).is_err());
        assert_eq!(
            (max.merge)(Value::Null, Value::Date(3), &sig).unwrap(),
            Value::Date(3)
        );
    }
}

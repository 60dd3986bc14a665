//! STDDEV_SAMP, STDDEV_SAMPLE and CORRELATION.
//!
//! These follow ksqlDB's single-pass formulas operation by operation, including where Java mixes
//! `int`, `long` and `double` arithmetic, because the emitted doubles are compared digit for
//! digit. Two quirks are deliberate: STDDEV_SAMP returns the sample *variance* (ksqlDB never
//! takes the square root), and its session-window merge divides integer sums with integer
//! division; STDDEV_SAMPLE is the real standard deviation.

use super::common::{arg0, bad_arg, bad_state, field, get_f64, get_i64, pick, struct_type, P};
use super::{AggSignature, AggregateFunction};
use crate::value::Value;
use runnel_sql::SqlType;
use std::sync::Arc;

pub(crate) fn register(out: &mut Vec<AggregateFunction>) {
    out.push(stddev(
        "STDDEV_SAMP",
        "Returns the sample variance of a numeric column (ksqlDB's STDDEV_SAMP does not take \
         the square root).",
        false,
    ));
    out.push(stddev(
        "STDDEV_SAMPLE",
        "Returns the sample standard deviation of a numeric column.",
        true,
    ));
    out.push(correlation());
}

/// The running sum of a STDDEV state: Java `int`, `long` or `double` depending on the overload.
#[derive(Clone, Copy)]
enum Num {
    I(i32),
    L(i64),
    D(f64),
}

impl Num {
    fn read(v: &Value, ty: &SqlType) -> Option<Num> {
        match ty {
            SqlType::Int => get_i64(v).map(|x| Num::I(x as i32)),
            SqlType::Bigint => get_i64(v).map(Num::L),
            _ => get_f64(v).map(Num::D),
        }
    }

    fn value(self) -> Value {
        match self {
            Num::I(x) => Value::Int(x),
            Num::L(x) => Value::Bigint(x),
            Num::D(x) => Value::Double(x),
        }
    }

    fn add(self, other: Num) -> Num {
        match (self, other) {
            (Num::I(a), Num::I(b)) => Num::I(a.wrapping_add(b)),
            (Num::L(a), Num::L(b)) => Num::L(a.wrapping_add(b)),
            (a, b) => Num::D(a.as_f64() + b.as_f64()),
        }
    }

    fn sub(self, other: Num) -> Num {
        match (self, other) {
            (Num::I(a), Num::I(b)) => Num::I(a.wrapping_sub(b)),
            (Num::L(a), Num::L(b)) => Num::L(a.wrapping_sub(b)),
            (a, b) => Num::D(a.as_f64() - b.as_f64()),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::I(x) => x as f64,
            Num::L(x) => x as f64,
            Num::D(x) => x,
        }
    }

    /// ksqlDB's `createDelta`: `value * (count + 1) - (sum + value)`, where the product is
    /// `long` for integer inputs and the parenthesised sum keeps the input's own width.
    fn delta(value: Num, sum: Num, count: i64) -> f64 {
        match (value, sum) {
            (Num::I(v), Num::I(s)) => {
                let product = (v as i64).wrapping_mul(count.wrapping_add(1));
                product.wrapping_sub(s.wrapping_add(v) as i64) as f64
            }
            (Num::L(v), Num::L(s)) => v
                .wrapping_mul(count.wrapping_add(1))
                .wrapping_sub(s.wrapping_add(v)) as f64,
            (v, s) => v.as_f64() * (count.wrapping_add(1)) as f64 - (s.as_f64() + v.as_f64()),
        }
    }

    /// `sum / count` as STDDEV_SAMP's merge computes it: integer division for integer sums.
    fn mean_truncated(sum: Num, count: i64) -> f64 {
        match sum {
            Num::I(s) if count != 0 => (s as i64).wrapping_div(count) as f64,
            Num::L(s) if count != 0 => s.wrapping_div(count) as f64,
            // Java's long division by zero would throw; both counts are non-zero when called.
            Num::I(_) | Num::L(_) => 0.0,
            Num::D(s) => s / count as f64,
        }
    }
}

struct Moments {
    sum: Num,
    count: i64,
    m2: f64,
}

fn read_moments(function: &str, state: &Value, ty: &SqlType) -> Result<Moments, String> {
    let sum = Num::read(field(state, "SUM"), ty);
    let count = get_i64(field(state, "COUNT"));
    let m2 = get_f64(field(state, "M2"));
    match (sum, count, m2) {
        (Some(sum), Some(count), Some(m2)) => Ok(Moments { sum, count, m2 }),
        _ => Err(bad_state(function, state)),
    }
}

fn moments_value(m: &Moments) -> Value {
    Value::Struct(vec![
        ("SUM".into(), m.sum.value()),
        ("COUNT".into(), Value::Bigint(m.count)),
        ("M2".into(), Value::Double(m.m2)),
    ])
}

fn sum_type(sig: &AggSignature) -> &SqlType {
    sig.arg_types.first().unwrap_or(&SqlType::Double)
}

fn zero_sum(ty: &SqlType) -> Num {
    match ty {
        SqlType::Int => Num::I(0),
        SqlType::Bigint => Num::L(0),
        _ => Num::D(0.0),
    }
}

/// STDDEV_SAMP (`sqrt` = false, returns the variance) or STDDEV_SAMPLE (`sqrt` = true).
fn stddev(name: &'static str, description: &str, sqrt: bool) -> AggregateFunction {
    let add = move |state: Value, args: &[Value], sig: &AggSignature| -> Result<Value, String> {
        let ty = sum_type(sig);
        let v = arg0(args);
        if v.is_null() {
            return Ok(state);
        }
        let x = Num::read(v, ty).ok_or_else(|| bad_arg(name, v))?;
        let m = read_moments(name, &state, ty)?;
        let count = m.count.wrapping_add(1);
        let extra = if count - 1 > 0 {
            let delta = Num::delta(x, m.sum, m.count);
            delta * delta / count.wrapping_mul(count - 1) as f64
        } else {
            0.0
        };
        Ok(moments_value(&Moments {
            sum: x.add(m.sum),
            count,
            m2: extra + m.m2,
        }))
    };
    let undo = move |state: Value, args: &[Value], sig: &AggSignature| -> Result<Value, String> {
        let ty = sum_type(sig);
        let v = arg0(args);
        if v.is_null() {
            return Ok(state);
        }
        let x = Num::read(v, ty).ok_or_else(|| bad_arg(name, v))?;
        let m = read_moments(name, &state, ty)?;
        let count = m.count.wrapping_sub(1);
        let removed = if count > 0 {
            let delta = Num::delta(x, m.sum, m.count);
            delta * delta / count.wrapping_mul(count + 1) as f64
        } else {
            0.0
        };
        Ok(moments_value(&Moments {
            sum: m.sum.sub(x),
            count,
            m2: m.m2 - removed,
        }))
    };
    AggregateFunction {
        name: name.into(),
        description: description.into(),
        resolve: Arc::new(move |args, _| {
            let overloads = vec![vec![P::Int], vec![P::Bigint], vec![P::Double]];
            let (_, cast) = pick(name, &overloads, args)?;
            let state = struct_type(&[
                ("SUM", cast[0].clone()),
                ("COUNT", SqlType::Bigint),
                ("M2", SqlType::Double),
            ]);
            Ok(AggSignature {
                arg_types: cast,
                constants: Vec::new(),
                state_type: state,
                return_type: SqlType::Double,
            })
        }),
        init: Arc::new(|sig| {
            moments_value(&Moments {
                sum: zero_sum(sum_type(sig)),
                count: 0,
                m2: 0.0,
            })
        }),
        add: Arc::new(move |state, args, sig, _| add(state, args, sig)),
        undo: Some(Arc::new(move |state, args, sig, _| undo(state, args, sig))),
        merge: Arc::new(move |a, b, sig| {
            let ty = sum_type(sig);
            let one = read_moments(name, &a, ty)?;
            let two = read_moments(name, &b, ty)?;
            let count = one.count.wrapping_add(two.count);
            let m2 = if one.count == 0 || two.count == 0 {
                one.m2 + two.m2
            } else {
                let inner = if sqrt {
                    one.sum.as_f64() / one.count as f64 - two.sum.as_f64() / two.count as f64
                } else {
                    Num::mean_truncated(one.sum, one.count)
                        - Num::mean_truncated(two.sum, two.count)
                };
                one.m2
                    + two.m2
                    + one.count.wrapping_mul(two.count) as f64 * inner * inner / count as f64
            };
            Ok(moments_value(&Moments {
                sum: one.sum.add(two.sum),
                count,
                m2,
            }))
        }),
        result: Arc::new(move |state, sig| {
            let m = read_moments(name, state, sum_type(sig))?;
            if m.count < 2 {
                return Ok(Value::Double(0.0));
            }
            let variance = m.m2 / (m.count - 1) as f64;
            Ok(Value::Double(if sqrt { variance.sqrt() } else { variance }))
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// CORRELATION

const CORR_FIELDS: [&str; 5] = ["X_SUM", "Y_SUM", "X_SQUARED_SUM", "Y_SQUARED_SUM", "XY_SUM"];

fn corr_read(state: &Value) -> Result<([f64; 5], i64), String> {
    let mut sums = [0.0; 5];
    for (slot, name) in sums.iter_mut().zip(CORR_FIELDS) {
        *slot = get_f64(field(state, name)).ok_or_else(|| bad_state("correlation", state))?;
    }
    let count = get_i64(field(state, "COUNT")).ok_or_else(|| bad_state("correlation", state))?;
    Ok((sums, count))
}

fn corr_value(sums: [f64; 5], count: i64) -> Value {
    let mut fields: Vec<(String, Value)> = CORR_FIELDS
        .iter()
        .zip(sums)
        .map(|(n, v)| (n.to_string(), Value::Double(v)))
        .collect();
    fields.push(("COUNT".into(), Value::Bigint(count)));
    Value::Struct(fields)
}

fn corr_step(state: Value, args: &[Value], sign: f64) -> Result<Value, String> {
    let (x, y) = match args {
        [x, y] => (x, y),
        _ => {
            return Err(format!(
                "correlation: expected 2 arguments, got {}",
                args.len()
            ))
        }
    };
    if x.is_null() || y.is_null() {
        return Ok(state);
    }
    let x = get_f64(x).ok_or_else(|| bad_arg("correlation", x))?;
    let y = get_f64(y).ok_or_else(|| bad_arg("correlation", y))?;
    let (s, count) = corr_read(&state)?;
    let terms = [x, y, x * x, y * y, x * y];
    let mut sums = s;
    for (acc, t) in sums.iter_mut().zip(terms) {
        *acc = if sign > 0.0 { *acc + t } else { *acc - t };
    }
    Ok(corr_value(sums, count.wrapping_add(sign as i64)))
}

fn correlation() -> AggregateFunction {
    AggregateFunction {
        name: "CORRELATION".into(),
        description: "Returns the Pearson correlation coefficient of two numeric columns.".into(),
        resolve: Arc::new(|args, _| {
            let (_, cast) = pick("correlation", &[vec![P::Double, P::Double]], args)?;
            let mut fields: Vec<(&str, SqlType)> =
                CORR_FIELDS.iter().map(|n| (*n, SqlType::Double)).collect();
            fields.push(("COUNT", SqlType::Bigint));
            Ok(AggSignature {
                arg_types: cast,
                constants: Vec::new(),
                state_type: struct_type(&fields),
                return_type: SqlType::Double,
            })
        }),
        init: Arc::new(|_| corr_value([0.0; 5], 0)),
        add: Arc::new(|state, args, _, _| corr_step(state, args, 1.0)),
        undo: Some(Arc::new(|state, args, _, _| corr_step(state, args, -1.0))),
        merge: Arc::new(|a, b, _| {
            let (mut s1, c1) = corr_read(&a)?;
            let (s2, c2) = corr_read(&b)?;
            for (x, y) in s1.iter_mut().zip(s2) {
                *x += y;
            }
            Ok(corr_value(s1, c1.wrapping_add(c2)))
        }),
        result: Arc::new(|state, _| {
            let ([sx, sy, sxx, syy, sxy], count) = corr_read(state)?;
            let n = count as f64;
            let numerator = n * sxy - sx * sy;
            let dx = n * sxx - sx * sx;
            let dy = n * syy - sy * sy;
            Ok(Value::Double(numerator / (dx * dy).sqrt()))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AggregateConfig, AggregateRegistry};
    use super::*;

    fn series(name: &str, ty: SqlType, rows: &[Value]) -> (Vec<f64>, Value, AggSignature) {
        let reg = AggregateRegistry::builtin();
        let f = reg.get(name).unwrap();
        let sig = (f.resolve)(&[ty], &[None]).unwrap();
        let cfg = AggregateConfig::default();
        let mut state = (f.init)(&sig);
        let mut out = Vec::new();
        for v in rows {
            state = (f.add)(state, std::slice::from_ref(v), &sig, &cfg).unwrap();
            match (f.result)(&state, &sig).unwrap() {
                Value::Double(d) => out.push(d),
                other => panic!("{other:?}"),
            }
        }
        (out, state, sig)
    }

    #[test]
    fn stddev_samp_is_the_variance() {
        // standarddeviation.json "stddev_samp int", key 0: 0, 10, 7, 6.
        let rows: Vec<Value> = [0, 10, 7, 6].into_iter().map(Value::Int).collect();
        let (out, _, _) = series("STDDEV_SAMP", SqlType::Int, &rows);
        assert_eq!(out, vec![0.0, 50.0, 26.333333333333332, 17.583333333333332]);
        // "stddev_samp long", key 0, with the wrapping-free long path.
        let rows = vec![
            Value::Bigint(2147483648),
            Value::Bigint(100),
            Value::Bigint(-2),
        ];
        let (out, _, _) = series("STDDEV_SAMP", SqlType::Bigint, &rows);
        assert_eq!(out, vec![0.0, 2.3058427944653343e18, 1.5372286026580004e18]);
        // "stddev_samp double", key 100.
        let rows: Vec<Value> = [9223372036854.775, 300.8, -200000.6, 0.0]
            .into_iter()
            .map(Value::Double)
            .collect();
        let (out, _, _) = series("STDDEV_SAMP", SqlType::Double, &rows);
        assert_eq!(
            out,
            vec![
                0.0,
                4.253529586234292e25,
                2.835686452404674e25,
                2.1267648239542927e25
            ]
        );
    }

    #[test]
    fn stddev_sample_takes_the_root() {
        // standarddeviation.json "stddev_sample int", key 100: 50, 10, 3, null.
        let rows = vec![Value::Int(50), Value::Int(10), Value::Int(3), Value::Null];
        let (out, state, sig) = series("STDDEV_SAMPLE", SqlType::Int, &rows);
        assert_eq!(
            out,
            vec![
                0.0,
                28.284271247461902,
                25.357444666211933,
                25.357444666211933
            ]
        );
        // "stddev_sample double map": 10, 12, 13, 14, 16.
        let rows: Vec<Value> = [10.0, 12.0, 13.0, 14.0, 16.0]
            .into_iter()
            .map(Value::Double)
            .collect();
        let (out, _, _) = series("STDDEV_SAMPLE", SqlType::Double, &rows);
        assert_eq!(out[4], 2.23606797749979);
        // Undo of the last value gives back the two-value result.
        let reg = AggregateRegistry::builtin();
        let f = reg.get("STDDEV_SAMPLE").unwrap();
        let cfg = AggregateConfig::default();
        let s = (f.undo.as_ref().unwrap())(state, &[Value::Int(3)], &sig, &cfg).unwrap();
        assert_eq!(field(&s, "COUNT"), &Value::Bigint(2));
        let r = (f.result)(&s, &sig).unwrap();
        assert!(matches!(r, Value::Double(d) if (d - 28.284271247461902).abs() < 1e-9));
    }

    #[test]
    fn stddev_merge_combines_moments() {
        let reg = AggregateRegistry::builtin();
        let f = reg.get("STDDEV_SAMPLE").unwrap();
        let (_, a, sig) = series(
            "STDDEV_SAMPLE",
            SqlType::Double,
            &[Value::Double(1.0), Value::Double(2.0)],
        );
        let (_, b, _) = series(
            "STDDEV_SAMPLE",
            SqlType::Double,
            &[Value::Double(3.0), Value::Double(4.0)],
        );
        let merged = (f.merge)(a, b, &sig).unwrap();
        let r = (f.result)(&merged, &sig).unwrap();
        // Sample standard deviation of 1, 2, 3, 4.
        assert!(matches!(r, Value::Double(d) if (d - 1.2909944487358056).abs() < 1e-12));
    }

    #[test]
    fn correlation_matches_qtt() {
        // correlation-udaf.json "correlation double" for alice; the NULL row is skipped.
        let reg = AggregateRegistry::builtin();
        let f = reg.get("CORRELATION").unwrap();
        let sig = (f.resolve)(&[SqlType::Int, SqlType::Int], &[None, None]).unwrap();
        assert_eq!(sig.arg_types, vec![SqlType::Double, SqlType::Double]);
        let cfg = AggregateConfig::default();
        let rows = [(1.5, 8.0), (-1.0, -2.0), (-4.5, -1.0)];
        let mut s = (f.init)(&sig);
        let mut out = Vec::new();
        for (x, y) in rows {
            s = (f.add)(s, &[Value::Double(x), Value::Double(y)], &sig, &cfg).unwrap();
            out.push((f.result)(&s, &sig).unwrap());
        }
        assert!(matches!(out[0], Value::Double(d) if d.is_nan()));
        assert_eq!(out[1], Value::Double(1.0));
        assert_eq!(out[2], Value::Double(0.7580764521133173));
        let s = (f.add)(s, &[Value::Null, Value::Double(-6.0)], &sig, &cfg).unwrap();
        assert_eq!(
            (f.result)(&s, &sig).unwrap(),
            Value::Double(0.7580764521133173)
        );
        // "correlation int": the same rows as integers.
        let mut s = (f.init)(&sig);
        for (x, y) in [(1, 8), (-1, -2), (-4, -1)] {
            s = (f.add)(
                s,
                &[Value::Double(x as f64), Value::Double(y as f64)],
                &sig,
                &cfg,
            )
            .unwrap();
        }
        assert_eq!(
            (f.result)(&s, &sig).unwrap(),
            Value::Double(0.7455284088780169)
        );
        // "correlation udaf with table": undo then add, then a third point.
        let undo = f.undo.as_ref().unwrap();
        let s = (f.init)(&sig);
        let s = (f.add)(s, &[Value::Double(1.5), Value::Double(8.0)], &sig, &cfg).unwrap();
        let s = (f.add)(s, &[Value::Double(-3.5), Value::Double(-2.0)], &sig, &cfg).unwrap();
        let s = undo(s, &[Value::Double(1.5), Value::Double(8.0)], &sig, &cfg).unwrap();
        let s = (f.add)(s, &[Value::Double(-1.0), Value::Double(-2.0)], &sig, &cfg).unwrap();
        let s = (f.add)(s, &[Value::Double(-4.5), Value::Double(-1.0)], &sig, &cfg).unwrap();
        assert_eq!(
            (f.result)(&s, &sig).unwrap(),
            Value::Double(-0.7205766921228921)
        );
    }
}

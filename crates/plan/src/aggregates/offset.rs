//! EARLIEST_BY_OFFSET and LATEST_BY_OFFSET, each with the optional `n` and `ignoreNulls`
//! literal parameters: `(col)`, `(col, ignoreNulls)`, `(col, n)`, `(col, n, ignoreNulls)`.
//! NULLs are ignored by default.
//!
//! The operator feeds rows in offset order, so "earliest" is the first value added and "latest"
//! the last. Merging two session windows still needs to know which of two states came first,
//! so every captured value carries a sequence number (`STRUCT<SEQ BIGINT, VAL T>`), as in
//! ksqlDB. The sequence is process-wide and seeded from the wall clock so that values captured
//! after a restart still sort after those restored from a state store.

use super::common::{
    arg0, bad_state, field, get_i64, literal, literal_int, no_match, struct_type, P,
};
use super::{AggSignature, AggregateFunction};
use crate::value::Value;
use runnel_sql::SqlType;
use std::cmp::Ordering;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn register(out: &mut Vec<AggregateFunction>) {
    out.push(by_offset(Which::Earliest));
    out.push(by_offset(Which::Latest));
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Earliest,
    Latest,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Earliest => "EARLIEST_BY_OFFSET",
            Which::Latest => "LATEST_BY_OFFSET",
        }
    }
}

/// The next sequence number for a captured value.
fn next_seq() -> i64 {
    static SEQ: OnceLock<AtomicI64> = OnceLock::new();
    SEQ.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        AtomicI64::new(i64::try_from(nanos).unwrap_or(0))
    })
    .fetch_add(1, AtomicOrdering::Relaxed)
}

/// Orders sequence numbers; a negative one next to a non-negative one is taken to have wrapped
/// around and is therefore the later (ksqlDB's rule).
fn seq_cmp(a: i64, b: i64) -> Ordering {
    match (a < 0, b < 0) {
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.cmp(&b),
    }
}

fn entry(value: Value) -> Value {
    Value::Struct(vec![
        ("SEQ".to_string(), Value::Bigint(next_seq())),
        ("VAL".to_string(), value),
    ])
}

fn seq(entry: &Value) -> i64 {
    get_i64(field(entry, "SEQ")).unwrap_or(0)
}

/// `n` (for the N-valued forms) and `ignoreNulls` from a signature's constants.
fn mode(sig: &AggSignature) -> (Option<usize>, bool) {
    let mut n = None;
    let mut ignore_nulls = true;
    for c in &sig.constants {
        match c {
            Value::Boolean(b) => ignore_nulls = *b,
            other => n = literal_int(other).map(|n| n.max(1) as usize),
        }
    }
    (n, ignore_nulls)
}

fn resolve(
    which: Which,
    args: &[SqlType],
    constants: &[Option<Value>],
) -> Result<AggSignature, String> {
    let name = which.name();
    let overloads = vec![
        vec![P::Any],
        vec![P::Any, P::Bool],
        vec![P::Any, P::Int],
        vec![P::Any, P::Int, P::Bool],
    ];
    let shape_ok = matches!(
        args,
        [_] | [_, SqlType::Boolean | SqlType::Int] | [_, SqlType::Int, SqlType::Boolean]
    );
    if !shape_ok {
        return Err(no_match(name, args, &overloads));
    }
    let mut values = Vec::new();
    for index in 1..args.len() {
        values.push(literal(name, index, constants)?.clone());
    }
    let mut n = None;
    for v in &values {
        if let Value::Boolean(_) = v {
            continue;
        }
        let k = literal_int(v).ok_or_else(|| no_match(name, args, &overloads))?;
        if k <= 0 {
            // ksqlDB reports this with the same wording for both functions.
            return Err("earliestN must be 1 or greater".to_string());
        }
        n = Some(k);
    }
    let ty = match &args[0] {
        t if super::common::is_unknown(t) => SqlType::String,
        t => t.clone(),
    };
    let entry_type = struct_type(&[("SEQ", SqlType::Bigint), ("VAL", ty.clone())]);
    let (state_type, return_type) = if n.is_some() {
        (
            SqlType::Array(Box::new(entry_type)),
            SqlType::Array(Box::new(ty.clone())),
        )
    } else {
        (entry_type, ty.clone())
    };
    Ok(AggSignature {
        arg_types: vec![ty],
        constants: values,
        state_type,
        return_type,
    })
}

fn take(which: Which, state: Value) -> Result<Vec<Value>, String> {
    match state {
        Value::Array(items) => Ok(items),
        other => Err(bad_state(which.name(), &other)),
    }
}

fn add(which: Which, state: Value, value: &Value, sig: &AggSignature) -> Result<Value, String> {
    let (n, ignore_nulls) = mode(sig);
    if value.is_null() && ignore_nulls {
        return Ok(state);
    }
    match (which, n) {
        // Single value: NULL state means nothing captured yet.
        (Which::Earliest, None) => Ok(if state.is_null() {
            entry(value.clone())
        } else {
            state
        }),
        (Which::Latest, None) => Ok(entry(value.clone())),
        (Which::Earliest, Some(n)) => {
            let mut items = take(which, state)?;
            if items.len() < n {
                items.push(entry(value.clone()));
            }
            Ok(Value::Array(items))
        }
        (Which::Latest, Some(n)) => {
            let mut items = take(which, state)?;
            items.push(entry(value.clone()));
            let excess = items.len().saturating_sub(n);
            items.drain(..excess);
            Ok(Value::Array(items))
        }
    }
}

/// Orders two captured entries for merging: with `ignoreNulls` an entry holding NULL sorts
/// before any entry holding a value, otherwise by sequence.
fn entry_cmp(a: &Value, b: &Value, ignore_nulls: bool) -> Ordering {
    if ignore_nulls {
        match (field(a, "VAL").is_null(), field(b, "VAL").is_null()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
    }
    seq_cmp(seq(a), seq(b))
}

fn merge(which: Which, a: Value, b: Value, sig: &AggSignature) -> Result<Value, String> {
    let (n, ignore_nulls) = mode(sig);
    match n {
        None => {
            if a.is_null() {
                return Ok(b);
            }
            if b.is_null() {
                return Ok(a);
            }
            let ord = entry_cmp(&a, &b, ignore_nulls);
            let keep_a = match which {
                Which::Earliest => {
                    // With ignoreNulls a NULL-valued entry loses whatever its sequence.
                    if ignore_nulls && field(&a, "VAL").is_null() != field(&b, "VAL").is_null() {
                        !field(&a, "VAL").is_null()
                    } else {
                        ord == Ordering::Less
                    }
                }
                Which::Latest => ord != Ordering::Less,
            };
            Ok(if keep_a { a } else { b })
        }
        Some(n) => {
            let mut items = take(which, a)?;
            items.extend(take(which, b)?);
            items.sort_by(|x, y| entry_cmp(x, y, ignore_nulls));
            match which {
                Which::Earliest => items.truncate(n),
                Which::Latest => {
                    let excess = items.len().saturating_sub(n);
                    items.drain(..excess);
                }
            }
            Ok(Value::Array(items))
        }
    }
}

fn result(which: Which, state: &Value, sig: &AggSignature) -> Result<Value, String> {
    match mode(sig).0 {
        None => Ok(field(state, "VAL").clone()),
        Some(_) => match state {
            Value::Array(items) => Ok(Value::Array(
                items.iter().map(|e| field(e, "VAL").clone()).collect(),
            )),
            other => Err(bad_state(which.name(), other)),
        },
    }
}

fn by_offset(which: Which) -> AggregateFunction {
    let description = match which {
        Which::Earliest => {
            "Returns the value of a column with the lowest offset, or the first n values as an \
             array; NULLs are ignored unless ignoreNulls is false."
        }
        Which::Latest => {
            "Returns the value of a column with the highest offset, or the last n values as an \
             array; NULLs are ignored unless ignoreNulls is false."
        }
    };
    AggregateFunction {
        name: which.name().into(),
        description: description.into(),
        resolve: Arc::new(move |args, constants| resolve(which, args, constants)),
        init: Arc::new(|sig| {
            if mode(sig).0.is_some() {
                Value::Array(Vec::new())
            } else {
                Value::Null
            }
        }),
        add: Arc::new(move |state, args, sig, _| add(which, state, arg0(args), sig)),
        undo: None,
        merge: Arc::new(move |a, b, sig| merge(which, a, b, sig)),
        result: Arc::new(move |state, sig| result(which, state, sig)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AggregateConfig, AggregateRegistry};
    use super::*;

    fn resolve_with(name: &str, consts: &[Value]) -> (AggregateFunction, AggSignature) {
        let f = AggregateRegistry::builtin().get(name).unwrap().clone();
        let mut types = vec![SqlType::Int];
        let mut cs = vec![None];
        for c in consts {
            types.push(match c {
                Value::Boolean(_) => SqlType::Boolean,
                _ => SqlType::Int,
            });
            cs.push(Some(c.clone()));
        }
        let sig = (f.resolve)(&types, &cs).unwrap();
        (f, sig)
    }

    fn feed(name: &str, consts: &[Value], rows: &[Option<i32>]) -> Vec<Value> {
        let (f, sig) = resolve_with(name, consts);
        let cfg = AggregateConfig::default();
        let mut state = (f.init)(&sig);
        rows.iter()
            .map(|r| {
                let v = r.map(Value::Int).unwrap_or(Value::Null);
                state =
                    (f.add)(std::mem::replace(&mut state, Value::Null), &[v], &sig, &cfg).unwrap();
                (f.result)(&state, &sig).unwrap()
            })
            .collect()
    }

    fn ints(xs: &[Option<i32>]) -> Value {
        Value::Array(
            xs.iter()
                .map(|x| x.map(Value::Int).unwrap_or(Value::Null))
                .collect(),
        )
    }

    #[test]
    fn earliest_variants_follow_qtt() {
        let e = "EARLIEST_BY_OFFSET";
        let t = Value::Boolean(true);
        let f = Value::Boolean(false);
        // "null first - single - ignoring nulls"
        assert_eq!(
            feed(e, std::slice::from_ref(&t), &[None, Some(13)]),
            vec![Value::Null, Value::Int(13)]
        );
        // "null first - single - not ignoring nulls"
        assert_eq!(
            feed(e, std::slice::from_ref(&f), &[None, Some(13)]),
            vec![Value::Null, Value::Null]
        );
        // "null first - multiple - ignoring nulls"
        assert_eq!(
            feed(e, &[Value::Int(2)], &[None, Some(13)]),
            vec![ints(&[]), ints(&[Some(13)])]
        );
        // "null later - multiple - nulls not ignored"
        assert_eq!(
            feed(e, &[Value::Int(2), f], &[Some(12), None, Some(13)]),
            vec![
                ints(&[Some(12)]),
                ints(&[Some(12), None]),
                ints(&[Some(12), None])
            ]
        );
        // "nulls later - single - nulls ignored"
        assert_eq!(
            feed(e, &[], &[Some(12), None, Some(13)]),
            vec![Value::Int(12), Value::Int(12), Value::Int(12)]
        );
    }

    #[test]
    fn latest_variants() {
        let l = "LATEST_BY_OFFSET";
        assert_eq!(
            feed(l, &[], &[Some(12), None, Some(13)]),
            vec![Value::Int(12), Value::Int(12), Value::Int(13)]
        );
        assert_eq!(
            feed(l, &[Value::Boolean(false)], &[Some(12), None]),
            vec![Value::Int(12), Value::Null]
        );
        assert_eq!(
            feed(l, &[Value::Int(2)], &[Some(1), Some(2), None, Some(3)]),
            vec![
                ints(&[Some(1)]),
                ints(&[Some(1), Some(2)]),
                ints(&[Some(1), Some(2)]),
                ints(&[Some(2), Some(3)])
            ]
        );
    }

    #[test]
    fn session_merges_pick_by_sequence() {
        // earliest-offset-udaf.json "merging session windows - with nulls not ignored - N":
        // sessions [null] and [1], then a NULL row that bridges them.
        let (f, sig) = resolve_with(
            "EARLIEST_BY_OFFSET",
            &[Value::Int(2), Value::Boolean(false)],
        );
        let cfg = AggregateConfig::default();
        let s1 = (f.add)((f.init)(&sig), &[Value::Null], &sig, &cfg).unwrap();
        let s2 = (f.add)((f.init)(&sig), &[Value::Int(1)], &sig, &cfg).unwrap();
        let merged = (f.merge)((f.init)(&sig), s1, &sig).unwrap();
        let merged = (f.merge)(merged, s2, &sig).unwrap();
        let merged = (f.add)(merged, &[Value::Null], &sig, &cfg).unwrap();
        assert_eq!((f.result)(&merged, &sig).unwrap(), ints(&[None, Some(1)]));

        // "merging session windows - with nulls ignored": a NULL-only session loses.
        let (f, sig) = resolve_with("EARLIEST_BY_OFFSET", &[Value::Boolean(true)]);
        let s1 = (f.add)((f.init)(&sig), &[Value::Null], &sig, &cfg).unwrap();
        let s2 = (f.add)((f.init)(&sig), &[Value::Int(1)], &sig, &cfg).unwrap();
        let merged = (f.merge)((f.merge)((f.init)(&sig), s1, &sig).unwrap(), s2, &sig).unwrap();
        assert_eq!((f.result)(&merged, &sig).unwrap(), Value::Int(1));

        // "merging session windows - with nulls not ignored": the earlier NULL wins.
        let (f, sig) = resolve_with("EARLIEST_BY_OFFSET", &[Value::Boolean(false)]);
        let s1 = (f.add)((f.init)(&sig), &[Value::Null], &sig, &cfg).unwrap();
        let s2 = (f.add)((f.init)(&sig), &[Value::Int(1)], &sig, &cfg).unwrap();
        let merged = (f.merge)(s2.clone(), s1.clone(), &sig).unwrap();
        assert_eq!((f.result)(&merged, &sig).unwrap(), Value::Null);

        // LATEST picks the later sequence.
        let (f, sig) = resolve_with("LATEST_BY_OFFSET", &[]);
        let s1 = (f.add)((f.init)(&sig), &[Value::Int(1)], &sig, &cfg).unwrap();
        let s2 = (f.add)((f.init)(&sig), &[Value::Int(2)], &sig, &cfg).unwrap();
        let merged = (f.merge)(s2, s1, &sig).unwrap();
        assert_eq!((f.result)(&merged, &sig).unwrap(), Value::Int(2));
    }

    #[test]
    fn resolution_rules() {
        let f = AggregateRegistry::builtin()
            .get("EARLIEST_BY_OFFSET")
            .unwrap()
            .clone();
        // udaf.json "throw on no literal expressions pass for literal params"
        let err = (f.resolve)(&[SqlType::Int, SqlType::Int], &[None, None]).unwrap_err();
        assert_eq!(
            super::super::fill_argument_text(&err, &["F0".into(), "F0".into()]),
            "Parameter 2 passed to function EARLIEST_BY_OFFSET must be a literal constant, \
             but was expression: 'F0'"
        );
        // udaf.json "support more than one literal param"
        let sig = (f.resolve)(
            &[SqlType::Int, SqlType::Int, SqlType::Boolean],
            &[None, Some(Value::Int(2)), Some(Value::Boolean(true))],
        )
        .unwrap();
        assert_eq!(sig.arg_types, vec![SqlType::Int]);
        assert_eq!(sig.return_type.to_string(), "ARRAY<INTEGER>");
        assert_eq!(
            sig.state_type.to_string(),
            "ARRAY<STRUCT<`SEQ` BIGINT, `VAL` INTEGER>>"
        );
        assert!(f.undo.is_none());
        let err =
            (f.resolve)(&[SqlType::Int, SqlType::String], &[None, Some(Value::Null)]).unwrap_err();
        assert!(err.starts_with(
            "Function 'EARLIEST_BY_OFFSET' does not accept parameters (INTEGER, STRING)."
        ));
        assert!((f.resolve)(&[SqlType::Int, SqlType::Int], &[None, Some(Value::Int(0))]).is_err());
    }
}

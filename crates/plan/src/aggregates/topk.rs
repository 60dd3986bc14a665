//! TOPK and TOPKDISTINCT.
//!
//! `TOPK(col, k)` keeps the k largest values in descending order; `TOPK(col, other…, k)` keeps
//! whole rows as `STRUCT<sort_col, col0, col1, …>` ranked by the first column. The insertion
//! rule is ksqlDB's: a full list only takes a value strictly greater than its last entry, which
//! replaces that entry before a *stable* descending sort, so among equal sort keys earlier rows
//! come first. Both are stream-only (no undo).

use super::common::{arg0, bad_state, java_cmp, literal, literal_int, no_match, pick, P};
use super::{AggSignature, AggregateFunction};
use crate::value::Value;
use runnel_sql::types::StructField;
use runnel_sql::SqlType;
use std::cmp::Ordering;
use std::sync::Arc;

pub(crate) fn register(out: &mut Vec<AggregateFunction>) {
    out.push(topk());
    out.push(topk_distinct());
}

/// The sort-column types TOPK accepts.
fn topk_sort_params() -> Vec<P> {
    vec![P::Int, P::Bigint, P::Double, P::String]
}

/// The `k` of a resolved signature (its only constant); negative values act as 0.
fn k_of(sig: &AggSignature) -> usize {
    sig.constants
        .first()
        .and_then(literal_int)
        .map(|k| k.max(0) as usize)
        .unwrap_or(0)
}

/// Reads `k`, which must be an INTEGER literal in the last position.
fn resolve_k(
    display: &str,
    args: &[SqlType],
    constants: &[Option<Value>],
    overloads: &[Vec<P>],
) -> Result<Value, String> {
    let last = args.len() - 1;
    if !matches!(args[last], SqlType::Int) {
        return Err(no_match(display, args, overloads));
    }
    let k = literal(display, last, constants)?;
    literal_int(k)
        .map(|k| Value::Int(k.clamp(i32::MIN as i64, i32::MAX as i64) as i32))
        .ok_or_else(|| no_match(display, args, overloads))
}

/// The sort key of a stored entry: the value itself, or the struct's `sort_col`.
fn sort_key(entry: &Value) -> &Value {
    match entry {
        Value::Struct(fields) => fields.first().map(|(_, v)| v).unwrap_or(&Value::Null),
        other => other,
    }
}

fn descending(a: &Value, b: &Value) -> Ordering {
    java_cmp(sort_key(b), sort_key(a))
}

/// ksqlDB's insertion into a top-k list (see the module docs); `distinct` skips values already
/// present.
fn insert_top(mut items: Vec<Value>, entry: Value, k: usize, distinct: bool) -> Vec<Value> {
    if let Some(last) = items.last() {
        if items.len() >= k && java_cmp(sort_key(&entry), sort_key(last)) != Ordering::Greater {
            return items;
        }
    } else if k == 0 {
        return items;
    }
    if distinct
        && items
            .iter()
            .any(|x| java_cmp(sort_key(x), sort_key(&entry)).is_eq())
    {
        return items;
    }
    if items.len() >= k {
        items.truncate(k.saturating_sub(1));
    }
    items.push(entry);
    items.sort_by(descending);
    items
}

/// Merges two descending lists keeping at most k entries; on ties the first list's entry goes
/// first (and, for `distinct`, the second list's duplicate is dropped).
fn merge_top(one: Vec<Value>, two: Vec<Value>, k: usize, distinct: bool) -> Vec<Value> {
    let mut merged = Vec::with_capacity(k.min(one.len() + two.len()));
    let (mut a, mut b) = (one.into_iter().peekable(), two.into_iter().peekable());
    while merged.len() < k {
        let ord = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
            (Some(x), Some(y)) => java_cmp(sort_key(x), sort_key(y)),
        };
        if distinct && ord.is_eq() {
            b.next();
        }
        let pick_first = ord != Ordering::Less;
        let next = if pick_first { a.next() } else { b.next() };
        if let Some(v) = next {
            merged.push(v);
        }
    }
    merged
}

fn take(function: &str, state: Value) -> Result<Vec<Value>, String> {
    match state {
        Value::Array(items) => Ok(items),
        other => Err(bad_state(function, &other)),
    }
}

fn topk() -> AggregateFunction {
    AggregateFunction {
        name: "TOPK".into(),
        description: "Returns the k largest values of a column, largest first; with extra \
                      columns, TOPK(col, other…, k) returns whole rows as \
                      STRUCT<sort_col, col0, …>."
            .into(),
        resolve: Arc::new(|args, constants| {
            let overloads: Vec<Vec<P>> = topk_sort_params()
                .into_iter()
                .map(|p| vec![p, P::Int])
                .collect();
            if args.len() < 2 {
                return Err(no_match("TOPK", args, &overloads));
            }
            let k = resolve_k("TOPK", args, constants, &overloads)?;
            let columns = &args[..args.len() - 1];
            let sort_overloads: Vec<Vec<P>> =
                topk_sort_params().into_iter().map(|p| vec![p]).collect();
            let (_, sort) = pick("TOPK", &sort_overloads, &columns[..1])
                .map_err(|_| no_match("TOPK", args, &overloads))?;
            let mut arg_types = sort.clone();
            arg_types.extend(columns[1..].iter().map(|t| {
                if super::common::is_unknown(t) {
                    SqlType::String
                } else {
                    t.clone()
                }
            }));
            let element = if arg_types.len() == 1 {
                arg_types[0].clone()
            } else {
                let mut fields = vec![StructField::new("sort_col", arg_types[0].clone())];
                for (i, t) in arg_types[1..].iter().enumerate() {
                    fields.push(StructField::new(format!("col{i}"), t.clone()));
                }
                SqlType::Struct(fields)
            };
            let ty = SqlType::Array(Box::new(element));
            Ok(AggSignature {
                arg_types,
                constants: vec![k],
                state_type: ty.clone(),
                return_type: ty,
            })
        }),
        init: Arc::new(|_| Value::Array(Vec::new())),
        add: Arc::new(|state, args, sig, _| {
            let items = take("TOPK", state)?;
            if arg0(args).is_null() {
                return Ok(Value::Array(items));
            }
            let entry = if args.len() == 1 {
                args[0].clone()
            } else {
                let mut fields = vec![("sort_col".to_string(), args[0].clone())];
                for (i, v) in args[1..].iter().enumerate() {
                    fields.push((format!("col{i}"), v.clone()));
                }
                Value::Struct(fields)
            };
            Ok(Value::Array(insert_top(items, entry, k_of(sig), false)))
        }),
        undo: None,
        merge: Arc::new(|a, b, sig| {
            Ok(Value::Array(merge_top(
                take("TOPK", a)?,
                take("TOPK", b)?,
                k_of(sig),
                false,
            )))
        }),
        result: Arc::new(|state, _| Ok(state.clone())),
    }
}

fn topk_distinct() -> AggregateFunction {
    AggregateFunction {
        name: "TOPKDISTINCT".into(),
        description: "Returns the k largest distinct values of a column, largest first.".into(),
        resolve: Arc::new(|args, constants| {
            let params = vec![P::Int, P::Bigint, P::Double, P::String, P::Decimal];
            let overloads: Vec<Vec<P>> = params.iter().map(|p| vec![p.clone(), P::Int]).collect();
            if args.len() != 2 {
                return Err(no_match("TOPKDISTINCT", args, &overloads));
            }
            let k = resolve_k("TOPKDISTINCT", args, constants, &overloads)?;
            let single: Vec<Vec<P>> = params.into_iter().map(|p| vec![p]).collect();
            let (_, arg_types) = pick("TOPKDISTINCT", &single, &args[..1])
                .map_err(|_| no_match("TOPKDISTINCT", args, &overloads))?;
            let ty = SqlType::Array(Box::new(arg_types[0].clone()));
            Ok(AggSignature {
                arg_types,
                constants: vec![k],
                state_type: ty.clone(),
                return_type: ty,
            })
        }),
        init: Arc::new(|_| Value::Array(Vec::new())),
        add: Arc::new(|state, args, sig, _| {
            let items = take("TOPKDISTINCT", state)?;
            let v = arg0(args);
            if v.is_null() {
                return Ok(Value::Array(items));
            }
            Ok(Value::Array(insert_top(items, v.clone(), k_of(sig), true)))
        }),
        undo: None,
        merge: Arc::new(|a, b, sig| {
            Ok(Value::Array(merge_top(
                take("TOPKDISTINCT", a)?,
                take("TOPKDISTINCT", b)?,
                k_of(sig),
                true,
            )))
        }),
        result: Arc::new(|state, _| Ok(state.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AggregateConfig, AggregateRegistry};
    use super::*;

    fn resolve(name: &str, args: &[SqlType], k: i32) -> (AggregateFunction, AggSignature) {
        let f = AggregateRegistry::builtin().get(name).unwrap().clone();
        let mut consts = vec![None; args.len() - 1];
        consts.push(Some(Value::Int(k)));
        let sig = (f.resolve)(args, &consts).unwrap();
        (f, sig)
    }

    fn feed(f: &AggregateFunction, sig: &AggSignature, rows: &[Vec<Value>]) -> Vec<Value> {
        let cfg = AggregateConfig::default();
        let mut state = (f.init)(sig);
        let mut out = Vec::new();
        for row in rows {
            state = (f.add)(state, row, sig, &cfg).unwrap();
            out.push((f.result)(&state, sig).unwrap());
        }
        out
    }

    fn ints(xs: &[i32]) -> Value {
        Value::Array(xs.iter().map(|x| Value::Int(*x)).collect())
    }

    #[test]
    fn topk_integers() {
        // topk-group-by.json "topk integer"
        let (f, sig) = resolve("TOPK", &[SqlType::Int, SqlType::Int], 3);
        assert_eq!(sig.arg_types, vec![SqlType::Int]);
        assert_eq!(sig.return_type.to_string(), "ARRAY<INTEGER>");
        let rows: Vec<Vec<Value>> = [0, 100, 99, 7, 100]
            .iter()
            .map(|x| vec![Value::Int(*x)])
            .collect();
        let out = feed(&f, &sig, &rows);
        assert_eq!(
            out,
            vec![
                ints(&[0]),
                ints(&[100, 0]),
                ints(&[100, 99, 0]),
                ints(&[100, 99, 7]),
                ints(&[100, 100, 99])
            ]
        );
        assert!(f.undo.is_none());
    }

    #[test]
    fn topk_struct_keeps_row_order_on_ties() {
        // topk-group-by.json "topk integer struct"
        let (f, sig) = resolve("TOPK", &[SqlType::Int, SqlType::String, SqlType::Int], 3);
        assert_eq!(
            sig.return_type.to_string(),
            "ARRAY<STRUCT<`sort_col` INTEGER, `col0` STRING>>"
        );
        let row = |v: Option<i32>, n: Option<&str>| {
            vec![
                v.map(Value::Int).unwrap_or(Value::Null),
                n.map(|s| Value::String(s.into())).unwrap_or(Value::Null),
            ]
        };
        let out = feed(
            &f,
            &sig,
            &[
                row(Some(0), Some("zero")),
                row(Some(100), Some("one")),
                row(Some(99), Some("two")),
                row(None, Some("three")),
                row(Some(100), None),
            ],
        );
        let e = |v: i32, n: Option<&str>| {
            Value::Struct(vec![
                ("sort_col".into(), Value::Int(v)),
                (
                    "col0".into(),
                    n.map(|s| Value::String(s.into())).unwrap_or(Value::Null),
                ),
            ])
        };
        assert_eq!(out[3], out[2]);
        assert_eq!(
            out[4],
            Value::Array(vec![e(100, Some("one")), e(100, None), e(99, Some("two"))])
        );
    }

    #[test]
    fn topk_requires_a_literal_k() {
        let f = AggregateRegistry::builtin().get("TOPK").unwrap().clone();
        let err = (f.resolve)(&[SqlType::Int, SqlType::Int], &[None, None]).unwrap_err();
        assert!(err.starts_with("Parameter 2 passed to function TOPK must be a literal constant"));
        let err = (f.resolve)(
            &[SqlType::Boolean, SqlType::Int],
            &[None, Some(Value::Int(1))],
        )
        .unwrap_err();
        assert!(err.starts_with("Function 'TOPK' does not accept parameters (BOOLEAN, INTEGER)."));
    }

    #[test]
    fn topk_distinct_skips_duplicates() {
        // tumbling-windows.json "topkdistinct tumbling"
        let (f, sig) = resolve("TOPKDISTINCT", &[SqlType::Double, SqlType::Int], 2);
        let rows: Vec<Vec<Value>> = [0.0, 100.0, 10.0, 100.0]
            .iter()
            .map(|x| vec![Value::Double(*x)])
            .collect();
        let out = feed(&f, &sig, &rows);
        let d = |xs: &[f64]| Value::Array(xs.iter().map(|x| Value::Double(*x)).collect());
        assert_eq!(
            out,
            vec![
                d(&[0.0]),
                d(&[100.0, 0.0]),
                d(&[100.0, 10.0]),
                d(&[100.0, 10.0])
            ]
        );
        let merged = (f.merge)(d(&[100.0, 10.0]), d(&[100.0, 50.0]), &sig).unwrap();
        assert_eq!(merged, d(&[100.0, 50.0]));
    }

    #[test]
    fn topk_merge_keeps_k() {
        let (f, sig) = resolve("TOPK", &[SqlType::Int, SqlType::Int], 3);
        let merged = (f.merge)(ints(&[9, 5, 1]), ints(&[7, 5]), &sig).unwrap();
        assert_eq!(merged, ints(&[9, 7, 5]));
    }
}

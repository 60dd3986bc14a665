//! COLLECT_LIST, COLLECT_SET, HISTOGRAM and ATTR: aggregates whose state is a collection.
//!
//! COLLECT_LIST and COLLECT_SET keep NULLs (ksqlDB adds them like any other value) and honour
//! the `ksql.functions.collect_{list,set}.limit` settings; HISTOGRAM stops taking new keys at
//! 1000. ATTR keeps a count per distinct value (NULL included) so that table aggregations can
//! retract rows and find out whether a single value is left.

use super::common::{arg0, bad_state, field, get_i64, java_eq, pick, struct_type, P};
use super::{AggSignature, AggregateConfig, AggregateFunction};
use crate::value::Value;
use runnel_sql::SqlType;
use std::sync::Arc;

/// HISTOGRAM's cap on distinct keys.
const HISTOGRAM_LIMIT: usize = 1000;

pub(crate) fn register(out: &mut Vec<AggregateFunction>) {
    out.push(collect_list());
    out.push(collect_set());
    out.push(histogram());
    out.push(attr());
}

fn array_of(t: &SqlType) -> SqlType {
    SqlType::Array(Box::new(t.clone()))
}

fn collection_signature(display: &str, args: &[SqlType]) -> Result<AggSignature, String> {
    let (_, cast) = pick(display, &[vec![P::Any]], args)?;
    let ty = array_of(&cast[0]);
    Ok(AggSignature {
        arg_types: cast,
        constants: Vec::new(),
        state_type: ty.clone(),
        return_type: ty,
    })
}

fn take_array(function: &str, state: Value) -> Result<Vec<Value>, String> {
    match state {
        Value::Array(items) => Ok(items),
        other => Err(bad_state(function, &other)),
    }
}

fn collect_list() -> AggregateFunction {
    AggregateFunction {
        name: "COLLECT_LIST".into(),
        description: "Gathers every value of a column (NULLs included) into an array, up to \
                      ksql.functions.collect_list.limit entries."
            .into(),
        resolve: Arc::new(|args, _| collection_signature("collect_list", args)),
        init: Arc::new(|_| Value::Array(Vec::new())),
        add: Arc::new(|state, args, _, cfg: &AggregateConfig| {
            let mut items = take_array("collect_list", state)?;
            if items.len() < cfg.collect_list_limit.unwrap_or(usize::MAX) {
                items.push(arg0(args).clone());
            }
            Ok(Value::Array(items))
        }),
        // Removes the last occurrence: ksqlDB does not track which row added which entry.
        undo: Some(Arc::new(|state, args, _, _| {
            let mut items = take_array("collect_list", state)?;
            let v = arg0(args);
            if let Some(pos) = items.iter().rposition(|x| java_eq(x, v)) {
                items.remove(pos);
            }
            Ok(Value::Array(items))
        })),
        // The limit is not known here, so the first list is kept whole and the second appended;
        // `add` enforces the limit again on the next row.
        merge: Arc::new(|a, b, _| {
            let mut one = take_array("collect_list", a)?;
            one.extend(take_array("collect_list", b)?);
            Ok(Value::Array(one))
        }),
        result: Arc::new(|state, _| Ok(state.clone())),
    }
}

fn collect_set() -> AggregateFunction {
    AggregateFunction {
        name: "COLLECT_SET".into(),
        description: "Gathers the distinct values of a column into an array, in first-seen \
                      order, up to ksql.functions.collect_set.limit entries."
            .into(),
        resolve: Arc::new(|args, _| collection_signature("collect_set", args)),
        init: Arc::new(|_| Value::Array(Vec::new())),
        add: Arc::new(|state, args, _, cfg: &AggregateConfig| {
            let mut items = take_array("collect_set", state)?;
            let v = arg0(args);
            if items.len() < cfg.collect_set_limit.unwrap_or(usize::MAX)
                && !items.iter().any(|x| java_eq(x, v))
            {
                items.push(v.clone());
            }
            Ok(Value::Array(items))
        }),
        undo: None,
        merge: Arc::new(|a, b, _| {
            let mut one = take_array("collect_set", a)?;
            for v in take_array("collect_set", b)? {
                if !one.iter().any(|x| java_eq(x, &v)) {
                    one.push(v);
                }
            }
            Ok(Value::Array(one))
        }),
        result: Arc::new(|state, _| Ok(state.clone())),
    }
}

fn take_map(state: Value) -> Result<Vec<(Value, Value)>, String> {
    match state {
        Value::Map(entries) => Ok(entries),
        other => Err(bad_state("histogram", &other)),
    }
}

/// Adds `n` occurrences of `key` to a histogram, respecting the distinct-key cap.
fn bump(entries: &mut Vec<(Value, Value)>, key: &Value, n: i64) {
    if let Some((_, count)) = entries.iter_mut().find(|(k, _)| k == key) {
        *count = Value::Bigint(get_i64(count).unwrap_or(0).wrapping_add(n));
    } else if entries.len() < HISTOGRAM_LIMIT {
        entries.push((key.clone(), Value::Bigint(n)));
    }
}

fn histogram() -> AggregateFunction {
    AggregateFunction {
        name: "HISTOGRAM".into(),
        description: "Counts how often each distinct string occurs, as a map from value to \
                      count (at most 1000 distinct values)."
            .into(),
        resolve: Arc::new(|args, _| {
            let (_, cast) = pick("histogram", &[vec![P::String]], args)?;
            let ty = SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Bigint));
            Ok(AggSignature {
                arg_types: cast,
                constants: Vec::new(),
                state_type: ty.clone(),
                return_type: ty,
            })
        }),
        init: Arc::new(|_| Value::Map(Vec::new())),
        // NULL values are skipped: a map key cannot be NULL in any output format.
        add: Arc::new(|state, args, _, _| {
            let mut entries = take_map(state)?;
            let v = arg0(args);
            if !v.is_null() {
                bump(&mut entries, v, 1);
            }
            Ok(Value::Map(entries))
        }),
        undo: Some(Arc::new(|state, args, _, _| {
            let mut entries = take_map(state)?;
            let v = arg0(args);
            if let Some(pos) = entries.iter().position(|(k, _)| k == v) {
                let left = get_i64(&entries[pos].1).unwrap_or(0) - 1;
                if left < 1 {
                    entries.remove(pos);
                } else {
                    entries[pos].1 = Value::Bigint(left);
                }
            }
            Ok(Value::Map(entries))
        })),
        merge: Arc::new(|a, b, _| {
            let mut one = take_map(a)?;
            for (k, v) in take_map(b)? {
                bump(&mut one, &k, get_i64(&v).unwrap_or(0));
            }
            Ok(Value::Map(one))
        }),
        result: Arc::new(|state, _| Ok(state.clone())),
    }
}

// ---------------------------------------------------------------------------------------------
// ATTR

fn attr_entries(state: Value) -> Result<Vec<(Value, i32)>, String> {
    let items = match state {
        Value::Array(items) => items,
        other => return Err(bad_state("ATTR", &other)),
    };
    items
        .iter()
        .map(|entry| {
            let count = get_i64(field(entry, "COUNT")).ok_or_else(|| bad_state("ATTR", entry))?;
            Ok((field(entry, "VALUE").clone(), count as i32))
        })
        .collect()
}

fn attr_value(entries: Vec<(Value, i32)>) -> Value {
    Value::Array(
        entries
            .into_iter()
            .map(|(v, c)| {
                Value::Struct(vec![
                    ("VALUE".to_string(), v),
                    ("COUNT".to_string(), Value::Int(c)),
                ])
            })
            .collect(),
    )
}

/// Adjusts the count of `value` by `delta`; entries that reach zero are dropped (ksqlDB keeps
/// them with a zero count, which is indistinguishable in the result).
fn attr_update(entries: &mut Vec<(Value, i32)>, value: &Value, delta: i32) {
    if let Some(pos) = entries.iter().position(|(v, _)| java_eq(v, value)) {
        let count = entries[pos].1.saturating_add(delta).max(0);
        if count == 0 {
            entries.remove(pos);
        } else {
            entries[pos].1 = count;
        }
    } else if delta > 0 {
        entries.push((value.clone(), delta));
    }
}

fn attr() -> AggregateFunction {
    AggregateFunction {
        name: "ATTR".into(),
        description: "Returns the column's value when every row of the group has the same \
                      value (NULL counts as a value), and NULL otherwise."
            .into(),
        resolve: Arc::new(|args, _| {
            let (_, cast) = pick("ATTR", &[vec![P::Any]], args)?;
            let entry = struct_type(&[("VALUE", cast[0].clone()), ("COUNT", SqlType::Int)]);
            let ty = cast[0].clone();
            Ok(AggSignature {
                arg_types: cast,
                constants: Vec::new(),
                state_type: array_of(&entry),
                return_type: ty,
            })
        }),
        init: Arc::new(|_| Value::Array(Vec::new())),
        add: Arc::new(|state, args, _, _| {
            let mut entries = attr_entries(state)?;
            attr_update(&mut entries, arg0(args), 1);
            Ok(attr_value(entries))
        }),
        undo: Some(Arc::new(|state, args, _, _| {
            let mut entries = attr_entries(state)?;
            attr_update(&mut entries, arg0(args), -1);
            Ok(attr_value(entries))
        })),
        merge: Arc::new(|a, b, _| {
            let mut one = attr_entries(a)?;
            for (v, c) in attr_entries(b)? {
                attr_update(&mut one, &v, c);
            }
            Ok(attr_value(one))
        }),
        result: Arc::new(|state, _| {
            let entries = attr_entries(state.clone())?;
            match entries.as_slice() {
                [(v, _)] => Ok(v.clone()),
                _ => Ok(Value::Null),
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::AggregateRegistry;
    use super::*;

    fn s(x: &str) -> Value {
        Value::String(x.into())
    }

    struct Run {
        f: AggregateFunction,
        sig: AggSignature,
        cfg: AggregateConfig,
        state: Value,
    }

    impl Run {
        fn new(name: &str, ty: SqlType, cfg: AggregateConfig) -> Run {
            let f = AggregateRegistry::builtin().get(name).unwrap().clone();
            let sig = (f.resolve)(&[ty], &[None]).unwrap();
            let state = (f.init)(&sig);
            Run { f, sig, cfg, state }
        }
        fn add(&mut self, v: Value) -> Value {
            let st = std::mem::replace(&mut self.state, Value::Null);
            self.state = (self.f.add)(st, &[v], &self.sig, &self.cfg).unwrap();
            (self.f.result)(&self.state, &self.sig).unwrap()
        }
        fn undo(&mut self, v: Value) -> Value {
            let st = std::mem::replace(&mut self.state, Value::Null);
            self.state = (self.f.undo.as_ref().unwrap())(st, &[v], &self.sig, &self.cfg).unwrap();
            (self.f.result)(&self.state, &self.sig).unwrap()
        }
    }

    #[test]
    fn collect_list_keeps_nulls_and_limit() {
        // collect-list.json "collect_list string": NULL is collected.
        let mut r = Run::new("COLLECT_LIST", SqlType::String, AggregateConfig::default());
        r.add(s("baz"));
        r.add(s("baz"));
        r.add(s("foo"));
        assert_eq!(
            r.add(Value::Null),
            Value::Array(vec![s("baz"), s("baz"), s("foo"), Value::Null])
        );
        // Table input: an update retracts the old value first ("collect_list int table").
        assert_eq!(
            r.undo(s("baz")),
            Value::Array(vec![s("baz"), s("foo"), Value::Null])
        );
        // "collect_list with limit of 1"
        let cfg = AggregateConfig {
            collect_list_limit: Some(1),
            ..Default::default()
        };
        let mut r = Run::new("COLLECT_LIST", SqlType::Int, cfg);
        r.add(Value::Int(0));
        assert_eq!(r.add(Value::Int(100)), Value::Array(vec![Value::Int(0)]));
        assert_eq!(r.sig.return_type.to_string(), "ARRAY<INTEGER>");
    }

    #[test]
    fn collect_set_is_distinct_and_stream_only() {
        let mut r = Run::new("COLLECT_SET", SqlType::Double, AggregateConfig::default());
        r.add(Value::Double(1.0));
        r.add(Value::Null);
        r.add(Value::Double(1.0));
        assert_eq!(
            r.add(Value::Null),
            Value::Array(vec![Value::Double(1.0), Value::Null])
        );
        assert!(r.f.undo.is_none());
        let merged = (r.f.merge)(
            Value::Array(vec![Value::Double(1.0)]),
            Value::Array(vec![Value::Double(2.0), Value::Double(1.0)]),
            &r.sig,
        )
        .unwrap();
        assert_eq!(
            merged,
            Value::Array(vec![Value::Double(1.0), Value::Double(2.0)])
        );
    }

    #[test]
    fn histogram_counts_and_retracts() {
        // histogram.json "histogram on a table", region east then bob moves west.
        let mut r = Run::new("HISTOGRAM", SqlType::String, AggregateConfig::default());
        r.add(s("alice"));
        let m = r.add(s("bob"));
        assert_eq!(
            m,
            Value::Map(vec![
                (s("alice"), Value::Bigint(1)),
                (s("bob"), Value::Bigint(1))
            ])
        );
        assert_eq!(
            r.undo(s("bob")),
            Value::Map(vec![(s("alice"), Value::Bigint(1))])
        );
        assert_eq!(r.sig.return_type.to_string(), "MAP<STRING, BIGINT>");
        let err = (r.f.resolve)(&[SqlType::Int], &[None]).unwrap_err();
        assert!(err.starts_with("Function 'histogram' does not accept parameters (INTEGER)."));
    }

    #[test]
    fn attr_follows_qtt() {
        // attr.json "invalid attr with nulls": "1", null, "1" → "1", null, null.
        let mut r = Run::new("ATTR", SqlType::String, AggregateConfig::default());
        assert_eq!(r.add(s("1")), s("1"));
        assert_eq!(r.add(Value::Null), Value::Null);
        assert_eq!(r.add(s("1")), Value::Null);
        // "table attr with tombstones"
        let mut r = Run::new("ATTR", SqlType::String, AggregateConfig::default());
        assert_eq!(r.add(s("1")), s("1"));
        assert_eq!(r.add(s("1")), s("1"));
        assert_eq!(r.undo(s("1")), s("1"));
        assert_eq!(r.undo(s("1")), Value::Null);
        assert_eq!(r.add(s("2")), s("2"));
        assert_eq!(r.add(s("3")), Value::Null);
        assert_eq!(r.undo(s("3")), s("2"));
        assert_eq!(
            r.sig.state_type.to_string(),
            "ARRAY<STRUCT<`VALUE` STRING, `COUNT` INTEGER>>"
        );
    }
}

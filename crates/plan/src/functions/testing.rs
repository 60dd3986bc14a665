//! The test-only functions that ksqlDB's query-validation runner loads from its test classpath
//! (`BAD_UDF`, `TEST_UDAF`, `MULTI_ARG`, `FOUR_ARG`, `FIVE_ARG`, `VAR_ARG`, `GENERIC_VAR_ARG`,
//! `OBJ_COL_ARG`).
//!
//! They exist so that the QTT files which exercise user-defined functions (several column
//! arguments, variadic column arguments, generic types, literal initialisation arguments, a UDF
//! that fails or keeps state) can judge Runnel as they judge ksqlDB. They are not part of the
//! SQL dialect: only `runnel test` registers them, through the ordinary extension point
//! ([`FunctionRegistry::register`] and [`AggregateRegistry::register`]), exactly as a user's
//! functions would be.
//!
//! The aggregates declare their parameters the way a ksqlDB UDAF does: the column arguments
//! (possibly ending in a variadic one), followed by the factory's initialisation arguments,
//! which must be literals and are passed last. Resolution uses the scalar catalogue's overload
//! matcher, so widening, generics and the "does not accept parameters" message behave alike.

use super::sig::{resolve, sig, var, var_r, MatchOptions, Ret, Sig, Udf, P};
use super::{FunctionRegistry, Resolved};
use crate::aggregates::{AggSignature, AggregateFunction, AggregateRegistry};
use crate::value::Value;
use runnel_sql::types::StructField;
use runnel_sql::SqlType;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Registers every test-only function into the given catalogues.
pub fn register_test_functions(
    functions: &mut FunctionRegistry,
    aggregates: &mut AggregateRegistry,
) {
    functions.register(bad_udf());
    for f in [
        test_udaf(),
        multi_arg(),
        four_arg(),
        five_arg(),
        var_arg(),
        generic_var_arg(),
        obj_col_arg(),
    ] {
        aggregates.register(f);
    }
}

/// `BAD_UDF`: `(INT) → STRING` always fails, `(BOOLEAN) → INT` fails when given TRUE, and
/// `(STRING) → STRING` returns NULL on every other invocation (its state is per catalogue, like
/// the Java instance's counter).
fn bad_udf() -> super::ScalarFunction {
    let calls = Arc::new(AtomicU64::new(0));
    Udf::new(
        "BAD_UDF",
        "bad_udf",
        "Test-only: throws, or returns NULL every other invocation.",
        vec![
            sig(vec![P::Int], SqlType::String),
            sig(vec![P::Bool], SqlType::Int),
            sig(vec![P::String], SqlType::String),
        ],
    )
    .build(move |args, info| match info.arg_types.first() {
        Some(SqlType::Int) => Err("boom!".to_string()),
        Some(SqlType::Boolean) => match args.first() {
            Some(Value::Boolean(true)) => Err("You asked me to throw...".to_string()),
            _ => Ok(Value::Int(0)),
        },
        _ => {
            // Even invocations (0, 2, ...) return NULL, as `i++ % 2 == 0` does in Java.
            let odd = calls.fetch_add(1, Ordering::Relaxed) & 1 == 1;
            Ok(if !odd {
                Value::Null
            } else {
                args.first().cloned().unwrap_or(Value::Null)
            })
        }
    })
}

/// Resolves a test UDAF: `columns` is how many leading parameters of the chosen overload are
/// column arguments (the rest are literal initialisation arguments).
fn resolve_udaf(
    display: &str,
    sigs: &[(Sig, usize)],
    args: &[SqlType],
    constants: &[Option<Value>],
    state_and_return: impl Fn(&Resolved, usize) -> (SqlType, SqlType),
) -> Result<AggSignature, String> {
    let plain: Vec<Sig> = sigs.iter().map(|(s, _)| s.clone()).collect();
    let resolved = resolve(display, &plain, args, MatchOptions::default())?;
    // The overload that matched is the one whose column count fits; the matcher does not say
    // which it chose, so take the first one that accepts the arguments on its own.
    let columns = sigs
        .iter()
        .find(|(s, _)| {
            resolve(
                display,
                std::slice::from_ref(s),
                args,
                MatchOptions::default(),
            )
            .is_ok()
        })
        .map(|(_, c)| *c)
        .unwrap_or(args.len())
        .min(args.len());
    let mut init = Vec::new();
    for i in columns..args.len() {
        match constants.get(i) {
            Some(Some(v)) => init.push(v.clone()),
            _ => {
                return Err(format!(
                    "Parameter {} passed to function {} must be a literal constant, but was \
                     expression: '{}'",
                    i + 1,
                    display,
                    crate::aggregates::arg_placeholder(i + 1)
                ))
            }
        }
    }
    let (state_type, return_type) = state_and_return(&resolved, columns);
    Ok(AggSignature {
        arg_types: resolved.arg_types[..columns].to_vec(),
        constants: init,
        state_type,
        return_type,
    })
}

fn long(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Java's `String.length()`: UTF-16 code units; 0 for NULL (the test UDAFs skip NULLs).
fn length(v: &Value) -> i64 {
    v.as_str().map_or(0, |s| s.encode_utf16().count() as i64)
}

/// `initArg1 + Σ length(initArg2...)`, the initial value of MULTI_ARG, FOUR_ARG and FIVE_ARG.
fn sum_init(signature: &AggSignature) -> Value {
    let mut total = signature.constants.first().map_or(0, long);
    for v in signature.constants.iter().skip(1) {
        total += length(v);
    }
    Value::Bigint(total)
}

fn add_longs(a: Value, b: Value, function: &str) -> Result<Value, String> {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => Ok(Value::Bigint(x.wrapping_add(y))),
        _ => Err(format!("{function}: unexpected state {a:?}")),
    }
}

/// A UDAF over `(BIGINT, STRING, STRING...)`-like columns that sums the longs and integers and
/// the lengths of the strings, NULLs counting as 0, starting from its initialisation arguments.
fn summing_udaf(
    name: &'static str,
    columns: Vec<P>,
    description: &'static str,
) -> AggregateFunction {
    let column_count = columns.len();
    let mut params = columns;
    params.push(P::Int);
    params.push(P::String);
    let sigs = vec![(var(params, SqlType::Bigint), column_count)];
    AggregateFunction {
        name: name.into(),
        description: description.into(),
        resolve: Arc::new(move |args, constants| {
            resolve_udaf(name, &sigs, args, constants, |_, _| {
                (SqlType::Bigint, SqlType::Bigint)
            })
        }),
        init: Arc::new(sum_init),
        add: Arc::new(move |state, args, _, _| {
            let row: i64 = args
                .iter()
                .map(|v| match v {
                    Value::String(_) => length(v),
                    other => long(other),
                })
                .sum();
            add_longs(state, Value::Bigint(row), name)
        }),
        undo: None,
        merge: Arc::new(move |a, b, _| add_longs(a, b, name)),
        result: Arc::new(|state, _| Ok(state.clone())),
    }
}

fn multi_arg() -> AggregateFunction {
    summing_udaf(
        "MULTI_ARG",
        vec![P::Bigint, P::String],
        "Test-only: sums a BIGINT and a string length, from int + lengths of strings.",
    )
}

fn four_arg() -> AggregateFunction {
    summing_udaf(
        "FOUR_ARG",
        vec![P::Bigint, P::String, P::String, P::String],
        "Test-only: sums a BIGINT and three string lengths.",
    )
}

fn five_arg() -> AggregateFunction {
    summing_udaf(
        "FIVE_ARG",
        vec![P::Bigint, P::String, P::String, P::String, P::Int],
        "Test-only: sums a BIGINT, three string lengths and an INT.",
    )
}

/// `VAR_ARG(BIGINT, STRING...)`: sums the long and the lengths of the strings.
fn var_arg() -> AggregateFunction {
    let sigs = vec![(var(vec![P::Bigint, P::String], SqlType::Bigint), usize::MAX)];
    AggregateFunction {
        name: "VAR_ARG".into(),
        description: "Test-only: sums a BIGINT and the lengths of any number of strings.".into(),
        resolve: Arc::new(move |args, constants| {
            resolve_udaf("VAR_ARG", &sigs, args, constants, |_, _| {
                (SqlType::Bigint, SqlType::Bigint)
            })
        }),
        init: Arc::new(|_| Value::Bigint(0)),
        add: Arc::new(|state, args, _, _| {
            let row = args.first().map_or(0, long) + args.iter().skip(1).map(length).sum::<i64>();
            add_longs(state, Value::Bigint(row), "VAR_ARG")
        }),
        undo: None,
        merge: Arc::new(|a, b, _| add_longs(a, b, "VAR_ARG")),
        result: Arc::new(|state, _| Ok(state.clone())),
    }
}

/// Collects the first column of every row whose columns are all non-NULL, as an array of the
/// first column's type (GENERIC_VAR_ARG and OBJ_COL_ARG).
fn collecting_udaf(
    name: &'static str,
    sigs: Vec<Sig>,
    description: &'static str,
) -> AggregateFunction {
    let sigs: Vec<(Sig, usize)> = sigs.into_iter().map(|s| (s, usize::MAX)).collect();
    AggregateFunction {
        name: name.into(),
        description: description.into(),
        resolve: Arc::new(move |args, constants| {
            resolve_udaf(name, &sigs, args, constants, |r, _| {
                let first = r.arg_types.first().cloned().unwrap_or(SqlType::String);
                let list = SqlType::Array(Box::new(first));
                (list.clone(), list)
            })
        }),
        init: Arc::new(|_| Value::Array(Vec::new())),
        add: Arc::new(move |state, args, _, _| match state {
            Value::Array(mut list) => {
                if !args.iter().any(Value::is_null) {
                    if let Some(first) = args.first() {
                        list.push(first.clone());
                    }
                }
                Ok(Value::Array(list))
            }
            other => Err(format!("{name}: unexpected state {other:?}")),
        }),
        undo: None,
        merge: Arc::new(move |a, b, _| match (a, b) {
            (Value::Array(mut x), Value::Array(y)) => {
                x.extend(y);
                Ok(Value::Array(x))
            }
            (a, _) => Err(format!("{name}: unexpected state {a:?}")),
        }),
        result: Arc::new(|state, _| Ok(state.clone())),
    }
}

fn generic_var_arg() -> AggregateFunction {
    collecting_udaf(
        "GENERIC_VAR_ARG",
        vec![var_r(
            vec![P::Generic('A'), P::Generic('B'), P::Generic('C')],
            Ret::Arg(0),
        )],
        "Test-only: the first column of the rows whose columns are all non-NULL.",
    )
}

fn obj_col_arg() -> AggregateFunction {
    collecting_udaf(
        "OBJ_COL_ARG",
        vec![var(vec![P::Int, P::Any], SqlType::Int)],
        "Test-only: the INT column of the rows whose columns are all non-NULL.",
    )
}

/// The struct TEST_UDAF sums field by field.
fn ab_struct() -> SqlType {
    SqlType::Struct(vec![
        StructField {
            name: "A".into(),
            ty: SqlType::Int,
        },
        StructField {
            name: "B".into(),
            ty: SqlType::Int,
        },
    ])
}

/// `TEST_UDAF`: sums BIGINT or INT (to BIGINT, undoable), DOUBLE, string lengths (starting
/// from the length of a literal initial string), or `STRUCT<A INT, B INT>` field by field.
fn test_udaf() -> AggregateFunction {
    let sigs = vec![
        (sig(vec![P::Bigint], SqlType::Bigint), 1),
        (sig(vec![P::Int], SqlType::Bigint), 1),
        (sig(vec![P::Double], SqlType::Double), 1),
        (sig(vec![P::String, P::String], SqlType::Bigint), 1),
    ];
    fn step(state: Value, args: &[Value], sign: i64) -> Result<Value, String> {
        let v = args.first().cloned().unwrap_or(Value::Null);
        match (state, v) {
            (_, Value::Null) => Err("TEST_UDAF: NULL argument".into()),
            (Value::Double(a), Value::Double(b)) => Ok(Value::Double(a + sign as f64 * b)),
            (Value::Bigint(a), Value::String(s)) => {
                Ok(Value::Bigint(a + sign * s.encode_utf16().count() as i64))
            }
            (Value::Bigint(a), b) => match b.as_i64() {
                Some(b) => Ok(Value::Bigint(a.wrapping_add(sign.wrapping_mul(b)))),
                None => Err(format!("TEST_UDAF: unexpected argument {b:?}")),
            },
            (Value::Struct(fields), Value::Struct(current)) => Ok(Value::Struct(
                fields
                    .into_iter()
                    .map(|(name, total)| {
                        let add = current
                            .iter()
                            .find(|(n, _)| *n == name)
                            .and_then(|(_, v)| v.as_i64())
                            .unwrap_or(0);
                        let sum = total.as_i64().unwrap_or(0) + sign * add;
                        (name, Value::Int(sum as i32))
                    })
                    .collect(),
            )),
            (state, _) => Err(format!("TEST_UDAF: unexpected state {state:?}")),
        }
    }
    AggregateFunction {
        name: "TEST_UDAF".into(),
        description: "Test-only: sums numbers, string lengths or STRUCT<A INT, B INT> fields."
            .into(),
        resolve: Arc::new(move |args, constants| {
            if args.len() == 1 && args[0] == ab_struct() {
                return Ok(AggSignature {
                    arg_types: vec![ab_struct()],
                    constants: vec![],
                    state_type: ab_struct(),
                    return_type: ab_struct(),
                });
            }
            resolve_udaf("test_udaf", &sigs, args, constants, |r, _| {
                (r.return_type.clone(), r.return_type.clone())
            })
        }),
        init: Arc::new(|signature| match &signature.return_type {
            SqlType::Double => Value::Double(0.0),
            SqlType::Struct(_) => Value::Struct(vec![
                ("A".into(), Value::Int(0)),
                ("B".into(), Value::Int(0)),
            ]),
            _ => Value::Bigint(signature.constants.first().map_or(0, length)),
        }),
        add: Arc::new(|state, args, _, _| step(state, args, 1)),
        undo: Some(Arc::new(|state, args, signature, _| {
            if signature
                .arg_types
                .first()
                .is_some_and(|t| matches!(t, SqlType::Bigint | SqlType::Int))
            {
                step(state, args, -1)
            } else {
                Err("TEST_UDAF can only undo BIGINT and INT sums".into())
            }
        })),
        merge: Arc::new(|a, b, _| match b {
            Value::Struct(_) => step(a, &[b], 1),
            Value::Double(_) => step(a, &[b], 1),
            b => add_longs(a, b, "TEST_UDAF"),
        }),
        result: Arc::new(|state, _| Ok(state.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::CallInfo;

    fn registries() -> (FunctionRegistry, AggregateRegistry) {
        let mut functions = FunctionRegistry::default();
        let mut aggregates = AggregateRegistry::default();
        register_test_functions(&mut functions, &mut aggregates);
        (functions, aggregates)
    }

    fn s(x: &str) -> Value {
        Value::String(x.into())
    }

    #[test]
    fn bad_udf_throws_or_alternates_null() {
        let (functions, _) = registries();
        let f = functions.scalar("bad_udf").expect("registered");
        let call = |ty: SqlType, v: Value| {
            let resolved = (f.resolve)(std::slice::from_ref(&ty)).expect("resolves");
            let info = CallInfo {
                arg_types: &resolved.arg_types,
                return_type: &resolved.return_type,
                config: &Default::default(),
            };
            (f.eval)(&[v], &info)
        };
        assert_eq!(call(SqlType::Int, Value::Int(1)), Err("boom!".to_string()));
        assert!(call(SqlType::Boolean, Value::Boolean(true)).is_err());
        assert_eq!(
            call(SqlType::Boolean, Value::Boolean(false)),
            Ok(Value::Int(0))
        );
        // Invocation 0 returns NULL, 1 the argument, 2 NULL again.
        assert_eq!(call(SqlType::String, s("a")), Ok(Value::Null));
        assert_eq!(call(SqlType::String, s("b")), Ok(s("b")));
        assert_eq!(call(SqlType::String, s("c")), Ok(Value::Null));
    }

    #[test]
    fn multi_arg_needs_its_literal_initialisers() {
        let (_, aggregates) = registries();
        let f = aggregates.get("MULTI_ARG").expect("registered");
        let err = (f.resolve)(&[SqlType::Bigint, SqlType::String], &[None, None])
            .expect_err("initial arguments are required");
        assert!(
            err.contains("Function 'MULTI_ARG' does not accept parameters (BIGINT, STRING)."),
            "{err}"
        );
        let types = [
            SqlType::Bigint,
            SqlType::String,
            SqlType::Int,
            SqlType::String,
            SqlType::String,
        ];
        // 5 + len("10") + len("200") = 10, then each row adds FIRST + len(SECOND).
        let constants = [
            None,
            None,
            Some(Value::Int(5)),
            Some(s("10")),
            Some(s("200")),
        ];
        let sig = (f.resolve)(&types, &constants).expect("resolves");
        assert_eq!(sig.arg_types, vec![SqlType::Bigint, SqlType::String]);
        let state = (f.init)(&sig);
        assert_eq!(state, Value::Bigint(10));
        let cfg = Default::default();
        let state = (f.add)(state, &[Value::Bigint(3), s("abcd")], &sig, &cfg).expect("adds");
        let state = (f.add)(state, &[Value::Null, Value::Null], &sig, &cfg).expect("adds");
        assert_eq!((f.result)(&state, &sig), Ok(Value::Bigint(17)));
        // A column argument given where a literal is required is refused.
        let err = (f.resolve)(&types, &[None, None, None, Some(s("10")), Some(s("200"))])
            .expect_err("literal required");
        assert!(err.contains("must be a literal constant"), "{err}");
    }

    #[test]
    fn var_arg_checks_the_variadic_type() {
        let (_, aggregates) = registries();
        let f = aggregates.get("VAR_ARG").expect("registered");
        let err = (f.resolve)(&[SqlType::Bigint, SqlType::Int], &[None, None])
            .expect_err("INT is not a STRING");
        assert!(
            err.contains("Function 'VAR_ARG' does not accept parameters (BIGINT, INTEGER)."),
            "{err}"
        );
        let sig = (f.resolve)(&[SqlType::Bigint], &[None]).expect("no variadic arguments");
        let state = (f.add)(
            (f.init)(&sig),
            &[Value::Bigint(4)],
            &sig,
            &Default::default(),
        );
        assert_eq!(state, Ok(Value::Bigint(4)));
    }

    #[test]
    fn generic_var_arg_collects_complete_rows() {
        let (_, aggregates) = registries();
        let f = aggregates.get("GENERIC_VAR_ARG").expect("registered");
        let types = [SqlType::Double, SqlType::Int, SqlType::String];
        let sig = (f.resolve)(&types, &[None, None, None]).expect("resolves");
        assert_eq!(sig.return_type, SqlType::Array(Box::new(SqlType::Double)));
        let cfg = Default::default();
        let state = (f.init)(&sig);
        let state = (f.add)(
            state,
            &[Value::Double(1.5), Value::Int(1), s("x")],
            &sig,
            &cfg,
        );
        let state = (f.add)(
            state.expect("adds"),
            &[Value::Double(2.5), Value::Null, s("x")],
            &sig,
            &cfg,
        );
        assert_eq!(state, Ok(Value::Array(vec![Value::Double(1.5)])));
    }

    #[test]
    fn test_udaf_undoes_only_integer_sums() {
        let (_, aggregates) = registries();
        let f = aggregates.get("TEST_UDAF").expect("registered");
        let cfg = Default::default();
        let sig = (f.resolve)(&[SqlType::Int], &[None]).expect("resolves");
        assert_eq!(sig.return_type, SqlType::Bigint);
        let undo = f.undo.as_ref().expect("undoable");
        let state = (f.add)((f.init)(&sig), &[Value::Int(7)], &sig, &cfg).expect("adds");
        assert_eq!(
            undo(state, &[Value::Int(2)], &sig, &cfg),
            Ok(Value::Bigint(5))
        );
        let sig = (f.resolve)(&[SqlType::Double], &[None]).expect("resolves");
        assert!(undo(Value::Double(1.0), &[Value::Double(1.0)], &sig, &cfg).is_err());
        // STRUCT<A INT, B INT> sums field by field.
        let sig = (f.resolve)(&[ab_struct()], &[None]).expect("resolves");
        let row = Value::Struct(vec![
            ("A".into(), Value::Int(1)),
            ("B".into(), Value::Int(2)),
        ]);
        let state = (f.add)((f.init)(&sig), std::slice::from_ref(&row), &sig, &cfg);
        let state = (f.add)(state.expect("adds"), &[row], &sig, &cfg);
        assert_eq!(
            state,
            Ok(Value::Struct(vec![
                ("A".into(), Value::Int(2)),
                ("B".into(), Value::Int(4))
            ]))
        );
    }
}

//! The aggregate function catalogue (UDAFs): ksqlDB's 18 built-in aggregates.
//!
//! An aggregate is a set of pure functions over a state `Value` (its "intermediate" value, e.g.
//! AVG keeps `STRUCT<SUM, COUNT>`): `init`, `add`, `undo` (for table aggregations, where an
//! update retracts the old row), `merge` (session windows) and `result`. Keeping the state a
//! plain `Value` lets the runtime store it in RocksDB and in changelog topics with one codec
//! (`crate::codec`, driven by `AggSignature::state_type`).
//!
//! Calling convention, shared with the aggregation operator:
//! * `resolve` gets the type of every argument and, per argument, its value when it is a
//!   literal. The column arguments always come first and the constant parameters (TOPK's `k`,
//!   EARLIEST_BY_OFFSET's `n` and `ignoreNulls`) last, so the operator passes `add`/`undo` the
//!   first `arg_types.len()` arguments of each row, cast to `arg_types`. `COUNT(*)` resolves
//!   with no arguments and is then called with an empty slice.
//! * A resolution error may contain `{argN}` (1-based) where ksqlDB quotes the SQL text of an
//!   argument; the planner substitutes it with [`fill_argument_text`].
//! * `undo` is `None` for the stream-only aggregates (ksqlDB rejects them on table sources).
//! * For session windows the operator merges the existing sessions' states into a fresh
//!   `init` state and only then `add`s the new row, as Kafka Streams does; EARLIEST_BY_OFFSET
//!   and friends rely on that order.
//! * `add`/`undo`/`merge`/`result` errors are runtime failures (such as DECIMAL overflow in
//!   SUM), worded as ksqlDB words them.

mod basic;
mod collect;
mod common;
mod offset;
mod stats;
mod topk;

pub(crate) use common::arg_placeholder;

use crate::value::Value;
use runnel_sql::SqlType;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The overload chosen for a call.
#[derive(Debug, Clone, PartialEq)]
pub struct AggSignature {
    /// Types the column arguments are cast to (constant arguments such as TOPK's `k` excluded).
    pub arg_types: Vec<SqlType>,
    /// Constant arguments (e.g. TOPK's `k`, EARLIEST_BY_OFFSET's `n` and `ignoreNulls`), in order.
    pub constants: Vec<Value>,
    /// Type of the state value.
    pub state_type: SqlType,
    pub return_type: SqlType,
}

/// Settings that change aggregate behaviour (`ksql.functions.collect_list.limit`, ...).
#[derive(Debug, Clone, Default)]
pub struct AggregateConfig {
    pub collect_list_limit: Option<usize>,
    pub collect_set_limit: Option<usize>,
}

pub type AggResolveFn =
    Arc<dyn Fn(&[SqlType], &[Option<Value>]) -> Result<AggSignature, String> + Send + Sync>;
pub type AggInitFn = Arc<dyn Fn(&AggSignature) -> Value + Send + Sync>;
pub type AggStepFn = Arc<
    dyn Fn(Value, &[Value], &AggSignature, &AggregateConfig) -> Result<Value, String> + Send + Sync,
>;
pub type AggMergeFn =
    Arc<dyn Fn(Value, Value, &AggSignature) -> Result<Value, String> + Send + Sync>;
pub type AggResultFn = Arc<dyn Fn(&Value, &AggSignature) -> Result<Value, String> + Send + Sync>;

#[derive(Clone)]
pub struct AggregateFunction {
    pub name: String,
    pub description: String,
    /// Picks the overload from the argument types; `constants[i]` is `Some` when argument i is a
    /// literal (needed for TOPK's k, etc.). A call with `*` (COUNT(*)) has no arguments.
    pub resolve: AggResolveFn,
    pub init: AggInitFn,
    /// Adds one row's argument values.
    pub add: AggStepFn,
    /// Removes one row's argument values; `None` for functions that cannot undo (stream-only).
    pub undo: Option<AggStepFn>,
    /// Combines two states (session windows merging).
    pub merge: AggMergeFn,
    /// The output value for a state.
    pub result: AggResultFn,
}

impl std::fmt::Debug for AggregateFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateFunction")
            .field("name", &self.name)
            .finish()
    }
}

/// All aggregate functions by upper-case name.
#[derive(Debug, Clone, Default)]
pub struct AggregateRegistry {
    functions: BTreeMap<String, AggregateFunction>,
}

impl AggregateRegistry {
    pub fn builtin() -> Self {
        let mut r = AggregateRegistry::default();
        register_builtins(&mut r);
        r
    }

    pub fn register(&mut self, f: AggregateFunction) {
        self.functions.insert(f.name.to_ascii_uppercase(), f);
    }

    pub fn get(&self, name: &str) -> Option<&AggregateFunction> {
        self.functions.get(&name.to_ascii_uppercase())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(|s| s.as_str())
    }
}

fn register_builtins(r: &mut AggregateRegistry) {
    let mut all = Vec::new();
    basic::register(&mut all);
    stats::register(&mut all);
    collect::register(&mut all);
    topk::register(&mut all);
    offset::register(&mut all);
    for f in all {
        r.register(f);
    }
}

/// Replaces the `{argN}` placeholders (1-based) of a resolution error with the SQL text of the
/// call's arguments, e.g. for "Parameter 2 passed to function EARLIEST_BY_OFFSET must be a
/// literal constant, but was expression: 'F0'". Placeholders without a matching argument are
/// left as they are.
pub fn fill_argument_text(message: &str, args: &[String]) -> String {
    let mut out = message.to_string();
    for (i, text) in args.iter().enumerate() {
        out = out.replace(&common::arg_placeholder(i + 1), text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_has_the_eighteen_builtins() {
        let r = AggregateRegistry::builtin();
        let names: Vec<&str> = r.names().collect();
        assert_eq!(
            names,
            vec![
                "ATTR",
                "AVG",
                "COLLECT_LIST",
                "COLLECT_SET",
                "CORRELATION",
                "COUNT",
                "COUNT_DISTINCT",
                "EARLIEST_BY_OFFSET",
                "HISTOGRAM",
                "LATEST_BY_OFFSET",
                "MAX",
                "MIN",
                "STDDEV_SAMP",
                "STDDEV_SAMPLE",
                "SUM",
                "SUM_LIST",
                "TOPK",
                "TOPKDISTINCT",
            ]
        );
        assert!(r.get("collect_list").is_some());
    }

    #[test]
    fn table_capable_functions_have_undo() {
        let r = AggregateRegistry::builtin();
        let with_undo: Vec<&str> = r
            .names()
            .filter(|n| r.get(n).is_some_and(|f| f.undo.is_some()))
            .collect();
        assert_eq!(
            with_undo,
            vec![
                "ATTR",
                "AVG",
                "COLLECT_LIST",
                "CORRELATION",
                "COUNT",
                "HISTOGRAM",
                "STDDEV_SAMP",
                "STDDEV_SAMPLE",
                "SUM",
                "SUM_LIST",
            ]
        );
    }

    #[test]
    fn argument_text_is_filled_in() {
        assert_eq!(
            fill_argument_text("was '{arg2}'", &["A".into(), "B + 1".into()]),
            "was 'B + 1'"
        );
        assert_eq!(
            fill_argument_text("was '{arg3}'", &["A".into()]),
            "was '{arg3}'"
        );
    }

    #[test]
    fn states_round_trip_through_the_codec() {
        // Every state an aggregate produces must be encodable with its declared state type.
        let r = AggregateRegistry::builtin();
        let cfg = AggregateConfig::default();
        type Case = (&'static str, Vec<SqlType>, Vec<Option<Value>>, Vec<Value>);
        let cases: Vec<Case> = vec![
            ("AVG", vec![SqlType::Int], vec![None], vec![Value::Int(3)]),
            (
                "STDDEV_SAMP",
                vec![SqlType::Bigint],
                vec![None],
                vec![Value::Bigint(3)],
            ),
            (
                "CORRELATION",
                vec![SqlType::Double, SqlType::Double],
                vec![None, None],
                vec![Value::Double(1.0), Value::Double(2.0)],
            ),
            (
                "ATTR",
                vec![SqlType::String],
                vec![None],
                vec![Value::String("a".into())],
            ),
            (
                "HISTOGRAM",
                vec![SqlType::String],
                vec![None],
                vec![Value::String("a".into())],
            ),
            (
                "LATEST_BY_OFFSET",
                vec![SqlType::Int],
                vec![None],
                vec![Value::Int(1)],
            ),
            (
                "EARLIEST_BY_OFFSET",
                vec![SqlType::Int, SqlType::Int],
                vec![None, Some(Value::Int(2))],
                vec![Value::Int(1)],
            ),
            (
                "TOPK",
                vec![SqlType::Int, SqlType::String, SqlType::Int],
                vec![None, None, Some(Value::Int(2))],
                vec![Value::Int(1), Value::String("x".into())],
            ),
            (
                "COUNT_DISTINCT",
                vec![SqlType::Bytes],
                vec![None],
                vec![Value::Bytes(vec![1])],
            ),
        ];
        for (name, types, consts, row) in cases {
            let f = r.get(name).unwrap();
            let sig = (f.resolve)(&types, &consts).unwrap();
            let state = (f.add)((f.init)(&sig), &row, &sig, &cfg).unwrap();
            let mut bytes = Vec::new();
            crate::codec::encode_value(&state, &sig.state_type, &mut bytes);
            let (back, used) = crate::codec::decode_value(&bytes, &sig.state_type).unwrap();
            assert_eq!(used, bytes.len(), "{name}");
            assert_eq!(back, state, "{name}");
        }
    }
}

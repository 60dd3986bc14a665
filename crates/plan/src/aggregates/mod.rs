//! The aggregate function catalogue (UDAFs): ksqlDB's 18 built-in aggregates.
//!
//! An aggregate is a set of pure functions over a state `Value` (its "intermediate" value, e.g.
//! AVG keeps `STRUCT<SUM, COUNT>`): `init`, `add`, `undo` (for table aggregations, where an
//! update retracts the old row), `merge` (session windows) and `result`. Keeping the state a
//! plain `Value` lets the runtime store it in RocksDB and in changelog topics with one codec.

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

fn register_builtins(_r: &mut AggregateRegistry) {}

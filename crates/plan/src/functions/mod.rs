//! The scalar function catalogue: ksqlDB's built-in functions with their overloads, return types
//! and per-row implementations.
//!
//! Each function resolves its overload from the argument types at plan time (`resolve`), which
//! also tells the planner which implicit casts to insert (ksqlDB widens INT → BIGINT → DECIMAL →
//! DOUBLE). The implementation (`eval`) runs per row on `Value`s; the runtime wraps it in a
//! DataFusion scalar UDF so it takes part in compiled physical expressions.

mod bytes;
mod collections;
mod datetime;
pub mod javatime;
mod json;
mod math;
mod nulls;
mod sig;
mod string;
pub mod testing;
mod url;

use crate::value::Value;
use runnel_sql::SqlType;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The overload chosen for a call: the types the arguments are cast to, and the result type.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub arg_types: Vec<SqlType>,
    pub return_type: SqlType,
}

/// Settings that change how functions behave (from statement/session properties).
#[derive(Debug, Clone, Default)]
pub struct FunctionConfig {
    /// `ksql.functions.substring.legacy.args`
    pub substring_legacy_args: bool,
}

/// What an implementation knows about its call site.
pub struct CallInfo<'a> {
    /// Argument types after implicit casts (`Resolved::arg_types`).
    pub arg_types: &'a [SqlType],
    pub return_type: &'a SqlType,
    pub config: &'a FunctionConfig,
}

pub type ResolveFn = Arc<dyn Fn(&[SqlType]) -> Result<Resolved, String> + Send + Sync>;
pub type EvalFn = Arc<dyn Fn(&[Value], &CallInfo) -> Result<Value, String> + Send + Sync>;

#[derive(Clone)]
pub struct ScalarFunction {
    /// Upper-case name.
    pub name: String,
    pub description: String,
    /// Picks the overload for these argument types; `Err` explains why none fits.
    pub resolve: ResolveFn,
    /// Computes one row. An `Err` becomes NULL plus a processing-log entry, as in ksqlDB.
    pub eval: EvalFn,
}

impl std::fmt::Debug for ScalarFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScalarFunction")
            .field("name", &self.name)
            .finish()
    }
}

/// All scalar functions by upper-case name.
#[derive(Debug, Clone, Default)]
pub struct FunctionRegistry {
    scalars: BTreeMap<String, ScalarFunction>,
}

impl FunctionRegistry {
    /// The registry with every built-in scalar function.
    pub fn builtin() -> Self {
        let mut registry = FunctionRegistry::default();
        register_builtins(&mut registry);
        registry
    }

    pub fn register(&mut self, function: ScalarFunction) {
        self.scalars
            .insert(function.name.to_ascii_uppercase(), function);
    }

    /// Looks a function up without regard to case.
    pub fn scalar(&self, name: &str) -> Option<&ScalarFunction> {
        self.scalars.get(&name.to_ascii_uppercase())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.scalars.keys().map(|s| s.as_str())
    }
}

fn register_builtins(registry: &mut FunctionRegistry) {
    let mut all = Vec::new();
    math::register(&mut all);
    string::register(&mut all);
    bytes::register(&mut all);
    datetime::register(&mut all);
    json::register(&mut all);
    url::register(&mut all);
    collections::register(&mut all);
    nulls::register(&mut all);
    for function in all {
        registry.register(function);
    }
}

//! Overload resolution, modelled on ksqlDB's `UdfIndex`.
//!
//! A function declares its overloads as parameter patterns. Resolution first looks for overloads
//! that accept the arguments without any implicit cast, then (only if none fit) for overloads
//! reachable through numeric widening (INT → BIGINT → DECIMAL → DOUBLE). Among the fitting
//! overloads ksqlDB prefers non-variadic ones, then those with more declared parameters, then
//! those with fewer generics; a remaining tie is reported as ambiguous rather than guessed, which
//! is why `GREATEST(INT, BIGINT)` is an error in ksqlDB. Error messages keep ksqlDB's wording
//! because conformance tests match on them.

use super::{CallInfo, Resolved, ScalarFunction};
use crate::value::Value;
use runnel_sql::SqlType;
use std::fmt;
use std::sync::Arc;

/// A declared parameter type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum P {
    Bool,
    Int,
    Bigint,
    Double,
    /// Any decimal; the argument keeps its precision and scale.
    Decimal,
    String,
    Bytes,
    Date,
    Time,
    Timestamp,
    Array(Box<P>),
    Map(Box<P>, Box<P>),
    /// A type variable (`T`, `U`, ...): every use must bind to the same type.
    Generic(char),
    /// Anything at all (ksqlDB's `Object`).
    Any,
}

impl P {
    pub fn array(inner: P) -> P {
        P::Array(Box::new(inner))
    }

    pub fn map(k: P, v: P) -> P {
        P::Map(Box::new(k), Box::new(v))
    }

    fn generic_count(&self) -> usize {
        match self {
            P::Generic(_) => 1,
            P::Array(inner) => inner.generic_count(),
            P::Map(k, v) => k.generic_count() + v.generic_count(),
            _ => 0,
        }
    }
}

impl fmt::Display for P {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            P::Bool => f.write_str("BOOLEAN"),
            P::Int => f.write_str("INTEGER"),
            P::Bigint => f.write_str("BIGINT"),
            P::Double => f.write_str("DOUBLE"),
            P::Decimal => f.write_str("DECIMAL"),
            P::String => f.write_str("STRING"),
            P::Bytes => f.write_str("BYTES"),
            P::Date => f.write_str("DATE"),
            P::Time => f.write_str("TIME"),
            P::Timestamp => f.write_str("TIMESTAMP"),
            P::Array(inner) => write!(f, "ARRAY<{inner}>"),
            P::Map(k, v) => write!(f, "MAP<{k}, {v}>"),
            P::Generic(c) => write!(f, "{c}"),
            P::Any => f.write_str("ANY"),
        }
    }
}

/// How an overload's result type is derived from the (cast) argument types.
#[derive(Clone)]
pub(crate) enum Ret {
    Fixed(SqlType),
    /// The type of argument `i`.
    Arg(usize),
    /// The element type of array argument `i`.
    Elem(usize),
    Custom(fn(&[SqlType]) -> Result<SqlType, String>),
}

/// One overload.
#[derive(Clone)]
pub(crate) struct Sig {
    pub params: Vec<P>,
    /// The last parameter may repeat zero or more times.
    pub variadic: bool,
    pub ret: Ret,
}

pub(crate) fn sig(params: Vec<P>, ret: SqlType) -> Sig {
    Sig {
        params,
        variadic: false,
        ret: Ret::Fixed(ret),
    }
}

pub(crate) fn sig_r(params: Vec<P>, ret: Ret) -> Sig {
    Sig {
        params,
        variadic: false,
        ret,
    }
}

pub(crate) fn var(params: Vec<P>, ret: SqlType) -> Sig {
    Sig {
        params,
        variadic: true,
        ret: Ret::Fixed(ret),
    }
}

pub(crate) fn var_r(params: Vec<P>, ret: Ret) -> Sig {
    Sig {
        params,
        variadic: true,
        ret,
    }
}

/// Whether `t` is the placeholder for an argument of unknown type (an untyped NULL literal).
/// The planner passes `SqlType::Custom(..)` for those; like ksqlDB's typeless argument it fits
/// any parameter.
pub(crate) fn is_unknown(t: &SqlType) -> bool {
    matches!(t, SqlType::Custom(_))
}

/// ksqlDB's implicit numeric widening between base types (`SqlBaseType.canImplicitlyCast`).
pub(crate) fn widens_to(from: &SqlType, to: &P) -> Option<SqlType> {
    match (from, to) {
        (SqlType::Int, P::Bigint) => Some(SqlType::Bigint),
        (SqlType::Int, P::Decimal) => Some(SqlType::decimal(10, 0)),
        (SqlType::Bigint, P::Decimal) => Some(SqlType::decimal(19, 0)),
        (SqlType::Int | SqlType::Bigint | SqlType::Decimal { .. }, P::Double) => {
            Some(SqlType::Double)
        }
        _ => None,
    }
}

struct Bindings(Vec<(char, SqlType)>);

impl Bindings {
    fn get(&self, c: char) -> Option<&SqlType> {
        self.0.iter().find(|(k, _)| *k == c).map(|(_, t)| t)
    }
}

/// Options that change matching for one function.
#[derive(Clone, Copy, Default)]
pub(crate) struct MatchOptions {
    /// Accept STRING where DATE/TIME/TIMESTAMP is declared, in the implicit-cast pass (ksqlDB
    /// coerces string literals to temporal values for functions such as GREATEST).
    pub string_to_temporal: bool,
}

/// Matches `arg` against `param`; returns the type the argument must be cast to.
fn accepts(
    arg: &SqlType,
    param: &P,
    bindings: &mut Bindings,
    allow_cast: bool,
    opts: MatchOptions,
) -> Option<SqlType> {
    if is_unknown(arg) {
        return Some(concretize(param, bindings));
    }
    match (param, arg) {
        (P::Any, _) => Some(arg.clone()),
        (P::Generic(c), _) => match bindings.get(*c).cloned() {
            None => {
                bindings.0.push((*c, arg.clone()));
                Some(arg.clone())
            }
            Some(bound) if &bound == arg => Some(bound),
            Some(bound) if is_unknown(&bound) => {
                for (k, t) in bindings.0.iter_mut() {
                    if k == c {
                        *t = arg.clone();
                    }
                }
                Some(arg.clone())
            }
            Some(bound) if allow_cast => {
                let target = sql_to_param(&bound)?;
                widens_to(arg, &target)
                    .filter(|w| w == &bound)
                    .map(|_| bound)
            }
            Some(_) => None,
        },
        (P::Array(pe), SqlType::Array(ae)) => {
            accepts(ae, pe, bindings, allow_cast, opts).map(|t| SqlType::Array(Box::new(t)))
        }
        (P::Map(pk, pv), SqlType::Map(ak, av)) => {
            let k = accepts(ak, pk, bindings, allow_cast, opts)?;
            let v = accepts(av, pv, bindings, allow_cast, opts)?;
            Some(SqlType::Map(Box::new(k), Box::new(v)))
        }
        (P::Bool, SqlType::Boolean)
        | (P::Int, SqlType::Int)
        | (P::Bigint, SqlType::Bigint)
        | (P::Double, SqlType::Double)
        | (P::Decimal, SqlType::Decimal { .. })
        | (P::String, SqlType::String)
        | (P::Bytes, SqlType::Bytes)
        | (P::Date, SqlType::Date)
        | (P::Time, SqlType::Time)
        | (P::Timestamp, SqlType::Timestamp) => Some(arg.clone()),
        (P::Date | P::Time | P::Timestamp, SqlType::String)
            if allow_cast && opts.string_to_temporal =>
        {
            Some(concretize(param, bindings))
        }
        _ if allow_cast => widens_to(arg, param),
        _ => None,
    }
}

fn sql_to_param(t: &SqlType) -> Option<P> {
    Some(match t {
        SqlType::Bigint => P::Bigint,
        SqlType::Decimal { .. } => P::Decimal,
        SqlType::Double => P::Double,
        _ => return None,
    })
}

/// The concrete type for a parameter that an unknown-typed argument is cast to.
fn concretize(param: &P, bindings: &Bindings) -> SqlType {
    match param {
        P::Bool => SqlType::Boolean,
        P::Int => SqlType::Int,
        P::Bigint => SqlType::Bigint,
        P::Double => SqlType::Double,
        P::Decimal => SqlType::Custom("DECIMAL".into()),
        P::String | P::Any => SqlType::String,
        P::Bytes => SqlType::Bytes,
        P::Date => SqlType::Date,
        P::Time => SqlType::Time,
        P::Timestamp => SqlType::Timestamp,
        P::Array(inner) => SqlType::Array(Box::new(concretize(inner, bindings))),
        P::Map(k, v) => SqlType::Map(
            Box::new(concretize(k, bindings)),
            Box::new(concretize(v, bindings)),
        ),
        P::Generic(c) => bindings
            .get(*c)
            .cloned()
            .unwrap_or_else(|| SqlType::Custom("GENERIC".into())),
    }
}

/// Replaces placeholders left for unknown-typed arguments: decimals take the widest decimal among
/// the other arguments, unbound generics fall back to STRING.
fn finish(t: SqlType, decimal: &SqlType) -> SqlType {
    match t {
        SqlType::Custom(name) if name == "DECIMAL" => decimal.clone(),
        SqlType::Custom(_) => SqlType::String,
        SqlType::Array(inner) => SqlType::Array(Box::new(finish(*inner, decimal))),
        SqlType::Map(k, v) => {
            SqlType::Map(Box::new(finish(*k, decimal)), Box::new(finish(*v, decimal)))
        }
        other => other,
    }
}

struct Candidate {
    rank: (u8, usize, i64),
    arg_types: Vec<SqlType>,
    sig: usize,
}

/// Formats argument types as ksqlDB does in its messages: `(INTEGER, DECIMAL(5, 1))`.
pub(crate) fn arg_list(args: &[SqlType]) -> String {
    let parts: Vec<String> = args
        .iter()
        .map(|t| {
            if is_unknown(t) {
                "null".to_string()
            } else {
                t.to_string()
            }
        })
        .collect();
    format!("({})", parts.join(", "))
}

fn alternatives(display: &str, sigs: &[Sig]) -> String {
    sigs.iter()
        .map(|s| {
            let n = s.params.len();
            let parts: Vec<String> = s
                .params
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    if s.variadic && i + 1 == n {
                        format!("{p}...")
                    } else {
                        p.to_string()
                    }
                })
                .collect();
            format!("{display}({})", parts.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The "no overload fits" message, in ksqlDB's words.
pub(crate) fn no_match(display: &str, args: &[SqlType], sigs: &[Sig]) -> String {
    format!(
        "Function '{display}' does not accept parameters {}.\nValid alternatives are:\n{}\n\
         For detailed information on a function run: DESCRIBE FUNCTION <Function-Name>;",
        arg_list(args),
        alternatives(display, sigs)
    )
}

/// Picks the overload of `sigs` for `args`.
pub(crate) fn resolve(
    display: &str,
    sigs: &[Sig],
    args: &[SqlType],
    opts: MatchOptions,
) -> Result<Resolved, String> {
    for allow_cast in [false, true] {
        let mut candidates = Vec::new();
        for (index, s) in sigs.iter().enumerate() {
            if let Some(c) = try_sig(s, index, args, allow_cast, opts) {
                candidates.push(c);
            }
        }
        if candidates.is_empty() {
            continue;
        }
        candidates.sort_by_key(|c| c.rank);
        let best = candidates.len() - 1;
        if best > 0 && candidates[best].rank == candidates[best - 1].rank {
            return Err(format!(
                "Function '{display}' cannot be resolved due to ambiguous method parameters {}.\n\
                 Use CAST() to explicitly cast your parameters to one of the supported function \
                 calls.\nValid function calls are:\n{}\n\
                 For detailed information on a function run: DESCRIBE FUNCTION <Function-Name>;",
                arg_list(args),
                alternatives(display, sigs)
            ));
        }
        let chosen = candidates.swap_remove(best);
        let s = &sigs[chosen.sig];
        let return_type = match &s.ret {
            Ret::Fixed(t) => t.clone(),
            Ret::Arg(i) => chosen.arg_types.get(*i).cloned().unwrap_or(SqlType::String),
            Ret::Elem(i) => match chosen.arg_types.get(*i) {
                Some(SqlType::Array(inner)) => (**inner).clone(),
                _ => SqlType::String,
            },
            Ret::Custom(f) => f(&chosen.arg_types)?,
        };
        return Ok(Resolved {
            arg_types: chosen.arg_types,
            return_type,
        });
    }
    Err(no_match(display, args, sigs))
}

fn try_sig(
    s: &Sig,
    index: usize,
    args: &[SqlType],
    allow_cast: bool,
    opts: MatchOptions,
) -> Option<Candidate> {
    let n = s.params.len();
    if s.variadic {
        if args.len() + 1 < n {
            return None;
        }
    } else if args.len() != n {
        return None;
    }
    let mut bindings = Bindings(Vec::new());
    let mut out = Vec::with_capacity(args.len());
    for (i, arg) in args.iter().enumerate() {
        let param = &s.params[i.min(n.saturating_sub(1))];
        out.push(accepts(arg, param, &mut bindings, allow_cast, opts)?);
    }
    // Unknown arguments seen before their generic was bound take the final binding.
    for (i, arg) in args.iter().enumerate() {
        if is_unknown(arg) {
            out[i] = concretize(&s.params[i.min(n.saturating_sub(1))], &bindings);
        }
    }
    // The widest decimal among the arguments stands in for NULL decimals.
    let decimal = out
        .iter()
        .filter(|t| matches!(t, SqlType::Decimal { .. }))
        .cloned()
        .reduce(|a, b| crate::cast::widen(&a, &b).unwrap_or(a))
        .unwrap_or(SqlType::decimal(38, 0));
    let arg_types = out.into_iter().map(|t| finish(t, &decimal)).collect();
    let generics: usize = s.params.iter().map(P::generic_count).sum();
    Some(Candidate {
        rank: (u8::from(!s.variadic), n, -(generics as i64)),
        arg_types,
        sig: index,
    })
}

/// Declares one built-in scalar function.
pub(crate) struct Udf {
    pub name: &'static str,
    /// The name as ksqlDB's messages print it (its `@UdfDescription` name).
    pub display: &'static str,
    pub description: &'static str,
    pub sigs: Vec<Sig>,
    pub opts: MatchOptions,
}

impl Udf {
    pub fn new(
        name: &'static str,
        display: &'static str,
        description: &'static str,
        sigs: Vec<Sig>,
    ) -> Self {
        Udf {
            name,
            display,
            description,
            sigs,
            opts: MatchOptions::default(),
        }
    }

    pub fn string_to_temporal(mut self) -> Self {
        self.opts.string_to_temporal = true;
        self
    }

    pub fn build(
        self,
        eval: impl Fn(&[Value], &CallInfo) -> Result<Value, String> + Send + Sync + 'static,
    ) -> ScalarFunction {
        let Udf {
            name,
            display,
            description,
            sigs,
            opts,
        } = self;
        ScalarFunction {
            name: name.to_string(),
            description: description.to_string(),
            resolve: Arc::new(move |args: &[SqlType]| resolve(display, &sigs, args, opts)),
            eval: Arc::new(eval),
        }
    }
}

/// Returns NULL when any argument is NULL, otherwise runs `f` (the common UDF contract).
pub(crate) fn strict(
    args: &[Value],
    f: impl FnOnce(&[Value]) -> Result<Value, String>,
) -> Result<Value, String> {
    if args.iter().any(Value::is_null) {
        Ok(Value::Null)
    } else {
        f(args)
    }
}

/// Message for an argument of an unexpected runtime kind (a planner/implementation mismatch).
pub(crate) fn bad_arg(function: &str, value: &Value) -> String {
    format!("{function}: unexpected argument {value:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greatest_sigs() -> Vec<Sig> {
        vec![
            var_r(vec![P::Int, P::Int], Ret::Arg(0)),
            var_r(vec![P::Bigint, P::Bigint], Ret::Arg(0)),
            var_r(vec![P::Double, P::Double], Ret::Arg(0)),
            var_r(vec![P::Decimal, P::Decimal], Ret::Arg(0)),
            var_r(vec![P::String, P::String], Ret::Arg(0)),
        ]
    }

    #[test]
    fn exact_match_wins() {
        let r = resolve(
            "greatest",
            &greatest_sigs(),
            &[SqlType::Int, SqlType::Int],
            MatchOptions::default(),
        )
        .unwrap();
        assert_eq!(r.arg_types, vec![SqlType::Int, SqlType::Int]);
    }

    #[test]
    fn widening_can_be_ambiguous_like_ksqldb() {
        let err = resolve(
            "greatest",
            &greatest_sigs(),
            &[SqlType::Int, SqlType::Bigint],
            MatchOptions::default(),
        )
        .unwrap_err();
        assert!(err.starts_with(
            "Function 'greatest' cannot be resolved due to ambiguous method parameters (INTEGER, BIGINT)."
        ));
        let r = resolve(
            "greatest",
            &greatest_sigs(),
            &[
                SqlType::Int,
                SqlType::Bigint,
                SqlType::decimal(30, 18),
                SqlType::Double,
            ],
            MatchOptions::default(),
        )
        .unwrap();
        assert_eq!(r.return_type, SqlType::Double);
    }

    #[test]
    fn no_match_message() {
        let err = resolve("greatest", &greatest_sigs(), &[], MatchOptions::default()).unwrap_err();
        assert!(
            err.starts_with("Function 'greatest' does not accept parameters ()."),
            "{err}"
        );
        let err = resolve(
            "greatest",
            &greatest_sigs(),
            &[SqlType::String, SqlType::Int],
            MatchOptions::default(),
        )
        .unwrap_err();
        assert!(
            err.starts_with("Function 'greatest' does not accept parameters (STRING, INTEGER).")
        );
    }

    #[test]
    fn unknown_arguments_fit_anything() {
        let null = SqlType::Custom("NULL".into());
        let r = resolve(
            "greatest",
            &greatest_sigs(),
            &[SqlType::Int, null.clone()],
            MatchOptions::default(),
        )
        .unwrap();
        assert_eq!(r.arg_types, vec![SqlType::Int, SqlType::Int]);
        let sigs = vec![sig_r(
            vec![P::array(P::Generic('T')), P::Generic('T')],
            Ret::Fixed(SqlType::Boolean),
        )];
        let r = resolve(
            "x",
            &sigs,
            &[SqlType::Array(Box::new(SqlType::Bigint)), null],
            MatchOptions::default(),
        )
        .unwrap();
        assert_eq!(r.arg_types[1], SqlType::Bigint);
    }
}

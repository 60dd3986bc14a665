//! The pull-query plan cache, keyed by statement *shape*.
//!
//! A key lookup (`SELECT * FROM t WHERE id = 'a'`) is usually sent many times with different
//! key values. Planning it (ksqlDB's checks, typing the filter and projection, finding the keys
//! the WHERE clause pins down) costs far more than the store `get` that answers it, so plans are
//! cached by the statement with its WHERE-clause comparison literals and its LIMIT replaced by
//! parameters, and each execution binds its own values into the cached plan.
//!
//! Soundness rests on three rules:
//! - Only literals that are direct operands of a comparison, an `IN` list or a `BETWEEN` in the
//!   WHERE clause become parameters, and only strings, integers and doubles: NULL, booleans and
//!   decimals (whose precision and scale come from their text) stay part of the shape, as do
//!   literals anywhere else (function arguments, the SELECT list).
//! - A parameter's kind is part of the shape: a STRING, an INT, a BIGINT (an integer that does
//!   not fit 32 bits) and a DOUBLE never share a plan, so `id = 1` and `id = 'a'` are planned
//!   separately.
//! - A cache miss plans the statement itself first, so every error is exactly the one the
//!   statement always had. The reusable template is then planned from the statement with
//!   distinctive sentinel values in place of the parameters; it is kept only if binding the
//!   statement's own values into it gives exactly the plan of the statement. When the planner
//!   rewrote a literal (a string read as a number, an `IN` item coerced to the column's type),
//!   that check fails and the shape is remembered as not parameterizable: its statements are
//!   then cached by their full text, as before.
//!
//! The cache is bounded (entries and key bytes, least recently used first out) and is cleared
//! whenever a statement may change the catalog.

use crate::pull::PullPlan;
use runnel_plan::expr::literal_value;
use runnel_plan::{TypedExpr, Value};
use runnel_sql::{Expr, Literal};
use std::collections::HashMap;
use std::sync::Arc;

/// Most cached entries (shapes, non-parameterizable shape markers and text-keyed plans).
pub const MAX_ENTRIES: usize = 512;
/// Most bytes of cache keys (statement shapes and texts) held at once.
pub const MAX_KEY_BYTES: usize = 2 * 1024 * 1024;

/// The LIMIT sentinel of a template.
const LIMIT_SENTINEL: u64 = u64::MAX - 0x5eed;

/// A statement split into its shape and its parameter values.
#[derive(Debug)]
pub struct Shape {
    /// The statement with sentinel values in place of its parameters.
    pub query: runnel_sql::Query,
    /// The typed sentinel value of each parameter, in statement order.
    pub sentinels: Vec<Value>,
    /// The statement's own typed value of each parameter, in the same order.
    pub values: Vec<Value>,
    /// The statement's LIMIT, when it has one (a parameter too).
    pub limit: Option<u64>,
}

impl Shape {
    /// Splits a pull query into its shape and parameter values.
    pub fn of(query: &runnel_sql::Query) -> Shape {
        let mut shape = Shape {
            query: query.clone(),
            sentinels: Vec::new(),
            values: Vec::new(),
            limit: query.limit,
        };
        if let Some(w) = shape.query.where_clause.take() {
            let mut w = w;
            parameterize_predicate(&mut w, &mut shape.sentinels, &mut shape.values);
            shape.query.where_clause = Some(w);
        }
        if shape.query.limit.is_some() {
            shape.query.limit = Some(LIMIT_SENTINEL);
        }
        shape
    }

    /// Whether the statement has anything to bind (else its shape is the statement itself).
    pub fn has_parameters(&self) -> bool {
        !self.sentinels.is_empty() || self.limit.is_some()
    }
}

/// The sentinel for parameter `slot` of a literal, with the literal's typed value; `None` for
/// literals that stay part of the shape.
fn sentinel(lit: &Literal, slot: usize) -> Option<(Literal, Value, Value)> {
    let s = match lit {
        Literal::String(_) => Literal::String(format!("\u{1}runnel-pull-parameter-{slot}\u{1}")),
        Literal::Integer(i) if i32::try_from(*i).is_ok() => {
            Literal::Integer(i32::MIN as i64 + 0x5eed + slot as i64)
        }
        Literal::Integer(_) => Literal::Integer(i64::MIN + 0x5eed + slot as i64),
        Literal::Double(_) => Literal::Double(-1.000_000_000_123_456_7e-300 * (slot as f64 + 1.0)),
        Literal::Null | Literal::Boolean(_) | Literal::Decimal(_) => return None,
    };
    let (sentinel_value, _) = literal_value(&s).ok()?;
    let (value, _) = literal_value(lit).ok()?;
    Some((s, sentinel_value, value))
}

/// Replaces a direct literal operand by its sentinel.
fn parameterize_operand(e: &mut Expr, sentinels: &mut Vec<Value>, values: &mut Vec<Value>) {
    if let Expr::Literal(lit) = e {
        if let Some((s, sv, v)) = sentinel(lit, sentinels.len()) {
            *lit = s;
            sentinels.push(sv);
            values.push(v);
        }
    }
}

/// Walks the boolean structure of a WHERE clause, parameterizing comparison operands.
fn parameterize_predicate(e: &mut Expr, sentinels: &mut Vec<Value>, values: &mut Vec<Value>) {
    match e {
        Expr::Binary { op, left, right } if op.is_comparison() => {
            parameterize_operand(left, sentinels, values);
            parameterize_operand(right, sentinels, values);
        }
        Expr::Binary {
            op: runnel_sql::BinaryOp::And | runnel_sql::BinaryOp::Or,
            left,
            right,
        } => {
            parameterize_predicate(left, sentinels, values);
            parameterize_predicate(right, sentinels, values);
        }
        Expr::Unary {
            op: runnel_sql::UnaryOp::Not,
            expr,
        } => parameterize_predicate(expr, sentinels, values),
        Expr::InList { list, .. } => {
            for item in list {
                parameterize_operand(item, sentinels, values);
            }
        }
        Expr::Between { low, high, .. } => {
            parameterize_operand(low, sentinels, values);
            parameterize_operand(high, sentinels, values);
        }
        _ => {}
    }
}

/// A copy of `e` with every sentinel literal replaced by its value; counts the replacements of
/// each parameter in `used`.
pub fn bind_expr(
    e: &TypedExpr,
    sentinels: &[Value],
    values: &[Value],
    used: &mut [usize],
) -> TypedExpr {
    let b = |e: &TypedExpr, used: &mut [usize]| Box::new(bind_expr(e, sentinels, values, used));
    let v = |items: &[TypedExpr], used: &mut [usize]| {
        items
            .iter()
            .map(|e| bind_expr(e, sentinels, values, used))
            .collect::<Vec<_>>()
    };
    match e {
        TypedExpr::Literal { value, ty } => match sentinels.iter().position(|s| s == value) {
            Some(i) => {
                used[i] += 1;
                TypedExpr::Literal {
                    value: values[i].clone(),
                    ty: ty.clone(),
                }
            }
            None => e.clone(),
        },
        TypedExpr::Column { .. } => e.clone(),
        TypedExpr::Negate { expr, ty } => TypedExpr::Negate {
            expr: b(expr, used),
            ty: ty.clone(),
        },
        TypedExpr::Not(x) => TypedExpr::Not(b(x, used)),
        TypedExpr::Arithmetic {
            op,
            left,
            right,
            ty,
        } => TypedExpr::Arithmetic {
            op: *op,
            left: b(left, used),
            right: b(right, used),
            ty: ty.clone(),
        },
        TypedExpr::Concat { left, right } => TypedExpr::Concat {
            left: b(left, used),
            right: b(right, used),
        },
        TypedExpr::Comparison { op, left, right } => TypedExpr::Comparison {
            op: *op,
            left: b(left, used),
            right: b(right, used),
        },
        TypedExpr::And(l, r) => TypedExpr::And(b(l, used), b(r, used)),
        TypedExpr::Or(l, r) => TypedExpr::Or(b(l, used), b(r, used)),
        TypedExpr::IsNull { expr, negated } => TypedExpr::IsNull {
            expr: b(expr, used),
            negated: *negated,
        },
        TypedExpr::IsDistinctFrom {
            left,
            right,
            negated,
        } => TypedExpr::IsDistinctFrom {
            left: b(left, used),
            right: b(right, used),
            negated: *negated,
        },
        TypedExpr::InList {
            expr,
            list,
            negated,
        } => TypedExpr::InList {
            expr: b(expr, used),
            list: v(list, used),
            negated: *negated,
        },
        TypedExpr::Like {
            expr,
            pattern,
            escape,
            negated,
        } => TypedExpr::Like {
            expr: b(expr, used),
            pattern: b(pattern, used),
            escape: *escape,
            negated: *negated,
        },
        TypedExpr::Case {
            whens,
            else_result,
            ty,
        } => TypedExpr::Case {
            whens: whens
                .iter()
                .map(|(c, r)| {
                    (
                        bind_expr(c, sentinels, values, used),
                        bind_expr(r, sentinels, values, used),
                    )
                })
                .collect(),
            else_result: else_result.as_ref().map(|e| b(e, used)),
            ty: ty.clone(),
        },
        TypedExpr::Cast { expr, to } => TypedExpr::Cast {
            expr: b(expr, used),
            to: to.clone(),
        },
        TypedExpr::Function {
            function,
            args,
            arg_types,
            ty,
        } => TypedExpr::Function {
            function: function.clone(),
            args: v(args, used),
            arg_types: arg_types.clone(),
            ty: ty.clone(),
        },
        TypedExpr::Subscript { base, index, ty } => TypedExpr::Subscript {
            base: b(base, used),
            index: b(index, used),
            ty: ty.clone(),
        },
        TypedExpr::Dereference { base, field, ty } => TypedExpr::Dereference {
            base: b(base, used),
            field: field.clone(),
            ty: ty.clone(),
        },
        TypedExpr::MakeArray { items, ty } => TypedExpr::MakeArray {
            items: v(items, used),
            ty: ty.clone(),
        },
        TypedExpr::MakeMap { entries, ty } => TypedExpr::MakeMap {
            entries: entries
                .iter()
                .map(|(k, x)| {
                    (
                        bind_expr(k, sentinels, values, used),
                        bind_expr(x, sentinels, values, used),
                    )
                })
                .collect(),
            ty: ty.clone(),
        },
        TypedExpr::MakeStruct { fields, ty } => TypedExpr::MakeStruct {
            fields: fields
                .iter()
                .map(|(n, x)| (n.clone(), bind_expr(x, sentinels, values, used)))
                .collect(),
            ty: ty.clone(),
        },
    }
}

/// A plan planned from a statement's shape, with the sentinels its parameters hold.
pub struct Template {
    pub plan: Arc<PullPlan>,
    pub sentinels: Vec<Value>,
}

/// A cache entry.
#[derive(Clone)]
pub enum Cached {
    /// A shape's template (keyed by shape).
    Shape(Arc<Template>),
    /// The shape's literals cannot be parameters: its statements are cached by text.
    TextOnly,
    /// The plan of one statement (keyed by text, for `TextOnly` shapes).
    Plan(Arc<PullPlan>),
}

/// The bounded, least-recently-used plan cache with its counters.
#[derive(Default)]
pub struct PlanCache {
    entries: HashMap<String, (Cached, u64)>,
    key_bytes: usize,
    tick: u64,
    /// Plans compiled for the cache (a miss compiles the statement and, for a new shape with
    /// parameters, its template).
    pub compiled: u64,
    /// Executions answered by a cached plan or template.
    pub hits: u64,
}

impl PlanCache {
    pub fn clear(&mut self) {
        self.entries.clear();
        self.key_bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn key_bytes(&self) -> usize {
        self.key_bytes
    }

    pub fn get(&mut self, key: &str) -> Option<Cached> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(c, t)| {
            *t = tick;
            c.clone()
        })
    }

    /// Inserts an entry, first evicting the least recently used entries down to three quarters
    /// of the bounds when it would exceed them. Keys too large to ever fit are not cached.
    pub fn insert(&mut self, key: String, value: Cached) {
        if key.len() > MAX_KEY_BYTES / 4 {
            return;
        }
        if let Some((_, _)) = self.entries.get(&key) {
            self.key_bytes -= key.len();
            self.entries.remove(&key);
        }
        if self.entries.len() + 1 > MAX_ENTRIES || self.key_bytes + key.len() > MAX_KEY_BYTES {
            let mut by_age: Vec<(u64, String)> = self
                .entries
                .iter()
                .map(|(k, (_, t))| (*t, k.clone()))
                .collect();
            by_age.sort_unstable();
            for (_, k) in by_age {
                if self.entries.len() < MAX_ENTRIES * 3 / 4
                    && self.key_bytes + key.len() <= MAX_KEY_BYTES * 3 / 4
                {
                    break;
                }
                self.entries.remove(&k);
                self.key_bytes -= k.len();
            }
        }
        self.tick += 1;
        self.key_bytes += key.len();
        self.entries.insert(key, (value, self.tick));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn where_of(sql: &str) -> runnel_sql::Query {
        match runnel_sql::parse_statements(sql)
            .unwrap()
            .remove(0)
            .statement
        {
            runnel_sql::Statement::Query(q) => *q,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shapes_keep_kinds_and_structure() {
        let a = Shape::of(&where_of("SELECT * FROM T WHERE ID = 'a' LIMIT 3;"));
        let b = Shape::of(&where_of("SELECT * FROM T WHERE ID = 'bb' LIMIT 7;"));
        assert_eq!(format!("{:?}", a.query), format!("{:?}", b.query));
        assert_eq!(a.values, vec![Value::String("a".into())]);
        assert_eq!(b.limit, Some(7));
        let int = Shape::of(&where_of("SELECT * FROM T WHERE ID = 1 LIMIT 3;"));
        let big = Shape::of(&where_of("SELECT * FROM T WHERE ID = 10000000000 LIMIT 3;"));
        let dbl = Shape::of(&where_of("SELECT * FROM T WHERE ID = 1E0 LIMIT 3;"));
        let shapes: Vec<String> = [&a, &int, &big, &dbl]
            .iter()
            .map(|s| format!("{:?}", s.query))
            .collect();
        for (i, x) in shapes.iter().enumerate() {
            for y in &shapes[i + 1..] {
                assert_ne!(x, y);
            }
        }
        // Literals outside comparison operands, booleans and decimals stay in the shape.
        let f1 = Shape::of(&where_of(
            "SELECT * FROM T WHERE ID = UCASE('a') OR B = true OR D = 1.5;",
        ));
        assert!(f1.sentinels.is_empty());
        let f2 = Shape::of(&where_of(
            "SELECT * FROM T WHERE ID = UCASE('b') OR B = true OR D = 1.5;",
        ));
        assert_ne!(format!("{:?}", f1.query), format!("{:?}", f2.query));
        // IN lists and BETWEEN bounds are parameters; the list length is part of the shape.
        let l = Shape::of(&where_of(
            "SELECT * FROM T WHERE ID IN (1, 2) AND N BETWEEN 3 AND 4;",
        ));
        assert_eq!(l.values.len(), 4);
        let l3 = Shape::of(&where_of(
            "SELECT * FROM T WHERE ID IN (1, 2, 5) AND N BETWEEN 3 AND 4;",
        ));
        assert_ne!(format!("{:?}", l.query), format!("{:?}", l3.query));
    }

    #[test]
    fn the_cache_is_bounded_least_recently_used_first() {
        let mut c = PlanCache::default();
        c.insert("keep".into(), Cached::TextOnly);
        for i in 0..10 * MAX_ENTRIES {
            c.insert(format!("statement {i}"), Cached::TextOnly);
            assert!(c.get("keep").is_some(), "a hot entry stays");
            assert!(c.len() <= MAX_ENTRIES);
        }
        assert!(c.get("statement 0").is_none());
        // Long keys are bounded by bytes too.
        let mut c = PlanCache::default();
        for i in 0..200 {
            c.insert(format!("{i} {}", "x".repeat(100_000)), Cached::TextOnly);
            assert!(c.key_bytes() <= MAX_KEY_BYTES);
        }
        assert!(c.len() < 25);
        c.insert("y".repeat(MAX_KEY_BYTES), Cached::TextOnly);
        assert!(c.key_bytes() <= MAX_KEY_BYTES);
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.key_bytes(), 0);
    }
}

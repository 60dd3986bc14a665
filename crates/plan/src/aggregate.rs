//! Logical plans of aggregations: `SELECT ... FROM stream [WINDOW ...] [WHERE ...] GROUP BY ...
//! [HAVING ...]`.
//!
//! The select list and HAVING are rewritten over the *aggregate row*: the group-by values, then
//! the aggregate results, then `WINDOWSTART` and `WINDOWEND` for windowed aggregations. Every
//! select expression must be built from group-by expressions, aggregates and window bounds.

use crate::aggregates::{AggSignature, AggregateFunction, AggregateRegistry};
use crate::catalog::{Catalog, Schema, Source, WindowType};
use crate::expr::{literal_value, Analyzer, Scope, TypedExpr};
use crate::functions::FunctionRegistry;
use crate::query::{
    derived_name, InputLayout, PlanOptions, Projection, SystemNames, WINDOWEND, WINDOWSTART,
};
use crate::PlanError;
use runnel_sql::{Emit, Expr, Query, SelectItem, SourceKind, SqlType, WindowKind};
use std::sync::Arc;

/// One aggregate call, e.g. `AVG(x)`.
#[derive(Debug, Clone)]
pub struct AggregateCall {
    pub function: AggregateFunction,
    /// Column arguments over the input row (constants are in `signature.constants`).
    pub args: Vec<TypedExpr>,
    pub signature: AggSignature,
    /// As written, for messages.
    pub text: String,
}

/// Window of a windowed aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowPlan {
    pub window_type: WindowType,
    /// Size (tumbling, hopping) or inactivity gap (session), in ms.
    pub size_ms: i64,
    /// Advance of hopping windows (= size for tumbling).
    pub advance_ms: i64,
    pub grace_ms: i64,
    pub retention_ms: i64,
}

#[derive(Debug, Clone)]
pub struct AggregatePlan {
    pub source: Arc<Source>,
    pub input: InputLayout,
    pub filter: Option<TypedExpr>,
    pub group_by: Vec<TypedExpr>,
    pub aggregates: Vec<AggregateCall>,
    pub window: Option<WindowPlan>,
    pub emit_final: bool,
    /// Over the aggregate row.
    pub having: Option<TypedExpr>,
    /// Over the aggregate row; key columns are the group-by expressions.
    pub projection: Vec<Projection>,
    pub limit: Option<u64>,
}

impl AggregatePlan {
    pub fn output_schema(&self) -> Schema {
        crate::query::projection_schema(&self.projection)
    }

    /// Types of the aggregate row: group values, aggregate results, window bounds.
    pub fn aggregate_row_types(&self) -> Vec<SqlType> {
        let mut t: Vec<SqlType> = self.group_by.iter().map(|g| g.ty()).collect();
        t.extend(
            self.aggregates
                .iter()
                .map(|a| a.signature.return_type.clone()),
        );
        if self.window.is_some() {
            t.push(SqlType::Bigint);
            t.push(SqlType::Bigint);
        }
        t
    }
}

/// Does the query aggregate (GROUP BY, WINDOW, or aggregate calls)?
pub fn is_aggregation(query: &Query, aggregates: &AggregateRegistry) -> bool {
    !query.group_by.is_empty() || query.window.is_some() || calls_aggregates(query, aggregates)
}

/// ksqlDB's check for a WINDOW that nothing aggregates (no GROUP BY, no aggregate calls).
pub fn check_window_needs_group_by(
    query: &Query,
    aggregates: &AggregateRegistry,
) -> Result<(), PlanError> {
    if query.window.is_some() && query.group_by.is_empty() && !calls_aggregates(query, aggregates) {
        return Err(PlanError::new("WINDOW clause requires a GROUP BY clause."));
    }
    Ok(())
}

/// Does the select list call aggregate functions?
fn calls_aggregates(query: &Query, aggregates: &AggregateRegistry) -> bool {
    query.select.iter().any(|item| match item {
        SelectItem::Expr { expr, .. } => contains_aggregate(expr, aggregates),
        _ => false,
    })
}

fn contains_aggregate(e: &Expr, aggregates: &AggregateRegistry) -> bool {
    if let Expr::Function { name, .. } = e {
        if aggregates.get(name).is_some() {
            return true;
        }
    }
    let mut found = false;
    let _ = e.try_map_children::<()>(&mut |c| {
        found |= contains_aggregate(c, aggregates);
        Ok(c.clone())
    });
    found
}

/// The name of the first aggregate function an expression calls, upper-cased.
fn first_aggregate(e: &Expr, aggregates: &AggregateRegistry) -> Option<String> {
    if let Expr::Function { name, .. } = e {
        if aggregates.get(name).is_some() {
            return Some(name.to_ascii_uppercase());
        }
    }
    let mut found = None;
    let _ = e.try_map_children::<()>(&mut |c| {
        if found.is_none() {
            found = first_aggregate(c, aggregates);
        }
        Ok(c.clone())
    });
    found
}

const GROUP_PREFIX: &str = "\u{1}G";
const AGG_PREFIX: &str = "\u{1}A";

struct Rewriter<'a> {
    groups: &'a [Expr],
    aggregates: &'a AggregateRegistry,
    functions: &'a FunctionRegistry,
    calls: Vec<Expr>,
    /// Columns used outside of aggregates and group-by expressions.
    stray: Vec<String>,
    /// How many stray column references were met (repeats included).
    stray_hits: usize,
    windowed: bool,
}

impl Rewriter<'_> {
    fn rewrite(&mut self, e: &Expr) -> Result<Expr, PlanError> {
        if let Some(i) = self.groups.iter().position(|g| g == e) {
            return Ok(Expr::column(format!("{GROUP_PREFIX}{i}")));
        }
        match e {
            Expr::Function { name, args, .. } if self.aggregates.get(name).is_some() => {
                if args.iter().any(|a| contains_aggregate(a, self.aggregates)) {
                    return Err(PlanError::new(format!(
                        "Aggregate functions can not be nested: {e}"
                    )));
                }
                let i = match self.calls.iter().position(|c| c == e) {
                    Some(i) => i,
                    None => {
                        self.calls.push(e.clone());
                        self.calls.len() - 1
                    }
                };
                Ok(Expr::column(format!("{AGG_PREFIX}{i}")))
            }
            Expr::Column { name, .. }
                if self.windowed && (name == WINDOWSTART || name == WINDOWEND) =>
            {
                // `TEST.WINDOWSTART` is the window bound too; the aggregate row has no qualifiers.
                Ok(Expr::column(name.clone()))
            }
            Expr::Function { name, .. }
                if self.functions.scalar(name).is_none() && self.aggregates.get(name).is_none() =>
            {
                Err(PlanError::new(format!(
                    "Can't find any functions with the name '{name}'"
                )))
            }
            Expr::Column { name, qualifier } => {
                let shown = match qualifier {
                    Some(q) => format!("{q}.{name}"),
                    None => name.clone(),
                };
                self.stray_hits += 1;
                if !self.stray.contains(&shown) {
                    self.stray.push(shown);
                }
                Ok(e.clone())
            }
            other => other.try_map_children(&mut |c| self.rewrite(c)),
        }
    }
}

/// HAVING compares by type strictly: unlike WHERE, ksqlDB does not read a string literal
/// compared with a number as that number there.
fn check_having_comparisons(e: &Expr, post: &Analyzer) -> Result<(), PlanError> {
    if let Expr::Binary { op, left, right } = e {
        let is_string = |e: &Expr| matches!(e, Expr::Literal(runnel_sql::Literal::String(_)));
        if op.is_comparison() && (is_string(left) != is_string(right)) {
            let (lt, rt) = (post.analyze(left)?.ty(), post.analyze(right)?.ty());
            if lt.is_numeric() || rt.is_numeric() {
                let name = match op {
                    runnel_sql::BinaryOp::Eq => "EQUAL",
                    runnel_sql::BinaryOp::NotEq => "NOT_EQUAL",
                    runnel_sql::BinaryOp::Lt => "LESS_THAN",
                    runnel_sql::BinaryOp::LtEq => "LESS_THAN_OR_EQUAL",
                    runnel_sql::BinaryOp::Gt => "GREATER_THAN",
                    _ => "GREATER_THAN_OR_EQUAL",
                };
                return Err(PlanError::new(format!(
                    "Cannot compare {left} ({lt}) to {right} ({rt}) with {name}."
                )));
            }
        }
    }
    let mut result = Ok(());
    let _ = e.try_map_children::<()>(&mut |c| {
        if result.is_ok() {
            result = check_having_comparisons(c, post);
        }
        Ok(c.clone())
    });
    result
}

/// The first window bound (`WINDOWSTART`, `WINDOWEND`) an expression refers to.
fn window_bound(e: &Expr) -> Option<String> {
    if let Expr::Column { name, .. } = e {
        if name == WINDOWSTART || name == WINDOWEND {
            return Some(name.clone());
        }
    }
    let mut found = None;
    let _ = e.try_map_children::<()>(&mut |c| {
        if found.is_none() {
            found = window_bound(c);
        }
        Ok(c.clone())
    });
    found
}

/// In a windowed aggregation the window bounds exist only in its result, so ksqlDB rejects them
/// in GROUP BY, HAVING and aggregate arguments.
fn check_window_bounds<'a>(exprs: impl IntoIterator<Item = &'a Expr>) -> Result<(), PlanError> {
    match exprs.into_iter().find_map(window_bound) {
        Some(name) => Err(PlanError::new(format!(
            "Window bounds column {name} can only be used in the SELECT clause of windowed aggregations"
        ))),
        None => Ok(()),
    }
}

/// The arguments of the aggregate calls inside an expression.
fn aggregate_args(e: &Expr, aggregates: &AggregateRegistry, out: &mut Vec<Expr>) {
    if let Expr::Function { name, args, .. } = e {
        if aggregates.get(name).is_some() {
            out.extend(args.iter().cloned());
            return;
        }
    }
    let _ = e.try_map_children::<()>(&mut |c| {
        aggregate_args(c, aggregates, out);
        Ok(c.clone())
    });
}

/// The window of an aggregation. Without `GRACE PERIOD`, `EMIT CHANGES` keeps Kafka Streams'
/// legacy default grace (24h minus the size) while `EMIT FINAL` closes windows at their end, as
/// ksqlDB does. The store keeps a window for `RETENTION`, by default its size plus grace (Kafka
/// Streams' default); a window older than that is gone even if it was never emitted.
fn window_plan(spec: &runnel_sql::WindowSpec, emit_final: bool) -> WindowPlan {
    let (window_type, size_ms, advance_ms) = match &spec.kind {
        WindowKind::Tumbling { size } => (WindowType::Tumbling, size.millis(), size.millis()),
        WindowKind::Hopping { size, advance } => {
            (WindowType::Hopping, size.millis(), advance.millis())
        }
        WindowKind::Session { gap } => (WindowType::Session, gap.millis(), 0),
    };
    // Kafka Streams' legacy default grace: 24h minus the window size, never negative.
    let grace_ms = spec.grace.as_ref().map(|g| g.millis()).unwrap_or_else(|| {
        if emit_final {
            0
        } else {
            (86_400_000 - size_ms).max(0)
        }
    });
    let retention_ms = spec
        .retention
        .as_ref()
        .map(|r| r.millis())
        .unwrap_or(0)
        .max(size_ms + grace_ms);
    WindowPlan {
        window_type,
        size_ms,
        advance_ms,
        grace_ms,
        retention_ms,
    }
}

/// The source columns `SELECT *` stands for, as column references.
fn star_columns(input: &InputLayout) -> Vec<Expr> {
    input
        .star_columns()
        .into_iter()
        .map(|i| Expr::column(input.fields[i].1.clone()))
        .collect()
}

/// An aggregate call as ksqlDB prints it in messages: `COUNT(*)` and `COUNT()` count `ROWTIME`.
fn call_text(call: &Expr) -> String {
    match call {
        Expr::Function { name, args, star } if *star || args.is_empty() => {
            format!("{}({})", name.to_ascii_uppercase(), crate::query::ROWTIME)
        }
        other => other.to_string(),
    }
}

/// A table source changes rows, so every aggregate must be able to take a row back out again
/// (`undo`), and windows make no sense over it; ksqlDB rejects both with these messages.
fn check_table_aggregation(windowed: bool, calls: &[AggregateCall]) -> Result<(), PlanError> {
    if windowed {
        return Err(PlanError::new(
            "Windowing not supported for table aggregations.",
        ));
    }
    let mut names: Vec<&str> = Vec::new();
    for c in calls.iter().filter(|c| c.function.undo.is_none()) {
        if !names.contains(&c.function.name.as_str()) {
            names.push(&c.function.name);
        }
    }
    let Some((last, rest)) = names.split_last() else {
        return Ok(());
    };
    let (plural, list) = if rest.is_empty() {
        ("", last.to_string())
    } else {
        ("s", format!("{} and {last}", rest.join(", ")))
    };
    Err(PlanError::new(format!(
        "The aggregation function{plural} {list} cannot be applied to a table source, only to a stream source."
    )))
}

pub fn plan_aggregate(
    query: &Query,
    catalog: &Catalog,
    functions: &FunctionRegistry,
    aggregates: &AggregateRegistry,
    sink_name: Option<&str>,
    _options: &PlanOptions,
) -> Result<AggregatePlan, PlanError> {
    if !query.from.joins.is_empty() {
        return Err(PlanError::unsupported("JOIN"));
    }
    if !query.partition_by.is_empty() {
        return Err(PlanError::unsupported("PARTITION BY with GROUP BY"));
    }
    let from = &query.from.source;
    let source = catalog
        .source(&from.name)
        .ok_or_else(|| PlanError::new(format!("{} does not exist.", from.name)))?
        .clone();
    if query.window.is_some() && source.window.is_some() {
        return Err(PlanError::unsupported(
            "windowed aggregations over windowed sources",
        ));
    }
    let input = InputLayout::for_source(&source, from.alias.as_deref());
    let analyzer = Analyzer {
        scope: &input.scope,
        functions,
        catalog,
    };
    if !query.group_by.is_empty() && source.value_format.format.eq_ignore_ascii_case("KAFKA") {
        return Err(PlanError::new(format!(
            "Source(s) {} are using the 'KAFKA' value format. This format does not yet support GROUP BY.",
            source.name
        )));
    }
    if query.window.is_some() {
        // WHERE runs on the input, where a windowed aggregation's bounds do not exist yet.
        if let Some(name) = query.where_clause.as_ref().and_then(window_bound) {
            return Err(PlanError::new(format!(
                "Error in WHERE expression: Unknown column {name}."
            )));
        }
        let mut args = Vec::new();
        for item in &query.select {
            if let SelectItem::Expr { expr, .. } = item {
                aggregate_args(expr, aggregates, &mut args);
            }
        }
        check_window_bounds(&args)?;
        check_window_bounds(&query.group_by)?;
        check_window_bounds(&query.having)?;
    }
    let filter = query
        .where_clause
        .as_ref()
        .map(|w| analyzer.analyze(w))
        .transpose()?;

    for g in &query.group_by {
        if let Some(name) = first_aggregate(g, aggregates) {
            return Err(PlanError::new(format!(
                "GROUP BY does not support aggregate functions: {name} is an aggregate function."
            )));
        }
    }
    let group_by = query
        .group_by
        .iter()
        .map(|g| analyzer.analyze(g))
        .collect::<Result<Vec<_>, _>>()?;
    // `DATA` and `TEST.DATA` are one expression.
    let resolved: Vec<String> = group_by.iter().map(|g| format!("{g:?}")).collect();
    for (i, g) in resolved.iter().enumerate() {
        if resolved[..i].contains(g) {
            return Err(PlanError::new(format!(
                "Duplicate GROUP BY expression: {}",
                query.group_by[i]
            )));
        }
    }

    let window = query
        .window
        .as_ref()
        .map(|w| window_plan(w, query.emit == Some(Emit::Final)));
    let mut rewriter = Rewriter {
        groups: &query.group_by,
        aggregates,
        functions,
        calls: vec![],
        stray: vec![],
        stray_hits: 0,
        windowed: window.is_some(),
    };

    // Select items, rewritten over the aggregate row. `*` stands for the source's columns, each
    // of which must then be grouped by, as in ksqlDB.
    let mut items: Vec<(Option<String>, Expr, Expr)> = Vec::new();
    // Select expressions that use columns outside of GROUP BY and aggregates, as ksqlDB lists
    // them.
    let mut stray_items: Vec<String> = Vec::new();
    let mut rewrite_item = |rewriter: &mut Rewriter, expr: &Expr| -> Result<Expr, PlanError> {
        let hits = rewriter.stray_hits;
        let rewritten = rewriter.rewrite(expr)?;
        if rewriter.stray_hits > hits && !stray_items.contains(&expr.to_string()) {
            stray_items.push(expr.to_string());
        }
        Ok(rewritten)
    };
    for item in &query.select {
        match item {
            SelectItem::Expr { expr, alias } => {
                let rewritten = rewrite_item(&mut rewriter, expr)?;
                items.push((alias.clone(), expr.clone(), rewritten))
            }
            SelectItem::Wildcard => {
                for expr in star_columns(&input) {
                    let rewritten = rewrite_item(&mut rewriter, &expr)?;
                    items.push((None, expr, rewritten));
                }
            }
            SelectItem::QualifiedWildcard(q) => {
                if q != &source.name && Some(q.as_str()) != from.alias.as_deref() {
                    return Err(PlanError::new(format!(
                        "'{q}' is not a valid stream/table name or alias."
                    )));
                }
                for expr in star_columns(&input) {
                    let rewritten = rewrite_item(&mut rewriter, &expr)?;
                    items.push((None, expr, rewritten));
                }
            }
            SelectItem::StructWildcard(_) => {
                return Err(PlanError::unsupported("expr->* with GROUP BY"))
            }
        }
    }
    let having = query
        .having
        .as_ref()
        .map(|h| rewriter.rewrite(h))
        .transpose()?;
    if rewriter.calls.is_empty() {
        return Err(PlanError::new(
            "GROUP BY requires aggregate functions in either the SELECT or HAVING clause.",
        ));
    }
    if !stray_items.is_empty() {
        return Err(PlanError::new(format!(
            "Non-aggregate SELECT expression(s) not part of GROUP BY: {}\n\
             Either add the column(s) to the GROUP BY or remove them from the SELECT.",
            stray_items.join(", ")
        )));
    }
    if !rewriter.stray.is_empty() {
        // Only HAVING is left to have used them.
        return Err(PlanError::new(format!(
            "Non-aggregate HAVING expression not part of GROUP BY: {}",
            rewriter.stray.join(", ")
        )));
    }
    if sink_name.is_some() && source.kind == SourceKind::Table && source.window.is_some() {
        return Err(PlanError::new(
            "KSQL does not support persistent queries on windowed tables.",
        ));
    }

    // Aggregate calls, with arguments over the input row.
    let mut calls = Vec::new();
    for call in &rewriter.calls {
        let Expr::Function { name, args, star } = call else {
            continue;
        };
        let function = aggregates
            .get(name)
            .cloned()
            .ok_or_else(|| PlanError::new(format!("Unknown aggregate {name}")))?;
        let mut typed_args = Vec::new();
        let mut types = Vec::new();
        let mut constants = Vec::new();
        if !star {
            for a in args {
                let t = analyzer.analyze(a)?;
                types.push(t.ty());
                constants.push(match a {
                    Expr::Literal(l) => Some(literal_value(l)?.0),
                    Expr::Unary {
                        op: runnel_sql::UnaryOp::Minus,
                        expr,
                    } => match expr.as_ref() {
                        Expr::Literal(l) => crate::eval::negate(&literal_value(l)?.0),
                        _ => None,
                    },
                    _ => None,
                });
                typed_args.push(t);
            }
        }
        let arg_texts: Vec<String> = if *star {
            vec![]
        } else {
            args.iter().map(|a| a.to_string()).collect()
        };
        let signature = (function.resolve)(&types, &constants)
            .map_err(|e| PlanError::new(crate::aggregates::fill_argument_text(&e, &arg_texts)))?;
        // Column arguments come first; trailing constants (TOPK's k, ...) live in the signature.
        let args = typed_args
            .into_iter()
            .take(signature.arg_types.len())
            .enumerate()
            .map(|(i, a)| match signature.arg_types.get(i) {
                Some(t) if *t != a.ty() => TypedExpr::Cast {
                    expr: Box::new(a),
                    to: t.clone(),
                },
                _ => a,
            })
            .collect();
        calls.push(AggregateCall {
            function,
            args,
            signature,
            text: call.to_string(),
        });
    }

    // The aggregate row's scope.
    let mut scope = Scope::default();
    for (i, g) in group_by.iter().enumerate() {
        scope.push(vec![], format!("{GROUP_PREFIX}{i}"), g.ty());
    }
    for (i, c) in calls.iter().enumerate() {
        scope.push(
            vec![],
            format!("{AGG_PREFIX}{i}"),
            c.signature.return_type.clone(),
        );
    }
    if window.is_some() {
        scope.push(vec![], WINDOWSTART, SqlType::Bigint);
        scope.push(vec![], WINDOWEND, SqlType::Bigint);
    }
    let post = Analyzer {
        scope: &scope,
        functions,
        catalog,
    };
    // Messages name the aggregate row's columns by the expressions they stand for.
    let original = |message: &str| {
        let mut out = message.to_string();
        // Printed quoted (they are not plain identifiers) or bare.
        for (i, c) in rewriter.calls.iter().enumerate().rev() {
            let column = format!("{AGG_PREFIX}{i}");
            out = out.replace(&format!("`{column}`"), &c.to_string());
            out = out.replace(&column, &c.to_string());
        }
        for (i, g) in query.group_by.iter().enumerate().rev() {
            let column = format!("{GROUP_PREFIX}{i}");
            out = out.replace(&format!("`{column}`"), &g.to_string());
            out = out.replace(&column, &g.to_string());
        }
        out
    };
    let having = having
        .map(|h| {
            check_having_comparisons(&h, &post)?;
            post.analyze(&h)
        })
        .transpose()
        .map_err(|e| {
            PlanError::new(original(&e.message)).prefixed("Error in HAVING expression: ")
        })?;

    // Names and keys.
    let mut names = SystemNames::new(
        items
            .iter()
            .filter_map(|(a, e, _)| a.clone().or_else(|| derived_name(e)))
            .chain(input.fields.iter().map(|(_, n, _)| n.clone()))
            .collect(),
    );
    let mut projection: Vec<Projection> = Vec::new();
    // The projection position that holds each GROUP BY expression (the key column).
    let mut key_found: Vec<Option<usize>> = vec![None; group_by.len()];
    for (alias, original, rewritten) in &items {
        let name = alias
            .clone()
            .or_else(|| derived_name(original))
            .unwrap_or_else(|| names.next());
        let group = query.group_by.iter().position(|g| g == original);
        let is_key = match group {
            Some(i) => match key_found[i] {
                None => {
                    key_found[i] = Some(projection.len());
                    true
                }
                Some(first) if sink_name.is_some() => {
                    return Err(PlanError::new(format!(
                        "The projection contains a key column more than once: `{}` and `{name}`.",
                        projection[first].name
                    )));
                }
                Some(_) => false,
            },
            None => false,
        };
        let expr = post.analyze(rewritten)?;
        if let Some(clash) = projection.iter().find(|p| p.name == name) {
            // ksqlDB builds the result schema key columns first, then value columns, so a
            // clash is reported for the value column.
            let (kind, ty) = match (clash.is_key, is_key) {
                (true, true) => ("key", expr.ty()),
                (false, true) => ("value", clash.expr.ty()),
                (_, false) => ("value", expr.ty()),
            };
            return Err(PlanError::new(format!(
                "Duplicate {kind} columns found in schema: `{name}` {ty}"
            )));
        }
        projection.push(Projection { name, expr, is_key });
    }
    // Without GROUP BY everything falls into one group (ksqlDB groups by a constant), which a
    // push query can show but a table cannot key.
    if query.group_by.is_empty() && sink_name.is_some() {
        let list: Vec<String> = rewriter.calls.iter().map(call_text).collect();
        return Err(PlanError::new(format!(
            "CREATE TABLE AS SELECT statement does not support aggregate function [{}] without a GROUP BY clause.",
            list.join(", ")
        )));
    }
    // A push query's rows need not show the grouping expressions; a table's key does.
    let missing: Vec<String> = key_found
        .iter()
        .zip(&query.group_by)
        .filter(|(found, _)| found.is_none() && sink_name.is_some())
        .map(|(_, g)| g.to_string())
        .collect();
    if let Some((last, rest)) = missing.split_last() {
        let sink = sink_name.unwrap_or("OUTPUT");
        let (what, list) = if rest.is_empty() {
            ("grouping expression", last.clone())
        } else {
            (
                "grouping expressions",
                format!("{} and {last}", rest.join(", ")),
            )
        };
        return Err(PlanError::new(format!(
            "The query used to build `{sink}` must include the {what} {list} in its projection (eg, SELECT {}...).",
            missing.join(", ")
        )));
    }
    // Keys keep GROUP BY order.
    let mut keys: Vec<Projection> = Vec::new();
    for g in &query.group_by {
        if let Some(p) = items
            .iter()
            .zip(projection.iter())
            .find(|((_, o, _), p)| o == g && p.is_key)
            .map(|(_, p)| p.clone())
        {
            keys.push(p);
        }
    }
    let mut k = keys.into_iter();
    for p in projection.iter_mut() {
        if p.is_key {
            if let Some(next) = k.next() {
                *p = next;
            }
        }
    }
    if sink_name.is_some() && !projection.iter().any(|p| !p.is_key) {
        return Err(PlanError::new("The projection contains no value columns."));
    }
    let emit_final = query.emit == Some(Emit::Final);
    if emit_final && window.is_none() {
        return Err(PlanError::new(
            "EMIT FINAL is only supported for windowed aggregations.",
        ));
    }
    if source.kind == SourceKind::Table {
        check_table_aggregation(window.is_some(), &calls)?;
    }
    // The aggregation state is stored in the source's value format, which must be able to hold
    // each aggregate's intermediate value (DELIMITED has no structs, arrays or maps).
    let primitive =
        |t: &SqlType| !matches!(t, SqlType::Array(_) | SqlType::Map(..) | SqlType::Struct(_));
    if source.value_format.format.eq_ignore_ascii_case("DELIMITED")
        && calls.iter().any(|c| !primitive(&c.signature.state_type))
    {
        return Err(PlanError::new(
            "One of the functions used in the statement has an intermediate type that the value \
             format can not handle. Please remove the function or change the format.",
        ));
    }
    Ok(AggregatePlan {
        source,
        input,
        filter,
        group_by,
        aggregates: calls,
        window,
        emit_final,
        having,
        projection,
        limit: query.limit,
    })
}

#[cfg(test)]
mod table_and_star_tests {
    use super::*;
    use crate::ddl::{source_from_create, FormatDefaults};
    use runnel_sql::{parse_statements, Statement};

    const DDL: &str = "CREATE TABLE T (ID INT PRIMARY KEY, F0 INT, F1 BIGINT) \
                       WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON');\n\
                       CREATE STREAM S (ID INT KEY, ID2 INT) WITH (KAFKA_TOPIC='s', FORMAT='JSON');\n";

    /// Plans the last statement of `DDL` + `sql`, a CREATE TABLE AS SELECT or a push query.
    fn plan(sql: &str) -> Result<AggregatePlan, String> {
        let mut catalog = Catalog::default();
        let mut result = None;
        for st in parse_statements(&format!("{DDL}{sql}")).map_err(|e| e.to_string())? {
            let (query, sink) = match st.statement {
                Statement::CreateSource(c) => {
                    let source =
                        source_from_create(&c, &st.text, &catalog, &FormatDefaults::default())
                            .map_err(|e| e.to_string())?;
                    catalog.put_source(source);
                    continue;
                }
                Statement::CreateAsSelect(c) => (*c.query, Some(c.name)),
                Statement::Query(q) => (*q, None),
                other => return Err(format!("unexpected {other:?}")),
            };
            result = Some(
                plan_aggregate(
                    &query,
                    &catalog,
                    &FunctionRegistry::builtin(),
                    &AggregateRegistry::builtin(),
                    sink.as_deref(),
                    &PlanOptions::default(),
                )
                .map_err(|e| e.to_string()),
            );
        }
        result.ok_or("no query")?
    }

    #[test]
    fn aggregates_without_undo_are_rejected_for_tables() {
        assert_eq!(
            plan("CREATE TABLE O AS SELECT ID, LATEST_BY_OFFSET(F0), MIN(F1), MAX(F1), MIN(F0) FROM T GROUP BY ID;")
                .unwrap_err(),
            "The aggregation functions LATEST_BY_OFFSET, MIN and MAX cannot be applied to a table \
             source, only to a stream source."
        );
        assert_eq!(
            plan("CREATE TABLE O AS SELECT F0, COUNT(*), MAX(F1) FROM T GROUP BY F0;").unwrap_err(),
            "The aggregation function MAX cannot be applied to a table source, only to a stream \
             source."
        );
        let ok =
            plan("CREATE TABLE O AS SELECT F0, COUNT(*), SUM(F1), AVG(F1) FROM T GROUP BY F0;")
                .expect("undoable aggregates plan over a table");
        assert_eq!(ok.source.kind, SourceKind::Table);
    }

    #[test]
    fn tables_cannot_be_aggregated_in_windows() {
        assert_eq!(
            plan("CREATE TABLE O AS SELECT F0, COUNT(*) FROM T WINDOW TUMBLING (SIZE 1 SECOND) GROUP BY F0;")
                .unwrap_err(),
            "Windowing not supported for table aggregations."
        );
    }

    #[test]
    fn without_group_by_a_table_cannot_be_keyed_but_a_push_query_has_one_group() {
        assert_eq!(
            plan("CREATE TABLE O AS SELECT COUNT(*), SUM(ID2) FROM S;").unwrap_err(),
            "CREATE TABLE AS SELECT statement does not support aggregate function \
             [COUNT(ROWTIME), SUM(ID2)] without a GROUP BY clause."
        );
        assert!(plan("CREATE TABLE O AS SELECT ID2, COUNT() FROM S;")
            .unwrap_err()
            .starts_with("Non-aggregate SELECT expression(s) not part of GROUP BY: ID2"));
        let push = plan("SELECT COUNT(*) AS N FROM S EMIT CHANGES;").expect("push query plans");
        assert!(push.group_by.is_empty());
        assert_eq!(push.projection.len(), 1);
    }

    #[test]
    fn stray_columns_are_reported_by_the_select_expression_that_uses_them() {
        assert_eq!(
            plan("CREATE TABLE O AS SELECT F0 * SUM(F1), F0 + 1 AS X, F0 FROM T GROUP BY ID;")
                .unwrap_err(),
            "Non-aggregate SELECT expression(s) not part of GROUP BY: (F0 * SUM(F1)), (F0 + 1), F0\n\
             Either add the column(s) to the GROUP BY or remove them from the SELECT."
        );
        assert_eq!(
            plan("CREATE TABLE O AS SELECT ID, COUNT(*) FROM T GROUP BY ID HAVING F0 > 1;")
                .unwrap_err(),
            "Non-aggregate HAVING expression not part of GROUP BY: F0"
        );
        assert_eq!(
            plan("CREATE TABLE O AS SELECT F0 FROM T GROUP BY ID;").unwrap_err(),
            "GROUP BY requires aggregate functions in either the SELECT or HAVING clause."
        );
    }

    #[test]
    fn group_by_errors_are_worded_as_ksqldb_words_them() {
        assert_eq!(
            plan("CREATE TABLE O AS SELECT ID2, ID2 AS X, COUNT(*) FROM S GROUP BY ID2;")
                .unwrap_err(),
            "The projection contains a key column more than once: `ID2` and `X`."
        );
        assert_eq!(
            plan("CREATE TABLE O AS SELECT COUNT(*) FROM S GROUP BY ID, ID2;").unwrap_err(),
            "The query used to build `O` must include the grouping expressions ID and ID2 in \
             its projection (eg, SELECT ID, ID2...)."
        );
        assert_eq!(
            plan("CREATE TABLE O AS SELECT COUNT(*) FROM S GROUP BY ID2, S.ID2;").unwrap_err(),
            "Duplicate GROUP BY expression: S.ID2"
        );
        assert_eq!(
            plan("CREATE TABLE O AS SELECT COUNT(*) FROM S GROUP BY 1 + ABS(SUM(ID));")
                .unwrap_err(),
            "GROUP BY does not support aggregate functions: SUM is an aggregate function."
        );
        assert_eq!(
            plan("CREATE TABLE O AS SELECT ID2 AS N, COUNT(*) AS N FROM S GROUP BY ID2;")
                .unwrap_err(),
            "Duplicate value columns found in schema: `N` BIGINT"
        );
        assert_eq!(
            plan("CREATE TABLE O AS SELECT ID2, SUM(ID) FROM S GROUP BY ID2 HAVING SUM(ID) > '1';")
                .unwrap_err(),
            "Error in HAVING expression: Cannot compare SUM(ID) (INTEGER) to '1' (STRING) with \
             GREATER_THAN."
        );
    }

    #[test]
    fn window_bounds_belong_to_the_select_of_a_windowed_aggregation() {
        const W: &str = "FROM S WINDOW TUMBLING (SIZE 1 SECOND)";
        let bound = "Window bounds column WINDOWSTART can only be used in the SELECT clause of \
                     windowed aggregations";
        for tail in [
            "GROUP BY ID2 HAVING WINDOWSTART > 1;",
            "GROUP BY ID2, WINDOWSTART;",
        ] {
            let sql = format!("CREATE TABLE O AS SELECT ID2, COUNT(*) {W} {tail}");
            assert_eq!(plan(&sql).unwrap_err(), bound, "{sql}");
        }
        let sql = format!("CREATE TABLE O AS SELECT ID2, MIN(WINDOWSTART) {W} GROUP BY ID2;");
        assert_eq!(plan(&sql).unwrap_err(), bound);
        let sql =
            format!("CREATE TABLE O AS SELECT ID2, COUNT(*) {W} WHERE WINDOWEND > 1 GROUP BY ID2;");
        assert_eq!(
            plan(&sql).unwrap_err(),
            "Error in WHERE expression: Unknown column WINDOWEND."
        );
        // Qualified bounds are the bounds too.
        let sql = format!(
            "CREATE TABLE O AS SELECT ID2, S.WINDOWSTART / 2 AS H, COUNT(*) {W} GROUP BY ID2;"
        );
        assert!(plan(&sql).is_ok());
    }

    #[test]
    fn select_star_stands_for_the_source_columns() {
        let p =
            plan("CREATE TABLE O AS SELECT *, COUNT() FROM S GROUP BY ID, ID2;").expect("plans");
        let names: Vec<(&str, bool)> = p
            .projection
            .iter()
            .map(|c| (c.name.as_str(), c.is_key))
            .collect();
        assert_eq!(
            names,
            vec![("ID", true), ("ID2", true), ("KSQL_COL_0", false)]
        );
        assert!(
            plan("CREATE TABLE O AS SELECT *, COUNT() FROM S GROUP BY ID;")
                .unwrap_err()
                .starts_with("Non-aggregate SELECT expression(s) not part of GROUP BY: ID2")
        );
    }
}

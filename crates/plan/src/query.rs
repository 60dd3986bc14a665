//! Logical plans of SELECT statements.
//!
//! A query reads one source. Its input row is laid out as the pseudo-columns (`ROWTIME`,
//! `ROWPARTITION`, `ROWOFFSET`, and `WINDOWSTART`/`WINDOWEND` for windowed sources), then the key,
//! value and header columns of the source. The filter and the projection are typed expressions
//! over that row. The output columns are split into key and value columns by ksqlDB's key rules.

use crate::catalog::{Catalog, Column, ColumnKind, Schema, Source};
use crate::expr::{Analyzer, Scope, TypedExpr};
use crate::functions::FunctionRegistry;
use crate::PlanError;
use runnel_sql::{Emit, Expr, Query, SelectItem, SqlType};
use std::sync::Arc;

pub const ROWTIME: &str = "ROWTIME";
pub const ROWPARTITION: &str = "ROWPARTITION";
pub const ROWOFFSET: &str = "ROWOFFSET";
pub const WINDOWSTART: &str = "WINDOWSTART";
pub const WINDOWEND: &str = "WINDOWEND";

/// Names that cannot be used for user columns.
pub const RESERVED_COLUMNS: [&str; 5] = [ROWTIME, ROWPARTITION, ROWOFFSET, WINDOWSTART, WINDOWEND];

/// Where each field of a query's input row comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum InputField {
    RowTime,
    RowPartition,
    RowOffset,
    WindowStart,
    WindowEnd,
    /// The i-th key column of the source.
    Key(usize),
    /// The i-th value column of the source.
    Value(usize),
    /// The i-th header column of the source (`HEADERS` or `HEADER('k')`).
    Header(usize),
}

/// The input row layout of a query over `source`.
#[derive(Debug, Clone)]
pub struct InputLayout {
    pub fields: Vec<(InputField, String, SqlType)>,
    pub scope: Scope,
}

impl InputLayout {
    pub fn for_source(source: &Source, alias: Option<&str>) -> InputLayout {
        let mut qualifiers = vec![source.name.clone()];
        if let Some(a) = alias {
            qualifiers.push(a.to_string());
        }
        let mut fields = vec![
            (InputField::RowTime, ROWTIME.to_string(), SqlType::Bigint),
            (
                InputField::RowPartition,
                ROWPARTITION.to_string(),
                SqlType::Int,
            ),
            (
                InputField::RowOffset,
                ROWOFFSET.to_string(),
                SqlType::Bigint,
            ),
        ];
        if source.window.is_some() {
            fields.push((
                InputField::WindowStart,
                WINDOWSTART.to_string(),
                SqlType::Bigint,
            ));
            fields.push((
                InputField::WindowEnd,
                WINDOWEND.to_string(),
                SqlType::Bigint,
            ));
        }
        for (i, c) in source.schema.key_columns().enumerate() {
            fields.push((InputField::Key(i), c.name.clone(), c.ty.clone()));
        }
        for (i, c) in source.schema.value_columns().enumerate() {
            fields.push((InputField::Value(i), c.name.clone(), c.ty.clone()));
        }
        for (i, c) in source.schema.header_columns().enumerate() {
            fields.push((InputField::Header(i), c.name.clone(), c.ty.clone()));
        }
        let mut scope = Scope::default();
        for (_, name, ty) in &fields {
            scope.push(qualifiers.clone(), name.clone(), ty.clone());
        }
        InputLayout { fields, scope }
    }

    /// Positions of the non-pseudo columns, in `SELECT *` order.
    pub fn star_columns(&self) -> Vec<usize> {
        // Key columns, then the window bounds (as ksqlDB lists a windowed source's columns),
        // then value and header columns.
        let mut keys = vec![];
        let mut window = vec![];
        let mut others = vec![];
        for (i, (f, _, _)) in self.fields.iter().enumerate() {
            match f {
                InputField::Key(_) => keys.push(i),
                InputField::WindowStart | InputField::WindowEnd => window.push(i),
                InputField::Value(_) | InputField::Header(_) => others.push(i),
                _ => {}
            }
        }
        keys.extend(window);
        keys.extend(others);
        keys
    }
}

/// `SELECT *` of a query: a windowed source's bounds are columns of a push query's rows, while a
/// persistent query keeps them in the windowed key of its sink, as ksqlDB does.
fn star_columns(input: &InputLayout, target: PlanTarget) -> Vec<usize> {
    input
        .star_columns()
        .into_iter()
        .filter(|&i| {
            target != PlanTarget::Sink
                || !matches!(
                    input.fields[i].0,
                    InputField::WindowStart | InputField::WindowEnd
                )
        })
        .collect()
}

/// One output column of a projection.
#[derive(Debug, Clone)]
pub struct Projection {
    pub name: String,
    pub expr: TypedExpr,
    /// Whether the column goes to the record key (sinks only).
    pub is_key: bool,
}

/// The schema of a projection's result: key columns first, as ksqlDB orders them.
pub fn projection_schema(projection: &[Projection]) -> Schema {
    let keys = projection.iter().filter(|p| p.is_key);
    let values = projection.iter().filter(|p| !p.is_key);
    Schema {
        columns: keys
            .chain(values)
            .map(|p| {
                let kind = if p.is_key {
                    ColumnKind::Key
                } else {
                    ColumnKind::Value
                };
                Column::new(p.name.clone(), p.expr.ty(), kind)
            })
            .collect(),
    }
}

/// The plan of a stateless SELECT over one source.
#[derive(Debug, Clone)]
pub struct SelectPlan {
    pub source: Arc<Source>,
    pub input: InputLayout,
    pub filter: Option<TypedExpr>,
    pub projection: Vec<Projection>,
    pub emit: Option<Emit>,
    pub limit: Option<u64>,
}

impl SelectPlan {
    /// The schema of the result as a source.
    pub fn output_schema(&self) -> Schema {
        projection_schema(&self.projection)
    }

    /// The column list of the result rows of a transient query, in projection order.
    pub fn result_columns(&self) -> Vec<(String, SqlType)> {
        self.projection
            .iter()
            .map(|p| (p.name.clone(), p.expr.ty()))
            .collect()
    }
}

/// Whether a SELECT is planned for a persistent sink (CSAS / INSERT INTO) or for a transient
/// (push or pull) query, whose rows are returned to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanTarget {
    Sink,
    Transient,
}

/// Names the clause in "column cannot be resolved" errors, as ksqlDB does.
fn clause_error(e: PlanError, clause: &str) -> PlanError {
    if e.message.starts_with("Column '") && e.message.ends_with("cannot be resolved.") {
        PlanError {
            message: format!("{clause} column{}", &e.message["Column".len()..]),
            ..e
        }
    } else if clause == "WHERE" {
        e.prefixed("Error in WHERE expression: ")
    } else {
        e
    }
}

/// Hands out ksqlDB's system column names (`KSQL_COL_0`, `KSQL_COL_1`, ...) for unnamed
/// projection expressions, skipping every name already taken by an alias, a derived name or a
/// source column.
pub(crate) struct SystemNames {
    used: Vec<String>,
    counter: usize,
}

impl SystemNames {
    pub(crate) fn new(used: Vec<String>) -> Self {
        SystemNames { used, counter: 0 }
    }

    pub(crate) fn next(&mut self) -> String {
        loop {
            let candidate = format!("KSQL_COL_{}", self.counter);
            self.counter += 1;
            if !self.used.contains(&candidate) {
                self.used.push(candidate.clone());
                return candidate;
            }
        }
    }
}

/// The name ksqlDB derives for an unaliased projection expression, if any.
pub(crate) fn derived_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Column { name, .. } => Some(name.clone()),
        Expr::Dereference { field, .. } => Some(field.clone()),
        _ => None,
    }
}

/// Settings that change planning.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `ksql.new.query.planner.enabled`: key columns keep projection order and may be left out
    /// (the result is then keyless).
    pub new_planner: bool,
}

pub fn plan_select(
    query: &Query,
    catalog: &Catalog,
    functions: &FunctionRegistry,
    target: PlanTarget,
    sink_name: Option<&str>,
    options: &PlanOptions,
) -> Result<SelectPlan, PlanError> {
    if !query.from.joins.is_empty() {
        return Err(PlanError::unsupported("JOIN"));
    }
    if query.window.is_some() {
        return Err(PlanError::unsupported("WINDOW"));
    }
    if !query.group_by.is_empty() || query.having.is_some() {
        return Err(PlanError::unsupported("GROUP BY"));
    }
    if !query.partition_by.is_empty() {
        return Err(PlanError::unsupported("PARTITION BY"));
    }
    let from = &query.from.source;
    let source = catalog
        .source(&from.name)
        .ok_or_else(|| PlanError::new(format!("{} does not exist.", from.name)))?
        .clone();
    if query.emit == Some(Emit::Final) {
        return Err(PlanError::new(
            "EMIT FINAL is only supported for windowed aggregations.",
        ));
    }
    if target == PlanTarget::Sink
        && source.kind == runnel_sql::SourceKind::Table
        && source.window.is_some()
    {
        return Err(PlanError::new(
            "KSQL does not support persistent queries on windowed tables.",
        ));
    }
    let input = InputLayout::for_source(&source, from.alias.as_deref());
    let analyzer = Analyzer {
        scope: &input.scope,
        functions,
        catalog,
    };

    let filter = match &query.where_clause {
        Some(w) => {
            let e = analyzer.analyze(w).map_err(|e| clause_error(e, "WHERE"))?;
            if e.ty() != SqlType::Boolean {
                return Err(PlanError::new(format!(
                    "Type error in WHERE expression: Should evaluate to boolean but is {w} ({}) instead.",
                    e.ty()
                )));
            }
            Some(e)
        }
        None => None,
    };

    // Expand the select list.
    let mut items: Vec<(Option<String>, TypedExpr, Option<Expr>)> = Vec::new();
    for item in &query.select {
        match item {
            SelectItem::Wildcard => {
                for i in star_columns(&input, target) {
                    let (_, name, ty) = &input.fields[i];
                    items.push((
                        Some(name.clone()),
                        TypedExpr::Column {
                            index: i,
                            ty: ty.clone(),
                        },
                        None,
                    ));
                }
            }
            SelectItem::QualifiedWildcard(q) => {
                if q != &source.name && Some(q.as_str()) != from.alias.as_deref() {
                    return Err(PlanError::new(format!(
                        "'{q}' is not a valid stream/table name or alias."
                    )));
                }
                for i in star_columns(&input, target) {
                    let (_, name, ty) = &input.fields[i];
                    items.push((
                        Some(name.clone()),
                        TypedExpr::Column {
                            index: i,
                            ty: ty.clone(),
                        },
                        None,
                    ));
                }
            }
            SelectItem::StructWildcard(base) => {
                // `s->*`: one column per field of the struct, named after the field.
                let typed = analyzer.analyze(base)?;
                let SqlType::Struct(fields) = typed.ty() else {
                    return Err(PlanError::new(format!(
                        "Expected STRUCT type for '{base}->*', got {}",
                        typed.ty()
                    )));
                };
                for f in fields {
                    let field = TypedExpr::Dereference {
                        base: Box::new(typed.clone()),
                        field: f.name.clone(),
                        ty: f.ty.clone(),
                    };
                    items.push((Some(f.name.clone()), field, None));
                }
            }
            SelectItem::Expr { expr, alias } => {
                if matches!(expr, Expr::Literal(runnel_sql::Literal::Null)) {
                    return Err(PlanError::new(
                        "Can't infer a type of null. Please explicitly cast it to a required type, e.g. CAST(null AS VARCHAR).",
                    ));
                }
                let typed = analyzer
                    .analyze(expr)
                    .map_err(|e| clause_error(e, "SELECT"))?;
                items.push((alias.clone(), typed, Some(expr.clone())));
            }
        }
    }

    // Names: alias, derived name, or KSQL_COL_n for the rest.
    let mut names = SystemNames::new(
        items
            .iter()
            .filter_map(|(alias, _, e)| alias.clone().or_else(|| e.as_ref().and_then(derived_name)))
            .chain(input.fields.iter().map(|(_, n, _)| n.clone()))
            .collect(),
    );
    let mut projection = Vec::new();
    for (alias, expr, ast) in items {
        let explicit_alias = alias.is_some() && ast.is_some();
        let name = alias
            .or_else(|| ast.as_ref().and_then(derived_name))
            .unwrap_or_else(|| names.next());
        if target == PlanTarget::Sink && RESERVED_COLUMNS.contains(&name.as_str()) {
            if explicit_alias {
                return Err(PlanError::new(format!(
                    "`{name}` is a reserved column name. You cannot use it as an alias for a column."
                )));
            }
            return Err(PlanError::new(format!(
                "Reserved column name in select: `{name}`. Please remove or alias the column."
            )));
        }
        if projection.iter().any(|p: &Projection| p.name == name) {
            return Err(PlanError::new(format!(
                "Duplicate column name '{name}' in projection."
            )));
        }
        let is_key = target == PlanTarget::Sink
            && matches!(&expr, TypedExpr::Column { index, .. }
                if matches!(input.fields[*index].0, InputField::Key(_)));
        projection.push(Projection { name, expr, is_key });
    }

    if target == PlanTarget::Sink {
        let sink = sink_name.unwrap_or("OUTPUT");
        let mut missing = Vec::new();
        for (i, (field, key_name, _)) in input.fields.iter().enumerate() {
            if !matches!(field, InputField::Key(_)) {
                continue;
            }
            let keys: Vec<usize> = projection
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    p.is_key && matches!(p.expr, TypedExpr::Column { index, .. } if index == i)
                })
                .map(|(j, _)| j)
                .collect();
            if keys.is_empty() {
                missing.push(key_name.clone());
            }
            if keys.len() > 1 {
                let aliases: Vec<&str> =
                    keys.iter().map(|&j| projection[j].name.as_str()).collect();
                return Err(PlanError::new(format!(
                    "The projection contains a key column (`{key_name}`) more than once, aliased as: {}.",
                    aliases.join(" and ")
                )));
            }
        }
        if !missing.is_empty() && !options.new_planner {
            // ksqlDB names every key column, not only the missing ones.
            let all: Vec<String> = input
                .fields
                .iter()
                .filter(|(f, _, _)| matches!(f, InputField::Key(_)))
                .map(|(_, n, _)| n.clone())
                .collect();
            let (noun, list) = match all.split_last() {
                Some((last, rest)) if !rest.is_empty() => {
                    ("key columns", format!("{} and {last}", rest.join(", ")))
                }
                _ => ("key column", all.join("")),
            };
            return Err(PlanError::new(format!(
                "The query used to build `{sink}` must include the {noun} {list} in its projection (eg, SELECT {}...).",
                all.join(", ")
            )));
        }
        if !projection.iter().any(|p| !p.is_key) {
            return Err(PlanError::new("The projection contains no value columns."));
        }
        if !options.new_planner {
            // The key keeps the source's key column order.
            let key_rank = |p: &Projection| match &p.expr {
                TypedExpr::Column { index, .. } if p.is_key => *index,
                _ => usize::MAX,
            };
            let mut keys: Vec<Projection> =
                projection.iter().filter(|p| p.is_key).cloned().collect();
            keys.sort_by_key(key_rank);
            let mut k = keys.into_iter();
            for p in projection.iter_mut() {
                if p.is_key {
                    if let Some(next) = k.next() {
                        *p = next;
                    }
                }
            }
        }
    }

    Ok(SelectPlan {
        source,
        input,
        filter,
        projection,
        emit: query.emit,
        limit: query.limit,
    })
}

//! Pull queries: `SELECT ... FROM <table> [WHERE ...] [LIMIT n];` without `EMIT CHANGES`,
//! answered from a materialized table (a CTAS table or a `CREATE SOURCE TABLE`), or from a
//! stream's topic read from the beginning up to its current end.
//!
//! A statement is planned once (ksqlDB's checks, the typed filter and projection over the table's
//! row, and the keys the WHERE clause pins down) and the plan is cached by statement text until
//! the catalog changes, so a repeated key lookup costs a store `get` and the evaluation of the
//! filter and projection on the rows found. WHERE clauses that do not pin the key down are table
//! scans (on by default, as in ksqlDB; `ksql.query.pull.table.scan.enabled=false` turns them
//! into ksqlDB's errors). Whatever the access path, every candidate row goes through the whole
//! filter, so the key analysis only ever narrows the rows read.

use crate::materialized::StoredRow;
use crate::output::StatementOutput;
use crate::task::QueryTask;
use crate::{Backend, Engine, EngineError};
use runnel_plan::catalog::Source;
use runnel_plan::functions::FunctionConfig;
use runnel_plan::query::{plan_select, InputField, PlanOptions, PlanTarget, SelectPlan};
use runnel_plan::{TypedExpr, Value};
use runnel_sql::{BinaryOp, SourceKind, SqlType};
use std::sync::Arc;

/// The answer to a pull query.
#[derive(Debug, Clone, PartialEq)]
pub struct PullResult {
    pub query_id: String,
    pub columns: Vec<(String, SqlType)>,
    /// For each column: whether it is a key column of the table (`KEY` in the header schema).
    pub key_columns: Vec<bool>,
    pub rows: Vec<Vec<Value>>,
    /// Pull queries over streams end like push queries (`Limit Reached` / `Query Completed`);
    /// table pull queries send no final message.
    pub final_message: Option<String>,
}

/// How a pull query finds its candidate rows.
#[derive(Debug, Clone, PartialEq)]
enum Access {
    /// Only these keys (full key values, cast to the key column types).
    Keys(Vec<Vec<Value>>),
    /// Every row.
    Scan,
}

/// A planned pull query: a statement's plan, or a shape's template with one statement's
/// parameter values bound (see `pull_cache`).
pub struct PullPlan {
    /// The typed statement; its filter and LIMIT are the template's (see `filter`, `limit`).
    select: Arc<SelectPlan>,
    /// The filter with this statement's values.
    filter: Option<TypedExpr>,
    /// This statement's LIMIT.
    limit: Option<u64>,
    access: Access,
    key_columns: Arc<[bool]>,
    config: FunctionConfig,
    table: Arc<Source>,
}

/// ksqlDB's error for a pull query on a table nothing materializes.
fn not_queryable(name: &str) -> EngineError {
    EngineError::statement(format!(
        "The `{name}` table isn't queryable. To derive a queryable table, you can do 'CREATE TABLE QUERYABLE_{name} AS SELECT * FROM {name}'. See https://cnfl.io/queries for more info."
    ))
}

/// Pseudo-columns pull queries refuse, by clause.
fn disallowed_pseudo_columns(
    exprs: &[&TypedExpr],
    plan: &SelectPlan,
    clause: &str,
) -> Result<(), EngineError> {
    fn walk(e: &TypedExpr, plan: &SelectPlan, found: &mut Vec<String>) {
        if let TypedExpr::Column { index, .. } = e {
            if let Some((f, name, _)) = plan.input.fields.get(*index) {
                if matches!(f, InputField::RowPartition | InputField::RowOffset)
                    && !found.contains(name)
                {
                    found.push(name.clone());
                }
            }
        }
        for c in e.children() {
            walk(c, plan, found);
        }
    }
    let mut found = Vec::new();
    for e in exprs {
        walk(e, plan, &mut found);
    }
    if found.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = found.iter().map(|n| format!("`{n}`")).collect();
    Err(EngineError::statement(format!(
        "Pull queries don't support the following columns in {clause} clauses: {}",
        list.join(", ")
    )))
}

/// ksqlDB's operator names in comparison errors.
fn comparison_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Eq => "EQUAL",
        BinaryOp::NotEq => "NOT_EQUAL",
        BinaryOp::Lt => "LESS_THAN",
        BinaryOp::LtEq => "LESS_THAN_OR_EQUAL",
        BinaryOp::Gt => "GREATER_THAN",
        BinaryOp::GtEq => "GREATER_THAN_OR_EQUAL",
        _ => "COMPARISON",
    }
}

/// Pull queries do not convert string literals to a numeric key column: ksqlDB refuses the
/// comparison, and an `IN` list element it cannot convert. Checked on the statement's own
/// expressions, before literal coercion.
fn check_key_literals(
    e: &runnel_sql::Expr,
    source: &Source,
    where_clause: &runnel_sql::Expr,
) -> Result<(), EngineError> {
    use runnel_sql::{Expr, Literal};
    let key = |e: &Expr| -> Option<(String, SqlType)> {
        match e {
            Expr::Column { name, .. } => source
                .schema
                .key_columns()
                .find(|c| &c.name == name)
                .map(|c| (c.name.clone(), c.ty.clone())),
            _ => None,
        }
    };
    match e {
        Expr::Binary { op, left, right } => {
            for (col, other, col_first) in [(left, right, true), (right, left, false)] {
                let (Some((name, ty)), Expr::Literal(Literal::String(s))) =
                    (key(col), other.as_ref())
                else {
                    continue;
                };
                if ty == SqlType::String || comparison_name(*op) == "COMPARISON" {
                    continue;
                }
                let (l, r) = if col_first {
                    (format!("{name} ({ty})"), format!("'{s}' (STRING)"))
                } else {
                    (format!("'{s}' (STRING)"), format!("{name} ({ty})"))
                };
                return Err(EngineError::statement(format!(
                    "Error in WHERE expression: Cannot compare {l} to {r} with {}.\nStatement: {where_clause}",
                    comparison_name(*op)
                )));
            }
            check_key_literals(left, source, where_clause)?;
            check_key_literals(right, source, where_clause)
        }
        Expr::InList { expr, list, .. } => {
            if let Some((name, ty)) = key(expr) {
                for item in list {
                    match item {
                        Expr::Literal(Literal::Null) => {
                            return Err(EngineError::statement(format!(
                                "Primary key columns can not be NULL: ({name} = null)"
                            )))
                        }
                        Expr::Literal(Literal::String(s)) if ty != SqlType::String => {
                            return Err(EngineError::statement(format!(
                                "'{s}' can not be converted to the type of the key column: {name} {ty} KEY"
                            )))
                        }
                        _ => {}
                    }
                }
            }
            Ok(())
        }
        Expr::Unary { expr, .. } => check_key_literals(expr, source, where_clause),
        _ => Ok(()),
    }
}

/// The conjuncts of an AND tree.
fn conjuncts<'a>(e: &'a TypedExpr, out: &mut Vec<&'a TypedExpr>) {
    match e {
        TypedExpr::And(l, r) => {
            conjuncts(l, out);
            conjuncts(r, out);
        }
        other => out.push(other),
    }
}

/// The key column (position among the key columns) a bare column reference stands for.
fn key_column(e: &TypedExpr, plan: &SelectPlan) -> Option<usize> {
    match e {
        TypedExpr::Column { index, .. } => match plan.input.fields.get(*index)?.0 {
            InputField::Key(k) => Some(k),
            _ => None,
        },
        _ => None,
    }
}

/// A constant operand's value as a value of the key column's type; `None` when it cannot be
/// evaluated or converted (the query then falls back to a scan, which is always correct).
fn constant_key(e: &TypedExpr, ty: &SqlType, config: &FunctionConfig) -> Option<Value> {
    if !e.is_constant() {
        return None;
    }
    let v = runnel_plan::eval::eval(e, &[], config).ok()?;
    if v.is_null() {
        return Some(Value::Null);
    }
    if &e.ty() == ty {
        return Some(v);
    }
    runnel_plan::cast::cast_value(&v, &e.ty(), ty).ok()
}

/// The keys a WHERE clause pins down: every key column constrained by `=` or `IN` in one
/// conjunction, or a disjunction of such conjunctions. `None` means a scan.
fn pinned_keys(
    e: &TypedExpr,
    plan: &SelectPlan,
    key_types: &[SqlType],
    config: &FunctionConfig,
) -> Option<Vec<Vec<Value>>> {
    if let TypedExpr::Or(l, r) = e {
        let mut keys = pinned_keys(l, plan, key_types, config)?;
        keys.extend(pinned_keys(r, plan, key_types, config)?);
        return Some(keys);
    }
    let mut parts = Vec::new();
    conjuncts(e, &mut parts);
    let mut sets: Vec<Option<Vec<Value>>> = vec![None; key_types.len()];
    let mut nested: Option<Vec<Vec<Value>>> = None;
    for p in parts {
        let (k, values) = match p {
            TypedExpr::Comparison {
                op: BinaryOp::Eq,
                left,
                right,
            } => match (key_column(left, plan), key_column(right, plan)) {
                (Some(k), None) => (k, vec![constant_key(right, &key_types[k], config)?]),
                (None, Some(k)) => (k, vec![constant_key(left, &key_types[k], config)?]),
                _ => continue,
            },
            TypedExpr::InList {
                expr,
                list,
                negated: false,
            } => match key_column(expr, plan) {
                Some(k) => (
                    k,
                    list.iter()
                        .map(|e| constant_key(e, &key_types[k], config))
                        .collect::<Option<Vec<_>>>()?,
                ),
                None => continue,
            },
            TypedExpr::Or(..) if nested.is_none() => {
                if let Some(keys) = pinned_keys(p, plan, key_types, config) {
                    nested = Some(keys);
                }
                continue;
            }
            _ => continue,
        };
        let values: Vec<Value> = values.into_iter().filter(|v| !v.is_null()).collect();
        sets[k] = Some(match sets[k].take() {
            None => values,
            Some(prev) => prev.into_iter().filter(|v| values.contains(v)).collect(),
        });
    }
    if sets.iter().all(Option::is_some) && !sets.is_empty() {
        let mut keys: Vec<Vec<Value>> = vec![vec![]];
        for set in sets.into_iter().flatten() {
            keys = keys
                .into_iter()
                .flat_map(|prefix| {
                    set.iter().map(move |v| {
                        let mut k = prefix.clone();
                        k.push(v.clone());
                        k
                    })
                })
                .collect();
        }
        return Some(keys);
    }
    nested
}

/// ksqlDB's checks of a WHERE clause when table scans are disabled: every disjunct must pin
/// every key column with `=` (or `IN`).
fn check_key_only_where(
    filter: &TypedExpr,
    where_text: &runnel_sql::Expr,
    plan: &SelectPlan,
    key_names: &[String],
) -> Result<(), EngineError> {
    fn disjuncts<'a>(e: &'a TypedExpr, out: &mut Vec<&'a TypedExpr>) {
        match e {
            TypedExpr::Or(l, r) => {
                disjuncts(l, out);
                disjuncts(r, out);
            }
            other => out.push(other),
        }
    }
    let _ = where_text;
    let mut ors = Vec::new();
    disjuncts(filter, &mut ors);
    for d in ors {
        let mut parts = Vec::new();
        conjuncts(d, &mut parts);
        let mut pinned = vec![false; key_names.len()];
        let mut in_list = false;
        let mut compared = false;
        for p in &parts {
            match p {
                TypedExpr::Comparison { op, left, right } => {
                    let k = key_column(left, plan).or_else(|| key_column(right, plan));
                    let window = |e: &TypedExpr| {
                        matches!(e, TypedExpr::Column { index, .. }
                            if matches!(plan.input.fields.get(*index).map(|f| &f.0),
                                Some(InputField::WindowStart | InputField::WindowEnd)))
                    };
                    if window(left) || window(right) {
                        continue;
                    }
                    let Some(k) = k else {
                        if left.is_constant() || right.is_constant() {
                            continue;
                        }
                        return Err(EngineError::statement(
                            "A comparison must directly reference a key column.",
                        ));
                    };
                    let other = if key_column(left, plan).is_some() {
                        right
                    } else {
                        left
                    };
                    if !other.is_constant() {
                        return Err(EngineError::statement(
                            "A comparison must be between a key column and a resolvable expression.",
                        ));
                    }
                    if *op != BinaryOp::Eq {
                        return Err(EngineError::statement(format!(
                            "Bound on key columns '[`{}` {} KEY]' must currently be '='. ",
                            key_names[k],
                            plan.input.fields[plan
                                .input
                                .fields
                                .iter()
                                .position(|f| f.0 == InputField::Key(k))
                                .unwrap_or(0)]
                            .2
                        )));
                    }
                    if in_list {
                        return Err(EngineError::statement("A comparison condition on the key column cannot be combined with other comparisons such as an IN predicate"));
                    }
                    compared = true;
                    pinned[k] = true;
                }
                TypedExpr::InList { expr, list, .. } => {
                    let Some(k) = key_column(expr, plan) else {
                        return Err(EngineError::statement(
                            "A comparison must directly reference a key column.",
                        ));
                    };
                    if list.iter().any(|e| !e.is_constant()) {
                        return Err(EngineError::statement(
                            "A comparison must be between a key column and a resolvable expression.",
                        ));
                    }
                    if compared || in_list {
                        return Err(EngineError::statement("A comparison condition on the key column cannot be combined with other comparisons such as an IN predicate"));
                    }
                    in_list = true;
                    pinned[k] = true;
                }
                TypedExpr::Like { .. } => {
                    return Err(EngineError::statement(
                        "Like condition must be between strings",
                    ))
                }
                _ => {}
            }
        }
        if pinned.iter().all(|p| !p) {
            return Err(EngineError::statement(format!(
                "WHERE clause missing key column for disjunct: {}",
                describe(d, plan)
            )));
        }
        if pinned.iter().any(|p| !p) {
            return Err(EngineError::statement(
                "Multi-column sources must specify every key in the WHERE clause",
            ));
        }
    }
    Ok(())
}

/// ksqlDB's text of a simple condition (`(COUNT = 100)`), for error messages.
fn describe(e: &TypedExpr, plan: &SelectPlan) -> String {
    fn text(e: &TypedExpr, plan: &SelectPlan) -> String {
        match e {
            TypedExpr::Column { index, .. } => plan
                .input
                .fields
                .get(*index)
                .map(|f| f.1.clone())
                .unwrap_or_default(),
            TypedExpr::Literal { value, .. } => match value {
                Value::String(s) => format!("'{s}'"),
                Value::Null => "null".into(),
                v => v.to_string(),
            },
            TypedExpr::Cast { expr, .. } => text(expr, plan),
            TypedExpr::Comparison { op, left, right } => format!(
                "({} {} {})",
                text(left, plan),
                op.symbol(),
                text(right, plan)
            ),
            TypedExpr::And(l, r) => format!("({} AND {})", text(l, plan), text(r, plan)),
            TypedExpr::Or(l, r) => format!("({} OR {})", text(l, plan), text(r, plan)),
            other => format!("{other:?}"),
        }
    }
    text(e, plan)
}

/// How a filter's rows are found: the keys it pins down, else a scan.
fn access_path(
    filter: Option<&TypedExpr>,
    select: &SelectPlan,
    table: &Source,
    config: &FunctionConfig,
) -> Access {
    let key_types: Vec<SqlType> = table.schema.key_columns().map(|c| c.ty.clone()).collect();
    match filter {
        Some(f) if !key_types.is_empty() => match pinned_keys(f, select, &key_types, config) {
            Some(mut keys) => {
                let mut seen = Vec::new();
                keys.retain(|k| {
                    let fresh = !seen.contains(k);
                    if fresh {
                        seen.push(k.clone());
                    }
                    fresh
                });
                Access::Keys(keys)
            }
            None => Access::Scan,
        },
        _ => Access::Scan,
    }
}

/// A template with one statement's values bound, and whether every parameter found its place.
pub(crate) struct Bound {
    pub plan: PullPlan,
    complete: bool,
}

impl Bound {
    /// Whether this is exactly `plan` (the statement planned on its own): the check that a
    /// shape's template can stand for its statements.
    pub fn matches(&self, plan: &PullPlan) -> bool {
        let bound = SelectPlan {
            filter: self.plan.filter.clone(),
            limit: self.plan.limit,
            ..(*self.plan.select).clone()
        };
        self.complete
            && format!("{bound:?}") == format!("{:?}", plan.select)
            && self.plan.key_columns == plan.key_columns
            && self.plan.access == plan.access
    }
}

impl crate::pull_cache::Template {
    /// The template with a statement's parameter values in place of its sentinels.
    pub(crate) fn bind(&self, shape: &crate::pull_cache::Shape) -> Bound {
        let t = &self.plan;
        let mut used = vec![0; self.sentinels.len()];
        let filter = t
            .filter
            .as_ref()
            .map(|f| crate::pull_cache::bind_expr(f, &self.sentinels, &shape.values, &mut used));
        let access = if self.sentinels.is_empty() {
            t.access.clone()
        } else {
            access_path(filter.as_ref(), &t.select, &t.table, &t.config)
        };
        Bound {
            complete: used.iter().all(|n| *n > 0) && shape.values.len() == self.sentinels.len(),
            plan: PullPlan {
                select: t.select.clone(),
                filter,
                limit: shape.limit,
                access,
                key_columns: t.key_columns.clone(),
                config: t.config.clone(),
                table: t.table.clone(),
            },
        }
    }
}

impl PullPlan {
    /// The input row of the table's layout for a stored row.
    fn input_row(&self, row: &StoredRow) -> Vec<Value> {
        self.select
            .input
            .fields
            .iter()
            .map(|(f, _, _)| match f {
                InputField::RowTime => Value::Bigint(row.rowtime),
                InputField::RowPartition => Value::Int(0),
                InputField::RowOffset => Value::Null,
                InputField::WindowStart => row
                    .window
                    .map(|w| Value::Bigint(w.0))
                    .unwrap_or(Value::Null),
                InputField::WindowEnd => row
                    .window
                    .map(|w| Value::Bigint(w.1))
                    .unwrap_or(Value::Null),
                InputField::Key(i) => row.key.get(*i).cloned().unwrap_or(Value::Null),
                InputField::Value(i) => row.values.get(*i).cloned().unwrap_or(Value::Null),
                InputField::Header(_) => Value::Null,
            })
            .collect()
    }

    /// Filter and projection of one stored row; `None` when the filter rejects it.
    fn evaluate(&self, row: &StoredRow) -> Result<Option<Vec<Value>>, EngineError> {
        let input = self.input_row(row);
        if let Some(f) = &self.filter {
            let keep =
                runnel_plan::eval::eval(f, &input, &self.config).map_err(EngineError::statement)?;
            if keep != Value::Boolean(true) {
                return Ok(None);
            }
        }
        self.select
            .projection
            .iter()
            .map(|p| runnel_plan::eval::eval(&p.expr, &input, &self.config))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
            .map_err(EngineError::statement)
    }

    /// Runs the plan against the table's store.
    pub fn execute(
        &self,
        store: &dyn crate::materialized::TableStore,
    ) -> Result<Vec<Vec<Value>>, EngineError> {
        let limit = self.limit.map(|l| l as usize).unwrap_or(usize::MAX);
        let mut rows = Vec::new();
        if limit == 0 {
            return Ok(rows);
        }
        match &self.access {
            Access::Keys(keys) => {
                for key in keys {
                    for row in store.get(key) {
                        if let Some(out) = self.evaluate(&row)? {
                            rows.push(out);
                            if rows.len() >= limit {
                                return Ok(rows);
                            }
                        }
                    }
                }
            }
            Access::Scan => {
                let mut error = None;
                store.scan(&mut |row| match self.evaluate(row) {
                    Ok(Some(out)) => {
                        rows.push(out);
                        rows.len() < limit
                    }
                    Ok(None) => true,
                    Err(e) => {
                        error = Some(e);
                        false
                    }
                });
                if let Some(e) = error {
                    return Err(e);
                }
            }
        }
        Ok(rows)
    }

    pub fn columns(&self) -> Vec<(String, SqlType)> {
        self.select.result_columns()
    }

    /// Whether the plan reads only the keys its WHERE clause pins down.
    pub fn is_key_lookup(&self) -> bool {
        matches!(self.access, Access::Keys(_))
    }
}

impl Engine {
    fn pull_error_checks(query: &runnel_sql::Query) -> Result<(), EngineError> {
        if !query.from.joins.is_empty() {
            return Err(EngineError::statement(
                "Pull queries don't support JOIN clauses.",
            ));
        }
        if query.window.is_some() {
            return Err(EngineError::statement(
                "Pull queries don't support WINDOW clauses.",
            ));
        }
        if !query.group_by.is_empty() {
            return Err(EngineError::statement(
                "Pull queries don't support GROUP BY clauses.",
            ));
        }
        if !query.partition_by.is_empty() {
            return Err(EngineError::statement(
                "Pull queries don't support PARTITION BY clauses.",
            ));
        }
        if query.having.is_some() {
            return Err(EngineError::statement(
                "Pull queries don't support HAVING clauses.",
            ));
        }
        Ok(())
    }

    /// Plans a pull query over a table (not cached).
    pub fn plan_pull(&self, query: &runnel_sql::Query) -> Result<PullPlan, EngineError> {
        Self::pull_error_checks(query)?;
        let name = &query.from.source.name;
        let source = self
            .catalog
            .source(name)
            .cloned()
            .ok_or_else(|| EngineError::statement(format!("{name} does not exist.")))?;
        if source.kind == SourceKind::Table && !self.materialized.contains_key(&source.name) {
            return Err(not_queryable(&source.name));
        }
        if let Some(w) = &query.where_clause {
            check_key_literals(w, &source, w)?;
        }
        let options = PlanOptions {
            new_planner: self
                .property("ksql.new.query.planner.enabled")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        };
        let select = plan_select(
            query,
            &self.catalog,
            &self.functions,
            PlanTarget::Transient,
            None,
            &options,
        )
        .map_err(|e| match &query.where_clause {
            // ksqlDB names the WHERE clause of a pull query in its type errors.
            Some(w) if e.message.starts_with("Error in WHERE expression:") => {
                EngineError::statement(format!("{}\nStatement: {w}", e.message))
            }
            _ => EngineError::from(e),
        })?;
        let projected: Vec<&TypedExpr> = select.projection.iter().map(|p| &p.expr).collect();
        disallowed_pseudo_columns(&projected, &select, "SELECT")?;
        if let Some(f) = &select.filter {
            disallowed_pseudo_columns(&[f], &select, "WHERE")?;
        }
        let config = self.function_config();
        let key_names: Vec<String> = source
            .schema
            .key_columns()
            .map(|c| c.name.clone())
            .collect();
        let scans_allowed = self
            .property("ksql.query.pull.table.scan.enabled")
            .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
        if source.kind == SourceKind::Table && !scans_allowed {
            match (&select.filter, &query.where_clause) {
                (Some(f), Some(w)) => check_key_only_where(f, w, &select, &key_names)?,
                _ => {
                    return Err(EngineError::statement(
                        "Pull queries require a WHERE clause that limits the query to a single key, unless table scans are enabled.",
                    ))
                }
            }
        }
        let access = access_path(select.filter.as_ref(), &select, &source, &config);
        let key_columns = select
            .projection
            .iter()
            .map(|p| {
                matches!(&p.expr, TypedExpr::Column { index, .. }
                    if matches!(select.input.fields[*index].0,
                        InputField::Key(_) | InputField::WindowStart | InputField::WindowEnd))
                    && source.kind == SourceKind::Table
            })
            .collect();
        Ok(PullPlan {
            filter: select.filter.clone(),
            limit: select.limit,
            select: Arc::new(select),
            access,
            key_columns,
            config,
            table: source,
        })
    }

    /// Plans a statement for the cache, counting the compilation.
    fn compile_pull(&mut self, query: &runnel_sql::Query) -> Result<Arc<PullPlan>, EngineError> {
        self.pull_plans.compiled += 1;
        self.plan_pull(query).map(Arc::new)
    }

    /// The plan of a pull query: a shape's cached template with the statement's values bound,
    /// else the statement planned (and its shape's template planned and cached when the shape
    /// has parameters that can be bound). See `pull_cache` for why this is sound.
    fn cached_pull_plan(
        &mut self,
        query: &runnel_sql::Query,
        text: &str,
    ) -> Result<Arc<PullPlan>, EngineError> {
        use crate::pull_cache::{Cached, Shape, Template};
        let shape = Shape::of(query);
        let shape_key = format!("S{:?}\u{0}{:?}", shape.query, self.session);
        match self.pull_plans.get(&shape_key) {
            Some(Cached::Shape(t)) => {
                self.pull_plans.hits += 1;
                return Ok(Arc::new(t.bind(&shape).plan));
            }
            Some(Cached::TextOnly) => {
                let text_key = format!("T{}\u{0}{:?}", text.trim(), self.session);
                if let Some(Cached::Plan(p)) = self.pull_plans.get(&text_key) {
                    self.pull_plans.hits += 1;
                    return Ok(p);
                }
                let p = self.compile_pull(query)?;
                self.pull_plans.insert(text_key, Cached::Plan(p.clone()));
                return Ok(p);
            }
            Some(Cached::Plan(_)) | None => {}
        }
        // A new shape: the statement's own plan first, so its errors are its own.
        let plan = self.compile_pull(query)?;
        if !shape.has_parameters() {
            let template = Template {
                plan: plan.clone(),
                sentinels: Vec::new(),
            };
            self.pull_plans
                .insert(shape_key, Cached::Shape(Arc::new(template)));
            return Ok(plan);
        }
        let template = self.compile_pull(&shape.query).ok().map(|p| Template {
            plan: p,
            sentinels: shape.sentinels.clone(),
        });
        match template.and_then(|t| t.bind(&shape).matches(&plan).then_some(t)) {
            Some(t) => self
                .pull_plans
                .insert(shape_key, Cached::Shape(Arc::new(t))),
            None => {
                self.pull_plans.insert(shape_key, Cached::TextOnly);
                let text_key = format!("T{}\u{0}{:?}", text.trim(), self.session);
                self.pull_plans.insert(text_key, Cached::Plan(plan.clone()));
            }
        }
        Ok(plan)
    }

    /// Runs a pull query (planned once per statement shape while the catalog is unchanged).
    pub(crate) fn pull_query(
        &mut self,
        query: &runnel_sql::Query,
        text: &str,
    ) -> Result<StatementOutput, EngineError> {
        let plan = self.cached_pull_plan(query, text)?;
        let query_id = format!("query_{}", self.next_pull_id());
        let (rows, final_message) = if plan.table.kind == SourceKind::Table {
            let m = self
                .materialized
                .get(&plan.table.name)
                .cloned()
                .ok_or_else(|| not_queryable(&plan.table.name))?;
            (plan.execute(m.store.as_ref())?, None)
        } else {
            self.stream_pull(&plan)?
        };
        Ok(StatementOutput::Pull(PullResult {
            query_id,
            columns: plan.columns(),
            key_columns: plan.key_columns.to_vec(),
            rows,
            final_message,
        }))
    }

    /// A pull query over a stream: its topic from the beginning to the current end.
    fn stream_pull(
        &self,
        plan: &PullPlan,
    ) -> Result<(Vec<Vec<Value>>, Option<String>), EngineError> {
        let select = SelectPlan {
            filter: plan.filter.clone(),
            limit: plan.limit,
            ..(*plan.select).clone()
        };
        let task = QueryTask::new(&select, None, self.function_config())?;
        let records = match &self.backend {
            Backend::Memory(topics) => topics
                .get(&plan.table.topic)
                .map(|t| t.records.clone())
                .unwrap_or_default(),
            Backend::Kafka(k) => crate::runner::read_to_end(k, &plan.table.topic)?,
        };
        let limit = plan.limit.map(|l| l as usize);
        let mut rows = Vec::new();
        if limit != Some(0) {
            for r in &records {
                let out = task.process(std::slice::from_ref(r))?;
                for row in out.rows {
                    rows.push(row.values);
                    if limit.is_some_and(|l| rows.len() >= l) {
                        return Ok((rows, Some("Limit Reached".into())));
                    }
                }
            }
        }
        let message = if limit.is_some_and(|l| rows.len() >= l) {
            "Limit Reached"
        } else {
            "Query Completed"
        };
        Ok((rows, Some(message.into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver;

    fn engine(script: &str) -> Engine {
        let mut e = Engine::in_memory(Default::default());
        e.execute_script(script).expect("setup");
        driver::run_to_completion(&mut e).expect("driver");
        e
    }

    fn pull(e: &mut Engine, sql: &str) -> Result<PullResult, EngineError> {
        let mut out = e.execute_script(sql).map_err(|e| e.error)?;
        match out.pop() {
            Some(StatementOutput::Pull(p)) => Ok(p),
            other => panic!("not a pull result: {other:?}"),
        }
    }

    const TABLE: &str = "CREATE TABLE T (ID INT PRIMARY KEY, NAME STRING, N INT) WITH (kafka_topic='t', value_format='JSON', partitions=1);
        CREATE TABLE Q AS SELECT ID, NAME, N * 2 AS N2 FROM T;
        INSERT INTO T (ID, NAME, N) VALUES (1, 'a', 10);
        INSERT INTO T (ID, NAME, N) VALUES (2, 'b', 20);
        INSERT INTO T (ID, NAME, N) VALUES (3, 'c', 30);
        INSERT INTO T (ID, NAME, N) VALUES (1, 'z', 11);";

    #[test]
    fn key_lookups_scans_and_limits() {
        let mut e = engine(TABLE);
        let p = pull(&mut e, "SELECT * FROM Q WHERE ID = 1;").unwrap();
        assert_eq!(
            p.rows,
            vec![vec![
                Value::Int(1),
                Value::String("z".into()),
                Value::Int(22)
            ]]
        );
        assert_eq!(p.key_columns, vec![true, false, false]);
        assert_eq!(p.final_message, None);
        let plan = e
            .plan_pull(
                match &e.parse("SELECT * FROM Q WHERE ID = 1;").unwrap()[0].statement {
                    runnel_sql::Statement::Query(q) => q,
                    _ => unreachable!(),
                },
            )
            .unwrap();
        assert!(plan.is_key_lookup());
        let p = pull(&mut e, "SELECT NAME FROM Q WHERE ID IN (2, 3, 9);").unwrap();
        let mut names: Vec<Value> = p.rows.into_iter().flatten().collect();
        names.sort_by_key(|v| v.to_string());
        assert_eq!(
            names,
            vec![Value::String("b".into()), Value::String("c".into())]
        );
        let p = pull(&mut e, "SELECT ID FROM Q WHERE N2 > 25;").unwrap();
        assert_eq!(p.rows.len(), 2);
        let p = pull(&mut e, "SELECT * FROM Q LIMIT 2;").unwrap();
        assert_eq!(p.rows.len(), 2);
        // A later update is visible to the same (cached) statement.
        e.execute_script("INSERT INTO T (ID, NAME, N) VALUES (1, 'y', 1);")
            .unwrap();
        driver::run_to_completion(&mut e).unwrap();
        let p = pull(&mut e, "SELECT * FROM Q WHERE ID = 1;").unwrap();
        assert_eq!(p.rows[0][1], Value::String("y".into()));
    }

    #[test]
    fn tombstones_delete_rows() {
        let mut e = engine(TABLE);
        if let Backend::Memory(topics) = &mut e.backend {
            let t = topics.get_mut("t").unwrap();
            let mut r = t.records[0].clone();
            r.value = None;
            r.offset = t.records.len() as i64;
            t.records.push(r);
        }
        driver::run_to_completion(&mut e).unwrap();
        let p = pull(&mut e, "SELECT * FROM Q WHERE ID = 1;").unwrap();
        assert!(p.rows.is_empty());
        assert_eq!(pull(&mut e, "SELECT * FROM Q;").unwrap().rows.len(), 2);
    }

    #[test]
    fn windowed_aggregates_and_bounds() {
        let mut e = engine(
            "CREATE STREAM S (K STRING KEY, V INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);
             CREATE TABLE A AS SELECT K, COUNT(*) AS C FROM S WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY K;
             INSERT INTO S (ROWTIME, K, V) VALUES (1000, 'a', 1);
             INSERT INTO S (ROWTIME, K, V) VALUES (2000, 'a', 1);
             INSERT INTO S (ROWTIME, K, V) VALUES (12000, 'a', 1);
             INSERT INTO S (ROWTIME, K, V) VALUES (3000, 'b', 1);",
        );
        let p = pull(&mut e, "SELECT * FROM A WHERE K = 'a';").unwrap();
        assert_eq!(
            p.columns.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
            vec!["K", "WINDOWSTART", "WINDOWEND", "C"]
        );
        assert_eq!(p.key_columns, vec![true, true, true, false]);
        assert_eq!(p.rows.len(), 2);
        let p = pull(
            &mut e,
            "SELECT C FROM A WHERE K = 'a' AND WINDOWSTART >= 10000;",
        )
        .unwrap();
        assert_eq!(p.rows, vec![vec![Value::Bigint(1)]]);
        let p = pull(&mut e, "SELECT K, C FROM A WHERE WINDOWEND <= 10000;").unwrap();
        assert_eq!(p.rows.len(), 2);
    }

    #[test]
    fn source_tables_are_queryable_and_plain_tables_are_not() {
        let mut e = engine(
            "CREATE SOURCE TABLE ST (ID INT PRIMARY KEY, V STRING) WITH (kafka_topic='st', format='JSON', partitions=1);
             CREATE TABLE PT (ID INT PRIMARY KEY, V STRING) WITH (kafka_topic='pt', value_format='JSON', partitions=1);",
        );
        assert!(e.queries.iter().any(|q| q.id.starts_with("CST_ST")));
        let records = vec![runnel_connect::kafka::Record {
            topic: "st".into(),
            key: Some(br#"5"#.to_vec()),
            value: Some(br#"{"V":"five"}"#.to_vec()),
            timestamp: 1,
            ..Default::default()
        }];
        e.produce(records).unwrap();
        driver::run_to_completion(&mut e).unwrap();
        let p = pull(&mut e, "SELECT * FROM ST WHERE ID = 5;").unwrap();
        assert_eq!(
            p.rows,
            vec![vec![Value::Int(5), Value::String("five".into())]]
        );
        let err = pull(&mut e, "SELECT * FROM PT;").unwrap_err();
        assert_eq!(err.to_string(), "The `PT` table isn't queryable. To derive a queryable table, you can do 'CREATE TABLE QUERYABLE_PT AS SELECT * FROM PT'. See https://cnfl.io/queries for more info.");
    }

    #[test]
    fn ksqldb_errors() {
        let mut e = engine(TABLE);
        let msg = |e: &mut Engine, sql: &str| pull(e, sql).unwrap_err().to_string();
        assert_eq!(
            msg(&mut e, "SELECT ROWPARTITION FROM Q;"),
            "Pull queries don't support the following columns in SELECT clauses: `ROWPARTITION`"
        );
        assert_eq!(
            msg(&mut e, "SELECT * FROM Q WHERE ROWOFFSET = 1;"),
            "Pull queries don't support the following columns in WHERE clauses: `ROWOFFSET`"
        );
        assert_eq!(
            msg(&mut e, "SELECT * FROM Q WHERE ID IN ('x');"),
            "'x' can not be converted to the type of the key column: ID INTEGER KEY"
        );
        assert!(msg(&mut e, "SELECT ID, COUNT(*) FROM Q GROUP BY ID;")
            .starts_with("Pull queries don't support GROUP BY clauses"));
        e.session
            .insert("ksql.query.pull.table.scan.enabled".into(), "false".into());
        assert_eq!(
            msg(&mut e, "SELECT * FROM Q WHERE N2 = 4;"),
            "WHERE clause missing key column for disjunct: (N2 = 4)"
        );
        assert!(pull(&mut e, "SELECT * FROM Q WHERE ID = 2;").is_ok());
    }

    #[test]
    fn stream_pull_reads_the_topic_to_its_end() {
        let mut e = engine(
            "CREATE STREAM S (K STRING KEY, V INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);
             INSERT INTO S (K, V) VALUES ('a', 1);
             INSERT INTO S (K, V) VALUES ('b', 2);
             INSERT INTO S (K, V) VALUES ('c', 3);",
        );
        let p = pull(&mut e, "SELECT V FROM S WHERE V > 1;").unwrap();
        assert_eq!(p.rows, vec![vec![Value::Int(2)], vec![Value::Int(3)]]);
        assert_eq!(p.final_message.as_deref(), Some("Query Completed"));
        let p = pull(&mut e, "SELECT V FROM S LIMIT 1;").unwrap();
        assert_eq!(p.final_message.as_deref(), Some("Limit Reached"));
    }

    #[test]
    fn one_plan_per_statement_shape() {
        let mut e = engine(TABLE);
        let compiled = |e: &Engine| e.pull_plans.compiled;
        let p = pull(&mut e, "SELECT NAME, N2 FROM Q WHERE ID = 1;").unwrap();
        assert_eq!(
            p.rows,
            vec![vec![Value::String("z".into()), Value::Int(22)]]
        );
        let after_first = compiled(&e);
        assert_eq!(after_first, 2, "the statement, then its shape's template");
        // Another key value is a cache hit, with its own rows.
        let p = pull(&mut e, "SELECT NAME, N2 FROM Q WHERE ID = 2;").unwrap();
        assert_eq!(
            p.rows,
            vec![vec![Value::String("b".into()), Value::Int(40)]]
        );
        let p = pull(&mut e, "SELECT NAME, N2 FROM Q WHERE ID = 9;").unwrap();
        assert!(p.rows.is_empty());
        assert_eq!(compiled(&e), after_first);
        assert_eq!(e.pull_plans.hits, 2);
        // The literal may be on either side; that is another shape.
        let p = pull(&mut e, "SELECT NAME, N2 FROM Q WHERE 3 = ID;").unwrap();
        assert_eq!(
            p.rows,
            vec![vec![Value::String("c".into()), Value::Int(60)]]
        );
        // IN lists, non-key filters and LIMIT are parameters too.
        let p = pull(
            &mut e,
            "SELECT ID FROM Q WHERE ID IN (1, 2) AND N2 > 0 LIMIT 5;",
        )
        .unwrap();
        assert_eq!(p.rows.len(), 2);
        let before = compiled(&e);
        let p = pull(
            &mut e,
            "SELECT ID FROM Q WHERE ID IN (3, 2) AND N2 > 50 LIMIT 5;",
        )
        .unwrap();
        assert_eq!(p.rows, vec![vec![Value::Int(3)]]);
        let p = pull(
            &mut e,
            "SELECT ID FROM Q WHERE ID IN (1, 2) AND N2 > 0 LIMIT 1;",
        )
        .unwrap();
        assert_eq!(p.rows.len(), 1);
        assert_eq!(compiled(&e), before);
        // Rows written after planning are seen by the cached shape.
        e.execute_script("INSERT INTO T (ID, NAME, N) VALUES (4, 'd', 4);")
            .unwrap();
        driver::run_to_completion(&mut e).unwrap();
        let p = pull(&mut e, "SELECT NAME, N2 FROM Q WHERE ID = 1;").unwrap();
        assert_eq!(
            p.rows,
            vec![vec![Value::String("z".into()), Value::Int(22)]]
        );
        let before = compiled(&e);
        let p = pull(&mut e, "SELECT NAME, N2 FROM Q WHERE ID = 4;").unwrap();
        assert_eq!(p.rows, vec![vec![Value::String("d".into()), Value::Int(8)]]);
        assert_eq!(compiled(&e), before);
        assert!(
            pull(&mut e, "SELECT * FROM Q WHERE ID = 4;")
                .unwrap()
                .rows
                .len()
                == 1
        );
    }

    #[test]
    fn literal_types_do_not_share_plans_and_errors_stay() {
        let mut e = engine(
            "CREATE TABLE T (ID STRING PRIMARY KEY, N BIGINT, D DOUBLE) WITH (kafka_topic='t', value_format='JSON', partitions=1);
             CREATE TABLE Q AS SELECT * FROM T;
             INSERT INTO T (ID, N, D) VALUES ('a', 1, 1.5);
             INSERT INTO T (ID, N, D) VALUES ('1', 10000000000, 2.5);",
        );
        let ids =
            |p: PullResult| -> Vec<Value> { p.rows.into_iter().map(|r| r[0].clone()).collect() };
        assert_eq!(
            ids(pull(&mut e, "SELECT * FROM Q WHERE ID = 'a';").unwrap()),
            vec![Value::String("a".into())]
        );
        let compiled = e.pull_plans.compiled;
        // An INT literal against a STRING key: its own plan and ksqlDB's coercion, not the
        // STRING shape's.
        let int = pull(&mut e, "SELECT * FROM Q WHERE ID = 1;");
        assert!(e.pull_plans.compiled > compiled);
        let int_again = pull(&mut e, "SELECT * FROM Q WHERE ID = 1;");
        assert_eq!(
            format!("{int:?}").replace("query_3", "query_4"),
            format!("{int_again:?}")
        );
        // INT, BIGINT and DOUBLE literals against a BIGINT column: three shapes.
        let compiled = e.pull_plans.compiled;
        let n = |e: &mut Engine, sql: &str| ids(pull(e, sql).unwrap());
        assert_eq!(
            n(&mut e, "SELECT * FROM Q WHERE N = 1;"),
            vec![Value::String("a".into())]
        );
        assert_eq!(
            n(&mut e, "SELECT * FROM Q WHERE N = 10000000000;"),
            vec![Value::String("1".into())]
        );
        assert_eq!(
            n(&mut e, "SELECT * FROM Q WHERE N = 1E0;"),
            vec![Value::String("a".into())]
        );
        assert_eq!(e.pull_plans.compiled, compiled + 6);
        assert_eq!(
            n(&mut e, "SELECT * FROM Q WHERE N = 10000000001;"),
            Vec::<Value>::new()
        );
        assert_eq!(
            n(&mut e, "SELECT * FROM Q WHERE D = 2.5E0;"),
            vec![Value::String("1".into())]
        );
        let compiled = e.pull_plans.compiled;
        assert_eq!(
            n(&mut e, "SELECT * FROM Q WHERE D = 1.5E0;"),
            vec![Value::String("a".into())]
        );
        assert_eq!(e.pull_plans.compiled, compiled);
        // A string read as a number is not a parameter the template could take: such
        // statements are cached by text, and a bad value still gets its error.
        assert_eq!(
            n(&mut e, "SELECT * FROM Q WHERE N = '1';"),
            vec![Value::String("a".into())]
        );
        let compiled = e.pull_plans.compiled;
        assert_eq!(
            n(&mut e, "SELECT * FROM Q WHERE N = '1';"),
            vec![Value::String("a".into())]
        );
        assert_eq!(e.pull_plans.compiled, compiled);
        assert_eq!(
            n(&mut e, "SELECT * FROM Q WHERE N = '10000000000';"),
            vec![Value::String("1".into())]
        );
        let err = pull(&mut e, "SELECT * FROM Q WHERE N = 'x';")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("Error in WHERE expression: Cannot compare N (BIGINT) to 'x' (STRING)"),
            "{err}"
        );
        // Errors of a cached shape's statements are their own.
        e.session
            .insert("ksql.query.pull.table.scan.enabled".into(), "false".into());
        assert_eq!(
            pull(&mut e, "SELECT * FROM Q WHERE D = 4E0;")
                .unwrap_err()
                .to_string(),
            "WHERE clause missing key column for disjunct: (D = 4.0)"
        );
        assert_eq!(
            pull(&mut e, "SELECT * FROM Q WHERE D = 5E0;")
                .unwrap_err()
                .to_string(),
            "WHERE clause missing key column for disjunct: (D = 5.0)"
        );
    }

    #[test]
    fn widened_literals_and_window_bounds_share_plans() {
        let mut e = engine(
            "CREATE TABLE T (ID BIGINT PRIMARY KEY, D DOUBLE) WITH (kafka_topic='t', format='JSON', partitions=1);
             CREATE TABLE Q AS SELECT * FROM T;
             INSERT INTO T (ID, D) VALUES (1, 1.5);
             INSERT INTO T (ID, D) VALUES (2, 2.5);
             CREATE STREAM S (K STRING KEY, V INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);
             CREATE TABLE A AS SELECT K, COUNT(*) AS C FROM S WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY K;
             INSERT INTO S (ROWTIME, K, V) VALUES (1000, 'a', 1);
             INSERT INTO S (ROWTIME, K, V) VALUES (12000, 'a', 1);
             INSERT INTO S (ROWTIME, K, V) VALUES (3000, 'b', 1);",
        );
        let mut hits = |sqls: &[(&str, usize)]| {
            for (i, (sql, rows)) in sqls.iter().enumerate() {
                let before = e.pull_plans.compiled;
                let p = pull(&mut e, sql).unwrap();
                assert_eq!(p.rows.len(), *rows, "{sql}");
                if i > 0 {
                    assert_eq!(e.pull_plans.compiled, before, "{sql} re-planned");
                }
            }
        };
        // An INT literal against a BIGINT key or a DOUBLE column.
        hits(&[
            ("SELECT * FROM Q WHERE ID = 1;", 1),
            ("SELECT * FROM Q WHERE ID = 2;", 1),
            ("SELECT * FROM Q WHERE ID = 3;", 0),
        ]);
        hits(&[
            ("SELECT * FROM Q WHERE D > 1;", 2),
            ("SELECT * FROM Q WHERE D > 2;", 1),
        ]);
        hits(&[
            ("SELECT C FROM A WHERE K = 'a' AND WINDOWSTART >= 10000;", 1),
            ("SELECT C FROM A WHERE K = 'a' AND WINDOWSTART >= 0;", 2),
            ("SELECT C FROM A WHERE K = 'b' AND WINDOWSTART >= 0;", 1),
        ]);
        hits(&[
            ("SELECT K FROM A WHERE WINDOWSTART BETWEEN 0 AND 5000;", 2),
            (
                "SELECT K FROM A WHERE WINDOWSTART BETWEEN 10000 AND 15000;",
                1,
            ),
        ]);
    }

    #[test]
    fn the_plan_cache_is_bounded_and_cleared_by_ddl() {
        let mut e = engine(TABLE);
        // Distinct shapes (the column list differs) cannot grow the cache without bound.
        for i in 0..crate::pull_cache::MAX_ENTRIES + 100 {
            let p = pull(
                &mut e,
                &format!("SELECT ID, N2 + {i} AS X FROM Q WHERE ID = 2;"),
            )
            .unwrap();
            assert_eq!(p.rows, vec![vec![Value::Int(2), Value::Int(40 + i as i32)]]);
            assert!(e.pull_plans.len() <= crate::pull_cache::MAX_ENTRIES);
        }
        assert!(!e.pull_plans.is_empty());
        e.execute_script(
            "CREATE STREAM S2 (V INT) WITH (kafka_topic='s2', value_format='JSON', partitions=1);",
        )
        .unwrap();
        assert!(e.pull_plans.is_empty());
    }

    /// Key-lookup latency, the same key each time and a different key each time (what the
    /// shape cache serves without planning):
    /// `cargo nextest run -p runnel-engine -E 'test(pull_latency)' --run-ignored only --no-capture`
    #[test]
    #[ignore]
    fn pull_latency() {
        let mut e = engine(
            "CREATE TABLE T (ID INT PRIMARY KEY, NAME STRING, N INT) WITH (kafka_topic='t', format='JSON', partitions=1);
             CREATE TABLE Q AS SELECT ID, NAME, N * 2 AS N2 FROM T;",
        );
        let records: Vec<runnel_connect::kafka::Record> = (0..100_000)
            .map(|i| runnel_connect::kafka::Record {
                topic: "t".into(),
                key: Some(i.to_string().into_bytes()),
                value: Some(format!(r#"{{"NAME":"n{i}","N":{i}}}"#).into_bytes()),
                timestamp: 1,
                ..Default::default()
            })
            .collect();
        e.produce(records).unwrap();
        driver::run_to_completion(&mut e).unwrap();
        let report = |what: &str, mut samples: Vec<std::time::Duration>| {
            samples.sort();
            let p = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
            println!(
                "pull key lookup over 100k rows, {what}: p50 {:?}, p99 {:?}, max {:?}",
                p(0.5),
                p(0.99),
                samples[samples.len() - 1]
            );
            p(0.99)
        };
        let parsed = e.parse("SELECT NAME, N2 FROM Q WHERE ID = 4242;").unwrap();
        let mut samples = Vec::new();
        for _ in 0..20_000 {
            let t = std::time::Instant::now();
            let out = e.execute(&parsed[0]).unwrap();
            samples.push(t.elapsed());
            assert!(matches!(out, StatementOutput::Pull(ref p) if p.rows.len() == 1));
        }
        let same = report("same key", samples);
        // A different key (and statement text) each time, parsed beforehand.
        let statements: Vec<_> = (0..20_000)
            .map(|i| {
                let sql = format!(
                    "SELECT NAME, N2 FROM Q WHERE ID = {};",
                    (i * 7919) % 100_000
                );
                e.parse(&sql).unwrap().remove(0)
            })
            .collect();
        let mut samples = Vec::new();
        for (i, stmt) in statements.iter().enumerate() {
            let t = std::time::Instant::now();
            let out = e.execute(stmt).unwrap();
            samples.push(t.elapsed());
            let id = ((i * 7919) % 100_000) as i32;
            assert!(
                matches!(out, StatementOutput::Pull(ref p) if p.rows == vec![vec![Value::String(format!("n{id}")), Value::Int(id * 2)]])
            );
        }
        let distinct = report("a different key each time", samples);
        assert!(same < std::time::Duration::from_millis(1));
        assert!(distinct < std::time::Duration::from_millis(1));
    }
}

//! Type checking: AST expressions become `TypedExpr`s bound to a row layout.
//!
//! Every node of a `TypedExpr` knows its ksqlDB type, columns are resolved to positions in the
//! query's input row, implicit casts are explicit nodes, and functions are resolved to one
//! overload. The runtime compiles this tree once per query into DataFusion physical expressions;
//! `eval` interprets it per row for constant expressions (`INSERT ... VALUES`).

use crate::cast::widen;
use crate::catalog::Catalog;
use crate::functions::{FunctionRegistry, ScalarFunction};
use crate::value::{Decimal, Value};
use crate::PlanError;
use runnel_sql::{BinaryOp, Expr, Literal, SqlType, UnaryOp};

#[derive(Debug, Clone)]
pub enum TypedExpr {
    /// A column of the input row.
    Column {
        index: usize,
        ty: SqlType,
    },
    Literal {
        value: Value,
        ty: SqlType,
    },
    Negate {
        expr: Box<TypedExpr>,
        ty: SqlType,
    },
    Not(Box<TypedExpr>),
    /// `+ - * / %` on numbers. Operands have the result type, except DECIMAL results, whose
    /// operands are decimals of their own precision and scale.
    Arithmetic {
        op: BinaryOp,
        left: Box<TypedExpr>,
        right: Box<TypedExpr>,
        ty: SqlType,
    },
    /// String concatenation (`||`, or `+` on strings).
    Concat {
        left: Box<TypedExpr>,
        right: Box<TypedExpr>,
    },
    /// Comparison of two operands of the same type. NULL on either side gives FALSE, as in ksqlDB.
    Comparison {
        op: BinaryOp,
        left: Box<TypedExpr>,
        right: Box<TypedExpr>,
    },
    And(Box<TypedExpr>, Box<TypedExpr>),
    Or(Box<TypedExpr>, Box<TypedExpr>),
    IsNull {
        expr: Box<TypedExpr>,
        negated: bool,
    },
    IsDistinctFrom {
        left: Box<TypedExpr>,
        right: Box<TypedExpr>,
        negated: bool,
    },
    InList {
        expr: Box<TypedExpr>,
        list: Vec<TypedExpr>,
        negated: bool,
    },
    Like {
        expr: Box<TypedExpr>,
        pattern: Box<TypedExpr>,
        escape: Option<char>,
        negated: bool,
    },
    Case {
        whens: Vec<(TypedExpr, TypedExpr)>,
        else_result: Option<Box<TypedExpr>>,
        ty: SqlType,
    },
    Cast {
        expr: Box<TypedExpr>,
        to: SqlType,
    },
    Function {
        function: ScalarFunction,
        args: Vec<TypedExpr>,
        arg_types: Vec<SqlType>,
        ty: SqlType,
    },
    /// Array element (1-based, negative from the end) or map value.
    Subscript {
        base: Box<TypedExpr>,
        index: Box<TypedExpr>,
        ty: SqlType,
    },
    /// Struct field.
    Dereference {
        base: Box<TypedExpr>,
        field: String,
        ty: SqlType,
    },
    MakeArray {
        items: Vec<TypedExpr>,
        ty: SqlType,
    },
    MakeMap {
        entries: Vec<(TypedExpr, TypedExpr)>,
        ty: SqlType,
    },
    MakeStruct {
        fields: Vec<(String, TypedExpr)>,
        ty: SqlType,
    },
}

impl TypedExpr {
    pub fn ty(&self) -> SqlType {
        match self {
            TypedExpr::Column { ty, .. }
            | TypedExpr::Literal { ty, .. }
            | TypedExpr::Negate { ty, .. }
            | TypedExpr::Arithmetic { ty, .. }
            | TypedExpr::Case { ty, .. }
            | TypedExpr::Function { ty, .. }
            | TypedExpr::Subscript { ty, .. }
            | TypedExpr::Dereference { ty, .. }
            | TypedExpr::MakeArray { ty, .. }
            | TypedExpr::MakeMap { ty, .. }
            | TypedExpr::MakeStruct { ty, .. } => ty.clone(),
            TypedExpr::Cast { to, .. } => to.clone(),
            TypedExpr::Concat { .. } => SqlType::String,
            TypedExpr::Not(_)
            | TypedExpr::Comparison { .. }
            | TypedExpr::And(..)
            | TypedExpr::Or(..)
            | TypedExpr::IsNull { .. }
            | TypedExpr::IsDistinctFrom { .. }
            | TypedExpr::InList { .. }
            | TypedExpr::Like { .. } => SqlType::Boolean,
        }
    }

    /// True for a NULL literal whose type came from no context.
    pub fn is_null_literal(&self) -> bool {
        matches!(
            self,
            TypedExpr::Literal {
                value: Value::Null,
                ..
            }
        )
    }

    /// The children of this node, in evaluation order.
    pub fn children(&self) -> Vec<&TypedExpr> {
        match self {
            TypedExpr::Column { .. } | TypedExpr::Literal { .. } => vec![],
            TypedExpr::Negate { expr, .. }
            | TypedExpr::Not(expr)
            | TypedExpr::IsNull { expr, .. }
            | TypedExpr::Cast { expr, .. } => vec![expr],
            TypedExpr::Arithmetic { left, right, .. }
            | TypedExpr::Concat { left, right }
            | TypedExpr::Comparison { left, right, .. }
            | TypedExpr::And(left, right)
            | TypedExpr::Or(left, right)
            | TypedExpr::IsDistinctFrom { left, right, .. } => vec![left, right],
            TypedExpr::InList { expr, list, .. } => {
                let mut v = vec![expr.as_ref()];
                v.extend(list.iter());
                v
            }
            TypedExpr::Like { expr, pattern, .. } => vec![expr, pattern],
            TypedExpr::Case {
                whens, else_result, ..
            } => {
                let mut v = vec![];
                for (w, t) in whens {
                    v.push(w);
                    v.push(t);
                }
                if let Some(e) = else_result {
                    v.push(e);
                }
                v
            }
            TypedExpr::Function { args, .. } | TypedExpr::MakeArray { items: args, .. } => {
                args.iter().collect()
            }
            TypedExpr::Subscript { base, index, .. } => vec![base, index],
            TypedExpr::Dereference { base, .. } => vec![base],
            TypedExpr::MakeMap { entries, .. } => {
                entries.iter().flat_map(|(k, v)| [k, v]).collect()
            }
            TypedExpr::MakeStruct { fields, .. } => fields.iter().map(|(_, e)| e).collect(),
        }
    }

    /// True when no column is referenced (the value is the same for every row).
    pub fn is_constant(&self) -> bool {
        !matches!(self, TypedExpr::Column { .. }) && self.children().iter().all(|c| c.is_constant())
    }
}

/// A column visible to expressions: its qualifier (source name or alias) and name.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeColumn {
    pub qualifiers: Vec<String>,
    pub name: String,
    pub ty: SqlType,
}

/// The columns an expression may reference, in row order.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub columns: Vec<ScopeColumn>,
}

impl Scope {
    pub fn push(&mut self, qualifiers: Vec<String>, name: impl Into<String>, ty: SqlType) -> usize {
        self.columns.push(ScopeColumn {
            qualifiers,
            name: name.into(),
            ty,
        });
        self.columns.len() - 1
    }

    pub fn resolve(
        &self,
        qualifier: Option<&str>,
        name: &str,
    ) -> Result<(usize, &ScopeColumn), PlanError> {
        let mut found = self.columns.iter().enumerate().filter(|(_, c)| {
            c.name == name && qualifier.is_none_or(|q| c.qualifiers.iter().any(|cq| cq == q))
        });
        match (found.next(), found.next()) {
            (Some(hit), None) => Ok(hit),
            (Some(_), Some(_)) => Err(PlanError::new(format!("Column '{name}' is ambiguous."))),
            (None, _) => {
                let shown = match qualifier {
                    Some(q) => format!("{q}.{name}"),
                    None => name.to_string(),
                };
                Err(PlanError::new(format!(
                    "Column '{shown}' cannot be resolved."
                )))
            }
        }
    }
}

/// Binds AST expressions to a scope.
pub struct Analyzer<'a> {
    pub scope: &'a Scope,
    pub functions: &'a FunctionRegistry,
    pub catalog: &'a Catalog,
}

/// The type of a literal as ksqlDB infers it.
pub fn literal_value(lit: &Literal) -> Result<(Value, SqlType), PlanError> {
    Ok(match lit {
        Literal::Null => (Value::Null, SqlType::String),
        Literal::Boolean(b) => (Value::Boolean(*b), SqlType::Boolean),
        Literal::Integer(i) => match i32::try_from(*i) {
            Ok(v) => (Value::Int(v), SqlType::Int),
            Err(_) => (Value::Bigint(*i), SqlType::Bigint),
        },
        Literal::Decimal(text) => {
            let d = Decimal::parse(text)
                .ok_or_else(|| PlanError::new(format!("Invalid decimal literal: {text}")))?;
            (Value::Decimal(d), SqlType::decimal(d.precision(), d.scale))
        }
        Literal::Double(d) => (Value::Double(*d), SqlType::Double),
        Literal::String(s) => (Value::String(s.clone()), SqlType::String),
    })
}

/// The decimal type an arithmetic operation on two decimals yields (ksqlDB's rules).
pub fn decimal_result_type(op: BinaryOp, (p1, s1): (u8, u8), (p2, s2): (u8, u8)) -> SqlType {
    let (p1, s1, p2, s2) = (p1 as i32, s1 as i32, p2 as i32, s2 as i32);
    let (precision, scale) = match op {
        BinaryOp::Add | BinaryOp::Subtract => {
            let scale = s1.max(s2);
            ((p1 - s1).max(p2 - s2) + scale + 1, scale)
        }
        BinaryOp::Multiply => (p1 + p2 + 1, s1 + s2),
        BinaryOp::Divide => {
            let scale = 6.max(s1 + p2 + 1);
            (p1 - s1 + s2 + scale, scale)
        }
        _ => {
            let scale = s1.max(s2);
            ((p1 - s1).min(p2 - s2) + scale, scale)
        }
    };
    let precision = precision.clamp(1, 38);
    SqlType::decimal(precision as u8, scale.clamp(0, precision) as u8)
}

fn cast_to(expr: TypedExpr, to: &SqlType) -> TypedExpr {
    if &expr.ty() == to {
        return expr;
    }
    if let TypedExpr::Literal {
        value: Value::Null, ..
    } = expr
    {
        return TypedExpr::Literal {
            value: Value::Null,
            ty: to.clone(),
        };
    }
    TypedExpr::Cast {
        expr: Box::new(expr),
        to: to.clone(),
    }
}

/// The common type of a list of expressions (NULL literals adopt the others' type).
fn unify(exprs: &[TypedExpr], what: &str) -> Result<SqlType, PlanError> {
    let mut common: Option<SqlType> = None;
    for e in exprs.iter().filter(|e| !e.is_null_literal()) {
        let t = e.ty();
        common = Some(match common {
            None => t,
            Some(c) => widen(&c, &t)
                .ok_or_else(|| PlanError::new(format!("{what}: incompatible types {c} and {t}")))?,
        });
    }
    Ok(common.unwrap_or(SqlType::String))
}

impl Analyzer<'_> {
    pub fn analyze(&self, expr: &Expr) -> Result<TypedExpr, PlanError> {
        match expr {
            Expr::Column { qualifier, name } => {
                let (index, col) = self.scope.resolve(qualifier.as_deref(), name)?;
                Ok(TypedExpr::Column {
                    index,
                    ty: col.ty.clone(),
                })
            }
            Expr::Literal(lit) => {
                let (value, ty) = literal_value(lit)?;
                Ok(TypedExpr::Literal { value, ty })
            }
            Expr::Unary { op, expr } => {
                let inner = self.analyze(expr)?;
                match op {
                    UnaryOp::Plus => Ok(inner),
                    UnaryOp::Minus => {
                        let ty = inner.ty();
                        if !ty.is_numeric() {
                            return Err(PlanError::new(format!(
                                "Unsupported arithmetic types. {ty}"
                            )));
                        }
                        if let TypedExpr::Literal { value, ty } = &inner {
                            if let Some(v) = crate::eval::negate(value) {
                                return Ok(TypedExpr::Literal {
                                    value: v,
                                    ty: ty.clone(),
                                });
                            }
                        }
                        Ok(TypedExpr::Negate {
                            expr: Box::new(inner),
                            ty,
                        })
                    }
                    UnaryOp::Not => Ok(TypedExpr::Not(Box::new(self.boolean(inner, "NOT")?))),
                }
            }
            Expr::Binary { op, left, right } => {
                let is_null = |e: &Expr| matches!(e, Expr::Literal(Literal::Null));
                if op.is_comparison() && (is_null(left) || is_null(right)) {
                    return Err(PlanError::new(format!(
                        "Comparison with NULL not supported: {left} {} {right}",
                        op.symbol()
                    )));
                }
                let mut l = self.analyze(left)?;
                let mut r = self.analyze(right)?;
                if op.is_comparison() {
                    // ksqlDB reads a string literal compared with a number as that number.
                    let (lt, rt) = (l.ty(), r.ty());
                    if lt.is_numeric() && rt == SqlType::String {
                        r = numeric_literal(&r);
                    } else if rt.is_numeric() && lt == SqlType::String {
                        l = numeric_literal(&l);
                    }
                    let (lt, rt) = (l.ty(), r.ty());
                    let comparable = lt == rt
                        || widen(&lt, &rt).is_some()
                        || is_temporal(&lt)
                        || is_temporal(&rt);
                    if !comparable {
                        let name = match op {
                            BinaryOp::Eq => "EQUAL",
                            BinaryOp::NotEq => "NOT_EQUAL",
                            BinaryOp::Lt => "LESS_THAN",
                            BinaryOp::LtEq => "LESS_THAN_OR_EQUAL",
                            BinaryOp::Gt => "GREATER_THAN",
                            _ => "GREATER_THAN_OR_EQUAL",
                        };
                        return Err(PlanError::new(format!(
                            "Cannot compare {left} ({lt}) to {right} ({rt}) with {name}."
                        )));
                    }
                }
                let arithmetic = !op.is_comparison()
                    && !matches!(op, BinaryOp::And | BinaryOp::Or | BinaryOp::Concat);
                let types = (l.ty(), r.ty());
                self.binary(*op, l, r).map_err(|e| {
                    // ksqlDB names the expression and the operands' base types.
                    if arithmetic && e.message.contains("Unsupported arithmetic types") {
                        PlanError::new(format!(
                            "Error processing expression: {e_text}. Unsupported arithmetic types. {} {}",
                            types.0.base_name(),
                            types.1.base_name(),
                            e_text = expr
                        ))
                    } else {
                        e
                    }
                })
            }
            Expr::IsNull { expr, negated } => Ok(TypedExpr::IsNull {
                expr: Box::new(self.analyze(expr)?),
                negated: *negated,
            }),
            Expr::IsDistinctFrom {
                left,
                right,
                negated,
            } => {
                let (l, r) = self.comparable(
                    self.analyze(left)?,
                    self.analyze(right)?,
                    "IS DISTINCT FROM",
                )?;
                Ok(TypedExpr::IsDistinctFrom {
                    left: Box::new(l),
                    right: Box::new(r),
                    negated: *negated,
                })
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let e = self.analyze(expr)?;
                let lo = self.analyze(low)?;
                let hi = self.analyze(high)?;
                let ty = unify(&[e.clone(), lo.clone(), hi.clone()], "BETWEEN")?;
                let (e, lo, hi) = (cast_to(e, &ty), cast_to(lo, &ty), cast_to(hi, &ty));
                let between = TypedExpr::And(
                    Box::new(TypedExpr::Comparison {
                        op: BinaryOp::GtEq,
                        left: Box::new(e.clone()),
                        right: Box::new(lo),
                    }),
                    Box::new(TypedExpr::Comparison {
                        op: BinaryOp::LtEq,
                        left: Box::new(e),
                        right: Box::new(hi),
                    }),
                );
                Ok(if *negated {
                    TypedExpr::Not(Box::new(between))
                } else {
                    between
                })
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let e = self.analyze(expr)?;
                let target = e.ty();
                let items = list
                    .iter()
                    .map(|x| self.in_list_item(&target, x))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.prefixed("Invalid Predicate: "))?;
                Ok(TypedExpr::InList {
                    expr: Box::new(e),
                    list: items,
                    negated: *negated,
                })
            }
            Expr::Like {
                expr,
                pattern,
                escape,
                negated,
            } => {
                let e = self.analyze(expr)?;
                let p = self.analyze(pattern)?;
                for t in [e.ty(), p.ty()] {
                    if t != SqlType::String {
                        return Err(PlanError::new(format!(
                            "LIKE operands must be STRING, not {t}"
                        )));
                    }
                }
                Ok(TypedExpr::Like {
                    expr: Box::new(e),
                    pattern: Box::new(p),
                    escape: *escape,
                    negated: *negated,
                })
            }
            Expr::Case {
                operand,
                whens,
                else_result,
            } => {
                let operand = operand.as_ref().map(|o| self.analyze(o)).transpose()?;
                let mut conditions = Vec::new();
                let mut results = Vec::new();
                for (w, t) in whens {
                    let cond = match &operand {
                        Some(op) => {
                            let (l, r) = self.comparable(op.clone(), self.analyze(w)?, "CASE")?;
                            TypedExpr::Comparison {
                                op: BinaryOp::Eq,
                                left: Box::new(l),
                                right: Box::new(r),
                            }
                        }
                        None => self.boolean(self.analyze(w)?, "WHEN")?,
                    };
                    conditions.push(cond);
                    results.push(self.analyze(t)?);
                }
                let else_result = else_result.as_ref().map(|e| self.analyze(e)).transpose()?;
                if results
                    .iter()
                    .chain(else_result.iter())
                    .all(|r| r.is_null_literal())
                {
                    return Err(PlanError::new(
                        "Invalid Case expression. All case branches have NULL type",
                    ));
                }
                let mut all = results.clone();
                all.extend(else_result.iter().cloned());
                let ty = unify(
                    &all,
                    "Invalid Case expression. Type for all 'THEN' clauses should be the same",
                )?;
                Ok(TypedExpr::Case {
                    whens: conditions
                        .into_iter()
                        .zip(results.into_iter().map(|r| cast_to(r, &ty)))
                        .collect(),
                    else_result: else_result.map(|e| Box::new(cast_to(e, &ty))),
                    ty,
                })
            }
            Expr::Cast { expr, ty } => {
                let to = self.catalog.resolve_type(ty).map_err(PlanError::new)?;
                let inner = self.analyze(expr)?;
                if inner.is_null_literal() {
                    return Ok(TypedExpr::Literal {
                        value: Value::Null,
                        ty: to,
                    });
                }
                crate::cast::check_cast(&inner.ty(), &to).map_err(PlanError::new)?;
                Ok(if inner.ty() == to {
                    inner
                } else {
                    TypedExpr::Cast {
                        expr: Box::new(inner),
                        to,
                    }
                })
            }
            Expr::Function { name, args, star } => self.function(name, args, *star),
            Expr::Subscript { base, index } => {
                let b = self.analyze(base)?;
                let i = self.analyze(index)?;
                match b.ty() {
                    SqlType::Array(inner) => {
                        if !i.ty().is_integral() {
                            return Err(PlanError::new("Array index must be an INTEGER."));
                        }
                        let i = cast_to(i, &SqlType::Int);
                        Ok(TypedExpr::Subscript {
                            base: Box::new(b),
                            index: Box::new(i),
                            ty: *inner,
                        })
                    }
                    SqlType::Map(k, v) => {
                        let i = cast_to(i, &k);
                        Ok(TypedExpr::Subscript {
                            base: Box::new(b),
                            index: Box::new(i),
                            ty: *v,
                        })
                    }
                    other => Err(PlanError::new(format!(
                        "Cannot subscript a value of type {other}"
                    ))),
                }
            }
            Expr::Dereference { base, field } => {
                let b = self.analyze(base)?;
                match b.ty() {
                    SqlType::Struct(fields) => {
                        let f = fields
                            .iter()
                            .find(|f| &f.name == field)
                            .or_else(|| fields.iter().find(|f| f.name.eq_ignore_ascii_case(field)))
                            .ok_or_else(|| {
                                PlanError::new(format!(
                                    "Could not find field '{field}' in '{base}'."
                                ))
                            })?;
                        Ok(TypedExpr::Dereference {
                            base: Box::new(b),
                            field: f.name.clone(),
                            ty: f.ty.clone(),
                        })
                    }
                    other => Err(PlanError::new(format!(
                        "Expected STRUCT type for dereference of '{base}', got {other}"
                    ))),
                }
            }
            Expr::Array(items) => {
                let items = items
                    .iter()
                    .map(|x| self.analyze(x))
                    .collect::<Result<Vec<_>, _>>()?;
                let inner = unify(&items, "invalid input syntax for type ARRAY")?;
                Ok(TypedExpr::MakeArray {
                    items: items.into_iter().map(|x| cast_to(x, &inner)).collect(),
                    ty: SqlType::Array(Box::new(inner)),
                })
            }
            Expr::Map(entries) => {
                let keys = entries
                    .iter()
                    .map(|(k, _)| self.analyze(k))
                    .collect::<Result<Vec<_>, _>>()?;
                let vals = entries
                    .iter()
                    .map(|(_, v)| self.analyze(v))
                    .collect::<Result<Vec<_>, _>>()?;
                let kt = unify(&keys, "invalid input syntax for type MAP")?;
                let vt = unify(&vals, "invalid input syntax for type MAP")?;
                Ok(TypedExpr::MakeMap {
                    entries: keys
                        .into_iter()
                        .zip(vals)
                        .map(|(k, v)| (cast_to(k, &kt), cast_to(v, &vt)))
                        .collect(),
                    ty: SqlType::Map(Box::new(kt), Box::new(vt)),
                })
            }
            Expr::Struct(fields) => {
                let mut typed = Vec::new();
                let mut types = Vec::new();
                for (name, e) in fields {
                    let t = self.analyze(e)?;
                    types.push(runnel_sql::StructField::new(name.clone(), t.ty()));
                    typed.push((name.clone(), t));
                }
                Ok(TypedExpr::MakeStruct {
                    fields: typed,
                    ty: SqlType::Struct(types),
                })
            }
            Expr::Lambda { .. } | Expr::LambdaVariable(_) => {
                Err(PlanError::new("Lambda functions are not supported yet."))
            }
            Expr::AtTimeZone { .. } => Err(PlanError::new("AT TIME ZONE is not supported yet.")),
        }
    }

    /// One element of `x IN (...)`: literals are coerced to the type of `x` (ksqlDB reads string
    /// literals as numbers or booleans there), other expressions must be comparable with it.
    fn in_list_item(&self, target: &SqlType, item: &Expr) -> Result<TypedExpr, PlanError> {
        let typed = self.analyze(item)?;
        if typed.is_null_literal() {
            return Ok(TypedExpr::Literal {
                value: Value::Null,
                ty: target.clone(),
            });
        }
        let ty = typed.ty();
        let no_operator = || {
            PlanError::new(format!(
                "operator does not exist: {target} = {ty} ({item})\nHint: You might need to add explicit type casts."
            ))
        };
        let bad_syntax = |text: &str| {
            PlanError::new(format!(
                "invalid input syntax for type {}: \"{text}\".",
                target.base_name()
            ))
        };
        if let TypedExpr::Literal { value, .. } = &typed {
            return match (target, value) {
                (SqlType::String, v) => {
                    let text = match (item, v) {
                        (Expr::Literal(Literal::Decimal(t)), _) => t.clone(),
                        (_, v) => v.to_string(),
                    };
                    Ok(TypedExpr::Literal {
                        value: Value::String(text),
                        ty: SqlType::String,
                    })
                }
                (t, Value::String(text)) if t.is_numeric() => {
                    let trimmed = text.trim();
                    match Decimal::parse(trimmed) {
                        Some(d) => Ok(TypedExpr::Literal {
                            value: Value::Decimal(d),
                            ty: SqlType::decimal(d.precision(), d.scale),
                        }),
                        None => match trimmed.parse::<f64>() {
                            Ok(f) => Ok(TypedExpr::Literal {
                                value: Value::Double(f),
                                ty: SqlType::Double,
                            }),
                            Err(_) => Err(bad_syntax(text)),
                        },
                    }
                }
                (SqlType::Boolean, Value::String(text)) => match crate::cast::parse_boolean(text) {
                    Some(b) => Ok(TypedExpr::Literal {
                        value: Value::Boolean(b),
                        ty: SqlType::Boolean,
                    }),
                    None => Err(bad_syntax(text)),
                },
                (t, _) if t.is_numeric() && ty.is_numeric() => Ok(typed),
                (t, _) if *t == ty => Ok(typed),
                (t, Value::String(_)) if !t.is_primitive() => Ok(cast_to(typed, t)),
                _ if widen(target, &ty).is_some() => Ok(cast_to(typed, target)),
                _ => Err(no_operator()),
            };
        }
        if (target.is_numeric() && ty.is_numeric()) || *target == ty {
            return Ok(typed);
        }
        match widen(target, &ty) {
            Some(w) if w == *target => Ok(cast_to(typed, target)),
            Some(_) if !target.is_primitive() => Ok(typed),
            _ => Err(no_operator()),
        }
    }

    fn boolean(&self, e: TypedExpr, what: &str) -> Result<TypedExpr, PlanError> {
        match e.ty() {
            SqlType::Boolean => Ok(e),
            _ if e.is_null_literal() => Ok(cast_to(e, &SqlType::Boolean)),
            other => Err(PlanError::new(format!(
                "{what} requires a BOOLEAN operand, got {other}"
            ))),
        }
    }

    /// Casts two operands to their common type for a comparison.
    fn comparable(
        &self,
        l: TypedExpr,
        r: TypedExpr,
        what: &str,
    ) -> Result<(TypedExpr, TypedExpr), PlanError> {
        let (lt, rt) = (l.ty(), r.ty());
        if l.is_null_literal() {
            return Ok((cast_to(l, &rt), r));
        }
        if r.is_null_literal() {
            return Ok((l, cast_to(r, &lt)));
        }
        // ksqlDB compares temporal columns with string literals by parsing the string.
        if is_temporal(&lt) && rt == SqlType::String {
            return Ok((l, cast_to(r, &lt)));
        }
        if is_temporal(&rt) && lt == SqlType::String {
            return Ok((cast_to(l, &rt), r));
        }
        let ty = widen(&lt, &rt)
            .ok_or_else(|| PlanError::new(format!("Cannot compare {lt} to {rt} with {what}.")))?;
        Ok((cast_to(l, &ty), cast_to(r, &ty)))
    }

    fn binary(&self, op: BinaryOp, l: TypedExpr, r: TypedExpr) -> Result<TypedExpr, PlanError> {
        match op {
            BinaryOp::And | BinaryOp::Or => {
                let l = Box::new(self.boolean(l, op.symbol())?);
                let r = Box::new(self.boolean(r, op.symbol())?);
                Ok(if op == BinaryOp::And {
                    TypedExpr::And(l, r)
                } else {
                    TypedExpr::Or(l, r)
                })
            }
            BinaryOp::Concat => {
                let (l, r) = (cast_to(l, &SqlType::String), cast_to(r, &SqlType::String));
                Ok(TypedExpr::Concat {
                    left: Box::new(l),
                    right: Box::new(r),
                })
            }
            op if op.is_comparison() => {
                let (l, r) = self.comparable(l, r, op.symbol())?;
                Ok(TypedExpr::Comparison {
                    op,
                    left: Box::new(l),
                    right: Box::new(r),
                })
            }
            _ => {
                let (lt, rt) = (l.ty(), r.ty());
                if op == BinaryOp::Add && (lt == SqlType::String || rt == SqlType::String) {
                    if lt == SqlType::String && rt == SqlType::String {
                        return Ok(TypedExpr::Concat {
                            left: Box::new(l),
                            right: Box::new(r),
                        });
                    }
                    return Err(PlanError::new(format!(
                        "Error processing expression: ({} + {}). Unsupported arithmetic types. {lt} {rt}",
                        "left", "right"
                    )));
                }
                let lt = if l.is_null_literal() { rt.clone() } else { lt };
                let rt = if r.is_null_literal() { lt.clone() } else { rt };
                if !lt.is_numeric() || !rt.is_numeric() {
                    return Err(PlanError::new(format!(
                        "Unsupported arithmetic types. {lt} {rt}"
                    )));
                }
                let ty = match (&lt, &rt) {
                    (SqlType::Double, _) | (_, SqlType::Double) => SqlType::Double,
                    (SqlType::Decimal { .. }, _) | (_, SqlType::Decimal { .. }) => {
                        let (a, b) = (lt.as_decimal(), rt.as_decimal());
                        let (Some(a), Some(b)) = (a, b) else {
                            return Err(PlanError::new("Unsupported arithmetic types."));
                        };
                        let ty = decimal_result_type(op, a, b);
                        let (l, r) = (
                            cast_to(l, &SqlType::decimal(a.0, a.1)),
                            cast_to(r, &SqlType::decimal(b.0, b.1)),
                        );
                        return Ok(TypedExpr::Arithmetic {
                            op,
                            left: Box::new(l),
                            right: Box::new(r),
                            ty,
                        });
                    }
                    (SqlType::Bigint, _) | (_, SqlType::Bigint) => SqlType::Bigint,
                    _ => SqlType::Int,
                };
                Ok(TypedExpr::Arithmetic {
                    op,
                    left: Box::new(cast_to(l, &ty)),
                    right: Box::new(cast_to(r, &ty)),
                    ty,
                })
            }
        }
    }

    fn function(&self, name: &str, args: &[Expr], star: bool) -> Result<TypedExpr, PlanError> {
        let function = self
            .functions
            .scalar(name)
            .ok_or_else(|| {
                PlanError::new(format!("Can't find any functions with the name '{name}'"))
            })?
            .clone();
        if star {
            // `F(*)` is `F()` for scalar functions.
            (function.resolve)(&[]).map_err(PlanError::new)?;
            return Err(PlanError::new(format!(
                "Function '{name}' does not accept '*'."
            )));
        }
        let mut typed = Vec::with_capacity(args.len());
        for (i, a) in args.iter().enumerate() {
            // Interval units (`DATEADD(DAYS, 1, d)`) arrive as bare words: pass them as strings.
            if i == 0 && INTERVAL_FUNCTIONS.contains(&function.name.as_str()) {
                if let Expr::Column {
                    qualifier: None,
                    name,
                } = a
                {
                    if TIME_UNITS.contains(&name.as_str()) {
                        typed.push(TypedExpr::Literal {
                            value: Value::String(name.clone()),
                            ty: SqlType::String,
                        });
                        continue;
                    }
                }
            }
            typed.push(self.analyze(a)?);
        }
        // A NULL literal fits any parameter; the resolver says which type it becomes.
        let arg_type = |t: &TypedExpr| {
            if t.is_null_literal() {
                SqlType::Custom("NULL".into())
            } else {
                t.ty()
            }
        };
        let types: Vec<SqlType> = typed.iter().map(arg_type).collect();
        let resolved = match (function.resolve)(&types) {
            Ok(r) => r,
            Err(message) => {
                // ksqlDB also accepts string literals that read as numbers where numbers are expected.
                let coerced: Vec<TypedExpr> = typed.iter().map(numeric_literal).collect();
                let mut coerced_types: Vec<SqlType> = coerced.iter().map(arg_type).collect();
                // A NULL that fits several overloads takes the first one's type (STRING before BYTES).
                if message.contains("ambiguous") {
                    for t in coerced_types.iter_mut() {
                        if *t == SqlType::Custom("NULL".into()) {
                            *t = SqlType::String;
                        }
                    }
                }
                if coerced_types == types {
                    return Err(PlanError::new(message));
                }
                let r = (function.resolve)(&coerced_types).map_err(|_| PlanError::new(message))?;
                typed = coerced;
                r
            }
        };
        let args = typed
            .into_iter()
            .zip(
                resolved
                    .arg_types
                    .iter()
                    .chain(std::iter::repeat(&SqlType::String)),
            )
            .map(|(a, t)| cast_to(a, t))
            .collect();
        Ok(TypedExpr::Function {
            function,
            args,
            arg_types: resolved.arg_types,
            ty: resolved.return_type,
        })
    }
}

const INTERVAL_FUNCTIONS: [&str; 6] = [
    "DATEADD",
    "DATESUB",
    "TIMEADD",
    "TIMESUB",
    "TIMESTAMPADD",
    "TIMESTAMPSUB",
];
const TIME_UNITS: [&str; 14] = [
    "MILLISECOND",
    "MILLISECONDS",
    "SECOND",
    "SECONDS",
    "MINUTE",
    "MINUTES",
    "HOUR",
    "HOURS",
    "DAY",
    "DAYS",
    "MONTH",
    "MONTHS",
    "YEAR",
    "YEARS",
];

/// A string literal holding a number, as the numeric literal it reads as; anything else unchanged.
fn numeric_literal(e: &TypedExpr) -> TypedExpr {
    if let TypedExpr::Literal {
        value: Value::String(s),
        ..
    } = e
    {
        let text = s.trim();
        let lit = if let Ok(i) = text.parse::<i64>() {
            Some(Literal::Integer(i))
        } else if text.contains(['e', 'E']) {
            text.parse::<f64>().ok().map(Literal::Double)
        } else if Decimal::parse(text).is_some() && text.contains('.') {
            Some(Literal::Decimal(text.to_string()))
        } else {
            None
        };
        if let Some(Ok((value, ty))) = lit.as_ref().map(literal_value) {
            return TypedExpr::Literal { value, ty };
        }
    }
    e.clone()
}

fn is_temporal(t: &SqlType) -> bool {
    matches!(t, SqlType::Timestamp | SqlType::Date | SqlType::Time)
}

//! Compiling typed expressions into DataFusion physical expressions, once per query.
//!
//! Nodes whose ksqlDB semantics match Arrow kernels (column references, primitive literals,
//! integer and double arithmetic, comparisons of primitives, AND/OR/NOT, IS NULL) become DataFusion's
//! own vectorised expressions. The others (casts, decimal arithmetic, functions, subscripts,
//! constructors, LIKE, CASE) become a `RowWiseExpr`: its children are still vectorised, and the
//! node itself applies `runnel_plan::eval::apply` per row. A failure in one row (a function error,
//! a bad cast) makes that row's value NULL and is reported to the `ErrorSink`, as ksqlDB does,
//! instead of failing the batch.

use crate::convert::{data_type, value_at, values_to_array};
use crate::RuntimeError;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::expressions::{
    BinaryExpr, Column, IsNotNullExpr, IsNullExpr, Literal, NotExpr,
};
use datafusion::physical_expr::PhysicalExpr;
use runnel_plan::eval::apply;
use runnel_plan::functions::FunctionConfig;
use runnel_plan::{TypedExpr, Value};
use runnel_sql::{BinaryOp, SqlType};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Per-row evaluation failures of one batch: (row index, message).
#[derive(Debug, Clone, Default)]
pub struct ErrorSink(Arc<Mutex<Vec<(usize, String)>>>);

impl ErrorSink {
    pub fn push(&self, row: usize, message: String) {
        if let Ok(mut v) = self.0.lock() {
            v.push((row, message));
        }
    }

    /// Takes the errors collected so far.
    pub fn drain(&self) -> Vec<(usize, String)> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

/// A compiled expression and its ksqlDB type.
#[derive(Debug, Clone)]
pub struct CompiledExpr {
    pub physical: Arc<dyn PhysicalExpr>,
    pub ty: SqlType,
    /// The expression it was compiled from (for the row-by-row fallback).
    pub typed: TypedExpr,
}

impl CompiledExpr {
    /// Evaluates vectorised; if a kernel fails for the batch (e.g. an integer division by zero
    /// in one row), evaluates row by row so only the failing rows become NULL (and are reported).
    pub fn evaluate_or_per_row(
        &self,
        batch: &RecordBatch,
        input_types: &[SqlType],
        config: &FunctionConfig,
        errors: &ErrorSink,
    ) -> Result<ArrayRef, RuntimeError> {
        match self.evaluate(batch) {
            Ok(a) => Ok(a),
            Err(_) => evaluate_row_by_row(&self.typed, batch, input_types, config, errors),
        }
    }

    /// Evaluates over a batch into an array of the batch's length.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef, RuntimeError> {
        let value = self.physical.evaluate(batch)?;
        Ok(value.into_array(batch.num_rows())?)
    }
}

pub struct Compiler {
    pub config: FunctionConfig,
    pub errors: ErrorSink,
    /// Names of the input columns (for DataFusion's Column expressions).
    pub column_names: Vec<String>,
    /// ksqlDB types of the input columns.
    pub input_types: Arc<Vec<SqlType>>,
}

fn primitive_literal(value: &Value, ty: &SqlType) -> Option<ScalarValue> {
    Some(match (value, ty) {
        (Value::Null, t) if t.is_primitive() => ScalarValue::try_from(&data_type(t)).ok()?,
        (Value::Boolean(b), _) => ScalarValue::Boolean(Some(*b)),
        (Value::Int(i), SqlType::Int) => ScalarValue::Int32(Some(*i)),
        (Value::Bigint(i), SqlType::Bigint) => ScalarValue::Int64(Some(*i)),
        (Value::Double(d), SqlType::Double) => ScalarValue::Float64(Some(*d)),
        (Value::String(s), SqlType::String) => ScalarValue::Utf8(Some(s.clone())),
        (Value::Decimal(d), SqlType::Decimal { precision, scale }) => {
            ScalarValue::Decimal128(Some(d.rescale(*scale)?.unscaled), *precision, *scale as i8)
        }
        _ => return None,
    })
}

fn vectorisable_type(ty: &SqlType) -> bool {
    matches!(ty, SqlType::Int | SqlType::Bigint | SqlType::Double)
}

fn comparable_type(ty: &SqlType) -> bool {
    matches!(
        ty,
        SqlType::Boolean
            | SqlType::Int
            | SqlType::Bigint
            | SqlType::Double
            | SqlType::String
            | SqlType::Date
            | SqlType::Time
            | SqlType::Timestamp
            | SqlType::Decimal { .. }
    )
}

impl Compiler {
    pub fn new(columns: Vec<(String, SqlType)>, config: FunctionConfig) -> Self {
        let (column_names, input_types): (Vec<_>, Vec<_>) = columns.into_iter().unzip();
        Compiler {
            config,
            errors: ErrorSink::default(),
            column_names,
            input_types: Arc::new(input_types),
        }
    }

    pub fn compile(&self, expr: &TypedExpr) -> Result<CompiledExpr, RuntimeError> {
        Ok(CompiledExpr {
            physical: self.physical(expr)?,
            ty: expr.ty(),
            typed: expr.clone(),
        })
    }

    fn physical(&self, expr: &TypedExpr) -> Result<Arc<dyn PhysicalExpr>, RuntimeError> {
        Ok(match expr {
            TypedExpr::Column { index, .. } => {
                let name = self.column_names.get(*index).cloned().unwrap_or_default();
                Arc::new(Column::new(&name, *index))
            }
            TypedExpr::Literal { value, ty } => match primitive_literal(value, ty) {
                Some(scalar) => Arc::new(Literal::new(scalar)),
                None => self.row_wise(expr)?,
            },
            TypedExpr::Arithmetic {
                op,
                left,
                right,
                ty,
            } if vectorisable_type(ty) && *op != BinaryOp::Divide && *op != BinaryOp::Modulo => {
                let op = match op {
                    BinaryOp::Add => Operator::Plus,
                    BinaryOp::Subtract => Operator::Minus,
                    _ => Operator::Multiply,
                };
                Arc::new(BinaryExpr::new(
                    self.physical(left)?,
                    op,
                    self.physical(right)?,
                ))
            }
            TypedExpr::Arithmetic {
                op,
                left,
                right,
                ty: SqlType::Double,
            } => {
                let op = if *op == BinaryOp::Divide {
                    Operator::Divide
                } else {
                    Operator::Modulo
                };
                Arc::new(BinaryExpr::new(
                    self.physical(left)?,
                    op,
                    self.physical(right)?,
                ))
            }
            TypedExpr::Comparison { op, left, right } if comparable_type(&left.ty()) => {
                let op = match op {
                    BinaryOp::Eq => Operator::Eq,
                    BinaryOp::NotEq => Operator::NotEq,
                    BinaryOp::Lt => Operator::Lt,
                    BinaryOp::LtEq => Operator::LtEq,
                    BinaryOp::Gt => Operator::Gt,
                    _ => Operator::GtEq,
                };
                let cmp = Arc::new(BinaryExpr::new(
                    self.physical(left)?,
                    op,
                    self.physical(right)?,
                ));
                Arc::new(NullAsFalse { child: cmp })
            }
            TypedExpr::And(l, r) => Arc::new(BinaryExpr::new(
                self.physical(l)?,
                Operator::And,
                self.physical(r)?,
            )),
            TypedExpr::Or(l, r) => Arc::new(BinaryExpr::new(
                self.physical(l)?,
                Operator::Or,
                self.physical(r)?,
            )),
            TypedExpr::Not(e) => Arc::new(NotExpr::new(self.physical(e)?)),
            TypedExpr::IsNull {
                expr,
                negated: false,
            } => Arc::new(IsNullExpr::new(self.physical(expr)?)),
            TypedExpr::IsNull {
                expr,
                negated: true,
            } => Arc::new(IsNotNullExpr::new(self.physical(expr)?)),
            _ => self.row_wise(expr)?,
        })
    }

    fn row_wise(&self, expr: &TypedExpr) -> Result<Arc<dyn PhysicalExpr>, RuntimeError> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        // CASE, AND and OR are lazy, so they are interpreted as a whole over the row of their
        // children's inputs; everything else applies to vectorised children.
        let lazy = matches!(expr, TypedExpr::Case { .. });
        let children = if lazy {
            vec![]
        } else {
            expr.children()
                .into_iter()
                .map(|c| self.compile(c))
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(Arc::new(RowWiseExpr {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            node: expr.clone(),
            lazy,
            children,
            out_type: data_type(&expr.ty()),
            config: self.config.clone(),
            errors: self.errors.clone(),
            input_types: self.input_types.clone(),
        }))
    }
}

/// Maps NULL to FALSE: ksqlDB's comparisons are false, not unknown, when an operand is NULL.
#[derive(Debug)]
struct NullAsFalse {
    child: Arc<dyn PhysicalExpr>,
}

impl PartialEq for NullAsFalse {
    fn eq(&self, other: &Self) -> bool {
        self.child.as_ref() == other.child.as_ref()
    }
}
impl Eq for NullAsFalse {}
impl Hash for NullAsFalse {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.child.hash(state)
    }
}

impl fmt::Display for NullAsFalse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "coalesce({}, false)", self.child)
    }
}

impl PhysicalExpr for NullAsFalse {
    fn data_type(&self, _: &Schema) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }
    fn nullable(&self, _: &Schema) -> DfResult<bool> {
        Ok(false)
    }
    fn evaluate(&self, batch: &RecordBatch) -> DfResult<ColumnarValue> {
        let array = self.child.evaluate(batch)?.into_array(batch.num_rows())?;
        let bools = array
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| {
                datafusion::error::DataFusionError::Internal("comparison is not boolean".into())
            })?;
        if bools.null_count() == 0 {
            return Ok(ColumnarValue::Array(array));
        }
        let out: BooleanArray = bools.iter().map(|b| Some(b.unwrap_or(false))).collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.child]
    }
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> DfResult<Arc<dyn PhysicalExpr>> {
        let child = children
            .into_iter()
            .next()
            .unwrap_or_else(|| self.child.clone());
        Ok(Arc::new(NullAsFalse { child }))
    }
    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// One expression node evaluated per row with ksqlDB's reference semantics.
struct RowWiseExpr {
    id: u64,
    node: TypedExpr,
    /// Interpret the whole subtree against the input row (for lazy nodes such as CASE).
    lazy: bool,
    children: Vec<CompiledExpr>,
    out_type: DataType,
    config: FunctionConfig,
    errors: ErrorSink,
    input_types: Arc<Vec<SqlType>>,
}

impl fmt::Debug for RowWiseExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RowWise#{}", self.id)
    }
}
impl PartialEq for RowWiseExpr {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for RowWiseExpr {}
impl Hash for RowWiseExpr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state)
    }
}
impl fmt::Display for RowWiseExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ksql_row_expr#{}", self.id)
    }
}

impl RowWiseExpr {
    fn eval_rows(&self, batch: &RecordBatch) -> Result<ArrayRef, RuntimeError> {
        let rows = batch.num_rows();
        let ty = self.node.ty();
        let mut out = Vec::with_capacity(rows);
        if self.lazy {
            // Interpret against the whole input row.
            for row in 0..rows {
                let input: Vec<Value> = self
                    .input_types
                    .iter()
                    .enumerate()
                    .map(|(c, t)| value_at(batch.column(c).as_ref(), row, t))
                    .collect();
                match runnel_plan::eval::eval(&self.node, &input, &self.config) {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        self.errors.push(row, e);
                        out.push(Value::Null);
                    }
                }
            }
        } else {
            let arrays = self
                .children
                .iter()
                .map(|c| c.evaluate(batch))
                .collect::<Result<Vec<_>, _>>()?;
            let mut args = Vec::with_capacity(arrays.len());
            for row in 0..rows {
                args.clear();
                for (a, c) in arrays.iter().zip(self.children.iter()) {
                    args.push(value_at(a.as_ref(), row, &c.ty));
                }
                match apply(&self.node, &args, &self.config) {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        self.errors.push(row, e);
                        out.push(Value::Null);
                    }
                }
            }
        }
        // A value of the wrong shape from a function becomes NULL rather than failing the batch.
        match values_to_array(&out, &ty) {
            Ok(a) => Ok(a),
            Err(_) => {
                let fixed: Vec<Value> = out
                    .into_iter()
                    .enumerate()
                    .map(
                        |(row, v)| match values_to_array(std::slice::from_ref(&v), &ty) {
                            Ok(_) => v,
                            Err(e) => {
                                self.errors.push(row, e.to_string());
                                Value::Null
                            }
                        },
                    )
                    .collect();
                values_to_array(&fixed, &ty)
            }
        }
    }
}

impl PhysicalExpr for RowWiseExpr {
    fn data_type(&self, _: &Schema) -> DfResult<DataType> {
        Ok(self.out_type.clone())
    }
    fn nullable(&self, _: &Schema) -> DfResult<bool> {
        Ok(true)
    }
    fn evaluate(&self, batch: &RecordBatch) -> DfResult<ColumnarValue> {
        self.eval_rows(batch)
            .map(ColumnarValue::Array)
            .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))
    }
    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        self.children.iter().map(|c| &c.physical).collect()
    }
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> DfResult<Arc<dyn PhysicalExpr>> {
        let mut new = RowWiseExpr {
            id: self.id,
            node: self.node.clone(),
            lazy: self.lazy,
            children: self.children.clone(),
            out_type: self.out_type.clone(),
            config: self.config.clone(),
            errors: self.errors.clone(),
            input_types: self.input_types.clone(),
        };
        for (slot, child) in new.children.iter_mut().zip(children) {
            slot.physical = child;
        }
        Ok(Arc::new(new))
    }
    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Runs the whole expression row by row against a batch whose schema carries ksqlDB types, used
/// when a vectorised kernel fails for the batch (e.g. integer division by zero in one row): the
/// failing rows become NULL and are reported, the others keep their values.
pub fn evaluate_row_by_row(
    expr: &TypedExpr,
    batch: &RecordBatch,
    input_types: &[SqlType],
    config: &FunctionConfig,
    errors: &ErrorSink,
) -> Result<ArrayRef, RuntimeError> {
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let input: Vec<Value> = input_types
            .iter()
            .enumerate()
            .map(|(c, t)| value_at(batch.column(c).as_ref(), row, t))
            .collect();
        match runnel_plan::eval::eval(expr, &input, config) {
            Ok(v) => out.push(v),
            Err(e) => {
                errors.push(row, e);
                out.push(Value::Null);
            }
        }
    }
    values_to_array(&out, &expr.ty())
}

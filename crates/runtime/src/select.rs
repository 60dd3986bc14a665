//! The stateless operator: filter then project, over one micro-batch.

use crate::compile::{CompiledExpr, Compiler, ErrorSink};
use crate::convert::{data_type, row_column_to_array, value_at, values_to_array};
use crate::RuntimeError;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{filter_record_batch, take};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use runnel_plan::functions::FunctionConfig;
use runnel_plan::query::SelectPlan;
use runnel_plan::{TypedExpr, Value};
use runnel_sql::SqlType;
use std::sync::Arc;

/// The Arrow schema of rows with these columns (all nullable).
pub fn arrow_schema(columns: &[(String, SqlType)]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, t)| Field::new(n, data_type(t), true))
            .collect::<Vec<_>>(),
    ))
}

/// Builds a batch from rows of values laid out as `columns`.
pub fn rows_to_batch(
    schema: &SchemaRef,
    types: &[SqlType],
    rows: &[Vec<Value>],
) -> Result<RecordBatch, RuntimeError> {
    let mut arrays = Vec::with_capacity(types.len());
    let mut column = Vec::with_capacity(rows.len());
    for (c, ty) in types.iter().enumerate() {
        if let Some(array) = row_column_to_array(rows, c, ty) {
            arrays.push(array?);
            continue;
        }
        column.clear();
        column.extend(
            rows.iter()
                .map(|r| r.get(c).cloned().unwrap_or(Value::Null)),
        );
        arrays.push(values_to_array(&column, ty)?);
    }
    let options =
        datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        arrays,
        &options,
    )?)
}

/// Reads a batch back into rows of values.
pub fn batch_to_rows(batch: &RecordBatch, types: &[SqlType]) -> Vec<Vec<Value>> {
    (0..batch.num_rows())
        .map(|r| {
            types
                .iter()
                .enumerate()
                .map(|(c, t)| value_at(batch.column(c).as_ref(), r, t))
                .collect()
        })
        .collect()
}

/// The result of one batch: output rows as columns, which input row each came from, and the
/// per-row evaluation errors (by input row).
pub struct SelectOutput {
    pub columns: Vec<ArrayRef>,
    pub input_rows: Vec<usize>,
    /// Input rows the filter rejected (tables turn them into tombstones).
    pub rejected: Vec<usize>,
    pub errors: Vec<(usize, String)>,
}

impl SelectOutput {
    pub fn num_rows(&self) -> usize {
        self.input_rows.len()
    }
}

pub struct SelectOperator {
    input_schema: SchemaRef,
    input_types: Vec<SqlType>,
    output_types: Vec<SqlType>,
    filter: Option<CompiledExpr>,
    projection: Vec<CompiledExpr>,
    errors: ErrorSink,
    config: FunctionConfig,
}

impl SelectOperator {
    pub fn new(plan: &SelectPlan, config: FunctionConfig) -> Result<Self, RuntimeError> {
        let columns: Vec<(String, SqlType)> = plan
            .input
            .fields
            .iter()
            .map(|(_, n, t)| (n.clone(), t.clone()))
            .collect();
        let compiler = Compiler::new(columns.clone(), config.clone());
        let compile = |t: &TypedExpr| compiler.compile(t);
        let filter = plan.filter.as_ref().map(compile).transpose()?;
        let projection = plan
            .projection
            .iter()
            .map(|p| compile(&p.expr))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SelectOperator {
            input_schema: arrow_schema(&columns),
            input_types: columns.into_iter().map(|(_, t)| t).collect(),
            output_types: plan.projection.iter().map(|p| p.expr.ty()).collect(),
            filter,
            projection,
            errors: compiler.errors.clone(),
            config,
        })
    }

    pub fn input_schema(&self) -> &SchemaRef {
        &self.input_schema
    }

    pub fn input_types(&self) -> &[SqlType] {
        &self.input_types
    }

    pub fn output_types(&self) -> &[SqlType] {
        &self.output_types
    }

    fn evaluate(&self, c: &CompiledExpr, batch: &RecordBatch) -> Result<ArrayRef, RuntimeError> {
        c.evaluate_or_per_row(batch, &self.input_types, &self.config, &self.errors)
    }

    pub fn process(&self, batch: &RecordBatch) -> Result<SelectOutput, RuntimeError> {
        let rows_in = batch.num_rows();
        let mut errors = Vec::new();
        let (batch, input_rows) = match &self.filter {
            Some(f) => {
                let mask = self.evaluate(f, batch)?;
                errors.extend(self.errors.drain());
                let mask = mask
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or_else(|| RuntimeError::Internal("filter is not boolean".into()))?
                    .clone();
                let rows: Vec<usize> = (0..mask.len())
                    .filter(|&i| mask.is_valid(i) && mask.value(i))
                    .collect();
                if rows.len() == batch.num_rows() {
                    (batch.clone(), rows)
                } else {
                    (filter_record_batch(batch, &mask)?, rows)
                }
            }
            None => (batch.clone(), (0..batch.num_rows()).collect()),
        };
        let mut columns = Vec::with_capacity(self.projection.len());
        for p in &self.projection {
            columns.push(self.evaluate(p, &batch)?);
        }
        // Errors are reported by the filtered batch's row: map them back to input rows.
        errors.extend(
            self.errors
                .drain()
                .into_iter()
                .map(|(r, m)| (input_rows.get(r).copied().unwrap_or(r), m)),
        );
        let mut passed = input_rows.iter().peekable();
        let rejected = (0..rows_in)
            .filter(|r| {
                if passed.peek() == Some(&r) {
                    passed.next();
                    false
                } else {
                    true
                }
            })
            .collect();
        Ok(SelectOutput {
            columns,
            input_rows,
            rejected,
            errors,
        })
    }
}

/// Selects rows of an array by index (used to carry input columns to outputs).
pub fn take_rows(array: &dyn Array, rows: &[usize]) -> Result<ArrayRef, RuntimeError> {
    let indices = UInt32Array::from(rows.iter().map(|r| *r as u32).collect::<Vec<_>>());
    Ok(take(array, &indices, None)?)
}

//! Moving values between ksqlDB types and Arrow arrays.
//!
//! The mapping is fixed: BOOLEAN → Boolean, INT → Int32, BIGINT → Int64, DOUBLE → Float64,
//! DECIMAL(p, s) → Decimal128(p, s), STRING → Utf8, BYTES → Binary, DATE → Date32,
//! TIME → Time32(ms), TIMESTAMP → Timestamp(ms), ARRAY → List, MAP → Map, STRUCT → Struct.

use crate::RuntimeError;
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array,
    Int32Array, Int64Array, ListArray, MapArray, StringArray, StructArray, Time32MillisecondArray,
    TimestampMillisecondArray,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use runnel_plan::{Decimal, Value};
use runnel_sql::SqlType;
use std::sync::Arc;

/// The Arrow type that holds a ksqlDB type.
pub fn data_type(ty: &SqlType) -> DataType {
    match ty {
        SqlType::Boolean => DataType::Boolean,
        SqlType::Int => DataType::Int32,
        SqlType::Bigint => DataType::Int64,
        SqlType::Double => DataType::Float64,
        SqlType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale as i8),
        SqlType::String | SqlType::Custom(_) => DataType::Utf8,
        SqlType::Bytes => DataType::Binary,
        SqlType::Date => DataType::Date32,
        SqlType::Time => DataType::Time32(TimeUnit::Millisecond),
        SqlType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
        SqlType::Array(inner) => {
            DataType::List(Arc::new(Field::new("item", data_type(inner), true)))
        }
        SqlType::Map(k, v) => DataType::Map(map_entries_field(k, v), false),
        SqlType::Struct(fields) => DataType::Struct(struct_fields(fields)),
    }
}

fn map_entries_field(k: &SqlType, v: &SqlType) -> Arc<Field> {
    Arc::new(Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", data_type(k), false),
            Field::new("value", data_type(v), true),
        ])),
        false,
    ))
}

fn struct_fields(fields: &[runnel_sql::StructField]) -> Fields {
    Fields::from(
        fields
            .iter()
            .map(|f| Field::new(&f.name, data_type(&f.ty), true))
            .collect::<Vec<_>>(),
    )
}

fn nulls(values: &[Value]) -> Option<NullBuffer> {
    if values.iter().any(Value::is_null) {
        Some(NullBuffer::from(
            values.iter().map(|v| !v.is_null()).collect::<Vec<bool>>(),
        ))
    } else {
        None
    }
}

fn mismatch(ty: &SqlType, v: &Value) -> RuntimeError {
    RuntimeError::Internal(format!("value {v:?} does not match type {ty}"))
}

/// Builds an array of type `ty` from values (NULLs allowed anywhere).
/// Column `c` of `rows` as an array, read in place for scalar types (no value is copied), or
/// `None` for the types that go through [`values_to_array`].
pub fn row_column_to_array(
    rows: &[Vec<Value>],
    c: usize,
    ty: &SqlType,
) -> Option<Result<ArrayRef, RuntimeError>> {
    fn collect<T>(
        rows: &[Vec<Value>],
        c: usize,
        ty: &SqlType,
        pick: impl Fn(&Value) -> Option<T>,
    ) -> Result<Vec<Option<T>>, RuntimeError> {
        rows.iter()
            .map(|r| match r.get(c) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => pick(v).map(Some).ok_or_else(|| mismatch(ty, v)),
            })
            .collect()
    }
    let array: Result<ArrayRef, RuntimeError> = match ty {
        SqlType::Boolean => collect(rows, c, ty, |v| match v {
            Value::Boolean(b) => Some(*b),
            _ => None,
        })
        .map(|items| Arc::new(BooleanArray::from(items)) as ArrayRef),
        SqlType::Int => collect(rows, c, ty, |v| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        })
        .map(|items| Arc::new(Int32Array::from(items)) as ArrayRef),
        SqlType::Bigint => collect(rows, c, ty, |v| match v {
            Value::Bigint(i) => Some(*i),
            _ => None,
        })
        .map(|items| Arc::new(Int64Array::from(items)) as ArrayRef),
        SqlType::Double => collect(rows, c, ty, |v| match v {
            Value::Double(d) => Some(*d),
            _ => None,
        })
        .map(|items| Arc::new(Float64Array::from(items)) as ArrayRef),
        SqlType::Timestamp => collect(rows, c, ty, |v| match v {
            Value::Timestamp(t) => Some(*t),
            _ => None,
        })
        .map(|items| Arc::new(TimestampMillisecondArray::from(items)) as ArrayRef),
        SqlType::String | SqlType::Custom(_) => rows
            .iter()
            .map(|r| match r.get(c) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(other) => Err(mismatch(ty, other)),
            })
            .collect::<Result<StringArray, _>>()
            .map(|array| Arc::new(array) as ArrayRef),
        _ => return None,
    };
    Some(array)
}

pub fn values_to_array(values: &[Value], ty: &SqlType) -> Result<ArrayRef, RuntimeError> {
    macro_rules! primitive {
        ($arr:ty, $pat:pat => $e:expr) => {{
            let items = values
                .iter()
                .map(|v| match v {
                    Value::Null => Ok(None),
                    $pat => Ok(Some($e)),
                    other => Err(mismatch(ty, other)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(<$arr>::from(items)) as ArrayRef
        }};
    }
    Ok(match ty {
        SqlType::Boolean => primitive!(BooleanArray, Value::Boolean(b) => *b),
        SqlType::Int => primitive!(Int32Array, Value::Int(i) => *i),
        SqlType::Bigint => primitive!(Int64Array, Value::Bigint(i) => *i),
        SqlType::Double => primitive!(Float64Array, Value::Double(d) => *d),
        SqlType::String | SqlType::Custom(_) => {
            let items = values
                .iter()
                .map(|v| match v {
                    Value::Null => Ok(None),
                    Value::String(s) => Ok(Some(s.as_str())),
                    other => Err(mismatch(ty, other)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(StringArray::from(items))
        }
        SqlType::Bytes => {
            let items = values
                .iter()
                .map(|v| match v {
                    Value::Null => Ok(None),
                    Value::Bytes(b) => Ok(Some(b.as_slice())),
                    other => Err(mismatch(ty, other)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(BinaryArray::from(items))
        }
        SqlType::Date => primitive!(Date32Array, Value::Date(d) => *d),
        SqlType::Time => primitive!(Time32MillisecondArray, Value::Time(t) => *t),
        SqlType::Timestamp => primitive!(TimestampMillisecondArray, Value::Timestamp(t) => *t),
        SqlType::Decimal { precision, scale } => {
            let items = values
                .iter()
                .map(|v| match v {
                    Value::Null => Ok(None),
                    Value::Decimal(d) => {
                        d.rescale(*scale).map(|d| Some(d.unscaled)).ok_or_else(|| {
                            RuntimeError::Internal(format!("decimal {d} overflows {ty}"))
                        })
                    }
                    other => Err(mismatch(ty, other)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(
                Decimal128Array::from(items)
                    .with_precision_and_scale(*precision, *scale as i8)
                    .map_err(|e| RuntimeError::Internal(e.to_string()))?,
            )
        }
        SqlType::Array(inner) => {
            let mut flat = Vec::new();
            let mut lengths = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    Value::Array(items) => {
                        lengths.push(items.len());
                        flat.extend(items.iter().cloned());
                    }
                    Value::Null => lengths.push(0),
                    other => return Err(mismatch(ty, other)),
                }
            }
            let child = values_to_array(&flat, inner)?;
            let field = Arc::new(Field::new("item", data_type(inner), true));
            Arc::new(
                ListArray::try_new(
                    field,
                    OffsetBuffer::from_lengths(lengths),
                    child,
                    nulls(values),
                )
                .map_err(|e| RuntimeError::Internal(e.to_string()))?,
            )
        }
        SqlType::Map(k, v) => {
            let mut keys = Vec::new();
            let mut vals = Vec::new();
            let mut lengths = Vec::with_capacity(values.len());
            for value in values {
                match value {
                    Value::Map(entries) => {
                        lengths.push(entries.len());
                        for (ek, ev) in entries {
                            keys.push(ek.clone());
                            vals.push(ev.clone());
                        }
                    }
                    Value::Null => lengths.push(0),
                    other => return Err(mismatch(ty, other)),
                }
            }
            let entries_field = map_entries_field(k, v);
            let DataType::Struct(fields) = entries_field.data_type().clone() else {
                return Err(RuntimeError::Internal(
                    "map entries must be a struct".into(),
                ));
            };
            let entries = StructArray::try_new(
                fields,
                vec![values_to_array(&keys, k)?, values_to_array(&vals, v)?],
                None,
            )
            .map_err(|e| RuntimeError::Internal(e.to_string()))?;
            Arc::new(
                MapArray::try_new(
                    entries_field,
                    OffsetBuffer::from_lengths(lengths),
                    entries,
                    nulls(values),
                    false,
                )
                .map_err(|e| RuntimeError::Internal(e.to_string()))?,
            )
        }
        SqlType::Struct(fields) => {
            let mut columns: Vec<Vec<Value>> = vec![Vec::with_capacity(values.len()); fields.len()];
            for v in values {
                match v {
                    Value::Struct(items) => {
                        for (i, f) in fields.iter().enumerate() {
                            let item = items
                                .iter()
                                .find(|(n, _)| n == &f.name)
                                .map(|(_, x)| x.clone())
                                .unwrap_or(Value::Null);
                            columns[i].push(item);
                        }
                    }
                    Value::Null => columns.iter_mut().for_each(|c| c.push(Value::Null)),
                    other => return Err(mismatch(ty, other)),
                }
            }
            if fields.is_empty() {
                return Ok(Arc::new(StructArray::new_empty_fields(
                    values.len(),
                    nulls(values),
                )));
            }
            let arrays = fields
                .iter()
                .zip(columns.iter())
                .map(|(f, c)| values_to_array(c, &f.ty))
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(
                StructArray::try_new(struct_fields(fields), arrays, nulls(values))
                    .map_err(|e| RuntimeError::Internal(e.to_string()))?,
            )
        }
    })
}

/// Reads one row of an array as a value of type `ty`.
pub fn value_at(array: &dyn Array, row: usize, ty: &SqlType) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    let any = array.as_any();
    macro_rules! get {
        ($arr:ty, $ctor:expr) => {
            match any.downcast_ref::<$arr>() {
                Some(a) => $ctor(a.value(row)),
                None => Value::Null,
            }
        };
    }
    match ty {
        SqlType::Boolean => get!(BooleanArray, Value::Boolean),
        SqlType::Int => get!(Int32Array, Value::Int),
        SqlType::Bigint => get!(Int64Array, Value::Bigint),
        SqlType::Double => get!(Float64Array, Value::Double),
        SqlType::String | SqlType::Custom(_) => {
            get!(StringArray, |s: &str| Value::String(s.to_string()))
        }
        SqlType::Bytes => get!(BinaryArray, |b: &[u8]| Value::Bytes(b.to_vec())),
        SqlType::Date => get!(Date32Array, Value::Date),
        SqlType::Time => get!(Time32MillisecondArray, Value::Time),
        SqlType::Timestamp => get!(TimestampMillisecondArray, Value::Timestamp),
        SqlType::Decimal { scale, .. } => {
            get!(Decimal128Array, |u: i128| Value::Decimal(Decimal::new(
                u, *scale
            )))
        }
        SqlType::Array(inner) => match any.downcast_ref::<ListArray>() {
            Some(list) => {
                let items = list.value(row);
                Value::Array(
                    (0..items.len())
                        .map(|i| value_at(items.as_ref(), i, inner))
                        .collect(),
                )
            }
            None => Value::Null,
        },
        SqlType::Map(k, v) => match any.downcast_ref::<MapArray>() {
            Some(map) => {
                let entries = map.value(row);
                let (keys, vals) = (entries.column(0), entries.column(1));
                Value::Map(
                    (0..entries.len())
                        .map(|i| (value_at(keys.as_ref(), i, k), value_at(vals.as_ref(), i, v)))
                        .collect(),
                )
            }
            None => Value::Null,
        },
        SqlType::Struct(fields) => match any.downcast_ref::<StructArray>() {
            Some(s) => Value::Struct(
                fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (f.name.clone(), value_at(s.column(i).as_ref(), row, &f.ty)))
                    .collect(),
            ),
            None => Value::Null,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_sql::StructField;

    #[test]
    fn nested_values_round_trip() {
        let ty = SqlType::Struct(vec![
            StructField::new("A", SqlType::Array(Box::new(SqlType::Int))),
            StructField::new(
                "M",
                SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::decimal(4, 2))),
            ),
        ]);
        let values = vec![
            Value::Struct(vec![
                ("A".into(), Value::Array(vec![Value::Int(1), Value::Null])),
                (
                    "M".into(),
                    Value::Map(vec![(
                        Value::String("x".into()),
                        Value::Decimal(Decimal::new(150, 2)),
                    )]),
                ),
            ]),
            Value::Null,
        ];
        let array = values_to_array(&values, &ty).unwrap();
        assert_eq!(array.len(), 2);
        assert_eq!(value_at(array.as_ref(), 0, &ty), values[0]);
        assert_eq!(value_at(array.as_ref(), 1, &ty), Value::Null);
    }

    #[test]
    fn type_mismatch_is_an_error() {
        assert!(values_to_array(&[Value::String("x".into())], &SqlType::Int).is_err());
    }
}

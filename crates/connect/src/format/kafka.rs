//! The `KAFKA` format: one column written with Kafka's primitive serializers, so that records
//! interoperate with plain Kafka clients (`IntegerSerializer`, `LongSerializer`, ...).
//!
//! INT is 4 bytes big-endian, BIGINT 8, DOUBLE an 8-byte IEEE-754 value, STRING UTF-8 and BYTES
//! the raw bytes. A NULL column is a Kafka null. Other types cannot be represented (ksqlDB rejects
//! them when the statement is planned, see [`supports`]).

use runnel_plan::Value;
use runnel_sql::SqlType;

use super::{check_column_count, integral, mismatch, RowSerde, SerdeError};

/// Whether the KAFKA format can carry a column of this type.
pub(crate) fn supports(ty: &SqlType) -> bool {
    matches!(
        ty,
        SqlType::Int | SqlType::Bigint | SqlType::Double | SqlType::String | SqlType::Bytes
    )
}

#[derive(Debug)]
pub(crate) struct KafkaSerde {
    ty: SqlType,
}

impl KafkaSerde {
    pub(crate) fn new(ty: SqlType) -> Self {
        KafkaSerde { ty }
    }
}

/// Kafka's message when a fixed-width deserializer gets the wrong number of bytes.
fn size_error(deserializer: &str, size: usize) -> SerdeError {
    SerdeError::new(format!(
        "Size of data received by {deserializer} is not {size}"
    ))
}

impl RowSerde for KafkaSerde {
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Option<Vec<Value>>, SerdeError> {
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let value = match self.ty {
            SqlType::Int => {
                let raw: [u8; 4] = bytes
                    .try_into()
                    .map_err(|_| size_error("IntegerDeserializer", 4))?;
                Value::Int(i32::from_be_bytes(raw))
            }
            SqlType::Bigint => {
                let raw: [u8; 8] = bytes
                    .try_into()
                    .map_err(|_| size_error("LongDeserializer", 8))?;
                Value::Bigint(i64::from_be_bytes(raw))
            }
            SqlType::Double => {
                let raw: [u8; 8] = bytes
                    .try_into()
                    .map_err(|_| size_error("DoubleDeserializer", 8))?;
                Value::Double(f64::from_be_bytes(raw))
            }
            // Java's StringDeserializer replaces malformed UTF-8 rather than failing.
            SqlType::String => Value::String(String::from_utf8_lossy(bytes).into_owned()),
            SqlType::Bytes => Value::Bytes(bytes.to_vec()),
            _ => {
                return Err(SerdeError::new(format!(
                    "The 'KAFKA' format does not support type '{}'",
                    self.ty.base_name()
                )))
            }
        };
        Ok(Some(vec![value]))
    }

    fn serialize(&self, row: Option<&[Value]>) -> Result<Option<Vec<u8>>, SerdeError> {
        let Some(row) = row else {
            return Ok(None);
        };
        check_column_count(1, row)?;
        let value = &row[0];
        let bytes = match (&self.ty, value) {
            (_, Value::Null) => return Ok(None),
            (SqlType::Int, v) => {
                let i = integral(v).ok_or_else(|| SerdeError::new(mismatch(&self.ty, v)))?;
                (i as i32).to_be_bytes().to_vec()
            }
            (SqlType::Bigint, v) => {
                let i = integral(v).ok_or_else(|| SerdeError::new(mismatch(&self.ty, v)))?;
                i.to_be_bytes().to_vec()
            }
            (SqlType::Double, v) => {
                let d = v
                    .as_f64()
                    .ok_or_else(|| SerdeError::new(mismatch(&self.ty, v)))?;
                d.to_be_bytes().to_vec()
            }
            (SqlType::String, Value::String(s)) => s.as_bytes().to_vec(),
            (SqlType::Bytes, Value::Bytes(b)) => b.clone(),
            (ty, v) => return Err(SerdeError::new(mismatch(ty, v))),
        };
        Ok(Some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(ty: SqlType, value: Value, bytes: &[u8]) {
        let serde = KafkaSerde::new(ty);
        assert_eq!(
            serde
                .serialize(Some(std::slice::from_ref(&value)))
                .unwrap()
                .as_deref(),
            Some(bytes)
        );
        assert_eq!(serde.deserialize(Some(bytes)).unwrap(), Some(vec![value]));
    }

    #[test]
    fn primitives_use_kafka_encodings() {
        round_trip(SqlType::Int, Value::Int(2), &[0, 0, 0, 2]);
        round_trip(SqlType::Int, Value::Int(-1), &[0xff; 4]);
        round_trip(
            SqlType::Bigint,
            Value::Bigint(10_000_000_000),
            &10_000_000_000i64.to_be_bytes(),
        );
        round_trip(SqlType::Double, Value::Double(2.2), &2.2f64.to_be_bytes());
        round_trip(SqlType::String, Value::String("bar".into()), b"bar");
        round_trip(SqlType::Bytes, Value::Bytes(b"dmFy".to_vec()), b"dmFy");
    }

    #[test]
    fn nulls_are_kafka_nulls() {
        let serde = KafkaSerde::new(SqlType::Int);
        assert_eq!(serde.serialize(Some(&[Value::Null])).unwrap(), None);
        assert_eq!(serde.serialize(None).unwrap(), None);
        assert_eq!(serde.deserialize(None).unwrap(), None);
    }

    #[test]
    fn wrong_sizes_fail_like_kafka() {
        let err = |ty: SqlType, bytes: &[u8]| {
            KafkaSerde::new(ty)
                .deserialize(Some(bytes))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(SqlType::Int, &[1, 2]),
            "Size of data received by IntegerDeserializer is not 4"
        );
        assert_eq!(
            err(SqlType::Bigint, &[0; 4]),
            "Size of data received by LongDeserializer is not 8"
        );
        assert_eq!(
            err(SqlType::Double, &[]),
            "Size of data received by DoubleDeserializer is not 8"
        );
    }

    #[test]
    fn widening_and_mismatches() {
        let serde = KafkaSerde::new(SqlType::Bigint);
        assert_eq!(
            serde.serialize(Some(&[Value::Int(1)])).unwrap(),
            Some(1i64.to_be_bytes().to_vec())
        );
        assert!(serde.serialize(Some(&[Value::String("1".into())])).is_err());
        assert!(serde
            .serialize(Some(&[Value::Int(1), Value::Int(2)]))
            .is_err());
        let lossy = KafkaSerde::new(SqlType::String)
            .deserialize(Some(&[b'a', 0xff]))
            .unwrap();
        assert_eq!(lossy, Some(vec![Value::String("a\u{fffd}".into())]));
    }
}

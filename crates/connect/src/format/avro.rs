//! The `AVRO` format: Confluent's wire format around Avro binary data written with the schema
//! ksqlDB generates for the columns.
//!
//! ksqlDB's schema (built by its `AvroSchemas` and Confluent's `AvroData`) is a record
//! `io.confluent.ksql.avro_schemas.KsqlDataSourceSchema` whose fields are all optional
//! (`["null", T]`, default null), in column order. Inside it:
//!
//! * DECIMAL is `bytes` with the decimal logical type (the unscaled value as big-endian two's
//!   complement, at the column's scale); DATE is `int` (date), TIME `int` (time-millis),
//!   TIMESTAMP `long` (timestamp-millis);
//! * ARRAY items and STRUCT fields are optional too;
//! * MAP is *not* an Avro map: ksqlDB's map keys are optional strings, which Avro maps cannot
//!   express, so `AvroData` writes an array of `{key: ["null","string"], value: ["null",T]}`
//!   records (its `MapEntry` representation). Runnel writes the same bytes.
//!
//! A single column that is unwrapped (a key, or a value with `WRAP_SINGLE_VALUE=false`) is the
//! root schema itself and is not optional: a NULL is a Kafka null.
//!
//! Records are decoded with the same schema (Runnel has no registry to fetch the writer's).

use runnel_plan::Value;
use runnel_sql::SqlType;

use super::sr::{self, Cursor};
use super::{check_column_count, mismatch, time_of_day, Column, RowSerde, SerdeError};

/// ksqlDB's default full name of generated value schemas.
const DEFAULT_SCHEMA_NAME: &str = "io.confluent.ksql.avro_schemas.KsqlDataSourceSchema";

/// Why AVRO cannot carry these columns, in ksqlDB's words; `None` if it can. As in ksqlDB, the
/// schema is first converted to Avro (which validates names), then map keys are checked.
pub(crate) fn schema_problem(columns: &[Column], unwrapped: bool) -> Option<String> {
    let names = if unwrapped {
        columns
            .first()
            .and_then(|c| type_name_problem(&c.ty, DEFAULT_SCHEMA_NAME))
    } else {
        record_name_problem(
            DEFAULT_SCHEMA_NAME,
            columns.iter().map(|c| (c.name.as_str(), &c.ty)),
        )
    };
    if let Some(problem) = names {
        return Some(format!("Schema is not compatible with Avro: {problem}"));
    }
    columns
        .iter()
        .any(|c| has_non_string_map_key(&c.ty))
        .then(|| "Avro only supports MAPs with STRING keys".to_string())
}

fn has_non_string_map_key(ty: &SqlType) -> bool {
    match ty {
        SqlType::Map(k, v) => **k != SqlType::String || has_non_string_map_key(v),
        SqlType::Array(inner) => has_non_string_map_key(inner),
        SqlType::Struct(fields) => fields.iter().any(|f| has_non_string_map_key(&f.ty)),
        _ => false,
    }
}

/// Avro's name rule (`Schema.validateName`): a letter or `_`, then letters, digits or `_`.
fn name_problem(name: &str) -> Option<String> {
    let mut chars = name.chars();
    match chars.next() {
        None => Some("Empty name".to_string()),
        Some(c) if !(c.is_alphabetic() || c == '_') => {
            Some(format!("Illegal initial character: {name}"))
        }
        _ if chars.any(|c| !(c.is_alphanumeric() || c == '_')) => {
            Some(format!("Illegal character in: {name}"))
        }
        _ => None,
    }
}

/// A record named `full_name` (checked on its simple name, after the last dot) with these
/// fields; field names have `.` replaced by `_` as ksqlDB does; nested types are named after
/// the path of (unreplaced) field names.
fn record_name_problem<'a>(
    full_name: &str,
    fields: impl Iterator<Item = (&'a str, &'a SqlType)>,
) -> Option<String> {
    let simple = full_name.rsplit('.').next().unwrap_or(full_name);
    if let Some(problem) = name_problem(simple) {
        return Some(problem);
    }
    for (name, ty) in fields {
        if let Some(problem) = type_name_problem(ty, &format!("{full_name}_{name}")) {
            return Some(problem);
        }
        if let Some(problem) = name_problem(&name.replace('.', "_")) {
            return Some(problem);
        }
    }
    None
}

/// Name problems of the Avro schema for `ty`, whose generated names start with `context`.
fn type_name_problem(ty: &SqlType, context: &str) -> Option<String> {
    match ty {
        SqlType::Struct(fields) => {
            record_name_problem(context, fields.iter().map(|f| (f.name.as_str(), &f.ty)))
        }
        SqlType::Array(inner) => type_name_problem(inner, context),
        SqlType::Map(k, v) => {
            let simple = context.rsplit('.').next().unwrap_or(context);
            name_problem(simple)
                .or_else(|| type_name_problem(k, &format!("{context}_MapKey")))
                .or_else(|| type_name_problem(v, &format!("{context}_MapValue")))
        }
        _ => None,
    }
}

#[derive(Debug)]
pub(crate) struct AvroSerde {
    columns: Vec<Column>,
    /// One column written as the root schema instead of a record.
    unwrapped: bool,
}

impl AvroSerde {
    pub(crate) fn new(columns: &[Column], unwrapped: bool) -> Self {
        AvroSerde {
            columns: columns.to_vec(),
            unwrapped: unwrapped && columns.len() == 1,
        }
    }
}

impl RowSerde for AvroSerde {
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Option<Vec<Value>>, SerdeError> {
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let fail = |e: String| SerdeError::with_cause("Error deserializing AVRO message", e);
        let (_, payload) = sr::strip_prefix(bytes).map_err(fail)?;
        let mut cursor = Cursor::new(payload);
        let row = if self.unwrapped {
            vec![read_value(&mut cursor, &self.columns[0].ty).map_err(fail)?]
        } else {
            self.columns
                .iter()
                .map(|c| read_optional(&mut cursor, &c.ty))
                .collect::<Result<Vec<_>, _>>()
                .map_err(fail)?
        };
        Ok(Some(row))
    }

    fn serialize(&self, row: Option<&[Value]>) -> Result<Option<Vec<u8>>, SerdeError> {
        let Some(row) = row else {
            return Ok(None);
        };
        check_column_count(self.columns.len(), row)?;
        if self.unwrapped && row[0].is_null() {
            return Ok(None);
        }
        let mut out = Vec::new();
        sr::write_prefix(&mut out, sr::SCHEMA_ID);
        let written = if self.unwrapped {
            write_value(&mut out, &self.columns[0].ty, &row[0])
        } else {
            self.columns
                .iter()
                .zip(row)
                .try_for_each(|(c, v)| write_optional(&mut out, &c.ty, v))
        };
        written.map_err(|e| SerdeError::with_cause("Error serializing AVRO message", e))?;
        Ok(Some(out))
    }
}

// ----- writing ----------------------------------------------------------------------------

fn write_long(out: &mut Vec<u8>, value: i64) {
    sr::write_varint(out, sr::zigzag(value));
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

/// A value of the union `["null", T]`: branch 0 is null, branch 1 the value.
fn write_optional(out: &mut Vec<u8>, ty: &SqlType, value: &Value) -> Result<(), String> {
    if value.is_null() {
        write_long(out, 0);
        Ok(())
    } else {
        write_long(out, 1);
        write_value(out, ty, value)
    }
}

/// Writes a non-null `value` with the schema of `ty`, widening narrower numbers.
fn write_value(out: &mut Vec<u8>, ty: &SqlType, value: &Value) -> Result<(), String> {
    match (ty, value) {
        (SqlType::Boolean, Value::Boolean(b)) => out.push(u8::from(*b)),
        (SqlType::Int | SqlType::Date, v) => {
            let i = sr::integer_of(ty, v)?;
            let i = i32::try_from(i).map_err(|_| format!("Value {i} is out of range for {ty}"))?;
            write_long(out, i64::from(i));
        }
        (SqlType::Time, v) => {
            let millis = time_of_day(sr::integer_of(ty, v)?)?;
            write_long(out, i64::from(millis));
        }
        (SqlType::Bigint | SqlType::Timestamp, v) => write_long(out, sr::integer_of(ty, v)?),
        (SqlType::Double, v) => out.extend_from_slice(&sr::double_of(ty, v)?.to_le_bytes()),
        (SqlType::Decimal { scale, .. }, v) => {
            let decimal = sr::decimal_of(ty, *scale, v)?;
            write_bytes(out, &sr::unscaled_bytes(decimal.unscaled));
        }
        (SqlType::String, Value::String(s)) => write_bytes(out, s.as_bytes()),
        (SqlType::Bytes, Value::Bytes(b)) => write_bytes(out, b),
        (SqlType::Array(element), Value::Array(items)) => {
            if !items.is_empty() {
                write_long(out, items.len() as i64);
                for item in items {
                    write_optional(out, element, item)?;
                }
            }
            write_long(out, 0);
        }
        (SqlType::Map(_, value_type), Value::Map(entries)) => {
            // An array of MapEntry records {key: ["null","string"], value: ["null",V]}.
            if !entries.is_empty() {
                write_long(out, entries.len() as i64);
                for (k, v) in entries {
                    match sr::map_key_text(k) {
                        None => write_long(out, 0),
                        Some(text) => {
                            write_long(out, 1);
                            write_bytes(out, text.as_bytes());
                        }
                    }
                    write_optional(out, value_type, v)?;
                }
            }
            write_long(out, 0);
        }
        (SqlType::Struct(fields), Value::Struct(values)) => {
            for (i, field) in fields.iter().enumerate() {
                let v = sr::struct_field(values, &field.name, i, fields.len());
                write_optional(out, &field.ty, v)?;
            }
        }
        _ => return Err(mismatch(ty, value)),
    }
    Ok(())
}

// ----- reading ----------------------------------------------------------------------------

fn read_long(cursor: &mut Cursor<'_>) -> Result<i64, String> {
    cursor.varint().map(sr::unzigzag)
}

fn read_int(cursor: &mut Cursor<'_>) -> Result<i32, String> {
    let value = read_long(cursor)?;
    i32::try_from(value).map_err(|_| format!("Avro int out of range: {value}"))
}

fn read_bytes<'a>(cursor: &mut Cursor<'a>) -> Result<&'a [u8], String> {
    let len = read_long(cursor)?;
    let len = usize::try_from(len).map_err(|_| format!("Negative Avro length: {len}"))?;
    cursor.take(len)
}

fn read_string(cursor: &mut Cursor<'_>) -> Result<String, String> {
    let bytes = read_bytes(cursor)?;
    String::from_utf8(bytes.to_vec()).map_err(|e| format!("Invalid UTF-8 in Avro string: {e}"))
}

fn read_optional(cursor: &mut Cursor<'_>, ty: &SqlType) -> Result<Value, String> {
    match read_long(cursor)? {
        0 => Ok(Value::Null),
        1 => read_value(cursor, ty),
        other => Err(format!("Invalid union index {other} for optional {ty}")),
    }
}

/// Reads the blocks of an Avro array, calling `item` once per element.
fn read_blocks(
    cursor: &mut Cursor<'_>,
    mut item: impl FnMut(&mut Cursor<'_>) -> Result<(), String>,
) -> Result<(), String> {
    loop {
        let count = read_long(cursor)?;
        if count == 0 {
            return Ok(());
        }
        if count < 0 {
            // A negative count is followed by the block's size in bytes.
            read_long(cursor)?;
        }
        for _ in 0..count.unsigned_abs() {
            item(cursor)?;
        }
    }
}

fn read_value(cursor: &mut Cursor<'_>, ty: &SqlType) -> Result<Value, String> {
    Ok(match ty {
        SqlType::Boolean => match cursor.byte()? {
            0 => Value::Boolean(false),
            1 => Value::Boolean(true),
            b => return Err(format!("Invalid Avro boolean byte: {b}")),
        },
        SqlType::Int => Value::Int(read_int(cursor)?),
        SqlType::Date => Value::Date(read_int(cursor)?),
        SqlType::Time => Value::Time(time_of_day(i64::from(read_int(cursor)?))?),
        SqlType::Bigint => Value::Bigint(read_long(cursor)?),
        SqlType::Timestamp => Value::Timestamp(read_long(cursor)?),
        SqlType::Double => {
            let raw: [u8; 8] = cursor
                .take(8)?
                .try_into()
                .map_err(|_| "Unexpected end of data".to_string())?;
            Value::Double(f64::from_le_bytes(raw))
        }
        SqlType::Decimal { scale, .. } => {
            let unscaled = sr::unscaled_from_bytes(read_bytes(cursor)?)?;
            sr::decimal_at(unscaled, *scale, *scale)?
        }
        SqlType::String => Value::String(read_string(cursor)?),
        SqlType::Bytes => Value::Bytes(read_bytes(cursor)?.to_vec()),
        SqlType::Array(element) => {
            let mut items = Vec::new();
            read_blocks(cursor, |c| {
                items.push(read_optional(c, element)?);
                Ok(())
            })?;
            Value::Array(items)
        }
        SqlType::Map(_, value_type) => {
            let mut entries = Vec::new();
            read_blocks(cursor, |c| {
                let key = match read_long(c)? {
                    0 => Value::Null,
                    1 => Value::String(read_string(c)?),
                    other => return Err(format!("Invalid union index {other} for a map key")),
                };
                entries.push((key, read_optional(c, value_type)?));
                Ok(())
            })?;
            Value::Map(entries)
        }
        SqlType::Struct(fields) => Value::Struct(
            fields
                .iter()
                .map(|f| Ok((f.name.clone(), read_optional(cursor, &f.ty)?)))
                .collect::<Result<Vec<_>, String>>()?,
        ),
        SqlType::Custom(name) => return Err(format!("Type is not supported: {name}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_plan::Decimal;
    use runnel_sql::StructField;

    fn cols(specs: &[(&str, SqlType)]) -> Vec<Column> {
        specs
            .iter()
            .map(|(n, t)| Column::new(*n, t.clone()))
            .collect()
    }

    fn round_trip(serde: &AvroSerde, row: Vec<Value>) -> Vec<u8> {
        let bytes = serde.serialize(Some(&row)).unwrap().unwrap();
        assert_eq!(serde.deserialize(Some(&bytes)).unwrap(), Some(row));
        bytes
    }

    #[test]
    fn small_record_bytes() {
        // {"I": 1, "S": "ab", "B": null} → prefix, then per field the union branch and value.
        let serde = AvroSerde::new(
            &cols(&[
                ("I", SqlType::Int),
                ("S", SqlType::String),
                ("B", SqlType::Boolean),
            ]),
            false,
        );
        let bytes = round_trip(
            &serde,
            vec![Value::Int(1), Value::String("ab".into()), Value::Null],
        );
        assert_eq!(
            bytes,
            [0, 0, 0, 0, 1, 0x02, 0x02, 0x02, 0x04, b'a', b'b', 0x00]
        );
        // -3 zig-zags to 5; DECIMAL(4,2) 65.21 is the unscaled 6521 = 0x1979.
        let serde = AvroSerde::new(
            &cols(&[("L", SqlType::Bigint), ("D", SqlType::decimal(4, 2))]),
            false,
        );
        let bytes = round_trip(
            &serde,
            vec![Value::Bigint(-3), Value::Decimal(Decimal::new(6521, 2))],
        );
        assert_eq!(bytes, [0, 0, 0, 0, 1, 0x02, 0x05, 0x02, 0x04, 0x19, 0x79]);
    }

    #[test]
    fn unwrapped_values_are_the_root_schema() {
        let serde = AvroSerde::new(&cols(&[("K", SqlType::Int)]), true);
        assert_eq!(
            round_trip(&serde, vec![Value::Int(10)]),
            [0, 0, 0, 0, 1, 0x14]
        );
        assert_eq!(serde.serialize(Some(&[Value::Null])).unwrap(), None);
        assert_eq!(serde.deserialize(None).unwrap(), None);
        let arrays = AvroSerde::new(
            &cols(&[("A", SqlType::Array(Box::new(SqlType::Bigint)))]),
            true,
        );
        assert_eq!(
            round_trip(
                &arrays,
                vec![Value::Array(vec![Value::Bigint(1), Value::Null])]
            ),
            [0, 0, 0, 0, 1, 0x04, 0x02, 0x02, 0x00, 0x00]
        );
    }

    #[test]
    fn maps_are_arrays_of_entries() {
        let ty = SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Int));
        let serde = AvroSerde::new(&cols(&[("M", ty)]), false);
        let bytes = round_trip(
            &serde,
            vec![Value::Map(vec![(Value::String("a".into()), Value::Int(1))])],
        );
        assert_eq!(
            bytes,
            [0, 0, 0, 0, 1, 0x02, 0x02, 0x02, 0x02, b'a', 0x02, 0x02, 0x00]
        );
    }

    #[test]
    fn every_type_round_trips() {
        let inner = SqlType::Struct(vec![
            StructField::new("X", SqlType::decimal(10, 3)),
            StructField::new("Y", SqlType::Array(Box::new(SqlType::Timestamp))),
        ]);
        let columns = cols(&[
            ("B", SqlType::Boolean),
            ("I", SqlType::Int),
            ("L", SqlType::Bigint),
            ("D", SqlType::Double),
            ("DEC", SqlType::decimal(21, 19)),
            ("S", SqlType::String),
            ("BY", SqlType::Bytes),
            ("DA", SqlType::Date),
            ("T", SqlType::Time),
            ("TS", SqlType::Timestamp),
            (
                "M",
                SqlType::Map(Box::new(SqlType::String), Box::new(inner.clone())),
            ),
            ("ST", inner),
            ("N", SqlType::String),
        ]);
        let serde = AvroSerde::new(&columns, false);
        round_trip(
            &serde,
            vec![
                Value::Boolean(true),
                Value::Int(-2_000_000_000),
                Value::Bigint(998877665544332211),
                Value::Double(-1.5e-300),
                Value::Decimal(Decimal::new(-12_345_678_901_234_567_890, 19)),
                Value::String("héllo".into()),
                Value::Bytes(vec![0, 255, 7]),
                Value::Date(-10),
                Value::Time(86_399_999),
                Value::Timestamp(-1),
                Value::Map(vec![
                    (
                        Value::String("k".into()),
                        Value::Struct(vec![
                            ("X".into(), Value::Decimal(Decimal::new(1, 3))),
                            ("Y".into(), Value::Array(vec![])),
                        ]),
                    ),
                    (Value::String("n".into()), Value::Null),
                ]),
                Value::Struct(vec![
                    ("X".into(), Value::Null),
                    (
                        "Y".into(),
                        Value::Array(vec![Value::Timestamp(5), Value::Null]),
                    ),
                ]),
                Value::Null,
            ],
        );
        let all_null: Vec<Value> = columns.iter().map(|_| Value::Null).collect();
        round_trip(&serde, all_null);
    }

    #[test]
    fn values_are_widened_and_mismatches_fail() {
        let serde = AvroSerde::new(
            &cols(&[("L", SqlType::Bigint), ("D", SqlType::decimal(4, 2))]),
            false,
        );
        let bytes = serde
            .serialize(Some(&[Value::Int(2), Value::Int(1)]))
            .unwrap()
            .unwrap();
        assert_eq!(
            serde.deserialize(Some(&bytes)).unwrap(),
            Some(vec![Value::Bigint(2), Value::Decimal(Decimal::new(100, 2))])
        );
        assert!(serde
            .serialize(Some(&[Value::String("x".into()), Value::Null]))
            .is_err());
        assert!(serde.serialize(Some(&[Value::Null])).is_err());
    }

    #[test]
    fn bad_input_is_an_error() {
        let serde = AvroSerde::new(&cols(&[("S", SqlType::String)]), false);
        assert!(serde
            .deserialize(Some(b"{}"))
            .unwrap_err()
            .to_string()
            .contains("Unknown magic byte!"));
        for bad in [
            &[0u8, 0, 0, 0, 1][..],
            &[0, 0, 0, 0, 1, 0x04],
            &[0, 0, 0, 0, 1, 0x02, 0x10, b'a'],
            &[0, 0, 0, 0, 1, 0x02, 0x01],
        ] {
            assert!(serde.deserialize(Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn schema_problems_match_ksqldb() {
        assert_eq!(
            schema_problem(
                &cols(&[(
                    "1AvroDoesNotLikeFieldsThatStartWithNumbers",
                    SqlType::Double
                )]),
                false
            )
            .unwrap(),
            "Schema is not compatible with Avro: Illegal initial character: \
             1AvroDoesNotLikeFieldsThatStartWithNumbers"
        );
        assert_eq!(
            schema_problem(&cols(&[("A-B", SqlType::Int)]), false).unwrap(),
            "Schema is not compatible with Avro: Illegal character in: A-B"
        );
        let nested = SqlType::Struct(vec![StructField::new("9x", SqlType::Int)]);
        assert!(schema_problem(&cols(&[("S", nested)]), false)
            .unwrap()
            .ends_with("Illegal initial character: 9x"));
        // Dots are replaced; a bare unwrapped value has no field names at all.
        assert_eq!(schema_problem(&cols(&[("T.C", SqlType::Int)]), false), None);
        assert_eq!(schema_problem(&cols(&[("1X", SqlType::Int)]), true), None);
        let int_map = SqlType::Map(Box::new(SqlType::Int), Box::new(SqlType::Double));
        assert_eq!(
            schema_problem(&cols(&[("FOO", SqlType::Array(Box::new(int_map)))]), false).unwrap(),
            "Avro only supports MAPs with STRING keys"
        );
    }
}

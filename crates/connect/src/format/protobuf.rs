//! The `PROTOBUF` and `PROTOBUF_NOSR` formats: proto3 messages shaped like the schema ksqlDB
//! generates for the columns (Confluent's `ProtobufData`, root message `ConnectDefault1`).
//!
//! * Columns (and STRUCT fields) are fields numbered 1..n in order, with proto3's implicit
//!   presence: a NULL or default scalar is simply not written, so it reads back as the default
//!   (`0`, `false`, `""`, empty bytes). A NULL ARRAY or MAP reads back empty. That is what ksqlDB
//!   does with its default nullable representation, and the conformance tests expect it.
//! * BOOLEAN `bool`, INT `int32`, BIGINT `int64`, DOUBLE `double`, STRING `string`, BYTES
//!   `bytes`; ARRAY `repeated` (numbers and booleans packed), MAP `map<string, V>`, STRUCT a
//!   nested message. Message-typed fields keep NULL (an absent message):
//!   DECIMAL `confluent.type.Decimal` {bytes value = 1; uint32 precision = 2; int32 scale = 3},
//!   DATE `google.type.Date` {year, month, day}, TIME `google.type.TimeOfDay` {hours, minutes,
//!   seconds, nanos}, TIMESTAMP `google.protobuf.Timestamp` {int64 seconds; int32 nanos}.
//! * An ARRAY or MAP directly inside an ARRAY or a MAP value (which protobuf cannot nest) is
//!   wrapped in a message whose field 1 holds it.
//! * `PROTOBUF` frames the message with Confluent's wire format: magic byte, schema id, then the
//!   message indexes (`0`, the first message of the schema). `PROTOBUF_NOSR` is the bare message.
//!
//! ksqlDB always wraps PROTOBUF data in a message: single keys too, and it rejects
//! `WRAP_SINGLE_VALUE=false` (checked in the module root).

use runnel_plan::Value;
use runnel_sql::SqlType;

use super::sr::{self, Cursor};
use super::{check_column_count, mismatch, time_of_day, Column, RowSerde, SerdeError};

/// Why PROTOBUF cannot carry these columns, in ksqlDB's words; `None` if it can.
pub(crate) fn schema_problem(columns: &[Column]) -> Option<String> {
    columns
        .iter()
        .any(|c| has_non_string_map_key(&c.ty))
        .then(|| "PROTOBUF format only supports MAP types with STRING keys".to_string())
}

fn has_non_string_map_key(ty: &SqlType) -> bool {
    match ty {
        SqlType::Map(k, v) => **k != SqlType::String || has_non_string_map_key(v),
        SqlType::Array(inner) => has_non_string_map_key(inner),
        SqlType::Struct(fields) => fields.iter().any(|f| has_non_string_map_key(&f.ty)),
        _ => false,
    }
}

#[derive(Debug)]
pub(crate) struct ProtobufSerde {
    columns: Vec<Column>,
    /// `PROTOBUF` (wire-format prefix and message indexes) rather than `PROTOBUF_NOSR`.
    registry: bool,
}

impl ProtobufSerde {
    pub(crate) fn new(columns: &[Column], registry: bool) -> Self {
        ProtobufSerde {
            columns: columns.to_vec(),
            registry,
        }
    }

    fn name(&self) -> &'static str {
        if self.registry {
            "PROTOBUF"
        } else {
            "PROTOBUF_NOSR"
        }
    }
}

impl RowSerde for ProtobufSerde {
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Option<Vec<Value>>, SerdeError> {
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let fail = |e: String| {
            SerdeError::with_cause(format!("Error deserializing {} message", self.name()), e)
        };
        let payload = if self.registry {
            let (_, rest) = sr::strip_prefix(bytes).map_err(fail)?;
            skip_message_indexes(rest).map_err(fail)?
        } else {
            bytes
        };
        let types: Vec<&SqlType> = self.columns.iter().map(|c| &c.ty).collect();
        read_message(payload, &types).map(Some).map_err(fail)
    }

    fn serialize(&self, row: Option<&[Value]>) -> Result<Option<Vec<u8>>, SerdeError> {
        let Some(row) = row else {
            return Ok(None);
        };
        check_column_count(self.columns.len(), row)?;
        let mut out = Vec::new();
        if self.registry {
            sr::write_prefix(&mut out, sr::SCHEMA_ID);
            // Message indexes: a lone 0 means the first message in the schema.
            out.push(0);
        }
        self.columns
            .iter()
            .zip(row)
            .enumerate()
            .try_for_each(|(i, (c, v))| write_field(&mut out, field_number(i), &c.ty, v))
            .map_err(|e| {
                SerdeError::with_cause(format!("Error serializing {} message", self.name()), e)
            })?;
        Ok(Some(out))
    }
}

fn field_number(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

/// Confluent's message indexes: a zig-zag count, then that many zig-zag indexes; `0` alone is
/// shorthand for `[0]`. Runnel's schemas have one message, so only `[0]` is accepted.
fn skip_message_indexes(bytes: &[u8]) -> Result<&[u8], String> {
    let mut cursor = Cursor::new(bytes);
    let count = sr::unzigzag(cursor.varint()?);
    let mut indexes = Vec::new();
    for _ in 0..count.max(0) {
        indexes.push(sr::unzigzag(cursor.varint()?));
    }
    if !(indexes.is_empty() || indexes == [0]) {
        return Err(format!(
            "Unsupported message indexes {indexes:?}: only the first message is known"
        ));
    }
    let consumed = bytes.len() - cursor.remaining();
    Ok(&bytes[consumed..])
}

// ----- writing ----------------------------------------------------------------------------

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

fn write_tag(out: &mut Vec<u8>, number: u32, wire_type: u32) {
    sr::write_varint(out, u64::from(number) << 3 | u64::from(wire_type));
}

fn write_len(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    write_tag(out, number, LEN);
    sr::write_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Scalars that proto3 packs in repeated fields.
fn is_packable(ty: &SqlType) -> bool {
    matches!(
        ty,
        SqlType::Boolean | SqlType::Int | SqlType::Bigint | SqlType::Double
    )
}

/// Types written as a nested message, which keep NULL as an absent field.
fn is_message(ty: &SqlType) -> bool {
    matches!(
        ty,
        SqlType::Decimal { .. }
            | SqlType::Date
            | SqlType::Time
            | SqlType::Timestamp
            | SqlType::Struct(_)
    )
}

fn is_container(ty: &SqlType) -> bool {
    matches!(ty, SqlType::Array(_) | SqlType::Map(..))
}

/// The varint or fixed64 payload of a packable scalar (NULL as the default).
fn scalar_bits(ty: &SqlType, value: &Value) -> Result<u64, String> {
    if value.is_null() {
        return Ok(0);
    }
    Ok(match (ty, value) {
        (SqlType::Boolean, Value::Boolean(b)) => u64::from(*b),
        (SqlType::Int, v) => {
            let i = sr::integer_of(ty, v)?;
            let i = i32::try_from(i).map_err(|_| format!("Value {i} is out of range for {ty}"))?;
            i64::from(i) as u64
        }
        (SqlType::Bigint, v) => sr::integer_of(ty, v)? as u64,
        (SqlType::Double, v) => sr::double_of(ty, v)?.to_bits(),
        _ => return Err(mismatch(ty, value)),
    })
}

/// A singular field with implicit presence: NULL and default scalars are not written.
fn write_field(out: &mut Vec<u8>, number: u32, ty: &SqlType, value: &Value) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    match ty {
        SqlType::Double => {
            let bits = scalar_bits(ty, value)?;
            if bits != 0 {
                write_tag(out, number, FIXED64);
                out.extend_from_slice(&bits.to_le_bytes());
            }
        }
        _ if is_packable(ty) => {
            let bits = scalar_bits(ty, value)?;
            if bits != 0 {
                write_tag(out, number, VARINT);
                sr::write_varint(out, bits);
            }
        }
        SqlType::String | SqlType::Bytes => {
            let bytes = text_bytes(ty, value)?;
            if !bytes.is_empty() {
                write_len(out, number, bytes);
            }
        }
        SqlType::Array(element) => {
            let Value::Array(items) = value else {
                return Err(mismatch(ty, value));
            };
            write_repeated(out, number, element, items)?;
        }
        SqlType::Map(_, value_type) => {
            let Value::Map(entries) = value else {
                return Err(mismatch(ty, value));
            };
            for (k, v) in entries {
                let mut entry = Vec::new();
                if let Some(key) = sr::map_key_text(k).filter(|k| !k.is_empty()) {
                    write_len(&mut entry, 1, key.as_bytes());
                }
                if is_container(value_type) {
                    write_len(&mut entry, 2, &wrapper_message(value_type, v)?);
                } else {
                    write_field(&mut entry, 2, value_type, v)?;
                }
                write_len(out, number, &entry);
            }
        }
        _ => write_len(out, number, &message_bytes(ty, value)?),
    }
    Ok(())
}

fn text_bytes<'a>(ty: &SqlType, value: &'a Value) -> Result<&'a [u8], String> {
    match (ty, value) {
        (SqlType::String, Value::String(s)) => Ok(s.as_bytes()),
        (SqlType::Bytes, Value::Bytes(b)) => Ok(b),
        _ => Err(mismatch(ty, value)),
    }
}

/// The elements of a repeated field; a NULL element is written as the element's default.
fn write_repeated(
    out: &mut Vec<u8>,
    number: u32,
    element: &SqlType,
    items: &[Value],
) -> Result<(), String> {
    if items.is_empty() {
        return Ok(());
    }
    if is_packable(element) {
        let mut packed = Vec::new();
        for item in items {
            let bits = scalar_bits(element, item)?;
            if *element == SqlType::Double {
                packed.extend_from_slice(&bits.to_le_bytes());
            } else {
                sr::write_varint(&mut packed, bits);
            }
        }
        write_len(out, number, &packed);
        return Ok(());
    }
    for item in items {
        let bytes = match element {
            SqlType::String | SqlType::Bytes if item.is_null() => Vec::new(),
            SqlType::String | SqlType::Bytes => text_bytes(element, item)?.to_vec(),
            _ if is_container(element) => wrapper_message(element, item)?,
            _ if item.is_null() => Vec::new(),
            _ => message_bytes(element, item)?,
        };
        write_len(out, number, &bytes);
    }
    Ok(())
}

/// A message whose field 1 holds an ARRAY or MAP nested where protobuf cannot nest it.
fn wrapper_message(ty: &SqlType, value: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    write_field(&mut out, 1, ty, value)?;
    Ok(out)
}

/// The encoding of a non-null message-typed value (DECIMAL, DATE, TIME, TIMESTAMP, STRUCT).
fn message_bytes(ty: &SqlType, value: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let int_field = |out: &mut Vec<u8>, number: u32, v: i64| {
        if v != 0 {
            write_tag(out, number, VARINT);
            sr::write_varint(out, v as u64);
        }
    };
    match (ty, value) {
        (SqlType::Decimal { scale, .. }, v) => {
            let decimal = sr::decimal_of(ty, *scale, v)?;
            write_len(&mut out, 1, &sr::unscaled_bytes(decimal.unscaled));
            int_field(&mut out, 2, i64::from(decimal.digits()));
            int_field(&mut out, 3, i64::from(decimal.scale));
        }
        (SqlType::Date, v) => {
            let (year, month, day) = civil_from_days(sr::integer_of(ty, v)?);
            int_field(&mut out, 1, year);
            int_field(&mut out, 2, i64::from(month));
            int_field(&mut out, 3, i64::from(day));
        }
        (SqlType::Time, v) => {
            let millis = i64::from(time_of_day(sr::integer_of(ty, v)?)?);
            int_field(&mut out, 1, millis / 3_600_000);
            int_field(&mut out, 2, millis / 60_000 % 60);
            int_field(&mut out, 3, millis / 1000 % 60);
            int_field(&mut out, 4, millis % 1000 * 1_000_000);
        }
        (SqlType::Timestamp, v) => {
            let millis = sr::integer_of(ty, v)?;
            int_field(&mut out, 1, millis.div_euclid(1000));
            int_field(&mut out, 2, millis.rem_euclid(1000) * 1_000_000);
        }
        (SqlType::Struct(fields), Value::Struct(values)) => {
            for (i, field) in fields.iter().enumerate() {
                let v = sr::struct_field(values, &field.name, i, fields.len());
                write_field(&mut out, field_number(i), &field.ty, v)?;
            }
        }
        _ => return Err(mismatch(ty, value)),
    }
    Ok(out)
}

/// Days since 1970-01-01 → proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Proleptic Gregorian (year, month, day) → days since 1970-01-01.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// ----- reading ----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    /// No Runnel type uses 32-bit fields; they are only skipped.
    Fixed32,
    Len(&'a [u8]),
}

/// The fields of a message in wire order, as (number, payload).
fn parse_fields(bytes: &[u8]) -> Result<Vec<(u32, Wire<'_>)>, String> {
    let mut cursor = Cursor::new(bytes);
    let mut fields = Vec::new();
    while !cursor.is_empty() {
        let key = cursor.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("Invalid protobuf field number {}", key >> 3))?;
        let wire = match (key & 7) as u32 {
            VARINT => Wire::Varint(cursor.varint()?),
            FIXED64 => {
                let raw: [u8; 8] = cursor
                    .take(8)?
                    .try_into()
                    .map_err(|_| "Unexpected end of data".to_string())?;
                Wire::Fixed64(u64::from_le_bytes(raw))
            }
            LEN => {
                let len = usize::try_from(cursor.varint()?)
                    .map_err(|_| "Protobuf length too large".to_string())?;
                Wire::Len(cursor.take(len)?)
            }
            FIXED32 => {
                cursor.take(4)?;
                Wire::Fixed32
            }
            other => return Err(format!("Unsupported protobuf wire type {other}")),
        };
        fields.push((number, wire));
    }
    Ok(fields)
}

fn occurrences<'a>(fields: &[(u32, Wire<'a>)], number: u32) -> Vec<Wire<'a>> {
    fields
        .iter()
        .filter(|(n, _)| *n == number)
        .map(|(_, w)| *w)
        .collect()
}

/// The fields numbered 1..n of a message, with the given types.
fn read_message(bytes: &[u8], types: &[&SqlType]) -> Result<Vec<Value>, String> {
    let fields = parse_fields(bytes)?;
    types
        .iter()
        .enumerate()
        .map(|(i, ty)| read_field(ty, &occurrences(&fields, field_number(i))))
        .collect()
}

fn wrong_wire(ty: &SqlType, wire: &Wire<'_>) -> String {
    format!("Unexpected protobuf encoding {wire:?} for a {ty} field")
}

/// A field from all its occurrences: the last one wins for singular fields, repeated fields
/// collect them all; absent fields are the defaults (NULL for message types).
fn read_field(ty: &SqlType, wires: &[Wire<'_>]) -> Result<Value, String> {
    match ty {
        SqlType::Array(element) => {
            let mut items = Vec::new();
            for wire in wires {
                match wire {
                    Wire::Len(packed) if is_packable(element) => {
                        let mut cursor = Cursor::new(packed);
                        while !cursor.is_empty() {
                            let wire = if **element == SqlType::Double {
                                let raw: [u8; 8] = cursor
                                    .take(8)?
                                    .try_into()
                                    .map_err(|_| "Unexpected end of data".to_string())?;
                                Wire::Fixed64(u64::from_le_bytes(raw))
                            } else {
                                Wire::Varint(cursor.varint()?)
                            };
                            items.push(read_element(element, &wire)?);
                        }
                    }
                    _ => items.push(read_element(element, wire)?),
                }
            }
            Ok(Value::Array(items))
        }
        SqlType::Map(_, value_type) => {
            let mut entries = Vec::new();
            for wire in wires {
                let Wire::Len(entry) = wire else {
                    return Err(wrong_wire(ty, wire));
                };
                let fields = parse_fields(entry)?;
                let key = match read_field(&SqlType::String, &occurrences(&fields, 1))? {
                    Value::String(s) => s,
                    _ => String::new(),
                };
                let values = occurrences(&fields, 2);
                let value = if is_container(value_type) {
                    match values.last() {
                        Some(wire) => read_element(value_type, wire)?,
                        None => read_field(value_type, &[])?,
                    }
                } else {
                    read_field(value_type, &values)?
                };
                entries.push((Value::String(key), value));
            }
            Ok(Value::Map(entries))
        }
        _ => match wires.last() {
            Some(wire) => read_element(ty, wire),
            None if is_message(ty) => Ok(Value::Null),
            None => Ok(default_scalar(ty)),
        },
    }
}

fn default_scalar(ty: &SqlType) -> Value {
    match ty {
        SqlType::Boolean => Value::Boolean(false),
        SqlType::Int => Value::Int(0),
        SqlType::Bigint => Value::Bigint(0),
        SqlType::Double => Value::Double(0.0),
        SqlType::String => Value::String(String::new()),
        SqlType::Bytes => Value::Bytes(Vec::new()),
        _ => Value::Null,
    }
}

/// One value (a singular field's last occurrence, or one element of a repeated field).
fn read_element(ty: &SqlType, wire: &Wire<'_>) -> Result<Value, String> {
    Ok(match (ty, wire) {
        (SqlType::Boolean, Wire::Varint(v)) => Value::Boolean(*v != 0),
        (SqlType::Int, Wire::Varint(v)) => Value::Int(*v as i32),
        (SqlType::Bigint, Wire::Varint(v)) => Value::Bigint(*v as i64),
        (SqlType::Double, Wire::Fixed64(bits)) => Value::Double(f64::from_bits(*bits)),
        (SqlType::String, Wire::Len(bytes)) => Value::String(
            String::from_utf8(bytes.to_vec())
                .map_err(|e| format!("Invalid UTF-8 in protobuf string: {e}"))?,
        ),
        (SqlType::Bytes, Wire::Len(bytes)) => Value::Bytes(bytes.to_vec()),
        (SqlType::Array(_) | SqlType::Map(..), Wire::Len(bytes)) => {
            let fields = parse_fields(bytes)?;
            read_field(ty, &occurrences(&fields, 1))?
        }
        (_, Wire::Len(bytes)) if is_message(ty) => read_message_value(ty, bytes)?,
        _ => return Err(wrong_wire(ty, wire)),
    })
}

/// A message-typed value from its encoding.
fn read_message_value(ty: &SqlType, bytes: &[u8]) -> Result<Value, String> {
    let fields = parse_fields(bytes)?;
    let int = |number: u32| -> Result<i64, String> {
        match occurrences(&fields, number).last() {
            None => Ok(0),
            Some(Wire::Varint(v)) => Ok(*v as i64),
            Some(other) => Err(wrong_wire(ty, other)),
        }
    };
    match ty {
        SqlType::Decimal { scale, .. } => {
            let unscaled = match occurrences(&fields, 1).last() {
                None => 0,
                Some(Wire::Len([])) => 0,
                Some(Wire::Len(b)) => sr::unscaled_from_bytes(b)?,
                Some(other) => return Err(wrong_wire(ty, other)),
            };
            let value_scale = int(3)? as i32;
            let value_scale = u8::try_from(value_scale)
                .map_err(|_| format!("Unsupported decimal scale {value_scale}"))?;
            sr::decimal_at(unscaled, value_scale, *scale)
        }
        SqlType::Date => {
            let (year, month, day) = (int(1)? as i32, int(2)? as i32, int(3)? as i32);
            if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
                return Err(format!(
                    "Invalid date: year {year}, month {month}, day {day}"
                ));
            }
            let days = days_from_civil(i64::from(year), month as u32, day as u32);
            i32::try_from(days)
                .map(Value::Date)
                .map_err(|_| format!("Date out of range: {days} days"))
        }
        SqlType::Time => {
            let (h, m, s, nanos) = (
                int(1)? as i32,
                int(2)? as i32,
                int(3)? as i32,
                int(4)? as i32,
            );
            let millis = ((i64::from(h) * 60 + i64::from(m)) * 60 + i64::from(s)) * 1000
                + i64::from(nanos) / 1_000_000;
            time_of_day(millis).map(Value::Time)
        }
        SqlType::Timestamp => {
            let seconds = int(1)?;
            let nanos = i64::from(int(2)? as i32);
            seconds
                .checked_mul(1000)
                .and_then(|ms| ms.checked_add(nanos.div_euclid(1_000_000)))
                .map(Value::Timestamp)
                .ok_or_else(|| format!("Timestamp out of range: {seconds} seconds"))
        }
        SqlType::Struct(struct_fields) => {
            let values = struct_fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let value = read_field(&f.ty, &occurrences(&fields, field_number(i)))?;
                    Ok((f.name.clone(), value))
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(Value::Struct(values))
        }
        _ => Err(format!("{ty} is not a protobuf message type")),
    }
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

    fn arr(t: SqlType) -> SqlType {
        SqlType::Array(Box::new(t))
    }

    fn map(v: SqlType) -> SqlType {
        SqlType::Map(Box::new(SqlType::String), Box::new(v))
    }

    fn write(serde: &ProtobufSerde, row: &[Value]) -> Vec<u8> {
        serde.serialize(Some(row)).unwrap().unwrap()
    }

    fn read(serde: &ProtobufSerde, bytes: &[u8]) -> Vec<Value> {
        serde.deserialize(Some(bytes)).unwrap().unwrap()
    }

    #[test]
    fn small_message_bytes() {
        // message ConnectDefault1 { int32 I = 1; string S = 2; bool B = 3; repeated int64 L = 4; }
        let columns = cols(&[
            ("I", SqlType::Int),
            ("S", SqlType::String),
            ("B", SqlType::Boolean),
            ("L", arr(SqlType::Bigint)),
        ]);
        let row = vec![
            Value::Int(150),
            Value::String("ab".into()),
            Value::Boolean(true),
            Value::Array(vec![Value::Bigint(1), Value::Bigint(300)]),
        ];
        let body = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x12, 0x02, b'a', b'b', // 2: "ab"
            0x18, 0x01, // 3: true
            0x22, 0x03, 0x01, 0xac, 0x02, // 4: packed [1, 300]
        ];
        let nosr = ProtobufSerde::new(&columns, false);
        assert_eq!(write(&nosr, &row), body);
        assert_eq!(read(&nosr, &body), row);
        let with_sr = ProtobufSerde::new(&columns, true);
        let mut framed = vec![0, 0, 0, 0, 1, 0];
        framed.extend_from_slice(&body);
        assert_eq!(write(&with_sr, &row), framed);
        assert_eq!(read(&with_sr, &framed), row);
        // Negative int32 values take ten bytes, as in every protobuf implementation.
        assert_eq!(
            write(
                &nosr,
                &[Value::Int(-1), Value::Null, Value::Null, Value::Null]
            ),
            [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }

    #[test]
    fn nulls_become_defaults_except_messages() {
        let inner = SqlType::Struct(vec![StructField::new("F0", SqlType::Int)]);
        let columns = cols(&[
            ("I", SqlType::Int),
            ("D", SqlType::Double),
            ("S", SqlType::String),
            ("B", SqlType::Boolean),
            ("A", arr(SqlType::Bigint)),
            ("M", map(SqlType::Double)),
            ("ST", inner.clone()),
            ("DEC", SqlType::decimal(4, 2)),
            ("TS", SqlType::Timestamp),
        ]);
        let serde = ProtobufSerde::new(&columns, true);
        let nulls: Vec<Value> = columns.iter().map(|_| Value::Null).collect();
        let bytes = write(&serde, &nulls);
        assert_eq!(bytes, [0, 0, 0, 0, 1, 0]);
        assert_eq!(
            read(&serde, &bytes),
            vec![
                Value::Int(0),
                Value::Double(0.0),
                Value::String(String::new()),
                Value::Boolean(false),
                Value::Array(vec![]),
                Value::Map(vec![]),
                Value::Null,
                Value::Null,
                Value::Null,
            ]
        );
        let s = ProtobufSerde::new(&cols(&[("ST", inner)]), false);
        let bytes = write(&s, &[Value::Struct(vec![("F0".into(), Value::Null)])]);
        assert_eq!(bytes, [0x0a, 0x00]);
        assert_eq!(
            read(&s, &bytes),
            vec![Value::Struct(vec![("F0".into(), Value::Int(0))])]
        );
        // An empty NOSR message is a row of defaults, not a null row.
        assert_eq!(s.serialize(Some(&[Value::Null])).unwrap(), Some(vec![]));
        assert_eq!(s.deserialize(None).unwrap(), None);
    }

    #[test]
    fn well_known_types() {
        let columns = cols(&[
            ("DEC", SqlType::decimal(4, 2)),
            ("DA", SqlType::Date),
            ("T", SqlType::Time),
            ("TS", SqlType::Timestamp),
        ]);
        let serde = ProtobufSerde::new(&columns, false);
        let row = vec![
            Value::Decimal(Decimal::new(1001, 2)),
            Value::Date(19_000),
            Value::Time(3_723_004),
            Value::Timestamp(-1),
        ];
        let bytes = write(&serde, &row);
        let expected = [
            // Decimal {value: 0x03e9, precision: 4, scale: 2}
            0x0a, 0x08, 0x0a, 0x02, 0x03, 0xe9, 0x10, 0x04, 0x18, 0x02,
            // Date {year: 2022, month: 1, day: 8}
            0x12, 0x07, 0x08, 0xe6, 0x0f, 0x10, 0x01, 0x18, 0x08,
            // TimeOfDay {hours: 1, minutes: 2, seconds: 3, nanos: 4_000_000}
            0x1a, 0x0b, 0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x20, 0x80, 0x92, 0xf4, 0x01,
            // Timestamp {seconds: -1, nanos: 999_000_000}
            0x22, 0x11, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x10,
            0xc0, 0x8f, 0xae, 0xdc, 0x03,
        ];
        assert_eq!(bytes, expected);
        assert_eq!(read(&serde, &bytes), row);
        for days in [-719_468, -1, 0, 59, 365, 11_016, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn every_type_round_trips() {
        let inner = SqlType::Struct(vec![
            StructField::new("X", SqlType::decimal(10, 3)),
            StructField::new("Y", arr(SqlType::Timestamp)),
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
            ("M", map(inner.clone())),
            ("ST", inner),
            ("AS", arr(SqlType::String)),
            ("AD", arr(SqlType::Double)),
            ("AA", arr(arr(SqlType::Int))),
            ("MA", map(arr(SqlType::Boolean))),
            ("MM", map(map(SqlType::Bytes))),
        ]);
        let row = vec![
            Value::Boolean(true),
            Value::Int(-2_000_000_000),
            Value::Bigint(998877665544332211),
            Value::Double(-1.5e-300),
            Value::Decimal(Decimal::new(-12_345_678_901_234_567_890, 19)),
            Value::String("héllo".into()),
            Value::Bytes(vec![0, 255, 7]),
            Value::Date(-10),
            Value::Time(86_399_999),
            Value::Timestamp(1_700_000_000_123),
            Value::Map(vec![(
                Value::String("k".into()),
                Value::Struct(vec![
                    ("X".into(), Value::Decimal(Decimal::new(1, 3))),
                    ("Y".into(), Value::Array(vec![Value::Timestamp(5)])),
                ]),
            )]),
            Value::Struct(vec![
                ("X".into(), Value::Null),
                ("Y".into(), Value::Array(vec![])),
            ]),
            Value::Array(vec![
                Value::String("a".into()),
                Value::String(String::new()),
            ]),
            Value::Array(vec![Value::Double(1.5), Value::Double(0.0)]),
            Value::Array(vec![
                Value::Array(vec![Value::Int(1), Value::Int(-2)]),
                Value::Array(vec![]),
            ]),
            Value::Map(vec![(
                Value::String("m".into()),
                Value::Array(vec![Value::Boolean(false), Value::Boolean(true)]),
            )]),
            Value::Map(vec![(
                Value::String("o".into()),
                Value::Map(vec![(Value::String("i".into()), Value::Bytes(vec![1]))]),
            )]),
        ];
        for registry in [true, false] {
            let serde = ProtobufSerde::new(&columns, registry);
            let bytes = write(&serde, &row);
            assert_eq!(read(&serde, &bytes), row);
        }
    }

    #[test]
    fn unpacked_repeated_scalars_and_unknown_fields_are_read() {
        let serde = ProtobufSerde::new(&cols(&[("A", arr(SqlType::Int))]), false);
        // Field 1 twice unpacked, then an unknown fixed32 field 7.
        let bytes = [0x08, 0x01, 0x08, 0x02, 0x3d, 1, 2, 3, 4];
        assert_eq!(
            read(&serde, &bytes),
            vec![Value::Array(vec![Value::Int(1), Value::Int(2)])]
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        let serde = ProtobufSerde::new(&cols(&[("S", SqlType::String)]), true);
        for bad in [
            &[1u8, 0, 0, 0, 1, 0][..],
            &[0, 0, 0, 0, 1, 0, 0x0a, 0x05, b'a'],
            &[0, 0, 0, 0, 1, 0, 0x08, 0x01],
            &[0, 0, 0, 0, 1, 0x02, 0x02, 0x0a, 0x00],
            &[0, 0, 0, 0, 1, 0, 0x0b],
        ] {
            assert!(serde.deserialize(Some(bad)).is_err(), "{bad:?}");
        }
        assert!(serde.serialize(Some(&[Value::Int(1)])).is_err());
        let date = ProtobufSerde::new(&cols(&[("D", SqlType::Date)]), false);
        assert!(date.deserialize(Some(&[0x0a, 0x00])).is_err());
    }

    #[test]
    fn map_keys_must_be_strings() {
        let int_map = SqlType::Map(Box::new(SqlType::Int), Box::new(SqlType::Double));
        assert_eq!(
            schema_problem(&cols(&[("FOO", int_map)])).unwrap(),
            "PROTOBUF format only supports MAP types with STRING keys"
        );
        assert_eq!(schema_problem(&cols(&[("FOO", map(SqlType::Int))])), None);
    }
}

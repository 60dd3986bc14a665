//! What the Schema Registry formats share: Confluent's wire format and the value conversions
//! that AVRO and PROTOBUF both need.
//!
//! Confluent's serializers put a 5-byte prefix before the payload, magic byte `0x00` then the
//! schema id as a 4-byte big-endian integer, so that a reader can fetch the writer's schema.
//! Runnel has no registry yet, so it writes [`SCHEMA_ID`] and reads any id, decoding with the
//! schema it generates from the columns (which is the schema ksqlDB registers for them).

use runnel_plan::{Decimal, Value};
use runnel_sql::SqlType;

use super::{integral, mismatch};

/// The schema id written in the wire-format prefix.
pub(crate) const SCHEMA_ID: u32 = 1;

const MAGIC_BYTE: u8 = 0;
const PREFIX_LEN: usize = 5;

/// Appends the wire-format prefix for `schema_id`.
pub(crate) fn write_prefix(out: &mut Vec<u8>, schema_id: u32) {
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// Splits off the wire-format prefix: the schema id and the payload.
pub(crate) fn strip_prefix(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    if bytes.first() != Some(&MAGIC_BYTE) {
        return Err("Unknown magic byte!".to_string());
    }
    if bytes.len() < PREFIX_LEN {
        return Err(format!(
            "Message is too short for the schema registry wire format: {} bytes",
            bytes.len()
        ));
    }
    let mut id = [0u8; 4];
    id.copy_from_slice(&bytes[1..PREFIX_LEN]);
    Ok((u32::from_be_bytes(id), &bytes[PREFIX_LEN..]))
}

/// The value of struct field `name` (exact name, then ignoring case, then by position when the
/// value has the type's arity); absent fields are NULL. Mirrors the JSON writer's lookup.
pub(crate) fn struct_field<'a>(
    values: &'a [(String, Value)],
    name: &str,
    index: usize,
    arity: usize,
) -> &'a Value {
    const NULL: &Value = &Value::Null;
    values
        .iter()
        .find(|(n, _)| n == name)
        .or_else(|| values.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)))
        .or_else(|| {
            if values.len() == arity {
                values.get(index)
            } else {
                None
            }
        })
        .map_or(NULL, |(_, v)| v)
}

/// A map key as the text both formats store (their map keys are strings).
pub(crate) fn map_key_text(key: &Value) -> Option<String> {
    match key {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The integer of an integer-backed column (INT, BIGINT, DATE, TIME, TIMESTAMP).
pub(crate) fn integer_of(ty: &SqlType, value: &Value) -> Result<i64, String> {
    integral(value).ok_or_else(|| mismatch(ty, value))
}

pub(crate) fn double_of(ty: &SqlType, value: &Value) -> Result<f64, String> {
    value.as_f64().ok_or_else(|| mismatch(ty, value))
}

/// A DECIMAL column's value at the column's scale (INT and BIGINT values are widened).
pub(crate) fn decimal_of(ty: &SqlType, scale: u8, value: &Value) -> Result<Decimal, String> {
    let decimal = match value {
        Value::Decimal(d) => *d,
        Value::Int(i) => Decimal::new(i128::from(*i), 0),
        Value::Bigint(i) => Decimal::new(i128::from(*i), 0),
        _ => return Err(mismatch(ty, value)),
    };
    decimal
        .rescale(scale)
        .ok_or_else(|| format!("Decimal value {decimal} does not fit scale {scale}"))
}

/// The unscaled value as Java's `BigInteger.toByteArray()`: minimal big-endian two's complement.
pub(crate) fn unscaled_bytes(unscaled: i128) -> Vec<u8> {
    let bytes = unscaled.to_be_bytes();
    let mut start = 0;
    while start + 1 < bytes.len() {
        let (b, next) = (bytes[start], bytes[start + 1]);
        let redundant = (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    bytes[start..].to_vec()
}

/// Reads big-endian two's complement bytes (Java's `new BigInteger(bytes)`).
pub(crate) fn unscaled_from_bytes(bytes: &[u8]) -> Result<i128, String> {
    if bytes.is_empty() {
        return Err("Decimal value has no bytes".to_string());
    }
    if bytes.len() > 16 {
        return Err(format!(
            "Decimal value of {} bytes is too large",
            bytes.len()
        ));
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0x00 };
    let mut full = [fill; 16];
    full[16 - bytes.len()..].copy_from_slice(bytes);
    Ok(i128::from_be_bytes(full))
}

/// A decimal read with `scale`, brought to the column's scale.
pub(crate) fn decimal_at(unscaled: i128, scale: u8, column_scale: u8) -> Result<Value, String> {
    let decimal = Decimal::new(unscaled, scale);
    decimal
        .rescale(column_scale)
        .map(Value::Decimal)
        .ok_or_else(|| format!("Decimal value {decimal} does not fit scale {column_scale}"))
}

/// A bounds-checked cursor over a payload, for the binary decoders.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// How many bytes are left.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    pub(crate) fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| "Unexpected end of data".to_string())?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| "Unexpected end of data".to_string())?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// An unsigned LEB128 varint of at most 10 bytes (protobuf varints, Avro's zig-zag longs).
    pub(crate) fn varint(&mut self) -> Result<u64, String> {
        let mut result = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            result |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(result);
            }
        }
        Err("Malformed varint".to_string())
    }
}

pub(crate) fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

pub(crate) fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_round_trip() {
        let mut out = Vec::new();
        write_prefix(&mut out, 258);
        out.push(7);
        assert_eq!(out, [0, 0, 0, 1, 2, 7]);
        assert_eq!(strip_prefix(&out).unwrap(), (258, &[7u8][..]));
        assert_eq!(
            strip_prefix(&[1, 0, 0, 0, 1]).unwrap_err(),
            "Unknown magic byte!"
        );
        assert!(strip_prefix(&[0, 0]).is_err());
        assert!(strip_prefix(&[]).is_err());
    }

    #[test]
    fn two_complement_bytes_match_java() {
        assert_eq!(unscaled_bytes(0), [0x00]);
        assert_eq!(unscaled_bytes(127), [0x7f]);
        assert_eq!(unscaled_bytes(128), [0x00, 0x80]);
        assert_eq!(unscaled_bytes(-1), [0xff]);
        assert_eq!(unscaled_bytes(-128), [0x80]);
        assert_eq!(unscaled_bytes(-129), [0xff, 0x7f]);
        assert_eq!(unscaled_bytes(6521), [0x19, 0x79]);
        for v in [
            0,
            1,
            -1,
            255,
            -256,
            i128::MAX,
            i128::MIN,
            123_456_789_012_345,
        ] {
            assert_eq!(unscaled_from_bytes(&unscaled_bytes(v)).unwrap(), v);
        }
        assert!(unscaled_from_bytes(&[]).is_err());
        assert!(unscaled_from_bytes(&[1; 17]).is_err());
    }

    #[test]
    fn varints_and_zigzag() {
        let mut out = Vec::new();
        write_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        assert_eq!(Cursor::new(&out).varint().unwrap(), 300);
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(-64), 127);
        for v in [0, 1, -1, i64::MAX, i64::MIN, 42, -4242] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert!(Cursor::new(&[0x80; 11]).varint().is_err());
        assert!(Cursor::new(&[0x80]).varint().is_err());
    }
}

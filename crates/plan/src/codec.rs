//! Binary encodings of [`Value`]s for state stores and changelog topics.
//!
//! Two encodings with different jobs:
//!
//! * [`encode_value`] / [`decode_value`] store a value whose type is known from the schema
//!   (aggregate states, table rows). They are compact — varints, no type tags, no field names —
//!   and deterministic, so equal values give equal bytes and changelogs compact well. A value
//!   whose shape does not match the declared type (which the planner should never produce) is
//!   not dropped: it is stored in the self-describing key form behind a marker byte and comes
//!   back unchanged.
//! * [`encode_key`] / [`decode_key`] turn group keys into RocksDB keys. They need no type, are
//!   injective (different key tuples never share bytes, so equal keys give equal bytes) and
//!   *byte-comparable*: for values of one type, comparing the encodings with `memcmp` orders
//!   them as the values order. Integers are big-endian with the sign bit flipped, doubles use
//!   the IEEE total-order trick, strings and bytes are escaped and terminated, and nested values
//!   are tagged and terminated, so one key can never be a prefix of another.

use crate::value::{Decimal, Value};
use runnel_sql::SqlType;

// Presence markers of the typed encoding.
const ABSENT: u8 = 0;
const TYPED: u8 = 1;
const TAGGED: u8 = 2;

// Tags of the key encoding. 0 terminates containers, so no tag may be 0.
const END: u8 = 0x00;
const T_NULL: u8 = 0x01;
const T_BOOLEAN: u8 = 0x02;
const T_INT: u8 = 0x03;
const T_BIGINT: u8 = 0x04;
const T_DOUBLE: u8 = 0x05;
const T_DECIMAL: u8 = 0x06;
const T_STRING: u8 = 0x07;
const T_BYTES: u8 = 0x08;
const T_DATE: u8 = 0x09;
const T_TIME: u8 = 0x0A;
const T_TIMESTAMP: u8 = 0x0B;
const T_ARRAY: u8 = 0x0C;
const T_MAP: u8 = 0x0D;
const T_STRUCT: u8 = 0x0E;
/// Precedes each struct field in the key encoding.
const FIELD: u8 = 0x01;

/// Nesting deeper than this is rejected when decoding, so corrupt input cannot exhaust the stack.
const MAX_DEPTH: usize = 128;

// ---------------------------------------------------------------------------------------------
// Typed encoding

/// Appends the compact encoding of `v`, a value of type `ty`, to `out`.
pub fn encode_value(v: &Value, ty: &SqlType, out: &mut Vec<u8>) {
    if v.is_null() {
        out.push(ABSENT);
    } else if matches_type(v, ty) {
        out.push(TYPED);
        encode_typed(v, ty, out);
    } else {
        out.push(TAGGED);
        encode_key_value(v, out);
    }
}

/// Decodes one value of type `ty` from the start of `bytes`; returns it and the number of bytes
/// read.
pub fn decode_value(bytes: &[u8], ty: &SqlType) -> Result<(Value, usize), String> {
    let mut r = Reader::new(bytes);
    let v = r.value(ty, 0)?;
    Ok((v, r.pos))
}

/// Whether `v`'s shape fits `ty` closely enough for the typed encoding to reproduce it exactly.
fn matches_type(v: &Value, ty: &SqlType) -> bool {
    match (v, ty) {
        (Value::Null, _) => true,
        (Value::Boolean(_), SqlType::Boolean)
        | (Value::Int(_), SqlType::Int)
        | (Value::Bigint(_), SqlType::Bigint)
        | (Value::Double(_), SqlType::Double)
        | (Value::Decimal(_), SqlType::Decimal { .. })
        | (Value::String(_), SqlType::String)
        | (Value::Bytes(_), SqlType::Bytes)
        | (Value::Date(_), SqlType::Date)
        | (Value::Time(_), SqlType::Time)
        | (Value::Timestamp(_), SqlType::Timestamp) => true,
        (Value::Array(items), SqlType::Array(elem)) => items.iter().all(|i| matches_type(i, elem)),
        (Value::Map(entries), SqlType::Map(kt, vt)) => entries
            .iter()
            .all(|(k, v)| matches_type(k, kt) && matches_type(v, vt)),
        (Value::Struct(fields), SqlType::Struct(schema)) => {
            fields.len() == schema.len()
                && fields
                    .iter()
                    .zip(schema)
                    .all(|((name, v), f)| *name == f.name && matches_type(v, &f.ty))
        }
        _ => false,
    }
}

/// The body of a value already known to match `ty` (see [`matches_type`]).
fn encode_typed(v: &Value, ty: &SqlType, out: &mut Vec<u8>) {
    match v {
        Value::Null => {}
        Value::Boolean(b) => out.push(u8::from(*b)),
        Value::Int(i) | Value::Date(i) | Value::Time(i) => put_varint(out, zigzag(*i as i64)),
        Value::Bigint(i) | Value::Timestamp(i) => put_varint(out, zigzag(*i)),
        Value::Double(d) => out.extend_from_slice(&d.to_bits().to_le_bytes()),
        Value::Decimal(d) => {
            out.push(d.scale);
            put_varint128(out, zigzag128(d.unscaled));
        }
        Value::String(s) => put_bytes(out, s.as_bytes()),
        Value::Bytes(b) => put_bytes(out, b),
        Value::Array(items) => {
            let elem = match ty {
                SqlType::Array(e) => e.as_ref(),
                other => other,
            };
            put_varint(out, items.len() as u64);
            for item in items {
                encode_value(item, elem, out);
            }
        }
        Value::Map(entries) => {
            let (kt, vt) = match ty {
                SqlType::Map(k, v) => (k.as_ref(), v.as_ref()),
                other => (other, other),
            };
            put_varint(out, entries.len() as u64);
            for (k, v) in entries {
                encode_value(k, kt, out);
                encode_value(v, vt, out);
            }
        }
        Value::Struct(fields) => {
            if let SqlType::Struct(schema) = ty {
                for ((_, v), f) in fields.iter().zip(schema) {
                    encode_value(v, &f.ty, out);
                }
            }
        }
    }
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn zigzag128(i: i128) -> u128 {
    ((i << 1) ^ (i >> 127)) as u128
}

fn unzigzag128(u: u128) -> i128 {
    ((u >> 1) as i128) ^ -((u & 1) as i128)
}

fn put_varint(out: &mut Vec<u8>, mut u: u64) {
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn put_varint128(out: &mut Vec<u8>, mut u: u128) {
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A cursor over encoded bytes; every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| format!("truncated value: expected a byte at offset {}", self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| format!("truncated value: {n} bytes needed at offset {}", self.pos))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut u = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            u |= ((b & 0x7F) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(u);
            }
        }
        Err(format!("malformed varint ending at offset {}", self.pos))
    }

    fn varint128(&mut self) -> Result<u128, String> {
        let mut u = 0u128;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            u |= ((b & 0x7F) as u128) << shift;
            if b & 0x80 == 0 {
                return Ok(u);
            }
        }
        Err(format!("malformed varint ending at offset {}", self.pos))
    }

    /// A length or count, checked against the bytes left (every element takes at least one).
    fn count(&mut self) -> Result<usize, String> {
        let n = self.varint()?;
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(format!(
                "corrupt value: length {n} exceeds the {left} bytes left at offset {}",
                self.pos
            ));
        }
        Ok(n as usize)
    }

    fn int32(&mut self) -> Result<i32, String> {
        let i = unzigzag(self.varint()?);
        i32::try_from(i).map_err(|_| format!("integer {i} out of range at offset {}", self.pos))
    }

    fn string(&mut self) -> Result<String, String> {
        let n = self.count()?;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).map_err(|e| format!("invalid UTF-8 in string: {e}"))
    }

    fn value(&mut self, ty: &SqlType, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("value nested too deeply".to_string());
        }
        match self.byte()? {
            ABSENT => Ok(Value::Null),
            TYPED => self.typed(ty, depth),
            TAGGED => self.key_value(depth),
            other => Err(format!(
                "unknown value marker {other} at offset {}",
                self.pos - 1
            )),
        }
    }

    fn typed(&mut self, ty: &SqlType, depth: usize) -> Result<Value, String> {
        Ok(match ty {
            SqlType::Boolean => match self.byte()? {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                b => return Err(format!("invalid BOOLEAN byte {b}")),
            },
            SqlType::Int => Value::Int(self.int32()?),
            SqlType::Date => Value::Date(self.int32()?),
            SqlType::Time => Value::Time(self.int32()?),
            SqlType::Bigint => Value::Bigint(unzigzag(self.varint()?)),
            SqlType::Timestamp => Value::Timestamp(unzigzag(self.varint()?)),
            SqlType::Double => Value::Double(f64::from_bits(u64::from_le_bytes(self.array()?))),
            SqlType::Decimal { .. } => {
                let scale = self.byte()?;
                Value::Decimal(Decimal::new(unzigzag128(self.varint128()?), scale))
            }
            SqlType::String => Value::String(self.string()?),
            SqlType::Bytes => {
                let n = self.count()?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            SqlType::Array(elem) => {
                let n = self.count()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(elem, depth + 1)?);
                }
                Value::Array(items)
            }
            SqlType::Map(kt, vt) => {
                let n = self.count()?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = self.value(kt, depth + 1)?;
                    let v = self.value(vt, depth + 1)?;
                    entries.push((k, v));
                }
                Value::Map(entries)
            }
            SqlType::Struct(schema) => {
                let mut fields = Vec::with_capacity(schema.len());
                for f in schema {
                    fields.push((f.name.clone(), self.value(&f.ty, depth + 1)?));
                }
                Value::Struct(fields)
            }
            SqlType::Custom(name) => {
                return Err(format!("cannot decode a value of unresolved type {name}"))
            }
        })
    }

    // -- key encoding ------------------------------------------------------------------------

    fn escaped(&mut self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        loop {
            match self.byte()? {
                0x00 => match self.byte()? {
                    0x00 => return Ok(out),
                    0xFF => out.push(0x00),
                    b => return Err(format!("invalid escape 0x00 0x{b:02X} in key")),
                },
                b => out.push(b),
            }
        }
    }

    fn key_value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("key nested too deeply".to_string());
        }
        let tag = self.byte()?;
        self.key_body(tag, depth)
    }

    fn key_body(&mut self, tag: u8, depth: usize) -> Result<Value, String> {
        let i32_of = |a: [u8; 4]| (u32::from_be_bytes(a) ^ 0x8000_0000) as i32;
        let i64_of = |a: [u8; 8]| (u64::from_be_bytes(a) ^ (1 << 63)) as i64;
        Ok(match tag {
            T_NULL => Value::Null,
            T_BOOLEAN => match self.byte()? {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                b => return Err(format!("invalid BOOLEAN byte {b} in key")),
            },
            T_INT => Value::Int(i32_of(self.array()?)),
            T_DATE => Value::Date(i32_of(self.array()?)),
            T_TIME => Value::Time(i32_of(self.array()?)),
            T_BIGINT => Value::Bigint(i64_of(self.array()?)),
            T_TIMESTAMP => Value::Timestamp(i64_of(self.array()?)),
            T_DOUBLE => {
                let u = u64::from_be_bytes(self.array()?);
                let bits = if u & (1 << 63) != 0 {
                    u ^ (1 << 63)
                } else {
                    !u
                };
                Value::Double(f64::from_bits(bits))
            }
            T_DECIMAL => {
                let scale = self.byte()?;
                let u = u128::from_be_bytes(self.array()?) ^ (1 << 127);
                Value::Decimal(Decimal::new(u as i128, scale))
            }
            T_STRING => Value::String(
                String::from_utf8(self.escaped()?)
                    .map_err(|e| format!("invalid UTF-8 in key: {e}"))?,
            ),
            T_BYTES => Value::Bytes(self.escaped()?),
            T_ARRAY => {
                let mut items = Vec::new();
                loop {
                    match self.byte()? {
                        END => break,
                        tag => items.push(self.key_body_nested(tag, depth)?),
                    }
                }
                Value::Array(items)
            }
            T_MAP => {
                let mut entries = Vec::new();
                loop {
                    match self.byte()? {
                        END => break,
                        tag => {
                            let k = self.key_body_nested(tag, depth)?;
                            let v = self.key_value(depth + 1)?;
                            entries.push((k, v));
                        }
                    }
                }
                Value::Map(entries)
            }
            T_STRUCT => {
                let mut fields = Vec::new();
                loop {
                    match self.byte()? {
                        END => break,
                        FIELD => {
                            let name = String::from_utf8(self.escaped()?)
                                .map_err(|e| format!("invalid UTF-8 in key: {e}"))?;
                            fields.push((name, self.key_value(depth + 1)?));
                        }
                        b => return Err(format!("invalid struct field marker {b} in key")),
                    }
                }
                Value::Struct(fields)
            }
            other => {
                return Err(format!(
                    "unknown key tag {other} at offset {}",
                    self.pos - 1
                ))
            }
        })
    }

    fn key_body_nested(&mut self, tag: u8, depth: usize) -> Result<Value, String> {
        if depth + 1 > MAX_DEPTH {
            return Err("key nested too deeply".to_string());
        }
        self.key_body(tag, depth + 1)
    }
}

// ---------------------------------------------------------------------------------------------
// Key encoding

/// The byte-comparable, injective encoding of a group key (see the module docs).
pub fn encode_key(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        encode_key_value(v, &mut out);
    }
    out
}

/// Decodes the values of a key written by [`encode_key`].
pub fn decode_key(bytes: &[u8]) -> Result<Vec<Value>, String> {
    let mut r = Reader::new(bytes);
    let mut values = Vec::new();
    while r.pos < bytes.len() {
        values.push(r.key_value(0)?);
    }
    Ok(values)
}

fn put_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0x00, 0x00]);
}

fn encode_key_value(v: &Value, out: &mut Vec<u8>) {
    let i32_key = |i: i32| ((i as u32) ^ 0x8000_0000).to_be_bytes();
    let i64_key = |i: i64| ((i as u64) ^ (1 << 63)).to_be_bytes();
    match v {
        Value::Null => out.push(T_NULL),
        Value::Boolean(b) => out.extend_from_slice(&[T_BOOLEAN, u8::from(*b)]),
        Value::Int(i) => {
            out.push(T_INT);
            out.extend_from_slice(&i32_key(*i));
        }
        Value::Date(i) => {
            out.push(T_DATE);
            out.extend_from_slice(&i32_key(*i));
        }
        Value::Time(i) => {
            out.push(T_TIME);
            out.extend_from_slice(&i32_key(*i));
        }
        Value::Bigint(i) => {
            out.push(T_BIGINT);
            out.extend_from_slice(&i64_key(*i));
        }
        Value::Timestamp(i) => {
            out.push(T_TIMESTAMP);
            out.extend_from_slice(&i64_key(*i));
        }
        Value::Double(d) => {
            // All NaNs are one key, as in Java's Double.equals; -0.0 and 0.0 stay distinct.
            let bits = if d.is_nan() {
                f64::NAN.to_bits()
            } else {
                d.to_bits()
            };
            let ordered = if bits & (1 << 63) != 0 {
                !bits
            } else {
                bits ^ (1 << 63)
            };
            out.push(T_DOUBLE);
            out.extend_from_slice(&ordered.to_be_bytes());
        }
        Value::Decimal(d) => {
            out.push(T_DECIMAL);
            out.push(d.scale);
            out.extend_from_slice(&((d.unscaled as u128) ^ (1 << 127)).to_be_bytes());
        }
        Value::String(s) => {
            out.push(T_STRING);
            put_escaped(out, s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(T_BYTES);
            put_escaped(out, b);
        }
        Value::Array(items) => {
            out.push(T_ARRAY);
            for item in items {
                encode_key_value(item, out);
            }
            out.push(END);
        }
        Value::Map(entries) => {
            out.push(T_MAP);
            for (k, v) in entries {
                encode_key_value(k, out);
                encode_key_value(v, out);
            }
            out.push(END);
        }
        Value::Struct(fields) => {
            out.push(T_STRUCT);
            for (name, v) in fields {
                out.push(FIELD);
                put_escaped(out, name.as_bytes());
                encode_key_value(v, out);
            }
            out.push(END);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_sql::types::StructField;

    fn round_trip(v: Value, ty: SqlType) {
        let mut bytes = vec![0xAB]; // encoding appends; earlier bytes are untouched
        encode_value(&v, &ty, &mut bytes);
        let (back, used) = decode_value(&bytes[1..], &ty).unwrap();
        assert_eq!(used, bytes.len() - 1, "{v:?}");
        assert_eq!(back, v, "{ty}");
        // Trailing data is not consumed.
        let mut longer = bytes[1..].to_vec();
        longer.push(7);
        assert_eq!(decode_value(&longer, &ty).unwrap().1, used);
    }

    fn key_round_trip(values: Vec<Value>) {
        let bytes = encode_key(&values);
        assert_eq!(decode_key(&bytes).unwrap(), values);
    }

    fn nested_type() -> SqlType {
        SqlType::Struct(vec![
            StructField::new("A", SqlType::String),
            StructField::new(
                "M",
                SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Double)),
            ),
            StructField::new("L", SqlType::Array(Box::new(SqlType::decimal(4, 1)))),
        ])
    }

    fn nested_value() -> Value {
        Value::Struct(vec![
            ("A".into(), Value::String("Early0".into())),
            (
                "M".into(),
                Value::Map(vec![
                    (Value::String("k".into()), Value::Double(1.234)),
                    (Value::String("n".into()), Value::Null),
                ]),
            ),
            (
                "L".into(),
                Value::Array(vec![Value::Decimal(Decimal::new(-1234, 1)), Value::Null]),
            ),
        ])
    }

    #[test]
    fn values_round_trip_for_every_type() {
        round_trip(Value::Null, SqlType::Int);
        round_trip(Value::Boolean(true), SqlType::Boolean);
        for i in [0, 1, -1, i32::MIN, i32::MAX] {
            round_trip(Value::Int(i), SqlType::Int);
            round_trip(Value::Date(i), SqlType::Date);
            round_trip(Value::Time(i), SqlType::Time);
        }
        for i in [0, -5, i64::MIN, i64::MAX] {
            round_trip(Value::Bigint(i), SqlType::Bigint);
            round_trip(Value::Timestamp(i), SqlType::Timestamp);
        }
        for d in [0.0, -0.0, 1.5, f64::INFINITY, f64::MIN_POSITIVE] {
            round_trip(Value::Double(d), SqlType::Double);
        }
        for u in [0, 54, -1012, i128::MAX, i128::MIN] {
            round_trip(Value::Decimal(Decimal::new(u, 2)), SqlType::decimal(38, 2));
        }
        round_trip(Value::String("héllo\0".into()), SqlType::String);
        round_trip(Value::String(String::new()), SqlType::String);
        round_trip(Value::Bytes(vec![0, 255, 0]), SqlType::Bytes);
        round_trip(
            Value::Array(vec![Value::Int(1), Value::Null]),
            SqlType::Array(Box::new(SqlType::Int)),
        );
        round_trip(nested_value(), nested_type());
        round_trip(
            Value::Array(vec![nested_value(), Value::Null]),
            SqlType::Array(Box::new(nested_type())),
        );
    }

    #[test]
    fn nan_round_trips() {
        let mut bytes = Vec::new();
        encode_value(&Value::Double(f64::NAN), &SqlType::Double, &mut bytes);
        let (v, _) = decode_value(&bytes, &SqlType::Double).unwrap();
        assert!(matches!(v, Value::Double(d) if d.is_nan()));
    }

    #[test]
    fn typed_encoding_is_compact() {
        let mut bytes = Vec::new();
        encode_value(&Value::Bigint(5), &SqlType::Bigint, &mut bytes);
        assert_eq!(bytes, vec![TYPED, 10]);
        let mut bytes = Vec::new();
        let avg = Value::Struct(vec![
            ("SUM".into(), Value::Int(3)),
            ("COUNT".into(), Value::Bigint(1)),
        ]);
        let ty = SqlType::Struct(vec![
            StructField::new("SUM", SqlType::Int),
            StructField::new("COUNT", SqlType::Bigint),
        ]);
        encode_value(&avg, &ty, &mut bytes);
        assert_eq!(bytes, vec![TYPED, TYPED, 6, TYPED, 2]);
    }

    #[test]
    fn mismatched_values_survive() {
        // A value that does not fit its declared type is stored self-describing.
        round_trip(Value::String("x".into()), SqlType::Int);
        round_trip(
            Value::Struct(vec![("B".into(), Value::Int(1))]),
            nested_type(),
        );
        round_trip(Value::Int(3), SqlType::Custom("T".into()));
    }

    #[test]
    fn corrupt_input_is_an_error() {
        assert!(decode_value(&[], &SqlType::Int).is_err());
        assert!(decode_value(&[TYPED], &SqlType::Double).is_err());
        assert!(decode_value(&[9], &SqlType::Int).is_err());
        assert!(decode_value(&[TYPED, 0xFF, 0xFF], &SqlType::String).is_err());
        assert!(decode_value(&[TYPED, 2, 0xFF, 0xFE], &SqlType::String).is_err());
        assert!(decode_value(&[TYPED, 0x80, 0x80, 0x80, 0x80, 0x10], &SqlType::Int).is_err());
        assert!(decode_key(&[T_STRING, b'a', 0x00]).is_err());
        assert!(decode_key(&[0x42]).is_err());
        let deep = vec![T_ARRAY; 10_000];
        assert!(decode_key(&deep).is_err());
    }

    #[test]
    fn keys_round_trip() {
        key_round_trip(vec![]);
        key_round_trip(vec![Value::Null, Value::Boolean(false), Value::Int(-3)]);
        key_round_trip(vec![
            Value::Bigint(7),
            Value::Double(-1.5),
            Value::Decimal(Decimal::new(-505, 2)),
            Value::String("a\0b".into()),
            Value::Bytes(vec![0, 0xFF]),
            Value::Date(1),
            Value::Time(2),
            Value::Timestamp(-3),
        ]);
        key_round_trip(vec![nested_value(), Value::Array(vec![])]);
    }

    #[test]
    fn int_keys_sort_like_ints() {
        let ints = [i32::MIN, -1000, -1, 0, 1, 255, 256, 70000, i32::MAX];
        for w in ints.windows(2) {
            assert!(encode_key(&[Value::Int(w[0])]) < encode_key(&[Value::Int(w[1])]));
        }
        let longs = [i64::MIN, -1, 0, 1, i64::MAX];
        for w in longs.windows(2) {
            assert!(encode_key(&[Value::Bigint(w[0])]) < encode_key(&[Value::Bigint(w[1])]));
        }
        let doubles = [
            f64::NEG_INFINITY,
            -2.5,
            -1.0,
            -0.0,
            0.0,
            1e-300,
            1.0,
            f64::INFINITY,
        ];
        for w in doubles.windows(2) {
            assert!(encode_key(&[Value::Double(w[0])]) < encode_key(&[Value::Double(w[1])]));
        }
        let dec = |u| Value::Decimal(Decimal::new(u, 2));
        assert!(encode_key(&[dec(-1012)]) < encode_key(&[dec(510)]));
    }

    #[test]
    fn string_keys_sort_and_never_prefix() {
        let strs = ["", "a", "a\0", "a\0b", "ab", "b"];
        for w in strs.windows(2) {
            let a = encode_key(&[Value::String(w[0].into())]);
            let b = encode_key(&[Value::String(w[1].into())]);
            assert!(a < b, "{:?} < {:?}", w[0], w[1]);
        }
        // Multi-column keys are injective: ("a", "bc") and ("ab", "c") differ.
        let k1 = encode_key(&[Value::String("a".into()), Value::String("bc".into())]);
        let k2 = encode_key(&[Value::String("ab".into()), Value::String("c".into())]);
        assert_ne!(k1, k2);
        // Equal keys give equal bytes, NaN included.
        assert_eq!(
            encode_key(&[Value::Double(f64::NAN)]),
            encode_key(&[Value::Double(-f64::NAN)])
        );
        // Arrays order element-wise, shorter first.
        let arr = |xs: &[i32]| Value::Array(xs.iter().map(|x| Value::Int(*x)).collect());
        assert!(encode_key(&[arr(&[1])]) < encode_key(&[arr(&[1, 0])]));
        assert!(encode_key(&[arr(&[1, 5])]) < encode_key(&[arr(&[2])]));
    }
}

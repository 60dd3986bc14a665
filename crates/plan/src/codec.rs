//! Binary encodings of values for state stores and changelog topics.
//!
//! `encode_value`/`decode_value` are compact and typed (the reader knows the type);
//! `encode_key` is self-describing, injective and byte-comparable, for group keys.

use crate::value::{Decimal, Value};
use runnel_sql::SqlType;

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_be_bytes());
}

/// Appends `v` (of type `ty`) to `out`: a presence byte, then the value.
pub fn encode_value(v: &Value, ty: &SqlType, out: &mut Vec<u8>) {
    if v.is_null() {
        out.push(0);
        return;
    }
    out.push(1);
    match (v, ty) {
        (Value::Boolean(b), _) => out.push(*b as u8),
        (Value::Int(i), _) | (Value::Date(i), _) | (Value::Time(i), _) => {
            out.extend_from_slice(&i.to_be_bytes())
        }
        (Value::Bigint(i), _) | (Value::Timestamp(i), _) => out.extend_from_slice(&i.to_be_bytes()),
        (Value::Double(d), _) => out.extend_from_slice(&d.to_bits().to_be_bytes()),
        (Value::Decimal(d), _) => {
            out.extend_from_slice(&d.unscaled.to_be_bytes());
            out.push(d.scale);
        }
        (Value::String(s), _) => {
            put_len(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        (Value::Bytes(b), _) => {
            put_len(out, b.len());
            out.extend_from_slice(b);
        }
        (Value::Array(items), SqlType::Array(inner)) => {
            put_len(out, items.len());
            for i in items {
                encode_value(i, inner, out);
            }
        }
        (Value::Map(entries), SqlType::Map(k, vt)) => {
            put_len(out, entries.len());
            for (ek, ev) in entries {
                encode_value(ek, k, out);
                encode_value(ev, vt, out);
            }
        }
        (Value::Struct(fields), SqlType::Struct(types)) => {
            for t in types {
                let v = fields
                    .iter()
                    .find(|(n, _)| n == &t.name)
                    .map(|(_, v)| v)
                    .unwrap_or(&Value::Null);
                encode_value(v, &t.ty, out);
            }
        }
        // A value whose shape does not match its type is stored as NULL.
        _ => {
            out.pop();
            out.push(0);
        }
    }
}

fn take<'a>(bytes: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], String> {
    let end = pos
        .checked_add(n)
        .filter(|e| *e <= bytes.len())
        .ok_or("truncated value")?;
    let s = &bytes[*pos..end];
    *pos = end;
    Ok(s)
}

fn take_len(bytes: &[u8], pos: &mut usize) -> Result<usize, String> {
    let b = take(bytes, pos, 4)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

fn decode_at(bytes: &[u8], pos: &mut usize, ty: &SqlType) -> Result<Value, String> {
    if take(bytes, pos, 1)?[0] == 0 {
        return Ok(Value::Null);
    }
    let arr = |b: &[u8]| -> [u8; 8] { b.try_into().unwrap_or([0; 8]) };
    let arr4 = |b: &[u8]| -> [u8; 4] { b.try_into().unwrap_or([0; 4]) };
    Ok(match ty {
        SqlType::Boolean => Value::Boolean(take(bytes, pos, 1)?[0] != 0),
        SqlType::Int => Value::Int(i32::from_be_bytes(arr4(take(bytes, pos, 4)?))),
        SqlType::Date => Value::Date(i32::from_be_bytes(arr4(take(bytes, pos, 4)?))),
        SqlType::Time => Value::Time(i32::from_be_bytes(arr4(take(bytes, pos, 4)?))),
        SqlType::Bigint => Value::Bigint(i64::from_be_bytes(arr(take(bytes, pos, 8)?))),
        SqlType::Timestamp => Value::Timestamp(i64::from_be_bytes(arr(take(bytes, pos, 8)?))),
        SqlType::Double => Value::Double(f64::from_bits(u64::from_be_bytes(arr(take(
            bytes, pos, 8,
        )?)))),
        SqlType::Decimal { .. } => {
            let b = take(bytes, pos, 16)?;
            let unscaled = i128::from_be_bytes(b.try_into().unwrap_or([0; 16]));
            Value::Decimal(Decimal::new(unscaled, take(bytes, pos, 1)?[0]))
        }
        SqlType::String | SqlType::Custom(_) => {
            let n = take_len(bytes, pos)?;
            Value::String(
                String::from_utf8(take(bytes, pos, n)?.to_vec()).map_err(|e| e.to_string())?,
            )
        }
        SqlType::Bytes => {
            let n = take_len(bytes, pos)?;
            Value::Bytes(take(bytes, pos, n)?.to_vec())
        }
        SqlType::Array(inner) => {
            let n = take_len(bytes, pos)?;
            Value::Array(
                (0..n)
                    .map(|_| decode_at(bytes, pos, inner))
                    .collect::<Result<_, _>>()?,
            )
        }
        SqlType::Map(k, v) => {
            let n = take_len(bytes, pos)?;
            Value::Map(
                (0..n)
                    .map(|_| Ok((decode_at(bytes, pos, k)?, decode_at(bytes, pos, v)?)))
                    .collect::<Result<_, String>>()?,
            )
        }
        SqlType::Struct(fields) => Value::Struct(
            fields
                .iter()
                .map(|f| Ok((f.name.clone(), decode_at(bytes, pos, &f.ty)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// Reads a value of type `ty`; returns it and the number of bytes used.
pub fn decode_value(bytes: &[u8], ty: &SqlType) -> Result<(Value, usize), String> {
    let mut pos = 0;
    let v = decode_at(bytes, &mut pos, ty)?;
    Ok((v, pos))
}

/// A byte-comparable, injective encoding of a group key (type-tagged, so keys of different
/// types never collide; integers order numerically).
pub fn encode_key(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        encode_key_value(v, &mut out);
    }
    out
}

fn encode_key_value(v: &Value, out: &mut Vec<u8>) {
    let escaped = |out: &mut Vec<u8>, b: &[u8]| {
        // 0x00 is escaped as 0x00 0xFF and the string ends with 0x00 0x00, keeping order.
        for &c in b {
            out.push(c);
            if c == 0 {
                out.push(0xFF);
            }
        }
        out.extend_from_slice(&[0, 0]);
    };
    match v {
        Value::Null => out.push(0),
        Value::Boolean(b) => out.extend_from_slice(&[1, *b as u8]),
        Value::Int(i) | Value::Date(i) | Value::Time(i) => {
            out.push(2);
            out.extend_from_slice(&((*i as u32) ^ 0x8000_0000).to_be_bytes());
        }
        Value::Bigint(i) | Value::Timestamp(i) => {
            out.push(3);
            out.extend_from_slice(&((*i as u64) ^ 0x8000_0000_0000_0000).to_be_bytes());
        }
        Value::Double(d) => {
            out.push(4);
            let bits = d.to_bits();
            let ordered = if bits >> 63 == 1 {
                !bits
            } else {
                bits | 0x8000_0000_0000_0000
            };
            out.extend_from_slice(&ordered.to_be_bytes());
        }
        Value::Decimal(d) => {
            out.push(5);
            out.extend_from_slice(&((d.unscaled as u128) ^ (1u128 << 127)).to_be_bytes());
            out.push(d.scale);
        }
        Value::String(s) => {
            out.push(6);
            escaped(out, s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(7);
            escaped(out, b);
        }
        Value::Array(items) => {
            out.push(8);
            for i in items {
                out.push(1);
                encode_key_value(i, out);
            }
            out.push(0);
        }
        Value::Map(entries) => {
            out.push(9);
            for (k, v) in entries {
                out.push(1);
                encode_key_value(k, out);
                encode_key_value(v, out);
            }
            out.push(0);
        }
        Value::Struct(fields) => {
            out.push(10);
            for (_, v) in fields {
                out.push(1);
                encode_key_value(v, out);
            }
            out.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_sql::StructField;

    #[test]
    fn values_round_trip() {
        let ty = SqlType::Struct(vec![
            StructField::new("A", SqlType::Array(Box::new(SqlType::Int))),
            StructField::new("D", SqlType::decimal(5, 2)),
            StructField::new("S", SqlType::String),
        ]);
        let v = Value::Struct(vec![
            ("A".into(), Value::Array(vec![Value::Int(-1), Value::Null])),
            ("D".into(), Value::Decimal(Decimal::new(12345, 2))),
            ("S".into(), Value::String("hé".into())),
        ]);
        let mut buf = Vec::new();
        encode_value(&v, &ty, &mut buf);
        encode_value(&Value::Bigint(7), &SqlType::Bigint, &mut buf);
        let (back, used) = decode_value(&buf, &ty).unwrap();
        assert_eq!(back, v);
        assert_eq!(
            decode_value(&buf[used..], &SqlType::Bigint).unwrap().0,
            Value::Bigint(7)
        );
        assert!(decode_value(&buf[..3], &ty).is_err());
    }

    #[test]
    fn keys_order_and_do_not_collide() {
        assert!(encode_key(&[Value::Int(-5)]) < encode_key(&[Value::Int(3)]));
        assert!(encode_key(&[Value::Bigint(-5)]) < encode_key(&[Value::Bigint(-4)]));
        assert!(
            encode_key(&[Value::String("a".into())]) < encode_key(&[Value::String("ab".into())])
        );
        assert_ne!(
            encode_key(&[Value::Int(1)]),
            encode_key(&[Value::Bigint(1)])
        );
        assert_ne!(
            encode_key(&[Value::String("a".into()), Value::String("b".into())]),
            encode_key(&[Value::String("a\u{0}b".into())])
        );
    }
}

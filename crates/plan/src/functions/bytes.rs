//! Conversions between BYTES and strings or numbers.
//!
//! The text encodings (`hex`, `utf8`, `ascii`, `base64`) are shared with ENCODE. They follow
//! ksqlDB: hex input may carry a `0x` prefix (odd digit counts are then left-padded) or be
//! written `X'..'`; ASCII decoding turns bytes above 127 into U+FFFD and ASCII encoding turns
//! non-ASCII characters into `?`, as Java's charsets do.

use super::sig::{bad_arg, sig, strict, Udf, P};
use super::ScalarFunction;
use crate::value::Value;
use base64::Engine;
use runnel_sql::SqlType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Hex,
    Utf8,
    Ascii,
    Base64,
}

impl Encoding {
    pub fn parse(name: &str) -> Option<Encoding> {
        match name.to_ascii_lowercase().as_str() {
            "hex" => Some(Encoding::Hex),
            "utf8" | "utf-8" => Some(Encoding::Utf8),
            "ascii" => Some(Encoding::Ascii),
            "base64" => Some(Encoding::Base64),
            _ => None,
        }
    }
}

fn hex_digits(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Text to bytes in the given encoding; `None` when the text is not valid for it.
pub(crate) fn decode(s: &str, enc: Encoding) -> Option<Vec<u8>> {
    match enc {
        Encoding::Hex => {
            if let Some(body) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                if body.len() % 2 == 1 {
                    return hex_digits(&format!("0{body}"));
                }
                return hex_digits(body);
            }
            if s.len() >= 3 && (s.starts_with("X'") || s.starts_with("x'")) && s.ends_with('\'') {
                return hex_digits(&s[2..s.len() - 1]);
            }
            hex_digits(s)
        }
        Encoding::Utf8 => Some(s.as_bytes().to_vec()),
        Encoding::Ascii => Some(
            s.chars()
                .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
                .collect(),
        ),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(s.trim_end())
            .ok(),
    }
}

/// Bytes to text in the given encoding (hex in upper case, as FROM_BYTES prints it).
pub(crate) fn encode(b: &[u8], enc: Encoding) -> String {
    match enc {
        Encoding::Hex => b.iter().map(|x| format!("{x:02X}")).collect(),
        Encoding::Utf8 => String::from_utf8_lossy(b).into_owned(),
        Encoding::Ascii => b
            .iter()
            .map(|x| if *x < 128 { *x as char } else { '\u{FFFD}' })
            .collect(),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(b),
    }
}

fn encoding_arg(v: &Value) -> Result<Encoding, String> {
    let name = v.as_str().ok_or_else(|| bad_arg("encoding", v))?;
    Encoding::parse(name).ok_or_else(|| {
        format!("Supported encoding types are: hex, utf8, ascii and base64. Got: {name}")
    })
}

fn byte_order_little(v: Option<&Value>) -> Result<bool, String> {
    match v {
        None => Ok(false),
        Some(Value::String(s)) => match s.to_ascii_uppercase().as_str() {
            "BIG_ENDIAN" => Ok(false),
            "LITTLE_ENDIAN" => Ok(true),
            other => Err(format!(
                "Byte order must be BIG_ENDIAN or LITTLE_ENDIAN. Unknown byte order {other}."
            )),
        },
        Some(other) => Err(bad_arg("byte order", other)),
    }
}

fn fixed<const N: usize>(v: &Value, what: &str) -> Result<[u8; N], String> {
    match v {
        Value::Bytes(b) => <[u8; N]>::try_from(b.as_slice()).map_err(|_| {
            format!(
                "Number of bytes must be equal to {N}, but found {}",
                b.len()
            )
        }),
        other => Err(bad_arg(what, other)),
    }
}

pub(super) fn register(out: &mut Vec<ScalarFunction>) {
    out.push(
        Udf::new(
            "TO_BYTES",
            "to_bytes",
            "Converts a string to bytes with an encoding.",
            vec![sig(vec![P::String, P::String], SqlType::Bytes)],
        )
        .build(|args, _| {
            strict(args, |a| {
                let enc = encoding_arg(&a[1])?;
                let s = a[0].as_str().ok_or_else(|| bad_arg("TO_BYTES", &a[0]))?;
                decode(s, enc).map(Value::Bytes).ok_or_else(|| {
                    format!("Unable to convert '{s}' to bytes with {enc:?} encoding")
                })
            })
        }),
    );
    out.push(
        Udf::new(
            "FROM_BYTES",
            "from_bytes",
            "Converts bytes to a string with an encoding.",
            vec![sig(vec![P::Bytes, P::String], SqlType::String)],
        )
        .build(|args, _| {
            strict(args, |a| match &a[0] {
                Value::Bytes(b) => Ok(Value::String(encode(b, encoding_arg(&a[1])?))),
                other => Err(bad_arg("FROM_BYTES", other)),
            })
        }),
    );
    let with_order = |t: SqlType| {
        vec![
            sig(vec![P::Bytes], t.clone()),
            sig(vec![P::Bytes, P::String], t),
        ]
    };
    out.push(
        Udf::new(
            "INT_FROM_BYTES",
            "int_from_bytes",
            "Reads a 4-byte integer.",
            with_order(SqlType::Int),
        )
        .build(|args, _| {
            strict(args, |a| {
                let b = fixed::<4>(&a[0], "INT_FROM_BYTES")?;
                let little = byte_order_little(a.get(1))?;
                Ok(Value::Int(if little {
                    i32::from_le_bytes(b)
                } else {
                    i32::from_be_bytes(b)
                }))
            })
        }),
    );
    out.push(
        Udf::new(
            "BIGINT_FROM_BYTES",
            "bigint_from_bytes",
            "Reads an 8-byte integer.",
            with_order(SqlType::Bigint),
        )
        .build(|args, _| {
            strict(args, |a| {
                let b = fixed::<8>(&a[0], "BIGINT_FROM_BYTES")?;
                let little = byte_order_little(a.get(1))?;
                Ok(Value::Bigint(if little {
                    i64::from_le_bytes(b)
                } else {
                    i64::from_be_bytes(b)
                }))
            })
        }),
    );
    out.push(
        Udf::new(
            "DOUBLE_FROM_BYTES",
            "double_from_bytes",
            "Reads an 8-byte IEEE-754 double.",
            with_order(SqlType::Double),
        )
        .build(|args, _| {
            strict(args, |a| {
                let b = fixed::<8>(&a[0], "DOUBLE_FROM_BYTES")?;
                let little = byte_order_little(a.get(1))?;
                Ok(Value::Double(if little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                }))
            })
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    }

    #[test]
    fn hex_forms() {
        assert_eq!(decode("0x578616d706C6521", Encoding::Hex).unwrap()[0], 5);
        assert_eq!(decode("578616d706C6521", Encoding::Hex), None);
        assert_eq!(decode("X''", Encoding::Hex), Some(vec![]));
        assert_eq!(decode("x'4578616d706C6521", Encoding::Hex), None);
        assert_eq!(decode("0x0x", Encoding::Hex), None);
        assert_eq!(decode("X'", Encoding::Hex), None);
        assert_eq!(encode(&b64("GrI="), Encoding::Hex), "1AB2");
        assert_eq!(decode("1aB2", Encoding::Hex), Some(b64("GrI=")));
    }

    #[test]
    fn ascii_and_utf8() {
        assert_eq!(
            decode("Ελλάδα", Encoding::Ascii).unwrap(),
            b"??????".to_vec()
        );
        assert_eq!(
            encode(&[0xc3, 0x9c, b'b'], Encoding::Ascii),
            "\u{FFFD}\u{FFFD}b"
        );
        assert_eq!(encode(&[0xc3, 0x9c], Encoding::Utf8), "Ü");
    }

    #[test]
    fn numbers_from_bytes() {
        assert_eq!(
            i32::from_be_bytes(fixed::<4>(&Value::Bytes(b64("AAAH5Q==")), "x").unwrap()),
            2021
        );
        assert_eq!(
            i64::from_be_bytes(fixed::<8>(&Value::Bytes(b64("AAAAASoF8gA=")), "x").unwrap()),
            5000000000
        );
        assert_eq!(
            f64::from_be_bytes(fixed::<8>(&Value::Bytes(b64("QICm/ZvJ9YI=")), "x").unwrap()),
            532.8738323
        );
        assert!(fixed::<4>(&Value::Bytes(vec![1]), "x").is_err());
    }
}

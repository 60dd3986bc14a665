//! String functions.
//!
//! ksqlDB strings are Java strings, so lengths and positions count UTF-16 code units (an emoji
//! has length 2) and comparisons are by code unit. Functions that index into strings therefore
//! work on UTF-16 buffers. Most functions return NULL for a NULL argument; the exceptions
//! (CONCAT skips NULLs, FIELD returns 0, INSTR returns 0, LPAD needs only the input) follow the
//! Java implementations.

use super::bytes::{decode, encode, Encoding};
use super::sig::{bad_arg, sig, strict, var, Udf, P};
use super::{CallInfo, ScalarFunction};
use crate::value::Value;
use md5::{Digest, Md5};
use regex::Regex;
use runnel_sql::SqlType;

fn arr(t: SqlType) -> SqlType {
    SqlType::Array(Box::new(t))
}

pub(super) fn register(out: &mut Vec<ScalarFunction>) {
    use SqlType::{Bytes, Int, String as Str};
    out.push(
        Udf::new(
            "CHR",
            "Chr",
            "The character for a code point.",
            vec![sig(vec![P::Int], Str), sig(vec![P::String], Str)],
        )
        .build(|args, _| {
            strict(args, |a| {
                Ok(chr(&a[0]).map(Value::String).unwrap_or(Value::Null))
            })
        }),
    );
    out.push(
        Udf::new(
            "CONCAT",
            "concat",
            "Concatenates strings or bytes, skipping NULLs.",
            vec![var(vec![P::String], Str), var(vec![P::Bytes], Bytes)],
        )
        .build(|args, info| Ok(concat(args, info))),
    );
    out.push(
        Udf::new(
            "CONCAT_WS",
            "concat_ws",
            "Concatenates with a separator, skipping NULLs.",
            vec![
                var(vec![P::String, P::String], Str),
                var(vec![P::Bytes, P::Bytes], Bytes),
            ],
        )
        .build(|args, _| Ok(concat_ws(args))),
    );
    out.push(
        Udf::new(
            "ELT",
            "ELT",
            "The n-th of the following arguments.",
            vec![var(vec![P::Int, P::String], Str)],
        )
        .build(|args, _| {
            Ok(match args.first().and_then(Value::as_i64) {
                Some(n) if n >= 1 && (n as usize) < args.len() => args[n as usize].clone(),
                _ => Value::Null,
            })
        }),
    );
    out.push(
        Udf::new(
            "FIELD",
            "FIELD",
            "The 1-based position of a string among the others, or 0.",
            vec![var(vec![P::String, P::String], Int)],
        )
        .build(|args, _| {
            let Some(Value::String(s)) = args.first() else {
                return Ok(Value::Int(0));
            };
            let pos = args[1..]
                .iter()
                .position(|v| v.as_str() == Some(s))
                .map(|i| i + 1)
                .unwrap_or(0);
            Ok(Value::Int(pos as i32))
        }),
    );
    out.push(
        Udf::new(
            "INITCAP",
            "InitCap",
            "Capitalizes the first letter of each word.",
            vec![sig(vec![P::String], Str)],
        )
        .build(|args, _| strict(args, |a| Ok(Value::String(initcap(text(&a[0])?))))),
    );
    out.push(
        Udf::new(
            "INSTR",
            "instr",
            "The position of a substring.",
            vec![
                sig(vec![P::String, P::String], Int),
                sig(vec![P::String, P::String, P::Int], Int),
                sig(vec![P::String, P::String, P::Int, P::Int], Int),
            ],
        )
        .build(|args, _| {
            let (Some(s), Some(sub)) = (args[0].as_str(), args[1].as_str()) else {
                return Ok(Value::Int(0));
            };
            let position = args.get(2).and_then(Value::as_i64).unwrap_or(1);
            let occurrence = args.get(3).and_then(Value::as_i64).unwrap_or(1);
            Ok(Value::Int(instr(s, sub, position, occurrence)))
        }),
    );
    for (name, display, upper) in [("LCASE", "lcase", false), ("UCASE", "ucase", true)] {
        out.push(
            Udf::new(
                name,
                display,
                "Changes the case of a string.",
                vec![sig(vec![P::String], Str)],
            )
            .build(move |args, _| {
                strict(args, |a| {
                    let s = text(&a[0])?;
                    Ok(Value::String(if upper {
                        s.to_uppercase()
                    } else {
                        s.to_lowercase()
                    }))
                })
            }),
        );
    }
    out.push(
        Udf::new(
            "LEN",
            "len",
            "The length of a string (UTF-16 units) or of bytes.",
            vec![sig(vec![P::String], Int), sig(vec![P::Bytes], Int)],
        )
        .build(|args, _| {
            strict(args, |a| match &a[0] {
                Value::String(s) => Ok(Value::Int(s.encode_utf16().count() as i32)),
                Value::Bytes(b) => Ok(Value::Int(b.len() as i32)),
                other => Err(bad_arg("LEN", other)),
            })
        }),
    );
    for (name, display, left) in [("LPAD", "LPad", true), ("RPAD", "RPad", false)] {
        out.push(
            Udf::new(
                name,
                display,
                "Pads a string or bytes to a length.",
                vec![
                    sig(vec![P::String, P::Int, P::String], Str),
                    sig(vec![P::Bytes, P::Int, P::Bytes], Bytes),
                ],
            )
            .build(move |args, _| Ok(pad(args, left))),
        );
    }
    out.push(
        Udf::new(
            "MD5",
            "md5",
            "The hex MD5 digest of a string's UTF-8 bytes.",
            vec![sig(vec![P::String], Str)],
        )
        .build(|args, _| {
            strict(args, |a| {
                let digest = Md5::digest(text(&a[0])?.as_bytes());
                Ok(Value::String(
                    digest.iter().map(|b| format!("{b:02x}")).collect(),
                ))
            })
        }),
    );
    register_masks(out);
    out.push(
        Udf::new(
            "REGEXP_EXTRACT",
            "regexp_extract",
            "The first match of a regular expression, or one of its groups.",
            vec![
                sig(vec![P::String, P::String], Str),
                sig(vec![P::String, P::String, P::Int], Str),
            ],
        )
        .build(|args, _| {
            strict(args, |a| {
                let re = regex(text(&a[0])?)?;
                let group = a.get(2).and_then(Value::as_i64).unwrap_or(0);
                let found = re
                    .captures(text(&a[1])?)
                    .and_then(|c| usize::try_from(group).ok().and_then(|g| c.get(g)))
                    .map(|m| Value::String(m.as_str().to_string()));
                Ok(found.unwrap_or(Value::Null))
            })
        }),
    );
    out.push(
        Udf::new(
            "REGEXP_EXTRACT_ALL",
            "regexp_extract_all",
            "All matches of a regular expression, or of one of its groups.",
            vec![
                sig(vec![P::String, P::String], arr(Str)),
                sig(vec![P::String, P::String, P::Int], arr(Str)),
            ],
        )
        .build(|args, _| {
            strict(args, |a| {
                let re = regex(text(&a[0])?)?;
                let group = usize::try_from(a.get(2).and_then(Value::as_i64).unwrap_or(0))
                    .map_err(|_| "Group index must be non-negative".to_string())?;
                if group >= re.captures_len() {
                    return Err(format!("No group {group}"));
                }
                let items = re
                    .captures_iter(text(&a[1])?)
                    .map(|c| {
                        c.get(group)
                            .map(|m| Value::String(m.as_str().into()))
                            .unwrap_or(Value::Null)
                    })
                    .collect();
                Ok(Value::Array(items))
            })
        }),
    );
    out.push(
        Udf::new(
            "REGEXP_REPLACE",
            "regexp_replace",
            "Replaces every match of a regular expression.",
            vec![sig(vec![P::String, P::String, P::String], Str)],
        )
        .build(|args, _| {
            strict(args, |a| {
                let re = regex(text(&a[1])?)?;
                let replacement = java_replacement(text(&a[2])?);
                Ok(Value::String(
                    re.replace_all(text(&a[0])?, replacement.as_str())
                        .into_owned(),
                ))
            })
        }),
    );
    out.push(
        Udf::new(
            "REGEXP_SPLIT_TO_ARRAY",
            "regexp_split_to_array",
            "Splits a string around matches of a regular expression.",
            vec![sig(vec![P::String, P::String], arr(Str))],
        )
        .build(|args, _| {
            strict(args, |a| {
                let re = regex(text(&a[1])?)?;
                let s = text(&a[0])?;
                Ok(Value::Array(
                    re.split(s).map(|p| Value::String(p.to_string())).collect(),
                ))
            })
        }),
    );
    out.push(
        Udf::new(
            "REPLACE",
            "replace",
            "Replaces every occurrence of a substring.",
            vec![sig(vec![P::String, P::String, P::String], Str)],
        )
        .build(|args, _| {
            strict(args, |a| {
                Ok(Value::String(
                    text(&a[0])?.replace(text(&a[1])?, text(&a[2])?),
                ))
            })
        }),
    );
    out.push(
        Udf::new(
            "SPLIT",
            "split",
            "Splits a string or bytes around a delimiter.",
            vec![
                sig(vec![P::String, P::String], arr(Str)),
                sig(vec![P::Bytes, P::Bytes], arr(Bytes)),
            ],
        )
        .build(|args, _| strict(args, split)),
    );
    out.push(
        Udf::new(
            "SPLIT_TO_MAP",
            "split_to_map",
            "Splits a string into key-value pairs.",
            vec![sig(
                vec![P::String, P::String, P::String],
                SqlType::Map(Box::new(Str), Box::new(Str)),
            )],
        )
        .build(|args, _| strict(args, split_to_map)),
    );
    out.push(
        Udf::new(
            "SUBSTRING",
            "substring",
            "A substring by 1-based position and length.",
            vec![
                sig(vec![P::String, P::Int], Str),
                sig(vec![P::String, P::Int, P::Int], Str),
                sig(vec![P::Bytes, P::Int], Bytes),
                sig(vec![P::Bytes, P::Int, P::Int], Bytes),
            ],
        )
        .build(substring),
    );
    out.push(
        Udf::new(
            "TRIM",
            "trim",
            "Removes leading and trailing whitespace.",
            vec![sig(vec![P::String], Str)],
        )
        .build(|args, _| {
            strict(args, |a| {
                Ok(Value::String(java_trim(text(&a[0])?).to_string()))
            })
        }),
    );
    out.push(
        Udf::new(
            "UUID",
            "uuid",
            "A random UUID, or the UUID text of 16 bytes.",
            vec![sig(vec![], Str), sig(vec![P::Bytes], Str)],
        )
        .build(|args, _| {
            if args.is_empty() {
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&super::math::random_u64().to_be_bytes());
                b[8..].copy_from_slice(&super::math::random_u64().to_be_bytes());
                b[6] = (b[6] & 0x0f) | 0x40;
                b[8] = (b[8] & 0x3f) | 0x80;
                return Ok(Value::String(uuid_text(&b)));
            }
            strict(args, |a| match &a[0] {
                Value::Bytes(b) if b.len() == 16 => Ok(Value::String(uuid_text(b))),
                Value::Bytes(_) => Ok(Value::Null),
                other => Err(bad_arg("UUID", other)),
            })
        }),
    );
    out.push(
        Udf::new(
            "ENCODE",
            "encode",
            "Re-encodes a string between hex, utf8, ascii and base64.",
            vec![sig(vec![P::String, P::String, P::String], Str)],
        )
        .build(|args, _| {
            strict(args, |a| {
                let (Some(from), Some(to)) =
                    (Encoding::parse(text(&a[1])?), Encoding::parse(text(&a[2])?))
                else {
                    return Ok(Value::Null);
                };
                let bytes = match decode(text(&a[0])?, from) {
                    Some(b) => b,
                    None => return Ok(Value::Null),
                };
                let s = encode(&bytes, to);
                Ok(Value::String(if to == Encoding::Hex {
                    s.to_ascii_lowercase()
                } else {
                    s
                }))
            })
        }),
    );
}

fn text(v: &Value) -> Result<&str, String> {
    v.as_str().ok_or_else(|| bad_arg("string function", v))
}

fn regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("Invalid regular expression pattern '{pattern}': {e}"))
}

/// Java replacement strings use `$n` and `\x` escapes; the regex crate uses `$n`/`${n}` and `$$`.
fn java_replacement(r: &str) -> String {
    let mut out = String::with_capacity(r.len());
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// `String.trim()`: strips characters up to U+0020 from both ends.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

fn chr(v: &Value) -> Option<String> {
    match v {
        Value::Int(code) => char::from_u32(u32::try_from(*code).ok()?).map(String::from),
        Value::String(s) => {
            let mut units = Vec::new();
            let mut rest = s.as_str();
            while !rest.is_empty() {
                let hex = rest.strip_prefix("\\u")?;
                let (digits, tail) = hex.split_at(hex.len().min(4));
                if digits.len() != 4 {
                    return None;
                }
                units.push(u16::from_str_radix(digits, 16).ok()?);
                rest = tail;
            }
            let decoded = String::from_utf16(&units).ok()?;
            (decoded.chars().count() == 1).then_some(decoded)
        }
        _ => None,
    }
}

fn concat(args: &[Value], info: &CallInfo) -> Value {
    if matches!(info.return_type, SqlType::Bytes) {
        let mut out = Vec::new();
        for v in args {
            if let Value::Bytes(b) = v {
                out.extend_from_slice(b);
            }
        }
        return Value::Bytes(out);
    }
    let mut out = String::new();
    for v in args {
        if let Value::String(s) = v {
            out.push_str(s);
        }
    }
    Value::String(out)
}

fn concat_ws(args: &[Value]) -> Value {
    match args.first() {
        Some(Value::String(sep)) => {
            let parts: Vec<&str> = args[1..].iter().filter_map(Value::as_str).collect();
            Value::String(parts.join(sep))
        }
        Some(Value::Bytes(sep)) => {
            let parts: Vec<&[u8]> = args[1..]
                .iter()
                .filter_map(|v| {
                    if let Value::Bytes(b) = v {
                        Some(b.as_slice())
                    } else {
                        None
                    }
                })
                .collect();
            Value::Bytes(parts.join(sep.as_slice()))
        }
        _ => Value::Null,
    }
}

fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if c.is_whitespace() {
            out.push(c);
            start = true;
        } else if start {
            out.extend(c.to_uppercase());
            start = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// `StringUtils.ordinalIndexOf` on UTF-16 units (overlapping matches), -1 when absent.
fn ordinal_index_of(s: &[u16], sub: &[u16], n: i64) -> i64 {
    if n <= 0 {
        return -1;
    }
    if sub.is_empty() {
        return 0;
    }
    let mut found = 0;
    let mut i = 0;
    while i + sub.len() <= s.len() {
        if &s[i..i + sub.len()] == sub {
            found += 1;
            if found == n {
                return i as i64;
            }
        }
        i += 1;
    }
    -1
}

/// ksqlDB's INSTR, including its arithmetic when the substring is absent.
fn instr(s: &str, sub: &str, position: i64, occurrence: i64) -> i32 {
    let mut s16: Vec<u16> = s.encode_utf16().collect();
    let mut sub16: Vec<u16> = sub.encode_utf16().collect();
    let len = s16.len() as i64;
    if position.abs() > len {
        return 0;
    }
    let reversed = position < 0;
    let position = position.abs();
    if reversed {
        s16.reverse();
        sub16.reverse();
    }
    let from = (position - 1).clamp(0, len) as usize;
    let i = ordinal_index_of(&s16[from..], &sub16, occurrence);
    (if reversed {
        len - position - i
    } else {
        i + position
    }) as i32
}

fn pad(args: &[Value], left: bool) -> Value {
    let target = match args.get(1).and_then(Value::as_i64) {
        Some(n) if n >= 0 => n as usize,
        _ => return Value::Null,
    };
    match (&args[0], &args[2]) {
        (Value::String(input), Value::String(padding)) if !padding.is_empty() => {
            let input: Vec<u16> = input.encode_utf16().collect();
            let padding: Vec<u16> = padding.encode_utf16().collect();
            let fill: Vec<u16> = padding
                .iter()
                .copied()
                .cycle()
                .take(target.saturating_sub(input.len()))
                .collect();
            let mut out = if left {
                [fill, input].concat()
            } else {
                [input, fill].concat()
            };
            out.truncate(target);
            Value::String(String::from_utf16_lossy(&out))
        }
        (Value::Bytes(input), Value::Bytes(padding)) if !padding.is_empty() => {
            let fill: Vec<u8> = padding
                .iter()
                .copied()
                .cycle()
                .take(target.saturating_sub(input.len()))
                .collect();
            let mut out = if left {
                [fill, input.clone()].concat()
            } else {
                [input.clone(), fill].concat()
            };
            if input.len() > target {
                out = input[..target].to_vec();
            }
            out.truncate(target);
            Value::Bytes(out)
        }
        _ => Value::Null,
    }
}

fn split(a: &[Value]) -> Result<Value, String> {
    match (&a[0], &a[1]) {
        (Value::String(s), Value::String(d)) => {
            if s.is_empty() {
                return Ok(Value::Array(vec![Value::String(String::new())]));
            }
            let parts: Vec<Value> = if d.is_empty() {
                s.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                s.split(d.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            Ok(Value::Array(parts))
        }
        (Value::Bytes(s), Value::Bytes(d)) => {
            if s.is_empty() {
                return Ok(Value::Array(vec![Value::Bytes(vec![])]));
            }
            if d.is_empty() {
                return Ok(Value::Array(
                    s.iter().map(|b| Value::Bytes(vec![*b])).collect(),
                ));
            }
            let mut parts = Vec::new();
            let mut start = 0;
            let mut i = 0;
            while i + d.len() <= s.len() {
                if &s[i..i + d.len()] == d.as_slice() {
                    parts.push(Value::Bytes(s[start..i].to_vec()));
                    i += d.len();
                    start = i;
                } else {
                    i += 1;
                }
            }
            parts.push(Value::Bytes(s[start..].to_vec()));
            Ok(Value::Array(parts))
        }
        (other, _) => Err(bad_arg("SPLIT", other)),
    }
}

fn split_to_map(a: &[Value]) -> Result<Value, String> {
    let (input, entry, kv) = (text(&a[0])?, text(&a[1])?, text(&a[2])?);
    if entry.is_empty() || kv.is_empty() || entry == kv {
        return Ok(Value::Null);
    }
    let mut out: Vec<(Value, Value)> = Vec::new();
    for e in input
        .split(entry)
        .filter(|e| !e.is_empty() && e.contains(kv))
    {
        let mut parts = e.split(kv);
        let k = parts.next().unwrap_or("").to_string();
        let v = parts.next().unwrap_or("").to_string();
        match out.iter_mut().find(|(key, _)| key.as_str() == Some(&k)) {
            Some(slot) => slot.1 = Value::String(v),
            None => out.push((Value::String(k), Value::String(v))),
        }
    }
    Ok(Value::Map(out))
}

/// 0-based start of a 1-based (negative: from the end) position, clamped to the value.
fn start_index(len: usize, pos: i64) -> usize {
    let len = len as i64;
    if pos >= 0 {
        (pos - 1).clamp(0, len) as usize
    } else {
        (len + pos).max(0) as usize
    }
}

fn substring(args: &[Value], info: &CallInfo) -> Result<Value, String> {
    strict(args, |a| {
        let pos = a[1].as_i64().ok_or_else(|| bad_arg("SUBSTRING", &a[1]))?;
        let length = a.get(2).and_then(Value::as_i64);
        let range = |len: usize| -> Result<(usize, usize), String> {
            if info.config.substring_legacy_args {
                // The pre-5.1 form: Java's `substring(start[, end])` with 0-based indices.
                let start = usize::try_from(pos)
                    .map_err(|_| format!("String index out of range: {pos}"))?;
                let end = match length {
                    Some(e) => {
                        usize::try_from(e).map_err(|_| format!("String index out of range: {e}"))?
                    }
                    None => len,
                };
                if start > end || end > len {
                    return Err(format!("begin {start}, end {end}, length {len}"));
                }
                return Ok((start, end));
            }
            let start = start_index(len, pos);
            let end = match length {
                Some(l) => (start as i64 + l).clamp(start as i64, len as i64) as usize,
                None => len,
            };
            Ok((start, end))
        };
        match &a[0] {
            Value::String(s) => {
                let units: Vec<u16> = s.encode_utf16().collect();
                let (start, end) = range(units.len())?;
                Ok(Value::String(String::from_utf16_lossy(&units[start..end])))
            }
            Value::Bytes(b) => {
                let (start, end) = range(b.len())?;
                Ok(Value::Bytes(b[start..end].to_vec()))
            }
            other => Err(bad_arg("SUBSTRING", other)),
        }
    })
}

fn uuid_text(b: &[u8]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The replacement for one character class: `None` keeps the original character.
fn mask_char(v: Option<&Value>, default: char) -> Option<char> {
    match v {
        None => Some(default),
        Some(Value::String(s)) => s.chars().next(),
        Some(_) => None,
    }
}

struct Masker {
    upper: Option<char>,
    lower: Option<char>,
    digit: Option<char>,
    other: Option<char>,
}

impl Masker {
    fn from_args(rest: &[Value]) -> Masker {
        Masker {
            upper: mask_char(rest.first(), 'X'),
            lower: mask_char(rest.get(1), 'x'),
            digit: mask_char(rest.get(2), 'n'),
            other: mask_char(rest.get(3), '-'),
        }
    }

    fn mask(&self, c: char) -> char {
        let m = if c.is_uppercase() {
            self.upper
        } else if c.is_lowercase() {
            self.lower
        } else if c.is_ascii_digit() || c.is_numeric() {
            self.digit
        } else {
            self.other
        };
        m.unwrap_or(c)
    }
}

#[derive(Clone, Copy)]
enum MaskKind {
    All,
    KeepLeft,
    KeepRight,
    Left,
    Right,
}

fn register_masks(out: &mut Vec<ScalarFunction>) {
    let s = || P::String;
    out.push(
        Udf::new(
            "MASK",
            "mask",
            "Masks letters and digits of a string.",
            vec![
                sig(vec![s()], SqlType::String),
                sig(vec![s(), s(), s(), s(), s()], SqlType::String),
            ],
        )
        .build(|args, _| mask(args, MaskKind::All)),
    );
    for (name, display, kind) in [
        ("MASK_KEEP_LEFT", "mask_keep_left", MaskKind::KeepLeft),
        ("MASK_KEEP_RIGHT", "mask_keep_right", MaskKind::KeepRight),
        ("MASK_LEFT", "mask_left", MaskKind::Left),
        ("MASK_RIGHT", "mask_right", MaskKind::Right),
    ] {
        out.push(
            Udf::new(
                name,
                display,
                "Masks part of a string.",
                vec![
                    sig(vec![s(), P::Int], SqlType::String),
                    sig(vec![s(), P::Int, s(), s(), s(), s()], SqlType::String),
                ],
            )
            .build(move |args, _| mask(args, kind)),
        );
    }
}

fn mask(args: &[Value], kind: MaskKind) -> Result<Value, String> {
    let Some(Value::String(input)) = args.first() else {
        return Ok(Value::Null);
    };
    let (n, rest) = match kind {
        MaskKind::All => (0, &args[1..]),
        _ => match args.get(1) {
            Some(Value::Int(n)) if *n >= 0 => (*n as usize, &args[2..]),
            Some(Value::Int(n)) => return Err(format!("function input must be >= 0, got {n}")),
            _ => return Ok(Value::Null),
        },
    };
    let masker = Masker::from_args(rest);
    let chars: Vec<char> = input.chars().collect();
    let len = chars.len();
    let out: String = chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let masked = match kind {
                MaskKind::All => true,
                MaskKind::KeepLeft => i >= n,
                MaskKind::KeepRight => i + n < len,
                MaskKind::Left => i < n,
                MaskKind::Right => i + n >= len,
            };
            if masked {
                masker.mask(*c)
            } else {
                *c
            }
        })
        .collect();
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::{FunctionConfig, FunctionRegistry};

    fn call_with(
        name: &str,
        args: Vec<Value>,
        types: Vec<SqlType>,
        config: FunctionConfig,
    ) -> Result<Value, String> {
        let reg = FunctionRegistry::builtin();
        let f = reg.scalar(name).unwrap();
        let r = (f.resolve)(&types)?;
        let info = CallInfo {
            arg_types: &r.arg_types,
            return_type: &r.return_type,
            config: &config,
        };
        (f.eval)(&args, &info)
    }

    fn call(name: &str, args: Vec<Value>) -> Value {
        let types = args
            .iter()
            .map(|v| match v {
                Value::Int(_) => SqlType::Int,
                Value::Bytes(_) => SqlType::Bytes,
                _ => SqlType::String,
            })
            .collect();
        call_with(name, args, types, FunctionConfig::default()).unwrap()
    }

    fn s(x: &str) -> Value {
        Value::String(x.into())
    }

    #[test]
    fn chr_codes() {
        assert_eq!(call("CHR", vec![Value::Int(75)]), s("K"));
        assert_eq!(call("CHR", vec![Value::Int(99000)]), s("\u{182b8}"));
        assert_eq!(call("CHR", vec![Value::Int(-1)]), Value::Null);
        assert_eq!(call("CHR", vec![s("\\u597d")]), s("\u{597d}"));
        assert_eq!(call("CHR", vec![s("\\ud820\\udeb8")]), s("\u{182b8}"));
        assert_eq!(call("CHR", vec![s("75")]), Value::Null);
        assert_eq!(call("CHR", vec![s("")]), Value::Null);
    }

    #[test]
    fn concat_family() {
        assert_eq!(
            call("CONCAT", vec![s("prefix-"), Value::Null, s("-postfix")]),
            s("prefix--postfix")
        );
        assert_eq!(
            call(
                "CONCAT_WS",
                vec![s("SEP"), s("foo"), Value::Null, s("baz"), s("literal")]
            ),
            s("fooSEPbazSEPliteral")
        );
        assert_eq!(call("CONCAT_WS", vec![Value::Null, s("foo")]), Value::Null);
        assert_eq!(
            call(
                "CONCAT",
                vec![Value::Bytes(b"yes".to_vec()), Value::Bytes(b"no".to_vec())]
            ),
            Value::Bytes(b"yesno".to_vec())
        );
        assert_eq!(
            call("ELT", vec![Value::Int(2), s("ignored"), s("something")]),
            s("something")
        );
        assert_eq!(
            call("FIELD", vec![s("hello"), s("world"), s("hello")]),
            Value::Int(2)
        );
        assert_eq!(
            call("FIELD", vec![s("hello"), Value::Null, s("world")]),
            Value::Int(0)
        );
    }

    #[test]
    fn case_trim_len_md5() {
        assert_eq!(
            call("INITCAP", vec![s("the   Quick br0wn fOx")]),
            s("The   Quick Br0wn Fox")
        );
        assert_eq!(call("INITCAP", vec![s("some_string")]), s("Some_string"));
        assert_eq!(
            call("TRIM", vec![s(" \t with white space \t")]),
            s("with white space")
        );
        assert_eq!(call("UCASE", vec![s("MiXeD")]), s("MIXED"));
        assert_eq!(call("LEN", vec![s("ABC")]), Value::Int(3));
        assert_eq!(call("LEN", vec![s("\u{1F600}")]), Value::Int(2));
        assert_eq!(
            call("MD5", vec![s("r1")]),
            s("7c92cf1eee8d99cc85f8355a3d6e4b86")
        );
        assert_eq!(
            call("MD5", vec![s("")]),
            s("d41d8cd98f00b204e9800998ecf8427e")
        );
    }

    #[test]
    fn substrings() {
        assert_eq!(
            call("SUBSTRING", vec![s("some_string"), Value::Int(6)]),
            s("string")
        );
        assert_eq!(
            call(
                "SUBSTRING",
                vec![s("some_string"), Value::Int(6), Value::Int(3)]
            ),
            s("str")
        );
        assert_eq!(call("SUBSTRING", vec![s("short"), Value::Int(6)]), s(""));
        assert_eq!(
            call(
                "SUBSTRING",
                vec![s("some string"), Value::Int(0), Value::Int(2)]
            ),
            s("so")
        );
        assert_eq!(
            call("SUBSTRING", vec![s("s"), Value::Int(2), Value::Int(5)]),
            s("")
        );
        assert_eq!(
            call("SUBSTRING", vec![s("hello"), Value::Int(-3)]),
            s("llo")
        );
        let r = call_with(
            "SUBSTRING",
            vec![s("x"), Value::Null],
            vec![SqlType::String, SqlType::Int],
            FunctionConfig::default(),
        );
        assert_eq!(r, Ok(Value::Null));
        assert_eq!(
            call(
                "SUBSTRING",
                vec![
                    Value::Bytes(b"some_string".to_vec()),
                    Value::Int(6),
                    Value::Int(3)
                ]
            ),
            Value::Bytes(b"str".to_vec())
        );
        let legacy = FunctionConfig {
            substring_legacy_args: true,
        };
        let r = call_with(
            "SUBSTRING",
            vec![s("hello"), Value::Int(1), Value::Int(3)],
            vec![SqlType::String, SqlType::Int, SqlType::Int],
            legacy,
        );
        assert_eq!(r, Ok(s("el")));
    }

    #[test]
    fn replace_split_regex() {
        assert_eq!(
            call("REPLACE", vec![s("anaconda"), s("a"), s("o")]),
            s("onocondo")
        );
        assert_eq!(
            call("REPLACE", vec![s("anaconda"), Value::Null, s("o")]),
            Value::Null
        );
        assert_eq!(
            call("REGEXP_REPLACE", vec![s("baabbabaa"), s("(ab)+"), s("cat")]),
            s("bacatbcataa")
        );
        let parts = |xs: &[&str]| Value::Array(xs.iter().map(|x| s(x)).collect());
        assert_eq!(
            call("SPLIT", vec![s("..a.."), s(".")]),
            parts(&["", "", "a", "", ""])
        );
        assert_eq!(
            call("SPLIT", vec![s("abc"), s("")]),
            parts(&["a", "b", "c"])
        );
        assert_eq!(call("SPLIT", vec![s(""), s(".")]), parts(&[""]));
        assert_eq!(
            call("REGEXP_SPLIT_TO_ARRAY", vec![s("aabcda"), s("(ab|cd)")]),
            parts(&["a", "", "a"])
        );
        assert_eq!(
            call(
                "REGEXP_EXTRACT",
                vec![s("(\\w+) (\\w+)"), s("hello world"), Value::Int(2)]
            ),
            s("world")
        );
        assert_eq!(
            call(
                "SPLIT",
                vec![Value::Bytes(b".abc.".to_vec()), Value::Bytes(b".".to_vec())]
            ),
            Value::Array(vec![
                Value::Bytes(vec![]),
                Value::Bytes(b"abc".to_vec()),
                Value::Bytes(vec![])
            ])
        );
        assert_eq!(
            call("SPLIT_TO_MAP", vec![s("a=1;;b=2;c"), s(";"), s("=")]),
            Value::Map(vec![(s("a"), s("1")), (s("b"), s("2"))])
        );
    }

    #[test]
    fn pads_instr_masks() {
        assert_eq!(
            call("LPAD", vec![s("abc"), Value::Int(6), s("xy")]),
            s("xyxabc")
        );
        assert_eq!(
            call("RPAD", vec![s("abc"), Value::Int(2), s("xy")]),
            s("ab")
        );
        assert_eq!(
            call("LPAD", vec![s("abc"), Value::Int(6), s("")]),
            Value::Null
        );
        assert_eq!(
            call("INSTR", vec![s("CORPORATE FLOOR"), s("OR")]),
            Value::Int(2)
        );
        assert_eq!(
            call("INSTR", vec![s("CORPORATE FLOOR"), s("OR"), Value::Int(3)]),
            Value::Int(5)
        );
        assert_eq!(
            call(
                "INSTR",
                vec![s("CORPORATE FLOOR"), s("OR"), Value::Int(-3), Value::Int(2)]
            ),
            Value::Int(2)
        );
        assert_eq!(call("MASK", vec![s("AbC-12")]), s("XxX-nn"));
        assert_eq!(
            call("MASK_KEEP_LEFT", vec![s("AbC-12"), Value::Int(2)]),
            s("AbX-nn")
        );
        assert_eq!(
            call("MASK_RIGHT", vec![s("AbC-12"), Value::Int(2)]),
            s("AbC-nn")
        );
        assert_eq!(
            call("ENCODE", vec![s("4578616d706C6521"), s("hex"), s("utf8")]),
            s("Example!")
        );
        assert_eq!(
            call("ENCODE", vec![s("Example!"), s("ascii"), s("hex")]),
            s("4578616d706c6521")
        );
        assert_eq!(
            call("ENCODE", vec![s("RXhhbXBsZSE="), s("base64"), s("null")]),
            Value::Null
        );
    }
}

//! JSON functions over JSON text, and TO_JSON_STRING.
//!
//! A small JSON reader is used instead of serde_json because ksqlDB echoes numbers exactly as
//! written (`EXTRACTJSONFIELD` of `1.23450` is `"1.23450"`) and keeps object keys in document
//! order; the reader keeps each number's text. Output is compact, as Jackson writes it.

use super::sig::{bad_arg, sig, strict, var, Udf, P};
use super::ScalarFunction;
use crate::cast::value_to_string;
use crate::value::{format_double_java, Value};
use base64::Engine;
use runnel_sql::SqlType;

/// A parsed JSON document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// The number's text as written.
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

struct Reader<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn ws(&mut self) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.pos) == Some(&b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &str, v: Json) -> Option<Json> {
        if self.s[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Some(v)
        } else {
            None
        }
    }

    fn value(&mut self, depth: usize) -> Option<Json> {
        if depth > 512 {
            return None;
        }
        self.ws();
        match *self.s.get(self.pos)? {
            b'n' => self.literal("null", Json::Null),
            b't' => self.literal("true", Json::Bool(true)),
            b'f' => self.literal("false", Json::Bool(false)),
            b'"' => self.string().map(Json::String),
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                self.ws();
                if self.eat(b']') {
                    return Some(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat(b']') {
                        return Some(Json::Array(items));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'{' => {
                self.pos += 1;
                let mut fields: Vec<(String, Json)> = Vec::new();
                self.ws();
                if self.eat(b'}') {
                    return Some(Json::Object(fields));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.ws();
                    if !self.eat(b':') {
                        return None;
                    }
                    let v = self.value(depth + 1)?;
                    match fields.iter_mut().find(|(k, _)| *k == key) {
                        Some(slot) => slot.1 = v,
                        None => fields.push((key, v)),
                    }
                    self.ws();
                    if self.eat(b'}') {
                        return Some(Json::Object(fields));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'-' | b'0'..=b'9' => self.number().map(Json::Number),
            _ => None,
        }
    }

    fn number(&mut self) -> Option<String> {
        let start = self.pos;
        self.eat(b'-');
        let digits = |r: &mut Self| {
            let s = r.pos;
            while r.pos < r.s.len() && r.s[r.pos].is_ascii_digit() {
                r.pos += 1;
            }
            r.pos > s
        };
        if !digits(self) {
            return None;
        }
        if self.eat(b'.') && !digits(self) {
            return None;
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if !digits(self) {
                return None;
            }
        }
        std::str::from_utf8(&self.s[start..self.pos])
            .ok()
            .map(str::to_string)
    }

    fn string(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut units: Vec<u16> = Vec::new();
        let mut out = String::new();
        loop {
            let b = *self.s.get(self.pos)?;
            match b {
                b'"' => {
                    self.pos += 1;
                    flush(&mut units, &mut out);
                    return Some(out);
                }
                b'\\' => {
                    self.pos += 1;
                    let e = *self.s.get(self.pos)?;
                    self.pos += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hex =
                                std::str::from_utf8(self.s.get(self.pos..self.pos + 4)?).ok()?;
                            units.push(u16::from_str_radix(hex, 16).ok()?);
                            self.pos += 4;
                            continue;
                        }
                        _ => return None,
                    };
                    flush(&mut units, &mut out);
                    out.push(c);
                }
                0..=0x1f => return None,
                _ => {
                    flush(&mut units, &mut out);
                    let rest = std::str::from_utf8(&self.s[self.pos..]).ok()?;
                    let c = rest.chars().next()?;
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }
}

fn flush(units: &mut Vec<u16>, out: &mut String) {
    if !units.is_empty() {
        out.push_str(&String::from_utf16_lossy(units));
        units.clear();
    }
}

/// Parses a complete JSON document.
pub(crate) fn parse(text: &str) -> Option<Json> {
    let mut r = Reader {
        s: text.as_bytes(),
        pos: 0,
    };
    let v = r.value(0)?;
    r.ws();
    (r.pos == text.len()).then_some(v)
}

/// Parses the first JSON value of `text`, ignoring whatever follows (Jackson's tree reader).
fn parse_prefix(text: &str) -> Option<Json> {
    Reader {
        s: text.as_bytes(),
        pos: 0,
    }
    .value(0)
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Json {
    /// Compact JSON text.
    pub fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_string(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, k);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }
}

/// A JSONPath step.
enum Step {
    Field(String),
    Index(i64),
}

/// The subset of JSONPath ksqlDB's EXTRACTJSONFIELD accepts: `$.a.b`, `$.a[0]`, `$['a']`.
fn path_steps(path: &str) -> Option<Vec<Step>> {
    let rest = path.trim().strip_prefix('$')?;
    let chars: Vec<char> = rest.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && chars[j] != '.' && chars[j] != '[' {
                    j += 1;
                }
                if j == start {
                    return None;
                }
                steps.push(Step::Field(chars[start..j].iter().collect()));
                i = j;
            }
            '[' => {
                let end = chars[i..].iter().position(|c| *c == ']')? + i;
                let inner: String = chars[i + 1..end].iter().collect();
                let inner = inner.trim();
                if let Some(q) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                    steps.push(Step::Field(q.to_string()));
                } else if let Some(q) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    steps.push(Step::Field(q.to_string()));
                } else {
                    steps.push(Step::Index(inner.parse().ok()?));
                }
                i = end + 1;
            }
            _ => return None,
        }
    }
    Some(steps)
}

fn extract(json: &Json, path: &str) -> Option<String> {
    let mut node = json;
    for step in path_steps(path)? {
        node = match (step, node) {
            (Step::Field(f), Json::Object(fields)) => &fields.iter().find(|(k, _)| *k == f)?.1,
            (Step::Index(i), Json::Array(items)) => items.get(usize::try_from(i).ok()?)?,
            _ => return None,
        };
    }
    match node {
        Json::String(s) => Some(s.clone()),
        Json::Null => None,
        other => Some(other.text()),
    }
}

/// JSON_CONCAT: objects merge (later keys win); otherwise arrays are spliced and other values
/// appended into one array.
fn concat_json(docs: Vec<Json>) -> Json {
    if docs.iter().all(|d| matches!(d, Json::Object(_))) {
        let mut fields: Vec<(String, Json)> = Vec::new();
        for d in docs {
            if let Json::Object(fs) = d {
                for (k, v) in fs {
                    match fields.iter_mut().find(|(key, _)| *key == k) {
                        Some(slot) => slot.1 = v,
                        None => fields.push((k, v)),
                    }
                }
            }
        }
        return Json::Object(fields);
    }
    let mut items = Vec::new();
    for d in docs {
        match d {
            Json::Array(xs) => items.extend(xs),
            other => items.push(other),
        }
    }
    Json::Array(items)
}

/// A value as JSON, the way ksqlDB's TO_JSON_STRING serializes it.
pub(crate) fn value_to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(i) => Json::Number(i.to_string()),
        Value::Bigint(i) => Json::Number(i.to_string()),
        Value::Double(d) if d.is_finite() => Json::Number(format_double_java(*d)),
        Value::Double(d) => Json::String(format_double_java(*d)),
        Value::Decimal(d) => Json::Number(d.to_string()),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Date(_) | Value::Time(_) | Value::Timestamp(_) => {
            Json::String(value_to_string(v, &SqlType::String))
        }
        Value::Array(items) => Json::Array(items.iter().map(value_to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    (
                        match k {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        },
                        value_to_json(v),
                    )
                })
                .collect(),
        ),
        Value::Struct(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect(),
        ),
    }
}

/// Whether a JSON element equals a SQL value (JSON_ARRAY_CONTAINS).
fn json_equals(j: &Json, v: &Value) -> bool {
    match (j, v) {
        (Json::Null, Value::Null) => true,
        (Json::Bool(a), Value::Boolean(b)) => a == b,
        (Json::String(a), Value::String(b)) => a == b,
        (Json::Number(n), Value::Int(_) | Value::Bigint(_)) => n.parse::<i64>().ok() == v.as_i64(),
        (Json::Number(n), Value::Double(d)) => n.parse::<f64>().ok() == Some(*d),
        (Json::Number(n), Value::Decimal(d)) => n.parse::<f64>().ok() == Some(d.to_f64()),
        _ => false,
    }
}

fn text(v: &Value) -> Result<&str, String> {
    v.as_str().ok_or_else(|| bad_arg("JSON function", v))
}

pub(super) fn register(out: &mut Vec<ScalarFunction>) {
    use SqlType::{Boolean, Int, String as Str};
    let arr = |t: SqlType| SqlType::Array(Box::new(t));
    out.push(
        Udf::new(
            "EXTRACTJSONFIELD",
            "EXTRACTJSONFIELD",
            "The value at a JSONPath in a JSON string.",
            vec![sig(vec![P::String, P::String], Str)],
        )
        .build(|args, _| {
            strict(args, |a| {
                let doc = parse_prefix(text(&a[0])?);
                Ok(doc
                    .and_then(|d| extract(&d, text(&a[1]).unwrap_or("")))
                    .map(Value::String)
                    .unwrap_or(Value::Null))
            })
        }),
    );
    out.push(
        Udf::new(
            "IS_JSON_STRING",
            "IS_JSON_STRING",
            "Whether a string is valid JSON.",
            vec![sig(vec![P::String], Boolean)],
        )
        .build(|args, _| Ok(Value::Boolean(args[0].as_str().and_then(parse).is_some()))),
    );
    out.push(
        Udf::new(
            "JSON_ARRAY_CONTAINS",
            "JSON_ARRAY_CONTAINS",
            "Whether a JSON array contains a value.",
            vec![sig(vec![P::String, P::Any], Boolean)],
        )
        .build(|args, _| {
            let Some(Json::Array(items)) = args[0].as_str().and_then(parse) else {
                return Ok(Value::Boolean(false));
            };
            Ok(Value::Boolean(
                items.iter().any(|j| json_equals(j, &args[1])),
            ))
        }),
    );
    out.push(
        Udf::new(
            "JSON_ARRAY_LENGTH",
            "JSON_ARRAY_LENGTH",
            "The length of a JSON array.",
            vec![sig(vec![P::String], Int)],
        )
        .build(|args, _| {
            strict(args, |a| match parse(text(&a[0])?) {
                Some(Json::Array(items)) => Ok(Value::Int(items.len() as i32)),
                _ => Ok(Value::Null),
            })
        }),
    );
    out.push(
        Udf::new(
            "JSON_CONCAT",
            "JSON_CONCAT",
            "Merges JSON objects or concatenates JSON arrays.",
            vec![var(vec![P::String], Str)],
        )
        .build(|args, _| {
            strict(args, |a| {
                let docs: Option<Vec<Json>> =
                    a.iter().map(|v| v.as_str().and_then(parse)).collect();
                Ok(docs
                    .map(|d| Value::String(concat_json(d).text()))
                    .unwrap_or(Value::Null))
            })
        }),
    );
    out.push(
        Udf::new(
            "JSON_ITEMS",
            "JSON_ITEMS",
            "The elements of a JSON array as JSON strings.",
            vec![sig(vec![P::String], arr(Str))],
        )
        .build(|args, _| {
            strict(args, |a| match parse(text(&a[0])?) {
                Some(Json::Array(items)) => Ok(Value::Array(
                    items.iter().map(|j| Value::String(j.text())).collect(),
                )),
                _ => Ok(Value::Null),
            })
        }),
    );
    out.push(
        Udf::new(
            "JSON_KEYS",
            "JSON_KEYS",
            "The keys of a JSON object.",
            vec![sig(vec![P::String], arr(Str))],
        )
        .build(|args, _| {
            strict(args, |a| match parse(text(&a[0])?) {
                Some(Json::Object(fields)) => Ok(Value::Array(
                    fields.into_iter().map(|(k, _)| Value::String(k)).collect(),
                )),
                _ => Ok(Value::Null),
            })
        }),
    );
    out.push(
        Udf::new(
            "JSON_RECORDS",
            "JSON_RECORDS",
            "The fields of a JSON object as a map of JSON strings.",
            vec![sig(
                vec![P::String],
                SqlType::Map(Box::new(Str), Box::new(Str)),
            )],
        )
        .build(|args, _| {
            strict(args, |a| match parse(text(&a[0])?) {
                Some(Json::Object(fields)) => Ok(Value::Map(
                    fields
                        .into_iter()
                        .map(|(k, v)| (Value::String(k), Value::String(v.text())))
                        .collect(),
                )),
                _ => Ok(Value::Null),
            })
        }),
    );
    out.push(
        Udf::new(
            "TO_JSON_STRING",
            "TO_JSON_STRING",
            "Serializes any value to JSON text.",
            vec![sig(vec![P::Any], Str)],
        )
        .build(|args, _| Ok(Value::String(value_to_json(&args[0]).text()))),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_paths() {
        let doc = parse_prefix(r#"{"name": "cdd", "version": "2", "@type": "VAL"}}"#).unwrap();
        assert_eq!(extract(&doc, "$.name").as_deref(), Some("cdd"));
        assert_eq!(extract(&doc, "$.@type").as_deref(), Some("VAL"));
        let doc = parse(r#"{"array": [1.23450]}"#).unwrap();
        assert_eq!(extract(&doc, "$.array[0]").as_deref(), Some("1.23450"));
        assert_eq!(extract(&doc, "$.array[1]"), None);
        assert_eq!(extract(&doc, "$.array[-1]"), None);
        assert_eq!(extract(&doc, "$.array").as_deref(), Some("[1.23450]"));
    }

    #[test]
    fn validity() {
        assert!(parse("1").is_some());
        assert!(parse("\"abc\"").is_some());
        assert!(parse("abc").is_none());
        assert!(parse("").is_none());
        assert!(parse("[1, 2, 3]").is_some());
    }

    #[test]
    fn concat() {
        let c = |xs: &[&str]| concat_json(xs.iter().map(|x| parse(x).unwrap()).collect()).text();
        assert_eq!(c(&[r#"{"a": 1}"#, r#"{"b": 2}"#]), r#"{"a":1,"b":2}"#);
        assert_eq!(
            c(&[r#"{"a": {"5": 6}}"#, r#"{"a": {"3": 4}}"#]),
            r#"{"a":{"3":4}}"#
        );
        assert_eq!(c(&["null", "null"]), "[null,null]");
        assert_eq!(c(&["[1, 2]", r#"{"a": 1}"#, "4"]), r#"[1,2,{"a":1},4]"#);
        assert_eq!(
            c(&["[1, [2]]", "[[[3]], [[[4]]]]"]),
            "[1,[2],[[3]],[[[4]]]]"
        );
    }

    #[test]
    fn to_json_string() {
        assert_eq!(value_to_json(&Value::Double(123.456)).text(), "123.456");
        assert_eq!(value_to_json(&Value::Time(60220000)).text(), "\"16:43:40\"");
        assert_eq!(value_to_json(&Value::Date(1000)).text(), "\"1972-09-27\"");
        assert_eq!(
            value_to_json(&Value::Timestamp(60220000000)).text(),
            "\"1971-11-28T23:46:40.000\""
        );
        assert_eq!(value_to_json(&Value::Bytes(vec![b'!'])).text(), "\"IQ==\"");
        let s = Value::Struct(vec![
            ("ID".into(), Value::Int(1)),
            ("NAME".into(), Value::String("Alice".into())),
        ]);
        assert_eq!(value_to_json(&s).text(), r#"{"ID":1,"NAME":"Alice"}"#);
        assert_eq!(value_to_json(&Value::Null).text(), "null");
    }

    #[test]
    fn array_contains() {
        let Some(Json::Array(items)) = parse(r#"["Pink", null]"#) else {
            panic!()
        };
        assert!(items
            .iter()
            .any(|j| json_equals(j, &Value::String("Pink".into()))));
        let Some(Json::Array(items)) = parse("[1, 2]") else {
            panic!()
        };
        assert!(items.iter().any(|j| json_equals(j, &Value::Int(2))));
    }
}

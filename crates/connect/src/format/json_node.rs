//! A JSON tree that keeps numbers as written, with a parser and writer that behave like the
//! Jackson setup ksqlDB uses.
//!
//! Why not `serde_json::Value`: ksqlDB reads floats as exact `BigDecimal`s (so `10.10` keeps its
//! scale for DECIMAL columns), names Jackson node classes in its error messages (`TextNode`,
//! `DecimalNode`, ...), and re-serializes nested objects for STRING columns with Java's number
//! formatting. Keeping the number text makes all of that exact.

use super::java::BigDec;

/// Jackson's default maximum nesting depth; deeper documents are rejected rather than recursed.
const MAX_DEPTH: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JsonNode {
    /// Empty input (Jackson's `MissingNode`).
    Missing,
    Null,
    Bool(bool),
    /// A number exactly as written (valid JSON number syntax).
    Number(String),
    String(String),
    Array(Vec<JsonNode>),
    /// Fields in document order; a repeated name keeps its first position and its last value.
    Object(Vec<(String, JsonNode)>),
}

impl JsonNode {
    /// Parses one JSON document. As with Jackson's `readTree`, content after the first value is
    /// ignored, except that a top-level number must be followed by whitespace or the end.
    pub(crate) fn parse(bytes: &[u8]) -> Result<JsonNode, String> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| format!("Invalid UTF-8 in JSON at byte {}", e.valid_up_to()))?;
        let mut parser = Parser {
            s: text.as_bytes(),
            text,
            pos: 0,
            depth: 0,
        };
        parser.skip_ws();
        if parser.pos == parser.s.len() {
            return Ok(JsonNode::Missing);
        }
        let node = parser.value()?;
        if matches!(node, JsonNode::Number(_)) {
            if let Some(c) = parser.peek_char() {
                if !is_ws(c as u32) {
                    return Err(format!(
                        "Unexpected character ({}): Expected space separating root-level values",
                        describe(c)
                    ));
                }
            }
        }
        Ok(node)
    }

    /// The Jackson node class, as ksqlDB names it in "Can't convert type" messages.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            JsonNode::Missing => "MissingNode",
            JsonNode::Null => "NullNode",
            JsonNode::Bool(_) => "BooleanNode",
            JsonNode::Number(text) => {
                if text.contains(['.', 'e', 'E']) {
                    "DecimalNode"
                } else if text.parse::<i32>().is_ok() {
                    "IntNode"
                } else if text.parse::<i64>().is_ok() {
                    "LongNode"
                } else {
                    "BigIntegerNode"
                }
            }
            JsonNode::String(_) => "TextNode",
            JsonNode::Array(_) => "ArrayNode",
            JsonNode::Object(_) => "ObjectNode",
        }
    }

    /// The number's exact value, as Jackson's `decimalValue()` gives it.
    pub(crate) fn number(&self) -> Option<BigDec> {
        match self {
            JsonNode::Number(text) => BigDec::parse(text),
            _ => None,
        }
    }

    /// Jackson's `asText()` for scalar nodes.
    pub(crate) fn as_text(&self) -> String {
        match self {
            JsonNode::Missing | JsonNode::Array(_) | JsonNode::Object(_) => String::new(),
            JsonNode::Null => "null".to_string(),
            JsonNode::Bool(b) => b.to_string(),
            JsonNode::Number(_) => self
                .number()
                .map(|n| n.to_java_string())
                .unwrap_or_default(),
            JsonNode::String(s) => s.clone(),
        }
    }

    /// Looks up an object field as ksqlDB does: the exact name first, then a field whose
    /// upper-cased name equals `name` (the last such field wins).
    pub(crate) fn field(&self, name: &str) -> Option<&JsonNode> {
        let JsonNode::Object(fields) = self else {
            return None;
        };
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .or_else(|| {
                fields
                    .iter()
                    .rev()
                    .find(|(k, _)| k.to_uppercase() == name)
                    .map(|(_, v)| v)
            })
    }

    /// Compact JSON text, numbers printed as Java's `BigDecimal`/`Long` print them (what ksqlDB
    /// stores when an object arrives for a STRING column).
    pub(crate) fn write_compact(&self, out: &mut String) {
        match self {
            JsonNode::Missing => {}
            JsonNode::Null => out.push_str("null"),
            JsonNode::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            JsonNode::Number(_) => out.push_str(&self.as_text()),
            JsonNode::String(s) => write_string(out, s),
            JsonNode::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_compact(out);
                }
                out.push(']');
            }
            JsonNode::Object(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, k);
                    out.push(':');
                    v.write_compact(out);
                }
                out.push('}');
            }
        }
    }
}

/// Writes `s` as a JSON string the way Jackson escapes it: `"` and `\`, short escapes for
/// `\b \t \n \f \r`, `\u00XX` (upper-case hex) for other control characters, everything else raw.
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn is_ws(c: u32) -> bool {
    matches!(c, 0x20 | 0x09 | 0x0A | 0x0D)
}

fn describe(c: char) -> String {
    format!("'{c}' (code {})", c as u32)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn peek_char(&self) -> Option<char> {
        self.text
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| is_ws(u32::from(b))) {
            self.pos += 1;
        }
    }

    fn unexpected(&self, expecting: &str) -> String {
        match self.peek_char() {
            Some(c) => format!("Unexpected character ({}): {expecting}", describe(c)),
            None => format!("Unexpected end-of-input: {expecting}"),
        }
    }

    fn value(&mut self) -> Result<JsonNode, String> {
        match self.peek() {
            Some(b'{') => self.nested(Self::object),
            Some(b'[') => self.nested(Self::array),
            Some(b'"') => self.string().map(JsonNode::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.literal(),
            None => Err(self.unexpected("expected a value")),
        }
    }

    fn nested(
        &mut self,
        parse: fn(&mut Self) -> Result<JsonNode, String>,
    ) -> Result<JsonNode, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "Document nesting depth exceeds the maximum allowed ({MAX_DEPTH})"
            ));
        }
        let node = parse(self);
        self.depth -= 1;
        node
    }

    fn literal(&mut self) -> Result<JsonNode, String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            self.pos += 1;
        }
        let token = &self.text[start..self.pos];
        match token {
            "true" => Ok(JsonNode::Bool(true)),
            "false" => Ok(JsonNode::Bool(false)),
            "null" => Ok(JsonNode::Null),
            "" => {
                self.pos = start;
                Err(self.unexpected(
                    "expected a valid value (JSON String, Number, Array, Object or token 'null', \
                     'true' or 'false')",
                ))
            }
            _ => Err(format!(
                "Unrecognized token '{token}': was expecting (JSON String, Number, Array, Object \
                 or token 'null', 'true' or 'false')"
            )),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<JsonNode, String> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let int_digits = self.digits();
        if int_digits == 0 {
            return Err(self.unexpected("expected digit (0-9) to follow minus sign"));
        }
        if int_digits > 1 && self.s[int_start] == b'0' {
            return Err("Invalid numeric value: Leading zeroes not allowed".to_string());
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.unexpected("Decimal point not followed by a digit"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.unexpected("Exponent indicator not followed by a digit"));
            }
        }
        Ok(JsonNode::Number(self.text[start..self.pos].to_string()))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let hex = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
        match hex {
            Some(h) => {
                self.pos += 4;
                u32::from_str_radix(h, 16).map_err(|e| e.to_string())
            }
            None => Err(self.unexpected("expected a hex-digit for character escape sequence")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while self
                .peek()
                .is_some_and(|b| b != b'"' && b != b'\\' && b >= 0x20)
            {
                self.pos += 1;
            }
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek() {
                None => {
                    return Err(
                        "Unexpected end-of-input: was expecting closing quote for a string value"
                            .to_string(),
                    )
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escaped = self.peek();
                    self.pos += 1;
                    match escaped {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => out.push(self.unicode_escape()?),
                        _ => {
                            self.pos -= 1;
                            return Err(self.unexpected("Unrecognized character escape"));
                        }
                    }
                }
                Some(b) => {
                    return Err(format!(
                        "Illegal unquoted character ((CTRL-CHAR, code {b})): has to be escaped \
                         using backslash to be included in string value"
                    ))
                }
            }
        }
    }

    /// The character of a `\uXXXX` escape (after the `u`), joining surrogate pairs. A lone
    /// surrogate cannot live in a Rust string and becomes U+FFFD.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let first = self.hex4()?;
        if (0xD800..0xDC00).contains(&first) && self.text[self.pos..].starts_with("\\u") {
            let save = self.pos;
            self.pos += 2;
            let second = self.hex4()?;
            if (0xDC00..0xE000).contains(&second) {
                let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                return Ok(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            self.pos = save;
        }
        Ok(char::from_u32(first).unwrap_or(char::REPLACEMENT_CHARACTER))
    }

    fn array(&mut self) -> Result<JsonNode, String> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(JsonNode::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(JsonNode::Array(items));
                }
                _ => return Err(self.unexpected("was expecting comma to separate Array entries")),
            }
        }
    }

    fn object(&mut self) -> Result<JsonNode, String> {
        self.pos += 1;
        let mut fields: Vec<(String, JsonNode)> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(JsonNode::Object(fields));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.unexpected("was expecting double-quote to start field name"));
            }
            let name = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(
                    self.unexpected("was expecting a colon to separate field name and value")
                );
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value()?;
            match fields.iter_mut().find(|(k, _)| *k == name) {
                Some(existing) => existing.1 = value,
                None => fields.push((name, value)),
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(JsonNode::Object(fields));
                }
                _ => return Err(self.unexpected("was expecting comma to separate Object entries")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> JsonNode {
        JsonNode::parse(text.as_bytes()).unwrap()
    }

    fn compact(text: &str) -> String {
        let mut out = String::new();
        parse(text).write_compact(&mut out);
        out
    }

    #[test]
    fn parses_documents_keeping_number_text() {
        assert_eq!(parse(" 10.10 "), JsonNode::Number("10.10".into()));
        assert_eq!(
            parse("[1, -2.5e3, null]"),
            JsonNode::Array(vec![
                JsonNode::Number("1".into()),
                JsonNode::Number("-2.5e3".into()),
                JsonNode::Null,
            ])
        );
        assert_eq!(
            parse(r#"{"a": "x\ny\u00e9\ud83d\ude00", "b": true}"#),
            JsonNode::Object(vec![
                ("a".into(), JsonNode::String("x\nyé😀".into())),
                ("b".into(), JsonNode::Bool(true)),
            ])
        );
        assert_eq!(parse(""), JsonNode::Missing);
        assert_eq!(parse("  \n"), JsonNode::Missing);
    }

    #[test]
    fn duplicate_names_keep_first_position_and_last_value() {
        assert_eq!(compact(r#"{"a":1,"b":2,"a":3}"#), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn trailing_content_is_ignored_like_jackson() {
        assert_eq!(
            parse(r#"{"a":1} trailing"#),
            JsonNode::Object(vec![("a".into(), JsonNode::Number("1".into()))])
        );
        assert_eq!(parse("1 2"), JsonNode::Number("1".into()));
    }

    #[test]
    fn rejects_malformed_json() {
        for bad in [
            "{",
            "[1,",
            "[1 2]",
            "{\"a\" 1}",
            "{a:1}",
            "01",
            "1.",
            "-",
            "1e",
            "abc",
            "truex",
            "\"abc",
            "\"a\tb\"",
            "\"\\x\"",
            "123abc",
            "NaN",
            "{\"a\":1,}",
            "\"\\u12\"",
        ] {
            assert!(
                JsonNode::parse(bad.as_bytes()).is_err(),
                "{bad:?} should fail"
            );
        }
        assert!(JsonNode::parse(&[0xff, 0xfe]).is_err());
        let deep = "[".repeat(2000);
        assert!(JsonNode::parse(deep.as_bytes())
            .unwrap_err()
            .contains("nesting depth"));
    }

    #[test]
    fn node_kinds_are_jackson_class_names() {
        assert_eq!(parse("1").kind_name(), "IntNode");
        assert_eq!(parse("10000000000").kind_name(), "LongNode");
        assert_eq!(parse("100000000000000000000").kind_name(), "BigIntegerNode");
        assert_eq!(parse("1.0").kind_name(), "DecimalNode");
        assert_eq!(parse("\"x\"").kind_name(), "TextNode");
        assert_eq!(parse("[]").kind_name(), "ArrayNode");
        assert_eq!(parse("{}").kind_name(), "ObjectNode");
        assert_eq!(parse("true").kind_name(), "BooleanNode");
    }

    #[test]
    fn field_lookup_is_exact_then_upper_case() {
        let node = parse(r#"{"foo":1,"FOO":2,"bar":3}"#);
        assert_eq!(node.field("FOO"), Some(&JsonNode::Number("2".into())));
        assert_eq!(node.field("BAR"), Some(&JsonNode::Number("3".into())));
        assert_eq!(node.field("bar"), Some(&JsonNode::Number("3".into())));
        assert_eq!(node.field("Bar"), None);
    }

    #[test]
    fn compact_output_uses_java_number_text() {
        assert_eq!(
            compact(r#"{ "a" : [1, 1.50, 1e3, -0], "b":"q\"\u0001" }"#),
            r#"{"a":[1,1.50,1E+3,0],"b":"q\"\u0001"}"#
        );
    }
}

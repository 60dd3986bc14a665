//! The `DELIMITED` format: one CSV record per Kafka record.
//!
//! ksqlDB uses Apache Commons CSV's default format with the configured delimiter, and its exact
//! quoting rules show up in the output bytes, so both directions are implemented here rather than
//! with a CSV crate:
//!
//! * reading: `"` quotes a field (`""` inside is one quote), only the first record counts, leading
//!   blank lines are skipped, an empty field is NULL (so an empty string reads as NULL);
//! * writing ("minimal" quoting as that Commons CSV version does it): the first field is quoted
//!   unless it starts with an ASCII letter or digit (so a leading `-12.5` is written `"-12.5"`),
//!   any field is quoted if it starts with a character up to `#`, contains a quote, the delimiter,
//!   CR or LF, or ends with a character up to space; NULL is an empty, unquoted field.
//!
//! Values are written as Java prints them (doubles `1.0E-5`, decimals in plain notation, BYTES as
//! base64, DATE/TIME/TIMESTAMP as numbers) and parsed with Java's parsers.

use std::iter::Peekable;
use std::str::Chars;

use runnel_plan::{format_double_java, Decimal, Value};
use runnel_sql::SqlType;

use super::java::{number_format_message, parse_boolean, parse_double, BigDec};
use super::{
    base64_decode, base64_encode, check_column_count, integral, mismatch, time_of_day, Column,
    RowSerde, SerdeError,
};

const DESERIALIZE_ERROR: &str = "Error deserializing delimited";
const SERIALIZE_ERROR: &str = "Error serializing CSV message";

#[derive(Debug)]
pub(crate) struct DelimitedSerde {
    columns: Vec<Column>,
    delimiter: char,
}

impl DelimitedSerde {
    pub(crate) fn new(columns: &[Column], delimiter: char) -> Self {
        DelimitedSerde {
            columns: columns.to_vec(),
            delimiter,
        }
    }
}

impl RowSerde for DelimitedSerde {
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Option<Vec<Value>>, SerdeError> {
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        if self.columns.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let text = String::from_utf8_lossy(bytes);
        let fail = |cause: String| SerdeError::with_cause(DESERIALIZE_ERROR, cause);
        let fields = first_record(&text, self.delimiter)
            .map_err(fail)?
            .ok_or_else(|| fail("No fields in record".to_string()))?;
        if fields.len() != self.columns.len() {
            return Err(fail(format!(
                "Column count mismatch on deserialization. expected: {}, got: {}",
                self.columns.len(),
                fields.len()
            )));
        }
        self.columns
            .iter()
            .zip(&fields)
            .map(|(column, field)| {
                if field.is_empty() {
                    Ok(Value::Null)
                } else {
                    parse_field(&column.ty, field).map_err(fail)
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn serialize(&self, row: Option<&[Value]>) -> Result<Option<Vec<u8>>, SerdeError> {
        let Some(row) = row else {
            return Ok(None);
        };
        check_column_count(self.columns.len(), row)?;
        let mut out = String::new();
        for (i, (column, value)) in self.columns.iter().zip(row).enumerate() {
            if i > 0 {
                out.push(self.delimiter);
            }
            let text = field_text(&column.ty, value)
                .map_err(|e| SerdeError::with_cause(SERIALIZE_ERROR, e))?;
            if let Some(text) = text {
                print_field(&mut out, &text, i == 0, self.delimiter);
            }
        }
        Ok(Some(out.into_bytes()))
    }
}

/// Parses one non-empty field with the Java parser ksqlDB uses for the column type.
fn parse_field(ty: &SqlType, text: &str) -> Result<Value, String> {
    let long = || text.parse::<i64>().map_err(|_| number_format_message(text));
    Ok(match ty {
        SqlType::Boolean => Value::Boolean(parse_boolean(text)),
        SqlType::Int => Value::Int(text.parse().map_err(|_| number_format_message(text))?),
        SqlType::Bigint => Value::Bigint(long()?),
        SqlType::Double => {
            Value::Double(parse_double(text).ok_or_else(|| number_format_message(text))?)
        }
        SqlType::String => Value::String(text.to_string()),
        SqlType::Decimal { precision, scale } => {
            let decimal = BigDec::parse(text).ok_or_else(|| number_format_message(text))?;
            Value::Decimal(decimal.ensure_fit(*precision, *scale)?)
        }
        SqlType::Bytes => Value::Bytes(base64_decode(text)?),
        SqlType::Timestamp => Value::Timestamp(long()?),
        SqlType::Date => Value::Date(text.parse().map_err(|_| number_format_message(text))?),
        SqlType::Time => Value::Time(time_of_day(long()?)?),
        SqlType::Array(_) | SqlType::Map(..) | SqlType::Struct(_) | SqlType::Custom(_) => {
            return Err(format!(
                "The 'DELIMITED' format does not support type '{}'",
                ty.base_name()
            ))
        }
    })
}

/// The text of one field as Java's `toString` gives it; `None` for NULL.
fn field_text(ty: &SqlType, value: &Value) -> Result<Option<String>, String> {
    Ok(Some(match (ty, value) {
        (_, Value::Null) => return Ok(None),
        (SqlType::Boolean, Value::Boolean(b)) => b.to_string(),
        (
            SqlType::Int | SqlType::Bigint | SqlType::Date | SqlType::Time | SqlType::Timestamp,
            v,
        ) => integral(v).ok_or_else(|| mismatch(ty, value))?.to_string(),
        (SqlType::Double, v) => format_double_java(v.as_f64().ok_or_else(|| mismatch(ty, value))?),
        (SqlType::Decimal { scale, .. }, v) => {
            let decimal = match v {
                Value::Decimal(d) => *d,
                Value::Int(i) => Decimal::new(i128::from(*i), 0),
                Value::Bigint(i) => Decimal::new(i128::from(*i), 0),
                _ => return Err(mismatch(ty, value)),
            };
            decimal.rescale(*scale).unwrap_or(decimal).to_string()
        }
        (SqlType::String, Value::String(s)) => s.clone(),
        (SqlType::Bytes, Value::Bytes(b)) => base64_encode(b),
        _ => return Err(mismatch(ty, value)),
    }))
}

/// Appends `value` with Commons CSV's minimal quoting; `first` is true for a record's first field.
fn print_field(out: &mut String, value: &str, first: bool, delimiter: char) {
    if needs_quotes(value, first, delimiter) {
        out.push('"');
        for c in value.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn needs_quotes(value: &str, first: bool, delimiter: char) -> bool {
    let Some(head) = value.chars().next() else {
        // An empty first field is quoted so that the record is not an empty line.
        return first;
    };
    if first && !head.is_ascii_alphanumeric() {
        return true;
    }
    if head <= '#' {
        return true;
    }
    if value
        .chars()
        .any(|c| c == '\n' || c == '\r' || c == '"' || c == delimiter)
    {
        return true;
    }
    value.chars().last().is_some_and(|c| c <= ' ')
}

/// Reads the first record of `text` (Commons CSV `DEFAULT` with `delimiter`): `Ok(None)` when
/// there is none (empty input or only line breaks).
fn first_record(text: &str, delimiter: char) -> Result<Option<Vec<String>>, String> {
    let mut lexer = Lexer {
        chars: text.chars().peekable(),
        delimiter,
    };
    while let Some(&c) = lexer.chars.peek() {
        if c != '\n' && c != '\r' {
            break;
        }
        lexer.chars.next();
    }
    if lexer.chars.peek().is_none() {
        return Ok(None);
    }
    let mut fields = Vec::new();
    loop {
        let (field, end) = lexer.token()?;
        fields.push(field);
        if end != TokenEnd::Delimiter {
            return Ok(Some(fields));
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum TokenEnd {
    Delimiter,
    EndOfRecord,
}

struct Lexer<'a> {
    chars: Peekable<Chars<'a>>,
    delimiter: char,
}

impl Lexer<'_> {
    /// Consumes a line break starting with `c` (CR, LF or CRLF); false if `c` is not one.
    fn end_of_line(&mut self, c: char) -> bool {
        if c == '\r' && self.chars.peek() == Some(&'\n') {
            self.chars.next();
        }
        c == '\n' || c == '\r'
    }

    fn token(&mut self) -> Result<(String, TokenEnd), String> {
        let mut content = String::new();
        let Some(c) = self.chars.next() else {
            return Ok((content, TokenEnd::EndOfRecord));
        };
        if c == self.delimiter {
            return Ok((content, TokenEnd::Delimiter));
        }
        if self.end_of_line(c) {
            return Ok((content, TokenEnd::EndOfRecord));
        }
        if c == '"' {
            return self.quoted(content);
        }
        content.push(c);
        while let Some(c) = self.chars.next() {
            if c == self.delimiter {
                return Ok((content, TokenEnd::Delimiter));
            }
            if self.end_of_line(c) {
                break;
            }
            content.push(c);
        }
        Ok((content, TokenEnd::EndOfRecord))
    }

    /// The rest of a quoted field (after its opening quote).
    fn quoted(&mut self, mut content: String) -> Result<(String, TokenEnd), String> {
        loop {
            match self.chars.next() {
                None => {
                    return Err(
                        "(startline 1) EOF reached before encapsulated token finished".to_string(),
                    )
                }
                Some('"') if self.chars.peek() == Some(&'"') => {
                    self.chars.next();
                    content.push('"');
                }
                Some('"') => break,
                Some(c) => content.push(c),
            }
        }
        // After the closing quote only whitespace may come before the delimiter or line end.
        loop {
            match self.chars.next() {
                None => return Ok((content, TokenEnd::EndOfRecord)),
                Some(c) if c == self.delimiter => return Ok((content, TokenEnd::Delimiter)),
                Some(c) if self.end_of_line(c) => return Ok((content, TokenEnd::EndOfRecord)),
                Some(c) if java_is_whitespace(c) => {}
                Some(_) => {
                    return Err(
                        "(line 1) invalid char between encapsulated token and delimiter"
                            .to_string(),
                    )
                }
            }
        }
    }
}

/// `Character.isWhitespace`: Unicode spaces except the non-breaking ones, plus the ASCII
/// separators U+001C..U+001F.
fn java_is_whitespace(c: char) -> bool {
    match c {
        '\u{1c}'..='\u{1f}' => true,
        '\u{a0}' | '\u{2007}' | '\u{202f}' | '\u{85}' => false,
        c => c.is_whitespace(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde(cols: &[(&str, SqlType)], delimiter: char) -> DelimitedSerde {
        let columns: Vec<Column> = cols
            .iter()
            .map(|(n, t)| Column::new(*n, t.clone()))
            .collect();
        DelimitedSerde::new(&columns, delimiter)
    }

    fn read(s: &DelimitedSerde, text: &str) -> Result<Option<Vec<Value>>, SerdeError> {
        s.deserialize(Some(text.as_bytes()))
    }

    fn write(s: &DelimitedSerde, row: &[Value]) -> String {
        String::from_utf8(s.serialize(Some(row)).unwrap().unwrap()).unwrap()
    }

    fn record(text: &str) -> Vec<String> {
        first_record(text, ',').unwrap().unwrap()
    }

    #[test]
    fn reads_csv_like_commons_csv() {
        assert_eq!(record("a,b,c"), ["a", "b", "c"]);
        assert_eq!(record("\"foo\",\"bar\""), ["foo", "bar"]);
        assert_eq!(record("\"a,b\",\"say \"\"hi\"\"\""), ["a,b", "say \"hi\""]);
        assert_eq!(record("a,"), ["a", ""]);
        assert_eq!(record(",,"), ["", "", ""]);
        assert_eq!(record("a b ,c\"d"), ["a b ", "c\"d"]);
        assert_eq!(record("\n\r\nx,y\nignored,line"), ["x", "y"]);
        assert_eq!(record("\"q\"  ,z"), ["q", "z"]);
        assert_eq!(first_record("", ',').unwrap(), None);
        assert!(first_record("\"open", ',').is_err());
        assert!(first_record("\"a\"b,c", ',').is_err());
        assert_eq!(
            first_record("foo,bar;baz", ';').unwrap().unwrap(),
            ["foo,bar", "baz"]
        );
    }

    #[test]
    fn row_round_trip_with_types() {
        let s = serde(
            &[
                ("ID", SqlType::Bigint),
                ("NAME", SqlType::String),
                ("V", SqlType::Int),
                ("D", SqlType::Double),
                ("B", SqlType::Boolean),
                ("BY", SqlType::Bytes),
                ("TS", SqlType::Timestamp),
            ],
            ',',
        );
        let row = read(&s, "0,zero,100,10.0,true,ew==,100").unwrap().unwrap();
        assert_eq!(
            row,
            vec![
                Value::Bigint(0),
                Value::String("zero".into()),
                Value::Int(100),
                Value::Double(10.0),
                Value::Boolean(true),
                Value::Bytes(vec![123]),
                Value::Timestamp(100),
            ]
        );
        assert_eq!(write(&s, &row), "0,zero,100,10.0,true,ew==,100");
        let nulls = vec![Value::Null; 7];
        assert_eq!(write(&s, &nulls), ",,,,,,");
        assert_eq!(read(&s, ",,,,,,").unwrap().unwrap(), nulls);
    }

    #[test]
    fn decimals_rescale_and_negative_first_fields_are_quoted() {
        let s = serde(&[("V", SqlType::decimal(33, 16))], ',');
        let dec = |text: &str| read(&s, text).unwrap().unwrap().remove(0);
        assert_eq!(write(&s, &[dec(".12")]), "0.1200000000000000");
        assert_eq!(
            write(&s, &[dec("-12345.12")]),
            "\"-12345.1200000000000000\""
        );
        assert_eq!(
            write(&s, &[dec("\"-12345.12\"")]),
            "\"-12345.1200000000000000\""
        );
        assert_eq!(
            write(&s, &[dec("12345678987654321.2345678987654321")]),
            "12345678987654321.2345678987654321"
        );
        let date = serde(&[("D", SqlType::Date), ("X", SqlType::Int)], ',');
        assert_eq!(
            write(&date, &[Value::Date(-10), Value::Int(-1)]),
            "\"-10\",-1"
        );
    }

    #[test]
    fn quoting_rules() {
        let s = serde(&[("A", SqlType::String), ("B", SqlType::String)], ',');
        let w = |a: &str, b: &str| write(&s, &[Value::String(a.into()), Value::String(b.into())]);
        assert_eq!(w("a,b", "c"), "\"a,b\",c");
        assert_eq!(w("x", "say \"hi\""), "x,\"say \"\"hi\"\"\"");
        assert_eq!(w("", ""), "\"\",");
        assert_eq!(w("x", " lead"), "x,\" lead\"");
        assert_eq!(w("x", "trail "), "x,\"trail \"");
        assert_eq!(w("x", "#hash"), "x,\"#hash\"");
        assert_eq!(w("x", "$dollar"), "x,$dollar");
        assert_eq!(w("_x", "y"), "\"_x\",y");
        assert_eq!(w("é", "é"), "\"é\",é");
        assert_eq!(w("line\nbreak", "ok"), "\"line\nbreak\",ok");
        // Empty strings read back as NULL, as in ksqlDB.
        assert_eq!(
            read(&s, "\"\",").unwrap().unwrap(),
            vec![Value::Null, Value::Null]
        );
        let tab = serde(&[("A", SqlType::String), ("B", SqlType::String)], '\t');
        assert_eq!(
            write(
                &tab,
                &[Value::String("a b".into()), Value::String("c\td".into())]
            ),
            "a b\t\"c\td\""
        );
    }

    #[test]
    fn deserialization_errors() {
        let s = serde(&[("A", SqlType::Int), ("B", SqlType::String)], ',');
        assert_eq!(
            read(&s, "1").unwrap_err().to_string(),
            "Error deserializing delimited: Column count mismatch on deserialization. expected: 2, got: 1"
        );
        assert_eq!(
            read(&s, "x,y").unwrap_err().to_string(),
            "Error deserializing delimited: For input string: \"x\""
        );
        assert_eq!(
            read(&s, "").unwrap_err().to_string(),
            "Error deserializing delimited: No fields in record"
        );
        assert!(read(&s, "\"1,b").is_err());
        let d = serde(&[("D", SqlType::decimal(4, 2))], ',');
        assert!(read(&d, "1.234")
            .unwrap_err()
            .to_string()
            .contains("without rounding"));
        assert_eq!(s.deserialize(None).unwrap(), None);
        assert_eq!(s.serialize(None).unwrap(), None);
    }

    #[test]
    fn booleans_parse_like_java() {
        let s = serde(&[("B", SqlType::Boolean)], ',');
        assert_eq!(read(&s, "TRUE").unwrap(), Some(vec![Value::Boolean(true)]));
        assert_eq!(read(&s, "yes").unwrap(), Some(vec![Value::Boolean(false)]));
    }
}

//! The fast path for reading a flat JSON object of scalars into a row.
//!
//! Most streaming records are one object of scalar fields (`{"auction":1001,"price":17,...}`).
//! Building the exact Jackson-like tree of [`super::json_node`] for them costs more than the rest
//! of a simple query, so this reader scans the bytes once and converts each field straight to its
//! column type. It only handles the cases whose result is obviously the same as the tree path's:
//! scalars without escapes, integers that fit a long, doubles, booleans and nulls. Anything else
//! (a nested value, an escape, a duplicate or case-folded field that could be ambiguous, a number
//! that needs `BigDecimal` rules, malformed input) makes it give up with `None`, and the caller
//! reads the record through the tree path, which also produces the exact error message. So the
//! fast path can never change what a record means, only how quickly it is read.

use runnel_plan::Value;
use runnel_sql::SqlType;

use super::Column;

/// Reads `bytes` as a flat object into one value per column (missing fields are NULL), or `None`
/// when the record needs the full reader.
pub(crate) fn read_flat_row(bytes: &[u8], columns: &[Column]) -> Option<Vec<Value>> {
    // Strings are sliced out of the input, so it must be UTF-8 as a whole (the tree path checks
    // the same and reports the offending byte).
    std::str::from_utf8(bytes).ok()?;
    let mut scan = Scanner { s: bytes, pos: 0 };
    scan.skip_ws();
    if scan.next()? != b'{' {
        return None;
    }
    // One allocation per record: the row itself, with the fields seen so far in a bit set
    // (wider schemas take the tree path).
    if columns.len() > 128 {
        return None;
    }
    let mut row: Vec<Value> = vec![Value::Null; columns.len()];
    let mut seen: u128 = 0;
    scan.skip_ws();
    if scan.peek()? == b'}' {
        return Some(row);
    }
    loop {
        scan.skip_ws();
        let name = scan.plain_string()?;
        scan.skip_ws();
        if scan.next()? != b':' {
            return None;
        }
        scan.skip_ws();
        match column_for(columns, name) {
            Some(index) => {
                // A second field for the same column (repeated or case-folded names) follows
                // Jackson's merging rules, which only the tree path implements.
                if seen & (1 << index) != 0 {
                    return None;
                }
                seen |= 1 << index;
                row[index] = scan.scalar(&columns[index].ty)?;
            }
            None => scan.skip_scalar()?,
        }
        scan.skip_ws();
        match scan.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    // As with Jackson's readTree, whatever follows the object is ignored.
    Some(row)
}

/// The column a field fills: the exact name, else the upper-cased name (ksqlDB's lookup). A field
/// that matches only after upper-casing is ambiguous when several fields fold to the same name;
/// the duplicate check in the caller hands those records to the tree path.
fn column_for(columns: &[Column], name: &str) -> Option<usize> {
    if let Some(i) = columns.iter().position(|c| c.name == name) {
        return Some(i);
    }
    let folds_to = |c: &Column| {
        c.name.len() == name.len()
            && c.name
                .bytes()
                .zip(name.bytes())
                .all(|(a, b)| a == b.to_ascii_uppercase())
    };
    if name.is_ascii() {
        columns.iter().position(folds_to)
    } else {
        let upper = name.to_uppercase();
        columns.iter().position(|c| c.name == upper)
    }
}

struct Scanner<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// A string without escapes or control characters, as a slice of the input.
    fn plain_string(&mut self) -> Option<&'a str> {
        if self.next()? != b'"' {
            return None;
        }
        let start = self.pos;
        let len = self.s[start..].iter().position(|&b| b == b'"')?;
        let raw = &self.s[start..start + len];
        if raw.iter().any(|&b| b == b'\\' || b < 0x20) {
            return None;
        }
        self.pos = start + len + 1;
        // The whole input was checked to be UTF-8 and quotes are ASCII, so this cannot fail.
        std::str::from_utf8(raw).ok()
    }

    /// The text of a JSON number in strict JSON syntax, and whether it is an integer.
    fn number(&mut self) -> Option<(&'a str, bool)> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.pos += 1;
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integer = false;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        // A number must end at a delimiter; `12abc` is malformed.
        if !matches!(
            self.peek(),
            Some(b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
        ) {
            return None;
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).ok()?;
        Some((text, integer))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.s.get(self.pos..self.pos + word.len())? == word {
            self.pos += word.len();
            Some(())
        } else {
            None
        }
    }

    /// One scalar converted to `ty` where the conversion is the same as the tree path's.
    fn scalar(&mut self, ty: &SqlType) -> Option<Value> {
        match self.peek()? {
            b'n' => {
                self.literal(b"null")?;
                Some(Value::Null)
            }
            b't' | b'f' => {
                let value = if self.peek()? == b't' {
                    self.literal(b"true")?;
                    true
                } else {
                    self.literal(b"false")?;
                    false
                };
                match ty {
                    SqlType::Boolean => Some(Value::Boolean(value)),
                    _ => None,
                }
            }
            b'"' => {
                let text = self.plain_string()?;
                match ty {
                    SqlType::String => Some(Value::String(text.to_string())),
                    _ => None,
                }
            }
            b'-' | b'0'..=b'9' => {
                let (text, integer) = self.number()?;
                match ty {
                    SqlType::Bigint if integer => text.parse().ok().map(Value::Bigint),
                    SqlType::Timestamp if integer => text.parse().ok().map(Value::Timestamp),
                    // `intValue()` of a long keeps its low 32 bits.
                    SqlType::Int if integer => {
                        text.parse::<i64>().ok().map(|v| Value::Int(v as i32))
                    }
                    // `BigDecimal.doubleValue()` is the correctly rounded double, as is Rust's
                    // parse of the same strict JSON number text.
                    SqlType::Double => text.parse().ok().map(Value::Double),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Skips the scalar value of a field no column reads; nested values go to the tree path so
    /// that malformed JSON inside them is still reported.
    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'"' => self.plain_string().map(|_| ()),
            b'-' | b'0'..=b'9' => self.number().map(|_| ()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<Column> {
        vec![
            Column::new("ID", SqlType::Bigint),
            Column::new("NAME", SqlType::String),
            Column::new("PRICE", SqlType::Double),
            Column::new("OK", SqlType::Boolean),
            Column::new("N", SqlType::Int),
        ]
    }

    #[test]
    fn reads_flat_objects_of_scalars() {
        let row = read_flat_row(
            br#" {"id": 7, "name":"x y", "price": 1.5e1, "ok": true, "extra": [1], "n": -3}"#,
            &columns(),
        );
        // The nested value of an unknown field sends the record to the tree path.
        assert_eq!(row, None);
        let row = read_flat_row(
            br#"{"ID":7,"name":"x y","price":15.25,"ok":false,"extra":"z","N":4294967297}"#,
            &columns(),
        )
        .unwrap();
        assert_eq!(
            row,
            vec![
                Value::Bigint(7),
                Value::String("x y".into()),
                Value::Double(15.25),
                Value::Boolean(false),
                Value::Int(1),
            ]
        );
    }

    #[test]
    fn missing_fields_are_null_and_trailing_content_is_ignored() {
        let row = read_flat_row(br#"{"NAME":null} trailing"#, &columns()).unwrap();
        assert_eq!(row, vec![Value::Null; 5]);
        assert_eq!(
            read_flat_row(b"{}", &columns()).unwrap(),
            vec![Value::Null; 5]
        );
    }

    #[test]
    fn gives_up_on_anything_needing_the_full_reader() {
        for input in [
            &br#"{"ID":1.5}"#[..],             // integral column from a decimal number
            br#"{"ID":"12"}"#,                 // string coercion
            br#"{"NAME":"a\"b"}"#,             // escape
            br#"{"ID":1,"id":2}"#,             // two fields for one column
            br#"{"ID":1,"ID":2}"#,             // repeated field
            br#"{"ID":01}"#,                   // invalid number
            br#"{"ID":1x}"#,                   // invalid number end
            br#"{"ID":99999999999999999999}"#, // beyond a long: wraps via BigDecimal
            br#"{"NAME":1}"#,                  // number as text uses Java formatting
            br#"{"OK":"true"}"#,               // string for boolean
            br#"{"ID":1"#,                     // truncated
            br#"[1]"#,                         // not an object
            b"null",                           // null row
            b"",                               // empty
            br#"{"ID":1,}"#,                   // trailing comma
            b"{\"NAME\":\"\xff\"}",            // invalid UTF-8
        ] {
            assert_eq!(
                read_flat_row(input, &columns()),
                None,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn case_folded_names_match_upper_case_columns() {
        let cols = vec![Column::new("PRICE", SqlType::Bigint)];
        assert_eq!(
            read_flat_row(br#"{"Price":3}"#, &cols),
            Some(vec![Value::Bigint(3)])
        );
        let cols = vec![Column::new("Mixed", SqlType::Bigint)];
        // Only the exact name matches a column that is not upper case.
        assert_eq!(
            read_flat_row(br#"{"MIXED":3}"#, &cols),
            Some(vec![Value::Null])
        );
        assert_eq!(
            read_flat_row(br#"{"Mixed":3}"#, &cols),
            Some(vec![Value::Bigint(3)])
        );
    }
}

//! The `JSON` format.
//!
//! Reading follows ksqlDB's `KsqlJsonDeserializer`: field names match exactly or by their
//! upper-cased form, missing fields are NULL, numbers and strings are coerced to the column type
//! (`"10"` is a fine INT, `1.9` becomes INT 1, any scalar becomes a STRING), decimals must fit
//! their column exactly, and a failure names the Jackson node class and the JSON path
//! (`Can't convert type. sourceType: TextNode, requiredType: INTEGER, path: $.V`).
//!
//! Writing follows Kafka Connect's `JsonConverter` on Jackson: compact text, fields in column
//! order, doubles as Java prints them (`1.0E-5`; NaN and infinities as strings), decimals as
//! numbers with their scale (Java's `BigDecimal.toString()`), BYTES as base64, DATE/TIME/TIMESTAMP
//! as numbers. The text is built by hand because a generic JSON value would lose decimal scale
//! and print doubles differently.

use runnel_plan::{format_double_java, Decimal, Value};
use runnel_sql::SqlType;

use super::java::{decimal_to_java_string, parse_double, BigDec};
use super::json_flat::read_flat_row;
use super::json_node::{write_string, JsonNode};
use super::{
    base64_decode, base64_encode, check_column_count, integral, mismatch, time_of_day, Column,
    RowSerde, SerdeError,
};

#[derive(Debug)]
pub(crate) struct JsonSerde {
    columns: Vec<Column>,
    /// One column written as a bare JSON value instead of an object.
    unwrapped: bool,
    /// The row as a STRUCT type name, for error messages about the top-level value.
    row_type_name: String,
}

impl JsonSerde {
    pub(crate) fn new(columns: &[Column], unwrapped: bool) -> Self {
        let fields: Vec<String> = columns
            .iter()
            .map(|c| format!("{} {}", c.name, connect_type_name(&c.ty)))
            .collect();
        let row_type_name = if fields.is_empty() {
            "STRUCT< >".to_string()
        } else {
            format!("STRUCT<{}>", fields.join(", "))
        };
        JsonSerde {
            columns: columns.to_vec(),
            unwrapped: unwrapped && columns.len() == 1,
            row_type_name,
        }
    }

    fn read_row(&self, root: &JsonNode) -> Result<Option<Vec<Value>>, Coercion> {
        let row = match root {
            JsonNode::Null => Ok(None),
            JsonNode::Object(_) => self
                .columns
                .iter()
                .map(|c| enforce(Part::Field(&c.name), root.field(&c.name), &c.ty))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            _ => Err(invalid(root, &self.row_type_name)),
        };
        row.map_err(|e| e.under(Part::Root))
    }
}

impl RowSerde for JsonSerde {
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Option<Vec<Value>>, SerdeError> {
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        if !self.unwrapped {
            if let Some(row) = read_flat_row(bytes, &self.columns) {
                return Ok(Some(row));
            }
        }
        let root = JsonNode::parse(bytes).map_err(SerdeError::new)?;
        let row = if self.unwrapped {
            enforce(Part::Root, Some(&root), &self.columns[0].ty).map(|v| Some(vec![v]))
        } else {
            self.read_row(&root)
        };
        row.map_err(|e| SerdeError::new(e.message()))
    }

    fn serialize(&self, row: Option<&[Value]>) -> Result<Option<Vec<u8>>, SerdeError> {
        let Some(row) = row else {
            return Ok(None);
        };
        check_column_count(self.columns.len(), row)?;
        let mut out = String::with_capacity(16 + 24 * self.columns.len());
        if self.unwrapped {
            if row[0].is_null() {
                return Ok(None);
            }
            write_value(&mut out, &self.columns[0].ty, &row[0])
        } else {
            write_row(&mut out, &self.columns, row)
        }
        .map_err(|e| SerdeError::new(format!("Error serializing JSON message: {e}")))?;
        Ok(Some(out.into_bytes()))
    }
}

/// One step of a JSON path, rendered (`$`, `.NAME`, `[0]`, `.k.key`, `.k.value`) only when a
/// coercion fails, so that successful reads build no strings.
#[derive(Debug, Clone, Copy)]
enum Part<'a> {
    Root,
    Field(&'a str),
    Index(usize),
    MapKey(&'a str),
    MapValue(&'a str),
}

/// A failed coercion: ksqlDB's message and the JSON path it happened at (`$.A[0]`).
#[derive(Debug)]
struct Coercion {
    raw: String,
    path: String,
}

impl Coercion {
    fn new(raw: impl Into<String>) -> Self {
        Coercion {
            raw: raw.into(),
            path: String::new(),
        }
    }

    /// The same failure seen from the enclosing value, whose path part is `part`.
    fn under(mut self, part: Part<'_>) -> Self {
        let prefix = match part {
            Part::Root => "$".to_string(),
            Part::Field(name) => format!(".{name}"),
            Part::Index(i) => format!("[{i}]"),
            Part::MapKey(name) => format!(".{name}.key"),
            Part::MapValue(name) => format!(".{name}.value"),
        };
        self.path.insert_str(0, &prefix);
        self
    }

    fn message(&self) -> String {
        format!("{}, path: {}", self.raw, self.path)
    }
}

/// `Can't convert type. sourceType: TextNode, requiredType: INTEGER`.
fn invalid(node: &JsonNode, required: &str) -> Coercion {
    Coercion::new(format!(
        "Can't convert type. sourceType: {}, requiredType: {required}",
        node.kind_name()
    ))
}

fn string_coercion_failed(target: &str) -> Coercion {
    Coercion::new(format!("Can't coerce string to type. targetType: {target}"))
}

/// Converts `node` (absent or JSON null → NULL) to `ty`; `part` is this value's path element.
fn enforce(part: Part<'_>, node: Option<&JsonNode>, ty: &SqlType) -> Result<Value, Coercion> {
    match node {
        None | Some(JsonNode::Null) => Ok(Value::Null),
        Some(node) => coerce(node, ty).map_err(|e| e.under(part)),
    }
}

fn coerce(node: &JsonNode, ty: &SqlType) -> Result<Value, Coercion> {
    match ty {
        SqlType::Boolean => match node {
            JsonNode::Bool(b) => Ok(Value::Boolean(*b)),
            _ => Err(invalid(node, "BOOLEAN")),
        },
        SqlType::Int => match node {
            JsonNode::Number(_) => Ok(Value::Int(wrapping_integer(node)? as i32)),
            JsonNode::String(text) => text
                .parse()
                .map(Value::Int)
                .map_err(|_| string_coercion_failed("INTEGER")),
            _ => Err(invalid(node, "INTEGER")),
        },
        SqlType::Bigint => to_long(node, "BIGINT").map(Value::Bigint),
        SqlType::Timestamp => to_long(node, "TIMESTAMP").map(Value::Timestamp),
        SqlType::Date => to_long(node, "DATE").map(|days| Value::Date(days as i32)),
        SqlType::Time => {
            let millis = to_long(node, "TIME")?;
            time_of_day(millis).map(Value::Time).map_err(Coercion::new)
        }
        SqlType::Double => match node {
            JsonNode::Number(_) => Ok(Value::Double(number(node)?.to_f64())),
            JsonNode::String(text) => parse_double(text)
                .map(Value::Double)
                .ok_or_else(|| string_coercion_failed("DOUBLE")),
            _ => Err(invalid(node, "DOUBLE")),
        },
        SqlType::String => Ok(Value::String(to_text(node)?)),
        SqlType::Decimal { precision, scale } => {
            let decimal = match node {
                JsonNode::Number(_) => number(node)?,
                JsonNode::String(text) => BigDec::parse(text)
                    .ok_or_else(|| Coercion::new(format!("Invalid decimal value: {text}")))?,
                _ => return Err(invalid(node, &connect_type_name(ty))),
            };
            decimal
                .ensure_fit(*precision, *scale)
                .map(Value::Decimal)
                .map_err(Coercion::new)
        }
        SqlType::Bytes => match node {
            JsonNode::String(text) => base64_decode(text).map(Value::Bytes).map_err(|_| {
                Coercion::new(format!(
                    "Value is not a valid Base64 encoded string: {text}"
                ))
            }),
            _ => Err(invalid(node, "BYTES")),
        },
        SqlType::Array(element) => match node {
            JsonNode::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| enforce(Part::Index(i), Some(item), element))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            _ => Err(invalid(node, &connect_type_name(ty))),
        },
        SqlType::Map(key_type, value_type) => match node {
            JsonNode::Object(fields) => fields
                .iter()
                .map(|(name, value)| {
                    let key_node = JsonNode::String(name.clone());
                    let key = enforce(Part::MapKey(name), Some(&key_node), key_type)?;
                    let value = enforce(Part::MapValue(name), Some(value), value_type)?;
                    Ok((key, value))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Map),
            _ => Err(invalid(node, &connect_type_name(ty))),
        },
        SqlType::Struct(fields) => match node {
            JsonNode::Object(_) => fields
                .iter()
                .map(|f| {
                    let value = enforce(Part::Field(&f.name), node.field(&f.name), &f.ty)?;
                    Ok((f.name.clone(), value))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Struct),
            _ => Err(invalid(node, &connect_type_name(ty))),
        },
        SqlType::Custom(name) => Err(Coercion::new(format!("Type is not supported: {name}"))),
    }
}

fn number(node: &JsonNode) -> Result<BigDec, Coercion> {
    node.number()
        .ok_or_else(|| Coercion::new("Numeric value out of range"))
}

/// `intValue()` / `longValue()` of a JSON number: the integer part, wrapped to the width.
fn wrapping_integer(node: &JsonNode) -> Result<i128, Coercion> {
    Ok(number(node)?.wrapping_integer())
}

fn to_long(node: &JsonNode, target: &str) -> Result<i64, Coercion> {
    match node {
        JsonNode::Number(_) => Ok(wrapping_integer(node)? as i64),
        JsonNode::String(text) => text.parse().map_err(|_| string_coercion_failed(target)),
        _ => Err(invalid(node, target)),
    }
}

/// A STRING column's value: scalars as text, objects as compact JSON, arrays as
/// `[a, b, null]` (ksqlDB's rendering of a list of strings).
fn to_text(node: &JsonNode) -> Result<String, Coercion> {
    match node {
        JsonNode::Object(_) => {
            let mut out = String::new();
            node.write_compact(&mut out);
            Ok(out)
        }
        JsonNode::Array(items) => {
            let parts = items
                .iter()
                .enumerate()
                .map(
                    |(i, item)| match enforce(Part::Index(i), Some(item), &SqlType::String)? {
                        Value::String(s) => Ok(s),
                        _ => Ok("null".to_string()),
                    },
                )
                .collect::<Result<Vec<_>, Coercion>>()?;
            Ok(format!("[{}]", parts.join(", ")))
        }
        _ => Ok(node.as_text()),
    }
}

/// A type as Kafka Connect's schema formatter in ksqlDB prints it (`INT`, `VARCHAR`,
/// `STRUCT<A INT>`), used as the `requiredType` of containers, decimals and bytes.
fn connect_type_name(ty: &SqlType) -> String {
    match ty {
        SqlType::Boolean => "BOOLEAN".into(),
        SqlType::Int | SqlType::Date | SqlType::Time => "INT".into(),
        SqlType::Bigint | SqlType::Timestamp => "BIGINT".into(),
        SqlType::Double => "DOUBLE".into(),
        SqlType::String => "VARCHAR".into(),
        SqlType::Bytes => "BYTES".into(),
        SqlType::Decimal { precision, scale } => format!("DECIMAL({precision}, {scale})"),
        SqlType::Array(inner) => format!("ARRAY<{}>", connect_type_name(inner)),
        SqlType::Map(k, v) => format!("MAP<{}, {}>", connect_type_name(k), connect_type_name(v)),
        SqlType::Struct(fields) if fields.is_empty() => "STRUCT< >".into(),
        SqlType::Struct(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|f| format!("{} {}", f.name, connect_type_name(&f.ty)))
                .collect();
            format!("STRUCT<{}>", parts.join(", "))
        }
        SqlType::Custom(name) => name.clone(),
    }
}

fn write_row(out: &mut String, columns: &[Column], row: &[Value]) -> Result<(), String> {
    out.push('{');
    for (i, (column, value)) in columns.iter().zip(row).enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, &column.name);
        out.push(':');
        write_value(out, &column.ty, value)?;
    }
    out.push('}');
    Ok(())
}

/// Writes `value` as JSON for a column of type `ty`, widening numbers where the value's type is
/// narrower than the column's (INT value in a BIGINT or DOUBLE column, ...).
fn write_value(out: &mut String, ty: &SqlType, value: &Value) -> Result<(), String> {
    match (ty, value) {
        (_, Value::Null) => out.push_str("null"),
        (SqlType::Boolean, Value::Boolean(b)) => out.push_str(if *b { "true" } else { "false" }),
        (
            SqlType::Int | SqlType::Bigint | SqlType::Date | SqlType::Time | SqlType::Timestamp,
            v,
        ) => match integral(v) {
            Some(i) => out.push_str(&i.to_string()),
            None => return Err(mismatch(ty, value)),
        },
        (SqlType::Double, v) => match v.as_f64() {
            Some(d) => write_double(out, d),
            None => return Err(mismatch(ty, value)),
        },
        (SqlType::Decimal { scale, .. }, v) => {
            let decimal = match v {
                Value::Decimal(d) => *d,
                Value::Int(i) => Decimal::new(i128::from(*i), 0),
                Value::Bigint(i) => Decimal::new(i128::from(*i), 0),
                _ => return Err(mismatch(ty, value)),
            };
            let decimal = decimal.rescale(*scale).unwrap_or(decimal);
            out.push_str(&decimal_to_java_string(&decimal));
        }
        (SqlType::String, Value::String(s)) => write_string(out, s),
        (SqlType::Bytes, Value::Bytes(b)) => write_string(out, &base64_encode(b)),
        (SqlType::Array(element), Value::Array(items)) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, element, item)?;
            }
            out.push(']');
        }
        (SqlType::Map(_, value_type), Value::Map(entries)) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match k {
                    Value::String(s) => write_string(out, s),
                    other => write_string(out, &other.to_string()),
                }
                out.push(':');
                write_value(out, value_type, v)?;
            }
            out.push('}');
        }
        (SqlType::Struct(fields), Value::Struct(values)) => {
            out.push('{');
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, &field.name);
                out.push(':');
                write_value(
                    out,
                    &field.ty,
                    struct_field(values, &field.name, i, fields.len()),
                )?;
            }
            out.push('}');
        }
        _ => return Err(mismatch(ty, value)),
    }
    Ok(())
}

/// The value of struct field `name`: by exact name, then ignoring case, then (when the value
/// has the type's shape) by position; absent fields are NULL.
fn struct_field<'a>(
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

/// Jackson writes non-finite doubles as strings (`"NaN"`) and others as Java's `Double.toString`.
fn write_double(out: &mut String, d: f64) {
    let text = format_double_java(d);
    if d.is_finite() {
        out.push_str(&text);
    } else {
        write_string(out, &text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_sql::StructField;

    fn serde(cols: &[(&str, SqlType)], unwrapped: bool) -> JsonSerde {
        let columns: Vec<Column> = cols
            .iter()
            .map(|(n, t)| Column::new(*n, t.clone()))
            .collect();
        JsonSerde::new(&columns, unwrapped)
    }

    fn read(s: &JsonSerde, text: &str) -> Result<Option<Vec<Value>>, SerdeError> {
        s.deserialize(Some(text.as_bytes()))
    }

    fn write(s: &JsonSerde, row: &[Value]) -> String {
        String::from_utf8(s.serialize(Some(row)).unwrap().unwrap()).unwrap()
    }

    fn err(s: &JsonSerde, text: &str) -> String {
        read(s, text).unwrap_err().to_string()
    }

    fn arr(t: SqlType) -> SqlType {
        SqlType::Array(Box::new(t))
    }

    fn map(v: SqlType) -> SqlType {
        SqlType::Map(Box::new(SqlType::String), Box::new(v))
    }

    #[test]
    fn wrapped_rows_match_fields_case_insensitively() {
        let s = serde(
            &[
                ("V0", SqlType::Int),
                ("NAME", SqlType::String),
                ("X", SqlType::Double),
            ],
            false,
        );
        assert_eq!(
            read(&s, r#"{"v0": 4, "Name": "bob"}"#).unwrap(),
            Some(vec![
                Value::Int(4),
                Value::String("bob".into()),
                Value::Null
            ])
        );
        assert_eq!(read(&s, "null").unwrap(), None);
        assert_eq!(s.deserialize(None).unwrap(), None);
        // A quoted lower-case column only matches its exact name.
        let quoted = serde(&[("foo", SqlType::Int)], false);
        assert_eq!(
            read(&quoted, r#"{"FOO": 1}"#).unwrap(),
            Some(vec![Value::Null])
        );
        assert_eq!(
            read(&quoted, r#"{"foo": 1}"#).unwrap(),
            Some(vec![Value::Int(1)])
        );
    }

    #[test]
    fn unwrapped_values() {
        let s = serde(&[("V", SqlType::Boolean)], true);
        assert_eq!(read(&s, "true").unwrap(), Some(vec![Value::Boolean(true)]));
        assert_eq!(read(&s, "null").unwrap(), Some(vec![Value::Null]));
        assert_eq!(write(&s, &[Value::Boolean(false)]), "false");
        assert_eq!(s.serialize(Some(&[Value::Null])).unwrap(), None);
        let a = serde(&[("FOO", arr(SqlType::String))], true);
        assert_eq!(
            read(&a, "[1, 2, null]").unwrap(),
            Some(vec![Value::Array(vec![
                Value::String("1".into()),
                Value::String("2".into()),
                Value::Null
            ])])
        );
    }

    #[test]
    fn numeric_coercions_follow_ksqldb() {
        let s = serde(
            &[
                ("I", SqlType::Int),
                ("B", SqlType::Bigint),
                ("D", SqlType::Double),
                ("S", SqlType::String),
            ],
            false,
        );
        assert_eq!(
            read(&s, r#"{"I": "12", "B": 1.9, "D": 3, "S": 1.50}"#).unwrap(),
            Some(vec![
                Value::Int(12),
                Value::Bigint(1),
                Value::Double(3.0),
                Value::String("1.50".into())
            ])
        );
        assert_eq!(
            read(
                &s,
                r#"{"I": 4294967297, "B": "-7", "D": "1.5e3", "S": true}"#
            )
            .unwrap(),
            Some(vec![
                Value::Int(1),
                Value::Bigint(-7),
                Value::Double(1500.0),
                Value::String("true".into())
            ])
        );
        assert_eq!(
            err(&s, r#"{"I": "x"}"#),
            "Can't coerce string to type. targetType: INTEGER, path: $.I"
        );
        assert_eq!(
            err(&s, r#"{"I": true}"#),
            "Can't convert type. sourceType: BooleanNode, requiredType: INTEGER, path: $.I"
        );
        assert_eq!(
            err(&s, r#"{"D": [1]}"#),
            "Can't convert type. sourceType: ArrayNode, requiredType: DOUBLE, path: $.D"
        );
        let b = serde(&[("F", SqlType::Boolean)], false);
        assert_eq!(
            err(&b, r#"{"F": "true"}"#),
            "Can't convert type. sourceType: TextNode, requiredType: BOOLEAN, path: $.F"
        );
    }

    #[test]
    fn strings_from_containers() {
        let s = serde(&[("S", SqlType::String)], false);
        assert_eq!(
            read(&s, r#"{"S": {"b": 1, "a": [1.0, "x"]}}"#).unwrap(),
            Some(vec![Value::String(r#"{"b":1,"a":[1.0,"x"]}"#.into())])
        );
        assert_eq!(
            read(&s, r#"{"S": ["a", 1, null, {"k": 2}]}"#).unwrap(),
            Some(vec![Value::String(r#"[a, 1, null, {"k":2}]"#.into())])
        );
    }

    #[test]
    fn decimals_read_exactly_and_keep_scale_when_written() {
        let s = serde(&[("DEC", SqlType::decimal(6, 4))], false);
        assert_eq!(
            read(&s, r#"{"DEC": 10}"#).unwrap(),
            Some(vec![Value::Decimal(Decimal::new(100000, 4))])
        );
        assert_eq!(
            read(&s, r#"{"DEC": "0.5"}"#).unwrap(),
            Some(vec![Value::Decimal(Decimal::new(5000, 4))])
        );
        assert_eq!(
            write(&s, &[Value::Decimal(Decimal::new(100000, 4))]),
            r#"{"DEC":10.0000}"#
        );
        assert_eq!(
            err(&s, r#"{"DEC": 1.23456}"#),
            "Cannot fit decimal '1.23456' into DECIMAL(6, 4) without rounding., path: $.DEC"
        );
        assert!(err(&s, r#"{"DEC": 100}"#).starts_with("Numeric field overflow"));
        assert_eq!(
            err(&s, r#"{"DEC": true}"#),
            "Can't convert type. sourceType: BooleanNode, requiredType: DECIMAL(6, 4), path: $.DEC"
        );
        let tiny = serde(&[("D", SqlType::decimal(10, 9))], false);
        assert_eq!(
            write(&tiny, &[Value::Decimal(Decimal::new(1, 9))]),
            r#"{"D":1E-9}"#
        );
        assert_eq!(
            write(&tiny, &[Value::Decimal(Decimal::new(150, 2))]),
            r#"{"D":1.500000000}"#
        );
    }

    #[test]
    fn nested_values_and_paths() {
        let inner = SqlType::Struct(vec![StructField::new("A", SqlType::Int)]);
        let s = serde(
            &[
                ("ARR", arr(inner.clone())),
                ("M", map(SqlType::Int)),
                ("ST", inner.clone()),
            ],
            false,
        );
        let row = read(
            &s,
            r#"{"arr": [{"a": 1}, null], "m": {"x": 2, "y": null}, "st": {}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            row,
            vec![
                Value::Array(vec![
                    Value::Struct(vec![("A".into(), Value::Int(1))]),
                    Value::Null
                ]),
                Value::Map(vec![
                    (Value::String("x".into()), Value::Int(2)),
                    (Value::String("y".into()), Value::Null)
                ]),
                Value::Struct(vec![("A".into(), Value::Null)]),
            ]
        );
        assert_eq!(
            write(&s, &row),
            r#"{"ARR":[{"A":1},null],"M":{"x":2,"y":null},"ST":{"A":null}}"#
        );
        assert_eq!(
            err(&s, r#"{"ARR": [{"A": "z"}]}"#),
            "Can't coerce string to type. targetType: INTEGER, path: $.ARR[0].A"
        );
        assert_eq!(
            err(&s, r#"{"M": {"k": false}}"#),
            "Can't convert type. sourceType: BooleanNode, requiredType: INTEGER, path: $.M.k.value"
        );
        assert_eq!(
            err(&s, r#"{"ST": 5}"#),
            "Can't convert type. sourceType: IntNode, requiredType: STRUCT<A INT>, path: $.ST"
        );
    }

    #[test]
    fn top_level_errors() {
        let s = serde(&[("A", SqlType::Int), ("B", SqlType::String)], false);
        assert_eq!(
            err(&s, "[1]"),
            "Can't convert type. sourceType: ArrayNode, requiredType: STRUCT<A INT, B VARCHAR>, path: $"
        );
        assert!(err(&s, "{not json").contains("was expecting double-quote"));
        assert!(err(&s, "").contains("MissingNode"));
        let u = serde(&[("A", SqlType::Int)], true);
        assert_eq!(
            err(&u, "\"x\""),
            "Can't coerce string to type. targetType: INTEGER, path: $"
        );
    }

    #[test]
    fn bytes_and_temporal_types() {
        let s = serde(
            &[
                ("B", SqlType::Bytes),
                ("D", SqlType::Date),
                ("T", SqlType::Time),
                ("TS", SqlType::Timestamp),
            ],
            false,
        );
        let row = read(
            &s,
            r#"{"B": "dmFyaWF0aW9ucw==", "D": -10, "T": "100", "TS": 10}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            row,
            vec![
                Value::Bytes(b"variations".to_vec()),
                Value::Date(-10),
                Value::Time(100),
                Value::Timestamp(10)
            ]
        );
        assert_eq!(
            write(&s, &row),
            r#"{"B":"dmFyaWF0aW9ucw==","D":-10,"T":100,"TS":10}"#
        );
        assert!(err(&s, r#"{"B": "!!"}"#).starts_with("Value is not a valid Base64 encoded string"));
        assert!(err(&s, r#"{"T": 86400000}"#).starts_with("Time values must"));
    }

    #[test]
    fn doubles_and_strings_are_written_like_jackson() {
        let s = serde(&[("D", SqlType::Double), ("S", SqlType::String)], false);
        assert_eq!(
            write(
                &s,
                &[Value::Double(1.0), Value::String("a\"b\n\u{1}é".into())]
            ),
            "{\"D\":1.0,\"S\":\"a\\\"b\\n\\u0001é\"}"
        );
        assert_eq!(
            write(&s, &[Value::Double(1e-5), Value::Null]),
            r#"{"D":1.0E-5,"S":null}"#
        );
        assert_eq!(
            write(&s, &[Value::Double(f64::NAN), Value::Null]),
            r#"{"D":"NaN","S":null}"#
        );
        assert_eq!(
            write(&s, &[Value::Int(3), Value::Null]),
            r#"{"D":3.0,"S":null}"#
        );
        assert!(s
            .serialize(Some(&[Value::String("x".into()), Value::Null]))
            .is_err());
        assert!(s.serialize(Some(&[Value::Null])).is_err());
    }

    #[test]
    fn round_trips() {
        let s = serde(
            &[
                ("K", SqlType::Bigint),
                ("M", map(arr(SqlType::decimal(4, 2)))),
                ("B", SqlType::Boolean),
            ],
            false,
        );
        let row = vec![
            Value::Bigint(998877665544332211),
            Value::Map(vec![(
                Value::String("a".into()),
                Value::Array(vec![Value::Decimal(Decimal::new(1010, 2)), Value::Null]),
            )]),
            Value::Boolean(true),
        ];
        let bytes = s.serialize(Some(&row)).unwrap().unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"K":998877665544332211,"M":{"a":[10.10,null]},"B":true}"#
        );
        assert_eq!(s.deserialize(Some(&bytes)).unwrap(), Some(row));
    }
}

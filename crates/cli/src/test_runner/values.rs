//! Test JSON ↔ engine values, by column type.
//!
//! Inputs for formats whose bytes are not simply the test JSON (KAFKA, and later the Schema
//! Registry formats) are built by converting the JSON to [`Value`]s per column and serializing
//! them with the source's own serde. Field names match without regard to case, as in the Java
//! runner. Outputs decoded by a serde come back as [`Value`]s and are turned into [`Actual`]s, the
//! shape the comparator expects.

use super::compare::Actual;
use super::json::Json;
use super::model::base64_decode;
use runnel_plan::{Decimal, Value};
use runnel_sql::SqlType;

/// How BYTES are given in the test JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BytesText {
    /// Base64 text (JSON and the Schema Registry formats).
    Base64,
    /// The UTF-8 bytes of the string itself (KAFKA).
    Utf8,
}

fn number_text(json: &Json) -> Option<&str> {
    match json {
        Json::Number(n) => Some(n),
        Json::String(s) => Some(s.trim()),
        _ => None,
    }
}

fn integer(json: &Json) -> Option<i64> {
    let text = number_text(json)?;
    if let Ok(i) = text.parse::<i64>() {
        return Some(i);
    }
    // Java's Number.longValue(): fractions are truncated.
    let f: f64 = text.parse().ok()?;
    (f.is_finite() && f.abs() < 9.2e18).then_some(f.trunc() as i64)
}

/// Converts a test JSON value to a value of `ty`.
pub fn json_to_value(json: &Json, ty: &SqlType, bytes: BytesText) -> Result<Value, String> {
    if json.is_null() {
        return Ok(Value::Null);
    }
    let bad = || format!("cannot convert {json} to {ty}");
    Ok(match ty {
        SqlType::Boolean => match json {
            Json::Bool(b) => Value::Boolean(*b),
            Json::String(s) if s.eq_ignore_ascii_case("true") => Value::Boolean(true),
            Json::String(s) if s.eq_ignore_ascii_case("false") => Value::Boolean(false),
            _ => return Err(bad()),
        },
        SqlType::Int => Value::Int(
            integer(json)
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(bad)?,
        ),
        SqlType::Bigint => Value::Bigint(integer(json).ok_or_else(bad)?),
        SqlType::Date => Value::Date(
            integer(json)
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(bad)?,
        ),
        SqlType::Time => Value::Time(
            integer(json)
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(bad)?,
        ),
        SqlType::Timestamp => Value::Timestamp(integer(json).ok_or_else(bad)?),
        SqlType::Double => Value::Double(
            number_text(json)
                .and_then(|t| t.parse().ok())
                .ok_or_else(bad)?,
        ),
        SqlType::Decimal { scale, .. } => {
            let d = number_text(json).and_then(Decimal::parse).ok_or_else(bad)?;
            Value::Decimal(d.rescale(*scale).ok_or_else(bad)?)
        }
        SqlType::String => Value::String(json.scalar_text()),
        SqlType::Bytes => match (json, bytes) {
            (Json::String(s), BytesText::Base64) => Value::Bytes(base64_decode(s)?),
            (Json::String(s), BytesText::Utf8) => Value::Bytes(s.as_bytes().to_vec()),
            _ => return Err(bad()),
        },
        SqlType::Array(inner) => match json {
            Json::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| json_to_value(i, inner, bytes))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(bad()),
        },
        SqlType::Map(k, v) => match json {
            Json::Object(fields) => Value::Map(
                fields
                    .iter()
                    .map(|(name, value)| {
                        Ok((
                            json_to_value(&Json::String(name.clone()), k, bytes)?,
                            json_to_value(value, v, bytes)?,
                        ))
                    })
                    .collect::<Result<_, String>>()?,
            ),
            _ => return Err(bad()),
        },
        SqlType::Struct(fields) => match json {
            Json::Object(_) => Value::Struct(
                fields
                    .iter()
                    .map(|f| {
                        Ok((
                            f.name.clone(),
                            json_to_value(field(json, &f.name), &f.ty, bytes)?,
                        ))
                    })
                    .collect::<Result<_, String>>()?,
            ),
            _ => return Err(bad()),
        },
        SqlType::Custom(name) => return Err(format!("unresolved type {name}")),
    })
}

/// A field of a JSON object, by exact name, else without regard to case; null when missing.
pub fn field<'a>(json: &'a Json, name: &str) -> &'a Json {
    static NULL: Json = Json::Null;
    let Some(fields) = json.as_object() else {
        return &NULL;
    };
    fields
        .iter()
        .find(|(k, _)| k == name)
        .or_else(|| fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
        .map_or(&NULL, |(_, v)| v)
}

/// The values of `columns` from a test record's key or value: the bare value when `unwrapped`
/// (one column written without an envelope), else the fields of an object.
pub fn json_to_row(
    json: &Json,
    columns: &[(String, SqlType)],
    unwrapped: bool,
    bytes: BytesText,
) -> Result<Vec<Value>, String> {
    if let ([(_, ty)], true) = (columns, unwrapped) {
        return Ok(vec![json_to_value(json, ty, bytes)?]);
    }
    if !matches!(json, Json::Object(_)) {
        let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
        return Err(format!(
            "expected an object with the fields {names:?}, got {json}"
        ));
    }
    columns
        .iter()
        .map(|(name, ty)| json_to_value(field(json, name), ty, bytes))
        .collect()
}

/// An engine value as the Java runner's deserializers would hand it to the comparator.
pub fn value_to_actual(value: &Value) -> Actual {
    match value {
        Value::Null => Actual::Null,
        Value::Boolean(b) => Actual::Bool(*b),
        Value::Int(i) | Value::Date(i) | Value::Time(i) => Actual::Int(i64::from(*i)),
        Value::Bigint(i) | Value::Timestamp(i) => Actual::Int(*i),
        Value::Double(d) => Actual::Double(*d),
        Value::Decimal(d) => Actual::Decimal(d.to_string()),
        Value::String(s) => Actual::String(s.clone()),
        Value::Bytes(b) => Actual::Bytes(b.clone()),
        Value::Array(items) => Actual::Array(items.iter().map(value_to_actual).collect()),
        Value::Map(entries) => Actual::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (key, value_to_actual(v))
                })
                .collect(),
        ),
        Value::Struct(fields) => Actual::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), value_to_actual(v)))
                .collect(),
        ),
    }
}

/// A decoded row as the comparator sees it: bare when `unwrapped` (one column written without
/// an envelope), else an object of the column names.
pub fn row_to_actual(row: &[Value], names: &[String], unwrapped: bool) -> Actual {
    match row {
        [single] if unwrapped => value_to_actual(single),
        _ => Actual::Object(
            names
                .iter()
                .zip(row)
                .map(|(n, v)| (n.clone(), value_to_actual(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_sql::StructField;

    fn j(text: &str) -> Json {
        Json::parse(text).unwrap()
    }

    #[test]
    fn converts_by_type() {
        let b = BytesText::Base64;
        assert_eq!(json_to_value(&j("5"), &SqlType::Int, b), Ok(Value::Int(5)));
        assert_eq!(
            json_to_value(&j("\"5\""), &SqlType::Bigint, b),
            Ok(Value::Bigint(5))
        );
        assert!(json_to_value(&j("3000000000"), &SqlType::Int, b).is_err());
        assert_eq!(
            json_to_value(&j("1.5"), &SqlType::Double, b),
            Ok(Value::Double(1.5))
        );
        assert_eq!(
            json_to_value(&j("\"1.5\""), &SqlType::decimal(4, 2), b),
            Ok(Value::Decimal(Decimal::new(150, 2)))
        );
        assert_eq!(
            json_to_value(&j("12"), &SqlType::String, b),
            Ok(Value::String("12".into()))
        );
        assert_eq!(
            json_to_value(&j("\"IQ==\""), &SqlType::Bytes, b),
            Ok(Value::Bytes(vec![b'!']))
        );
        assert_eq!(
            json_to_value(&j("\"IQ==\""), &SqlType::Bytes, BytesText::Utf8),
            Ok(Value::Bytes(b"IQ==".to_vec()))
        );
        assert_eq!(json_to_value(&j("null"), &SqlType::Int, b), Ok(Value::Null));
        let st = SqlType::Struct(vec![
            StructField::new("A", SqlType::Int),
            StructField::new("B", SqlType::String),
        ]);
        assert_eq!(
            json_to_value(&j(r#"{"a": 1}"#), &st, b),
            Ok(Value::Struct(vec![
                ("A".into(), Value::Int(1)),
                ("B".into(), Value::Null)
            ]))
        );
        let map = SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Int));
        assert_eq!(
            json_to_value(&j(r#"{"x": 1}"#), &map, b),
            Ok(Value::Map(vec![(Value::String("x".into()), Value::Int(1))]))
        );
    }

    #[test]
    fn rows_from_objects_or_bare_values() {
        let b = BytesText::Base64;
        let cols = vec![
            ("ID".to_string(), SqlType::Int),
            ("NAME".to_string(), SqlType::String),
        ];
        assert_eq!(
            json_to_row(&j(r#"{"name": "x", "ID": 1}"#), &cols, false, b),
            Ok(vec![Value::Int(1), Value::String("x".into())])
        );
        assert!(json_to_row(&j("1"), &cols, false, b).is_err());
        let one = vec![("K".to_string(), SqlType::Bigint)];
        assert_eq!(
            json_to_row(&j("7"), &one, true, b),
            Ok(vec![Value::Bigint(7)])
        );
        assert_eq!(
            json_to_row(&j(r#"{"k": 7}"#), &one, false, b),
            Ok(vec![Value::Bigint(7)])
        );
    }

    #[test]
    fn values_become_actuals() {
        let row = vec![Value::Int(1), Value::Decimal(Decimal::new(150, 2))];
        let names = vec!["A".to_string(), "B".to_string()];
        assert_eq!(
            row_to_actual(&row, &names, false),
            Actual::Object(vec![
                ("A".into(), Actual::Int(1)),
                ("B".into(), Actual::Decimal("1.50".into()))
            ])
        );
        assert_eq!(row_to_actual(&row[..1], &names[..1], true), Actual::Int(1));
        assert_eq!(
            value_to_actual(&Value::Map(vec![(
                Value::String("k".into()),
                Value::Bytes(vec![1])
            )])),
            Actual::Object(vec![("k".into(), Actual::Bytes(vec![1]))])
        );
    }
}

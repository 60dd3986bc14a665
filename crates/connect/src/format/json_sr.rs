//! The `JSON_SR` format: JSON text behind Confluent's wire-format prefix (magic byte and schema
//! id), as Confluent's JSON Schema serializer writes it.
//!
//! ksqlDB reads and writes the JSON itself exactly as for `JSON` (same coercions, same field
//! matching, same unwrapping rules), so this wraps [`JsonSerde`]. The prefix is what makes the
//! two formats byte-incompatible: ksqlDB rejects JSON_SR data without the magic byte.

use runnel_plan::Value;

use super::json::JsonSerde;
use super::sr;
use super::{RowSerde, SerdeError};

/// ksqlDB's message for JSON_SR data that does not start with the magic byte.
const NO_MAGIC_BYTE: &str = "Got unexpected JSON serialization format that did not start with \
     the magic byte. If this stream was not serialized using the JsonSchemaConverter, then make \
     sure the stream is declared with JSON format (not JSON_SR).";

#[derive(Debug)]
pub(crate) struct JsonSrSerde {
    json: JsonSerde,
}

impl JsonSrSerde {
    pub(crate) fn new(json: JsonSerde) -> Self {
        JsonSrSerde { json }
    }
}

impl RowSerde for JsonSrSerde {
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Option<Vec<Value>>, SerdeError> {
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        if bytes.first() != Some(&0) {
            return Err(SerdeError::new(NO_MAGIC_BYTE));
        }
        let (_, text) = sr::strip_prefix(bytes).map_err(SerdeError::new)?;
        self.json.deserialize(Some(text))
    }

    fn serialize(&self, row: Option<&[Value]>) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(self.json.serialize(row)?.map(|text| {
            let mut out = Vec::with_capacity(text.len() + 5);
            sr::write_prefix(&mut out, sr::SCHEMA_ID);
            out.extend_from_slice(&text);
            out
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Column;
    use runnel_sql::SqlType;

    #[test]
    fn json_behind_the_prefix() {
        let columns = [
            Column::new("A", SqlType::Int),
            Column::new("B", SqlType::String),
        ];
        let serde = JsonSrSerde::new(JsonSerde::new(&columns, false));
        let row = vec![Value::Int(1), Value::String("x".into())];
        let bytes = serde.serialize(Some(&row)).unwrap().unwrap();
        let mut expected = vec![0, 0, 0, 0, 1];
        expected.extend_from_slice(br#"{"A":1,"B":"x"}"#);
        assert_eq!(bytes, expected);
        assert_eq!(serde.deserialize(Some(&bytes)).unwrap(), Some(row));
        assert_eq!(serde.serialize(None).unwrap(), None);
        assert_eq!(serde.deserialize(None).unwrap(), None);
    }

    #[test]
    fn plain_json_is_rejected() {
        let columns = [Column::new("A", SqlType::Int)];
        let serde = JsonSrSerde::new(JsonSerde::new(&columns, true));
        let err = serde.deserialize(Some(b"1")).unwrap_err().to_string();
        assert!(err.contains("did not start with the magic byte"), "{err}");
        assert_eq!(
            serde
                .deserialize(Some(&[0, 0, 0, 0, 7, b'4', b'2']))
                .unwrap(),
            Some(vec![Value::Int(42)])
        );
        assert!(serde.deserialize(Some(&[0, 0])).is_err());
        assert_eq!(serde.serialize(Some(&[Value::Null])).unwrap(), None);
    }
}

//! The two kinds of format failure: a format that cannot carry a schema (found when a statement
//! is planned) and a record that cannot be converted (found per record, logged and skipped).

use thiserror::Error;

/// A format/schema combination ksqlDB rejects, or a format Runnel does not implement yet.
/// Messages match ksqlDB's so that `expectedException` substrings in the conformance tests match.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormatError {
    #[error("Unknown format: {0}")]
    UnknownFormat(String),

    #[error(
        "The '{0}' format is not supported yet by Runnel (planned); the statement is valid ksqlDB."
    )]
    NotSupportedYet(&'static str),

    /// ksqlDB's `... format does not support schema.` with the reason for it.
    #[error(
        "{part} format does not support schema.\nformat: {format}\nschema: \
         Persistence{{columns={columns}, features={features}}}\nreason: {reason}"
    )]
    UnsupportedSchema {
        /// `Key` or `Value`.
        part: &'static str,
        format: &'static str,
        /// The columns as ksqlDB lists them: ``[`K` STRING KEY]``.
        columns: String,
        /// The serde features: `[]`, `[WRAP_SINGLES]` or `[UNWRAP_SINGLES]`.
        features: String,
        reason: String,
    },

    #[error("Format '{format}' does not support 'WRAP_SINGLE_VALUE' set to '{value}'.")]
    WrapSingleValue { format: &'static str, value: bool },

    #[error("'WRAP_SINGLE_VALUE' is only valid for single-field value schemas")]
    WrapSingleValueMultipleFields,

    #[error("{format} does not support the following configs: [delimiter]")]
    DelimiterNotSupported { format: &'static str },

    /// A `KEY_DELIMITER` / `VALUE_DELIMITER` that is not one character, `TAB` or `SPACE`.
    #[error("Configuration {property} is invalid: {reason}\nExample valid value: ';'")]
    InvalidDelimiter { property: String, reason: String },
}

/// A record that could not be converted between bytes and a row.
///
/// `message` is the text ksqlDB puts in the processing log's `errorMessage` (without the
/// `Failed to deserialize value from topic: ...` prefix, which needs the topic: see
/// [`SerdeError::log_message`]); `causes` are the underlying errors, outermost first, as ksqlDB
/// lists them in the log's `cause` field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}{}", .causes.iter().map(|c| format!(": {c}")).collect::<String>())]
pub struct SerdeError {
    pub message: String,
    pub causes: Vec<String>,
}

impl SerdeError {
    pub fn new(message: impl Into<String>) -> Self {
        SerdeError {
            message: message.into(),
            causes: Vec::new(),
        }
    }

    pub fn with_cause(message: impl Into<String>, cause: impl Into<String>) -> Self {
        SerdeError {
            message: message.into(),
            causes: vec![cause.into()],
        }
    }

    /// The processing-log message for a failure on `topic`:
    /// `Failed to deserialize value from topic: t. Can't convert type. ...`.
    pub fn log_message(
        &self,
        direction: SerdeDirection,
        target: SerdeTarget,
        topic: &str,
    ) -> String {
        let verb = match direction {
            SerdeDirection::Deserialize => "deserialize",
            SerdeDirection::Serialize => "serialize",
        };
        let prep = match direction {
            SerdeDirection::Deserialize => "from",
            SerdeDirection::Serialize => "to",
        };
        let target = match target {
            SerdeTarget::Key => "key",
            SerdeTarget::Value => "value",
        };
        format!("Failed to {verb} {target} {prep} topic: {topic}. {self}")
    }
}

/// Which way a failed conversion went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerdeDirection {
    Deserialize,
    Serialize,
}

/// Which part of the record a failed conversion was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerdeTarget {
    Key,
    Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_error_messages() {
        let e = SerdeError::new(
            "Can't convert type. sourceType: TextNode, requiredType: INTEGER, path: $.V",
        );
        assert_eq!(
            e.log_message(SerdeDirection::Deserialize, SerdeTarget::Value, "input"),
            "Failed to deserialize value from topic: input. Can't convert type. sourceType: \
             TextNode, requiredType: INTEGER, path: $.V"
        );
        let e = SerdeError::with_cause("Error deserializing delimited", "For input string: \"x\"");
        assert_eq!(
            e.to_string(),
            "Error deserializing delimited: For input string: \"x\""
        );
        assert_eq!(
            e.log_message(SerdeDirection::Serialize, SerdeTarget::Key, "out"),
            "Failed to serialize key to topic: out. Error deserializing delimited: For input \
             string: \"x\""
        );
    }

    #[test]
    fn format_error_messages() {
        let e = FormatError::UnsupportedSchema {
            part: "Key",
            format: "KAFKA",
            columns: "[`K` BOOLEAN KEY]".into(),
            features: "[]".into(),
            reason: "The 'KAFKA' format does not support type 'BOOLEAN'".into(),
        };
        assert_eq!(
            e.to_string(),
            "Key format does not support schema.\nformat: KAFKA\nschema: Persistence{columns=[`K` \
             BOOLEAN KEY], features=[]}\nreason: The 'KAFKA' format does not support type 'BOOLEAN'"
        );
    }
}

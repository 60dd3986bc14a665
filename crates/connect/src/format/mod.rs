//! ksqlDB's serialization formats: how a record's key and value bytes become rows and back.
//!
//! Output must be byte-for-byte what ksqlDB writes (the conformance tests compare bytes, and
//! downstream consumers parse them), and input must be accepted or rejected exactly as ksqlDB
//! does. So each format mirrors the Java library ksqlDB delegates to rather than a Rust crate
//! with similar but different rules:
//!
//! * `JSON`: Jackson + Kafka Connect's `JsonConverter` ([`json`]);
//! * `DELIMITED`: Apache Commons CSV ([`delimited`]);
//! * `KAFKA`: Kafka's primitive serializers ([`kafka`]);
//! * `NONE`: no columns, nothing read or written ([`none`]);
//! * `AVRO`: Avro binary with the schema ksqlDB generates, in Confluent's wire format ([`avro`]);
//! * `PROTOBUF` / `PROTOBUF_NOSR`: proto3 messages as Confluent's `ProtobufData` shapes them,
//!   with or without the wire format ([`protobuf`]);
//! * `JSON_SR`: the `JSON` text in Confluent's wire format ([`json_sr`]);
//! * windowed keys: Kafka Streams' windowed serdes ([`windowed`]).
//!
//! The Schema Registry formats write schema id 1 and decode with the schema generated from the
//! columns; there is no registry client yet ([`sr`]).
//!
//! Checks that ksqlDB makes when a statement is planned (a `KAFKA` key with two columns, a
//! `DELIMITED` value with an ARRAY, ...) happen in [`key_serde`] / [`value_serde`], so a serde that
//! was built can always handle its columns; per-record problems are [`SerdeError`]s.

mod avro;
mod delimited;
mod error;
mod java;
mod json;
mod json_flat;
mod json_node;
mod json_sr;
mod kafka;
mod none;
mod protobuf;
mod sr;
mod windowed;

use runnel_plan::catalog::FormatInfo;
use runnel_plan::Value;
use runnel_sql::SqlType;

pub use error::{FormatError, SerdeDirection, SerdeError, SerdeTarget};
pub use windowed::{decode_windowed_key, encode_windowed_key, Window, WindowType};

/// The serialization formats ksqlDB knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormatKind {
    Json,
    Delimited,
    Kafka,
    None,
    Avro,
    Protobuf,
    ProtobufNoSr,
    JsonSr,
}

impl FormatKind {
    /// Parses a format name as written in `WITH (VALUE_FORMAT='json')`: case does not matter.
    pub fn parse(name: &str) -> Result<Self, FormatError> {
        let upper = name.trim().to_ascii_uppercase();
        Ok(match upper.as_str() {
            "JSON" => FormatKind::Json,
            "DELIMITED" => FormatKind::Delimited,
            "KAFKA" => FormatKind::Kafka,
            "NONE" => FormatKind::None,
            "AVRO" => FormatKind::Avro,
            "PROTOBUF" => FormatKind::Protobuf,
            "PROTOBUF_NOSR" => FormatKind::ProtobufNoSr,
            "JSON_SR" => FormatKind::JsonSr,
            _ => return Err(FormatError::UnknownFormat(upper)),
        })
    }

    /// The canonical upper-case name.
    pub fn name(&self) -> &'static str {
        match self {
            FormatKind::Json => "JSON",
            FormatKind::Delimited => "DELIMITED",
            FormatKind::Kafka => "KAFKA",
            FormatKind::None => "NONE",
            FormatKind::Avro => "AVRO",
            FormatKind::Protobuf => "PROTOBUF",
            FormatKind::ProtobufNoSr => "PROTOBUF_NOSR",
            FormatKind::JsonSr => "JSON_SR",
        }
    }

    /// Whether Runnel can read and write this format today (all of ksqlDB's formats are).
    pub fn is_implemented(&self) -> bool {
        true
    }

    /// Whether the format writes a single column as a bare value rather than inside a
    /// record/object/message, for this part of the record and these options. Keys are
    /// unwrapped by default, values only with `WRAP_SINGLE_VALUE=false`; KAFKA is always bare;
    /// PROTOBUF always uses a message (even for one key column), as do NONE and DELIMITED
    /// (whose single field is its own text).
    pub fn unwraps_single_column(&self, opts: &FormatOptions, target: SerdeTarget) -> bool {
        match self {
            FormatKind::Kafka => true,
            FormatKind::Json | FormatKind::JsonSr | FormatKind::Avro => match target {
                SerdeTarget::Key => opts.wrap_single_value != Some(true),
                SerdeTarget::Value => opts.wrap_single_value == Some(false),
            },
            FormatKind::Delimited
            | FormatKind::None
            | FormatKind::Protobuf
            | FormatKind::ProtobufNoSr => false,
        }
    }
}

/// The per-source format settings from the `WITH` clause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FormatOptions {
    /// `WRAP_SINGLE_VALUE`; `None` = the format's default (wrapped for JSON values, unwrapped
    /// for single-column keys).
    pub wrap_single_value: Option<bool>,
    /// `KEY_DELIMITER` / `VALUE_DELIMITER` for DELIMITED (`,` when `None`).
    pub delimiter: Option<char>,
}

impl FormatOptions {
    /// Reads a `KEY_DELIMITER` / `VALUE_DELIMITER` property (`property` is its name, for the
    /// message): one character, or the words `TAB` and `SPACE`.
    pub fn parse_delimiter(property: &str, raw: &str) -> Result<char, FormatError> {
        if raw.eq_ignore_ascii_case("TAB") {
            return Ok('\t');
        }
        if raw.eq_ignore_ascii_case("SPACE") {
            return Ok(' ');
        }
        let invalid = |reason: String| FormatError::InvalidDelimiter {
            property: property.to_ascii_uppercase(),
            reason,
        };
        if raw.trim().is_empty() {
            return Err(invalid(
                "Delimiter cannot be empty, if you meant to have a tab or space for delimiter, \
                 please use the special values 'TAB' or 'SPACE'"
                    .to_string(),
            ));
        }
        let mut chars = raw.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(c),
            _ => Err(invalid(format!(
                "Invalid delimiter value: '{raw}'. Delimiter must be a single character or TAB,SPACE"
            ))),
        }
    }
}

impl From<&FormatInfo> for FormatOptions {
    fn from(info: &FormatInfo) -> Self {
        FormatOptions {
            wrap_single_value: info.wrap_single_value,
            delimiter: info.delimiter,
        }
    }
}

/// One column of the key or value, in schema order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The exact (normally upper-case) name; JSON writes it as the field name.
    pub name: String,
    pub ty: SqlType,
}

impl Column {
    pub fn new(name: impl Into<String>, ty: SqlType) -> Self {
        Column {
            name: name.into(),
            ty,
        }
    }
}

/// Converts the key or the value of records between bytes and rows (one [`Value`] per column).
pub trait RowSerde: Send + Sync {
    /// None bytes (Kafka null) → `Ok(None)`.
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Option<Vec<Value>>, SerdeError>;
    /// None row → `Ok(None)` (tombstone / null key).
    fn serialize(&self, row: Option<&[Value]>) -> Result<Option<Vec<u8>>, SerdeError>;
}

/// The serde for record keys with these key columns. Zero columns (a keyless stream) is allowed
/// for every implemented format: the key is ignored on read and written as null.
pub fn key_serde(
    kind: FormatKind,
    opts: &FormatOptions,
    columns: &[Column],
) -> Result<Box<dyn RowSerde>, FormatError> {
    build(kind, opts, columns, SerdeTarget::Key)
}

/// The serde for record values with these value columns.
pub fn value_serde(
    kind: FormatKind,
    opts: &FormatOptions,
    columns: &[Column],
) -> Result<Box<dyn RowSerde>, FormatError> {
    build(kind, opts, columns, SerdeTarget::Value)
}

fn build(
    kind: FormatKind,
    opts: &FormatOptions,
    columns: &[Column],
    target: SerdeTarget,
) -> Result<Box<dyn RowSerde>, FormatError> {
    if !kind.is_implemented() {
        return Err(FormatError::NotSupportedYet(kind.name()));
    }
    if opts.delimiter.is_some() && kind != FormatKind::Delimited {
        return Err(FormatError::DelimiterNotSupported {
            format: kind.name(),
        });
    }
    let unsupported = |reason: String| FormatError::UnsupportedSchema {
        part: match target {
            SerdeTarget::Key => "Key",
            SerdeTarget::Value => "Value",
        },
        format: kind.name(),
        columns: describe_columns(columns, target),
        features: match opts.wrap_single_value {
            Some(true) => "[WRAP_SINGLES]",
            Some(false) => "[UNWRAP_SINGLES]",
            None => "[]",
        }
        .to_string(),
        reason,
    };
    if let Some(name) = columns.iter().find_map(|c| unresolved_type(&c.ty)) {
        return Err(unsupported(format!("Unknown type: {name}")));
    }
    if kind == FormatKind::None {
        if !columns.is_empty() {
            return Err(unsupported(format!(
                "The 'NONE' format can only be used when no columns are defined. Got: {}",
                describe_columns(columns, target)
            )));
        }
        return Ok(Box::new(none::VoidSerde));
    }
    if opts.wrap_single_value == Some(true)
        && matches!(kind, FormatKind::Kafka | FormatKind::Delimited)
    {
        return Err(FormatError::WrapSingleValue {
            format: kind.name(),
            value: true,
        });
    }
    if opts.wrap_single_value == Some(false)
        && matches!(kind, FormatKind::Protobuf | FormatKind::ProtobufNoSr)
    {
        return Err(FormatError::WrapSingleValue {
            format: kind.name(),
            value: false,
        });
    }
    if opts.wrap_single_value == Some(false) && columns.len() > 1 {
        return Err(FormatError::WrapSingleValueMultipleFields);
    }
    let unwrapped = columns.len() == 1 && kind.unwraps_single_column(opts, target);
    if let Some(reason) = schema_problem(kind, columns, target, unwrapped) {
        return Err(unsupported(reason));
    }
    if columns.is_empty() && (target == SerdeTarget::Key || kind == FormatKind::Kafka) {
        return Ok(Box::new(none::VoidSerde));
    }
    Ok(match kind {
        FormatKind::Json => Box::new(json::JsonSerde::new(columns, unwrapped)),
        FormatKind::JsonSr => Box::new(json_sr::JsonSrSerde::new(json::JsonSerde::new(
            columns, unwrapped,
        ))),
        FormatKind::Avro => Box::new(avro::AvroSerde::new(columns, unwrapped)),
        FormatKind::Protobuf => Box::new(protobuf::ProtobufSerde::new(columns, true)),
        FormatKind::ProtobufNoSr => Box::new(protobuf::ProtobufSerde::new(columns, false)),
        FormatKind::Delimited => Box::new(delimited::DelimitedSerde::new(
            columns,
            opts.delimiter.unwrap_or(','),
        )),
        FormatKind::Kafka => match columns.first() {
            Some(column) => Box::new(kafka::KafkaSerde::new(column.ty.clone())),
            None => Box::new(none::VoidSerde),
        },
        FormatKind::None => Box::new(none::VoidSerde),
    })
}

/// Why `kind` cannot carry these columns, in ksqlDB's words; `None` if it can. `unwrapped`:
/// the single column is written bare.
fn schema_problem(
    kind: FormatKind,
    columns: &[Column],
    target: SerdeTarget,
    unwrapped: bool,
) -> Option<String> {
    match kind {
        FormatKind::Kafka if columns.len() > 1 => Some(format!(
            "The 'KAFKA' format only supports a single field. Got: {}",
            describe_columns(columns, target)
        )),
        FormatKind::Kafka => columns.iter().find(|c| !kafka::supports(&c.ty)).map(|c| {
            format!(
                "The 'KAFKA' format does not support type '{}'",
                c.ty.base_name()
            )
        }),
        FormatKind::Delimited => columns.iter().find(|c| !c.ty.is_primitive()).map(|c| {
            format!(
                "The 'DELIMITED' format does not support type '{}', column: `{}`",
                c.ty.base_name(),
                c.name
            )
        }),
        FormatKind::Json | FormatKind::JsonSr => columns
            .iter()
            .any(|c| has_non_string_map_key(&c.ty))
            .then(|| "JSON only supports MAP types with STRING keys".to_string()),
        FormatKind::Avro => avro::schema_problem(columns, unwrapped),
        FormatKind::Protobuf | FormatKind::ProtobufNoSr => protobuf::schema_problem(columns),
        FormatKind::None => None,
    }
}

/// Columns as ksqlDB lists them in messages: ``[`K` STRING KEY, `V` INTEGER]``.
fn describe_columns(columns: &[Column], target: SerdeTarget) -> String {
    let suffix = match target {
        SerdeTarget::Key => " KEY",
        SerdeTarget::Value => "",
    };
    let parts: Vec<String> = columns
        .iter()
        .map(|c| format!("`{}` {}{suffix}", c.name, c.ty))
        .collect();
    format!("[{}]", parts.join(", "))
}

fn unresolved_type(ty: &SqlType) -> Option<&str> {
    match ty {
        SqlType::Custom(name) => Some(name),
        SqlType::Array(inner) => unresolved_type(inner),
        SqlType::Map(k, v) => unresolved_type(k).or_else(|| unresolved_type(v)),
        SqlType::Struct(fields) => fields.iter().find_map(|f| unresolved_type(&f.ty)),
        _ => None,
    }
}

fn has_non_string_map_key(ty: &SqlType) -> bool {
    match ty {
        SqlType::Map(k, v) => **k != SqlType::String || has_non_string_map_key(v),
        SqlType::Array(inner) => has_non_string_map_key(inner),
        SqlType::Struct(fields) => fields.iter().any(|f| has_non_string_map_key(&f.ty)),
        _ => false,
    }
}

/// The column count check every serializer makes before writing.
fn check_column_count(expected: usize, row: &[Value]) -> Result<(), SerdeError> {
    if expected == row.len() {
        Ok(())
    } else {
        Err(SerdeError::new(format!(
            "Column count mismatch on serialization. expected: {expected}, got: {}",
            row.len()
        )))
    }
}

/// Base64 as Java's basic decoder reads it: the standard alphabet, padding optional.
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine;
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT
        .decode(text)
        .map_err(|e| format!("Illegal base64 value: {e}"))
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A value's integer for the integer-backed types (INT, BIGINT, DATE, TIME, TIMESTAMP).
fn integral(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) | Value::Date(i) | Value::Time(i) => Some(i64::from(*i)),
        Value::Bigint(i) | Value::Timestamp(i) => Some(*i),
        _ => None,
    }
}

/// ksqlDB's TIME range: milliseconds within one day.
const MILLIS_PER_DAY: i64 = 86_400_000;

fn time_of_day(millis: i64) -> Result<i32, String> {
    if (0..MILLIS_PER_DAY).contains(&millis) {
        Ok(millis as i32)
    } else {
        Err(format!(
            "Time values must use number of milliseconds greater than 0 and less than \
             {MILLIS_PER_DAY}. Got {millis}"
        ))
    }
}

/// A short name of the value's kind, for messages that must not include the data itself.
fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "NULL",
        Value::Boolean(_) => "BOOLEAN",
        Value::Int(_) => "INTEGER",
        Value::Bigint(_) => "BIGINT",
        Value::Double(_) => "DOUBLE",
        Value::Decimal(_) => "DECIMAL",
        Value::String(_) => "STRING",
        Value::Bytes(_) => "BYTES",
        Value::Date(_) => "DATE",
        Value::Time(_) => "TIME",
        Value::Timestamp(_) => "TIMESTAMP",
        Value::Array(_) => "ARRAY",
        Value::Map(_) => "MAP",
        Value::Struct(_) => "STRUCT",
    }
}

fn mismatch(ty: &SqlType, value: &Value) -> String {
    format!(
        "Cannot write a {} value to a column of type {ty}",
        value_kind(value)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_sql::StructField;

    fn col(name: &str, ty: SqlType) -> Column {
        Column::new(name, ty)
    }

    fn key_err(kind: FormatKind, opts: FormatOptions, cols: &[Column]) -> String {
        match key_serde(kind, &opts, cols) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    fn value_err(kind: FormatKind, opts: FormatOptions, cols: &[Column]) -> String {
        match value_serde(kind, &opts, cols) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn format_names() {
        assert_eq!(FormatKind::parse("json").unwrap(), FormatKind::Json);
        assert_eq!(
            FormatKind::parse("Protobuf_NoSR").unwrap(),
            FormatKind::ProtobufNoSr
        );
        assert_eq!(FormatKind::parse("AvRo").unwrap().name(), "AVRO");
        assert_eq!(
            FormatKind::parse("foo").unwrap_err().to_string(),
            "Unknown format: FOO"
        );
    }

    #[test]
    fn kafka_schema_errors_match_ksqldb() {
        let none = FormatOptions::default();
        assert_eq!(
            key_err(FormatKind::Kafka, none, &[col("K", SqlType::Boolean)]),
            "Key format does not support schema.\nformat: KAFKA\nschema: Persistence{columns=[`K` \
             BOOLEAN KEY], features=[]}\nreason: The 'KAFKA' format does not support type 'BOOLEAN'"
        );
        assert_eq!(
            key_err(
                FormatKind::Kafka,
                none,
                &[col("ID", SqlType::Int), col("AGE", SqlType::Int)]
            ),
            "Key format does not support schema.\nformat: KAFKA\nschema: Persistence{columns=[`ID` \
             INTEGER KEY, `AGE` INTEGER KEY], features=[]}\nreason: The 'KAFKA' format only \
             supports a single field. Got: [`ID` INTEGER KEY, `AGE` INTEGER KEY]"
        );
        let multi = value_err(
            FormatKind::Kafka,
            none,
            &[col("V0", SqlType::Int), col("V1", SqlType::String)],
        );
        assert!(multi.contains(
            "The 'KAFKA' format only supports a single field. Got: [`V0` INTEGER, `V1` STRING]"
        ));
        for ty in [
            SqlType::decimal(21, 19),
            SqlType::Array(Box::new(SqlType::Int)),
            SqlType::Struct(vec![StructField::new("F1", SqlType::Double)]),
        ] {
            let msg = value_err(FormatKind::Kafka, none, &[col("V", ty.clone())]);
            assert!(
                msg.contains(&format!(
                    "The 'KAFKA' format does not support type '{}'",
                    ty.base_name()
                )),
                "{msg}"
            );
        }
        assert!(value_serde(FormatKind::Kafka, &none, &[col("B", SqlType::Bytes)]).is_ok());
        assert!(key_serde(FormatKind::Kafka, &none, &[]).is_ok());
    }

    #[test]
    fn delimited_and_none_schema_errors() {
        let none = FormatOptions::default();
        assert_eq!(
            key_err(
                FormatKind::Delimited,
                none,
                &[col(
                    "K",
                    SqlType::Struct(vec![StructField::new("F", SqlType::Double)])
                )]
            ),
            "Key format does not support schema.\nformat: DELIMITED\nschema: \
             Persistence{columns=[`K` STRUCT<`F` DOUBLE> KEY], features=[]}\nreason: The \
             'DELIMITED' format does not support type 'STRUCT', column: `K`"
        );
        let msg = value_err(
            FormatKind::Delimited,
            none,
            &[col(
                "FOO",
                SqlType::Map(Box::new(SqlType::Int), Box::new(SqlType::Double)),
            )],
        );
        assert!(msg.contains("The 'DELIMITED' format does not support type 'MAP'"));
        assert!(key_err(FormatKind::None, none, &[col("K", SqlType::String)]).contains(
            "The 'NONE' format can only be used when no columns are defined. Got: [`K` STRING KEY]"
        ));
        assert!(value_err(FormatKind::None, none, &[col("FOO", SqlType::Int)]).contains(
            "The 'NONE' format can only be used when no columns are defined. Got: [`FOO` INTEGER]"
        ));
    }

    #[test]
    fn option_errors() {
        let wrap = FormatOptions {
            wrap_single_value: Some(true),
            delimiter: None,
        };
        let one = [col("FOO", SqlType::Int)];
        assert_eq!(
            value_err(FormatKind::Delimited, wrap, &one),
            "Format 'DELIMITED' does not support 'WRAP_SINGLE_VALUE' set to 'true'."
        );
        assert_eq!(
            value_err(FormatKind::Kafka, wrap, &one),
            "Format 'KAFKA' does not support 'WRAP_SINGLE_VALUE' set to 'true'."
        );
        let delim = FormatOptions {
            wrap_single_value: None,
            delimiter: Some('|'),
        };
        assert_eq!(
            value_err(FormatKind::Json, delim, &one),
            "JSON does not support the following configs: [delimiter]"
        );
        let map = [col(
            "FOO",
            SqlType::Map(Box::new(SqlType::Int), Box::new(SqlType::Double)),
        )];
        assert!(value_err(FormatKind::Json, FormatOptions::default(), &map)
            .contains("JSON only supports MAP types with STRING keys"));
        let unwrap = FormatOptions {
            wrap_single_value: Some(false),
            delimiter: None,
        };
        assert!(value_serde(
            FormatKind::Json,
            &unwrap,
            &[col("A", SqlType::Int), col("B", SqlType::Int)]
        )
        .is_err());
        for kind in [
            FormatKind::Avro,
            FormatKind::Protobuf,
            FormatKind::ProtobufNoSr,
            FormatKind::JsonSr,
        ] {
            assert!(value_serde(kind, &FormatOptions::default(), &one).is_ok());
        }
    }

    #[test]
    fn delimiter_property() {
        assert_eq!(
            FormatOptions::parse_delimiter("value_delimiter", "TAB").unwrap(),
            '\t'
        );
        assert_eq!(
            FormatOptions::parse_delimiter("value_delimiter", "SPACE").unwrap(),
            ' '
        );
        assert_eq!(
            FormatOptions::parse_delimiter("value_delimiter", "|").unwrap(),
            '|'
        );
        assert_eq!(
            FormatOptions::parse_delimiter("value_delimiter", "<~>")
                .unwrap_err()
                .to_string(),
            "Configuration VALUE_DELIMITER is invalid: Invalid delimiter value: '<~>'. Delimiter \
             must be a single character or TAB,SPACE\nExample valid value: ';'"
        );
        for empty in ["", " ", "\t"] {
            assert_eq!(
                FormatOptions::parse_delimiter("VALUE_DELIMITER", empty).unwrap_err().to_string(),
                "Configuration VALUE_DELIMITER is invalid: Delimiter cannot be empty, if you meant \
                 to have a tab or space for delimiter, please use the special values 'TAB' or \
                 'SPACE'\nExample valid value: ';'"
            );
        }
    }

    #[test]
    fn keyless_sources_ignore_the_key() {
        for kind in [
            FormatKind::Json,
            FormatKind::Delimited,
            FormatKind::Kafka,
            FormatKind::None,
        ] {
            let serde = key_serde(kind, &FormatOptions::default(), &[]).unwrap();
            assert_eq!(serde.deserialize(Some(b"ignored")).unwrap(), Some(vec![]));
            assert_eq!(serde.deserialize(None).unwrap(), None);
            assert_eq!(serde.serialize(Some(&[])).unwrap(), None);
        }
    }

    #[test]
    fn schema_registry_formats_reject_what_ksqldb_rejects() {
        let none = FormatOptions::default();
        let int_map = SqlType::Map(Box::new(SqlType::Int), Box::new(SqlType::Double));
        let foo = [col("FOO", int_map)];
        assert!(value_err(FormatKind::Avro, none, &foo)
            .contains("reason: Avro only supports MAPs with STRING keys"));
        for kind in [FormatKind::Protobuf, FormatKind::ProtobufNoSr] {
            assert!(value_err(kind, none, &foo)
                .contains("PROTOBUF format only supports MAP types with STRING keys"));
        }
        assert!(value_err(FormatKind::JsonSr, none, &foo)
            .contains("JSON only supports MAP types with STRING keys"));
        let numeric = [col(
            "1AvroDoesNotLikeFieldsThatStartWithNumbers",
            SqlType::Double,
        )];
        assert_eq!(
            value_err(FormatKind::Avro, none, &numeric),
            "Value format does not support schema.\nformat: AVRO\nschema: \
             Persistence{columns=[`1AvroDoesNotLikeFieldsThatStartWithNumbers` DOUBLE], \
             features=[]}\nreason: Schema is not compatible with Avro: Illegal initial \
             character: 1AvroDoesNotLikeFieldsThatStartWithNumbers"
        );
        let unwrap = FormatOptions {
            wrap_single_value: Some(false),
            delimiter: None,
        };
        let one = [col("FOO", SqlType::Int)];
        assert_eq!(
            value_err(FormatKind::Protobuf, unwrap, &one),
            "Format 'PROTOBUF' does not support 'WRAP_SINGLE_VALUE' set to 'false'."
        );
        assert!(value_serde(FormatKind::Avro, &unwrap, &one).is_ok());
        assert!(value_serde(FormatKind::JsonSr, &unwrap, &one).is_ok());
    }

    #[test]
    fn schema_registry_single_columns() {
        let opts = FormatOptions::default();
        let cols = [col("K", SqlType::Int)];
        // AVRO and JSON_SR keys are bare values; PROTOBUF keys are always messages.
        let avro = key_serde(FormatKind::Avro, &opts, &cols).unwrap();
        assert_eq!(
            avro.serialize(Some(&[Value::Int(1)])).unwrap(),
            Some(vec![0, 0, 0, 0, 1, 0x02])
        );
        let json_sr = key_serde(FormatKind::JsonSr, &opts, &cols).unwrap();
        assert_eq!(
            json_sr.serialize(Some(&[Value::Int(1)])).unwrap(),
            Some(vec![0, 0, 0, 0, 1, b'1'])
        );
        let proto = key_serde(FormatKind::ProtobufNoSr, &opts, &cols).unwrap();
        assert_eq!(
            proto.serialize(Some(&[Value::Int(1)])).unwrap(),
            Some(vec![0x08, 0x01])
        );
        // Values are records unless WRAP_SINGLE_VALUE=false.
        let avro = value_serde(FormatKind::Avro, &opts, &cols).unwrap();
        assert_eq!(
            avro.serialize(Some(&[Value::Int(1)])).unwrap(),
            Some(vec![0, 0, 0, 0, 1, 0x02, 0x02])
        );
        assert!(FormatKind::Avro.unwraps_single_column(&opts, SerdeTarget::Key));
        assert!(!FormatKind::Avro.unwraps_single_column(&opts, SerdeTarget::Value));
        assert!(!FormatKind::Protobuf.unwraps_single_column(&opts, SerdeTarget::Key));
        assert!(FormatKind::Kafka.unwraps_single_column(&opts, SerdeTarget::Value));
        // Keyless sources ignore the key in every format.
        for kind in [FormatKind::Avro, FormatKind::Protobuf, FormatKind::JsonSr] {
            let serde = key_serde(kind, &opts, &[]).unwrap();
            assert_eq!(serde.deserialize(Some(b"x")).unwrap(), Some(vec![]));
        }
    }

    #[test]
    fn single_json_keys_are_unwrapped_and_values_wrapped() {
        let cols = [col("K", SqlType::Int)];
        let opts = FormatOptions::default();
        let key = key_serde(FormatKind::Json, &opts, &cols).unwrap();
        assert_eq!(
            key.serialize(Some(&[Value::Int(1)])).unwrap(),
            Some(b"1".to_vec())
        );
        let value = value_serde(FormatKind::Json, &opts, &cols).unwrap();
        assert_eq!(
            value.serialize(Some(&[Value::Int(1)])).unwrap(),
            Some(b"{\"K\":1}".to_vec())
        );
    }
}

//! From `CREATE` statements to catalog entries: WITH-property validation, key rules and defaults.

use crate::catalog::{
    Catalog, Column, ColumnKind, FormatInfo, Schema, Source, TimestampColumn, WindowInfo,
    WindowType,
};
use crate::query::{SelectPlan, RESERVED_COLUMNS};
use crate::PlanError;
use runnel_sql::{
    ColumnConstraint, ColumnDef, CreateSource, Literal, Properties, SourceKind, SqlType,
    StructField,
};

/// Defaults that come from configuration (`ksql.persistence.default.format.*`,
/// `ksql.persistence.wrap.single.values`).
#[derive(Debug, Clone)]
pub struct FormatDefaults {
    pub key_format: String,
    pub value_format: Option<String>,
    pub wrap_single_values: Option<bool>,
}

impl Default for FormatDefaults {
    fn default() -> Self {
        FormatDefaults {
            key_format: "KAFKA".into(),
            value_format: None,
            wrap_single_values: None,
        }
    }
}

const KNOWN_PROPERTIES: &[&str] = &[
    "KAFKA_TOPIC",
    "PARTITIONS",
    "REPLICAS",
    "RETENTION_MS",
    "CLEANUP_POLICY",
    "TIMESTAMP",
    "TIMESTAMP_FORMAT",
    "FORMAT",
    "KEY_FORMAT",
    "VALUE_FORMAT",
    "WRAP_SINGLE_VALUE",
    "KEY_DELIMITER",
    "VALUE_DELIMITER",
    "KEY_SCHEMA_ID",
    "VALUE_SCHEMA_ID",
    "KEY_SCHEMA_FULL_NAME",
    "VALUE_SCHEMA_FULL_NAME",
    "VALUE_AVRO_SCHEMA_FULL_NAME",
    "KEY_PROTOBUF_NULLABLE_REPRESENTATION",
    "VALUE_PROTOBUF_NULLABLE_REPRESENTATION",
    "WINDOW_TYPE",
    "WINDOW_SIZE",
    "SOURCE_CONNECTOR",
    "SOURCED_BY_CONNECTOR",
];

fn literal_text(lit: &Literal) -> String {
    match lit {
        Literal::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn string_prop(props: &Properties, name: &str) -> Option<String> {
    props.get(name).map(literal_text)
}

fn int_prop(props: &Properties, name: &str) -> Result<Option<i64>, PlanError> {
    match props.get(name) {
        None => Ok(None),
        Some(Literal::Integer(i)) => Ok(Some(*i)),
        Some(Literal::String(s)) => s.trim().parse().map(Some).map_err(|_| {
            PlanError::new(format!("Invalid value for {name}: '{s}' is not an integer"))
        }),
        Some(other) => Err(PlanError::new(format!(
            "Invalid value for {name}: {other} is not an integer"
        ))),
    }
}

fn bool_prop(props: &Properties, name: &str) -> Result<Option<bool>, PlanError> {
    match props.get(name) {
        None => Ok(None),
        Some(Literal::Boolean(b)) => Ok(Some(*b)),
        Some(Literal::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Literal::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(PlanError::new(format!(
            "Invalid value for {name}: {other} is not a boolean"
        ))),
    }
}

fn delimiter_prop(props: &Properties, name: &str) -> Result<Option<char>, PlanError> {
    let Some(text) = string_prop(props, name) else {
        return Ok(None);
    };
    let upper = text.to_ascii_uppercase();
    let mut chars = text.chars();
    match (upper.as_str(), chars.next(), chars.next()) {
        ("TAB", ..) => Ok(Some('\t')),
        ("SPACE", ..) => Ok(Some(' ')),
        (_, Some(c), None) => Ok(Some(c)),
        (_, None, _) => Err(PlanError::new(format!(
            "Failed to prepare statement: Configuration {name} is invalid: Delimiter cannot be empty, if you meant to have a tab or space for delimiter, please use the special values 'TAB' or 'SPACE'\nExample valid value: ';'"
        ))),
        _ => Err(PlanError::new(format!(
            "Failed to prepare statement: Configuration {name} is invalid: Invalid delimiter value: '{text}'. Delimiter must be a single character or TAB,SPACE\nExample valid value: ';'"
        ))),
    }
}

/// Parses `'10 SECONDS'`-style sizes (`WINDOW_SIZE`).
pub fn parse_duration_text(text: &str) -> Result<i64, PlanError> {
    let mut parts = text.split_whitespace();
    let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(PlanError::new(format!(
            "Invalid duration: '{text}'. Expected '<number> <unit>'"
        )));
    };
    let n: i64 = n
        .parse()
        .map_err(|_| PlanError::new(format!("Invalid duration: '{text}'")))?;
    let unit = unit.to_ascii_uppercase();
    let factor = match unit.trim_end_matches('S') {
        "MILLISECOND" => 1,
        "SECOND" => 1_000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => 86_400_000,
        _ => return Err(PlanError::new(format!("Invalid duration unit in '{text}'"))),
    };
    Ok(n * factor)
}

/// Key and value formats from `FORMAT` / `KEY_FORMAT` / `VALUE_FORMAT` and the defaults.
pub fn formats(
    props: &Properties,
    defaults: &FormatDefaults,
    inherited: Option<(&FormatInfo, &FormatInfo)>,
) -> Result<(FormatInfo, FormatInfo), PlanError> {
    let format = string_prop(props, "FORMAT");
    let key = string_prop(props, "KEY_FORMAT");
    let value = string_prop(props, "VALUE_FORMAT");
    if format.is_some() && (key.is_some() || value.is_some()) {
        let other = if key.is_some() {
            "KEY_FORMAT"
        } else {
            "VALUE_FORMAT"
        };
        return Err(PlanError::new(format!(
            "Cannot supply both '{other}' and 'FORMAT' properties, as 'FORMAT' sets both key and value formats. Either use just 'FORMAT', or use 'KEY_FORMAT' and 'VALUE_FORMAT'."
        )));
    }
    let key = format.clone().or(key);
    let value = format.or(value);
    let mut key_format = match (key, inherited) {
        (Some(k), _) => FormatInfo::new(k),
        (None, Some((k, _))) => FormatInfo {
            delimiter: None,
            ..k.clone()
        },
        (None, None) => FormatInfo::new(defaults.key_format.clone()),
    };
    let mut value_format = match (value, inherited) {
        (Some(v), _) => FormatInfo::new(v),
        (None, Some((_, v))) => FormatInfo { wrap_single_value: None, delimiter: None, ..v.clone() },
        (None, None) => match &defaults.value_format {
            Some(v) => FormatInfo::new(v.clone()),
            None => {
                return Err(PlanError::new(
                    "Statement is missing the 'VALUE_FORMAT' property from the WITH clause. Either provide one or set a default via the 'ksql.persistence.default.format.value' config.",
                ))
            }
        },
    };
    if let Some((k, v)) = inherited {
        if key_format.format == k.format && key_format.delimiter.is_none() {
            key_format.delimiter = k.delimiter;
        }
        if value_format.format == v.format && value_format.delimiter.is_none() {
            value_format.delimiter = v.delimiter;
        }
    }
    key_format.delimiter = delimiter_prop(props, "KEY_DELIMITER")?.or(key_format.delimiter);
    value_format.delimiter = delimiter_prop(props, "VALUE_DELIMITER")?.or(value_format.delimiter);
    value_format.wrap_single_value =
        bool_prop(props, "WRAP_SINGLE_VALUE")?.or(defaults.wrap_single_values);
    Ok((key_format, value_format))
}

fn check_properties(props: &Properties) -> Result<(), PlanError> {
    for (name, _) in &props.0 {
        if !KNOWN_PROPERTIES.contains(&name.as_str()) {
            return Err(PlanError::new(format!(
                "Invalid config variable(s) in the WITH clause: {name}"
            )));
        }
    }
    Ok(())
}

fn check_column_name(name: &str) -> Result<(), PlanError> {
    if RESERVED_COLUMNS.contains(&name) {
        return Err(PlanError::new(format!(
            "'{name}' is a reserved column name. You cannot use it as a name for a column."
        )));
    }
    Ok(())
}

fn headers_type() -> SqlType {
    SqlType::Array(Box::new(SqlType::Struct(vec![
        StructField::new("KEY", SqlType::String),
        StructField::new("VALUE", SqlType::Bytes),
    ])))
}

fn contains_map(ty: &SqlType) -> bool {
    match ty {
        SqlType::Map(..) => true,
        SqlType::Array(inner) => contains_map(inner),
        SqlType::Struct(fields) => fields.iter().any(|f| contains_map(&f.ty)),
        _ => false,
    }
}

/// Key columns cannot hold maps: their serialization is not deterministic.
pub fn check_key_type(name: &str, ty: &SqlType) -> Result<(), PlanError> {
    if contains_map(ty) {
        return Err(PlanError::new(format!(
            "Map keys, including types that contain maps, are not supported as they may lead to unexpected behavior due to inconsistent serialization. Key column name: `{name}`. Column type: {ty}. See https://github.com/confluentinc/ksql/issues/6621 for more."
        )));
    }
    Ok(())
}

/// Columns of a `CREATE STREAM/TABLE` with ksqlDB's key and header rules.
pub fn columns(
    kind: SourceKind,
    defs: &[ColumnDef],
    catalog: &Catalog,
) -> Result<Schema, PlanError> {
    let mut columns: Vec<Column> = Vec::new();
    for def in defs {
        check_column_name(&def.name)?;
        if columns.iter().any(|c| c.name == def.name) {
            return Err(PlanError::new(format!(
                "Duplicate column names: `{}`",
                def.name
            )));
        }
        let ty = catalog.resolve_type(&def.ty).map_err(PlanError::new)?;
        let kind_of = match (&def.constraint, kind) {
            (ColumnConstraint::None, _) => ColumnKind::Value,
            (ColumnConstraint::Key, SourceKind::Stream) => ColumnKind::Key,
            (ColumnConstraint::PrimaryKey, SourceKind::Table) => ColumnKind::Key,
            (ColumnConstraint::Key, SourceKind::Table) => {
                return Err(PlanError::new(format!(
                    "Column `{}` is a 'KEY' column: please use 'PRIMARY KEY' for tables.\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs, which have no uniqueness or NON NULL constraints.",
                    def.name
                )))
            }
            (ColumnConstraint::PrimaryKey, SourceKind::Stream) => {
                return Err(PlanError::new(format!(
                    "Column `{}` is a 'PRIMARY KEY' column: please use 'KEY' for streams.\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs, which have no uniqueness or NON NULL constraints.",
                    def.name
                )))
            }
            (ColumnConstraint::Headers, _) => {
                if ty != headers_type() {
                    return Err(PlanError::new(format!(
                        "Invalid type for HEADERS column: expected {}, got {ty}",
                        headers_type()
                    )));
                }
                ColumnKind::Headers
            }
            (ColumnConstraint::Header(k), _) => {
                if ty != SqlType::Bytes {
                    return Err(PlanError::new(format!("Invalid type for HEADER('{k}') column: expected BYTES, got {ty}")));
                }
                ColumnKind::Header(k.clone())
            }
        };
        columns.push(Column {
            name: def.name.clone(),
            ty,
            kind: kind_of,
        });
    }
    if columns
        .iter()
        .filter(|c| c.kind == ColumnKind::Headers)
        .count()
        > 1
    {
        return Err(PlanError::new("Schema already contains a HEADERS column."));
    }
    for c in columns.iter().filter(|c| c.is_key()) {
        check_key_type(&c.name, &c.ty)?;
    }
    if kind == SourceKind::Table && !columns.iter().any(|c| c.is_key()) {
        return Err(PlanError::new(
            "Tables require a PRIMARY KEY. Please define the PRIMARY KEY.",
        ));
    }
    Ok(Schema { columns })
}

fn timestamp(props: &Properties, schema: &Schema) -> Result<Option<TimestampColumn>, PlanError> {
    let Some(column) = string_prop(props, "TIMESTAMP") else {
        return Ok(None);
    };
    let column = column.trim().to_string();
    // Unquoted names are upper-cased; back-ticked names keep their case.
    let name = match column.strip_prefix('`').and_then(|c| c.strip_suffix('`')) {
        Some(quoted) => quoted.to_string(),
        None => column.to_ascii_uppercase(),
    };
    let format = string_prop(props, "TIMESTAMP_FORMAT");
    let col = schema.find(&name).ok_or_else(|| {
        PlanError::new(format!(
            "The TIMESTAMP column set in the WITH clause does not exist in the schema: '{name}'"
        ))
    })?;
    match (&col.ty, &format) {
        (SqlType::Bigint | SqlType::Timestamp, _) | (SqlType::String, Some(_)) => {}
        (SqlType::String, None) => {
            return Err(PlanError::new(format!(
                "Timestamp column, `{name}`, requires a timestamp format when its type is STRING (set TIMESTAMP_FORMAT)."
            )))
        }
        (other, _) => {
            return Err(PlanError::new(format!(
                "Timestamp column, `{name}`, should be LONG(INT64), TIMESTAMP, or a String with a timestamp_format specified. Got {other}"
            )))
        }
    }
    Ok(Some(TimestampColumn {
        column: name,
        format,
    }))
}

fn window(props: &Properties) -> Result<Option<WindowInfo>, PlanError> {
    let Some(kind) = string_prop(props, "WINDOW_TYPE") else {
        if props.get("WINDOW_SIZE").is_some() {
            return Err(PlanError::new(
                "'WINDOW_SIZE' should not be set if 'WINDOW_TYPE' is not set.",
            ));
        }
        return Ok(None);
    };
    let window_type = match kind.to_ascii_uppercase().as_str() {
        "TUMBLING" => WindowType::Tumbling,
        "HOPPING" => WindowType::Hopping,
        "SESSION" => WindowType::Session,
        other => return Err(PlanError::new(format!("Invalid WINDOW_TYPE: {other}"))),
    };
    let size = string_prop(props, "WINDOW_SIZE")
        .map(|s| parse_duration_text(&s))
        .transpose()?;
    match (window_type, size) {
        (WindowType::Session, Some(_)) => {
            Err(PlanError::new("'WINDOW_SIZE' should not be set for SESSION windows."))
        }
        (WindowType::Tumbling | WindowType::Hopping, None) => Err(PlanError::new(format!(
            "{} windows require 'WINDOW_SIZE' to be provided in the WITH clause. For example: 'WINDOW_SIZE'='10 SECONDS'",
            window_type.name()
        ))),
        (_, size) => Ok(Some(WindowInfo { window_type, size_ms: size })),
    }
}

/// The catalog entry for a `CREATE STREAM/TABLE` with columns.
pub fn source_from_create(
    create: &CreateSource,
    statement: &str,
    catalog: &Catalog,
    defaults: &FormatDefaults,
) -> Result<Source, PlanError> {
    check_properties(&create.properties)?;
    let props = &create.properties;
    let topic = string_prop(props, "KAFKA_TOPIC").ok_or_else(|| {
        PlanError::new("Missing required property \"KAFKA_TOPIC\" which has no default value.")
    })?;
    let schema = columns(create.kind, &create.columns, catalog)?;
    let (key_format, value_format) = formats(props, defaults, None)?;
    Ok(Source {
        name: create.name.clone(),
        kind: create.kind,
        topic,
        timestamp: timestamp(props, &schema)?,
        schema,
        key_format,
        value_format,
        window: window(props)?,
        is_source: create.is_source,
        statement: statement.to_string(),
        created_by: None,
        partitions: int_prop(props, "PARTITIONS")?.map(|p| p as i32),
        replicas: int_prop(props, "REPLICAS")?.map(|r| r as i16),
    })
}

/// The catalog entry for the sink of a `CREATE STREAM/TABLE ... AS SELECT`.
pub fn sink_from_select(
    name: &str,
    kind: SourceKind,
    props: &Properties,
    plan: &SelectPlan,
    statement: &str,
    query_id: &str,
    defaults: &FormatDefaults,
) -> Result<Source, PlanError> {
    check_properties(props)?;
    for forbidden in ["WINDOW_TYPE", "WINDOW_SIZE"] {
        if props.get(forbidden).is_some() {
            return Err(PlanError::new(format!(
                "Invalid config variable(s) in the WITH clause: {forbidden}"
            )));
        }
    }
    let topic = string_prop(props, "KAFKA_TOPIC").unwrap_or_else(|| name.to_string());
    let schema = plan.output_schema();
    let (key_format, value_format) = formats(
        props,
        defaults,
        Some((&plan.source.key_format, &plan.source.value_format)),
    )?;
    Ok(Source {
        name: name.to_string(),
        kind,
        topic,
        timestamp: timestamp(props, &schema)?,
        schema,
        key_format,
        value_format,
        window: plan.source.window.clone(),
        is_source: false,
        statement: statement.to_string(),
        created_by: Some(query_id.to_string()),
        partitions: int_prop(props, "PARTITIONS")?
            .map(|p| p as i32)
            .or(plan.source.partitions),
        replicas: int_prop(props, "REPLICAS")?
            .map(|r| r as i16)
            .or(plan.source.replicas),
    })
}

/// The catalog entry for the table written by an aggregation (`CREATE TABLE ... AS SELECT ...
/// GROUP BY`).
pub fn sink_from_aggregate(
    name: &str,
    props: &Properties,
    plan: &crate::aggregate::AggregatePlan,
    statement: &str,
    query_id: &str,
    defaults: &FormatDefaults,
) -> Result<Source, PlanError> {
    check_properties(props)?;
    let topic = string_prop(props, "KAFKA_TOPIC").unwrap_or_else(|| name.to_string());
    let schema = plan.output_schema();
    let (mut key_format, value_format) = formats(
        props,
        defaults,
        Some((&plan.source.key_format, &plan.source.value_format)),
    )?;
    // Several key columns, or a key type the KAFKA format cannot carry, switch the key to JSON.
    let keys: Vec<&crate::catalog::Column> = schema.key_columns().collect();
    let kafka_ok = keys.len() == 1
        && matches!(
            keys[0].ty,
            SqlType::Int | SqlType::Bigint | SqlType::Double | SqlType::String | SqlType::Bytes
        );
    let unfit = (key_format.format == "KAFKA" && !kafka_ok)
        || (key_format.format == "NONE" && !keys.is_empty());
    if unfit && props.get("KEY_FORMAT").is_none() && props.get("FORMAT").is_none() {
        key_format = FormatInfo::new("JSON");
    }
    let window = plan.window.as_ref().map(|w| WindowInfo {
        window_type: w.window_type,
        size_ms: if w.window_type == WindowType::Session {
            None
        } else {
            Some(w.size_ms)
        },
    });
    Ok(Source {
        name: name.to_string(),
        kind: SourceKind::Table,
        topic,
        timestamp: timestamp(props, &schema)?,
        schema,
        key_format,
        value_format,
        window,
        is_source: false,
        statement: statement.to_string(),
        created_by: Some(query_id.to_string()),
        partitions: int_prop(props, "PARTITIONS")?
            .map(|p| p as i32)
            .or(plan.source.partitions),
        replicas: int_prop(props, "REPLICAS")?
            .map(|r| r as i16)
            .or(plan.source.replicas),
    })
}

//! ksqlDB's `/ksql` response entities (`"@type"`-tagged JSON objects) and the JSON form of values.
//!
//! Clients (the ksql CLI, the Java client, UIs, ksqlDB's REST test runner) parse these shapes by
//! their field names, so they follow ksqlDB's `KsqlEntity` subtypes field for field rather than
//! mirroring the engine's own structures.

use runnel_engine::output::{QuerySummary, StatementOutput};
use runnel_plan::catalog::{ColumnKind, Source};
use runnel_plan::Value;
use runnel_sql::{DescribeTarget, ExplainTarget, Show, SourceKind, SqlType, Statement};
use serde_json::{json, Map, Value as Json};

/// The entity list of one `/ksql` statement (`None` for statements of a RUN SCRIPT, whose ASTs
/// the engine does not return); `next_seq` numbers the commands that change state.
///
/// As in ksqlDB, INSERT VALUES, SET, UNSET, DEFINE and UNDEFINE return no entity.
pub fn entities(
    output: StatementOutput,
    stmt: Option<&Statement>,
    statement_text: &str,
    next_seq: &mut dyn FnMut() -> u64,
) -> Vec<Json> {
    match output {
        StatementOutput::Status { .. }
            if matches!(
                stmt,
                Some(
                    Statement::InsertValues { .. }
                        | Statement::Set { .. }
                        | Statement::Unset { .. }
                        | Statement::Define { .. }
                        | Statement::Undefine { .. }
                )
            ) =>
        {
            Vec::new()
        }
        StatementOutput::Status {
            statement,
            command_id,
            message,
            query_id,
        } => {
            let mut status = Map::new();
            status.insert("status".into(), json!("SUCCESS"));
            status.insert("message".into(), json!(message));
            if let Some(q) = query_id {
                status.insert("queryId".into(), json!(q));
            }
            vec![json!({
                "@type": "currentStatus",
                "statementText": statement,
                "commandId": command_id,
                "commandStatus": status,
                "commandSequenceNumber": next_seq(),
                "warnings": [],
            })]
        }
        StatementOutput::Warning { statement, message } => vec![json!({
            "@type": "warning_entity",
            "statementText": statement,
            "message": message,
            "warnings": [],
        })],
        StatementOutput::Sources {
            statement,
            kind,
            sources,
        } => {
            let list: Vec<Json> = sources.iter().map(|s| source_info(s)).collect();
            let key = if kind == SourceKind::Stream {
                "streams"
            } else {
                "tables"
            };
            vec![json!({
                "@type": key,
                "statementText": statement,
                key: list,
                "warnings": [],
            })]
        }
        StatementOutput::Topics { statement, topics } => {
            let list: Vec<Json> = topics
                .iter()
                .map(|t| {
                    let partitions = usize::try_from(t.partitions).unwrap_or(0);
                    json!({"name": t.name, "replicaInfo": vec![t.replicas; partitions]})
                })
                .collect();
            vec![json!({
                "@type": "kafka_topics",
                "statementText": statement,
                "topics": list,
                "warnings": [],
            })]
        }
        StatementOutput::Queries { statement, queries } => vec![json!({
            "@type": "queries",
            "statementText": statement,
            "queries": queries.iter().map(running_query).collect::<Vec<_>>(),
            "warnings": [],
        })],
        StatementOutput::Properties {
            statement,
            properties,
        } => match stmt {
            Some(Statement::Show(Show::Variables)) => {
                vec![variables_entity(&statement, &properties)]
            }
            _ => vec![properties_entity(&statement, &properties)],
        },
        StatementOutput::Descriptions {
            statement,
            extended,
            sources,
        } => {
            let described: Vec<Json> = sources
                .iter()
                .map(|(s, readers, writers)| source_description(s, readers, writers, extended))
                .collect();
            let single = match stmt {
                Some(Statement::Describe { target, .. }) => {
                    matches!(target, DescribeTarget::Source(_))
                }
                _ => described.len() == 1,
            };
            if single && described.len() == 1 {
                let one = described.into_iter().next().unwrap_or(Json::Null);
                vec![json!({
                    "@type": "sourceDescription",
                    "statementText": statement,
                    "sourceDescription": one,
                    "warnings": [],
                })]
            } else {
                vec![json!({
                    "@type": "source_descriptions",
                    "statementText": statement,
                    "sourceDescriptions": described,
                    "warnings": [],
                })]
            }
        }
        StatementOutput::Text(text) => vec![text_entity(text, stmt, statement_text)],
        StatementOutput::Script(outputs) => outputs
            .into_iter()
            .flat_map(|o| entities(o, None, "", next_seq))
            .collect(),
        // Push queries and PRINT never reach here: /ksql rejects them before executing.
        StatementOutput::Push(_) | StatementOutput::Pull(_) | StatementOutput::Print { .. } => {
            Vec::new()
        }
    }
}

/// The engine's free-text outputs (SHOW FUNCTIONS, DESCRIBE FUNCTION, EXPLAIN) as the entity
/// ksqlDB returns for the statement.
fn text_entity(text: String, stmt: Option<&Statement>, statement_text: &str) -> Json {
    match stmt {
        Some(Statement::Show(Show::Functions)) => {
            let functions: Vec<Json> = text
                .lines()
                .filter(|l| !l.is_empty())
                .map(|name| json!({"name": name, "type": "SCALAR", "category": ""}))
                .collect();
            json!({
                "@type": "function_names",
                "statementText": statement_text,
                "functions": functions,
                "warnings": [],
            })
        }
        Some(Statement::DescribeFunction { name }) => json!({
            "@type": "describe_function",
            "statementText": statement_text,
            "name": name,
            "description": text,
            "type": "SCALAR",
            "functions": [],
            "warnings": [],
        }),
        Some(Statement::Explain(target)) => {
            let id = match target {
                ExplainTarget::QueryId(id) => id.to_uppercase(),
                ExplainTarget::Statement(_) => String::new(),
            };
            json!({
                "@type": "queryDescription",
                "statementText": statement_text,
                "queryDescription": {
                    "id": id,
                    "statementText": statement_text,
                    "executionPlan": text,
                    "queryType": "PERSISTENT",
                },
                "warnings": [],
            })
        }
        _ => json!({
            "@type": "warning_entity",
            "statementText": statement_text,
            "message": text,
            "warnings": [],
        }),
    }
}

/// An element of `streams` / `tables`.
pub fn source_info(s: &Source) -> Json {
    json!({
        "type": kind_name(s.kind),
        "name": s.name,
        "topic": s.topic,
        "keyFormat": s.key_format.format,
        "valueFormat": s.value_format.format,
        "isWindowed": s.window.is_some(),
    })
}

fn kind_name(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Stream => "STREAM",
        SourceKind::Table => "TABLE",
    }
}

/// ksqlDB's `RunningQuery`, used by `queries` and by `readQueries` / `writeQueries`.
pub fn running_query(q: &QuerySummary) -> Json {
    json!({
        "queryString": q.statement,
        "sinks": [q.sink],
        "sinkKafkaTopics": [q.sink_topic],
        "id": q.id,
        "statusCount": { q.state.clone(): 1 },
        "queryType": "PERSISTENT",
        "state": q.state,
    })
}

/// `properties`: every property is reported at server level; request overrides are listed in
/// `overwrittenProperties` by the caller's choice of what it passes in.
pub fn properties_entity(statement: &str, properties: &[(String, String)]) -> Json {
    let list: Vec<Json> = properties
        .iter()
        .map(|(k, v)| {
            json!({
                "name": k,
                "scope": if k.starts_with("ksql.") { "KSQL" } else { "KAFKA" },
                "value": v,
                "editable": true,
                "level": "SERVER",
            })
        })
        .collect();
    json!({
        "@type": "properties",
        "statementText": statement,
        "properties": list,
        "overwrittenProperties": [],
        "defaultProperties": [],
        "warnings": [],
    })
}

/// `variables` (SHOW VARIABLES).
pub fn variables_entity(statement: &str, variables: &[(String, String)]) -> Json {
    let list: Vec<Json> = variables
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    json!({
        "@type": "variables",
        "statementText": statement,
        "variables": list,
        "warnings": [],
    })
}

/// `type_list` (SHOW TYPES).
pub fn types_entity<'a>(
    statement: &str,
    types: impl Iterator<Item = (&'a String, &'a SqlType)>,
) -> Json {
    let map: Map<String, Json> = types.map(|(k, t)| (k.clone(), schema(t))).collect();
    json!({
        "@type": "type_list",
        "statementText": statement,
        "types": map,
        "warnings": [],
    })
}

/// The `schema` of a field: `{"type", "fields", "memberSchema"}` (plus `parameters` for decimals).
pub fn schema(ty: &SqlType) -> Json {
    let mut out = Map::new();
    out.insert("type".into(), json!(ty.base_name()));
    let fields = match ty {
        SqlType::Struct(fields) => Json::Array(
            fields
                .iter()
                .map(|f| json!({"name": f.name, "schema": schema(&f.ty)}))
                .collect(),
        ),
        _ => Json::Null,
    };
    out.insert("fields".into(), fields);
    let member = match ty {
        SqlType::Array(inner) | SqlType::Map(_, inner) => schema(inner),
        _ => Json::Null,
    };
    out.insert("memberSchema".into(), member);
    if let SqlType::Decimal { precision, scale } = ty {
        out.insert(
            "parameters".into(),
            json!({"precision": precision, "scale": scale}),
        );
    }
    Json::Object(out)
}

/// ksqlDB's `SourceDescription`.
pub fn source_description(
    s: &Source,
    readers: &[QuerySummary],
    writers: &[QuerySummary],
    extended: bool,
) -> Json {
    let mut fields = vec![json!({
        "name": "ROWTIME",
        "schema": schema(&SqlType::Bigint),
    })];
    for c in s
        .schema
        .key_columns()
        .chain(s.schema.columns.iter().filter(|c| !c.is_key()))
    {
        let mut field = Map::new();
        field.insert("name".into(), json!(c.name));
        field.insert("schema".into(), schema(&c.ty));
        match &c.kind {
            ColumnKind::Key => {
                field.insert("type".into(), json!("KEY"));
            }
            ColumnKind::Headers => {
                field.insert("type".into(), json!("HEADER"));
            }
            ColumnKind::Header(k) => {
                field.insert("type".into(), json!("HEADER"));
                field.insert("headerKey".into(), json!(k));
            }
            ColumnKind::Value => {}
        }
        fields.push(Json::Object(field));
    }
    json!({
        "name": s.name,
        "windowType": s.window.as_ref().map(|w| w.window_type.name()),
        "readQueries": readers.iter().map(running_query).collect::<Vec<_>>(),
        "writeQueries": writers.iter().map(running_query).collect::<Vec<_>>(),
        "fields": fields,
        "type": kind_name(s.kind),
        "timestamp": s.timestamp.as_ref().map(|t| t.column.clone()).unwrap_or_default(),
        "statistics": "",
        "errorStats": "",
        "extended": extended,
        "keyFormat": s.key_format.format,
        "valueFormat": s.value_format.format,
        "topic": s.topic,
        "partitions": s.partitions.unwrap_or(1),
        "replication": s.replicas.unwrap_or(1),
        "statement": s.statement,
        "queryOffsetSummaries": [],
        "sourceConstraints": [],
    })
}

/// A value as ksqlDB writes it in query results: numbers as numbers, bytes in base64, dates and
/// times as ISO-8601 text, structs and maps as objects.
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Boolean(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Bigint(i) => json!(i),
        Value::Double(d) => double_json(*d),
        Value::Decimal(d) => double_json(d.to_f64()),
        Value::String(s) => json!(s),
        Value::Bytes(b) => {
            use base64::Engine as _;
            json!(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Value::Date(days) => json!(format_date(*days)),
        Value::Time(ms) => json!(format_time(*ms)),
        Value::Timestamp(ms) => json!(format_timestamp(*ms)),
        Value::Array(items) => Json::Array(items.iter().map(value_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (key, value_json(v))
                })
                .collect(),
        ),
        Value::Struct(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), value_json(v)))
                .collect(),
        ),
    }
}

/// JSON has no NaN or infinities; they are written as Java prints them, as strings.
fn double_json(d: f64) -> Json {
    serde_json::Number::from_f64(d)
        .map(Json::Number)
        .unwrap_or_else(|| json!(runnel_plan::value::format_double_java(d)))
}

fn format_date(days: i32) -> String {
    chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| days.to_string())
}

fn format_time(ms: i32) -> String {
    let ms = ms.rem_euclid(86_400_000);
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if frac == 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}.{frac:03}")
    }
}

fn format_timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// The `schema` text of a `/query` header: `` `A` STRING, `B` BIGINT ``.
pub fn schema_text(columns: &[(String, SqlType)]) -> String {
    columns
        .iter()
        .map(|(n, t)| format!("`{n}` {t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_plan::value::Decimal;

    #[test]
    fn values_render_as_ksqldb_json() {
        let row = Value::Array(vec![
            Value::Int(1),
            Value::Double(1.5),
            Value::Decimal(Decimal::new(150, 2)),
            Value::Bytes(vec![0x21]),
            Value::Date(1),
            Value::Time(12_000),
            Value::Timestamp(12_345_335),
            Value::Map(vec![(Value::String("a".into()), Value::Bigint(2))]),
            Value::Struct(vec![("F".into(), Value::Null)]),
            Value::Double(f64::NAN),
        ]);
        assert_eq!(
            value_json(&row).to_string(),
            r#"[1,1.5,1.5,"IQ==","1970-01-02","00:00:12","1970-01-01T03:25:45.335",{"a":2},{"F":null},"NaN"]"#
        );
    }

    #[test]
    fn schema_of_nested_types() {
        let ty = SqlType::Array(Box::new(SqlType::Struct(vec![
            runnel_sql::StructField::new("A", SqlType::decimal(4, 2)),
        ])));
        assert_eq!(
            schema(&ty).to_string(),
            r#"{"type":"ARRAY","fields":null,"memberSchema":{"type":"STRUCT","fields":[{"name":"A","schema":{"type":"DECIMAL","fields":null,"memberSchema":null,"parameters":{"precision":4,"scale":2}}}],"memberSchema":null}}"#
        );
        assert_eq!(
            schema_text(&[("A".into(), SqlType::String), ("B".into(), SqlType::Bigint)]),
            "`A` STRING, `B` BIGINT"
        );
    }

    #[test]
    fn status_entities_carry_sequence_numbers() {
        let mut n = 4;
        let mut seq = || {
            n += 1;
            n
        };
        let out = entities(
            StatementOutput::Status {
                statement: "CREATE STREAM S ...;".into(),
                command_id: "stream/`S`/create".into(),
                message: "Stream created".into(),
                query_id: None,
            },
            None,
            "CREATE STREAM S ...;",
            &mut seq,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["@type"], "currentStatus");
        assert_eq!(out[0]["commandSequenceNumber"], 5);
        assert_eq!(out[0]["commandStatus"]["status"], "SUCCESS");
        assert!(out[0]["commandStatus"].get("queryId").is_none());
    }

    #[test]
    fn silent_statements_return_no_entity() {
        let stmt = Statement::Set {
            name: "a".into(),
            value: "b".into(),
        };
        let out = entities(
            StatementOutput::status("SET 'a'='b';", "property/set".into(), "x".into()),
            Some(&stmt),
            "SET 'a'='b';",
            &mut || 1,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn show_functions_lists_names() {
        let stmt = Statement::Show(Show::Functions);
        let out = entities(
            StatementOutput::Text("ABS\nCONCAT".into()),
            Some(&stmt),
            "SHOW FUNCTIONS;",
            &mut || 1,
        );
        assert_eq!(out[0]["@type"], "function_names");
        assert_eq!(out[0]["functions"][1]["name"], "CONCAT");
    }
}

//! `POST /inserts-stream`: a first line `{"target": "S"}`, then one JSON object per line, each
//! acknowledged with `{"status":"ok","seq":n}` as soon as it is written.
//!
//! Each row becomes the engine's own INSERT VALUES statement, so it is checked, converted and
//! serialized exactly as a SQL insert would be. The statement is built as an AST, not as text:
//! nothing in a row (quotes, backticks, `${...}`) can change the statement, and each JSON value is
//! turned into a literal of its column's type (`CAST`s for the engine to check, `TO_BYTES` for
//! base64 bytes, `FROM_UNIXTIME` for epoch-millisecond timestamps).

use crate::error::ApiError;
use crate::ksql::statement_error;
use crate::{negotiate, AppState, DELIMITED};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use runnel_plan::catalog::Source;
use runnel_sql::{Expr, Literal, ParsedStatement, SourceKind, SqlType, Statement};
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug, Deserialize)]
struct InsertsTarget {
    target: String,
}

/// Splits a request body into lines as its chunks arrive.
struct Lines {
    body: axum::body::BodyDataStream,
    buffer: Vec<u8>,
    done: bool,
}

impl Lines {
    fn new(body: Body) -> Self {
        Lines {
            body: body.into_data_stream(),
            buffer: Vec::new(),
            done: false,
        }
    }

    /// The next non-blank line; `None` at the end of the body.
    async fn next(&mut self) -> Option<Result<String, ApiError>> {
        loop {
            if let Some(pos) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=pos).collect();
                match String::from_utf8(line) {
                    Ok(l) if l.trim().is_empty() => continue,
                    Ok(l) => return Some(Ok(l.trim().to_string())),
                    Err(_) => return Some(Err(ApiError::bad_request("Invalid UTF-8 in request"))),
                }
            }
            if self.done {
                let rest = std::mem::take(&mut self.buffer);
                return match String::from_utf8(rest) {
                    Ok(l) if l.trim().is_empty() => None,
                    Ok(l) => Some(Ok(l.trim().to_string())),
                    Err(_) => Some(Err(ApiError::bad_request("Invalid UTF-8 in request"))),
                };
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    return Some(Err(ApiError::bad_request(format!(
                        "Cannot read request: {e}"
                    ))))
                }
                None => self.done = true,
            }
        }
    }
}

pub(crate) async fn handle(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let content_type = negotiate(&headers, &[DELIMITED, "application/json"]);
    let mut lines = Lines::new(body);
    let first = match lines.next().await {
        Some(line) => line?,
        None => return Err(ApiError::bad_request("Missing insert target")),
    };
    let target: InsertsTarget = serde_json::from_str(&first)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON in request: {e}")))?;
    let name = target.target;
    let source = state
        .with_engine(move |engine| {
            engine
                .catalog
                .source(&name)
                .or_else(|| engine.catalog.source(&name.to_uppercase()))
                .cloned()
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Cannot insert values into an unknown stream: {name}"
                    ))
                })
        })
        .await??;
    if source.kind == SourceKind::Table {
        return Err(ApiError::bad_request("Cannot insert into a table"));
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let json_array = content_type != DELIMITED;
    tokio::spawn(insert_rows(state, source, lines, tx, json_array));
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response())
}

/// Inserts rows until the body ends or a row fails (its error is the last ack).
async fn insert_rows(
    state: Arc<AppState>,
    source: Arc<Source>,
    mut lines: Lines,
    tx: mpsc::Sender<Bytes>,
    json_array: bool,
) {
    let mut seq: u64 = 0;
    let ack = |seq: u64, body: Json| {
        let text = match (json_array, seq) {
            (true, 0) => format!("[{body}"),
            (true, _) => format!(",{body}"),
            (false, _) => format!("{body}\n"),
        };
        Bytes::from(text)
    };
    while let Some(line) = lines.next().await {
        let result = match line {
            Ok(line) => insert_row(&state, &source, &line).await,
            Err(e) => Err(e),
        };
        let (body, failed) = match result {
            Ok(()) => (json!({"status": "ok", "seq": seq}), false),
            Err(e) => (
                json!({"status": "error", "seq": seq, "error_code": e.code(), "message": e.to_string()}),
                true,
            ),
        };
        if tx.send(ack(seq, body)).await.is_err() {
            return;
        }
        seq += 1;
        if failed {
            break;
        }
    }
    if json_array {
        let end = if seq == 0 { "[]" } else { "]" };
        let _ = tx.send(Bytes::from(end)).await;
    }
}

async fn insert_row(state: &AppState, source: &Source, line: &str) -> Result<(), ApiError> {
    let row: Map<String, Json> = serde_json::from_str(line)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON row: {e}")))?;
    let stmt = insert_statement(source, &row)?;
    state
        .with_engine(move |engine| {
            engine
                .execute(&stmt)
                .map(|_| ())
                .map_err(|e| statement_error(e, &stmt.text, Vec::new()))
        })
        .await?
}

/// `INSERT INTO target (columns) VALUES (literals)` for one JSON row.
fn insert_statement(source: &Source, row: &Map<String, Json>) -> Result<ParsedStatement, ApiError> {
    let mut columns = Vec::new();
    let mut values = Vec::new();
    for (key, value) in row {
        let (name, ty) = if key.eq_ignore_ascii_case("ROWTIME") {
            ("ROWTIME".to_string(), SqlType::Bigint)
        } else {
            let column = source
                .schema
                .columns
                .iter()
                .find(|c| &c.name == key)
                .or_else(|| {
                    source
                        .schema
                        .columns
                        .iter()
                        .find(|c| c.name.eq_ignore_ascii_case(key))
                })
                .ok_or_else(|| {
                    ApiError::bad_request(format!("Column name {key} does not exist."))
                })?;
            (column.name.clone(), column.ty.clone())
        };
        let expr = if value.is_null() {
            Expr::Literal(Literal::Null)
        } else {
            literal(value, &ty).map_err(|m| {
                ApiError::bad_request(format!("Invalid value for column {name}: {m}"))
            })?
        };
        columns.push(name);
        values.push(expr);
    }
    let text = format!(
        "INSERT INTO {} ({}) VALUES ({});",
        quote(&source.name),
        columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", "),
        values
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ParsedStatement {
        statement: Statement::InsertValues {
            target: source.name.clone(),
            columns: Some(columns),
            values,
        },
        text,
        line: 1,
        column: 1,
    })
}

/// A back-quoted identifier.
fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn cast(expr: Expr, ty: &SqlType) -> Expr {
    Expr::Cast {
        expr: Box::new(expr),
        ty: ty.clone(),
    }
}

/// A non-null JSON value as an expression of type `ty`.
fn literal(value: &Json, ty: &SqlType) -> Result<Expr, String> {
    let mismatch = || format!("cannot convert {value} to {ty}");
    let expr = match (value, ty) {
        (Json::Null, _) => return Ok(cast(Expr::Literal(Literal::Null), ty)),
        (Json::Bool(b), _) => Expr::Literal(Literal::Boolean(*b)),
        (Json::Number(n), SqlType::Timestamp) => {
            let ms = n.as_i64().ok_or_else(mismatch)?;
            return Ok(Expr::Function {
                name: "FROM_UNIXTIME".into(),
                args: vec![Expr::Literal(Literal::Integer(ms))],
                star: false,
            });
        }
        (Json::Number(n), SqlType::Date) => {
            let days = n.as_i64().ok_or_else(mismatch)?;
            return Ok(Expr::Function {
                name: "FROM_DAYS".into(),
                args: vec![Expr::Literal(Literal::Integer(days))],
                star: false,
            });
        }
        (Json::Number(n), _) => number(n, ty),
        (Json::String(s), SqlType::Bytes) => {
            return Ok(Expr::Function {
                name: "TO_BYTES".into(),
                args: vec![
                    Expr::Literal(Literal::String(s.clone())),
                    Expr::Literal(Literal::String("base64".into())),
                ],
                star: false,
            })
        }
        (Json::String(s), _) => Expr::Literal(Literal::String(s.clone())),
        (Json::Array(items), SqlType::Array(inner)) => Expr::Array(
            items
                .iter()
                .map(|v| literal(v, inner))
                .collect::<Result<_, _>>()?,
        ),
        (Json::Object(entries), SqlType::Map(key, inner)) => Expr::Map(
            entries
                .iter()
                .map(|(k, v)| {
                    Ok((
                        cast(Expr::Literal(Literal::String(k.clone())), key),
                        literal(v, inner)?,
                    ))
                })
                .collect::<Result<_, String>>()?,
        ),
        (Json::Object(entries), SqlType::Struct(fields)) => {
            for k in entries.keys() {
                if !fields.iter().any(|f| f.name.eq_ignore_ascii_case(k)) {
                    return Err(format!("unknown field {k} of {ty}"));
                }
            }
            Expr::Struct(
                fields
                    .iter()
                    .map(|f| {
                        let v = entries
                            .get(&f.name)
                            .or_else(|| {
                                entries
                                    .iter()
                                    .find(|(k, _)| k.eq_ignore_ascii_case(&f.name))
                                    .map(|(_, v)| v)
                            })
                            .unwrap_or(&Json::Null);
                        Ok((f.name.clone(), literal(v, &f.ty)?))
                    })
                    .collect::<Result<_, String>>()?,
            )
        }
        _ => return Err(mismatch()),
    };
    Ok(cast(expr, ty))
}

/// A JSON number as the literal closest to `ty`: integers stay exact, decimals keep their digits.
fn number(n: &serde_json::Number, ty: &SqlType) -> Expr {
    if let Some(i) = n.as_i64() {
        return Expr::Literal(Literal::Integer(i));
    }
    let text = n.to_string();
    let plain = !text.contains(['e', 'E']);
    if plain && (matches!(ty, SqlType::Decimal { .. }) || n.is_u64()) {
        return Expr::Literal(Literal::Decimal(text));
    }
    Expr::Literal(Literal::Double(n.as_f64().unwrap_or(f64::NAN)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{call, memory_server};
    use runnel_plan::catalog::{Column, ColumnKind, FormatInfo, Schema};
    use runnel_sql::StructField;

    fn source() -> Source {
        Source {
            name: "S".into(),
            kind: SourceKind::Stream,
            topic: "s".into(),
            schema: Schema {
                columns: vec![
                    Column::new("K", SqlType::String, ColumnKind::Key),
                    Column::new("V", SqlType::Int, ColumnKind::Value),
                    Column::new(
                        "ST",
                        SqlType::Struct(vec![
                            StructField::new("A", SqlType::Int),
                            StructField::new("B", SqlType::String),
                        ]),
                        ColumnKind::Value,
                    ),
                ],
            },
            key_format: FormatInfo::new("KAFKA"),
            value_format: FormatInfo::new("JSON"),
            timestamp: None,
            window: None,
            is_source: false,
            statement: String::new(),
            created_by: None,
            partitions: Some(1),
            replicas: Some(1),
        }
    }

    #[test]
    fn rows_become_insert_statements_with_safe_literals() {
        let row: Map<String, Json> =
            serde_json::from_str(r#"{"k": "it's ${x} `q`", "V": 3, "st": {"a": 1}}"#).unwrap();
        let stmt = insert_statement(&source(), &row).unwrap();
        let Statement::InsertValues {
            target,
            columns,
            values,
        } = &stmt.statement
        else {
            panic!("not an insert: {stmt:?}");
        };
        assert_eq!(target, "S");
        assert_eq!(columns.as_deref().unwrap(), ["K", "V", "ST"]);
        assert_eq!(
            values[0],
            cast(
                Expr::Literal(Literal::String("it's ${x} `q`".into())),
                &SqlType::String
            )
        );
        let Expr::Cast { expr, .. } = &values[2] else {
            panic!("{:?}", values[2])
        };
        let Expr::Struct(fields) = expr.as_ref() else {
            panic!("{expr:?}")
        };
        assert_eq!(fields.len(), 2);
        assert_eq!(
            fields[1].1,
            cast(Expr::Literal(Literal::Null), &SqlType::String)
        );
        assert!(stmt
            .text
            .starts_with("INSERT INTO `S` (`K`, `V`, `ST`) VALUES ("));
    }

    #[test]
    fn bad_rows_are_rejected() {
        let row: Map<String, Json> = serde_json::from_str(r#"{"NOPE": 1}"#).unwrap();
        assert!(insert_statement(&source(), &row).is_err());
        let row: Map<String, Json> = serde_json::from_str(r#"{"V": [1]}"#).unwrap();
        assert!(insert_statement(&source(), &row).is_err());
        assert_eq!(quote("a`b"), "`a``b`");
    }

    #[test]
    fn numbers_keep_their_kind() {
        let n = |t: &str| serde_json::from_str::<serde_json::Number>(t).unwrap();
        assert_eq!(
            number(&n("5"), &SqlType::Double),
            Expr::Literal(Literal::Integer(5))
        );
        assert_eq!(
            number(&n("1.50"), &SqlType::decimal(4, 2)),
            Expr::Literal(Literal::Decimal("1.5".into()))
        );
        assert_eq!(
            number(&n("1.5"), &SqlType::Double),
            Expr::Literal(Literal::Double(1.5))
        );
    }

    #[tokio::test]
    async fn inserts_stream_acks_each_row() {
        let server = memory_server();
        call(
            &server,
            "POST",
            "/ksql",
            r#"{"ksql": "CREATE STREAM S (K STRING KEY, V INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"}"#,
            None,
        )
        .await;
        let body = "{\"target\": \"S\"}\n{\"K\": \"a\", \"V\": 1}\n{\"K\": \"b\", \"V\": 2}\n";
        let (status, _, out) = call(&server, "POST", "/inserts-stream", body, None).await;
        assert_eq!(status, StatusCode::OK, "{out}");
        assert_eq!(
            out,
            "{\"status\":\"ok\",\"seq\":0}\n{\"status\":\"ok\",\"seq\":1}\n"
        );
        let engine = server.state().engine.lock().unwrap();
        let runnel_engine::Backend::Memory(topics) = &engine.backend else {
            panic!("memory backend expected")
        };
        let records = &topics["s"].records;
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].key.as_deref(), Some(&b"b"[..]));
        assert_eq!(records[1].value.as_deref(), Some(&b"{\"V\":2}"[..]));
    }

    #[tokio::test]
    async fn inserts_stream_errors() {
        let server = memory_server();
        let (status, _, out) = call(
            &server,
            "POST",
            "/inserts-stream",
            "{\"target\": \"NOPE\"}\n",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{out}");
        call(
            &server,
            "POST",
            "/ksql",
            r#"{"ksql": "CREATE STREAM S (V INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"}"#,
            None,
        )
        .await;
        let body = "{\"target\": \"s\"}\n{\"V\": \"x\"}\n{\"V\": 2}\n";
        let (status, _, out) = call(
            &server,
            "POST",
            "/inserts-stream",
            body,
            Some("application/json"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let v: Json = serde_json::from_str(&out).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 1, "{out}");
        assert_eq!(v[0]["status"], "error");
        assert_eq!(v[0]["seq"], 0);
    }
}

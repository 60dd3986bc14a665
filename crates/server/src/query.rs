//! `POST /query`, `POST /query-stream` and `POST /close-query`: push queries and PRINT streamed
//! as chunked HTTP responses.
//!
//! The engine delivers rows on a blocking channel from the query's own thread. A blocking task
//! (one per streaming response) moves them into the response body and watches three ways for a
//! query to end: its LIMIT, its stop flag (`/close-query`, server shutdown) and the client going
//! away (the response body is dropped, which closes the channel). In every case it stops the
//! query thread before it returns, so no consumer is left behind.

use crate::entities::{schema_text, value_json};
use crate::error::ApiError;
use crate::ksql::statement_error;
use crate::{negotiate, parse_body, with_overrides, AppState, DELIMITED, KSQL_V1_JSON};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use runnel_engine::output::StatementOutput;
use runnel_engine::pull::PullResult;
use runnel_engine::runner::{PushQuery, PushRow, Running};
use runnel_sql::{SqlType, Statement};
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the pump looks at the stop flag and the client while no row arrives.
const POLL: Duration = Duration::from_millis(100);

/// The `/query` request (same shape as `/ksql`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryRequest {
    ksql: String,
    #[serde(default)]
    streams_properties: Map<String, Json>,
    #[serde(default)]
    session_variables: Map<String, Json>,
    #[serde(default)]
    command_sequence_number: Option<i64>,
}

/// The `/query-stream` request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryStreamRequest {
    sql: String,
    #[serde(default)]
    properties: Map<String, Json>,
    #[serde(default)]
    session_variables: Map<String, Json>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CloseQueryRequest {
    query_id: String,
}

/// A started query or PRINT.
enum Started {
    Push(PushQuery),
    /// A pull query, already answered.
    Pull(PullResult),
    Print {
        lines: Receiver<String>,
        running: Running,
    },
}

/// How the rows of a response are framed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    /// `/query`: one JSON array of `StreamedRow`s.
    Legacy,
    /// `/query-stream`, delimited: a metadata line, then one JSON array per row per line.
    Delimited,
    /// `/query-stream`, `application/json`: `[metadata, row, row, ...]`.
    JsonArray,
}

/// Why a push query's response ended.
#[derive(Debug, PartialEq)]
enum End {
    Limit,
    Completed,
    Stopped,
    ClientGone,
}

impl Framing {
    fn header(self, query_id: &str, columns: &[(String, SqlType)]) -> String {
        match self {
            Framing::Legacy => format!(
                "[{}",
                json!({"header": {"queryId": query_id, "schema": schema_text(columns)}})
            ),
            Framing::Delimited | Framing::JsonArray => {
                let meta = json!({
                    "queryId": query_id,
                    "columnNames": columns.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
                    "columnTypes": columns.iter().map(|(_, t)| t.to_string()).collect::<Vec<_>>(),
                });
                if self == Framing::Delimited {
                    format!("{meta}\n")
                } else {
                    format!("[{meta}")
                }
            }
        }
    }

    /// A push row's text; `None` for a tombstone where the framing has no way to say so:
    /// like ksqlDB, `/query` flags it (`"tombstone":true`) and `/query-stream`'s delimited and
    /// JSON formats drop it (ksqlDB logs "Dropped tombstone. Not currently supported").
    fn push_row(self, row: &PushRow) -> Option<String> {
        match self {
            Framing::Legacy if row.tombstone => {
                let columns = Json::Array(row.values.iter().map(value_json).collect());
                Some(format!(
                    ",\n{}",
                    json!({"row": {"columns": columns, "tombstone": true}})
                ))
            }
            _ if row.tombstone => None,
            _ => Some(self.row(&row.values)),
        }
    }

    fn row(self, values: &[runnel_plan::Value]) -> String {
        let columns = Json::Array(values.iter().map(value_json).collect());
        match self {
            Framing::Legacy => format!(",\n{}", json!({"row": {"columns": columns}})),
            Framing::Delimited => format!("{columns}\n"),
            Framing::JsonArray => format!(",\n{columns}"),
        }
    }

    fn footer(self, end: &End) -> String {
        match self {
            Framing::Legacy => {
                let message = if *end == End::Limit {
                    "Limit Reached"
                } else {
                    "Query Completed"
                };
                format!(",\n{}]\n", json!({ "finalMessage": message }))
            }
            Framing::Delimited => String::new(),
            Framing::JsonArray => "]\n".to_string(),
        }
    }
}

pub(crate) async fn handle_query(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: QueryRequest = parse_body(&body)?;
    let content_type = negotiate(&headers, &[KSQL_V1_JSON, "application/json"]);
    state
        .wait_for_command(request.command_sequence_number)
        .await?;
    let slot = state.acquire_push_slot()?;
    let started = start(
        &state,
        request.ksql,
        request.streams_properties,
        request.session_variables,
    )
    .await?;
    Ok(stream(state, started, Framing::Legacy, content_type, slot))
}

pub(crate) async fn handle_query_stream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: QueryStreamRequest = parse_body(&body)?;
    // Like ksqlDB: delimited by default, `[metadata, row...]` for `application/json`, and
    // `/query`'s array of StreamedRows for `application/vnd.ksql.v1+json`.
    let content_type = negotiate(&headers, &[DELIMITED, "application/json", KSQL_V1_JSON]);
    let framing = match content_type {
        DELIMITED => Framing::Delimited,
        KSQL_V1_JSON => Framing::Legacy,
        _ => Framing::JsonArray,
    };
    let slot = state.acquire_push_slot()?;
    let started = start(
        &state,
        request.sql,
        request.properties,
        request.session_variables,
    )
    .await?;
    Ok(stream(state, started, framing, content_type, slot))
}

pub(crate) async fn handle_close_query(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: CloseQueryRequest = parse_body(&body)?;
    let stop = state.lock_queries().get(&request.query_id).cloned();
    match stop {
        Some(flag) => {
            flag.store(true, Ordering::SeqCst);
            Ok(StatusCode::OK.into_response())
        }
        None => Err(ApiError::bad_request(format!(
            "No query with id {}",
            request.query_id
        ))),
    }
}

/// Parses and starts the one query of a request.
async fn start(
    state: &Arc<AppState>,
    sql: String,
    properties: Map<String, Json>,
    variables: Map<String, Json>,
) -> Result<Started, ApiError> {
    state
        .with_engine(move |engine| {
            with_overrides(engine, &properties, &variables, |engine| {
                let statements = engine
                    .parse(&sql)
                    .map_err(|e| statement_error(e, sql.trim(), Vec::new()))?;
                let [stmt] = statements.as_slice() else {
                    return Err(ApiError::statement(
                        format!("Expected exactly one statement, got {}", statements.len()),
                        sql.trim(),
                    ));
                };
                if !matches!(
                    stmt.statement,
                    Statement::Query(_) | Statement::Print { .. }
                ) {
                    return Err(ApiError::statement(
                        "Statement type not supported for this resource: only SELECT and PRINT \
                         can be issued to the query endpoints",
                        stmt.text.clone(),
                    ));
                }
                match engine.execute(stmt) {
                    Ok(StatementOutput::Push(q)) => Ok(Started::Push(q)),
                    Ok(StatementOutput::Pull(p)) => Ok(Started::Pull(p)),
                    Ok(StatementOutput::Print { lines, running }) => {
                        Ok(Started::Print { lines, running })
                    }
                    Ok(_) => Err(ApiError::statement("Not a query", stmt.text.clone())),
                    Err(e) => Err(statement_error(e, &stmt.text, Vec::new())),
                }
            })
        })
        .await?
}

/// The streaming response of a started query.
fn stream(
    state: Arc<AppState>,
    started: Started,
    framing: Framing,
    content_type: &'static str,
    slot: crate::PushSlot,
) -> Response {
    let started = match started {
        Started::Pull(result) => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, content_type)],
                pull_body(&result, framing),
            )
                .into_response()
        }
        other => other,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let content_type = match started {
        Started::Pull(_) => content_type,
        Started::Push(q) => {
            tokio::task::spawn_blocking(move || {
                let _slot = slot;
                pump_push(&state, q, framing, &tx)
            });
            content_type
        }
        Started::Print { lines, running } => {
            tokio::task::spawn_blocking(move || {
                let _slot = slot;
                pump_print(lines, running, &tx)
            });
            "text/plain"
        }
    };
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response()
}

/// The whole response of a pull query. The `/query` header's schema marks the table's key
/// columns with `KEY`, as ksqlDB's does; only stream pull queries end with a final message.
fn pull_body(result: &PullResult, framing: Framing) -> String {
    let mut out = match framing {
        Framing::Legacy => {
            let schema = result
                .columns
                .iter()
                .zip(&result.key_columns)
                .map(|((n, t), key)| {
                    if *key {
                        format!("`{n}` {t} KEY")
                    } else {
                        format!("`{n}` {t}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "[{}",
                json!({"header": {"queryId": result.query_id, "schema": schema}})
            )
        }
        other => other.header(&result.query_id, &result.columns),
    };
    for row in &result.rows {
        out.push_str(&framing.row(row));
    }
    match (framing, &result.final_message) {
        (Framing::Legacy, Some(m)) => {
            out.push_str(&format!(",\n{}]\n", json!({ "finalMessage": m })));
        }
        (Framing::Legacy, None) => out.push_str("]\n"),
        (Framing::JsonArray, _) => out.push_str("]\n"),
        (Framing::Delimited, _) => {}
    }
    out
}

/// Moves a push query's rows into the response until it ends; always stops the query.
fn pump_push(state: &AppState, query: PushQuery, framing: Framing, tx: &mpsc::Sender<Bytes>) {
    let PushQuery {
        query_id,
        columns,
        rows,
        mut running,
        limit,
    } = query;
    let stop: Arc<AtomicBool> = running.stop.clone();
    state.lock_queries().insert(query_id.clone(), stop.clone());
    let send = |text: String| tx.blocking_send(Bytes::from(text)).is_ok();
    let end = if send(framing.header(&query_id, &columns)) {
        pump_rows(&rows, &stop, limit, framing, tx, &send)
    } else {
        End::ClientGone
    };
    running.stop();
    state.lock_queries().remove(&query_id);
    if end != End::ClientGone {
        let footer = framing.footer(&end);
        if !footer.is_empty() {
            send(footer);
        }
    }
    tracing::debug!(query = %query_id, ?end, "push query response ended");
}

fn pump_rows(
    rows: &Receiver<PushRow>,
    stop: &AtomicBool,
    limit: Option<u64>,
    framing: Framing,
    tx: &mpsc::Sender<Bytes>,
    send: &dyn Fn(String) -> bool,
) -> End {
    let mut count = 0u64;
    loop {
        if limit.is_some_and(|l| count >= l) {
            return End::Limit;
        }
        if stop.load(Ordering::SeqCst) {
            return End::Stopped;
        }
        if tx.is_closed() {
            return End::ClientGone;
        }
        match rows.recv_timeout(POLL) {
            Ok(row) => {
                // A dropped tombstone still counts towards the LIMIT, as in ksqlDB.
                if let Some(text) = framing.push_row(&row) {
                    if !send(text) {
                        return End::ClientGone;
                    }
                }
                count += 1;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return End::Completed,
        }
    }
}

/// Moves PRINT lines into the response until the client goes away or the PRINT ends.
fn pump_print(lines: Receiver<String>, mut running: Running, tx: &mpsc::Sender<Bytes>) {
    loop {
        if tx.is_closed() || running.stop.load(Ordering::SeqCst) {
            break;
        }
        match lines.recv_timeout(POLL) {
            Ok(line) => {
                if tx.blocking_send(Bytes::from(format!("{line}\n"))).is_err() {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    running.stop();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{call, memory_server};

    fn push_query(limit: Option<u64>) -> (PushQuery, std::sync::mpsc::SyncSender<PushRow>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        let q = PushQuery {
            query_id: "transient_S_1".into(),
            columns: vec![
                ("A".into(), runnel_sql::SqlType::String),
                ("B".into(), runnel_sql::SqlType::Bigint),
            ],
            rows: rx,
            running: Running {
                stop: Arc::new(AtomicBool::new(false)),
                thread: None,
                stats: Default::default(),
            },
            limit,
        };
        (q, tx)
    }

    async fn collect(mut rx: mpsc::Receiver<Bytes>) -> String {
        let mut out = String::new();
        while let Some(b) = rx.recv().await {
            out.push_str(std::str::from_utf8(&b).unwrap());
        }
        out
    }

    #[tokio::test]
    async fn legacy_framing_until_limit() {
        use runnel_plan::Value;
        let server = memory_server();
        let state = server.state().clone();
        let (q, rows) = push_query(Some(2));
        for i in 0..3 {
            rows.send(PushRow {
                values: vec![Value::String(format!("r{i}")), Value::Bigint(i)],
                tombstone: false,
            })
            .unwrap();
        }
        let (tx, rx) = mpsc::channel(64);
        let s = state.clone();
        let pump = tokio::task::spawn_blocking(move || pump_push(&s, q, Framing::Legacy, &tx));
        let text = collect(rx).await;
        pump.await.unwrap();
        assert_eq!(
            text,
            "[{\"header\":{\"queryId\":\"transient_S_1\",\"schema\":\"`A` STRING, `B` BIGINT\"}},\n\
             {\"row\":{\"columns\":[\"r0\",0]}},\n{\"row\":{\"columns\":[\"r1\",1]}},\n\
             {\"finalMessage\":\"Limit Reached\"}]\n"
        );
        let parsed: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), 4);
        assert!(state.running_push_queries().is_empty());
    }

    #[tokio::test]
    async fn delimited_framing_and_close_query() {
        use runnel_plan::Value;
        let server = memory_server();
        let state = server.state().clone();
        let (q, rows) = push_query(None);
        let stop = q.running.stop.clone();
        rows.send(PushRow {
            values: vec![Value::String("x".into()), Value::Null],
            tombstone: false,
        })
        .unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let s = state.clone();
        let pump = tokio::task::spawn_blocking(move || pump_push(&s, q, Framing::Delimited, &tx));
        let header = rx.recv().await.unwrap();
        assert_eq!(
            &header[..],
            b"{\"queryId\":\"transient_S_1\",\"columnNames\":[\"A\",\"B\"],\"columnTypes\":[\"STRING\",\"BIGINT\"]}\n"
        );
        let first = rx.recv().await.unwrap();
        assert_eq!(&first[..], b"[\"x\",null]\n");
        assert_eq!(
            state.running_push_queries(),
            vec!["transient_S_1".to_string()]
        );
        let (status, _, _) = call(
            &server,
            "POST",
            "/close-query",
            r#"{"queryId": "transient_S_1"}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        pump.await.unwrap();
        assert!(stop.load(Ordering::SeqCst));
        assert!(state.running_push_queries().is_empty());
        let (status, _, body) = call(
            &server,
            "POST",
            "/close-query",
            r#"{"queryId": "transient_S_1"}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }

    #[tokio::test]
    async fn client_disconnect_stops_the_query() {
        let server = memory_server();
        let state = server.state().clone();
        let (q, _rows) = push_query(None);
        let stop = q.running.stop.clone();
        let (tx, rx) = mpsc::channel(64);
        let s = state.clone();
        let pump = tokio::task::spawn_blocking(move || pump_push(&s, q, Framing::Legacy, &tx));
        drop(rx);
        pump.await.unwrap();
        assert!(stop.load(Ordering::SeqCst));
        assert!(state.running_push_queries().is_empty());
    }

    #[tokio::test]
    async fn non_queries_and_bad_requests_are_refused() {
        let server = memory_server();
        let (status, _, body) = call(
            &server,
            "POST",
            "/query",
            r#"{"ksql": "SHOW STREAMS;"}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let v: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(v["@type"], "statement_error");
        let (status, _, body) =
            call(&server, "POST", "/query-stream", r#"{"ksql": "x"}"#, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let v: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error_code"], 40000);
        // A query of an unknown source is a statement error.
        call(
            &server,
            "POST",
            "/ksql",
            r#"{"ksql": "CREATE STREAM S (V INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"}"#,
            None,
        )
        .await;
        let (status, _, body) = call(
            &server,
            "POST",
            "/query",
            r#"{"ksql": "SELECT * FROM NOPE EMIT CHANGES;"}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let v: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error_code"], 40001);
    }

    /// `/query` key-lookup latency through the router (JSON body in, streamed array out):
    /// `cargo nextest run -p runnel-server -E 'test(pull_query_latency)' --run-ignored only --no-capture`
    #[tokio::test]
    #[ignore]
    async fn pull_query_latency() {
        let server = memory_server();
        let (status, _, body) = call(
            &server,
            "POST",
            "/ksql",
            r#"{"ksql": "CREATE TABLE T (ID INT PRIMARY KEY, V STRING) WITH (kafka_topic='t', format='JSON', partitions=1); CREATE TABLE Q AS SELECT * FROM T;"}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        {
            let engine = server.engine();
            let mut engine = engine.lock().unwrap();
            let records = (0..100_000)
                .map(|i| runnel_connect::kafka::Record {
                    topic: "t".into(),
                    key: Some(i.to_string().into_bytes()),
                    value: Some(format!(r#"{{"V":"v{i}"}}"#).into_bytes()),
                    timestamp: 1,
                    ..Default::default()
                })
                .collect();
            engine.produce(records).unwrap();
            runnel_engine::driver::run_to_completion(&mut engine).unwrap();
        }
        // 100 keys over and over, then a different key (and statement text) every time.
        for (what, key) in [
            ("100 keys", (|i| i % 100) as fn(usize) -> usize),
            ("a different key each time", |i| (i * 7919) % 100_000),
        ] {
            let mut samples = Vec::new();
            for i in 0..5_000 {
                let id = key(i);
                let sql = format!(r#"{{"ksql": "SELECT * FROM Q WHERE ID = {id};"}}"#);
                let t = std::time::Instant::now();
                let (status, _, body) = call(&server, "POST", "/query", &sql, None).await;
                samples.push(t.elapsed());
                assert_eq!(status, StatusCode::OK, "{body}");
                let v: Json = serde_json::from_str(&body).unwrap();
                assert_eq!(
                    v[1]["row"]["columns"],
                    json!([id, format!("v{id}")]),
                    "{body}"
                );
            }
            samples.sort();
            let p = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
            println!(
                "/query key lookup over 100k rows, {what}: p50 {:?}, p99 {:?}",
                p(0.5),
                p(0.99)
            );
        }
    }

    #[tokio::test]
    async fn pull_queries_answer_with_key_columns_marked() {
        let server = memory_server();
        let (status, _, body) = call(
            &server,
            "POST",
            "/ksql",
            r#"{"ksql": "CREATE TABLE T (ID INT PRIMARY KEY, V STRING) WITH (kafka_topic='t', value_format='JSON', partitions=1); CREATE TABLE Q AS SELECT * FROM T; INSERT INTO T (ID, V) VALUES (1, 'one');"}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        {
            let engine = server.engine();
            let mut engine = engine.lock().unwrap();
            runnel_engine::driver::run_to_completion(&mut engine).unwrap();
        }
        let (status, _, body) = call(
            &server,
            "POST",
            "/query",
            r#"{"ksql": "SELECT * FROM Q WHERE ID = 1;"}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(v[0]["header"]["schema"], "`ID` INTEGER KEY, `V` STRING");
        assert_eq!(v[1]["row"]["columns"], json!([1, "one"]));
        assert_eq!(v.as_array().unwrap().len(), 2);
        let (status, _, body) = call(
            &server,
            "POST",
            "/query-stream",
            r#"{"sql": "SELECT V FROM Q;"}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let lines: Vec<&str> = body.lines().collect();
        assert!(lines[0].contains("\"columnNames\":[\"V\"]"), "{body}");
        assert_eq!(lines[1], "[\"one\"]");
        // /query-stream with ksqlDB's versioned JSON answers as /query does.
        let (status, headers, body) = call(
            &server,
            "POST",
            "/query-stream",
            r#"{"sql": "SELECT V FROM Q WHERE ID = 1;"}"#,
            Some("application/vnd.ksql.v1+json"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            headers.get(header::CONTENT_TYPE).unwrap(),
            "application/vnd.ksql.v1+json"
        );
        let v: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(v[0]["header"]["schema"], "`V` STRING", "{body}");
        assert!(
            v[0]["header"]["queryId"]
                .as_str()
                .is_some_and(|q| !q.is_empty()),
            "{body}"
        );
        assert_eq!(v[1], json!({"row": {"columns": ["one"]}}), "{body}");
        assert_eq!(v.as_array().unwrap().len(), 2, "{body}");
        let (status, _, body) = call(
            &server,
            "POST",
            "/query",
            r#"{"ksql": "SELECT * FROM T;"}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("isn't queryable"), "{body}");
    }

    /// Produces `(key, JSON value or tombstone)` records to topic `t` of an in-memory server's
    /// engine and runs its queries over them.
    fn produce_to_t(server: &crate::Server, records: &[(&str, Option<&str>)]) {
        let engine = server.engine();
        let mut engine = engine.lock().unwrap();
        let records = records
            .iter()
            .map(|(key, value)| runnel_connect::kafka::Record {
                topic: "t".into(),
                key: Some(key.as_bytes().to_vec()),
                value: value.map(|v| v.as_bytes().to_vec()),
                timestamp: 1,
                ..Default::default()
            })
            .collect();
        engine.produce(records).unwrap();
        runnel_engine::driver::run_to_completion(&mut engine).unwrap();
    }

    /// A table push query sends a deleted key as ksqlDB does: `/query` flags the row as a
    /// tombstone (projected key columns kept, the rest null); `/query-stream`'s delimited format
    /// drops it, and it still counts towards the LIMIT.
    #[tokio::test]
    async fn table_push_queries_send_tombstones() {
        let server = memory_server();
        let (status, _, body) = call(
            &server,
            "POST",
            "/ksql",
            r#"{"ksql": "CREATE TABLE T (ID INT PRIMARY KEY, V STRING, N INT) WITH (kafka_topic='t', format='JSON', partitions=1); CREATE TABLE Q AS SELECT ID, V FROM T WHERE N > 0;"}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        produce_to_t(
            &server,
            &[
                ("1", Some(r#"{"V":"a","N":1}"#)),
                ("2", Some(r#"{"V":"b","N":2}"#)),
                // A tombstone for key 1, then key 2 leaves Q through its WHERE clause.
                ("1", None),
                ("2", Some(r#"{"V":"b","N":0}"#)),
            ],
        );
        let earliest = r#""streamsProperties": {"auto.offset.reset": "earliest"}"#;
        for table in ["Q", "T"] {
            let (status, _, body) = call(
                &server,
                "POST",
                "/query",
                &format!(
                    r#"{{"ksql": "SELECT * FROM {table} EMIT CHANGES LIMIT 4;", {earliest}}}"#
                ),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let v: Json = serde_json::from_str(&body).unwrap();
            let rows: Vec<&Json> = v.as_array().unwrap()[1..5].iter().collect();
            let last = if table == "T" {
                json!({"row": {"columns": [2, "b", 0]}})
            } else {
                json!({"row": {"columns": [2, null], "tombstone": true}})
            };
            let nulls = if table == "T" {
                json!([1, null, null])
            } else {
                json!([1, null])
            };
            assert_eq!(
                rows[2],
                &json!({"row": {"columns": nulls, "tombstone": true}}),
                "{body}"
            );
            assert_eq!(rows[3], &last, "{body}");
            assert!(
                rows[0].get("row").unwrap().get("tombstone").is_none(),
                "{body}"
            );
            assert_eq!(v[5], json!({"finalMessage": "Limit Reached"}), "{body}");
        }
        // Only the key column projected: the tombstone carries the key.
        let (_, _, body) = call(
            &server,
            "POST",
            "/query",
            &format!(r#"{{"ksql": "SELECT ID FROM T EMIT CHANGES LIMIT 3;", {earliest}}}"#),
            None,
        )
        .await;
        let v: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v[3],
            json!({"row": {"columns": [1], "tombstone": true}}),
            "{body}"
        );
        // /query-stream (delimited) drops the tombstone, which still counts towards LIMIT 3.
        let (status, _, body) = call(
            &server,
            "POST",
            "/query-stream",
            r#"{"sql": "SELECT * FROM T EMIT CHANGES LIMIT 3;", "properties": {"auto.offset.reset": "earliest"}}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(
            lines[1..].to_vec(),
            vec![r#"[1,"a",1]"#, r#"[2,"b",2]"#],
            "{body}"
        );
    }

    /// ksqlDB sends a table push query's tombstone only for a key its result holds: a row the
    /// WHERE clause rejects, or a deleted key, sends nothing when the key never was in it.
    #[tokio::test]
    async fn table_push_queries_send_tombstones_only_for_keys_in_their_result() {
        let server = memory_server();
        let (status, _, body) = call(
            &server,
            "POST",
            "/ksql",
            r#"{"ksql": "CREATE TABLE T (ID INT PRIMARY KEY, V STRING, N INT) WITH (kafka_topic='t', format='JSON', partitions=1);"}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        produce_to_t(
            &server,
            &[
                ("1", Some(r#"{"V":"a","N":1}"#)),
                // Never in the result: rejected by the WHERE clause, then deleted.
                ("2", Some(r#"{"V":"b","N":0}"#)),
                ("2", None),
                // Leaves the result through the WHERE clause.
                ("1", Some(r#"{"V":"a","N":0}"#)),
                ("3", Some(r#"{"V":"c","N":3}"#)),
                // Deleted while in the result.
                ("3", None),
            ],
        );
        let (status, _, body) = call(
            &server,
            "POST",
            "/query",
            r#"{"ksql": "SELECT * FROM T WHERE N > 0 EMIT CHANGES LIMIT 4;", "streamsProperties": {"auto.offset.reset": "earliest"}}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v.as_array().unwrap()[1..].to_vec(),
            vec![
                json!({"row": {"columns": [1, "a", 1]}}),
                json!({"row": {"columns": [1, null, null], "tombstone": true}}),
                json!({"row": {"columns": [3, "c", 3]}}),
                json!({"row": {"columns": [3, null, null], "tombstone": true}}),
                json!({"finalMessage": "Limit Reached"}),
            ],
            "{body}"
        );
    }
}

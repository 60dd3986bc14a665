//! `GET /ws/query`: ksqlDB's legacy WebSocket endpoint for push queries and PRINT.
//!
//! The request is ksqlDB's `KsqlRequest` JSON, URL-encoded in the `request` query parameter
//! (with an optional `version=1`). A query answers with a text frame holding its schema (the
//! list of `{"name", "schema"}` field infos of the value columns), then one `StreamedRow` per
//! frame (`{"row":{"columns":[...]}}`); PRINT sends each line as a JSON string. The socket is
//! closed as ksqlDB closes it: 1000 "done" when the query ends (LIMIT), 1003 for a bad request
//! or statement ("Error parsing request: ...", "Error parsing query: ..."), 1011 when the query
//! fails, 1013 when a `commandSequenceNumber` is not reached in time or too many push queries
//! run. The client closing the socket stops the query.

use crate::entities::{schema, value_json};
use crate::ksql::KsqlRequest;
use crate::{with_overrides, AppState, PushSlot};
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use runnel_engine::output::StatementOutput;
use runnel_engine::runner::Running;
use runnel_sql::Statement;
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A reason to close the socket: code and message.
type Close = (u16, String);

/// What the socket streams.
enum Source {
    Rows {
        query_id: String,
        rows: Receiver<runnel_engine::runner::PushRow>,
        limit: Option<u64>,
        running: Running,
    },
    Lines {
        lines: Receiver<String>,
        running: Running,
    },
}

pub(crate) async fn handle(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| session(state, params, socket))
}

async fn session(state: Arc<AppState>, params: HashMap<String, String>, mut socket: WebSocket) {
    match open(&state, &params).await {
        Ok((first, source, slot)) => {
            if socket.send(Message::text(first)).await.is_ok() {
                stream(state, source, slot, socket).await;
            }
        }
        Err((code, reason)) => close(socket, code, reason).await,
    }
}

async fn close(mut socket: WebSocket, code: u16, reason: String) {
    // Close reasons are limited to 123 bytes by the protocol.
    let mut reason = reason;
    if reason.len() > 123 {
        let mut end = 120;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push_str("...");
    }
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

/// Parses the request and starts its query: the first frame to send and what to stream.
async fn open(
    state: &Arc<AppState>,
    params: &HashMap<String, String>,
) -> Result<(String, Source, PushSlot), Close> {
    let invalid = |m: String| (close_code::UNSUPPORTED, m);
    if let Some(v) = params.get("version").filter(|v| *v != "1") {
        return Err(invalid(format!("Received invalid api version: {v}")));
    }
    let text = params
        .get("request")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| invalid("Error parsing request: missing request parameter".into()))?;
    let request: KsqlRequest =
        serde_json::from_str(text).map_err(|e| invalid(format!("Error parsing request: {e}")))?;
    if request.ksql.trim().is_empty() {
        return Err(invalid(
            "Error parsing request: \"ksql\" field of \"request\" must be populated".into(),
        ));
    }
    state
        .wait_for_command(request.command_sequence_number)
        .await
        .map_err(|e| (close_code::AGAIN, e.to_string()))?;
    let slot = state
        .acquire_push_slot()
        .map_err(|e| (close_code::AGAIN, e.to_string()))?;
    let started = state
        .with_engine(move |engine| {
            with_overrides(
                engine,
                &request.streams_properties,
                &request.session_variables,
                |engine| {
                    let statements = engine
                        .parse(&request.ksql)
                        .map_err(|e| invalid(format!("Error parsing query: {e}")))?;
                    let [stmt] = statements.as_slice() else {
                        return Err(invalid(format!(
                            "Error parsing query: Expected exactly one KSQL statement; found {}",
                            statements.len()
                        )));
                    };
                    if !matches!(
                        stmt.statement,
                        Statement::Query(_) | Statement::Print { .. }
                    ) {
                        return Err(invalid(format!("Unexpected statement type {}", stmt.text)));
                    }
                    match engine.execute(stmt) {
                        Ok(StatementOutput::Push(q)) => {
                            let columns: Vec<Json> = q
                                .columns
                                .iter()
                                .map(|(name, ty)| json!({"name": name, "schema": schema(ty)}))
                                .collect();
                            Ok((
                                Json::Array(columns).to_string(),
                                Source::Rows {
                                    query_id: q.query_id,
                                    rows: q.rows,
                                    limit: q.limit,
                                    running: q.running,
                                },
                            ))
                        }
                        Ok(StatementOutput::Print { lines, running }) => {
                            // PRINT has no schema: its first frame is the first line.
                            Ok((String::new(), Source::Lines { lines, running }))
                        }
                        Ok(_) => Err(invalid(format!("Unexpected statement type {}", stmt.text))),
                        Err(e) => Err(invalid(e.to_string())),
                    }
                },
            )
        })
        .await
        .map_err(|e| (close_code::ERROR, e.to_string()))??;
    Ok((started.0, started.1, slot))
}

/// How a stream ended.
enum End {
    Done,
    Failed(String),
}

/// Pumps rows from the query thread into the socket until the query ends or the client leaves;
/// the query is always stopped.
async fn stream(state: Arc<AppState>, source: Source, slot: PushSlot, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::channel::<String>(64);
    let pump = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        match source {
            Source::Rows {
                query_id,
                rows,
                limit,
                mut running,
            } => {
                state
                    .lock_queries()
                    .insert(query_id.clone(), running.stop.clone());
                // ksqlDB's StreamedRow: a table's deleted key is flagged as a tombstone.
                let end = pump(&rows, &running, limit, &tx, |row| {
                    let columns: Vec<Json> = row.values.iter().map(value_json).collect();
                    if row.tombstone {
                        json!({"row": {"columns": columns, "tombstone": true}}).to_string()
                    } else {
                        json!({"row": {"columns": columns}}).to_string()
                    }
                });
                running.stop();
                state.lock_queries().remove(&query_id);
                end
            }
            Source::Lines { lines, mut running } => {
                let end = pump(&lines, &running, None, &tx, |line| json!(line).to_string());
                running.stop();
                end
            }
        }
    });
    let client_gone = loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Some(text) if text.is_empty() => {}
                Some(text) => {
                    if socket.send(Message::text(text)).await.is_err() {
                        break true;
                    }
                }
                None => break false,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break true,
                Some(Ok(_)) => {}
            },
        }
    };
    // Dropping the receiver tells the pump the client is gone.
    drop(rx);
    let end = pump.await.unwrap_or_else(|e| End::Failed(e.to_string()));
    if !client_gone {
        match end {
            End::Done => close(socket, close_code::NORMAL, "done".into()).await,
            End::Failed(message) => close(socket, close_code::ERROR, message).await,
        }
    }
}

/// Moves items from a query thread into the socket's channel until the LIMIT, the query's end,
/// a stop (`/close-query`, shutdown) or the client going away.
fn pump<T>(
    items: &Receiver<T>,
    running: &Running,
    limit: Option<u64>,
    tx: &mpsc::Sender<String>,
    frame: impl Fn(T) -> String,
) -> End {
    let mut sent = 0u64;
    loop {
        if limit.is_some_and(|l| sent >= l) || running.stop.load(Ordering::SeqCst) {
            return End::Done;
        }
        if tx.is_closed() {
            return End::Done;
        }
        match items.recv_timeout(Duration::from_millis(100)) {
            Ok(item) => {
                if tx.blocking_send(frame(item)).is_err() {
                    return End::Done;
                }
                sent += 1;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return if running.stats.errored.load(Ordering::SeqCst) {
                    End::Failed("Query failed".into())
                } else {
                    End::Done
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Server;
    use futures::{SinkExt, StreamExt};
    use runnel_connect::kafka::{EmbeddedBroker, KafkaConfig};
    use runnel_engine::{Backend, Engine};
    use serde_json::{json, Value as Json};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio_tungstenite::tungstenite::Message as WsMessage;

    /// Serves `server` on a loopback port; returns the port.
    async fn serve(server: Server) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { server.serve(listener, std::future::pending()).await });
        port
    }

    fn url(port: u16, request: &Json, extra: &str) -> String {
        let encoded: String = request
            .to_string()
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        format!("ws://127.0.0.1:{port}/ws/query?request={encoded}{extra}")
    }

    /// Every text frame, then the close code and reason.
    async fn frames(url: &str) -> (Vec<String>, Option<(u16, String)>) {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut texts = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(msg) = ws.next().await {
                match msg {
                    Ok(WsMessage::Text(t)) => texts.push(t.to_string()),
                    Ok(WsMessage::Close(frame)) => {
                        return frame.map(|f| (u16::from(f.code), f.reason.to_string()))
                    }
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
            None
        })
        .await
        .expect("socket not closed in time");
        (texts, closed)
    }

    #[tokio::test]
    async fn bad_requests_close_with_ksqldb_codes() {
        let server = crate::testing::memory_server();
        {
            let mut engine = server.state().engine.lock().unwrap();
            engine
                .execute_script("CREATE STREAM S (V INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);")
                .unwrap();
        }
        let port = serve(server).await;
        let base = format!("ws://127.0.0.1:{port}/ws/query");
        let cases: Vec<(String, u16, &str)> = vec![
            (
                base.clone(),
                1003,
                "Error parsing request: missing request parameter",
            ),
            (
                format!("{base}?request=%7B"),
                1003,
                "Error parsing request: ",
            ),
            (
                url(
                    port,
                    &json!({"ksql": "SELECT * FROM S EMIT CHANGES;"}),
                    "&version=2",
                ),
                1003,
                "Received invalid api version: 2",
            ),
            (
                url(port, &json!({"ksql": "SELEC 1;"}), ""),
                1003,
                "Error parsing query: ",
            ),
            (
                url(port, &json!({"ksql": "SHOW STREAMS;"}), ""),
                1003,
                "Unexpected statement type SHOW STREAMS;",
            ),
            (
                url(
                    port,
                    &json!({"ksql": "SELECT * FROM NOPE EMIT CHANGES;"}),
                    "",
                ),
                1003,
                "NOPE does not exist",
            ),
            (
                url(
                    port,
                    &json!({"ksql": "SELECT * FROM S EMIT CHANGES;", "commandSequenceNumber": 7}),
                    "",
                ),
                1013,
                "Timed out while waiting for a previous command to execute",
            ),
        ];
        for (url, code, reason) in cases {
            let (texts, closed) = frames(&url).await;
            assert!(texts.is_empty(), "{url}: {texts:?}");
            let (got_code, got_reason) = closed.unwrap_or_else(|| panic!("{url}: no close frame"));
            assert_eq!(got_code, code, "{url}: {got_reason}");
            assert!(got_reason.contains(reason), "{url}: {got_reason}");
        }
    }

    /// A push query over the embedded broker: schema frame, rows, close 1000 at the LIMIT; a
    /// second push query past `ksql.max.push.queries` is refused, on WS and on `/query`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn push_query_rows_and_the_push_query_bound() {
        let broker = EmbeddedBroker::start().unwrap();
        let kafka = KafkaConfig {
            bootstrap_servers: broker.bootstrap_servers(),
            properties: Default::default(),
            embedded: Some(Arc::new(broker)),
        };
        let mut config = std::collections::BTreeMap::new();
        config.insert("ksql.max.push.queries".to_string(), "1".to_string());
        let mut engine = Engine::new(Backend::Kafka(kafka), config);
        engine
            .execute_script(
                "CREATE STREAM S (K STRING KEY, V INT) WITH (kafka_topic='ws_s', value_format='JSON', partitions=1); \
                 INSERT INTO S (K, V) VALUES ('a', 1); INSERT INTO S (K, V) VALUES ('b', 2);",
            )
            .unwrap();
        let server = Server::new(engine, "c".into());
        let port = serve(server.clone()).await;
        let request = json!({
            "ksql": "SELECT K, V FROM S EMIT CHANGES LIMIT 2;",
            "streamsProperties": {"auto.offset.reset": "earliest"},
        });
        let (texts, closed) = frames(&url(port, &request, "&version=1")).await;
        assert_eq!(closed, Some((1000, "done".to_string())));
        assert_eq!(texts.len(), 3, "{texts:?}");
        let schema: Json = serde_json::from_str(&texts[0]).unwrap();
        assert_eq!(
            schema,
            json!([
                {"name": "K", "schema": {"type": "STRING", "fields": null, "memberSchema": null}},
                {"name": "V", "schema": {"type": "INTEGER", "fields": null, "memberSchema": null}},
            ])
        );
        let mut rows: Vec<String> = texts[1..].to_vec();
        rows.sort();
        assert_eq!(
            rows,
            vec![
                r#"{"row":{"columns":["a",1]}}"#,
                r#"{"row":{"columns":["b",2]}}"#
            ]
        );

        // One push query at a time: hold one open, the next is refused.
        let open = json!({"ksql": "SELECT * FROM S EMIT CHANGES;"});
        let (mut held, _) = tokio_tungstenite::connect_async(url(port, &open, ""))
            .await
            .unwrap();
        let first = tokio::time::timeout(Duration::from_secs(30), held.next())
            .await
            .unwrap();
        assert!(matches!(first, Some(Ok(WsMessage::Text(_)))), "{first:?}");
        let (texts, closed) = frames(&url(port, &open, "")).await;
        assert!(texts.is_empty());
        assert_eq!(
            closed,
            Some((1013, "Maximum number of push queries exceeded".to_string()))
        );
        let (status, _, body) = crate::testing::call(
            &server,
            "POST",
            "/query",
            &json!({"ksql": "SELECT * FROM S EMIT CHANGES;"}).to_string(),
            None,
        )
        .await;
        assert_eq!(status.as_u16(), 400, "{body}");
        let v: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            json!({"@type": "generic_error", "error_code": 40003,
                   "message": "Maximum number of push queries exceeded"})
        );
        // Closing the held socket stops its query and frees the place.
        held.send(WsMessage::Close(None)).await.unwrap();
        drop(held);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while server
            .state()
            .push_queries
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
        {
            assert!(std::time::Instant::now() < deadline, "query not stopped");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let limited = json!({
            "ksql": "SELECT V FROM S EMIT CHANGES LIMIT 1;",
            "streamsProperties": {"auto.offset.reset": "earliest"},
        });
        let (texts, closed) = frames(&url(port, &limited, "")).await;
        assert_eq!(closed, Some((1000, "done".to_string())), "{texts:?}");
        assert_eq!(texts.len(), 2);
    }

    /// A table push query over the embedded broker: a key the CTAS's HAVING drops arrives as
    /// ksqlDB's tombstone row.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn table_push_queries_send_tombstones() {
        let broker = EmbeddedBroker::start().unwrap();
        let kafka = KafkaConfig {
            bootstrap_servers: broker.bootstrap_servers(),
            properties: Default::default(),
            embedded: Some(Arc::new(broker)),
        };
        // Every update of the table is emitted (no record cache), so its push query sees the
        // row and then its tombstone.
        let mut engine = Engine::new(
            Backend::Kafka(kafka),
            [(
                "ksql.streams.cache.max.bytes.buffering".to_string(),
                "0".to_string(),
            )]
            .into(),
        );
        engine
            .session
            .insert("auto.offset.reset".into(), "earliest".into());
        engine
            .execute_script(
                "CREATE STREAM S (K STRING KEY, V INT) WITH (kafka_topic='ws_t', value_format='JSON', partitions=1); \
                 CREATE TABLE A AS SELECT K, SUM(V) AS TOTAL FROM S GROUP BY K HAVING SUM(V) > 0; \
                 INSERT INTO S (K, V) VALUES ('a', 5); INSERT INTO S (K, V) VALUES ('a', -10);",
            )
            .unwrap();
        let server = Server::new(engine, "c".into());
        let port = serve(server.clone()).await;
        let request = json!({
            "ksql": "SELECT * FROM A EMIT CHANGES LIMIT 2;",
            "streamsProperties": {"auto.offset.reset": "earliest"},
        });
        let (texts, closed) = frames(&url(port, &request, "")).await;
        assert_eq!(closed, Some((1000, "done".to_string())), "{texts:?}");
        assert_eq!(
            texts[1..].to_vec(),
            vec![
                r#"{"row":{"columns":["a",5]}}"#,
                r#"{"row":{"columns":["a",null],"tombstone":true}}"#
            ]
        );
    }
}

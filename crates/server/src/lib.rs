//! `runnel server`: ksqlDB's REST API over the engine, so that ksqlDB's clients (the ksql CLI,
//! the Java client, UIs, the REST test runner) can talk to Runnel unchanged.
//!
//! The engine is synchronous and `&mut self`, so it sits behind one mutex and every call into it
//! runs on tokio's blocking pool. Statements are therefore executed one at a time, which is also
//! how ksqlDB applies them (through its command topic). Push queries only hold the lock while they
//! start: their rows are then pumped from the query thread into a chunked HTTP response by a
//! blocking task, which stops the query when the client goes away or `/close-query` is called.
//!
//! Catalog-changing statements go through the command topic (`runnel_engine::command_log`):
//! appended before they run, replayed when the server starts, their statuses served by
//! `/status`. A request's statements are validated together on a sandbox copy of the engine
//! before any of them runs, so a bad statement leaves the catalog untouched.
//!
//! Endpoints: `POST /ksql`, `POST /ksql/terminate`, `POST /query`, `POST /query-stream`,
//! `POST /close-query`, `POST /inserts-stream`, `GET /ws/query` (WebSocket), `GET /status`,
//! `GET /status/<type>/<entity>/<action>`, `GET /info`, `GET /healthcheck`; anything else is a
//! 404.

mod entities;
mod error;
mod inserts;
mod ksql;
mod query;
mod status;
mod ws;

pub use error::ApiError;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use runnel_engine::command_log::CommandLog;
use runnel_engine::{Backend, Engine};
use serde_json::{json, Map, Value as JsonValue};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// ksqlDB's versioned JSON content type, the default of `/ksql` and `/query`.
pub const KSQL_V1_JSON: &str = "application/vnd.ksql.v1+json";
/// Newline-delimited rows, the default of `/query-stream` and `/inserts-stream`.
pub const DELIMITED: &str = "application/vnd.ksqlapi.delimited.v1";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid listener '{0}': expected http://HOST:PORT")]
    Listener(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot restore the catalog from the command topic: {0}")]
    CommandTopic(#[from] runnel_engine::EngineError),
}

/// ksqlDB's default of `ksql.max.push.queries`.
pub const DEFAULT_MAX_PUSH_QUERIES: usize = 100;
/// ksqlDB's default of `ksql.server.command.response.timeout.ms`.
pub const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 5000;

/// What `GET /info` reports.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub version: String,
    pub kafka_cluster_id: String,
    pub service_id: String,
}

/// Shared by every request.
pub struct AppState {
    engine: Arc<Mutex<Engine>>,
    /// Running push queries by id: the flag stops the query thread.
    queries: Mutex<HashMap<String, Arc<AtomicBool>>>,
    /// The command topic. Lock order: the engine first, then this.
    commands: Mutex<CommandLog>,
    /// Offset of the last applied command (readable without the engine's lock).
    applied: Arc<AtomicI64>,
    /// How long a request's `commandSequenceNumber` is waited for.
    command_timeout: Duration,
    /// `ksql.max.push.queries`, and the push queries streaming now.
    max_push_queries: usize,
    push_queries: AtomicUsize,
    info: ServerInfo,
}

/// A push query's place under `ksql.max.push.queries`, given back when dropped.
pub(crate) struct PushSlot(Arc<AppState>);

impl Drop for PushSlot {
    fn drop(&mut self) {
        self.0.push_queries.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AppState {
    fn lock_queries(&self) -> MutexGuard<'_, HashMap<String, Arc<AtomicBool>>> {
        self.queries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ids of the push queries currently streaming.
    pub fn running_push_queries(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock_queries().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Stops every push query (their responses then end).
    pub fn stop_push_queries(&self) {
        for stop in self.lock_queries().values() {
            stop.store(true, Ordering::SeqCst);
        }
    }

    fn lock_commands(&self) -> MutexGuard<'_, CommandLog> {
        self.commands.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place for a push query, or fails with ksqlDB's 40003 when all are taken.
    pub(crate) fn acquire_push_slot(self: &Arc<Self>) -> Result<PushSlot, ApiError> {
        self.push_queries
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max_push_queries).then_some(n + 1)
            })
            .map_err(|_| ApiError::Generic {
                code: error::MAX_PUSH_QUERIES,
                message: "Maximum number of push queries exceeded".into(),
            })?;
        Ok(PushSlot(self.clone()))
    }

    /// Waits until the command with offset `seq` has been applied (a request's
    /// `commandSequenceNumber`), or fails with ksqlDB's 50301 after the command timeout.
    pub(crate) async fn wait_for_command(&self, seq: Option<i64>) -> Result<(), ApiError> {
        let Some(seq) = seq else { return Ok(()) };
        let deadline = tokio::time::Instant::now() + self.command_timeout;
        while self.applied.load(Ordering::SeqCst) < seq {
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::Generic {
                    code: error::COMMAND_TIMEOUT,
                    message: format!(
                        "Timed out while waiting for a previous command to execute. \
                         command sequence number: {seq}"
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Runs `f` on the engine on the blocking pool.
    async fn with_engine<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Engine) -> T + Send + 'static,
    {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = engine.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| ApiError::internal(format!("statement execution failed: {e}")))
    }
}

/// The REST server over one engine.
#[derive(Clone)]
pub struct Server {
    state: Arc<AppState>,
}

impl Server {
    /// A server over `engine` whose command log is kept in memory (nothing survives it);
    /// `kafka_cluster_id` is what `/info` reports.
    pub fn new(engine: Engine, kafka_cluster_id: String) -> Self {
        let log = CommandLog::in_memory(&engine.service_id());
        Self::with_command_log(engine, log, kafka_cluster_id)
    }

    /// A server over `engine` and its command log (already replayed into the engine).
    pub fn with_command_log(engine: Engine, log: CommandLog, kafka_cluster_id: String) -> Self {
        let info = ServerInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            kafka_cluster_id,
            service_id: engine.service_id(),
        };
        let max_push_queries = engine
            .property("ksql.max.push.queries")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_MAX_PUSH_QUERIES);
        let command_timeout = Duration::from_millis(
            engine
                .property("ksql.server.command.response.timeout.ms")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(DEFAULT_COMMAND_TIMEOUT_MS),
        );
        Server {
            state: Arc::new(AppState {
                engine: Arc::new(Mutex::new(engine)),
                queries: Mutex::new(HashMap::new()),
                applied: log.applied_handle(),
                commands: Mutex::new(log),
                command_timeout,
                max_push_queries,
                push_queries: AtomicUsize::new(0),
                info,
            }),
        }
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The engine the server runs statements on (the REST conformance runner drives the
    /// deterministic driver of an in-memory engine through it).
    pub fn engine(&self) -> Arc<Mutex<Engine>> {
        self.state.engine.clone()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/ksql", post(ksql::handle))
            .route("/ksql/terminate", post(status::handle_terminate))
            .route("/status", get(status::handle_all))
            .route("/status/{type}/{entity}/{action}", get(status::handle_one))
            .route("/ws/query", get(ws::handle))
            .route("/query", post(query::handle_query))
            .route("/query-stream", post(query::handle_query_stream))
            .route("/close-query", post(query::handle_close_query))
            .route("/inserts-stream", post(inserts::handle))
            .route("/info", get(info))
            .route("/healthcheck", get(healthcheck))
            .fallback(not_found)
            .with_state(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` completes; then stops the push queries (so their
    /// responses end) and waits for open requests to finish.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let state = self.state.clone();
        axum::serve(listener, self.router())
            .with_graceful_shutdown(async move {
                shutdown.await;
                state.stop_push_queries();
            })
            .await?;
        Ok(())
    }

    /// Stops the persistent queries, flushing their outputs and committing their offsets.
    pub fn shutdown_engine(&self) {
        let mut engine = self.state.engine.lock().unwrap_or_else(|e| e.into_inner());
        engine.shutdown();
    }
}

/// Parses a ksqlDB listener (`http://0.0.0.0:8088`) into an address to bind.
pub fn parse_listener(listener: &str) -> Result<SocketAddr, ServerError> {
    let rest = listener
        .trim()
        .strip_prefix("http://")
        .ok_or_else(|| ServerError::Listener(listener.to_string()))?;
    let rest = rest.trim_end_matches('/');
    let rest = match rest.split_once(':') {
        Some(("localhost", port)) => format!("127.0.0.1:{port}"),
        _ => rest.to_string(),
    };
    rest.parse()
        .map_err(|_| ServerError::Listener(listener.to_string()))
}

/// The Kafka cluster id, asked of the broker (empty when it cannot be reached in time).
pub fn kafka_cluster_id(engine: &Engine) -> String {
    use runnel_engine::Backend;
    let Backend::Kafka(kafka) = &engine.backend else {
        return String::new();
    };
    match kafka.producer() {
        Ok(p) => {
            use rdkafka::producer::Producer as _;
            p.client()
                .fetch_cluster_id(Duration::from_secs(5))
                .unwrap_or_default()
        }
        Err(e) => {
            tracing::warn!("cannot read the Kafka cluster id: {e}");
            String::new()
        }
    }
}

/// Runs the server on `listeners` (comma-separated, as ksqlDB's `listeners` property) until
/// Ctrl-C or SIGTERM, then stops every query.
pub fn run(engine: Engine, listeners: &str) -> Result<(), ServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let addrs: Vec<SocketAddr> = listeners
        .split(',')
        .filter(|l| !l.trim().is_empty())
        .map(parse_listener)
        .collect::<Result<_, _>>()?;
    if addrs.is_empty() {
        return Err(ServerError::Listener(listeners.to_string()));
    }
    let cluster_id = kafka_cluster_id(&engine);
    let mut engine = engine;
    let mut log = CommandLog::open(&engine)?;
    let summary = log.replay(&mut engine)?;
    eprintln!(
        "Restored {} command(s) from {}: {} stream(s)/table(s), {} persistent quer{} started{}",
        summary.applied,
        log.topic(),
        engine.catalog.sources().count(),
        summary.started,
        if summary.started == 1 { "y" } else { "ies" },
        if summary.failed.is_empty() {
            String::new()
        } else {
            format!(", {} failed (see the log)", summary.failed.len())
        }
    );
    let server = Server::with_command_log(engine, log, cluster_id);
    let result = runtime.block_on(async {
        let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
        let mut tasks = Vec::new();
        for addr in addrs {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: addr.to_string(),
                    source,
                })?;
            let local = listener.local_addr()?;
            eprintln!("Runnel server listening on http://{local}");
            let mut rx = tx.subscribe();
            let server = server.clone();
            tasks.push(tokio::spawn(async move {
                server
                    .serve(listener, async move {
                        let _ = rx.recv().await;
                    })
                    .await
            }));
        }
        shutdown_signal().await;
        eprintln!("Stopping: closing push queries...");
        let _ = tx.send(());
        for t in tasks {
            match t.await {
                Ok(r) => r?,
                Err(e) => tracing::error!("listener task failed: {e}"),
            }
        }
        Ok::<(), ServerError>(())
    });
    eprintln!("Stopping: flushing outputs and committing offsets...");
    server.shutdown_engine();
    result
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// The request's preferred response type among `offered` (the first is the default).
fn negotiate(headers: &HeaderMap, offered: &[&'static str]) -> &'static str {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut best: Option<(f32, usize)> = None;
    for part in accept.split(',') {
        let mut pieces = part.split(';');
        let media = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let q: f32 = pieces
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.parse().ok())
            .unwrap_or(1.0);
        if let Some(i) = offered.iter().position(|o| *o == media) {
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, i));
            }
        }
    }
    best.map(|(_, i)| offered[i]).unwrap_or(offered[0])
}

/// A JSON request body; a malformed body is a `generic_error` 40000.
fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON in request: {e}")))
}

/// A property value from a request (`streamsProperties`, `properties`) as the engine stores it.
fn property_text(v: &JsonValue) -> String {
    match v {
        JsonValue::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Applies request-scoped overrides and variables to the engine, runs `f`, and restores the
/// engine's own session: like ksqlDB, the server keeps no per-client state between requests.
fn with_overrides<T>(
    engine: &mut Engine,
    properties: &Map<String, JsonValue>,
    variables: &Map<String, JsonValue>,
    f: impl FnOnce(&mut Engine) -> T,
) -> T {
    let saved_session = engine.session.clone();
    let saved_variables = engine.variables.clone();
    for (k, v) in properties {
        engine.session.insert(k.clone(), property_text(v));
    }
    for (k, v) in variables {
        engine.variables.insert(k.clone(), property_text(v));
    }
    let out = f(engine);
    engine.session = saved_session;
    engine.variables = saved_variables;
    out
}

fn json_response(status: StatusCode, content_type: &'static str, body: JsonValue) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, content_type)],
        body.to_string(),
    )
        .into_response()
}

async fn info(axum::extract::State(state): axum::extract::State<Arc<AppState>>) -> Response {
    let i = &state.info;
    json_response(
        StatusCode::OK,
        "application/json",
        json!({"KsqlServerInfo": {
            "version": i.version,
            "kafkaClusterId": i.kafka_cluster_id,
            "ksqlServiceId": i.service_id,
            "serverStatus": "RUNNING",
        }}),
    )
}

async fn healthcheck(axum::extract::State(state): axum::extract::State<Arc<AppState>>) -> Response {
    let kafka = state
        .with_engine(|e| match &e.backend {
            Backend::Kafka(_) => e.topics().is_ok(),
            Backend::Memory(_) => true,
        })
        .await
        .unwrap_or(false);
    let status = if kafka {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "isHealthy": kafka,
            "details": {
                "metastore": {"isHealthy": true},
                "kafka": {"isHealthy": kafka},
                "commandRunner": {"isHealthy": true},
            },
            "serverState": "READY",
        })),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::Generic {
        code: error::NOT_FOUND,
        message: "Not Found".into(),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    /// A server over an in-memory engine (no Kafka: push queries are refused).
    pub fn memory_server() -> Server {
        Server::new(Engine::in_memory(Default::default()), "test-cluster".into())
    }

    pub async fn call(
        server: &Server,
        method: &str,
        path: &str,
        body: &str,
        accept: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(a) = accept {
            req = req.header(header::ACCEPT, a);
        }
        let resp = server
            .router()
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn listeners_parse() {
        assert_eq!(
            parse_listener("http://0.0.0.0:8088").unwrap(),
            "0.0.0.0:8088".parse().unwrap()
        );
        assert_eq!(
            parse_listener("http://localhost:9000/").unwrap(),
            "127.0.0.1:9000".parse().unwrap()
        );
        assert!(parse_listener("https://0.0.0.0:8088").is_err());
        assert!(parse_listener("http://nowhere").is_err());
    }

    #[test]
    fn content_negotiation() {
        let mut h = HeaderMap::new();
        assert_eq!(negotiate(&h, &[DELIMITED, "application/json"]), DELIMITED);
        h.insert(header::ACCEPT, "application/json".parse().unwrap());
        assert_eq!(
            negotiate(&h, &[DELIMITED, "application/json"]),
            "application/json"
        );
        h.insert(
            header::ACCEPT,
            "application/json;q=0.5, application/vnd.ksqlapi.delimited.v1"
                .parse()
                .unwrap(),
        );
        assert_eq!(negotiate(&h, &[DELIMITED, "application/json"]), DELIMITED);
        h.insert(header::ACCEPT, "text/html".parse().unwrap());
        assert_eq!(
            negotiate(&h, &[KSQL_V1_JSON, "application/json"]),
            KSQL_V1_JSON
        );
    }

    #[tokio::test]
    async fn info_and_health() {
        let server = memory_server();
        let (status, _, body) = call(&server, "GET", "/info", "", None).await;
        assert_eq!(status, StatusCode::OK);
        let v: JsonValue = serde_json::from_str(&body).unwrap();
        assert_eq!(v["KsqlServerInfo"]["ksqlServiceId"], "default_");
        assert_eq!(v["KsqlServerInfo"]["kafkaClusterId"], "test-cluster");
        assert_eq!(v["KsqlServerInfo"]["serverStatus"], "RUNNING");
        assert_eq!(v["KsqlServerInfo"]["version"], env!("CARGO_PKG_VERSION"));
        let (status, _, body) = call(&server, "GET", "/healthcheck", "", None).await;
        assert_eq!(status, StatusCode::OK);
        let v: JsonValue = serde_json::from_str(&body).unwrap();
        assert_eq!(v["isHealthy"], true);
        assert_eq!(v["serverState"], "READY");
    }

    #[tokio::test]
    async fn unknown_paths_are_404() {
        let (status, _, body) = call(&memory_server(), "GET", "/nope", "", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let v: JsonValue = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error_code"], 40400);
    }

    #[test]
    fn overrides_are_request_scoped() {
        let mut engine = Engine::in_memory(Default::default());
        let mut props = Map::new();
        props.insert("auto.offset.reset".into(), json!("earliest"));
        let seen = with_overrides(&mut engine, &props, &Map::new(), |e| {
            e.property("auto.offset.reset")
        });
        assert_eq!(seen.as_deref(), Some("earliest"));
        assert_eq!(engine.property("auto.offset.reset"), None);
    }
}

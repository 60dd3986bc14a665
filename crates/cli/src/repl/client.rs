//! A blocking client for ksqlDB's REST API (`/ksql`, `/query`, `/close-query`, `/info`),
//! as the CLI and `runnel run --server` use it. Queries go to `/query`, as ksqlDB's CLI sends
//! them: unlike `/query-stream`, its `StreamedRow`s carry a table push query's tombstones.
//!
//! Errors keep what the server said: a `generic_error` / `statement_error` body becomes
//! [`ClientError::Server`] with its `error_code` and message, so the CLI can print the server's
//! own words; a server that cannot be reached is [`ClientError::Unreachable`].

use serde_json::{json, Map, Value as Json};
use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a ksqlDB error body.
    #[error("{message}")]
    Server {
        status: u16,
        code: Option<u64>,
        message: String,
    },
    #[error("cannot reach the server at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

/// One REST endpoint and the session state that goes with every request.
#[derive(Clone)]
pub struct Client {
    pub url: String,
    agent: ureq::Agent,
}

/// What a streaming query sends, line by line.
#[derive(Debug, PartialEq)]
pub enum StreamEvent {
    /// The metadata line of a query.
    Header {
        query_id: String,
        columns: Vec<String>,
    },
    /// One row's values.
    Row(Vec<Json>),
    /// A table's deleted key: the key columns the query projects, the others null.
    Tombstone(Vec<Json>),
    /// A line of PRINT output.
    Text(String),
    /// An error the server reported in the stream (or a broken stream).
    Error(String),
}

/// A query in progress: its events arrive on `events` until the stream ends.
pub struct QueryStream {
    pub events: mpsc::Receiver<StreamEvent>,
}

impl Client {
    pub fn new(url: &str) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .build();
        Client {
            url: url.trim_end_matches('/').to_string(),
            agent,
        }
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    fn error_of(&self, e: ureq::Error) -> ClientError {
        match e {
            ureq::Error::Status(status, resp) => {
                let body = resp.into_string().unwrap_or_default();
                server_error(status, &body)
            }
            ureq::Error::Transport(t) => ClientError::Unreachable {
                url: self.url.clone(),
                detail: t.to_string(),
            },
        }
    }

    /// `GET /info`, with a short timeout (used to find out whether a server is there).
    pub fn info(&self, timeout: Duration) -> Result<Json, ClientError> {
        let resp = self
            .agent
            .get(&self.endpoint("/info"))
            .timeout(timeout)
            .call()
            .map_err(|e| self.error_of(e))?;
        resp.into_json::<Json>()
            .map_err(|e| ClientError::Protocol(format!("/info: {e}")))
    }

    /// Posts statements with the session's properties and variables, as ksqlDB's CLI does.
    fn post_statement(
        &self,
        path: &str,
        sql: &str,
        properties: &Map<String, Json>,
        variables: &Map<String, Json>,
    ) -> Result<ureq::Response, ClientError> {
        let body = json!({
            "ksql": sql,
            "streamsProperties": properties,
            "sessionVariables": variables,
        });
        self.agent
            .post(&self.endpoint(path))
            .set("Accept", "application/vnd.ksql.v1+json")
            .send_json(body)
            .map_err(|e| self.error_of(e))
    }

    /// `POST /ksql` with one or more statements: the entity list.
    pub fn ksql(
        &self,
        sql: &str,
        properties: &Map<String, Json>,
        variables: &Map<String, Json>,
    ) -> Result<Vec<Json>, ClientError> {
        let resp = self.post_statement("/ksql", sql, properties, variables)?;
        let text = resp
            .into_string()
            .map_err(|e| ClientError::Protocol(format!("/ksql: {e}")))?;
        match serde_json::from_str::<Json>(&text) {
            Ok(Json::Array(list)) => Ok(list),
            _ => Err(ClientError::Protocol(format!(
                "/ksql answered with something other than a list of entities: {text}"
            ))),
        }
    }

    /// `POST /query`: starts the query and returns its events, read on a thread of their own so
    /// the caller can watch for Ctrl-C meanwhile. The thread ends (and drops the connection)
    /// when the stream ends or the receiver is gone.
    pub fn stream_query(
        &self,
        sql: &str,
        properties: &Map<String, Json>,
        variables: &Map<String, Json>,
    ) -> Result<QueryStream, ClientError> {
        let resp = self.post_statement("/query", sql, properties, variables)?;
        let text_lines = resp.content_type().starts_with("text/");
        let reader = BufReader::new(resp.into_reader());
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("cli-query-stream".into())
            .spawn(move || read_stream(reader, text_lines, &tx))
            .map_err(|e| ClientError::Protocol(format!("cannot start a reader thread: {e}")))?;
        Ok(QueryStream { events: rx })
    }

    /// `POST /close-query`.
    pub fn close_query(&self, query_id: &str) -> Result<(), ClientError> {
        self.agent
            .post(&self.endpoint("/close-query"))
            .timeout(Duration::from_secs(10))
            .send_json(json!({ "queryId": query_id }))
            .map_err(|e| self.error_of(e))?;
        Ok(())
    }
}

/// Reads a `/query` response: a JSON array of `StreamedRow`s (a header, rows, then a final
/// message or an error), each handed on as soon as its closing brace arrives (a live push
/// query's row must not wait for the next one). PRINT answers with plain text lines.
fn read_stream(reader: impl BufRead, text_lines: bool, tx: &mpsc::Sender<StreamEvent>) {
    if !text_lines {
        let elements = serde_json::Deserializer::from_reader(ArrayElements::new(reader));
        for element in elements.into_iter::<Json>() {
            let event = match element {
                Ok(v) => streamed_row(v),
                Err(e) => Some(StreamEvent::Error(format!("the query stream broke: {e}"))),
            };
            if let Some(event) = event {
                let broke = matches!(&event, StreamEvent::Error(m) if m.starts_with("the query stream broke"));
                if tx.send(event).is_err() || broke {
                    return;
                }
            }
        }
        return;
    }
    for line in reader.lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                let _ = tx.send(StreamEvent::Error(format!("the query stream broke: {e}")));
                return;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        if tx.send(StreamEvent::Text(line)).is_err() {
            return;
        }
    }
}

/// A reader of a streamed JSON array that blanks the array's own brackets and commas, so its
/// elements read as a whitespace-separated JSON stream.
struct ArrayElements<R> {
    inner: R,
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl<R> ArrayElements<R> {
    fn new(inner: R) -> Self {
        ArrayElements {
            inner,
            depth: 0,
            in_string: false,
            escaped: false,
        }
    }
}

impl<R: std::io::Read> std::io::Read for ArrayElements<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for b in &mut buf[..n] {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if *b == b'\\' {
                    self.escaped = true;
                } else if *b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match *b {
                b'"' => self.in_string = true,
                b'{' => self.depth += 1,
                b'}' => self.depth = self.depth.saturating_sub(1),
                b'[' | b']' | b',' if self.depth == 0 => *b = b' ',
                b'[' => self.depth += 1,
                b']' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
        }
        Ok(n)
    }
}

/// The column names of a `/query` header's schema (`` `A` STRING, `B` STRUCT<`X` INT> ``).
fn schema_columns(schema: &str) -> Vec<String> {
    let mut columns = Vec::new();
    let mut depth = 0i32;
    let mut segment = String::new();
    let mut quoted = false;
    for c in schema.chars().chain(std::iter::once(',')) {
        match c {
            '`' => quoted = !quoted,
            '<' | '(' if !quoted => depth += 1,
            '>' | ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                let s = segment.trim();
                let name = match s.strip_prefix('`') {
                    // A doubled backtick is a backtick in the name.
                    Some(rest) => {
                        let mut name = String::new();
                        let mut chars = rest.chars().peekable();
                        while let Some(ch) = chars.next() {
                            if ch == '`' {
                                if chars.peek() == Some(&'`') {
                                    chars.next();
                                } else {
                                    break;
                                }
                            }
                            name.push(ch);
                        }
                        name
                    }
                    None => s.split_whitespace().next().unwrap_or_default().to_string(),
                };
                if !s.is_empty() {
                    columns.push(name);
                }
                segment.clear();
                continue;
            }
            _ => {}
        }
        segment.push(c);
    }
    columns
}

/// What the CLI shows of one `StreamedRow`; `None` for what it does not show (the final
/// message: it reports the LIMIT itself).
fn streamed_row(v: Json) -> Option<StreamEvent> {
    let Json::Object(o) = v else {
        return Some(StreamEvent::Text(v.to_string()));
    };
    if let Some(h) = o.get("header") {
        return Some(StreamEvent::Header {
            query_id: h
                .get("queryId")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string(),
            columns: schema_columns(h.get("schema").and_then(Json::as_str).unwrap_or_default()),
        });
    }
    if let Some(r) = o.get("row") {
        let values = r
            .get("columns")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default();
        return Some(if r.get("tombstone") == Some(&Json::Bool(true)) {
            StreamEvent::Tombstone(values)
        } else {
            StreamEvent::Row(values)
        });
    }
    if o.contains_key("finalMessage") {
        return None;
    }
    let error = o.get("errorMessage").unwrap_or(&Json::Null);
    Some(StreamEvent::Error(
        error
            .get("message")
            .and_then(Json::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| Json::Object(o.clone()).to_string()),
    ))
}

/// The error of a non-2xx answer: ksqlDB's error body when there is one.
pub fn server_error(status: u16, body: &str) -> ClientError {
    let parsed: Option<Json> = serde_json::from_str(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|b| b.get("message"))
        .and_then(Json::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            if body.trim().is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {}", body.trim())
            }
        });
    ClientError::Server {
        status,
        code: parsed
            .as_ref()
            .and_then(|b| b.get("error_code"))
            .and_then(Json::as_u64),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event of a `/query` body, read as it streams in.
    fn events(body: &str) -> Vec<StreamEvent> {
        let (tx, rx) = mpsc::channel();
        read_stream(std::io::Cursor::new(body.as_bytes().to_vec()), false, &tx);
        drop(tx);
        rx.into_iter().collect()
    }

    #[test]
    fn query_responses() {
        let body = "[{\"header\":{\"queryId\":\"q1\",\"schema\":\"`K` STRING KEY, `S` STRUCT<`A` INTEGER, `B` DECIMAL(4, 2)>, `x``y` INTEGER\"}},\n\
            {\"row\":{\"columns\":[\"a,]\\\"[\",[1,2],{\"m\":1}]}},\n\
            {\"row\":{\"columns\":[\"a\",null,null],\"tombstone\":true}},\n\
            {\"finalMessage\":\"Limit Reached\"}]\n";
        assert_eq!(
            events(body),
            vec![
                StreamEvent::Header {
                    query_id: "q1".into(),
                    columns: vec!["K".into(), "S".into(), "x`y".into()]
                },
                StreamEvent::Row(vec![json!("a,]\"["), json!([1, 2]), json!({"m": 1})]),
                StreamEvent::Tombstone(vec![json!("a"), Json::Null, Json::Null]),
            ]
        );
        assert_eq!(
            events("[{\"header\":{\"queryId\":\"q\",\"schema\":\"`V` INTEGER\"}},\n{\"errorMessage\":{\"@type\":\"generic_error\",\"error_code\":50000,\"message\":\"boom\"}}]\n")[1],
            StreamEvent::Error("boom".into())
        );
        // A body cut short is reported, not hung on.
        let cut = events(
            "[{\"header\":{\"queryId\":\"q\",\"schema\":\"`V` INTEGER\"}},\n{\"row\":{\"colu",
        );
        assert!(
            matches!(&cut[1], StreamEvent::Error(m) if m.starts_with("the query stream broke")),
            "{cut:?}"
        );
    }

    #[test]
    fn error_bodies() {
        let e = server_error(
            400,
            r#"{"@type":"statement_error","error_code":40001,"message":"Stream X does not exist.","statementText":"x","entities":[]}"#,
        );
        assert_eq!(e.to_string(), "Stream X does not exist.");
        assert!(matches!(
            e,
            ClientError::Server {
                status: 400,
                code: Some(40001),
                ..
            }
        ));
        assert_eq!(server_error(502, "").to_string(), "HTTP 502");
        assert_eq!(server_error(404, "nope").to_string(), "HTTP 404: nope");
    }

    #[test]
    fn unreachable_servers_are_reported() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let c = Client::new(&format!("http://127.0.0.1:{port}"));
        let e = c.info(Duration::from_secs(2)).unwrap_err();
        assert!(matches!(e, ClientError::Unreachable { .. }), "{e}");
        assert!(e.to_string().contains("cannot reach the server"), "{e}");
    }
}

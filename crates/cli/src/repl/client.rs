//! A blocking client for ksqlDB's REST API (`/ksql`, `/query-stream`, `/close-query`, `/info`),
//! as the CLI and `runnel run --server` use it.
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

    /// `POST /ksql` with one or more statements: the entity list.
    pub fn ksql(
        &self,
        sql: &str,
        properties: &Map<String, Json>,
        variables: &Map<String, Json>,
    ) -> Result<Vec<Json>, ClientError> {
        let body = json!({
            "ksql": sql,
            "streamsProperties": properties,
            "sessionVariables": variables,
        });
        let resp = self
            .agent
            .post(&self.endpoint("/ksql"))
            .set("Accept", "application/vnd.ksql.v1+json")
            .send_json(body)
            .map_err(|e| self.error_of(e))?;
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

    /// `POST /query-stream` (delimited): starts the query and returns its events, read on a
    /// thread of their own so the caller can watch for Ctrl-C meanwhile. The thread ends (and
    /// drops the connection) when the stream ends or the receiver is gone.
    pub fn stream_query(
        &self,
        sql: &str,
        properties: &Map<String, Json>,
        variables: &Map<String, Json>,
    ) -> Result<QueryStream, ClientError> {
        let body = json!({
            "sql": sql,
            "properties": properties,
            "sessionVariables": variables,
        });
        let resp = self
            .agent
            .post(&self.endpoint("/query-stream"))
            .set("Accept", "application/vnd.ksqlapi.delimited.v1")
            .send_json(body)
            .map_err(|e| self.error_of(e))?;
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

/// Reads a delimited query response: a metadata line, then one JSON array per row; an object
/// line is an error. PRINT answers with plain text lines.
fn read_stream(reader: impl BufRead, text_lines: bool, tx: &mpsc::Sender<StreamEvent>) {
    let mut first = true;
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
        let event = if text_lines {
            StreamEvent::Text(line)
        } else {
            parse_stream_line(&line, first)
        };
        first = false;
        if tx.send(event).is_err() {
            return;
        }
    }
}

/// One line of a delimited `/query-stream` response.
pub fn parse_stream_line(line: &str, first: bool) -> StreamEvent {
    match serde_json::from_str::<Json>(line) {
        Ok(Json::Array(values)) => StreamEvent::Row(values),
        Ok(Json::Object(o)) if first && o.contains_key("columnNames") => StreamEvent::Header {
            query_id: o
                .get("queryId")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string(),
            columns: o
                .get("columnNames")
                .and_then(Json::as_array)
                .map(|a| {
                    a.iter()
                        .map(|c| c.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default(),
        },
        Ok(Json::Object(o)) => StreamEvent::Error(
            o.get("message")
                .and_then(Json::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| Json::Object(o.clone()).to_string()),
        ),
        _ => StreamEvent::Text(line.to_string()),
    }
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

    #[test]
    fn stream_lines() {
        assert_eq!(
            parse_stream_line(
                r#"{"queryId":"q1","columnNames":["K","V"],"columnTypes":["STRING","INTEGER"]}"#,
                true
            ),
            StreamEvent::Header {
                query_id: "q1".into(),
                columns: vec!["K".into(), "V".into()]
            }
        );
        assert_eq!(
            parse_stream_line(r#"["a",1]"#, false),
            StreamEvent::Row(vec![json!("a"), json!(1)])
        );
        assert_eq!(
            parse_stream_line(
                r#"{"@type":"generic_error","error_code":50000,"message":"boom"}"#,
                false
            ),
            StreamEvent::Error("boom".into())
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

//! `POST /ksql`: runs a list of non-query statements and answers with one entity per statement.
//!
//! As in ksqlDB, the whole list is first validated on a sandbox copy of the engine
//! (`Engine::sandbox`): a statement that would fail ends the request with a `statement_error`
//! before any statement runs, so the catalog, the queries and the topics are untouched. Then
//! the statements run in order, catalog-changing ones through the command topic
//! (`CommandLog::execute`), whose offsets are their `commandSequenceNumber`s. A failure at that
//! point (e.g. Kafka going away) carries the entities of the statements already run. SELECT and
//! PRINT belong to `/query` and are refused before anything runs.

use crate::entities::{entities, types_entity};
use crate::error::{ApiError, QUERY_ENDPOINT, SERVER_ERROR};
use crate::{json_response, negotiate, parse_body, with_overrides, AppState, KSQL_V1_JSON};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use runnel_engine::command_log::is_command;
use runnel_engine::{Engine, EngineError};
use runnel_sql::{Show, Statement};
use serde::Deserialize;
use serde_json::{Map, Value as Json};
use std::sync::Arc;

/// ksqlDB's `KsqlRequest` (`requestProperties` and unknown fields are ignored, as ksqlDB
/// does).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KsqlRequest {
    pub ksql: String,
    #[serde(default)]
    pub streams_properties: Map<String, Json>,
    #[serde(default)]
    pub session_variables: Map<String, Json>,
    /// Wait until this command has been applied before running the statements.
    #[serde(default)]
    pub command_sequence_number: Option<i64>,
}

pub(crate) async fn handle(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: KsqlRequest = parse_body(&body)?;
    let content_type = negotiate(&headers, &[KSQL_V1_JSON, "application/json"]);
    state
        .wait_for_command(request.command_sequence_number)
        .await?;
    let st = state.clone();
    let list = state
        .with_engine(move |engine| run_statements(engine, &st, &request))
        .await??;
    Ok(json_response(
        StatusCode::OK,
        content_type,
        Json::Array(list),
    ))
}

/// The error a failed statement is reported with.
pub(crate) fn statement_error(
    error: EngineError,
    statement: &str,
    entities: Vec<Json>,
) -> ApiError {
    match error {
        EngineError::Internal(message) => ApiError::Generic {
            code: SERVER_ERROR,
            message,
        },
        other => ApiError::Statement {
            code: crate::error::BAD_STATEMENT,
            message: other.to_string(),
            statement: statement.to_string(),
            entities,
        },
    }
}

fn run_statements(
    engine: &mut Engine,
    state: &AppState,
    request: &KsqlRequest,
) -> Result<Vec<Json>, ApiError> {
    with_overrides(
        engine,
        &request.streams_properties,
        &request.session_variables,
        |engine| {
            let statements = engine
                .parse(&request.ksql)
                .map_err(|e| statement_error(e, request.ksql.trim(), Vec::new()))?;
            if let Some(query) = statements
                .iter()
                .find(|s| matches!(s.statement, Statement::Query(_) | Statement::Print { .. }))
            {
                return Err(ApiError::Statement {
                    code: QUERY_ENDPOINT,
                    message: "The following statement types should be issued to the websocket \
                              endpoint '/query':\n\t* PRINT\n\t* SELECT"
                        .into(),
                    statement: query.text.clone(),
                    entities: Vec::new(),
                });
            }
            validate(engine, &statements)?;
            let mut log = state.lock_commands();
            let mut list = Vec::new();
            for stmt in &statements {
                match log.execute(engine, stmt) {
                    Ok(_) if matches!(stmt.statement, Statement::Show(Show::Types)) => {
                        list.push(types_entity(&stmt.text, engine.catalog.types()));
                    }
                    Ok((output, seq)) => {
                        let seq = seq.unwrap_or_else(|| log.last_applied()).max(0) as u64;
                        list.extend(entities(
                            output,
                            Some(&stmt.statement),
                            &stmt.text,
                            &mut || seq,
                        ))
                    }
                    Err(e) => return Err(statement_error(e, &stmt.text, list)),
                }
            }
            Ok(list)
        },
    )
}

/// Runs the statements on a sandbox copy of the engine when any of them changes something
/// (the catalog, the queries, topics or their records); the first failure is the request's
/// error, with no entities, as in ksqlDB.
fn validate(engine: &Engine, statements: &[runnel_sql::ParsedStatement]) -> Result<(), ApiError> {
    let changes = statements.iter().any(|s| {
        is_command(&s.statement)
            || matches!(
                s.statement,
                Statement::InsertValues { .. } | Statement::RunScript { .. }
            )
    });
    if !changes {
        return Ok(());
    }
    let mut sandbox = engine.sandbox().map_err(|e| match e {
        EngineError::Internal(_) => statement_error(e, "", Vec::new()),
        other => ApiError::internal(format!("Cannot validate the statements: {other}")),
    })?;
    for stmt in statements {
        sandbox
            .execute(stmt)
            .map_err(|e| statement_error(e, &stmt.text, Vec::new()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testing::{call, memory_server};
    use axum::http::{header, StatusCode};
    use serde_json::{json, Value as Json};

    fn parse(body: &str) -> Json {
        serde_json::from_str(body).unwrap()
    }

    #[tokio::test]
    async fn ddl_and_metadata_statements() {
        let server = memory_server();
        let sql = "CREATE STREAM S (K STRING KEY, V INT) WITH (kafka_topic='s', value_format='JSON', partitions=2); \
                   SHOW STREAMS; DESCRIBE S; LIST TOPICS; SHOW QUERIES; SHOW PROPERTIES;";
        let (status, headers, body) = call(
            &server,
            "POST",
            "/ksql",
            &json!({"ksql": sql, "streamsProperties": {}}).to_string(),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers[header::CONTENT_TYPE], crate::KSQL_V1_JSON);
        let v = parse(&body);
        let list = v.as_array().unwrap();
        assert_eq!(list.len(), 6);
        assert_eq!(list[0]["@type"], "currentStatus");
        assert_eq!(list[0]["commandId"], "stream/`S`/create");
        assert_eq!(list[0]["commandStatus"]["status"], "SUCCESS");
        assert_eq!(list[0]["commandStatus"]["message"], "Stream created");
        assert_eq!(list[0]["commandSequenceNumber"], 0);
        assert!(list[0]["statementText"]
            .as_str()
            .unwrap()
            .starts_with("CREATE STREAM S"));
        assert_eq!(list[1]["@type"], "streams");
        assert_eq!(
            list[1]["streams"][0],
            json!({"type": "STREAM", "name": "S", "topic": "s", "keyFormat": "KAFKA",
                   "valueFormat": "JSON", "isWindowed": false})
        );
        assert_eq!(list[2]["@type"], "sourceDescription");
        let d = &list[2]["sourceDescription"];
        assert_eq!(d["name"], "S");
        assert_eq!(d["partitions"], 2);
        assert_eq!(
            d["fields"][1],
            json!({"name": "K", "schema": {"type": "STRING", "fields": null, "memberSchema": null}, "type": "KEY"})
        );
        assert_eq!(d["fields"][2]["name"], "V");
        assert!(d["fields"][2].get("type").is_none());
        assert_eq!(list[3]["@type"], "kafka_topics");
        assert_eq!(
            list[3]["topics"][0],
            json!({"name": "s", "replicaInfo": [1, 1]})
        );
        assert_eq!(list[4]["@type"], "queries");
        assert_eq!(list[5]["@type"], "properties");
    }

    #[tokio::test]
    async fn persistent_queries_are_listed() {
        let server = memory_server();
        let sql = "CREATE STREAM S (K STRING KEY, V INT) WITH (kafka_topic='s', value_format='JSON', partitions=1); \
                   CREATE STREAM T AS SELECT * FROM S; SHOW QUERIES;";
        let (status, _, body) = call(
            &server,
            "POST",
            "/ksql",
            &json!({"ksql": sql}).to_string(),
            Some("application/json"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v = parse(&body);
        let query_id = v[1]["commandStatus"]["queryId"].as_str().unwrap();
        assert!(query_id.starts_with("CSAS_T_"));
        assert_eq!(v[2]["queries"][0]["id"], query_id);
        assert_eq!(v[2]["queries"][0]["sinks"], json!(["T"]));
        assert_eq!(v[2]["queries"][0]["queryType"], "PERSISTENT");
        assert_eq!(v[2]["queries"][0]["state"], "RUNNING");
        assert_eq!(v[2]["queries"][0]["statusCount"], json!({"RUNNING": 1}));
    }

    #[tokio::test]
    async fn a_bad_statement_anywhere_leaves_everything_untouched() {
        let server = memory_server();
        let sql =
            "CREATE STREAM S (V INT) WITH (kafka_topic='s', value_format='JSON', partitions=1); \
                   CREATE STREAM T AS SELECT * FROM S; INSERT INTO S (V) VALUES (1); \
                   CREATE TYPE P AS INT; DROP STREAM NOPE; CREATE TYPE Q AS INT;";
        let (status, _, body) = call(
            &server,
            "POST",
            "/ksql",
            &json!({"ksql": sql}).to_string(),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let v = parse(&body);
        assert_eq!(v["@type"], "statement_error");
        assert_eq!(v["error_code"], 40001);
        assert_eq!(v["statementText"], "DROP STREAM NOPE;");
        assert_eq!(v["entities"], json!([]));
        assert_eq!(v["message"], "Stream NOPE does not exist.");
        {
            let engine = server.state().engine.lock().unwrap();
            assert_eq!(engine.catalog.sources().count(), 0);
            assert!(engine.catalog.custom_type("P").is_none());
            assert!(engine.queries.is_empty());
            let runnel_engine::Backend::Memory(topics) = &engine.backend else {
                unreachable!()
            };
            assert!(topics.is_empty(), "topics were created: {topics:?}");
        }
        assert_eq!(server.state().lock_commands().last_applied(), -1);
        // The same statements without the bad one all run, numbered by the command log.
        let sql = sql.replace("DROP STREAM NOPE;", "");
        let (status, _, body) = call(
            &server,
            "POST",
            "/ksql",
            &json!({"ksql": sql}).to_string(),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let seqs: Vec<Json> = parse(&body)
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["commandSequenceNumber"].clone())
            .collect();
        assert_eq!(seqs, vec![json!(0), json!(1), json!(2), json!(3)]);
    }

    #[tokio::test]
    async fn command_sequence_numbers_are_waited_for() {
        let server = memory_server();
        let create = json!({"ksql": "CREATE TYPE P AS INT;"}).to_string();
        let (status, _, body) = call(&server, "POST", "/ksql", &create, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(parse(&body)[0]["commandSequenceNumber"], 0);
        let list = json!({"ksql": "SHOW TYPES;", "commandSequenceNumber": 0}).to_string();
        let (status, _, body) = call(&server, "POST", "/ksql", &list, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ahead = json!({"ksql": "SHOW TYPES;", "commandSequenceNumber": 1}).to_string();
        let started = std::time::Instant::now();
        let (status, _, body) = call(&server, "POST", "/ksql", &ahead, None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(started.elapsed() >= std::time::Duration::from_secs(5));
        let v = parse(&body);
        assert_eq!(v["@type"], "generic_error");
        assert_eq!(v["error_code"], 50301);
        assert_eq!(
            v["message"],
            "Timed out while waiting for a previous command to execute. command sequence number: 1"
        );
    }

    #[tokio::test]
    async fn unknown_fields_are_ignored_and_bad_types_refused() {
        let server = memory_server();
        let body = json!({"ksql": "CREATE TYPE P AS INT;", "foo": 1, "requestProperties": {}});
        let (status, _, out) = call(&server, "POST", "/ksql", &body.to_string(), None).await;
        assert_eq!(status, StatusCode::OK, "{out}");
        let body = json!({"ksql": "CREATE TYPE Q AS INT;", "commandSequenceNumber": "x"});
        let (status, _, out) = call(&server, "POST", "/ksql", &body.to_string(), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{out}");
        assert_eq!(parse(&out)["error_code"], 40000);
        let engine = server.state().engine.lock().unwrap();
        assert!(engine.catalog.custom_type("Q").is_none());
    }

    #[tokio::test]
    async fn queries_belong_to_the_query_endpoint() {
        let server = memory_server();
        let (status, _, body) = call(
            &server,
            "POST",
            "/ksql",
            r#"{"ksql": "SELECT * FROM S EMIT CHANGES;"}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let v = parse(&body);
        assert_eq!(v["@type"], "statement_error");
        assert_eq!(v["error_code"], 40002);
        assert!(v["message"].as_str().unwrap().contains("'/query'"));
    }

    #[tokio::test]
    async fn malformed_bodies_are_generic_errors() {
        let server = memory_server();
        for body in ["{", r#"{"sql": "x"}"#] {
            let (status, _, out) = call(&server, "POST", "/ksql", body, None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            let v = parse(&out);
            assert_eq!(v["@type"], "generic_error");
            assert_eq!(v["error_code"], 40000);
        }
        let (status, _, out) = call(
            &server,
            "POST",
            "/ksql",
            r#"{"ksql": "CREATE STREM X;"}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(parse(&out)["error_code"], 40001);
    }

    #[tokio::test]
    async fn set_and_insert_values_return_no_entity_and_properties_are_request_scoped() {
        let server = memory_server();
        let sql = "CREATE STREAM S (K STRING KEY, V INT) WITH (kafka_topic='s', value_format='JSON', partitions=1); \
                   SET 'auto.offset.reset'='earliest'; INSERT INTO S (K, V) VALUES ('a', 1);";
        let (status, _, body) = call(
            &server,
            "POST",
            "/ksql",
            &json!({"ksql": sql, "streamsProperties": {"ksql.foo": "bar"}}).to_string(),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(parse(&body).as_array().unwrap().len(), 1);
        let engine = server.state().engine.lock().unwrap();
        assert!(engine.session.is_empty());
    }

    #[tokio::test]
    async fn session_variables_substitute() {
        let server = memory_server();
        let sql = "CREATE STREAM ${name} (V INT) WITH (kafka_topic='t', value_format='JSON', partitions=1);";
        let (status, _, body) = call(
            &server,
            "POST",
            "/ksql",
            &json!({"ksql": sql, "sessionVariables": {"name": "X1"}}).to_string(),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(parse(&body)[0]["commandId"], "stream/`X1`/create");
    }
}

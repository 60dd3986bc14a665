//! `GET /status`, `GET /status/<type>/<entity>/<action>` and `POST /ksql/terminate`: the command
//! topic as ksqlDB's clients see it.
//!
//! Statuses are those of the commands applied by this server (replayed at start or run since),
//! keyed by ksqlDB's command ids (`stream/`S`/create`). Terminating the cluster logs
//! `TERMINATE CLUSTER;`, stops every persistent and push query, deletes the sink topics the
//! request's `deleteTopicList` patterns match (of CREATE ... AS SELECT sources only, as ksqlDB)
//! and empties the catalog. ksqlDB then refuses further statements until it is restarted on a
//! new command topic; Runnel keeps serving and starts the new cluster right away (a replay
//! starts after the last `TERMINATE CLUSTER;`).

use crate::entities::entities;
use crate::error::{ApiError, NOT_FOUND, SERVER_ERROR};
use crate::{json_response, negotiate, parse_body, AppState, KSQL_V1_JSON};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use runnel_engine::command_log::TERMINATE_CLUSTER;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use std::sync::Arc;

/// ksqlDB's `CommandId.Type` and `CommandId.Action` values.
const TYPES: [&str; 6] = ["topic", "stream", "table", "cluster", "terminate", "type"];
const ACTIONS: [&str; 5] = ["create", "drop", "execute", "terminate", "alter"];

pub(crate) async fn handle_all(State(state): State<Arc<AppState>>) -> Response {
    let statuses: Map<String, Json> = state
        .lock_commands()
        .statuses()
        .iter()
        .map(|(id, s)| (id.clone(), json!(s.status)))
        .collect();
    json_response(
        StatusCode::OK,
        KSQL_V1_JSON,
        json!({ "commandStatuses": statuses }),
    )
}

pub(crate) async fn handle_one(
    State(state): State<Arc<AppState>>,
    Path((kind, entity, action)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (kind, action) = (kind.to_lowercase(), action.to_lowercase());
    if !TYPES.contains(&kind.as_str()) || !ACTIONS.contains(&action.as_str()) {
        return Err(ApiError::bad_request(format!(
            "Invalid command id '{kind}/{entity}/{action}': the type must be one of {} and the \
             action one of {}",
            TYPES.join(", "),
            ACTIONS.join(", ")
        )));
    }
    let log = state.lock_commands();
    // Stream and table ids quote the name (`stream/`S`/create`); accept it unquoted too.
    let status = log
        .status(&format!("{kind}/{entity}/{action}"))
        .or_else(|| log.status(&format!("{kind}/`{entity}`/{action}")))
        .ok_or_else(|| ApiError::Generic {
            code: NOT_FOUND,
            message: "Command not found".into(),
        })?;
    Ok(json_response(
        StatusCode::OK,
        KSQL_V1_JSON,
        json!({"status": status.status, "message": status.message, "queryId": status.query_id}),
    ))
}

/// ksqlDB's `ClusterTerminateRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TerminateRequest {
    #[serde(default)]
    delete_topic_list: Vec<String>,
    #[serde(default)]
    streams_properties: Map<String, Json>,
}

pub(crate) async fn handle_terminate(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: TerminateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TerminateRequest::default()
    } else {
        parse_body(&body)?
    };
    let content_type = negotiate(&headers, &[KSQL_V1_JSON, "application/json"]);
    // Java's Pattern.matches: the whole topic name must match.
    let patterns: Vec<regex::Regex> = request
        .delete_topic_list
        .iter()
        .map(|p| {
            regex::Regex::new(&format!("^(?:{p})$"))
                .map_err(|e| ApiError::bad_request(format!("Invalid pattern: {p}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let mut properties = request.streams_properties;
    properties.insert(
        "deleteTopicList".into(),
        json!(request.delete_topic_list.clone()),
    );
    state.stop_push_queries();
    let st = state.clone();
    let result = state
        .with_engine(move |engine| {
            let mut log = st.lock_commands();
            log.terminate_cluster(
                engine,
                &|topic| patterns.iter().any(|p| p.is_match(topic)),
                properties,
            )
        })
        .await?;
    match result {
        Ok((output, seq)) => {
            let seq = seq.max(0) as u64;
            let list = entities(output, None, TERMINATE_CLUSTER, &mut || seq);
            Ok(json_response(
                StatusCode::OK,
                content_type,
                Json::Array(list),
            ))
        }
        Err(e) => Err(ApiError::Statement {
            code: SERVER_ERROR,
            message: e.to_string(),
            statement: TERMINATE_CLUSTER.into(),
            entities: Vec::new(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{call, memory_server};
    use axum::http::StatusCode;
    use serde_json::{json, Value as Json};

    fn parse(body: &str) -> Json {
        serde_json::from_str(body).unwrap()
    }

    const DDL: &str = "CREATE STREAM S (K STRING KEY, V INT) WITH (kafka_topic='s', value_format='JSON', partitions=1); \
        CREATE STREAM D AS SELECT K, V * 2 AS W FROM S; CREATE TABLE C AS SELECT K, COUNT(*) AS N FROM S GROUP BY K;";

    #[tokio::test]
    async fn statuses_of_every_command() {
        let server = memory_server();
        let (status, _, body) = call(
            &server,
            "POST",
            "/ksql",
            &json!({ "ksql": DDL }).to_string(),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _, body) = call(&server, "GET", "/status", "", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            parse(&body),
            json!({"commandStatuses": {
                "stream/`S`/create": "SUCCESS",
                "stream/`D`/create": "SUCCESS",
                "table/`C`/create": "SUCCESS",
            }})
        );
        for path in ["/status/stream/D/create", "/status/STREAM/%60D%60/CREATE"] {
            let (status, _, body) = call(&server, "GET", path, "", None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            assert_eq!(
                parse(&body),
                json!({"status": "SUCCESS", "message": "Created query with ID CSAS_D_1", "queryId": "CSAS_D_1"})
            );
        }
        let (status, _, body) = call(&server, "GET", "/status/stream/S/create", "", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            parse(&body),
            json!({"status": "SUCCESS", "message": "Stream created", "queryId": null})
        );
        let (status, _, body) = call(&server, "GET", "/status/stream/NOPE/create", "", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            parse(&body),
            json!({"@type": "generic_error", "error_code": 40400, "message": "Command not found"})
        );
        let (status, _, body) = call(&server, "GET", "/status/river/S/create", "", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(parse(&body)["error_code"], 40000);
    }

    #[tokio::test]
    async fn terminate_cluster_stops_queries_and_empties_the_catalog() {
        let server = memory_server();
        call(
            &server,
            "POST",
            "/ksql",
            &json!({ "ksql": DDL }).to_string(),
            None,
        )
        .await;
        let (status, _, body) = call(
            &server,
            "POST",
            "/ksql/terminate",
            r#"{"deleteTopicList": ["[bad"]}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(parse(&body)["error_code"], 40000);
        assert_eq!(server.state().engine.lock().unwrap().queries.len(), 2);

        let (status, _, body) = call(
            &server,
            "POST",
            "/ksql/terminate",
            r#"{"deleteTopicList": ["D", "s"]}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v = parse(&body);
        assert_eq!(v[0]["@type"], "currentStatus");
        assert_eq!(v[0]["statementText"], "TERMINATE CLUSTER;");
        assert_eq!(v[0]["commandId"], "cluster/TerminateCluster/terminate");
        assert_eq!(v[0]["commandStatus"]["status"], "SUCCESS");
        assert_eq!(v[0]["commandSequenceNumber"], 3);
        {
            let engine = server.state().engine.lock().unwrap();
            assert!(engine.queries.is_empty());
            assert_eq!(engine.catalog.sources().count(), 0);
            let runnel_engine::Backend::Memory(topics) = &engine.backend else {
                unreachable!()
            };
            // Only CREATE ... AS SELECT sinks are deleted: `s` is a source's topic.
            assert!(!topics.contains_key("D"));
            assert!(topics.contains_key("s") && topics.contains_key("C"));
        }
        let (_, _, body) = call(&server, "GET", "/status", "", None).await;
        assert_eq!(
            parse(&body),
            json!({"commandStatuses": {"cluster/TerminateCluster/terminate": "SUCCESS"}})
        );
        // The server stays up and takes statements for the new cluster.
        let (status, _, body) = call(
            &server,
            "POST",
            "/ksql",
            &json!({ "ksql": DDL }).to_string(),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(parse(&body)[1]["commandStatus"]["queryId"], "CSAS_D_5");
    }
}

//! ksqlDB's error responses: `generic_error` and `statement_error` bodies whose `error_code` is
//! the HTTP status times 100 plus a sub-code. Clients branch on `error_code`, so every failure
//! leaves the server through [`ApiError`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value as Json};

/// Bad request (malformed body, unknown query id, ...).
pub const BAD_REQUEST: u32 = 40000;
/// A statement failed to parse or execute.
pub const BAD_STATEMENT: u32 = 40001;
/// SELECT / PRINT sent to `/ksql`.
pub const QUERY_ENDPOINT: u32 = 40002;
/// `ksql.max.push.queries` reached.
pub const MAX_PUSH_QUERIES: u32 = 40003;
pub const NOT_FOUND: u32 = 40400;
pub const SERVER_ERROR: u32 = 50000;
/// A request's `commandSequenceNumber` was not reached in time.
pub const COMMAND_TIMEOUT: u32 = 50301;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `generic_error`
    #[error("{message}")]
    Generic { code: u32, message: String },
    /// `statement_error`, with the entities of the statements completed before it.
    #[error("{message}")]
    Statement {
        code: u32,
        message: String,
        statement: String,
        entities: Vec<Json>,
    },
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::Generic {
            code: BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::Generic {
            code: SERVER_ERROR,
            message: message.into(),
        }
    }

    pub fn statement(message: impl Into<String>, statement: impl Into<String>) -> Self {
        ApiError::Statement {
            code: BAD_STATEMENT,
            message: message.into(),
            statement: statement.into(),
            entities: Vec::new(),
        }
    }

    pub fn code(&self) -> u32 {
        match self {
            ApiError::Generic { code, .. } | ApiError::Statement { code, .. } => *code,
        }
    }

    /// The HTTP status: the error code without its two-digit sub-code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16((self.code() / 100) as u16).unwrap_or(StatusCode::BAD_REQUEST)
    }

    pub fn body(&self) -> Json {
        match self {
            ApiError::Generic { code, message } => json!({
                "@type": "generic_error",
                "error_code": code,
                "message": message,
            }),
            ApiError::Statement {
                code,
                message,
                statement,
                entities,
            } => json!({
                "@type": "statement_error",
                "error_code": code,
                "message": message,
                "statementText": statement,
                "entities": entities,
            }),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        (
            status,
            [(
                axum::http::header::CONTENT_TYPE,
                crate::KSQL_V1_JSON.to_string(),
            )],
            self.body().to_string(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_http_statuses() {
        let e = ApiError::statement("boom", "SELECT 1;");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.body()["@type"], "statement_error");
        assert_eq!(e.body()["error_code"], 40001);
        assert_eq!(e.body()["statementText"], "SELECT 1;");
        assert_eq!(
            ApiError::internal("x").status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            ApiError::Generic {
                code: NOT_FOUND,
                message: "Not Found".into()
            }
            .status(),
            StatusCode::NOT_FOUND
        );
    }
}

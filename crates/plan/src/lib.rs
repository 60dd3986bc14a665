//! Planning: the catalog of streams and tables, type checking of expressions against ksqlDB's
//! rules, the function catalogue, and the logical plan of each persistent or transient query.

pub mod aggregate;
pub mod aggregates;
pub mod cast;
pub mod catalog;
pub mod codec;
pub mod ddl;
pub mod eval;
pub mod expr;
pub mod functions;
pub mod query;
pub mod value;

pub use catalog::{Catalog, Column, ColumnKind, FormatInfo, Schema, Source};
pub use expr::TypedExpr;
pub use value::{format_double_java, Decimal, Value};

/// A statement that cannot be planned: the message says what is wrong and, where it can, what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct PlanError {
    pub message: String,
    /// True when the statement is valid ksqlDB that Runnel does not run yet.
    pub unsupported: bool,
}

impl PlanError {
    pub fn new(message: impl Into<String>) -> Self {
        PlanError {
            message: message.into(),
            unsupported: false,
        }
    }

    /// A valid statement whose feature is not implemented yet.
    pub fn unsupported(feature: &str) -> Self {
        PlanError {
            message: format!("{feature} is not supported yet by Runnel (planned); the statement is valid ksqlDB."),
            unsupported: true,
        }
    }

    pub fn prefixed(self, prefix: &str) -> Self {
        PlanError {
            message: format!("{prefix}{}", self.message),
            ..self
        }
    }
}

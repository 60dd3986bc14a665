//! The streaming runtime: operators over Arrow `RecordBatch` micro-batches with expressions
//! compiled once per query into DataFusion physical expressions.
//!
//! Operators are plain synchronous objects fed one batch at a time, so the same code runs under
//! the deterministic test driver (one record per batch, like Kafka Streams' TopologyTestDriver)
//! and on Kafka (batches of polled records).

pub mod aggregate;
pub mod compile;
pub mod convert;
pub mod select;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("Arrow error: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("DataFusion error: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("internal error: {0}")]
    Internal(String),
}

//! The deterministic driver: runs persistent queries over the memory backend's topics, one
//! record at a time, the way ksqlDB's test runner drives Kafka Streams' TopologyTestDriver.
//!
//! Queries run in creation order. Each query reads every record of its source topic in offset
//! order (so a downstream query sees all of its upstream's output), processes it alone, and
//! appends its outputs to its sink topic. Stream time therefore only moves with record timestamps.

use crate::task::ProcessingLogEntry;
use crate::{Backend, Engine, EngineError};
use runnel_connect::kafka::Record;

/// Runs all persistent queries to completion over the current topic contents. Returns the
/// processing-log entries (records that were skipped, and why).
pub fn run_to_completion(engine: &mut Engine) -> Result<Vec<ProcessingLogEntry>, EngineError> {
    let mut log = Vec::new();
    let tasks: Vec<_> = engine.queries.iter().map(|q| q.task.clone()).collect();
    for task in tasks {
        let Backend::Memory(topics) = &mut engine.backend else {
            return Err(EngineError::Internal(
                "the deterministic driver needs the memory backend".into(),
            ));
        };
        let input: Vec<Record> = topics
            .get(task.source_topic())
            .map(|t| t.records.clone())
            .unwrap_or_default();
        let mut produced = Vec::new();
        for record in &input {
            let out = task.process(std::slice::from_ref(record))?;
            log.extend(out.errors);
            for row in &out.rows {
                match task.encode(row) {
                    Ok(r) => produced.push(r),
                    Err(message) => log.push(ProcessingLogEntry {
                        topic: record.topic.clone(),
                        partition: record.partition,
                        offset: record.offset,
                        message,
                    }),
                }
            }
        }
        engine.produce(produced)?;
    }
    Ok(log)
}

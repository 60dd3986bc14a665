//! The deterministic driver: runs persistent queries over the memory backend's topics, one
//! record at a time, the way ksqlDB's test runner drives Kafka Streams' TopologyTestDriver.
//!
//! Queries run in creation order. Each query reads the records of its source topic it has not
//! read yet, in offset order (so a downstream query sees all of its upstream's new output),
//! processes each alone, and appends its outputs to its sink topic. Stream time therefore only
//! moves with record timestamps. Running the driver again only processes what was appended since.
//!
//! Push queries on the memory backend are fed here too: each reads its source topic from its own
//! position after the persistent queries have run, and sends its rows to its client.

use crate::task::{ProcessingLogEntry, QueryTask};
use crate::{Backend, Engine, EngineError};
use runnel_connect::kafka::Record;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

/// A push query on the memory backend.
pub struct MemoryPush {
    pub(crate) task: Arc<QueryTask>,
    pub(crate) sender: Sender<crate::runner::PushRow>,
    /// Next record of the source topic to read.
    pub(crate) position: usize,
    /// Rows still to send before LIMIT is reached.
    pub(crate) remaining: Option<u64>,
    pub(crate) stop: Arc<AtomicBool>,
    /// Which tombstones reach the client.
    pub(crate) result: crate::runner::PushResult,
}

fn topic_records(engine: &Engine, topic: &str, from: usize) -> Vec<Record> {
    match &engine.backend {
        Backend::Memory(topics) => topics
            .get(topic)
            .map(|t| t.records.get(from..).unwrap_or(&[]).to_vec())
            .unwrap_or_default(),
        Backend::Kafka(_) => Vec::new(),
    }
}

/// Runs all persistent queries over what their source topics gained since the last run, then
/// feeds the push queries. Returns the processing-log entries (records that were skipped, and
/// why).
pub fn run_to_completion(engine: &mut Engine) -> Result<Vec<ProcessingLogEntry>, EngineError> {
    if !matches!(engine.backend, Backend::Memory(_)) {
        return Err(EngineError::Internal(
            "the deterministic driver needs the memory backend".into(),
        ));
    }
    let mut log = Vec::new();
    let tasks: Vec<_> = engine
        .queries
        .iter()
        .map(|q| (q.id.clone(), q.task.clone()))
        .collect();
    for (id, task) in tasks {
        let from = engine.driver_positions.get(&id).copied().unwrap_or(0);
        let input = topic_records(engine, task.source_topic(), from);
        engine.driver_positions.insert(id, from + input.len());
        let mut produced = Vec::new();
        for record in &input {
            let out = task.process(std::slice::from_ref(record))?;
            log.extend(out.errors);
            // A query without a sink only materializes its table (CREATE SOURCE TABLE).
            if task.sink_topic().is_none() {
                continue;
            }
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
    feed_push_queries(engine);
    Ok(log)
}

/// Sends each memory push query the rows of the records its topic gained since it last read;
/// drops the queries that reached their LIMIT, were stopped, or whose client went away.
pub fn feed_push_queries(engine: &mut Engine) {
    let mut pushes = std::mem::take(&mut engine.memory_pushes);
    pushes.retain_mut(|p| {
        if p.stop.load(Ordering::SeqCst) {
            return false;
        }
        let input = topic_records(engine, p.task.source_topic(), p.position);
        p.position += input.len();
        for record in &input {
            let out = match p.task.process(std::slice::from_ref(record)) {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!("push query failed: {e}");
                    return false;
                }
            };
            for row in out.rows {
                if p.remaining == Some(0) {
                    return false;
                }
                if !p.result.admit(record.key.as_deref(), &row) {
                    continue;
                }
                let row = crate::runner::PushRow {
                    values: row.values,
                    tombstone: row.null_value,
                };
                if p.sender.send(row).is_err() {
                    return false;
                }
                if let Some(r) = p.remaining.as_mut() {
                    *r -= 1;
                }
            }
        }
        p.remaining != Some(0)
    });
    pushes.append(&mut engine.memory_pushes);
    engine.memory_pushes = pushes;
}

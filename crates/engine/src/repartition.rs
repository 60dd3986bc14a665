//! Repartitioned aggregations: GROUP BY on columns other than the source's key.
//!
//! Kafka Streams (and so ksqlDB) only aggregates records that share a partition: rows of one
//! group that arrive on different source partitions must first be re-keyed by their group and
//! written to an internal repartition topic,
//! `_confluent-ksql-<service id>query_<query id>-Aggregate-GroupBy-repartition`, so that every
//! group lives on exactly one of its partitions. Runnel does the same on the Kafka backend, in
//! two threads of the query:
//!
//! 1. **GroupBy stage**: reads the source in the query's consumer group (so several servers
//!    sharing a service id split the source partitions), decodes each record, evaluates the
//!    group-by expressions, and produces the record to the repartition topic with the group key
//!    as its key (serialized in the source's key format, JSON when that format cannot hold the
//!    group columns), the partition Kafka's default partitioner picks for that key
//!    (murmur2 of the key bytes), and the source record's timestamp after its TIMESTAMP column,
//!    so windows are unchanged. Source offsets are committed only after the broker has
//!    acknowledged every record of the batch (at-least-once).
//! 2. **Aggregate stage**: the usual stateful loop (restore, changelog, checkpoint, commit) over
//!    the repartition topic instead of the source.
//!
//! The value bytes travel unchanged, and the source record's key travels in the header
//! [`SOURCE_KEY_HEADER`], which the aggregate stage puts back before decoding: the aggregate
//! stage decodes exactly what it would have decoded from the source, and sees the source's own
//! headers. The source position travels in [`SOURCE_OFFSET_HEADER`]: the GroupBy stage is
//! at-least-once (a crash after producing and before committing writes a batch again), and the
//! aggregate stage skips those repeats with [`SourceOffsets`], which is part of its state. Rows whose group key is null or fails to evaluate are passed on (to the partition
//! they came from) so the aggregate stage logs them as it always has.
//!
//! Only stream sources are repartitioned; a table's aggregate must subtract a key's old value
//! when it moves between groups, which needs both old and new rows in the repartition topic.

use crate::runner::{commit_batch, poll_batch, retry_commit, ProcessingLog, QueryStats, Running};
use crate::task::QueryTask;
use crate::EngineError;
use rdkafka::consumer::Consumer;
use runnel_connect::format::{key_serde, Column as FormatColumn, FormatKind, RowSerde};
use runnel_connect::kafka::{flush, send, KafkaConfig, Record};
use runnel_plan::query::InputField;
use runnel_plan::{TypedExpr, Value};
use runnel_sql::SourceKind;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Header carrying the source record's key through the repartition topic.
pub const SOURCE_KEY_HEADER: &str = "__runnel_source_key";
/// Header carrying the source record's position, `<partition>:<offset>`.
pub const SOURCE_OFFSET_HEADER: &str = "__runnel_source_offset";
/// State key of the aggregate stage's [`SourceOffsets`] (a table-contribution key, so the local
/// store keeps it out of window retention; stream aggregations have no contributions).
pub const SOURCE_OFFSETS_KEY: &[u8] = b"\xFF\x00runnel-source-offsets";

/// The last source offset the aggregate stage has aggregated, per (repartition partition,
/// source partition). A GroupBy stage that restarts (crash, rebalance) re-reads its source from
/// the last commit and may write records to the repartition topic again; within one repartition
/// partition the records of one source partition arrive in source-offset order, so a record at
/// or below this mark is a repeat and is skipped. The table is part of the aggregation state
/// (changelog and local store), so it always matches the counts it protects.
#[derive(Debug, Default)]
pub struct SourceOffsets {
    last: std::collections::BTreeMap<(i32, i32), i64>,
    changed: bool,
}

impl SourceOffsets {
    /// Whether a record (at `partition` of the repartition topic, from `source` in the source)
    /// is new; records it as aggregated if so.
    pub fn admit(&mut self, partition: i32, source: (i32, i64)) -> bool {
        let last = self.last.entry((partition, source.0)).or_insert(-1);
        if source.1 <= *last {
            return false;
        }
        *last = source.1;
        self.changed = true;
        true
    }

    /// The state change to write with the batch, if the table changed.
    pub fn take_change(&mut self) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        let text: Vec<String> = self
            .last
            .iter()
            .map(|((p, s), o)| format!("{p}:{s}:{o}"))
            .collect();
        Some((
            SOURCE_OFFSETS_KEY.to_vec(),
            Some(text.join(",").into_bytes()),
        ))
    }

    pub fn restore(&mut self, value: Option<&[u8]>) -> Result<(), String> {
        self.last.clear();
        self.changed = false;
        let text = std::str::from_utf8(value.unwrap_or_default())
            .map_err(|_| "source offsets are not text".to_string())?;
        for entry in text.split(',').filter(|e| !e.is_empty()) {
            let parts: Vec<i64> = entry
                .split(':')
                .map(|n| n.parse::<i64>())
                .collect::<Result<_, _>>()
                .map_err(|_| format!("bad source offsets entry {entry:?}"))?;
            let [p, s, o] = parts[..] else {
                return Err(format!("bad source offsets entry {entry:?}"));
            };
            self.last.insert((p as i32, s as i32), o);
        }
        Ok(())
    }
}

/// Aggregate stage: puts source keys back and leaves out records already aggregated.
pub fn prepare(task: &QueryTask, batch: &mut [Record]) -> Result<Vec<Record>, EngineError> {
    restore_source_keys(batch);
    let mut offsets = task.source_offsets()?;
    let mut fresh = Vec::with_capacity(batch.len());
    for r in batch.iter_mut() {
        let source = r
            .headers
            .iter()
            .rposition(|(k, _)| k == SOURCE_OFFSET_HEADER)
            .map(|i| r.headers.remove(i).1)
            .and_then(|v| parse_position(v.as_deref()?));
        if source.is_none_or(|s| offsets.admit(r.partition, s)) {
            fresh.push(r.clone());
        }
    }
    Ok(fresh)
}

fn parse_position(bytes: &[u8]) -> Option<(i32, i64)> {
    let (p, o) = std::str::from_utf8(bytes).ok()?.split_once(':')?;
    Some((p.parse().ok()?, o.parse().ok()?))
}

/// The repartition topic of a query.
pub fn topic_name(service_id: &str, query_id: &str) -> String {
    format!("_confluent-ksql-{service_id}query_{query_id}-Aggregate-GroupBy-repartition")
}

/// Does this task aggregate a stream by something other than the stream's key?
///
/// Windowed aggregations do not repartition yet. The GroupBy stage writes the records of several
/// source partitions into each repartition partition in the order it happens to consume them
/// (a fetched run of one partition, then of another), so with a backlog one partition's newest
/// records land before another's older ones; the aggregate stage's stream time, the largest
/// timestamp seen in its partition, then jumps ahead and closes windows (and drops as late the
/// records that follow, beyond grace). That is what `runnel bench`'s W2-final showed. The fix is
/// a timestamp-ordered merge of the source partitions before writing (Kafka Streams' partition
/// group with `max.task.idle.ms`); until then windowed aggregations read the source directly,
/// with one stream time per source partition.
pub fn needs_repartition(task: &QueryTask) -> bool {
    let Some(plan) = task.aggregate_plan() else {
        return false;
    };
    if plan.source.kind != SourceKind::Stream
        || plan.source.window.is_some()
        || plan.window.is_some()
        || plan.group_by.is_empty()
    {
        return false;
    }
    let key_columns = plan.source.schema.key_columns().count();
    let by_key = plan.group_by.len() == key_columns
        && plan.group_by.iter().enumerate().all(|(i, g)| {
            matches!(g, TypedExpr::Column { index, .. }
                if plan.input.fields.get(*index).map(|f| &f.0) == Some(&InputField::Key(i)))
        });
    !by_key
}

/// Kafka's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for a non-null key.
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// Serializes group keys: in the source's key format, else JSON, else Runnel's own key codec.
struct GroupKeyEncoder {
    serde: Option<Box<dyn RowSerde>>,
}

impl GroupKeyEncoder {
    fn new(task: &QueryTask) -> Self {
        let Some(plan) = task.aggregate_plan() else {
            return GroupKeyEncoder { serde: None };
        };
        let names: Vec<String> = plan
            .projection
            .iter()
            .filter(|p| p.is_key)
            .map(|p| p.name.clone())
            .collect();
        let columns: Vec<FormatColumn> = plan
            .group_by
            .iter()
            .enumerate()
            .map(|(i, g)| FormatColumn {
                name: names
                    .get(i)
                    .filter(|_| names.len() == plan.group_by.len())
                    .cloned()
                    .unwrap_or_else(|| format!("KSQL_COL_{i}")),
                ty: g.ty(),
            })
            .collect();
        let source_format = crate::task::format_kind(&plan.source.key_format).ok();
        let options = crate::task::format_options(&plan.source.key_format);
        let serde = source_format
            .and_then(|f| key_serde(f, &options, &columns).ok())
            .or_else(|| key_serde(FormatKind::Json, &options, &columns).ok());
        GroupKeyEncoder { serde }
    }

    fn encode(&self, group: &[Value]) -> Vec<u8> {
        self.serde
            .as_ref()
            .and_then(|s| s.serialize(Some(group)).ok().flatten())
            .unwrap_or_else(|| runnel_plan::codec::encode_key(group))
    }
}

/// Puts the source keys carried by repartitioned records back (aggregate stage).
pub fn restore_source_keys(batch: &mut [Record]) {
    for r in batch {
        if let Some(i) = r.headers.iter().rposition(|(k, _)| k == SOURCE_KEY_HEADER) {
            let (_, key) = r.headers.remove(i);
            r.key = key;
        }
    }
}

/// The repartition records of a batch, with the processing-log entries of records that could
/// not be decoded.
fn repartition_batch(
    stage: &QueryTask,
    encoder: &GroupKeyEncoder,
    batch: &[Record],
    topic: &str,
    partitions: i32,
) -> Result<(Vec<Record>, Vec<crate::task::ProcessingLogEntry>), EngineError> {
    let (rows, errors) = stage.group_keys(batch)?;
    let records = rows
        .into_iter()
        .map(|(r, timestamp, group)| {
            let (key, partition) = match group {
                Some(g) => {
                    let key = encoder.encode(&g);
                    let p = partition_for(&key, partitions);
                    (Some(key), p)
                }
                None => (r.key.clone(), r.partition.rem_euclid(partitions.max(1))),
            };
            let mut headers = r.headers.clone();
            headers.push((SOURCE_KEY_HEADER.to_string(), r.key.clone()));
            headers.push((
                SOURCE_OFFSET_HEADER.to_string(),
                Some(format!("{}:{}", r.partition, r.offset).into_bytes()),
            ));
            Record {
                topic: topic.to_string(),
                partition,
                offset: -1,
                timestamp,
                key,
                value: r.value.clone(),
                headers,
            }
        })
        .collect();
    Ok((records, errors))
}

/// Starts both stages of a repartitioned aggregation; stopping the returned query stops both.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    task: Arc<QueryTask>,
    kafka: KafkaConfig,
    group: String,
    auto_offset_reset: String,
    log: ProcessingLog,
    changelog: Option<crate::state::Changelog>,
    topic: String,
) -> Result<Running, EngineError> {
    let partitions = kafka
        .topic(task.source_topic())?
        .map(|t| t.partitions)
        .unwrap_or(1);
    kafka.create_topic(&topic, partitions, 1)?;
    let stage = task.repartitioner()?;
    let encoder = GroupKeyEncoder::new(&task);
    if auto_offset_reset.eq_ignore_ascii_case("latest") {
        crate::runner::start_at_end(&kafka, &group, task.source_topic())?;
    }
    let consumer = kafka.group_consumer(&group, &auto_offset_reset)?;
    consumer
        .subscribe(&[task.source_topic()])
        .map_err(runnel_connect::kafka::KafkaError::from)?;
    // Idempotence keeps each partition's records in the order they were sent even when the
    // client retries, which `SourceOffsets` relies on to tell repeats from new records.
    let mut idempotent = kafka.clone();
    idempotent
        .properties
        .insert("enable.idempotence".into(), "true".into());
    let producer = idempotent.producer()?;
    let group_log = ProcessingLog {
        topic: log.topic.clone(),
        query_id: log.query_id.clone(),
    };
    // The aggregate stage has the whole repartition topic to itself: without a checkpoint it
    // starts at its beginning, whatever the source's offset reset. It commits in its own group,
    // since the GroupBy stage's group has subscribed members (a broker rejects commits from an
    // unassigned consumer into such a group).
    let mut aggregate = crate::runner::spawn_persistent_from(
        task,
        kafka,
        format!("{group}-Aggregate"),
        "earliest".into(),
        log,
        changelog,
        &topic,
    )?;
    let (stop, stats): (_, Arc<QueryStats>) = (aggregate.stop.clone(), aggregate.stats.clone());
    let query_id = group_log.query_id.clone();
    let group_log_id = query_id.clone();
    let group_by = std::thread::Builder::new()
        .name(format!("query-{query_id}-groupby"))
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let batch = poll_batch(&consumer, &stop);
                if batch.is_empty() {
                    retry_commit(&consumer, &query_id);
                    continue;
                }
                let result = repartition_batch(&stage, &encoder, &batch, &topic, partitions)
                    .and_then(|(records, errors)| {
                        stats
                            .failed
                            .fetch_add(errors.len() as u64, Ordering::Relaxed);
                        for e in &errors {
                            group_log.write(&producer, e);
                        }
                        for r in &records {
                            send(&producer, r)?;
                        }
                        flush(&producer)?;
                        Ok(())
                    })
                    .map(|_| commit_batch(&consumer, &batch, &query_id));
                if let Err(e) = result {
                    tracing::error!(query = %query_id, "repartitioning failed, stopping; a restart resumes from the last commit: {e}");
                    stats.errored.store(true, Ordering::SeqCst);
                    break;
                }
            }
            let _ = flush(&producer);
            retry_commit(&consumer, &query_id);
        })
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    let aggregate_thread = aggregate.thread.take();
    let supervisor = std::thread::Builder::new()
        .name(format!("query-{}-stages", group_log_id))
        .spawn(move || {
            let _ = group_by.join();
            if let Some(t) = aggregate_thread {
                let _ = t.join();
            }
        })
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    aggregate.thread = Some(supervisor);
    Ok(aggregate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Kafka's UtilsTest#testMurmur2 vectors.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn partitions_are_never_negative() {
        for key in [&b"21"[..], b"foobar", b"abc", b""] {
            let p = partition_for(key, 4);
            assert!((0..4).contains(&p), "{p}");
        }
        assert_eq!(partition_for(b"21", 1), 0);
    }

    #[test]
    fn repeated_source_positions_are_skipped_per_partition_pair() {
        let mut seen = SourceOffsets::default();
        assert!(seen.admit(0, (3, 10)));
        assert!(seen.admit(0, (3, 11)));
        // A GroupBy stage that restarted writes 10 and 11 again, then goes on.
        assert!(!seen.admit(0, (3, 10)));
        assert!(!seen.admit(0, (3, 11)));
        assert!(seen.admit(0, (3, 12)));
        // Other repartition partitions and other source partitions have their own marks.
        assert!(seen.admit(1, (3, 5)));
        assert!(seen.admit(0, (2, 0)));
        let (key, value) = seen.take_change().expect("changed");
        assert_eq!(key, SOURCE_OFFSETS_KEY);
        assert_eq!(seen.take_change(), None, "nothing new since");
        let mut restored = SourceOffsets::default();
        restored.restore(value.as_deref()).expect("restore");
        assert!(!restored.admit(0, (3, 12)));
        assert!(!restored.admit(1, (3, 5)));
        assert!(restored.admit(0, (2, 1)));
    }

    #[test]
    fn bad_source_offsets_state_is_an_error() {
        let mut seen = SourceOffsets::default();
        assert!(seen.restore(Some(b"0:1")).is_err());
        assert!(seen.restore(Some(b"a:b:c")).is_err());
        assert!(seen.restore(Some(&[0xff, 0xfe])).is_err());
        assert!(seen.restore(Some(b"")).is_ok());
    }

    #[test]
    fn source_keys_come_back_and_the_header_goes() {
        let mut batch = vec![Record {
            key: Some(b"group".to_vec()),
            headers: vec![
                ("h".into(), Some(b"1".to_vec())),
                (SOURCE_KEY_HEADER.into(), Some(b"k1".to_vec())),
            ],
            ..Default::default()
        }];
        restore_source_keys(&mut batch);
        assert_eq!(batch[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(
            batch[0].headers,
            vec![("h".to_string(), Some(b"1".to_vec()))]
        );
        // A null source key stays null.
        let mut batch = vec![Record {
            key: Some(b"group".to_vec()),
            headers: vec![(SOURCE_KEY_HEADER.into(), None)],
            ..Default::default()
        }];
        restore_source_keys(&mut batch);
        assert_eq!(batch[0].key, None);
    }
}

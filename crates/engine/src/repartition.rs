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
//! aggregate stage skips those repeats with [`SourceOffsets`], which is part of its state. Rows
//! whose group key is null or fails to evaluate are passed on (to the partition they came from)
//! so the aggregate stage logs them as it always has.
//!
//! # Windowed aggregations: stream time per source partition
//!
//! Windows close, and records are dropped as late, by *stream time*. A Kafka Streams aggregate
//! task takes the largest timestamp seen in its repartition partition, and that partition is
//! fed by every source partition in whatever order the GroupBy tasks happen to write: with a
//! backlog, one source partition's newest records land before another's oldest, stream time
//! jumps, windows close early, and the other partitions' records are then dropped as late (with
//! `EMIT CHANGES` the table keeps a partial count; with `EMIT FINAL` the result is short). That
//! is what `runnel bench`'s W2-final showed before this, and why windowed aggregations used to
//! skip the repartition topic (each source partition then closed its own windows, and a group
//! spread over partitions came out once per partition, each with a partial count).
//!
//! A timestamp-ordered merge in the GroupBy stage (Kafka Streams' `PartitionGroup` with
//! `max.task.idle.ms`) only makes that less likely: several servers each write their own merge
//! into the same repartition partitions, a partition with no data buffered is skipped after the
//! idle time, and a producer retry or a restart reorders again. Runnel instead makes the result
//! independent of the interleaving, in the aggregate stage:
//!
//! * Every record carries its source partition's stream time in [`STREAM_TIME_HEADER`] (the
//!   largest timestamp of the rows the aggregation takes, i.e. that pass WHERE and have a
//!   group, up to this record), computed by the GroupBy stage that reads the whole partition.
//!   A record is late when a window closed at *its own* source partition's stream time, so
//!   exactly the records a single-partition source would drop are dropped (with one source
//!   partition this is ksqlDB's behaviour record for record; the QTT files judge that through
//!   the in-memory driver, which reads sources directly).
//! * Each repartition partition's windows close (EMIT FINAL), are pruned and expire at its
//!   [`StreamClock`] time: the smallest stream time among the source partitions that still
//!   have records to read, which never goes back. Once it passes a window, every source
//!   partition has passed it, and the records of that window still to come are late by their
//!   own partition anyway, so each window comes out once, complete (unless the clock jumps
//!   past its retention first: as in Kafka Streams, whose default retention is size + grace, a
//!   window the store no longer has is never emitted; give `RETENTION` to keep it).
//! * The GroupBy stage tells the aggregate stage about partitions it has no records for through
//!   progress markers ([`PROGRESS_HEADER`]; every source partition's stream time and whether
//!   the consumer has reached its end, from librdkafka's partition-EOF events), sent to every
//!   repartition partition after the records they cover (at most every 200 ms while records
//!   flow, at once when the stage runs out of them). A source partition at its end no longer
//!   holds windows open, so windows close at the end of a backlog and when a partition stays
//!   empty; one never heard of holds them. With everything read, the clock is the largest
//!   stream time, as for a single partition. A record arriving later on a partition that was
//!   at its end is judged by the clock (as Kafka Streams does after `max.task.idle.ms`).
//! * The clock is aggregation state ([`STREAM_CLOCK_KEY`], changelog and local store), so a
//!   restarted query closes windows where it left off rather than at the largest timestamp of
//!   its restored windows. A restarted GroupBy stage recomputes stream times from its last
//!   commit, so its first records may carry a lower time than before the crash; the clock
//!   keeps the larger one it has seen.
//!
//! Only stream sources are repartitioned; a table's aggregate must subtract a key's old value
//! when it moves between groups, which needs both old and new rows in the repartition topic.
//! Streams over windowed topics are aggregated directly.

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
/// Header carrying, on a record of a windowed aggregation, its source partition's stream time
/// up to and including it (the largest timestamp of the rows the aggregation takes).
pub const STREAM_TIME_HEADER: &str = "__runnel_stream_time";
/// Header marking a progress marker of a windowed aggregation's GroupBy stage; the marker's
/// value lists `<source partition>:<stream time>:<1 when caught up, else 0>`, comma-separated.
pub const PROGRESS_HEADER: &str = "__runnel_progress";
/// State key prefix of the aggregate stage's [`StreamClock`], one entry per repartition
/// partition (the partition follows, 4 bytes big-endian).
pub const STREAM_CLOCK_KEY: &[u8] = b"\xFF\x00runnel-stream-clock";
/// How often at most the GroupBy stage sends progress markers while it has records to write
/// (when it runs out of records, at once): how late an EMIT FINAL window can come out.
const MARKER_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// What the aggregate stage knows of one source partition in one repartition partition.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SourceTime {
    /// The source partition's stream time, as far as its records (or markers) have arrived.
    time: i64,
    /// The GroupBy stage last said it had read everything the partition had.
    caught_up: bool,
}

/// The stream time of each repartition partition of a windowed aggregation (aggregate stage).
///
/// Every source partition's stream time (`STREAM_TIME_HEADER`, progress markers) is followed
/// per repartition partition. A record is late when a window closed at its own source
/// partition's stream time (what a single-partition source gives, whatever the interleaving of
/// partitions in the repartition topic); a repartition partition's windows close at the
/// smallest stream time of the source partitions that still have records to read (an unknown
/// one counts as not started; when all are caught up, the largest), which never goes back.
#[derive(Debug, Default)]
pub struct StreamClock {
    /// Source partitions (the repartition topic has as many).
    sources: i32,
    partitions: std::collections::BTreeMap<i32, PartitionClock>,
    /// Repartition partitions whose clock changed since the last `take_changes`.
    changed: std::collections::BTreeSet<i32>,
    /// Row times of the batch `prepare` made, for `QueryTask::process`.
    batch: Option<BatchTimes>,
}

#[derive(Debug, Default, Clone, PartialEq)]
struct PartitionClock {
    sources: std::collections::BTreeMap<i32, SourceTime>,
    close: i64,
}

/// The stream times of a prepared batch: one per fresh record, and the close time each
/// repartition partition of the batch ends at.
#[derive(Debug, Default)]
pub struct BatchTimes {
    pub rows: Vec<runnel_runtime::aggregate::RowTime>,
    pub close: Vec<(i32, i64)>,
}

impl PartitionClock {
    fn recompute(&mut self, sources: i32) {
        let mut slowest: Option<i64> = None;
        let mut fastest = i64::MIN;
        for s in 0..sources.max(1) {
            match self.sources.get(&s) {
                Some(t) => {
                    fastest = fastest.max(t.time);
                    if !t.caught_up {
                        slowest = Some(slowest.map_or(t.time, |x| x.min(t.time)));
                    }
                }
                None => slowest = Some(i64::MIN),
            }
        }
        self.close = self.close.max(slowest.unwrap_or(fastest));
    }
}

impl StreamClock {
    pub fn set_sources(&mut self, sources: i32) {
        self.sources = sources;
    }

    /// How many source partitions feed the repartition topic.
    pub fn sources(&self) -> i32 {
        self.sources
    }

    /// A record of source partition `source` at repartition partition `partition`, whose
    /// source partition's stream time is `time`: the stream time it is processed at.
    pub fn record(
        &mut self,
        partition: i32,
        source: i32,
        time: i64,
    ) -> runnel_runtime::aggregate::RowTime {
        let sources = self.sources;
        let clock = self.partition_mut(partition);
        let known = clock.sources.entry(source).or_insert(SourceTime {
            time: i64::MIN,
            caught_up: false,
        });
        known.time = known.time.max(time);
        known.caught_up = false;
        let late = known.time;
        clock.recompute(sources);
        let close = clock.close;
        self.changed.insert(partition);
        runnel_runtime::aggregate::RowTime { late, close }
    }

    /// A progress marker at repartition partition `partition`.
    pub fn marker(&mut self, partition: i32, progress: &[(i32, i64, bool)]) {
        let sources = self.sources;
        let clock = self.partition_mut(partition);
        for &(source, time, caught_up) in progress {
            let known = clock.sources.entry(source).or_insert(SourceTime {
                time: i64::MIN,
                caught_up,
            });
            known.time = known.time.max(time);
            known.caught_up = caught_up;
        }
        clock.recompute(sources);
        self.changed.insert(partition);
    }

    /// The clock of a repartition partition, not started (closes nothing) when new.
    fn partition_mut(&mut self, partition: i32) -> &mut PartitionClock {
        self.partitions.entry(partition).or_insert(PartitionClock {
            close: i64::MIN,
            ..Default::default()
        })
    }

    /// The close time of a repartition partition.
    pub fn close_time(&self, partition: i32) -> i64 {
        self.partitions
            .get(&partition)
            .map_or(i64::MIN, |c| c.close)
    }

    /// The close time of every repartition partition (to restore the aggregation's times).
    pub fn close_times(&self) -> Vec<(i32, i64)> {
        self.partitions.iter().map(|(p, c)| (*p, c.close)).collect()
    }

    pub fn take_batch(&mut self) -> Option<BatchTimes> {
        self.batch.take()
    }

    /// The state changes to write with the batch: the clocks of the partitions that moved.
    pub fn take_changes(&mut self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .filter_map(|p| {
                let c = self.partitions.get(&p)?;
                let mut value = c.close.to_string();
                for (s, t) in &c.sources {
                    value.push_str(&format!("/{s}:{}:{}", t.time, u8::from(t.caught_up)));
                }
                let mut key = STREAM_CLOCK_KEY.to_vec();
                key.extend_from_slice(&p.to_be_bytes());
                Some((key, Some(value.into_bytes())))
            })
            .collect()
    }

    /// Forgets every partition's clock (a restore from scratch).
    pub fn clear(&mut self) {
        self.partitions.clear();
        self.changed.clear();
        self.batch = None;
    }

    /// Applies one changelog entry (`key` starts with [`STREAM_CLOCK_KEY`]).
    pub fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let partition = key
            .strip_prefix(STREAM_CLOCK_KEY)
            .and_then(|p| <[u8; 4]>::try_from(p).ok())
            .map(i32::from_be_bytes)
            .ok_or_else(|| format!("bad stream clock key {key:?}"))?;
        let Some(value) = value else {
            self.partitions.remove(&partition);
            return Ok(());
        };
        let text =
            std::str::from_utf8(value).map_err(|_| "stream clock is not text".to_string())?;
        let bad = || format!("bad stream clock {text:?}");
        let mut parts = text.split('/');
        let close: i64 = parts.next().and_then(|c| c.parse().ok()).ok_or_else(bad)?;
        let mut clock = PartitionClock {
            close,
            ..Default::default()
        };
        for source in parts {
            let (s, t, c) = parse_progress(source).ok_or_else(bad)?;
            clock.sources.insert(
                s,
                SourceTime {
                    time: t,
                    caught_up: c,
                },
            );
        }
        self.partitions.insert(partition, clock);
        Ok(())
    }
}

/// `<source partition>:<stream time>:<0|1>`.
fn parse_progress(text: &str) -> Option<(i32, i64, bool)> {
    let mut parts = text.split(':');
    let s = parts.next()?.parse().ok()?;
    let t = parts.next()?.parse().ok()?;
    let c = match parts.next()? {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    parts.next().is_none().then_some((s, t, c))
}

/// What the GroupBy stage of a windowed aggregation knows of its source partitions: their
/// stream times and whether the consumer has reached their end, sent to every repartition
/// partition as progress markers.
#[derive(Debug, Default)]
struct SourceProgress {
    sources: std::collections::BTreeMap<i32, SourceTime>,
    changed: bool,
    last_sent: Option<std::time::Instant>,
}

impl SourceProgress {
    /// The consumer got a record of `source`: it is not at its end (until it says so again).
    fn polled(&mut self, source: i32) {
        let known = self.sources.entry(source).or_insert(SourceTime {
            time: i64::MIN,
            caught_up: false,
        });
        self.changed |= known.caught_up;
        known.caught_up = false;
    }

    /// A record of `source` goes to the repartition topic; `taken` when the aggregation takes
    /// its row (it passes the WHERE clause and has a group), which moves the partition's stream
    /// time. Returns that time.
    fn record(&mut self, source: i32, timestamp: i64, taken: bool) -> i64 {
        let known = self.sources.entry(source).or_insert(SourceTime {
            time: i64::MIN,
            caught_up: false,
        });
        if taken && timestamp > known.time {
            known.time = timestamp;
            self.changed = true;
        }
        known.time
    }

    /// The consumer reached the end of `source`.
    fn caught_up(&mut self, source: i32) {
        let known = self.sources.entry(source).or_insert(SourceTime {
            time: i64::MIN,
            caught_up: true,
        });
        self.changed |= !known.caught_up;
        known.caught_up = true;
    }

    /// Forgets the source partitions the consumer no longer owns (a rebalance moved them to
    /// another server, which reports them from now on).
    fn keep_assigned(&mut self, assigned: &std::collections::BTreeSet<i32>) {
        self.sources.retain(|s, _| assigned.contains(s));
    }

    /// Progress markers for every repartition partition, when due: the progress changed, and
    /// the last markers are `MARKER_INTERVAL` old or the stage has nothing else to write.
    fn markers(&mut self, topic: &str, partitions: i32, idle: bool) -> Vec<Record> {
        let due = self.changed
            && (idle
                || self
                    .last_sent
                    .is_none_or(|t| t.elapsed() >= MARKER_INTERVAL));
        if !due {
            return vec![];
        }
        self.changed = false;
        self.last_sent = Some(std::time::Instant::now());
        tracing::trace!("progress markers {:?}", self.sources);
        let value: Vec<String> = self
            .sources
            .iter()
            .map(|(s, t)| format!("{s}:{}:{}", t.time, u8::from(t.caught_up)))
            .collect();
        let value = value.join(",").into_bytes();
        (0..partitions.max(1))
            .map(|partition| Record {
                topic: topic.to_string(),
                partition,
                offset: -1,
                timestamp: chrono::Utc::now().timestamp_millis(),
                key: None,
                value: Some(value.clone()),
                headers: vec![(PROGRESS_HEADER.to_string(), None)],
            })
            .collect()
    }
}

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

/// Removes the last header named `name` and returns its value.
fn take_header(r: &mut Record, name: &str) -> Option<Option<Vec<u8>>> {
    let i = r.headers.iter().rposition(|(k, _)| k == name)?;
    Some(r.headers.remove(i).1)
}

/// Aggregate stage: puts source keys back and leaves out records already aggregated. For a
/// windowed aggregation, also follows the progress markers and source stream times, and leaves
/// the stream time of every fresh record for `QueryTask::process` (see [`StreamClock`]).
pub fn prepare(task: &QueryTask, batch: &mut [Record]) -> Result<Vec<Record>, EngineError> {
    restore_source_keys(batch);
    let mut offsets = task.source_offsets()?;
    let windowed = task.aggregate_plan().is_some_and(|p| p.window.is_some());
    let mut clock = task.stream_clock()?;
    let mut times = BatchTimes::default();
    let mut fresh = Vec::with_capacity(batch.len());
    for r in batch.iter_mut() {
        if take_header(r, PROGRESS_HEADER).is_some() {
            if windowed {
                let text = std::str::from_utf8(r.value.as_deref().unwrap_or_default());
                let progress: Vec<(i32, i64, bool)> = text
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(parse_progress)
                    .collect();
                clock.marker(r.partition, &progress);
                tracing::trace!(
                    partition = r.partition,
                    close = clock.close_time(r.partition),
                    "progress marker {progress:?}"
                );
                close_at(&mut times, r.partition, clock.close_time(r.partition));
            }
            continue;
        }
        let time = take_header(r, STREAM_TIME_HEADER)
            .flatten()
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<i64>().ok());
        let source = take_header(r, SOURCE_OFFSET_HEADER)
            .flatten()
            .and_then(|v| parse_position(&v));
        if source.is_none_or(|s| offsets.admit(r.partition, s)) {
            if windowed {
                let row = match (source, time) {
                    (Some((s, _)), Some(t)) => clock.record(r.partition, s, t),
                    // Rows the aggregation does not take (null group) keep the partition's
                    // close time; they are only logged.
                    _ => {
                        let close = clock.close_time(r.partition);
                        runnel_runtime::aggregate::RowTime { late: close, close }
                    }
                };
                close_at(&mut times, r.partition, row.close);
                times.rows.push(row);
            }
            fresh.push(r.clone());
        }
    }
    if windowed {
        clock.batch = Some(times);
    }
    Ok(fresh)
}

/// Records the close time a repartition partition has reached in a batch.
fn close_at(times: &mut BatchTimes, partition: i32, close: i64) {
    match times.close.iter_mut().find(|(p, _)| *p == partition) {
        Some(entry) => entry.1 = entry.1.max(close),
        None => times.close.push((partition, close)),
    }
}

fn parse_position(bytes: &[u8]) -> Option<(i32, i64)> {
    let (p, o) = std::str::from_utf8(bytes).ok()?.split_once(':')?;
    Some((p.parse().ok()?, o.parse().ok()?))
}

/// The repartition topic of a query.
pub fn topic_name(service_id: &str, query_id: &str) -> String {
    format!("_confluent-ksql-{service_id}query_{query_id}-Aggregate-GroupBy-repartition")
}

/// Does this task aggregate a stream by something other than the stream's key? Windowed
/// aggregations too: their stream time then follows every source partition (see
/// [`StreamClock`]). A windowed source (a stream over a windowed topic) is read directly.
pub fn needs_repartition(task: &QueryTask) -> bool {
    let Some(plan) = task.aggregate_plan() else {
        return false;
    };
    if plan.source.kind != SourceKind::Stream
        || plan.source.window.is_some()
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

/// A repartitioned windowed aggregation (its aggregate stage keeps a [`StreamClock`]).
pub fn windowed_repartition(task: &QueryTask) -> bool {
    needs_repartition(task) && task.aggregate_plan().is_some_and(|p| p.window.is_some())
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
    mut progress: Option<&mut SourceProgress>,
) -> Result<(Vec<Record>, Vec<crate::task::ProcessingLogEntry>), EngineError> {
    // Only a windowed aggregation's stream times need to know which rows WHERE takes.
    let (rows, errors) = stage.group_keys(batch, progress.is_some())?;
    let records = rows
        .into_iter()
        .map(|(r, timestamp, group, passes)| {
            // A windowed aggregation's rows carry their source partition's stream time.
            let has_group = group.is_some();
            let stream_time = progress
                .as_deref_mut()
                .map(|p| p.record(r.partition, timestamp, passes && has_group));
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
            if let (Some(time), true) = (stream_time, has_group) {
                headers.push((
                    STREAM_TIME_HEADER.to_string(),
                    Some(time.to_string().into_bytes()),
                ));
            }
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

/// The partitions of `topic` the consumer owns now (`None` if the client cannot say).
fn assigned<C: rdkafka::consumer::ConsumerContext>(
    consumer: &rdkafka::consumer::BaseConsumer<C>,
    topic: &str,
) -> Option<std::collections::BTreeSet<i32>> {
    let tpl = consumer.assignment().ok()?;
    Some(
        tpl.elements_for_topic(topic)
            .iter()
            .map(|e| e.partition())
            .collect(),
    )
}

/// `runner::poll_batch` for a consumer that reports partition ends (`enable.partition.eof`):
/// notes them in `progress` and goes on polling.
fn poll_batch_with_ends<C: rdkafka::consumer::ConsumerContext>(
    consumer: &rdkafka::consumer::BaseConsumer<C>,
    stop: &std::sync::atomic::AtomicBool,
    progress: &mut SourceProgress,
) -> Vec<Record> {
    use rdkafka::error::KafkaError as RdKafkaError;
    use std::time::{Duration, Instant};
    const MAX_BATCH: usize = 1000;
    let mut batch = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(200);
    let mut linger_until: Option<Instant> = None;
    while batch.len() < MAX_BATCH && !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let until = linger_until.unwrap_or(deadline);
        if now >= until {
            break;
        }
        match consumer.poll(until - now) {
            Some(Ok(m)) => {
                let r = runnel_connect::kafka::record_of(&m);
                // A record after an end: the partition has data again.
                progress.polled(r.partition);
                batch.push(r);
                linger_until.get_or_insert(now + Duration::from_millis(20));
            }
            Some(Err(RdKafkaError::PartitionEOF(p))) => progress.caught_up(p),
            Some(Err(e)) => {
                tracing::warn!("consumer error: {e}");
                break;
            }
            None => break,
        }
    }
    batch
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
    let windowed = task.aggregate_plan().is_some_and(|p| p.window.is_some());
    task.stream_clock()?.set_sources(partitions);
    // A windowed aggregation's GroupBy stage tells the aggregate stage when it has read all a
    // source partition has (so that partition no longer holds windows open).
    let mut eof = kafka.clone();
    if windowed {
        eof.properties
            .insert("enable.partition.eof".into(), "true".into());
    }
    if auto_offset_reset.eq_ignore_ascii_case("latest") {
        crate::runner::start_at_end(&kafka, &group, task.source_topic())?;
    }
    let consumer = eof.group_consumer(&group, &auto_offset_reset)?;
    let task_source = task.source_topic().to_string();
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
    let mut aggregate = crate::runner::spawn_persistent(
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
            let mut progress = windowed.then(SourceProgress::default);
            while !stop.load(Ordering::Relaxed) {
                let batch = match progress.as_mut() {
                    Some(progress) => poll_batch_with_ends(&consumer, &stop, progress),
                    None => poll_batch(&consumer, &stop),
                };
                if let (Some(p), Some(owned)) =
                    (progress.as_mut(), assigned(&consumer, task_source.as_str()))
                {
                    p.keep_assigned(&owned);
                }
                if batch.is_empty() {
                    let markers = progress
                        .as_mut()
                        .map(|p| p.markers(&topic, partitions, true))
                        .unwrap_or_default();
                    let sent = markers
                        .iter()
                        .try_for_each(|m| send(&producer, m))
                        .and_then(|_| flush(&producer));
                    if let Err(e) = sent {
                        tracing::warn!(query = %query_id, "progress markers not sent, retrying: {e}");
                        if let Some(p) = progress.as_mut() {
                            p.changed = true;
                        }
                    }
                    retry_commit(&consumer, &query_id);
                    continue;
                }
                let result = repartition_batch(
                    &stage,
                    &encoder,
                    &batch,
                    &topic,
                    partitions,
                    progress.as_mut(),
                )
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
                    // After the records they cover, in the same partitions: a marker never
                    // gets ahead of a record.
                    if let Some(p) = progress.as_mut() {
                        for m in p.markers(&topic, partitions, false) {
                            send(&producer, &m)?;
                        }
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
    fn the_close_time_waits_for_every_source_partition_and_never_goes_back() {
        let mut clock = StreamClock::default();
        clock.set_sources(3);
        // Source partition 0 runs ahead; 1 and 2 are not heard of yet: nothing closes, and a
        // record is late only by its own partition's time.
        let t = clock.record(0, 0, 500);
        assert_eq!((t.late, t.close), (500, i64::MIN));
        clock.record(0, 1, 100);
        assert_eq!(clock.close_time(0), i64::MIN);
        let t = clock.record(0, 2, 80);
        assert_eq!((t.late, t.close), (80, 80), "the slowest partition");
        // Each repartition partition has its own clock.
        assert_eq!(clock.close_time(1), i64::MIN);
        // Partition 2 is caught up: it no longer holds windows open.
        clock.marker(0, &[(2, 80, true)]);
        assert_eq!(clock.close_time(0), 100);
        // All caught up: the largest time.
        clock.marker(0, &[(0, 500, true), (1, 120, true)]);
        assert_eq!(clock.close_time(0), 500);
        // New data on partition 1 (older): the close time stays, the record is late by it.
        let t = clock.record(0, 1, 130);
        assert_eq!((t.late, t.close), (130, 500));
        // A marker for a partition never heard of counts too.
        clock.marker(1, &[(0, 10, false), (1, 20, false), (2, 5, false)]);
        assert_eq!(clock.close_time(1), 5);
        // The clock is state: each partition's comes back from its changelog entry.
        let changes = clock.take_changes();
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(clock.take_changes().is_empty(), "nothing new since");
        let mut restored = StreamClock::default();
        restored.set_sources(3);
        for (key, value) in &changes {
            assert!(key.starts_with(STREAM_CLOCK_KEY));
            restored.restore(key, value.as_deref()).expect("restores");
        }
        assert_eq!(restored.close_times(), vec![(0, 500), (1, 5)]);
        assert_eq!(restored.partitions, clock.partitions);
        // Only the partitions that moved are written again.
        clock.record(1, 0, 11);
        assert_eq!(clock.take_changes().len(), 1);
        let key = &changes[0].0;
        for bad in [&b"x"[..], b"1/x", b"1/2:3", b"1/2:3:7", &[0xff]] {
            assert!(restored.restore(key, Some(bad)).is_err(), "{bad:?}");
        }
        assert!(restored.restore(STREAM_CLOCK_KEY, Some(b"1")).is_err());
        restored.restore(key, None).expect("a delete");
        assert_eq!(restored.close_times(), vec![(1, 5)]);
    }

    #[test]
    fn progress_markers_go_to_every_partition_after_changes() {
        let mut progress = SourceProgress::default();
        assert!(progress.markers("t", 2, true).is_empty(), "nothing known");
        progress.polled(1);
        assert_eq!(progress.record(1, 50, true), 50);
        assert_eq!(progress.record(1, 40, true), 50, "the largest timestamp");
        // A row the aggregation does not take does not move the time.
        assert_eq!(progress.record(1, 90, false), 50);
        progress.caught_up(0);
        let markers = progress.markers("t", 2, false);
        assert_eq!(markers.len(), 2);
        for (i, m) in markers.iter().enumerate() {
            assert_eq!(m.partition, i as i32);
            assert_eq!(
                m.value.as_deref(),
                Some(&b"0:-9223372036854775808:1,1:50:0"[..])
            );
            assert!(m.headers.iter().any(|(k, _)| k == PROGRESS_HEADER));
        }
        // Nothing changed: no markers; a change within the interval waits while records flow,
        // and goes at once when the stage runs out of records.
        assert!(progress.markers("t", 2, true).is_empty());
        progress.record(1, 60, true);
        assert!(progress.markers("t", 2, false).is_empty());
        assert_eq!(progress.markers("t", 2, true).len(), 2);
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

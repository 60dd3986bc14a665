//! Running queries on Kafka: one thread per query, each a loop of poll → process → produce, and
//! every `commit.interval.ms` (ksqlDB's 2 s): flush → checkpoint state → commit.
//!
//! Committing per interval rather than per micro-batch is what Kafka Streams does: a hot key's
//! state is written to the changelog and the store once per interval, the record cache sends one
//! update per key per commit, and the thread does not wait for acknowledgements per batch.
//! Offsets are committed only after every output record before them has been acknowledged by the
//! broker (at-least-once). Bad records never stop a query: they are skipped, logged with
//! `tracing`, and written to the processing-log topic with their topic, partition and offset.

use crate::task::{OutputRow, ProcessingLogEntry, QueryTask};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use runnel_connect::kafka::Producer;
use runnel_connect::kafka::{commit, flush, record_of, send, GroupConsumer, KafkaConfig, Record};
use runnel_plan::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Records per micro-batch, and how long to wait for a batch to fill.
const MAX_BATCH: usize = 1000;
const LINGER: Duration = Duration::from_millis(20);

/// Counters of a running query, shown by DESCRIBE EXTENDED and EXPLAIN.
#[derive(Debug, Default)]
pub struct QueryStats {
    pub processed: AtomicU64,
    pub produced: AtomicU64,
    pub failed: AtomicU64,
    /// Input records covered by commits: their outputs (including the record cache's) and state
    /// are acknowledged by the broker and their offsets committed.
    pub committed: AtomicU64,
    /// Set when the query stopped on an error it cannot skip (e.g. undeliverable output).
    pub errored: AtomicBool,
}

/// A query thread and the flag that stops it.
pub struct Running {
    pub stop: Arc<AtomicBool>,
    pub thread: Option<JoinHandle<()>>,
    pub stats: Arc<QueryStats>,
}

impl Running {
    /// Asks the thread to stop and waits for its last batch to be flushed and committed.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls up to `MAX_BATCH` records, waiting at most `LINGER` after the first one.
pub(crate) fn poll_batch<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    stop: &AtomicBool,
) -> Vec<Record> {
    let mut batch = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(200);
    let mut linger_until: Option<Instant> = None;
    // Reading the clock per record costs as much as a small query's expression evaluation; every
    // 32 records keeps the linger and deadline within microseconds of exact.
    const CLOCK_EVERY: usize = 32;
    let mut now = Instant::now();
    let mut unclocked = 0;
    while batch.len() < MAX_BATCH && !stop.load(Ordering::Relaxed) {
        if unclocked >= CLOCK_EVERY {
            now = Instant::now();
            unclocked = 0;
        }
        let until = linger_until.unwrap_or(deadline);
        if now >= until {
            break;
        }
        match consumer.poll(until - now) {
            Some(Ok(m)) => {
                batch.push(record_of(&m));
                unclocked += 1;
                if linger_until.is_none() {
                    now = Instant::now();
                    linger_until = Some(now + LINGER);
                }
            }
            Some(Err(e)) => {
                tracing::warn!("consumer error: {e}");
                break;
            }
            None => break,
        }
    }
    batch
}

/// Writes processing-log entries to `tracing` and to the processing-log topic.
pub struct ProcessingLog {
    pub topic: String,
    pub query_id: String,
}

impl ProcessingLog {
    pub fn write(&self, producer: &Producer, entry: &ProcessingLogEntry) {
        tracing::warn!(
            query = %self.query_id,
            topic = %entry.topic,
            partition = entry.partition,
            offset = entry.offset,
            "record skipped: {}",
            entry.message
        );
        let value = serde_json::json!({
            "level": "ERROR",
            "logger": format!("processing.{}", self.query_id),
            "time": chrono::Utc::now().timestamp_millis(),
            "message": {
                "type": 0,
                "recordProcessingError": {
                    "errorMessage": entry.message,
                    "topic": entry.topic,
                    "partition": entry.partition,
                    "offset": entry.offset,
                },
            },
        });
        let record = Record {
            topic: self.topic.clone(),
            partition: -1,
            value: Some(value.to_string().into_bytes()),
            timestamp: chrono::Utc::now().timestamp_millis(),
            ..Default::default()
        };
        if let Err(e) = send(producer, &record) {
            tracing::error!(
                "cannot write to the processing log topic {}: {e}",
                self.topic
            );
        }
    }
}

pub use crate::state::Changelog;

/// Every record of every partition of `topic`, from the beginning up to the end of each
/// partition as the consumer first finds it (a pull query over a stream). The ends come from the
/// consumer's `PartitionEOF` events rather than from ListOffsets, which some brokers answer
/// wrongly; records a partition receives after its end was reached are not included.
pub fn read_to_end(kafka: &KafkaConfig, topic: &str) -> Result<Vec<Record>, crate::EngineError> {
    use rdkafka::error::KafkaError as RdKafkaError;
    use rdkafka::{Offset, TopicPartitionList};
    let Some(info) = kafka.topic(topic)? else {
        return Ok(vec![]);
    };
    let consumer = kafka.eof_consumer(&format!(
        "_runnel-pull-{}",
        chrono::Utc::now().timestamp_micros()
    ))?;
    let mut tpl = TopicPartitionList::new();
    let mut open: std::collections::BTreeSet<i32> = (0..info.partitions).collect();
    for p in 0..info.partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(runnel_connect::kafka::KafkaError::from)?;
    }
    consumer
        .assign(&tpl)
        .map_err(runnel_connect::kafka::KafkaError::from)?;
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !open.is_empty() && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let r = record_of(&m);
                if open.contains(&r.partition) {
                    out.push(r);
                }
            }
            Some(Err(RdKafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => tracing::warn!("pull query read of {topic}: {e}"),
            None => {}
        }
    }
    if !open.is_empty() {
        tracing::warn!(
            "pull query read of {topic}: partitions {open:?} did not reach their end in 30 s"
        );
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    Ok(out)
}

/// Starts a persistent query: reads `input` (the task's source topic, or the repartition topic
/// the aggregating stage of a repartitioned aggregation reads, see `crate::repartition`) in
/// consumer group `group` and writes the sink. Stateful queries (with a changelog) run a task
/// per input partition (see `crate::partitioned`).
pub fn spawn_persistent(
    task: Arc<QueryTask>,
    kafka: KafkaConfig,
    group: String,
    auto_offset_reset: String,
    log: ProcessingLog,
    changelog: Option<Changelog>,
    input: &str,
) -> Result<Running, crate::EngineError> {
    if let Some(changelog) = changelog {
        return crate::partitioned::spawn(
            task,
            kafka,
            group,
            auto_offset_reset,
            log,
            changelog,
            input,
        );
    }
    let consumer = kafka.group_consumer(&group, &auto_offset_reset)?;
    let producer = kafka.producer()?;
    if auto_offset_reset.eq_ignore_ascii_case("latest") {
        start_at_end(&kafka, &group, input)?;
    }
    consumer
        .subscribe(&[input])
        .map_err(runnel_connect::kafka::KafkaError::from)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(QueryStats::default());
    let (stop2, stats2) = (stop.clone(), stats.clone());
    let thread = std::thread::Builder::new()
        .name(format!("query-{}", log.query_id))
        .spawn(move || {
            task.hold_record_cache();
            // Processed since the last commit: the last offset of each (topic, partition).
            let mut progress: BTreeMap<(String, i32), i64> = BTreeMap::new();
            let mut uncommitted = 0u64;
            let mut last_commit = Instant::now();
            loop {
                let stopping = stop2.load(Ordering::Relaxed);
                let batch = if stopping {
                    vec![]
                } else {
                    poll_batch(&consumer, &stop2)
                };
                let mut result = Ok(());
                if !batch.is_empty() {
                    result = process_and_send(&task, &batch, &producer, &log, &stats2);
                    for r in &batch {
                        let e = progress
                            .entry((r.topic.clone(), r.partition))
                            .or_insert(r.offset);
                        *e = (*e).max(r.offset);
                    }
                    uncommitted += batch.len() as u64;
                }
                let due = stopping
                    || last_commit.elapsed() >= task.commit_interval
                    || (task.cache_max_bytes > 0 && task.held_bytes() >= task.cache_max_bytes);
                if result.is_ok() && due && !progress.is_empty() {
                    result = send_rows(&task, &task.flush_record_cache(), &producer, &log, &stats2)
                        .and_then(|_| flush(&producer).map_err(Into::into));
                    if result.is_ok() {
                        tracing::debug!(query = %log.query_id, partitions = progress.len(), "committed");
                        commit_offsets(&consumer, &progress, &log.query_id);
                        stats2.committed.fetch_add(uncommitted, Ordering::Release);
                        uncommitted = 0;
                        progress.clear();
                        last_commit = Instant::now();
                    }
                } else if batch.is_empty() {
                    retry_commit(&consumer, &log.query_id);
                }
                if let Err(e) = result {
                    // Going on would commit later offsets past this batch and lose it; like
                    // ksqlDB (ksql.fail.on.production.error=true) the query stops, and a restart
                    // re-reads the batch from the last commit (at-least-once).
                    tracing::error!(query = %log.query_id, "query failed, stopping; a restart resumes from the last commit: {e}");
                    stats2.errored.store(true, Ordering::SeqCst);
                    break;
                }
                if stopping {
                    break;
                }
            }
            let _ = flush(&producer);
            retry_commit(&consumer, &log.query_id);
            tracing::info!(query = %log.query_id, "query stopped");
        })
        .map_err(|e| crate::EngineError::Internal(e.to_string()))?;
    Ok(Running {
        stop,
        thread: Some(thread),
        stats,
    })
}

/// Commits the source offsets of processed records (their outputs are acknowledged). A commit
/// refused by a rebalancing group is logged and retried with the next one (see
/// `runnel_connect::kafka::GroupContext`): the records are done, so the query goes on.
pub(crate) fn commit_offsets(
    consumer: &GroupConsumer,
    processed: &BTreeMap<(String, i32), i64>,
    query_id: &str,
) {
    if let Err(e) = commit(consumer, processed) {
        tracing::warn!(query = %query_id, "source offsets not committed yet, retrying with the next commit: {e}");
    }
}

/// `commit_offsets` for one batch.
pub(crate) fn commit_batch(consumer: &GroupConsumer, batch: &[Record], query_id: &str) {
    let mut processed: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for r in batch {
        let e = processed
            .entry((r.topic.clone(), r.partition))
            .or_insert(r.offset);
        *e = (*e).max(r.offset);
    }
    commit_offsets(consumer, &processed, query_id);
}
/// Retries a refused commit while a query is idle (and when it stops).
pub(crate) fn retry_commit(consumer: &GroupConsumer, query_id: &str) {
    if let Err(e) = runnel_connect::kafka::commit_pending(consumer) {
        tracing::warn!(query = %query_id, "source offsets not committed yet, retrying with the next commit: {e}");
    }
}

/// Processes a batch and sends its output rows (not waiting for their acknowledgements: the
/// commit flushes the producer first).
pub(crate) fn process_and_send(
    task: &QueryTask,
    batch: &[Record],
    producer: &Producer,
    log: &ProcessingLog,
    stats: &QueryStats,
) -> Result<(), crate::EngineError> {
    let out = task.process(batch)?;
    stats
        .processed
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    stats
        .failed
        .fetch_add(out.errors.len() as u64, Ordering::Relaxed);
    for e in &out.errors {
        log.write(producer, e);
    }
    send_rows(task, &out.rows, producer, log, stats)
}

/// Encodes and sends output rows to the task's sink (if it has one: a query without a sink
/// only materializes its table, as CREATE SOURCE TABLE does).
pub(crate) fn send_rows(
    task: &QueryTask,
    rows: &[OutputRow],
    producer: &Producer,
    log: &ProcessingLog,
    stats: &QueryStats,
) -> Result<(), crate::EngineError> {
    if task.sink_topic().is_none() {
        return Ok(());
    }
    for row in rows {
        match task.encode(row) {
            Ok(record) => {
                send(producer, &record)?;
                stats.produced.fetch_add(1, Ordering::Relaxed);
            }
            Err(message) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                log.write(
                    producer,
                    &ProcessingLogEntry {
                        topic: task.source_topic().to_string(),
                        partition: row.partition,
                        offset: row.offset,
                        message,
                    },
                );
            }
        }
    }
    Ok(())
}

/// One row of a push query. A table's deleted key is a tombstone: ksqlDB sends it with the key
/// columns the query projects and every other column null (`{"row":{...,"tombstone":true}}`).
#[derive(Debug, Clone, PartialEq)]
pub struct PushRow {
    pub values: Vec<Value>,
    pub tombstone: bool,
}

/// What of a push query's output reaches its client. ksqlDB sends a table's tombstone only for a
/// key the query's result holds: a row its WHERE rejects (which deletes the key downstream of a
/// persistent query) or a deleted key sends nothing when the key never was in the result. Rows of
/// streams and of aggregations all go through.
#[derive(Debug, Default)]
pub struct PushResult {
    table: bool,
    /// The keys (and windows) in the result now.
    keys: std::collections::HashSet<ResultKey>,
}

/// A record key and the window of a row.
type ResultKey = (Option<Vec<u8>>, Option<(i64, i64)>);

impl PushResult {
    pub fn new(task: &QueryTask) -> Self {
        PushResult {
            table: task.source.kind == runnel_sql::SourceKind::Table && !task.is_stateful(),
            keys: Default::default(),
        }
    }

    /// Whether `row`, the output of a record with key `key`, is sent to the client.
    pub fn admit(&mut self, key: Option<&[u8]>, row: &OutputRow) -> bool {
        if !self.table {
            return true;
        }
        let id = (key.map(<[u8]>::to_vec), row.window);
        if row.null_value {
            self.keys.remove(&id)
        } else {
            self.keys.insert(id);
            true
        }
    }
}

/// A transient push query: rows arrive on `rows` until `limit` or until the receiver is dropped
/// or `stop` is set.
pub struct PushQuery {
    pub query_id: String,
    pub columns: Vec<(String, runnel_sql::SqlType)>,
    pub rows: Receiver<PushRow>,
    pub running: Running,
    pub limit: Option<u64>,
}

pub fn spawn_push(
    task: Arc<QueryTask>,
    kafka: KafkaConfig,
    group: String,
    auto_offset_reset: String,
    limit: Option<u64>,
    sender: SyncSender<PushRow>,
    query_id: String,
) -> Result<Running, crate::EngineError> {
    let consumer = kafka.consumer(&group, &auto_offset_reset)?;
    assign_push(&consumer, &kafka, task.source_topic(), &auto_offset_reset)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(QueryStats::default());
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("push-{query_id}"))
        .spawn(move || {
            let mut sent = 0u64;
            let mut result = PushResult::new(&task);
            while !stop2.load(Ordering::Relaxed) {
                let batch = poll_batch(&consumer, &stop2);
                if batch.is_empty() {
                    continue;
                }
                let keys: std::collections::HashMap<(i32, i64), Option<&[u8]>> = batch
                    .iter()
                    .map(|r| ((r.partition, r.offset), r.key.as_deref()))
                    .collect();
                let out = match task.process(&batch) {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::error!(query = %query_id, "push query failed: {e}");
                        return;
                    }
                };
                for e in &out.errors {
                    tracing::warn!(query = %query_id, topic = %e.topic, partition = e.partition, offset = e.offset, "record skipped: {}", e.message);
                }
                for row in out.rows {
                    let key = keys.get(&(row.partition, row.offset)).copied().flatten();
                    if !result.admit(key, &row) {
                        continue;
                    }
                    let row = PushRow {
                        values: row.values,
                        tombstone: row.null_value,
                    };
                    if sender.send(row).is_err() {
                        return;
                    }
                    sent += 1;
                    if limit.is_some_and(|l| sent >= l) {
                        return;
                    }
                }
            }
        })
        .map_err(|e| crate::EngineError::Internal(e.to_string()))?;
    Ok(Running {
        stop,
        thread: Some(thread),
        stats,
    })
}

/// With `auto.offset.reset=latest`, a new query starts at the end of its input as it is when
/// the query is created: the group's start is committed now, on every partition of `topic`
/// without a committed offset. Left to the subscription, "latest" would be resolved only once
/// the group has formed (seconds later), silently skipping what was written meanwhile.
pub(crate) fn start_at_end(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
) -> Result<(), crate::EngineError> {
    use rdkafka::consumer::CommitMode;
    use runnel_connect::kafka::KafkaError as ConnectError;
    let Some(info) = kafka.topic(topic)? else {
        return Ok(());
    };
    let consumer = kafka.consumer(group, "latest")?;
    let mut all = rdkafka::TopicPartitionList::new();
    for p in 0..info.partitions {
        all.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(all, Duration::from_secs(10))
        .map_err(ConnectError::from)?;
    let mut start = rdkafka::TopicPartitionList::new();
    for p in 0..info.partitions {
        let known = committed
            .find_partition(topic, p)
            .is_some_and(|e| matches!(e.offset(), rdkafka::Offset::Offset(_)));
        if !known {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map_err(ConnectError::from)?;
            start
                .add_partition_offset(topic, p, rdkafka::Offset::Offset(high))
                .map_err(ConnectError::from)?;
        }
    }
    if start.count() > 0 {
        consumer
            .commit(&start, CommitMode::Sync)
            .map_err(ConnectError::from)?;
    }
    Ok(())
}

/// Positions a push query's consumer on every partition of `topic` before the query is
/// reported as started: with `latest`, at each partition's end as the broker reports it now, so
/// every record written after the query started is delivered (a group subscription would only
/// resolve "latest" once the group has formed, missing what arrives meanwhile). A transient
/// query's group is its own, so it needs no group membership. A topic the broker does not know
/// (yet) is subscribed to instead.
fn assign_push(
    consumer: &BaseConsumer,
    kafka: &KafkaConfig,
    topic: &str,
    auto_offset_reset: &str,
) -> Result<(), crate::EngineError> {
    use runnel_connect::kafka::KafkaError as ConnectError;
    let Some(info) = kafka.topic(topic)? else {
        consumer.subscribe(&[topic]).map_err(ConnectError::from)?;
        return Ok(());
    };
    let latest = auto_offset_reset.eq_ignore_ascii_case("latest");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..info.partitions {
        let offset = if latest {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map_err(ConnectError::from)?;
            rdkafka::Offset::Offset(high)
        } else {
            rdkafka::Offset::Beginning
        };
        tpl.add_partition_offset(topic, p, offset)
            .map_err(ConnectError::from)?;
    }
    consumer.assign(&tpl).map_err(ConnectError::from)?;
    Ok(())
}

/// `PRINT topic`: raw records as they arrive, formatted as ksqlDB prints them.
pub fn spawn_print(
    kafka: KafkaConfig,
    topic: String,
    from_beginning: bool,
    limit: Option<u64>,
    sender: SyncSender<String>,
) -> Result<Running, crate::EngineError> {
    let group = format!(
        "_runnel-print-{}-{}",
        topic,
        chrono::Utc::now().timestamp_millis()
    );
    let consumer = kafka.consumer(&group, if from_beginning { "earliest" } else { "latest" })?;
    consumer
        .subscribe(&[topic.as_str()])
        .map_err(runnel_connect::kafka::KafkaError::from)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("print-{topic}"))
        .spawn(move || {
            let mut sent = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                for r in poll_batch(&consumer, &stop2) {
                    if sender.send(print_line(&r)).is_err() {
                        return;
                    }
                    sent += 1;
                    if limit.is_some_and(|l| sent >= l) {
                        return;
                    }
                }
            }
        })
        .map_err(|e| crate::EngineError::Internal(e.to_string()))?;
    Ok(Running {
        stop,
        thread: Some(thread),
        stats: Arc::new(QueryStats::default()),
    })
}

fn printable(bytes: &Option<Vec<u8>>) -> String {
    match bytes {
        None => "<null>".to_string(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => b.iter().map(|x| format!("{x:02x}")).collect(),
        },
    }
}

/// One record as `PRINT` shows it.
pub fn print_line(r: &Record) -> String {
    let time = chrono::DateTime::from_timestamp_millis(r.timestamp)
        .map(|t| t.format("%Y/%m/%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| r.timestamp.to_string());
    format!(
        "rowtime: {time} Z, key: {}, value: {}, partition: {}",
        printable(&r.key),
        printable(&r.value),
        r.partition
    )
}

//! Stateful queries on Kafka: Kafka Streams' task model.
//!
//! A stateful stage (an aggregation, or the aggregate stage of a repartitioned one) reads its
//! input in the query's consumer group, so servers that share a service id split its partitions
//! between them, and each input partition is a *task* with its own state:
//!
//! * **One state per partition.** Every group lives on exactly one input partition (the input is
//!   keyed by the group: the source's key, or the repartition topic's), so a partition's task
//!   holds all of its groups' state and its own stream time, as a Kafka Streams task does.
//! * **One changelog partition per task.** Input partition `p`'s state changes and checkpoints
//!   go to changelog partition `p` and its local RocksDB store to `<state dir>/<p>`, so a task
//!   restores, and moves to another server, without touching the others' state. The changelog
//!   has as many partitions as the input (a changelog with another count is refused: its state
//!   cannot be split by partition).
//! * **Restore on assignment, commit on revocation.** When the group assigns partitions, their
//!   tasks are restored (local store plus changelog tail, or the whole changelog partition; see
//!   `crate::state`) inside the rebalance, and each partition starts at the input offset its
//!   checkpoint holds. When partitions are revoked, their tasks commit (record cache out,
//!   changelog, local store, source offsets) before the rebalance goes on, so the next owner
//!   restores exactly what this one has written, and never sees a second writer.
//! * **Records already in the state are skipped.** A task knows the next input offset its state
//!   covers; a record before it (fetched again after a revoked-and-reassigned partition, or
//!   after a commit refused by a rebalancing group) is not aggregated twice.
//!
//! Each task has its own record cache and output rows; the query's thread processes every task
//! it owns, a run of records of one partition at a time (librdkafka hands out a partition's
//! fetched records together, so runs are long when there is a backlog). The in-memory driver
//! (`runnel test`) runs one task over the single-partition QTT topics, which is the same thing.

use crate::runner::{
    commit_offsets, poll_batch, process_and_send, retry_commit, send_rows, ProcessingLog,
    QueryStats, Running,
};
use crate::state::{Changelog, LocalStore};
use crate::task::QueryTask;
use crate::EngineError;
use rdkafka::consumer::Consumer;
use runnel_connect::kafka::{
    delivered_offset, flush, send, GroupConsumer, KafkaConfig, PartitionListener, Producer, Record,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The task of one input partition.
struct PartitionTask {
    task: QueryTask,
    store: Option<LocalStore>,
    /// The next input offset the state does not cover yet (None: no checkpoint and nothing
    /// processed yet).
    next: Option<i64>,
    /// Whether records were processed since the last commit.
    dirty: bool,
    uncommitted: u64,
}

/// The tasks a query's thread owns, shared with the consumer's rebalance callbacks (which run
/// on the same thread, inside `poll`).
struct Tasks {
    template: Arc<QueryTask>,
    kafka: KafkaConfig,
    producer: Producer,
    changelog: Changelog,
    input: String,
    /// The input is a repartition topic (see `crate::repartition`).
    repartitioned: bool,
    /// Partitions without a checkpoint start at the group's committed offset (which
    /// `start_at_end` set), not at the beginning.
    latest: bool,
    log: ProcessingLog,
    stats: Arc<QueryStats>,
    owned: BTreeMap<i32, PartitionTask>,
    /// An error met inside a rebalance callback: the query stops on it.
    failed: Option<EngineError>,
    /// Set to stop the query (a restore in progress gives up on it).
    stop: Arc<AtomicBool>,
    /// Assignments that gave this server tasks so far (the first one's table rows were read
    /// when the query started).
    assignments: u64,
    /// Records polled and runs of one partition processed since the last commit (how much a
    /// task processes at once).
    polled: u64,
    runs: u64,
}

impl Tasks {
    /// Creates and restores the tasks of newly assigned partitions; returns where each starts.
    fn open(&mut self, partitions: &[i32]) -> Result<BTreeMap<i32, rdkafka::Offset>, EngineError> {
        let mut fresh = Vec::new();
        for &p in partitions {
            if !self.owned.contains_key(&p) {
                let task = self.template.for_partition()?;
                task.hold_record_cache();
                fresh.push((p, task));
            }
        }
        let fresh_partitions: Vec<i32> = fresh.iter().map(|(p, _)| *p).collect();
        let refs: Vec<(i32, &QueryTask)> = fresh.iter().map(|(p, t)| (*p, t)).collect();
        let mut restored = crate::state::restore(
            &refs,
            &self.kafka,
            &self.producer,
            &self.changelog,
            &self.stop,
        )?;
        let mut starts = BTreeMap::new();
        for (p, task) in fresh {
            let r = restored
                .remove(&p)
                .ok_or_else(|| EngineError::Internal(format!("partition {p} not restored")))?;
            let start = match r.next {
                Some(next) => rdkafka::Offset::Offset(next),
                None if self.latest => rdkafka::Offset::Invalid,
                // Without a checkpoint there is no state for any committed position.
                None => rdkafka::Offset::Beginning,
            };
            starts.insert(p, start);
            self.template.set_partition_store(p, task.state_store());
            self.owned.insert(
                p,
                PartitionTask {
                    task,
                    store: r.store,
                    next: r.next,
                    dirty: false,
                    uncommitted: 0,
                },
            );
        }
        // Pull queries read the table's rows from this server's copy, which has the rows of
        // the tasks it ran up to date and the others' as of when it last read the table's
        // topic: after taking tasks over, read the topic again (the previous owner flushed its
        // outputs before letting go, or a dead one's committed outputs are all there).
        // (An incremental rebalance may assign nothing new: that is not a take-over.)
        if !fresh_partitions.is_empty() {
            if self.assignments > 0 {
                if let (Some(m), Some(sink)) =
                    (self.template.materialization(), self.template.sink_source())
                {
                    crate::materialized::bootstrap_from_topic(m, sink, &self.kafka)?;
                }
            }
            self.assignments += 1;
        }
        // A restore may load whole stores: keep only what the bound allows.
        let share = self.memory_share();
        for t in self.owned.values() {
            if let Some(store) = &t.store {
                store.evict(&t.task, share)?;
            }
        }
        tracing::info!(query = %self.log.query_id, ?partitions, "tasks assigned");
        Ok(starts)
    }

    /// Each task's part of `runnel.state.memory.max.bytes`.
    fn memory_share(&self) -> usize {
        self.template.state_memory / self.owned.len().max(1)
    }

    /// Closes the tasks of `partitions` (their stores close, so another query can open them).
    fn close(&mut self, partitions: &[i32]) {
        for p in partitions {
            if let Some(t) = self.owned.remove(p) {
                self.template.set_partition_store(*p, None);
                t.task.set_state_store(None);
            }
        }
    }

    /// Processes a polled batch, a run of records of one partition at a time.
    fn process(&mut self, mut batch: Vec<Record>) -> Result<(), EngineError> {
        self.polled += batch.len() as u64;
        let mut start = 0;
        while start < batch.len() {
            let p = batch[start].partition;
            let end = start
                + batch[start..]
                    .iter()
                    .take_while(|r| r.partition == p)
                    .count();
            self.process_run(p, &mut batch[start..end])?;
            self.runs += 1;
            start = end;
        }
        Ok(())
    }

    fn process_run(&mut self, partition: i32, run: &mut [Record]) -> Result<(), EngineError> {
        // Records of a partition this server no longer owns are its new owner's.
        let Some(t) = self.owned.get_mut(&partition) else {
            return Ok(());
        };
        // Records the state already covers are skipped (offsets only go forward in a run unless
        // the partition was revoked and assigned again while the batch was polled).
        let mut expect = t.next;
        let in_order = run.iter().all(|r| {
            let ok = expect.is_none_or(|n| r.offset >= n);
            expect = Some(r.offset + 1);
            ok
        });
        let mut filtered;
        let run: &mut [Record] = if in_order {
            run
        } else {
            let mut next = t.next;
            filtered = Vec::with_capacity(run.len());
            for r in run.iter_mut() {
                if next.is_none_or(|n| r.offset >= n) {
                    next = Some(r.offset + 1);
                    filtered.push(std::mem::take(r));
                }
            }
            &mut filtered
        };
        let Some(last) = run.last().map(|r| r.offset) else {
            return Ok(());
        };
        if self.repartitioned {
            // The aggregate stage processes the records it has not aggregated yet (see
            // `crate::repartition`); the checkpoint still covers the whole run.
            let fresh = crate::repartition::prepare(&t.task, run)?;
            process_and_send(&t.task, &fresh, &self.producer, &self.log, &self.stats)?;
        } else {
            process_and_send(&t.task, run, &self.producer, &self.log, &self.stats)?;
        }
        t.next = Some(last + 1);
        t.dirty = true;
        t.uncommitted += run.len() as u64;
        Ok(())
    }

    fn has_progress(&self) -> bool {
        self.owned.values().any(|t| t.dirty)
    }

    fn held_bytes(&self) -> usize {
        self.owned.values().map(|t| t.task.held_bytes()).sum()
    }

    /// Commits the tasks of `only` (all when None) that processed records since their last
    /// commit: their record caches' rows, then their state changes and checkpoints to their
    /// changelog partitions, all acknowledged, then their local stores, then the input offsets.
    fn commit(
        &mut self,
        consumer: &GroupConsumer,
        only: Option<&[i32]>,
    ) -> Result<(), EngineError> {
        let chosen: Vec<i32> = self
            .owned
            .iter()
            .filter(|(p, t)| t.dirty && only.is_none_or(|o| o.contains(p)))
            .map(|(p, _)| *p)
            .collect();
        if chosen.is_empty() {
            return Ok(());
        }
        for p in &chosen {
            let t = &self.owned[p];
            let rows = t.task.flush_record_cache();
            send_rows(&t.task, &rows, &self.producer, &self.log, &self.stats)?;
        }
        flush(&self.producer)?;
        let mut changes = BTreeMap::new();
        for p in &chosen {
            let t = &self.owned[p];
            let next = t.next.unwrap_or(0);
            let c = t.task.take_state_changes().map_err(EngineError::Internal)?;
            for (key, value) in &c {
                let r = Record {
                    topic: self.changelog.topic.clone(),
                    partition: *p,
                    key: Some(key.clone()),
                    value: value.clone(),
                    ..Default::default()
                };
                send(&self.producer, &r)?;
            }
            send(
                &self.producer,
                &crate::state::checkpoint_record(&self.changelog.topic, *p, next),
            )?;
            changes.insert(*p, c);
        }
        flush(&self.producer)?;
        let share = self.memory_share();
        let mut processed = BTreeMap::new();
        let mut uncommitted = 0;
        for (p, c) in changes {
            let Some(t) = self.owned.get_mut(&p) else {
                continue;
            };
            let next = t.next.unwrap_or(0);
            if let Some(store) = t.store.as_mut() {
                let offset = delivered_offset(&self.producer, &self.changelog.topic, p)
                    .ok_or_else(|| {
                        EngineError::Internal(format!(
                            "the broker did not report the offset of the checkpoint in {}/{p}",
                            self.changelog.topic
                        ))
                    })?;
                store.commit(&t.task, &c, offset + 1, next)?;
                store.evict(&t.task, share)?;
            }
            processed.insert((self.input.clone(), p), next - 1);
            uncommitted += t.uncommitted;
            t.uncommitted = 0;
            t.dirty = false;
        }
        tracing::debug!(
            query = %self.log.query_id,
            partitions = processed.len(),
            records_per_run = self.polled / self.runs.max(1),
            "committed"
        );
        (self.polled, self.runs) = (0, 0);
        commit_offsets(consumer, &processed, &self.log.query_id);
        self.stats
            .committed
            .fetch_add(uncommitted, Ordering::Release);
        Ok(())
    }
}

/// The rebalance side of a stateful query (see the module docs).
struct Listener(Arc<Mutex<Tasks>>);

impl Listener {
    fn ours(tasks: &Tasks, partitions: &[(String, i32)]) -> Vec<i32> {
        partitions
            .iter()
            .filter(|(topic, _)| *topic == tasks.input)
            .map(|(_, p)| *p)
            .collect()
    }
}

impl PartitionListener for Listener {
    fn assigned(&self, partitions: &[(String, i32)]) -> BTreeMap<(String, i32), rdkafka::Offset> {
        let Ok(mut tasks) = self.0.lock() else {
            return BTreeMap::new();
        };
        let ours = Self::ours(&tasks, partitions);
        match tasks.open(&ours) {
            Ok(starts) => starts
                .into_iter()
                .map(|(p, o)| ((tasks.input.clone(), p), o))
                .collect(),
            Err(e) => {
                tasks.failed.get_or_insert(e);
                BTreeMap::new()
            }
        }
    }

    fn revoked(&self, consumer: &GroupConsumer, partitions: &[(String, i32)]) {
        let Ok(mut tasks) = self.0.lock() else {
            return;
        };
        let ours = Self::ours(&tasks, partitions);
        if tasks.failed.is_none() {
            if let Err(e) = tasks.commit(consumer, Some(&ours)) {
                tasks.failed = Some(e);
            }
        }
        tasks.close(&ours);
        tracing::info!(query = %tasks.log.query_id, partitions = ?ours, "tasks revoked");
    }
}

/// Starts a stateful query reading `input` (the task's source, or the repartition topic of a
/// repartitioned aggregation) in consumer group `group`.
pub(crate) fn spawn(
    template: Arc<QueryTask>,
    kafka: KafkaConfig,
    group: String,
    auto_offset_reset: String,
    log: ProcessingLog,
    changelog: Changelog,
    input: &str,
) -> Result<Running, EngineError> {
    let partitions = kafka.topic(input)?.map(|t| t.partitions).unwrap_or(1);
    // Compacted, as Kafka Streams' changelogs are: the latest value of every state key stays
    // (a delete policy would drop groups not updated within the retention time).
    kafka.create_topic_with(
        &changelog.topic,
        partitions,
        1,
        &[("cleanup.policy", "compact")],
    )?;
    let changelog_partitions = kafka
        .topic(&changelog.topic)?
        .map(|t| t.partitions)
        .unwrap_or(partitions);
    if changelog_partitions != partitions {
        return Err(EngineError::statement(format!(
            "the state changelog topic {} has {changelog_partitions} partitions but the query's \
             input {input} has {partitions}: a task's state lives in the changelog partition of \
             its input partition, so this state cannot be used (it was written before the input \
             changed its partitions, or by an older Runnel). Terminate the query, delete the \
             changelog topic and create the query again.",
            changelog.topic
        )));
    }
    let latest = auto_offset_reset.eq_ignore_ascii_case("latest");
    if latest {
        crate::runner::start_at_end(&kafka, &group, input)?;
    }
    let consumer = kafka.group_consumer(&group, &auto_offset_reset)?;
    let query_id = log.query_id.clone();
    let stats = Arc::new(QueryStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = Arc::new(Mutex::new(Tasks {
        repartitioned: input != template.source_topic(),
        template: template.clone(),
        producer: kafka.producer()?,
        kafka,
        changelog,
        input: input.to_string(),
        latest,
        log,
        stats: stats.clone(),
        owned: BTreeMap::new(),
        failed: None,
        stop: stop.clone(),
        assignments: 0,
        polled: 0,
        runs: 0,
    }));
    consumer.context().listen(Arc::new(Listener(tasks.clone())));
    consumer
        .subscribe(&[input])
        .map_err(runnel_connect::kafka::KafkaError::from)?;
    let (stop2, stats2) = (stop.clone(), stats.clone());
    let thread = std::thread::Builder::new()
        .name(format!("query-{query_id}"))
        .spawn(move || {
            run(&consumer, &tasks, &template, &stop2, &stats2, &query_id);
            // The consumer leaves the group when dropped; its revoke callback finds no tasks.
            drop(consumer);
            tracing::info!(query = %query_id, "query stopped");
        })
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    Ok(Running {
        stop,
        thread: Some(thread),
        stats,
    })
}

/// The query's loop: poll (rebalances happen in there), process, and commit every commit
/// interval (or when the record cache is full), until stopped or failed.
fn run(
    consumer: &GroupConsumer,
    tasks: &Mutex<Tasks>,
    template: &QueryTask,
    stop: &AtomicBool,
    stats: &QueryStats,
    query_id: &str,
) {
    let mut last_commit = Instant::now();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let batch = if stopping {
            vec![]
        } else {
            poll_batch(consumer, stop)
        };
        let Ok(mut t) = tasks.lock() else {
            break;
        };
        let polled = !batch.is_empty();
        let mut result = match t.failed.take() {
            // A restore the stop interrupted is not a failure.
            Some(e) if stopping => {
                tracing::info!(query = %query_id, "{e}");
                Ok(())
            }
            Some(e) => Err(e),
            None => t.process(batch),
        };
        let due = stopping
            || last_commit.elapsed() >= template.commit_interval
            || (template.cache_max_bytes > 0 && t.held_bytes() >= template.cache_max_bytes);
        if result.is_ok() && due && t.has_progress() {
            result = t.commit(consumer, None);
            if result.is_ok() {
                last_commit = Instant::now();
            }
        } else if !polled {
            retry_commit(consumer, query_id);
        }
        if let Err(e) = result {
            // Going on would commit later offsets past this batch and lose it; like ksqlDB
            // (ksql.fail.on.production.error=true) the query stops, and a restart re-reads the
            // batch from the last commit (at-least-once).
            tracing::error!(query = %query_id, "query failed, stopping; a restart resumes from the last commit: {e}");
            stats.errored.store(true, Ordering::SeqCst);
            let all: Vec<i32> = t.owned.keys().copied().collect();
            t.close(&all);
            break;
        }
        if stopping {
            let _ = flush(&t.producer);
            let all: Vec<i32> = t.owned.keys().copied().collect();
            t.close(&all);
            break;
        }
    }
    retry_commit(consumer, query_id);
}

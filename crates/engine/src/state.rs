//! Durable state of a stateful query: the Kafka changelog topic (the source of truth) and the
//! local RocksDB store (`runnel-state`) that makes restarts fast.
//!
//! **Changelog.** Every batch's state changes go to the changelog topic, closed by a checkpoint
//! record holding the next input offsets. Only the changes of batches closed by a checkpoint are
//! state: the records of a batch whose checkpoint never made it (the engine died in between)
//! are discarded on restore.
//!
//! **Restore without timeouts.** A starting query first writes a *restore marker* record to the
//! changelog and reads up to it: the marker's offset is where the changelog ended when the query
//! started, and reading to it needs no high watermark (some brokers report those wrong) and no
//! "quiet for a while" guess. The marker also closes any unfinished batch before it, so the
//! records of a batch that died half-written can never be completed by a later checkpoint.
//!
//! **Local store.** After each commit's changelog records are acknowledged, the same changes
//! and a store checkpoint (the changelog offset after the batch's checkpoint record, plus the
//! input offsets) are written to the store in one atomic batch. On start the store is trusted
//! when the changelog still holds, at the store's checkpoint offset, the checkpoint record it
//! remembers; then only the changelog tail after it is replayed. A missing, corrupt or
//! inconsistent store (checkpoint ahead of the changelog, a recreated topic, state that does not
//! decode) is wiped and rebuilt from the whole changelog.

use crate::task::{QueryTask, StateChanges};
use crate::EngineError;
use rdkafka::consumer::Consumer;
use runnel_connect::kafka::{delivered_offset, flush, record_of, send, KafkaConfig, Producer};
use runnel_connect::kafka::{KafkaError, Record};
use runnel_runtime::aggregate::AggregateOperator;
use runnel_state::{Batch, Checkpoint, Opened, StateError, StateStore};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Key of the checkpoint records in a changelog topic. State keys never start with a zero byte
/// followed by this text.
pub const CHECKPOINT_KEY: &[u8] = b"\x00runnel-checkpoint";
/// Key of the restore markers a starting query writes to its changelog.
pub const RESTORE_MARKER_KEY: &[u8] = b"\x00runnel-restore";
/// A restore that receives nothing for this long fails (the broker is gone), instead of hanging.
const STALL: Duration = Duration::from_secs(120);
/// Retention range-deletes are written at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// Where a stateful query keeps its state durable. As in Kafka Streams, the query's state is
/// split into one task per input partition: input partition `p`'s state lives in changelog
/// partition `p` and in the local store `<state_dir>/<p>`, so each task moves between servers
/// (and restores) on its own.
pub struct Changelog {
    pub topic: String,
    /// Directory of the query's local RocksDB stores (`None`: state is rebuilt from the
    /// changelog alone).
    pub state_dir: Option<PathBuf>,
}

impl Changelog {
    /// The local store directory of input partition `partition`'s task.
    pub fn store_dir(&self, partition: i32) -> Option<PathBuf> {
        self.state_dir
            .as_ref()
            .map(|d| d.join(partition.to_string()))
    }
}

fn state_error(e: StateError) -> EngineError {
    match e {
        StateError::Locked { .. } => EngineError::statement(e.to_string()),
        e => EngineError::Internal(e.to_string()),
    }
}

/// A query's open local store and its retention bookkeeping.
pub struct LocalStore {
    store: Arc<StateStore>,
    /// The input (and changelog) partition whose state the store holds.
    partition: i32,
    pruned_to: i64,
    pruned_at: Option<Instant>,
}

impl LocalStore {
    /// A restored store, registered with its task for readers.
    fn new(task: &QueryTask, store: StateStore, partition: i32) -> Self {
        let store = Arc::new(store);
        task.set_state_store(Some(store.clone()));
        LocalStore {
            store,
            partition,
            pruned_to: i64::MIN,
            pruned_at: None,
        }
    }

    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// Writes a committed batch's changes, retention deletes and checkpoint. `changelog_next`
    /// is the changelog offset after the batch's (acknowledged) checkpoint record, `next_input`
    /// the next input offset of the task's partition.
    pub fn commit(
        &mut self,
        task: &QueryTask,
        changes: &StateChanges,
        changelog_next: i64,
        next_input: i64,
    ) -> Result<(), EngineError> {
        let mut batch = Batch::new();
        for (key, value) in changes {
            put(&mut batch, key, value.as_deref());
        }
        if let Some(horizon) = task.state_retention_horizon() {
            if horizon > self.pruned_to && self.pruned_at.is_none_or(|t| t.elapsed() > PRUNE_EVERY)
            {
                batch.delete_windows_before(AggregateOperator::STORE_KIND_STATE, horizon);
                self.pruned_to = horizon;
                self.pruned_at = Some(Instant::now());
            }
        }
        let checkpoint = Checkpoint {
            changelog: BTreeMap::from([(self.partition, changelog_next)]),
            inputs: BTreeMap::from([(self.partition, next_input)]),
        };
        self.store.commit(batch, &checkpoint).map_err(state_error)
    }

    /// Bounds the aggregation's in-memory state (`runnel.state.memory.max.bytes`) now that the
    /// store holds every committed group. Once groups have left memory the store is read by
    /// key, so its memtable is flushed at each commit (as Kafka Streams flushes its stores on
    /// commit): a point read then finds an empty memtable and the table files.
    /// `max_bytes` narrows the task's own bound (the query's bound shared by its tasks).
    pub fn evict(&self, task: &QueryTask, max_bytes: usize) -> Result<(), EngineError> {
        let (dropped, reads) = task.evict_state(max_bytes);
        if dropped > 0 {
            tracing::debug!(
                dropped,
                "aggregate groups dropped from memory (kept in the store)"
            );
        }
        if reads {
            self.store.flush().map_err(state_error)?;
        }
        Ok(())
    }
}

fn put(batch: &mut Batch, key: &[u8], value: Option<&[u8]>) {
    let (kind, start) = AggregateOperator::store_key_parts(key);
    match value {
        Some(v) => batch.put(kind, start, key, v),
        None => batch.delete(kind, start, key),
    }
}

/// The input offsets a checkpoint record holds.
fn checkpoint_offsets(r: &Record) -> BTreeMap<i32, i64> {
    let text = r
        .value
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let mut offsets = BTreeMap::new();
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&text) {
        for (p, o) in map {
            if let (Ok(p), Some(o)) = (p.parse::<i32>(), o.as_i64()) {
                offsets.insert(p, o);
            }
        }
    }
    offsets
}

/// The checkpoint record closing a batch of input partition `partition`'s task, whose next
/// input offset is `next_input` (written to the task's changelog partition).
pub fn checkpoint_record(topic: &str, partition: i32, next_input: i64) -> Record {
    checkpoint_record_of(topic, partition, &BTreeMap::from([(partition, next_input)]))
}

fn checkpoint_record_of(topic: &str, partition: i32, inputs: &BTreeMap<i32, i64>) -> Record {
    let marker: serde_json::Map<String, serde_json::Value> = inputs
        .iter()
        .map(|(p, o)| (p.to_string(), serde_json::Value::from(*o)))
        .collect();
    let marker = serde_json::Value::Object(marker);
    Record {
        topic: topic.to_string(),
        partition,
        key: Some(CHECKPOINT_KEY.to_vec()),
        value: Some(marker.to_string().into_bytes()),
        ..Default::default()
    }
}

/// Writes a restore marker to each of `partitions` and returns their offsets: the ends of the
/// changelog partitions to restore.
fn write_markers(
    producer: &Producer,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, EngineError> {
    let id = format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    for &partition in partitions {
        let r = Record {
            topic: topic.to_string(),
            partition,
            key: Some(RESTORE_MARKER_KEY.to_vec()),
            value: Some(id.clone().into_bytes()),
            timestamp: chrono::Utc::now().timestamp_millis(),
            ..Default::default()
        };
        send(producer, &r)?;
    }
    flush(producer)?;
    partitions
        .iter()
        .map(|&p| {
            delivered_offset(producer, topic, p)
                .map(|end| (p, end))
                .ok_or_else(|| {
                    EngineError::Internal(format!(
                        "the broker did not report the offset of the restore marker in {topic}/{p}"
                    ))
                })
        })
        .collect()
}

/// Reads changelog partitions, each from its start (None: the beginning) up to, not including,
/// its end, with one consumer, handing each record to `apply`.
fn read_until(
    kafka: &KafkaConfig,
    topic: &str,
    ranges: &BTreeMap<i32, (Option<i64>, i64)>,
    stop: &AtomicBool,
    mut apply: impl FnMut(Record) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let mut open: BTreeMap<i32, i64> = ranges
        .iter()
        .filter(|(_, (from, end))| *end > 0 && from.is_none_or(|f| f < *end))
        .map(|(p, (_, end))| (*p, *end))
        .collect();
    if open.is_empty() {
        return Ok(());
    }
    let consumer = kafka.consumer(
        &format!("_runnel-restore-{}", chrono::Utc::now().timestamp_micros()),
        "earliest",
    )?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in open.keys() {
        let offset = ranges[p]
            .0
            .map_or(rdkafka::Offset::Beginning, rdkafka::Offset::Offset);
        tpl.add_partition_offset(topic, *p, offset)
            .map_err(KafkaError::from)?;
    }
    consumer.assign(&tpl).map_err(KafkaError::from)?;
    let mut last_progress = Instant::now();
    while !open.is_empty() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let r = record_of(&m);
                let Some(&end) = open.get(&r.partition) else {
                    continue;
                };
                last_progress = Instant::now();
                if r.offset + 1 >= end {
                    open.remove(&r.partition);
                }
                if r.offset < end {
                    apply(r)?;
                }
            }
            Some(Err(e)) => tracing::warn!("restore of {topic}: {e}"),
            None => {}
        }
        if stop.load(Ordering::Relaxed) {
            return Err(EngineError::Internal(format!(
                "restoring {topic}: the query was stopped"
            )));
        }
        if last_progress.elapsed() > STALL {
            return Err(EngineError::Internal(format!(
                "restoring {topic}: nothing received for {} s before reaching the offsets {open:?}",
                STALL.as_secs()
            )));
        }
    }
    Ok(())
}

/// Applies one changelog partition's records in order: a batch's changes count once its
/// checkpoint record is read, a restore marker discards an unfinished batch.
struct Replay<'a> {
    task: &'a QueryTask,
    pending: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Changes applied, for the local store (store key order does not matter: last one wins).
    applied: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    inputs: Option<BTreeMap<i32, i64>>,
    /// Offset of the last checkpoint record applied.
    last_checkpoint: Option<i64>,
    /// Keys written by batches that never got their checkpoint (see `repair`).
    aborted: std::collections::BTreeSet<Vec<u8>>,
    discarded: usize,
    count: usize,
}

impl<'a> Replay<'a> {
    fn new(task: &'a QueryTask) -> Self {
        Replay {
            task,
            pending: Vec::new(),
            applied: BTreeMap::new(),
            inputs: None,
            last_checkpoint: None,
            aborted: Default::default(),
            discarded: 0,
            count: 0,
        }
    }

    fn apply(&mut self, r: Record) -> Result<(), EngineError> {
        let Some(key) = r.key.as_deref() else {
            return Ok(());
        };
        if key == CHECKPOINT_KEY {
            for (k, v) in self.pending.drain(..) {
                // A committed record after an unfinished batch's one shadows it for good.
                if !self.aborted.is_empty() {
                    self.aborted.remove(&k);
                }
                self.task
                    .restore_state(&k, v.as_deref())
                    .map_err(EngineError::Internal)?;
                self.applied.insert(k, v);
                self.count += 1;
            }
            self.inputs = Some(checkpoint_offsets(&r));
            self.last_checkpoint = Some(r.offset);
        } else if key == RESTORE_MARKER_KEY {
            self.discarded += self.pending.len();
            self.aborted
                .extend(self.pending.drain(..).map(|(key, _)| key));
        } else {
            self.pending.push((key.to_vec(), r.value));
        }
        Ok(())
    }

    /// Writes what was applied to the store, with a checkpoint after the last checkpoint record.
    fn save(&self, store: &StateStore, partition: i32) -> Result<(), EngineError> {
        let (Some(inputs), Some(offset)) = (&self.inputs, self.last_checkpoint) else {
            return Ok(());
        };
        let mut batch = Batch::new();
        for (k, v) in &self.applied {
            put(&mut batch, k, v.as_deref());
        }
        let checkpoint = Checkpoint {
            changelog: BTreeMap::from([(partition, offset + 1)]),
            inputs: inputs.clone(),
        };
        store.commit(batch, &checkpoint).map_err(state_error)
    }
}

/// What a restore found for one task.
pub struct Restored {
    /// The input offset to resume from (None: no checkpoint, start over).
    pub next: Option<i64>,
    pub store: Option<LocalStore>,
}

/// One task's restore in progress.
struct Restoring<'a> {
    task: &'a QueryTask,
    store: Option<StateStore>,
    replay: Replay<'a>,
    /// Reading from the local store's checkpoint: the changelog must still hold, at this
    /// offset, the checkpoint record with these input offsets (`None` once verified).
    verify: Option<(i64, BTreeMap<i32, i64>)>,
    /// The local store's input offsets (the resume point when the tail adds no checkpoint).
    store_inputs: Option<BTreeMap<i32, i64>>,
    /// Why the local store could not be trusted, once found while reading.
    rejected: Option<String>,
}

/// Rebuilds the state of the tasks of changelog partitions `tasks` (partition, task with empty
/// state): each from its local store and its changelog partition's tail, or from its whole
/// changelog partition when the store is missing or cannot be trusted. All partitions are read
/// by one consumer. Setting `stop` (the query is being stopped) ends it with an error.
pub fn restore(
    tasks: &[(i32, &QueryTask)],
    kafka: &KafkaConfig,
    producer: &Producer,
    changelog: &Changelog,
    stop: &AtomicBool,
) -> Result<BTreeMap<i32, Restored>, EngineError> {
    let started = Instant::now();
    let partitions: Vec<i32> = tasks.iter().map(|(p, _)| *p).collect();
    let ends = write_markers(producer, &changelog.topic, &partitions)?;
    let mut restoring: BTreeMap<i32, Restoring> = BTreeMap::new();
    let mut ranges: BTreeMap<i32, (Option<i64>, i64)> = BTreeMap::new();
    for &(p, task) in tasks {
        let end = ends[&p];
        let mut r = Restoring {
            task,
            store: None,
            replay: Replay::new(task),
            verify: None,
            store_inputs: None,
            rejected: None,
        };
        let mut from = None;
        if let Some(dir) = changelog.store_dir(p) {
            let (store, opened) =
                StateStore::open_or_recreate_with(&dir, runnel_state::Access::WriteMostly)
                    .map_err(state_error)?;
            if let Opened::Recreated { reason } = &opened {
                tracing::warn!(topic = %changelog.topic, partition = p, "local state store recreated: {reason}");
            }
            task.restore_into_store();
            match load_store(task, &store, p, end) {
                // A store that never committed is empty (a commit writes its changes and its
                // checkpoint atomically): nothing to load, nothing to wipe.
                Ok(None) => r.store = Some(store),
                Ok(Some((at, inputs))) => {
                    from = Some(at);
                    r.verify = Some((at, inputs.clone()));
                    r.store_inputs = Some(inputs);
                    r.store = Some(store);
                }
                Err(reason) => {
                    r.store = Some(reject_store(task, store, changelog, p, &reason)?);
                }
            }
        }
        ranges.insert(p, (from, end));
        restoring.insert(p, r);
    }
    read_until(kafka, &changelog.topic, &ranges, stop, |rec| {
        let Some(r) = restoring.get_mut(&rec.partition) else {
            return Ok(());
        };
        if r.rejected.is_some() {
            return Ok(());
        }
        if let Some((at, inputs)) = &r.verify {
            let matches = rec.offset == *at
                && rec.key.as_deref() == Some(CHECKPOINT_KEY)
                && checkpoint_offsets(&rec) == *inputs;
            r.rejected = (!matches).then(|| {
                format!("the changelog does not hold the store's checkpoint at offset {at}")
            });
            r.verify = None;
            return Ok(());
        }
        r.replay.apply(rec)
    })?;
    // Stores the changelog contradicts are rebuilt from their whole changelog partitions.
    let mut again: BTreeMap<i32, (Option<i64>, i64)> = BTreeMap::new();
    for (p, r) in restoring.iter_mut() {
        let reason = r.rejected.take().or_else(|| {
            r.verify
                .as_ref()
                .map(|(at, _)| format!("changelog offset {at} not found"))
        });
        if let Some(reason) = reason {
            r.verify = None;
            r.store_inputs = None;
            r.replay = Replay::new(r.task);
            if let Some(store) = r.store.take() {
                r.store = Some(reject_store(r.task, store, changelog, *p, &reason)?);
            }
            again.insert(*p, (None, ends[p]));
        }
    }
    if !again.is_empty() {
        read_until(kafka, &changelog.topic, &again, stop, |rec| match restoring
            .get_mut(&rec.partition)
        {
            Some(r) if again.contains_key(&rec.partition) => r.replay.apply(rec),
            _ => Ok(()),
        })?;
    }
    let mut out = BTreeMap::new();
    let (mut from_store, mut from_changelog) = (Vec::new(), Vec::new());
    let mut repaired = 0;
    for (p, r) in restoring.iter_mut() {
        repaired += repair(r, *p, producer, &changelog.topic)?;
    }
    if repaired > 0 {
        flush(producer)?;
        tracing::info!(topic = %changelog.topic, keys = repaired,
            "committed values rewritten over the changes of unfinished batches");
    }
    for (p, r) in restoring {
        r.task.finish_restore();
        let inputs = r.replay.inputs.clone().or(r.store_inputs.clone());
        if let Some(store) = &r.store {
            r.replay.save(store, p)?;
        }
        tracing::debug!(
            topic = %changelog.topic,
            partition = p,
            from_store = r.store_inputs.is_some(),
            applied = r.replay.count,
            discarded = r.replay.discarded + r.replay.pending.len(),
            "task state restored"
        );
        if r.store_inputs.is_some() {
            from_store.push(p);
        } else {
            from_changelog.push(p);
        }
        out.insert(
            p,
            Restored {
                next: inputs.and_then(|i| i.get(&p).copied()),
                store: r.store.map(|store| LocalStore::new(r.task, store, p)),
            },
        );
    }
    let ms = started.elapsed().as_millis() as u64;
    if !from_store.is_empty() {
        tracing::info!(topic = %changelog.topic, partitions = ?from_store, ms,
            "state restored from the local store and the changelog tail");
    }
    if !from_changelog.is_empty() {
        tracing::info!(topic = %changelog.topic, partitions = ?from_changelog, ms,
            "state restored from the changelog");
    }
    Ok(out)
}

/// Makes a changelog partition safe to compact after a batch died half-written.
///
/// The changelog is compacted (only the latest record of each key stays), so the records of a
/// batch that never got its checkpoint would, once compacted, have replaced the committed value
/// of their keys and lost the restore marker that discards them. Before the task writes anything
/// new, the restore writes each such key's committed value again (a tombstone when it had none)
/// with a checkpoint: every key's latest record is then committed. Kafka compacts only closed
/// log segments, so the unfinished records are still in the active one when this runs.
/// Returns how many keys were rewritten (their records are sent, not yet flushed).
fn repair(
    r: &mut Restoring,
    partition: i32,
    producer: &Producer,
    topic: &str,
) -> Result<usize, EngineError> {
    let mut aborted = std::mem::take(&mut r.replay.aborted);
    aborted.extend(r.replay.pending.iter().map(|(key, _)| key.clone()));
    if aborted.is_empty() {
        return Ok(0);
    }
    if let (Some(store), Some(_)) = (&r.store, &r.store_inputs) {
        // Point reads want an empty memtable (see `runnel_state::Access::WriteMostly`).
        store.flush().map_err(state_error)?;
    }
    for key in &aborted {
        let value = match (r.replay.applied.get(key), &r.store) {
            (Some(value), _) => value.clone(),
            (None, Some(store)) if r.store_inputs.is_some() => {
                let (kind, start) = AggregateOperator::store_key_parts(key);
                store.get(kind, start, key).map_err(state_error)?
            }
            (None, _) => None,
        };
        send(
            producer,
            &Record {
                topic: topic.to_string(),
                partition,
                key: Some(key.clone()),
                value,
                ..Default::default()
            },
        )?;
    }
    let inputs = r
        .replay
        .inputs
        .clone()
        .or(r.store_inputs.clone())
        .unwrap_or_default();
    send(producer, &checkpoint_record_of(topic, partition, &inputs))?;
    Ok(aborted.len())
}

/// Forgets what a task loaded from a store that cannot be trusted and empties the store.
fn reject_store(
    task: &QueryTask,
    store: StateStore,
    changelog: &Changelog,
    partition: i32,
    reason: &str,
) -> Result<StateStore, EngineError> {
    if store.checkpoint().ok().flatten().is_some() {
        tracing::warn!(
            topic = %changelog.topic,
            partition,
            "local state store not usable ({reason}); rebuilding it from the changelog"
        );
    }
    task.reset_state().map_err(EngineError::Internal)?;
    let store = store.wipe().map_err(state_error)?;
    task.restore_into_store();
    Ok(store)
}

/// Where a local store's state ends: the changelog offset of its checkpoint record and the
/// input offsets it covers.
type StoreCheckpoint = (i64, BTreeMap<i32, i64>);

/// Loads a local store into its task; returns the changelog offset of the checkpoint record
/// the store remembers (the tail is read from there) and the store's input offsets, or None
/// for a store without a checkpoint. An `Err` says why the store cannot be trusted (the task
/// may then hold partial state).
fn load_store(
    task: &QueryTask,
    store: &StateStore,
    partition: i32,
    end: i64,
) -> Result<Option<StoreCheckpoint>, String> {
    let Some(checkpoint) = store.checkpoint().map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let next = *checkpoint
        .changelog
        .get(&partition)
        .ok_or("no changelog offset in the checkpoint")?;
    // The record before `next` must be the checkpoint record the store remembers.
    let at = next - 1;
    if at < 0 || at >= end {
        return Err(format!(
            "checkpoint at changelog offset {next} but the changelog ends at {end}"
        ));
    }
    for kind in [
        AggregateOperator::STORE_KIND_STATE,
        AggregateOperator::STORE_KIND_CONTRIBUTION,
    ] {
        for entry in store.scan(kind) {
            let (key, value) = entry.map_err(|e| e.to_string())?;
            task.restore_state(&key.key, Some(&value))
                .map_err(|e| format!("entry does not decode: {e}"))?;
        }
    }
    Ok(Some((at, checkpoint.inputs)))
}

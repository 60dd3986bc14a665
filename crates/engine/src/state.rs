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
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Key of the checkpoint records in a changelog topic. State keys never start with a zero byte
/// followed by this text.
pub const CHECKPOINT_KEY: &[u8] = b"\x00runnel-checkpoint";
/// Key of the restore markers a starting query writes to its changelog.
pub const RESTORE_MARKER_KEY: &[u8] = b"\x00runnel-restore";
/// The changelog has one partition.
const PARTITION: i32 = 0;
/// A restore that receives nothing for this long fails (the broker is gone), instead of hanging.
const STALL: Duration = Duration::from_secs(120);
/// Retention range-deletes are written at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// Where a stateful query keeps its state durable.
pub struct Changelog {
    pub topic: String,
    /// Directory of the local RocksDB store (`None`: state is rebuilt from the changelog alone).
    pub state_dir: Option<PathBuf>,
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
    pruned_to: i64,
    pruned_at: Option<Instant>,
}

impl LocalStore {
    /// A restored store, registered with its task for readers.
    fn new(task: &QueryTask, store: StateStore) -> Self {
        let store = Arc::new(store);
        task.set_state_store(Some(store.clone()));
        LocalStore {
            store,
            pruned_to: i64::MIN,
            pruned_at: None,
        }
    }

    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// Writes a committed batch's changes, retention deletes and checkpoint. `changelog_next`
    /// is the changelog offset after the batch's (acknowledged) checkpoint record.
    pub fn commit(
        &mut self,
        task: &QueryTask,
        changes: &StateChanges,
        changelog_next: i64,
        inputs: &BTreeMap<i32, i64>,
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
            changelog: BTreeMap::from([(PARTITION, changelog_next)]),
            inputs: inputs.clone(),
        };
        self.store.commit(batch, &checkpoint).map_err(state_error)?;
        self.evict(task)
    }

    /// Bounds the aggregation's in-memory state (`runnel.state.memory.max.bytes`) now that the
    /// store holds every committed group. Once groups have left memory the store is read by
    /// key, so its memtable is flushed at each commit (as Kafka Streams flushes its stores on
    /// commit): a point read then finds an empty memtable and the table files.
    pub fn evict(&self, task: &QueryTask) -> Result<(), EngineError> {
        let (dropped, reads) = task.evict_state();
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

/// The checkpoint record closing a batch whose next input offsets are `offsets`.
pub fn checkpoint_record(topic: &str, offsets: &BTreeMap<i32, i64>) -> Record {
    let marker: serde_json::Map<String, serde_json::Value> = offsets
        .iter()
        .map(|(p, o)| (p.to_string(), serde_json::Value::from(*o)))
        .collect();
    Record {
        topic: topic.to_string(),
        partition: PARTITION,
        key: Some(CHECKPOINT_KEY.to_vec()),
        value: Some(serde_json::Value::Object(marker).to_string().into_bytes()),
        ..Default::default()
    }
}

/// Writes a restore marker and returns its offset: the end of the changelog to restore.
fn write_marker(producer: &Producer, topic: &str) -> Result<i64, EngineError> {
    let id = format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let r = Record {
        topic: topic.to_string(),
        partition: PARTITION,
        key: Some(RESTORE_MARKER_KEY.to_vec()),
        value: Some(id.into_bytes()),
        timestamp: chrono::Utc::now().timestamp_millis(),
        ..Default::default()
    };
    send(producer, &r)?;
    flush(producer)?;
    delivered_offset(producer, topic, PARTITION).ok_or_else(|| {
        EngineError::Internal(format!(
            "the broker did not report the offset of the restore marker in {topic}"
        ))
    })
}

/// Reads the changelog from `from` (None: the beginning) up to, not including, offset `end`,
/// handing each record to `apply`.
fn read_until(
    kafka: &KafkaConfig,
    topic: &str,
    from: Option<i64>,
    end: i64,
    mut apply: impl FnMut(Record) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    if from.is_some_and(|f| f >= end) || end == 0 {
        return Ok(());
    }
    let consumer = kafka.consumer(
        &format!("_runnel-restore-{}", chrono::Utc::now().timestamp_micros()),
        "earliest",
    )?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    let offset = from.map_or(rdkafka::Offset::Beginning, rdkafka::Offset::Offset);
    tpl.add_partition_offset(topic, PARTITION, offset)
        .map_err(KafkaError::from)?;
    consumer.assign(&tpl).map_err(KafkaError::from)?;
    let mut last_progress = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let r = record_of(&m);
                if r.offset >= end {
                    return Ok(());
                }
                last_progress = Instant::now();
                let done = r.offset + 1 >= end;
                apply(r)?;
                if done {
                    return Ok(());
                }
            }
            Some(Err(e)) => tracing::warn!("restore of {topic}: {e}"),
            None => {}
        }
        if last_progress.elapsed() > STALL {
            return Err(EngineError::Internal(format!(
                "restoring {topic}: nothing received for {} s before reaching offset {end}",
                STALL.as_secs()
            )));
        }
    }
}

/// Applies changelog records in order: a batch's changes count once its checkpoint record is
/// read, a restore marker discards an unfinished batch.
struct Replay<'a> {
    task: &'a QueryTask,
    pending: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Changes applied, for the local store (store key order does not matter: last one wins).
    applied: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    inputs: Option<BTreeMap<i32, i64>>,
    /// Offset of the last checkpoint record applied.
    last_checkpoint: Option<i64>,
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
            self.pending.clear();
        } else {
            self.pending.push((key.to_vec(), r.value));
        }
        Ok(())
    }

    /// Writes what was applied to the store, with a checkpoint after the last checkpoint record.
    fn save(self, store: &StateStore) -> Result<(), EngineError> {
        let (Some(inputs), Some(offset)) = (&self.inputs, self.last_checkpoint) else {
            return Ok(());
        };
        let mut batch = Batch::new();
        for (k, v) in &self.applied {
            put(&mut batch, k, v.as_deref());
        }
        let checkpoint = Checkpoint {
            changelog: BTreeMap::from([(PARTITION, offset + 1)]),
            inputs: inputs.clone(),
        };
        store.commit(batch, &checkpoint).map_err(state_error)
    }
}

/// What a restore found.
pub struct Restored {
    /// Input offsets to resume from (empty: no checkpoint, start over).
    pub offsets: BTreeMap<i32, i64>,
    pub store: Option<LocalStore>,
}

/// Rebuilds a task's state from its local store and the changelog tail, or from the whole
/// changelog; returns the input offsets to resume from and the open store.
pub fn restore(
    task: &QueryTask,
    kafka: &KafkaConfig,
    producer: &Producer,
    changelog: &Changelog,
) -> Result<Restored, EngineError> {
    let started = Instant::now();
    let end = write_marker(producer, &changelog.topic)?;
    let mut store = match &changelog.state_dir {
        Some(dir) => {
            let (store, opened) =
                StateStore::open_or_recreate_with(dir, runnel_state::Access::WriteMostly)
                    .map_err(state_error)?;
            if let Opened::Recreated { reason } = &opened {
                tracing::warn!(topic = %changelog.topic, "local state store recreated: {reason}");
            }
            Some(store)
        }
        None => None,
    };
    if let Some(s) = store.take() {
        task.restore_into_store();
        match from_store(task, kafka, &s, &changelog.topic, end) {
            Ok(offsets) => {
                tracing::info!(
                    topic = %changelog.topic,
                    ms = started.elapsed().as_millis() as u64,
                    "state restored from the local store and the changelog tail"
                );
                return Ok(Restored {
                    offsets,
                    store: Some(LocalStore::new(task, s)),
                });
            }
            Err(reason) => {
                if s.checkpoint().ok().flatten().is_some() {
                    tracing::warn!(
                        topic = %changelog.topic,
                        "local state store not usable ({reason}); rebuilding it from the changelog"
                    );
                }
                task.reset_state().map_err(EngineError::Internal)?;
                store = Some(s.wipe().map_err(state_error)?);
                task.restore_into_store();
            }
        }
    }
    let mut replay = Replay::new(task);
    read_until(kafka, &changelog.topic, None, end, |r| replay.apply(r))?;
    task.finish_restore();
    let offsets = replay.inputs.clone().unwrap_or_default();
    tracing::info!(
        topic = %changelog.topic,
        applied = replay.count,
        discarded = replay.discarded + replay.pending.len(),
        ms = started.elapsed().as_millis() as u64,
        "state restored from the changelog"
    );
    if let Some(s) = &store {
        replay.save(s)?;
    }
    Ok(Restored {
        offsets,
        store: store.map(|store| LocalStore::new(task, store)),
    })
}

/// Loads the store into the task and replays the changelog after the store's checkpoint.
/// An `Err` says why the store cannot be trusted (the task may then hold partial state).
fn from_store(
    task: &QueryTask,
    kafka: &KafkaConfig,
    store: &StateStore,
    topic: &str,
    end: i64,
) -> Result<BTreeMap<i32, i64>, String> {
    let checkpoint = store
        .checkpoint()
        .map_err(|e| e.to_string())?
        .ok_or("no checkpoint")?;
    let next = *checkpoint
        .changelog
        .get(&PARTITION)
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
    let mut replay = Replay::new(task);
    let mut verified = false;
    read_until(kafka, topic, Some(at), end, |r| {
        if !verified {
            let matches = r.offset == at
                && r.key.as_deref() == Some(CHECKPOINT_KEY)
                && checkpoint_offsets(&r) == checkpoint.inputs;
            if !matches {
                return Err(EngineError::Internal(format!(
                    "the changelog does not hold the store's checkpoint at offset {at}"
                )));
            }
            verified = true;
            return Ok(());
        }
        replay.apply(r)
    })
    .map_err(|e| e.to_string())?;
    if !verified {
        return Err(format!("changelog offset {at} not found"));
    }
    task.finish_restore();
    let offsets = replay
        .inputs
        .clone()
        .unwrap_or_else(|| checkpoint.inputs.clone());
    tracing::info!(
        topic,
        replayed = replay.count,
        discarded = replay.discarded + replay.pending.len(),
        "changelog tail replayed onto the local store"
    );
    replay.save(store).map_err(|e| e.to_string())?;
    Ok(offsets)
}

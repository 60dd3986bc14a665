//! Local state stores for stateful operators, kept in RocksDB.
//!
//! Why: a stateful query (an aggregation) must not have to re-read its whole changelog topic
//! every time it starts. Each query keeps a local copy of its state in a RocksDB store at
//! `<ksql.streams.state.dir>/<service id>/<query id>`, together with a **checkpoint**: up to which
//! changelog offset the store is complete, and the input offsets that state corresponds to. On
//! start the query trusts the store and replays only the changelog records after the checkpoint;
//! when the store is missing or unusable it is wiped and rebuilt from the changelog alone. The
//! Kafka changelog topic stays the source of truth, so losing the directory loses nothing.
//!
//! # Keys
//!
//! Store keys are byte-comparable so that range scans and range deletes follow window time:
//!
//! ```text
//! kind (1 byte) | window start (8 bytes, big-endian, sign bit flipped) | changelog key bytes
//! ```
//!
//! `kind` separates kinds of entries (aggregate state, table contributions; [`KIND_META`] is
//! reserved for the checkpoint). The window start is 0 for entries that have no window. The
//! changelog key is the key the operator writes to its changelog topic, so an entry can be
//! replayed into an operator exactly like a changelog record. Values are the serialized state
//! the changelog carries.
//!
//! # Writes
//!
//! Writes happen at commit only: the caller collects the entries changed since the last commit
//! (its write-behind cache), puts them into a [`Batch`] together with retention range-deletes,
//! and [`StateStore::commit`]s it with the new [`Checkpoint`] in one atomic RocksDB write batch.
//! Nothing reads or writes RocksDB per event. The write-ahead log is not synced: after a power
//! failure RocksDB comes back with an older, but consistent, batch and checkpoint, and the
//! changelog tail fills the gap.
//!
//! # Reads (for pull queries)
//!
//! [`StateStore::get`] (one entry), [`StateStore::scan`] (all entries of a kind),
//! [`StateStore::scan_prefix`] (entries of a kind and window start whose changelog key starts
//! with a prefix, e.g. one group of a non-windowed aggregation) and [`StateStore::scan_windows`]
//! (entries whose window start is in a range) read the state as of the last commit. The store is
//! `Send + Sync`, so a reader can share it (`Arc`) with the query thread that writes it.

use rocksdb::{Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Reserved kind of the store's own records (the checkpoint).
pub const KIND_META: u8 = 0;
const CHECKPOINT_KEY: &[u8] = b"checkpoint";
/// Version byte of the checkpoint encoding.
const CHECKPOINT_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store {path}: {message}")]
    Store { path: String, message: String },
    /// Another process (or query) has the store open.
    #[error("state store {path} is in use by another process: {message}")]
    Locked { path: String, message: String },
    #[error("state store {path} is corrupt: {message}")]
    Corrupt { path: String, message: String },
}

/// Up to where a store is complete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Per changelog partition, the next offset to read: every changelog record before it is in
    /// the store.
    pub changelog: BTreeMap<i32, i64>,
    /// Per input partition, the next input offset to process for this state.
    pub inputs: BTreeMap<i32, i64>,
}

impl Checkpoint {
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![CHECKPOINT_VERSION];
        for map in [&self.changelog, &self.inputs] {
            out.extend_from_slice(&(map.len() as u32).to_be_bytes());
            for (p, o) in map {
                out.extend_from_slice(&p.to_be_bytes());
                out.extend_from_slice(&o.to_be_bytes());
            }
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let (version, mut rest) = bytes.split_first().ok_or("empty checkpoint")?;
        if *version != CHECKPOINT_VERSION {
            return Err(format!("unknown checkpoint version {version}"));
        }
        let mut take = |n: usize| -> Result<&[u8], String> {
            if rest.len() < n {
                return Err("truncated checkpoint".into());
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let mut maps = [BTreeMap::new(), BTreeMap::new()];
        for map in maps.iter_mut() {
            let n = u32::from_be_bytes(take(4)?.try_into().map_err(|_| "bad length")?);
            for _ in 0..n {
                let p = i32::from_be_bytes(take(4)?.try_into().map_err(|_| "bad partition")?);
                let o = i64::from_be_bytes(take(8)?.try_into().map_err(|_| "bad offset")?);
                map.insert(p, o);
            }
        }
        if !rest.is_empty() {
            return Err("trailing bytes after checkpoint".into());
        }
        let [changelog, inputs] = maps;
        Ok(Checkpoint { changelog, inputs })
    }
}

/// A decoded store key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StateKey {
    pub kind: u8,
    /// Window start in milliseconds (0 when the entry has no window).
    pub window_start: i64,
    /// The changelog key of the entry.
    pub key: Vec<u8>,
}

/// Window start as order-preserving unsigned bytes (negative starts sort first).
fn start_bytes(start: i64) -> [u8; 8] {
    ((start as u64) ^ (1 << 63)).to_be_bytes()
}

fn encode_key(kind: u8, start: i64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + key.len());
    out.push(kind);
    out.extend_from_slice(&start_bytes(start));
    out.extend_from_slice(key);
    out
}

fn decode_key(bytes: &[u8]) -> Option<StateKey> {
    if bytes.len() < 9 {
        return None;
    }
    let raw = u64::from_be_bytes(bytes[1..9].try_into().ok()?);
    Some(StateKey {
        kind: bytes[0],
        window_start: (raw ^ (1 << 63)) as i64,
        key: bytes[9..].to_vec(),
    })
}

/// The smallest key greater than every key starting with `prefix` (None: no such bound).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Changes to write at the next commit.
///
/// Point writes are buffered and handed to RocksDB in key order (stable, so of two writes of
/// one key the later still wins): the memtable's skip list then finds each insert's place from
/// the previous one instead of searching from its top level, which made up most of the cost of
/// committing many changed groups at once. A range delete is an ordering barrier: the writes
/// before it are written before it, so it still removes them, and the writes after it survive.
#[derive(Default)]
pub struct Batch {
    batch: WriteBatch,
    /// Point writes since the last barrier: (encoded key, value, or None for a delete).
    pending: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    puts: usize,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets an entry (`kind` must not be [`KIND_META`]).
    pub fn put(&mut self, kind: u8, window_start: i64, key: &[u8], value: &[u8]) {
        debug_assert_ne!(kind, KIND_META);
        self.pending
            .push((encode_key(kind, window_start, key), Some(value.to_vec())));
        self.puts += 1;
    }

    pub fn delete(&mut self, kind: u8, window_start: i64, key: &[u8]) {
        self.pending
            .push((encode_key(kind, window_start, key), None));
        self.puts += 1;
    }

    /// Deletes every entry of `kind` whose window starts before `start` (retention).
    pub fn delete_windows_before(&mut self, kind: u8, start: i64) {
        self.flush_pending();
        self.batch.delete_range(
            encode_key(kind, i64::MIN, &[]),
            encode_key(kind, start, &[]),
        );
        self.puts += 1;
    }

    /// Moves the buffered point writes into the RocksDB batch, in key order.
    fn flush_pending(&mut self) {
        self.pending.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in self.pending.drain(..) {
            match value {
                Some(value) => self.batch.put(key, value),
                None => self.batch.delete(key),
            }
        }
    }

    /// The RocksDB batch with every write in it.
    fn into_write_batch(mut self) -> WriteBatch {
        self.flush_pending();
        self.batch
    }

    /// Number of operations in the batch.
    pub fn len(&self) -> usize {
        self.puts
    }

    pub fn is_empty(&self) -> bool {
        self.puts == 0
    }
}

/// How a store was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// An existing store was opened.
    Existing,
    /// A new, empty store was created (none existed).
    Created,
    /// The directory held an unusable store; it was deleted and a new one created.
    Recreated { reason: String },
}

/// One query's local state.
pub struct StateStore {
    db: DB,
    path: PathBuf,
    access: Access,
}

/// How a store is used, which decides its memtable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// Point reads and scans at any time (RocksDB's default skip-list memtable).
    #[default]
    ReadWrite,
    /// Written at every commit, read by scans at start-up (an aggregation's state, whose
    /// working copy is in memory): an append-only vector memtable, sorted once when flushed,
    /// so that a commit's writes cost no skip-list search. A point read copies and sorts the
    /// memtable, so a store read by key must [`StateStore::flush`] before it is read.
    WriteMostly,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .finish()
    }
}

fn options(access: Access) -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    if access == Access::WriteMostly {
        o.set_allow_concurrent_memtable_write(false);
        o.set_memtable_factory(rocksdb::MemtableFactory::Vector);
    }
    // Point reads (pull queries, aggregate groups read back after leaving memory) mostly ask
    // for keys a table file does not have: a bloom filter answers those without a block read.
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    o.set_block_based_table_factory(&table);
    // Small stores, many of them (one per query): keep the file handles in check.
    o.set_max_open_files(64);
    o.set_keep_log_file_num(2);
    o
}

/// RocksDB's words when another process ("While lock file: .../LOCK: Resource temporarily
/// unavailable") or this one ("lock hold by current process") has the store open.
fn is_lock_error(e: &rocksdb::Error) -> bool {
    let m = e.to_string();
    m.contains("lock file") || m.contains("lock hold by current process")
}

impl StateStore {
    /// Opens the store at `path`, creating it (and its parent directories) when missing.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StateError> {
        Self::open_with(path, Access::ReadWrite)
    }

    /// [`StateStore::open`] for a store used as `access` says.
    pub fn open_with(path: impl AsRef<Path>, access: Access) -> Result<Self, StateError> {
        let path = path.as_ref().to_path_buf();
        let err = |message: String| StateError::Store {
            path: path.display().to_string(),
            message,
        };
        std::fs::create_dir_all(&path).map_err(|e| err(e.to_string()))?;
        let db = DB::open(&options(access), &path).map_err(|e| {
            let message = e.to_string();
            if is_lock_error(&e) {
                StateError::Locked {
                    path: path.display().to_string(),
                    message,
                }
            } else {
                StateError::Corrupt {
                    path: path.display().to_string(),
                    message,
                }
            }
        })?;
        let store = StateStore { db, path, access };
        // A checkpoint that cannot be read makes the whole store untrustworthy.
        store.checkpoint()?;
        Ok(store)
    }

    /// Opens the store at `path`; a store that cannot be opened (other than because another
    /// process holds it) or whose checkpoint is unreadable is deleted and created anew.
    pub fn open_or_recreate(path: impl AsRef<Path>) -> Result<(Self, Opened), StateError> {
        Self::open_or_recreate_with(path, Access::ReadWrite)
    }

    /// [`StateStore::open_or_recreate`] for a store used as `access` says.
    pub fn open_or_recreate_with(
        path: impl AsRef<Path>,
        access: Access,
    ) -> Result<(Self, Opened), StateError> {
        let path = path.as_ref();
        let existed = path.join("CURRENT").exists();
        match Self::open_with(path, access) {
            Ok(store) if existed => Ok((store, Opened::Existing)),
            Ok(store) => Ok((store, Opened::Created)),
            Err(e @ StateError::Locked { .. }) => Err(e),
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!("{reason}; deleting it and starting from the changelog");
                remove_dir(path)?;
                Ok((Self::open_with(path, access)?, Opened::Recreated { reason }))
            }
        }
    }

    /// Writes the memtable out to a table file, so that point reads no longer go through it
    /// (a `WriteMostly` store's memtable is a vector, which a point read copies and sorts).
    pub fn flush(&self) -> Result<(), StateError> {
        self.db.flush().map_err(|e| self.error(e))
    }

    /// Deletes everything in the store and returns an empty one at the same place.
    pub fn wipe(self) -> Result<Self, StateError> {
        let path = self.path.clone();
        let access = self.access;
        drop(self);
        remove_dir(&path)?;
        Self::open_with(&path, access)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, e: impl std::fmt::Display) -> StateError {
        StateError::Store {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// The checkpoint of the last commit (None for a store that was never committed).
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, StateError> {
        let Some(bytes) = self
            .db
            .get(encode_key(KIND_META, 0, CHECKPOINT_KEY))
            .map_err(|e| self.error(e))?
        else {
            return Ok(None);
        };
        Checkpoint::decode(&bytes)
            .map(Some)
            .map_err(|message| StateError::Corrupt {
                path: self.path.display().to_string(),
                message,
            })
    }

    /// Writes `batch` and `checkpoint` atomically.
    pub fn commit(&self, batch: Batch, checkpoint: &Checkpoint) -> Result<(), StateError> {
        let mut batch = batch.into_write_batch();
        batch.put(
            encode_key(KIND_META, 0, CHECKPOINT_KEY),
            checkpoint.encode(),
        );
        // With the write-ahead log (not synced): a store killed right after a commit reopens at
        // that commit, so a restart replays only the changelog's tail. Commits are once per
        // commit interval, so the log costs little.
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        self.db.write_opt(batch, &opts).map_err(|e| self.error(e))
    }

    /// Writes `batch` without a checkpoint, for stores rebuilt from Kafka on every start (such
    /// as the tables that pull queries read), whose contents need no changelog position.
    ///
    /// No write-ahead log: such a store is refilled from its topic at every start, so a crash
    /// loses nothing the log would keep, and these writes come once per micro-batch.
    pub fn write(&self, batch: Batch) -> Result<(), StateError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        opts.disable_wal(true);
        self.db
            .write_opt(batch.into_write_batch(), &opts)
            .map_err(|e| self.error(e))
    }

    /// One entry's value.
    pub fn get(
        &self,
        kind: u8,
        window_start: i64,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StateError> {
        self.db
            .get(encode_key(kind, window_start, key))
            .map_err(|e| self.error(e))
    }

    /// Entries from `from` (inclusive) to `to` (exclusive, None: the end), in key order.
    fn range(
        &self,
        from: Vec<u8>,
        to: Option<Vec<u8>>,
    ) -> impl Iterator<Item = Result<(StateKey, Vec<u8>), StateError>> + '_ {
        let mut opts = ReadOptions::default();
        if let Some(to) = to {
            opts.set_iterate_upper_bound(to);
        }
        self.db
            .iterator_opt(IteratorMode::From(&from, Direction::Forward), opts)
            .map(move |item| {
                let (k, v) = item.map_err(|e| self.error(e))?;
                let key = decode_key(&k).ok_or_else(|| StateError::Corrupt {
                    path: self.path.display().to_string(),
                    message: format!("malformed key {k:?}"),
                })?;
                Ok((key, v.into_vec()))
            })
    }

    /// Every entry of `kind`, ordered by window start, then changelog key.
    pub fn scan(
        &self,
        kind: u8,
    ) -> impl Iterator<Item = Result<(StateKey, Vec<u8>), StateError>> + '_ {
        self.range(vec![kind], prefix_end(&[kind]))
    }

    /// Entries of `kind` and `window_start` whose changelog key starts with `prefix`.
    pub fn scan_prefix(
        &self,
        kind: u8,
        window_start: i64,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(StateKey, Vec<u8>), StateError>> + '_ {
        let from = encode_key(kind, window_start, prefix);
        let to = prefix_end(&from);
        self.range(from, to)
    }

    /// Entries of `kind` whose window starts in `from..to` (ordered by start).
    pub fn scan_windows(
        &self,
        kind: u8,
        from: i64,
        to: i64,
    ) -> impl Iterator<Item = Result<(StateKey, Vec<u8>), StateError>> + '_ {
        self.range(encode_key(kind, from, &[]), Some(encode_key(kind, to, &[])))
    }
}

fn remove_dir(path: &Path) -> Result<(), StateError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StateError::Store {
            path: path.display().to_string(),
            message: format!("cannot delete: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGG: u8 = 1;
    const OTHER: u8 = 2;

    fn checkpoint(changelog: i64, input: i64) -> Checkpoint {
        Checkpoint {
            changelog: BTreeMap::from([(0, changelog)]),
            inputs: BTreeMap::from([(0, input), (3, input + 1)]),
        }
    }

    fn collect(
        it: impl Iterator<Item = Result<(StateKey, Vec<u8>), StateError>>,
    ) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
        it.map(|r| r.expect("reads"))
            .map(|(k, v)| (k.window_start, k.key, v))
            .collect()
    }

    #[test]
    fn put_get_and_scans_follow_window_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let (store, opened) = StateStore::open_or_recreate(dir.path().join("q")).expect("open");
        assert_eq!(opened, Opened::Created);
        assert_eq!(store.checkpoint().expect("reads"), None);
        let mut b = Batch::new();
        b.put(AGG, 20_000, b"b", b"b@20");
        b.put(AGG, 10_000, b"b", b"b@10");
        b.put(AGG, 10_000, b"a", b"a@10");
        b.put(AGG, -5, b"a", b"a@-5");
        b.put(OTHER, 0, b"ab", b"contribution ab");
        b.put(OTHER, 0, b"ac", b"contribution ac");
        b.put(OTHER, 0, b"b", b"contribution b");
        store.commit(b, &checkpoint(7, 100)).expect("commit");

        assert_eq!(
            store.get(AGG, 10_000, b"a").expect("get"),
            Some(b"a@10".to_vec())
        );
        assert_eq!(store.get(AGG, 10_000, b"c").expect("get"), None);
        assert_eq!(store.get(OTHER, 10_000, b"a").expect("get"), None);
        // Negative starts sort before positive ones; the kind bounds the scan.
        assert_eq!(
            collect(store.scan(AGG)),
            vec![
                (-5, b"a".to_vec(), b"a@-5".to_vec()),
                (10_000, b"a".to_vec(), b"a@10".to_vec()),
                (10_000, b"b".to_vec(), b"b@10".to_vec()),
                (20_000, b"b".to_vec(), b"b@20".to_vec()),
            ]
        );
        assert_eq!(
            collect(store.scan_windows(AGG, 0, 20_000)),
            vec![
                (10_000, b"a".to_vec(), b"a@10".to_vec()),
                (10_000, b"b".to_vec(), b"b@10".to_vec()),
            ]
        );
        assert_eq!(
            collect(store.scan_prefix(OTHER, 0, b"a"))
                .into_iter()
                .map(|(_, k, _)| k)
                .collect::<Vec<_>>(),
            vec![b"ab".to_vec(), b"ac".to_vec()]
        );
        assert_eq!(store.checkpoint().expect("reads"), Some(checkpoint(7, 100)));
    }

    #[test]
    fn deletes_and_retention_range_deletes() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = StateStore::open(dir.path()).expect("open");
        let mut b = Batch::new();
        for start in [0, 10, 20, 30] {
            b.put(AGG, start, b"k", b"v");
        }
        b.put(OTHER, 0, b"k", b"v");
        store.commit(b, &checkpoint(1, 1)).expect("commit");
        let mut b = Batch::new();
        b.delete_windows_before(AGG, 20);
        b.delete(AGG, 30, b"k");
        assert_eq!(b.len(), 2);
        store.commit(b, &checkpoint(2, 2)).expect("commit");
        assert_eq!(
            collect(store.scan(AGG)),
            vec![(20, b"k".to_vec(), b"v".to_vec())]
        );
        // Other kinds are untouched by a range delete.
        assert_eq!(collect(store.scan(OTHER)).len(), 1);
    }

    #[test]
    fn a_batch_written_in_key_order_keeps_the_order_of_its_writes() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = StateStore::open(dir.path()).expect("open");
        let mut b = Batch::new();
        // Out of key order, with two writes of one key: the later one wins.
        b.put(AGG, 30, b"z", b"first");
        b.put(AGG, 10, b"a", b"a");
        b.put(AGG, 30, b"z", b"second");
        b.delete(AGG, 10, b"a");
        b.put(AGG, 10, b"a", b"again");
        // Written before the range delete: removed by it. Written after it: kept.
        b.put(AGG, 5, b"old", b"gone");
        b.delete_windows_before(AGG, 10);
        b.put(AGG, 6, b"new", b"kept");
        assert_eq!(b.len(), 8);
        store.commit(b, &checkpoint(1, 1)).expect("commit");
        assert_eq!(
            collect(store.scan(AGG)),
            vec![
                (6, b"new".to_vec(), b"kept".to_vec()),
                (10, b"a".to_vec(), b"again".to_vec()),
                (30, b"z".to_vec(), b"second".to_vec()),
            ]
        );
    }

    #[test]
    fn reopening_keeps_entries_and_checkpoint() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("svc").join("CTAS_X_0");
        {
            let store = StateStore::open(&path).expect("open");
            let mut b = Batch::new();
            b.put(AGG, 5, b"k", b"v1");
            store.commit(b, &checkpoint(3, 9)).expect("commit");
            let mut b = Batch::new();
            b.put(AGG, 5, b"k", b"v2");
            store.commit(b, &checkpoint(4, 10)).expect("commit");
        }
        let (store, opened) = StateStore::open_or_recreate(&path).expect("reopen");
        assert_eq!(opened, Opened::Existing);
        assert_eq!(store.get(AGG, 5, b"k").expect("get"), Some(b"v2".to_vec()));
        assert_eq!(store.checkpoint().expect("reads"), Some(checkpoint(4, 10)));
        let store = store.wipe().expect("wipe");
        assert_eq!(store.checkpoint().expect("reads"), None);
        assert_eq!(collect(store.scan(AGG)), vec![]);
    }

    #[test]
    fn a_corrupt_directory_is_recreated_empty() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("q");
        {
            let store = StateStore::open(&path).expect("open");
            let mut b = Batch::new();
            b.put(AGG, 5, b"k", b"v");
            store.commit(b, &checkpoint(3, 9)).expect("commit");
        }
        std::fs::write(path.join("CURRENT"), b"garbage\n").expect("corrupt");
        assert!(matches!(
            StateStore::open(&path),
            Err(StateError::Corrupt { .. })
        ));
        let (store, opened) = StateStore::open_or_recreate(&path).expect("recreates");
        assert!(matches!(opened, Opened::Recreated { .. }), "{opened:?}");
        assert_eq!(store.checkpoint().expect("reads"), None);
        assert_eq!(store.get(AGG, 5, b"k").expect("get"), None);
    }

    #[test]
    fn an_unreadable_checkpoint_makes_the_store_corrupt() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let store = StateStore::open(dir.path()).expect("open");
            store
                .db
                .put(encode_key(KIND_META, 0, CHECKPOINT_KEY), b"\x01\x00")
                .expect("put");
        }
        assert!(matches!(
            StateStore::open(dir.path()),
            Err(StateError::Corrupt { .. })
        ));
        let (_, opened) = StateStore::open_or_recreate(dir.path()).expect("recreates");
        assert!(matches!(opened, Opened::Recreated { .. }));
    }

    #[test]
    fn a_store_in_use_is_not_wiped() {
        let dir = tempfile::tempdir().expect("tmp");
        let first = StateStore::open(dir.path()).expect("open");
        let mut b = Batch::new();
        b.put(AGG, 1, b"k", b"v");
        first.commit(b, &checkpoint(1, 1)).expect("commit");
        assert!(matches!(
            StateStore::open_or_recreate(dir.path()),
            Err(StateError::Locked { .. })
        ));
        assert_eq!(first.get(AGG, 1, b"k").expect("get"), Some(b"v".to_vec()));
    }

    #[test]
    fn checkpoints_round_trip_and_reject_garbage() {
        let c = checkpoint(42, 7);
        assert_eq!(Checkpoint::decode(&c.encode()), Ok(c));
        assert!(Checkpoint::decode(&[]).is_err());
        assert!(Checkpoint::decode(&[9]).is_err());
        let mut long = checkpoint(1, 1).encode();
        long.push(0);
        assert!(Checkpoint::decode(&long).is_err());
    }

    /// A write-mostly store (vector memtable) commits, scans in key order and survives reopening
    /// exactly as the default one does.
    #[test]
    fn write_mostly_stores_scan_in_order_and_reopen() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("s");
        {
            let (store, _) =
                StateStore::open_or_recreate_with(&path, Access::WriteMostly).expect("open");
            let mut batch = Batch::new();
            for (start, key) in [(20, b"b"), (10, b"z"), (10, b"a"), (-5, b"q")] {
                batch.put(1, start, key, key);
            }
            store.commit(batch, &Checkpoint::default()).expect("commit");
            // Read by key: from the vector memtable, then from the table file it flushes to.
            assert_eq!(store.get(1, 10, b"z").expect("get"), Some(b"z".to_vec()));
            store.flush().expect("flush");
            assert_eq!(store.get(1, 10, b"z").expect("get"), Some(b"z".to_vec()));
            assert_eq!(store.get(1, 10, b"y").expect("get"), None);
            let keys: Vec<(i64, Vec<u8>)> = store
                .scan(1)
                .map(|e| e.map(|(k, _)| (k.window_start, k.key)).expect("entry"))
                .collect();
            assert_eq!(
                keys,
                vec![
                    (-5, b"q".to_vec()),
                    (10, b"a".to_vec()),
                    (10, b"z".to_vec()),
                    (20, b"b".to_vec())
                ]
            );
        }
        let store = StateStore::open_with(&path, Access::WriteMostly).expect("reopen");
        assert_eq!(store.scan(1).count(), 4);
        assert_eq!(store.get(1, 10, b"a").expect("get"), Some(b"a".to_vec()));
        let store = store.wipe().expect("wipe");
        assert_eq!(store.scan(1).count(), 0);
    }
}

//! Materialized tables: the current rows of a CTAS table (or a `CREATE SOURCE TABLE`) kept by the
//! engine so that pull queries can read them.
//!
//! Why in the engine: ksqlDB answers pull queries from the state stores of the query that builds
//! the table (Kafka Streams interactive queries). Runnel does the same: the task of the query that
//! writes a table applies every output row it produces (an upsert, or a delete for a tombstone) to
//! a [`Materialization`], so the table's state is always the query's latest output, in the order
//! the query produced it.
//!
//! Storage is behind the small [`TableStore`] trait (get by key, scan, upsert, delete) so that a
//! RocksDB-backed store can replace [`MemoryStore`] without touching the pull-query code.

use crate::task::OutputRow;
use runnel_connect::format::RowSerde;
use runnel_plan::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Window bounds (start, end) of a row of a windowed table.
pub type WindowBounds = (i64, i64);

/// One row of a materialized table.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    /// Key column values, in the table's key column order.
    pub key: Vec<Value>,
    /// Window of a windowed table's row.
    pub window: Option<WindowBounds>,
    /// Value column values, in the table's value column order.
    pub values: Vec<Value>,
    /// The row's timestamp (`ROWTIME`).
    pub rowtime: i64,
}

/// One change to a materialized table.
pub enum Change {
    Upsert(StoredRow),
    Delete(Vec<Value>, Option<WindowBounds>),
}

/// The storage of one materialized table. Rows are identified by key and (for windowed tables)
/// window; a key of a windowed table may have many windows.
pub trait TableStore: Send + Sync {
    /// Inserts or replaces the row with this key and window.
    fn upsert(&self, row: StoredRow);
    /// Removes the row with this key and window (a tombstone).
    fn delete(&self, key: &[Value], window: Option<WindowBounds>);
    /// Every row with this key (one, or one per window), in window order.
    fn get(&self, key: &[Value]) -> Vec<StoredRow>;
    /// Visits every row until `visit` returns false.
    fn scan(&self, visit: &mut dyn FnMut(&StoredRow) -> bool);
    /// Number of rows.
    fn len(&self) -> usize;
    /// Applies one batch of output rows' changes, in order. Stores override this to write a
    /// batch at once (the query thread calls it once per processed micro-batch).
    fn apply_changes(&self, changes: Vec<Change>) {
        for change in changes {
            match change {
                Change::Upsert(row) => self.upsert(row),
                Change::Delete(key, window) => self.delete(&key, window),
            }
        }
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The canonical bytes of a key without a serde: values with their types, so that a lookup value
/// cast to the key column's type finds the stored row.
fn debug_key_bytes(key: &[Value]) -> Vec<u8> {
    format!("{key:?}").into_bytes()
}

type Windows = BTreeMap<Option<WindowBounds>, StoredRow>;

/// An in-memory [`TableStore`]: rows by key bytes, then by window. With the table's key serde the
/// rows are ordered by their serialized keys, as a RocksDB store (and so ksqlDB) orders them,
/// which decides which rows a `LIMIT` returns.
#[derive(Default)]
pub struct MemoryStore {
    rows: RwLock<BTreeMap<Vec<u8>, Windows>>,
    key_serde: Option<Box<dyn RowSerde>>,
}

impl MemoryStore {
    /// A store ordering rows by their keys serialized with `key_serde`.
    pub fn with_key_serde(key_serde: Box<dyn RowSerde>) -> Self {
        MemoryStore {
            rows: RwLock::default(),
            key_serde: Some(key_serde),
        }
    }

    fn key_bytes(&self, key: &[Value]) -> Vec<u8> {
        match self.key_serde.as_ref().map(|s| s.serialize(Some(key))) {
            Some(Ok(Some(bytes))) => bytes,
            _ => debug_key_bytes(key),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Vec<u8>, Windows>> {
        self.rows.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<Vec<u8>, Windows>> {
        self.rows.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl TableStore for MemoryStore {
    fn upsert(&self, row: StoredRow) {
        let k = self.key_bytes(&row.key);
        self.write().entry(k).or_default().insert(row.window, row);
    }

    fn delete(&self, key: &[Value], window: Option<WindowBounds>) {
        let k = self.key_bytes(key);
        let mut rows = self.write();
        if let Some(windows) = rows.get_mut(&k) {
            windows.remove(&window);
            if windows.is_empty() {
                rows.remove(&k);
            }
        }
    }

    fn get(&self, key: &[Value]) -> Vec<StoredRow> {
        self.read()
            .get(&self.key_bytes(key))
            .map(|w| w.values().cloned().collect())
            .unwrap_or_default()
    }

    fn scan(&self, visit: &mut dyn FnMut(&StoredRow) -> bool) {
        for windows in self.read().values() {
            for row in windows.values() {
                if !visit(row) {
                    return;
                }
            }
        }
    }

    fn len(&self) -> usize {
        self.read().values().map(BTreeMap::len).sum()
    }
}

/// A table's materialization: how a query's output rows map to stored rows, and the store.
pub struct Materialization {
    /// For each output column of the query: whether it is a key column.
    key_flags: Vec<bool>,
    /// Position of the table's TIMESTAMP column in the output row, if any.
    timestamp_position: Option<usize>,
    pub store: Arc<dyn TableStore>,
}

impl Materialization {
    pub fn new(
        key_flags: Vec<bool>,
        timestamp_position: Option<usize>,
        store: Arc<dyn TableStore>,
    ) -> Self {
        Materialization {
            key_flags,
            timestamp_position,
            store,
        }
    }

    /// An in-memory materialization.
    pub fn in_memory(key_flags: Vec<bool>, timestamp_position: Option<usize>) -> Self {
        Self::new(
            key_flags,
            timestamp_position,
            Arc::new(MemoryStore::default()),
        )
    }

    /// Applies one output row of the table's query: a tombstone deletes, anything else upserts.
    /// Rows with a null key are not part of a table and are ignored.
    /// Applies the output rows of one micro-batch.
    pub fn apply_all(&self, rows: &[OutputRow]) {
        let changes: Vec<Change> = rows.iter().filter_map(|r| self.change_of(r)).collect();
        if !changes.is_empty() {
            self.store.apply_changes(changes);
        }
    }

    pub fn apply(&self, row: &OutputRow) {
        if let Some(change) = self.change_of(row) {
            self.store.apply_changes(vec![change]);
        }
    }

    /// What an output row changes in the table (nothing for a row without a key).
    fn change_of(&self, row: &OutputRow) -> Option<Change> {
        let mut key = Vec::new();
        let mut values = Vec::new();
        for (v, &is_key) in row.values.iter().zip(&self.key_flags) {
            if is_key {
                key.push(v.clone());
            } else {
                values.push(v.clone());
            }
        }
        if !key.is_empty() && key.iter().all(Value::is_null) {
            return None;
        }
        if row.null_value {
            return Some(Change::Delete(key, row.window));
        }
        let rowtime = match self.timestamp_position.and_then(|p| row.values.get(p)) {
            Some(Value::Bigint(t)) | Some(Value::Timestamp(t)) => *t,
            _ => row.timestamp,
        };
        Some(Change::Upsert(StoredRow {
            key,
            window: row.window,
            values,
            rowtime,
        }))
    }
}

/// Reads the table's topic (its changelog) to its end into `m` (see `bootstrap`).
pub fn bootstrap_from_topic(
    m: &Materialization,
    table: &runnel_plan::catalog::Source,
    kafka: &runnel_connect::kafka::KafkaConfig,
) -> Result<(), crate::EngineError> {
    let records = crate::runner::read_to_end(kafka, &table.topic)?;
    bootstrap(m, table, &records)
}

/// Rebuilds a table's state from the records of its topic (in offset order per partition):
/// a record with a value upserts its key (and window), a tombstone deletes it. Records that do
/// not decode are skipped.
pub fn bootstrap(
    m: &Materialization,
    table: &runnel_plan::catalog::Source,
    records: &[runnel_connect::kafka::Record],
) -> Result<(), crate::EngineError> {
    let (key_serde, value_serde) = crate::task::source_serdes(table)?;
    let mut skipped = 0usize;
    for r in records {
        let Some(key_bytes) = &r.key else {
            continue;
        };
        let (inner, window) = match &table.window {
            Some(w) => match runnel_connect::format::decode_windowed_key(
                key_bytes,
                crate::task::window_type(w.window_type),
                w.size_ms,
            ) {
                Ok((inner, w)) => (inner, Some((w.start, w.end))),
                Err(_) => {
                    skipped += 1;
                    continue;
                }
            },
            None => (key_bytes.clone(), None),
        };
        let Ok(Some(key)) = key_serde.deserialize(Some(&inner)) else {
            skipped += 1;
            continue;
        };
        match value_serde.deserialize(r.value.as_deref()) {
            Ok(Some(values)) => m.store.upsert(StoredRow {
                key,
                window,
                values,
                rowtime: r.timestamp,
            }),
            Ok(None) => m.store.delete(&key, window),
            Err(_) => skipped += 1,
        }
    }
    if skipped > 0 {
        tracing::warn!(table = %table.name, skipped, "records of the table's topic not materialized");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(values: Vec<Value>, window: Option<WindowBounds>, tombstone: bool) -> OutputRow {
        OutputRow {
            values,
            timestamp: 7,
            headers: vec![],
            partition: 0,
            offset: 0,
            null_value: tombstone,
            window,
        }
    }

    #[test]
    fn upserts_and_tombstones() {
        let m = Materialization::in_memory(vec![false, true, false], None);
        m.apply(&out(
            vec![Value::Int(1), Value::String("a".into()), Value::Int(2)],
            None,
            false,
        ));
        m.apply(&out(
            vec![Value::Int(3), Value::String("a".into()), Value::Int(4)],
            None,
            false,
        ));
        m.apply(&out(
            vec![Value::Int(5), Value::String("b".into()), Value::Int(6)],
            None,
            false,
        ));
        assert_eq!(m.store.len(), 2);
        let a = m.store.get(&[Value::String("a".into())]);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].values, vec![Value::Int(3), Value::Int(4)]);
        assert_eq!(a[0].rowtime, 7);
        m.apply(&out(
            vec![Value::Null, Value::String("a".into()), Value::Null],
            None,
            true,
        ));
        assert!(m.store.get(&[Value::String("a".into())]).is_empty());
        assert_eq!(m.store.len(), 1);
        // A key of another type is another key.
        assert!(m.store.get(&[Value::Int(1)]).is_empty());
    }

    #[test]
    fn windows_of_a_key_are_kept_apart() {
        let m = Materialization::in_memory(vec![true, false], None);
        for (w, c) in [((0, 10), 1), ((10, 20), 1), ((0, 10), 2)] {
            m.apply(&out(vec![Value::Int(1), Value::Bigint(c)], Some(w), false));
        }
        let rows = m.store.get(&[Value::Int(1)]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].window, Some((0, 10)));
        assert_eq!(rows[0].values, vec![Value::Bigint(2)]);
        m.apply(&out(vec![Value::Int(1), Value::Null], Some((0, 10)), true));
        assert_eq!(m.store.len(), 1);
        let mut seen = 0;
        m.store.scan(&mut |_| {
            seen += 1;
            true
        });
        assert_eq!(seen, 1);
    }
}

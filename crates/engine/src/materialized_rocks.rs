//! A [`TableStore`] in RocksDB, so that pull queries read a table's rows from local disk rather
//! than from a copy on the heap, as ksqlDB serves them from its Kafka Streams state stores.
//!
//! The store is a cache of the table's Kafka topic: the engine wipes it when the table's query
//! starts and [`crate::materialized::bootstrap`] refills it from the sink topic (the table's
//! changelog), so it needs no checkpoint of its own and can never disagree with Kafka.
//!
//! Layout (one entry kind in a [`StateStore`] of its own): the entry key is the row's key
//! serialized with the table's key format (the order ksqlDB's stores use, which decides the rows
//! a `LIMIT` returns), escaped and terminated so that one key is never a prefix of another, then
//! the window (`0`, or `1` + start + end as order-preserving big-endian). So all windows of a key
//! are one prefix scan, in window order. The value is the whole [`StoredRow`]: its rowtime, its
//! window, then its key and value columns in the self-describing key encoding of
//! [`runnel_plan::codec`], which needs no schema to read back.

use crate::materialized::{Change, StoredRow, TableStore, WindowBounds};
use runnel_connect::format::RowSerde;
use runnel_plan::codec::{decode_key, encode_key};
use runnel_plan::Value;
use runnel_state::{Batch, StateStore};
use std::path::Path;

/// Entry kind of table rows.
const KIND_ROW: u8 = 3;

pub struct RocksTableStore {
    store: StateStore,
    key_serde: Box<dyn RowSerde>,
}

impl RocksTableStore {
    /// Opens (and empties) the store at `path`; rows are ordered by `key_serde`'s bytes.
    pub fn open(path: &Path, key_serde: Box<dyn RowSerde>) -> Result<Self, String> {
        let (store, _) = StateStore::open_or_recreate(path).map_err(|e| e.to_string())?;
        let store = store.wipe().map_err(|e| e.to_string())?;
        Ok(RocksTableStore { store, key_serde })
    }

    fn key_prefix(&self, key: &[Value]) -> Vec<u8> {
        let serialized = match self.key_serde.serialize(Some(key)) {
            Ok(Some(bytes)) => bytes,
            // A key the format cannot write still needs a stable identity.
            _ => format!("{key:?}").into_bytes(),
        };
        encode_key(&[Value::Bytes(serialized)])
    }

    fn entry_key(&self, key: &[Value], window: Option<WindowBounds>) -> Vec<u8> {
        let mut k = self.key_prefix(key);
        push_window(&mut k, window);
        k
    }

    fn rows_with_prefix(&self, prefix: &[u8]) -> Vec<StoredRow> {
        let mut out = Vec::new();
        for entry in self.store.scan_prefix(KIND_ROW, 0, prefix) {
            match entry
                .map_err(|e| e.to_string())
                .and_then(|(_, v)| decode_row(&v))
            {
                Ok(row) => out.push(row),
                Err(e) => tracing::warn!("unreadable row in {}: {e}", self.path()),
            }
        }
        out
    }

    fn path(&self) -> String {
        self.store.path().display().to_string()
    }
}

fn push_window(out: &mut Vec<u8>, window: Option<WindowBounds>) {
    match window {
        None => out.push(0),
        Some((start, end)) => {
            out.push(1);
            out.extend_from_slice(&order_preserving(start));
            out.extend_from_slice(&order_preserving(end));
        }
    }
}

fn order_preserving(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

fn encode_row(row: &StoredRow) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&row.rowtime.to_be_bytes());
    match row.window {
        None => out.push(0),
        Some((start, end)) => {
            out.push(1);
            out.extend_from_slice(&start.to_be_bytes());
            out.extend_from_slice(&end.to_be_bytes());
        }
    }
    let key = encode_key(&row.key);
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(&key);
    out.extend_from_slice(&encode_key(&row.values));
    out
}

fn decode_row(bytes: &[u8]) -> Result<StoredRow, String> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if bytes.len() < n {
            return Err("truncated row".into());
        }
        let (head, tail) = bytes.split_at(n);
        *bytes = tail;
        Ok(head)
    }
    fn int(bytes: &mut &[u8]) -> Result<i64, String> {
        let mut b = [0u8; 8];
        b.copy_from_slice(take(bytes, 8)?);
        Ok(i64::from_be_bytes(b))
    }
    let mut rest = bytes;
    let rowtime = int(&mut rest)?;
    let window = match take(&mut rest, 1)?[0] {
        0 => None,
        _ => Some((int(&mut rest)?, int(&mut rest)?)),
    };
    let mut len = [0u8; 4];
    len.copy_from_slice(take(&mut rest, 4)?);
    let key = decode_key(take(&mut rest, u32::from_be_bytes(len) as usize)?)?;
    let values = decode_key(rest)?;
    Ok(StoredRow {
        key,
        window,
        values,
        rowtime,
    })
}

impl TableStore for RocksTableStore {
    fn upsert(&self, row: StoredRow) {
        self.apply_changes(vec![Change::Upsert(row)]);
    }

    fn delete(&self, key: &[Value], window: Option<WindowBounds>) {
        self.apply_changes(vec![Change::Delete(key.to_vec(), window)]);
    }

    /// One write batch per micro-batch of output rows: no read before a write, so that
    /// keeping the table costs the query thread one RocksDB memtable insert per row.
    fn apply_changes(&self, changes: Vec<Change>) {
        let mut batch = Batch::new();
        for change in &changes {
            match change {
                Change::Upsert(row) => batch.put(
                    KIND_ROW,
                    0,
                    &self.entry_key(&row.key, row.window),
                    &encode_row(row),
                ),
                Change::Delete(key, window) => {
                    batch.delete(KIND_ROW, 0, &self.entry_key(key, *window))
                }
            }
        }
        if let Err(e) = self.store.write(batch) {
            tracing::warn!("cannot write rows of {}: {e}", self.path());
        }
    }

    fn get(&self, key: &[Value]) -> Vec<StoredRow> {
        self.rows_with_prefix(&self.key_prefix(key))
    }

    fn scan(&self, visit: &mut dyn FnMut(&StoredRow) -> bool) {
        for entry in self.store.scan(KIND_ROW) {
            match entry
                .map_err(|e| e.to_string())
                .and_then(|(_, v)| decode_row(&v))
            {
                Ok(row) => {
                    if !visit(&row) {
                        return;
                    }
                }
                Err(e) => tracing::warn!("unreadable row in {}: {e}", self.path()),
            }
        }
    }

    /// Counted by a scan (rows are not counted as they are written, which would cost a read
    /// per write); only diagnostics ask.
    fn len(&self) -> usize {
        self.store.scan(KIND_ROW).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::materialized::MemoryStore;
    use runnel_connect::format::{key_serde, Column, FormatKind, FormatOptions};
    use runnel_sql::SqlType;

    fn serde() -> Box<dyn RowSerde> {
        key_serde(
            FormatKind::Kafka,
            &FormatOptions::default(),
            &[Column {
                name: "K".into(),
                ty: SqlType::String,
            }],
        )
        .expect("serde")
    }

    fn row(k: &str, window: Option<WindowBounds>, n: i32) -> StoredRow {
        StoredRow {
            key: vec![Value::String(k.into())],
            window,
            values: vec![Value::Int(n), Value::Null, Value::String(format!("v{n}"))],
            rowtime: 1_000 + i64::from(n),
        }
    }

    /// The RocksDB store answers every call as the in-memory store does (same rows, same order).
    #[test]
    fn behaves_like_the_memory_store() {
        let dir = tempfile::tempdir().expect("dir");
        let rocks = RocksTableStore::open(&dir.path().join("t"), serde()).expect("open");
        let memory = MemoryStore::with_key_serde(serde());
        let ops: Vec<(bool, StoredRow)> = vec![
            (true, row("b", None, 1)),
            (true, row("a", None, 2)),
            (true, row("ab", None, 3)),
            (true, row("b", None, 4)),
            (false, row("a", None, 0)),
            (true, row("w", Some((-5, 5)), 5)),
            (true, row("w", Some((10, 20)), 6)),
            (true, row("w", Some((0, 10)), 7)),
            (false, row("missing", None, 0)),
        ];
        for (upsert, r) in ops {
            for store in [&rocks as &dyn TableStore, &memory] {
                if upsert {
                    store.upsert(r.clone());
                } else {
                    store.delete(&r.key, r.window);
                }
            }
        }
        let all = |s: &dyn TableStore| {
            let mut rows = vec![];
            s.scan(&mut |r| {
                rows.push(r.clone());
                true
            });
            rows
        };
        assert_eq!(all(&rocks), all(&memory));
        assert_eq!(rocks.len(), memory.len());
        assert_eq!(rocks.len(), 5);
        for k in ["a", "b", "ab", "w", "x"] {
            let key = [Value::String(k.into())];
            assert_eq!(rocks.get(&key), memory.get(&key), "key {k}");
        }
        assert_eq!(rocks.get(&[Value::String("w".into())]).len(), 3);
    }

    /// A reopened store starts empty: the table is rebuilt from its topic.
    #[test]
    fn reopening_starts_empty() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("t");
        {
            let store = RocksTableStore::open(&path, serde()).expect("open");
            store.upsert(row("a", None, 1));
            assert_eq!(store.len(), 1);
        }
        let store = RocksTableStore::open(&path, serde()).expect("reopen");
        assert_eq!(store.len(), 0);
        assert!(store.get(&[Value::String("a".into())]).is_empty());
    }

    /// Key-lookup latency of a warm 100 k-row table (a figure, not a check):
    /// `cargo nextest run -p runnel-engine -E 'test(rocks_lookup_latency)' --run-ignored only --no-capture`
    #[test]
    #[ignore]
    fn rocks_lookup_latency() {
        let dir = tempfile::tempdir().expect("dir");
        let store = RocksTableStore::open(&dir.path().join("t"), serde()).expect("open");
        let rows = 100_000;
        for chunk in (0..rows).collect::<Vec<i32>>().chunks(1000) {
            store.apply_changes(
                chunk
                    .iter()
                    .map(|&n| Change::Upsert(row(&format!("key-{n}"), None, n)))
                    .collect(),
            );
        }
        let mut times = Vec::new();
        let mut x: u64 = 42;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = [Value::String(format!("key-{}", (x >> 33) % rows as u64))];
            let started = std::time::Instant::now();
            let found = store.get(&key);
            times.push(started.elapsed());
            assert_eq!(found.len(), 1);
        }
        times.sort();
        let at = |q: f64| times[((times.len() as f64) * q) as usize];
        println!(
            "RocksDB table key lookup over {rows} rows: p50 {:?}, p99 {:?}, max {:?}",
            at(0.5),
            at(0.99),
            times[times.len() - 1]
        );
    }
}

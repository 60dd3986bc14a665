//! Local state stores for stateful operators, kept in RocksDB.

//! Connecting queries to Kafka: the ksqlDB serialization formats (bytes ↔ rows) and the Kafka
//! clients (sources, sinks, admin, the embedded broker).

pub mod format;
pub mod kafka;

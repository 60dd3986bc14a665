//! A dry-run copy of the engine, to validate a whole request before any of it runs.
//!
//! ksqlDB validates every statement of a `/ksql` request against a sandboxed engine first, so a
//! bad statement in the middle of a request leaves the catalog, the queries and the topics
//! untouched. [`Engine::sandbox`] gives the same: a copy with the same catalog, session,
//! variables and (not running) persistent queries, whose backend is in memory. Its topics are a
//! snapshot of the real ones (names and partition counts, no records), so statements that
//! create, read or delete topics see what they would see on Kafka, and nothing they do reaches
//! Kafka: topics it creates or deletes, records it "produces" and queries it "starts" only exist
//! in the copy, which is dropped after validation.

use crate::{Backend, Engine, EngineError, MemoryTopic, PersistentQuery};
use std::collections::BTreeMap;

impl Engine {
    /// A copy of this engine for validation; see the module documentation.
    pub fn sandbox(&self) -> Result<Engine, EngineError> {
        let topics: BTreeMap<String, MemoryTopic> = match &self.backend {
            Backend::Memory(topics) => topics
                .iter()
                .map(|(name, t)| {
                    (
                        name.clone(),
                        MemoryTopic {
                            partitions: t.partitions,
                            records: Vec::new(),
                        },
                    )
                })
                .collect(),
            Backend::Kafka(kafka) => kafka
                .topics(None)?
                .into_iter()
                .map(|t| {
                    (
                        t.name,
                        MemoryTopic {
                            partitions: t.partitions,
                            records: Vec::new(),
                        },
                    )
                })
                .collect(),
        };
        let mut copy = Engine::new(Backend::Memory(topics), self.config.clone());
        copy.catalog = self.catalog.clone();
        copy.functions = self.functions.clone();
        copy.aggregates = self.aggregates.clone();
        copy.session = self.session.clone();
        copy.variables = self.variables.clone();
        copy.queries = self
            .queries
            .iter()
            .map(|q| PersistentQuery {
                id: q.id.clone(),
                statement: q.statement.clone(),
                sink: q.sink.clone(),
                sources: q.sources.clone(),
                task: q.task.clone(),
                running: None,
            })
            .collect();
        copy.next_query = self.next_query;
        copy.next_transient = self.next_transient;
        copy.sandboxed = matches!(self.backend, Backend::Kafka(_)) || self.sandboxed;
        Ok(copy)
    }
}

#[cfg(test)]
mod tests {
    use crate::Engine;

    #[test]
    fn sandbox_changes_stay_in_the_copy() {
        let mut engine = Engine::in_memory(Default::default());
        engine
            .execute_script(
                "CREATE STREAM S (K STRING KEY, V INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);",
            )
            .unwrap();
        let mut sandbox = engine.sandbox().unwrap();
        sandbox
            .execute_script(
                "CREATE STREAM T AS SELECT * FROM S; INSERT INTO S (K, V) VALUES ('a', 1); \
                 DROP STREAM T DELETE TOPIC; CREATE TYPE P AS STRUCT<A INT>;",
            )
            .unwrap();
        assert!(sandbox.catalog.custom_type("P").is_some());
        assert!(engine.catalog.source("T").is_none());
        assert!(engine.catalog.custom_type("P").is_none());
        assert!(engine.queries.is_empty());
        let crate::Backend::Memory(topics) = &engine.backend else {
            unreachable!()
        };
        assert!(
            topics["s"].records.is_empty(),
            "INSERT reached the real topic"
        );
        assert!(!topics.contains_key("T"));
    }

    #[test]
    fn sandbox_sees_what_the_engine_sees() {
        let mut engine = Engine::in_memory(Default::default());
        engine
            .execute_script(
                "CREATE STREAM S (V INT) WITH (kafka_topic='s', value_format='JSON', partitions=1); \
                 CREATE STREAM T AS SELECT * FROM S;",
            )
            .unwrap();
        let mut sandbox = engine.sandbox().unwrap();
        let e = sandbox.execute_script("DROP STREAM S;").unwrap_err();
        assert!(
            e.to_string()
                .contains("The following queries read from this source"),
            "{e}"
        );
        let id = engine.queries[0].id.clone();
        sandbox.execute_script(&format!("TERMINATE {id};")).unwrap();
        assert!(sandbox.queries.is_empty());
        assert_eq!(engine.queries.len(), 1);
    }
}

//! The command topic: the durable, ordered log of every statement that changed the catalog, so
//! a restarted server rebuilds its streams, tables, types and persistent queries.
//!
//! As in ksqlDB, a catalog-changing statement (CREATE/DROP of streams, tables and types, CSAS,
//! CTAS, INSERT INTO ... SELECT, TERMINATE) is validated first, then appended to
//! `_confluent-ksql-<service id>_command_topic` (one partition, `cleanup.policy=delete`,
//! `retention.ms=-1`), then executed; the record's offset is the command's
//! `commandSequenceNumber` and the `<n>` of the query ids it creates (`CSAS_<SINK>_<offset>`), so
//! a replay gives every query the same id and therefore the same consumer group and changelog:
//! queries resume from their committed offsets and restored state instead of starting over.
//!
//! Records have the command id (`stream/`S`/create`) as key and ksqlDB's command JSON as value
//! (`statement`, `streamsProperties`, `originalProperties`, `version`; Runnel re-plans the
//! statement instead of storing a physical plan). The statement is stored after variable
//! substitution, and `DROP ... DELETE TOPIC` is stored without `DELETE TOPIC` (the topic is
//! deleted once, when the statement runs, never again by a replay).
//!
//! Replay reads the topic from the start, skips everything before the last `TERMINATE CLUSTER`,
//! applies the commands in order with their recorded properties while only registering the
//! persistent queries, and starts the queries still alive at the end (so a query terminated
//! later in the log never runs). A command that fails on replay gets status `ERROR` and the
//! replay goes on, as ksqlDB's command runner does.

use crate::output::StatementOutput;
use crate::{Backend, Engine, EngineError};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use runnel_connect::kafka::{KafkaConfig, KafkaError};
use runnel_plan::catalog::Catalog;
use runnel_sql::{ParsedStatement, SourceKind, Statement};
use serde_json::{json, Map, Value as Json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// ksqlDB's `Command.VERSION` the records are written with.
pub const COMMAND_VERSION: u32 = 18;
/// The statement `POST /ksql/terminate` writes to the command topic.
pub const TERMINATE_CLUSTER: &str = "TERMINATE CLUSTER;";
/// Its command id.
pub const TERMINATE_CLUSTER_ID: &str = "cluster/TerminateCluster/terminate";
/// How long an append waits for the broker's acknowledgement.
const APPEND_TIMEOUT: Duration = Duration::from_secs(30);

/// `_confluent-ksql-<service id>_command_topic`.
pub fn command_topic(service_id: &str) -> String {
    format!("_confluent-ksql-{service_id}_command_topic")
}

/// One record of the command topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub statement: String,
    /// The session properties the statement ran with (request overrides and SETs).
    pub streams_properties: Map<String, Json>,
    /// The server configuration at the time (informational: a restart uses its own).
    pub original_properties: Map<String, Json>,
    pub version: u32,
}

impl Command {
    fn new(statement: String, engine: &Engine) -> Self {
        let strings = |m: &BTreeMap<String, String>| -> Map<String, Json> {
            m.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
        };
        Command {
            statement,
            streams_properties: strings(&engine.session),
            original_properties: strings(&engine.config),
            version: COMMAND_VERSION,
        }
    }

    pub fn to_json(&self) -> Json {
        json!({
            "statement": self.statement,
            "streamsProperties": self.streams_properties,
            "originalProperties": self.original_properties,
            "version": self.version,
        })
    }

    pub fn from_json(bytes: &[u8]) -> Result<Command, String> {
        let v: Json = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let statement = v["statement"]
            .as_str()
            .ok_or("command has no statement")?
            .to_string();
        let object = |key: &str| v[key].as_object().cloned().unwrap_or_default();
        Ok(Command {
            statement,
            streams_properties: object("streamsProperties"),
            original_properties: object("originalProperties"),
            version: v["version"].as_u64().unwrap_or(0) as u32,
        })
    }
}

/// What `GET /status/<command id>` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandStatus {
    /// `SUCCESS` or `ERROR` (commands run synchronously, so never `QUEUED` for long).
    pub status: String,
    pub message: String,
    pub query_id: Option<String>,
}

/// Whether a statement changes the catalog and therefore goes through the command topic.
pub fn is_command(statement: &Statement) -> bool {
    command_id(statement).is_some()
}

fn kind_word(kind: SourceKind) -> &'static str {
    if kind == SourceKind::Stream {
        "stream"
    } else {
        "table"
    }
}

/// ksqlDB's command id (`<type>/<entity>/<action>`) of a catalog-changing statement.
pub fn command_id(statement: &Statement) -> Option<String> {
    Some(match statement {
        Statement::CreateSource(c) => format!("{}/`{}`/create", kind_word(c.kind), c.name),
        Statement::CreateAsSelect(c) => format!("{}/`{}`/create", kind_word(c.kind), c.name),
        Statement::InsertInto { target, .. } => format!("stream/`{target}`/create"),
        Statement::DropSource { kind, name, .. } => format!("{}/`{name}`/drop", kind_word(*kind)),
        Statement::CreateType { name, .. } => format!("type/{name}/create"),
        Statement::DropType { name, .. } => format!("type/{name}/drop"),
        Statement::Terminate { query_id } => format!(
            "terminate/{}/execute",
            query_id
                .as_deref()
                .map(str::to_uppercase)
                .unwrap_or_else(|| "ALL".into())
        ),
        _ => return None,
    })
}

/// The text a statement is logged with: `DROP ... DELETE TOPIC` loses `DELETE TOPIC`, so a
/// replay never deletes a topic that a later statement may have created again.
fn logged_text(stmt: &ParsedStatement) -> String {
    match &stmt.statement {
        Statement::DropSource {
            kind,
            name,
            if_exists,
            delete_topic: true,
        } => format!(
            "DROP {}{} `{}`;",
            kind_word(*kind).to_uppercase(),
            if *if_exists { " IF EXISTS" } else { "" },
            name.replace('`', "``")
        ),
        _ => stmt.text.clone(),
    }
}

/// Delivery reports of the command producer: the offset of the last record, or its error.
#[derive(Default)]
struct Delivery {
    result: Mutex<Option<Result<i64, String>>>,
}

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        use rdkafka::message::Message as _;
        let r = match result {
            Ok(m) => Ok(m.offset()),
            Err((e, _)) => Err(e.to_string()),
        };
        if let Ok(mut slot) = self.result.lock() {
            *slot = Some(r);
        }
    }
}

/// A command log kept in memory: (command id, command JSON) by offset.
pub type MemoryRecords = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

enum Store {
    /// Records by offset (memory-backed engines and tests); shareable to simulate a restart.
    Memory(MemoryRecords),
    Kafka {
        kafka: KafkaConfig,
        producer: BaseProducer<Delivery>,
    },
}

/// What a replay did.
#[derive(Debug, Default)]
pub struct ReplaySummary {
    /// Commands applied (after the last TERMINATE CLUSTER).
    pub applied: usize,
    /// Commands that failed, with their offset, statement and error.
    pub failed: Vec<(i64, String, String)>,
    /// Persistent queries started at the end of the replay.
    pub started: usize,
}

/// The command topic of one engine; see the module documentation.
pub struct CommandLog {
    store: Store,
    topic: String,
    statuses: BTreeMap<String, CommandStatus>,
    /// Offset of the last command applied to the engine (-1: none).
    applied: Arc<AtomicI64>,
}

impl CommandLog {
    /// A log kept in memory (for memory-backed engines and tests).
    pub fn in_memory(service_id: &str) -> Self {
        Self::shared_memory(service_id, Arc::new(Mutex::new(Vec::new())))
    }

    /// A memory log over `records`, which outlive it (a test's "restart" replays them).
    pub fn shared_memory(service_id: &str, records: MemoryRecords) -> Self {
        CommandLog {
            store: Store::Memory(records),
            topic: command_topic(service_id),
            statuses: BTreeMap::new(),
            applied: Arc::new(AtomicI64::new(-1)),
        }
    }

    /// The engine's command topic: created (one partition, kept forever) unless it exists.
    pub fn open(engine: &Engine) -> Result<Self, EngineError> {
        let topic = command_topic(&engine.service_id());
        let Backend::Kafka(kafka) = &engine.backend else {
            return Ok(Self::in_memory(&engine.service_id()));
        };
        match kafka.topic(&topic)? {
            Some(t) if t.partitions != 1 => tracing::warn!(
                "command topic {topic} has {} partitions; only partition 0 is used",
                t.partitions
            ),
            Some(_) => {}
            None => {
                let replicas = engine
                    .property("ksql.internal.topic.replicas")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(1);
                create_command_topic(kafka, &topic, replicas)?;
            }
        }
        let mut config: ClientConfig = kafka.client_config();
        config.set("acks", "all");
        config.set("linger.ms", "0");
        config.set("message.timeout.ms", "30000");
        let producer = config
            .create_with_context(Delivery::default())
            .map_err(KafkaError::from)?;
        Ok(CommandLog {
            store: Store::Kafka {
                kafka: kafka.clone(),
                producer,
            },
            topic,
            statuses: BTreeMap::new(),
            applied: Arc::new(AtomicI64::new(-1)),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The offset of the last applied command, shared so requests can wait for it without
    /// holding the engine.
    pub fn applied_handle(&self) -> Arc<AtomicI64> {
        self.applied.clone()
    }

    pub fn last_applied(&self) -> i64 {
        self.applied.load(Ordering::SeqCst)
    }

    /// Every command's status, by command id (the latest command of an id wins).
    pub fn statuses(&self) -> &BTreeMap<String, CommandStatus> {
        &self.statuses
    }

    pub fn status(&self, command_id: &str) -> Option<&CommandStatus> {
        self.statuses.get(command_id)
    }

    /// Appends a command and waits for the broker's acknowledgement; returns its offset.
    fn append(&mut self, command_id: &str, command: &Command) -> Result<i64, EngineError> {
        let value = command.to_json().to_string().into_bytes();
        match &mut self.store {
            Store::Memory(records) => {
                let mut records = records.lock().unwrap_or_else(|e| e.into_inner());
                records.push((command_id.to_string(), value));
                Ok(records.len() as i64 - 1)
            }
            Store::Kafka { producer, .. } => {
                let fail = |e: String| {
                    EngineError::Internal(format!(
                        "Could not write the statement to the command topic {}: {e}",
                        self.topic
                    ))
                };
                if let Ok(mut slot) = producer.context().result.lock() {
                    *slot = None;
                }
                producer
                    .send(
                        BaseRecord::to(&self.topic)
                            .partition(0)
                            .key(command_id.as_bytes())
                            .payload(&value),
                    )
                    .map_err(|(e, _)| fail(e.to_string()))?;
                let deadline = Instant::now() + APPEND_TIMEOUT;
                loop {
                    producer.poll(Duration::from_millis(5));
                    let done = producer
                        .context()
                        .result
                        .lock()
                        .ok()
                        .and_then(|mut s| s.take());
                    match done {
                        Some(Ok(offset)) => return Ok(offset),
                        Some(Err(e)) => return Err(fail(e)),
                        None if Instant::now() > deadline => {
                            return Err(fail("no acknowledgement within 30 s".into()))
                        }
                        None => {}
                    }
                }
            }
        }
    }

    /// Every record of the topic as (offset, key, value).
    fn read(&self) -> Result<Vec<(i64, String, Vec<u8>)>, EngineError> {
        match &self.store {
            Store::Memory(records) => Ok(records
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .enumerate()
                .map(|(i, (k, v))| (i as i64, k.clone(), v.clone()))
                .collect()),
            Store::Kafka { kafka, .. } => Ok(read_all(kafka, &self.topic)?
                .into_iter()
                .map(|r| {
                    let key = r
                        .key
                        .map(|k| String::from_utf8_lossy(&k).into_owned())
                        .unwrap_or_default();
                    (r.offset, key, r.value.unwrap_or_default())
                })
                .collect()),
        }
    }

    fn record(
        &mut self,
        offset: i64,
        command_id: &str,
        result: &Result<StatementOutput, EngineError>,
    ) {
        let status = match result {
            Ok(StatementOutput::Status {
                message, query_id, ..
            }) => CommandStatus {
                status: "SUCCESS".into(),
                message: message.clone(),
                query_id: query_id.clone(),
            },
            Ok(StatementOutput::Warning { message, .. }) => CommandStatus {
                status: "SUCCESS".into(),
                message: message.clone(),
                query_id: None,
            },
            Ok(_) => CommandStatus {
                status: "SUCCESS".into(),
                message: String::new(),
                query_id: None,
            },
            Err(e) => CommandStatus {
                status: "ERROR".into(),
                message: e.to_string(),
                query_id: None,
            },
        };
        self.statuses.insert(command_id.to_string(), status);
        self.applied.fetch_max(offset, Ordering::SeqCst);
    }

    /// Executes a statement; a catalog-changing one is appended to the command topic first
    /// and its offset returned with the output. The caller validates the statement first (a
    /// command that fails here stays in the log with status `ERROR`).
    pub fn execute(
        &mut self,
        engine: &mut Engine,
        stmt: &ParsedStatement,
    ) -> Result<(StatementOutput, Option<i64>), EngineError> {
        let Some(id) = command_id(&stmt.statement) else {
            return engine.execute(stmt).map(|out| (out, None));
        };
        let offset = self.append(&id, &Command::new(logged_text(stmt), engine))?;
        engine.next_query = offset.max(0) as u64;
        let result = engine.execute(stmt);
        self.record(offset, &id, &result);
        result.map(|out| (out, Some(offset)))
    }

    /// Rebuilds the engine from the log; see the module documentation.
    pub fn replay(&mut self, engine: &mut Engine) -> Result<ReplaySummary, EngineError> {
        let records = self.read()?;
        let commands: Vec<(i64, String, Result<Command, String>)> = records
            .into_iter()
            .map(|(offset, key, value)| (offset, key, Command::from_json(&value)))
            .collect();
        let start = commands
            .iter()
            .rposition(|(_, _, c)| c.as_ref().is_ok_and(|c| c.statement == TERMINATE_CLUSTER))
            .map(|i| i + 1)
            .unwrap_or(0);
        if let Some((offset, _, _)) = commands.last() {
            self.applied.store(*offset, Ordering::SeqCst);
        }
        let mut summary = ReplaySummary::default();
        engine.deferred_starts = Some(Vec::new());
        let saved_session = std::mem::take(&mut engine.session);
        for (offset, key, command) in commands.into_iter().skip(start) {
            let command = match command {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(offset, "unreadable command in {}: {e}", self.topic);
                    summary.failed.push((offset, String::new(), e));
                    continue;
                }
            };
            engine.session = command
                .streams_properties
                .iter()
                .map(|(k, v)| {
                    let text = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    (k.clone(), text)
                })
                .collect();
            // The statement was stored after variable substitution: parse it as it is.
            let result = runnel_sql::parse_statements(&command.statement)
                .map_err(EngineError::from)
                .and_then(|stmts| match stmts.as_slice() {
                    [stmt] => {
                        engine.next_query = offset.max(0) as u64;
                        engine.execute(stmt)
                    }
                    _ => Err(EngineError::Internal(format!(
                        "expected one statement in command at offset {offset}"
                    ))),
                });
            if let Err(e) = &result {
                tracing::warn!(offset, statement = %command.statement, "command failed on replay: {e}");
                summary
                    .failed
                    .push((offset, command.statement.clone(), e.to_string()));
            } else {
                summary.applied += 1;
            }
            self.record(offset, &key, &result);
        }
        engine.session = saved_session;
        let deferred = engine.deferred_starts.take().unwrap_or_default();
        for i in 0..engine.queries.len() {
            if engine.queries[i].running.is_some() {
                continue;
            }
            let id = engine.queries[i].id.clone();
            let task = engine.queries[i].task.clone();
            let sink = engine.queries[i].sink.clone();
            let reset = deferred
                .iter()
                .rev()
                .find(|(d, _)| *d == id)
                .map(|(_, r)| r.clone())
                .unwrap_or_else(|| "earliest".into());
            match engine.spawn_query(&id, &sink, &task, reset) {
                Ok(running) => {
                    summary.started += usize::from(running.is_some());
                    engine.queries[i].running = running;
                }
                Err(e) => {
                    tracing::error!(query = %id, "cannot restart query: {e}");
                    summary.failed.push((-1, id, e.to_string()));
                }
            }
        }
        Ok(summary)
    }

    /// `POST /ksql/terminate`: logs `TERMINATE CLUSTER;` (a replay starts after it), stops every
    /// persistent query, deletes the sink topics of CREATE ... AS SELECT sources whose topic
    /// `delete_topic` accepts and the queries' internal topics, and empties the catalog.
    pub fn terminate_cluster(
        &mut self,
        engine: &mut Engine,
        delete_topic: &dyn Fn(&str) -> bool,
        properties: Map<String, Json>,
    ) -> Result<(StatementOutput, i64), EngineError> {
        let mut command = Command::new(TERMINATE_CLUSTER.to_string(), engine);
        command.streams_properties.extend(properties);
        let offset = self.append(TERMINATE_CLUSTER_ID, &command)?;
        let result = engine.terminate_cluster(delete_topic).map(|deleted| {
            let message = if deleted.is_empty() {
                "Cluster terminated.".to_string()
            } else {
                format!("Cluster terminated. Deleted topics: {}", deleted.join(", "))
            };
            StatementOutput::status(TERMINATE_CLUSTER, TERMINATE_CLUSTER_ID.into(), message)
        });
        self.statuses.clear();
        self.record(offset, TERMINATE_CLUSTER_ID, &result);
        result.map(|out| (out, offset))
    }
}

fn create_command_topic(
    kafka: &KafkaConfig,
    topic: &str,
    replicas: i32,
) -> Result<(), EngineError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    if let Some(broker) = &kafka.embedded {
        // The embedded broker keeps everything it can anyway and takes no topic configs.
        broker.create_topic(topic, 1)?;
        return Ok(());
    }
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        kafka.client_config().create().map_err(KafkaError::from)?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(replicas))
        .set("cleanup.policy", "delete")
        .set("retention.ms", "-1");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures::executor::block_on(admin.create_topics([&new], &opts))
        .map_err(KafkaError::from)?;
    for r in results {
        if let Err((t, code)) = r {
            if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                return Err(KafkaError::Other(format!(
                    "Failed to create command topic {t}: {code}"
                ))
                .into());
            }
        }
    }
    Ok(())
}

impl Engine {
    /// The effect of TERMINATE CLUSTER on this engine; returns the topics it deleted.
    pub fn terminate_cluster(
        &mut self,
        delete_topic: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<String>, EngineError> {
        self.shutdown();
        let mut topics: Vec<String> = self
            .catalog
            .sources()
            .filter(|s| s.created_by.is_some() && delete_topic(&s.topic))
            .map(|s| s.topic.clone())
            .collect();
        let service = self.service_id();
        topics.extend(
            self.queries
                .iter()
                .filter(|q| q.task.is_stateful())
                .map(|q| {
                    format!(
                "_confluent-ksql-{service}query_{}-Aggregate-Aggregate-Materialize-changelog",
                q.id
            )
                }),
        );
        self.queries.clear();
        self.catalog = Catalog::default();
        let mut deleted = Vec::new();
        let mut failed = Vec::new();
        for topic in topics {
            if self.topic_info(&topic)?.is_none() {
                continue;
            }
            let result = match &mut self.backend {
                Backend::Kafka(k) => k.delete_topic(&topic).map_err(EngineError::from),
                Backend::Memory(t) => {
                    t.remove(&topic);
                    Ok(())
                }
            };
            match result {
                Ok(()) => deleted.push(topic),
                Err(e) => {
                    tracing::warn!("cannot delete {topic}: {e}");
                    failed.push(topic);
                }
            }
        }
        if !failed.is_empty() {
            return Err(EngineError::statement(format!(
                "Exception while deleting topics: {}",
                failed.join(", ")
            )));
        }
        Ok(deleted)
    }
}

/// Reads a whole topic partition 0 (until its end, or until it has been idle for a while:
/// some brokers report wrong high watermarks).
pub(crate) fn read_all(
    kafka: &KafkaConfig,
    topic: &str,
) -> Result<Vec<runnel_connect::kafka::Record>, crate::EngineError> {
    use rdkafka::consumer::Consumer as _;
    use rdkafka::{Offset, TopicPartitionList};
    let consumer = kafka.consumer(
        &format!("_runnel-restore-{}", chrono::Utc::now().timestamp_micros()),
        "earliest",
    )?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(runnel_connect::kafka::KafkaError::from)?;
    consumer
        .assign(&tpl)
        .map_err(runnel_connect::kafka::KafkaError::from)?;
    let high = consumer
        .fetch_watermarks(topic, 0, std::time::Duration::from_secs(10))
        .map(|(_, h)| h)
        .unwrap_or(-1);
    let mut out = Vec::new();
    if high == 0 {
        return Ok(out);
    }
    // The high watermark tells when the end is near, but some brokers report it wrong, so the
    // read only ends once the topic has also been quiet for a moment.
    let mut idle_since = std::time::Instant::now();
    let mut reached_high = false;
    loop {
        match consumer.poll(std::time::Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let r = runnel_connect::kafka::record_of(&m);
                reached_high |= high > 0 && r.offset >= high - 1;
                out.push(r);
                idle_since = std::time::Instant::now();
            }
            Some(Err(e)) => tracing::warn!("restore of {topic}: {e}"),
            None => {
                let quiet = if reached_high { 2000 } else { 5000 };
                if idle_since.elapsed() > std::time::Duration::from_millis(quiet) {
                    break;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(log: &mut CommandLog, engine: &mut Engine, sql: &str) -> Vec<Option<i64>> {
        let mut seqs = Vec::new();
        for stmt in engine.parse(sql).unwrap() {
            let (_, seq) = log.execute(engine, &stmt).unwrap();
            seqs.push(seq);
        }
        seqs
    }

    const DDL: &str = "CREATE STREAM S (K STRING KEY, V INT) WITH (kafka_topic='s', value_format='JSON', partitions=1); \
        CREATE TABLE T (ID STRING PRIMARY KEY, X INT) WITH (kafka_topic='t', value_format='JSON', partitions=1); \
        CREATE STREAM D AS SELECT K, V * 2 AS W FROM S; \
        CREATE TABLE C AS SELECT K, COUNT(*) AS N FROM S GROUP BY K; \
        SET 'auto.offset.reset'='latest'; \
        CREATE TYPE P AS STRUCT<A INT>; \
        INSERT INTO S (K, V) VALUES ('a', 1);";

    #[test]
    fn commands_get_offsets_and_query_ids_from_them() {
        let mut engine = Engine::in_memory(Default::default());
        let mut log = CommandLog::in_memory("default_");
        let seqs = run(&mut log, &mut engine, DDL);
        assert_eq!(
            seqs,
            vec![Some(0), Some(1), Some(2), Some(3), None, Some(4), None]
        );
        let ids: Vec<&str> = engine.queries.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids, vec!["CSAS_D_2", "CTAS_C_3"]);
        assert_eq!(log.last_applied(), 4);
        assert_eq!(log.topic(), "_confluent-ksql-default__command_topic");
        let s = log.status("stream/`D`/create").unwrap();
        assert_eq!(s.status, "SUCCESS");
        assert_eq!(s.query_id.as_deref(), Some("CSAS_D_2"));
        assert_eq!(log.status("type/P/create").unwrap().status, "SUCCESS");
    }

    #[test]
    fn replay_rebuilds_catalog_queries_and_properties() {
        let records = Arc::new(Mutex::new(Vec::new()));
        let mut engine = Engine::in_memory(Default::default());
        let mut log = CommandLog::shared_memory("default_", records.clone());
        run(&mut log, &mut engine, DDL);
        run(
            &mut log,
            &mut engine,
            "CREATE STREAM E AS SELECT * FROM S; TERMINATE CSAS_E_5; DROP STREAM E DELETE TOPIC; \
             CREATE STREAM E AS SELECT K, V FROM S;",
        );
        // The SET before CREATE TYPE was recorded with it; the DROP lost DELETE TOPIC.
        let stored = records.lock().unwrap().clone();
        let set = Command::from_json(&stored[4].1).unwrap();
        assert_eq!(set.streams_properties["auto.offset.reset"], "latest");
        assert_eq!(
            Command::from_json(&stored[7].1).unwrap().statement,
            "DROP STREAM `E`;"
        );
        assert_eq!(stored[6].0, "terminate/CSAS_E_5/execute");

        let mut restarted = Engine::in_memory(Default::default());
        let mut log2 = CommandLog::shared_memory("default_", records);
        let summary = log2.replay(&mut restarted).unwrap();
        assert!(summary.failed.is_empty(), "{:?}", summary.failed);
        assert_eq!(summary.applied, 9);
        let names =
            |e: &Engine| -> Vec<String> { e.catalog.sources().map(|s| s.name.clone()).collect() };
        assert_eq!(names(&restarted), names(&engine));
        let ids = |e: &Engine| -> Vec<String> { e.queries.iter().map(|q| q.id.clone()).collect() };
        assert_eq!(ids(&restarted), vec!["CSAS_D_2", "CTAS_C_3", "CSAS_E_8"]);
        assert_eq!(ids(&restarted), ids(&engine));
        assert!(restarted.catalog.custom_type("P").is_some());
        assert!(restarted.session.is_empty());
        assert_eq!(log2.last_applied(), 8);
        assert_eq!(
            log2.status("stream/`E`/create")
                .unwrap()
                .query_id
                .as_deref(),
            Some("CSAS_E_8")
        );
        // New commands continue after the replayed ones.
        assert_eq!(
            run(&mut log2, &mut restarted, "DROP TYPE P;"),
            vec![Some(9)]
        );
    }

    #[test]
    fn failed_commands_are_recorded_and_skipped_on_replay() {
        let records = Arc::new(Mutex::new(Vec::new()));
        let mut engine = Engine::in_memory(Default::default());
        let mut log = CommandLog::shared_memory("default_", records.clone());
        let stmt = engine.parse("DROP STREAM NOPE;").unwrap().remove(0);
        assert!(log.execute(&mut engine, &stmt).is_err());
        assert_eq!(log.status("stream/`NOPE`/drop").unwrap().status, "ERROR");
        run(&mut log, &mut engine, "CREATE TYPE P AS INT;");
        records
            .lock()
            .unwrap()
            .push(("junk".into(), b"not json".to_vec()));
        let mut restarted = Engine::in_memory(Default::default());
        let summary = CommandLog::shared_memory("default_", records)
            .replay(&mut restarted)
            .unwrap();
        assert_eq!(summary.applied, 1);
        assert_eq!(summary.failed.len(), 2);
        assert!(restarted.catalog.custom_type("P").is_some());
    }

    #[test]
    fn terminate_cluster_empties_the_catalog_and_replays_start_after_it() {
        let records = Arc::new(Mutex::new(Vec::new()));
        let mut engine = Engine::in_memory(Default::default());
        let mut log = CommandLog::shared_memory("default_", records.clone());
        run(&mut log, &mut engine, DDL);
        let (out, offset) = log
            .terminate_cluster(&mut engine, &|t| t == "D", Map::new())
            .unwrap();
        assert_eq!(offset, 5);
        assert!(matches!(out, StatementOutput::Status { .. }));
        assert!(engine.queries.is_empty());
        assert_eq!(engine.catalog.sources().count(), 0);
        let crate::Backend::Memory(topics) = &engine.backend else {
            unreachable!()
        };
        assert!(!topics.contains_key("D"), "sink topic kept");
        assert!(topics.contains_key("C") && topics.contains_key("s"));
        run(&mut log, &mut engine, "CREATE TYPE Q AS INT;");
        let mut restarted = Engine::in_memory(Default::default());
        let summary = CommandLog::shared_memory("default_", records)
            .replay(&mut restarted)
            .unwrap();
        assert_eq!(summary.applied, 1);
        assert_eq!(restarted.catalog.sources().count(), 0);
        assert!(restarted.catalog.custom_type("Q").is_some());
        assert!(restarted.catalog.custom_type("P").is_none());
    }
}

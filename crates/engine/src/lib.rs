//! The engine: runs ksqlDB statements and owns the catalog and the queries.
//!
//! The CLI, the test runner and (later) the REST server all go through `Engine::execute_script`.
//! The engine has two backends: Kafka (topics on a real or embedded broker; persistent queries
//! run on their own threads) and memory (topics are in-process vectors and nothing runs by itself:
//! the deterministic driver in `driver` feeds the same `QueryTask`s record by record).

pub mod command_log;
pub mod driver;
pub mod materialized;
pub mod materialized_rocks;
pub mod output;
mod partitioned;
pub mod pull;
pub mod pull_cache;
pub mod repartition;
pub mod runner;
pub mod sandbox;
pub mod state;
pub mod task;

use output::{QuerySummary, StatementOutput};
use runnel_connect::kafka::{flush, send, KafkaConfig, KafkaError, Record, TopicInfo};
use runnel_plan::catalog::{Catalog, ColumnKind, Source};
use runnel_plan::ddl::{self, FormatDefaults};
use runnel_plan::expr::{Analyzer, Scope};
use runnel_plan::functions::{FunctionConfig, FunctionRegistry};
use runnel_plan::query::{plan_select, PlanOptions, PlanTarget, SelectPlan, ROWTIME};
use runnel_plan::{PlanError, Value};
use runnel_sql::{ParseError, ParsedStatement, SourceKind, Statement};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use task::QueryTask;

/// What went wrong with a statement. The variants follow ksqlDB's exception kinds, which clients
/// and the conformance tests tell apart.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The text is not valid SQL (`ParseFailedException`).
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// The statement is valid SQL but cannot be executed (`KsqlStatementException`).
    #[error("{message}")]
    Statement { message: String, unsupported: bool },
    #[error("{0}")]
    Kafka(#[from] KafkaError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    pub fn statement(message: impl Into<String>) -> Self {
        EngineError::Statement {
            message: message.into(),
            unsupported: false,
        }
    }

    pub fn unsupported(feature: &str) -> Self {
        EngineError::from(PlanError::unsupported(feature))
    }
}

impl From<PlanError> for EngineError {
    fn from(e: PlanError) -> Self {
        EngineError::Statement {
            message: e.message,
            unsupported: e.unsupported,
        }
    }
}

/// A statement that failed, with the statement's text.
#[derive(Debug, thiserror::Error)]
#[error("{error}\nStatement: {statement}")]
pub struct StatementError {
    pub statement: String,
    pub error: EngineError,
    /// Outputs of the statements before it in the same script.
    pub completed: Vec<StatementOutput>,
}

/// An in-process topic of the memory backend.
#[derive(Debug, Clone, Default)]
pub struct MemoryTopic {
    pub partitions: i32,
    pub records: Vec<Record>,
}

pub enum Backend {
    Kafka(KafkaConfig),
    Memory(BTreeMap<String, MemoryTopic>),
}

/// A persistent query (CSAS, CTAS, INSERT INTO).
pub struct PersistentQuery {
    pub id: String,
    pub statement: String,
    pub sink: String,
    pub sources: Vec<String>,
    pub task: Arc<QueryTask>,
    pub running: Option<runner::Running>,
}

/// Properties ksqlDB defaults that Runnel reads.
pub const SERVICE_ID: &str = "ksql.service.id";
pub const AUTO_OFFSET_RESET: &str = "auto.offset.reset";
/// ksqlDB's `ksql.streams.cache.max.bytes.buffering` default.
pub const DEFAULT_CACHE_MAX_BYTES: usize = 10_000_000;
/// Bound of an aggregation's in-memory working state when it has a local store (Runnel's
/// own property; see `Engine::state_memory`).
pub const STATE_MEMORY_MAX_BYTES: &str = "runnel.state.memory.max.bytes";
/// Its default: 256 MiB per query.
pub const DEFAULT_STATE_MEMORY_MAX_BYTES: usize = 256 << 20;
/// Kafka Streams' `state.dir`; also read as `ksql.streams.state.dir` (see `Engine::property`).
pub const STATE_DIR: &str = "state.dir";

pub struct Engine {
    pub catalog: Catalog,
    pub functions: FunctionRegistry,
    pub aggregates: runnel_plan::aggregates::AggregateRegistry,
    /// Server/system configuration (`ksql.*`, `ksql.streams.*`).
    pub config: BTreeMap<String, String>,
    /// Session overrides from SET.
    pub session: BTreeMap<String, String>,
    pub variables: HashMap<String, String>,
    /// Persistent queries in creation order.
    pub queries: Vec<PersistentQuery>,
    pub backend: Backend,
    next_query: u64,
    next_transient: u64,
    /// While replaying the command topic: persistent queries are registered but not started
    /// (id, auto.offset.reset), so queries terminated later in the log never run.
    deferred_starts: Option<Vec<(String, String)>>,
    /// A validation copy of a Kafka engine (see `sandbox`): topics that do not exist are errors
    /// as on Kafka, although its backend is in memory.
    sandboxed: bool,
    /// Tables that pull queries can read, by table name (CTAS sinks and SOURCE tables).
    pub materialized: HashMap<String, Arc<materialized::Materialization>>,
    /// Planned pull queries by statement shape (bounded, see `pull_cache`); cleared whenever a
    /// statement may change the catalog.
    pub(crate) pull_plans: pull_cache::PlanCache,
    next_pull: u64,
    /// How far the deterministic driver has read each query's source (memory backend).
    driver_positions: HashMap<String, usize>,
    /// Push queries of the memory backend, fed by the driver.
    memory_pushes: Vec<driver::MemoryPush>,
}

fn quote_ident(name: &str) -> String {
    format!("`{name}`")
}

impl Engine {
    pub fn new(backend: Backend, config: BTreeMap<String, String>) -> Self {
        Engine {
            catalog: Catalog::default(),
            functions: FunctionRegistry::builtin(),
            aggregates: runnel_plan::aggregates::AggregateRegistry::builtin(),
            config,
            session: BTreeMap::new(),
            variables: HashMap::new(),
            queries: Vec::new(),
            backend,
            next_query: 0,
            next_transient: 0,
            deferred_starts: None,
            sandboxed: false,
            materialized: HashMap::new(),
            pull_plans: Default::default(),
            next_pull: 0,
            driver_positions: HashMap::new(),
            memory_pushes: Vec::new(),
        }
    }

    fn next_pull_id(&mut self) -> u64 {
        self.next_pull += 1;
        self.next_pull
    }

    /// An engine whose topics live in memory (for the deterministic test driver).
    pub fn in_memory(config: BTreeMap<String, String>) -> Self {
        Engine::new(Backend::Memory(BTreeMap::new()), config)
    }

    /// A property: session override, then configuration (also under `ksql.streams.`), then default.
    pub fn property(&self, name: &str) -> Option<String> {
        let streams = format!("ksql.streams.{name}");
        self.session
            .get(name)
            .or_else(|| self.session.get(&streams))
            .or_else(|| self.config.get(name))
            .or_else(|| self.config.get(&streams))
            .cloned()
    }

    pub fn service_id(&self) -> String {
        self.property(SERVICE_ID)
            .unwrap_or_else(|| "default_".to_string())
    }

    fn format_defaults(&self) -> FormatDefaults {
        FormatDefaults {
            key_format: self
                .property("ksql.persistence.default.format.key")
                .unwrap_or_else(|| "KAFKA".into()),
            value_format: self.property("ksql.persistence.default.format.value"),
            wrap_single_values: self
                .property("ksql.persistence.wrap.single.values")
                .and_then(|v| v.parse().ok()),
        }
    }

    fn plan(
        &self,
        query: &runnel_sql::Query,
        target: PlanTarget,
        sink: Option<&str>,
    ) -> Result<SelectPlan, EngineError> {
        let options = PlanOptions {
            new_planner: self
                .property("ksql.new.query.planner.enabled")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        };
        Ok(plan_select(
            query,
            &self.catalog,
            &self.functions,
            target,
            sink,
            &options,
        )?)
    }

    pub fn function_config(&self) -> FunctionConfig {
        FunctionConfig {
            substring_legacy_args: self
                .property("ksql.functions.substring.legacy.args")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        }
    }

    /// Parses (after `${var}` substitution) and executes every statement of a script in order,
    /// stopping at the first failure.
    // The error carries the outputs completed before the failure; scripts are not a hot path.
    #[allow(clippy::result_large_err)]
    pub fn execute_script(&mut self, sql: &str) -> Result<Vec<StatementOutput>, StatementError> {
        let mut done = Vec::new();
        let statements = match self.parse(sql) {
            Ok(s) => s,
            Err(error) => {
                return Err(StatementError {
                    statement: sql.trim().to_string(),
                    error,
                    completed: done,
                })
            }
        };
        for stmt in statements {
            match self.execute(&stmt) {
                Ok(out) => done.push(out),
                Err(error) => {
                    return Err(StatementError {
                        statement: stmt.text.clone(),
                        error,
                        completed: done,
                    })
                }
            }
        }
        Ok(done)
    }

    pub fn parse(&self, sql: &str) -> Result<Vec<ParsedStatement>, EngineError> {
        let enabled = self
            .property("ksql.variable.substitution.enable")
            .is_none_or(|v| v != "false");
        let text = if enabled {
            runnel_sql::substitute_variables(sql, &self.variables)?
        } else {
            sql.to_string()
        };
        Ok(runnel_sql::parse_statements(&text)?)
    }

    pub fn execute(&mut self, stmt: &ParsedStatement) -> Result<StatementOutput, EngineError> {
        let text = stmt.text.clone();
        if !matches!(stmt.statement, Statement::Query(_)) {
            self.pull_plans.clear();
        }
        match &stmt.statement {
            Statement::CreateSource(create) => self.create_source(create, &text),
            Statement::CreateAsSelect(c) => self.create_as_select(c, &text),
            Statement::InsertInto { target, query, .. } => self.insert_into(target, query, &text),
            Statement::InsertValues {
                target,
                columns,
                values,
            } => self.insert_values(target, columns.as_deref(), values, &text),
            Statement::DropSource {
                kind,
                name,
                if_exists,
                delete_topic,
            } => self.drop_source(*kind, name, *if_exists, *delete_topic, &text),
            Statement::CreateType {
                name,
                ty,
                if_not_exists,
            } => {
                if self.catalog.custom_type(name).is_some() {
                    if *if_not_exists {
                        return Ok(StatementOutput::warning(
                            &text,
                            format!("Type {name} already exists"),
                        ));
                    }
                    return Err(EngineError::statement(format!("Cannot register custom type '{name}' since it is already registered with type: {}", self.catalog.custom_type(name).map(|t| t.to_string()).unwrap_or_default())));
                }
                let resolved = self
                    .catalog
                    .resolve_type(ty)
                    .map_err(EngineError::statement)?;
                self.catalog.put_type(name.clone(), resolved);
                Ok(StatementOutput::status(
                    &text,
                    format!("type/{name}/create"),
                    format!("Registered custom type with name '{name}' and SQL type {ty}"),
                ))
            }
            Statement::DropType { name, if_exists } => {
                if self.catalog.remove_type(name).is_none() && !if_exists {
                    return Err(EngineError::statement(format!(
                        "Type {name} does not exist."
                    )));
                }
                Ok(StatementOutput::status(
                    &text,
                    format!("type/{name}/drop"),
                    format!("Dropped type '{name}'"),
                ))
            }
            Statement::Show(show) => self.show(show, &text),
            Statement::Describe { target, extended } => self.describe(target, *extended, &text),
            Statement::Explain(target) => self.explain(target, &text),
            Statement::Terminate { query_id } => self.terminate(query_id.as_deref(), &text),
            Statement::Set { name, value } => {
                self.session.insert(name.clone(), value.clone());
                Ok(StatementOutput::status(
                    &text,
                    "property/set".into(),
                    format!("Successfully changed local property '{name}' to '{value}'."),
                ))
            }
            Statement::Unset { name } => {
                self.session.remove(name);
                Ok(StatementOutput::status(
                    &text,
                    "property/unset".into(),
                    format!("Successfully unset local property '{name}'."),
                ))
            }
            Statement::Define { name, value } => {
                self.variables.insert(name.clone(), value.clone());
                Ok(StatementOutput::status(
                    &text,
                    "variable/define".into(),
                    format!("Defined variable {name}"),
                ))
            }
            Statement::Undefine { name } => {
                if self.variables.remove(name).is_none() {
                    return Ok(StatementOutput::warning(
                        &text,
                        format!("Cannot undefine variable '{name}' which was never defined"),
                    ));
                }
                Ok(StatementOutput::status(
                    &text,
                    "variable/undefine".into(),
                    format!("Undefined variable {name}"),
                ))
            }
            Statement::Query(query) => self.transient_query(query, &text),
            Statement::Print {
                topic,
                from_beginning,
                limit,
                ..
            } => self.print(topic, *from_beginning, *limit, &text),
            Statement::RunScript { path } => {
                let sql = std::fs::read_to_string(path).map_err(|e| {
                    EngineError::statement(format!("Cannot read script '{path}': {e}"))
                })?;
                let outputs = self
                    .execute_script(&sql)
                    .map_err(|e| EngineError::statement(e.to_string()))?;
                Ok(StatementOutput::Script(outputs))
            }
            Statement::AssertTopic { topic, exists, .. } => {
                let found = self.topic_info(topic)?.is_some();
                if found != *exists {
                    let what = if *exists { "does not exist" } else { "exists" };
                    return Err(EngineError::statement(format!("Topic {topic} {what}")));
                }
                Ok(StatementOutput::status(
                    &text,
                    format!("topic/{topic}/assert"),
                    format!(
                        "Topic {topic} {}",
                        if *exists { "exists" } else { "does not exist" }
                    ),
                ))
            }
            Statement::AlterSource { .. } => Err(EngineError::unsupported("ALTER STREAM/TABLE")),
            Statement::Pause { .. } | Statement::Resume { .. } => {
                Err(EngineError::unsupported("PAUSE/RESUME"))
            }
            Statement::AlterSystem { .. } => Err(EngineError::unsupported("ALTER SYSTEM")),
            Statement::CreateConnector { .. }
            | Statement::DropConnector { .. }
            | Statement::DescribeConnector { .. } => Err(EngineError::unsupported("Connectors")),
            Statement::DescribeFunction { name } => match self.functions.scalar(name) {
                Some(f) => Ok(StatementOutput::Text(format!(
                    "Name        : {}\nType        : SCALAR\nDescription : {}",
                    f.name, f.description
                ))),
                None => Err(EngineError::statement(format!(
                    "Can't find any functions with the name '{name}'"
                ))),
            },
            Statement::AssertSchema { .. } => {
                Err(EngineError::unsupported("ASSERT SCHEMA (Schema Registry)"))
            }
            Statement::AssertValues { .. }
            | Statement::AssertNullValues { .. }
            | Statement::AssertSource { .. } => Err(EngineError::unsupported(
                "ASSERT VALUES/STREAM/TABLE test statements",
            )),
        }
    }

    // ----- topics -------------------------------------------------------------------------

    pub fn topic_info(&self, name: &str) -> Result<Option<TopicInfo>, EngineError> {
        match &self.backend {
            Backend::Kafka(k) => Ok(k.topic(name)?),
            Backend::Memory(topics) => Ok(topics.get(name).map(|t| TopicInfo {
                name: name.to_string(),
                partitions: t.partitions,
                replicas: 1,
            })),
        }
    }

    pub fn topics(&self) -> Result<Vec<TopicInfo>, EngineError> {
        match &self.backend {
            Backend::Kafka(k) => Ok(k.topics(None)?),
            Backend::Memory(topics) => Ok(topics
                .iter()
                .map(|(n, t)| TopicInfo {
                    name: n.clone(),
                    partitions: t.partitions,
                    replicas: 1,
                })
                .collect()),
        }
    }

    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replicas: i16,
    ) -> Result<(), EngineError> {
        match &mut self.backend {
            Backend::Kafka(k) => {
                k.create_topic(name, partitions, replicas)?;
            }
            Backend::Memory(topics) => {
                topics
                    .entry(name.to_string())
                    .or_insert_with(|| MemoryTopic {
                        partitions,
                        records: vec![],
                    });
            }
        }
        Ok(())
    }

    /// Writes records to a topic (INSERT VALUES).
    pub fn produce(&mut self, records: Vec<Record>) -> Result<(), EngineError> {
        match &mut self.backend {
            Backend::Kafka(k) => {
                let producer = k.producer()?;
                for r in &records {
                    send(&producer, r)?;
                }
                flush(&producer)?;
            }
            Backend::Memory(topics) => {
                for mut r in records {
                    let t = topics
                        .entry(r.topic.clone())
                        .or_insert_with(|| MemoryTopic {
                            partitions: 1,
                            records: vec![],
                        });
                    r.partition = 0;
                    r.offset = t.records.len() as i64;
                    t.records.push(r);
                }
            }
        }
        Ok(())
    }

    // ----- DDL ----------------------------------------------------------------------------

    fn check_new_source(
        &self,
        kind: SourceKind,
        name: &str,
        or_replace: bool,
        is_source: bool,
    ) -> Result<bool, EngineError> {
        let what = if kind == SourceKind::Stream {
            "stream"
        } else {
            "table"
        };
        if or_replace && is_source {
            return Err(EngineError::statement(format!(
                "Cannot add {what} '{name}': CREATE OR REPLACE is not supported on source {what}s."
            )));
        }
        let Some(existing) = self.catalog.source(name) else {
            return Ok(false);
        };
        if or_replace {
            if existing.is_source {
                return Err(EngineError::statement(format!(
                    "Cannot add {what} '{name}': CREATE OR REPLACE is not supported on source {what}s."
                )));
            }
            if existing.kind != kind {
                return Err(EngineError::statement(format!(
                    "Cannot add {what} '{name}': A {} with the same name already exists",
                    if existing.kind == SourceKind::Stream {
                        "stream"
                    } else {
                        "table"
                    }
                )));
            }
            return Ok(true);
        }
        Err(EngineError::statement(format!(
            "Cannot add {what} '{name}': A {} with the same name already exists",
            if existing.kind == SourceKind::Stream {
                "stream"
            } else {
                "table"
            }
        )))
    }

    fn create_source(
        &mut self,
        create: &runnel_sql::CreateSource,
        text: &str,
    ) -> Result<StatementOutput, EngineError> {
        let what = if create.kind == SourceKind::Stream {
            "stream"
        } else {
            "table"
        };
        if create.if_not_exists && self.catalog.source(&create.name).is_some() {
            return Ok(StatementOutput::warning(
                text,
                format!(
                    "Cannot add {what} {}: A {what} with the same name already exists.",
                    create.name
                ),
            ));
        }
        self.check_new_source(
            create.kind,
            &create.name,
            create.or_replace,
            create.is_source,
        )?;
        let mut source =
            ddl::source_from_create(create, text, &self.catalog, &self.format_defaults())?;
        if source.window.is_some() && source.schema.key_columns().next().is_none() {
            return Err(EngineError::statement(
                "Windowed sources require a key column.",
            ));
        }
        if source.schema.columns.is_empty() {
            return Err(EngineError::statement("No columns supplied."));
        }
        task::source_serdes(&source)?;
        match self.topic_info(&source.topic)? {
            Some(t) => {
                if let Some(p) = source.partitions {
                    if p != t.partitions {
                        return Err(EngineError::statement(format!(
                            "A Kafka topic with the name '{}' already exists, with different partition/replica configuration than required. KSQL expects {p} partitions (topic has {}).",
                            source.topic, t.partitions
                        )));
                    }
                }
                source.partitions = Some(t.partitions);
            }
            None => {
                let partitions = match (source.partitions, &self.backend) {
                    (Some(p), _) => p,
                    (None, Backend::Memory(_)) if !self.sandboxed => 1,
                    (None, _) => {
                        return Err(EngineError::statement(format!(
                            "Topic '{}' does not exist. If you want to create a new topic for the {what} please re-run the statement providing the required 'PARTITIONS' configuration in the WITH clause (and optionally 'REPLICAS'). For example: CREATE {} {} (...) WITH (KAFKA_TOPIC='{}', PARTITIONS=2, REPLICAS=1, ...);",
                            source.topic, what.to_uppercase(), create.name, source.topic
                        )))
                    }
                };
                self.create_topic(&source.topic, partitions, source.replicas.unwrap_or(1))?;
                source.partitions = Some(partitions);
            }
        }
        let name = source.name.clone();
        let source_table = create.is_source && create.kind == SourceKind::Table;
        let hidden_query = source_table.then(|| self.next_query_id("CST", Some(&name)));
        source.created_by = hidden_query.clone();
        self.catalog.put_source(source);
        if let Some(id) = hidden_query {
            if let Err(e) = self.materialize_source_table(&name, id, text) {
                self.catalog.remove_source(&name);
                return Err(e);
            }
        }
        let message = if create.kind == SourceKind::Stream {
            "Stream created"
        } else {
            "Table created"
        };
        Ok(StatementOutput::status(
            text,
            format!("{what}/{}/create", quote_ident(&name)),
            message.to_string(),
        ))
    }

    /// `CREATE SOURCE TABLE`: like ksqlDB, a hidden query (`CST_...`) reads the table's topic and
    /// materializes it, so that pull queries can read the table.
    fn materialize_source_table(
        &mut self,
        name: &str,
        id: String,
        text: &str,
    ) -> Result<(), EngineError> {
        let sql = format!("SELECT * FROM {} EMIT CHANGES;", quote_ident(name));
        let parsed = runnel_sql::parse_statements(&sql)?;
        let Some(Statement::Query(query)) = parsed.first().map(|p| &p.statement) else {
            return Err(EngineError::Internal(format!("cannot plan {sql}")));
        };
        let plan = self.plan(query, PlanTarget::Sink, Some(name))?;
        let table = self
            .catalog
            .source(name)
            .cloned()
            .ok_or_else(|| EngineError::Internal(format!("{name} vanished")))?;
        let m = self.materialization_of(&plan.projection, &table, &id);
        let task = QueryTask::new(&plan, None, self.function_config())?;
        task.materialize(m.clone());
        self.start_query(id, text, name.to_string(), vec![], task)?;
        self.materialized.insert(name.to_string(), m);
        Ok(())
    }

    fn next_query_id(&mut self, prefix: &str, sink: Option<&str>) -> String {
        let n = self.next_query;
        self.next_query += 1;
        match sink {
            Some(s) => format!(
                "{prefix}_{}_{n}",
                s.to_uppercase()
                    .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_")
            ),
            None => format!("{prefix}_{n}"),
        }
    }

    fn create_as_select(
        &mut self,
        c: &runnel_sql::CreateAsSelect,
        text: &str,
    ) -> Result<StatementOutput, EngineError> {
        let what = if c.kind == SourceKind::Stream {
            "stream"
        } else {
            "table"
        };
        if c.if_not_exists && self.catalog.source(&c.name).is_some() {
            return Ok(StatementOutput::warning(
                text,
                format!(
                    "Cannot add {what} {}: A {what} with the same name already exists.",
                    c.name
                ),
            ));
        }
        let replacing = self.check_new_source(c.kind, &c.name, c.or_replace, false)?;
        if c.query.limit.is_some() {
            return Err(EngineError::statement(format!(
                "CREATE {} AS SELECT statements don't support LIMIT clause.",
                what.to_uppercase()
            )));
        }
        runnel_plan::aggregate::check_window_needs_group_by(&c.query, &self.aggregates)?;
        if runnel_plan::aggregate::is_aggregation(&c.query, &self.aggregates) {
            if c.kind == SourceKind::Stream {
                return Err(EngineError::statement(
                    "Invalid result type. Your SELECT query produces a TABLE. Please use CREATE TABLE AS SELECT statement instead.",
                ));
            }
            return self.create_table_as_aggregate(c, text, replacing);
        }
        let source_is_stream = self
            .catalog
            .source(&c.query.from.source.name)
            .is_some_and(|s| s.kind == SourceKind::Stream);
        if c.kind == SourceKind::Table && source_is_stream {
            return Err(EngineError::statement(
                "Invalid result type. Your SELECT query produces a STREAM. Please use CREATE STREAM AS SELECT statement instead.",
            ));
        }
        let plan = self.plan(&c.query, PlanTarget::Sink, Some(&c.name))?;
        if plan.source.kind == SourceKind::Table && c.kind == SourceKind::Stream {
            return Err(EngineError::statement(
                "Invalid result type. Your SELECT query produces a TABLE. Please use CREATE TABLE AS SELECT statement instead.",
            ));
        }
        let prefix = if c.kind == SourceKind::Stream {
            "CSAS"
        } else {
            "CTAS"
        };
        let query_id = match self.queries.iter().find(|q| replacing && q.sink == c.name) {
            Some(q) => q.id.clone(),
            None => self.next_query_id(prefix, Some(&c.name)),
        };
        for p in plan.projection.iter().filter(|p| p.is_key) {
            ddl::check_key_type(&p.name, &p.expr.ty())?;
        }
        let sink = ddl::sink_from_select(
            &c.name,
            c.kind,
            &c.properties,
            &plan,
            text,
            &query_id,
            &self.format_defaults(),
        )?;
        let task = QueryTask::new(&plan, Some(&sink), self.function_config())?;
        let materialize = (c.kind == SourceKind::Table)
            .then(|| self.materialization_of(&plan.projection, &sink, &query_id));
        if let Some(m) = &materialize {
            // Before the query starts, so that no output row is missed.
            task.materialize(m.clone());
        }
        let name = sink.name.clone();
        let out = self.deploy(sink, task, query_id, text, &plan.source.name, replacing)?;
        self.register_materialization(&name, materialize);
        Ok(out)
    }

    /// Lets pull queries read the table `m` (maintained by the table's query), or forgets the
    /// table's state.
    fn register_materialization(
        &mut self,
        table: &str,
        m: Option<Arc<materialized::Materialization>>,
    ) {
        match m {
            Some(m) => {
                self.materialized.insert(table.to_string(), m);
            }
            None => {
                self.materialized.remove(table);
            }
        }
    }

    fn create_table_as_aggregate(
        &mut self,
        c: &runnel_sql::CreateAsSelect,
        text: &str,
        replacing: bool,
    ) -> Result<StatementOutput, EngineError> {
        let plan = runnel_plan::aggregate::plan_aggregate(
            &c.query,
            &self.catalog,
            &self.functions,
            &self.aggregates,
            Some(&c.name),
            &PlanOptions::default(),
        )?;
        let query_id = match self.queries.iter().find(|q| replacing && q.sink == c.name) {
            Some(q) => q.id.clone(),
            None => self.next_query_id("CTAS", Some(&c.name)),
        };
        for p in plan.projection.iter().filter(|p| p.is_key) {
            ddl::check_key_type(&p.name, &p.expr.ty())?;
        }
        let sink = ddl::sink_from_aggregate(
            &c.name,
            &c.properties,
            &plan,
            text,
            &query_id,
            &self.format_defaults(),
        )?;
        let task = QueryTask::new_aggregate(
            &plan,
            Some(&sink),
            self.function_config(),
            self.aggregate_config(),
        )?
        .with_record_cache(self.record_cache());
        let m = self.materialization_of(&plan.projection, &sink, &query_id);
        task.materialize(m.clone());
        let name = sink.name.clone();
        let out = self.deploy(sink, task, query_id, text, &plan.source.name, replacing)?;
        self.register_materialization(&name, Some(m));
        Ok(out)
    }

    /// Creates the sink topic if needed, replaces the old query of a CREATE OR REPLACE, adds the
    /// sink to the catalog and starts the query.
    fn deploy(
        &mut self,
        mut sink: Source,
        task: QueryTask,
        query_id: String,
        text: &str,
        source: &str,
        replacing: bool,
    ) -> Result<StatementOutput, EngineError> {
        let partitions = sink.partitions.unwrap_or(1);
        match self.topic_info(&sink.topic)? {
            Some(t) => sink.partitions = Some(t.partitions),
            None => {
                self.create_topic(&sink.topic, partitions, sink.replicas.unwrap_or(1))?;
                sink.partitions = Some(partitions);
            }
        }
        if replacing {
            self.stop_query(&query_id);
        }
        let what = if sink.kind == SourceKind::Stream {
            "stream"
        } else {
            "table"
        };
        let sink_name = sink.name.clone();
        self.catalog.put_source(sink);
        self.start_query(
            query_id.clone(),
            text,
            sink_name.clone(),
            vec![source.to_string()],
            task,
        )?;
        Ok(StatementOutput::Status {
            statement: text.to_string(),
            command_id: format!("{what}/{}/create", quote_ident(&sink_name)),
            message: format!("Created query with ID {query_id}"),
            query_id: Some(query_id),
        })
    }

    /// The bytes of Kafka Streams' record cache (`ksql.streams.cache.max.bytes.buffering`,
    /// ksqlDB's default 10 MB): above 0, aggregations emit the last update of each key (and
    /// window) per commit; 0 emits every update (as ksqlDB's test runners configure it).
    pub fn record_cache(&self) -> usize {
        self.property("cache.max.bytes.buffering")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(|bytes| bytes.max(0) as usize)
            .unwrap_or(DEFAULT_CACHE_MAX_BYTES)
    }

    /// How much of an aggregation's state a persistent query keeps in memory
    /// (`runnel.state.memory.max.bytes`, default 256 MiB): beyond it, groups already committed
    /// to the query's local RocksDB store are dropped from memory after a commit (the least
    /// recently used first) and read back when a record updates them again. Session windows
    /// and EMIT FINAL windows waiting to close are always in memory.
    /// A negative value keeps all of it in memory.
    pub fn state_memory(&self) -> usize {
        self.property(STATE_MEMORY_MAX_BYTES)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(|bytes| usize::try_from(bytes).unwrap_or(usize::MAX))
            .unwrap_or(DEFAULT_STATE_MEMORY_MAX_BYTES)
    }

    /// How often persistent queries on Kafka commit (`ksql.streams.commit.interval.ms`,
    /// ksqlDB's default 2000 ms).
    pub fn commit_interval(&self) -> std::time::Duration {
        self.property("commit.interval.ms")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(std::time::Duration::from_millis)
            .unwrap_or(task::DEFAULT_COMMIT_INTERVAL)
    }

    pub fn aggregate_config(&self) -> runnel_plan::aggregates::AggregateConfig {
        runnel_plan::aggregates::AggregateConfig {
            collect_list_limit: self
                .property("ksql.functions.collect_list.limit")
                .and_then(|v| v.parse().ok()),
            collect_set_limit: self
                .property("ksql.functions.collect_set.limit")
                .and_then(|v| v.parse().ok()),
        }
    }

    /// The materialization of a table that pull queries read. On Kafka its rows live in a
    /// RocksDB store under the state directory (`<state dir>/<service id>/<query id>-pull`),
    /// rebuilt from the table's topic when the query starts; in memory otherwise (the memory
    /// backend, sandboxes, or a store that cannot be opened, which is logged).
    fn materialization_of(
        &self,
        projection: &[runnel_plan::query::Projection],
        sink: &Source,
        query_id: &str,
    ) -> Arc<materialized::Materialization> {
        let memory = |key_serde: Option<Box<dyn runnel_connect::format::RowSerde>>| {
            let store: Arc<dyn materialized::TableStore> = match key_serde {
                Some(key) => Arc::new(materialized::MemoryStore::with_key_serde(key)),
                None => Arc::new(materialized::MemoryStore::default()),
            };
            store
        };
        let store = match (task::source_serdes(sink), &self.backend) {
            (Ok((key, _)), Backend::Kafka(_)) if !self.sandboxed => {
                let path = self
                    .state_dir()
                    .join(self.service_id())
                    .join(format!("{query_id}-pull"));
                match materialized_rocks::RocksTableStore::open(&path, key) {
                    Ok(store) => Arc::new(store) as Arc<dyn materialized::TableStore>,
                    Err(e) => {
                        tracing::warn!(
                            "pull queries on {} use memory: cannot open {}: {e}",
                            sink.name,
                            path.display()
                        );
                        memory(task::source_serdes(sink).ok().map(|(k, _)| k))
                    }
                }
            }
            (Ok((key, _)), _) => memory(Some(key)),
            (Err(_), _) => memory(None),
        };
        materialization_with(projection, sink, store)
    }

    fn start_query(
        &mut self,
        id: String,
        text: &str,
        sink: String,
        sources: Vec<String>,
        task: QueryTask,
    ) -> Result<(), EngineError> {
        let task = Arc::new(
            task.with_commit_interval(self.commit_interval())
                .with_state_memory(self.state_memory()),
        );
        let reset = self
            .property(AUTO_OFFSET_RESET)
            .unwrap_or_else(|| "earliest".into());
        let running = match self.deferred_starts.as_mut() {
            Some(deferred) => {
                deferred.push((id.clone(), reset));
                None
            }
            None => self.spawn_query(&id, &sink, &task, reset)?,
        };
        self.queries.push(PersistentQuery {
            id,
            statement: text.to_string(),
            sink,
            sources,
            task,
            running,
        });
        Ok(())
    }

    /// Starts a persistent query's thread (nothing runs by itself on the memory backend).
    fn spawn_query(
        &self,
        id: &str,
        sink_name: &str,
        task: &Arc<QueryTask>,
        reset: String,
    ) -> Result<Option<runner::Running>, EngineError> {
        let Backend::Kafka(k) = &self.backend else {
            return Ok(None);
        };
        let mut group = format!("_confluent-ksql-{}query_{id}", self.service_id());
        if task.sink_topic().is_none() {
            // A SOURCE table's materializing query keeps its state only in memory: it
            // rebuilds it from the start of the topic every time it starts.
            group.push_str(&format!("_{}", chrono::Utc::now().timestamp_millis()));
        }
        let log = runner::ProcessingLog {
            topic: self.processing_log_topic(),
            query_id: id.to_string(),
        };
        if let (Some(m), Some(sink)) = (task.materialization(), self.catalog.source(sink_name)) {
            // The sink topic is the table's changelog: a restarted engine rebuilds the
            // table's state for pull queries from it before the query resumes.
            materialized::bootstrap_from_topic(m, sink, k)?;
        }
        let changelog = task.is_stateful().then(|| runner::Changelog {
            topic: format!(
                "_confluent-ksql-{}query_{id}-Aggregate-Aggregate-Materialize-changelog",
                self.service_id()
            ),
            state_dir: Some(self.state_dir().join(self.service_id()).join(id)),
        });
        if repartition::needs_repartition(task) {
            let topic = repartition::topic_name(&self.service_id(), id);
            return Ok(Some(repartition::spawn(
                task.clone(),
                k.clone(),
                group,
                reset,
                log,
                changelog,
                topic,
            )?));
        }
        Ok(Some(runner::spawn_persistent(
            task.clone(),
            k.clone(),
            group,
            reset,
            log,
            changelog,
            task.source_topic(),
        )?))
    }

    /// Root of the local state stores: `ksql.streams.state.dir` (Kafka Streams' `state.dir`),
    /// by default `<system temp>/runnel-state`. A query's store is `<root>/<service id>/<query id>`.
    pub fn state_dir(&self) -> std::path::PathBuf {
        self.property(STATE_DIR)
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("runnel-state"))
    }

    pub fn processing_log_topic(&self) -> String {
        format!("{}ksql_processing_log", self.service_id())
    }

    fn insert_into(
        &mut self,
        target: &str,
        query: &runnel_sql::Query,
        text: &str,
    ) -> Result<StatementOutput, EngineError> {
        let sink = self
            .catalog
            .source(target)
            .cloned()
            .ok_or_else(|| EngineError::statement(format!("{target} does not exist.")))?;
        if sink.kind != SourceKind::Stream {
            return Err(EngineError::statement(format!(
                "INSERT INTO can only be used to insert into a stream. {target} is a table."
            )));
        }
        if sink.is_source {
            return Err(EngineError::statement(format!(
                "Cannot insert into read-only stream: {target}"
            )));
        }
        let plan = self.plan(query, PlanTarget::Sink, Some(target))?;
        let result = plan.output_schema();
        let same = result.columns.len() == sink.schema.columns.len()
            && result
                .key_columns()
                .map(|c| (&c.name, &c.ty))
                .eq(sink.schema.key_columns().map(|c| (&c.name, &c.ty)))
            && result
                .value_columns()
                .map(|c| (&c.name, &c.ty))
                .eq(sink.schema.value_columns().map(|c| (&c.name, &c.ty)));
        if !same {
            return Err(EngineError::statement(format!(
                "Incompatible schema between results and sink.\nResult schema is {result}\nSink schema is {}",
                sink.schema
            )));
        }
        let task = QueryTask::new(&plan, Some(&sink), self.function_config())?;
        let id = self.next_query_id("INSERTQUERY", None);
        self.start_query(
            id.clone(),
            text,
            sink.name.clone(),
            vec![plan.source.name.clone()],
            task,
        )?;
        Ok(StatementOutput::Status {
            statement: text.to_string(),
            command_id: format!("stream/{}/create", quote_ident(&sink.name)),
            message: format!("Created query with ID {id}"),
            query_id: Some(id),
        })
    }

    fn insert_values(
        &mut self,
        target: &str,
        columns: Option<&[String]>,
        values: &[runnel_sql::Expr],
        text: &str,
    ) -> Result<StatementOutput, EngineError> {
        let source = self.catalog.source(target).cloned().ok_or_else(|| {
            EngineError::statement(format!(
                "Cannot insert values into an unknown stream/table: {target}"
            ))
        })?;
        if source.is_source {
            return Err(EngineError::statement(format!(
                "Cannot insert values into read-only {}: {target}",
                if source.kind == SourceKind::Stream {
                    "stream"
                } else {
                    "table"
                }
            )));
        }
        let names: Vec<String> = match columns {
            Some(c) => c.to_vec(),
            None => source
                .schema
                .key_columns()
                .chain(source.schema.value_columns())
                .map(|c| c.name.clone())
                .collect(),
        };
        if names.len() != values.len() && columns.is_some() {
            return Err(EngineError::statement(format!(
                "Failed to prepare statement: Expected number columns and values to match: {}, {}",
                names.len(),
                values.len()
            )));
        }
        if names.len() != values.len() {
            return Err(EngineError::statement(format!(
                "Failed to prepare statement: Expected number columns and values to match: [{}], [{}]",
                names.join(", "),
                values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
            )));
        }
        if let Some(pseudo) = names
            .iter()
            .find(|n| *n == runnel_plan::query::ROWPARTITION || *n == runnel_plan::query::ROWOFFSET)
        {
            return Err(EngineError::statement(format!(
                "Inserting into column `{pseudo}` is not allowed."
            )));
        }
        let headers: Vec<&str> = source
            .schema
            .header_columns()
            .map(|c| c.name.as_str())
            .filter(|n| names.iter().any(|x| x == n))
            .collect();
        if !headers.is_empty() {
            return Err(EngineError::statement(format!(
                "Cannot insert into HEADER columns: {}",
                headers.join(", ")
            )));
        }
        let scope = Scope::default();
        let analyzer = Analyzer {
            scope: &scope,
            functions: &self.functions,
            catalog: &self.catalog,
        };
        let config = self.function_config();
        let mut timestamp = chrono::Utc::now().timestamp_millis();
        let mut row: HashMap<String, Value> = HashMap::new();
        for (name, expr) in names.iter().zip(values) {
            let typed = analyzer.analyze(expr)?;
            let value =
                runnel_plan::eval::eval(&typed, &[], &config).map_err(EngineError::statement)?;
            if name == ROWTIME {
                timestamp = value
                    .as_i64()
                    .ok_or_else(|| EngineError::statement("ROWTIME must be a BIGINT"))?;
                continue;
            }
            let column = source.schema.find(name).ok_or_else(|| {
                EngineError::statement(format!("Column name {name} does not exist."))
            })?;
            let value = if value.is_null() {
                Value::Null
            } else if typed.ty() == column.ty {
                value
            } else {
                runnel_plan::cast::cast_value(&value, &typed.ty(), &column.ty).map_err(|e| {
                    EngineError::statement(format!("Failed to insert values into '{target}'. Expected type {} for column {name} but got {value} ({}): {e}", column.ty, typed.ty()))
                })?
            };
            row.insert(name.clone(), value);
        }
        if source.kind == SourceKind::Table
            && source
                .schema
                .key_columns()
                .any(|k| row.get(&k.name).is_none_or(Value::is_null))
        {
            return Err(EngineError::statement(format!("Failed to insert values into '{target}'. Value for primary key column(s) is required for tables")));
        }
        let (key_serde, value_serde) = task::source_serdes(&source)?;
        let pick = |kind: ColumnKind| -> Vec<Value> {
            source
                .schema
                .columns
                .iter()
                .filter(|c| c.kind == kind)
                .map(|c| row.get(&c.name).cloned().unwrap_or(Value::Null))
                .collect()
        };
        let key_values = pick(ColumnKind::Key);
        let key = if key_values.is_empty() {
            key_serde.serialize(Some(&[]))
        } else if key_values.iter().all(Value::is_null) {
            key_serde.serialize(None)
        } else {
            key_serde.serialize(Some(&key_values))
        }
        .map_err(|e| {
            EngineError::statement(format!("Failed to insert values into '{target}'. {e}"))
        })?;
        let value = value_serde
            .serialize(Some(&pick(ColumnKind::Value)))
            .map_err(|e| {
                EngineError::statement(format!("Failed to insert values into '{target}'. {e}"))
            })?;
        self.produce(vec![Record {
            topic: source.topic.clone(),
            partition: -1,
            offset: -1,
            timestamp,
            key,
            value,
            headers: vec![],
        }])?;
        Ok(StatementOutput::status(
            text,
            format!("insert/{target}"),
            String::new(),
        ))
    }

    fn drop_source(
        &mut self,
        kind: SourceKind,
        name: &str,
        if_exists: bool,
        delete_topic: bool,
        text: &str,
    ) -> Result<StatementOutput, EngineError> {
        let Some(source) = self.catalog.source(name).cloned() else {
            let noun = if kind == SourceKind::Stream {
                "Stream"
            } else {
                "Table"
            };
            if if_exists {
                return Ok(StatementOutput::status(
                    text,
                    format!(
                        "{}/{}/drop",
                        kind.to_string().to_lowercase(),
                        quote_ident(name)
                    ),
                    format!("{noun} {name} does not exist."),
                ));
            }
            return Err(EngineError::statement(format!(
                "{noun} {name} does not exist."
            )));
        };
        if source.kind != kind {
            return Err(EngineError::statement(format!(
                "Incompatible data source type is {}, but statement was DROP {kind}",
                source.kind
            )));
        }
        if delete_topic && source.is_source {
            return Err(EngineError::statement(format!(
                "Cannot delete topic for read-only source: {name}"
            )));
        }
        let readers: Vec<String> = self
            .queries
            .iter()
            .filter(|q| q.sources.iter().any(|s| s == name))
            .map(|q| q.id.clone())
            .collect();
        let writers: Vec<String> = self
            .queries
            .iter()
            .filter(|q| q.sink == name && Some(&q.id) != source.created_by.as_ref())
            .map(|q| q.id.clone())
            .collect();
        if !readers.is_empty() || !writers.is_empty() {
            return Err(EngineError::statement(format!(
                "Cannot drop {name}.\nThe following queries read from this source: [{}].\nThe following queries write into this source: [{}].\nYou need to terminate them before dropping {name}.",
                readers.join(", "),
                writers.join(", ")
            )));
        }
        if let Some(q) = &source.created_by {
            self.stop_query(q);
        }
        self.catalog.remove_source(name);
        self.materialized.remove(name);
        if delete_topic {
            match &mut self.backend {
                Backend::Kafka(k) => k.delete_topic(&source.topic)?,
                Backend::Memory(topics) => {
                    topics.remove(&source.topic);
                }
            }
        }
        Ok(StatementOutput::status(
            text,
            format!(
                "{}/{}/drop",
                kind.to_string().to_lowercase(),
                quote_ident(name)
            ),
            format!("Source `{name}` (topic: {}) was dropped.", source.topic),
        ))
    }

    fn stop_query(&mut self, id: &str) -> bool {
        match self.queries.iter().position(|q| q.id == id) {
            Some(pos) => {
                let mut q = self.queries.remove(pos);
                if let Some(r) = q.running.as_mut() {
                    r.stop();
                }
                true
            }
            None => false,
        }
    }

    fn terminate(&mut self, id: Option<&str>, text: &str) -> Result<StatementOutput, EngineError> {
        match id {
            None => {
                let ids: Vec<String> = self.queries.iter().map(|q| q.id.clone()).collect();
                for id in ids {
                    self.stop_query(&id);
                }
                Ok(StatementOutput::status(
                    text,
                    "terminate/ALL/execute".into(),
                    "All queries terminated.".into(),
                ))
            }
            Some(id) => {
                let id = id.to_uppercase();
                if !self.stop_query(&id) {
                    return Err(EngineError::statement(format!("Unknown queryId: {id}")));
                }
                Ok(StatementOutput::status(
                    text,
                    format!("terminate/{id}/execute"),
                    "Query terminated.".into(),
                ))
            }
        }
    }

    /// Stops every running query, flushing their outputs and committing their offsets.
    pub fn shutdown(&mut self) {
        for q in &mut self.queries {
            if let Some(r) = q.running.as_mut() {
                r.stop();
            }
        }
    }

    // ----- queries ------------------------------------------------------------------------

    fn transient_query(
        &mut self,
        query: &runnel_sql::Query,
        _text: &str,
    ) -> Result<StatementOutput, EngineError> {
        if query.emit.is_none() {
            return self.pull_query(query, _text);
        }
        if runnel_plan::aggregate::is_aggregation(query, &self.aggregates) {
            let plan = runnel_plan::aggregate::plan_aggregate(
                query,
                &self.catalog,
                &self.functions,
                &self.aggregates,
                None,
                &PlanOptions::default(),
            )?;
            let task = QueryTask::new_aggregate(
                &plan,
                None,
                self.function_config(),
                self.aggregate_config(),
            )?
            .with_record_cache(self.record_cache());
            return self.start_push(task, &plan.source.name, plan.limit);
        }
        let plan = self.plan(query, PlanTarget::Transient, None)?;
        let task = QueryTask::new(&plan, None, self.function_config())?;
        self.start_push(task, &plan.source.name, plan.limit)
    }

    fn start_push(
        &mut self,
        task: QueryTask,
        source: &str,
        limit: Option<u64>,
    ) -> Result<StatementOutput, EngineError> {
        // Like ksqlDB with `ksql.query.push.v2.enabled`: a simple push query from the latest
        // offsets over the output of a persistent query is a scalable push query.
        let scalable = !task.is_stateful()
            && self
                .property("ksql.query.push.v2.enabled")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            && self
                .property(AUTO_OFFSET_RESET)
                .is_some_and(|v| v.eq_ignore_ascii_case("latest"))
            && self.queries.iter().any(|q| q.sink == source);
        let id = if scalable {
            format!("SCALABLE_PUSH_QUERY_{}", self.next_transient)
        } else {
            format!("transient_{}_{}", source, self.next_transient)
        };
        self.next_transient += 1;
        let Backend::Kafka(kafka) = &self.backend else {
            return Ok(self.start_memory_push(task, id, limit));
        };
        let kafka = kafka.clone();
        let task = Arc::new(task);
        let group = format!(
            "_confluent-ksql-{}transient_{id}_{}",
            self.service_id(),
            chrono::Utc::now().timestamp_millis()
        );
        let reset = self
            .property(AUTO_OFFSET_RESET)
            .unwrap_or_else(|| "latest".into());
        let (tx, rx) = std::sync::mpsc::sync_channel(1024);
        let columns = task.columns.clone();
        let running = runner::spawn_push(task, kafka, group, reset, limit, tx, id.clone())?;
        Ok(StatementOutput::Push(runner::PushQuery {
            query_id: id,
            columns,
            rows: rx,
            running,
            limit,
        }))
    }

    /// A push query on the memory backend: the deterministic driver feeds it.
    fn start_memory_push(
        &mut self,
        task: QueryTask,
        id: String,
        limit: Option<u64>,
    ) -> StatementOutput {
        let task = Arc::new(task);
        let earliest = self
            .property(AUTO_OFFSET_RESET)
            .is_some_and(|v| v.eq_ignore_ascii_case("earliest"));
        let position = match (&self.backend, earliest) {
            (Backend::Memory(topics), false) => topics
                .get(task.source_topic())
                .map(|t| t.records.len())
                .unwrap_or(0),
            _ => 0,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let columns = task.columns.clone();
        self.memory_pushes.push(driver::MemoryPush {
            result: runner::PushResult::new(&task),
            task,
            sender: tx,
            position,
            remaining: limit,
            stop: stop.clone(),
        });
        driver::feed_push_queries(self);
        StatementOutput::Push(runner::PushQuery {
            query_id: id,
            columns,
            rows: rx,
            running: runner::Running {
                stop,
                thread: None,
                stats: Arc::new(runner::QueryStats::default()),
            },
            limit,
        })
    }

    fn print(
        &mut self,
        topic: &str,
        from_beginning: bool,
        limit: Option<u64>,
        _text: &str,
    ) -> Result<StatementOutput, EngineError> {
        let Backend::Kafka(kafka) = &self.backend else {
            return Err(EngineError::statement("PRINT needs a Kafka backend"));
        };
        let kafka = kafka.clone();
        if self.topic_info(topic)?.is_none() {
            return Err(EngineError::statement(format!(
                "Could not find topic '{topic}', or the KSQL user does not have permissions to list the topic. Topic names are case-sensitive."
            )));
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1024);
        let running = runner::spawn_print(kafka, topic.to_string(), from_beginning, limit, tx)?;
        Ok(StatementOutput::Print { lines: rx, running })
    }

    // ----- metadata -----------------------------------------------------------------------

    fn show(&self, show: &runnel_sql::Show, text: &str) -> Result<StatementOutput, EngineError> {
        use runnel_sql::Show;
        Ok(match show {
            Show::Streams { .. } => StatementOutput::Sources {
                statement: text.to_string(),
                kind: SourceKind::Stream,
                sources: self
                    .catalog
                    .sources()
                    .filter(|s| s.kind == SourceKind::Stream)
                    .cloned()
                    .collect(),
            },
            Show::Tables { .. } => StatementOutput::Sources {
                statement: text.to_string(),
                kind: SourceKind::Table,
                sources: self
                    .catalog
                    .sources()
                    .filter(|s| s.kind == SourceKind::Table)
                    .cloned()
                    .collect(),
            },
            Show::Topics { all, .. } => {
                let topics = self
                    .topics()?
                    .into_iter()
                    .filter(|t| {
                        *all || !(t.name.starts_with("_confluent-ksql-")
                            || t.name.starts_with("__"))
                    })
                    .collect();
                StatementOutput::Topics {
                    statement: text.to_string(),
                    topics,
                }
            }
            Show::Queries { .. } => StatementOutput::Queries {
                statement: text.to_string(),
                queries: self.query_summaries(),
            },
            Show::Properties => {
                let mut props: BTreeMap<String, String> = self.config.clone();
                props.extend(self.session.clone());
                StatementOutput::Properties {
                    statement: text.to_string(),
                    properties: props.into_iter().collect(),
                }
            }
            Show::Variables => StatementOutput::Properties {
                statement: text.to_string(),
                properties: self
                    .variables
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            },
            Show::Types => StatementOutput::Properties {
                statement: text.to_string(),
                properties: self
                    .catalog
                    .types()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect(),
            },
            Show::Functions => {
                StatementOutput::Text(self.functions.names().collect::<Vec<_>>().join("\n"))
            }
            Show::Connectors { .. } | Show::ConnectorPlugins => {
                return Err(EngineError::unsupported("Connectors"))
            }
        })
    }

    pub fn query_summaries(&self) -> Vec<QuerySummary> {
        self.queries
            .iter()
            .map(|q| QuerySummary {
                id: q.id.clone(),
                statement: q.statement.clone(),
                sink: q.sink.clone(),
                sink_topic: self
                    .catalog
                    .source(&q.sink)
                    .map(|s| s.topic.clone())
                    .unwrap_or_default(),
                state: if q
                    .running
                    .as_ref()
                    .is_some_and(|r| r.stats.errored.load(std::sync::atomic::Ordering::Relaxed))
                {
                    "ERROR"
                } else if q.running.is_some() || matches!(self.backend, Backend::Memory(_)) {
                    "RUNNING"
                } else {
                    "NOT_RUNNING"
                }
                .to_string(),
                processed: q
                    .running
                    .as_ref()
                    .map(|r| r.stats.processed.load(std::sync::atomic::Ordering::Relaxed))
                    .unwrap_or(0),
                failed: q
                    .running
                    .as_ref()
                    .map(|r| r.stats.failed.load(std::sync::atomic::Ordering::Relaxed))
                    .unwrap_or(0),
            })
            .collect()
    }

    fn describe(
        &self,
        target: &runnel_sql::DescribeTarget,
        extended: bool,
        text: &str,
    ) -> Result<StatementOutput, EngineError> {
        use runnel_sql::DescribeTarget;
        let sources: Vec<Arc<Source>> = match target {
            DescribeTarget::Source(name) => {
                vec![self.catalog.source(name).cloned().ok_or_else(|| {
                    EngineError::statement(format!(
                        "Could not find STREAM/TABLE '{name}' in the Metastore"
                    ))
                })?]
            }
            DescribeTarget::Streams => self
                .catalog
                .sources()
                .filter(|s| s.kind == SourceKind::Stream)
                .cloned()
                .collect(),
            DescribeTarget::Tables => self
                .catalog
                .sources()
                .filter(|s| s.kind == SourceKind::Table)
                .cloned()
                .collect(),
        };
        let queries = self.query_summaries();
        Ok(StatementOutput::Descriptions {
            statement: text.to_string(),
            extended,
            sources: sources
                .into_iter()
                .map(|s| {
                    let readers = queries
                        .iter()
                        .filter(|q| {
                            self.queries
                                .iter()
                                .any(|p| p.id == q.id && p.sources.contains(&s.name))
                        })
                        .cloned()
                        .collect();
                    let writers = queries
                        .iter()
                        .filter(|q| q.sink == s.name)
                        .cloned()
                        .collect();
                    (s, readers, writers)
                })
                .collect(),
        })
    }

    fn explain(
        &self,
        target: &runnel_sql::ExplainTarget,
        _text: &str,
    ) -> Result<StatementOutput, EngineError> {
        match target {
            runnel_sql::ExplainTarget::QueryId(id) => {
                let id = id.to_uppercase();
                let q = self
                    .queries
                    .iter()
                    .find(|q| q.id == id)
                    .ok_or_else(|| EngineError::statement(format!("Query with id:{id} does not exist, use SHOW QUERIES to view the full set of queries.")))?;
                Ok(StatementOutput::Text(format!(
                    "ID                   : {}\nQuery Type           : PERSISTENT\nSQL                  : {}\nSources              : {}\nSink                 : {}\nExecution plan       : source {} -> filter/project -> sink {}",
                    q.id,
                    q.statement,
                    q.sources.join(", "),
                    q.sink,
                    q.task.source_topic(),
                    q.task.sink_topic().unwrap_or("")
                )))
            }
            runnel_sql::ExplainTarget::Statement(stmt) => match &stmt.statement {
                Statement::CreateAsSelect(c) => {
                    let plan = self.plan(&c.query, PlanTarget::Sink, Some(&c.name))?;
                    Ok(StatementOutput::Text(format!(
                        "Execution plan:\n > SINK {}\n   > PROJECT [{}]\n     > FILTER {}\n       > SOURCE {} (topic {})",
                        c.name,
                        plan.projection.iter().map(|p| p.name.clone()).collect::<Vec<_>>().join(", "),
                        if c.query.where_clause.is_some() { "yes" } else { "none" },
                        plan.source.name,
                        plan.source.topic
                    )))
                }
                _ => Err(EngineError::unsupported("EXPLAIN of this statement")),
            },
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A new materialization of `sink` fed by a query with this projection, over `store`.
fn materialization_with(
    projection: &[runnel_plan::query::Projection],
    sink: &Source,
    store: Arc<dyn materialized::TableStore>,
) -> Arc<materialized::Materialization> {
    let key_flags = projection.iter().map(|p| p.is_key).collect();
    let timestamp_position = sink
        .timestamp
        .as_ref()
        .and_then(|t| projection.iter().position(|p| p.name == t.column));
    Arc::new(materialized::Materialization::new(
        key_flags,
        timestamp_position,
        store,
    ))
}

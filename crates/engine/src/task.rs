//! One query's processing: Kafka records in, rows or Kafka records out.
//!
//! `QueryTask::process` decodes a micro-batch of records with the source's formats, builds the
//! input row batch (pseudo-columns, key, value, headers), runs the operator, and returns output
//! rows with the timestamp and headers they inherit. `encode` turns a row into a sink record.
//! The Kafka loop and the deterministic test driver both call exactly these two functions.

use crate::EngineError;
use runnel_connect::format::{
    decode_windowed_key, encode_windowed_key, key_serde, value_serde, Column as FormatColumn,
    FormatKind, FormatOptions, RowSerde, Window, WindowType as FormatWindowType,
};
use runnel_connect::kafka::Record;
use runnel_plan::aggregate::AggregatePlan;
use runnel_plan::aggregates::AggregateConfig;
use runnel_plan::catalog::{ColumnKind, FormatInfo, Source, WindowType};
use runnel_plan::functions::FunctionConfig;
use runnel_plan::query::{InputField, SelectPlan};
use runnel_plan::Value;
use runnel_runtime::aggregate::{AggregateOperator, AggregateUpdate};
use runnel_runtime::convert::value_at;
use runnel_runtime::select::{rows_to_batch, SelectOperator};
use runnel_sql::{SourceKind, SqlType};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Changelog records: state key, and new state bytes (`None` deletes).
pub type StateChanges = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// A per-record problem written to the processing log.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessingLogEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub message: String,
}

/// A result row with what it inherits from its input record.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRow {
    /// Values in projection order.
    pub values: Vec<Value>,
    pub timestamp: i64,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub partition: i32,
    pub offset: i64,
    /// The output has a null value (a tombstone, or a null-value stream record passed through).
    pub null_value: bool,
    /// Window bounds of a windowed result.
    pub window: Option<(i64, i64)>,
}

#[derive(Debug, Default)]
pub struct TaskOutput {
    pub rows: Vec<OutputRow>,
    pub errors: Vec<ProcessingLogEntry>,
}

pub fn format_kind(info: &FormatInfo) -> Result<FormatKind, EngineError> {
    FormatKind::parse(&info.format).map_err(|e| EngineError::statement(e.to_string()))
}

pub fn format_options(info: &FormatInfo) -> FormatOptions {
    FormatOptions {
        wrap_single_value: info.wrap_single_value,
        delimiter: info.delimiter,
    }
}

fn format_columns<'a>(cols: impl Iterator<Item = &'a runnel_plan::Column>) -> Vec<FormatColumn> {
    cols.map(|c| FormatColumn {
        name: c.name.clone(),
        ty: c.ty.clone(),
    })
    .collect()
}

/// A source's key serde and value serde.
pub type Serdes = (Box<dyn RowSerde>, Box<dyn RowSerde>);

/// The key and value serdes of a source, validated against its columns.
pub fn source_serdes(source: &Source) -> Result<Serdes, EngineError> {
    let key_cols = format_columns(source.schema.key_columns());
    let value_cols = format_columns(source.schema.value_columns());
    let key = key_serde(
        format_kind(&source.key_format)?,
        &format_options(&source.key_format),
        &key_cols,
    )
    .map_err(|e| EngineError::statement(e.to_string()))?;
    let value = value_serde(
        format_kind(&source.value_format)?,
        &format_options(&source.value_format),
        &value_cols,
    )
    .map_err(|e| EngineError::statement(e.to_string()))?;
    Ok((key, value))
}

pub(crate) fn window_type(w: WindowType) -> FormatWindowType {
    match w {
        WindowType::Tumbling => FormatWindowType::Tumbling,
        WindowType::Hopping => FormatWindowType::Hopping,
        WindowType::Session => FormatWindowType::Session,
    }
}

/// Where a sink row's parts go.
struct SinkEncoder {
    topic: String,
    key: Box<dyn RowSerde>,
    value: Box<dyn RowSerde>,
    key_positions: Vec<usize>,
    value_positions: Vec<usize>,
    timestamp_position: Option<usize>,
    /// `value_positions` as a range when they are consecutive (the usual layout: keys first),
    /// so encoding borrows the row's values instead of copying them.
    value_range: Option<std::ops::Range<usize>>,
    /// Windowed sinks write Kafka Streams' windowed keys.
    window: Option<WindowType>,
}

/// The operator of a task: stateless (filter + project) or an aggregation with its state.
enum TaskOperator {
    Select(Box<SelectOperator>),
    Aggregate(Box<std::sync::Mutex<AggregateOperator>>, Vec<bool>),
}

/// Where each input field comes from, and the position of the source's TIMESTAMP column.
fn input_layout(
    source: &Source,
    input: &runnel_plan::query::InputLayout,
) -> (Vec<InputField>, Option<usize>) {
    let layout = input.fields.iter().map(|(f, _, _)| f.clone()).collect();
    let timestamp_position = source.timestamp.as_ref().and_then(|t| {
        input
            .fields
            .iter()
            .position(|(f, n, _)| n == &t.column && !matches!(f, InputField::RowTime))
    });
    (layout, timestamp_position)
}

/// How rows of `projection` are written to the sink `sink`.
fn sink_encoder(
    sink: &Source,
    projection: &[runnel_plan::query::Projection],
) -> Result<SinkEncoder, EngineError> {
    let (key, value) = source_serdes(sink)?;
    let positions = |key: bool| -> Vec<usize> {
        projection
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_key == key)
            .map(|(i, _)| i)
            .collect()
    };
    let value_positions = positions(false);
    let value_range = match (value_positions.first(), value_positions.last()) {
        (Some(&first), Some(&last)) if last - first + 1 == value_positions.len() => {
            Some(first..last + 1)
        }
        _ => None,
    };
    Ok(SinkEncoder {
        topic: sink.topic.clone(),
        key,
        value,
        key_positions: positions(true),
        value_positions,
        value_range,
        timestamp_position: sink
            .timestamp
            .as_ref()
            .and_then(|t| projection.iter().position(|p| p.name == t.column)),
        window: sink.window.as_ref().map(|w| w.window_type),
    })
}

/// The last update of each key and window, in the order of those last updates: what Kafka
/// Streams' record cache forwards when it is flushed at a commit.
fn coalesce(updates: Vec<AggregateUpdate>) -> Vec<AggregateUpdate> {
    let id = |u: &AggregateUpdate| update_id(&u.key, u.window);
    let mut last = std::collections::HashMap::new();
    for (i, u) in updates.iter().enumerate() {
        last.insert(id(u), i);
    }
    updates
        .into_iter()
        .enumerate()
        .filter(|(i, u)| last.get(&id(u)) == Some(i))
        .map(|(_, u)| u)
        .collect()
}

/// ksqlDB's `commit.interval.ms`.
pub const DEFAULT_COMMIT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(2000);

/// What identifies an aggregate's row: its key and window.
type UpdateId = (Vec<u8>, Option<(i64, i64)>);

fn update_id(key: &[Value], window: Option<(i64, i64)>) -> UpdateId {
    (runnel_plan::codec::encode_key(key), window)
}

/// Kafka Streams' record cache in front of an aggregation's output, held across micro-batches
/// until the next commit: the last update of each key and window, in the order of those last
/// updates. `bytes` approximates what it holds, so a commit can come early when it is full
/// (`cache.max.bytes.buffering`).
#[derive(Default)]
struct RecordCache {
    rows: Vec<Option<OutputRow>>,
    index: std::collections::HashMap<UpdateId, usize>,
    bytes: usize,
}

impl RecordCache {
    /// Bytes a row occupies in the cache, roughly: its slot, its values and its key.
    fn row_bytes(id: &UpdateId, row: &OutputRow) -> usize {
        std::mem::size_of::<Option<OutputRow>>()
            + 48
            + id.0.len()
            + row.values.iter().map(Value::approx_size).sum::<usize>()
    }

    fn put(&mut self, id: UpdateId, row: OutputRow) {
        self.bytes += Self::row_bytes(&id, &row);
        let at = self.rows.len();
        self.rows.push(Some(row));
        if let Some(old) = self.index.insert(id, at) {
            // The replaced row's values are freed; its empty slot stays until the flush.
            if let Some(r) = self.rows[old].take() {
                let freed = r.values.iter().map(Value::approx_size).sum::<usize>();
                self.bytes = self.bytes.saturating_sub(freed);
            }
        }
    }

    fn take(&mut self) -> Vec<OutputRow> {
        self.index.clear();
        self.bytes = 0;
        std::mem::take(&mut self.rows)
            .into_iter()
            .flatten()
            .collect()
    }
}

/// What an aggregate task is built from: its plan, settings and sink.
type AggregateParts = (
    AggregatePlan,
    FunctionConfig,
    AggregateConfig,
    Option<Source>,
);

pub struct QueryTask {
    pub source: Arc<Source>,
    source_key: Box<dyn RowSerde>,
    source_value: Box<dyn RowSerde>,
    layout: Vec<InputField>,
    /// Position of the source's TIMESTAMP column in the input row.
    timestamp_position: Option<usize>,
    operator: TaskOperator,
    input_schema: datafusion::arrow::datatypes::SchemaRef,
    input_types: Vec<SqlType>,
    sink: Option<SinkEncoder>,
    pub columns: Vec<(String, SqlType)>,
    /// Null-value stream records pass through a plain projection (ksqlDB keeps them), but never
    /// through a filter.
    has_filter: bool,
    /// For each output column that is a key: the input row position it copies (for tombstones).
    key_inputs: Vec<Option<usize>>,
    /// The kinds of the source's header columns, by header index.
    header_kinds: Vec<ColumnKind>,
    /// No key or value field appears twice in `layout`, so decoding can move fields.
    layout_fields_unique: bool,
    /// The local state store of a running stateful query, once restored (for readers such as
    /// pull queries; see `runnel_state` for its key layout and read API).
    state_store: std::sync::Mutex<Option<Arc<runnel_state::StateStore>>>,
    /// On a query's template task (see `for_partition`): the local stores of the partitions'
    /// tasks this server runs now.
    partition_stores: std::sync::Mutex<BTreeMap<i32, Arc<runnel_state::StateStore>>>,
    /// Kafka Streams' record cache (`cache.max.bytes.buffering` > 0): an aggregation emits only
    /// the last update of each key (and window) per commit. A Kafka query's runner holds the
    /// updates across batches until its commit (`hold_record_cache`); otherwise (the test
    /// driver, push queries) a commit is a processed batch.
    record_cache: bool,
    /// The updates held until the runner's next commit (see `record_cache`).
    held: std::sync::Mutex<Option<RecordCache>>,
    /// `cache.max.bytes.buffering`: a commit comes early when the held updates reach it.
    pub cache_max_bytes: usize,
    /// `commit.interval.ms`: how often a Kafka query's runner commits (see `crate::runner`).
    pub commit_interval: std::time::Duration,
    /// `runnel.state.memory.max.bytes`: the in-memory part of an aggregation's state once it
    /// has a local store (see `evict_state`).
    pub state_memory: usize,
    /// The table this task's output materializes for pull queries (set once, after creation).
    materialization: std::sync::OnceLock<Arc<crate::materialized::Materialization>>,
    /// An aggregation's plan and settings, to build the first stage of a repartitioned
    /// aggregation (see `crate::repartition`).
    aggregate: Option<Box<AggregateParts>>,
    /// The aggregate stage of a repartitioned aggregation: the last source offset aggregated per
    /// (repartition partition, source partition), kept with the state (see `crate::repartition`).
    source_offsets: std::sync::Mutex<crate::repartition::SourceOffsets>,
    /// The aggregate stage of a repartitioned windowed aggregation: the stream time of every
    /// source partition per repartition partition, kept with the state.
    stream_clock: std::sync::Mutex<crate::repartition::StreamClock>,
}

fn header_kinds(source: &Source) -> Vec<ColumnKind> {
    source
        .schema
        .header_columns()
        .map(|c| c.kind.clone())
        .collect()
}

fn layout_fields_unique(layout: &[InputField]) -> bool {
    let fields: Vec<&InputField> = layout
        .iter()
        .filter(|f| matches!(f, InputField::Key(_) | InputField::Value(_)))
        .collect();
    fields
        .iter()
        .enumerate()
        .all(|(i, f)| !fields[..i].contains(f))
}

impl QueryTask {
    /// A task for `plan`; `sink` is the catalog entry it writes to (None for transient queries).
    pub fn new(
        plan: &SelectPlan,
        sink: Option<&Source>,
        config: FunctionConfig,
    ) -> Result<Self, EngineError> {
        let (source_key, source_value) = source_serdes(&plan.source)?;
        let select =
            SelectOperator::new(plan, config).map_err(|e| EngineError::Internal(e.to_string()))?;
        let input_schema = select.input_schema().clone();
        let input_types = select.input_types().to_vec();
        let operator = TaskOperator::Select(Box::new(select));
        let (layout, timestamp_position) = input_layout(&plan.source, &plan.input);
        let fields_unique = layout_fields_unique(&layout);
        let columns = plan.result_columns();
        let sink = sink
            .map(|s| sink_encoder(s, &plan.projection))
            .transpose()?;
        // A push query's columns are not marked as keys, but its tombstones keep the key
        // columns (and window bounds) it projects, as ksqlDB's do.
        let key_inputs: Vec<Option<usize>> = plan
            .projection
            .iter()
            .map(|p| match &p.expr {
                runnel_plan::TypedExpr::Column { index, .. }
                    if p.is_key
                        || matches!(
                            layout.get(*index),
                            Some(
                                InputField::Key(_)
                                    | InputField::WindowStart
                                    | InputField::WindowEnd
                            )
                        ) =>
                {
                    Some(*index)
                }
                _ => None,
            })
            .collect();
        Ok(QueryTask {
            source: plan.source.clone(),
            source_key,
            source_value,
            layout,
            timestamp_position,
            operator,
            input_schema,
            input_types,
            sink,
            columns,
            has_filter: plan.filter.is_some(),
            header_kinds: header_kinds(&plan.source),
            layout_fields_unique: fields_unique,
            key_inputs,
            state_store: Default::default(),
            partition_stores: Default::default(),
            record_cache: false,
            held: Default::default(),
            cache_max_bytes: 0,
            state_memory: usize::MAX,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            materialization: std::sync::OnceLock::new(),
            aggregate: None,
            source_offsets: Default::default(),
            stream_clock: Default::default(),
        })
    }

    /// Sizes Kafka Streams' record cache (see `record_cache`); 0 turns it off.
    pub fn with_record_cache(mut self, max_bytes: usize) -> Self {
        self.record_cache = max_bytes > 0;
        self.cache_max_bytes = max_bytes;
        self
    }

    /// Bounds the in-memory part of an aggregation's state (see `evict_state`).
    pub fn with_state_memory(mut self, max_bytes: usize) -> Self {
        self.state_memory = max_bytes;
        self
    }

    /// Sets how often a Kafka query's runner commits.
    pub fn with_commit_interval(mut self, interval: std::time::Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// Holds an aggregation's updates across batches until `flush_record_cache` (the runner's
    /// commit), when the record cache is on; a no-op otherwise.
    pub fn hold_record_cache(&self) {
        if self.record_cache && matches!(self.operator, TaskOperator::Aggregate(..)) {
            if let Ok(mut held) = self.held.lock() {
                held.get_or_insert_with(RecordCache::default);
            }
        }
    }

    /// Roughly how many bytes of updates the record cache holds.
    pub fn held_bytes(&self) -> usize {
        self.held
            .lock()
            .ok()
            .and_then(|h| h.as_ref().map(|c| c.bytes))
            .unwrap_or(0)
    }

    /// The updates held since the last flush (see `hold_record_cache`), which then also update
    /// the table's materialization.
    pub fn flush_record_cache(&self) -> Vec<OutputRow> {
        let rows = self
            .held
            .lock()
            .ok()
            .and_then(|mut h| h.as_mut().map(RecordCache::take))
            .unwrap_or_default();
        if let Some(m) = self.materialization.get() {
            m.apply_all(&rows);
        }
        rows
    }

    /// A task for an aggregation.
    pub fn new_aggregate(
        plan: &AggregatePlan,
        sink: Option<&Source>,
        config: FunctionConfig,
        agg_config: AggregateConfig,
    ) -> Result<Self, EngineError> {
        let (source_key, source_value) = source_serdes(&plan.source)?;
        let (config_copy, agg_copy, sink_copy) =
            (config.clone(), agg_config.clone(), sink.cloned());
        let op = AggregateOperator::new(plan, config, agg_config)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let input_schema = op.input_schema().clone();
        let input_types = op.input_types().to_vec();
        let (layout, timestamp_position) = input_layout(&plan.source, &plan.input);
        let fields_unique = layout_fields_unique(&layout);
        let key_flags: Vec<bool> = plan.projection.iter().map(|p| p.is_key).collect();
        let sink = sink
            .map(|s| sink_encoder(s, &plan.projection))
            .transpose()?;
        Ok(QueryTask {
            source: plan.source.clone(),
            source_key,
            source_value,
            layout,
            timestamp_position,
            operator: TaskOperator::Aggregate(Box::new(std::sync::Mutex::new(op)), key_flags),
            input_schema,
            input_types,
            sink,
            columns: plan
                .projection
                .iter()
                .map(|p| (p.name.clone(), p.expr.ty()))
                .collect(),
            has_filter: true,
            key_inputs: vec![],
            header_kinds: header_kinds(&plan.source),
            layout_fields_unique: fields_unique,
            state_store: Default::default(),
            partition_stores: Default::default(),
            record_cache: false,
            held: Default::default(),
            cache_max_bytes: 0,
            state_memory: usize::MAX,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            materialization: std::sync::OnceLock::new(),
            aggregate: Some(Box::new((plan.clone(), config_copy, agg_copy, sink_copy))),
            source_offsets: Default::default(),
            stream_clock: Default::default(),
        })
    }

    /// Makes every output row of this task also update `m` (the table's state for pull queries).
    pub fn materialize(&self, m: Arc<crate::materialized::Materialization>) {
        let _ = self.materialization.set(m);
    }

    /// The materialization this task maintains, if any.
    pub fn materialization(&self) -> Option<&Arc<crate::materialized::Materialization>> {
        self.materialization.get()
    }

    pub fn source_topic(&self) -> &str {
        &self.source.topic
    }

    pub fn sink_topic(&self) -> Option<&str> {
        self.sink.as_ref().map(|s| s.topic.as_str())
    }

    /// Decodes one record into an input row, or says why it cannot be used.
    /// `Ok(None)` means the record is skipped silently (a stream record with a null value).
    fn decode(&self, r: &Record) -> Result<Option<(Vec<Value>, i64)>, String> {
        if self.source.kind == SourceKind::Table && r.key.is_none() {
            return Ok(None);
        }
        if r.value.is_none()
            && self.source.kind == SourceKind::Stream
            && (self.has_filter || self.sink.is_none())
        {
            return Ok(None);
        }
        let (key_bytes, window) = match (&self.source.window, &r.key) {
            (Some(w), Some(k)) => {
                let (inner, window) = decode_windowed_key(k, window_type(w.window_type), w.size_ms)
                    .map_err(|e| {
                        format!("Failed to deserialize key from topic: {}. {e}", r.topic)
                    })?;
                (Some(inner), Some(window))
            }
            _ => (r.key.clone(), None),
        };
        let mut key = self
            .source_key
            .deserialize(key_bytes.as_deref())
            .map_err(|e| format!("Failed to deserialize key from topic: {}. {e}", r.topic))?;
        let mut value = self
            .source_value
            .deserialize(r.value.as_deref())
            .map_err(|e| format!("Failed to deserialize value from topic: {}. {e}", r.topic))?;
        // Each decoded field is used once when the layout names it once (the usual case), so it
        // is moved into the row rather than cloned; strings are the bulk of a record.
        let take_field = |decoded: &mut Option<Vec<Value>>, i: usize| match decoded {
            Some(fields) if self.layout_fields_unique => fields
                .get_mut(i)
                .map(|v| std::mem::replace(v, Value::Null))
                .unwrap_or(Value::Null),
            Some(fields) => fields.get(i).cloned().unwrap_or(Value::Null),
            None => Value::Null,
        };
        let header_columns = &self.header_kinds;
        let mut row = Vec::with_capacity(self.layout.len());
        for field in &self.layout {
            row.push(match field {
                InputField::RowTime => Value::Bigint(r.timestamp),
                InputField::RowPartition => Value::Int(r.partition),
                InputField::RowOffset => Value::Bigint(r.offset),
                InputField::WindowStart => window
                    .as_ref()
                    .map(|w| Value::Bigint(w.start))
                    .unwrap_or(Value::Null),
                InputField::WindowEnd => window
                    .as_ref()
                    .map(|w| Value::Bigint(w.end))
                    .unwrap_or(Value::Null),
                InputField::Key(i) => take_field(&mut key, *i),
                InputField::Value(i) => take_field(&mut value, *i),
                InputField::Header(i) => match header_columns.get(*i) {
                    Some(ColumnKind::Headers) => Value::Array(
                        r.headers
                            .iter()
                            .map(|(k, v)| {
                                Value::Struct(vec![
                                    ("KEY".into(), Value::String(k.clone())),
                                    (
                                        "VALUE".into(),
                                        v.clone().map(Value::Bytes).unwrap_or(Value::Null),
                                    ),
                                ])
                            })
                            .collect(),
                    ),
                    Some(ColumnKind::Header(name)) => r
                        .headers
                        .iter()
                        .rev()
                        .find(|(k, _)| k == name)
                        .and_then(|(_, v)| v.clone())
                        .map(Value::Bytes)
                        .unwrap_or(Value::Null),
                    _ => Value::Null,
                },
            });
        }
        let mut timestamp = r.timestamp;
        if let Some(pos) = self.timestamp_position {
            timestamp = match &row[pos] {
                Value::Bigint(t) | Value::Timestamp(t) => *t,
                Value::String(s) => {
                    let format = self
                        .source
                        .timestamp
                        .as_ref()
                        .and_then(|t| t.format.clone())
                        .unwrap_or_default();
                    parse_timestamp(s, &format)?
                }
                Value::Null => {
                    return Err(format!(
                        "Timestamp column {} is null",
                        self.source
                            .timestamp
                            .as_ref()
                            .map(|t| t.column.as_str())
                            .unwrap_or("")
                    ))
                }
                other => return Err(format!("Invalid timestamp value {other}")),
            };
            if timestamp < 0 {
                return Err(format!("Invalid timestamp: {timestamp}"));
            }
            row[0] = Value::Bigint(timestamp);
        }
        Ok(Some((row, timestamp)))
    }

    /// Processes a micro-batch of records (any partitions, in order).
    pub fn process(&self, records: &[Record]) -> Result<TaskOutput, EngineError> {
        let out = self.process_rows(records)?;
        if let Some(m) = self.materialization.get() {
            m.apply_all(&out.rows);
        }
        Ok(out)
    }

    fn process_rows(&self, records: &[Record]) -> Result<TaskOutput, EngineError> {
        let mut out = TaskOutput::default();
        let mut rows = Vec::with_capacity(records.len());
        let mut origins: Vec<&Record> = Vec::with_capacity(records.len());
        let mut timestamps = Vec::with_capacity(records.len());
        // The stream times `repartition::prepare` left for these records (one per record).
        let batch_times = match &self.operator {
            TaskOperator::Aggregate(..) => self.stream_clock()?.take_batch(),
            TaskOperator::Select(_) => None,
        };
        let mut row_times = Vec::new();
        for (i, r) in records.iter().enumerate() {
            match self.decode(r) {
                Ok(Some((row, ts))) => {
                    rows.push(row);
                    origins.push(r);
                    timestamps.push(ts);
                    if let Some(t) = batch_times.as_ref().and_then(|b| b.rows.get(i)) {
                        row_times.push(*t);
                    }
                }
                Ok(None) => {}
                Err(message) => out.errors.push(ProcessingLogEntry {
                    topic: r.topic.clone(),
                    partition: r.partition,
                    offset: r.offset,
                    message,
                }),
            }
        }
        if rows.is_empty() {
            if let Some(b) = &batch_times {
                self.advance_stream_time(&b.close, &mut out)?;
            }
            return Ok(out);
        }
        let partitions: Vec<i32> = origins.iter().map(|r| r.partition).collect();
        let batch = rows_to_batch(&self.input_schema, &self.input_types, &rows)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let log = |out: &mut TaskOutput, row: usize, message: String| {
            if let Some(r) = origins.get(row) {
                out.errors.push(ProcessingLogEntry {
                    topic: r.topic.clone(),
                    partition: r.partition,
                    offset: r.offset,
                    message,
                });
            }
        };
        // A windowed source's records keep their window through a stateless query.
        let bound = |f: InputField| self.layout.iter().position(|l| *l == f);
        let bounds = bound(InputField::WindowStart).zip(bound(InputField::WindowEnd));
        let window_of = |input_row: usize| {
            let (s, e) = bounds?;
            let row = rows.get(input_row)?;
            Some((row.get(s)?.as_i64()?, row.get(e)?.as_i64()?))
        };
        match &self.operator {
            TaskOperator::Select(op) => {
                let result = op
                    .process(&batch)
                    .map_err(|e| EngineError::Internal(e.to_string()))?;
                for (row, message) in result.errors {
                    log(&mut out, row, message);
                }
                let types = op.output_types();
                let mut produced: Vec<(usize, OutputRow)> =
                    Vec::with_capacity(result.input_rows.len());
                for (i, &input_row) in result.input_rows.iter().enumerate() {
                    let r = origins[input_row];
                    let values = result
                        .columns
                        .iter()
                        .zip(types.iter())
                        .map(|(c, t)| value_at(c.as_ref(), i, t))
                        .collect();
                    produced.push((
                        input_row,
                        OutputRow {
                            values,
                            timestamp: timestamps[input_row],
                            headers: r.headers.clone(),
                            partition: r.partition,
                            offset: r.offset,
                            null_value: r.value.is_none(),
                            window: window_of(input_row),
                        },
                    ));
                }
                // A table row the filter rejects deletes the key downstream.
                if self.source.kind == SourceKind::Table {
                    for &input_row in &result.rejected {
                        let r = origins[input_row];
                        let values = self
                            .key_inputs
                            .iter()
                            .map(|k| {
                                k.and_then(|i| rows[input_row].get(i).cloned())
                                    .unwrap_or(Value::Null)
                            })
                            .collect();
                        produced.push((
                            input_row,
                            OutputRow {
                                values,
                                timestamp: timestamps[input_row],
                                headers: r.headers.clone(),
                                partition: r.partition,
                                offset: r.offset,
                                null_value: true,
                                window: window_of(input_row),
                            },
                        ));
                    }
                    produced.sort_by_key(|(row, _)| *row);
                }
                out.rows.extend(produced.into_iter().map(|(_, row)| row));
            }
            TaskOperator::Aggregate(op, _) => {
                let mut op = op
                    .lock()
                    .map_err(|_| EngineError::Internal("aggregation state poisoned".into()))?;
                // Null values of a table source delete their key (streams never get here).
                let tombstones: Vec<bool> = origins.iter().map(|r| r.value.is_none()).collect();
                let times = (batch_times.is_some() && row_times.len() == rows.len())
                    .then_some(row_times.as_slice());
                let (mut updates, mut errors) = op
                    .process_timed(&batch, &timestamps, &partitions, &tombstones, times)
                    .map_err(|e| EngineError::Internal(e.to_string()))?;
                // Progress markers after the batch's last record of a partition close windows.
                for (partition, close) in batch_times.iter().flat_map(|b| b.close.iter()) {
                    let (closed, failed) = op.advance(*partition, *close);
                    updates.extend(closed);
                    errors.extend(failed);
                }
                for (row, message) in errors {
                    log(&mut out, row, message);
                }
                drop(op);
                self.emit_updates(updates, &origins, &mut out)?;
            }
        }
        Ok(out)
    }

    /// Moves the close time of repartition partitions (a batch of progress markers only) and
    /// emits the EMIT FINAL windows that closes.
    fn advance_stream_time(
        &self,
        close: &[(i32, i64)],
        out: &mut TaskOutput,
    ) -> Result<(), EngineError> {
        let TaskOperator::Aggregate(op, _) = &self.operator else {
            return Ok(());
        };
        let mut updates = Vec::new();
        {
            let mut op = op
                .lock()
                .map_err(|_| EngineError::Internal("aggregation state poisoned".into()))?;
            for (partition, time) in close {
                let (closed, errors) = op.advance(*partition, *time);
                updates.extend(closed);
                for (_, message) in errors {
                    tracing::warn!("window result skipped: {message}");
                }
            }
        }
        self.emit_updates(updates, &[], out)
    }

    /// Turns aggregate updates into output rows (or holds them in the record cache). An update
    /// made without an input record (a window closed by a progress marker) has no headers.
    fn emit_updates(
        &self,
        updates: Vec<AggregateUpdate>,
        origins: &[&Record],
        out: &mut TaskOutput,
    ) -> Result<(), EngineError> {
        let TaskOperator::Aggregate(_, key_flags) = &self.operator else {
            return Ok(());
        };
        let mut held = self
            .held
            .lock()
            .map_err(|_| EngineError::Internal("record cache poisoned".into()))?;
        let updates = if self.record_cache && held.is_none() {
            coalesce(updates)
        } else {
            updates
        };
        for u in updates {
            let id = held.as_ref().map(|_| update_id(&u.key, u.window));
            let r = origins.get(u.input_row).copied();
            let null_value = u.value.is_none();
            let mut keys = u.key.into_iter();
            let mut vals = u.value.unwrap_or_default().into_iter();
            let values = key_flags
                .iter()
                .map(|&k| if k { keys.next() } else { vals.next() }.unwrap_or(Value::Null))
                .collect();
            let row = OutputRow {
                values,
                timestamp: u.timestamp,
                // Kafka Streams forwards an aggregate with the context, and so the
                // headers, of the record that changed it.
                headers: r.map(|r| r.headers.clone()).unwrap_or_default(),
                partition: r.map_or(-1, |r| r.partition),
                offset: r.map_or(-1, |r| r.offset),
                null_value,
                window: u.window,
            };
            match (held.as_mut(), id) {
                (Some(cache), Some(id)) => cache.put(id, row),
                _ => out.rows.push(row),
            }
        }
        Ok(())
    }

    /// The aggregation plan of an aggregate task.
    pub fn aggregate_plan(&self) -> Option<&AggregatePlan> {
        self.aggregate.as_deref().map(|(p, _, _, _)| p)
    }

    /// A fresh task for the same aggregation, without a sink: the first stage of a
    /// repartitioned aggregation uses it to decode records and evaluate their group keys.
    pub fn repartitioner(&self) -> Result<QueryTask, EngineError> {
        let (plan, config, agg, _) = self
            .aggregate
            .as_deref()
            .ok_or_else(|| EngineError::Internal("not an aggregation".into()))?;
        QueryTask::new_aggregate(plan, None, config.clone(), agg.clone())
    }

    /// The table an aggregation writes (its catalog entry), if it has a sink.
    pub fn sink_source(&self) -> Option<&Source> {
        self.aggregate
            .as_deref()
            .and_then(|(_, _, _, sink)| sink.as_ref())
    }

    /// A task for one input partition of this aggregation on Kafka (Kafka Streams' task: see
    /// `crate::partitioned`): the same plan, sink and settings, its own empty state, and the
    /// same materialization (the partitions' groups are disjoint).
    pub fn for_partition(&self) -> Result<QueryTask, EngineError> {
        let (plan, config, agg, sink) = self
            .aggregate
            .as_deref()
            .ok_or_else(|| EngineError::Internal("not an aggregation".into()))?;
        let task = QueryTask::new_aggregate(plan, sink.as_ref(), config.clone(), agg.clone())?
            .with_record_cache(self.cache_max_bytes)
            .with_state_memory(self.state_memory)
            .with_commit_interval(self.commit_interval);
        if let Some(m) = self.materialization() {
            task.materialize(m.clone());
        }
        let sources = self.stream_clock()?.sources();
        task.stream_clock()?.set_sources(sources);
        Ok(task)
    }

    /// Decodes records and evaluates their group keys: (record, timestamp after the TIMESTAMP
    /// column, group values or `None` when a group value is null or fails, whether the row
    /// passes the WHERE clause, evaluated only `with_filter`, else true). Records that do not
    /// decode are returned as processing-log entries; skipped records (null stream values) are
    /// left out.
    #[allow(clippy::type_complexity)]
    pub fn group_keys<'a>(
        &self,
        records: &'a [Record],
        with_filter: bool,
    ) -> Result<
        (
            Vec<(&'a Record, i64, Option<Vec<Value>>, bool)>,
            Vec<ProcessingLogEntry>,
        ),
        EngineError,
    > {
        let TaskOperator::Aggregate(op, _) = &self.operator else {
            return Err(EngineError::Internal("not an aggregation".into()));
        };
        let mut errors = Vec::new();
        let mut rows = Vec::with_capacity(records.len());
        let mut kept = Vec::with_capacity(records.len());
        for r in records {
            match self.decode(r) {
                Ok(Some((row, ts))) => {
                    rows.push(row);
                    kept.push((r, ts));
                }
                Ok(None) => {}
                Err(message) => errors.push(ProcessingLogEntry {
                    topic: r.topic.clone(),
                    partition: r.partition,
                    offset: r.offset,
                    message,
                }),
            }
        }
        if rows.is_empty() {
            return Ok((vec![], errors));
        }
        let batch = rows_to_batch(&self.input_schema, &self.input_types, &rows)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let op = op
            .lock()
            .map_err(|_| EngineError::Internal("aggregation state poisoned".into()))?;
        let groups = op
            .group_values(&batch)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let passes = if with_filter {
            op.filter_mask(&batch)
                .map_err(|e| EngineError::Internal(e.to_string()))?
        } else {
            None
        };
        let out = kept
            .into_iter()
            .zip(groups)
            .enumerate()
            .map(|(i, ((r, ts), g))| (r, ts, g, passes.as_ref().is_none_or(|p| p[i])))
            .collect();
        Ok((out, errors))
    }

    /// Whether the task keeps state (and so needs a changelog).
    pub fn is_stateful(&self) -> bool {
        matches!(self.operator, TaskOperator::Aggregate(..))
    }

    /// State changes since the last call, as changelog records.
    pub fn take_state_changes(&self) -> Result<StateChanges, String> {
        let mut changes = match &self.operator {
            TaskOperator::Aggregate(op, _) => {
                op.lock().map_err(|_| "state poisoned")?.take_changes()
            }
            TaskOperator::Select(_) => vec![],
        };
        if let Some(change) = self
            .source_offsets
            .lock()
            .map_err(|_| "state poisoned")?
            .take_change()
        {
            changes.push(change);
        }
        changes.extend(
            self.stream_clock
                .lock()
                .map_err(|_| "state poisoned")?
                .take_changes(),
        );
        Ok(changes)
    }

    /// The source offsets table of a repartitioned aggregation's aggregate stage.
    pub(crate) fn source_offsets(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, crate::repartition::SourceOffsets>, EngineError> {
        self.source_offsets
            .lock()
            .map_err(|_| EngineError::Internal("state poisoned".into()))
    }

    /// The stream clock of a repartitioned windowed aggregation's aggregate stage.
    pub(crate) fn stream_clock(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, crate::repartition::StreamClock>, EngineError> {
        self.stream_clock
            .lock()
            .map_err(|_| EngineError::Internal("state poisoned".into()))
    }

    /// Applies a changelog record while restoring.
    pub fn restore_state(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        if key.starts_with(crate::repartition::STREAM_CLOCK_KEY) {
            return self
                .stream_clock
                .lock()
                .map_err(|_| "state poisoned")?
                .restore(key, value);
        }
        if key == crate::repartition::SOURCE_OFFSETS_KEY {
            return self
                .source_offsets
                .lock()
                .map_err(|_| "state poisoned")?
                .restore(value);
        }
        match &self.operator {
            TaskOperator::Aggregate(op, _) => {
                op.lock().map_err(|_| "state poisoned")?.restore(key, value)
            }
            TaskOperator::Select(_) => Ok(()),
        }
    }

    /// The query's local state store (committed state), once the query has restored it.
    /// Entries are keyed by `AggregateOperator::STORE_KIND_*`, window start and changelog key.
    /// Readers should not keep it: the store closes (and can be reopened by a restarted query)
    /// only when the last handle is dropped. It is opened `Access::WriteMostly`: scans are
    /// cheap, point reads are cheap only once the runner has flushed it (see `evict_state`).
    pub fn state_store(&self) -> Option<Arc<runnel_state::StateStore>> {
        self.state_store.lock().ok()?.clone()
    }

    /// The local store of input partition `partition`'s task, while this server runs it (on
    /// the query's template task; same caveats as `state_store`).
    pub fn partition_store(&self, partition: i32) -> Option<Arc<runnel_state::StateStore>> {
        self.partition_stores.lock().ok()?.get(&partition).cloned()
    }

    /// Registers (or, with None, forgets) a partition task's store on the template.
    pub(crate) fn set_partition_store(
        &self,
        partition: i32,
        store: Option<Arc<runnel_state::StateStore>>,
    ) {
        if let Ok(mut stores) = self.partition_stores.lock() {
            match store {
                Some(s) => stores.insert(partition, s),
                None => stores.remove(&partition),
            };
        }
    }

    /// Set by the query thread once restored, cleared when it stops. While set, the
    /// aggregation reads groups it dropped from memory (`evict_state`) back from the store.
    pub(crate) fn set_state_store(&self, store: Option<Arc<runnel_state::StateStore>>) {
        if let TaskOperator::Aggregate(op, _) = &self.operator {
            let reader = store.clone().map(|store| {
                Box::new(move |key: &[u8]| {
                    let (kind, start) = AggregateOperator::store_key_parts(key);
                    store.get(kind, start, key).map_err(|e| e.to_string())
                }) as runnel_runtime::aggregate::StateReader
            });
            if let Ok(mut op) = op.lock() {
                op.set_state_reader(reader);
            }
        }
        if let Ok(mut s) = self.state_store.lock() {
            *s = store;
        }
    }

    /// Before a restore into the local store: with a bounded state memory the restored groups
    /// stay in the store (read back when updated) instead of all being loaded into memory.
    pub(crate) fn restore_into_store(&self) {
        if self.state_memory == usize::MAX {
            return;
        }
        if let TaskOperator::Aggregate(op, _) = &self.operator {
            if let Ok(mut op) = op.lock() {
                op.restore_in_store(true);
            }
        }
    }

    /// After a commit has reached the local store: drops committed groups from memory beyond
    /// `state_memory`. Returns how many were dropped, and whether the aggregation has dropped
    /// any so far (it then reads the store by key, which should be flushed for that).
    /// `max_bytes` narrows `state_memory` (a query's bound shared by its partitions' tasks).
    pub fn evict_state(&self, max_bytes: usize) -> (usize, bool) {
        match &self.operator {
            TaskOperator::Aggregate(op, _) => op
                .lock()
                .map(|mut op| (op.evict(self.state_memory.min(max_bytes)), op.has_evicted()))
                .unwrap_or((0, false)),
            TaskOperator::Select(_) => (0, false),
        }
    }

    /// Windows starting before this time are past retention (local store range-deletes).
    pub fn state_retention_horizon(&self) -> Option<i64> {
        match &self.operator {
            TaskOperator::Aggregate(op, _) => op.lock().ok()?.retention_horizon(),
            TaskOperator::Select(_) => None,
        }
    }

    /// Forgets all state (a restore starts over from the changelog).
    pub fn reset_state(&self) -> Result<(), String> {
        *self.source_offsets.lock().map_err(|_| "state poisoned")? = Default::default();
        self.stream_clock
            .lock()
            .map_err(|_| "state poisoned")?
            .clear();
        match &self.operator {
            TaskOperator::Aggregate(op, _) => op
                .lock()
                .map_err(|_| "state poisoned")?
                .reset()
                .map_err(|e| e.to_string()),
            TaskOperator::Select(_) => Ok(()),
        }
    }

    /// Called once the whole changelog has been applied.
    pub fn finish_restore(&self) {
        if let TaskOperator::Aggregate(op, _) = &self.operator {
            if let Ok(mut op) = op.lock() {
                // A repartitioned windowed aggregation's windows close at its clock's times,
                // not at the largest timestamp of the restored windows.
                if crate::repartition::windowed_repartition(self) {
                    if let Ok(clock) = self.stream_clock.lock() {
                        op.set_partition_times(clock.close_times());
                    }
                }
                op.finish_restore();
            }
        }
    }

    /// Serializes an output row for the sink topic.
    pub fn encode(&self, row: &OutputRow) -> Result<Record, String> {
        let sink = self.sink.as_ref().ok_or("transient queries have no sink")?;
        let pick = |positions: &[usize]| {
            positions
                .iter()
                .map(|&i| row.values[i].clone())
                .collect::<Vec<_>>()
        };
        let key_values = pick(&sink.key_positions);
        let mut key = if key_values.is_empty() {
            sink.key.serialize(Some(&[]))
        } else if key_values.iter().all(Value::is_null) {
            sink.key.serialize(None)
        } else {
            sink.key.serialize(Some(&key_values))
        }
        .map_err(|e| e.to_string())?;
        if let (Some(w), Some((start, end))) = (sink.window, row.window) {
            let inner = key.unwrap_or_default();
            key = Some(encode_windowed_key(
                &inner,
                window_type(w),
                Window { start, end },
            ));
        }
        let value = if row.null_value {
            None
        } else if let Some(range) = &sink.value_range {
            sink.value
                .serialize(Some(&row.values[range.clone()]))
                .map_err(|e| e.to_string())?
        } else {
            sink.value
                .serialize(Some(&pick(&sink.value_positions)))
                .map_err(|e| e.to_string())?
        };
        let timestamp = match sink.timestamp_position.map(|p| &row.values[p]) {
            Some(Value::Bigint(t)) | Some(Value::Timestamp(t)) => *t,
            _ => row.timestamp,
        };
        Ok(Record {
            topic: sink.topic.clone(),
            partition: -1,
            offset: -1,
            timestamp,
            key,
            value,
            headers: row.headers.clone(),
        })
    }
}

/// Parses a timestamp string with a Java `DateTimeFormatter` pattern (UTC unless the text has a zone).
pub fn parse_timestamp(text: &str, pattern: &str) -> Result<i64, String> {
    use runnel_plan::functions::javatime::{self, Pattern, Zone};
    let compiled = Pattern::compile(pattern)?;
    let utc = Zone::of("UTC")?;
    javatime::parse_timestamp(text, &compiled, &utc)
}

/// Reads the row values of a batch column for display (used by pull/push output).
pub fn row_strings(values: &[Value]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(key: &str, count: i64, window: Option<(i64, i64)>) -> AggregateUpdate {
        AggregateUpdate {
            input_row: 0,
            key: vec![Value::String(key.into())],
            value: Some(vec![Value::Bigint(count)]),
            window,
            timestamp: count,
        }
    }

    #[test]
    fn the_record_cache_keeps_the_last_update_of_each_key_and_window() {
        let w = Some((0, 10));
        let out = coalesce(vec![
            update("a", 1, None),
            update("b", 1, None),
            update("a", 2, None),
            update("a", 1, w),
            update("b", 2, None),
        ]);
        let shown: Vec<String> = out
            .iter()
            .map(|u| format!("{}={}@{:?}", u.key[0], u.timestamp, u.window))
            .collect();
        assert_eq!(shown, vec!["a=2@None", "a=1@Some((0, 10))", "b=2@None"]);
    }
}

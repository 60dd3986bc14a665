//! The aggregation operator: GROUP BY over a stream, optionally windowed, emitting a changelog.
//!
//! Filter, group-by and argument expressions are evaluated vectorised per batch; then each row
//! updates its group's (and window's) aggregate state in input order and, with `EMIT CHANGES`,
//! emits the new aggregate at once (no caching: every update is visible, as ksqlDB with
//! `cache.max.bytes.buffering=0`). Stream time is the largest timestamp seen; records whose
//! window closed (end + grace ≤ stream time) are dropped and reported. `EMIT FINAL` holds each
//! window's result until stream time passes its end plus grace.
//!
//! Over a **table** source (Kafka Streams' `KGroupedTable`) a row is not an event but the current
//! value of its source key, so the operator remembers what each source key contributes (its
//! group and aggregate arguments). An update first takes the old contribution back out of its
//! group with the aggregates' `undo` and then adds the new one: if both fall into the same group
//! that is one output, otherwise the old group's new value comes first and the new group's
//! second. A tombstone, a row the WHERE clause rejects, or one whose group key is null only
//! retracts. Groups stay when their rows are gone (a count goes back to 0); only HAVING turns
//! them into tombstones, as in ksqlDB. The contributions are state like the aggregates: they go
//! to the changelog and come back on restore.

use crate::compile::{CompiledExpr, Compiler, ErrorSink};
use crate::convert::value_at;
use crate::select::arrow_schema;
use crate::RuntimeError;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use runnel_plan::aggregate::AggregatePlan;
use runnel_plan::aggregates::AggregateConfig;
use runnel_plan::catalog::WindowType;
use runnel_plan::functions::FunctionConfig;
use runnel_plan::query::InputField;
use runnel_plan::{codec, TypedExpr, Value};
use runnel_sql::{SourceKind, SqlType};
use std::collections::{BTreeMap, HashMap};

/// One change of the aggregate table.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateUpdate {
    /// Input row (of the batch) that caused it.
    pub input_row: usize,
    /// Key column values (the group-by values in key order).
    pub key: Vec<Value>,
    /// Value column values; `None` is a tombstone.
    pub value: Option<Vec<Value>>,
    /// Window bounds for windowed aggregations.
    pub window: Option<(i64, i64)>,
    pub timestamp: i64,
}

/// The updates of a batch, and the per-row errors (input row, message).
pub type AggregateOutput = (Vec<AggregateUpdate>, Vec<(usize, String)>);

/// The stream time a row of a repartitioned windowed aggregation is processed at, given by the
/// caller instead of being the largest timestamp of the row's input partition (see
/// `runnel_engine::repartition`): its record is late when a window closed at `late`, and the
/// input partition's windows close (EMIT FINAL), are pruned and expire at `close`. With a single
/// source partition both are the largest timestamp seen, as without repartitioning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowTime {
    pub late: i64,
    pub close: i64,
}

#[derive(Debug, Clone)]
struct GroupState {
    group: Vec<Value>,
    states: Vec<Value>,
    max_ts: i64,
    /// The input partition whose records update it (its stream time closes the window).
    partition: i32,
    /// Listed in `dirty` since the last `take_changes` (so a hot group is listed once per
    /// commit, not once per record).
    dirty: bool,
    /// Used since the last eviction (see [`AggregateOperator::evict`]).
    touched: bool,
}

impl GroupState {
    fn approx_size(&self, key: &str) -> usize {
        GROUP_OVERHEAD
            + key.len()
            + self.group.iter().map(Value::approx_size).sum::<usize>()
            + self.states.iter().map(Value::approx_size).sum::<usize>()
    }
}

/// Memory of a group in the in-memory state besides its values (hash table slot, key string,
/// vectors): a lower bound of what it costs.
const GROUP_OVERHEAD: usize = 96;

/// Reads values of known types one after the other from a state entry (`codec` encoding).
struct ValueReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl ValueReader<'_> {
    fn values(&mut self, types: &[SqlType]) -> Result<Vec<Value>, String> {
        types
            .iter()
            .map(|ty| {
                let (v, used) = codec::decode_value(&self.bytes[self.pos..], ty)?;
                self.pos += used;
                Ok(v)
            })
            .collect()
    }
}

/// Reads a committed state entry by its changelog key (the local store holds every committed
/// entry), for groups evicted from memory.
pub type StateReader = Box<dyn Fn(&[u8]) -> Result<Option<Vec<u8>>, String> + Send>;

/// What one source row of a table aggregation adds to its group.
#[derive(Debug, Clone, PartialEq)]
struct Contribution {
    group: Vec<Value>,
    /// Per aggregate, its argument values.
    args: Vec<Vec<Value>>,
}

/// Changelog keys of table contributions start with this byte; group state keys start with a
/// key-encoding tag (never 0xFF) or, without GROUP BY, with the window start 0.
const CONTRIBUTION_PREFIX: u8 = 0xFF;

#[derive(Debug, Clone)]
struct Session {
    start: i64,
    end: i64,
    state: GroupState,
}

pub struct AggregateOperator {
    plan: AggregatePlan,
    input_schema: SchemaRef,
    input_types: Vec<SqlType>,
    filter: Option<CompiledExpr>,
    groups: Vec<CompiledExpr>,
    args: Vec<Vec<CompiledExpr>>,
    errors: ErrorSink,
    config: FunctionConfig,
    agg_config: AggregateConfig,
    /// Non-session state by (group key text, window start).
    table: HashMap<(String, i64), GroupState>,
    /// Session windows by group key text, ordered by start.
    sessions: HashMap<String, Vec<Session>>,
    /// EMIT FINAL results waiting for their window to close: (end, key text, start) → state.
    pending: HashMap<i32, BTreeMap<(i64, String, i64), GroupState>>,
    /// Stream time of the partition of the row being processed: its record is late when a
    /// window closed at it.
    stream_time: i64,
    /// The time the current partition's windows close, are pruned and expire at: `stream_time`
    /// unless the caller gives row times ([`RowTime`]).
    close_time: i64,
    /// Stream time per input partition: like a Kafka Streams task, each partition closes its
    /// own windows.
    partition_times: HashMap<i32, i64>,
    current_partition: i32,
    /// Stream time of the last retention sweep.
    next_prune: i64,
    /// State entries changed since the last `take_changes`: (group values, window start).
    dirty: Vec<(Vec<Value>, i64)>,
    /// Table sources: input positions of the source key (with the window bounds of a windowed
    /// table); `None` for streams.
    source_key: Option<Vec<usize>>,
    /// Table sources: the current contribution of every source key, by encoded key.
    contributions: HashMap<Vec<u8>, Contribution>,
    /// Source keys whose contribution changed since the last `take_changes`.
    dirty_contributions: Vec<Vec<u8>>,
    /// Reads evicted groups back (see [`Self::evict`]); `None`: all state is in memory.
    reader: Option<StateReader>,
    /// Some group has been dropped from memory (and may be read back).
    evicted: bool,
    /// `restore` leaves groups in the store they are restored into (see `restore_in_store`).
    restore_in_store: bool,
}

/// A group's identity in the in-memory state: exactly the `Debug` text of its values (whose
/// order the EMIT FINAL buffer follows), written directly for the common kinds of group values:
/// `format!` with `Debug` was a tenth of an aggregation's query thread.
fn key_text(values: &[Value]) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(2 + values.len() * 16);
    text.push('[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        match v {
            // `Debug` escapes quotes, backslashes and anything not printable ASCII.
            Value::String(s)
                if s.bytes()
                    .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\') =>
            {
                text.push_str("String(\"");
                text.push_str(s);
                text.push_str("\")");
            }
            Value::Int(n) => {
                let _ = write!(text, "Int({n})");
            }
            Value::Bigint(n) => {
                let _ = write!(text, "Bigint({n})");
            }
            other => {
                let _ = write!(text, "{other:?}");
            }
        }
    }
    text.push(']');
    text
}

impl AggregateOperator {
    pub fn new(
        plan: &AggregatePlan,
        config: FunctionConfig,
        agg_config: AggregateConfig,
    ) -> Result<Self, RuntimeError> {
        let columns: Vec<(String, SqlType)> = plan
            .input
            .fields
            .iter()
            .map(|(_, n, t)| (n.clone(), t.clone()))
            .collect();
        let compiler = Compiler::new(columns.clone(), config.clone());
        let compile = |t: &TypedExpr| compiler.compile(t);
        let source_key = (plan.source.kind == SourceKind::Table).then(|| {
            plan.input
                .fields
                .iter()
                .enumerate()
                .filter(|(_, (f, _, _))| {
                    matches!(
                        f,
                        InputField::Key(_) | InputField::WindowStart | InputField::WindowEnd
                    )
                })
                .map(|(i, _)| i)
                .collect()
        });
        Ok(AggregateOperator {
            filter: plan.filter.as_ref().map(compile).transpose()?,
            groups: plan
                .group_by
                .iter()
                .map(compile)
                .collect::<Result<_, _>>()?,
            args: plan
                .aggregates
                .iter()
                .map(|a| a.args.iter().map(compile).collect::<Result<Vec<_>, _>>())
                .collect::<Result<_, _>>()?,
            input_schema: arrow_schema(&columns),
            input_types: columns.into_iter().map(|(_, t)| t).collect(),
            errors: compiler.errors.clone(),
            config,
            agg_config,
            plan: plan.clone(),
            table: HashMap::new(),
            sessions: HashMap::new(),
            pending: HashMap::new(),
            stream_time: i64::MIN,
            close_time: i64::MIN,
            partition_times: HashMap::new(),
            current_partition: 0,
            next_prune: i64::MIN,
            dirty: Vec::new(),
            source_key,
            contributions: HashMap::new(),
            dirty_contributions: Vec::new(),
            reader: None,
            evicted: false,
            restore_in_store: false,
        })
    }

    fn state_types(&self) -> Vec<SqlType> {
        self.plan
            .aggregates
            .iter()
            .map(|a| a.signature.state_type.clone())
            .collect()
    }

    fn group_types(&self) -> Vec<SqlType> {
        self.plan.group_by.iter().map(|g| g.ty()).collect()
    }

    /// The changelog key of a state entry: the group values, then the window start.
    fn state_key(group: &[Value], start: i64) -> Vec<u8> {
        let mut key = codec::encode_key(group);
        key.extend_from_slice(&start.to_be_bytes());
        key
    }

    /// Lists a changed state for the next `take_changes`, once until then.
    fn mark_dirty(dirty: &mut Vec<(Vec<Value>, i64)>, state: &mut GroupState, start: i64) {
        if !state.dirty {
            state.dirty = true;
            dirty.push((state.group.clone(), start));
        }
    }

    /// The state changes since the last call, as changelog records (`None` deletes).
    pub fn take_changes(&mut self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let dirty = std::mem::take(&mut self.dirty);
        let (group_types, state_types) = (self.group_types(), self.state_types());
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for (group, start) in dirty.into_iter().rev() {
            let text = key_text(&group);
            if !seen.insert((text.clone(), start)) {
                continue;
            }
            let encode = |state: &GroupState, end: i64| {
                let mut buf = Vec::new();
                for (v, t) in state.group.iter().zip(group_types.iter()) {
                    codec::encode_value(v, t, &mut buf);
                }
                for (v, t) in state.states.iter().zip(state_types.iter()) {
                    codec::encode_value(v, t, &mut buf);
                }
                buf.extend_from_slice(&state.max_ts.to_be_bytes());
                buf.extend_from_slice(&start.to_be_bytes());
                buf.extend_from_slice(&end.to_be_bytes());
                buf.extend_from_slice(&state.partition.to_be_bytes());
                buf
            };
            let value = match self.plan.window.as_ref().map(|w| w.window_type) {
                Some(WindowType::Session) => self
                    .sessions
                    .get(&text)
                    .and_then(|v| v.iter().find(|s| s.start == start))
                    .map(|s| encode(&s.state, s.end)),
                _ => {
                    let size = self.plan.window.as_ref().map(|w| w.size_ms).unwrap_or(0);
                    self.table.get_mut(&(text, start)).map(|st| {
                        st.dirty = false;
                        encode(st, start + size)
                    })
                }
            };
            out.push((Self::state_key(&group, start), value));
        }
        out.reverse();
        let dirty = std::mem::take(&mut self.dirty_contributions);
        let mut seen = std::collections::HashSet::new();
        for key in dirty {
            if !seen.insert(key.clone()) {
                continue;
            }
            let value = self
                .contributions
                .get(&key)
                .map(|c| self.encode_contribution(c));
            let mut state_key = vec![CONTRIBUTION_PREFIX];
            state_key.extend_from_slice(&key);
            out.push((state_key, value));
        }
        out
    }

    /// Types of the aggregate arguments, per aggregate.
    fn arg_types(&self) -> Vec<Vec<SqlType>> {
        self.args
            .iter()
            .map(|args| args.iter().map(|a| a.ty.clone()).collect())
            .collect()
    }

    fn encode_contribution(&self, c: &Contribution) -> Vec<u8> {
        let mut buf = Vec::new();
        for (v, t) in c.group.iter().zip(self.group_types().iter()) {
            codec::encode_value(v, t, &mut buf);
        }
        for (args, types) in c.args.iter().zip(self.arg_types().iter()) {
            for (v, t) in args.iter().zip(types.iter()) {
                codec::encode_value(v, t, &mut buf);
            }
        }
        buf
    }

    fn decode_contribution(&self, bytes: &[u8]) -> Result<Contribution, String> {
        let mut reader = ValueReader { bytes, pos: 0 };
        let group = reader.values(&self.group_types())?;
        let args = self
            .arg_types()
            .iter()
            .map(|types| reader.values(types))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Contribution { group, args })
    }

    /// After a restore: results of windows that had closed were emitted before the restart.
    pub fn finish_restore(&mut self) {
        let grace = self.plan.window.as_ref().map(|w| w.grace_ms).unwrap_or(0);
        for (partition, pending) in self.pending.iter_mut() {
            let now = self
                .partition_times
                .get(partition)
                .copied()
                .unwrap_or(i64::MIN);
            pending.retain(|(end, _, _), _| end.saturating_add(grace) > now);
        }
        self.dirty.clear();
        self.dirty_contributions.clear();
    }

    /// Applies one changelog record while restoring.
    pub fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        if self.source_key.is_some() && key.first() == Some(&CONTRIBUTION_PREFIX) {
            let source_key = key[1..].to_vec();
            match value {
                Some(bytes) => {
                    let c = self.decode_contribution(bytes)?;
                    self.contributions.insert(source_key, c);
                }
                None => {
                    self.contributions.remove(&source_key);
                }
            }
            return Ok(());
        }
        let Some(bytes) = value else {
            if self.restore_in_store {
                return Ok(());
            }
            // A delete: find the entry whose key this is.
            self.table
                .retain(|(_, start), st| Self::state_key(&st.group, *start) != key);
            for sessions in self.sessions.values_mut() {
                sessions.retain(|s| Self::state_key(&s.state.group, s.start) != key);
            }
            return Ok(());
        };
        let (state, start, end) = self.decode_state(bytes)?;
        let time = self
            .partition_times
            .entry(state.partition)
            .or_insert(i64::MIN);
        *time = (*time).max(state.max_ts);
        let text = key_text(&state.group);
        if self.plan.emit_final {
            self.pending
                .entry(state.partition)
                .or_default()
                .insert((end, text.clone(), start), state.clone());
        }
        if self
            .plan
            .window
            .as_ref()
            .is_some_and(|w| w.window_type == WindowType::Session)
        {
            let v = self.sessions.entry(text).or_default();
            v.retain(|s| s.start != start);
            v.push(Session { start, end, state });
            v.sort_by_key(|s| s.start);
        } else if self.restore_in_store {
            // Left in the store: read back by key when a record updates it.
            self.evicted = true;
        } else {
            self.table.insert((text, start), state);
        }
        Ok(())
    }

    /// Decodes a state entry's value: the state, its window start and end.
    fn decode_state(&self, bytes: &[u8]) -> Result<(GroupState, i64, i64), String> {
        let mut reader = ValueReader { bytes, pos: 0 };
        let group = reader.values(&self.group_types())?;
        let states = reader.values(&self.state_types())?;
        let rest = &bytes[reader.pos..];
        if rest.len() < 28 {
            return Err("truncated aggregate state".into());
        }
        let num =
            |i: usize| i64::from_be_bytes(rest[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        let (max_ts, start, end) = (num(0), num(1), num(2));
        let partition = i32::from_be_bytes(rest[24..28].try_into().unwrap_or([0; 4]));
        let state = GroupState {
            group,
            states,
            max_ts,
            partition,
            dirty: false,
            touched: false,
        };
        Ok((state, start, end))
    }

    /// Lets the operator keep only part of its (non-session) state in memory: groups evicted
    /// by [`Self::evict`] are read back through `reader` when a record updates them again.
    pub fn set_state_reader(&mut self, reader: Option<StateReader>) {
        self.reader = reader;
    }

    /// A group's state that is not in memory, from the committed state. Only once groups have
    /// left memory: until then a group missing from memory is new, and its lookup would cost a
    /// store read per new group.
    fn load(&self, group: &[Value], start: i64) -> Result<Option<GroupState>, String> {
        let Some(reader) = self.reader.as_ref().filter(|_| self.evicted) else {
            return Ok(None);
        };
        let Some(bytes) = reader(&Self::state_key(group, start))? else {
            return Ok(None);
        };
        let (mut state, _, _) = self
            .decode_state(&bytes)
            .map_err(|e| format!("cannot read the state of group {group:?}: {e}"))?;
        state.touched = true;
        Ok(Some(state))
    }

    /// Bounds the in-memory working copy of the state at about `max_bytes`: once it is larger,
    /// drops committed groups (not changed since the last `take_changes`, so the state reader
    /// has them) that were not used since the last eviction, then other committed groups,
    /// down to 90 % of the bound (a CLOCK policy: hot groups stay). Call it only after the
    /// changes taken by `take_changes` are readable through the reader. Session windows and
    /// EMIT FINAL's windows waiting to close stay in memory. Returns the groups dropped.
    pub fn evict(&mut self, max_bytes: usize) -> usize {
        if self.reader.is_none() || self.table.len().saturating_mul(GROUP_OVERHEAD) <= max_bytes {
            return 0;
        }
        // The size from a sample (summing every group at every commit would cost more than
        // the bound saves when it is far away).
        const SAMPLE: usize = 1024;
        let sampled: Vec<usize> = self
            .table
            .iter()
            .take(SAMPLE)
            .map(|((key, _), state)| state.approx_size(key))
            .collect();
        let average = sampled.iter().sum::<usize>() / sampled.len().max(1);
        let mut size = average.saturating_mul(self.table.len());
        if size <= max_bytes {
            return 0;
        }
        let target = max_bytes / 10 * 9;
        let before = self.table.len();
        for cold_only in [true, false] {
            self.table.retain(|(key, _), state| {
                if size > target && !state.dirty && (!cold_only || !state.touched) {
                    size = size.saturating_sub(state.approx_size(key));
                    false
                } else {
                    true
                }
            });
            if size <= target {
                break;
            }
        }
        for state in self.table.values_mut() {
            state.touched = false;
        }
        let dropped = before - self.table.len();
        self.evicted |= dropped > 0;
        dropped
    }

    /// Restores into a store that the operator will read (`set_state_reader`): `restore` then
    /// keeps only what must be in memory (stream time, sessions, EMIT FINAL's open windows) and
    /// leaves the groups in the store, so a restart needs no more memory than the bound.
    pub fn restore_in_store(&mut self, yes: bool) {
        self.restore_in_store = yes;
    }

    /// Whether groups have been dropped from memory since the operator started.
    pub fn has_evicted(&self) -> bool {
        self.evicted
    }

    /// Groups (and windows) held in memory, sessions excluded.
    pub fn groups_in_memory(&self) -> usize {
        self.table.len()
    }

    pub fn input_schema(&self) -> &SchemaRef {
        &self.input_schema
    }

    pub fn input_types(&self) -> &[SqlType] {
        &self.input_types
    }

    fn evaluate(&self, c: &CompiledExpr, batch: &RecordBatch) -> Result<ArrayRef, RuntimeError> {
        c.evaluate_or_per_row(batch, &self.input_types, &self.config, &self.errors)
    }

    fn init_states(&self) -> Vec<Value> {
        self.plan
            .aggregates
            .iter()
            .map(|a| (a.function.init)(&a.signature))
            .collect()
    }

    fn add(&self, state: &mut GroupState, args: &[Vec<Value>], ts: i64) -> Result<(), String> {
        for (i, a) in self.plan.aggregates.iter().enumerate() {
            let old = std::mem::replace(&mut state.states[i], Value::Null);
            state.states[i] =
                (a.function.add)(old, &args[i], &a.signature, &self.agg_config).map_err(failure)?;
        }
        state.max_ts = state.max_ts.max(ts);
        state.partition = self.current_partition;
        Ok(())
    }

    /// Takes one source row's arguments back out of a state (table sources).
    fn undo(&self, state: &mut GroupState, args: &[Vec<Value>], ts: i64) -> Result<(), String> {
        for (i, a) in self.plan.aggregates.iter().enumerate() {
            let Some(undo) = &a.function.undo else {
                // The planner rejects these for table sources.
                return Err(format!(
                    "The aggregation function {} cannot be applied to a table source",
                    a.function.name
                ));
            };
            let old = std::mem::replace(&mut state.states[i], Value::Null);
            state.states[i] =
                undo(old, &args[i], &a.signature, &self.agg_config).map_err(failure)?;
        }
        state.max_ts = state.max_ts.max(ts);
        state.partition = self.current_partition;
        Ok(())
    }

    /// Builds the output of a state: HAVING, then the projection.
    fn output(
        &self,
        input_row: usize,
        state: &GroupState,
        window: Option<(i64, i64)>,
    ) -> Result<AggregateUpdate, String> {
        let mut row = state.group.clone();
        for (i, a) in self.plan.aggregates.iter().enumerate() {
            row.push((a.function.result)(&state.states[i], &a.signature)?);
        }
        if let Some((s, e)) = window {
            row.push(Value::Bigint(s));
            row.push(Value::Bigint(e));
        }
        let key = state.group.clone();
        let passes = match &self.plan.having {
            Some(h) => runnel_plan::eval::eval(h, &row, &self.config)? == Value::Boolean(true),
            None => true,
        };
        let value = if passes {
            let mut values = Vec::new();
            for p in self.plan.projection.iter().filter(|p| !p.is_key) {
                values.push(runnel_plan::eval::eval(&p.expr, &row, &self.config)?);
            }
            Some(values)
        } else {
            None
        };
        Ok(AggregateUpdate {
            input_row,
            key,
            value,
            window,
            timestamp: state.max_ts,
        })
    }

    /// Processes a batch whose rows carry `timestamps`; `tombstones` marks the rows of a table
    /// source that delete their key. Returns the updates in order and the per-row errors.
    /// The group-by values of each row (`None` when one is null or fails to evaluate), without
    /// touching state: what the first stage of a repartitioned aggregation partitions by. Errors
    /// are not reported here; the aggregating stage evaluates the same expressions and logs them.
    pub fn group_values(
        &self,
        batch: &RecordBatch,
    ) -> Result<Vec<Option<Vec<Value>>>, RuntimeError> {
        let arrays = self
            .groups
            .iter()
            .map(|g| self.evaluate(g, batch))
            .collect::<Result<Vec<_>, _>>()?;
        let failed: std::collections::HashSet<usize> = self
            .errors
            .drain()
            .into_iter()
            .map(|(row, _)| row)
            .collect();
        Ok((0..batch.num_rows())
            .map(|row| {
                if failed.contains(&row) {
                    return None;
                }
                let group: Vec<Value> = arrays
                    .iter()
                    .zip(self.groups.iter())
                    .map(|(a, g)| value_at(a.as_ref(), row, &g.ty))
                    .collect();
                (!group.iter().any(Value::is_null)).then_some(group)
            })
            .collect())
    }

    /// Which rows pass the WHERE clause (`None` without one), without touching state: the first
    /// stage of a repartitioned windowed aggregation moves a source partition's stream time only
    /// with the rows the aggregation takes, as Kafka Streams' aggregate task only sees those.
    pub fn filter_mask(&self, batch: &RecordBatch) -> Result<Option<Vec<bool>>, RuntimeError> {
        let Some(f) = &self.filter else {
            return Ok(None);
        };
        let a = self.evaluate(f, batch)?;
        // Failures are reported by the aggregating stage, which evaluates the filter again.
        self.errors.drain();
        let b = a.as_any().downcast_ref::<BooleanArray>();
        Ok(Some(
            (0..batch.num_rows())
                .map(|i| b.is_some_and(|b| b.is_valid(i) && b.value(i)))
                .collect(),
        ))
    }

    pub fn process(
        &mut self,
        batch: &RecordBatch,
        timestamps: &[i64],
        partitions: &[i32],
        tombstones: &[bool],
    ) -> Result<AggregateOutput, RuntimeError> {
        self.process_timed(batch, timestamps, partitions, tombstones, None)
    }

    /// `process` with the stream time of every row given (`times`, one per row; see
    /// [`RowTime`]) rather than taken from the timestamps.
    pub fn process_timed(
        &mut self,
        batch: &RecordBatch,
        timestamps: &[i64],
        partitions: &[i32],
        tombstones: &[bool],
        times: Option<&[RowTime]>,
    ) -> Result<AggregateOutput, RuntimeError> {
        let rows = batch.num_rows();
        let mask = match &self.filter {
            Some(f) => {
                let a = self.evaluate(f, batch)?;
                let b = a.as_any().downcast_ref::<BooleanArray>().cloned();
                b.map(|b| {
                    (0..rows)
                        .map(|i| b.is_valid(i) && b.value(i))
                        .collect::<Vec<bool>>()
                })
            }
            None => None,
        };
        let group_arrays = self
            .groups
            .iter()
            .map(|g| self.evaluate(g, batch))
            .collect::<Result<Vec<_>, _>>()?;
        let arg_arrays = self
            .args
            .iter()
            .map(|args| {
                args.iter()
                    .map(|a| self.evaluate(a, batch))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut errors = self.errors.drain();
        let mut updates = Vec::new();
        for row in 0..rows {
            let deleted = tombstones.get(row).copied().unwrap_or(false);
            let contribution = if deleted || mask.as_ref().is_some_and(|m| !m[row]) {
                None
            } else {
                let group: Vec<Value> = group_arrays
                    .iter()
                    .zip(self.groups.iter())
                    .map(|(a, g)| value_at(a.as_ref(), row, &g.ty))
                    .collect();
                // ksqlDB drops (and logs) rows with a null in any grouping column, unless the
                // expression failed, which is logged already. Without GROUP BY there is one
                // group, whose key is empty.
                if let Some(i) = group.iter().position(Value::is_null) {
                    if !errors.iter().any(|(r, _)| *r == row) {
                        errors.push((
                            row,
                            format!(
                                "Group-by column with index {i} resolved to null. \
                                 The source row will be excluded from the table."
                            ),
                        ));
                    }
                    None
                } else {
                    let args: Vec<Vec<Value>> = arg_arrays
                        .iter()
                        .zip(self.args.iter())
                        .map(|(arrays, compiled)| {
                            arrays
                                .iter()
                                .zip(compiled.iter())
                                .map(|(a, c)| value_at(a.as_ref(), row, &c.ty))
                                .collect()
                        })
                        .collect();
                    Some(Contribution { group, args })
                }
            };
            let ts = timestamps.get(row).copied().unwrap_or(0);
            let partition = partitions.get(row).copied().unwrap_or(0);
            if let Some(positions) = &self.source_key {
                let key: Vec<Value> = positions
                    .iter()
                    .map(|&i| value_at(batch.column(i).as_ref(), row, &self.input_types[i]))
                    .collect();
                self.current_partition = partition;
                if let Err(e) =
                    self.update_table(row, codec::encode_key(&key), contribution, ts, &mut updates)
                {
                    errors.push((row, fatal(e)?));
                }
                continue;
            }
            let Some(Contribution { group, args }) = contribution else {
                continue;
            };
            let time = self.partition_times.entry(partition).or_insert(i64::MIN);
            match times.and_then(|t| t.get(row)) {
                Some(given) => {
                    *time = (*time).max(given.close);
                    self.close_time = *time;
                    self.stream_time = given.late.max(*time);
                }
                None => {
                    *time = (*time).max(ts);
                    self.stream_time = *time;
                    self.close_time = *time;
                }
            }
            self.current_partition = partition;
            if let Err(e) = self.update(row, group, &args, ts, &mut updates) {
                errors.push((row, fatal(e)?));
            }
            if self.plan.emit_final {
                self.flush_closed(row, &mut updates, &mut errors);
            }
        }
        Ok((updates, errors))
    }

    /// Table sources: replaces the contribution of one source key (`None` removes it).
    fn update_table(
        &mut self,
        row: usize,
        source_key: Vec<u8>,
        new: Option<Contribution>,
        ts: i64,
        out: &mut Vec<AggregateUpdate>,
    ) -> Result<(), String> {
        let old = match &new {
            Some(c) => self.contributions.insert(source_key.clone(), c.clone()),
            None => self.contributions.remove(&source_key),
        };
        if old.is_none() && new.is_none() {
            return Ok(());
        }
        self.dirty_contributions.push(source_key);
        match (old, new) {
            (Some(old), Some(new)) if key_text(&old.group) == key_text(&new.group) => {
                // Kafka Streams forwards the old and the new value of one group together.
                self.change_group(row, &new.group, out, |op, state| {
                    op.undo(state, &old.args, ts)?;
                    op.add(state, &new.args, ts)
                })
            }
            (old, new) => {
                let retracted = old.map_or(Ok(()), |old| {
                    self.change_group(row, &old.group, out, |op, state| {
                        op.undo(state, &old.args, ts)
                    })
                });
                let added = new.map_or(Ok(()), |new| {
                    self.change_group(row, &new.group, out, |op, state| {
                        op.add(state, &new.args, ts)
                    })
                });
                retracted.and(added)
            }
        }
    }

    /// Applies `change` to the state of the non-windowed `group` (created when new), marks it for
    /// the changelog and emits its new value.
    fn change_group(
        &mut self,
        row: usize,
        group: &[Value],
        out: &mut Vec<AggregateUpdate>,
        change: impl FnOnce(&Self, &mut GroupState) -> Result<(), String>,
    ) -> Result<(), String> {
        let key = (key_text(group), 0);
        let existing = match self.table.remove(&key) {
            Some(state) => Some(state),
            None => self.load(group, 0)?,
        };
        let shown = self.shown(row, existing.as_ref(), None);
        let mut state = existing.unwrap_or_else(|| GroupState {
            group: group.to_vec(),
            states: self.init_states(),
            max_ts: i64::MIN,
            partition: self.current_partition,
            dirty: false,
            touched: true,
        });
        state.touched = true;
        let result = change(self, &mut state).and_then(|_| self.output(row, &state, None));
        Self::mark_dirty(&mut self.dirty, &mut state, 0);
        self.table.insert(key, state);
        Self::emit(out, result?, shown);
        Ok(())
    }

    /// Whether the output table currently holds a row for this state: HAVING filters a
    /// changelog the way Kafka Streams' table filter does with old values enabled, so a group
    /// that fails HAVING only gets a tombstone when its previous value passed.
    fn shown(&self, row: usize, state: Option<&GroupState>, window: Option<(i64, i64)>) -> bool {
        match (state, &self.plan.having) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(state), Some(_)) => self
                .output(row, state, window)
                .is_ok_and(|u| u.value.is_some()),
        }
    }

    /// Adds an update, unless it deletes a row that was never shown (see `shown`).
    fn emit(out: &mut Vec<AggregateUpdate>, update: AggregateUpdate, shown: bool) {
        if update.value.is_some() || shown {
            out.push(update);
        }
    }

    fn update(
        &mut self,
        row: usize,
        group: Vec<Value>,
        args: &[Vec<Value>],
        ts: i64,
        out: &mut Vec<AggregateUpdate>,
    ) -> Result<(), String> {
        let Some(window) = self.plan.window.clone() else {
            return self.change_group(row, &group, out, |op, state| op.add(state, args, ts));
        };
        let key = key_text(&group);
        let close = |end: i64, stream_time: i64| closed(&window, end, stream_time);
        match window.window_type {
            WindowType::Tumbling | WindowType::Hopping => {
                let (size, advance) = (window.size_ms, window.advance_ms.max(1));
                let first = (ts - size + advance).max(0) / advance * advance;
                let mut start = first;
                let mut any = false;
                while start <= ts {
                    let end = start + size;
                    if close(end, self.stream_time) {
                        start += advance;
                        continue;
                    }
                    any = true;
                    // One key string per window: looked up, then moved back in with the state.
                    let lookup = (key.clone(), start);
                    let (slot, existing) = match self.table.remove_entry(&lookup) {
                        Some((slot, state)) => (slot, Some(state)),
                        None => (lookup, self.load(&group, start)?),
                    };
                    let shown = self.shown(row, existing.as_ref(), Some((start, end)));
                    let mut state = existing.unwrap_or_else(|| GroupState {
                        group: group.clone(),
                        states: self.init_states(),
                        max_ts: i64::MIN,
                        partition: self.current_partition,
                        dirty: false,
                        touched: true,
                    });
                    state.touched = true;
                    self.add(&mut state, args, ts)?;
                    if self.plan.emit_final {
                        self.pending
                            .entry(state.partition)
                            .or_default()
                            .insert((end, key.clone(), start), state.clone());
                    } else {
                        Self::emit(out, self.output(row, &state, Some((start, end)))?, shown);
                    }
                    Self::mark_dirty(&mut self.dirty, &mut state, start);
                    self.table.insert(slot, state);
                    start += advance;
                }
                if !any {
                    return Err(format!(
                        "Skipping record for expired window. timestamp=[{ts}] streamTime=[{}]",
                        self.stream_time
                    ));
                }
                // Forget windows past retention; a full sweep only once stream time has moved
                // on by a tenth of the retention, so the cost stays O(1) per record.
                let step = (window.retention_ms / 10).max(1_000);
                if self.close_time >= self.next_prune.saturating_add(step) {
                    let horizon = self.close_time.saturating_sub(window.retention_ms);
                    self.table.retain(|(_, s), _| s + size > horizon);
                    self.next_prune = self.close_time;
                }
                Ok(())
            }
            WindowType::Session => {
                let gap = window.size_ms;
                // The session store forgets sessions that ended more than its retention ago: a
                // record can no longer merge into them.
                let expired = self.close_time.saturating_sub(window.retention_ms);
                let sessions = self.sessions.entry(key.clone()).or_default();
                let (merging, keep): (Vec<Session>, Vec<Session>) = sessions
                    .drain(..)
                    .filter(|s| s.end > expired)
                    .partition(|s| s.end + gap >= ts && s.start - gap <= ts);
                *sessions = keep;
                let mut start = ts;
                let mut end = ts;
                let mut state = GroupState {
                    group: group.clone(),
                    states: vec![],
                    max_ts: i64::MIN,
                    partition: self.current_partition,
                    dirty: false,
                    touched: true,
                };
                // Kafka Streams' order: the merged sessions fold into a fresh state, then the row.
                let mut merged_states = self.init_states();
                for s in &merging {
                    start = start.min(s.start);
                    end = end.max(s.end);
                    state.max_ts = state.max_ts.max(s.state.max_ts);
                    merged_states = merged_states
                        .into_iter()
                        .zip(s.state.states.iter())
                        .zip(self.plan.aggregates.iter())
                        .map(|((a, b), f)| (f.function.merge)(a, b.clone(), &f.signature))
                        .collect::<Result<Vec<_>, _>>()?;
                }
                if close(end, self.stream_time) {
                    // Put the sessions back untouched: the record is late.
                    if let Some(v) = self.sessions.get_mut(&key) {
                        v.extend(merging);
                    }
                    return Err(format!(
                        "Skipping record for expired session. timestamp=[{ts}] streamTime=[{}]",
                        self.stream_time
                    ));
                }
                state.states = merged_states;
                self.add(&mut state, args, ts)?;
                for old in &merging {
                    self.dirty.push((group.clone(), old.start));
                    if self.plan.emit_final {
                        if let Some(p) = self.pending.get_mut(&old.state.partition) {
                            p.remove(&(old.end, key.clone(), old.start));
                        }
                    } else if (start, end) != (ts, ts) {
                        // Kafka Streams deletes the merged sessions only when the result is not
                        // the record's own one-instant session (which then is simply updated).
                        let window = Some((old.start, old.end));
                        let tombstone = AggregateUpdate {
                            input_row: row,
                            key: group.clone(),
                            value: None,
                            window,
                            timestamp: old.state.max_ts,
                        };
                        Self::emit(out, tombstone, self.shown(row, Some(&old.state), window));
                    }
                }
                if self.plan.emit_final {
                    self.pending
                        .entry(state.partition)
                        .or_default()
                        .insert((end, key.clone(), start), state.clone());
                } else {
                    Self::emit(out, self.output(row, &state, Some((start, end)))?, false);
                }
                if let Some(v) = self.sessions.get_mut(&key) {
                    v.push(Session { start, end, state });
                    v.sort_by_key(|s| s.start);
                }
                self.dirty.push((group.clone(), start));
                Ok(())
            }
        }
    }

    /// EMIT FINAL: emits the windows that stream time has closed.
    fn flush_closed(
        &mut self,
        row: usize,
        out: &mut Vec<AggregateUpdate>,
        errors: &mut Vec<(usize, String)>,
    ) {
        let Some(window) = &self.plan.window else {
            return;
        };
        // Only the current partition's stream time moved; its pending windows are ordered by end.
        let Some(pending) = self.pending.get_mut(&self.current_partition) else {
            return;
        };
        let now = self.close_time;
        let due: Vec<(i64, String, i64)> = pending
            .keys()
            .take_while(|(end, _, _)| closed(window, *end, now))
            .cloned()
            .collect();
        let states: Vec<_> = due
            .into_iter()
            .filter_map(|k| pending.remove(&k).map(|st| (k, st)))
            .collect();
        // Kafka Streams fetches the closed windows from its window store, which no longer has
        // those older than its retention (time windows keyed by start): such a window, closed
        // by a jump of stream time past it, is never emitted.
        let horizon = match window.window_type {
            WindowType::Session => i64::MIN,
            _ => now.saturating_sub(window.retention_ms),
        };
        for (k, state) in states {
            if k.2 < horizon {
                continue;
            }
            {
                match self.output(row, &state, Some((k.2, k.0))) {
                    Ok(u) => out.push(u),
                    Err(e) => errors.push((row, e)),
                }
            }
        }
    }
}

impl AggregateOperator {
    /// Moves the close time of `partition` to `close` (never back) without a row, and emits the
    /// EMIT FINAL windows that closes: the input of a repartitioned windowed aggregation learns
    /// of other source partitions' progress from markers that carry no row. The updates' input
    /// row is `usize::MAX`.
    pub fn advance(&mut self, partition: i32, close: i64) -> AggregateOutput {
        let time = self.partition_times.entry(partition).or_insert(i64::MIN);
        *time = (*time).max(close);
        self.close_time = *time;
        self.stream_time = *time;
        self.current_partition = partition;
        let (mut out, mut errors) = (Vec::new(), Vec::new());
        if self.plan.emit_final {
            self.flush_closed(usize::MAX, &mut out, &mut errors);
        }
        (out, errors)
    }

    /// Replaces the stream time of every input partition (after a restore, when the caller keeps
    /// the times itself: the times derived from the restored windows would be those of the
    /// source partition that ran furthest ahead).
    pub fn set_partition_times(&mut self, times: impl IntoIterator<Item = (i32, i64)>) {
        self.partition_times = times.into_iter().collect();
    }
}

/// Marks an aggregate function's own failure (such as DECIMAL overflow in SUM).
const FAILURE: &str = "\u{0}aggregate failure: ";

fn failure(message: String) -> String {
    format!("{FAILURE}{message}")
}

/// A record that cannot be aggregated (late, ...) is logged and skipped, but an aggregate
/// function that fails stops the query, as an exception in a ksqlDB UDAF fails its Kafka
/// Streams task ("Exception caught in process").
fn fatal(message: String) -> Result<String, RuntimeError> {
    match message.strip_prefix(FAILURE) {
        Some(m) => Err(RuntimeError::Internal(format!(
            "Exception caught in process: {m}"
        ))),
        None => Ok(message),
    }
}

/// Whether a window ending at `end` is closed at `stream_time`: no record can change it any more.
/// A session also stays open for its inactivity gap, as a record that late would extend it
/// (Kafka Streams' session close time is stream time minus grace minus gap).
fn closed(window: &runnel_plan::aggregate::WindowPlan, end: i64, stream_time: i64) -> bool {
    match window.window_type {
        WindowType::Session => {
            end.saturating_add(window.grace_ms)
                .saturating_add(window.size_ms)
                < stream_time
        }
        _ => end.saturating_add(window.grace_ms) <= stream_time,
    }
}

/// What the local state store (crates/state) needs to know about the changelog records.
impl AggregateOperator {
    /// Store kind of group (window) state entries.
    pub const STORE_KIND_STATE: u8 = 1;
    /// Store kind of table-source contributions.
    pub const STORE_KIND_CONTRIBUTION: u8 = 2;

    /// Where a changelog record goes in the local store: its kind and window start (0 for
    /// entries without a window; group state keys end with their window start).
    pub fn store_key_parts(key: &[u8]) -> (u8, i64) {
        if key.first() == Some(&CONTRIBUTION_PREFIX) {
            return (Self::STORE_KIND_CONTRIBUTION, 0);
        }
        let start = key
            .len()
            .checked_sub(8)
            .and_then(|at| key[at..].try_into().ok())
            .map(i64::from_be_bytes)
            .unwrap_or(0);
        (Self::STORE_KIND_STATE, start)
    }

    /// Tumbling and hopping windows that start before the returned time are past retention in
    /// every input partition, so the local store can range-delete them. Uses the slowest
    /// partition's stream time, so nothing a partition could still update is deleted. `None`
    /// for aggregations without windows, session windows (their retention follows their end),
    /// and before any record.
    pub fn retention_horizon(&self) -> Option<i64> {
        let window = self.plan.window.as_ref()?;
        if window.window_type == WindowType::Session {
            return None;
        }
        let slowest = self.partition_times.values().copied().min()?;
        // Kept while start + size > stream time - retention.
        Some(
            slowest
                .saturating_sub(window.retention_ms)
                .saturating_sub(window.size_ms)
                .saturating_add(1),
        )
    }

    /// Forgets all state (before a restore from scratch).
    pub fn reset(&mut self) -> Result<(), RuntimeError> {
        *self = AggregateOperator::new(&self.plan, self.config.clone(), self.agg_config.clone())?;
        Ok(())
    }
}

/// Reads a column of timestamps (ROWTIME is the first input column).
pub fn rowtimes(batch: &RecordBatch) -> Vec<i64> {
    (0..batch.num_rows())
        .map(|r| {
            value_at(batch.column(0).as_ref(), r, &SqlType::Bigint)
                .as_i64()
                .unwrap_or(0)
        })
        .collect()
}

#[cfg(test)]
mod table_aggregation_tests {
    //! The retraction path of aggregations over tables, with expected outputs taken from
    //! ksqlDB's behaviour (Kafka Streams' KGroupedTable with caching off).
    use super::*;
    use crate::select::rows_to_batch;
    use runnel_plan::aggregate::plan_aggregate;
    use runnel_plan::aggregates::AggregateRegistry;
    use runnel_plan::ddl::{source_from_create, FormatDefaults};
    use runnel_plan::functions::FunctionRegistry;
    use runnel_plan::query::PlanOptions;
    use runnel_plan::Catalog;
    use runnel_sql::{parse_statements, Statement};

    const TABLE: &str = "CREATE TABLE T (ID STRING PRIMARY KEY, NAME STRING, V INT) \
                         WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON');\n\
                         CREATE STREAM S (ID STRING KEY, NAME STRING, V INT) \
                         WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON');";

    fn operator(query: &str) -> AggregateOperator {
        let mut catalog = Catalog::default();
        let mut plan = None;
        for st in parse_statements(&format!("{TABLE}\n{query}")).expect("parses") {
            match st.statement {
                Statement::CreateSource(c) => {
                    let source =
                        source_from_create(&c, &st.text, &catalog, &FormatDefaults::default())
                            .expect("source");
                    catalog.put_source(source);
                }
                Statement::CreateAsSelect(c) => {
                    plan = Some(
                        plan_aggregate(
                            &c.query,
                            &catalog,
                            &FunctionRegistry::builtin(),
                            &AggregateRegistry::builtin(),
                            Some(&c.name),
                            &PlanOptions::default(),
                        )
                        .expect("plans"),
                    );
                }
                other => panic!("unexpected statement {other:?}"),
            }
        }
        AggregateOperator::new(
            &plan.expect("a CREATE TABLE AS SELECT"),
            FunctionConfig::default(),
            AggregateConfig::default(),
        )
        .expect("operator")
    }

    /// One input record: source key, then `Some((name, v))` or `None` for a tombstone.
    type Input<'a> = (&'a str, Option<(Option<&'a str>, i32)>, i64);

    /// Runs records one batch at a time; returns (key, value) of every update, and the errors.
    fn run(op: &mut AggregateOperator, inputs: &[Input]) -> (Vec<String>, Vec<String>) {
        let rows: Vec<Vec<Value>> = inputs
            .iter()
            .enumerate()
            .map(|(offset, (id, value, ts))| {
                let (name, v) = match value {
                    Some((name, v)) => (
                        name.map(|n| Value::String(n.into())).unwrap_or(Value::Null),
                        Value::Int(*v),
                    ),
                    None => (Value::Null, Value::Null),
                };
                vec![
                    Value::Bigint(*ts),
                    Value::Int(0),
                    Value::Bigint(offset as i64),
                    Value::String(id.to_string()),
                    name,
                    v,
                ]
            })
            .collect();
        let batch = rows_to_batch(op.input_schema(), op.input_types(), &rows).expect("batch");
        let timestamps: Vec<i64> = inputs.iter().map(|(_, _, ts)| *ts).collect();
        let tombstones: Vec<bool> = inputs.iter().map(|(_, v, _)| v.is_none()).collect();
        let (updates, errors) = op
            .process(&batch, &timestamps, &vec![0; inputs.len()], &tombstones)
            .expect("processes");
        let shown = updates
            .iter()
            .map(|u| {
                let value = match &u.value {
                    Some(v) => v
                        .iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    None => "<tombstone>".into(),
                };
                format!("{}={value}@{}", u.key[0], u.timestamp)
            })
            .collect();
        (shown, errors.into_iter().map(|(_, e)| e).collect())
    }

    #[test]
    fn evicted_groups_are_read_back_from_the_committed_state_and_go_on_counting() {
        use std::sync::{Arc, Mutex};
        let queries = [
            "CREATE TABLE C AS SELECT NAME, COUNT(*) AS N, SUM(V) AS T FROM S GROUP BY NAME;",
            "CREATE TABLE C AS SELECT NAME, COUNT(*) AS N, SUM(V) AS T FROM S \
             WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY NAME;",
            "CREATE TABLE C AS SELECT NAME, COUNT(*) AS N, MAX(V) AS M FROM S \
             WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS) GROUP BY NAME;",
        ];
        for query in queries {
            // The same records through an operator that keeps everything in memory and one
            // that drops every committed group after each commit.
            let mut all_in_memory = operator(query);
            let mut bounded = operator(query);
            assert_eq!(bounded.evict(0), 0, "no reader: nothing can be dropped");
            let committed: Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>> = Default::default();
            let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (reader, counter) = (committed.clone(), reads.clone());
            bounded.set_state_reader(Some(Box::new(move |key| {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(reader.lock().map_err(|e| e.to_string())?.get(key).cloned())
            })));
            let names = ["a", "b", "c", "d", "e"];
            for round in 0..4i64 {
                let inputs: Vec<Input> = (0..20)
                    .map(|i| {
                        let name = names[(i * 7 + round as usize) % names.len()];
                        (
                            "k",
                            Some((Some(name), i as i32)),
                            round * 3_000 + i as i64 * 100,
                        )
                    })
                    .collect();
                let expected = run(&mut all_in_memory, &inputs);
                assert_eq!(
                    run(&mut bounded, &inputs),
                    expected,
                    "{query}, round {round}"
                );
                // Until a group has left memory, new groups are not looked up in the store.
                let read = reads.load(std::sync::atomic::Ordering::Relaxed);
                assert_eq!(
                    read == 0,
                    round == 0,
                    "{query}: {read} reads by round {round}"
                );
                // Changed groups are not committed yet: none may be dropped.
                let held = bounded.groups_in_memory();
                assert_eq!(bounded.evict(0), 0);
                assert_eq!(bounded.groups_in_memory(), held);
                all_in_memory.take_changes();
                let mut store = committed.lock().expect("store");
                for (key, value) in bounded.take_changes() {
                    match value {
                        Some(v) => store.insert(key, v),
                        None => store.remove(&key),
                    };
                }
                drop(store);
                assert_eq!(
                    bounded.evict(0),
                    held,
                    "{query}: every committed group drops"
                );
                assert_eq!(bounded.groups_in_memory(), 0);
            }
        }
    }

    #[test]
    fn an_update_moves_a_row_between_groups_and_a_tombstone_retracts_it() {
        let mut op = operator("CREATE TABLE C AS SELECT NAME, COUNT(*) AS N FROM T GROUP BY NAME;");
        let (out, errors) = run(
            &mut op,
            &[
                ("k0", Some((Some("bob"), 1)), 10),
                // Moves k0 from bob to john: bob's count first, then john's.
                ("k0", Some((Some("john"), 1)), 11),
                ("k1", Some((Some("john"), 1)), 12),
                ("k1", None, 13),
                // Deleting a key that has no row changes nothing.
                ("k9", None, 14),
            ],
        );
        assert_eq!(
            out,
            vec![
                "bob=1@10",
                "bob=0@11",
                "john=1@11",
                "john=2@12",
                "john=1@13"
            ]
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn an_update_within_one_group_is_one_output() {
        let mut op = operator(
            "CREATE TABLE S AS SELECT NAME, SUM(V) AS S, AVG(V) AS A FROM T GROUP BY NAME;",
        );
        let (out, _) = run(
            &mut op,
            &[
                ("k0", Some((Some("a"), 1)), 1),
                ("k1", Some((Some("a"), 2)), 2),
                ("k0", Some((Some("a"), 10)), 3),
            ],
        );
        assert_eq!(out, vec!["a=1,1.0@1", "a=3,1.5@2", "a=12,6.0@3"]);
    }

    #[test]
    fn a_null_group_key_or_a_filtered_row_only_retracts() {
        let mut op = operator(
            "CREATE TABLE C AS SELECT NAME, COUNT(*) AS N FROM T WHERE V > 0 GROUP BY NAME;",
        );
        let (out, errors) = run(
            &mut op,
            &[
                ("k0", Some((Some("a"), 1)), 1),
                ("k1", Some((Some("a"), 1)), 2),
                ("k0", Some((None, 1)), 3),
                ("k1", Some((Some("a"), 0)), 4),
                // Back from nowhere: only an add.
                ("k0", Some((Some("a"), 1)), 5),
            ],
        );
        assert_eq!(out, vec!["a=1@1", "a=2@2", "a=1@3", "a=0@4", "a=1@5"]);
        assert_eq!(
            errors,
            vec![
                "Group-by column with index 0 resolved to null. The source row will be excluded \
                 from the table."
            ]
        );
    }

    #[test]
    fn having_deletes_only_rows_it_showed() {
        // Kafka Streams' table filter with old values: a group failing HAVING is deleted only
        // if its previous value passed (group-by.json "with having expression").
        let mut op = operator(
            "CREATE TABLE S AS SELECT NAME, SUM(V) AS S FROM T GROUP BY NAME HAVING SUM(V) > 5;",
        );
        let (out, _) = run(
            &mut op,
            &[
                ("k0", Some((Some("a"), 1)), 1),
                ("k1", Some((Some("a"), 10)), 2),
                ("k1", None, 3),
                ("k0", None, 4),
            ],
        );
        assert_eq!(out, vec!["a=11@2", "a=<tombstone>@3"]);
    }

    #[test]
    fn having_turns_an_emptied_group_into_a_tombstone() {
        let mut op = operator(
            "CREATE TABLE C AS SELECT NAME, COUNT(*) AS N FROM T GROUP BY NAME HAVING COUNT(*) > 0;",
        );
        let (out, _) = run(
            &mut op,
            &[
                ("k0", Some((Some("a"), 1)), 1),
                ("k0", Some((Some("b"), 1)), 2),
            ],
        );
        assert_eq!(out, vec!["a=1@1", "a=<tombstone>@2", "b=1@2"]);
    }

    #[test]
    fn stream_aggregation_state_without_windows_reaches_the_changelog() {
        let query = "CREATE TABLE C AS SELECT NAME, COUNT(*) AS N FROM S GROUP BY NAME;";
        let mut first = operator(query);
        run(
            &mut first,
            &[
                ("k0", Some((Some("a"), 1)), 1),
                ("k1", Some((Some("a"), 1)), 2),
            ],
        );
        let changes = first.take_changes();
        assert_eq!(changes.len(), 1, "one record for group a: {changes:?}");
        let mut restored = operator(query);
        for (key, value) in &changes {
            restored.restore(key, value.as_deref()).expect("restores");
        }
        restored.finish_restore();
        let (out, _) = run(&mut restored, &[("k2", Some((Some("a"), 1)), 3)]);
        assert_eq!(out, vec!["a=3@3"]);
    }

    #[test]
    fn contributions_come_back_from_the_changelog() {
        let query = "CREATE TABLE C AS SELECT NAME, SUM(V) AS S FROM T GROUP BY NAME;";
        let mut first = operator(query);
        run(
            &mut first,
            &[
                ("k0", Some((Some("a"), 5)), 1),
                ("k1", Some((Some("a"), 7)), 2),
                ("k1", None, 3),
            ],
        );
        let changes = first.take_changes();
        // Group a, plus one record per source key (k1's is a delete).
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert!(first.take_changes().is_empty());
        let mut restored = operator(query);
        for (key, value) in &changes {
            restored.restore(key, value.as_deref()).expect("restores");
        }
        restored.finish_restore();
        // k0's old value (5) is taken out of a before its new one goes to b.
        let (out, _) = run(
            &mut restored,
            &[("k0", Some((Some("b"), 4)), 4), ("k1", None, 5)],
        );
        assert_eq!(out, vec!["a=0@4", "b=4@4"]);
    }
    /// A windowed stream aggregation given the stream time of every row (a repartitioned one):
    /// rows are late by their own `late` time, windows close (EMIT FINAL) at `close`, and
    /// `advance` closes them without a row.
    #[test]
    fn given_row_times_decide_lateness_and_closing() {
        let mut op = operator(
            "CREATE TABLE W AS SELECT NAME, COUNT(*) AS N FROM S \
             WINDOW TUMBLING (SIZE 10 MILLISECONDS, RETENTION 1 HOURS, GRACE PERIOD 5 MILLISECONDS) \
             GROUP BY NAME EMIT FINAL;",
        );
        // (timestamp, late, close) of rows of group "a", all in input partition 0.
        let run = |op: &mut AggregateOperator, rows: &[(i64, i64, i64)]| {
            let values: Vec<Vec<Value>> = rows
                .iter()
                .enumerate()
                .map(|(offset, (ts, _, _))| {
                    vec![
                        Value::Bigint(*ts),
                        Value::Int(0),
                        Value::Bigint(offset as i64),
                        Value::String("id".into()),
                        Value::String("a".into()),
                        Value::Int(1),
                    ]
                })
                .collect();
            let batch = rows_to_batch(op.input_schema(), op.input_types(), &values).expect("batch");
            let timestamps: Vec<i64> = rows.iter().map(|r| r.0).collect();
            let times: Vec<RowTime> = rows
                .iter()
                .map(|&(_, late, close)| RowTime { late, close })
                .collect();
            let n = rows.len();
            op.process_timed(
                &batch,
                &timestamps,
                &vec![0; n],
                &vec![false; n],
                Some(&times),
            )
            .expect("processes")
        };
        // A row from a source partition that ran ahead (its own time 12) and rows from one that
        // did not (own times 1..3): the close time is the slowest partition's, so nothing
        // closes and nothing is late.
        let (out, errors) = run(
            &mut op,
            &[(1, 1, i64::MIN), (12, 12, 1), (3, 3, 1), (2, 3, 2)],
        );
        assert!(out.is_empty() && errors.is_empty(), "{out:?} {errors:?}");
        // A row whose own source partition is past [0, 10) + grace is late, whatever the
        // close time.
        let (out, errors) = run(&mut op, &[(4, 15, 3)]);
        assert!(out.is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].1.contains("expired window"), "{errors:?}");
        // The close time reaches end + grace of [0, 10): it comes out once, with its 3 rows.
        let (out, errors) = op.advance(0, 15);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].window, Some((0, 10)));
        assert_eq!(out[0].value, Some(vec![Value::Bigint(3)]));
        let (out, _) = op.advance(0, 30);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].window, Some((10, 20)));
        assert!(op.advance(0, 40).0.is_empty(), "each window once");
        // A close time never goes back, and rows behind it are late.
        let (out, errors) = run(&mut op, &[(5, 5, 0)]);
        assert!(out.is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
    }
}

#[cfg(test)]
mod key_text_tests {
    use super::*;

    #[test]
    fn key_text_is_the_debug_text_of_the_group_values() {
        let groups = [
            vec![Value::String("s-000042".into())],
            vec![Value::String(
                "with \"quote\", 'apostrophe', \\ and é and \n".into(),
            )],
            vec![Value::Int(-5), Value::Bigint(1 << 40), Value::Null],
            vec![
                Value::Double(1.5),
                Value::Boolean(true),
                Value::String(String::new()),
            ],
            vec![],
        ];
        for g in groups {
            assert_eq!(key_text(&g), format!("{g:?}"));
        }
    }
}

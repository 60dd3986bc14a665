//! Running one test case against a fresh in-memory engine, step by step as ksqlDB's
//! `TestExecutor` does: create topics, run the statements, serialize and append the inputs, drive
//! the persistent queries to completion, then compare outputs and post-conditions.
//!
//! Test JSON becomes record bytes through the formats of the catalog source that reads the topic
//! (its own serdes, so the test exercises exactly what a Kafka client would send); actual bytes are
//! decoded back with the sink source's serdes into [`Actual`]s for the comparator.

use super::compare::{compare_record, show_expected, Actual, ActualRecord};
use super::json::Json;
use super::model::{ExpectedException, Post, RecordSpec, TestCase, WindowKind, WindowSpec};
use super::values::{json_to_row, row_to_actual, BytesText};
use runnel_connect::format::{decode_windowed_key, encode_windowed_key, RowSerde, Window};
use runnel_connect::kafka::Record;
use runnel_engine::{driver, task, Backend, Engine, EngineError, StatementError};
use runnel_plan::catalog::{ColumnKind, FormatInfo, Source, WindowType};
use runnel_plan::Value;
use runnel_sql::{ColumnConstraint, Literal, SourceKind, SqlType, Statement};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;

/// The result of one case.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Passed,
    /// The first difference or error.
    Failed(String),
    /// The engine reported the feature as not supported yet.
    Skipped(String),
}

/// Partitions the Java runner gives topics it only infers from inputs/outputs or statements.
const INFERRED_PARTITIONS: i32 = 4;

/// Base configuration of every case (the Java runner's), before the case's `properties`.
pub(super) fn base_config() -> BTreeMap<String, String> {
    [
        ("ksql.service.id", "some.ksql.service.id"),
        ("auto.offset.reset", "earliest"),
        ("ksql.streams.cache.max.bytes.buffering", "0"),
        ("ksql.headers.columns.enabled", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Why an engine error means "not implemented" rather than "wrong".
fn unsupported_reason(e: &EngineError) -> Option<String> {
    match e {
        EngineError::Statement {
            message,
            unsupported: true,
        } => Some(message.clone()),
        // Formats recognised but not implemented yet are reported as plain statement errors.
        EngineError::Statement { message, .. }
            if message.contains("not supported yet by Runnel") =>
        {
            Some(message.clone())
        }
        _ => None,
    }
}

/// Which Runnel errors a Java exception class stands for. ksqlDB's hierarchy is
/// `ParseFailedException extends KsqlStatementException extends KsqlException`.
fn type_matches(expected: &ExpectedException, error: &EngineError, at_runtime: bool) -> bool {
    let Some(simple) = expected.simple_type() else {
        return true;
    };
    if at_runtime {
        return simple == "StreamsException";
    }
    match simple {
        "ParseFailedException" => matches!(error, EngineError::Parse(_)),
        "KsqlStatementException" => {
            matches!(error, EngineError::Parse(_) | EngineError::Statement { .. })
        }
        "KsqlException" => !matches!(error, EngineError::Internal(_)),
        _ => false,
    }
}

/// The texts an expected message may be a substring of.
fn error_texts(error: &EngineError, full: Option<&StatementError>) -> Vec<String> {
    let mut texts = vec![error.to_string()];
    if let EngineError::Parse(p) = error {
        texts.push(p.ksql_message());
        texts.push(p.message.clone());
    }
    if let Some(f) = full {
        texts.push(f.to_string());
    }
    texts
}

fn check_expected(
    expected: &ExpectedException,
    error: &EngineError,
    full: Option<&StatementError>,
    at_runtime: bool,
) -> Result<(), String> {
    let texts = error_texts(error, full);
    if !type_matches(expected, error, at_runtime) {
        return Err(format!(
            "expected {} but got {} error: {}",
            expected.type_name.as_deref().unwrap_or("an exception"),
            error_kind(error, at_runtime),
            texts[0]
        ));
    }
    // Kafka Streams wraps processing errors in a generic message; the cause carries the detail.
    let generic = at_runtime && expected.message.as_deref() == Some("Exception caught in process");
    let wanted = if generic {
        expected.cause_message.as_ref()
    } else {
        expected.message.as_ref()
    };
    if let Some(m) = wanted {
        if !texts.iter().any(|t| t.contains(m.as_str())) {
            return Err(format!(
                "expected an error containing {m:?} but got: {}",
                texts[0]
            ));
        }
    }
    Ok(())
}

fn error_kind(error: &EngineError, at_runtime: bool) -> &'static str {
    if at_runtime {
        return "a processing";
    }
    match error {
        EngineError::Parse(_) => "a parse",
        EngineError::Statement { .. } => "a statement",
        EngineError::Kafka(_) => "a Kafka",
        EngineError::Internal(_) => "an internal",
    }
}

/// Runs one case.
pub fn run_case(case: &TestCase) -> Outcome {
    match run(case) {
        Ok(()) => Outcome::Passed,
        Err(outcome) => outcome,
    }
}

/// Registers the test-only UDFs and UDAFs that ksqlDB's runner loads from its test classpath
/// (`BAD_UDF`, `TEST_UDAF`, `VAR_ARG`, ...), so the files that use them can run. Only `runnel
/// test` does this; the engine's own catalogue does not know them.
pub(super) fn install_test_functions(engine: &mut Engine) {
    runnel_plan::functions::testing::register_test_functions(
        &mut engine.functions,
        &mut engine.aggregates,
    );
}

fn fail<T>(message: impl Into<String>) -> Result<T, Outcome> {
    Err(Outcome::Failed(message.into()))
}

fn run(case: &TestCase) -> Result<(), Outcome> {
    let mut config = base_config();
    config.extend(case.properties.iter().cloned());
    let mut engine = Engine::in_memory(config);
    install_test_functions(&mut engine);
    create_topics(&mut engine, case, INFERRED_PARTITIONS)
        .map_err(|e| Outcome::Failed(format!("cannot create topics: {e}")))?;
    if let ControlFlow::Break(decided) = run_statements(&mut engine, case) {
        return decided;
    }
    let records = encode_inputs(&engine, case)?;
    engine
        .produce(records)
        .map_err(|e| Outcome::Failed(format!("cannot write inputs: {e}")))?;
    let log = match driver::run_to_completion(&mut engine) {
        Ok(log) => log,
        Err(error) => {
            return match (&case.expected_exception, unsupported_reason(&error)) {
                (Some(expected), skip) => match check_expected(expected, &error, None, true) {
                    Ok(()) => Ok(()),
                    Err(_) if skip.is_some() => Err(Outcome::Skipped(skip.unwrap_or_default())),
                    Err(why) => fail(why),
                },
                (None, Some(reason)) => Err(Outcome::Skipped(reason)),
                (None, None) => fail(format!(
                    "processing failed: {}",
                    one_line(&error.to_string())
                )),
            };
        }
    };
    if let Some(expected) = &case.expected_exception {
        return fail(format!(
            "expected {} {:?} but nothing failed",
            expected.type_name.as_deref().unwrap_or("an exception"),
            expected.message.as_deref().unwrap_or("")
        ));
    }

    let log_note = match log.first() {
        Some(entry) => format!(
            " (processing log: {} entries, first: {})",
            log.len(),
            one_line(&entry.message)
        ),
        None => String::new(),
    };
    let actual: BTreeMap<String, Vec<Record>> = output_topics(case)
        .into_iter()
        .map(|t| (t.to_string(), topic_records(&engine, t).to_vec()))
        .collect();
    check_outputs(&engine, case, &actual, TimestampCheck::Exact)
        .map_err(|why| Outcome::Failed(format!("{why}{log_note}")))?;
    check_post_condition(&engine, case)
}

/// Checks the case's `post` section, if any.
pub(super) fn check_post_condition(engine: &Engine, case: &TestCase) -> Result<(), Outcome> {
    match &case.post {
        Some(post) => {
            check_post(engine, post).map_err(|why| Outcome::Failed(format!("post: {why}")))
        }
        None => Ok(()),
    }
}

/// Runs the case's statements as one script. `Break` carries the case's result when the
/// statements decide it: an expected error was (or was not) raised, a failure, or a feature
/// Runnel does not support yet.
pub(super) fn run_statements(
    engine: &mut Engine,
    case: &TestCase,
) -> ControlFlow<Result<(), Outcome>> {
    // One script, as the Java runner joins them: parse errors and line numbers in messages are
    // then those of the whole script.
    // The Java runner parses with the server grammar, so test-only statements (RUN SCRIPT,
    // ASSERT ...) are parse errors there.
    let script = case.statements.join("\n");
    let parsed = runnel_sql::parser::parse_server_statements(&script);
    let total = parsed.as_ref().map(|s| s.len()).ok();
    let result = match parsed {
        Err(e) if !script.contains("${") => Err(StatementError {
            statement: script.trim().to_string(),
            error: EngineError::Parse(e),
            completed: Vec::new(),
        }),
        _ => engine.execute_script(&script).map(|_| ()),
    };
    let Err(err) = result else {
        return ControlFlow::Continue(());
    };
    let index = err.completed.len();
    let is_last = total.is_none_or(|t| index + 1 >= t);
    let skip = unsupported_reason(&err.error);
    let Some(expected) = &case.expected_exception else {
        return ControlFlow::Break(Err(match skip {
            Some(reason) => Outcome::Skipped(reason),
            None => Outcome::Failed(format!(
                "statement {} failed: {}",
                index + 1,
                one_line(&err.error.to_string())
            )),
        }));
    };
    ControlFlow::Break(
        match check_expected(expected, &err.error, Some(&err), false) {
            Ok(()) if is_last => Ok(()),
            Ok(()) => fail(format!(
                "statement {} failed, but only the last statement may fail: {}",
                index + 1,
                one_line(&err.error.to_string())
            )),
            Err(_) if skip.is_some() => Err(Outcome::Skipped(skip.unwrap_or_default())),
            Err(why) => fail(format!("statement {}: {why}", index + 1)),
        },
    )
}

/// The case's input records, serialized, in file order (all to partition 0).
pub(super) fn encode_inputs(engine: &Engine, case: &TestCase) -> Result<Vec<Record>, Outcome> {
    case.inputs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            encode_input(engine, r)
                .map_err(|e| Outcome::Failed(format!("cannot serialize input {}: {e}", i + 1)))
        })
        .collect()
}

fn one_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}

// ----- topics -----------------------------------------------------------------------------

fn literal_int(l: Option<&Literal>) -> Option<i64> {
    match l? {
        Literal::Integer(i) => Some(*i),
        Literal::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Creates the topics the Java runner creates before running statements: declared `topics`,
/// the topics of CREATE statements with columns, and the other topics named by records.
/// `inferred_partitions` sizes the topics nothing declares: the Java runner uses 4, but through
/// Kafka one partition keeps the global record order the expected outputs are written in.
pub(super) fn create_topics(
    engine: &mut Engine,
    case: &TestCase,
    inferred_partitions: i32,
) -> Result<(), EngineError> {
    for t in &case.topics {
        engine.create_topic(&t.name, t.partitions.unwrap_or(1), t.replicas.unwrap_or(1))?;
    }
    let mut sinks = Vec::new();
    for text in &case.statements {
        let Ok(statements) = runnel_sql::parse_statements(text) else {
            continue;
        };
        for s in statements {
            match &s.statement {
                Statement::CreateSource(c) if !c.columns.is_empty() => {
                    let Some(Literal::String(topic)) = c.properties.get("KAFKA_TOPIC") else {
                        continue;
                    };
                    if engine.topic_info(topic)?.is_none() {
                        let partitions = literal_int(c.properties.get("PARTITIONS"))
                            .and_then(|p| i32::try_from(p).ok())
                            .unwrap_or(inferred_partitions);
                        let replicas = literal_int(c.properties.get("REPLICAS"))
                            .and_then(|r| i16::try_from(r).ok())
                            .unwrap_or(1);
                        engine.create_topic(topic, partitions, replicas)?;
                    }
                }
                Statement::CreateAsSelect(c) => match c.properties.get("KAFKA_TOPIC") {
                    Some(Literal::String(topic)) => sinks.push(topic.clone()),
                    _ => sinks.push(c.name.clone()),
                },
                _ => {}
            }
        }
    }
    for r in case.inputs.iter().chain(&case.outputs) {
        // Sink topics are left to their query, which sizes them from its source.
        if !sinks.contains(&r.topic) && engine.topic_info(&r.topic)?.is_none() {
            engine.create_topic(&r.topic, inferred_partitions, 1)?;
        }
    }
    Ok(())
}

// ----- inputs -----------------------------------------------------------------------------

/// The catalog source for a topic: for inputs one declared by CREATE (not a query's sink), for
/// outputs a query's sink, else any source on the topic.
fn source_for_topic(engine: &Engine, topic: &str, want_sink: bool) -> Option<Arc<Source>> {
    let on_topic: Vec<&Arc<Source>> = engine
        .catalog
        .sources()
        .filter(|s| s.topic == topic)
        .collect();
    on_topic
        .iter()
        .find(|s| s.created_by.is_some() == want_sink)
        .or_else(|| on_topic.first())
        .map(|s| Arc::clone(s))
}

/// Columns of one part of a source, with names and types.
fn columns(source: &Source, key: bool) -> Vec<(String, SqlType)> {
    let wanted = if key {
        ColumnKind::Key
    } else {
        ColumnKind::Value
    };
    source
        .schema
        .columns
        .iter()
        .filter(|c| c.kind == wanted)
        .map(|c| (c.name.clone(), c.ty.clone()))
        .collect()
}

/// Whether one column is written without an envelope (as the format module decides).
fn unwrapped(format: &FormatInfo, column_count: usize, key: bool) -> bool {
    if format.format == "KAFKA" {
        return true;
    }
    if let Ok(kind) = runnel_connect::format::FormatKind::parse(&format.format) {
        if kind != runnel_connect::format::FormatKind::Delimited {
            let target = if key {
                runnel_connect::format::SerdeTarget::Key
            } else {
                runnel_connect::format::SerdeTarget::Value
            };
            let opts = runnel_connect::format::FormatOptions::from(format);
            return column_count == 1 && kind.unwraps_single_column(&opts, target);
        }
    }
    column_count == 1
        && if key {
            format.wrap_single_value != Some(true)
        } else {
            format.wrap_single_value == Some(false)
        }
}

fn window_type(kind: WindowKind, source: &Source) -> WindowType {
    match (kind, source.window.as_ref().map(|w| w.window_type)) {
        (_, Some(t)) => t,
        (WindowKind::Session, None) => WindowType::Session,
        (WindowKind::Time, None) => WindowType::Tumbling,
    }
}

/// Bytes of a record part with no catalog source: strings raw, other JSON as text.
fn raw_bytes(json: Option<&Json>) -> Option<Vec<u8>> {
    match json {
        None | Some(Json::Null) => None,
        Some(j) => Some(j.scalar_text().into_bytes()),
    }
}

fn encode_part(
    json: Option<&Json>,
    source: &Source,
    serde: &dyn RowSerde,
    key: bool,
) -> Result<Option<Vec<u8>>, String> {
    let Some(json) = json.filter(|j| !j.is_null()) else {
        return Ok(None);
    };
    let format = if key {
        &source.key_format
    } else {
        &source.value_format
    };
    let cols = columns(source, key);
    match format.format.as_str() {
        // The runner writes JSON test values exactly as given (so malformed inputs stay malformed).
        "JSON" => Ok(Some(json.to_string().into_bytes())),
        "DELIMITED" => Ok(Some(json.scalar_text().into_bytes())),
        "NONE" => Ok(None),
        _ if cols.is_empty() => Ok(None),
        name => {
            let bytes = if name == "KAFKA" {
                BytesText::Utf8
            } else {
                BytesText::Base64
            };
            let row = json_to_row(json, &cols, unwrapped(format, cols.len(), key), bytes)?;
            serde.serialize(Some(&row)).map_err(|e| e.to_string())
        }
    }
}

fn encode_input(engine: &Engine, r: &RecordSpec) -> Result<Record, String> {
    let headers = r.headers.clone().unwrap_or_default();
    let timestamp = r.timestamp.unwrap_or(0);
    let Some(source) = source_for_topic(engine, &r.topic, false) else {
        return Ok(Record {
            topic: r.topic.clone(),
            partition: 0,
            offset: -1,
            timestamp,
            key: raw_bytes(r.key.as_ref()),
            value: raw_bytes(Some(&r.value)),
            headers,
        });
    };
    let (key_serde, value_serde) = task::source_serdes(&source).map_err(|e| e.to_string())?;
    let mut key = encode_part(r.key.as_ref(), &source, key_serde.as_ref(), true)?;
    if let (Some(inner), Some(w)) = (&key, &r.window) {
        let window = Window {
            start: w.start,
            end: w.end,
        };
        key = Some(encode_windowed_key(
            inner,
            window_type(w.kind, &source),
            window,
        ));
    }
    let value = encode_part(Some(&r.value), &source, value_serde.as_ref(), false)?;
    Ok(Record {
        topic: r.topic.clone(),
        partition: 0,
        offset: -1,
        timestamp,
        key,
        value,
        headers,
    })
}

// ----- outputs ----------------------------------------------------------------------------

fn decode_part(
    bytes: Option<&[u8]>,
    source: &Source,
    serde: &dyn RowSerde,
    key: bool,
    exact: bool,
) -> Result<Actual, String> {
    let Some(bytes) = bytes else {
        return Ok(Actual::Null);
    };
    let format = if key {
        &source.key_format
    } else {
        &source.value_format
    };
    match format.format.as_str() {
        "JSON" => {
            let text =
                std::str::from_utf8(bytes).map_err(|e| format!("output is not UTF-8: {e}"))?;
            let json =
                Json::parse(text).map_err(|e| format!("output is not JSON ({e}): {text}"))?;
            Ok(Actual::from_json(&json, exact))
        }
        "DELIMITED" => Ok(Actual::String(String::from_utf8_lossy(bytes).into_owned())),
        "NONE" => Ok(Actual::Null),
        _ => {
            let cols = columns(source, key);
            if cols.is_empty() {
                return Ok(Actual::Null);
            }
            let names: Vec<String> = cols.iter().map(|c| c.0.clone()).collect();
            match serde
                .deserialize(Some(bytes))
                .map_err(|e| format!("cannot decode output: {e}"))?
            {
                None => Ok(Actual::Null),
                // The runner's KAFKA serde reads BYTES as the text they were written from.
                Some(row) => match (format.format.as_str(), row.as_slice()) {
                    ("KAFKA", [Value::Bytes(b)]) => {
                        Ok(Actual::String(String::from_utf8_lossy(b).into_owned()))
                    }
                    _ => Ok(row_to_actual(
                        &row,
                        &names,
                        unwrapped(format, cols.len(), key),
                    )),
                },
            }
        }
    }
}

fn raw_actual(bytes: Option<&[u8]>, exact: bool) -> Actual {
    match bytes {
        None => Actual::Null,
        Some(b) => {
            let text = String::from_utf8_lossy(b);
            match Json::parse(&text) {
                Ok(j) => Actual::from_json(&j, exact),
                Err(_) => Actual::String(text.into_owned()),
            }
        }
    }
}

fn decode_output(r: &Record, source: Option<&Source>, exact: bool) -> Result<ActualRecord, String> {
    let Some(source) = source else {
        return Ok(ActualRecord {
            key: raw_actual(r.key.as_deref(), exact),
            value: raw_actual(r.value.as_deref(), exact),
            timestamp: r.timestamp,
            window: None,
            headers: r.headers.clone(),
        });
    };
    let (key_serde, value_serde) = task::source_serdes(source).map_err(|e| e.to_string())?;
    let (key_bytes, window) = match (&source.window, &r.key) {
        (Some(w), Some(k)) => {
            let (inner, window) = decode_windowed_key(k, w.window_type, w.size_ms)
                .map_err(|e| format!("cannot decode windowed key: {e}"))?;
            let kind = if w.window_type == WindowType::Session {
                WindowKind::Session
            } else {
                WindowKind::Time
            };
            (
                Some(inner),
                Some(WindowSpec {
                    start: window.start,
                    end: window.end,
                    kind,
                }),
            )
        }
        _ => (r.key.clone(), None),
    };
    Ok(ActualRecord {
        key: decode_part(
            key_bytes.as_deref(),
            source,
            key_serde.as_ref(),
            true,
            exact,
        )?,
        value: decode_part(
            r.value.as_deref(),
            source,
            value_serde.as_ref(),
            false,
            exact,
        )?,
        timestamp: r.timestamp,
        window,
        headers: r.headers.clone(),
    })
}

fn topic_records<'a>(engine: &'a Engine, topic: &str) -> &'a [Record] {
    match &engine.backend {
        Backend::Memory(topics) => topics
            .get(topic)
            .map(|t| t.records.as_slice())
            .unwrap_or(&[]),
        Backend::Kafka(_) => &[],
    }
}

/// The topics named by the expected outputs, in order of first mention.
pub(super) fn output_topics(case: &TestCase) -> Vec<&str> {
    let mut topics: Vec<&str> = Vec::new();
    for r in &case.outputs {
        if !topics.contains(&r.topic.as_str()) {
            topics.push(&r.topic);
        }
    }
    topics
}

/// How expected timestamps are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TimestampCheck {
    /// As the Java runner does (in-memory topics keep every timestamp).
    Exact,
    /// Kafka clients cannot write a timestamp of 0 (librdkafka reads 0 as "now"), so an expected
    /// timestamp of 0 cannot be checked through a broker.
    UnlessZero,
}

/// Compares the records of every topic named in `outputs` with `actual` (each topic's records
/// as read: in order within each partition). Records of one partition must come in the expected
/// order; records of different partitions may interleave in any order, as Kafka only orders
/// records within a partition.
pub(super) fn check_outputs(
    engine: &Engine,
    case: &TestCase,
    actual: &BTreeMap<String, Vec<Record>>,
    timestamps: TimestampCheck,
) -> Result<(), String> {
    let exact = case.exact_numeric_comparison();
    let check_zero_timestamps = !case.inputs.is_empty() && timestamps == TimestampCheck::Exact;
    for topic in output_topics(case) {
        let expected: Vec<&RecordSpec> = case.outputs.iter().filter(|r| r.topic == topic).collect();
        let source = source_for_topic(engine, topic, true);
        let mut partitions: BTreeMap<i32, Vec<ActualRecord>> = BTreeMap::new();
        for r in actual.get(topic).map(Vec::as_slice).unwrap_or(&[]) {
            let decoded = decode_output(r, source.as_deref(), exact)
                .map_err(|e| format!("topic {topic}: {e}"))?;
            partitions.entry(r.partition).or_default().push(decoded);
        }
        let partitions: Vec<Vec<ActualRecord>> = partitions.into_values().collect();
        let total: usize = partitions.iter().map(Vec::len).sum();
        // Next unmatched record of each partition.
        let mut heads = vec![0usize; partitions.len()];
        let mut matched = 0;
        for (i, e) in expected.iter().enumerate() {
            let check_timestamp = check_zero_timestamps || e.timestamp != Some(0);
            let mut first_difference = None;
            let found = partitions.iter().enumerate().find_map(|(p, records)| {
                let a = records.get(heads[p])?;
                match compare_record(e, a, check_timestamp) {
                    Ok(()) => Some(p),
                    Err(why) => {
                        first_difference.get_or_insert((why, a));
                        None
                    }
                }
            });
            match (found, first_difference) {
                (Some(p), _) => {
                    heads[p] += 1;
                    matched += 1;
                }
                (None, Some((why, a))) => {
                    return Err(format!(
                        "topic {topic}, record {}: {why}\n    expected: {}\n    actual:   {a}",
                        i + 1,
                        show_expected(e)
                    ));
                }
                (None, None) => break,
            }
        }
        if expected.len() != total {
            let mut message = format!(
                "topic {topic}: expected {} records but got {total}",
                expected.len(),
            );
            for e in expected.iter().skip(matched).take(3) {
                message.push_str(&format!("\n    missing: {}", show_expected(e)));
            }
            let extra = partitions
                .iter()
                .zip(&heads)
                .flat_map(|(records, &head)| records.iter().skip(head));
            for a in extra.take(3) {
                message.push_str(&format!("\n    extra:   {a}"));
            }
            return Err(message);
        }
    }
    Ok(())
}

// ----- post-conditions --------------------------------------------------------------------

/// A column as compared by meaning: name, type, and key/value/header role.
type ColumnMeaning = (String, SqlType, ColumnKind);

fn schema_meaning(columns: impl Iterator<Item = ColumnMeaning>) -> Vec<ColumnMeaning> {
    // ksqlDB lists key columns first; order within each role matters.
    let (keys, rest): (Vec<_>, Vec<_>) = columns.partition(|c| c.2 == ColumnKind::Key);
    keys.into_iter().chain(rest).collect()
}

fn show_schema(cols: &[ColumnMeaning]) -> String {
    let parts: Vec<String> = cols
        .iter()
        .map(|(n, t, k)| match k {
            ColumnKind::Key => format!("`{n}` {t} KEY"),
            ColumnKind::Value => format!("`{n}` {t}"),
            ColumnKind::Headers => format!("`{n}` {t} HEADERS"),
            ColumnKind::Header(h) => format!("`{n}` {t} HEADER('{h}')"),
        })
        .collect();
    parts.join(", ")
}

fn check_post(engine: &Engine, post: &Post) -> Result<(), String> {
    for expected in &post.sources {
        let source = engine
            .catalog
            .source(&expected.name)
            .or_else(|| engine.catalog.source(&expected.name.to_uppercase()))
            .ok_or_else(|| format!("source {} does not exist", expected.name))?;
        let name = &expected.name;
        if let Some(kind) = &expected.kind {
            let actual = if source.kind == SourceKind::Stream {
                "stream"
            } else {
                "table"
            };
            if !kind.eq_ignore_ascii_case(actual) {
                return Err(format!(
                    "source {name}: expected a {kind} but it is a {actual}"
                ));
            }
        }
        if let Some(schema) = &expected.schema {
            let parsed = runnel_sql::parser::parse_columns(schema).map_err(|e| {
                format!("source {name}: cannot parse expected schema {schema:?}: {e}")
            })?;
            let mut wanted = Vec::new();
            for c in parsed {
                let ty = engine
                    .catalog
                    .resolve_type(&c.ty)
                    .map_err(|e| format!("source {name}: {e}"))?;
                let kind = match c.constraint {
                    ColumnConstraint::Key | ColumnConstraint::PrimaryKey => ColumnKind::Key,
                    ColumnConstraint::Headers => ColumnKind::Headers,
                    ColumnConstraint::Header(h) => ColumnKind::Header(h),
                    _ => ColumnKind::Value,
                };
                wanted.push((c.name, ty, kind));
            }
            let wanted = schema_meaning(wanted.into_iter());
            let actual = schema_meaning(
                source
                    .schema
                    .columns
                    .iter()
                    .map(|c| (c.name.clone(), c.ty.clone(), c.kind.clone())),
            );
            if wanted != actual {
                return Err(format!(
                    "source {name}: expected schema {} but got {}",
                    show_schema(&wanted),
                    show_schema(&actual)
                ));
            }
        }
        if let Some(k) = &expected.key_format {
            if let Some(f) = &k.format {
                if !f.eq_ignore_ascii_case(&source.key_format.format) {
                    return Err(format!(
                        "source {name}: expected key format {f} but got {}",
                        source.key_format.format
                    ));
                }
            }
            let actual_type = source.window.as_ref().map(|w| w.window_type.name());
            if !k
                .window_type
                .as_deref()
                .map(str::to_ascii_uppercase)
                .eq(&actual_type.map(str::to_string))
            {
                return Err(format!(
                    "source {name}: expected window type {} but got {}",
                    k.window_type.as_deref().unwrap_or("none"),
                    actual_type.unwrap_or("none")
                ));
            }
            if let Some(size) = k.window_size {
                let actual_size = source.window.as_ref().and_then(|w| w.size_ms);
                if actual_size != Some(size) {
                    return Err(format!(
                        "source {name}: expected window size {size} but got {actual_size:?}"
                    ));
                }
            }
        }
        if let Some(v) = &expected.value_format {
            if !v.eq_ignore_ascii_case(&source.value_format.format) {
                return Err(format!(
                    "source {name}: expected value format {v} but got {}",
                    source.value_format.format
                ));
            }
        }
    }
    if let Some(topics) = &post.topics {
        let existing = engine.topics().map_err(|e| e.to_string())?;
        if let Some(pattern) = &topics.blacklist {
            let re = regex::Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| format!("bad blacklist {pattern:?}: {e}"))?;
            if let Some(t) = existing.iter().find(|t| re.is_match(&t.name)) {
                return Err(format!(
                    "topic {} matches the blacklist {pattern:?}",
                    t.name
                ));
            }
        }
        for expected in &topics.topics {
            // Internal topic names are Kafka Streams implementation details.
            if expected.name.starts_with("_confluent-ksql-") {
                continue;
            }
            let topic = existing
                .iter()
                .find(|t| t.name == expected.name)
                .ok_or_else(|| format!("topic {} does not exist", expected.name))?;
            if let Some(p) = expected.partitions {
                if p != topic.partitions {
                    return Err(format!(
                        "topic {}: expected {p} partitions but got {}",
                        topic.name, topic.partitions
                    ));
                }
            }
            let source = source_for_topic(engine, &topic.name, true);
            for (wanted, actual, what) in [
                (
                    &expected.key_format,
                    source.as_ref().map(|s| &s.key_format),
                    "key",
                ),
                (
                    &expected.value_format,
                    source.as_ref().map(|s| &s.value_format),
                    "value",
                ),
            ] {
                if let (Some(w), Some(a)) = (wanted, actual) {
                    if !w.eq_ignore_ascii_case(&a.format) {
                        return Err(format!(
                            "topic {}: expected {what} format {w} but got {}",
                            topic.name, a.format
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_runner::model::load_tests;

    fn case(text: &str) -> TestCase {
        let doc = Json::parse(text).unwrap();
        load_tests(&doc, "t").unwrap().remove(0)
    }

    #[test]
    fn exception_types_follow_the_java_hierarchy() {
        let expected = |t: &str| ExpectedException {
            type_name: Some(t.to_string()),
            ..Default::default()
        };
        let statement = EngineError::statement("bad");
        assert!(type_matches(
            &expected("io.confluent.ksql.util.KsqlStatementException"),
            &statement,
            false
        ));
        assert!(type_matches(&expected("KsqlException"), &statement, false));
        assert!(!type_matches(
            &expected("ParseFailedException"),
            &statement,
            false
        ));
        assert!(!type_matches(
            &expected("StreamsException"),
            &statement,
            false
        ));
        assert!(type_matches(
            &expected("StreamsException"),
            &statement,
            true
        ));
        assert!(!type_matches(
            &expected("KsqlException"),
            &EngineError::Internal("x".into()),
            false
        ));
    }

    #[test]
    fn expected_messages_are_substrings() {
        let e = ExpectedException {
            message: Some("does not exist".into()),
            ..Default::default()
        };
        assert!(check_expected(
            &e,
            &EngineError::statement("Source X does not exist."),
            None,
            false
        )
        .is_ok());
        assert!(check_expected(&e, &EngineError::statement("other"), None, false).is_err());
    }

    #[test]
    fn unsupported_errors_are_recognised() {
        assert!(unsupported_reason(&EngineError::unsupported("ALTER")).is_some());
        assert!(unsupported_reason(&EngineError::statement("nope")).is_none());
    }

    #[test]
    fn unwrapping_follows_format_defaults() {
        let json = FormatInfo::new("JSON");
        assert!(unwrapped(&json, 1, true));
        assert!(!unwrapped(&json, 1, false));
        assert!(!unwrapped(&json, 2, true));
        let unwrapped_json = FormatInfo {
            wrap_single_value: Some(false),
            ..FormatInfo::new("JSON")
        };
        assert!(unwrapped(&unwrapped_json, 1, false));
        assert!(unwrapped(&FormatInfo::new("KAFKA"), 1, false));
    }

    #[test]
    fn a_passing_projection_case() {
        let c = case(
            r#"{"tests": [{"name": "p",
                "statements": [
                  "CREATE STREAM TEST (K STRING KEY, ID bigint, NAME varchar) WITH (kafka_topic='test_topic', value_format='JSON');",
                  "CREATE STREAM S1 AS SELECT K, NAME FROM TEST WHERE ID > 100;"],
                "inputs": [
                  {"topic": "test_topic", "key": "a", "value": {"ID": 1, "name": "x"}},
                  {"topic": "test_topic", "key": "b", "value": {"id": 101, "NAME": "y"}, "timestamp": 5}],
                "outputs": [{"topic": "S1", "key": "b", "value": {"NAME": "y"}, "timestamp": 5}],
                "post": {"sources": [{"name": "S1", "type": "stream", "schema": "K STRING KEY, NAME STRING"}]}
            }]}"#,
        );
        assert_eq!(run_case(&c), Outcome::Passed);
        let mut wrong = c.clone();
        wrong.outputs[0].value = Json::parse(r#"{"NAME": "z"}"#).unwrap();
        assert!(matches!(run_case(&wrong), Outcome::Failed(m) if m.contains("value.NAME")));
    }

    #[test]
    fn expected_statement_errors() {
        let c = case(
            r#"{"tests": [{"name": "e",
                "statements": ["CREATE STREAM S AS SELECT * FROM MISSING;"],
                "expectedException": {"type": "io.confluent.ksql.util.KsqlStatementException", "message": "MISSING"}
            }]}"#,
        );
        assert_eq!(run_case(&c), Outcome::Passed);
        let c = case(
            r#"{"tests": [{"name": "e",
                "statements": ["CREATE STREAM S (A INT) WITH (kafka_topic='t', value_format='JSON');"],
                "expectedException": {"type": "io.confluent.ksql.util.KsqlStatementException"}
            }]}"#,
        );
        assert!(matches!(run_case(&c), Outcome::Failed(m) if m.contains("nothing failed")));
    }

    #[test]
    fn test_only_statements_do_not_parse_and_line_numbers_span_the_script() {
        let c = case(
            r#"{"tests": [{"name": "r",
                "statements": ["RUN SCRIPT 'foo';"],
                "expectedException": {"type": "io.confluent.ksql.parser.exception.ParseFailedException"}
            }]}"#,
        );
        assert_eq!(run_case(&c), Outcome::Passed);
        let c = case(
            r#"{"tests": [{"name": "l",
                "statements": ["CREATE STREAM S (A INT) WITH (kafka_topic='t', value_format='JSON');",
                               "CREATE STREAM X AS SELECT 9223372036854775808 FROM S;"],
                "expectedException": {"message": "line 2:"}
            }]}"#,
        );
        assert_eq!(run_case(&c), Outcome::Passed);
    }
}

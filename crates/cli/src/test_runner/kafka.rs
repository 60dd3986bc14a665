//! `runnel test --kafka`: runs a QTT case end to end through a Kafka broker instead of the
//! in-memory topics and the deterministic driver.
//!
//! The memory mode checks the engine's semantics; this mode checks that they survive the real
//! path: topic administration, serialized records with keys, timestamps and headers going through
//! a broker, persistent queries on their own threads, consumer groups and offsets. The setup and
//! the comparison are the memory mode's (`execute`), so both modes judge a case the same way.
//!
//! Isolation: every case gets its own `ksql.service.id` (so its consumer groups and internal
//! topics are its own) and its own topics. With no `--bootstrap-servers`, each case starts its own
//! embedded broker (librdkafka's in-process mock cluster, cheap to start), so topic names need no
//! change. On an external broker, every topic name of the case is given a per-case suffix (see
//! [`rename_topics`]); cases whose topics cannot all be renamed are skipped.
//!
//! Only cases that end in output records are meaningful here: cases expecting an error, and cases
//! without outputs, are left to the memory mode ([`ineligible`]).

use super::execute::{self, Outcome, TimestampCheck};
use super::model::TestCase;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use runnel_connect::kafka::{record_of, EmbeddedBroker, KafkaConfig, Record};
use runnel_engine::{Backend, Engine};
use runnel_sql::{Literal, Statement};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// How to run cases through Kafka.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// An external cluster; `None` starts an embedded broker per case.
    pub bootstrap_servers: Option<String>,
    /// How long to wait for the expected number of output records.
    pub output_timeout: Duration,
    /// How long to keep reading after that, to catch unexpected extra records.
    pub grace: Duration,
}

/// Why a case is not run through Kafka, or `None` when it is.
///
/// Kafka clients cannot write a timestamp of 0 (librdkafka reads it as "now"), so such inputs
/// get the wall-clock time: an expected output timestamp of 0 is not checked (see
/// `TimestampCheck`), and cases whose windows depend on it are not run.
pub fn ineligible(case: &TestCase) -> Option<&'static str> {
    if case.expected_exception.is_some() {
        Some("expects an error (checked in memory mode only)")
    } else if case.outputs.is_empty() {
        Some("has no expected outputs")
    } else if case.outputs.iter().any(|r| r.window.is_some())
        && case.inputs.iter().any(|r| r.timestamp.unwrap_or(0) == 0)
    {
        // librdkafka reads a timestamp of 0 as "now", so the windows would be other windows.
        Some("has windowed outputs of inputs with timestamp 0, which Kafka clients cannot write")
    } else {
        None
    }
}

/// A name unique to this process run and case: start time, process id and a counter, so runs
/// sharing an external broker do not meet either.
pub(super) fn unique_id() -> String {
    static START: LazyLock<i64> = LazyLock::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    });
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "rt{}x{}x{}",
        *START,
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs one case through Kafka.
pub fn run_case(case: &TestCase, settings: &KafkaSettings) -> Outcome {
    if let Some(why) = ineligible(case) {
        return Outcome::Skipped(format!("not run through Kafka: the case {why}"));
    }
    match run(case, settings) {
        Ok(()) => Outcome::Passed,
        Err(outcome) => outcome,
    }
}

/// The cluster a case runs on: an embedded broker of its own, or the external one, where the
/// case gets its own topics (suffix `_<id>`; returned renamed).
pub(super) fn case_cluster(
    case: &TestCase,
    settings: &KafkaSettings,
    id: &str,
) -> Result<(KafkaConfig, Option<TestCase>), Outcome> {
    match &settings.bootstrap_servers {
        None => {
            let broker = EmbeddedBroker::start().map_err(|e| {
                Outcome::Failed(format!("cannot start the embedded Kafka broker: {e}"))
            })?;
            let config = KafkaConfig {
                bootstrap_servers: broker.bootstrap_servers(),
                properties: BTreeMap::new(),
                embedded: Some(Arc::new(broker)),
            };
            Ok((config, None))
        }
        Some(servers) => {
            let renamed = rename_topics(case, &format!("_{id}")).map_err(|why| {
                Outcome::Skipped(format!("cannot give the case its own topics: {why}"))
            })?;
            let config = KafkaConfig {
                bootstrap_servers: servers.clone(),
                properties: BTreeMap::new(),
                embedded: None,
            };
            Ok((config, Some(renamed)))
        }
    }
}

fn run(case: &TestCase, settings: &KafkaSettings) -> Result<(), Outcome> {
    let id = unique_id();
    let (kafka, renamed) = case_cluster(case, settings, &id)?;
    let case = renamed.map_or(Cow::Borrowed(case), Cow::Owned);
    let mut config = execute::base_config();
    config.extend(case.properties.iter().cloned());
    config.insert(runnel_engine::SERVICE_ID.to_string(), format!("{id}_"));
    // The case's local state stores go away with the case.
    let state_dir = std::env::temp_dir().join(format!("runnel-test-state-{id}"));
    config.insert(
        "ksql.streams.state.dir".to_string(),
        state_dir.display().to_string(),
    );
    let mut engine = Engine::new(Backend::Kafka(kafka.clone()), config);
    execute::install_test_functions(&mut engine);
    let result = run_in(&mut engine, &case, &kafka, settings);
    engine.shutdown();
    let _ = std::fs::remove_dir_all(&state_dir);
    if kafka.embedded.is_none() {
        delete_topics(&engine, &case, &kafka);
    }
    result
}

fn run_in(
    engine: &mut Engine,
    case: &TestCase,
    kafka: &KafkaConfig,
    settings: &KafkaSettings,
) -> Result<(), Outcome> {
    execute::create_topics(engine, case, 1)
        .map_err(|e| Outcome::Failed(format!("cannot create topics: {e}")))?;
    if let ControlFlow::Break(decided) = execute::run_statements(engine, case) {
        return decided;
    }
    // Persistent queries read from the earliest offset, so inputs may follow the statements.
    let records = execute::encode_inputs(engine, case)?;
    engine
        .produce(records)
        .map_err(|e| Outcome::Failed(format!("cannot write inputs: {e}")))?;
    let actual = read_outputs(engine, case, kafka, settings)
        .map_err(|e| Outcome::Failed(format!("cannot read outputs: {e}")))?;
    execute::check_outputs(engine, case, &actual, TimestampCheck::UnlessZero)
        .map_err(|why| Outcome::Failed(format!("{why}{}", query_stats(engine))))?;
    execute::check_post_condition(engine, case)
}

/// The queries' counters, to tell "never processed" from "processed and dropped".
fn query_stats(engine: &Engine) -> String {
    let stats: Vec<String> = engine
        .queries
        .iter()
        .filter_map(|q| {
            let s = &q.running.as_ref()?.stats;
            Some(format!(
                "{}: {} in, {} out, {} failed",
                q.id,
                s.processed.load(Ordering::Relaxed),
                s.produced.load(Ordering::Relaxed),
                s.failed.load(Ordering::Relaxed)
            ))
        })
        .collect();
    if stats.is_empty() {
        String::new()
    } else {
        format!(" (queries: {})", stats.join("; "))
    }
}

/// Reads every expected output topic from the beginning with one consumer (assigned, not
/// subscribed: no group join), until each topic has at least its expected number of records or
/// the timeout passes, then for `grace` more to catch extra records.
pub(super) fn read_outputs(
    engine: &Engine,
    case: &TestCase,
    kafka: &KafkaConfig,
    settings: &KafkaSettings,
) -> Result<BTreeMap<String, Vec<Record>>, String> {
    let mut wanted: BTreeMap<String, usize> = BTreeMap::new();
    for r in &case.outputs {
        *wanted.entry(r.topic.clone()).or_default() += 1;
    }
    let mut assignment = TopicPartitionList::new();
    for topic in wanted.keys() {
        let info = engine.topic_info(topic).map_err(|e| e.to_string())?;
        // A topic that does not exist has no records; the comparison reports the missing ones.
        for p in 0..info.map_or(0, |t| t.partitions) {
            assignment
                .add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| e.to_string())?;
        }
    }
    let mut actual: BTreeMap<String, Vec<Record>> =
        wanted.keys().map(|t| (t.clone(), Vec::new())).collect();
    if assignment.count() == 0 {
        return Ok(actual);
    }
    let group = format!("{}test_reader", engine.service_id());
    // Brokers may hold a fetch for up to fetch.wait.max.ms (500 ms by default) before answering
    // with records that arrived meanwhile; a short wait keeps the grace period meaningful.
    let mut reader = kafka.clone();
    reader
        .properties
        .entry("fetch.wait.max.ms".into())
        .or_insert_with(|| "50".into());
    let consumer: BaseConsumer = reader
        .consumer(&group, "earliest")
        .map_err(|e| e.to_string())?;
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + settings.output_timeout;
    let mut stop_at: Option<Instant> = None;
    let mut last_error = None;
    loop {
        let now = Instant::now();
        let until = stop_at.unwrap_or(deadline);
        if now >= until {
            break;
        }
        match consumer.poll((until - now).min(Duration::from_millis(100))) {
            Some(Ok(m)) => {
                let record = record_of(&m);
                if let Some(records) = actual.get_mut(&record.topic) {
                    records.push(record);
                }
            }
            Some(Err(e)) => last_error = Some(e.to_string()),
            None => {}
        }
        let complete = wanted
            .iter()
            .all(|(t, n)| actual.get(t).map_or(0, Vec::len) >= *n);
        if complete && stop_at.is_none() {
            stop_at = Some(Instant::now() + settings.grace);
        }
    }
    let short = wanted
        .iter()
        .any(|(t, n)| actual.get(t).map_or(0, Vec::len) < *n);
    if let (true, Some(e)) = (short, last_error) {
        tracing::warn!("reading the outputs of {}: {e}", case.name);
    }
    Ok(actual)
}

/// Deletes the case's topics from an external broker (best effort: they are the case's own).
pub(super) fn delete_topics(engine: &Engine, case: &TestCase, kafka: &KafkaConfig) {
    let mut names: Vec<String> = engine.catalog.sources().map(|s| s.topic.clone()).collect();
    names.extend(case.topics.iter().map(|t| t.name.clone()));
    names.extend(case.inputs.iter().map(|r| r.topic.clone()));
    names.extend(case.outputs.iter().map(|r| r.topic.clone()));
    names.push(engine.processing_log_topic());
    names.sort();
    names.dedup();
    let existing: Vec<String> = match kafka.topics(None) {
        Ok(t) => t.into_iter().map(|t| t.name).collect(),
        Err(_) => return,
    };
    for name in names.iter().filter(|n| existing.contains(n)) {
        if let Err(e) = kafka.delete_topic(name) {
            tracing::warn!("cannot delete test topic {name}: {e}");
        }
    }
}

// ----- renaming ---------------------------------------------------------------------------

/// `KAFKA_TOPIC = '...'` in statement text (the value with `''` escapes).
static KAFKA_TOPIC: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"(?i)\bKAFKA_TOPIC(\s*=\s*)'((?:[^']|'')*)'").expect("a valid pattern")
});

/// The head of `CREATE ... name [WITH (]` of a CREATE ... AS SELECT, to add a KAFKA_TOPIC to.
static CREATE_HEAD: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r#"(?is)^(\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:STREAM|TABLE)\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:`(?:[^`]|``)*`|"(?:[^"]|"")*"|[A-Za-z0-9_@$.:]+))(\s*WITH\s*\(\s*)?"#,
    )
    .expect("a valid pattern")
});

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The KAFKA_TOPIC of a CREATE statement (`Some(None)` when it has none), `None` for other
/// statements.
fn declared_topic(statement: &Statement) -> Option<Option<&str>> {
    let properties = match statement {
        Statement::CreateSource(c) => &c.properties,
        Statement::CreateAsSelect(c) => &c.properties,
        _ => return None,
    };
    match properties.get("KAFKA_TOPIC") {
        Some(Literal::String(t)) => Some(Some(t.as_str())),
        _ => Some(None),
    }
}

/// A copy of the case whose every topic name ends in `suffix`: in the statements' KAFKA_TOPIC
/// values, the declared topics, the records and the post-conditions. A CREATE ... AS SELECT
/// without KAFKA_TOPIC writes to a topic named after its sink, so it is given a KAFKA_TOPIC.
/// The result is parsed again to check that every CREATE names a renamed topic.
pub fn rename_topics(case: &TestCase, suffix: &str) -> Result<TestCase, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    let mut add = |name: &str| {
        map.entry(name.to_string())
            .or_insert_with(|| format!("{name}{suffix}"));
    };
    case.topics.iter().for_each(|t| add(&t.name));
    case.inputs.iter().for_each(|r| add(&r.topic));
    case.outputs.iter().for_each(|r| add(&r.topic));
    if let Some(topics) = case.post.as_ref().and_then(|p| p.topics.as_ref()) {
        topics.topics.iter().for_each(|t| add(&t.name));
    }
    for text in &case.statements {
        for c in KAFKA_TOPIC.captures_iter(text) {
            add(&c[2].replace("''", "'"));
        }
    }

    let mut renamed = case.clone();
    for text in &mut renamed.statements {
        let parsed = match runnel_sql::parse_statements(text) {
            Ok(parsed) => parsed,
            // A statement that does not parse creates nothing (the case expects its error):
            // kept as it is unless it may name a topic.
            Err(_) if !names_a_topic(text) => continue,
            Err(e) => return Err(format!("cannot parse {:?}: {e}", one_line(text))),
        };
        let sinks_without_topic: Vec<String> = parsed
            .iter()
            .filter_map(|p| match &p.statement {
                Statement::CreateAsSelect(c) if c.properties.get("KAFKA_TOPIC").is_none() => {
                    Some(c.name.clone())
                }
                _ => None,
            })
            .collect();
        let mut new_text = KAFKA_TOPIC
            .replace_all(text, |c: &regex::Captures<'_>| {
                let old = c[2].replace("''", "'");
                let new = map.get(&old).cloned().unwrap_or(old);
                format!("KAFKA_TOPIC{}{}", &c[1], quote(&new))
            })
            .into_owned();
        match sinks_without_topic.as_slice() {
            [] => {}
            [sink] if parsed.len() == 1 => {
                let topic = map
                    .entry(sink.clone())
                    .or_insert_with(|| format!("{sink}{suffix}"))
                    .clone();
                let head = CREATE_HEAD
                    .captures(&new_text)
                    .ok_or_else(|| format!("cannot find the head of {:?}", one_line(text)))?;
                let (name_end, with) = match (head.get(1), head.get(2)) {
                    (_, Some(with)) => (with.end(), true),
                    (Some(name), None) => (name.end(), false),
                    (None, None) => return Err(format!("cannot rewrite {:?}", one_line(text))),
                };
                let insert = if with {
                    format!("KAFKA_TOPIC={}, ", quote(&topic))
                } else {
                    format!(" WITH (KAFKA_TOPIC={})", quote(&topic))
                };
                new_text.insert_str(name_end, &insert);
            }
            _ => {
                return Err(format!(
                    "more than one statement in {:?} needs a KAFKA_TOPIC",
                    one_line(text)
                ))
            }
        }
        *text = new_text;
    }
    // Check: every CREATE now names one of the case's renamed topics.
    for text in &renamed.statements {
        let parsed = match runnel_sql::parse_statements(text) {
            Ok(parsed) => parsed,
            Err(_) if !names_a_topic(text) => continue,
            Err(e) => {
                return Err(format!(
                    "the renamed statement {:?} does not parse: {e}",
                    one_line(text)
                ))
            }
        };
        for p in &parsed {
            match declared_topic(&p.statement) {
                Some(Some(t)) if t.ends_with(suffix) => {}
                Some(_) => {
                    return Err(format!(
                        "the topic of {:?} could not be renamed",
                        one_line(&p.text)
                    ))
                }
                None => {}
            }
        }
    }
    let rename = |name: &mut String| {
        if let Some(new) = map.get(name.as_str()) {
            *name = new.clone();
        }
    };
    renamed.topics.iter_mut().for_each(|t| rename(&mut t.name));
    renamed.inputs.iter_mut().for_each(|r| rename(&mut r.topic));
    renamed
        .outputs
        .iter_mut()
        .for_each(|r| rename(&mut r.topic));
    if let Some(topics) = renamed.post.as_mut().and_then(|p| p.topics.as_mut()) {
        topics.topics.iter_mut().for_each(|t| rename(&mut t.name));
    }
    Ok(renamed)
}

/// Whether a statement's text may create or name a topic: a CREATE, or a KAFKA_TOPIC property.
fn names_a_topic(text: &str) -> bool {
    KAFKA_TOPIC.is_match(text) || CREATE_HEAD.is_match(text)
}

fn one_line(text: &str) -> &str {
    text.trim().lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_runner::json::Json;
    use crate::test_runner::model::load_tests;

    fn case(text: &str) -> TestCase {
        let doc = Json::parse(text).unwrap();
        load_tests(&doc, "t").unwrap().remove(0)
    }

    const PROJECTION: &str = r#"{"tests": [{"name": "p",
        "statements": [
          "CREATE STREAM TEST (K STRING KEY, ID bigint, NAME varchar) WITH (kafka_topic='test_topic', value_format='JSON');",
          "CREATE STREAM S1 AS SELECT K, NAME FROM TEST WHERE ID > 100;",
          "CREATE STREAM S2 WITH (value_format='JSON') AS SELECT K, ID FROM TEST;"],
        "topics": [{"name": "test_topic", "partitions": 1}],
        "inputs": [
          {"topic": "test_topic", "key": "a", "value": {"ID": 1, "name": "x"}, "headers": [{"KEY": "h", "VALUE": "AQ=="}]},
          {"topic": "test_topic", "key": "b", "value": {"id": 101, "NAME": "y"}, "timestamp": 5}],
        "outputs": [
          {"topic": "S1", "key": "b", "value": {"NAME": "y"}, "timestamp": 5},
          {"topic": "S2", "key": "a", "value": {"ID": 1}, "headers": [{"KEY": "h", "VALUE": "AQ=="}]},
          {"topic": "S2", "key": "b", "value": {"ID": 101}, "timestamp": 5}],
        "post": {"topics": {"topics": [{"name": "S1", "partitions": 1}]}}
    }]}"#;

    #[test]
    fn renaming_gives_every_topic_the_suffix() {
        let mut c = case(PROJECTION);
        c.statements
            .push("CREATE STREAM S3 WITH (KAFKA_TOPIC = 'it''s') AS SELECT K FROM TEST;".into());
        let r = rename_topics(&c, "_x1").unwrap();
        assert_eq!(
            r.statements[0],
            "CREATE STREAM TEST (K STRING KEY, ID bigint, NAME varchar) WITH (KAFKA_TOPIC='test_topic_x1', value_format='JSON');"
        );
        assert_eq!(
            r.statements[1],
            "CREATE STREAM S1 WITH (KAFKA_TOPIC='S1_x1') AS SELECT K, NAME FROM TEST WHERE ID > 100;"
        );
        assert_eq!(
            r.statements[2],
            "CREATE STREAM S2 WITH (KAFKA_TOPIC='S2_x1', value_format='JSON') AS SELECT K, ID FROM TEST;"
        );
        assert_eq!(
            r.statements[3],
            "CREATE STREAM S3 WITH (KAFKA_TOPIC = 'it''s_x1') AS SELECT K FROM TEST;"
        );
        assert_eq!(r.topics[0].name, "test_topic_x1");
        assert!(r.inputs.iter().all(|i| i.topic == "test_topic_x1"));
        assert_eq!(r.outputs[0].topic, "S1_x1");
        assert_eq!(r.outputs[2].topic, "S2_x1");
        let post = r.post.unwrap().topics.unwrap();
        assert_eq!(post.topics[0].name, "S1_x1");
    }

    #[test]
    fn renaming_refuses_what_it_cannot_rewrite() {
        let mut c = case(PROJECTION);
        c.statements =
            vec!["CREATE STREAM A AS SELECT * FROM T; CREATE STREAM B AS SELECT * FROM T;".into()];
        assert!(rename_topics(&c, "_x").is_err());
        // A CREATE that does not parse may name a topic: refused.
        c.statements = vec!["CREATE STREAM A (X INT) WITH (KAFKA_TOPIC='t' oops);".into()];
        assert!(rename_topics(&c, "_x").is_err());
    }

    #[test]
    fn renaming_keeps_statements_that_do_not_parse_and_name_no_topic() {
        let mut c = case(PROJECTION);
        c.statements.push("SELECT * FROM TEST LIMIT -1;".into());
        let r = rename_topics(&c, "_x1").unwrap();
        assert_eq!(r.statements[3], "SELECT * FROM TEST LIMIT -1;");
        assert_eq!(r.topics[0].name, "test_topic_x1");
    }

    #[test]
    fn cases_without_outputs_or_with_errors_are_not_run() {
        let c = case(PROJECTION);
        assert_eq!(ineligible(&c), None);
        let mut no_outputs = c.clone();
        no_outputs.outputs.clear();
        assert!(ineligible(&no_outputs).is_some());
        let mut error = c;
        error.expected_exception = Some(Default::default());
        assert!(matches!(
            run_case(&error, &settings(None)),
            Outcome::Skipped(m) if m.contains("expects an error")
        ));
    }

    fn settings(bootstrap_servers: Option<String>) -> KafkaSettings {
        KafkaSettings {
            bootstrap_servers,
            output_timeout: Duration::from_secs(20),
            grace: Duration::from_millis(1000),
        }
    }

    #[test]
    fn a_case_runs_through_the_embedded_broker() {
        let c = case(PROJECTION);
        assert_eq!(execute::run_case(&c), Outcome::Passed, "memory mode");
        assert_eq!(run_case(&c, &settings(None)), Outcome::Passed);
        let mut wrong = c.clone();
        wrong.outputs.pop();
        let outcome = run_case(&wrong, &settings(None));
        assert!(
            matches!(&outcome, Outcome::Failed(m) if m.contains("topic S2: expected 1 records but got 2")),
            "{outcome:?}"
        );
    }
}

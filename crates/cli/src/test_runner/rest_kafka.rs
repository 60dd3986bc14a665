//! `runnel test --rest --kafka`: the REST query-validation cases (see `rest`) with the server's
//! engine on a Kafka broker, as ksqlDB's own REST runner runs them.
//!
//! The memory mode moves every query along with the deterministic driver, so it checks the
//! engine's semantics; this mode checks that the REST server gives the same answers when the
//! persistent queries run on their own threads against a broker: inputs serialized and produced
//! to the topics, consumer groups, offsets, tables materialized by the running queries, push
//! queries reading the topics live.
//!
//! There is no driver to run to completion, so after producing the inputs the runner waits until
//! the persistent queries have caught up ([`wait_caught_up`]): every query's consumer group has
//! committed, on every partition of every topic it reads, the end offset of that partition. A
//! query commits only after its outputs are acknowledged, and queries are checked in the order
//! they were created (a query's sources come before it), so once all are caught up the tables
//! hold every input and the downstream topics every record. ksqlDB's REST runner waits on its
//! queries' committed offsets the same way.
//!
//! Isolation is the QTT Kafka mode's (`kafka`): a per-case service id, state directory, and an
//! embedded broker per case, or renamed topics on an external cluster.

use super::execute::Outcome;
use super::kafka::KafkaSettings;
use super::rest::RestCase;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use runnel_connect::kafka::KafkaConfig;
use runnel_engine::runner::QueryStats;
use runnel_engine::{Backend, Engine};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A case's broker, and what goes away with the case.
pub(super) struct KafkaRun {
    pub kafka: KafkaConfig,
    /// The case, its topics renamed on an external cluster.
    pub case: RestCase,
    pub state_dir: std::path::PathBuf,
}

/// Persistent queries on Kafka commit every 100 ms instead of ksqlDB's 2 s, so that waiting for
/// their commits does not dominate each case; with the record cache off (as in ksqlDB's test
/// server) the interval changes no result.
const COMMIT_INTERVAL_MS: &str = "100";

/// Starts the case's engine on its broker (an embedded one unless `settings` names a cluster).
pub(super) fn start(
    rc: &RestCase,
    settings: &KafkaSettings,
    mut config: BTreeMap<String, String>,
) -> Result<(Engine, KafkaRun), Outcome> {
    let id = super::kafka::unique_id();
    let (kafka, renamed) = super::kafka::case_cluster(&rc.case, settings, &id)?;
    let case = match renamed {
        Some(renamed) => RestCase {
            case: renamed,
            ..rc.clone()
        },
        None => rc.clone(),
    };
    config.insert(runnel_engine::SERVICE_ID.to_string(), format!("{id}_"));
    let state_dir = std::env::temp_dir().join(format!("runnel-test-state-{id}"));
    config.insert(
        "ksql.streams.state.dir".to_string(),
        state_dir.display().to_string(),
    );
    config.insert(
        "ksql.streams.commit.interval.ms".to_string(),
        COMMIT_INTERVAL_MS.to_string(),
    );
    let engine = Engine::new(Backend::Kafka(kafka.clone()), config);
    Ok((
        engine,
        KafkaRun {
            kafka,
            case,
            state_dir,
        },
    ))
}

/// How far one persistent query is on one partition of a topic it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Lag {
    pub query: String,
    pub topic: String,
    /// `None` for a count over the whole topic (see [`Position::Processed`]).
    pub partition: Option<i32>,
    /// The committed offset (the next to read), or the records processed.
    pub at: i64,
    /// The partition's end offset, or the records in the topic.
    pub end: i64,
}

/// The lags still open, described for a timeout message; `None` when every query is caught up.
pub(super) fn behind(lags: &[Lag]) -> Option<String> {
    let open: Vec<String> = lags
        .iter()
        .filter(|l| l.at < l.end)
        .map(|l| match l.partition {
            Some(p) => format!(
                "{} has committed offset {} of {} on {}/{p}",
                l.query, l.at, l.end, l.topic
            ),
            None => format!(
                "{} has processed {} of the {} records of {}",
                l.query, l.at, l.end, l.topic
            ),
        })
        .collect();
    (!open.is_empty()).then(|| open.join("; "))
}

/// What says how far a query is on a topic.
enum Position {
    /// The offsets committed by a consumer group.
    Group(String),
    /// The records processed: a SOURCE table's query, whose group is named at start and which
    /// keeps its state in memory only.
    Processed(Arc<QueryStats>),
}

struct Target {
    query: String,
    topic: String,
    position: Position,
}

/// The positions to wait for, in the order the queries were created; or the query that stopped
/// on an error.
fn targets(engine: &Engine) -> Result<Vec<Target>, String> {
    let service = engine.service_id();
    let mut out = Vec::new();
    for q in &engine.queries {
        let Some(running) = &q.running else { continue };
        if running.stats.errored.load(Ordering::SeqCst) {
            return Err(format!("query {} stopped on an error", q.id));
        }
        let source = q.task.source_topic().to_string();
        let group = format!("_confluent-ksql-{service}query_{}", q.id);
        if q.task.sink_topic().is_none() {
            out.push(Target {
                query: q.id.clone(),
                topic: source,
                position: Position::Processed(running.stats.clone()),
            });
        } else if runnel_engine::repartition::needs_repartition(&q.task) {
            let repartition = runnel_engine::repartition::topic_name(&service, &q.id);
            out.push(Target {
                query: q.id.clone(),
                topic: source,
                position: Position::Group(group.clone()),
            });
            out.push(Target {
                query: q.id.clone(),
                topic: repartition,
                position: Position::Group(format!("{group}-Aggregate")),
            });
        } else {
            out.push(Target {
                query: q.id.clone(),
                topic: source,
                position: Position::Group(group),
            });
        }
    }
    Ok(out)
}

/// Reads the committed offsets and end offsets of the targets.
struct Probe {
    kafka: KafkaConfig,
    /// One consumer per group, never subscribed: it only asks for the group's offsets.
    consumers: BTreeMap<String, BaseConsumer>,
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The group of the consumer that only reads metadata and watermarks.
const PROBE_GROUP: &str = "_runnel-test-probe";

impl Probe {
    fn consumer(&mut self, group: &str) -> Result<&BaseConsumer, String> {
        if !self.consumers.contains_key(group) {
            let c = self
                .kafka
                .consumer(group, "earliest")
                .map_err(|e| e.to_string())?;
            self.consumers.insert(group.to_string(), c);
        }
        self.consumers
            .get(group)
            .ok_or_else(|| "no consumer".to_string())
    }

    /// The partition count of every topic, in one metadata request (asking for one topic may
    /// auto-create it on some brokers).
    fn partitions(&mut self) -> Result<BTreeMap<String, i32>, String> {
        let metadata = self
            .consumer(PROBE_GROUP)?
            .fetch_metadata(None, PROBE_TIMEOUT)
            .map_err(|e| format!("cannot list the topics: {e}"))?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect())
    }

    fn lags(&mut self, targets: &[Target]) -> Result<Vec<Lag>, String> {
        let topics = self.partitions()?;
        let mut lags = Vec::new();
        for t in targets {
            let Some(&partitions) = topics.get(&t.topic) else {
                // Not created yet (a repartition topic): nothing to read.
                continue;
            };
            match &t.position {
                Position::Group(group) => {
                    let consumer = self.consumer(group)?;
                    let mut tpl = TopicPartitionList::new();
                    for p in 0..partitions {
                        tpl.add_partition(&t.topic, p);
                    }
                    let committed = consumer
                        .committed_offsets(tpl, PROBE_TIMEOUT)
                        .map_err(|e| format!("committed offsets of {group}: {e}"))?;
                    for p in 0..partitions {
                        let (_, end) = consumer
                            .fetch_watermarks(&t.topic, p, PROBE_TIMEOUT)
                            .map_err(|e| format!("end offset of {}/{p}: {e}", t.topic))?;
                        let at = match committed.find_partition(&t.topic, p).map(|e| e.offset()) {
                            Some(Offset::Offset(o)) => o,
                            _ => 0,
                        };
                        lags.push(Lag {
                            query: t.query.clone(),
                            topic: t.topic.clone(),
                            partition: Some(p),
                            at,
                            end,
                        });
                    }
                }
                Position::Processed(stats) => {
                    let consumer = self.consumer(PROBE_GROUP)?;
                    let mut records = 0;
                    for p in 0..partitions {
                        let (low, high) = consumer
                            .fetch_watermarks(&t.topic, p, PROBE_TIMEOUT)
                            .map_err(|e| format!("offsets of {}/{p}: {e}", t.topic))?;
                        records += high - low;
                    }
                    lags.push(Lag {
                        query: t.query.clone(),
                        topic: t.topic.clone(),
                        partition: None,
                        at: stats.processed.load(Ordering::Acquire) as i64,
                        end: records,
                    });
                }
            }
        }
        Ok(lags)
    }
}

/// Waits until every persistent query has processed (and committed) everything in the topics it
/// reads, as seen twice in a row with the same end offsets (so records still on their way from
/// one query to the next are not missed); fails after `timeout` naming what is behind.
pub(super) fn wait_caught_up(
    engine: &Arc<Mutex<Engine>>,
    kafka: &KafkaConfig,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut probe = Probe {
        kafka: kafka.clone(),
        consumers: BTreeMap::new(),
    };
    let mut settled: Option<Vec<i64>> = None;
    loop {
        let targets = {
            let engine = engine.lock().unwrap_or_else(|e| e.into_inner());
            targets(&engine)?
        };
        let lags = probe.lags(&targets)?;
        let open = behind(&lags);
        if open.is_none() {
            let ends: Vec<i64> = lags.iter().map(|l| l.end).collect();
            if settled.as_ref() == Some(&ends) {
                return Ok(());
            }
            settled = Some(ends);
        } else {
            settled = None;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the persistent queries did not process their inputs within {timeout:?}: {}",
                open.unwrap_or_else(|| "their topics kept growing".into())
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops the case's engine and removes what it left: the state directory, and on an external
/// cluster the case's topics.
pub(super) fn finish(
    engine: &Arc<Mutex<Engine>>,
    kafka: &KafkaConfig,
    rc: &RestCase,
    state_dir: &std::path::Path,
) {
    let mut engine = engine.lock().unwrap_or_else(|e| e.into_inner());
    engine.shutdown();
    let _ = std::fs::remove_dir_all(state_dir);
    if kafka.embedded.is_none() {
        super::kafka::delete_topics(&engine, &rc.case, kafka);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_runner::rest::{load_file, run_case};

    /// A table materialized by a persistent query, read by a pull query after the inputs.
    const COUNTS: &str = r#"{"tests": [{"name": "counts",
        "statements": [
          "CREATE STREAM S (ID INT KEY, V STRING) WITH (kafka_topic='test_topic', value_format='JSON');",
          "CREATE TABLE T AS SELECT ID, COUNT(*) AS C FROM S GROUP BY ID;",
          "SELECT * FROM T WHERE ID = 1;"],
        "inputs": [
          {"topic": "test_topic", "key": 1, "value": {"V": "a"}},
          {"topic": "test_topic", "key": 2, "value": {"V": "b"}},
          {"topic": "test_topic", "key": 1, "value": {"V": "c"}}],
        "responses": [
          {"admin": {"@type": "currentStatus"}},
          {"admin": {"@type": "currentStatus"}},
          {"query": [{"header": {"schema": "`ID` INTEGER KEY, `C` BIGINT"}}, {"row": {"columns": [1, 2]}}]}]
    }]}"#;

    fn load(text: &str) -> RestCase {
        let dir =
            std::env::temp_dir().join(format!("runnel-rqtt-{}", super::super::kafka::unique_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cases.json");
        std::fs::write(&path, text).unwrap();
        let (_, mut cases) = load_file(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        cases.remove(0)
    }

    fn embedded() -> KafkaSettings {
        KafkaSettings {
            bootstrap_servers: None,
            output_timeout: Duration::from_secs(20),
            grace: Duration::from_millis(500),
        }
    }

    #[test]
    fn a_pull_query_sees_every_input_once_the_queries_caught_up() {
        let rc = load(COUNTS);
        assert_eq!(run_case(&rc, None), Outcome::Passed, "memory mode");
        assert_eq!(run_case(&rc, Some(&embedded())), Outcome::Passed);
        // One input fewer: the count is 1, and the comparison says so.
        let mut short = rc.clone();
        short.case.inputs.pop();
        let outcome = run_case(&short, Some(&embedded()));
        assert!(
            matches!(&outcome, Outcome::Failed(m) if m.contains("no row matches")),
            "{outcome:?}"
        );
    }

    /// ksqlDB's scalable push query shape: a push query from `latest` over a CSAS's output,
    /// with the inputs produced only once the push query runs.
    const SCALABLE: &str = r#"{"tests": [{"name": "scalable",
        "statements": [
          "CREATE STREAM I (K STRING KEY, ID INT) WITH (kafka_topic='test_topic', value_format='JSON', partitions=1);",
          "CREATE STREAM INPUT AS SELECT * FROM I;",
          "SELECT K, ID FROM INPUT EMIT CHANGES LIMIT 2;"],
        "properties": {"auto.offset.reset": "latest"},
        "inputConditions": {"waitForActivePushQuery": true},
        "inputs": [
          {"topic": "test_topic", "timestamp": 12345, "key": "11", "value": {"id": 100}},
          {"topic": "test_topic", "timestamp": 12365, "key": "12", "value": {"id": 101}}],
        "responses": [
          {"admin": {"@type": "currentStatus"}},
          {"admin": {"@type": "currentStatus"}},
          {"query": [
            {"header": {"schema": "`K` STRING, `ID` INTEGER", "queryId|starts_with": "SCALABLE_PUSH_QUERY"}},
            {"row": {"columns": ["11", 100]}},
            {"row": {"columns": ["12", 101]}},
            {"finalMessage": "Limit Reached"}]}]
    }]}"#;

    #[test]
    fn a_push_query_from_latest_sees_inputs_produced_once_it_runs() {
        let rc = load(SCALABLE);
        assert_eq!(run_case(&rc, None), Outcome::Passed, "memory mode");
        assert_eq!(run_case(&rc, Some(&embedded())), Outcome::Passed);
    }

    #[test]
    fn an_input_key_the_source_format_cannot_hold_fails_the_case_clearly() {
        let mut rc = load(COUNTS);
        rc.case.inputs[1].key = Some(crate::test_runner::json::Json::String("two".into()));
        for kafka in [None, Some(&embedded())] {
            let outcome = run_case(&rc, kafka);
            assert!(
                matches!(&outcome, Outcome::Failed(m) if m.starts_with("cannot serialize input 2")),
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn waiting_for_a_query_that_does_not_move_fails_naming_it() {
        let broker = runnel_connect::kafka::EmbeddedBroker::start().unwrap();
        let kafka = KafkaConfig {
            bootstrap_servers: broker.bootstrap_servers(),
            properties: BTreeMap::new(),
            embedded: Some(Arc::new(broker)),
        };
        let mut config = crate::test_runner::execute::base_config();
        config.insert(runnel_engine::SERVICE_ID.to_string(), "wait_".into());
        config.insert("ksql.streams.commit.interval.ms".into(), "100".into());
        let mut engine = Engine::new(Backend::Kafka(kafka.clone()), config);
        engine.create_topic("t", 2, 1).unwrap();
        engine
            .execute_script(
                "CREATE STREAM S (K STRING KEY, V INT) WITH (kafka_topic='t', value_format='JSON');
                 CREATE STREAM O AS SELECT * FROM S;",
            )
            .unwrap();
        let record = |partition: i32| runnel_connect::kafka::Record {
            topic: "t".into(),
            partition,
            key: Some(b"k".to_vec()),
            value: Some(br#"{"V": 1}"#.to_vec()),
            timestamp: 1,
            ..Default::default()
        };
        engine
            .produce(vec![record(0), record(1), record(1)])
            .unwrap();
        let engine = Arc::new(Mutex::new(engine));
        wait_caught_up(&engine, &kafka, Duration::from_secs(20)).unwrap();
        {
            let mut e = engine.lock().unwrap();
            let query = e.queries[0].id.clone();
            assert_eq!(query, "CSAS_O_0");
            // Stopped, the query never processes what comes next.
            e.queries[0].running.as_mut().unwrap().stop();
            e.produce(vec![record(1)]).unwrap();
        }
        let error = wait_caught_up(&engine, &kafka, Duration::from_millis(500)).unwrap_err();
        assert_eq!(
            error,
            "the persistent queries did not process their inputs within 500ms: \
             CSAS_O_0 has committed offset 2 of 3 on t/1"
        );
        engine.lock().unwrap().shutdown();
    }

    fn lag(at: i64, end: i64, partition: Option<i32>) -> Lag {
        Lag {
            query: "CTAS_T_1".into(),
            topic: "t".into(),
            partition,
            at,
            end,
        }
    }

    #[test]
    fn caught_up_only_when_every_position_reached_its_end() {
        assert_eq!(behind(&[]), None);
        assert_eq!(behind(&[lag(3, 3, Some(0)), lag(0, 0, Some(1))]), None);
        // A commit past the end (a read_committed marker) is caught up too.
        assert_eq!(behind(&[lag(4, 3, Some(0))]), None);
        assert_eq!(
            behind(&[lag(3, 3, Some(0)), lag(1, 2, Some(1))]).as_deref(),
            Some("CTAS_T_1 has committed offset 1 of 2 on t/1")
        );
        assert_eq!(
            behind(&[lag(2, 5, None)]).as_deref(),
            Some("CTAS_T_1 has processed 2 of the 5 records of t")
        );
    }
}

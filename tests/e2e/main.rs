//! End-to-end tests through Kafka: records go into a topic, statements run, and the output topic
//! is read back byte for byte.
//!
//! They use the embedded broker (librdkafka's mock cluster) by default, and an external broker
//! when `RUNNEL_TEST_BOOTSTRAP` names one (CI points it at tansu). Topic names are unique per
//! test so runs can share a broker.

use rdkafka::consumer::{BaseConsumer, Consumer};
use runnel_connect::kafka::{EmbeddedBroker, KafkaConfig, Record};
use runnel_engine::{Backend, Engine};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis() % 1_000_000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn external_bootstrap() -> Option<String> {
    std::env::var("RUNNEL_TEST_BOOTSTRAP")
        .ok()
        .filter(|s| !s.is_empty())
}

fn kafka() -> KafkaConfig {
    match external_bootstrap() {
        Some(b) => KafkaConfig {
            bootstrap_servers: b,
            properties: BTreeMap::new(),
            embedded: None,
        },
        None => {
            let broker = EmbeddedBroker::start().expect("embedded broker");
            KafkaConfig {
                bootstrap_servers: broker.bootstrap_servers(),
                properties: BTreeMap::new(),
                embedded: Some(Arc::new(broker)),
            }
        }
    }
}

/// Reads `n` records from `topic` (from the beginning), or fails after a deadline.
fn read(kafka: &KafkaConfig, topic: &str, n: usize) -> Vec<Record> {
    let consumer: BaseConsumer = kafka
        .consumer(&unique("reader"), "earliest")
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(runnel_connect::kafka::record_of(&m.detach()));
        }
    }
    assert_eq!(
        out.len(),
        n,
        "expected {n} records on {topic}, got {}: {out:?}",
        out.len()
    );
    out
}

fn produce(kafka: &KafkaConfig, records: &[Record]) {
    let p = kafka.producer().expect("producer");
    for r in records {
        runnel_connect::kafka::send(&p, r).expect("send");
    }
    runnel_connect::kafka::flush(&p).expect("flush");
}

fn text(b: &Option<Vec<u8>>) -> String {
    b.as_ref()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_else(|| "<null>".into())
}

#[test]
fn csas_filters_projects_and_logs_bad_records() {
    let kafka = kafka();
    let input = unique("bids");
    let output = unique("bids_out");
    let service = format!("{}_", unique("svc"));
    let mut engine = Engine::new(
        Backend::Kafka(kafka.clone()),
        BTreeMap::from([("ksql.service.id".to_string(), service.clone())]),
    );
    engine
        .execute_script(&format!(
            "CREATE STREAM bids (id INT KEY, bidder STRING, price DOUBLE, qty BIGINT) \
             WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON', PARTITIONS=2);"
        ))
        .expect("create stream");
    let rec = |offset_key: i32, value: &str| Record {
        topic: input.clone(),
        partition: 0,
        key: Some(offset_key.to_be_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        timestamp: 1_000 + offset_key as i64,
        headers: vec![("h".into(), Some(b"v".to_vec()))],
        ..Default::default()
    };
    produce(
        &kafka,
        &[
            rec(1, r#"{"BIDDER":"alice","PRICE":10.5,"QTY":2}"#),
            rec(2, "this is not json"),
            rec(3, r#"{"bidder":"bob","price":0.5,"qty":7}"#),
            rec(4, r#"{"bidder":"carol","price":100,"qty":null}"#),
        ],
    );
    engine
        .execute_script(&format!(
            "CREATE STREAM {output} WITH (KAFKA_TOPIC='{output}') AS \
             SELECT id, UCASE(bidder) AS who, price * 2 AS doubled, qty + 1 AS more \
             FROM bids WHERE price > 1 EMIT CHANGES;"
        ))
        .expect("csas");
    let out = read(&kafka, &output, 2);
    let mut got: Vec<(Vec<u8>, String, i64)> = out
        .iter()
        .map(|r| {
            (
                r.key.clone().unwrap_or_default(),
                text(&r.value),
                r.timestamp,
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                1i32.to_be_bytes().to_vec(),
                r#"{"WHO":"ALICE","DOUBLED":21.0,"MORE":3}"#.to_string(),
                1_001
            ),
            (
                4i32.to_be_bytes().to_vec(),
                r#"{"WHO":"CAROL","DOUBLED":200.0,"MORE":null}"#.to_string(),
                1_004
            ),
        ]
    );
    assert!(
        out.iter()
            .all(|r| r.headers == vec![("h".to_string(), Some(b"v".to_vec()))]),
        "headers are carried"
    );
    // The malformed record is in the processing log with its position, and nothing else is lost.
    let log = read(&kafka, &format!("{service}ksql_processing_log"), 1);
    let entry = text(&log[0].value);
    assert!(
        entry.contains(&input) && entry.contains("\"offset\":1"),
        "processing log entry: {entry}"
    );
    engine.shutdown();
}

#[test]
fn bad_statements_are_rejected_with_clear_errors() {
    let kafka = kafka();
    let mut engine = Engine::new(Backend::Kafka(kafka), BTreeMap::new());
    let err = engine
        .execute_script("CREATE STREAM x (a INT) WITH (KAFKA_TOPIC='t' VALUE_FORMAT='JSON');")
        .unwrap_err();
    assert!(
        err.to_string().contains("line 1:"),
        "parse errors have a position: {err}"
    );
    let err = engine
        .execute_script("SELECT * FROM nowhere EMIT CHANGES;")
        .unwrap_err();
    assert!(err.to_string().contains("NOWHERE does not exist"), "{err}");
    let topic = unique("missing");
    let err = engine
        .execute_script(&format!(
            "CREATE STREAM s (a INT) WITH (KAFKA_TOPIC='{topic}', VALUE_FORMAT='JSON');"
        ))
        .unwrap_err();
    assert!(
        err.to_string().contains("PARTITIONS"),
        "says how to create the topic: {err}"
    );
}

fn runnel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runnel"))
}

#[test]
fn quickstart_runs_from_the_cli() {
    let mut cmd = runnel();
    cmd.args([
        "run",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../sql-examples/quickstart.sql"
        ),
        "--exit",
    ]);
    if let Some(b) = external_bootstrap() {
        cmd.args(["--bootstrap-servers", &b, "--define", "unused=1"]);
    }
    let out = cmd.output().expect("run runnel");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("Created query with ID CSAS_LONG_READS_"),
        "{stdout}"
    );
    assert!(
        stdout.contains("/DOCS/INTRO") && stdout.contains("45.0") && stdout.contains("hn"),
        "{stdout}"
    );
    assert!(
        stdout.contains("/DOCS/SQL") && stdout.contains("direct"),
        "{stdout}"
    );
    assert!(stdout.contains("Limit Reached"), "{stdout}");
}

#[test]
fn cli_reports_bad_sql_with_position_and_fails() {
    let dir = std::env::temp_dir().join(unique("badsql"));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let file = dir.join("bad.sql");
    std::fs::write(
        &file,
        "SHOW STREAMS;\nCREATE STREAM oops (a INT WITH (KAFKA_TOPIC='x');\n",
    )
    .expect("write");
    let mut cmd = runnel();
    cmd.args(["run", file.to_str().expect("utf8 path"), "--exit"]);
    if let Some(b) = external_bootstrap() {
        cmd.args(["--bootstrap-servers", &b]);
    }
    let out = cmd.output().expect("run runnel");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("bad.sql") && stderr.contains("line 2:"),
        "{stderr}"
    );
}

/// Counts per (sensor, 10-second window) computed from the input, as `key bytes → value JSON`.
fn expected_counts(records: &[(String, i64)]) -> BTreeMap<Vec<u8>, String> {
    let mut counts: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for (sensor, ts) in records {
        *counts
            .entry((sensor.clone(), ts - ts % 10_000))
            .or_default() += 1;
    }
    counts
        .into_iter()
        .map(|((sensor, start), n)| {
            let mut key = sensor.into_bytes();
            key.extend_from_slice(&start.to_be_bytes());
            (key, format!("{{\"N\":{n}}}"))
        })
        .collect()
}

/// The latest value of every key of a topic, read until the topic has been idle for a while.
fn latest_values(kafka: &KafkaConfig, topic: &str) -> BTreeMap<Vec<u8>, String> {
    let consumer: BaseConsumer = kafka
        .consumer(&unique("latest"), "earliest")
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut latest = BTreeMap::new();
    let mut idle = Instant::now();
    let started = Instant::now();
    while idle.elapsed() < Duration::from_secs(4) && started.elapsed() < Duration::from_secs(60) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let r = runnel_connect::kafka::record_of(&m);
            latest.insert(r.key.unwrap_or_default(), text(&r.value));
            idle = Instant::now();
        }
    }
    latest
}

fn produce_readings(
    kafka: &KafkaConfig,
    topic: &str,
    from: usize,
    to: usize,
    out: &mut Vec<(String, i64)>,
) {
    let records: Vec<Record> = (from..to)
        .map(|i| {
            let sensor = format!("s{}", i % 7);
            let ts = 1_000_000 + (i as i64) * 37;
            out.push((sensor.clone(), ts));
            Record {
                topic: topic.to_string(),
                partition: (i % 4) as i32,
                key: Some(sensor.into_bytes()),
                value: Some(format!("{{\"T\":{}}}", i % 50).into_bytes()),
                timestamp: ts,
                ..Default::default()
            }
        })
        .collect();
    produce(kafka, &records);
}

/// Kills the engine (SIGKILL) in the middle of a windowed aggregation over a 4-partition topic,
/// restarts it, and checks the final count of every window: the state comes back from the
/// changelog and the input resumes where the state left off, so no update is lost or counted twice.
#[test]
fn windowed_aggregation_survives_sigkill() {
    let kafka = kafka();
    let input = unique("readings");
    let output = unique("counts");
    let service = format!("{}_", unique("svc"));
    kafka.create_topic(&input, 4, 1).expect("input topic");
    let dir = std::env::temp_dir().join(unique("killtest"));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let script = dir.join("agg.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE STREAM readings (sensor STRING KEY, t INT) WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON');\n\
             CREATE TABLE counts WITH (KAFKA_TOPIC='{output}') AS SELECT sensor, COUNT(*) AS n FROM readings \
             WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 1 HOURS) GROUP BY sensor EMIT CHANGES;\n"
        ),
    )
    .expect("write script");
    let start = || {
        runnel()
            .args([
                "run",
                script.to_str().expect("utf8"),
                "--bootstrap-servers",
                &kafka.bootstrap_servers,
            ])
            .args(["--property", &format!("ksql.service.id={service}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start runnel")
    };
    let mut sent = Vec::new();
    produce_readings(&kafka, &input, 0, 3000, &mut sent);
    let mut child = start();
    // Let it get going, then kill it without warning.
    let consumer: BaseConsumer = kafka
        .consumer(&unique("probe"), "earliest")
        .expect("consumer");
    consumer.subscribe(&[output.as_str()]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && consumer.poll(Duration::from_millis(200)).is_none() {}
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    produce_readings(&kafka, &input, 3000, 5000, &mut sent);
    let mut child = start();
    let expected = expected_counts(&sent);
    let mut latest = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        latest = latest_values(&kafka, &output);
        if latest == expected {
            break;
        }
    }
    child.kill().expect("stop");
    let _ = child.wait();
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(k, v)| latest.get(*k) != Some(*v))
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&k[..k.len() - 8]).into_owned(),
                v.clone(),
                latest.get(k).cloned(),
            )
        })
        .take(5)
        .collect();
    assert!(
        wrong.is_empty() && latest.len() == expected.len(),
        "{} windows, wrong: {wrong:?}",
        expected.len()
    );
}

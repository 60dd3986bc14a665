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

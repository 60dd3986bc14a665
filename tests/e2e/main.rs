//! End-to-end tests through Kafka: records go into a topic, statements run, and the output topic
//! is read back byte for byte.
//!
//! They use the embedded broker (librdkafka's mock cluster) by default, and an external broker
//! when `RUNNEL_TEST_BOOTSTRAP` names one (CI points it at tansu). Topic names are unique per
//! test so runs can share a broker.

mod cli;

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
    // Joining the group takes a few seconds; after the first record, 4 idle seconds end the read.
    while (if latest.is_empty() {
        started.elapsed() < Duration::from_secs(30)
    } else {
        idle.elapsed() < Duration::from_secs(4)
    }) && started.elapsed() < Duration::from_secs(90)
    {
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
    // The child process reaches the broker over the network; librdkafka's mock cluster has no
    // CreateTopics API, so create the topics the query needs here.
    kafka.create_topic(&output, 4, 1).expect("output topic");
    let changelog = format!(
        "_confluent-ksql-{service}query_CTAS_COUNTS_0-Aggregate-Aggregate-Materialize-changelog"
    );
    kafka
        .create_topic(&changelog, 1, 1)
        .expect("changelog topic");
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

/// One HTTP/1.1 exchange over a plain socket (`Connection: close`): the status and the body,
/// with chunked transfer encoding undone.
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(90)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("response head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if !chunked {
        return (status, rest.to_string());
    }
    let mut body = String::new();
    let mut rest = rest;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    (status, body)
}

/// `runnel server` on the embedded broker: DDL, INSERT VALUES and a CSAS through `/ksql`,
/// then the CSAS output through a push query on `/query` and on `/query-stream`, plus
/// `/inserts-stream`.
#[test]
fn rest_server_runs_statements_and_push_queries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cmd = runnel();
    cmd.args(["server", "--listeners", &format!("http://127.0.0.1:{port}")]);
    if let Some(b) = external_bootstrap() {
        cmd.args(["--bootstrap-servers", &b]);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start runnel server");
    let result = std::panic::catch_unwind(|| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if up {
                break;
            }
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let (status, info) = http(port, "GET", "/info", "");
        assert_eq!(status, 200, "{info}");
        let info: serde_json::Value = serde_json::from_str(&info).expect("info JSON");
        assert_eq!(info["KsqlServerInfo"]["ksqlServiceId"], "default_");

        let input = unique("rest_in");
        let ksql = format!(
            "CREATE STREAM S (K STRING KEY, V INT) WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON', PARTITIONS=1);\
             INSERT INTO S (K, V) VALUES ('a', 1);\
             INSERT INTO S (K, V) VALUES ('b', 2);\
             INSERT INTO S (K, V) VALUES ('c', 3);\
             CREATE STREAM DOUBLED AS SELECT K, V * 2 AS D FROM S WHERE V > 1;"
        );
        let (status, out) = http(
            port,
            "POST",
            "/ksql",
            &serde_json::json!({"ksql": ksql, "streamsProperties": {}}).to_string(),
        );
        assert_eq!(status, 200, "{out}");
        let out: serde_json::Value = serde_json::from_str(&out).expect("ksql JSON");
        assert_eq!(out.as_array().map(Vec::len), Some(2), "{out}");
        assert_eq!(out[0]["@type"], "currentStatus");
        assert_eq!(out[1]["commandStatus"]["status"], "SUCCESS");
        assert!(out[1]["commandStatus"]["queryId"]
            .as_str()
            .is_some_and(|q| q.starts_with("CSAS_DOUBLED_")));

        let query = serde_json::json!({
            "ksql": "SELECT * FROM DOUBLED EMIT CHANGES LIMIT 2;",
            "streamsProperties": {"auto.offset.reset": "earliest"},
        });
        let (status, out) = http(port, "POST", "/query", &query.to_string());
        assert_eq!(status, 200, "{out}");
        let rows: serde_json::Value = serde_json::from_str(&out).expect("query JSON");
        let rows = rows.as_array().expect("array");
        assert_eq!(rows.len(), 4, "{out}");
        assert_eq!(rows[0]["header"]["schema"], "`K` STRING, `D` INTEGER");
        let mut got: Vec<String> = rows[1..3]
            .iter()
            .map(|r| r["row"]["columns"].to_string())
            .collect();
        got.sort();
        assert_eq!(got, vec![r#"["b",4]"#, r#"["c",6]"#]);
        assert_eq!(rows[3]["finalMessage"], "Limit Reached");

        let (status, out) = http(
            port,
            "POST",
            "/inserts-stream",
            "{\"target\": \"S\"}\n{\"K\": \"d\", \"V\": 5}\n",
        );
        assert_eq!(status, 200, "{out}");
        assert_eq!(out.trim(), r#"{"status":"ok","seq":0}"#);
        let query = serde_json::json!({
            "sql": "SELECT D FROM DOUBLED EMIT CHANGES LIMIT 3;",
            "properties": {"auto.offset.reset": "earliest"},
        });
        let (status, out) = http(port, "POST", "/query-stream", &query.to_string());
        assert_eq!(status, 200, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[0].contains(r#""columnNames":["D"]"#), "{out}");
        let mut values: Vec<&str> = lines[1..].to_vec();
        values.sort();
        assert_eq!(values, vec!["[10]", "[4]", "[6]"]);

        let (status, out) = http(
            port,
            "POST",
            "/ksql",
            r#"{"ksql": "SELECT * FROM S EMIT CHANGES;"}"#,
        );
        assert_eq!(status, 400, "{out}");
        assert!(out.contains("40002"), "{out}");
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// A record the broker cannot take (here: a partition that does not exist) must surface as an
/// error from send or flush, so a query never commits past an output it lost.
#[test]
fn undeliverable_records_are_reported() {
    let kafka = kafka();
    let topic = unique("one_partition");
    kafka.create_topic(&topic, 1, 1).expect("topic");
    let producer = kafka.producer().expect("producer");
    let record = Record {
        topic: topic.clone(),
        partition: 7,
        value: Some(b"lost?".to_vec()),
        timestamp: 1,
        ..Default::default()
    };
    let result = runnel_connect::kafka::send(&producer, &record)
        .and_then(|_| runnel_connect::kafka::flush(&producer));
    assert!(result.is_err(), "sending to a missing partition must fail");
}

/// `CREATE TABLE ... AS SELECT ... FROM <table> GROUP BY`: an update that moves a row to another
/// group retracts it from the old group first, a tombstone retracts only, and an update within a
/// group is one output. The engine is restarted in between, so the retractions after the restart
/// need what each source key contributed, restored from the changelog.
#[test]
fn table_aggregation_retracts_moved_and_deleted_rows_across_a_restart() {
    let kafka = kafka();
    let input = unique("users");
    let output = unique("regions");
    let service = format!("{}_", unique("svc"));
    let script = format!(
        "CREATE TABLE users (id STRING PRIMARY KEY, region STRING, score INT) \
         WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON', PARTITIONS=1);\n\
         CREATE TABLE regions WITH (KAFKA_TOPIC='{output}') AS \
         SELECT region, COUNT(*) AS n, SUM(score) AS total FROM users GROUP BY region;"
    );
    let start = || {
        let mut engine = Engine::new(
            Backend::Kafka(kafka.clone()),
            BTreeMap::from([("ksql.service.id".to_string(), service.clone())]),
        );
        engine.execute_script(&script).expect("table aggregation");
        engine
    };
    let rec = |id: &str, value: Option<&str>| Record {
        topic: input.clone(),
        partition: 0,
        key: Some(id.as_bytes().to_vec()),
        value: value.map(|v| v.as_bytes().to_vec()),
        timestamp: 1_000,
        ..Default::default()
    };
    let shown = |records: &[Record]| -> Vec<String> {
        records
            .iter()
            .map(|r| format!("{}={}", text(&r.key), text(&r.value)))
            .collect()
    };

    let mut engine = start();
    produce(
        &kafka,
        &[
            rec("u1", Some(r#"{"REGION":"east","SCORE":10}"#)),
            rec("u2", Some(r#"{"REGION":"east","SCORE":5}"#)),
            rec("u3", Some(r#"{"REGION":"west","SCORE":1}"#)),
        ],
    );
    assert_eq!(
        shown(&read(&kafka, &output, 3)),
        vec![
            r#"east={"N":1,"TOTAL":10}"#,
            r#"east={"N":2,"TOTAL":15}"#,
            r#"west={"N":1,"TOTAL":1}"#,
        ]
    );
    engine.shutdown();

    let mut engine = start();
    produce(
        &kafka,
        &[
            // u1 moves from east to west: east loses it first, then west gains it.
            rec("u1", Some(r#"{"REGION":"west","SCORE":20}"#)),
            // Deleting u2 empties east; the group stays with a count of 0, as in ksqlDB.
            rec("u2", None),
            // An update within one group is a single change.
            rec("u3", Some(r#"{"REGION":"west","SCORE":2}"#)),
        ],
    );
    let all = read(&kafka, &output, 7);
    assert_eq!(
        shown(&all[3..]),
        vec![
            r#"east={"N":1,"TOTAL":5}"#,
            r#"west={"N":2,"TOTAL":21}"#,
            r#"east={"N":0,"TOTAL":0}"#,
            r#"west={"N":2,"TOTAL":22}"#,
        ]
    );
    engine.shutdown();
}

//! `runnel server` killed without warning and started again: the command topic brings back
//! every stream, table and persistent query, and the queries go on from their committed offsets
//! (and restored state) on the broker, which outlives the server.

use super::{external_bootstrap, http, kafka, latest_values, produce, runnel, text, unique};
use rdkafka::consumer::{BaseConsumer, Consumer};
use runnel_connect::kafka::{KafkaConfig, Record};
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Starts `runnel server` and waits until it accepts connections; the caller kills and waits
/// for it (clippy cannot see that through the return value).
#[allow(clippy::zombie_processes)]
fn start_server(kafka: &KafkaConfig, service: &str, port: u16) -> Child {
    let mut child = runnel()
        .args(["server", "--listeners", &format!("http://127.0.0.1:{port}")])
        .args(["--bootstrap-servers", &kafka.bootstrap_servers])
        .args(["--property", &format!("ksql.service.id={service}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start runnel server");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server did not start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ksql(port: u16, sql: &str) -> Json {
    let (status, out) = http(port, "POST", "/ksql", &json!({ "ksql": sql }).to_string());
    assert_eq!(status, 200, "{sql}: {out}");
    serde_json::from_str(&out).expect("ksql JSON")
}

fn record(topic: &str, key: &str, v: i64) -> Record {
    Record {
        topic: topic.to_string(),
        partition: -1,
        offset: -1,
        timestamp: chrono::Utc::now().timestamp_millis(),
        key: Some(key.as_bytes().to_vec()),
        value: Some(format!("{{\"V\":{v}}}").into_bytes()),
        headers: vec![],
    }
}

/// The values read from `topic` until `expected` are all there (or a deadline passes).
fn values_until(kafka: &KafkaConfig, topic: &str, expected: &BTreeSet<String>) -> Vec<String> {
    let consumer: BaseConsumer = kafka
        .consumer(&unique("check"), "earliest")
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let r = runnel_connect::kafka::record_of(&m);
            seen.push(format!("{}={}", text(&r.key), text(&r.value)));
            if expected.iter().all(|e| seen.contains(e)) {
                break;
            }
        }
    }
    seen
}

fn counts(
    kafka: &KafkaConfig,
    topic: &str,
    expected: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let latest: BTreeMap<String, String> = latest_values(kafka, topic)
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect();
        if latest == *expected || Instant::now() > deadline {
            return latest;
        }
    }
}

#[test]
fn server_restores_catalog_and_queries_after_sigkill() {
    let kafka = kafka();
    let service = format!("{}_", unique("srv"));
    let input = unique("orders");
    let table_topic = unique("users");
    let doubled = unique("doubled");
    let counts_topic = unique("counts");
    let command_topic = format!("_confluent-ksql-{service}_command_topic");
    if external_bootstrap().is_none() {
        // The child reaches the in-process mock cluster over the network, and the mock cluster
        // has no CreateTopics API: create every topic the server needs here.
        for t in [
            &input,
            &table_topic,
            &doubled,
            &counts_topic,
            &command_topic,
        ] {
            kafka.create_topic(t, 1, 1).expect("topic");
        }
        kafka
            .create_topic(
                &format!("_confluent-ksql-{service}query_CTAS_COUNTS_3-Aggregate-Aggregate-Materialize-changelog"),
                1,
                1,
            )
            .expect("changelog topic");
    }
    let port = free_port();
    let mut child = start_server(&kafka, &service, port);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let out = ksql(
            port,
            &format!(
                "CREATE STREAM ORDERS (K STRING KEY, V BIGINT) WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON', PARTITIONS=1);\
                 CREATE TABLE USERS (ID STRING PRIMARY KEY, NAME STRING) WITH (KAFKA_TOPIC='{table_topic}', VALUE_FORMAT='JSON', PARTITIONS=1);\
                 CREATE STREAM DOUBLED WITH (KAFKA_TOPIC='{doubled}') AS SELECT K, V * 2 AS D FROM ORDERS;\
                 CREATE TABLE COUNTS WITH (KAFKA_TOPIC='{counts_topic}') AS SELECT K, COUNT(*) AS N FROM ORDERS GROUP BY K;"
            ),
        );
        let seqs: Vec<&Json> = out
            .as_array()
            .expect("list")
            .iter()
            .map(|e| &e["commandSequenceNumber"])
            .collect();
        assert_eq!(
            seqs,
            vec![&json!(0), &json!(1), &json!(2), &json!(3)],
            "{out}"
        );
        assert_eq!(out[2]["commandStatus"]["queryId"], "CSAS_DOUBLED_2");
        assert_eq!(out[3]["commandStatus"]["queryId"], "CTAS_COUNTS_3");

        produce(
            &kafka,
            &[
                record(&input, "a", 1),
                record(&input, "b", 2),
                record(&input, "a", 3),
            ],
        );
        let first: BTreeSet<String> = ["a={\"D\":2}", "b={\"D\":4}", "a={\"D\":6}"]
            .map(String::from)
            .into();
        let seen = values_until(&kafka, &doubled, &first);
        assert!(
            first.iter().all(|e| seen.contains(e)),
            "before the kill: {seen:?}"
        );
        let expected: BTreeMap<String, String> = [("a", "{\"N\":2}"), ("b", "{\"N\":1}")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        assert_eq!(counts(&kafka, &counts_topic, &expected), expected);

        child.kill().expect("SIGKILL");
        let _ = child.wait();
        // Input that arrives while the server is down.
        produce(&kafka, &[record(&input, "a", 10), record(&input, "c", 20)]);

        let started = Instant::now();
        child = start_server(&kafka, &service, port);
        let restart = started.elapsed();
        let streams = ksql(port, "SHOW STREAMS;");
        let names: BTreeSet<&str> = streams[0]["streams"]
            .as_array()
            .expect("streams")
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        assert_eq!(names, BTreeSet::from(["ORDERS", "DOUBLED"]), "{streams}");
        let tables = ksql(port, "SHOW TABLES;");
        let names: BTreeSet<&str> = tables[0]["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        assert_eq!(names, BTreeSet::from(["USERS", "COUNTS"]), "{tables}");
        let queries = ksql(port, "SHOW QUERIES;");
        let running: BTreeSet<(String, String)> = queries[0]["queries"]
            .as_array()
            .expect("queries")
            .iter()
            .map(|q| {
                (
                    q["id"].as_str().unwrap_or("").to_string(),
                    q["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        assert_eq!(
            running,
            BTreeSet::from([
                ("CSAS_DOUBLED_2".to_string(), "RUNNING".to_string()),
                ("CTAS_COUNTS_3".to_string(), "RUNNING".to_string()),
            ]),
            "{queries}"
        );
        let (status, body) = http(port, "GET", "/status/stream/DOUBLED/create", "");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("CSAS_DOUBLED_2"), "{body}");

        // New input after the restart; the queries resume where they were committed.
        produce(&kafka, &[record(&input, "b", 30)]);
        let all: BTreeSet<String> = [
            "a={\"D\":2}",
            "b={\"D\":4}",
            "a={\"D\":6}",
            "a={\"D\":20}",
            "c={\"D\":40}",
            "b={\"D\":60}",
        ]
        .map(String::from)
        .into();
        let seen = values_until(&kafka, &doubled, &all);
        assert!(
            all.iter().all(|e| seen.contains(e)),
            "after the restart: {seen:?}"
        );
        let expected: BTreeMap<String, String> =
            [("a", "{\"N\":3}"), ("b", "{\"N\":2}"), ("c", "{\"N\":1}")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into();
        assert_eq!(
            counts(&kafka, &counts_topic, &expected),
            expected,
            "counts after restart"
        );

        // New commands continue the sequence.
        let out = ksql(port, "CREATE TYPE ADDRESS AS STRUCT<CITY STRING>;");
        assert_eq!(out[0]["commandSequenceNumber"], 4, "{out}");
        eprintln!(
            "restart to listening: {:?}; DOUBLED records seen: {} (6 distinct expected, at-least-once)",
            restart,
            seen.len()
        );
    }));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

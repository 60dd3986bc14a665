//! End-to-end tests through Kafka: records go into a topic, statements run, and the output topic
//! is read back byte for byte.
//!
//! They use the embedded broker (librdkafka's mock cluster) by default, and an external broker
//! when `RUNNEL_TEST_BOOTSTRAP` names one (CI points it at tansu). Topic names are unique per
//! test so runs can share a broker.

mod cli;
mod latest;
mod server_restart;

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
    // What the engines of a test log goes to its captured output (shown when it fails).
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNNEL_TEST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,runnel_engine=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
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

/// Every update emitted (no record cache), for tests that count them.
const NO_CACHE: &[(&str, &str)] = &[("ksql.streams.cache.max.bytes.buffering", "0")];

/// An engine on `kafka` with service id `service`, its state under `state_dir`, and `extra`
/// properties.
fn kafka_engine(
    kafka: &KafkaConfig,
    service: &str,
    state_dir: &std::path::Path,
    extra: &[(&str, &str)],
) -> Engine {
    let mut properties = BTreeMap::from([
        ("ksql.service.id".to_string(), service.to_string()),
        (
            "ksql.streams.state.dir".to_string(),
            state_dir.display().to_string(),
        ),
    ]);
    properties.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Engine::new(Backend::Kafka(kafka.clone()), properties)
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

/// The binary under test: cargo's, or `RUNNEL_TEST_BIN` (a private copy, for target directories that
/// several checkouts share and so overwrite each other's `debug/runnel`).
fn runnel_bin() -> String {
    std::env::var("RUNNEL_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_runnel").to_string())
}

fn runnel() -> Command {
    Command::new(runnel_bin())
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

/// COUNT and SUM per (sensor, 10-second window) computed from the input, independently of the
/// engine, as `windowed key bytes → value JSON`.
fn expected_windows(records: &[(String, i64, i64)]) -> BTreeMap<Vec<u8>, String> {
    let mut windows: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
    for (sensor, ts, t) in records {
        let w = windows
            .entry((sensor.clone(), ts - ts % 10_000))
            .or_default();
        w.0 += 1;
        w.1 += t;
    }
    windows
        .into_iter()
        .map(|((sensor, start), (n, total))| {
            let mut key = sensor.into_bytes();
            key.extend_from_slice(&start.to_be_bytes());
            (key, format!("{{\"N\":{n},\"TOTAL\":{total}}}"))
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

/// Reads `topic`'s latest values until they are `expected` or `timeout` has passed; returns the
/// last ones read.
fn wait_for_latest(
    kafka: &KafkaConfig,
    topic: &str,
    expected: &BTreeMap<Vec<u8>, String>,
    timeout: Duration,
) -> BTreeMap<Vec<u8>, String> {
    let mut latest = BTreeMap::new();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        latest = latest_values(kafka, topic);
        if latest == *expected {
            break;
        }
    }
    latest
}

/// Waits up to 60 s for the first record of a query's output `topic`: a record, not an error
/// event (the topic may not exist yet), means the query has committed once (outputs are sent
/// at commits).
fn wait_for_first_record(kafka: &KafkaConfig, topic: &str) {
    let consumer: BaseConsumer = kafka
        .consumer(&unique("probe"), "earliest")
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && !matches!(consumer.poll(Duration::from_millis(200)), Some(Ok(_)))
    {}
}

/// Sensor readings `from..to`: 7 sensors over 4 partitions, 37 ms apart; `out` gets
/// (sensor, timestamp, value) of each.
fn produce_readings(
    kafka: &KafkaConfig,
    topic: &str,
    from: usize,
    to: usize,
    out: &mut Vec<(String, i64, i64)>,
) {
    let records: Vec<Record> = (from..to)
        .map(|i| {
            let sensor = format!("s{}", i % 7);
            let ts = 1_000_000 + (i as i64) * 37;
            let t = (i % 50) as i64;
            out.push((sensor.clone(), ts, t));
            // As Kafka's default partitioner writes keyed records: a sensor's readings share a
            // partition, whose task aggregates them (as in Kafka Streams).
            Record {
                topic: topic.to_string(),
                partition: runnel_engine::repartition::partition_for(sensor.as_bytes(), 4),
                key: Some(sensor.into_bytes()),
                value: Some(format!("{{\"T\":{t}}}").into_bytes()),
                timestamp: ts,
                ..Default::default()
            }
        })
        .collect();
    produce(kafka, &records);
}

/// Starts `runnel run script` on `kafka` with `properties` (`name=value`), logging at `rust_log`
/// into `log`: a process the kill tests can SIGKILL.
fn run_script(
    kafka: &KafkaConfig,
    script: &std::path::Path,
    properties: &[String],
    rust_log: &str,
    log: &std::path::Path,
) -> std::process::Child {
    let log = std::fs::File::create(log).expect("log file");
    runnel()
        .args([
            "run",
            script.to_str().expect("utf8"),
            "--bootstrap-servers",
            &kafka.bootstrap_servers,
        ])
        .args(properties.iter().flat_map(|p| ["--property", p.as_str()]))
        .env("RUST_LOG", rust_log)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start runnel")
}

/// The windowed aggregation the kill tests run in `runnel run` children: COUNT and SUM per
/// sensor and 10-second tumbling window (an hour of grace) over a 4-partition topic.
struct WindowedCounts {
    input: String,
    output: String,
    service: String,
    /// The test's directory, holding the script.
    dir: std::path::PathBuf,
    script: std::path::PathBuf,
}

fn windowed_counts_query(kafka: &KafkaConfig, name: &str) -> WindowedCounts {
    let input = unique("readings");
    let output = unique("counts");
    let service = format!("{}_", unique("svc"));
    let changelog = format!(
        "_confluent-ksql-{service}query_CTAS_COUNTS_0-Aggregate-Aggregate-Materialize-changelog"
    );
    // The children reach the broker over the network, where the mock cluster cannot create
    // topics: create every topic the query uses here (the changelog with a partition per input
    // partition, a task's state each).
    for topic in [&input, &output, &changelog] {
        kafka.create_topic(topic, 4, 1).expect("topic");
    }
    let dir = std::env::temp_dir().join(unique(name));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let script = dir.join("agg.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE STREAM readings (sensor STRING KEY, t INT) WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON');\n\
             CREATE TABLE counts WITH (KAFKA_TOPIC='{output}') AS SELECT sensor, COUNT(*) AS n, SUM(t) AS total \
             FROM readings WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 1 HOURS) GROUP BY sensor EMIT CHANGES;\n"
        ),
    )
    .expect("write script");
    WindowedCounts {
        input,
        output,
        service,
        dir,
        script,
    }
}

/// What happens to the local state directory while the engine is down.
#[derive(Debug, Clone, Copy, PartialEq)]
enum StateDir {
    Kept,
    Deleted,
    Corrupted,
}

/// Kills the engine (SIGKILL) in the middle of a windowed aggregation (COUNT and SUM per sensor
/// and tumbling window) over a 4-partition topic, does `state_dir` to its local state store,
/// restarts it and finishes the input, then checks the final value of every window against a
/// count made here: whether the state comes back from the local RocksDB store plus the
/// changelog tail or from the changelog alone, no update is lost or counted twice.
/// `state_memory` sets `runnel.state.memory.max.bytes` (0: every committed group leaves memory
/// at each commit and is read back from the store when updated).
fn windowed_aggregation_survives_sigkill(state_dir: StateDir, state_memory: Option<&str>) {
    let kafka = kafka();
    let WindowedCounts {
        input,
        output,
        service,
        dir,
        script,
    } = windowed_counts_query(&kafka, "killtest");
    let state = dir.join("state");
    let store = state.join(&service).join("CTAS_COUNTS_0");
    // Commits (and so local checkpoints) follow the first outputs closely, so the kill below
    // lands after at least one of them.
    let mut properties = vec![
        format!("ksql.service.id={service}"),
        format!("ksql.streams.state.dir={}", state.display()),
        "ksql.streams.commit.interval.ms=100".to_string(),
    ];
    properties.extend(state_memory.map(|m| format!("runnel.state.memory.max.bytes={m}")));
    let start = |run: u32| {
        run_script(
            &kafka,
            &script,
            &properties,
            "warn,runnel_engine=info,runnel_engine::state=debug",
            &dir.join(format!("run{run}.log")),
        )
    };
    let mut sent = Vec::new();
    produce_readings(&kafka, &input, 0, 2000, &mut sent);
    let mut child = start(1);
    // Let it get going, feed it more while it runs, then kill it without warning.
    wait_for_first_record(&kafka, &output);
    produce_readings(&kafka, &input, 2000, 3500, &mut sent);
    std::thread::sleep(Duration::from_millis(300));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    // A store per input partition (a task each).
    let stores: Vec<_> = (0..4).map(|p| store.join(p.to_string())).collect();
    for s in &stores {
        assert!(
            s.join("CURRENT").exists(),
            "the query keeps its state in {}",
            s.display()
        );
    }
    match state_dir {
        StateDir::Kept => {}
        StateDir::Deleted => std::fs::remove_dir_all(&store).expect("delete the state dir"),
        StateDir::Corrupted => {
            for s in &stores {
                std::fs::write(s.join("CURRENT"), b"not a manifest\n").expect("corrupt")
            }
        }
    }
    produce_readings(&kafka, &input, 3500, 5000, &mut sent);
    let mut child = start(2);
    let expected = expected_windows(&sent);
    let latest = wait_for_latest(&kafka, &output, &expected, Duration::from_secs(120));
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
    // The restart took the path the state directory allows.
    let log = std::fs::read_to_string(dir.join("run2.log")).expect("log");
    let from_store = log.contains("state restored from the local store");
    assert_eq!(
        from_store,
        state_dir == StateDir::Kept,
        "restore path after {state_dir:?}:\n{log}"
    );
    if state_dir == StateDir::Corrupted {
        assert!(log.contains("local state store recreated"), "{log}");
    }
    // With a small bound, groups left memory and came back from the store.
    let dropped = log.contains("dropped from memory")
        || std::fs::read_to_string(dir.join("run1.log"))
            .expect("log")
            .contains("dropped from memory");
    assert_eq!(
        dropped,
        state_memory.is_some(),
        "state memory {state_memory:?}:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn windowed_aggregation_survives_sigkill_with_state_kept() {
    windowed_aggregation_survives_sigkill(StateDir::Kept, None);
}

#[test]
fn windowed_aggregation_survives_sigkill_with_state_kept_and_little_memory() {
    windowed_aggregation_survives_sigkill(StateDir::Kept, Some("0"));
}

#[test]
fn windowed_aggregation_survives_sigkill_with_state_deleted_and_little_memory() {
    windowed_aggregation_survives_sigkill(StateDir::Deleted, Some("0"));
}

#[test]
fn windowed_aggregation_survives_sigkill_with_state_deleted() {
    windowed_aggregation_survives_sigkill(StateDir::Deleted, None);
}

#[test]
fn windowed_aggregation_survives_sigkill_with_state_corrupted() {
    windowed_aggregation_survives_sigkill(StateDir::Corrupted, None);
}

/// A batch that died half-written leaves state records in the changelog without their
/// checkpoint record. The next start writes a restore marker after them, so a later restore from
/// the changelog alone never completes that batch with a later checkpoint (which would bring
/// back the stale values).
/// Two servers share a service id and so a windowed aggregation over a 4-partition topic: each
/// runs the tasks of some partitions. One is killed (SIGKILL) mid-stream; the other takes its
/// partitions over, restores their state from the changelog (it has no local store for them),
/// and goes on: every window's final value is right, nothing lost and nothing counted twice.
#[test]
fn a_killed_servers_tasks_move_to_the_surviving_one() {
    let kafka = kafka();
    let WindowedCounts {
        input,
        output,
        service,
        dir,
        script,
    } = windowed_counts_query(&kafka, "failover");
    let start = |server: u32| {
        let properties = [
            format!("ksql.service.id={service}"),
            format!(
                "ksql.streams.state.dir={}",
                dir.join(format!("state{server}")).display()
            ),
            "ksql.streams.commit.interval.ms=100".to_string(),
        ];
        run_script(
            &kafka,
            &script,
            &properties,
            "warn,runnel_engine=info",
            &dir.join(format!("server{server}.log")),
        )
    };
    // The log without its colours (ANSI escapes between field names and values).
    let log_of = |server: u32| {
        let text =
            std::fs::read_to_string(dir.join(format!("server{server}.log"))).unwrap_or_default();
        let mut plain = String::with_capacity(text.len());
        let mut escape = false;
        for c in text.chars() {
            match (escape, c) {
                (false, '\x1b') => escape = true,
                (false, c) => plain.push(c),
                (true, 'm') => escape = false,
                (true, _) => {}
            }
        }
        plain
    };
    let mut first = start(1);
    let mut second = start(2);
    // Both have joined the query's group once the second has been given tasks.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log_of(2).contains("tasks assigned") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(log_of(2).contains("tasks assigned"), "{}", log_of(2));
    let mut sent = Vec::new();
    produce_readings(&kafka, &input, 0, 2000, &mut sent);
    wait_for_first_record(&kafka, &output);
    produce_readings(&kafka, &input, 2000, 3500, &mut sent);
    std::thread::sleep(Duration::from_millis(300));
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    produce_readings(&kafka, &input, 3500, 5000, &mut sent);
    let expected = expected_windows(&sent);
    let latest = wait_for_latest(&kafka, &output, &expected, Duration::from_secs(120));
    second.kill().expect("stop");
    let _ = second.wait();
    let (log1, log2) = (log_of(1), log_of(2));
    assert_eq!(latest, expected, "server 1:\n{log1}\nserver 2:\n{log2}");
    // The survivor ended with every partition: what it was given (restored: from the changelog,
    // or from its own store when it had run that task before) minus what it gave up.
    let mut owned = std::collections::BTreeSet::new();
    let mut assignments = 0;
    for line in log2.lines() {
        let Some(list) = line
            .split("partitions=[")
            .nth(1)
            .and_then(|rest| rest.split(']').next())
        else {
            continue;
        };
        let partitions = list.split(", ").filter_map(|p| p.parse::<i32>().ok());
        if line.contains("tasks assigned") {
            assignments += 1;
            owned.extend(partitions);
        } else if line.contains("tasks revoked") {
            for p in partitions {
                owned.remove(&p);
            }
        }
    }
    assert_eq!(owned, (0..4).collect(), "{log2}");
    assert!(assignments >= 2, "taken over after the kill: {log2}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A changelog whose partitions do not match the input's (written by an older Runnel, or the
/// input was given more partitions) cannot be split into tasks: the statement fails and says
/// what to do, and nothing is written to it.
#[test]
fn a_changelog_with_other_partitions_is_refused_with_a_clear_error() {
    let kafka = kafka();
    let input = unique("events");
    let service = format!("{}_", unique("svc"));
    let changelog = format!(
        "_confluent-ksql-{service}query_CTAS_PER_KEY_0-Aggregate-Aggregate-Materialize-changelog"
    );
    kafka.create_topic(&input, 4, 1).expect("input");
    kafka.create_topic(&changelog, 1, 1).expect("changelog");
    let dir = std::env::temp_dir().join(unique("mismatch"));
    let mut engine = kafka_engine(&kafka, &service, &dir, &[]);
    engine
        .execute_script(&format!(
            "CREATE STREAM events (k STRING KEY, v INT) WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON');"
        ))
        .expect("stream");
    let err = engine
        .execute_script("CREATE TABLE per_key AS SELECT k, COUNT(*) AS n FROM events GROUP BY k;")
        .expect_err("a changelog with 1 partition for 4 input partitions");
    let message = err.to_string();
    assert!(
        message.contains(&changelog)
            && message.contains("1 partitions")
            && message.contains("has 4")
            && message.contains("delete the changelog topic"),
        "{message}"
    );
    assert!(engine.queries.is_empty(), "no query runs");
    engine.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_half_written_batch_is_never_restored() {
    let kafka = kafka();
    let input = unique("events");
    let output = unique("per_key");
    let service = format!("{}_", unique("svc"));
    let state = std::env::temp_dir().join(unique("halfwritten"));
    let script = format!(
        "CREATE STREAM events (k STRING KEY, v INT) WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON', PARTITIONS=1);\n\
         CREATE TABLE per_key WITH (KAFKA_TOPIC='{output}', PARTITIONS=1) AS \
         SELECT k, COUNT(*) AS n FROM events GROUP BY k EMIT CHANGES;"
    );
    let changelog = format!(
        "_confluent-ksql-{service}query_CTAS_PER_KEY_0-Aggregate-Aggregate-Materialize-changelog"
    );
    let start = || {
        let mut engine = kafka_engine(&kafka, &service, &state, NO_CACHE);
        engine.execute_script(&script).expect("aggregation");
        engine
    };
    let event = |k: &str| Record {
        topic: input.clone(),
        partition: 0,
        key: Some(k.as_bytes().to_vec()),
        value: Some(b"{\"V\":1}".to_vec()),
        timestamp: 1_000,
        ..Default::default()
    };
    let wait_processed = |engine: &Engine, n: u64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        let processed = || {
            engine.queries[0]
                .running
                .as_ref()
                .map(|r| r.stats.processed.load(Ordering::Relaxed))
                .unwrap_or(0)
        };
        while processed() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(processed(), n, "records processed");
    };

    // x is counted to 1 in one batch, then to 3 in another.
    let mut engine = start();
    produce(&kafka, &[event("x")]);
    wait_processed(&engine, 1);
    produce(&kafka, &[event("x"), event("x")]);
    wait_processed(&engine, 3);
    // Readers (pull queries) see the committed state in the query's local store: one group.
    let store = engine.queries[0]
        .task
        .partition_store(0)
        .expect("a local store");
    let deadline = Instant::now() + Duration::from_secs(30);
    let groups = || {
        store
            .scan(runnel_runtime::aggregate::AggregateOperator::STORE_KIND_STATE)
            .map(|e| e.expect("reads").0.key)
            .collect::<Vec<_>>()
    };
    while groups().len() != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let keys = groups();
    assert!(
        keys.len() == 1 && keys[0].windows(1).any(|b| b == b"x"),
        "{keys:?}"
    );
    drop(store);
    engine.shutdown();
    drop(engine);

    // A batch that died half-written: x's old state (count 1) without a checkpoint after it.
    let stale = {
        let consumer: BaseConsumer = kafka
            .consumer(&unique("changelog"), "earliest")
            .expect("consumer");
        consumer
            .subscribe(&[changelog.as_str()])
            .expect("subscribe");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "no state record in {changelog}");
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let r = runnel_connect::kafka::record_of(&m);
                if r.key.as_ref().is_some_and(|k| k.first() != Some(&0)) {
                    break r;
                }
            }
        }
    };
    produce(
        &kafka,
        &[Record {
            topic: changelog.clone(),
            offset: 0,
            ..stale.clone()
        }],
    );

    // A run that commits a later checkpoint (for y only).
    let mut engine = start();
    produce(&kafka, &[event("y")]);
    wait_processed(&engine, 1);
    engine.shutdown();
    drop(engine);

    // Restore from the changelog alone: x must still be 3, so one more x makes 4.
    std::fs::remove_dir_all(&state).expect("delete the state dir");
    let mut engine = start();
    produce(&kafka, &[event("x")]);
    wait_processed(&engine, 1);
    engine.shutdown();
    let outputs: Vec<String> = read(&kafka, &output, 5)
        .iter()
        .map(|r| format!("{}={}", text(&r.key), text(&r.value)))
        .collect();
    assert_eq!(
        outputs,
        vec![
            r#"x={"N":1}"#,
            r#"x={"N":2}"#,
            r#"x={"N":3}"#,
            r#"y={"N":1}"#,
            r#"x={"N":4}"#
        ]
    );
    // The changelog is compacted, which would keep the stale record as x's latest: the restore
    // that discarded it wrote x's committed value again right after it (once: the next restore
    // sees that committed record after the stale one).
    let x_key = stale.key.clone();
    let x_records: Vec<Option<Vec<u8>>> = read_all(&kafka, &changelog, Duration::from_secs(3))
        .into_iter()
        .filter(|r| r.key == x_key)
        .map(|r| r.value)
        .collect();
    let stale_at = x_records
        .iter()
        .rposition(|v| *v == stale.value)
        .expect("the stale record");
    assert!(stale_at >= 1, "{x_records:?}");
    assert_ne!(x_records[stale_at - 1], stale.value, "{x_records:?}");
    assert_eq!(
        x_records.get(stale_at + 1),
        Some(&x_records[stale_at - 1]),
        "the committed value (count 3) follows the stale one: {x_records:?}"
    );
    assert_eq!(
        x_records.len(),
        stale_at + 3,
        "then only x=4: {x_records:?}"
    );
    let _ = std::fs::remove_dir_all(&state);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A local store whose checkpoint is ahead of its changelog (here: another query's store put in
/// its place, as after a changelog topic was deleted and recreated) is not trusted: it is wiped
/// and the state rebuilt from the changelog, so none of its entries leak into the results.
#[test]
fn a_store_ahead_of_its_changelog_is_rebuilt() {
    let kafka = kafka();
    let state = std::env::temp_dir().join(unique("ahead"));
    let run = |service: &str, keys: &[&str]| -> Vec<String> {
        let input = unique("events");
        let output = unique("per_key");
        let mut engine = kafka_engine(&kafka, service, &state, NO_CACHE);
        engine
            .execute_script(&format!(
                "CREATE STREAM events (k STRING KEY, v INT) WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON', PARTITIONS=1);\n\
                 CREATE TABLE per_key WITH (KAFKA_TOPIC='{output}', PARTITIONS=1) AS \
                 SELECT k, COUNT(*) AS n FROM events GROUP BY k EMIT CHANGES;"
            ))
            .expect("aggregation");
        let records: Vec<Record> = keys
            .iter()
            .map(|k| Record {
                topic: input.clone(),
                partition: 0,
                key: Some(k.as_bytes().to_vec()),
                value: Some(b"{\"V\":1}".to_vec()),
                timestamp: 1_000,
                ..Default::default()
            })
            .collect();
        produce(&kafka, &records);
        let out = read(&kafka, &output, keys.len())
            .iter()
            .map(|r| format!("{}={}", text(&r.key), text(&r.value)))
            .collect();
        engine.shutdown();
        out
    };
    let first = format!("{}_", unique("svc"));
    assert_eq!(
        run(&first, &["x", "x", "x"]),
        vec![r#"x={"N":1}"#, r#"x={"N":2}"#, r#"x={"N":3}"#]
    );
    let second = format!("{}_", unique("svc"));
    copy_dir(
        &state.join(&first).join("CTAS_PER_KEY_0"),
        &state.join(&second).join("CTAS_PER_KEY_0"),
    );
    assert_eq!(run(&second, &["x"]), vec![r#"x={"N":1}"#]);
    let _ = std::fs::remove_dir_all(&state);
}

/// Restore time of a windowed aggregation with `RUNNEL_RESTORE_WINDOWS` windows (default
/// 20 000), each updated in `RUNNEL_RESTORE_ROUNDS` rounds (default 1; each round is a pass over
/// all windows, so every round adds one changelog record per window), restarted with its local
/// state store kept and then with it deleted. Prints the figures; run it on its own:
/// `cargo nextest run -p runnel-cli -E 'binary(e2e) & test(restore_time)' --run-ignored only --no-capture`
#[test]
#[ignore = "measurement, not a check"]
fn restore_time_kept_vs_deleted() {
    let windows: usize = std::env::var("RUNNEL_RESTORE_WINDOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rounds: usize = std::env::var("RUNNEL_RESTORE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let kafka = kafka();
    let input = unique("restore_in");
    let output = unique("restore_out");
    let service = format!("{}_", unique("svc"));
    let dir = std::env::temp_dir().join(unique("restore_state"));
    kafka.create_topic(&input, 4, 1).expect("input topic");
    let records: Vec<Record> = (0..windows * rounds)
        .map(|i| i % windows)
        .map(|i| Record {
            topic: input.clone(),
            partition: (i % 4) as i32,
            key: Some(format!("k{}", i % 100).into_bytes()),
            value: Some(format!("{{\"V\":{i}}}").into_bytes()),
            // One window per record: 100 keys, a new 1-second window every 100 records.
            timestamp: 1_000_000 + (i / 100) as i64 * 1_000,
            ..Default::default()
        })
        .collect();
    produce(&kafka, &records);
    let script = format!(
        "CREATE STREAM restore_in (k STRING KEY, v BIGINT) WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON');\n\
         CREATE TABLE restore_out WITH (KAFKA_TOPIC='{output}', PARTITIONS=4) AS SELECT k, COUNT(*) AS n, SUM(v) AS s \
         FROM restore_in WINDOW TUMBLING (SIZE 1 SECOND, GRACE PERIOD 10 DAYS) GROUP BY k EMIT CHANGES;"
    );
    let engine = || kafka_engine(&kafka, &service, &dir, &[]);
    let mut first = engine();
    first.execute_script(&script).expect("aggregation");
    let deadline = Instant::now() + Duration::from_secs(600);
    let processed = |e: &Engine| {
        e.queries[0]
            .running
            .as_ref()
            .map(|r| r.stats.processed.load(Ordering::Relaxed))
            .unwrap_or(0)
    };
    let total = (windows * rounds) as u64;
    while processed(&first) < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(processed(&first), total, "all input processed");
    first.shutdown();
    drop(first);
    let timed = |label: &str| {
        let mut e = engine();
        let started = Instant::now();
        e.execute_script(&script).expect("restart");
        let took = started.elapsed();
        println!("restore with {windows} windows x {rounds} rounds, state dir {label}: {took:?}");
        e.shutdown();
        took
    };
    let kept = timed("kept");
    std::fs::remove_dir_all(&dir).expect("delete the state dir");
    let deleted = timed("deleted");
    println!("restore_time windows={windows} rounds={rounds} kept={kept:?} deleted={deleted:?}");
    let _ = std::fs::remove_dir_all(&dir);
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
    // Its own service id, hence its own command topic: servers sharing a broker (CI's tansu)
    // would otherwise replay each other's statements.
    let service = format!("{}_", unique("rest"));
    let mut cmd = runnel();
    cmd.args(["server", "--listeners", &format!("http://127.0.0.1:{port}")]);
    cmd.args(["--property", &format!("ksql.service.id={service}")]);
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
        assert_eq!(info["KsqlServerInfo"]["ksqlServiceId"], service.as_str());

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

/// A push query on a table through Kafka: a key the table deletes (here a CTAS whose HAVING
/// drops it) arrives on `/query` as ksqlDB's tombstone row (`"tombstone":true`, the key kept,
/// the other columns null), and `/query-stream` drops it as ksqlDB does (counting it towards
/// the LIMIT).
#[test]
fn rest_table_push_queries_send_tombstones() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let service = format!("{}_", unique("tomb"));
    let mut cmd = runnel();
    cmd.args(["server", "--listeners", &format!("http://127.0.0.1:{port}")]);
    cmd.args(["--property", &format!("ksql.service.id={service}")]);
    // Every update of the table is emitted (no record cache): the push query sees the row and
    // then its tombstone, whatever the commit timing.
    cmd.args(["--property", "ksql.streams.cache.max.bytes.buffering=0"]);
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
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let input = unique("tomb_in");
        let sums = unique("tomb_sums").to_uppercase();
        let ksql = format!(
            "CREATE STREAM S (K STRING KEY, V INT) WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON', PARTITIONS=1);\
             CREATE TABLE {sums} AS SELECT K, SUM(V) AS TOTAL FROM S GROUP BY K HAVING SUM(V) > 0;\
             INSERT INTO S (K, V) VALUES ('a', 5);\
             INSERT INTO S (K, V) VALUES ('b', 1);\
             INSERT INTO S (K, V) VALUES ('a', -10);"
        );
        let (status, out) = http(
            port,
            "POST",
            "/ksql",
            &serde_json::json!({"ksql": ksql, "streamsProperties": {"auto.offset.reset": "earliest"}})
                .to_string(),
        );
        assert_eq!(status, 200, "{out}");
        let query = serde_json::json!({
            "ksql": format!("SELECT * FROM {sums} EMIT CHANGES LIMIT 3;"),
            "streamsProperties": {"auto.offset.reset": "earliest"},
        });
        let (status, out) = http(port, "POST", "/query", &query.to_string());
        assert_eq!(status, 200, "{out}");
        let rows: serde_json::Value = serde_json::from_str(&out).expect("query JSON");
        let rows = rows.as_array().expect("array");
        assert_eq!(rows.len(), 5, "{out}");
        assert_eq!(
            rows[0]["header"]["schema"], "`K` STRING, `TOTAL` INTEGER",
            "{out}"
        );
        assert_eq!(
            rows[1],
            serde_json::json!({"row": {"columns": ["a", 5]}}),
            "{out}"
        );
        assert_eq!(
            rows[2],
            serde_json::json!({"row": {"columns": ["b", 1]}}),
            "{out}"
        );
        assert_eq!(
            rows[3],
            serde_json::json!({"row": {"columns": ["a", null], "tombstone": true}}),
            "{out}"
        );
        assert_eq!(rows[4]["finalMessage"], "Limit Reached");
        let query = serde_json::json!({
            "sql": format!("SELECT * FROM {sums} EMIT CHANGES LIMIT 3;"),
            "properties": {"auto.offset.reset": "earliest"},
        });
        let (status, out) = http(port, "POST", "/query-stream", &query.to_string());
        assert_eq!(status, 200, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[1..].to_vec(),
            vec![r#"["a",5]"#, r#"["b",1]"#],
            "{out}"
        );
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
            BTreeMap::from([
                ("ksql.service.id".to_string(), service.clone()),
                // Every update is emitted (no record cache), so the test can count them.
                (
                    "ksql.streams.cache.max.bytes.buffering".to_string(),
                    "0".to_string(),
                ),
            ]),
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

/// Reads every record `topic` receives until it has been quiet for `quiet`.
fn read_all(kafka: &KafkaConfig, topic: &str, quiet: Duration) -> Vec<Record> {
    let consumer: BaseConsumer = kafka
        .consumer(&unique("reader"), "earliest")
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut out = Vec::new();
    let mut last = Instant::now();
    while Instant::now() < deadline && (out.is_empty() || last.elapsed() < quiet) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(runnel_connect::kafka::record_of(&m.detach()));
            last = Instant::now();
        }
    }
    out
}

#[test]
fn record_cache_coalesces_aggregate_updates_per_key() {
    // With ksql.streams.cache.max.bytes.buffering > 0, an aggregation forwards only the latest
    // value of each key per commit (Kafka Streams' record cache; here: per polled batch). The
    // input is in the topic before the query starts, so its polls hold many records each.
    let kafka = kafka();
    let input = unique("clicks");
    let output = unique("click_counts");
    let service = format!("{}_", unique("svc"));
    let mut engine = Engine::new(
        Backend::Kafka(kafka.clone()),
        BTreeMap::from([
            ("ksql.service.id".to_string(), service),
            (
                "ksql.streams.cache.max.bytes.buffering".to_string(),
                "10485760".to_string(),
            ),
        ]),
    );
    engine
        .execute_script(&format!(
            "CREATE STREAM clicks (user STRING KEY, page STRING) \
             WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON', PARTITIONS=1);"
        ))
        .expect("source");
    let users = ["a", "b", "c"];
    let clicks: Vec<Record> = (0..30)
        .map(|i| Record {
            topic: input.clone(),
            partition: 0,
            key: Some(users[i % 3].as_bytes().to_vec()),
            value: Some(br#"{"PAGE":"home"}"#.to_vec()),
            timestamp: 1_000 + i as i64,
            ..Default::default()
        })
        .collect();
    produce(&kafka, &clicks);
    engine
        .execute_script(&format!(
            "CREATE TABLE click_counts WITH (KAFKA_TOPIC='{output}') AS \
             SELECT user, COUNT(*) AS n FROM clicks GROUP BY user;"
        ))
        .expect("aggregation");
    let out = read_all(&kafka, &output, Duration::from_secs(3));
    let shown: Vec<String> = out
        .iter()
        .map(|r| format!("{}={}@{}", text(&r.key), text(&r.value), r.timestamp))
        .collect();
    assert!(
        out.len() < clicks.len(),
        "updates were not coalesced: {shown:?}"
    );
    // Whatever the batches were, each key's latest output is its final count, stamped with
    // its last click.
    let mut latest = BTreeMap::new();
    for r in &out {
        latest.insert(text(&r.key), format!("{}@{}", text(&r.value), r.timestamp));
    }
    assert_eq!(
        latest,
        BTreeMap::from([
            ("a".to_string(), r#"{"N":10}@1027"#.to_string()),
            ("b".to_string(), r#"{"N":10}@1028"#.to_string()),
            ("c".to_string(), r#"{"N":10}@1029"#.to_string()),
        ]),
        "{shown:?}"
    );
}

/// Pull queries through Kafka: a CTAS table and a SOURCE table are materialized by their
/// queries' threads as records arrive; key lookups, scans and a stream pull query see them.
/// The rows of a pull query, each as its values joined by commas, sorted.
fn pull_rows(engine: &mut Engine, sql: &str) -> Vec<String> {
    let mut outputs = engine.execute_script(sql).expect("pull query");
    match outputs.pop() {
        Some(runnel_engine::output::StatementOutput::Pull(p)) => {
            let mut rows: Vec<String> = p
                .rows
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect();
            rows.sort();
            rows
        }
        _ => panic!("not a pull result"),
    }
}

#[test]
fn pull_queries_read_materialized_tables_through_kafka() {
    let kafka = kafka();
    let users = unique("pull_users");
    let out = unique("pull_out");
    let service = format!("{}_", unique("svc"));
    let mut engine = Engine::new(
        Backend::Kafka(kafka.clone()),
        BTreeMap::from([("ksql.service.id".to_string(), service.clone())]),
    );
    let script = format!(
        "CREATE TABLE users (id STRING PRIMARY KEY, score INT) \
             WITH (KAFKA_TOPIC='{users}', VALUE_FORMAT='JSON', PARTITIONS=1);\n\
             CREATE SOURCE TABLE users_src (id STRING PRIMARY KEY, score INT) \
             WITH (KAFKA_TOPIC='{users}', VALUE_FORMAT='JSON');\n\
             CREATE STREAM users_stream (id STRING KEY, score INT) \
             WITH (KAFKA_TOPIC='{users}', VALUE_FORMAT='JSON');\n\
             CREATE TABLE doubled WITH (KAFKA_TOPIC='{out}') AS \
             SELECT id, score * 2 AS twice FROM users;"
    );
    engine.execute_script(&script).expect("statements");
    let rec = |id: &str, value: Option<&str>| Record {
        topic: users.clone(),
        partition: 0,
        key: Some(id.as_bytes().to_vec()),
        value: value.map(|v| v.as_bytes().to_vec()),
        timestamp: 1_000,
        ..Default::default()
    };
    produce(
        &kafka,
        &[
            rec("a", Some(r#"{"SCORE":1}"#)),
            rec("b", Some(r#"{"SCORE":2}"#)),
            rec("a", Some(r#"{"SCORE":3}"#)),
            rec("c", Some(r#"{"SCORE":4}"#)),
            rec("c", None),
        ],
    );
    let pull = pull_rows;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = pull(&mut engine, "SELECT * FROM doubled;");
        let src = pull(&mut engine, "SELECT * FROM users_src;");
        if all == ["a,6", "b,4"] && src == ["a,3", "b,2"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tables not materialized: {all:?} {src:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        pull(&mut engine, "SELECT twice FROM doubled WHERE id = 'a';"),
        ["6"]
    );
    assert!(pull(&mut engine, "SELECT * FROM doubled WHERE id = 'c';").is_empty());
    assert_eq!(
        pull(&mut engine, "SELECT score FROM users_src WHERE score > 2;"),
        ["3"]
    );
    // A stream pull query reads the topic to its end (the tombstone has no value to show).
    assert_eq!(
        pull(&mut engine, "SELECT id, score FROM users_stream;"),
        ["a,1", "a,3", "b,2", "c,4"]
    );
    let err = engine
        .execute_script("SELECT * FROM users;")
        .expect_err("plain tables are not queryable");
    assert!(err.to_string().contains("isn't queryable"), "{err}");
    engine.shutdown();
    drop(engine);

    // A restarted engine resumes the CTAS from its committed offsets and rebuilds the table's
    // state from the sink topic, so pull queries still see every row.
    let mut engine = Engine::new(
        Backend::Kafka(kafka.clone()),
        BTreeMap::from([("ksql.service.id".to_string(), service)]),
    );
    engine
        .execute_script(&script)
        .expect("statements after restart");
    assert_eq!(pull(&mut engine, "SELECT * FROM doubled;"), ["a,6", "b,4"]);
    engine.shutdown();
}

#[test]
fn group_by_a_value_column_repartitions_across_two_engines() {
    // Orders of five regions are spread over the 4 partitions of the input by their order id, so
    // every region arrives on every partition. Two engines share the service id (and so the
    // query's consumer group); the aggregation must still count each region exactly once.
    let kafka = kafka();
    let input = unique("orders");
    let output = unique("region_totals");
    let service = format!("{}_", unique("svc"));
    let dir = std::env::temp_dir().join(unique("repart"));
    let engine = |n: u32| {
        let mut e = kafka_engine(&kafka, &service, &dir.join(format!("engine{n}")), &[]);
        e.execute_script(&format!(
            "CREATE STREAM orders (id STRING KEY, region STRING, amount INT) \
             WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON', PARTITIONS=4);\n\
             CREATE TABLE region_totals WITH (KAFKA_TOPIC='{output}', PARTITIONS=4) AS \
             SELECT region, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY region;"
        ))
        .expect("statements");
        e
    };
    let mut first = engine(1);
    let mut second = engine(2);
    let repartition = format!(
        "_confluent-ksql-{service}query_CTAS_REGION_TOTALS_0-Aggregate-GroupBy-repartition"
    );
    let info = kafka
        .topic(&repartition)
        .expect("metadata")
        .expect("the repartition topic exists");
    assert_eq!(info.partitions, 4, "as many partitions as the source");
    // Let both engines join the query's consumer group before the input arrives.
    std::thread::sleep(Duration::from_secs(8));
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let make_orders =
        |ids: std::ops::Range<usize>, expected: &mut BTreeMap<String, (i64, i64)>| -> Vec<Record> {
            ids.map(|i| {
                let region = format!("r{}", i % 5);
                let amount = (i % 13) as i64;
                let e = expected.entry(region.clone()).or_default();
                e.0 += 1;
                e.1 += amount;
                Record {
                    topic: input.clone(),
                    partition: (i % 4) as i32,
                    key: Some(format!("o{i}").into_bytes()),
                    value: Some(
                        format!("{{\"REGION\":\"{region}\",\"AMOUNT\":{amount}}}").into_bytes(),
                    ),
                    timestamp: 1_000 + i as i64,
                    ..Default::default()
                }
            })
            .collect()
        };
    let orders = make_orders(0..2000, &mut expected);
    produce(&kafka, &orders);
    // A value that does not decode is logged by the GroupBy stage (with its source position) and
    // skipped; one without a region reaches the aggregate stage, which logs it as it always has.
    let bad = |offset_hint: &str, value: &[u8]| Record {
        topic: input.clone(),
        partition: 2,
        key: Some(offset_hint.as_bytes().to_vec()),
        value: Some(value.to_vec()),
        timestamp: 5_000,
        ..Default::default()
    };
    produce(
        &kafka,
        &[
            bad("malformed", b"not json"),
            bad("no-region", br#"{"AMOUNT":1}"#),
        ],
    );
    let expected_now = |expected: &BTreeMap<String, (i64, i64)>| -> BTreeMap<Vec<u8>, String> {
        expected
            .iter()
            .map(|(r, (n, total))| {
                (
                    r.clone().into_bytes(),
                    format!("{{\"N\":{n},\"TOTAL\":{total}}}"),
                )
            })
            .collect()
    };
    let wait_for = |expected: &BTreeMap<Vec<u8>, String>| {
        let latest = wait_for_latest(&kafka, &output, expected, Duration::from_secs(90));
        assert_eq!(latest, *expected);
    };
    let counts = expected_now(&expected);
    wait_for(&counts);
    // The engines split the aggregate stage too (a task per repartition partition, each in one
    // engine): together they aggregated every order and the one without a region exactly once,
    // and each did part of it.
    let processed = |e: &Engine| {
        e.queries[0]
            .running
            .as_ref()
            .map(|r| r.stats.processed.load(Ordering::Relaxed))
            .unwrap_or(0)
    };
    let (mine, theirs) = (processed(&first), processed(&second));
    assert_eq!(mine + theirs, orders.len() as u64 + 1, "{mine} + {theirs}");
    assert!(mine > 0 && theirs > 0, "{mine} + {theirs}");
    // Each order went through the repartition topic once, keyed by its region, on the partition
    // Kafka's default (murmur2) partitioner picks for that key, with the order's timestamp.
    // One entry from the GroupBy stage that read the malformed record, one from the aggregate
    // stage that owns the missing region's partition.
    let log: Vec<String> = read(&kafka, &format!("{service}ksql_processing_log"), 2)
        .iter()
        .map(|r| text(&r.value))
        .collect();
    assert!(
        log.iter().any(|e| e.contains(&input)
            && e.contains("\"partition\":2")
            && e.contains("Failed to deserialize value")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|e| e.contains("Group-by column with index 0 resolved to null")),
        "{log:?}"
    );
    let mut repartitioned = read_all(&kafka, &repartition, Duration::from_secs(3));
    // The null-region order went through (on its source partition, with its source key).
    let no_region = repartitioned
        .iter()
        .position(|r| text(&r.key) == "no-region")
        .expect("the order without a region is passed on");
    assert_eq!(repartitioned.remove(no_region).partition, 2);
    // At least once: a member whose partitions move while its commit is refused (librdkafka's
    // mock cluster refuses commits during a rebalance) leaves the new owner to write that batch
    // again. The aggregate stage skips such repeats by source position: the exact counts above
    // prove it. Every copy must be routed like the first.
    assert!(repartitioned.len() >= orders.len());
    let mut java = kafka.clone();
    java.properties
        .insert("partitioner".into(), "murmur2_random".into());
    let probe_topic = unique("probe");
    kafka.create_topic(&probe_topic, 4, 1).expect("probe topic");
    let probe = java.producer().expect("producer");
    for r in (0..5).map(|i| format!("r{i}")) {
        runnel_connect::kafka::send(
            &probe,
            &Record {
                topic: probe_topic.clone(),
                partition: -1,
                key: Some(r.clone().into_bytes()),
                value: Some(b"x".to_vec()),
                ..Default::default()
            },
        )
        .expect("send");
    }
    runnel_connect::kafka::flush(&probe).expect("flush");
    let partition_of: BTreeMap<String, i32> = read(&kafka, &probe_topic, 5)
        .into_iter()
        .map(|r| (text(&r.key), r.partition))
        .collect();
    let by_id: BTreeMap<String, &Record> = orders.iter().map(|o| (text(&o.key), o)).collect();
    let mut seen = std::collections::BTreeSet::new();
    for r in &repartitioned {
        let region = text(&r.key);
        assert_eq!(Some(&r.partition), partition_of.get(&region), "{r:?}");
        // The order's own key travels in a header, so the aggregating stage decodes the order
        // exactly as it was written.
        let id = r
            .headers
            .iter()
            .find(|(k, _)| k == "__runnel_source_key")
            .map(|(_, v)| text(v))
            .unwrap_or_default();
        let order = by_id
            .get(&id)
            .unwrap_or_else(|| panic!("no order for {r:?}"));
        assert_eq!(r.timestamp, order.timestamp, "{r:?}");
        assert_eq!(r.value, order.value, "{r:?}");
        seen.insert(id);
    }
    assert_eq!(seen.len(), orders.len(), "every order is repartitioned");
    // Both stop; one comes back (from its local store and the changelog) while more orders
    // arrive, and resumes both stages where they were: nothing lost, nothing counted twice.
    first.shutdown();
    // The second engine's members rebalance when the first's leave; let that finish before they
    // leave too (tansu keeps a member that leaves in the middle of a join, and a new member then
    // waits for it until the rebalance timeout; Kafka does not).
    std::thread::sleep(Duration::from_secs(8));
    // Having taken the first engine's tasks over, the second answers pull queries on all the
    // regions, those it did not aggregate itself included.
    let all_regions: Vec<String> = expected
        .iter()
        .map(|(r, (n, total))| format!("{r},{n},{total}"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rows = pull_rows(&mut second, "SELECT * FROM region_totals;");
    while rows != all_regions && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        rows = pull_rows(&mut second, "SELECT * FROM region_totals;");
    }
    assert_eq!(rows, all_regions);
    second.shutdown();
    drop((first, second));
    let more = make_orders(2000..2600, &mut expected);
    produce(&kafka, &more);
    // What a GroupBy stage killed between writing a batch and committing its source offsets
    // leaves behind: the batch again, in the same partitions. It must not be counted twice.
    let repeats: Vec<Record> = repartitioned[repartitioned.len() - 300..]
        .iter()
        .map(|r| Record {
            offset: -1,
            ..r.clone()
        })
        .collect();
    produce(&kafka, &repeats);
    let mut again = engine(1);
    wait_for(&expected_now(&expected));
    again.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kills (SIGKILL) an engine running a GROUP BY on a value column while both of its stages are
/// busy, restarts it, and checks every group's final count and sum: the aggregate stage resumes
/// the repartition topic from its checkpoint and the GroupBy stage the source from its commit.
/// (A kill rarely lands between a GroupBy batch's acknowledgement and its commit; the repeats
/// such a kill leaves are checked deterministically by
/// `group_by_a_value_column_repartitions_across_two_engines`.)
#[test]
fn repartitioned_aggregation_survives_sigkill() {
    repartitioned_aggregation_survives_sigkill_case(false);
}

/// The same with 10-second tumbling windows: the aggregate stage's windows and its stream clock
/// (every source partition's stream time) come back after the kill, so no window loses or
/// double-counts an update and none is closed early.
#[test]
fn repartitioned_windowed_aggregation_survives_sigkill() {
    repartitioned_aggregation_survives_sigkill_case(true);
}

fn repartitioned_aggregation_survives_sigkill_case(windowed: bool) {
    let kafka = kafka();
    let input = unique("readings");
    let output = unique("sensor_counts");
    let service = format!("{}_", unique("svc"));
    let internal = |suffix: &str| format!("_confluent-ksql-{service}query_CTAS_COUNTS_0-{suffix}");
    // The child reaches the broker over the network, and the mock cluster cannot create topics
    // that way: create every topic the query uses here.
    for (topic, partitions) in [
        (input.clone(), 4),
        (output.clone(), 4),
        (internal("Aggregate-GroupBy-repartition"), 4),
        (internal("Aggregate-Aggregate-Materialize-changelog"), 4),
    ] {
        kafka.create_topic(&topic, partitions, 1).expect("topic");
    }
    let dir = std::env::temp_dir().join(unique("repartkill"));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let script = dir.join("agg.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE STREAM readings (id STRING KEY, sensor STRING, t INT) WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON');\n\
             CREATE TABLE counts WITH (KAFKA_TOPIC='{output}') AS SELECT sensor, COUNT(*) AS n, SUM(t) AS total \
             FROM readings {window} GROUP BY sensor EMIT CHANGES;\n",
            window = if windowed {
                "WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 1 HOURS)"
            } else {
                ""
            }
        ),
    )
    .expect("write script");
    let properties = [
        format!("ksql.service.id={service}"),
        format!("ksql.streams.state.dir={}", dir.join("state").display()),
    ];
    let start = |run: u32| {
        run_script(
            &kafka,
            &script,
            &properties,
            "warn,runnel_engine=info",
            &dir.join(format!("run{run}.log")),
        )
    };
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    // (sensor, timestamp, value) of every reading, for the windowed counts.
    let mut sent: Vec<(String, i64, i64)> = Vec::new();
    let mut feed = |ids: std::ops::Range<usize>| {
        let records: Vec<Record> = ids
            .map(|i| {
                let sensor = format!("s{}", i % 7);
                let t = (i % 50) as i64;
                let e = expected.entry(sensor.clone()).or_default();
                e.0 += 1;
                e.1 += t;
                // Windowed: 7 ms apart, so the 5000 readings span four 10-second windows.
                let timestamp = 1_000_000 + i as i64 * if windowed { 7 } else { 1 };
                sent.push((sensor.clone(), timestamp, t));
                Record {
                    topic: input.clone(),
                    partition: (i % 4) as i32,
                    key: Some(format!("id{i}").into_bytes()),
                    value: Some(format!("{{\"SENSOR\":\"{sensor}\",\"T\":{t}}}").into_bytes()),
                    timestamp,
                    ..Default::default()
                }
            })
            .collect();
        produce(&kafka, &records);
    };
    feed(0..2000);
    let mut child = start(1);
    wait_for_first_record(&kafka, &output);
    feed(2000..3500);
    std::thread::sleep(Duration::from_millis(300));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    feed(3500..5000);
    let mut child = start(2);
    let expected: BTreeMap<Vec<u8>, String> = if windowed {
        expected_windows(&sent)
    } else {
        expected
            .into_iter()
            .map(|(s, (n, total))| (s.into_bytes(), format!("{{\"N\":{n},\"TOTAL\":{total}}}")))
            .collect()
    };
    let latest = wait_for_latest(&kafka, &output, &expected, Duration::from_secs(120));
    child.kill().expect("stop");
    let _ = child.wait();
    assert_eq!(latest, expected);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn windowed_emit_final_by_a_value_column_over_partitions() {
    // Orders of three regions spread over 4 partitions by order id, in 10-second tumbling
    // windows: each region's final count per window comes out once, though every region
    // arrives on every source partition, and all of them are in the topic before the query
    // starts (a backlog read partition by partition must not make any of them late).
    let kafka = kafka();
    let input = unique("orders");
    let output = unique("final_counts");
    let service = format!("{}_", unique("svc"));
    let mut engine = kafka_engine(
        &kafka,
        &service,
        &std::env::temp_dir().join(unique("final")),
        &[],
    );
    engine
        .execute_script(&format!(
            "CREATE STREAM orders (id STRING KEY, region STRING) \
             WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON', PARTITIONS=4);"
        ))
        .expect("stream");
    // 600 orders, one every 100 ms of event time: windows [10 s, 20 s) .. [60 s, 70 s). Then
    // one more order per region and partition at 71 s, so every partition's stream time passes
    // every window's end (and no window is past its retention yet).
    let mut expected: BTreeMap<(String, i64), i64> = BTreeMap::new();
    let mut orders: Vec<Record> = (0..600)
        .map(|i| {
            let region = format!("r{}", i % 3);
            let ts = 10_000 + i as i64 * 100;
            *expected
                .entry((region.clone(), ts / 10_000 * 10_000))
                .or_default() += 1;
            Record {
                topic: input.clone(),
                partition: i % 4,
                key: Some(format!("o{i}").into_bytes()),
                value: Some(format!("{{\"REGION\":\"{region}\"}}").into_bytes()),
                timestamp: ts,
                ..Default::default()
            }
        })
        .collect();
    for p in 0..4 {
        for r in 0..3 {
            orders.push(Record {
                topic: input.clone(),
                partition: p,
                key: Some(format!("late-{p}-{r}").into_bytes()),
                value: Some(format!("{{\"REGION\":\"r{r}\"}}").into_bytes()),
                timestamp: 71_000,
                ..Default::default()
            });
        }
    }
    produce(&kafka, &orders);
    engine
        .execute_script(
            "CREATE TABLE final_counts WITH (KAFKA_TOPIC='OUTPUT', PARTITIONS=4, FORMAT='JSON') AS \
             SELECT region, COUNT(*) AS n FROM orders \
             WINDOW TUMBLING (SIZE 10 SECONDS, RETENTION 1 HOURS, GRACE PERIOD 0 SECONDS) \
             GROUP BY region EMIT FINAL;"
                .replace("OUTPUT", &output)
                .as_str(),
        )
        .expect("aggregation");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut got: BTreeMap<(String, i64), i64> = BTreeMap::new();
    let mut rows = vec![];
    while Instant::now() < deadline && got != expected {
        rows = read_all(&kafka, &output, Duration::from_secs(3));
        got.clear();
        for r in &rows {
            // A windowed JSON key: the region's JSON, then the window start (8 bytes).
            let key = r.key.clone().unwrap_or_default();
            let (region, start) = key.split_at(key.len().saturating_sub(8));
            let region: String = serde_json::from_slice(region).expect("region");
            let start = i64::from_be_bytes(start.try_into().expect("window start"));
            let value: serde_json::Value =
                serde_json::from_slice(r.value.as_deref().unwrap_or_default()).expect("value");
            got.insert((region, start), value["N"].as_i64().expect("count"));
        }
    }
    assert_eq!(got, expected);
    // EMIT FINAL: once per region and window.
    assert_eq!(rows.len(), expected.len(), "{rows:?}");
    engine.shutdown();
}

/// Orders for the windowed repartition tests, in the order each source partition holds them:
/// 480 orders of three regions over 4 partitions by order id, one every 100 ms of event time
/// from 10 s (so partitions interleave), and in every partition, after its 50th order, one
/// order 2.5 s older than the partition's newest (late, but within a grace of 2 s or more) and
/// one 15 s older (beyond any grace of 5 s or less). Returns (partition, region, timestamp)
/// per order, and the records.
fn orders_with_late_ones(input: &str) -> (Vec<(i32, String, i64)>, Vec<Record>) {
    let mut orders: Vec<(i32, String, i64)> = Vec::new();
    for i in 0..480usize {
        let partition = (i % 4) as i32;
        orders.push((partition, format!("r{}", i % 3), 10_000 + i as i64 * 100));
        if i / 4 == 49 {
            let newest = 10_000 + i as i64 * 100;
            let region = format!("r{}", partition % 3);
            orders.push((partition, region.clone(), newest - 2_500));
            orders.push((partition, region, newest - 15_000));
        }
    }
    let records = orders
        .iter()
        .enumerate()
        .map(|(n, (partition, region, ts))| Record {
            topic: input.to_string(),
            partition: *partition,
            key: Some(format!("o{n}").into_bytes()),
            value: Some(format!("{{\"REGION\":\"{region}\"}}").into_bytes()),
            timestamp: *ts,
            ..Default::default()
        })
        .collect();
    (orders, records)
}

/// ksqlDB's result for `orders` read one source partition at a time (a single-partition source
/// gives exactly this): per source partition, in its order, stream time is the largest
/// timestamp so far; an order counts in each of its windows (`size`, `advance`) whose end plus
/// `grace` is still after that time. Returns the counts per (region, window start), and how
/// many orders no window took (each is logged as late).
fn windowed_counts(
    orders: &[(i32, String, i64)],
    size: i64,
    advance: i64,
    grace: i64,
) -> (BTreeMap<(String, i64), i64>, usize) {
    let mut stream_time: BTreeMap<i32, i64> = BTreeMap::new();
    let mut counts = BTreeMap::new();
    let mut late = 0;
    for (partition, region, ts) in orders {
        let now = stream_time.entry(*partition).or_insert(i64::MIN);
        *now = (*now).max(*ts);
        let mut taken = false;
        let mut start = (ts - size + advance).max(0) / advance * advance;
        while start <= *ts {
            if start + size > *ts && start + size + grace > *now {
                *counts.entry((region.clone(), start)).or_insert(0) += 1;
                taken = true;
            }
            start += advance;
        }
        late += usize::from(!taken);
    }
    (counts, late)
}

/// Counts per (region, window start) in the latest output records of a windowed aggregation
/// with a JSON key and an `N` column, and how many records there were.
fn windowed_output(kafka: &KafkaConfig, topic: &str) -> (BTreeMap<(String, i64), i64>, usize) {
    let rows = read_all(kafka, topic, Duration::from_secs(3));
    let mut got = BTreeMap::new();
    for r in &rows {
        // A windowed JSON key: the region's JSON, then the window start (8 bytes).
        let key = r.key.clone().unwrap_or_default();
        let (region, start) = key.split_at(key.len().saturating_sub(8));
        let region: String = serde_json::from_slice(region).expect("region");
        let start = i64::from_be_bytes(start.try_into().expect("window start"));
        let value: serde_json::Value =
            serde_json::from_slice(r.value.as_deref().unwrap_or_default()).expect("value");
        got.insert((region, start), value["N"].as_i64().expect("count"));
    }
    (got, rows.len())
}

/// A windowed aggregation by a value column over a 4-partition backlog with late orders,
/// through the repartition topic; returns its engine, output topic and processing-log topic.
fn windowed_backlog_query(
    kafka: &KafkaConfig,
    records: impl FnOnce(&str) -> Vec<Record>,
    window: &str,
    emit: &str,
) -> (Engine, String, String) {
    let input = unique("orders");
    let output = unique("window_counts");
    let service = format!("{}_", unique("svc"));
    let mut engine = kafka_engine(
        kafka,
        &service,
        &std::env::temp_dir().join(unique("windows")),
        &[],
    );
    engine
        .execute_script(&format!(
            "CREATE STREAM orders (id STRING KEY, region STRING) \
             WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON', PARTITIONS=4);"
        ))
        .expect("stream");
    // Every order is in the topic before the query starts.
    produce(kafka, &records(&input));
    engine
        .execute_script(&format!(
            "CREATE TABLE window_counts WITH (KAFKA_TOPIC='{output}', PARTITIONS=4, FORMAT='JSON') AS \
             SELECT region, COUNT(*) AS n FROM orders WINDOW {window} GROUP BY region {emit};"
        ))
        .expect("aggregation");
    (engine, output, format!("{service}ksql_processing_log"))
}

#[test]
fn windowed_emit_changes_by_a_value_column_over_partitions_with_late_records() {
    // Tumbling windows with EMIT CHANGES: the latest count of every (region, window) is the
    // count of the orders that were not late in their own source partition, however the
    // partitions' backlogs interleave in the repartition topic; the orders beyond grace are
    // dropped and logged, those within grace count.
    let kafka = kafka();
    let mut orders = vec![];
    let (mut engine, output, log) = windowed_backlog_query(
        &kafka,
        |input| {
            let (o, records) = orders_with_late_ones(input);
            orders = o;
            records
        },
        "TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 5 SECONDS)",
        "EMIT CHANGES",
    );
    let (expected, late) = windowed_counts(&orders, 10_000, 10_000, 5_000);
    assert_eq!(late, 4, "one order per partition is beyond grace");
    let within: i64 = expected.values().sum();
    assert_eq!(within as usize, orders.len() - 4, "the others all count");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut got = BTreeMap::new();
    while Instant::now() < deadline && got != expected {
        got = windowed_output(&kafka, &output).0;
    }
    assert_eq!(got, expected);
    let log: Vec<String> = read(&kafka, &log, late)
        .iter()
        .map(|r| text(&r.value))
        .collect();
    assert!(
        log.iter()
            .all(|e| e.contains("Skipping record for expired window")),
        "{log:?}"
    );
    engine.shutdown();
}

#[test]
fn windowed_hopping_emit_final_by_a_value_column_over_partitions_with_late_records() {
    // Hopping windows with EMIT FINAL: once every source partition is read, each window that
    // stream time has closed comes out once, with the count of the orders not late in their own
    // source partition (one beyond grace per partition is dropped: both of its windows closed).
    let kafka = kafka();
    let mut orders = vec![];
    let (mut engine, output, log) = windowed_backlog_query(
        &kafka,
        |input| {
            let (o, records) = orders_with_late_ones(input);
            orders = o;
            records
        },
        "HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS, RETENTION 1 HOURS, GRACE PERIOD 2 SECONDS)",
        "EMIT FINAL",
    );
    let (counts, late) = windowed_counts(&orders, 10_000, 5_000, 2_000);
    assert_eq!(late, 4, "one order per partition is beyond grace");
    // Stream time ends at the newest order of all; windows whose end plus grace it has not
    // reached stay open.
    let end = orders.iter().map(|o| o.2).max().unwrap_or_default();
    let expected: BTreeMap<(String, i64), i64> = counts
        .into_iter()
        .filter(|((_, start), _)| start + 10_000 + 2_000 <= end)
        .collect();
    assert!(expected.len() > 20, "{expected:?}");
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut got, mut rows) = (BTreeMap::new(), 0);
    while Instant::now() < deadline && got != expected {
        (got, rows) = windowed_output(&kafka, &output);
    }
    assert_eq!(got, expected);
    assert_eq!(rows, expected.len(), "one result per window");
    let log: Vec<String> = read(&kafka, &log, late)
        .iter()
        .map(|r| text(&r.value))
        .collect();
    assert!(
        log.iter()
            .all(|e| e.contains("Skipping record for expired window")),
        "{log:?}"
    );
    engine.shutdown();
}

#[test]
fn repartitioned_windows_of_one_partition_match_ksqldb() {
    // Two of ksqlDB's own EMIT FINAL cases (suppress.json: "should drop out of order event after
    // window end plus grace period passes", "should support final results for hopping windows"),
    // grouped by a value column so they go through the repartition topic, with timestamps moved
    // 1000 ms on (Kafka clients cannot write timestamp 0): from one source partition the
    // results, late drops and window closing included, are ksqlDB's expected outputs.
    let kafka = kafka();
    let service = format!("{}_", unique("svc"));
    let mut engine = kafka_engine(
        &kafka,
        &service,
        &std::env::temp_dir().join(unique("ksqlcases")),
        &[],
    );
    let cases = [
        (
            "TUMBLING (SIZE 2 MILLISECONDS, GRACE PERIOD 1 MILLISECONDS)",
            vec![0, 1, 2, 1, 0, 5, 0],
            vec![(2, 1, (2, 4))],
        ),
        (
            "HOPPING (SIZE 5 MILLISECONDS, ADVANCE BY 2 MILLISECONDS, GRACE PERIOD 1 MILLISECONDS)",
            vec![0, 1, 2, 1, 6, 5, 10],
            // Moved on, the first order also falls in window [-4, 1), which ksqlDB's case
            // cannot have (no window starts before 0); by the same rules it closes when stream
            // time reaches exactly its end plus grace (2) and comes out first.
            vec![(0, 1, (-4, 1)), (2, 4, (0, 5)), (6, 2, (4, 9))],
        ),
    ];
    let mut outputs = vec![];
    for (n, (window, inputs, _)) in cases.iter().enumerate() {
        let input = unique("input");
        let output = unique("output");
        engine
            .execute_script(&format!(
                "CREATE STREAM input{n} (id STRING KEY, grp STRING) \
                 WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON', PARTITIONS=1);\n\
                 CREATE TABLE output{n} WITH (KAFKA_TOPIC='{output}', FORMAT='JSON') AS \
                 SELECT grp, COUNT(*) AS count FROM input{n} WINDOW {window} \
                 GROUP BY grp EMIT FINAL;"
            ))
            .expect("statements");
        let records: Vec<Record> = inputs
            .iter()
            .enumerate()
            .map(|(i, ts)| Record {
                topic: input.clone(),
                partition: 0,
                key: Some(format!("id{i}").into_bytes()),
                value: Some(br#"{"GRP":"k1"}"#.to_vec()),
                timestamp: 1_000 + ts,
                ..Default::default()
            })
            .collect();
        produce(&kafka, &records);
        outputs.push(output);
    }
    for ((_, _, expected), output) in cases.iter().zip(&outputs) {
        let expected: Vec<(i64, i64, (i64, i64))> = expected
            .iter()
            .map(|(ts, count, (start, end))| (1_000 + ts, *count, (1_000 + start, 1_000 + end)))
            .collect();
        let rows = read(&kafka, output, expected.len());
        let got: Vec<(i64, i64, (i64, i64))> = rows
            .iter()
            .map(|r| {
                let key = r.key.clone().unwrap_or_default();
                let (group, start) = key.split_at(key.len().saturating_sub(8));
                assert_eq!(group, br#""k1""#);
                let start = i64::from_be_bytes(start.try_into().expect("window start"));
                let value: serde_json::Value =
                    serde_json::from_slice(r.value.as_deref().unwrap_or_default()).expect("value");
                let size = if output == &outputs[0] { 2 } else { 5 };
                (
                    r.timestamp,
                    value["COUNT"].as_i64().expect("count"),
                    (start, start + size),
                )
            })
            .collect();
        assert_eq!(got, expected);
        // Nothing more comes (each window once, the others lost to retention as in ksqlDB).
        let all = read_all(&kafka, output, Duration::from_secs(3));
        assert_eq!(all.len(), expected.len(), "{all:?}");
    }
    engine.shutdown();
}

#[test]
fn windowed_session_emit_final_by_a_value_column_over_partitions_with_late_records() {
    // Session windows (gap 3 s, grace 5 s) with EMIT FINAL over a 4-partition backlog: orders
    // come in 2-second bursts 10 s apart, so each region has one session per burst, made of
    // orders from every partition. Each partition, after its fifth burst, holds an order from
    // the second burst's time (its session closed long ago in that partition: dropped) and one
    // a second older than the partition's newest (it joins the open session).
    let kafka = kafka();
    let (gap, grace) = (3_000, 5_000);
    let mut orders: Vec<(i32, String, i64)> = vec![];
    for burst in 0..6i64 {
        for j in 0..20i64 {
            let i = burst * 20 + j;
            let partition = (i % 4) as i32;
            orders.push((
                partition,
                format!("r{}", i % 3),
                10_000 + burst * 10_000 + j * 100,
            ));
        }
        if burst == 4 {
            for p in 0..4 {
                let newest = orders
                    .iter()
                    .filter(|o| o.0 == p)
                    .map(|o| o.2)
                    .max()
                    .unwrap_or_default();
                let region = format!("r{}", p % 3);
                orders.push((p, region.clone(), 20_500));
                orders.push((p, region, newest - 1_000));
            }
        }
    }
    let records = |input: &str| -> Vec<Record> {
        orders
            .iter()
            .enumerate()
            .map(|(n, (partition, region, ts))| Record {
                topic: input.to_string(),
                partition: *partition,
                key: Some(format!("o{n}").into_bytes()),
                value: Some(format!("{{\"REGION\":\"{region}\"}}").into_bytes()),
                timestamp: *ts,
                ..Default::default()
            })
            .collect()
    };
    let (mut engine, output, log) = windowed_backlog_query(
        &kafka,
        records,
        "SESSION (3 SECONDS, RETENTION 1 HOURS, GRACE PERIOD 5 SECONDS)",
        "EMIT FINAL",
    );
    // An order is late when its partition's stream time (itself included) is past its time
    // plus gap and grace (here no late order is near another session, so what it would have
    // merged with does not matter); the others make sessions by region, merged within the gap.
    let mut stream_time: BTreeMap<i32, i64> = BTreeMap::new();
    let mut kept: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut late = 0;
    for (partition, region, ts) in &orders {
        let now = stream_time.entry(*partition).or_insert(i64::MIN);
        *now = (*now).max(*ts);
        if ts + gap + grace < *now {
            late += 1;
        } else {
            kept.entry(region.clone()).or_default().push(*ts);
        }
    }
    assert_eq!(late, 4, "one order per partition is beyond grace");
    let end_of_input = orders.iter().map(|o| o.2).max().unwrap_or_default();
    let mut expected: BTreeMap<(String, i64, i64), i64> = BTreeMap::new();
    for (region, mut times) in kept {
        times.sort();
        let mut session: Option<(i64, i64, i64)> = None;
        for ts in times.into_iter().chain([i64::MAX]) {
            match session.as_mut() {
                Some((_, end, n)) if ts != i64::MAX && ts - *end <= gap => {
                    *end = ts;
                    *n += 1;
                }
                _ => {
                    if let Some((start, end, n)) = session.take() {
                        // EMIT FINAL: out once stream time is past end + gap + grace.
                        if end + gap + grace < end_of_input {
                            expected.insert((region.clone(), start, end), n);
                        }
                    }
                    session = Some((ts, ts, 1));
                }
            }
        }
    }
    assert_eq!(
        expected.len(),
        15,
        "5 closed bursts × 3 regions: {expected:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut got, mut rows) = (BTreeMap::new(), vec![]);
    while Instant::now() < deadline && got != expected {
        rows = read_all(&kafka, &output, Duration::from_secs(3));
        got.clear();
        for r in &rows {
            // A session key: the region's JSON, the session's end, then its start (8 bytes each).
            let key = r.key.clone().unwrap_or_default();
            let (region, window) = key.split_at(key.len().saturating_sub(16));
            let region: String = serde_json::from_slice(region).expect("region");
            let end = i64::from_be_bytes(window[..8].try_into().expect("end"));
            let start = i64::from_be_bytes(window[8..].try_into().expect("start"));
            let value: serde_json::Value =
                serde_json::from_slice(r.value.as_deref().unwrap_or_default()).expect("value");
            got.insert((region, start, end), value["N"].as_i64().expect("count"));
        }
    }
    assert_eq!(got, expected);
    assert_eq!(rows.len(), expected.len(), "one result per session");
    let log: Vec<String> = read(&kafka, &log, late)
        .iter()
        .map(|r| text(&r.value))
        .collect();
    assert!(
        log.iter()
            .all(|e| e.contains("Skipping record for expired session")),
        "{log:?}"
    );
    engine.shutdown();
}

#[test]
fn windowed_emit_final_by_a_value_column_closes_windows_despite_empty_partitions() {
    // Orders on two of four source partitions only: the empty ones (read to their end at once)
    // must not hold the windows open, so every window stream time has passed comes out.
    let kafka = kafka();
    let mut expected: BTreeMap<(String, i64), i64> = BTreeMap::new();
    let (mut engine, output, _) = windowed_backlog_query(
        &kafka,
        |input| {
            (0..200usize)
                .map(|i| {
                    let region = format!("r{}", i % 3);
                    let ts = 10_000 + i as i64 * 100;
                    *expected
                        .entry((region.clone(), ts / 10_000 * 10_000))
                        .or_default() += 1;
                    Record {
                        topic: input.to_string(),
                        partition: (i % 2) as i32,
                        key: Some(format!("o{i}").into_bytes()),
                        value: Some(format!("{{\"REGION\":\"{region}\"}}").into_bytes()),
                        timestamp: ts,
                        ..Default::default()
                    }
                })
                .collect()
        },
        "TUMBLING (SIZE 10 SECONDS, RETENTION 1 HOURS, GRACE PERIOD 0 SECONDS)",
        "EMIT FINAL",
    );
    // The last order is at 29.9 s: [10 s, 20 s) is closed, [20 s, 30 s) is not.
    expected.retain(|(_, start), _| *start == 10_000);
    assert_eq!(expected.len(), 3);
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut got, mut rows) = (BTreeMap::new(), 0);
    while Instant::now() < deadline && got != expected {
        (got, rows) = windowed_output(&kafka, &output);
    }
    assert_eq!(got, expected);
    assert_eq!(rows, expected.len(), "one result per window");
    engine.shutdown();
}

//! `auto.offset.reset=latest` starts a query at the end of its input as it is when the query is
//! created: records written right after CREATE ... AS SELECT, or right after a push query has
//! started, are processed, however long the consumer group takes to form; records written
//! before are not.

use super::{kafka, produce, read, text, unique};
use runnel_connect::kafka::Record;
use runnel_engine::output::StatementOutput;
use runnel_engine::{Backend, Engine};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[test]
fn latest_starts_where_the_input_ends_when_the_query_is_created() {
    let kafka = kafka();
    let input = unique("latest_in");
    let output = unique("latest_out");
    let mut engine = Engine::new(
        Backend::Kafka(kafka.clone()),
        BTreeMap::from([
            ("ksql.service.id".to_string(), format!("{}_", unique("svc"))),
            ("auto.offset.reset".to_string(), "latest".to_string()),
        ]),
    );
    engine
        .execute_script(&format!(
            "CREATE STREAM s (k STRING KEY, v INT) \
             WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON', PARTITIONS=2);"
        ))
        .expect("create stream");
    let rec = |partition: i32, v: i32| Record {
        topic: input.clone(),
        partition,
        key: Some(format!("k{v}").into_bytes()),
        value: Some(format!("{{\"V\":{v}}}").into_bytes()),
        timestamp: 1_000 + i64::from(v),
        ..Default::default()
    };
    produce(&kafka, &[rec(0, 1), rec(1, 2)]);
    engine
        .execute_script(&format!(
            "CREATE STREAM o WITH (KAFKA_TOPIC='{output}') AS SELECT * FROM s;"
        ))
        .expect("csas");
    let push = engine
        .execute_script("SELECT v FROM s EMIT CHANGES LIMIT 2;")
        .expect("push query")
        .pop();
    let Some(StatementOutput::Push(push)) = push else {
        panic!("expected a push query");
    };
    // Written at once, before either query's consumer could have joined a group.
    produce(&kafka, &[rec(0, 3), rec(1, 4)]);
    let mut got: Vec<String> = read(&kafka, &output, 2)
        .iter()
        .map(|r| text(&r.value))
        .collect();
    got.sort();
    assert_eq!(got, vec![r#"{"V":3}"#, r#"{"V":4}"#]);
    let mut pushed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while pushed.len() < 2 && Instant::now() < deadline {
        if let Ok(row) = push.rows.recv_timeout(Duration::from_millis(200)) {
            pushed.push(format!("{:?}", row.values));
        }
    }
    pushed.sort();
    assert_eq!(pushed, vec!["[Int(3)]", "[Int(4)]"]);
    engine.shutdown();
}

//! `runnel test --rest`: ksqlDB's REST query-validation tests (RQTT,
//! `rest-query-validation-tests/*.json`) against a live in-process REST server.
//!
//! Each case gets a fresh in-memory engine behind a real HTTP server on a local port, and runs as
//! ksqlDB's `RestTestExecutor` does: topics are created, the non-query statements are posted
//! together to `/ksql`, the inputs are produced, then each SELECT is posted to `/query` and its
//! streamed `StreamedRow` array is read. With `inputConditions.waitForActivePushQuery` the inputs
//! are only produced once the push query is running. The deterministic driver then moves the
//! persistent queries (and the push queries) along, so the outcome never depends on timing.
//! With `--kafka` the engine runs on a broker instead and the runner waits for the persistent
//! queries to catch up before each SELECT (see `rest_kafka`); everything else is shared, so both
//! modes judge a case the same way.
//!
//! Expected responses match partially (only the keys given; `key|starts_with` for prefixes;
//! `{STATEMENT}` is the statement's text), query rows match as a multiset, and an expected error
//! is matched on HTTP status, `@type` and a message substring. Output topics are compared as in
//! the QTT runner.

use super::execute::{
    base_config, check_outputs, create_topics, encode_inputs, output_topics, Outcome,
    TimestampCheck,
};
use super::json::Json;
use super::kafka::KafkaSettings;
use super::model::{self, TestCase, TestFile};
use super::rest_kafka;
use runnel_connect::kafka::KafkaConfig;
use runnel_engine::{driver, Engine};
use runnel_server::Server;
use serde_json::Value as JsonValue;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

/// One RQTT case: the QTT parts plus what the REST runner checks.
#[derive(Debug, Clone, Default)]
pub struct RestCase {
    pub case: TestCase,
    /// Expected responses, one per statement (may be fewer).
    pub responses: Vec<JsonValue>,
    pub expected_error: Option<JsonValue>,
    pub wait_for_push_query: bool,
}

fn to_serde(j: &Json) -> JsonValue {
    serde_json::from_str(&j.to_string()).unwrap_or(JsonValue::Null)
}

/// Reads an RQTT file: its cases, expanded by `format`.
pub fn load_file(path: &Path) -> Result<(String, Vec<RestCase>), model::LoadError> {
    let TestFile { file, cases } = model::load_file(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| model::LoadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let doc = Json::parse(&text).map_err(|source| model::LoadError::Json {
        path: path.display().to_string(),
        source,
    })?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut by_name: BTreeMap<String, &Json> = BTreeMap::new();
    for node in doc.get("tests").and_then(Json::as_array).unwrap_or(&[]) {
        if let Some(name) = node.get("name").and_then(Json::as_str) {
            by_name.insert(format!("{stem} - {name}"), node);
        }
    }
    let mut out = Vec::new();
    for case in cases {
        // Expanded names carry a ` - FORMAT` suffix.
        let node = by_name.get(&case.name).copied().or_else(|| {
            by_name
                .iter()
                .filter(|(n, _)| case.name.starts_with(&format!("{n} - ")))
                .max_by_key(|(n, _)| n.len())
                .map(|(_, node)| *node)
        });
        let Some(node) = node else {
            continue;
        };
        let responses = node
            .get("responses")
            .and_then(Json::as_array)
            .map(|r| r.iter().map(to_serde).collect())
            .unwrap_or_default();
        let expected_error = node.get("expectedError").map(to_serde);
        let wait_for_push_query = node
            .get("inputConditions")
            .and_then(|c| c.get("waitForActivePushQuery"))
            .and_then(Json::as_bool)
            .unwrap_or(false);
        out.push(RestCase {
            case,
            responses,
            expected_error,
            wait_for_push_query,
        });
    }
    Ok((file, out))
}

/// Whether a statement goes to `/query` (ksqlDB's runner splits on SELECT / PRINT).
fn is_query(statement: &str) -> bool {
    let t = statement.trim_start().to_ascii_uppercase();
    t.starts_with("SELECT") || t.starts_with("PRINT")
}

/// A response of the server: its status and body.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    body: JsonValue,
}

/// One HTTP call, with a body in JSON.
fn post(base: &str, path: &str, body: &JsonValue) -> Result<Reply, String> {
    let result = ureq::post(&format!("{base}{path}"))
        .timeout(Duration::from_secs(30))
        .set("Accept", "application/vnd.ksql.v1+json")
        .send_string(&body.to_string());
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("POST {path}: {e}")),
    };
    let status = response.status();
    let text = response
        .into_string()
        .map_err(|e| format!("POST {path}: cannot read the response: {e}"))?;
    let body = serde_json::from_str(&text)
        .map_err(|e| format!("POST {path}: the response is not JSON ({e}): {text}"))?;
    Ok(Reply { status, body })
}

/// Splits a streamed `/query` response into its JSON elements as they arrive.
#[derive(Default)]
struct ElementReader {
    buffer: String,
}

impl ElementReader {
    /// Appends text and returns every element completed by it.
    fn push(&mut self, text: &str) -> Result<Vec<JsonValue>, String> {
        self.buffer.push_str(text);
        let mut out = Vec::new();
        loop {
            let start = self
                .buffer
                .find(|c: char| !matches!(c, '[' | ']' | ',' | ' ' | '\n' | '\r' | '\t'))
                .unwrap_or(self.buffer.len());
            self.buffer.drain(..start);
            if self.buffer.is_empty() {
                return Ok(out);
            }
            let mut stream =
                serde_json::Deserializer::from_str(&self.buffer).into_iter::<JsonValue>();
            match stream.next() {
                Some(Ok(v)) => {
                    let used = stream.byte_offset();
                    self.buffer.drain(..used);
                    out.push(v);
                }
                Some(Err(e)) if e.is_eof() => return Ok(out),
                Some(Err(e)) => return Err(format!("bad query response: {e}")),
                None => return Ok(out),
            }
        }
    }
}

/// Posts a query to `/query` and reads its streamed elements until the response ends, `wanted`
/// elements have arrived, or nothing arrives for `quiet`.
fn query(
    base: &str,
    sql: &str,
    properties: &JsonValue,
    wanted: Option<usize>,
    quiet: Duration,
) -> Result<Reply, String> {
    let body = serde_json::json!({"ksql": sql, "streamsProperties": properties});
    let agent = ureq::AgentBuilder::new().timeout_read(quiet).build();
    let result = agent
        .post(&format!("{base}/query"))
        .set("Accept", "application/vnd.ksql.v1+json")
        .send_string(&body.to_string());
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(status, r)) => {
            let text = r.into_string().unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(JsonValue::String(text));
            return Ok(Reply { status, body });
        }
        Err(e) => return Err(format!("POST /query: {e}")),
    };
    let status = response.status();
    let mut reader = response.into_reader();
    let mut elements = ElementReader::default();
    let mut items = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        if wanted.is_some_and(|w| items.len() >= w) {
            break;
        }
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                pending.extend_from_slice(&chunk[..n]);
                // Only whole UTF-8 characters are parsed.
                let valid = match std::str::from_utf8(&pending) {
                    Ok(_) => pending.len(),
                    Err(e) => e.valid_up_to(),
                };
                let text: String = String::from_utf8_lossy(&pending[..valid]).into_owned();
                pending.drain(..valid);
                items.extend(elements.push(&text)?);
            }
            // A push query without LIMIT never ends: what arrived is the answer.
            Err(_) => break,
        }
    }
    Ok(Reply {
        status,
        body: JsonValue::Array(items),
    })
}

/// Runs one RQTT case: on an in-memory engine, or through Kafka with `kafka`.
pub fn run_case(rc: &RestCase, kafka: Option<&KafkaSettings>) -> Outcome {
    match run(rc, kafka) {
        Ok(()) => Outcome::Passed,
        Err(o) => o,
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, Outcome> {
    Err(Outcome::Failed(message.into()))
}

/// Server-side settings of ksqlDB's REST test server on top of the QTT runner's.
fn server_config() -> BTreeMap<String, String> {
    let mut config = base_config();
    config.insert("ksql.query.pull.table.scan.enabled".into(), "true".into());
    config.insert("ksql.query.push.v2.enabled".into(), "true".into());
    config
}

/// Where the case's engine runs.
enum Backing<'a> {
    /// In memory, moved along by the deterministic driver.
    Memory,
    /// On a broker, queries on their own threads.
    Kafka {
        kafka: KafkaConfig,
        settings: &'a KafkaSettings,
    },
}

impl Backing<'_> {
    /// How long a streamed response may stay silent before what arrived is taken as the answer
    /// (a push query without LIMIT never ends by itself).
    fn quiet(&self) -> Duration {
        match self {
            Backing::Memory => Duration::from_secs(3),
            Backing::Kafka { .. } => Duration::from_secs(6),
        }
    }
}

fn run(rc: &RestCase, kafka: Option<&KafkaSettings>) -> Result<(), Outcome> {
    let (engine, kafka_run) = match kafka {
        None => (Engine::in_memory(server_config()), None),
        Some(settings) => {
            let (engine, run) = rest_kafka::start(rc, settings, server_config())?;
            (engine, Some((run, settings)))
        }
    };
    let (rc, backing) = match &kafka_run {
        None => (rc, Backing::Memory),
        Some((run, settings)) => (
            &run.case,
            Backing::Kafka {
                kafka: run.kafka.clone(),
                settings,
            },
        ),
    };
    let server = Server::new(engine, "rqtt".into());
    let result = serve_and_exchange(rc, &server, &backing);
    if let Some((run, _)) = &kafka_run {
        rest_kafka::finish(&server.engine(), &run.kafka, rc, &run.state_dir);
    }
    result
}

fn serve_and_exchange(rc: &RestCase, server: &Server, backing: &Backing) -> Result<(), Outcome> {
    let case = &rc.case;
    {
        let engine = server.engine();
        let mut engine = engine.lock().unwrap_or_else(|e| e.into_inner());
        create_topics(&mut engine, case, 1)
            .map_err(|e| Outcome::Failed(format!("cannot create topics: {e}")))?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Outcome::Failed(format!("cannot start a runtime: {e}")))?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| Outcome::Failed(format!("cannot listen: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Outcome::Failed(e.to_string()))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = server.clone();
    runtime.spawn(async move {
        let _ = serving
            .serve(listener, async {
                let _ = stop_rx.await;
            })
            .await;
    });
    let base = format!("http://{addr}");
    let result = exchange(rc, server, &base, backing);
    let _ = stop_tx.send(());
    server.state().stop_push_queries();
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

/// Produces the case's inputs, then runs the driver (memory) or waits until the persistent
/// queries have processed them (Kafka).
fn produce_inputs(server: &Server, case: &TestCase, backing: &Backing) -> Result<(), Outcome> {
    let engine = server.engine();
    {
        let mut engine = engine.lock().unwrap_or_else(|e| e.into_inner());
        let records = encode_inputs(&engine, case)?;
        engine
            .produce(records)
            .map_err(|e| Outcome::Failed(format!("cannot write inputs: {e}")))?;
        if let Backing::Memory = backing {
            driver::run_to_completion(&mut engine)
                .map_err(|e| Outcome::Failed(format!("processing failed: {e}")))?;
            return Ok(());
        }
    }
    if let Backing::Kafka { kafka, settings } = backing {
        // Without the engine's lock: the server keeps answering meanwhile.
        rest_kafka::wait_caught_up(&engine, kafka, settings.output_timeout)
            .map_err(Outcome::Failed)?;
    }
    Ok(())
}

/// The records of the case's expected output topics.
fn read_output_topics(server: &Server, case: &TestCase, backing: &Backing) -> Result<(), Outcome> {
    let engine = server.engine();
    let engine = engine.lock().unwrap_or_else(|e| e.into_inner());
    match backing {
        Backing::Memory => {
            let outputs: BTreeMap<String, Vec<runnel_connect::kafka::Record>> = output_topics(case)
                .into_iter()
                .map(|t| {
                    let records = match &engine.backend {
                        runnel_engine::Backend::Memory(topics) => {
                            topics.get(t).map(|x| x.records.clone()).unwrap_or_default()
                        }
                        runnel_engine::Backend::Kafka(_) => Vec::new(),
                    };
                    (t.to_string(), records)
                })
                .collect();
            check_outputs(&engine, case, &outputs, TimestampCheck::Exact).map_err(Outcome::Failed)
        }
        Backing::Kafka { kafka, settings } => {
            if case.outputs.is_empty() {
                return Ok(());
            }
            let outputs = super::kafka::read_outputs(&engine, case, kafka, settings)
                .map_err(|e| Outcome::Failed(format!("cannot read outputs: {e}")))?;
            // Kafka clients cannot write a timestamp of 0 (see `kafka::ineligible`).
            check_outputs(&engine, case, &outputs, TimestampCheck::UnlessZero)
                .map_err(Outcome::Failed)
        }
    }
}

/// What an expected error and an error reply have to agree on.
fn check_error(expected: &JsonValue, reply: &Reply) -> Result<(), String> {
    if let Some(status) = expected.get("status").and_then(JsonValue::as_u64) {
        if status != u64::from(reply.status) {
            return Err(format!(
                "expected status {status} but got {}: {}",
                reply.status, reply.body
            ));
        }
    }
    let message = reply
        .body
        .get("message")
        .and_then(JsonValue::as_str)
        .unwrap_or("");
    if let Some(m) = expected.get("message").and_then(JsonValue::as_str) {
        if !message.contains(m) {
            return Err(format!(
                "expected an error containing {m:?} but got {message:?}"
            ));
        }
    }
    if let Some(t) = expected.get("type").and_then(JsonValue::as_str) {
        if t.ends_with("KsqlStatementErrorMessage")
            && reply.body.get("@type").and_then(JsonValue::as_str) != Some("statement_error")
        {
            return Err(format!("expected a statement error but got {}", reply.body));
        }
    }
    Ok(())
}

/// Ends the case on an error reply: passed when it is the expected error.
fn on_error(rc: &RestCase, reply: &Reply, what: &str) -> Result<(), Outcome> {
    match &rc.expected_error {
        Some(expected) => check_error(expected, reply).map_err(Outcome::Failed),
        None => {
            let message = reply
                .body
                .get("message")
                .and_then(JsonValue::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| reply.body.to_string());
            let unsupported = message.contains("not supported yet");
            let first = message.lines().next().unwrap_or("").to_string();
            if unsupported {
                Err(Outcome::Skipped(first))
            } else {
                fail(format!("{what} failed ({}): {first}", reply.status))
            }
        }
    }
}

fn exchange(rc: &RestCase, server: &Server, base: &str, backing: &Backing) -> Result<(), Outcome> {
    let case = &rc.case;
    let properties = JsonValue::Object(
        case.properties
            .iter()
            .map(|(k, v)| (k.clone(), JsonValue::String(v.clone())))
            .collect(),
    );
    let (queries, admin): (Vec<&String>, Vec<&String>) =
        case.statements.iter().partition(|s| is_query(s));
    let mut actual: Vec<JsonValue> = Vec::new();
    if !admin.is_empty() {
        let sql = admin
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let reply = post(
            base,
            "/ksql",
            &serde_json::json!({"ksql": sql, "streamsProperties": properties}),
        )
        .map_err(Outcome::Failed)?;
        if reply.status != 200 {
            return on_error(rc, &reply, "/ksql");
        }
        for entity in reply.body.as_array().cloned().unwrap_or_default() {
            actual.push(serde_json::json!({ "admin": entity }));
        }
    }
    let expected_elements = |i: usize| -> Option<usize> {
        rc.responses
            .get(i)
            .and_then(|r| r.get("query"))
            .and_then(JsonValue::as_array)
            .map(Vec::len)
    };
    if rc.wait_for_push_query && !queries.is_empty() {
        // Start the (push) query, wait until it runs, then produce the inputs.
        let index = admin_count_responses(rc, admin.len());
        let wanted = expected_elements(index);
        let sql = queries[0].clone();
        let base_owned = base.to_string();
        let props = properties.clone();
        let quiet = backing.quiet();
        let handle = std::thread::spawn(move || query(&base_owned, &sql, &props, wanted, quiet));
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.state().running_push_queries().is_empty() && Instant::now() < deadline {
            if handle.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        produce_inputs(server, case, backing)?;
        let reply = handle
            .join()
            .map_err(|_| Outcome::Failed("the query thread panicked".into()))?
            .map_err(Outcome::Failed)?;
        if reply.status != 200 {
            return on_error(rc, &reply, queries[0]);
        }
        actual.push(serde_json::json!({ "query": reply.body }));
        for q in &queries[1..] {
            let wanted = expected_elements(actual.len());
            let reply =
                query(base, q, &properties, wanted, backing.quiet()).map_err(Outcome::Failed)?;
            if reply.status != 200 {
                return on_error(rc, &reply, q);
            }
            actual.push(serde_json::json!({ "query": reply.body }));
        }
    } else {
        produce_inputs(server, case, backing)?;
        for q in &queries {
            let wanted = expected_elements(actual.len());
            let reply =
                query(base, q, &properties, wanted, backing.quiet()).map_err(Outcome::Failed)?;
            if reply.status != 200 {
                return on_error(rc, &reply, q);
            }
            actual.push(serde_json::json!({ "query": reply.body }));
        }
    }
    if let Some(expected) = &rc.expected_error {
        return fail(format!(
            "expected an error ({expected}) but every request succeeded"
        ));
    }
    read_output_topics(server, case, backing)?;
    check_responses(&rc.responses, &actual, &case.statements).map_err(Outcome::Failed)
}

/// The number of responses the admin statements produce (the query responses follow them).
fn admin_count_responses(rc: &RestCase, admin_statements: usize) -> usize {
    // Statements that return no entity (INSERT VALUES, SET, ...) have no response; the expected
    // list has one per entity, so the first query response follows the admin ones.
    rc.responses
        .iter()
        .take_while(|r| r.get("admin").is_some())
        .count()
        .min(admin_statements)
}

/// Compares expected responses (a prefix) with the actual ones.
fn check_responses(
    expected: &[JsonValue],
    actual: &[JsonValue],
    statements: &[String],
) -> Result<(), String> {
    if actual.len() < expected.len() {
        return Err(format!(
            "expected {} responses but got {}: {}",
            expected.len(),
            actual.len(),
            JsonValue::Array(actual.to_vec())
        ));
    }
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        let statement = statements.get(i).map(String::as_str).unwrap_or("");
        if let (Some(e), Some(a)) = (e.get("query"), a.get("query")) {
            compare_query(e, a, statement).map_err(|why| format!("response {}: {why}", i + 1))?;
        } else if let (Some(e), Some(a)) = (e.get("admin"), a.get("admin")) {
            partial_match(e, a, statement, "admin")
                .map_err(|why| format!("response {}: {why}", i + 1))?;
        } else {
            return Err(format!("response {}: expected {e} but got {a}", i + 1));
        }
    }
    Ok(())
}

/// A query response: same length, non-row elements in order, rows as a multiset.
fn compare_query(expected: &JsonValue, actual: &JsonValue, statement: &str) -> Result<(), String> {
    let e = expected.as_array().cloned().unwrap_or_default();
    let a = actual.as_array().cloned().unwrap_or_default();
    if e.len() != a.len() {
        return Err(format!(
            "expected {} elements but got {}:\n    expected: {}\n    actual:   {}",
            e.len(),
            a.len(),
            expected,
            actual
        ));
    }
    let is_row = |v: &JsonValue| v.get("row").is_some();
    let mut unmatched: Vec<&JsonValue> = a.iter().filter(|v| is_row(v)).collect();
    for (ei, ai) in e.iter().zip(&a) {
        if !is_row(ei) {
            partial_match(ei, ai, statement, "query")?;
        }
    }
    for er in e.iter().filter(|v| is_row(v)) {
        match unmatched
            .iter()
            .position(|ar| partial_match(er, ar, statement, "row").is_ok())
        {
            Some(p) => {
                unmatched.remove(p);
            }
            None => return Err(format!("no row matches {er}\n    actual: {actual}")),
        }
    }
    Ok(())
}

fn numbers_equal(e: &serde_json::Number, a: &serde_json::Number) -> bool {
    match (e.as_i64(), a.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => match (e.as_f64(), a.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() < 1e-9 * x.abs().max(1.0),
            _ => false,
        },
    }
}

/// Partial match: only the expected object's keys are compared (`key|starts_with` compares a
/// prefix); arrays match element by element; `{STATEMENT}` stands for the statement's text.
fn partial_match(
    expected: &JsonValue,
    actual: &JsonValue,
    statement: &str,
    path: &str,
) -> Result<(), String> {
    let differ = || Err(format!("{path}: expected {expected} but got {actual}"));
    match (expected, actual) {
        (JsonValue::Object(e), JsonValue::Object(a)) => {
            for (k, ev) in e {
                if let Some(field) = k.strip_suffix("|starts_with") {
                    let prefix = ev.as_str().unwrap_or("").replace("{STATEMENT}", statement);
                    match a.get(field).and_then(JsonValue::as_str) {
                        Some(text) if text.starts_with(&prefix) => continue,
                        _ => return differ(),
                    }
                }
                let Some(av) = a.get(k) else {
                    return Err(format!("{path}.{k}: missing in {actual}"));
                };
                partial_match(ev, av, statement, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (JsonValue::Array(e), JsonValue::Array(a)) => {
            if e.len() != a.len() {
                return differ();
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                partial_match(ev, av, statement, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (JsonValue::String(e), JsonValue::String(a)) => {
            if e.replace("{STATEMENT}", statement) == *a {
                Ok(())
            } else {
                differ()
            }
        }
        (JsonValue::Number(e), JsonValue::Number(a)) if numbers_equal(e, a) => Ok(()),
        (e, a) if e == a => Ok(()),
        _ => differ(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn streamed_elements_are_split_as_they_complete() {
        let mut r = ElementReader::default();
        let first = r
            .push("[{\"header\":{\"queryId\":\"q\"}},\n{\"row\":")
            .unwrap();
        assert_eq!(first, vec![json!({"header": {"queryId": "q"}})]);
        let rest = r
            .push("{\"columns\":[1]}},\n{\"finalMessage\":\"Limit Reached\"}]\n")
            .unwrap();
        assert_eq!(
            rest,
            vec![
                json!({"row": {"columns": [1]}}),
                json!({"finalMessage": "Limit Reached"})
            ]
        );
        assert!(r.push("{oops}").is_err());
    }

    #[test]
    fn responses_match_partially_and_rows_as_a_multiset() {
        let expected = vec![
            json!({"admin": {"@type": "currentStatus", "statementText": "{STATEMENT}"}}),
            json!({"query": [{"header": {"schema": "`A` INT"}}, {"row": {"columns": [1]}}, {"row": {"columns": [2.5]}}]}),
        ];
        let actual = vec![
            json!({"admin": {"@type": "currentStatus", "statementText": "CREATE X;", "commandId": "c"}}),
            json!({"query": [{"header": {"queryId": "q1", "schema": "`A` INT"}}, {"row": {"columns": [2.5]}}, {"row": {"columns": [1]}}]}),
        ];
        let statements = vec!["CREATE X;".to_string(), "SELECT 1;".to_string()];
        assert!(check_responses(&expected, &actual, &statements).is_ok());
        let wrong = vec![
            actual[0].clone(),
            json!({"query": [{"header": {"schema": "`A` INT"}}, {"row": {"columns": [3]}}, {"row": {"columns": [1]}}]}),
        ];
        assert!(check_responses(&expected, &wrong, &statements).is_err());
        let short = vec![
            actual[0].clone(),
            json!({"query": [{"header": {"schema": "`A` INT"}}, {"row": {"columns": [1]}}]}),
        ];
        assert!(check_responses(&expected, &short, &statements).is_err());
        let prefix = json!({"header": {"queryId|starts_with": "transient_"}});
        assert!(partial_match(
            &prefix,
            &json!({"header": {"queryId": "transient_X_1"}}),
            "",
            "q"
        )
        .is_ok());
        assert!(
            partial_match(&prefix, &json!({"header": {"queryId": "query_1"}}), "", "q").is_err()
        );
    }

    #[test]
    fn expected_errors_check_status_type_and_message() {
        let expected = json!({"type": "io.confluent.ksql.rest.entity.KsqlStatementErrorMessage", "message": "isn't queryable", "status": 400});
        let reply = Reply {
            status: 400,
            body: json!({"@type": "statement_error", "message": "The `X` table isn't queryable."}),
        };
        assert!(check_error(&expected, &reply).is_ok());
        let generic = Reply {
            status: 400,
            body: json!({"@type": "generic_error", "message": "The `X` table isn't queryable."}),
        };
        assert!(check_error(&expected, &generic).is_err());
        let other = Reply {
            status: 500,
            body: json!({"@type": "statement_error", "message": "The `X` table isn't queryable."}),
        };
        assert!(check_error(&expected, &other).is_err());
    }
}

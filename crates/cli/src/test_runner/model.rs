//! The QTT file model and its loader, including the `format` × `config` case expansion.
//!
//! Files are read into [`Json`] first (comments, exact numbers) and then into these structs by
//! hand: unknown keys are ignored as ksqlDB's Jackson mapper ignores them, and every problem is a
//! [`LoadError`] that names the case, so one malformed case does not hide the others.

use super::json::{Json, JsonError};
use base64::Engine as _;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON at {source}")]
    Json { path: String, source: JsonError },
    #[error("{context}: {message}")]
    Invalid { context: String, message: String },
}

fn invalid(context: &str, message: impl Into<String>) -> LoadError {
    LoadError::Invalid {
        context: context.to_string(),
        message: message.into(),
    }
}

/// One runnable case, after expansion.
#[derive(Debug, Clone, Default)]
pub struct TestCase {
    /// `"<file stem> - <name>[ - <FORMAT>][ - <prop>=<cfg>]"`.
    pub name: String,
    pub statements: Vec<String>,
    /// Config overrides, in file order, values as text.
    pub properties: Vec<(String, String)>,
    pub topics: Vec<TopicSpec>,
    pub inputs: Vec<RecordSpec>,
    pub outputs: Vec<RecordSpec>,
    pub expected_exception: Option<ExpectedException>,
    pub post: Option<Post>,
}

impl TestCase {
    /// `use.exact.numeric.comparison` (default true): when false, JSON floats compare as doubles.
    pub fn exact_numeric_comparison(&self) -> bool {
        self.properties
            .iter()
            .find(|(k, _)| k == "use.exact.numeric.comparison")
            .is_none_or(|(_, v)| !v.eq_ignore_ascii_case("false"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    Time,
    Session,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    pub start: i64,
    pub end: i64,
    pub kind: WindowKind,
}

/// An input or expected output record.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordSpec {
    pub topic: String,
    /// `None` when the file has no `key` (a null key).
    pub key: Option<Json>,
    pub value: Json,
    pub timestamp: Option<i64>,
    pub window: Option<WindowSpec>,
    /// `None` when the file has no `headers`.
    pub headers: Option<Vec<(String, Option<Vec<u8>>)>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: Option<i32>,
    pub replicas: Option<i16>,
    pub key_format: Option<String>,
    pub value_format: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExpectedException {
    /// The Java class name, possibly fully qualified.
    pub type_name: Option<String>,
    pub message: Option<String>,
    pub cause: Option<String>,
    pub cause_message: Option<String>,
}

impl ExpectedException {
    /// The simple class name (`KsqlStatementException`).
    pub fn simple_type(&self) -> Option<&str> {
        self.type_name
            .as_deref()
            .map(|t| t.rsplit(['.', '$']).next().unwrap_or(t))
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Post {
    pub sources: Vec<PostSource>,
    pub topics: Option<PostTopics>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PostSource {
    pub name: String,
    /// `stream` or `table`.
    pub kind: Option<String>,
    pub schema: Option<String>,
    pub key_format: Option<PostKeyFormat>,
    pub value_format: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PostKeyFormat {
    pub format: Option<String>,
    pub window_type: Option<String>,
    pub window_size: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PostTopics {
    pub blacklist: Option<String>,
    pub topics: Vec<PostTopic>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PostTopic {
    pub name: String,
    pub key_format: Option<String>,
    pub value_format: Option<String>,
    pub partitions: Option<i32>,
}

/// A loaded file: its expanded cases.
#[derive(Debug, Clone)]
pub struct TestFile {
    /// The file name as shown in reports (`sum.json`).
    pub file: String,
    pub cases: Vec<TestCase>,
}

/// Reads a QTT file and expands its cases.
pub fn load_file(path: &Path) -> Result<TestFile, LoadError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: shown.clone(),
        source,
    })?;
    let json = Json::parse(&text).map_err(|source| LoadError::Json {
        path: shown.clone(),
        source,
    })?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or(shown);
    let cases = load_tests(&json, &stem)?;
    Ok(TestFile { file, cases })
}

/// Expands the `tests` array of a QTT document.
pub fn load_tests(doc: &Json, stem: &str) -> Result<Vec<TestCase>, LoadError> {
    let tests = doc
        .get("tests")
        .and_then(Json::as_array)
        .ok_or_else(|| invalid(stem, "no \"tests\" array"))?;
    let mut cases = Vec::new();
    for (i, node) in tests.iter().enumerate() {
        let name = node
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| invalid(&format!("{stem}: test #{}", i + 1), "no \"name\""))?;
        cases.extend(expand(node, &format!("{stem} - {name}"))?);
    }
    Ok(cases)
}

fn strings(node: Option<&Json>, context: &str, what: &str) -> Result<Vec<String>, LoadError> {
    match node {
        None => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .map(|j| {
                j.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(context, format!("\"{what}\" must hold strings")))
            })
            .collect(),
        Some(_) => Err(invalid(
            context,
            format!("\"{what}\" must be an array of strings"),
        )),
    }
}

/// One node of `tests` → its cases: one per `format` × `config` combination.
pub fn expand(node: &Json, base_name: &str) -> Result<Vec<TestCase>, LoadError> {
    if node.get("enabled").and_then(Json::as_bool) == Some(false) {
        return Ok(Vec::new());
    }
    let ctx = base_name;
    let statements = strings(node.get("statements"), ctx, "statements")?;
    if statements.is_empty() {
        return Err(invalid(ctx, "\"statements\" is missing or empty"));
    }
    let formats = strings(node.get("format"), ctx, "format")?;
    let configs = strings(node.get("config"), ctx, "config")?;
    let properties: Vec<(String, String)> = match node.get("properties") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Object(fields)) => fields
            .iter()
            .map(|(k, v)| (k.clone(), v.scalar_text()))
            .collect(),
        Some(_) => return Err(invalid(ctx, "\"properties\" must be an object")),
    };
    let config_prop = if configs.is_empty() {
        None
    } else {
        let mut found = properties.iter().filter(|(_, v)| v == "{CONFIG}");
        match (found.next(), found.next()) {
            (Some((k, _)), None) => Some(k.clone()),
            _ => {
                return Err(invalid(
                    ctx,
                    "\"config\" needs exactly one property with the value \"{CONFIG}\"",
                ))
            }
        }
    };
    let topics = match node.get("topics") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(items)) => items
            .iter()
            .map(|t| topic_spec(t, ctx))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid(ctx, "\"topics\" must be an array")),
    };
    let inputs = records(node.get("inputs"), ctx, "inputs")?;
    let outputs = records(node.get("outputs"), ctx, "outputs")?;
    let expected_exception = match node.get("expectedException") {
        None | Some(Json::Null) => None,
        Some(e @ Json::Object(_)) => {
            let text = |k: &str| e.get(k).and_then(Json::as_str).map(str::to_string);
            Some(ExpectedException {
                type_name: text("type"),
                message: text("message"),
                cause: text("cause"),
                cause_message: text("causeMessage"),
            })
        }
        Some(_) => return Err(invalid(ctx, "\"expectedException\" must be an object")),
    };
    let post = match node.get("post") {
        None | Some(Json::Null) => None,
        Some(p) => Some(post_spec(p, ctx)?),
    };
    let template = TestCase {
        name: base_name.to_string(),
        statements,
        properties,
        topics,
        inputs,
        outputs,
        expected_exception,
        post,
    };
    let format_choices: Vec<Option<&String>> = if formats.is_empty() {
        vec![None]
    } else {
        formats.iter().map(Some).collect()
    };
    let config_choices: Vec<Option<&String>> = if configs.is_empty() {
        vec![None]
    } else {
        configs.iter().map(Some).collect()
    };
    let mut cases = Vec::new();
    for format in &format_choices {
        for config in &config_choices {
            let mut case = template.clone();
            if let Some(f) = format {
                case.name.push_str(&format!(" - {f}"));
                for s in &mut case.statements {
                    *s = s.replace("{FORMAT}", f);
                }
                for t in &mut case.topics {
                    for fmt in [&mut t.key_format, &mut t.value_format]
                        .into_iter()
                        .flatten()
                    {
                        *fmt = fmt.replace("{FORMAT}", f);
                    }
                }
            }
            if let (Some(c), Some(prop)) = (config, &config_prop) {
                case.name.push_str(&format!(" - {prop}={c}"));
                for (k, v) in &mut case.properties {
                    if k == prop {
                        *v = c.to_string();
                    }
                }
            }
            cases.push(case);
        }
    }
    Ok(cases)
}

fn int_field<T: TryFrom<i64>>(node: &Json, key: &str, ctx: &str) -> Result<Option<T>, LoadError> {
    match node.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => {
            let n = v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
            n.and_then(|n| T::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| invalid(ctx, format!("\"{key}\" must be an integer, got {v}")))
        }
    }
}

fn topic_spec(node: &Json, ctx: &str) -> Result<TopicSpec, LoadError> {
    let name = node
        .get("name")
        .and_then(Json::as_str)
        .ok_or_else(|| invalid(ctx, "a topic has no \"name\""))?;
    let ctx = format!("{ctx}: topic {name}");
    let text = |k: &str| node.get(k).and_then(Json::as_str).map(str::to_string);
    Ok(TopicSpec {
        name: name.to_string(),
        partitions: int_field(node, "partitions", &ctx)?,
        replicas: int_field(node, "replicas", &ctx)?,
        key_format: text("keyFormat"),
        value_format: text("valueFormat").or_else(|| text("format")),
    })
}

fn records(node: Option<&Json>, ctx: &str, what: &str) -> Result<Vec<RecordSpec>, LoadError> {
    match node {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, r)| record_spec(r, &format!("{ctx}: {what}[{i}]")))
            .collect(),
        Some(_) => Err(invalid(ctx, format!("\"{what}\" must be an array"))),
    }
}

/// The records under `key` (`inputs` / `outputs`) of a document, as in a ksql-test-runner file.
pub fn records_of(doc: &Json, key: &str, context: &str) -> Result<Vec<RecordSpec>, LoadError> {
    records(doc.get(key), context, key)
}

/// Base64 the way Java's basic decoder reads it (padding optional).
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT
        .decode(text)
        .map_err(|e| format!("invalid base64 '{text}': {e}"))
}

fn record_spec(node: &Json, ctx: &str) -> Result<RecordSpec, LoadError> {
    let topic = node
        .get("topic")
        .and_then(Json::as_str)
        .ok_or_else(|| invalid(ctx, "no \"topic\""))?
        .to_string();
    let value = node.get("value").cloned().unwrap_or(Json::Null);
    let window = match node.get("window") {
        None | Some(Json::Null) => None,
        Some(w) => {
            let kind = match w
                .get("type")
                .and_then(Json::as_str)
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("session") => WindowKind::Session,
                Some("time") | None => WindowKind::Time,
                Some(other) => return Err(invalid(ctx, format!("unknown window type '{other}'"))),
            };
            let start = int_field(w, "start", ctx)?.unwrap_or(0);
            let end = int_field(w, "end", ctx)?.unwrap_or(0);
            Some(WindowSpec { start, end, kind })
        }
    };
    let headers = match node.get("headers") {
        None => None,
        Some(Json::Null) => Some(Vec::new()),
        Some(Json::Array(items)) => Some(
            items
                .iter()
                .map(|h| {
                    let key = h
                        .get("KEY")
                        .and_then(Json::as_str)
                        .ok_or_else(|| invalid(ctx, "a header has no \"KEY\""))?
                        .to_string();
                    let value = match h.get("VALUE") {
                        None | Some(Json::Null) => None,
                        Some(Json::String(s)) => {
                            Some(base64_decode(s).map_err(|e| invalid(ctx, e))?)
                        }
                        Some(other) => {
                            return Err(invalid(
                                ctx,
                                format!("header VALUE must be base64 text, got {other}"),
                            ))
                        }
                    };
                    Ok((key, value))
                })
                .collect::<Result<_, LoadError>>()?,
        ),
        Some(_) => return Err(invalid(ctx, "\"headers\" must be an array")),
    };
    Ok(RecordSpec {
        topic,
        key: node.get("key").cloned(),
        value,
        timestamp: int_field(node, "timestamp", ctx)?,
        window,
        headers,
    })
}

fn post_spec(node: &Json, ctx: &str) -> Result<Post, LoadError> {
    let mut post = Post::default();
    if let Some(sources) = node.get("sources").and_then(Json::as_array) {
        for s in sources {
            let name = s
                .get("name")
                .and_then(Json::as_str)
                .ok_or_else(|| invalid(ctx, "a post source has no \"name\""))?;
            let text = |k: &str| s.get(k).and_then(Json::as_str).map(str::to_string);
            let key_format = match s.get("keyFormat") {
                None | Some(Json::Null) => None,
                Some(k) => Some(PostKeyFormat {
                    format: k.get("format").and_then(Json::as_str).map(str::to_string),
                    window_type: k
                        .get("windowType")
                        .and_then(Json::as_str)
                        .map(str::to_string),
                    window_size: int_field(k, "windowSize", ctx)?,
                }),
            };
            post.sources.push(PostSource {
                name: name.to_string(),
                kind: text("type"),
                schema: text("schema"),
                key_format,
                value_format: text("valueFormat"),
            });
        }
    }
    if let Some(t) = node.get("topics") {
        let mut topics = PostTopics {
            blacklist: t
                .get("blacklist")
                .and_then(Json::as_str)
                .map(str::to_string),
            topics: Vec::new(),
        };
        for topic in t.get("topics").and_then(Json::as_array).unwrap_or(&[]) {
            let name = topic
                .get("name")
                .and_then(Json::as_str)
                .ok_or_else(|| invalid(ctx, "a post topic has no \"name\""))?;
            let format_of = |k: &str| {
                topic
                    .get(k)
                    .and_then(|f| f.get("format"))
                    .and_then(Json::as_str)
                    .map(str::to_string)
            };
            topics.topics.push(PostTopic {
                name: name.to_string(),
                key_format: format_of("keyFormat"),
                value_format: format_of("valueFormat"),
                partitions: int_field(topic, "partitions", ctx)?,
            });
        }
        post.topics = Some(topics);
    }
    Ok(post)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Json {
        Json::parse(text).unwrap()
    }

    #[test]
    fn expands_formats_and_configs_in_order() {
        let d = doc(r#"{"tests": [{
                "name": "t", "format": ["JSON", "AVRO"], "config": ["true", "false"],
                "properties": {"ksql.new.query.planner.enabled": "{CONFIG}", "x": 1},
                "statements": ["CREATE STREAM S (A INT) WITH (kafka_topic='t', value_format='{FORMAT}');"],
                "inputs": [{"topic": "t", "value": {"A": 1.50}}]
            }]}"#);
        let cases = load_tests(&d, "sum").unwrap();
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "sum - t - JSON - ksql.new.query.planner.enabled=true",
                "sum - t - JSON - ksql.new.query.planner.enabled=false",
                "sum - t - AVRO - ksql.new.query.planner.enabled=true",
                "sum - t - AVRO - ksql.new.query.planner.enabled=false",
            ]
        );
        assert!(cases[2].statements[0].contains("value_format='AVRO'"));
        assert_eq!(
            cases[1].properties[0],
            (
                "ksql.new.query.planner.enabled".to_string(),
                "false".to_string()
            )
        );
        assert_eq!(cases[1].properties[1], ("x".to_string(), "1".to_string()));
        assert_eq!(cases[0].inputs[0].value.to_string(), r#"{"A":1.50}"#);
    }

    #[test]
    fn plain_names_disabled_cases_and_records() {
        let d = doc(r#"{"tests": [
                {"name": "off", "enabled": false, "statements": ["x"]},
                {"name": "on", "statements": ["x"], "outputs": [
                    {"topic": "O", "key": 1, "value": null, "timestamp": 5,
                     "window": {"start": 0, "end": 10, "type": "session"},
                     "headers": [{"KEY": "a", "VALUE": "IQ=="}, {"KEY": "b", "VALUE": null}]},
                    {"topic": "O", "value": "v"}
                ]}
            ]}"#);
        let cases = load_tests(&d, "f").unwrap();
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].name, "f - on");
        let r = &cases[0].outputs[0];
        assert_eq!(r.key, Some(Json::Number("1".into())));
        assert_eq!(r.value, Json::Null);
        assert_eq!(r.timestamp, Some(5));
        assert_eq!(
            r.window,
            Some(WindowSpec {
                start: 0,
                end: 10,
                kind: WindowKind::Session
            })
        );
        assert_eq!(
            r.headers,
            Some(vec![("a".into(), Some(vec![b'!'])), ("b".into(), None)])
        );
        assert_eq!(cases[0].outputs[1].key, None);
        assert_eq!(cases[0].outputs[1].headers, None);
    }

    #[test]
    fn config_without_placeholder_is_an_error() {
        let d = doc(r#"{"tests": [{"name": "t", "config": ["a"], "statements": ["x"]}]}"#);
        assert!(load_tests(&d, "f").is_err());
        let d = doc(r#"{"tests": [{"statements": ["x"]}]}"#);
        assert!(load_tests(&d, "f").is_err());
    }

    #[test]
    fn exception_simple_type() {
        let e = ExpectedException {
            type_name: Some("io.confluent.ksql.util.KsqlStatementException".into()),
            ..Default::default()
        };
        assert_eq!(e.simple_type(), Some("KsqlStatementException"));
    }
}

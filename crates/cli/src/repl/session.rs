//! One CLI session against a server: the state the ksql CLI keeps on the client (`SET`
//! properties, `DEFINE`d variables, the output format, the spool file) and the execution of
//! statements, shared by the REPL, `RUN SCRIPT`, `--execute` and `runnel run --server`.
//!
//! Local commands (`SET`, `UNSET`, `DEFINE`, `UNDEFINE`, `RUN SCRIPT`, `OUTPUT`, `SPOOL`, `EXIT`,
//! `HELP`, ...) never reach the server; the properties and variables they set are sent with every
//! request (`streamsProperties` / `sessionVariables`), so the server substitutes `${var}` as
//! ksqlDB does. `SELECT` and `PRINT` go to `/query` and are printed live; everything
//! else goes to `/ksql`, one statement per request so each gets its own report.

use super::client::{Client, ClientError, StreamEvent};
use super::render::{self, Format, RowTable};
use super::split::{leading_words, split, Piece};
use super::{interrupt, terminal_width};
use regex::Regex;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Whether the session goes on after a statement.
#[derive(Debug, PartialEq)]
pub enum Flow {
    Continue,
    Exit,
}

/// A statement that failed, with where it started.
#[derive(Debug)]
pub struct Failure {
    pub line: usize,
    pub message: String,
}

/// Words that are local commands even without a terminating `;` (as in the ksql CLI).
pub const BARE_COMMANDS: &[&str] = &[
    "EXIT", "QUIT", "HELP", "CLEAR", "VERSION", "SERVER", "OUTPUT", "SPOOL", "HISTORY",
];

pub struct Session {
    pub client: Client,
    pub properties: BTreeMap<String, String>,
    pub variables: BTreeMap<String, String>,
    pub format: Format,
    spool: Option<(PathBuf, File)>,
    /// Stream, table and topic names, for tab completion.
    pub names: Arc<Mutex<Vec<String>>>,
    /// The prompt echoed before statements run from scripts.
    pub prompt: String,
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("valid regex"))
}

/// A quoted SQL string's contents (`''` is a quote).
fn unquote(s: &str) -> String {
    s.replace("''", "'")
}

impl Session {
    pub fn new(client: Client) -> Self {
        Session {
            client,
            properties: BTreeMap::new(),
            variables: BTreeMap::new(),
            format: Format::Tabular,
            spool: None,
            names: Arc::new(Mutex::new(Vec::new())),
            prompt: "runnel> ".into(),
        }
    }

    /// Prints to the terminal and to the spool file.
    pub fn print(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        self.spool_only(text);
    }

    /// Writes to the spool file only (the commands typed, which the terminal already shows).
    pub fn spool_only(&mut self, text: &str) {
        if let Some((_, f)) = &mut self.spool {
            let _ = f.write_all(text.as_bytes());
            let _ = f.flush();
        }
    }

    fn println(&mut self, text: &str) {
        self.print(&format!("{text}\n"));
    }

    fn properties_json(&self) -> Map<String, Json> {
        self.properties
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect()
    }

    fn variables_json(&self) -> Map<String, Json> {
        self.variables
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect()
    }

    /// `${var}` substitution for the arguments of local commands (the server does it for
    /// everything it receives).
    fn substitute(&self, text: &str) -> Result<String, String> {
        let vars: HashMap<String, String> = self
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        runnel_sql::substitute_variables(text, &vars).map_err(|e| e.to_string())
    }

    /// Asks the server for stream, table and topic names (for completion); quietly keeps the
    /// old list when that fails.
    pub fn refresh_names(&mut self) {
        let Ok(entities) = self.client.ksql(
            "SHOW STREAMS; SHOW TABLES; SHOW TOPICS;",
            &Map::new(),
            &Map::new(),
        ) else {
            return;
        };
        let mut names = Vec::new();
        for e in &entities {
            for key in ["streams", "tables", "topics"] {
                for item in e.get(key).and_then(Json::as_array).into_iter().flatten() {
                    if let Some(n) = item.get("name").and_then(Json::as_str) {
                        names.push(n.to_string());
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        *self.names.lock().unwrap_or_else(|e| e.into_inner()) = names;
    }

    /// Runs every statement of `text` (the last may lack its `;`). With `stop_on_error`, the
    /// first failure ends the run; otherwise failures are printed and the rest still runs.
    /// `echo` prints each statement before it runs (scripts).
    pub fn run_text(
        &mut self,
        text: &str,
        echo: bool,
        stop_on_error: bool,
    ) -> Result<Flow, Failure> {
        let parts = split(text);
        let pieces: Vec<Piece> = parts.statements.into_iter().chain(parts.rest).collect();
        for piece in pieces {
            if echo {
                // Shown with its variables substituted, as the server will run it.
                let shown = self
                    .substitute(&piece.text)
                    .unwrap_or_else(|_| piece.text.clone());
                let line = format!("{}{shown}", self.prompt);
                self.println(&line);
            }
            match self.run_statement(&piece.text) {
                Ok(Flow::Exit) => return Ok(Flow::Exit),
                Ok(Flow::Continue) => {}
                Err(message) => {
                    if stop_on_error {
                        return Err(Failure {
                            line: piece.line,
                            message,
                        });
                    }
                    self.println(&message);
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// Runs one statement or local command; the error is the message to show.
    pub fn run_statement(&mut self, text: &str) -> Result<Flow, String> {
        let words = leading_words(text, 2);
        let first = words.first().map(String::as_str).unwrap_or("");
        match first {
            "" => Ok(Flow::Continue),
            "EXIT" | "QUIT" => Ok(Flow::Exit),
            "HELP" => {
                self.print(HELP);
                Ok(Flow::Continue)
            }
            "CLEAR" => {
                self.print("\x1b[2J\x1b[H");
                Ok(Flow::Continue)
            }
            "VERSION" => {
                self.println(&format!("Version: {}", env!("CARGO_PKG_VERSION")));
                Ok(Flow::Continue)
            }
            "SERVER" => {
                let url = self.client.url.clone();
                self.println(&url);
                Ok(Flow::Continue)
            }
            "HISTORY" => {
                self.println("History is kept in ~/.runnel_history (Ctrl-R searches it).");
                Ok(Flow::Continue)
            }
            "OUTPUT" => self.output(text),
            "SPOOL" => self.spool(text),
            "SET" => self.set(text),
            "UNSET" => self.unset(text),
            "DEFINE" => self.define(text),
            "UNDEFINE" => self.undefine(text),
            "RUN" if words.get(1).map(String::as_str) == Some("SCRIPT") => self.run_script(text),
            "SELECT" | "PRINT" => self.query(text).map(|_| Flow::Continue),
            _ => self.ksql(text).map(|_| Flow::Continue),
        }
    }

    fn argument(&self, text: &str, keyword_pattern: &str) -> Result<Option<String>, String> {
        let pattern =
            format!(r"(?is)^\s*{keyword_pattern}(?:\s+(?:'((?:[^']|'')*)'|(\S+?)))?\s*;?\s*$");
        let r = Regex::new(&pattern).map_err(|e| e.to_string())?;
        let Some(c) = r.captures(text.trim()) else {
            return Err(format!("Invalid syntax: {}", text.trim()));
        };
        let arg = c
            .get(1)
            .map(|m| unquote(m.as_str()))
            .or_else(|| c.get(2).map(|m| m.as_str().to_string()));
        arg.map(|a| self.substitute(&a)).transpose()
    }

    fn output(&mut self, text: &str) -> Result<Flow, String> {
        match self.argument(text, "OUTPUT")?.map(|a| a.to_uppercase()) {
            None => {
                let f = match self.format {
                    Format::Tabular => "TABULAR",
                    Format::Json => "JSON",
                };
                self.println(&format!("Output format: {f}"));
            }
            Some(a) if a == "JSON" => self.format = Format::Json,
            Some(a) if a == "TABULAR" => self.format = Format::Tabular,
            Some(a) => return Err(format!("Invalid output format: '{a}' (JSON or TABULAR)")),
        }
        Ok(Flow::Continue)
    }

    fn spool(&mut self, text: &str) -> Result<Flow, String> {
        match self.argument(text, "SPOOL")? {
            None => {
                let state = match &self.spool {
                    Some((p, _)) => format!("Spooling to {}", p.display()),
                    None => "Not spooling".into(),
                };
                self.println(&state);
            }
            Some(a) if a.eq_ignore_ascii_case("OFF") => {
                if let Some((p, _)) = self.spool.take() {
                    self.println(&format!("Spool closed: {}", p.display()));
                }
            }
            Some(path) => {
                let path = PathBuf::from(path);
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| format!("Cannot open spool file {}: {e}", path.display()))?;
                self.spool = Some((path.clone(), file));
                self.println(&format!("Session will be spooled to {}", path.display()));
            }
        }
        Ok(Flow::Continue)
    }

    fn set(&mut self, text: &str) -> Result<Flow, String> {
        static SET: OnceLock<Regex> = OnceLock::new();
        let r = re(
            &SET,
            r"(?is)^\s*SET\s+'((?:[^']|'')*)'\s*=\s*'((?:[^']|'')*)'\s*;?\s*$",
        );
        let text = self.substitute(text)?;
        let Some(c) = r.captures(&text) else {
            return Err(format!(
                "Invalid SET: expected SET 'property'='value'; got: {}",
                text.trim()
            ));
        };
        let (name, value) = (unquote(&c[1]), unquote(&c[2]));
        let old = self.properties.insert(name.clone(), value.clone());
        let message = match old {
            Some(old) => {
                format!("Successfully changed local property '{name}' from '{old}' to '{value}'.")
            }
            None => format!("Successfully changed local property '{name}' to '{value}'."),
        };
        self.println(&message);
        Ok(Flow::Continue)
    }

    fn unset(&mut self, text: &str) -> Result<Flow, String> {
        static UNSET: OnceLock<Regex> = OnceLock::new();
        let r = re(&UNSET, r"(?is)^\s*UNSET\s+'((?:[^']|'')*)'\s*;?\s*$");
        let text = self.substitute(text)?;
        let Some(c) = r.captures(&text) else {
            return Err(format!(
                "Invalid UNSET: expected UNSET 'property'; got: {}",
                text.trim()
            ));
        };
        let name = unquote(&c[1]);
        let message = match self.properties.remove(&name) {
            Some(old) => format!("Successfully unset local property '{name}' (value was '{old}')."),
            None => format!("Property '{name}' was not set."),
        };
        self.println(&message);
        Ok(Flow::Continue)
    }

    fn define(&mut self, text: &str) -> Result<Flow, String> {
        static DEFINE: OnceLock<Regex> = OnceLock::new();
        let r = re(
            &DEFINE,
            r"(?is)^\s*DEFINE\s+([A-Za-z_][A-Za-z0-9_]*)\s*=\s*'((?:[^']|'')*)'\s*;?\s*$",
        );
        let Some(c) = r.captures(text) else {
            return Err(format!(
                "Invalid DEFINE: expected DEFINE name = 'value'; got: {}",
                text.trim()
            ));
        };
        let value = self.substitute(&unquote(&c[2]))?;
        // Names are case-insensitive: keep one entry per name.
        let name = c[1].to_string();
        self.variables.retain(|k, _| !k.eq_ignore_ascii_case(&name));
        self.variables.insert(name, value);
        Ok(Flow::Continue)
    }

    fn undefine(&mut self, text: &str) -> Result<Flow, String> {
        static UNDEFINE: OnceLock<Regex> = OnceLock::new();
        let r = re(
            &UNDEFINE,
            r"(?is)^\s*UNDEFINE\s+([A-Za-z_][A-Za-z0-9_]*)\s*;?\s*$",
        );
        let Some(c) = r.captures(text) else {
            return Err(format!(
                "Invalid UNDEFINE: expected UNDEFINE name; got: {}",
                text.trim()
            ));
        };
        let name = c[1].to_string();
        let before = self.variables.len();
        self.variables.retain(|k, _| !k.eq_ignore_ascii_case(&name));
        if self.variables.len() == before {
            self.println(&format!(
                "Cannot undefine variable '{name}' which was never defined"
            ));
        }
        Ok(Flow::Continue)
    }

    fn run_script(&mut self, text: &str) -> Result<Flow, String> {
        let Some(path) = self.argument(text, r"RUN\s+SCRIPT")? else {
            return Err("RUN SCRIPT needs a file: RUN SCRIPT '/path/to/file.sql';".into());
        };
        self.run_file(Path::new(&path), true)
            .map_err(|f| format!("{path}:{}: {}", f.line, f.message))
    }

    /// Runs a script file's statements in this session, stopping at the first failure.
    pub fn run_file(&mut self, path: &Path, echo: bool) -> Result<Flow, Failure> {
        let text = std::fs::read_to_string(path).map_err(|e| Failure {
            line: 0,
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        self.run_text(&text, echo, true)
    }

    /// A statement for `/ksql`: prints its entities.
    fn ksql(&mut self, text: &str) -> Result<(), String> {
        let entities = self
            .client
            .ksql(text, &self.properties_json(), &self.variables_json())
            .map_err(|e| self.error_message(e))?;
        for e in &entities {
            let rendered = render::entity(e, self.format);
            self.print(&rendered);
        }
        let first = leading_words(text, 1);
        if matches!(
            first.first().map(String::as_str),
            Some("CREATE" | "DROP" | "RUN")
        ) {
            self.refresh_names();
        }
        Ok(())
    }

    fn error_message(&self, e: ClientError) -> String {
        match e {
            ClientError::Unreachable { .. } => {
                format!("{e}\n(is the server running? `runnel server` starts one)")
            }
            other => other.to_string(),
        }
    }

    /// A push or pull query, or PRINT: rows are printed as they arrive until the stream ends
    /// or Ctrl-C, which closes the query on the server (the CLI goes on).
    fn query(&mut self, text: &str) -> Result<(), String> {
        static LIMIT: OnceLock<Regex> = OnceLock::new();
        let limit: Option<u64> = re(&LIMIT, r"(?is)\bLIMIT\s+(\d+)\s*;?\s*$")
            .captures(text)
            .and_then(|c| c[1].parse().ok());
        interrupt::clear();
        let stream = self
            .client
            .stream_query(text, &self.properties_json(), &self.variables_json())
            .map_err(|e| self.error_message(e))?;
        let mut table: Option<RowTable> = None;
        let mut query_id: Option<String> = None;
        let mut rows = 0u64;
        let mut closing: Option<Instant> = None;
        let mut failed: Option<String> = None;
        loop {
            if closing.is_none() && interrupt::take() {
                // Over the `^C` the terminal echoed.
                self.print("\r");
                if let Some(id) = &query_id {
                    if let Err(e) = self.client.close_query(id) {
                        tracing::debug!("close-query {id}: {e}");
                    }
                }
                // The server ends the response once the query is closed; PRINT (which has
                // no id) ends when the connection goes, at the latest after this wait.
                closing = Some(Instant::now() + Duration::from_secs(3));
            }
            if closing.is_some_and(|deadline| Instant::now() > deadline) {
                break;
            }
            match stream.events.recv_timeout(Duration::from_millis(100)) {
                Ok(StreamEvent::Header {
                    query_id: id,
                    columns,
                }) => {
                    query_id = Some(id);
                    if self.format == Format::Json {
                        let header =
                            serde_json::json!({"queryId": query_id, "columnNames": columns});
                        self.println(&header.to_string());
                    } else {
                        let t = RowTable::new(&columns, terminal_width());
                        let header = t.header(&columns);
                        self.print(&header);
                        table = Some(t);
                    }
                }
                Ok(StreamEvent::Row(values)) => {
                    rows += 1;
                    let line = match &table {
                        Some(t) if self.format == Format::Tabular => t.row(&values),
                        _ => format!("{}\n", Json::Array(values)),
                    };
                    self.print(&line);
                }
                // As ksqlDB's CLI: a deleted key's null columns show `<TOMBSTONE>`.
                Ok(StreamEvent::Tombstone(values)) => {
                    rows += 1;
                    let line = match &table {
                        Some(t) if self.format == Format::Tabular => {
                            let cells: Vec<Json> = values
                                .into_iter()
                                .map(|v| {
                                    if v.is_null() {
                                        Json::String("<TOMBSTONE>".into())
                                    } else {
                                        v
                                    }
                                })
                                .collect();
                            t.row(&cells)
                        }
                        _ => format!(
                            "{}\n",
                            serde_json::json!({"row": {"columns": values, "tombstone": true}})
                        ),
                    };
                    self.print(&line);
                }
                Ok(StreamEvent::Text(line)) => self.println(&line),
                Ok(StreamEvent::Error(message)) => failed = Some(message),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if let Some(t) = &table {
            let border = format!("{}\n", t.border());
            self.print(&border);
        }
        if let Some(message) = failed {
            return Err(message);
        }
        if limit.is_some_and(|l| rows >= l) {
            self.println("Limit Reached");
        }
        if query_id.is_some() || closing.is_some() {
            self.println("Query terminated");
        }
        Ok(())
    }
}

const HELP: &str = "\
Statements end with ';' and may span lines. SELECT and PRINT stream their rows until they end
or Ctrl-C (which stops the query, not the CLI); everything else is sent to the server's /ksql.

Local commands:
  SET 'property'='value';      send a property with every request (UNSET 'property'; drops it)
  DEFINE name = 'value';       define ${name} for later statements (UNDEFINE name; drops it)
  RUN SCRIPT 'file.sql';       run the statements of a file, stopping at the first error
  OUTPUT [JSON|TABULAR]        show or change how results are printed
  SPOOL file | SPOOL OFF       also write the session (commands and output) to a file
  SERVER                       show the server's URL
  VERSION, HELP, CLEAR, HISTORY
  EXIT (or Ctrl-D)             leave the CLI

Tab completes keywords and stream, table and topic names; Ctrl-R searches the history
(~/.runnel_history).
";

#[cfg(test)]
mod tests {
    use super::*;

    fn offline() -> Session {
        // Nothing listens on port 9 of the loopback; local commands must not need the server.
        Session::new(Client::new("http://127.0.0.1:9"))
    }

    #[test]
    fn local_commands_keep_session_state() {
        let mut s = offline();
        assert_eq!(
            s.run_text(
                "SET 'auto.offset.reset'='earliest'; DEFINE topic = 'orders';\n\
                 define Suffix='_v${topic}'; SET 'ksql.x' = 'a''b';",
                false,
                true
            )
            .unwrap(),
            Flow::Continue
        );
        assert_eq!(s.properties["auto.offset.reset"], "earliest");
        assert_eq!(s.properties["ksql.x"], "a'b");
        assert_eq!(s.variables["topic"], "orders");
        assert_eq!(s.variables["Suffix"], "_vorders");
        s.run_text("UNSET 'ksql.x'; UNDEFINE TOPIC; OUTPUT JSON", false, true)
            .unwrap();
        assert!(!s.properties.contains_key("ksql.x"));
        assert!(!s.variables.contains_key("topic"));
        assert_eq!(s.format, Format::Json);
        assert_eq!(s.run_text("exit", false, true).unwrap(), Flow::Exit);
    }

    #[test]
    fn bad_local_commands_are_errors_that_change_nothing() {
        let mut s = offline();
        let f = s
            .run_text("SET 'a'='1';\nSET a = 1;", false, true)
            .unwrap_err();
        assert_eq!(f.line, 2);
        assert!(
            f.message.contains("SET 'property'='value'"),
            "{}",
            f.message
        );
        assert_eq!(s.properties.len(), 1);
        let f = s.run_text("DEFINE x = ${nope};", false, true).unwrap_err();
        assert!(f.message.contains("DEFINE name = 'value'"), "{}", f.message);
        let f = s.run_text("SET 'p'='${nope}';", false, true).unwrap_err();
        assert!(f.message.contains("Undefined variable"), "{}", f.message);
        let f = s.run_text("OUTPUT XML;", false, true).unwrap_err();
        assert!(f.message.contains("JSON or TABULAR"), "{}", f.message);
        let f = s
            .run_text("RUN SCRIPT '/nonexistent/x.sql';", false, true)
            .unwrap_err();
        assert!(
            f.message.contains("cannot read /nonexistent/x.sql"),
            "{}",
            f.message
        );
        assert!(s.variables.is_empty());
    }

    #[test]
    fn unreachable_server_is_a_clear_error() {
        let mut s = offline();
        let f = s.run_text("SHOW STREAMS;", false, true).unwrap_err();
        assert!(
            f.message.contains("cannot reach the server"),
            "{}",
            f.message
        );
    }

    #[test]
    fn spool_writes_commands_and_output() {
        let dir = std::env::temp_dir().join(format!("runnel-spool-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let mut s = offline();
        s.run_text(
            &format!(
                "SPOOL '{}'; SET 'a'='1'; SPOOL OFF; SET 'b'='2';",
                dir.display()
            ),
            true,
            true,
        )
        .unwrap();
        let spooled = std::fs::read_to_string(&dir).unwrap();
        let _ = std::fs::remove_file(&dir);
        assert!(spooled.contains("runnel> SET 'a'='1';\n"), "{spooled}");
        assert!(
            spooled.contains("Successfully changed local property 'a' to '1'."),
            "{spooled}"
        );
        assert!(!spooled.contains("'b'"), "{spooled}");
    }
}

//! `runnel cli`: an interactive shell over ksqlDB's REST API, modelled on the ksql CLI, and
//! `runnel run FILE --server URL`, which deploys a script to a running server.
//!
//! The CLI is a plain REST client (blocking HTTP with ureq), so it works against any
//! ksqlDB-compatible server; with no URL it uses `http://localhost:8088` when a server answers
//! there, and otherwise starts Runnel's server in-process on a free loopback port (with the
//! embedded broker unless Kafka is given), so `runnel cli` alone is a working playground.
//!
//! Ctrl-C while a query streams stops that query (`/close-query`) but not the CLI: a SIGINT
//! handler only raises a flag, which the query loop polls. While a line is being edited the
//! terminal is in raw mode and Ctrl-C is a key that clears the line.

mod client;
mod render;
mod session;
mod split;

pub use client::Client;
pub use session::{Flow, Session};

use anyhow::{bail, Context as _, Result};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Ctrl-C as a flag, for streaming queries.
pub(crate) mod interrupt {
    use std::sync::atomic::{AtomicBool, Ordering};

    static INTERRUPTED: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_sigint(_: libc::c_int) {
        INTERRUPTED.store(true, Ordering::SeqCst);
    }

    /// Makes SIGINT raise the flag instead of ending the process.
    pub fn install() {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the
        // sigaction struct is fully initialised (zeroed, then the fields we use set).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        }
    }

    pub fn clear() {
        INTERRUPTED.store(false, Ordering::SeqCst);
    }

    /// Whether Ctrl-C was pressed since the last call (and resets it).
    pub fn take() -> bool {
        INTERRUPTED.swap(false, Ordering::SeqCst)
    }
}

/// The terminal's width in columns (80 when it cannot be told).
pub(crate) fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills a winsize struct we own; a failure leaves it zeroed.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 {
        return usize::from(size.ws_col);
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|c| *c > 0)
        .unwrap_or(80)
}

/// Keywords offered by tab completion.
const KEYWORDS: &[&str] = &[
    "ADVANCE",
    "ALL",
    "AND",
    "ARRAY",
    "AS",
    "ASSERT",
    "BEGINNING",
    "BETWEEN",
    "BIGINT",
    "BOOLEAN",
    "BY",
    "BYTES",
    "CASE",
    "CAST",
    "CHANGES",
    "CREATE",
    "DATE",
    "DECIMAL",
    "DEFINE",
    "DELETE",
    "DESCRIBE",
    "DISTINCT",
    "DOUBLE",
    "DROP",
    "ELSE",
    "EMIT",
    "END",
    "EXISTS",
    "EXIT",
    "EXPLAIN",
    "EXTENDED",
    "FALSE",
    "FINAL",
    "FROM",
    "FULL",
    "FUNCTION",
    "FUNCTIONS",
    "GRACE",
    "GROUP",
    "HAVING",
    "HEADER",
    "HEADERS",
    "HELP",
    "HOPPING",
    "IF",
    "IN",
    "INNER",
    "INSERT",
    "INT",
    "INTEGER",
    "INTO",
    "IS",
    "JOIN",
    "KEY",
    "LEFT",
    "LIKE",
    "LIMIT",
    "LIST",
    "MAP",
    "NOT",
    "NULL",
    "ON",
    "OR",
    "OUTER",
    "OUTPUT",
    "PARTITION",
    "PERIOD",
    "PRIMARY",
    "PRINT",
    "PROPERTIES",
    "QUERIES",
    "REPLACE",
    "RETENTION",
    "RIGHT",
    "RUN",
    "SCRIPT",
    "SELECT",
    "SESSION",
    "SET",
    "SHOW",
    "SIZE",
    "SOURCE",
    "SPOOL",
    "STREAM",
    "STREAMS",
    "STRING",
    "STRUCT",
    "TABLE",
    "TABLES",
    "TERMINATE",
    "THEN",
    "TIME",
    "TIMESTAMP",
    "TOPIC",
    "TOPICS",
    "TRUE",
    "TUMBLING",
    "TYPE",
    "TYPES",
    "UNDEFINE",
    "UNSET",
    "VALUES",
    "VARCHAR",
    "VARIABLES",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
    "WITHIN",
];

/// Completion candidates for the word `prefix`: keywords (in the case the word is typed in) and
/// the server's stream, table and topic names.
fn candidates(prefix: &str, names: &[String]) -> Vec<String> {
    if prefix.is_empty() {
        return Vec::new();
    }
    let upper = prefix.to_uppercase();
    let lower_typed = prefix.chars().all(|c| !c.is_uppercase());
    let mut out: Vec<String> = KEYWORDS
        .iter()
        .filter(|k| k.starts_with(&upper))
        .map(|k| {
            if lower_typed {
                k.to_lowercase()
            } else {
                k.to_string()
            }
        })
        .collect();
    out.extend(
        names
            .iter()
            .filter(|n| n.to_uppercase().starts_with(&upper))
            .cloned(),
    );
    // A stream and its topic often differ only in case: offer one of them, so Tab can
    // complete the name instead of stopping at the common prefix.
    out.sort();
    out.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    out
}

/// Whether the typed text is ready to run: every statement ended by `;`, or a bare local
/// command such as `exit` or `spool off`.
fn input_complete(input: &str) -> bool {
    let parts = split::split(input);
    match parts.rest {
        None => true,
        Some(rest) => {
            let words = split::leading_words(&rest.text, 1);
            !rest.text.contains('\n')
                && words
                    .first()
                    .is_some_and(|w| session::BARE_COMMANDS.contains(&w.as_str()))
        }
    }
}

struct ReplHelper {
    names: Arc<Mutex<Vec<String>>>,
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let found = candidates(&before[start..], &names)
            .into_iter()
            .map(|c| Pair {
                display: c.clone(),
                replacement: c,
            })
            .collect();
        Ok((start, found))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if input_complete(ctx.input()) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

impl Helper for ReplHelper {}

/// Runnel's REST server running inside the CLI process (when no server was given).
pub struct LocalServer {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    server: runnel_server::Server,
}

impl LocalServer {
    /// Serves `engine` on a free loopback port.
    pub fn start(engine: runnel_engine::Engine) -> Result<LocalServer> {
        let cluster_id = runnel_server::kafka_cluster_id(&engine);
        let server = runnel_server::Server::new(engine, cluster_id);
        let (port_tx, port_rx) = std::sync::mpsc::channel::<Result<u16, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = server.clone();
        let thread = std::thread::Builder::new()
            .name("cli-local-server".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = port_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = port_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let port = listener.local_addr().map(|a| a.port());
                    let _ = port_tx.send(port.map_err(|e| e.to_string()));
                    let shutdown = async move {
                        let _ = stop_rx.await;
                    };
                    if let Err(e) = serving.serve(listener, shutdown).await {
                        tracing::error!("local server: {e}");
                    }
                });
            })
            .context("cannot start the local server thread")?;
        let port = port_rx
            .recv()
            .context("the local server did not start")?
            .map_err(|e| anyhow::anyhow!("cannot start the local server: {e}"))?;
        Ok(LocalServer {
            url: format!("http://127.0.0.1:{port}"),
            stop: Some(stop_tx),
            thread: Some(thread),
            server,
        })
    }

    /// Stops serving, then stops the persistent queries (flushing outputs, committing offsets).
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            self.server.shutdown_engine();
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a ksqlDB-compatible server answers at `url`.
pub fn server_answers(url: &str) -> bool {
    Client::new(url).info(Duration::from_secs(2)).is_ok()
}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".runnel_history"))
}

/// Prints the welcome lines: who we talk to.
fn banner(session: &mut Session, local: bool) {
    let info = session.client.info(Duration::from_secs(5));
    let url = session.client.url.clone();
    let server = match info {
        Ok(i) => {
            let i = &i["KsqlServerInfo"];
            format!(
                "{url} (version {}, service id {})",
                i["version"].as_str().unwrap_or("?"),
                i["ksqlServiceId"].as_str().unwrap_or("?")
            )
        }
        Err(e) => format!("{url} ({e})"),
    };
    let local_note = if local {
        " [in-process server; it stops when the CLI exits]"
    } else {
        ""
    };
    session.print(&format!(
        "Runnel CLI {}, a ksqlDB-compatible shell\nServer: {server}{local_note}\n\
         Statements end with ';'. Type 'help' for help, 'exit' or Ctrl-D to leave.\n\n",
        env!("CARGO_PKG_VERSION")
    ));
}

/// The interactive loop (or, with `execute`, runs those statements and returns).
pub fn repl(mut session: Session, execute: Option<String>, local: bool) -> Result<()> {
    interrupt::install();
    if let Some(sql) = execute {
        return match session.run_text(&sql, false, true) {
            Ok(_) => Ok(()),
            Err(f) => bail!("{}", f.message),
        };
    }
    banner(&mut session, local);
    session.refresh_names();
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .max_history_size(5000)
        .context("history size")?
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut editor: Editor<ReplHelper, DefaultHistory> =
        Editor::with_config(config).context("cannot start the line editor")?;
    editor.set_helper(Some(ReplHelper {
        names: session.names.clone(),
    }));
    let history = history_path();
    if let Some(h) = &history {
        // A missing history file is normal on first use.
        let _ = editor.load_history(h);
    }
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() {
            session.prompt.clone()
        } else {
            "      > ".to_string()
        };
        match editor.readline(&prompt) {
            Ok(line) => {
                if !pending.is_empty() {
                    pending.push('\n');
                }
                pending.push_str(&line);
                // Without a terminal the validator does not run: gather lines here too.
                if !input_complete(&pending) {
                    continue;
                }
                let input = std::mem::take(&mut pending);
                if input.trim().is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(input.trim());
                if let Some(h) = &history {
                    if let Err(e) = editor.save_history(h) {
                        tracing::debug!("cannot save history to {}: {e}", h.display());
                    }
                }
                let echoed = format!("{}{}\n", session.prompt, input.trim());
                session.spool_only(&echoed);
                // Failures are printed and the session goes on.
                if let Ok(Flow::Exit) = session.run_text(&input, false, false) {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => pending.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => bail!("cannot read input: {e}"),
        }
    }
    session.print("Exiting Runnel CLI.\n");
    Ok(())
}

/// `runnel run FILE --server URL`: runs the script's statements on the server one by one,
/// printing each with its result, and fails at the first statement the server rejects.
pub fn run_remote(
    file: &Path,
    url: &str,
    defines: Vec<(String, String)>,
    properties: Vec<(String, String)>,
) -> Result<()> {
    interrupt::install();
    let client = Client::new(url);
    client
        .info(Duration::from_secs(10))
        .with_context(|| format!("no ksqlDB-compatible server at {url}"))?;
    let mut session = Session::new(client);
    session.variables.extend(defines);
    session.properties.extend(properties);
    match session.run_file(file, true) {
        Ok(_) => Ok(()),
        Err(f) if f.line == 0 => bail!("{}", f.message),
        Err(f) => bail!("{}:{}: {}", file.display(), f.line, f.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_offers_keywords_and_names() {
        let names = vec!["PAGEVIEWS".to_string(), "pageviews_topic".to_string()];
        assert_eq!(
            candidates("pag", &names),
            vec!["PAGEVIEWS".to_string(), "pageviews_topic".to_string()]
        );
        assert_eq!(candidates("SEL", &names), vec!["SELECT".to_string()]);
        assert_eq!(
            candidates("str", &names),
            vec!["stream", "streams", "string", "struct"]
        );
        assert!(candidates("", &names).is_empty());
        let same = vec!["ORDERS".to_string(), "orders".to_string()];
        assert_eq!(candidates("ORD", &same), vec!["ORDERS".to_string()]);
        assert!(candidates("zzz", &names).is_empty());
    }

    #[test]
    fn completeness() {
        assert!(input_complete("SHOW STREAMS;"));
        assert!(input_complete("exit"));
        assert!(input_complete("spool off"));
        assert!(input_complete("   "));
        assert!(!input_complete("SELECT * FROM s"));
        assert!(!input_complete("SELECT * FROM s\nEMIT CHANGES"));
        assert!(!input_complete("INSERT INTO s VALUES ('a;"));
        assert!(input_complete("SHOW STREAMS; exit"));
        assert!(!input_complete("exit\nnow"));
    }
}

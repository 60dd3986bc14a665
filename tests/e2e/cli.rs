//! The CLI and third-party clients against `runnel server`, through Kafka:
//!
//! * a REPL session driven through tmux as a person types it (statements, a query's table, a
//!   live push query closed with Ctrl-C, the prompt back afterwards);
//! * `runnel run FILE --server URL`;
//! * ksqlDB's community clients from PyPI (`ksql-python-ng`) and npm (`ksqldb-client`), run by
//!   the scripts in `tests/clients/`. They skip (printing why) when the client is not installed;
//!   `.ci/run` installs them.

use super::{external_bootstrap, http, unique};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: `RUNNEL_TEST_BIN` when set (e.g. a copy that a concurrent build
/// cannot replace), else the one cargo built.
fn bin() -> String {
    std::env::var("RUNNEL_TEST_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_runnel").to_string())
}

fn runnel() -> Command {
    Command::new(bin())
}

/// `runnel server` on a free loopback port; killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut cmd = runnel();
        cmd.args(["server", "--listeners", &format!("http://127.0.0.1:{port}")]);
        if let Some(b) = external_bootstrap() {
            // A shared broker keeps every server's command topic: a service id of its own keeps
            // this server from replaying another test's statements.
            cmd.args(["--bootstrap-servers", &b]);
            cmd.args(["--property", &format!("ksql.service.id={}_", unique("cli"))]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start runnel server");
        let server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn ksql(&self, sql: &str) -> serde_json::Value {
        let (status, out) = http(
            self.port,
            "POST",
            "/ksql",
            &serde_json::json!({ "ksql": sql }).to_string(),
        );
        assert_eq!(status, 200, "{sql}: {out}");
        serde_json::from_str(&out).expect("ksql JSON")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool_available(name: &str) -> bool {
    Command::new(name)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A tmux session on a private socket, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    fn run(&self, args: &[&str]) {
        let status = self.cmd().args(args).status().expect("tmux");
        assert!(status.success(), "tmux {args:?} failed");
    }

    /// Types `text` (literally) and presses Enter.
    fn type_line(&self, text: &str) {
        // tmux reads an argument ending in ';' as a command separator: escape it.
        let escaped = match text.strip_suffix(';') {
            Some(t) => format!("{t}\\;"),
            None => text.to_string(),
        };
        self.run(&["send-keys", "-t", "cli", "-l", &escaped]);
        self.run(&["send-keys", "-t", "cli", "Enter"]);
    }

    fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-J", "-S", "-2000", "-t", "cli"])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `done(screen)` holds; fails with the screen otherwise.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The screen after the last `marker` line.
    fn after(screen: &str, marker: &str) -> String {
        screen
            .rfind(marker)
            .map(|i| screen[i + marker.len()..].to_string())
            .unwrap_or_default()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// Whether a line of the screen is a table row with exactly these cells.
fn has_row(screen: &str, cells: &[&str]) -> bool {
    screen.lines().any(|l| {
        let l = l.trim_end();
        l.starts_with('|')
            && l.ends_with('|')
            && l[1..l.len() - 1]
                .split('|')
                .map(str::trim)
                .eq(cells.iter().copied())
    })
}

#[test]
fn repl_session_through_tmux() {
    if !tool_available("tmux") {
        println!("SKIPPED repl_session_through_tmux: tmux is not installed (.ci/run installs it)");
        return;
    }
    let server = Server::start();
    let home = std::env::temp_dir().join(unique("runnel_cli_home"));
    std::fs::create_dir_all(&home).expect("home dir");
    let tmux = Tmux {
        socket: unique("runnel_test"),
    };
    // Ctrl-C reaches the whole foreground process group, the shell included: the trap keeps
    // the shell (and so the pane) alive, as an interactive shell would be.
    let shell = format!(
        "trap : INT; HOME='{}' '{}' cli {}; echo CLI-EXITED-$?; sleep 600",
        home.display(),
        bin(),
        server.url()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "cli",
        "-x",
        "150",
        "-y",
        "50",
        "sh",
        "-c",
        &shell,
    ]);
    let prompts = |s: &str| s.matches("runnel> ").count();
    tmux.wait_for("the banner and prompt", |s| {
        s.contains(&server.url()) && s.contains("runnel> ")
    });

    let stream = unique("CLI_S").to_uppercase();
    let topic = stream.to_lowercase();
    // A statement typed over two lines.
    tmux.type_line(&format!("CREATE STREAM {stream} (K STRING KEY, V INT)"));
    tmux.type_line(&format!(
        "  WITH (KAFKA_TOPIC='{topic}', VALUE_FORMAT='JSON', PARTITIONS=1);"
    ));
    tmux.wait_for("Stream created", |s| s.contains(" Stream created"));
    let n = prompts(&tmux.screen());
    tmux.type_line(&format!("INSERT INTO {stream} (K, V) VALUES ('a', 1);"));
    tmux.wait_for("the prompt", |s| prompts(s) > n);
    let n = prompts(&tmux.screen());
    tmux.type_line(&format!("INSERT INTO {stream} (K, V) VALUES ('b', 2);"));
    tmux.wait_for("the prompt", |s| prompts(s) > n);
    tmux.type_line("SET 'auto.offset.reset'='earliest';");
    tmux.wait_for("SET's answer", |s| {
        s.contains("Successfully changed local property 'auto.offset.reset' to 'earliest'.")
    });

    // A query's rows as a table, ended by its LIMIT.
    tmux.type_line(&format!("SELECT K, V FROM {stream} EMIT CHANGES LIMIT 2;"));
    let screen = tmux.wait_for("the LIMIT query to end", |s| {
        s.contains("Limit Reached") && s.trim_end().ends_with("runnel>")
    });
    assert!(has_row(&screen, &["K", "V"]), "header row:\n{screen}");
    assert!(has_row(&screen, &["a", "1"]), "row a:\n{screen}");
    assert!(has_row(&screen, &["b", "2"]), "row b:\n{screen}");

    // A push query without LIMIT: rows arrive live, Ctrl-C closes it, the CLI stays.
    tmux.type_line(&format!("SELECT V * 10 AS TEN FROM {stream}"));
    tmux.type_line("EMIT CHANGES;");
    tmux.wait_for("the pushed rows so far", |s| {
        let live = Tmux::after(s, "EMIT CHANGES;");
        has_row(&live, &["TEN"]) && has_row(&live, &["10"]) && has_row(&live, &["20"])
    });
    server.ksql(&format!("INSERT INTO {stream} (K, V) VALUES ('c', 3);"));
    tmux.wait_for("a row inserted while the query runs", |s| {
        has_row(&Tmux::after(s, "EMIT CHANGES;"), &["30"])
    });
    tmux.run(&["send-keys", "-t", "cli", "C-c"]);
    let screen = tmux.wait_for("the prompt after Ctrl-C", |s| {
        let rest = Tmux::after(s, "EMIT CHANGES;");
        rest.contains("Query terminated") && rest.trim_end().ends_with("runnel>")
    });
    assert!(
        !screen.contains("CLI-EXITED"),
        "Ctrl-C ended the CLI:\n{screen}"
    );

    // Still working: a metadata statement and a server error.
    tmux.type_line("SHOW STREAMS;");
    tmux.wait_for("SHOW STREAMS", |s| {
        let rest = Tmux::after(s, "runnel> SHOW STREAMS;");
        rest.contains("Stream Name") && rest.contains(&stream) && rest.contains(&topic)
    });
    // Tab completes the stream's name (fetched from the server).
    let n = prompts(&tmux.screen());
    tmux.run(&[
        "send-keys",
        "-t",
        "cli",
        "-l",
        &format!("DESCRIBE {}", &stream[..stream.len() - 3]),
    ]);
    tmux.run(&["send-keys", "-t", "cli", "Tab"]);
    tmux.type_line(";");
    tmux.wait_for("DESCRIBE of the completed name", |s| {
        prompts(s) > n
            && Tmux::after(s, &format!("runnel> DESCRIBE {stream};"))
                .contains(&format!("Name                 : {stream}"))
    });
    tmux.type_line("DESCRIBE NO_SUCH_STREAM;");
    tmux.wait_for("the server's error", |s| {
        // ksqlDB's words: Could not find STREAM/TABLE 'NO_SUCH_STREAM' in the Metastore
        let rest = Tmux::after(s, "DESCRIBE NO_SUCH_STREAM;");
        rest.contains("NO_SUCH_STREAM") && rest.trim_end().ends_with("runnel>")
    });
    tmux.type_line("exit");
    tmux.wait_for("the CLI to exit", |s| s.contains("CLI-EXITED-0"));
    let history = std::fs::read_to_string(home.join(".runnel_history")).unwrap_or_default();
    assert!(
        history.contains("SHOW STREAMS;") && history.contains("EMIT CHANGES;"),
        "history file: {history}"
    );
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn run_file_against_a_server() {
    let server = Server::start();
    let dir = std::env::temp_dir().join(unique("runnel_run_server"));
    std::fs::create_dir_all(&dir).expect("dir");
    let stream = unique("RUN_S").to_uppercase();
    let good = dir.join("good.sql");
    std::fs::write(
        &good,
        "-- deployed with runnel run --server\n\
         DEFINE out = '${src}_DOUBLED';\n\
         CREATE STREAM ${src} (K STRING KEY, V INT)\n  \
           WITH (KAFKA_TOPIC='${src}', VALUE_FORMAT='JSON', PARTITIONS=1);\n\
         INSERT INTO ${src} (K, V) VALUES ('a', 1);\n\
         INSERT INTO ${src} (K, V) VALUES ('b', 2);\n\
         CREATE STREAM ${out} AS SELECT K, V * 2 AS D FROM ${src};\n",
    )
    .expect("write sql");
    let out = runnel()
        .args([
            "run",
            &good.display().to_string(),
            "--server",
            &server.url(),
        ])
        .args(["--define", &format!("src={stream}")])
        .output()
        .expect("run --server");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("runnel> CREATE STREAM {stream} (K STRING KEY")),
        "each statement is echoed: {stdout}"
    );
    assert!(stdout.contains(" Stream created"), "{stdout}");
    assert!(
        stdout.contains(&format!("Created query with ID CSAS_{stream}_DOUBLED_")),
        "{stdout}"
    );
    // The query runs on the server, not in the finished command.
    let listed = server.ksql("SHOW QUERIES;");
    assert_eq!(
        listed[0]["queries"][0]["sinks"][0],
        format!("{stream}_DOUBLED"),
        "{listed}"
    );
    let query = serde_json::json!({
        "sql": format!("SELECT * FROM {stream}_DOUBLED EMIT CHANGES LIMIT 2;"),
        "properties": {"auto.offset.reset": "earliest"},
    });
    let (status, rows) = http(server.port, "POST", "/query-stream", &query.to_string());
    assert_eq!(status, 200, "{rows}");
    let mut got: Vec<&str> = rows.lines().skip(1).collect();
    got.sort();
    assert_eq!(got, vec![r#"["a",2]"#, r#"["b",4]"#], "{rows}");

    // A failing statement stops the run with its line and the server's message; the ones
    // before it stay applied.
    let bad = dir.join("bad.sql");
    let other = unique("RUN_T").to_uppercase();
    std::fs::write(
        &bad,
        format!(
            "CREATE STREAM {other} (V INT) WITH (KAFKA_TOPIC='{other}', VALUE_FORMAT='JSON', PARTITIONS=1);\n\n\
             DROP STREAM NOT_THERE_{other};\n\
             CREATE STREAM NEVER_{other} AS SELECT * FROM {other};\n"
        ),
    )
    .expect("write sql");
    let out = runnel()
        .args(["run", &bad.display().to_string(), "--server", &server.url()])
        .output()
        .expect("run --server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a failed statement fails the run");
    assert!(
        stderr.contains(&format!("{}:3: ", bad.display())) && stderr.contains("does not exist"),
        "{stderr}"
    );
    let streams = server.ksql("SHOW STREAMS;").to_string();
    assert!(streams.contains(&format!("\"{other}\"")), "{streams}");
    assert!(!streams.contains(&format!("NEVER_{other}")), "{streams}");

    // No server there: a clear error.
    let out = runnel()
        .args([
            "run",
            &good.display().to_string(),
            "--server",
            "http://127.0.0.1:9",
        ])
        .output()
        .expect("run --server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no ksqlDB-compatible server at http://127.0.0.1:9"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a client check script; its output is shown, and a non-zero exit fails the test.
fn run_client_check(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

#[test]
fn clients_python_ksql_python_ng() {
    let venv = std::env::var("RUNNEL_CLIENTS_VENV")
        .unwrap_or_else(|_| "/var/tmp/runnel-clients-venv".to_string());
    let python = PathBuf::from(&venv).join("bin/python");
    let installed = Command::new(&python)
        .args(["-c", "import ksql"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        println!(
            "SKIPPED clients_python_ksql_python_ng: ksql-python-ng is not installed in {venv} \
             (.ci/run installs tests/clients/python/requirements.txt there)"
        );
        return;
    }
    let server = Server::start();
    let mut cmd = Command::new(python);
    cmd.arg(repo_root().join("tests/clients/python/check.py"))
        .arg(server.url())
        .arg(unique("py"));
    run_client_check(cmd, "the ksql-python-ng check");
}

#[test]
fn clients_node_ksqldb_client() {
    let dir = repo_root().join("tests/clients/node");
    if !tool_available("node") || !dir.join("node_modules/ksqldb-client").exists() {
        println!(
            "SKIPPED clients_node_ksqldb_client: node or ksqldb-client is not installed \
             (run `npm ci` in tests/clients/node; .ci/run does)"
        );
        return;
    }
    let server = Server::start();
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("check.js"))
        .arg(server.url())
        .arg(unique("js"));
    run_client_check(cmd, "the ksqldb-client check");
}

/// `runnel cli --local -e ...`: a server inside the CLI process, statements run and the CLI
/// exits; a rejected statement is a non-zero exit with the server's message. Also statements
/// piped into the shell (no terminal).
#[test]
fn cli_execute_on_an_in_process_server() {
    let stream = unique("CLI_E").to_uppercase();
    let mut cmd = runnel();
    cmd.args(["cli", "--local", "-e"]);
    cmd.arg(format!(
        "SET 'auto.offset.reset'='earliest';\n\
         CREATE STREAM {stream} (K STRING KEY, V INT) WITH (KAFKA_TOPIC='{stream}', VALUE_FORMAT='JSON', PARTITIONS=1);\n\
         INSERT INTO {stream} (K, V) VALUES ('a', 1);\n\
         SELECT * FROM {stream} EMIT CHANGES LIMIT 1;"
    ));
    if let Some(b) = external_bootstrap() {
        cmd.args(["--bootstrap-servers", &b]);
    }
    let out = cmd.output().expect("runnel cli -e");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(" Stream created"), "{stdout}");
    assert!(has_row(&stdout, &["K", "V"]), "{stdout}");
    assert!(has_row(&stdout, &["a", "1"]), "{stdout}");
    assert!(stdout.contains("Limit Reached"), "{stdout}");

    let mut cmd = runnel();
    cmd.args(["cli", "--local", "-e", "DROP STREAM NOT_THERE;"]);
    if let Some(b) = external_bootstrap() {
        cmd.args(["--bootstrap-servers", &b]);
    }
    let out = cmd.output().expect("runnel cli -e");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a rejected statement fails");
    assert!(stderr.contains("NOT_THERE does not exist"), "{stderr}");

    // Piped input: lines gather into statements; a failure is printed and the rest still runs.
    let server = Server::start();
    let mut child = runnel()
        .args(["cli", &server.url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runnel cli");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        write!(
            stdin,
            "CREATE STREAM {stream} (K STRING KEY, V INT)\n  WITH (KAFKA_TOPIC='{stream}', \
             VALUE_FORMAT='JSON', PARTITIONS=1);\nDESCRIBE NOPE;\nOUTPUT JSON\nSHOW STREAMS;\nexit\n"
        )
        .expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(" Stream created"), "{stdout}");
    assert!(stdout.contains("NOPE"), "the error is shown: {stdout}");
    assert!(
        stdout.contains("\"@type\": \"streams\"") && stdout.contains(&format!("\"{stream}\"")),
        "OUTPUT JSON prints the entities: {stdout}"
    );
}

/// The CLI shows a table push query's deleted key as ksqlDB's CLI does: `<TOMBSTONE>` in the
/// columns the tombstone has no value for (it reads `/query`, whose rows carry tombstones).
#[test]
fn cli_shows_table_tombstones() {
    let stream = unique("CLI_T").to_uppercase();
    let mut cmd = runnel();
    cmd.args(["cli", "--local", "-e"]);
    cmd.arg(format!(
        "SET 'auto.offset.reset'='earliest';\n\
         SET 'ksql.streams.cache.max.bytes.buffering'='0';\n\
         CREATE STREAM {stream} (K STRING KEY, V INT) WITH (KAFKA_TOPIC='{stream}', VALUE_FORMAT='JSON', PARTITIONS=1);\n\
         CREATE TABLE {stream}_SUMS AS SELECT K, SUM(V) AS TOTAL FROM {stream} GROUP BY K HAVING SUM(V) > 0;\n\
         INSERT INTO {stream} (K, V) VALUES ('a', 5);\n\
         INSERT INTO {stream} (K, V) VALUES ('a', -10);\n\
         SELECT * FROM {stream}_SUMS EMIT CHANGES LIMIT 2;"
    ));
    if let Some(b) = external_bootstrap() {
        cmd.args(["--bootstrap-servers", &b]);
    }
    let out = cmd.output().expect("runnel cli -e");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(has_row(&stdout, &["K", "TOTAL"]), "{stdout}");
    assert!(has_row(&stdout, &["a", "5"]), "{stdout}");
    assert!(has_row(&stdout, &["a", "<TOMBSTONE>"]), "{stdout}");
    assert!(stdout.contains("Limit Reached"), "{stdout}");
}

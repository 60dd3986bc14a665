//! `runnel`: the command-line entry point.
//!
//! `runnel run FILE.sql` runs a script against Kafka (an embedded broker when no bootstrap servers
//! are given) and keeps its persistent queries running until Ctrl-C.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use runnel_connect::kafka::{EmbeddedBroker, KafkaConfig};
use runnel_engine::output::StatementOutput;
use runnel_engine::{Backend, Engine};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A query's hot path allocates small, short-lived values per record (decoded rows, keys,
/// encoded outputs) from one thread while librdkafka's threads free what they were handed;
/// mimalloc's thread-local free lists cost a fraction of glibc malloc's there (measured with
/// `runnel bench`: malloc/free were about a third of an aggregation's CPU under glibc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod repl;
mod test_runner;

#[derive(Parser)]
#[command(
    name = "runnel",
    version,
    about = "Streaming SQL on Kafka, compatible with ksqlDB"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How to reach Kafka.
#[derive(clap::Args, Clone)]
struct KafkaArgs {
    /// Kafka bootstrap servers (host:port,...). Without it, an embedded broker is started.
    #[arg(long, env = "RUNNEL_BOOTSTRAP_SERVERS")]
    bootstrap_servers: Option<String>,
    /// A client property passed to librdkafka and to the engine (repeatable), e.g.
    /// `--property security.protocol=SASL_SSL` or `--property ksql.service.id=app1_`.
    #[arg(long = "property", short = 'p', value_name = "KEY=VALUE")]
    properties: Vec<String>,
    /// A Java-style properties file with client and engine properties.
    #[arg(long, value_name = "FILE")]
    properties_file: Option<PathBuf>,
    /// Partitions of the topics created in the embedded broker when a statement does not say.
    #[arg(long, default_value_t = 4)]
    embedded_partitions: i32,
}

#[derive(Subcommand)]
enum Command {
    /// Run a .sql script; keep its persistent queries running until Ctrl-C.
    Run {
        /// The script: ksqlDB statements separated by `;`.
        file: PathBuf,
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Exit once every statement has run (and push queries have reached their LIMIT),
        /// instead of waiting for Ctrl-C.
        #[arg(long)]
        exit: bool,
        /// Define a variable for `${name}` substitution (repeatable).
        #[arg(long = "define", short = 'd', value_name = "NAME=VALUE")]
        defines: Vec<String>,
        /// Deploy the statements to a running server (e.g. http://localhost:8088) through its
        /// REST API instead of running them in this process.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
    },
    /// An interactive shell (like the ksql CLI) over a server's REST API.
    Cli {
        /// The server, e.g. http://localhost:8088. Without it: http://localhost:8088 if a
        /// server answers there, otherwise a server started in this process.
        url: Option<String>,
        /// Run these statements and exit instead of starting the shell.
        #[arg(long, short = 'e', value_name = "SQL")]
        execute: Option<String>,
        /// Define a variable for `${name}` substitution (repeatable).
        #[arg(long = "define", short = 'd', value_name = "NAME=VALUE")]
        defines: Vec<String>,
        /// How results are printed: TABULAR (default) or JSON.
        #[arg(long, value_name = "FORMAT")]
        output: Option<String>,
        /// Always start a server in this process (with the Kafka options below), even when one
        /// answers at http://localhost:8088.
        #[arg(long, conflicts_with = "url")]
        local: bool,
        /// Kafka for the in-process server (ignored when talking to a remote server).
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Run ksqlDB test files (QTT JSON files or directories of them) or a ksql-test-runner case.
    Test(test_runner::TestArgs),
    /// Measure events/s per core, Kafka → Kafka, against the raw Kafka client in the same run.
    Bench(bench::BenchArgs),
    /// Serve ksqlDB's REST API (/ksql, /query, /query-stream, /inserts-stream, /info, ...).
    Server {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Where to listen, comma-separated (default: the `listeners` property, else
        /// http://0.0.0.0:8088).
        #[arg(long)]
        listeners: Option<String>,
    },
}

fn parse_pair(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
        None => bail!("expected KEY=VALUE, got '{s}'"),
    }
}

fn read_properties_file(path: &PathBuf) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .map(parse_pair)
        .collect()
}

/// Splits properties into engine settings (`ksql.*`, Runnel's own `runnel.*`,
/// `auto.offset.reset`) and librdkafka ones.
fn split_properties(
    args: &KafkaArgs,
) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    let mut all = Vec::new();
    if let Some(f) = &args.properties_file {
        all.extend(read_properties_file(f)?);
    }
    for p in &args.properties {
        all.push(parse_pair(p)?);
    }
    let mut engine = BTreeMap::new();
    let mut client = BTreeMap::new();
    for (k, v) in all {
        if k == "bootstrap.servers" || k == "listeners" {
            continue;
        }
        if k.starts_with("ksql.") || k.starts_with("runnel.") || k == "auto.offset.reset" {
            engine.insert(k, v);
        } else {
            client.insert(k, v);
        }
    }
    Ok((engine, client))
}

/// Connects to the given cluster, or starts the embedded broker.
fn kafka_config(args: &KafkaArgs) -> Result<(KafkaConfig, BTreeMap<String, String>)> {
    let (engine, client) = split_properties(args)?;
    let bootstrap = args.bootstrap_servers.clone().or_else(|| {
        let from_file = args
            .properties_file
            .as_ref()
            .and_then(|f| read_properties_file(f).ok());
        from_file.and_then(|p| {
            p.into_iter()
                .find(|(k, _)| k == "bootstrap.servers")
                .map(|(_, v)| v)
        })
    });
    let config = match bootstrap {
        Some(b) => KafkaConfig {
            bootstrap_servers: b,
            properties: client,
            embedded: None,
        },
        None => {
            let broker =
                EmbeddedBroker::start().context("cannot start the embedded Kafka broker")?;
            let bootstrap = broker.bootstrap_servers();
            eprintln!("Embedded Kafka broker (librdkafka mock cluster) at {bootstrap}");
            eprintln!("  it keeps at most ~5 MiB per partition; use --bootstrap-servers for real workloads");
            KafkaConfig {
                bootstrap_servers: bootstrap,
                properties: client,
                embedded: Some(Arc::new(broker)),
            }
        }
    };
    Ok((config, engine))
}

/// Set by Ctrl-C.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn install_ctrl_c() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            loop {
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
                INTERRUPTED.store(true, Ordering::SeqCst);
            }
        });
    });
}

fn print_push(query: runnel_engine::runner::PushQuery) {
    let widths: Vec<usize> = query.columns.iter().map(|(n, _)| n.len().max(12)).collect();
    let sep = format!(
        "+{}+",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let line = |cells: Vec<String>| {
        let body: Vec<String> = cells
            .iter()
            .zip(widths.iter())
            .map(|(c, w)| format!(" {c:<w$} "))
            .collect();
        format!("|{}|", body.join("|"))
    };
    println!("{sep}");
    println!(
        "{}",
        line(query.columns.iter().map(|(n, _)| n.clone()).collect())
    );
    println!("{sep}");
    let mut count = 0u64;
    let mut running = query.running;
    loop {
        if INTERRUPTED.swap(false, Ordering::SeqCst) {
            println!("Query terminated");
            break;
        }
        match query.rows.recv_timeout(Duration::from_millis(100)) {
            Ok(row) => {
                // As ksqlDB's CLI: a deleted key shows `<TOMBSTONE>` in its null columns.
                let cells = row
                    .values
                    .iter()
                    .map(|v| match v {
                        runnel_plan::Value::Null if row.tombstone => "<TOMBSTONE>".to_string(),
                        v => v.to_string(),
                    })
                    .collect();
                println!("{}", line(cells));
                count += 1;
                if query.limit.is_some_and(|l| count >= l) {
                    println!("{sep}");
                    println!("Limit Reached");
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    running.stop();
}

fn show(output: StatementOutput) {
    match output {
        StatementOutput::Push(p) => print_push(p),
        StatementOutput::Print { lines, mut running } => {
            loop {
                if INTERRUPTED.swap(false, Ordering::SeqCst) {
                    break;
                }
                match lines.recv_timeout(Duration::from_millis(100)) {
                    Ok(l) => println!("{l}"),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            running.stop();
        }
        StatementOutput::Script(outputs) => outputs.into_iter().for_each(show),
        other => print!("{}", other.render()),
    }
}

fn run(
    file: PathBuf,
    kafka: KafkaArgs,
    exit: bool,
    defines: Vec<String>,
    server: Option<String>,
) -> Result<()> {
    if let Some(url) = server {
        let defines = defines
            .iter()
            .map(|d| parse_pair(d))
            .collect::<Result<Vec<_>>>()?;
        let (engine_props, _) = split_properties(&kafka)?;
        return repl::run_remote(&file, &url, defines, engine_props.into_iter().collect());
    }
    let sql = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let (config, engine_props) = kafka_config(&kafka)?;
    let mut engine = Engine::new(Backend::Kafka(config), engine_props);
    for d in &defines {
        let (k, v) = parse_pair(d)?;
        engine.variables.insert(k, v);
    }
    install_ctrl_c();
    let statements = engine
        .parse(&sql)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    for stmt in statements {
        if INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
        println!("runnel> {}", stmt.text.trim());
        match engine.execute(&stmt) {
            Ok(out) => show(out),
            Err(e) => {
                engine.shutdown();
                bail!("{}:{}:{}: {e}", file.display(), stmt.line, stmt.column);
            }
        }
    }
    if !exit && !engine.queries.is_empty() {
        eprintln!(
            "{} persistent quer{} running; press Ctrl-C to stop",
            engine.queries.len(),
            if engine.queries.len() == 1 {
                "y"
            } else {
                "ies"
            }
        );
        while !INTERRUPTED.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    eprintln!("Stopping: flushing outputs and committing offsets...");
    engine.shutdown();
    Ok(())
}

/// `runnel server`: the REST API over one engine, until Ctrl-C or SIGTERM.
fn server(kafka: KafkaArgs, listeners: Option<String>) -> Result<()> {
    let mut configured = None;
    if let Some(f) = &kafka.properties_file {
        configured = read_properties_file(f)?
            .into_iter()
            .find(|(k, _)| k == "listeners");
    }
    for p in &kafka.properties {
        configured = Some(parse_pair(p)?)
            .filter(|(k, _)| k == "listeners")
            .or(configured);
    }
    let listeners = listeners
        .or(configured.map(|(_, v)| v))
        .unwrap_or_else(|| "http://0.0.0.0:8088".to_string());
    let (config, engine_props) = kafka_config(&kafka)?;
    runnel_server::run(
        Engine::new(Backend::Kafka(config), engine_props),
        &listeners,
    )?;
    Ok(())
}

/// `runnel cli`: the REPL against `url`, localhost:8088, or a server started in-process.
fn cli_shell(
    url: Option<String>,
    execute: Option<String>,
    defines: Vec<String>,
    output: Option<String>,
    local: bool,
    kafka: KafkaArgs,
) -> Result<()> {
    const DEFAULT_URL: &str = "http://localhost:8088";
    let mut local_server = None;
    let url = match url {
        Some(u) => u,
        None if !local && repl::server_answers(DEFAULT_URL) => DEFAULT_URL.to_string(),
        None => {
            let (config, engine_props) = kafka_config(&kafka)?;
            let server =
                repl::LocalServer::start(Engine::new(Backend::Kafka(config), engine_props))?;
            let url = server.url.clone();
            local_server = Some(server);
            url
        }
    };
    let mut session = repl::Session::new(repl::Client::new(&url));
    for d in &defines {
        let (k, v) = parse_pair(d)?;
        session.variables.insert(k, v);
    }
    if let Some(o) = output {
        session
            .run_statement(&format!("OUTPUT {o}"))
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    let result = repl::repl(session, execute, local_server.is_some());
    if let Some(mut s) = local_server {
        eprintln!("Stopping the in-process server: flushing outputs and committing offsets...");
        s.stop();
    }
    result
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,runnel=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            file,
            kafka,
            exit,
            defines,
            server,
        } => run(file, kafka, exit, defines, server),
        Command::Cli {
            url,
            execute,
            defines,
            output,
            local,
            kafka,
        } => cli_shell(url, execute, defines, output, local, kafka),
        Command::Test(args) => test_runner::main(args),
        Command::Bench(args) => bench::main(args),
        Command::Server { kafka, listeners } => server(kafka, listeners),
    };
    if let Err(e) = result {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

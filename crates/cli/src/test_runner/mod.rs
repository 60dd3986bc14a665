//! `runnel test`: runs ksqlDB's query-validation test files (QTT) and ksql-test-runner cases
//! against Runnel's engine.
//!
//! ksqlDB's own conformance files are the judge of compatibility, so this runner follows the Java
//! runner's semantics (see `model`, `execute` and `compare`). Each case runs in a fresh in-memory
//! engine on its own thread: a panic or a hang in one case is reported as that case's failure and
//! the run goes on. Cases the engine declines as "not supported yet" are counted as skipped, apart
//! from failures, so the pass rate stays honest.
//!
//! With `--kafka` the same cases run end to end through a Kafka broker (`kafka`), judged by the
//! same comparison; cases run in parallel there (`--jobs`), as most of a case's time is spent
//! waiting for consumer groups and records.
//!
//! `--rest` runs ksqlDB's REST test files against the REST server (`rest`): on an in-memory
//! engine, or with `--kafka` on an engine on a broker (`rest_kafka`).

mod compare;
mod execute;
mod json;
mod kafka;
mod model;
mod rest;
mod rest_kafka;
mod values;

use anyhow::{bail, Context, Result};
use execute::Outcome;
use json::Json;
use model::{TestCase, TestFile};
use std::collections::BTreeMap;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

#[derive(clap::Args)]
pub struct TestArgs {
    /// QTT files or directories of them.
    pub paths: Vec<PathBuf>,
    /// Show each failing case with its first difference, and each skipped case with the reason.
    #[arg(long, short)]
    pub verbose: bool,
    /// Only run cases whose full name contains this text.
    #[arg(long)]
    pub filter: Option<String>,
    /// Write the counts as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Full case names (one per line) that must pass; the exit status is non-zero if any fails.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Write the names of the passing cases to this file.
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,
    /// Exit with status 0 even when cases fail.
    #[arg(long)]
    pub allow_failures: bool,
    /// Seconds a case may run before it is counted as failed.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
    /// Run ksqlDB's REST query-validation tests (RQTT files) against a live in-process REST
    /// server: statements through `/ksql`, queries through `/query`, responses compared.
    #[arg(long)]
    pub rest: bool,
    /// Run each case end to end through a Kafka broker instead of in-memory topics: an embedded
    /// broker per case, or the cluster given by --bootstrap-servers. Without --rest, cases that
    /// expect an error or have no expected outputs are left to the memory mode. With --rest, the
    /// REST server's engine runs on the broker and every case runs.
    #[arg(long)]
    pub kafka: bool,
    /// With --kafka: an external Kafka cluster (host:port,...). Every topic of a case is then
    /// given a per-case suffix, and deleted after the case.
    #[arg(long, env = "RUNNEL_TEST_BOOTSTRAP", value_name = "SERVERS")]
    pub bootstrap_servers: Option<String>,
    /// With --kafka: seconds to wait for a case's expected output records.
    #[arg(long, default_value_t = 20)]
    pub kafka_timeout_secs: u64,
    /// With --kafka: milliseconds to keep reading after the expected records, to catch extra ones.
    #[arg(long, default_value_t = 1000)]
    pub kafka_grace_ms: u64,
    /// Run a sample of N cases, spread evenly over the selected cases (every k-th case, with
    /// k = selected / N; with --kafka, over the cases eligible for Kafka). Cases outside the
    /// sample are not run and not counted.
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
    /// Only run the cases named in this file (full names, one per line), e.g. a baseline.
    #[arg(long, value_name = "FILE")]
    pub cases: Option<PathBuf>,
    /// Cases run at the same time (default: 1, or 4 with --kafka).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// ksql-test-runner mode: the statements to run.
    #[arg(long, value_name = "FILE", requires = "output_file")]
    pub sql_file: Option<PathBuf>,
    /// ksql-test-runner mode: `{"inputs": [...]}`.
    #[arg(long, value_name = "FILE", requires = "sql_file")]
    pub input_file: Option<PathBuf>,
    /// ksql-test-runner mode: `{"outputs": [...]}`.
    #[arg(long, value_name = "FILE", requires = "sql_file")]
    pub output_file: Option<PathBuf>,
}

pub fn main(args: TestArgs) -> Result<()> {
    if let Some(sql) = &args.sql_file {
        return test_runner_mode(
            sql,
            args.input_file.as_deref(),
            args.output_file.as_deref(),
            args.timeout_secs,
        );
    }
    if args.paths.is_empty() {
        bail!("give QTT files or directories, or --sql-file/--input-file/--output-file");
    }
    if args.rest {
        return run_rest_files(&args);
    }
    run_files(&args)
}

/// Counts for one file (or the whole run).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Counts {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Counts {
    fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed(_) => self.failed += 1,
            Outcome::Skipped(_) => self.skipped += 1,
        }
    }

    fn to_json(&self) -> Vec<(String, Json)> {
        [
            ("passed", self.passed),
            ("failed", self.failed),
            ("skipped", self.skipped),
        ]
        .into_iter()
        .map(|(k, n)| (k.to_string(), Json::Number(n.to_string())))
        .collect()
    }
}

/// The files to run: files as given, directories' `*.json` files (recursively), sorted.
fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|e| e == "json") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut files)?;
        } else if p.exists() {
            files.push(p.clone());
        } else {
            bail!("{} does not exist", p.display());
        }
    }
    Ok(files)
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-text payload".to_string())
}

/// Where cases run.
#[derive(Debug, Clone)]
enum Mode {
    /// In-memory topics and the deterministic driver.
    Memory,
    Kafka(Arc<kafka::KafkaSettings>),
}

impl Mode {
    fn run(&self, case: &TestCase) -> Outcome {
        match self {
            Mode::Memory => execute::run_case(case),
            Mode::Kafka(settings) => kafka::run_case(case, settings),
        }
    }
}

/// Runs a case on its own thread, turning a panic or a timeout into a failure.
fn run_isolated(case: &TestCase, mode: &Mode, timeout: Duration) -> Outcome {
    let owned = case.clone();
    let mode = mode.clone();
    on_own_thread("qtt-case", timeout, move || mode.run(&owned))
}

/// Runs `run` on a thread of its own (deep expressions need a large stack), turning a panic or a
/// timeout into a failure; a thread that times out cannot be stopped and is left behind.
fn on_own_thread(
    name: &str,
    timeout: Duration,
    run: impl FnOnce() -> Outcome + Send + 'static,
) -> Outcome {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .stack_size(16 << 20)
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
                .unwrap_or_else(|payload| {
                    Outcome::Failed(format!("panicked: {}", panic_message(payload.as_ref())))
                });
            // The receiver is gone only after a timeout; nothing to report then.
            let _ = tx.send(outcome);
        });
    if let Err(e) = spawned {
        return Outcome::Failed(format!("cannot start a thread for the case: {e}"));
    }
    match rx.recv_timeout(timeout) {
        Ok(outcome) => outcome,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Outcome::Failed(format!("timed out after {}s", timeout.as_secs()))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Outcome::Failed("the case's thread died".into())
        }
    }
}

/// Replaces the panic hook with a silent one for the run (panics are reported per case).
struct QuietPanics;

impl QuietPanics {
    fn install() -> Self {
        std::panic::set_hook(Box::new(|_| {}));
        QuietPanics
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        let _ = std::panic::take_hook();
    }
}

fn indent(text: &str) -> String {
    text.lines().collect::<Vec<_>>().join("\n      ")
}

/// What happens to one selected case.
enum Planned {
    /// Run as job number `.0`.
    Run(usize),
    /// Counted as skipped without running.
    Skip(String),
}

/// Indices of `n` items spread evenly over `total` (all of them when `n >= total`).
fn sample_indices(total: usize, n: usize) -> Vec<usize> {
    if n >= total {
        return (0..total).collect();
    }
    (0..n).map(|k| k * total / n).collect()
}

/// Runs `jobs` on `workers` threads; results arrive on the returned channel as (job, outcome).
fn spawn_workers<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    jobs: &'scope [TestCase],
    workers: usize,
    mode: &Mode,
    timeout: Duration,
) -> mpsc::Receiver<(usize, Outcome)> {
    let (tx, rx) = mpsc::channel();
    let next = Arc::new(AtomicUsize::new(0));
    for _ in 0..workers.clamp(1, jobs.len().max(1)) {
        let (tx, next, mode) = (tx.clone(), Arc::clone(&next), mode.clone());
        scope.spawn(move || loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(case) = jobs.get(i) else {
                return;
            };
            if tx.send((i, run_isolated(case, &mode, timeout))).is_err() {
                return;
            }
        });
    }
    rx
}

/// The outcome of job `job`, waiting for it while buffering the others.
fn outcome_of(
    job: usize,
    results: &mpsc::Receiver<(usize, Outcome)>,
    done: &mut BTreeMap<usize, Outcome>,
) -> Outcome {
    loop {
        if let Some(outcome) = done.remove(&job) {
            return outcome;
        }
        match results.recv() {
            Ok((i, outcome)) => {
                done.insert(i, outcome);
            }
            Err(_) => return Outcome::Failed("the case's worker stopped".into()),
        }
    }
}

fn run_files(args: &TestArgs) -> Result<()> {
    let files = collect_files(&args.paths)?;
    let baseline = match &args.baseline {
        None => None,
        Some(path) => Some(read_names(path, "baseline")?),
    };
    let only: Option<HashSet<String>> = match &args.cases {
        None => None,
        Some(path) => Some(read_names(path, "case list")?.into_iter().collect()),
    };
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let mode = if args.kafka {
        Mode::Kafka(Arc::new(kafka::KafkaSettings {
            bootstrap_servers: args.bootstrap_servers.clone().filter(|s| !s.is_empty()),
            output_timeout: Duration::from_secs(args.kafka_timeout_secs),
            grace: Duration::from_millis(args.kafka_grace_ms),
        }))
    } else {
        Mode::Memory
    };
    let workers = args.jobs.unwrap_or(if args.kafka { 4 } else { 1 });

    // Load every file and decide what happens to each selected case before running any.
    let mut loaded: Vec<(PathBuf, Result<TestFile, model::LoadError>)> = files
        .iter()
        .map(|p| (p.clone(), model::load_file(p)))
        .collect();
    let mut candidates: Vec<(usize, usize)> = Vec::new();
    let mut plans: Vec<Vec<(usize, Planned)>> = Vec::new();
    for (f, (_, file)) in loaded.iter().enumerate() {
        let mut plan = Vec::new();
        if let Ok(file) = file {
            for (c, case) in file.cases.iter().enumerate() {
                if args
                    .filter
                    .as_ref()
                    .is_some_and(|f| !case.name.contains(f.as_str()))
                    || only.as_ref().is_some_and(|o| !o.contains(&case.name))
                {
                    continue;
                }
                match (&mode, kafka::ineligible(case)) {
                    (Mode::Kafka(_), Some(why)) if args.sample.is_none() => plan.push((
                        c,
                        Planned::Skip(format!("not run through Kafka: the case {why}")),
                    )),
                    (Mode::Kafka(_), Some(_)) => {}
                    _ => candidates.push((f, c)),
                }
            }
        }
        plans.push(plan);
    }
    let chosen: Vec<(usize, usize)> = match args.sample {
        Some(n) => sample_indices(candidates.len(), n)
            .into_iter()
            .map(|i| candidates[i])
            .collect(),
        None => candidates,
    };
    let mut jobs: Vec<TestCase> = Vec::with_capacity(chosen.len());
    for (f, c) in chosen {
        if let (_, Ok(file)) = &mut loaded[f] {
            jobs.push(std::mem::take(&mut file.cases[c]));
            plans[f].push((c, Planned::Run(jobs.len() - 1)));
        }
    }
    // Report in file order; `plans` may list a file's skips before its runs.
    for plan in &mut plans {
        plan.sort_by_key(|(c, _)| *c);
    }

    let _quiet = QuietPanics::install();
    let mut total = Counts::default();
    let mut per_file: Vec<(String, Counts)> = Vec::new();
    let mut passing: Vec<String> = Vec::new();
    let mut not_passing: HashSet<String> = HashSet::new();
    std::thread::scope(|scope| {
        let results = spawn_workers(scope, &jobs, workers, &mode, timeout);
        let mut done = BTreeMap::new();
        for ((path, file), plan) in loaded.iter().zip(&plans) {
            let file = match file {
                Ok(f) => f,
                Err(e) => {
                    println!("{}: cannot load: {e}", path.display());
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let counts = Counts {
                        failed: 1,
                        ..Counts::default()
                    };
                    total.failed += 1;
                    per_file.push((name, counts));
                    continue;
                }
            };
            if (args.sample.is_some() || args.cases.is_some()) && plan.is_empty() {
                continue;
            }
            let mut counts = Counts::default();
            for (c, planned) in plan {
                let (name, outcome) = match planned {
                    Planned::Run(job) => (&jobs[*job].name, outcome_of(*job, &results, &mut done)),
                    Planned::Skip(why) => (&file.cases[*c].name, Outcome::Skipped(why.clone())),
                };
                counts.add(&outcome);
                total.add(&outcome);
                match &outcome {
                    Outcome::Passed => passing.push(name.clone()),
                    Outcome::Failed(why) => {
                        not_passing.insert(name.clone());
                        if args.verbose {
                            println!("  FAIL {name}\n      {}", indent(why));
                        }
                    }
                    Outcome::Skipped(why) => {
                        not_passing.insert(name.clone());
                        if args.verbose {
                            println!("  SKIP {name}: {}", one_line(why));
                        }
                    }
                }
            }
            println!(
                "{}: {} passed, {} failed, {} skipped",
                file.file, counts.passed, counts.failed, counts.skipped
            );
            per_file.push((file.file.clone(), counts));
        }
    });
    finish(
        args,
        &total,
        &per_file,
        &passing,
        &not_passing,
        baseline.as_deref(),
    )
}

/// Prints the totals, writes `--json` and `--write-baseline`, and decides the exit status: with
/// a baseline, only cases of it that no longer pass fail the run.
fn finish(
    args: &TestArgs,
    total: &Counts,
    per_file: &[(String, Counts)],
    passing: &[String],
    not_passing: &HashSet<String>,
    baseline: Option<&[String]>,
) -> Result<()> {
    println!(
        "{} passed, {} failed, {} skipped",
        total.passed, total.failed, total.skipped
    );

    if let Some(path) = &args.json {
        let files_json = per_file
            .iter()
            .map(|(name, c)| {
                let mut fields = vec![("file".to_string(), Json::String(name.clone()))];
                fields.extend(c.to_json());
                Json::Object(fields)
            })
            .collect();
        let mut doc = total.to_json();
        doc.push(("files".to_string(), Json::Array(files_json)));
        std::fs::write(path, format!("{}\n", Json::Object(doc)))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.write_baseline {
        let mut text = passing.join("\n");
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(baseline) = baseline {
        let regressions: Vec<&String> = baseline
            .iter()
            .filter(|n| not_passing.contains(*n))
            .collect();
        if !regressions.is_empty() {
            for r in regressions.iter().take(50) {
                println!("REGRESSION {r}");
            }
            bail!("{} baseline case(s) no longer pass", regressions.len());
        }
        return Ok(());
    }
    if total.failed > 0 && !args.allow_failures {
        bail!("{} test case(s) failed", total.failed);
    }
    Ok(())
}

/// Case names, one per line (blank lines ignored).
fn read_names(path: &Path, what: &str) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// Runs an RQTT case on its own thread, turning a panic or a timeout into a failure.
fn run_rest_isolated(
    case: &rest::RestCase,
    kafka: Option<&Arc<kafka::KafkaSettings>>,
    timeout: Duration,
) -> Outcome {
    let owned = case.clone();
    let kafka = kafka.cloned();
    on_own_thread("rqtt-case", timeout, move || {
        rest::run_case(&owned, kafka.as_deref())
    })
}

/// `runnel test --rest`: RQTT files, with the same reporting and baseline handling as the QTT
/// mode; cases run one at a time in memory, `--jobs` at a time through Kafka.
fn run_rest_files(args: &TestArgs) -> Result<()> {
    let files = collect_files(&args.paths)?;
    let baseline = match &args.baseline {
        None => None,
        Some(path) => Some(read_names(path, "baseline")?),
    };
    let only: Option<HashSet<String>> = match &args.cases {
        None => None,
        Some(path) => Some(read_names(path, "case list")?.into_iter().collect()),
    };
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let kafka = args.kafka.then(|| {
        Arc::new(kafka::KafkaSettings {
            bootstrap_servers: args.bootstrap_servers.clone().filter(|s| !s.is_empty()),
            output_timeout: Duration::from_secs(args.kafka_timeout_secs),
            grace: Duration::from_millis(args.kafka_grace_ms),
        })
    });
    let workers = args.jobs.unwrap_or(if args.kafka { 4 } else { 1 });

    // Load every file and select the cases before running any.
    let mut loaded: Vec<(String, Vec<rest::RestCase>)> = Vec::new();
    let mut total = Counts::default();
    let mut per_file: Vec<(String, Counts)> = Vec::new();
    for path in &files {
        match rest::load_file(path) {
            Ok((file, cases)) => {
                let selected = cases
                    .into_iter()
                    .filter(|c| {
                        let name = &c.case.name;
                        args.filter
                            .as_ref()
                            .is_none_or(|f| name.contains(f.as_str()))
                            && only.as_ref().is_none_or(|o| o.contains(name))
                    })
                    .collect();
                loaded.push((file, selected));
            }
            Err(e) => {
                println!("{}: cannot load: {e}", path.display());
                total.failed += 1;
                per_file.push((
                    path.display().to_string(),
                    Counts {
                        failed: 1,
                        ..Counts::default()
                    },
                ));
            }
        }
    }
    let all: Vec<(usize, usize)> = loaded
        .iter()
        .enumerate()
        .flat_map(|(f, (_, cases))| (0..cases.len()).map(move |c| (f, c)))
        .collect();
    let chosen: Vec<(usize, usize)> = match args.sample {
        Some(n) => sample_indices(all.len(), n)
            .into_iter()
            .map(|i| all[i])
            .collect(),
        None => all,
    };

    let _quiet = QuietPanics::install();
    let mut passing: Vec<String> = Vec::new();
    let mut not_passing: HashSet<String> = HashSet::new();
    std::thread::scope(|scope| {
        let (tx, results) = mpsc::channel::<(usize, Outcome)>();
        let next = Arc::new(AtomicUsize::new(0));
        for _ in 0..workers.clamp(1, chosen.len().max(1)) {
            let (tx, next, kafka) = (tx.clone(), Arc::clone(&next), kafka.clone());
            let (chosen, loaded) = (&chosen, &loaded);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((f, c)) = chosen.get(i) else {
                    return;
                };
                let outcome = run_rest_isolated(&loaded[*f].1[*c], kafka.as_ref(), timeout);
                if tx.send((i, outcome)).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        let mut done = BTreeMap::new();
        let mut job = 0;
        for (f, (file, cases)) in loaded.iter().enumerate() {
            let mut counts = Counts::default();
            let mut ran = false;
            while chosen.get(job).is_some_and(|(jf, _)| *jf == f) {
                let name = cases[chosen[job].1].case.name.clone();
                let outcome = outcome_of(job, &results, &mut done);
                job += 1;
                ran = true;
                counts.add(&outcome);
                total.add(&outcome);
                match &outcome {
                    Outcome::Passed => passing.push(name),
                    Outcome::Failed(why) => {
                        if args.verbose {
                            println!("  FAIL {name}\n      {}", indent(why));
                        }
                        not_passing.insert(name);
                    }
                    Outcome::Skipped(why) => {
                        if args.verbose {
                            println!("  SKIP {name}: {}", one_line(why));
                        }
                        not_passing.insert(name);
                    }
                }
            }
            if !ran && (args.sample.is_some() || args.cases.is_some()) {
                continue;
            }
            println!(
                "{file}: {} passed, {} failed, {} skipped",
                counts.passed, counts.failed, counts.skipped
            );
            per_file.push((file.clone(), counts));
        }
    });
    finish(
        args,
        &total,
        &per_file,
        &passing,
        &not_passing,
        baseline.as_deref(),
    )
}

fn one_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// `ksql-test-runner`: one SQL file, inputs and expected outputs in their own files.
fn test_runner_mode(
    sql: &Path,
    input: Option<&Path>,
    output: Option<&Path>,
    timeout_secs: u64,
) -> Result<()> {
    let statements =
        std::fs::read_to_string(sql).with_context(|| format!("cannot read {}", sql.display()))?;
    let read_records = |path: Option<&Path>, key: &str| -> Result<Vec<model::RecordSpec>> {
        let Some(path) = path else {
            return Ok(Vec::new());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let doc =
            Json::parse(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
        model::records_of(&doc, key, &path.display().to_string()).map_err(anyhow::Error::from)
    };
    let case = TestCase {
        name: "ksql-test-runner".to_string(),
        statements: vec![statements],
        inputs: read_records(input, "inputs")?,
        outputs: read_records(output, "outputs")?,
        ..TestCase::default()
    };
    let _quiet = QuietPanics::install();
    match run_isolated(
        &case,
        &Mode::Memory,
        Duration::from_secs(timeout_secs.max(1)),
    ) {
        Outcome::Passed => {
            println!(">>> Test passed!");
            Ok(())
        }
        Outcome::Failed(why) => {
            println!(">>>>> Test failed: {why}");
            bail!("test failed")
        }
        Outcome::Skipped(why) => {
            println!(">>>>> Test failed: not supported by Runnel yet: {why}");
            bail!("test failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_serialize_as_json() {
        let mut c = Counts::default();
        c.add(&Outcome::Passed);
        c.add(&Outcome::Skipped("x".into()));
        c.add(&Outcome::Failed("y".into()));
        c.add(&Outcome::Passed);
        assert_eq!(
            Json::Object(c.to_json()).to_string(),
            r#"{"passed":2,"failed":1,"skipped":1}"#
        );
    }

    #[test]
    fn panics_become_failures() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("bang")), "bang");
    }
}

//! `runnel test`: runs ksqlDB's query-validation test files (QTT) and ksql-test-runner cases
//! against Runnel's engine.
//!
//! ksqlDB's own conformance files are the judge of compatibility, so this runner follows the Java
//! runner's semantics (see `model`, `execute` and `compare`). Each case runs in a fresh in-memory
//! engine on its own thread: a panic or a hang in one case is reported as that case's failure and
//! the run goes on. Cases the engine declines as "not supported yet" are counted as skipped, apart
//! from failures, so the pass rate stays honest.

mod compare;
mod execute;
mod json;
mod model;
mod values;

use anyhow::{bail, Context, Result};
use execute::Outcome;
use json::Json;
use model::{TestCase, TestFile};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
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

/// Runs a case on its own thread, turning a panic or a timeout into a failure.
fn run_isolated(case: &TestCase, timeout: Duration) -> Outcome {
    let (tx, rx) = mpsc::channel();
    let owned = case.clone();
    let spawned = std::thread::Builder::new()
        .name("qtt-case".into())
        .stack_size(16 << 20)
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                execute::run_case(&owned)
            }))
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
        // The thread cannot be stopped; it is left behind and the run goes on.
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

fn run_files(args: &TestArgs) -> Result<()> {
    let files = collect_files(&args.paths)?;
    let baseline: Option<Vec<String>> = match &args.baseline {
        None => None,
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read baseline {}", path.display()))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        ),
    };
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let _quiet = QuietPanics::install();
    let mut total = Counts::default();
    let mut per_file: Vec<(String, Counts)> = Vec::new();
    let mut passing: Vec<String> = Vec::new();
    let mut not_passing: HashSet<String> = HashSet::new();
    for path in &files {
        let file = match model::load_file(path) {
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
        let TestFile { file: name, cases } = file;
        let mut counts = Counts::default();
        for case in cases.iter().filter(|c| {
            args.filter
                .as_ref()
                .is_none_or(|f| c.name.contains(f.as_str()))
        }) {
            let outcome = run_isolated(case, timeout);
            counts.add(&outcome);
            total.add(&outcome);
            match &outcome {
                Outcome::Passed => passing.push(case.name.clone()),
                Outcome::Failed(why) => {
                    not_passing.insert(case.name.clone());
                    if args.verbose {
                        println!("  FAIL {}\n      {}", case.name, indent(why));
                    }
                }
                Outcome::Skipped(why) => {
                    not_passing.insert(case.name.clone());
                    if args.verbose {
                        println!("  SKIP {}: {}", case.name, one_line(why));
                    }
                }
            }
        }
        println!(
            "{name}: {} passed, {} failed, {} skipped",
            counts.passed, counts.failed, counts.skipped
        );
        per_file.push((name, counts));
    }
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
    match run_isolated(&case, Duration::from_secs(timeout_secs.max(1))) {
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

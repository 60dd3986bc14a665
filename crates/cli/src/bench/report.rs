//! The results of `runnel bench`: a table for people and a JSON document for tools.
//!
//! The JSON keeps the shape other scripts read (`baseline.events_per_sec_per_core`,
//! `workloads[].ratio_to_baseline`); every other field is an addition.

use super::cpu::CpuSplit;
use serde_json::{json, Value as Json};
use std::fmt::Write as _;

/// What one measured run (baseline or workload) did.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub events: u64,
    /// From query start to the last input record processed with its outputs acknowledged.
    pub wall_secs: f64,
    /// From the first record processed to the last (excludes consumer-group join time).
    pub active_secs: f64,
    pub cpu: CpuSplit,
    pub output_records: u64,
}

impl Measurement {
    pub fn cpu_secs(&self) -> f64 {
        self.cpu.engine.as_secs_f64()
    }

    /// Events per engine CPU-second; 0 when no CPU was measured (a tiny run on a coarse clock).
    pub fn per_core(&self) -> f64 {
        let cpu = self.cpu_secs();
        if cpu > 0.0 {
            self.events as f64 / cpu
        } else {
            0.0
        }
    }

    pub fn per_wall_sec(&self) -> f64 {
        if self.active_secs > 0.0 {
            self.events as f64 / self.active_secs
        } else {
            0.0
        }
    }

    fn to_json(&self) -> Json {
        json!({
            "events": self.events,
            "events_per_sec_per_core": round(self.per_core(), 1),
            "events_per_sec_wall": round(self.per_wall_sec(), 1),
            "wall_secs": round(self.wall_secs, 3),
            "active_wall_secs": round(self.active_secs, 3),
            "cpu_secs": round(self.cpu_secs(), 3),
            "broker_cpu_secs": round(self.cpu.broker.as_secs_f64(), 3),
            "excluded_other_cpu_secs": round(self.cpu.excluded_other.as_secs_f64(), 3),
            "process_cpu_secs": round(self.cpu.process.as_secs_f64(), 3),
            "output_records": self.output_records,
        })
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// How a workload ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done(Measurement),
    /// The engine declined the SQL as "not supported yet".
    Skipped(String),
    Failed(String),
}

/// The raw-client pipeline over one input topic.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineResult {
    /// The input: "bids" or "sensors".
    pub input: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadResult {
    pub name: String,
    pub description: String,
    pub input: String,
    pub sql: String,
    pub outcome: Outcome,
}

/// Everything one invocation measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Run settings (events, partitions, broker, profile, machine) as JSON.
    pub config: Json,
    pub baselines: Vec<BaselineResult>,
    pub workloads: Vec<WorkloadResult>,
}

impl Report {
    fn baseline_for(&self, input: &str) -> Option<&Measurement> {
        self.baselines
            .iter()
            .find(|b| b.input == input)
            .and_then(|b| match &b.outcome {
                Outcome::Done(m) => Some(m),
                _ => None,
            })
    }

    /// Workload events/s per core divided by the baseline's on the same input topic.
    pub fn ratio(&self, w: &WorkloadResult) -> Option<f64> {
        let Outcome::Done(m) = &w.outcome else {
            return None;
        };
        let base = self.baseline_for(&w.input)?.per_core();
        (base > 0.0).then(|| m.per_core() / base)
    }

    /// True when a baseline or workload failed (skipped ones are fine).
    pub fn any_failed(&self) -> bool {
        self.baselines
            .iter()
            .map(|b| &b.outcome)
            .chain(self.workloads.iter().map(|w| &w.outcome))
            .any(|o| matches!(o, Outcome::Failed(_)))
    }

    pub fn to_json(&self) -> Json {
        let outcome_json = |o: &Outcome| match o {
            Outcome::Done(m) => {
                let mut j = m.to_json();
                j["status"] = json!("ok");
                j
            }
            Outcome::Skipped(r) => json!({"status": "skipped", "reason": r}),
            Outcome::Failed(r) => json!({"status": "failed", "reason": r}),
        };
        let baselines: Vec<Json> = self
            .baselines
            .iter()
            .map(|b| {
                let mut j = outcome_json(&b.outcome);
                j["input"] = json!(b.input);
                j
            })
            .collect();
        let workloads: Vec<Json> = self
            .workloads
            .iter()
            .map(|w| {
                let mut j = outcome_json(&w.outcome);
                j["name"] = json!(w.name);
                j["description"] = json!(w.description);
                j["input"] = json!(w.input);
                j["sql"] = json!(w.sql);
                j["ratio_to_baseline"] = json!(self.ratio(w).map(|r| round(r, 4)));
                j
            })
            .collect();
        // `baseline` is the first (bids) baseline; `baselines` has one per input topic.
        let baseline = baselines.first().cloned().unwrap_or(Json::Null);
        json!({
            "config": self.config,
            "baseline": baseline,
            "baselines": baselines,
            "workloads": workloads,
        })
    }

    /// A fixed-width table, one line per baseline and workload.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<22} {:>10} {:>8} {:>8} {:>12} {:>12} {:>10} {:>7} {:>8}",
            "run",
            "events",
            "wall s",
            "cpu s",
            "ev/s/core",
            "ev/s wall",
            "output",
            "ratio",
            "broker s"
        );
        let mut line = |name: &str, outcome: &Outcome, ratio: Option<f64>| match outcome {
            Outcome::Done(m) => {
                let _ = writeln!(
                    out,
                    "{:<22} {:>10} {:>8.2} {:>8.2} {:>12.0} {:>12.0} {:>10} {:>7} {:>8.2}",
                    name,
                    m.events,
                    m.wall_secs,
                    m.cpu_secs(),
                    m.per_core(),
                    m.per_wall_sec(),
                    m.output_records,
                    ratio.map_or_else(|| "-".to_string(), |r| format!("{r:.3}")),
                    m.cpu.broker.as_secs_f64()
                );
            }
            Outcome::Skipped(r) => {
                let _ = writeln!(out, "{name}: skipped ({})", first_line(r));
            }
            Outcome::Failed(r) => {
                let _ = writeln!(out, "{name}: FAILED ({})", first_line(r));
            }
        };
        for b in &self.baselines {
            line(&format!("baseline ({})", b.input), &b.outcome, None);
        }
        for w in &self.workloads {
            line(&w.name, &w.outcome, self.ratio(w));
        }
        out
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn measurement(events: u64, cpu_ms: u64) -> Measurement {
        Measurement {
            events,
            wall_secs: 2.0,
            active_secs: 1.0,
            cpu: CpuSplit {
                engine: Duration::from_millis(cpu_ms),
                broker: Duration::from_millis(100),
                excluded_other: Duration::ZERO,
                process: Duration::from_millis(cpu_ms + 100),
            },
            output_records: events,
        }
    }

    fn report() -> Report {
        Report {
            config: json!({"events": 1000}),
            baselines: vec![
                BaselineResult {
                    input: "bids".into(),
                    outcome: Outcome::Done(measurement(1000, 100)),
                },
                BaselineResult {
                    input: "sensors".into(),
                    outcome: Outcome::Done(measurement(1000, 50)),
                },
            ],
            workloads: vec![
                WorkloadResult {
                    name: "W1".into(),
                    description: "stateless".into(),
                    input: "bids".into(),
                    sql: "SELECT".into(),
                    outcome: Outcome::Done(measurement(1000, 400)),
                },
                WorkloadResult {
                    name: "W2".into(),
                    description: "windowed".into(),
                    input: "sensors".into(),
                    sql: "SELECT".into(),
                    outcome: Outcome::Skipped("not supported yet\nmore".into()),
                },
            ],
        }
    }

    #[test]
    fn json_has_the_documented_shape() {
        let j = report().to_json();
        assert_eq!(j["baseline"]["events"], 1000);
        assert_eq!(j["baseline"]["input"], "bids");
        assert_eq!(j["baseline"]["events_per_sec_per_core"], 10_000.0);
        assert_eq!(j["baselines"].as_array().unwrap().len(), 2);
        let w = &j["workloads"][0];
        assert_eq!(w["name"], "W1");
        assert_eq!(w["events"], 1000);
        assert_eq!(w["events_per_sec_per_core"], 2_500.0);
        assert_eq!(w["ratio_to_baseline"], 0.25);
        assert_eq!(w["cpu_secs"], 0.4);
        assert_eq!(w["wall_secs"], 2.0);
        assert_eq!(w["output_records"], 1000);
        assert_eq!(w["status"], "ok");
        let skipped = &j["workloads"][1];
        assert_eq!(skipped["status"], "skipped");
        assert_eq!(skipped["ratio_to_baseline"], Json::Null);
        assert!(skipped.get("events_per_sec_per_core").is_none());
    }

    #[test]
    fn table_shows_ratios_and_skips() {
        let r = report();
        let t = r.table();
        assert!(t.contains("baseline (bids)"), "{t}");
        assert!(t.contains("0.250"), "{t}");
        assert!(t.contains("W2: skipped (not supported yet)"), "{t}");
        assert!(!r.any_failed());
    }

    #[test]
    fn ratio_uses_the_baseline_of_the_same_input_and_failures_are_reported() {
        let mut r = report();
        r.workloads[1].outcome = Outcome::Done(measurement(1000, 100));
        assert_eq!(r.ratio(&r.workloads[1]), Some(0.5));
        r.baselines[1].outcome = Outcome::Failed("stalled".into());
        assert_eq!(r.ratio(&r.workloads[1]), None);
        assert!(r.any_failed());
        assert_eq!(measurement(10, 0).per_core(), 0.0);
    }
}

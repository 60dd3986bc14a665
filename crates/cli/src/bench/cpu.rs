//! CPU accounting for `runnel bench`: how much CPU the engine used, without the broker.
//!
//! The benchmark metric is events per CPU-second of the *engine*. With the embedded broker the
//! broker runs in the same process (librdkafka's mock cluster, one thread named `rdk:mock`), so
//! process CPU alone would charge the broker's work to the engine. Instead, a measured phase is
//! bracketed by two snapshots of the process CPU clock and of every thread's CPU time
//! (`/proc/self/task/*/schedstat`, nanoseconds), and the engine is charged with:
//!
//! * the CPU of every thread created during the phase (the query thread and its Kafka clients'
//!   librdkafka threads — including threads that have already exited, via the process total), plus
//! * the bench's own thread while it starts the query (planning, creating the clients),
//!
//! and *not* with threads that already existed when the phase began (the broker, the mock
//! cluster's own client handle, the bench's watermark client) nor with the bench thread while it
//! only polls for completion. Those are reported separately so nothing is hidden.

use std::collections::HashMap;
use std::time::Duration;

/// CPU time of the whole process (all threads, living and exited), in nanoseconds.
pub fn process_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time of the calling thread, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the clock ids are constants libc defines.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// One thread's name and CPU time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadCpu {
    pub name: String,
    pub ns: u64,
}

/// The calling thread's id, from `/proc/thread-self` (a link to `<pid>/task/<tid>`).
fn current_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// CPU time of every living thread of this process, by thread id. Empty where `/proc` is not
/// available; the broker's CPU then cannot be told apart and is reported as unknown.
pub fn threads() -> HashMap<u32, ThreadCpu> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let path = entry.path();
        // The first field of schedstat is the time spent on a CPU, in nanoseconds.
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok());
        let Some(ns) = ns else { continue };
        let name = std::fs::read_to_string(path.join("comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        out.insert(tid, ThreadCpu { name, ns });
    }
    out
}

/// The state of the CPU clocks at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub process_ns: u64,
    /// The calling (bench) thread's CPU.
    pub bench_ns: u64,
    pub bench_tid: Option<u32>,
    pub threads: HashMap<u32, ThreadCpu>,
}

impl Snapshot {
    pub fn take() -> Self {
        Snapshot {
            process_ns: process_cpu_ns(),
            bench_ns: thread_cpu_ns(),
            bench_tid: current_tid(),
            threads: threads(),
        }
    }
}

/// Where the CPU of a measured phase went.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuSplit {
    /// Charged to the engine (or to the baseline pipeline): see the module docs.
    pub engine: Duration,
    /// Threads named `rdk:mock`: the embedded broker.
    pub broker: Duration,
    /// Other threads that existed before the phase (mock cluster client, bench watermark client)
    /// and the bench thread while it waited.
    pub excluded_other: Duration,
    /// Everything the process used during the phase.
    pub process: Duration,
}

/// Splits the CPU used between `start` and `end`. `bench_after_start` is the bench thread's CPU
/// clock right after it finished starting the query: its CPU before that is the engine's, after
/// that it only polls.
pub fn split(start: &Snapshot, bench_after_start: u64, end: &Snapshot) -> CpuSplit {
    let process = end.process_ns.saturating_sub(start.process_ns);
    let mut broker = 0u64;
    let mut other = end.bench_ns.saturating_sub(bench_after_start);
    for (tid, before) in &start.threads {
        if Some(*tid) == start.bench_tid {
            continue;
        }
        // A thread that exited during the phase cannot be read any more; its CPU since the start
        // stays in the engine's share (such threads are rare: clients are not dropped mid-phase).
        let Some(after) = end.threads.get(tid) else {
            continue;
        };
        let used = after.ns.saturating_sub(before.ns);
        if before.name.starts_with("rdk:mock") {
            broker += used;
        } else {
            other += used;
        }
    }
    let engine = process.saturating_sub(broker + other);
    CpuSplit {
        engine: Duration::from_nanos(engine),
        broker: Duration::from_nanos(broker),
        excluded_other: Duration::from_nanos(other),
        process: Duration::from_nanos(process),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(process: u64, bench: u64, threads: &[(u32, &str, u64)]) -> Snapshot {
        Snapshot {
            process_ns: process,
            bench_ns: bench,
            bench_tid: Some(1),
            threads: threads
                .iter()
                .map(|(t, n, ns)| {
                    (
                        *t,
                        ThreadCpu {
                            name: n.to_string(),
                            ns: *ns,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn split_charges_new_threads_and_startup_to_the_engine() {
        let start = snapshot(
            1_000,
            100,
            &[
                (1, "runnel", 100),
                (2, "rdk:mock", 500),
                (3, "rdk:main", 50),
            ],
        );
        // During the phase: bench thread +30 while starting, +20 while polling; broker +400;
        // pre-existing client thread +10; new query threads +1000 (some already exited).
        let end = snapshot(
            1_000 + 30 + 20 + 400 + 10 + 1_000,
            150,
            &[
                (1, "runnel", 150),
                (2, "rdk:mock", 900),
                (3, "rdk:main", 60),
                (9, "query-CSAS_1", 600),
            ],
        );
        let s = split(&start, 130, &end);
        assert_eq!(s.broker, Duration::from_nanos(400));
        assert_eq!(s.excluded_other, Duration::from_nanos(30));
        assert_eq!(s.engine, Duration::from_nanos(1_030));
        assert_eq!(s.process, Duration::from_nanos(1_460));
    }

    #[test]
    fn clocks_and_threads_are_readable_here() {
        let a = process_cpu_ns();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_ns() > a);
        assert!(thread_cpu_ns() > 0);
        if cfg!(target_os = "linux") {
            let t = threads();
            assert!(!t.is_empty());
            assert!(current_tid().is_some_and(|tid| t.contains_key(&tid)));
        }
    }
}

//! `runnel bench`: events per second per core, Kafka topic → Kafka topic, next to the limit of
//! the Kafka client itself measured in the same run.
//!
//! Absolute throughput depends on the machine, the broker and the build profile, so a number on
//! its own says little. Every run therefore first measures a *baseline*: a raw rdkafka pipeline
//! with the engine's client settings and the engine's loop shape (poll a batch of up to 1000
//! records, produce every record unchanged, flush, commit synchronously) but no decoding. That is
//! the most this design can do on this machine; each workload is reported as a ratio to it.
//!
//! Steps: generate the input topics (deterministic JSON, see `gen`) before anything is measured,
//! check that the broker kept every record, run the baselines, then run each workload as a user
//! would — `CREATE STREAM ... AS SELECT` in a fresh engine — from query start until the query has
//! processed every input record and its outputs are acknowledged. CPU is charged as described in
//! `cpu`: the embedded broker runs in-process, and its thread is measured and excluded.

mod cpu;
mod gen;
mod report;

use anyhow::{bail, Context, Result};
use cpu::Snapshot;
use gen::Generator;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use report::{BaselineResult, Measurement, Outcome, Report, WorkloadResult};
use runnel_connect::kafka::Producer;
use runnel_connect::kafka::{commit, flush, KafkaConfig};
use runnel_engine::runner::QueryStats;
use runnel_engine::{Backend, Engine, EngineError, StatementError};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    kafka: super::KafkaArgs,
    /// Records generated into each input topic [default: 1,000,000 on the embedded broker, which
    /// keeps at most ~5 MiB per partition; 5,000,000 on a real cluster].
    #[arg(long)]
    events: Option<u64>,
    /// Partitions of the input and output topics [default: 64 on the embedded broker, so that
    /// 1 M bids fit in its per-partition limit; 16 on a real cluster].
    #[arg(long)]
    partitions: Option<i32>,
    /// Replication factor of the topics created on a real cluster.
    #[arg(long, default_value_t = 1)]
    replicas: i16,
    /// Distinct sensor ids in the sensor readings (W2).
    #[arg(long, default_value_t = 100_000)]
    sensors: u64,
    /// Seed of the event generator; the same seed gives byte-identical input.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Run only these workloads (repeatable: W1, W2, W2-final); the baselines always run.
    #[arg(long = "workload", value_name = "NAME")]
    workloads: Vec<String>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Give up on a run that makes no progress for this many seconds.
    #[arg(long, default_value_t = 60)]
    stall_timeout_secs: u64,
    /// Keep the topics created on a real cluster (they are deleted by default).
    #[arg(long)]
    keep_topics: bool,
}

/// The two generated inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Bids,
    Sensors,
}

impl Input {
    fn label(self) -> &'static str {
        match self {
            Input::Bids => "bids",
            Input::Sensors => "sensors",
        }
    }

    /// The source DDL a user would write for the topic.
    fn ddl(self, topic: &str) -> String {
        match self {
            Input::Bids => format!(
                "CREATE STREAM bids (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, \
                 url VARCHAR, date_time BIGINT, extra VARCHAR) \
                 WITH (KAFKA_TOPIC='{topic}', VALUE_FORMAT='JSON');"
            ),
            Input::Sensors => format!(
                "CREATE STREAM readings (sensor_id VARCHAR KEY, ts BIGINT, temp DOUBLE, \
                 humidity DOUBLE, site VARCHAR) \
                 WITH (KAFKA_TOPIC='{topic}', VALUE_FORMAT='JSON');"
            ),
        }
    }
}

struct Workload {
    name: &'static str,
    description: &'static str,
    input: Input,
    /// The persistent query; `{topic}` and `{partitions}` are filled in.
    sql: &'static str,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "W1",
        description: "stateless filter + projection + arithmetic over ~200-byte JSON bids",
        input: Input::Bids,
        sql: "CREATE STREAM bids_eur WITH (KAFKA_TOPIC='{topic}', PARTITIONS={partitions}) AS \
              SELECT auction, bidder, price * 0.908 AS price_eur, channel, date_time \
              FROM bids WHERE auction % 100 < 90;",
    },
    Workload {
        name: "W2",
        description: "1-minute tumbling count/avg/min/max per sensor over ~100-byte JSON \
                      readings, EMIT CHANGES",
        input: Input::Sensors,
        sql: "CREATE TABLE sensor_stats WITH (KAFKA_TOPIC='{topic}', PARTITIONS={partitions}) AS \
              SELECT sensor_id, COUNT(*) AS readings, AVG(temp) AS avg_temp, \
              MIN(temp) AS min_temp, MAX(temp) AS max_temp \
              FROM readings WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 5 SECONDS) \
              GROUP BY sensor_id EMIT CHANGES;",
    },
    Workload {
        name: "W2-final",
        description: "W2 with EMIT FINAL (one row per sensor and closed window)",
        input: Input::Sensors,
        sql: "CREATE TABLE sensor_stats WITH (KAFKA_TOPIC='{topic}', PARTITIONS={partitions}) AS \
              SELECT sensor_id, COUNT(*) AS readings, AVG(temp) AS avg_temp, \
              MIN(temp) AS min_temp, MAX(temp) AS max_temp \
              FROM readings WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 5 SECONDS) \
              GROUP BY sensor_id EMIT FINAL;",
    },
];

/// What every run needs: the cluster, the topic names, and the limits.
struct Bench {
    kafka: KafkaConfig,
    engine_props: BTreeMap<String, String>,
    /// Reads watermarks; created before any measured phase so its threads are not charged.
    watcher: BaseConsumer,
    run_id: String,
    events: u64,
    partitions: i32,
    replicas: i16,
    stall: Duration,
    created_topics: Vec<String>,
}

pub fn main(args: BenchArgs) -> Result<()> {
    let selected: Vec<&Workload> = WORKLOADS
        .iter()
        .filter(|w| {
            args.workloads.is_empty()
                || args
                    .workloads
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(w.name))
        })
        .collect();
    if let Some(unknown) = args
        .workloads
        .iter()
        .find(|n| !WORKLOADS.iter().any(|w| n.eq_ignore_ascii_case(w.name)))
    {
        bail!("unknown workload '{unknown}' (known: W1, W2, W2-final)");
    }
    let (kafka, engine_props) = super::kafka_config(&args.kafka)?;
    let embedded = kafka.embedded.is_some();
    let events = args
        .events
        .unwrap_or(if embedded { 1_000_000 } else { 5_000_000 });
    let partitions = args.partitions.unwrap_or(if embedded { 64 } else { 16 });
    if events == 0 || partitions <= 0 {
        bail!("--events and --partitions must be positive");
    }
    let watcher: BaseConsumer = kafka
        .client_config()
        .create()
        .context("cannot create a Kafka client")?;
    let mut bench = Bench {
        kafka,
        engine_props,
        watcher,
        run_id: chrono::Utc::now().timestamp_millis().to_string(),
        events,
        partitions,
        replicas: args.replicas,
        stall: Duration::from_secs(args.stall_timeout_secs.max(1)),
        created_topics: Vec::new(),
    };
    let config = json!({
        "events_per_input": events,
        "partitions": partitions,
        "sensors": args.sensors,
        "seed": args.seed,
        "broker": if embedded {
            "embedded (librdkafka mock cluster, in the same process)".to_string()
        } else {
            bench.kafka.bootstrap_servers.clone()
        },
        "build": build_profile(),
        "cpu_model": cpu_model(),
        "available_cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "runnel_version": env!("CARGO_PKG_VERSION"),
        "cpu_measure": "engine CPU = CPU time of the threads started by the query (query thread \
            and its librdkafka client threads) + the bench thread while starting the query; \
            excludes the embedded broker thread (rdk:mock, reported as broker_cpu_secs), threads \
            that existed before the query started, and the bench thread while it polls",
    });
    eprintln!(
        "runnel bench: {events} events per input, {partitions} partitions, {} build",
        build_profile()
    );

    let result = run_all(&mut bench, &selected, args.sensors, args.seed, config);
    if !embedded && !args.keep_topics {
        for t in &bench.created_topics {
            if let Err(e) = bench.kafka.delete_topic(t) {
                eprintln!("warning: cannot delete topic {t}: {e}");
            }
        }
    }
    let report = result?;
    println!("{}", report.table().trim_end());
    println!(
        "ev/s/core = input events / engine CPU seconds (broker CPU excluded, shown as 'broker s'); \
         ratio = ev/s/core / baseline ev/s/core on the same input; ev/s wall counts from the \
         first record processed."
    );
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if report.any_failed() {
        bail!("a benchmark run failed (see the table)");
    }
    Ok(())
}

fn run_all(
    bench: &mut Bench,
    selected: &[&Workload],
    sensors: u64,
    seed: u64,
    config: serde_json::Value,
) -> Result<Report> {
    let mut inputs = vec![Input::Bids];
    if selected.iter().any(|w| w.input == Input::Sensors) {
        inputs.push(Input::Sensors);
    }
    let mut topics = BTreeMap::new();
    for &input in &inputs {
        let topic = bench.topic(input.label());
        bench.create_topic(&topic)?;
        let generator = match input {
            Input::Bids => Generator::bids(seed),
            Input::Sensors => Generator::sensors(seed, sensors),
        };
        bench.generate(&topic, generator)?;
        topics.insert(input.label(), topic);
    }

    let mut baselines = Vec::new();
    for &input in &inputs {
        let topic = &topics[input.label()];
        eprintln!("baseline ({}): raw consume → produce", input.label());
        let outcome = bench.baseline(topic, &format!("{}-copy", input.label()));
        baselines.push(BaselineResult {
            input: input.label().to_string(),
            outcome,
        });
    }

    let mut workloads = Vec::new();
    for w in selected {
        eprintln!("{}: {}", w.name, w.description);
        let out_topic = bench.topic(&w.name.to_lowercase());
        let sql = w
            .sql
            .replace("{topic}", &out_topic)
            .replace("{partitions}", &bench.partitions.to_string());
        let outcome = bench.workload(w, &topics[w.input.label()], &out_topic, &sql);
        workloads.push(WorkloadResult {
            name: w.name.to_string(),
            description: w.description.to_string(),
            input: w.input.label().to_string(),
            sql,
            outcome,
        });
    }
    Ok(Report {
        config,
        baselines,
        workloads,
    })
}

impl Bench {
    fn topic(&self, what: &str) -> String {
        format!("runnel-bench-{}-{what}", self.run_id)
    }

    fn create_topic(&mut self, topic: &str) -> Result<()> {
        self.kafka
            .create_topic(topic, self.partitions, self.replicas)
            .with_context(|| format!("cannot create topic {topic}"))?;
        self.created_topics.push(topic.to_string());
        Ok(())
    }

    /// Writes `events` records, then checks the broker kept them. Keyed records go to the
    /// partition Kafka's default partitioner picks for their key (murmur2), unkeyed ones
    /// round-robin over the partitions.
    fn generate(&self, topic: &str, mut generator: Generator) -> Result<()> {
        let started = Instant::now();
        // The input is written LZ4-compressed, as producers of telemetry usually do: keyed
        // readings put a hot sensor's share of the Zipf-skewed stream (8 % for the hottest of
        // 100 K) into one partition, which uncompressed would overflow the embedded broker's
        // ~5 MiB per partition at 1 M events. The baseline and the engine both decompress it.
        let mut input = self.kafka.clone();
        input
            .properties
            .entry("compression.type".to_string())
            .or_insert_with(|| "lz4".to_string());
        let producer = input.producer()?;
        let (mut buf, mut key) = (String::new(), String::new());
        let mut bytes = 0u64;
        for i in 0..self.events {
            let ts = generator.next_event(&mut buf, &mut key);
            bytes += (buf.len() + key.len()) as u64;
            let partition = if key.is_empty() {
                (i % self.partitions as u64) as i32
            } else {
                runnel_engine::repartition::partition_for(key.as_bytes(), self.partitions)
            };
            let mut record: BaseRecord<'_, str, str> = BaseRecord::to(topic)
                .payload(buf.as_str())
                .partition(partition)
                .timestamp(ts);
            if !key.is_empty() {
                record = record.key(key.as_str());
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        back,
                    )) => {
                        record = back;
                        producer.poll(Duration::from_millis(5));
                    }
                    Err((e, _)) => return Err(e).context("cannot produce the benchmark input"),
                }
            }
        }
        flush(&producer).context("cannot flush the benchmark input")?;
        drop(producer);
        // Some brokers publish their high watermarks a little after acknowledging the writes.
        let settle = Instant::now() + Duration::from_secs(5);
        let (low, count) = loop {
            let (low, count) = self.topic_counts(topic, self.partitions)?;
            if (low == 0 && count == self.events) || Instant::now() > settle {
                break (low, count);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if (low > 0 || count != self.events) && self.kafka.embedded.is_none() {
            // Every write was acknowledged (the flush above fails otherwise); an external
            // broker's offsets may not count records one by one (tansu's ListOffsets answers are
            // known to be off). A lost record still shows: the run then stalls and says so.
            eprintln!(
                "warning: the broker reports {count} records in {topic} (low watermarks {low}) \
                 after acknowledging all {}; going on",
                self.events
            );
        } else if low > 0 || count != self.events {
            bail!(
                "the broker kept {count} of the {} records written to {topic} (the first {low} \
                 were dropped); the embedded broker keeps at most ~5 MiB per partition: use more \
                 --partitions, fewer --events, or --bootstrap-servers",
                self.events
            );
        }
        eprintln!(
            "generated {} {:?} events into {topic} ({:.1} MB, {:.1} s)",
            self.events,
            generator.kind(),
            bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// (sum of low watermarks, sum of records between the watermarks) over a topic's partitions.
    fn topic_counts(&self, topic: &str, partitions: i32) -> Result<(u64, u64)> {
        let mut low_sum = 0u64;
        let mut count = 0u64;
        for p in 0..partitions {
            let (low, high) = self
                .watcher
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .with_context(|| format!("cannot read the offsets of {topic} [{p}]"))?;
            low_sum += low.max(0) as u64;
            count += (high - low).max(0) as u64;
        }
        Ok((low_sum, count))
    }

    /// Waits until `processed()` reaches the input size. Returns when the first record was seen.
    fn wait_processed(
        &self,
        mut processed: impl FnMut() -> Result<u64, String>,
    ) -> Result<Instant, String> {
        let mut first: Option<Instant> = None;
        let mut last = 0;
        let mut last_change = Instant::now();
        loop {
            let n = processed()?;
            let now = Instant::now();
            if n > 0 && first.is_none() {
                first = Some(now);
            }
            if n >= self.events {
                return Ok(first.unwrap_or(now));
            }
            if n != last {
                last = n;
                last_change = now;
            } else if now - last_change > self.stall {
                return Err(format!(
                    "no progress for {} s: processed {n} of {} records",
                    self.stall.as_secs(),
                    self.events
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The raw pipeline: the engine's loop shape and client settings, no decoding.
    fn baseline(&mut self, input: &str, what: &str) -> Outcome {
        let output = self.topic(what);
        if let Err(e) = self.create_topic(&output) {
            return Outcome::Failed(format!("{e:#}"));
        }
        let start = Snapshot::take();
        let started = Instant::now();
        let group = format!("runnel-bench-{}-{what}", self.run_id);
        let clients = self
            .kafka
            .group_consumer(&group, "earliest")
            .and_then(|c| Ok((c, self.kafka.producer()?)));
        let (consumer, producer) = match clients {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        if let Err(e) = consumer.subscribe(&[input]) {
            return Outcome::Failed(e.to_string());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let processed = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, processed) = (stop.clone(), processed.clone());
            std::thread::Builder::new()
                .name("bench-baseline".into())
                .spawn(move || raw_pipeline(&consumer, &producer, &output, &stop, &processed))
        };
        let mut thread = match thread {
            Ok(t) => Some(t),
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let bench_after_start = cpu::thread_cpu_ns();
        let waited = self.wait_processed(|| {
            if thread.as_ref().is_some_and(|t| t.is_finished()) {
                let result = thread.take().map(|t| t.join());
                return Err(match result {
                    Some(Ok(Err(e))) => e,
                    _ => "the baseline pipeline stopped".to_string(),
                });
            }
            Ok(processed.load(Ordering::Acquire))
        });
        let end = Snapshot::take();
        let wall = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        if let Some(t) = thread {
            let _ = t.join();
        }
        match waited {
            Ok(first) => Outcome::Done(Measurement {
                events: self.events,
                wall_secs: wall.as_secs_f64(),
                active_secs: first.elapsed().as_secs_f64().min(wall.as_secs_f64()),
                cpu: cpu::split(&start, bench_after_start, &end),
                output_records: processed.load(Ordering::Acquire),
            }),
            Err(e) => Outcome::Failed(e),
        }
    }

    fn workload(&mut self, w: &Workload, input: &str, out_topic: &str, sql: &str) -> Outcome {
        let mut props = self.engine_props.clone();
        props.insert(
            runnel_engine::SERVICE_ID.to_string(),
            format!(
                "runnel_bench_{}_{}_",
                self.run_id,
                w.name.to_lowercase().replace('-', "_")
            ),
        );
        props.insert(
            runnel_engine::AUTO_OFFSET_RESET.to_string(),
            "earliest".into(),
        );
        let mut engine = Engine::new(Backend::Kafka(self.kafka.clone()), props);
        if let Err(e) = engine.execute_script(&w.input.ddl(input)) {
            return Outcome::Failed(e.to_string());
        }
        let start = Snapshot::take();
        let started = Instant::now();
        let executed = engine.execute_script(sql);
        let bench_after_start = cpu::thread_cpu_ns();
        if let Err(e) = executed {
            return classify(e);
        }
        self.created_topics.push(out_topic.to_string());
        let Some(stats) = engine
            .queries
            .last()
            .and_then(|q| q.running.as_ref())
            .map(|r| r.stats.clone())
        else {
            return Outcome::Failed("the query is not running".into());
        };
        let outcome = self.measure_query(&stats, out_topic, start, started, bench_after_start);
        engine.shutdown();
        outcome
    }

    fn measure_query(
        &self,
        stats: &QueryStats,
        out_topic: &str,
        start: Snapshot,
        started: Instant,
        bench_after_start: u64,
    ) -> Outcome {
        // Until the input is covered by the query's commits: then the outputs held by the
        // record cache have been sent and, with the state, acknowledged by the broker.
        let first_processed = std::cell::Cell::new(None);
        let committed = self.wait_processed(|| {
            if first_processed.get().is_none() && stats.processed.load(Ordering::Relaxed) > 0 {
                first_processed.set(Some(Instant::now()));
            }
            Ok(stats.committed.load(Ordering::Acquire))
        });
        let first = match committed {
            Ok(f) => first_processed.get().unwrap_or(f),
            Err(e) => return Outcome::Failed(e),
        };
        // Wait for the broker to acknowledge every record produced so far (also for queries
        // whose outputs were sent between commits).
        let produced = stats.produced.load(Ordering::Relaxed);
        let partitions = match self.kafka.topic(out_topic) {
            Ok(Some(t)) => t.partitions,
            Ok(None) => return Outcome::Failed(format!("output topic {out_topic} not found")),
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        // The last commit flushed the query's producer, so its records were acknowledged; the
        // watermarks confirm the broker holds them. An external broker whose offsets do not
        // count records one by one (tansu) gets a few seconds, then the producer's count.
        let embedded = self.kafka.embedded.is_some();
        let ack_deadline = Instant::now()
            + if embedded {
                self.stall
            } else {
                Duration::from_secs(5)
            };
        let output_records = loop {
            match self.topic_counts(out_topic, partitions) {
                Ok((low, count)) if low + count >= produced => break low + count,
                Ok((low, count)) if Instant::now() > ack_deadline && !embedded => {
                    eprintln!(
                        "warning: the broker's offsets count {} of the {produced} output records \
                         its producer had acknowledged; reporting {produced}",
                        low + count
                    );
                    break produced;
                }
                Ok((low, count)) if Instant::now() > ack_deadline => {
                    eprintln!(
                        "warning: {} of {produced} output records acknowledged",
                        low + count
                    );
                    break low + count;
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => return Outcome::Failed(format!("{e:#}")),
            }
        };
        let end = Snapshot::take();
        let wall = started.elapsed().as_secs_f64();
        Outcome::Done(Measurement {
            events: self.events,
            wall_secs: wall,
            active_secs: first.elapsed().as_secs_f64().min(wall),
            cpu: cpu::split(&start, bench_after_start, &end),
            output_records,
        })
    }
}

/// "Not supported yet" errors skip a workload; anything else fails it.
fn classify(e: StatementError) -> Outcome {
    match &e.error {
        EngineError::Statement {
            message,
            unsupported: true,
        } => Outcome::Skipped(message.clone()),
        _ => Outcome::Failed(e.error.to_string()),
    }
}

/// Polls batches like the engine's runner, produces each record unchanged, flushes, commits.
/// `processed` counts records whose copies are acknowledged and whose offsets are committed.
fn raw_pipeline(
    consumer: &runnel_connect::kafka::GroupConsumer,
    producer: &Producer,
    output: &str,
    stop: &AtomicBool,
    processed: &AtomicU64,
) -> Result<(), String> {
    const MAX_BATCH: usize = 1000;
    const LINGER: Duration = Duration::from_millis(20);
    const CLOCK_EVERY: usize = 32;
    let mut offsets: BTreeMap<(String, i32), i64> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut linger_until: Option<Instant> = None;
        // The clock is read every CLOCK_EVERY records, as the engine's poll loop does.
        let mut now = Instant::now();
        let mut unclocked = 0;
        while batch.len() < MAX_BATCH {
            if unclocked >= CLOCK_EVERY {
                now = Instant::now();
                unclocked = 0;
            }
            let until = linger_until.unwrap_or(deadline);
            if now >= until {
                break;
            }
            match consumer.poll(until - now) {
                Some(Ok(m)) => {
                    batch.push(m);
                    unclocked += 1;
                    if linger_until.is_none() {
                        now = Instant::now();
                        linger_until = Some(now + LINGER);
                    }
                }
                Some(Err(e)) => return Err(format!("consumer error: {e}")),
                None => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        offsets.clear();
        for m in &batch {
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(output);
            if let Some(k) = m.key() {
                record = record.key(k);
            }
            if let Some(v) = m.payload() {
                record = record.payload(v);
            }
            if let Some(ts) = m.timestamp().to_millis() {
                record = record.timestamp(ts);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        back,
                    )) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => return Err(e.to_string()),
                }
            }
            let e = offsets
                .entry((m.topic().to_string(), m.partition()))
                .or_insert(m.offset());
            *e = (*e).max(m.offset());
        }
        let n = batch.len() as u64;
        drop(batch);
        flush(producer).map_err(|e| e.to_string())?;
        commit(consumer, &offsets).map_err(|e| e.to_string())?;
        processed.fetch_add(n, Ordering::Release);
    }
    Ok(())
}

/// Optimisation level of this binary, as far as it can tell.
fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "dev (debug assertions on; runnel crates unoptimised, dependencies opt-level 1)"
    } else {
        "optimised (release or perf profile)"
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_sql_is_filled_in_and_names_are_unique() {
        let mut names: Vec<&str> = WORKLOADS.iter().map(|w| w.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), WORKLOADS.len());
        for w in WORKLOADS {
            assert!(w.sql.contains("KAFKA_TOPIC='{topic}'"), "{}", w.name);
            assert!(w.sql.contains("PARTITIONS={partitions}"), "{}", w.name);
        }
        let w1 = &WORKLOADS[0];
        assert!(w1.sql.contains("price * 0.908 AS price_eur"));
        assert!(w1.sql.contains("WHERE auction % 100 < 90"));
    }

    #[test]
    fn the_input_ddl_and_workloads_parse() {
        let engine = Engine::in_memory(BTreeMap::new());
        for input in [Input::Bids, Input::Sensors] {
            assert_eq!(engine.parse(&input.ddl("t")).unwrap().len(), 1);
        }
        for w in WORKLOADS {
            let sql = w.sql.replace("{topic}", "o").replace("{partitions}", "4");
            assert_eq!(engine.parse(&sql).unwrap().len(), 1, "{}", w.name);
        }
    }
}

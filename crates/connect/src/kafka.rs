//! Kafka clients over rdkafka: topic administration, producing, consuming, and the embedded
//! broker.
//!
//! Everything here is synchronous (rdkafka's base clients, polled from our own threads): a
//! persistent query is a loop of poll → process → produce → flush → commit on one thread, which
//! keeps the at-least-once ordering (offsets committed only after the outputs are acknowledged)
//! easy to see.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{
    BaseRecord, DefaultProducerContext, DeliveryResult, Producer as _, ProducerContext,
    ThreadedProducer,
};
use rdkafka::TopicPartitionList;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("Kafka error: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("{0}")]
    Other(String),
}

/// One Kafka record, as read or to be written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// The context of [`KafkaConfig::eof_consumer`]: reaching a partition's end is what its reader
/// waits for, so it is not logged as an error (librdkafka also reports it as a client error).
pub struct EofContext;

impl ClientContext for EofContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        use rdkafka::error::KafkaError as E;
        use rdkafka::types::RDKafkaErrorCode as Code;
        if !matches!(error, E::PartitionEOF(_) | E::Global(Code::PartitionEOF)) {
            tracing::error!("librdkafka: {error}: {reason}");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EofContext {}

/// A consumer of a persistent query's group: see [`GroupContext`].
pub type GroupConsumer = BaseConsumer<GroupContext>;

/// Offsets a query has processed (and whose outputs are acknowledged) but could not commit yet.
///
/// A commit is refused while the group rebalances (a second server joining or leaving), which
/// is routine, not a failure: the offsets stay here and go with the next commit. When partitions
/// are revoked, their pending offsets are committed in the revoke callback, while this member
/// still owns them (as Kafka Streams commits in `onPartitionsRevoked`), so the next owner does not
/// start from an older commit, or, with no commit at all, from `auto.offset.reset`.
///
/// A stateful query also installs a [`PartitionListener`]: Kafka Streams' task model, where
/// each assigned partition is a task whose state is restored before its records are read and
/// committed before the partition goes to another member.
#[derive(Default)]
pub struct GroupContext {
    pending: Mutex<BTreeMap<(String, i32), i64>>,
    listener: std::sync::OnceLock<Arc<dyn PartitionListener>>,
}

/// What a consumer's owner does when the group moves partitions (called from `poll`, on the
/// polling thread, while the rebalance waits for it).
pub trait PartitionListener: Send + Sync {
    /// Partitions arrive: prepare them (restore their state) and say where to start reading
    /// each one, `Offset::Invalid` for the group's committed offset.
    fn assigned(&self, partitions: &[(String, i32)]) -> BTreeMap<(String, i32), rdkafka::Offset>;
    /// Partitions go: finish and commit their work now, while this member still owns them.
    fn revoked(&self, consumer: &GroupConsumer, partitions: &[(String, i32)]);
}

impl GroupContext {
    /// Installs the listener of a stateful query (once, before subscribing).
    pub fn listen(&self, listener: Arc<dyn PartitionListener>) {
        let _ = self.listener.set(listener);
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ClientContext for GroupContext {
    /// A windowed aggregation's GroupBy stage asks for partition ends (`enable.partition.eof`),
    /// which librdkafka also reports as client errors: not errors there.
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        EofContext.error(error, reason)
    }
}

impl rdkafka::consumer::ConsumerContext for GroupContext {
    /// rdkafka's own rebalance, with the listener's work in it: a revoked partition's work is
    /// committed before the partition is given up, and an assigned one starts at the offset its
    /// restored state needs.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: rdkafka::types::RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        use rdkafka::consumer::RebalanceProtocol;
        use rdkafka::types::RDKafkaRespErr;
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Some(listener) = self.listener.get() {
                    for ((topic, partition), offset) in listener.assigned(&partitions_of(tpl)) {
                        if let Err(e) = tpl.set_partition_offset(&topic, partition, offset) {
                            tracing::warn!("cannot start {topic}/{partition} at {offset:?}: {e}");
                        }
                    }
                }
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if let Some(listener) = self.listener.get() {
                    listener.revoked(consumer, &partitions_of(tpl));
                }
                self.pre_rebalance(consumer, &rdkafka::consumer::Rebalance::Revoke(tpl));
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::warn!("rebalance error: {other:?}");
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::warn!("rebalance: {e}");
        }
    }

    fn pre_rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        let rdkafka::consumer::Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let mut owed = BTreeMap::new();
        for e in revoked.elements() {
            let key = (e.topic().to_string(), e.partition());
            if let Some(offset) = pending.get(&key) {
                owed.insert(key, *offset);
            }
        }
        // Kafka accepts commits of the old generation while a rebalance is being prepared;
        // librdkafka's mock cluster does not. What is refused stays pending and is committed
        // later for the partitions this member gets back (see `commit`).
        match commit_now(consumer, &owed) {
            Ok(()) => pending.retain(|key, _| !owed.contains_key(key)),
            Err(e) => tracing::debug!("offsets of revoked partitions not committed: {e}"),
        }
    }
}

/// A topic as listed by the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: i32,
    pub replicas: i32,
}

/// Counts failed deliveries, so a batch is never committed after one of its records was lost,
/// and remembers the offset of the last acknowledged record of each topic partition (a state
/// store's checkpoint records the changelog offset it is complete up to).
#[derive(Default)]
pub struct DeliveryContext {
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
    delivered: Mutex<std::collections::HashMap<String, std::collections::HashMap<i32, i64>>>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Err((e, _)) => {
                self.failures.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(e.to_string());
                }
            }
            Ok(m) => {
                if let Ok(mut delivered) = self.delivered.lock() {
                    let offset = m.offset();
                    match delivered.get_mut(m.topic()) {
                        Some(partitions) => {
                            let o = partitions.entry(m.partition()).or_insert(offset);
                            *o = (*o).max(offset);
                        }
                        None => {
                            delivered.insert(
                                m.topic().to_string(),
                                [(m.partition(), offset)].into_iter().collect(),
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The producer every Runnel component uses.
pub type Producer = ThreadedProducer<DeliveryContext>;

/// librdkafka's in-process mock cluster, used when no bootstrap servers are given.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

// SAFETY: the mock cluster handle is only used through librdkafka's mock API, whose calls are
// enqueued to the cluster's own thread and are safe to make from any thread.
unsafe impl Send for EmbeddedBroker {}
unsafe impl Sync for EmbeddedBroker {}

impl EmbeddedBroker {
    pub fn start() -> Result<Self, KafkaError> {
        Ok(EmbeddedBroker {
            cluster: MockCluster::new(1)?,
        })
    }

    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), KafkaError> {
        Ok(self.cluster.create_topic(name, partitions, 1)?)
    }
}

/// How to reach Kafka: bootstrap servers plus librdkafka properties passed through to every client.
#[derive(Clone)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    pub properties: BTreeMap<String, String>,
    /// Set when the cluster is the embedded broker (topic creation goes through it).
    pub embedded: Option<Arc<EmbeddedBroker>>,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("embedded", &self.embedded.is_some())
            .finish()
    }
}

/// Sets a property unless the user's properties already set it.
fn set_default(c: &mut ClientConfig, key: &str, value: &str) {
    if c.get(key).is_none() {
        c.set(key, value);
    }
}

impl KafkaConfig {
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    pub fn producer(&self) -> Result<Producer, KafkaError> {
        let mut c = self.client_config();
        set_default(&mut c, "linger.ms", "5");
        set_default(&mut c, "message.timeout.ms", "30000");
        Ok(c.create_with_context(DeliveryContext::default())?)
    }

    /// Consumer settings: short session timeouts (a query's partitions move quickly to the
    /// remaining servers when one dies), offsets committed explicitly, no end-of-partition events.
    fn consumer_config(&self, group: &str, auto_offset_reset: &str) -> ClientConfig {
        let mut c = self.client_config();
        c.set("group.id", group);
        c.set("enable.auto.commit", "false");
        c.set("auto.offset.reset", auto_offset_reset);
        set_default(&mut c, "session.timeout.ms", "6000");
        set_default(&mut c, "heartbeat.interval.ms", "1000");
        set_default(&mut c, "max.poll.interval.ms", "300000");
        set_default(&mut c, "enable.partition.eof", "false");
        // Incremental rebalancing (as Kafka Streams since 2.4): when a server joins or leaves,
        // only the partitions that move are revoked and assigned, so a stateful query's other
        // tasks keep running instead of all being committed, closed and restored.
        set_default(
            &mut c,
            "partition.assignment.strategy",
            "cooperative-sticky",
        );
        c
    }

    /// A consumer in `group`, with offsets committed explicitly.
    pub fn consumer(
        &self,
        group: &str,
        auto_offset_reset: &str,
    ) -> Result<BaseConsumer, KafkaError> {
        Ok(self.consumer_config(group, auto_offset_reset).create()?)
    }

    /// A consumer for a persistent query's group: offsets committed explicitly with [`commit`],
    /// and those of revoked partitions committed before they go (see [`GroupContext`]).
    pub fn group_consumer(
        &self,
        group: &str,
        auto_offset_reset: &str,
    ) -> Result<GroupConsumer, KafkaError> {
        Ok(self
            .consumer_config(group, auto_offset_reset)
            .create_with_context(GroupContext::default())?)
    }

    /// A consumer (no offsets committed) that reports reaching the end of each partition as
    /// `PartitionEOF`, judged from fetch responses. Reading "up to the end" this way does not
    /// depend on ListOffsets, whose high watermarks some brokers (tansu) get wrong.
    pub fn eof_consumer(&self, group: &str) -> Result<BaseConsumer<EofContext>, KafkaError> {
        let mut c = self.client_config();
        c.set("group.id", group);
        c.set("enable.auto.commit", "false");
        c.set("auto.offset.reset", "earliest");
        c.set("enable.partition.eof", "true");
        Ok(c.create_with_context(EofContext)?)
    }

    fn admin(&self) -> Result<AdminClient<DefaultClientContext>, KafkaError> {
        Ok(self.client_config().create()?)
    }

    /// Creates a topic unless it exists. Returns false when it already existed.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replicas: i16,
    ) -> Result<bool, KafkaError> {
        self.create_topic_with(name, partitions, replicas, &[])
    }

    /// `create_topic` with topic configs, e.g. `cleanup.policy=compact` for a changelog (the
    /// embedded broker takes no configs: it keeps at most ~5 MiB per partition anyway).
    pub fn create_topic_with(
        &self,
        name: &str,
        partitions: i32,
        replicas: i16,
        configs: &[(&str, &str)],
    ) -> Result<bool, KafkaError> {
        if self.topic(name)?.is_some() {
            return Ok(false);
        }
        if let Some(broker) = &self.embedded {
            broker.create_topic(name, partitions)?;
            return Ok(true);
        }
        let admin = self.admin()?;
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replicas as i32));
        for (key, value) in configs {
            topic = topic.set(key, value);
        }
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = futures::executor::block_on(admin.create_topics([&topic], &opts))?;
        for r in results {
            if let Err((t, code)) = r {
                if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                    return Err(KafkaError::Other(format!(
                        "Failed to create topic {t}: {code}"
                    )));
                }
            }
        }
        Ok(true)
    }

    pub fn delete_topic(&self, name: &str) -> Result<(), KafkaError> {
        if self.embedded.is_some() {
            // The mock cluster cannot delete topics; the catalog forgets it.
            return Ok(());
        }
        let admin = self.admin()?;
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = futures::executor::block_on(admin.delete_topics(&[name], &opts))?;
        for r in results {
            if let Err((t, code)) = r {
                return Err(KafkaError::Other(format!(
                    "Failed to delete topic {t}: {code}"
                )));
            }
        }
        Ok(())
    }

    /// All topics, or one when `only` is given.
    pub fn topics(&self, only: Option<&str>) -> Result<Vec<TopicInfo>, KafkaError> {
        let consumer: BaseConsumer = self.client_config().create()?;
        let metadata = consumer.fetch_metadata(only, Duration::from_secs(10))?;
        let mut topics: Vec<TopicInfo> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| TopicInfo {
                name: t.name().to_string(),
                partitions: t.partitions().len() as i32,
                replicas: t
                    .partitions()
                    .first()
                    .map(|p| p.replicas().len() as i32)
                    .unwrap_or(1),
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    pub fn topic(&self, name: &str) -> Result<Option<TopicInfo>, KafkaError> {
        // A metadata request for one topic may auto-create it on some brokers, so list all.
        Ok(self.topics(None)?.into_iter().find(|t| t.name == name))
    }
}

/// Converts a consumed message into a `Record`.
pub fn record_of<M: Message>(m: &M) -> Record {
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                .collect()
        })
        .unwrap_or_default();
    Record {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp: m.timestamp().to_millis().unwrap_or(0),
        key: m.key().map(|k| k.to_vec()),
        value: m.payload().map(|v| v.to_vec()),
        headers,
    }
}

/// Sends a record; the caller flushes. Retries while the local queue is full.
pub fn send(producer: &Producer, r: &Record) -> Result<(), KafkaError> {
    let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&r.topic).timestamp(r.timestamp);
    // Most records have no headers: building (and copying) an empty librdkafka header list per
    // record costs two allocations and is not sent anyway.
    if !r.headers.is_empty() {
        let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        rec = rec.headers(headers);
    }
    if let Some(k) = &r.key {
        rec = rec.key(k.as_slice());
    }
    if let Some(v) = &r.value {
        rec = rec.payload(v.as_slice());
    }
    if r.partition >= 0 {
        rec = rec.partition(r.partition);
    }
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            // The local queue is full: serve delivery reports, then retry the same record.
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                back,
            )) => {
                rec = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Waits until every record sent so far has been acknowledged (or failed), up to 30 s.
///
/// rust-rdkafka's `flush` polls in 100 ms steps, which caps a batch loop at ~10 batches a
/// second; the threaded producer already serves delivery reports on its own thread, so watching
/// the in-flight count is enough and returns within a millisecond of the last acknowledgement.
pub fn flush(producer: &Producer) -> Result<(), KafkaError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while producer.in_flight_count() > 0 {
        if std::time::Instant::now() > deadline {
            return Err(KafkaError::Other(format!(
                "{} records not acknowledged by the broker within 30 s",
                producer.in_flight_count()
            )));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let failed = producer.context().failures.swap(0, Ordering::SeqCst);
    if failed > 0 {
        let last = producer
            .context()
            .last_error
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .unwrap_or_default();
        return Err(KafkaError::Other(format!(
            "{failed} records could not be delivered: {last}"
        )));
    }
    Ok(())
}

/// The highest offset the broker acknowledged for a record this producer sent to
/// `topic`/`partition` (call after [`flush`]).
pub fn delivered_offset(producer: &Producer, topic: &str, partition: i32) -> Option<i64> {
    let delivered = producer.context().delivered.lock().ok()?;
    delivered.get(topic)?.get(&partition).copied()
}

/// Commits the next offsets to read for the given (topic, partition) → last processed offset,
/// together with any still pending from refused commits (of partitions this member still owns).
/// A refused commit (the group is rebalancing) keeps them pending for the next call, and is
/// returned so callers can log it; nothing processed is lost by it (see [`GroupContext`]).
pub fn commit(
    consumer: &GroupConsumer,
    processed: &BTreeMap<(String, i32), i64>,
) -> Result<(), KafkaError> {
    let Ok(mut pending) = consumer.context().pending.lock() else {
        return Err(KafkaError::Other(
            "the consumer's pending offsets are poisoned".into(),
        ));
    };
    for (key, offset) in processed {
        let e = pending.entry(key.clone()).or_insert(*offset);
        *e = (*e).max(*offset);
    }
    if pending.is_empty() {
        return Ok(());
    }
    // Offsets of partitions another member owns now are theirs to commit: committing ours could
    // move their position back.
    if let Ok(assigned) = consumer.assignment() {
        pending
            .retain(|(topic, partition), _| assigned.find_partition(topic, *partition).is_some());
    }
    commit_now(consumer, &pending)?;
    pending.clear();
    Ok(())
}

/// Commits offsets still pending after refused commits (see [`commit`]); a no-op when none are.
pub fn commit_pending(consumer: &GroupConsumer) -> Result<(), KafkaError> {
    commit(consumer, &BTreeMap::new())
}

fn commit_now<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    processed: &BTreeMap<(String, i32), i64>,
) -> Result<(), KafkaError> {
    if processed.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in processed {
        tpl.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(offset + 1))?;
    }
    Ok(consumer.commit(&tpl, CommitMode::Sync)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// The broker named by RUNNEL_TEST_BOOTSTRAP (as the e2e tests use it), else the embedded one.
    fn embedded() -> KafkaConfig {
        if let Some(b) = std::env::var("RUNNEL_TEST_BOOTSTRAP")
            .ok()
            .filter(|b| !b.is_empty())
        {
            return KafkaConfig {
                bootstrap_servers: b,
                properties: BTreeMap::new(),
                embedded: None,
            };
        }
        let broker = Arc::new(EmbeddedBroker::start().expect("mock cluster"));
        KafkaConfig {
            bootstrap_servers: broker.bootstrap_servers(),
            properties: BTreeMap::new(),
            embedded: Some(broker),
        }
    }

    fn wait_for_assignment(consumer: &GroupConsumer, partitions: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while consumer.assignment().map(|a| a.count()).unwrap_or(0) < partitions {
            assert!(Instant::now() < deadline, "no assignment");
            consumer.poll(Duration::from_millis(100));
        }
    }

    #[test]
    fn pending_offsets_are_committed_when_their_partitions_are_revoked() {
        let kafka = embedded();
        let topic = format!("bids-{}", std::process::id());
        kafka.create_topic(&topic, 2, 1).expect("topic");
        let first = kafka.group_consumer(&topic, "earliest").expect("consumer");
        first.subscribe(&[topic.as_str()]).expect("subscribe");
        wait_for_assignment(&first, 2);
        // As left by a commit refused in a rebalance.
        first
            .context()
            .pending
            .lock()
            .expect("pending")
            .extend([((topic.clone(), 0), 9), ((topic.clone(), 1), 19)]);
        // A second member joins: the group takes the partitions back from the first (eager
        // rebalance), whose revoke callback commits what it still owed.
        let second = kafka.group_consumer(&topic, "earliest").expect("consumer");
        second.subscribe(&[topic.as_str()]).expect("subscribe");
        let deadline = Instant::now() + Duration::from_secs(30);
        while first.assignment().map(|a| a.count()).unwrap_or(0) != 1
            || second.assignment().map(|a| a.count()).unwrap_or(0) != 1
        {
            assert!(Instant::now() < deadline, "no rebalance");
            first.poll(Duration::from_millis(100));
            second.poll(Duration::from_millis(100));
        }
        // What the revoke callback could not commit (librdkafka's mock cluster refuses commits
        // in a rebalance) goes with the next commit, for the partition the first member kept.
        commit_pending(&first).expect("commit after the rebalance");
        assert!(first.context().pending.lock().expect("pending").is_empty());
        let kept = first
            .assignment()
            .expect("assignment")
            .elements()
            .first()
            .map(|e| e.partition())
            .expect("one partition");
        let committed = second
            .committed_offsets(
                {
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition(&topic, 0);
                    tpl.add_partition(&topic, 1);
                    tpl
                },
                Duration::from_secs(10),
            )
            .expect("committed offsets");
        for (partition, next) in [(0, 10), (1, 20)] {
            let offset = committed
                .find_partition(&topic, partition)
                .map(|e| e.offset());
            // A real broker accepts the revoke callback's commit of both partitions.
            if partition == kept || kafka.embedded.is_none() {
                assert_eq!(offset, Some(rdkafka::Offset::Offset(next)), "{partition}");
            }
        }
    }
}

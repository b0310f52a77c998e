//! Kafka adapter (rdkafka).
//!
//! The consumer polls on a dedicated thread and hands batches to the async pipeline through a
//! bounded channel (back-pressure: the thread blocks when the pipeline is behind). Offsets are
//! never auto-stored: `enable.auto.offset.store=false`, and on every assignment the rebalance
//! callback asks the caller where each partition really is (the offsets stored in SQL with the
//! effects) and seeks there. After the pipeline commits, it stores the offsets in Kafka too, for
//! lag monitoring only.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use tokio::sync::mpsc;

use crate::{BusError, Outgoing, Record};

/// How far before a stored position a partition is resumed. A broker may answer a fetch from the
/// middle of a producer batch with the *next* batch (tansu 0.6 does; Kafka returns the containing
/// batch and the client drops the records before the position), which would silently skip the
/// rest of that batch. Resuming earlier is harmless: the pipeline drops records below its stored
/// positions before parsing them. Larger than any producer batch of tickets.
pub const RESUME_REWIND: i64 = 10_000;

/// Where each assigned partition of a topic should resume: partition → next offset to read.
/// Partitions it leaves out start at `auto.offset.reset`.
pub type ResumeFn = Arc<dyn Fn(&str, &[i32]) -> Result<BTreeMap<i32, i64>, String> + Send + Sync>;

/// What the consumer thread hands to the pipeline.
#[derive(Debug)]
pub enum ConsumerEvent {
    Records(Vec<Record>),
    /// The consumer thread stopped after this error.
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    pub group_id: String,
    /// `earliest` or `latest`: where a partition with no stored offset starts.
    pub auto_offset_reset: String,
    /// Static group membership (`group.instance.id`): a restarted instance with the same id takes
    /// its partitions back at once instead of waiting for the broker to expire its old session.
    pub instance_id: Option<String>,
}

impl KafkaSettings {
    /// Where a partition with no stored position starts (`auto.offset.reset`, made explicit so
    /// an offset committed in Kafka is never used instead).
    fn reset_offset(&self) -> Offset {
        if self.auto_offset_reset == "latest" {
            Offset::End
        } else {
            Offset::Beginning
        }
    }
}

struct Context {
    resume: ResumeFn,
    reset: Offset,
    /// Set on every assignment change. A flag, not a channel message: the last revoke runs
    /// inside `close` on whichever thread drops the consumer, where nothing may block.
    rebalanced: Arc<AtomicBool>,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.seek_to_stored(tpl);
                tracing::info!(partitions = tpl.count(), "partitions assigned");
                consumer.assign(tpl)
            }
            _ => {
                tracing::info!(partitions = tpl.count(), "partitions revoked");
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "failed to apply a rebalance");
        }
        self.rebalanced.store(true, Ordering::SeqCst);
    }
}

impl Context {
    /// Gives every partition an explicit position: the stored one, or the reset offset. Left
    /// unset, librdkafka would resume from the offset committed in Kafka, which is for lag
    /// monitoring only and may be past records the index never got.
    fn seek_to_stored(&self, tpl: &mut TopicPartitionList) {
        let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for e in tpl.elements() {
            by_topic
                .entry(e.topic().to_string())
                .or_default()
                .push(e.partition());
        }
        for (topic, partitions) in by_topic {
            let stored = match (self.resume)(&topic, &partitions) {
                Ok(stored) => Some(stored),
                Err(reason) => {
                    tracing::error!(%topic, %reason, "failed to read stored offsets; resuming from the start");
                    None
                }
            };
            for partition in partitions {
                let offset = match &stored {
                    // Not knowing where we are, the start is safe (nothing applies twice);
                    // `latest` would skip records.
                    None => Offset::Beginning,
                    Some(stored) => stored.get(&partition).map_or(self.reset, |next| {
                        Offset::Offset((next - RESUME_REWIND).max(0))
                    }),
                };
                if let Err(e) = tpl.set_partition_offset(&topic, partition, offset) {
                    tracing::error!(%topic, partition, error = %e, "failed to set a partition's position");
                }
            }
        }
    }
}

/// A consumer-group member whose batches arrive on a channel.
pub struct KafkaConsumer {
    consumer: Arc<BaseConsumer<Context>>,
    events: mpsc::Receiver<ConsumerEvent>,
    rebalanced: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KafkaConsumer {
    pub fn start(
        settings: &KafkaSettings,
        topic: &str,
        resume: ResumeFn,
        max_batch: usize,
    ) -> Result<Self, BusError> {
        let (tx, rx) = mpsc::channel(4);
        let rebalanced = Arc::new(AtomicBool::new(false));
        let context = Context {
            resume,
            reset: settings.reset_offset(),
            rebalanced: rebalanced.clone(),
        };
        let mut config = ClientConfig::new();
        if let Some(id) = &settings.instance_id {
            config.set("group.instance.id", id);
        }
        let consumer: BaseConsumer<Context> = config
            .set("bootstrap.servers", &settings.brokers)
            .set("group.id", &settings.group_id)
            .set("enable.auto.offset.store", "false")
            .set("enable.auto.commit", "true")
            .set("auto.offset.reset", &settings.auto_offset_reset)
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", "10000")
            // Also the rebalance timeout: how long a rebalance waits for members that never come
            // back (a killed instance). The poll thread polls every 200 ms, so 30 s is ample.
            .set("max.poll.interval.ms", "30000")
            .set("fetch.message.max.bytes", "8388608")
            .set("message.max.bytes", "8388608")
            // A waiting fetch returns at least this often: bounds the delay of a ticket arriving
            // at the end of the log (librdkafka's default is 500 ms).
            .set("fetch.wait.max.ms", "100")
            .create_with_context(context)
            .map_err(|source| BusError::Kafka {
                operation: "create consumer",
                source,
            })?;
        consumer
            .subscribe(&[topic])
            .map_err(|source| BusError::Kafka {
                operation: "subscribe",
                source,
            })?;
        let consumer = Arc::new(consumer);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let consumer = consumer.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("kafka-consumer".into())
                .spawn(move || poll_loop(&consumer, &tx, &stop, max_batch))
                .map_err(|e| BusError::Io {
                    path: "kafka-consumer thread".into(),
                    source: e,
                })?
        };
        Ok(KafkaConsumer {
            consumer,
            events: rx,
            rebalanced,
            stop,
            thread: Some(thread),
        })
    }

    pub async fn next(&mut self) -> Option<ConsumerEvent> {
        self.events.recv().await
    }

    /// Whether partitions moved since the last call: state cached per partition must be dropped.
    pub fn take_rebalanced(&self) -> bool {
        self.rebalanced.swap(false, Ordering::SeqCst)
    }

    /// Tells Kafka how far this member got (after the effects committed in SQL): lag metrics only.
    pub fn mark_processed(&self, topic: &str, partition: i32, next_offset: i64) {
        if let Err(e) = self
            .consumer
            .store_offset(topic, partition, next_offset - 1)
        {
            // The partition may have been revoked meanwhile; SQL holds the truth anyway.
            tracing::debug!(%topic, partition, error = %e, "failed to store offset in kafka");
        }
    }

    /// Kafka's end offset of a partition (for lag).
    pub fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        self.consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(2))
            .ok()
            .map(|(_, high)| high)
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.events.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn poll_loop(
    consumer: &BaseConsumer<Context>,
    tx: &mpsc::Sender<ConsumerEvent>,
    stop: &AtomicBool,
    max_batch: usize,
) {
    let mut batch = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let timeout = if batch.is_empty() {
            Duration::from_millis(200)
        } else {
            Duration::ZERO
        };
        match consumer.poll(timeout) {
            Some(Ok(m)) => {
                batch.push(Record {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    headers: headers_of(&m),
                });
                if batch.len() < max_batch {
                    continue;
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "kafka consumer error");
                if is_fatal(&e) {
                    let _ = tx.blocking_send(ConsumerEvent::Failed(e.to_string()));
                    return;
                }
            }
            None => {}
        }
        if !batch.is_empty()
            && tx
                .blocking_send(ConsumerEvent::Records(std::mem::take(&mut batch)))
                .is_err()
        {
            return;
        }
    }
}

fn headers_of<M: Message>(m: &M) -> Vec<(String, Vec<u8>)> {
    m.headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn is_fatal(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::ClientCreation(_) | KafkaError::Subscription(_)
    )
}

/// An idempotent producer: retries never duplicate a record within a partition.
#[derive(Clone)]
pub struct KafkaProducer {
    producer: FutureProducer,
}

impl KafkaProducer {
    pub fn new(brokers: &str) -> Result<Self, BusError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.max.bytes", "8388608")
            .set("message.timeout.ms", "30000")
            .create()
            .map_err(|source| BusError::Kafka {
                operation: "create producer",
                source,
            })?;
        Ok(KafkaProducer { producer })
    }

    /// Produces records to `topic` and waits until every one is acknowledged.
    pub async fn send(&self, topic: &str, records: &[Outgoing]) -> Result<(), BusError> {
        let sends = records.iter().map(|r| {
            let mut headers = OwnedHeaders::new();
            for (k, v) in &r.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            let mut record = FutureRecord::<[u8], [u8]>::to(topic)
                .payload(&r.payload)
                .headers(headers);
            if let Some(key) = &r.key {
                record = record.key(key);
            }
            self.producer.send(record, Duration::from_secs(30))
        });
        for result in futures::future::join_all(sends).await {
            result.map_err(|(source, _)| BusError::Kafka {
                operation: "produce",
                source,
            })?;
        }
        Ok(())
    }
}

/// Creates a topic (tests, bench, first start); an existing topic is left as it is.
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<(), BusError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::types::RDKafkaErrorCode;

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|source| BusError::Kafka {
            operation: "create admin client",
            source,
        })?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(
            &[new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(|source| BusError::Kafka {
            operation: "create topic",
            source,
        })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(BusError::Kafka {
                    operation: "create topic",
                    source: KafkaError::AdminOp(code),
                })
                .inspect_err(|_| tracing::error!(topic = %name, "failed to create topic"))
            }
        }
    }
    Ok(())
}

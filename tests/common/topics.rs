//! Reading what sevloop wrote to a topic (the SEV events, the dead letters), as a consumer of the
//! test's own would.

use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use super::{kafka_brokers, unique};

/// One message as read: key and payload as text, the payload also as JSON (null when it is
/// not), and the headers.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: String,
    pub payload: String,
    pub value: Value,
    pub headers: Vec<(String, String)>,
}

impl Record {
    /// The value of header `name`, empty when there is none.
    pub fn header(&self, name: &str) -> String {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// A consumer of its own that reads every partition of a topic from the beginning; `read` holds
/// what it read so far.
pub struct TopicReader {
    topic: String,
    consumer: StreamConsumer,
    pub read: Vec<Record>,
}

impl TopicReader {
    pub fn from_start(topic: &str) -> Self {
        let consumer: StreamConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", kafka_brokers())
            .set("group.id", unique("topic-reader"))
            .set("enable.auto.commit", "false")
            // A dead letter keeps the whole record, even one over the broker's usual limit.
            .set("fetch.message.max.bytes", "8388608")
            .create()
            .expect("a Kafka consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("metadata of {topic}: {e}"));
        let mut partitions = TopicPartitionList::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                partitions
                    .add_partition_offset(topic, p.id(), Offset::Beginning)
                    .expect("partition");
            }
        }
        consumer.assign(&partitions).expect("assign");
        TopicReader {
            topic: topic.to_string(),
            consumer,
            read: Vec::new(),
        }
    }

    /// The next message, or none within `wait`.
    async fn next(&self, wait: Duration) -> Option<Record> {
        let message = tokio::time::timeout(wait, self.consumer.recv())
            .await
            .ok()?;
        let m = message.unwrap_or_else(|e| panic!("{} can be read: {e}", self.topic));
        let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), text(h.value)))
                    .collect()
            })
            .unwrap_or_default();
        let payload = text(m.payload());
        Some(Record {
            key: text(m.key()),
            value: serde_json::from_str(&payload).unwrap_or(Value::Null),
            payload,
            headers,
        })
    }

    /// Reads until `done` holds for everything read; fails, naming `what`, after `timeout`.
    pub async fn read_until(
        &mut self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&[Record]) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !done(&self.read) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {timeout:?} waiting for {what} on {}; read {}: {:#?}",
                self.topic,
                self.read.len(),
                self.read.iter().map(|r| &r.payload).collect::<Vec<_>>()
            );
            if let Some(record) = self.next(left).await {
                self.read.push(record);
            }
        }
    }

    /// Reads whatever else arrives until `quiet` passes without a message.
    pub async fn read_until_quiet(&mut self, quiet: Duration) {
        while let Some(record) = self.next(quiet).await {
            self.read.push(record);
        }
    }
}

/// Reads `topic` from the start until `done` holds for what was read (failing, naming `what`,
/// after a minute); returns every message read.
pub async fn read_topic(
    topic: &str,
    what: &str,
    done: impl FnMut(&[Record]) -> bool,
) -> Vec<Record> {
    let mut reader = TopicReader::from_start(topic);
    reader.read_until(Duration::from_secs(60), what, done).await;
    reader.read
}

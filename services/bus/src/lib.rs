//! The ticket log. Two adapters behind one shape: Kafka (rdkafka) for production and an
//! embedded, durable, file-backed log for the default single-binary mode.
//!
//! Both hand out [`Record`]s with a `(topic, partition, offset)` position; the pipeline stores
//! the next offset to read in the same SQL transaction as the effects of the records, so the
//! log itself never needs to remember where a consumer is.

pub mod embedded;
mod error;
pub mod kafka;

pub use error::BusError;

/// One message read from a log, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// Kafka headers (the dead-letter topic carries its reasons here).
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A record to append: key, payload, headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Appends to the ticket log, whichever it is.
#[derive(Clone)]
pub enum LogWriter {
    Kafka(kafka::KafkaProducer),
    Embedded(embedded::EmbeddedLog),
}

impl LogWriter {
    /// Appends records and returns once every one is durable (acknowledged by Kafka, or fsynced).
    pub async fn send(&self, topic: &str, records: Vec<Outgoing>) -> Result<(), BusError> {
        match self {
            LogWriter::Kafka(producer) => producer.send(topic, &records).await,
            LogWriter::Embedded(log) => log.append(topic, records).await.map(|_| ()),
        }
    }
}

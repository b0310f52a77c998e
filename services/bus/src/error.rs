use std::path::PathBuf;

/// Infrastructure errors of the log: the caller stops and retries, it never advances past them.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("embedded log i/o failed at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("embedded log {path} is corrupt at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("kafka {operation} failed: {source}")]
    Kafka {
        operation: &'static str,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("record of {size} bytes exceeds the log's limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("the log is closed")]
    Closed,
}

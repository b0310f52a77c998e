//! Stage loops: feed the pipeline from the embedded log or from Kafka, and keep them running.
//!
//! An infrastructure error ends the loop without advancing anything; the supervisor waits (with
//! backoff) and starts the loop again, which re-reads the stored offsets and resumes there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sevloop_bus::embedded::EmbeddedLog;
use sevloop_bus::kafka::{ConsumerEvent, KafkaConsumer, KafkaSettings, ResumeFn};
use sevloop_index::TicketIndex;
use sevloop_store::Store;
use tokio_util::sync::CancellationToken;

use crate::pipeline::{Pipeline, PipelineError};

const IDLE_WAIT: Duration = Duration::from_millis(200);
/// How often the Kafka consumer asks the brokers for end offsets (one request per partition).
const LAG_INTERVAL: Duration = Duration::from_secs(5);

/// Restart policy for a stage: after an error, wait with capped exponential backoff.
pub struct Restarts {
    task: &'static str,
    backoff: Duration,
    started: Instant,
}

/// A run this long counts as healthy: the next failure starts the backoff afresh.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

impl Restarts {
    pub fn new(task: &'static str) -> Self {
        Restarts {
            task,
            backoff: FIRST_BACKOFF,
            started: Instant::now(),
        }
    }

    /// Logs the outcome of one run. Returns whether to run the stage again.
    pub async fn again<E: std::fmt::Display>(
        &mut self,
        outcome: Result<(), E>,
        shutdown: &CancellationToken,
    ) -> bool {
        let Err(e) = outcome else {
            tracing::info!(task = self.task, "task stopped");
            return false;
        };
        if self.started.elapsed() >= HEALTHY_RUN {
            self.backoff = FIRST_BACKOFF;
        }
        tracing::error!(task = self.task, error = %e, retry_in_ms = self.backoff.as_millis() as u64, "task failed; restarting");
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(self.backoff) => {}
        }
        self.backoff = (self.backoff * 2).min(Duration::from_secs(30));
        self.started = Instant::now();
        true
    }
}

/// Consumes the embedded log (one partition) from the stored position.
pub async fn run_embedded(
    pipeline: &mut Pipeline,
    log: &EmbeddedLog,
    topic: &str,
    max_batch: usize,
    shutdown: &CancellationToken,
) -> Result<(), PipelineError> {
    pipeline.reset();
    let resume = pipeline.resume().await?;
    let mut reader = log.reader(topic, resume.get(&0).copied().unwrap_or(0));
    loop {
        let batch = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            batch = reader.next_batch(max_batch, IDLE_WAIT) => batch?,
        };
        if batch.is_empty() {
            pipeline.commit_index().await?;
        } else {
            pipeline.process(batch).await?;
        }
        pipeline.report_lag(log.end_offset(topic) - reader.position());
    }
    pipeline.commit_index().await
}

/// Consumes a Kafka topic as a member of the consumer group.
pub async fn run_kafka(
    pipeline: &mut Pipeline,
    settings: &KafkaSettings,
    topic: &str,
    max_batch: usize,
    shutdown: &CancellationToken,
) -> Result<(), PipelineError> {
    pipeline.reset();
    let mut consumer = KafkaConsumer::start(settings, topic, pipeline.resume_fn(), max_batch)?;
    let mut idle = tokio::time::interval(IDLE_WAIT);
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    let mut last_lag = Instant::now();
    loop {
        let event = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            event = consumer.next() => event,
            _ = idle.tick() => {
                pipeline.commit_index().await?;
                continue;
            }
        };
        if consumer.take_rebalanced() {
            pipeline.reset();
            positions.clear();
        }
        match event {
            Some(ConsumerEvent::Records(batch)) => {
                for ((topic, partition), next) in pipeline.process(batch).await? {
                    consumer.mark_processed(&topic, partition, next);
                    positions.insert(partition, next);
                }
            }
            Some(ConsumerEvent::Failed(reason)) => return Err(PipelineError::Consumer(reason)),
            None => return Err(PipelineError::Consumer("consumer thread stopped".into())),
        }
        if last_lag.elapsed() >= LAG_INTERVAL {
            // Asking the brokers blocks; keep it off the other tasks' threads.
            let lag = tokio::task::block_in_place(|| {
                positions
                    .iter()
                    .filter_map(|(p, next)| {
                        consumer.high_watermark(topic, *p).map(|end| end - next)
                    })
                    .sum::<i64>()
            });
            pipeline.report_lag(lag);
            last_lag = Instant::now();
        }
    }
    pipeline.commit_index().await
}

impl Pipeline {
    /// Resume positions for this pipeline's consumer and topic.
    pub async fn resume(&self) -> Result<std::collections::BTreeMap<i32, i64>, PipelineError> {
        Pipeline::resume_offsets(self.store(), self.index(), self.consumer(), self.topic()).await
    }

    /// The same, callable from the Kafka consumer thread's rebalance callback.
    pub fn resume_fn(&self) -> ResumeFn {
        let handle = tokio::runtime::Handle::current();
        let store: Store = self.store().clone();
        let index: Arc<TicketIndex> = self.index().clone();
        let consumer = self.consumer().to_string();
        Arc::new(move |topic: &str, _partitions: &[i32]| {
            handle
                .block_on(Pipeline::resume_offsets(&store, &index, &consumer, topic))
                .map_err(|e| e.to_string())
        })
    }
}

//! Builds sevloop from settings and runs its stages as named tasks until shutdown.
//! Shutdown order: stop fetching (the pipeline commits its index), stop HTTP, then return.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use sevloop_bus::embedded::EmbeddedLog;
use sevloop_bus::kafka::{KafkaProducer, KafkaSettings};
use sevloop_bus::LogWriter;
use sevloop_http::{AppState, Intake, Metrics};
use sevloop_index::TicketIndex;
use sevloop_store::Store;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::catalog::CatalogHandle;
use crate::config::Settings;
use crate::dispatcher::{Dispatcher, Origin};
use crate::embedder::Embedder;
use crate::pipeline::{Parts, Pipeline};
use crate::runner::{run_embedded, run_kafka, Restarts};
use sevloop_http::CatalogAdmin;

/// A stage that can run alone (`serve --only STAGE`) or with the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// Intake, read API, dashboard, health and metrics.
    Api,
    /// Log → tickets, index, clusters, detection, SEVs, outbox.
    Pipeline,
    /// Outbox → webhooks.
    Dispatcher,
}

pub const ALL_STAGES: [Stage; 3] = [Stage::Api, Stage::Pipeline, Stage::Dispatcher];

/// Where tickets are read from and appended to.
#[derive(Clone)]
enum Log {
    Embedded(EmbeddedLog),
    Kafka(KafkaSettings),
}

pub struct App {
    settings: Arc<Settings>,
    stages: Vec<Stage>,
    pub store: Store,
    pub index: Arc<TicketIndex>,
    pub metrics: Arc<Metrics>,
    log: Log,
    writer: LogWriter,
    listener: Option<tokio::net::TcpListener>,
    embedder: Option<Embedder>,
    catalog: CatalogHandle,
}

impl App {
    /// Embedded default: log, SQLite and index under `data_dir`. With a `[kafka]` section: Kafka.
    pub async fn build(settings: Settings, stages: &[Stage]) -> anyhow::Result<App> {
        let catalog = CatalogHandle::load(settings.catalog.as_deref())
            .context("failed to load the catalog")?;
        let (log, writer) = match &settings.kafka {
            Some(k) => {
                let producer = KafkaProducer::new(&k.brokers)
                    .context("failed to create the kafka producer")?;
                let k = KafkaSettings {
                    brokers: k.brokers.clone(),
                    group_id: k.group_id.clone(),
                    auto_offset_reset: k.auto_offset_reset.clone(),
                    instance_id: k.instance_id.clone(),
                };
                (Log::Kafka(k), LogWriter::Kafka(producer))
            }
            None => {
                let dir = settings.log_dir();
                let log = EmbeddedLog::open(&dir).with_context(|| {
                    format!("failed to open the embedded log in {}", dir.display())
                })?;
                (Log::Embedded(log.clone()), LogWriter::Embedded(log))
            }
        };
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!("failed to create data dir {}", settings.data_dir.display())
        })?;
        let store = Store::connect(&settings.database_url())
            .await
            .context("failed to open the database")?;
        let dir = settings.index_dir();
        let index = if stages.contains(&Stage::Pipeline) {
            TicketIndex::open(&dir)
        } else {
            TicketIndex::open_read_only(&dir)
        }
        .with_context(|| format!("failed to open the index in {}", dir.display()))?;
        let embedder = if stages.contains(&Stage::Pipeline) {
            Embedder::load(&settings.encoder).context("failed to load the sentence encoder")?
        } else {
            None
        };
        let listener = if stages.contains(&Stage::Api) {
            let addr = settings.http.listen;
            Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("failed to listen on {addr}"))?,
            )
        } else {
            None
        };
        Ok(App {
            settings: Arc::new(settings),
            stages: stages.to_vec(),
            store,
            index: Arc::new(index),
            metrics: Arc::new(Metrics::default()),
            log,
            writer,
            listener,
            embedder,
            catalog,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn writer(&self) -> LogWriter {
        self.writer.clone()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Runs every stage until `shutdown` is cancelled or a stage fails for good.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks = JoinSet::new();
        if let Some(listener) = self.listener.take() {
            let state = AppState {
                store: self.store.clone(),
                index: self.index.clone(),
                intake: Some(Intake {
                    writer: self.writer.clone(),
                    topic: self.settings.pipeline.tickets_topic.clone(),
                }),
                metrics: self.metrics.clone(),
                redactor: Arc::new(sevloop_core::redact::Redactor::new()),
                catalog: self
                    .catalog
                    .has_file()
                    .then(|| Arc::new(self.catalog.clone()) as Arc<dyn CatalogAdmin>),
            };
            let http_shutdown = shutdown.clone();
            tasks.spawn(async move {
                let served = axum::serve(listener, sevloop_http::router(state))
                    .with_graceful_shutdown(http_shutdown.cancelled_owned())
                    .await;
                ("http", served.map_err(anyhow::Error::from))
            });
        }
        if self.stages.contains(&Stage::Pipeline) {
            let mut pipeline = self.pipeline()?;
            let log = self.log.clone();
            let settings = self.settings.clone();
            let token = shutdown.clone();
            tasks.spawn(async move {
                let topic = &settings.pipeline.tickets_topic;
                let max = settings.pipeline.max_batch;
                let mut restarts = Restarts::new("pipeline");
                loop {
                    let outcome = match &log {
                        Log::Embedded(l) => {
                            run_embedded(&mut pipeline, l, topic, max, &token).await
                        }
                        Log::Kafka(k) => run_kafka(&mut pipeline, k, topic, max, &token).await,
                    };
                    if !restarts.again(outcome, &token).await {
                        break;
                    }
                }
                ("pipeline", Ok(()))
            });
        }
        if self.stages.contains(&Stage::Dispatcher) {
            let origin = Origin {
                public_url: self.settings.http.public_url(),
                installation: self.store.installation().await?,
            };
            let dispatcher = Dispatcher::new(
                self.store.clone(),
                self.settings.notify.clone(),
                self.catalog.clone(),
                origin,
                self.writer.clone(),
                self.metrics.clone(),
            );
            let token = shutdown.clone();
            tasks.spawn(async move {
                let mut restarts = Restarts::new("dispatcher");
                while restarts.again(dispatcher.run(&token).await, &token).await {}
                ("dispatcher", Ok(()))
            });
        }
        let watch = tokio::spawn(self.catalog.clone().watch(shutdown.clone()));
        let mut result = Ok(());
        while let Some(joined) = tasks.join_next().await {
            let (name, outcome) = joined.context("a task panicked")?;
            if let Err(e) = outcome {
                tracing::error!(task = name, error = %e, "task failed; shutting down");
                result = Err(e.context(format!("{name} failed")));
            } else {
                tracing::info!(task = name, "task exited");
            }
            shutdown.cancel();
        }
        watch.abort();
        self.store.close().await;
        result
    }

    fn pipeline(&self) -> anyhow::Result<Pipeline> {
        let consumer = match &self.log {
            Log::Embedded(_) => "embedded".to_string(),
            Log::Kafka(k) => k.group_id.clone(),
        };
        let parts = Parts {
            store: self.store.clone(),
            index: self.index.clone(),
            dlq: self.writer.clone(),
            settings: self.settings.clone(),
            metrics: self.metrics.clone(),
            embedder: self.embedder.clone(),
            catalog: self.catalog.clone(),
        };
        Ok(Pipeline::new(parts, &consumer)?)
    }
}

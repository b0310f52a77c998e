//! The pipeline stage: log records in, effects out, exactly once.
//!
//! One batch is one SQL transaction holding the ticket rows, cluster checkpoints, SEVs, links,
//! timeline events, outbox rows and the next offsets (compare-and-set, so an overlapping consumer
//! after a rebalance can never apply a record twice). Invalid records are dead-lettered before the
//! commit that moves past them. The search index is fed after the commit and commits on its own
//! schedule with the offsets it covers in its payload; on restart the stage resumes from the
//! lower of the two positions and skips what each side already has.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use sevloop_bus::{BusError, LogWriter, Record};
use sevloop_core::cluster::corrections::CorrectionRequest;
use sevloop_core::redact::Redactor;
use sevloop_core::sev::SevActionRequest;
use sevloop_core::{Featurizer, RuleBook, Scope, TicketEvent};
use sevloop_http::Metrics;
use sevloop_index::{IndexError, TicketIndex};
use sevloop_store::{Store, StoreError};

use crate::catalog::CatalogHandle;
use crate::config::Settings;
use crate::embedder::Embedder;

mod corrections;
mod indexing;
mod observe;
mod records;

use indexing::index_doc;
use records::parse;

/// Infrastructure errors: the batch is rolled back and the stage restarts from stored offsets.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("failed to dead-letter: {0}")]
    DeadLetter(#[from] BusError),
    #[error("consumer failed: {0}")]
    Consumer(String),
    #[error("index task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Rules(#[from] sevloop_core::detect::RuleError),
    #[error("sentence encoder failed: {0}")]
    Embed(#[from] crate::embedder::EmbedderError),
}

type Position = (String, i32);

pub struct Pipeline {
    store: Store,
    index: Arc<TicketIndex>,
    dlq: LogWriter,
    settings: Arc<Settings>,
    rules: Arc<RuleBook>,
    catalog: CatalogHandle,
    redactor: Redactor,
    public_url: String,
    metrics: Arc<Metrics>,
    consumer: String,
    scopes: HashMap<String, Scope>,
    featurizer: Featurizer,
    embedder: Option<Embedder>,
    /// Next offsets fed to the index writer (committed or not).
    index_fed: BTreeMap<Position, i64>,
    index_dirty: bool,
    last_index_commit: Instant,
}

/// A parsed record and what is already done with it.
struct Item {
    record: Record,
    body: Body,
    in_db: bool,
}

/// What a record of the ticket log carries.
// Tickets are the common case; boxing them to even out the variants would cost an allocation
// per record for nothing.
#[allow(clippy::large_enum_variant)]
enum Body {
    Ticket(TicketEvent),
    Correction(CorrectionRequest),
    Action(SevActionRequest),
}

/// A record that cannot be processed, with the code and reason it is dead-lettered under.
type Dead = (Record, &'static str, String);

/// The next offset of each partition the index's last commit covers.
fn index_committed(index: &TicketIndex) -> Result<BTreeMap<Position, i64>, PipelineError> {
    Ok(index
        .committed_offsets()?
        .into_iter()
        .map(|c| ((c.topic, c.partition), c.next_offset))
        .collect())
}

/// A record with what it carries, or the code and reason it cannot be processed.
type Parsed = (Record, Result<Body, (&'static str, String)>);

/// What a pipeline works with.
pub struct Parts {
    pub store: Store,
    pub index: Arc<TicketIndex>,
    /// Where bad records are dead-lettered.
    pub dlq: LogWriter,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub embedder: Option<Embedder>,
    pub catalog: CatalogHandle,
}

impl Pipeline {
    pub fn new(parts: Parts, consumer: &str) -> Result<Self, PipelineError> {
        let Parts {
            store,
            index,
            dlq,
            settings,
            metrics,
            embedder,
            catalog,
        } = parts;
        let index_fed = index_committed(&index)?;
        let rules = Arc::new(settings.rule_book()?);
        let public_url = settings.http.public_url();
        Ok(Pipeline {
            store,
            index,
            dlq,
            settings,
            rules,
            catalog,
            redactor: Redactor::new(),
            public_url,
            metrics,
            consumer: consumer.to_string(),
            scopes: HashMap::new(),
            featurizer: Featurizer::default(),
            embedder,
            index_fed,
            index_dirty: false,
            last_index_commit: Instant::now(),
        })
    }

    /// Where to resume each partition: the lower of what SQL and the index have covered, a side
    /// that has nothing counting as offset 0 (a lost index is rebuilt from the start). Only a
    /// partition neither side knows is left out: it starts at `auto.offset.reset`.
    pub async fn resume_offsets(
        store: &Store,
        index: &TicketIndex,
        consumer: &str,
        topic: &str,
    ) -> Result<BTreeMap<i32, i64>, PipelineError> {
        let db = sevloop_store::stored_offsets(store, consumer, topic).await?;
        let indexed: BTreeMap<i32, i64> = index
            .committed_offsets()?
            .into_iter()
            .filter(|c| c.topic == topic)
            .map(|c| (c.partition, c.next_offset))
            .collect();
        let partitions: BTreeSet<i32> = db.keys().chain(indexed.keys()).copied().collect();
        Ok(partitions
            .into_iter()
            .map(|p| {
                let covered = |side: &BTreeMap<i32, i64>| side.get(&p).copied().unwrap_or(0);
                (p, covered(&db).min(covered(&indexed)))
            })
            .collect())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn index(&self) -> &Arc<TicketIndex> {
        &self.index
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    pub fn topic(&self) -> &str {
        &self.settings.pipeline.tickets_topic
    }

    /// Records how many records of the log this consumer has yet to read.
    pub fn report_lag(&self, lag: i64) {
        self.metrics.consumer_lag.set(lag.max(0));
    }

    /// Drops cached cluster state (after a rebalance or a failed batch); it reloads from SQL.
    pub fn reset(&mut self) {
        self.scopes.clear();
        // Fed but maybe never committed (a failed index commit fails the batch): what the
        // index has committed is what it has, and a replay feeds it the rest again (an upsert
        // never doubles a document). Unreadable, it is fed everything replayed.
        self.index_fed = index_committed(&self.index).unwrap_or_default();
    }

    /// Processes one batch. Returns the next offset of each partition it covered.
    pub async fn process(
        &mut self,
        records: Vec<Record>,
    ) -> Result<Vec<(Position, i64)>, PipelineError> {
        let started = Instant::now();
        let result = self.process_inner(records).await;
        if result.is_err() {
            self.reset();
        }
        self.metrics
            .batch_seconds
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn process_inner(
        &mut self,
        records: Vec<Record>,
    ) -> Result<Vec<(Position, i64)>, PipelineError> {
        let parsed: Vec<Parsed> = records
            .into_iter()
            .map(|record| {
                let body = parse(&record);
                (record, body)
            })
            .collect();
        // The encoder is the slow step (seconds for a full batch): it runs before the write
        // transaction, so the dispatcher and the API never wait on SQLite's lock for it.
        let mut dense = self.embed_new(&parsed).await?;
        let mut tx = self.store.begin().await?;
        let mut stored: BTreeMap<Position, Option<i64>> = BTreeMap::new();
        for (r, _) in &parsed {
            if let Entry::Vacant(slot) = stored.entry((r.topic.clone(), r.partition)) {
                let next =
                    sevloop_store::read_offset(&mut tx, &self.consumer, &r.topic, r.partition)
                        .await?;
                slot.insert(next);
            }
        }
        let mut items = Vec::new();
        let mut dead = Vec::new();
        let mut next_of: BTreeMap<Position, i64> = BTreeMap::new();
        for (record, body) in parsed {
            let pos = (record.topic.clone(), record.partition);
            let in_db = record.offset < stored[&pos].unwrap_or(0);
            let in_index = record.offset < self.index_fed.get(&pos).copied().unwrap_or(0);
            let next = next_of.entry(pos).or_insert(record.offset + 1);
            *next = (*next).max(record.offset + 1);
            if in_db && in_index {
                continue;
            }
            match body {
                Ok(body) => items.push(Item {
                    record,
                    body,
                    in_db,
                }),
                Err((code, reason)) if !in_db => dead.push((record, code, reason)),
                Err(_) => {}
            }
        }
        let ids: Vec<&str> = items
            .iter()
            .filter_map(|i| ticket_of(i).map(|t| t.ticket_id.as_str()))
            .collect();
        let mut known = sevloop_store::known_tickets(&mut tx, &ids).await?;
        let mut docs = Vec::with_capacity(items.len());
        let mut counted = 0u64;
        for item in &items {
            let ticket = match &item.body {
                Body::Ticket(ticket) => ticket,
                Body::Correction(request) => {
                    if !item.in_db {
                        self.correct(&mut tx, request).await?;
                    }
                    continue;
                }
                Body::Action(request) => {
                    if !item.in_db {
                        self.act(&mut tx, request).await?;
                    }
                    continue;
                }
            };
            let cluster_id = match known.get(&ticket.ticket_id) {
                Some(k) => {
                    if !item.in_db {
                        sevloop_store::update_ticket(&mut tx, ticket).await?;
                    }
                    k.cluster_id.clone()
                }
                None if item.in_db => continue,
                None => {
                    counted += 1;
                    let vector = dense.remove(&ticket.ticket_id);
                    self.observe(&mut tx, item, ticket, vector).await?
                }
            };
            known.insert(
                ticket.ticket_id.clone(),
                sevloop_store::KnownTicket {
                    cluster_id: cluster_id.clone(),
                },
            );
            docs.push(index_doc(ticket, cluster_id));
        }
        for scope in self.scopes.values_mut() {
            sevloop_store::save_clusters(&mut tx, &scope.take_touched()).await?;
        }
        self.dead_letter(&dead).await?;
        for ((topic, partition), next) in &next_of {
            let expected = stored[&(topic.clone(), *partition)];
            if expected.is_none_or(|e| *next > e) {
                sevloop_store::advance_offset(
                    &mut tx,
                    &self.consumer,
                    topic,
                    *partition,
                    expected,
                    *next,
                )
                .await?;
            }
        }
        tx.commit().await.map_err(|e| StoreError::Sql {
            operation: "commit batch".into(),
            source: e,
        })?;
        self.metrics.tickets_processed.inc_by(counted);
        self.feed_index(docs, &next_of).await?;
        Ok(next_of.into_iter().collect())
    }
}

fn ticket_of(item: &Item) -> Option<&TicketEvent> {
    match &item.body {
        Body::Ticket(t) => Some(t),
        Body::Correction(_) | Body::Action(_) => None,
    }
}

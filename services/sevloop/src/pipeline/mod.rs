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

use chrono::Utc;
use sevloop_bus::Outgoing;
use sevloop_bus::{BusError, LogWriter, Record};
use sevloop_core::cluster::corrections::{CorrectionRequest, CORRECTION_RECORD};
use sevloop_core::redact::Redactor;
use sevloop_core::sev::{SevActionRequest, SEV_ACTION_RECORD};
use sevloop_core::Catalog;
use sevloop_core::RECORD_HEADER;
use sevloop_core::{Decision, Detection, Featurizer, Policy, RuleBook, Scope, TicketEvent};
use sevloop_http::Metrics;
use sevloop_index::{CoveredOffset, IndexDoc, IndexError, TicketIndex};
use sevloop_store::{Store, StoreError};

use crate::catalog::CatalogHandle;
use crate::config::Settings;
use crate::embedder::Embedder;
use crate::sevs::{ActionOutcome, Sevs};

mod corrections;

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
        let index_fed = index
            .committed_offsets()?
            .into_iter()
            .map(|c| ((c.topic, c.partition), c.next_offset))
            .collect();
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

    /// Sentence vectors for the tickets this batch sees for the first time (none when the
    /// encoder is off). Identical texts are embedded once. Read outside the batch's transaction:
    /// a ticket stored in between only leaves its vector unused.
    async fn embed_new(
        &self,
        parsed: &[Parsed],
    ) -> Result<HashMap<String, Vec<f32>>, PipelineError> {
        let Some(embedder) = &self.embedder else {
            return Ok(HashMap::new());
        };
        let tickets: Vec<&TicketEvent> = parsed
            .iter()
            .filter_map(|(_, body)| match body {
                Ok(Body::Ticket(t)) => Some(t),
                _ => None,
            })
            .collect();
        let ids: Vec<&str> = tickets.iter().map(|t| t.ticket_id.as_str()).collect();
        let known = sevloop_store::known_tickets(&mut *self.store.conn().await?, &ids).await?;
        let mut seen = BTreeSet::new();
        let new: Vec<&TicketEvent> = tickets
            .into_iter()
            .filter(|t| !known.contains_key(&t.ticket_id) && seen.insert(t.ticket_id.as_str()))
            .collect();
        let texts = new
            .iter()
            .map(|t| sevloop_core::embedding_text(t))
            .collect();
        let vectors = embedder.embed(texts).await?;
        Ok(new
            .into_iter()
            .map(|t| t.ticket_id.clone())
            .zip(vectors)
            .collect())
    }

    /// The product's clusters, restored from their checkpoints on first use.
    async fn scope(
        &mut self,
        tx: &mut sevloop_store::Tx,
        product: &str,
    ) -> Result<&mut Scope, PipelineError> {
        if !self.scopes.contains_key(product) {
            let checkpoints = sevloop_store::load_clusters(tx, product).await?;
            let scope = Scope::restore(product, self.settings.clustering.clone(), checkpoints);
            self.scopes.insert(product.to_string(), scope);
        }
        self.scopes
            .get_mut(product)
            .ok_or_else(|| PipelineError::Consumer(format!("scope {product} vanished")))
    }

    /// Clusters a new ticket, stores it and acts on the detection decision. Returns its cluster.
    async fn observe(
        &mut self,
        tx: &mut sevloop_store::Tx,
        item: &Item,
        ticket: &TicketEvent,
        dense: Option<Vec<f32>>,
    ) -> Result<String, PipelineError> {
        let features = sevloop_core::ticket_features(&mut self.featurizer, ticket, dense);
        let (catalog, rules) = (self.catalog.get(), self.rules.clone());
        let detection = Detection {
            rules: &rules,
            catalog: &catalog,
            policy: Policy::Combined,
            explain: false,
        };
        let scope = self.scope(tx, &ticket.product).await?;
        let obs = scope.observe(&features, ticket, &detection);
        let label = escalated_label(scope, &obs.decision);
        for (ticket_id, seq) in &obs.moved {
            let cluster = sevloop_core::cluster::cluster_id(&ticket.product, *seq);
            sevloop_store::set_ticket_cluster(tx, ticket_id, &cluster).await?;
        }
        if !obs.moved.is_empty() {
            tracing::info!(product = %ticket.product, tickets = obs.moved.len(),
                "drift split: tickets moved to new clusters");
        }
        sevloop_store::insert_ticket(
            tx,
            ticket,
            &obs.assignment,
            features.dense.as_deref(),
            item.record.partition,
            item.record.offset,
        )
        .await?;
        let sevs = self.sevs(&catalog);
        match &obs.decision {
            Decision::Escalate(e) => {
                if sevs.escalate(tx, ticket, e, &label).await? {
                    self.metrics.sevs_opened.inc();
                }
            }
            Decision::Join {
                escalation,
                sev_cluster,
            } => sevs.join(tx, escalation, sev_cluster).await?,
            Decision::Attach { sev_cluster } => sevs.attach(tx, ticket, sev_cluster).await?,
            Decision::Quiet => {}
        }
        Ok(obs.assignment.cluster_id)
    }

    /// The SEV side, with the catalog in use and this moment's wall clock.
    fn sevs<'a>(&'a self, catalog: &'a Catalog) -> Sevs<'a> {
        Sevs {
            catalog,
            public_url: &self.public_url,
            redactor: &self.redactor,
            now: Utc::now(),
        }
    }

    /// Applies a person's action on a SEV; a SEV that closes ends its clusters' episodes.
    async fn act(
        &mut self,
        tx: &mut sevloop_store::Tx,
        request: &SevActionRequest,
    ) -> Result<(), PipelineError> {
        let catalog = self.catalog.get();
        let outcome = self.sevs(&catalog).act(tx, request).await?;
        if let ActionOutcome::Applied {
            ended: Some(cluster_id),
        } = outcome
        {
            self.scope(tx, &request.product)
                .await?
                .end_episodes(&cluster_id);
        }
        Ok(())
    }

    /// Sends bad records to the dead-letter topic with their reason, and waits for the ack: the
    /// offsets past them are committed only after.
    async fn dead_letter(&self, dead: &[Dead]) -> Result<(), PipelineError> {
        if dead.is_empty() {
            return Ok(());
        }
        let out: Vec<Outgoing> = dead
            .iter()
            .map(|(r, code, reason)| {
                tracing::warn!(topic = %r.topic, partition = r.partition, offset = r.offset,
                    code, "dead-lettered a record");
                self.metrics.dead_lettered(code);
                Outgoing {
                    key: r.key.clone(),
                    payload: r.payload.clone(),
                    headers: vec![
                        ("sevloop.error.code".into(), code.as_bytes().to_vec()),
                        (
                            "sevloop.error.reason".into(),
                            self.safe_reason(&r.payload, reason).into_bytes(),
                        ),
                        ("sevloop.source.topic".into(), r.topic.clone().into_bytes()),
                        (
                            "sevloop.source.partition".into(),
                            r.partition.to_string().into_bytes(),
                        ),
                        (
                            "sevloop.source.offset".into(),
                            r.offset.to_string().into_bytes(),
                        ),
                    ],
                }
            })
            .collect();
        self.dlq
            .send(&self.settings.pipeline.dlq_topic, out)
            .await?;
        Ok(())
    }

    /// A dead-letter reason fit to leave: a parser may quote the bad value, which may be personal
    /// data, the record's own customer's included (read from the record as far as it parses).
    fn safe_reason(&self, payload: &[u8], reason: &str) -> String {
        let record: serde_json::Value = serde_json::from_slice(payload).unwrap_or_default();
        let customer = &record["customer"];
        let personal = sevloop_core::redact::Personal {
            name: customer["name"].as_str(),
            customer_id: customer["id"].as_str(),
            email: customer["email"].as_str(),
        };
        self.redactor.redact(reason, &personal)
    }

    async fn feed_index(
        &mut self,
        docs: Vec<IndexDoc>,
        next_of: &BTreeMap<Position, i64>,
    ) -> Result<(), PipelineError> {
        if !docs.is_empty() {
            let index = self.index.clone();
            tokio::task::spawn_blocking(move || index.upsert(&docs)).await??;
        }
        for (pos, next) in next_of {
            let fed = self.index_fed.entry(pos.clone()).or_insert(0);
            *fed = (*fed).max(*next);
        }
        self.index_dirty = true;
        if self.last_index_commit.elapsed() >= self.settings.pipeline.index_commit_interval {
            self.commit_index().await?;
        }
        Ok(())
    }

    /// Commits the index with the offsets it covers. Called on a timer and on shutdown.
    pub async fn commit_index(&mut self) -> Result<(), PipelineError> {
        if !self.index_dirty {
            return Ok(());
        }
        let covered: Vec<CoveredOffset> = self
            .index_fed
            .iter()
            .map(|((topic, partition), next)| CoveredOffset {
                topic: topic.clone(),
                partition: *partition,
                next_offset: *next,
            })
            .collect();
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.commit(&covered)).await??;
        self.index_dirty = false;
        self.last_index_commit = Instant::now();
        Ok(())
    }
}

/// Parses a record of the ticket log: a ticket, or a correction or SEV action marked by its
/// header.
fn parse(record: &Record) -> Result<Body, (&'static str, String)> {
    let marked = record
        .headers
        .iter()
        .find(|(k, _)| k == RECORD_HEADER)
        .map(|(_, v)| v.as_slice());
    match marked {
        None => TicketEvent::parse(&record.payload)
            .map(Body::Ticket)
            .map_err(|e| (e.code(), e.to_string())),
        Some(kind) if kind == CORRECTION_RECORD.as_bytes() => {
            serde_json::from_slice(&record.payload)
                .map(Body::Correction)
                .map_err(|e| {
                    (
                        "invalid_correction",
                        format!("invalid correction record: {e}"),
                    )
                })
        }
        Some(kind) if kind == SEV_ACTION_RECORD.as_bytes() => {
            serde_json::from_slice(&record.payload)
                .map(Body::Action)
                .map_err(|e| ("invalid_action", format!("invalid SEV action record: {e}")))
        }
        Some(kind) => Err((
            "unknown_record",
            format!(
                "unknown record kind `{}`",
                String::from_utf8_lossy(kind)
                    .chars()
                    .take(64)
                    .collect::<String>()
            ),
        )),
    }
}

/// The label of the cluster a decision escalates (empty for other decisions).
fn escalated_label(scope: &Scope, d: &Decision) -> Vec<String> {
    let Decision::Escalate(e) = d else {
        return Vec::new();
    };
    sevloop_core::cluster::parse_cluster_id(&e.cluster_id)
        .and_then(|(_, seq)| scope.cluster(scope.clusterer().resolve(seq)))
        .map(|c| scope.clusterer().label(c, 3))
        .unwrap_or_default()
}

fn ticket_of(item: &Item) -> Option<&TicketEvent> {
    match &item.body {
        Body::Ticket(t) => Some(t),
        Body::Correction(_) | Body::Action(_) => None,
    }
}

fn index_doc(ticket: &TicketEvent, cluster_id: String) -> IndexDoc {
    IndexDoc {
        ticket_id: ticket.ticket_id.clone(),
        product: ticket.product.clone(),
        subject: ticket.subject.clone(),
        body: ticket.body.clone(),
        cluster_id,
        event_time_ms: ticket.event_time.timestamp_millis(),
    }
}

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
use serde_json::json;
use sevloop_bus::Outgoing;
use sevloop_bus::{BusError, LogWriter, Record};
use sevloop_core::{
    Cluster, Decision, Escalation, Featurizer, RouteInput, Scope, TicketError, TicketEvent,
};
use sevloop_http::Metrics;
use sevloop_index::{CoveredOffset, IndexDoc, IndexError, TicketIndex};
use sevloop_store::{NewNotification, NewSev, Store, StoreError};

use crate::config::Settings;

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
}

type Position = (String, i32);

pub struct Pipeline {
    store: Store,
    index: Arc<TicketIndex>,
    dlq: LogWriter,
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    consumer: String,
    scopes: HashMap<String, Scope>,
    featurizer: Featurizer,
    /// Next offsets fed to the index writer (committed or not).
    index_fed: BTreeMap<Position, i64>,
    index_dirty: bool,
    last_index_commit: Instant,
}

/// A parsed record and what is already done with it.
struct Item {
    record: Record,
    ticket: TicketEvent,
    in_db: bool,
}

impl Pipeline {
    pub fn new(
        store: Store,
        index: Arc<TicketIndex>,
        dlq: LogWriter,
        settings: Arc<Settings>,
        metrics: Arc<Metrics>,
        consumer: &str,
    ) -> Result<Self, PipelineError> {
        let index_fed = index
            .committed_offsets()?
            .into_iter()
            .map(|c| ((c.topic, c.partition), c.next_offset))
            .collect();
        Ok(Pipeline {
            store,
            index,
            dlq,
            settings,
            metrics,
            consumer: consumer.to_string(),
            scopes: HashMap::new(),
            featurizer: Featurizer::default(),
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
        let mut tx = self.store.begin().await?;
        let mut stored: BTreeMap<Position, Option<i64>> = BTreeMap::new();
        for r in &records {
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
        for record in records {
            let pos = (record.topic.clone(), record.partition);
            let in_db = record.offset < stored[&pos].unwrap_or(0);
            let in_index = record.offset < self.index_fed.get(&pos).copied().unwrap_or(0);
            let next = next_of.entry(pos).or_insert(record.offset + 1);
            *next = (*next).max(record.offset + 1);
            if in_db && in_index {
                continue;
            }
            match TicketEvent::parse(&record.payload) {
                Ok(ticket) => items.push(Item {
                    record,
                    ticket,
                    in_db,
                }),
                Err(error) if !in_db => dead.push((record, error)),
                Err(_) => {}
            }
        }
        let ids: Vec<&str> = items.iter().map(|i| i.ticket.ticket_id.as_str()).collect();
        let mut known = sevloop_store::known_tickets(&mut tx, &ids).await?;
        let mut docs = Vec::with_capacity(items.len());
        let mut counted = 0u64;
        for item in &items {
            let cluster_id = match known.get(&item.ticket.ticket_id) {
                Some(k) => {
                    if !item.in_db {
                        sevloop_store::update_ticket(&mut tx, &item.ticket).await?;
                    }
                    k.cluster_id.clone()
                }
                None if item.in_db => continue,
                None => {
                    counted += 1;
                    self.observe(&mut tx, item).await?
                }
            };
            known.insert(
                item.ticket.ticket_id.clone(),
                sevloop_store::KnownTicket {
                    cluster_id: cluster_id.clone(),
                },
            );
            docs.push(index_doc(&item.ticket, cluster_id));
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

    /// Clusters a new ticket, stores it and acts on the detection decision. Returns its cluster.
    async fn observe(
        &mut self,
        tx: &mut sevloop_store::Tx,
        item: &Item,
    ) -> Result<String, PipelineError> {
        let ticket = &item.ticket;
        let scope = match self.scopes.entry(ticket.product.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let checkpoints = sevloop_store::load_clusters(tx, &ticket.product).await?;
                e.insert(Scope::restore(
                    &ticket.product,
                    self.settings.clustering.clone(),
                    self.settings.detection.floor.clone(),
                    checkpoints,
                ))
            }
        };
        let obs = scope.observe(&mut self.featurizer, ticket);
        let cluster = scope.cluster(obs.seq).cloned();
        sevloop_store::insert_ticket(
            tx,
            ticket,
            &obs.assignment,
            item.record.partition,
            item.record.offset,
        )
        .await?;
        match (&obs.decision, cluster) {
            (Decision::Escalate(e), Some(cluster)) => {
                self.open_sev(tx, ticket, e, &cluster).await?
            }
            (
                Decision::Join {
                    escalation,
                    sev_cluster,
                },
                _,
            ) => self.join(tx, escalation, sev_cluster).await?,
            (Decision::Attach { sev_cluster }, _) => self.attach(tx, ticket, sev_cluster).await?,
            _ => {}
        }
        Ok(obs.assignment.cluster_id)
    }

    async fn open_sev(
        &self,
        tx: &mut sevloop_store::Tx,
        ticket: &TicketEvent,
        e: &Escalation,
        cluster: &Cluster,
    ) -> Result<(), PipelineError> {
        let label = cluster.label(3);
        let team = self.settings.routing.route(&RouteInput {
            product: &ticket.product,
            component: ticket.component.as_deref(),
            tags: &ticket.tags,
            label: &label,
        });
        let title = format!("{}: customers report {}", ticket.product, label.join(", "));
        let new = NewSev {
            escalation: e,
            title: &title,
            severity: sevloop_core::Severity::from_impact(e.distinct_customers, 0),
            team,
            first_ticket_at: e.first_ticket_at,
        };
        let Some(sev_id) = sevloop_store::open_sev(tx, &new).await? else {
            return Ok(());
        };
        sevloop_store::link_tickets(tx, &sev_id, &e.evidence, e.fired_at).await?;
        let severity = sevloop_store::refresh_sev_counts(tx, &sev_id).await?;
        let detail = json!({"rule": e.rule, "escalation_id": e.id, "window_start": e.window_start,
            "ticket_count": e.ticket_count, "distinct_customers": e.distinct_customers});
        sevloop_store::add_sev_event(tx, &sev_id, "opened", "sevloop", e.fired_at, &detail).await?;
        let payload = json!({
            "type": "sev.opened",
            "sev": {"id": sev_id, "title": title, "severity": severity.as_str(), "team": team,
                    "state": "open", "cluster_id": e.cluster_id, "ticket_count": e.ticket_count,
                    "distinct_customers": e.distinct_customers, "first_ticket_at": e.first_ticket_at,
                    "opened_at": e.fired_at,
                    "url": format!("{}/sevs/{}", self.settings.http.public_url(), sev_id)},
        });
        for hook in &self.settings.notify.webhooks {
            let n = NewNotification {
                id: format!("{}.opened.{}", e.id, hook.name),
                sev_id: &sev_id,
                endpoint: &hook.name,
                kind: "sev.opened",
                payload: payload.clone(),
                created_at: Utc::now(),
            };
            sevloop_store::enqueue(tx, &n).await?;
        }
        self.metrics.sevs_opened.inc();
        tracing::info!(sev_id = %sev_id, cluster_id = %e.cluster_id, team, severity = severity.as_str(),
            tickets = e.ticket_count, customers = e.distinct_customers, "sev opened");
        Ok(())
    }

    /// A related cluster crossed the rule: its evidence joins the open SEV, recorded on the timeline.
    async fn join(
        &self,
        tx: &mut sevloop_store::Tx,
        e: &Escalation,
        sev_cluster: &str,
    ) -> Result<(), PipelineError> {
        let Some(sev_id) = sevloop_store::latest_sev_of_cluster(tx, sev_cluster).await? else {
            return Ok(());
        };
        sevloop_store::link_tickets(tx, &sev_id, &e.evidence, e.fired_at).await?;
        sevloop_store::refresh_sev_counts(tx, &sev_id).await?;
        let detail = json!({"cluster_id": e.cluster_id, "escalation_id": e.id,
            "ticket_count": e.ticket_count, "distinct_customers": e.distinct_customers});
        sevloop_store::add_sev_event(
            tx,
            &sev_id,
            "cluster_joined",
            "sevloop",
            e.fired_at,
            &detail,
        )
        .await?;
        tracing::info!(sev_id = %sev_id, cluster_id = %e.cluster_id, "related cluster joined a sev");
        Ok(())
    }

    async fn attach(
        &self,
        tx: &mut sevloop_store::Tx,
        ticket: &TicketEvent,
        cluster_id: &str,
    ) -> Result<(), PipelineError> {
        if let Some(sev_id) = sevloop_store::latest_sev_of_cluster(tx, cluster_id).await? {
            let ids = [ticket.ticket_id.clone()];
            if sevloop_store::link_tickets(tx, &sev_id, &ids, ticket.event_time).await? > 0 {
                sevloop_store::refresh_sev_counts(tx, &sev_id).await?;
            }
        }
        Ok(())
    }

    /// Sends bad records to the dead-letter topic with their reason, and waits for the ack: the
    /// offsets past them are committed only after.
    async fn dead_letter(&self, dead: &[(Record, TicketError)]) -> Result<(), PipelineError> {
        if dead.is_empty() {
            return Ok(());
        }
        let out: Vec<Outgoing> = dead
            .iter()
            .map(|(r, e)| {
                tracing::warn!(topic = %r.topic, partition = r.partition, offset = r.offset,
                    code = e.code(), "dead-lettered a ticket record");
                self.metrics.dead_lettered(e.code());
                Outgoing {
                    key: r.key.clone(),
                    payload: r.payload.clone(),
                    headers: vec![
                        ("sevloop.error.code".into(), e.code().as_bytes().to_vec()),
                        ("sevloop.error.reason".into(), e.to_string().into_bytes()),
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

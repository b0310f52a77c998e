//! A new ticket's way through the stage: its sentence vector, its product's clusters (restored
//! on first use), the detection decision and the SEV it opens or joins; and a person's action on
//! a SEV, which may end its clusters' episodes.

use std::collections::{BTreeSet, HashMap};

use chrono::Utc;
use sevloop_core::sev::SevActionRequest;
use sevloop_core::Catalog;
use sevloop_core::{Decision, Detection, Policy, Scope, TicketEvent};

use super::{Body, Item, Parsed, Pipeline, PipelineError};
use crate::sevs::{ActionOutcome, Sevs};

impl Pipeline {
    /// Sentence vectors for the tickets this batch sees for the first time (none when the
    /// encoder is off). Identical texts are embedded once. Read outside the batch's transaction:
    /// a ticket stored in between only leaves its vector unused.
    pub(super) async fn embed_new(
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
    pub(super) async fn scope(
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
    pub(super) async fn observe(
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
    pub(super) async fn act(
        &mut self,
        tx: &mut sevloop_store::Tx,
        request: &SevActionRequest,
    ) -> Result<(), PipelineError> {
        let catalog = self.catalog.get();
        let outcome = self.sevs(&catalog).act(tx, request).await?;
        let ActionOutcome::Applied { ended } = outcome else {
            return Ok(());
        };
        if ended.is_empty() {
            return Ok(());
        }
        // Another product's scope belongs to the consumer of its partition: a cluster a merge
        // brought in from there ends its episode when it goes quiet.
        let scope = self.scope(tx, &request.product).await?;
        for cluster_id in ended {
            let product = sevloop_core::cluster::parse_cluster_id(&cluster_id).map(|(p, _)| p);
            if product == Some(request.product.as_str()) {
                scope.end_episodes(&cluster_id);
            }
        }
        Ok(())
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

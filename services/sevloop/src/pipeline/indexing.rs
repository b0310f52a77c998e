//! Feeding the search index after each batch's commit, and committing it on its own schedule
//! with the offsets it covers.

use std::collections::BTreeMap;
use std::time::Instant;

use sevloop_core::TicketEvent;
use sevloop_index::{CoveredOffset, IndexDoc};

use super::{Pipeline, PipelineError, Position};

impl Pipeline {
    pub(super) async fn feed_index(
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

pub(super) fn index_doc(ticket: &TicketEvent, cluster_id: String) -> IndexDoc {
    IndexDoc {
        ticket_id: ticket.ticket_id.clone(),
        product: ticket.product.clone(),
        subject: ticket.subject.clone(),
        body: ticket.body.clone(),
        cluster_id,
        event_time_ms: ticket.event_time.timestamp_millis(),
    }
}

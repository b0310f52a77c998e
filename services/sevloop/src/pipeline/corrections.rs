//! Applying human corrections read from the ticket log, inside the batch's transaction.

use sevloop_core::cluster::corrections::CorrectionRequest;
use sevloop_store::CorrectionRow;

use super::{Pipeline, PipelineError};

impl Pipeline {
    /// Applies one correction to its product's clusters and records it with its outcome. A
    /// correction that no longer fits the clusters (a cluster merged away since it was asked
    /// for, say) is recorded as refused; it never fails the batch.
    pub(super) async fn correct(
        &mut self,
        tx: &mut sevloop_store::Tx,
        request: &CorrectionRequest,
    ) -> Result<(), PipelineError> {
        let ids = request.correction.ticket_ids();
        let stored = sevloop_store::ticket_members(tx, &ids).await?;
        let mut members = Vec::with_capacity(stored.len());
        for m in stored
            .into_iter()
            .filter(|m| m.ticket.product == request.product)
        {
            let f = sevloop_core::ticket_features(&mut self.featurizer, &m.ticket, m.embedding);
            members.push((m.ticket_id, m.cluster_id, f));
        }
        let scope = self.scope(tx, &request.product).await?;
        let outcome = match scope.correct(&request.correction, &members) {
            Ok(moved) => {
                for (ticket_id, cluster_id) in &moved {
                    sevloop_store::set_ticket_cluster(tx, ticket_id, cluster_id).await?;
                }
                let checkpoints = scope.take_touched();
                sevloop_store::save_clusters(tx, &checkpoints).await?;
                format!("applied; {} tickets moved", moved.len())
            }
            Err(e) => format!("refused: {e}"),
        };
        tracing::info!(product = %request.product, kind = request.correction.kind(),
            outcome = %outcome, "cluster correction");
        let row = CorrectionRow {
            product: request.product.clone(),
            kind: request.correction.kind().to_string(),
            // A plain enum of strings always serialises.
            request: serde_json::to_value(&request.correction).unwrap_or_default(),
            actor_role: request.actor_role.clone(),
            requested_at: request.requested_at,
            outcome,
        };
        sevloop_store::record_correction(tx, &row).await?;
        Ok(())
    }
}

//! Unacknowledged SEVs escalate: once a SEV has waited longer than its team's ack timeout
//! (wall clock, from when the team got it), it is flagged on the dashboard, its timeline says
//! so, and the team's escalation target is told. The flag is set by a conditional update, so
//! several dispatchers escalate a SEV once.

use chrono::Utc;
use serde_json::json;
use sevloop_notify::NoticeKind;
use sevloop_store::{SevRow, StoreError};

use super::Dispatcher;
use crate::sevs::announce::{Announcer, Change};

impl Dispatcher {
    pub(super) async fn escalate_overdue(&self) -> Result<(), StoreError> {
        let catalog = self.catalog.get();
        let now = Utc::now();
        for sev in self.store.unacknowledged().await? {
            let timeout = catalog
                .team(&sev.team)
                .map_or(sevloop_core::catalog::DEFAULT_ACK_TIMEOUT, |t| {
                    t.ack_timeout
                });
            let due = sev.assigned_at + chrono::Duration::from_std(timeout).unwrap_or_default();
            if due > now {
                continue;
            }
            let target = catalog
                .team(&sev.team)
                .and_then(|t| t.escalate_to.clone())
                .unwrap_or_else(|| catalog.default_team.clone());
            self.escalate(&sev, &target, now).await?;
        }
        Ok(())
    }

    async fn escalate(
        &self,
        sev: &SevRow,
        target: &str,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.store.begin().await?;
        if !sevloop_store::mark_escalated(&mut tx, sev, target, now).await? {
            return Ok(());
        }
        let detail = json!({"to": target, "waited_since": sev.assigned_at});
        sevloop_store::add_sev_event(&mut tx, &sev.id, "escalated", "sevloop", now, &detail)
            .await?;
        let catalog = self.catalog.get();
        let announcer = Announcer {
            catalog: &catalog,
            public_url: &self.origin.public_url,
            now,
        };
        let change = Change {
            escalated_to: Some(target),
            ..Change::new(
                NoticeKind::Escalated,
                format!(
                    "{}.escalated.{}",
                    sev.id,
                    sev.assigned_at.timestamp_millis()
                ),
                now,
            )
        };
        announcer
            .announce(&mut tx, sev, &change, target, &[])
            .await?;
        tx.commit().await.map_err(|e| StoreError::Sql {
            operation: format!("commit the escalation of {}", sev.id),
            source: e,
        })?;
        tracing::warn!(sev_id = %sev.id, team = %sev.team, to = target, "unacknowledged sev escalated");
        Ok(())
    }
}

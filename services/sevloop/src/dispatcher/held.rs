//! Endpoints called again after a 410 Gone: their notifications were held meanwhile, and what
//! each SEV's stream missed is settled by the SEV's state now (`sevloop_notify::catch_up`). The
//! sweep finds them, whether an admin enabled them (their 410 record is gone) or the catalog
//! pointed their channel at another URL. Settling is a compare-and-set on the held row, so
//! several dispatchers settle a stream once.

use chrono::Utc;
use sevloop_core::catalog::HELPDESK;
use sevloop_store::StoreError;

use super::render::endpoint_url;
use super::{fingerprint, Dispatcher};

impl Dispatcher {
    pub(super) async fn settle_held(&self) -> Result<(), StoreError> {
        let held = self.store.held().await?;
        let mut enabled = held.enabled;
        let catalog = self.catalog.get();
        for endpoint in held.disabled {
            // A channel that left the catalog has no URL: its notifications stay held until it
            // comes back or an admin enables it.
            let Some(url) = endpoint_url(&endpoint, &catalog) else {
                continue;
            };
            if self.disabled(&endpoint, &fingerprint(url)).await?.is_none() {
                enabled.push(endpoint);
            }
        }
        for endpoint in enabled {
            self.catch_up(&endpoint).await?;
        }
        Ok(())
    }

    /// Settles each of `endpoint`'s streams: what is sent is queued anew, the rest superseded.
    async fn catch_up(&self, endpoint: &str) -> Result<(), StoreError> {
        let raises_alerts = endpoint != HELPDESK;
        for missed in self.store.missed(endpoint).await? {
            let kinds: Vec<&str> = missed.kinds.iter().map(String::as_str).collect();
            let plan = sevloop_notify::catch_up(&kinds, missed.heard, raises_alerts);
            let now = Utc::now();
            if !self
                .store
                .settle_missed(&missed, &plan.send, plan.why_not, now)
                .await?
            {
                continue;
            }
            let sent = plan.send.iter().filter(|&&s| s).count();
            let superseded = plan.send.len() - sent;
            tracing::info!(endpoint, sev_id = %missed.sev_id, sent, superseded, "endpoint called again: what it missed is settled");
        }
        Ok(())
    }
}

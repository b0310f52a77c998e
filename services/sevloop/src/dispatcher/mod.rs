//! The outbox dispatcher: delivers queued notifications at least once, each with its stable
//! idempotency key, retrying with capped exponential backoff and jitter until `give_up_after`;
//! and the ack-timeout sweep that escalates SEVs nobody acknowledged in time.

mod escalation;
pub mod render;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use sevloop_bus::{LogWriter, Outgoing};
use sevloop_store::{Notification, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::catalog::CatalogHandle;
use crate::config::NotifySettings;
use render::{Delivery, Request};

const POLL: Duration = Duration::from_millis(250);
const LEASE: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// How often unacknowledged SEVs are checked against their team's ack timeout.
const SWEEP: Duration = Duration::from_secs(5);

pub struct Dispatcher {
    store: Store,
    settings: NotifySettings,
    catalog: CatalogHandle,
    public_url: String,
    /// Where SEV events are published.
    log: LogWriter,
    client: reqwest::Client,
    metrics: Arc<sevloop_http::Metrics>,
}

/// What one attempt came to.
#[derive(Debug, PartialEq)]
enum Outcome {
    Delivered,
    Retry {
        error: String,
        after: Option<Duration>,
    },
    GiveUp {
        error: String,
    },
    /// 410 Gone: the receiver asked never to be called again.
    Gone,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        settings: NotifySettings,
        catalog: CatalogHandle,
        public_url: String,
        log: LogWriter,
        metrics: Arc<sevloop_http::Metrics>,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Dispatcher {
            store,
            settings,
            catalog,
            public_url,
            log,
            client,
            metrics,
        }
    }

    pub async fn run(&self, shutdown: &CancellationToken) -> Result<(), StoreError> {
        let mut last_sweep = tokio::time::Instant::now() - SWEEP;
        loop {
            if last_sweep.elapsed() >= SWEEP {
                self.escalate_overdue().await?;
                last_sweep = tokio::time::Instant::now();
            }
            let due = self.store.lease_due(Utc::now(), LEASE, 50).await?;
            if due.is_empty() {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(POLL) => continue,
                }
            }
            for n in due {
                self.deliver(&n).await?;
            }
        }
    }

    async fn deliver(&self, n: &Notification) -> Result<(), StoreError> {
        let outcome = match self.store.disabled_endpoint(&n.endpoint).await? {
            Some(d) => Outcome::GiveUp {
                error: format!(
                    "endpoint disabled since {}: {}",
                    d.disabled_at.to_rfc3339(),
                    d.reason
                ),
            },
            None => self.attempt(n).await,
        };
        let now = Utc::now();
        match outcome {
            Outcome::Delivered => {
                self.metrics.notifications_delivered.inc();
                tracing::debug!(notification = %n.id, sev_id = %n.sev_id, endpoint = %n.endpoint, "notification delivered");
                self.store.mark_delivered(&n.id, now).await
            }
            Outcome::Retry { error, after } => {
                self.metrics.notifications_failed.inc();
                let wait = after.unwrap_or_else(|| backoff(n.attempts as u32 + 1, &n.id));
                let retry_at = now + chrono::Duration::from_std(wait).unwrap_or_default();
                let deadline = n.created_at
                    + chrono::Duration::from_std(self.settings.give_up_after).unwrap_or_default();
                let retry_at = (retry_at <= deadline).then_some(retry_at);
                tracing::warn!(notification = %n.id, endpoint = %n.endpoint, %error, gave_up = retry_at.is_none(), "notification attempt failed");
                self.store.mark_failed(&n.id, &error, retry_at).await
            }
            Outcome::GiveUp { error } => {
                self.metrics.notifications_failed.inc();
                tracing::warn!(notification = %n.id, endpoint = %n.endpoint, %error, "notification given up");
                self.store.mark_failed(&n.id, &error, None).await
            }
            Outcome::Gone => {
                self.metrics.notifications_failed.inc();
                let reason = "the receiver answered 410 Gone; endpoint disabled";
                tracing::warn!(endpoint = %n.endpoint, "endpoint disabled after 410 Gone");
                self.store
                    .disable_endpoint(&n.endpoint, now, reason)
                    .await?;
                self.store.mark_failed(&n.id, reason, None).await
            }
        }
    }

    async fn attempt(&self, n: &Notification) -> Outcome {
        let catalog = self.catalog.get();
        let rendered = render::render(n, &catalog, &self.public_url, Utc::now().timestamp());
        match rendered {
            Err(e) => Outcome::GiveUp {
                error: e.to_string(),
            },
            Ok(Delivery::Http(request)) => self.send(request).await,
            Ok(Delivery::Topic { key, message }) => {
                let record = Outgoing {
                    key: Some(key.into_bytes()),
                    payload: message.to_string().into_bytes(),
                    headers: Vec::new(),
                };
                match self
                    .log
                    .send(&self.settings.sev_events_topic, vec![record])
                    .await
                {
                    Ok(()) => Outcome::Delivered,
                    Err(e) => Outcome::Retry {
                        error: format!("failed to publish the SEV event: {e}"),
                        after: None,
                    },
                }
            }
        }
    }

    async fn send(&self, r: Request) -> Outcome {
        let mut request = self.client.request(r.method, &r.url).body(r.body);
        for (name, value) in &r.headers {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(resp) if resp.status().is_success() => Outcome::Delivered,
            Ok(resp) if resp.status() == StatusCode::GONE => Outcome::Gone,
            Ok(resp) => classify(resp.status(), resp.headers()),
            // without_url: webhook URLs often carry a secret token.
            Err(e) => Outcome::Retry {
                error: format!("request failed: {}", e.without_url()),
                after: None,
            },
        }
    }
}

/// 408 and 429 and 5xx are worth retrying; other 4xx mean the request itself is wrong.
fn classify(status: StatusCode, headers: &HeaderMap) -> Outcome {
    let error = format!("receiver answered {status}");
    let retryable = status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS;
    if !retryable {
        return Outcome::GiveUp { error };
    }
    let after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Outcome::Retry { error, after }
}

/// 1 s, 2 s, 4 s … capped at 15 min, with up to 25% jitter derived from the key (so retries
/// of many notifications spread out, without a random source).
fn backoff(attempt: u32, key: &str) -> Duration {
    let base = Duration::from_secs(1u64 << attempt.min(20).saturating_sub(1)).min(MAX_BACKOFF);
    let spread = key.bytes().fold(attempt as u64, |h, b| {
        h.wrapping_mul(31).wrapping_add(b as u64)
    }) % 1000;
    base + base.mul_f64(spread as f64 / 4000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_other_than_408_and_429_are_not_retried() {
        let h = HeaderMap::new();
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &h),
            Outcome::GiveUp { .. }
        ));
        assert!(matches!(
            classify(StatusCode::GONE, &h),
            Outcome::GiveUp { .. }
        ));
        assert!(matches!(
            classify(StatusCode::REQUEST_TIMEOUT, &h),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, &h),
            Outcome::Retry { .. }
        ));
    }

    #[test]
    fn retry_after_is_honoured() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h),
            Outcome::Retry {
                error: "receiver answered 429 Too Many Requests".into(),
                after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn backoff_grows_exponentially_with_bounded_jitter() {
        for attempt in 1..12 {
            let base = Duration::from_secs(1 << (attempt - 1)).min(MAX_BACKOFF);
            let b = backoff(attempt, "esc-1.opened.ops");
            assert!(
                b >= base && b <= base.mul_f64(1.25),
                "attempt {attempt}: {b:?}"
            );
        }
        assert!(backoff(40, "k") <= MAX_BACKOFF.mul_f64(1.25));
    }
}

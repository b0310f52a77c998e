//! The outbox dispatcher: delivers queued notifications at least once, each with its stable
//! idempotency key, retrying with capped exponential backoff and jitter until `give_up_after`,
//! holding those to an endpoint a 410 Gone disabled; and the sweep that escalates SEVs nobody
//! acknowledged in time and settles what endpoints called again missed.
//!
//! Deliveries run concurrently, at most four at a time to one endpoint, so a receiver that
//! hangs or times out holds up only its own notifications.

mod escalation;
mod held;
pub mod render;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use sevloop_bus::{LogWriter, Outgoing};
use sevloop_core::catalog::HELPDESK;
use sevloop_store::{DisabledEndpoint, Notification, Store, StoreError};
use sha2::{Digest, Sha256};
use std::future::Future;

use tokio::task::{self, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::catalog::CatalogHandle;
use crate::config::NotifySettings;
pub use render::Origin;
use render::{Delivery, Request};

const POLL: Duration = Duration::from_millis(250);
const LEASE: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// How often unacknowledged SEVs are checked against their team's ack timeout, and held
/// notifications for endpoints called again.
const SWEEP: Duration = Duration::from_secs(5);
/// Deliveries under way at once, in all and to one endpoint.
const MAX_IN_FLIGHT: usize = 32;
const PER_ENDPOINT: usize = 4;
/// On shutdown, deliveries under way get this long to finish and record their outcome.
const LANDING: Duration = Duration::from_secs(5);
/// Every HTTP request's limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole delivery's limit (request, publish and bookkeeping): under [`LEASE`], so a row is
/// never leased again while its delivery still runs.
const DELIVERY_LIMIT: Duration = Duration::from_secs(45);

#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    settings: NotifySettings,
    catalog: CatalogHandle,
    origin: Origin,
    /// Where SEV events are published.
    log: LogWriter,
    client: reqwest::Client,
    metrics: Arc<sevloop_http::Metrics>,
}

/// What stops the dispatcher (and restarts it): the outbox or the sweep failing. A single
/// delivery's failure never does; its lease ends and it is tried again.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
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
    /// The endpoint is disabled: the notification waits until it is called again.
    Held {
        error: String,
    },
    /// 410 Gone, or a redirect: the receiver is not to be called again at the URL `target`
    /// fingerprints (it answered `status`), until the catalog points the channel elsewhere or
    /// an admin enables it.
    Gone {
        status: StatusCode,
        target: String,
    },
}

/// Deliveries under way, each with the endpoint it goes to.
#[derive(Default)]
struct Flights {
    tasks: JoinSet<Result<(), StoreError>>,
    endpoints: HashMap<task::Id, String>,
}

impl Flights {
    fn free(&self) -> usize {
        MAX_IN_FLIGHT.saturating_sub(self.tasks.len())
    }

    fn to_endpoint(&self, endpoint: &str) -> usize {
        self.endpoints.values().filter(|e| *e == endpoint).count()
    }

    /// Endpoints that take no more deliveries now.
    fn busy(&self) -> Vec<String> {
        let mut full: Vec<String> = self
            .endpoints
            .values()
            .filter(|e| self.to_endpoint(e) >= PER_ENDPOINT)
            .cloned()
            .collect();
        full.sort_unstable();
        full.dedup();
        full
    }

    /// Starts a delivery to `endpoint`, unless the endpoint is full.
    fn start(
        &mut self,
        endpoint: &str,
        delivery: impl Future<Output = DeliveryResult> + Send + 'static,
    ) -> bool {
        if self.to_endpoint(endpoint) >= PER_ENDPOINT {
            return false;
        }
        let id = self.tasks.spawn(delivery).id();
        self.endpoints.insert(id, endpoint.to_string());
        true
    }

    /// Counts a finished delivery out. Its failure is logged, not passed on: the row's lease
    /// ends and it is tried again, while the other deliveries carry on.
    fn landed(&mut self, joined: Result<(task::Id, DeliveryResult), JoinError>) {
        let (id, outcome) = match joined {
            Ok((id, outcome)) => (id, outcome.map_err(|e| e.to_string())),
            Err(e) => (e.id(), Err(format!("the delivery task failed: {e}"))),
        };
        let endpoint = self.endpoints.remove(&id).unwrap_or_default();
        if let Err(error) = outcome {
            tracing::warn!(%endpoint, %error, "a delivery's outcome was not recorded; it is retried when its lease ends");
        }
    }
}

type DeliveryResult = Result<(), StoreError>;

impl Dispatcher {
    pub fn new(
        store: Store,
        settings: NotifySettings,
        catalog: CatalogHandle,
        origin: Origin,
        log: LogWriter,
        metrics: Arc<sevloop_http::Metrics>,
    ) -> Self {
        let client = http_client();
        Dispatcher {
            store,
            settings,
            catalog,
            origin,
            log,
            client,
            metrics,
        }
    }

    pub async fn run(&self, shutdown: &CancellationToken) -> Result<(), DispatchError> {
        let mut last_sweep = tokio::time::Instant::now() - SWEEP;
        let mut flights = Flights::default();
        let outcome = loop {
            if last_sweep.elapsed() >= SWEEP {
                if let Err(e) = self.escalate_overdue().await {
                    break Err(e);
                }
                if let Err(e) = self.settle_held().await {
                    break Err(e);
                }
                last_sweep = tokio::time::Instant::now();
            }
            if let Err(e) = self.take_off(&mut flights).await {
                break Err(e);
            }
            // A landing frees a slot: lease again at once rather than after the poll.
            tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                Some(joined) = flights.tasks.join_next_with_id() => flights.landed(joined),
                _ = tokio::time::sleep(POLL) => {}
            }
        };
        // Deliveries under way get a moment to record their outcome; the rest are abandoned to
        // their lease (and sent again, under the same key, after it ends).
        let _ = tokio::time::timeout(LANDING, async {
            while let Some(joined) = flights.tasks.join_next_with_id().await {
                flights.landed(joined);
            }
        })
        .await;
        Ok(outcome?)
    }

    /// Starts the due notifications there is room for.
    async fn take_off(&self, flights: &mut Flights) -> Result<(), StoreError> {
        let free = flights.free();
        if free == 0 {
            return Ok(());
        }
        let busy = flights.busy();
        let due = self
            .store
            .lease_due(Utc::now(), LEASE, free as i64, PER_ENDPOINT as i64, &busy)
            .await?;
        for n in due {
            let endpoint = n.endpoint.clone();
            let this = self.clone();
            let id = n.id.clone();
            let started = flights.start(&endpoint, async move {
                // Well within the lease, so no other delivery of the row can start meanwhile.
                match tokio::time::timeout(DELIVERY_LIMIT, this.deliver(&n)).await {
                    Ok(done) => done,
                    Err(_) => {
                        tracing::warn!(notification = %n.id, endpoint = %n.endpoint, "delivery took too long; retried when its lease ends");
                        Ok(())
                    }
                }
            });
            if !started {
                self.store.release(&id).await?;
            }
        }
        Ok(())
    }

    async fn deliver(&self, n: &Notification) -> Result<(), StoreError> {
        let outcome = self.attempt(n).await?;
        let now = Utc::now();
        match outcome {
            Outcome::Delivered => {
                self.metrics.notifications_delivered.inc();
                tracing::debug!(notification = %n.id, sev_id = %n.sev_id, endpoint = %n.endpoint, "notification delivered");
                self.store.mark_delivered(&n.id, now).await
            }
            Outcome::Retry { error, after } => {
                self.metrics.notifications_failed.inc();
                let retry_at = retry_at(n, now, after, self.settings.give_up_after);
                if retry_at.is_none() {
                    self.metrics.notifications_given_up.inc();
                }
                tracing::warn!(notification = %n.id, endpoint = %n.endpoint, %error, gave_up = retry_at.is_none(), "notification attempt failed");
                self.store.mark_failed(&n.id, &error, retry_at).await
            }
            Outcome::GiveUp { error } => {
                self.metrics.notifications_failed.inc();
                self.metrics.notifications_given_up.inc();
                tracing::warn!(notification = %n.id, endpoint = %n.endpoint, %error, "notification given up");
                self.store.mark_failed(&n.id, &error, None).await
            }
            Outcome::Held { error } => {
                self.metrics.notifications_held.inc();
                self.store.mark_held(&n.id, &error, false).await
            }
            Outcome::Gone { status, target } => {
                self.metrics.notifications_failed.inc();
                self.metrics.notifications_held.inc();
                let reason = gone_reason(status);
                let disabled = self
                    .store
                    .disable_endpoint(&n.endpoint, &target, now, &reason);
                if disabled.await? {
                    self.metrics.endpoints_disabled.inc();
                    tracing::warn!(endpoint = %n.endpoint, %status, "endpoint disabled");
                }
                self.store.mark_held(&n.id, &reason, true).await
            }
        }
    }

    async fn attempt(&self, n: &Notification) -> Result<Outcome, StoreError> {
        let catalog = self.catalog.get();
        let rendered = render::render(n, &catalog, &self.origin, Utc::now().timestamp());
        match rendered {
            Err(e) => Ok(Outcome::GiveUp {
                error: e.to_string(),
            }),
            Ok(Delivery::Http(request)) => {
                let target = fingerprint(&request.endpoint_url);
                Ok(match self.disabled(&n.endpoint, &target).await? {
                    Some(d) => Outcome::Held {
                        error: format!(
                            "endpoint disabled since {}: {}",
                            d.disabled_at.to_rfc3339(),
                            d.reason
                        ),
                    },
                    None => match self.send(request, target).await {
                        // Its URL is one ticket's: gone is that ticket, not the helpdesk.
                        Outcome::Gone { status, .. } if n.endpoint == HELPDESK => Outcome::GiveUp {
                            error: format!("the helpdesk answered {status} for this ticket"),
                        },
                        outcome => outcome,
                    },
                })
            }
            Ok(Delivery::Topic { key, message }) => {
                let record = Outgoing {
                    key: Some(key.into_bytes()),
                    payload: message.to_string().into_bytes(),
                    headers: Vec::new(),
                };
                let sent = self
                    .log
                    .send(&self.settings.sev_events_topic, vec![record])
                    .await;
                Ok(match sent {
                    Ok(()) => Outcome::Delivered,
                    Err(e) => Outcome::Retry {
                        error: format!("failed to publish the SEV event: {e}"),
                        after: None,
                    },
                })
            }
        }
    }

    /// The endpoint's 410 record, if it still applies. One made at another URL no longer does:
    /// the catalog has pointed the channel elsewhere since, so the record goes.
    async fn disabled(
        &self,
        endpoint: &str,
        target: &str,
    ) -> Result<Option<DisabledEndpoint>, StoreError> {
        let Some(d) = self.store.disabled_endpoint(endpoint).await? else {
            return Ok(None);
        };
        if d.target == target {
            return Ok(Some(d));
        }
        if self.store.enable_endpoint(endpoint, Some(target)).await? {
            tracing::info!(
                endpoint,
                "endpoint enabled again: its URL changed since its 410"
            );
        }
        Ok(None)
    }

    async fn send(&self, r: Request, target: String) -> Outcome {
        let mut request = self.client.request(r.method, &r.url).body(r.body);
        for (name, value) in &r.headers {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(resp) if resp.status().is_success() => Outcome::Delivered,
            Ok(resp) if resp.status() == StatusCode::GONE || resp.status().is_redirection() => {
                Outcome::Gone {
                    status: resp.status(),
                    target,
                }
            }
            Ok(resp) => classify(resp.status(), resp.headers(), SystemTime::now()),
            // without_url: webhook URLs often carry a secret token.
            Err(e) => Outcome::Retry {
                error: format!("request failed: {}", e.without_url()),
                after: None,
            },
        }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT / 2)
        // A followed redirect turns a POST into a bodiless GET (counted as delivered) or carries
        // the signed body elsewhere: a receiver that moved is a change to make in the catalog.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// Names an endpoint's URL without holding it (Slack and webhook URLs are secrets).
fn fingerprint(url: &str) -> String {
    let digest = Sha256::digest(url.as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// Why an endpoint that answered `status` (410, or a redirect) is disabled.
fn gone_reason(status: StatusCode) -> String {
    if status.is_redirection() {
        format!(
            "the receiver answered {status}, a redirect, which is not followed; endpoint disabled \
             until the catalog points the channel at the URL it names"
        )
    } else {
        format!("the receiver answered {status}; endpoint disabled")
    }
}

/// 408 and 429 and 5xx are worth retrying; other 4xx mean the request itself is wrong.
/// `Retry-After` is honoured in both its forms, seconds and an HTTP date (read against `now`).
fn classify(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> Outcome {
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
        .and_then(|v| retry_after(v.trim(), now));
    Outcome::Retry { error, after }
}

fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    // A date already past means "now".
    Some(at.duration_since(now).unwrap_or_default())
}

/// When to try again: after the backoff, or after `Retry-After` if the receiver asked for longer
/// (a receiver answering `Retry-After: 1` to every try is not retried every second for a day),
/// but no later than `give_up_after` from when it was queued, so a receiver asking for more
/// still gets a last try then; never, once that time has passed.
fn retry_at(
    n: &Notification,
    now: DateTime<Utc>,
    after: Option<Duration>,
    give_up_after: Duration,
) -> Option<DateTime<Utc>> {
    let deadline = n.created_at + chrono::Duration::from_std(give_up_after).ok()?;
    if now >= deadline {
        return None;
    }
    let wait = after
        .unwrap_or_default()
        .max(backoff(n.attempts as u32 + 1, &n.id))
        .min(give_up_after);
    let retry_at = now.checked_add_signed(chrono::Duration::from_std(wait).ok()?)?;
    Some(retry_at.min(deadline))
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
            classify(StatusCode::BAD_REQUEST, &h, SystemTime::UNIX_EPOCH),
            Outcome::GiveUp { .. }
        ));
        assert!(matches!(
            classify(StatusCode::GONE, &h, SystemTime::UNIX_EPOCH),
            Outcome::GiveUp { .. }
        ));
        assert!(matches!(
            classify(StatusCode::REQUEST_TIMEOUT, &h, SystemTime::UNIX_EPOCH),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            classify(
                StatusCode::INTERNAL_SERVER_ERROR,
                &h,
                SystemTime::UNIX_EPOCH
            ),
            Outcome::Retry { .. }
        ));
    }

    #[test]
    fn retry_after_is_honoured() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h, SystemTime::UNIX_EPOCH),
            Outcome::Retry {
                error: "receiver answered 429 Too Many Requests".into(),
                after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn retry_after_as_an_http_date_waits_until_then_in_each_format() {
        // Sun, 06 Nov 1994 08:49:37 GMT, as RFC 9110 writes it in its three formats.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777 - 90);
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                retry_after(date, now),
                Some(Duration::from_secs(90)),
                "{date}"
            );
        }
        let later = now + Duration::from_secs(3600);
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later),
            Some(Duration::ZERO),
            "a date already past means now"
        );
        assert_eq!(
            retry_after("soon", now),
            None,
            "unreadable: the usual backoff"
        );
        assert_eq!(retry_after("-5", now), None);
    }

    #[tokio::test]
    async fn one_endpoint_takes_at_most_its_share_and_every_landing_frees_its_slot() {
        let mut flights = Flights::default();
        let started = (0..PER_ENDPOINT + 3)
            .filter(|_| flights.start("hung", async { Ok(()) }))
            .count();
        assert_eq!(started, PER_ENDPOINT);
        assert_eq!(flights.busy(), ["hung"]);
        assert!(
            flights.start("healthy", async {
                Err(StoreError::UnsupportedUrl {
                    scheme: "test".into(),
                })
            }),
            "another endpoint still gets a slot"
        );
        assert!(flights.start("broken", async { panic!("a delivery that panics") }));
        assert_eq!(flights.free(), MAX_IN_FLIGHT - PER_ENDPOINT - 2);
        while let Some(joined) = flights.tasks.join_next_with_id().await {
            flights.landed(joined);
        }
        assert!(
            flights.endpoints.is_empty() && flights.busy().is_empty(),
            "a delivery that failed or panicked frees its slot too"
        );
        assert_eq!(flights.free(), MAX_IN_FLIGHT);
    }

    fn queued(attempts: i64) -> Notification {
        let at = DateTime::UNIX_EPOCH;
        Notification {
            id: "esc-1.opened.ops".into(),
            sev_id: "SEV-1".into(),
            endpoint: "ops".into(),
            kind: "opened".into(),
            payload: String::new(),
            state: "pending".into(),
            attempts,
            next_attempt_at: Some(at),
            last_error: None,
            created_at: at,
            delivered_at: None,
        }
    }

    #[test]
    fn a_retry_waits_the_backoff_or_longer_if_asked_and_at_most_until_the_give_up_time() {
        let day = Duration::from_secs(24 * 3600);
        let n = queued(2);
        let now = n.created_at + chrono::Duration::minutes(1);
        let at = |after| retry_at(&n, now, after, day);
        let backoff = at(None).expect("a backoff retry");
        assert!(
            backoff >= now + chrono::Duration::seconds(4)
                && backoff <= now + chrono::Duration::seconds(5),
            "third attempt: 4 s and up to a quarter more, {backoff}"
        );
        assert_eq!(
            at(Some(Duration::from_secs(70))),
            Some(now + chrono::Duration::seconds(70)),
            "a receiver asking for longer than the backoff gets it"
        );
        for shorter in [0, 1] {
            assert_eq!(
                at(Some(Duration::from_secs(shorter))),
                Some(backoff),
                "`Retry-After: {shorter}` is no licence to resend sooner than the backoff"
            );
        }
        let deadline = n.created_at + chrono::Duration::hours(24);
        for more in [25 * 3600, 10_000_000_000_000, u64::MAX] {
            assert_eq!(
                at(Some(Duration::from_secs(more))),
                Some(deadline),
                "{more} s: a last try when the retries end, not a page given up at once"
            );
        }
        assert_eq!(
            retry_at(&n, deadline, None, day),
            None,
            "past give_up_after"
        );
    }

    #[tokio::test]
    async fn a_receiver_that_redirects_is_not_followed() {
        let app = axum::Router::new()
            .route(
                "/old",
                axum::routing::post(|| async { axum::response::Redirect::permanent("/new") }),
            )
            .route("/new", axum::routing::any(|| async { "applied" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let url = format!("http://{}/old", listener.local_addr().expect("its address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let resp = http_client()
            .post(url)
            .body("{}")
            .send()
            .await
            .expect("an answer");
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    }

    #[test]
    fn a_redirect_disables_the_endpoint_saying_where_to_fix_it() {
        let reason = gone_reason(StatusCode::PERMANENT_REDIRECT);
        assert!(
            reason.contains("308") && reason.contains("catalog"),
            "{reason}"
        );
        let reason = gone_reason(StatusCode::GONE);
        assert_eq!(reason, "the receiver answered 410 Gone; endpoint disabled");
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

//! Prometheus metrics. Low-cardinality labels only (an error code, never a ticket or customer).

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: String,
}

pub struct Metrics {
    registry: Registry,
    pub tickets_accepted: Counter,
    pub tickets_processed: Counter,
    pub sevs_opened: Counter,
    pub notifications_delivered: Counter,
    pub notifications_failed: Counter,
    pub notifications_given_up: Counter,
    pub notifications_held: Counter,
    pub endpoints_disabled: Counter,
    pub consumer_lag: Gauge,
    pub batch_seconds: Histogram,
    dead_letters: Family<CodeLabel, Counter>,
    // Read from the database at scrape time.
    clusters: Gauge,
    tickets_stored: Gauge,
    open_sevs: Gauge,
    outbox_backlog: Gauge,
    index_documents: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sevloop");
        let m = Metrics {
            tickets_accepted: Counter::default(),
            tickets_processed: Counter::default(),
            sevs_opened: Counter::default(),
            notifications_delivered: Counter::default(),
            notifications_failed: Counter::default(),
            notifications_given_up: Counter::default(),
            notifications_held: Counter::default(),
            endpoints_disabled: Counter::default(),
            consumer_lag: Gauge::default(),
            batch_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            dead_letters: Family::default(),
            clusters: Gauge::default(),
            tickets_stored: Gauge::default(),
            open_sevs: Gauge::default(),
            outbox_backlog: Gauge::default(),
            index_documents: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "tickets_accepted",
            "Tickets accepted by the intake API",
            m.tickets_accepted.clone(),
        );
        registry.register(
            "tickets_processed",
            "New tickets clustered by the pipeline",
            m.tickets_processed.clone(),
        );
        registry.register("sevs_opened", "SEVs opened", m.sevs_opened.clone());
        registry.register(
            "notifications_delivered",
            "Notifications delivered",
            m.notifications_delivered.clone(),
        );
        registry.register(
            "notifications_failed",
            "Failed notification attempts",
            m.notifications_failed.clone(),
        );
        registry.register(
            "notifications_given_up",
            "Notifications given up for good (a 4xx, a channel no longer in the catalog, or past give_up_after)",
            m.notifications_given_up.clone(),
        );
        registry.register(
            "notifications_held",
            "Notifications held because their endpoint is disabled (it answered 410 Gone); settled when it is called again",
            m.notifications_held.clone(),
        );
        registry.register(
            "endpoints_disabled",
            "Endpoints disabled because they answered 410 Gone",
            m.endpoints_disabled.clone(),
        );
        registry.register(
            "consumer_lag",
            "Records behind the end of the ticket log",
            m.consumer_lag.clone(),
        );
        registry.register(
            "batch_seconds",
            "Pipeline batch duration",
            m.batch_seconds.clone(),
        );
        registry.register(
            "dead_letters",
            "Records sent to the dead-letter topic, by error code",
            m.dead_letters.clone(),
        );
        registry.register("clusters", "Clusters stored", m.clusters.clone());
        registry.register("tickets_stored", "Tickets stored", m.tickets_stored.clone());
        registry.register(
            "open_sevs",
            "SEVs not resolved, declined or merged",
            m.open_sevs.clone(),
        );
        registry.register(
            "outbox_backlog",
            "Notifications waiting to be delivered",
            m.outbox_backlog.clone(),
        );
        registry.register(
            "index_documents",
            "Ticket documents visible to search",
            m.index_documents.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub fn dead_lettered(&self, code: &str) {
        self.dead_letters
            .get_or_create(&CodeLabel {
                code: code.to_string(),
            })
            .inc();
    }

    pub(crate) fn set_stats(&self, stats: &sevloop_store::Stats, index_documents: u64) {
        self.index_documents.set(index_documents as i64);
        self.clusters.set(stats.clusters);
        self.tickets_stored.set(stats.tickets);
        self.open_sevs.set(stats.open_sevs);
        self.outbox_backlog.set(stats.outbox_pending);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

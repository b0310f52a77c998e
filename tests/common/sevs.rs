//! SEVs through the API, and the settings that make them: waiting for the pipeline, listing SEVs,
//! their linked tickets, timelines and notifications.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};

use super::{eventually, str_of, Sevloop};

impl Sevloop {
    /// One SEV in detail.
    pub async fn sev(&self, id: &str) -> Value {
        self.get_ok(&format!("/api/v1/sevs/{id}")).await
    }

    /// The SEVs of one product, as the API lists them.
    pub async fn sevs_of(&self, product: &str) -> Vec<Value> {
        self.get_ok("/api/v1/sevs?limit=1000").await["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s["product"] == json!(product))
            .collect()
    }

    /// Acts on a SEV (`acknowledge`, `resolve`, `reroute`, ...) and insists that the action was
    /// applied (200); returns the answer.
    pub async fn act(&self, sev_id: &str, action: &str, body: Option<Value>) -> Value {
        let (status, answer) = self
            .post(&format!("/api/v1/sevs/{sev_id}/{action}"), body)
            .await;
        assert_eq!(status, 200, "{action} {sev_id} was not applied: {answer}");
        answer
    }
}

/// The tickets linked to a SEV (from its detail).
pub fn linked_ids(sev: &Value) -> BTreeSet<String> {
    serde_json::from_value(sev["ticket_ids"].clone()).unwrap_or_default()
}

/// The kinds of a SEV's timeline entries, in order.
pub fn timeline_kinds(sev: &Value) -> Vec<String> {
    sev["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|e| e["kind"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the pipeline has stored the last ticket of each product in `tickets` (in
/// event-time order). A product's tickets are in order on one partition and one batch is one
/// transaction, so everything before that ticket is processed, SEVs and links included.
pub async fn wait_processed(sevloop: &Sevloop, tickets: &[Value], timeout: Duration) {
    let mut last = BTreeMap::new();
    for t in tickets {
        last.insert(str_of(t, "product"), str_of(t, "ticket_id"));
    }
    for (product, id) in last {
        let path = format!("/api/v1/tickets/{id}");
        eventually(
            &format!("the pipeline to store {id}, the last ticket of product {product}"),
            timeout,
            || async { (sevloop.get(&path).await.0 == 200).then_some(()) },
        )
        .await;
    }
}

/// Waits until the API lists a SEV for each of `products`; returns every SEV listed then.
pub async fn wait_for_sevs(sevloop: &Sevloop, products: &[&str], timeout: Duration) -> Vec<Value> {
    eventually(
        &format!("a SEV for each of {products:?}"),
        timeout,
        || async {
            let (_, list) = sevloop.get("/api/v1/sevs?limit=1000").await;
            let items = list["items"].as_array()?.clone();
            let listed: BTreeSet<&str> = items.iter().map(|s| str_of(s, "product")).collect();
            products.iter().all(|p| listed.contains(p)).then_some(items)
        },
    )
    .await
}

/// Product → SEV id.
pub fn sev_ids_by_product(sevs: &[Value]) -> BTreeMap<String, String> {
    sevs.iter()
        .map(|s| {
            (
                str_of(s, "product").to_string(),
                str_of(s, "id").to_string(),
            )
        })
        .collect()
}

/// Waits until no notification of these SEVs is pending (but those waiting behind a held one of
/// their endpoint); returns them by id.
pub async fn settled(
    sevloop: &Sevloop,
    sev_ids: &[String],
    timeout: Duration,
) -> BTreeMap<String, Value> {
    eventually(
        "every notification to be delivered, given up, or held with its endpoint",
        timeout,
        || async {
            let mut all = BTreeMap::new();
            for id in sev_ids {
                let (_, sev) = sevloop.get(&format!("/api/v1/sevs/{id}")).await;
                let notifications = sev["notifications"].as_array()?;
                let held: Vec<&Value> = notifications
                    .iter()
                    .filter(|n| n["state"] == "held")
                    .map(|n| &n["endpoint"])
                    .collect();
                for n in notifications {
                    // A pending one behind a held one of its endpoint waits with it.
                    if n["state"] == "pending" && !held.contains(&&n["endpoint"]) {
                        return None;
                    }
                    all.insert(n["id"].as_str()?.to_string(), n.clone());
                }
            }
            Some(all)
        },
    )
    .await
}

/// Explicit detection settings, far from what the scenarios need to fire or stay quiet: the
/// floor (8 tickets from customers weighing 6 in 30 minutes), the spike (`P ≤ 1e-6`), the cold
/// start (0.5 tickets per window once a product has been watched for an hour), customer weights
/// (enterprise customers weigh `enterprise`) and a two-hour quiet that ends an episode.
pub fn detection_settings(enterprise: f64) -> String {
    format!(
        "[detection.floor]\nmin_tickets = 8\nmin_customers = 6.0\nwindow = \"30m\"\n\
         [detection.spike]\nmax_false_alarm = 1e-6\nprior_windows = 4.0\nmemory = \"12h\"\n\
         [detection.cold_start]\nenabled = true\nrate = 0.5\nwarmup = \"1h\"\n\
         [detection.tiers]\nfree = 1.0\npro = 1.0\nenterprise = {enterprise:?}\n\
         [detection.episode]\nquiet = \"2h\"\n"
    )
}

/// SEV events go to `events_topic`.
pub fn sev_events_settings(events_topic: &str) -> String {
    format!("[notify]\nsev_events_topic = {events_topic:?}\n")
}

/// Detection holds a new cluster to the cold-start rate from the first ticket on (`warmup =
/// 0s`), so a burst opens a SEV without hours of background traffic; SEV events go to
/// `events_topic`.
pub fn no_warmup_settings(events_topic: &str) -> String {
    format!(
        "[detection.cold_start]\nwarmup = \"0s\"\n{}",
        sev_events_settings(events_topic)
    )
}

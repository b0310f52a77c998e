//! Detection scenarios, end to end: one `sevloop serve` (Kafka + PostgreSQL) fed one replay of
//! several products, each product one scenario. Clustering and detection are per product, so the
//! scenarios cannot disturb each other. Every product has the same background: many different
//! complaints at a steady rate, each far below the floor, from the start of the stream, so the
//! cold start's warmup is long over when anything happens. The SEVs each scenario should (and
//! should not) open are read back through the API once the replay is fully processed.
//!
//! The settings are chosen so that every scenario sits far from its thresholds: a scenario that
//! must not fire misses the deciding rule by a wide margin, one that must fire crosses it by
//! orders of magnitude (the margins are worked out next to each scenario).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::complaints::*;
use common::sevs::*;
use common::*;
use serde_json::{json, Value};

/// The scenarios' own complaints (with the shared ones); none shares a word with the background.
const DELIVERY: Complaint = Complaint {
    subject: "Change delivery address on parcel",
    bodies: [
        "How do I change the delivery address on parcel {n}",
        "Need to change the delivery address for parcel {n}",
        "Can the delivery address of parcel {n} be changed",
    ],
};
const QUOTA: Complaint = Complaint {
    subject: "Bulk import throttled by API quota",
    bodies: [
        "Bulk import gets throttled by the API quota, batch {n}",
        "API quota throttles our bulk import, batch {n}",
        "Throttled bulk import, API quota hit, batch {n}",
    ],
};
const VOICE: Complaint = Complaint {
    subject: "Voice calls drop after one minute",
    bodies: [
        "Voice calls drop after one minute, line {n}",
        "My voice call dropped at the one minute mark, line {n}",
        "Voice call drops after a minute, line {n}",
    ],
};

/// Products, one per scenario.
const FLOOR_ONE: &str = "floor_one";
const FLOOR_FEW: &str = "floor_few";
const COLD: &str = "cold_start";
const SPIKE: &str = "spike";
const STEADY: &str = "steady";
const TIER_ENTERPRISE: &str = "tier_enterprise";
const TIER_FREE: &str = "tier_free";
const REGRESSION: &str = "regression";
const PRODUCTS: [&str; 8] = [
    FLOOR_ONE,
    FLOOR_FEW,
    COLD,
    SPIKE,
    STEADY,
    TIER_ENTERPRISE,
    TIER_FREE,
    REGRESSION,
];

/// The main replay covers this much event time; the regression's second part follows it.
const STREAM: i64 = 8 * HOUR;

/// The detection settings of this test, all explicit.
///
/// Defaults for every product ([`detection_settings`]): at least 8 tickets from customers
/// weighing 6 in 30 minutes (the floor), a window improbable at `P ≤ 1e-6` against the usual
/// rate (the spike), a new complaint assumed to run at 0.5 tickets per window once its product
/// has been watched for an hour (the cold start), enterprise customers weighing 3.
///
/// The floor and tier products are made statistically trigger-happy (an assumed rate of 0.01
/// tickets per window and a false-alarm rate of 5%), so one complaining customer is already
/// "improbable" there (`P(X ≥ 1) ≈ 0.009`) and four are overwhelmingly so (`≈ 2e-5`): whether
/// those scenarios open a SEV is decided by the floor alone.
fn scenario_settings(events_topic: &str) -> String {
    let mut t = detection_settings(3.0);
    for product in [FLOOR_ONE, FLOOR_FEW, TIER_ENTERPRISE, TIER_FREE] {
        t.push_str(&format!(
            "[detection.products.{product}.spike]\nmax_false_alarm = 0.05\n\
             [detection.products.{product}.cold_start]\nrate = 0.01\n"
        ));
    }
    t.push_str(&sev_events_settings(events_topic));
    t
}

/// Seconds since the start of the stream (see [`at`]) of an RFC 3339 time.
fn event_seconds(rfc3339: &str) -> Option<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    let start = chrono::DateTime::parse_from_rfc3339(&at(0)).ok()?;
    Some((t - start).num_seconds())
}

/// The tickets of each scenario the assertions look at.
struct Scenarios {
    angry: Vec<String>,
    few: Vec<String>,
    cold: Vec<String>,
    spike_steady: Vec<String>,
    spike_jump: Vec<String>,
    steady: Vec<String>,
    tier_enterprise: Vec<String>,
    tier_free: Vec<String>,
    regression_first: Vec<String>,
}

/// The main replay: every product from 0 to 8 h, the regression product up to 4 h.
fn main_stream() -> (Vec<Value>, Scenarios) {
    let mut all = Vec::new();
    for product in PRODUCTS {
        let end = if product == REGRESSION {
            4 * HOUR
        } else {
            STREAM
        };
        all.extend(background_of(product, &BACKGROUND, 0, end));
    }

    // Floor, distinct customers: one angry customer, 20 tickets in 10 minutes. Customer weight
    // 1 against a floor of 6.
    let angry = burst_of(FLOOR_ONE, "angry", &REFUND, 20, 4 * HOUR, "pro", |_| {
        "angry-customer".to_string()
    });
    // Floor, too few customers: 4 customers, 5 tickets each, in 10 minutes. 20 tickets (the
    // floor wants 8) but customer weight 4 against 6.
    let few = burst_of(FLOOR_FEW, "few", &LOYALTY, 20, 4 * HOUR, "pro", |i| {
        format!("few-customer-{}", i % 4)
    });
    // Cold start: a complaint nobody had before, from 20 customers in 10 minutes, 4 h after
    // the product was first seen. Against the assumed 0.5 per window (held as 4 windows), the
    // default rule fires at the 10th customer (P ≈ 9e-7); 20 customers reach P ≈ 2e-13.
    let cold = burst_of(COLD, "cold", &CHECKOUT, 20, 4 * HOUR, "pro", |i| {
        format!("cold-customer-{i}")
    });
    // Spike: a complaint that runs at 2 tickets per window from the start (born while the
    // product was new, so it learns its rate from its own history), then jumps to 40 customers
    // in 10 minutes at 5 h. At ~2 per window it would take ~14 customers to reach P ≤ 5e-7;
    // 40 reach ~1e-16. Before the jump it never meets the floor (2 tickets per window).
    let spike_steady: Vec<Value> = (100..STREAM)
        .step_by(15 * MINUTE as usize)
        .enumerate()
        .map(|(i, t)| {
            let customer = format!("scan-customer-{i}");
            SCANNER.ticket(&format!("scan-{i}"), SPIKE, t, &customer, "pro", i)
        })
        .collect();
    let spike_jump = burst_of(SPIKE, "scan-jump", &SCANNER, 40, 5 * HOUR, "pro", |i| {
        format!("scan-jump-customer-{i}")
    });
    // Busy but steady: a complaint at 12 to 13 tickets (all from different customers) per
    // window for the whole stream, so it meets the floor in every window from the first half
    // hour on. Its first window, judged against next to no belief, is at P ≈ 3e-3 (thousands
    // of times above any threshold); after that it is judged against its own rate.
    let steady: Vec<Value> = (60..STREAM)
        .step_by(150)
        .enumerate()
        .map(|(i, t)| {
            let customer = format!("steady-customer-{}", i % 30);
            let tier = if i % 2 == 0 { "free" } else { "pro" };
            DELIVERY.ticket(&format!("steady-{i}"), STEADY, t, &customer, tier, i)
        })
        .collect();
    // Tier weights: 4 customers, 3 tickets each, in 10 minutes. Enterprise customers weigh 3
    // (4 × 3 = 12 ≥ 6: floor met), free ones 1 (4 < 6: floor missed). The same complaint,
    // the same times, two products.
    let tier_enterprise = burst_of(
        TIER_ENTERPRISE,
        "quota-ent",
        &QUOTA,
        12,
        4 * HOUR,
        "enterprise",
        |i| format!("quota-ent-customer-{}", i % 4),
    );
    let tier_free = burst_of(TIER_FREE, "quota-free", &QUOTA, 12, 4 * HOUR, "free", |i| {
        format!("quota-free-customer-{}", i % 4)
    });
    // Regression, first part: a new complaint from 20 customers at 3 h (a cold start).
    let regression_first = burst_of(REGRESSION, "voice-a", &VOICE, 20, 3 * HOUR, "pro", |i| {
        format!("voice-a-customer-{i}")
    });

    let scenarios = Scenarios {
        angry: ids(&angry),
        few: ids(&few),
        cold: ids(&cold),
        spike_steady: ids(&spike_steady),
        spike_jump: ids(&spike_jump),
        steady: ids(&steady),
        tier_enterprise: ids(&tier_enterprise),
        tier_free: ids(&tier_free),
        regression_first: ids(&regression_first),
    };
    for part in [
        angry,
        few,
        cold,
        spike_steady,
        spike_jump,
        steady,
        tier_enterprise,
        tier_free,
        regression_first,
    ] {
        all.extend(part);
    }
    (by_event_time(all), scenarios)
}

/// The regression's second part: the background goes on from 4 h, and the same complaint comes
/// back from 20 new customers at 7 h, hours after its SEV was resolved. Its history by then is
/// about 1.5 tickets per window, so 20 customers are at P ≈ 4e-13.
fn regression_stream() -> (Vec<Value>, Vec<String>) {
    let mut all = background_of(REGRESSION, &BACKGROUND, 4 * HOUR, STREAM);
    let again = burst_of(REGRESSION, "voice-b", &VOICE, 20, 7 * HOUR, "pro", |i| {
        format!("voice-b-customer-{i}")
    });
    let again_ids = ids(&again);
    all.extend(again);
    (by_event_time(all), again_ids)
}

/// A short account of a SEV for failure messages: id, rule, counts and why it opened.
fn describe(detail: &Value) -> String {
    let opened = detail["timeline"]
        .as_array()
        .and_then(|t| t.iter().find(|e| e["kind"] == "opened"))
        .map(|e| e["detail"].to_string())
        .unwrap_or_default();
    format!(
        "{} (rule {}, state {}, {} tickets, {} customers, opened at {}; {})",
        detail["id"],
        detail["rule"],
        detail["state"],
        detail["ticket_count"],
        detail["distinct_customers"],
        detail["opened_at"],
        opened
    )
}

/// The clusters the given tickets landed in.
async fn clusters_of(sevloop: &Sevloop, tickets: &[String]) -> BTreeMap<String, usize> {
    let mut clusters = BTreeMap::new();
    for id in tickets {
        let (_, t) = sevloop.get(&format!("/api/v1/tickets/{id}")).await;
        let cluster = t["cluster_id"].as_str().unwrap_or("(none)").to_string();
        *clusters.entry(cluster).or_insert(0) += 1;
    }
    clusters
}

/// Collects what went wrong, so one run reports every scenario.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }
}

/// Expects no SEV for `product`.
async fn expect_none(f: &mut Findings, sevloop: &Sevloop, product: &str, scenario: &str) {
    let sevs = sevloop.sevs_of(product).await;
    let mut described = Vec::new();
    for s in &sevs {
        described.push(describe(&sevloop.sev(s["id"].as_str().unwrap_or("")).await));
    }
    f.check(sevs.is_empty(), || {
        format!("{scenario} ({product}): expected no SEV, got {described:?}")
    });
}

/// Expects exactly one SEV for `product`, opened by `rule`; returns its detail.
async fn expect_one(
    f: &mut Findings,
    sevloop: &Sevloop,
    product: &str,
    scenario: &str,
    rule: &str,
) -> Option<Value> {
    let sevs = sevloop.sevs_of(product).await;
    let mut details = Vec::new();
    for s in &sevs {
        details.push(sevloop.sev(s["id"].as_str().unwrap_or("")).await);
    }
    let described: Vec<String> = details.iter().map(describe).collect();
    f.check(details.len() == 1, || {
        format!(
            "{scenario} ({product}): expected exactly one SEV, got {}: {described:?}",
            details.len()
        )
    });
    let detail = details.into_iter().next()?;
    f.check(detail["rule"] == json!(rule), || {
        format!(
            "{scenario} ({product}): expected rule {rule:?}, got {}",
            describe(&detail)
        )
    });
    Some(detail)
}

/// Expects every one of `tickets` in one cluster (a precondition of the scenario: the
/// complaint was recognised as one complaint).
async fn expect_one_cluster(
    f: &mut Findings,
    sevloop: &Sevloop,
    scenario: &str,
    tickets: &[String],
) -> Option<String> {
    let clusters = clusters_of(sevloop, tickets).await;
    f.check(clusters.len() == 1, || {
        format!("{scenario}: the complaint's tickets should form one cluster, got {clusters:?}")
    });
    clusters.into_keys().next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_detection_scenario_opens_exactly_the_sevs_it_should() {
    let started = std::time::Instant::now();
    let topic = fresh_topics("sevloop.detect", 3).await;
    let events_topic = fresh_sev_events_topic(&topic).await;
    let mut config = Config::for_topic(&topic).await;
    config.extra = scenario_settings(&events_topic);
    let sevloop = Sevloop::serve_healthy(&config).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let (stream, s) = main_stream();
    eprintln!(
        "replaying {} tickets of {} products",
        stream.len(),
        PRODUCTS.len()
    );
    replay_into(&topic, dir.path(), "main.jsonl", &to_lines(&stream));
    wait_processed(&sevloop, &stream, Duration::from_secs(180)).await;
    eprintln!("main replay processed after {:?}", started.elapsed());

    // Regression, first part: the burst opened a SEV; a person resolves it.
    let first = sevloop.sevs_of(REGRESSION).await;
    assert_eq!(
        first.len(),
        1,
        "the regression scenario's first burst opens one SEV: {first:?}"
    );
    let regression_sev = first[0]["id"].as_str().unwrap_or_default().to_string();
    let body = sevloop.act(&regression_sev, "resolve", None).await;
    assert_eq!(body["sev"]["state"], "resolved", "{body}");

    // Regression, second part: hours later in event time the complaint comes back.
    let (again, again_ids) = regression_stream();
    replay_into(&topic, dir.path(), "regression.jsonl", &to_lines(&again));
    wait_processed(&sevloop, &again, Duration::from_secs(120)).await;
    eprintln!("regression replay processed after {:?}", started.elapsed());

    let mut f = Findings::default();
    let sevloop = &sevloop;

    // Floor: one angry customer.
    expect_one_cluster(&mut f, sevloop, "one angry customer", &s.angry).await;
    expect_none(&mut f, sevloop, FLOOR_ONE, "one angry customer, 20 tickets").await;
    // Floor: too few customers.
    expect_one_cluster(&mut f, sevloop, "four customers", &s.few).await;
    expect_none(&mut f, sevloop, FLOOR_FEW, "four customers, 20 tickets").await;

    // Cold start: one SEV, every burst ticket linked to it and nothing else.
    let cold_cluster = expect_one_cluster(&mut f, sevloop, "cold start", &s.cold).await;
    if let Some(sev) = expect_one(&mut f, sevloop, COLD, "cold start", "cold_start").await {
        let linked = linked_ids(&sev);
        let want: BTreeSet<String> = s.cold.iter().cloned().collect();
        f.check(linked == want, || {
            format!(
                "cold start: the SEV should link exactly the 20 burst tickets; missing {:?}, extra {:?}",
                want.difference(&linked).collect::<Vec<_>>(),
                linked.difference(&want).collect::<Vec<_>>()
            )
        });
        f.check(
            sev["cluster_id"].as_str() == cold_cluster.as_deref(),
            || {
                format!(
                    "cold start: the SEV is of cluster {}, the burst is in {cold_cluster:?}",
                    sev["cluster_id"]
                )
            },
        );
        let (_, last) = sevloop
            .get(&format!("/api/v1/tickets/{}", s.cold[s.cold.len() - 1]))
            .await;
        f.check(
            last["sev_id"] == sev["id"] && last["sev_state"] == "open",
            || {
                format!(
                    "cold start: the last burst ticket should show {} open, shows {} {}",
                    sev["id"], last["sev_id"], last["sev_state"]
                )
            },
        );
        f.check(sev["distinct_customers"] == json!(20), || {
            format!(
                "cold start: 20 distinct customers expected, {}",
                describe(&sev)
            )
        });
    }

    // Spike: one SEV, opened during the jump, with every jump ticket linked.
    let mut spike_all = s.spike_steady.clone();
    spike_all.extend(s.spike_jump.iter().cloned());
    expect_one_cluster(&mut f, sevloop, "spike", &spike_all).await;
    if let Some(sev) = expect_one(&mut f, sevloop, SPIKE, "spike", "spike").await {
        let linked = linked_ids(&sev);
        let missing: Vec<&String> = s
            .spike_jump
            .iter()
            .filter(|t| !linked.contains(*t))
            .collect();
        f.check(missing.is_empty(), || {
            format!("spike: jump tickets not linked to the SEV: {missing:?}")
        });
        let foreign: Vec<&String> = linked.iter().filter(|t| !spike_all.contains(t)).collect();
        f.check(foreign.is_empty(), || {
            format!("spike: tickets of other complaints linked to the SEV: {foreign:?}")
        });
        let opened = sev["opened_at"].as_str().unwrap_or_default().to_string();
        let opened_s = event_seconds(&opened);
        f.check(
            opened_s.is_some_and(|t| (5 * HOUR..=5 * HOUR + 10 * MINUTE).contains(&t)),
            || format!("spike: the SEV should open during the jump (05:00 to 05:10), opened at {opened}"),
        );
    }

    // Busy but steady: above the floor in every window, never improbable.
    expect_one_cluster(&mut f, sevloop, "busy but steady", &s.steady).await;
    expect_none(&mut f, sevloop, STEADY, "busy but steady").await;

    // Tier weights: the enterprise burst passes the floor, the free one does not.
    expect_one_cluster(&mut f, sevloop, "enterprise tier", &s.tier_enterprise).await;
    if let Some(sev) = expect_one(
        &mut f,
        sevloop,
        TIER_ENTERPRISE,
        "four enterprise customers",
        "cold_start",
    )
    .await
    {
        let linked = linked_ids(&sev);
        let want: BTreeSet<String> = s.tier_enterprise.iter().cloned().collect();
        f.check(linked == want, || {
            format!("enterprise tier: linked {linked:?}, expected {want:?}")
        });
        f.check(sev["enterprise_customers"] == json!(4), || {
            format!(
                "enterprise tier: 4 enterprise customers expected, got {}",
                sev["enterprise_customers"]
            )
        });
    }
    expect_one_cluster(&mut f, sevloop, "free tier", &s.tier_free).await;
    expect_none(&mut f, sevloop, TIER_FREE, "four free customers").await;

    // Regression: the same SEV reopened, no second SEV.
    let mut voice = s.regression_first.clone();
    voice.extend(again_ids.iter().cloned());
    expect_one_cluster(&mut f, sevloop, "regression", &voice).await;
    let sevs = sevloop.sevs_of(REGRESSION).await;
    let ids_now: Vec<&str> = sevs.iter().filter_map(|s| s["id"].as_str()).collect();
    f.check(ids_now == [regression_sev.as_str()], || {
        format!("regression: expected only {regression_sev} (reopened), got {ids_now:?}")
    });
    let sev = sevloop.sev(&regression_sev).await;
    f.check(sev["state"] == "open" && sev["reopened"] == json!(1), || {
        format!(
            "regression: {regression_sev} should be open again with reopened = 1, got state {} reopened {}",
            sev["state"], sev["reopened"]
        )
    });
    let kinds = timeline_kinds(&sev);
    f.check(kinds.iter().any(|k| k == "reopened"), || {
        format!("regression: the timeline should say reopened: {kinds:?}")
    });
    let linked = linked_ids(&sev);
    let missing: Vec<&String> = voice.iter().filter(|t| !linked.contains(*t)).collect();
    f.check(missing.is_empty(), || {
        format!("regression: tickets of both bursts should be linked to {regression_sev}; missing {missing:?}")
    });
    let (_, latest) = sevloop
        .get(&format!(
            "/api/v1/tickets/{}",
            again_ids[again_ids.len() - 1]
        ))
        .await;
    f.check(
        latest["sev_id"] == json!(regression_sev) && latest["sev_state"] == "open",
        || {
            format!(
                "regression: a ticket of the second burst should show {regression_sev} open, shows {} {}",
                latest["sev_id"], latest["sev_state"]
            )
        },
    );

    // Nothing else anywhere: the background never opened a SEV.
    let (_, all) = sevloop.get("/api/v1/sevs?limit=1000").await;
    let by_product: BTreeMap<String, usize> = all["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .fold(BTreeMap::new(), |mut m, s| {
            *m.entry(s["product"].as_str().unwrap_or("?").to_string())
                .or_insert(0) += 1;
            m
        });
    let want: BTreeMap<String, usize> = [COLD, SPIKE, TIER_ENTERPRISE, REGRESSION]
        .into_iter()
        .map(|p| (p.to_string(), 1))
        .collect();
    f.check(by_product == want, || {
        format!("SEVs per product: expected {want:?}, got {by_product:?}")
    });

    eprintln!("scenarios checked after {:?}", started.elapsed());
    assert!(
        f.0.is_empty(),
        "{} detection scenario expectation(s) failed:\n- {}",
        f.0.len(),
        f.0.join("\n- ")
    );
}

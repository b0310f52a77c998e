//! Notifications end to end: the real binary (Kafka + PostgreSQL) tells receivers on loopback
//! about SEVs, and the receivers check what a real one would: at-least-once delivery under a
//! stable idempotency key, backoff and `Retry-After`, Standard Webhooks signatures (checked by
//! the reference Python library), the PagerDuty Events API v2 schema, the Alertmanager and Slack
//! shapes, 410 Gone, and that no body carries ticket text.
//!
//! Every test has its own topics, database, consumer group, port and receivers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::capture::{
    is_installation, Answer, Arrival, Behaviour, Capture, ROUTING_KEY, WEBHOOK_SECRET,
};
use common::sevs::*;
use common::words::{wordings, Rng};
use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Tickets

/// `n` distinct customers of `product` report the same problem within ten minutes of event
/// time. Each ticket also mentions a made-up word no other ticket has.
fn complaint(product: &str, n: usize) -> Vec<Value> {
    let texts = wordings(product);
    (0..n)
        .map(|i| {
            let text = texts[i % texts.len()];
            let seed = product
                .bytes()
                .fold(i as u64, |h, b| h.wrapping_mul(131).wrapping_add(b as u64));
            let marker = Rng(seed).word().to_lowercase();
            let subject = format!("{text} (ref {})", 7100 + i);
            let body = format!(
                "{text}. It happened while I was buying a {marker} online, reference {}.",
                5200 + i
            );
            json!({
                "ticket_id": format!("{product}-{i}"),
                "event": "created",
                "event_time": at((600 * i as i64) / n as i64),
                "subject": subject,
                "body": body,
                "product": product,
                "customer": {"id": format!("{product}-cust-{i}"), "tier": "pro"},
                "channel": "web",
                "source": "test",
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The system under test

/// One running sevloop with its own topics, database and catalog.
struct Run {
    sevloop: Sevloop,
    config: Config,
    tickets: Vec<Value>,
    _files: tempfile::TempDir,
}

/// Replays one complaint per product into fresh topics and starts `sevloop serve` with
/// `catalog`, without warmup (see [`no_warmup_settings`]).
async fn start(catalog: String, products: &[&str]) -> Run {
    let topic = fresh_topics("sevloop.notify", 3).await;
    let events = fresh_sev_events_topic(&topic).await;
    let tickets = by_event_time(products.iter().flat_map(|p| complaint(p, 14)).collect());
    let files = tempfile::tempdir().expect("temp dir");
    replay_into(&topic, files.path(), "tickets.jsonl", &to_lines(&tickets));

    let mut config = Config::for_topic(&topic).await;
    config.catalog = Some(catalog);
    config.extra = no_warmup_settings(&events);
    Run {
        sevloop: Sevloop::serve_healthy(&config).await,
        config,
        tickets,
        _files: files,
    }
}

impl Run {
    /// Waits until every ticket is stored and every product has a SEV; returns product → SEV id.
    async fn sevs(&self, products: &[&str]) -> BTreeMap<String, String> {
        let n = self.tickets.len() as i64;
        wait_for_tickets(&self.config.database_url, n, Duration::from_secs(120)).await;
        let items = wait_for_sevs(&self.sevloop, products, Duration::from_secs(60)).await;
        assert_eq!(
            items.len(),
            products.len(),
            "one SEV per complaint: {items:#?}"
        );
        sev_ids_by_product(&items)
    }

    /// The SEV ids of `products` (see [`Run::sevs`]).
    async fn sev_ids(&self, products: &[&str]) -> Vec<String> {
        self.sevs(products).await.into_values().collect()
    }

    /// Acknowledges, then resolves the SEV of each of `products`, and waits until every
    /// notification of theirs was delivered; returns the SEV ids and the notifications by id.
    async fn through_lifecycle(
        &self,
        products: &[&str],
        timeout: Duration,
    ) -> (Vec<String>, BTreeMap<String, Value>) {
        let ids = self.sev_ids(products).await;
        for id in &ids {
            self.act(id, "acknowledge", None).await;
            self.act(id, "resolve", None).await;
        }
        let all = self.settled(&ids, timeout).await;
        assert_all_delivered(&all);
        (ids, all)
    }

    /// Waits until no notification of these SEVs is pending; returns them by id.
    async fn settled(&self, sev_ids: &[String], timeout: Duration) -> BTreeMap<String, Value> {
        settled(self, sev_ids, timeout).await
    }

    /// Replaces the catalog as an admin does; it is used at once.
    async fn replace_catalog(&self, catalog: String) {
        let put = client_with(&self.token)
            .put(format!("{}/api/v1/catalog", self.url))
            .header(reqwest::header::CONTENT_TYPE, "application/toml")
            .body(catalog)
            .send()
            .await
            .expect("sevloop answers");
        assert_eq!(put.status(), 200, "the admin replaces the catalog");
    }
}

impl Deref for Run {
    type Target = Sevloop;

    fn deref(&self) -> &Sevloop {
        &self.sevloop
    }
}

/// The notifications that went to `endpoint`, by id (the idempotency key).
fn to_endpoint(all: &BTreeMap<String, Value>, endpoint: &str) -> BTreeMap<String, Value> {
    all.iter()
        .filter(|(_, n)| n["endpoint"] == endpoint)
        .map(|(k, n)| (k.clone(), n.clone()))
        .collect()
}

/// The event types a receiver was told of.
fn types_heard(arrivals: &[Arrival]) -> BTreeSet<String> {
    arrivals
        .iter()
        .map(|a| str_of(&a.json(), "type").to_string())
        .collect()
}

fn assert_all_delivered(all: &BTreeMap<String, Value>) {
    let undelivered: Vec<&Value> = all.values().filter(|n| n["state"] != "delivered").collect();
    assert!(
        undelivered.is_empty(),
        "notifications not delivered: {undelivered:#?}"
    );
    assert!(
        all.values().all(|n| n["next_attempt_at"].is_null()),
        "a delivered notification has no next attempt: {all:#?}"
    );
}

/// The kinds each SEV's notifications to `endpoint` have, in the order they were queued.
fn kinds_by_sev(notifications: &BTreeMap<String, Value>) -> BTreeMap<String, Vec<String>> {
    let mut rows: Vec<&Value> = notifications.values().collect();
    rows.sort_by_key(|n| {
        (
            str_of(n, "created_at").to_string(),
            str_of(n, "id").to_string(),
        )
    });
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in rows {
        out.entry(str_of(n, "sev_id").to_string())
            .or_default()
            .push(str_of(n, "kind").to_string());
    }
    out
}

fn assert_lifecycle_told(notifications: &BTreeMap<String, Value>, sev_ids: &[String]) {
    let kinds = kinds_by_sev(notifications);
    for id in sev_ids {
        let told: BTreeSet<&str> = kinds
            .get(id)
            .map(|k| k.iter().map(String::as_str).collect())
            .unwrap_or_default();
        for kind in ["opened", "acknowledged", "resolved"] {
            assert!(
                told.contains(kind),
                "{id}: no `{kind}` notification queued; queued {told:?}"
            );
        }
    }
}

fn catalog(channels: &[(&str, String)], team_channels: &[&str]) -> String {
    let mut t = String::from("default_team = \"triage\"\n[teams.triage]\n");
    t.push_str(&format!("channels = {team_channels:?}\n"));
    for (name, table) in channels {
        t.push_str(&format!("[channels.{name}]\n{table}\n"));
    }
    t
}

fn signed_webhook(url: &str, secrets: &[&str]) -> String {
    format!("kind = \"webhook\"\nurl = {url:?}\nsecrets = {secrets:?}")
}

fn pagerduty_channel(url: &str) -> String {
    format!("kind = \"pagerduty\"\nurl = {url:?}\nrouting_key = {ROUTING_KEY:?}")
}

fn alertmanager_channel(url: &str) -> String {
    format!("kind = \"alertmanager\"\nurl = {url:?}")
}

fn slack_channel(url: &str) -> String {
    format!("kind = \"slack\"\nurl = {url:?}")
}

/// A catalog whose team hears on one webhook, at `url`, signed with `secrets`.
fn one_webhook(url: &str, secrets: &[&str]) -> String {
    catalog(&[("hook", signed_webhook(url, secrets))], &["hook"])
}

/// The secret the webhook rotates from.
const OLD_SECRET: &str = WEBHOOK_SECRET;
const NEW_SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OTHER_SECRET: &str = "whsec_c2V2bG9vcCB0ZXN0IHNlY3JldCB0aGF0IHNpZ25zIG5vdGhpbmc=";

// ---------------------------------------------------------------------------------------------
// At least once, applied once

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_receiver_applies_every_event_of_every_sev_once_and_retries_back_off_and_honour_retry_after(
) {
    let receiver = Capture::start(Behaviour::Flaky).await;
    let products = ["cards", "transfers", "login", "statements"];
    let run = start(
        one_webhook(&receiver.url("/hook"), &[OLD_SECRET]),
        &products,
    )
    .await;
    let (ids, all) = run
        .through_lifecycle(&products, Duration::from_secs(240))
        .await;
    let expected = to_endpoint(&all, "hook");
    assert_lifecycle_told(&expected, &ids);

    let ledger = receiver.ledger();
    let arrivals = &ledger.arrivals;
    // Every event the API says was delivered was applied, and nothing else was.
    let expected_keys: BTreeSet<&String> = expected.keys().collect();
    let applied_keys: BTreeSet<&String> = ledger.applied.keys().collect();
    assert_eq!(
        applied_keys, expected_keys,
        "events applied by the receiver vs notifications queued for it"
    );
    // Applied once: each event (SEV × kind) reached the receiver under exactly one key, so
    // deduplicating by key is enough to apply it once.
    let mut keys_of_event: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut keys_of_change: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (key, body) in &ledger.applied {
        let body: Value = serde_json::from_slice(body).expect("JSON body");
        let (sev, kind) = (str_of(&body["data"], "sev_id"), str_of(&body, "type"));
        let n = &expected[key];
        assert_eq!(
            (sev, kind),
            (
                str_of(n, "sev_id"),
                format!("sev.{}", str_of(n, "kind")).as_str()
            ),
            "the body under key {key} is the event the key names"
        );
        let change = str_of(&body["data"], "event_id").to_string();
        keys_of_change
            .entry(change)
            .or_default()
            .insert(key.clone());
        if kind != "sev.updated" {
            // An opening, acknowledgement or resolution happens once per SEV.
            let event = (sev.to_string(), kind.to_string());
            keys_of_event.entry(event).or_default().insert(key.clone());
        }
    }
    for (event, keys) in &keys_of_event {
        assert_eq!(
            keys.len(),
            1,
            "{event:?} was sent under several keys: {keys:?}"
        );
    }
    for (change, keys) in &keys_of_change {
        assert_eq!(
            keys.len(),
            1,
            "change {change} was sent under several keys: {keys:?}"
        );
    }
    // A retry is the same delivery: same key, same webhook-id, same bytes.
    let mut by_key: BTreeMap<String, Vec<&Arrival>> = BTreeMap::new();
    for a in arrivals {
        assert_eq!(a.path, "/hook");
        assert_eq!(
            a.header("webhook-id"),
            a.header("idempotency-key"),
            "webhook-id is the idempotency key"
        );
        by_key.entry(a.key()).or_default().push(a);
    }
    for (key, tries) in &by_key {
        assert!(
            tries.iter().all(|t| t.body == tries[0].body),
            "{key}: a retry carried a different body"
        );
        assert_eq!(
            expected[key]["attempts"].as_i64(),
            Some(tries.len() as i64),
            "{key}: attempts the API reports vs requests the receiver saw"
        );
    }
    // Retries happened, including of events the receiver had applied but failed to confirm.
    let retried = by_key.values().filter(|t| t.len() > 1).count();
    assert!(retried > 0, "no key was seen more than once");
    assert!(
        ledger.duplicates > 0,
        "no retry of an applied-but-unconfirmed event"
    );
    // Backoff: after the k-th failed attempt of a key, the next comes at least 2^(k-1) s later
    // (1 s, 2 s, 4 s), and after a 429 at least its Retry-After (1 s) later.
    let tolerance = Duration::from_millis(5);
    let (mut after_429, mut after_500) = (0, 0);
    for (key, tries) in &by_key {
        let mut failures = 0u32;
        for pair in tries.windows(2) {
            let (failed, next) = (pair[0], pair[1]);
            let gap = next.at - failed.at;
            failures += 1;
            let wait = match failed.answer {
                Answer::TooManyRequests => {
                    after_429 += 1;
                    Duration::from_secs(1)
                }
                Answer::FailBeforeApplying | Answer::FailAfterApplying => {
                    after_500 += 1;
                    Duration::from_secs(1 << (failures - 1))
                }
                other => panic!("{key}: retried after answering {other:?}"),
            };
            assert!(
                gap + tolerance >= wait,
                "{key}: attempt {} came {gap:?} after a {:?}; expected at least {wait:?}",
                failures + 1,
                failed.answer
            );
        }
    }
    assert!(
        after_429 > 0 && after_500 > 0,
        "retries after 429 ({after_429}) and after 500 ({after_500})"
    );
    eprintln!(
        "{} SEVs, {} events, {} requests, {retried} keys retried, {} duplicates skipped, \
         {after_429} retries after 429, {after_500} after 500",
        ids.len(),
        expected.len(),
        arrivals.len(),
        ledger.duplicates
    );
}

// ---------------------------------------------------------------------------------------------
// Signatures, checked by someone else's code

/// The venv's python, from `$SEVLOOP_PYTHON` or, when unset or empty, from
/// scripts/python-tools.sh (run once per test binary).
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| match std::env::var_os("SEVLOOP_PYTHON") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let out = Command::new(root.join("scripts/python-tools.sh"))
                .current_dir(root)
                .stderr(Stdio::inherit())
                .output()
                .expect("failed to run scripts/python-tools.sh");
            assert!(
                out.status.success(),
                "scripts/python-tools.sh failed ({}): it installs the standardwebhooks package this test needs",
                out.status
            );
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    })
}

/// The verifier script's exit status for "verification failed".
const REJECTED: i32 = 3;

/// Whether `standardwebhooks` (the reference implementation) verifies `body` under `headers`
/// with `secret`. Panics when the check itself cannot run.
fn reference_verifies(secret: &str, headers: &BTreeMap<&str, String>, body: &[u8]) -> bool {
    let body = std::str::from_utf8(body).expect("webhook bodies are JSON, hence UTF-8");
    let request = json!({"secret": secret, "headers": headers, "body": body});
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("services/notify/tests/verify_standard_webhooks.py");
    let mut child = Command::new(python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {}: {e}", python().display()));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(request.to_string().as_bytes())
        .expect("failed to write the request to the verifier");
    let out = child.wait_with_output().expect("the verifier runs");
    match out.status.code() {
        Some(0) => true,
        Some(REJECTED) => false,
        _ => panic!(
            "the Python verifier did not run ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_deliveries_signed_during_a_rotation_verify_with_each_secret_alone_in_the_reference_library(
) {
    let receiver = Capture::start(Behaviour::Healthy).await;
    let run = start(
        one_webhook(&receiver.url("/hook"), &[OLD_SECRET, NEW_SECRET]),
        &["cards"],
    )
    .await;
    let ids = run.sev_ids(&["cards"]).await;
    run.act(&ids[0], "acknowledge", None).await;
    let all = run.settled(&ids, Duration::from_secs(60)).await;
    assert_all_delivered(&all);
    let arrivals = receiver.arrivals();
    let kinds = types_heard(&arrivals);
    assert!(
        kinds.contains("sev.opened") && kinds.contains("sev.acknowledged"),
        "deliveries of the opening and the acknowledgement: {kinds:?}"
    );
    for a in &arrivals {
        let headers: BTreeMap<&str, String> =
            ["webhook-id", "webhook-timestamp", "webhook-signature"]
                .into_iter()
                .map(|name| {
                    let value = a
                        .header(name)
                        .unwrap_or_else(|| panic!("delivery {} has no {name} header", a.key()));
                    (name, value.to_string())
                })
                .collect();
        let signatures: Vec<&str> = headers["webhook-signature"].split(' ').collect();
        assert_eq!(
            signatures.len(),
            2,
            "one signature per secret: {signatures:?}"
        );
        assert!(
            signatures.iter().all(|s| s.starts_with("v1,")),
            "{signatures:?}"
        );
        for secret in [OLD_SECRET, NEW_SECRET] {
            assert!(
                reference_verifies(secret, &headers, &a.body),
                "standardwebhooks rejected delivery {} with one of the rotated secrets",
                a.key()
            );
        }
        assert!(
            !reference_verifies(OTHER_SECRET, &headers, &a.body),
            "a secret the channel does not have verified delivery {}",
            a.key()
        );
        let original = a.text();
        let sev_id = str_of(&a.json()["data"], "sev_id").to_string();
        let tampered = original.replace(&format!("\"{sev_id}\""), "\"SEV-999999\"");
        assert_ne!(tampered, original, "the tampering must change the body");
        assert!(
            !reference_verifies(OLD_SECRET, &headers, tampered.as_bytes()),
            "a tampered body verified"
        );
    }
    eprintln!(
        "{} real deliveries verified with each of two secrets",
        arrivals.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Channel shapes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_gets_events_api_v2_bodies_with_one_dedup_key_per_sev_and_the_catalogs_routing_key(
) {
    let receiver = Capture::start(Behaviour::Healthy).await;
    let pd = pagerduty_channel(&receiver.url("/v2/enqueue"));
    let products = ["cards", "transfers"];
    let run = start(catalog(&[("pd", pd)], &["pd"]), &products).await;
    let (ids, all) = run
        .through_lifecycle(&products, Duration::from_secs(60))
        .await;
    let expected = to_endpoint(&all, "pd");
    assert_lifecycle_told(&expected, &ids);

    let schema: Value = serde_json::from_str(include_str!(
        "../services/notify/tests/pagerduty-events-v2.schema.json"
    ))
    .expect("the schema is JSON");
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles");
    let arrivals = receiver.arrivals();
    let mut dedup: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut actions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in &arrivals {
        assert_eq!(a.path, "/v2/enqueue");
        let body = a.json();
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{body:#}");
        assert_eq!(body["routing_key"], ROUTING_KEY);
        let key = str_of(&body, "dedup_key");
        assert!(
            !key.is_empty() && key.chars().count() <= 255,
            "dedup_key {key:?}"
        );
        let n = expected
            .get(&a.key())
            .unwrap_or_else(|| panic!("a request with an unknown idempotency key {}", a.key()));
        let sev = str_of(n, "sev_id").to_string();
        let installation = key
            .strip_prefix("sevloop/")
            .and_then(|k| k.strip_suffix(&format!("/{sev}")))
            .unwrap_or_default();
        assert!(
            is_installation(installation),
            "the dedup_key names this installation and the SEV: {key:?}"
        );
        dedup
            .entry(sev.clone())
            .or_default()
            .insert(key.to_string());
        actions
            .entry(sev.clone())
            .or_default()
            .push(str_of(&body, "event_action").to_string());
        let action = match str_of(n, "kind") {
            "acknowledged" | "mitigated" => "acknowledge",
            "resolved" | "declined" | "merged" => "resolve",
            _ => "trigger",
        };
        assert_eq!(body["event_action"], action, "{}: {body:#}", a.key());
        if body["event_action"] == "trigger" {
            assert_eq!(body["payload"]["custom_details"]["sev_id"], json!(sev));
        }
    }
    let delivered: BTreeSet<String> = arrivals.iter().map(Arrival::key).collect();
    assert_eq!(
        delivered,
        expected.keys().cloned().collect::<BTreeSet<_>>(),
        "every PagerDuty notification arrived"
    );
    for id in &ids {
        let keys = &dedup[id];
        assert_eq!(
            keys.len(),
            1,
            "{id}: every event shares one dedup_key: {keys:?}"
        );
        let acts: BTreeSet<&str> = actions[id].iter().map(String::as_str).collect();
        assert_eq!(
            acts,
            BTreeSet::from(["trigger", "acknowledge", "resolve"]),
            "{id}: {:?}",
            actions[id]
        );
    }
    let distinct: BTreeSet<&String> = dedup.values().flatten().collect();
    assert_eq!(distinct.len(), ids.len(), "each SEV has its own dedup_key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_and_slack_channels_receive_bodies_of_their_own_shape() {
    let receiver = Capture::start(Behaviour::Healthy).await;
    let am = alertmanager_channel(&receiver.url("/am"));
    let chat = slack_channel(&receiver.url("/slack"));
    let run = start(
        catalog(&[("am", am), ("chat", chat)], &["am", "chat"]),
        &["login"],
    )
    .await;
    let (ids, all) = run
        .through_lifecycle(&["login"], Duration::from_secs(60))
        .await;
    let sev = &ids[0];
    assert_lifecycle_told(&to_endpoint(&all, "am"), &ids);
    assert_lifecycle_told(&to_endpoint(&all, "chat"), &ids);

    let arrivals = receiver.arrivals();
    let kind_of = |a: &Arrival| {
        let n = all
            .get(&a.key())
            .unwrap_or_else(|| panic!("a request with an unknown idempotency key {}", a.key()));
        str_of(n, "kind").to_string()
    };
    let alertmanager: Vec<&Arrival> = arrivals.iter().filter(|a| a.path == "/am").collect();
    let slack: Vec<&Arrival> = arrivals.iter().filter(|a| a.path == "/slack").collect();
    assert_eq!(
        alertmanager.len() + slack.len(),
        arrivals.len(),
        "requests only on the channels' paths"
    );

    let mut statuses = Vec::new();
    let mut fingerprints = BTreeSet::new();
    for a in &alertmanager {
        let body = a.json();
        let kind = kind_of(a);
        let want = if kind == "resolved" {
            "resolved"
        } else {
            "firing"
        };
        assert_eq!(body["version"], "4", "{body:#}");
        assert_eq!(body["receiver"], "am", "{body:#}");
        assert_eq!(body["status"], want, "{kind}: {body:#}");
        assert_eq!(body["groupLabels"]["sev_id"], json!(sev), "{body:#}");
        assert!(str_of(&body, "groupKey").contains(sev.as_str()), "{body:#}");
        let alerts = body["alerts"].as_array().expect("alerts is an array");
        assert_eq!(alerts.len(), 1, "{body:#}");
        let alert = &alerts[0];
        assert_eq!(alert["status"], want, "{body:#}");
        assert_eq!(alert["labels"]["sev_id"], json!(sev), "{body:#}");
        assert_eq!(alert["labels"]["alertname"], "SevloopSEV", "{body:#}");
        assert!(!str_of(alert, "startsAt").is_empty(), "{body:#}");
        let firing_end = str_of(alert, "endsAt") == "0001-01-01T00:00:00Z";
        assert_eq!(
            firing_end,
            want == "firing",
            "endsAt of a {want} alert: {body:#}"
        );
        fingerprints.insert(str_of(alert, "fingerprint").to_string());
        statuses.push(want);
    }
    let statuses: BTreeSet<&str> = statuses.into_iter().collect();
    assert_eq!(statuses, BTreeSet::from(["firing", "resolved"]));
    assert_eq!(
        fingerprints.len(),
        1,
        "one fingerprint for the SEV's whole life"
    );

    let mut slack_kinds = Vec::new();
    for a in &slack {
        let body = a.json();
        let kind = kind_of(a);
        let text = str_of(&body, "text");
        assert!(
            text.contains(sev.as_str()) && text.contains(&kind),
            "Slack text names the SEV and the change ({kind}): {text:?}"
        );
        let blocks = body["blocks"].as_array().expect("blocks is an array");
        assert!(!blocks.is_empty(), "{body:#}");
        assert!(
            blocks.iter().all(|b| b["type"].is_string()),
            "every block has a type: {body:#}"
        );
        assert_eq!(blocks[0]["type"], "header", "{body:#}");
        assert_eq!(blocks[0]["text"]["type"], "plain_text", "{body:#}");
        slack_kinds.push(kind);
    }
    for kind in ["opened", "acknowledged", "resolved"] {
        assert!(
            slack_kinds.iter().any(|k| k == kind),
            "Slack told of {kind}: {slack_kinds:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Order

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_answers_every_request_is_told_of_each_sevs_changes_in_the_order_they_happened(
) {
    // A slow receiver: while it handles the openings, the acknowledgements and resolutions
    // queue up, and the dispatcher leases them together.
    let receiver = Capture::start(Behaviour::Slow).await;
    let products = ["cards", "transfers", "login"];
    let run = start(
        one_webhook(&receiver.url("/hook"), &[OLD_SECRET]),
        &products,
    )
    .await;
    let (ids, all) = run
        .through_lifecycle(&products, Duration::from_secs(120))
        .await;
    let arrivals = receiver.arrivals();
    assert!(
        arrivals.iter().all(|a| a.answer == Answer::Ok),
        "nothing needed a retry"
    );
    let mut told: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in &arrivals {
        let body = a.json();
        told.entry(str_of(&body["data"], "sev_id").to_string())
            .or_default()
            .push(str_of(&body, "type").trim_start_matches("sev.").to_string());
    }
    let mut out_of_order = Vec::new();
    for id in &ids {
        let kinds = told.get(id).cloned().unwrap_or_default();
        let position = |kind: &str| kinds.iter().position(|k| k == kind);
        let (opened, acknowledged, resolved) = (
            position("opened"),
            position("acknowledged"),
            position("resolved"),
        );
        assert!(
            opened.is_some() && acknowledged.is_some() && resolved.is_some(),
            "{id}: told {kinds:?}"
        );
        if !(opened < acknowledged && acknowledged < resolved) {
            let mut queued: Vec<&Value> = all
                .values()
                .filter(|n| n["sev_id"] == json!(id) && n["endpoint"] == "hook")
                .collect();
            queued.sort_by_key(|n| str_of(n, "created_at").to_string());
            let queued: Vec<String> = queued
                .iter()
                .map(|n| format!("{} queued {}", str_of(n, "kind"), str_of(n, "created_at")))
                .collect();
            out_of_order.push(format!("{id}: delivered {kinds:?}; {queued:?}"));
        }
    }
    assert!(
        out_of_order.is_empty(),
        "changes delivered out of order (expected opened, acknowledged, resolved):\n{}",
        out_of_order.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// 410 Gone

/// Waits until `endpoint`'s notifications of these SEVs pass `check`; returns them by id.
async fn endpoint_state(
    run: &Run,
    sev_ids: &[String],
    endpoint: &str,
    what: &str,
    check: impl Fn(&BTreeMap<String, Value>) -> bool,
) -> BTreeMap<String, Value> {
    eventually(what, Duration::from_secs(60), || async {
        let rows = to_endpoint(
            &run.settled(sev_ids, Duration::from_secs(60)).await,
            endpoint,
        );
        check(&rows).then_some(rows)
    })
    .await
}

/// Waits until `endpoint`'s lifecycle notifications of these SEVs are in the `expected` states
/// (see [`by_state`]); returns all its notifications by id.
async fn until_states(
    run: &Run,
    sev_ids: &[String],
    endpoint: &str,
    what: &str,
    expected: &[(&str, &[&str])],
) -> BTreeMap<String, Value> {
    let expected = states(expected);
    endpoint_state(run, sev_ids, endpoint, what, |rows| {
        by_state(rows) == expected
    })
    .await
}

/// Whether a notification is of the SEV's lifecycle. Severity updates (`updated`) come and go
/// with the replay's timing, so the 410 tests leave them out.
fn of_lifecycle(n: &Value) -> bool {
    n["kind"] != "updated"
}

/// The lifecycle kinds of `rows` in each state, each list sorted.
fn by_state(rows: &BTreeMap<String, Value>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in rows.values().filter(|n| of_lifecycle(n)) {
        out.entry(str_of(n, "state").to_string())
            .or_default()
            .push(str_of(n, "kind").to_string());
    }
    out.values_mut().for_each(|kinds| kinds.sort());
    out
}

fn states(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(state, kinds)| {
            (
                state.to_string(),
                kinds.iter().map(|k| k.to_string()).collect(),
            )
        })
        .collect()
}

/// The lifecycle event types a receiver was told of, in the order it was told.
fn types_in_order(arrivals: &[Arrival]) -> Vec<String> {
    arrivals
        .iter()
        .map(|a| str_of(&a.json(), "type").to_string())
        .filter(|t| t != "sev.updated")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_410_gone_is_held_then_told_in_full_when_its_channel_moves() {
    let gone = Capture::start(Behaviour::Gone).await;
    let fine = Capture::start(Behaviour::Healthy).await;
    let run = start(
        catalog(
            &[
                ("gone", signed_webhook(&gone.url("/hook"), &[OLD_SECRET])),
                ("fine", signed_webhook(&fine.url("/hook"), &[OLD_SECRET])),
            ],
            &["gone", "fine"],
        ),
        &["statements"],
    )
    .await;
    let ids = run.sev_ids(&["statements"]).await;
    let sev = &ids[0];
    let opened = run.settled(&ids, Duration::from_secs(60)).await;
    let called = gone.arrivals();
    assert_eq!(called.len(), 1, "the 410 endpoint was called once");
    let first = &opened[&called[0].key()];
    assert_eq!(first["kind"], "opened", "{first:#}");
    assert_eq!(first["state"], "held", "{first:#}");
    assert_eq!(first["attempts"], 1, "410 is not retried: {first:#}");
    assert!(
        first["next_attempt_at"].is_null(),
        "a held notification has no next attempt: {first:#}"
    );
    let error = str_of(first, "last_error");
    assert!(
        error.contains("410") && error.contains("disabled"),
        "the last error says the endpoint answered 410 and was disabled: {error:?}"
    );

    run.act(sev, "acknowledge", None).await;
    until_states(
        &run,
        &ids,
        "gone",
        "the acknowledgement to wait behind",
        &[("held", &["opened"]), ("pending", &["acknowledged"])],
    )
    .await;
    assert_eq!(
        gone.arrivals().len(),
        1,
        "no request reached the disabled endpoint after its 410"
    );
    let fine_kinds = types_heard(&fine.arrivals());
    assert!(
        fine_kinds.contains("sev.opened") && fine_kinds.contains("sev.acknowledged"),
        "the other channel of the team still hears: {fine_kinds:?}"
    );

    // The team moves the channel to a new receiver: the 410 was about the old address, so the
    // channel is called again without anyone enabling it by hand, and told what it missed of
    // the SEV, still open, in order.
    let moved = Capture::start(Behaviour::Healthy).await;
    let catalog = catalog(
        &[
            ("gone", signed_webhook(&moved.url("/hook"), &[OLD_SECRET])),
            ("fine", signed_webhook(&fine.url("/hook"), &[OLD_SECRET])),
        ],
        &["gone", "fine"],
    );
    run.replace_catalog(catalog).await;
    until_states(
        &run,
        &ids,
        "gone",
        "what it missed to be delivered",
        &[("delivered", &["acknowledged", "opened"])],
    )
    .await;
    run.act(sev, "resolve", None).await;
    until_states(
        &run,
        &ids,
        "gone",
        "the resolution to be delivered",
        &[("delivered", &["acknowledged", "opened", "resolved"])],
    )
    .await;
    assert_eq!(
        types_in_order(&moved.arrivals()),
        ["sev.opened", "sev.acknowledged", "sev.resolved"]
    );
    assert_eq!(
        gone.arrivals().len(),
        1,
        "the old address is never called again"
    );
    let (_, disabled) = run.get("/api/v1/endpoints/disabled").await;
    assert_eq!(disabled["items"], json!([]), "nothing is disabled any more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_called_again_after_410_hears_only_the_close_of_a_sev_it_knew_and_closed_meanwhile(
) {
    let first = Capture::start(Behaviour::Healthy).await;
    let gone = Capture::start(Behaviour::Gone).await;
    let run = start(
        one_webhook(&first.url("/hook"), &[OLD_SECRET]),
        &["statements"],
    )
    .await;
    let ids = run.sev_ids(&["statements"]).await;
    let sev = &ids[0];
    until_states(
        &run,
        &ids,
        "hook",
        "the SEV's opening to be delivered",
        &[("delivered", &["opened"])],
    )
    .await;

    // The channel moves to a receiver that is gone; the SEV is acknowledged and resolved
    // meanwhile.
    run.replace_catalog(one_webhook(&gone.url("/hook"), &[OLD_SECRET]))
        .await;
    run.act(sev, "acknowledge", None).await;
    until_states(
        &run,
        &ids,
        "hook",
        "the acknowledgement to be held",
        &[("delivered", &["opened"]), ("held", &["acknowledged"])],
    )
    .await;
    run.act(sev, "resolve", None).await;
    until_states(
        &run,
        &ids,
        "hook",
        "the resolution to queue",
        &[
            ("delivered", &["opened"]),
            ("held", &["acknowledged"]),
            ("pending", &["resolved"]),
        ],
    )
    .await;

    // Back at the first receiver: it knew the SEV open, so it is told it resolved, and not
    // of the acknowledgement on the way.
    run.replace_catalog(one_webhook(&first.url("/hook"), &[OLD_SECRET]))
        .await;
    let rows = until_states(
        &run,
        &ids,
        "hook",
        "the close to be delivered",
        &[
            ("delivered", &["opened", "resolved"]),
            ("superseded", &["acknowledged"]),
        ],
    )
    .await;
    let ack = rows
        .values()
        .find(|n| n["kind"] == "acknowledged")
        .expect("the acknowledgement");
    assert!(
        str_of(ack, "last_error").contains("only its last change is sent"),
        "the superseded notification says why: {ack:#}"
    );
    assert_eq!(
        types_in_order(&first.arrivals()),
        ["sev.opened", "sev.resolved"]
    );
    assert_eq!(
        gone.arrivals().len(),
        1,
        "the gone receiver was called once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_enables_an_endpoint_that_answered_410_and_only_sevs_still_open_are_raised_there()
{
    let receiver = Capture::start(Behaviour::Gone).await;
    let products = ["statements", "transfers"];
    let run = start(
        one_webhook(&receiver.url("/hook"), &[OLD_SECRET]),
        &products,
    )
    .await;
    let sevs = run.sevs(&products).await;
    let ids: Vec<String> = sevs.values().cloned().collect();
    let (closed, open) = (&sevs["statements"], &sevs["transfers"]);
    until_states(
        &run,
        &ids,
        "hook",
        "both openings to be held",
        &[("held", &["opened", "opened"])],
    )
    .await;
    let (status, disabled) = run.get("/api/v1/endpoints/disabled").await;
    assert_eq!(status, 200, "{disabled}");
    let items = disabled["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{disabled:#}");
    assert_eq!(items[0]["name"], "hook");
    assert_eq!(items[0]["in_catalog"], true, "{disabled:#}");
    assert!(str_of(&items[0], "reason").contains("410"), "{disabled:#}");
    assert!(
        !disabled.to_string().contains(&receiver.base),
        "the list never shows the URL: {disabled}"
    );

    let listed = run.cli(&["endpoint", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.starts_with("hook\tdisabled ") && listed.contains("\tin the catalog\t"),
        "the CLI lists it too: {listed:?}"
    );

    // The channel leaves the catalog: still listed (added back at the same URL, it is still
    // gone), but marked as no longer in the catalog; back in the catalog, marked again.
    let url = receiver.url("/hook");
    let without = catalog(
        &[("renamed", signed_webhook(&url, &[OLD_SECRET]))],
        &["renamed"],
    );
    run.replace_catalog(without).await;
    let (_, disabled) = run.get("/api/v1/endpoints/disabled").await;
    assert_eq!(disabled["items"][0]["name"], "hook", "{disabled:#}");
    assert_eq!(disabled["items"][0]["in_catalog"], false, "{disabled:#}");
    let listed = run.cli(&["endpoint", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("\tnot in the catalog\t"), "{listed:?}");
    run.replace_catalog(one_webhook(&url, &[OLD_SECRET])).await;
    let (_, disabled) = run.get("/api/v1/endpoints/disabled").await;
    assert_eq!(disabled["items"][0]["in_catalog"], true, "{disabled:#}");

    // One SEV is resolved while its receiver is gone; the other stays open.
    run.act(closed, "resolve", None).await;
    let rows = until_states(
        &run,
        &ids,
        "hook",
        "the resolution to queue",
        &[("held", &["opened", "opened"]), ("pending", &["resolved"])],
    )
    .await;
    let unsent = rows
        .values()
        .filter(|n| n["state"] == "held" || n["state"] == "pending")
        .count();
    let (_, disabled) = run.get("/api/v1/endpoints/disabled").await;
    assert_eq!(disabled["items"][0]["waiting"], unsent, "{disabled:#}");
    let listed = run.cli(&["endpoint", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(&format!("\t{unsent} waiting\t")),
        "{listed:?}"
    );

    // The receiver is back, and an admin enables it.
    receiver.answer_as(Behaviour::Healthy);
    let before = receiver.arrivals().len();
    let (status, answer) = run.post("/api/v1/endpoints/hook/enable", None).await;
    assert_eq!(status, 204, "{answer}");
    let again = run.cli(&["endpoint", "enable", "hook"]);
    assert!(!again.status.success(), "the CLI says it is not disabled");
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("endpoint hook is not disabled"), "{said}");
    let (status, answer) = run.post("/api/v1/endpoints/hook/enable", None).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("not_found")),
        "enabling twice: {answer}"
    );

    // It never heard of the resolved SEV, which is not raised there; the open one is told.
    let rows = endpoint_state(
        &run,
        &ids,
        "hook",
        "what was missed to be settled",
        |rows| {
            rows.values().all(|n| {
                let expected = if n["sev_id"] == closed.as_str() {
                    "superseded"
                } else {
                    "delivered"
                };
                n["state"] == expected
            })
        },
    )
    .await;
    for n in rows.values().filter(|n| n["sev_id"] == closed.as_str()) {
        let why = str_of(n, "last_error");
        assert!(why.contains("before the receiver heard of it"), "{n:#}");
    }
    let told = &receiver.arrivals()[before..];
    let open_rows: BTreeSet<String> = rows
        .iter()
        .filter(|(_, n)| n["sev_id"] == open.as_str())
        .map(|(id, _)| id.clone())
        .collect();
    let told_keys: BTreeSet<String> = told.iter().map(Arrival::key).collect();
    assert_eq!(told_keys, open_rows, "only the open SEV is raised");
    assert_eq!(types_in_order(told), ["sev.opened"]);
}

// ---------------------------------------------------------------------------------------------
// A receiver that hangs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_hangs_holds_up_no_other_channel() {
    let hung = Capture::start(Behaviour::Hang).await;
    let fine = Capture::start(Behaviour::Healthy).await;
    let products = ["cards", "transfers", "login", "statements"];
    // The hung channel is listed first, so its notification of each SEV is queued first.
    let run = start(
        catalog(
            &[
                ("hung", signed_webhook(&hung.url("/hook"), &[OLD_SECRET])),
                ("fine", signed_webhook(&fine.url("/hook"), &[OLD_SECRET])),
            ],
            &["hung", "fine"],
        ),
        &products,
    )
    .await;
    let ids = run.sev_ids(&products).await;
    let notifications = eventually(
        "the healthy channel to hear every opening, and a hung request to time out",
        Duration::from_secs(60),
        || async {
            let mut rows = Vec::new();
            for id in &ids {
                let sev = run.sev(id).await;
                rows.extend(sev["notifications"].as_array()?.iter().cloned());
            }
            let timed_out = rows
                .iter()
                .any(|n| n["endpoint"] == "hung" && n["attempts"].as_i64() >= Some(1));
            let heard = rows
                .iter()
                .filter(|n| n["endpoint"] == "fine" && n["kind"] == "opened")
                .filter(|n| n["state"] == "delivered")
                .count();
            (timed_out && heard == ids.len()).then_some(rows)
        },
    )
    .await;
    // sevloop waits 10 s for an answer: delivered one after another, the healthy channel's
    // notifications would each wait for a hung request (10 s) before them.
    for n in notifications.iter().filter(|n| n["endpoint"] == "fine") {
        let queued = chrono::DateTime::parse_from_rfc3339(str_of(n, "created_at")).expect("time");
        let delivered =
            chrono::DateTime::parse_from_rfc3339(str_of(n, "delivered_at")).expect("time");
        assert!(
            delivered - queued < chrono::Duration::seconds(9),
            "{} to the healthy channel took {:?} from queued to delivered",
            str_of(n, "id"),
            delivered - queued
        );
    }
    let hung_rows: Vec<&Value> = notifications
        .iter()
        .filter(|n| n["endpoint"] == "hung")
        .collect();
    assert!(
        hung_rows.iter().any(|n| n["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("request failed")),
        "the hung requests failed by timing out: {hung_rows:#?}"
    );
    assert!(
        hung_rows.iter().all(|n| n["state"] == "pending"),
        "and are retried: {hung_rows:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Thin notices

/// Runs of `n` consecutive words of `text`, lowercased.
fn shingles(text: &str, n: usize) -> Vec<String> {
    let words: Vec<String> = text.split_whitespace().map(|w| w.to_lowercase()).collect();
    words.windows(n).map(|w| w.join(" ")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_notification_body_on_any_channel_contains_ticket_subject_or_body_text() {
    let receiver = Capture::start(Behaviour::Healthy).await;
    let channels = [
        (
            "hook",
            signed_webhook(&receiver.url("/hook"), &[OLD_SECRET]),
        ),
        ("pd", pagerduty_channel(&receiver.url("/pd"))),
        ("am", alertmanager_channel(&receiver.url("/am"))),
        ("chat", slack_channel(&receiver.url("/slack"))),
    ];
    let products = ["cards", "transfers"];
    let run = start(catalog(&channels, &["hook", "pd", "am", "chat"]), &products).await;
    let sevs = run.sevs(&products).await;
    run.act(&sevs["cards"], "acknowledge", None).await;
    run.act(&sevs["cards"], "resolve", None).await;
    run.act(
        &sevs["transfers"],
        "decline",
        Some(json!({"reason": "a known bank holiday delay, not an incident"})),
    )
    .await;
    let ids: Vec<String> = sevs.values().cloned().collect();
    let all = run.settled(&ids, Duration::from_secs(60)).await;
    assert_all_delivered(&all);

    let arrivals = receiver.arrivals();
    let paths: BTreeSet<&str> = arrivals.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(
        paths,
        BTreeSet::from(["/am", "/hook", "/pd", "/slack"]),
        "every channel kind was told"
    );
    let bodies: Vec<String> = arrivals.iter().map(|a| a.text().to_lowercase()).collect();
    let mut needles = BTreeSet::new();
    for t in &run.tickets {
        let (subject, body) = (str_of(t, "subject"), str_of(t, "body"));
        needles.insert(subject.to_lowercase());
        needles.insert(body.to_lowercase());
        needles.extend(shingles(subject, 4));
        needles.extend(shingles(body, 4));
        // The word only this ticket has.
        let marker = body
            .split("buying a ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("every ticket has its made-up word");
        needles.insert(marker.to_string());
    }
    let mut leaks = Vec::new();
    for (a, body) in arrivals.iter().zip(&bodies) {
        for needle in &needles {
            if body.contains(needle.as_str()) {
                leaks.push(format!("{} {}: {needle:?}", a.path, a.key()));
            }
        }
    }
    eprintln!(
        "searched {} notification bodies for {} pieces of ticket text",
        bodies.len(),
        needles.len()
    );
    assert!(leaks.is_empty(), "ticket text in notifications: {leaks:#?}");
}

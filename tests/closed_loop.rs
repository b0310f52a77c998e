//! The closed loop, end to end through the real binary (Kafka + PostgreSQL): what sevloop tells
//! the world once a SEV opens (the SEV events topic, the helpdesk write-back, escalation of a
//! SEV nobody acknowledged) and how people's actions come back into it (reroute, resolve, a
//! regression that reopens the SEV with the team it was rerouted to).
//!
//! Each test has its own topics, database, port and receivers. Detection settings are explicit
//! and the bursts far above them: every product has two hours of quiet background first (its
//! warmup is one hour), then a new complaint from 20 customers within 10 minutes, which the
//! cold start fires on at about its 10th customer.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use common::complaints::*;
use common::sevs::*;
use common::topics::{Record, TopicReader};
use common::*;
use serde_json::{json, Value};

/// The quiet background of `product` in [from, to): four of the background complaints.
fn quiet(product: &str, from: i64, to: i64) -> Vec<Value> {
    background_of(product, &BACKGROUND[..4], from, to)
}

/// A new complaint: 20 tickets of `complaint` from 20 customers within ten minutes from `start`.
/// Ids are `<product>-<tag>-<i>`, customers `acct-<product>-<tag>-<i>`.
fn burst20(product: &str, tag: &str, complaint: &Complaint, start: i64) -> Vec<Value> {
    let prefix = format!("{product}-{tag}");
    burst_of(product, &prefix, complaint, 20, start, "pro", |i| {
        format!("acct-{prefix}-{i}")
    })
}

/// `tickets` as tickets of the helpdesk: `ZD-<number>`, numbered from `first`.
fn from_helpdesk(first: usize, mut tickets: Vec<Value>) -> Vec<Value> {
    for (i, t) in tickets.iter_mut().enumerate() {
        t["ticket_id"] = json!(format!("ZD-{}", first + i));
    }
    tickets
}

/// One sevloop under test (explicit detection settings, see the module comment), its topics
/// and a directory for the files it replays.
struct Loop {
    sevloop: Sevloop,
    topic: String,
    events_topic: String,
    dir: tempfile::TempDir,
    _config: Config,
}

impl Deref for Loop {
    type Target = Sevloop;

    fn deref(&self) -> &Sevloop {
        &self.sevloop
    }
}

impl Loop {
    async fn start(catalog: String) -> Loop {
        let topic = fresh_topics("sevloop.loop", 1).await;
        let events_topic = fresh_sev_events_topic(&topic).await;
        let mut config = Config::for_topic(&topic).await;
        config.catalog = Some(catalog);
        config.extra = detection_settings(2.0) + &sev_events_settings(&events_topic);
        Loop {
            sevloop: Sevloop::serve_healthy(&config).await,
            topic,
            events_topic,
            dir: tempfile::tempdir().expect("temp dir"),
            _config: config,
        }
    }

    /// Replays `tickets` in event-time order; returns them in that order.
    fn replay(&self, name: &str, tickets: Vec<Value>) -> Vec<Value> {
        let tickets = by_event_time(tickets);
        replay_into(&self.topic, self.dir.path(), name, &to_lines(&tickets));
        tickets
    }

    /// Replays `tickets` and waits until the pipeline processed them.
    async fn feed(&self, name: &str, tickets: Vec<Value>) {
        let tickets = self.replay(name, tickets);
        wait_processed(self, &tickets, Duration::from_secs(90)).await;
    }

    /// The one SEV of `product`, which links exactly the tickets of `burst`; returns its id and
    /// the linked tickets.
    async fn sev_of_burst(&self, product: &str, burst: &[Value]) -> (String, BTreeSet<String>) {
        let sev = self.only_sev_of(product).await;
        let sev_id = str_of(&sev, "id").to_string();
        let linked = linked_ids(&sev);
        assert_eq!(
            linked,
            ids(burst).into_iter().collect::<BTreeSet<_>>(),
            "every burst ticket, and nothing else, is linked to {sev_id}"
        );
        (sev_id, linked)
    }

    /// The one SEV of `product` (the test fails if there are none or several).
    async fn only_sev_of(&self, product: &str) -> Value {
        let sevs = self.sevs_of(product).await;
        assert_eq!(sevs.len(), 1, "exactly one SEV for {product}: {sevs:#?}");
        self.sev(sevs[0]["id"].as_str().unwrap_or_default()).await
    }
}

fn seconds_between(from: &Value, to: &Value) -> Option<f64> {
    let parse = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str()?).ok();
    Some((parse(to)? - parse(from)?).num_milliseconds() as f64 / 1000.0)
}

/// A catalog where every SEV goes to `triage`, without channels.
fn plain_catalog() -> String {
    "default_team = \"triage\"\n[teams.triage]\n".to_string()
}

/// Events by event_id (delivery is at least once), in the order first seen.
fn deduplicated(events: &[Record]) -> Vec<Record> {
    let mut seen = BTreeSet::new();
    events
        .iter()
        .filter(|e| seen.insert(e.value["event_id"].as_str().unwrap_or_default().to_string()))
        .cloned()
        .collect()
}

fn of_type<'a>(events: &'a [Record], kind: &str) -> Vec<&'a Record> {
    events.iter().filter(|e| e.value["type"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sev_change_and_every_linked_ticket_is_published_to_the_sev_events_topic() {
    let started = Instant::now();
    let lp = Loop::start(plain_catalog()).await;
    let mut reader = TopicReader::from_start(&lp.events_topic);

    let mut tickets = quiet("sync", 0, 2 * HOUR + 30 * MINUTE);
    let burst = burst20("sync", "burst", &CHECKOUT, 2 * HOUR);
    tickets.extend(burst.iter().cloned());
    lp.feed("tickets.jsonl", tickets.clone()).await;

    let (sev_id, linked) = lp.sev_of_burst("sync", &burst).await;
    lp.act(&sev_id, "acknowledge", None).await;
    lp.act(&sev_id, "resolve", None).await;

    reader
        .read_until(
            Duration::from_secs(60),
            "sev.opened, a sev.ticket_linked per linked ticket, sev.acknowledged and sev.resolved",
            |events| {
                let events = deduplicated(events);
                let linked_now: BTreeSet<String> = of_type(&events, "sev.ticket_linked")
                    .iter()
                    .filter_map(|e| e.value["ticket_id"].as_str().map(str::to_string))
                    .collect();
                ["sev.opened", "sev.acknowledged", "sev.resolved"]
                    .iter()
                    .all(|kind| !of_type(&events, kind).is_empty())
                    && linked_now == linked
            },
        )
        .await;
    // Anything still in flight (a redelivery, a late duplicate) is read too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    reader.read_until_quiet(Duration::from_millis(500)).await;
    let events = reader.read;

    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/sev-event.v1.json"),
        )
        .expect("schema file"),
    )
    .expect("schema is JSON");
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles");
    for e in &events {
        let errors: Vec<String> = validator
            .iter_errors(&e.value)
            .map(|err| format!("{err} at {}", err.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "a SEV event violates sev-event.v1: {errors:?}\n{}",
            e.payload
        );
        assert_eq!(
            e.key, sev_id,
            "the message key is the SEV id: {}",
            e.payload
        );
        assert_eq!(e.value["sev_id"], json!(sev_id), "{}", e.payload);
        for t in &tickets {
            for field in ["subject", "body"] {
                let text = t[field].as_str().unwrap_or_default();
                assert!(
                    !e.payload.contains(text),
                    "a SEV event carries ticket {field} text {text:?}: {}",
                    e.payload
                );
            }
            let customer = t["customer"]["id"].as_str().unwrap_or_default();
            assert!(
                !e.payload.contains(customer),
                "a SEV event carries customer id {customer:?}: {}",
                e.payload
            );
        }
    }

    let unique_events = deduplicated(&events);
    let opened = of_type(&unique_events, "sev.opened");
    assert_eq!(opened.len(), 1, "one sev.opened: {opened:#?}");
    assert_eq!(opened[0].value["sev"]["state"], "open");
    let links = of_type(&unique_events, "sev.ticket_linked");
    let mut per_ticket: BTreeMap<String, usize> = BTreeMap::new();
    for e in &links {
        *per_ticket
            .entry(
                e.value["ticket_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
            .or_default() += 1;
    }
    assert_eq!(
        per_ticket.keys().cloned().collect::<BTreeSet<_>>(),
        linked,
        "one sev.ticket_linked for each linked ticket"
    );
    assert!(
        per_ticket.values().all(|n| *n == 1),
        "each ticket is linked by exactly one event: {per_ticket:?}"
    );
    let acknowledged = of_type(&unique_events, "sev.acknowledged");
    assert_eq!(acknowledged.len(), 1, "{acknowledged:#?}");
    assert_eq!(acknowledged[0].value["sev"]["state"], "acknowledged");
    let resolved = of_type(&unique_events, "sev.resolved");
    assert_eq!(resolved.len(), 1, "{resolved:#?}");
    assert_eq!(resolved[0].value["sev"]["state"], "resolved");
    eprintln!(
        "{} events ({} unique) in {:?}",
        events.len(),
        unique_events.len(),
        started.elapsed()
    );
}

/// What the helpdesk stand-in saw: one entry per request.
#[derive(Debug, Clone)]
struct Put {
    ticket: String,
    key: Option<String>,
    authorization: Option<String>,
    body: Value,
    answered: u16,
}

#[derive(Default)]
struct HelpdeskState {
    requests: Vec<Put>,
    /// Tickets whose first request was answered 503.
    failed_once: BTreeSet<String>,
    /// Updates applied to each ticket, each idempotency key once.
    applied: BTreeMap<String, Vec<Value>>,
    applied_keys: BTreeSet<String>,
    /// Tickets archived since: answered 410 Gone.
    archived: BTreeSet<String>,
}

/// A Zendesk-like helpdesk on loopback: `PUT /api/v2/tickets/{id}.json` updates a ticket. The
/// first request for each ticket fails with 503; later ones apply the update once per
/// idempotency key and answer 200 with the ticket, or 410 once the ticket is archived.
#[derive(Clone, Default)]
struct Helpdesk(Arc<Mutex<HelpdeskState>>);

impl Helpdesk {
    async fn start() -> (Helpdesk, String) {
        let helpdesk = Helpdesk::default();
        let app = axum::Router::new()
            .route("/api/v2/tickets/{file}", axum::routing::put(update_ticket))
            .with_state(helpdesk.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind helpdesk");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (helpdesk, url)
    }

    fn state<T>(&self, f: impl FnOnce(&HelpdeskState) -> T) -> T {
        f(&self.0.lock().expect("lock"))
    }

    /// Waits until each of `tickets` has at least `n` updates applied.
    async fn wait_for_notes(&self, what: &str, tickets: &BTreeSet<String>, n: usize) {
        eventually(what, Duration::from_secs(30), || async {
            self.state(|s| {
                tickets
                    .iter()
                    .all(|t| s.applied.get(t).is_some_and(|a| a.len() >= n))
            })
            .then_some(())
        })
        .await;
    }
}

async fn update_ticket(
    State(helpdesk): State<Helpdesk>,
    Path(file): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let Some(ticket) = file.strip_suffix(".json").map(str::to_string) else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "RecordNotFound"})),
        );
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let key = header("idempotency-key");
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut state = helpdesk.0.lock().expect("lock");
    let (status, answer) = if state.archived.contains(&ticket) {
        (StatusCode::GONE, json!({"error": "RecordArchived"}))
    } else if state.failed_once.insert(ticket.clone()) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "temporarily unavailable"}),
        )
    } else if parsed["ticket"].is_object() {
        if let Some(k) = &key {
            if state.applied_keys.insert(k.clone()) {
                state
                    .applied
                    .entry(ticket.clone())
                    .or_default()
                    .push(parsed.clone());
            }
        }
        let tags = parsed["ticket"]["additional_tags"].clone();
        (
            StatusCode::OK,
            json!({"ticket": {"id": ticket.parse::<u64>().ok(), "tags": tags}}),
        )
    } else {
        (StatusCode::BAD_REQUEST, json!({"error": "InvalidBody"}))
    };
    state.requests.push(Put {
        ticket,
        key,
        authorization: header("authorization"),
        body: parsed,
        answered: status.as_u16(),
    });
    (status, axum::Json(answer))
}

fn tags(update: &Value, field: &str) -> Vec<String> {
    serde_json::from_value(update["ticket"][field].clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_linked_ticket_gets_one_private_note_on_open_and_one_on_resolve_despite_failures() {
    let started = Instant::now();
    let (helpdesk, url) = Helpdesk::start().await;
    let authorization = "Basic c3VwcG9ydEBleGFtcGxlLmNvbS90b2tlbjpzZWNyZXQ=";
    let catalog = format!(
        "default_team = \"triage\"\n[teams.triage]\n\
         [helpdesk]\nurl = {url:?}\nauthorization = {authorization:?}\nid_prefix = \"ZD-\"\n"
    );
    let lp = Loop::start(catalog).await;
    // Every ticket of the product comes from the helpdesk.
    let mut tickets = from_helpdesk(9000, quiet("shop", 0, 2 * HOUR + 30 * MINUTE));
    let burst = from_helpdesk(1001, burst20("shop", "burst", &CHECKOUT, 2 * HOUR));
    tickets.extend(burst.iter().cloned());
    lp.feed("tickets.jsonl", tickets).await;

    let (sev_id, linked) = lp.sev_of_burst("shop", &burst).await;
    let helpdesk_ids: BTreeSet<String> = linked
        .iter()
        .map(|t| t.trim_start_matches("ZD-").to_string())
        .collect();
    let sev_tag = format!("sevloop_{}", sev_id.to_lowercase().replace('-', "_"));

    // Open: a note on every linked ticket, applied after the first attempt failed.
    helpdesk
        .wait_for_notes("a note on every linked helpdesk ticket", &helpdesk_ids, 1)
        .await;
    let (requests, applied) = helpdesk.state(|s| (s.requests.clone(), s.applied.clone()));
    let strangers: Vec<&String> = requests
        .iter()
        .map(|r| &r.ticket)
        .filter(|t| !helpdesk_ids.contains(*t))
        .collect();
    assert!(
        strangers.is_empty(),
        "only linked tickets are written back: {strangers:?}"
    );
    for r in &requests {
        assert_eq!(
            r.authorization.as_deref(),
            Some(authorization),
            "the catalog's authorization header is sent: {r:?}"
        );
        assert!(
            r.key.as_deref().is_some_and(|k| !k.is_empty()),
            "every write-back has an idempotency key: {r:?}"
        );
        assert!(
            r.body["ticket"]["comment"]["body"].is_string(),
            "every write-back is a ticket update with a comment: {r:?}"
        );
    }
    for t in &helpdesk_ids {
        let mine: Vec<&Put> = requests.iter().filter(|r| &r.ticket == t).collect();
        assert_eq!(
            mine.first().map(|r| r.answered),
            Some(503),
            "the first write-back of {t} was refused: {mine:#?}"
        );
        assert!(
            mine.iter()
                .any(|r| r.answered == 200 && r.key == mine[0].key),
            "the refused write-back of {t} was retried with the same idempotency key: {mine:#?}"
        );
        let note = &applied[t][0];
        assert_eq!(
            note["ticket"]["comment"]["public"],
            json!(false),
            "an internal note: {note}"
        );
        let text = note["ticket"]["comment"]["body"]
            .as_str()
            .unwrap_or_default();
        assert!(text.contains(&sev_id), "the note names {sev_id}: {text}");
        let added = tags(note, "additional_tags");
        assert!(
            added.contains(&sev_tag) && added.contains(&"sevloop_open".to_string()),
            "tags {sev_tag} and sevloop_open: {note}"
        );
    }

    // One ticket is archived meanwhile: the helpdesk answers 410 for it alone.
    let mut helpdesk_ids = helpdesk_ids;
    let archived = helpdesk_ids.pop_first().expect("a linked ticket");
    helpdesk
        .0
        .lock()
        .expect("lock")
        .archived
        .insert(archived.clone());

    // Resolve: a second note on every linked ticket.
    lp.act(&sev_id, "resolve", None).await;
    helpdesk
        .wait_for_notes(
            "a second note on every linked helpdesk ticket still there",
            &helpdesk_ids,
            2,
        )
        .await;
    // Give redeliveries a moment to show up: applied by key, they must change nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (requests, applied) = helpdesk.state(|s| (s.requests.clone(), s.applied.clone()));
    let gone: Vec<&Put> = requests
        .iter()
        .filter(|r| r.ticket == archived && r.answered == 410)
        .collect();
    assert_eq!(
        (gone.len(), applied[&archived].len()),
        (1, 1),
        "the archived ticket's resolve note was tried once and given up: {gone:#?}"
    );
    let disabled = lp.get_ok("/api/v1/endpoints/disabled").await;
    assert_eq!(
        disabled["items"],
        json!([]),
        "one ticket's 410 does not disable the helpdesk for every ticket"
    );
    for t in &helpdesk_ids {
        let notes = &applied[t];
        assert_eq!(
            notes.len(),
            2,
            "ticket {t} is updated exactly once per event (link, resolve): {notes:#?}"
        );
        let keys: BTreeSet<&str> = requests
            .iter()
            .filter(|r| &r.ticket == t)
            .filter_map(|r| r.key.as_deref())
            .collect();
        assert_eq!(
            keys.len(),
            2,
            "two events, two idempotency keys for ticket {t}: {keys:?}"
        );
        let resolved = &notes[1];
        assert_eq!(resolved["ticket"]["comment"]["public"], json!(false));
        let text = resolved["ticket"]["comment"]["body"]
            .as_str()
            .unwrap_or_default();
        assert!(
            text.contains(&sev_id) && text.contains("resolved"),
            "the second note says {sev_id} is resolved: {text}"
        );
        let added = tags(resolved, "additional_tags");
        assert!(
            added.contains(&sev_tag) && added.contains(&"sevloop_resolved".to_string()),
            "tags {sev_tag} and sevloop_resolved: {resolved}"
        );
        assert!(
            tags(resolved, "remove_tags").contains(&"sevloop_open".to_string()),
            "the open tag goes: {resolved}"
        );
    }
    let detail = lp.sev(&sev_id).await;
    let helpdesk_rows: Vec<&Value> = detail["notifications"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter(|r| r["endpoint"] == "sevloop:helpdesk")
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        helpdesk_rows.len(),
        2 * linked.len(),
        "the SEV lists one helpdesk notification per ticket and event: {helpdesk_rows:#?}"
    );
    let given_up: Vec<&&Value> = helpdesk_rows
        .iter()
        .filter(|r| r["state"] == "failed")
        .collect();
    assert_eq!(
        given_up.len(),
        1,
        "the archived ticket's note: {given_up:#?}"
    );
    assert!(
        given_up[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("410")),
        "{given_up:#?}"
    );
    eprintln!(
        "{} helpdesk requests for {} tickets in {:?}",
        requests.len(),
        helpdesk_ids.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sev_nobody_acknowledges_escalates_after_the_ack_timeout_and_an_acknowledged_one_does_not(
) {
    let started = Instant::now();
    let storage = Receiver::start().await;
    let books = Receiver::start().await;
    let leads = Receiver::start().await;
    // `storage` has 3 s to acknowledge; `books` 8 s (its SEV is acknowledged at once, well
    // inside that). Both escalate to `leads`.
    let catalog = format!(
        "default_team = \"triage\"\n[teams.triage]\n\
         [teams.storage]\nchannels = [\"storage-hook\"]\nack_timeout = \"3s\"\nescalate_to = \"leads\"\n\
         [teams.books]\nchannels = [\"books-hook\"]\nack_timeout = \"8s\"\nescalate_to = \"leads\"\n\
         [teams.leads]\nchannels = [\"leads-hook\"]\n{}{}{}\
         [[routes]]\nteam = \"storage\"\nproduct = \"vault\"\n\
         [[routes]]\nteam = \"books\"\nproduct = \"ledger\"\n",
        webhook_channel("storage-hook", &storage.url),
        webhook_channel("books-hook", &books.url),
        webhook_channel("leads-hook", &leads.url),
    );
    let lp = Loop::start(catalog).await;
    let mut tickets = quiet("vault", 0, 2 * HOUR + 30 * MINUTE);
    tickets.extend(quiet("ledger", 0, 2 * HOUR + 30 * MINUTE));
    tickets.extend(burst20("vault", "burst", &SCANNER, 2 * HOUR));
    tickets.extend(burst20("ledger", "burst", &REFUND, 2 * HOUR));
    lp.replay("tickets.jsonl", tickets);

    // The books SEV is acknowledged as soon as it is there.
    let ledger_id = eventually(
        "the ledger SEV to open",
        Duration::from_secs(90),
        || async {
            lp.sevs_of("ledger")
                .await
                .first()
                .and_then(|s| s["id"].as_str().map(str::to_string))
        },
    )
    .await;
    let ack = lp.act(&ledger_id, "acknowledge", None).await;
    assert_eq!(ack["sev"]["state"], "acknowledged", "{ack}");
    let vault = eventually("the vault SEV to open", Duration::from_secs(30), || async {
        lp.sevs_of("vault").await.first().cloned()
    })
    .await;
    let vault_id = vault["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(vault["team"], "storage", "{vault}");
    let vault_seen = Instant::now();

    // Nobody acknowledges the vault SEV: within ~15 s it is escalated to leads.
    let escalated = eventually(
        "the unacknowledged SEV to escalate",
        Duration::from_secs(15),
        || async {
            let sev = lp.sev(&vault_id).await;
            (!sev["escalated_at"].is_null()).then_some(sev)
        },
    )
    .await;
    eprintln!(
        "escalated {:?} after it was first seen",
        vault_seen.elapsed()
    );
    assert_eq!(escalated["escalated_to"], "leads", "{escalated:#}");
    assert_eq!(
        escalated["state"], "open",
        "escalation does not change the state"
    );
    let waited = seconds_between(&escalated["assigned_at"], &escalated["escalated_at"]);
    assert!(
        waited.is_some_and(|s| s >= 3.0),
        "escalated no earlier than the 3 s ack timeout, after {waited:?} s"
    );
    let timeline = escalated["timeline"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let entry = timeline.iter().find(|e| e["kind"] == "escalated");
    assert!(
        entry.is_some_and(
            |e| e["actor_role"] == "sevloop" && e["detail"].to_string().contains("leads")
        ),
        "the timeline says it escalated to leads: {timeline:#?}"
    );
    let notice = eventually(
        "the escalation target to be told",
        Duration::from_secs(15),
        || async {
            leads
                .bodies()
                .into_iter()
                .find(|b| b["type"] == "sev.escalated" && b["data"]["sev_id"] == json!(vault_id))
        },
    )
    .await;
    assert_eq!(notice["data"]["escalated_to"], "leads", "{notice:#}");
    assert!(
        storage
            .bodies()
            .iter()
            .any(|b| b["type"] == "sev.opened" && b["data"]["sev_id"] == json!(vault_id)),
        "the owning team was told when it opened: {:#?}",
        storage.bodies()
    );

    // The books SEV was acknowledged in time: past its 8 s and a sweep or two, it is not
    // escalated.
    let ledger = lp.sev(&ledger_id).await;
    let acked_after = seconds_between(&ledger["assigned_at"], &ledger["acknowledged_at"]);
    assert!(
        acked_after.is_some_and(|s| s < 8.0),
        "the ledger SEV was acknowledged inside its 8 s ack timeout (after {acked_after:?} s)"
    );
    let assigned =
        chrono::DateTime::parse_from_rfc3339(ledger["assigned_at"].as_str().unwrap_or_default())
            .expect("assigned_at is a time");
    let check_at = assigned + chrono::Duration::seconds(8 + 12);
    let wait = (check_at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait).await;
    let ledger = lp.sev(&ledger_id).await;
    assert!(
        ledger["escalated_at"].is_null() && ledger["escalated_to"].is_null(),
        "an acknowledged SEV is not escalated: {ledger:#}"
    );
    assert!(
        !timeline_kinds(&ledger).contains(&"escalated".to_string()),
        "{:?}",
        timeline_kinds(&ledger)
    );
    assert!(
        !leads
            .bodies()
            .iter()
            .any(|b| b["data"]["sev_id"] == json!(ledger_id)),
        "leads heard nothing of the acknowledged SEV: {:#?}",
        leads.bodies()
    );
    eprintln!("ack timeout test took {:?}", started.elapsed());
}

/// Reroutes the SEV of `product` from `payments` to `fraud` and checks the SEV and its timeline.
async fn reroute_to_fraud(lp: &Loop, product: &str) -> String {
    let sev = lp.only_sev_of(product).await;
    let sev_id = sev["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(sev["team"], "payments", "routed by product: {sev:#}");
    let rerouted = lp
        .act(
            &sev_id,
            "reroute",
            Some(json!({"team": "fraud", "note": "points drained by account takeover"})),
        )
        .await;
    assert_eq!(rerouted["sev"]["team"], "fraud", "{rerouted:#}");
    let sev = lp.sev(&sev_id).await;
    assert_eq!(
        (&sev["team"], &sev["state"]),
        (&json!("fraud"), &json!("open")),
        "{sev:#}"
    );
    let timeline = sev["timeline"].as_array().cloned().unwrap_or_default();
    let entry = timeline.iter().find(|e| e["kind"] == "rerouted");
    assert!(
        entry.is_some_and(|e| e["actor_role"] == "admin"
            && e["detail"]["from"] == "payments"
            && e["detail"]["to"] == "fraud"),
        "the timeline says who (by role) moved it from payments to fraud: {timeline:#?}"
    );
    sev_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerouted_sev_stays_with_its_new_team_when_the_complaint_comes_back() {
    let started = Instant::now();
    // Both products belong to payments by route; people reroute their SEVs to fraud.
    let payments = Receiver::start().await;
    let catalog = format!(
        "default_team = \"triage\"\n[teams.triage]\n[teams.fraud]\n\
         [teams.payments]\nchannels = [\"payments-hook\"]\n{}\
         [[routes]]\nteam = \"payments\"\nproduct = \"wallet\"\n\
         [[routes]]\nteam = \"payments\"\nproduct = \"rewards\"\n",
        webhook_channel("payments-hook", &payments.url)
    );
    let lp = Loop::start(catalog).await;
    let mut tickets = quiet("wallet", 0, 2 * HOUR + 30 * MINUTE);
    tickets.extend(quiet("rewards", 0, 2 * HOUR + 30 * MINUTE));
    tickets.extend(burst20("wallet", "a", &LOYALTY, 2 * HOUR));
    tickets.extend(burst20("rewards", "a", &CHECKOUT, 2 * HOUR));
    lp.feed("first.jsonl", tickets).await;

    // wallet: rerouted, then resolved. rewards: rerouted, then declined.
    let wallet_sev = reroute_to_fraud(&lp, "wallet").await;
    let resolved = lp.act(&wallet_sev, "resolve", None).await;
    assert_eq!(resolved["sev"]["state"], "resolved", "{resolved:#}");
    let rewards_sev = reroute_to_fraud(&lp, "rewards").await;
    let declined = lp
        .act(
            &rewards_sev,
            "decline",
            Some(json!({"reason": "expected while the promotion ends"})),
        )
        .await;
    assert_eq!(declined["sev"]["state"], "declined", "{declined:#}");
    // Payments was paged for both SEVs; the reroutes tell its channel they left it, so its
    // alerting tool closes what it raised.
    let heard = |sev: &str, kind: &str| {
        payments
            .bodies()
            .iter()
            .any(|b| b["type"] == kind && b["data"]["sev_id"] == json!(sev))
    };
    eventually(
        "payments to hear both SEVs left it",
        Duration::from_secs(30),
        || async {
            [&wallet_sev, &rewards_sev]
                .iter()
                .all(|s| heard(s, "sev.opened") && heard(s, "sev.rerouted_away"))
                .then_some(())
        },
    )
    .await;
    assert!(
        !heard(&wallet_sev, "sev.resolved"),
        "what fraud does after the reroute is fraud's to hear, not payments'"
    );

    // Five hours later in event time both complaints come back, each as a new episode.
    let mut later = quiet("wallet", 2 * HOUR + 30 * MINUTE, 7 * HOUR + 30 * MINUTE);
    later.extend(quiet(
        "rewards",
        2 * HOUR + 30 * MINUTE,
        7 * HOUR + 30 * MINUTE,
    ));
    let wallet_back = burst20("wallet", "b", &LOYALTY, 7 * HOUR);
    let rewards_back = burst20("rewards", "b", &CHECKOUT, 7 * HOUR);
    later.extend(wallet_back.iter().cloned());
    later.extend(rewards_back.iter().cloned());
    lp.feed("later.jsonl", later).await;

    // The resolved SEV is reopened (a regression), still with fraud.
    let sevs = lp.sevs_of("wallet").await;
    assert_eq!(
        sevs.iter().map(|s| s["id"].clone()).collect::<Vec<_>>(),
        vec![json!(wallet_sev)],
        "the resolved SEV is reopened, no second SEV: {sevs:#?}"
    );
    let sev = lp.sev(&wallet_sev).await;
    assert_eq!(
        (&sev["state"], &sev["reopened"], &sev["team"]),
        (&json!("open"), &json!(1), &json!("fraud")),
        "reopened with the team it was rerouted to: {sev:#}"
    );
    assert!(
        timeline_kinds(&sev).contains(&"reopened".to_string()),
        "{:?}",
        timeline_kinds(&sev)
    );
    let back = lp
        .get_ok(&format!("/api/v1/tickets/{}", ids(&wallet_back)[19]))
        .await;
    assert_eq!(
        (&back["sev_id"], &back["sev_team"], &back["sev_state"]),
        (&json!(wallet_sev), &json!("fraud"), &json!("open")),
        "a ticket of the comeback shows the SEV with its new team: {back:#}"
    );

    // The declined SEV stays declined; the comeback opens a new SEV, linked to it, with fraud
    // (the reroute stuck to the complaint's cluster), not with payments as the route says.
    let sevs = lp.sevs_of("rewards").await;
    let new: Vec<&Value> = sevs
        .iter()
        .filter(|s| s["id"] != json!(rewards_sev))
        .collect();
    assert_eq!(
        new.len(),
        1,
        "one new SEV after the declined one: {sevs:#?}"
    );
    let new = lp.sev(new[0]["id"].as_str().unwrap_or_default()).await;
    assert_eq!(
        (&new["team"], &new["state"], &new["previous_sev"]),
        (&json!("fraud"), &json!("open"), &json!(rewards_sev)),
        "the new SEV goes to the team the complaint was rerouted to: {new:#}"
    );
    assert_eq!(lp.sev(&rewards_sev).await["state"], "declined");
    eprintln!("reroute test took {:?}", started.elapsed());
}

//! Canary test for personal data: unique, made-up personal data (names, customer ids, emails,
//! phone numbers, card numbers, IBANs, IP addresses) is planted in the tickets of two bursts and
//! in invalid records, then the whole pipeline runs (Kafka + PostgreSQL, the real binary, debug
//! logs, a channel of every kind, the SEV events topic) and people decline and reroute SEVs with
//! personal data in what they type. Then every canary is searched for everywhere sevloop sends
//! or shows SEVs: notification bodies, log lines, the SEV API and pages, the SEV events topic
//! and the dead-letter reasons, and everything a leadership or team token can read (teams read
//! tickets and clusters with personal data removed). Support and admins see tickets as written,
//! by design, so their views are not searched.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::capture::{Behaviour, Capture, ROUTING_KEY, WEBHOOK_SECRET};
use common::sevs::*;
use common::topics::read_topic;
use common::words::{wordings, Rng};
use common::*;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Canaries

/// Made-up personal data, from the seeded sequence.
impl Rng {
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    /// `+44 7700 9ddddd`: an international number.
    fn international_phone(&mut self) -> String {
        format!("+44 7700 9{}", self.digits(5))
    }

    /// `07700 9ddddd`: a national number.
    fn national_phone(&mut self) -> String {
        format!("07700 9{}", self.digits(5))
    }

    /// A Luhn-valid 16-digit card number, in groups of four.
    fn card(&mut self) -> String {
        let mut digits: Vec<u32> = std::iter::once(4)
            .chain((0..14).map(|_| self.below(10) as u32))
            .collect();
        // The check digit goes last, so every second digit from the right of these is doubled.
        let doubled = |d: u32| if d * 2 > 9 { d * 2 - 9 } else { d * 2 };
        let sum: u32 = digits
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &d)| if i % 2 == 0 { doubled(d) } else { d })
            .sum();
        digits.push((10 - sum % 10) % 10);
        let s: String = digits
            .iter()
            .map(|d| char::from_digit(*d, 10).unwrap_or('0'))
            .collect();
        assert!(luhn(&s), "generated card {s} is Luhn-valid");
        group4(&s)
    }

    /// A valid (mod 97) British IBAN, in groups of four.
    fn iban(&mut self) -> String {
        let bank: String = (0..4)
            .map(|_| char::from(b'A' + self.below(26) as u8))
            .collect();
        let bban = format!("{bank}{}", self.digits(14));
        let check = 98 - mod97(&format!("{bban}GB00"));
        let iban = format!("GB{check:02}{bban}");
        assert_eq!(mod97(&format!("{}{}", &iban[4..], &iban[..4])), 1, "{iban}");
        group4(&iban)
    }

    fn ip(&mut self) -> String {
        format!(
            "81.{}.{}.{}",
            1 + self.below(254),
            1 + self.below(254),
            1 + self.below(254)
        )
    }
}

// `u32::is_multiple_of` needs Rust 1.87; the workspace promises 1.85.
#[allow(clippy::manual_is_multiple_of)]
fn luhn(s: &str) -> bool {
    let sum: u32 = s
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| match (i % 2, d * 2) {
            (0, _) => d,
            (_, x) if x > 9 => x - 9,
            (_, x) => x,
        })
        .sum();
    sum % 10 == 0
}

fn mod97(s: &str) -> u32 {
    s.chars().fold(0, |acc, c| {
        let v = c.to_digit(36).expect("alphanumeric");
        if v < 10 {
            (acc * 10 + v) % 97
        } else {
            (acc * 100 + v) % 97
        }
    })
}

fn group4(s: &str) -> String {
    s.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// One made-up customer and everything personal about them.
#[derive(Debug, Clone)]
struct Person {
    first: String,
    last: String,
    id: String,
    email: String,
    international: String,
    national: String,
    card: String,
    iban: String,
    ip: String,
}

impl Person {
    fn new(rng: &mut Rng) -> Self {
        let (first, last) = (rng.word(), rng.word());
        let domain = rng.word().to_lowercase();
        Person {
            id: format!("CU-{}{}", rng.digits(4), rng.word().to_uppercase()),
            email: format!(
                "{}.{}@{domain}.example",
                first.to_lowercase(),
                last.to_lowercase()
            ),
            international: rng.international_phone(),
            national: rng.national_phone(),
            card: rng.card(),
            iban: rng.iban(),
            ip: rng.ip(),
            first,
            last,
        }
    }

    fn name(&self) -> String {
        format!("{} {}", self.first, self.last)
    }
}

/// What is searched for, named for the report: each canary as written, lowercased (searches
/// are case-insensitive), and for numbers also as bare digits.
#[derive(Default)]
struct Canaries(Vec<(String, String)>);

impl Canaries {
    fn add(&mut self, what: impl Into<String>, value: &str) {
        let what = what.into();
        self.0.push((what.clone(), value.to_lowercase()));
        let digits: String = value.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= 9 && digits != value {
            self.0.push((format!("{what} (digits only)"), digits));
        }
        let compact: String = value.split_whitespace().collect();
        if value.contains(' ') && compact.chars().any(|c| c.is_ascii_alphabetic()) {
            self.0
                .push((format!("{what} (no spaces)"), compact.to_lowercase()));
        }
    }

    fn person(&mut self, who: &str, p: &Person) {
        self.add(format!("{who} first name"), &p.first);
        self.add(format!("{who} last name"), &p.last);
        self.add(format!("{who} customer id"), &p.id);
        self.add(format!("{who} email"), &p.email);
        self.add(format!("{who} international phone"), &p.international);
        self.add(format!("{who} national phone"), &p.national);
        self.add(format!("{who} card"), &p.card);
        self.add(format!("{who} IBAN"), &p.iban);
        self.add(format!("{who} IP address"), &p.ip);
    }

    /// Every canary found in `haystack`, as "what: needle".
    fn found_in(&self, haystack: &str) -> Vec<String> {
        let lower = haystack.to_lowercase();
        self.0
            .iter()
            .filter(|(_, needle)| lower.contains(needle.as_str()))
            .map(|(what, needle)| format!("{what} {needle:?}"))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Tickets

/// A burst of `tickets` tickets from `people` (the first few file twice), every ticket full of
/// its customer's personal data, in the customer fields and in the text.
fn burst(product: &str, people: &[Person], tickets: usize) -> Vec<Value> {
    let texts = wordings(product);
    (0..tickets)
        .map(|i| {
            let p = &people[i % people.len()];
            let text = texts[i % texts.len()];
            let body =
                match i % 3 {
                    0 => format!(
                    "{text}. This is {name} (customer {id}). The card {card} was refused; I pay \
                     from IBAN {iban}, logged in from {ip}. Call me on {intl} or write to {email}.",
                    name = p.name(), id = p.id, card = p.card, iban = p.iban, ip = p.ip,
                    intl = p.international, email = p.email
                ),
                    1 => format!(
                        "Hello, {first} here, account {id}. {text}. My phone: {national}, my \
                     email {email}. Card number {card}, IBAN {iban}, IP {ip}. Regards, {name}",
                        first = p.first,
                        id = p.id,
                        national = p.national,
                        email = p.email,
                        card = p.card,
                        iban = p.iban,
                        ip = p.ip,
                        name = p.name()
                    ),
                    _ => {
                        format!(
                    "{text}! {name}, {email}, {intl} / {national}. Tried card {card} and a \
                     transfer from {iban}; my IP address is {ip}. Customer number {id}.",
                    name = p.name(), email = p.email, intl = p.international,
                    national = p.national, card = p.card, iban = p.iban, ip = p.ip, id = p.id
                )
                    }
                };
            json!({
                "ticket_id": format!("{product}-{i}"),
                "event": "created",
                "event_time": at((600 * i as i64) / tickets as i64),
                "subject": format!("{text} - {}", p.name()),
                "body": body,
                "product": product,
                "customer": {"id": p.id, "tier": "pro", "name": p.name(), "email": p.email},
                "channel": "email",
                "source": "test",
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The test

/// Every channel kind, all told about every SEV, and the helpdesk write-back.
fn catalog(base: &str) -> String {
    format!(
        r#"default_team = "triage"
broadcast = ["hook", "pd", "chat", "am"]
[teams.triage]
[teams.payments]
[channels.hook]
kind = "webhook"
url = "{base}/hook"
secrets = ["{WEBHOOK_SECRET}"]
[channels.pd]
kind = "pagerduty"
url = "{base}/pd"
routing_key = "{ROUTING_KEY}"
[channels.chat]
kind = "slack"
url = "{base}/slack"
[channels.am]
kind = "alertmanager"
url = "{base}/am"
[helpdesk]
url = "{base}/helpdesk"
authorization = "Bearer canary-test-token"
"#
    )
}

/// Records a producer got wrong, each quoting personal data in the value the parser refuses.
fn invalid_records(p: &Person) -> Vec<Value> {
    let valid = burst("cards", std::slice::from_ref(p), 1).remove(0);
    let broken = |id: &str, change: &dyn Fn(&mut Value)| {
        let mut t = valid.clone();
        t["ticket_id"] = json!(id);
        change(&mut t);
        t
    };
    let card_digits: u64 = p
        .card
        .replace(' ', "")
        .parse()
        .expect("16 digits fit a u64");
    vec![
        // A string where the customer object belongs: its email.
        broken("bad-customer", &|t| t["customer"] = json!(p.email)),
        // Columns shifted in the producer: the customer's own name lands in the tier.
        broken("bad-tier-name", &|t| {
            t["customer"]["tier"] = json!(p.name())
        }),
        broken("bad-tier-phone", &|t| {
            t["customer"]["tier"] = json!(p.international)
        }),
        broken("bad-tags", &|t| t["tags"] = json!(p.iban)),
        broken("bad-email", &|t| {
            t["customer"]["email"] = json!(card_digits)
        }),
        broken("bad-event", &|t| t["event"] = json!(p.ip)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_planted_personal_data_leaks_into_notifications_logs_the_sev_api_sev_events_or_dead_letter_reasons(
) {
    // The canaries: customers of two bursts, what people type on SEVs, and a dead-letter customer.
    let mut rng = Rng(0x5e71_00ca_4a41_2024);
    let products = ["cards", "transfers"];
    let people: BTreeMap<&str, Vec<Person>> = products
        .iter()
        .map(|p| (*p, (0..12).map(|_| Person::new(&mut rng)).collect()))
        .collect();
    let mut canaries = Canaries::default();
    for (product, ps) in &people {
        for (i, p) in ps.iter().enumerate() {
            canaries.person(&format!("{product} customer {i}"), p);
        }
    }
    let reason_phone = rng.international_phone();
    let note_email = format!(
        "{}.{}@{}.example",
        rng.word().to_lowercase(),
        rng.word().to_lowercase(),
        rng.word().to_lowercase()
    );
    canaries.add("decline reason phone", &reason_phone);
    canaries.add("reroute note email", &note_email);
    let dead = Person::new(&mut rng);
    canaries.person("dead-letter customer", &dead);

    // Topics, receivers, settings.
    let topic = fresh_topics("sevloop.canary", 3).await;
    let events = fresh_sev_events_topic(&topic).await;
    let receiver = Capture::start(Behaviour::Healthy).await;
    let mut config = Config::for_topic(&topic).await;
    config.catalog = Some(catalog(&receiver.base));
    config.extra = no_warmup_settings(&events);

    // Tickets: one burst replayed into Kafka, invalid records produced straight to it, the
    // other burst posted to the API once it runs.
    let files = tempfile::tempdir().expect("temp dir");
    let cards = burst("cards", &people["cards"], 15);
    let transfers = burst("transfers", &people["transfers"], 15);
    replay_into(&topic, files.path(), "cards.jsonl", &to_lines(&cards));
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()
        .expect("a Kafka producer");
    let invalid = invalid_records(&dead);
    for record in &invalid {
        let payload = record.to_string();
        producer
            .send(
                FutureRecord::to(&topic).key("cards").payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("an invalid record is produced");
    }
    let log_path = files.path().join("sevloop.log");
    let mut sevloop = Sevloop::serve_logged(&config, &log_path);
    sevloop.wait_healthy().await;
    let (status, text) = sevloop
        .post("/api/v1/tickets", Some(json!(transfers)))
        .await;
    assert_eq!(status, 202, "the transfers burst is accepted: {text}");

    let valid = (cards.len() + transfers.len()) as i64;
    wait_for_tickets(&config.database_url, valid, Duration::from_secs(120)).await;
    let sevs =
        sev_ids_by_product(&wait_for_sevs(&sevloop, &products, Duration::from_secs(60)).await);

    // People act on the SEVs, typing personal data.
    // The customer's id and name are ones no pattern knows: only the SEV's own customers say
    // they are personal.
    let reason = format!(
        "I spoke to {} (customer {}) on {reason_phone}: their own bank blocks the card, not an \
         incident",
        people["cards"][0].name(),
        people["cards"][0].id
    );
    sevloop
        .act(&sevs["cards"], "decline", Some(json!({ "reason": reason })))
        .await;
    let note = format!("per {note_email}: settlement delays belong to payments");
    sevloop
        .act(
            &sevs["transfers"],
            "reroute",
            Some(json!({ "team": "payments", "note": note })),
        )
        .await;

    // Everything delivered: every channel, the helpdesk and the SEV events topic.
    let sev_ids: Vec<String> = sevs.values().cloned().collect();
    let notifications: Vec<Value> = settled(&sevloop, &sev_ids, Duration::from_secs(120))
        .await
        .into_values()
        .collect();
    let undelivered: Vec<&Value> = notifications
        .iter()
        .filter(|n| n["state"] != "delivered")
        .collect();
    assert!(undelivered.is_empty(), "undelivered: {undelivered:#?}");
    let endpoints: BTreeSet<&str> = notifications
        .iter()
        .map(|n| str_of(n, "endpoint"))
        .collect();
    for endpoint in [
        "hook",
        "pd",
        "chat",
        "am",
        "sevloop:helpdesk",
        "sevloop:sev-events",
    ] {
        assert!(
            endpoints.contains(endpoint),
            "{endpoint} was told: {endpoints:?}"
        );
    }

    // The places to search.
    let mut places: Vec<(String, String)> = Vec::new();
    for request in &receiver.arrivals() {
        let path = &request.path;
        let headers: String = request
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {}\n", v.to_str().unwrap_or_default()))
            .collect();
        places.push((
            format!("notification to {path}"),
            format!("{path}\n{headers}\n{}", request.text()),
        ));
    }
    let notification_count = places.len();
    let mut pages = vec![
        "/api/v1/sevs".to_string(),
        "/api/v1/sevs?state=declined".to_string(),
        "/api/v1/sevs?team=payments".to_string(),
        "/".to_string(),
        "/metrics".to_string(),
    ];
    for id in sevs.values() {
        pages.push(format!("/api/v1/sevs/{id}"));
        pages.push(format!("/sevs/{id}"));
    }
    // As the roles that must never see personal data: leadership (no ticket text at all) and a
    // team member (ticket text with personal data removed). Support and admins see tickets as
    // written, by design.
    let mut team_pages = pages.clone();
    for id in sevs.values() {
        let sev = sevloop.sev(id).await;
        team_pages.push(format!("/api/v1/clusters/{}", str_of(&sev, "cluster_id")));
        team_pages.push(format!("/clusters/{}", str_of(&sev, "cluster_id")));
        // Searching for the complaint finds its tickets; their subjects show redacted.
        let words: Vec<&str> = str_of(&sev, "title")
            .split(|c: char| !c.is_alphabetic())
            .filter(|w| w.len() > 2)
            .collect();
        team_pages.push(format!("/api/v1/search?q={}&limit=200", words.join("+")));
        team_pages.push(format!("/search?q={}", words.join("+")));
        for ticket in linked_ids(&sev) {
            team_pages.push(format!("/api/v1/tickets/{ticket}"));
            team_pages.push(format!("/tickets/{ticket}"));
        }
    }
    for (role, pages) in [
        (vec!["--role", "leadership"], &pages),
        (vec!["--role", "team", "--team", "payments"], &team_pages),
    ] {
        let client = client_with(&sevloop.token_for(&role));
        for page in pages {
            let answer = client
                .get(format!("{}{page}", sevloop.url))
                .send()
                .await
                .expect("sevloop answers");
            let status = answer.status();
            let text = answer.text().await.unwrap_or_default();
            assert_eq!(status, 200, "GET {page} as {role:?}: {text}");
            places.push((format!("GET {page} as {}", role[1]), text));
        }
    }
    let fetched = places.len() - notification_count;
    // Positive controls: redaction happened (rather than the text vanishing), and the ticket
    // API, which support uses, does hold the canaries, so the search below is not vacuous.
    let declined = sevloop.sev(&sevs["cards"]).await;
    assert!(
        str_of(&declined, "decline_reason").contains("[phone]"),
        "the decline reason is kept, redacted: {:?}",
        declined["decline_reason"]
    );
    let rerouted = sevloop.sev(&sevs["transfers"]).await;
    assert!(
        rerouted["timeline"].to_string().contains("[email]"),
        "the reroute note is kept, redacted: {:#}",
        rerouted["timeline"]
    );
    let ticket = sevloop.get_ok("/api/v1/tickets/cards-0").await;
    assert!(
        !canaries.found_in(&ticket.to_string()).is_empty(),
        "the ticket API shows the planted data to support: {ticket:#}"
    );
    // A name is no pattern, but a team member cannot look a customer's tickets up by it: what
    // gives it away is that it is the name of a customer of the tickets found. Support can.
    let by_name = format!(
        "/api/v1/search?q={}&limit=200",
        people["cards"][0].name().replace(' ', "+")
    );
    let team = client_with(&sevloop.token_for(&["--role", "team", "--team", "payments"]));
    let refused = team
        .get(format!("{}{by_name}", sevloop.url))
        .send()
        .await
        .expect("sevloop answers");
    assert_eq!(
        refused.status(),
        403,
        "a team searching by a customer's name"
    );
    let refused: Value = refused.json().await.unwrap_or_default();
    assert_eq!(refused["code"], "personal_data_search", "{refused}");
    let found = sevloop.get_ok(&by_name).await;
    assert!(
        found["total"].as_u64().is_some_and(|n| n > 0),
        "support finds the customer's tickets by name: {found}"
    );

    // The SEV events topic, until every event the outbox published is read.
    let published: BTreeSet<String> = notifications
        .iter()
        .filter(|n| n["endpoint"] == "sevloop:sev-events")
        .map(|n| str_of(n, "id").to_string())
        .collect();
    let messages = read_topic(&events, "the SEV events", |seen| {
        let ids: BTreeSet<String> = seen
            .iter()
            .map(|m| str_of(&m.value, "event_id").to_string())
            .collect();
        published.is_subset(&ids)
    })
    .await;
    for m in &messages {
        places.push((
            format!("SEV event {}", m.key),
            format!("{}\n{}\n{:?}", m.key, m.payload, m.headers),
        ));
    }
    // The dead letters' reasons.
    let dead_letters = read_topic(&config.dlq_topic, "the dead letters", |seen| {
        seen.len() >= invalid.len()
    })
    .await;
    let mut codes = BTreeSet::new();
    for dead in &dead_letters {
        codes.insert(dead.header("sevloop.error.code"));
        let reason = dead.header("sevloop.error.reason");
        assert!(
            !reason.is_empty(),
            "a dead letter without a reason: {:?}",
            dead.headers
        );
        eprintln!("dead-letter reason: {reason}");
        places.push(("dead-letter reason".to_string(), reason));
    }
    assert_eq!(
        codes,
        BTreeSet::from(["invalid_field".to_string()]),
        "every invalid record is refused field by field"
    );
    // Positive control: the parser did quote each bad value, and the reason shows `…` there.
    for (place, reason) in &places {
        if place == "dead-letter reason" {
            assert!(
                reason.contains("\"…\"") || reason.contains("`…`"),
                "a dead-letter reason without the value the parser quoted: {reason}"
            );
        }
    }
    let (topic_count, dead_count) = (messages.len(), dead_letters.len());

    // The logs, once the process has written its last line.
    sevloop.stop();
    let log = std::fs::read_to_string(&log_path).expect("the log file");
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("DEBUG")),
        "the logs are at debug level ({} lines)",
        lines.len()
    );
    for (i, line) in lines.iter().enumerate() {
        places.push((format!("log line {}", i + 1), line.to_string()));
    }

    let mut leaks = Vec::new();
    for (place, text) in &places {
        for found in canaries.found_in(text) {
            let excerpt: String = text.chars().take(400).collect();
            leaks.push(format!("{place}: {found}\n    {excerpt}"));
        }
    }
    eprintln!(
        "searched {} places for {} canaries: {notification_count} notification requests, {} API \
         responses and pages, {topic_count} SEV events, {dead_count} dead-letter reasons, {} log \
         lines; {} leaks",
        places.len(),
        canaries.0.len(),
        fetched,
        lines.len(),
        leaks.len()
    );
    assert!(
        leaks.is_empty(),
        "{} leaks of planted personal data:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

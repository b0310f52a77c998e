//! Canary test for personal data: unique, made-up personal data (names, customer ids, emails,
//! phone numbers, card numbers, IBANs, IP addresses) is planted in the tickets of two bursts and
//! in invalid records, then the whole pipeline runs (Kafka + PostgreSQL, the real binary, debug
//! logs, a channel of every kind, the SEV events topic) and people decline and reroute SEVs with
//! personal data in what they type. Then every canary is searched for everywhere sevloop sends
//! or shows SEVs: notification bodies, log lines, the SEV API and pages, the SEV events topic
//! and the dead-letter reasons. The ticket and cluster APIs, which support staff use and which
//! show ticket text by design, are not searched.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use common::*;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Canaries

/// splitmix64: a seeded, portable pseudo-random sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    /// A made-up, pronounceable word no dictionary has (capitalised).
    fn word(&mut self) -> String {
        const CONSONANTS: &[u8] = b"bdfgklmnprstvz";
        const VOWELS: &[u8] = b"aeiou";
        let mut w = String::new();
        for i in 0..4 {
            let c = CONSONANTS[self.below(CONSONANTS.len() as u64) as usize] as char;
            w.push(if i == 0 { c.to_ascii_uppercase() } else { c });
            w.push(VOWELS[self.below(VOWELS.len() as u64) as usize] as char);
        }
        w.push(['q', 'x', 'z'][self.below(3) as usize]);
        w
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

fn wordings(product: &str) -> [&'static str; 3] {
    match product {
        "cards" => [
            "My card payment is declined at checkout",
            "Card payment declined at checkout again",
            "checkout keeps declining my card payment",
        ],
        "transfers" => [
            "My bank transfer is stuck as pending",
            "Bank transfer still pending and stuck",
            "the transfer to my bank is stuck pending",
        ],
        other => panic!("no wordings for product {other}"),
    }
}

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
// Receivers and the process under test

/// Every request a receiver got: path, headers, body.
type Received = Arc<Mutex<Vec<(String, HeaderMap, Vec<u8>)>>>;

/// A receiver on loopback that answers 200 and records every request.
struct Capture {
    base: String,
    received: Received,
}

impl Capture {
    async fn start() -> Self {
        let received: Received = Arc::default();
        let app = axum::Router::new()
            .fallback(record)
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a receiver on loopback");
        let base = format!(
            "http://{}",
            listener.local_addr().expect("receiver address")
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Capture { base, received }
    }

    fn requests(&self) -> Vec<(String, HeaderMap, Vec<u8>)> {
        self.received.lock().expect("lock").clone()
    }
}

async fn record(
    State(received): State<Received>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    received
        .lock()
        .expect("lock")
        .push((uri.path().to_string(), headers, body.to_vec()));
    "ok"
}

/// `sevloop serve` with debug logs on stderr, written to a file; killed when dropped.
struct Logged {
    child: Child,
    url: String,
}

impl Logged {
    fn serve(config: &Config, log: &std::path::Path) -> Self {
        let path = config.write();
        let child = Command::new(BIN)
            .args(["serve", "--config", path.to_str().unwrap_or_default()])
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(File::create(log).expect("log file"))
            .spawn()
            .expect("sevloop binary starts");
        Logged {
            child,
            url: format!("http://127.0.0.1:{}", config.port),
        }
    }

    async fn get_text(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{}{path}", self.url))
            .await
            .expect("the API answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    async fn get(&self, path: &str) -> Value {
        let (status, text) = self.get_text(path).await;
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path} is not JSON ({e})"))
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .expect("the API answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// SIGTERM, then wait for an orderly exit (so every log line is written).
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `topic` from the start until `done` says enough; returns (key, payload, headers).
async fn read_topic(
    topic: &str,
    what: &str,
    mut done: impl FnMut(&[(String, String, Vec<(String, String)>)]) -> bool,
) -> Vec<(String, String, Vec<(String, String)>)> {
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", unique("canary-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a Kafka consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    while !done(&out) {
        let m = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{what}: nothing more on {topic} within a minute; got {}",
                    out.len()
                )
            })
            .expect("a message");
        let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), text(h.value)))
                    .collect()
            })
            .unwrap_or_default();
        out.push((text(m.key()), text(m.payload()), headers));
    }
    out
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The test

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// 32 characters, as PagerDuty requires of an integration key.
const ROUTING_KEY: &str = "R0UT1NGKEYsevloopE2Etest00000042";

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
secrets = ["{SECRET}"]
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
    let topic = unique("sevloop.canary");
    let dlq = format!("{topic}.dlq");
    let events = unique("sevloop.canary.sev-events");
    fresh_topic(&topic, 3).await;
    fresh_topic(&dlq, 1).await;
    fresh_topic(&events, 1).await;
    let receiver = Capture::start().await;
    let mut config = Config::kafka(&topic, &unique("group"), &fresh_database().await);
    config.catalog = Some(catalog(&receiver.base));
    config.extra = format!(
        "[detection.cold_start]\nwarmup = \"0s\"\n[notify]\nsev_events_topic = {events:?}\n"
    );

    // Tickets: one burst replayed into Kafka, invalid records produced straight to it, the
    // other burst posted to the API once it runs.
    let files = tempfile::tempdir().expect("temp dir");
    let cards = burst("cards", &people["cards"], 15);
    let transfers = burst("transfers", &people["transfers"], 15);
    let file = write_jsonl(files.path(), "cards.jsonl", &to_lines(&cards));
    replay(&file, &["--kafka", &kafka_brokers(), "--topic", &topic]);
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
    let mut sevloop = Logged::serve(&config, &log_path);
    eventually(
        "sevloop to answer /healthz",
        Duration::from_secs(60),
        || async {
            reqwest::get(format!("{}/healthz", sevloop.url))
                .await
                .ok()
                .filter(|r| r.status().is_success())
        },
    )
    .await;
    let (status, text) = sevloop.post("/api/v1/tickets", &json!(transfers)).await;
    assert_eq!(status, 202, "the transfers burst is accepted: {text}");

    let pool = connect(&config.database_url).await;
    let valid = (cards.len() + transfers.len()) as i64;
    eventually(
        &format!("{valid} tickets to be stored"),
        Duration::from_secs(120),
        || async { (scalar(&pool, "SELECT COUNT(*) FROM tickets").await >= valid).then_some(()) },
    )
    .await;
    pool.close().await;
    let sevs: BTreeMap<String, String> =
        eventually("a SEV for each burst", Duration::from_secs(60), || async {
            let list = sevloop.get("/api/v1/sevs").await;
            let found: BTreeMap<String, String> = list["items"]
                .as_array()?
                .iter()
                .map(|s| {
                    (
                        str_of(s, "product").to_string(),
                        str_of(s, "id").to_string(),
                    )
                })
                .collect();
            products
                .iter()
                .all(|p| found.contains_key(*p))
                .then_some(found)
        })
        .await;

    // People act on the SEVs, typing personal data.
    let reason = format!(
        "I spoke to the customer on {reason_phone}: their own bank blocks the card, not an incident"
    );
    let (status, text) = sevloop
        .post(
            &format!("/api/v1/sevs/{}/decline", sevs["cards"]),
            &json!({ "reason": reason }),
        )
        .await;
    assert_eq!(status, 200, "decline: {text}");
    let note = format!("per {note_email}: settlement delays belong to payments");
    let (status, text) = sevloop
        .post(
            &format!("/api/v1/sevs/{}/reroute", sevs["transfers"]),
            &json!({ "team": "payments", "note": note }),
        )
        .await;
    assert_eq!(status, 200, "reroute: {text}");

    // Everything delivered: every channel, the helpdesk and the SEV events topic.
    let notifications: Vec<Value> = eventually(
        "every notification to be delivered or given up",
        Duration::from_secs(120),
        || async {
            let mut all = Vec::new();
            for id in sevs.values() {
                let sev = sevloop.get(&format!("/api/v1/sevs/{id}")).await;
                for n in sev["notifications"].as_array()? {
                    if n["state"] == "pending" {
                        return None;
                    }
                    all.push(n.clone());
                }
            }
            Some(all)
        },
    )
    .await;
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
    let requests = receiver.requests();
    for (path, headers, body) in &requests {
        let headers: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {}\n", v.to_str().unwrap_or_default()))
            .collect();
        places.push((
            format!("notification to {path}"),
            format!("{path}\n{headers}\n{}", String::from_utf8_lossy(body)),
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
    for page in &pages {
        let (status, text) = sevloop.get_text(page).await;
        assert_eq!(status, 200, "GET {page}: {text}");
        places.push((format!("GET {page}"), text));
    }
    // Positive controls: redaction happened (rather than the text vanishing), and the ticket
    // API, which support uses, does hold the canaries, so the search below is not vacuous.
    let declined = sevloop
        .get(&format!("/api/v1/sevs/{}", sevs["cards"]))
        .await;
    assert!(
        str_of(&declined, "decline_reason").contains("[phone]"),
        "the decline reason is kept, redacted: {:?}",
        declined["decline_reason"]
    );
    let rerouted = sevloop
        .get(&format!("/api/v1/sevs/{}", sevs["transfers"]))
        .await;
    assert!(
        rerouted["timeline"].to_string().contains("[email]"),
        "the reroute note is kept, redacted: {:#}",
        rerouted["timeline"]
    );
    let ticket = sevloop.get("/api/v1/tickets/cards-0").await;
    assert!(
        !canaries.found_in(&ticket.to_string()).is_empty(),
        "the ticket API shows the planted data to support: {ticket:#}"
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
            .filter_map(|(_, payload, _)| {
                let v: Value = serde_json::from_str(payload).ok()?;
                Some(str_of(&v, "event_id").to_string())
            })
            .collect();
        published.is_subset(&ids)
    })
    .await;
    for (key, payload, headers) in &messages {
        places.push((
            format!("SEV event {key}"),
            format!("{key}\n{payload}\n{headers:?}"),
        ));
    }
    // The dead letters' reasons.
    let dead_letters =
        read_topic(&dlq, "the dead letters", |seen| seen.len() >= invalid.len()).await;
    let mut codes = BTreeSet::new();
    for (_, _, headers) in &dead_letters {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        codes.insert(header("sevloop.error.code"));
        let reason = header("sevloop.error.reason");
        assert!(
            !reason.is_empty(),
            "a dead letter without a reason: {headers:?}"
        );
        eprintln!("dead-letter reason: {reason}");
        places.push(("dead-letter reason".to_string(), reason));
    }
    assert_eq!(
        codes,
        BTreeSet::from(["invalid_field".to_string()]),
        "every invalid record is refused field by field"
    );
    // Positive control: the parser did quote the bad values, and the redactor replaced them.
    let reasons: String = places
        .iter()
        .filter(|(place, _)| place == "dead-letter reason")
        .map(|(_, reason)| reason.as_str())
        .collect();
    for placeholder in ["[email]", "[phone]", "[iban]", "[card]", "[ip]"] {
        assert!(
            reasons.contains(placeholder),
            "a dead-letter reason shows {placeholder} where the parser quoted the value"
        );
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
        pages.len(),
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

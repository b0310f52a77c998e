//! A receiver on loopback for notifications: it records every request, whatever its method and
//! path, and answers as its [`Behaviour`] says. Also what the tests' channels sign and route with.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// A Standard Webhooks signing secret.
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// 32 characters, as PagerDuty requires of an integration key.
pub const ROUTING_KEY: &str = "R0UT1NGKEYsevloopE2Etest00000042";

/// How a receiver answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Behaviour {
    /// 200 to everything.
    Healthy,
    /// The answers of [`FLAKY`], in turn; a key that failed three times is accepted.
    Flaky,
    /// 410 Gone to everything: "never call me again".
    Gone,
    /// 200 to everything, after taking its time (so changes queue up behind each delivery).
    Slow,
    /// Holds every request for [`HANG`], longer than sevloop waits for an answer.
    Hang,
}

/// How long a hanging receiver holds a request.
pub const HANG: Duration = Duration::from_secs(30);

/// One answer of a receiver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    Ok,
    /// 500 without applying the event.
    FailBeforeApplying,
    /// Applies the event, then answers 500 (it could not say so in time).
    FailAfterApplying,
    /// 429 with `Retry-After: 1`.
    TooManyRequests,
    Gone,
}

/// The flaky receiver's answers, request after request: 30% 500 (half of them after applying
/// the event), 10% 429, 60% 200. A counter pattern, so every run answers the same sequence.
#[rustfmt::skip]
const FLAKY: [Answer; 20] = {
    use Answer::*;
    [
        Ok, FailBeforeApplying, Ok, TooManyRequests, FailAfterApplying,
        Ok, Ok, FailBeforeApplying, Ok, FailAfterApplying,
        Ok, TooManyRequests, Ok, FailBeforeApplying, Ok,
        Ok, FailAfterApplying, Ok, Ok, Ok,
    ]
};

/// A key is accepted after this many failures, which bounds the test's runtime (the backoff
/// before a fourth attempt is already 1 + 2 + 4 s).
const MAX_FAILURES_PER_KEY: u32 = 3;

/// One request as it arrived, and what the receiver answered.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub answer: Answer,
}

impl Arrival {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The outbox row the request's idempotency key names (see [`row_of`]).
    pub fn key(&self) -> String {
        row_of(self.header("idempotency-key").unwrap_or_default()).to_string()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "a notification body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The outbox row an idempotency key names. Keys leave as `<installation>/<row id>`, and a fresh
/// database is always named (12 hex digits); a key of any other shape is kept whole, so it
/// names no row and the test that looks it up says so.
pub fn row_of(key: &str) -> &str {
    match key.split_once('/') {
        Some((installation, id)) if is_installation(installation) => id,
        _ => key,
    }
}

/// Whether `name` is a fresh installation's name: 12 hex digits.
pub fn is_installation(name: &str) -> bool {
    name.len() == 12 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What a receiver saw and did.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub arrivals: Vec<Arrival>,
    /// What it applied, once per idempotency key: key → body.
    pub applied: BTreeMap<String, Vec<u8>>,
    /// Requests whose key it had applied before (a retry of a delivery it applied but could
    /// not acknowledge): skipped, answered 200.
    pub duplicates: usize,
    failures: BTreeMap<String, u32>,
}

/// A receiver on loopback that records every request, whatever its method and path.
pub struct Capture {
    pub base: String,
    behaviour: Arc<Mutex<Behaviour>>,
    ledger: Arc<Mutex<Ledger>>,
}

type ReceiverState = (Arc<Mutex<Behaviour>>, Arc<Mutex<Ledger>>);

impl Capture {
    pub async fn start(behaviour: Behaviour) -> Self {
        let ledger: Arc<Mutex<Ledger>> = Arc::default();
        let behaviour = Arc::new(Mutex::new(behaviour));
        let app = axum::Router::new()
            .fallback(receive)
            .with_state((behaviour.clone(), ledger.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a receiver on loopback");
        let base = format!(
            "http://{}",
            listener.local_addr().expect("receiver address")
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Capture {
            base,
            behaviour,
            ledger,
        }
    }

    /// Answers as `behaviour` says from the next request on (a receiver that comes back).
    pub fn answer_as(&self, behaviour: Behaviour) {
        *self.behaviour.lock().expect("behaviour lock") = behaviour;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn ledger(&self) -> Ledger {
        self.ledger.lock().expect("ledger lock").clone()
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.ledger().arrivals
    }
}

async fn receive(
    State((behaviour, ledger)): State<ReceiverState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    let behaviour = *behaviour.lock().expect("behaviour lock");
    match behaviour {
        Behaviour::Slow => tokio::time::sleep(Duration::from_millis(400)).await,
        Behaviour::Hang => tokio::time::sleep(HANG).await,
        _ => {}
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(row_of)
        .unwrap_or_default()
        .to_string();
    let mut l = ledger.lock().expect("ledger lock");
    let answer = match behaviour {
        Behaviour::Healthy | Behaviour::Slow | Behaviour::Hang => Answer::Ok,
        Behaviour::Gone => Answer::Gone,
        Behaviour::Flaky if l.failures.get(&key).copied().unwrap_or(0) >= MAX_FAILURES_PER_KEY => {
            Answer::Ok
        }
        Behaviour::Flaky => FLAKY[l.arrivals.len() % FLAKY.len()],
    };
    if matches!(answer, Answer::Ok | Answer::FailAfterApplying) {
        if l.applied.contains_key(&key) {
            l.duplicates += 1;
        } else {
            l.applied.insert(key.clone(), body.to_vec());
        }
    }
    if answer != Answer::Ok {
        *l.failures.entry(key).or_default() += 1;
    }
    l.arrivals.push(Arrival {
        at: arrived,
        path: uri.path().to_string(),
        headers,
        body: body.to_vec(),
        answer,
    });
    drop(l);
    match answer {
        Answer::Ok => (StatusCode::OK, "ok").into_response(),
        Answer::FailBeforeApplying | Answer::FailAfterApplying => {
            (StatusCode::INTERNAL_SERVER_ERROR, "try again").into_response()
        }
        Answer::TooManyRequests => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "slow down",
        )
            .into_response(),
        Answer::Gone => (StatusCode::GONE, "gone").into_response(),
    }
}

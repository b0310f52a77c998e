//! An in-process sevloop API over a fresh SQLite store, index and embedded log in a temp dir,
//! and the few rows the dashboard tests need, written with the store's own functions.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use sevloop_bus::embedded::EmbeddedLog;
use sevloop_bus::LogWriter;
use sevloop_core::access::Role;
use sevloop_core::detect::Verdict;
use sevloop_core::redact::Redactor;
use sevloop_core::{ClusterCheckpoint, Escalation, TicketEvent};
use sevloop_http::{AppState, Intake, Metrics};
use sevloop_index::TicketIndex;
use sevloop_store::{Conn, NewSev, Store};
use tower::ServiceExt;

pub const TOPIC: &str = "sevloop.tickets.v1";

pub struct App {
    pub router: Router,
    pub state: AppState,
    pub log: EmbeddedLog,
    _dir: tempfile::TempDir,
}

pub async fn app() -> App {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = Store::connect(&url).await.expect("store");
    let index = TicketIndex::open(&dir.path().join("index")).expect("index");
    let log = EmbeddedLog::open(&dir.path().join("log")).expect("log");
    let state = AppState {
        store,
        index: Arc::new(index),
        intake: Some(Intake {
            writer: LogWriter::Embedded(log.clone()),
            topic: TOPIC.into(),
        }),
        metrics: Arc::new(Metrics::default()),
        redactor: Arc::new(Redactor::new()),
        catalog: None,
    };
    App {
        router: sevloop_http::router(state.clone()),
        state,
        log,
        _dir: dir,
    }
}

pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-03-04T09:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

/// A new token of `role`; returns its secret.
pub async fn token(store: &Store, role: Role) -> String {
    let (id, secret) = sevloop_http::auth::new_token();
    store
        .create_token(
            &id,
            &sevloop_http::auth::hash(&secret),
            &role,
            "test",
            Utc::now(),
        )
        .await
        .expect("token");
    secret
}

pub fn team(name: &str) -> Role {
    Role::Team { team: name.into() }
}

pub fn ticket(
    id: &str,
    product: &str,
    subject: &str,
    body: &str,
    customer: &str,
    at: DateTime<Utc>,
) -> TicketEvent {
    let json = serde_json::json!({
        "ticket_id": id, "event": "created", "event_time": at, "subject": subject, "body": body,
        "product": product, "customer": {"id": customer, "tier": "pro"}, "channel": "email",
        "source": "test",
    });
    TicketEvent::parse(json.to_string().as_bytes()).expect("ticket")
}

/// Stores a ticket in `cluster_id` (and nothing else: clustering is not under test).
pub async fn add_ticket(conn: &mut Conn, t: &TicketEvent, cluster_id: &str, offset: i64) {
    let assignment = sevloop_core::Assignment {
        cluster_id: cluster_id.into(),
        similarity: 0.8,
        matched_terms: vec!["card".into(), "declined".into()],
        new_cluster: false,
    };
    sevloop_store::insert_ticket(conn, t, &assignment, None, 0, offset)
        .await
        .expect("insert ticket");
}

/// A cluster checkpoint of `size` tickets with these exemplars and label terms.
pub fn checkpoint(
    product: &str,
    seq: u64,
    size: u64,
    exemplars: &[&str],
    label: &[&str],
    at: DateTime<Utc>,
) -> ClusterCheckpoint {
    let exemplars: Vec<_> = exemplars
        .iter()
        .map(|id| serde_json::json!({"ticket_id": id, "similarity": 0.9}))
        .collect();
    let json = serde_json::json!({
        "cluster": {"id": format!("{product}:{seq}"), "product": product, "seq": seq, "size": size,
            "centroid": {}, "surface": {}, "exemplars": exemplars, "first_seen": at, "last_seen": at},
        "detector": {"window": [], "episode": 1, "active": true},
        "label": label,
    });
    serde_json::from_value(json).expect("checkpoint")
}

/// Opens a SEV for `cluster_id` (`<product>:<n>`) and links `tickets` to it; returns its id.
pub async fn sev(
    conn: &mut Conn,
    n: u32,
    cluster_id: &str,
    title: &str,
    team: &str,
    tickets: &[String],
    at: DateTime<Utc>,
) -> String {
    let product = cluster_id.split(':').next().unwrap_or_default();
    let escalation = Escalation {
        id: format!("esc-{n}"),
        cluster_id: cluster_id.into(),
        rule: "floor".into(),
        episode: n,
        window_start: at - Duration::hours(1),
        fired_at: at,
        first_ticket_at: at - Duration::hours(1),
        ticket_count: tickets.len() as u64,
        distinct_customers: tickets.len() as u64,
        evidence: tickets.to_vec(),
        verdict: Verdict {
            tickets: tickets.len() as u64,
            customers: tickets.len() as u64,
            customer_weight: 1.0,
            expected: 0.5,
            p_value: 1e-6,
            span_minutes: 30.0,
            floor: true,
            ..Verdict::default()
        },
    };
    let new = NewSev {
        escalation: &escalation,
        title,
        team,
        product,
        created_at: Utc::now() - Duration::hours(2),
        previous_sev: None,
    };
    let id = sevloop_store::open_sev(conn, &new)
        .await
        .expect("open")
        .expect("new SEV");
    sevloop_store::link_tickets(conn, &id, tickets, at)
        .await
        .expect("link");
    sevloop_store::add_sev_event(
        conn,
        &id,
        "opened",
        "sevloop",
        at,
        &serde_json::json!({"rule": "floor"}),
    )
    .await
    .expect("event");
    id
}

/// An answer: status, Location (for redirects) and body.
pub struct Reply {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    pub content_type: String,
    pub body: String,
}

pub async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.expect("answer");
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (location, set_cookie) = (header(header::LOCATION), header(header::SET_COOKIE));
    let content_type = header(header::CONTENT_TYPE).unwrap_or_default();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    Reply {
        status,
        location,
        set_cookie,
        content_type,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub async fn get(router: &Router, path: &str, cookie: Option<&str>) -> Reply {
    let mut r = Request::get(path);
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    send(router, r.body(Body::empty()).expect("request")).await
}

pub async fn post_form(router: &Router, path: &str, cookie: &str, form: &str) -> Reply {
    let r = Request::post(path)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .expect("request");
    send(router, r).await
}

/// Logs in with a token's secret; returns the `Cookie` header value of the session.
pub async fn login(router: &Router, secret: &str) -> String {
    let form = format!(
        "token={}",
        form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
    );
    let r = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .expect("request");
    let reply = send(router, r).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let cookie = reply.set_cookie.expect("session cookie");
    cookie.split(';').next().expect("cookie").to_string()
}

/// The CSRF secret a page's forms carry.
pub fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf field")
        + 19;
    page[at..at + page[at..].find('"').expect("end")].to_string()
}

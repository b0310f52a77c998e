//! The dashboard in process: each page as each role, escaping, who is offered which action,
//! what leadership never sees, and the forms' CSRF check.

mod common;

use axum::http::StatusCode;
use common::*;
use sevloop_core::access::Role;
use sevloop_core::sev::{SevAction, SevActionRequest, SEV_ACTION_RECORD};
use sevloop_core::{SevState, RECORD_HEADER};
use sevloop_index::IndexDoc;
use std::time::Duration;

const EVIL: &str = "<script>alert('x')</script> card declined";
const BODY: &str = "My card was declined at checkout. Write to jane.doe@example.com";
/// A ticket id with characters that mean something in paths and HTML.
const ODD_ID: &str = "T/2<b>";

struct Fixture {
    app: App,
    support: String,
    cards: String,
    payments: String,
    leadership: String,
    admin: String,
}

impl Fixture {
    fn sessions(&self) -> [(&'static str, &str); 5] {
        [
            ("support", &self.support),
            ("team cards", &self.cards),
            ("team payments", &self.payments),
            ("leadership", &self.leadership),
            ("admin", &self.admin),
        ]
    }
}

/// Two clusters of product `cards` (tickets T-1, T/2<b> and T-3), SEV-1 open with team
/// `cards`, SEV-2 declined with a reason, a notification of SEV-1; one session per role.
async fn fixture() -> Fixture {
    let app = app().await;
    let store = &app.state.store;
    let at = t0();
    let tickets = [
        ticket("T-1", "cards", EVIL, BODY, "cust-4711", at),
        ticket(
            ODD_ID,
            "cards",
            "card declined again",
            "declined twice",
            "cust-4712",
            at,
        ),
        ticket(
            "T-3",
            "cards",
            "refund missing",
            "no refund yet",
            "cust-4713",
            at,
        ),
    ];
    let mut tx = store.begin().await.expect("tx");
    for (i, t) in tickets.iter().enumerate() {
        let cluster = if i < 2 { "cards:1" } else { "cards:2" };
        add_ticket(&mut tx, t, cluster, i as i64).await;
    }
    let clusters = [
        checkpoint(
            "cards",
            1,
            2,
            &["T-1", ODD_ID],
            &["card", "declined", "checkout"],
            at,
        ),
        checkpoint("cards", 2, 1, &["T-3"], &["refund", "missing"], at),
    ];
    sevloop_store::save_clusters(&mut tx, &clusters)
        .await
        .expect("clusters");
    let linked = vec!["T-1".to_string(), ODD_ID.to_string()];
    let title = "Card <b>declined</b> at checkout";
    let one = sev(&mut tx, 1, "cards:1", title, "cards", &linked, at).await;
    let two = sev(
        &mut tx,
        2,
        "cards:2",
        "Refunds",
        "cards",
        &["T-3".into()],
        at,
    )
    .await;
    let decline = SevAction::Decline {
        reason: "known <i>issue</i>, fixed by release 42".into(),
    };
    sevloop_store::apply_transition(&mut tx, &two, &decline, SevState::Declined, at)
        .await
        .expect("decline");
    let reason = serde_json::json!({"reason": "known <i>issue</i>, fixed by release 42"});
    sevloop_store::add_sev_event(&mut tx, &two, "declined", "team:cards", at, &reason)
        .await
        .expect("event");
    let notice = sevloop_store::NewNotification {
        id: format!("{one}.opened.slack"),
        sev_id: &one,
        endpoint: "cards-slack",
        ordering_key: format!("{one}/cards-slack"),
        kind: "opened",
        payload: serde_json::json!({}),
        created_at: at,
    };
    sevloop_store::enqueue(&mut tx, &notice)
        .await
        .expect("notify");
    tx.commit().await.expect("commit");
    let docs: Vec<IndexDoc> = tickets
        .iter()
        .map(|t| IndexDoc {
            ticket_id: t.ticket_id.clone(),
            product: t.product.clone(),
            subject: t.subject.clone(),
            body: t.body.clone(),
            cluster_id: "cards:1".into(),
            event_time_ms: 0,
        })
        .collect();
    app.state.index.upsert(&docs).expect("index");
    app.state.index.commit(&[]).expect("commit index");

    let mut sessions = Vec::new();
    for role in [
        Role::Support,
        team("cards"),
        team("payments"),
        Role::Leadership,
        Role::Admin,
    ] {
        let secret = token(store, role).await;
        sessions.push(login(&app.router, &secret).await);
    }
    let [support, cards, payments, leadership, admin] = sessions.try_into().expect("five");
    Fixture {
        app,
        support,
        cards,
        payments,
        leadership,
        admin,
    }
}

const ODD_PATH: &str = "/tickets/T%2F2%3Cb%3E";

/// Every page, and which roles may open it.
fn pages() -> Vec<(&'static str, &'static [&'static str])> {
    const ALL: &[&str] = &[
        "support",
        "team cards",
        "team payments",
        "leadership",
        "admin",
    ];
    const READERS: &[&str] = &["support", "team cards", "team payments", "admin"];
    const LEADS: &[&str] = &["leadership", "admin"];
    vec![
        ("/", ALL),
        (
            "/?state=open&sort=severity&from=2024-03-01&to=2024-03-31",
            ALL,
        ),
        ("/sevs/SEV-1", ALL),
        ("/sevs/SEV-2", ALL),
        ("/clusters", READERS),
        ("/clusters?sort=growth", READERS),
        ("/clusters/cards%3A1", READERS),
        ("/search?q=declined", READERS),
        ("/tickets/T-1", READERS),
        (ODD_PATH, READERS),
        ("/leadership", LEADS),
        ("/leadership?from=2024-03-01&to=2024-03-31", LEADS),
        ("/leadership/digest", LEADS),
    ]
}

#[tokio::test]
async fn every_page_renders_for_the_roles_that_may_see_it_and_refuses_the_others_as_a_page() {
    let f = fixture().await;
    for (path, allowed) in pages() {
        for (role, cookie) in f.sessions() {
            let reply = get(&f.app.router, path, Some(cookie)).await;
            let want = if allowed.contains(&role) {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(reply.status, want, "{role} {path}: {}", reply.body);
            assert!(reply.content_type.starts_with("text/html"), "{role} {path}");
            if want == StatusCode::FORBIDDEN {
                assert!(
                    reply.body.contains("Not available to you"),
                    "{}",
                    reply.body
                );
            }
        }
    }
}

#[tokio::test]
async fn without_a_session_every_page_leads_to_the_login() {
    let f = fixture().await;
    for (path, _) in pages() {
        let reply = get(&f.app.router, path, None).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(reply.location.as_deref(), Some("/login"), "{path}");
    }
    let stale = get(&f.app.router, "/", Some("sevloop_session=svs_nope")).await;
    assert_eq!(stale.location.as_deref(), Some("/login"));
    assert_eq!(
        get(&f.app.router, "/login", None).await.status,
        StatusCode::OK
    );
    let wrong = send(
        &f.app.router,
        axum::http::Request::post("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from("token=svl_wrong"))
            .expect("request"),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("unknown or revoked"));
}

#[tokio::test]
async fn user_text_is_escaped_on_every_page() {
    let f = fixture().await;
    for path in [
        "/",
        "/sevs/SEV-1",
        "/clusters",
        "/clusters/cards%3A1",
        "/search?q=checkout",
        "/tickets/T-1",
        ODD_PATH,
    ] {
        let body = get(&f.app.router, path, Some(&f.support)).await.body;
        assert!(!body.contains("<script>alert"), "{path}: {body}");
        assert!(
            !body.contains("<b>declined</b>") && !body.contains("T/2<b>"),
            "{path}"
        );
    }
    let sev = get(&f.app.router, "/sevs/SEV-1", Some(&f.support))
        .await
        .body;
    assert!(
        sev.contains(&escaped(EVIL)),
        "the exemplar is shown, escaped"
    );
    assert!(sev.contains(&escaped("Card <b>declined</b> at checkout")));
    assert!(
        sev.contains("href=\"/tickets/T%2F2%3Cb%3E\""),
        "ids are one encoded path segment"
    );
    let lead = get(&f.app.router, "/leadership", Some(&f.leadership))
        .await
        .body;
    assert!(
        lead.contains(&escaped("known <i>issue</i>")),
        "the decline reason, escaped"
    );
    assert!(
        lead.contains("<svg") && lead.contains("role=\"img\""),
        "charts are drawn, not escaped"
    );
    let digest = get(&f.app.router, "/leadership/digest", Some(&f.admin))
        .await
        .body;
    assert!(digest.contains(&escaped("known <i>issue</i>")) && !digest.contains("<i>issue"));
}

#[tokio::test]
async fn actions_and_corrections_are_offered_only_to_the_roles_that_may_take_them() {
    let f = fixture().await;
    for (role, cookie) in f.sessions() {
        let sev = get(&f.app.router, "/sevs/SEV-1", Some(cookie)).await.body;
        let acts = matches!(role, "team cards" | "admin");
        assert_eq!(
            sev.contains("action=\"/sevs/SEV-1/actions\""),
            acts,
            "{role}"
        );
        assert_eq!(sev.contains("value=\"acknowledge\""), acts, "{role}");
        if acts {
            assert!(sev.contains("name=\"reason\"") && sev.contains("name=\"into\""));
            assert!(sev.contains("name=\"team\" list=\"teams\""));
        }
        let declined = get(&f.app.router, "/sevs/SEV-2", Some(cookie)).await.body;
        assert!(
            !declined.contains("/actions\""),
            "{role}: nothing to do on a declined SEV"
        );
        assert!(
            declined.contains(&escaped("known <i>issue</i>")),
            "{role}: the reason shows"
        );
        if role == "leadership" {
            continue;
        }
        let cluster = get(&f.app.router, "/clusters/cards%3A1", Some(cookie))
            .await
            .body;
        let corrects = role != "support";
        assert_eq!(
            cluster.contains("action=\"/clusters/cards%3A1/merge\""),
            corrects,
            "{role}"
        );
        assert_eq!(
            cluster.contains("action=\"/clusters/cards%3A1/split\""),
            corrects,
            "{role}"
        );
    }
}

#[tokio::test]
async fn leadership_never_sees_ticket_text_ids_or_customers_and_teams_see_text_redacted() {
    let f = fixture().await;
    for path in [
        "/",
        "/sevs/SEV-1",
        "/sevs/SEV-2",
        "/leadership",
        "/leadership/digest",
    ] {
        let body = get(&f.app.router, path, Some(&f.leadership)).await.body;
        for secret in [
            "alert(",
            "checkout. Write",
            "jane.doe",
            "cust-47",
            "/tickets/",
            "T-1",
        ] {
            assert!(
                !body.contains(secret),
                "leadership sees `{secret}` on {path}"
            );
        }
    }
    let support = get(&f.app.router, "/tickets/T-1", Some(&f.support))
        .await
        .body;
    assert!(support.contains("jane.doe@example.com") && support.contains("cust-4711"));
    let team = get(&f.app.router, "/tickets/T-1", Some(&f.cards))
        .await
        .body;
    assert!(
        !team.contains("jane.doe@example.com") && !team.contains("cust-4711"),
        "{team}"
    );
    assert!(
        team.contains("My card was declined"),
        "the rest of the text stays"
    );
    let exemplars = get(&f.app.router, "/sevs/SEV-1", Some(&f.payments))
        .await
        .body;
    assert!(
        !exemplars.contains("jane.doe@example.com") && exemplars.contains("My card was declined")
    );
}

/// Stands in for the pipeline: records every SEV action on the log as applied.
fn apply_actions(app: &App) {
    let (store, mut reader) = (app.state.store.clone(), app.log.reader(TOPIC, 0));
    tokio::spawn(async move {
        loop {
            let Ok(batch) = reader
                .next_batch(10, std::time::Duration::from_secs(5))
                .await
            else {
                return;
            };
            for r in batch {
                let kind = r
                    .headers
                    .iter()
                    .find(|(k, _)| k == RECORD_HEADER)
                    .map(|(_, v)| v.as_slice());
                if kind != Some(SEV_ACTION_RECORD.as_bytes()) {
                    continue;
                }
                let request: SevActionRequest =
                    serde_json::from_slice(&r.payload).expect("request");
                let row = sevloop_store::ActionRow {
                    action_id: request.action_id.clone(),
                    sev_id: request.sev_id.clone(),
                    kind: request.action.kind().into(),
                    request: serde_json::to_value(&request.action).expect("json"),
                    actor_role: request.actor_role.clone(),
                    requested_at: request.requested_at,
                    outcome: "applied".into(),
                };
                let mut conn = store.conn().await.expect("conn");
                sevloop_store::record_action(&mut conn, &row)
                    .await
                    .expect("record");
            }
        }
    });
}

#[tokio::test]
async fn forms_need_the_sessions_csrf_secret_and_the_roles_permission() {
    let f = fixture().await;
    apply_actions(&f.app);
    let router = &f.app.router;
    let page = get(router, "/sevs/SEV-1", Some(&f.cards)).await.body;
    let csrf = csrf_of(&page);
    let act = "/sevs/SEV-1/actions";

    let none = post_form(router, act, &f.cards, "action=acknowledge").await;
    assert_eq!(none.status, StatusCode::FORBIDDEN, "{}", none.body);
    assert!(none.content_type.starts_with("text/html"));
    let wrong = post_form(
        router,
        act,
        &f.cards,
        &format!("action=acknowledge&csrf={}x", &csrf[1..]),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let other_session = csrf_of(&get(router, "/sevs/SEV-1", Some(&f.admin)).await.body);
    let stolen = post_form(
        router,
        act,
        &f.cards,
        &format!("action=acknowledge&csrf={other_session}"),
    )
    .await;
    assert_eq!(
        stolen.status,
        StatusCode::FORBIDDEN,
        "another session's secret does not do"
    );

    let ok = post_form(
        router,
        act,
        &f.cards,
        &format!("action=acknowledge&csrf={csrf}"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(ok.location.as_deref(), Some("/sevs/SEV-1?done=acknowledge"));
    let after = get(router, "/sevs/SEV-1?done=acknowledge", Some(&f.cards))
        .await
        .body;
    assert!(after.contains("Acknowledged."));

    let reason = "duplicate of a known outage; ask jane.doe@example.com";
    let form = format!("action=decline&csrf={csrf}&reason={}", encode(reason));
    assert_eq!(
        post_form(router, act, &f.cards, &form).await.status,
        StatusCode::SEE_OTHER
    );
    let logged = f
        .app
        .log
        .reader(TOPIC, 0)
        .next_batch(100, Duration::ZERO)
        .await
        .expect("log");
    let declines: Vec<String> = logged
        .iter()
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .filter(|p| p.contains("decline"))
        .collect();
    assert_eq!(declines.len(), 1);
    assert!(
        !declines[0].contains("jane.doe") && declines[0].contains("known outage"),
        "redacted as by the API"
    );

    let empty = post_form(
        router,
        act,
        &f.cards,
        &format!("action=decline&csrf={csrf}&reason="),
    )
    .await;
    assert_eq!(
        empty.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the API's own validation"
    );
    assert!(empty.body.contains("reason") && empty.body.contains("href=\"/sevs/SEV-1\""));

    let support_csrf = session_csrf(&f, &f.support).await;
    let refused = post_form(
        router,
        act,
        &f.support,
        &format!("action=acknowledge&csrf={support_csrf}"),
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "support may not act on SEVs"
    );
    let payments_csrf = session_csrf(&f, &f.payments).await;
    let other_team = post_form(
        router,
        act,
        &f.payments,
        &format!("action=resolve&csrf={payments_csrf}"),
    )
    .await;
    assert_eq!(other_team.status, StatusCode::FORBIDDEN, "nor another team");

    let merge = "/clusters/cards%3A1/merge";
    let cluster_csrf = csrf_of(
        &get(router, "/clusters/cards%3A1", Some(&f.cards))
            .await
            .body,
    );
    assert_eq!(cluster_csrf, csrf, "one secret per session");
    assert_eq!(
        post_form(router, merge, &f.cards, "with=cards%3A2")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let merged = post_form(
        router,
        merge,
        &f.cards,
        &format!("with=cards%3A2&csrf={csrf}"),
    )
    .await;
    assert_eq!(merged.status, StatusCode::SEE_OTHER, "{}", merged.body);
    assert_eq!(
        merged.location.as_deref(),
        Some("/clusters/cards%3A1?done=merge")
    );
    let by_support = post_form(
        router,
        merge,
        &f.support,
        &format!("with=cards%3A2&csrf={support_csrf}"),
    )
    .await;
    assert_eq!(
        by_support.status,
        StatusCode::FORBIDDEN,
        "support may not correct clusters"
    );
    let split = "/clusters/cards%3A1/split";
    let form = format!("csrf={csrf}&ticket_ids=T-1&more={}", encode(ODD_ID));
    let done = post_form(router, split, &f.cards, &form).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let stranger = post_form(router, split, &f.cards, &format!("csrf={csrf}&more=T-3")).await;
    assert_eq!(
        stranger.status,
        StatusCode::BAD_REQUEST,
        "T-3 is not in cards:1"
    );
}

/// Text as the templates escape it.
fn escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The CSRF secret of a session, from the store (pages without forms do not show it).
async fn session_csrf(f: &Fixture, cookie: &str) -> String {
    let secret = cookie.trim_start_matches("sevloop_session=");
    let hash = sevloop_http::auth::hash(secret);
    let (_, csrf) = f
        .app
        .state
        .store
        .session(&hash, chrono::Utc::now())
        .await
        .expect("read")
        .expect("session");
    csrf
}

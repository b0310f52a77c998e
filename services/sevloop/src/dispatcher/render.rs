//! From an outbox row to what leaves: an HTTP request in the shape its channel wants (signed,
//! for generic webhooks), or a message for the SEV events topic. Pure, so every shape is tested
//! without a network.

use serde::Deserialize;
use serde_json::{json, Value};
use sevloop_core::catalog::{Channel, ChannelKind, Helpdesk, HELPDESK};
use sevloop_core::Catalog;
use sevloop_notify::{SevNotice, WebhookSecret};
use sevloop_store::Notification;

use crate::sevs::announce::SEV_EVENTS;

/// What an outbox row carries.
#[derive(Debug, Deserialize)]
pub struct Payload {
    pub notice: SevNotice,
    /// For a link or a helpdesk write-back: the ticket.
    #[serde(default)]
    pub ticket_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: reqwest::Method,
    pub url: String,
    /// The endpoint's URL as the catalog has it (the helpdesk's base): what a 410 disables.
    pub endpoint_url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Where a row goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Http(Request),
    /// A message for the SEV events topic, keyed by the SEV id.
    Topic {
        key: String,
        message: Value,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    #[error("endpoint `{0}` is not in the catalog")]
    Unknown(String),
    #[error("no helpdesk is configured in the catalog")]
    NoHelpdesk,
    #[error("outbox row payload is unreadable: {0}")]
    Payload(String),
    #[error("channel `{0}`: {1}")]
    Channel(String, String),
}

/// Who sends: where people follow a SEV's link, and the installation's name.
#[derive(Debug, Clone)]
pub struct Origin {
    pub public_url: String,
    pub installation: String,
}

impl Origin {
    /// A row's idempotency key (and webhook-id) as it leaves: its id, scoped by the
    /// installation, since two installations' rows can share ids (see
    /// [`sevloop_notify::scoped`]). The topic is the installation's own and keeps the bare id.
    pub fn key(&self, n: &Notification) -> String {
        sevloop_notify::scoped(&self.installation, &n.id)
    }
}

/// The URL of `endpoint` in `catalog` (a channel's, or the helpdesk's), as a request to it
/// carries it in [`Request::endpoint_url`]; none for an endpoint the catalog does not have.
pub fn endpoint_url<'c>(endpoint: &str, catalog: &'c Catalog) -> Option<&'c str> {
    match endpoint {
        HELPDESK => catalog.helpdesk.as_ref().map(|h| h.url.as_str()),
        name => catalog.channels.get(name).map(|c| c.url.as_str()),
    }
}

/// Renders a row for its endpoint. `now` is the signing timestamp (unix seconds).
pub fn render(
    n: &Notification,
    catalog: &Catalog,
    origin: &Origin,
    now: i64,
) -> Result<Delivery, RenderError> {
    let payload: Payload =
        serde_json::from_str(&n.payload).map_err(|e| RenderError::Payload(e.to_string()))?;
    match n.endpoint.as_str() {
        SEV_EVENTS => Ok(topic_message(n, &payload)),
        HELPDESK => {
            let helpdesk = catalog.helpdesk.as_ref().ok_or(RenderError::NoHelpdesk)?;
            helpdesk_request(n, helpdesk, &payload, origin)
        }
        name => {
            let channel = catalog
                .channels
                .get(name)
                .ok_or_else(|| RenderError::Unknown(name.to_string()))?;
            channel_request(n, name, channel, &payload.notice, origin, now).map(Delivery::Http)
        }
    }
}

/// The SEV event as published on the topic (schemas/sev-event.v1.json).
fn topic_message(n: &Notification, p: &Payload) -> Delivery {
    let mut message = json!({
        "schema": "sevloop.sev-event.v1",
        "event_id": n.id,
        "type": format!("sev.{}", n.kind),
        "sev_id": p.notice.sev_id,
        "at": p.notice.at,
        "sev": p.notice,
    });
    if let Some(ticket) = &p.ticket_id {
        message["ticket_id"] = json!(ticket);
    }
    Delivery::Topic {
        key: p.notice.sev_id.clone(),
        message,
    }
}

fn helpdesk_request(
    n: &Notification,
    helpdesk: &Helpdesk,
    p: &Payload,
    origin: &Origin,
) -> Result<Delivery, RenderError> {
    let ticket = p
        .ticket_id
        .as_deref()
        .ok_or_else(|| RenderError::Payload("a helpdesk row names no ticket".into()))?;
    let id = ticket.strip_prefix(&helpdesk.id_prefix).unwrap_or(ticket);
    let mut headers = vec![idempotency(&origin.key(n))];
    if let Some(auth) = &helpdesk.authorization {
        headers.push(("authorization".into(), auth.expose().to_string()));
    }
    Ok(Delivery::Http(json_request(
        reqwest::Method::PUT,
        &helpdesk.url,
        format!(
            "{}/api/v2/tickets/{}.json",
            helpdesk.url.trim_end_matches('/'),
            encode_segment(id)
        ),
        headers,
        &sevloop_notify::helpdesk_note(&p.notice),
    )))
}

fn channel_request(
    n: &Notification,
    name: &str,
    channel: &Channel,
    notice: &SevNotice,
    origin: &Origin,
    now: i64,
) -> Result<Request, RenderError> {
    let body = match channel.kind {
        ChannelKind::Pagerduty => {
            let key = channel.routing_key.as_ref().map_or("", |k| k.expose());
            sevloop_notify::pagerduty(notice, key, &origin.installation)
        }
        ChannelKind::Alertmanager => {
            sevloop_notify::alertmanager(notice, name, &origin.public_url, &origin.installation)
        }
        ChannelKind::Slack => sevloop_notify::slack(notice),
        ChannelKind::Webhook => sevloop_notify::webhook(notice, &origin.installation),
    };
    let key = origin.key(n);
    let mut request = json_request(
        reqwest::Method::POST,
        &channel.url,
        channel.url.clone(),
        vec![idempotency(&key)],
        &body,
    );
    if channel.kind == ChannelKind::Webhook {
        let secrets = channel
            .secrets
            .iter()
            .map(|s| WebhookSecret::parse(s.expose()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RenderError::Channel(name.to_string(), e.to_string()))?;
        let signed = sevloop_notify::headers(&secrets, &key, now, &request.body);
        for (header, value) in signed {
            if header != "webhook-signature" || !secrets.is_empty() {
                request.headers.push((header.to_string(), value));
            }
        }
    }
    Ok(request)
}

fn json_request(
    method: reqwest::Method,
    endpoint_url: &str,
    url: String,
    mut headers: Vec<(String, String)>,
    body: &Value,
) -> Request {
    headers.push(("content-type".into(), "application/json".into()));
    Request {
        method,
        url,
        endpoint_url: endpoint_url.to_string(),
        headers,
        body: body.to_string().into_bytes(),
    }
}

/// Every request carries its row's key: receivers apply each event once.
fn idempotency(id: &str) -> (String, String) {
    ("idempotency-key".into(), id.to_string())
}

/// A helpdesk id as one URL path segment (ids are the helpdesk's, but never trusted).
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use sevloop_core::{SevState, Severity};
    use sevloop_notify::NoticeKind;

    const CATALOG: &str = r#"
default_team = "triage"
[teams.triage]
channels = ["pd", "hook", "am", "chat"]
[channels.pd]
kind = "pagerduty"
url = "https://events.pagerduty.com/v2/enqueue"
routing_key = "RK000000000000000000000000000000"
[channels.hook]
kind = "webhook"
url = "http://127.0.0.1:1/hook"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24="]
[channels.am]
kind = "alertmanager"
url = "http://127.0.0.1:1/am"
[channels.chat]
kind = "slack"
url = "http://127.0.0.1:1/slack"
[helpdesk]
url = "http://127.0.0.1:1/"
authorization = "Bearer T"
id_prefix = "ZD-"
"#;

    fn at() -> DateTime<Utc> {
        "2024-01-03T15:00:00Z".parse().unwrap()
    }

    fn row(endpoint: &str, kind: &str, ticket: Option<&str>) -> Notification {
        let notice = SevNotice {
            event_id: "esc-1.opened".into(),
            kind: NoticeKind::Opened,
            sev_id: "SEV-7".into(),
            title: "cards: customers report card, declined".into(),
            severity: Severity::Sev3,
            state: SevState::Open,
            team: "triage".into(),
            product: "cards".into(),
            cluster_id: "cards:4".into(),
            ticket_count: 12,
            distinct_customers: 11,
            first_ticket_at: at(),
            opened_at: at(),
            at: at(),
            url: "http://sevloop/sevs/SEV-7".into(),
            reason: None,
            previous_team: None,
            merged_into: None,
            escalated_to: None,
        };
        Notification {
            id: format!("esc-1.opened.{endpoint}"),
            sev_id: "SEV-7".into(),
            endpoint: endpoint.into(),
            kind: kind.into(),
            payload: serde_json::json!({"notice": notice, "ticket_id": ticket}).to_string(),
            state: "pending".into(),
            attempts: 0,
            next_attempt_at: Some(at()),
            last_error: None,
            created_at: at(),
            delivered_at: None,
        }
    }

    fn origin() -> Origin {
        Origin {
            public_url: "http://sevloop".into(),
            installation: "5e1f00c0ffee".into(),
        }
    }

    fn http(endpoint: &str) -> Request {
        let catalog = Catalog::parse(CATALOG, "test").unwrap();
        match render(
            &row(endpoint, "opened", Some("ZD-48213")),
            &catalog,
            &origin(),
            1_700_000_000,
        ) {
            Ok(Delivery::Http(r)) => r,
            other => panic!("expected an HTTP request, got {other:?}"),
        }
    }

    fn header<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(h, _)| h == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_signed_webhook_carries_one_signature_per_secret_and_each_verifies() {
        let r = http("hook");
        let key = "5e1f00c0ffee/esc-1.opened.hook";
        assert_eq!(header(&r, "webhook-id"), Some(key));
        assert_eq!(header(&r, "idempotency-key"), Some(key));
        let signature = header(&r, "webhook-signature").unwrap();
        assert_eq!(signature.split(' ').count(), 2);
        for secret in [
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24=",
        ] {
            let secret = WebhookSecret::parse(secret).unwrap();
            assert!(sevloop_notify::verify(
                &secret,
                key,
                1_700_000_000,
                &r.body,
                signature
            ));
        }
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["type"], "sev.opened");
        // The change's id in the body is scoped as the key is (the key also names the channel).
        assert_eq!(body["data"]["event_id"], "5e1f00c0ffee/esc-1.opened");
    }

    #[test]
    fn two_installations_never_share_a_key_and_an_unnamed_one_keeps_its_old_keys() {
        let catalog = Catalog::parse(CATALOG, "test").unwrap();
        let keys = |installation: &str| {
            let origin = Origin {
                installation: installation.into(),
                ..origin()
            };
            ["hook", "pd", "am", "chat", HELPDESK].map(|endpoint| {
                let n = row(endpoint, "opened", Some("ZD-48213"));
                let Ok(Delivery::Http(r)) = render(&n, &catalog, &origin, 0) else {
                    panic!("{endpoint} renders a request");
                };
                header(&r, "idempotency-key").map(str::to_string)
            })
        };
        let (a, b) = (keys("5e1f00c0ffee"), keys("0123456789ab"));
        for (x, y) in a.iter().zip(&b) {
            assert_ne!(x, y, "installations' keys differ");
        }
        assert_eq!(keys("")[0].as_deref(), Some("esc-1.opened.hook"));
    }

    #[test]
    fn each_channel_kind_gets_its_own_shape() {
        let pd: Value = serde_json::from_slice(&http("pd").body).unwrap();
        assert_eq!(
            (pd["routing_key"].as_str(), pd["event_action"].as_str()),
            (Some("RK000000000000000000000000000000"), Some("trigger"))
        );
        assert_eq!(pd["dedup_key"], "sevloop/5e1f00c0ffee/SEV-7");
        let am: Value = serde_json::from_slice(&http("am").body).unwrap();
        assert_eq!(am["version"], "4");
        assert_eq!(am["receiver"], "am");
        assert_eq!(am["alerts"][0]["labels"]["installation"], "5e1f00c0ffee");
        let chat: Value = serde_json::from_slice(&http("chat").body).unwrap();
        assert!(chat["blocks"].is_array());
        assert_eq!(header(&http("pd"), "webhook-signature"), None);
    }

    #[test]
    fn an_endpoints_url_is_the_one_its_requests_carry() {
        let catalog = Catalog::parse(CATALOG, "test").unwrap();
        for endpoint in [HELPDESK, "pd", "am", "chat"] {
            assert_eq!(
                endpoint_url(endpoint, &catalog),
                Some(http(endpoint).endpoint_url.as_str()),
                "{endpoint}"
            );
        }
        assert_eq!(endpoint_url("gone-from-the-catalog", &catalog), None);
    }

    #[test]
    fn the_helpdesk_write_back_puts_a_note_on_the_helpdesk_ticket() {
        let r = http(HELPDESK);
        assert_eq!(r.method, reqwest::Method::PUT);
        assert_eq!(r.url, "http://127.0.0.1:1/api/v2/tickets/48213.json");
        assert_eq!(
            r.endpoint_url, "http://127.0.0.1:1/",
            "a 410 disables the helpdesk"
        );
        assert_eq!(header(&r, "authorization"), Some("Bearer T"));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["ticket"]["comment"]["public"], false);
    }

    #[test]
    fn a_topic_message_follows_the_sev_event_schema() {
        let schema: Value =
            serde_json::from_str(include_str!("../../../../schemas/sev-event.v1.json")).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let catalog = Catalog::parse(CATALOG, "test").unwrap();
        for (kind, ticket) in [("opened", None), ("ticket_linked", Some("ZD-1"))] {
            let Ok(Delivery::Topic { key, message }) =
                render(&row(SEV_EVENTS, kind, ticket), &catalog, &origin(), 0)
            else {
                panic!("expected a topic message");
            };
            assert_eq!(key, "SEV-7");
            let errors: Vec<String> = validator
                .iter_errors(&message)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{kind}: {errors:?}");
        }
        let mut broken = render(
            &row(SEV_EVENTS, "ticket_linked", None),
            &catalog,
            &origin(),
            0,
        );
        if let Ok(Delivery::Topic { message, .. }) = &mut broken {
            assert!(
                !validator.is_valid(message),
                "a link without its ticket is refused"
            );
        }
    }

    #[test]
    fn an_endpoint_missing_from_the_catalog_is_named() {
        let catalog = Catalog::parse(CATALOG, "test").unwrap();
        let err = render(&row("gone", "opened", None), &catalog, &origin(), 0).unwrap_err();
        assert_eq!(err.to_string(), "endpoint `gone` is not in the catalog");
    }
}

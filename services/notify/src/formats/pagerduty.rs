//! PagerDuty Events API v2 (`POST https://events.pagerduty.com/v2/enqueue`), as documented at
//! <https://developer.pagerduty.com/docs/events-api-v2/trigger-events/>. Every event of one SEV
//! shares a `dedup_key`, so PagerDuty folds them into one alert: triggers update it,
//! acknowledge and resolve move it.

use serde_json::{json, Map, Value};
use sevloop_core::Severity;

use super::{extras, headline, rfc3339, scoped, sev_digest_hex, truncate_chars};
use crate::{NoticeKind, SevNotice};

/// The API rejects a longer `payload.summary`.
const SUMMARY_MAX_CHARS: usize = 1024;
/// The API rejects a longer `dedup_key`.
const DEDUP_KEY_MAX_CHARS: usize = 255;

const TRIGGER: &str = "trigger";
const ACKNOWLEDGE: &str = "acknowledge";
const RESOLVE: &str = "resolve";

/// The Events API v2 body for this notice, sent with the integration's `routing_key`.
/// `installation` names this sevloop: it scopes the `dedup_key`, as SEV numbers repeat across
/// installations.
pub fn pagerduty(n: &SevNotice, routing_key: &str, installation: &str) -> Value {
    let action = event_action(n.kind);
    let dedup_key = dedup_key(installation, &n.sev_id);
    if action != TRIGGER {
        // Acknowledge and resolve take only these three fields.
        return json!({
            "routing_key": routing_key,
            "event_action": action,
            "dedup_key": dedup_key,
        });
    }
    json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key,
        "payload": payload(n),
        "links": [{ "href": n.url, "text": format!("{} in sevloop", n.sev_id) }],
        "client": "sevloop",
        "client_url": n.url,
    })
}

/// Changes that need someone's attention (re)trigger; a trigger on an alert that is already
/// open only updates it. Mitigated is not over yet, so it stays acknowledged, not resolved.
fn event_action(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Opened
        | NoticeKind::Updated
        | NoticeKind::Reopened
        | NoticeKind::Rerouted
        | NoticeKind::Escalated => TRIGGER,
        NoticeKind::Acknowledged | NoticeKind::Mitigated => ACKNOWLEDGE,
        NoticeKind::Resolved
        | NoticeKind::Declined
        | NoticeKind::Merged
        | NoticeKind::ReroutedAway => RESOLVE,
    }
}

/// `sevloop/<installation>/<sev_id>`: SEV numbers start at 1 in every installation, so two
/// sevloops sharing an integration (staging and production, or a reinstall) would otherwise
/// fold their SEVs into each other's alerts. An installation that had SEVs before it was named
/// keeps `sevloop/<sev_id>` (an empty name), so its open alerts still resolve. A key too long
/// for the limit (never the case for `SEV-<n>`) becomes a SHA-256 instead of being cut, since a
/// cut key could collide with another SEV's.
fn dedup_key(installation: &str, sev_id: &str) -> String {
    let scoped = scoped(installation, sev_id);
    let key = format!("sevloop/{scoped}");
    if key.chars().count() <= DEDUP_KEY_MAX_CHARS {
        return key;
    }
    format!("sevloop/sha256:{}", sev_digest_hex(&scoped, 32))
}

fn payload(n: &SevNotice) -> Value {
    json!({
        "summary": truncate_chars(&headline(n), SUMMARY_MAX_CHARS),
        "source": "sevloop",
        "severity": severity(n.severity),
        "timestamp": rfc3339(n.at),
        "component": n.product,
        "group": n.team,
        "class": n.cluster_id,
        "custom_details": custom_details(n),
    })
}

/// PagerDuty has four severities; SEV1 is the one that should wake people up.
fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Sev1 => "critical",
        Severity::Sev2 => "error",
        Severity::Sev3 => "warning",
        Severity::Sev4 => "info",
    }
}

fn custom_details(n: &SevNotice) -> Value {
    let mut details = Map::new();
    details.insert("sev_id".into(), n.sev_id.clone().into());
    details.insert("change".into(), n.kind.as_str().into());
    details.insert("state".into(), n.state.as_str().into());
    details.insert("ticket_count".into(), n.ticket_count.into());
    details.insert("distinct_customers".into(), n.distinct_customers.into());
    details.insert("first_ticket_at".into(), rfc3339(n.first_ticket_at).into());
    details.insert("opened_at".into(), rfc3339(n.opened_at).into());
    details.insert("url".into(), n.url.clone().into());
    for extra in extras(n) {
        details.insert(extra.key.into(), extra.value.into());
    }
    Value::Object(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_the_action_its_closing_state_implies() {
        for kind in NoticeKind::ALL {
            let action = event_action(kind);
            assert_eq!(action == RESOLVE, kind.closes(), "{kind:?} -> {action}");
        }
    }

    #[test]
    fn dedup_key_names_the_installation_and_the_sev() {
        assert_eq!(dedup_key("7f3a9c", "SEV-12"), "sevloop/7f3a9c/SEV-12");
        assert_eq!(
            dedup_key("", "SEV-12"),
            "sevloop/SEV-12",
            "an installation from before"
        );
        assert_ne!(dedup_key("7f3a9c", "SEV-12"), dedup_key("0b1d2e", "SEV-12"));
    }

    #[test]
    fn an_overlong_sev_id_still_gives_a_stable_dedup_key_within_the_limit() {
        let id = "S".repeat(300);
        let key = dedup_key("7f3a9c", &id);
        assert!(key.chars().count() <= DEDUP_KEY_MAX_CHARS, "{key}");
        assert_eq!(key, dedup_key("7f3a9c", &id));
        assert_ne!(key, dedup_key("7f3a9c", &"S".repeat(301)));
        assert_ne!(key, dedup_key("0b1d2e", &id));
    }
}

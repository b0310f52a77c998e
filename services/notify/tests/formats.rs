//! Every channel's payload for one SEV. The snapshots under `tests/snapshots/` are the review
//! artefact: a change in what people receive shows up there.

mod common;

use common::{notice, INSTALLATION, ROUTING_KEY};
use insta::assert_json_snapshot;
use serde_json::Value;
use sevloop_notify::{alertmanager, helpdesk_note, pagerduty, slack, webhook, NoticeKind};

const RECEIVER: &str = "payments-oncall";
const EXTERNAL_URL: &str = "https://sevloop.example.com";

fn am(kind: NoticeKind) -> Value {
    alertmanager(&notice(kind), RECEIVER, EXTERNAL_URL, INSTALLATION)
}

#[test]
fn an_opened_sev_renders_for_every_channel() {
    let n = notice(NoticeKind::Opened);
    assert_json_snapshot!("pagerduty_opened", pagerduty(&n, ROUTING_KEY, INSTALLATION));
    assert_json_snapshot!("alertmanager_opened", am(NoticeKind::Opened));
    assert_json_snapshot!("slack_opened", slack(&n));
    assert_json_snapshot!("webhook_opened", webhook(&n, INSTALLATION));
    assert_json_snapshot!("helpdesk_note_opened", helpdesk_note(&n));
}

#[test]
fn an_acknowledged_sev_renders_for_the_alerting_channels() {
    let n = notice(NoticeKind::Acknowledged);
    assert_json_snapshot!(
        "pagerduty_acknowledged",
        pagerduty(&n, ROUTING_KEY, INSTALLATION)
    );
    assert_json_snapshot!("alertmanager_acknowledged", am(NoticeKind::Acknowledged));
    assert_json_snapshot!("slack_acknowledged", slack(&n));
}

#[test]
fn a_resolved_sev_renders_for_the_alerting_channels() {
    let n = notice(NoticeKind::Resolved);
    assert_json_snapshot!(
        "pagerduty_resolved",
        pagerduty(&n, ROUTING_KEY, INSTALLATION)
    );
    assert_json_snapshot!("alertmanager_resolved", am(NoticeKind::Resolved));
    assert_json_snapshot!("slack_resolved", slack(&n));
}

#[test]
fn a_rerouted_sev_tells_slack_and_the_helpdesk_where_it_was_and_why() {
    let n = notice(NoticeKind::Rerouted);
    assert_json_snapshot!("slack_rerouted", slack(&n));
    assert_json_snapshot!("helpdesk_note_rerouted", helpdesk_note(&n));
}

#[test]
fn alertmanager_payloads_have_version_4_and_every_required_key_for_every_kind() {
    const TOP: [&str; 10] = [
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    ];
    const ALERT: [&str; 7] = [
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    ];
    for kind in NoticeKind::ALL {
        let payload = am(kind);
        for key in TOP {
            assert!(payload.get(key).is_some(), "{kind:?}: missing {key}");
        }
        let alerts = payload["alerts"].as_array().expect("alerts is an array");
        assert_eq!(alerts.len(), 1, "{kind:?}");
        for key in ALERT {
            assert!(
                alerts[0].get(key).is_some(),
                "{kind:?}: alert missing {key}"
            );
        }
        assert_eq!(payload["version"], "4");
        assert_eq!(payload["receiver"], RECEIVER);
        assert_eq!(payload["externalURL"], EXTERNAL_URL);
        assert_eq!(alerts[0]["labels"]["alertname"], "SevloopSEV");
        assert_eq!(alerts[0]["labels"]["severity"], "sev2");
    }
}

#[test]
fn alertmanager_resolves_exactly_when_the_sev_is_resolved_declined_or_merged() {
    for kind in NoticeKind::ALL {
        let payload = am(kind);
        let alert = &payload["alerts"][0];
        let expected = if kind.closes() { "resolved" } else { "firing" };
        assert_eq!(payload["status"], expected, "{kind:?}");
        assert_eq!(alert["status"], expected, "{kind:?}");
        let ends_at = alert["endsAt"].as_str().expect("endsAt is a string");
        assert_eq!(
            ends_at == "0001-01-01T00:00:00Z",
            !kind.closes(),
            "{kind:?}"
        );
    }
    let closing = [
        NoticeKind::Resolved,
        NoticeKind::Declined,
        NoticeKind::Merged,
        NoticeKind::ReroutedAway,
    ];
    assert!(NoticeKind::ALL
        .iter()
        .all(|k| k.closes() == closing.contains(k)));
}

#[test]
fn alertmanager_keeps_one_fingerprint_and_group_key_across_a_reroute() {
    let opened = am(NoticeKind::Opened);
    let rerouted = am(NoticeKind::Rerouted);
    assert_ne!(
        opened["alerts"][0]["labels"]["team"],
        rerouted["alerts"][0]["labels"]["team"]
    );
    assert_eq!(
        opened["alerts"][0]["fingerprint"],
        rerouted["alerts"][0]["fingerprint"]
    );
    assert_eq!(opened["groupKey"], rerouted["groupKey"]);
    let fingerprint = opened["alerts"][0]["fingerprint"]
        .as_str()
        .expect("a string");
    assert_eq!(fingerprint.len(), 16);
    assert!(fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn slack_escapes_control_characters_in_user_derived_strings() {
    let mut n = notice(NoticeKind::Rerouted);
    n.title = "Checkout shows <script>& then <!channel>".into();
    n.reason = Some("a<b & c>d".into());
    n.previous_team = Some("<@U123>".into());
    n.team = "pay&ments".into();
    let message = slack(&n);
    let header = message["blocks"][0]["text"]["text"]
        .as_str()
        .expect("header text");
    assert_eq!(
        header,
        "[SEV2] SEV-12: Checkout shows &lt;script&gt;&amp; then &lt;!channel&gt;"
    );
    let rendered = message.to_string();
    for raw in [
        "<script>",
        "<!channel>",
        "a<b",
        "c>d",
        "<@U123>",
        "pay&ments",
    ] {
        assert!(
            !rendered.contains(raw),
            "{raw} reached Slack unescaped: {rendered}"
        );
    }
    for escaped in ["a&lt;b &amp; c&gt;d", "&lt;@U123&gt;", "pay&amp;ments"] {
        assert!(rendered.contains(escaped), "{escaped} missing: {rendered}");
    }
}

#[test]
fn slack_keeps_a_long_title_within_the_header_limit() {
    let mut n = notice(NoticeKind::Opened);
    n.title = "&".repeat(400);
    let message = slack(&n);
    let header = message["blocks"][0]["text"]["text"]
        .as_str()
        .expect("header text");
    assert!(header.chars().count() <= 150, "{}", header.chars().count());
    assert!(header.ends_with("&amp;…"));
}

#[test]
fn webhook_events_are_typed_by_kind_and_carry_the_whole_notice() {
    for kind in NoticeKind::ALL {
        let n = notice(kind);
        let event = webhook(&n, INSTALLATION);
        assert_eq!(event["type"], format!("sev.{}", kind.as_str()));
        let data: sevloop_notify::SevNotice =
            serde_json::from_value(event["data"].clone()).expect("data is a SevNotice");
        let scoped_id = format!("{INSTALLATION}/{}", n.event_id);
        assert_eq!(
            data.event_id, scoped_id,
            "{kind:?}: scoped as webhook-id is"
        );
        assert_eq!(
            data,
            sevloop_notify::SevNotice {
                event_id: scoped_id,
                ..n
            }
        );
    }
}

#[test]
fn an_installation_without_a_name_keeps_bare_event_ids() {
    let n = notice(NoticeKind::Opened);
    assert_eq!(webhook(&n, "")["data"]["event_id"], n.event_id.as_str());
}

#[test]
fn helpdesk_notes_are_internal_and_swap_the_state_tag() {
    for kind in NoticeKind::ALL {
        let n = notice(kind);
        let ticket = &helpdesk_note(&n)["ticket"];
        assert_eq!(ticket["comment"]["public"], false, "{kind:?}");
        let state_tag = format!("sevloop_{}", n.state.as_str());
        let added: Vec<&str> = strings(&ticket["additional_tags"]);
        let removed: Vec<&str> = strings(&ticket["remove_tags"]);
        assert_eq!(added, ["sevloop_sev_12", state_tag.as_str()], "{kind:?}");
        assert_eq!(removed.len(), 5, "{kind:?}");
        assert!(!removed.contains(&state_tag.as_str()), "{kind:?}");
        for tag in added.iter().chain(&removed) {
            assert!(
                tag.chars()
                    .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_')),
                "{tag}"
            );
        }
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|s| s.as_str().expect("a string"))
        .collect()
}

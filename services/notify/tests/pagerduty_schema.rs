//! PagerDuty payloads against a JSON Schema of the Events API v2 request, written from its public
//! documentation (`pagerduty-events-v2.schema.json`), so a payload PagerDuty would refuse fails
//! here first.

mod common;

use common::{notice, INSTALLATION, ROUTING_KEY};
use jsonschema::Validator;
use serde_json::Value;
use sevloop_notify::{pagerduty, NoticeKind};

fn validator() -> Validator {
    let text = include_str!("pagerduty-events-v2.schema.json");
    let schema: Value = serde_json::from_str(text).expect("the schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles")
}

fn errors(validator: &Validator, payload: &Value) -> Vec<String> {
    validator
        .iter_errors(payload)
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn payloads_for_every_kind_match_the_events_api_v2_schema() {
    let validator = validator();
    for kind in NoticeKind::ALL {
        let payload = pagerduty(&notice(kind), ROUTING_KEY, INSTALLATION);
        let errors = errors(&validator, &payload);
        assert!(errors.is_empty(), "{kind:?}: {errors:?}\n{payload:#}");
    }
}

#[test]
fn every_event_of_a_sev_shares_routing_and_dedup_keys() {
    let opened = pagerduty(&notice(NoticeKind::Opened), ROUTING_KEY, INSTALLATION);
    for kind in NoticeKind::ALL {
        let payload = pagerduty(&notice(kind), ROUTING_KEY, INSTALLATION);
        assert_eq!(payload["dedup_key"], opened["dedup_key"], "{kind:?}");
        assert_eq!(payload["routing_key"], ROUTING_KEY, "{kind:?}");
    }
    assert_eq!(opened["dedup_key"], "sevloop/5e1f00c0ffee/SEV-12");
}

#[test]
fn acknowledge_and_resolve_carry_only_routing_key_action_and_dedup_key() {
    let expected = [
        (NoticeKind::Acknowledged, "acknowledge"),
        (NoticeKind::Mitigated, "acknowledge"),
        (NoticeKind::Resolved, "resolve"),
        (NoticeKind::Declined, "resolve"),
        (NoticeKind::Merged, "resolve"),
    ];
    for (kind, action) in expected {
        let payload = pagerduty(&notice(kind), ROUTING_KEY, INSTALLATION);
        let object = payload.as_object().expect("an object");
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["dedup_key", "event_action", "routing_key"],
            "{kind:?}"
        );
        assert_eq!(payload["event_action"], action, "{kind:?}");
    }
}

#[test]
fn a_very_long_title_still_gives_a_valid_summary() {
    let mut n = notice(NoticeKind::Opened);
    n.title = "ß".repeat(5000);
    let payload = pagerduty(&n, ROUTING_KEY, INSTALLATION);
    let summary = payload["payload"]["summary"].as_str().expect("a summary");
    assert_eq!(summary.chars().count(), 1024);
    let errors = errors(&validator(), &payload);
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn the_schema_rejects_what_pagerduty_would_reject() {
    let validator = validator();
    let trigger = pagerduty(&notice(NoticeKind::Opened), ROUTING_KEY, INSTALLATION);
    let resolve = pagerduty(&notice(NoticeKind::Resolved), ROUTING_KEY, INSTALLATION);
    let broken = [
        ("no routing_key", without(&trigger, "/routing_key")),
        (
            "resolve without routing_key",
            without(&resolve, "/routing_key"),
        ),
        ("resolve without dedup_key", without(&resolve, "/dedup_key")),
        ("no summary", without(&trigger, "/payload/summary")),
        (
            "unknown severity",
            with(&trigger, "/payload/severity", "sev2".into()),
        ),
        (
            "unknown action",
            with(&trigger, "/event_action", "page".into()),
        ),
        (
            "summary too long",
            with(&trigger, "/payload/summary", "x".repeat(1025).into()),
        ),
        (
            "dedup_key too long",
            with(&resolve, "/dedup_key", "k".repeat(256).into()),
        ),
        (
            "resolve with a payload",
            with(&resolve, "/payload", trigger["payload"].clone()),
        ),
        (
            "timestamp not RFC 3339",
            with(&trigger, "/payload/timestamp", "yesterday".into()),
        ),
    ];
    for (what, payload) in broken {
        assert!(
            !validator.is_valid(&payload),
            "{what} passed the schema: {payload:#}"
        );
    }
}

fn without(payload: &Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer with a parent");
    let mut copy = payload.clone();
    copy.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("the parent is an object")
        .remove(key)
        .expect("the field was there");
    copy
}

fn with(payload: &Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer with a parent");
    let mut copy = payload.clone();
    copy.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("the parent is an object")
        .insert(key.to_owned(), value);
    copy
}

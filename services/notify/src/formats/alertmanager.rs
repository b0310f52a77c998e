//! The Alertmanager webhook payload, version "4"
//! (<https://prometheus.io/docs/alerting/latest/configuration/#webhook_config>), so any receiver
//! written for Alertmanager (chat bridges, ticketing hooks) takes SEVs unchanged. Each SEV is its
//! own group holding one alert.

use serde_json::{json, Map, Value};

use super::{extras, rfc3339, sev_digest_hex};
use crate::SevNotice;

/// What Alertmanager sends as `endsAt` while an alert is still firing (Go's zero time).
const STILL_FIRING: &str = "0001-01-01T00:00:00Z";

/// The webhook body for `receiver`; `external_url` is the backlink to sevloop.
pub fn alertmanager(n: &SevNotice, receiver: &str, external_url: &str) -> Value {
    let status = status(n);
    let labels = labels(n);
    let annotations = annotations(n);
    json!({
        "version": "4",
        "groupKey": group_key(&n.sev_id),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": { "sev_id": n.sev_id },
        // With one alert per group, everything it has is common to the group.
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(n.opened_at),
            "endsAt": ends_at(n),
            "generatorURL": n.url,
            "fingerprint": fingerprint(&n.sev_id),
        }],
    })
}

fn status(n: &SevNotice) -> &'static str {
    if n.kind.closes() {
        "resolved"
    } else {
        "firing"
    }
}

fn ends_at(n: &SevNotice) -> String {
    if n.kind.closes() {
        rfc3339(n.at)
    } else {
        STILL_FIRING.to_owned()
    }
}

/// Alertmanager's own form, `<route matchers>:<group labels>`, with no route (`{}`). The value is
/// quoted as a JSON string, which matches Go's `%q` for anything a SEV id holds.
fn group_key(sev_id: &str) -> String {
    format!("{{}}:{{sev_id={}}}", Value::from(sev_id))
}

/// Alertmanager hashes the label set, but a SEV's labels change when it is rerouted; hashing the
/// SEV id keeps one fingerprint for the SEV's whole life, in Alertmanager's 16-hex-digit form.
fn fingerprint(sev_id: &str) -> String {
    sev_digest_hex(sev_id, 8)
}

fn labels(n: &SevNotice) -> Value {
    json!({
        "alertname": "SevloopSEV",
        "sev_id": n.sev_id,
        "severity": n.severity.as_str().to_lowercase(),
        "team": n.team,
        "product": n.product,
        "cluster_id": n.cluster_id,
    })
}

fn annotations(n: &SevNotice) -> Value {
    let mut annotations = Map::new();
    annotations.insert("summary".into(), n.title.clone().into());
    annotations.insert("description".into(), description(n).into());
    annotations.insert("url".into(), n.url.clone().into());
    for extra in extras(n) {
        annotations.insert(extra.key.into(), extra.value.into());
    }
    Value::Object(annotations)
}

fn description(n: &SevNotice) -> String {
    format!(
        "{} tickets from {} distinct customers since {}; {} with team {}.",
        n.ticket_count,
        n.distinct_customers,
        rfc3339(n.first_ticket_at),
        n.state.as_str(),
        n.team,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_key_quotes_the_sev_id() {
        assert_eq!(group_key("SEV-12"), r#"{}:{sev_id="SEV-12"}"#);
        assert_eq!(group_key(r#"a"b"#), r#"{}:{sev_id="a\"b"}"#);
    }

    #[test]
    fn fingerprint_is_sixteen_hex_digits_stable_per_sev() {
        assert_eq!(fingerprint("SEV-12").len(), 16);
        assert_eq!(fingerprint("SEV-12"), fingerprint("SEV-12"));
        assert_ne!(fingerprint("SEV-12"), fingerprint("SEV-13"));
    }
}

//! The Alertmanager webhook payload, version "4"
//! (<https://prometheus.io/docs/alerting/latest/configuration/#webhook_config>), so any receiver
//! written for Alertmanager (chat bridges, ticketing hooks) takes SEVs unchanged. Each SEV is its
//! own group holding one alert, labelled with the installation that sent it.

use serde_json::{json, Map, Value};

use super::{extras, rfc3339, scoped, sev_digest_hex};
use crate::SevNotice;

/// What Alertmanager sends as `endsAt` while an alert is still firing (Go's zero time).
const STILL_FIRING: &str = "0001-01-01T00:00:00Z";

/// The webhook body for `receiver`; `external_url` is the backlink to sevloop, `installation`
/// its name (see [`scoped`]).
pub fn alertmanager(
    n: &SevNotice,
    receiver: &str,
    external_url: &str,
    installation: &str,
) -> Value {
    let status = status(n);
    let group = group_labels(&n.sev_id, installation);
    let mut labels = labels(n);
    labels.extend(group.clone());
    let annotations = annotations(n);
    json!({
        "version": "4",
        "groupKey": group_key(&group),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group,
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
            "fingerprint": fingerprint(&scoped(installation, &n.sev_id)),
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

/// What groups alerts: the SEV, and the installation when it has a name (sorted by name, as
/// Alertmanager keeps label sets).
fn group_labels(sev_id: &str, installation: &str) -> Map<String, Value> {
    let mut group = Map::new();
    if !installation.is_empty() {
        group.insert("installation".into(), installation.into());
    }
    group.insert("sev_id".into(), sev_id.into());
    group
}

/// Alertmanager's own form, `<route matchers>:<group labels>`, with no route (`{}`). Values are
/// quoted as JSON strings, which matches Go's `%q` for anything a SEV id or an installation's
/// name holds.
fn group_key(group: &Map<String, Value>) -> String {
    let labels: Vec<String> = group.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{}}:{{{}}}", labels.join(", "))
}

/// Alertmanager hashes the label set, but a SEV's labels change when it is rerouted; hashing the
/// (scoped) SEV id keeps one fingerprint for the SEV's whole life, in Alertmanager's
/// 16-hex-digit form.
fn fingerprint(scoped_sev_id: &str) -> String {
    sev_digest_hex(scoped_sev_id, 8)
}

fn labels(n: &SevNotice) -> Map<String, Value> {
    let mut labels = Map::new();
    labels.insert("alertname".into(), "SevloopSEV".into());
    labels.insert("severity".into(), n.severity.as_str().to_lowercase().into());
    labels.insert("team".into(), n.team.clone().into());
    labels.insert("product".into(), n.product.clone().into());
    labels.insert("cluster_id".into(), n.cluster_id.clone().into());
    labels
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
    fn group_key_quotes_the_sev_id_and_names_the_installation() {
        let key = |sev_id, installation| group_key(&group_labels(sev_id, installation));
        assert_eq!(key("SEV-12", ""), r#"{}:{sev_id="SEV-12"}"#);
        assert_eq!(key(r#"a"b"#, ""), r#"{}:{sev_id="a\"b"}"#);
        assert_eq!(
            key("SEV-12", "5e1f00c0ffee"),
            r#"{}:{installation="5e1f00c0ffee", sev_id="SEV-12"}"#
        );
    }

    #[test]
    fn fingerprint_is_sixteen_hex_digits_stable_per_sev() {
        assert_eq!(fingerprint("SEV-12").len(), 16);
        assert_eq!(fingerprint("SEV-12"), fingerprint("SEV-12"));
        assert_ne!(fingerprint("SEV-12"), fingerprint("SEV-13"));
        assert_ne!(fingerprint("SEV-12"), fingerprint(&scoped("a", "SEV-12")));
    }
}

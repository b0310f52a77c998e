//! One function per channel, each turning a [`SevNotice`] into the JSON body that channel's API
//! takes. Every string comes from the notice, which carries no ticket text; adding a field here
//! must keep it that way.

mod alertmanager;
mod helpdesk;
mod pagerduty;
mod slack;
mod webhook;

pub use alertmanager::alertmanager;
pub use helpdesk::helpdesk_note;
pub use pagerduty::pagerduty;
pub use slack::slack;
pub use webhook::webhook;

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use crate::SevNotice;

/// `[SEV2] SEV-12: title`, the one line every channel leads with.
fn headline(n: &SevNotice) -> String {
    format!("[{}] {}: {}", n.severity.as_str(), n.sev_id, n.title)
}

/// RFC 3339 in UTC with a `Z`, the form all three alerting APIs document; the same form serde
/// gives the notice's own timestamps, so one instant reads the same in every payload.
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Cuts `s` to at most `max` characters (not bytes, so never inside a character), marking a cut
/// with an ellipsis so a reader knows there was more.
fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `id` made unique across installations: SEV numbers and change ids start over in every
/// sevloop, so two sharing a receiver (staging and production, or a reinstall) would otherwise
/// fold their messages into each other's. An installation that had SEVs before it was named has
/// an empty name and keeps bare ids, so receivers still match what it sent before.
pub fn scoped(installation: &str, id: &str) -> String {
    if installation.is_empty() {
        id.to_owned()
    } else {
        format!("{installation}/{id}")
    }
}

/// Lowercase hex of the SHA-256 of the SEV id: a stable, fixed-length stand-in for the id where
/// a channel limits length or wants a fingerprint.
fn sev_digest_hex(sev_id: &str, bytes: usize) -> String {
    Sha256::digest(sev_id.as_bytes())
        .iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One optional fact of a notice that only some changes carry.
struct Extra<'a> {
    key: &'static str,
    label: &'static str,
    value: &'a str,
}

/// The optional facts present on this notice, in a fixed order.
fn extras(n: &SevNotice) -> Vec<Extra<'_>> {
    [
        ("reason", "Reason", &n.reason),
        ("previous_team", "Previously with", &n.previous_team),
        ("merged_into", "Merged into", &n.merged_into),
        ("escalated_to", "Escalated to", &n.escalated_to),
    ]
    .into_iter()
    .filter_map(|(key, label, value)| value.as_deref().map(|value| Extra { key, label, value }))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_characters_and_never_splits_one() {
        let long = "é".repeat(2000);
        let cut = truncate_chars(&long, 1024);
        assert_eq!(cut.chars().count(), 1024);
        assert!(cut.ends_with("é…"));
        assert_eq!(truncate_chars("short", 1024), "short");
    }

    #[test]
    fn digest_hex_has_two_characters_per_byte() {
        let hex = sev_digest_hex("SEV-12", 8);
        assert_eq!(hex.len(), 16);
        assert!(hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(hex, sev_digest_hex("SEV-12", 8));
        assert_ne!(hex, sev_digest_hex("SEV-13", 8));
    }
}

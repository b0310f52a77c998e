//! What leaves sevloop for people and their tools: a [`SevNotice`] (thin facts about one SEV
//! change, no ticket text, no personal data) rendered for each kind of channel, and the Standard
//! Webhooks signature of generic webhooks. Pure: no I/O, no clock; the dispatcher sends.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sevloop_core::{SevState, Severity};

pub mod catch_up;
pub mod formats;
pub mod signing;

pub use catch_up::{catch_up, CatchUp};
pub use formats::{alertmanager, helpdesk_note, pagerduty, scoped, slack, webhook};
pub use signing::{headers, sign, verify, SigningError, WebhookSecret};

/// What happened to a SEV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A cluster crossed a detection rule and the SEV opened.
    Opened,
    /// Counts or severity changed (more tickets attached).
    Updated,
    Acknowledged,
    Mitigated,
    Resolved,
    /// The team declined it; `reason` says why.
    Declined,
    /// It was resolved and the cluster spiked again: a regression.
    Reopened,
    /// It moved to another team; `previous_team` is where it was.
    Rerouted,
    /// The same move, as the previous team's own channels are told: no longer theirs, so their
    /// alerting tools close the alert they raised.
    ReroutedAway,
    /// It was merged into `merged_into`.
    Merged,
    /// Nobody acknowledged it within the team's ack timeout; it went to `escalated_to`.
    Escalated,
}

impl NoticeKind {
    /// Every kind, for code and tests that must cover them all.
    pub const ALL: [NoticeKind; 11] = [
        NoticeKind::Opened,
        NoticeKind::Updated,
        NoticeKind::Acknowledged,
        NoticeKind::Mitigated,
        NoticeKind::Resolved,
        NoticeKind::Declined,
        NoticeKind::Reopened,
        NoticeKind::Rerouted,
        NoticeKind::ReroutedAway,
        NoticeKind::Merged,
        NoticeKind::Escalated,
    ];

    /// True when the change ends the SEV for the people paged about it: alerting tools close
    /// their alert. A merged SEV lives on in the one it was merged into, a rerouted one with
    /// another team.
    pub fn closes(self) -> bool {
        matches!(
            self,
            NoticeKind::Resolved
                | NoticeKind::Declined
                | NoticeKind::Merged
                | NoticeKind::ReroutedAway
        )
    }

    /// The kind [`as_str`](Self::as_str) names; none for any other name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Opened => "opened",
            NoticeKind::Updated => "updated",
            NoticeKind::Acknowledged => "acknowledged",
            NoticeKind::Mitigated => "mitigated",
            NoticeKind::Resolved => "resolved",
            NoticeKind::Declined => "declined",
            NoticeKind::Reopened => "reopened",
            NoticeKind::Rerouted => "rerouted",
            NoticeKind::ReroutedAway => "rerouted_away",
            NoticeKind::Merged => "merged",
            NoticeKind::Escalated => "escalated",
        }
    }
}

/// One SEV change, as every channel is told about it. Thin on purpose: ids, title (already
/// redacted), severity, counts, team and a link; never ticket text or customer identifiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SevNotice {
    /// Unique and stable id of this change (the same on every retry and replay).
    pub event_id: String,
    pub kind: NoticeKind,
    pub sev_id: String,
    /// Title from the cluster label, redacted.
    pub title: String,
    pub severity: Severity,
    /// The SEV's state after the change.
    pub state: SevState,
    pub team: String,
    pub product: String,
    pub cluster_id: String,
    pub ticket_count: u64,
    pub distinct_customers: u64,
    pub first_ticket_at: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
    /// When the change happened.
    pub at: DateTime<Utc>,
    /// The SEV's page on the dashboard.
    pub url: String,
    /// Decline reason or reroute note (redacted), when the change has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_to: Option<String>,
}

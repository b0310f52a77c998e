//! The notices the integration tests render: one SEV, with each change it can go through.

// Each test binary uses part of this module.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use sevloop_core::{SevState, Severity};
use sevloop_notify::{NoticeKind, SevNotice};

/// A made-up integration key of the length PagerDuty requires.
pub const ROUTING_KEY: &str = "0123456789abcdef0123456789abcdef";
/// What a fresh installation is named (12 hex digits).
pub const INSTALLATION: &str = "5e1f00c0ffee";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("fixture timestamp parses")
}

/// SEV-12 after a change of `kind`, with the state and the optional facts that change implies.
pub fn notice(kind: NoticeKind) -> SevNotice {
    let mut n = SevNotice {
        event_id: format!("evt-SEV-12-{}", kind.as_str()),
        kind,
        sev_id: "SEV-12".into(),
        title: "Card payments declined at checkout".into(),
        severity: Severity::Sev2,
        state: state_after(kind),
        team: "payments".into(),
        product: "checkout".into(),
        cluster_id: "c-7f3a".into(),
        ticket_count: 42,
        distinct_customers: 31,
        first_ticket_at: at("2025-03-04T09:12:00Z"),
        opened_at: at("2025-03-04T09:30:00Z"),
        at: at("2025-03-04T10:15:00Z"),
        url: "https://sevloop.example.com/sevs/SEV-12".into(),
        reason: None,
        previous_team: None,
        merged_into: None,
        escalated_to: None,
    };
    match kind {
        NoticeKind::Opened => n.at = n.opened_at,
        NoticeKind::Declined => {
            n.reason = Some("expected: scheduled card network maintenance".into())
        }
        NoticeKind::Rerouted | NoticeKind::ReroutedAway => {
            n.previous_team = Some("payments".into());
            n.team = "fraud".into();
            n.reason = Some("declines come from the new fraud rules".into());
        }
        NoticeKind::Merged => n.merged_into = Some("SEV-9".into()),
        NoticeKind::Escalated => n.escalated_to = Some("payments-leads".into()),
        _ => {}
    }
    n
}

fn state_after(kind: NoticeKind) -> SevState {
    match kind {
        NoticeKind::Acknowledged => SevState::Acknowledged,
        NoticeKind::Mitigated => SevState::Mitigated,
        NoticeKind::Resolved => SevState::Resolved,
        NoticeKind::Declined => SevState::Declined,
        NoticeKind::Merged => SevState::Merged,
        _ => SevState::Open,
    }
}

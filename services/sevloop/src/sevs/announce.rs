//! Telling the world about a SEV change, inside the transaction that makes it: one outbox row
//! per channel of the owning team (and the broadcast channels), one for the SEV events topic,
//! and one per linked ticket for the helpdesk write-back. Each row's id is stable (derived from
//! the change), so it is its idempotency key and a replay queues nothing twice.

use chrono::{DateTime, Utc};
use serde_json::json;
use sevloop_core::catalog::HELPDESK;
use sevloop_core::{Catalog, SevState, Severity};
use sevloop_notify::{NoticeKind, SevNotice};
use sevloop_store::{Conn, NewNotification, SevRow, StoreError};

/// The outbox endpoint of the SEV events topic.
pub const SEV_EVENTS: &str = "sevloop:sev-events";
/// The kind of an outbox row that says a ticket was linked.
pub const TICKET_LINKED: &str = "ticket_linked";

/// What every announcement needs besides the SEV.
pub struct Announcer<'a> {
    pub catalog: &'a Catalog,
    pub public_url: &'a str,
    /// Wall-clock time the rows are queued at.
    pub now: DateTime<Utc>,
}

/// A SEV change: what happened, its stable id, when, and what it says beyond the SEV row.
pub struct Change<'a> {
    pub kind: NoticeKind,
    pub event_id: String,
    pub at: DateTime<Utc>,
    pub reason: Option<&'a str>,
    pub previous_team: Option<&'a str>,
    pub escalated_to: Option<&'a str>,
}

impl<'a> Change<'a> {
    pub fn new(kind: NoticeKind, event_id: impl Into<String>, at: DateTime<Utc>) -> Self {
        Change {
            kind,
            event_id: event_id.into(),
            at,
            reason: None,
            previous_team: None,
            escalated_to: None,
        }
    }
}

impl Announcer<'_> {
    /// The notice of `change` to `sev` (as it is after the change).
    pub fn notice(&self, sev: &SevRow, change: &Change) -> SevNotice {
        SevNotice {
            event_id: change.event_id.clone(),
            kind: change.kind,
            sev_id: sev.id.clone(),
            title: sev.title.clone(),
            severity: Severity::parse(&sev.severity).unwrap_or(Severity::Sev4),
            state: SevState::parse(&sev.state).unwrap_or(SevState::Open),
            team: sev.team.clone(),
            product: sev.product.clone(),
            cluster_id: sev.cluster_id.clone(),
            ticket_count: sev.ticket_count.max(0) as u64,
            distinct_customers: sev.distinct_customers.max(0) as u64,
            first_ticket_at: sev.first_ticket_at,
            opened_at: sev.opened_at,
            at: change.at,
            url: format!("{}/sevs/{}", self.public_url, sev.id),
            reason: change.reason.map(str::to_string),
            previous_team: change.previous_team.map(str::to_string),
            merged_into: sev.merged_into.clone(),
            escalated_to: change.escalated_to.map(str::to_string),
        }
    }

    /// Queues the change for the team's channels (or `team`'s, for an escalation), the
    /// broadcast channels, the channels of the team it escalated to (paged by the escalation,
    /// they hear it acknowledged and closed too) and the SEV events topic; and, when `helpdesk`
    /// names tickets, a write-back for each of them.
    pub async fn announce(
        &self,
        conn: &mut Conn,
        sev: &SevRow,
        change: &Change<'_>,
        team: &str,
        helpdesk: &[String],
    ) -> Result<(), StoreError> {
        let mut endpoints = self.catalog.channels_of(team);
        for channel in sev.escalated_to.iter().flat_map(|t| self.own_channels(t)) {
            if !endpoints.contains(&channel) {
                endpoints.push(channel);
            }
        }
        endpoints.push(SEV_EVENTS);
        let notice = self.to_endpoints(conn, sev, change, &endpoints).await?;
        self.write_back(conn, sev, &notice, change.kind.as_str(), helpdesk)
            .await
    }

    /// Queues the change for the own channels of `teams` that the SEV's team does not hear
    /// from: what the teams a SEV leaves hear (the team it left and the team that was paged
    /// for it). The broadcast channels, the topic and any channel the new team shares hear of
    /// the move once, from the new team's announcement; told the SEV left, a shared channel
    /// would close the alert the new team was just paged with.
    pub async fn tell_teams_left(
        &self,
        conn: &mut Conn,
        sev: &SevRow,
        change: &Change<'_>,
        teams: &[&str],
    ) -> Result<(), StoreError> {
        let staying = self.catalog.channels_of(&sev.team);
        let mut left: Vec<&str> = Vec::new();
        for channel in teams.iter().flat_map(|t| self.own_channels(t)) {
            if !staying.contains(&channel) && !left.contains(&channel) {
                left.push(channel);
            }
        }
        self.to_endpoints(conn, sev, change, &left)
            .await
            .map(|_| ())
    }

    /// `team`'s own channels, without the broadcast ones.
    fn own_channels(&self, team: &str) -> Vec<&str> {
        self.catalog
            .team(team)
            .map(|t| t.channels.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// One outbox row of the change per endpoint; returns the notice they carry.
    async fn to_endpoints(
        &self,
        conn: &mut Conn,
        sev: &SevRow,
        change: &Change<'_>,
        endpoints: &[&str],
    ) -> Result<SevNotice, StoreError> {
        let notice = self.notice(sev, change);
        let payload = json!({ "notice": notice });
        for endpoint in endpoints {
            let id = format!("{}.{endpoint}", change.event_id);
            let order = format!("{}/{endpoint}", sev.id);
            self.queue(
                conn,
                id,
                order,
                sev,
                endpoint,
                change.kind.as_str(),
                &payload,
            )
            .await?;
        }
        Ok(notice)
    }

    /// Queues, for each newly linked ticket, its link event on the topic and its write-back.
    pub async fn linked(
        &self,
        conn: &mut Conn,
        sev: &SevRow,
        tickets: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let change = Change::new(NoticeKind::Updated, format!("{}.link", sev.id), at);
        let notice = self.notice(sev, &change);
        for ticket_id in tickets {
            let payload = json!({ "notice": notice, "ticket_id": ticket_id });
            let id = format!("{}.link.{ticket_id}.{SEV_EVENTS}", sev.id);
            let order = format!("{}/{SEV_EVENTS}", sev.id);
            self.queue(conn, id, order, sev, SEV_EVENTS, TICKET_LINKED, &payload)
                .await?;
        }
        self.write_back(conn, sev, &notice, TICKET_LINKED, tickets)
            .await
    }

    async fn write_back(
        &self,
        conn: &mut Conn,
        sev: &SevRow,
        notice: &SevNotice,
        kind: &str,
        tickets: &[String],
    ) -> Result<(), StoreError> {
        if self.catalog.helpdesk.is_none() {
            return Ok(());
        }
        for ticket_id in tickets {
            let payload = json!({ "notice": notice, "ticket_id": ticket_id });
            let id = format!("{}.{kind}.{ticket_id}.{HELPDESK}", notice.event_id);
            // One stream per ticket, whatever its SEV: a merge's close of one SEV and its link
            // to the other must reach the ticket in the order they were made.
            let order = format!("{HELPDESK}/{ticket_id}");
            self.queue(conn, id, order, sev, HELPDESK, kind, &payload)
                .await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // one row's columns, named at the call
    async fn queue(
        &self,
        conn: &mut Conn,
        id: String,
        ordering_key: String,
        sev: &SevRow,
        endpoint: &str,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let row = NewNotification {
            id,
            sev_id: &sev.id,
            endpoint,
            ordering_key,
            kind,
            payload: payload.clone(),
            created_at: self.now,
        };
        sevloop_store::enqueue(conn, &row).await
    }
}

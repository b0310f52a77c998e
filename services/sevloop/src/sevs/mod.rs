//! The SEV side of the pipeline, inside the batch's transaction: detection decisions become SEVs
//! (opened, recurring, reopened as a regression), linked tickets and counts, people's actions
//! become state changes, and every change is announced through the outbox.

mod actions;
pub mod announce;

use chrono::{DateTime, Utc};
use serde_json::json;
use sevloop_core::redact::Redactor;
use sevloop_core::sev::Opening;
use sevloop_core::{Catalog, Escalation, RouteInput, SevState, TicketEvent};
use sevloop_notify::NoticeKind;
use sevloop_store::{Conn, NewSev, SevRow, StoreError};

pub use actions::ActionOutcome;
use announce::{Announcer, Change};

/// What the SEV side needs: the catalog in use, where the dashboard is, the redactor, and the
/// wall clock of this batch (for response times; decisions never read it).
pub struct Sevs<'a> {
    pub catalog: &'a Catalog,
    pub public_url: &'a str,
    pub redactor: &'a Redactor,
    pub now: DateTime<Utc>,
}

impl Sevs<'_> {
    fn announcer(&self) -> Announcer<'_> {
        Announcer {
            catalog: self.catalog,
            public_url: self.public_url,
            now: self.now,
        }
    }

    /// A cluster crossed the rules: open its SEV, or, when the cluster already has one, link the
    /// evidence to it (still open: a recurrence) or reopen it (resolved: a regression). Returns
    /// whether a new SEV opened.
    pub async fn escalate(
        &self,
        conn: &mut Conn,
        ticket: &TicketEvent,
        e: &Escalation,
        label: &[String],
    ) -> Result<bool, StoreError> {
        let latest = sevloop_store::latest_sev_of_cluster(conn, &e.cluster_id).await?;
        let state = latest.as_ref().and_then(|s| SevState::parse(&s.state));
        match (Opening::for_latest(state), latest) {
            (Opening::Recur, Some(sev)) => {
                self.again(conn, &sev, e, "recurred", NoticeKind::Updated)
                    .await
            }
            (Opening::Reopen, Some(sev)) => {
                sevloop_store::reopen(conn, &sev.id, self.now).await?;
                self.again(conn, &sev, e, "reopened", NoticeKind::Reopened)
                    .await
            }
            (_, previous) => {
                self.open(conn, ticket, e, label, previous.map(|s| s.id))
                    .await
            }
        }
    }

    async fn open(
        &self,
        conn: &mut Conn,
        ticket: &TicketEvent,
        e: &Escalation,
        label: &[String],
        previous_sev: Option<String>,
    ) -> Result<bool, StoreError> {
        let team = match sevloop_store::cluster_owner(conn, &e.cluster_id).await? {
            Some(team) if self.catalog.team(&team).is_some() => team,
            _ => self.route(ticket, label),
        };
        let title = self.redactor.redact_all(&format!(
            "{}: customers report {}",
            ticket.product,
            label.join(", ")
        ));
        let new = NewSev {
            escalation: e,
            title: &title,
            team: &team,
            product: &ticket.product,
            created_at: self.now,
            previous_sev: previous_sev.as_deref(),
        };
        let Some(sev_id) = sevloop_store::open_sev(conn, &new).await? else {
            return Ok(false);
        };
        let linked = sevloop_store::link_tickets(conn, &sev_id, &e.evidence, e.fired_at).await?;
        sevloop_store::update_severity(conn, &sev_id, e.fired_at).await?;
        let detail = json!({"rule": e.rule, "escalation_id": e.id, "window_start": e.window_start,
            "ticket_count": e.ticket_count, "distinct_customers": e.distinct_customers,
            "usual_in_span": e.verdict.expected, "span_minutes": e.verdict.span_minutes,
            "p_value": e.verdict.p_value, "moved_in": e.verdict.moved_in,
            "previous_sev": previous_sev});
        sevloop_store::add_sev_event(conn, &sev_id, "opened", "sevloop", e.fired_at, &detail)
            .await?;
        let sev = self.reread(conn, &sev_id).await?;
        let change = Change::new(NoticeKind::Opened, format!("{}.opened", e.id), e.fired_at);
        let announcer = self.announcer();
        announcer
            .announce(conn, &sev, &change, &sev.team, &[])
            .await?;
        announcer.linked(conn, &sev, &linked, e.fired_at).await?;
        tracing::info!(sev_id = %sev.id, cluster_id = %e.cluster_id, team = %sev.team,
            severity = %sev.severity, rule = %e.rule, tickets = e.ticket_count,
            customers = e.distinct_customers, "sev opened");
        Ok(true)
    }

    /// The cluster crossed again while it has a SEV: the evidence joins it.
    async fn again(
        &self,
        conn: &mut Conn,
        sev: &SevRow,
        e: &Escalation,
        what: &str,
        kind: NoticeKind,
    ) -> Result<bool, StoreError> {
        let linked = sevloop_store::link_tickets(conn, &sev.id, &e.evidence, e.fired_at).await?;
        sevloop_store::update_severity(conn, &sev.id, e.fired_at).await?;
        let detail = json!({"rule": e.rule, "escalation_id": e.id, "cluster_id": e.cluster_id,
            "ticket_count": e.ticket_count, "distinct_customers": e.distinct_customers});
        sevloop_store::add_sev_event(conn, &sev.id, what, "sevloop", e.fired_at, &detail).await?;
        let sev = self.reread(conn, &sev.id).await?;
        let change = Change::new(kind, format!("{}.{what}", e.id), e.fired_at);
        let announcer = self.announcer();
        announcer
            .announce(conn, &sev, &change, &sev.team, &[])
            .await?;
        announcer.linked(conn, &sev, &linked, e.fired_at).await?;
        tracing::info!(sev_id = %sev.id, cluster_id = %e.cluster_id, what, "sev escalated again");
        Ok(false)
    }

    /// A related cluster crossed while `sev_cluster`'s SEV is open: its evidence joins that SEV.
    pub async fn join(
        &self,
        conn: &mut Conn,
        e: &Escalation,
        sev_cluster: &str,
    ) -> Result<(), StoreError> {
        let Some(sev) = self.open_sev_of(conn, sev_cluster).await? else {
            return Ok(());
        };
        let detail = json!({"cluster_id": e.cluster_id, "escalation_id": e.id,
            "ticket_count": e.ticket_count, "distinct_customers": e.distinct_customers});
        sevloop_store::add_sev_event(
            conn,
            &sev.id,
            "cluster_joined",
            "sevloop",
            e.fired_at,
            &detail,
        )
        .await?;
        self.link(conn, &sev, &e.evidence, e.fired_at).await?;
        tracing::info!(sev_id = %sev.id, cluster_id = %e.cluster_id, "related cluster joined a sev");
        Ok(())
    }

    /// A ticket of an open episode: link it to the episode's SEV.
    pub async fn attach(
        &self,
        conn: &mut Conn,
        ticket: &TicketEvent,
        sev_cluster: &str,
    ) -> Result<(), StoreError> {
        if let Some(sev) = self.open_sev_of(conn, sev_cluster).await? {
            let ids = [ticket.ticket_id.clone()];
            self.link(conn, &sev, &ids, ticket.event_time).await?;
        }
        Ok(())
    }

    /// Links tickets, updates counts and severity, and announces what changed.
    async fn link(
        &self,
        conn: &mut Conn,
        sev: &SevRow,
        ids: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let linked = sevloop_store::link_tickets(conn, &sev.id, ids, at).await?;
        if linked.is_empty() {
            return Ok(());
        }
        let raised = sevloop_store::update_severity(conn, &sev.id, at).await?;
        let sev = self.reread(conn, &sev.id).await?;
        let announcer = self.announcer();
        if let Some(severity) = raised {
            let detail = json!({"severity": severity.as_str(), "distinct_customers": sev.distinct_customers});
            sevloop_store::add_sev_event(conn, &sev.id, "severity_changed", "sevloop", at, &detail)
                .await?;
            let id = format!("{}.severity.{}.{}", sev.id, severity.as_str(), sev.reopened);
            let change = Change::new(NoticeKind::Updated, id, at);
            announcer
                .announce(conn, &sev, &change, &sev.team, &[])
                .await?;
        }
        announcer.linked(conn, &sev, &linked, at).await
    }

    /// The SEV of `cluster_id`'s episode, if still open.
    async fn open_sev_of(
        &self,
        conn: &mut Conn,
        cluster_id: &str,
    ) -> Result<Option<SevRow>, StoreError> {
        let sev = sevloop_store::latest_sev_of_cluster(conn, cluster_id).await?;
        Ok(sev.filter(|s| SevState::parse(&s.state).is_some_and(SevState::is_open)))
    }

    async fn reread(&self, conn: &mut Conn, sev_id: &str) -> Result<SevRow, StoreError> {
        sevloop_store::sev_in(conn, sev_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                what: "SEV",
                id: sev_id.to_string(),
                reason: "vanished inside its own transaction".into(),
            })
    }

    fn route(&self, ticket: &TicketEvent, label: &[String]) -> String {
        self.catalog
            .route(&RouteInput {
                product: &ticket.product,
                component: ticket.component.as_deref(),
                tags: &ticket.tags,
                label,
            })
            .to_string()
    }
}

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
            "p_value": e.verdict.p_value, "moved_in": e.verdict.moved_in, "region": e.verdict.region,
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

    /// The cluster, or one related to it, crossed again while it has a SEV: the evidence joins
    /// it and the team is told (`what` names the change in the timeline).
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

    /// A related cluster crossed while `sev_cluster`'s SEV is open: its evidence joins that SEV,
    /// and the team hears of it (the SEV may be mitigated and the complaint growing again).
    pub async fn join(
        &self,
        conn: &mut Conn,
        e: &Escalation,
        sev_cluster: &str,
    ) -> Result<(), StoreError> {
        if let Some(sev) = self.open_sev_of(conn, sev_cluster).await? {
            sevloop_store::cover_cluster(conn, &sev.id, &e.cluster_id, e.fired_at).await?;
            self.again(conn, &sev, e, "cluster_joined", NoticeKind::Updated)
                .await?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use sevloop_core::detect::{escalation_id, Verdict};

    const CATALOG: &str = r#"
default_team = "cards"
[teams.cards]
channels = ["cards-slack"]
[channels.cards-slack]
kind = "slack"
url = "http://127.0.0.1:9/hook"
"#;

    fn escalation(cluster_id: &str, tickets: &[&str], minute: u32) -> Escalation {
        let at = DateTime::parse_from_rfc3339(&format!("2024-01-03T14:{minute:02}:00Z"))
            .map(|t| t.with_timezone(&Utc))
            .expect("a valid time");
        Escalation {
            id: escalation_id(cluster_id, 1, "spike"),
            cluster_id: cluster_id.into(),
            rule: "spike".into(),
            episode: 1,
            window_start: at,
            fired_at: at,
            first_ticket_at: at,
            ticket_count: tickets.len() as u64,
            distinct_customers: tickets.len() as u64,
            evidence: tickets.iter().map(|t| t.to_string()).collect(),
            verdict: Verdict {
                tickets: tickets.len() as u64,
                customers: tickets.len() as u64,
                spike: true,
                ..Verdict::default()
            },
        }
    }

    /// The team hears of a related cluster's crossing joining its SEV, whatever state the SEV
    /// is in (a mitigated SEV whose complaint grows again was once told nothing).
    #[tokio::test]
    async fn a_cluster_joining_a_sev_is_announced_to_its_team() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = sevloop_store::Store::connect(&url).await.expect("store");
        let catalog = Catalog::parse(CATALOG, "catalog.toml").expect("catalog");
        let redactor = Redactor::new();
        let sevs = Sevs {
            catalog: &catalog,
            public_url: "http://sevloop.test",
            redactor: &redactor,
            now: Utc::now(),
        };
        let ticket = |i: u32| {
            TicketEvent::from_value(serde_json::json!({"ticket_id": format!("T-{i}"),
                "event": "created", "event_time": "2024-01-03T14:00:00Z", "subject": "Card declined",
                "body": "My card is declined", "product": "cards", "channel": "email",
                "source": "test", "customer": {"id": format!("c-{i}"), "tier": "free"}}))
            .expect("a valid ticket")
        };
        let mut tx = store.begin().await.expect("tx");
        for i in 1..=4u32 {
            let assignment = sevloop_core::Assignment {
                cluster_id: format!("cards:{}", i.div_ceil(2)),
                similarity: 0.9,
                matched_terms: Vec::new(),
                new_cluster: false,
            };
            sevloop_store::insert_ticket(&mut tx, &ticket(i), &assignment, None, 0, i64::from(i))
                .await
                .expect("ticket stored");
        }
        let first = escalation("cards:1", &["T-1", "T-2"], 10);
        assert!(sevs
            .escalate(&mut tx, &ticket(1), &first, &["card".into()])
            .await
            .expect("opened"));
        let sev_id = sevloop_store::latest_sev_of_cluster(&mut tx, "cards:1")
            .await
            .expect("read")
            .expect("a SEV")
            .id;
        let mitigate = sevloop_core::sev::SevAction::Mitigate;
        sevloop_store::apply_transition(&mut tx, &sev_id, &mitigate, SevState::Mitigated, sevs.now)
            .await
            .expect("mitigated");
        let joining = escalation("cards:2", &["T-3", "T-4"], 20);
        sevs.join(&mut tx, &joining, "cards:1")
            .await
            .expect("joined");
        tx.commit().await.expect("commit");

        let to_team: Vec<String> = store
            .notifications_of(&sev_id)
            .await
            .expect("notifications")
            .into_iter()
            .filter(|n| n.endpoint == "cards-slack")
            .map(|n| n.kind)
            .collect();
        assert_eq!(to_team, ["opened", "updated"]);
        let sev = store.sev(&sev_id).await.expect("read").expect("the SEV");
        assert_eq!(sev.ticket_count, 4, "the joining evidence is linked");
    }
}

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
        let sev = self.reread(conn, &sev_id).await?;
        let detail = json!({"rule": e.rule, "escalation_id": e.id, "window_start": e.window_start,
            "ticket_count": e.ticket_count, "distinct_customers": e.distinct_customers,
            "severity": sev.severity,
            "usual_in_span": e.verdict.expected, "span_minutes": e.verdict.span_minutes,
            "p_value": e.verdict.p_value, "moved_in": e.verdict.moved_in, "region": e.verdict.region,
            "previous_sev": previous_sev});
        sevloop_store::add_sev_event(conn, &sev_id, "opened", "sevloop", e.fired_at, &detail)
            .await?;
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
        let raised = sevloop_store::update_severity(conn, &sev.id, e.fired_at).await?;
        let detail = json!({"rule": e.rule, "escalation_id": e.id, "cluster_id": e.cluster_id,
            "ticket_count": e.ticket_count, "distinct_customers": e.distinct_customers});
        sevloop_store::add_sev_event(conn, &sev.id, what, "sevloop", e.fired_at, &detail).await?;
        let sev = self.reread(conn, &sev.id).await?;
        // The notice below carries the new severity; the timeline says it changed.
        if raised.is_some() {
            severity_changed(conn, &sev, e.fired_at).await?;
        }
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
            severity_changed(conn, &sev, at).await?;
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

/// Puts `sev`'s severity, just raised, on its timeline.
async fn severity_changed(
    conn: &mut Conn,
    sev: &SevRow,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let detail = json!({"severity": sev.severity, "distinct_customers": sev.distinct_customers});
    sevloop_store::add_sev_event(conn, &sev.id, "severity_changed", "sevloop", at, &detail).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sevloop_core::detect::{escalation_id, Verdict};
    use sevloop_core::sev::{SevAction, SevActionRequest};

    const CATALOG: &str = r#"
default_team = "cards"
[teams.cards]
channels = ["cards-slack"]
escalate_to = "leads"
[teams.leads]
channels = ["leads-slack"]
[teams.payments]
channels = ["cards-slack", "payments-slack"]
[channels.leads-slack]
kind = "slack"
url = "http://127.0.0.1:9/leads"
[channels.payments-slack]
kind = "slack"
url = "http://127.0.0.1:9/payments"
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

    /// A SEV store in a temporary directory, the catalog and the redactor.
    struct Harness {
        _dir: tempfile::TempDir,
        store: sevloop_store::Store,
        catalog: Catalog,
        redactor: Redactor,
    }

    impl Harness {
        fn sevs(&self) -> Sevs<'_> {
            Sevs {
                catalog: &self.catalog,
                public_url: "http://sevloop.test",
                redactor: &self.redactor,
                now: Utc::now(),
            }
        }
    }

    async fn harness() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = sevloop_store::Store::connect(&url).await.expect("store");
        let catalog = Catalog::parse(CATALOG, "catalog.toml").expect("catalog");
        Harness {
            _dir: dir,
            store,
            catalog,
            redactor: Redactor::new(),
        }
    }

    /// Applies `request`, which must apply.
    async fn applies(sevs: &Sevs<'_>, tx: &mut Conn, request: &SevActionRequest) {
        let done = sevs.act(tx, request).await;
        assert!(
            matches!(done, Ok(ActionOutcome::Applied { .. })),
            "{done:?}"
        );
    }

    /// Flags `sev_id` as escalated to leads, as the ack-timeout sweep does.
    async fn escalate_to_leads(sevs: &Sevs<'_>, tx: &mut Conn, sev_id: &str) {
        let read = sevs.reread(tx, sev_id).await.expect("read");
        let escalated = sevloop_store::mark_escalated(tx, &read, "leads", sevs.now).await;
        assert!(escalated.expect("escalated"));
    }

    fn reroute_to_payments() -> SevAction {
        SevAction::Reroute {
            team: "payments".into(),
            note: None,
        }
    }

    fn ticket(i: u32) -> TicketEvent {
        TicketEvent::from_value(serde_json::json!({"ticket_id": format!("T-{i}"),
            "event": "created", "event_time": "2024-01-03T14:00:00Z", "subject": "Card declined",
            "body": "My card is declined", "product": "cards", "channel": "email",
            "source": "test", "customer": {"id": format!("c-{i}"), "tier": "free"}}))
        .expect("a valid ticket")
    }

    /// Stores tickets 1..=n, two to a cluster (cards:1, cards:2, ...), and opens cards:1's SEV
    /// on the first two. Returns its id.
    async fn open_sev(sevs: &Sevs<'_>, tx: &mut Conn, n: u32) -> String {
        for i in 1..=n {
            let assignment = sevloop_core::Assignment {
                cluster_id: format!("cards:{}", i.div_ceil(2)),
                similarity: 0.9,
                matched_terms: Vec::new(),
                new_cluster: false,
            };
            sevloop_store::insert_ticket(tx, &ticket(i), &assignment, None, 0, i64::from(i))
                .await
                .expect("ticket stored");
        }
        let first = escalation("cards:1", &["T-1", "T-2"], 10);
        assert!(sevs
            .escalate(tx, &ticket(1), &first, &["card".into()])
            .await
            .expect("opened"));
        sevloop_store::latest_sev_of_cluster(tx, "cards:1")
            .await
            .expect("read")
            .expect("a SEV")
            .id
    }

    fn request(sev_id: &str, n: u32, actor_role: &str, action: SevAction) -> SevActionRequest {
        SevActionRequest {
            action_id: format!("act-{n}"),
            sev_id: sev_id.into(),
            product: "cards".into(),
            action,
            actor_role: actor_role.into(),
            requested_at: Utc::now(),
        }
    }

    /// The team hears of a related cluster's crossing joining its SEV, whatever state the SEV
    /// is in (a mitigated SEV whose complaint grows again was once told nothing).
    #[tokio::test]
    async fn a_cluster_joining_a_sev_is_announced_to_its_team() {
        let h = harness().await;
        let (sevs, store) = (h.sevs(), &h.store);
        let mut tx = store.begin().await.expect("tx");
        let sev_id = open_sev(&sevs, &mut tx, 4).await;
        let mitigate = SevAction::Mitigate;
        sevloop_store::apply_transition(&mut tx, &sev_id, &mitigate, SevState::Mitigated, sevs.now)
            .await
            .expect("mitigated");
        let joining = escalation("cards:2", &["T-3", "T-4"], 20);
        sevs.join(&mut tx, &joining, "cards:1")
            .await
            .expect("joined");
        tx.commit().await.expect("commit");

        assert_eq!(
            heard(store, &sev_id, "cards-slack").await,
            ["opened", "updated"]
        );
        let sev = store.sev(&sev_id).await.expect("read").expect("the SEV");
        assert_eq!(sev.ticket_count, 4, "the joining evidence is linked");
    }

    /// What the API checked when it took a request may no longer hold when the pipeline applies
    /// it, and a record on the log may hold text no database takes: both are refused, recorded,
    /// and fail nothing.
    #[tokio::test]
    async fn stale_and_unstorable_actions_are_refused_not_failed() {
        let h = harness().await;
        let (sevs, store) = (h.sevs(), &h.store);
        let mut tx = store.begin().await.expect("tx");
        let sev_id = open_sev(&sevs, &mut tx, 2).await;
        let reroute = reroute_to_payments();
        applies(&sevs, &mut tx, &request(&sev_id, 1, "team:cards", reroute)).await;
        // Asked for by cards before the reroute was applied.
        let decline = SevAction::Decline {
            reason: "not ours".into(),
        };
        let stale = sevs
            .act(&mut tx, &request(&sev_id, 2, "team:cards", decline.clone()))
            .await;
        assert_eq!(
            stale.expect("recorded"),
            ActionOutcome::Refused(format!("{sev_id} is now with team `payments`"))
        );
        let nul = SevAction::Decline {
            reason: "dup\u{0}".into(),
        };
        let refused = sevs.act(&mut tx, &request(&sev_id, 3, "admin", nul)).await;
        assert_eq!(
            refused.expect("recorded, not a failed batch"),
            ActionOutcome::Refused("the request holds a control character".into())
        );
        applies(
            &sevs,
            &mut tx,
            &request(&sev_id, 4, "team:payments", decline),
        )
        .await;
        tx.commit().await.expect("commit");
        let sev = store.sev(&sev_id).await.expect("read").expect("the SEV");
        assert_eq!(
            (sev.state.as_str(), sev.team.as_str()),
            ("declined", "payments")
        );
    }

    /// Kinds of the SEV's notifications to `endpoint`, in the order queued.
    async fn heard(store: &sevloop_store::Store, sev_id: &str, endpoint: &str) -> Vec<String> {
        let all = store.notifications_of(sev_id).await.expect("notifications");
        all.into_iter()
            .filter(|n| n.endpoint == endpoint)
            .map(|n| n.kind)
            .collect()
    }

    /// The team paged by an escalation hears the SEV acknowledged and closed (its alert would
    /// stay open for good otherwise), and hears it leave when it is rerouted; a channel the new
    /// team shares is not told the SEV left it.
    #[tokio::test]
    async fn the_escalation_target_hears_the_sev_close_and_a_shared_channel_keeps_its_page() {
        let h = harness().await;
        let (sevs, store) = (h.sevs(), &h.store);
        let mut tx = store.begin().await.expect("tx");
        let resolved = open_sev(&sevs, &mut tx, 4).await;
        escalate_to_leads(&sevs, &mut tx, &resolved).await;
        for (n, action) in [(1, SevAction::Acknowledge), (2, SevAction::Resolve)] {
            applies(&sevs, &mut tx, &request(&resolved, n, "admin", action)).await;
        }
        tx.commit().await.expect("commit");
        assert_eq!(
            heard(store, &resolved, "leads-slack").await,
            ["acknowledged", "resolved"]
        );

        let mut tx = store.begin().await.expect("tx");
        let first = escalation("cards:2", &["T-3", "T-4"], 30);
        assert!(sevs
            .escalate(&mut tx, &ticket(3), &first, &["card".into()])
            .await
            .expect("opened"));
        let rerouted = sevloop_store::latest_sev_of_cluster(&mut tx, "cards:2")
            .await
            .expect("read")
            .expect("a SEV")
            .id;
        escalate_to_leads(&sevs, &mut tx, &rerouted).await;
        let reroute = reroute_to_payments();
        applies(&sevs, &mut tx, &request(&rerouted, 3, "admin", reroute)).await;
        tx.commit().await.expect("commit");
        assert_eq!(
            heard(store, &rerouted, "leads-slack").await,
            ["rerouted_away"]
        );
        assert_eq!(
            heard(store, &rerouted, "cards-slack").await,
            ["opened", "rerouted"],
            "shared with payments: it keeps the page payments now has"
        );
        assert_eq!(
            heard(store, &rerouted, "payments-slack").await,
            ["rerouted"]
        );
    }

    /// A crossing that raises a SEV's severity says so on the timeline, as a single linked
    /// ticket that raises it does; the opened event says what it opened at.
    #[tokio::test]
    async fn a_recurrence_that_raises_severity_puts_it_on_the_timeline() {
        let h = harness().await;
        let (sevs, store) = (h.sevs(), &h.store);
        let mut tx = store.begin().await.expect("tx");
        let sev_id = open_sev(&sevs, &mut tx, 12).await;
        let ids: Vec<String> = (3..=12).map(|i| format!("T-{i}")).collect();
        let evidence: Vec<&str> = ids.iter().map(String::as_str).collect();
        let again = Escalation {
            id: escalation_id("cards:1", 2, "spike"),
            episode: 2,
            ..escalation("cards:1", &evidence, 40)
        };
        assert!(!sevs
            .escalate(&mut tx, &ticket(12), &again, &["card".into()])
            .await
            .expect("recurred"));
        tx.commit().await.expect("commit");
        let timeline = store.sev_timeline(&sev_id).await.expect("timeline");
        let kinds: Vec<&str> = timeline.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["opened", "recurred", "severity_changed"]);
        assert_eq!(timeline[0].detail["severity"], "SEV4");
        assert_eq!(timeline[2].detail["severity"], "SEV3");
    }

    /// A cluster that joined a SEV belongs to it: a reroute takes it along, closing the SEV
    /// ends its episode too, and when it crosses again on its own the SEV reopens (a
    /// regression), not a second SEV with no link to the first.
    #[tokio::test]
    async fn a_cluster_that_joined_a_sev_ends_with_it_and_reopens_it() {
        let h = harness().await;
        let (sevs, store) = (h.sevs(), &h.store);
        let mut tx = store.begin().await.expect("tx");
        let sev_id = open_sev(&sevs, &mut tx, 6).await;
        let joining = escalation("cards:2", &["T-3", "T-4"], 20);
        sevs.join(&mut tx, &joining, "cards:1")
            .await
            .expect("joined");
        let reroute = reroute_to_payments();
        applies(&sevs, &mut tx, &request(&sev_id, 0, "admin", reroute)).await;
        for cluster in ["cards:1", "cards:2"] {
            let owner = sevloop_store::cluster_owner(&mut tx, cluster)
                .await
                .expect("owner");
            assert_eq!(owner.as_deref(), Some("payments"), "{cluster}");
        }
        let resolved = sevs
            .act(&mut tx, &request(&sev_id, 1, "admin", SevAction::Resolve))
            .await
            .expect("resolved");
        assert_eq!(
            resolved,
            ActionOutcome::Applied {
                ended: vec!["cards:1".into(), "cards:2".into()]
            }
        );
        let back = escalation("cards:2", &["T-5", "T-6"], 50);
        let opened = sevs
            .escalate(&mut tx, &ticket(5), &back, &["card".into()])
            .await
            .expect("escalated");
        tx.commit().await.expect("commit");
        assert!(!opened, "no second SEV");
        let sev = store.sev(&sev_id).await.expect("read").expect("the SEV");
        assert_eq!((sev.state.as_str(), sev.reopened), ("open", 1));
        assert_eq!(sev.ticket_count, 6);
    }
}

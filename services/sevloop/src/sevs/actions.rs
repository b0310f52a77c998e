//! People's actions on SEVs, applied in log order. An action that no longer fits (the SEV was
//! closed since it was asked for, say) is recorded as refused with the reason; it never fails
//! the batch.

use serde_json::json;
use sevloop_core::access::Role;
use sevloop_core::sev::{SevAction, SevActionRequest};
use sevloop_core::SevState;
use sevloop_notify::NoticeKind;
use sevloop_store::{ActionRow, Conn, SevRow, StoreError};

use super::announce::Change;
use super::Sevs;

/// What applying an action came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionOutcome {
    /// Applied. `ended` names the clusters whose open episodes end with it (the SEV was
    /// resolved, declined or merged: every cluster it covers, the ones that joined it or came
    /// with a SEV merged into it too), so their next crossing is a new episode.
    Applied {
        ended: Vec<String>,
    },
    Refused(String),
    /// Seen before (a replayed record): nothing to do.
    Duplicate,
}

impl Sevs<'_> {
    pub async fn act(
        &self,
        conn: &mut Conn,
        record: &SevActionRequest,
    ) -> Result<ActionOutcome, StoreError> {
        // Only text a database takes is stored or looked up; a record that held anything else
        // is refused (the API refuses such text; the log may hold records from elsewhere).
        let request = &record.without_controls();
        if sevloop_store::action_seen(conn, &request.action_id).await? {
            return Ok(ActionOutcome::Duplicate);
        }
        let outcome = if request != record {
            ActionOutcome::Refused("the request holds a control character".into())
        } else {
            match self.check(conn, request).await? {
                Err(why) => ActionOutcome::Refused(why),
                Ok((sev, next)) => self.apply(conn, request, &sev, next).await?,
            }
        };
        let text = match &outcome {
            ActionOutcome::Refused(why) => format!("refused: {why}"),
            _ => "applied".to_string(),
        };
        tracing::info!(sev_id = %request.sev_id, action = request.action.kind(),
            outcome = %text, "sev action");
        let row = ActionRow {
            action_id: request.action_id.clone(),
            sev_id: request.sev_id.clone(),
            kind: request.action.kind().to_string(),
            // A plain enum of strings always serialises.
            request: serde_json::to_value(&request.action).unwrap_or_default(),
            actor_role: request.actor_role.clone(),
            requested_at: request.requested_at,
            outcome: text,
        };
        sevloop_store::record_action(conn, &row).await?;
        Ok(outcome)
    }

    /// The SEV and its next state, or why the action does not apply.
    async fn check(
        &self,
        conn: &mut Conn,
        request: &SevActionRequest,
    ) -> Result<Result<(SevRow, SevState), String>, StoreError> {
        let Some(sev) = sevloop_store::sev_in(conn, &request.sev_id).await? else {
            return Ok(Err(format!("{} does not exist", request.sev_id)));
        };
        // The API checked the team when it took the request; a reroute applied since then
        // hands the SEV to a team whose SEV this team may no longer act on.
        if Role::team_of_actor(&request.actor_role).is_some_and(|team| team != sev.team) {
            return Ok(Err(format!("{} is now with team `{}`", sev.id, sev.team)));
        }
        let state = SevState::parse(&sev.state).unwrap_or(SevState::Open);
        let next = match state.after(&request.action) {
            Ok(next) => next,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let fits = match &request.action {
            SevAction::Reroute { team, .. } if self.catalog.team(team).is_none() => {
                Err(format!("team `{team}` is not in the catalog"))
            }
            SevAction::Reroute { team, .. } if *team == sev.team => {
                Err(format!("{} is already with team `{team}`", sev.id))
            }
            SevAction::Merge { into } => self.merge_target(conn, &sev, into).await?,
            _ => Ok(()),
        };
        Ok(fits.map(|()| (sev, next)))
    }

    async fn merge_target(
        &self,
        conn: &mut Conn,
        sev: &SevRow,
        into: &str,
    ) -> Result<Result<(), String>, StoreError> {
        if into == sev.id {
            return Ok(Err("a SEV cannot be merged into itself".into()));
        }
        let target = sevloop_store::sev_in(conn, into).await?;
        Ok(match target {
            None => Err(format!("{into} does not exist")),
            Some(t) if !SevState::parse(&t.state).is_some_and(SevState::is_open) => {
                Err(format!("{into} is {}; merge into an open SEV", t.state))
            }
            Some(_) => Ok(()),
        })
    }

    async fn apply(
        &self,
        conn: &mut Conn,
        request: &SevActionRequest,
        before: &SevRow,
        next: SevState,
    ) -> Result<ActionOutcome, StoreError> {
        let (action, at) = (&request.action, request.requested_at);
        sevloop_store::apply_transition(conn, &before.id, action, next, at).await?;
        let (kind, detail, reason) = describe(action, before);
        sevloop_store::add_sev_event(
            conn,
            &before.id,
            kind.as_str(),
            &request.actor_role,
            at,
            &detail,
        )
        .await?;
        if let SevAction::Reroute { team, .. } = action {
            // Every cluster the SEV covers: one that joined it is the same complaint.
            for cluster_id in sevloop_store::sev_cluster_ids(conn, &before.id).await? {
                sevloop_store::set_cluster_owner(conn, &cluster_id, team, &before.id, at).await?;
            }
        }
        let sev = self.reread(conn, &before.id).await?;
        self.announce_action(conn, request, before, &sev, kind, reason.as_deref())
            .await?;
        // After the merged SEV's close, so each ticket hears it joined the other SEV last.
        if let SevAction::Merge { into } = action {
            self.merge_links(conn, before, into, at).await?;
        }
        let ended = if kind.closes() {
            sevloop_store::sev_cluster_ids(conn, &before.id).await?
        } else {
            Vec::new()
        };
        Ok(ActionOutcome::Applied { ended })
    }

    /// Tells the SEV's team what `request` did to it (`before` → `sev`), and, for a reroute,
    /// the teams it left.
    async fn announce_action(
        &self,
        conn: &mut Conn,
        request: &SevActionRequest,
        before: &SevRow,
        sev: &SevRow,
        kind: NoticeKind,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let rerouted = matches!(request.action, SevAction::Reroute { .. });
        let change = Change {
            reason,
            previous_team: rerouted.then_some(before.team.as_str()),
            ..Change::new(kind, request.action_id.clone(), request.requested_at)
        };
        // Support sees a SEV's end on every ticket it links.
        let tickets = if kind.closes() {
            sevloop_store::sev_ticket_ids(conn, &sev.id).await?
        } else {
            Vec::new()
        };
        let announcer = self.announcer();
        announcer
            .announce(conn, sev, &change, &sev.team, &tickets)
            .await?;
        if !rerouted {
            return Ok(());
        }
        // The teams it left close the alerts they were paged with.
        let away = Change {
            kind: NoticeKind::ReroutedAway,
            event_id: format!("{}.away", request.action_id),
            ..change
        };
        let left: Vec<&str> = std::iter::once(before.team.as_str())
            .chain(before.escalated_to.as_deref())
            .collect();
        announcer.tell_teams_left(conn, sev, &away, &left).await
    }

    /// A merged SEV's tickets count toward the SEV it went into.
    async fn merge_links(
        &self,
        conn: &mut Conn,
        from: &SevRow,
        into: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        let tickets = sevloop_store::sev_ticket_ids(conn, &from.id).await?;
        let target = self.reread(conn, into).await?;
        let detail = json!({"merged": from.id, "tickets": tickets.len()});
        sevloop_store::add_sev_event(conn, into, "sev_merged_in", "sevloop", at, &detail).await?;
        sevloop_store::cover_clusters_of(conn, &from.id, into, at).await?;
        self.link(conn, &target, &tickets, at).await
    }
}

/// The notice kind, timeline detail and visible reason of an action.
fn describe(
    action: &SevAction,
    before: &SevRow,
) -> (NoticeKind, serde_json::Value, Option<String>) {
    match action {
        SevAction::Acknowledge => (NoticeKind::Acknowledged, json!({}), None),
        SevAction::Mitigate => (NoticeKind::Mitigated, json!({}), None),
        SevAction::Resolve => (NoticeKind::Resolved, json!({}), None),
        SevAction::Decline { reason } => (
            NoticeKind::Declined,
            json!({ "reason": reason }),
            Some(reason.clone()),
        ),
        SevAction::Reroute { team, note } => (
            NoticeKind::Rerouted,
            json!({"from": before.team, "to": team, "note": note}),
            note.clone(),
        ),
        SevAction::Merge { into } => (NoticeKind::Merged, json!({ "into": into }), None),
    }
}

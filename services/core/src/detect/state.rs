//! A cluster's detection state: its window of recent complaints, its history (the baseline) and
//! its open episode. Checkpointed with the cluster; every decision is a function of the tickets
//! and their event times, so a replay decides the same.

use std::collections::{BTreeSet, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use super::history::History;
use super::judge::Judgement;
use super::rules::Rules;
use super::{escalation_id, event_span, Decision, Escalation, Policy};
use crate::ticket::Tier;

/// Most members a window remembers; far above any sensible `min_tickets`.
const MAX_WINDOW_MEMBERS: usize = 10_000;

/// One counted complaint inside a cluster's window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub ticket_id: String,
    pub customer_id: String,
    #[serde(default = "free")]
    pub tier: Tier,
    pub at: DateTime<Utc>,
    /// The cluster the ticket would have joined otherwise (see [`crate::cluster::Placement`]);
    /// in a boundary, the cluster it joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<u64>,
}

fn free() -> Tier {
    Tier::Free
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectorState {
    /// In event-time order (a late ticket takes its place; ties in the order counted), so a
    /// span of it is found by binary search and the window slides from the front.
    #[serde(deserialize_with = "in_event_time_order")]
    pub window: VecDeque<Member>,
    /// How many episodes this cluster has had.
    pub episode: u32,
    /// An episode is open: new tickets attach to its SEV instead of escalating again.
    pub active: bool,
    /// Tickets that have left the window: the cluster's recent history, for its baseline.
    #[serde(default)]
    pub history: History,
    /// Event time of the cluster's first counted ticket.
    #[serde(default)]
    pub first_at: Option<DateTime<Utc>>,
    /// While active: the cluster whose SEV this cluster's tickets are linked to.
    #[serde(default)]
    pub sev_cluster: Option<String>,
    /// While active: the latest event time at which the window was hot (see [`Judgement::hot`]).
    #[serde(default)]
    pub hot_at: Option<DateTime<Utc>>,
    /// While active: the episode was opened on the cluster's region, which then keeps it hot
    /// too (its neighbourhood may never stand out).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_region: bool,
    /// The cluster's boundary: tickets of other clusters that came within `near_margin` of
    /// joining this one, with their own window and history. With the cluster, its region (see
    /// [`super::SpikeRule::region_gate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary: Option<Box<DetectorState>>,
    /// This state tallies a boundary, not a cluster: believed with next to no prior, and no
    /// part of whether a judged group is young or judgeable.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_boundary: bool,
}

impl DetectorState {
    /// Whether a related cluster crossing at `end` may join the SEV this cluster's episode is
    /// linked to: only while the episode was hot within the floor's window, so the two burst
    /// together. (An episode whose cluster gets no more tickets never ends by itself: without
    /// this, distinct complaints hours apart chained into one SEV.)
    pub fn open_to_join(&self, end: DateTime<Utc>, rules: &Rules) -> bool {
        self.active
            && self
                .hot_at
                .is_some_and(|hot| end - hot <= super::event_span(rules.floor.window))
    }

    pub fn decide(
        &mut self,
        cluster_id: &str,
        judged: Judgement,
        end: DateTime<Utc>,
        rules: &Rules,
        policy: Policy,
    ) -> Decision {
        if self.active {
            // Once the window has not been hot for `episode.quiet`, the episode ends.
            if judged.hot {
                self.hot_at = Some(end);
            }
            let quiet = event_span(rules.episode.quiet);
            if self.hot_at.is_some_and(|hot| end - hot <= quiet) {
                return Decision::Attach {
                    sev_cluster: self
                        .sev_cluster
                        .clone()
                        .unwrap_or_else(|| cluster_id.to_string()),
                };
            }
            self.end_episode();
        }
        let Some(rule) = judged.verdict.fired(policy) else {
            return Decision::Quiet;
        };
        self.active = true;
        self.episode += 1;
        self.sev_cluster = Some(cluster_id.to_string());
        self.hot_at = Some(end);
        self.on_region = judged.verdict.region;
        let window = event_span(rules.floor.window);
        Decision::Escalate(Escalation {
            id: escalation_id(cluster_id, self.episode, rule.as_str()),
            cluster_id: cluster_id.to_string(),
            rule: rule.as_str().to_string(),
            episode: self.episode,
            window_start: end - window,
            fired_at: end,
            first_ticket_at: judged.first_ticket_at.unwrap_or(end),
            ticket_count: judged.verdict.tickets,
            distinct_customers: judged.verdict.customers,
            evidence: judged.evidence,
            verdict: judged.verdict,
        })
    }

    /// Whether the cold-start rule's belief (a new complaint at `cold_start.rate`) stands for
    /// this cluster: the rule is on and the cluster was first seen once its product had been
    /// watched for the warmup. Early in a log every cluster is new to sevloop, not to customers.
    pub fn holds_cold_start_prior(
        &self,
        rules: &Rules,
        scope_started: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> bool {
        let first_at = self.first_at.unwrap_or(end);
        // A boundary's tickets go to other clusters: no complaint of its own starts there.
        !self.is_boundary
            && rules.cold_start.enabled
            && (first_at - scope_started).to_std().unwrap_or_default() >= rules.cold_start.warmup
    }

    /// The cold-start rule, not yet its own history, is what judges this cluster.
    pub fn on_cold_start(
        &self,
        rules: &Rules,
        scope_started: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> bool {
        self.holds_cold_start_prior(rules, scope_started, end)
            && self.history.windows < rules.spike.prior_windows
    }

    /// Ends the open episode (its SEV was closed, or the cluster went quiet): the next crossing
    /// is a new episode.
    pub fn end_episode(&mut self) {
        self.active = false;
        self.sev_cluster = None;
        self.hot_at = None;
        self.on_region = false;
    }

    /// Adds a member and slides the window to end at the latest event time seen. Returns it.
    pub fn count(&mut self, member: Member, rules: &Rules) -> DateTime<Utc> {
        let end = self
            .window
            .back()
            .map_or(member.at, |last| last.at.max(member.at));
        self.first_at.get_or_insert(member.at);
        // The cluster's history starts when it is first seen, not a window before.
        self.history.until.get_or_insert(member.at);
        let place = self.window.partition_point(|m| m.at <= member.at);
        self.window.insert(place, member);
        let start = end - event_span(rules.floor.window);
        let stale = self
            .window
            .partition_point(|m| m.at < start)
            .max(self.window.len().saturating_sub(MAX_WINDOW_MEMBERS));
        let (window, memory) = (rules.floor.window, rules.spike.memory);
        let left = self.window.drain(..stale).map(|m| m.at);
        self.history.advance(start, left, window, memory);
        end
    }

    /// Counts a ticket of another cluster that came within `near_margin` of joining this one.
    pub fn count_in_boundary(&mut self, member: Member, rules: &Rules) {
        let boundary = self.boundary.get_or_insert_with(|| {
            Box::new(DetectorState {
                is_boundary: true,
                ..DetectorState::default()
            })
        });
        boundary.count(member, rules);
    }

    /// Notes that `ticket_id`, in this boundary, now belongs to cluster `joined`; whether the
    /// boundary has it.
    pub fn rejoined_in_boundary(&mut self, ticket_id: &str, joined: u64) -> bool {
        let Some(b) = self.boundary.as_mut() else {
            return false;
        };
        let mut found = false;
        for m in b.window.iter_mut().filter(|m| m.ticket_id == ticket_id) {
            m.source = Some(joined);
            found = true;
        }
        found
    }

    /// Takes in the boundary of a cluster merged into this one, less the tickets of the merged
    /// window: they are this cluster's own now.
    fn absorb_boundary(&mut self, other: Option<Box<DetectorState>>) {
        let merged = match (self.boundary.take(), other) {
            (Some(mut mine), Some(theirs)) => {
                mine.absorb(*theirs);
                Some(mine)
            }
            (mine, theirs) => mine.or(theirs),
        };
        self.boundary = merged.map(|mut b| {
            let own: BTreeSet<&str> = self.window.iter().map(|m| m.ticket_id.as_str()).collect();
            b.window.retain(|m| !own.contains(m.ticket_id.as_str()));
            b
        });
    }

    /// How many members of the window fall in `since..=end`.
    pub fn members_in(&self, since: DateTime<Utc>, end: DateTime<Utc>) -> usize {
        let (from, to) = self.span_of(since, end);
        to - from
    }

    /// The members of the window in `since..=end`, oldest first.
    pub fn members_between(
        &self,
        since: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> impl Iterator<Item = &Member> {
        let (from, to) = self.span_of(since, end);
        self.window.range(from..to)
    }

    /// The sources of the newest `n` members (clusters by seq as they were then), newest first.
    pub fn recent_sources(&self, n: usize) -> impl Iterator<Item = u64> + '_ {
        self.window.iter().rev().take(n).filter_map(|m| m.source)
    }

    fn span_of(&self, since: DateTime<Utc>, end: DateTime<Utc>) -> (usize, usize) {
        let to = self.window.partition_point(|m| m.at <= end);
        (self.window.partition_point(|m| m.at < since).min(to), to)
    }

    /// The state of a cluster split off from this one, taking the window members among
    /// `tickets` (they are its complaints now). An open episode holds for both halves: later
    /// tickets of either attach to its SEV rather than open a second one for what was one
    /// complaint when the SEV opened. The baseline stays here; the new cluster starts its own.
    pub fn split_off(&mut self, tickets: &BTreeSet<&str>) -> DetectorState {
        let (moved, kept): (VecDeque<Member>, VecDeque<Member>) = self
            .window
            .drain(..)
            .partition(|m| tickets.contains(m.ticket_id.as_str()));
        self.window = kept;
        DetectorState {
            first_at: moved.iter().map(|m| m.at).min(),
            window: moved,
            episode: u32::from(self.active),
            active: self.active,
            history: History::default(),
            sev_cluster: self.sev_cluster.clone().filter(|_| self.active),
            hot_at: self.hot_at.filter(|_| self.active),
            on_region: self.on_region && self.active,
            // Counted afresh as tickets come near the new cluster.
            boundary: None,
            is_boundary: false,
        }
    }

    /// Counts `members` in this window too, in event-time order, each ticket once.
    pub fn take_members(&mut self, members: impl IntoIterator<Item = Member>) {
        let mut window: Vec<Member> = self.window.drain(..).chain(members).collect();
        window.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.ticket_id.cmp(&b.ticket_id)));
        window.dedup_by(|a, b| a.ticket_id == b.ticket_id);
        let skip = window.len().saturating_sub(MAX_WINDOW_MEMBERS);
        self.window = window.into_iter().skip(skip).collect();
    }

    /// Takes over the state of a cluster merged into this one: its window, history and any
    /// open episode, so the merged complaint keeps counting (and keeps its SEV).
    pub fn absorb(&mut self, other: DetectorState) {
        self.take_members(other.window);
        self.history.merge(&other.history);
        self.absorb_boundary(other.boundary);
        self.first_at = match (self.first_at, other.first_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.episode = self.episode.max(other.episode);
        if !self.active && other.active {
            self.active = true;
            self.sev_cluster = other.sev_cluster;
            self.hot_at = other.hot_at;
            self.on_region = other.on_region;
        }
    }
}

/// Windows checkpointed before they were kept in event-time order (a late ticket was appended)
/// are put in order on restore; the sort is stable, so ties keep the order they were counted in.
fn in_event_time_order<'de, D: Deserializer<'de>>(d: D) -> Result<VecDeque<Member>, D::Error> {
    let mut window = VecDeque::<Member>::deserialize(d)?;
    window.make_contiguous().sort_by_key(|m| m.at);
    Ok(window)
}

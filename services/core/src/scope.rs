//! One clustering scope (a product): features → cluster → detection, for one new ticket at a time.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, RouteInput};
use crate::cluster::corrections::Correction;
use crate::cluster::{
    parse_cluster_id, Assignment, Cluster, ClusterConfig, Clusterer, Features, Placement,
};
use crate::detect::{
    could_fire, judge, Decision, DetectorState, Elsewhere, Judgement, Member, Policy, RuleBook,
    Rules, Verdict,
};
use crate::text::{mask, Featurizer};
use crate::ticket::TicketEvent;

/// How many of each judged cluster's newest tickets say where its traffic came from (see
/// [`Scope::sources`]): enough to see a steady stream's source, few enough to stay cheap.
const SOURCES_LOOKED_AT: usize = 16;

/// What one judgement of a ticket's cluster is made with.
struct Judging<'r> {
    rules: &'r Rules,
    policy: Policy,
    /// The event time the windows end at.
    end: DateTime<Utc>,
    /// When the product was first seen.
    started: DateTime<Utc>,
    /// The cold-start rule, not yet its own history, judges the cluster.
    young: bool,
    /// The cluster has an open episode.
    active: bool,
}

/// A cluster and its detection state: what is checkpointed, in the same transaction as the
/// consumed offsets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterCheckpoint {
    pub cluster: Cluster,
    pub detector: DetectorState,
    /// The cluster's label when checkpointed (derived; stored for readers).
    #[serde(default)]
    pub label: Vec<String>,
}

/// What happened to one newly seen ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The cluster's sequence number within its product (see [`Scope::cluster`]).
    pub seq: u64,
    pub assignment: Assignment,
    pub decision: Decision,
    /// How the window of the ticket's cluster (with the clusters judged with it) looked, when
    /// it was judged; none when it could not fire (the busy path judges nothing).
    pub verdict: Option<Verdict>,
    /// Earlier tickets that consolidation, run because this ticket moved event time on, split
    /// off into a new cluster: (ticket id, its new cluster's seq).
    pub moved: Vec<(String, u64)>,
}

/// A ticket clustered but not yet counted by detection (see [`Scope::assign`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Clustered {
    pub placement: Placement,
    pub moved: Vec<(String, u64)>,
}

/// What detection needs besides the tickets: the rules, the catalog that says which team owns
/// a cluster (for per-team rules), and which rules must hold.
#[derive(Debug, Clone, Copy)]
pub struct Detection<'a> {
    pub rules: &'a RuleBook,
    pub catalog: &'a Catalog,
    pub policy: Policy,
    /// Judge a window even when it cannot fire, so its verdict can be shown (`backtest
    /// --trace`); the decision is the same.
    pub explain: bool,
}

pub struct Scope {
    clusterer: Clusterer,
    detectors: BTreeMap<u64, DetectorState>,
    touched: BTreeSet<u64>,
    /// Event time of the product's first ticket (its clusters' earliest `first_seen`).
    started: Option<DateTime<Utc>>,
    /// Latest event time seen (its clusters' latest `last_seen`): consolidation runs when
    /// event time crosses into a new round.
    latest: Option<DateTime<Utc>>,
}

impl Scope {
    pub fn restore(
        product: &str,
        clustering: ClusterConfig,
        checkpoints: Vec<ClusterCheckpoint>,
    ) -> Self {
        let started = checkpoints.iter().map(|cp| cp.cluster.first_seen).min();
        let latest = checkpoints.iter().map(|cp| cp.cluster.last_seen).max();
        let mut detectors = BTreeMap::new();
        let mut clusters = Vec::with_capacity(checkpoints.len());
        for cp in checkpoints {
            detectors.insert(cp.cluster.seq, cp.detector);
            clusters.push(cp.cluster);
        }
        Scope {
            clusterer: Clusterer::restore(product, clustering, clusters),
            detectors,
            touched: BTreeSet::new(),
            started,
            latest,
        }
    }

    /// Clusters a ticket seen for the first time, counts it as a complaint of its cluster and
    /// decides on that cluster judged with the clusters the ticket nearly joined. (Later events
    /// of a known ticket never come here: they are not new complaints.)
    pub fn observe(
        &mut self,
        features: &Features,
        ticket: &TicketEvent,
        detection: &Detection,
    ) -> Observation {
        let clustered = self.assign(features, ticket);
        self.decide(clustered, ticket, detection)
    }

    /// The first half of [`Scope::observe`]: consolidation up to the ticket's event time, then
    /// its assignment. Apart so a benchmark can time clustering and detection each.
    pub fn assign(&mut self, features: &Features, ticket: &TicketEvent) -> Clustered {
        let moved = self.consolidate_until(ticket.event_time);
        let placement = self
            .clusterer
            .assign_near(features, &ticket.ticket_id, ticket.event_time);
        // The product's start is its earliest cluster's birth, exactly as `restore` derives it,
        // so a restored scope decides like one that never stopped.
        if placement.assignment.new_cluster {
            self.started = Some(
                self.started
                    .map_or(ticket.event_time, |s| s.min(ticket.event_time)),
            );
        }
        Clustered { placement, moved }
    }

    /// The second half of [`Scope::observe`]: counts the clustered ticket and decides.
    pub fn decide(
        &mut self,
        clustered: Clustered,
        ticket: &TicketEvent,
        detection: &Detection,
    ) -> Observation {
        let Clustered { placement, moved } = clustered;
        let Placement {
            seq,
            assignment,
            near,
            source,
        } = placement;
        let (decision, verdict) = self.detect(seq, &near, source, ticket, detection);
        self.touched.insert(seq);
        Observation {
            seq,
            assignment,
            decision,
            verdict,
            moved,
        }
    }

    /// Counts a ticket in its cluster's window (and in the boundaries of the clusters it nearly
    /// joined) and decides for that cluster, with the verdict it decided on.
    fn detect(
        &mut self,
        seq: u64,
        near: &[u64],
        source: Option<u64>,
        ticket: &TicketEvent,
        detection: &Detection,
    ) -> (Decision, Option<Verdict>) {
        let Some(cluster_id) = self.clusterer.get(seq).map(|c| c.id.clone()) else {
            return (Decision::Quiet, None);
        };
        let rules = self.rules_for(seq, ticket, detection);
        let member = Member {
            ticket_id: ticket.ticket_id.clone(),
            customer_id: ticket.customer.id.clone(),
            tier: ticket.customer.tier,
            at: ticket.event_time,
            source,
        };
        self.count_in_boundaries(seq, near, &member, ticket, detection);
        let end = self.detectors.entry(seq).or_default().count(member, rules);
        let started = self.started.unwrap_or(ticket.event_time);
        let judging = Judging {
            rules,
            policy: detection.policy,
            end,
            started,
            young: self.on_cold_start(seq, rules, started, end),
            // An open episode needs the full judgement (its p-value keeps it hot); otherwise a
            // window that cannot fire decides nothing.
            active: self.detectors.get(&seq).is_some_and(|d| d.active),
        };
        let neighbourhood: Vec<u64> = std::iter::once(seq)
            .chain(self.judged_with(seq, near, judging.young))
            .collect();
        let group = self.states(&neighbourhood);
        let region = self.region(seq, rules);
        let may_fire = |g: &[&DetectorState]| could_fire(g, end, rules, judging.policy, started);
        let region_may_fire = region.is_some_and(|r| may_fire(&r));
        if !judging.active && !may_fire(&group) && !region_may_fire {
            let explained = detection
                .explain
                .then(|| self.judge_group(&group, &neighbourhood, &judging).verdict);
            return (Decision::Quiet, explained);
        }
        let mut judged = self.judge_group(&group, &neighbourhood, &judging);
        if let Some(region) = region.filter(|_| region_may_fire) {
            if let Some(on_region) =
                self.judge_region(seq, region, &neighbourhood, &judged, &judging)
            {
                judged = on_region;
            }
        }
        // An episode the region opened stays hot on it too: it may never make its busier
        // neighbourhood stand out. (Not any episode, and not on a boundary swollen by
        // neighbours drifting closer: that would keep a false one hot.)
        let on_region = self.detectors.get(&seq).is_some_and(|d| d.on_region);
        if let Some(region) = region.filter(|_| on_region && !judged.hot) {
            judged.hot = self.judge_group(&region, &[seq], &judging).hot
                && self.widened_stands_out(region, &neighbourhood, &judging);
        }
        let verdict = judged.verdict.clone();
        let decision = match self.detectors.get_mut(&seq) {
            Some(d) => d.decide(&cluster_id, judged, end, rules, detection.policy),
            None => Decision::Quiet,
        };
        (self.join_related(seq, decision, end, rules), Some(verdict))
    }

    /// Counts the ticket `member` of cluster `seq` in the boundaries of the clusters it nearly
    /// joined; in a boundary, a ticket's source is the cluster it joined.
    fn count_in_boundaries(
        &mut self,
        seq: u64,
        near: &[u64],
        member: &Member,
        ticket: &TicketEvent,
        detection: &Detection,
    ) {
        for n in near {
            let rules = self.rules_for(*n, ticket, detection);
            let Some(d) = self.detectors.get_mut(n) else {
                continue;
            };
            let joined = Member {
                source: Some(seq),
                ..member.clone()
            };
            d.count_in_boundary(joined, rules);
            // Checkpointed with the cluster, so a restart decides as if it never stopped.
            self.touched.insert(*n);
        }
    }

    /// The states cluster `seq`'s region is judged on (itself and its boundary), when it is
    /// judged at all: the gate is on, and the cluster and its boundary each have
    /// `prior_windows` windows of history. A forming cluster's or a fresh boundary's short
    /// history understates what it draws (every boundary is fresh when a running installation
    /// upgrades to this).
    fn region(&self, seq: u64, rules: &Rules) -> Option<[&DetectorState; 2]> {
        let cluster = self.detectors.get(&seq)?;
        let boundary = cluster.boundary.as_deref()?;
        let settled = |s: &DetectorState| s.history.windows >= rules.spike.prior_windows;
        (rules.spike.region_gate > 0.0 && settled(cluster) && settled(boundary))
            .then_some([cluster, boundary])
    }

    /// The judgement of cluster `seq`'s `region`, if it fires and the gate lets it: the
    /// neighbourhood (`judged`, which did not fire) stands out a little, and still does when
    /// widened by the clusters the boundary's tickets joined. A boundary that grows because
    /// its neighbours drifted closer leaves them, taken together, as usual (seen on the steady
    /// bench: 55 boundary tickets in a window against 25 usual, beside neighbours running as
    /// usual); a burst near the cluster raises them all.
    fn judge_region(
        &self,
        seq: u64,
        region: [&DetectorState; 2],
        neighbourhood: &[u64],
        judged: &Judgement,
        j: &Judging,
    ) -> Option<Judgement> {
        let gate = j.rules.spike.region_gate;
        if judged.verdict.fired(j.policy).is_some() || judged.verdict.p_value > gate {
            return None;
        }
        if !self.widened_stands_out(region, neighbourhood, j) {
            return None;
        }
        let mut on_region = self.judge_group(&region, &[seq], j);
        on_region.verdict.fired(j.policy)?;
        on_region.verdict.region = true;
        Some(on_region)
    }

    /// Whether the neighbourhood, widened by the clusters the region's boundary tickets of the
    /// window joined, stands out by the region gate (trivially, when they joined none outside
    /// it): traffic merely moving between neighbours leaves them together as usual.
    fn widened_stands_out(
        &self,
        region: [&DetectorState; 2],
        neighbourhood: &[u64],
        j: &Judging,
    ) -> bool {
        let start = j.end - crate::detect::event_span(j.rules.floor.window);
        let [_, boundary] = region;
        let joined: BTreeSet<u64> = boundary
            .members_between(start, j.end)
            .filter_map(|m| m.source)
            .map(|s| self.clusterer.resolve(s))
            .filter(|c| !neighbourhood.contains(c) && self.detectors.contains_key(c))
            .collect();
        if joined.is_empty() {
            return true;
        }
        let wider: Vec<u64> = neighbourhood.iter().copied().chain(joined).collect();
        let widened = self.judge_group(&self.states(&wider), &wider, j);
        widened.verdict.p_value <= j.rules.spike.region_gate
    }

    /// The rules for cluster `seq`, as a ticket of `ticket`'s product and fields routes it.
    fn rules_for<'d>(
        &self,
        seq: u64,
        ticket: &TicketEvent,
        detection: &Detection<'d>,
    ) -> &'d Rules {
        detection.rules.for_cluster(&ticket.product, || {
            let label = self
                .clusterer
                .get(seq)
                .map(|c| self.clusterer.label(c, 3))
                .unwrap_or_default();
            detection
                .catalog
                .route(&RouteInput {
                    product: &ticket.product,
                    component: ticket.component.as_deref(),
                    tags: &ticket.tags,
                    label: &label,
                })
                .to_string()
        })
    }

    /// Judges `group` (the states of the clusters `with`, and any boundary): less the traffic
    /// that moved in from their sources and, on the cold start, with what carriers usually draw.
    fn judge_group(&self, group: &[&DetectorState], with: &[u64], j: &Judging) -> Judgement {
        let sources = self.states(&self.sources(with, j.rules));
        let judge_with = |carriers| {
            let elsewhere = Elsewhere {
                sources: &sources,
                carriers,
            };
            judge(group, elsewhere, j.end, j.rules, j.policy, j.started)
        };
        let mut judged = judge_with(&[]);
        // Carriers, on the cold start, only add to what is usual, so only a window that would
        // open a SEV without them needs them (they cost a search per recent ticket).
        if j.young && !j.active && judged.verdict.fired(j.policy).is_some() {
            let young_with: Vec<u64> = with
                .iter()
                .copied()
                .filter(|s| self.on_cold_start(*s, j.rules, j.started, j.end))
                .collect();
            let carriers = self.carriers(&young_with, with);
            if !carriers.is_empty() {
                judged = judge_with(&carriers);
            }
        }
        judged
    }

    fn states(&self, seqs: &[u64]) -> Vec<&DetectorState> {
        seqs.iter().filter_map(|s| self.detectors.get(s)).collect()
    }

    /// Where the newest tickets of the clusters `judged` together would have gone otherwise,
    /// when not judged with them already: the clusters their traffic may have moved in from. A
    /// source counts once it is named by a quarter of those tickets (two at least), so one
    /// ticket's runner-up does not make its usual traffic look moved.
    fn sources(&self, judged: &[u64], rules: &Rules) -> Vec<u64> {
        if !rules.spike.subtract_moved {
            return Vec::new();
        }
        let mut named: Vec<u64> = self
            .states(judged)
            .into_iter()
            .flat_map(|d| d.recent_sources(SOURCES_LOOKED_AT))
            .map(|s| self.clusterer.resolve(s))
            .collect();
        let needed = (named.len() / 4).max(2);
        named.sort_unstable();
        named
            .chunk_by(|a, b| a == b)
            .filter(|run| run.len() >= needed && !judged.contains(&run[0]))
            .map(|run| run[0])
            .filter(|s| self.detectors.contains_key(s))
            .collect()
    }

    /// Whether the cold-start rule, not yet its own history, judges cluster `seq`.
    fn on_cold_start(
        &self,
        seq: u64,
        rules: &Rules,
        scope_started: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> bool {
        self.detectors
            .get(&seq)
            .is_some_and(|d| d.on_cold_start(rules, scope_started, end))
    }

    /// The clusters that carry traffic like the `young` clusters of a cold-start group judged
    /// `with` others (see [`Clusterer::carriers`]), each with its largest share, none of the
    /// group. A cluster born of part of a busy complaint that a blended old cluster carries
    /// draws that part's usual traffic, however near its centroid it is to none. A source can
    /// be a carrier too: what it fell short is then both subtracted and expected, erring, on
    /// the cold start alone, against a false SEV.
    fn carriers(&self, young: &[u64], with: &[u64]) -> Vec<(&DetectorState, f64)> {
        let mut shares: BTreeMap<u64, f64> = BTreeMap::new();
        for carrier in young.iter().flat_map(|s| self.clusterer.carriers(*s)) {
            if !with.contains(&carrier.seq) {
                let share = shares.entry(carrier.seq).or_default();
                *share = share.max(carrier.share);
            }
        }
        shares
            .into_iter()
            .filter_map(|(s, share)| Some((self.detectors.get(&s)?, share)))
            .collect()
    }

    /// The clusters `seq` is judged together with: those the ticket nearly joined and, while
    /// the cold-start rule judges `seq`, its siblings. A cluster born late often re-forms part
    /// of a busy complaint its older siblings still carry: judged with them, that traffic is
    /// usual. A new complaint, far from every cluster, has no siblings and is judged on its own.
    fn judged_with(&self, seq: u64, near: &[u64], on_cold_start: bool) -> Vec<u64> {
        let mut with = near.to_vec();
        if on_cold_start {
            with.extend(self.clusterer.siblings(seq));
            with.sort_unstable();
            with.dedup();
        }
        with.retain(|s| *s != seq);
        with
    }

    /// Ends the open episodes linked to the SEV of `sev_cluster` (it was resolved, declined or
    /// merged), so the next crossing of those clusters is a new episode: a regression.
    pub fn end_episodes(&mut self, sev_cluster: &str) {
        for (seq, d) in self.detectors.iter_mut() {
            if d.active && d.sev_cluster.as_deref() == Some(sev_cluster) {
                d.end_episode();
                self.touched.insert(*seq);
            }
        }
    }

    /// Turns an escalation into a join when a closely related cluster bursting at the same time
    /// already has an open SEV (the same complaint split across two clusters), so one complaint
    /// gets one SEV. The number of open episodes is small, so this looks at each.
    fn join_related(
        &mut self,
        seq: u64,
        decision: Decision,
        end: DateTime<Utc>,
        rules: &Rules,
    ) -> Decision {
        let Decision::Escalate(escalation) = decision else {
            return decision;
        };
        let Some(cluster) = self.clusterer.get(seq) else {
            return Decision::Escalate(escalation);
        };
        let related = self
            .detectors
            .iter()
            .filter(|(other, d)| **other != seq && d.open_to_join(end, rules))
            .filter_map(|(other, d)| {
                let (sim, related) = self
                    .clusterer
                    .relatedness(self.clusterer.get(*other)?, cluster);
                related.then(|| Some((sim, d.sev_cluster.clone()?)))?
            })
            .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(&a.1)));
        match related {
            None => Decision::Escalate(escalation),
            Some((_, sev_cluster)) => {
                if let Some(d) = self.detectors.get_mut(&seq) {
                    d.sev_cluster = Some(sev_cluster.clone());
                }
                Decision::Join {
                    escalation,
                    sev_cluster,
                }
            }
        }
    }

    pub fn cluster(&self, seq: u64) -> Option<&Cluster> {
        self.clusterer.get(seq)
    }

    pub fn clusterer(&self) -> &Clusterer {
        &self.clusterer
    }

    /// Runs the consolidation rounds that event time `t` makes due; merged clusters' detection
    /// state moves into the cluster they merged into, and split-off tickets take their place in
    /// the window with them. Returns the tickets that splits moved.
    fn consolidate_until(&mut self, t: DateTime<Utc>) -> Vec<(String, u64)> {
        let last = *self.latest.get_or_insert(t);
        if t <= last {
            return Vec::new();
        }
        self.latest = Some(t);
        let round = self.clusterer.consolidate(last, t);
        self.touched.extend(&round.checked);
        let mut moved = Vec::new();
        for split in round.splits {
            self.touched.extend([split.from, split.into]);
            let tickets: BTreeSet<&str> = split.ticket_ids.iter().map(String::as_str).collect();
            if let Some(d) = self.detectors.get_mut(&split.from) {
                let fresh = d.split_off(&tickets);
                self.detectors.insert(split.into, fresh);
            }
            moved.extend(split.ticket_ids.into_iter().map(|id| (id, split.into)));
        }
        self.after_merges(&round.merges);
        moved
    }

    fn after_merges(&mut self, merges: &[crate::cluster::consolidate::Merge]) {
        for m in merges {
            if let Some(gone) = self.detectors.remove(&m.from) {
                self.detectors.entry(m.into).or_default().absorb(gone);
            }
            self.touched.extend([m.from, m.into]);
        }
    }

    /// Applies a human correction. `members` are the tickets it names, with the cluster each is
    /// in now and its features. Returns the tickets whose cluster changed and their new cluster.
    pub fn correct(
        &mut self,
        correction: &Correction,
        members: &[(String, String, Features)],
    ) -> Result<Vec<(String, String)>, CorrectionError> {
        let seq_of = |id: &str| -> Result<u64, CorrectionError> {
            let (_, seq) = parse_cluster_id(id)
                .filter(|(p, _)| *p == self.clusterer.product())
                .ok_or_else(|| CorrectionError::UnknownCluster(id.to_string()))?;
            let seq = self.clusterer.resolve(seq);
            self.clusterer
                .get(seq)
                .map(|_| seq)
                .ok_or_else(|| CorrectionError::UnknownCluster(id.to_string()))
        };
        match correction {
            Correction::Merge {
                cluster_ids: [a, b],
            } => {
                let (a, b) = (seq_of(a)?, seq_of(b)?);
                if a == b {
                    return Ok(Vec::new());
                }
                let m = self.clusterer.merge(a, b);
                self.after_merges(&[m]);
                Ok(Vec::new())
            }
            Correction::Split { cluster_id, .. } => {
                let seq = seq_of(cluster_id)?;
                let moving: Vec<(String, Features)> = members
                    .iter()
                    .filter(|(_, current, _)| seq_of(current).ok() == Some(seq))
                    .map(|(id, _, f)| (id.clone(), f.clone()))
                    .collect();
                if moving.is_empty() {
                    return Err(CorrectionError::NoMembers(cluster_id.clone()));
                }
                let new = self
                    .clusterer
                    .split_off(seq, &moving)
                    .ok_or_else(|| CorrectionError::UnknownCluster(cluster_id.clone()))?;
                self.touched.extend([seq, new]);
                let new_id = self
                    .clusterer
                    .get(new)
                    .map(|c| c.id.clone())
                    .unwrap_or_default();
                Ok(moving
                    .into_iter()
                    .map(|(id, _)| (id, new_id.clone()))
                    .collect())
            }
            Correction::Move {
                ticket_id,
                to_cluster_id,
            } => {
                let to = seq_of(to_cluster_id)?;
                let (_, current, f) = members
                    .iter()
                    .find(|(id, _, _)| id == ticket_id)
                    .ok_or_else(|| CorrectionError::UnknownTicket(ticket_id.clone()))?;
                let from = seq_of(current)?;
                self.clusterer.move_member(from, to, ticket_id, f);
                self.touched.extend([from, to]);
                let to_id = self
                    .clusterer
                    .get(self.clusterer.resolve(to))
                    .map(|c| c.id.clone());
                Ok(vec![(
                    ticket_id.clone(),
                    to_id.unwrap_or_else(|| to_cluster_id.clone()),
                )])
            }
        }
    }

    /// Checkpoints of the clusters changed since the last call.
    pub fn take_touched(&mut self) -> Vec<ClusterCheckpoint> {
        let retired = self
            .clusterer
            .take_retired()
            .into_iter()
            .map(|cluster| ClusterCheckpoint {
                cluster,
                detector: DetectorState::default(),
                label: Vec::new(),
            });
        let live: Vec<ClusterCheckpoint> = std::mem::take(&mut self.touched)
            .into_iter()
            .filter_map(|seq| {
                let cluster = self.clusterer.get(seq)?;
                Some(ClusterCheckpoint {
                    label: self.clusterer.label(cluster, 3),
                    cluster: cluster.clone(),
                    detector: self.detectors.get(&seq).cloned().unwrap_or_default(),
                })
            })
            .collect();
        retired.chain(live).collect()
    }
}

/// Why a correction could not be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CorrectionError {
    #[error("cluster {0} does not exist in this product (or was merged away)")]
    UnknownCluster(String),
    #[error("ticket {0} is not known")]
    UnknownTicket(String),
    #[error("none of the named tickets is in cluster {0}")]
    NoMembers(String),
}

/// A ticket's features: its terms, and the sentence vector the encoder made of
/// [`embedding_text`], if the encoder is on.
pub fn ticket_features(
    featurizer: &mut Featurizer,
    ticket: &TicketEvent,
    dense: Option<Vec<f32>>,
) -> Features {
    Features {
        terms: featurizer.features(&ticket.text(), &personal_strings(ticket)),
        dense,
    }
}

/// The text the sentence encoder sees: the ticket with identifiers, contact details and the
/// customer's own name masked, so they cannot pull unrelated tickets together.
pub fn embedding_text(ticket: &TicketEvent) -> String {
    mask(&ticket.text(), &personal_strings(ticket))
}

/// The customer's own strings, masked out of features (and so out of labels and SEV titles).
fn personal_strings(ticket: &TicketEvent) -> Vec<&str> {
    let mut out: Vec<&str> = ticket
        .customer
        .name
        .iter()
        .flat_map(|n| n.split_whitespace())
        .collect();
    out.push(&ticket.customer.id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::cluster::vector::unit;
    use crate::cluster::ClusterConfig;
    use crate::ticket::tests::example;

    fn ticket(i: u32, customer: &str, body: &str) -> TicketEvent {
        let mut v = example();
        v["ticket_id"] = format!("T-{i}").into();
        v["customer"]["id"] = customer.into();
        v["subject"] = "".into();
        v["body"] = body.into();
        TicketEvent::from_value(v).unwrap()
    }

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-01-03T14:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::minutes(minutes)
    }

    /// A cluster of `size` tickets along `direction`, as a checkpoint holds it.
    fn checkpoint(
        lsh: &crate::cluster::lsh::LshConfig,
        seq: u64,
        direction: &[f32],
        size: u64,
        born: i64,
        detector: DetectorState,
    ) -> ClusterCheckpoint {
        let sum: Vec<f32> = unit(direction.to_vec())
            .iter()
            .map(|x| x * size as f32)
            .collect();
        let lsh = crate::cluster::lsh::Lsh::new(lsh.clone(), sum.len());
        let cluster = Cluster {
            id: crate::cluster::cluster_id("cards", seq),
            product: "cards".into(),
            seq,
            size,
            centroid: [("card".to_string(), size as f32)].into(),
            surface: Default::default(),
            projections: lsh.project(&sum),
            dense: Some(sum),
            exemplars: Vec::new(),
            cannot_link: Default::default(),
            merged_into: None,
            first_seen: at(born),
            last_seen: at(0),
            recent: Vec::new(),
            unchecked: 0,
            alias: false,
        };
        ClusterCheckpoint {
            cluster,
            detector,
            label: Vec::new(),
        }
    }

    /// Dimensions of the test vectors: three for the complaints' directions, the rest for what
    /// sets each ticket of a burst apart (one each, in turn).
    const DIM: usize = 16;

    fn along(direction: [f32; 3]) -> Vec<f32> {
        let mut v = vec![0.0; DIM];
        v[..3].copy_from_slice(&direction);
        unit(v)
    }

    /// What detection decides as 12 tickets from 12 customers, a minute apart, join cluster
    /// `joins` of `clusters`; ticket `i` has the sentence vector `vector(i)` (unit length).
    fn burst(
        clusters: impl FnOnce(&crate::cluster::lsh::LshConfig) -> Vec<ClusterCheckpoint>,
        joins: u64,
        vector: impl Fn(usize) -> Vec<f32>,
    ) -> Vec<Decision> {
        burst_judged_by(&RuleBook::default(), clusters, joins, vector)
    }

    /// [`burst`], judged by `rules`.
    fn burst_judged_by(
        rules: &RuleBook,
        clusters: impl FnOnce(&crate::cluster::lsh::LshConfig) -> Vec<ClusterCheckpoint>,
        joins: u64,
        vector: impl Fn(usize) -> Vec<f32>,
    ) -> Vec<Decision> {
        observe_burst(
            rules,
            clusters,
            joins,
            &(1..=12).collect::<Vec<_>>(),
            vector,
        )
        .0
    }

    /// [`burst_judged_by`] with the `i`-th ticket (from 1) at minute `minutes[i - 1]`; also
    /// the scope after them.
    fn observe_burst(
        rules: &RuleBook,
        clusters: impl FnOnce(&crate::cluster::lsh::LshConfig) -> Vec<ClusterCheckpoint>,
        joins: u64,
        minutes: &[i64],
        vector: impl Fn(usize) -> Vec<f32>,
    ) -> (Vec<Decision>, Scope) {
        let mut config = ClusterConfig::default();
        config.consolidation.enabled = false;
        // Short LSH keys: every cluster is a candidate, so the test is about detection alone.
        config.lsh.bits = 2;
        let clusters = clusters(&config.lsh);
        let mut scope = Scope::restore("cards", config, clusters);
        let catalog = Catalog::default();
        let detection = Detection {
            rules,
            catalog: &catalog,
            policy: Policy::Combined,
            explain: false,
        };
        let mut f = Featurizer::default();
        let decisions = (1..=minutes.len() as u32)
            .zip(minutes)
            .map(|(i, minute)| {
                let mut t = ticket(i, &format!("c{i}"), "my card is declined");
                t.event_time = at(*minute);
                let features = ticket_features(&mut f, &t, Some(unit(vector(i as usize))));
                let seen = scope.observe(&features, &t, &detection);
                assert_eq!(seen.seq, joins, "the tickets join cluster {joins}");
                seen.decision
            })
            .collect();
        (decisions, scope)
    }

    /// A cluster watched for a day, its history `per_window` tickets a window up to minute
    /// `until`.
    fn watched(per_window: f64, until: i64) -> DetectorState {
        DetectorState {
            history: crate::detect::History {
                tickets: per_window * 10.0,
                windows: 10.0,
                until: Some(at(until)),
            },
            first_at: Some(at(-24 * 60)),
            ..Default::default()
        }
    }

    /// A busy complaint watched for a day (about 10 tickets per window, along the first axis),
    /// and a young cluster born an hour ago along `young`: what detection decides as the burst
    /// reaches the young cluster. Each ticket is 0.78 alike to the young cluster's direction,
    /// the rest its own, so none comes near enough to the busy cluster to be counted toward it.
    /// `carried` of the busy cluster's 16 latest tickets lie along `young` too.
    fn burst_in_a_young_cluster(young: [f32; 3], carried: usize) -> Vec<Decision> {
        let busy = watched(10.0, 0);
        let fresh = DetectorState {
            first_at: Some(at(-60)),
            ..Default::default()
        };
        let clusters = |lsh: &crate::cluster::lsh::LshConfig| {
            let mut busy = checkpoint(lsh, 1, &along([1.0, 0.0, 0.0]), 500, -24 * 60, busy);
            busy.cluster.recent = (0..16)
                .map(|i| {
                    let direction = if i < carried { young } else { [1.0, 0.0, 0.0] };
                    Arc::new(crate::cluster::Sample {
                        ticket_id: format!("B-{i}"),
                        at: at(i as i64 - 20),
                        terms: [("card".to_string(), 1.0)].into(),
                        dense: Some(along(direction)),
                    })
                })
                .collect();
            vec![busy, checkpoint(lsh, 2, &along(young), 20, -60, fresh)]
        };
        burst(clusters, 2, |i| {
            let mut v: Vec<f32> = along(young).iter().map(|x| x * 0.78).collect();
            v[2 + i] = 0.6258;
            v
        })
    }

    /// A complaint with an open SEV (cluster 1, along the first axis, its episode active and last
    /// hot at minute `hot`) and a quiet cluster 2 whose centroid is `alike` to it: what detection
    /// decides as a burst joins cluster 2 (each ticket 0.95 alike to cluster 2, minutes 1 to 12).
    fn burst_beside_an_open_sev(alike: f32, hot: i64) -> Vec<Decision> {
        let quiet = watched(2.0, 0);
        let open = DetectorState {
            active: true,
            sev_cluster: Some("cards:1".into()),
            hot_at: Some(at(hot)),
            ..quiet.clone()
        };
        let other = [alike, (1.0 - alike * alike).sqrt(), 0.0];
        let clusters = |lsh: &crate::cluster::lsh::LshConfig| {
            vec![
                checkpoint(lsh, 1, &along([1.0, 0.0, 0.0]), 500, -24 * 60, open),
                checkpoint(lsh, 2, &along(other), 500, -24 * 60, quiet),
            ]
        };
        burst(clusters, 2, |i| {
            let mut v: Vec<f32> = along(other).iter().map(|x| x * 0.95).collect();
            v[2 + i] = 0.312;
            v
        })
    }

    #[test]
    fn a_burst_joins_an_open_sev_only_when_its_cluster_is_the_same_complaint() {
        let fired = |alike: f32, hot: i64| {
            burst_beside_an_open_sev(alike, hot)
                .into_iter()
                .find(|d| *d != Decision::Quiet)
        };
        match fired(0.8, 0) {
            Some(Decision::Join { sev_cluster, .. }) => assert_eq!(sev_cluster, "cards:1"),
            other => panic!("a fragment of the complaint joins its SEV, got {other:?}"),
        }
        // Two complaints of one product are often 0.3 to 0.5 alike in sentence space: a burst
        // of the other is a SEV of its own, not news buried in the first one's.
        match fired(0.4, 0) {
            Some(Decision::Escalate(e)) => assert_eq!(e.cluster_id, "cards:2"),
            other => panic!("another complaint opens its own SEV, got {other:?}"),
        }
        // A SEV whose complaint has been quiet for an hour is not what a new burst is part of.
        match fired(0.8, -60) {
            Some(Decision::Escalate(e)) => assert_eq!(e.cluster_id, "cards:2"),
            other => panic!("a burst an hour later opens its own SEV, got {other:?}"),
        }
    }

    /// Cluster 1 (`first`, along the first axis) beside cluster 2 (`second`, 0.6 alike to it),
    /// both watched for a day: what detection decides, by `rules`, as a burst joins cluster 1.
    /// Each ticket's vector starts with `xy`, the rest its own.
    fn burst_beside(
        first: DetectorState,
        second: DetectorState,
        rules: &RuleBook,
        xy: [f32; 2],
    ) -> Vec<Decision> {
        let minutes: Vec<i64> = (1..=12).collect();
        burst_beside_at(first, second, rules, xy, &minutes).0
    }

    /// [`burst_beside`] with the tickets at `minutes`; also the scope after them.
    fn burst_beside_at(
        first: DetectorState,
        second: DetectorState,
        rules: &RuleBook,
        xy: [f32; 2],
        minutes: &[i64],
    ) -> (Vec<Decision>, Scope) {
        let clusters = |lsh: &crate::cluster::lsh::LshConfig| {
            vec![
                checkpoint(lsh, 1, &along([1.0, 0.0, 0.0]), 500, -24 * 60, first),
                checkpoint(lsh, 2, &along([0.6, 0.8, 0.0]), 500, -24 * 60, second),
            ]
        };
        let own = (1.0 - xy[0] * xy[0] - xy[1] * xy[1]).sqrt();
        observe_burst(rules, clusters, 1, minutes, |i| {
            let mut v = vec![0.0; DIM];
            v[..2].copy_from_slice(&xy);
            v[3 + (i - 1) % (DIM - 3)] = own;
            v
        })
    }

    /// A cluster at 2 tickets per window beside a busy one at 30, with `source_window` as the
    /// busy one's recent tickets: what detection decides as the burst joins the first. Each
    /// ticket is 0.78 alike to the first and 0.56 to the busy one: not near enough to count
    /// toward it, but where it would have gone otherwise (its source).
    fn traffic_moving_in(source_window: Vec<Member>) -> Vec<Decision> {
        let busy = DetectorState {
            window: source_window.into(),
            ..watched(30.0, -30)
        };
        let rules = RuleBook::default();
        burst_beside(watched(2.0, -30), busy, &rules, [0.78, 0.12])
    }

    fn assert_all_quiet(decisions: &[Decision]) {
        assert!(
            decisions.iter().all(|d| *d == Decision::Quiet),
            "{decisions:?}"
        );
    }

    fn source_member(i: u32, minute: i64) -> Member {
        Member {
            ticket_id: format!("S-{i}"),
            customer_id: format!("s{i}"),
            tier: crate::ticket::Tier::Free,
            at: at(minute),
            source: None,
        }
    }

    #[test]
    fn a_rise_that_is_its_sources_fall_opens_no_sev() {
        // The busy cluster has had none of its usual tickets since: they moved.
        let decisions = traffic_moving_in(Vec::new());
        assert_all_quiet(&decisions);
    }

    #[test]
    fn a_rise_beside_a_source_at_its_usual_rate_opens_a_sev() {
        // The busy cluster runs as usual (a ticket a minute) beside the burst.
        let usual = (0..30).map(|i| source_member(i, -18 + i as i64)).collect();
        let decisions = traffic_moving_in(usual);
        let opened = decisions
            .iter()
            .filter(|d| matches!(d, Decision::Escalate(e) if e.rule == "spike"))
            .count();
        assert_eq!(opened, 1, "{decisions:?}");
    }

    /// A cluster watched for a day at 2 tickets per window (along the first axis, its boundary
    /// at 1) beside a neighbour at `per_window` (0.6 alike), with `neighbour_window` as the neighbour's recent
    /// tickets: what detection decides, by `rules`, as the burst joins the first. Each ticket is
    /// 0.85 alike to the first and 0.75 to the neighbour: near enough to it to be judged with it.
    fn burst_beside_a_neighbour(
        per_window: f64,
        neighbour_window: Vec<Member>,
        rules: &RuleBook,
    ) -> Vec<Decision> {
        burst_beside_a_neighbour_with_boundary(per_window, neighbour_window, rules, 10.0)
    }

    /// [`burst_beside_a_neighbour`], the first cluster's boundary watched for `windows`.
    fn burst_beside_a_neighbour_with_boundary(
        per_window: f64,
        neighbour_window: Vec<Member>,
        rules: &RuleBook,
        windows: f64,
    ) -> Vec<Decision> {
        let (first, neighbour) = beside_a_neighbour(per_window, neighbour_window, windows);
        burst_beside(first, neighbour, rules, [0.85, 0.3])
    }

    /// The two clusters of [`burst_beside_a_neighbour_with_boundary`].
    fn beside_a_neighbour(
        per_window: f64,
        neighbour_window: Vec<Member>,
        windows: f64,
    ) -> (DetectorState, DetectorState) {
        let neighbour = DetectorState {
            window: neighbour_window.into(),
            ..watched(per_window, -30)
        };
        // About a ticket a window of other clusters' has come near the first.
        let first = DetectorState {
            boundary: Some(Box::new(DetectorState {
                is_boundary: true,
                history: crate::detect::History {
                    tickets: windows,
                    windows,
                    until: Some(at(-30)),
                },
                ..DetectorState::default()
            })),
            ..watched(2.0, -30)
        };
        (first, neighbour)
    }

    fn region_gate(gate: f64) -> RuleBook {
        let config = crate::detect::DetectionConfig {
            spike: crate::detect::SpikeRule {
                region_gate: gate,
                ..Default::default()
            },
            ..Default::default()
        };
        config.rule_book().unwrap()
    }

    fn escalations(decisions: &[Decision]) -> Vec<&crate::detect::Escalation> {
        decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Escalate(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_burst_a_busier_neighbour_drowns_opens_a_sev_on_its_region() {
        // The neighbour runs as usual, a ticket every 5 minutes, beside the burst.
        let usual = |n: i64| {
            (0..n)
                .map(|i| source_member(i as u32, -25 + 5 * i))
                .collect()
        };
        // Judged with the neighbour alone, the burst stands out, but not enough.
        assert_all_quiet(&burst_beside_a_neighbour(6.0, usual(8), &region_gate(0.0)));
        let decisions = burst_beside_a_neighbour(6.0, usual(8), &RuleBook::default());
        let opened = escalations(&decisions);
        assert_eq!(opened.len(), 1, "{decisions:?}");
        assert!(opened[0].verdict.region, "{:?}", opened[0]);
        assert_eq!(opened[0].cluster_id, "cards:1");
        // A boundary watched for one window (as every boundary is, an hour after an upgrade)
        // has no rate to judge the region by yet.
        let fresh =
            burst_beside_a_neighbour_with_boundary(6.0, usual(8), &RuleBook::default(), 1.0);
        assert_all_quiet(&fresh);
    }

    #[test]
    fn an_episode_its_region_opened_stays_hot_while_the_region_bursts() {
        // The burst opens on the region, then goes on at two tickets every 3 minutes for over an
        // hour: still over the region's usual rate, but not over the busier neighbourhood's
        // once the first burst has left the window (judged on the neighbourhood alone, the
        // episode was last hot at minute 43).
        let usual = (0..8)
            .map(|i| source_member(i, -25 + 5 * i as i64))
            .collect();
        let (first, neighbour) = beside_a_neighbour(6.0, usual, 10.0);
        let minutes: Vec<i64> = (1..=12)
            .chain((13..=88).step_by(3).flat_map(|m| [m, m]))
            .collect();
        let rules = RuleBook::default();
        let (decisions, scope) = burst_beside_at(first, neighbour, &rules, [0.85, 0.3], &minutes);
        let opened = escalations(&decisions);
        assert_eq!(opened.len(), 1, "{decisions:?}");
        assert!(opened[0].verdict.region, "{:?}", opened[0]);
        let episode = &scope.detectors[&1];
        assert!(episode.active && episode.on_region, "{episode:?}");
        assert_eq!(episode.hot_at, Some(at(88)), "{:?}", episode.hot_at);
    }

    #[test]
    fn traffic_moving_from_a_near_neighbour_opens_no_sev_on_the_region() {
        // The busy neighbour has had none of its usual 30 a window since the burst began: the
        // burst is its traffic, and the neighbourhood (the two together) runs as usual.
        let before = (0..30).map(|i| source_member(i, -30 + i as i64)).collect();
        assert_all_quiet(&burst_beside_a_neighbour(
            30.0,
            before,
            &RuleBook::default(),
        ));
    }

    #[test]
    fn a_young_cluster_that_re_forms_a_busy_complaint_is_judged_with_it() {
        // Centroids 0.75 alike: the young cluster draws tickets its busy sibling used to get.
        let decisions = burst_in_a_young_cluster([0.75, 0.66, 0.0], 0);
        assert_all_quiet(&decisions);
    }

    #[test]
    fn a_young_cluster_far_from_every_other_opens_on_the_cold_start() {
        // One of the busy cluster's tickets along the young one's direction is a stray, not
        // traffic it carries.
        let decisions = burst_in_a_young_cluster([0.0, 0.6, 0.8], 1);
        let rules: Vec<&str> = decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Escalate(e) => Some(e.rule.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(rules, vec!["cold_start"]);
    }

    #[test]
    fn a_young_cluster_drawing_what_a_busy_cluster_carries_is_judged_with_that_share() {
        // Far from the busy cluster's centroid, but half its latest tickets are like the young
        // cluster's: about 5 a window of that complaint is usual, and 12 in 12 minutes is not
        // enough above it.
        let decisions = burst_in_a_young_cluster([0.0, 0.6, 0.8], 8);
        assert_all_quiet(&decisions);
    }

    #[test]
    fn the_customers_name_never_reaches_a_cluster_label() {
        let mut scope = Scope::restore("cards", Default::default(), vec![]);
        let mut f = Featurizer::default();
        let t = ticket(1, "c1", "Ada here, my card is declined");
        let (rules, catalog) = (RuleBook::default(), Catalog::default());
        let detection = Detection {
            rules: &rules,
            catalog: &catalog,
            policy: Policy::Combined,
            explain: false,
        };
        scope.observe(&ticket_features(&mut f, &t, None), &t, &detection);
        let cp = scope.take_touched();
        assert_eq!(cp.len(), 1);
        let label = &cp[0].label;
        assert!(
            !label.iter().any(|t| t.to_lowercase().contains("ada")),
            "{label:?}"
        );
        assert!(scope.take_touched().is_empty());
    }
}

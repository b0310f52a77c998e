//! Detection within a scope: which clusters a ticket's cluster is judged with (its
//! neighbourhood, its region, sources and carriers), and what the judgement decides.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::{Detection, Scope};
use crate::catalog::RouteInput;
use crate::detect::{
    could_fire, judge, Decision, DetectorState, Elsewhere, Judgement, Member, Policy, Rules,
    Verdict,
};
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

impl Scope {
    /// Counts a ticket in its cluster's window (and in the boundaries of the clusters it nearly
    /// joined) and decides for that cluster, with the verdict it decided on.
    pub(super) fn detect(
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
    /// `with` others (see [`Clusterer::carriers`](crate::cluster::Clusterer::carriers)), each with its largest share, none of the
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
}

//! Consolidation: the batch side of clustering, run on a schedule of event time.
//!
//! The online pass is deliberately strict (a high join threshold keeps distinct complaints
//! apart), so one complaint can start in several fragments. Every `every` of event time, the
//! clusters that changed since the last round are first checked for drift ([`super::drift`]:
//! recent members that became a different complaint split off into a new cluster), then
//! compared with their LSH or inverted-index neighbours, and pairs whose centroids are closer
//! than `merge_threshold` are merged, closest first. Small clusters that stopped growing long
//! ago are folded into their nearest larger cluster when it is close enough. Pairs a human split
//! are never merged.
//!
//! The schedule is a pure function of event time (round boundaries are multiples of `every`), so
//! a replay, or a restart mid-stream, consolidates at the same points with the same result.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::alias::AliasConfig;
use super::drift::{self, SplitConfig};
use super::{add_terms, duration, keep_latest, vector, Carrier, Cluster, Clusterer, Features};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsolidationConfig {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    /// Average linkage (mean cosine over member pairs, sentence vectors) above which two
    /// clusters are one complaint.
    pub merge_threshold: f32,
    /// The same for clusters without sentence vectors (idf-free term cosine).
    pub lexical_merge_threshold: f32,
    /// Clusters of at most this many tickets are strays...
    pub stray_size: u64,
    /// ...once they have not grown for this long...
    #[serde(with = "humantime_serde")]
    pub stray_after: Duration,
    /// ...and fold into their nearest larger cluster if at least this close.
    pub stray_threshold: f32,
    /// Merge passes per round; each pass sees the centroids the previous one produced.
    pub passes: usize,
    /// Splitting clusters that drifted.
    pub split: SplitConfig,
    /// Merged clusters that keep routing their kind of ticket (see [`super::alias`]).
    pub alias: AliasConfig,
}

impl Default for ConsolidationConfig {
    fn default() -> Self {
        ConsolidationConfig {
            enabled: true,
            every: Duration::from_secs(15 * 60),
            merge_threshold: 0.55,
            lexical_merge_threshold: 0.6,
            stray_size: 4,
            stray_after: Duration::from_secs(6 * 3600),
            stray_threshold: 0.4,
            passes: 4,
            split: SplitConfig::default(),
            alias: AliasConfig::default(),
        }
    }
}

/// One cluster merged into another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    pub from: u64,
    pub into: u64,
}

/// Tickets that drifted out of a cluster into a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub from: u64,
    pub into: u64,
    pub ticket_ids: Vec<String>,
}

/// What one or more consolidation rounds did, in order: splits, then merges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    pub splits: Vec<Split>,
    pub merges: Vec<Merge>,
    /// Clusters checked for drift, split or not: their count of members since the last check
    /// went back to zero, and their checkpoints must hold that (restored with the old count, a
    /// cluster would be checked again sooner than in a run that never stopped).
    pub checked: Vec<u64>,
}

impl Round {
    /// No cluster was split or merged (drift checks alone change no membership).
    pub fn is_empty(&self) -> bool {
        self.splits.is_empty() && self.merges.is_empty()
    }
}

impl ConsolidationConfig {
    /// Start of the round that `t` falls in.
    pub fn round_start(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let every = self.every.as_millis().max(1) as i64;
        let ms = t.timestamp_millis().div_euclid(every) * every;
        DateTime::from_timestamp_millis(ms).unwrap_or(t)
    }
}

impl Clusterer {
    /// Runs the consolidation rounds due when event time moves from `last` to `now`: clusters
    /// seen since the round `last` was in may split and are merge candidates, strays that went
    /// quiet between the two rounds are folded in, and aliases no ticket joined through for
    /// their time to live are dropped.
    pub fn consolidate(&mut self, last: DateTime<Utc>, now: DateTime<Utc>) -> Round {
        let c = self.config.consolidation.clone();
        let (from, to) = (c.round_start(last), c.round_start(now));
        if !c.enabled || to <= from {
            return Round::default();
        }
        let mut changed: BTreeSet<u64> = self
            .clusters
            .values()
            .filter(|k| k.last_seen >= from)
            .map(|k| k.seq)
            .collect();
        let (splits, checked) = self.split_drifted(&changed, &c.split);
        changed.extend(splits.iter().map(|s| s.into));
        let mut merges = self.merge_fragments(changed, &c);
        let quiet = (from - duration(c.stray_after), to - duration(c.stray_after));
        merges.extend(self.fold_strays(quiet, &c));
        self.expire_aliases(to);
        Round {
            splits,
            merges,
            checked,
        }
    }

    /// Splits off the recent members of `changed` clusters that drifted to another complaint.
    /// Returns the splits and the clusters checked.
    fn split_drifted(
        &mut self,
        changed: &BTreeSet<u64>,
        config: &SplitConfig,
    ) -> (Vec<Split>, Vec<u64>) {
        let (mut splits, mut checked) = (Vec::new(), Vec::new());
        for seq in changed {
            let Some(k) = self
                .clusters
                .get_mut(seq)
                .filter(|k| k.unchecked as usize >= config.min_side)
            else {
                continue;
            };
            k.unchecked = 0;
            checked.push(*seq);
            let Some(away) = drift::drifted(k, config) else {
                continue;
            };
            let members: Vec<(String, Features)> = away
                .iter()
                .map(|i| (k.recent[*i].ticket_id.clone(), k.features_of(&k.recent[*i])))
                .collect();
            if let Some(into) = self.carve(*seq, &members, false) {
                let ticket_ids = members.into_iter().map(|(id, _)| id).collect();
                splits.push(Split {
                    from: *seq,
                    into,
                    ticket_ids,
                });
            }
        }
        (splits, checked)
    }

    /// Merges close pairs among `changed` and their neighbours, closest pair first.
    fn merge_fragments(
        &mut self,
        mut changed: BTreeSet<u64>,
        c: &ConsolidationConfig,
    ) -> Vec<Merge> {
        let mut merges = Vec::new();
        for _ in 0..c.passes {
            let pairs = self.close_pairs(&changed, c);
            let mut done = BTreeSet::new();
            let mut survivors = BTreeSet::new();
            for (_, a, b) in pairs {
                if done.contains(&a) || done.contains(&b) {
                    continue;
                }
                let m = self.merge(a, b);
                done.extend([a, b]);
                survivors.insert(m.into);
                merges.push(m);
            }
            if survivors.is_empty() {
                break;
            }
            changed = survivors;
        }
        merges
    }

    /// Pairs (similarity, a, b) above the merge threshold, closest first, ties by seq.
    fn close_pairs(
        &self,
        changed: &BTreeSet<u64>,
        c: &ConsolidationConfig,
    ) -> Vec<(f32, u64, u64)> {
        let mut pairs = BTreeSet::new();
        for seq in changed {
            let Some(k) = self.clusters.get(seq) else {
                continue;
            };
            for o in self.linkable_neighbours(k) {
                let other = o.seq;
                let threshold = if k.dense.is_some() && o.dense.is_some() {
                    c.merge_threshold
                } else {
                    c.lexical_merge_threshold
                };
                let sim = linkage(k, o).unwrap_or_else(|| self.similarity_between(k, o));
                if sim >= threshold {
                    pairs.insert((ordered(sim), (*seq).min(other), (*seq).max(other)));
                }
            }
        }
        let mut out: Vec<(f32, u64, u64)> = pairs
            .into_iter()
            .map(|(s, a, b)| (f32::from_bits(s), a, b))
            .collect();
        out.sort_by(|x, y| {
            y.0.total_cmp(&x.0)
                .then_with(|| (x.1, x.2).cmp(&(y.1, y.2)))
        });
        out
    }

    /// Small clusters last seen in `quiet` fold into their nearest larger neighbour.
    fn fold_strays(
        &mut self,
        quiet: (DateTime<Utc>, DateTime<Utc>),
        c: &ConsolidationConfig,
    ) -> Vec<Merge> {
        let strays: Vec<u64> = self
            .clusters
            .values()
            .filter(|k| k.size <= c.stray_size && k.last_seen >= quiet.0 && k.last_seen < quiet.1)
            .map(|k| k.seq)
            .collect();
        let mut merges = Vec::new();
        for seq in strays {
            let Some(k) = self.clusters.get(&seq) else {
                continue;
            };
            let best = self
                .linkable_neighbours(k)
                .filter(|other| other.size > c.stray_size)
                .map(|other| (other.seq, self.similarity_between(k, other)))
                .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(&a.0)));
            if let Some((into, sim)) = best {
                if sim >= c.stray_threshold {
                    merges.push(self.merge_into(seq, into));
                }
            }
        }
        merges
    }

    /// Live clusters whose centroids are at least `sibling_threshold` similar to `seq`'s, by
    /// seq; none a correction keeps apart from it.
    pub fn siblings(&self, seq: u64) -> Vec<u64> {
        let Some(k) = self.clusters.get(&seq) else {
            return Vec::new();
        };
        let threshold = self.config.sibling_threshold;
        if threshold > 1.0 {
            return Vec::new();
        }
        self.linkable_neighbours(k)
            .filter(|other| self.similarity_between(k, other) >= threshold)
            .map(|other| other.seq)
            .collect()
    }

    /// Clusters that carry traffic like `seq`'s: the candidates of its recent members, with the
    /// share of their own recent members that would join `seq`. Two at least must, so one
    /// stray is not a carrier. A busy cluster often holds several complaints, and its centroid
    /// resembles none of them closely; a cluster born of one of them is near none of its
    /// centroids, but near its members. Bounded: a candidate search per recent member.
    pub fn carriers(&self, seq: u64) -> Vec<Carrier> {
        let Some(k) = self.clusters.get(&seq) else {
            return Vec::new();
        };
        let mut candidates: Vec<u64> = k
            .recent
            .iter()
            .flat_map(|s| {
                let f = k.features_of(s);
                self.candidates(&f, self.projections_of(&f).as_deref())
            })
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        self.linkable(k, candidates)
            .filter(|o| !o.recent.is_empty())
            .filter_map(|o| {
                let joining = o
                    .recent
                    .iter()
                    .filter(|s| self.would_join(k, &o.features_of(s)));
                let n = joining.count();
                (n >= 2).then(|| Carrier {
                    seq: o.seq,
                    share: n as f64 / o.recent.len() as f64,
                })
            })
            .collect()
    }

    /// `k`'s candidate neighbours (see [`Clusterer::neighbours`]) that are live and that no
    /// correction keeps apart from it, by seq.
    fn linkable_neighbours<'a>(&'a self, k: &'a Cluster) -> impl Iterator<Item = &'a Cluster> {
        self.linkable(k, self.neighbours(k))
    }

    /// The live clusters among `seqs` other than `k` that no correction keeps apart from it.
    fn linkable<'a>(&'a self, k: &'a Cluster, seqs: Vec<u64>) -> impl Iterator<Item = &'a Cluster> {
        seqs.into_iter()
            .filter(move |o| *o != k.seq && !k.cannot_link.contains(o))
            .filter_map(move |o| self.clusters.get(&o))
            .filter(move |other| !other.cannot_link.contains(&k.seq))
    }

    /// Candidate neighbours of a cluster, from the same indexes tickets use.
    fn neighbours(&self, k: &Cluster) -> Vec<u64> {
        if let (Some(lsh), false) = (&self.lsh, k.projections.is_empty()) {
            return lsh.candidates(&k.projections, self.config.max_candidates);
        }
        // The same bounded retrieval a ticket gets, with the centroid as the query.
        let query = Features {
            terms: crate::text::TermVector {
                weights: k.centroid.clone(),
                surface: Default::default(),
            },
            dense: None,
        };
        self.candidates(&query, None)
    }

    /// Merges two clusters: the larger survives (the older on a tie).
    pub fn merge(&mut self, a: u64, b: u64) -> Merge {
        let size = |s: u64| self.clusters.get(&s).map_or(0, |k| k.size);
        let (into, from) = if (size(a), std::cmp::Reverse(a)) >= (size(b), std::cmp::Reverse(b)) {
            (a, b)
        } else {
            (b, a)
        };
        self.merge_into(from, into)
    }

    /// Moves everything of `from` into `into` and retires `from`.
    pub(crate) fn merge_into(&mut self, from: u64, into: u64) -> Merge {
        let merge = Merge { from, into };
        if from == into || !self.clusters.contains_key(&into) {
            return merge;
        }
        let Some(mut gone) = self.take(from) else {
            return merge;
        };
        let Some(k) = self.clusters.get_mut(&into) else {
            return merge;
        };
        let terms = crate::text::TermVector {
            weights: gone.centroid.clone(),
            surface: gone.surface.clone(),
        };
        let added = add_terms(k, &terms, 1.0);
        if let (Some(sum), Some(other)) = (k.dense.as_mut(), &gone.dense) {
            vector::add_scaled(sum, other, 1.0);
            vector::add_scaled(&mut k.projections, &gone.projections, 1.0);
        }
        k.size += gone.size;
        k.first_seen = k.first_seen.min(gone.first_seen);
        k.last_seen = k.last_seen.max(gone.last_seen);
        k.cannot_link.extend(gone.cannot_link.iter().copied());
        for e in gone.exemplars.drain(..) {
            if k.exemplars.len() < self.config.exemplars {
                k.exemplars.push(e);
            }
        }
        // The samples that came with the merged cluster are new to this one.
        k.unchecked = k.unchecked.saturating_add(gone.recent.len() as u32);
        k.recent.append(&mut gone.recent);
        keep_latest(&mut k.recent, self.config.consolidation.split.sample);
        for term in added {
            self.post(term, into);
        }
        self.reindex_dense(into);
        self.prune(into);
        gone.merged_into = Some(into);
        self.merged.insert(from, into);
        self.keep_alias(&mut gone);
        self.retired.push(gone);
        merge
    }
}

/// Average linkage of two clusters of sentence vectors: the mean cosine over all pairs of their
/// members, which the sums give exactly (members are unit vectors). Unlike the cosine of the
/// centroids it does not flatter two broad clusters whose averages happen to point the same way.
fn linkage(a: &Cluster, b: &Cluster) -> Option<f32> {
    let (x, y) = (a.dense.as_ref()?, b.dense.as_ref()?);
    let pairs = (a.size * b.size) as f32;
    (pairs > 0.0).then(|| vector::dot(x, y) / pairs)
}

/// A total order key for a similarity (non-negative floats order like their bits).
fn ordered(sim: f32) -> u32 {
    sim.max(0.0).to_bits()
}

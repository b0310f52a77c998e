//! Aliases: a merged-away cluster keeps routing its kind of ticket to the cluster it went into.
//!
//! A busy complaint has a fringe: tickets below the join threshold of its cluster's centroid,
//! which gather in a satellite cluster of their own until consolidation merges it back. Without
//! more, the fringe's next tickets are near no centroid again and start another satellite, which
//! grows, is merged, and so on: on a steady 1M-ticket stream 22,825 clusters were created for
//! 547 alive, and each new satellite's share of a steady complaint looked like a new complaint to
//! detection. So a merged cluster of at least `min_size` tickets stays an **alias** of the
//! cluster it went into: its centroid stays in the LSH, and a ticket that would join it joins
//! that cluster. An alias that no ticket joined through for `ttl` of event time is dropped at the
//! next consolidation round; a person splitting a cluster drops its aliases (they may stand for
//! the part split off).
//!
//! An alias is the merged cluster's own checkpoint row (`Cluster::alias`), its `last_seen` the
//! last ticket that joined through it, so a restart restores the same aliases.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::rows::Kind;
use super::{duration, Cluster, Clusterer};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AliasConfig {
    pub enabled: bool,
    /// Merged clusters of at least this many tickets become aliases (a satellite, not a stray).
    pub min_size: u64,
    /// An alias no ticket joined through for this long is dropped.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

impl Default for AliasConfig {
    fn default() -> Self {
        AliasConfig {
            enabled: true,
            min_size: 10,
            ttl: Duration::from_secs(12 * 3600),
        }
    }
}

impl Clusterer {
    /// Keeps `gone`, just merged away, as an alias when it is large enough.
    pub(crate) fn keep_alias(&mut self, gone: &mut Cluster) {
        let config = &self.config.consolidation.alias;
        if config.enabled && gone.size >= config.min_size {
            gone.alias = self.index_alias(Cluster {
                alias: true,
                ..gone.clone()
            });
        }
    }

    /// Files an alias for candidate retrieval and scoring (on merge, and on restore). False when
    /// it cannot be filed: no vector sum, or projections from other LSH settings (a changed
    /// config on restore).
    pub(crate) fn index_alias(&mut self, alias: Cluster) -> bool {
        let (Some(lsh), Some(sum)) = (self.lsh.as_mut(), alias.dense.as_deref()) else {
            return false;
        };
        if alias.projections.len() != lsh.project_len() {
            return false;
        }
        lsh.insert(alias.seq, &alias.projections);
        self.rows.set(alias.seq, sum, Kind::Alias);
        self.aliases.insert(alias.seq, alias);
        true
    }

    /// Notes that a ticket joined through alias `seq` at `at`.
    pub(crate) fn hit_alias(&mut self, seq: u64, at: DateTime<Utc>) {
        if let Some(alias) = self.aliases.get_mut(&seq) {
            alias.last_seen = alias.last_seen.max(at);
            self.touched_aliases.insert(seq);
        }
    }

    /// Drops the aliases no ticket joined through since `now − ttl`.
    pub(crate) fn expire_aliases(&mut self, now: DateTime<Utc>) {
        let since = now - duration(self.config.consolidation.alias.ttl);
        let stale: Vec<u64> = self
            .aliases
            .values()
            .filter(|a| a.last_seen < since)
            .map(|a| a.seq)
            .collect();
        for seq in stale {
            self.drop_alias(seq);
        }
    }

    /// Drops the aliases of the live cluster `seq` (a person split it).
    pub(crate) fn drop_aliases_of(&mut self, seq: u64) {
        let of: Vec<u64> = self
            .aliases
            .keys()
            .copied()
            .filter(|a| self.resolve(*a) == seq)
            .collect();
        for alias in of {
            self.drop_alias(alias);
        }
    }

    fn drop_alias(&mut self, seq: u64) {
        let Some(mut alias) = self.aliases.remove(&seq) else {
            return;
        };
        if let Some(lsh) = self.lsh.as_mut() {
            lsh.remove(seq);
        }
        self.rows.remove(seq);
        self.touched_aliases.remove(&seq);
        alias.alias = false;
        self.retired.push(self.as_stored(alias));
    }

    /// Aliases changed since the last checkpoint (a ticket joined through them), to store again.
    pub(crate) fn take_touched_aliases(&mut self) -> Vec<Cluster> {
        std::mem::take(&mut self.touched_aliases)
            .into_iter()
            .filter_map(|seq| self.aliases.get(&seq).cloned())
            .map(|alias| self.as_stored(alias))
            .collect()
    }

    /// A merged-away row stored again names the live cluster it now belongs to, as the store
    /// keeps `merged_into` (the cluster it went into may have merged on since).
    fn as_stored(&self, mut alias: Cluster) -> Cluster {
        alias.merged_into = Some(self.resolve(alias.seq));
        alias
    }

    /// Live aliases, by seq.
    pub fn aliases(&self) -> impl Iterator<Item = &Cluster> {
        self.aliases.values()
    }
}

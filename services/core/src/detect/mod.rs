//! Detection: when a cluster's tickets cross the rules, it escalates (and a SEV opens).
//!
//! Decisions depend on event time only: a window ends at the latest event time its cluster has
//! seen, never at the wall clock, so replaying a log gives the same escalations.

mod history;
mod judge;
pub mod rules;
mod state;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use history::History;
pub use judge::{could_fire, judge, moved_in, Elsewhere, Judgement, MovedIn, Verdict};
pub use rules::{
    ColdStartRule, DetectionConfig, EpisodeRule, FloorRule, RuleBook, RuleError, Rules, SpikeRule,
    TierWeights,
};
pub use state::{DetectorState, Member};

/// Strength, in windows, of the belief about a cluster born while its product was still new
/// (during the cold start's warmup): next to nothing, so its own history decides at once, and
/// until it has some the predictive count is too wide for any rule to fire.
pub const WEAK_PRIOR_WINDOWS: f64 = 0.25;

/// The mean and variance of a Gamma belief about tickets per window. Beliefs about rates that
/// add (a judged group's clusters, the two halves of a merged cluster) are summed by these and
/// matched by one Gamma, so a young fragment's uncertainty widens the sum without drowning an
/// old cluster's well-known rate.
#[derive(Debug, Clone, Copy, Default)]
struct Moments {
    mean: f64,
    var: f64,
}

impl Moments {
    /// Of `share` of a rate believed Gamma(`shape`, `rate`).
    fn of(shape: f64, rate: f64, share: f64) -> Moments {
        Moments {
            mean: share * shape / rate,
            var: share * share * shape / (rate * rate),
        }
    }

    /// The Gamma (shape, rate) with these moments; none without variance (no tickets at all).
    fn gamma(self) -> Option<(f64, f64)> {
        (self.var > 0.0).then(|| (self.mean * self.mean / self.var, self.mean / self.var))
    }
}

impl std::ops::AddAssign for Moments {
    fn add_assign(&mut self, other: Moments) {
        self.mean += other.mean;
        self.var += other.var;
    }
}

/// The rules by name, as escalations and the backtest report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleName {
    Floor,
    Spike,
    ColdStart,
}

impl RuleName {
    pub const ALL: [RuleName; 3] = [RuleName::Floor, RuleName::Spike, RuleName::ColdStart];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleName::Floor => "floor",
            RuleName::Spike => "spike",
            RuleName::ColdStart => "cold_start",
        }
    }
}

/// Which rules must hold for a cluster to escalate. Production always runs `Combined`; the
/// backtest also replays each rule alone to show what it would have fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// The floor, and the spike (or, for a new cluster, the cold start).
    #[default]
    Combined,
    Alone(RuleName),
}

/// A rule's span of event time, for arithmetic on event times (an absurdly long setting reads
/// as zero rather than panicking).
pub(crate) fn event_span(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_default()
}

/// `P(X ≥ k)` for X negative binomial with `r` successes and success probability `p`: the
/// predictive count of a Poisson rate with a Gamma(r, b) belief about it, `p = b / (b + 1)`.
/// `P(X < k) = p^r Σ_{i<k} t_i` with `t_0 = 1` and `t_i = t_{i-1} (i - 1 + r) q / i`: the sum is
/// at least 1, so it is kept in linear space (one multiply per term, rescaled before it could
/// overflow) and `p^r` joins it in log space, where neither a firm belief (`p^r` underflows) nor
/// a large `k` loses it. Judging runs this at every ticket, so one logarithm matters.
pub fn negbin_tail(k: u64, r: f64, p: f64) -> f64 {
    const SCALE: f64 = 1e280;
    if k == 0 {
        return 1.0;
    }
    if r <= 0.0 || p >= 1.0 {
        return 0.0;
    }
    let q = 1.0 - p;
    let (mut term, mut sum, mut rescaled) = (1.0f64, 1.0f64, 0u32);
    for i in 1..k {
        let i = i as f64;
        term *= (i - 1.0 + r) / i * q;
        sum += term;
        if sum > SCALE {
            term /= SCALE;
            sum /= SCALE;
            rescaled += 1;
        }
    }
    let log_below = r * p.ln() + f64::from(rescaled) * SCALE.ln() + sum.ln();
    (1.0 - log_below.exp()).max(0.0)
}

/// A cluster crossed the rules. Its id is derived from the cluster, episode and rule, so a
/// replay of the same log produces the same id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Escalation {
    pub id: String,
    pub cluster_id: String,
    pub rule: String,
    pub episode: u32,
    pub window_start: DateTime<Utc>,
    pub fired_at: DateTime<Utc>,
    /// Event time of the earliest evidence ticket.
    pub first_ticket_at: DateTime<Utc>,
    pub ticket_count: u64,
    pub distinct_customers: u64,
    /// The tickets of the longest span that stood out when the rule fired; all are linked to
    /// the SEV.
    pub evidence: Vec<String>,
    /// The window against the rules when it fired: the escalation's reason.
    pub verdict: Verdict,
}

/// What detection decided for one counted ticket.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing to do yet.
    Quiet,
    /// An episode is open: link the ticket to the SEV of `sev_cluster` (this cluster, or the
    /// related one whose SEV it joined).
    Attach { sev_cluster: String },
    /// Open a SEV (or reopen the cluster's resolved one: a regression).
    Escalate(Escalation),
    /// The cluster crossed the rules while a closely related cluster already has an open
    /// episode: link the evidence to that SEV instead of opening a duplicate.
    Join {
        escalation: Escalation,
        sev_cluster: String,
    },
}

/// `esc-` and the first 16 hex digits of SHA-256 over cluster, episode and rule.
pub fn escalation_id(cluster_id: &str, episode: u32, rule: &str) -> String {
    let digest = Sha256::digest(format!("{cluster_id}\n{episode}\n{rule}").as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("esc-{hex}")
}

#[cfg(test)]
mod tests;

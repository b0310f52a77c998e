//! Detection rules and where they apply: one rule set by default, overridden per product or per
//! team. A SEV opens when the **floor** holds (enough tickets from enough customers in the
//! window) and the window is improbable at the cluster's own usual rate: the **spike** rule for
//! clusters with history, the **cold-start** rule for new ones.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ticket::Tier;

/// The floor: at least `min_tickets` tickets from customers weighing at least `min_customers`
/// (each distinct customer counts once, by its tier's weight) within `window` of event time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FloorRule {
    pub min_tickets: u32,
    pub min_customers: f64,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for FloorRule {
    fn default() -> Self {
        FloorRule {
            // Tuned with `backtest` (docs/MEASUREMENTS.md, Detection): the spike's false-alarm rate,
            // not the floor, keeps usual traffic quiet; 8 from 6 only delayed small incidents.
            min_tickets: 6,
            min_customers: 5.0,
            window: Duration::from_secs(30 * 60),
        }
    }
}

/// The spike: the window's distinct customers are improbable at the cluster's usual rate: at
/// most `max_false_alarm` per window of time (nominally: split among the spans scanned and
/// √usual judgements, see `tests_per_window` in judge.rs) that a cluster at its usual rate
/// fires anyway. The usual rate is not known exactly, so X is the predictive count of a
/// Poisson rate with a Gamma belief: the cold-start rate held as strongly as `prior_windows`
/// windows of history, updated with the cluster's own tickets per window. A short history
/// therefore cannot make the usual rate look tiny, and a long one decides alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpikeRule {
    /// Probability, per window of time, that a cluster at its usual rate fires anyway
    /// (nominal: the tests it is split among are not independent, see above). The
    /// default, 2e-5, was set on the streams and the steady bench (docs/MEASUREMENTS.md): the
    /// false SEVs left come from clusters forming and merging, not from chance, so doubling the
    /// rate from 1e-5 doubled the incidents found within 10 tickets and opened no more false
    /// SEVs on the bench (one more on the streams).
    pub max_false_alarm: f64,
    pub prior_windows: f64,
    /// How far back the usual rate looks: history is weighted `exp(-age / memory)`.
    #[serde(with = "humantime_serde")]
    pub memory: Duration,
    /// Shorter spans, each ending at the newest ticket, scanned besides the whole window: a
    /// fast burst stands out in a short span well before it fills the window. Each is at most
    /// `floor.window`; the false-alarm rate is split evenly among all the spans scanned.
    pub spans: Vec<humantime_serde::Serde<Duration>>,
    /// Count usual traffic that moved in from other clusters as usual: a cluster's window is
    /// judged less the shortfall of the clusters its recent tickets would have joined
    /// otherwise (see [`super::moved_in`]). Off: every ticket counts as a new complaint.
    pub subtract_moved: bool,
    /// How improbable the neighbourhood's window (a cluster and the clusters its ticket nearly
    /// joined) must be, and still be when widened by the clusters its boundary's tickets
    /// joined, before the cluster's region (itself and its boundary: other clusters' tickets
    /// that nearly joined it) is judged as well, at the same false-alarm rate, once the cluster
    /// and its boundary each have `prior_windows` windows of history. A busy neighbour's usual
    /// traffic can drown a burst in the neighbourhood; the region leaves it out, and this gate
    /// keeps traffic merely moving between neighbours (which leaves them, together, as usual)
    /// from firing. 0 judges neighbourhoods alone. The default, 1e-3, was set on the streams
    /// (docs/MEASUREMENTS.md).
    pub region_gate: f64,
}

impl Default for SpikeRule {
    fn default() -> Self {
        SpikeRule {
            max_false_alarm: 2e-5,
            prior_windows: 4.0,
            memory: Duration::from_secs(12 * 3600),
            spans: [5, 10, 15]
                .map(|m| Duration::from_secs(m * 60).into())
                .to_vec(),
            subtract_moved: true,
            region_gate: 1e-3,
        }
    }
}

impl SpikeRule {
    /// The spans scanned besides the whole window, shortest first.
    pub fn shorter_spans(&self, window: Duration) -> Vec<Duration> {
        let mut spans: Vec<Duration> = self
            .spans
            .iter()
            .map(|s| **s)
            .filter(|s| *s < window)
            .collect();
        spans.sort();
        spans.dedup();
        spans
    }
}

/// The cold start: a cluster younger than `spike.prior_windows` windows is judged mostly
/// against the assumed `rate` of tickets per window (its belief has not yet been outweighed by
/// its own history). That belief is held only for clusters born once the product has been
/// watched for `warmup`: early in a log every cluster is new to sevloop, not to customers, so
/// those start from next to no belief ([`super::WEAK_PRIOR_WINDOWS`]) and wait for history.
/// Disabled, every cluster starts that way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColdStartRule {
    pub enabled: bool,
    pub rate: f64,
    #[serde(with = "humantime_serde")]
    pub warmup: Duration,
}

impl Default for ColdStartRule {
    fn default() -> Self {
        ColdStartRule {
            enabled: true,
            rate: 0.5,
            warmup: Duration::from_secs(3600),
        }
    }
}

/// How much one distinct customer of each tier counts toward the floor's `min_customers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierWeights {
    pub free: f64,
    pub pro: f64,
    pub enterprise: f64,
}

impl Default for TierWeights {
    fn default() -> Self {
        TierWeights {
            free: 1.0,
            pro: 1.0,
            enterprise: 2.0,
        }
    }
}

impl TierWeights {
    pub fn of(&self, tier: Tier) -> f64 {
        match tier {
            Tier::Free => self.free,
            Tier::Pro => self.pro,
            Tier::Enterprise => self.enterprise,
        }
    }
}

/// When an episode ends by itself: once the cluster's window has been back near its usual rate
/// for `quiet` of event time, its new tickets stop attaching to the SEV (which stays open until
/// a person closes it; a new crossing then links to it as a recurrence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EpisodeRule {
    #[serde(with = "humantime_serde")]
    pub quiet: Duration,
}

impl Default for EpisodeRule {
    fn default() -> Self {
        EpisodeRule {
            quiet: Duration::from_secs(2 * 3600),
        }
    }
}

/// One complete rule set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    pub floor: FloorRule,
    pub spike: SpikeRule,
    pub cold_start: ColdStartRule,
    pub tiers: TierWeights,
    pub episode: EpisodeRule,
}

/// The `[detection]` settings: the default rules, then partial overrides per product and per
/// team, e.g. `[detection.products.cards.floor] min_tickets = 5`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    pub floor: FloorRule,
    pub spike: SpikeRule,
    pub cold_start: ColdStartRule,
    pub tiers: TierWeights,
    pub episode: EpisodeRule,
    pub products: BTreeMap<String, serde_json::Value>,
    pub teams: BTreeMap<String, serde_json::Value>,
}

/// An override that does not fit the rules.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("detection override for {scope} `{name}`: {message}")]
    Override {
        scope: &'static str,
        name: String,
        message: String,
    },
    #[error("detection rules: {0}")]
    Invalid(String),
}

/// The rules resolved for every product and team that has an override.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleBook {
    pub default: Rules,
    pub products: BTreeMap<String, Rules>,
    pub teams: BTreeMap<String, Rules>,
}

impl DetectionConfig {
    /// Resolves the overrides onto the defaults, refusing unknown keys and bad values by name.
    pub fn rule_book(&self) -> Result<RuleBook, RuleError> {
        let default = Rules {
            floor: self.floor.clone(),
            spike: self.spike.clone(),
            cold_start: self.cold_start.clone(),
            tiers: self.tiers.clone(),
            episode: self.episode.clone(),
        };
        default.validate()?;
        let resolve = |scope: &'static str, overrides: &BTreeMap<String, serde_json::Value>| {
            overrides
                .iter()
                .map(|(name, patch)| {
                    let rules = default
                        .patched(patch)
                        .map_err(|message| RuleError::Override {
                            scope,
                            name: name.clone(),
                            message,
                        })?;
                    Ok((name.clone(), rules))
                })
                .collect::<Result<BTreeMap<_, _>, RuleError>>()
        };
        Ok(RuleBook {
            products: resolve("product", &self.products)?,
            teams: resolve("team", &self.teams)?,
            default,
        })
    }
}

impl Rules {
    /// These rules with `patch` (a partial rule set) laid over them.
    fn patched(&self, patch: &serde_json::Value) -> Result<Rules, String> {
        let mut merged = serde_json::to_value(self).map_err(|e| e.to_string())?;
        merge(&mut merged, patch);
        let rules: Rules = serde_path_to_error::deserialize(merged)
            .map_err(|e| format!("`{}`: {}", e.path(), e.inner()))?;
        rules.validate().map_err(|e| e.to_string())?;
        Ok(rules)
    }

    fn validate(&self) -> Result<(), RuleError> {
        let bad = |what: &str| Err(RuleError::Invalid(what.to_string()));
        if self.floor.window.is_zero() {
            return bad("floor.window must be longer than zero");
        }
        if self.floor.min_tickets == 0
            || self.floor.min_customers.is_nan()
            || self.floor.min_customers <= 0.0
        {
            return bad("floor.min_tickets and floor.min_customers must be above zero");
        }
        if !(self.spike.max_false_alarm > 0.0 && self.spike.max_false_alarm < 1.0) {
            return bad("spike.max_false_alarm must be between 0 and 1");
        }
        if !(0.0..=1.0).contains(&self.spike.region_gate) {
            return bad("spike.region_gate must be between 0 (off) and 1");
        }
        if self.cold_start.rate <= 0.0 || self.spike.prior_windows < 0.0 {
            return bad("cold_start.rate must be positive and spike.prior_windows not negative");
        }
        if self.spike.memory < self.floor.window {
            return bad("spike.memory must be at least floor.window");
        }
        if self
            .spike
            .spans
            .iter()
            .any(|s| s.is_zero() || **s > self.floor.window)
        {
            return bad("spike.spans must be longer than zero and at most floor.window");
        }
        let w = &self.tiers;
        if [w.free, w.pro, w.enterprise].iter().any(|x| *x < 0.0) {
            return bad("tier weights must not be negative");
        }
        Ok(())
    }
}

/// Deep-merges `patch` into `base` (objects key by key, anything else replaced).
fn merge(base: &mut serde_json::Value, patch: &serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

impl RuleBook {
    /// The rules for a cluster: its product's override, else its team's, else the default.
    /// `team` is asked only when some team has an override (routing costs a little).
    pub fn for_cluster(&self, product: &str, team: impl FnOnce() -> String) -> &Rules {
        if let Some(rules) = self.products.get(product) {
            return rules;
        }
        if self.teams.is_empty() {
            return &self.default;
        }
        self.teams.get(&team()).unwrap_or(&self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(products: serde_json::Value, teams: serde_json::Value) -> DetectionConfig {
        serde_json::from_value(json!({"products": products, "teams": teams})).unwrap()
    }

    #[test]
    fn a_product_override_changes_only_the_keys_it_names() {
        let book = config(json!({"cards": {"floor": {"min_tickets": 5}}}), json!({}))
            .rule_book()
            .unwrap();
        let cards = book.for_cluster("cards", || unreachable!());
        assert_eq!(cards.floor.min_tickets, 5);
        assert_eq!(
            cards.floor.min_customers,
            FloorRule::default().min_customers
        );
        assert_eq!(cards.spike, SpikeRule::default());
        assert_eq!(book.for_cluster("fx", String::new), &book.default);
    }

    #[test]
    fn a_product_override_wins_over_a_team_override() {
        let book = config(
            json!({"cards": {"spike": {"max_false_alarm": 1e-3}}}),
            json!({"payments": {"floor": {"min_customers": 3.0}}}),
        )
        .rule_book()
        .unwrap();
        assert_eq!(
            book.for_cluster("cards", || "payments".into())
                .spike
                .max_false_alarm,
            1e-3
        );
        assert_eq!(
            book.for_cluster("transfers", || "payments".into())
                .floor
                .min_customers,
            3.0
        );
        assert_eq!(book.for_cluster("fx", || "fraud".into()), &book.default);
    }

    #[test]
    fn an_unknown_key_in_an_override_is_named() {
        let err = config(json!({"cards": {"floor": {"min_tickts": 5}}}), json!({}))
            .rule_book()
            .unwrap_err()
            .to_string();
        assert!(err.contains("cards") && err.contains("min_tickts"), "{err}");
    }

    #[test]
    fn a_nonsensical_value_is_refused_with_its_rule() {
        // (product overrides, team overrides, who is named, the setting named)
        let cases = [
            (
                json!({}),
                json!({"ops": {"spike": {"max_false_alarm": 2.0}}}),
                "ops",
                "max_false_alarm",
            ),
            (
                json!({"cards": {"spike": {"region_gate": -0.1}}}),
                json!({}),
                "cards",
                "region_gate",
            ),
        ];
        for (products, teams, who, setting) in cases {
            let err = config(products, teams).rule_book().unwrap_err().to_string();
            assert!(err.contains(who) && err.contains(setting), "{err}");
        }
    }
}

//! A cluster's history before its window: how many tickets it had per window, discounted with
//! age. Clusters are not stationary (fragments of one complaint merge, a cluster that grows
//! draws more of its complaint to it), so the usual rate must follow the recent past, not the
//! whole life of the cluster.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Moments, WEAK_PRIOR_WINDOWS};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Tickets that left the window, each weighted `exp(-age / memory)`.
    pub tickets: f64,
    /// Time watched before the window, in windows, weighted the same way.
    pub windows: f64,
    /// The instant the account runs up to (the start of the window when last counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

impl History {
    /// Moves the account up to `to` (the new start of the window), taking in `left`: the event
    /// times of the tickets that left the window on the way.
    pub fn advance(
        &mut self,
        to: DateTime<Utc>,
        left: impl Iterator<Item = DateTime<Utc>>,
        window: Duration,
        memory: Duration,
    ) {
        let from = *self.until.get_or_insert(to);
        if to <= from {
            self.tickets += left.count() as f64;
            return;
        }
        let memory = memory.as_secs_f64().max(1.0);
        let age = |t: DateTime<Utc>| (to - t).num_milliseconds().max(0) as f64 / 1000.0;
        let decay = (-age(from) / memory).exp();
        self.tickets = self.tickets * decay + left.map(|t| (-age(t) / memory).exp()).sum::<f64>();
        // ∫ exp(-(to - u)/memory) du over [from, to], in windows.
        self.windows =
            self.windows * decay + memory * (1.0 - decay) / window.as_secs_f64().max(1.0);
        self.until = Some(to);
    }

    /// Takes in the history of a cluster merged into this one. The merged cluster draws both
    /// complaints, so the rates add: each side is believed as a judgement believes it, with next
    /// to no prior ([`WEAK_PRIOR_WINDOWS`]), and the two are summed by mean and variance, as a
    /// judged group's are. A fragment watched for seconds widens the belief but cannot sink an old
    /// cluster's rate. (Holding the sum over the shorter of the two spans did: one ticket over
    /// seconds read as hundreds a window, held so weakly that a busy cluster was then judged by
    /// its prior, and its usual traffic opened a false SEV.)
    pub fn merge(&mut self, other: &History) {
        let mut sum = self.belief();
        sum += other.belief();
        match sum.gamma() {
            // Stored less the weak prior, which a judgement adds back.
            Some((shape, rate)) => {
                self.tickets = shape;
                self.windows = (rate - WEAK_PRIOR_WINDOWS).max(0.0);
            }
            // No tickets on either side: the rate is nil, known over the shorter watch (a side
            // never watched knows nothing).
            None => {
                self.windows = match (self.windows > 0.0, other.windows > 0.0) {
                    (true, true) => self.windows.min(other.windows),
                    _ => self.windows.max(other.windows),
                }
            }
        }
        self.until = self.until.max(other.until);
    }

    /// This history's rate per window as a judgement with the weak prior alone believes it.
    fn belief(&self) -> Moments {
        Moments::of(self.tickets, self.windows + WEAK_PRIOR_WINDOWS, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HALF_HOUR: Duration = Duration::from_secs(1800);
    const DAY: Duration = Duration::from_secs(86_400);

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(minutes)
    }

    /// A cluster fed `per_window` tickets every half hour for `hours`.
    fn steady(per_window: u32, hours: i64, memory: Duration) -> History {
        let mut h = History::default();
        h.advance(t(0), std::iter::empty(), HALF_HOUR, memory);
        for w in 1..=hours * 2 {
            let left = (0..per_window).map(|i| t((w - 1) * 30 + i as i64));
            h.advance(t(w * 30), left, HALF_HOUR, memory);
        }
        h
    }

    #[test]
    fn a_steady_cluster_shows_its_rate_per_window() {
        let h = steady(4, 48, Duration::from_secs(12 * 3600));
        assert!((h.tickets / h.windows - 4.0).abs() < 0.3, "{h:?}");
        // A day of memory is about 48 windows of evidence, however long the cluster lived.
        let h = steady(4, 200, DAY);
        assert!((h.windows - 48.0).abs() < 1.0, "{h:?}");
    }

    #[test]
    fn the_rate_follows_a_cluster_that_grew() {
        let memory = Duration::from_secs(6 * 3600);
        let mut h = steady(1, 24, memory);
        for w in 49..=72 {
            let left = (0..5).map(|i| t((w - 1) * 30 + i));
            h.advance(t(w * 30), left, HALF_HOUR, memory);
        }
        assert!(h.tickets / h.windows > 4.0, "{h:?}");
    }

    #[test]
    fn merged_rates_add() {
        let memory = Duration::from_secs(12 * 3600);
        let mut old = steady(1, 24, memory);
        let young = steady(4, 2, memory);
        let rate = old.belief().mean + young.belief().mean;
        old.merge(&young);
        assert!((old.belief().mean - rate).abs() < 1e-9, "{old:?}");
        // Held less firmly than the old cluster's own rate, as the young one's is uncertain.
        assert!(old.windows < steady(1, 24, memory).windows, "{old:?}");
    }

    #[test]
    fn a_fragment_watched_for_seconds_does_not_sink_a_busy_rate() {
        // Seen on a stream of 5,000 tickets an hour: a busy cluster took in a fragment with one
        // ticket over 13 seconds of watch, and was then judged by its prior.
        let mut busy = history(74.7, 1.35);
        let before = busy.belief().mean;
        busy.merge(&history(1.0, 0.0072));
        assert!(busy.belief().mean >= before, "{busy:?}");
        assert!(busy.belief().mean < before + 5.0, "{busy:?}");
        assert!(busy.windows > 0.8, "{busy:?}");
    }

    #[test]
    fn merging_an_empty_history_changes_nothing() {
        let h = steady(3, 10, Duration::from_secs(12 * 3600));
        let same = |a: &History| {
            (a.tickets - h.tickets).abs() < 1e-9 && (a.windows - h.windows).abs() < 1e-9
        };
        let mut merged = h.clone();
        merged.merge(&History::default());
        assert!(same(&merged), "{merged:?}");
        let mut empty = History::default();
        empty.merge(&h);
        assert!(same(&empty), "{empty:?}");
    }

    fn history(tickets: f64, windows: f64) -> History {
        History {
            tickets,
            windows,
            until: None,
        }
    }

    proptest::proptest! {
        /// Whatever the two sides, the merged rate is their sum, and the watch is never negative.
        #[test]
        fn merged_rate_is_the_sum(
            t1 in 0.0..1e4f64, w1 in 0.0..100.0f64, t2 in 0.0..1e4f64, w2 in 0.0..100.0f64,
        ) {
            let (a, b) = (history(t1, w1), history(t2, w2));
            let mut merged = a.clone();
            merged.merge(&b);
            proptest::prop_assert!(merged.windows >= 0.0);
            let sum = a.belief().mean + b.belief().mean;
            proptest::prop_assert!((merged.belief().mean - sum).abs() <= 1e-9 * sum.max(1.0));
        }
    }
}

//! A cluster's history before its window: how many tickets it had per window, discounted with
//! age. Clusters are not stationary (fragments of one complaint merge, a cluster that grows
//! draws more of its complaint to it), so the usual rate must follow the recent past, not the
//! whole life of the cluster.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
    /// complaints, so the rates add; held over the shorter of the two spans, so a young
    /// fragment's rate is believed no more firmly than its own history allows.
    pub fn merge(&mut self, other: &History) {
        if other.windows <= 0.0 {
            self.tickets += other.tickets;
            return;
        }
        if self.windows <= 0.0 {
            let tickets = self.tickets;
            *self = other.clone();
            self.tickets += tickets;
            return;
        }
        let span = self.windows.min(other.windows);
        self.tickets = self.tickets * span / self.windows + other.tickets * span / other.windows;
        self.windows = span;
        self.until = self.until.max(other.until);
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
    fn merged_rates_add_over_the_shorter_span() {
        let memory = Duration::from_secs(12 * 3600);
        let mut old = steady(1, 24, memory);
        let young = steady(4, 2, memory);
        let (span, rate) = (
            young.windows,
            old.tickets / old.windows + young.tickets / young.windows,
        );
        old.merge(&young);
        assert!((old.windows - span).abs() < 1e-9);
        assert!((old.tickets / old.windows - rate).abs() < 1e-9);
    }
}

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;
use crate::ticket::Tier;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-01-03T14:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn member(i: u32, customer: &str, minute: i64) -> Member {
    Member {
        ticket_id: format!("T-{i}"),
        customer_id: customer.to_string(),
        tier: Tier::Free,
        at: t0() + chrono::Duration::minutes(minute),
        source: None,
    }
}

fn rules() -> Rules {
    Rules {
        floor: FloorRule {
            min_tickets: 5,
            min_customers: 4.0,
            window: Duration::from_secs(30 * 60),
        },
        spike: SpikeRule {
            max_false_alarm: 1e-2,
            ..SpikeRule::default()
        },
        ..Rules::default()
    }
}

/// [`rules`] with the default spike rule: its false-alarm rate as shipped, not the lenient
/// one most tests judge by.
fn strict() -> Rules {
    Rules {
        spike: SpikeRule::default(),
        ..rules()
    }
}

/// The product has been watched for a day before these tests' tickets.
fn scope_start() -> DateTime<Utc> {
    t0() - chrono::Duration::hours(24)
}

/// A cluster that has run at `per_window` tickets per 30 minutes for ten hours.
fn with_history(per_window: u64) -> DetectorState {
    let mut history = History::default();
    let (window, memory) = (Duration::from_secs(1800), SpikeRule::default().memory);
    let start = t0() - chrono::Duration::hours(10);
    history.advance(start, std::iter::empty(), window, memory);
    for w in 1..=20 {
        let left =
            (0..per_window).map(|i| start + chrono::Duration::minutes(30 * (w - 1) + i as i64));
        history.advance(
            start + chrono::Duration::minutes(30 * w),
            left,
            window,
            memory,
        );
    }
    DetectorState {
        history,
        first_at: Some(start),
        ..DetectorState::default()
    }
}

/// Counts a ticket in a lone cluster and decides on it, as a scope does.
fn observe_in(
    s: &mut DetectorState,
    m: Member,
    rules: &Rules,
    started: DateTime<Utc>,
    policy: Policy,
) -> Decision {
    let end = s.count(m, rules);
    let judged = judge(&[&*s], Elsewhere::default(), end, rules, policy, started);
    s.decide("cards:1", judged, end, rules, policy)
}

fn observe(s: &mut DetectorState, m: Member, rules: &Rules) -> Decision {
    observe_in(s, m, rules, scope_start(), Policy::Combined)
}

fn escalation(d: &Decision) -> Option<&Escalation> {
    match d {
        Decision::Escalate(e) => Some(e),
        _ => None,
    }
}

#[test]
fn the_negative_binomial_tail_matches_known_values() {
    assert_eq!(negbin_tail(0, 3.0, 0.5), 1.0);
    // r = 1 is the geometric distribution: P(X ≥ k) = (1 - p)^k.
    assert!((negbin_tail(3, 1.0, 0.6) - 0.4f64.powi(3)).abs() < 1e-12);
    // A belief held very firmly is the Poisson: P(X ≥ 18 | λ = 10) = 0.0143 (tables).
    let r = 1e6;
    assert!((negbin_tail(18, r, r / (r + 10.0)) - 0.0143).abs() < 5e-4);
    // Little history keeps the tail wide: the same mean of 0.5, firmly or barely believed.
    assert!(negbin_tail(8, 2.0, 0.8) < negbin_tail(8, 0.125, 0.2));
    // Far in the tail the complement is exact to double precision; rules ask for far less.
    assert!(negbin_tail(2000, 1e4, 1e4 / (1e4 + 1000.0)) < 1e-12);
}

proptest::proptest! {
    /// Closed forms: r = 1 is the geometric, `P(X ≥ k) = q^k`; r = 2 gives `q^k (1 + k p)`.
    #[test]
    fn the_negative_binomial_tail_matches_its_closed_forms(k in 0u64..3000, p in 0.001f64..0.999) {
        let q = 1.0 - p;
        let geometric = q.powf(k as f64);
        proptest::prop_assert!((negbin_tail(k, 1.0, p) - geometric).abs() < 1e-12);
        let two = geometric * (1.0 + k as f64 * p);
        proptest::prop_assert!((negbin_tail(k, 2.0, p) - two).abs() < 1e-12);
    }

    /// A tail only shrinks as the count grows, whatever the belief (up to rounding), and is a
    /// probability.
    #[test]
    fn the_negative_binomial_tail_falls_with_the_count(
        k in 0u64..2000, r in 0.01f64..1e5, p in 0.001f64..0.999,
    ) {
        let (at, next) = (negbin_tail(k, r, p), negbin_tail(k + 1, r, p));
        proptest::prop_assert!((0.0..=1.0).contains(&at), "{at}");
        proptest::prop_assert!(next <= at + 1e-9, "{next} > {at}");
    }

    /// However late tickets arrive, the window stays in event-time order, holds exactly the
    /// tickets of the last window before the latest, and its binary-searched spans count what
    /// a scan of it counts.
    #[test]
    fn the_window_stays_in_time_order_and_spans_count_as_a_scan_does(
        minutes in proptest::collection::vec(0i64..120, 1..60),
        since in 0i64..130,
        length in 0i64..60,
    ) {
        let mut s = DetectorState::default();
        for (i, minute) in minutes.iter().enumerate() {
            s.count(member(i as u32, "c", *minute), &rules());
        }
        let at = |minute| t0() + chrono::Duration::minutes(minute);
        proptest::prop_assert!(s.window.iter().zip(s.window.iter().skip(1)).all(|(a, b)| a.at <= b.at));
        let latest = minutes.iter().max().copied().unwrap_or(0);
        let kept = minutes.iter().filter(|m| **m >= latest - 30).count();
        proptest::prop_assert_eq!(s.window.len(), kept);
        let (from, to) = (at(since), at(since + length));
        let scanned = s.window.iter().filter(|m| m.at >= from && m.at <= to).count();
        proptest::prop_assert_eq!(s.members_in(from, to), scanned);
        proptest::prop_assert_eq!(s.members_between(from, to).count(), scanned);
    }
}

/// Two neighbouring clusters with `(minute, customer)` tickets counted in turn, as a scope
/// counts them: histories of `usual` tickets per window, the second born `young_minutes` ago
/// (0: as old as the first).
fn neighbours(usual: u64, young_minutes: i64, tickets: &[(i64, u8, bool)]) -> [DetectorState; 2] {
    let mut pair = [with_history(usual), with_history(usual / 2)];
    if young_minutes > 0 {
        pair[1] = DetectorState {
            first_at: Some(t0() - chrono::Duration::minutes(young_minutes)),
            ..DetectorState::default()
        };
    }
    for (i, (minute, customer, second)) in tickets.iter().enumerate() {
        let m = member(i as u32, &format!("c-{customer}"), *minute);
        pair[usize::from(*second)].count(m, &rules());
    }
    pair
}

proptest::proptest! {
    /// The shortcut never hides a firing: when `could_fire` says no, the full judgement does not
    /// fire either, under every policy, for old and young neighbourhoods alike.
    #[test]
    fn could_fire_is_never_wrong_when_it_says_no(
        usual in 0u64..12,
        young_minutes in proptest::prop_oneof![proptest::strategy::Just(0i64), 1i64..600],
        tickets in proptest::collection::vec((0i64..60, 0u8..12, proptest::bool::ANY), 1..40),
        recent_start in proptest::bool::ANY,
    ) {
        let pair = neighbours(usual, young_minutes, &tickets);
        let group = [&pair[0], &pair[1]];
        let end = pair.iter().filter_map(|s| s.window.back()).map(|m| m.at).max().unwrap_or(t0());
        let started = if recent_start { t0() - chrono::Duration::minutes(30) } else { scope_start() };
        let policies = [
            Policy::Combined,
            Policy::Alone(RuleName::Floor),
            Policy::Alone(RuleName::Spike),
            Policy::Alone(RuleName::ColdStart),
        ];
        for policy in policies {
            if !could_fire(&group, end, &rules(), policy, started) {
                let judged = judge(&group, Elsewhere::default(), end, &rules(), policy, started);
                proptest::prop_assert_eq!(judged.verdict.fired(policy), None, "{:?}", policy);
            }
        }
    }
}

#[test]
fn could_fire_passes_a_burst_and_stops_usual_traffic() {
    let burst: Vec<(i64, u8, bool)> = (0..12).map(|i| (50 + i / 2, i as u8, false)).collect();
    let usual: Vec<(i64, u8, bool)> = (0..5).map(|i| (i * 6, i as u8, false)).collect();
    for (tickets, fires) in [(burst, true), (usual, false)] {
        let pair = neighbours(10, 0, &tickets);
        let group = [&pair[0], &pair[1]];
        let end = pair[0].window.back().map(|m| m.at).unwrap();
        let judged = judge(
            &group,
            Elsewhere::default(),
            end,
            &rules(),
            Policy::Combined,
            scope_start(),
        );
        assert_eq!(judged.verdict.fired(Policy::Combined).is_some(), fires);
        assert_eq!(
            could_fire(&group, end, &rules(), Policy::Combined, scope_start()),
            fires
        );
    }
}

#[test]
fn a_busy_cluster_at_its_usual_rate_does_not_escalate() {
    let mut s = with_history(10);
    let strict = strict();
    // Still ten tickets every 30 minutes: busy, but usual.
    for i in 0..100u32 {
        let d = observe(&mut s, member(i, &format!("c{i}"), i as i64 * 3), &strict);
        assert_eq!(d, Decision::Quiet, "ticket {i}");
    }
}

#[test]
fn a_busy_cluster_escalates_on_the_spike_rule_when_it_jumps_far_above_its_usual_rate() {
    let mut s = with_history(5);
    let fired = (0..40u32)
        .map(|j| observe(&mut s, member(j, &format!("x{j}"), j as i64 / 4), &rules()))
        .find_map(|d| escalation(&d).cloned())
        .expect("a spike to many times the usual rate escalates");
    assert_eq!(fired.rule, "spike");
    // Four a minute stands out in the shortest span as soon as the floor holds.
    assert!(
        fired.ticket_count >= rules().floor.min_tickets as u64,
        "fired at {}",
        fired.ticket_count
    );
    assert!(fired.verdict.p_value <= 1e-2);
    // The usual rate, scaled to the span that stood out.
    let per_minute = fired.verdict.expected / fired.verdict.span_minutes;
    assert!((per_minute * 30.0 - 5.0).abs() < 1.5, "{:?}", fired.verdict);
}

#[test]
fn a_busy_cluster_fires_where_splitting_the_rate_among_every_judgement_would_wait() {
    // A hundred a window: judged about that many times a window, but those judgements share
    // all but one ticket, so the rate is split among the square root of that (and the spans).
    let mut s = with_history(100);
    let strict = strict();
    // Six a minute, nearly twice the usual rate.
    let fired = (0..300u32)
        .map(|j| {
            let m = Member {
                at: t0() + chrono::Duration::seconds(10 * j as i64),
                ..member(j, &format!("x{j}"), 0)
            };
            observe(&mut s, m, &strict)
        })
        .find_map(|d| escalation(&d).cloned())
        .expect("the rise escalates");
    let v = &fired.verdict;
    let usual = v.expected * 30.0 / v.span_minutes;
    let tests = (strict.spike.spans.len() + 1) as f64;
    let alpha = strict.spike.max_false_alarm;
    // Less than a hundred: the prior and the discounting of older windows weigh in.
    assert!(usual > 50.0, "a busy cluster: {v:?}");
    assert!(v.p_value <= alpha / (usual.sqrt() * tests), "{v:?}");
    assert!(
        v.p_value > alpha / (usual * tests),
        "split among every judgement, it would not have fired yet: {v:?}"
    );
}

/// The burst tickets counted when a cluster running at 6 per 30 minutes first escalates, if
/// it does: its usual tickets for 25 minutes, then 12 customers within 6 minutes.
fn burst_tickets_to_escalate(rules: &Rules) -> Option<usize> {
    let mut s = with_history(6);
    for i in 0..6u32 {
        assert_eq!(
            observe(&mut s, member(i, &format!("b{i}"), i as i64 * 5), rules),
            Decision::Quiet
        );
    }
    (0..12u32)
        .position(|j| {
            let at = 25 + j as i64 / 2;
            escalation(&observe(
                &mut s,
                member(100 + j, &format!("x{j}"), at),
                rules,
            ))
            .is_some()
        })
        .map(|j| j + 1)
}

#[test]
fn a_fast_burst_stands_out_in_a_short_span_before_it_fills_the_window() {
    let strict = strict();
    let whole_window_only = Rules {
        spike: SpikeRule {
            spans: Vec::new(),
            ..SpikeRule::default()
        },
        ..rules()
    };
    let scanned = burst_tickets_to_escalate(&strict).expect("the burst escalates");
    assert!(scanned <= 10, "escalated after {scanned} burst tickets");
    match burst_tickets_to_escalate(&whole_window_only) {
        None => {}
        Some(whole) => assert!(whole > scanned, "{whole} vs {scanned}"),
    }
}

#[test]
fn spans_longer_than_the_window_are_refused() {
    let config: DetectionConfig =
        serde_json::from_value(serde_json::json!({"spike": {"spans": ["45m"]}})).unwrap();
    let err = config.rule_book().unwrap_err().to_string();
    assert!(err.contains("spans"), "{err}");
}

#[test]
fn opens_once_on_the_cold_start_rule_when_five_tickets_from_four_customers_arrive() {
    let mut s = DetectorState::default();
    let customers = ["a", "b", "c", "c", "d", "e"];
    let decisions: Vec<Decision> = customers
        .iter()
        .enumerate()
        .map(|(i, c)| observe(&mut s, member(i as u32, c, i as i64), &rules()))
        .collect();
    assert!(decisions[..4].iter().all(|d| *d == Decision::Quiet));
    let e = escalation(&decisions[4]).expect("the fifth ticket escalates");
    assert_eq!((e.ticket_count, e.distinct_customers), (5, 4));
    assert_eq!(e.rule, "cold_start");
    assert_eq!(e.evidence, vec!["T-0", "T-1", "T-2", "T-3", "T-4"]);
    assert_eq!(e.id, escalation_id("cards:1", 1, "cold_start"));
    assert_eq!(
        decisions[5],
        Decision::Attach {
            sev_cluster: "cards:1".into()
        }
    );
}

#[test]
fn one_angry_customer_filing_many_tickets_does_not_escalate() {
    let mut s = DetectorState::default();
    for i in 0..20 {
        let d = observe(&mut s, member(i, "angry", i as i64), &rules());
        assert_eq!(d, Decision::Quiet);
    }
}

#[test]
fn enterprise_customers_weigh_more_toward_the_floor() {
    let lenient = Rules {
        spike: SpikeRule {
            max_false_alarm: 0.05,
            ..SpikeRule::default()
        },
        ..rules()
    };
    let weighted = |tier: Tier| {
        let mut s = DetectorState::default();
        (0..5u32)
            .map(|i| {
                let m = Member {
                    tier: if i < 2 { tier } else { Tier::Free },
                    ..member(i, &format!("c{}", i % 3), i as i64)
                };
                observe(&mut s, m, &lenient)
            })
            .any(|d| escalation(&d).is_some())
    };
    // Three customers, two of them enterprise (weight 2 each): 5 ≥ 4.
    assert!(weighted(Tier::Enterprise));
    assert!(!weighted(Tier::Free));
}

#[test]
fn tickets_spread_wider_than_the_window_do_not_escalate() {
    let mut s = DetectorState::default();
    for i in 0..10 {
        let d = observe(&mut s, member(i, &format!("c{i}"), i as i64 * 20), &rules());
        assert_eq!(d, Decision::Quiet, "ticket {i}");
    }
    assert!(s.window.len() <= 2);
}

#[test]
fn a_late_ticket_takes_its_place_in_the_window_and_spans_count_by_event_time() {
    let mut s = DetectorState::default();
    for (i, minute) in [(0, 10), (1, 20), (2, 15), (3, 25), (4, 15)] {
        s.count(member(i, "c", minute), &rules());
    }
    let order: Vec<&str> = s.window.iter().map(|m| m.ticket_id.as_str()).collect();
    // Ties keep the order they were counted in.
    assert_eq!(order, ["T-0", "T-2", "T-4", "T-1", "T-3"]);
    let at = |minute| t0() + chrono::Duration::minutes(minute);
    assert_eq!(s.members_in(at(15), at(20)), 3);
    assert_eq!(s.members_in(at(0), at(14)), 1);
    assert_eq!(s.members_in(at(26), at(60)), 0);
    // At minute 50 the window (30 minutes) starts at minute 20.
    s.count(member(5, "c", 50), &rules());
    let left: Vec<&str> = s.window.iter().map(|m| m.ticket_id.as_str()).collect();
    assert_eq!(left, ["T-1", "T-3", "T-5"]);
}

#[test]
fn a_window_checkpointed_out_of_order_is_restored_in_event_time_order() {
    // As written before windows were kept in order: a late ticket appended.
    let s = DetectorState {
        window: [
            member(0, "a", 20),
            member(1, "b", 5),
            member(2, "c", 20),
            member(3, "d", 10),
        ]
        .into_iter()
        .collect(),
        ..DetectorState::default()
    };
    let restored: DetectorState =
        serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    let order: Vec<&str> = restored
        .window
        .iter()
        .map(|m| m.ticket_id.as_str())
        .collect();
    assert_eq!(order, ["T-1", "T-3", "T-0", "T-2"]);
}

#[test]
fn a_cluster_born_while_the_product_is_new_waits_for_its_history() {
    let mut s = DetectorState::default();
    let strict = strict();
    for i in 0..20u32 {
        let d = observe_in(
            &mut s,
            member(i, &format!("c{i}"), i as i64),
            &strict,
            t0(),
            Policy::Combined,
        );
        assert_eq!(d, Decision::Quiet, "ticket {i}");
    }
}

#[test]
fn an_episode_ends_after_a_quiet_spell_and_the_next_burst_is_a_new_episode() {
    let mut s = DetectorState::default();
    let burst = |s: &mut DetectorState, from: u32, minute: i64| -> Vec<Decision> {
        (from..from + 6)
            .map(|i| observe(s, member(i, &format!("c{i}"), minute), &rules()))
            .collect()
    };
    let first = burst(&mut s, 0, 0);
    let e1 = first
        .iter()
        .find_map(escalation)
        .expect("first burst")
        .clone();
    // Ninety minutes later the episode is still open: a lone ticket attaches.
    let lone = observe(&mut s, member(100, "z", 90), &rules());
    assert!(matches!(lone, Decision::Attach { .. }));
    // Seven hours after the burst (quiet is 2 h), it has ended.
    let late = observe(&mut s, member(101, "y", 7 * 60), &rules());
    assert_eq!(late, Decision::Quiet);
    assert!(!s.active);
    let second = burst(&mut s, 200, 8 * 60);
    let e2 = second.iter().find_map(escalation).expect("second burst");
    assert_eq!((e1.episode, e2.episode), (1, 2));
    assert_ne!(e1.id, e2.id);
}

#[test]
fn an_episode_of_a_busy_cluster_ends_once_it_is_back_at_its_usual_rate() {
    // Twenty an hour for ten hours, an episode open (a false alarm, say), then Poisson
    // arrivals at the same rate. Judged at every ticket and in four spans each time, the
    // cluster shows a 1% span by chance every hour or two, which must not keep the episode hot
    // (it did, for ten hours, when 1% per judgement was the test).
    let mut s = with_history(10);
    s.active = true;
    s.hot_at = Some(t0());
    s.sev_cluster = Some("cards:1".into());
    let strict = strict();
    let mut rng = 0x5eed_u64;
    let mut at = t0();
    let mut ended_at = None;
    for i in 0..400u32 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let uniform = ((rng >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        at += chrono::Duration::milliseconds((-uniform.ln() * 180_000.0) as i64);
        let m = Member {
            at,
            ..member(i, &format!("c{i}"), 0)
        };
        observe(&mut s, m, &strict);
        if !s.active {
            ended_at = Some(at);
            break;
        }
    }
    let ended_at = ended_at.expect("the episode ends");
    // The quiet spell is two hours; a chance window may restart it once or twice.
    assert!(
        ended_at - t0() <= chrono::Duration::hours(4),
        "ended at {ended_at}"
    );
}

#[test]
fn a_closed_episode_lets_the_next_crossing_escalate_again() {
    let mut s = DetectorState::default();
    for i in 0..6 {
        observe(&mut s, member(i, &format!("c{i}"), 0), &rules());
    }
    assert!(s.active);
    s.end_episode();
    let d = observe(&mut s, member(9, "c9", 1), &rules());
    assert_eq!(escalation(&d).map(|e| e.episode), Some(2));
}

#[test]
fn each_rule_alone_fires_where_the_combination_would_not() {
    let busy = |policy: Policy| {
        let mut s = with_history(10);
        let strict = strict();
        (0..20u32).find_map(|i| {
            let m = member(i, &format!("c{i}"), i as i64 * 3);
            escalation(&observe_in(&mut s, m, &strict, scope_start(), policy)).cloned()
        })
    };
    assert!(busy(Policy::Combined).is_none());
    assert_eq!(
        busy(Policy::Alone(RuleName::Floor)).map(|e| e.rule),
        Some("floor".to_string())
    );
    assert!(busy(Policy::Alone(RuleName::Spike)).is_none());
}

#[test]
fn escalation_ids_are_stable_and_distinct_per_episode() {
    assert_eq!(
        escalation_id("cards:1", 1, "spike"),
        escalation_id("cards:1", 1, "spike")
    );
    assert_ne!(
        escalation_id("cards:1", 1, "spike"),
        escalation_id("cards:1", 2, "spike")
    );
    assert_eq!(escalation_id("x", 1, "spike").len(), 4 + 16);
}

#[test]
fn a_split_takes_its_tickets_window_places_and_the_open_episode() {
    let rules = rules();
    let mut s = DetectorState::default();
    let decisions: Vec<Decision> = (0..6)
        .map(|i| observe(&mut s, member(i, &format!("c{i}"), i as i64), &rules))
        .collect();
    assert!(
        decisions.iter().any(|d| escalation(d).is_some()),
        "{decisions:?}"
    );
    let moved = BTreeSet::from(["T-3", "T-4", "T-5"]);
    let fresh = s.split_off(&moved);
    let ids = |d: &DetectorState| {
        d.window
            .iter()
            .map(|m| m.ticket_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&fresh), ["T-3", "T-4", "T-5"]);
    assert_eq!(ids(&s), ["T-0", "T-1", "T-2"]);
    assert_eq!(fresh.first_at, Some(t0() + chrono::Duration::minutes(3)));
    assert!(fresh.active && fresh.sev_cluster.as_deref() == Some("cards:1"));
    assert!(s.active, "the old cluster keeps its episode too");

    let mut quiet = DetectorState::default();
    observe(&mut quiet, member(9, "c9", 0), &rules);
    let fresh = quiet.split_off(&BTreeSet::from(["T-9"]));
    assert!(!fresh.active && fresh.sev_cluster.is_none() && fresh.hot_at.is_none());
    assert_eq!(fresh.episode, 0);
}

#[test]
fn a_merge_takes_in_the_boundary_less_the_tickets_that_are_its_own_now() {
    let rules = rules();
    let (mut a, mut b) = (DetectorState::default(), DetectorState::default());
    // T-1 joined b but nearly joined a; T-2 joined a, nearly b; T-3 joined c, nearly b.
    a.count_in_boundary(member(1, "c1", 1), &rules);
    observe(&mut b, member(1, "c1", 1), &rules);
    observe(&mut a, member(2, "c2", 2), &rules);
    b.count_in_boundary(member(2, "c2", 2), &rules);
    b.count_in_boundary(member(3, "c3", 3), &rules);
    assert!(a.boundary.as_ref().is_some_and(|n| n.is_boundary));
    a.absorb(b);
    let boundary: Vec<&str> = a.boundary.as_ref().map_or(Vec::new(), |n| {
        n.window.iter().map(|m| m.ticket_id.as_str()).collect()
    });
    assert_eq!(
        boundary,
        ["T-3"],
        "T-1 and T-2 are the merged cluster's own"
    );
    // A split-off cluster starts without a boundary: tickets come near it afresh.
    assert!(a.split_off(&BTreeSet::from(["T-2"])).boundary.is_none());
}

#[test]
fn only_a_cluster_born_after_the_warmup_and_short_of_history_is_on_the_cold_start() {
    let rules = rules();
    let end = t0();
    let born = |minutes_after_start: i64, windows: f64| DetectorState {
        first_at: Some(scope_start() + chrono::Duration::minutes(minutes_after_start)),
        history: History {
            windows,
            ..History::default()
        },
        ..DetectorState::default()
    };
    assert!(born(120, 0.0).on_cold_start(&rules, scope_start(), end));
    // Born while the product was new: every cluster is new to sevloop then, not to customers.
    assert!(!born(30, 0.0).on_cold_start(&rules, scope_start(), end));
    // Watched long enough: its own history judges it.
    let watched = rules.spike.prior_windows;
    assert!(!born(120, watched).on_cold_start(&rules, scope_start(), end));
    let off = Rules {
        cold_start: ColdStartRule {
            enabled: false,
            ..rules.cold_start.clone()
        },
        ..rules.clone()
    };
    assert!(!born(120, 0.0).on_cold_start(&off, scope_start(), end));
}

#[test]
fn moved_in_is_the_shortfall_of_the_sources_against_their_usual_rate() {
    let end = t0() + chrono::Duration::minutes(29);
    // Usual 9.8 a window (100 tickets over 10 windows, the weak prior of a cluster born with
    // its product); `n` tickets seen, 3 minutes apart, the newest at `end`.
    let with_window = |n: i64| DetectorState {
        history: History {
            tickets: 100.0,
            windows: 10.0,
            until: Some(t0()),
        },
        first_at: Some(scope_start()),
        window: (0..n)
            .map(|i| member(i as u32, "c", 29 - 3 * (n - 1 - i)))
            .collect(),
        ..DetectorState::default()
    };
    let rules = rules();
    let moved = |sources: &[&DetectorState]| {
        let m = moved_in(sources, end, &rules, scope_start());
        (m.whole, m.per_span)
    };
    // Spans of 5, 10 and 15 minutes expect 1.6, 3.3 and 4.9 tickets.
    assert_eq!(moved(&[&with_window(0)]), (9, vec![1, 3, 4]));
    assert_eq!(moved(&[&with_window(10)]), (0, vec![0, 0, 0]));
    assert_eq!(moved(&[&with_window(3)]), (6, vec![0, 0, 1]));
    // Two sources add up; none moves nothing.
    assert_eq!(
        moved(&[&with_window(0), &with_window(0)]),
        (18, vec![2, 6, 8])
    );
    assert_eq!(moved(&[]), (0, vec![0, 0, 0]));
    // A cluster with no history to judge by has no usual rate to fall short of.
    let young = DetectorState {
        first_at: Some(t0()),
        ..DetectorState::default()
    };
    let m = moved_in(&[&young], end, &rules, t0());
    assert_eq!((m.whole, m.per_span), (0, vec![0, 0, 0]));
}

use super::*;
use std::sync::Arc;

use crate::cluster::corrections::Correction;
use crate::cluster::vector::unit;
use crate::cluster::{parse_cluster_id, ClusterConfig};
use crate::detect::Member;
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
    observe_events(EventKind::Created, rules, clusters, joins, minutes, vector)
}

/// [`observe_burst`] with every ticket's event `kind`.
fn observe_events(
    kind: EventKind,
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
            t.event = kind;
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

/// Updates of tickets sevloop never saw created (filed before it watched, or their creation
/// dead-lettered) are filed in their cluster, and are no new complaints: a bulk update of old
/// tickets opens no SEV, where as many new tickets do.
#[test]
fn updates_of_tickets_never_seen_are_filed_but_never_counted() {
    let run = |kind: EventKind| {
        let quiet = watched(2.0, 0);
        let clusters = |lsh: &crate::cluster::lsh::LshConfig| {
            vec![checkpoint(
                lsh,
                1,
                &along([1.0, 0.0, 0.0]),
                500,
                -24 * 60,
                quiet,
            )]
        };
        let minutes: Vec<i64> = (1..=12).collect();
        let vector = |i: usize| {
            let mut v: Vec<f32> = along([1.0, 0.0, 0.0]).iter().map(|x| x * 0.95).collect();
            v[2 + i] = 0.312;
            v
        };
        observe_events(kind, &RuleBook::default(), clusters, 1, &minutes, vector)
    };
    let (created, _) = run(EventKind::Created);
    assert_eq!(escalations(&created).len(), 1, "12 new tickets open a SEV");
    for kind in [EventKind::Updated, EventKind::Solved, EventKind::Closed] {
        let (decisions, scope) = run(kind);
        assert_all_quiet(&decisions);
        assert!(
            counted(&scope, 1, 12).is_empty(),
            "{kind:?}: nothing counted"
        );
        let filed = scope.cluster(1).map(|c| c.size);
        assert_eq!(
            filed,
            Some(512),
            "{kind:?}: the tickets are filed in the cluster"
        );
    }
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
    let fresh = burst_beside_a_neighbour_with_boundary(6.0, usual(8), &RuleBook::default(), 1.0);
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

/// A cluster of 40 tickets along `direction`, watched for a day at 2 tickets a window.
fn watched_cluster(
    lsh: &crate::cluster::lsh::LshConfig,
    seq: u64,
    direction: [f32; 3],
) -> ClusterCheckpoint {
    checkpoint(lsh, seq, &along(direction), 40, -24 * 60, watched(2.0, 0))
}

/// The `i`th ticket of a burst along the first direction, each set apart by one dimension.
fn burst_ticket_vector(i: usize) -> Vec<f32> {
    let mut v = along([1.0, 0.0, 0.0]);
    v[3 + i % (DIM - 3)] = 0.3;
    v
}

/// The tickets cluster `seq`'s window counts up to minute `until`.
fn counted(scope: &Scope, seq: u64, until: i64) -> Vec<String> {
    scope.detectors[&seq]
        .members_between(at(0), at(until))
        .map(|m| m.ticket_id.clone())
        .collect()
}

#[test]
fn a_split_by_a_person_moves_the_tickets_window_to_the_new_cluster() {
    let clusters =
        |lsh: &crate::cluster::lsh::LshConfig| vec![watched_cluster(lsh, 1, [1.0, 0.0, 0.0])];
    let minutes: Vec<i64> = (1..=12).collect();
    let (_, mut scope) = observe_burst(
        &RuleBook::default(),
        clusters,
        1,
        &minutes,
        burst_ticket_vector,
    );
    let mut f = Featurizer::default();
    // The tickets the correction names, with their cluster now and their features.
    let members: Vec<(String, String, Features)> = (1..=4u32)
        .map(|i| {
            let t = ticket(i, &format!("c{i}"), "my card is declined");
            let features = ticket_features(&mut f, &t, Some(unit(burst_ticket_vector(i as usize))));
            (t.ticket_id, "cards:1".to_string(), features)
        })
        .collect();
    let leaving: Vec<String> = members.iter().map(|(id, _, _)| id.clone()).collect();
    let split = Correction::Split {
        cluster_id: "cards:1".into(),
        ticket_ids: leaving.clone(),
    };
    let moved = scope.correct(&split, &members).expect("split");
    assert_eq!(moved.len(), 4, "{moved:?}");
    let (_, new) = parse_cluster_id(&moved[0].1).expect("a cluster id");
    assert_eq!(
        counted(&scope, new, 12),
        leaving,
        "the new cluster counts the tickets that left"
    );
    let stayed = counted(&scope, 1, 12);
    assert_eq!(stayed.len(), 8, "{stayed:?}");
    assert!(stayed.iter().all(|id| !leaving.contains(id)), "{stayed:?}");
}

/// The scope after three tickets of a burst joined cluster 1 of `clusters`.
fn after_three_burst_tickets(
    clusters: impl FnOnce(&crate::cluster::lsh::LshConfig) -> Vec<ClusterCheckpoint>,
) -> Scope {
    observe_burst(
        &RuleBook::default(),
        clusters,
        1,
        &[1, 2, 3],
        burst_ticket_vector,
    )
    .1
}

/// The tickets in the window of cluster `seq`'s boundary.
fn in_boundary(scope: &Scope, seq: u64) -> Vec<String> {
    scope.detectors[&seq]
        .boundary
        .iter()
        .flat_map(|b| b.window.iter().map(|m| m.ticket_id.clone()))
        .collect()
}

#[test]
fn a_ticket_a_person_moves_counts_for_the_cluster_it_joined() {
    // Clusters 2 and 4 are near enough (cosine 0.62 to the burst) that the burst's tickets
    // count in their boundaries.
    let clusters = |lsh: &crate::cluster::lsh::LshConfig| {
        vec![
            watched_cluster(lsh, 1, [1.0, 0.0, 0.0]),
            watched_cluster(lsh, 2, [0.647, 0.762, 0.0]),
            watched_cluster(lsh, 4, [0.647, 0.0, 0.762]),
        ]
    };
    let mut scope = after_three_burst_tickets(clusters);
    let mut f = Featurizer::default();
    let t = ticket(2, "c2", "my card is declined");
    assert!(in_boundary(&scope, 2).contains(&t.ticket_id));
    let features = ticket_features(&mut f, &t, Some(unit(burst_ticket_vector(2))));
    let members = vec![(t.ticket_id.clone(), "cards:1".to_string(), features)];
    let moving = Correction::Move {
        ticket_id: t.ticket_id.clone(),
        to_cluster_id: "cards:2".into(),
    };
    let moved = scope.correct(&moving, &members).expect("move");
    assert_eq!(moved, vec![(t.ticket_id.clone(), "cards:2".to_string())]);
    assert_eq!(
        counted(&scope, 2, 3),
        vec![t.ticket_id.clone()],
        "the cluster it joined counts it"
    );
    assert!(
        !in_boundary(&scope, 2).contains(&t.ticket_id),
        "and not in its boundary as well"
    );
    let left = counted(&scope, 1, 3);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        !left.contains(&t.ticket_id),
        "the cluster it left no longer counts it"
    );
    let sources: Vec<Option<u64>> = scope.detectors[&4]
        .boundary
        .iter()
        .flat_map(|b| b.window.iter())
        .filter(|m| m.ticket_id == t.ticket_id)
        .map(|m| m.source)
        .collect();
    assert_eq!(
        sources,
        [Some(2)],
        "near another cluster, it names the one it joined"
    );
    let saved: Vec<u64> = scope.take_touched().iter().map(|c| c.cluster.seq).collect();
    assert_eq!(saved, [1, 2, 4], "every changed cluster is checkpointed");
}

#[test]
fn a_cluster_a_move_empties_hands_its_detection_state_to_the_one_it_joined() {
    let clusters = |lsh: &crate::cluster::lsh::LshConfig| {
        let mut lone = watched(2.0, 0);
        lone.window.push_back(source_member(9, 2));
        lone.episode = 1;
        vec![
            watched_cluster(lsh, 1, [1.0, 0.0, 0.0]),
            checkpoint(lsh, 3, &along([0.0, 0.0, 1.0]), 1, -60, lone),
        ]
    };
    let mut scope = after_three_burst_tickets(clusters);
    let mut f = Featurizer::default();
    let mut t = ticket(9, "s9", "my card is declined");
    t.ticket_id = "S-9".into();
    let features = ticket_features(&mut f, &t, Some(along([0.0, 0.0, 1.0])));
    let members = vec![(t.ticket_id.clone(), "cards:3".to_string(), features)];
    let moving = Correction::Move {
        ticket_id: t.ticket_id.clone(),
        to_cluster_id: "cards:1".into(),
    };
    scope.correct(&moving, &members).expect("move");
    assert!(
        counted(&scope, 1, 3).contains(&t.ticket_id),
        "counted where it went"
    );
    assert!(
        !scope.detectors.contains_key(&3),
        "the emptied cluster keeps no state"
    );
    assert_eq!(scope.detectors[&1].episode, 1, "its episodes carried over");
}

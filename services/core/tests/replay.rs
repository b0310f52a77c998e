//! Determinism of clustering and detection on real queries: the same stream twice gives the
//! same assignments, and a stream interrupted anywhere, checkpointed (through JSON, as stored)
//! and restored, decides and ends exactly like the uninterrupted run, consolidation rounds
//! included.

use chrono::{DateTime, Duration, Utc};
use sevloop_core::{
    ticket_features, Catalog, ClusterCheckpoint, Detection, Featurizer, Observation, Policy,
    RuleBook, Scope, TicketEvent,
};

/// The slice as tickets `spacing` minutes apart.
fn stream(spacing: i64) -> Vec<TicketEvent> {
    let start: DateTime<Utc> = "2024-01-01T00:00:00Z".parse().expect("time");
    include_str!("data/banking77-slice.jsonl")
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let row: serde_json::Value = serde_json::from_str(line).expect("slice row is JSON");
            let at = start + Duration::minutes(spacing * i as i64);
            TicketEvent::from_value(serde_json::json!({
                "ticket_id": row["id"], "event": "created", "event_time": at.to_rfc3339(),
                "subject": "", "body": row["text"], "product": "cards",
                "customer": {"id": format!("c{i}"), "tier": "free"},
                "channel": "email", "source": "test",
            }))
            .expect("valid ticket")
        })
        .collect()
}

fn scope(checkpoints: Vec<ClusterCheckpoint>) -> Scope {
    Scope::restore("cards", Default::default(), checkpoints)
}

/// Feeds tickets, keeping the checkpoints as the pipeline stores them (latest per cluster).
/// Every ticket's window is judged and explained, so the observations show all of detection's
/// state, not only the rare decision that opens a SEV.
fn feed(
    scope: &mut Scope,
    tickets: &[TicketEvent],
    saved: &mut std::collections::BTreeMap<u64, String>,
) -> Vec<Observation> {
    let mut f = Featurizer::default();
    let mut seen = Vec::new();
    let (rules, catalog) = (RuleBook::default(), Catalog::default());
    let detection = Detection {
        rules: &rules,
        catalog: &catalog,
        policy: Policy::Combined,
        explain: true,
    };
    for t in tickets {
        let features = ticket_features(&mut f, t, None);
        seen.push(scope.observe(&features, t, &detection));
        for cp in scope.take_touched() {
            saved.insert(
                cp.cluster.seq,
                serde_json::to_string(&cp).expect("serialises"),
            );
        }
    }
    seen
}

fn final_clusters(scope: &Scope, seen: &[Observation]) -> Vec<u64> {
    seen.iter()
        .map(|o| scope.clusterer().resolve(o.seq))
        .collect()
}

#[test]
fn the_same_stream_twice_gives_the_same_clusters() {
    let tickets = stream(10);
    let (mut a, mut b) = (scope(Vec::new()), scope(Vec::new()));
    let sa = feed(&mut a, &tickets, &mut Default::default());
    let sb = feed(&mut b, &tickets, &mut Default::default());
    assert_eq!(final_clusters(&a, &sa), final_clusters(&b, &sb));
    assert!(a.clusterer().len() > 10, "the slice forms many clusters");
}

/// Ten minutes apart, consolidation rounds (every 15 minutes) run along the way and each
/// window holds a few tickets; a minute apart, windows fill and the clusters' histories,
/// boundaries and judgements carry weight.
#[test]
fn a_restart_anywhere_decides_and_ends_like_the_uninterrupted_run() {
    for spacing in [10, 1] {
        let tickets = stream(spacing);
        let mut whole = scope(Vec::new());
        let expected = feed(&mut whole, &tickets, &mut Default::default());
        let clusters = final_clusters(&whole, &expected);
        let judged = expected.iter().filter(|o| o.verdict.is_some()).count();
        assert_eq!(judged, tickets.len(), "every window is explained");
        for cut in [1, 97, 250, 401] {
            let mut saved = Default::default();
            let mut first = scope(Vec::new());
            let mut seen = feed(&mut first, &tickets[..cut], &mut saved);
            let restored: Vec<ClusterCheckpoint> = saved
                .values()
                .map(|json| serde_json::from_str(json).expect("checkpoint reads back"))
                .collect();
            let mut second = scope(restored);
            seen.extend(feed(&mut second, &tickets[cut..], &mut saved));
            let at = format!("{spacing} minutes apart, restart after {cut} tickets");
            if let Some(i) = (cut..seen.len()).find(|&i| seen[i] != expected[i]) {
                panic!(
                    "{at}: ticket {i} was observed as {:?}, uninterrupted as {:?}",
                    seen[i], expected[i]
                );
            }
            assert_eq!(final_clusters(&second, &seen), clusters, "{at}");
        }
    }
}

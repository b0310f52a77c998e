//! Determinism of the clustering stage on real queries: the same stream twice gives the same
//! assignments, and a stream interrupted anywhere, checkpointed (through JSON, as stored) and
//! restored, ends exactly like the uninterrupted run, consolidation rounds included.

use chrono::{DateTime, Duration, Utc};
use sevloop_core::{
    ticket_features, Catalog, ClusterCheckpoint, Detection, Featurizer, Policy, RuleBook, Scope,
    TicketEvent,
};

fn stream() -> Vec<TicketEvent> {
    let start: DateTime<Utc> = "2024-01-01T00:00:00Z".parse().expect("time");
    include_str!("data/banking77-slice.jsonl")
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let row: serde_json::Value = serde_json::from_str(line).expect("slice row is JSON");
            // Ten minutes apart, so consolidation rounds (every 15 minutes) run along the way.
            let at = start + Duration::minutes(10 * i as i64);
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
fn feed(
    scope: &mut Scope,
    tickets: &[TicketEvent],
    saved: &mut std::collections::BTreeMap<u64, String>,
) -> Vec<u64> {
    let mut f = Featurizer::default();
    let mut seqs = Vec::new();
    let (rules, catalog) = (RuleBook::default(), Catalog::default());
    let detection = Detection {
        rules: &rules,
        catalog: &catalog,
        policy: Policy::Combined,
        explain: false,
    };
    for t in tickets {
        let features = ticket_features(&mut f, t, None);
        seqs.push(scope.observe(&features, t, &detection).seq);
        for cp in scope.take_touched() {
            saved.insert(
                cp.cluster.seq,
                serde_json::to_string(&cp).expect("serialises"),
            );
        }
    }
    seqs
}

fn final_clusters(scope: &Scope, seqs: &[u64]) -> Vec<u64> {
    seqs.iter().map(|s| scope.clusterer().resolve(*s)).collect()
}

#[test]
fn the_same_stream_twice_gives_the_same_clusters() {
    let tickets = stream();
    let (mut a, mut b) = (scope(Vec::new()), scope(Vec::new()));
    let sa = feed(&mut a, &tickets, &mut Default::default());
    let sb = feed(&mut b, &tickets, &mut Default::default());
    assert_eq!(final_clusters(&a, &sa), final_clusters(&b, &sb));
    assert!(a.clusterer().len() > 10, "the slice forms many clusters");
}

#[test]
fn a_restart_anywhere_ends_like_the_uninterrupted_run() {
    let tickets = stream();
    let mut whole = scope(Vec::new());
    let expected = feed(&mut whole, &tickets, &mut Default::default());
    let expected = final_clusters(&whole, &expected);
    for cut in [1, 97, 250, 401] {
        let mut saved = Default::default();
        let mut first = scope(Vec::new());
        let mut seqs = feed(&mut first, &tickets[..cut], &mut saved);
        let restored: Vec<ClusterCheckpoint> = saved
            .values()
            .map(|json| serde_json::from_str(json).expect("checkpoint reads back"))
            .collect();
        let mut second = scope(restored);
        seqs.extend(feed(&mut second, &tickets[cut..], &mut saved));
        assert_eq!(
            final_clusters(&second, &seqs),
            expected,
            "restart after {cut} tickets"
        );
    }
}

//! Determinism of clustering and detection on real queries: the same stream twice gives the
//! same assignments, and a stream interrupted anywhere, checkpointed (through JSON, as stored)
//! and restored, decides and ends exactly like the uninterrupted run, consolidation rounds
//! included.

use chrono::{DateTime, Duration, Utc};
use sevloop_core::{
    ticket_features, Catalog, ClusterCheckpoint, Decision, Detection, Featurizer, Observation,
    Policy, RuleBook, Scope, TicketEvent,
};

/// Where the stream has a burst: twelve customers filing one complaint in a row.
const BURST: std::ops::Range<usize> = 300..312;

/// The slice as tickets `spacing` minutes apart, the tickets in [`BURST`] all with the text of
/// the one before it: a minute apart, a burst that opens a SEV.
fn stream(spacing: i64) -> Vec<TicketEvent> {
    let start: DateTime<Utc> = "2024-01-01T00:00:00Z".parse().expect("time");
    let rows: Vec<serde_json::Value> = include_str!("data/banking77-slice.jsonl")
        .lines()
        .map(|line| serde_json::from_str(line).expect("slice row is JSON"))
        .collect();
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let text = if BURST.contains(&i) {
                &rows[BURST.start - 1]["text"]
            } else {
                &row["text"]
            };
            let at = start + Duration::minutes(spacing * i as i64);
            TicketEvent::from_value(serde_json::json!({
                "ticket_id": row["id"], "event": "created", "event_time": at.to_rfc3339(),
                "subject": "", "body": text, "product": "cards",
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

type Saved = std::collections::BTreeMap<u64, String>;

/// Feeds tickets, keeping the checkpoints as the pipeline stores them (latest per cluster).
/// With `explain`, every ticket's window is judged and explained, so the observations show all
/// of detection's state, not only the rare decision that opens a SEV; without it, windows that
/// cannot fire are skipped, as in production.
fn feed(
    scope: &mut Scope,
    tickets: &[TicketEvent],
    saved: &mut Saved,
    explain: bool,
) -> Vec<Observation> {
    let mut f = Featurizer::default();
    let mut seen = Vec::new();
    let (rules, catalog) = (RuleBook::default(), Catalog::default());
    let detection = Detection {
        rules: &rules,
        catalog: &catalog,
        policy: Policy::Combined,
        explain,
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
    let sa = feed(&mut a, &tickets, &mut Default::default(), true);
    let sb = feed(&mut b, &tickets, &mut Default::default(), true);
    assert_eq!(sa, sb);
    assert!(a.clusterer().len() > 10, "the slice forms many clusters");
}

/// Ten minutes apart, consolidation rounds (every 15 minutes) run along the way and each
/// window holds a few tickets; a minute apart, windows fill, the burst opens a SEV, and the
/// clusters' histories, boundaries and episodes carry weight. Restarts fall before, inside and
/// after the burst.
#[test]
fn a_restart_anywhere_decides_and_ends_like_the_uninterrupted_run() {
    for (spacing, explain) in [(10, true), (1, true), (1, false)] {
        let tickets = stream(spacing);
        let mut whole = scope(Vec::new());
        let mut whole_saved = Saved::new();
        let expected = feed(&mut whole, &tickets, &mut whole_saved, explain);
        let clusters = final_clusters(&whole, &expected);
        if explain {
            let judged = expected.iter().filter(|o| o.verdict.is_some()).count();
            assert_eq!(judged, tickets.len(), "every window is explained");
        }
        let opened = expected
            .iter()
            .filter(|o| matches!(o.decision, Decision::Escalate(_)))
            .count();
        assert_eq!(
            opened > 0,
            spacing == 1,
            "{spacing} minutes apart: {opened} opened"
        );
        for cut in [1, 97, 250, BURST.start + 4, 401] {
            let mut saved = Saved::new();
            let mut first = scope(Vec::new());
            let mut seen = feed(&mut first, &tickets[..cut], &mut saved, explain);
            let restored: Vec<ClusterCheckpoint> = saved
                .values()
                .map(|json| serde_json::from_str(json).expect("checkpoint reads back"))
                .collect();
            let mut second = scope(restored);
            seen.extend(feed(&mut second, &tickets[cut..], &mut saved, explain));
            let at = format!("{spacing} minutes apart, restart after {cut} tickets");
            if let Some(i) = (cut..seen.len()).find(|&i| seen[i] != expected[i]) {
                panic!(
                    "{at}: ticket {i} was observed as {:?}, uninterrupted as {:?}",
                    seen[i], expected[i]
                );
            }
            assert_eq!(final_clusters(&second, &seen), clusters, "{at}");
            // State no verdict showed yet is checkpointed alike too.
            assert!(saved == whole_saved, "{at}: the checkpoints differ");
        }
    }
}

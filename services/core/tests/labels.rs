//! Snapshot of what people read about clusters: labels, sizes and exemplar tickets, for a fixed
//! slice of real support queries (terms only, so the test needs no model). A change in features,
//! weighting or clustering that changes what people see shows up here as a reviewable diff.

use chrono::{DateTime, Duration, Utc};
use sevloop_core::cluster::{ClusterConfig, Clusterer, Features};
use sevloop_core::text::Featurizer;

fn slice() -> Vec<(String, String)> {
    include_str!("data/banking77-slice.jsonl")
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("slice row is JSON");
            let field = |k: &str| v[k].as_str().expect("id and text are strings").to_string();
            (field("id"), field("text"))
        })
        .collect()
}

#[test]
fn labels_and_exemplars_of_the_largest_clusters() {
    let start: DateTime<Utc> = "2024-01-01T00:00:00Z".parse().expect("time");
    let mut featurizer = Featurizer::default();
    let mut clusterer = Clusterer::new("cards", ClusterConfig::default());
    for (i, (id, text)) in slice().iter().enumerate() {
        let features = Features {
            terms: featurizer.features(text, &[]),
            dense: None,
        };
        clusterer.assign(&features, id, start + Duration::seconds(30 * i as i64));
    }
    let mut clusters: Vec<_> = clusterer.clusters().collect();
    clusters.sort_by(|a, b| b.size.cmp(&a.size).then(a.seq.cmp(&b.seq)));
    let shown: Vec<String> = clusters
        .iter()
        .take(8)
        .map(|c| {
            let exemplars: Vec<&str> = c.exemplars.iter().map(|e| e.ticket_id.as_str()).collect();
            format!(
                "{} size={} label=[{}] exemplars=[{}]",
                c.id,
                c.size,
                clusterer.label(c, 4).join(", "),
                exemplars.join(", ")
            )
        })
        .collect();
    assert_eq!(shown.len(), 8, "the slice forms at least 8 clusters");
    insta::assert_snapshot!(shown.join("\n"));
}

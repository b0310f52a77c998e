use super::*;
use crate::text::Featurizer;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-01-03T14:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn at(minutes: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::minutes(minutes)
}

fn lexical(f: &mut Featurizer, text: &str) -> Features {
    Features {
        terms: f.features(text, &[]),
        dense: None,
    }
}

/// A unit vector pointing mostly along axis `axis`, nudged by `nudge` along the next axis.
fn dense(f: &mut Featurizer, text: &str, axis: usize, nudge: f32) -> Features {
    let mut v = vec![0.0f32; 8];
    v[axis] = 1.0;
    v[(axis + 1) % 8] = nudge;
    let n = vector::norm(&v);
    Features {
        terms: f.features(text, &[]),
        dense: Some(v.into_iter().map(|x| x / n).collect()),
    }
}

fn run(texts: &[&str]) -> Vec<Assignment> {
    let mut f = Featurizer::default();
    let mut c = Clusterer::new("cards", ClusterConfig::default());
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| c.assign(&lexical(&mut f, t), &format!("T-{i}"), t0()).1)
        .collect()
}

#[test]
fn similar_complaints_share_a_cluster_and_different_ones_do_not() {
    let a = run(&[
        "My card is declined in every shop",
        "card declined in the shop again",
        "How do I change my address?",
        "every shop declined my card",
    ]);
    assert_eq!(a[0].cluster_id, "cards:1");
    assert_eq!(a[1].cluster_id, "cards:1");
    assert_eq!(a[2].cluster_id, "cards:2");
    assert_eq!(a[3].cluster_id, "cards:1");
    assert!(a[1].matched_terms.contains(&"declin".to_string()));
}

#[test]
fn the_same_tickets_in_the_same_order_give_the_same_clusters() {
    let texts = [
        "login fails",
        "cannot log in, login fails with error 500",
        "refund please",
        "where is my refund",
        "login page fails",
    ];
    assert_eq!(run(&texts), run(&texts));
}

#[test]
fn a_restored_clusterer_continues_exactly_like_the_original() {
    let mut f = Featurizer::default();
    let mut original = Clusterer::new("p", ClusterConfig::default());
    let first = [
        ("card declined", 0),
        ("refund missing", 3),
        ("card declined twice", 0),
    ];
    for (i, (t, axis)) in first.iter().enumerate() {
        original.assign(&dense(&mut f, t, *axis, 0.1), &format!("A-{i}"), t0());
    }
    let saved: Vec<Cluster> = original.clusters.values().cloned().collect();
    let mut restored = Clusterer::restore("p", ClusterConfig::default(), saved);
    let later = [
        ("my card got declined", 0),
        ("refund is missing", 3),
        ("new topic", 6),
    ];
    for (i, (t, axis)) in later.iter().enumerate() {
        let v = dense(&mut f, t, *axis, 0.2);
        let id = format!("B-{i}");
        assert_eq!(
            original.assign(&v, &id, t0()),
            restored.assign(&v, &id, t0())
        );
    }
    assert_eq!(
        original.clusters().collect::<Vec<_>>(),
        restored.clusters().collect::<Vec<_>>()
    );
}

#[test]
fn centroids_stay_within_their_term_budget() {
    let mut f = Featurizer::default();
    let config = ClusterConfig {
        centroid_terms: 5,
        similarity_threshold: 0.1,
        ..ClusterConfig::default()
    };
    let mut c = Clusterer::new("p", config);
    for (i, t) in [
        "alpha beta gamma delta epsilon zeta",
        "alpha beta eta theta iota kappa",
    ]
    .iter()
    .enumerate()
    {
        c.assign(&lexical(&mut f, t), &i.to_string(), t0());
    }
    assert_eq!(c.len(), 1);
    let k = c.get(1).unwrap();
    assert_eq!(k.centroid.len(), 5);
    assert_eq!(c.label(k, 2), vec!["alpha", "beta"]);
}

#[test]
fn semantic_vectors_decide_when_present_even_without_shared_words() {
    let mut f = Featurizer::default();
    let mut c = Clusterer::new("p", ClusterConfig::default());
    let (a, _) = c.assign(
        &dense(&mut f, "card declined at the shop", 0, 0.1),
        "1",
        t0(),
    );
    let (b, why) = c.assign(
        &dense(&mut f, "store refused my payment", 0, 0.15),
        "2",
        t0(),
    );
    let (d, _) = c.assign(
        &dense(&mut f, "card declined at the shop", 4, 0.1),
        "3",
        t0(),
    );
    assert_eq!(a, b, "paraphrase with no shared word joins: {why:?}");
    assert_ne!(a, d, "same words, different meaning, stays apart");
}

#[test]
fn exemplars_keep_the_first_ticket_then_the_closest() {
    let mut f = Featurizer::default();
    let config = ClusterConfig {
        exemplars: 2,
        ..ClusterConfig::default()
    };
    let mut c = Clusterer::new("p", config);
    for (id, nudge) in [("first", 0.0), ("far", 0.5), ("close", 0.05)] {
        c.assign(&dense(&mut f, "card", 0, nudge), id, t0());
    }
    let ids: Vec<&str> = c
        .get(1)
        .unwrap()
        .exemplars
        .iter()
        .map(|e| e.ticket_id.as_str())
        .collect();
    assert_eq!(ids, vec!["first", "close"]);
}

#[test]
fn consolidation_merges_fragments_and_keeps_distinct_complaints_apart() {
    let mut f = Featurizer::default();
    let config = ClusterConfig {
        semantic_threshold: 0.99,
        ..ClusterConfig::default()
    };
    let mut c = Clusterer::new("p", config);
    let (a, _) = c.assign(&dense(&mut f, "card declined", 0, 0.0), "1", at(0));
    let (b, _) = c.assign(&dense(&mut f, "card refused", 0, 0.3), "2", at(1));
    let (d, _) = c.assign(&dense(&mut f, "address change", 4, 0.0), "3", at(2));
    assert_eq!(c.len(), 3, "the strict online pass keeps fragments apart");
    let merges = c.consolidate(at(2), at(20));
    assert_eq!(merges, vec![consolidate::Merge { from: b, into: a }]);
    assert_eq!(c.resolve(b), a);
    assert_eq!(c.resolve(d), d);
    assert_eq!(c.get(a).unwrap().size, 2);
    let retired = c.take_retired();
    assert_eq!(retired.len(), 1);
    assert_eq!(retired[0].merged_into, Some(a));
    assert!(
        c.consolidate(at(20), at(21)).is_empty(),
        "no round boundary crossed"
    );
}

#[test]
fn stale_strays_fold_into_their_nearest_larger_cluster() {
    let mut f = Featurizer::default();
    let mut c = Clusterer::new("p", ClusterConfig::default());
    for i in 0..5 {
        c.assign(
            &dense(&mut f, "card declined", 0, 0.0),
            &format!("big-{i}"),
            at(i),
        );
    }
    let (stray, _) = c.assign(&dense(&mut f, "card odd", 0, 2.0), "stray", at(5));
    assert_eq!(c.len(), 2);
    assert!(
        c.consolidate(at(5), at(16)).is_empty(),
        "too early: the stray may still grow"
    );
    let merges = c.consolidate(at(16), at(7 * 60));
    assert_eq!(
        merges,
        vec![consolidate::Merge {
            from: stray,
            into: 1
        }]
    );
}

#[test]
fn a_human_split_sticks_through_consolidation_and_steers_later_tickets() {
    let mut f = Featurizer::default();
    let mut c = Clusterer::new("p", ClusterConfig::default());
    let a = dense(&mut f, "card declined", 0, 0.0);
    let b = dense(&mut f, "card declined abroad", 0, 0.6);
    c.assign(&a, "a1", at(0));
    c.assign(&a, "a2", at(0));
    c.assign(&b, "b1", at(1));
    assert_eq!(c.len(), 1);
    let new = c.split_off(1, &[("b1".to_string(), b.clone())]).unwrap();
    assert_eq!(c.get(1).unwrap().size, 2);
    assert_eq!(c.get(new).unwrap().size, 1);
    assert!(
        c.consolidate(at(2), at(7 * 60)).is_empty(),
        "split pair never merged back"
    );
    let (went, _) = c.assign(&b, "b2", at(8 * 60));
    assert_eq!(went, new);
}

#[test]
fn a_human_merge_retires_one_cluster_for_good() {
    let mut f = Featurizer::default();
    let mut c = Clusterer::new("p", ClusterConfig::default());
    let (a, _) = c.assign(&dense(&mut f, "x", 0, 0.0), "1", at(0));
    let (b, _) = c.assign(&dense(&mut f, "y", 4, 0.0), "2", at(0));
    let m = c.merge(a, b);
    assert_eq!(m, consolidate::Merge { from: b, into: a });
    let (went, _) = c.assign(&dense(&mut f, "y", 4, 0.0), "3", at(1));
    assert_ne!(went, b, "a retired cluster never receives tickets");
    let retired = c.take_retired();
    let restored = Clusterer::restore(
        "p",
        ClusterConfig::default(),
        c.clusters().cloned().chain(retired).collect(),
    );
    assert_eq!(restored.resolve(b), a);
}

#[test]
fn moving_a_ticket_moves_its_weight() {
    let mut f = Featurizer::default();
    let mut c = Clusterer::new("p", ClusterConfig::default());
    let x = dense(&mut f, "x", 0, 0.0);
    let y = dense(&mut f, "y", 4, 0.0);
    let (a, _) = c.assign(&x, "1", at(0));
    c.assign(&x, "2", at(0));
    let (b, _) = c.assign(&y, "3", at(0));
    assert!(c.move_member(a, b, "2", &x));
    assert_eq!((c.get(a).unwrap().size, c.get(b).unwrap().size), (1, 2));
    assert!(c.move_member(a, b, "1", &x));
    assert_eq!(
        c.resolve(a),
        b,
        "an emptied cluster is retired into the target"
    );
}

/// A restored cluster whose members' sentence vectors sum to `sum`.
fn restored(seq: u64, sum: Vec<f32>, size: u64) -> Cluster {
    Cluster {
        id: cluster_id("p", seq),
        product: "p".into(),
        seq,
        size,
        centroid: BTreeMap::new(),
        surface: BTreeMap::new(),
        projections: Lsh::new(LshConfig::default(), sum.len()).project(&sum),
        dense: Some(sum),
        exemplars: Vec::new(),
        cannot_link: BTreeSet::new(),
        merged_into: None,
        first_seen: t0(),
        last_seen: t0(),
    }
}

#[test]
fn average_linkage_prefers_the_cluster_whose_members_a_ticket_resembles() {
    // A broad cluster: two members 50° either side of axis 0, so its centroid points along it.
    let broad = restored(1, vec![2.0 * 50f32.to_radians().cos(), 0.0, 0.0, 0.0], 2);
    // A tight one: one member 30° from axis 0.
    let (s, c) = 30f32.to_radians().sin_cos();
    let tight = restored(2, vec![c, 0.0, s, 0.0], 1);
    let ticket = Features {
        terms: Featurizer::default().features("card", &[]),
        dense: Some(vec![1.0, 0.0, 0.0, 0.0]),
    };
    let joins = |linkage| {
        let config = ClusterConfig {
            semantic_threshold: 0.6,
            semantic_linkage: linkage,
            ..ClusterConfig::default()
        };
        let mut c = Clusterer::restore("p", config, vec![broad.clone(), tight.clone()]);
        let (seq, a) = c.assign(&ticket, "T", t0());
        (seq, a.similarity)
    };
    let (seq, sim) = joins(Linkage::Centroid);
    assert_eq!(
        seq, 1,
        "the centroid's direction flatters the broad cluster"
    );
    assert!((sim - 1.0).abs() < 1e-5);
    let (seq, sim) = joins(Linkage::Average);
    assert_eq!(
        seq, 2,
        "on average the ticket is closer to the tight cluster's members"
    );
    assert!(
        (sim - c).abs() < 1e-5,
        "similarity is the mean cosine to the members: {sim}"
    );
}

mod sparse {
    use super::*;
    use proptest::prelude::*;

    fn terms() -> impl Strategy<Value = BTreeMap<String, f32>> {
        proptest::collection::btree_map("[a-e]{1,3}", 0.01f32..2.0, 0..20)
    }

    proptest! {
        /// The merge gives exactly (bit for bit) the dot product a lookup per term gives, so
        /// clusters do not change with the faster loop.
        #[test]
        fn the_merged_dot_product_is_the_looked_up_one(a in terms(), b in terms()) {
            let looked_up: f32 = a.iter().filter_map(|(t, w)| b.get(t).map(|o| o * w)).sum();
            let merged: f32 = shared_products(sorted(&a), sorted(&b)).sum();
            prop_assert_eq!(looked_up.to_bits(), merged.to_bits());
        }
    }
}

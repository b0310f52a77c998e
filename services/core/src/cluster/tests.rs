use super::*;
use crate::cluster::lsh::LshConfig;
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
fn a_ticket_without_a_vector_is_compared_on_terms_with_a_cluster_that_has_one() {
    let mut f = Featurizer::default();
    let mut c = Clusterer::new("cards", ClusterConfig::default());
    let (first, _) = c.assign(
        &dense(&mut f, "card declined in the shop", 0, 0.0),
        "T-1",
        t0(),
    );
    let (seq, a) = c.assign(
        &lexical(&mut f, "card declined in the shop again"),
        "T-2",
        t0(),
    );
    assert_eq!(seq, first, "the shared terms carry it into the cluster");
    assert!(a.similarity > 0.45, "term cosine {}", a.similarity);
    let (other, _) = c.assign(&lexical(&mut f, "How do I change my address?"), "T-3", t0());
    assert_ne!(other, first, "no shared terms, no join");
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
    let merges = c.consolidate(at(2), at(20)).merges;
    assert_eq!(merges, vec![consolidate::Merge { from: b, into: a }]);
    assert_eq!(c.resolve(b), a);
    assert_eq!(c.resolve(d), d);
    assert_eq!(c.get(a).unwrap().size, 2);
    let retired = c.take_retired();
    assert_eq!(retired.len(), 1);
    assert_eq!(retired[0].merged_into, Some(a));
    assert_eq!((c.created(), c.merged_away(), c.len()), (3, 1, 2));
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
    let merges = c.consolidate(at(16), at(7 * 60)).merges;
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
    assert_eq!(
        (restored.created(), restored.merged_away()),
        (c.created(), c.merged_away()),
        "the churn counts survive a restart"
    );
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
        recent: Vec::new(),
        unchecked: 0,
        alias: false,
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
    use crate::cluster::similarity::{shared_products, sorted, sparse_cosine};
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

        /// The centroids by term id give exactly the similarities the string walk gave (ids
        /// assigned in any order), so indexing by id changes no clustering decision.
        #[test]
        fn term_ids_give_the_string_walks_similarities(
            a in terms(),
            b in terms(),
            query in terms(),
            flip in any::<bool>(),
        ) {
            let mut postings = foldhash::HashMap::default();
            let mut vocabulary: Vec<&String> = a.keys().chain(b.keys()).collect();
            vocabulary.sort();
            vocabulary.dedup();
            if flip {
                vocabulary.reverse();
            }
            for (id, term) in vocabulary.into_iter().enumerate() {
                let clusters = Default::default();
                postings.insert(term.clone(), lexicon::Posting { id: id as u32, clusters });
            }
            let (x, y) = (TermIndex::new(&a, &postings), TermIndex::new(&b, &postings));
            prop_assert_eq!(x.cosine(&y).to_bits(), sparse_cosine(&a, &b).to_bits());

            let q = lexicon::Query {
                terms: query.iter().map(|(t, w)| (postings.get(t).map(|p| p.id), *w)).collect(),
                norm: query.values().map(|w| w * w).sum::<f32>().sqrt(),
            };
            let walked: f32 = shared_products(sorted(&query), sorted(&b)).sum();
            let b_norm = b.values().map(|w| w * w).sum::<f32>().sqrt();
            let expected = if q.norm == 0.0 || b_norm == 0.0 { 0.0 } else { walked / (q.norm * b_norm) };
            prop_assert_eq!(y.similarity(&q).to_bits(), expected.to_bits());
        }
    }
}

mod drift_split {
    use super::*;
    use crate::cluster::drift::{self, SplitConfig};

    /// A clusterer that lets anything join (a cluster that can drift): no join threshold and
    /// one-bit LSH tables, so orthogonal vectors still meet as candidates.
    fn permissive() -> ClusterConfig {
        ClusterConfig {
            semantic_threshold: -1.0,
            lsh: LshConfig {
                tables: 16,
                bits: 1,
                ..LshConfig::default()
            },
            ..ClusterConfig::default()
        }
    }

    /// 20 tickets about cards (axis 0), then 8 about addresses (axis 4), all in one cluster.
    fn drifted_stream(f: &mut Featurizer) -> Clusterer {
        chained(f, 20)
    }

    fn chained(f: &mut Featurizer, cards: i64) -> Clusterer {
        let mut c = Clusterer::new("p", permissive());
        for i in 0..cards {
            let nudge = 0.05 * (i % 3) as f32;
            c.assign(
                &dense(f, "card declined", 0, nudge),
                &format!("card-{i}"),
                at(i),
            );
        }
        for i in 0..8 {
            let nudge = 0.05 * (i % 3) as f32;
            c.assign(
                &dense(f, "address change", 4, nudge),
                &format!("addr-{i}"),
                at(cards + i),
            );
        }
        assert_eq!(
            c.len(),
            1,
            "precondition: the permissive pass chained both complaints"
        );
        c
    }

    fn sample(id: &str, terms: &[&str], dense: Option<Vec<f32>>) -> Arc<Sample> {
        Arc::new(Sample {
            ticket_id: id.into(),
            at: t0(),
            terms: terms.iter().map(|t| (t.to_string(), 1.0)).collect(),
            dense,
        })
    }

    #[test]
    fn the_complaint_a_cluster_drifted_into_splits_off_with_its_tickets() {
        let mut f = Featurizer::default();
        let mut c = drifted_stream(&mut f);
        let round = c.consolidate(at(27), at(30));
        assert_eq!(round.splits.len(), 1, "{round:?}");
        let split = &round.splits[0];
        let mut moved = split.ticket_ids.clone();
        moved.sort();
        let expected: Vec<String> = (0..8).map(|i| format!("addr-{i}")).collect();
        assert_eq!(moved, expected, "exactly the address tickets leave");
        assert_eq!((split.from, c.get(split.from).unwrap().size), (1, 20));
        assert_eq!(c.get(split.into).unwrap().size, 8);
        assert!(
            round.merges.is_empty(),
            "the two complaints are not merged back"
        );
        assert!(
            c.get(1).unwrap().cannot_link.is_empty(),
            "a drift split is not a human decision: later evidence may merge them"
        );
        let (went, _) = c.assign(&dense(&mut f, "address change", 4, 0.0), "addr-9", at(31));
        assert_eq!(
            went, split.into,
            "later tickets of the new complaint follow it"
        );
    }

    #[test]
    fn when_the_sample_is_the_whole_cluster_the_newer_complaint_leaves() {
        let mut f = Featurizer::default();
        let mut c = chained(&mut f, 8);
        let round = c.consolidate(at(15), at(30));
        assert_eq!(round.splits.len(), 1, "{round:?}");
        assert!(round.splits[0]
            .ticket_ids
            .iter()
            .all(|id| id.starts_with("addr-")));
        assert_eq!(round.splits[0].ticket_ids.len(), 8);
    }

    #[test]
    fn drift_is_looked_for_again_only_after_enough_new_members() {
        let mut f = Featurizer::default();
        let mut c = drifted_stream(&mut f);
        assert_eq!(c.get(1).unwrap().unchecked, 28);
        c.consolidate(at(27), at(30));
        assert!(
            c.clusters().all(|k| k.unchecked == 0),
            "every cluster was just looked at"
        );
        c.assign(&dense(&mut f, "card declined", 0, 0.0), "more", at(31));
        assert_eq!(c.get(1).unwrap().unchecked, 1);
    }

    #[test]
    fn a_diffuse_cluster_is_not_cut_into_diffuse_halves() {
        // Broad topics (stackoverflow's tags) make clusters whose members share little. Here
        // two loose halves (each member on its own axis plus its half's direction: cosine 0.5
        // within a half, 0 across) are far apart, but neither half is one complaint either.
        let mut f = Featurizer::default();
        let mut c = Clusterer::new("p", permissive());
        for i in 0..28 {
            let mut v = vec![0.0f32; 18];
            v[i % 16] = 1.0;
            v[16 + (i % 16) / 8] = 1.0;
            let n = vector::norm(&v);
            let features = Features {
                terms: f.features("question", &[]),
                dense: Some(v.into_iter().map(|x| x / n).collect()),
            };
            c.assign(&features, &format!("q-{i}"), at(i as i64));
        }
        assert_eq!(c.len(), 1);
        assert!(c.consolidate(at(27), at(30)).splits.is_empty());
        let mut loose = c.config().consolidation.split.clone();
        loose.cohesion = 0.0;
        assert!(
            drift::drifted(c.get(1).unwrap(), &loose).is_some(),
            "without the cohesion test the halves would split"
        );
    }

    #[test]
    fn a_cohesive_cluster_is_not_split() {
        let mut f = Featurizer::default();
        let mut c = Clusterer::new("p", permissive());
        for i in 0..28 {
            let nudge = 0.1 * (i % 5) as f32;
            c.assign(
                &dense(&mut f, "card declined", 0, nudge),
                &format!("t-{i}"),
                at(i),
            );
        }
        assert_eq!(c.len(), 1);
        assert!(c.consolidate(at(27), at(30)).splits.is_empty());
    }

    #[test]
    fn a_replay_and_a_restart_split_the_same_way() {
        let mut f = Featurizer::default();
        let mut first = drifted_stream(&mut f);
        let mut again = drifted_stream(&mut f);
        // A restart: the clusters go through their checkpoint form and back.
        let json = serde_json::to_string(&first.clusters().cloned().collect::<Vec<_>>()).unwrap();
        let mut restarted =
            Clusterer::restore("p", permissive(), serde_json::from_str(&json).unwrap());
        let a = first.consolidate(at(27), at(30));
        assert_eq!(a, again.consolidate(at(27), at(30)));
        assert_eq!(a, restarted.consolidate(at(27), at(30)));
        assert!(!a.splits.is_empty());
    }

    #[test]
    fn samples_keep_only_the_latest_members() {
        let mut f = Featurizer::default();
        let c = drifted_stream(&mut f);
        let recent: Vec<&str> = c
            .get(1)
            .unwrap()
            .recent
            .iter()
            .map(|s| s.ticket_id.as_str())
            .collect();
        assert_eq!(recent.len(), SplitConfig::default().sample);
        assert_eq!(recent.first(), Some(&"card-12"));
        assert_eq!(recent.last(), Some(&"addr-7"));
    }

    #[test]
    fn no_samples_no_split() {
        let mut f = Featurizer::default();
        let mut config = permissive();
        config.consolidation.split.sample = 0;
        let mut c = Clusterer::new("p", config);
        for i in 0..20 {
            c.assign(&dense(&mut f, "card", 0, 0.0), &format!("c-{i}"), at(0));
            c.assign(&dense(&mut f, "address", 4, 0.0), &format!("a-{i}"), at(0));
        }
        assert!(c.get(1).unwrap().recent.is_empty());
        assert!(c.consolidate(at(0), at(30)).splits.is_empty());
    }

    #[test]
    fn term_vectors_split_when_the_sides_share_no_words() {
        let mut recent = Vec::new();
        for i in 0..6 {
            recent.push(sample(&format!("c{i}"), &["card", "declin", "shop"], None));
            recent.push(sample(
                &format!("a{i}"),
                &["address", "chang", "move"],
                None,
            ));
        }
        let mut k = restored(1, vec![1.0], 12);
        k.dense = None;
        k.projections = Vec::new();
        for s in &recent {
            for (t, w) in &s.terms {
                *k.centroid.entry(t.clone()).or_insert(0.0) += w;
            }
        }
        k.recent = recent;
        assert_eq!(
            drift::drifted(&k, &SplitConfig::default()),
            None,
            "off by default"
        );
        let config = SplitConfig {
            lexical_separation: 0.3,
            ..SplitConfig::default()
        };
        let away = drift::drifted(&k, &config).expect("split");
        assert_eq!(away.len(), 6);
        let ids: BTreeSet<&str> = away.iter().map(|i| &k.recent[*i].ticket_id[..1]).collect();
        assert_eq!(ids.len(), 1, "one side leaves whole: {ids:?}");
        // Sides that share most of their words stay together.
        for s in k.recent.iter_mut() {
            *s = sample(
                &s.ticket_id,
                &["card", "declin", "shop", &s.ticket_id],
                None,
            );
        }
        assert_eq!(drift::drifted(&k, &config), None);
    }

    #[test]
    fn mean_pairwise_cosine_is_the_mean_over_pairs() {
        let points = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 0.0]];
        // Pairs: (0,1)=0, (0,2)=1, (1,2)=0.
        assert!((drift::mean_pairwise_cosine(&points) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(drift::mean_pairwise_cosine(&points[..1]), 1.0);
    }

    #[test]
    fn bisect_is_seeded() {
        let points: Vec<Vec<f32>> = (0..12)
            .map(|i| {
                if i % 2 == 0 {
                    vec![1.0, 0.01 * i as f32]
                } else {
                    vec![0.01 * i as f32, 1.0]
                }
            })
            .collect();
        let a = drift::bisect(&points, 7).unwrap();
        assert_eq!(a, drift::bisect(&points, 7).unwrap());
        let first = a[0];
        assert!(a.iter().step_by(2).all(|s| *s == first));
        assert!(a.iter().skip(1).step_by(2).all(|s| *s != first));
    }
}

mod checkpoint_form {
    use super::*;
    use base64::Engine as _;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn sample(dense: Vec<f32>) -> Sample {
        Sample {
            ticket_id: "t".into(),
            at: t0(),
            terms: BTreeMap::from([("card".to_string(), 0.5)]),
            dense: Some(dense),
        }
    }

    #[test]
    fn a_sample_vector_survives_its_checkpoint_bit_for_bit_at_half_the_size() {
        // A sample holds its vector at half precision from the start (see `remember`), so the
        // f16 checkpoint loses nothing.
        let dense = vector::half_precision(&[0.1f32, -3.5e-5, 6.1e-5, 1.0 / 3.0, -0.0]);
        let json = serde_json::to_string(&sample(dense.clone())).unwrap();
        assert!(json.contains(r#""dense":"f16:"#), "{json}");
        let back: Sample = serde_json::from_str(&json).unwrap();
        assert_eq!(bits(back.dense.as_deref().unwrap()), bits(&dense));
        let stored = serde_json::to_value(sample(dense.clone())).unwrap()["dense"].to_string();
        let as_f32 = base64::engine::general_purpose::STANDARD.encode(vector::to_bytes(&dense));
        assert!(stored.len() < as_f32.len(), "{stored} vs {as_f32}");
    }

    #[test]
    fn a_sample_vector_is_within_half_precision_of_the_ticket_s() {
        let v: Vec<f32> = (0..384).map(|i| (i as f32 * 0.37).sin() / 20.0).collect();
        let half = vector::half_precision(&v);
        assert!(v
            .iter()
            .zip(&half)
            .all(|(a, b)| (a - b).abs() <= a.abs() / 1024.0));
        assert!(vector::cosine(&v, &half) > 0.99999);
    }

    #[test]
    fn a_centroid_sum_survives_its_checkpoint_bit_for_bit() {
        let mut c = restored(1, vec![0.1f32, -3.5e-8, f32::MIN_POSITIVE, 1.0 / 3.0], 2);
        c.projections = vec![0.25, -1.5];
        let json = serde_json::to_string(&c).unwrap();
        let back: Cluster = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn checkpoints_written_before_vectors_were_encoded_still_read() {
        // Centroid sums as JSON numbers, samples as base64 of f32 bytes.
        let mut c = restored(1, vec![0.5, -0.25], 2);
        c.recent = vec![Arc::new(sample(vec![1.0 / 3.0, 0.1]))];
        let mut old = serde_json::to_value(&c).unwrap();
        old["dense"] = serde_json::json!([0.5, -0.25]);
        old["recent"][0]["dense"] =
            serde_json::json!(base64::engine::general_purpose::STANDARD
                .encode(vector::to_bytes(&[1.0 / 3.0, 0.1])));
        let back: Cluster = serde_json::from_value(old).unwrap();
        assert_eq!(back.dense, Some(vec![0.5, -0.25]));
        assert_eq!(back.recent[0].dense, Some(vec![1.0 / 3.0, 0.1]));
    }

    #[test]
    fn a_damaged_sample_vector_is_refused_with_the_reason() {
        let with = |dense: &str| {
            let json = format!(
                r#"{{"ticket_id":"t","at":"2024-01-03T14:00:00Z","terms":{{}},"dense":{dense}}}"#
            );
            serde_json::from_str::<Sample>(&json)
                .unwrap_err()
                .to_string()
        };
        let e = with(r#""AAAAAAA=""#);
        assert!(
            e.contains("a vector of f32 needs a multiple of 4 bytes, got 5"),
            "{e}"
        );
        let e = with(r#""f16:AAAA""#);
        assert!(
            e.contains("a vector of f16 needs a multiple of 2 bytes, got 3"),
            "{e}"
        );
        assert!(!with(r#""not base64!""#).is_empty());
        assert!(!with(r#"{"x": 1}"#).is_empty());
    }
}

/// Features along `v` (normalised), with the same words for all.
fn along(f: &mut Featurizer, v: [f32; 3]) -> Features {
    let mut dense = vec![0.0f32; 8];
    dense[..3].copy_from_slice(&v);
    let n = vector::norm(&dense);
    dense.iter_mut().for_each(|x| *x /= n);
    Features {
        terms: f.features("my card is declined", &[]),
        dense: Some(dense),
    }
}

#[test]
fn a_cluster_carries_the_share_of_its_latest_tickets_that_would_join_another() {
    let mut config = ClusterConfig::default();
    config.lsh.bits = 2; // every cluster is a candidate
    let mut c = Clusterer::new("cards", config);
    let mut f = Featurizer::default();
    // A blended cluster: half its tickets along the first axis, half 42° off it.
    for i in 0..8 {
        let v = if i % 2 == 0 {
            [1.0, 0.0, 0.0]
        } else {
            [1.0, 0.9, 0.0]
        };
        assert_eq!(c.assign(&along(&mut f, v), &format!("B-{i}"), at(i)).0, 1);
    }
    // A cluster born far from the blended centroid (0.54 alike), near its second half (0.8).
    let (young, _) = c.assign(&along(&mut f, [0.2, 0.98, 0.0]), "Y-1", at(10));
    assert_eq!(young, 2);
    assert_eq!(c.carriers(young), vec![Carrier { seq: 1, share: 0.5 }]);
    // Nothing like the blended cluster's tickets: no carrier.
    let (far, _) = c.assign(&along(&mut f, [0.0, 0.0, 1.0]), "F-1", at(11));
    assert_ne!(far, young);
    assert!(c.carriers(far).is_empty(), "{:?}", c.carriers(far));
}

/// Strict joins (a "refused" ticket does not join the "declined" cluster) and aliases from the
/// first merged ticket on, so one consolidation round makes one.
fn aliasing(enabled: bool) -> ClusterConfig {
    let mut config = ClusterConfig {
        semantic_threshold: 0.99,
        ..ClusterConfig::default()
    };
    config.consolidation.alias = alias::AliasConfig {
        enabled,
        min_size: 1,
        ttl: std::time::Duration::from_secs(3600),
    };
    config
}

/// "declined" and "refused" clusters, the second merged into the first at the round of 15 min.
fn merged_pair(f: &mut Featurizer, config: ClusterConfig) -> (Clusterer, u64, u64) {
    let mut c = Clusterer::new("p", config);
    let (a, _) = c.assign(&dense(f, "card declined", 0, 0.0), "1", at(0));
    let (b, _) = c.assign(&dense(f, "card refused", 0, 0.3), "2", at(1));
    let merges = c.consolidate(at(2), at(20)).merges;
    assert_eq!(merges, vec![consolidate::Merge { from: b, into: a }]);
    (c, a, b)
}

/// Whether the next checkpoint stores `alias` as no longer one.
fn stored_as_dropped(c: &mut Clusterer, alias: u64) -> bool {
    c.take_retired().iter().any(|k| k.seq == alias && !k.alias)
}

#[test]
fn a_merged_cluster_routes_tickets_like_its_own_into_the_cluster_it_went_into() {
    let mut f = Featurizer::default();
    let refused = dense(&mut f, "card refused", 0, 0.3);
    let (mut c, a, b) = merged_pair(&mut f, aliasing(true));
    assert_eq!(c.aliases().map(|k| k.seq).collect::<Vec<_>>(), vec![b]);
    let (went, assignment) = c.assign(&refused, "3", at(21));
    assert_eq!(went, a, "joined through the alias");
    assert!(!assignment.new_cluster);
    assert_eq!(c.get(a).unwrap().size, 3);

    let (mut c, a, _) = merged_pair(&mut f, aliasing(false));
    assert_eq!(c.aliases().count(), 0);
    let (went, _) = c.assign(&refused, "3", at(21));
    assert_ne!(
        went, a,
        "without the alias the merged centroid is too far: a new satellite"
    );
}

#[test]
fn an_alias_no_ticket_joined_through_for_its_time_to_live_is_dropped() {
    let mut f = Featurizer::default();
    let refused = dense(&mut f, "card refused", 0, 0.3);
    let (mut c, a, b) = merged_pair(&mut f, aliasing(true));
    c.consolidate(at(20), at(50));
    assert_eq!(
        c.aliases().count(),
        1,
        "its last ticket came 44 minutes before"
    );
    c.take_retired();
    c.consolidate(at(50), at(75));
    assert_eq!(
        c.aliases().count(),
        0,
        "nothing joined through it for an hour"
    );
    assert!(stored_as_dropped(&mut c, b));
    let (went, _) = c.assign(&refused, "3", at(76));
    assert_ne!(went, a);
}

#[test]
fn aliases_and_their_last_use_survive_a_restart() {
    let mut f = Featurizer::default();
    let refused = dense(&mut f, "card refused", 0, 0.3);
    let (mut c, a, b) = merged_pair(&mut f, aliasing(true));
    let mut rows: BTreeMap<u64, Cluster> = BTreeMap::new();
    let mut checkpoint = |c: &mut Clusterer| {
        let retired = c.take_retired();
        for k in c.clusters().cloned().chain(retired) {
            rows.insert(k.seq, k); // the store keeps the latest row per cluster
        }
        rows.values().cloned().collect::<Vec<_>>()
    };
    checkpoint(&mut c);
    c.assign(&refused, "3", at(50));
    let restored = Clusterer::restore("p", aliasing(true), checkpoint(&mut c));
    let alias = restored.aliases().next().expect("the alias is restored");
    assert_eq!((alias.seq, alias.last_seen), (b, at(50)));
    for mut k in [c, restored] {
        k.consolidate(at(50), at(100));
        assert_eq!(k.aliases().count(), 1, "used at 50 min: still live at 100");
        let (went, _) = k.assign(&refused, "4", at(101));
        assert_eq!(went, a);
    }
}

#[test]
fn a_human_split_drops_the_aliases_of_the_cluster_split() {
    let mut f = Featurizer::default();
    let declined = dense(&mut f, "card declined", 0, 0.0);
    let (mut c, a, b) = merged_pair(&mut f, aliasing(true));
    c.take_retired();
    c.split_off(a, &[("1".to_string(), declined)]).unwrap();
    assert_eq!(c.aliases().count(), 0);
    assert!(stored_as_dropped(&mut c, b));
}

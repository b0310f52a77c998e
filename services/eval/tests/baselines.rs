//! The TF-IDF + k-means baseline on real text: better than chance, and reproducible.

use std::collections::BTreeSet;
use std::path::Path;

use sevloop_eval::{read_labelled, score, tfidf_kmeans, BaselineConfig, Labelled};

const BANKING77: &str = "/work/shared/data/banking77/tickets.jsonl";
/// The file is ordered by intent, so the first rows cover a dozen intents.
const SLICE: usize = 1_500;

fn banking77_slice() -> Vec<Labelled> {
    let path = Path::new(BANKING77);
    assert!(
        path.exists(),
        "{BANKING77} is missing; these tests need the shared banking77 data set"
    );
    let mut rows = read_labelled(path).expect("banking77 reads");
    rows.truncate(SLICE);
    rows
}

fn config(k: usize, seed: u64, lsa_dims: Option<usize>) -> BaselineConfig {
    BaselineConfig {
        k,
        seed,
        max_terms: 2_000,
        lsa_dims,
    }
}

fn run(rows: &[Labelled], config: &BaselineConfig) -> Vec<usize> {
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    tfidf_kmeans(&texts, config).expect("baseline runs")
}

fn k_of(rows: &[Labelled]) -> usize {
    rows.iter()
        .map(|r| r.label.as_str())
        .collect::<BTreeSet<_>>()
        .len()
}

#[test]
fn tfidf_kmeans_beats_chance_and_is_reproducible() {
    let rows = banking77_slice();
    let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    let k = k_of(&rows);
    // 20 LSA dimensions keep this quick in the unoptimised test profile (LOBPCG is generic, so
    // it is compiled at this crate's opt-level).
    for lsa_dims in [None, Some(20)] {
        let config = config(k, 7, lsa_dims);
        let clusters = run(&rows, &config);
        assert_eq!(clusters.len(), rows.len());
        assert!(clusters.iter().all(|&c| c < k));
        let scores = score(&labels, &clusters).expect("same length");
        // A random partition into k blocks scores NMI ≈ 0.0x here.
        assert!(scores.nmi > 0.3, "lsa {lsa_dims:?}: {scores:?}");
        assert_eq!(
            run(&rows, &config),
            clusters,
            "lsa {lsa_dims:?}: same seed, same clusters"
        );
    }
}

#[test]
fn bad_parameters_are_rejected_with_the_values() {
    let texts = ["card lost", "card stolen", "top up failed"];
    let err = tfidf_kmeans(&texts, &config(4, 1, None)).expect_err("k > texts");
    assert!(
        err.to_string().contains("k = 4") && err.to_string().contains('3'),
        "{err}"
    );
    let err = tfidf_kmeans(&texts, &config(2, 1, Some(10))).expect_err("lsa_dims too big");
    assert!(err.to_string().contains("lsa_dims = 10"), "{err}");
    let err = tfidf_kmeans(&["the", "a"], &config(1, 1, None)).expect_err("stop words only");
    assert!(err.to_string().contains("2 texts"), "{err}");
    let no_terms = BaselineConfig {
        max_terms: 0,
        ..config(1, 1, None)
    };
    let err = tfidf_kmeans(&texts, &no_terms).expect_err("max_terms = 0");
    assert!(err.to_string().contains("max_terms"), "{err}");
}

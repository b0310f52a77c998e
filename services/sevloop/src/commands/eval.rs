//! `sevloop eval`: clustering quality on labelled data, online beside batch baselines.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use sevloop_core::ClusterConfig;
use sevloop_eval::{BaselineConfig, Scores};

use crate::backtest::score::{self, injected_groups, Group};
use crate::cli::{EvalArgs, FeatureSet};
use crate::evaluation::{self, Corpus};

/// One line of the results table.
#[derive(Debug, Serialize)]
struct Row {
    method: String,
    #[serde(flatten)]
    scores: Scores,
    tickets_per_sec: f64,
}

pub async fn run(args: EvalArgs) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || evaluate(&args)).await?
}

fn evaluate(args: &EvalArgs) -> anyhow::Result<()> {
    let corpus = match &args.truth {
        Some(truth) => evaluation::load_stream(&args.file, truth)?,
        None => evaluation::load_labelled(&args.file, args.per_hour)?,
    };
    let config = crate::config::Settings::load(args.config.as_deref())?.clustering;
    eprintln!(
        "eval: {} tickets, {} labels, file {}",
        corpus.tickets.len(),
        distinct(&corpus.labels),
        args.file.display()
    );
    // Each online run's final clusters; the first run is the headline.
    let mut runs = Vec::new();
    if matches!(args.features, FeatureSet::Semantic | FeatureSet::Both) {
        let dense = evaluation::embed_tickets(&corpus.tickets, args.model_dir.as_deref())?;
        runs.push(online(
            "online, semantic + terms",
            &corpus,
            Some(&dense),
            &config,
        )?);
    }
    if matches!(args.features, FeatureSet::Lexical | FeatureSet::Both) {
        runs.push(online("online, terms only", &corpus, None, &config)?);
    }
    let headline = runs
        .first()
        .map(|(_, clusters)| clusters.clone())
        .unwrap_or_default();
    let mut rows: Vec<Row> = runs.into_iter().map(|(row, _)| row).collect();
    if !args.no_baselines {
        rows.extend(baselines(&corpus, args.seed)?);
    }
    print_table(&rows);
    let kinds = match &args.truth {
        Some(truth) => incident_kinds(truth)?,
        None => BTreeMap::new(),
    };
    let groups = injected_groups(&corpus, &headline, &kinds);
    if args.truth.is_some() {
        print!("{}", incident_table(&groups));
    }
    if args.json {
        let first = &rows[0];
        let mut line = serde_json::json!({
            "nmi": first.scores.nmi, "ari": first.scores.ari,
            "homogeneity": first.scores.homogeneity, "completeness": first.scores.completeness,
            "clusters": first.scores.clusters, "labels": first.scores.labels,
            "tickets_per_sec": first.tickets_per_sec, "method": first.method,
            "rows": rows,
        });
        if let Some((mostly, of)) = mostly_in_one_cluster(&groups) {
            line["incidents_in_one_cluster"] = serde_json::json!({"mostly": mostly, "of": of});
            line["injected"] = serde_json::to_value(&groups)?;
        }
        println!("{line}");
    }
    Ok(())
}

fn online(
    method: &str,
    corpus: &Corpus,
    dense: Option<&[Vec<f32>]>,
    config: &ClusterConfig,
) -> anyhow::Result<(Row, Vec<String>)> {
    let total = corpus.tickets.len();
    let started = Instant::now();
    let run = evaluation::run_online(corpus, dense, config, |done| {
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        eprintln!("{method}: {done}/{total} tickets ({rate:.0}/s)");
    });
    eprintln!("{method}: drift splits moved {} tickets", run.moved);
    let row = Row {
        method: method.to_string(),
        scores: sevloop_eval::score(&corpus.labels, &run.clusters)?,
        tickets_per_sec: total as f64 / run.seconds.max(1e-9),
    };
    Ok((row, run.clusters))
}

/// The batch baselines on the same texts, k = the true number of labels.
fn baselines(corpus: &Corpus, seed: u64) -> anyhow::Result<Vec<Row>> {
    let texts: Vec<String> = corpus.tickets.iter().map(|t| t.text()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let k = distinct(&corpus.labels);
    let mut rows = Vec::new();
    for (method, lsa_dims) in [
        ("batch TF-IDF + KMeans (k given)", None),
        ("batch TF-IDF + LSA 100 + KMeans (k given)", Some(100)),
    ] {
        eprintln!("{method}: running");
        let config = BaselineConfig {
            k,
            seed,
            max_terms: 2000,
            lsa_dims,
        };
        let started = Instant::now();
        let assigned = sevloop_eval::tfidf_kmeans(&refs, &config)?;
        let seconds = started.elapsed().as_secs_f64();
        rows.push(Row {
            method: method.to_string(),
            scores: sevloop_eval::score(&corpus.labels, &assigned)?,
            tickets_per_sec: texts.len() as f64 / seconds.max(1e-9),
        });
    }
    Ok(rows)
}

fn print_table(rows: &[Row]) {
    println!("| method | NMI | ARI | homogeneity | completeness | clusters | labels | tickets/s |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let s = &r.scores;
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {:.0} |",
            r.method,
            s.nmi,
            s.ari,
            s.homogeneity,
            s.completeness,
            s.clusters,
            s.labels,
            r.tickets_per_sec
        );
    }
}

/// The goal for a stream's incidents: at least this share of each one's tickets in one cluster.
const MOSTLY: f64 = 0.8;

/// The kinds of a stream's injected groups, by label, from the incidents file beside its truth
/// file; none when there is no such file (a labelled stream of one's own may come without one).
fn incident_kinds(truth: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let beside = score::incidents_beside(truth);
    if !beside.exists() {
        return Ok(BTreeMap::new());
    }
    Ok(score::kinds(&score::read_incidents(&beside)?))
}

/// Incidents with at least [`MOSTLY`] of their tickets in one cluster, and incidents: none
/// when the kinds are unknown.
fn mostly_in_one_cluster(groups: &[Group]) -> Option<(usize, usize)> {
    groups.iter().any(|g| g.kind.is_some()).then(|| {
        let incidents = groups.iter().filter(|g| g.kind == Some(score::INCIDENT));
        incidents.fold((0, 0), |(mostly, of), g| {
            (mostly + usize::from(g.share >= MOSTLY), of + 1)
        })
    })
}

fn incident_table(groups: &[Group]) -> String {
    let mut out = String::from(
        "\n| injected | kind | tickets | largest cluster | share | its label's share of that cluster |\n\
         |---|---|---|---|---|---|\n",
    );
    for g in groups {
        out += &format!(
            "| {} | {} | {} | {} | {:.0}% | {:.0}% |\n",
            g.label,
            g.kind.unwrap_or("-"),
            g.tickets,
            g.largest_cluster,
            100.0 * g.share,
            100.0 * g.purity
        );
    }
    if let Some((mostly, of)) = mostly_in_one_cluster(groups) {
        out += &format!(
            "\nincidents with at least {:.0}% of their tickets in one cluster: {mostly}/{of}\n",
            100.0 * MOSTLY
        );
    }
    out
}

fn distinct(labels: &[String]) -> usize {
    labels
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two groups: an incident with 4 of its 5 tickets in one cluster (80%: mostly), which also
    /// holds two background tickets, and a decoy spread evenly; the table leaves background out.
    fn stream() -> (Corpus, Vec<String>) {
        let groups = [
            ("outage", true, "c1"),
            ("outage", true, "c1"),
            ("outage", true, "c2"),
            ("outage", true, "c1"),
            ("outage", true, "c1"),
            ("angry", true, "c3"),
            ("angry", true, "c4"),
            ("usual", false, "c1"),
            ("usual", false, "c1"),
        ];
        let corpus = Corpus {
            tickets: Vec::new(),
            labels: groups.iter().map(|g| g.0.to_string()).collect(),
            injected: groups.iter().map(|g| g.1).collect(),
        };
        (corpus, groups.iter().map(|g| g.2.to_string()).collect())
    }

    #[test]
    fn the_incident_table_names_each_kind_and_counts_the_incidents_mostly_in_one_cluster() {
        let (corpus, clusters) = stream();
        let kinds = BTreeMap::from([
            ("outage".to_string(), "incident".to_string()),
            ("angry".to_string(), "angry_customer".to_string()),
        ]);
        let groups = injected_groups(&corpus, &clusters, &kinds);
        assert_eq!(mostly_in_one_cluster(&groups), Some((1, 1)));
        let table = incident_table(&groups);
        assert!(
            table.contains("| outage | incident | 5 | c1 | 80% | 67% |"),
            "{table}"
        );
        assert!(
            table.contains("| angry | angry_customer | 2 | c3 | 50% | 100% |"),
            "{table}"
        );
        assert!(!table.contains("usual"), "{table}");
        assert!(table.contains("one cluster: 1/1"), "{table}");
    }

    #[test]
    fn without_an_incidents_file_the_kinds_are_unknown_and_nothing_is_counted() {
        let (corpus, clusters) = stream();
        let kinds = BTreeMap::new();
        let groups = injected_groups(&corpus, &clusters, &kinds);
        assert_eq!(mostly_in_one_cluster(&groups), None);
        let table = incident_table(&groups);
        assert!(
            table.contains("| outage | - | 5 | c1 | 80% | 67% |"),
            "{table}"
        );
        assert!(!table.contains("one cluster:"), "{table}");
    }
}

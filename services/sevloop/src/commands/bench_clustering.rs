//! `bench-clustering`: the clustering stage (features, assignment, consolidation, detection and
//! a checkpoint per full batch, as the pipeline runs them), on one thread, over a stream
//! resampled from a labelled file. Prints throughput, the time per ticket at 10k, 100k and 1M
//! tickets and in each part of the stage, the throughput of features and clustering alone
//! (without detection and checkpoints), the clusters alive and how many were created, merged
//! away (the churn) and kept as aliases, the SEVs detection opened (false alarms all: the stream
//! is steady) and peak memory. Sentence vectors are computed once per distinct text beforehand
//! (they are stored with each ticket in the pipeline), so this measures clustering, not the
//! encoder.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

use sevloop_core::{Catalog, Decision, Escalation, Policy};

use crate::cli::{BenchClusteringArgs, FeatureSet};
use crate::evaluation::{self, OnlineClustering, StageTimes};

pub async fn run(args: BenchClusteringArgs) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || bench(&args)).await?
}

fn bench(args: &BenchClusteringArgs) -> anyhow::Result<()> {
    let settings = crate::config::Settings::load(args.config.as_deref())?;
    let (config, rules) = (settings.clustering, settings.detection.rule_book()?);
    let corpus = evaluation::load_labelled(&args.file, 120)?;
    let texts: Vec<String> = corpus
        .tickets
        .iter()
        .map(sevloop_core::embedding_text)
        .collect();
    let dense = match args.features {
        FeatureSet::Lexical => None,
        _ => {
            let dir = args
                .model_dir
                .clone()
                .unwrap_or_else(sevloop_embed::default_model_dir);
            let encoder = sevloop_embed::Encoder::load(&dir)?;
            Some(evaluation::embed_cached(
                &encoder,
                &texts,
                &evaluation::default_cache_dir(),
            )?)
        }
    };
    let runs: Vec<(&str, Option<&[Vec<f32>]>)> = match args.features {
        FeatureSet::Semantic => vec![("semantic", dense.as_deref())],
        FeatureSet::Lexical => vec![("lexical", None)],
        FeatureSet::Both => vec![("semantic", dense.as_deref()), ("lexical", None)],
    };
    println!("| features | after tickets | tickets/s (cumulative) | µs/ticket (last interval) | µs/ticket: features / clustering / detection / checkpoints (last interval) | tickets/s, features + clustering alone (cumulative) | clusters alive (created / merged away so far; merged ones kept as aliases) | SEVs opened / crossings that joined an open SEV / tickets attached (all false: a steady stream) | peak RSS MB | checkpoint KB/cluster |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, dense) in runs {
        let online = OnlineClustering::with_detection(
            config.clone(),
            rules.clone(),
            Catalog::default(),
            Policy::Combined,
        );
        run_one(name, online, &corpus, dense, args)?;
    }
    Ok(())
}

/// Resamples the corpus (seeded) into a stream of `args.tickets`, 2 tickets a second of event
/// time, each a distinct customer, and clusters it, reporting at each checkpoint.
fn run_one(
    name: &str,
    mut online: OnlineClustering,
    corpus: &evaluation::Corpus,
    dense: Option<&[Vec<f32>]>,
    args: &BenchClusteringArgs,
) -> anyhow::Result<()> {
    let start = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")?.with_timezone(&Utc);
    let mut rng = args.seed.max(1);
    let checkpoints = [10_000usize, 100_000, 1_000_000];
    let mut started = Instant::now();
    let mut last = (0usize, started, StageTimes::default());
    let mut sevs = SevCount::default();
    let source = &corpus.tickets;
    let mut picks = Vec::with_capacity(args.tickets);
    for i in 0..args.tickets {
        rng = xorshift(rng);
        let pick = (rng % source.len() as u64) as usize;
        picks.push(pick);
        let mut ticket = source[pick].clone();
        ticket.ticket_id = format!("bench-{i}");
        ticket.customer.id = format!("c-{i}");
        ticket.event_time = start + Duration::milliseconds(500 * i as i64);
        let observation = online.observe(&ticket, dense.map(|d| d[pick].clone()));
        sevs.count(&observation.decision);
        if let Decision::Escalate(e) = &observation.decision {
            eprintln!("{}", false_alarm(i, e, &picks, &corpus.labels));
        }
        let done = i + 1;
        if checkpoints.contains(&done) || done == args.tickets {
            let now = Instant::now();
            let interval = now.duration_since(last.1).as_secs_f64() / (done - last.0) as f64;
            let (created, merged, aliases) = online.churn();
            let clusters = format!("{} ({created} / {merged}; {aliases})", online.clusters());
            let elapsed = started.elapsed();
            // Serialising is the store's cost, not clustering's: outside the timed intervals.
            let checkpoint_kb = online.checkpoint_bytes() / 1024.0;
            let stages = online.stage_times();
            let clustering_alone = (stages.features + stages.clustering).as_secs_f64();
            println!(
                "| {name} | {done} | {:.0} | {:.2} | {} | {:.0} | {clusters} | {} | {} | {checkpoint_kb:.1} |",
                done as f64 / elapsed.as_secs_f64(),
                interval * 1e6,
                per_stage(stages - last.2, done - last.0),
                done as f64 / clustering_alone,
                sevs,
                peak_rss_mb().map_or("-".into(), |m| format!("{m:.0}")),
            );
            let paused = started.elapsed() - elapsed;
            started += paused;
            last = (done, Instant::now(), stages);
        }
    }
    Ok(())
}

/// What detection made of the stream. Every label's rate is steady in a resampled stream, so
/// every SEV it opens is a false alarm, and every ticket attached to one is misfiled. A crossing
/// while a related cluster's SEV is open joins it rather than opening one: counted apart, as
/// the longer false episodes last, the more crossings they swallow.
#[derive(Debug, Default)]
struct SevCount {
    opened: usize,
    joined: usize,
    attached: usize,
}

impl SevCount {
    fn count(&mut self, decision: &Decision) {
        match decision {
            Decision::Quiet => {}
            Decision::Escalate(_) => self.opened += 1,
            Decision::Join { .. } => {
                self.joined += 1;
                self.attached += 1;
            }
            Decision::Attach { .. } => self.attached += 1,
        }
    }
}

impl std::fmt::Display for SevCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} / {} / {}", self.opened, self.joined, self.attached)
    }
}

/// One false SEV: when, on what window, and which labels its evidence tickets carry (a steady
/// label's traffic moving between clusters looks like a rise to the cluster it moved to).
fn false_alarm(i: usize, e: &Escalation, picks: &[usize], labels: &[String]) -> String {
    let mut by_label: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &e.evidence {
        let pick = id
            .strip_prefix("bench-")
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| picks.get(n));
        if let Some(label) = pick.and_then(|p| labels.get(*p)) {
            *by_label.entry(label).or_default() += 1;
        }
    }
    let mut by_label: Vec<(&str, usize)> = by_label.into_iter().collect();
    by_label.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let v = &e.verdict;
    format!(
        "false SEV at ticket {i}: {} ({}), {} tickets, {:.1} expected in {:.0} min, p {:.1e}; evidence labels {:?}",
        e.cluster_id, e.rule, v.tickets, v.expected, v.span_minutes, v.p_value, &by_label[..by_label.len().min(4)],
    )
}

/// Microseconds per ticket in each stage, as "features / clustering / detection / checkpoints".
fn per_stage(times: StageTimes, tickets: usize) -> String {
    let us = |d: std::time::Duration| d.as_secs_f64() * 1e6 / tickets.max(1) as f64;
    format!(
        "{:.2} / {:.2} / {:.2} / {:.2}",
        us(times.features),
        us(times.clustering),
        us(times.detection),
        us(times.checkpoints)
    )
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// Peak resident memory of this process (Linux), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

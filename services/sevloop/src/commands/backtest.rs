//! `sevloop backtest`: which SEVs the detection rules would open on a ticket log, when, and on
//! which tickets; each rule alone beside the combination; scored against a stream's truth.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use serde_json::json;
use sevloop_core::{Catalog, ClusterConfig, DetectionConfig, Policy, RuleBook, RuleName};

use crate::backtest::score::{self, Score};
use crate::backtest::{self, WouldOpen};
use crate::catalog::CatalogHandle;
use crate::cli::{BacktestArgs, FeatureSet};
use crate::config::Settings;
use crate::evaluation;

pub async fn run(args: BacktestArgs) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || backtest(&args)).await?
}

fn backtest(args: &BacktestArgs) -> anyhow::Result<()> {
    let (config, rules, catalog) = settings(args)?;
    // The truth's incidents are read first: a wrong path should not cost a whole replay.
    let truth = args
        .truth
        .as_deref()
        .map(|truth| read_injected(args, truth).map(|injected| (truth, injected)))
        .transpose()?;
    let traced = traced_tickets(args)?;
    let log = evaluation::load_log(&args.file)?;
    for refused in &log.refused {
        eprintln!("backtest: refused {refused}");
    }
    if log.tickets.is_empty() {
        anyhow::bail!(
            "{} holds no valid ticket ({} lines refused{})",
            args.file.display(),
            log.refused.len(),
            log.refused
                .first()
                .map_or(String::new(), |r| format!("; the first: {r}"))
        );
    }
    eprintln!(
        "backtest: {} tickets ({} lines refused) from {}",
        log.tickets.len(),
        log.refused.len(),
        args.file.display()
    );
    let dense = match args.features {
        FeatureSet::Semantic => Some(evaluation::embed_tickets(
            &log.tickets,
            args.model_dir.as_deref(),
        )?),
        FeatureSet::Lexical => None,
        FeatureSet::Both => anyhow::bail!("backtest runs one feature set: semantic or lexical"),
    };
    let replay = |policy, traced: &BTreeSet<String>| {
        backtest::replay(
            &log.tickets,
            dense.as_deref(),
            &config,
            &rules,
            &catalog,
            policy,
            traced,
        )
    };
    let combined = replay(Policy::Combined, &traced);
    let sevs = combined.sevs;
    println!("## SEVs the rules would open: {}\n", sevs.len());
    print_sevs(&sevs, usize::MAX);
    if let Some(label) = &args.trace {
        print_traces(label, &combined.traces);
    }
    println!("\n## Each rule alone");
    for rule in RuleName::ALL {
        let alone = replay(Policy::Alone(rule), &BTreeSet::new()).sevs;
        println!("\n### {}: {} SEVs\n", rule.as_str(), alone.len());
        print_sevs(&alone, args.show);
    }
    let score = match truth {
        Some((truth, injected)) => Some(scored(
            truth,
            &injected,
            log.tickets,
            &sevs,
            &combined.clusters,
        )?),
        None => None,
    };
    if args.json {
        let sevs: Vec<_> = sevs
            .iter()
            .map(|s| {
                json!({"sev_id": s.sev_id, "cluster_id": s.cluster_id, "rule": s.rule,
                       "opened_at": s.opened_at, "label": s.label, "ticket_ids": s.ticket_ids})
            })
            .collect();
        println!("{}", json!({"sevs": sevs, "score": score}));
    }
    Ok(())
}

/// Clustering, rules and catalog: defaults, then the settings file, then the rules file.
fn settings(args: &BacktestArgs) -> anyhow::Result<(ClusterConfig, RuleBook, Catalog)> {
    let settings = Settings::load(args.config.as_deref())?;
    let detection = match &args.rules {
        Some(path) => read_rules(path)?,
        None => settings.detection.clone(),
    };
    let rules = detection.rule_book()?;
    let catalog = CatalogHandle::load(settings.catalog.as_deref())?.get();
    Ok((settings.clustering, rules, Catalog::clone(&catalog)))
}

fn read_rules(path: &Path) -> anyhow::Result<DetectionConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read rules file {}", path.display()))?;
    parse_rules(&text).with_context(|| format!("rules file {} is invalid", path.display()))
}

/// A rules file holds what goes under `[detection]` in a settings file. A whole settings file
/// (or rules left under their `[detection]` header) is refused with a hint saying so, since
/// the parser alone would only name `detection` as an unknown field.
fn parse_rules(text: &str) -> anyhow::Result<DetectionConfig> {
    toml::from_str(text).map_err(|e| {
        let headed = text
            .lines()
            .any(|l| l.trim_start().starts_with("[detection"));
        let e = anyhow::Error::new(e);
        if headed {
            e.context(
                "a rules file holds the contents of [detection] without that header \
                 (e.g. [spike] max_false_alarm = 2e-5); pass a whole settings file with --config",
            )
        } else {
            e
        }
    })
}

fn print_sevs(sevs: &[WouldOpen], show: usize) {
    for s in sevs.iter().take(show) {
        let v = &s.verdict;
        let more = s.evidence.len().saturating_sub(8);
        println!(
            "- {} opens at {} (ticket {} of the log), cluster {} [{}], rule {}{}: {} tickets from {} \
             customers in the window{}, usual {:.2}, p = {:.1e}; {} linked by the end\n  evidence: {}{}",
            s.sev_id,
            s.opened_at.to_rfc3339(),
            s.opened_at_ticket,
            s.cluster_id,
            s.label.join(", "),
            s.rule,
            if v.region { " on its region" } else { "" },
            v.tickets,
            v.customers,
            match v.moved_in {
                0 => String::new(),
                n => format!(" ({n} moved in from other clusters)"),
            },
            v.expected,
            v.p_value,
            s.ticket_ids.len(),
            s.evidence[..s.evidence.len().min(8)].join(" "),
            if more > 0 {
                format!(" (+{more})")
            } else {
                String::new()
            },
        );
    }
    if sevs.len() > show {
        println!("- … and {} more", sevs.len() - show);
    }
}

/// The tickets `--trace LABEL` follows: those the truth file labels so.
fn traced_tickets(args: &BacktestArgs) -> anyhow::Result<BTreeSet<String>> {
    let (Some(label), Some(truth)) = (&args.trace, &args.truth) else {
        return Ok(BTreeSet::new());
    };
    let traced: BTreeSet<String> = sevloop_eval::read_truth(truth)?
        .into_iter()
        .filter(|(_, l)| l == label)
        .map(|(id, _)| id)
        .collect();
    if traced.is_empty() {
        anyhow::bail!("--trace {label:?}: {} labels no ticket so", truth.display());
    }
    Ok(traced)
}

/// How detection judged each traced ticket: where the window stood when it arrived.
fn print_traces(label: &str, traces: &[backtest::Trace]) {
    println!("\n## Trace of {label}: {} tickets\n", traces.len());
    println!(
        "| # | ticket | event time | cluster | decision | window tickets | customers \
         | usual over the span | p | span (min) | moved in | floor | significant |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for t in traces {
        let judged = t.verdict.as_ref().map_or_else(
            || "| - | - | - | - | - | - | - | - |".to_string(),
            |v| {
                // A region is judged only past the cold start.
                let significant = match (v.spike, v.cold_start, v.region) {
                    (true, _, false) => "spike",
                    (true, _, true) => "spike, on its region",
                    (_, true, _) => "cold start",
                    _ => "no",
                };
                format!(
                    "| {} | {} | {:.2} | {:.1e} | {:.0} | {} | {} | {significant} |",
                    v.tickets,
                    v.customers,
                    v.expected,
                    v.p_value,
                    v.span_minutes,
                    v.moved_in,
                    if v.floor { "yes" } else { "no" },
                )
            },
        );
        println!(
            "| {} | {} | {} | {} | {} {judged}",
            t.at_ticket,
            t.ticket_id,
            t.event_time.format("%Y-%m-%dT%H:%M:%SZ"),
            t.cluster_id,
            t.decision,
        );
    }
}

/// The incidents injected into the stream `truth` belongs to: `--incidents`, or the file the
/// stream generator writes beside the truth.
fn read_injected(args: &BacktestArgs, truth: &Path) -> anyhow::Result<Vec<score::Injected>> {
    let incidents = args
        .incidents
        .clone()
        .unwrap_or_else(|| score::incidents_beside(truth));
    score::read_incidents(&incidents).with_context(|| {
        format!(
            "--truth {} needs the stream's incidents file (give it with --incidents FILE)",
            truth.display()
        )
    })
}

/// Scores the SEVs against the stream's truth and prints, beside each injected group, where
/// the clustering left it (`clusters`: each ticket's cluster at the end): a pure cluster that
/// held most of a missed incident is the rules' miss, a blended or split one clustering's.
fn scored(
    truth: &Path,
    injected: &[score::Injected],
    tickets: Vec<sevloop_core::TicketEvent>,
    sevs: &[WouldOpen],
    clusters: &[String],
) -> anyhow::Result<Score> {
    let corpus = evaluation::with_truth(tickets, truth)?;
    let s = score::score(&corpus, injected, sevs);
    let kinds = score::kinds(injected);
    let groups = score::injected_groups(&corpus, clusters, &kinds);
    println!("\n## Score against {}\n", truth.display());
    println!(
        "| injected | kind | tickets | SEVs | delay (tickets) | delay (minutes) | linked \
         | largest cluster | its share | its label's share of that cluster |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for i in &s.injected {
        let group = groups.iter().find(|g| g.label == i.label);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            i.label,
            i.kind,
            i.tickets,
            if i.sevs.is_empty() {
                "none".to_string()
            } else {
                i.sevs.join(" ")
            },
            i.delay_tickets.map_or("-".into(), |d| d.to_string()),
            i.delay_minutes.map_or("-".into(), |d| format!("{d:.1}")),
            i.linked,
            group.map_or("-", |g| g.largest_cluster),
            group.map_or("-".into(), |g| format!("{:.0}%", 100.0 * g.share)),
            group.map_or("-".into(), |g| format!("{:.0}%", 100.0 * g.purity)),
        );
    }
    println!(
        "\nincidents with exactly one SEV: {}/{} (recall {:.2}); SEVs from decoys: {}; \
         false SEVs: {} over {} background tickets ({:.2} per 100k)",
        s.detected_once,
        s.incidents,
        s.recall,
        s.decoy_sevs,
        s.false_sevs,
        s.background_tickets,
        s.false_sevs_per_100k
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_follows_the_tickets_of_its_label_and_names_a_label_the_truth_lacks() {
        let dir = std::env::temp_dir().join(format!("sevloop-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let truth = dir.join("s.truth.jsonl");
        let rows = [
            ("T-1", "card_arrival"),
            ("T-2", "top_up"),
            ("T-3", "card_arrival"),
        ]
        .map(|(id, label)| json!({"ticket_id": id, "label": label, "injected": false}).to_string());
        std::fs::write(&truth, rows.join("\n")).expect("truth written");
        let args = |label: &str| {
            use clap::Parser;
            let cli = crate::cli::Cli::parse_from([
                "sevloop",
                "backtest",
                "log.jsonl",
                "--truth",
                truth.to_str().expect("utf-8 path"),
                "--trace",
                label,
            ]);
            match cli.command {
                crate::cli::Command::Backtest(args) => args,
                _ => unreachable!("parsed as backtest"),
            }
        };
        let traced = traced_tickets(&args("card_arrival")).expect("a known label");
        assert_eq!(
            traced,
            BTreeSet::from(["T-1".to_string(), "T-3".to_string()])
        );
        let err = traced_tickets(&args("card_arival")).expect_err("a label the truth lacks");
        assert!(format!("{err:#}").contains("\"card_arival\""), "{err:#}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_rules_file_sets_the_detection_rules() {
        let rules = parse_rules("[spike]\nmax_false_alarm = 5e-5\n").expect("valid rules");
        assert_eq!(rules.spike.max_false_alarm, 5e-5);
    }

    #[test]
    fn rules_under_a_detection_header_are_refused_with_a_hint() {
        let err = parse_rules("[detection.spike]\nmax_false_alarm = 5e-5\n")
            .expect_err("a settings file is not a rules file");
        let message = format!("{err:#}");
        assert!(message.contains("without that header"), "{message}");
        assert!(message.contains("--config"), "{message}");
        assert!(message.contains("unknown field `detection`"), "{message}");
    }

    #[test]
    fn an_unknown_rule_is_named_without_the_hint() {
        let err = parse_rules("[spike]\nmax_false_alarms = 5e-5\n").expect_err("typo");
        let message = format!("{err:#}");
        assert!(message.contains("max_false_alarms"), "{message}");
        assert!(!message.contains("--config"), "{message}");
    }
}

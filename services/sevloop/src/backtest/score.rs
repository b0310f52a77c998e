//! Scoring a backtest against the truth of a generated stream: did every injected incident open
//! exactly one SEV, how soon, did any angry-customer decoy open one, and how many SEVs came from
//! background tickets alone.
//!
//! A SEV is attributed to the injected group (incident or decoy) that contributed most of its
//! evidence; a SEV whose evidence holds no injected ticket is a false SEV.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::WouldOpen;
use crate::evaluation::Corpus;

/// The `kind` of an injected group that must open one SEV (the other kind, `angry_customer`,
/// must open none).
pub const INCIDENT: &str = "incident";

/// One entry of a stream's `*.incidents.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Injected {
    pub label: String,
    /// `incident` (must open one SEV) or `angry_customer` (must open none).
    pub kind: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct IncidentsFile {
    incidents: Vec<Injected>,
}

/// `x.truth.jsonl` → `x.incidents.json`.
pub fn incidents_beside(truth: &Path) -> PathBuf {
    let name = truth
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let stem = name.strip_suffix(".truth.jsonl").unwrap_or(name);
    truth.with_file_name(format!("{stem}.incidents.json"))
}

pub fn read_incidents(path: &Path) -> anyhow::Result<Vec<Injected>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    let file: IncidentsFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an incidents file", path.display()))?;
    Ok(file.incidents)
}

#[derive(Debug, Clone, Serialize)]
pub struct InjectedScore {
    pub label: String,
    pub kind: String,
    pub tickets: usize,
    /// SEVs attributed to it.
    pub sevs: Vec<String>,
    /// Its tickets that had arrived when its first SEV opened (the crossing one included).
    pub delay_tickets: Option<usize>,
    /// From its first ticket to its first SEV, in event time.
    pub delay_minutes: Option<f64>,
    /// Its tickets linked to its SEVs by the end of the log.
    pub linked: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub injected: Vec<InjectedScore>,
    pub incidents: usize,
    /// Incidents with exactly one SEV.
    pub detected_once: usize,
    pub recall: f64,
    pub decoy_sevs: usize,
    pub false_sevs: usize,
    pub background_tickets: usize,
    pub false_sevs_per_100k: f64,
}

/// Scores the SEVs of one replay of `corpus`.
pub fn score(corpus: &Corpus, injected: &[Injected], sevs: &[WouldOpen]) -> Score {
    let group_of = groups(corpus, injected);
    let cause: Vec<Option<usize>> = sevs.iter().map(|s| attribute(s, &group_of)).collect();
    let mut scores = Vec::new();
    for (g, inj) in injected.iter().enumerate() {
        let members: Vec<usize> = (0..corpus.tickets.len())
            .filter(|i| group_of.get(corpus.tickets[*i].ticket_id.as_str()) == Some(&g))
            .collect();
        let own: Vec<&WouldOpen> = sevs
            .iter()
            .zip(&cause)
            .filter(|(_, c)| **c == Some(g))
            .map(|(s, _)| s)
            .collect();
        let first = own.first();
        let first_at = members.first().map(|i| corpus.tickets[*i].event_time);
        scores.push(InjectedScore {
            label: inj.label.clone(),
            kind: inj.kind.clone(),
            tickets: members.len(),
            sevs: own.iter().map(|s| s.sev_id.clone()).collect(),
            delay_tickets: first
                .map(|s| members.iter().filter(|i| **i < s.opened_at_ticket).count()),
            delay_minutes: first
                .zip(first_at)
                .map(|(s, t)| (s.opened_at - t).num_seconds() as f64 / 60.0),
            linked: own
                .iter()
                .flat_map(|s| &s.ticket_ids)
                .filter(|id| group_of.get(id.as_str()) == Some(&g))
                .count(),
        });
    }
    summarise(scores, cause, corpus.tickets.len() - group_of.len())
}

fn summarise(scores: Vec<InjectedScore>, cause: Vec<Option<usize>>, background: usize) -> Score {
    let incidents = scores.iter().filter(|s| s.kind == INCIDENT).count();
    let detected_once = scores
        .iter()
        .filter(|s| s.kind == INCIDENT && s.sevs.len() == 1)
        .count();
    let decoy_sevs = scores
        .iter()
        .filter(|s| s.kind != INCIDENT)
        .map(|s| s.sevs.len())
        .sum();
    let false_sevs = cause.iter().filter(|c| c.is_none()).count();
    Score {
        recall: detected_once as f64 / incidents.max(1) as f64,
        injected: scores,
        incidents,
        detected_once,
        decoy_sevs,
        false_sevs,
        background_tickets: background,
        false_sevs_per_100k: false_sevs as f64 * 100_000.0 / background.max(1) as f64,
    }
}

/// Injected tickets by id → the group (index into `injected`) whose label and window they match.
fn groups<'a>(corpus: &'a Corpus, injected: &[Injected]) -> BTreeMap<&'a str, usize> {
    let mut out = BTreeMap::new();
    for (i, t) in corpus.tickets.iter().enumerate() {
        if !corpus.injected[i] {
            continue;
        }
        let g = injected.iter().position(|inj| {
            inj.label == corpus.labels[i] && inj.start <= t.event_time && t.event_time <= inj.end
        });
        if let Some(g) = g {
            out.insert(t.ticket_id.as_str(), g);
        }
    }
    out
}

/// The group contributing most of a SEV's evidence, if any evidence is injected.
fn attribute(sev: &WouldOpen, group_of: &BTreeMap<&str, usize>) -> Option<usize> {
    let mut votes: BTreeMap<usize, usize> = BTreeMap::new();
    for id in &sev.evidence {
        if let Some(g) = group_of.get(id.as_str()) {
            *votes.entry(*g).or_default() += 1;
        }
    }
    votes
        .into_iter()
        .max_by_key(|(g, n)| (*n, std::cmp::Reverse(*g)))
        .map(|(g, _)| g)
}

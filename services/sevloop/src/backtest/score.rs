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

/// An injected group of a stream (an incident or a decoy), how much of it landed in its
/// largest cluster, and how much of that cluster is its label: a pure cluster that held most of
/// an incident and opened no SEV is the rules' miss; a blended or split one, clustering's.
#[derive(Debug, Serialize)]
pub struct Group<'a> {
    pub label: &'a str,
    /// From the stream's incidents file, when there is one.
    pub kind: Option<&'a str>,
    pub tickets: usize,
    pub largest_cluster: &'a str,
    pub share: f64,
    /// Of all the largest cluster's tickets over the stream (background included), the share
    /// with the group's label.
    pub purity: f64,
}

/// The kind of each injected group, by label.
pub fn kinds(injected: &[Injected]) -> BTreeMap<String, String> {
    injected
        .iter()
        .map(|i| (i.label.clone(), i.kind.clone()))
        .collect()
}

/// Each injected group's share in its largest cluster (`clusters_of`: each ticket's cluster at
/// the end of a run), by label.
pub fn injected_groups<'a>(
    corpus: &'a Corpus,
    clusters_of: &'a [String],
    kinds: &'a BTreeMap<String, String>,
) -> Vec<Group<'a>> {
    let mut by_label: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for (i, cluster) in clusters_of
        .iter()
        .enumerate()
        .filter(|(i, _)| corpus.injected[*i])
    {
        *by_label
            .entry(&corpus.labels[i])
            .or_default()
            .entry(cluster)
            .or_default() += 1;
    }
    by_label
        .into_iter()
        .map(|(label, clusters)| {
            let tickets: usize = clusters.values().sum();
            let (largest_cluster, most) = clusters
                .iter()
                .max_by_key(|(c, n)| (**n, std::cmp::Reverse(**c)))
                .map(|(c, n)| (*c, *n))
                .unwrap_or(("-", 0));
            Group {
                label,
                kind: kinds.get(label).map(String::as_str),
                tickets,
                largest_cluster,
                share: most as f64 / tickets.max(1) as f64,
                purity: purity(corpus, clusters_of, largest_cluster, label),
            }
        })
        .collect()
}

/// The share of `cluster`'s tickets (`clusters_of`: each ticket's cluster) labelled `label`.
fn purity(corpus: &Corpus, clusters_of: &[String], cluster: &str, label: &str) -> f64 {
    let labels = clusters_of
        .iter()
        .zip(&corpus.labels)
        .filter(|(c, _)| c.as_str() == cluster)
        .map(|(_, l)| l);
    let (all, own) = labels.fold((0usize, 0usize), |(all, own), l| {
        (all + 1, own + usize::from(l == label))
    });
    own as f64 / all.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use serde_json::json;
    use sevloop_core::{TicketEvent, Verdict};

    fn at(minute: i64) -> DateTime<Utc> {
        "2024-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(minute)
    }

    /// A stream of tickets given as (id, label, injected, minute of event time).
    fn corpus(rows: &[(&str, &str, bool, i64)]) -> Corpus {
        let tickets = rows
            .iter()
            .map(|(id, _, _, minute)| {
                TicketEvent::from_value(json!({
                    "ticket_id": id, "event": "created", "event_time": at(*minute),
                    "subject": "s", "body": "b", "product": "app", "component": null, "tags": [],
                    "customer": {"id": format!("c-{id}"), "tier": "free"},
                    "channel": "email", "source": "test",
                }))
                .unwrap()
            })
            .collect();
        Corpus {
            tickets,
            labels: rows.iter().map(|r| r.1.to_string()).collect(),
            injected: rows.iter().map(|r| r.2).collect(),
        }
    }

    /// The incident `outage` runs from minute 10 to 20, the decoy `angry` from minute 30 to 40.
    fn injected() -> Vec<Injected> {
        let group = |label: &str, kind: &str, from, to| Injected {
            label: label.into(),
            kind: kind.into(),
            start: at(from),
            end: at(to),
        };
        vec![
            group("outage", INCIDENT, 10, 20),
            group("angry", "angry_customer", 30, 40),
        ]
    }

    fn sev(n: usize, opened_at_ticket: usize, minute: i64, evidence: &[&str]) -> WouldOpen {
        WouldOpen {
            sev_id: format!("SEV-{n}"),
            cluster_id: format!("app:{n}"),
            rule: "spike".into(),
            opened_at: at(minute),
            first_ticket_at: at(minute),
            opened_at_ticket,
            label: Vec::new(),
            verdict: Verdict {
                tickets: evidence.len() as u64,
                customers: evidence.len() as u64,
                customer_weight: evidence.len() as f64,
                expected: 0.5,
                p_value: 1e-9,
                span_minutes: 30.0,
                floor: true,
                spike: true,
                ..Verdict::default()
            },
            evidence: evidence.iter().map(|e| e.to_string()).collect(),
            ticket_ids: evidence.iter().map(|e| e.to_string()).collect(),
            joined: Vec::new(),
        }
    }

    fn stream() -> Corpus {
        corpus(&[
            ("b1", "usual", false, 1),
            ("i1", "outage", true, 11),
            ("b2", "usual", false, 12),
            ("i2", "outage", true, 13),
            ("i3", "outage", true, 15),
            // Same label, outside the window: background, not the incident.
            ("o1", "outage", false, 25),
            ("a1", "angry", true, 31),
            ("a2", "angry", true, 32),
            ("b3", "usual", false, 50),
        ])
    }

    #[test]
    fn an_incident_found_once_scores_its_delay_in_tickets_and_minutes() {
        // Opened by i2, the fourth ticket of the log, on evidence that is mostly the incident.
        let sevs = [sev(1, 4, 13, &["b2", "i1", "i2"])];
        let s = score(&stream(), &injected(), &sevs);
        let outage = &s.injected[0];
        assert_eq!(outage.tickets, 3);
        assert_eq!(outage.sevs, ["SEV-1"]);
        assert_eq!(outage.delay_tickets, Some(2));
        assert_eq!(outage.delay_minutes, Some(2.0));
        assert_eq!(outage.linked, 2);
        assert_eq!((s.incidents, s.detected_once, s.recall), (1, 1, 1.0));
        assert_eq!((s.decoy_sevs, s.false_sevs), (0, 0));
        assert_eq!(s.background_tickets, 4);
    }

    #[test]
    fn a_second_sev_for_one_incident_is_not_found_once() {
        let sevs = [sev(1, 4, 13, &["i1", "i2"]), sev(2, 5, 15, &["i3"])];
        let s = score(&stream(), &injected(), &sevs);
        assert_eq!(s.injected[0].sevs, ["SEV-1", "SEV-2"]);
        assert_eq!((s.detected_once, s.recall), (0, 0.0));
        assert_eq!(
            s.injected[0].delay_tickets,
            Some(2),
            "delay is the first SEV's"
        );
    }

    #[test]
    fn decoy_and_background_sevs_are_counted_against_the_rules() {
        // The label's own ticket outside the incident's window is background.
        let sevs = [sev(1, 8, 32, &["a1", "a2"]), sev(2, 9, 50, &["o1", "b3"])];
        let s = score(&stream(), &injected(), &sevs);
        assert_eq!(s.injected[1].sevs, ["SEV-1"]);
        assert_eq!(s.decoy_sevs, 1);
        assert_eq!(s.false_sevs, 1);
        assert_eq!(s.false_sevs_per_100k, 100_000.0 / 4.0);
        let outage = &s.injected[0];
        assert!(outage.sevs.is_empty());
        assert_eq!((outage.delay_tickets, outage.delay_minutes), (None, None));
        assert_eq!(s.recall, 0.0);
    }

    #[test]
    fn the_incidents_file_sits_beside_the_truth_file() {
        assert_eq!(
            incidents_beside(Path::new("/s/x.truth.jsonl")),
            PathBuf::from("/s/x.incidents.json")
        );
    }

    #[test]
    fn a_file_that_is_not_an_incidents_file_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("sevloop-score-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.incidents.json");
        std::fs::write(&path, r#"{"incidents": [{"label": "x"}]}"#).unwrap();
        let err = read_incidents(&path).unwrap_err();
        assert!(format!("{err:#}").contains("bad.incidents.json"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The leadership numbers as one email-ready HTML document: inline styles only, tables, and
//! bars drawn as sized blocks (mail clients drop `<style>` and inline SVG). A daily job posts it;
//! `GET /leadership/digest` shows it.

use askama::Template;
use sevloop_store::{Overview, TeamNumbers};

use super::{maybe_span, maybe_when};

/// A value and its bar, as a share of the largest of its column.
struct Bar {
    label: String,
    value: String,
    percent: u32,
}

#[derive(Template)]
#[template(path = "digest.html")]
struct Digest<'a> {
    o: &'a Overview,
    period: &'a str,
    opened: u64,
    open: u64,
    mttr: Vec<Bar>,
    pareto: Vec<Bar>,
    weeks: Vec<Bar>,
}

/// The digest of `overview` (already free of personal data, as the overview endpoint serves
/// it) for the period named `period` ("2024-01-01 to 2024-01-07", "all time", ...).
pub fn digest_html(overview: &Overview, period: &str) -> String {
    let o = overview;
    let digest = Digest {
        o,
        period,
        opened: o.teams.iter().map(|t| t.opened).sum(),
        open: o.teams.iter().map(|t| t.open).sum(),
        mttr: bars(o.teams.iter().map(|t: &TeamNumbers| {
            let v = t.mttr_seconds.unwrap_or(0.0);
            (t.team.clone(), maybe_span(&t.mttr_seconds), v)
        })),
        pareto: bars(o.pareto.iter().map(|p| {
            let value = format!(
                "{} ({:.0}% · cum. {:.0}%)",
                p.tickets,
                p.share * 100.0,
                p.cumulative_share * 100.0
            );
            (p.label.clone(), value, p.tickets as f64)
        })),
        weeks: bars(o.weekly.iter().map(|w| {
            let value = format!("{} tickets · {} SEVs", w.tickets, w.sevs_opened);
            (
                w.week.format("%Y-%m-%d").to_string(),
                value,
                w.tickets as f64,
            )
        })),
    };
    digest.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "render the leadership digest");
        format!("<p>The digest could not be rendered: {e}</p>")
    })
}

fn bars(rows: impl Iterator<Item = (String, String, f64)>) -> Vec<Bar> {
    let rows: Vec<_> = rows.collect();
    let max = rows
        .iter()
        .map(|r| r.2)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    rows.into_iter()
        .map(|(label, value, v)| Bar {
            label,
            value,
            percent: if max > 0.0 && v.is_finite() {
                (v.max(0.0) / max * 100.0).round() as u32
            } else {
                0
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use sevloop_store::{Declined, LeadTime, ParetoRow, Week};

    fn overview() -> Overview {
        Overview {
            teams: vec![TeamNumbers {
                team: "cards".into(),
                opened: 3,
                open: 1,
                mttr_seconds: Some(7200.0),
                ..TeamNumbers::default()
            }],
            lead_time: LeadTime {
                sevs: 3,
                first_ticket_to_open_seconds: Some(600.0),
                open_to_acknowledge_seconds: None,
            },
            declined: vec![Declined {
                sev_id: "SEV-2".into(),
                team: "cards".into(),
                title: "<b>refunds</b>".into(),
                reason: "not ours & <i>known</i>".into(),
                at: None,
            }],
            rerouted: vec![],
            tickets: 40,
            pareto: vec![ParetoRow {
                cluster_id: "cards:1".into(),
                label: "card <script>declined".into(),
                tickets: 30,
                share: 0.75,
                cumulative_share: 0.75,
            }],
            weekly: vec![Week {
                week: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
                tickets: 40,
                sevs_opened: 3,
            }],
        }
    }

    #[test]
    fn the_digest_is_one_self_contained_document_with_escaped_labels() {
        let html = digest_html(&overview(), "2024-01-01 to 2024-01-07");
        assert!(html.starts_with("<!doctype html>"), "{html}");
        assert!(html.contains("2024-01-01 to 2024-01-07"));
        assert!(!html.contains("<style") && !html.contains("<script"));
        assert!(
            html.contains("card &#60;script&#62;declined")
                || html.contains("card &lt;script&gt;declined"),
            "{html}"
        );
        assert!(html.contains("width:100%"), "the largest bar is full width");
        assert!(html.contains("2h 00m"), "MTTR in words");
    }

    #[test]
    fn an_empty_period_still_makes_a_digest() {
        let empty = Overview {
            teams: vec![],
            lead_time: LeadTime::default(),
            declined: vec![],
            rerouted: vec![],
            tickets: 0,
            pareto: vec![],
            weekly: vec![],
        };
        let html = digest_html(&empty, "all time");
        assert!(html.contains("No SEVs"), "{html}");
    }
}

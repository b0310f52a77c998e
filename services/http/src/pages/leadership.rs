//! The leadership overview with charts, and the same numbers as an email-ready digest. Only
//! aggregates: no ticket text, no customer identifiers.

use askama::Template;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Days, Utc};
use serde::Deserialize;
use sevloop_core::access::Need;
use sevloop_store::Overview;

use super::{ago, maybe_span, maybe_when, when};
use super::{days, param, query, Page, Viewer};
use crate::charts::{self, Svg};
use crate::extract::Params;
use crate::{digest_html, ApiError, AppState};

/// Clusters the Pareto chart ranks.
const PARETO: i64 = 20;

#[derive(Debug, Deserialize)]
pub(crate) struct PeriodQuery {
    from: Option<String>,
    to: Option<String>,
}

#[derive(Template)]
#[template(path = "leadership.html")]
struct LeadershipPage {
    layout: super::Layout,
    from: String,
    to: String,
    period: String,
    digest: String,
    presets: Vec<(String, String)>,
    now: DateTime<Utc>,
    o: Overview,
    opened: u64,
    open: u64,
    charts: Vec<Svg>,
    pareto: Svg,
}

pub(crate) async fn overview(
    v: Viewer,
    State(s): State<AppState>,
    Page(Params(q)): Page<Params<PeriodQuery>>,
) -> Response {
    v.show("leadership", leadership_page(&v, &s, &q).await)
}

async fn leadership_page(
    v: &Viewer,
    s: &AppState,
    q: &PeriodQuery,
) -> Result<LeadershipPage, ApiError> {
    v.0.need(Need::ReadAggregates)?;
    let (o, period) = numbers(s, q).await?;
    let (from, to) = (param(&q.from), param(&q.to));
    let now = Utc::now();
    Ok(LeadershipPage {
        layout: v.layout("Leadership", "leadership"),
        digest: format!("/leadership/digest?{}", query([("from", from), ("to", to)])),
        from: from.to_string(),
        to: to.to_string(),
        period,
        presets: presets(now),
        now,
        opened: o.teams.iter().map(|t| t.opened).sum(),
        open: o.teams.iter().map(|t| t.open).sum(),
        charts: team_charts(&o),
        pareto: charts::pareto_chart(
            "Complaint clusters (Pareto): tickets and cumulative share",
            "tickets",
            &o.pareto
                .iter()
                .map(|p| (p.label.clone(), p.tickets as f64))
                .collect::<Vec<_>>(),
            o.tickets as f64,
        ),
        o,
    })
}

pub(crate) async fn digest(
    v: Viewer,
    State(s): State<AppState>,
    Page(Params(q)): Page<Params<PeriodQuery>>,
) -> Response {
    let numbers = match v.0.need(Need::ReadAggregates) {
        Ok(()) => numbers(&s, &q).await,
        Err(e) => Err(e),
    };
    match numbers {
        Ok((o, period)) => Html(digest_html(&o, &period)).into_response(),
        Err(e) => v.fail("leadership", &e, None),
    }
}

/// The period's numbers, with personal data removed from cluster labels and SEV titles (as the
/// API's overview does), and the period in words.
async fn numbers(s: &AppState, q: &PeriodQuery) -> Result<(Overview, String), ApiError> {
    let period = days(&q.from, &q.to)?;
    let o = crate::leadership::numbers(&s.store, &s.redactor, period, PARETO).await?;
    Ok((o, period_words(period.from, period.to)))
}

/// `[from, to)` as people say it: the first and the last day.
pub fn period_words(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> String {
    let day = |t: DateTime<Utc>| t.format("%Y-%m-%d").to_string();
    let last = to.and_then(|t| t.checked_sub_days(Days::new(1))).map(day);
    match (from.map(day), last) {
        (Some(f), Some(l)) => format!("{f} to {l}"),
        (Some(f), None) => format!("since {f}"),
        (None, Some(l)) => format!("up to {l}"),
        (None, None) => "all time".to_string(),
    }
}

/// Quick periods ending today (UTC).
fn presets(now: DateTime<Utc>) -> Vec<(String, String)> {
    let today = now.date_naive();
    let mut out: Vec<(String, String)> = [7u64, 28, 90]
        .into_iter()
        .filter_map(|n| {
            let from = today.checked_sub_days(Days::new(n - 1))?.to_string();
            let href = format!(
                "/leadership?{}",
                query([("from", from.as_str()), ("to", today.to_string().as_str())])
            );
            Some((format!("Last {n} days"), href))
        })
        .collect();
    out.push(("All time".to_string(), "/leadership".to_string()));
    out
}

/// Open SEVs, MTTA, MTTR per team and the support lead time, as charts.
fn team_charts(o: &Overview) -> Vec<Svg> {
    let per_team = |f: &dyn Fn(&sevloop_store::TeamNumbers) -> Option<f64>| -> Vec<(String, f64)> {
        o.teams
            .iter()
            .filter_map(|t| Some((t.team.clone(), f(t)?)))
            .collect()
    };
    let lead = [
        (
            "First ticket → SEV opened",
            o.lead_time.first_ticket_to_open_seconds,
        ),
        (
            "SEV opened → acknowledged",
            o.lead_time.open_to_acknowledge_seconds,
        ),
    ]
    .into_iter()
    .filter_map(|(l, v)| Some((l.to_string(), v?)))
    .collect();
    vec![
        charts::bar_chart(
            "Open SEVs by team",
            "SEVs",
            &per_team(&|t| Some(t.open as f64)),
        ),
        durations(
            "Mean time to acknowledge (MTTA) by team",
            per_team(&|t| t.mtta_seconds),
        ),
        durations(
            "Mean time to resolve (MTTR) by team",
            per_team(&|t| t.mttr_seconds),
        ),
        durations("Support lead time (medians)", lead),
        charts::line_chart("Tickets per week", "tickets", &weekly(o, |w| w.tickets)),
        charts::line_chart(
            "SEVs opened per week",
            "SEVs",
            &weekly(o, |w| w.sevs_opened),
        ),
    ]
}

fn weekly(o: &Overview, f: impl Fn(&sevloop_store::Week) -> i64) -> Vec<(String, f64)> {
    o.weekly
        .iter()
        .map(|w| (w.week.format("%Y-%m-%d").to_string(), f(w) as f64))
        .collect()
}

/// A bar chart of durations in the unit that keeps them readable.
fn durations(title: &str, seconds: Vec<(String, f64)>) -> Svg {
    let max = seconds.iter().map(|(_, s)| *s).fold(0.0, f64::max);
    let (unit, per) = match max {
        m if m < 120.0 => ("seconds", 1.0),
        m if m < 2.0 * 3600.0 => ("minutes", 60.0),
        m if m < 3.0 * 86_400.0 => ("hours", 3600.0),
        _ => ("days", 86_400.0),
    };
    let bars: Vec<(String, f64)> = seconds.into_iter().map(|(l, s)| (l, s / per)).collect();
    charts::bar_chart(title, unit, &bars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_as_first_and_last_day() {
        let t = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
        let (from, to) = (t("2024-01-01T00:00:00Z"), t("2024-02-01T00:00:00Z"));
        assert_eq!(period_words(from, to), "2024-01-01 to 2024-01-31");
        assert_eq!(period_words(from, None), "since 2024-01-01");
        assert_eq!(period_words(None, None), "all time");
    }
}

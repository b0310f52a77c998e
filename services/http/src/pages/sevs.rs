//! The SEV list, a SEV's page, and the forms that act on a SEV (through the API's own path).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sevloop_core::access::Need;
use sevloop_core::sev::SevAction;
use sevloop_core::{SevState, Severity};
use sevloop_store::{ChannelState, Exemplar, Period, SevFilter, SevRow};

use super::{ago, maybe_when, when};
use super::{
    choices, days, given, param, query, see, segment, Choice, Page, PageForm, Pager, Viewer,
    PAGE_ROWS,
};
use crate::charts::{self, Svg};
use crate::extract::{Id, Params};
use crate::sevs::{actionable, perform, Outcome};
use crate::{views, ApiError, AppState};

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    state: Option<String>,
    team: Option<String>,
    severity: Option<String>,
    product: Option<String>,
    from: Option<String>,
    to: Option<String>,
    sort: Option<String>,
    offset: Option<i64>,
}

#[derive(Template)]
#[template(path = "sevs.html")]
struct ListPage {
    layout: super::Layout,
    rows: Vec<SevRow>,
    now: DateTime<Utc>,
    states: Vec<Choice>,
    teams: Vec<Choice>,
    severities: Vec<Choice>,
    products: Vec<Choice>,
    sorts: Vec<Choice>,
    from: String,
    to: String,
    pager: Pager,
}

pub(crate) async fn list(
    v: Viewer,
    State(s): State<AppState>,
    Page(Params(q)): Page<Params<ListQuery>>,
) -> Response {
    v.show("sevs", list_page(&v, &s, &q).await)
}

async fn list_page(v: &Viewer, s: &AppState, q: &ListQuery) -> Result<ListPage, ApiError> {
    v.0.need(Need::ReadSevs)?;
    let Period { from, to } = days(&q.from, &q.to)?;
    let state = known("state", given(&q.state), |x| SevState::parse(x).is_some())?;
    let severity = known("severity", given(&q.severity), |x| {
        Severity::parse(x).is_some()
    })?;
    let offset = q.offset.unwrap_or(0).max(0);
    let filter = SevFilter {
        state,
        team: given(&q.team),
        severity,
        product: given(&q.product),
        from,
        to,
        sort: super::named("sort", param(&q.sort))?.unwrap_or_default(),
        limit: PAGE_ROWS,
        offset,
    };
    let (rows, total) = s.store.sevs_page(&filter).await?;
    let facets = s.store.facets().await?;
    let link = |o: i64| {
        let o = o.to_string();
        let pairs = [
            ("state", param(&q.state)),
            ("team", param(&q.team)),
            ("severity", param(&q.severity)),
            ("product", param(&q.product)),
            ("from", param(&q.from)),
            ("to", param(&q.to)),
            ("sort", param(&q.sort)),
            ("offset", o.as_str()),
        ];
        format!("/?{}", query(pairs))
    };
    Ok(ListPage {
        layout: v.layout("SEVs", "sevs"),
        pager: Pager::new(total, offset, rows.len(), link),
        rows,
        now: Utc::now(),
        states: choices(names(SevState::ALL.map(SevState::as_str)), param(&q.state)),
        teams: choices(facets.teams, param(&q.team)),
        severities: choices(names(["SEV1", "SEV2", "SEV3", "SEV4"]), param(&q.severity)),
        products: choices(facets.products, param(&q.product)),
        sorts: super::options(
            names(["newest", "oldest", "severity", "customers"]),
            param(&q.sort),
        ),
        from: param(&q.from).to_string(),
        to: param(&q.to).to_string(),
    })
}

fn names<const N: usize>(values: [&str; N]) -> Vec<String> {
    values.map(str::to_string).to_vec()
}

/// A filter value the API knows, or a 400 naming it.
fn known(
    name: &str,
    v: Option<String>,
    ok: impl Fn(&str) -> bool,
) -> Result<Option<String>, ApiError> {
    match v {
        Some(x) if !ok(&x) => Err(super::bad(format!("`{name}` has no value `{x}`"))),
        v => Ok(v),
    }
}

/// How long a SEV has been open (wall clock), or a dash once it is closed.
pub(crate) fn age(sev: &SevRow, now: &DateTime<Utc>) -> String {
    match SevState::parse(&sev.state) {
        Some(state) if state.is_open() => ago(&sev.created_at, now),
        _ => "—".to_string(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SevQuery {
    done: Option<String>,
    tickets: Option<i64>,
}

/// One timeline event as the page shows it.
struct Event {
    at: DateTime<Utc>,
    what: String,
    actor: String,
    details: Vec<(String, String)>,
}

/// Which actions the viewer may take on the SEV now.
#[derive(Default)]
struct Actions {
    acknowledge: bool,
    mitigate: bool,
    resolve: bool,
    decline: bool,
    reroute: bool,
    merge: bool,
}

impl Actions {
    fn any(&self) -> bool {
        self.acknowledge
            || self.mitigate
            || self.resolve
            || self.decline
            || self.reroute
            || self.merge
    }
}

#[derive(Template)]
#[template(path = "sev.html")]
struct SevPage {
    layout: super::Layout,
    csrf: String,
    href: String,
    sev: SevRow,
    notice: Option<&'static str>,
    growth: Svg,
    timeline: Vec<Event>,
    channels: Vec<ChannelState>,
    /// None: the viewer's role never sees ticket text or ids.
    exemplars: Option<Vec<Exemplar>>,
    tickets: Option<Vec<String>>,
    pager: Pager,
    actions: Actions,
    teams: Vec<String>,
}

pub(crate) async fn detail(
    v: Viewer,
    State(s): State<AppState>,
    Page(Id(id)): Page<Id>,
    Page(Params(q)): Page<Params<SevQuery>>,
) -> Response {
    v.show("sevs", sev_page(&v, &s, &id, &q).await)
}

async fn sev_page(v: &Viewer, s: &AppState, id: &str, q: &SevQuery) -> Result<SevPage, ApiError> {
    v.0.need(Need::ReadSevs)?;
    let sev = s
        .store
        .sev(id)
        .await?
        .ok_or_else(|| ApiError::not_found("SEV", id))?;
    let href = format!("/sevs/{}", segment(&sev.id));
    let offset = q.tickets.unwrap_or(0).max(0);
    let (exemplars, tickets) = if v.may(Need::ReadTickets) {
        let exemplars = match s.store.cluster(&sev.cluster_id).await? {
            Some(c) => views::cluster(c, v.0.role.text_view(), &s.redactor).exemplars,
            None => Vec::new(),
        };
        let page = s.store.sev_tickets_page(&sev.id, PAGE_ROWS, offset).await?;
        (Some(exemplars), Some(page))
    } else {
        (None, None)
    };
    let shown = tickets.as_ref().map_or(0, Vec::len);
    let growth = s.store.sev_growth(&sev.id).await?;
    let hours = growth.bucket_hours;
    let label = if hours % 24 == 0 {
        "%Y-%m-%d"
    } else {
        "%m-%d %H:%M"
    };
    let bars: Vec<(String, f64)> = growth
        .buckets
        .iter()
        .map(|(at, n)| (at.format(label).to_string(), *n as f64))
        .collect();
    Ok(SevPage {
        layout: v.layout(format!("{} · {}", sev.id, sev.title), "sevs"),
        csrf: v.csrf(),
        pager: Pager::new(sev.ticket_count, offset, shown, |o| {
            format!("{href}?tickets={o}")
        }),
        href,
        notice: q.done.as_deref().and_then(notice),
        growth: charts::bar_chart(
            &format!("Tickets filed per {}", per_hours(hours)),
            "tickets",
            &bars,
        ),
        timeline: s
            .store
            .sev_timeline(&sev.id)
            .await?
            .into_iter()
            .map(event)
            .collect(),
        channels: s.store.sev_channels(&sev.id).await?,
        exemplars,
        tickets,
        actions: actions(v, &sev),
        teams: reroute_targets(s).await?,
        sev,
    })
}

/// The teams a SEV can be rerouted to: the catalog's, or those seen on SEVs without one.
async fn reroute_targets(s: &AppState) -> Result<Vec<String>, ApiError> {
    Ok(match &s.catalog {
        Some(catalog) => catalog
            .summary()
            .teams
            .into_iter()
            .map(|t| t.name)
            .collect(),
        None => s.store.facets().await?.teams,
    })
}

fn per_hours(hours: i64) -> String {
    match hours {
        1 => "hour (event time)".to_string(),
        h if h % 24 == 0 => format!("{} days (event time)", h / 24),
        h => format!("{h} hours (event time)"),
    }
}

/// What an action (`?done=` after a form) came to, in words; unknown values say nothing.
fn notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "acknowledge" => "Acknowledged.",
        "mitigate" => "Marked as mitigated.",
        "resolve" => "Resolved.",
        "decline" => "Declined; the reason is on the timeline.",
        "reroute" => "Rerouted; the new team has been told.",
        "merge" => "Merged; its tickets now count toward the other SEV.",
        "pending" => "Your action is on its way; it shows here once applied (reload in a moment).",
        _ => return None,
    })
}

fn event(e: sevloop_store::TimelineEvent) -> Event {
    let details = match e.detail {
        serde_json::Value::Object(fields) => fields
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Number(n) if n.is_f64() => {
                        n.as_f64().map_or_else(|| n.to_string(), readable)
                    }
                    other => other.to_string(),
                };
                (k.replace('_', " "), text)
            })
            .collect(),
        _ => Vec::new(),
    };
    Event {
        at: e.at,
        what: e.kind.replace('_', " "),
        actor: e.actor_role,
        details,
    }
}

/// A fraction as people read it: three decimals, or three digits of a tiny one (p-values).
fn readable(x: f64) -> String {
    if x != 0.0 && x.abs() < 0.001 {
        return format!("{x:.2e}");
    }
    let fixed = format!("{x:.3}");
    fixed
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

/// The actions the core's state machine allows now, if the viewer may act on this SEV at all.
fn actions(v: &Viewer, sev: &SevRow) -> Actions {
    if !v.may(Need::ActOnSev { team: &sev.team }) {
        return Actions::default();
    }
    let state = SevState::parse(&sev.state).unwrap_or(SevState::Open);
    // Placeholder text only passes the field checks; the state decides.
    let fits = |a: SevAction| state.after(&a).is_ok();
    let text = || "-".to_string();
    Actions {
        acknowledge: fits(SevAction::Acknowledge),
        mitigate: fits(SevAction::Mitigate),
        resolve: fits(SevAction::Resolve),
        decline: fits(SevAction::Decline { reason: text() }),
        reroute: fits(SevAction::Reroute {
            team: text(),
            note: None,
        }),
        merge: fits(SevAction::Merge { into: text() }),
    }
}

pub(crate) async fn act(
    State(s): State<AppState>,
    Page(Id(id)): Page<Id>,
    PageForm(form): PageForm,
) -> Response {
    let v = Viewer(form.actor);
    let back = format!("/sevs/{}", segment(&id));
    let outcome = async {
        let action = action_of(&form.fields)?;
        let sev = actionable(&s, &v.0, &id).await?;
        perform(&s, &v.0, sev, action).await
    }
    .await;
    match outcome {
        Ok(Outcome::Applied { action, .. }) => see(&format!("{back}?done={}", action.kind)),
        Ok(Outcome::Pending(_)) => see(&format!("{back}?done=pending")),
        Err(e) => v.fail("sevs", &e, Some(back)),
    }
}

/// The action a SEV form asks for.
fn action_of(f: &crate::auth::FormFields) -> Result<SevAction, ApiError> {
    let text = |name: &str| f.one(name).unwrap_or_default().trim().to_string();
    Ok(match f.one("action").unwrap_or_default() {
        "acknowledge" => SevAction::Acknowledge,
        "mitigate" => SevAction::Mitigate,
        "resolve" => SevAction::Resolve,
        "decline" => SevAction::Decline {
            reason: text("reason"),
        },
        "reroute" => SevAction::Reroute {
            team: text("team"),
            note: Some(text("note")).filter(|n| !n.is_empty()),
        },
        "merge" => SevAction::Merge { into: text("into") },
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_action",
                format!("there is no action `{other}`"),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_details_print_fractions_readably() {
        let e = event(sevloop_store::TimelineEvent {
            kind: "opened".into(),
            actor_role: "sevloop".into(),
            at: Utc::now(),
            detail: serde_json::json!({"p_value": 9.1997e-7, "usual_in_span": 0.6868, "tickets": 10,
                "rule": "cold_start", "previous_sev": null, "share": 12.5}),
        });
        let d: std::collections::BTreeMap<_, _> = e.details.into_iter().collect();
        assert_eq!(d["p value"], "9.20e-7");
        assert_eq!(d["usual in span"], "0.687");
        assert_eq!(d["share"], "12.5");
        assert_eq!(
            (d["tickets"].as_str(), d["rule"].as_str()),
            ("10", "cold_start")
        );
        assert!(!d.contains_key("previous sev"), "nulls are left out");
    }
}

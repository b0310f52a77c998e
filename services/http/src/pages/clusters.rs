//! The cluster explorer: clusters by volume or growth, one cluster explained, and the merge and
//! split forms (through the API's own correction path).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use sevloop_core::access::Need;
use sevloop_core::cluster::corrections::CorrectionRequest;
use sevloop_store::{ClusterDetail, ClusterFilter, ClusterRow, ClusterSort};

use super::when;
use super::{
    choices, given, param, query, see, segment, Choice, Page, PageForm, Pager, Viewer, PAGE_ROWS,
};
use crate::clusters::{request_merge, request_split};
use crate::extract::{Id, Params};
use crate::{views, ApiError, AppState};

/// Top terms shown per cluster in the list.
const LIST_TERMS: usize = 8;

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    sort: Option<String>,
    product: Option<String>,
    offset: Option<i64>,
}

/// A cluster in the list, with its top terms.
struct Line {
    row: ClusterRow,
    terms: Vec<String>,
}

#[derive(Template)]
#[template(path = "clusters.html")]
struct ListPage {
    layout: super::Layout,
    sort: &'static str,
    by_volume: String,
    by_growth: String,
    products: Vec<Choice>,
    lines: Vec<Line>,
    pager: Pager,
}

pub(crate) async fn list(
    v: Viewer,
    State(s): State<AppState>,
    Page(Params(q)): Page<Params<ListQuery>>,
) -> Response {
    v.show("clusters", list_page(&v, &s, &q).await)
}

async fn list_page(v: &Viewer, s: &AppState, q: &ListQuery) -> Result<ListPage, ApiError> {
    v.0.need(Need::ReadTickets)?;
    let sort: ClusterSort = super::named("sort", param(&q.sort))?.unwrap_or_default();
    let offset = q.offset.unwrap_or(0).max(0);
    let filter = ClusterFilter {
        product: given(&q.product),
        sort,
        limit: PAGE_ROWS,
        offset,
    };
    let (rows, total) = s.store.clusters_page(&filter).await?;
    let ids: Vec<String> = rows.iter().map(|r| r.cluster_id.clone()).collect();
    let mut terms = s.store.cluster_terms(&ids).await?;
    let sort = match sort {
        ClusterSort::Size => "size",
        ClusterSort::Growth => "growth",
        ClusterSort::Recent => "recent",
    };
    let product = param(&q.product);
    let link = |sort: &str, offset: i64| {
        let offset = offset.to_string();
        let pairs = [("sort", sort), ("product", product), ("offset", &offset)];
        format!("/clusters?{}", query(pairs))
    };
    let products = s.store.facets().await?.products;
    Ok(ListPage {
        layout: v.layout("Clusters", "clusters"),
        by_volume: link("size", 0),
        by_growth: link("growth", 0),
        pager: Pager::new(total, offset, rows.len(), |o| link(sort, o)),
        sort,
        products: choices(products, product),
        lines: rows
            .into_iter()
            .map(|row| {
                let mut t = terms.remove(&row.cluster_id).unwrap_or_default();
                t.truncate(LIST_TERMS);
                Line { row, terms: t }
            })
            .collect(),
    })
}

/// Tickets in the last 24 hours of event time against the 24 hours before, signed.
pub(crate) fn change(row: &ClusterRow) -> String {
    format!("{:+}", row.tickets_last_24h - row.tickets_previous_24h)
}

#[derive(Debug, Deserialize)]
pub(crate) struct ClusterQuery {
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "cluster.html")]
struct ClusterPage {
    layout: super::Layout,
    csrf: String,
    href: String,
    /// The id asked for, when it was merged into this cluster.
    asked: Option<String>,
    c: ClusterDetail,
    notice: Option<&'static str>,
    may_correct: bool,
}

pub(crate) async fn detail(
    v: Viewer,
    State(s): State<AppState>,
    Page(Id(id)): Page<Id>,
    Page(Params(q)): Page<Params<ClusterQuery>>,
) -> Response {
    v.show("clusters", cluster_page(&v, &s, &id, &q).await)
}

async fn cluster_page(
    v: &Viewer,
    s: &AppState,
    id: &str,
    q: &ClusterQuery,
) -> Result<ClusterPage, ApiError> {
    v.0.need(Need::ReadTickets)?;
    let c = s
        .store
        .cluster(id)
        .await?
        .ok_or_else(|| ApiError::not_found("cluster", id))?;
    let c = views::cluster(c, v.0.role.text_view(), &s.redactor);
    let notice = match q.done.as_deref() {
        Some("merge" | "split") => {
            Some("Your correction is on its way; it shows here once applied (reload in a moment).")
        }
        _ => None,
    };
    Ok(ClusterPage {
        layout: v.layout(format!("Cluster {}", c.row.label), "clusters"),
        csrf: v.csrf(),
        href: format!("/clusters/{}", segment(&c.row.cluster_id)),
        asked: (c.row.cluster_id != id).then(|| id.to_string()),
        c,
        notice,
        may_correct: v.may(Need::CorrectClusters),
    })
}

pub(crate) async fn merge(
    State(s): State<AppState>,
    Page(Id(id)): Page<Id>,
    PageForm(form): PageForm,
) -> Response {
    let v = Viewer(form.actor);
    let with = form
        .fields
        .one("with")
        .unwrap_or_default()
        .trim()
        .to_string();
    let asked = request_merge(&s, &v.0, id.clone(), with).await;
    corrected(&v, &id, asked, "merge")
}

pub(crate) async fn split(
    State(s): State<AppState>,
    Page(Id(id)): Page<Id>,
    PageForm(form): PageForm,
) -> Response {
    let v = Viewer(form.actor);
    // Ticked exemplars, then any ids typed in, each once.
    let typed = form.fields.one("more").unwrap_or_default();
    let mut ids: Vec<String> = Vec::new();
    let named = form.fields.all("ticket_ids").chain(
        typed
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty()),
    );
    for t in named {
        if !ids.iter().any(|i| i == t) {
            ids.push(t.to_string());
        }
    }
    let asked = request_split(&s, &v.0, id.clone(), ids).await;
    corrected(&v, &id, asked, "split")
}

/// Back to the cluster once a correction is on the log, or the reason it is not.
fn corrected(
    v: &Viewer,
    id: &str,
    asked: Result<CorrectionRequest, ApiError>,
    done: &str,
) -> Response {
    let back = format!("/clusters/{}", segment(id));
    match asked {
        Ok(_) => see(&format!("{back}?done={done}")),
        Err(e) => v.fail("clusters", &e, Some(back)),
    }
}

//! Ticket search and a ticket's page, with its text as the viewer's role may see it.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use sevloop_core::access::Need;
use sevloop_index::Hit;
use sevloop_store::TicketRow;

use super::{given, Page, Viewer};
use super::{maybe_when, when};
use crate::extract::{Id, Params};
use crate::{views, ApiError, AppState};

/// Most search results shown.
const HITS: usize = 50;

#[derive(Debug, Deserialize)]
pub(crate) struct SearchQuery {
    q: Option<String>,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    layout: super::Layout,
    q: String,
    /// None until something is searched for.
    found: Option<(usize, Vec<Hit>)>,
}

pub(crate) async fn search(
    v: Viewer,
    State(s): State<AppState>,
    Page(Params(q)): Page<Params<SearchQuery>>,
) -> Response {
    v.show("search", search_page(&v, &s, given(&q.q)).await)
}

async fn search_page(v: &Viewer, s: &AppState, q: Option<String>) -> Result<SearchPage, ApiError> {
    v.0.need(Need::ReadTickets)?;
    let found = match q.clone() {
        None => None,
        Some(query) => Some(crate::search_as(s, &v.0, query, HITS).await?),
    };
    Ok(SearchPage {
        layout: v.layout("Search", "search"),
        q: q.unwrap_or_default(),
        found,
    })
}

#[derive(Template)]
#[template(path = "ticket.html")]
struct TicketPage {
    layout: super::Layout,
    t: TicketRow,
}

pub(crate) async fn ticket(
    v: Viewer,
    State(s): State<AppState>,
    Page(Id(id)): Page<Id>,
) -> Response {
    v.show("search", ticket_page(&v, &s, &id).await)
}

async fn ticket_page(v: &Viewer, s: &AppState, id: &str) -> Result<TicketPage, ApiError> {
    v.0.need(Need::ReadTickets)?;
    let t = s
        .store
        .ticket(id)
        .await?
        .ok_or_else(|| ApiError::not_found("ticket", id))?;
    let t = views::ticket(t, v.0.role.text_view(), &s.redactor);
    Ok(TicketPage {
        layout: v.layout(format!("Ticket {}", t.ticket_id), "search"),
        t,
    })
}

//! Server-rendered pages (no JavaScript). Every piece of user text goes through `escape`.
//! People log in with a token once; a session cookie (HttpOnly, SameSite=Strict) carries them
//! from page to page.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use sevloop_core::access::Need;
use sevloop_store::{SevFilter, SevRow};

use crate::auth::{self, SESSION_COOKIE};
use crate::{Actor, ApiError, AppState};

/// How long a dashboard session lasts.
const SESSION_HOURS: i64 = 12;

/// A page for someone logged in; the login page for anyone else.
type Viewer = Result<Actor, ApiError>;

fn login_first(viewer: Viewer) -> Result<Actor, Redirect> {
    viewer.map_err(|_| Redirect::to("/login"))
}

pub(crate) async fn login_page() -> Html<String> {
    Html(page(
        "Log in",
        "<form method=\"post\" action=\"/login\"><label>Token <input type=\"password\" \
         name=\"token\" autocomplete=\"off\" required></label> <button>Log in</button></form>\
         <p>Ask an admin for a token (<code>sevloop token create</code>).</p>",
    ))
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

pub(crate) async fn login(
    State(s): State<AppState>,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiError> {
    let Some(token) = s
        .store
        .token_by_secret(&auth::hash(form.token.trim()))
        .await?
    else {
        let body =
            "<p>That token is unknown or revoked.</p><p><a href=\"/login\">Try again</a></p>";
        return Ok((StatusCode::UNAUTHORIZED, Html(page("Log in", body))).into_response());
    };
    let (session, csrf) = (auth::secret("svs_"), auth::secret(""));
    let now = chrono::Utc::now();
    let expires = now + chrono::Duration::hours(SESSION_HOURS);
    s.store
        .create_session(&auth::hash(&session), &token.token_id, &csrf, now, expires)
        .await?;
    let cookie = format!(
        "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_HOURS * 3600
    );
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response())
}

pub(crate) async fn logout(
    State(s): State<AppState>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (parts, _) = request.into_parts();
    if let Some(session) = auth::cookie(&parts, SESSION_COOKIE) {
        s.store.end_session(&auth::hash(session)).await?;
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok(([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response())
}

pub(crate) async fn index(viewer: Viewer, State(s): State<AppState>) -> Result<Response, ApiError> {
    let actor = match login_first(viewer) {
        Ok(a) => a,
        Err(to_login) => return Ok(to_login.into_response()),
    };
    actor.need(Need::ReadSevs)?;
    let sevs = s
        .store
        .sevs(&SevFilter {
            limit: 200,
            ..SevFilter::default()
        })
        .await?;
    let open: Vec<&SevRow> = sevs
        .iter()
        .filter(|r| !matches!(r.state.as_str(), "resolved" | "declined" | "merged"))
        .collect();
    let mut rows = String::new();
    for r in &open {
        rows.push_str(&format!(
            "<tr><td><a href=\"/sevs/{id}\">{id}</a></td><td>{sev}</td><td>{title}</td><td>{team}</td>\
             <td>{state}</td><td>{tickets}</td><td>{customers}</td><td>{opened}</td></tr>",
            id = escape(&r.id),
            sev = escape(&r.severity),
            title = escape(&r.title),
            team = escape(&r.team),
            state = escape(&r.state),
            tickets = r.ticket_count,
            customers = r.distinct_customers,
            opened = r.opened_at.format("%Y-%m-%d %H:%M UTC"),
        ));
    }
    let body = if open.is_empty() {
        "<p>No open SEVs.</p>".to_string()
    } else {
        format!(
            "<table><thead><tr><th>SEV</th><th>Severity</th><th>Title</th><th>Team</th><th>State</th>\
             <th>Tickets</th><th>Customers</th><th>Opened (event time)</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    Ok(Html(page("Open SEVs", &body)).into_response())
}

pub(crate) async fn sev(
    viewer: Viewer,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let actor = match login_first(viewer) {
        Ok(a) => a,
        Err(to_login) => return Ok(to_login.into_response()),
    };
    actor.need(Need::ReadSevs)?;
    let sev = s
        .store
        .sev(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("SEV", &id))?;
    let tickets = s.store.sev_ticket_ids(&id).await?;
    let list: String = tickets
        .iter()
        .map(|t| format!("<li>{}</li>", escape(t)))
        .collect();
    let body = format!(
        "<p><a href=\"/\">All open SEVs</a></p><h2>{title}</h2><dl><dt>Severity</dt><dd>{sev}</dd><dt>State</dt><dd>{state}</dd>\
         <dt>Team</dt><dd>{team}</dd><dt>Cluster</dt><dd>{cluster}</dd><dt>Tickets</dt><dd>{n}</dd>\
         <dt>Distinct customers</dt><dd>{c}</dd><dt>First ticket</dt><dd>{first}</dd><dt>Opened</dt><dd>{opened}</dd></dl>\
         <h3>Linked tickets</h3><ul>{list}</ul>",
        title = escape(&sev.title),
        sev = escape(&sev.severity),
        state = escape(&sev.state),
        team = escape(&sev.team),
        cluster = escape(&sev.cluster_id),
        n = sev.ticket_count,
        c = sev.distinct_customers,
        first = sev.first_ticket_at.format("%Y-%m-%d %H:%M UTC"),
        opened = sev.opened_at.format("%Y-%m-%d %H:%M UTC"),
    );
    Ok(Html(page(&sev.id, &body)).into_response())
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · sevloop</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}table{{border-collapse:collapse}}\
         td,th{{padding:.3rem .7rem;border-bottom:1px solid #ddd;text-align:left}}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    )
}

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            super::escape("<script>\"x\"&'y'"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;"
        );
    }
}

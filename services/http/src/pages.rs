//! Server-rendered pages (no JavaScript). Every piece of user text goes through `escape`.

use axum::extract::{Path, State};
use axum::response::Html;
use sevloop_store::{SevFilter, SevRow};

use crate::{ApiError, AppState};

pub(crate) async fn index(State(s): State<AppState>) -> Result<Html<String>, ApiError> {
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
    Ok(Html(page("Open SEVs", &body)))
}

pub(crate) async fn sev(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
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
    Ok(Html(page(&sev.id, &body)))
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

//! The dashboard: server-rendered pages, no JavaScript. Templates live in `templates/` and are
//! compiled by askama, which HTML-escapes every value unless it is a chart (`charts::Svg`, drawn
//! from numbers and escaped labels). People log in with a token once; a session cookie carries
//! them from page to page, and every form repeats the session's CSRF secret in a hidden field.
//! Pages ask the same role checks as the API; a refusal is a page, never JSON.

mod clusters;
mod digest;
mod leadership;
mod login;
mod sevs;
mod tickets;

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, NaiveDate, Utc};
use sevloop_core::access::Need;
use sevloop_store::Period;

use crate::auth::SessionForm;
use crate::{Actor, ApiError, AppState};

pub use digest::digest_html;
pub use leadership::period_words;

/// Rows per page of every list.
const PAGE_ROWS: i64 = 50;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(sevs::list))
        .route("/login", get(login::login_page).post(login::login))
        .route("/logout", post(login::logout))
        .route("/sevs/{id}", get(sevs::detail))
        .route("/sevs/{id}/actions", post(sevs::act))
        .route("/clusters", get(clusters::list))
        .route("/clusters/{id}", get(clusters::detail))
        .route("/clusters/{id}/merge", post(clusters::merge))
        .route("/clusters/{id}/split", post(clusters::split))
        .route("/search", get(tickets::search))
        .route("/tickets/{id}", get(tickets::ticket))
        .route("/leadership", get(leadership::overview))
        .route("/leadership/digest", get(leadership::digest))
}

/// Why there is no page: nobody is logged in (off to the login page), or a refusal or error,
/// shown as a page.
pub(crate) enum PageError {
    Login,
    Failed(ApiError),
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        if e.status() == StatusCode::UNAUTHORIZED {
            PageError::Login
        } else {
            PageError::Failed(e)
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::Login => Redirect::to("/login").into_response(),
            PageError::Failed(e) => error_page(Layout::anonymous("Error"), &e, None),
        }
    }
}

/// An extractor of the API (path id, query parameters) whose refusal is a page.
pub(crate) struct Page<T>(pub T);

impl<T> FromRequestParts<AppState> for Page<T>
where
    T: FromRequestParts<AppState, Rejection = ApiError>,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, PageError> {
        Ok(Page(T::from_request_parts(parts, s).await?))
    }
}

/// A form post from a page (session cookie and matching `csrf` field), refused as a page.
pub(crate) struct PageForm(pub SessionForm);

impl FromRequest<AppState> for PageForm {
    type Rejection = PageError;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, PageError> {
        Ok(PageForm(SessionForm::from_request(req, s).await?))
    }
}

/// Someone logged in, looking at the dashboard.
pub(crate) struct Viewer(pub Actor);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, PageError> {
        Ok(Viewer(Actor::from_request_parts(parts, s).await?))
    }
}

impl Viewer {
    fn may(&self, need: Need) -> bool {
        self.0.role.allows(need)
    }

    /// The frame of a page: its title, the nav tab it belongs to, who is looking.
    fn layout(&self, title: impl Into<String>, tab: &'static str) -> Layout {
        Layout {
            title: title.into(),
            tab,
            who: Some(Who {
                role: self.0.role.actor(),
                reads_tickets: self.may(Need::ReadTickets),
                leads: self.may(Need::ReadAggregates),
            }),
        }
    }

    /// The CSRF secret the page's forms repeat (empty for bearer-token callers, who post none).
    fn csrf(&self) -> String {
        self.0.csrf.clone().unwrap_or_default()
    }

    /// The page, or the error page in the same frame.
    fn show<T: Template>(&self, tab: &'static str, page: Result<T, ApiError>) -> Response {
        match page {
            Ok(page) => render(StatusCode::OK, &page),
            Err(e) => self.fail(tab, &e, None),
        }
    }

    /// The error page in the frame of `tab`, with a link back to where the viewer came from.
    fn fail(&self, tab: &'static str, e: &ApiError, back: Option<String>) -> Response {
        error_page(self.layout("Error", tab), e, back)
    }
}

/// What the frame around every page shows.
pub(crate) struct Layout {
    pub title: String,
    /// The nav entry this page belongs to (`sevs`, `clusters`, `search`, `leadership`).
    pub tab: &'static str,
    pub who: Option<Who>,
}

impl Layout {
    fn anonymous(title: &str) -> Layout {
        Layout {
            title: title.to_string(),
            tab: "",
            who: None,
        }
    }
}

/// The viewer as the nav shows them, and which entries they may open.
pub(crate) struct Who {
    pub role: String,
    pub reads_tickets: bool,
    pub leads: bool,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    status: u16,
    heading: &'static str,
    message: &'a str,
    back: Option<String>,
}

fn error_page(layout: Layout, e: &ApiError, back: Option<String>) -> Response {
    let heading = match e.status() {
        StatusCode::FORBIDDEN => "Not available to you",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "That did not go through",
        s if s.is_client_error() => "Please check what you entered",
        _ => "Something went wrong",
    };
    let page = ErrorPage {
        layout,
        status: e.status().as_u16(),
        heading,
        message: e.message(),
        back,
    };
    render(e.status(), &page)
}

fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "render a page");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// Off to a page after a form was handled (303: the browser then GETs it).
fn see(location: &str) -> Response {
    Redirect::to(location).into_response()
}

/// An id as one path segment of a link.
fn segment(id: &str) -> String {
    let Ok(encoded) = askama::filters::urlencode_strict(id);
    encoded.to_string()
}

/// A query string from the non-empty pairs.
fn query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.into_iter().filter(|(_, v)| !v.is_empty()) {
        out.append_pair(k, v);
    }
    out.finish()
}

/// A request parameter as given, or empty.
fn param(v: &Option<String>) -> &str {
    v.as_deref().map(str::trim).unwrap_or_default()
}

/// A non-empty request parameter.
fn given(v: &Option<String>) -> Option<String> {
    Some(param(v)).filter(|v| !v.is_empty()).map(str::to_string)
}

/// A `[from, to]` pair of dates (as a date input sends them) as the half-open period of event
/// time it covers: from the first day's midnight to the midnight after the last (UTC).
fn days(from: &Option<String>, to: &Option<String>) -> Result<Period, ApiError> {
    let day = |name: &str, v: &Option<String>, after: u64| {
        given(v)
            .map(|v| {
                NaiveDate::parse_from_str(&v, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.checked_add_days(chrono::Days::new(after)))
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc())
                    .ok_or_else(|| {
                        bad(format!(
                            "`{name}` must be a date like 2024-01-31; got `{v}`"
                        ))
                    })
            })
            .transpose()
    };
    Ok(Period {
        from: day("from", from, 0)?,
        to: day("to", to, 1)?,
    })
}

/// One page of a list: where it is, and links to its neighbours.
pub(crate) struct Pager {
    pub summary: String,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// `link(offset)` is the list's address at another offset.
    fn new(total: i64, offset: i64, shown: usize, link: impl Fn(i64) -> String) -> Pager {
        let summary = if total == 0 {
            "Nothing to show.".to_string()
        } else {
            // Saturating: the offset comes from the address, and may be anything.
            let last = offset.saturating_add(shown as i64);
            format!("{}–{last} of {total}", offset.saturating_add(1).min(last))
        };
        let next = offset.saturating_add(PAGE_ROWS);
        Pager {
            summary,
            prev: (offset > 0).then(|| link(offset.saturating_sub(PAGE_ROWS).max(0))),
            next: (next < total).then(|| link(next)),
        }
    }
}

/// An option of a `<select>`.
pub(crate) struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// "Any" and then each value; the current one selected.
fn choices(values: impl IntoIterator<Item = String>, current: &str) -> Vec<Choice> {
    let any = Choice {
        value: String::new(),
        label: "any".to_string(),
        selected: current.is_empty(),
    };
    std::iter::once(any)
        .chain(options(values, current))
        .collect()
}

/// Each value; the current one selected.
fn options(values: impl IntoIterator<Item = String>, current: &str) -> Vec<Choice> {
    values
        .into_iter()
        .map(|v| Choice {
            selected: v == current,
            label: v.clone(),
            value: v,
        })
        .collect()
}

/// A parameter naming a value of one of the API's enums (a sort order), if given.
fn named<T: serde::de::DeserializeOwned>(name: &str, v: &str) -> Result<Option<T>, ApiError> {
    use serde::de::IntoDeserializer;
    if v.is_empty() {
        return Ok(None);
    }
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> = v.into_deserializer();
    T::deserialize(de)
        .map(Some)
        .map_err(|e| bad(format!("`{name}`: {e}")))
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
}

/// An event or wall-clock time as pages print it.
pub(crate) fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub(crate) fn maybe_when(t: &Option<DateTime<Utc>>) -> String {
    t.as_ref().map_or_else(|| "—".to_string(), when)
}

/// A duration in the two largest units that matter: `45s`, `12m`, `3h 05m`, `2d 4h`.
pub(crate) fn span(seconds: &f64) -> String {
    let s = if seconds.is_finite() {
        seconds.max(0.0).round() as i64
    } else {
        0
    };
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

pub(crate) fn maybe_span(seconds: &Option<f64>) -> String {
    seconds.as_ref().map_or_else(|| "—".to_string(), span)
}

/// How long ago `t` was, as of `now`.
pub(crate) fn ago(t: &DateTime<Utc>, now: &DateTime<Utc>) -> String {
    span(&((*now - *t).num_seconds() as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_say_them() {
        assert_eq!(span(&42.0), "42s");
        assert_eq!(span(&(12.0 * 60.0)), "12m");
        assert_eq!(span(&(3.0 * 3600.0 + 5.0 * 60.0)), "3h 05m");
        assert_eq!(span(&(2.0 * 86_400.0 + 4.0 * 3600.0)), "2d 4h");
        assert_eq!(span(&f64::NAN), "0s");
        assert_eq!(maybe_span(&None), "—");
    }

    #[test]
    fn dates_cover_whole_days_and_bad_ones_are_named() {
        let p = days(&Some("2024-01-30".into()), &Some("2024-01-31".into())).unwrap();
        assert_eq!(p.from.unwrap().to_rfc3339(), "2024-01-30T00:00:00+00:00");
        assert_eq!(p.to.unwrap().to_rfc3339(), "2024-02-01T00:00:00+00:00");
        let none = days(&Some(" ".into()), &None).unwrap();
        assert!(none.from.is_none() && none.to.is_none());
        let e = days(&Some("31/01/2024".into()), &None).unwrap_err();
        assert!(e.message().contains("`from`"), "{}", e.message());
    }

    #[test]
    fn pages_link_to_their_neighbours() {
        let p = Pager::new(120, 50, 50, |o| format!("?offset={o}"));
        assert_eq!(p.summary, "51–100 of 120");
        assert_eq!(p.prev.as_deref(), Some("?offset=0"));
        assert_eq!(p.next.as_deref(), Some("?offset=100"));
        let last = Pager::new(120, 100, 20, |o| format!("?offset={o}"));
        assert!(last.next.is_none());
        assert_eq!(
            Pager::new(0, 0, 0, |_| String::new()).summary,
            "Nothing to show."
        );
        let far = Pager::new(120, i64::MAX, 0, |o| format!("?offset={o}"));
        assert!(
            far.next.is_none(),
            "an offset past the end, however far, has no next page"
        );
        assert_eq!(far.prev, Some(format!("?offset={}", i64::MAX - PAGE_ROWS)));
    }

    #[test]
    fn ids_are_encoded_as_one_path_segment_and_queries_skip_empty_values() {
        assert_eq!(segment("cards:1"), "cards%3A1");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(
            query([("q", "a&b"), ("team", ""), ("offset", "50")]),
            "q=a%26b&offset=50"
        );
    }
}

//! Logging in with a token and out again. A login makes a session (its secret goes in the
//! HttpOnly, SameSite=Strict cookie; only its hash is stored) with a CSRF secret of its own.

use askama::Template;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{render, Layout};
use crate::auth::{self, SESSION_COOKIE};
use crate::{ApiError, AppState};

/// How long a dashboard session lasts.
const SESSION_HOURS: i64 = 12;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    refused: bool,
}

fn login_form(status: StatusCode, refused: bool) -> Response {
    let page = LoginPage {
        layout: Layout::anonymous("Log in"),
        refused,
    };
    render(status, &page)
}

pub(crate) async fn login_page() -> Response {
    login_form(StatusCode::OK, false)
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
        return Ok(login_form(StatusCode::UNAUTHORIZED, true));
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

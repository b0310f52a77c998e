//! Who is asking: a bearer token (`Authorization: Bearer svl_…`), or the dashboard's session
//! cookie made by logging in with one. Tokens and sessions are looked up by the SHA-256 of
//! their secret; the secrets themselves are never stored.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use sevloop_core::access::{Need, Role};
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "sevloop_session";
/// Unsafe requests made with the session cookie must repeat the session's CSRF secret here.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// ... or, for the dashboard's HTML forms (which cannot send headers), in this form field.
pub const CSRF_FIELD: &str = "csrf";

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Actor {
    pub token_id: String,
    pub role: Role,
    /// The session's CSRF secret, when the caller came with the session cookie.
    pub csrf: Option<String>,
}

impl Actor {
    /// Refuses (403) what the caller's role may not do.
    pub fn need(&self, need: Need) -> Result<(), ApiError> {
        if self.role.allows(need) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the {} role may not do this", self.role.actor()),
        ))
    }
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let actor = identify(parts, s).await?;
        if let Some(csrf) = &actor.csrf {
            let given = header_value(parts, CSRF_HEADER).unwrap_or_default();
            if !is_safe(&parts.method) && !same_secret(given, csrf) {
                return Err(csrf_refused(&format!(
                    "a request made with the session cookie needs the `{CSRF_HEADER}` header"
                )));
            }
        }
        Ok(actor)
    }
}

/// The caller, by bearer token or session cookie, before any CSRF check.
async fn identify(parts: &Parts, s: &AppState) -> Result<Actor, ApiError> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthenticated("use `Authorization: Bearer <token>`"))?;
        let token = s
            .store
            .token_by_secret(&hash(secret.trim()))
            .await?
            .ok_or_else(|| unauthenticated("the token is unknown or revoked"))?;
        return Ok(Actor {
            token_id: token.token_id,
            role: token.role,
            csrf: None,
        });
    }
    let Some(session) = cookie(parts, SESSION_COOKIE) else {
        return Err(unauthenticated(
            "a token is required: `Authorization: Bearer <token>`",
        ));
    };
    let (token, csrf) = s
        .store
        .session(&hash(session), chrono::Utc::now())
        .await?
        .ok_or_else(|| unauthenticated("the session has ended; log in again"))?;
    Ok(Actor {
        token_id: token.token_id,
        role: token.role,
        csrf: Some(csrf),
    })
}

/// A dashboard form post: who sent it (by session cookie) and its fields, accepted only when
/// its `csrf` field holds the session's CSRF secret.
pub struct SessionForm {
    pub actor: Actor,
    pub fields: FormFields,
}

impl FromRequest<AppState> for SessionForm {
    type Rejection = ApiError;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let actor = identify(&parts, s).await?;
        let body = Bytes::from_request(Request::from_parts(parts, body), s)
            .await
            .map_err(|r| ApiError::new(r.status(), "invalid_body", r.body_text()))?;
        let fields = FormFields::parse(&body)?;
        let given = fields.one(CSRF_FIELD).unwrap_or_default();
        if !actor.csrf.as_deref().is_some_and(|c| same_secret(given, c)) {
            return Err(csrf_refused(
                "the form is stale or came from elsewhere; reload the page and try again",
            ));
        }
        Ok(SessionForm { actor, fields })
    }
}

/// The fields of a form (`application/x-www-form-urlencoded`), repeated names kept.
#[derive(Debug)]
pub struct FormFields(Vec<(String, String)>);

impl FormFields {
    fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let fields: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        if fields
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "a form field must not contain NUL characters",
            ));
        }
        Ok(FormFields(fields))
    }

    /// The first value of a field.
    pub fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a field (checkboxes repeat it).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Whether a secret the caller gave is the expected one, in time that does not depend on where
/// they first differ (their length is no secret: every CSRF secret has the same).
fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

fn csrf_refused(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "csrf", message)
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn header_value<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The value of one cookie of the request.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// SHA-256, hex: how token and session secrets are looked up.
pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random secret with a prefix saying what it is (`svl_` for tokens).
pub fn secret(prefix: &str) -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{a}{b}")
}

/// A new token: its public id and its secret (shown once; only its hash is kept).
pub fn new_token() -> (String, String) {
    let id = format!("tok-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    (id, secret("svl_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_prefixed_and_hashes_are_stable() {
        let (id, a) = new_token();
        let (_, b) = new_token();
        assert!(id.starts_with("tok-") && a.starts_with("svl_") && a.len() == 68);
        assert_ne!(a, b);
        assert_eq!(hash(&a), hash(&a));
        assert_eq!(hash(&a).len(), 64);
    }

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        let a = secret("");
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a[..a.len() - 1], &a));
        assert!(!same_secret("", &a));
        let mut other = a.clone().into_bytes();
        other[0] ^= 1;
        assert!(!same_secret(&String::from_utf8(other).unwrap(), &a));
    }

    #[test]
    fn form_fields_keep_repeated_names_and_refuse_nul() {
        let f = FormFields::parse(b"csrf=a%2Bb&ids=1&ids=2&note=x+y").unwrap();
        assert_eq!(f.one("csrf"), Some("a+b"));
        assert_eq!(f.all("ids").collect::<Vec<_>>(), vec!["1", "2"]);
        assert_eq!(f.one("note"), Some("x y"));
        assert_eq!(f.one("missing"), None);
        assert!(FormFields::parse(b"note=a%00b").is_err());
    }

    #[test]
    fn a_cookie_is_found_among_others() {
        let req = axum::http::Request::builder()
            .header(header::COOKIE, "a=1; sevloop_session=abc ; b=2")
            .body(())
            .unwrap();
        let (parts, _) = req.into_parts();
        assert_eq!(cookie(&parts, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&parts, "missing"), None);
    }
}

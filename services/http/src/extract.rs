//! Extractors whose rejections answer in the API's one error shape (`{code, message}`), naming
//! what is wrong, instead of axum's plain-text rejections.
//!
//! They also refuse NUL characters in ids and query strings up front: PostgreSQL cannot store
//! them in text, and no id or filter value of sevloop contains one.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Json, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// A JSON request body, read by the handler once it has checked the caller's role: a caller
/// who may not make the request is told so (403) whatever they sent.
pub struct Body<T>(Result<T, ApiError>);

impl<T> Body<T> {
    /// The body, or the error that names what is wrong with it.
    pub fn parsed(self) -> Result<T, ApiError> {
        self.0
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(Body(match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(value),
            Err(rejection) => Err(body_error(rejection.status(), rejection.body_text())),
        }))
    }
}

/// A request body as bytes (the ticket intake parses it itself, to name each bad ticket).
pub struct Raw(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Raw {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(Raw)
            .map_err(|rejection| body_error(rejection.status(), rejection.body_text()))
    }
}

fn body_error(status: StatusCode, message: String) -> ApiError {
    let code = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        _ => "invalid_body",
    };
    ApiError::new(status, code, message)
}

/// The query string, as typed parameters.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if parts.uri.query().is_some_and(has_encoded_nul) {
            return Err(invalid("the query string must not contain NUL characters"));
        }
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Params(value))
            .map_err(|rejection| invalid(rejection.body_text()))
    }
}

/// The one id in the path (`/sevs/{id}`, `/tickets/{id}`, ...).
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| invalid(rejection.body_text()))?;
        if id.chars().any(char::is_control) {
            return Err(invalid("an id must not contain control characters"));
        }
        Ok(Id(id))
    }
}

fn has_encoded_nul(query: &str) -> bool {
    query.to_ascii_lowercase().contains("%00")
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body as HttpBody;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Reason {
        #[allow(dead_code)]
        reason: String,
    }

    fn request(content_type: &str, body: &str) -> Request {
        Request::builder()
            .method("POST")
            .uri("/x")
            .header("content-type", content_type)
            .body(HttpBody::from(body.to_string()))
            .expect("request")
    }

    async fn body_error(content_type: &str, body: &str) -> (StatusCode, String) {
        let Ok(extracted) = Body::<Reason>::from_request(request(content_type, body), &()).await
        else {
            panic!("the extractor itself never rejects: the handler reads the body later");
        };
        let Err(e) = extracted.parsed() else {
            panic!("{body} was accepted");
        };
        (e.status(), e.message().to_string())
    }

    #[tokio::test]
    async fn body_rejections_say_what_is_wrong_in_the_error_shape() {
        let (status, message) = body_error("application/json", "{}").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(message.contains("missing field `reason`"), "{message}");
        let (status, _) = body_error("application/json", "{").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = body_error("text/plain", "{\"reason\":\"x\"}").await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn encoded_nul_is_found_in_either_case() {
        assert!(has_encoded_nul("team=a%00b"));
        assert!(has_encoded_nul("team=%00"));
        assert!(!has_encoded_nul("team=a%200"));
    }
}

//! Every error answer of the HTTP API, rendered in one place.
//!
//! An [`HttpError`] is a status, a machine-readable `error` code, a `message` for a person,
//! and, where the fault is in the input, where: the NDJSON `line`, the JSON array `index`,
//! the dotted `field` (or the query parameter, or the header). Its body is always
//!
//! ```json
//! {"error": "invalid_event", "message": "...", "line": 2, "field": "event.http.request.method"}
//! ```
//!
//! with the location members only when known (`docs/http-api.md`, "Errors"). Handlers return
//! `Result<_, HttpError>` and use `?`; nobody builds an error body by hand.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct HttpError {
    pub status: StatusCode,
    /// Boxed: error answers are rare, and a small `Err` keeps every `Result` small.
    pub body: Box<ErrorBody>,
}

/// The JSON body of an error answer, and the headers that go with it.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    pub error: &'static str,
    pub message: String,
    /// 1-based line of an NDJSON body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 0-based index in a JSON array body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The offending field (dotted path), query parameter or header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds after which a retry may succeed (`Retry-After`), for 503s.
    #[serde(skip)]
    pub retry_after: Option<u32>,
    /// The `WWW-Authenticate` challenge, for 401s.
    #[serde(skip)]
    pub challenge: Option<&'static str>,
}

impl HttpError {
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            body: Box::new(ErrorBody {
                error,
                message: message.into(),
                line: None,
                index: None,
                field: None,
                retry_after: None,
                challenge: None,
            }),
        }
    }

    /// 400: the request itself is wrong.
    pub fn bad_request(error: &'static str, message: impl Into<String>) -> Self {
        HttpError::new(StatusCode::BAD_REQUEST, error, message)
    }

    /// 404: what was asked for does not exist.
    pub fn not_found(error: &'static str, message: impl Into<String>) -> Self {
        HttpError::new(StatusCode::NOT_FOUND, error, message)
    }

    /// 503: the sealer cannot answer now; the client may retry.
    pub fn unavailable(error: &'static str, message: impl Into<String>) -> Self {
        HttpError::new(StatusCode::SERVICE_UNAVAILABLE, error, message)
    }

    /// The offending field, query parameter or header.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.body.field = Some(field.into());
        self
    }

    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.body.retry_after = Some(seconds);
        self
    }

    pub fn challenge(mut self, challenge: &'static str) -> Self {
        self.body.challenge = Some(challenge);
        self
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(&self.body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.body.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(challenge) = self.body.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_body_names_only_what_is_known_and_the_headers_follow() {
        let e = HttpError::unavailable("spool_full", "the store is behind").retry_after(5);
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"error": "spool_full", "message": "the store is behind"})
        );
        let e = HttpError::bad_request("invalid_header", "bad").field("audit-source-seq");
        let body = serde_json::to_value(&e.body).unwrap();
        assert_eq!(body["field"], "audit-source-seq");
        assert!(body.get("line").is_none());
    }
}

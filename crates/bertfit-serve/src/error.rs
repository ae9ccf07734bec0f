//! The server's errors as HTTP answers: every failure is a JSON body `{"error", "error_type"}` with the
//! status of its kind, including the rejections (unknown route, wrong method, too large a body) that the
//! framework would otherwise answer in plain text.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;

/// What went wrong, as TEI's `error_type` names it (plus our own kinds); each kind has one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The body is not JSON, or not the request's shape (400).
    Malformed,
    /// A well-formed request the server cannot answer as asked: an empty batch or text, a text longer
    /// than the model's length without `truncate` (422).
    Validation,
    /// Too large a body or too many inputs in one request (413).
    TooLarge,
    /// Missing or wrong bearer token (401).
    Unauthorized,
    /// No such route (404).
    NotFound,
    /// The route exists but not for this method (405).
    MethodNotAllowed,
    /// Too many requests in flight: retry later (429, with `Retry-After`).
    Overloaded,
    /// The request waited in the queue past `--max-queue-ms` (503).
    QueueTimeout,
    /// The server is shutting down or its model thread stopped (503).
    Unhealthy,
    /// A fault of the server itself (500).
    Backend,
}

impl ErrorKind {
    /// The HTTP status of this kind.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::Malformed => StatusCode::BAD_REQUEST,
            ErrorKind::Validation => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::QueueTimeout | ErrorKind::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Backend => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The kind a framework rejection with `status` stands for.
    pub fn for_status(status: StatusCode) -> ErrorKind {
        match status {
            StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorKind::Malformed,
            StatusCode::UNPROCESSABLE_ENTITY => ErrorKind::Validation,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::TooLarge,
            StatusCode::UNAUTHORIZED => ErrorKind::Unauthorized,
            StatusCode::NOT_FOUND => ErrorKind::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorKind::MethodNotAllowed,
            StatusCode::TOO_MANY_REQUESTS => ErrorKind::Overloaded,
            StatusCode::SERVICE_UNAVAILABLE => ErrorKind::Unhealthy,
            _ => ErrorKind::Backend,
        }
    }

    /// The label of this kind in the `outcome` of the request metrics.
    pub fn outcome(self) -> &'static str {
        match self {
            ErrorKind::Malformed => "malformed",
            ErrorKind::Validation => "validation",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::QueueTimeout => "queue_timeout",
            ErrorKind::Unhealthy => "unhealthy",
            ErrorKind::Backend => "backend",
        }
    }
}

/// An error answer: its kind and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The kind (and so the status).
    pub kind: ErrorKind,
    /// What went wrong, naming the JSON path or input at fault.
    pub message: String,
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    #[schema(example = "inputs[1]: empty text")]
    pub error: String,
    /// The kind of error.
    pub error_type: ErrorKind,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError { kind, message: message.into() }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.outcome())
    }
}

impl std::error::Error for ApiError {}

/// Seconds a client told 429 or 503 should wait before retrying.
pub const RETRY_AFTER_SECS: u32 = 1;

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        json_error(self.kind, self.message)
    }
}

/// The JSON answer of an error, with `Retry-After` on 429/503 and `WWW-Authenticate` on 401.
pub fn json_error(kind: ErrorKind, message: String) -> axum::response::Response {
    let body = serde_json::to_vec(&ErrorBody { error: message, error_type: kind }).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = kind.status();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if matches!(kind.status(), StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    if kind == ErrorKind::Unauthorized {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

/// Rewrites an error answer that is not JSON (a framework rejection in plain text, an empty 404 or 405)
/// into the JSON form, keeping its status and its text as the message.
pub async fn json_errors(resp: axum::response::Response) -> axum::response::Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { text };
    let mut out = json_error(ErrorKind::for_status(status), message);
    *out.status_mut() = status;
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_back_from_its_status() {
        use ErrorKind::*;
        for kind in [Malformed, Validation, TooLarge, Unauthorized, NotFound, MethodNotAllowed, Overloaded, Unhealthy, Backend] {
            assert_eq!(ErrorKind::for_status(kind.status()), kind, "{kind:?}");
        }
        assert_eq!(QueueTimeout.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn error_body_is_json_with_retry_after_when_overloaded() {
        let resp = ApiError::new(ErrorKind::Overloaded, "busy").into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let resp = ApiError::new(ErrorKind::Validation, "bad").into_response();
        assert!(resp.headers().get(header::RETRY_AFTER).is_none());
    }
}

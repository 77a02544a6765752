//! Responses: output negotiation (JSON by default, YAML on
//! `Accept: application/x-yaml`, 406 for an `Accept` naming neither),
//! errors as `{"status": <code>, "return": <message>}` in the negotiated
//! format, and CORS headers when `cors_origin` is set.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use brine_protocol::Value;
use tracing::{error, warn};

use crate::output::{OutputOptions, Outputter};

use super::json;

/// The media types the API answers in, salt-api's `ct_out_map` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `application/json`.
    Json,
    /// `application/x-yaml`.
    Yaml,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Yaml => "application/x-yaml",
        }
    }

    /// `value` in this format.
    pub(crate) fn render(self, value: &Value) -> String {
        match self {
            Format::Json => json::to_string(value),
            Format::Yaml => Outputter::Yaml.render(value, &OutputOptions::default()),
        }
    }
}

/// Picks the format for an `Accept` header as CherryPy's `accept` tool
/// does: the acceptable type with the highest quality, JSON first on a
/// tie; no header, `*/*` or `application/*` give JSON. `None` means 406.
pub(crate) fn negotiate(headers: &HeaderMap) -> Option<Format> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Format::Json);
    };
    if accept.trim().is_empty() {
        return Some(Format::Json);
    }
    let mut best: Option<(f32, Format)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut quality = 1.0f32;
        for param in parts {
            if let Some(q) = param.trim().strip_prefix("q=") {
                quality = q.trim().parse().unwrap_or(0.0);
            }
        }
        if quality <= 0.0 {
            continue;
        }
        let format = match media.as_str() {
            "application/json" | "*/*" | "application/*" => Format::Json,
            "application/x-yaml" => Format::Yaml,
            _ => continue,
        };
        let better = match best {
            None => true,
            Some((q, f)) => {
                quality > q || (quality == q && f == Format::Yaml && format == Format::Json)
            }
        };
        if better {
            best = Some((quality, format));
        }
    }
    best.map(|(_, f)| f)
}

/// `value` as a response in `format` with `status`.
pub(crate) fn reply(format: Format, status: StatusCode, value: &Value) -> Response {
    let mut response = Response::new(Body::from(format.render(value)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
}

/// Why a request failed, with salt-api's status codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiError {
    /// 400: a bad lowstate, bad JSON/YAML, an invalid or disabled client.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no session, an expired one, bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: logged in but not permitted (salt-api answers 401), or a
    /// client address outside `authorized_ips`.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such URL.
    #[error("The path was not found.")]
    NotFound,
    /// 406: an unsupported request `Content-Type` or `Accept`.
    #[error("{0}")]
    NotAcceptable(String),
    /// 413: the body exceeds `max_request_body_size`.
    #[error("Request body of more than {0} bytes")]
    TooLarge(usize),
    /// 500: an unexpected failure; the reason is logged, the client gets
    /// salt-api's generic text.
    #[error("{0}")]
    Internal(String),
    /// 503: the master is not available.
    #[error("{0}")]
    Unavailable(String),
    /// 504: a synchronous call took longer than its timeout.
    #[error("{0}")]
    Timeout(String),
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The error as a response in `format`; 500s log their reason.
    pub(crate) fn into_response_as(self, format: Format) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(reason) => {
                error!(reason = %reason, "REST API request failed unexpectedly");
                "An unexpected error occurred".to_owned()
            }
            other => {
                if status == StatusCode::SERVICE_UNAVAILABLE
                    || status == StatusCode::GATEWAY_TIMEOUT
                {
                    warn!(status = status.as_u16(), reason = %other, "REST API request failed");
                }
                other.to_string()
            }
        };
        let body: Value = [
            ("status", Value::from(i64::from(status.as_u16()))),
            ("return", Value::from(message)),
        ]
        .into_iter()
        .collect();
        let mut response = reply(format, status, &body);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Session"),
            );
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_as(Format::Json)
    }
}

/// The `Access-Control-Allow-Origin` value for a request from `origin`
/// under `cors_origin`: `*` allows any (echoing the origin, as salt-api
/// does, so credentials work), a list allows its members.
pub(crate) fn allowed_origin(cors_origin: &[String], origin: Option<&str>) -> Option<String> {
    if cors_origin.is_empty() {
        return None;
    }
    let any = cors_origin.iter().any(|o| o == "*");
    match origin {
        Some(origin) if any || cors_origin.iter().any(|o| o == origin) => Some(origin.to_owned()),
        None if any => Some("*".to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn accept(value: &str) -> Option<Format> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        negotiate(&headers)
    }

    #[test]
    fn accept_picks_json_or_yaml() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(Format::Json));
        assert_eq!(accept("application/json"), Some(Format::Json));
        assert_eq!(accept("*/*"), Some(Format::Json));
        assert_eq!(accept("application/x-yaml"), Some(Format::Yaml));
        assert_eq!(
            accept("application/x-yaml, application/json;q=0.5"),
            Some(Format::Yaml)
        );
        assert_eq!(
            accept("application/x-yaml, application/json"),
            Some(Format::Json)
        );
        assert_eq!(accept("text/html"), None);
        assert_eq!(accept("application/json;q=0"), None);
    }

    #[test]
    fn cors_origins() {
        let any = vec!["*".to_owned()];
        let one = vec!["https://ui.example".to_owned()];
        assert_eq!(allowed_origin(&[], Some("https://x")), None);
        assert_eq!(
            allowed_origin(&any, Some("https://x")).unwrap(),
            "https://x"
        );
        assert_eq!(allowed_origin(&any, None).unwrap(), "*");
        assert_eq!(
            allowed_origin(&one, Some("https://ui.example")).unwrap(),
            "https://ui.example"
        );
        assert_eq!(allowed_origin(&one, Some("https://evil.example")), None);
    }
}

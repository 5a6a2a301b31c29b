//! The one place where the issuer's [`Error`] becomes an HTTP response: RFC 6749 §5.2 error
//! JSON (with `WWW-Authenticate` on 401s and `Retry-After` on 429 and 503) for the OAuth
//! endpoints, the HTML error page for the person-facing ones, a `303` for errors sent back to
//! the client's redirect URI. Causes go to the log, never to the client. Beside it, the
//! uncacheable JSON responses of the OAuth endpoints ([`no_store_json`], [`token_response`]).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::error::{Error, ErrorCode, Result};
use crate::oauth::tokens::Minted;

#[derive(serde::Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    error_description: &'a str,
}

fn json(status: StatusCode, code: &str, description: &str) -> Response {
    let body = serde_json::to_vec(&Body {
        error: code,
        error_description: description,
    })
    .unwrap_or_else(|_| br#"{"error":"server_error"}"#.to_vec());
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Self::OAuth {
                code,
                description,
                challenge,
            } => {
                let mut res = json(code.status(), code.as_str(), &description);
                if code.status() == StatusCode::UNAUTHORIZED {
                    let value = match (challenge, code) {
                        (Some("Bearer"), _) => format!(
                            "Bearer error=\"{}\", error_description=\"{}\"",
                            code.as_str(),
                            description.replace(['"', '\\'], "'")
                        ),
                        (Some(scheme), _) => format!("{scheme} realm=\"keyway\""),
                        (None, _) => String::new(),
                    };
                    if let Ok(v) = HeaderValue::from_str(&value)
                        && !value.is_empty()
                    {
                        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                    }
                }
                res
            }
            Self::RateLimited {
                description,
                retry_after,
            } => {
                let mut res = json(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::TemporarilyUnavailable.as_str(),
                    &description,
                );
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
                res
            }
            Self::Redirect { location, .. } => redirect(&location),
            Self::Page(page) => super::pages::error_page(&page),
            Self::Unavailable(cause) => {
                tracing::error!(error = %cause, "temporarily unavailable");
                let mut res = json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "the service is temporarily unavailable, try again",
                );
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                res
            }
            Self::Internal(what) => {
                tracing::error!(error = %what, "internal error");
                json(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "")
            }
        }
    }
}

/// A `303 See Other` to `location`, not cached.
pub(crate) fn redirect(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[derive(serde::Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<&'a str>,
}

/// `value` as a JSON response that must not be cached.
pub(crate) fn no_store_json_of<T: serde::Serialize>(value: &T) -> Result<Response> {
    let body = serde_json::to_vec(value).map_err(|e| Error::Internal(e.to_string().into()))?;
    Ok(no_store_json(body))
}

/// A JSON body as a response that must not be cached.
pub(crate) fn no_store_json(body: Vec<u8>) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// The token endpoint's success response (RFC 6749 §5.1) for minted tokens and, if issued,
/// a refresh token.
pub(crate) fn token_response(m: &Minted, refresh: Option<&str>) -> Result<Response> {
    no_store_json_of(&TokenResponse {
        access_token: &m.access,
        token_type: "Bearer",
        expires_in: m.ttl,
        scope: &m.scope,
        refresh_token: refresh,
        id_token: m.id_token.as_deref(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn invalid_client_with_basic_has_challenge() {
        let res = Error::invalid_client(true).into_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"keyway\""
        );
        let res = Error::invalid_client(false).into_response();
        assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn store_failure_is_503() {
        let e = Error::unavailable(std::io::Error::other("db down"));
        assert_eq!(e.into_response().status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}

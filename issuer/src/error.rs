//! The issuer's error type and the one place where errors become HTTP responses.
//!
//! OAuth endpoints answer with RFC 6749 §5.2 error JSON (`error`, `error_description`); the
//! person-facing pages answer with an HTML error page that never reflects request input. Causes
//! (store failures, template errors) go to the log, never to the client.

use std::borrow::Cow;

use axum::response::{Html, IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// `Result` with the issuer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Standard error codes (RFC 6749 §4.1.2.1 and §5.2, RFC 6750, RFC 7591, RFC 8707, OIDC Core).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_client`
    InvalidClient,
    /// `invalid_grant`
    InvalidGrant,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `unsupported_response_type`
    UnsupportedResponseType,
    /// `unsupported_token_type` (RFC 7009)
    UnsupportedTokenType,
    /// `invalid_scope`
    InvalidScope,
    /// `invalid_target` (RFC 8707)
    InvalidTarget,
    /// `access_denied`
    AccessDenied,
    /// `invalid_token` (RFC 6750)
    InvalidToken,
    /// `insufficient_scope` (RFC 6750 §3.1)
    InsufficientScope,
    /// `invalid_redirect_uri` (RFC 7591)
    InvalidRedirectUri,
    /// `invalid_client_metadata` (RFC 7591)
    InvalidClientMetadata,
    /// `login_required` (OIDC)
    LoginRequired,
    /// `consent_required` (OIDC)
    ConsentRequired,
    /// `server_error`
    ServerError,
    /// `temporarily_unavailable`
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::InvalidClient | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::AccessDenied | Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An error shown to a person in the browser (no redirect back to the client is possible).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageError {
    /// HTTP status.
    pub status: StatusCode,
    /// Short title.
    pub title: Cow<'static, str>,
    /// Explanation; built from fixed text and validated values only, never raw input.
    pub message: Cow<'static, str>,
}

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A standard OAuth error for the client.
    #[error("{}: {description}", code.as_str())]
    OAuth {
        /// The code.
        code: ErrorCode,
        /// Human-readable description (fixed text or validated values).
        description: Cow<'static, str>,
        /// `WWW-Authenticate` challenge scheme, for 401s (`Basic` or `Bearer`).
        challenge: Option<&'static str>,
    },
    /// An authorization error sent back to the client's (validated) redirect URI, with `state`
    /// and `iss` (RFC 6749 §4.1.2.1, RFC 9207).
    #[error("{}: {description}", code.as_str())]
    Redirect {
        /// The complete `Location`.
        location: String,
        /// The code (for tests and logs).
        code: ErrorCode,
        /// The description (for logs).
        description: Cow<'static, str>,
    },
    /// A rate limit refused the request: `429 Too Many Requests` (RFC 6585) with `Retry-After`
    /// and the OAuth error `temporarily_unavailable`.
    #[error("rate limited: {description}")]
    RateLimited {
        /// Human-readable description (fixed text).
        description: Cow<'static, str>,
        /// Seconds until the budget that refused the request starts again.
        retry_after: u64,
    },
    /// An error page for a person.
    #[error("{}", .0.title)]
    Page(PageError),
    /// The store is unreachable or failed: nothing was changed, try again.
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A bug or an unexpected failure (template, signing).
    #[error("internal error: {0}")]
    Internal(Cow<'static, str>),
}

impl Error {
    /// An OAuth error.
    pub fn oauth(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self::OAuth {
            code,
            description: description.into(),
            challenge: None,
        }
    }

    /// `invalid_request` with a description.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::oauth(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_client`, with a `Basic` challenge when the client tried HTTP Basic.
    pub fn invalid_client(basic: bool) -> Self {
        Self::OAuth {
            code: ErrorCode::InvalidClient,
            description: "client authentication failed".into(),
            challenge: basic.then_some("Basic"),
        }
    }

    /// `invalid_grant`.
    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::oauth(ErrorCode::InvalidGrant, description)
    }

    /// `invalid_token` for a protected resource (userinfo), with a `Bearer` challenge.
    pub fn invalid_token(description: impl Into<Cow<'static, str>>) -> Self {
        Self::OAuth {
            code: ErrorCode::InvalidToken,
            description: description.into(),
            challenge: Some("Bearer"),
        }
    }

    /// An error page.
    pub fn page(
        status: StatusCode,
        title: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::Page(PageError {
            status,
            title: title.into(),
            message: message.into(),
        })
    }

    /// A store failure.
    pub fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(e))
    }

    /// The OAuth error code, if this is one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::OAuth { code, .. } | Self::Redirect { code, .. } => Some(*code),
            Self::RateLimited { .. } => Some(ErrorCode::TemporarilyUnavailable),
            _ => None,
        }
    }
}

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
            Self::Page(page) => crate::pages::error_page(&page),
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
pub fn redirect(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Turns an [`Html`] page with a status into a response with the issuer's security headers.
pub fn html(status: StatusCode, body: String) -> Response {
    let mut res = (status, Html(body)).into_response();
    crate::pages::secure_headers(res.headers_mut());
    res
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

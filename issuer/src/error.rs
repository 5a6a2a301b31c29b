//! The issuer's error type: what can go wrong while serving a request, as a value. It becomes an
//! HTTP response in one place, `crate::http::response`: OAuth endpoints answer with RFC 6749 §5.2
//! error JSON (`error`, `error_description`); the person-facing pages answer with an HTML error
//! page that never reflects request input. Causes (store failures, template errors) go to the
//! log, never to the client.

use std::borrow::Cow;

use http::StatusCode;

/// `Result` with the issuer's [`Error`].
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Standard error codes (RFC 6749 §4.1.2.1 and §5.2, RFC 6750, RFC 7591, RFC 8707, OIDC Core).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorCode {
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
    /// `temporarily_unavailable`
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
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
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The HTTP status an error with this code is answered with.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::InvalidClient | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::AccessDenied | Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An error shown to a person in the browser (no redirect back to the client is possible).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PageError {
    /// HTTP status.
    pub status: StatusCode,
    /// Short title.
    pub title: Cow<'static, str>,
    /// Explanation; built from fixed text and validated values only, never raw input.
    pub message: Cow<'static, str>,
}

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
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
    pub(crate) fn oauth(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self::OAuth {
            code,
            description: description.into(),
            challenge: None,
        }
    }

    /// `invalid_request` with a description.
    pub(crate) fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::oauth(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_client`, with a `Basic` challenge when the client tried HTTP Basic.
    pub(crate) fn invalid_client(basic: bool) -> Self {
        Self::OAuth {
            code: ErrorCode::InvalidClient,
            description: "client authentication failed".into(),
            challenge: basic.then_some("Basic"),
        }
    }

    /// `invalid_grant`.
    pub(crate) fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::oauth(ErrorCode::InvalidGrant, description)
    }

    /// `invalid_token` for a protected resource (userinfo), with a `Bearer` challenge.
    pub(crate) fn invalid_token(description: impl Into<Cow<'static, str>>) -> Self {
        Self::OAuth {
            code: ErrorCode::InvalidToken,
            description: description.into(),
            challenge: Some("Bearer"),
        }
    }

    /// An error page.
    pub(crate) fn page(
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
    pub(crate) fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(e))
    }

    /// The OAuth error code, if this is one.
    pub(crate) fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::OAuth { code, .. } | Self::Redirect { code, .. } => Some(*code),
            Self::RateLimited { .. } => Some(ErrorCode::TemporarilyUnavailable),
            _ => None,
        }
    }
}

impl From<crate::store::StoreError> for Error {
    /// 503 `temporarily_unavailable` when the store is unavailable, else an internal error.
    fn from(e: crate::store::StoreError) -> Self {
        if e.is_unavailable() {
            Self::unavailable(e)
        } else {
            Self::Internal(format!("store: {e}").into())
        }
    }
}

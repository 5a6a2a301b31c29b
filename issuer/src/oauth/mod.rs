//! The OAuth rules, apart from HTTP: what a grant or an authorization request may do, decided
//! from values (the client, what was granted, what is asked) and answered with typed results, so
//! that each rule is unit-tested without a request or a response. The endpoints
//! (`crate::endpoints`) parse the request, call these rules and turn a [`Refusal`] into the
//! error response.
//!
//! Nothing here names an axum or `http` type, the issuer's state or an endpoint:
//! `tests/tools/layering.py` fails on an `axum::`, `http::`, `hyper::` or `tower::` path (and on
//! `crate::http`, `crate::state`, `crate::endpoints`, `crate::app`) under `issuer/src/oauth/`.
//! What a rule needs of the issuer it is given: a client, the ConnectedApps' registry.
//!
//! The authorization request ([`authorize_request`]: its parameters, the validated request,
//! where the answer goes), one file per grant ([`authorization_code`], [`refresh`],
//! [`client_credentials`]), the rules they share: [`pkce`] (RFC 7636) and [`delegation`] (which
//! clients may obtain a person's token for another app's resource), and what a grant ends in:
//! [`tokens`] (the access and ID tokens' claims, `at_hash`, signing).

use crate::error::{Error, ErrorCode};

pub(crate) mod authorization_code;
pub(crate) mod authorize_request;
pub(crate) mod client_credentials;
pub(crate) mod delegation;
pub(crate) mod pkce;
pub(crate) mod refresh;
pub(crate) mod tokens;

/// A request a rule refuses: the OAuth error code and a fixed description (never request input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The error code.
    pub code: ErrorCode,
    /// Why, for the client's developer.
    pub description: &'static str,
}

impl Refusal {
    /// A refusal with `code`.
    pub(crate) const fn new(code: ErrorCode, description: &'static str) -> Self {
        Self { code, description }
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        Error::oauth(r.code, r.description)
    }
}

//! The browser flow: authorization code with PKCE S256, `state`, `nonce` and `resource`; the
//! callback (state, RFC 9207 `iss`, ID token); the session cookie; refresh once per session;
//! sign-out through the issuer's RP-initiated logout.
//!
//! Sign-in state is bounded: each sign-in in progress has its own login cookie (several tabs
//! can sign in at once), but a new one evicts the oldest beyond [`MAX_PENDING_LOGINS`], and the
//! return path it carries is at most [`MAX_RETURN_PATH`] bytes, so that repeated starts with
//! long URLs never make a cookie a browser drops (over 4 KiB) nor a request head the proxy
//! refuses (431), the sign-out and the callback included.
//!
//! Every step returns values — a [`Redirect`] with the cookies it sets, a [`Failure`], the
//! sign-out page's HTML — and never a response: the pipeline's `respond` turns them
//! into HTTP. What the flow needs of the proxy's state comes as a [`Context`].

use std::time::Duration;

use crate::config::Settings;
use crate::metrics::Metrics;
use oidc::Client as IssuerClient;

mod callback;
mod refresh;
mod sign_out;
mod start;

pub(crate) use callback::callback;
pub(crate) use refresh::Refresher;
pub(crate) use sign_out::{SignOutOrigin, sign_out, sign_out_confirmation, sign_out_origin};
pub(crate) use start::start_login;

/// How long a sign-in may take.
const LOGIN_TTL: u64 = 600;
/// Access-token lifetime assumed when the issuer does not say.
const DEFAULT_TOKEN_TTL: u64 = 300;
/// How long a refresh result is reused by requests that still carry the old cookie.
const REFRESH_REUSE: Duration = Duration::from_secs(60);
/// Most sign-ins in progress per browser (login cookies); a new one evicts the oldest.
pub(crate) const MAX_PENDING_LOGINS: usize = 4;
/// Longest return path kept through a sign-in, in bytes: a login cookie stays under 4 KiB even
/// when JSON doubles every character (`"`). A longer one keeps only its path, or becomes `/`.
pub(crate) const MAX_RETURN_PATH: usize = 1024;

/// What the flow needs of the proxy's state.
#[derive(Clone, Copy)]
pub(crate) struct Context<'a> {
    /// Flags.
    pub(crate) settings: &'a Settings,
    /// The client for the issuer.
    pub(crate) issuer: &'a IssuerClient,
    /// Metrics (refreshes, revocations).
    pub(crate) metrics: &'a Metrics,
    /// The once-per-session refresh gate.
    pub(crate) refresher: &'a Refresher,
}

/// Where the browser goes next, and the `Set-Cookie` values that go with it.
#[derive(Debug, Default)]
pub(crate) struct Redirect {
    /// The `Location`.
    pub(crate) location: String,
    /// `Set-Cookie` values.
    pub(crate) cookies: Vec<String>,
}

fn redirect(location: &str, cookies: Vec<String>) -> Redirect {
    Redirect {
        location: location.to_string(),
        cookies,
    }
}

/// Why a sign-in step ends without a redirect (answered by the pipeline's `respond`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Something the proxy could not do itself (randomness, sealing).
    Internal(&'static str),
    /// The issuer's metadata is unusable.
    IssuerMetadata,
    /// The callback's request is malformed or does not match a sign-in in progress.
    Invalid(&'static str),
    /// The issuer did not sign the person in (`denied`: it said `access_denied`).
    NotSignedIn {
        /// The issuer answered `access_denied`.
        denied: bool,
    },
    /// The issuer's answer to the code exchange was refused.
    Issuer(&'static str),
    /// The person signed in, but may not use this app.
    MayNotSignIn,
}

/// A refused callback: why, and the `Set-Cookie` values that clear its login cookie.
#[derive(Debug)]
pub(crate) struct Refused {
    /// Why.
    pub(crate) why: Failure,
    /// `Set-Cookie` values.
    pub(crate) cookies: Vec<String>,
}

/// The path of the sign-out endpoint, to which the sign-out cookie is scoped.
fn sign_out_path(settings: &Settings) -> String {
    format!("{}/sign_out", settings.proxy_prefix)
}

#[cfg(test)]
mod tests;

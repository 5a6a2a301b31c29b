//! Authorisation: what the caller may do, by the app's access rules ([`contract::access`], the
//! same rules the issuer applies before it issues a token). Public rules and CORS preflights
//! (with `--skip-auth-preflight`) pass without authentication; an authenticated caller passes
//! when its token's client is admitted and the rule for the method and path allows it.

use contract::access::{Caller, Decision};
use http::{HeaderMap, Method};

use super::respond::Refusal;
use crate::app::App;
use crate::config::Settings;
use crate::metrics::Outcome;
use oidc::jwt::Principal;

/// Whether the request passes without authentication, as what: a CORS preflight (Fetch
/// standard: `OPTIONS` with `Origin` and `Access-Control-Request-Method`, which browsers send
/// without credentials) with `--skip-auth-preflight`, or a public rule.
#[inline]
pub(crate) fn unauthenticated(
    settings: &Settings,
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
) -> Option<Outcome> {
    if settings.skip_auth_preflight && is_preflight(method, headers) {
        Some(Outcome::preflight)
    } else if app.cfg.policy.access.is_public(method.as_str(), path) {
        Some(Outcome::public)
    } else {
        None
    }
}

/// Whether a request is a CORS preflight.
fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(http::header::ORIGIN)
        && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// A person's token only from a client this app admits (`delegatedClients`, `dynamicClients`):
/// one issued to another client is not a token for this app, whatever its audience (the issuer
/// refuses to issue it; this holds even against one that did).
pub(crate) fn admits_client(app: &App, who: &Principal) -> Result<(), Refusal> {
    let access = &app.cfg.policy.access;
    let client = who.client.as_deref().unwrap_or("");
    if who.machine_client.is_some() || access.admits_client(&app.cfg.client_id, client) {
        return Ok(());
    }
    tracing::info!(
        client = who.client.as_deref().unwrap_or("-"),
        "bearer token refused: issued to a client this app does not admit"
    );
    Err(Refusal::InvalidToken(
        "the access token was issued to a client this app does not admit",
    ))
}

/// Whether the access rules let `who` make a `method` request for the normalised `path`.
pub(crate) fn authorize(
    app: &App,
    method: &str,
    path: &str,
    who: &Principal,
) -> Result<(), Refusal> {
    match decide(app, method, path, who) {
        Decision::Allow => Ok(()),
        Decision::NotAllowed | Decision::MissingGroup => Err(Refusal::Denied),
        Decision::InsufficientScope { required } => Err(Refusal::InsufficientScope(required)),
    }
}

fn decide(app: &App, method: &str, path: &str, who: &Principal) -> Decision {
    // A client's own token: only `allowedClients` admits it (contract::access).
    if let Some(client) = who.machine_client.as_deref() {
        return app
            .cfg
            .policy
            .access
            .authorize_client(method, path, client, &who.scopes);
    }
    let caller = Caller {
        email: who.email.as_deref(),
        groups: &who.groups,
        scopes: &who.scopes,
    };
    app.cfg.policy.access.authorize(method, path, &caller)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::is_preflight;
    use http::{HeaderMap, Method};

    #[test]
    fn preflight_needs_options_origin_and_request_method() {
        let mut h = HeaderMap::new();
        h.insert("origin", "https://other.example".parse().unwrap());
        assert!(!is_preflight(&Method::OPTIONS, &h), "no request method");
        h.insert("access-control-request-method", "POST".parse().unwrap());
        assert!(is_preflight(&Method::OPTIONS, &h));
        assert!(!is_preflight(&Method::GET, &h), "not OPTIONS");
        h.remove("origin");
        assert!(!is_preflight(&Method::OPTIONS, &h), "no Origin");
    }
}

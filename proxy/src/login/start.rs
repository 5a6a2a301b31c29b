//! Starting a sign-in: the login cookie (state, nonce, PKCE verifier, the way back) and the
//! redirect to the authorization endpoint.

use crate::app::App;
use crate::clock::now;
use crate::path::is_safe_return_path;
use crate::session::{LoginState, Purpose};
use oidc::Provider;

use super::{Failure, LOGIN_TTL, MAX_PENDING_LOGINS, MAX_RETURN_PATH, Redirect, redirect};

/// Where a sign-in returns to: a same-origin path of at most [`MAX_RETURN_PATH`] bytes. A longer
/// one loses its query (a path alone of the same origin is as safe), and failing that is `/`.
pub(super) fn return_path(to: &str) -> &str {
    if !is_safe_return_path(to) {
        return "/";
    }
    if to.len() <= MAX_RETURN_PATH {
        return to;
    }
    match to.split(['?', '#']).next() {
        Some(path) if path.len() <= MAX_RETURN_PATH && is_safe_return_path(path) => path,
        _ => "/",
    }
}

/// `Set-Cookie` values deleting the login cookies a new sign-in must not keep beside it: those
/// that do not open (tampered, another key) or have expired, and all but the newest
/// `MAX_PENDING_LOGINS - 1` of the others, so that with the new one at most
/// [`MAX_PENDING_LOGINS`] remain.
fn evict_logins(app: &App, pending: &[(String, String)], now: u64) -> Vec<String> {
    let mut live: Vec<(u64, usize, &str)> = Vec::new();
    let mut stale: Vec<&str> = Vec::new();
    for (i, (name, sealed)) in pending.iter().enumerate() {
        match app.open::<LoginState>(Purpose::Login, sealed, now) {
            Some((login, _)) if login.exp > now => live.push((login.exp, i, name)),
            _ => stale.push(name),
        }
    }
    // Newest first: every login lives LOGIN_TTL, so a later expiry is a later start; within a
    // second, the later in the `Cookie` header (browsers list older cookies first, RFC 6265
    // section 5.4).
    live.sort_by_key(|&(exp, i, _)| std::cmp::Reverse((exp, i)));
    stale.extend(
        live.iter()
            .skip(MAX_PENDING_LOGINS.saturating_sub(1))
            .map(|(_, _, n)| *n),
    );
    stale.sort_unstable();
    stale.dedup();
    stale
        .into_iter()
        .map(|n| app.names.clear_cookie(n))
        .collect()
}

/// Sends the browser to the authorization endpoint, remembering state, nonce, PKCE verifier and
/// the (same-origin) path to return to in the sealed login cookie; `pending` are the login
/// cookies the request carried (the oldest are evicted, see [`MAX_PENDING_LOGINS`]).
pub(crate) fn start_login(
    app: &App,
    provider: &Provider,
    prompt: Option<&str>,
    return_to: &str,
    pending: &[(String, String)],
) -> Result<Redirect, Failure> {
    let to = return_path(return_to);
    let (Some(state), Some(nonce), Some(verifier)) = (
        app.sealer.random(32),
        app.sealer.random(32),
        app.sealer.random(32),
    ) else {
        return Err(Failure::Internal("randomness unavailable"));
    };
    let login = LoginState {
        state: state.clone(),
        nonce: nonce.clone(),
        verifier: verifier.clone(),
        to: to.to_string(),
        exp: now() + LOGIN_TTL,
    };
    let Some(sealed) = app.sealer.seal(Purpose::Login, &login) else {
        return Err(Failure::Internal("cannot seal state"));
    };
    let cfg = &app.cfg;
    let Ok(mut url) = url::Url::parse(&provider.metadata.authorization_endpoint) else {
        return Err(Failure::IssuerMetadata);
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code");
        q.append_pair("client_id", &cfg.client_id);
        q.append_pair("redirect_uri", &cfg.redirect_uri);
        q.append_pair("scope", &cfg.request_scopes);
        q.append_pair("state", &state);
        q.append_pair("nonce", &nonce);
        q.append_pair("code_challenge", &oidc::pkce::challenge(&verifier));
        q.append_pair("code_challenge_method", "S256");
        q.append_pair("resource", &cfg.resource);
        if let Some(p) = prompt {
            q.append_pair("prompt", p);
        }
    }
    let Some(name) = app.names.login_for(&state) else {
        return Err(Failure::Internal("bad state"));
    };
    let mut cookies = evict_logins(app, pending, now());
    cookies.push(app.names.set_cookie(&name, &sealed, Some(LOGIN_TTL)));
    Ok(redirect(url.as_str(), cookies))
}

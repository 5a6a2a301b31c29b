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
//! sign-out page's HTML — and never a response: the pipeline's own endpoints and its `reject`
//! turn them into HTTP. What the flow needs of the proxy's state comes as a [`Context`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderValue, header};
use tokio::sync::OnceCell;

use crate::app::App;
use crate::clock::now;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::path::is_safe_return_path;
use crate::session::{CHUNK, LoginState, Purpose, RequestCookies, Session, SignOutHint, ct_eq};
use oidc::jwt::{self, IdTokenCheck, Principal};
use oidc::{Client as IssuerClient, Provider, TokenResponse};

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

/// Why a sign-in step ends without a redirect (answered by the pipeline's `reject`).
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

/// Where a sign-in returns to: a same-origin path of at most [`MAX_RETURN_PATH`] bytes. A longer
/// one loses its query (a path alone of the same origin is as safe), and failing that is `/`.
fn return_path(to: &str) -> &str {
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

/// Query parameters of the callback.
#[derive(Debug, Default)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// A callback that signs no one in.
fn refused(clear: &[String], why: Failure) -> (Result<Redirect, Refused>, Option<Principal>) {
    let cookies = clear.to_vec();
    (Err(Refused { why, cookies }), None)
}

/// The redirect URI: checks state (constant time) and `iss`, exchanges the code with the PKCE
/// verifier, validates the ID token (nonce), checks who may sign in, and sets the session.
pub(crate) async fn callback(
    ctx: Context<'_>,
    app: &App,
    provider: &Provider,
    query: Option<&str>,
    cookies: &RequestCookies<'_>,
) -> (Result<Redirect, Refused>, Option<Principal>) {
    let mut p = CallbackParams::default();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let slot = match k.as_ref() {
            "code" => &mut p.code,
            "state" => &mut p.state,
            "iss" => &mut p.iss,
            "error" => &mut p.error,
            _ => continue,
        };
        if slot.is_some() {
            return refused(&[], Failure::Invalid("repeated parameter"));
        }
        *slot = Some(v.into_owned());
    }
    let Some(state) = p.state.as_deref() else {
        return refused(&[], Failure::Invalid("state missing"));
    };
    // The login cookie is named after the state, so several sign-ins can be in progress.
    let name = app.names.login_for(state);
    let sealed = name
        .as_ref()
        .and_then(|n| cookies.logins.iter().find(|(k, _)| k == n))
        .map(|(_, v)| v.as_str());
    let clear: Vec<String> = match (&name, sealed) {
        (Some(n), Some(_)) => vec![app.names.clear_cookie(n)],
        _ => Vec::new(),
    };
    let Some(sealed) = sealed else {
        let why = if cookies.logins.is_empty() {
            "sign-in state missing or expired; start again"
        } else {
            "state mismatch"
        };
        return refused(&clear, Failure::Invalid(why));
    };
    let t = now();
    let login: Option<LoginState> = app
        .open(Purpose::Login, sealed, t)
        .map(|(l, _)| l)
        .filter(|l: &LoginState| l.exp > t);
    let Some(login) = login else {
        return refused(
            &clear,
            Failure::Invalid("sign-in state missing or expired; start again"),
        );
    };
    if !ct_eq(state.as_bytes(), login.state.as_bytes()) {
        return refused(&clear, Failure::Invalid("state mismatch"));
    }
    let issuer = provider.metadata.issuer.as_str();
    match p.iss.as_deref() {
        Some(iss) if iss != issuer => {
            return refused(&clear, Failure::Invalid("iss mismatch"));
        }
        None if provider
            .metadata
            .authorization_response_iss_parameter_supported =>
        {
            return refused(&clear, Failure::Invalid("iss missing"));
        }
        _ => {}
    }
    if let Some(error) = p.error.as_deref() {
        let denied = error == "access_denied";
        return refused(&clear, Failure::NotSignedIn { denied });
    }
    let Some(code) = p.code.as_deref() else {
        return refused(&clear, Failure::Invalid("code missing"));
    };
    let cfg = &app.cfg;
    let tokens = ctx
        .issuer
        .token(
            &provider.metadata,
            &cfg.client_id,
            cfg.client_secret.as_deref(),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &cfg.redirect_uri),
                ("code_verifier", &login.verifier),
                ("resource", &cfg.resource),
            ],
        )
        .await;
    let tokens = match tokens {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "code exchange failed");
            return refused(&clear, Failure::Issuer("the code exchange failed"));
        }
    };
    let Some(id_token) = tokens.id_token.as_deref() else {
        return refused(&clear, Failure::Issuer("the issuer returned no ID token"));
    };
    let keys = provider.keys();
    let check = IdTokenCheck {
        issuer,
        client_id: &cfg.client_id,
        nonce: Some(&login.nonce),
        leeway: ctx.settings.clock_skew,
    };
    let who = match jwt::validate_id_token(id_token, &keys, &check) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(reason = %e, "ID token refused");
            return refused(&clear, Failure::Issuer("the ID token is invalid"));
        }
    };
    let who = Principal {
        scopes: granted_scopes(&tokens, &cfg.request_scopes),
        ..who
    };
    if !cfg
        .policy
        .access
        .may_sign_in(who.email.as_deref(), &who.groups)
    {
        let cookies = clear.clone();
        let why = Failure::MayNotSignIn;
        return (Err(Refused { why, cookies }), Some(who));
    }
    let Some(sid) = app.sealer.random(16) else {
        return refused(&clear, Failure::Internal("randomness unavailable"));
    };
    let t = now();
    let session = Session {
        sid,
        who: who.clone(),
        at: ctx
            .settings
            .pass_access_token
            .then(|| tokens.access_token.clone()),
        rt: tokens.refresh_token.clone(),
        exp: t + tokens.expires_in.unwrap_or(DEFAULT_TOKEN_TTL),
        end: t + ctx.settings.session_lifetime.as_secs(),
    };
    let Some(sealed) = app.sealer.seal(Purpose::Session, &session) else {
        return refused(&clear, Failure::Internal("cannot seal session"));
    };
    let max_age = session.end.saturating_sub(t);
    let mut cookies_out = app
        .names
        .session_cookies(&sealed, max_age, &cookies.presence);
    cookies_out.push(signout_cookie(
        ctx.settings,
        app,
        &session.sid,
        id_token,
        max_age,
    ));
    cookies_out.extend(clear.iter().cloned());
    let to = if is_safe_return_path(&login.to) {
        login.to.as_str()
    } else {
        "/"
    };
    (Ok(redirect(to, cookies_out)), Some(who))
}

/// The path of the sign-out endpoint, to which the sign-out cookie is scoped.
fn sign_out_path(settings: &Settings) -> String {
    format!("{}/sign_out", settings.proxy_prefix)
}

/// The sign-out cookie of a new session: its ID token, sealed, for the sign-out's
/// `id_token_hint`. Scoped to the sign-out endpoint, it costs the other requests nothing (neither
/// bytes nor a decryption). When it would not fit one cookie (an ID token listing very many
/// groups) an older one is deleted instead, and the sign-out names the client alone.
fn signout_cookie(
    settings: &Settings,
    app: &App,
    sid: &str,
    id_token: &str,
    max_age: u64,
) -> String {
    let path = sign_out_path(settings);
    let hint = SignOutHint {
        sid: sid.to_string(),
        id_token: id_token.to_string(),
    };
    match app.sealer.seal(Purpose::SignOut, &hint) {
        Some(sealed) if sealed.len() <= CHUNK => app.names.signout_cookie(&sealed, max_age, &path),
        _ => app.names.signout_cookie("", 0, &path),
    }
}

fn granted_scopes(tokens: &TokenResponse, requested: &str) -> Vec<String> {
    tokens
        .scope
        .as_deref()
        .unwrap_or(requested)
        .split_ascii_whitespace()
        .map(str::to_string)
        .collect()
}

/// Where a sign-out request comes from, by Fetch metadata (`Sec-Fetch-Site`) and `Origin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignOutOrigin {
    /// The proxy's own origin (a form or link on the tool's pages), or typed by the person.
    Own,
    /// Another origin, or nothing says (a GET from an old browser or a non-browser client).
    Unknown,
    /// Another origin says so.
    Foreign,
}

/// Classifies a sign-out request. A POST counts as the proxy's own when `Sec-Fetch-Site` is
/// `same-origin`, or, without Fetch metadata, when `Origin` is the proxy's origin. A GET also
/// when `Sec-Fetch-Site` is `none` (typed, bookmarked); a GET without Fetch metadata is
/// `Unknown` (`Origin` is not sent on same-origin GET navigations), and so are a HEAD and a
/// browser's prefetch (`Sec-Purpose`, `Purpose`), which must not sign anyone out.
pub(crate) fn sign_out_origin(
    method: &http::Method,
    headers: &http::HeaderMap,
    own_origin: &str,
) -> SignOutOrigin {
    let origin = headers.get(header::ORIGIN).map(HeaderValue::as_bytes);
    if origin.is_some_and(|o| o != own_origin.as_bytes()) {
        return SignOutOrigin::Foreign;
    }
    if method == http::Method::HEAD
        || headers.contains_key("sec-purpose")
        || headers.contains_key("purpose")
    {
        return SignOutOrigin::Unknown;
    }
    let get = method == http::Method::GET;
    match headers.get("sec-fetch-site").map(HeaderValue::as_bytes) {
        Some(b"same-origin") => SignOutOrigin::Own,
        Some(b"none") if get => SignOutOrigin::Own,
        Some(_) => SignOutOrigin::Foreign,
        None if !get && origin.is_some() => SignOutOrigin::Own,
        None => SignOutOrigin::Unknown,
    }
}

/// The same-origin `rd` path of a sign-out request, else `/`.
fn sign_out_return(query: Option<&str>) -> String {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "rd")
        .map(|(_, v)| v.into_owned())
        .filter(|v| is_safe_return_path(v))
        .unwrap_or_else(|| "/".into())
}

/// The page (HTML) a sign-out GET of unknown or foreign origin gets: a button that POSTs the sign-out
/// from the proxy's origin, so that no other site can sign a person out (and revoke their
/// tokens) with a link or an image.
pub(crate) fn sign_out_confirmation(prefix: &str, query: Option<&str>) -> String {
    let rd: String =
        url::form_urlencoded::byte_serialize(sign_out_return(query).as_bytes()).collect();
    let action = html_escape(&format!("{prefix}/sign_out?rd={rd}"));
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign out</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head><body>\
         <form method=\"post\" action=\"{action}\"><p>Sign out of this app?</p>\
         <button type=\"submit\">Sign out</button></form></body></html>"
    )
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Signs out (the caller has checked that the request comes from the proxy's origin): revokes
/// the session's refresh token at the issuer's RFC 7009 `revocation_endpoint` when it has one
/// (a failure is logged and does not stop the sign-out), clears the session, sign-out and login
/// cookies, and continues to the issuer's RP-initiated logout with the session's ID token as
/// `id_token_hint` (so that the issuer ends exactly that session without asking) and
/// `client_id`, or to a same-origin `rd` path when the issuer has none.
pub(crate) async fn sign_out(
    ctx: Context<'_>,
    app: &App,
    provider: Option<&Provider>,
    query: Option<&str>,
    cookies: &RequestCookies<'_>,
) -> Redirect {
    let t = now();
    let session: Option<Session> = cookies
        .session
        .as_deref()
        .and_then(|sealed| app.open(Purpose::Session, sealed, t))
        .map(|(s, _)| s);
    // The hint only with the session it was kept for.
    let hint = session
        .as_ref()
        .zip(cookies.signout)
        .and_then(|(s, sealed)| {
            app.open::<SignOutHint>(Purpose::SignOut, sealed, t)
                .map(|(h, _)| h)
                .filter(|h| ct_eq(h.sid.as_bytes(), s.sid.as_bytes()))
        })
        .map(|h| h.id_token);
    if let (Some(session), Some(provider)) = (&session, provider) {
        ctx.refresher.forget(&session.sid);
        if let Some(rt) = session.rt.as_deref() {
            let r = ctx
                .issuer
                .revoke_refresh_token(
                    &provider.metadata,
                    &app.cfg.client_id,
                    app.cfg.client_secret.as_deref(),
                    rt,
                )
                .await;
            match r {
                Ok(true) => Metrics::result(&ctx.metrics.token_revocations, true),
                Ok(false) => {}
                Err(e) => {
                    // The error names the endpoint and status, never the token.
                    tracing::warn!(error = %e, "refresh token revocation failed");
                    Metrics::result(&ctx.metrics.token_revocations, false);
                }
            }
        }
    }
    let rd = sign_out_return(query);
    let target = provider
        .and_then(|p| p.metadata.end_session_endpoint.as_deref())
        .and_then(|e| url::Url::parse(e).ok())
        .map(|mut u| {
            {
                let mut q = u.query_pairs_mut();
                if let Some(id_token) = &hint {
                    q.append_pair("id_token_hint", id_token);
                }
                q.append_pair("client_id", &app.cfg.client_id);
                if let Some(post) = &ctx.settings.post_logout_redirect_url {
                    q.append_pair("post_logout_redirect_uri", post);
                }
            }
            u.to_string()
        })
        .unwrap_or(rd);
    let mut clear = app.names.clear_session(&cookies.presence);
    if cookies.signout.is_some() {
        clear.push(
            app.names
                .signout_cookie("", 0, &sign_out_path(ctx.settings)),
        );
    }
    clear.extend(
        cookies
            .logins
            .iter()
            .map(|(n, _)| app.names.clear_cookie(n)),
    );
    redirect(&target, clear)
}

type Slot = Arc<OnceCell<Option<Arc<Session>>>>;

/// Makes sure a session's tokens are refreshed once, however many requests need it at the same
/// time; requests still carrying the old cookie shortly after reuse the result.
#[derive(Default)]
pub(crate) struct Refresher {
    inflight: Mutex<HashMap<String, (Instant, Slot)>>,
}

impl Refresher {
    /// Drops a signed-out session's refresh result, so that a copy of its cookie does not reuse it.
    pub(crate) fn forget(&self, sid: &str) {
        let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(sid);
    }

    /// The refreshed session, or `None` when the session cannot be refreshed (sign in again).
    pub(crate) async fn refresh(
        &self,
        ctx: Context<'_>,
        app: &App,
        provider: &Provider,
        session: &Session,
    ) -> Option<Arc<Session>> {
        session.rt.as_ref()?;
        let slot = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, (t, _)| t.elapsed() < REFRESH_REUSE);
            map.entry(session.sid.clone())
                .or_insert_with(|| (Instant::now(), Arc::new(OnceCell::new())))
                .1
                .clone()
        };
        slot.get_or_init(|| async {
            let r = do_refresh(ctx, app, provider, session).await;
            Metrics::result(&ctx.metrics.session_refreshes, r.is_some());
            r.map(Arc::new)
        })
        .await
        .clone()
    }
}

async fn do_refresh(
    ctx: Context<'_>,
    app: &App,
    provider: &Provider,
    session: &Session,
) -> Option<Session> {
    let cfg = &app.cfg;
    let rt = session.rt.as_deref()?;
    let tokens = ctx
        .issuer
        .token(
            &provider.metadata,
            &cfg.client_id,
            cfg.client_secret.as_deref(),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("resource", &cfg.resource),
            ],
        )
        .await;
    let tokens = match tokens {
        Ok(t) => t,
        Err(e) => {
            tracing::info!(error = %e, "session refresh failed");
            return None;
        }
    };
    let mut who = session.who.clone();
    if let Some(id_token) = tokens.id_token.as_deref() {
        let keys = provider.keys();
        let check = IdTokenCheck {
            issuer: &provider.metadata.issuer,
            client_id: &cfg.client_id,
            nonce: None,
            leeway: ctx.settings.clock_skew,
        };
        match jwt::validate_id_token(id_token, &keys, &check) {
            Ok(fresh) if fresh.sub == session.who.sub => {
                who = Principal {
                    scopes: who.scopes,
                    ..fresh
                };
            }
            Ok(_) => {
                tracing::warn!("refreshed ID token names another subject");
                return None;
            }
            Err(e) => {
                tracing::warn!(reason = %e, "refreshed ID token refused");
                return None;
            }
        }
    }
    if let Some(scope) = tokens.scope.as_deref() {
        who.scopes = scope.split_ascii_whitespace().map(str::to_string).collect();
    }
    let t = now();
    Some(Session {
        sid: session.sid.clone(),
        who,
        at: ctx
            .settings
            .pass_access_token
            .then(|| tokens.access_token.clone()),
        rt: tokens.refresh_token.or_else(|| session.rt.clone()),
        exp: (t + tokens.expires_in.unwrap_or(DEFAULT_TOKEN_TTL)).min(session.end),
        end: session.end,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use clap::Parser as _;

    use http::{Response, StatusCode};

    use super::*;
    use crate::pipeline::own_endpoints::redirect as respond;
    use crate::session::read_cookies;
    use crate::state::Shared;
    use crate::wire::Body;

    /// A proxy for `https://tool.example.com` (Secure cookies) and its app.
    fn shared(dir: &std::path::Path) -> Shared {
        let key = STANDARD.encode([5u8; 32]);
        for (name, content) in [
            ("client-id", "tool"),
            ("issuer-url", "https://id.example.com"),
            ("cookie-secret", key.as_str()),
        ] {
            std::fs::write(dir.join(name), content).unwrap();
        }
        let settings = crate::config::Cli::try_parse_from([
            "keyway-proxy",
            "--upstream-port",
            "9",
            "--config-dir",
            dir.to_str().unwrap(),
            "--external-url",
            "https://tool.example.com",
        ])
        .unwrap()
        .settings()
        .unwrap();
        let app = App::new(crate::config::load_app(&settings).unwrap(), &settings).unwrap();
        Shared::new(settings, app).unwrap()
    }

    fn provider() -> Provider {
        let iss = "https://id.example.com";
        Provider::new(
            serde_json::from_value(serde_json::json!({
                "issuer": iss,
                "authorization_endpoint": format!("{iss}/auth"),
                "token_endpoint": format!("{iss}/token"),
                "jwks_uri": format!("{iss}/jwks"),
                "end_session_endpoint": format!("{iss}/end_session"),
            }))
            .unwrap(),
            oidc::KeySet::default(),
        )
    }

    /// Applies a response's `Set-Cookie` values to a browser's jar, as a browser does.
    fn apply(jar: &mut Vec<(String, String)>, resp: &Response<Body>) {
        for v in resp.headers().get_all(header::SET_COOKIE) {
            let (pair, attrs) = v.to_str().unwrap().split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            jar.retain(|(n, _)| n != name);
            if !attrs.split(';').any(|a| a.trim() == "Max-Age=0") {
                jar.push((name.to_string(), value.to_string()));
            }
        }
    }

    #[test]
    fn sign_in_state_cookies_stay_bounded_in_number_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        let app = shared.app();
        let provider = provider();
        // Return paths at the cap, of a character JSON doubles: the largest login cookies.
        let rd = |i: usize| {
            let head = format!("/page-{i}?q=");
            format!("{head}{}", "\"".repeat(MAX_RETURN_PATH - head.len()))
        };
        let mut jar: Vec<(String, String)> = Vec::new();
        for i in 0..20 {
            let resp = respond(start_login(&app, &provider, None, &rd(i), &jar).unwrap());
            assert_eq!(resp.status(), StatusCode::FOUND);
            apply(&mut jar, &resp);
            assert!(
                jar.len() <= MAX_PENDING_LOGINS,
                "{} login cookies",
                jar.len()
            );
            for (name, value) in &jar {
                // RFC 6265 section 6.1: browsers keep cookies of up to 4096 bytes (name, value
                // and attributes); larger ones are dropped.
                let size = name.len()
                    + value.len()
                    + "; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=600".len();
                assert!(size <= 4096, "a login cookie of {size} bytes");
            }
        }
        // The newest sign-ins are the ones kept, with their whole return paths.
        let mut kept: Vec<String> = jar
            .iter()
            .map(|(_, v)| {
                app.open::<LoginState>(Purpose::Login, v, now())
                    .unwrap()
                    .0
                    .to
            })
            .collect();
        kept.sort();
        let mut newest: Vec<String> = (16..20).map(rd).collect();
        newest.sort();
        assert_eq!(kept, newest);
        // Cookies that do not open or have expired are deleted too.
        jar.push((
            "__Host-_keyway_proxy_login_AAAAAAAAAAAA".into(),
            "junk".into(),
        ));
        let resp = respond(start_login(&app, &provider, None, "/", &jar).unwrap());
        apply(&mut jar, &resp);
        assert!(!jar.iter().any(|(_, v)| v == "junk"));
        assert_eq!(jar.len(), MAX_PENDING_LOGINS);
    }

    #[test]
    fn an_over_long_return_path_keeps_its_path_or_becomes_the_root() {
        assert_eq!(return_path("/a/b?c=d"), "/a/b?c=d");
        let at_cap = format!("/{}", "x".repeat(MAX_RETURN_PATH - 1));
        assert_eq!(return_path(&at_cap), at_cap);
        let long_query = format!("/reports/42?q={}", "x".repeat(MAX_RETURN_PATH));
        assert_eq!(return_path(&long_query), "/reports/42");
        let long_path = format!("/{}", "x".repeat(MAX_RETURN_PATH));
        assert_eq!(return_path(&long_path), "/");
        for open_redirect in [
            "//evil.example/x".to_string(),
            format!("//evil.example/?{}", "x".repeat(2 * MAX_RETURN_PATH)),
            format!("/\\evil.example/?{}", "x".repeat(2 * MAX_RETURN_PATH)),
            format!("https://evil.example/?{}", "x".repeat(2 * MAX_RETURN_PATH)),
        ] {
            assert_eq!(return_path(&open_redirect), "/", "{open_redirect}");
        }
    }

    fn cookie_header(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        let line: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        headers.insert(header::COOKIE, line.join("; ").parse().unwrap());
        headers
    }

    #[tokio::test]
    async fn sign_out_sends_the_id_token_of_its_own_session_only() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        let app = shared.app();
        let provider = provider();
        let t = now();
        let session = |sid: &str| {
            let s = Session {
                sid: sid.into(),
                who: Principal {
                    sub: "alice".into(),
                    ..Default::default()
                },
                at: None,
                rt: None,
                exp: t + 300,
                end: t + 3600,
            };
            app.sealer.seal(Purpose::Session, &s).unwrap()
        };
        let hint = |purpose, sid: &str| {
            let h = SignOutHint {
                sid: sid.into(),
                id_token: "eyJh.eyJz.c2ln".into(),
            };
            app.sealer.seal(purpose, &h).unwrap()
        };
        let sign_out_with = |pairs: Vec<(&str, String)>| {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let headers = cookie_header(&pairs);
            let shared = &shared;
            let app = &app;
            let provider = &provider;
            async move {
                let cookies = read_cookies(&headers, &app.names);
                let resp =
                    respond(sign_out(shared.login(), app, Some(provider), None, &cookies).await);
                assert_eq!(resp.status(), StatusCode::FOUND);
                let to =
                    url::Url::parse(resp.headers()[header::LOCATION].to_str().unwrap()).unwrap();
                let q: HashMap<String, String> = to.query_pairs().into_owned().collect();
                assert_eq!(q.get("client_id").map(String::as_str), Some("tool"));
                let set: Vec<String> = resp
                    .headers()
                    .get_all(header::SET_COOKIE)
                    .iter()
                    .map(|v| v.to_str().unwrap().to_string())
                    .collect();
                (q.get("id_token_hint").cloned(), set)
            }
        };
        let (name_s, name_h) = ("__Host-_keyway_proxy", "__Secure-_keyway_proxy_signout");

        let (sent, set) = sign_out_with(vec![
            (name_s, session("sid-1")),
            (name_h, hint(Purpose::SignOut, "sid-1")),
        ])
        .await;
        assert_eq!(sent.as_deref(), Some("eyJh.eyJz.c2ln"));
        assert!(
            set.iter().any(
                |c| c.starts_with(&format!("{name_h}=; Path=/oauth2/sign_out;"))
                    && c.contains("Max-Age=0")
            ),
            "{set:?}"
        );
        // Another session's hint, no session, a hint sealed for another purpose: no hint.
        for pairs in [
            vec![
                (name_s, session("sid-2")),
                (name_h, hint(Purpose::SignOut, "sid-1")),
            ],
            vec![(name_h, hint(Purpose::SignOut, "sid-1"))],
            vec![
                (name_s, session("sid-1")),
                (name_h, hint(Purpose::Login, "sid-1")),
            ],
        ] {
            assert_eq!(sign_out_with(pairs).await.0, None);
        }
    }

    #[test]
    fn the_sign_out_cookie_is_scoped_to_the_sign_out_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        let app = shared.app();
        let id_token = format!("eyJh.{}.c2ln", "x".repeat(1000));
        let c = signout_cookie(&shared.settings, &app, "sid-1", &id_token, 3600);
        let (pair, attrs) = c.split_once(';').unwrap();
        let (name, value) = pair.split_once('=').unwrap();
        assert_eq!(name, "__Secure-_keyway_proxy_signout");
        assert_eq!(
            attrs,
            " Path=/oauth2/sign_out; HttpOnly; SameSite=Lax; Secure; Max-Age=3600"
        );
        let (h, _) = app
            .open::<SignOutHint>(Purpose::SignOut, value, now())
            .unwrap();
        assert_eq!(
            (h.sid.as_str(), h.id_token.as_str()),
            ("sid-1", id_token.as_str())
        );
        // Too large for one cookie: an older one is deleted instead.
        let huge = format!("eyJh.{}.c2ln", "x".repeat(CHUNK));
        let c = signout_cookie(&shared.settings, &app, "sid-1", &huge, 3600);
        assert!(c.starts_with("__Secure-_keyway_proxy_signout=; Path=/oauth2/sign_out;"));
        assert!(c.ends_with("Max-Age=0"));
    }
}

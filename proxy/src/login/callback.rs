//! The redirect URI: the sign-in in progress, the issuer's answer (RFC 9207 `iss`), the code
//! exchange with the PKCE verifier, the ID token, who may sign in, and the new session.

use crate::app::App;
use crate::clock::now;
use crate::config::Settings;
use crate::path::is_safe_return_path;
use crate::session::{CHUNK, LoginState, Purpose, RequestCookies, Session, SignOutHint, ct_eq};
use oidc::jwt::{self, IdTokenCheck, Principal};
use oidc::{Provider, TokenResponse};

use super::{Context, DEFAULT_TOKEN_TTL, Failure, Redirect, Refused, redirect, sign_out_path};

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

/// The callback's query parameters; each at most once.
fn callback_params(query: Option<&str>) -> Result<CallbackParams, Failure> {
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
            return Err(Failure::Invalid("repeated parameter"));
        }
        *slot = Some(v.into_owned());
    }
    Ok(p)
}

/// The sign-in in progress that `state` names (its login cookie, opened, unexpired, its state
/// equal in constant time), and the `Set-Cookie` value deleting that cookie whatever happens.
fn pending_login(
    app: &App,
    state: &str,
    cookies: &RequestCookies<'_>,
) -> (Vec<String>, Result<LoginState, Failure>) {
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
        return (clear, Err(Failure::Invalid(why)));
    };
    let t = now();
    let login: Option<LoginState> = app
        .open(Purpose::Login, sealed, t)
        .map(|(l, _)| l)
        .filter(|l: &LoginState| l.exp > t);
    let Some(login) = login else {
        let why = Failure::Invalid("sign-in state missing or expired; start again");
        return (clear, Err(why));
    };
    if !ct_eq(state.as_bytes(), login.state.as_bytes()) {
        return (clear, Err(Failure::Invalid("state mismatch")));
    }
    (clear, Ok(login))
}

/// The authorization response's verdict: the code, once `iss` (RFC 9207) names the issuer and
/// no `error` came back.
fn issuer_answer<'p>(provider: &Provider, p: &'p CallbackParams) -> Result<&'p str, Failure> {
    let issuer = provider.metadata.issuer.as_str();
    match p.iss.as_deref() {
        Some(iss) if iss != issuer => return Err(Failure::Invalid("iss mismatch")),
        None if provider
            .metadata
            .authorization_response_iss_parameter_supported =>
        {
            return Err(Failure::Invalid("iss missing"));
        }
        _ => {}
    }
    if let Some(error) = p.error.as_deref() {
        let denied = error == "access_denied";
        return Err(Failure::NotSignedIn { denied });
    }
    p.code.as_deref().ok_or(Failure::Invalid("code missing"))
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
    let p = match callback_params(query) {
        Ok(p) => p,
        Err(why) => return refused(&[], why),
    };
    let Some(state) = p.state.as_deref() else {
        return refused(&[], Failure::Invalid("state missing"));
    };
    let (clear, login) = pending_login(app, state, cookies);
    let login = match login {
        Ok(l) => l,
        Err(why) => return refused(&clear, why),
    };
    let code = match issuer_answer(provider, &p) {
        Ok(c) => c,
        Err(why) => return refused(&clear, why),
    };
    let issuer = provider.metadata.issuer.as_str();
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
    match start_session(ctx, app, &tokens, &who, id_token, cookies, &login) {
        Ok(mut to) => {
            to.cookies.extend(clear);
            (Ok(to), Some(who))
        }
        Err(why) => refused(&clear, why),
    }
}

/// A new session for `who`: its cookies and the sign-out cookie, and the way back to where the
/// sign-in started.
fn start_session(
    ctx: Context<'_>,
    app: &App,
    tokens: &TokenResponse,
    who: &Principal,
    id_token: &str,
    cookies: &RequestCookies<'_>,
    login: &LoginState,
) -> Result<Redirect, Failure> {
    let Some(sid) = app.sealer.random(16) else {
        return Err(Failure::Internal("randomness unavailable"));
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
        return Err(Failure::Internal("cannot seal session"));
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
    let to = if is_safe_return_path(&login.to) {
        login.to.as_str()
    } else {
        "/"
    };
    Ok(redirect(to, cookies_out))
}

/// The sign-out cookie of a new session: its ID token, sealed, for the sign-out's
/// `id_token_hint`. Scoped to the sign-out endpoint, it costs the other requests nothing (neither
/// bytes nor a decryption). When it would not fit one cookie (an ID token listing very many
/// groups) an older one is deleted instead, and the sign-out names the client alone.
pub(super) fn signout_cookie(
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

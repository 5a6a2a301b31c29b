//! Federation's URLs: `/upstream/start`, `/upstream/start/{provider}` and `/upstream/callback`.
//! The providers themselves (settings, the relying-party client, the sealed cookie, ID-token
//! rules, claim mapping) are `crate::directory::upstream`.
//!
//! - `/upstream/start/{provider}?request=…` stores `state`, `nonce`, the PKCE verifier and the
//!   pending authorization request in a short-lived cookie (`keyway_issuer_upstream`)
//!   authenticated with HMAC-SHA256 under a key kept in the keys directory (`cookie.key`), then
//!   redirects to the upstream.
//! - `/upstream/callback` checks the cookie, `state` and RFC 9207 `iss` (required when the
//!   upstream's metadata says `authorization_response_iss_parameter_supported`, compared exactly
//!   whenever present), redeems the code, validates the ID token, reads userinfo when the
//!   upstream has one, maps the claims and creates the session.

use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode, header};
use serde_json::Value;

use crate::directory::upstream::{COOKIE, IdTokenError, Pending, Upstream};
use crate::error::{Error, Result};
use crate::http::response::redirect;
use crate::params::{Params, Query};
use crate::state::Shared;

/// A callback that does not belong to a sign-in this browser started (missing, forged or
/// expired cookie, wrong `state` or `iss`, an error from the provider): the request is bad.
fn refused(why: &str) -> Error {
    tracing::warn!(reason = %why, "upstream callback refused");
    Error::page(
        StatusCode::BAD_REQUEST,
        "Sign-in did not complete",
        "This sign-in response does not match a sign-in started in this browser, or the identity \
         provider refused it. Go back to the app and sign in again.",
    )
}

/// The provider could not be reached or answered something invalid.
fn failed(why: &str) -> Error {
    tracing::warn!(reason = %why, "upstream sign-in failed");
    Error::page(
        StatusCode::BAD_GATEWAY,
        "Sign-in did not complete",
        "Signing in with your organisation's identity provider did not work. Go back to the app \
         and try again; if it keeps failing, tell the people who run keyway.",
    )
}

fn not_found() -> Error {
    Error::page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address.",
    )
}

/// `GET /upstream/start/{provider}?request=…`
pub(crate) async fn start_with(
    State(iss): State<Shared>,
    axum::extract::Path(provider): axum::extract::Path<String>,
    Query(q): Query,
) -> Result<Response> {
    let up = iss
        .upstreams()
        .iter()
        .find(|u| u.config.id == provider)
        .ok_or_else(not_found)?;
    begin(&iss, up, &q).await
}

/// `GET /upstream/start?request=…`: the first provider.
pub(crate) async fn start(State(iss): State<Shared>, Query(q): Query) -> Result<Response> {
    let up = iss.upstreams().first().ok_or_else(not_found)?;
    begin(&iss, up, &q).await
}

async fn begin(iss: &crate::state::Issuer, up: &Upstream, q: &Params) -> Result<Response> {
    if up.cookie_key.get().is_none() {
        return Err(Error::page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is starting up",
            "Signing in with your organisation's identity provider is not available yet. Try \
             again in a minute.",
        ));
    }
    let request = q.get("request").unwrap_or("").to_string();
    Params::parse(request.as_bytes())?;
    let provider = up.provider().await.map_err(|e| failed(&e))?;
    let md = &provider.metadata;
    let pending = Pending {
        provider: up.config.id.clone(),
        state: crate::random::random_token(),
        nonce: crate::random::random_token(),
        verifier: crate::random::random_token(),
        request,
        exp: iss.clock().now() + 600,
    };
    let mut url =
        url::Url::parse(&md.authorization_endpoint).map_err(|e| failed(&e.to_string()))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &up.config.client_id)
        .append_pair("redirect_uri", &iss.url("/upstream/callback"))
        .append_pair("scope", &up.config.scopes)
        .append_pair("state", &pending.state)
        .append_pair("nonce", &pending.nonce)
        .append_pair("code_challenge", &oidc::pkce::challenge(&pending.verifier))
        .append_pair("code_challenge_method", "S256");
    let mut res = redirect(url.as_str());
    let secure = if iss.secure_cookies() { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={}; Path=/upstream; HttpOnly; SameSite=Lax; Max-Age=600{secure}",
        up.seal(&pending)
            .ok_or_else(|| failed("cannot seal the cookie"))?
    );
    if let Ok(v) = http::HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// `GET /upstream/callback`
pub(crate) async fn callback(
    State(iss): State<Shared>,
    headers: HeaderMap,
    Query(q): Query,
) -> Result<Response> {
    let first = iss.upstreams().first().ok_or_else(not_found)?;
    let now = iss.clock().now();
    // Every upstream shares the cookie key; the cookie says which provider this sign-in went to,
    // so a response is only accepted for that provider (and its `iss`).
    let pending = crate::http::session::cookie(&headers, COOKIE)
        .and_then(|c| first.open(c, now))
        .ok_or_else(|| refused("missing, forged or expired upstream cookie"))?;
    let up = iss
        .upstreams()
        .iter()
        .find(|u| u.config.id == pending.provider)
        .ok_or_else(|| refused("unknown provider"))?;
    let state = q.get("state").unwrap_or("");
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        state.as_bytes(),
        pending.state.as_bytes(),
    )) {
        return Err(refused("state mismatch"));
    }
    let provider = up.provider().await.map_err(|e| failed(&e))?;
    let md = &provider.metadata;
    // RFC 9207 §2.4: compared exactly when present; required when the upstream advertises it.
    match q.get("iss") {
        Some(i) if i != up.config.issuer => return Err(refused("iss mismatch (RFC 9207)")),
        None if md.authorization_response_iss_parameter_supported => {
            return Err(refused("iss missing although advertised (RFC 9207)"));
        }
        _ => {}
    }
    if q.get("error").is_some() {
        return Err(refused("the upstream returned an error"));
    }
    let code = q.get("code").ok_or_else(|| refused("no code"))?;
    let redirect_uri = iss.url("/upstream/callback");
    let tokens = up
        .client
        .token(
            md,
            &up.config.client_id,
            Some(&up.config.client_secret),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &redirect_uri),
                ("code_verifier", &pending.verifier),
            ],
        )
        .await
        .map_err(|e| failed(&e.to_string()))?;
    let id_token = tokens
        .id_token
        .as_deref()
        .ok_or_else(|| failed("no id_token"))?;
    let mut claims = up
        .checked_id_token(&provider, id_token, &pending.nonce)
        .await
        .map_err(|e| match e {
            // The code was redeemed for a different sign-in (code injection): a bad request.
            IdTokenError::Nonce => refused("ID token nonce mismatch"),
            IdTokenError::Other(e) => failed(&e),
        })?;
    if let Some(ui) = md.userinfo_endpoint.as_deref()
        && let Ok(info) = up.client.userinfo(ui, &tokens.access_token).await
        && info.get("sub") == claims.get("sub")
    {
        // `email_verified` speaks for the `email` next to it: userinfo's counts only for the
        // address that ends up in the claims.
        let same_email = claims
            .get("email")
            .is_none_or(|e| info.get("email") == Some(e));
        for (k, v) in info {
            if k == "email_verified" && !same_email {
                continue;
            }
            claims.entry(k).or_insert(v);
        }
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .map(|s| format!("{}:{s}", up.config.id))
        .filter(|s| s.len() > up.config.id.len() + 1 && s.len() <= 255)
        .ok_or_else(|| failed("no sub, or one too long once prefixed with the provider ID"))?;
    let mapped = up.map_claims(&claims);
    let (cookie, _) = crate::http::session::start_session(
        &iss,
        sub,
        mapped,
        format!("upstream:{}", up.config.id),
        now,
    )
    .await?;
    iss.metrics().login("upstream", "ok");
    let request = Params::parse(pending.request.as_bytes())?;
    let target = crate::http::session::resume_target(request);
    let mut res = redirect(&target);
    res.headers_mut()
        .append(header::SET_COOKIE, iss.session_cookie(&cookie));
    let clear = format!("{COOKIE}=; Path=/upstream; HttpOnly; SameSite=Lax; Max-Age=0");
    if let Ok(v) = http::HeaderValue::from_str(&clear) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// The login page's links to the upstream providers, in button order: `(name, href)`.
/// `/upstream/start` serves the first provider, `/upstream/start/{id}` the others; a link
/// carries a single query parameter, `request` (the authorization request to resume after
/// sign-in), or none when the sign-in is for the account page.
pub(crate) fn sign_in_links(
    upstreams: &[Upstream],
    request: Option<&str>,
) -> Vec<(String, String)> {
    let query = request.map(|r| {
        let pair = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("request", r)
            .finish();
        format!("?{pair}")
    });
    upstreams
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let path = if i == 0 {
                String::new()
            } else {
                format!("/{}", u.config.id)
            };
            let query = query.as_deref().unwrap_or("");
            (
                u.config.name.clone(),
                format!("/upstream/start{path}{query}"),
            )
        })
        .collect()
}

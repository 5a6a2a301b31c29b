//! Authentication: who is calling. A bearer token first (an API client that sends one means
//! it), validated locally ([`oidc::jwt`]) and cached, per proxy ([`crate::cache`]) and per
//! connection ([`LastCredential`]); else the session cookie ([`crate::session`]), cached the
//! same way and refreshed once per session ([`crate::login::Refresher`]). Each returns who,
//! nobody, or a [`Refusal`].

use std::sync::Arc;

use http::{HeaderValue, Method, Request, header};

use super::last_credential::LastCredential;
use super::respond::Refusal;
use crate::app::App;
use crate::cache::token_hash;
use crate::clock::now;
use crate::metrics::Metrics;
use crate::session::{Purpose, RequestCookies, Session};
use crate::state::Shared;
use crate::wire::ReqBody;
use oidc::Provider;
use oidc::jwt::{self, Expect, Principal};

/// The characters of RFC 6750's `b64token` (a table: tokens are long and checked on every
/// request).
const B64TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=');
        b += 1;
    }
    t
};

/// Whether a token is an RFC 6750 `b64token`.
fn is_b64token(token: &str) -> bool {
    token.bytes().all(|b| B64TOKEN[usize::from(b)])
}

/// The bearer token of a request, as the header value and the token's offset in it: `Ok(None)`
/// without one; `Err` when malformed. (The header value is cheap to clone and keeps the token
/// without copying it.)
pub(crate) fn bearer(req: &Request<ReqBody>) -> Result<Option<(HeaderValue, usize)>, &'static str> {
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("several Authorization headers");
    }
    // The common case without scanning the (long) token: its characters are checked only when it
    // is not in the cache (see `authenticate_bearer`); a cached token passed that check before.
    let bytes = value.as_bytes();
    if bytes.len() > 7 && bytes[..7].eq_ignore_ascii_case(b"bearer ") {
        let offset = 7 + bytes[7..].iter().take_while(|&&b| b == b' ').count();
        if offset == bytes.len() {
            return Err("malformed bearer token");
        }
        return Ok(Some((value.clone(), offset)));
    }
    let Ok(text) = value.to_str() else {
        return Err("malformed Authorization header");
    };
    let Some((scheme, token)) = text.split_once(' ') else {
        return if text.eq_ignore_ascii_case("bearer") {
            Err("empty bearer token")
        } else {
            Ok(None)
        };
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme (e.g. Basic) is the tool's business.
        return Ok(None);
    }
    let trimmed = token.trim_start_matches(' ');
    if trimmed.is_empty() || !is_b64token(trimmed) {
        return Err("malformed bearer token");
    }
    Ok(Some((value.clone(), text.len() - trimmed.len())))
}

/// A malformed `Authorization` field (the reason goes to the log).
pub(crate) fn malformed(why: &str) -> Refusal {
    tracing::debug!(reason = why, "bad Authorization header");
    Refusal::MalformedAuthorization
}

/// Validates a bearer token, from the cache when it was seen before.
pub(crate) async fn authenticate_bearer(
    shared: &Shared,
    last: &LastCredential,
    app: &Arc<App>,
    provider: &Provider,
    token: &[u8],
) -> Result<Arc<Principal>, Refusal> {
    let t = now();
    let leeway = shared.settings.clock_skew;
    let caching = shared.settings.token_cache_size > 0;
    let last = caching.then_some(last);
    if let Some(p) = last.and_then(|m| m.bearer(app, token, t, leeway)) {
        shared.metrics.cache_hits.inc();
        return Ok(p);
    }
    let Ok(token) = std::str::from_utf8(token) else {
        return Err(malformed("malformed bearer token"));
    };
    // With the cache off (`--token-cache-size 0`) there is nothing to look up or keep.
    let hash = caching.then(|| token_hash(token));
    if let Some(p) = hash.as_ref().and_then(|h| shared.tokens.get(h, t, leeway)) {
        shared.metrics.cache_hits.inc();
        if let Some(m) = last {
            m.keep_bearer(app, token, p.clone());
        }
        return Ok(p);
    }
    if !is_b64token(token) {
        return Err(malformed("malformed bearer token"));
    }
    shared.metrics.cache_misses.inc();
    let refused = |e: jwt::TokenError| {
        tracing::info!(reason = %e, "bearer token refused");
        Refusal::InvalidToken("the access token is invalid or expired")
    };
    let head = jwt::head(token).map_err(refused)?;
    let mut keys = provider.keys();
    if keys.lacks_kid(head.kid.as_deref()) {
        let fetched = shared
            .issuer
            .refetch_keys(provider, shared.settings.jwks_min_refresh)
            .await;
        if fetched {
            Metrics::result(&shared.metrics.jwks_refreshes, true);
            keys = provider.keys();
        }
    }
    let expect = Expect {
        issuer: &provider.metadata.issuer,
        audience: &app.cfg.resource,
        leeway,
    };
    let p = Arc::new(jwt::validate_access_token(token, &head, &keys, &expect).map_err(refused)?);
    if let Some(hash) = hash {
        shared.tokens.insert(hash, p.clone(), t);
        shared
            .metrics
            .cached_tokens
            .set(i64::try_from(shared.tokens.len()).unwrap_or(i64::MAX));
    }
    Ok(p)
}

/// The session the request's cookie carries, if any, and the `Set-Cookie` values the answer
/// must carry: a refreshed session's cookies, or the deletion of one that is refused or ended.
pub(crate) async fn session(
    shared: &Shared,
    last: &LastCredential,
    app: &Arc<App>,
    provider: &Provider,
    cookies: &RequestCookies<'_>,
) -> (Option<Arc<Session>>, Vec<String>) {
    let Some(sealed) = cookies.session.as_deref() else {
        return (None, Vec::new());
    };
    let t = now();
    let last = (shared.settings.token_cache_size > 0).then_some(last);
    let hash = || token_hash(sealed);
    let opened = match last.and_then(|m| m.session(app, sealed, t)) {
        Some(s) => Ok(s),
        None => match app.sessions.get(&hash(), t, 0) {
            Some(s) => {
                if let Some(m) = last {
                    m.keep_session(app, sealed, s.clone());
                }
                Ok(s)
            }
            None => Err(app.open::<Session>(Purpose::Session, sealed, t)),
        },
    };
    match opened {
        Ok(s) => (Some(s), Vec::new()),
        Err(None) => {
            tracing::info!("session cookie refused (tampered, expired key or another app)");
            (None, app.names.clear_session(&cookies.presence))
        }
        Err(Some((s, _))) if s.end <= t => (None, app.names.clear_session(&cookies.presence)),
        Err(Some((s, _))) if s.exp <= t => {
            let refresher = &shared.refresher;
            match refresher.refresh(shared.login(), app, provider, &s).await {
                Some(fresh) => {
                    let set = app.session_cookies(&fresh, t, &cookies.presence);
                    (Some(fresh), set)
                }
                None => (None, app.names.clear_session(&cookies.presence)),
            }
        }
        Err(Some((s, retired))) => {
            let s = Arc::new(s);
            app.cache_session(hash(), &s, retired, t);
            (Some(s), Vec::new())
        }
    }
}

/// Whether to answer a request without credentials with a sign-in redirect (a browser
/// navigation) rather than a 401.
pub(crate) fn wants_html(req: &Request<ReqBody>) -> bool {
    (req.method() == Method::GET || req.method() == Method::HEAD)
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
        && !req
            .headers()
            .get("x-requested-with")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"xmlhttprequest"))
}

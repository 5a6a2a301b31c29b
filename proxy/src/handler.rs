//! The request path (see the crate documentation for the order and why). Errors become
//! responses here and only here: clients get a standard, generic JSON body and, for 401/403, an
//! RFC 6750 / RFC 9728 `WWW-Authenticate` challenge; the detail goes to the log.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use contract::access::{Caller, Decision};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};

use crate::cache::token_hash;
use crate::forward::{Forward, Peer, forward};
use crate::metrics::Outcome;
use crate::path::normalise;
use crate::session::{Purpose, Session, read_cookies};
use crate::{App, Body, ReqBody, Shared, flow, now};
use oidc::Provider;
use oidc::jwt::{self, Expect, Principal, TokenError};

/// RFC 9728 well-known path.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// A small JSON error response: `{"error": code, "error_description": description}`.
pub fn error_response(status: StatusCode, code: &str, description: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": code, "error_description": description }).to_string();
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Appends `Set-Cookie` headers.
pub fn with_cookies(
    mut resp: Response<Body>,
    cookies: impl IntoIterator<Item = String>,
) -> Response<Body> {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// Quotes a value for an auth-param (RFC 9110 quoted-string).
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

/// `WWW-Authenticate: Bearer resource_metadata="…", scope="…"[, error="…"]`.
fn challenge(app: &App, scopes: &[String], error: Option<(&str, &str)>) -> HeaderValue {
    let mut v = format!(
        "Bearer resource_metadata=\"{}\"",
        quoted(&app.cfg.resource_metadata_url)
    );
    if !scopes.is_empty() {
        v.push_str(&format!(", scope=\"{}\"", quoted(&scopes.join(" "))));
    }
    if let Some((code, desc)) = error {
        v.push_str(&format!(
            ", error=\"{code}\", error_description=\"{}\"",
            quoted(desc)
        ));
    }
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// The scopes worth naming in a challenge for this request.
fn scopes_for<'a>(app: &'a App, method: &str, path: &str) -> &'a [String] {
    match app.cfg.policy.access.rule_for(method, path) {
        Some(rule) if !rule.scopes.is_empty() => &rule.scopes,
        _ => &app.cfg.policy.scopes,
    }
}

fn unauthorized(app: &App, scopes: &[String], error: Option<(&str, &str)>) -> Response<Body> {
    let (code, desc) = error.unwrap_or(("unauthenticated", "authentication required"));
    let mut resp = error_response(StatusCode::UNAUTHORIZED, code, desc);
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge(app, scopes, error));
    resp
}

/// What a request ended as, for metrics and the access log.
struct Done {
    resp: Response<Body>,
    outcome: Outcome,
    /// The subject, for the access log (left out of allowed requests when it is off).
    user: Option<String>,
}

fn done(resp: Response<Body>, outcome: Outcome) -> Done {
    Done {
        resp,
        outcome,
        user: None,
    }
}

/// Entry point for every request on the main listener.
pub async fn handle(
    shared: Arc<Shared>,
    peer: Arc<Peer>,
    req: Request<ReqBody>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let method = req.method().clone();
    let version = req.version();
    let log_path = shared
        .settings
        .access_log
        .then(|| req.uri().path().to_string());
    let mut d = route(&shared, &peer, req).await;
    if method == Method::HEAD {
        own_head_length(&mut d.resp, version);
    }
    let elapsed = start.elapsed();
    shared.metrics.request(d.outcome, elapsed.as_secs_f64());
    if let Some(path) = log_path {
        // Plain strings and numbers only: each `%`/`?` field would be formatted into a string
        // first (the same JSON comes out).
        tracing::info!(
            target: "access",
            method = method.as_str(),
            path = path.as_str(),
            version = version_str(version),
            status = d.resp.status().as_u16(),
            outcome = d.outcome.as_str(),
            user = d.user.as_deref().unwrap_or(""),
            remote = peer.ip.to_str().unwrap_or(""),
            duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        );
    }
    Ok(d.resp)
}

/// Gives the proxy's own answer to a HEAD request the `Content-Length` the same request with
/// GET would get (RFC 9110 §9.3.2); the body is not sent. The tool's answers are left as the tool
/// made them. Over HTTP/2 the body itself is left out here: hyper's HTTP/2 server would send it
/// (a peer resets a HEAD stream that carries DATA); its HTTP/1 server and the proxy's own loop
/// write no body for HEAD.
fn own_head_length(resp: &mut Response<Body>, version: http::Version) {
    // (None of them is a 1xx or 204, which would have no `Content-Length`.)
    if let Either::Right(own) = resp.body()
        && !resp.headers().contains_key(header::CONTENT_LENGTH)
        && let Some(n) = http_body::Body::size_hint(own).exact()
    {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    if version == http::Version::HTTP_2
        && let Either::Right(own) = resp.body_mut()
    {
        *own = Full::new(Bytes::new());
    }
}

/// A protocol version as `http::Version`'s `Debug` writes it (what the access log had).
fn version_str(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "unknown",
    }
}

/// Size of a request's header section as sent: request line and `name: value\r\n` lines.
fn header_bytes(req: &Request<ReqBody>) -> usize {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    let line = req.method().as_str().len() + target + 12;
    req.headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + line
}

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

/// Why a bearer token was refused.
enum Refused {
    /// Not a `b64token`: a malformed request (400).
    Malformed,
    /// Invalid, expired, or not for this resource (401).
    Token(TokenError),
}

impl From<TokenError> for Refused {
    fn from(e: TokenError) -> Self {
        Refused::Token(e)
    }
}

/// The bearer token of a request, as the header value and the token's offset in it: `Ok(None)`
/// without one; `Err` when malformed. (The header value is cheap to clone and keeps the token
/// without copying it.)
fn bearer(req: &Request<ReqBody>) -> Result<Option<(HeaderValue, usize)>, &'static str> {
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

/// Whether to answer a request without credentials with a sign-in redirect (a browser
/// navigation) rather than a 401.
fn wants_html(req: &Request<ReqBody>) -> bool {
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

/// Whether a method has a lower-case letter (the standard ones are static strings: a few bytes).
fn has_lower_case(method: &Method) -> bool {
    method.as_str().bytes().any(|b| b.is_ascii_lowercase())
}

/// Whether a request is a CORS preflight (Fetch standard: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`), which browsers send without credentials.
fn is_preflight(method: &Method, headers: &http::HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Validates a bearer token, from the cache when it was seen before.
async fn authenticate_bearer(
    shared: &Shared,
    peer: &Peer,
    app: &Arc<App>,
    provider: &Provider,
    token: &[u8],
) -> Result<Arc<Principal>, Refused> {
    let t = now();
    let leeway = shared.settings.clock_skew;
    let memo = (shared.settings.token_cache_size > 0).then_some(&peer.memo);
    if let Some(p) = memo.and_then(|m| m.bearer(app, token, t, leeway)) {
        shared.metrics.cache_hits.inc();
        return Ok(p);
    }
    let Ok(token) = std::str::from_utf8(token) else {
        return Err(Refused::Malformed);
    };
    let hash = token_hash(token);
    if let Some(p) = shared.tokens.get(&hash, t, leeway) {
        shared.metrics.cache_hits.inc();
        if let Some(m) = memo {
            m.keep_bearer(app, token, p.clone());
        }
        return Ok(p);
    }
    if !is_b64token(token) {
        return Err(Refused::Malformed);
    }
    shared.metrics.cache_misses.inc();
    let head = jwt::head(token)?;
    let mut keys = provider.keys();
    if keys.lacks_kid(head.kid.as_deref()) {
        let fetched = shared
            .issuer
            .refetch_keys(provider, shared.settings.jwks_min_refresh)
            .await;
        if fetched {
            crate::metrics::Metrics::result(&shared.metrics.jwks_refreshes, true);
            keys = provider.keys();
        }
    }
    let expect = Expect {
        issuer: &provider.metadata.issuer,
        audience: &app.cfg.resource,
        leeway,
    };
    let p = Arc::new(jwt::validate_access_token(token, &head, &keys, &expect)?);
    shared.tokens.insert(hash, p.clone(), t);
    shared
        .metrics
        .cached_tokens
        .set(i64::try_from(shared.tokens.len()).unwrap_or(i64::MAX));
    Ok(p)
}

fn metadata_document(app: &App) -> Response<Body> {
    let doc = serde_json::json!({
        "resource": app.cfg.resource,
        "authorization_servers": [app.cfg.issuer],
        "scopes_supported": app.cfg.policy.scopes,
        "bearer_methods_supported": ["header"],
    });
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(doc.to_string()))));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

async fn route(shared: &Arc<Shared>, peer: &Peer, req: Request<ReqBody>) -> Done {
    // RFC 9112 §3.2 and RFC 9113 §8.3.1 (the HTTP/1.1 loop of `h1` checked its own requests
    // while parsing them and handed the others to hyper, whose requests have an `Incoming` body).
    if matches!(req.body(), ReqBody::Incoming(_))
        && !crate::host::acceptable(req.version(), req.uri().authority(), req.headers())
    {
        let mut resp = error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing, repeated, invalid or conflicting Host header field or :authority",
        );
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return done(resp, Outcome::bad_request);
    }
    // HTTP/1: hyper's limit is on its read buffer, which a reused keep-alive connection may
    // already have grown, so count the header section itself. (HTTP/2 enforces
    // `max_header_list_size` per request already.)
    if req.version() != http::Version::HTTP_2
        && header_bytes(&req) > shared.settings.max_header_bytes
    {
        let mut resp = Response::new(Either::Right(Full::new(Bytes::new())));
        *resp.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return done(resp, Outcome::bad_request);
    }
    // Methods are case-sensitive (RFC 9110 §9.1), but Flask, Django and others upper-case them
    // before routing: `post` runs the POST view. A method with a lower-case letter is refused
    // here, before any rule is matched, where every request passes whichever parser read it
    // (the HTTP/1.1 loop, hyper's HTTP/1.1 or HTTP/2).
    if has_lower_case(req.method()) {
        return done(
            error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "request methods are upper case",
            ),
            Outcome::bad_request,
        );
    }
    let app = shared.app();
    let path = match normalise(req.uri().path()) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(reason = %e, "path refused");
            return done(
                error_response(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "malformed request path",
                ),
                Outcome::bad_request,
            );
        }
    };
    let m = path.matching.as_str();
    let method = req.method().as_str();

    // The proxy's own endpoints come before any rule: they must not reach the tool.
    if m == METADATA_PATH
        || (!app.cfg.resource_path.is_empty()
            && m.strip_prefix(METADATA_PATH) == Some(app.cfg.resource_path.as_str()))
    {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return done(
                error_response(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "use GET"),
                Outcome::bad_request,
            );
        }
        return done(metadata_document(&app), Outcome::metadata);
    }
    let prefix = shared.settings.proxy_prefix.as_str();
    if let Some(own) = m.strip_prefix(prefix).filter(|r| r.starts_with('/')) {
        // Each endpoint reads what it needs (an unknown one falls through to the rules).
        match own {
            "/callback" => {
                let Some(provider) = shared.provider() else {
                    return not_ready();
                };
                let cookies = read_cookies(req.headers(), &app.names);
                let (resp, who) =
                    flow::callback(shared, &app, &provider, req.uri().query(), &cookies).await;
                let outcome = if resp.status() == StatusCode::FOUND {
                    Outcome::callback
                } else {
                    Outcome::callback_error
                };
                return Done {
                    resp,
                    outcome,
                    user: who.map(|w| w.sub),
                };
            }
            "/start" => {
                let Some(provider) = shared.provider() else {
                    return not_ready();
                };
                let rd = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                    .find(|(k, _)| k == "rd")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_else(|| "/".into());
                let cookies = read_cookies(req.headers(), &app.names);
                return done(
                    flow::start_login(
                        &app,
                        &provider,
                        shared.settings.prompt.as_deref(),
                        &rd,
                        &cookies.logins,
                    ),
                    Outcome::login_redirect,
                );
            }
            "/sign_out" => {
                let method = req.method();
                if !matches!(*method, Method::GET | Method::HEAD | Method::POST) {
                    return done(
                        error_response(
                            StatusCode::METHOD_NOT_ALLOWED,
                            "invalid_request",
                            "use GET or POST",
                        ),
                        Outcome::bad_request,
                    );
                }
                let from = flow::sign_out_origin(method, req.headers(), &app.cfg.origin);
                if from != flow::SignOutOrigin::Own {
                    if *method == Method::POST {
                        return done(
                            error_response(
                                StatusCode::FORBIDDEN,
                                "access_denied",
                                "cross-origin sign-out refused",
                            ),
                            Outcome::bad_request,
                        );
                    }
                    return done(
                        flow::sign_out_confirmation(prefix, req.uri().query()),
                        Outcome::sign_out,
                    );
                }
                let cookies = read_cookies(req.headers(), &app.names);
                let resp = flow::sign_out(
                    shared,
                    &app,
                    shared.provider().as_deref(),
                    req.uri().query(),
                    &cookies,
                )
                .await;
                return done(resp, Outcome::sign_out);
            }
            _ => {}
        }
    }

    let access = &app.cfg.policy.access;
    let preflight =
        shared.settings.skip_auth_preflight && is_preflight(req.method(), req.headers());
    if preflight || access.is_public(method, m) {
        let f = Forward {
            peer,
            path: &path.forward,
            who: None,
            access_token: None,
            names: &app.names,
            cookies: None,
        };
        let resp = forward(shared, req, f).await;
        let ok = if preflight {
            Outcome::preflight
        } else {
            Outcome::public
        };
        let outcome = upstream_outcome(&resp, ok);
        return done(resp, outcome);
    }

    let Some(provider) = shared.provider() else {
        return not_ready();
    };

    // Bearer tokens first: an API client that sends one means it.
    let malformed = |why: &str| {
        let scopes = scopes_for(&app, method, m);
        tracing::debug!(reason = why, "bad Authorization header");
        let mut resp = unauthorized(
            &app,
            scopes,
            Some(("invalid_request", "malformed Authorization header")),
        );
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        done(resp, Outcome::bad_request)
    };
    let token = match bearer(&req) {
        Ok(t) => t,
        Err(why) => return malformed(why),
    };
    if let Some((value, offset)) = token {
        let Some(token) = value.as_bytes().get(offset..) else {
            return malformed("malformed bearer token");
        };
        let who = match authenticate_bearer(shared, peer, &app, &provider, token).await {
            Ok(w) => w,
            Err(Refused::Malformed) => return malformed("malformed bearer token"),
            Err(Refused::Token(e)) => {
                tracing::info!(reason = %e, "bearer token refused");
                let scopes = scopes_for(&app, method, m);
                return done(
                    unauthorized(
                        &app,
                        scopes,
                        Some(("invalid_token", "the access token is invalid or expired")),
                    ),
                    Outcome::invalid_token,
                );
            }
        };
        // A person's token only from a client this app admits (`delegatedClients`,
        // `dynamicClients`): one issued to another client is not a token for this app, whatever
        // its audience (the issuer refuses to issue it; this holds even against one that did).
        if who.machine_client.is_none()
            && !app
                .cfg
                .policy
                .access
                .admits_client(&app.cfg.client_id, who.client.as_deref().unwrap_or(""))
        {
            tracing::info!(
                client = who.client.as_deref().unwrap_or("-"),
                "bearer token refused: issued to a client this app does not admit"
            );
            let scopes = scopes_for(&app, method, m);
            return done(
                unauthorized(
                    &app,
                    scopes,
                    Some((
                        "invalid_token",
                        "the access token was issued to a client this app does not admit",
                    )),
                ),
                Outcome::invalid_token,
            );
        }
        let decision = decide(&app, method, m, &who);
        if let Some(d) = refuse(&app, decision, &who) {
            return d;
        }
        // Accepted, so a `b64token` (ASCII).
        let pass = if shared.settings.pass_access_token {
            match std::str::from_utf8(token) {
                Ok(t) => Some(t),
                Err(_) => return malformed("malformed bearer token"),
            }
        } else {
            None
        };
        let user = shared.settings.access_log.then(|| who.sub.clone());
        let f = Forward {
            peer,
            path: &path.forward,
            who: Some(&who),
            access_token: pass,
            names: &app.names,
            cookies: None,
        };
        let resp = forward(shared, req, f).await;
        return Done {
            outcome: upstream_outcome(&resp, Outcome::allowed),
            resp,
            user,
        };
    }

    // Then the session cookie.
    let cookies = read_cookies(req.headers(), &app.names);
    let mut set_cookies: Vec<String> = Vec::new();
    let mut session: Option<Arc<Session>> = None;
    if let Some(sealed) = cookies.session.as_deref() {
        let t = now();
        let memo = (shared.settings.token_cache_size > 0).then_some(&peer.memo);
        let hash = || token_hash(sealed);
        let opened = match memo.and_then(|m| m.session(&app, sealed, t)) {
            Some(s) => Ok(s),
            None => match app.sessions.get(&hash(), t, 0) {
                Some(s) => {
                    if let Some(m) = memo {
                        m.keep_session(&app, sealed, s.clone());
                    }
                    Ok(s)
                }
                None => Err(app.open::<Session>(Purpose::Session, sealed, t)),
            },
        };
        match opened {
            Ok(s) => session = Some(s),
            Err(None) => {
                tracing::info!("session cookie refused (tampered, expired key or another app)");
                set_cookies = app.names.clear_session(&cookies.presence);
            }
            Err(Some((s, _))) if s.end <= t => {
                set_cookies = app.names.clear_session(&cookies.presence);
            }
            Err(Some((s, _))) if s.exp <= t => {
                match shared.refresher.refresh(shared, &app, &provider, &s).await {
                    Some(fresh) => {
                        set_cookies = app.session_cookies(&fresh, t, &cookies.presence);
                        session = Some(fresh);
                    }
                    None => set_cookies = app.names.clear_session(&cookies.presence),
                }
            }
            Err(Some((s, retired))) => {
                let s = Arc::new(s);
                app.cache_session(hash(), &s, retired, t);
                session = Some(s);
            }
        }
    }
    let Some(session) = session else {
        if wants_html(&req) {
            let to = match req.uri().query() {
                Some(q) => format!("{}?{q}", path.forward),
                None => path.forward.clone(),
            };
            let resp = flow::start_login(
                &app,
                &provider,
                shared.settings.prompt.as_deref(),
                &to,
                &cookies.logins,
            );
            return done(with_cookies(resp, set_cookies), Outcome::login_redirect);
        }
        let scopes = scopes_for(&app, method, m);
        return done(
            with_cookies(unauthorized(&app, scopes, None), set_cookies),
            Outcome::unauthenticated,
        );
    };
    let decision = decide(&app, method, m, &session.who);
    if let Some(mut d) = refuse(&app, decision, &session.who) {
        d.resp = with_cookies(d.resp, set_cookies);
        return d;
    }
    let f = Forward {
        peer,
        path: &path.forward,
        who: Some(&session.who),
        access_token: session
            .at
            .as_deref()
            .filter(|_| shared.settings.pass_access_token),
        names: &app.names,
        cookies: Some(cookies.plan),
    };
    let resp = forward(shared, req, f).await;
    let outcome = upstream_outcome(&resp, Outcome::allowed);
    Done {
        resp: with_cookies(resp, set_cookies),
        outcome,
        user: shared.settings.access_log.then(|| session.who.sub.clone()),
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

/// The response for a refused decision, if refused.
fn refuse(app: &App, decision: Decision, who: &Principal) -> Option<Done> {
    // The subject is copied only for a refusal: an allowed request copies it once, for its own
    // `Done`.
    let user = || Some(who.sub.clone());
    match decision {
        Decision::Allow => None,
        Decision::NotAllowed | Decision::MissingGroup => Some(Done {
            resp: error_response(
                StatusCode::FORBIDDEN,
                "access_denied",
                "you may not access this resource",
            ),
            outcome: Outcome::forbidden,
            user: user(),
        }),
        Decision::InsufficientScope { required } => {
            let mut resp = error_response(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "the access token lacks a required scope",
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                challenge(
                    app,
                    &required,
                    Some((
                        "insufficient_scope",
                        "the access token lacks a required scope",
                    )),
                ),
            );
            Some(Done {
                resp,
                outcome: Outcome::insufficient_scope,
                user: user(),
            })
        }
    }
}

fn upstream_outcome(resp: &Response<Body>, ok: Outcome) -> Outcome {
    match (resp.status(), resp.body()) {
        (StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT, Either::Right(_)) => {
            Outcome::upstream_error
        }
        // The proxy's own 408: the client's request body stalled.
        (StatusCode::REQUEST_TIMEOUT, Either::Right(_)) => Outcome::bad_request,
        _ => ok,
    }
}

fn not_ready() -> Done {
    let mut resp = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "the issuer's metadata and keys are not loaded yet",
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    done(resp, Outcome::not_ready)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{has_lower_case, is_preflight, version_str};
    use http::{HeaderMap, Method};

    #[test]
    fn methods_with_lower_case_letters_are_told_apart() {
        for m in ["GET", "POST", "PROPFIND", "VERSION-CONTROL", "M_1"] {
            assert!(
                !has_lower_case(&Method::from_bytes(m.as_bytes()).unwrap()),
                "{m}"
            );
        }
        for m in ["post", "Post", "gET", "delete"] {
            assert!(
                has_lower_case(&Method::from_bytes(m.as_bytes()).unwrap()),
                "{m}"
            );
        }
    }

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

    #[test]
    fn versions_log_as_before() {
        for v in [
            http::Version::HTTP_09,
            http::Version::HTTP_10,
            http::Version::HTTP_11,
            http::Version::HTTP_2,
            http::Version::HTTP_3,
        ] {
            assert_eq!(version_str(v), format!("{v:?}"));
        }
    }
}

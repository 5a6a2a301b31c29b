//! The request path: an ordered chain of stages, each in its own file, each ending a request it
//! refuses with a [`respond::Refusal`] that [`respond`] — and only it — turns into a response.
//!
//! 1. [`guard`]: the `Host` check, the header section's size, the method's case, and path
//!    normalisation, before anything matches a path;
//! 2. [`own_endpoints`]: sign-in start, callback, sign-out, RFC 9728 metadata — before any rule,
//!    they never reach the tool;
//! 3. [`authz::unauthenticated`]: public rules, and CORS preflights with
//!    `--skip-auth-preflight`, forwarded without authentication (spoofed identity headers still
//!    removed);
//! 4. [`authn`]: a bearer token, else the session cookie (refreshed once per session); none: a
//!    sign-in redirect for a browser navigation, else 401;
//! 5. [`authz`]: the token's client, then the access rules for the method and path;
//! 6. [`crate::forward`]: header rewrite and the exchange with the tool.
//!
//! [`handle`] wraps the chain: metrics, the access log, and the `Content-Length` of the proxy's
//! own answers to HEAD.

pub(crate) mod authn;
pub(crate) mod authz;
pub(crate) mod guard;
pub(crate) mod last_credential;
pub(crate) mod own_endpoints;
pub(crate) mod respond;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::{Either, Full};

use crate::app::App;
use crate::forward::{Failed, Forward, Peer, forward};
use crate::login;
use crate::metrics::Outcome;
use crate::path::NormalPath;
use crate::session::{CookiePlan, RequestCookies, read_cookies};
use crate::state::Shared;
use crate::wire::{Body, ReqBody};
use last_credential::LastCredential;
use oidc::Provider;
use oidc::jwt::Principal;
use own_endpoints::Answer;
use respond::{Refusal, with_cookies};

/// A client connection as the pipeline sees it: the peer (for the forwarder) and the
/// credential accepted last on it.
#[derive(Debug)]
pub(crate) struct Connection {
    /// The client end.
    pub(crate) peer: Peer,
    /// The credential accepted last on this connection.
    pub(crate) last_credential: LastCredential,
}

impl Connection {
    /// A new client connection.
    pub(crate) fn new(peer: Peer) -> Self {
        Connection {
            peer,
            last_credential: LastCredential::default(),
        }
    }
}

/// What a request ended as, for metrics and the access log.
pub(crate) struct Done {
    pub(crate) resp: Response<Body>,
    pub(crate) outcome: Outcome,
    /// The subject, for the access log (left out of allowed requests when it is off).
    pub(crate) user: Option<String>,
}

pub(crate) fn done(resp: Response<Body>, outcome: Outcome) -> Done {
    Done {
        resp,
        outcome,
        user: None,
    }
}

/// Entry point for every request on the main listener.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: Arc<Connection>,
    req: Request<ReqBody>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let method = req.method().clone();
    let version = req.version();
    let log_path = shared
        .settings
        .access_log
        .then(|| req.uri().path().to_string());
    let mut d = route(&shared, &conn, req).await;
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
            remote = conn.peer.ip.to_str().unwrap_or(""),
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

/// The request's method and normalised path, once the guard has passed it (a refusal's
/// challenge names the scopes of the rule they match).
struct Target<'a> {
    method: &'a str,
    path: &'a str,
}

impl Target<'_> {
    /// A refusal's answer, counted as what it is.
    fn refused(&self, app: &App, refusal: Refusal) -> Done {
        let outcome = refusal.outcome();
        done(
            respond::respond(refusal, app, self.method, self.path),
            outcome,
        )
    }
}

/// The tool's answer, or the refusal for its failure; `ok` is what an answer counts as (and a
/// target the tool would not get, which is the request's own doing).
fn forwarded(app: &App, result: Result<Response<Body>, Failed>, ok: Outcome) -> Done {
    match result {
        Ok(resp) => done(resp, ok),
        Err(failed) => {
            let refusal = Refusal::Forward(failed);
            let outcome = match refusal {
                Refusal::Forward(Failed::BadTarget) => ok,
                _ => refusal.outcome(),
            };
            done(respond::respond(refusal, app, "", ""), outcome)
        }
    }
}

/// What the stages after the guard share.
struct Ctx<'a> {
    shared: &'a Arc<Shared>,
    conn: &'a Connection,
    app: &'a Arc<App>,
    path: &'a NormalPath,
}

impl<'a> Ctx<'a> {
    fn target<'r>(&'r self, req: &'r Request<ReqBody>) -> Target<'r> {
        Target {
            method: req.method().as_str(),
            path: self.path.matching.as_str(),
        }
    }

    /// What to forward, for `who` (none on public paths).
    fn forward(
        &'a self,
        who: Option<&'a Principal>,
        access_token: Option<&'a str>,
        cookies: Option<CookiePlan>,
    ) -> Forward<'a> {
        Forward {
            peer: &self.conn.peer,
            path: &self.path.forward,
            who,
            access_token,
            names: &self.app.names,
            cookies,
        }
    }
}

/// The chain of stages (see the module documentation).
async fn route(shared: &Arc<Shared>, conn: &Connection, req: Request<ReqBody>) -> Done {
    let app = shared.app();
    let path = match guard::check(&shared.settings, &req) {
        Ok(p) => p,
        Err(r) => {
            return Target {
                method: "",
                path: "",
            }
            .refused(&app, r);
        }
    };
    let c = Ctx {
        shared,
        conn,
        app: &app,
        path: &path,
    };
    let t = c.target(&req);
    match own_endpoints::serve(shared, &app, &req, t.path).await {
        Some(Answer::Done(d)) => return d,
        Some(Answer::Refused {
            refusal,
            outcome,
            cookies,
            user,
        }) => {
            let resp = respond::respond(refusal, &app, t.method, t.path);
            let resp = with_cookies(resp, cookies);
            return Done {
                resp,
                outcome,
                user,
            };
        }
        None => {}
    }
    let settings = &shared.settings;
    if let Some(ok) = authz::unauthenticated(settings, &app, req.method(), req.headers(), t.path) {
        let sent = forward(settings, &shared.upstream, req, c.forward(None, None, None)).await;
        return forwarded(&app, sent, ok);
    }
    let Some(provider) = shared.provider() else {
        return t.refused(&app, Refusal::NotReady);
    };
    // Bearer tokens first: an API client that sends one means it.
    match authn::bearer(&req) {
        Err(why) => t.refused(&app, authn::malformed(why)),
        Ok(Some((value, offset))) => with_bearer(&c, &provider, &value, offset, req).await,
        Ok(None) => with_session(&c, &provider, req).await,
    }
}

/// A request with a bearer token (the `Authorization` value and where the token starts in it):
/// authenticated, authorised, forwarded.
async fn with_bearer(
    c: &Ctx<'_>,
    provider: &Provider,
    value: &HeaderValue,
    offset: usize,
    req: Request<ReqBody>,
) -> Done {
    let (shared, app) = (c.shared, c.app);
    let t = c.target(&req);
    let Some(token) = value.as_bytes().get(offset..) else {
        return t.refused(app, authn::malformed("malformed bearer token"));
    };
    let who =
        match authn::authenticate_bearer(shared, &c.conn.last_credential, app, provider, token)
            .await
        {
            Ok(w) => w,
            Err(r) => return t.refused(app, r),
        };
    if let Err(r) = authz::admits_client(app, &who) {
        return t.refused(app, r);
    }
    if let Err(r) = authz::authorize(app, t.method, t.path, &who) {
        return denied(&t, app, r, &who);
    }
    // Accepted, so a `b64token` (ASCII).
    let pass = if shared.settings.pass_access_token {
        match std::str::from_utf8(token) {
            Ok(token) => Some(token),
            Err(_) => return t.refused(app, authn::malformed("malformed bearer token")),
        }
    } else {
        None
    };
    let user = shared.settings.access_log.then(|| who.sub.clone());
    let f = c.forward(Some(&who), pass, None);
    let sent = forward(&shared.settings, &shared.upstream, req, f).await;
    Done {
        user,
        ..forwarded(app, sent, Outcome::allowed)
    }
}

/// A refusal by the access rules; the subject is copied only for a refusal (an allowed request
/// copies it once, for its own `Done`).
fn denied(t: &Target<'_>, app: &App, refusal: Refusal, who: &Principal) -> Done {
    Done {
        user: Some(who.sub.clone()),
        ..t.refused(app, refusal)
    }
}

/// A request without a bearer token: the session cookie, else a sign-in redirect or 401.
async fn with_session(c: &Ctx<'_>, provider: &Provider, req: Request<ReqBody>) -> Done {
    let (shared, app) = (c.shared, c.app);
    let cookies = read_cookies(req.headers(), &app.names);
    let (session, set_cookies) =
        authn::session(shared, &c.conn.last_credential, app, provider, &cookies).await;
    let t = c.target(&req);
    let session = match session {
        Some(s) => s,
        None => {
            let d = signed_out(c, provider, &t, &req, &cookies);
            return Done {
                resp: with_cookies(d.resp, set_cookies),
                ..d
            };
        }
    };
    if let Err(r) = authz::authorize(app, t.method, t.path, &session.who) {
        let d = denied(&t, app, r, &session.who);
        return Done {
            resp: with_cookies(d.resp, set_cookies),
            ..d
        };
    }
    let pass = session.at.as_deref();
    let pass = pass.filter(|_| shared.settings.pass_access_token);
    let f = c.forward(Some(&session.who), pass, Some(cookies.plan));
    let sent = forward(&shared.settings, &shared.upstream, req, f).await;
    let d = forwarded(app, sent, Outcome::allowed);
    Done {
        resp: with_cookies(d.resp, set_cookies),
        outcome: d.outcome,
        user: shared.settings.access_log.then(|| session.who.sub.clone()),
    }
}

/// No credentials: a browser navigation is sent to sign in, anything else gets a 401.
fn signed_out(
    c: &Ctx<'_>,
    provider: &Provider,
    t: &Target<'_>,
    req: &Request<ReqBody>,
    cookies: &RequestCookies<'_>,
) -> Done {
    let app = c.app;
    if !authn::wants_html(req) {
        return t.refused(app, Refusal::Unauthenticated);
    }
    let to = match req.uri().query() {
        Some(q) => format!("{}?{q}", c.path.forward),
        None => c.path.forward.clone(),
    };
    let prompt = c.shared.settings.prompt.as_deref();
    match login::start_login(app, provider, prompt, &to, &cookies.logins) {
        Ok(to) => done(respond::redirect(to), Outcome::login_redirect),
        Err(failure) => {
            let resp = respond::respond(Refusal::Login(failure), app, t.method, t.path);
            done(resp, Outcome::login_redirect)
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod version_tests {
    use super::version_str;

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

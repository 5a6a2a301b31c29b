//! Forwarding to the tool: header rewrite (RFC 9110 hop-by-hop handling, identity headers,
//! X-Forwarded-*), protocol upgrades (websockets), and streaming bodies in both directions.
//!
//! The identity and forwarding fields are computed once ([`identity_fields`], [`Peer`]) and
//! written by either writer: straight into the request head of the direct exchange, or into the
//! header map for hyper's client ([`tool_client`]). A request that gets no answer from the tool ends
//! as a [`Failed`], which the pipeline's `respond` turns into the response: nothing here builds
//! one.

pub(crate) mod tool_client;

use std::net::SocketAddr;
use std::sync::Mutex;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::Either;
use hyper_util::rt::TokioIo;

use crate::config::Settings;
use crate::session::{CookiePlan, Names, PlanBuilder, cookie_name, cookie_pairs, is_own_cookie};
use crate::wire::timeouts::{TimedBody, answer_within};
use crate::wire::{self, Body, ReqBody, strip_hop_by_hop};
use oidc::jwt::Principal;
use tool_client::Upstream;

/// Identity headers set for the tool; any copy sent by the client is removed first.
pub(crate) const X_FORWARDED_USER: &str = "x-forwarded-user";
/// See [`X_FORWARDED_USER`].
pub(crate) const X_FORWARDED_EMAIL: &str = "x-forwarded-email";
/// See [`X_FORWARDED_USER`].
pub(crate) const X_FORWARDED_GROUPS: &str = "x-forwarded-groups";
/// See [`X_FORWARDED_USER`].
pub(crate) const X_FORWARDED_PREFERRED_USERNAME: &str = "x-forwarded-preferred-username";
/// See [`X_FORWARDED_USER`].
pub(crate) const X_FORWARDED_ACCESS_TOKEN: &str = "x-forwarded-access-token";

const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
const XF_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const XF_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Identity header pairs: the `X-Forwarded-*` name and its `X-Auth-Request-*` twin.
const ID_USER: [HeaderName; 2] = [
    HeaderName::from_static(X_FORWARDED_USER),
    HeaderName::from_static("x-auth-request-user"),
];
const ID_EMAIL: [HeaderName; 2] = [
    HeaderName::from_static(X_FORWARDED_EMAIL),
    HeaderName::from_static("x-auth-request-email"),
];
const ID_GROUPS: [HeaderName; 2] = [
    HeaderName::from_static(X_FORWARDED_GROUPS),
    HeaderName::from_static("x-auth-request-groups"),
];
const ID_USERNAME: [HeaderName; 2] = [
    HeaderName::from_static(X_FORWARDED_PREFERRED_USERNAME),
    HeaderName::from_static("x-auth-request-preferred-username"),
];
const ID_TOKEN: [HeaderName; 2] = [
    HeaderName::from_static(X_FORWARDED_ACCESS_TOKEN),
    HeaderName::from_static("x-auth-request-access-token"),
];

/// Whether a client-sent header could impersonate the proxy's identity headers.
fn is_identity_header(name: &str) -> bool {
    matches!(
        name,
        X_FORWARDED_USER
            | X_FORWARDED_EMAIL
            | X_FORWARDED_GROUPS
            | X_FORWARDED_PREFERRED_USERNAME
            | X_FORWARDED_ACCESS_TOKEN
    ) || name.starts_with("x-auth-request-")
}

/// The characters of a field name every server reads alike: letters, digits and `-`.
const PLAIN_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'-';
        b += 1;
    }
    t
};

/// Whether a client's field is dropped before the request goes to the tool: a copy of an
/// identity field; a name with any character but letters, digits and `-`, since CGI, WSGI and
/// PHP read `X_Forwarded_User` (and Apache's CGI any other such character) as
/// `X-Forwarded-User` — so no spelling maps to an identity field in any framework (nginx,
/// Apache 2.4, gunicorn and Puma drop such names too); and `HTTP2-Settings`, which exists only
/// for the refused `h2c` upgrade (RFC 9113 §3.1).
fn is_dropped(name: &str) -> bool {
    is_identity_header(name)
        || !name.bytes().all(|b| PLAIN_NAME[usize::from(b)])
        || name == "http2-settings"
}

/// Whether the client accepts trailer fields: a `TE` field lists `trailers` (as hyper's server
/// reads it, which sends trailers only then).
pub(crate) fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

/// The protocols an `Upgrade` field lists (RFC 9110 §7.8: `protocol-name ["/" version]`), by
/// name.
fn upgrade_protocols(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|p| p.split(|&b| b == b'/').next().unwrap_or(p).trim_ascii())
        .filter(|p| !p.is_empty())
}

/// Whether a request asks for a websocket upgrade (RFC 6455 §4.1: HTTP/1.1, `Connection:
/// upgrade` and `websocket` among the `Upgrade` protocols). Only websockets are switched to:
/// any other `Upgrade` (`h2c`, removed by RFC 9113 §3.1, above all: a tool that honours it, as
/// hypercorn does, would carry every later request of the connection past authentication,
/// policy, identity fields and the access log) is dropped with the other hop-by-hop fields,
/// and the request goes on as an ordinary one.
pub(crate) fn wants_upgrade(req: &Request<ReqBody>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        && upgrade_protocols(req.headers()).any(|p| p.eq_ignore_ascii_case(b"websocket"))
}

/// Whether the tool's 101 switches to the websocket protocol that was asked for, and to nothing
/// else: only such a connection is spliced.
fn switches_to_websocket(headers: &HeaderMap) -> bool {
    let mut protocols = upgrade_protocols(headers).peekable();
    protocols.peek().is_some() && protocols.all(|p| p.eq_ignore_ascii_case(b"websocket"))
}

/// Removes the client's identity headers, names that servers may read as other names, and the
/// proxy's cookies ([`is_dropped`]). Every request to the tool passes here, whichever parser
/// read it, so this is the one place the rule holds.
pub(crate) fn sanitise_request_headers(
    headers: &mut HeaderMap,
    names: &Names,
    cookies: Option<CookiePlan>,
    trust_forwarded: bool,
) {
    // (An empty vector does not allocate: only requests with such fields pay.)
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_dropped(n.as_str()))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
    if !trust_forwarded {
        remove_present(headers, &[header::FORWARDED, X_REAL_IP]);
    }
    strip_own_cookies(headers, names, cookies);
}

/// Removes the fields of these names that are there: one pass over the (few) names present
/// instead of a hashed lookup for each, usually absent, name.
fn remove_present<const N: usize>(headers: &mut HeaderMap, names: &[HeaderName; N]) {
    let mut present = 0u64;
    for k in headers.keys() {
        if let Some(i) = names.iter().position(|n| n == k) {
            present |= 1 << i;
        }
    }
    for (i, name) in names.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// Removes the proxy's cookies from the `Cookie` header lines, keeping the others byte for byte
/// and in order, as `plan` says (worked out here when the caller has not read the lines):
/// untouched, dropped, or the others of all lines joined with `"; "` into one line, built in one
/// pass with one allocation.
fn strip_own_cookies(headers: &mut HeaderMap, names: &Names, plan: Option<CookiePlan>) {
    let plan = plan.unwrap_or_else(|| {
        let mut plan = PlanBuilder::default();
        for value in headers.get_all(header::COOKIE) {
            let value = value.to_str();
            plan.line(value.is_ok());
            for pair in value.into_iter().flat_map(cookie_pairs) {
                plan.pair(pair, names);
            }
        }
        plan.finish()
    });
    match plan {
        CookiePlan::Keep => return,
        CookiePlan::Drop => {
            headers.remove(header::COOKIE);
            return;
        }
        CookiePlan::Rewrite => {}
    }
    let kept = || {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(cookie_pairs)
            .filter(|pair| !is_own_cookie(cookie_name(pair), names))
    };
    let (len, count) = kept().fold((0, 0), |(l, c), p| (l + p.len(), c + 1));
    let mut joined = String::with_capacity(len + 2 * count);
    for pair in kept() {
        if !joined.is_empty() {
            joined.push_str("; ");
        }
        joined.push_str(pair);
    }
    headers.remove(header::COOKIE);
    if let Ok(v) = HeaderValue::from_str(&joined)
        && !joined.is_empty()
    {
        headers.insert(header::COOKIE, v);
    }
}

/// The identity header fields for a caller: each value under both the `X-Forwarded-*` and the
/// `X-Auth-Request-*` name. Values that are not valid field values (control characters) are
/// left out.
pub(crate) fn identity_fields(
    who: &Principal,
    access_token: Option<&str>,
    mut put: impl FnMut(&[HeaderName; 2], &str),
) {
    let mut field = |names: &[HeaderName; 2], value: &str| {
        // What `HeaderValue::from_str` accepts.
        if value
            .bytes()
            .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
        {
            put(names, value);
        }
    };
    field(&ID_USER, &who.sub);
    if let Some(email) = &who.email {
        field(&ID_EMAIL, email);
    }
    match who.groups.as_slice() {
        [] => {}
        [one] => field(&ID_GROUPS, one),
        many => field(&ID_GROUPS, &many.join(",")),
    }
    if let Some(u) = &who.username {
        field(&ID_USERNAME, u);
    }
    if let Some(t) = access_token {
        field(&ID_TOKEN, t);
    }
}

/// Adds the identity headers ([`identity_fields`]) to a header map.
pub(crate) fn add_identity(headers: &mut HeaderMap, who: &Principal, access_token: Option<&str>) {
    identity_fields(who, access_token, |[first, second], value| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(first.clone(), v.clone());
            headers.insert(second.clone(), v);
        }
    });
}

/// The client's address as a header value (made once per connection, see [`Peer`]).
pub(crate) fn ip_value(peer: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.ip().to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The client end of a connection, worked out once per connection rather than per request.
#[derive(Debug)]
pub(crate) struct Peer {
    /// The client's IP as a header value (for `X-Forwarded-For`).
    pub(crate) ip: HeaderValue,
    /// Whether the client connection is TLS.
    pub(crate) tls: bool,
    /// A buffer for request heads to the tool, kept between the connection's requests (heads
    /// with a token are too large for the allocator's per-thread cache).
    head: Mutex<Vec<u8>>,
}

/// Largest head buffer kept for the next request.
const KEPT_HEAD: usize = 16 * 1024;

impl Peer {
    /// Describes a client connection.
    pub(crate) fn new(addr: SocketAddr, tls: bool) -> Self {
        Peer {
            ip: ip_value(addr),
            tls,
            head: Mutex::new(Vec::new()),
        }
    }

    /// The connection's head buffer (a new one while another request of it holds it).
    pub(crate) fn head_buffer(&self) -> Vec<u8> {
        std::mem::take(&mut *self.head.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Gives the head buffer back for the next request.
    pub(crate) fn keep_head_buffer(&self, buf: Vec<u8>) {
        if buf.capacity() <= KEPT_HEAD {
            *self.head.lock().unwrap_or_else(|p| p.into_inner()) = buf;
        }
    }
}

const HTTPS: HeaderValue = HeaderValue::from_static("https");
const HTTP: HeaderValue = HeaderValue::from_static("http");

/// The X-Forwarded-For/Proto/Host fields of a client connection when no client value is kept:
/// one description for both writers, the direct exchange's head and hyper's header map.
#[inline]
fn forwarded_fields(
    peer: &Peer,
    host: Option<&HeaderValue>,
    mut field: impl FnMut(&HeaderName, &HeaderValue),
) {
    field(&XFF, &peer.ip);
    let proto = if peer.tls { HTTPS } else { HTTP };
    field(&XF_PROTO, &proto);
    if let Some(h) = host {
        field(&XF_HOST, h);
    }
}

/// Sets X-Forwarded-For/Proto/Host (appending to, or keeping, trusted client values).
pub(crate) fn add_forwarded(
    headers: &mut HeaderMap,
    peer: &Peer,
    host: Option<&HeaderValue>,
    trust: bool,
) {
    if !trust {
        forwarded_fields(peer, host, |name, value| {
            headers.insert(name.clone(), value.clone());
        });
        if host.is_none() {
            headers.remove(&XF_HOST);
        }
        return;
    }
    let appended = match headers.get(&XFF) {
        Some(prev) if trust => {
            let mut v = Vec::with_capacity(prev.len() + 2 + peer.ip.len());
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(peer.ip.as_bytes());
            HeaderValue::from_bytes(&v).ok()
        }
        _ => None,
    };
    headers.insert(XFF, appended.unwrap_or_else(|| peer.ip.clone()));
    if !(trust && headers.contains_key(&XF_PROTO)) {
        headers.insert(
            XF_PROTO,
            HeaderValue::from_static(if peer.tls { "https" } else { "http" }),
        );
    }
    if !(trust && headers.contains_key(&XF_HOST)) {
        match host {
            Some(h) => {
                headers.insert(XF_HOST, h.clone());
            }
            None => {
                headers.remove(&XF_HOST);
            }
        }
    }
}

/// What to forward.
pub(crate) struct Forward<'a> {
    /// The client connection.
    pub(crate) peer: &'a Peer,
    /// Normalised path to send.
    pub(crate) path: &'a str,
    /// The caller, for identity headers (none on public paths).
    pub(crate) who: Option<&'a Principal>,
    /// Access token to pass on, if configured.
    pub(crate) access_token: Option<&'a str>,
    /// Cookie names to strip.
    pub(crate) names: &'a Names,
    /// What to do with the `Cookie` lines, when the caller has already read them.
    pub(crate) cookies: Option<CookiePlan>,
}

/// Why a request got no answer from the tool.
#[derive(Debug)]
pub(crate) enum Failed {
    /// The normalised target and query do not make a request target.
    BadTarget,
    /// The client's request body stalled (`--client-body-timeout`).
    BodyStalled,
    /// The tool could not be reached, or its answer was refused.
    Tool(tool_client::Error),
    /// The tool did not answer within `--upstream-timeout`.
    Timeout,
}

/// Sends the request to the tool and returns its response, streaming both bodies. Upgrades are
/// spliced once both sides agree (101).
pub(crate) async fn forward(
    settings: &Settings,
    tool: &Upstream,
    mut req: Request<ReqBody>,
    f: Forward<'_>,
) -> Result<Response<Body>, Failed> {
    let upgrade = wants_upgrade(&req);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    // The target's authority wins over `Host` (RFC 9112 §3.2.2; HTTP/2's `:authority`). Otherwise
    // the pipeline's guard has made sure an HTTP/1.1 request has one valid `Host`: only HTTP/1.0 may
    // come without one.
    let authority = req
        .uri()
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    // The client's one `Host` field stays as it is (writing it again would change nothing); an
    // HTTP/2 request's, which nothing checked, is written again.
    let keep_host = authority.is_none() && req.version() != Version::HTTP_2;
    let host = authority.or_else(|| req.headers().get(header::HOST).cloned());
    // Built while the client's URI is still whole: the query is borrowed, not copied.
    let query = req.uri().query();
    let mut pq = String::with_capacity(f.path.len() + query.map_or(0, |q| q.len() + 1));
    pq.push_str(f.path);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    // `TE` is hop-by-hop; what it says of trailers holds for this proxy too, which relays the
    // tool's trailer fields to a client that accepts them (RFC 9110 §10.1.4).
    let te_trailers = !upgrade && accepts_trailers(req.headers());
    let (mut parts, body) = req.into_parts();
    // Origin-form: the connection already goes to the tool.
    let Ok(uri) = http::Uri::try_from(pq) else {
        return Err(Failed::BadTarget);
    };
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    let headers = &mut parts.headers;
    strip_hop_by_hop(headers);
    sanitise_request_headers(
        headers,
        f.names,
        f.cookies,
        settings.trust_forwarded_headers,
    );
    if te_trailers {
        // RFC 9110 §10.1.4: a sender of `TE` also lists it in `Connection`.
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("te"));
    }
    let direct = settings.http1_fast_path
        && !upgrade
        && parts.method != Method::CONNECT
        && body.is_end_stream();
    // A direct request's X-Forwarded-* fields are written straight into its head when no client
    // value is kept: only the client's copies leave the map.
    let inline_forwarded = direct && !settings.trust_forwarded_headers;
    if inline_forwarded {
        remove_present(headers, &[XFF, XF_PROTO, XF_HOST]);
    } else {
        add_forwarded(
            headers,
            f.peer,
            host.as_ref(),
            settings.trust_forwarded_headers,
        );
    }
    match &host {
        // (`Connection: host` has removed it.)
        Some(_) if keep_host && headers.contains_key(header::HOST) => None,
        Some(h) => headers.insert(header::HOST, h.clone()),
        None => match HeaderValue::from_str(settings.upstream.as_str()) {
            Ok(h) => headers.insert(header::HOST, h),
            Err(_) => None,
        },
    };
    let timeout = settings.upstream_timeout;
    // Without a body or an upgrade, the rewritten head goes to the tool as it is, the identity
    // fields written straight into it.
    if direct {
        return send_direct(tool, timeout, &parts, &f, host.as_ref(), inline_forwarded).await;
    }
    send_through_hyper(settings, tool, parts, body, &f, client_upgrade).await
}

/// Sends a bodiless request's rewritten head to the tool (the direct exchange), writing the
/// forwarding fields (`inline_forwarded`) and the identity fields straight into it.
#[inline]
async fn send_direct(
    tool: &Upstream,
    timeout: std::time::Duration,
    parts: &http::request::Parts,
    f: &Forward<'_>,
    host: Option<&HeaderValue>,
    inline_forwarded: bool,
) -> Result<Response<Body>, Failed> {
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut head = f.peer.head_buffer();
    wire::request_head(&mut head, &parts.method, target, &parts.headers, |out| {
        if inline_forwarded {
            // As `add_forwarded` sets them without trusted client values.
            forwarded_fields(f.peer, host, |name, value| {
                wire::write_field(out, name, value.as_bytes());
            });
        }
        if let Some(who) = f.who {
            identity_fields(who, f.access_token, |names, value| {
                for name in names {
                    wire::write_field(out, name, value.as_bytes());
                }
            });
        }
    });
    // Pinned where it is: the exchange's future is large, and the timeout need not move it.
    let resp = {
        let sent = std::pin::pin!(tool.request_direct(&head, &parts.method));
        answered(tokio::time::timeout(timeout, sent).await.ok())
    };
    f.peer.keep_head_buffer(head);
    // Its header fields travel in the body, hop-by-hop ones already dropped
    // (`wire::Fields`).
    let (parts, body) = resp?.into_parts();
    Ok(Response::from_parts(
        parts,
        Either::Left(Either::Right(body)),
    ))
}

/// Sends a request with a body, or an upgrade, through hyper's client; splices an upgrade once
/// both sides agree (101).
async fn send_through_hyper(
    settings: &Settings,
    tool: &Upstream,
    mut parts: http::request::Parts,
    body: ReqBody,
    f: &Forward<'_>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response<Body>, Failed> {
    let upgrade = client_upgrade.is_some();
    let timeout = settings.upstream_timeout;
    let headers = &mut parts.headers;
    if let Some(who) = f.who {
        add_identity(headers, who, f.access_token);
    }
    if upgrade {
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let (body, mut watch) = TimedBody::new(body, settings.client_body_timeout);
    let upstream_req = Request::from_parts(parts, body);
    // The tool has --upstream-timeout to answer from when the request body has been sent.
    let sent = answer_within(tool.request(upstream_req), watch.sent.take(), timeout);
    let mut resp = match sent.await {
        Some(Err(_)) if watch.stalled() => {
            tracing::info!("request body stalled");
            return Err(Failed::BodyStalled);
        }
        r => answered(r)?,
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade.filter(|_| switches_to_websocket(resp.headers()))
        else {
            // The same generic 502 as the direct exchange gives an unexpected 101.
            let e = wire::ExchangeError::Malformed(
                "protocol switch without a websocket upgrade request, or not to websocket",
            );
            return Err(Failed::Tool(e.into()));
        };
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((client, upstream)) => {
                    let mut client = TokioIo::new(client);
                    let mut upstream = TokioIo::new(upstream);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
        let (parts, body) = resp.into_parts();
        return Ok(Response::from_parts(
            parts,
            Either::Left(Either::Left(body)),
        ));
    }
    // What the direct exchange refuses is refused here too; the client gets this proxy's HTTP
    // version, not the tool's (RFC 9110 §6.2).
    if let Err(e) = wire::check_framing(resp.version(), resp.headers_mut()) {
        return Err(Failed::Tool(e.into()));
    }
    *resp.version_mut() = Version::HTTP_11;
    strip_hop_by_hop(resp.headers_mut());
    let (parts, body) = resp.into_parts();
    Ok(Response::from_parts(
        parts,
        Either::Left(Either::Left(body)),
    ))
}

/// The tool's response, or why there is none (`None`: no answer in time).
fn answered<T>(result: Option<Result<T, tool_client::Error>>) -> Result<T, Failed> {
    match result {
        Some(Ok(resp)) => Ok(resp),
        Some(Err(e)) => Err(Failed::Tool(e)),
        None => Err(Failed::Timeout),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn spoofed_identity_and_own_cookies_are_removed() {
        let names = Names::new("_keyway_proxy", false);
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("x-forwarded-user", "admin"),
            ("X-Forwarded-Email", "admin@example.com"),
            ("x-forwarded-groups", "admins"),
            ("x-auth-request-user", "admin"),
            ("x-auth-request-anything", "x"),
            ("x-forwarded-access-token", "t"),
            ("forwarded", "for=1.2.3.4"),
            (
                "cookie",
                "a=1; _keyway_proxy=sealed; _keyway_proxy_0=x; _keyway_proxy_login_abcdefabcdef=y; b=2",
            ),
            ("cookie", "keyway_issuer_session=z"),
            ("x-other", "kept"),
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        sanitise_request_headers(&mut h, &names, None, false);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h["cookie"], "a=1; b=2; keyway_issuer_session=z");
        assert_eq!(h["x-other"], "kept");
    }

    #[test]
    fn names_that_servers_read_as_other_names_are_dropped() {
        let names = Names::new("_keyway_proxy", false);
        let mut h = HeaderMap::new();
        for n in [
            // CGI and WSGI: HTTP_X_FORWARDED_USER, like X-Forwarded-User.
            "X_Forwarded_User",
            "x-forwarded_user",
            "x_auth_request_user",
            // Apache's CGI maps every such character to `_`.
            "x.forwarded.user",
            "x-forwarded~email",
            "my_header",
            // Only for the h2c upgrade, which is never forwarded.
            "http2-settings",
            "x-other",
            "content-type",
            "x-forwarded-user2",
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static("admin"),
            );
        }
        sanitise_request_headers(&mut h, &names, None, false);
        let mut kept: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["content-type", "x-forwarded-user2", "x-other"]);
    }

    fn upgrade_request(version: Version, fields: &[(&str, &str)]) -> Request<ReqBody> {
        let mut req = Request::new(ReqBody::Empty);
        *req.version_mut() = version;
        for (n, v) in fields {
            req.headers_mut().append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        req
    }

    #[test]
    fn only_websocket_upgrades_are_forwarded() {
        let asks =
            |version, fields: &[(&str, &str)]| wants_upgrade(&upgrade_request(version, fields));
        let v11 = Version::HTTP_11;
        assert!(asks(
            v11,
            &[("connection", "Upgrade"), ("upgrade", "websocket")]
        ));
        assert!(asks(
            v11,
            &[
                ("connection", "keep-alive, upgrade"),
                ("upgrade", "WebSocket")
            ]
        ));
        assert!(asks(
            v11,
            &[("connection", "upgrade"), ("upgrade", "h2c, websocket/13")]
        ));
        // h2c (RFC 9113 §3.1) and anything else: an ordinary request.
        assert!(!asks(
            v11,
            &[
                ("connection", "Upgrade, HTTP2-Settings"),
                ("upgrade", "h2c")
            ]
        ));
        assert!(!asks(
            v11,
            &[("connection", "upgrade"), ("upgrade", "TLS/1.2")]
        ));
        assert!(!asks(
            v11,
            &[("connection", "upgrade"), ("upgrade", "websocketx")]
        ));
        assert!(!asks(v11, &[("connection", "upgrade"), ("upgrade", "")]));
        // No `Connection: upgrade`, or not HTTP/1.1.
        assert!(!asks(v11, &[("upgrade", "websocket")]));
        let ws = [("connection", "upgrade"), ("upgrade", "websocket")];
        assert!(!asks(Version::HTTP_10, &ws));
        assert!(!asks(Version::HTTP_2, &ws));
    }

    #[test]
    fn only_a_switch_to_websocket_is_spliced() {
        let switches = |upgrade: &[&str]| {
            let mut h = HeaderMap::new();
            for u in upgrade {
                h.append(header::UPGRADE, u.parse().unwrap());
            }
            switches_to_websocket(&h)
        };
        assert!(switches(&["websocket"]));
        assert!(switches(&["WebSocket"]));
        assert!(!switches(&[]));
        assert!(!switches(&["h2c"]));
        assert!(!switches(&["websocket, h2c"]));
        assert!(!switches(&["websocket", "h2c"]));
        assert!(!switches(&[" , "]));
    }

    /// The `Cookie` lines after stripping, from the given lines.
    fn stripped(names: &Names, lines: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(header::COOKIE, HeaderValue::from_bytes(l).unwrap());
        }
        let mut planned = h.clone();
        let plan = crate::session::read_cookies(&h, names).plan;
        strip_own_cookies(&mut planned, names, Some(plan));
        strip_own_cookies(&mut h, names, None);
        let out: Vec<Vec<u8>> = h
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect();
        let via_plan: Vec<Vec<u8>> = planned
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect();
        assert_eq!(out, via_plan, "the plan read with the session agrees");
        out
    }

    fn lines(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn cookie_rewrite_cases() {
        let plain = Names::new("_keyway_proxy", false);
        let host = Names::new("_keyway_proxy", true);
        // Only ours: the header goes.
        assert!(stripped(&plain, &[b"_keyway_proxy=s"]).is_empty());
        assert!(stripped(&plain, &[b"_keyway_proxy_0=a; _keyway_proxy_1=b"]).is_empty());
        assert!(
            stripped(
                &host,
                &[
                    b"__Host-_keyway_proxy=s",
                    b"__Host-_keyway_proxy_login_abcdefabcdef=l"
                ]
            )
            .is_empty()
        );
        // None of ours on one line: untouched, byte for byte (spacing kept).
        assert_eq!(
            stripped(&plain, &[b"a=1;b=2 ;  c=\"x y\""]),
            lines(&["a=1;b=2 ;  c=\"x y\""])
        );
        // Ours among others, split parts, duplicated names: the others in order.
        assert_eq!(
            stripped(
                &plain,
                &[b"a=1; _keyway_proxy_0=p; a=2; _keyway_proxy_1=q; _keyway_proxy=s; b="]
            ),
            lines(&["a=1; a=2; b="])
        );
        // The __Host- form: the unprefixed name is someone else's cookie and stays.
        assert_eq!(
            stripped(
                &host,
                &[b"__Host-_keyway_proxy=s; _keyway_proxy=t; __Host-_keyway_proxy_3=u"]
            ),
            lines(&["_keyway_proxy=t"])
        );
        // Names that only look like ours stay.
        assert_eq!(
            stripped(
                &plain,
                &[b"_keyway_proxyx=1; _keyway_proxy_x=2; _keyway_proxy_=3; _keyway_proxy=s"]
            ),
            lines(&["_keyway_proxyx=1; _keyway_proxy_x=2; _keyway_proxy_=3"])
        );
        // Whitespace variants and empty pairs; whitespace around the name does not hide ours.
        assert_eq!(
            stripped(
                &plain,
                &[b" ;a=1 ;;\t_keyway_proxy =s;  _keyway_proxy_2\t=x ; b=2;"]
            ),
            lines(&["a=1; b=2"])
        );
        assert!(stripped(&plain, &[b"", b" ; "]).is_empty());
        assert!(stripped(&plain, &[]).is_empty());
        // Several lines (HTTP/2 splits them): joined in order, ours removed.
        assert_eq!(
            stripped(
                &plain,
                &[
                    b"a=1",
                    b"_keyway_proxy=s",
                    b"b=2; _keyway_proxy_login_abcdefabcdef=l",
                    b"c=3"
                ]
            ),
            lines(&["a=1; b=2; c=3"])
        );
        assert_eq!(stripped(&plain, &[b"a=1", b"b=2"]), lines(&["a=1; b=2"]));
        // A line that is not visible ASCII cannot be checked, so it is not forwarded.
        assert_eq!(stripped(&plain, &[b"a=1", b"x=\xff"]), lines(&["a=1"]));
        assert!(stripped(&plain, &[b"x=\xff"]).is_empty());
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("content-type", "text/plain".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));
    }

    #[test]
    fn identity_values_with_control_characters_are_left_out() {
        let who = Principal {
            sub: "alice\r\nx-evil: 1".into(),
            email: Some("alice@example.com".into()),
            username: Some("al\u{7f}".into()),
            groups: vec!["a\tb".into()],
            ..Default::default()
        };
        let mut got = Vec::new();
        identity_fields(&who, Some("tok"), |[a, b], v| {
            got.push(format!("{a}={v}"));
            got.push(format!("{b}={v}"));
        });
        assert_eq!(
            got,
            [
                "x-forwarded-email=alice@example.com",
                "x-auth-request-email=alice@example.com",
                "x-forwarded-groups=a\tb",
                "x-auth-request-groups=a\tb",
                "x-forwarded-access-token=tok",
                "x-auth-request-access-token=tok",
            ]
        );
    }

    #[test]
    fn identity_and_forwarded_headers() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        let who = Principal {
            sub: "alice".into(),
            email: Some("alice@example.com".into()),
            groups: vec!["eng".into(), "ops".into()],
            ..Default::default()
        };
        add_identity(&mut h, &who, None);
        let host: HeaderValue = "tool.example.com".parse().unwrap();
        add_forwarded(
            &mut h,
            &Peer::new("10.0.0.9:1234".parse().unwrap(), true),
            Some(&host),
            false,
        );
        assert_eq!(h["x-forwarded-user"], "alice");
        assert_eq!(h["x-auth-request-email"], "alice@example.com");
        assert_eq!(h["x-forwarded-groups"], "eng,ops");
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "tool.example.com");
        assert!(!h.contains_key("x-forwarded-access-token"));
        let mut t = HeaderMap::new();
        t.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        let plain = Peer::new("10.0.0.9:1".parse().unwrap(), false);
        add_forwarded(&mut t, &plain, None, true);
        assert_eq!(t["x-forwarded-for"], "6.6.6.6, 10.0.0.9");
    }
}

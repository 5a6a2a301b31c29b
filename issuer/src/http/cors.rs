//! Cross-origin resource sharing for browser-based clients (SPAs, browser MCP clients).
//!
//! - Discovery and the JWKS are public documents: `Access-Control-Allow-Origin: *`.
//! - The token, revocation, userinfo and registration endpoints answer an `Origin` only if it is
//!   the origin of a redirect URI of some client (ConnectedApp, or dynamically registered and not
//!   expired: one indexed lookup of that origin in the store) or is listed in
//!   `--cors-allowed-origins`; the answer echoes that origin with `Vary: Origin`.
//!   The registration endpoint exists only with `--dcr` (otherwise an unknown path: no CORS).
//! - Never `Access-Control-Allow-Credentials`: none of these endpoints uses cookies.
//! - Introspection (for resource servers), the authorization, login and consent pages and the
//!   account pages get no CORS headers at all: they stay same-origin.
//!
//! Preflights (`OPTIONS` with `Access-Control-Request-Method`) are answered here with 204, before
//! the endpoint; an origin that is not allowed gets a 204 without any `Access-Control-Allow-*`
//! header, which the browser treats as a refusal.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::state::{Issuer, Shared};

/// How long a browser may cache a preflight answer (seconds).
const MAX_AGE: &str = "600";
/// Request headers a cross-origin client may send.
const ALLOW_HEADERS: &str = "Authorization, Content-Type";
/// Response headers a cross-origin client may read besides the CORS-safelisted ones.
const EXPOSE_HEADERS: &str = "WWW-Authenticate, Retry-After";

impl Issuer {
    /// Whether `origin` may call the client-facing endpoints cross-origin: the configured list,
    /// then the ConnectedApps' origins (a hash lookup), then one indexed store lookup of the
    /// origin among registered clients that have not expired (never a read of every client, so
    /// a client registered at another replica counts at once and the cost does not grow with
    /// the number of clients).
    async fn origin_allowed(&self, origin: &str) -> bool {
        if self.cors().allowed.iter().any(|o| o == origin)
            || self.clients().has_redirect_origin(origin)
        {
            return true;
        }
        let Some(dcr) = self.dcr() else {
            return false;
        };
        match self
            .store()
            .has_client_origin(origin, dcr.used_since(self.clock().now()))
            .await
        {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "could not look up registered clients' origins for CORS");
                false
            }
        }
    }
}

fn is_preflight(req: &Request) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn preflight(methods: &'static str) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE),
    );
    res
}

/// Middleware for the public documents (discovery, JWKS): any origin, GET only.
pub(crate) async fn public(req: Request, next: Next) -> Response {
    let mut res = if is_preflight(&req) {
        preflight("GET")
    } else {
        next.run(req).await
    };
    res.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    res
}

/// Middleware for the token, revocation, userinfo and registration endpoints: allowed origins
/// only (see the module documentation).
pub(crate) async fn clients(State(iss): State<Shared>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_string);
    let allowed = match &origin {
        Some(o) => iss.origin_allowed(o).await,
        None => false,
    };
    let methods = if req.uri().path() == "/userinfo" {
        "GET, POST"
    } else {
        "POST"
    };
    let mut res = if is_preflight(&req) {
        if allowed {
            preflight(methods)
        } else {
            StatusCode::NO_CONTENT.into_response()
        }
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let (true, Some(o)) = (allowed, origin) {
        allow(h, &o);
    }
    res
}

fn allow(h: &mut HeaderMap, origin: &str) {
    // The origin was matched against a list, so it is a valid header value; be safe anyway.
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
}

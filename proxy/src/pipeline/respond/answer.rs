//! The proxy's own answers that are not refusals: the sign-in and sign-out redirects, the
//! sign-out confirmation page, the RFC 9728 metadata document, and the admin listener's
//! `/healthz`, `/readyz`, `/metrics` and its 404.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{Either, Full};

use crate::app::App;
use crate::login::Redirect;
use crate::wire::Body;

/// A `302 Found` to the redirect's location, with its cookies; never cached.
pub(crate) fn redirect(to: Redirect) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::new())));
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(&to.location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_cookies(resp, to.cookies)
}

/// Appends `Set-Cookie` headers.
pub(crate) fn with_cookies(
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

/// The sign-out confirmation page: no framing, no scripts, never cached.
pub(crate) fn sign_out_page(html: String) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(html))));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// The RFC 9728 protected resource metadata document.
pub(crate) fn metadata_document(app: &App) -> Response<Body> {
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

/// What the admin listener answers for one of its paths.
#[derive(Debug)]
pub(crate) enum Admin {
    /// `/healthz`: the process serves.
    Healthy,
    /// `/readyz`: whether the issuer's metadata and keys are loaded.
    Ready(bool),
    /// `/metrics`: the OpenMetrics text.
    Metrics(String),
    /// Any other path.
    NotFound,
}

/// The admin listener's response (plain text for probes, OpenMetrics for `/metrics`).
pub(crate) fn admin(answer: Admin) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match answer {
        Admin::Healthy => (StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n")),
        Admin::Ready(true) => (StatusCode::OK, "text/plain", Bytes::from_static(b"ready\n")),
        Admin::Ready(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            Bytes::from_static(b"issuer not loaded\n"),
        ),
        Admin::Metrics(text) => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Bytes::from(text),
        ),
        Admin::NotFound => (
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found\n"),
        ),
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

//! The operational URLs: `/healthz`, `/readyz`, `/metrics`, and the answer to any other URL.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::error::Error;
use crate::state::Ops;

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// Any other URL: the HTML not-found page.
pub(crate) async fn not_found() -> Error {
    Error::page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address.",
    )
}

/// `GET /readyz`: clients loaded, a signing key, the federation cookie key when there are
/// upstreams, and a store that answers.
pub(crate) async fn readyz(State(ops): State<Ops>) -> Response {
    if !ops.registry().is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "clients not loaded yet").into_response();
    }
    if ops.tokens().keys().ring().signing.is_none() {
        return (StatusCode::SERVICE_UNAVAILABLE, "no signing key yet").into_response();
    }
    if ops.awaits_cookie_key() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no federation cookie key yet",
        )
            .into_response();
    }
    match ops.tokens().store().ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "store ping failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
    }
}

/// `GET /metrics` (OpenMetrics text).
pub(crate) async fn metrics(State(ops): State<Ops>) -> Response {
    let mut res = ops.metrics().encode().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    res
}

//! The operational HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (the process
//! serves), `/readyz` (the replica leads and runs, or stands by).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::operator::Readiness;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

/// The router (tests call it directly).
pub(crate) fn router(metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, readiness })
}

async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Binds the endpoints' address (before anything else starts, so that a taken port fails fast).
pub(crate) async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(Error::Http)
}

/// Serves the endpoints on `listener` until `shutdown` is cancelled.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) -> Result<()> {
    axum::serve(listener, router(metrics, readiness))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(Error::Http)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    async fn get(router: Router, path: &str) -> (StatusCode, String) {
        let response = router
            .oneshot(axum::http::Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn endpoints() {
        let metrics = Arc::new(Metrics::new());
        let readiness = Arc::new(Readiness::default());
        let r = router(metrics.clone(), readiness.clone());
        assert_eq!(get(r.clone(), "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            get(r.clone(), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        readiness.set(true);
        assert_eq!(get(r.clone(), "/readyz").await.0, StatusCode::OK);
        metrics.write(crate::metrics::Write::Status);
        let (status, text) = get(r, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.contains("keyway_operator_writes_total{kind=\"status\"} 1"),
            "{text}"
        );
    }
}

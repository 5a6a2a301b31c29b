//! The admission endpoint (`POST /mutate`, AdmissionReview v1 in and out), the admin endpoints
//! (`/healthz`, `/readyz`, `/metrics`), and the HTTPS accept loop (rustls with the ring
//! provider, HTTP/1.1 and HTTP/2, certificate swapped in place through [`CertSlot`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use api::ConnectedApp;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use contract::inject::CONNECTED_APP_ANNOTATION;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, ResourceExt};
use kube::{Api, Client};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::certs::CertSlot;
use super::inject::{self, Plan, SidecarConfig};

/// Largest AdmissionReview accepted (the API server's own request limit is 3 MiB).
pub(crate) const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// Time a client gets to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time in-flight requests get to finish on shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the webhook finds ConnectedApps.
pub trait AppDirectory: Send + Sync + 'static {
    /// The ConnectedApp `name` in `namespace`, or `None` when it does not exist.
    fn find(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<ConnectedApp>, kube::Error>> + Send;
}

/// Reads ConnectedApps straight from the API (no cache: an app created a moment before its
/// Deployment must be found).
impl AppDirectory for Client {
    async fn find(&self, namespace: &str, name: &str) -> Result<Option<ConnectedApp>, kube::Error> {
        Api::<ConnectedApp>::namespaced(self.clone(), namespace)
            .get_opt(name)
            .await
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The webhook's Prometheus metrics (`keyway_webhook_*`).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    admissions: Family<OutcomeLabels, Counter>,
    duration: Histogram,
    /// Expiry of the served certificate, Unix seconds.
    pub certificate_expiry: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keyway_webhook");
        let admissions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "admissions",
            "Admission reviews by outcome (injected, skipped, refused, error)",
            admissions.clone(),
        );
        let duration = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "admission_duration_seconds",
            "Time to answer an admission review",
            duration.clone(),
        );
        let certificate_expiry = Gauge::default();
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "Expiry of the served certificate (Unix seconds)",
            certificate_expiry.clone(),
        );
        Self {
            registry,
            admissions,
            duration,
            certificate_expiry,
        }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> String {
        crate::metrics::encode_registry(&self.registry)
    }
}

/// The webhook: where apps are looked up, what the sidecar looks like, and its metrics.
pub struct Webhook<D> {
    /// ConnectedApp lookups.
    pub directory: D,
    /// The injected container's settings.
    pub sidecar: SidecarConfig,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// How one review ended, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Injected,
    Skipped,
    Refused,
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Injected => "injected",
            Self::Skipped => "skipped",
            Self::Refused => "refused",
            Self::Error => "error",
        }
    }
}

impl<D: AppDirectory> Webhook<D> {
    /// Answers one admission request.
    pub(crate) async fn admit(&self, request: &AdmissionRequest<Pod>) -> AdmissionResponse {
        let start = Instant::now();
        let (response, outcome) = self.decide(request).await;
        self.metrics
            .admissions
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
        self.metrics.duration.observe(start.elapsed().as_secs_f64());
        response
    }

    async fn decide(&self, request: &AdmissionRequest<Pod>) -> (AdmissionResponse, Outcome) {
        let allow = AdmissionResponse::from(request);
        if request.operation != Operation::Create {
            return (allow, Outcome::Skipped);
        }
        let Some(pod) = &request.object else {
            return (allow, Outcome::Skipped);
        };
        let pod_name = pod
            .metadata
            .name
            .clone()
            .or_else(|| pod.metadata.generate_name.clone())
            .unwrap_or_default();
        let namespace = request
            .namespace
            .clone()
            .or_else(|| pod.namespace())
            .unwrap_or_default();
        let injection = match inject::plan(pod) {
            Ok(Plan::Skip(why)) => {
                tracing::debug!(%namespace, pod = %pod_name, why, "not injecting");
                return (allow, Outcome::Skipped);
            }
            Ok(Plan::Inject(injection)) => injection,
            Err(problems) => {
                tracing::info!(%namespace, pod = %pod_name, ?problems, "refused");
                return (
                    refuse(allow, &problems, 400, "BadRequest"),
                    Outcome::Refused,
                );
            }
        };
        let app = match self.directory.find(&namespace, &injection.app).await {
            Ok(Some(app)) => app,
            Ok(None) => {
                let problem = format!(
                    "ConnectedApp {:?} does not exist in namespace {namespace:?}: create it \
                     (see examples/ in the keyway repository), or set the pod's \
                     {CONNECTED_APP_ANNOTATION} annotation to an existing ConnectedApp \
                     (kubectl get connectedapps -n {namespace})",
                    injection.app
                );
                tracing::info!(%namespace, pod = %pod_name, app = %injection.app, "refused: no such ConnectedApp");
                return (
                    refuse(allow, &[problem], 400, "BadRequest"),
                    Outcome::Refused,
                );
            }
            Err(e) => {
                tracing::warn!(%namespace, app = %injection.app, error = %e, "ConnectedApp lookup failed");
                let problem = format!(
                    "keyway could not look up ConnectedApp {:?} ({e}); try again",
                    injection.app
                );
                return (
                    refuse(allow, &[problem], 500, "InternalError"),
                    Outcome::Error,
                );
            }
        };
        let secret_name = app.secret_name();
        let patch = match inject::patch(pod, &injection, &secret_name, &self.sidecar) {
            Ok(patch) => patch,
            Err(problems) => {
                tracing::info!(%namespace, pod = %pod_name, ?problems, "refused");
                return (
                    refuse(allow, &problems, 400, "BadRequest"),
                    Outcome::Refused,
                );
            }
        };
        let mut response = match allow.clone().with_patch(patch) {
            Ok(r) => r,
            Err(e) => {
                let problem = format!("keyway could not encode the patch ({e})");
                return (
                    refuse(allow, &[problem], 500, "InternalError"),
                    Outcome::Error,
                );
            }
        };
        if !app.is_ready() {
            response.warnings = Some(vec![format!(
                "ConnectedApp {:?} is not Ready yet; the pod starts once Secret {secret_name:?} \
                 exists (kubectl describe connectedapp {} -n {namespace})",
                injection.app, injection.app
            )]);
        }
        tracing::info!(%namespace, pod = %pod_name, app = %injection.app, "injected keyway-proxy");
        (response, Outcome::Injected)
    }
}

fn refuse(
    response: AdmissionResponse,
    problems: &[String],
    code: u16,
    reason: &str,
) -> AdmissionResponse {
    let message = format!("keyway sidecar injection: {}", problems.join("; "));
    let mut response = response.deny(message);
    response.result.code = code;
    response.result.reason = reason.to_string();
    response
}

/// `POST /mutate` on the webhook's HTTPS port.
pub fn router<D: AppDirectory>(webhook: Arc<Webhook<D>>) -> Router {
    Router::new()
        .route("/mutate", post(mutate::<D>))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(webhook)
}

async fn mutate<D: AppDirectory>(State(webhook): State<Arc<Webhook<D>>>, body: Bytes) -> Response {
    let review: AdmissionReview<Pod> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("the body is not an AdmissionReview: {e}\n"),
            )
                .into_response();
        }
    };
    let request: AdmissionRequest<Pod> = match review.try_into() {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("the AdmissionReview has no request: {e}\n"),
            )
                .into_response();
        }
    };
    let response = webhook.admit(&request).await;
    let review: AdmissionReview<DynamicObject> = response.into_review();
    match review_json(&review) {
        Ok(json) => axum::Json(json).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the AdmissionReview: {e}\n"),
        )
            .into_response(),
    }
}

/// The review as JSON, with `response.patch` base64-encoded as the API documents it (Go's
/// `[]byte`); kube-core serialises the bytes as an array of numbers.
pub(crate) fn review_json(
    review: &AdmissionReview<DynamicObject>,
) -> Result<serde_json::Value, serde_json::Error> {
    use base64::Engine as _;
    let mut json = serde_json::to_value(review)?;
    if let Some(patch) = review.response.as_ref().and_then(|r| r.patch.as_ref())
        && let Some(slot) = json.pointer_mut("/response/patch")
    {
        *slot = serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    Ok(json)
}

/// `/healthz`, `/readyz` (a certificate is loaded and the webhook is not `draining` for its
/// shutdown) and `/metrics` on the plain-HTTP admin port.
pub(crate) fn admin_router(
    slot: Arc<CertSlot>,
    metrics: Arc<Metrics>,
    draining: Arc<AtomicBool>,
) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let (loaded, draining) = (slot.is_loaded(), draining.load(Ordering::Relaxed));
                async move {
                    match (loaded, draining) {
                        (_, true) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
                        (false, false) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "no serving certificate yet\n",
                        ),
                        (true, false) => (StatusCode::OK, "ready\n"),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let text = metrics.encode();
                async move { ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text) }
            }),
        )
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, ALPN h2 and http/1.1) that
/// presents whatever certificate `slot` holds.
pub fn tls_config(slot: Arc<CertSlot>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(slot);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then lets in-flight requests
/// finish (for at most ten seconds).
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, _peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(app.clone());
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout");
    }
}

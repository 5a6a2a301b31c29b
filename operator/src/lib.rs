//! `keyway-operator`: the controller that turns each `ConnectedApp` into a registered client
//! (status with the client ID and the hashes of its valid client secrets) and a Secret for the
//! sidecar; and `crdgen`.
//!
//! # Public API (for tests, benchmarks and the binary)
//!
//! - [`run_controller`]`(client, config, shutdown)`: runs the controller (with leader election
//!   when [`ControllerConfig::leader_election`] is set) until `shutdown` is cancelled. It does
//!   not serve HTTP; [`http::serve`] does (`/metrics`, `/healthz`, `/readyz`).
//! - [`Operator`]: the same, in steps: [`Operator::new`], [`Operator::metrics`] (counts writes:
//!   [`metrics::Metrics::total_writes`], which a settled resync leaves unchanged),
//!   [`Operator::reconcile_once`] (one reconcile of one app, as the controller would do it,
//!   without the watch machinery: it lists the watched apps to check the client ID and
//!   resource) and [`Operator::run`].
//! - [`SigningKeyManager`]: the issuer's signing-key Secret, kept by the leader when
//!   [`ControllerConfig::signing_keys`] is set ([`signing_keys`] documents the rules).
//! - [`desired::plan`]: the pure function from observed state to desired state.
//! - [`crdgen::crd_yaml`]: the CRD manifest as committed in `crds/`.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api::ConnectedApp;
use kube::runtime::controller::Action;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

pub mod controller;
pub mod crdgen;
pub mod desired;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod signing_keys;
pub mod telemetry;
pub mod webhook;

pub use controller::Context;
pub use lease::LeaseConfig;
pub use metrics::Metrics;
pub use signing_keys::{SigningKeyManager, SigningKeysConfig};

/// Errors of the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    /// The finalizer machinery failed (adding/removing it, or the wrapped reconcile).
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// A ConnectedApp without a namespace (cannot happen for a namespaced resource).
    #[error("the object has no namespace")]
    MissingNamespace,
    /// Another replica took over, or the lease could not be renewed in time.
    #[error("lost the leader lease")]
    LostLeadership,
    /// The HTTP server could not start.
    #[error("HTTP server: {0}")]
    Http(#[source] std::io::Error),
    /// Generating a signing key failed.
    #[error("signing-key generation: {0}")]
    KeyGeneration(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Completes on Ctrl-C or SIGTERM (only Ctrl-C where SIGTERM cannot be watched).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => return,
                _ = tokio::signal::ctrl_c() => return,
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

impl Error {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(e)) if e.code == 409 => "conflict",
            Self::Kube(kube::Error::Api(_)) => "api",
            Self::Kube(_) => "client",
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.kind(),
                _ => "finalizer",
            },
            Self::MissingNamespace => "missing_namespace",
            Self::LostLeadership => "lost_leadership",
            Self::Http(_) => "http",
            Self::KeyGeneration(_) => "key_generation",
        }
    }
}

/// Settings of the controller.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// The issuer URL written into Secrets (`issuer-url`) and status.
    pub issuer_url: String,
    /// Watch only this namespace (default: all).
    pub namespace: Option<String>,
    /// This replica's identity (events' reporting instance, lease holder).
    pub identity: String,
    /// Resync period of settled apps (a resync makes no writes).
    pub resync: Duration,
    /// How many apps are reconciled at once.
    pub concurrency: u16,
    /// Leader election; `None` runs without (a single replica, or tests).
    pub leader_election: Option<LeaseConfig>,
    /// The issuer's signing-key Secret, kept by the leader; `None`: not managed.
    pub signing_keys: Option<SigningKeysConfig>,
    /// Which namespaces may claim resources on which hosts (`--resource-hosts`); empty: any.
    pub resource_hosts: api::resource_hosts::ResourceHosts,
}

impl ControllerConfig {
    /// Defaults for everything but the issuer URL.
    pub fn new(issuer_url: impl Into<String>) -> Self {
        Self {
            issuer_url: issuer_url.into(),
            namespace: None,
            identity: "keyway-operator".into(),
            resync: Duration::from_secs(3600),
            concurrency: 16,
            leader_election: None,
            signing_keys: None,
            resource_hosts: api::resource_hosts::ResourceHosts::default(),
        }
    }
}

/// Readiness as `/readyz` reports it.
#[derive(Debug, Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    /// Whether the replica is ready (leading and running, or standing by as a follower).
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    /// Sets readiness.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
}

/// The controller, assembled.
pub struct Operator {
    ctx: Arc<Context>,
    config: ControllerConfig,
    readiness: Arc<Readiness>,
    signing_keys: Option<Arc<SigningKeyManager>>,
}

impl Operator {
    /// Assembles the controller.
    pub fn new(client: Client, config: ControllerConfig) -> Self {
        let metrics = Arc::new(Metrics::new());
        let ctx = Arc::new(Context::new(client, &config, metrics));
        Self::with_context(ctx, config)
    }

    /// Assembles the controller around a given context (custom clock or random source).
    pub fn with_context(ctx: Arc<Context>, config: ControllerConfig) -> Self {
        let signing_keys = config.signing_keys.clone().map(|keys| {
            Arc::new(SigningKeyManager::new(
                ctx.client.clone(),
                keys,
                ctx.metrics.clone(),
                &config.identity,
                ctx.clock(),
            ))
        });
        Self {
            ctx,
            config,
            readiness: Arc::new(Readiness::default()),
            signing_keys,
        }
    }

    /// The metrics (shared with the running controller).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.ctx.metrics.clone()
    }

    /// The readiness flag (shared with the running controller).
    pub fn readiness(&self) -> Arc<Readiness> {
        self.readiness.clone()
    }

    /// Fetches one app and reconciles it once, exactly as the controller would (finalizer
    /// included: the first call on a new app only adds the finalizer). Without the controller's
    /// cache, the watched ConnectedApps are listed to check the app's client ID and resource
    /// against them.
    pub async fn reconcile_once(&self, namespace: &str, name: &str) -> Result<Action> {
        let apps: Api<ConnectedApp> = Api::namespaced(self.ctx.client.clone(), namespace);
        let app = apps.get(name).await.map_err(Error::Kube)?;
        let watched: Api<ConnectedApp> = match &self.config.namespace {
            Some(ns) => Api::namespaced(self.ctx.client.clone(), ns),
            None => Api::all(self.ctx.client.clone()),
        };
        let peers: Vec<Arc<ConnectedApp>> = watched
            .list(&kube::api::ListParams::default())
            .await
            .map_err(Error::Kube)?
            .items
            .into_iter()
            .map(Arc::new)
            .collect();
        controller::reconcile_among(Arc::new(app), self.ctx.clone(), &peers).await
    }

    /// Runs until `shutdown` is cancelled (or, with leader election, leadership is lost).
    pub async fn run(&self, shutdown: CancellationToken) -> Result<()> {
        match &self.config.leader_election {
            None => {
                self.readiness.set(true);
                self.ctx.metrics.set_leader(true);
                lead(
                    self.ctx.clone(),
                    self.config.clone(),
                    self.signing_keys.clone(),
                    shutdown,
                )
                .await;
                self.ctx.metrics.set_leader(false);
                Ok(())
            }
            Some(lease) => {
                // A follower is ready: it is doing what it should (standing by).
                self.readiness.set(true);
                let elector = lease::LeaderElector::new(self.ctx.client.clone(), lease.clone());
                let metrics = self.ctx.metrics.clone();
                let ctx = self.ctx.clone();
                let config = self.config.clone();
                let keys = self.signing_keys.clone();
                elector
                    .run(
                        shutdown,
                        move |leading| metrics.set_leader(leading),
                        |stop| lead(ctx, config, keys, stop),
                    )
                    .await
            }
        }
    }
}

/// The leader's work: the controller and, when configured, the signing-key manager.
async fn lead(
    ctx: Arc<Context>,
    config: ControllerConfig,
    keys: Option<Arc<SigningKeyManager>>,
    stop: CancellationToken,
) {
    let keys_stop = stop.clone();
    let keys = async move {
        if let Some(keys) = keys {
            keys.run(keys_stop).await;
        }
    };
    tokio::join!(controller::run(ctx, &config, stop), keys);
}

/// Runs the controller until `shutdown` is cancelled; see [`Operator`] for the parts.
pub async fn run_controller(
    client: Client,
    config: ControllerConfig,
    shutdown: CancellationToken,
) -> Result<()> {
    Operator::new(client, config).run(shutdown).await
}

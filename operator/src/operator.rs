//! The operator, assembled: the ConnectedApp controller (`crate::controller`) and, when
//! configured, the issuer's signing-key manager (`crate::signing_keys`) and the webhook's
//! certificate (`crate::webhook::keeper`), run by the leader
//! (`crate::lease`) or, without leader election, at once; and the readiness `/readyz` reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use api::ConnectedApp;
use kube::runtime::controller::Action;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use crate::config::ControllerConfig;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::fence::{self, Fence};
use crate::metrics::Metrics;
use crate::signing_keys::SigningKeyManager;
use crate::webhook::keeper;
use crate::{controller, lease, reconcile};

/// Readiness as `/readyz` reports it.
#[derive(Debug, Default)]
pub(crate) struct Readiness(AtomicBool);

impl Readiness {
    /// Whether the replica is ready (leading and running, or standing by as a follower).
    pub(crate) fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    /// Sets readiness.
    pub(crate) fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
}

/// The controller, assembled.
pub struct Operator {
    ctx: Arc<Context>,
    config: ControllerConfig,
    /// The client that renews the lease (never fenced).
    lease_client: Client,
    /// Holds the writes of `ctx.client` while this replica may not lead (see `crate::fence`).
    fence: Arc<Fence>,
    readiness: Arc<Readiness>,
    signing_keys: Option<Arc<SigningKeyManager>>,
}

impl Operator {
    /// Assembles the controller. With leader election, every write of the controller and the
    /// signing-key manager is fenced: it is sent only while this replica's last renewal is
    /// younger than the renew deadline.
    pub fn new(client: Client, config: ControllerConfig) -> Self {
        let metrics = Arc::new(Metrics::new());
        let fence = Arc::new(Fence::new());
        let writer = if config.leader_election.is_some() {
            fence::fenced(&client, fence.clone())
        } else {
            client.clone()
        };
        let ctx = Arc::new(Context::new(writer, &config, metrics));
        Self::assemble(ctx, config, client, fence)
    }

    /// Assembles the controller around a given context (custom clock or random source). Its
    /// client is used as it is, for the lease too: no fencing.
    pub fn with_context(ctx: Arc<Context>, config: ControllerConfig) -> Self {
        let client = ctx.client.clone();
        Self::assemble(ctx, config, client, Arc::new(Fence::new()))
    }

    fn assemble(
        ctx: Arc<Context>,
        config: ControllerConfig,
        lease_client: Client,
        fence: Arc<Fence>,
    ) -> Self {
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
            lease_client,
            fence,
            readiness: Arc::new(Readiness::default()),
            signing_keys,
        }
    }

    /// The metrics (shared with the running controller).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.ctx.metrics.clone()
    }

    /// The readiness flag (shared with the running controller).
    pub(crate) fn readiness(&self) -> Arc<Readiness> {
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
        reconcile::reconcile_among(Arc::new(app), self.ctx.clone(), &peers).await
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
                let elector = lease::LeaderElector::new(
                    self.lease_client.clone(),
                    lease.clone(),
                    self.fence.clone(),
                );
                let metrics = self.ctx.metrics.clone();
                let ctx = self.ctx.clone();
                let config = self.config.clone();
                let keys = self.signing_keys.clone();
                elector
                    .run(
                        shutdown,
                        move |leading| metrics.set_leader(leading),
                        |stop| lead(ctx.clone(), config.clone(), keys.clone(), stop),
                    )
                    .await;
                Ok(())
            }
        }
    }
}

/// The leader's work: the controller and, when configured, the signing-key manager and the
/// webhook's certificate.
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
    let certs_stop = stop.clone();
    let certs = config.webhook_certs.clone();
    let client = ctx.client.clone();
    let certs = async move {
        if let Some(certs) = certs {
            keeper::keep(certs, client, certs_stop).await;
        }
    };
    tokio::join!(controller::run(ctx, &config, stop), keys, certs);
}

/// Runs the controller until `shutdown` is cancelled; see [`Operator`] for the parts.
pub async fn run_controller(
    client: Client,
    config: ControllerConfig,
    shutdown: CancellationToken,
) -> Result<()> {
    Operator::new(client, config).run(shutdown).await
}

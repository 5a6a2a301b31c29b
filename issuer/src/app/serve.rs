//! [`serve`]: the issuer on a listener, with its background work (key rotation, manifest
//! reload, cleanup of expired rows and idle registered clients) and, with `--watch`, the
//! Kubernetes watch of ConnectedApps.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::router::router;
use super::watch;
use crate::config::Config;
use crate::state::{Issuer, Shared};
use crate::store::Store;

/// Runs the issuer on `listener` until `shutdown` completes: serves the router and runs
/// background work (key rotation, client manifest reload, expired-row cleanup). This is what
/// `keyway-issuer` runs and what `keyway demo` embeds.
pub async fn serve(
    config: Config,
    store: Arc<dyn Store>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let issuer = Issuer::new(&config, store).map_err(|p| anyhow::anyhow!(p.join("\n")))?;
    let issuer: Shared = Arc::new(issuer);
    let background = tokio::spawn(background(issuer.clone()));
    let watch = match &config.watch {
        Some(namespace) => {
            let client = kube::Client::try_default().await?;
            Some(tokio::spawn(watch::run(
                issuer.clone(),
                client,
                namespace.clone(),
            )))
        }
        None => None,
    };
    // The peer address reaches handlers as `ConnectInfo` (the sign-in throttle counts by it).
    let app = router(issuer).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let res = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    background.abort();
    if let Some(w) = watch {
        w.abort();
    }
    res.map_err(Into::into)
}

async fn background(iss: Shared) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        match iss.clients().reload() {
            Ok(true) => tracing::info!("reloaded ConnectedApp manifests"),
            Ok(false) => {}
            Err(problems) => {
                for p in problems {
                    tracing::warn!(problem = %p, "ConnectedApp manifests not reloaded");
                }
            }
        }
        // Read-only keys are re-read every tick (a mounted Secret changes under us); local
        // keys rotate on a slower schedule.
        if iss.keys().is_read_only() || n.is_multiple_of(12) {
            let iss2 = iss.clone();
            let now = iss.clock().now_u64();
            let rotated = tokio::task::spawn_blocking(move || iss2.keys().rotate(now)).await;
            if let Ok(Err(e)) = rotated {
                iss.metrics().key_reload_failures.inc();
                tracing::error!(error = %e, "signing keys not updated; the last good set stays in force");
            }
        }
        if iss.keys().is_read_only() && iss.load_cookie_key() {
            tracing::info!("cookie.key loaded: federated sign-in is available");
        }
        if n.is_multiple_of(12) {
            match iss.store().cleanup_expired(iss.clock().now()).await {
                Ok(c) => tracing::debug!(?c, "cleaned up expired rows"),
                Err(e) => tracing::warn!(error = %e, "cleanup failed"),
            }
            if let Some(dcr) = iss.dcr() {
                match iss
                    .store()
                    .expire_clients(dcr.used_since(iss.clock().now()))
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(clients = n, "deleted unused registered clients"),
                    Err(e) => tracing::warn!(error = %e, "expiring registered clients failed"),
                }
            }
        }
    }
}

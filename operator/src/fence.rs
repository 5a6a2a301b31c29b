//! Fencing: a leader writes only while its lease is surely still its own.
//!
//! A replica that stopped renewing (frozen, partitioned, or stuck in a request) may still have
//! reconciles in flight. The [`Fence`] holds the instant until which this replica may write:
//! the start of its last successful renewal plus the renew deadline, which is shorter than the
//! lease duration, so the fence closes before any other replica can take the lease (a candidate
//! waits a whole lease duration after it saw the last renewal). The controller's client passes
//! every request through [`fenced`]: reads and watches always go through; a write (any method
//! but GET and HEAD) after the fence closed fails without reaching the API server. Time is the
//! monotonic clock, which keeps running while the process is stopped (SIGSTOP), so a replica
//! resumed after its lease passed writes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{Method, Request};
use kube::client::Body;
use tokio::time::Instant;

/// Until when this replica may write.
#[derive(Debug)]
pub(crate) struct Fence {
    base: Instant,
    /// Milliseconds after `base` until which writes are allowed; 0: closed.
    open_until_ms: AtomicU64,
}

impl Fence {
    /// A closed fence.
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
            open_until_ms: AtomicU64::new(0),
        }
    }

    /// Allows writes until `deadline`.
    pub(crate) fn open_until(&self, deadline: Instant) {
        let ms = deadline.saturating_duration_since(self.base).as_millis();
        let ms = u64::try_from(ms).unwrap_or(u64::MAX).max(1);
        self.open_until_ms.store(ms, Ordering::SeqCst);
    }

    /// Refuses writes from now on.
    pub(crate) fn close(&self) {
        self.open_until_ms.store(0, Ordering::SeqCst);
    }

    /// Whether a write may be sent now.
    pub(crate) fn is_open(&self) -> bool {
        let until = self.open_until_ms.load(Ordering::SeqCst);
        let now = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        until != 0 && now < until
    }
}

/// Why a write was not sent.
#[derive(Debug, thiserror::Error)]
#[error("not sent: this replica's leader lease may have passed to another replica")]
pub(crate) struct NotLeading;

/// `client`, with every write held by `fence`.
pub(crate) fn fenced(client: &kube::Client, fence: Arc<Fence>) -> kube::Client {
    let inner = client.clone();
    let service = tower::service_fn(move |req: Request<Body>| {
        let inner = inner.clone();
        let fence = fence.clone();
        async move {
            let write = !matches!(*req.method(), Method::GET | Method::HEAD);
            if write && !fence.is_open() {
                return Err(tower::BoxError::from(NotLeading));
            }
            inner.send(req).await.map_err(tower::BoxError::from)
        }
    });
    kube::Client::new(service, client.default_namespace())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http::Response;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::Api;
    use kube::api::{DeleteParams, PostParams};
    use std::time::Duration;

    /// A client whose API server answers every request with an empty ConfigMap, counting them.
    fn counting_client() -> (kube::Client, Arc<AtomicU64>) {
        let seen = Arc::new(AtomicU64::new(0));
        let count = seen.clone();
        let service = tower::service_fn(move |_req: Request<Body>| {
            count.fetch_add(1, Ordering::SeqCst);
            async move {
                let body = serde_json::to_vec(&serde_json::json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "c", "namespace": "default"}}))
                .unwrap();
                Ok::<_, std::convert::Infallible>(Response::new(Body::from(body)))
            }
        });
        (kube::Client::new(service, "default"), seen)
    }

    fn config_map() -> ConfigMap {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "c"}})).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn writes_pass_only_while_the_fence_is_open_and_reads_always() {
        let (client, seen) = counting_client();
        let fence = Arc::new(Fence::new());
        let api: Api<ConfigMap> = Api::namespaced(fenced(&client, fence.clone()), "default");

        // Closed: a read goes through, no write reaches the API server.
        api.get("c").await.unwrap();
        let refused = api.create(&PostParams::default(), &config_map()).await;
        assert!(
            refused.unwrap_err().to_string().contains("leader lease"),
            "a write on a closed fence is refused with why"
        );
        assert!(api.delete("c", &DeleteParams::default()).await.is_err());
        assert_eq!(seen.load(Ordering::SeqCst), 1);

        // Open for 10 s: writes go through until then, not after.
        fence.open_until(Instant::now() + Duration::from_secs(10));
        api.create(&PostParams::default(), &config_map())
            .await
            .unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 2);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(
            api.replace("c", &PostParams::default(), &config_map())
                .await
                .is_err()
        );
        api.get("c").await.unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 3);

        // Closed by hand (leadership lost) before its time.
        fence.open_until(Instant::now() + Duration::from_secs(10));
        fence.close();
        assert!(
            api.create(&PostParams::default(), &config_map())
                .await
                .is_err()
        );
        assert_eq!(seen.load(Ordering::SeqCst), 3);
    }
}

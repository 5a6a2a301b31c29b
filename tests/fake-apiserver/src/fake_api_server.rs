//! [`FakeApiServer`]: a running test server, and what tests ask of it (a kube client, CRDs,
//! write counts, the requests received, direct reads).

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;

use crate::config::Config;
use crate::endpoints::{self, Shared};
use crate::error::ApiError;
use crate::resources::{self, ResourceType};
use crate::store::{Store, WriteCounts};

/// Why a client for the server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server's URL did not parse (it always should).
    #[error("invalid server URL: {0}")]
    Uri(#[from] http::uri::InvalidUri),
    /// kube refused the configuration.
    #[error("cannot build a kube client: {0}")]
    Kube(#[from] kube::Error),
}

/// A running test server. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeApiServer {
    address: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeApiServer {
    /// Starts a server with the built-in resources and the `ConnectedApp` custom resource, on
    /// `127.0.0.1` and a free port. Must be called inside a Tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(Config::default()).await
    }

    /// Starts a server with the given configuration.
    pub async fn start_with(config: Config) -> std::io::Result<Self> {
        Self::serve(
            config,
            "127.0.0.1:0".parse().map_err(std::io::Error::other)?,
        )
        .await
    }

    /// Starts a server on the given address (port 0 picks a free port).
    pub async fn serve(config: Config, address: SocketAddr) -> std::io::Result<Self> {
        let mut resources = resources::builtins();
        resources.push(ResourceType::connected_app());
        let store = Store::new(resources, config.history_limit);
        let shared = Arc::new(Shared::new(store, config));
        let listener = tokio::net::TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        if let Ok(mut a) = shared.address.lock() {
            *a = address.to_string();
        }
        let app = axum::Router::new()
            .fallback(endpoints::handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "fake API server stopped");
            }
        });
        Ok(FakeApiServer {
            address,
            shared,
            task,
        })
    }

    /// The listening address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A `kube::Config` pointing at this server, default namespace `default`.
    pub fn kube_config(&self) -> Result<kube::Config, ClientError> {
        let url = self.url().parse::<http::Uri>()?;
        let mut config = kube::Config::new(url);
        config.default_namespace = "default".to_owned();
        Ok(config)
    }

    /// A real `kube::Client` talking to this server.
    pub fn client(&self) -> Result<kube::Client, ClientError> {
        Ok(kube::Client::try_from(self.kube_config()?)?)
    }

    /// Registers a custom resource, as installing its CRD would.
    pub fn register(&self, resource: ResourceType) {
        self.shared.store().register(resource);
    }

    /// Installs a custom resource from its CRD manifest (YAML or JSON), as applying the CRD to
    /// a cluster would: from then on its objects are pruned, defaulted and validated against the
    /// CRD's schema (`docs/fake-apiserver.md` lists what is checked). Replaces an earlier
    /// registration of the same resource.
    pub fn install_crd(&self, crd: &str) -> Result<ResourceType, ApiError> {
        let resource = ResourceType::from_crd(crd).map_err(ApiError::bad_request)?;
        self.register(resource.clone());
        Ok(resource)
    }

    /// Counts of write requests and persisted changes since start or the last reset.
    pub fn write_counts(&self) -> WriteCounts {
        self.shared.store().counts().clone()
    }

    /// Resets the write counters.
    pub fn reset_counts(&self) {
        self.shared.store().reset_counts();
    }

    /// Every request received so far, as `METHOD path?query` (the first 200,000).
    pub fn requests(&self) -> Vec<String> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The current resourceVersion (the global write counter).
    pub fn resource_version(&self) -> u64 {
        self.shared.store().resource_version()
    }

    /// Drops all retained watch history, as etcd compaction does: resuming a watch from an
    /// older resourceVersion now yields 410 Gone.
    pub fn compact(&self) {
        self.shared.store().compact();
    }

    /// Reads an object directly, bypassing HTTP (for assertions).
    pub fn object(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let store = self.shared.store();
        let rt = store
            .resources()
            .iter()
            .find(|r| r.group == group && r.plural == plural)?
            .clone();
        store.get(&rt, namespace, name).ok()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

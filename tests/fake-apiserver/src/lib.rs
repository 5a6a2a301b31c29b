//! An in-repo Kubernetes API test server.
//!
//! No real kube-apiserver can run on the machines keyway is tested on, so the controller and
//! webhook are tested against this server instead. It serves real HTTP on `127.0.0.1:0` to the
//! real `kube::Client`, and follows the API conventions the controller depends on: resource
//! versions, optimistic concurrency, list and watch (with bookmarks, resumption and 410 Gone),
//! label and field selectors, merge / JSON / strategic / server-side apply patches, the status
//! subresource and `metadata.generation`, finalizers and `deletionTimestamp`, and owner-reference
//! garbage collection. `docs/fake-apiserver.md` lists what is modelled, where each behaviour is
//! specified in the Kubernetes API documentation, and what is not modelled.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let server = fake_apiserver::FakeApiServer::start().await?;
//! let client = server.client()?;
//! // … use `client` with `kube::Api` …
//! assert_eq!(server.write_counts().total_requests(), 0);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]
#![warn(clippy::too_many_lines)]

mod config;
mod crd;
mod endpoints;
mod error;
mod fake_api_server;
mod fields;
mod patch;
mod resources;
mod schema;
mod selector;
mod store;

pub use config::Config;
pub use error::{ApiError, Details, Reason};
pub use fake_api_server::{ClientError, FakeApiServer};
pub use resources::{ResourceType, Scope};
pub use store::WriteCounts;

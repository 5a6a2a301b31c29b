//! keyway-issuer: the OAuth 2.1 / OpenID Connect authorization server.
//!
//! Embedding (what `keyway demo` does):
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use clap::Parser;
//! let args = issuer::config::Args::parse_from(["keyway-issuer", "--issuer-url", "http://127.0.0.1:5556"]);
//! let config = issuer::config::Config::from_args(args).map_err(|p| anyhow::anyhow!(p.join("\n")))?;
//! let store = issuer::store::open(&config.store).await?;
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! issuer::serve(config, store, listener, kit::shutdown::signal()).await
//! # }
//! ```
//!
//! [`serve`] loads keys, ConnectedApp manifests and static users, serves the router and runs the
//! background work (key rotation, manifest reload, cleanup of expired rows) until `shutdown`.
//! [`app::router`] gives the bare axum router (tests drive it with `oneshot`).
//!
//! Layers, each depending only on the ones below it (docs/architecture.md, "Layers inside the
//! issuer"):
//!
//! - [`app`]: the router (one line per URL), [`serve`] with the background work, the Kubernetes
//!   watch;
//! - [`endpoints`]: one file per URL;
//! - [`http`]: the one place errors become responses, pages, cookies and CSRF, CORS, extractors;
//!   beside it [`authorize`] (authorization request validation, sessions) and [`token`] (client
//!   authentication, minting), which the endpoints share;
//! - [`state`]: the composed state, [`Issuer`], built from [`config`] (flags);
//! - [`oauth`]: the grants' rules, PKCE and delegation, without HTTP types;
//! - [`directory`]: clients, users, upstream providers, origins, the sign-in throttle;
//! - [`keys`] (signing keys, rotation, JWKS), [`store`] (persistent state), [`error`] (the
//!   error type), [`params`] (strict form/query parsing), [`scope`] (scope syntax),
//!   [`metrics`], [`util`].
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]
#![warn(clippy::too_many_lines)]

mod app;
mod authorize;
pub mod config;
mod directory;
mod endpoints;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod http;
pub mod keys;
mod metrics;
mod oauth;
mod params;
mod scope;
mod state;
pub mod store;
mod token;
mod util;

pub use app::watch::run as watch_apps;
pub use app::{router, serve};
pub use directory::throttle::SLOW_DOWN;
pub use directory::users::hash_password;
pub use state::Issuer;
pub use util::{random_bytes, random_token, s256};

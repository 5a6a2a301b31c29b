#![forbid(unsafe_code)]
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
//! Modules: [`config`] (flags), [`error`] (the one place errors become responses), [`params`]
//! (strict form/query parsing), [`keys`] (signing keys, rotation, JWKS), [`clients`]
//! (ConnectedApps), [`users`] (static users), [`throttle`] (sign-in limits), [`store`] (persistent state),
//! [`app`] (the router, one line per URL, and [`serve`]), [`endpoints`] (one file per URL:
//! authorize, login, consent, token, revoke, userinfo, introspect, discovery), [`authorize`]
//! (authorization request validation), [`token`] (client authentication, minting), [`account`],
//! [`dcr`], [`pages`], [`web`] (cookies, CSRF), [`metrics`], [`cors`].

pub mod account;
pub mod app;
pub mod authorize;
pub mod client_addr;
pub mod clients;
pub mod config;
pub mod cors;
pub mod dcr;
pub mod endpoints;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
pub mod keys;
pub mod metrics;
pub mod pages;
pub mod params;
pub mod scope;
pub mod server;
pub mod store;
pub mod throttle;
pub mod token;
pub mod upstream;
pub mod users;
pub mod util;
pub mod watch;
pub mod web;

pub use app::{router, serve};
pub use server::Issuer;

//! keyway-issuer: the OAuth 2.1 / OpenID Connect authorization server.
//!
//! Embedding (what `keyway demo` does):
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use clap::Parser;
//! let args = issuer::Args::parse_from(["keyway-issuer", "--issuer-url", "http://127.0.0.1:5556"]);
//! let config = issuer::Config::from_args(args).map_err(|p| anyhow::anyhow!(p.join("\n")))?;
//! let store = issuer::store::open(&config.store).await?;
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! issuer::serve(config, store, listener, kit::shutdown::signal()).await
//! # }
//! ```
//!
//! [`serve`] loads keys, ConnectedApp manifests and static users, serves the router and runs the
//! background work (key rotation, manifest reload, cleanup of expired rows) until `shutdown`.
//!
//! # Public API (for the binary, `keyway demo`, the tests and the fuzz targets)
//!
//! Every module is private except [`store`] and the hidden `fuzzing`; the items below are
//! re-exported by name.
//!
//! - [`serve`]`(config, store, listener, shutdown)`: the whole server; [`router`]`(issuer)`: the
//!   bare axum router over an [`Issuer`] (tests drive it with `oneshot`); [`watch_apps`]: keeps
//!   an [`Issuer`]'s clients in step with the cluster's ConnectedApps.
//! - [`Issuer`]: the composed state, [`Issuer::new`] from a [`Config`] and a store, with
//!   private fields; [`Issuer::clients`], [`Issuer::store`] and [`Issuer::clock`] for tests.
//! - Configuration: [`Args`] (the flags), [`Command`] (the binary's admin subcommands),
//!   [`Config`] (validated, [`Config::from_args`]; its public fields are the ones the binary
//!   and `keyway demo` read: `issuer`, `listen`, `store`, `log_format`).
//! - Signing keys: [`Keys`] (a key directory, rotation, JWKS), [`SigningKey`], [`Alg`],
//!   [`Typ`], [`KeyError`] (tests sign upstream ID tokens and prepare key directories).
//! - [`store`], a public module: the [`store::Store`] trait that both backends
//!   ([`store::sqlite`], [`store::postgres`]) implement, [`store::open`], and every record type
//!   the trait's methods take and return. The conformance suite (`tests/store_conformance/`)
//!   drives the trait with all of them, so the module is the API rather than a list of names.
//! - Helpers: [`hash_password`] (the users file's hashes), [`random_token`], [`random_bytes`],
//!   [`s256`] (PKCE), [`SLOW_DOWN`] (the sign-in throttle's delay).
//! - `fuzzing` (hidden): entry points of the fuzz targets in `fuzz/`.
//!
//! # Layers
//!
//! Each depends only on the ones below it (docs/architecture.md, "Layers inside the issuer");
//! everything is `pub(crate)` unless re-exported here:
//!
//! - `app`: the router (one line per URL), [`serve`] with the background work, the Kubernetes
//!   watch;
//! - `endpoints`: one file per URL (`endpoints/authorize.rs` also validates the authorization
//!   request that `/login` and `/consent` resume);
//! - `http`: the one place errors become responses, JSON and token responses, pages, cookies,
//!   sessions and CSRF, client authentication, CORS, extractors;
//! - `state`: the composed state, [`Issuer`], built from `config` (flags), and the sub-states
//!   (`Tokens`, `Clients`, `Ops`) of the endpoints that read only a part of it;
//! - `oauth`: the authorization request's and the grants' rules, PKCE, delegation and minting
//!   tokens, without HTTP types;
//! - `directory`: clients, users, upstream providers, origins, the sign-in throttle;
//! - `keys` (signing keys, rotation, JWKS), [`store`] (persistent state), `error` (the error
//!   type), `params` (strict form/query parsing), `scope` (scope syntax), `metrics`,
//!   `random` (secrets and identifiers), `clock`.
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]
#![warn(clippy::too_many_lines)]

mod app;
mod clock;
mod config;
mod directory;
mod endpoints;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod keys;
mod metrics;
mod oauth;
mod params;
mod random;
mod scope;
mod state;
pub mod store;

pub use app::watch::run as watch_apps;
pub use app::{router, serve};
pub use config::{Args, Command, Config};
pub use directory::throttle::SLOW_DOWN;
pub use directory::users::hash_password;
pub use keys::{Alg, KeyError, Keys, SigningKey, Typ};
pub use random::{random_bytes, random_token};
pub use state::Issuer;

//! keyway-proxy: the sidecar that gives any tool sign-in and token validation.
//!
//! The crate is layered; each layer calls only the ones below it (`tests/tools/layering.py`
//! fails on a module cycle):
//!
//! - [`server`]: listeners, TLS, the admin port, each connection's task, background reloads,
//!   graceful shutdown;
//! - `pipeline`: the request path, an ordered chain of stages — guard, the proxy's own
//!   endpoints, authentication, authorisation — and `pipeline::respond`, the one place a
//!   refusal, redirect, page or admin answer becomes a response;
//! - `state`: what every request shares (composes the layers below);
//! - `login` (the browser sign-in, callback, refresh and sign-out, returning values) and
//!   `forward` (header rewrite, identity headers, upgrades, the tool client);
//! - `app`, `session`, `cache`: the mounted configuration, sealed cookies, the caches;
//! - `wire`: the sealed HTTP/1.1 codec (the connection loop for requests without a body, the
//!   direct exchange with the tool); [`config`], `path`, `metrics`, [`logbuf`] beside it.
//!
//! docs/architecture.md has the picture and where to find each stage.
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]
#![warn(clippy::too_many_lines)]

mod app;
mod cache;
mod clock;
pub mod config;
mod error;
mod forward;
#[doc(hidden)]
pub mod fuzzing;
pub mod logbuf;
mod login;
mod metrics;
mod path;
mod pipeline;
pub mod server;
mod session;
mod state;
mod wire;

pub use clock::now;
pub use error::{Error, Result};

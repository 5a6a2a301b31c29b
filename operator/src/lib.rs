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
//! - [`Context`]: what every reconcile shares; [`Context::with_clock_and_rng`] gives it a clock
//!   and a random source ([`Random`]) of the test's choosing.
//! - [`crdgen::crd_yaml`]: the CRD manifest as committed in `crds/`.
#![forbid(unsafe_code)]

mod clock;
mod config;
mod context;
mod controller;
pub mod crdgen;
mod error;
pub mod http;
mod labels;
pub mod lease;
pub mod metrics;
mod operator;
mod plan;
mod reconcile;
pub mod signing_keys;
pub mod telemetry;
pub mod webhook;

pub use clock::Clock;
pub use config::ControllerConfig;
pub use context::Context;
pub use error::{Error, Result};
pub use lease::LeaseConfig;
pub use metrics::Metrics;
pub use operator::{Operator, Readiness, run_controller};
pub use plan::{OsRandom, Random};
pub use signing_keys::{SigningKeyManager, SigningKeysConfig};

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

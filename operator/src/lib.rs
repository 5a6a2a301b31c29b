//! `keyway-operator`: the controller that turns each `ConnectedApp` into a registered client
//! (status with the client ID and the hashes of its valid client secrets) and a Secret for the
//! sidecar; the sidecar-injecting webhook; and `crdgen`.
//!
//! # Public API (for tests, benchmarks and the binary)
//!
//! - [`run_controller`]`(client, config, shutdown)`: runs the controller (with leader election
//!   when [`ControllerConfig::leader_election`] is set) until `shutdown` is cancelled. It does
//!   not serve HTTP; the `controller` command does (`/metrics`, `/healthz`, `/readyz`).
//! - [`Operator`]: the same, in steps: [`Operator::new`], [`Operator::metrics`] (counts writes:
//!   [`Metrics::total_writes`], which a settled resync leaves unchanged),
//!   [`Operator::reconcile_once`] (one reconcile of one app, as the controller would do it,
//!   without the watch machinery: it lists the watched apps to check the client ID and
//!   resource) and [`Operator::run`].
//! - [`Context`]: what every reconcile shares; [`Context::with_clock_and_rng`] gives it a clock
//!   ([`Clock`]) and a random source ([`Random`]) of the test's choosing.
//! - [`SigningKeyManager`]: the issuer's signing-key Secret, kept by the leader when
//!   [`ControllerConfig::signing_keys`] is set ([`signing_keys`] documents the rules).
//! - [`webhook`]: the admission webhook's parts (certificates, injection, server).
//! - [`crdgen::crd_yaml`]: the CRD manifest as committed in `crds/`.
//! - [`RemoveFinalizers`]: what `helm uninstall` runs, so that no ConnectedApp keeps the
//!   finalizer once the controller is gone (`keyway-operator remove-finalizers`).
//! - [`Cli`]: the command line the binary parses and runs.
//!
//! # Where things are
//!
//! The reconcile of one app is `reconcile/` (the finalizer dispatch in `mod.rs`, `apply.rs` for
//! a live app, `cleanup.rs` for a deleted one, `conflicts.rs` for client IDs and resources among
//! apps, `secret.rs` / `status.rs` / `events.rs` for the writes). What it should write is
//! decided by the pure functions of `plan/`, tested without any API. `controller/` wires
//! kube-runtime's controller (watches, triggers, backoff); `operator.rs` assembles it with
//! leader election (`lease.rs`) and the signing-key manager (`signing_keys.rs`); `cli/` holds
//! the command line. Dependencies point one way: `cli → operator → controller → reconcile →
//! plan`, all of them on `context.rs`, `config.rs`, `labels.rs`, `metrics.rs`, `event_fields.rs` and
//! `error.rs`.
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]
#![warn(clippy::too_many_lines)]

mod app_cache;
mod cli;
mod clock;
mod config;
mod context;
mod controller;
pub mod crdgen;
mod error;
mod event_fields;
mod event_recorder;
mod fence;
mod http;
mod kube_client;
mod labels;
mod lease;
mod metrics;
mod operator;
mod own_writes;
mod plan;
mod reconcile;
pub mod signing_keys;
mod uninstall;
pub mod webhook;

pub use cli::Cli;
pub use clock::Clock;
pub use config::ControllerConfig;
pub use context::Context;
pub use error::{Error, Result};
pub use lease::LeaseConfig;
pub use metrics::Metrics;
pub use operator::{Operator, run_controller};
pub use plan::{OsRandom, Random};
pub use signing_keys::{SigningKeyManager, SigningKeysConfig};
pub use uninstall::RemoveFinalizers;

//! The contracts between keyway's components, written down in one place so that both sides of
//! each seam compile against the same definitions:
//!
//! - [`access`]: who may sign in to an app and per-path rules; embedded in the `ConnectedApp`
//!   spec, enforced by the issuer (sign-in) and the proxy (every request);
//! - [`secret`]: the keys of the client Secret the operator writes and the sidecar mounts, and
//!   how client secrets are hashed into the `ConnectedApp` status for the issuer;
//! - [`inject`]: the label and annotations that ask the webhook for a sidecar;
//! - [`signing_keys`]: the issuer's signing-key files (written by the issuer locally, or by the
//!   operator into a Secret the issuer mounts) and their rotation schedule;
//! - [`duration`]: how durations are written, in the spec and in every binary's flags.
//!
//! This crate has no Kubernetes dependency: the proxy links it.
#![forbid(unsafe_code)]

pub mod access;
pub mod duration;
pub mod inject;
pub mod secret;
pub mod signing_keys;

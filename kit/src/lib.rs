//! Service plumbing that every keyway binary needs once and that used to be copied between
//! them: nothing here knows about OAuth, Kubernetes or HTTP.
//!
//! - [`shutdown::signal`]: completes on SIGTERM or Ctrl-C (graceful shutdown).
//! - [`log`]: the `tracing` subscriber, human-readable text or one JSON object per line.
//! - [`exit`]: the process exit codes (64 for bad usage or configuration) and the report of a
//!   refused command line.
//! - [`problems::Problems`]: collects every configuration problem, so that a bad start-up says
//!   everything that is wrong at once.
//! - [`tls::CertSlot`]: the rustls certificate resolver whose certificate and key are read from
//!   files again when they change, keeping the served pair when a new one is unusable.
//!
//! It sits at the bottom of the workspace beside `contract` and `api`: binaries and server
//! crates depend on it, it depends on none of them.
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]
#![warn(clippy::too_many_lines)]

pub mod exit;
pub mod log;
pub mod problems;
pub mod shutdown;
pub mod tls;

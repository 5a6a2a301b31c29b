//! The `ConnectedApp` custom resource (`keyway.dev/v1alpha1`): Rust types from which the CRD in
//! `crds/` is generated, defaults, and validation.
//!
//! Validation happens twice, with the same outcome:
//! - in the API server, through the schema: OpenAPI constraints (`pattern`, `enum`,
//!   `maxLength`, `maxItems`, …) and CEL rules (`x-kubernetes-validations`) for what crosses
//!   fields;
//! - in Rust, through [`validate`], which the operator runs before it does anything (an object
//!   that slipped past an older schema gets `Ready=False` with these messages) and the issuer runs
//!   on manifests it reads from files.
//!
//! `api/tests/cel.rs` evaluates the generated schema's rules with a CEL interpreter against valid
//! and invalid objects and checks that both agree.
#![forbid(unsafe_code)]

pub mod claims;
pub mod resource_hosts;
pub mod resources;
mod types;
mod validate;

#[cfg(test)]
mod test_support;

pub use contract::duration::{DURATION_PATTERN, parse_duration};
pub use types::*;
pub use validate::{Problem, is_acceptable_uri, validate};

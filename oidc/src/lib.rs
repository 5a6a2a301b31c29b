//! The OpenID Connect relying party and the JOSE rules that keyway's issuer (when it federates
//! sign-in to an upstream provider) and keyway-proxy (signing people in, validating bearer
//! tokens) share, so that both follow one set of rules with one set of tests:
//!
//! - [`discovery::Metadata`]: a provider's metadata (OpenID Connect Discovery 1.0, RFC 8414),
//!   fetched from `/.well-known/openid-configuration` with its `issuer` checked exactly;
//! - [`jwks::KeySet`]: its signing keys, each with the one algorithm it verifies;
//! - [`provider::Provider`]: metadata and keys together, the keys refetched when a token names
//!   an unknown `kid` (at most once per interval) and on a schedule;
//! - [`jwt`]: JWT validation — RFC 9068 access tokens and OpenID Connect ID tokens — with the
//!   algorithm always the key's, never the token header's;
//! - [`pkce`]: RFC 7636 S256 challenges;
//! - [`client::Client`]: the HTTP(S) client for discovery, JWKS, the token endpoint (code
//!   exchange, refresh; `client_secret_basic` or `client_secret_post` as the provider says),
//!   RFC 7009 revocation and userinfo.
//!
//! It holds no HTTP server type: the callers own their endpoints and responses. It sits at the
//! bottom of the workspace beside `contract` and `api` and depends on neither.
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]
#![warn(clippy::too_many_lines)]

pub mod client;
pub mod discovery;
pub mod jwks;
pub mod jwt;
pub mod pkce;
pub mod provider;

pub use client::{Client, OidcError, TokenResponse};
pub use discovery::Metadata;
pub use jwks::KeySet;
pub use provider::Provider;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Constant-time equality of two secrets.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

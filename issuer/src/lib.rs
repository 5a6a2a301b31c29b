#![forbid(unsafe_code)]
//! keyway-issuer: the OAuth 2.1 / OpenID Connect authorization server.

pub mod store;

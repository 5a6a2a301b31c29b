//! A provider's metadata: OpenID Connect Discovery 1.0 and RFC 8414, as fetched by
//! [`Client::discover`](crate::Client::discover) (which checks `issuer` exactly).

use serde::Deserialize;

/// The metadata fields keyway reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// Issuer identifier (must equal the configured one exactly).
    pub issuer: String,
    /// Authorization endpoint.
    pub authorization_endpoint: String,
    /// Token endpoint.
    pub token_endpoint: String,
    /// JWKS URL.
    pub jwks_uri: String,
    /// UserInfo endpoint (OpenID Connect Core 5.3).
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// RP-initiated logout endpoint.
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    /// RFC 9207 support: then `iss` must be present in authorization responses.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// Client authentication methods at the token endpoint.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// RFC 7009 revocation endpoint (RFC 8414 metadata).
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// Client authentication methods at the revocation endpoint (default: the token endpoint's).
    #[serde(default)]
    pub revocation_endpoint_auth_methods_supported: Option<Vec<String>>,
}

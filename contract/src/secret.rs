//! The client Secret: written by the operator (or managed by someone else and named by
//! `spec.secret.existingSecret`), mounted by the sidecar as files named after these keys.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::access::Access;

/// The OAuth client ID.
pub const CLIENT_ID: &str = "client-id";
/// The OAuth client secret (absent for public clients).
pub const CLIENT_SECRET: &str = "client-secret";
/// The issuer URL (exactly as in the issuer's metadata `issuer`).
pub const ISSUER_URL: &str = "issuer-url";
/// 32 random bytes, base64 (standard alphabet, padded): the sidecar's cookie-encryption key.
pub const COOKIE_SECRET: &str = "cookie-secret";
/// The app's [`AppPolicy`] as JSON.
pub const POLICY: &str = "policy.json";
/// The cookie secret replaced last (same format as [`COOKIE_SECRET`]): the sidecar still opens
/// cookies sealed with it until [`COOKIE_SECRET_REPLACED_AT`] plus its grace period, also after
/// a restart. Optional; given only together with [`COOKIE_SECRET_REPLACED_AT`].
pub const COOKIE_SECRET_PREVIOUS: &str = "cookie-secret-previous";
/// When [`COOKIE_SECRET_PREVIOUS`] was replaced: seconds since the Unix epoch, in decimal.
pub const COOKIE_SECRET_REPLACED_AT: &str = "cookie-secret-replaced-at";
/// The operator's copy of [`COOKIE_SECRET`] as it last wrote it: a `cookie-secret` that differs
/// from it was replaced (by hand) since, and the copy becomes [`COOKIE_SECRET_PREVIOUS`]. Only
/// the operator reads it.
pub const COOKIE_SECRET_SEEN: &str = "cookie-secret-seen";

/// Every key the operator writes, in a stable order.
pub const ALL_KEYS: [&str; 8] = [
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER_URL,
    COOKIE_SECRET,
    POLICY,
    COOKIE_SECRET_PREVIOUS,
    COOKIE_SECRET_REPLACED_AT,
    COOKIE_SECRET_SEEN,
];

/// Parses [`COOKIE_SECRET_REPLACED_AT`]: decimal seconds since the Unix epoch (surrounding
/// whitespace allowed).
pub fn parse_replaced_at(text: &str) -> Option<u64> {
    let t = text.trim();
    (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .then(|| t.parse().ok())
        .flatten()
}

/// What the sidecar needs to know about its app beyond credentials: the resource it protects
/// (the access-token audience, RFC 8707 / RFC 9728), the scopes it may ask for, and the access
/// rules. Serialised under [`POLICY`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppPolicy {
    /// The resource identifier (absolute URL) of the protected tool, if the app has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Scopes the app may request.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Who may enter and per-path rules.
    #[serde(default)]
    pub access: Access,
}

/// Prefix of a client-secret hash in `ConnectedApp` status.
pub const HASH_PREFIX: &str = "sha256:";

/// Hashes a client secret for the `ConnectedApp` status: `sha256:` followed by lowercase hex.
///
/// Client secrets are 256-bit random values, so an unsalted fast hash is the right tool: it is
/// preimage-resistant for such inputs and costs far less than the token signature it guards.
pub fn hash_client_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(HASH_PREFIX.len() + 64);
    out.push_str(HASH_PREFIX);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Checks a presented client secret against one stored hash, in constant time.
pub fn verify_client_secret(presented: &str, stored_hash: &str) -> bool {
    let computed = hash_client_secret(presented);
    computed.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_hex_with_prefix() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        assert_eq!(
            hash_client_secret("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn verify_accepts_only_the_matching_secret() {
        let stored = hash_client_secret("s3cret");
        assert!(verify_client_secret("s3cret", &stored));
        assert!(!verify_client_secret("s3cret ", &stored));
        assert!(!verify_client_secret("", &stored));
        assert!(!verify_client_secret("s3cret", "sha256:"));
    }

    #[test]
    fn replaced_at_is_decimal_unix_seconds() {
        assert_eq!(parse_replaced_at("1764000000\n"), Some(1_764_000_000));
        for bad in [
            "",
            " ",
            "-1",
            "+5",
            "1.5",
            "2026-11-28T00:00:00Z",
            "99999999999999999999",
        ] {
            assert_eq!(parse_replaced_at(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn policy_round_trips_in_camel_case() {
        let json = r#"{"resource":"https://tool.example.com","scopes":["openid"],
            "access":{"allowedGroups":["eng"],"rules":[{"path":"/healthz","public":true}]}}"#;
        let policy: AppPolicy = serde_json::from_str(json).unwrap_or_default();
        assert_eq!(policy.resource.as_deref(), Some("https://tool.example.com"));
        assert_eq!(policy.access.allowed_groups, vec!["eng".to_string()]);
        assert!(policy.access.rules[0].public);
    }
}

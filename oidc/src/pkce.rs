//! Proof Key for Code Exchange (RFC 7636), S256 only: the relying party keeps a random verifier
//! and sends its challenge with the authorization request, then the verifier with the code.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The `code_challenge` of `verifier` for `code_challenge_method=S256`:
/// `BASE64URL(SHA256(verifier))` (RFC 7636 section 4.2).
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A new verifier: 32 random bytes, base64url (43 characters, within RFC 7636's 43 to 128 of
/// its unreserved characters). `None` when the system's random source fails.
pub fn verifier() -> Option<String> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            super::challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_are_long_enough_unreserved_and_fresh() {
        let (a, b) = (super::verifier().unwrap(), super::verifier().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c))
        );
    }
}

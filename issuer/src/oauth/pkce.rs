//! PKCE (RFC 7636), S256 only (OAuth 2.1, RFC 9700 §2.1.1): the challenge an authorization
//! request must carry, the verifier the token request must prove it with.

use subtle::ConstantTimeEq;

use super::Refusal;
use crate::error::ErrorCode::InvalidRequest;

/// Whether `s` has the shape of an S256 challenge: 43 base64url characters.
pub(crate) fn is_challenge(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The challenge of an authorization request (`code_challenge`, `code_challenge_method`): PKCE
/// is required, and only with S256.
pub(crate) fn challenge<'a>(
    challenge: Option<&'a str>,
    method: Option<&str>,
) -> Result<&'a str, Refusal> {
    match (challenge, method) {
        (None, _) => Err(Refusal::new(
            InvalidRequest,
            "PKCE is required: missing code_challenge",
        )),
        (Some(_), None) | (Some(_), Some("plain")) => Err(Refusal::new(
            InvalidRequest,
            "PKCE method S256 is required (code_challenge_method=S256)",
        )),
        (Some(_), Some(m)) if m != "S256" => Err(Refusal::new(
            InvalidRequest,
            "unsupported code_challenge_method",
        )),
        (Some(c), Some(_)) if !is_challenge(c) => Err(Refusal::new(
            InvalidRequest,
            "code_challenge must be 43 base64url characters (S256)",
        )),
        (Some(c), Some(_)) => Ok(c),
    }
}

/// Whether `v` has the shape of a verifier: 43 to 128 unreserved characters (RFC 7636 §4.1).
pub(crate) fn is_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `verifier` proves `challenge` (S256, compared in constant time).
pub(crate) fn proves(verifier: &str, challenge: &str) -> bool {
    let computed = oidc::pkce::challenge(verifier);
    bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn challenge_shape() {
        assert!(is_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!is_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"));
        assert!(!is_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"));
    }

    #[test]
    fn only_s256_with_a_well_formed_challenge() {
        assert_eq!(challenge(Some(CHALLENGE), Some("S256")), Ok(CHALLENGE));
        for (c, m) in [
            (None, Some("S256")),
            (Some(CHALLENGE), None),
            (Some(CHALLENGE), Some("plain")),
            (Some(CHALLENGE), Some("s256")),
            (Some("short"), Some("S256")),
        ] {
            let refused = challenge(c, m).unwrap_err();
            assert_eq!(refused.code, InvalidRequest, "{c:?} {m:?}");
        }
    }

    #[test]
    fn verifier_shape() {
        assert!(is_verifier(&"a".repeat(43)));
        assert!(!is_verifier(&"a".repeat(42)));
        assert!(!is_verifier(&"a".repeat(129)));
        assert!(!is_verifier(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn the_verifier_proves_its_challenge_only() {
        assert!(proves(VERIFIER, CHALLENGE));
        assert!(!proves(&VERIFIER.replace('d', "e"), CHALLENGE));
        assert!(!proves(VERIFIER, &CHALLENGE[1..]));
    }
}

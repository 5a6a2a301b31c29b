//! The authorization code grant (RFC 6749 §4.1.3, OAuth 2.1 §4.1.3): the verifier the request
//! must carry, and the binding of a code to its client, redirect URI and PKCE challenge, checked
//! before the code is consumed (a request holding a stolen code but not the verifier must not
//! burn it).

use super::{Refusal, pkce};
use crate::directory::clients::Client;
use crate::error::ErrorCode::{InvalidGrant, InvalidRequest, UnauthorizedClient};
use crate::store::AuthCode;

/// Whether `client` may use this grant.
pub(crate) fn permitted(client: &Client) -> Result<(), Refusal> {
    if client.authorization_code {
        Ok(())
    } else {
        Err(Refusal::new(
            UnauthorizedClient,
            "the client may not use the authorization code grant",
        ))
    }
}

/// The request's `code_verifier`, present and well formed.
pub(crate) fn verifier(v: Option<&str>) -> Result<&str, Refusal> {
    let v = v.ok_or(Refusal::new(
        InvalidRequest,
        "missing parameter code_verifier (PKCE)",
    ))?;
    if pkce::is_verifier(v) {
        Ok(v)
    } else {
        Err(Refusal::new(
            InvalidRequest,
            "code_verifier must be 43 to 128 unreserved characters",
        ))
    }
}

/// Whether `code` was issued to `client_id` for `redirect_uri`, and `verifier` proves its
/// challenge.
pub(crate) fn check_binding(
    code: &AuthCode,
    client_id: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<(), Refusal> {
    if code.client_id != client_id {
        return Err(Refusal::new(
            InvalidGrant,
            "the code was issued to another client",
        ));
    }
    if code.redirect_uri != redirect_uri {
        return Err(Refusal::new(
            InvalidGrant,
            "redirect_uri does not match the authorization request",
        ));
    }
    if !pkce::proves(verifier, &code.code_challenge) {
        return Err(Refusal::new(
            InvalidGrant,
            "code_verifier does not match the code_challenge",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::Claims;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn code() -> AuthCode {
        AuthCode {
            client_id: "a".into(),
            redirect_uri: "https://a.example/cb".into(),
            subject: "alice@example.com".into(),
            scopes: vec!["openid".into()],
            resources: Vec::new(),
            nonce: None,
            code_challenge: oidc::pkce::challenge(VERIFIER),
            auth_time: 0,
            session_id: None,
            claims: Claims::default(),
            created_at: 0,
            expires_at: 600,
        }
    }

    #[test]
    fn a_verifier_is_required_and_well_formed() {
        assert_eq!(verifier(Some(VERIFIER)), Ok(VERIFIER));
        assert_eq!(verifier(None).unwrap_err().code, InvalidRequest);
        assert_eq!(verifier(Some("short")).unwrap_err().code, InvalidRequest);
    }

    #[test]
    fn the_code_is_bound_to_client_redirect_uri_and_challenge() {
        let c = code();
        assert_eq!(
            check_binding(&c, "a", "https://a.example/cb", VERIFIER),
            Ok(())
        );
        for (client, uri, v) in [
            ("b", "https://a.example/cb", VERIFIER),
            ("a", "https://a.example/cb/", VERIFIER),
            ("a", "https://a.example/cb", &"x".repeat(43)[..]),
        ] {
            assert_eq!(
                check_binding(&c, client, uri, v).unwrap_err().code,
                InvalidGrant
            );
        }
    }
}

//! Minting tokens, apart from HTTP: the claims of access tokens (RFC 9068 JWTs, `typ: at+jwt`)
//! and ID tokens (OIDC Core §2, with `at_hash`), signed with the issuer's current key. The
//! token endpoint decides the grant (`crate::oauth::authorization_code`, `refresh`,
//! `client_credentials`); `Issuer::mint` checks identities and gives [`Minter`] the key, the
//! clock and the lifetimes.
//!
//! An access token's `aud` is the RFC 8707 resource (or the client's own resource, or else its
//! client ID). Claims by scope: `email` gives `email` and `email_verified`; `profile` gives
//! `name`, `preferred_username` and `groups`; `groups` gives `groups`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::directory::clients::Client;
use crate::error::{Error, Result};
use crate::keys::{Alg, SigningKey, Typ};
use crate::store::Claims;

#[derive(Serialize)]
struct AccessClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
    iat: i64,
    exp: i64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
    #[serde(flatten)]
    person: PersonClaims<'a>,
}

#[derive(Serialize, Default, Clone, Copy)]
struct PersonClaims<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<&'a [String]>,
}

impl<'a> PersonClaims<'a> {
    fn from(claims: &'a Claims, scopes: &[String]) -> Self {
        let has = |s: &str| scopes.iter().any(|x| x == s);
        let mut p = Self::default();
        if has("email") {
            // Only a verified address is released (then `email_verified` is true).
            p.email = claims.verified_email();
            p.email_verified = p.email.map(|_| true);
        }
        if has("profile") {
            p.name = claims.name.as_deref();
            p.preferred_username = claims.preferred_username.as_deref();
        }
        if has("profile") || has("groups") {
            p.groups = Some(&claims.groups);
        }
        p
    }
}

#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    azp: &'a str,
    iat: i64,
    exp: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    at_hash: &'a str,
    #[serde(flatten)]
    person: PersonClaims<'a>,
}

/// OIDC Core 3.1.3.6 `at_hash`: base64url of the left half of the hash of the access token's
/// ASCII, with the hash of the ID token's `alg` (SHA-256 for ES256 and RS256; SHA-512 for
/// EdDSA, which signs with Ed25519, as the OpenID Foundation's guidance and relying parties
/// such as openid-client's oauth4webapi do).
fn at_hash(alg: Alg, access_token: &str) -> String {
    use sha2::Digest;
    let half = |d: &[u8]| URL_SAFE_NO_PAD.encode(&d[..d.len() / 2]);
    match alg {
        Alg::Es256 | Alg::Rs256 => half(&sha2::Sha256::digest(access_token.as_bytes())),
        Alg::EdDsa => half(&sha2::Sha512::digest(access_token.as_bytes())),
    }
}

/// What a person-bound grant needs to mint tokens.
pub(crate) struct Grant<'a> {
    pub(crate) subject: &'a str,
    pub(crate) scopes: &'a [String],
    pub(crate) resources: &'a [String],
    pub(crate) claims: &'a Claims,
    /// When the person authenticated (`None` for client_credentials).
    pub(crate) auth_time: Option<i64>,
    pub(crate) nonce: Option<&'a str>,
    pub(crate) session_id: Option<&'a str>,
}

/// The tokens minted for a grant.
pub(crate) struct Minted {
    pub(crate) access: String,
    /// The granted scopes, space-separated.
    pub(crate) scope: String,
    pub(crate) jti: String,
    pub(crate) exp: i64,
    pub(crate) ttl: u64,
    pub(crate) id_token: Option<String>,
}

/// What minting needs of the issuer besides the grant.
pub(crate) struct Minter<'a> {
    /// The issuer identifier (`iss`).
    pub(crate) issuer: &'a str,
    /// The current signing key.
    pub(crate) signer: &'a SigningKey,
    /// Now (`iat`).
    pub(crate) now: i64,
    /// The access token's lifetime in seconds (the client's, or the default).
    pub(crate) access_ttl: u64,
    /// The ID token's lifetime in seconds; `None`: no ID token, whatever the scopes.
    pub(crate) id_token_ttl: Option<u64>,
}

impl Minter<'_> {
    /// Signs the access token for `client` and the grant, and an ID token when the scopes
    /// include `openid` and [`Minter::id_token_ttl`] is set.
    pub(crate) fn mint(&self, client: &Client, g: &Grant<'_>) -> Result<Minted> {
        let now = self.now;
        let ttl = self.access_ttl;
        let exp = now + i64::try_from(ttl).unwrap_or(600);
        let jti = crate::random::fast_id();
        let scope = g.scopes.join(" ");
        let aud = g
            .resources
            .first()
            .map(String::as_str)
            .or(client.resource.as_deref())
            .unwrap_or(&client.id);
        let person = PersonClaims::from(g.claims, g.scopes);
        let signer = self.signer;
        let access = signer
            .sign(
                Typ::AccessToken,
                &AccessClaims {
                    iss: self.issuer,
                    sub: g.subject,
                    aud,
                    client_id: &client.id,
                    scope: &scope,
                    iat: now,
                    exp,
                    jti: &jti,
                    auth_time: g.auth_time,
                    person,
                },
            )
            .map_err(|e| Error::Internal(e.to_string().into()))?;
        let id_token = if let Some(id_ttl) = self.id_token_ttl
            && g.scopes.iter().any(|s| s == "openid")
        {
            let id_exp = now + i64::try_from(id_ttl).unwrap_or(600);
            Some(
                signer
                    .sign(
                        Typ::Jwt,
                        &IdClaims {
                            iss: self.issuer,
                            sub: g.subject,
                            aud: &client.id,
                            azp: &client.id,
                            iat: now,
                            exp: id_exp,
                            auth_time: g.auth_time.unwrap_or(now),
                            nonce: g.nonce,
                            sid: g.session_id,
                            at_hash: &at_hash(signer.alg, &access),
                            person,
                        },
                    )
                    .map_err(|e| Error::Internal(e.to_string().into()))?,
            )
        } else {
            None
        };
        Ok(Minted {
            access,
            scope,
            jti,
            exp,
            ttl,
            id_token,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn at_hash_is_the_left_half_of_the_algs_hash() {
        // Expected values computed independently (Python hashlib).
        let t = "jHkWEdUXMU1BwAsC4vtUsZwnQo8";
        assert_eq!(at_hash(Alg::Es256, t), "-10AzizPIV6DxCK6qJwsAA");
        assert_eq!(at_hash(Alg::Rs256, t), "-10AzizPIV6DxCK6qJwsAA");
        assert_eq!(
            at_hash(Alg::EdDsa, t),
            "h29goSu1CwpG_h9Ib5QKSVWsgGzEtGrNCCfa4FyS-jY"
        );
    }
}

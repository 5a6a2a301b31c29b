//! Client authentication and minting tokens, shared by the token, revocation, userinfo and
//! introspection endpoints (their handlers are in `endpoints`).
//!
//! Access tokens are RFC 9068 JWTs (`typ: at+jwt`) whose `aud` is the RFC 8707 resource (or the
//! client's own resource, or else its client ID). Claims by scope: `email` gives `email` and
//! `email_verified`; `profile` gives `name`, `preferred_username` and `groups`; `groups` gives
//! `groups`. Refresh tokens are issued to clients allowed the refresh_token grant.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderValue, header};
use serde::Serialize;

use crate::directory::clients::Client;
use crate::error::{Error, ErrorCode, Result};
use crate::keys::{Alg, Typ};
use crate::metrics::GrantLabels;
use crate::params::Params;
use crate::state::Issuer;
use crate::store::Claims;

/// How the client authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthMethod {
    /// HTTP Basic.
    Basic,
    /// `client_secret` in the body.
    Post,
    /// Public client, no secret.
    None,
}

/// Decodes an HTTP Basic `Authorization` header into (client_id, secret), each
/// form-urlencoded-decoded (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String)>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bad = || Err(Error::invalid_client(true));
    let Ok(raw) = STANDARD.decode(rest.trim()) else {
        return Some(bad());
    };
    let Ok(raw) = String::from_utf8(raw) else {
        return Some(bad());
    };
    let Some((id, secret)) = raw.split_once(':') else {
        return Some(bad());
    };
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
    };
    match (dec(id), dec(secret)) {
        (Ok(i), Ok(s)) if !i.is_empty() => Some(Ok((i, s))),
        _ => Some(bad()),
    }
}

/// Authenticates the client of a token, revocation or introspection request.
pub(crate) async fn authenticate(
    iss: &Issuer,
    headers: &HeaderMap,
    params: &Params,
) -> Result<(Arc<Client>, AuthMethod)> {
    let now = iss.clock.now_u64();
    if let Some(basic) = basic_credentials(headers) {
        let (id, secret) = basic?;
        if params.get("client_secret").is_some() {
            return Err(Error::invalid_request(
                "use exactly one client authentication method",
            ));
        }
        if params.get("client_id").is_some_and(|p| p != id) {
            return Err(Error::invalid_client(true));
        }
        let client = iss
            .client(&id)
            .await?
            .ok_or_else(|| Error::invalid_client(true))?;
        if client.public || !client.verify_secret(&secret, now) {
            return Err(Error::invalid_client(true));
        }
        return Ok((client, AuthMethod::Basic));
    }
    let Some(id) = params.get("client_id") else {
        return Err(Error::invalid_client(false));
    };
    let client = iss
        .client(id)
        .await?
        .ok_or_else(|| Error::invalid_client(false))?;
    match (client.public, params.get("client_secret")) {
        (true, None) => Ok((client, AuthMethod::None)),
        (false, Some(secret)) if client.verify_secret(secret, now) => {
            Ok((client, AuthMethod::Post))
        }
        _ => Err(Error::invalid_client(false)),
    }
}

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

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<&'a str>,
}

/// `value` as a JSON response that must not be cached.
pub(crate) fn no_store_json_of<T: Serialize>(value: &T) -> Result<Response> {
    let body = serde_json::to_vec(value).map_err(|e| Error::Internal(e.to_string().into()))?;
    Ok(no_store_json(body))
}

pub(crate) fn no_store_json(body: Vec<u8>) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
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

pub(crate) struct Minted {
    pub(crate) access: String,
    /// The granted scopes, space-separated.
    pub(crate) scope: String,
    pub(crate) jti: String,
    pub(crate) exp: i64,
    pub(crate) ttl: u64,
    pub(crate) id_token: Option<String>,
}

impl Issuer {
    /// Refuses a token whose `sub` would not tell a person from a client (see
    /// [`crate::directory::identity`]): a person whose subject is a client ID, or a client (its own
    /// token, `sub` = its ID) whose ID is a person's subject.
    fn check_identity(&self, client: &Client, g: &Grant<'_>) -> Result<()> {
        let person = g.auth_time.is_some();
        if person && self.is_client_id(g.subject) {
            tracing::warn!(
                client = %client.id,
                "token refused: the person's subject is also a client ID"
            );
            return Err(Error::oauth(
                ErrorCode::InvalidGrant,
                "the person's subject identifier is also a client ID",
            ));
        }
        if !person && self.is_person_subject(&client.id) {
            tracing::warn!(
                client = %client.id,
                "token refused: the client ID is also a person's subject"
            );
            return Err(Error::oauth(
                ErrorCode::UnauthorizedClient,
                "the client ID is also a person's subject identifier",
            ));
        }
        Ok(())
    }

    fn access_ttl(&self, client: &Client) -> u64 {
        client.lifetimes.map_or(self.lifetimes.access, |l| l.access)
    }

    pub(crate) fn mint(&self, client: &Client, g: &Grant<'_>, want_id: bool) -> Result<Minted> {
        self.check_identity(client, g)?;
        let now = self.clock.now();
        let ttl = self.access_ttl(client);
        let exp = now + i64::try_from(ttl).unwrap_or(600);
        let jti = crate::util::fast_id();
        let scope = g.scopes.join(" ");
        let aud = g
            .resources
            .first()
            .map(String::as_str)
            .or(client.resource.as_deref())
            .unwrap_or(&client.id);
        let person = PersonClaims::from(g.claims, g.scopes);
        let ring = self.keys.ring();
        let signer = ring
            .signing
            .as_ref()
            .ok_or_else(|| Error::Unavailable("no signing key yet".into()))?;
        let access = signer
            .sign(
                Typ::AccessToken,
                &AccessClaims {
                    iss: &self.issuer,
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
        let id_token = if want_id && g.scopes.iter().any(|s| s == "openid") {
            let id_exp = now + i64::try_from(self.lifetimes.id_token).unwrap_or(600);
            Some(
                signer
                    .sign(
                        Typ::Jwt,
                        &IdClaims {
                            iss: &self.issuer,
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

    pub(crate) fn count(&self, grant: &'static str, outcome: &'static str) {
        self.metrics
            .tokens
            .get_or_create(&GrantLabels { grant, outcome })
            .inc();
    }
}

pub(crate) fn respond(m: &Minted, refresh: Option<&str>) -> Result<Response> {
    no_store_json_of(&TokenResponse {
        access_token: &m.access,
        token_type: "Bearer",
        expires_in: m.ttl,
        scope: &m.scope,
        refresh_token: refresh,
        id_token: m.id_token.as_deref(),
    })
}

/// Verifies one of our access tokens, that `accept` accepts its claims (checked before the
/// store is asked) and that it is not revoked.
pub(crate) async fn verified_access(
    iss: &Issuer,
    token: &str,
    accept: impl FnOnce(&serde_json::Map<String, serde_json::Value>) -> bool,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
    let Some(claims) = iss
        .keys
        .ring()
        .verify(token, Typ::AccessToken, &iss.issuer, iss.clock.now_u64())
        .filter(|c| accept(c))
    else {
        return Ok(None);
    };
    let Some(jti) = claims.get("jti").and_then(|j| j.as_str()) else {
        return Ok(None);
    };
    if iss.store.is_access_revoked(jti).await? {
        return Ok(None);
    }
    Ok(Some(claims))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode("my%20app:p%3Ass+x"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&v).unwrap());
        let (id, secret) = basic_credentials(&h).unwrap().unwrap();
        assert_eq!(id, "my app");
        assert_eq!(secret, "p:ss x");
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert!(basic_credentials(&h).unwrap().is_err());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(basic_credentials(&h).is_none());
    }

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

//! The token endpoint (authorization_code, refresh_token, client_credentials), client
//! authentication, userinfo and revocation (RFC 7009); introspection is in `introspect.rs`.
//!
//! Access tokens are RFC 9068 JWTs (`typ: at+jwt`) whose `aud` is the RFC 8707 resource (or the
//! client's own resource, or else its client ID). Claims by scope: `email` gives `email` and
//! `email_verified`; `profile` gives `name`, `preferred_username` and `groups`; `groups` gives
//! `groups`. Refresh tokens are issued to clients allowed the refresh_token grant.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::clients::{Client, Source};
use crate::error::{Error, ErrorCode, Result};
use crate::keys::{Alg, Typ};
use crate::metrics::GrantLabels;
use crate::params::{Form, Params};
use crate::server::{Issuer, Shared, store_err};
use crate::store::{
    Claims, CodeIssued, RefreshFamily, Rotation, RotationPolicy, SecretHash, StoreError, Successor,
    TakenCode,
};

/// How the client authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
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
pub async fn authenticate(
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
struct Grant<'a> {
    subject: &'a str,
    scopes: &'a [String],
    resources: &'a [String],
    claims: &'a Claims,
    /// When the person authenticated (`None` for client_credentials).
    auth_time: Option<i64>,
    nonce: Option<&'a str>,
    session_id: Option<&'a str>,
}

struct Minted {
    access: String,
    /// The granted scopes, space-separated.
    scope: String,
    jti: String,
    exp: i64,
    ttl: u64,
    id_token: Option<String>,
}

impl Issuer {
    /// Refuses a token whose `sub` would not tell a person from a client (see
    /// [`crate::identity`]): a person whose subject is a client ID, or a client (its own
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

    fn mint(&self, client: &Client, g: &Grant<'_>, want_id: bool) -> Result<Minted> {
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

    fn count(&self, grant: &'static str, outcome: &'static str) {
        self.metrics
            .tokens
            .get_or_create(&GrantLabels { grant, outcome })
            .inc();
    }
}

/// The successor of the refresh token `token` for `salt`: base64url of
/// HMAC-SHA256(key = `token`, "keyway refresh successor\n" ‖ `salt`), as long as a random token.
/// Keyed by the presented token, so that only its holder can derive it again from the salt the
/// store keeps for the grace window ([`Successor`]).
fn successor(token: &str, salt: &[u8; 32]) -> Result<String> {
    use hmac::{Hmac, Mac};
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(token.as_bytes())
        .map_err(|_| Error::Internal("HMAC key refused".into()))?;
    mac.update(b"keyway refresh successor\n");
    mac.update(salt);
    Ok(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// `POST /token`
pub async fn token(
    State(iss): State<Shared>,
    headers: HeaderMap,
    Form(params): Form,
) -> Result<Response> {
    let grant = params.get("grant_type");
    let label = match grant {
        Some("authorization_code") => "authorization_code",
        Some("refresh_token") => "refresh_token",
        Some("client_credentials") => "client_credentials",
        _ => "other",
    };
    let res = token_inner(&iss, &headers, &params, grant).await;
    match &res {
        Ok(_) => iss.count(label, "issued"),
        Err(e) => iss.count(label, e.code().map_or("error", ErrorCode::as_str)),
    }
    res
}

async fn token_inner(
    iss: &Issuer,
    headers: &HeaderMap,
    params: &Params,
    grant: Option<&str>,
) -> Result<Response> {
    let Some(grant) = grant else {
        return Err(Error::invalid_request("missing parameter grant_type"));
    };
    if !matches!(
        grant,
        "authorization_code" | "refresh_token" | "client_credentials"
    ) {
        return Err(Error::oauth(
            ErrorCode::UnsupportedGrantType,
            "unsupported grant_type",
        ));
    }
    let (client, _) = authenticate(iss, headers, params).await?;
    let res = match grant {
        "authorization_code" => authorization_code(iss, &client, params).await,
        "refresh_token" => refresh(iss, &client, params).await,
        _ => client_credentials(iss, &client, params),
    }?;
    // A registered client that obtains tokens stays; one that does not expires.
    if client.source == Source::Dynamic {
        iss.store
            .touch_client(&client.id, iss.clock.now())
            .await
            .map_err(store_err)?;
    }
    Ok(res)
}

fn is_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Revokes what a replayed code issued.
async fn revoke_issued(iss: &Issuer, issued: &CodeIssued) -> Result<()> {
    if let Some(f) = &issued.refresh_family_id {
        iss.store
            .revoke_refresh_family(f)
            .await
            .map_err(store_err)?;
    }
    if let (Some(jti), Some(exp)) = (&issued.access_jti, issued.access_exp) {
        iss.store.revoke_access(jti, exp).await.map_err(store_err)?;
    }
    Ok(())
}

async fn authorization_code(iss: &Issuer, client: &Client, params: &Params) -> Result<Response> {
    if !client.authorization_code {
        return Err(Error::oauth(
            ErrorCode::UnauthorizedClient,
            "the client may not use the authorization code grant",
        ));
    }
    let code = params.require("code")?;
    let redirect_uri = params.require("redirect_uri")?;
    let verifier = params
        .get("code_verifier")
        .ok_or_else(|| Error::invalid_request("missing parameter code_verifier (PKCE)"))?;
    if !is_verifier(verifier) {
        return Err(Error::invalid_request(
            "code_verifier must be 43 to 128 unreserved characters",
        ));
    }
    let now = iss.clock.now();
    let hash = SecretHash::of(code);
    // Check the binding (client, redirect URI, PKCE verifier) before consuming the code: a
    // request holding a stolen code but not the verifier must not burn it, nor trigger the
    // replay revocation of the legitimate redemption's tokens.
    let stored = match iss.store.peek_code(&hash, now).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(Error::invalid_grant("the code is invalid or has expired")),
        Err(e) => return Err(store_err(e)),
    };
    if stored.client_id != client.id {
        return Err(Error::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if stored.redirect_uri != redirect_uri {
        return Err(Error::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    let computed = crate::util::s256(verifier);
    if !bool::from(computed.as_bytes().ct_eq(stored.code_challenge.as_bytes())) {
        return Err(Error::invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    let taken = match iss.store.take_code(&hash, now).await {
        Ok(t) => t,
        Err(StoreError::NotFound) => {
            return Err(Error::invalid_grant("the code is invalid or has expired"));
        }
        Err(e) => return Err(store_err(e)),
    };
    let rec = match taken {
        TakenCode::Fresh(rec) => rec,
        TakenCode::Replayed { issued, .. } => {
            revoke_issued(iss, &issued).await?;
            tracing::warn!("authorization code replayed; revoked what it issued");
            return Err(Error::invalid_grant(
                "the code was already used; tokens issued from it are revoked",
            ));
        }
    };
    if let Some(r) = params.get("resource")
        && !rec.resources.iter().any(|x| x == r)
    {
        return Err(Error::oauth(
            ErrorCode::InvalidTarget,
            "resource was not authorized",
        ));
    }
    // The app holding each resource must still admit the client (its spec may have changed
    // since the code was issued).
    if rec
        .resources
        .iter()
        .any(|r| iss.delegation(client, r, &rec.scopes).is_err())
    {
        return Err(Error::invalid_grant(
            "the app holding the resource no longer admits this client",
        ));
    }
    let g = Grant {
        subject: &rec.subject,
        scopes: &rec.scopes,
        resources: &rec.resources,
        claims: &rec.claims,
        auth_time: Some(rec.auth_time),
        nonce: rec.nonce.as_deref(),
        session_id: rec.session_id.as_deref(),
    };
    let minted = iss.mint(client, &g, true)?;
    let refresh = if client.refresh_token {
        let (refresh_ttl, idle) = client
            .lifetimes
            .map_or((iss.lifetimes.refresh, iss.lifetimes.refresh_idle), |l| {
                (l.refresh, l.idle)
            });
        let token = crate::util::random_token();
        let expires_at = now + i64::try_from(refresh_ttl).unwrap_or(86400);
        let family = RefreshFamily {
            id: crate::util::random_id(),
            client_id: client.id.clone(),
            // The code's record is not needed after minting: move its fields.
            subject: rec.subject,
            scopes: rec.scopes,
            resources: rec.resources,
            claims: rec.claims,
            auth_time: rec.auth_time,
            session_id: rec.session_id,
            created_at: now,
            expires_at,
            idle_expires_at: (now + i64::try_from(idle).unwrap_or(86400)).min(expires_at),
            revoked: false,
        };
        iss.store
            .create_refresh_family(&family, &SecretHash::of(&token))
            .await
            .map_err(store_err)?;
        Some((token, family.id))
    } else {
        None
    };
    let issued = CodeIssued {
        refresh_family_id: refresh.as_ref().map(|(_, f)| f.clone()),
        access_jti: Some(minted.jti.clone()),
        access_exp: Some(minted.exp),
    };
    let first = iss
        .store
        .mark_code_issued(&hash, &issued)
        .await
        .map_err(store_err)?;
    if !first {
        revoke_issued(iss, &issued).await?;
        return Err(Error::invalid_grant(
            "the code was already used; tokens issued from it are revoked",
        ));
    }
    respond(&minted, refresh.as_ref().map(|(t, _)| t.as_str()))
}

fn respond(m: &Minted, refresh: Option<&str>) -> Result<Response> {
    no_store_json_of(&TokenResponse {
        access_token: &m.access,
        token_type: "Bearer",
        expires_in: m.ttl,
        scope: &m.scope,
        refresh_token: refresh,
        id_token: m.id_token.as_deref(),
    })
}

async fn refresh(iss: &Issuer, client: &Client, params: &Params) -> Result<Response> {
    if !client.refresh_token {
        return Err(Error::oauth(
            ErrorCode::UnauthorizedClient,
            "the client may not use refresh tokens",
        ));
    }
    let old = params.require("refresh_token")?;
    let old_hash = SecretHash::of(old);
    let Some(lookup) = iss.store.get_refresh(&old_hash).await.map_err(store_err)? else {
        return Err(Error::invalid_grant("the refresh token is invalid"));
    };
    if lookup.family.client_id != client.id {
        return Err(Error::invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    let scopes: Vec<String> = match params.get("scope") {
        None => lookup.family.scopes.clone(),
        Some(s) => {
            let Some(v) = crate::scope::parse(s) else {
                return Err(Error::oauth(ErrorCode::InvalidScope, "malformed scope"));
            };
            if !crate::scope::covers(&lookup.family.scopes, &v) {
                return Err(Error::oauth(
                    ErrorCode::InvalidScope,
                    "scope exceeds what was granted",
                ));
            }
            v
        }
    };
    let resources: Vec<String> = match params.get("resource") {
        None => lookup.family.resources.clone(),
        Some(r) if lookup.family.resources.iter().any(|x| x == r) => vec![r.to_string()],
        Some(_) => {
            return Err(Error::oauth(
                ErrorCode::InvalidTarget,
                "resource was not granted",
            ));
        }
    };
    // The access rules are evaluated again, as at /authorize: the client's, and those of the
    // app holding each granted resource, which must still admit the client (rules may have
    // changed since the sign-in).
    let claims = &lookup.family.claims;
    let may = |access: &contract::access::Access| {
        access.may_sign_in(claims.verified_email(), &claims.groups)
    };
    let owners_allow = lookup.family.resources.iter().all(|r| {
        iss.delegation(client, r, &lookup.family.scopes)
            .is_ok_and(|o| may(&o.access))
    });
    if !may(&client.access) || !owners_allow {
        iss.store
            .revoke_refresh_family(&lookup.family.id)
            .await
            .map_err(store_err)?;
        return Err(Error::invalid_grant(
            "the person may no longer use this app",
        ));
    }
    let idle = client
        .lifetimes
        .map_or(iss.lifetimes.refresh_idle, |l| l.idle);
    let policy = RotationPolicy {
        grace_secs: i64::try_from(iss.lifetimes.refresh_grace).unwrap_or(0),
        idle_secs: i64::try_from(idle).unwrap_or(86400),
    };
    let salt = crate::util::random_bytes::<32>();
    let new = successor(old, &salt)?;
    let next = Successor {
        hash: SecretHash::of(&new),
        salt,
    };
    let rotation = iss
        .store
        .rotate_refresh(&old_hash, &next, iss.clock.now(), policy)
        .await;
    let (family, new) = match rotation {
        Ok(Rotation::Rotated { family }) => (family, new),
        // Presented again within the grace window: the family's current token, not a second one.
        Ok(Rotation::Again {
            family,
            salts,
            current,
        }) => {
            let token = salts
                .iter()
                .try_fold(old.to_string(), |token, salt| successor(&token, salt))?;
            if SecretHash::of(&token) != current {
                return Err(Error::Internal(
                    "the refresh chain does not lead to the family's current token".into(),
                ));
            }
            (family, token)
        }
        Ok(Rotation::Reused(_)) => {
            tracing::warn!(family = %lookup.family.id, "refresh token reuse: family revoked");
            return Err(Error::invalid_grant(
                "the refresh token was already used; the grant has been revoked",
            ));
        }
        Ok(Rotation::Inactive(_)) | Err(StoreError::NotFound) => {
            return Err(Error::invalid_grant(
                "the refresh token has expired or was revoked",
            ));
        }
        Err(e) => return Err(store_err(e)),
    };
    let g = Grant {
        subject: &family.subject,
        scopes: &scopes,
        resources: &resources,
        claims: &family.claims,
        auth_time: Some(family.auth_time),
        nonce: None,
        session_id: family.session_id.as_deref(),
    };
    let minted = iss.mint(client, &g, true)?;
    respond(&minted, Some(&new))
}

fn client_credentials(iss: &Issuer, client: &Client, params: &Params) -> Result<Response> {
    if client.public || !client.client_credentials {
        return Err(Error::oauth(
            ErrorCode::UnauthorizedClient,
            "the client may not use the client_credentials grant",
        ));
    }
    let scopes: Vec<String> = match params.get("scope") {
        None => client
            .scopes
            .iter()
            .filter(|s| !crate::scope::OIDC_SCOPES.contains(&s.as_str()))
            .cloned()
            .collect(),
        Some(s) => {
            let Some(v) = crate::scope::parse(s) else {
                return Err(Error::oauth(ErrorCode::InvalidScope, "malformed scope"));
            };
            if v.iter().any(|s| {
                !client.scopes.contains(s) || crate::scope::OIDC_SCOPES.contains(&s.as_str())
            }) {
                return Err(Error::oauth(
                    ErrorCode::InvalidScope,
                    "the client may not request one of these scopes",
                ));
            }
            v
        }
    };
    let resources: Vec<String> = match params.get("resource") {
        None => Vec::new(),
        Some(r) if client.resource.as_deref() == Some(r) || iss.resource_owner(r).is_some() => {
            vec![r.to_string()]
        }
        Some(_) => return Err(Error::oauth(ErrorCode::InvalidTarget, "unknown resource")),
    };
    let claims = Claims::default();
    let g = Grant {
        subject: &client.id,
        scopes: &scopes,
        resources: &resources,
        claims: &claims,
        auth_time: None,
        nonce: None,
        session_id: None,
    };
    let minted = iss.mint(client, &g, false)?;
    respond(&minted, None)
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
    if iss.store.is_access_revoked(jti).await.map_err(store_err)? {
        return Ok(None);
    }
    Ok(Some(claims))
}

/// `GET|POST /userinfo` (bearer token in the `Authorization` header).
pub async fn userinfo(State(iss): State<Shared>, headers: HeaderMap) -> Result<Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let Some(token) = token else {
        let mut res = (StatusCode::UNAUTHORIZED, "").into_response();
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"keyway\""),
        );
        return Ok(res);
    };
    let Some(claims) = verified_access(&iss, token, |_| true).await? else {
        return Err(Error::invalid_token(
            "the access token is invalid, expired or revoked",
        ));
    };
    let scopes: Vec<&str> = claims
        .get("scope")
        .and_then(|s| s.as_str())
        .unwrap_or("")
        .split(' ')
        .collect();
    if !scopes.contains(&"openid") {
        let mut res = Error::oauth(
            ErrorCode::InsufficientScope,
            "the token lacks the openid scope",
        )
        .into_response();
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"insufficient_scope\", scope=\"openid\""),
        );
        return Ok(res);
    }
    let mut out = serde_json::Map::new();
    for k in [
        "sub",
        "email",
        "email_verified",
        "name",
        "preferred_username",
        "groups",
    ] {
        if let Some(v) = claims.get(k) {
            out.insert(k.to_string(), v.clone());
        }
    }
    no_store_json_of(&out)
}

/// `POST /revoke` (RFC 7009): always 200 for tokens that are unknown or not the client's.
pub async fn revoke(
    State(iss): State<Shared>,
    headers: HeaderMap,
    Form(params): Form,
) -> Result<Response> {
    let (client, _) = authenticate(&iss, &headers, &params).await?;
    let token = params.require("token")?;
    if let Some(hint) = params.get("token_type_hint")
        && !matches!(hint, "access_token" | "refresh_token")
    {
        return Err(Error::oauth(
            ErrorCode::UnsupportedTokenType,
            "token_type_hint must be access_token or refresh_token",
        ));
    }
    if let Some(found) = iss
        .store
        .get_refresh(&SecretHash::of(token))
        .await
        .map_err(store_err)?
    {
        if found.family.client_id == client.id {
            iss.store
                .revoke_refresh_family(&found.family.id)
                .await
                .map_err(store_err)?;
        }
    } else if let Some(claims) =
        iss.keys
            .ring()
            .verify(token, Typ::AccessToken, &iss.issuer, iss.clock.now_u64())
        && claims.get("client_id").and_then(|c| c.as_str()) == Some(client.id.as_str())
        && let (Some(jti), Some(exp)) = (
            claims.get("jti").and_then(|j| j.as_str()),
            claims.get("exp").and_then(serde_json::Value::as_i64),
        )
    {
        iss.store.revoke_access(jti, exp).await.map_err(store_err)?;
    }
    // RFC 7009 §2.2: 200 with no body.
    let mut res = StatusCode::OK.into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
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

    #[test]
    fn verifier_shape() {
        assert!(is_verifier(&"a".repeat(43)));
        assert!(!is_verifier(&"a".repeat(42)));
        assert!(!is_verifier(&"a".repeat(129)));
        assert!(!is_verifier(&format!("{}+", "a".repeat(43))));
    }
}

//! `POST /token`: the authorization_code, refresh_token and client_credentials grants. Refresh
//! tokens are issued to clients allowed the refresh_token grant; the tokens themselves are
//! minted by `Issuer::mint` (`crate::oauth::tokens`).

use axum::extract::State;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;

use crate::directory::clients::{Client, Source};
use crate::error::{Error, ErrorCode, Result};
use crate::http::client_auth::authenticate;
use crate::http::response::token_response;
use crate::oauth;
use crate::oauth::tokens::Grant;
use crate::params::{Form, Params};
use crate::state::{Issuer, Shared};
use crate::store::{
    Claims, CodeIssued, RefreshFamily, Rotation, RotationPolicy, SecretHash, StoreError, Successor,
    TakenCode,
};

/// `POST /token`
pub(crate) async fn token(
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
    let (client, _) = authenticate(iss.client_auth(), headers, params).await?;
    let res = match grant {
        "authorization_code" => authorization_code(iss, &client, params).await,
        "refresh_token" => refresh(iss, &client, params).await,
        _ => client_credentials(iss, &client, params),
    }?;
    // A registered client that obtains tokens stays; one that does not expires.
    if client.source == Source::Dynamic {
        iss.store()
            .touch_client(&client.id, iss.clock().now())
            .await?;
    }
    Ok(res)
}

/// Revokes what a replayed code issued.
async fn revoke_issued(iss: &Issuer, issued: &CodeIssued) -> Result<()> {
    if let Some(f) = &issued.refresh_family_id {
        iss.store().revoke_refresh_family(f).await?;
    }
    if let (Some(jti), Some(exp)) = (&issued.access_jti, issued.access_exp) {
        iss.store().revoke_access(jti, exp).await?;
    }
    Ok(())
}

async fn authorization_code(iss: &Issuer, client: &Client, params: &Params) -> Result<Response> {
    oauth::authorization_code::permitted(client)?;
    let code = params.require("code")?;
    let redirect_uri = params.require("redirect_uri")?;
    let verifier = oauth::authorization_code::verifier(params.get("code_verifier"))?;
    let now = iss.clock().now();
    let hash = SecretHash::of(code);
    // Check the binding (client, redirect URI, PKCE verifier) before consuming the code: a
    // request holding a stolen code but not the verifier must not burn it, nor trigger the
    // replay revocation of the legitimate redemption's tokens.
    let stored = match iss.store().peek_code(&hash, now).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(Error::invalid_grant("the code is invalid or has expired")),
        Err(e) => return Err(e.into()),
    };
    oauth::authorization_code::check_binding(&stored, &client.id, redirect_uri, verifier)?;
    let taken = match iss.store().take_code(&hash, now).await {
        Ok(t) => t,
        Err(StoreError::NotFound) => {
            return Err(Error::invalid_grant("the code is invalid or has expired"));
        }
        Err(e) => return Err(e.into()),
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
        let (refresh_ttl, idle) = client.lifetimes.map_or(
            (iss.lifetimes().refresh, iss.lifetimes().refresh_idle),
            |l| (l.refresh, l.idle),
        );
        let token = crate::random::random_token();
        let expires_at = now + i64::try_from(refresh_ttl).unwrap_or(86400);
        let family = RefreshFamily {
            id: crate::random::random_id(),
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
        iss.store()
            .create_refresh_family(&family, &SecretHash::of(&token))
            .await?;
        Some((token, family.id))
    } else {
        None
    };
    let issued = CodeIssued {
        refresh_family_id: refresh.as_ref().map(|(_, f)| f.clone()),
        access_jti: Some(minted.jti.clone()),
        access_exp: Some(minted.exp),
    };
    let first = iss.store().mark_code_issued(&hash, &issued).await?;
    if !first {
        revoke_issued(iss, &issued).await?;
        return Err(Error::invalid_grant(
            "the code was already used; tokens issued from it are revoked",
        ));
    }
    token_response(&minted, refresh.as_ref().map(|(t, _)| t.as_str()))
}

async fn refresh(iss: &Issuer, client: &Client, params: &Params) -> Result<Response> {
    oauth::refresh::permitted(client)?;
    let old = params.require("refresh_token")?;
    let old_hash = SecretHash::of(old);
    let Some(lookup) = iss.store().get_refresh(&old_hash).await? else {
        return Err(Error::invalid_grant("the refresh token is invalid"));
    };
    if lookup.family.client_id != client.id {
        return Err(Error::invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    let scopes = oauth::refresh::scopes(&lookup.family.scopes, params.get("scope"))?;
    let resources = oauth::refresh::resources(&lookup.family.resources, params.get("resource"))?;
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
        iss.store().revoke_refresh_family(&lookup.family.id).await?;
        return Err(Error::invalid_grant(
            "the person may no longer use this app",
        ));
    }
    let idle = client
        .lifetimes
        .map_or(iss.lifetimes().refresh_idle, |l| l.idle);
    let policy = RotationPolicy {
        grace_secs: i64::try_from(iss.lifetimes().refresh_grace).unwrap_or(0),
        idle_secs: i64::try_from(idle).unwrap_or(86400),
    };
    let salt = crate::random::random_bytes::<32>();
    let new = successor(old, &salt)?;
    let next = Successor {
        hash: SecretHash::of(&new),
        salt,
    };
    let rotation = iss
        .store()
        .rotate_refresh(&old_hash, &next, iss.clock().now(), policy)
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
        Err(e) => return Err(e.into()),
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
    token_response(&minted, Some(&new))
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

fn client_credentials(iss: &Issuer, client: &Client, params: &Params) -> Result<Response> {
    oauth::client_credentials::permitted(client)?;
    let scopes = oauth::client_credentials::scopes(client, params.get("scope"))?;
    let resources =
        oauth::client_credentials::resources(client, params.get("resource"), iss.clients())?;
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
    token_response(&minted, None)
}

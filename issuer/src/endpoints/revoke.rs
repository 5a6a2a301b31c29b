//! `POST /revoke` (RFC 7009): token revocation by the client it was issued to.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::error::{Error, ErrorCode, Result};
use crate::http::client_auth::authenticate;
use crate::params::Form;
use crate::state::Clients;
use crate::store::SecretHash;

/// `POST /revoke` (RFC 7009): always 200 for tokens that are unknown or not the client's.
pub(crate) async fn revoke(
    State(clients): State<Clients>,
    headers: HeaderMap,
    Form(params): Form,
) -> Result<Response> {
    let (client, _) = authenticate(&clients, &headers, &params).await?;
    let tokens = clients.tokens();
    let token = params.require("token")?;
    if let Some(hint) = params.get("token_type_hint")
        && !matches!(hint, "access_token" | "refresh_token")
    {
        return Err(Error::oauth(
            ErrorCode::UnsupportedTokenType,
            "token_type_hint must be access_token or refresh_token",
        ));
    }
    if let Some(found) = tokens.store().get_refresh(&SecretHash::of(token)).await? {
        if found.family.client_id == client.id {
            tokens
                .store()
                .revoke_refresh_family(&found.family.id)
                .await?;
        }
    } else if let Some(claims) = tokens.access_claims(token)
        && claims.get("client_id").and_then(|c| c.as_str()) == Some(client.id.as_str())
        && let (Some(jti), Some(exp)) = (
            claims.get("jti").and_then(|j| j.as_str()),
            claims.get("exp").and_then(serde_json::Value::as_i64),
        )
    {
        tokens.store().revoke_access(jti, exp).await?;
    }
    // RFC 7009 §2.2: 200 with no body.
    let mut res = StatusCode::OK.into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

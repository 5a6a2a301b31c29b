//! `GET|POST /userinfo` (OpenID Connect Core §5.3): the person's claims for a bearer token.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::error::{Error, ErrorCode, Result};
use crate::http::response::no_store_json_of;
use crate::state::Tokens;

/// `GET|POST /userinfo` (bearer token in the `Authorization` header).
pub(crate) async fn userinfo(State(tokens): State<Tokens>, headers: HeaderMap) -> Result<Response> {
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
    let Some(claims) = tokens.verified_access(token, |_| true).await? else {
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

//! `POST /introspect` (RFC 7662): for authenticated confidential clients, and only about tokens
//! the caller has a part in (RFC 7662 §4: the server determines whether the token may be
//! introspected by the requesting client):
//!
//! - an access token: the client it was issued to (`client_id`), or a resource server for it,
//!   i.e. a client whose ConnectedApp `resource` is in the token's `aud`;
//! - a refresh token: only the client it was issued to.
//!
//! Every other token gets `{"active":false}`, byte for byte what an unknown, expired or revoked
//! token gets, so introspection tells one client nothing about another client's tokens (and the
//! revocation list is not even consulted for them).

use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use serde_json::{Map, Value};

use crate::directory::clients::Client;
use crate::error::{Error, Result};
use crate::http::client_auth::{AuthMethod, authenticate};
use crate::http::response::{no_store_json, no_store_json_of};
use crate::params::Form;
use crate::state::Clients;
use crate::store::SecretHash;

/// Access-token claims an introspection answer repeats.
const ACCESS_CLAIMS: [&str; 10] = [
    "scope",
    "client_id",
    "sub",
    "aud",
    "iss",
    "exp",
    "iat",
    "jti",
    "email",
    "groups",
];

/// Whether `client` may introspect an access token with these claims: it is the token's client,
/// or its resource is (one of) the token's audience(s).
pub(crate) fn may_introspect(client: &Client, claims: &Map<String, Value>) -> bool {
    if claims.get("client_id").and_then(Value::as_str) == Some(client.id.as_str()) {
        return true;
    }
    let Some(resource) = client.resource.as_deref() else {
        return false;
    };
    match claims.get("aud") {
        Some(Value::String(aud)) => aud == resource,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(resource)),
        _ => false,
    }
}

/// `POST /introspect`.
pub(crate) async fn introspect(
    State(clients): State<Clients>,
    headers: HeaderMap,
    Form(params): Form,
) -> Result<Response> {
    let (client, method) = authenticate(&clients, &headers, &params).await?;
    let tokens = clients.tokens();
    if method == AuthMethod::None {
        return Err(Error::invalid_client(false));
    }
    let token = params.require("token")?;
    let inactive = || no_store_json(br#"{"active":false}"#.to_vec());
    if let Some(found) = tokens.store().get_refresh(&SecretHash::of(token)).await? {
        if found.family.client_id != client.id || !found.is_active(tokens.clock().now()) {
            return Ok(inactive());
        }
        let f = &found.family;
        let body = serde_json::json!({
            "active": true,
            "token_type": "refresh_token",
            "scope": f.scopes.join(" "),
            "client_id": f.client_id,
            "sub": f.subject,
            "iss": tokens.issuer(),
            "iat": found.token.created_at,
            "exp": f.expires_at.min(f.idle_expires_at),
        });
        return Ok(no_store_json(body.to_string().into_bytes()));
    }
    let Some(claims) = tokens
        .verified_access(token, |c| may_introspect(&client, c))
        .await?
    else {
        return Ok(inactive());
    };
    let mut out = Map::new();
    out.insert("active".into(), true.into());
    out.insert("token_type".into(), "Bearer".into());
    for k in ACCESS_CLAIMS {
        if let Some(v) = claims.get(k) {
            out.insert(k.to_string(), v.clone());
        }
    }
    if let Some(e) = claims.get("email") {
        out.insert("username".into(), e.clone());
    }
    no_store_json_of(&out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::directory::clients::Source;

    fn client(id: &str, resource: Option<&str>) -> Client {
        Client {
            id: id.into(),
            name: id.into(),
            description: None,
            logo_uri: None,
            public: false,
            third_party: false,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            authorization_code: false,
            refresh_token: false,
            client_credentials: true,
            scopes: vec![],
            resource: resource.map(str::to_string),
            access: Default::default(),
            lifetimes: None,
            secrets: vec![],
            source: Source::ConnectedApp,
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_tokens_client_and_its_resource_servers_only() {
        let at = claims(serde_json::json!({"client_id": "a", "aud": "https://api.example"}));
        assert!(may_introspect(&client("a", None), &at));
        assert!(may_introspect(
            &client("rs", Some("https://api.example")),
            &at
        ));
        assert!(!may_introspect(&client("other", None), &at));
        assert!(!may_introspect(
            &client("other", Some("https://api.example/")),
            &at
        ));
        assert!(!may_introspect(&client("A", None), &at));
        let multi =
            claims(serde_json::json!({"client_id": "a", "aud": ["x", "https://api.example"]}));
        assert!(may_introspect(
            &client("rs", Some("https://api.example")),
            &multi
        ));
        assert!(!may_introspect(&client("rs", Some("y")), &multi));
        // A token without client_id or aud belongs to nobody.
        let bare = claims(serde_json::json!({"sub": "a"}));
        assert!(!may_introspect(&client("a", Some("a")), &bare));
    }
}

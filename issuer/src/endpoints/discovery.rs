//! Discovery: OpenID Connect Discovery 1.0 and RFC 8414 metadata, and the JWKS.
//!
//! Both documents are built from one function so that they cannot disagree, and only list what
//! the endpoints actually do.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use serde_json::{Value, json};

use crate::state::{Clients, Tokens};

/// Scopes the issuer understands (apps may add their own).
pub(crate) const SCOPES: [&str; 5] = ["openid", "profile", "email", "groups", "offline_access"];

/// The metadata document.
fn metadata(clients: &Clients) -> Value {
    let iss = clients.tokens();
    let ring = iss.keys().ring();
    let algs = ring.algs();
    // The standard scopes, then every scope a ConnectedApp declares.
    let mut scopes: Vec<String> = SCOPES.iter().map(|s| s.to_string()).collect();
    for c in clients.registry().all() {
        for s in &c.scopes {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
    }
    let mut m = json!({
        "issuer": iss.issuer(),
        "authorization_endpoint": iss.url("/authorize"),
        "token_endpoint": iss.url("/token"),
        "userinfo_endpoint": iss.url("/userinfo"),
        "jwks_uri": iss.url("/jwks"),
        "revocation_endpoint": iss.url("/revoke"),
        "introspection_endpoint": iss.url("/introspect"),
        "end_session_endpoint": iss.url("/end_session"),
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "azp",
            "email", "email_verified", "name", "preferred_username", "groups"
        ],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": true,
        "resource_indicators_supported": true,
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": false,
    });
    if clients.dcr().is_some()
        && let Some(o) = m.as_object_mut()
    {
        o.insert("registration_endpoint".into(), iss.url("/register").into());
    }
    m
}

fn json_response(body: Vec<u8>, cache: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    res
}

/// `GET /.well-known/openid-configuration`
pub(crate) async fn openid_configuration(State(clients): State<Clients>) -> Response {
    json_response(
        metadata(&clients).to_string().into_bytes(),
        "public, max-age=300",
    )
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414; same document).
pub(crate) async fn oauth_metadata(State(clients): State<Clients>) -> Response {
    json_response(
        metadata(&clients).to_string().into_bytes(),
        "public, max-age=300",
    )
}

/// `GET /jwks`
pub(crate) async fn jwks(State(tokens): State<Tokens>) -> Response {
    json_response(tokens.keys().ring().jwks.to_vec(), "public, max-age=300")
}

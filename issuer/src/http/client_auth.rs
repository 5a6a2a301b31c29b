//! Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3.1):
//! HTTP Basic (`client_secret_basic`, each half form-urlencoded), `client_secret` in the body
//! (`client_secret_post`), or a public client's bare `client_id` (`none`); exactly one method
//! per request.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, header};

use crate::directory::clients::Client;
use crate::error::{Error, Result};
use crate::params::Params;
use crate::state::Clients;

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
    clients: &Clients,
    headers: &HeaderMap,
    params: &Params,
) -> Result<(Arc<Client>, AuthMethod)> {
    let now = clients.tokens().clock().now_u64();
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
        let client = clients
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
    let client = clients
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use http::HeaderValue;

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
}

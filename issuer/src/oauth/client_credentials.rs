//! The client credentials grant (RFC 6749 §4.4): for confidential clients that ask for it, with
//! the client's registered scopes except the OpenID Connect ones (the token stands for the
//! client, not a person), for its own resource or one a ConnectedApp holds.

use super::Refusal;
use crate::directory::clients::{Client, Registry};
use crate::error::ErrorCode::{InvalidScope, InvalidTarget, UnauthorizedClient};
use crate::scope::OIDC_SCOPES;

/// Whether `client` may use this grant (confidential clients that registered it).
pub(crate) fn permitted(client: &Client) -> Result<(), Refusal> {
    if client.public || !client.client_credentials {
        Err(Refusal::new(
            UnauthorizedClient,
            "the client may not use the client_credentials grant",
        ))
    } else {
        Ok(())
    }
}

/// The token's scopes: the client's registered ones without the OpenID Connect scopes, or the
/// requested ones if the client registers each and none is an OpenID Connect scope.
pub(crate) fn scopes(client: &Client, requested: Option<&str>) -> Result<Vec<String>, Refusal> {
    let is_oidc = |s: &String| OIDC_SCOPES.contains(&s.as_str());
    let Some(s) = requested else {
        return Ok(client
            .scopes
            .iter()
            .filter(|s| !is_oidc(s))
            .cloned()
            .collect());
    };
    let Some(v) = crate::scope::parse(s) else {
        return Err(Refusal::new(InvalidScope, "malformed scope"));
    };
    if v.iter().any(|s| !client.scopes.contains(s) || is_oidc(s)) {
        return Err(Refusal::new(
            InvalidScope,
            "the client may not request one of these scopes",
        ));
    }
    Ok(v)
}

/// The token's resources: none unless requested; the client's own resource or one a
/// ConnectedApp holds.
pub(crate) fn resources(
    client: &Client,
    requested: Option<&str>,
    apps: &Registry,
) -> Result<Vec<String>, Refusal> {
    match requested {
        None => Ok(Vec::new()),
        Some(r) if client.resource.as_deref() == Some(r) || apps.resource_owner(r).is_some() => {
            Ok(vec![r.to_string()])
        }
        Some(_) => Err(Refusal::new(InvalidTarget, "unknown resource")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::oauth::delegation::tests::app;

    #[test]
    fn only_confidential_clients_that_registered_it() {
        let mut c = app("svc", &["tool:read"]);
        assert_eq!(permitted(&c), Ok(()));
        c.public = true;
        assert_eq!(permitted(&c).unwrap_err().code, UnauthorizedClient);
        c.public = false;
        c.client_credentials = false;
        assert_eq!(permitted(&c).unwrap_err().code, UnauthorizedClient);
    }

    #[test]
    fn no_openid_connect_scopes_for_a_client() {
        let c = app("svc", &["openid", "email", "tool:read", "tool:write"]);
        assert_eq!(scopes(&c, None).unwrap(), vec!["tool:read", "tool:write"]);
        assert_eq!(scopes(&c, Some("tool:write")).unwrap(), vec!["tool:write"]);
        for refused in ["openid", "tool:admin", "a\"b"] {
            assert_eq!(scopes(&c, Some(refused)).unwrap_err().code, InvalidScope);
        }
    }

    #[test]
    fn its_own_resource_or_none() {
        let c = app("svc", &[]);
        let apps = Registry::default();
        assert_eq!(resources(&c, None, &apps).unwrap(), Vec::<String>::new());
        assert_eq!(
            resources(&c, Some("https://svc.example"), &apps).unwrap(),
            vec!["https://svc.example"]
        );
        assert_eq!(
            resources(&c, Some("https://other.example"), &apps)
                .unwrap_err()
                .code,
            InvalidTarget
        );
    }
}

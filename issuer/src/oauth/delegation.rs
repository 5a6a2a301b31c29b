//! Which clients may obtain a signed-in person's access token for a resource: the app holding
//! the resource decides (`contract::access::Access::admits_client`), and a client other than
//! the holder gets only scopes the holder registers. The authorization endpoint decides before
//! any code or consent page, the token endpoint again for every code and refresh.

use std::sync::Arc;

use super::Refusal;
use crate::directory::clients::Client;
use crate::error::ErrorCode::{InvalidScope, InvalidTarget};

/// `Ok(holder)` when `holder` (the ConnectedApp holding the resource, if any) admits `client`
/// with `scopes`; otherwise why not (`invalid_target`, `invalid_scope`).
pub(crate) fn decide(
    holder: Option<Arc<Client>>,
    client: &Client,
    scopes: &[String],
) -> Result<Arc<Client>, Refusal> {
    let Some(holder) = holder else {
        return Err(Refusal::new(InvalidTarget, "unknown resource"));
    };
    if holder.id == client.id {
        return Ok(holder);
    }
    if !holder.access.admits_client(&holder.id, &client.id) {
        return Err(Refusal::new(
            InvalidTarget,
            "the app holding this resource does not admit this client",
        ));
    }
    if scopes.iter().any(|s| !holder.scopes.contains(s)) {
        return Err(Refusal::new(
            InvalidScope,
            "a scope is not one the app holding this resource registers",
        ));
    }
    Ok(holder)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::directory::clients::Source;

    /// A confidential ConnectedApp client with `scopes`, holding `https://<id>.example`.
    pub(crate) fn app(id: &str, scopes: &[&str]) -> Client {
        Client {
            id: id.into(),
            name: id.into(),
            description: None,
            logo_uri: None,
            public: false,
            third_party: false,
            redirect_uris: vec![format!("https://{id}.example/cb")],
            post_logout_redirect_uris: Vec::new(),
            authorization_code: true,
            refresh_token: true,
            client_credentials: true,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            resource: Some(format!("https://{id}.example")),
            access: Default::default(),
            lifetimes: None,
            secrets: Vec::new(),
            source: Source::Dynamic,
        }
    }

    fn scopes(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_unknown_resource_is_an_invalid_target() {
        let c = app("a", &["openid"]);
        assert_eq!(decide(None, &c, &[]).unwrap_err().code, InvalidTarget);
    }

    #[test]
    fn the_holder_itself_may() {
        let c = Arc::new(app("a", &["openid", "tool:read"]));
        let got = decide(Some(c.clone()), &c, &scopes(&["tool:read"])).unwrap();
        assert_eq!(got.id, "a");
    }

    #[test]
    fn another_client_needs_the_holders_admission() {
        // By default an app admits only itself.
        let holder = Arc::new(app("tool", &["tool:read"]));
        let other = app("other", &["tool:read"]);
        let refused = decide(Some(holder), &other, &scopes(&["tool:read"])).unwrap_err();
        assert_eq!(refused.code, InvalidTarget);
    }
}

//! Dynamic client registration (RFC 7591), off unless `--dcr` is given.
//!
//! Registered clients are public (`token_endpoint_auth_method: none`), third-party (consent is
//! always shown, marked as an unverified app with the host its code goes to), limited to the
//! configured scopes, and may only use loopback http or https redirect URIs without fragments.
//! A `client_name` that reads as a ConnectedApp's display name (same letters and digits, any
//! case) is refused (`invalid_client_metadata`). A person's token for an app's resource needs
//! that app's `access.dynamicClients: withConsent`. A client that obtains no token for
//! `--dcr-idle-expiry` is gone (and deleted, with its consents, by the background sweep).
//!
//! Registrations are rate-limited by two budgets, counted in the store (so replicas sharing a
//! store share them) in fixed clock windows: per client address per hour (`--dcr-rate-per-address`,
//! the address as the sign-in throttle counts it, see [`ClientAddr`]) and for all callers together
//! per minute (`--dcr-rate`). A registration refused by the per-address budget is not counted
//! against the shared one, so one client cannot use up everybody's registrations. A refusal is
//! `429 Too Many Requests` with `Retry-After` (seconds until that window ends) and the OAuth error
//! `temporarily_unavailable`.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::directory::client_addr::ClientAddr;
use crate::directory::clients::is_loopback_host;
use crate::directory::registered::ID_PREFIX;
use crate::error::{Error, ErrorCode, Result};
use crate::state::Clients;
use crate::store::RegisteredClient;

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    logo_uri: Option<String>,
    #[serde(default)]
    client_uri: Option<String>,
}

fn meta_err(code: ErrorCode, msg: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::oauth(code, msg)
}

fn check_redirect(uri: &str) -> bool {
    let Ok(u) = Url::parse(uri) else {
        return false;
    };
    if u.fragment().is_some() || !u.username().is_empty() || u.password().is_some() {
        return false;
    }
    if uri.len() > 2048 || uri.chars().any(char::is_whitespace) {
        return false;
    }
    match u.scheme() {
        "https" => u.has_host(),
        "http" => is_loopback_host(&u),
        _ => false,
    }
}

/// `POST /register`
pub(crate) async fn register(
    State(clients): State<Clients>,
    addr: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let Some(dcr) = clients.dcr() else {
        return Err(Error::page(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is nothing at this address.",
        ));
    };
    let meta = Metadata::parse(&headers, &body)?;
    let (grants, scopes) = meta.check(&dcr.scopes)?;
    let name = meta.name()?;
    // A registered client must not pass for an app people know (the consent page names it).
    if clients.registry().has_name_like(&name) {
        return Err(meta_err(
            ErrorCode::InvalidClientMetadata,
            "client_name is the name of an app registered with keyway: choose another",
        ));
    }
    let store = clients.tokens().store();
    let now = clients.tokens().clock().now();
    if let Err(retry_after) = dcr.admit(store.as_ref(), addr, now).await? {
        return Err(Error::RateLimited {
            description: "too many registrations, try again later".into(),
            retry_after,
        });
    }
    let client_id = format!("{ID_PREFIX}{}", crate::random::random_id());
    let registered = meta.registered(&client_id, now, &name, &grants, &scopes);
    store
        .put_client(&RegisteredClient {
            client_id: client_id.clone(),
            metadata: registered.clone(),
            created_at: now,
            last_used: now,
        })
        .await?;
    tracing::info!(client_id = %client_id, "registered a client");
    let mut res = (StatusCode::CREATED, registered.to_string()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

impl Metadata {
    /// The request body: JSON of at most 16 KiB.
    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self> {
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim() == "application/json")
            });
        if !is_json {
            return Err(Error::invalid_request("the body must be application/json"));
        }
        if body.len() > 16 * 1024 {
            return Err(meta_err(
                ErrorCode::InvalidClientMetadata,
                "metadata too large",
            ));
        }
        serde_json::from_slice(body).map_err(|_| {
            meta_err(
                ErrorCode::InvalidClientMetadata,
                "malformed client metadata",
            )
        })
    }

    /// Checks the redirect URIs, authentication method, grant and response types and scopes;
    /// returns the grant types and the scopes (`allowed` when none are asked for).
    fn check(&self, allowed: &[String]) -> Result<(Vec<String>, Vec<String>)> {
        if self.redirect_uris.is_empty() || self.redirect_uris.len() > 10 {
            return Err(meta_err(
                ErrorCode::InvalidRedirectUri,
                "one to ten redirect_uris are required",
            ));
        }
        if self.redirect_uris.iter().any(|u| !check_redirect(u)) {
            return Err(meta_err(
                ErrorCode::InvalidRedirectUri,
                "redirect URIs must be https, or http on a loopback address, without fragment",
            ));
        }
        match self.token_endpoint_auth_method.as_deref() {
            None | Some("none") => {}
            Some(_) => {
                return Err(meta_err(
                    ErrorCode::InvalidClientMetadata,
                    "only public clients (token_endpoint_auth_method none) may register",
                ));
            }
        }
        let grants = self
            .grant_types
            .clone()
            .unwrap_or_else(|| vec!["authorization_code".into()]);
        if grants.is_empty()
            || grants
                .iter()
                .any(|g| g != "authorization_code" && g != "refresh_token")
        {
            return Err(meta_err(
                ErrorCode::InvalidClientMetadata,
                "grant_types may only contain authorization_code and refresh_token",
            ));
        }
        if let Some(rt) = &self.response_types
            && rt.iter().any(|r| r != "code")
        {
            return Err(meta_err(
                ErrorCode::InvalidClientMetadata,
                "response_types may only contain code",
            ));
        }
        let scopes: Vec<String> = match &self.scope {
            None => allowed.to_vec(),
            Some(s) => match crate::scope::parse(s) {
                Some(v) if v.iter().all(|x| allowed.contains(x)) => v,
                _ => {
                    return Err(meta_err(
                        ErrorCode::InvalidClientMetadata,
                        "scope contains a scope registered clients may not use",
                    ));
                }
            },
        };
        Ok((grants, scopes))
    }

    /// `client_name`, or "Unnamed app": at most 100 characters, no control characters.
    fn name(&self) -> Result<String> {
        let name = self
            .client_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "Unnamed app".into());
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(meta_err(
                ErrorCode::InvalidClientMetadata,
                "client_name is too long",
            ));
        }
        Ok(name)
    }

    /// The registered client's metadata as stored and answered (`logo_uri` and `client_uri`
    /// only when they are https URLs).
    fn registered(
        &self,
        client_id: &str,
        now: i64,
        name: &str,
        grants: &[String],
        scopes: &[String],
    ) -> serde_json::Value {
        let logo = self
            .logo_uri
            .clone()
            .filter(|l| l.starts_with("https://") && check_redirect(l));
        let mut registered = json!({
            "client_id": client_id,
            "client_id_issued_at": now,
            "client_name": name,
            "redirect_uris": self.redirect_uris,
            "grant_types": grants,
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": scopes.join(" "),
        });
        if let (Some(l), Some(o)) = (logo, registered.as_object_mut()) {
            o.insert("logo_uri".into(), l.into());
        }
        if let (Some(c), Some(o)) = (self.client_uri.clone(), registered.as_object_mut())
            && c.starts_with("https://")
            && check_redirect(&c)
        {
            o.insert("client_uri".into(), c.into());
        }
        registered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_rules() {
        assert!(check_redirect("http://127.0.0.1:1234/cb"));
        assert!(check_redirect("http://localhost/cb"));
        assert!(check_redirect("https://app.example/cb"));
        assert!(!check_redirect("http://app.example/cb"));
        assert!(!check_redirect("https://app.example/cb#x"));
        assert!(!check_redirect("https://u:p@app.example/cb"));
        assert!(!check_redirect("javascript:alert(1)"));
        assert!(!check_redirect("com.example.app:/cb"));
    }
}

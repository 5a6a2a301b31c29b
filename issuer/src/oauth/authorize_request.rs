//! The authorization request's parameters once its client and redirect URI are known (RFC 6749
//! §4.1.1, OAuth 2.1 §4.1.1, RFC 7636, RFC 8707, OpenID Connect Core §3.1.2.1): response type
//! and mode, the client's grant, PKCE, scopes, the resource and whether its holder admits the
//! client, `prompt`, `max_age`. Every refusal here is sent back to the client's redirect URI
//! (`crate::endpoints::authorize` looks the client up and shows the person the errors that cannot
//! be). [`AuthzRequest`] is the validated request, [`response_location`] where its answer goes.

use std::sync::Arc;

use url::Url;

use super::Refusal;
use crate::directory::clients::{Client, Registry};
use crate::error::{Error, ErrorCode};
use crate::params::Params;

/// `prompt` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Prompt {
    /// `none`
    pub none: bool,
    /// `login`
    pub login: bool,
    /// `consent`
    pub consent: bool,
}

/// What an authorization request asks for, checked against its client.
#[derive(Clone, Debug, Default)]
pub(crate) struct Checked {
    /// Requested scopes (validated against the client and the resource's holder).
    pub scopes: Vec<String>,
    /// RFC 8707 resource (the token's audience), if any.
    pub resource: Option<String>,
    /// The ConnectedApp holding `resource`, which admits the client.
    pub holder: Option<Arc<Client>>,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// Prompt.
    pub prompt: Prompt,
    /// `max_age` in seconds.
    pub max_age: Option<i64>,
}

/// Checks the parameters of an authorization request from `client` (whose redirect URI is
/// already checked); `apps` are the ConnectedApps, which hold the resources. The checks run in
/// a fixed order and the first refusal is the answer.
pub(crate) fn check(
    params: &Params,
    client: &Arc<Client>,
    apps: &Registry,
) -> Result<Checked, Refusal> {
    let mut req = Checked::default();
    response_type(params, client)?;
    req.code_challenge = super::pkce::challenge(
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    )?
    .to_string();
    scopes_and_resource(params, client, apps, &mut req)?;
    req.prompt = prompt(params)?;
    req.max_age = max_age(params)?;
    Ok(req)
}

/// No request objects; the code flow (`response_type=code`, `response_mode=query`), which the
/// client must be allowed.
fn response_type(params: &Params, client: &Client) -> Result<(), Refusal> {
    use ErrorCode::*;
    if params.get("request").is_some() || params.get("request_uri").is_some() {
        return Err(Refusal::new(
            InvalidRequest,
            "request objects are not supported",
        ));
    }
    match params.get("response_type") {
        None => {
            return Err(Refusal::new(
                InvalidRequest,
                "missing parameter response_type",
            ));
        }
        Some("code") => {}
        Some(_) => {
            return Err(Refusal::new(
                UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
    }
    if params.get("response_mode").is_some_and(|m| m != "query") {
        return Err(Refusal::new(
            InvalidRequest,
            "only response_mode=query is supported",
        ));
    }
    if !client.authorization_code {
        return Err(Refusal::new(
            UnauthorizedClient,
            "the client may not use the authorization code grant",
        ));
    }
    Ok(())
}

/// The scopes (the client's by default), the resource (the client's by default) and the app
/// holding it, which must admit the client with those scopes.
fn scopes_and_resource(
    params: &Params,
    client: &Arc<Client>,
    apps: &Registry,
    req: &mut Checked,
) -> Result<(), Refusal> {
    use ErrorCode::*;
    req.scopes = match params.get("scope") {
        None => client.scopes.clone(),
        Some(s) => match crate::scope::parse(s) {
            Some(v) if !v.is_empty() => v,
            _ => return Err(Refusal::new(InvalidScope, "malformed scope")),
        },
    };
    if req.scopes.iter().any(|s| !client.scopes.contains(s)) {
        return Err(Refusal::new(
            InvalidScope,
            "the client may not request one of these scopes",
        ));
    }
    if let Some(r) = params.get("resource") {
        if !is_resource_uri(r) {
            return Err(Refusal::new(InvalidTarget, "unknown resource"));
        }
        req.resource = Some(r.to_string());
    } else {
        req.resource = client.resource.clone();
    }
    // A person's token for a resource only for a client its app admits, with scopes it
    // registers: decided here, before any sign-in, consent page or code.
    if let Some(r) = &req.resource {
        // Without `scope`, a client asking for another app's resource asks for those of its
        // scopes that the app registers (RFC 6749 §3.3: a pre-defined default).
        if params.get("scope").is_none()
            && let Some(holder) = apps.resource_owner(r)
            && holder.id != client.id
        {
            req.scopes.retain(|s| holder.scopes.contains(s));
            if req.scopes.is_empty() {
                return Err(Refusal::new(
                    InvalidScope,
                    "none of the client's scopes is one the app holding this resource registers",
                ));
            }
        }
        req.holder = Some(super::delegation::decide(
            apps.resource_owner(r),
            client,
            &req.scopes,
        )?);
    }
    Ok(())
}

/// `prompt`: `none`, `login`, `consent` (`select_account` is accepted and ignored); `none`
/// alone.
fn prompt(params: &Params) -> Result<Prompt, Refusal> {
    let mut prompt = Prompt::default();
    if let Some(p) = params.get("prompt") {
        for v in p.split(' ').filter(|v| !v.is_empty()) {
            match v {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => {}
                _ => {
                    return Err(Refusal::new(
                        ErrorCode::InvalidRequest,
                        "unsupported prompt value",
                    ));
                }
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(Refusal::new(
                ErrorCode::InvalidRequest,
                "prompt=none cannot be combined with other values",
            ));
        }
    }
    Ok(prompt)
}

/// `max_age`, in seconds.
fn max_age(params: &Params) -> Result<Option<i64>, Refusal> {
    let Some(m) = params.get("max_age") else {
        return Ok(None);
    };
    match m.parse::<u32>() {
        Ok(v) => Ok(Some(i64::from(v))),
        Err(_) => Err(Refusal::new(
            ErrorCode::InvalidRequest,
            "max_age must be a number of seconds",
        )),
    }
}

/// An absolute URI without fragment (RFC 8707 §2).
fn is_resource_uri(r: &str) -> bool {
    Url::parse(r).is_ok_and(|u| u.fragment().is_none() && u.has_host())
}

/// A validated authorization request.
#[derive(Clone, Debug)]
pub(crate) struct AuthzRequest {
    /// The client.
    pub client: Arc<Client>,
    /// Its exact redirect URI.
    pub redirect_uri: String,
    /// `state` to echo.
    pub state: Option<String>,
    /// OIDC nonce.
    pub nonce: Option<String>,
    /// Requested scopes (validated against the client).
    pub scopes: Vec<String>,
    /// RFC 8707 resource (the token's audience), if any.
    pub resource: Option<String>,
    /// The ConnectedApp holding `resource`, which admits the client (`Issuer::delegation`).
    pub holder: Option<Arc<Client>>,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// Prompt.
    pub prompt: Prompt,
    /// `max_age` in seconds.
    pub max_age: Option<i64>,
    /// The original parameters (to carry through forms).
    pub params: Params,
}

impl AuthzRequest {
    /// An error for the client, sent to its redirect URI (`issuer`: the `iss` parameter).
    pub(crate) fn error(&self, issuer: &str, code: ErrorCode, description: &'static str) -> Error {
        Error::Redirect {
            location: response_location(
                &self.redirect_uri,
                &[("error", code.as_str()), ("error_description", description)],
                self.state.as_deref(),
                issuer,
            ),
            code,
            description: description.into(),
        }
    }
}

/// The redirect URI with response parameters, `state` and `iss` appended to its query.
pub(crate) fn response_location(
    redirect_uri: &str,
    pairs: &[(&str, &str)],
    state: Option<&str>,
    issuer: &str,
) -> String {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return redirect_uri.to_string();
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", issuer);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::oauth::delegation::tests::app;

    const PKCE: &str = "response_type=code&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";

    /// A client with `openid` and `tool:read` that holds no resource.
    fn client() -> Arc<Client> {
        let mut c = app("a", &["openid", "tool:read"]);
        c.resource = None;
        Arc::new(c)
    }

    fn checked(query: &str) -> Result<Checked, Refusal> {
        let params = Params::parse(query.as_bytes()).unwrap();
        check(&params, &client(), &Registry::default())
    }

    fn refused(query: &str) -> ErrorCode {
        checked(query).unwrap_err().code
    }

    #[test]
    fn a_plain_request_gets_the_clients_scopes() {
        let c = checked(PKCE).unwrap();
        assert_eq!(c.scopes, vec!["openid", "tool:read"]);
        assert_eq!(
            c.code_challenge,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!((c.resource, c.holder.is_none()), (None, true));
        assert_eq!((c.prompt, c.max_age), (Prompt::default(), None));
    }

    #[test]
    fn prompt_and_max_age_are_read() {
        let c = checked(&format!(
            "{PKCE}&prompt=login%20consent&max_age=300&scope=openid"
        ))
        .unwrap();
        assert!(c.prompt.login && c.prompt.consent && !c.prompt.none);
        assert_eq!(c.max_age, Some(300));
        assert_eq!(c.scopes, vec!["openid"]);
    }

    #[test]
    fn each_refusal_has_its_code() {
        use ErrorCode::*;
        assert_eq!(refused(&format!("{PKCE}&request=x")), InvalidRequest);
        assert_eq!(refused("code_challenge=x"), InvalidRequest);
        assert_eq!(
            refused(&PKCE.replace("=code", "=token")),
            UnsupportedResponseType
        );
        assert_eq!(
            refused(&format!("{PKCE}&response_mode=fragment")),
            InvalidRequest
        );
        assert_eq!(refused(&PKCE.replace("S256", "plain")), InvalidRequest);
        assert_eq!(refused(&format!("{PKCE}&scope=tool:write")), InvalidScope);
        assert_eq!(refused(&format!("{PKCE}&scope=%20")), InvalidScope);
        assert_eq!(
            refused(&format!("{PKCE}&resource=https://t.example/%23f")),
            InvalidTarget
        );
        // No ConnectedApp holds this resource.
        assert_eq!(
            refused(&format!("{PKCE}&resource=https://t.example")),
            InvalidTarget
        );
        assert_eq!(
            refused(&format!("{PKCE}&prompt=none%20login")),
            InvalidRequest
        );
        assert_eq!(refused(&format!("{PKCE}&prompt=always")), InvalidRequest);
        assert_eq!(refused(&format!("{PKCE}&max_age=-1")), InvalidRequest);
    }

    #[test]
    fn a_client_without_the_code_grant_is_unauthorized() {
        let mut c = app("a", &["openid"]);
        c.authorization_code = false;
        let params = Params::parse(PKCE.as_bytes()).unwrap();
        let r = check(&params, &Arc::new(c), &Registry::default()).unwrap_err();
        assert_eq!(r.code, ErrorCode::UnauthorizedClient);
    }

    #[test]
    fn location_keeps_existing_query_and_adds_iss() {
        let l = response_location(
            "https://app.example/cb?x=1",
            &[("code", "abc")],
            Some("s t"),
            "https://login.example",
        );
        assert_eq!(
            l,
            "https://app.example/cb?x=1&code=abc&state=s+t&iss=https%3A%2F%2Flogin.example"
        );
    }
}

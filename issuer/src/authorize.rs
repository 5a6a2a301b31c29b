//! The authorization request (validation, the response location) and starting a sign-in
//! session; the handlers of `/authorize`, `/login` and `/consent` are in `endpoints`.
//!
//! The pending authorization request travels through the login and consent forms as its own
//! query string (hidden field `request`) and is validated again from scratch on every step, so no
//! server-side state is needed between steps and several replicas can serve one flow.
//!
//! Order of checks (RFC 6749 §4.1.2.1): the client and the redirect URI first; problems with
//! them are shown to the person and never redirected. Everything after that
//! (`crate::oauth::authorize_request`) is sent back to the redirect URI with `state` and `iss`
//! (RFC 9207).

use std::sync::Arc;

use http::StatusCode;
use url::Url;

use crate::directory::clients::Client;
use crate::error::{Error, ErrorCode, Result};
use crate::oauth::authorize_request::Prompt;
use crate::params::Params;
use crate::state::Issuer;
use crate::store::{SecretHash, Session};

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
    /// The ConnectedApp holding `resource`, which admits the client ([`Issuer::delegation`]).
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
    /// An error for the client, sent to its redirect URI.
    pub(crate) fn error(&self, iss: &Issuer, code: ErrorCode, description: &'static str) -> Error {
        Error::Redirect {
            location: response_location(
                &self.redirect_uri,
                &[("error", code.as_str()), ("error_description", description)],
                self.state.as_deref(),
                &iss.issuer,
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

/// Validates an authorization request.
pub(crate) async fn validate(iss: &Issuer, params: Params) -> Result<AuthzRequest> {
    let bad_page = |msg: &'static str| {
        Error::page(
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid",
            msg,
        )
    };
    let Some(client_id) = params.get("client_id") else {
        return Err(bad_page(
            "The request does not say which app it comes from (client_id is missing).",
        ));
    };
    let Some(client) = iss.client(client_id).await? else {
        return Err(bad_page(
            "The app that sent you here is not registered with keyway (unknown client_id).",
        ));
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return Err(bad_page("The request has no redirect_uri."));
    };
    if !client.has_redirect_uri(redirect_uri) {
        return Err(bad_page(
            "The app asked to send you back to an address it has not registered (redirect_uri \
             does not exactly match). Nothing was sent to it.",
        ));
    }
    let state = params.get("state").map(str::to_string);
    let mut req = AuthzRequest {
        client: client.clone(),
        redirect_uri: redirect_uri.to_string(),
        state,
        nonce: params.get("nonce").map(str::to_string),
        scopes: Vec::new(),
        resource: None,
        holder: None,
        code_challenge: String::new(),
        prompt: Prompt::default(),
        max_age: None,
        params: params.clone(),
    };
    match crate::oauth::authorize_request::check(&params, &client, &iss.clients) {
        Ok(checked) => {
            req.scopes = checked.scopes;
            req.resource = checked.resource;
            req.holder = checked.holder;
            req.code_challenge = checked.code_challenge;
            req.prompt = checked.prompt;
            req.max_age = checked.max_age;
        }
        Err(r) => return Err(req.error(iss, r.code, r.description)),
    }
    Ok(req)
}

/// `/upstream/start` serves the first provider, `/upstream/start/{id}` the others (the links
/// carry a single query parameter, `request`).
pub(crate) fn provider_path(index: usize, id: &str) -> String {
    if index == 0 {
        String::new()
    } else {
        format!("/{id}")
    }
}

/// The authorization request carried in a form's `request` field.
pub(crate) fn carried_request(form: &Params) -> Result<Params> {
    Params::parse(form.get("request").unwrap_or("").as_bytes())
}

/// Stores a new session for a person who has just authenticated (with a password or at an
/// upstream provider), keyed by the hash of a new cookie; returns that cookie and the session.
pub(crate) async fn start_session(
    iss: &Issuer,
    subject: String,
    claims: crate::store::Claims,
    source: String,
    now: i64,
) -> Result<(String, Session)> {
    let cookie = crate::util::random_token();
    let session = Session {
        id: crate::util::random_id(),
        subject,
        claims,
        source,
        auth_time: now,
        created_at: now,
        last_seen: now,
        expires_at: now + i64::try_from(iss.lifetimes.session).unwrap_or(43200),
    };
    iss.store
        .put_session(&SecretHash::of(&cookie), &session)
        .await?;
    Ok((cookie, session))
}

/// Where to go after a sign-in: back to the authorization request (without `prompt=login`, the
/// person has just signed in), or to the account page when there is none.
pub(crate) fn resume_target(mut request: Params) -> String {
    if let Some(p) = request.get("prompt").map(str::to_string) {
        let rest: Vec<&str> = p
            .split(' ')
            .filter(|v| *v != "login" && !v.is_empty())
            .collect();
        request.remove("prompt");
        if !rest.is_empty() {
            let mut pairs: Vec<(String, String)> = request
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            pairs.push(("prompt".into(), rest.join(" ")));
            request = Params::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
    }
    if request.get("client_id").is_some() {
        format!("/authorize?{}", request.to_query())
    } else {
        "/account".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

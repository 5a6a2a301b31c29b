//! `GET|POST /authorize`: the authorization endpoint. A valid request continues to the login
//! page, the consent page or the code ([`proceed`], which `/login` and `/consent` resume).
//!
//! The pending authorization request travels through the login and consent forms as its own
//! query string (hidden field `request`, [`carried_request`]) and is validated again from
//! scratch on every step ([`validate`]), so no server-side state is needed between steps and
//! several replicas can serve one flow.
//!
//! Order of checks (RFC 6749 §4.1.2.1): the client and the redirect URI first; problems with
//! them are shown to the person and never redirected. Everything after that
//! (`crate::oauth::authorize_request`) is sent back to the redirect URI with `state` and `iss`
//! (RFC 9207).

use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode, header};
use url::Url;

use super::federation::sign_in_links;
use crate::error::{Error, ErrorCode, Result};
use crate::http::pages;
use crate::http::response::redirect;
use crate::oauth::authorize_request::{AuthzRequest, Prompt, response_location};
use crate::params::{Params, RawForm};
use crate::state::{Issuer, Shared};
use crate::store::{AuthCode, Consent, SecretHash, Session};

/// `GET|POST /authorize`
pub(crate) async fn authorize(
    State(iss): State<Shared>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Result<Response> {
    let raw = raw.map_err(|_| malformed_page())?;
    let params = match Params::parse(&raw) {
        Ok(p) => p,
        Err(e) => return Err(malformed(&iss, &raw, e).await?),
    };
    let req = validate(&iss, params).await?;
    let session = iss.session(&headers).await?;
    proceed(&iss, &headers, req, session.map(|(_, s)| s), false).await
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
    match crate::oauth::authorize_request::check(&params, &client, iss.clients()) {
        Ok(checked) => {
            req.scopes = checked.scopes;
            req.resource = checked.resource;
            req.holder = checked.holder;
            req.code_challenge = checked.code_challenge;
            req.prompt = checked.prompt;
            req.max_age = checked.max_age;
        }
        Err(r) => return Err(req.error(iss.issuer(), r.code, r.description)),
    }
    Ok(req)
}

/// The authorization request carried in a form's `request` field.
pub(crate) fn carried_request(form: &Params) -> Result<Params> {
    Params::parse(form.get("request").unwrap_or("").as_bytes())
}

fn malformed_page() -> Error {
    Error::page(
        StatusCode::BAD_REQUEST,
        "This sign-in link is not valid",
        "The request is malformed (a parameter is repeated or too long, or there are too many), \
         and it does not say reliably which app and address it comes from. Nothing was sent to \
         the app.",
    )
}

/// RFC 6749 §4.1.2.1 for parameters that do not parse (repeated, too long, too many): when
/// `client_id` and `redirect_uri` each occur once and are valid, and `state` (if sent) occurs
/// once and can be returned exactly, the error goes to the client's redirect URI; otherwise the
/// person gets a page.
async fn malformed(iss: &Issuer, raw: &[u8], e: Error) -> Result<Error> {
    use crate::params::{first_repeated, single};
    let (Some(client_id), Some(redirect_uri)) =
        (single(raw, "client_id"), single(raw, "redirect_uri"))
    else {
        return Ok(malformed_page());
    };
    let Some(client) = iss.client(&client_id).await? else {
        return Ok(malformed_page());
    };
    if !client.has_redirect_uri(&redirect_uri) {
        return Ok(malformed_page());
    }
    let state = single(raw, "state");
    let state_sent = url::form_urlencoded::parse(raw)
        .take(2 * crate::params::MAX_PARAMS)
        .any(|(n, v)| n == "state" && !v.is_empty());
    if state_sent && state.is_none() {
        return Ok(malformed_page());
    }
    let (code, description) = if first_repeated(raw).as_deref() == Some("resource") {
        // RFC 8707 allows several; keyway issues tokens for one audience at a time.
        (
            ErrorCode::InvalidTarget,
            "only one resource per authorization request is supported".into(),
        )
    } else {
        match e {
            Error::OAuth { description, .. } => (ErrorCode::InvalidRequest, description),
            _ => (ErrorCode::InvalidRequest, "malformed request".into()),
        }
    };
    Ok(Error::Redirect {
        location: response_location(
            &redirect_uri,
            &[
                ("error", code.as_str()),
                ("error_description", &description),
            ],
            state.as_deref(),
            iss.issuer(),
        ),
        code,
        description,
    })
}

/// Continues a valid request: sign-in, access rules, consent, code.
pub(super) async fn proceed(
    iss: &Issuer,
    headers: &HeaderMap,
    req: AuthzRequest,
    session: Option<Session>,
    consent_given: bool,
) -> Result<Response> {
    let now = iss.clock().now();
    let session =
        session.filter(|s| !req.prompt.login && req.max_age.is_none_or(|m| now - s.auth_time <= m));
    let Some(session) = session else {
        if req.prompt.none {
            return Err(req.error(
                iss.issuer(),
                ErrorCode::LoginRequired,
                "the person is not signed in",
            ));
        }
        // OIDC `login_hint` prefills the email field (escaped by the template).
        let hint = req
            .params
            .get("login_hint")
            .filter(|h| h.len() <= 254)
            .unwrap_or("");
        return login_page(
            iss,
            headers,
            &req.params,
            Some(&req.client.name),
            None,
            hint,
        );
    };
    let email = session.claims.verified_email();
    let groups = &session.claims.groups;
    let allowed = req.client.access.may_sign_in(email, groups)
        && req
            .holder
            .as_ref()
            .is_none_or(|o| o.access.may_sign_in(email, groups));
    if !allowed {
        return access_denied(iss, &req, &session);
    }
    // Consent is remembered per resource: one given for another resource does not count.
    let remembered = iss
        .store()
        .get_consent(&session.subject, &req.client.id, req.resource.as_deref())
        .await?;
    // A client asking for a resource it does not hold is asked about, whatever its trust.
    let foreign = req.holder.as_ref().is_some_and(|h| h.id != req.client.id);
    let needs_consent = !consent_given
        && (req.prompt.consent
            || ((req.client.third_party || foreign)
                && !remembered
                    .as_ref()
                    .is_some_and(|c| crate::scope::covers(&c.scopes, &req.scopes))));
    if needs_consent {
        if req.prompt.none {
            return Err(req.error(
                iss.issuer(),
                ErrorCode::ConsentRequired,
                "consent is required",
            ));
        }
        return consent_page(iss, headers, &req, &session);
    }
    grant_code(iss, &req, &session, remembered, now).await
}

/// The person is signed in but the app's access rules (or the resource holder's) refuse them:
/// `access_denied` to the client with `prompt=none`, otherwise a page with a link back to it.
fn access_denied(iss: &Issuer, req: &AuthzRequest, session: &Session) -> Result<Response> {
    let err = req.error(
        iss.issuer(),
        ErrorCode::AccessDenied,
        "the person may not use this app",
    );
    if req.prompt.none {
        return Err(err);
    }
    let Error::Redirect { location, .. } = err else {
        return Err(err);
    };
    let message = format!(
        "You are signed in as {}, and this account is not allowed to use {}. If you need \
         access, ask the people who run the app.",
        session.claims.verified_email().unwrap_or(&session.subject),
        req.client.name
    );
    pages::render(
        StatusCode::FORBIDDEN,
        &pages::Message {
            title: "You don't have access to this app",
            message: &message,
            link: Some((location, "Back to the app")),
            form: None,
        },
    )
}

/// Records the grant (the account page lists it; consent is remembered for third parties),
/// stores a new authorization code and redirects to the client with it.
async fn grant_code(
    iss: &Issuer,
    req: &AuthzRequest,
    session: &Session,
    remembered: Option<Consent>,
    now: i64,
) -> Result<Response> {
    let mut scopes = remembered.map(|c| c.scopes).unwrap_or_default();
    for s in &req.scopes {
        if !scopes.contains(s) {
            scopes.push(s.clone());
        }
    }
    iss.store()
        .put_consent(&Consent {
            subject: session.subject.clone(),
            client_id: req.client.id.clone(),
            resource: req.resource.clone(),
            scopes,
            granted_at: now,
        })
        .await?;
    let code = crate::random::random_token();
    let record = AuthCode {
        client_id: req.client.id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        subject: session.subject.clone(),
        scopes: req.scopes.clone(),
        resources: req.resource.clone().into_iter().collect(),
        nonce: req.nonce.clone(),
        code_challenge: req.code_challenge.clone(),
        auth_time: session.auth_time,
        session_id: Some(session.id.clone()),
        claims: session.claims.clone(),
        created_at: now,
        expires_at: now + i64::try_from(iss.lifetimes().code).unwrap_or(60),
    };
    iss.store()
        .put_code(&SecretHash::of(&code), &record)
        .await?;
    Ok(redirect(&response_location(
        &req.redirect_uri,
        &[("code", &code)],
        req.state.as_deref(),
        iss.issuer(),
    )))
}

fn with_cookie(mut res: Response, cookie: Option<http::HeaderValue>) -> Response {
    if let Some(c) = cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

pub(super) fn login_page(
    iss: &Issuer,
    headers: &HeaderMap,
    request: &Params,
    app_name: Option<&str>,
    error: Option<&str>,
    email: &str,
) -> Result<Response> {
    let (csrf, set) = iss.csrf(headers);
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let query = request.to_query();
    let upstreams = sign_in_links(iss.upstreams(), Some(&query));
    let res = pages::render(
        status,
        &pages::Login {
            app_name,
            error,
            csrf: &csrf,
            request: &query,
            email,
            upstreams,
            static_users: !iss.users().is_empty(),
        },
    )?;
    Ok(with_cookie(res, set))
}

fn consent_page(
    iss: &Issuer,
    headers: &HeaderMap,
    req: &AuthzRequest,
    session: &Session,
) -> Result<Response> {
    let (csrf, set) = iss.csrf(headers);
    let who = session
        .claims
        .email
        .clone()
        .unwrap_or_else(|| session.subject.clone());
    let res = pages::render(
        StatusCode::OK,
        &pages::Consent {
            app_name: &req.client.name,
            logo_uri: req.client.logo_uri.as_deref(),
            description: req.client.description.as_deref(),
            who: &who,
            scopes: req
                .scopes
                .iter()
                .map(|s| (s.clone(), crate::scope::describe(s)))
                .collect(),
            resource: req.resource.as_deref(),
            holder: req
                .holder
                .as_ref()
                .filter(|h| h.id != req.client.id)
                .map(|h| h.name.as_str()),
            unverified: req.client.source == crate::directory::clients::Source::Dynamic,
            destination: &destination(&req.redirect_uri),
            csrf: &csrf,
            request: &req.params.to_query(),
        },
    )?;
    Ok(with_cookie(res, set))
}

/// Where the code goes, as a person reads it: the redirect URI's host (and port), and for a
/// loopback address that it is a program on their own device.
fn destination(redirect_uri: &str) -> String {
    let Ok(url) = Url::parse(redirect_uri) else {
        return redirect_uri.to_string();
    };
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => redirect_uri.to_string(),
    };
    if crate::directory::clients::is_loopback_host(&url) {
        format!("{host} (a program on this device)")
    } else {
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_names_the_host() {
        assert_eq!(destination("https://agent.example/cb?x=1"), "agent.example");
        assert_eq!(
            destination("https://agent.example:8443/cb"),
            "agent.example:8443"
        );
        assert_eq!(
            destination("http://127.0.0.1:9999/cb"),
            "127.0.0.1:9999 (a program on this device)"
        );
    }
}

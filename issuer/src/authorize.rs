//! The authorization endpoint (`/authorize`), the login form (`/login`) and the consent form
//! (`/consent`).
//!
//! The pending authorization request travels through the login and consent forms as its own
//! query string (hidden field `request`) and is validated again from scratch on every step, so no
//! server-side state is needed between steps and several replicas can serve one flow.
//!
//! Order of checks (RFC 6749 §4.1.2.1): the client and the redirect URI first; problems with
//! them are shown to the person and never redirected. Everything after that is sent back to the
//! redirect URI with `state` and `iss` (RFC 9207).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use url::Url;

use crate::clients::Client;
use crate::error::{Error, ErrorCode, Result, redirect};
use crate::pages;
use crate::params::{Form, Params, RawForm};
use crate::server::{Issuer, Shared, store_err};
use crate::store::{AuthCode, Consent, SecretHash, Session};
use crate::throttle::{self, ClientAddr};

/// `prompt` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prompt {
    /// `none`
    pub none: bool,
    /// `login`
    pub login: bool,
    /// `consent`
    pub consent: bool,
}

/// A validated authorization request.
#[derive(Clone, Debug)]
pub struct AuthzRequest {
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
    fn error(&self, iss: &Issuer, code: ErrorCode, description: &'static str) -> Error {
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
pub fn response_location(
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

fn is_pkce_challenge(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Validates an authorization request.
pub async fn validate(iss: &Issuer, params: Params) -> Result<AuthzRequest> {
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
    use ErrorCode::*;
    if params.get("request").is_some() || params.get("request_uri").is_some() {
        return Err(req.error(iss, InvalidRequest, "request objects are not supported"));
    }
    match params.get("response_type") {
        None => return Err(req.error(iss, InvalidRequest, "missing parameter response_type")),
        Some("code") => {}
        Some(_) => {
            return Err(req.error(
                iss,
                UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
    }
    if params.get("response_mode").is_some_and(|m| m != "query") {
        return Err(req.error(iss, InvalidRequest, "only response_mode=query is supported"));
    }
    if !client.authorization_code {
        return Err(req.error(
            iss,
            UnauthorizedClient,
            "the client may not use the authorization code grant",
        ));
    }
    match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (None, _) => {
            return Err(req.error(
                iss,
                InvalidRequest,
                "PKCE is required: missing code_challenge",
            ));
        }
        (Some(_), None) | (Some(_), Some("plain")) => {
            return Err(req.error(
                iss,
                InvalidRequest,
                "PKCE method S256 is required (code_challenge_method=S256)",
            ));
        }
        (Some(_), Some(m)) if m != "S256" => {
            return Err(req.error(iss, InvalidRequest, "unsupported code_challenge_method"));
        }
        (Some(c), Some(_)) => {
            if !is_pkce_challenge(c) {
                return Err(req.error(
                    iss,
                    InvalidRequest,
                    "code_challenge must be 43 base64url characters (S256)",
                ));
            }
            req.code_challenge = c.to_string();
        }
    }
    req.scopes = match params.get("scope") {
        None => client.scopes.clone(),
        Some(s) => match crate::scope::parse(s) {
            Some(v) if !v.is_empty() => v,
            _ => return Err(req.error(iss, InvalidScope, "malformed scope")),
        },
    };
    if req.scopes.iter().any(|s| !client.scopes.contains(s)) {
        return Err(req.error(
            iss,
            InvalidScope,
            "the client may not request one of these scopes",
        ));
    }
    if let Some(r) = params.get("resource") {
        if !is_resource_uri(r) {
            return Err(req.error(iss, InvalidTarget, "unknown resource"));
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
            && let Some(holder) = iss.resource_owner(r)
            && holder.id != client.id
        {
            req.scopes.retain(|s| holder.scopes.contains(s));
            if req.scopes.is_empty() {
                return Err(req.error(
                    iss,
                    InvalidScope,
                    "none of the client's scopes is one the app holding this resource registers",
                ));
            }
        }
        match iss.delegation(&client, r, &req.scopes) {
            Ok(holder) => req.holder = Some(holder),
            Err((code, description)) => return Err(req.error(iss, code, description)),
        }
    }
    if let Some(p) = params.get("prompt") {
        for v in p.split(' ').filter(|v| !v.is_empty()) {
            match v {
                "none" => req.prompt.none = true,
                "login" => req.prompt.login = true,
                "consent" => req.prompt.consent = true,
                "select_account" => {}
                _ => return Err(req.error(iss, InvalidRequest, "unsupported prompt value")),
            }
        }
        if req.prompt.none && (req.prompt.login || req.prompt.consent) {
            return Err(req.error(
                iss,
                InvalidRequest,
                "prompt=none cannot be combined with other values",
            ));
        }
    }
    if let Some(m) = params.get("max_age") {
        match m.parse::<u32>() {
            Ok(v) => req.max_age = Some(i64::from(v)),
            Err(_) => {
                return Err(req.error(iss, InvalidRequest, "max_age must be a number of seconds"));
            }
        }
    }
    Ok(req)
}

/// An absolute URI without fragment (RFC 8707 §2).
fn is_resource_uri(r: &str) -> bool {
    Url::parse(r).is_ok_and(|u| u.fragment().is_none() && u.has_host())
}

/// `GET|POST /authorize`
pub async fn authorize(
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
            &iss.issuer,
        ),
        code,
        description,
    })
}

/// Continues a valid request: sign-in, access rules, consent, code.
async fn proceed(
    iss: &Issuer,
    headers: &HeaderMap,
    req: AuthzRequest,
    session: Option<Session>,
    consent_given: bool,
) -> Result<Response> {
    let now = iss.clock.now();
    let session =
        session.filter(|s| !req.prompt.login && req.max_age.is_none_or(|m| now - s.auth_time <= m));
    let Some(session) = session else {
        if req.prompt.none {
            return Err(req.error(iss, ErrorCode::LoginRequired, "the person is not signed in"));
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
        let err = req.error(
            iss,
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
            email.unwrap_or(&session.subject),
            req.client.name
        );
        return pages::render(
            StatusCode::FORBIDDEN,
            &pages::Message {
                title: "You don't have access to this app",
                message: &message,
                link: Some((location, "Back to the app")),
                form: None,
            },
        );
    }
    // Consent is remembered per resource: one given for another resource does not count.
    let remembered = iss
        .store
        .get_consent(&session.subject, &req.client.id, req.resource.as_deref())
        .await
        .map_err(store_err)?;
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
            return Err(req.error(iss, ErrorCode::ConsentRequired, "consent is required"));
        }
        return consent_page(iss, headers, &req, &session);
    }
    // Record the grant (the account page lists it; consent remembered for third parties).
    let mut scopes = remembered.map(|c| c.scopes).unwrap_or_default();
    for s in &req.scopes {
        if !scopes.contains(s) {
            scopes.push(s.clone());
        }
    }
    iss.store
        .put_consent(&Consent {
            subject: session.subject.clone(),
            client_id: req.client.id.clone(),
            resource: req.resource.clone(),
            scopes,
            granted_at: now,
        })
        .await
        .map_err(store_err)?;
    let code = crate::util::random_token();
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
        expires_at: now + i64::try_from(iss.lifetimes.code).unwrap_or(60),
    };
    iss.store
        .put_code(&SecretHash::of(&code), &record)
        .await
        .map_err(store_err)?;
    Ok(redirect(&response_location(
        &req.redirect_uri,
        &[("code", &code)],
        req.state.as_deref(),
        &iss.issuer,
    )))
}

fn with_cookie(mut res: Response, cookie: Option<http::HeaderValue>) -> Response {
    if let Some(c) = cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

fn login_page(
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
    let upstreams = iss
        .upstreams
        .iter()
        .enumerate()
        .map(|(i, u)| {
            (
                u.config.name.clone(),
                format!(
                    "/upstream/start{}?{}",
                    provider_path(i, &u.config.id),
                    url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("request", &query)
                        .finish()
                ),
            )
        })
        .collect();
    let res = pages::render(
        status,
        &pages::Login {
            app_name,
            error,
            csrf: &csrf,
            request: &query,
            email,
            upstreams,
            static_users: !iss.users.is_empty(),
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
            unverified: req.client.source == crate::clients::Source::Dynamic,
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
    if crate::clients::is_loopback_host(&url) {
        format!("{host} (a program on this device)")
    } else {
        host
    }
}

/// `/upstream/start` serves the first provider, `/upstream/start/{id}` the others (the links
/// carry a single query parameter, `request`).
pub fn provider_path(index: usize, id: &str) -> String {
    if index == 0 {
        String::new()
    } else {
        format!("/{id}")
    }
}

/// The authorization request carried in a form's `request` field.
fn carried_request(form: &Params) -> Result<Params> {
    Params::parse(form.get("request").unwrap_or("").as_bytes())
}

/// `POST /login`: email and password of a static user.
pub async fn login(
    State(iss): State<Shared>,
    addr: ClientAddr,
    headers: HeaderMap,
    Form(form): Form,
) -> Result<Response> {
    iss.check_csrf(&headers, form.get("csrf"))?;
    let request = carried_request(&form)?;
    let client = match request.get("client_id") {
        Some(id) => iss.client(id).await?,
        None => None,
    };
    let app_name = client.as_ref().map(|c| c.name.as_str());
    let email = form.get("email").unwrap_or("").to_string();
    let password = form.get("password").unwrap_or("").to_string();
    if email.len() > 254 || password.len() > 1024 || email.is_empty() || password.is_empty() {
        return login_page(
            &iss,
            &headers,
            &request,
            app_name,
            Some("Enter your email address and password."),
            "",
        );
    }
    let now = iss.clock.now();
    let device = iss.device(&headers);
    let admitted = match throttle::attempt(iss.store.as_ref(), &email, addr, device, now)
        .await
        .map_err(store_err)?
    {
        Ok(admitted) => admitted,
        Err(refused) => {
            iss.metrics.login("static", "throttled");
            tracing::info!(?refused, "sign-in throttled");
            let res = login_page(
                &iss,
                &headers,
                &request,
                app_name,
                Some("Too many failed attempts. Wait a few minutes and try again."),
                "",
            )?;
            let (mut parts, body) = res.into_parts();
            parts.status = StatusCode::TOO_MANY_REQUESTS;
            return Ok(Response::from_parts(parts, body));
        }
    };
    if let Some(delay) = admitted.delay {
        tracing::info!("sign-in slowed down: the account's shared budget is used up");
        tokio::time::sleep(delay).await;
    }
    let users = iss.users.clone();
    let email2 = email.clone();
    let user = tokio::task::spawn_blocking(move || users.authenticate(&email2, &password))
        .await
        .map_err(|_| Error::Internal("password check failed".into()))?;
    let Some(user) = user else {
        iss.metrics.login("static", "failed");
        let shown = if email.contains(['<', '>', '"']) {
            ""
        } else {
            &email
        };
        return login_page(
            &iss,
            &headers,
            &request,
            app_name,
            Some("The email address or password is not correct."),
            shown,
        );
    };
    iss.metrics.login("static", "ok");
    throttle::succeeded(iss.store.as_ref(), &email, addr, &admitted)
        .await
        .map_err(store_err)?;
    // This browser becomes (stays) a known device for the account.
    let device = device.map_or_else(crate::util::random_token, str::to_string);
    throttle::remember(iss.store.as_ref(), &device, &email, now)
        .await
        .map_err(store_err)?;
    let (cookie, session) = start_session(
        &iss,
        user.subject().to_string(),
        user.claims(),
        "static".into(),
        now,
    )
    .await?;
    tracing::info!(session = %session.id, "signed in");
    let target = resume_target(request);
    let mut res = redirect(&target);
    res.headers_mut()
        .append(header::SET_COOKIE, iss.session_cookie(&cookie));
    res.headers_mut()
        .append(header::SET_COOKIE, iss.device_cookie(&device));
    Ok(res)
}

/// Stores a new session for a person who has just authenticated (with a password or at an
/// upstream provider), keyed by the hash of a new cookie; returns that cookie and the session.
pub async fn start_session(
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
        .await
        .map_err(store_err)?;
    Ok((cookie, session))
}

/// Where to go after a sign-in: back to the authorization request (without `prompt=login`, the
/// person has just signed in), or to the account page when there is none.
pub fn resume_target(mut request: Params) -> String {
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

/// `POST /consent`: the person allows or denies.
pub async fn consent(
    State(iss): State<Shared>,
    headers: HeaderMap,
    Form(form): Form,
) -> Result<Response> {
    iss.check_csrf(&headers, form.get("csrf"))?;
    let req = validate(&iss, carried_request(&form)?).await?;
    let Some((_, session)) = iss.session(&headers).await? else {
        // Signed out meanwhile: start again (shows the login page).
        return Ok(redirect(&format!("/authorize?{}", req.params.to_query())));
    };
    match form.get("decision") {
        Some("allow") => {}
        Some("deny") => {
            return Err(req.error(&iss, ErrorCode::AccessDenied, "the person denied access"));
        }
        _ => return Err(Error::invalid_request("decision must be allow or deny")),
    }
    proceed(&iss, &headers, req, Some(session), true)
        .await
        .map(IntoResponse::into_response)
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

    #[test]
    fn pkce_challenge_shape() {
        assert!(is_pkce_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!is_pkce_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"
        ));
        assert!(!is_pkce_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"
        ));
    }
}

//! The account page (grants and their revocation), sign-out, and RP-initiated logout
//! (`end_session_endpoint`, OpenID Connect RP-Initiated Logout 1.0).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};

use crate::error::{Error, Result};
use crate::http::pages;
use crate::http::response::redirect;
use crate::keys::Typ;
use crate::params::Form;
use crate::state::{Issuer, Shared};

/// `GET /account`
pub(crate) async fn account(State(iss): State<Shared>, headers: HeaderMap) -> Result<Response> {
    let Some((_, session)) = iss.session(&headers).await? else {
        return login_for_account(&iss, &headers);
    };
    let consents = iss.store().list_consents(&session.subject).await?;
    // One grant per client: its consents for each resource together (ordered by client).
    let mut grants: Vec<pages::Grant> = Vec::with_capacity(consents.len());
    let mut scopes: Vec<String> = Vec::new();
    for c in consents {
        if grants.last().is_some_and(|g| g.client_id == c.client_id) {
            for s in c.scopes {
                if !scopes.contains(&s) {
                    scopes.push(s);
                }
            }
            if let Some(g) = grants.last_mut() {
                g.scopes = scopes.join(" ");
                g.since = g.since.clone().min(pages::date(c.granted_at));
            }
            continue;
        }
        let name = match iss.client(&c.client_id).await? {
            Some(client) => client.name.clone(),
            None => c.client_id.clone(),
        };
        scopes = c.scopes;
        grants.push(pages::Grant {
            client_id: c.client_id,
            name,
            scopes: scopes.join(" "),
            since: pages::date(c.granted_at),
        });
    }
    let (csrf, set) = iss.csrf(&headers);
    let who = session
        .claims
        .email
        .clone()
        .unwrap_or_else(|| session.subject.clone());
    let mut res = pages::render(
        StatusCode::OK,
        &pages::Account {
            who: &who,
            groups: session.claims.groups.join(", "),
            grants,
            csrf: &csrf,
        },
    )?;
    if let Some(c) = set {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(res)
}

fn login_for_account(iss: &Issuer, headers: &HeaderMap) -> Result<Response> {
    let (csrf, set) = iss.csrf(headers);
    let mut res = pages::render(
        StatusCode::OK,
        &pages::Login {
            app_name: None,
            error: None,
            csrf: &csrf,
            request: "",
            email: "",
            upstreams: super::federation::sign_in_links(iss.upstreams(), None),
            static_users: !iss.users().is_empty(),
        },
    )?;
    if let Some(c) = set {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(res)
}

/// `POST /account/revoke`: withdraws an app's access (its refresh tokens die with it).
pub(crate) async fn revoke_grant(
    State(iss): State<Shared>,
    headers: HeaderMap,
    Form(form): Form,
) -> Result<Response> {
    iss.check_csrf(&headers, form.get("csrf"))?;
    let Some((_, session)) = iss.session(&headers).await? else {
        return Ok(redirect("/account"));
    };
    let client_id = form.require("client_id")?;
    iss.store()
        .delete_consent(&session.subject, client_id)
        .await?;
    // Families of a grant recorded before its consent row (or without one) go too.
    iss.store()
        .revoke_refresh_for(&session.subject, client_id)
        .await?;
    Ok(redirect("/account"))
}

/// `POST /logout`: signs out of the issuer (CSRF-protected).
pub(crate) async fn logout(
    State(iss): State<Shared>,
    headers: HeaderMap,
    Form(form): Form,
) -> Result<Response> {
    iss.check_csrf(&headers, form.get("csrf"))?;
    if let Some((hash, _)) = iss.session(&headers).await? {
        iss.store().delete_session(&hash).await?;
    }
    let post = form.get("post_logout_redirect_uri").map(str::to_string);
    let client_id = form.get("client_id").map(str::to_string);
    let state = form.get("state").map(str::to_string);
    let target = match (post, client_id) {
        (Some(uri), Some(id)) => match iss.client(&id).await? {
            Some(c) if c.post_logout_redirect_uris.contains(&uri) => {
                Some(with_state(&uri, state.as_deref()))
            }
            _ => None,
        },
        _ => None,
    };
    let mut res = match target {
        Some(t) => redirect(&t),
        None => signed_out_page()?,
    };
    res.headers_mut()
        .append(header::SET_COOKIE, iss.clear_session_cookie());
    Ok(res)
}

fn signed_out_page() -> Result<Response> {
    pages::render(
        StatusCode::OK,
        &pages::Message {
            title: "You are signed out",
            message: "You have signed out of keyway. You can close this window.",
            link: None,
            form: None,
        },
    )
}

fn with_state(uri: &str, state: Option<&str>) -> String {
    match (url::Url::parse(uri), state) {
        (Ok(mut u), Some(s)) => {
            u.query_pairs_mut().append_pair("state", s);
            u.to_string()
        }
        _ => uri.to_string(),
    }
}

/// Whether an ID token hint (signature and issuer verified) proves the session it comes with:
/// not expired at `now`, and issued in that very session to its person.
fn hint_proves(
    hint: &serde_json::Map<String, serde_json::Value>,
    session: &crate::store::Session,
    now: i64,
) -> bool {
    let claim = |name: &str| hint.get(name).and_then(|v| v.as_str());
    hint.get("exp")
        .and_then(serde_json::Value::as_i64)
        .is_some_and(|exp| exp > now)
        && claim("sub") == Some(session.subject.as_str())
        && claim("sid") == Some(session.id.as_str())
}

/// `GET|POST /end_session`: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2).
///
/// The session ends at once only when the request proves it is the person's own: an unexpired
/// `id_token_hint` (ours) for the session of this browser's cookie (same `sub` and `sid`). The
/// person is then sent to the exact `post_logout_redirect_uri` (with `state`). Otherwise a GET or
/// POST here ends nothing: with a session in this browser the person is asked to confirm (a form
/// to `/logout` with the CSRF token, so that neither a link nor another site's form signs anyone
/// out), and without one there is nothing to end. An expired hint still names the client.
pub(crate) async fn end_session(
    State(iss): State<Shared>,
    headers: HeaderMap,
    Form(params): Form,
) -> Result<Response> {
    let hint = match params.get("id_token_hint") {
        Some(t) => Some(
            iss.keys()
                .ring()
                .verify(t, Typ::Jwt, iss.issuer(), 0)
                .ok_or_else(|| Error::invalid_request("id_token_hint is not a valid ID token"))?,
        ),
        None => None,
    };
    let hinted_client = hint
        .as_ref()
        .and_then(|c| c.get("aud"))
        .and_then(|a| a.as_str())
        .map(str::to_string);
    let client_id = match (params.get("client_id"), hinted_client) {
        (Some(a), Some(b)) if a != b => {
            return Err(Error::invalid_request(
                "client_id does not match id_token_hint",
            ));
        }
        (Some(a), _) => Some(a.to_string()),
        (None, b) => b,
    };
    let post = params.get("post_logout_redirect_uri");
    let client = match &client_id {
        Some(id) => iss.client(id).await?,
        None => None,
    };
    if let Some(uri) = post {
        let ok = client
            .as_ref()
            .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|u| u == uri));
        if !ok {
            return Err(Error::page(
                StatusCode::BAD_REQUEST,
                "This sign-out link is not valid",
                "The app asked to send you to an address it has not registered \
                 (post_logout_redirect_uri). You have not been signed out.",
            ));
        }
    }
    let state = params.get("state");
    let session = iss.session(&headers).await?;
    let now = iss.clock().now();
    if let (Some(h), Some((hash, s))) = (&hint, &session)
        && hint_proves(h, s, now)
    {
        iss.store().delete_session(hash).await?;
        let mut res = match post {
            Some(uri) => redirect(&with_state(uri, state)),
            None => signed_out_page()?,
        };
        res.headers_mut()
            .append(header::SET_COOKIE, iss.clear_session_cookie());
        return Ok(res);
    }
    if session.is_none() {
        return Ok(match post {
            Some(uri) => redirect(&with_state(uri, state)),
            None => signed_out_page()?,
        });
    }
    let (csrf, set) = iss.csrf(&headers);
    let mut hidden = Vec::new();
    if let (Some(uri), Some(id)) = (post, &client_id) {
        hidden.push(("post_logout_redirect_uri", uri.to_string()));
        hidden.push(("client_id", id.clone()));
        if let Some(s) = state {
            hidden.push(("state", s.to_string()));
        }
    }
    let mut res = pages::render(
        StatusCode::OK,
        &pages::Message {
            title: "Sign out?",
            message: "Do you want to sign out of keyway?",
            link: None,
            form: Some(pages::MessageForm {
                action: "/logout",
                csrf: &csrf,
                hidden,
                button: "Sign out",
            }),
        },
    )?
    .into_response();
    if let Some(c) = set {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(res)
}

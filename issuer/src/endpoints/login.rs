//! `POST /login`: email and password of a static user, then back to the authorization request.

use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode, header};

use super::authorize::{carried_request, login_page};
use crate::directory::throttle::{self, ClientAddr};
use crate::error::{Error, Result};
use crate::http::response::redirect;
use crate::http::session::{resume_target, start_session};
use crate::params::Form;
use crate::state::Shared;

/// `POST /login`: email and password of a static user.
pub(crate) async fn login(
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
    let now = iss.clock().now();
    let device = iss.device(&headers);
    let admitted = match throttle::attempt(iss.store().as_ref(), &email, addr, device, now).await? {
        Ok(admitted) => admitted,
        Err(refused) => {
            iss.metrics().login("static", "throttled");
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
    let users = iss.users().clone();
    let email2 = email.clone();
    let user = tokio::task::spawn_blocking(move || users.authenticate(&email2, &password))
        .await
        .map_err(|_| Error::Internal("password check failed".into()))?;
    let Some(user) = user else {
        iss.metrics().login("static", "failed");
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
    iss.metrics().login("static", "ok");
    throttle::succeeded(iss.store().as_ref(), &email, addr, &admitted).await?;
    // This browser becomes (stays) a known device for the account.
    let device = device.map_or_else(crate::random::random_token, str::to_string);
    throttle::remember(iss.store().as_ref(), &device, &email, now).await?;
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

//! Signing out: where the request comes from, the confirmation page for a request of unknown
//! origin, revoking the refresh token, and the issuer's RP-initiated logout.

use http::{HeaderValue, header};

use crate::app::App;
use crate::clock::now;
use crate::metrics::Metrics;
use crate::path::is_safe_return_path;
use crate::session::{Purpose, RequestCookies, Session, SignOutHint, ct_eq};
use oidc::Provider;

use super::{Context, Redirect, redirect, sign_out_path};

/// Where a sign-out request comes from, by Fetch metadata (`Sec-Fetch-Site`) and `Origin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignOutOrigin {
    /// The proxy's own origin (a form or link on the tool's pages), or typed by the person.
    Own,
    /// Another origin, or nothing says (a GET from an old browser or a non-browser client).
    Unknown,
    /// Another origin says so.
    Foreign,
}

/// Classifies a sign-out request. A POST counts as the proxy's own when `Sec-Fetch-Site` is
/// `same-origin`, or, without Fetch metadata, when `Origin` is the proxy's origin. A GET also
/// when `Sec-Fetch-Site` is `none` (typed, bookmarked); a GET without Fetch metadata is
/// `Unknown` (`Origin` is not sent on same-origin GET navigations), and so are a HEAD and a
/// browser's prefetch (`Sec-Purpose`, `Purpose`), which must not sign anyone out.
pub(crate) fn sign_out_origin(
    method: &http::Method,
    headers: &http::HeaderMap,
    own_origin: &str,
) -> SignOutOrigin {
    let origin = headers.get(header::ORIGIN).map(HeaderValue::as_bytes);
    if origin.is_some_and(|o| o != own_origin.as_bytes()) {
        return SignOutOrigin::Foreign;
    }
    if method == http::Method::HEAD
        || headers.contains_key("sec-purpose")
        || headers.contains_key("purpose")
    {
        return SignOutOrigin::Unknown;
    }
    let get = method == http::Method::GET;
    match headers.get("sec-fetch-site").map(HeaderValue::as_bytes) {
        Some(b"same-origin") => SignOutOrigin::Own,
        Some(b"none") if get => SignOutOrigin::Own,
        Some(_) => SignOutOrigin::Foreign,
        None if !get && origin.is_some() => SignOutOrigin::Own,
        None => SignOutOrigin::Unknown,
    }
}

/// The same-origin `rd` path of a sign-out request, else `/`.
fn sign_out_return(query: Option<&str>) -> String {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "rd")
        .map(|(_, v)| v.into_owned())
        .filter(|v| is_safe_return_path(v))
        .unwrap_or_else(|| "/".into())
}

/// The page (HTML) a sign-out GET of unknown or foreign origin gets: a button that POSTs the
/// sign-out from the proxy's origin, so that no other site can sign a person out (and revoke their
/// tokens) with a link or an image.
pub(crate) fn sign_out_confirmation(prefix: &str, query: Option<&str>) -> String {
    let rd: String =
        url::form_urlencoded::byte_serialize(sign_out_return(query).as_bytes()).collect();
    let action = html_escape(&format!("{prefix}/sign_out?rd={rd}"));
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign out</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head><body>\
         <form method=\"post\" action=\"{action}\"><p>Sign out of this app?</p>\
         <button type=\"submit\">Sign out</button></form></body></html>"
    )
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Signs out (the caller has checked that the request comes from the proxy's origin): revokes
/// the session's refresh token at the issuer's RFC 7009 `revocation_endpoint` when it has one
/// (a failure is logged and does not stop the sign-out), clears the session, sign-out and login
/// cookies, and continues to the issuer's RP-initiated logout with the session's ID token as
/// `id_token_hint` (so that the issuer ends exactly that session without asking) and
/// `client_id`, or to a same-origin `rd` path when the issuer has none.
pub(crate) async fn sign_out(
    ctx: Context<'_>,
    app: &App,
    provider: Option<&Provider>,
    query: Option<&str>,
    cookies: &RequestCookies<'_>,
) -> Redirect {
    let t = now();
    let session: Option<Session> = cookies
        .session
        .as_deref()
        .and_then(|sealed| app.open(Purpose::Session, sealed, t))
        .map(|(s, _)| s);
    // The hint only with the session it was kept for.
    let hint = session
        .as_ref()
        .zip(cookies.signout)
        .and_then(|(s, sealed)| {
            app.open::<SignOutHint>(Purpose::SignOut, sealed, t)
                .map(|(h, _)| h)
                .filter(|h| ct_eq(h.sid.as_bytes(), s.sid.as_bytes()))
        })
        .map(|h| h.id_token);
    if let (Some(session), Some(provider)) = (&session, provider) {
        ctx.refresher.forget(&session.sid);
        if let Some(rt) = session.rt.as_deref() {
            let r = ctx
                .issuer
                .revoke_refresh_token(
                    &provider.metadata,
                    &app.cfg.client_id,
                    app.cfg.client_secret.as_deref(),
                    rt,
                )
                .await;
            match r {
                Ok(true) => Metrics::result(&ctx.metrics.token_revocations, true),
                Ok(false) => {}
                Err(e) => {
                    // The error names the endpoint and status, never the token.
                    tracing::warn!(error = %e, "refresh token revocation failed");
                    Metrics::result(&ctx.metrics.token_revocations, false);
                }
            }
        }
    }
    let rd = sign_out_return(query);
    let target = provider
        .and_then(|p| p.metadata.end_session_endpoint.as_deref())
        .and_then(|e| url::Url::parse(e).ok())
        .map(|mut u| {
            {
                let mut q = u.query_pairs_mut();
                if let Some(id_token) = &hint {
                    q.append_pair("id_token_hint", id_token);
                }
                q.append_pair("client_id", &app.cfg.client_id);
                if let Some(post) = &ctx.settings.post_logout_redirect_url {
                    q.append_pair("post_logout_redirect_uri", post);
                }
            }
            u.to_string()
        })
        .unwrap_or(rd);
    let mut clear = app.names.clear_session(&cookies.presence);
    if cookies.signout.is_some() {
        clear.push(
            app.names
                .signout_cookie("", 0, &sign_out_path(ctx.settings)),
        );
    }
    clear.extend(
        cookies
            .logins
            .iter()
            .map(|(n, _)| app.names.clear_cookie(n)),
    );
    redirect(&target, clear)
}

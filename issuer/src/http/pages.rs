//! Server-rendered pages (askama templates in `issuer/templates/`) and their security headers.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::error::{Error, PageError};

/// Content-Security-Policy of every page: nothing but our stylesheet and https images (logos);
/// no framing (clickjacking on the consent page), no scripts at all.
pub(crate) const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' https: data:; \
                       frame-ancestors 'none'; base-uri 'none'";

/// Adds the page security headers.
pub(crate) fn secure_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Turns an [`Html`] page with a status into a response with the issuer's security headers.
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut res = (status, Html(body)).into_response();
    secure_headers(res.headers_mut());
    res
}

/// Renders a template into a response with the security headers.
pub(crate) fn render(status: StatusCode, t: &impl Template) -> Result<Response, Error> {
    let body = t
        .render()
        .map_err(|e| Error::Internal(format!("template: {e}").into()))?;
    Ok(html(status, body))
}

/// The login page.
#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct Login<'a> {
    /// App the person signs in to.
    pub app_name: Option<&'a str>,
    /// Error to show.
    pub error: Option<&'a str>,
    /// CSRF token.
    pub csrf: &'a str,
    /// The authorization request (query string) to resume.
    pub request: &'a str,
    /// Email to prefill.
    pub email: &'a str,
    /// Upstream providers: (button text, start URL).
    pub upstreams: Vec<(String, String)>,
    /// Whether the email/password form is shown.
    pub static_users: bool,
}

/// The consent page.
#[derive(Template)]
#[template(path = "consent.html")]
pub(crate) struct Consent<'a> {
    /// App name.
    pub app_name: &'a str,
    /// Logo (https).
    pub logo_uri: Option<&'a str>,
    /// Description.
    pub description: Option<&'a str>,
    /// Who is signed in.
    pub who: &'a str,
    /// (scope, words).
    pub scopes: Vec<(String, String)>,
    /// The resource the token is for.
    pub resource: Option<&'a str>,
    /// The name of the app holding `resource`, when it is not the client itself.
    pub holder: Option<&'a str>,
    /// The client registered itself (dynamic client registration): nobody vouches for its name.
    pub unverified: bool,
    /// Where the code goes (`crate::endpoints::authorize`: the redirect URI's host).
    pub destination: &'a str,
    /// CSRF token.
    pub csrf: &'a str,
    /// The authorization request (query string).
    pub request: &'a str,
}

/// A form on a message page.
pub(crate) struct MessageForm<'a> {
    /// Target.
    pub action: &'a str,
    /// CSRF token.
    pub csrf: &'a str,
    /// Hidden fields.
    pub hidden: Vec<(&'a str, String)>,
    /// Button text.
    pub button: &'a str,
}

/// A page with a title, a message, and optionally a link or a form.
#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct Message<'a> {
    /// Title.
    pub title: &'a str,
    /// Message.
    pub message: &'a str,
    /// (href, text).
    pub link: Option<(String, &'a str)>,
    /// A form.
    pub form: Option<MessageForm<'a>>,
}

/// One grant on the account page.
pub(crate) struct Grant {
    /// Client ID.
    pub client_id: String,
    /// App name.
    pub name: String,
    /// Scopes, space-separated.
    pub scopes: String,
    /// When (UTC date).
    pub since: String,
}

/// The account page.
#[derive(Template)]
#[template(path = "account.html")]
pub(crate) struct Account<'a> {
    /// Who.
    pub who: &'a str,
    /// Groups, comma-separated.
    pub groups: String,
    /// Grants.
    pub grants: Vec<Grant>,
    /// CSRF token.
    pub csrf: &'a str,
}

/// The error page of [`Error::Page`].
pub(crate) fn error_page(p: &PageError) -> Response {
    let page = Message {
        title: &p.title,
        message: &p.message,
        link: None,
        form: None,
    };
    match page.render() {
        Ok(body) => html(p.status, body),
        Err(_) => (p.status, "error").into_response(),
    }
}

/// `GET /assets/keyway.css`
pub(crate) async fn stylesheet() -> Response {
    let mut res = include_str!("../../templates/keyway.css").into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}

/// Formats unix seconds as a UTC date (YYYY-MM-DD).
pub(crate) fn date(unix: i64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm).
    let days = unix.div_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_798_761_600), "2027-01-01");
    }
}

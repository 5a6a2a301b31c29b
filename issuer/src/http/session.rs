//! Browser plumbing: the issuer's sign-in session cookie and CSRF protection of forms; starting
//! a session once a person has authenticated ([`start_session`]) and where to go next
//! ([`resume_target`]).
//!
//! - Session: cookie `keyway_issuer_session` (`__Host-keyway_issuer_session` over https) holding
//!   a 256-bit random value; the store keeps only its SHA-256. HttpOnly, SameSite=Lax, Path=/.
//!   The name differs from keyway-proxy's cookies (cookies ignore ports on 127.0.0.1).
//! - CSRF: double-submit. Cookie `keyway_issuer_csrf` (HttpOnly, SameSite=Lax, 24 h) holds a
//!   256-bit random token that every form repeats in a hidden `csrf` field; POSTs compare both in
//!   constant time. A page keeps the browser's existing token and sets one only when there is
//!   none, so several tabs (two sign-ins started by apps at once) share one token and every open
//!   form stays valid. SameSite=Lax, not Strict: a Strict cookie is not sent on the arrival from
//!   an app's site, so each arrival would mint a new token and fail the forms already open.
//!   Cross-site POSTs carry neither Lax cookie (so they fail the check and are unauthenticated),
//!   and the token is never readable by another site.
//! - Device: cookie `keyway_issuer_device` (`__Host-` over https; HttpOnly, SameSite=Strict,
//!   [`crate::directory::throttle::DEVICE_TTL`]) holding a 256-bit random value, set at each successful
//!   password sign-in: the sign-in throttle lets a known device in whatever others have tried
//!   (see [`crate::directory::throttle`]). It is only ever needed on the same-site POST of the login form.

use http::{HeaderMap, HeaderValue, StatusCode, header};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::params::Params;
use crate::state::Issuer;
use crate::store::{Claims, SecretHash, Session};

/// Base name of the session cookie.
pub(crate) const SESSION_COOKIE: &str = "keyway_issuer_session";
/// Base name of the CSRF cookie.
pub(crate) const CSRF_COOKIE: &str = "keyway_issuer_csrf";
/// Base name of the device cookie.
pub(crate) const DEVICE_COOKIE: &str = "keyway_issuer_device";

impl Issuer {
    /// The session cookie's name (with `__Host-` over https).
    pub(crate) fn session_cookie_name(&self) -> &'static str {
        if self.secure_cookies() {
            "__Host-keyway_issuer_session"
        } else {
            SESSION_COOKIE
        }
    }

    /// The CSRF cookie's name.
    pub(crate) fn csrf_cookie_name(&self) -> &'static str {
        if self.secure_cookies() {
            "__Host-keyway_issuer_csrf"
        } else {
            CSRF_COOKIE
        }
    }

    /// The device cookie's name.
    pub(crate) fn device_cookie_name(&self) -> &'static str {
        if self.secure_cookies() {
            "__Host-keyway_issuer_device"
        } else {
            DEVICE_COOKIE
        }
    }

    /// The browser's device cookie, if it has one of the right shape.
    pub(crate) fn device<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        cookie(headers, self.device_cookie_name()).filter(|v| is_token(v))
    }

    /// `Set-Cookie` for the device cookie.
    pub(crate) fn device_cookie(&self, value: &str) -> HeaderValue {
        let ttl = crate::directory::throttle::DEVICE_TTL;
        self.cookie(self.device_cookie_name(), value, ttl, "Strict")
    }

    fn cookie(&self, name: &str, value: &str, max_age: i64, same_site: &str) -> HeaderValue {
        let secure = if self.secure_cookies() {
            "; Secure"
        } else {
            ""
        };
        let s = format!(
            "{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}"
        );
        HeaderValue::from_str(&s)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }

    /// `Set-Cookie` for a new session.
    pub(crate) fn session_cookie(&self, value: &str) -> HeaderValue {
        let ttl = i64::try_from(self.lifetimes().session).unwrap_or(i64::MAX);
        self.cookie(self.session_cookie_name(), value, ttl, "Lax")
    }

    /// `Set-Cookie` that clears the session.
    pub(crate) fn clear_session_cookie(&self) -> HeaderValue {
        self.cookie(self.session_cookie_name(), "", 0, "Lax")
    }

    /// The live session of the request, if any.
    pub(crate) async fn session(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<(SecretHash, Session)>> {
        let Some(value) = cookie(headers, self.session_cookie_name()) else {
            return Ok(None);
        };
        if value.len() != 43 {
            return Ok(None);
        }
        let hash = SecretHash::of(value);
        let s = self.store().get_session(&hash, self.clock().now()).await?;
        Ok(s.map(|s| (hash, s)))
    }

    /// The CSRF token of the request (the browser's existing one, kept), or a new one with its
    /// `Set-Cookie`.
    pub(crate) fn csrf(&self, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
        match cookie(headers, self.csrf_cookie_name()) {
            Some(v) if is_token(v) => (v.to_string(), None),
            _ => {
                let t = crate::random::random_token();
                let c = self.cookie(self.csrf_cookie_name(), &t, 86400, "Lax");
                (t, Some(c))
            }
        }
    }

    /// Checks a submitted form's CSRF field against the cookie.
    pub(crate) fn check_csrf(&self, headers: &HeaderMap, field: Option<&str>) -> Result<()> {
        let cookie = cookie(headers, self.csrf_cookie_name()).unwrap_or("");
        let field = field.unwrap_or("");
        let ok = is_token(cookie) && bool::from(cookie.as_bytes().ct_eq(field.as_bytes()));
        if ok {
            Ok(())
        } else {
            Err(Error::page(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "For your security the form could not be accepted (missing or wrong CSRF \
                 token). Go back, reload the page and try again.",
            ))
        }
    }
}

/// Stores a new session for a person who has just authenticated (with a password or at an
/// upstream provider), keyed by the hash of a new cookie; returns that cookie and the session.
pub(crate) async fn start_session(
    iss: &Issuer,
    subject: String,
    claims: Claims,
    source: String,
    now: i64,
) -> Result<(String, Session)> {
    let cookie = crate::random::random_token();
    let session = Session {
        id: crate::random::random_id(),
        subject,
        claims,
        source,
        auth_time: now,
        created_at: now,
        last_seen: now,
        expires_at: now + i64::try_from(iss.lifetimes().session).unwrap_or(43200),
    };
    iss.store()
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

/// Whether a cookie value has the shape of our random tokens (43 base64url characters).
fn is_token(v: &str) -> bool {
    v.len() == 43
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The value of a cookie (first occurrence).
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn cookie_parsing() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        h.append(header::COOKIE, HeaderValue::from_static("c=3"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), Some("3"));
        assert_eq!(cookie(&h, "d"), None);
    }

    #[test]
    fn token_shape() {
        assert!(is_token(&crate::random::random_token()));
        assert!(is_token(&"A-_z".repeat(11)[..43]));
        assert!(!is_token(&"a".repeat(42)));
        assert!(!is_token(&"a".repeat(44)));
        assert!(!is_token(&format!("{}=", "a".repeat(42))));
        assert!(!is_token(&format!("{}+", "a".repeat(42))));
    }
}

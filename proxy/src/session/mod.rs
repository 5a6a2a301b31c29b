//! Browser sessions: an AES-256-GCM sealed cookie (key: the Secret's cookie-secret), bound to the
//! app and the cookie's purpose through the additional authenticated data, so that a cookie from
//! another app, or a login-state cookie used as a session, fails to open.
//!
//! Cookie names: `_keyway_proxy` (session) and `_keyway_proxy_login_<first 12 characters of the
//! state>` (login state, one per sign-in in progress so that several tabs can sign in at once,
//! at most `login::MAX_PENDING_LOGINS`), with the `__Host-` prefix when Secure; never
//! `keyway_issuer_*`, the issuer's. A session larger than one cookie is split into `NAME_0`,
//! `NAME_1`, …. The ID token for the sign-out's `id_token_hint` rides in `_keyway_proxy_signout`
//! (`__Secure-` prefixed when Secure, since `__Host-` requires `Path=/`), path-scoped to the
//! sign-out endpoint so that it is not sent with every request.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use oidc::jwt::Principal;

/// Largest cookie value written in one piece; more is split.
pub(crate) const CHUNK: usize = 3800;
/// At most this many chunks are read.
pub(crate) const MAX_CHUNKS: usize = 8;

/// What a sealed value is for (part of the AAD).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Purpose {
    /// The session cookie.
    Session,
    /// The login-state cookie.
    Login,
    /// The sign-out cookie (the ID token kept for `id_token_hint`).
    SignOut,
}

/// The additional authenticated data: `keyway-proxy/v1\0<purpose>\0<client id>`.
fn aad(purpose: Purpose, client_id: &str) -> Vec<u8> {
    let p = match purpose {
        Purpose::Session => "session",
        Purpose::Login => "login",
        Purpose::SignOut => "signout",
    };
    let mut aad = Vec::with_capacity(32 + client_id.len());
    aad.extend_from_slice(b"keyway-proxy/v1\0");
    aad.extend_from_slice(p.as_bytes());
    aad.push(0);
    aad.extend_from_slice(client_id.as_bytes());
    aad
}

/// Seals and opens cookie values.
pub(crate) struct Sealer {
    key: LessSafeKey,
    /// The AAD for each purpose (indexed by [`Purpose`]), made once.
    aad: [Vec<u8>; 3],
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer for one app.
    pub(crate) fn new(key: &[u8; 32], client_id: &str) -> Option<Self> {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).ok()?);
        Some(Sealer {
            key,
            aad: [
                aad(Purpose::Session, client_id),
                aad(Purpose::Login, client_id),
                aad(Purpose::SignOut, client_id),
            ],
            rng: SystemRandom::new(),
        })
    }

    fn aad(&self, purpose: Purpose) -> &[u8] {
        &self.aad[purpose as usize]
    }

    /// Seals a value into a cookie-safe string.
    pub(crate) fn seal<T: Serialize>(&self, purpose: Purpose, value: &T) -> Option<String> {
        self.seal_bytes(purpose, serde_json::to_vec(value).ok()?)
    }

    /// Seals bytes (a serialised value) into a cookie-safe string.
    pub(crate) fn seal_bytes(&self, purpose: Purpose, mut buf: Vec<u8>) -> Option<String> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.aad(purpose)),
                &mut buf,
            )
            .ok()?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Some(B64.encode(out))
    }

    /// Opens a sealed value; `None` when tampered, from another app or another purpose.
    pub(crate) fn open<T: DeserializeOwned>(&self, purpose: Purpose, sealed: &str) -> Option<T> {
        let mut raw = B64.decode(sealed.as_bytes()).ok()?;
        if raw.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(&raw[..NONCE_LEN]).ok()?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(self.aad(purpose)), &mut raw[NONCE_LEN..])
            .ok()?;
        serde_json::from_slice(plain).ok()
    }

    /// Random URL-safe string of `n` bytes of entropy.
    pub(crate) fn random(&self, n: usize) -> Option<String> {
        let mut b = vec![0u8; n];
        self.rng.fill(&mut b).ok()?;
        Some(B64.encode(b))
    }
}

/// The cookie secret in force before the last change: it still opens cookies (never seals them)
/// until `until`, so that rotating the cookie secret does not sign everyone out at once.
pub(crate) struct Retired {
    key: [u8; 32],
    sealer: Sealer,
    until: u64,
}

impl std::fmt::Debug for Retired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retired")
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

impl Retired {
    /// The retired key, usable until `until` (seconds since the epoch), for one app.
    pub(crate) fn new(key: [u8; 32], client_id: &str, until: u64) -> Option<Self> {
        let sealer = Sealer::new(&key, client_id)?;
        Some(Retired { key, sealer, until })
    }

    /// The retired key.
    pub(crate) fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// Until when it opens cookies.
    pub(crate) fn until(&self) -> u64 {
        self.until
    }

    /// Opens a value sealed with the retired key, while it lasts.
    pub(crate) fn open<T: DeserializeOwned>(
        &self,
        purpose: Purpose,
        sealed: &str,
        now: u64,
    ) -> Option<T> {
        if now >= self.until {
            return None;
        }
        self.sealer.open(purpose, sealed)
    }
}

/// The session kept in the cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    /// Random session ID (for once-per-session refresh).
    pub(crate) sid: String,
    /// Who.
    pub(crate) who: Principal,
    /// Access token (kept only when it is forwarded to the tool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) at: Option<String>,
    /// Refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rt: Option<String>,
    /// When the access token expires (seconds since the epoch): refresh after.
    pub(crate) exp: u64,
    /// When the session ends regardless of refreshes.
    pub(crate) end: u64,
}

/// State carried through the authorization request in the login cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LoginState {
    /// `state`.
    pub(crate) state: String,
    /// `nonce`.
    pub(crate) nonce: String,
    /// PKCE verifier.
    pub(crate) verifier: String,
    /// Same-origin path to return to.
    pub(crate) to: String,
    /// Expiry (seconds since the epoch).
    pub(crate) exp: u64,
}

/// What the sign-out cookie keeps: the ID token of the sign-in, for the `id_token_hint` of
/// RP-Initiated Logout, and the session it belongs to (a sign-out sends the hint only with that
/// session, so that a sign-out cookie planted from a sibling domain, which `__Secure-` does not
/// prevent as `__Host-` would, names no one else).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SignOutHint {
    /// The session's random ID ([`Session::sid`]).
    pub(crate) sid: String,
    /// The ID token.
    pub(crate) id_token: String,
}

/// Cookie names for one configuration.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// Session cookie (prefixed).
    pub(crate) session: String,
    /// Prefix of the login-state cookies (prefixed); see [`Names::login_for`].
    pub(crate) login: String,
    /// The sign-out cookie (`__Secure-` prefixed when Secure: it is path-scoped).
    pub(crate) signout: String,
    /// Secure attribute.
    pub(crate) secure: bool,
}

impl Names {
    /// Names from the base name.
    pub(crate) fn new(base: &str, secure: bool) -> Self {
        let prefix = if secure { "__Host-" } else { "" };
        let scoped = if secure { "__Secure-" } else { "" };
        Names {
            session: format!("{prefix}{base}"),
            login: format!("{prefix}{base}_login"),
            signout: format!("{scoped}{base}_signout"),
            secure,
        }
    }

    /// The login-state cookie for a `state` value: `None` unless the state looks like one the
    /// proxy makes (at least 12 base64url characters).
    pub(crate) fn login_for(&self, state: &str) -> Option<String> {
        let key = state.get(..12)?;
        key.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            .then(|| format!("{}_{key}", self.login))
    }

    /// A `Set-Cookie` value.
    pub(crate) fn set_cookie(&self, name: &str, value: &str, max_age: Option<u64>) -> String {
        self.cookie_at(name, value, max_age, "/")
    }

    /// A `Set-Cookie` value for the sign-out cookie, sent only to `path` (the sign-out
    /// endpoint); an empty value with `max_age` 0 deletes it.
    pub(crate) fn signout_cookie(&self, value: &str, max_age: u64, path: &str) -> String {
        self.cookie_at(&self.signout, value, Some(max_age), path)
    }

    fn cookie_at(&self, name: &str, value: &str, max_age: Option<u64>, path: &str) -> String {
        let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax");
        if self.secure {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        c
    }

    /// A `Set-Cookie` value that deletes the cookie.
    pub(crate) fn clear_cookie(&self, name: &str) -> String {
        self.set_cookie(name, "", Some(0))
    }

    /// `Set-Cookie` values writing a sealed session (split when large), deleting stale pieces.
    pub(crate) fn session_cookies(
        &self,
        sealed: &str,
        max_age: u64,
        present: &Presence,
    ) -> Vec<String> {
        let mut out = Vec::new();
        if sealed.len() <= CHUNK {
            out.push(self.set_cookie(&self.session, sealed, Some(max_age)));
            for i in 0..present.chunks {
                out.push(self.clear_cookie(&format!("{}_{i}", self.session)));
            }
        } else {
            let pieces: Vec<&str> = sealed
                .as_bytes()
                .chunks(CHUNK)
                .filter_map(|c| std::str::from_utf8(c).ok())
                .collect();
            for (i, p) in pieces.iter().enumerate() {
                out.push(self.set_cookie(&format!("{}_{i}", self.session), p, Some(max_age)));
            }
            for i in pieces.len()..present.chunks {
                out.push(self.clear_cookie(&format!("{}_{i}", self.session)));
            }
            if present.single {
                out.push(self.clear_cookie(&self.session));
            }
        }
        out
    }

    /// `Set-Cookie` values deleting every piece of the session that the request carried.
    pub(crate) fn clear_session(&self, present: &Presence) -> Vec<String> {
        let mut out = vec![self.clear_cookie(&self.session)];
        for i in 0..present.chunks {
            out.push(self.clear_cookie(&format!("{}_{i}", self.session)));
        }
        out
    }
}

/// Which session cookies a request carried.
#[derive(Debug, Clone, Default)]
pub(crate) struct Presence {
    /// The unsplit cookie.
    pub(crate) single: bool,
    /// Number of consecutive chunks from `_0`.
    pub(crate) chunks: usize,
}

/// The session and login cookies of a request (raw sealed values), borrowing from its headers.
#[derive(Debug, Default)]
pub(crate) struct RequestCookies<'a> {
    /// Sealed session value: borrowed when unsplit, the chunks joined otherwise.
    pub(crate) session: Option<std::borrow::Cow<'a, str>>,
    /// Login-state cookies (name, sealed value).
    pub(crate) logins: Vec<(String, String)>,
    /// The sealed sign-out cookie (sent only to the sign-out endpoint).
    pub(crate) signout: Option<&'a str>,
    /// Which pieces were present.
    pub(crate) presence: Presence,
    /// What forwarding must do with the `Cookie` lines.
    pub(crate) plan: CookiePlan,
}

/// What forwarding does with a request's `Cookie` lines to keep the proxy's cookies from the tool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum CookiePlan {
    /// None of the proxy's cookies, at most one line: forward as it is.
    #[default]
    Keep,
    /// Nothing but the proxy's cookies (or nothing readable): remove the lines.
    Drop,
    /// Otherwise: join the others into one line.
    Rewrite,
}

/// Builds a [`CookiePlan`] while the `Cookie` lines are read.
#[derive(Debug, Default)]
pub(crate) struct PlanBuilder {
    lines: usize,
    own: bool,
    others: bool,
}

impl PlanBuilder {
    /// A `Cookie` line; `readable` when it is visible ASCII (else it is not forwarded).
    pub(crate) fn line(&mut self, readable: bool) {
        self.lines += 1;
        self.own |= !readable;
    }

    /// A pair of the last line.
    pub(crate) fn pair(&mut self, pair: &str, names: &Names) {
        if is_own_cookie(cookie_name(pair), names) {
            self.own = true;
        } else {
            self.others = true;
        }
    }

    /// The plan.
    pub(crate) fn finish(&self) -> CookiePlan {
        if !self.own && self.lines <= 1 {
            CookiePlan::Keep
        } else if !self.others {
            CookiePlan::Drop
        } else {
            CookiePlan::Rewrite
        }
    }
}

/// The name of a `name=value` pair, without surrounding whitespace (so that `name =v`, which
/// some parsers accept, cannot smuggle the proxy's cookie through).
pub(crate) fn cookie_name(pair: &str) -> &str {
    pair.split('=').next().unwrap_or("").trim()
}

/// The non-empty `name=value` pairs of one `Cookie` line, trimmed.
pub(crate) fn cookie_pairs(value: &str) -> impl Iterator<Item = &str> {
    value.split(';').map(str::trim).filter(|p| !p.is_empty())
}

/// Extracts the proxy's cookies from the `Cookie` headers.
pub(crate) fn read_cookies<'a>(headers: &'a http::HeaderMap, names: &Names) -> RequestCookies<'a> {
    let mut out = RequestCookies::default();
    let mut chunks: [Option<&str>; MAX_CHUNKS] = [None; MAX_CHUNKS];
    let mut plan = PlanBuilder::default();
    for value in headers.get_all(http::header::COOKIE) {
        let value = value.to_str();
        plan.line(value.is_ok());
        let Ok(value) = value else { continue };
        for pair in cookie_pairs(value) {
            plan.pair(pair, names);
            let Some((name, v)) = pair.split_once('=') else {
                continue;
            };
            if name == names.session {
                out.session = Some(std::borrow::Cow::Borrowed(v));
                out.presence.single = true;
            } else if is_login_cookie(name, names) {
                out.logins.push((name.to_string(), v.to_string()));
            } else if name == names.signout {
                out.signout = Some(v);
            } else if let Some(i) = name
                .strip_prefix(names.session.as_str())
                .and_then(|r| r.strip_prefix('_'))
                .and_then(|i| i.parse::<usize>().ok())
                && let Some(slot) = chunks.get_mut(i)
            {
                *slot = Some(v);
            }
        }
    }
    let n = chunks.iter().take_while(|c| c.is_some()).count();
    out.presence.chunks = n;
    out.plan = plan.finish();
    if out.session.is_none() && n > 0 {
        out.session = Some(std::borrow::Cow::Owned(
            chunks.iter().take(n).flatten().copied().collect(),
        ));
    }
    out
}

fn is_login_cookie(name: &str, names: &Names) -> bool {
    name.strip_prefix(names.login.as_str())
        .is_some_and(|r| r.is_empty() || r.starts_with('_'))
}

/// Whether a cookie name belongs to the proxy (removed before forwarding to the tool).
pub(crate) fn is_own_cookie(name: &str, names: &Names) -> bool {
    name == names.session
        || is_login_cookie(name, names)
        || name == names.signout
        || name
            .strip_prefix(names.session.as_str())
            .and_then(|r| r.strip_prefix('_'))
            .is_some_and(|i| i.parse::<usize>().is_ok())
}

/// Constant-time equality of secrets (cookie keys, sign-in state, session IDs).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn session(groups: usize) -> Session {
        Session {
            sid: "s".into(),
            who: Principal {
                sub: "alice".into(),
                groups: (0..groups).map(|i| format!("group-number-{i}")).collect(),
                ..Default::default()
            },
            at: None,
            rt: Some("r".into()),
            exp: 1,
            end: 2,
        }
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let a = Sealer::new(&[7; 32], "app-a").unwrap();
        let b = Sealer::new(&[7; 32], "app-b").unwrap();
        let c = Sealer::new(&[8; 32], "app-a").unwrap();
        let sealed = a.seal(Purpose::Session, &session(1)).unwrap();
        let back: Session = a.open(Purpose::Session, &sealed).unwrap();
        assert_eq!(back.who.sub, "alice");
        assert!(
            b.open::<Session>(Purpose::Session, &sealed).is_none(),
            "other app"
        );
        assert!(
            c.open::<Session>(Purpose::Session, &sealed).is_none(),
            "other key"
        );
        assert!(
            a.open::<Session>(Purpose::Login, &sealed).is_none(),
            "other purpose"
        );
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 5;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(a.open::<Session>(Purpose::Session, &tampered).is_none());
        assert!(a.open::<Session>(Purpose::Session, "").is_none());
        assert!(a.open::<Session>(Purpose::Session, "!!!").is_none());
    }

    #[test]
    fn retired_key_opens_until_its_deadline_only() {
        let old = Sealer::new(&[7; 32], "app").unwrap();
        let sealed = old.seal(Purpose::Session, &session(1)).unwrap();
        let retired = Retired::new([7; 32], "app", 100).unwrap();
        assert_eq!(
            retired
                .open::<Session>(Purpose::Session, &sealed, 99)
                .unwrap()
                .who
                .sub,
            "alice"
        );
        assert!(
            retired
                .open::<Session>(Purpose::Session, &sealed, 100)
                .is_none()
        );
        assert!(
            retired
                .open::<Session>(Purpose::Login, &sealed, 99)
                .is_none()
        );
        let other_app = Retired::new([7; 32], "other", 100).unwrap();
        assert!(
            other_app
                .open::<Session>(Purpose::Session, &sealed, 99)
                .is_none()
        );
        assert!(!format!("{retired:?}").contains('7'), "no key in Debug");
    }

    #[test]
    fn large_sessions_split_and_rejoin() {
        let s = Sealer::new(&[1; 32], "app").unwrap();
        let names = Names::new("_keyway_proxy", true);
        let sealed = s.seal(Purpose::Session, &session(400)).unwrap();
        assert!(sealed.len() > 2 * CHUNK);
        let cookies = names.session_cookies(
            &sealed,
            60,
            &Presence {
                single: true,
                chunks: 0,
            },
        );
        assert!(cookies[0].starts_with("__Host-_keyway_proxy_0="));
        assert!(
            cookies
                .iter()
                .all(|c| c.contains("; Secure") && c.contains("HttpOnly"))
        );
        assert!(
            cookies
                .last()
                .unwrap()
                .starts_with("__Host-_keyway_proxy=; ")
        );
        let header: Vec<String> = cookies
            .iter()
            .filter(|c| !c.contains("Max-Age=0"))
            .map(|c| c.split(';').next().unwrap().to_string())
            .collect();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            format!("other=1; {}", header.join("; ")).parse().unwrap(),
        );
        let read = read_cookies(&headers, &names);
        assert_eq!(read.session.as_deref(), Some(sealed.as_str()));
        let back: Session = s
            .open(Purpose::Session, read.session.as_deref().unwrap())
            .unwrap();
        assert_eq!(back.who.groups.len(), 400);
        assert!(is_own_cookie("__Host-_keyway_proxy_3", &names));
        assert!(!is_own_cookie("keyway_issuer_session", &names));
        assert!(!is_own_cookie("__Host-_keyway_proxy_x", &names));
        assert!(is_own_cookie(
            "__Host-_keyway_proxy_login_abcdefABCDEF",
            &names
        ));
        assert_eq!(
            names.login_for("abcdef-_ABCDxyz").as_deref(),
            Some("__Host-_keyway_proxy_login_abcdef-_ABCD")
        );
        assert_eq!(names.login_for("short"), None);
        assert_eq!(names.login_for("abc;def=ghijkl"), None);
    }
}

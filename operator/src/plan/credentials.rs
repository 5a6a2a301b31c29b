//! The credentials in the Secret keyway writes: the client secret (256 random bits, kept until it
//! is due for rotation) and the cookie secret of the app's sidecars (32 random bytes, with the
//! one it replaced kept as the previous one, stamped with the time it was replaced).

use std::time::Duration;

use api::{ConnectedApp, parse_duration};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use contract::secret as keys;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt as _;

use super::events::PlannedEvent;
use super::time::add;
use crate::labels::ISSUED_AT_ANNOTATION;

/// A source of random bytes (the OS in production; deterministic in tests).
pub trait Random {
    /// `n` random bytes.
    fn bytes(&mut self, n: usize) -> Vec<u8>;
}

/// The operating system's CSPRNG.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandom;

impl Random for OsRandom {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        use rand::RngCore as _;
        let mut buf = vec![0u8; n];
        rand::rngs::OsRng.fill_bytes(&mut buf);
        buf
    }
}

/// A new client secret: 256 random bits, base64url without padding (43 characters).
fn new_client_secret(rng: &mut dyn Random) -> String {
    URL_SAFE_NO_PAD.encode(rng.bytes(32))
}

/// A new cookie secret: 32 random bytes, base64 (standard, padded), per `contract::secret`.
fn new_cookie_secret(rng: &mut dyn Random) -> String {
    STANDARD.encode(rng.bytes(32))
}

/// Whether `value` is a cookie secret: 32 bytes in standard base64.
pub(super) fn valid_cookie_secret(value: &str) -> bool {
    STANDARD.decode(value).is_ok_and(|b| b.len() == 32)
}

/// The value of `key` in the Secret, if it is there and is UTF-8.
pub(super) fn text(secret: &Secret, key: &str) -> Option<String> {
    let data = secret.data.as_ref()?;
    let bytes = data.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// The app's rotation interval and grace period, when it rotates its client secret.
pub(super) fn rotation(app: &ConnectedApp) -> Option<(Duration, Duration)> {
    let r = app.spec.secret.rotation.as_ref()?;
    let interval = parse_duration(&r.interval).ok()?;
    let grace = parse_duration(&r.grace_period).ok()?;
    Some((interval, grace))
}

/// The client secret the Secret should carry and when it was generated (none for a public
/// client): the one in the observed Secret unless it is missing or due for rotation, else a new
/// one (with a `SecretRotated` event when it replaces one that stays valid for `grace`).
pub(super) fn client_secret(
    app: &ConnectedApp,
    observed: Option<&Secret>,
    rotation: Option<(Duration, Duration)>,
    grace: Duration,
    now: Timestamp,
    rng: &mut dyn Random,
    events: &mut Vec<PlannedEvent>,
) -> (Option<String>, Option<Timestamp>) {
    if !app.spec.is_confidential() {
        return (None, None);
    }
    let observed_secret = observed.and_then(|s| text(s, keys::CLIENT_SECRET));
    let observed_issued = observed
        .and_then(|s| s.annotations().get(ISSUED_AT_ANNOTATION))
        .and_then(|t| t.parse::<Timestamp>().ok());
    match (observed_secret, observed_issued) {
        (Some(s), Some(issued))
            if s.len() >= 43
                && rotation.is_none_or(|(interval, _)| add(issued, interval) > now) =>
        {
            (Some(s), Some(issued))
        }
        (Some(s), None) if s.len() >= 43 => (Some(s), Some(now)),
        (previous, _) => {
            let fresh = new_client_secret(rng);
            if previous.is_some() {
                let client_id = app.client_id().unwrap_or_default();
                events.push(PlannedEvent {
                    warning: false,
                    reason: "SecretRotated".into(),
                    note: format!(
                        "generated a new client secret for {client_id}; the previous one stays valid for {}s",
                        grace.as_secs()
                    ),
                });
            }
            (Some(fresh), Some(now))
        }
    }
}

/// The cookie secret the Secret should carry (the observed one when valid, else a new one) and
/// the previous one with the time it was replaced (seconds since the Unix epoch), if any.
///
/// A cookie secret replaced since the last write (by hand, or regenerated here) keeps the one it
/// replaced as the previous, stamped `now`, with a `CookieSecretReplaced` event: sidecars,
/// restarted or not, still open cookies sealed with it for their --cookie-secret-grace.
/// Otherwise the previous one stays as it is.
pub(super) fn cookie_secrets(
    app: &ConnectedApp,
    observed: Option<&Secret>,
    now: Timestamp,
    rng: &mut dyn Random,
    events: &mut Vec<PlannedEvent>,
) -> (String, Option<(String, String)>) {
    let cookie = observed
        .and_then(|s| text(s, keys::COOKIE_SECRET))
        .filter(|c| valid_cookie_secret(c))
        .unwrap_or_else(|| new_cookie_secret(rng));
    let seen = observed
        .and_then(|s| text(s, keys::COOKIE_SECRET_SEEN))
        .filter(|c| valid_cookie_secret(c));
    let previous = match seen {
        Some(seen) if seen != cookie => {
            let client_id = app.client_id().unwrap_or_default();
            events.push(PlannedEvent {
                warning: false,
                reason: "CookieSecretReplaced".into(),
                note: format!(
                    "the cookie secret of {client_id} was replaced; sidecars still open cookies of the previous one for their --cookie-secret-grace"
                ),
            });
            Some((
                seen,
                u64::try_from(now.as_second()).unwrap_or(0).to_string(),
            ))
        }
        _ => observed.and_then(|s| {
            let key = text(s, keys::COOKIE_SECRET_PREVIOUS).filter(|c| valid_cookie_secret(c))?;
            let at = text(s, keys::COOKIE_SECRET_REPLACED_AT)
                .filter(|t| keys::parse_replaced_at(t).is_some())?;
            Some((key, at))
        }),
    };
    (cookie, previous)
}

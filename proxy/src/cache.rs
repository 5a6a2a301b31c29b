//! Validated bearer tokens, keyed by the SHA-256 of the token, kept until they expire: a repeated
//! token costs a hash and a lookup instead of a signature verification. Opened session cookies
//! the same way, keyed by the SHA-256 of the sealed value, until their access token needs a
//! refresh: a repeated cookie costs a hash and a lookup instead of base64, AES-GCM and JSON.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use crate::session::Session;
use oidc::jwt::Principal;

/// Something cached until a time (seconds since the epoch).
pub(crate) trait Expiring {
    /// When it stops being usable from the cache.
    fn expires(&self) -> u64;
}

impl Expiring for Principal {
    fn expires(&self) -> u64 {
        self.exp
    }
}

impl Expiring for Session {
    /// A session needs its access token refreshed at `exp`: that goes through the full path.
    fn expires(&self) -> u64 {
        self.exp.min(self.end)
    }
}

/// The key is already a uniformly distributed hash: use its first 8 bytes.
#[derive(Default)]
pub(crate) struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
}

type Map<T> = HashMap<[u8; 32], Arc<T>, BuildHasherDefault<PrehashedHasher>>;

/// Bounded cache keyed by a SHA-256.
pub(crate) struct Cache<T> {
    inner: Mutex<Entries<T>>,
    max: usize,
}

/// The entries, and when expired ones were last swept out to make room.
struct Entries<T> {
    map: Map<T>,
    /// The second of the last sweep: a full cache is swept at most once a second, since within
    /// one second no more entries can have expired (a sweep walks every entry).
    swept_at: Option<u64>,
    /// How many sweeps ran (for tests).
    sweeps: u64,
}

/// Bounded cache of validated tokens.
pub(crate) type TokenCache = Cache<Principal>;

/// Bounded cache of opened session cookies.
pub(crate) type SessionCache = Cache<Session>;

impl<T> std::fmt::Debug for Cache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("len", &self.len()).finish()
    }
}

/// SHA-256 of a token.
pub(crate) fn token_hash(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl<T: Expiring> Cache<T> {
    /// A cache of at most `max` entries (0 disables caching).
    pub(crate) fn new(max: usize) -> Self {
        Cache {
            inner: Mutex::new(Entries {
                map: Map::default(),
                swept_at: None,
                sweeps: 0,
            }),
            max,
        }
    }

    /// The entry, when cached and not expired (`now` in seconds, with `leeway`).
    pub(crate) fn get(&self, hash: &[u8; 32], now: u64, leeway: u64) -> Option<Arc<T>> {
        let mut entries = self.lock();
        let p = entries.map.get(hash)?;
        if p.expires().saturating_add(leeway) <= now {
            entries.map.remove(hash);
            return None;
        }
        Some(p.clone())
    }

    /// Caches an entry. When full, expired entries are dropped first (at most once a second);
    /// if still full, the new entry is not cached.
    pub(crate) fn insert(&self, hash: [u8; 32], entry: Arc<T>, now: u64) {
        if self.max == 0 {
            return;
        }
        let mut entries = self.lock();
        if entries.map.len() >= self.max {
            if entries.swept_at.is_some_and(|t| t >= now) {
                return;
            }
            entries.map.retain(|_, p| p.expires() > now);
            entries.swept_at = Some(now);
            entries.sweeps += 1;
            if entries.map.len() >= self.max {
                return;
            }
        }
        entries.map.insert(hash, entry);
    }
}

impl<T> Cache<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<T>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// How many times a full cache was swept for expired entries.
    #[cfg(test)]
    fn sweeps(&self) -> u64 {
        self.lock().sweeps
    }

    /// Whether empty.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything (after a configuration change).
    pub(crate) fn clear(&self) {
        self.lock().map.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn p(exp: u64) -> Arc<Principal> {
        Arc::new(Principal {
            sub: "s".into(),
            exp,
            ..Default::default()
        })
    }

    #[test]
    fn hits_until_expiry_and_stays_bounded() {
        let c = TokenCache::new(2);
        let (a, b, d) = (token_hash("a"), token_hash("b"), token_hash("d"));
        c.insert(a, p(100), 0);
        assert!(c.get(&a, 99, 0).is_some());
        assert!(c.get(&a, 100, 0).is_none());
        assert!(c.get(&a, 50, 0).is_none(), "expired entries are removed");
        c.insert(a, p(100), 0);
        c.insert(b, p(200), 0);
        c.insert(d, p(300), 0);
        assert!(c.get(&d, 1, 0).is_none(), "full: not cached");
        c.insert(d, p(300), 150);
        assert!(c.get(&d, 151, 0).is_some(), "expired entry made room");
        assert_eq!(c.len(), 2);
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn a_full_cache_is_swept_at_most_once_a_second() {
        let c = TokenCache::new(100);
        for i in 0..100 {
            c.insert(token_hash(&i.to_string()), p(1000), 0);
        }
        for i in 0..50 {
            c.insert(token_hash(&format!("new {i}")), p(1000), 10);
        }
        assert_eq!(
            c.sweeps(),
            1,
            "one walk over the entries in second 10, not one per insert"
        );
        assert_eq!(c.len(), 100);
        c.insert(token_hash("later"), p(1000), 11);
        assert_eq!(c.sweeps(), 2);
        c.insert(token_hash("after expiry"), p(2000), 1000);
        assert_eq!(c.sweeps(), 3);
        assert!(
            c.get(&token_hash("after expiry"), 1000, 0).is_some(),
            "room made"
        );
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn sessions_leave_the_cache_when_a_refresh_or_the_end_is_due() {
        let s = |exp, end| {
            Arc::new(Session {
                sid: "x".into(),
                who: Principal::default(),
                at: None,
                rt: None,
                exp,
                end,
            })
        };
        let c = SessionCache::new(4);
        let (a, b) = (token_hash("a"), token_hash("b"));
        c.insert(a, s(100, 1000), 0);
        c.insert(b, s(1000, 100), 0);
        for h in [&a, &b] {
            assert!(c.get(h, 99, 0).is_some());
            assert!(c.get(h, 100, 0).is_none());
        }
        assert!(c.is_empty());
    }
}

//! The last credential accepted on a client connection. Clients (and ingress proxies in front
//! of keyway-proxy) send the same bearer token or session cookie on every request of a
//! keep-alive connection; when the next request carries byte for byte the same credential, the
//! connection's [`LastCredential`] answers without the SHA-256 and the lookup in the shared caches
//! ([`crate::cache`]). Everything else goes through those caches as before.
//!
//! It only ever holds what a shared cache returned, and follows the caches' rules: an
//! entry is used only for the app configuration it was found under (a reload forgets cached
//! tokens and sessions), only until it expires (a session opened with a retired cookie secret is
//! cached only until the grace ends, and so is its copy here), and not at all when caching is
//! disabled (`--token-cache-size 0`). The comparison takes the same time
//! wherever the credentials differ: one connection can carry several people's requests (an
//! ingress reuses its connections), so a mismatch must not tell how much of it matched.

use std::sync::{Arc, Mutex, Weak};

use crate::app::App;
use crate::cache::Expiring;
use crate::session::Session;
use oidc::jwt::Principal;

/// What was accepted.
#[derive(Debug)]
enum Accepted {
    Bearer(Arc<Principal>),
    Session(Arc<Session>),
}

#[derive(Debug)]
struct Entry {
    /// The app configuration in force when it was accepted (held weakly: only compared, and
    /// holding it keeps its address from being reused by a later configuration).
    app: Weak<App>,
    credential: Box<[u8]>,
    accepted: Accepted,
}

/// One connection's last accepted credential.
#[derive(Debug, Default)]
pub(crate) struct LastCredential {
    last: Mutex<Option<Entry>>,
}

/// Equality of two credentials in time that depends on their lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u64;
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (wa.remainder(), wb.remainder());
    for (x, y) in wa.zip(wb) {
        let (mut p, mut q) = ([0u8; 8], [0u8; 8]);
        p.copy_from_slice(x);
        q.copy_from_slice(y);
        diff |= u64::from_ne_bytes(p) ^ u64::from_ne_bytes(q);
    }
    for (x, y) in ra.iter().zip(rb) {
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

impl LastCredential {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Entry>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry for `credential`, when it is the last one accepted under `app` and is still
    /// valid at `now` (seconds, with `leeway`).
    fn find<T>(
        &self,
        app: &Arc<App>,
        credential: &[u8],
        now: u64,
        leeway: u64,
        pick: impl Fn(&Accepted) -> Option<&Arc<T>>,
    ) -> Option<Arc<T>>
    where
        T: Expiring,
    {
        let last = self.lock();
        let e = last.as_ref()?;
        if !std::ptr::eq(e.app.as_ptr(), Arc::as_ptr(app)) {
            return None;
        }
        let found = pick(&e.accepted)?;
        if found.expires().saturating_add(leeway) <= now || !same(&e.credential, credential) {
            return None;
        }
        Some(found.clone())
    }

    fn keep(&self, app: &Arc<App>, credential: &[u8], accepted: Accepted) {
        *self.lock() = Some(Entry {
            app: Arc::downgrade(app),
            credential: credential.into(),
            accepted,
        });
    }

    /// The principal of a bearer token accepted last on this connection (compared as bytes: a
    /// match is the very token accepted before, so it need not be checked again).
    pub(crate) fn bearer(
        &self,
        app: &Arc<App>,
        token: &[u8],
        now: u64,
        leeway: u64,
    ) -> Option<Arc<Principal>> {
        self.find(app, token, now, leeway, |a| match a {
            Accepted::Bearer(p) => Some(p),
            Accepted::Session(_) => None,
        })
    }

    /// The session of a sealed cookie accepted last on this connection.
    pub(crate) fn session(&self, app: &Arc<App>, sealed: &str, now: u64) -> Option<Arc<Session>> {
        self.find(app, sealed.as_bytes(), now, 0, |a| match a {
            Accepted::Session(s) => Some(s),
            Accepted::Bearer(_) => None,
        })
    }

    /// Remembers an accepted bearer token.
    pub(crate) fn keep_bearer(&self, app: &Arc<App>, token: &str, who: Arc<Principal>) {
        self.keep(app, token.as_bytes(), Accepted::Bearer(who));
    }

    /// Remembers an accepted session cookie.
    pub(crate) fn keep_session(&self, app: &Arc<App>, sealed: &str, session: Arc<Session>) {
        self.keep(app, sealed.as_bytes(), Accepted::Session(session));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn equality_over_every_length_and_position() {
        for n in 0..40 {
            let a: Vec<u8> = (0..n).map(|i| i as u8).collect();
            assert!(same(&a, &a.clone()));
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x40;
                assert!(!same(&a, &b), "differs at {i} of {n}");
            }
            assert!(!same(&a, &[a.as_slice(), b"x"].concat()));
        }
    }
}

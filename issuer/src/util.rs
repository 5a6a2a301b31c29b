//! Small helpers: randomness, time, hashing.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// `N` random bytes from the operating system.
///
/// If the operating system's generator ever failed, predictable tokens would be far worse than
/// stopping: the process aborts (a supervisor restarts it) rather than continue without entropy.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if SystemRandom::new().fill(&mut b).is_err() {
        tracing::error!("the operating system's random number generator failed; aborting");
        std::process::abort();
    }
    b
}

/// A 256-bit random token, base64url (codes, refresh tokens, cookies).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A 128-bit random identifier, base64url (jti, family and session ids).
pub(crate) fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

/// A 128-bit unique identifier for a `jti`: from the thread-local ChaCha CSPRNG (seeded from the
/// OS), which saves a system call per token; a jti must be unique, not secret.
pub(crate) fn fast_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// base64url(SHA-256(input)) (PKCE S256).
pub fn s256(input: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(input.as_bytes()))
}

/// The issuer's clock: the system time plus an offset that tests can move forward.
#[derive(Debug, Default)]
pub struct Clock {
    offset: AtomicI64,
}

impl Clock {
    /// Unix seconds now.
    pub fn now(&self) -> i64 {
        let sys = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        sys.saturating_add(self.offset.load(Ordering::Relaxed))
    }

    /// Unix seconds now, unsigned.
    pub(crate) fn now_u64(&self) -> u64 {
        u64::try_from(self.now()).unwrap_or(0)
    }

    /// Moves the clock forward (tests).
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::Relaxed);
    }
}

//! Randomness: secrets from the operating system's generator (codes, refresh tokens, cookies,
//! salts, keys) and unique identifiers.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};

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

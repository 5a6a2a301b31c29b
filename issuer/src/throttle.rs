//! The sign-in throttle: limits password guessing without letting a stranger lock a person out.
//!
//! Each sign-in attempt with a password is counted, before the password is checked, against
//! three budgets per [`WINDOW`] (five minutes), in this order:
//!
//! 1. [`PER_EMAIL_AND_ADDRESS`] (5) for one email from one client address: the tight limit on
//!    guessing one account. Someone else's failures from another address do not use it up, so
//!    knowing a person's email is not enough to lock them out.
//! 2. [`PER_ADDRESS`] (30) for one client address across every email: stops one host from
//!    spraying a few guesses at many accounts.
//! 3. [`PER_EMAIL`] (100) for one email across every address: caps distributed guessing, and
//!    the argon2 work, per account. Reaching it takes at least 20 addresses (5 each).
//!
//! An attempt refused by one budget is not counted against the later ones, so a host that has
//! used up its own budgets cannot go on to use up an account's shared one. A successful sign-in
//! clears its own (email, address) count and takes its attempt back from the shared budgets,
//! so only failures use them up.
//!
//! The counters live in the store (keys are hashes; the email is lowercased), so replicas that
//! share a store share every budget; when the store is down, nobody signs in with a password.
//!
//! The client address ([`ClientAddr`]) is the TCP peer's unless `--trusted-proxies` names the
//! load balancer or ingress controller in front of the issuer; then it comes from the
//! `X-Forwarded-For` that proxy appends. Without that setting, behind such a proxy every client
//! shares its address, so [`PER_ADDRESS`] becomes one budget for everyone behind it and
//! [`PER_EMAIL_AND_ADDRESS`] one per account. IPv6 clients are counted per /64.

pub use crate::client_addr::ClientAddr;
use crate::store::{Result as StoreResult, SecretHash, Store};

/// Attempts per window for one email from one client address.
pub const PER_EMAIL_AND_ADDRESS: u64 = 5;
/// Attempts per window from one client address, across emails.
pub const PER_ADDRESS: u64 = 30;
/// Attempts per window for one email, across client addresses.
pub const PER_EMAIL: u64 = 100;
/// Window length in seconds.
pub const WINDOW: i64 = 300;

/// Which budget refused an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// This email from this address.
    EmailFromAddress,
    /// This address, across emails.
    Address,
    /// This email, across addresses.
    Email,
}

fn email_key(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

fn pair_key(email: &str, addr: ClientAddr) -> SecretHash {
    SecretHash::of(&format!(
        "keyway login failures per email and address\n{}\n{}",
        addr.0,
        email_key(email)
    ))
}

fn address_key(addr: ClientAddr) -> SecretHash {
    SecretHash::of(&format!("keyway login failures per address\n{}", addr.0))
}

fn account_key(email: &str) -> SecretHash {
    SecretHash::of(&format!(
        "keyway login failures per email\n{}",
        email_key(email)
    ))
}

/// Counts a sign-in attempt for `email` from `addr` before its password is checked; `Err` with
/// the budget that refused it. Counting first makes the limits hold under concurrent attempts
/// on several replicas; [`succeeded`] then takes a successful attempt back.
pub async fn attempt(
    store: &dyn Store,
    email: &str,
    addr: ClientAddr,
    now: i64,
) -> StoreResult<Result<(), Refused>> {
    let end = now + WINDOW;
    let budgets = [
        (
            pair_key(email, addr),
            PER_EMAIL_AND_ADDRESS,
            Refused::EmailFromAddress,
        ),
        (address_key(addr), PER_ADDRESS, Refused::Address),
        (account_key(email), PER_EMAIL, Refused::Email),
    ];
    spend(
        store,
        now,
        budgets.map(|(key, limit, refused)| (key, end, limit, refused)),
    )
    .await
}

/// Counts one event against each budget `(key, window end, limit, tag)` in order, stopping at
/// the first one over its limit: `Err` with its tag. A refused event does not spend the budgets
/// after the one that refused it.
pub async fn spend<T>(
    store: &dyn Store,
    now: i64,
    budgets: impl IntoIterator<Item = (SecretHash, i64, u64, T)>,
) -> StoreResult<Result<(), T>> {
    for (key, end, limit, tag) in budgets {
        if store.count_event(&key, now, end).await? > limit {
            return Ok(Err(tag));
        }
    }
    Ok(Ok(()))
}

/// After a successful sign-in: forgets this email's failures from this address and takes the
/// attempt back from the shared budgets (failures from elsewhere still count).
pub async fn succeeded(store: &dyn Store, email: &str, addr: ClientAddr) -> StoreResult<()> {
    store.reset_counter(&pair_key(email, addr)).await?;
    store.uncount_event(&address_key(addr)).await?;
    store.uncount_event(&account_key(email)).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::store::sqlite::SqliteStore;

    fn ip(s: &str) -> ClientAddr {
        ClientAddr::of(s.parse().unwrap())
    }

    #[tokio::test]
    async fn another_address_keeps_its_own_budget_for_an_email() {
        let store = SqliteStore::in_memory().await.unwrap();
        let (attacker, victim) = (ip("192.0.2.1"), ip("198.51.100.2"));
        for _ in 0..PER_EMAIL_AND_ADDRESS {
            assert_eq!(
                attempt(&store, "A@x.org", attacker, 100).await.unwrap(),
                Ok(())
            );
        }
        assert_eq!(
            attempt(&store, " a@X.org", attacker, 101).await.unwrap(),
            Err(Refused::EmailFromAddress)
        );
        assert_eq!(
            attempt(&store, "a@x.org", victim, 101).await.unwrap(),
            Ok(())
        );
        assert_eq!(
            attempt(&store, "b@x.org", attacker, 101).await.unwrap(),
            Ok(())
        );
        // The window ends.
        assert_eq!(
            attempt(&store, "a@x.org", attacker, 400).await.unwrap(),
            Ok(())
        );
    }

    #[tokio::test]
    async fn one_address_spraying_many_emails_is_stopped() {
        let store = SqliteStore::in_memory().await.unwrap();
        let host = ip("192.0.2.1");
        for i in 0..PER_ADDRESS {
            let email = format!("u{i}@x.org");
            assert_eq!(attempt(&store, &email, host, 100).await.unwrap(), Ok(()));
        }
        assert_eq!(
            attempt(&store, "fresh@x.org", host, 101).await.unwrap(),
            Err(Refused::Address)
        );
        // Another host is unaffected, and so is the refused email's shared budget.
        assert_eq!(
            attempt(&store, "fresh@x.org", ip("192.0.2.2"), 101)
                .await
                .unwrap(),
            Ok(())
        );
    }

    #[tokio::test]
    async fn distributed_guessing_at_one_email_is_capped() {
        let store = SqliteStore::in_memory().await.unwrap();
        let hosts = PER_EMAIL / PER_EMAIL_AND_ADDRESS;
        for h in 0..hosts {
            let addr = ip(&format!("10.0.0.{h}"));
            for _ in 0..PER_EMAIL_AND_ADDRESS {
                assert_eq!(attempt(&store, "a@x.org", addr, 100).await.unwrap(), Ok(()));
            }
            // Refused attempts of a host do not spend the email's shared budget.
            assert!(
                attempt(&store, "a@x.org", addr, 100)
                    .await
                    .unwrap()
                    .is_err()
            );
        }
        assert_eq!(
            attempt(&store, "a@x.org", ip("10.0.1.1"), 101)
                .await
                .unwrap(),
            Err(Refused::Email)
        );
    }

    #[tokio::test]
    async fn success_clears_only_its_own_pair_and_frees_its_shared_attempt() {
        let store = SqliteStore::in_memory().await.unwrap();
        let (here, there) = (ip("192.0.2.1"), ip("192.0.2.2"));
        for _ in 0..PER_EMAIL_AND_ADDRESS {
            assert_eq!(attempt(&store, "a@x.org", here, 100).await.unwrap(), Ok(()));
            assert_eq!(
                attempt(&store, "a@x.org", there, 100).await.unwrap(),
                Ok(())
            );
        }
        succeeded(&store, "a@x.org", here).await.unwrap();
        assert_eq!(attempt(&store, "a@x.org", here, 101).await.unwrap(), Ok(()));
        assert_eq!(
            attempt(&store, "a@x.org", there, 101).await.unwrap(),
            Err(Refused::EmailFromAddress)
        );
        // Successful sign-ins from one address (a NAT, a proxy) do not use up its budget.
        let nat = ip("203.0.113.9");
        for i in 0..2 * PER_ADDRESS {
            let email = format!("u{i}@x.org");
            assert_eq!(attempt(&store, &email, nat, 102).await.unwrap(), Ok(()));
            succeeded(&store, &email, nat).await.unwrap();
        }
        assert_eq!(attempt(&store, "z@x.org", nat, 103).await.unwrap(), Ok(()));
    }
}

//! The sign-in throttle: limits password guessing without letting anyone lock a person out.
//!
//! Each sign-in attempt with a password is counted, before the password is checked. An attempt
//! from a browser that is not known for the account (see below) counts against three budgets
//! per [`WINDOW`] (five minutes), in this order:
//!
//! 1. [`PER_EMAIL_AND_ADDRESS`] (5) for one email from one client address; over it, refused
//!    (429). The tight limit on guessing one account from one place: failures from elsewhere do
//!    not use it up.
//! 2. [`PER_ADDRESS`] (30) for one client address across every email; over it, refused. Stops
//!    one host from spraying guesses at many accounts.
//! 3. [`PER_EMAIL`] (100) for one email across every address; over it, never refused, only
//!    slowed down: the attempt waits [`SLOW_DOWN`] before its password is checked. Guessing
//!    from many addresses uses this budget up, so refusing here would let anyone with enough
//!    addresses keep the person out. Distributed guessing stays bounded per address by the two
//!    budgets above.
//!
//! A browser in which a person has signed in is a known device for that account: a successful
//! sign-in sets the device cookie (a random value; the store keeps only a hash of it with the
//! account, for [`DEVICE_TTL`] after the last sign-in). An attempt from a known device counts
//! only against that device's own budget for the account, [`PER_KNOWN_DEVICE`] (5), and is never
//! slowed down: failures from anywhere else, however many and even from the person's own
//! address, neither refuse nor slow the person in a browser they have signed in with before.
//!
//! An attempt refused by one budget is not counted against the later ones, so a host that has
//! used up its own budgets cannot go on to use up an account's shared one. A successful sign-in
//! clears its own (email, address) or device count and takes its attempt back from the shared
//! budgets, so only failures use them up.
//!
//! The counters live in the store (keys are hashes; the email is lowercased), so replicas that
//! share a store share every budget; when the store is down, nobody signs in with a password.
//!
//! The client address ([`ClientAddr`]) is the TCP peer's unless `--trusted-proxies` names the
//! load balancer or ingress controller in front of the issuer; then it comes from the
//! `X-Forwarded-For` that proxy appends. Without that setting, behind such a proxy every client
//! shares its address, so [`PER_ADDRESS`] becomes one budget for everyone behind it and
//! [`PER_EMAIL_AND_ADDRESS`] one per account (known devices are still let in). IPv6 clients are
//! counted per /64.

use std::time::Duration;

pub(crate) use crate::directory::client_addr::ClientAddr;
use crate::store::{Result as StoreResult, SecretHash, Store};

/// Attempts per window for one email from one client address.
pub(crate) const PER_EMAIL_AND_ADDRESS: u64 = 5;
/// Attempts per window from one client address, across emails.
pub(crate) const PER_ADDRESS: u64 = 30;
/// Attempts per window for one email, across client addresses, before attempts are slowed down.
pub(crate) const PER_EMAIL: u64 = 100;
/// Attempts per window for one email from one of its known devices.
pub(crate) const PER_KNOWN_DEVICE: u64 = 5;
/// How long an attempt over the per-email budget (`PER_EMAIL`) waits before its password is
/// checked.
pub const SLOW_DOWN: Duration = Duration::from_secs(3);
/// Window length in seconds.
pub(crate) const WINDOW: i64 = 300;
/// How long a browser stays a known device for an account after a sign-in there (seconds; the
/// device cookie's lifetime too).
pub(crate) const DEVICE_TTL: i64 = 90 * 24 * 60 * 60;

/// Which budget refused an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// This email from this address.
    EmailFromAddress,
    /// This address, across emails.
    Address,
    /// This email from this known device.
    KnownDevice,
}

/// An attempt the throttle lets through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Admitted {
    /// The known device's own budget, when the attempt came from one (else it was counted
    /// against the shared budgets).
    device_budget: Option<SecretHash>,
    /// Wait this long before checking the password: the account's shared budget is used up.
    pub delay: Option<Duration>,
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

fn device_key(device: &str, email: &str) -> SecretHash {
    SecretHash::of(&format!(
        "keyway known device\n{device}\n{}",
        email_key(email)
    ))
}

fn device_budget_key(device: &str, email: &str) -> SecretHash {
    SecretHash::of(&format!(
        "keyway login failures per known device\n{device}\n{}",
        email_key(email)
    ))
}

/// Counts a sign-in attempt for `email` from `addr`, in a browser whose device cookie is
/// `device`, before its password is checked; `Err` with the budget that refused it. Counting
/// first makes the limits hold under concurrent attempts on several replicas; [`succeeded`]
/// then takes a successful attempt back.
pub(crate) async fn attempt(
    store: &dyn Store,
    email: &str,
    addr: ClientAddr,
    device: Option<&str>,
    now: i64,
) -> StoreResult<Result<Admitted, Refused>> {
    let end = now + WINDOW;
    if let Some(device) = device
        && store
            .is_known_device(&device_key(device, email), now)
            .await?
    {
        let key = device_budget_key(device, email);
        let spent = spend(
            store,
            now,
            [(key, end, PER_KNOWN_DEVICE, Refused::KnownDevice)],
        )
        .await?;
        return Ok(spent.map(|()| Admitted {
            device_budget: Some(key),
            delay: None,
        }));
    }
    let refusing = [
        (
            pair_key(email, addr),
            end,
            PER_EMAIL_AND_ADDRESS,
            Refused::EmailFromAddress,
        ),
        (address_key(addr), end, PER_ADDRESS, Refused::Address),
    ];
    if let Err(refused) = spend(store, now, refusing).await? {
        return Ok(Err(refused));
    }
    let slowed = store.count_event(&account_key(email), now, end).await? > PER_EMAIL;
    Ok(Ok(Admitted {
        device_budget: None,
        delay: slowed.then_some(SLOW_DOWN),
    }))
}

/// Counts one event against each budget `(key, window end, limit, tag)` in order, stopping at
/// the first one over its limit: `Err` with its tag. A refused event does not spend the budgets
/// after the one that refused it.
pub(crate) async fn spend<T>(
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

/// After a successful sign-in: forgets this email's failures from this address (or this known
/// device) and takes the attempt back from the shared budgets it was counted against (failures
/// from elsewhere still count).
pub(crate) async fn succeeded(
    store: &dyn Store,
    email: &str,
    addr: ClientAddr,
    admitted: &Admitted,
) -> StoreResult<()> {
    if let Some(key) = &admitted.device_budget {
        return store.reset_counter(key).await;
    }
    store.reset_counter(&pair_key(email, addr)).await?;
    store.uncount_event(&address_key(addr)).await?;
    store.uncount_event(&account_key(email)).await
}

/// After a successful sign-in in the browser whose device cookie is `device`: it is a known
/// device for `email` for [`DEVICE_TTL`] from `now`.
pub(crate) async fn remember(
    store: &dyn Store,
    device: &str,
    email: &str,
    now: i64,
) -> StoreResult<()> {
    store
        .remember_device(&device_key(device, email), now + DEVICE_TTL)
        .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::store::sqlite::SqliteStore;

    fn ip(s: &str) -> ClientAddr {
        ClientAddr::of(s.parse().unwrap())
    }

    /// An attempt from a browser that is not a known device: its delay, or the refusal.
    async fn try_from(
        store: &SqliteStore,
        email: &str,
        addr: ClientAddr,
        now: i64,
    ) -> Result<Option<Duration>, Refused> {
        attempt(store, email, addr, None, now)
            .await
            .unwrap()
            .map(|a| a.delay)
    }

    #[tokio::test]
    async fn another_address_keeps_its_own_budget_for_an_email() {
        let store = SqliteStore::in_memory().await.unwrap();
        let (attacker, victim) = (ip("192.0.2.1"), ip("198.51.100.2"));
        for _ in 0..PER_EMAIL_AND_ADDRESS {
            assert_eq!(try_from(&store, "A@x.org", attacker, 100).await, Ok(None));
        }
        assert_eq!(
            try_from(&store, " a@X.org", attacker, 101).await,
            Err(Refused::EmailFromAddress)
        );
        assert_eq!(try_from(&store, "a@x.org", victim, 101).await, Ok(None));
        assert_eq!(try_from(&store, "b@x.org", attacker, 101).await, Ok(None));
        // The window ends.
        assert_eq!(try_from(&store, "a@x.org", attacker, 400).await, Ok(None));
    }

    #[tokio::test]
    async fn one_address_spraying_many_emails_is_stopped() {
        let store = SqliteStore::in_memory().await.unwrap();
        let host = ip("192.0.2.1");
        for i in 0..PER_ADDRESS {
            let email = format!("u{i}@x.org");
            assert_eq!(try_from(&store, &email, host, 100).await, Ok(None));
        }
        assert_eq!(
            try_from(&store, "fresh@x.org", host, 101).await,
            Err(Refused::Address)
        );
        // Another host is unaffected, and so is the refused email's shared budget.
        assert_eq!(
            try_from(&store, "fresh@x.org", ip("192.0.2.2"), 101).await,
            Ok(None)
        );
    }

    #[tokio::test]
    async fn guessing_from_many_addresses_slows_an_account_down_but_never_refuses_it() {
        let store = SqliteStore::in_memory().await.unwrap();
        let hosts = PER_EMAIL / PER_EMAIL_AND_ADDRESS;
        for h in 0..hosts {
            let addr = ip(&format!("10.0.0.{h}"));
            for _ in 0..PER_EMAIL_AND_ADDRESS {
                assert_eq!(try_from(&store, "a@x.org", addr, 100).await, Ok(None));
            }
            // Refused attempts of a host do not spend the email's shared budget.
            assert_eq!(
                try_from(&store, "a@x.org", addr, 100).await,
                Err(Refused::EmailFromAddress)
            );
        }
        // The shared budget is used up: from any new address, slowed down, not refused.
        for h in 0..2 * hosts {
            let addr = ip(&format!("10.0.1.{h}"));
            assert_eq!(
                try_from(&store, "a@x.org", addr, 101).await,
                Ok(Some(SLOW_DOWN))
            );
        }
        // Other accounts are not slowed down.
        assert_eq!(
            try_from(&store, "b@x.org", ip("10.0.1.1"), 101).await,
            Ok(None)
        );
        // The next window starts afresh.
        assert_eq!(
            try_from(&store, "a@x.org", ip("10.0.2.1"), 400).await,
            Ok(None)
        );
    }

    #[tokio::test]
    async fn a_known_device_has_its_own_budget_only() {
        let store = SqliteStore::in_memory().await.unwrap();
        let (laptop, stolen) = (&"L".repeat(43), &"S".repeat(43));
        remember(&store, laptop, "A@x.org", 100).await.unwrap();
        let from_device = |device: &str, email: &str, addr: &str| {
            let (store, device, email, addr) =
                (store.clone(), device.to_owned(), email.to_owned(), ip(addr));
            async move {
                attempt(&store, &email, addr, Some(&device), 101)
                    .await
                    .unwrap()
            }
        };
        // An attacker uses up every shared budget, here at the person's own address.
        let home = "198.51.100.2";
        for h in 0..(PER_EMAIL / PER_EMAIL_AND_ADDRESS) {
            for _ in 0..PER_EMAIL_AND_ADDRESS {
                let addr = ip(&format!("10.0.0.{h}"));
                try_from(&store, "a@x.org", addr, 101).await.unwrap();
            }
        }
        for i in 0..PER_ADDRESS {
            try_from(&store, &format!("u{i}@x.org"), ip(home), 101)
                .await
                .unwrap();
        }
        assert_eq!(
            try_from(&store, "a@x.org", ip(home), 101).await,
            Err(Refused::Address)
        );
        // The person's laptop is let in at once, from there and from anywhere.
        for addr in [home, "10.0.0.1", "203.0.113.9"] {
            let admitted = from_device(laptop, "a@x.org", addr).await.unwrap();
            assert_eq!(admitted.delay, None);
            succeeded(&store, "a@x.org", ip(addr), &admitted)
                .await
                .unwrap();
        }
        // A cookie that was never signed in with, or known for another account, is no device.
        assert_eq!(
            from_device(stolen, "a@x.org", "203.0.113.9").await,
            Ok(Admitted {
                device_budget: None,
                delay: Some(SLOW_DOWN)
            })
        );
        assert_eq!(
            from_device(laptop, "b@x.org", home).await,
            Err(Refused::Address)
        );
        // The device's own budget: five failures, then refused, whatever the address.
        for _ in 0..PER_KNOWN_DEVICE {
            assert!(from_device(laptop, "a@x.org", "203.0.113.9").await.is_ok());
        }
        assert_eq!(
            from_device(laptop, "a@x.org", "203.0.113.10").await,
            Err(Refused::KnownDevice)
        );
        // Known until DEVICE_TTL after the sign-in.
        assert!(
            store
                .is_known_device(&device_key(laptop, "a@x.org"), 100 + DEVICE_TTL - 1)
                .await
                .unwrap()
        );
        assert!(
            !store
                .is_known_device(&device_key(laptop, "a@x.org"), 100 + DEVICE_TTL)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn success_clears_only_its_own_pair_and_frees_its_shared_attempt() {
        let store = SqliteStore::in_memory().await.unwrap();
        let (here, there) = (ip("192.0.2.1"), ip("192.0.2.2"));
        for _ in 0..PER_EMAIL_AND_ADDRESS {
            assert_eq!(try_from(&store, "a@x.org", here, 100).await, Ok(None));
            assert_eq!(try_from(&store, "a@x.org", there, 100).await, Ok(None));
        }
        let admitted = Admitted {
            device_budget: None,
            delay: None,
        };
        succeeded(&store, "a@x.org", here, &admitted).await.unwrap();
        assert_eq!(try_from(&store, "a@x.org", here, 101).await, Ok(None));
        assert_eq!(
            try_from(&store, "a@x.org", there, 101).await,
            Err(Refused::EmailFromAddress)
        );
        // Successful sign-ins from one address (a NAT, a proxy) do not use up its budget.
        let nat = ip("203.0.113.9");
        for i in 0..2 * PER_ADDRESS {
            let email = format!("u{i}@x.org");
            assert_eq!(try_from(&store, &email, nat, 102).await, Ok(None));
            succeeded(&store, &email, nat, &admitted).await.unwrap();
        }
        assert_eq!(try_from(&store, "z@x.org", nat, 103).await, Ok(None));
    }
}

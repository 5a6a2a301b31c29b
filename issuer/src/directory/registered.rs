//! Dynamically registered clients (RFC 7591; the endpoint is `crate::endpoints::register`):
//! their ID prefix, the registration settings and budgets, and the client a registration row
//! stands for.
//!
//! Registrations are rate-limited by two budgets, counted in the store (so replicas sharing a
//! store share them) in fixed clock windows: per client address per hour (`--dcr-rate-per-address`,
//! the address as the sign-in throttle counts it, see [`ClientAddr`]) and for all callers together
//! per minute (`--dcr-rate`). A registration refused by the per-address budget is not counted
//! against the shared one, so one client cannot use up everybody's registrations.

use crate::directory::client_addr::ClientAddr;
use crate::directory::clients::{Client, Source};
use crate::store::{RegisteredClient, SecretHash, Store};

/// Prefix of every dynamically registered client ID. No ConnectedApp may have a client ID with
/// it (`api::claims`), so a registered client and a ConnectedApp never share an ID.
pub(crate) const ID_PREFIX: &str = api::claims::DCR_CLIENT_ID_PREFIX;

/// DCR settings.
#[derive(Debug)]
pub(crate) struct DcrSettings {
    /// Scopes registered clients may use.
    pub scopes: Vec<String>,
    per_minute: u32,
    per_address_per_hour: u32,
    idle_expiry: u64,
}

impl DcrSettings {
    /// New settings: registrations per minute from all callers, and per hour from one client
    /// address; a client that obtains no token for `idle_expiry` seconds expires.
    pub(crate) fn new(
        scopes: Vec<String>,
        per_minute: u32,
        per_address_per_hour: u32,
        idle_expiry: u64,
    ) -> Self {
        Self {
            scopes,
            per_minute,
            per_address_per_hour,
            idle_expiry,
        }
    }

    /// Clients last used before this time (at `now`) have expired. `last_used` is written at
    /// most once per [`crate::store::CLIENT_TOUCH_SECS`], so that much is allowed for.
    pub(crate) fn used_since(&self, now: i64) -> i64 {
        now.saturating_sub(i64::try_from(self.idle_expiry).unwrap_or(i64::MAX))
            .saturating_sub(crate::store::CLIENT_TOUCH_SECS)
    }

    /// Counts a registration from `addr` against the per-address budget of the current clock
    /// hour and then the shared one of the current clock minute; `Err` with the seconds until
    /// the window of the budget that refused it ends.
    pub(crate) async fn admit(
        &self,
        store: &dyn Store,
        addr: ClientAddr,
        now: i64,
    ) -> crate::store::Result<Result<(), u64>> {
        let budget = |key: SecretHash, window: i64, limit: u32| {
            let end = (now.div_euclid(window) + 1) * window;
            (key, end, u64::from(limit), end.abs_diff(now))
        };
        let per_address = format!("keyway registrations per address\n{}", addr.0);
        let budgets = [
            budget(
                SecretHash::of(&per_address),
                3600,
                self.per_address_per_hour,
            ),
            budget(
                SecretHash::of("keyway registrations per minute"),
                60,
                self.per_minute,
            ),
        ];
        crate::directory::throttle::spend(store, now, budgets).await
    }
}

/// The client of a registration row.
pub(crate) fn client_from_row(row: &RegisteredClient) -> Option<Client> {
    let m = &row.metadata;
    let strings = |k: &str| -> Vec<String> {
        m.get(k)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let grants = strings("grant_types");
    Some(Client {
        id: row.client_id.clone(),
        name: m.get("client_name")?.as_str()?.to_string(),
        description: None,
        logo_uri: m
            .get("logo_uri")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        public: true,
        third_party: true,
        redirect_uris: strings("redirect_uris"),
        post_logout_redirect_uris: Vec::new(),
        authorization_code: grants.iter().any(|g| g == "authorization_code"),
        refresh_token: grants.iter().any(|g| g == "refresh_token"),
        client_credentials: false,
        scopes: crate::scope::parse(m.get("scope")?.as_str()?)?,
        resource: None,
        access: Default::default(),
        lifetimes: None,
        secrets: Vec::new(),
        source: Source::Dynamic,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> ClientAddr {
        #![allow(clippy::unwrap_used)]
        ClientAddr::of(s.parse().unwrap())
    }

    #[tokio::test]
    async fn rate_limit_per_minute() {
        #![allow(clippy::unwrap_used)]
        let store = crate::store::sqlite::SqliteStore::in_memory()
            .await
            .unwrap();
        let d = DcrSettings::new(vec![], 2, 100, 86400);
        let a = addr("192.0.2.1");
        assert_eq!(d.admit(&store, a, 60).await.unwrap(), Ok(()));
        assert_eq!(d.admit(&store, a, 119).await.unwrap(), Ok(()));
        assert_eq!(
            d.admit(&store, addr("192.0.2.2"), 119).await.unwrap(),
            Err(1)
        );
        assert_eq!(d.admit(&store, a, 120).await.unwrap(), Ok(()));
        assert_eq!(d.admit(&store, a, 121).await.unwrap(), Ok(()));
        assert_eq!(d.admit(&store, a, 130).await.unwrap(), Err(50));
    }

    #[tokio::test]
    async fn one_address_cannot_use_up_the_shared_budget() {
        #![allow(clippy::unwrap_used)]
        let store = crate::store::sqlite::SqliteStore::in_memory()
            .await
            .unwrap();
        let d = DcrSettings::new(vec![], 3, 2, 86400);
        let (greedy, other) = (addr("2001:db8:1:2::1"), addr("198.51.100.7"));
        assert_eq!(d.admit(&store, greedy, 3600).await.unwrap(), Ok(()));
        assert_eq!(d.admit(&store, greedy, 3601).await.unwrap(), Ok(()));
        // Another host in the same /64 is the same client address.
        let neighbour = addr("2001:db8:1:2:ffff::9");
        for now in [3602, 3603, 3604] {
            assert_eq!(
                d.admit(&store, neighbour, now).await.unwrap(),
                Err(7200 - now.unsigned_abs())
            );
        }
        // Its refusals did not spend the shared budget: another address still registers.
        assert_eq!(d.admit(&store, other, 3605).await.unwrap(), Ok(()));
        assert_eq!(d.admit(&store, greedy, 7200).await.unwrap(), Ok(()));
    }
}

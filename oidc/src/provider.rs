//! A provider as a relying party keeps it: its metadata, and its keys, swapped whole when they
//! are fetched again ([`Client::refetch_keys`](crate::Client::refetch_keys) when a token names an
//! unknown `kid`, [`Client::refresh_keys`](crate::Client::refresh_keys) on a schedule).

use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::discovery::Metadata;
use crate::jwks::KeySet;

/// A loaded provider: its metadata and its keys.
#[derive(Debug)]
pub struct Provider {
    /// Metadata.
    pub metadata: Metadata,
    /// Keys, swapped on refetch.
    keys: RwLock<Arc<KeySet>>,
    /// When the keys were last fetched.
    fetched: RwLock<Instant>,
    /// Serialises refetches.
    pub(crate) refetch: tokio::sync::Mutex<()>,
}

impl Provider {
    /// A provider with `metadata` and `keys` fetched just now.
    pub fn new(metadata: Metadata, keys: KeySet) -> Self {
        Self {
            metadata,
            keys: RwLock::new(Arc::new(keys)),
            fetched: RwLock::new(Instant::now()),
            refetch: tokio::sync::Mutex::new(()),
        }
    }

    /// The current keys.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .map(|k| k.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub(crate) fn set_keys(&self, keys: KeySet) {
        match self.keys.write() {
            Ok(mut k) => *k = Arc::new(keys),
            Err(p) => *p.into_inner() = Arc::new(keys),
        }
        match self.fetched.write() {
            Ok(mut t) => *t = Instant::now(),
            Err(p) => *p.into_inner() = Instant::now(),
        }
    }

    /// Counts a failed fetch as a fetch, so that a broken provider is not asked again at once.
    pub(crate) fn mark_fetched(&self) {
        match self.fetched.write() {
            Ok(mut t) => *t = Instant::now(),
            Err(p) => *p.into_inner() = Instant::now(),
        }
    }

    pub(crate) fn fetched_at(&self) -> Instant {
        self.fetched
            .read()
            .map(|t| *t)
            .unwrap_or_else(|p| *p.into_inner())
    }
}

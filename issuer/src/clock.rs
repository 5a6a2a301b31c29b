//! The issuer's clock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

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

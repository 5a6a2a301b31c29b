//! Time arithmetic of plans: the API stores times with second precision, and durations saturate
//! instead of overflowing.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Truncates `t` to whole seconds (the API stores times with second precision).
pub(super) fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// `t + d`, at most [`Timestamp::MAX`].
pub(super) fn add(t: Timestamp, d: Duration) -> Timestamp {
    let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// The time from `now` until `t`, zero when `t` has passed.
pub(super) fn until(now: Timestamp, t: Timestamp) -> Duration {
    let d = t.duration_since(now);
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

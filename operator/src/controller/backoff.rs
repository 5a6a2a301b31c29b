//! How long the controller waits after a failure: a failed reconcile of an app ([`error_policy`],
//! per app) and a watch error ([`WatchBackoff`], all watches together).

use std::sync::Arc;
use std::time::Duration;

use api::ConnectedApp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use tracing::warn;

use crate::context::Context;
use crate::error::Error;

/// Backoff after a failed reconcile: 1s doubling per consecutive failure of the same app, at most
/// 5 minutes. Counted by error kind in the metrics.
pub(super) fn error_policy(app: Arc<ConnectedApp>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.count_failure(ObjectRef::from_obj(app.as_ref()));
    let delay = backoff(failures);
    warn!(error = %error, kind = error.kind(), failures, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The delay after `failures` consecutive failures.
pub(crate) fn backoff(failures: u32) -> Duration {
    let secs = 1u64 << failures.saturating_sub(1).min(9);
    Duration::from_secs(secs.min(300))
}

/// How long the controller's watches pause after a watch error: 800 ms, doubling, at most
/// [`WATCH_BACKOFF_MAX`]; back to 800 ms after any event.
///
/// kube-runtime pauses all of a controller's watches together after an error of any of them,
/// by default up to 30 s per error. Its four watches each fail once or twice after a restart
/// of the API server (connection refused while it is down, 403 until its authorizer has loaded
/// the RBAC rules, 410 Gone for the resourceVersion they resume from), so they stayed deaf to
/// every change for minutes (tests/controlplane, scenario 4); capped at 2 s, they relist within
/// seconds, and a persistent error costs the API server one request per 2 s.
#[derive(Clone, Debug, Default)]
pub(super) struct WatchBackoff {
    next: Option<Duration>,
}

/// The longest pause of [`WatchBackoff`].
const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(2);

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.next.unwrap_or(Duration::from_millis(800));
        self.next = Some((now * 2).min(WATCH_BACKOFF_MAX));
        Some(now)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn watch_errors_pause_the_watches_for_at_most_two_seconds() {
        use kube::runtime::utils::Backoff as _;
        let mut backoff = super::WatchBackoff::default();
        let pauses: Vec<u128> = backoff.by_ref().take(5).map(|d| d.as_millis()).collect();
        assert_eq!(pauses, [800, 1600, 2000, 2000, 2000]);
        assert_eq!(super::WATCH_BACKOFF_MAX, Duration::from_secs(2));
        backoff.reset();
        assert_eq!(backoff.next(), Some(Duration::from_millis(800)));
    }
}

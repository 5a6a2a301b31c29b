//! How the server behaves: bookmark interval, watch history, default watch timeout.

use std::time::Duration;

/// How the server behaves; see [`crate::FakeApiServer::start_with`].
#[derive(Debug, Clone)]
pub struct Config {
    /// How often an idle watch with `allowWatchBookmarks=true` gets a `BOOKMARK` (the real
    /// server sends one about every minute; tests want it sooner).
    pub bookmark_interval: Duration,
    /// How many watch events are retained; resuming from an older resourceVersion is 410 Gone.
    pub history_limit: usize,
    /// The default watch timeout when a request gives no `timeoutSeconds`.
    pub default_watch_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bookmark_interval: Duration::from_secs(5),
            history_limit: 100_000,
            default_watch_timeout: Duration::from_secs(1800),
        }
    }
}

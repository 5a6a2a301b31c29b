//! The shutdown signal of long-running commands.

use std::future::Future;

/// Completes on SIGTERM or Ctrl-C (SIGINT).
///
/// Called inside a Tokio runtime, the signals are watched from the call on, so a signal that
/// arrives before the future is first polled still completes it. Where a signal cannot be
/// watched (no Unix signals), Ctrl-C alone completes it.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let watched = tokio::runtime::Handle::try_current().ok().and_then(|_| {
        use tokio::signal::unix::{SignalKind, signal};
        Some((
            signal(SignalKind::terminate()).ok()?,
            signal(SignalKind::interrupt()).ok()?,
        ))
    });
    async move {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = watched {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    fn send(signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[tokio::test]
    async fn completes_on_sigterm_and_on_sigint_and_not_before() {
        let waited = tokio::time::timeout(Duration::from_millis(100), super::signal()).await;
        assert!(waited.is_err(), "completed without a signal");

        for name in ["-TERM", "-INT"] {
            let shutdown = super::signal();
            send(name);
            tokio::time::timeout(Duration::from_secs(10), shutdown)
                .await
                .unwrap_or_else(|_| panic!("{name} did not complete the shutdown signal"));
        }
    }
}

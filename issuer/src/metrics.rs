//! Prometheus metrics (`keyway_issuer_*`). Labels are routes, grant types and outcomes only:
//! never tokens, codes, client secrets or people.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of HTTP request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    /// The matched route (e.g. `/token`), or `unmatched`.
    pub route: String,
    /// HTTP status code.
    pub status: u16,
}

/// Labels of token metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GrantLabels {
    /// Grant type.
    pub grant: &'static str,
    /// `issued` or an OAuth error code.
    pub outcome: &'static str,
}

/// The issuer's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    /// Requests by route and status.
    pub requests: Family<RouteLabels, Counter<u64, AtomicU64>>,
    /// Latency by route.
    pub latency: Family<RouteLabels, Histogram>,
    /// Token endpoint outcomes by grant.
    pub tokens: Family<GrantLabels, Counter<u64, AtomicU64>>,
    /// Sign-ins by outcome.
    pub logins: Family<GrantLabels, Counter<u64, AtomicU64>>,
    /// Failed updates of the signing keys (unreadable directory, malformed key file).
    pub key_reload_failures: Counter<u64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keyway_issuer");
        let requests = Family::<RouteLabels, Counter<u64, AtomicU64>>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.5, 12))
        });
        let tokens = Family::<GrantLabels, Counter<u64, AtomicU64>>::default();
        let logins = Family::<GrantLabels, Counter<u64, AtomicU64>>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route and status",
            latency.clone(),
        );
        registry.register(
            "token_requests",
            "Token endpoint requests by grant type and outcome",
            tokens.clone(),
        );
        registry.register(
            "sign_ins",
            "Sign-in attempts by identity source and outcome",
            logins.clone(),
        );
        let key_reload_failures = Counter::<u64, AtomicU64>::default();
        registry.register(
            "signing_key_update_failures",
            "Signing-key updates that failed and left the last good set in force",
            key_reload_failures.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            tokens,
            logins,
            key_reload_failures,
        }
    }
}

impl Metrics {
    /// Counts a sign-in attempt by identity source (`static`, `upstream`) and outcome.
    pub(crate) fn login(&self, grant: &'static str, outcome: &'static str) {
        self.logins
            .get_or_create(&GrantLabels { grant, outcome })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

//! Prometheus metrics (`keyway_proxy_*`). Labels are fixed enums: never tokens, cookies, paths or
//! users.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// How a request ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum Outcome {
    /// Authenticated and forwarded.
    allowed,
    /// Public path, forwarded without authentication.
    public,
    /// CORS preflight forwarded without authentication (`--skip-auth-preflight`).
    preflight,
    /// No credentials: 401.
    unauthenticated,
    /// Bad bearer token: 401.
    invalid_token,
    /// Policy refused: 403.
    forbidden,
    /// Missing scope: 403.
    insufficient_scope,
    /// Sent to sign in.
    login_redirect,
    /// Sign-in callback completed.
    callback,
    /// Sign-in callback refused.
    callback_error,
    /// Signed out.
    sign_out,
    /// Protected resource metadata served.
    metadata,
    /// Malformed request: 400.
    bad_request,
    /// The tool failed or timed out.
    upstream_error,
    /// Issuer not loaded yet: 503.
    not_ready,
}

impl Outcome {
    /// The outcome's name (as in the metric label and the access log).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::allowed => "allowed",
            Outcome::public => "public",
            Outcome::preflight => "preflight",
            Outcome::unauthenticated => "unauthenticated",
            Outcome::invalid_token => "invalid_token",
            Outcome::forbidden => "forbidden",
            Outcome::insufficient_scope => "insufficient_scope",
            Outcome::login_redirect => "login_redirect",
            Outcome::callback => "callback",
            Outcome::callback_error => "callback_error",
            Outcome::sign_out => "sign_out",
            Outcome::metadata => "metadata",
            Outcome::bad_request => "bad_request",
            Outcome::upstream_error => "upstream_error",
            Outcome::not_ready => "not_ready",
        }
    }
}

/// Label set for per-outcome metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabel {
    /// The outcome.
    pub(crate) outcome: Outcome,
}

/// Result label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum Result {
    /// Succeeded.
    ok,
    /// Failed.
    error,
}

/// Label set for results.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabel {
    /// The result.
    pub(crate) result: Result,
}

/// All metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// Requests by outcome.
    pub(crate) requests: Family<OutcomeLabel, Counter>,
    /// Latency until response headers (seconds).
    pub(crate) latency: Histogram,
    /// Bearer token cache hits.
    pub(crate) cache_hits: Counter,
    /// Bearer token cache misses (signature verified).
    pub(crate) cache_misses: Counter,
    /// JWKS fetches by result.
    pub(crate) jwks_refreshes: Family<ResultLabel, Counter>,
    /// Session refreshes by result.
    pub(crate) session_refreshes: Family<ResultLabel, Counter>,
    /// Refresh-token revocations at sign-out by result.
    pub(crate) token_revocations: Family<ResultLabel, Counter>,
    /// Configuration reloads by result.
    pub(crate) config_reloads: Family<ResultLabel, Counter>,
    /// Cached tokens.
    pub(crate) cached_tokens: Gauge,
    /// 1 when ready.
    pub(crate) ready: Gauge,
    allowed: Counter,
    public: Counter,
    registry: Registry,
}

impl Metrics {
    /// Registers everything.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("keyway_proxy");
        let requests = Family::<OutcomeLabel, Counter>::default();
        let latency = Histogram::new([
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0,
        ]);
        let cache_hits = Counter::default();
        let cache_misses = Counter::default();
        let jwks_refreshes = Family::<ResultLabel, Counter>::default();
        let session_refreshes = Family::<ResultLabel, Counter>::default();
        let token_revocations = Family::<ResultLabel, Counter>::default();
        let config_reloads = Family::<ResultLabel, Counter>::default();
        let cached_tokens = Gauge::default();
        let ready = Gauge::default();
        registry.register("requests", "Requests by outcome", requests.clone());
        registry.register(
            "request_duration_seconds",
            "Time from request to response headers",
            latency.clone(),
        );
        registry.register(
            "token_cache_hits",
            "Bearer tokens found in the cache",
            cache_hits.clone(),
        );
        registry.register(
            "token_cache_misses",
            "Bearer tokens verified by signature",
            cache_misses.clone(),
        );
        registry.register(
            "jwks_refreshes",
            "JWKS fetches by result",
            jwks_refreshes.clone(),
        );
        registry.register(
            "session_refreshes",
            "Browser session token refreshes by result",
            session_refreshes.clone(),
        );
        registry.register(
            "token_revocations",
            "Refresh-token revocations at sign-out (RFC 7009) by result",
            token_revocations.clone(),
        );
        registry.register(
            "config_reloads",
            "Reloads of the mounted configuration by result",
            config_reloads.clone(),
        );
        registry.register(
            "token_cache_entries",
            "Bearer tokens in the cache",
            cached_tokens.clone(),
        );
        registry.register(
            "ready",
            "1 once issuer metadata and keys are loaded",
            ready.clone(),
        );
        let allowed = requests
            .get_or_create(&OutcomeLabel {
                outcome: Outcome::allowed,
            })
            .clone();
        let public = requests
            .get_or_create(&OutcomeLabel {
                outcome: Outcome::public,
            })
            .clone();
        Metrics {
            allowed,
            public,
            requests,
            latency,
            cache_hits,
            cache_misses,
            jwks_refreshes,
            session_refreshes,
            token_revocations,
            config_reloads,
            cached_tokens,
            ready,
            registry,
        }
    }

    /// Counts one request.
    pub(crate) fn request(&self, outcome: Outcome, seconds: f64) {
        // The two hot outcomes skip the family's lock and hash.
        match outcome {
            Outcome::allowed => self.allowed.inc(),
            Outcome::public => self.public.inc(),
            _ => self.requests.get_or_create(&OutcomeLabel { outcome }).inc(),
        };
        self.latency.observe(seconds);
    }

    /// Counts a result.
    pub(crate) fn result(family: &Family<ResultLabel, Counter>, ok: bool) {
        let result = if ok { Result::ok } else { Result::error };
        family.get_or_create(&ResultLabel { result }).inc();
    }

    /// The text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    #[test]
    fn outcome_names_are_the_label_values() {
        for o in [
            Outcome::allowed,
            Outcome::public,
            Outcome::preflight,
            Outcome::unauthenticated,
            Outcome::invalid_token,
            Outcome::forbidden,
            Outcome::insufficient_scope,
            Outcome::login_redirect,
            Outcome::callback,
            Outcome::callback_error,
            Outcome::sign_out,
            Outcome::metadata,
            Outcome::bad_request,
            Outcome::upstream_error,
            Outcome::not_ready,
        ] {
            assert_eq!(o.as_str(), format!("{o:?}"));
        }
    }
}

//! Prometheus metrics, prefixed `keyway_operator_`. Labels carry kinds, never names or secrets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::Error;

type Labels = [(&'static str, &'static str); 1];

/// Content type of the metrics endpoints (what [`encode_registry`] writes).
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `registry` in the text exposition format (empty if encoding fails).
pub(crate) fn encode_registry(registry: &Registry) -> String {
    let mut out = String::new();
    if encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

/// A write the operator made to the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    /// Secret created.
    SecretCreate,
    /// Secret replaced.
    SecretReplace,
    /// Secret deleted (app deleted).
    SecretDelete,
    /// Status applied.
    Status,
    /// Event recorded.
    Event,
    /// Finalizer added or removed.
    Finalizer,
    /// The issuer's signing-key Secret created.
    SigningKeysCreate,
    /// The issuer's signing-key Secret updated (a key added or retired).
    SigningKeysReplace,
}

impl Write {
    fn label(self) -> &'static str {
        match self {
            Self::SecretCreate => "secret_create",
            Self::SecretReplace => "secret_replace",
            Self::SecretDelete => "secret_delete",
            Self::Status => "status",
            Self::Event => "event",
            Self::Finalizer => "finalizer",
            Self::SigningKeysCreate => "signing_keys_create",
            Self::SigningKeysReplace => "signing_keys_replace",
        }
    }
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    duration: Histogram,
    writes: Family<Labels, Counter>,
    leader: Gauge,
    signing_keys: Family<Labels, Counter>,
    total_writes: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("keyway_operator");
        let reconciles = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let writes = Family::<Labels, Counter>::default();
        let leader = Gauge::default();
        let signing_keys = Family::<Labels, Counter>::default();
        registry.register(
            "signing_key_syncs",
            "Passes over the issuer's signing-key Secret, by result (unchanged, created, updated, \
             conflict, foreign, invalid, error)",
            signing_keys.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles of ConnectedApps, by result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by error kind",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles",
            duration.clone(),
        );
        registry.register(
            "writes",
            "Writes to the Kubernetes API, by kind",
            writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            duration,
            writes,
            leader,
            signing_keys,
            total_writes: AtomicU64::new(0),
        }
    }

    /// Records a finished reconcile.
    pub(crate) fn reconciled(&self, elapsed: Duration, error: Option<&Error>) {
        self.duration.observe(elapsed.as_secs_f64());
        match error {
            None => {
                self.reconciles.get_or_create(&[("result", "ok")]).inc();
            }
            Some(e) => {
                self.reconciles.get_or_create(&[("result", "error")]).inc();
                self.errors.get_or_create(&[("kind", e.kind())]).inc();
            }
        }
    }

    /// Records a write.
    pub(crate) fn write(&self, kind: Write) {
        self.writes.get_or_create(&[("kind", kind.label())]).inc();
        self.total_writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Every write so far (for benchmarks and tests: a settled resync adds none).
    pub fn total_writes(&self) -> u64 {
        self.total_writes.load(Ordering::Relaxed)
    }

    /// Successful reconciles so far.
    pub fn successful_reconciles(&self) -> u64 {
        self.reconciles.get_or_create(&[("result", "ok")]).get()
    }

    /// Counts a pass of the signing-key manager by result.
    pub(crate) fn signing_keys(&self, result: &'static str) {
        self.signing_keys.get_or_create(&[("result", result)]).inc();
    }

    /// Passes of the signing-key manager with `result` so far.
    pub fn signing_key_syncs(&self, result: &'static str) -> u64 {
        self.signing_keys.get_or_create(&[("result", result)]).get()
    }

    /// Sets the leader gauge.
    pub(crate) fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        encode_registry(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_writes_and_reconciles() {
        let m = Metrics::new();
        m.write(Write::Status);
        m.write(Write::SecretCreate);
        m.reconciled(Duration::from_millis(3), None);
        m.reconciled(Duration::from_millis(3), Some(&Error::MissingNamespace));
        assert_eq!(m.total_writes(), 2);
        assert_eq!(m.successful_reconciles(), 1);
        let text = m.encode();
        assert!(
            text.contains("keyway_operator_writes_total{kind=\"status\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("keyway_operator_reconcile_errors_total{kind=\"missing_namespace\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("keyway_operator_reconcile_duration_seconds_count 2"),
            "{text}"
        );
    }
}

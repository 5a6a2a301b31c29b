//! Leader election with a `coordination.k8s.io/v1` Lease, so that several replicas are safe: only
//! the holder of the lease runs the controller.
//!
//! The algorithm follows client-go's `leaderelection` package:
//! - a candidate reads the Lease; it may take it when it is absent, released (no holder), or
//!   expired. Expiry is judged by the candidate's own monotonic clock: the lease counts as
//!   expired when its record has not changed for `leaseDurationSeconds` since this candidate
//!   first saw that record, so clock skew between replicas does not matter;
//! - every write carries the observed `resourceVersion` (or is a create), so two candidates
//!   cannot both win: the loser gets 409 Conflict;
//! - the leader renews every `retry_period`; when it has not renewed successfully for
//!   `renew_deadline` (shorter than the lease duration) it stops leading before anyone else can
//!   take over;
//! - on shutdown the leader releases the lease (empty holder) so that a successor need not wait.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{Error, Result};

/// Leader election settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (e.g. the pod name); must be unique among replicas.
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry_period: Duration,
}

/// What a candidate last saw of the Lease, and when (monotonic).
struct Observed {
    spec: LeaseSpec,
    at: Instant,
}

/// A candidate for leadership.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Option<Observed>,
}

/// The outcome of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// This candidate holds the lease (acquired or renewed).
    Leading,
    /// Another candidate holds a valid lease, or won a race.
    Following,
}

impl LeaderElector {
    /// A candidate using `client`.
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    fn fresh_spec(&self, now: Timestamp, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let me = &self.config.identity;
        let renewing = previous.is_some_and(|p| p.holder_identity.as_ref() == Some(me));
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(me.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: if renewing {
                previous.and_then(|p| p.acquire_time.clone())
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if renewing || previous.is_none() {
                transitions
            } else {
                transitions + 1
            }),
            ..LeaseSpec::default()
        }
    }

    /// One attempt to acquire or renew the lease.
    pub async fn try_acquire_or_renew(&mut self) -> Result<Attempt> {
        let now = Timestamp::now();
        let pp = PostParams::default();
        let Some(current) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(Error::Kube)?
        else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.fresh_spec(now, None)),
            };
            return match self.api.create(&pp, &lease).await {
                Ok(created) => {
                    self.remember(created.spec.unwrap_or_default());
                    Ok(Attempt::Leading)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Following),
                Err(e) => Err(Error::Kube(e)),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        if self.observed.as_ref().is_none_or(|o| o.spec != spec) {
            self.remember(spec.clone());
        }
        let holder = spec.holder_identity.as_deref().unwrap_or("");
        let mine = holder == self.config.identity;
        if !mine && !holder.is_empty() && !self.expired(&spec) {
            return Ok(Attempt::Following);
        }
        let mut lease = current;
        lease.spec = Some(self.fresh_spec(now, Some(&spec)));
        // `lease.metadata.resourceVersion` is the observed one: a concurrent write makes this 409.
        match self.api.replace(&self.config.name, &pp, &lease).await {
            Ok(updated) => {
                if !mine {
                    info!(identity = %self.config.identity, "acquired leader lease");
                }
                self.remember(updated.spec.unwrap_or_default());
                Ok(Attempt::Leading)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Following),
            Err(e) => Err(Error::Kube(e)),
        }
    }

    fn remember(&mut self, spec: LeaseSpec) {
        self.observed = Some(Observed {
            spec,
            at: Instant::now(),
        });
    }

    fn expired(&self, spec: &LeaseSpec) -> bool {
        let duration = Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
        );
        self.observed
            .as_ref()
            .is_none_or(|o| o.at.elapsed() >= duration)
    }

    /// Gives the lease up if this candidate holds it (best effort).
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let mine = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.config.identity.as_str());
        if !mine {
            return;
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!("released leader lease"),
            Err(e) => warn!(error = %e, "could not release leader lease"),
        }
    }

    /// Waits until this candidate leads, then runs `work` (given a token that is cancelled when
    /// leadership is lost or `shutdown` is cancelled) while renewing. Returns `Ok` after a
    /// shutdown, or [`Error::LostLeadership`] when renewal failed for `renew_deadline`.
    pub async fn run<F, Fut>(
        mut self,
        shutdown: CancellationToken,
        on_leading: impl Fn(bool),
        work: F,
    ) -> Result<()>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => break,
                Ok(Attempt::Following) => {}
                Err(e) => warn!(error = %e, "leader election attempt failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
        on_leading(true);
        let stop = shutdown.child_token();
        let work = work(stop.clone());
        tokio::pin!(work);
        let mut last_renew = Instant::now();
        let outcome = loop {
            tokio::select! {
                () = &mut work => break Ok(()),
                () = tokio::time::sleep(self.config.retry_period) => {
                    if shutdown.is_cancelled() {
                        continue;
                    }
                    match self.try_acquire_or_renew().await {
                        Ok(Attempt::Leading) => last_renew = Instant::now(),
                        Ok(Attempt::Following) => {
                            warn!("another replica took the leader lease");
                            stop.cancel();
                            (&mut work).await;
                            break Err(Error::LostLeadership);
                        }
                        Err(e) => warn!(error = %e, "could not renew leader lease"),
                    }
                    if last_renew.elapsed() >= self.config.renew_deadline {
                        warn!("could not renew the leader lease in time; stopping");
                        stop.cancel();
                        (&mut work).await;
                        break Err(Error::LostLeadership);
                    }
                }
            }
        };
        on_leading(false);
        if outcome.is_ok() {
            self.release().await;
        }
        outcome
    }
}

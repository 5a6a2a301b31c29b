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
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::fence::Fence;

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
pub(crate) struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Option<Observed>,
    /// When the last successful acquisition or renewal was sent.
    renewed_at: Option<Instant>,
    /// Opened on each successful renewal until `renewed_at + renew_deadline`.
    fence: Arc<Fence>,
}

/// The outcome of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// This candidate holds the lease (acquired or renewed).
    Leading,
    /// Another candidate holds a valid lease, or won a race.
    Following,
}

impl LeaderElector {
    /// A candidate using `client` (which must not be fenced: it renews the lease), opening
    /// `fence` while it leads.
    pub(crate) fn new(client: kube::Client, config: LeaseConfig, fence: Arc<Fence>) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
            renewed_at: None,
            fence,
        }
    }

    /// Notes a successful acquisition or renewal sent at `sent`.
    fn renewed(&mut self, sent: Instant) {
        self.renewed_at = Some(sent);
        self.fence.open_until(sent + self.config.renew_deadline);
    }

    /// One attempt, given up after `limit` (the API server may not answer, and kube's client
    /// has no read timeout and retries some answers): `None` when it failed or timed out.
    async fn attempt(&mut self, limit: Duration) -> Option<Attempt> {
        match tokio::time::timeout(limit, self.try_acquire_or_renew()).await {
            Ok(Ok(attempt)) => Some(attempt),
            Ok(Err(e)) => {
                warn!(error = %e, "leader election request failed");
                None
            }
            Err(_) => {
                warn!(timeout = ?limit, "leader election request timed out");
                None
            }
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
    pub(crate) async fn try_acquire_or_renew(&mut self) -> Result<Attempt> {
        let sent = Instant::now();
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
                    info!(identity = %self.config.identity, "created and acquired leader lease");
                    self.remember(created.spec.unwrap_or_default());
                    self.renewed(sent);
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
                self.renewed(sent);
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

    /// Gives the lease up if this candidate holds it (best effort, within a retry period so
    /// that an unreachable API server does not hold up a shutdown).
    pub(crate) async fn release(&mut self) {
        let limit = self.config.retry_period;
        if tokio::time::timeout(limit, self.try_release())
            .await
            .is_err()
        {
            warn!(timeout = ?limit, "could not release leader lease in time");
        }
    }

    async fn try_release(&mut self) {
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

    /// Stands for election until `shutdown`: whenever this candidate leads it runs `work` (given
    /// a token that is cancelled when leadership is lost or `shutdown` is cancelled) while
    /// renewing. Leadership is lost when another replica took the lease or when renewal failed
    /// for `renew_deadline`; `work` has then returned before this candidate stands again, so it
    /// never runs beside another leader's. Returns after a shutdown, having released the lease.
    pub(crate) async fn run<F, Fut>(
        mut self,
        shutdown: CancellationToken,
        on_leading: impl Fn(bool),
        mut work: F,
    ) where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future<Output = ()>,
    {
        while self.acquire(&shutdown).await {
            on_leading(true);
            let stop = shutdown.child_token();
            self.lead(&shutdown, &stop, work(stop.clone())).await;
            self.fence.close();
            on_leading(false);
        }
        self.release().await;
    }

    /// Tries until this candidate leads (true) or `shutdown` is cancelled (false).
    async fn acquire(&mut self, shutdown: &CancellationToken) -> bool {
        loop {
            if shutdown.is_cancelled() {
                return false;
            }
            if self.attempt(self.config.renew_deadline).await == Some(Attempt::Leading) {
                return true;
            }
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
    }

    /// Runs `work` while renewing; returns when it ended (on shutdown) or, after closing the
    /// fence, cancelling `stop` and waiting for `work` to end, when leadership was lost: another
    /// replica took the lease, or no renewal succeeded within `renew_deadline` of the last one
    /// (each renewal is given only the time left until then).
    async fn lead(
        &mut self,
        shutdown: &CancellationToken,
        stop: &CancellationToken,
        work: impl Future<Output = ()>,
    ) {
        tokio::pin!(work);
        loop {
            let deadline =
                self.renewed_at.unwrap_or_else(Instant::now) + self.config.renew_deadline;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                warn!("could not renew the leader lease in time; stopped leading, standing again");
                break;
            }
            tokio::select! {
                () = &mut work => return,
                () = tokio::time::sleep(self.config.retry_period.min(left)) => {
                    if shutdown.is_cancelled() {
                        continue;
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        continue;
                    }
                    if self.attempt(left).await == Some(Attempt::Following) {
                        warn!("another replica took the leader lease; standing by");
                        break;
                    }
                }
            }
        }
        self.fence.close();
        stop.cancel();
        work.await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};

    const LEASE: &str =
        "/apis/coordination.k8s.io/v1/namespaces/keyway-system/leases/keyway-operator";
    const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/keyway-system/leases?";

    /// (method, path and query, status, answer (null: echo the request body), body check).
    type Step = (&'static str, &'static str, u16, Value, fn(&Value));

    fn config(identity: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: "keyway-system".into(),
            name: "keyway-operator".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    fn lease(holder: &str, duration: i32, rv: &str) -> Value {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "keyway-operator", "namespace": "keyway-system", "resourceVersion": rv},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
                     "renewTime": "2026-01-01T00:00:00.000000Z", "leaseTransitions": 2}})
    }

    /// Answers each expected (method, path) with (status, body; null echoes the request), checking
    /// the request body with `check`.
    async fn serve(
        mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
        script: Vec<Step>,
    ) {
        for (method, path, status, answer, check) in script {
            let (req, send) = handle.next_request().await.expect("request expected");
            assert_eq!(req.method().as_str(), method);
            assert_eq!(req.uri().path_and_query().unwrap().as_str(), path);
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            check(&body);
            let answer = if answer.is_null() { body } else { answer };
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap(),
            );
        }
        if let Some((req, _)) = handle.next_request().await {
            panic!("unexpected request {} {}", req.method(), req.uri());
        }
    }

    async fn attempts(identity: &str, n: usize, script: Vec<Step>) -> Vec<Attempt> {
        let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let verifier = tokio::spawn(serve(handle, script));
        let mut elector = LeaderElector::new(
            kube::Client::new(svc, "default"),
            config(identity),
            Arc::new(Fence::new()),
        );
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(elector.try_acquire_or_renew().await.unwrap());
        }
        drop(elector);
        verifier.await.unwrap();
        out
    }

    fn not_found() -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound", "code": 404})
    }
    fn conflict() -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Conflict", "code": 409})
    }

    #[tokio::test]
    async fn creates_an_absent_lease_then_renews_it() {
        let got = attempts(
            "a",
            2,
            vec![
                ("GET", LEASE, 404, not_found(), |_| {}),
                ("POST", LEASES, 201, Value::Null, |b| {
                    assert_eq!(b["spec"]["holderIdentity"], "a");
                    assert_eq!(b["spec"]["leaseDurationSeconds"], 15);
                    assert_eq!(b["spec"]["leaseTransitions"], 0);
                }),
                ("GET", LEASE, 200, lease("a", 15, "8"), |_| {}),
                (
                    "PUT",
                    "/apis/coordination.k8s.io/v1/namespaces/keyway-system/leases/keyway-operator?",
                    200,
                    Value::Null,
                    |b| {
                        assert_eq!(b["metadata"]["resourceVersion"], "8");
                        assert_eq!(b["spec"]["holderIdentity"], "a");
                        assert_eq!(
                            b["spec"]["leaseTransitions"], 2,
                            "a renewal is no transition"
                        );
                    },
                ),
            ],
        )
        .await;
        assert_eq!(got, [Attempt::Leading, Attempt::Leading]);
    }

    #[tokio::test]
    async fn follows_a_valid_lease_without_writing() {
        let got = attempts(
            "b",
            2,
            vec![
                ("GET", LEASE, 200, lease("a", 15, "8"), |_| {}),
                ("GET", LEASE, 200, lease("a", 15, "8"), |_| {}),
            ],
        )
        .await;
        assert_eq!(got, [Attempt::Following, Attempt::Following]);
    }

    #[tokio::test]
    async fn takes_over_an_expired_lease_with_optimistic_concurrency() {
        // A record unchanged for its whole duration (0s here) is expired.
        let got = attempts(
            "b",
            2,
            vec![
                ("GET", LEASE, 200, lease("a", 0, "8"), |_| {}),
                (
                    "PUT",
                    "/apis/coordination.k8s.io/v1/namespaces/keyway-system/leases/keyway-operator?",
                    409,
                    conflict(),
                    |b| {
                        assert_eq!(b["metadata"]["resourceVersion"], "8");
                        assert_eq!(b["spec"]["holderIdentity"], "b");
                        assert_eq!(b["spec"]["leaseTransitions"], 3);
                    },
                ),
                ("GET", LEASE, 200, lease("a", 0, "9"), |_| {}),
                (
                    "PUT",
                    "/apis/coordination.k8s.io/v1/namespaces/keyway-system/leases/keyway-operator?",
                    200,
                    Value::Null,
                    |_| {},
                ),
            ],
        )
        .await;
        assert_eq!(got, [Attempt::Following, Attempt::Leading]);
    }

    #[tokio::test]
    async fn a_lost_create_race_is_following() {
        let got = attempts(
            "b",
            1,
            vec![
                ("GET", LEASE, 404, not_found(), |_| {}),
                ("POST", LEASES, 409, conflict(), |_| {}),
            ],
        )
        .await;
        assert_eq!(got, [Attempt::Following]);
    }

    fn server_error() -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "InternalError", "code": 500})
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_that_cannot_renew_in_time_stops_its_work_and_stands_again() {
        const PUT: &str =
            "/apis/coordination.k8s.io/v1/namespaces/keyway-system/leases/keyway-operator?";
        let mut script: Vec<Step> = vec![
            ("GET", LEASE, 404, not_found(), |_| {}),
            ("POST", LEASES, 201, Value::Null, |_| {}),
        ];
        // Renewals at 2, 4, 6 and 8 s fail; at 10 s (the renew deadline) it stops leading.
        script.extend((0..4).map(|_| -> Step { ("GET", LEASE, 500, server_error(), |_| {}) }));
        // Standing again, it finds its own lease and renews it: leading again.
        script.push(("GET", LEASE, 200, lease("a", 15, "8"), |_| {}));
        script.push(("PUT", PUT, 200, Value::Null, |b| {
            assert_eq!(b["spec"]["holderIdentity"], "a");
        }));
        // On shutdown it releases the lease.
        script.push(("GET", LEASE, 200, lease("a", 15, "9"), |_| {}));
        script.push(("PUT", PUT, 200, Value::Null, |b| {
            assert!(b["spec"]["holderIdentity"].is_null(), "released: {b}");
        }));
        let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let verifier = tokio::spawn(serve(handle, script));
        let elector = LeaderElector::new(
            kube::Client::new(svc, "default"),
            config("a"),
            Arc::new(Fence::new()),
        );
        let shutdown = CancellationToken::new();
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (on_events, work_events) = (events.clone(), events.clone());
        let start = Instant::now();
        let stopper = shutdown.clone();
        elector
            .run(
                shutdown.clone(),
                move |leading| on_events.lock().unwrap().push(format!("leading={leading}")),
                move |stop: CancellationToken| {
                    let events = work_events.clone();
                    let stopper = stopper.clone();
                    async move {
                        let round = {
                            let mut e = events.lock().unwrap();
                            e.push("work started".to_string());
                            e.iter().filter(|x| *x == "work started").count()
                        };
                        if round == 2 {
                            stopper.cancel();
                        }
                        stop.cancelled().await;
                        events
                            .lock()
                            .unwrap()
                            .push(format!("work stopped at {}s", start.elapsed().as_secs()));
                    }
                },
            )
            .await;
        verifier.await.unwrap();
        assert_eq!(
            *events.lock().unwrap(),
            [
                "leading=true",
                "work started",
                "work stopped at 10s",
                "leading=false",
                "leading=true",
                "work started",
                "work stopped at 10s",
                "leading=false",
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_without_an_answer_is_given_up_and_writes_stop_in_time() {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fence = Arc::new(Fence::new());
        let elector = LeaderElector::new(
            kube::Client::new(svc, "default"),
            config("a"),
            fence.clone(),
        );
        let api_server = tokio::spawn(async move {
            let (_, send) = handle.next_request().await.unwrap();
            send.send_response(
                Response::builder()
                    .status(404)
                    .body(Body::from(serde_json::to_vec(&not_found()).unwrap()))
                    .unwrap(),
            );
            let (req, send) = handle.next_request().await.unwrap();
            let body = req.into_body().collect_bytes().await.unwrap();
            send.send_response(
                Response::builder()
                    .status(201)
                    .body(Body::from(body.to_vec()))
                    .unwrap(),
            );
            // Every later request (the renewals, the release) is taken and never answered.
            let mut hung = Vec::new();
            while let Some(request) = handle.next_request().await {
                hung.push(request);
            }
        });
        let shutdown = CancellationToken::new();
        let stopped = Arc::new(std::sync::Mutex::new(None));
        let (start, seen_fence, stopper, record) = (
            Instant::now(),
            fence.clone(),
            shutdown.clone(),
            stopped.clone(),
        );
        let run = elector.run(
            shutdown.clone(),
            |_| {},
            move |stop: CancellationToken| {
                let (fence, stopper, record) =
                    (seen_fence.clone(), stopper.clone(), record.clone());
                async move {
                    assert!(fence.is_open(), "the leader may write");
                    stop.cancelled().await;
                    assert!(
                        !fence.is_open(),
                        "writes stop before the work is told to stop"
                    );
                    *record.lock().unwrap() = Some(start.elapsed());
                    stopper.cancel();
                }
            },
        );
        tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("a request without an answer must not hold the elector");
        assert_eq!(
            *stopped.lock().unwrap(),
            Some(Duration::from_secs(10)),
            "work stops at the renew deadline, before the 15 s lease could pass to another replica"
        );
        api_server.abort();
    }
}

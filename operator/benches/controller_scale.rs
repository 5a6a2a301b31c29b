//! Benchmark (not a timed test): the controller against the in-repo Kubernetes API test server,
//! with the generated CRD installed (schema validation and CEL rules on every write).
//!
//! 1. Cold start: N ConnectedApps (default 1,000; `KEYWAY_BENCH_APPS`) exist before the
//!    controller starts; measures the time until every app is Ready (goal: ≤ 30 s for 1,000).
//! 2. Settled resync: a fresh controller over the settled state reconciles every app again;
//!    counts the write requests the API server receives meanwhile (goal: zero).
//! 3. Periodic resync: the same, for requeues of a running controller (resync period 2 s).
//!
//! Run with `cargo bench -p operator --bench controller_scale`. Exits non-zero when a goal is
//! missed, so a script can rely on it.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its figures on stdout"
)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::ConnectedApp;
use fake_apiserver::{FakeApiServer, WriteCounts};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use operator::{ControllerConfig, Metrics, Operator};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const GOAL_COLD_START: Duration = Duration::from_secs(30);

struct Running {
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<operator::Result<()>>,
}

fn start(client: Client, resync: Duration) -> Running {
    let mut config = ControllerConfig::new("https://id.example.test");
    config.resync = resync;
    let operator = Operator::new(client, config);
    let metrics = operator.metrics();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move { operator.run(stop).await });
    Running {
        metrics,
        shutdown,
        task,
    }
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

fn app(i: usize) -> ConnectedApp {
    serde_json::from_value(json!({
        "apiVersion": "keyway.dev/v1alpha1",
        "kind": "ConnectedApp",
        "metadata": {"name": format!("app-{i:05}"), "namespace": "default"},
        "spec": {
            "displayName": format!("App {i}"),
            "redirectURIs": [format!("https://app-{i}.example.test/oauth2/callback")],
            "resource": format!("https://app-{i}.example.test"),
            "access": {"allowedGroups": ["engineering"]},
        },
    }))
    .unwrap_or_else(|e| panic!("benchmark fixture does not parse: {e}"))
}

async fn ready_count(apps: &Api<ConnectedApp>) -> usize {
    match apps.list(&ListParams::default()).await {
        Ok(list) => list.items.iter().filter(|a| a.is_ready()).count(),
        Err(_) => 0,
    }
}

fn describe(counts: &WriteCounts) -> String {
    if counts.requests.is_empty() {
        return "none".into();
    }
    counts
        .requests
        .iter()
        .map(|((verb, resource), n)| format!("{verb} {resource}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn wait_reconciles(metrics: &Metrics, at_least: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while metrics.successful_reconciles() < at_least {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let n: usize = std::env::var("KEYWAY_BENCH_APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let server = match FakeApiServer::start().await {
        Ok(server) => server,
        Err(e) => {
            println!("cannot start the test API server: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The generated CRD: every write is pruned, defaulted and validated as in a cluster.
    let crd = match operator::crdgen::crd_yaml() {
        Ok(crd) => crd,
        Err(e) => {
            println!("cannot generate the CRD: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = server.install_crd(&crd) {
        println!("cannot install the CRD: {e}");
        return ExitCode::FAILURE;
    }
    let client = match server.client() {
        Ok(client) => client,
        Err(e) => {
            println!("cannot build a client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let apps: Api<ConnectedApp> = Api::default_namespaced(client.clone());
    for i in 0..n {
        if let Err(e) = apps.create(&PostParams::default(), &app(i)).await {
            println!("cannot create app {i}: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!("controller benchmark: {n} ConnectedApps against the in-repo API test server");

    // 1. Cold start to all Ready.
    server.reset_counts();
    let started = Instant::now();
    let controller = start(client.clone(), Duration::from_secs(3600));
    let mut ready = 0;
    while started.elapsed() < Duration::from_secs(300) {
        ready = ready_count(&apps).await;
        if ready == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cold = started.elapsed();
    let cold_writes = server.write_counts();
    println!(
        "cold start: {ready}/{n} Ready in {:.2} s ({:.0} apps/s); goal ≤ {} s for 1,000",
        cold.as_secs_f64(),
        ready as f64 / cold.as_secs_f64(),
        GOAL_COLD_START.as_secs()
    );
    println!(
        "  writes during cold start: {} requests ({}), {} of which changed stored state",
        cold_writes.total_requests(),
        describe(&cold_writes),
        cold_writes.total_changes()
    );
    controller.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 2. A fresh controller over the settled state.
    server.reset_counts();
    let resync_start = Instant::now();
    let controller = start(client.clone(), Duration::from_secs(2));
    let all = wait_reconciles(&controller.metrics, n as u64, Duration::from_secs(120)).await;
    let restart_time = resync_start.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restart_writes = server.write_counts();
    println!(
        "settled resync (restart): {} reconciles in {:.2} s, {} write requests ({}); goal 0",
        controller.metrics.successful_reconciles(),
        restart_time.as_secs_f64(),
        restart_writes.total_requests(),
        describe(&restart_writes)
    );

    // 3. Periodic resyncs of the running controller.
    server.reset_counts();
    let before = controller.metrics.successful_reconciles();
    let periodic = wait_reconciles(
        &controller.metrics,
        before + n as u64,
        Duration::from_secs(120),
    )
    .await;
    let periodic_writes = server.write_counts();
    println!(
        "settled resync (periodic, every 2 s): {} reconciles, {} write requests ({}); goal 0",
        controller.metrics.successful_reconciles() - before,
        periodic_writes.total_requests(),
        describe(&periodic_writes)
    );
    controller.stop().await;

    let ok = ready == n
        && (n > 1000 || cold <= GOAL_COLD_START)
        && all
        && periodic
        && restart_writes.total_requests() == 0
        && periodic_writes.total_requests() == 0;
    println!(
        "result: {}",
        if ok { "all goals met" } else { "GOAL MISSED" }
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

//! Benchmark (not a timed test): the controller against the in-repo Kubernetes API test server,
//! with the generated CRD installed (schema validation and CEL rules on every write), or with
//! `--real` against a real kube-apiserver (the one of KUBECONFIG, normally started by
//! tests/controlplane/cluster.py; see docs/testing.md).
//!
//! 1. Cold start: N ConnectedApps (default 1,000; `KEYWAY_BENCH_APPS`) exist before the
//!    controller starts; measures the time until every app is Ready (goal: ≤ 60 s for 10,000,
//!    counted as one watch sees them) and the write requests meanwhile and in the second after
//!    (goal: at most 4 per app), and the CPU time used until all are Ready: this process's and,
//!    with `--real`, kube-apiserver's (`process_cpu_seconds_total` on its `/metrics`).
//! 2. Settled resync: a fresh controller over the settled state reconciles every app again;
//!    counts the write requests the API server receives meanwhile (goal: zero).
//! 3. Periodic resync: the same, for requeues of a running controller (resync period 2 s).
//!
//! Run with `cargo bench -p operator --bench controller_scale`, or against a real API server:
//! `.venv/bin/python tests/controlplane/cluster.py -- cargo bench -p operator --bench
//! controller_scale -- --real`. With `--real` the write requests are the API server's own count
//! (`apiserver_request_total` on its `/metrics`, less its own flow-control status writes), the apps
//! live in a new namespace `keyway-bench`, and the CRD is created when missing (without its CEL
//! rules: 1.20 has none); before creating the apps it waits until kube-controller-manager's
//! garbage collector watches ConnectedApps, as in a cluster whose CRD predates its apps.
//! Exits non-zero when a goal is missed, so a script can rely on it.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its figures on stdout"
)]

use std::collections::{BTreeMap, HashSet};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::ConnectedApp;
use fake_apiserver::FakeApiServer;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};
use operator::{ControllerConfig, Metrics, Operator};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Goal: this many apps Ready within [`GOAL_COLD_START`] of the controller's start.
const GOAL_APPS: usize = 10_000;
const GOAL_COLD_START: Duration = Duration::from_secs(60);
/// Goal: at most this many write requests per app during the cold start.
const GOAL_WRITES_PER_APP: u64 = 4;

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

fn app(i: usize, namespace: &str) -> ConnectedApp {
    serde_json::from_value(json!({
        "apiVersion": "keyway.dev/v1alpha1",
        "kind": "ConnectedApp",
        "metadata": {"name": format!("app-{i:05}"), "namespace": namespace},
        "spec": {
            "displayName": format!("App {i}"),
            "redirectURIs": [format!("https://app-{i}.example.test/oauth2/callback")],
            "resource": format!("https://app-{i}.example.test"),
            "access": {"allowedGroups": ["engineering"]},
        },
    }))
    .unwrap_or_else(|e| panic!("benchmark fixture does not parse: {e}"))
}

/// Watches the apps and reports how many are Ready after each change: the API server sends each
/// change once, where listing every app to count them would cost it (and the controller sharing
/// its CPU) a full list each time.
fn watch_ready(apps: Api<ConnectedApp>) -> tokio::sync::watch::Receiver<usize> {
    let (tx, rx) = tokio::sync::watch::channel(0);
    tokio::spawn(async move {
        let mut ready = HashSet::new();
        let events = watcher::watcher(apps, watcher::Config::default().any_semantic())
            .default_backoff()
            .applied_objects();
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            let Ok(app) = event else { continue };
            let name = app.name_any();
            if app.is_ready() {
                ready.insert(name);
            } else {
                ready.remove(&name);
            }
            if tx.send(ready.len()).is_err() {
                return;
            }
        }
    });
    rx
}

/// Write requests by (verb, resource), and how many changed stored state when the server says.
#[derive(Default)]
struct Writes {
    requests: BTreeMap<(String, String), u64>,
    changes: Option<u64>,
}

impl Writes {
    fn total(&self) -> u64 {
        self.requests.values().sum()
    }

    fn describe(&self) -> String {
        if self.requests.is_empty() {
            return "none".into();
        }
        self.requests
            .iter()
            .map(|((verb, resource), n)| format!("{verb} {resource}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where the write requests are counted.
enum Server {
    /// The in-repo test server counts them itself.
    Fake(FakeApiServer),
    /// A real kube-apiserver: the difference of its `apiserver_request_total` since `baseline`.
    Real {
        client: Client,
        baseline: BTreeMap<(String, String), u64>,
    },
}

impl Server {
    /// The CPU time a real kube-apiserver has used so far; `None` for the test server (it runs
    /// in this process) or when it cannot be read.
    async fn cpu(&self) -> Option<f64> {
        match self {
            Server::Real { client, .. } => scrape_cpu(client).await.ok(),
            Server::Fake(_) => None,
        }
    }

    async fn reset_counts(&mut self) -> Result<(), String> {
        match self {
            Server::Fake(server) => server.reset_counts(),
            Server::Real { client, baseline } => *baseline = scrape_writes(client).await?,
        }
        Ok(())
    }

    async fn write_counts(&self) -> Result<Writes, String> {
        match self {
            Server::Fake(server) => {
                let counts = server.write_counts();
                Ok(Writes {
                    changes: Some(counts.total_changes()),
                    requests: counts.requests,
                })
            }
            Server::Real { client, baseline } => {
                let mut requests = scrape_writes(client).await?;
                for (key, n) in requests.iter_mut() {
                    *n -= baseline.get(key).copied().unwrap_or(0).min(*n);
                }
                requests.retain(|_, n| *n > 0);
                Ok(Writes {
                    requests,
                    changes: None,
                })
            }
        }
    }
}

/// A real kube-apiserver's Prometheus metrics, as text.
async fn metrics_text(client: &Client) -> Result<String, String> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    client
        .request_text(request)
        .await
        .map_err(|e| format!("GET /metrics: {e}"))
}

/// The API server's count of write requests so far, by (verb, resource[/subresource]), from its
/// Prometheus metrics; verbs named as the test server names them (APPLY is a patch).
async fn scrape_writes(client: &Client) -> Result<BTreeMap<(String, String), u64>, String> {
    let text = metrics_text(client).await?;
    let mut out = BTreeMap::new();
    for (labels, value) in samples(&text, "apiserver_request_total") {
        let verb = match label(labels, "verb") {
            "POST" => "create",
            "PUT" => "update",
            "PATCH" | "APPLY" => "patch",
            "DELETE" => "delete",
            "DELETECOLLECTION" => "deletecollection",
            _ => continue,
        };
        let group = label(labels, "group");
        // The API server's own API Priority and Fairness bookkeeping, not the controller's.
        if group == "flowcontrol.apiserver.k8s.io" {
            continue;
        }
        let subresource = label(labels, "subresource");
        let resource = if subresource.is_empty() {
            label(labels, "resource").to_owned()
        } else {
            format!("{}/{subresource}", label(labels, "resource"))
        };
        *out.entry((verb.to_owned(), resource)).or_insert(0) += value as u64;
    }
    Ok(out)
}

/// The CPU time a real kube-apiserver has used so far (`process_cpu_seconds_total`).
async fn scrape_cpu(client: &Client) -> Result<f64, String> {
    let text = metrics_text(client).await?;
    samples(&text, "process_cpu_seconds_total")
        .next()
        .map(|(_, value)| value)
        .ok_or_else(|| "no process_cpu_seconds_total in /metrics".into())
}

/// The samples of the metric `name` in Prometheus' text format: each line's labels (the text
/// between the braces, empty without them) and value.
fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    text.lines().filter_map(move |line| {
        let rest = line.strip_prefix(name)?;
        let (labels, value) = match rest.strip_prefix('{') {
            Some(labelled) => labelled.rsplit_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        Some((labels, value.trim().parse().ok()?))
    })
}

/// The value of the label `name` in a sample's labels (empty when it has none).
fn label<'a>(labels: &'a str, name: &str) -> &'a str {
    labels
        .split("\",")
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix("=\""))
        .map(|v| v.trim_end_matches('"'))
        .unwrap_or_default()
}

/// The CPU time (user and system) this process has used so far: the controller, the
/// benchmark's watch and, against the test server, the server too. From `/proc/self/stat`
/// (fields 14 and 15, in clock ticks of 1/100 s); `None` where it cannot be read.
fn own_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // `after` starts at field 3, so field 14 is its 12th (index 11).
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// The real server: the CRD (created without its CEL rules when missing) and a new namespace.
async fn prepare_real(client: &Client, namespace: &str) -> Result<(), String> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let yaml = operator::crdgen::crd_yaml().map_err(|e| format!("cannot generate the CRD: {e}"))?;
    let mut value: serde_json::Value =
        serde_yaml::from_str(&yaml).map_err(|e| format!("the CRD does not parse: {e}"))?;
    let name = value["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if crds
        .get_opt(&name)
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        strip_cel(&mut value);
        let crd: CustomResourceDefinition =
            serde_json::from_value(value).map_err(|e| format!("the CRD does not parse: {e}"))?;
        crds.create(&PostParams::default(), &crd)
            .await
            .map_err(|e| format!("cannot create the CRD: {e}"))?;
        println!("created the CRD {name} (without its CEL rules: this server has none)");
    }
    let established = |crd: &CustomResourceDefinition| {
        crd.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !crds
        .get(&name)
        .await
        .map(|c| established(&c))
        .unwrap_or(false)
    {
        if Instant::now() > deadline {
            return Err(format!("the CRD {name} is not Established after 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_garbage_collector(client).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}}))
        .map_err(|e| e.to_string())?;
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .map_err(|e| {
            format!("cannot create namespace {namespace} (use a fresh control plane): {e}")
        })?;
    Ok(())
}

/// Waits until something watches ConnectedApps before any exists: kube-controller-manager's
/// garbage collector, which finds a new CRD at its next discovery (every 30 s). Apps of a cluster
/// are created long after its CRD; without this wait the collector meets the first apps' new
/// Secrets before it knows their owners, reads each owner with a GET and lists every app once it
/// starts watching, all during the measured cold start. Waits at most 90 s, then measures anyway.
async fn wait_for_garbage_collector(client: &Client) {
    let started = Instant::now();
    loop {
        let watchers = metrics_text(client).await.ok().and_then(|text| {
            samples(&text, "apiserver_registered_watchers")
                .find(|(l, _)| {
                    label(l, "group") == "keyway.dev" && label(l, "kind") == "ConnectedApp"
                })
                .map(|(_, value)| value)
        });
        if watchers.is_some_and(|w| w >= 1.0) {
            println!(
                "kube-controller-manager's garbage collector watches ConnectedApps (waited {:.1} s)",
                started.elapsed().as_secs_f64()
            );
            return;
        }
        if started.elapsed() > Duration::from_secs(90) {
            println!(
                "nothing watches ConnectedApps after 90 s (no garbage collector?): measuring anyway"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn strip_cel(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("x-kubernetes-validations");
            map.values_mut().for_each(strip_cel);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_cel),
        _ => {}
    }
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
    let real = std::env::args().any(|a| a == "--real");
    let n: usize = std::env::var("KEYWAY_BENCH_APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (mut server, client, namespace) = match setup(real).await {
        Ok(s) => s,
        Err(e) => {
            println!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let apps: Api<ConnectedApp> = Api::namespaced(client.clone(), namespace);
    let created = futures::stream::iter(0..n)
        .map(|i| {
            let apps = apps.clone();
            async move {
                apps.create(&PostParams::default(), &app(i, namespace))
                    .await
            }
        })
        .buffer_unordered(16)
        .try_for_each(|_| async { Ok(()) })
        .await;
    if let Err(e) = created {
        println!("cannot create the apps: {e}");
        return ExitCode::FAILURE;
    }
    let against = if real {
        "a real kube-apiserver (KUBECONFIG)"
    } else {
        "the in-repo API test server"
    };
    println!("controller benchmark: {n} ConnectedApps against {against}");
    let mut ready_rx = watch_ready(apps.clone());

    // 1. Cold start to all Ready.
    if let Err(e) = server.reset_counts().await {
        println!("{e}");
        return ExitCode::FAILURE;
    }
    let server_cpu_before = server.cpu().await;
    let own_cpu_before = own_cpu();
    let started = Instant::now();
    let controller = start(client.clone(), Duration::from_secs(3600));
    let _ = tokio::time::timeout(
        Duration::from_secs(300),
        ready_rx.wait_for(|ready| *ready == n),
    )
    .await;
    let cold = started.elapsed();
    let ready = *ready_rx.borrow();
    let own_cpu_used = own_cpu().zip(own_cpu_before).map(|(a, b)| a - b);
    let server_cpu_used = server
        .cpu()
        .await
        .zip(server_cpu_before)
        .map(|(a, b)| a - b);
    // Writes that trail the last Ready (reconciles of a stale cache) count too.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cold_writes = server.write_counts().await.unwrap_or_default();
    println!(
        "cold start: {ready}/{n} Ready in {:.2} s ({:.0} apps/s), {} reconciles; goal ≤ {} s for {}",
        cold.as_secs_f64(),
        ready as f64 / cold.as_secs_f64(),
        controller.metrics.successful_reconciles(),
        GOAL_COLD_START.as_secs(),
        GOAL_APPS,
    );
    println!(
        "  writes during cold start: {} requests, {:.2} per app ({}){}",
        cold_writes.total(),
        cold_writes.total() as f64 / n.max(1) as f64,
        cold_writes.describe(),
        cold_writes
            .changes
            .map(|c| format!(", {c} of which changed stored state"))
            .unwrap_or_default()
    );
    let per_app = |cpu: f64| cpu * 1000.0 / ready.max(1) as f64;
    if let Some(cpu) = own_cpu_used {
        let whose = if real {
            "the controller and the benchmark's watch"
        } else {
            "the controller, the benchmark's watch and the test server"
        };
        println!(
            "  CPU until all Ready: this process ({whose}) {cpu:.1} s, {:.2} ms per app",
            per_app(cpu)
        );
    }
    if let Some(cpu) = server_cpu_used {
        println!(
            "  CPU until all Ready: kube-apiserver {cpu:.1} s, {:.2} ms per app (etcd not counted)",
            per_app(cpu)
        );
    }
    controller.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 2. A fresh controller over the settled state.
    let _ = server.reset_counts().await;
    let resync_start = Instant::now();
    let controller = start(client.clone(), Duration::from_secs(2));
    let all = wait_reconciles(&controller.metrics, n as u64, Duration::from_secs(120)).await;
    let restart_time = resync_start.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restart_writes = server.write_counts().await.unwrap_or_default();
    println!(
        "settled resync (restart): {} reconciles in {:.2} s, {} write requests ({}); goal 0",
        controller.metrics.successful_reconciles(),
        restart_time.as_secs_f64(),
        restart_writes.total(),
        restart_writes.describe()
    );

    // 3. Periodic resyncs of the running controller.
    let _ = server.reset_counts().await;
    let before = controller.metrics.successful_reconciles();
    let periodic = wait_reconciles(
        &controller.metrics,
        before + n as u64,
        Duration::from_secs(120),
    )
    .await;
    let periodic_writes = server.write_counts().await.unwrap_or_default();
    println!(
        "settled resync (periodic, every 2 s): {} reconciles, {} write requests ({}); goal 0",
        controller.metrics.successful_reconciles() - before,
        periodic_writes.total(),
        periodic_writes.describe()
    );
    controller.stop().await;

    let ok = ready == n
        && (n > GOAL_APPS || cold <= GOAL_COLD_START)
        && cold_writes.total() <= GOAL_WRITES_PER_APP * n as u64
        && all
        && periodic
        && restart_writes.total() == 0
        && periodic_writes.total() == 0;
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

/// The server, a client of it, and the namespace the apps live in.
async fn setup(real: bool) -> Result<(Server, Client, &'static str), String> {
    if real {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::try_default()
            .await
            .map_err(|e| format!("--real: no client from KUBECONFIG: {e}"))?;
        let namespace = "keyway-bench";
        prepare_real(&client, namespace).await?;
        let server = Server::Real {
            client: client.clone(),
            baseline: BTreeMap::new(),
        };
        return Ok((server, client, namespace));
    }
    let server = FakeApiServer::start()
        .await
        .map_err(|e| format!("cannot start the test API server: {e}"))?;
    // The generated CRD: every write is pruned, defaulted and validated as in a cluster.
    let crd = operator::crdgen::crd_yaml().map_err(|e| format!("cannot generate the CRD: {e}"))?;
    server
        .install_crd(&crd)
        .map_err(|e| format!("cannot install the CRD: {e}"))?;
    let client = server
        .client()
        .map_err(|e| format!("cannot build a client: {e}"))?;
    Ok((Server::Fake(server), client, "default"))
}

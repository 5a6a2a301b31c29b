//! `keyway demo`: the issuer, keyway-proxy and the demo tool on this machine, no cluster.
//!
//! Everything lives in a fresh temporary directory (removed on exit) unless `--data-dir` names
//! one: the demo's ConnectedApp manifests (from `examples/demo/`) with freshly generated client
//! secrets, two static users, the signing keys, the SQLite store, and the proxy's configuration
//! directory laid out exactly like the client Secret the operator writes in a cluster.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use clap::{Args, Parser};
use contract::secret;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The demo's ConnectedApps: (file stem, manifest, has a client secret).
const APPS: [(&str, &str, bool); 3] = [
    ("tool", include_str!("../../examples/demo/tool.yaml"), true),
    (
        "agent",
        include_str!("../../examples/demo/agent.yaml"),
        false,
    ),
    (
        "service",
        include_str!("../../examples/demo/service.yaml"),
        true,
    ),
];

/// The demo's people: (email, name, groups). Every one's password is [`PASSWORD`].
const USERS: [(&str, &str, &str); 2] = [
    ("alice@example.com", "Alice Example", "engineering"),
    ("bob@example.com", "Bob Example", "sales"),
];

/// The demo users' password.
pub const PASSWORD: &str = "keyway-demo";

/// Flags of `keyway demo`.
#[derive(Clone, Debug, Args)]
pub struct DemoArgs {
    /// Port of the issuer on 127.0.0.1. The demo's manifests name 5556 and 4180: change these
    /// only together with examples/demo/.
    #[arg(long, env = "KEYWAY_DEMO_ISSUER_PORT", default_value_t = 5556)]
    pub issuer_port: u16,
    /// Port of keyway-proxy (in front of the demo tool) on 127.0.0.1.
    #[arg(long, env = "KEYWAY_DEMO_PROXY_PORT", default_value_t = 4180)]
    pub proxy_port: u16,
    /// Keep the demo's state (store, keys, secrets) in this directory instead of a temporary
    /// one that is removed on exit.
    #[arg(long, env = "KEYWAY_DEMO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "KEYWAY_DEMO_LOG_JSON", default_value_t = false)]
    pub log_json: bool,
}

/// Generated credentials the demo prints.
struct Credentials {
    service_secret: String,
}

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(args: DemoArgs) -> Result<()> {
    let temp;
    let dir = match &args.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new().prefix("keyway-demo-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let issuer_url = format!("http://127.0.0.1:{}", args.issuer_port);
    let creds = lay_out(&dir, &issuer_url)?;

    // Bind everything first, so that a port in use is reported before anything starts.
    let issuer_listener = bind(args.issuer_port, "the issuer").await?;
    let tool_listener = bind(0, "the demo tool").await?;
    let tool_addr = tool_listener.local_addr()?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let issuer_args = issuer::Args::try_parse_from([
        "keyway-issuer".to_string(),
        format!("--issuer-url={issuer_url}"),
        format!("--listen=127.0.0.1:{}", args.issuer_port),
        format!("--store=sqlite://{}", dir.join("issuer.db").display()),
        format!("--clients-dir={}", dir.join("clients").display()),
        format!("--users-file={}", dir.join("users.yaml").display()),
        format!("--keys-dir={}", dir.join("keys").display()),
        "--dcr".to_string(),
        // Agents registering themselves may ask for the demo tool's scope too.
        "--dcr-scopes=openid profile email groups offline_access tool:read".to_string(),
    ])?;
    let issuer_config = issuer::Config::from_args(issuer_args)
        .map_err(|p| anyhow!("issuer configuration:\n  {}", p.join("\n  ")))?;
    let store = issuer::store::open(&issuer_config.store)
        .await
        .context("opening the demo's SQLite store")?;
    let issuer_task = tokio::spawn(issuer::serve(
        issuer_config,
        store,
        issuer_listener,
        stopped(),
    ));

    let proxy_cli = proxy::config::Cli::try_parse_from([
        "keyway-proxy".to_string(),
        format!("--config-dir={}", dir.join("proxy").display()),
        format!("--listen=127.0.0.1:{}", args.proxy_port),
        "--admin-listen=off".to_string(),
        format!("--upstream=http://{tool_addr}"),
        "--allow-http-issuer".to_string(),
        format!(
            "--log-format={}",
            if args.log_json { "json" } else { "text" }
        ),
    ])?;
    let settings = proxy_cli
        .settings()
        .map_err(|p| anyhow!("proxy configuration:\n  {}", p.join("\n  ")))?;
    let proxy_server = proxy::server::Server::bind(settings, std::time::Instant::now())
        .await
        .with_context(|| format!("starting keyway-proxy on 127.0.0.1:{}", args.proxy_port))?;
    let proxy_task = tokio::spawn(proxy_server.run(stopped()));

    let tool_stop = stopped();
    let tool_task = tokio::spawn(async move {
        axum::serve(tool_listener, crate::demo_tool::router())
            .with_graceful_shutdown(tool_stop)
            .await
    });

    print_welcome(&args, &issuer_url, &creds, &dir, args.data_dir.is_some());

    tokio::select! {
        () = kit::shutdown::signal() => tracing::info!("stopping the demo"),
        r = wait_any(issuer_task, proxy_task, tool_task) => {
            let _ = stop_tx.send(true);
            return r;
        }
    }
    let _ = stop_tx.send(true);
    // Give the servers a moment to finish in-flight requests; the tasks end with the runtime.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    Ok(())
}

/// Resolves when any of the three servers stops on its own: that is an error in a demo.
async fn wait_any(
    issuer: tokio::task::JoinHandle<anyhow::Result<()>>,
    proxy: tokio::task::JoinHandle<proxy::Result<()>>,
    tool: tokio::task::JoinHandle<std::io::Result<()>>,
) -> Result<()> {
    tokio::select! {
        r = issuer => Err(anyhow!("the issuer stopped: {}", join_msg(r))),
        r = proxy => Err(anyhow!("keyway-proxy stopped: {}", join_msg(r))),
        r = tool => Err(anyhow!("the demo tool stopped: {}", join_msg(r))),
    }
}

fn join_msg<E: std::fmt::Display>(r: Result<Result<(), E>, tokio::task::JoinError>) -> String {
    match r {
        Ok(Ok(())) => "without an error".to_string(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    }
}

async fn bind(port: u16, what: &str) -> Result<TcpListener> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for {what} (is another demo running?)"))
}

/// Writes manifests, secrets, users and the proxy's configuration directory.
fn lay_out(dir: &Path, issuer_url: &str) -> Result<Credentials> {
    let clients = dir.join("clients");
    let proxy_dir = dir.join("proxy");
    std::fs::create_dir_all(&clients)?;
    std::fs::create_dir_all(&proxy_dir)?;
    let mut tool_secret = String::new();
    let mut service_secret = String::new();
    for (stem, manifest, confidential) in APPS {
        write(&clients.join(format!("{stem}.yaml")), manifest)?;
        if confidential {
            // The issuer reads a manifest's local client secret from `<client ID>.secret`.
            let secret_path = clients.join(format!("demo.{stem}.secret"));
            // Keep secrets across runs when --data-dir is reused, so sessions survive restarts.
            let value = match std::fs::read_to_string(&secret_path) {
                Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
                _ => issuer::random_token(),
            };
            write(&secret_path, &value)?;
            match stem {
                "tool" => tool_secret = value,
                _ => service_secret = value,
            }
        }
    }

    let mut users = String::new();
    for (email, name, group) in USERS {
        let hash = issuer::hash_password(PASSWORD)
            .ok_or_else(|| anyhow!("hashing the demo password failed"))?;
        users.push_str(&format!(
            "- email: {email}\n  name: {name}\n  groups: [{group}]\n  passwordHash: '{hash}'\n"
        ));
    }
    write(&dir.join("users.yaml"), &users)?;

    let tool: api::ConnectedApp =
        serde_yaml::from_str(APPS[0].1).context("examples/demo/tool.yaml")?;
    let client_id = tool
        .client_id()
        .ok_or_else(|| anyhow!("demo tool has no client ID"))?;
    write(&proxy_dir.join(secret::CLIENT_ID), &client_id)?;
    write(&proxy_dir.join(secret::CLIENT_SECRET), &tool_secret)?;
    write(&proxy_dir.join(secret::ISSUER_URL), issuer_url)?;
    let cookie_path = proxy_dir.join(secret::COOKIE_SECRET);
    if !cookie_path.exists() {
        let key = issuer::random_bytes::<32>();
        write(
            &cookie_path,
            &base64::engine::general_purpose::STANDARD.encode(key),
        )?;
    }
    write(
        &proxy_dir.join(secret::POLICY),
        &serde_json::to_string_pretty(&tool.spec.app_policy())?,
    )?;
    Ok(Credentials { service_secret })
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

#[allow(clippy::print_stdout)] // The demo's welcome is its user interface.
fn print_welcome(args: &DemoArgs, issuer: &str, creds: &Credentials, dir: &Path, kept: bool) {
    let proxy = format!("http://127.0.0.1:{}", args.proxy_port);
    let state = if kept {
        format!("State is kept in {}.", dir.display())
    } else {
        "State lives in a temporary directory, removed when the demo stops.".to_string()
    };
    println!(
        r#"
keyway demo is running.

  Demo tool (behind keyway-proxy)  {proxy}/
  Issuer                           {issuer}/.well-known/openid-configuration
  Your grants (account page)       {issuer}/account

Sign in as alice@example.com (group engineering: let in)
        or bob@example.com   (group sales: refused)
with the password {PASSWORD}.

A token for a machine (client_credentials, client demo.service):
  curl -s -u 'demo.service:{secret}' -d grant_type=client_credentials \
    -d scope=tool:read -d resource={proxy} {issuer}/token

An agent (client demo.agent, public, PKCE): its consent page appears on first sign-in, and the
tool's protected-resource metadata tells it where to go:
  curl -s {proxy}/.well-known/oauth-protected-resource

{state}
Press Ctrl-C to stop.
"#,
        secret = creds.service_secret,
    );
}

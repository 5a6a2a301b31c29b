//! `keyway-operator controller`: its flags (each with its `KEYWAY_*` environment variable),
//! checked all at once into a [`ControllerConfig`] and the address of the operational endpoints,
//! and the run: endpoints, Kubernetes client, controller, shutdown.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{serve, usage};
use crate::config::ControllerConfig;
use crate::http;
use crate::lease::LeaseConfig;
use crate::operator::Operator;
use crate::signing_keys::SigningKeysConfig;
use crate::webhook::keeper::WebhookCertArgs;

#[derive(Debug, Args)]
pub(super) struct ControllerArgs {
    /// Issuer URL written into every app's Secret and status (https, or http on loopback).
    #[arg(long, env = "KEYWAY_ISSUER_URL")]
    issuer_url: String,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "KEYWAY_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "KEYWAY_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: String,
    /// Resync period of settled apps (e.g. 1h); a resync makes no writes.
    #[arg(long, env = "KEYWAY_RESYNC", default_value = "1h")]
    resync: String,
    /// How many apps are reconciled at once.
    #[arg(long, env = "KEYWAY_CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
    /// Elect a leader with a Lease so that several replicas are safe.
    #[arg(long, env = "KEYWAY_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the leader Lease (usually the operator's own).
    #[arg(long, env = "KEYWAY_LEASE_NAMESPACE", default_value = "keyway-system")]
    lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, env = "KEYWAY_LEASE_NAME", default_value = "keyway-operator")]
    lease_name: String,
    /// Lease validity without renewal.
    #[arg(long, env = "KEYWAY_LEASE_DURATION", default_value = "15s")]
    lease_duration: String,
    /// How long the leader tries to renew before it stops leading (shorter than the lease).
    #[arg(long, env = "KEYWAY_RENEW_DEADLINE", default_value = "10s")]
    renew_deadline: String,
    /// How often candidates try to acquire, and the leader renews.
    #[arg(long, env = "KEYWAY_RETRY_PERIOD", default_value = "2s")]
    retry_period: String,
    /// This replica's identity (the pod name); default: the host name.
    #[arg(long, env = "KEYWAY_POD_NAME")]
    identity: Option<String>,
    /// Log format.
    #[arg(long, env = "KEYWAY_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: kit::log::Format,
    /// Log filter (RUST_LOG syntax).
    #[arg(long, env = "KEYWAY_LOG", default_value = "info")]
    log: String,
    /// Keep the issuer's signing keys in this Secret (`<namespace>/<name>`), rotated by the
    /// leader; the issuer mounts it read-only. Unset: not managed.
    #[arg(long, env = "KEYWAY_ISSUER_SIGNING_KEYS_SECRET")]
    issuer_signing_keys_secret: Option<String>,
    /// Algorithm of new issuer signing keys: ES256, RS256 or EdDSA.
    #[arg(long, env = "KEYWAY_ISSUER_SIGNING_ALG", default_value = "ES256")]
    issuer_signing_alg: String,
    /// How long an issuer signing key signs before its successor starts.
    #[arg(long, env = "KEYWAY_ISSUER_KEY_ROTATION", default_value = "720h")]
    issuer_key_rotation: String,
    /// How long a new issuer signing key is published before it signs.
    #[arg(long, env = "KEYWAY_ISSUER_KEY_PUBLISH_LEAD", default_value = "1h")]
    issuer_key_publish_lead: String,
    /// How long a superseded issuer key stays published: at least the longest lifetime of any
    /// token the issuer signs (ConnectedApps allow up to 24h).
    #[arg(long, env = "KEYWAY_ISSUER_KEY_RETENTION", default_value = "24h")]
    issuer_key_retention: String,
    /// Bind resource hosts to namespaces: `HOST=NAMESPACE[,NAMESPACE…]`, several separated by
    /// whitespace (or the flag repeated); HOST is a host name or IP address, `*.<domain>` (every
    /// host below it) or `*` (every host), and the most specific match applies. An app whose
    /// spec.resource is on a bound host outside the bound namespaces is not a client
    /// (Ready=False, reason ResourceNotPermitted). Give the issuer the same value. Unset: any
    /// namespace may claim a resource on any host, the first claimant holding it.
    #[arg(long, env = "KEYWAY_RESOURCE_HOSTS")]
    resource_hosts: Vec<String>,
    #[command(flatten)]
    webhook_certs: WebhookCertArgs,
}

/// What the flags of `keyway-operator controller` say.
struct Settings {
    config: ControllerConfig,
    http_addr: SocketAddr,
}

/// Parses the controller flags into settings, reporting every problem at once.
fn settings(args: &ControllerArgs) -> Result<Settings, Vec<String>> {
    let mut problems = kit::problems::Problems::new();
    let mut duration = |flag: &str, value: &str| match contract::duration::parse_flag(value) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            problems.push(format!("--{flag}: must be more than 0s"));
            Duration::from_secs(1)
        }
        Err(e) => {
            problems.push(format!("--{flag}: {e}"));
            Duration::from_secs(1)
        }
    };
    let resync = duration("resync", &args.resync);
    let lease_duration = duration("lease-duration", &args.lease_duration);
    let renew_deadline = duration("renew-deadline", &args.renew_deadline);
    let retry_period = duration("retry-period", &args.retry_period);
    let key_rotation = duration("issuer-key-rotation", &args.issuer_key_rotation);
    let key_lead = duration("issuer-key-publish-lead", &args.issuer_key_publish_lead);
    let key_retention = duration("issuer-key-retention", &args.issuer_key_retention);
    if renew_deadline >= lease_duration {
        problems.push("--renew-deadline must be shorter than --lease-duration".into());
    }
    if retry_period >= renew_deadline {
        problems.push("--retry-period must be shorter than --renew-deadline".into());
    }
    if !api::is_acceptable_uri(&args.issuer_url) || args.issuer_url.contains('?') {
        problems.push(format!(
            "--issuer-url: {:?} must be an https URL (or http on 127.0.0.1, [::1] or localhost) without query or fragment",
            args.issuer_url
        ));
    }
    let http_addr = args.http_addr.parse::<SocketAddr>().unwrap_or_else(|e| {
        problems.push(format!("--http-addr: {:?}: {e}", args.http_addr));
        SocketAddr::from(([0, 0, 0, 0], 8080))
    });
    if args.concurrency == 0 {
        problems.push("--concurrency must be at least 1".into());
    }
    if key_lead >= key_rotation {
        problems
            .push("--issuer-key-publish-lead must be shorter than --issuer-key-rotation".into());
    }
    let alg = args
        .issuer_signing_alg
        .parse::<contract::signing_keys::Alg>()
        .unwrap_or_else(|e| {
            problems.push(format!("--issuer-signing-alg: {e}"));
            contract::signing_keys::Alg::Es256
        });
    let signing_keys = match args.issuer_signing_keys_secret.as_deref() {
        None | Some("") => None,
        Some(text) => match SigningKeysConfig::parse_secret(text) {
            Ok((namespace, name)) => Some(SigningKeysConfig {
                namespace,
                name,
                policy: contract::signing_keys::Policy {
                    alg,
                    rotation: key_rotation.as_secs(),
                    lead: key_lead.as_secs(),
                    retention: key_retention.as_secs(),
                },
            }),
            Err(e) => {
                problems.push(format!("--issuer-signing-keys-secret: {e}"));
                None
            }
        },
    };
    let resource_hosts =
        api::resource_hosts::ResourceHosts::parse(args.resource_hosts.iter().map(String::as_str))
            .unwrap_or_else(|p| {
                problems.extend(p);
                api::resource_hosts::ResourceHosts::default()
            });
    let webhook_certs = args.webhook_certs.managed_certs(&mut problems);
    let identity = identity(args);
    if !problems.is_empty() {
        return Err(problems.into());
    }
    let mut config = ControllerConfig::new(args.issuer_url.clone());
    config.namespace = args.watch_namespace.clone();
    config.identity = identity.clone();
    config.resync = resync;
    config.concurrency = args.concurrency;
    config.signing_keys = signing_keys;
    config.resource_hosts = resource_hosts;
    config.webhook_certs = webhook_certs;
    config.leader_election = args.leader_elect.then(|| LeaseConfig {
        namespace: args.lease_namespace.clone(),
        name: args.lease_name.clone(),
        identity,
        lease_duration,
        renew_deadline,
        retry_period,
    });
    Ok(Settings { config, http_addr })
}

/// This replica's identity: `--identity`, else the host name, else one made of the process ID.
fn identity(args: &ControllerArgs) -> String {
    args.identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("keyway-operator-{}", std::process::id()))
}

/// `keyway-operator controller`.
pub(super) fn controller_command(args: &ControllerArgs) -> ExitCode {
    let settings = match settings(args) {
        Ok(s) => s,
        Err(problems) => return usage("controller", problems),
    };
    serve(
        "controller",
        args.log_format,
        &args.log,
        run(settings),
        "keyway-operator stopped",
    )
}

/// Serves the operational endpoints and runs the controller until a shutdown signal.
async fn run(settings: Settings) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = http::bind(settings.http_addr).await?;
    let client = crate::kube_client::connect(crate::kube_client::Part::Controller).await?;
    let operator = Operator::new(client, settings.config);
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        kit::shutdown::signal().await;
        tracing::info!("shutting down");
        signal.cancel();
    });
    let server = tokio::spawn(http::serve(
        listener,
        operator.metrics(),
        operator.readiness(),
        shutdown.clone(),
    ));
    let result = operator.run(shutdown.clone()).await;
    shutdown.cancel();
    server.await??;
    result?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;

    fn parse(args: &[&str]) -> ControllerArgs {
        let mut argv = vec!["keyway-operator", "controller"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Controller(a) => a,
            Command::Crdgen(_) | Command::Webhook(_) | Command::RemoveFinalizers(_) => {
                unreachable!()
            }
        }
    }

    #[test]
    fn reports_every_problem_at_once() {
        let args = parse(&[
            "--issuer-url",
            "http://issuer.example.com",
            "--resync",
            "1.5h",
            "--http-addr",
            "nowhere",
            "--renew-deadline",
            "20s",
        ]);
        let problems = settings(&args).err().unwrap();
        assert_eq!(problems.len(), 4, "{problems:#?}");
    }

    #[test]
    fn defaults_are_sane() {
        let args = parse(&[
            "--issuer-url",
            "https://login.example.com",
            "--identity",
            "pod-a",
        ]);
        let s = settings(&args).ok().unwrap();
        assert_eq!(s.config.resync, Duration::from_secs(3600));
        let lease = s.config.leader_election.unwrap();
        assert_eq!(lease.identity, "pod-a");
        assert_eq!(lease.lease_duration, Duration::from_secs(15));
        assert_eq!(s.http_addr.port(), 8080);
        assert_eq!(s.config.signing_keys, None);
        assert!(s.config.resource_hosts.is_empty());
    }

    #[test]
    fn resource_host_bindings_are_parsed_with_every_problem_reported() {
        let args = parse(&[
            "--issuer-url",
            "https://login.example.com",
            "--resource-hosts",
            "grafana.example.com=tools *.team-a.example.com=team-a,team-a-dev",
            "--resource-hosts",
            "*=platform",
        ]);
        let hosts = settings(&args).ok().unwrap().config.resource_hosts;
        let bindings: Vec<String> = hosts.bindings().iter().map(ToString::to_string).collect();
        assert_eq!(
            bindings,
            [
                "grafana.example.com=tools",
                "*.team-a.example.com=team-a,team-a-dev",
                "*=platform"
            ]
        );
        let args = parse(&[
            "--issuer-url",
            "https://login.example.com",
            "--resource-hosts",
            "https://grafana.example.com=tools x.example.com=Team_A",
            "--resync",
            "0s",
        ]);
        let problems = settings(&args).err().unwrap();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[1].starts_with("--resource-hosts: \"https://grafana.example.com=tools\""),
            "{problems:#?}"
        );
        assert!(problems[2].contains("\"Team_A\""), "{problems:#?}");
    }

    #[test]
    fn signing_key_flags_are_checked() {
        let args = parse(&[
            "--issuer-url",
            "https://login.example.com",
            "--issuer-signing-keys-secret",
            "keyway/keyway-issuer-signing-keys",
            "--issuer-key-rotation",
            "48h",
        ]);
        let keys = settings(&args).ok().unwrap().config.signing_keys.unwrap();
        assert_eq!(keys.namespace, "keyway");
        assert_eq!(keys.policy.rotation, 48 * 3600);
        assert_eq!(keys.policy.lead, 3600);
        assert_eq!(keys.policy.retention, 24 * 3600);
        let args = parse(&[
            "--issuer-url",
            "https://login.example.com",
            "--issuer-signing-keys-secret",
            "no-namespace",
            "--issuer-signing-alg",
            "HS256",
            "--issuer-key-publish-lead",
            "800h",
        ]);
        let problems = settings(&args).err().unwrap();
        assert_eq!(problems.len(), 3, "{problems:#?}");
    }
}

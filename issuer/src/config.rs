//! Configuration: command-line flags, each with a `KEYWAY_*` environment equivalent, parsed into
//! a typed [`Config`] that reports every problem at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use kit::problems::Problems;
use url::Url;

use crate::directory::upstream::UpstreamConfig;
use crate::keys::Alg;

/// keyway's OAuth 2.1 / OpenID Connect authorization server.
///
/// Clients are read from ConnectedApp manifests (`--clients-dir`), people sign in with static
/// users (`--users-file`) and/or an upstream OpenID provider (`--upstream-issuer`).
#[derive(Clone, Debug, Parser)]
#[command(name = "keyway-issuer", version, about, long_about = None)]
pub struct Args {
    /// Administrative commands; without one, the issuer serves.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The issuer identifier: the public base URL, exactly as clients see it (https, or http on
    /// loopback only), without query or fragment, e.g. `https://login.example.com`. Required to
    /// serve.
    #[arg(long, env = "KEYWAY_ISSUER_URL", global = true)]
    pub issuer_url: Option<String>,

    /// Address to listen on.
    #[arg(long, env = "KEYWAY_LISTEN", default_value = "127.0.0.1:5556")]
    pub listen: String,

    /// Store URL: `sqlite://PATH` (created if missing) or
    /// `postgres://user@host/db`.
    #[arg(
        long,
        env = "KEYWAY_STORE",
        default_value = "sqlite://keyway-issuer.db",
        global = true
    )]
    pub store: String,

    /// Directory of ConnectedApp manifests (`*.yaml`, `*.yml`, `*.json`; several documents per
    /// file allowed; no namespace means `default`, so the client ID is `default.<name>` unless
    /// `spec.clientID` is set). For a confidential app without `status.clientSecrets`, the file
    /// `<client ID>.secret` in this directory holds its secret in plain text (local use only).
    #[arg(long, env = "KEYWAY_CLIENTS_DIR")]
    pub clients_dir: Option<PathBuf>,

    /// Watch ConnectedApps in the Kubernetes API (in-cluster; read-only) instead of reading
    /// manifest files.
    #[arg(long, env = "KEYWAY_WATCH_CONNECTEDAPPS", default_value_t = false)]
    pub watch_connectedapps: bool,

    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "KEYWAY_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// With `--watch-connectedapps`: resource hosts bound to namespaces, exactly as the
    /// operator's `--resource-hosts` (give both the same value): `HOST=NAMESPACE[,NAMESPACE…]`,
    /// several separated by whitespace; HOST is a host name or IP address, `*.<domain>` or `*`.
    /// A ConnectedApp whose `spec.resource` is on a bound host outside the bound namespaces is not
    /// a client. Unset: any namespace may claim a resource on any host.
    #[arg(long, env = "KEYWAY_RESOURCE_HOSTS")]
    pub resource_hosts: Vec<String>,

    /// YAML file of static users: a list of `{email, name, passwordHash, groups, sub}` (argon2 PHC
    /// hashes; `sub` defaults to the email and may not contain `:`, start with `dcr.` or equal a
    /// client ID).
    #[arg(long, env = "KEYWAY_USERS_FILE")]
    pub users_file: Option<PathBuf>,

    /// Directory holding the signing keys (created if missing; keep it private).
    #[arg(long, env = "KEYWAY_KEYS_DIR", default_value = "keyway-issuer-keys")]
    pub keys_dir: PathBuf,

    /// The key directory is written by someone else (a mounted Secret the operator rotates):
    /// re-read it when it changes, never write it.
    #[arg(long, env = "KEYWAY_KEYS_READ_ONLY", default_value_t = false)]
    pub keys_read_only: bool,

    /// Signing algorithm for new keys: ES256, RS256 or EdDSA.
    #[arg(long, env = "KEYWAY_SIGNING_ALG", default_value = "ES256")]
    pub signing_alg: String,

    /// How long a key signs before a successor takes over (e.g. `30d`).
    #[arg(long, env = "KEYWAY_KEY_ROTATION", default_value = "30d")]
    pub key_rotation: String,

    /// How long a new key is published in the JWKS before it signs (e.g. `1h`).
    #[arg(long, env = "KEYWAY_KEY_PUBLISH_LEAD", default_value = "1h")]
    pub key_publish_lead: String,

    /// Default access-token lifetime (a ConnectedApp's `tokenLifetimes.access` overrides it).
    #[arg(long, env = "KEYWAY_ACCESS_TOKEN_TTL", default_value = "10m")]
    pub access_token_ttl: String,

    /// Default refresh-token family lifetime (absolute).
    #[arg(long, env = "KEYWAY_REFRESH_TOKEN_TTL", default_value = "30d")]
    pub refresh_token_ttl: String,

    /// Default refresh-token idle lifetime: unused this long, it expires.
    #[arg(long, env = "KEYWAY_REFRESH_IDLE_TTL", default_value = "7d")]
    pub refresh_idle_ttl: String,

    /// How long a rotated refresh token may be presented again (a retry, concurrent refreshes):
    /// it then gets the grant's current refresh token, never a second one; after that,
    /// presenting it revokes the grant.
    #[arg(long, env = "KEYWAY_REFRESH_GRACE", default_value = "10s")]
    pub refresh_grace: String,

    /// Authorization-code lifetime.
    #[arg(long, env = "KEYWAY_CODE_TTL", default_value = "60s")]
    pub code_ttl: String,

    /// ID-token lifetime.
    #[arg(long, env = "KEYWAY_ID_TOKEN_TTL", default_value = "10m")]
    pub id_token_ttl: String,

    /// Sign-in session lifetime (single sign-on).
    #[arg(long, env = "KEYWAY_SESSION_TTL", default_value = "12h")]
    pub session_ttl: String,

    /// Enable dynamic client registration (RFC 7591) at `/register`.
    #[arg(long, env = "KEYWAY_DCR", default_value_t = false)]
    pub dcr: bool,

    /// Scopes a dynamically registered client may ask for (space-separated).
    #[arg(
        long,
        env = "KEYWAY_DCR_SCOPES",
        default_value = "openid profile email offline_access"
    )]
    pub dcr_scopes: String,

    /// Registrations accepted per minute (all callers together).
    #[arg(long, env = "KEYWAY_DCR_RATE", default_value_t = 10)]
    pub dcr_rate: u32,

    /// Registrations accepted per hour from one client address (as `--trusted-proxies`
    /// determines it; IPv6 per /64). Refused ones do not count against `--dcr-rate`.
    #[arg(long, env = "KEYWAY_DCR_RATE_PER_ADDRESS", default_value_t = 10)]
    pub dcr_rate_per_address: u32,

    /// A dynamically registered client that obtains no token for this long is deleted, with
    /// its consents and refresh tokens (e.g. `30d`).
    #[arg(long, env = "KEYWAY_DCR_IDLE_EXPIRY", default_value = "30d")]
    pub dcr_idle_expiry: String,

    /// More origins (e.g. `https://spa.example`, comma-separated) that browser-based clients may
    /// call the token, revocation, userinfo and registration endpoints from; origins of clients'
    /// redirect URIs are allowed without this.
    #[arg(long, env = "KEYWAY_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,

    /// Proxies (IP addresses or CIDR ranges, comma-separated, e.g. the ingress controller's pod
    /// network) whose `X-Forwarded-For` gives the client's address for the sign-in throttle and
    /// the per-address registration limit; without it, the TCP peer's address is used and the
    /// header ignored.
    #[arg(long, env = "KEYWAY_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// Upstream OpenID provider to federate sign-in to (its issuer URL, exact). Enables the
    /// "Continue with …" button; its redirect URI is `<issuer-url>/upstream/callback`.
    #[arg(long, env = "KEYWAY_UPSTREAM_ISSUER")]
    pub upstream_issuer: Option<String>,

    /// Client ID registered at the upstream provider.
    #[arg(long, env = "KEYWAY_UPSTREAM_CLIENT_ID")]
    pub upstream_client_id: Option<String>,

    /// Client secret at the upstream provider (prefer the environment variable).
    #[arg(long, env = "KEYWAY_UPSTREAM_CLIENT_SECRET", hide_env_values = true)]
    pub upstream_client_secret: Option<String>,

    /// Button text: "Continue with NAME".
    #[arg(long, env = "KEYWAY_UPSTREAM_NAME", default_value = "single sign-on")]
    pub upstream_name: String,

    /// Scopes requested from the upstream provider.
    #[arg(
        long,
        env = "KEYWAY_UPSTREAM_SCOPES",
        default_value = "openid email profile"
    )]
    pub upstream_scopes: String,

    /// Claim of the upstream's ID token or userinfo holding groups (dotted path for nested
    /// claims, e.g. `realm_access.roles`).
    #[arg(long, env = "KEYWAY_UPSTREAM_GROUPS_CLAIM", default_value = "groups")]
    pub upstream_groups_claim: String,

    /// Prefix added to every upstream group (e.g. `okta:`), empty by default.
    #[arg(long, env = "KEYWAY_UPSTREAM_GROUPS_PREFIX", default_value = "")]
    pub upstream_groups_prefix: String,

    /// INSECURE: take the upstream's `email` as verified even when it does not say
    /// `email_verified: true`. Off by default: an unverified address is dropped, so it never
    /// passes `access.allowedEmails`/`allowedEmailDomains` nor reaches tokens. Turn on only for
    /// a provider that verifies every address it releases.
    #[arg(
        long,
        env = "KEYWAY_UPSTREAM_INSECURE_TRUST_UNVERIFIED_EMAIL",
        default_value_t = false
    )]
    pub upstream_insecure_trust_unverified_email: bool,

    /// YAML file listing more upstream providers: `[{id, issuer, clientId, clientSecret, name,
    /// scopes, groupsClaim, groupsPrefix, insecureTrustUnverifiedEmail}]` (the last five
    /// optional; `id`: 1 to 32 letters, digits and `-`). Each gets a button; all share the
    /// redirect URI `<issuer-url>/upstream/callback`. People from provider `id` get the subject
    /// `<id>:<upstream sub>` (`default:` for the provider given by the `--upstream-*` flags).
    #[arg(long, env = "KEYWAY_UPSTREAMS_FILE")]
    pub upstreams_file: Option<PathBuf>,

    /// Log format: `text` or `json`.
    #[arg(long, env = "KEYWAY_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// Administrative commands.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Command {
    /// Lists dynamically registered clients (JSON lines) from the store.
    ListClients,
    /// Removes a dynamically registered client from the store.
    DeleteClient {
        /// The client ID (`dcr.…`).
        client_id: String,
    },
    /// Reads a password from standard input and prints its argon2id hash (for `--users-file`).
    HashPassword,
}

/// Lifetimes, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lifetimes {
    /// Access token.
    pub access: u64,
    /// Refresh-token family (absolute).
    pub refresh: u64,
    /// Refresh-token idle expiry.
    pub refresh_idle: u64,
    /// Grace window after rotation.
    pub refresh_grace: u64,
    /// Authorization code.
    pub code: u64,
    /// ID token.
    pub id_token: u64,
    /// Sign-in session.
    pub session: u64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            access: 600,
            refresh: 30 * 86400,
            refresh_idle: 7 * 86400,
            refresh_grace: 10,
            code: 60,
            id_token: 600,
            session: 12 * 3600,
        }
    }
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Issuer identifier, without a trailing slash.
    pub issuer: String,
    /// Listen address.
    pub listen: SocketAddr,
    /// Store URL.
    pub store: String,
    /// ConnectedApp manifests directory.
    pub(crate) clients_dir: Option<PathBuf>,
    /// Static users file.
    pub(crate) users_file: Option<PathBuf>,
    /// Watch ConnectedApps in Kubernetes: `Some(namespace or None for all)`.
    pub(crate) watch: Option<Option<String>>,
    /// Resource hosts bound to namespaces (`--resource-hosts`, with the watch only).
    pub(crate) resource_hosts: api::resource_hosts::ResourceHosts,
    /// Signing keys directory.
    pub(crate) keys_dir: PathBuf,
    /// The key directory is managed elsewhere (re-read, never written).
    pub(crate) keys_read_only: bool,
    /// Algorithm for new keys.
    pub(crate) signing_alg: Alg,
    /// Rotation interval.
    pub(crate) key_rotation: Duration,
    /// Publish lead.
    pub(crate) key_publish_lead: Duration,
    /// Default lifetimes.
    pub(crate) lifetimes: Lifetimes,
    /// Dynamic client registration enabled.
    pub(crate) dcr: bool,
    /// Scopes DCR clients may use.
    pub(crate) dcr_scopes: Vec<String>,
    /// Registrations per minute.
    pub(crate) dcr_rate: u32,
    /// Registrations per hour per client address.
    pub(crate) dcr_rate_per_address: u32,
    /// Unused this long (seconds), a registered client expires.
    pub(crate) dcr_idle_expiry: u64,
    /// Extra CORS origins (`--cors-allowed-origins`), validated.
    pub(crate) cors_allowed_origins: Vec<String>,
    /// `--trusted-proxies`, parsed.
    pub(crate) trusted_proxies: Vec<crate::directory::client_addr::IpRange>,
    /// Log format.
    pub log_format: kit::log::Format,
    /// Whether cookies get `Secure` (issuer served over https).
    pub(crate) secure_cookies: bool,
    /// Upstream OpenID providers (federation), in button order.
    pub(crate) upstreams: Vec<crate::directory::upstream::UpstreamConfig>,
}

impl Config {
    /// Validates arguments, collecting every problem (in the order of the flags' checks below).
    pub fn from_args(args: Args) -> Result<Self, Vec<String>> {
        let mut problems = Problems::new();
        let issuer = match check_issuer(args.issuer_url.as_deref().unwrap_or("")) {
            Ok(i) => i,
            Err(p) => {
                problems.push(format!("--issuer-url: {p}"));
                String::new()
            }
        };
        let listen = args.listen.parse().unwrap_or_else(|_| {
            problems.push(format!(
                "--listen: {:?} is not an address such as 127.0.0.1:5556",
                args.listen
            ));
            SocketAddr::from(([127, 0, 0, 1], 0))
        });
        if !(args.store.starts_with("sqlite:")
            || args.store.starts_with("postgres://")
            || args.store.starts_with("postgresql://"))
        {
            problems.push("--store: must start with sqlite:, postgres:// or postgresql://".into());
        }
        let signing_alg = args.signing_alg.parse::<Alg>().unwrap_or_else(|e| {
            problems.push(format!("--signing-alg: {e}"));
            Alg::Es256
        });
        let durations = Durations::from_args(&args, &mut problems);
        let log_format = problems
            .check("--log-format", args.log_format.parse())
            .unwrap_or_default();
        let cors_allowed_origins = crate::directory::origins::parse_origins(
            &args.cors_allowed_origins,
        )
        .unwrap_or_else(|p| {
            problems.extend(p);
            Vec::new()
        });
        let trusted_proxies = crate::directory::client_addr::parse_ranges(&args.trusted_proxies)
            .unwrap_or_else(|p| {
                problems.extend(p);
                Vec::new()
            });
        let dcr_scopes = dcr_scopes(&args, &mut problems);
        check_paths(&args, &mut problems);
        let upstream = flag_upstream(&args, &mut problems);
        if args.watch_connectedapps && args.clients_dir.is_some() {
            problems.push("--watch-connectedapps and --clients-dir are mutually exclusive".into());
        }
        let resource_hosts = resource_hosts(&args, &mut problems);
        let upstreams = upstreams(upstream, args.upstreams_file.as_deref(), &mut problems);
        if args.users_file.is_none() && upstreams.is_empty() {
            tracing::warn!("no --users-file and no --upstream-issuer: nobody can sign in");
        }
        problems.finish_with(|| Self {
            upstreams,
            secure_cookies: issuer.starts_with("https://"),
            issuer,
            listen,
            store: args.store,
            clients_dir: args.clients_dir,
            users_file: args.users_file,
            watch: args.watch_connectedapps.then_some(args.watch_namespace),
            resource_hosts,
            keys_dir: args.keys_dir,
            keys_read_only: args.keys_read_only,
            signing_alg,
            key_rotation: Duration::from_secs(durations.key_rotation),
            key_publish_lead: Duration::from_secs(durations.key_publish_lead),
            lifetimes: durations.lifetimes,
            dcr: args.dcr,
            dcr_scopes,
            dcr_rate: args.dcr_rate,
            dcr_idle_expiry: durations.dcr_idle_expiry,
            dcr_rate_per_address: args.dcr_rate_per_address,
            cors_allowed_origins,
            trusted_proxies,
            log_format,
        })
    }
}

/// The duration flags, in seconds.
struct Durations {
    lifetimes: Lifetimes,
    dcr_idle_expiry: u64,
    key_rotation: u64,
    key_publish_lead: u64,
}

impl Durations {
    /// Parses the duration flags (each must be positive) and checks how they relate.
    fn from_args(args: &Args, problems: &mut Problems) -> Self {
        let mut dur = |flag: &str, v: &str| -> u64 {
            match contract::duration::parse_flag_seconds(v) {
                Ok(d) if d > 0 => d,
                _ => {
                    problems.push(format!(
                        "--{flag}: {v:?} is not a duration such as 30s, 10m, 720h, 1h30m or 30d"
                    ));
                    1
                }
            }
        };
        let lifetimes = Lifetimes {
            access: dur("access-token-ttl", &args.access_token_ttl),
            refresh: dur("refresh-token-ttl", &args.refresh_token_ttl),
            refresh_idle: dur("refresh-idle-ttl", &args.refresh_idle_ttl),
            refresh_grace: dur("refresh-grace", &args.refresh_grace),
            code: dur("code-ttl", &args.code_ttl),
            id_token: dur("id-token-ttl", &args.id_token_ttl),
            session: dur("session-ttl", &args.session_ttl),
        };
        let dcr_idle_expiry = dur("dcr-idle-expiry", &args.dcr_idle_expiry);
        let key_rotation = dur("key-rotation", &args.key_rotation);
        let key_publish_lead = dur("key-publish-lead", &args.key_publish_lead);
        if key_publish_lead >= key_rotation {
            problems.push("--key-publish-lead must be shorter than --key-rotation".into());
        }
        if lifetimes.code > 600 {
            problems.push("--code-ttl: at most 10m (RFC 6749 §4.1.2)".into());
        }
        Self {
            lifetimes,
            dcr_idle_expiry,
            key_rotation,
            key_publish_lead,
        }
    }
}

/// `--dcr-scopes` as a list; each must be a scope token when registration is enabled.
fn dcr_scopes(args: &Args, problems: &mut Problems) -> Vec<String> {
    let dcr_scopes: Vec<String> = args
        .dcr_scopes
        .split_ascii_whitespace()
        .map(str::to_string)
        .collect();
    if args.dcr && dcr_scopes.iter().any(|s| !crate::scope::is_scope_token(s)) {
        problems.push("--dcr-scopes: not a space-separated list of scope tokens".into());
    }
    dcr_scopes
}

/// `--clients-dir` and `--users-file` must exist when given.
fn check_paths(args: &Args, problems: &mut Problems) {
    for (flag, path) in [
        ("clients-dir", &args.clients_dir),
        ("users-file", &args.users_file),
    ] {
        if let Some(p) = path
            && !p.exists()
        {
            problems.push(format!("--{flag}: {} does not exist", p.display()));
        }
    }
}

/// The upstream provider given with the `--upstream-*` flags (id `default`), if any.
fn flag_upstream(args: &Args, problems: &mut Problems) -> Option<UpstreamConfig> {
    match (
        &args.upstream_issuer,
        &args.upstream_client_id,
        &args.upstream_client_secret,
    ) {
        (None, None, None) => None,
        (Some(i), Some(id), Some(secret)) => {
            if let Err(p) = check_issuer(i) {
                problems.push(format!("--upstream-issuer: {p}"));
            }
            Some(UpstreamConfig {
                id: "default".into(),
                issuer: i.clone(),
                client_id: id.clone(),
                client_secret: secret.clone(),
                name: args.upstream_name.clone(),
                scopes: args.upstream_scopes.clone(),
                groups_claim: args.upstream_groups_claim.clone(),
                groups_prefix: args.upstream_groups_prefix.clone(),
                insecure_trust_unverified_email: args.upstream_insecure_trust_unverified_email,
            })
        }
        _ => {
            problems.push(
                "--upstream-issuer, --upstream-client-id and --upstream-client-secret go together"
                    .into(),
            );
            None
        }
    }
}

/// `--resource-hosts`, which only a cluster's ConnectedApps may use.
fn resource_hosts(args: &Args, problems: &mut Problems) -> api::resource_hosts::ResourceHosts {
    let resource_hosts =
        api::resource_hosts::ResourceHosts::parse(args.resource_hosts.iter().map(String::as_str))
            .unwrap_or_else(|p| {
                problems.extend(p);
                api::resource_hosts::ResourceHosts::default()
            });
    if !resource_hosts.is_empty() && !args.watch_connectedapps {
        // Namespaces are a boundary only where the API server enforces who writes in which;
        // manifest files are written by whoever writes the directory.
        problems.push(
            "--resource-hosts applies to ConnectedApps watched in a cluster: it needs \
             --watch-connectedapps"
                .into(),
        );
    }
    resource_hosts
}

/// Every upstream provider: the one from the flags first, then those of `--upstreams-file`;
/// IDs must differ and every issuer after the first is checked here.
fn upstreams(
    flag: Option<UpstreamConfig>,
    file: Option<&std::path::Path>,
    problems: &mut Problems,
) -> Vec<UpstreamConfig> {
    let mut upstreams: Vec<UpstreamConfig> = flag.into_iter().collect();
    if let Some(path) = file {
        match crate::directory::upstream::load_file(path) {
            Ok(list) => upstreams.extend(list),
            Err(ps) => problems.extend(ps.into_iter().map(|p| format!("--upstreams-file: {p}"))),
        }
    }
    for (i, u) in upstreams.iter().enumerate() {
        if upstreams[..i].iter().any(|o| o.id == u.id) {
            problems.push(format!("upstream id {:?} is used twice", u.id));
        }
        if i > 0
            && let Err(p) = check_issuer(&u.issuer)
        {
            problems.push(format!("upstream {:?}: issuer {p}", u.id));
        }
    }
    upstreams
}

/// Checks an issuer identifier (OIDC Discovery §3 / RFC 8414 §2): https (http on loopback),
/// no query or fragment. Returns it without a trailing slash.
fn check_issuer(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("required (e.g. https://login.example.com)".into());
    }
    let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL ({e})"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain user information".into());
    }
    match url.scheme() {
        "https" => {}
        "http" if crate::directory::clients::is_loopback_host(&url) => {}
        _ => return Err("must be https (http only on 127.0.0.1, [::1] or localhost)".into()),
    }
    Ok(raw.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["keyway-issuer", "--issuer-url", "http://127.0.0.1:5556"];
        v.extend_from_slice(extra);
        Args::try_parse_from(v).unwrap()
    }

    #[test]
    fn duration_flags_take_the_crd_syntax() {
        let c = Config::from_args(args(&[
            "--key-rotation",
            "720h",
            "--key-publish-lead",
            "1h30m",
            "--refresh-token-ttl",
            "30d",
            "--code-ttl",
            "90",
        ]))
        .unwrap();
        assert_eq!(c.key_rotation, Duration::from_secs(720 * 3600));
        assert_eq!(c.key_publish_lead, Duration::from_secs(5400));
        assert_eq!(c.lifetimes.refresh, 30 * 86400);
        assert_eq!(c.lifetimes.code, 90);
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::from_args(args(&[])).unwrap();
        assert_eq!(c.issuer, "http://127.0.0.1:5556");
        assert_eq!(c.signing_alg, Alg::Es256);
        assert!(!c.secure_cookies);
        assert_eq!(c.lifetimes, Lifetimes::default());
    }

    #[test]
    fn every_problem_is_reported() {
        let mut a = args(&[
            "--listen",
            "nowhere",
            "--signing-alg",
            "HS256",
            "--access-token-ttl",
            "ten",
            "--log-format",
            "xml",
            "--trusted-proxies",
            "10.0.0.0/8,10.0.0.1/40",
        ]);
        a.issuer_url = Some("http://login.example.com".into());
        let problems = Config::from_args(a).unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems[0].starts_with("--issuer-url"));
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("--trusted-proxies: \"10.0.0.1/40\"")),
            "{problems:#?}"
        );
    }

    #[test]
    fn resource_hosts_are_the_operators_and_need_the_watch() {
        let c = Config::from_args(args(&[
            "--watch-connectedapps",
            "--resource-hosts",
            "Grafana.example.com=tools *.team-a.example.com=team-a",
        ]))
        .unwrap();
        let bindings: Vec<String> = c
            .resource_hosts
            .bindings()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            bindings,
            ["grafana.example.com=tools", "*.team-a.example.com=team-a"]
        );
        assert!(
            Config::from_args(args(&[]))
                .unwrap()
                .resource_hosts
                .is_empty()
        );
        // Manifest files have no namespace boundary to bind to.
        let problems =
            Config::from_args(args(&["--resource-hosts", "a.example.com=tools"])).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].contains("needs --watch-connectedapps"),
            "{problems:#?}"
        );
        let problems = Config::from_args(args(&[
            "--watch-connectedapps",
            "--resource-hosts",
            "a.example.com b.example.com:443=x",
        ]))
        .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems.iter().all(|p| p.starts_with("--resource-hosts: ")));
    }

    #[test]
    fn issuer_rules() {
        assert!(check_issuer("https://login.example.com/").is_ok());
        assert!(check_issuer("http://localhost:8080").is_ok());
        assert!(check_issuer("https://x.example/?a=b").is_err());
        assert!(check_issuer("ftp://x.example").is_err());
    }
}

//! Configuration: flags (each with a `KEYWAY_*` environment variable, set by the webhook on the
//! injected container) and the files of the client Secret mounted in `--config-dir`
//! (see [`contract::secret`]), re-read when they change.
//!
//! Every problem is collected and reported at once; the binary exits with code 64 on bad config.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use clap::Parser;
use contract::secret::{self, AppPolicy};
use url::Url;

/// Duration flags, in whole seconds ([`contract::duration::parse_flag_seconds`]).
use contract::duration::parse_flag_seconds as secs;

/// Flags of `keyway-proxy`. Every flag has an environment variable; flags win over variables.
/// Durations take `30s`, `10m`, `12h`, `1h30m` or `30d`; a bare number is seconds.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "keyway-proxy",
    version,
    about = "keyway's sidecar: sign-in, bearer-token validation and access rules in front of a tool on localhost",
    long_about = None,
    after_help = "Durations: 30s, 10m, 12h, 1h30m or 30d; a bare number is seconds."
)]
pub struct Cli {
    /// Directory holding the client Secret's files: client-id, client-secret (optional for public
    /// clients), issuer-url, cookie-secret, policy.json (optional), cookie-secret-previous with
    /// cookie-secret-replaced-at (optional). Re-read when they change.
    #[arg(long, env = "KEYWAY_CONFIG_DIR", default_value = "/etc/keyway/app")]
    pub config_dir: PathBuf,

    /// Address the proxy listens on.
    #[arg(long, env = "KEYWAY_LISTEN", default_value = "0.0.0.0:4180")]
    pub listen: SocketAddr,

    /// Address of the admin server (/healthz, /readyz, /metrics); `off` disables it.
    #[arg(long, env = "KEYWAY_ADMIN_LISTEN", default_value = "0.0.0.0:4181")]
    pub admin_listen: String,

    /// The tool's base URL, e.g. http://127.0.0.1:8080 (http only). Exclusive with --upstream-port.
    #[arg(long, env = "KEYWAY_UPSTREAM")]
    pub upstream: Option<String>,

    /// The port the tool listens on at 127.0.0.1 (shorthand for --upstream http://127.0.0.1:PORT).
    #[arg(long, env = "KEYWAY_UPSTREAM_PORT")]
    pub upstream_port: Option<u16>,

    /// Public URL of the tool as browsers see it (its origin is used for the redirect URI and the
    /// resource metadata URL). Default: the `resource` of policy.json.
    #[arg(long, env = "KEYWAY_EXTERNAL_URL")]
    pub external_url: Option<String>,

    /// Path prefix of the proxy's own endpoints: PREFIX/callback, PREFIX/start, PREFIX/sign_out.
    #[arg(long, env = "KEYWAY_PROXY_PREFIX", default_value = "/oauth2")]
    pub proxy_prefix: String,

    /// PEM certificate chain: serve HTTPS (re-read when it changes). Needs --tls-key-file.
    #[arg(long, env = "KEYWAY_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key for --tls-cert-file.
    #[arg(long, env = "KEYWAY_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// Base name of the session cookie (`__Host-` is prefixed when the cookie is Secure).
    #[arg(long, env = "KEYWAY_COOKIE_NAME", default_value = "_keyway_proxy")]
    pub cookie_name: String,

    /// Secure cookies: auto (when the external URL is https or TLS is served), true or false.
    #[arg(long, env = "KEYWAY_COOKIE_SECURE", default_value = "auto")]
    pub cookie_secure: String,

    /// Lifetime of a browser session (refreshes do not extend it).
    #[arg(long, env = "KEYWAY_SESSION_LIFETIME", default_value = "12h", value_parser = secs)]
    pub session_lifetime: u64,

    /// How long a replaced cookie secret still opens session (and sign-in) cookies after the
    /// mounted cookie-secret changes (or after cookie-secret-replaced-at, when the files name it
    /// as cookie-secret-previous: also after a restart), so a rotation signs nobody out; such a
    /// session is sealed with the new secret at its next refresh. 0: refused at once. Default:
    /// the session lifetime.
    #[arg(long, env = "KEYWAY_COOKIE_SECRET_GRACE", value_parser = secs)]
    pub cookie_secret_grace: Option<u64>,

    /// Answer CORS preflights (OPTIONS with Origin and Access-Control-Request-Method) by
    /// forwarding them to the tool without authentication (browsers send them without
    /// credentials); identity headers are still removed, never set.
    #[arg(long, env = "KEYWAY_SKIP_AUTH_PREFLIGHT", num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub skip_auth_preflight: bool,

    /// Scopes requested at sign-in, space-separated. When policy.json lists the app's scopes,
    /// only those of these it lists are kept (openid always), and the policy's are added.
    #[arg(
        long,
        env = "KEYWAY_SCOPES",
        default_value = "openid email profile offline_access"
    )]
    pub scopes: String,

    /// OpenID Connect `prompt` sent with sign-in requests (e.g. `consent`, which some providers
    /// require before they issue refresh tokens for offline_access). Default: none sent.
    #[arg(long, env = "KEYWAY_PROMPT")]
    pub prompt: Option<String>,

    /// Also send the access token to the tool in X-Forwarded-Access-Token.
    #[arg(long, env = "KEYWAY_PASS_ACCESS_TOKEN", num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub pass_access_token: bool,

    /// Keep X-Forwarded-For/Proto/Host from the client (only behind a trusted ingress).
    #[arg(long, env = "KEYWAY_TRUST_FORWARDED_HEADERS", num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub trust_forwarded_headers: bool,

    /// Allow an http:// issuer on a non-loopback host (loopback is always allowed).
    #[arg(long, env = "KEYWAY_ALLOW_HTTP_ISSUER", num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub allow_http_issuer: bool,

    /// PEM file of CA certificates to trust for the issuer (in addition to the system's).
    #[arg(long, env = "KEYWAY_ISSUER_CA_FILE")]
    pub issuer_ca_file: Option<PathBuf>,

    /// Clock skew tolerated on exp/nbf/iat.
    #[arg(long, env = "KEYWAY_CLOCK_SKEW", default_value = "30s", value_parser = secs)]
    pub clock_skew: u64,

    /// Maximum number of validated bearer tokens kept in memory.
    #[arg(long, env = "KEYWAY_TOKEN_CACHE_SIZE", default_value_t = 50_000)]
    pub token_cache_size: usize,

    /// Minimum time between JWKS fetches triggered by an unknown key id.
    #[arg(long, env = "KEYWAY_JWKS_MIN_REFRESH", default_value = "10s", value_parser = secs)]
    pub jwks_min_refresh: u64,

    /// Time a client has to send its request headers (slow clients are cut off).
    #[arg(long, env = "KEYWAY_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = secs)]
    pub header_read_timeout: u64,

    /// Time to wait for the tool's response headers, counted from the end of the request
    /// body, before answering 504.
    #[arg(long, env = "KEYWAY_UPSTREAM_TIMEOUT", default_value = "60s", value_parser = secs)]
    pub upstream_timeout: u64,

    /// Time a request body may stall (between two reads) before the request gets 408.
    #[arg(long, env = "KEYWAY_CLIENT_BODY_TIMEOUT", default_value = "60s", value_parser = secs)]
    pub client_body_timeout: u64,

    /// Time a write to a client may stall (a client that does not read) before the
    /// connection is closed.
    #[arg(long, env = "KEYWAY_SEND_TIMEOUT", default_value = "60s", value_parser = secs)]
    pub send_timeout: u64,

    /// Time an HTTP/2 connection may stay silent with no request waiting for the tool.
    #[arg(long, env = "KEYWAY_IDLE_TIMEOUT", default_value = "75s", value_parser = secs)]
    pub idle_timeout: u64,

    /// Largest request head (request line and headers) accepted, in bytes; larger gets 431.
    #[arg(long, env = "KEYWAY_MAX_HEADER_BYTES", default_value_t = 32_768)]
    pub max_header_bytes: usize,

    /// Serve bodiless HTTP/1.1 requests with the proxy's own connection loop and exchange with
    /// the tool (fewer instructions per request). false: hyper serves every request and hyper's
    /// client sends every request to the tool.
    #[arg(long, env = "KEYWAY_HTTP1_FAST_PATH", num_args = 0..=1, default_missing_value = "true", default_value_t = true)]
    pub http1_fast_path: bool,

    /// Time in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "KEYWAY_SHUTDOWN_GRACE", default_value = "10s", value_parser = secs)]
    pub shutdown_grace: u64,

    /// Time between checks of the config directory and TLS files for changes.
    #[arg(long, env = "KEYWAY_CONFIG_POLL_INTERVAL", default_value = "5s", value_parser = secs)]
    pub config_poll_interval: u64,

    /// Runtime worker threads; 1 runs everything on one thread.
    #[arg(long, env = "KEYWAY_WORKER_THREADS", default_value_t = 1)]
    pub worker_threads: usize,

    /// Where to send people after the issuer's logout (must be registered with the issuer).
    #[arg(long, env = "KEYWAY_POST_LOGOUT_REDIRECT_URL")]
    pub post_logout_redirect_url: Option<String>,

    /// Write a JSON access log line per request.
    #[arg(long, env = "KEYWAY_ACCESS_LOG", num_args = 0..=1, default_missing_value = "true", default_value_t = true)]
    pub access_log: bool,

    /// Log format: json or text.
    #[arg(long, env = "KEYWAY_LOG_FORMAT", default_value = "json")]
    pub log_format: String,

    /// Log filter (tracing-subscriber syntax), e.g. info or proxy=debug,access=off.
    #[arg(long, env = "KEYWAY_LOG", default_value = "info")]
    pub log: String,
}

/// Whether cookies carry `Secure` (and the `__Host-` prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieSecure {
    /// Secure when the external URL is https or TLS is served.
    Auto,
    /// Always.
    Yes,
    /// Never.
    No,
}

/// Static settings from flags, validated.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Main listener.
    pub listen: SocketAddr,
    /// Admin listener, if enabled.
    pub admin_listen: Option<SocketAddr>,
    /// Upstream base: scheme and authority (http only).
    pub upstream: http::uri::Authority,
    /// Config directory.
    pub config_dir: PathBuf,
    /// Explicit external URL.
    pub external_url: Option<Url>,
    /// Prefix of the proxy's endpoints, without a trailing slash.
    pub proxy_prefix: String,
    /// TLS files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Cookie base name.
    pub cookie_name: String,
    /// Secure cookies.
    pub cookie_secure: CookieSecure,
    /// Session lifetime.
    pub session_lifetime: Duration,
    /// Seconds a replaced cookie secret still opens cookies (0: not at all).
    pub cookie_secret_grace: u64,
    /// Forward CORS preflights without authentication.
    pub skip_auth_preflight: bool,
    /// Scopes requested at sign-in (before the policy's are added).
    pub scopes: Vec<String>,
    /// X-Forwarded-Access-Token.
    pub pass_access_token: bool,
    /// `prompt` for sign-in requests.
    pub prompt: Option<String>,
    /// Keep client X-Forwarded-* headers.
    pub trust_forwarded_headers: bool,
    /// http issuers off loopback.
    pub allow_http_issuer: bool,
    /// Extra CA file.
    pub issuer_ca_file: Option<PathBuf>,
    /// Clock skew.
    pub clock_skew: u64,
    /// Token cache capacity.
    pub token_cache_size: usize,
    /// JWKS refetch rate limit.
    pub jwks_min_refresh: Duration,
    /// Header read timeout.
    pub header_read_timeout: Duration,
    /// Upstream response-header timeout (from the end of the request body).
    pub upstream_timeout: Duration,
    /// Request body stall timeout.
    pub client_body_timeout: Duration,
    /// Client write stall timeout.
    pub send_timeout: Duration,
    /// HTTP/2 idle connection timeout.
    pub idle_timeout: Duration,
    /// Request head limit.
    pub max_header_bytes: usize,
    /// The proxy's own HTTP/1.1 loop ([`crate::h1`]) and exchange with the tool
    /// ([`crate::direct`]) for bodiless requests; otherwise hyper on both sides.
    pub http1_fast_path: bool,
    /// Graceful shutdown window.
    pub shutdown_grace: Duration,
    /// Poll interval for config and TLS files.
    pub poll_interval: Duration,
    /// Runtime threads.
    pub worker_threads: usize,
    /// Post-logout redirect.
    pub post_logout_redirect_url: Option<String>,
    /// Access log on.
    pub access_log: bool,
    /// JSON logs.
    pub log_json: bool,
    /// Log filter.
    pub log: String,
}

impl Cli {
    /// Validates the flags, reporting every problem.
    pub fn settings(&self) -> Result<Settings, Vec<String>> {
        let mut problems = kit::problems::Problems::new();
        let admin_listen = if self.admin_listen.eq_ignore_ascii_case("off") {
            None
        } else {
            match self.admin_listen.parse() {
                Ok(a) => Some(a),
                Err(_) => {
                    problems.push(format!(
                        "--admin-listen (KEYWAY_ADMIN_LISTEN): {:?} is not an address such as 0.0.0.0:4181 or `off`",
                        self.admin_listen
                    ));
                    None
                }
            }
        };
        let upstream = match (&self.upstream, self.upstream_port) {
            (Some(_), Some(_)) => {
                problems.push(
                    "--upstream (KEYWAY_UPSTREAM) and --upstream-port (KEYWAY_UPSTREAM_PORT) are exclusive".into(),
                );
                None
            }
            (None, None) => {
                problems.push(
                    "one of --upstream (KEYWAY_UPSTREAM) or --upstream-port (KEYWAY_UPSTREAM_PORT) is required".into(),
                );
                None
            }
            (None, Some(0)) => {
                problems.push("--upstream-port (KEYWAY_UPSTREAM_PORT) must not be 0".into());
                None
            }
            (None, Some(port)) => http::uri::Authority::try_from(format!("127.0.0.1:{port}")).ok(),
            (Some(u), None) => match parse_upstream(u) {
                Ok(a) => Some(a),
                Err(why) => {
                    problems.push(format!("--upstream (KEYWAY_UPSTREAM): {u:?} {why}"));
                    None
                }
            },
        };
        let external_url = self
            .external_url
            .as_deref()
            .and_then(|u| match Url::parse(u) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                    Some(url)
                }
                _ => {
                    problems.push(format!(
                        "--external-url (KEYWAY_EXTERNAL_URL): {u:?} is not an absolute http(s) URL"
                    ));
                    None
                }
            });
        let proxy_prefix = self.proxy_prefix.trim_end_matches('/').to_string();
        if !proxy_prefix.starts_with('/')
            || proxy_prefix.contains("//")
            || proxy_prefix
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.')))
            || proxy_prefix.split('/').any(|s| s == "." || s == "..")
        {
            problems.push(format!(
                "--proxy-prefix (KEYWAY_PROXY_PREFIX): {:?} must be an absolute path of letters, digits, -, _, . such as /oauth2",
                self.proxy_prefix
            ));
        }
        let tls = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => {
                problems.push(
                    "--tls-cert-file (KEYWAY_TLS_CERT_FILE) and --tls-key-file (KEYWAY_TLS_KEY_FILE) go together".into(),
                );
                None
            }
        };
        if self.cookie_name.is_empty()
            || self.cookie_name.starts_with("__")
            || self.cookie_name.starts_with("keyway_issuer")
            || !self
                .cookie_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        {
            problems.push(format!(
                "--cookie-name (KEYWAY_COOKIE_NAME): {:?} must be letters, digits, _ or -, must not start with __ (the prefix is added) nor with keyway_issuer (the issuer's cookies)",
                self.cookie_name
            ));
        }
        let cookie_secure = match self.cookie_secure.to_ascii_lowercase().as_str() {
            "auto" => CookieSecure::Auto,
            "true" | "yes" | "1" => CookieSecure::Yes,
            "false" | "no" | "0" => CookieSecure::No,
            other => {
                problems.push(format!(
                    "--cookie-secure (KEYWAY_COOKIE_SECURE): {other:?} is not auto, true or false"
                ));
                CookieSecure::Auto
            }
        };
        if self.session_lifetime < 60 {
            problems.push(
                "--session-lifetime (KEYWAY_SESSION_LIFETIME) must be at least 60 seconds".into(),
            );
        }
        let scopes: Vec<String> = self
            .scopes
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect();
        if !scopes.iter().any(|s| s == "openid") {
            problems.push("--scopes (KEYWAY_SCOPES) must include openid".into());
        }
        if let Some(p) = &self.prompt
            && (p.split_ascii_whitespace().next().is_none()
                || !p
                    .split_ascii_whitespace()
                    .all(|v| matches!(v, "none" | "login" | "consent" | "select_account")))
        {
            problems.push(format!(
                "--prompt (KEYWAY_PROMPT): {p:?} must be space-separated values of none, login, consent, select_account"
            ));
        }
        if self.clock_skew > 300 {
            problems.push("--clock-skew (KEYWAY_CLOCK_SKEW) must be at most 300 seconds".into());
        }
        for (name, value) in [
            (
                "--header-read-timeout (KEYWAY_HEADER_READ_TIMEOUT)",
                self.header_read_timeout,
            ),
            (
                "--upstream-timeout (KEYWAY_UPSTREAM_TIMEOUT)",
                self.upstream_timeout,
            ),
            (
                "--client-body-timeout (KEYWAY_CLIENT_BODY_TIMEOUT)",
                self.client_body_timeout,
            ),
            ("--send-timeout (KEYWAY_SEND_TIMEOUT)", self.send_timeout),
            ("--idle-timeout (KEYWAY_IDLE_TIMEOUT)", self.idle_timeout),
            (
                "--config-poll-interval (KEYWAY_CONFIG_POLL_INTERVAL)",
                self.config_poll_interval,
            ),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be at least 1 second"));
            }
        }
        if !(8192..=1_048_576).contains(&self.max_header_bytes) {
            problems.push(
                "--max-header-bytes (KEYWAY_MAX_HEADER_BYTES) must be between 8192 and 1048576"
                    .into(),
            );
        }
        if self.worker_threads == 0 || self.worker_threads > 64 {
            problems
                .push("--worker-threads (KEYWAY_WORKER_THREADS) must be between 1 and 64".into());
        }
        if let Some(u) = &self.post_logout_redirect_url
            && !Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            problems.push(format!(
                "--post-logout-redirect-url (KEYWAY_POST_LOGOUT_REDIRECT_URL): {u:?} is not an absolute http(s) URL"
            ));
        }
        let log_json = match self.log_format.as_str() {
            "json" => true,
            "text" => false,
            other => {
                problems.push(format!(
                    "--log-format (KEYWAY_LOG_FORMAT): {other:?} is not json or text"
                ));
                true
            }
        };
        if kit::log::filter(&self.log).is_err() {
            problems.push(format!(
                "--log (KEYWAY_LOG): {:?} is not a valid filter",
                self.log
            ));
        }
        let Some(upstream) = upstream else {
            return Err(problems.into());
        };
        problems.finish_with(|| Settings {
            listen: self.listen,
            admin_listen,
            upstream,
            config_dir: self.config_dir.clone(),
            external_url,
            proxy_prefix,
            tls,
            cookie_name: self.cookie_name.clone(),
            cookie_secure,
            session_lifetime: Duration::from_secs(self.session_lifetime),
            cookie_secret_grace: self.cookie_secret_grace.unwrap_or(self.session_lifetime),
            skip_auth_preflight: self.skip_auth_preflight,
            scopes,
            pass_access_token: self.pass_access_token,
            prompt: self.prompt.clone(),
            trust_forwarded_headers: self.trust_forwarded_headers,
            allow_http_issuer: self.allow_http_issuer,
            issuer_ca_file: self.issuer_ca_file.clone(),
            clock_skew: self.clock_skew,
            token_cache_size: self.token_cache_size,
            jwks_min_refresh: Duration::from_secs(self.jwks_min_refresh),
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
            upstream_timeout: Duration::from_secs(self.upstream_timeout),
            client_body_timeout: Duration::from_secs(self.client_body_timeout),
            send_timeout: Duration::from_secs(self.send_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_header_bytes: self.max_header_bytes,
            http1_fast_path: self.http1_fast_path,
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            poll_interval: Duration::from_secs(self.config_poll_interval),
            worker_threads: self.worker_threads,
            post_logout_redirect_url: self.post_logout_redirect_url.clone(),
            access_log: self.access_log,
            log_json,
            log: self.log.clone(),
        })
    }
}

fn parse_upstream(u: &str) -> Result<http::uri::Authority, &'static str> {
    let url = Url::parse(u).map_err(|_| "is not a URL")?;
    if url.scheme() != "http" {
        return Err("must be an http:// URL (the tool listens on localhost)");
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("must have no path, query or fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials");
    }
    let host = url.host_str().ok_or("has no host")?;
    let port = url.port_or_known_default().ok_or("has no port")?;
    http::uri::Authority::try_from(format!("{host}:{port}")).map_err(|_| "has an invalid authority")
}

/// The app's configuration from the mounted Secret files. Its `Debug` leaves the client secret
/// and the cookie key out.
#[derive(Clone)]
pub struct AppConfig {
    /// OAuth client ID.
    pub client_id: String,
    /// OAuth client secret (confidential clients).
    pub client_secret: Option<String>,
    /// Issuer identifier, exactly as in its metadata.
    pub issuer: String,
    /// The cookie-encryption key.
    pub cookie_key: [u8; 32],
    /// The cookie key replaced last and when (Unix seconds), from `cookie-secret-previous` and
    /// `cookie-secret-replaced-at`: it opens cookies for `--cookie-secret-grace` after that.
    pub previous_cookie_key: Option<([u8; 32], u64)>,
    /// Resource, scopes and access rules.
    pub policy: AppPolicy,
    /// The resource identifier: the access-token audience.
    pub resource: String,
    /// Public origin of the tool, e.g. `https://tool.example.com`.
    pub origin: String,
    /// `origin` + prefix + `/callback`.
    pub redirect_uri: String,
    /// The RFC 9728 metadata URL for `resource`.
    pub resource_metadata_url: String,
    /// The path-inserted suffix of the metadata URL (`""` for a resource without a path).
    pub resource_path: String,
    /// Scopes requested at sign-in.
    pub request_scopes: String,
    /// Whether cookies are Secure (and `__Host-` prefixed).
    pub secure_cookies: bool,
    /// Fingerprint of the files this was read from, to notice changes.
    pub fingerprint: [u8; 32],
}

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppConfig")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("issuer", &self.issuer)
            .field("cookie_key", &"<redacted>")
            .field("resource", &self.resource)
            .field("origin", &self.origin)
            .field("redirect_uri", &self.redirect_uri)
            .field("request_scopes", &self.request_scopes)
            .field("secure_cookies", &self.secure_cookies)
            .finish_non_exhaustive()
    }
}

/// Reads one file of the config directory; `Ok(None)` when absent.
fn read_opt(dir: &Path, name: &str) -> Result<Option<String>, String> {
    match std::fs::read_to_string(dir.join(name)) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: cannot read: {e}", dir.join(name).display())),
    }
}

/// Reads the config directory and checks it against the settings, reporting every problem.
pub fn load_app(settings: &Settings) -> Result<AppConfig, Vec<String>> {
    use sha2::{Digest, Sha256};
    let dir = &settings.config_dir;
    let mut problems = kit::problems::Problems::new();
    let mut hasher = Sha256::new();
    let mut files = Vec::new();
    for name in secret::ALL_KEYS {
        let content = match read_opt(dir, name) {
            Ok(c) => c,
            Err(p) => {
                problems.push(p);
                None
            }
        };
        hasher.update(name.as_bytes());
        hasher.update([0]);
        if let Some(c) = &content {
            hasher.update((c.len() as u64).to_be_bytes());
            hasher.update(c.as_bytes());
        }
        files.push(content);
    }
    let fingerprint: [u8; 32] = hasher.finalize().into();
    let file = |i: usize| {
        files
            .get(i)
            .cloned()
            .flatten()
            .map(|s| s.trim().to_string())
    };
    let where_ = |name: &str| dir.join(name).display().to_string();

    let client_id = file(0).filter(|s| !s.is_empty());
    if client_id.is_none() {
        problems.push(format!(
            "{}: missing or empty (the OAuth client ID)",
            where_(secret::CLIENT_ID)
        ));
    }
    let client_secret = file(1).filter(|s| !s.is_empty());
    let issuer = match file(2).filter(|s| !s.is_empty()) {
        None => {
            problems.push(format!(
                "{}: missing or empty (the issuer URL)",
                where_(secret::ISSUER_URL)
            ));
            None
        }
        Some(i) => match issuer_problem(&i, settings.allow_http_issuer) {
            Some(why) => {
                problems.push(format!("{}: {i:?} {why}", where_(secret::ISSUER_URL)));
                None
            }
            None => Some(i),
        },
    };
    let cookie_key = match file(3) {
        None => {
            problems.push(format!(
                "{}: missing (32 random bytes, base64)",
                where_(secret::COOKIE_SECRET)
            ));
            None
        }
        Some(s) => match cookie_key_from(&s) {
            Some(k) => Some(k),
            None => {
                problems.push(format!(
                    "{}: must be exactly 32 bytes encoded in base64",
                    where_(secret::COOKIE_SECRET)
                ));
                None
            }
        },
    };
    let previous_cookie_key = match (file(5), file(6)) {
        (None, None) => None,
        (Some(key), Some(at)) => {
            let key = cookie_key_from(&key);
            if key.is_none() {
                problems.push(format!(
                    "{}: must be exactly 32 bytes encoded in base64",
                    where_(secret::COOKIE_SECRET_PREVIOUS)
                ));
            }
            let at = secret::parse_replaced_at(&at);
            if at.is_none() {
                problems.push(format!(
                    "{}: must be seconds since the Unix epoch",
                    where_(secret::COOKIE_SECRET_REPLACED_AT)
                ));
            }
            key.zip(at)
        }
        (Some(_), None) | (None, Some(_)) => {
            problems.push(format!(
                "{} and {}: give both or neither",
                where_(secret::COOKIE_SECRET_PREVIOUS),
                where_(secret::COOKIE_SECRET_REPLACED_AT)
            ));
            None
        }
    };
    let policy = match file(4) {
        None => AppPolicy::default(),
        Some(json) => match serde_json::from_str::<AppPolicy>(&json) {
            Ok(p) => {
                problems.extend(
                    p.access
                        .problems()
                        .into_iter()
                        .map(|m| format!("{}: {m}", where_(secret::POLICY))),
                );
                p
            }
            Err(e) => {
                problems.push(format!(
                    "{}: not a valid policy: {e}",
                    where_(secret::POLICY)
                ));
                AppPolicy::default()
            }
        },
    };
    let resource = match policy.resource.as_deref() {
        Some(r) => match Url::parse(r) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.fragment().is_none() =>
            {
                Some((r.to_string(), u))
            }
            _ => {
                problems.push(format!(
                    "{}: resource {r:?} is not an absolute http(s) URL without a fragment",
                    where_(secret::POLICY)
                ));
                None
            }
        },
        None => settings
            .external_url
            .as_ref()
            .map(|u| (u.as_str().trim_end_matches('/').to_string(), u.clone())),
    };
    if resource.is_none() && policy.resource.is_none() {
        problems.push(format!(
            "no resource: set `resource` in {} or --external-url (KEYWAY_EXTERNAL_URL)",
            where_(secret::POLICY)
        ));
    }
    if !problems.is_empty() {
        return Err(problems.into());
    }
    let (Some(client_id), Some(issuer), Some(cookie_key), Some((resource, resource_url))) =
        (client_id, issuer, cookie_key, resource)
    else {
        return Err(vec!["incomplete configuration".into()]);
    };
    let external = settings
        .external_url
        .clone()
        .unwrap_or_else(|| resource_url.clone());
    let origin = external.origin().ascii_serialization();
    let redirect_uri = format!("{origin}{}/callback", settings.proxy_prefix);
    let resource_path = resource_url.path().trim_end_matches('/').to_string();
    let resource_metadata_url = format!(
        "{}/.well-known/oauth-protected-resource{resource_path}",
        resource_url.origin().ascii_serialization()
    );
    // The app's registered scopes are known (policy.json): ask only for what it may request,
    // or a strict issuer (keyway's) refuses the whole request with invalid_scope.
    let mut scopes = settings.scopes.clone();
    if !policy.scopes.is_empty() {
        scopes.retain(|s| s == "openid" || policy.scopes.contains(s));
    }
    for s in &policy.scopes {
        if !scopes.contains(s) {
            scopes.push(s.clone());
        }
    }
    let secure_cookies = match settings.cookie_secure {
        CookieSecure::Yes => true,
        CookieSecure::No => false,
        CookieSecure::Auto => external.scheme() == "https" || settings.tls.is_some(),
    };
    Ok(AppConfig {
        client_id,
        client_secret,
        issuer,
        cookie_key,
        previous_cookie_key,
        policy,
        resource,
        origin,
        redirect_uri,
        resource_metadata_url,
        resource_path,
        request_scopes: scopes.join(" "),
        secure_cookies,
        fingerprint,
    })
}

/// A cookie key from its file: 32 bytes in base64 (standard, with or without padding, or URL-safe).
fn cookie_key_from(text: &str) -> Option<[u8; 32]> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let decoded = STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
        .ok()?;
    <[u8; 32]>::try_from(decoded.as_slice()).ok()
}

/// Why an issuer URL is unacceptable, if it is.
fn issuer_problem(issuer: &str, allow_http: bool) -> Option<&'static str> {
    let Ok(url) = Url::parse(issuer) else {
        return Some("is not a URL");
    };
    if url.query().is_some() || url.fragment().is_some() {
        return Some("must not have a query or fragment");
    }
    match url.scheme() {
        "https" => None,
        "http" if allow_http || is_loopback(&url) => None,
        "http" => Some("uses http off loopback (set --allow-http-issuer to accept)"),
        _ => Some("must be an https URL"),
    }
}

/// Whether a URL's host is a loopback address or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["keyway-proxy"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    fn write_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (n, c) in files {
            std::fs::write(dir.path().join(n), c).unwrap();
        }
        dir
    }

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn the_http1_fast_path_can_be_turned_off() {
        let on = |args: &[&str]| {
            let mut all = vec!["--upstream-port", "8080"];
            all.extend_from_slice(args);
            cli(&all).settings().unwrap().http1_fast_path
        };
        assert!(on(&[]));
        assert!(on(&["--http1-fast-path"]));
        assert!(on(&["--http1-fast-path=true"]));
        assert!(!on(&["--http1-fast-path=false"]));
        let mut all = vec!["keyway-proxy"];
        all.extend_from_slice(&["--upstream-port", "8080", "--http1-fast-path=no"]);
        assert!(Cli::try_parse_from(all).is_err(), "only true or false");
    }

    #[test]
    fn every_flag_problem_is_reported() {
        let c = cli(&[
            "--upstream",
            "https://x/y",
            "--upstream-port",
            "0",
            "--admin-listen",
            "nowhere",
            "--cookie-name",
            "__Host-x",
            "--scopes",
            "email",
            "--tls-cert-file",
            "/c",
            "--max-header-bytes",
            "10",
        ]);
        let problems = c.settings().unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:#?}");
    }

    #[test]
    fn durations_take_units_or_bare_seconds() {
        let s = cli(&[
            "--upstream-port",
            "8080",
            "--session-lifetime",
            "8h",
            "--upstream-timeout",
            "1m30s",
            "--send-timeout",
            "45",
            "--cookie-secret-grace",
            "1d",
        ])
        .settings()
        .unwrap();
        assert_eq!(s.session_lifetime, Duration::from_secs(8 * 3600));
        assert_eq!(s.upstream_timeout, Duration::from_secs(90));
        assert_eq!(s.send_timeout, Duration::from_secs(45));
        assert_eq!(s.cookie_secret_grace, 86400);
        // The defaults, written with units in --help, are the same as before.
        let d = cli(&["--upstream-port", "8080"]).settings().unwrap();
        assert_eq!(d.session_lifetime, Duration::from_secs(43_200));
        assert_eq!(d.header_read_timeout, Duration::from_secs(10));
        assert_eq!(d.idle_timeout, Duration::from_secs(75));
        assert!(d.http1_fast_path, "the fast path is on by default");
        for bad in ["1.5h", "-1s", "ten", ""] {
            let flag = format!("--session-lifetime={bad}");
            let e = Cli::try_parse_from(["keyway-proxy", flag.as_str()]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad:?}");
            assert!(e.to_string().contains("is not a duration"), "{e}");
        }
    }

    #[test]
    fn good_config_loads_with_derived_urls() {
        let dir = write_dir(&[
            ("client-id", "tool\n"),
            ("client-secret", "s3cret\n"),
            ("issuer-url", "https://id.example.com\n"),
            ("cookie-secret", KEY),
            (
                "policy.json",
                r#"{"resource":"https://tool.example.com/mcp","scopes":["tool:read"],"access":{"rules":[{"path":"/healthz","public":true}]}}"#,
            ),
        ]);
        let s = cli(&[
            "--upstream-port",
            "8080",
            "--config-dir",
            dir.path().to_str().unwrap(),
        ])
        .settings()
        .unwrap();
        assert_eq!(s.upstream.as_str(), "127.0.0.1:8080");
        let app = load_app(&s).unwrap();
        assert_eq!(app.client_id, "tool");
        assert_eq!(app.client_secret.as_deref(), Some("s3cret"));
        let shown = format!("{app:?}");
        assert!(
            shown.contains("tool") && !shown.contains("s3cret"),
            "Debug shows the client ID, never the secret: {shown}"
        );
        let key_bytes = format!("{:?}", app.cookie_key);
        assert!(!shown.contains(&key_bytes[1..20]), "nor the cookie key");
        assert_eq!(app.redirect_uri, "https://tool.example.com/oauth2/callback");
        assert_eq!(
            app.resource_metadata_url,
            "https://tool.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            app.request_scopes, "openid tool:read",
            "only scopes the app may request, openid always"
        );
        assert!(app.secure_cookies);
    }

    #[test]
    fn every_file_problem_is_reported() {
        let dir = write_dir(&[
            ("issuer-url", "http://id.example.com"),
            ("cookie-secret", "c2hvcnQ="),
            ("policy.json", r#"{"access":{"rules":[{"path":"api"}]}}"#),
        ]);
        let s = cli(&[
            "--upstream-port",
            "8080",
            "--config-dir",
            dir.path().to_str().unwrap(),
        ])
        .settings()
        .unwrap();
        let problems = load_app(&s).unwrap_err();
        // client-id, issuer over http, cookie secret length, bad rule, no resource
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("client-id")));
        assert!(problems.iter().any(|p| p.contains("allow-http-issuer")));
    }

    #[test]
    fn a_previous_cookie_secret_comes_with_its_replacement_time() {
        let load = |extra: &[(&str, &str)]| {
            let mut files = vec![
                ("client-id", "tool"),
                ("issuer-url", "https://id.example.com"),
                ("cookie-secret", KEY),
                ("policy.json", r#"{"resource":"https://tool.example.com"}"#),
            ];
            files.extend_from_slice(extra);
            let dir = write_dir(&files);
            let s = cli(&[
                "--upstream-port",
                "8080",
                "--config-dir",
                dir.path().to_str().unwrap(),
            ])
            .settings()
            .unwrap();
            load_app(&s)
        };
        let previous = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        assert_eq!(load(&[]).unwrap().previous_cookie_key, None);
        let app = load(&[
            ("cookie-secret-previous", previous),
            ("cookie-secret-replaced-at", "1767225600\n"),
        ])
        .unwrap();
        assert_eq!(app.previous_cookie_key, Some(([1u8; 32], 1_767_225_600)));
        assert!(!format!("{app:?}").contains("[1, 1, 1"), "no key in Debug");
        let problems = load(&[("cookie-secret-previous", previous)]).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].contains("give both or neither"),
            "{problems:#?}"
        );
        let problems = load(&[
            ("cookie-secret-previous", "c2hvcnQ="),
            ("cookie-secret-replaced-at", "yesterday"),
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].contains("cookie-secret-previous: must be exactly 32 bytes"));
        assert!(problems[1].contains("cookie-secret-replaced-at: must be seconds"));
    }
}

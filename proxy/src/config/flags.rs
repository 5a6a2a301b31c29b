//! The flags of `keyway-proxy`, each with a `KEYWAY_*` environment variable (set by the webhook
//! on the injected container), parsed into [`Settings`] with every problem reported at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use kit::problems::Problems;
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
    /// The proxy's own HTTP/1.1 loop and exchange with the tool (`crate::wire`) for
    /// bodiless requests; otherwise hyper on both sides.
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
        let mut problems = Problems::new();
        let p = &mut problems;
        let admin_listen = self.admin_listen(p);
        let upstream = self.upstream(p);
        let external_url = self.external_url(p);
        let proxy_prefix = self.proxy_prefix(p);
        let tls = self.tls(p);
        let cookie_secure = self.cookies(p);
        let scopes = self.sign_in(p);
        self.check_bounds(p);
        self.check_post_logout(p);
        let log_json = self.log_json(p);
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

    /// `--admin-listen`: an address, or `off`.
    fn admin_listen(&self, problems: &mut Problems) -> Option<SocketAddr> {
        if self.admin_listen.eq_ignore_ascii_case("off") {
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
        }
    }

    /// `--upstream` or `--upstream-port`: the tool's authority.
    fn upstream(&self, problems: &mut Problems) -> Option<http::uri::Authority> {
        match (&self.upstream, self.upstream_port) {
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
        }
    }

    /// `--external-url`: an absolute http(s) URL.
    fn external_url(&self, problems: &mut Problems) -> Option<Url> {
        self.external_url
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
            })
    }

    /// `--proxy-prefix`, without a trailing `/`.
    fn proxy_prefix(&self, problems: &mut Problems) -> String {
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
        proxy_prefix
    }

    /// `--tls-cert-file` and `--tls-key-file`, together.
    fn tls(&self, problems: &mut Problems) -> Option<(PathBuf, PathBuf)> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => {
                problems.push(
                    "--tls-cert-file (KEYWAY_TLS_CERT_FILE) and --tls-key-file (KEYWAY_TLS_KEY_FILE) go together".into(),
                );
                None
            }
        }
    }

    /// `--cookie-name` and `--cookie-secure`.
    fn cookies(&self, problems: &mut Problems) -> CookieSecure {
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
        match self.cookie_secure.to_ascii_lowercase().as_str() {
            "auto" => CookieSecure::Auto,
            "true" | "yes" | "1" => CookieSecure::Yes,
            "false" | "no" | "0" => CookieSecure::No,
            other => {
                problems.push(format!(
                    "--cookie-secure (KEYWAY_COOKIE_SECURE): {other:?} is not auto, true or false"
                ));
                CookieSecure::Auto
            }
        }
    }

    /// `--session-lifetime`, `--scopes` (with `openid`) and `--prompt`.
    fn sign_in(&self, problems: &mut Problems) -> Vec<String> {
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
        scopes
    }

    /// The clock skew, timeouts, header size and worker threads, within their bounds.
    fn check_bounds(&self, problems: &mut Problems) {
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
    }

    /// `--post-logout-redirect-url`: an absolute http(s) URL.
    fn check_post_logout(&self, problems: &mut Problems) {
        if let Some(u) = &self.post_logout_redirect_url
            && !Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            problems.push(format!(
                "--post-logout-redirect-url (KEYWAY_POST_LOGOUT_REDIRECT_URL): {u:?} is not an absolute http(s) URL"
            ));
        }
    }

    /// `--log-format` (whether JSON) and `--log`.
    fn log_json(&self, problems: &mut Problems) -> bool {
        let json = match self.log_format.as_str() {
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
        json
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

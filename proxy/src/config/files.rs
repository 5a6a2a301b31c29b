//! The files of the client Secret mounted in `--config-dir` (see [`contract::secret`]), read into
//! an [`AppConfig`] with every problem reported at once; re-read when they change.

use std::path::Path;

use base64::Engine as _;
use contract::secret::{self, AppPolicy};
use url::Url;

use kit::problems::Problems;

use super::{CookieSecure, Settings};

/// The app's configuration from the mounted Secret files. Its `Debug` leaves the client secret
/// and the cookie key out.
#[derive(Clone)]
pub(crate) struct AppConfig {
    /// OAuth client ID.
    pub(crate) client_id: String,
    /// OAuth client secret (confidential clients).
    pub(crate) client_secret: Option<String>,
    /// Issuer identifier, exactly as in its metadata.
    pub(crate) issuer: String,
    /// The cookie-encryption key.
    pub(crate) cookie_key: [u8; 32],
    /// The cookie key replaced last and when (Unix seconds), from `cookie-secret-previous` and
    /// `cookie-secret-replaced-at`: it opens cookies for `--cookie-secret-grace` after that.
    pub(crate) previous_cookie_key: Option<([u8; 32], u64)>,
    /// Resource, scopes and access rules.
    pub(crate) policy: AppPolicy,
    /// The resource identifier: the access-token audience.
    pub(crate) resource: String,
    /// Public origin of the tool, e.g. `https://tool.example.com`.
    pub(crate) origin: String,
    /// `origin` + prefix + `/callback`.
    pub(crate) redirect_uri: String,
    /// The RFC 9728 metadata URL for `resource`.
    pub(crate) resource_metadata_url: String,
    /// The path-inserted suffix of the metadata URL (`""` for a resource without a path).
    pub(crate) resource_path: String,
    /// Scopes requested at sign-in.
    pub(crate) request_scopes: String,
    /// Whether cookies are Secure (and `__Host-` prefixed).
    pub(crate) secure_cookies: bool,
    /// Fingerprint of the files this was read from, to notice changes.
    pub(crate) fingerprint: [u8; 32],
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

/// The config directory's files as read (trimmed), and where each is.
struct Files<'a> {
    dir: &'a Path,
    contents: Vec<Option<String>>,
}

impl Files<'_> {
    /// The `i`th of [`secret::ALL_KEYS`], trimmed.
    fn get(&self, i: usize) -> Option<String> {
        self.contents
            .get(i)
            .cloned()
            .flatten()
            .map(|s| s.trim().to_string())
    }

    /// A file's path, for a problem's message.
    fn place(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// Reads every file of the config directory, and the fingerprint of what it read.
fn read_files<'a>(dir: &'a Path, problems: &mut Problems) -> (Files<'a>, [u8; 32]) {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut contents = Vec::new();
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
        contents.push(content);
    }
    (Files { dir, contents }, hasher.finalize().into())
}

/// Reads the config directory and checks it against the settings, reporting every problem.
pub(crate) fn load_app(settings: &Settings) -> Result<AppConfig, Vec<String>> {
    let mut problems = Problems::new();
    let (files, fingerprint) = read_files(&settings.config_dir, &mut problems);
    let client_id = files.get(0).filter(|s| !s.is_empty());
    if client_id.is_none() {
        problems.push(format!(
            "{}: missing or empty (the OAuth client ID)",
            files.place(secret::CLIENT_ID)
        ));
    }
    let client_secret = files.get(1).filter(|s| !s.is_empty());
    let issuer = issuer(&files, settings, &mut problems);
    let cookie_key = cookie_key(&files, &mut problems);
    let previous_cookie_key = previous_cookie_key(&files, &mut problems);
    let policy = policy(&files, &mut problems);
    let resource = resource(&files, settings, &policy, &mut problems);
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
    let request_scopes = request_scopes(settings, &policy);
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
        request_scopes,
        secure_cookies,
        fingerprint,
    })
}

/// The issuer URL file.
fn issuer(files: &Files<'_>, settings: &Settings, problems: &mut Problems) -> Option<String> {
    match files.get(2).filter(|s| !s.is_empty()) {
        None => {
            problems.push(format!(
                "{}: missing or empty (the issuer URL)",
                files.place(secret::ISSUER_URL)
            ));
            None
        }
        Some(i) => match issuer_problem(&i, settings.allow_http_issuer) {
            Some(why) => {
                problems.push(format!("{}: {i:?} {why}", files.place(secret::ISSUER_URL)));
                None
            }
            None => Some(i),
        },
    }
}

/// The cookie secret file: 32 bytes, base64.
fn cookie_key(files: &Files<'_>, problems: &mut Problems) -> Option<[u8; 32]> {
    match files.get(3) {
        None => {
            problems.push(format!(
                "{}: missing (32 random bytes, base64)",
                files.place(secret::COOKIE_SECRET)
            ));
            None
        }
        Some(s) => match cookie_key_from(&s) {
            Some(k) => Some(k),
            None => {
                problems.push(format!(
                    "{}: must be exactly 32 bytes encoded in base64",
                    files.place(secret::COOKIE_SECRET)
                ));
                None
            }
        },
    }
}

/// The replaced cookie secret and when it was replaced: both or neither.
fn previous_cookie_key(files: &Files<'_>, problems: &mut Problems) -> Option<([u8; 32], u64)> {
    match (files.get(5), files.get(6)) {
        (None, None) => None,
        (Some(key), Some(at)) => {
            let key = cookie_key_from(&key);
            if key.is_none() {
                problems.push(format!(
                    "{}: must be exactly 32 bytes encoded in base64",
                    files.place(secret::COOKIE_SECRET_PREVIOUS)
                ));
            }
            let at = secret::parse_replaced_at(&at);
            if at.is_none() {
                problems.push(format!(
                    "{}: must be seconds since the Unix epoch",
                    files.place(secret::COOKIE_SECRET_REPLACED_AT)
                ));
            }
            key.zip(at)
        }
        (Some(_), None) | (None, Some(_)) => {
            problems.push(format!(
                "{} and {}: give both or neither",
                files.place(secret::COOKIE_SECRET_PREVIOUS),
                files.place(secret::COOKIE_SECRET_REPLACED_AT)
            ));
            None
        }
    }
}

/// `policy.json`: resource, scopes and access rules (their problems too).
fn policy(files: &Files<'_>, problems: &mut Problems) -> AppPolicy {
    match files.get(4) {
        None => AppPolicy::default(),
        Some(json) => match serde_json::from_str::<AppPolicy>(&json) {
            Ok(p) => {
                problems.extend(
                    p.access
                        .problems()
                        .into_iter()
                        .map(|m| format!("{}: {m}", files.place(secret::POLICY))),
                );
                p
            }
            Err(e) => {
                problems.push(format!(
                    "{}: not a valid policy: {e}",
                    files.place(secret::POLICY)
                ));
                AppPolicy::default()
            }
        },
    }
}

/// The resource (the policy's, else `--external-url`) and its URL.
fn resource(
    files: &Files<'_>,
    settings: &Settings,
    policy: &AppPolicy,
    problems: &mut Problems,
) -> Option<(String, Url)> {
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
                    files.place(secret::POLICY)
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
            files.place(secret::POLICY)
        ));
    }
    resource
}

/// The scopes asked for at sign-in. The app's registered scopes are known (policy.json): ask
/// only for what it may request, or a strict issuer (keyway's) refuses the whole request with
/// invalid_scope.
fn request_scopes(settings: &Settings, policy: &AppPolicy) -> String {
    let mut scopes = settings.scopes.clone();
    if !policy.scopes.is_empty() {
        scopes.retain(|s| s == "openid" || policy.scopes.contains(s));
    }
    for s in &policy.scopes {
        if !scopes.contains(s) {
            scopes.push(s.clone());
        }
    }
    scopes.join(" ")
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
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

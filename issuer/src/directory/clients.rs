//! OAuth clients: from ConnectedApp manifests (files locally), and dynamically registered ones
//! (RFC 7591, from the store).
//!
//! Local manifests: every `*.yaml`, `*.yml` and `*.json` file in the clients directory, each
//! holding one or more documents; documents whose `kind` is not `ConnectedApp` are skipped. A
//! manifest without a namespace is in `default` (as with `kubectl apply`), so its client ID is
//! `default.<name>` unless `spec.clientID` pins one. Client secrets are verified against
//! `status.clientSecrets[].hash`; when a confidential app has no such status (local use), the
//! file `<client ID>.secret` in the same directory holds its secret in plain text (trailing
//! whitespace ignored) and is hashed at load time.
//!
//! Two manifests claiming the same client ID (pinned `spec.clientID`s, or a pinned ID equal to
//! another app's default) are refused with both named: a local set-up is fixed, not guessed. In
//! the cluster the rule of `api::claims` applies instead (see `crate::app::watch`). No ConnectedApp
//! may have an ID starting with `dcr.`, the prefix of dynamically registered clients.
//!
//! Likewise two manifests naming the same `spec.resource` (compared byte for byte, as with a
//! token's `aud`) are refused with both named; in the cluster the rule of `api::resources`
//! applies. So no two clients have one resource, and [`Registry::resource_owner`] is the one app
//! whose `access` rules gate tokens for it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use api::{ClientType, ConnectedApp, GrantType, Trust};
use contract::access::Access;
use url::Url;

/// A client's accepted secret hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretHashEntry {
    /// `sha256:<hex>` (see `contract::secret`).
    pub hash: String,
    /// Unix time after which it is refused.
    pub expires_at: Option<u64>,
}

/// Where a client came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A ConnectedApp.
    ConnectedApp,
    /// Dynamic client registration.
    Dynamic,
}

/// Token lifetimes of one client, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientLifetimes {
    /// Access token.
    pub access: u64,
    /// Refresh family (absolute).
    pub refresh: u64,
    /// Refresh idle.
    pub idle: u64,
}

/// A client as the issuer uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// Client ID.
    pub id: String,
    /// Name shown to people.
    pub name: String,
    /// Description shown on consent.
    pub description: Option<String>,
    /// Logo (https).
    pub logo_uri: Option<String>,
    /// Public client (no secret).
    pub public: bool,
    /// Consent required.
    pub third_party: bool,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Exact post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// May use the authorization code grant.
    pub authorization_code: bool,
    /// May use refresh tokens.
    pub refresh_token: bool,
    /// May use client_credentials.
    pub client_credentials: bool,
    /// Scopes it may request.
    pub scopes: Vec<String>,
    /// Its protected resource (default audience).
    pub resource: Option<String>,
    /// Who may sign in.
    pub access: Access,
    /// Lifetimes; `None` fields fall back to the issuer's defaults.
    pub lifetimes: Option<ClientLifetimes>,
    /// Accepted secret hashes.
    pub secrets: Vec<SecretHashEntry>,
    /// Origin.
    pub source: Source,
}

impl Client {
    /// Builds a client from a ConnectedApp, validating it. `local_secret` is the plain-text secret
    /// from a `<client ID>.secret` file, used only when status has no hashes.
    pub(crate) fn from_connected_app(
        app: &ConnectedApp,
        local_secret: Option<&str>,
    ) -> Result<Self, Vec<String>> {
        let mut problems: Vec<String> = api::validate(&app.spec)
            .into_iter()
            .map(|p| p.to_string())
            .collect();
        let spec = &app.spec;
        let id = app.client_id().unwrap_or_default();
        if id.is_empty() {
            problems.push("metadata: a name is required".into());
        }
        // A pinned one is already reported by `api::validate`.
        if spec.client_id.is_none()
            && let Some(problem) = api::claims::reserved_client_id(app)
        {
            problems.push(problem);
        }
        if let Some(problem) = api::claims::foreign_client_id(app) {
            problems.push(problem);
        }
        let dur = |field: &str, v: &str, problems: &mut Vec<String>| -> u64 {
            match api::parse_duration(v) {
                Ok(d) => d.as_secs().max(1),
                Err(e) => {
                    problems.push(format!("spec.tokenLifetimes.{field}: {e}"));
                    1
                }
            }
        };
        let lifetimes = ClientLifetimes {
            access: dur("access", &spec.token_lifetimes.access, &mut problems),
            refresh: dur("refresh", &spec.token_lifetimes.refresh, &mut problems),
            idle: dur("idle", &spec.token_lifetimes.idle, &mut problems),
        };
        let mut secrets: Vec<SecretHashEntry> = app
            .status
            .as_ref()
            .map(|s| {
                s.client_secrets
                    .iter()
                    .map(|h| SecretHashEntry {
                        hash: h.hash.clone(),
                        expires_at: h
                            .expires_at
                            .as_ref()
                            .map(|t| u64::try_from(t.0.as_second()).unwrap_or(0)),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let public = spec.client_type == ClientType::Public;
        if secrets.is_empty()
            && !public
            && let Some(s) = local_secret
        {
            secrets.push(SecretHashEntry {
                hash: contract::secret::hash_client_secret(s),
                expires_at: None,
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            id,
            name: spec.display_name.clone(),
            description: spec.description.clone(),
            logo_uri: spec.logo_uri.clone(),
            public,
            third_party: spec.trust == Trust::ThirdParty,
            redirect_uris: spec.redirect_uris.clone(),
            post_logout_redirect_uris: spec.post_logout_redirect_uris.clone(),
            authorization_code: spec.grant_types.contains(&GrantType::AuthorizationCode),
            refresh_token: spec.grant_types.contains(&GrantType::RefreshToken),
            client_credentials: !public && spec.grant_types.contains(&GrantType::ClientCredentials),
            scopes: spec.scopes.clone(),
            resource: spec.resource.clone(),
            access: spec.access.clone(),
            lifetimes: Some(lifetimes),
            secrets,
            source: Source::ConnectedApp,
        })
    }

    /// Verifies a presented client secret against every accepted hash (constant time each).
    pub(crate) fn verify_secret(&self, presented: &str, now: u64) -> bool {
        let mut ok = false;
        for s in &self.secrets {
            let valid = s.expires_at.is_none_or(|e| now < e);
            // Evaluate every entry, so timing does not reveal which one matched.
            let matched = contract::secret::verify_client_secret(presented, &s.hash);
            ok |= matched && valid;
        }
        ok
    }

    /// The redirect URI registered exactly as given, if any.
    pub(crate) fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }
}

/// Whether a URL's host is a loopback name or address.
pub(crate) fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// One generation of the ConnectedApp clients, with what is derived from them computed once
/// when it is built (not on every request).
#[derive(Debug, Default)]
struct Table {
    by_id: HashMap<String, Arc<Client>>,
    /// The client of each resource. The clients come from apps whose resources were resolved
    /// (`api::resources`), so each resource has one; should a table be built from clients
    /// sharing one (`Registry::from_clients`), the lowest client ID has it, not an arbitrary one.
    by_resource: HashMap<String, Arc<Client>>,
    /// The origins of every client's redirect URIs (CORS answers these).
    origins: HashSet<String>,
    /// Every client's display name, as [`name_key`] (a registered client may not take one).
    names: HashSet<String>,
}

/// What two display names that people would take for the same app have in common: the letters
/// and digits, lower-cased ("Team wiki", "team-WIKI" and "Team  Wiki!" are one name).
pub(crate) fn name_key(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

impl Table {
    fn new(by_id: HashMap<String, Arc<Client>>) -> Self {
        let origins = by_id
            .values()
            .flat_map(|c| &c.redirect_uris)
            .filter_map(|u| crate::directory::origins::origin_of(u))
            .collect();
        let names = by_id.values().map(|c| name_key(&c.name)).collect();
        let mut by_resource: HashMap<String, Arc<Client>> = HashMap::new();
        let mut ids: Vec<&Arc<Client>> = by_id.values().collect();
        ids.sort_by(|a, b| a.id.cmp(&b.id));
        for c in ids {
            if let Some(r) = &c.resource {
                by_resource.entry(r.clone()).or_insert_with(|| c.clone());
            }
        }
        Self {
            by_id,
            by_resource,
            origins,
            names,
        }
    }

    fn from_clients(clients: Vec<Client>) -> Self {
        Self::new(
            clients
                .into_iter()
                .map(|c| (c.id.clone(), Arc::new(c)))
                .collect(),
        )
    }
}

/// The statically configured clients (ConnectedApps), replaced as a whole on reload.
#[derive(Debug, Default)]
pub struct Registry {
    dir: Option<PathBuf>,
    clients: RwLock<Arc<Table>>,
    fingerprint: RwLock<Vec<(PathBuf, Option<SystemTime>, u64)>>,
    ready: AtomicBool,
}

impl Registry {
    /// A registry holding exactly these clients (unit tests).
    #[cfg(test)]
    pub(crate) fn from_clients(clients: Vec<Client>) -> Self {
        Self {
            dir: None,
            clients: RwLock::new(Arc::new(Table::from_clients(clients))),
            fingerprint: RwLock::default(),
            ready: AtomicBool::new(true),
        }
    }

    /// An empty registry that is not ready until [`Registry::replace`] is first called (the
    /// Kubernetes watch fills it).
    pub(crate) fn pending() -> Self {
        Self::default()
    }

    /// Whether the clients have been loaded at least once.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Replaces every client (from the Kubernetes watch).
    pub fn replace(&self, clients: Vec<Client>) {
        let table = Arc::new(Table::from_clients(clients));
        *self
            .clients
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = table;
        self.ready.store(true, Ordering::Release);
    }

    /// Loads every ConnectedApp of a directory; fails with every problem found.
    pub(crate) fn load_dir(dir: &Path) -> Result<Self, Vec<String>> {
        let this = Self {
            dir: Some(dir.to_path_buf()),
            ..Self::default()
        };
        this.reload()?;
        this.ready.store(true, Ordering::Release);
        Ok(this)
    }

    fn table(&self) -> std::sync::RwLockReadGuard<'_, Arc<Table>> {
        self.clients
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A client by ID.
    pub fn get(&self, id: &str) -> Option<Arc<Client>> {
        self.table().by_id.get(id).cloned()
    }

    /// Whether `origin` (ASCII serialisation) is the origin of a redirect URI of some client:
    /// one hash lookup, the set is computed when the clients are swapped in.
    pub(crate) fn has_redirect_origin(&self, origin: &str) -> bool {
        self.table().origins.contains(origin)
    }

    /// Whether a client's display name is `name` as people would read it ([`name_key`]): one
    /// hash lookup.
    pub(crate) fn has_name_like(&self, name: &str) -> bool {
        self.table().names.contains(&name_key(name))
    }

    /// The client whose `resource` is `resource` (byte-exact), if any: one hash lookup.
    pub fn resource_owner(&self, resource: &str) -> Option<Arc<Client>> {
        self.table().by_resource.get(resource).cloned()
    }

    /// Every client, ordered by ID.
    pub fn all(&self) -> Vec<Arc<Client>> {
        let table = self.table().clone();
        let mut v: Vec<_> = table.by_id.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Re-reads the directory if any file changed. On error the previous clients stay.
    pub fn reload(&self) -> Result<bool, Vec<String>> {
        let Some(dir) = &self.dir else {
            return Ok(false);
        };
        let fp = fingerprint(dir).map_err(|e| vec![format!("{}: {e}", dir.display())])?;
        if *self
            .fingerprint
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            == fp
            && !fp.is_empty()
        {
            return Ok(false);
        }
        let table = Arc::new(Table::new(read_dir(dir)?));
        *self
            .clients
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = table;
        *self
            .fingerprint
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fp;
        Ok(true)
    }
}

fn fingerprint(dir: &Path) -> std::io::Result<Vec<(PathBuf, Option<SystemTime>, u64)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        v.push((e.path(), m.modified().ok(), m.len()));
    }
    v.sort();
    Ok(v)
}

fn read_dir(dir: &Path) -> Result<HashMap<String, Arc<Client>>, Vec<String>> {
    let mut problems = Vec::new();
    let mut apps: Vec<(String, ConnectedApp)> = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| vec![format!("{}: {e}", dir.display())])?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "yaml" | "yml" | "json") {
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let where_ = format!("{} (document {})", path.display(), i + 1);
            let value = match <serde_yaml::Value as serde::Deserialize>::deserialize(doc) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("{where_}: {e}"));
                    continue;
                }
            };
            if value.is_null() || value.get("kind").and_then(|k| k.as_str()) != Some("ConnectedApp")
            {
                continue;
            }
            match serde_yaml::from_value::<ConnectedApp>(value) {
                Ok(mut app) => {
                    if app.metadata.namespace.is_none() {
                        app.metadata.namespace = Some("default".into());
                    }
                    apps.push((where_, app));
                }
                Err(e) => problems.push(format!("{where_}: {e}")),
            }
        }
    }
    let origin = |app: &ConnectedApp| {
        apps.iter()
            .find(|(_, a)| std::ptr::eq(a, app))
            .map(|(w, _)| w.clone())
            .unwrap_or_default()
    };
    let (clients, conflicts) = api::claims::resolve(apps.iter().map(|(_, a)| a));
    for c in &conflicts {
        problems.push(format!(
            "{}: ConnectedApp {} claims client ID {:?}, which ConnectedApp {} in {} claims too: give one of them another spec.clientID",
            origin(c.loser),
            api::claims::display_name(c.loser),
            c.loser.client_id().unwrap_or_default(),
            api::claims::display_name(c.holder),
            origin(c.holder),
        ));
    }
    // No resource-host bindings for manifest files (`--resource-hosts` needs the watch).
    let (winners, conflicts, _) =
        api::resources::resolve(clients, &api::resource_hosts::ResourceHosts::default());
    for c in &conflicts {
        problems.push(format!(
            "{}: ConnectedApp {} claims resource {:?}, which ConnectedApp {} in {} claims too: give one of them another spec.resource",
            origin(c.loser),
            api::claims::display_name(c.loser),
            c.loser.spec.resource.as_deref().unwrap_or_default(),
            api::claims::display_name(c.holder),
            origin(c.holder),
        ));
    }
    let mut out = HashMap::new();
    for app in winners {
        let id = app.client_id().unwrap_or_default();
        let secret = std::fs::read_to_string(dir.join(format!("{id}.secret")))
            .ok()
            .map(|s| s.trim_end().to_string());
        match Client::from_connected_app(app, secret.as_deref()) {
            Ok(c) => {
                out.insert(c.id.clone(), Arc::new(c));
            }
            Err(ps) => problems.extend(ps.into_iter().map(|p| format!("{}: {p}", origin(app)))),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const MANIFESTS: &str = r#"
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: wiki, namespace: tools}
spec:
  displayName: Team wiki
  redirectURIs: ["https://wiki.example.com/oauth2/callback"]
  access: {allowedGroups: [engineering]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
---
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: agent}
spec:
  displayName: Agent
  clientType: public
  trust: thirdParty
  redirectURIs: ["http://127.0.0.1:33418/callback"]
"#;

    #[test]
    fn loads_manifests_with_local_secret() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("apps.yaml"), MANIFESTS).unwrap();
        std::fs::write(dir.path().join("tools.wiki.secret"), "s3cret\n").unwrap();
        let reg = Registry::load_dir(dir.path()).unwrap();
        let wiki = reg.get("tools.wiki").unwrap();
        assert!(!wiki.public && !wiki.third_party && wiki.authorization_code);
        assert!(wiki.verify_secret("s3cret", 0));
        assert!(!wiki.verify_secret("s3cret\n", 0));
        assert!(!wiki.verify_secret("other", 0));
        let agent = reg.get("default.agent").unwrap();
        assert!(agent.public && agent.third_party && agent.secrets.is_empty());
        assert!(!agent.verify_secret("", 0));
        assert_eq!(reg.all().len(), 2);
        // Unchanged directory: no reload.
        assert_eq!(reg.reload(), Ok(false));
    }

    #[test]
    fn invalid_manifests_are_reported_with_their_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad.yaml"),
            "apiVersion: keyway.dev/v1alpha1\nkind: ConnectedApp\nmetadata: {name: x}\nspec:\n  displayName: X\n  redirectURIs: [\"http://evil.example/cb\"]\n",
        )
        .unwrap();
        let problems = Registry::load_dir(dir.path()).unwrap_err();
        assert!(problems[0].contains("bad.yaml"), "{problems:?}");
        assert!(problems[0].contains("redirectURIs"), "{problems:?}");
    }

    #[test]
    fn two_manifests_claiming_one_client_id_are_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("apps.yaml"), MANIFESTS).unwrap();
        // Pins the default ID of tools/wiki in apps.yaml.
        std::fs::write(
            dir.path().join("more.yaml"),
            "apiVersion: keyway.dev/v1alpha1\nkind: ConnectedApp\nmetadata: {name: other, namespace: tools}\nspec:\n  displayName: Other\n  clientID: tools.wiki\n  grantTypes: [client_credentials]\n",
        )
        .unwrap();
        let problems = Registry::load_dir(dir.path()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        let p = &problems[0];
        assert!(p.contains("more.yaml") && p.contains("apps.yaml"), "{p}");
        assert!(p.contains("tools/other") && p.contains("tools/wiki"), "{p}");
        assert!(p.contains("\"tools.wiki\""), "{p}");
    }

    #[test]
    fn two_manifests_claiming_one_resource_are_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = |name: &str, resource: &str| {
            format!(
                "apiVersion: keyway.dev/v1alpha1\nkind: ConnectedApp\nmetadata: {{name: {name}, namespace: tools}}\nspec:\n  displayName: {name}\n  grantTypes: [client_credentials]\n  resource: {resource:?}\n"
            )
        };
        std::fs::write(
            dir.path().join("a.yaml"),
            manifest("wiki", "https://wiki.example.com/"),
        )
        .unwrap();
        // A resource that differs byte for byte is another resource.
        std::fs::write(
            dir.path().join("b.yaml"),
            manifest("near", "https://wiki.example.com"),
        )
        .unwrap();
        let reg = Registry::load_dir(dir.path()).unwrap();
        assert_eq!(
            reg.resource_owner("https://wiki.example.com/").unwrap().id,
            "tools.wiki"
        );
        assert_eq!(
            reg.resource_owner("https://wiki.example.com").unwrap().id,
            "tools.near"
        );
        assert!(reg.resource_owner("https://WIKI.example.com/").is_none());
        // A second app naming the first one's resource.
        std::fs::write(
            dir.path().join("c.yaml"),
            manifest("squatter", "https://wiki.example.com/"),
        )
        .unwrap();
        let problems = Registry::load_dir(dir.path()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        let p = &problems[0];
        assert!(p.contains("c.yaml") && p.contains("a.yaml"), "{p}");
        assert!(
            p.contains("tools/squatter") && p.contains("tools/wiki"),
            "{p}"
        );
        assert!(p.contains("resource \"https://wiki.example.com/\""), "{p}");
        assert!(p.contains("spec.resource"), "{p}");
        // A running registry keeps its clients.
        assert!(reg.reload().is_err());
        assert_eq!(
            reg.resource_owner("https://wiki.example.com/").unwrap().id,
            "tools.wiki"
        );
        assert!(reg.get("tools.squatter").is_none());
    }

    #[test]
    fn the_owner_of_a_resource_shared_by_given_clients_is_the_lowest_id() {
        let client = |id: &str| {
            let mut c = Client::from_connected_app(
                &serde_yaml::from_str::<ConnectedApp>(&format!(
                    "apiVersion: keyway.dev/v1alpha1\nkind: ConnectedApp\nmetadata: {{name: {id}, namespace: n}}\nspec:\n  displayName: S\n  grantTypes: [client_credentials]\n  resource: https://r.example.com\n"
                ))
                .unwrap(),
                None,
            )
            .unwrap();
            c.id = id.into();
            c
        };
        for _ in 0..8 {
            let reg = Registry::from_clients(vec![client("c"), client("a"), client("b")]);
            assert_eq!(reg.resource_owner("https://r.example.com").unwrap().id, "a");
        }
    }

    #[test]
    fn a_running_registry_keeps_its_clients_when_a_reload_brings_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("apps.yaml"), MANIFESTS).unwrap();
        let reg = Registry::load_dir(dir.path()).unwrap();
        std::fs::write(
            dir.path().join("more.yaml"),
            "apiVersion: keyway.dev/v1alpha1\nkind: ConnectedApp\nmetadata: {name: agent2}\nspec:\n  displayName: Agent 2\n  clientID: default.agent\n  grantTypes: [client_credentials]\n",
        )
        .unwrap();
        assert!(reg.reload().is_err());
        assert_eq!(reg.get("default.agent").unwrap().name, "Agent");
    }

    #[test]
    fn client_ids_of_registered_clients_are_refused() {
        let load = |yaml: &str| {
            Client::from_connected_app(&serde_yaml::from_str::<ConnectedApp>(yaml).unwrap(), None)
        };
        let problems = load(
            "apiVersion: keyway.dev/v1alpha1\nkind: ConnectedApp\nmetadata: {name: s, namespace: dcr}\nspec:\n  displayName: S\n  grantTypes: [client_credentials]\n",
        )
        .unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("\"dcr.s\"")),
            "{problems:?}"
        );
        let problems = load(
            "apiVersion: keyway.dev/v1alpha1\nkind: ConnectedApp\nmetadata: {name: s, namespace: n}\nspec:\n  displayName: S\n  clientID: dcr.abc\n  grantTypes: [client_credentials]\n",
        )
        .unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("spec.clientID"), "{problems:?}");
        assert!(
            load("apiVersion: keyway.dev/v1alpha1\nkind: ConnectedApp\nmetadata: {name: s, namespace: dcr}\nspec:\n  displayName: S\n  clientID: s\n  grantTypes: [client_credentials]\n")
                .is_ok()
        );
    }

    #[test]
    fn a_pinned_id_with_a_dot_of_another_namespace_is_not_a_client() {
        let load = |ns: &str, pin: &str| {
            let yaml = format!(
                "apiVersion: keyway.dev/v1alpha1\nkind: ConnectedApp\nmetadata: {{name: s, namespace: {ns}}}\nspec:\n  displayName: S\n  clientID: {pin}\n  grantTypes: [client_credentials]\n"
            );
            Client::from_connected_app(&serde_yaml::from_str::<ConnectedApp>(&yaml).unwrap(), None)
        };
        let problems = load("a", "b.tool").unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("spec.clientID"), "{problems:?}");
        assert!(problems[0].contains("\"a.\""), "{problems:?}");
        assert!(load("ab", "a.tool").is_err());
        assert_eq!(load("a", "a.tool").unwrap().id, "a.tool");
        assert_eq!(load("a", "tool").unwrap().id, "tool");
    }

    #[test]
    fn display_names_compare_as_people_read_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("apps.yaml"), MANIFESTS).unwrap();
        let reg = Registry::load_dir(dir.path()).unwrap();
        for same in [
            "Team wiki",
            "team WIKI",
            " Team-Wiki! ",
            "TEAMWIKI",
            "agent",
        ] {
            assert!(reg.has_name_like(same), "{same}");
        }
        for other in ["Team wiki 2", "Wiki", "", "Team wik"] {
            assert!(!reg.has_name_like(other), "{other}");
        }
    }

    #[test]
    fn expired_secret_hash_is_refused() {
        let mut c = Client::from_connected_app(
            &serde_yaml::from_str::<ConnectedApp>(
                "apiVersion: keyway.dev/v1alpha1\nkind: ConnectedApp\nmetadata: {name: s, namespace: n}\nspec:\n  displayName: S\n  grantTypes: [client_credentials]\n",
            )
            .unwrap(),
            None,
        )
        .unwrap();
        c.secrets = vec![SecretHashEntry {
            hash: contract::secret::hash_client_secret("old"),
            expires_at: Some(100),
        }];
        assert!(c.verify_secret("old", 99));
        assert!(!c.verify_secret("old", 100));
    }
}

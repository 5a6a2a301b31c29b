//! The issuer's signing keys, kept in one Secret that the issuer mounts read-only.
//!
//! The issuer faces every employee's browser and must not hold permission to write Secrets, so
//! the operator (its leader only) writes its keys: one `<kid>.json` entry per key in the format
//! of [`contract::signing_keys`], with `not_before` written down, so that the issuer needs no
//! agreement with these settings. Each pass ([`SigningKeyManager::sync`]):
//!
//! - creates the Secret when it is missing (labelled [`SIGNING_KEYS_LABEL`]`=`[`SIGNING_KEYS_OWNER`]),
//!   with a first key that signs at once;
//! - never writes a Secret without that label (a foreign Secret): it says so in a Warning Event,
//!   the log and `keyway_operator_signing_key_syncs_total{result="foreign"}`;
//! - never writes while an entry named `*.json` is not a valid key file (Warning Event naming the
//!   entry, `result="invalid"`): it is neither dropped nor rotated around;
//! - adds a successor `lead` before the current key has signed for `rotation` (or at once when
//!   the algorithm changed), starting (`not_before`) when that period ends;
//! - removes a superseded key once its successor has signed for `retention` (the longest token
//!   lifetime), and never earlier;
//! - adds `cookie.key` (the issuer's federation cookie key, shared by its replicas) if missing;
//! - writes with optimistic concurrency (the `resourceVersion` it read; on 409 it reads again
//!   and recomputes) and only when something changes (a settled pass makes no write).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use contract::signing_keys::{self as keys, Alg, Entries, KeyMeta, Policy};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Api, Client, ResourceExt as _};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::event_fields::{event_note, regarding};
use crate::event_recorder::EventRecorder;
use crate::labels::{MANAGED_BY_LABEL, MANAGER};
use crate::metrics::{Metrics, Write};

/// The label that marks a Secret as the issuer's signing keys managed by the operator. The
/// operator writes only Secrets that carry it (it sets it on the Secrets it creates; the chart
/// sets it on the Secret it creates).
pub const SIGNING_KEYS_LABEL: &str = "keyway.dev/signing-keys";
/// Value of [`SIGNING_KEYS_LABEL`].
pub const SIGNING_KEYS_OWNER: &str = "keyway-operator";
/// The entry holding the issuer's federation cookie key (32 random bytes, standard base64).
pub const COOKIE_KEY: &str = "cookie.key";

/// How many read-compute-write rounds a pass tries when others keep writing (409).
const ATTEMPTS: u32 = 5;

/// A write attempted: what it did, the write to count and a summary of the changes, or the
/// API's refusal.
type Written = std::result::Result<(Outcome, Write, String), kube::Error>;

/// What one read-compute-write round over an existing Secret came to.
enum Round {
    /// Finished without a write (foreign, invalid or unchanged).
    Done(Outcome),
    /// A write was attempted.
    Wrote(Written),
}

/// The parameters of every write: the operator's field manager.
fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(MANAGER.into()),
        ..PostParams::default()
    }
}

/// Where the keys live and how they rotate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeysConfig {
    /// Namespace of the Secret (the issuer's).
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// Algorithm, rotation, publish lead and retention (seconds).
    pub policy: Policy,
}

impl SigningKeysConfig {
    /// Parses `<namespace>/<name>`.
    pub(crate) fn parse_secret(text: &str) -> Result<(String, String), String> {
        let (ns, name) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not <namespace>/<name>"))?;
        let label = |s: &str, max: usize| {
            !s.is_empty()
                && s.len() <= max
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
                && s.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        };
        if !label(ns, 63) || ns.contains('.') {
            return Err(format!("{ns:?} is not a namespace name (RFC 1123 label)"));
        }
        if !label(name, 253) {
            return Err(format!(
                "{name:?} is not a Secret name (RFC 1123 subdomain)"
            ));
        }
        Ok((ns.to_owned(), name.to_owned()))
    }

    /// How often the leader looks at the Secret: a quarter of the publish lead, between 1 s and
    /// 1 min (so a successor is never added much later than due).
    pub(crate) fn check_interval(&self) -> Duration {
        Duration::from_secs((self.policy.lead / 4).clamp(1, 60))
    }
}

/// What a pass did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do; no write.
    Unchanged,
    /// The Secret was created.
    Created,
    /// A key was added or retired (or the cookie key added).
    Updated,
    /// The Secret exists without [`SIGNING_KEYS_LABEL`]: left alone.
    Foreign,
    /// An entry is not a valid key file: left alone.
    Invalid,
}

/// Keeps the issuer's signing-key Secret on schedule.
pub struct SigningKeyManager {
    secrets: Api<Secret>,
    config: SigningKeysConfig,
    metrics: Arc<Metrics>,
    recorder: EventRecorder,
    clock: Clock,
    reported: Mutex<Option<String>>,
}

impl SigningKeyManager {
    /// A manager writing as `identity` (events' reporting instance).
    pub fn new(
        client: Client,
        config: SigningKeysConfig,
        metrics: Arc<Metrics>,
        identity: &str,
        clock: Clock,
    ) -> Self {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: Some(identity.to_owned()),
        };
        Self {
            secrets: Api::namespaced(client.clone(), &config.namespace),
            recorder: EventRecorder::new(client, reporter),
            config,
            metrics,
            clock,
            reported: Mutex::new(None),
        }
    }

    /// One pass: brings the Secret up to date (see the module documentation).
    pub async fn sync(&self) -> Result<Outcome> {
        self.sync_with(|| async {}).await
    }

    /// [`Self::sync`], running `before_write` between each read and the write that follows it
    /// (tests use it to write concurrently and provoke a 409).
    pub async fn sync_with<F, Fut>(&self, before_write: F) -> Result<Outcome>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ()>,
    {
        let name = self.config.name.as_str();
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let now = u64::try_from((self.clock)().as_second()).unwrap_or(0);
            let observed = self.secrets.get_opt(name).await.map_err(Error::Kube)?;
            let written = match observed {
                None => self.create(now, &before_write).await?,
                Some(secret) => match self.update(secret, now, &before_write).await? {
                    Round::Done(outcome) => return Ok(outcome),
                    Round::Wrote(written) => written,
                },
            };
            match written {
                Ok((outcome, write, summary)) => {
                    self.metrics.write(write);
                    self.clear_report();
                    let result = if outcome == Outcome::Created {
                        "created"
                    } else {
                        "updated"
                    };
                    self.metrics.signing_keys(result);
                    info!(secret = %name, %summary, "{result} the issuer's signing-key Secret");
                    return Ok(outcome);
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    self.metrics.signing_keys("conflict");
                    debug!(secret = %name, "signing-key Secret changed meanwhile; reading it again");
                    last = Some(kube::Error::Api(e));
                }
                Err(e) => return Err(Error::Kube(e)),
            }
        }
        Err(Error::Kube(last.unwrap_or_else(|| {
            kube::Error::Service("signing-key Secret kept changing".into())
        })))
    }

    /// The write of a missing Secret: labelled, with a first key.
    async fn create<F, Fut>(&self, now: u64, before_write: &F) -> Result<Written>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ()>,
    {
        let name = self.config.name.as_str();
        let data = self
            .next_data(&BTreeMap::new(), &Entries::default(), now)
            .await?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(self.config.namespace.clone()),
                labels: Some(BTreeMap::from([
                    (SIGNING_KEYS_LABEL.to_owned(), SIGNING_KEYS_OWNER.to_owned()),
                    (MANAGED_BY_LABEL.to_owned(), MANAGER.to_owned()),
                ])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            data: data.map(|(d, _)| d),
            ..Secret::default()
        };
        before_write().await;
        Ok(self
            .secrets
            .create(&post_params(), &secret)
            .await
            .map(|_| (Outcome::Created, Write::SigningKeysCreate, String::new())))
    }

    /// The round of an existing Secret: left alone when it is foreign or holds an invalid
    /// entry, unchanged when it is up to date, else replaced.
    async fn update<F, Fut>(&self, secret: Secret, now: u64, before_write: &F) -> Result<Round>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ()>,
    {
        let name = self.config.name.as_str();
        if secret.labels().get(SIGNING_KEYS_LABEL).map(String::as_str) != Some(SIGNING_KEYS_OWNER) {
            let note = format!(
                "Secret {}/{name} exists without the label {SIGNING_KEYS_LABEL}={SIGNING_KEYS_OWNER}: \
                 the operator does not write Secrets it does not manage; delete it or \
                 add the label to let the operator keep the issuer's signing keys in it",
                self.config.namespace
            );
            self.report(&secret, "ForeignSecret", note).await;
            self.metrics.signing_keys("foreign");
            return Ok(Round::Done(Outcome::Foreign));
        }
        let data = secret.data.clone().unwrap_or_default();
        let entries = keys::read_entries(data.iter().map(|(k, v)| (k.as_str(), v.0.as_slice())));
        if !entries.invalid.is_empty() {
            let list: Vec<String> = entries
                .invalid
                .iter()
                .map(|(n, why)| format!("{n}: {why}"))
                .collect();
            let note = format!(
                "invalid signing-key entries, left in place and nothing rotated until \
                 they are fixed or removed: {}",
                list.join("; ")
            );
            self.report(&secret, "InvalidSigningKey", note).await;
            self.metrics.signing_keys("invalid");
            return Ok(Round::Done(Outcome::Invalid));
        }
        let Some((data, summary)) = self.next_data(&data, &entries, now).await? else {
            self.clear_report();
            self.metrics.signing_keys("unchanged");
            return Ok(Round::Done(Outcome::Unchanged));
        };
        let mut updated = secret;
        updated.metadata.managed_fields = None;
        updated.data = Some(data);
        before_write().await;
        // Carries the resourceVersion read above: a concurrent write makes this 409.
        Ok(Round::Wrote(
            self.secrets
                .replace(name, &post_params(), &updated)
                .await
                .map(|_| (Outcome::Updated, Write::SigningKeysReplace, summary)),
        ))
    }

    /// The data the Secret should hold at `now`, with a summary of the changes, or `None` when
    /// it already does.
    async fn next_data(
        &self,
        data: &BTreeMap<String, ByteString>,
        entries: &Entries,
        now: u64,
    ) -> Result<Option<(BTreeMap<String, ByteString>, String)>> {
        let policy = self.config.policy;
        let metas: Vec<KeyMeta> = entries.keys.values().map(|f| f.meta(policy.lead)).collect();
        let schedule = keys::schedule(&metas, now, &policy);
        let mut next = data.clone();
        let mut changes = Vec::new();
        if schedule.successor {
            // The first key signs at once (nobody has cached a JWKS without it); a successor
            // when the current key's rotation period ends.
            let not_before = if metas.is_empty() {
                now
            } else {
                now.saturating_add(policy.lead)
            };
            let file = generate(policy.alg, now, not_before).await?;
            changes.push(format!("added {} (signs from {not_before})", file.kid));
            next.insert(file.file_name(), ByteString(file.to_json()));
        }
        for kid in schedule.retire {
            next.remove(&format!("{kid}{}", keys::FILE_SUFFIX));
            changes.push(format!("retired {kid}"));
        }
        if !next.contains_key(COOKIE_KEY) {
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            let text = base64::engine::general_purpose::STANDARD.encode(key);
            next.insert(COOKIE_KEY.to_owned(), ByteString(text.into_bytes()));
            changes.push(format!("added {COOKIE_KEY}"));
        }
        Ok((!changes.is_empty()).then(|| (next, changes.join(", "))))
    }

    /// Publishes a Warning Event on the Secret and logs it, once per distinct problem.
    async fn report(&self, secret: &Secret, reason: &str, note: String) {
        warn!(secret = %self.config.name, reason, "{note}");
        let key = format!("{reason}: {note}");
        if let Ok(mut last) = self.reported.lock() {
            if last.as_deref() == Some(key.as_str()) {
                return;
            }
            *last = Some(key);
        }
        let ev = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(event_note(&note)),
            action: "RotateSigningKeys".into(),
            secondary: None,
        };
        match self.recorder.publish(&ev, &regarding(secret)).await {
            Ok(()) => self.metrics.write(Write::Event),
            Err(e) => warn!(error = %e, reason, "could not record event"),
        }
    }

    fn clear_report(&self) {
        if let Ok(mut last) = self.reported.lock() {
            *last = None;
        }
    }

    /// Runs passes every [`SigningKeysConfig::check_interval`] until `stop` is cancelled.
    pub(crate) async fn run(&self, stop: CancellationToken) {
        let interval = self.config.check_interval();
        loop {
            if let Err(e) = self.sync().await {
                self.metrics.signing_keys("error");
                warn!(error = %e, secret = %self.config.name, "signing keys not synced; retrying");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// Generates a key off the async threads (RSA key generation takes a while).
async fn generate(alg: Alg, now: u64, not_before: u64) -> Result<keys::KeyFile> {
    let made = tokio::task::spawn_blocking(move || keys::generate(alg, now, Some(not_before)))
        .await
        .map_err(|e| Error::KeyGeneration(e.to_string()))?;
    made.map_err(|e| Error::KeyGeneration(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_reference_is_checked() {
        assert_eq!(
            SigningKeysConfig::parse_secret("keyway/keyway-issuer-signing-keys"),
            Ok(("keyway".into(), "keyway-issuer-signing-keys".into()))
        );
        for bad in ["keyway", "/x", "x/", "Key/x", "a.b/x", "ns/-x", "ns/X"] {
            assert!(SigningKeysConfig::parse_secret(bad).is_err(), "{bad}");
        }
    }
}

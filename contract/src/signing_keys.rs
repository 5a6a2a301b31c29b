//! The issuer's signing keys as files: the format shared by the issuer (which reads them, and
//! writes them itself in a local key directory) and the operator (which keeps them in a Secret
//! that is mounted into the issuer), and the rotation schedule both follow.
//!
//! One key per file (or Secret entry) `<kid>.json`:
//! `{"kid", "alg", "created" (unix seconds), "not_before" (unix seconds, optional), "pkcs8"
//! (standard base64 of the PKCS#8 DER private key)}`. `kid` is the RFC 7638 thumbprint of the
//! public key. A key signs from `not_before`; a file without it (written before the field
//! existed, or by the issuer in a local directory) signs from `created` + the reader's publish
//! lead. The issuer therefore needs no agreement with the writer's rotation settings.
//!
//! Schedule ([`schedule`]):
//! - a key is published in the JWKS as soon as it exists;
//! - it signs from its start until a newer key starts;
//! - a successor is made `lead` before the current key has signed for `rotation` (it starts
//!   exactly then), or at once when the configured algorithm changed;
//! - a superseded key stays published until every token it can have signed has expired
//!   (its successor's start + `retention`, the longest token lifetime).
//!
//! Key generation and validation ([`generate`], [`KeyFile::parse`]) need the `keygen` feature
//! (ring and rsa); the proxy does not link them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Suffix of key file names (`<kid>.json`).
pub const FILE_SUFFIX: &str = ".json";

/// A signing algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Alg {
    /// ECDSA P-256 SHA-256 (default).
    #[serde(rename = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 SHA-256, 2048-bit keys.
    #[serde(rename = "RS256")]
    Rs256,
    /// Ed25519.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl Alg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
            Self::EdDsa => "EdDSA",
        }
    }
}

impl std::str::FromStr for Alg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ES256" => Ok(Self::Es256),
            "RS256" => Ok(Self::Rs256),
            "EdDSA" => Ok(Self::EdDsa),
            other => Err(format!("{other:?} is not ES256, RS256 or EdDSA")),
        }
    }
}

/// One key file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// Key ID: the RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// Algorithm.
    pub alg: Alg,
    /// Creation time (unix seconds).
    pub created: u64,
    /// When the key starts signing (unix seconds); absent: `created` + the reader's lead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<u64>,
    /// The private key: PKCS#8 DER, standard base64.
    pub pkcs8: String,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created", &self.created)
            .field("not_before", &self.not_before)
            .finish_non_exhaustive()
    }
}

impl KeyFile {
    /// The file (or Secret entry) name: `<kid>.json`.
    pub fn file_name(&self) -> String {
        format!("{}{FILE_SUFFIX}", self.kid)
    }

    /// When the key starts signing, for a reader whose publish lead is `lead` seconds.
    pub fn start(&self, lead: u64) -> u64 {
        self.not_before
            .unwrap_or_else(|| self.created.saturating_add(lead))
    }

    /// The schedule's view of this key.
    pub fn meta(&self, lead: u64) -> KeyMeta {
        KeyMeta {
            kid: self.kid.clone(),
            alg: self.alg,
            created: self.created,
            start: self.start(lead),
            explicit_start: self.not_before.is_some(),
        }
    }

    /// The JSON text of the file.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What the schedule needs to know about a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyMeta {
    /// Key ID.
    pub kid: String,
    /// Algorithm.
    pub alg: Alg,
    /// Creation time.
    pub created: u64,
    /// When it starts signing.
    pub start: u64,
    /// Whether the start was written down (`not_before`) rather than derived from `created`.
    pub explicit_start: bool,
}

/// The rotation policy of whoever writes keys (all durations in seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Algorithm of new keys.
    pub alg: Alg,
    /// How long a key signs before its successor starts.
    pub rotation: u64,
    /// How long a new key is published before it signs.
    pub lead: u64,
    /// The longest lifetime of a token a key signs: how long a superseded key stays published.
    pub retention: u64,
}

/// What the schedule asks for at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    /// The key that signs now (a kid of the input), if any may.
    pub signing: Option<String>,
    /// A new key is due.
    pub successor: bool,
    /// Keys whose tokens have all expired (kids of the input).
    pub retire: Vec<String>,
}

/// Sorts keys by start (then creation) as the schedule sees them.
pub fn sort(keys: &mut [KeyMeta]) {
    keys.sort_by(|a, b| (a.start, a.created, &a.kid).cmp(&(b.start, b.created, &b.kid)));
}

/// Applies the schedule to `keys` (any order) at `now`. Without a started key, the oldest key
/// signs only if its start is derived (a key file without `not_before`, as written before the
/// field existed): a written `not_before` is never anticipated.
pub fn schedule(keys: &[KeyMeta], now: u64, policy: &Policy) -> Schedule {
    let mut keys = keys.to_vec();
    sort(&mut keys);
    let signing_idx = keys
        .iter()
        .rposition(|k| k.start <= now)
        .or_else(|| keys.first().filter(|k| !k.explicit_start).map(|_| 0));
    let successor = match keys.last() {
        None => true,
        Some(newest) => {
            newest.alg != policy.alg
                || newest.start.saturating_add(policy.rotation) <= now.saturating_add(policy.lead)
        }
    };
    let mut retire = Vec::new();
    if let Some(active) = signing_idx {
        for i in 0..active {
            let successor_start = keys[i + 1].start;
            if successor_start.saturating_add(policy.retention) <= now {
                retire.push(keys[i].kid.clone());
            }
        }
    }
    Schedule {
        signing: signing_idx.map(|i| keys[i].kid.clone()),
        successor,
        retire,
    }
}

/// Entries of a key directory or Secret: which are key files, and which could not be read.
#[derive(Debug, Default)]
pub struct Entries {
    /// Valid key files by entry name.
    pub keys: BTreeMap<String, KeyFile>,
    /// Entries named `*.json` that are not valid key files, with the reason (never the content).
    pub invalid: Vec<(String, String)>,
}

#[cfg(feature = "keygen")]
mod keygen;
#[cfg(feature = "keygen")]
pub use keygen::{KeyGenError, generate, public_jwk, read_entries};

/// RFC 7638 JWK thumbprint (SHA-256, base64url) of a public JWK (`EC`, `OKP` or `RSA`).
pub fn thumbprint(jwk: &serde_json::Value) -> String {
    use base64::Engine as _;
    use sha2::{Digest as _, Sha256};
    let members: &[&str] = match jwk["kty"].as_str() {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("OKP") => &["crv", "kty", "x"],
        _ => &["e", "kty", "n"],
    };
    let mut m = BTreeMap::new();
    for k in members {
        m.insert(*k, jwk[*k].clone());
    }
    let canonical = serde_json::to_string(&m).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(kid: &str, created: u64, not_before: Option<u64>) -> KeyMeta {
        KeyFile {
            kid: kid.into(),
            alg: Alg::Es256,
            created,
            not_before,
            pkcs8: String::new(),
        }
        .meta(100)
    }

    const P: Policy = Policy {
        alg: Alg::Es256,
        rotation: 1000,
        lead: 100,
        retention: 50,
    };

    #[test]
    fn empty_needs_a_first_key() {
        let s = schedule(&[], 5, &P);
        assert_eq!(s.signing, None);
        assert!(s.successor);
    }

    #[test]
    fn successor_is_due_lead_before_rotation() {
        let k = [key("a", 10_000, Some(10_000))];
        assert!(!schedule(&k, 10_899, &P).successor);
        assert!(schedule(&k, 10_900, &P).successor);
        assert_eq!(schedule(&k, 10_900, &P).signing.as_deref(), Some("a"));
    }

    #[test]
    fn a_written_start_is_never_anticipated_but_a_derived_one_is_for_the_oldest_key() {
        let future = [key("a", 10_000, Some(10_500))];
        assert_eq!(schedule(&future, 10_000, &P).signing, None);
        let legacy = [key("a", 10_000, None)];
        assert_eq!(schedule(&legacy, 10_000, &P).signing.as_deref(), Some("a"));
    }

    #[test]
    fn newest_started_key_signs_and_old_ones_retire_after_retention() {
        let k = [
            key("b", 10_900, Some(11_000)),
            key("a", 10_000, Some(10_000)),
        ];
        let s = schedule(&k, 10_999, &P);
        assert_eq!(s.signing.as_deref(), Some("a"));
        assert!(!s.successor);
        let s = schedule(&k, 11_000, &P);
        assert_eq!(s.signing.as_deref(), Some("b"));
        assert!(s.retire.is_empty());
        assert_eq!(schedule(&k, 11_050, &P).retire, vec!["a".to_string()]);
    }

    #[test]
    fn an_algorithm_change_asks_for_a_successor() {
        let k = [key("a", 10_000, Some(10_000))];
        let p = Policy {
            alg: Alg::EdDsa,
            ..P
        };
        assert!(schedule(&k, 10_001, &p).successor);
    }

    #[test]
    fn files_without_not_before_still_parse() {
        let text = br#"{"kid":"k","alg":"ES256","created":5,"pkcs8":"AA=="}"#;
        let f: KeyFile = serde_json::from_slice(text).unwrap();
        assert_eq!(f.start(100), 105);
        assert!(
            !String::from_utf8(f.to_json())
                .unwrap()
                .contains("not_before")
        );
    }
}

//! Signing keys: a directory key store, rotation, the JWKS, and JWT signing.
//!
//! The key files and the rotation schedule are the contract in
//! [`contract::signing_keys`] (one `<kid>.json` per key: `kid`, `alg`, `created`, optional
//! `not_before`, `pkcs8`): a key is published from the moment it exists, signs from its start
//! (`not_before`, or `created` + `--key-publish-lead` for files without it) until a newer key
//! starts, and stays published until every token it signed has expired.
//!
//! Two modes:
//! - **local** ([`Keys::open`], a writable directory): the issuer applies the schedule itself,
//!   creating successors (files mode 0600, without `not_before`) and deleting retired keys;
//! - **read-only** (`Keys::open_read_only`, e.g. a mounted Secret that the operator rotates):
//!   the issuer never writes; `Keys::rotate` re-reads the directory when its content changed
//!   (through kubelet's `..data` symlink, so that a set swapped during the read is read again),
//!   publishes every key in it and signs with the newest key whose start has passed. A set with
//!   a malformed file is refused as a whole: the last good set stays in force. Until a key may
//!   sign, `KeyRing::signing` is `None` and the issuer is not ready.
//!
//! Tokens are signed with `ring` key pairs held in memory. `jsonwebtoken` 9 re-parses the PKCS#8
//! key (deriving the public point: a second scalar multiplication) on every `encode`, which would
//! halve the client_credentials rate, so signing is done here; verification of our own tokens uses
//! `jsonwebtoken` with an explicit algorithm list.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub use contract::signing_keys::Alg;
use contract::signing_keys::{self as contract_keys, KeyFile, KeyMeta, Policy};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use serde::Serialize;

fn jwt_alg(alg: Alg) -> Algorithm {
    match alg {
        Alg::Es256 => Algorithm::ES256,
        Alg::Rs256 => Algorithm::RS256,
        Alg::EdDsa => Algorithm::EdDSA,
    }
}

/// Key-store failures.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key directory failed.
    #[error("key directory {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key file is malformed.
    #[error("key file {0}: {1}")]
    Invalid(PathBuf, String),
    /// Generating or using a key failed.
    #[error("cryptographic failure: {0}")]
    Crypto(&'static str),
}

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// One signing key with everything precomputed for the hot path.
pub struct SigningKey {
    /// Key ID (RFC 7638 thumbprint).
    pub kid: String,
    /// Algorithm.
    pub alg: Alg,
    /// Creation time (unix seconds).
    pub created: u64,
    /// When it starts signing, if written down in its file.
    pub not_before: Option<u64>,
    pair: Pair,
    pkcs8: Vec<u8>,
    /// Public JWK.
    pub jwk: serde_json::Value,
    decoding: DecodingKey,
    header_at: String,
    header_id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created", &self.created)
            .field("not_before", &self.not_before)
            .finish_non_exhaustive()
    }
}

/// Which JWT `typ` to sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Typ {
    /// RFC 9068 access token.
    AccessToken,
    /// OIDC ID token (and other plain JWTs).
    Jwt,
}

impl SigningKey {
    /// Generates a new key.
    pub fn generate(alg: Alg, created: u64) -> Result<Self, KeyError> {
        let file =
            contract_keys::generate(alg, created, None).map_err(|e| KeyError::Crypto(e.0))?;
        Self::from_file(&file)
    }

    /// Loads a key from its file (already checked, or freshly generated).
    fn from_file(file: &KeyFile) -> Result<Self, KeyError> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(file.pkcs8.as_bytes())
            .map_err(|_| KeyError::Crypto("key encoding"))?;
        let mut key = Self::from_pkcs8(file.alg, file.created, der)?;
        key.not_before = file.not_before;
        Ok(key)
    }

    /// Loads a key from PKCS#8 DER.
    pub(crate) fn from_pkcs8(alg: Alg, created: u64, pkcs8: Vec<u8>) -> Result<Self, KeyError> {
        let bad = || KeyError::Crypto("key rejected");
        let jwk = contract_keys::public_jwk(alg, &pkcs8).map_err(|_| bad())?;
        let part = |name: &str| jwk[name].as_str().unwrap_or_default().to_owned();
        let (pair, decoding) = match alg {
            Alg::Es256 => {
                let kp = EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &pkcs8,
                    &SystemRandom::new(),
                )
                .map_err(|_| bad())?;
                let decoding =
                    DecodingKey::from_ec_components(&part("x"), &part("y")).map_err(|_| bad())?;
                (Pair::Ec(kp), decoding)
            }
            Alg::EdDsa => {
                let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).map_err(|_| bad())?;
                let decoding = DecodingKey::from_ed_components(&part("x")).map_err(|_| bad())?;
                (Pair::Ed(kp), decoding)
            }
            Alg::Rs256 => {
                let kp = RsaKeyPair::from_pkcs8(&pkcs8).map_err(|_| bad())?;
                let decoding =
                    DecodingKey::from_rsa_components(&part("n"), &part("e")).map_err(|_| bad())?;
                (Pair::Rsa(kp), decoding)
            }
        };
        let kid = part("kid");
        let header = |typ: &str| {
            let h = serde_json::json!({"alg": alg.as_str(), "typ": typ, "kid": kid});
            URL_SAFE_NO_PAD.encode(h.to_string())
        };
        Ok(Self {
            header_at: header("at+jwt"),
            header_id: header("JWT"),
            kid,
            alg,
            created,
            not_before: None,
            pair,
            pkcs8,
            jwk,
            decoding,
        })
    }

    fn meta(&self, lead: u64) -> KeyMeta {
        KeyMeta {
            kid: self.kid.clone(),
            alg: self.alg,
            created: self.created,
            start: self
                .not_before
                .unwrap_or_else(|| self.created.saturating_add(lead)),
            explicit_start: self.not_before.is_some(),
        }
    }

    fn file(&self) -> KeyFile {
        KeyFile {
            kid: self.kid.clone(),
            alg: self.alg,
            created: self.created,
            not_before: self.not_before,
            pkcs8: base64::engine::general_purpose::STANDARD.encode(&self.pkcs8),
        }
    }

    fn sign_bytes(&self, msg: &[u8], out: &mut String) -> Result<(), KeyError> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Ec(kp) => {
                let sig = kp
                    .sign(&rng, msg)
                    .map_err(|_| KeyError::Crypto("ECDSA signing"))?;
                URL_SAFE_NO_PAD.encode_string(sig.as_ref(), out);
            }
            Pair::Ed(kp) => URL_SAFE_NO_PAD.encode_string(kp.sign(msg).as_ref(), out),
            Pair::Rsa(kp) => {
                let mut sig = vec![0; kp.public().modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(|_| KeyError::Crypto("RSA signing"))?;
                URL_SAFE_NO_PAD.encode_string(&sig, out);
            }
        }
        Ok(())
    }

    /// Signs claims into a compact JWS.
    pub fn sign<T: Serialize>(&self, typ: Typ, claims: &T) -> Result<String, KeyError> {
        let payload =
            serde_json::to_vec(claims).map_err(|_| KeyError::Crypto("claims serialisation"))?;
        let header = match typ {
            Typ::AccessToken => &self.header_at,
            Typ::Jwt => &self.header_id,
        };
        let mut out = String::with_capacity(header.len() + payload.len() * 4 / 3 + 400);
        out.push_str(header);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
        let signed_len = out.len();
        let mut sig = String::with_capacity(350);
        self.sign_bytes(&out.as_bytes()[..signed_len], &mut sig)?;
        out.push('.');
        out.push_str(&sig);
        Ok(out)
    }
}

/// The keys in force at one moment.
#[derive(Debug)]
pub(crate) struct KeyRing {
    /// The key that signs now; `None` while no key may sign (read-only mode before a key has
    /// started): the issuer is then not ready and refuses to mint tokens.
    pub(crate) signing: Option<Arc<SigningKey>>,
    /// Every published key (including the signing key and not-yet-active successors).
    pub(crate) published: Vec<Arc<SigningKey>>,
    /// The JWKS document, serialised.
    pub(crate) jwks: Arc<[u8]>,
}

impl KeyRing {
    /// Finds a published key by `kid`.
    pub(crate) fn by_kid(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.published.iter().find(|k| k.kid == kid)
    }

    /// Algorithms of the published keys.
    pub(crate) fn algs(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self.published.iter().map(|k| k.alg.as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Verifies a JWT we signed: signature with a published key, expected `typ`, `iss`, `exp`.
    /// Returns its claims.
    pub(crate) fn verify(
        &self,
        token: &str,
        typ: Typ,
        issuer: &str,
        now: u64,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        if token.len() > 8192 {
            return None;
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        let want = match typ {
            Typ::AccessToken => "at+jwt",
            Typ::Jwt => "JWT",
        };
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(want))
        {
            return None;
        }
        let key = self.by_kid(header.kid.as_deref()?)?;
        let mut v = Validation::new(jwt_alg(key.alg));
        v.validate_aud = false;
        v.validate_exp = false;
        v.set_issuer(&[issuer]);
        v.set_required_spec_claims(&["exp", "iss"]);
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key.decoding,
            &v,
        )
        .ok()?;
        let exp = data.claims.get("exp")?.as_u64()?;
        (exp > now).then_some(data.claims)
    }
}

/// The key store: a directory and the rotation policy.
pub struct Keys {
    dir: PathBuf,
    read_only: bool,
    policy: Policy,
    state: Mutex<State>,
    ring: RwLock<Arc<KeyRing>>,
}

#[derive(Default)]
struct State {
    keys: Vec<Arc<SigningKey>>,
    /// Read-only mode: the directory content last read (good or not), to re-read only on change.
    seen: Option<BTreeMap<String, Vec<u8>>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("dir", &self.dir)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl Keys {
    /// Opens (creating if needed) a local key directory and brings the keys up to date at `now`.
    /// `max_token_ttl` is the longest lifetime of any token a key signs.
    pub fn open(
        dir: &Path,
        alg: Alg,
        rotation: u64,
        lead: u64,
        max_token_ttl: u64,
        now: u64,
    ) -> Result<Self, KeyError> {
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let files = read_snapshot(dir)?;
        let keys = parse_set(dir, &files)?;
        let this = Self::new(dir, false, alg, rotation, lead, max_token_ttl, keys);
        this.rotate(now)?;
        Ok(this)
    }

    /// Opens a key directory that someone else writes (a mounted Secret). Fails only when the
    /// directory cannot be read; a malformed set is logged and leaves the issuer without keys
    /// (not ready) until a good set appears.
    pub(crate) fn open_read_only(dir: &Path, lead: u64, now: u64) -> Result<Self, KeyError> {
        read_snapshot(dir)?;
        let this = Self::new(dir, true, Alg::Es256, u64::MAX, lead, 0, Vec::new());
        if let Err(e) = this.rotate(now) {
            tracing::error!(error = %e, "signing keys not loaded; not ready until they are");
        }
        Ok(this)
    }

    fn new(
        dir: &Path,
        read_only: bool,
        alg: Alg,
        rotation: u64,
        lead: u64,
        retention: u64,
        keys: Vec<Arc<SigningKey>>,
    ) -> Self {
        Self {
            dir: dir.to_path_buf(),
            read_only,
            policy: Policy {
                alg,
                rotation,
                lead,
                retention,
            },
            state: Mutex::new(State { keys, seen: None }),
            ring: RwLock::new(Arc::new(KeyRing {
                signing: None,
                published: Vec::new(),
                jwks: Arc::from(&b"{\"keys\":[]}"[..]),
            })),
        }
    }

    /// The key directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the directory is managed elsewhere.
    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The keys in force.
    pub(crate) fn ring(&self) -> Arc<KeyRing> {
        self.ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Brings the keys up to date at `now` and recomputes the key ring. Locally: creates a
    /// successor when due and deletes keys whose tokens have all expired. Read-only: re-reads
    /// the directory if its content changed; an error (unreadable directory, malformed file)
    /// keeps the last good set in force and is returned once per distinct content.
    pub(crate) fn rotate(&self, now: u64) -> Result<(), KeyError> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = if self.read_only {
            self.reload(&mut state)
        } else {
            self.apply_schedule(&mut state.keys, now)
        };
        let lead = self.policy.lead;
        state.keys.sort_by_key(|k| (k.meta(lead).start, k.created));
        let metas: Vec<KeyMeta> = state.keys.iter().map(|k| k.meta(lead)).collect();
        let schedule = contract_keys::schedule(&metas, now, &self.policy);
        let signing = schedule
            .signing
            .and_then(|kid| state.keys.iter().find(|k| k.kid == kid).cloned());
        let jwks = serde_json::json!({
            "keys": state.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()
        });
        let ring = KeyRing {
            signing,
            published: state.keys.clone(),
            jwks: Arc::from(jwks.to_string().into_bytes()),
        };
        *self
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(ring);
        result
    }

    fn reload(&self, state: &mut State) -> Result<(), KeyError> {
        let files = read_snapshot(&self.dir)?;
        if state.seen.as_ref() == Some(&files) {
            return Ok(());
        }
        state.seen = Some(files);
        let files = state.seen.as_ref().map_or(&EMPTY, |f| f);
        let keys = parse_set(&self.dir, files)?;
        let before: Vec<&str> = state.keys.iter().map(|k| k.kid.as_str()).collect();
        let after: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
        if before != after {
            tracing::info!(keys = ?after, "signing keys reloaded");
        }
        state.keys = keys;
        Ok(())
    }

    fn apply_schedule(&self, keys: &mut Vec<Arc<SigningKey>>, now: u64) -> Result<(), KeyError> {
        let lead = self.policy.lead;
        let schedule = |keys: &[Arc<SigningKey>]| {
            let metas: Vec<KeyMeta> = keys.iter().map(|k| k.meta(lead)).collect();
            contract_keys::schedule(&metas, now, &self.policy)
        };
        if keys.is_empty() {
            // The very first key: nobody can have cached a JWKS without it, so it signs at once.
            let k = SigningKey::generate(self.policy.alg, now.saturating_sub(lead))?;
            self.save(&k)?;
            keys.push(Arc::new(k));
        }
        if schedule(keys).successor {
            // A directory that became unwritable cannot rotate: keep serving with the keys it
            // has, and say so.
            let k = SigningKey::generate(self.policy.alg, now)?;
            match self.save(&k) {
                Ok(()) => keys.push(Arc::new(k)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot store a new signing key; not rotating")
                }
            }
        }
        for kid in schedule(keys).retire {
            let path = self
                .dir
                .join(format!("{kid}{}", contract_keys::FILE_SUFFIX));
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::error!(%kid, error = %e, "cannot delete a retired key");
                    continue;
                }
                _ => tracing::info!(%kid, "retired signing key"),
            }
            keys.retain(|k| k.kid != kid);
        }
        Ok(())
    }

    fn save(&self, k: &SigningKey) -> Result<(), KeyError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let file = k.file();
        let path = self.dir.join(file.file_name());
        let tmp = self.dir.join(format!(".{}.tmp", k.kid));
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(&file.to_json()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        tracing::info!(kid = %k.kid, alg = k.alg.as_str(), "created signing key");
        Ok(())
    }
}

static EMPTY: BTreeMap<String, Vec<u8>> = BTreeMap::new();

/// Reads every `*.json` file of `dir` by name. In a directory kubelet projects (a mounted
/// Secret: the entries are symlinks into the directory `..data` points to, and an update swaps
/// `..data` atomically), the files are read from the target of `..data`, which is read again
/// afterwards: if it moved meanwhile, the read is repeated, so a set is never half old, half new.
fn read_snapshot(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, KeyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io { path, source }
    };
    let data = dir.join("..data");
    for _ in 0..5 {
        let target = std::fs::read_link(&data).ok();
        let base = target
            .as_ref()
            .map_or_else(|| dir.to_path_buf(), |t| dir.join(t));
        let mut files = BTreeMap::new();
        let mut moved = false;
        for entry in std::fs::read_dir(&base).map_err(io(&base))? {
            let entry = entry.map_err(io(&base))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(contract_keys::FILE_SUFFIX) {
                continue;
            }
            let path = entry.path();
            match std::fs::read(&path) {
                Ok(bytes) => {
                    files.insert(name, bytes);
                }
                // Removed between listing and reading: the set changed, read it again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && target.is_some() => {
                    moved = true;
                    break;
                }
                Err(e) => return Err(io(&path)(e)),
            }
        }
        if !moved && std::fs::read_link(&data).ok() == target {
            return Ok(files);
        }
    }
    Err(KeyError::Io {
        path: dir.to_path_buf(),
        source: std::io::Error::other("the directory kept changing while it was read"),
    })
}

/// Parses a whole set of key files: every file must be valid, or the set is refused.
fn parse_set(
    dir: &Path,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<Arc<SigningKey>>, KeyError> {
    let mut keys = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        let invalid = |why: String| KeyError::Invalid(dir.join(name), why);
        let (file, _) = KeyFile::parse(name, bytes).map_err(invalid)?;
        let key = SigningKey::from_file(&file).map_err(|e| invalid(e.to_string()))?;
        keys.push(Arc::new(key));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[derive(Serialize)]
    struct Claims<'a> {
        iss: &'a str,
        exp: u64,
        sub: &'a str,
    }

    fn roundtrip(alg: Alg) {
        let k = SigningKey::generate(alg, 0).unwrap();
        let token = k
            .sign(
                Typ::AccessToken,
                &Claims {
                    iss: "https://i",
                    exp: 2000,
                    sub: "s",
                },
            )
            .unwrap();
        let ring = KeyRing {
            signing: Some(Arc::new(
                SigningKey::from_pkcs8(alg, 0, k.pkcs8.clone()).unwrap(),
            )),
            published: vec![Arc::new(k)],
            jwks: Arc::from(&b"{}"[..]),
        };
        let claims = ring
            .verify(&token, Typ::AccessToken, "https://i", 1000)
            .unwrap();
        assert_eq!(claims["sub"], "s");
        assert!(ring.verify(&token, Typ::Jwt, "https://i", 1000).is_none());
        assert!(
            ring.verify(&token, Typ::AccessToken, "https://x", 1000)
                .is_none()
        );
        assert!(
            ring.verify(&token, Typ::AccessToken, "https://i", 2000)
                .is_none()
        );
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(
            ring.verify(&tampered, Typ::AccessToken, "https://i", 1000)
                .is_none()
        );
    }

    #[test]
    fn es256_signs_and_verifies() {
        roundtrip(Alg::Es256);
    }

    #[test]
    fn eddsa_signs_and_verifies() {
        roundtrip(Alg::EdDsa);
    }

    #[test]
    fn rs256_signs_and_verifies() {
        roundtrip(Alg::Rs256);
    }

    #[test]
    fn kid_is_rfc7638_thumbprint() {
        // RFC 7638 §3.1 example key.
        let jwk = serde_json::json!({"kty":"RSA","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        assert_eq!(
            contract_keys::thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn rotation_publishes_before_signing_and_retires_after_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let (rot, lead, ttl) = (1000, 100, 50);
        let keys = Keys::open(dir.path(), Alg::Es256, rot, lead, ttl, 10_000).unwrap();
        let first = keys.ring();
        assert_eq!(first.published.len(), 1);
        let k1 = first.signing.as_ref().unwrap().kid.clone();
        // Before the successor is due: nothing changes.
        keys.rotate(10_000 + 800).unwrap();
        assert_eq!(keys.ring().published.len(), 1);
        // Due (rotation - lead after k1 started signing at 10_000): successor published, k1 signs.
        keys.rotate(10_000 + 900).unwrap();
        let r = keys.ring();
        assert_eq!(r.published.len(), 2);
        assert_eq!(r.signing.as_ref().unwrap().kid, k1);
        let k2 = r.published[1].kid.clone();
        // After the lead: k2 signs, k1 still published.
        keys.rotate(10_000 + 900 + lead).unwrap();
        let r = keys.ring();
        assert_eq!(r.signing.as_ref().unwrap().kid, k2);
        assert!(r.by_kid(&k1).is_some());
        // Once k1's last tokens expired: gone, also from disk.
        keys.rotate(10_000 + 900 + lead + ttl).unwrap();
        let r = keys.ring();
        assert!(r.by_kid(&k1).is_none());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Reopening reads the same key.
        let again = Keys::open(dir.path(), Alg::Es256, rot, lead, ttl, 11_001).unwrap();
        assert_eq!(again.ring().signing.as_ref().unwrap().kid, k2);
        let jwks: serde_json::Value = serde_json::from_slice(&again.ring().jwks).unwrap();
        assert_eq!(jwks["keys"][0]["kid"], k2.as_str());
        assert_eq!(jwks["keys"][0]["alg"], "ES256");
        assert!(jwks["keys"][0].get("d").is_none());
    }

    #[test]
    fn unwritable_directory_keeps_serving_without_rotating() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let keys = Keys::open(&path, Alg::Es256, 1000, 100, 50, 10_000).unwrap();
        let kid = keys.ring().signing.as_ref().unwrap().kid.clone();
        // The directory becomes unwritable (here: replaced by a file, which stops root too).
        std::fs::remove_dir_all(&path).unwrap();
        std::fs::write(&path, b"").unwrap();
        keys.rotate(20_000).unwrap();
        let ring = keys.ring();
        assert_eq!(ring.published.len(), 1);
        assert_eq!(ring.signing.as_ref().unwrap().kid, kid);
    }

    #[test]
    fn changing_algorithm_creates_a_successor() {
        let dir = tempfile::tempdir().unwrap();
        Keys::open(dir.path(), Alg::Es256, 1000, 100, 50, 10_000).unwrap();
        let keys = Keys::open(dir.path(), Alg::EdDsa, 1000, 100, 50, 10_001).unwrap();
        assert_eq!(keys.ring().signing.as_ref().unwrap().alg, Alg::Es256);
        keys.rotate(10_101).unwrap();
        assert_eq!(keys.ring().signing.as_ref().unwrap().alg, Alg::EdDsa);
    }

    /// Projects `files` into `dir` the way kubelet updates a mounted Secret: a new timestamped
    /// directory, `..data` swapped to it atomically, and one symlink per entry.
    fn project(dir: &Path, generation: u32, files: &[(String, Vec<u8>)]) {
        let ts = format!("..gen_{generation}");
        std::fs::create_dir_all(dir.join(&ts)).unwrap();
        for (name, body) in files {
            std::fs::write(dir.join(&ts).join(name), body).unwrap();
        }
        std::os::unix::fs::symlink(&ts, dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && !files.iter().any(|(n, _)| *n == name) {
                std::fs::remove_file(dir.join(&name)).unwrap();
            }
        }
        for (name, _) in files {
            let link = dir.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(format!("..data/{name}"), link).unwrap();
            }
        }
    }

    fn entry(f: &KeyFile) -> (String, Vec<u8>) {
        (f.file_name(), f.to_json())
    }

    #[test]
    fn read_only_directory_follows_the_projected_secret() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Empty at first: no signer (not ready), nothing published, nothing written.
        project(d, 1, &[]);
        let keys = Keys::open_read_only(d, 100, 10_000).unwrap();
        assert!(keys.ring().signing.is_none());
        let a = contract_keys::generate(Alg::Es256, 10_000, Some(10_000)).unwrap();
        project(d, 2, &[entry(&a)]);
        keys.rotate(10_001).unwrap();
        assert_eq!(keys.ring().signing.as_ref().unwrap().kid, a.kid);
        // A successor: published at once, signs only from its not_before.
        let b = contract_keys::generate(Alg::EdDsa, 10_002, Some(10_050)).unwrap();
        project(d, 3, &[entry(&a), entry(&b)]);
        keys.rotate(10_003).unwrap();
        let r = keys.ring();
        assert!(r.by_kid(&b.kid).is_some());
        assert_eq!(r.signing.as_ref().unwrap().kid, a.kid);
        let jwks: serde_json::Value = serde_json::from_slice(&r.jwks).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        keys.rotate(10_050).unwrap();
        assert_eq!(keys.ring().signing.as_ref().unwrap().kid, b.kid);
        // A malformed file: the whole new set is refused, the last good one stays in force.
        let c = contract_keys::generate(Alg::Es256, 10_060, Some(10_070)).unwrap();
        project(
            d,
            4,
            &[
                entry(&b),
                entry(&c),
                ("junk.json".into(), b"{not json".to_vec()),
            ],
        );
        let err = keys.rotate(10_061).unwrap_err();
        assert!(err.to_string().contains("junk.json"), "{err}");
        let r = keys.ring();
        assert!(r.by_kid(&a.kid).is_some() && r.by_kid(&c.kid).is_none());
        assert_eq!(r.signing.as_ref().unwrap().kid, b.kid);
        // Repaired: the removed key is dropped, the new one published.
        project(d, 5, &[entry(&b), entry(&c)]);
        keys.rotate(10_062).unwrap();
        let r = keys.ring();
        assert!(r.by_kid(&a.kid).is_none() && r.by_kid(&c.kid).is_some());
        assert_eq!(r.signing.as_ref().unwrap().kid, b.kid);
        // Nothing was ever written.
        assert_eq!(
            std::fs::read_dir(d.join("..gen_5")).unwrap().count(),
            2,
            "read-only mode wrote into the directory"
        );
    }

    #[test]
    fn read_only_key_files_without_not_before_stay_valid() {
        let dir = tempfile::tempdir().unwrap();
        // As written by an older issuer, in a plain directory.
        let old = contract_keys::generate(Alg::Es256, 10_000, None).unwrap();
        std::fs::write(dir.path().join(old.file_name()), old.to_json()).unwrap();
        let keys = Keys::open_read_only(dir.path(), 100, 10_001).unwrap();
        assert_eq!(keys.ring().signing.as_ref().unwrap().kid, old.kid);
    }
}

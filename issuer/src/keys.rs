//! Signing keys: generation, a directory key store, rotation, the JWKS, and JWT signing.
//!
//! Rotation schedule (all times from the key's `created`):
//! - a key is published in the JWKS from the moment it is created;
//! - it signs from `created + publish_lead` (so that relying parties that cached the JWKS have had
//!   time to see it), until a newer key reaches that point;
//! - a successor is created `publish_lead` before the current key has signed for `rotation`;
//! - a superseded key stays published until every token it can have signed has expired
//!   (successor's start + the longest token lifetime), then it is deleted.
//!
//! Tokens are signed with `ring` key pairs held in memory. `jsonwebtoken` 9 re-parses the PKCS#8
//! key (deriving the public point: a second scalar multiplication) on every `encode`, which would
//! halve the client_credentials rate, so signing is done here; verification of our own tokens uses
//! `jsonwebtoken` with an explicit algorithm list.
//!
//! Key file format: `<dir>/<kid>.json` with `{"kid", "alg", "created" (unix seconds), "pkcs8"
//! (base64)}`, mode 0600.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A signing algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

    fn jwt(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::Rs256 => Algorithm::RS256,
            Self::EdDsa => Algorithm::EdDSA,
        }
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
    #[error("key file {0}: not a valid key")]
    Invalid(PathBuf),
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
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            Alg::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| KeyError::Crypto("P-256 key generation"))?
                .as_ref()
                .to_vec(),
            Alg::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| KeyError::Crypto("Ed25519 key generation"))?
                .as_ref()
                .to_vec(),
            Alg::Rs256 => {
                use rsa::pkcs8::EncodePrivateKey;
                let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
                    .map_err(|_| KeyError::Crypto("RSA key generation"))?;
                key.to_pkcs8_der()
                    .map_err(|_| KeyError::Crypto("RSA key encoding"))?
                    .as_bytes()
                    .to_vec()
            }
        };
        Self::from_pkcs8(alg, created, pkcs8)
    }

    /// Loads a key from PKCS#8 DER.
    pub fn from_pkcs8(alg: Alg, created: u64, pkcs8: Vec<u8>) -> Result<Self, KeyError> {
        let bad = || KeyError::Crypto("key rejected");
        let (pair, jwk, decoding) = match alg {
            Alg::Es256 => {
                let kp = EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &pkcs8,
                    &SystemRandom::new(),
                )
                .map_err(|_| bad())?;
                let point = kp.public_key().as_ref();
                if point.len() != 65 {
                    return Err(bad());
                }
                let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
                let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
                let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|_| bad())?;
                let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y});
                (Pair::Ec(kp), jwk, decoding)
            }
            Alg::EdDsa => {
                let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).map_err(|_| bad())?;
                let x = URL_SAFE_NO_PAD.encode(kp.public_key().as_ref());
                let decoding = DecodingKey::from_ed_components(&x).map_err(|_| bad())?;
                let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x});
                (Pair::Ed(kp), jwk, decoding)
            }
            Alg::Rs256 => {
                let kp = RsaKeyPair::from_pkcs8(&pkcs8).map_err(|_| bad())?;
                let parts = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(kp.public());
                let strip =
                    |b: &[u8]| -> Vec<u8> { b.iter().copied().skip_while(|x| *x == 0).collect() };
                let n = URL_SAFE_NO_PAD.encode(strip(&parts.n));
                let e = URL_SAFE_NO_PAD.encode(strip(&parts.e));
                let decoding = DecodingKey::from_rsa_components(&n, &e).map_err(|_| bad())?;
                let jwk = serde_json::json!({"kty": "RSA", "n": n, "e": e});
                (Pair::Rsa(kp), jwk, decoding)
            }
        };
        let kid = thumbprint(&jwk);
        let mut jwk = jwk;
        if let Some(o) = jwk.as_object_mut() {
            o.insert("kid".into(), kid.clone().into());
            o.insert("alg".into(), alg.as_str().into());
            o.insert("use".into(), "sig".into());
        }
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
            pair,
            pkcs8,
            jwk,
            decoding,
        })
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

/// RFC 7638 JWK thumbprint (SHA-256, base64url).
fn thumbprint(jwk: &serde_json::Value) -> String {
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
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    kid: String,
    alg: Alg,
    created: u64,
    pkcs8: String,
}

/// The keys in force at one moment.
#[derive(Debug)]
pub struct KeyRing {
    /// The key that signs now.
    pub signing: Arc<SigningKey>,
    /// Every published key (including the signing key and not-yet-active successors).
    pub published: Vec<Arc<SigningKey>>,
    /// The JWKS document, serialised.
    pub jwks: Arc<[u8]>,
}

impl KeyRing {
    /// Finds a published key by `kid`.
    pub fn by_kid(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.published.iter().find(|k| k.kid == kid)
    }

    /// Algorithms of the published keys.
    pub fn algs(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self.published.iter().map(|k| k.alg.as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Verifies a JWT we signed: signature with a published key, expected `typ`, `iss`, `exp`.
    /// Returns its claims.
    pub fn verify(
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
        let mut v = Validation::new(key.alg.jwt());
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
    alg: Alg,
    rotation: u64,
    lead: u64,
    max_token_ttl: u64,
    keys: RwLock<Vec<Arc<SigningKey>>>,
    ring: RwLock<Arc<KeyRing>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("dir", &self.dir).finish()
    }
}

impl Keys {
    /// Opens (creating if needed) the key directory and brings the keys up to date at `now`.
    /// `max_token_ttl` is the longest lifetime of any token a key signs.
    pub fn open(
        dir: &Path,
        alg: Alg,
        rotation: u64,
        lead: u64,
        max_token_ttl: u64,
        now: u64,
    ) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read(&path).map_err(|source| KeyError::Io {
                path: path.clone(),
                source,
            })?;
            let file: KeyFile =
                serde_json::from_slice(&text).map_err(|_| KeyError::Invalid(path.clone()))?;
            let der = STANDARD
                .decode(file.pkcs8.as_bytes())
                .map_err(|_| KeyError::Invalid(path.clone()))?;
            let key = SigningKey::from_pkcs8(file.alg, file.created, der)
                .map_err(|_| KeyError::Invalid(path.clone()))?;
            keys.push(Arc::new(key));
        }
        keys.sort_by_key(|k| k.created);
        let placeholder = Arc::new(KeyRing {
            signing: match keys.first() {
                Some(k) => k.clone(),
                None => Arc::new(SigningKey::generate(Alg::EdDsa, 0)?),
            },
            published: Vec::new(),
            jwks: Arc::from(&b"{}"[..]),
        });
        let this = Self {
            dir: dir.to_path_buf(),
            alg,
            rotation,
            lead,
            max_token_ttl,
            keys: RwLock::new(keys),
            ring: RwLock::new(placeholder),
        };
        this.rotate(now)?;
        Ok(this)
    }

    /// The keys in force.
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Applies the rotation schedule at `now`: creates a successor when due, deletes keys whose
    /// tokens have all expired, and recomputes the key ring.
    pub fn rotate(&self, now: u64) -> Result<(), KeyError> {
        let mut keys = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if keys.is_empty() {
            // The very first key: nobody can have cached a JWKS without it, so it signs at once.
            let k = SigningKey::generate(self.alg, now.saturating_sub(self.lead))?;
            self.save(&k)?;
            keys.push(Arc::new(k));
        }
        let newest_created = keys.last().map_or(0, |k| k.created);
        let newest_alg = keys.last().map(|k| k.alg);
        if now >= newest_created + self.rotation || newest_alg != Some(self.alg) {
            // A read-only key directory (e.g. a mounted Secret managed elsewhere) cannot rotate:
            // keep serving with the keys it has, and say so.
            let k = SigningKey::generate(self.alg, now)?;
            match self.save(&k) {
                Ok(()) => keys.push(Arc::new(k)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot store a new signing key; not rotating")
                }
            }
        }
        // The signing key: the newest one whose publish lead has passed (else the oldest).
        let active_idx = keys
            .iter()
            .rposition(|k| k.created + self.lead <= now)
            .unwrap_or(0);
        // Keys before the active one stop signing when their successor started.
        let mut retained = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let keep = if i < active_idx {
                let successor_start = keys[i + 1].created + self.lead;
                successor_start + self.max_token_ttl > now
            } else {
                true
            };
            if keep {
                retained.push(k.clone());
            } else {
                let path = self.dir.join(format!("{}.json", k.kid));
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        tracing::error!(kid = %k.kid, error = %e, "cannot delete a retired key");
                    }
                    _ => tracing::info!(kid = %k.kid, "retired signing key"),
                }
            }
        }
        let signing = keys[active_idx].clone();
        *keys = retained;
        let jwks = serde_json::json!({
            "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()
        });
        let ring = KeyRing {
            signing,
            published: keys.clone(),
            jwks: Arc::from(jwks.to_string().into_bytes()),
        };
        *self
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(ring);
        Ok(())
    }

    fn save(&self, k: &SigningKey) -> Result<(), KeyError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let file = KeyFile {
            kid: k.kid.clone(),
            alg: k.alg,
            created: k.created,
            pkcs8: STANDARD.encode(&k.pkcs8),
        };
        let path = self.dir.join(format!("{}.json", k.kid));
        let tmp = self.dir.join(format!(".{}.tmp", k.kid));
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        let body = serde_json::to_vec(&file).map_err(|_| KeyError::Crypto("key encoding"))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(&body).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        tracing::info!(kid = %k.kid, alg = k.alg.as_str(), "created signing key");
        Ok(())
    }
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
            signing: Arc::new(SigningKey::from_pkcs8(alg, 0, k.pkcs8.clone()).unwrap()),
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
            thumbprint(&jwk),
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
        let k1 = first.signing.kid.clone();
        // Before the successor is due: nothing changes.
        keys.rotate(10_000 + 800).unwrap();
        assert_eq!(keys.ring().published.len(), 1);
        // Due (rotation - lead after k1 started signing at 10_000): successor published, k1 signs.
        keys.rotate(10_000 + 900).unwrap();
        let r = keys.ring();
        assert_eq!(r.published.len(), 2);
        assert_eq!(r.signing.kid, k1);
        let k2 = r.published[1].kid.clone();
        // After the lead: k2 signs, k1 still published.
        keys.rotate(10_000 + 900 + lead).unwrap();
        let r = keys.ring();
        assert_eq!(r.signing.kid, k2);
        assert!(r.by_kid(&k1).is_some());
        // Once k1's last tokens expired: gone, also from disk.
        keys.rotate(10_000 + 900 + lead + ttl).unwrap();
        let r = keys.ring();
        assert!(r.by_kid(&k1).is_none());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Reopening reads the same key.
        let again = Keys::open(dir.path(), Alg::Es256, rot, lead, ttl, 11_001).unwrap();
        assert_eq!(again.ring().signing.kid, k2);
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
        let kid = keys.ring().signing.kid.clone();
        // The directory becomes unwritable (here: replaced by a file, which stops root too).
        std::fs::remove_dir_all(&path).unwrap();
        std::fs::write(&path, b"").unwrap();
        keys.rotate(20_000).unwrap();
        let ring = keys.ring();
        assert_eq!(ring.published.len(), 1);
        assert_eq!(ring.signing.kid, kid);
    }

    #[test]
    fn changing_algorithm_creates_a_successor() {
        let dir = tempfile::tempdir().unwrap();
        Keys::open(dir.path(), Alg::Es256, 1000, 100, 50, 10_000).unwrap();
        let keys = Keys::open(dir.path(), Alg::EdDsa, 1000, 100, 50, 10_001).unwrap();
        assert_eq!(keys.ring().signing.alg, Alg::Es256);
        keys.rotate(10_101).unwrap();
        assert_eq!(keys.ring().signing.alg, Alg::EdDsa);
    }
}

//! A provider's signing keys (RFC 7517 JWK Set) as the verifier uses them: each key with the one
//! algorithm it verifies. A key's algorithm is its `alg` member, else the only one its type
//! allows by default (RS256 for RSA, ES256/ES384 by curve, EdDSA for Ed25519); keys for
//! encryption, symmetric (`oct`) keys and keys whose `alg` does not fit their type are left out,
//! so `none`, HMAC-with-a-public-key and algorithm substitution cannot verify.

use std::collections::HashMap;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Why no key verifies a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoKey {
    /// No key has the token's `kid` (or, without one, no single key has its `alg`).
    Unknown,
    /// The key's algorithm is not the token's.
    Algorithm,
}

/// One verification key.
pub(crate) struct Key {
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
}

/// The issuer's signing keys, by key ID.
#[derive(Default)]
pub struct KeySet {
    by_kid: HashMap<String, Key>,
    /// Keys without a `kid`.
    anonymous: Vec<Key>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.by_kid.keys().collect::<Vec<_>>())
            .field("anonymous", &self.anonymous.len())
            .finish()
    }
}

impl KeySet {
    /// Parses a JWKS document, keeping signature keys with an asymmetric algorithm.
    pub fn from_jwks(json: &[u8]) -> Result<Self, serde_json::Error> {
        let set: JwkSet = serde_json::from_slice(json)?;
        let mut out = KeySet::default();
        for jwk in &set.keys {
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::OctetKey(_), _) => continue,
                (_, Some(a)) => match key_alg(a) {
                    Some(a) => a,
                    None => continue,
                },
                (AlgorithmParameters::RSA(_), None) => Algorithm::RS256,
                (AlgorithmParameters::EllipticCurve(ec), None) => match ec.curve {
                    EllipticCurve::P256 => Algorithm::ES256,
                    EllipticCurve::P384 => Algorithm::ES384,
                    _ => continue,
                },
                (AlgorithmParameters::OctetKeyPair(okp), None) => match okp.curve {
                    EllipticCurve::Ed25519 => Algorithm::EdDSA,
                    _ => continue,
                },
            };
            let compatible = matches!(
                (&jwk.algorithm, alg),
                (
                    AlgorithmParameters::RSA(_),
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512
                ) | (
                    AlgorithmParameters::EllipticCurve(_),
                    Algorithm::ES256 | Algorithm::ES384
                ) | (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA)
            );
            if !compatible {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let key = Key { alg, key };
            match &jwk.common.key_id {
                Some(kid) => {
                    out.by_kid.insert(kid.clone(), key);
                }
                None => out.anonymous.push(key),
            }
        }
        Ok(out)
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.by_kid.len() + self.anonymous.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the token names a key this set does not have (worth a refetch).
    pub fn lacks_kid(&self, kid: Option<&str>) -> bool {
        match kid {
            Some(k) => !self.by_kid.contains_key(k),
            None => false,
        }
    }

    /// The key named by `kid` (or, without one, the only key for `alg`), provided its algorithm
    /// is `alg`: the token's claimed algorithm must be the key's.
    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<&Key, NoKey> {
        let key = match kid {
            Some(k) => self.by_kid.get(k).ok_or(NoKey::Unknown)?,
            None => {
                let mut candidates = self
                    .anonymous
                    .iter()
                    .chain(self.by_kid.values())
                    .filter(|k| k.alg == alg);
                match (candidates.next(), candidates.next()) {
                    (Some(k), None) => k,
                    _ => return Err(NoKey::Unknown),
                }
            }
        };
        if key.alg != alg {
            return Err(NoKey::Algorithm);
        }
        Ok(key)
    }
}

fn key_alg(a: KeyAlgorithm) -> Option<Algorithm> {
    Some(match a {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

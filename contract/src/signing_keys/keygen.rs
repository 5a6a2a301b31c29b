//! Key generation, the public JWK of a private key, and validation of key files (feature
//! `keygen`).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
};

use super::{Alg, Entries, FILE_SUFFIX, KeyFile, thumbprint};

/// Generating or reading a key failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyGenError(pub &'static str);

/// Generates a key of `alg`, created at `created`, signing from `not_before` (if given).
pub fn generate(alg: Alg, created: u64, not_before: Option<u64>) -> Result<KeyFile, KeyGenError> {
    let rng = SystemRandom::new();
    let der = match alg {
        Alg::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyGenError("P-256 key generation failed"))?
            .as_ref()
            .to_vec(),
        Alg::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| KeyGenError("Ed25519 key generation failed"))?
            .as_ref()
            .to_vec(),
        Alg::Rs256 => {
            use rsa::pkcs8::EncodePrivateKey as _;
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
                .map_err(|_| KeyGenError("RSA key generation failed"))?;
            key.to_pkcs8_der()
                .map_err(|_| KeyGenError("RSA key encoding failed"))?
                .as_bytes()
                .to_vec()
        }
    };
    let jwk = public_jwk(alg, &der)?;
    Ok(KeyFile {
        kid: jwk["kid"].as_str().unwrap_or_default().to_owned(),
        alg,
        created,
        not_before,
        pkcs8: STANDARD.encode(&der),
    })
}

/// The public JWK of a PKCS#8 private key, with `kid` (RFC 7638 thumbprint), `alg` and `use`.
pub fn public_jwk(alg: Alg, der: &[u8]) -> Result<serde_json::Value, KeyGenError> {
    let bad = KeyGenError("the private key does not match its algorithm");
    let mut jwk = match alg {
        Alg::Es256 => {
            let kp = EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
                &SystemRandom::new(),
            )
            .map_err(|_| bad.clone())?;
            let point = kp.public_key().as_ref();
            if point.len() != 65 {
                return Err(bad);
            }
            serde_json::json!({
                "kty": "EC", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            })
        }
        Alg::EdDsa => {
            let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| bad.clone())?;
            serde_json::json!({
                "kty": "OKP", "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(kp.public_key().as_ref()),
            })
        }
        Alg::Rs256 => {
            let kp = RsaKeyPair::from_pkcs8(der).map_err(|_| bad.clone())?;
            let parts = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(kp.public());
            let strip =
                |b: &[u8]| -> Vec<u8> { b.iter().copied().skip_while(|x| *x == 0).collect() };
            serde_json::json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(strip(&parts.n)),
                "e": URL_SAFE_NO_PAD.encode(strip(&parts.e)),
            })
        }
    };
    let kid = thumbprint(&jwk);
    if let Some(o) = jwk.as_object_mut() {
        o.insert("kid".into(), kid.into());
        o.insert("alg".into(), alg.as_str().into());
        o.insert("use".into(), "sig".into());
    }
    Ok(jwk)
}

impl KeyFile {
    /// Reads and checks a key file named `name`: valid JSON of this format, a private key of
    /// its algorithm, a `kid` that is the key's thumbprint, and a name that is `<kid>.json`.
    /// Returns the file and the key's DER. Errors never quote the file's content.
    pub fn parse(name: &str, bytes: &[u8]) -> Result<(Self, Vec<u8>), String> {
        let file: Self = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a key file (line {}, column {})", e.line(), e.column()))?;
        let der = STANDARD
            .decode(file.pkcs8.as_bytes())
            .map_err(|_| "pkcs8 is not standard base64".to_owned())?;
        let jwk = public_jwk(file.alg, &der).map_err(|e| e.0.to_owned())?;
        if jwk["kid"].as_str() != Some(file.kid.as_str()) {
            return Err("kid is not the RFC 7638 thumbprint of the key".into());
        }
        if name != file.file_name() {
            return Err(format!(
                "the name must be the kid followed by {FILE_SUFFIX}"
            ));
        }
        Ok((file, der))
    }
}

/// Sorts named entries (of a directory or a Secret) into valid key files and invalid ones.
/// Entries not named `*.json` are not key files and are left out of both.
pub fn read_entries<'a>(entries: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Entries {
    let mut out = Entries::default();
    for (name, bytes) in entries {
        if !name.ends_with(FILE_SUFFIX) || name.starts_with('.') {
            continue;
        }
        match KeyFile::parse(name, bytes) {
            Ok((file, _)) => {
                out.keys.insert(name.to_owned(), file);
            }
            Err(why) => out.invalid.push((name.to_owned(), why)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generated_keys_parse_back_for_every_algorithm() {
        for alg in [Alg::Es256, Alg::EdDsa, Alg::Rs256] {
            let f = generate(alg, 7, Some(9)).unwrap();
            let (back, der) = KeyFile::parse(&f.file_name(), &f.to_json()).unwrap();
            assert_eq!(back, f);
            assert_eq!(public_jwk(alg, &der).unwrap()["kid"], f.kid.as_str());
        }
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let f = generate(Alg::Es256, 7, None).unwrap();
        let other = generate(Alg::Es256, 7, None).unwrap();
        let name = f.file_name();
        assert!(KeyFile::parse(&name, b"{").is_err());
        assert!(KeyFile::parse(&other.file_name(), &f.to_json()).is_err());
        let mut wrong_kid = f.clone();
        wrong_kid.kid = other.kid.clone();
        assert!(KeyFile::parse(&wrong_kid.file_name(), &wrong_kid.to_json()).is_err());
        let mut wrong_alg = f.clone();
        wrong_alg.alg = Alg::EdDsa;
        assert!(KeyFile::parse(&name, &wrong_alg.to_json()).is_err());
        let e = read_entries([
            (name.as_str(), f.to_json().as_slice()),
            ("x.json", b"garbage".as_slice()),
            ("cookie.key", b"whatever".as_slice()),
        ]);
        assert_eq!(e.keys.len(), 1);
        assert_eq!(e.invalid.len(), 1);
        assert_eq!(e.invalid[0].0, "x.json");
        assert!(!e.invalid[0].1.contains("garbage"));
    }
}

//! The raw cost of verifying one access token, for the benchmark's goal (c):
//! `cargo run --release -p proxy --example verify_cost -- JWKS_FILE TOKEN_FILE ISSUER AUDIENCE`.
//! Prints the microseconds per full validation (`jwt::validate_access_token`) and per bare
//! signature verification (ring, over the signing input), each averaged over many runs.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)]

use std::time::Instant;

use base64::Engine as _;
use oidc::KeySet;
use oidc::jwt::{self, Expect};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [jwks, token, issuer, audience] = args.as_slice() else {
        anyhow::bail!("usage: verify_cost JWKS_FILE TOKEN_FILE ISSUER AUDIENCE");
    };
    let keys = KeySet::from_jwks(&std::fs::read(jwks)?)?;
    let token = std::fs::read_to_string(token)?.trim().to_string();
    let head = jwt::head(&token).map_err(|e| anyhow::anyhow!("{e}"))?;
    let expect = Expect {
        issuer,
        audience,
        leeway: 30,
    };
    let n = 2_000;
    let start = Instant::now();
    for _ in 0..n {
        jwt::validate_access_token(&token, &head, &keys, &expect)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let full = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);

    // Bare ES256 signature verification with ring.
    let jwk: serde_json::Value = serde_json::from_slice(&std::fs::read(jwks)?)?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let coord = |name: &str| -> anyhow::Result<Vec<u8>> {
        let s = jwk["keys"][0][name]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no {name}"))?;
        Ok(b64.decode(s)?)
    };
    let mut point = vec![4u8];
    point.extend(coord("x")?);
    point.extend(coord("y")?);
    let (input, sig) = token
        .rsplit_once('.')
        .ok_or_else(|| anyhow::anyhow!("not a JWT"))?;
    let sig = b64.decode(sig)?;
    let key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &point);
    let start = Instant::now();
    for _ in 0..n {
        key.verify(input.as_bytes(), &sig)
            .map_err(|_| anyhow::anyhow!("bad signature"))?;
    }
    let bare = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("full_validation_us={full:.1} signature_only_us={bare:.1}");
    Ok(())
}

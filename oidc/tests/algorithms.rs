//! The algorithm a token is verified with is its key's, never its header's: a token signed
//! with a provider's RSA key under another algorithm than the one the key is published for is
//! refused by every validation the crate offers, however valid its signature.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use oidc::KeySet;
use oidc::jwt::{self, Expect, IdTokenCheck, TokenError};
use ring::signature::{self, RsaKeyPair};
use serde_json::{Value, json};

const ISS: &str = "https://id.example.com";

/// A 2048-bit RSA key made for these tests (`openssl genpkey -algorithm RSA`).
fn rsa() -> RsaKeyPair {
    let pem = include_str!("../testdata/rsa-2048.pk8.pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    RsaKeyPair::from_pkcs8(&STANDARD.decode(body).unwrap()).unwrap()
}

/// The key's JWKS, published for `alg` (none: RSA keys default to RS256).
fn jwks(key: &RsaKeyPair, alg: Option<&str>) -> KeySet {
    let parts = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(key.public());
    let strip = |b: &[u8]| -> Vec<u8> { b.iter().copied().skip_while(|x| *x == 0).collect() };
    let mut jwk = json!({"kty": "RSA", "kid": "r1", "use": "sig",
        "n": B64.encode(strip(&parts.n)), "e": B64.encode(strip(&parts.e))});
    if let Some(alg) = alg {
        jwk["alg"] = json!(alg);
    }
    KeySet::from_jwks(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token with header `alg`, signed with `key` by `alg`'s scheme.
fn sign(key: &RsaKeyPair, alg: &str, typ: &str, claims: &Value) -> String {
    let scheme: &'static dyn signature::RsaEncoding = match alg {
        "RS256" => &signature::RSA_PKCS1_SHA256,
        "RS384" => &signature::RSA_PKCS1_SHA384,
        "RS512" => &signature::RSA_PKCS1_SHA512,
        "PS256" => &signature::RSA_PSS_SHA256,
        other => panic!("{other}"),
    };
    let head = json!({"alg": alg, "kid": "r1", "typ": typ});
    let input = format!(
        "{}.{}",
        B64.encode(head.to_string()),
        B64.encode(claims.to_string())
    );
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        scheme,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", B64.encode(sig))
}

fn id_claims() -> Value {
    json!({"iss": ISS, "aud": "app", "sub": "alice", "exp": now() + 60, "nonce": "n"})
}

const CHECK: IdTokenCheck<'static> = IdTokenCheck {
    issuer: ISS,
    client_id: "app",
    nonce: Some("n"),
    leeway: 0,
};

#[test]
fn id_tokens_are_verified_with_the_keys_algorithm_only() {
    let key = rsa();
    for published in [None, Some("RS256")] {
        let keys = jwks(&key, published);
        let good = sign(&key, "RS256", "JWT", &id_claims());
        assert!(jwt::validate_id_token(&good, &keys, &CHECK).is_ok());
        assert!(jwt::id_token_claims(&good, &keys, &CHECK).is_ok());
        for alg in ["RS384", "RS512", "PS256"] {
            let token = sign(&key, alg, "JWT", &id_claims());
            assert_eq!(
                jwt::validate_id_token(&token, &keys, &CHECK).unwrap_err(),
                TokenError::Algorithm,
                "{alg} with a key for {published:?}"
            );
            assert_eq!(
                jwt::id_token_claims(&token, &keys, &CHECK).unwrap_err(),
                TokenError::Algorithm,
                "{alg} with a key for {published:?}"
            );
        }
    }
    // A key published for PS256 verifies PS256 only.
    let keys = jwks(&key, Some("PS256"));
    let pss = sign(&key, "PS256", "JWT", &id_claims());
    assert!(jwt::id_token_claims(&pss, &keys, &CHECK).is_ok());
    let pkcs1 = sign(&key, "RS256", "JWT", &id_claims());
    assert_eq!(
        jwt::id_token_claims(&pkcs1, &keys, &CHECK).unwrap_err(),
        TokenError::Algorithm
    );
}

#[test]
fn access_tokens_are_verified_with_the_keys_algorithm_only() {
    let key = rsa();
    let keys = jwks(&key, Some("RS256"));
    let claims = json!({"iss": ISS, "aud": "https://tool", "sub": "alice", "exp": now() + 60});
    let expect = Expect {
        issuer: ISS,
        audience: "https://tool",
        leeway: 0,
    };
    let check = |token: &str| {
        let head = jwt::head(token)?;
        jwt::validate_access_token(token, &head, &keys, &expect)
    };
    assert!(check(&sign(&key, "RS256", "at+jwt", &claims)).is_ok());
    assert_eq!(
        check(&sign(&key, "RS384", "at+jwt", &claims)).unwrap_err(),
        TokenError::Algorithm
    );
}

#[test]
fn id_token_claims_are_all_kept_and_checked_like_a_principals() {
    let key = rsa();
    let keys = jwks(&key, None);
    // A provider's own claims may have any shape; only the checked ones are typed.
    let mut c = id_claims();
    c["email_verified"] = json!("true");
    c["groups"] = json!([{"name": "eng"}]);
    c["realm_access"] = json!({"roles": ["admin"]});
    let claims = jwt::id_token_claims(&sign(&key, "RS256", "JWT", &c), &keys, &CHECK).unwrap();
    assert_eq!(claims["realm_access"]["roles"][0], "admin");
    assert_eq!(claims["email_verified"], "true");
    assert_eq!(claims["sub"], "alice");
    // The same rules as validate_id_token.
    let refused = |extra: Value, typ: &str| {
        let mut c = id_claims();
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        let token = sign(&key, "RS256", typ, &c);
        let a = jwt::id_token_claims(&token, &keys, &CHECK).unwrap_err();
        let b = jwt::validate_id_token(&token, &keys, &CHECK).unwrap_err();
        assert_eq!(a, b);
        a
    };
    assert_eq!(refused(json!({"nonce": "other"}), "JWT"), TokenError::Nonce);
    assert_eq!(refused(json!({"nonce": null}), "JWT"), TokenError::Nonce);
    assert_eq!(refused(json!({}), "at+jwt"), TokenError::WrongType);
    assert_eq!(refused(json!({"sub": null}), "JWT"), TokenError::Claims);
    assert_eq!(refused(json!({"sub": 7}), "JWT"), TokenError::Claims);
    assert_eq!(
        refused(json!({"iss": "https://evil"}), "JWT"),
        TokenError::Issuer
    );
    assert_eq!(
        refused(json!({"aud": "other"}), "JWT"),
        TokenError::Audience
    );
    assert_eq!(
        refused(json!({"aud": ["app", "other"]}), "JWT"),
        TokenError::Audience
    );
    assert_eq!(
        refused(json!({"azp": "other"}), "JWT"),
        TokenError::Audience
    );
    assert_eq!(
        refused(json!({"exp": now() - 1}), "JWT"),
        TokenError::Expired
    );
    assert_eq!(
        refused(json!({"nbf": now() + 60}), "JWT"),
        TokenError::NotYetValid
    );
}

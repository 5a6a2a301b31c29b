//! Local JWT validation against a provider's keys ([`KeySet`]): RFC 9068 access tokens and
//! OpenID Connect ID tokens, with one set of rules for every caller.
//!
//! - The algorithm is taken from the key, never from the token alone: a token is accepted only
//!   when its `alg` equals the algorithm of the key named by its `kid` ([`KeySet`]).
//! - The header is read strictly: three base64url parts, a JSON object, no `crit` (RFC 7515
//!   section 4.1.11), and a `typ` that says which kind of JWT it is (RFC 8725 section 3.11).
//! - The registered claims follow RFC 7519 section 4.1: `iss` exactly the issuer, `aud` holding
//!   the audience, `exp` in the future and `nbf` not, with a leeway for clock skew.
//! - ID tokens also follow OpenID Connect Core 3.1.3.7: `azp` is the client whenever present or
//!   when there are several audiences, and `nonce` is the sign-in's (compared in constant time).

use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::jwks::{Key, KeySet, NoKey};

/// Why a token was refused (logged; clients get a generic description).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with a JSON header.
    #[error("malformed token")]
    Malformed,
    /// `typ` is not `at+jwt` (e.g. an ID token used as an access token).
    #[error("wrong token type")]
    WrongType,
    /// `kid` unknown (after a refetch), or no key for the token's algorithm.
    #[error("no matching key")]
    UnknownKey,
    /// The token's `alg` is not the key's.
    #[error("algorithm not allowed")]
    Algorithm,
    /// Bad signature.
    #[error("bad signature")]
    Signature,
    /// Expired.
    #[error("expired")]
    Expired,
    /// Not yet valid.
    #[error("not yet valid")]
    NotYetValid,
    /// Wrong `iss`.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` does not contain the expected audience.
    #[error("wrong audience")]
    Audience,
    /// A required claim is missing or mistyped.
    #[error("invalid claims")]
    Claims,
    /// ID token nonce mismatch.
    #[error("nonce mismatch")]
    Nonce,
}

/// The header fields used to pick a key.
#[derive(Debug, Clone)]
pub struct TokenHead {
    /// Algorithm claimed by the token.
    pub alg: Algorithm,
    /// Key ID.
    pub kid: Option<String>,
    /// `typ` header.
    pub typ: Option<String>,
}

/// A JOSE header as sent: only the members used here; others are ignored, except `crit`.
#[derive(Deserialize)]
struct RawHead<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    kid: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    typ: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// Decodes a token's header (no verification). An `alg` this proxy does not implement (such as
/// `none`) is [`TokenError::Algorithm`]; a `crit` member is refused, since no header extension
/// is understood here (RFC 7515 section 4.1.11).
pub fn head(token: &str) -> Result<TokenHead, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    // A JSON object (serde would also fill a struct from an array).
    if json.trim_ascii_start().first() != Some(&b'{') {
        return Err(TokenError::Malformed);
    }
    // UTF-8 first: serde skips the members it ignores without checking them (RFC 8259 8.1).
    let json = std::str::from_utf8(&json).map_err(|_| TokenError::Malformed)?;
    let raw: RawHead<'_> = serde_json::from_str(json).map_err(|_| TokenError::Malformed)?;
    if raw.crit.is_some() {
        return Err(TokenError::Malformed);
    }
    let alg = raw
        .alg
        .parse::<Algorithm>()
        .map_err(|_| TokenError::Algorithm)?;
    Ok(TokenHead {
        alg,
        kid: raw.kid.map(std::borrow::Cow::into_owned),
        typ: raw.typ.map(std::borrow::Cow::into_owned),
    })
}

impl From<NoKey> for TokenError {
    fn from(e: NoKey) -> Self {
        match e {
            NoKey::Unknown => TokenError::UnknownKey,
            NoKey::Algorithm => TokenError::Algorithm,
        }
    }
}

/// One string or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// The claims of an access token or an ID token that keyway reads.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<OneOrMany>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
    #[serde(default)]
    groups: Option<OneOrMany>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    aud: Option<OneOrMany>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
}

/// The claims every token is checked on, as read from its claims.
struct Registered<'a> {
    iss: Option<&'a str>,
    aud: Option<&'a OneOrMany>,
    exp: u64,
    nbf: Option<u64>,
    azp: Option<&'a str>,
    nonce: Option<&'a str>,
}

/// Claims a token decodes into, with the registered ones among them.
trait Checked: DeserializeOwned {
    fn registered(&self) -> Registered<'_>;
}

impl Checked for Claims {
    fn registered(&self) -> Registered<'_> {
        Registered {
            iss: self.iss.as_deref(),
            aud: self.aud.as_ref(),
            exp: self.exp,
            nbf: self.nbf,
            azp: self.azp.as_deref(),
            nonce: self.nonce.as_deref(),
        }
    }
}

/// Only the claims an ID token is checked on: a provider's other claims may have any shape.
#[derive(Debug, Deserialize)]
struct IdTokenRegistered {
    #[allow(dead_code, reason = "required: an ID token names its subject")]
    sub: String,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<OneOrMany>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

impl Checked for IdTokenRegistered {
    fn registered(&self) -> Registered<'_> {
        Registered {
            iss: self.iss.as_deref(),
            aud: self.aud.as_ref(),
            exp: self.exp,
            nbf: self.nbf,
            azp: self.azp.as_deref(),
            nonce: self.nonce.as_deref(),
        }
    }
}

/// Who is calling, as established by a validated token or session.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Principal {
    /// Subject.
    pub sub: String,
    /// Email, when present and not marked unverified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Preferred username, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Scopes granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// The access token's `client_id` (RFC 9068), when it is the token's own subject: a client's
    /// own token (client_credentials), no person behind it (RFC 9068 section 2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_client: Option<String>,
    /// The client the access token was issued to: its `client_id` (RFC 9068), else its `azp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// What a token must satisfy.
pub struct Expect<'a> {
    /// Exact issuer.
    pub issuer: &'a str,
    /// Audience that must be among `aud`.
    pub audience: &'a str,
    /// Allowed clock skew in seconds.
    pub leeway: u64,
}

fn map_err(e: jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => TokenError::Signature,
        K::InvalidAlgorithm | K::InvalidAlgorithmName => TokenError::Algorithm,
        _ => TokenError::Malformed,
    }
}

/// Verifies the signature with `key` (its algorithm, never the token's alone: [`KeySet::find`]
/// already required the two to be equal), then decodes the claims, once.
fn verified_claims<C: DeserializeOwned>(token: &str, key: &Key) -> Result<C, TokenError> {
    let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (_, payload) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
    if !jsonwebtoken::crypto::verify(signature, signing_input.as_bytes(), &key.key, key.alg)
        .map_err(map_err)?
    {
        return Err(TokenError::Signature);
    }
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    // RFC 7519 section 7.2 step 10: a JSON object (serde would also fill a struct from an array).
    if json.trim_ascii_start().first() != Some(&b'{') {
        return Err(TokenError::Claims);
    }
    // UTF-8 first: serde skips the members it ignores without checking them (RFC 8259 8.1).
    let json = std::str::from_utf8(&json).map_err(|_| TokenError::Claims)?;
    serde_json::from_str(json).map_err(|_| TokenError::Claims)
}

/// RFC 7519 section 4.1: `iss` exactly the issuer, `aud` (a string or an array) containing the
/// audience, `exp` in the future and `nbf`, when present, not in the future, each with `leeway`
/// seconds of clock skew; `sub` and `exp` are required by the claims' type.
fn check_registered(c: &Registered<'_>, expect: &Expect<'_>, now: u64) -> Result<(), TokenError> {
    match c.iss {
        None => return Err(TokenError::Claims),
        Some(iss) if iss != expect.issuer => return Err(TokenError::Issuer),
        Some(_) => {}
    }
    let audience_ok = match c.aud {
        None => return Err(TokenError::Claims),
        Some(OneOrMany::One(a)) => a == expect.audience,
        Some(OneOrMany::Many(all)) => all.iter().any(|a| a == expect.audience),
    };
    if !audience_ok {
        return Err(TokenError::Audience);
    }
    // "The current date/time MUST be before the expiration date/time" (section 4.1.4).
    if now >= c.exp.saturating_add(expect.leeway) {
        return Err(TokenError::Expired);
    }
    // "... MUST be after or equal to the not-before date/time" (section 4.1.5).
    if c.nbf
        .is_some_and(|nbf| now.saturating_add(expect.leeway) < nbf)
    {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// Validates an RFC 9068 access token: `typ` `at+jwt`, the key's algorithm, signature, exact
/// `iss`, `aud` containing the resource, exp/nbf with leeway.
pub fn validate_access_token(
    token: &str,
    head: &TokenHead,
    keys: &KeySet,
    expect: &Expect<'_>,
) -> Result<Principal, TokenError> {
    let typ_ok = head.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(TokenError::WrongType);
    }
    let key = keys.find(head.kid.as_deref(), head.alg)?;
    let c: Claims = verified_claims(token, key)?;
    check_registered(&c.registered(), expect, crate::now())?;
    let scopes = match (c.scope, c.scp) {
        (Some(s), _) => s.split_ascii_whitespace().map(str::to_string).collect(),
        (None, Some(scp)) => scp.into_vec(),
        (None, None) => Vec::new(),
    };
    // The client is `client_id` (RFC 9068 section 2.2); issuers that only say `azp` are read
    // by it. Two claims naming two clients leave it unknown: refused.
    let client = match (c.client_id, c.azp) {
        (Some(id), Some(azp)) if id != azp => return Err(TokenError::Claims),
        (Some(id), _) => Some(id),
        (None, azp) => azp,
    };
    let machine_client = client.clone().filter(|id| *id == c.sub);
    Ok(Principal {
        sub: c.sub,
        email: c.email.filter(|_| c.email_verified != Some(false)),
        username: c.preferred_username,
        groups: c.groups.map(OneOrMany::into_vec).unwrap_or_default(),
        scopes,
        exp: c.exp,
        machine_client,
        client,
    })
}

/// What an ID token must satisfy (OpenID Connect Core 3.1.3.7).
#[derive(Clone, Copy, Debug)]
pub struct IdTokenCheck<'a> {
    /// Exact issuer.
    pub issuer: &'a str,
    /// This client: among `aud`, and `azp` when present or when there are several audiences.
    pub client_id: &'a str,
    /// The sign-in's `nonce`, when one was sent (none on a refresh).
    pub nonce: Option<&'a str>,
    /// Allowed clock skew in seconds.
    pub leeway: u64,
}

/// Checks an ID token's header, signature and claims; its claims decoded as `C`, and as JSON.
fn checked_id_token<C: Checked>(
    token: &str,
    keys: &KeySet,
    check: &IdTokenCheck<'_>,
    now: u64,
) -> Result<C, TokenError> {
    let head = head(token)?;
    // OIDC Core sets no `typ` for ID tokens; RFC 7519 suggests `JWT`. Any other explicit type
    // (`at+jwt` access tokens, `logout+jwt` logout tokens) is another kind of JWT (RFC 8725
    // section 3.11) and is refused.
    if !head
        .typ
        .as_deref()
        .is_none_or(|t| t.eq_ignore_ascii_case("JWT") || t.eq_ignore_ascii_case("application/jwt"))
    {
        return Err(TokenError::WrongType);
    }
    let key = keys.find(head.kid.as_deref(), head.alg)?;
    let expect = Expect {
        issuer: check.issuer,
        audience: check.client_id,
        leeway: check.leeway,
    };
    let c: C = verified_claims(token, key)?;
    let r = c.registered();
    check_registered(&r, &expect, now)?;
    let several = matches!(r.aud, Some(OneOrMany::Many(all)) if all.len() > 1);
    // OIDC Core 3.1.3.7 (3)-(5): with several audiences `azp` must be present; when present,
    // it must be this client.
    if (several || r.azp.is_some()) && r.azp != Some(check.client_id) {
        return Err(TokenError::Audience);
    }
    if let Some(expected) = check.nonce {
        let got = r.nonce.unwrap_or("");
        if !crate::ct_eq(got.as_bytes(), expected.as_bytes()) {
            return Err(TokenError::Nonce);
        }
    }
    Ok(c)
}

/// Validates an OpenID Connect ID token ([`IdTokenCheck`]) and reads who it names.
pub fn validate_id_token(
    token: &str,
    keys: &KeySet,
    check: &IdTokenCheck<'_>,
) -> Result<Principal, TokenError> {
    let c: Claims = checked_id_token(token, keys, check, crate::now())?;
    Ok(Principal {
        sub: c.sub,
        email: c.email.filter(|_| c.email_verified != Some(false)),
        username: c.preferred_username,
        groups: c.groups.map(OneOrMany::into_vec).unwrap_or_default(),
        scopes: Vec::new(),
        exp: c.exp,
        machine_client: None,
        client: None,
    })
}

/// Validates an OpenID Connect ID token ([`IdTokenCheck`]) by the same rules as
/// [`validate_id_token`] and returns all of its claims, whatever their shape beyond the checked
/// ones (`sub`, `exp`, `nbf`, `iss`, `aud`, `azp`, `nonce`): for mapping a provider's own claims.
pub fn id_token_claims(
    token: &str,
    keys: &KeySet,
    check: &IdTokenCheck<'_>,
) -> Result<Map<String, Value>, TokenError> {
    let _: IdTokenRegistered = checked_id_token(token, keys, check, crate::now())?;
    let claims = token.split('.').nth(1).ok_or(TokenError::Malformed)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| TokenError::Claims)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    const ISS: &str = "https://id.example.com";
    const AUD: &str = "https://tool.example.com";

    struct Signer {
        pkcs8: Vec<u8>,
        jwk: serde_json::Value,
    }

    fn signer(kid: &str) -> Signer {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
            "x": b64.encode(&point[1..33]), "y": b64.encode(&point[33..65]),
        });
        Signer {
            pkcs8: pkcs8.as_ref().to_vec(),
            jwk,
        }
    }

    fn keyset(signers: &[&Signer]) -> KeySet {
        let jwks = serde_json::json!({ "keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>() });
        KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap()
    }

    fn claims(extra: serde_json::Value) -> serde_json::Value {
        let mut c = serde_json::json!({
            "iss": ISS, "aud": AUD, "sub": "alice", "exp": crate::now() + 300,
            "scope": "tool:read tool:write", "groups": ["eng"], "email": "alice@example.com",
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    fn sign(s: &Signer, kid: &str, typ: &str, c: &serde_json::Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(kid.into());
        h.typ = Some(typ.into());
        jsonwebtoken::encode(&h, c, &EncodingKey::from_ec_der(&s.pkcs8)).unwrap()
    }

    fn id_check<'a>(client_id: &'a str, nonce: Option<&'a str>) -> IdTokenCheck<'a> {
        IdTokenCheck {
            issuer: ISS,
            client_id,
            nonce,
            leeway: 0,
        }
    }

    fn check(token: &str, keys: &KeySet) -> Result<Principal, TokenError> {
        let head = head(token)?;
        validate_access_token(
            token,
            &head,
            keys,
            &Expect {
                issuer: ISS,
                audience: AUD,
                leeway: 30,
            },
        )
    }

    #[test]
    fn accepts_a_good_access_token() {
        let s = signer("k1");
        let keys = keyset(&[&s]);
        let p = check(
            &sign(&s, "k1", "at+jwt", &claims(serde_json::json!({}))),
            &keys,
        )
        .unwrap();
        assert_eq!(p.sub, "alice");
        assert_eq!(p.scopes, vec!["tool:read", "tool:write"]);
        assert_eq!(p.groups, vec!["eng"]);
        assert_eq!(p.email.as_deref(), Some("alice@example.com"));
        let p = check(
            &sign(
                &s,
                "k1",
                "application/at+jwt",
                &claims(serde_json::json!({"aud": ["x", AUD], "scope": null, "scp": ["a"]})),
            ),
            &keys,
        )
        .unwrap();
        assert_eq!(p.scopes, vec!["a"]);
    }

    #[test]
    fn refuses_bad_tokens_with_the_reason() {
        let s = signer("k1");
        let other = signer("k2");
        let keys = keyset(&[&s]);
        let good = claims(serde_json::json!({}));
        let now = crate::now();
        let cases: Vec<(String, TokenError)> = vec![
            (sign(&s, "k1", "JWT", &good), TokenError::WrongType),
            (sign(&other, "k2", "at+jwt", &good), TokenError::UnknownKey),
            (sign(&other, "k1", "at+jwt", &good), TokenError::Signature),
            (
                sign(
                    &s,
                    "k1",
                    "at+jwt",
                    &claims(serde_json::json!({"exp": now - 100})),
                ),
                TokenError::Expired,
            ),
            (
                sign(
                    &s,
                    "k1",
                    "at+jwt",
                    &claims(serde_json::json!({"nbf": now + 100})),
                ),
                TokenError::NotYetValid,
            ),
            (
                sign(
                    &s,
                    "k1",
                    "at+jwt",
                    &claims(serde_json::json!({"iss": "https://evil"})),
                ),
                TokenError::Issuer,
            ),
            (
                sign(
                    &s,
                    "k1",
                    "at+jwt",
                    &claims(serde_json::json!({"aud": "tool"})),
                ),
                TokenError::Audience,
            ),
            (
                sign(
                    &s,
                    "k1",
                    "at+jwt",
                    &claims(serde_json::json!({"exp": null})),
                ),
                TokenError::Claims,
            ),
            ("a.b".into(), TokenError::Malformed),
        ];
        for (token, want) in cases {
            assert_eq!(check(&token, &keys).unwrap_err(), want);
        }
        // HS256 "signed" with the public key: the key's algorithm is ES256.
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        h.typ = Some("at+jwt".into());
        let hs = jsonwebtoken::encode(
            &h,
            &good,
            &EncodingKey::from_secret(s.jwk.to_string().as_bytes()),
        )
        .unwrap();
        assert_eq!(check(&hs, &keys).unwrap_err(), TokenError::Algorithm);
        // alg none.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none = format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"at+jwt","kid":"k1"}"#),
            b64.encode(good.to_string())
        );
        assert!(check(&none, &keys).is_err());
    }

    #[test]
    fn headers_with_crit_or_unknown_alg_are_refused() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let t = |h: &str| format!("{}.e30.c2ln", b64.encode(h));
        assert_eq!(
            head(&t(r#"{"alg":"ES256","kid":"k1","typ":"at+jwt"}"#))
                .unwrap()
                .kid
                .as_deref(),
            Some("k1")
        );
        // Escapes in members are decoded.
        assert_eq!(
            head(&t(r#"{"alg":"ES256","kid":"k\u0031"}"#))
                .unwrap()
                .kid
                .as_deref(),
            Some("k1")
        );
        for (h, want) in [
            (r#"{"alg":"none"}"#, TokenError::Algorithm),
            (r#"{"alg":"ES999"}"#, TokenError::Algorithm),
            (
                r#"{"alg":"ES256","crit":["exp"],"exp":1}"#,
                TokenError::Malformed,
            ),
            (
                r#"{"alg":"ES256","b64":false,"crit":["b64"]}"#,
                TokenError::Malformed,
            ),
            (r#"{"kid":"k1"}"#, TokenError::Malformed),
            (r#"{"alg":7}"#, TokenError::Malformed),
            (r#"["ES256"]"#, TokenError::Malformed),
        ] {
            assert_eq!(head(&t(h)).unwrap_err(), want, "{h}");
        }
        assert_eq!(head("a.b").unwrap_err(), TokenError::Malformed);
        assert_eq!(head("a.b.c.d").unwrap_err(), TokenError::Malformed);
        assert_eq!(head("!!.e30.c2ln").unwrap_err(), TokenError::Malformed);
        let not_utf8 = b64.encode(b"{\"alg\":\"ES256\",\"x\":\"\xff\"}");
        assert_eq!(
            head(&format!("{not_utf8}.e30.c2ln")).unwrap_err(),
            TokenError::Malformed
        );
    }

    #[test]
    fn registered_claims_follow_rfc_7519_at_the_edges() {
        let c = |v: serde_json::Value| -> Claims { serde_json::from_value(claims(v)).unwrap() };
        let e = Expect {
            issuer: ISS,
            audience: AUD,
            leeway: 30,
        };
        let now = 1_000_000;
        // exp: valid while now < exp + leeway.
        assert_eq!(
            check_registered(
                &c(serde_json::json!({"exp": now - 29})).registered(),
                &e,
                now
            ),
            Ok(())
        );
        assert_eq!(
            check_registered(
                &c(serde_json::json!({"exp": now - 30})).registered(),
                &e,
                now
            ),
            Err(TokenError::Expired)
        );
        // nbf: valid once now + leeway >= nbf.
        assert_eq!(
            check_registered(
                &c(serde_json::json!({"exp": now + 60, "nbf": now + 30})).registered(),
                &e,
                now
            ),
            Ok(())
        );
        assert_eq!(
            check_registered(
                &c(serde_json::json!({"exp": now + 60, "nbf": now + 31})).registered(),
                &e,
                now
            ),
            Err(TokenError::NotYetValid)
        );
        let fresh = |v: serde_json::Value| {
            let mut v = v;
            v["exp"] = serde_json::json!(now + 60);
            c(v)
        };
        // iss and aud are required; aud may be an array; comparisons are exact.
        for (extra, want) in [
            (serde_json::json!({"iss": null}), Err(TokenError::Claims)),
            (serde_json::json!({"aud": null}), Err(TokenError::Claims)),
            (
                serde_json::json!({"iss": "https://id.example.com/"}),
                Err(TokenError::Issuer),
            ),
            (
                serde_json::json!({"aud": [AUD.to_uppercase()]}),
                Err(TokenError::Audience),
            ),
            (serde_json::json!({"aud": []}), Err(TokenError::Audience)),
            (serde_json::json!({"aud": ["other", AUD]}), Ok(())),
        ] {
            assert_eq!(
                check_registered(&fresh(extra.clone()).registered(), &e, now),
                want,
                "{extra}"
            );
        }
    }

    #[test]
    fn claims_of_the_wrong_type_or_missing_are_refused() {
        let s = signer("k1");
        let keys = keyset(&[&s]);
        for extra in [
            serde_json::json!({"sub": null}),
            serde_json::json!({"exp": null}),
            serde_json::json!({"exp": "soon"}),
            serde_json::json!({"exp": 1.5}),
            serde_json::json!({"nbf": "now"}),
            serde_json::json!({"iss": 7}),
            serde_json::json!({"aud": {"x": 1}}),
        ] {
            let t = sign(&s, "k1", "at+jwt", &claims(extra.clone()));
            assert_eq!(check(&t, &keys).unwrap_err(), TokenError::Claims, "{extra}");
        }
        // Correctly signed payloads that are not base64url, or not JSON.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(r#"{"alg":"ES256","typ":"at+jwt","kid":"k1"}"#);
        let key = EncodingKey::from_ec_der(&s.pkcs8);
        for (payload, want) in [
            ("e30!".to_string(), TokenError::Malformed),
            (b64.encode("not json"), TokenError::Claims),
            (
                // Found by fuzzing: JSON that is not UTF-8 in a member nobody reads (serde
                // skips it without looking) is not JSON (RFC 8259 section 8.1).
                b64.encode(
                    serde_json::to_string(&claims(serde_json::json!({"x": "?"})))
                        .unwrap()
                        .replace("\"?\"", "\"\u{1}\"")
                        .into_bytes()
                        .into_iter()
                        .map(|b| if b == 1 { 0xff } else { b })
                        .collect::<Vec<u8>>(),
                ),
                TokenError::Claims,
            ),
            (
                // Every claim the struct needs, in its field order, as an array.
                b64.encode(format!(
                    r#"["alice",{},null,"{ISS}",null,null,null,null,null,null,null,"{AUD}"]"#,
                    crate::now() + 60
                )),
                TokenError::Claims,
            ),
        ] {
            let input = format!("{header}.{payload}");
            let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::ES256).unwrap();
            assert_eq!(
                check(&format!("{input}.{sig}"), &keys).unwrap_err(),
                want,
                "{payload}"
            );
        }
    }

    #[test]
    fn a_token_whose_subject_is_its_client_is_a_machine() {
        let s = signer("k1");
        let keys = keyset(&[&s]);
        let machine =
            claims(serde_json::json!({"sub": "ns.job", "client_id": "ns.job", "groups": null}));
        let p = check(&sign(&s, "k1", "at+jwt", &machine), &keys).unwrap();
        assert_eq!(p.machine_client.as_deref(), Some("ns.job"));
        let person = claims(serde_json::json!({"client_id": "ns.app"}));
        assert_eq!(
            check(&sign(&s, "k1", "at+jwt", &person), &keys)
                .unwrap()
                .machine_client,
            None
        );
    }

    #[test]
    fn the_client_is_client_id_else_azp_and_never_two() {
        let s = signer("k1");
        let keys = keyset(&[&s]);
        let client = |extra: serde_json::Value| {
            check(&sign(&s, "k1", "at+jwt", &claims(extra)), &keys).map(|p| p.client)
        };
        assert_eq!(
            client(serde_json::json!({"client_id": "ns.app"}))
                .unwrap()
                .as_deref(),
            Some("ns.app")
        );
        assert_eq!(
            client(serde_json::json!({"azp": "ns.app"}))
                .unwrap()
                .as_deref(),
            Some("ns.app")
        );
        assert_eq!(
            client(serde_json::json!({"client_id": "ns.app", "azp": "ns.app"}))
                .unwrap()
                .as_deref(),
            Some("ns.app")
        );
        assert_eq!(client(serde_json::json!({})).unwrap(), None);
        assert_eq!(
            client(serde_json::json!({"client_id": "ns.app", "azp": "ns.other"})).unwrap_err(),
            TokenError::Claims
        );
        // An `azp` equal to the subject is a machine as `client_id` is.
        let p = check(
            &sign(
                &s,
                "k1",
                "at+jwt",
                &claims(serde_json::json!({"sub": "ns.job", "azp": "ns.job"})),
            ),
            &keys,
        )
        .unwrap();
        assert_eq!(p.machine_client.as_deref(), Some("ns.job"));
    }

    #[test]
    fn symmetric_keys_are_never_loaded() {
        let jwks = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}"#;
        assert!(KeySet::from_jwks(jwks.as_bytes()).unwrap().is_empty());
    }

    #[test]
    fn id_tokens_check_nonce_and_azp() {
        let s = signer("k1");
        let keys = keyset(&[&s]);
        let c = serde_json::json!({"iss": ISS, "aud": "tool", "sub": "alice", "exp": crate::now() + 60, "nonce": "n1"});
        let t = sign(&s, "k1", "JWT", &c);
        assert!(validate_id_token(&t, &keys, &id_check("tool", Some("n1"))).is_ok());
        assert_eq!(
            validate_id_token(&t, &keys, &id_check("tool", Some("n2"))).unwrap_err(),
            TokenError::Nonce
        );
        assert_eq!(
            validate_id_token(&t, &keys, &id_check("other", Some("n1"))).unwrap_err(),
            TokenError::Audience
        );
        let multi = sign(
            &s,
            "k1",
            "JWT",
            &serde_json::json!({"iss": ISS, "aud": ["tool", "x"], "sub": "a", "exp": crate::now() + 60}),
        );
        assert_eq!(
            validate_id_token(&multi, &keys, &id_check("tool", None)).unwrap_err(),
            TokenError::Audience
        );
        let claims = |extra: serde_json::Value| {
            let mut c = serde_json::json!({"iss": ISS, "aud": "tool", "sub": "a", "exp": crate::now() + 60});
            if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
                c.extend(e.clone());
            }
            c
        };
        // azp naming this client passes, with one audience or several; another azp is refused.
        let ok = sign(&s, "k1", "JWT", &claims(serde_json::json!({"azp": "tool"})));
        assert!(validate_id_token(&ok, &keys, &id_check("tool", None)).is_ok());
        let ok = sign(
            &s,
            "k1",
            "JWT",
            &claims(serde_json::json!({"aud": ["tool", "x"], "azp": "tool"})),
        );
        assert!(validate_id_token(&ok, &keys, &id_check("tool", None)).is_ok());
        let other = sign(&s, "k1", "JWT", &claims(serde_json::json!({"azp": "x"})));
        assert_eq!(
            validate_id_token(&other, &keys, &id_check("tool", None)).unwrap_err(),
            TokenError::Audience
        );
    }

    #[test]
    fn id_tokens_refuse_other_jwt_types() {
        let s = signer("k1");
        let keys = keyset(&[&s]);
        let c =
            serde_json::json!({"iss": ISS, "aud": "tool", "sub": "a", "exp": crate::now() + 60});
        for typ in ["JWT", "jwt", "application/jwt"] {
            let t = sign(&s, "k1", typ, &c);
            assert!(
                validate_id_token(&t, &keys, &id_check("tool", None)).is_ok(),
                "{typ}"
            );
        }
        for typ in ["at+jwt", "application/at+jwt", "logout+jwt", "JOSE"] {
            let t = sign(&s, "k1", typ, &c);
            assert_eq!(
                validate_id_token(&t, &keys, &id_check("tool", None)).unwrap_err(),
                TokenError::WrongType,
                "{typ}"
            );
        }
    }
}

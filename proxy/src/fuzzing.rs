//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): one function per parser of
//! untrusted input, each taking the fuzzer's bytes. They panic only when a property of the
//! parser is broken (a crash for the fuzzer); bad input itself must never panic. Not part of
//! the proxy's API.

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, Version};
use http_body_util::{Either, Full};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::session::{self, LoginState, Names, Purpose, Sealer, Session};
use crate::wire::{self, Framing, ReqBody, Step, host};
use crate::{forward, path};
use oidc::KeySet;
use oidc::jwt::{self, Expect, IdTokenCheck};

/// Splits `data` at its first `sep` (all of it and nothing when there is none).
fn split(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

thread_local! {
    static RUNTIME: Option<tokio::runtime::Runtime> =
        tokio::runtime::Builder::new_current_thread().enable_all().build().ok();
}

/// A request the HTTP/1.1 loop passed to the handler: it must satisfy the loop's promises.
async fn checked(req: Request<ReqBody>) -> Response<wire::Body> {
    assert_eq!(
        req.version(),
        Version::HTTP_11,
        "the loop serves HTTP/1.1 only"
    );
    assert!(
        host::acceptable(req.version(), req.uri().authority(), req.headers()),
        "the loop passed a request without one valid Host: {req:?}"
    );
    assert!(req.uri().path().starts_with('/'), "origin form only");
    for name in [header::TRANSFER_ENCODING, header::UPGRADE, header::EXPECT] {
        assert!(!req.headers().contains_key(name), "{req:?}");
    }
    let _ = path::normalise(req.uri().path());
    Response::new(Either::Right(Full::new(Bytes::from_static(b"ok"))))
}

/// The proxy's HTTP/1.1 connection loop ([`wire::serve`]) over `data` sent by a client, in one
/// piece, then end of stream. Properties: every request handed to the handler is one the loop
/// may serve (HTTP/1.1, origin form, one valid `Host`, no body, upgrade or expectation); a
/// connection handed over to hyper replays exactly the bytes the loop did not consume.
pub fn h1_request(data: &[u8]) {
    RUNTIME.with(|rt| {
        let Some(rt) = rt else { return };
        rt.block_on(async {
            let (mut client, server) = tokio::io::duplex(64 * 1024);
            let (_stop, stop_rx) = tokio::sync::watch::channel(false);
            let cfg = wire::Config {
                header_read_timeout: std::time::Duration::from_secs(3600),
                max_header_bytes: 8192,
            };
            let serve = async {
                let end = wire::serve(server, cfg, checked, stop_rx).await;
                // What hyper would read: the bytes kept, then the rest of the stream.
                if let Ok(wire::End::Fallback(mut rest)) = end {
                    let mut replayed = Vec::new();
                    let _ = rest.read_to_end(&mut replayed).await;
                    assert!(
                        !replayed.is_empty() && data.ends_with(&replayed),
                        "hyper would not get the bytes the loop left: {replayed:?}"
                    );
                }
            };
            let (mut rx, mut tx) = tokio::io::split(&mut client);
            let send = async {
                let _ = tx.write_all(data).await;
                let _ = tx.shutdown().await;
            };
            let mut answers = Vec::new();
            let receive = rx.read_to_end(&mut answers);
            let ((), (), _) = tokio::join!(serve, send, receive);
        });
    });
}

/// The direct exchange's response parser ([`wire::parse_head`], interim responses skipped)
/// and chunked decoder, over a tool's response in `data` (its first byte: bit 0 set for an
/// answer to HEAD). Properties: every field line kept for the client can be read back into a
/// header map; a body never yields more bytes than it was given.
pub fn upstream_response(data: &[u8]) {
    let Some((&flags, raw)) = data.split_first() else {
        return;
    };
    let mut buf = BytesMut::from(raw);
    let head = loop {
        match wire::parse_head(&mut buf, flags & 1 == 1) {
            Ok(wire::Parsed::Final(h)) => break h,
            Ok(wire::Parsed::Interim) => {}
            Ok(wire::Parsed::Partial) | Err(_) => return,
        }
    };
    let lines = head.fields.as_bytes().split(|&b| b == b'\n').count() - 1;
    let _ = head.fields.values(b"trailer").count();
    let mut map = HeaderMap::new();
    head.fields.merge_into(&mut map);
    assert_eq!(map.len(), lines, "a field line the client would lose");
    let given = buf.len();
    let mut body = 0;
    if let Framing::Chunked(mut state) = head.framing {
        while let Ok(Step::Data(d)) = wire::decode(&mut buf, &mut state) {
            body += d.len();
        }
    }
    assert!(body <= given, "{body} body bytes out of {given}");
}

/// The `Host` check ([`host::valid`], [`host::acceptable`]) on `data` as a `Host` value and, for
/// HTTP/2, as an `:authority`. Property: for HTTP/1.1 one `Host` field is acceptable exactly
/// when its value is valid.
pub fn host(data: &[u8]) {
    let valid = host::valid(data);
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, value.clone());
    assert_eq!(
        host::acceptable(Version::HTTP_11, None, &headers),
        valid,
        "{data:?}"
    );
    if let Ok(authority) = http::uri::Authority::try_from(data) {
        let _ = host::acceptable(Version::HTTP_2, Some(&authority), &headers);
        let _ = host::acceptable(Version::HTTP_2, Some(&authority), &HeaderMap::new());
    }
    headers.append(header::HOST, value);
    assert!(
        !host::acceptable(Version::HTTP_10, None, &headers),
        "two Host fields"
    );
}

/// The path normaliser ([`path::normalise`]) on `data` as a request path. Properties: what it
/// forwards normalises to the same result (the tool, normalising again, matches what was
/// authorised); the matched path is absolute, without empty or dot segments.
pub fn path(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let _ = path::is_safe_return_path(raw);
    let Ok(p) = path::normalise(raw) else {
        return;
    };
    assert!(p.matching.starts_with('/'), "{raw:?} → {p:?}");
    let inner = &p.matching[1..];
    if !inner.is_empty() {
        for seg in inner
            .split('/')
            .take(inner.split('/').count().saturating_sub(1))
        {
            assert!(
                !seg.is_empty() && seg != "." && seg != "..",
                "{raw:?} → {p:?}"
            );
        }
    }
    assert_eq!(
        path::normalise(&p.forward).as_ref(),
        Ok(&p),
        "{raw:?}: normalising the forwarded path again"
    );
}

static SEALER: LazyLock<Option<Sealer>> = LazyLock::new(|| Sealer::new(&[7; 32], "fuzz-client"));

/// Session-cookie decoding: `data` is `Cookie` lines (separated by `\n`), a NUL, and a plaintext
/// that is sealed and opened as a session and as a sign-in state. Properties: the cookie lines
/// forwarded to the tool never carry one of the proxy's cookies, and stripping them with the
/// plan read beside the session gives the same lines as stripping them on their own.
pub fn session_cookie(data: &[u8]) {
    let Some(sealer) = SEALER.as_ref() else {
        return;
    };
    let (lines, plain) = split(data, 0);
    let names = Names::new("_keyway_proxy", lines.first().is_some_and(|b| b & 1 == 1));
    let mut headers = HeaderMap::new();
    for line in lines.split(|&b| b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(header::COOKIE, v);
        }
    }
    let cookies = session::read_cookies(&headers, &names);
    if let Some(s) = &cookies.session {
        let _ = sealer.open::<Session>(Purpose::Session, s);
    }
    for (_, v) in &cookies.logins {
        let _ = sealer.open::<LoginState>(Purpose::Login, v);
    }
    let mut planned = headers.clone();
    forward::sanitise_request_headers(&mut planned, &names, Some(cookies.plan), false);
    forward::sanitise_request_headers(&mut headers, &names, None, false);
    assert_eq!(planned, headers, "the plan and a fresh look disagree");
    for value in headers.get_all(header::COOKIE) {
        let value = value.to_str().unwrap_or_default();
        for pair in session::cookie_pairs(value) {
            assert!(
                !session::is_own_cookie(session::cookie_name(pair), &names),
                "{pair:?} reaches the tool"
            );
        }
    }
    if let Some(sealed) = sealer.seal_bytes(Purpose::Session, plain.to_vec()) {
        let _ = sealer.open::<Session>(Purpose::Session, &sealed);
        assert!(sealer.open::<Session>(Purpose::Login, &sealed).is_none());
    }
    if let Some(sealed) = sealer.seal_bytes(Purpose::Login, plain.to_vec()) {
        let _ = sealer.open::<LoginState>(Purpose::Login, &sealed);
    }
}

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "https://tool.example";

/// An Ed25519 key (signing is cheap) and the key set publishing it.
static KEYS: LazyLock<Option<(Ed25519KeyPair, KeySet)>> = LazyLock::new(|| {
    let pair = Ed25519KeyPair::from_seed_unchecked(&[9; 32]).ok()?;
    let jwks = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "alg": "EdDSA",
        "x": B64.encode(pair.public_key().as_ref())}]});
    let set = KeySet::from_jwks(jwks.to_string().as_bytes()).ok()?;
    Some((pair, set))
});

/// JWT header and claims parsing ([`jwt::head`], [`jwt::validate_access_token`],
/// [`jwt::validate_id_token`]): `data` as a whole token, then `data` as a JOSE header and claims
/// (separated by a NUL) signed with the published key, so that the claims are decoded too.
/// Property: a token the proxy accepts names the expected issuer.
pub fn jwt(data: &[u8]) {
    let Some((pair, keys)) = KEYS.as_ref() else {
        return;
    };
    let expect = Expect {
        issuer: ISSUER,
        audience: AUDIENCE,
        leeway: 30,
    };
    let check = |token: &str| {
        if let Ok(h) = jwt::head(token)
            && jwt::validate_access_token(token, &h, keys, &expect).is_ok()
        {
            let claims = token.split('.').nth(1).unwrap_or_default();
            let claims = B64.decode(claims).unwrap_or_default();
            let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap_or_default();
            assert_eq!(claims["iss"], ISSUER, "accepted for another issuer");
        }
        let check = IdTokenCheck {
            issuer: ISSUER,
            client_id: "client",
            nonce: Some("n"),
            leeway: 30,
        };
        let _ = jwt::validate_id_token(token, keys, &check);
        let _ = jwt::id_token_claims(token, keys, &check);
    };
    if let Ok(token) = std::str::from_utf8(data) {
        check(token);
    }
    let (header, claims) = split(data, 0);
    let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let signature = B64.encode(pair.sign(input.as_bytes()).as_ref());
    check(&format!("{input}.{signature}"));
}

/// The issuer documents the proxy reads: `data` as discovery metadata ([`oidc::Metadata`]), a
/// JWKS ([`KeySet::from_jwks`]) and a token response ([`oidc::TokenResponse`]).
pub fn oidc_documents(data: &[u8]) {
    let _ = serde_json::from_slice::<oidc::Metadata>(data);
    let _ = serde_json::from_slice::<oidc::TokenResponse>(data);
    if let Ok(keys) = KeySet::from_jwks(data) {
        let _ = keys.lacks_kid(Some("k"));
        let _ = keys.len();
    }
}

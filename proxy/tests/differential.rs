//! The proxy's hand-written HTTP/1.1 path (its own connection loop, `h1`, and its own exchange
//! with the tool, `direct`) against hyper (`--http1-fast-path=false`: hyper's server and hyper's
//! client for every request). Two proxies in-process, one per path, in front of one scripted raw
//! tool; every case sends the same bytes to each and compares, after the normalisation below,
//! what the client receives (the accept/reject decision, status, fields, body, trailers, and
//! whether the connection stays open) and the requests the tool receives (method, target,
//! fields, body).
//!
//! Cases: hand-written requests (obs-fold, bare LF, duplicate `Content-Length`,
//! `Transfer-Encoding` variants, chunk extensions, trailers, huge and numerous fields,
//! pipelining, upgrades, `Expect`, HTTP/1.0, absolute form, spoofed identity fields, bearer
//! tokens), requests generated from a seeded mix of those parts, the fuzzing corpus of the
//! request parser (`fuzz/corpus/h1_request`), and upstream responses (chunked with trailers,
//! 1xx, no body on HEAD/204/304, close-delimited, HTTP/1.0, hop-by-hop fields, malformed
//! framing) hand-written and from the fuzzing corpus of the response parser
//! (`fuzz/corpus/upstream_response`).
//!
//! What may differ, and why (everything else must be equal):
//! - field-name case (RFC 9110 §5.1: names are case-insensitive): the fast path relays the
//!   tool's spelling, hyper writes lowercase names;
//! - the order of fields with different names (RFC 9110 §5.3: not significant): hyper writes
//!   its header map, grouped by name;
//! - several field lines of one name against one line with the values joined by commas (RFC
//!   9110 §5.3 lets a recipient combine them): hyper joins `Connection` and `Trailer` lines;
//! - the value of `Date` (the time of writing), not its presence; what is random in a sign-in
//!   redirect (its `state`, `nonce` and PKCE challenge, and the sign-in cookie);
//! - chunk sizes (RFC 9112 §7.1: chunking carries no meaning): bodies are compared decoded;
//! - a response whose body fails (the tool breaks its framing or closes early): whether its head
//!   and how much of its body reached the client before the connection closed. hyper's server
//!   writes the head once the body's first frame is ready or pending, which depends on when
//!   hyper's client task saw the failure; the fast path writes what it has. Either way the
//!   response is never completed and the connection closes, which is what is compared: such a
//!   response is left out of the summary, as if the connection had closed before it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const RESOURCE: &str = "https://tool.example.com";
/// Ends every case: a request that closes the connection once answered, if it is still open.
const SENTINEL: &[u8] = b"GET /pub/end HTTP/1.1\r\nhost: end\r\nconnection: close\r\n\r\n";
/// The tool's answer to the sentinel.
const END: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nend";
/// How long a client waits for the proxy to close.
const PATIENCE: Duration = Duration::from_secs(5);

/// How the tool answers: `head` (through the final response's empty line), then `body` unless
/// the request is HEAD; then it closes the connection when `close`.
#[derive(Clone, Debug)]
struct Script {
    head: Vec<u8>,
    body: Vec<u8>,
    close: bool,
}

fn script(head: &str, body: &str) -> Script {
    Script {
        head: head.as_bytes().to_vec(),
        body: body.as_bytes().to_vec(),
        close: false,
    }
}

fn closing(mut s: Script) -> Script {
    s.close = true;
    s
}

/// The tool: answers every request with the current script and records what it received.
#[derive(Default)]
struct Tool {
    script: Mutex<Option<Script>>,
    received: Mutex<Vec<Vec<u8>>>,
}

/// One request from the start of `buf`: its length, method and whether its head is complete
/// and its body framing readable (`None`: need more bytes or unparsable, see `Err`).
fn request_len(buf: &[u8]) -> Result<Option<(usize, String, String)>, String> {
    let mut fields = [httparse::EMPTY_HEADER; 256];
    let mut req = httparse::Request::new(&mut fields);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let method = req.method.unwrap_or("").to_string();
    let target = req.path.unwrap_or("").to_string();
    let mut chunked = false;
    let mut length = 0usize;
    for f in req.headers.iter() {
        if f.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = String::from_utf8_lossy(f.value)
                .to_ascii_lowercase()
                .trim_end()
                .ends_with("chunked");
        } else if f.name.eq_ignore_ascii_case("content-length") {
            length = String::from_utf8_lossy(f.value)
                .trim()
                .parse()
                .map_err(|_| "content-length")?;
        }
    }
    if chunked {
        return Ok(chunked_len(&buf[head..])?.map(|n| (head + n, method, target)));
    }
    Ok((buf.len() >= head + length).then_some((head + length, method, target)))
}

/// The length of a chunked body (with its trailer section) at the start of `buf`.
fn chunked_len(buf: &[u8]) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let Some(lf) = buf[at..].iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&buf[at..at + lf]).to_string();
        let size = line.trim_end_matches('\r').split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size.trim(), 16).map_err(|_| format!("chunk {line:?}"))?;
        at += lf + 1;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(lf) = buf[at..].iter().position(|&b| b == b'\n') else {
                    return Ok(None);
                };
                let empty = buf[at..at + lf].iter().all(|&b| b == b'\r');
                at += lf + 1;
                if empty {
                    return Ok(Some(at));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        at += size + 2;
    }
}

async fn tool_conn(tool: Arc<Tool>, mut s: TcpStream) {
    let mut buf = Vec::new();
    loop {
        let (n, method, target) = loop {
            match request_len(&buf) {
                Ok(Some(r)) => break r,
                Ok(None) => {}
                Err(e) => {
                    tool.received
                        .lock()
                        .unwrap()
                        .push(format!("<tool could not read: {e}>").into_bytes());
                    return;
                }
            }
            let mut chunk = [0u8; 65536];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let raw: Vec<u8> = buf.drain(..n).collect();
        if target == "/pub/end" {
            if s.write_all(END).await.is_err() {
                return;
            }
            continue;
        }
        tool.received.lock().unwrap().push(raw);
        let script = tool.script.lock().unwrap().clone();
        let Some(script) = script else { return };
        let mut out = script.head.clone();
        if method != "HEAD" {
            out.extend_from_slice(&script.body);
        }
        if s.write_all(&out).await.is_err() {
            return;
        }
        if script.head.starts_with(b"HTTP/1.1 101") {
            // A tunnel: whatever comes is echoed until the proxy closes.
            let mut chunk = [0u8; 4096];
            while let Ok(n) = s.read(&mut chunk).await {
                if n == 0 || s.write_all(&chunk[..n]).await.is_err() {
                    break;
                }
            }
            return;
        }
        if script.close {
            return;
        }
    }
}

async fn tool() -> (u16, Arc<Tool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tool = Arc::new(Tool::default());
    let t = tool.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(tool_conn(t.clone(), s));
        }
    });
    (port, tool)
}

/// A stand-in issuer (discovery and one ES256 key) and a token it signed.
async fn issuer() -> (String, String) {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let p = pair.public_key().as_ref();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
        "x": b64.encode(&p[1..33]), "y": b64.encode(&p[33..65])});
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let iss = url.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let (iss, jwk) = (iss.clone(), jwk.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let body = match req.uri().path() {
                        "/.well-known/openid-configuration" => serde_json::json!({"issuer": iss,
                            "authorization_endpoint": format!("{iss}/auth"),
                            "token_endpoint": format!("{iss}/token"),
                            "jwks_uri": format!("{iss}/jwks")}),
                        _ => serde_json::json!({"keys": [jwk]}),
                    };
                    let resp = http::Response::new(Full::new(Bytes::from(body.to_string())));
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("k1".into());
    h.typ = Some("at+jwt".into());
    let claims = serde_json::json!({"iss": url, "aud": RESOURCE, "sub": "alice",
        "exp": proxy::now() + 3600, "scope": "tool:read", "email": "alice@example.com",
        "groups": ["eng", "ops"]});
    let token =
        jsonwebtoken::encode(&h, &claims, &EncodingKey::from_ec_der(pkcs8.as_ref())).unwrap();
    (url, token)
}

/// Both proxies in front of one tool.
struct Rig {
    fast: std::net::SocketAddr,
    hyper: std::net::SocketAddr,
    tool: Arc<Tool>,
    token: String,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let (issuer, token) = issuer().await;
    let (tool_port, tool) = tool().await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, content: &str| std::fs::write(dir.path().join(name), content).unwrap();
    write("client-id", "tool");
    write("issuer-url", &issuer);
    write(
        "cookie-secret",
        &base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
    );
    let policy = serde_json::json!({"resource": RESOURCE, "scopes": ["tool:read"],
        "access": {"rules": [{"path": "/pub", "public": true},
            {"path": "/api", "scopes": ["tool:read"]}]}});
    write("policy.json", &policy.to_string());
    let mut addrs = Vec::new();
    for fast in ["true", "false"] {
        let cli = proxy::config::Cli::try_parse_from([
            "keyway-proxy",
            "--config-dir",
            dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--upstream-port",
            &tool_port.to_string(),
            "--access-log=false",
            "--header-read-timeout",
            "1",
            "--client-body-timeout",
            "1",
            "--upstream-timeout",
            "1",
            &format!("--http1-fast-path={fast}"),
        ])
        .unwrap();
        let server = proxy::server::Server::bind(cli.settings().unwrap(), Instant::now())
            .await
            .unwrap();
        let readiness = server.readiness();
        addrs.push(server.local_addr().unwrap());
        tokio::spawn(server.run(std::future::pending()));
        let start = Instant::now();
        while !readiness.is_ready() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "issuer not loaded"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Rig {
        fast: addrs[0],
        hyper: addrs[1],
        tool,
        token,
        _dir: dir,
    }
}

/// Sends `raw` and the sentinel; returns what came back until the proxy closed (`None`: it did
/// not close within [`PATIENCE`]).
async fn send(addr: std::net::SocketAddr, raw: &[u8]) -> Option<Vec<u8>> {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    // The proxy may close before reading it all.
    let _ = conn.write_all(&[raw, SENTINEL].concat()).await;
    let mut got = Vec::new();
    let mut chunk = [0u8; 65536];
    let deadline = Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline.into(), conn.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A field value with what is random in each sign-in redirect (`state`, `nonce`, the PKCE
/// challenge, and the sign-in cookie named after the state and sealed with a random nonce)
/// hidden, and `Date` values hidden.
fn unrandom(name: &str, value: &str) -> String {
    match name {
        "date" => "<date>".into(),
        "location" => value
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k @ ("state" | "nonce" | "code_challenge"), _)) => format!("{k}=<random>"),
                _ => p.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&"),
        "set-cookie" if value.contains("_login_") => match value.split_once(';') {
            Some((_, attributes)) => format!("<sign-in cookie>;{attributes}"),
            None => "<sign-in cookie>".into(),
        },
        _ => value.into(),
    }
}

/// Field lines, normalised: lowercase names in name order, the values of one name joined in
/// order, random values hidden ([`unrandom`]); each line starts with `prefix`.
fn fields(out: &mut String, prefix: &str, lines: &[httparse::Header<'_>]) {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in lines {
        let name = f.name.to_ascii_lowercase();
        let value = unrandom(&name, &String::from_utf8_lossy(f.value));
        map.entry(name).or_default().push(value);
    }
    for (name, values) in map {
        let _ = writeln!(out, "  {prefix}{name}: {:?}", values.join(", "));
    }
}

/// A chunked body at the start of `buf`, decoded: (body, trailer lines, length read), or the
/// part decoded before it broke off.
fn dechunk(buf: &[u8]) -> (Vec<u8>, String, Option<usize>) {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(lf) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
            return (body, String::new(), None);
        };
        let line = String::from_utf8_lossy(&buf[at..at + lf]).to_string();
        let Ok(size) = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
        else {
            return (body, String::new(), None);
        };
        at += lf + 2;
        if size == 0 {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            return match httparse::parse_headers(&buf[at..], &mut slots) {
                Ok(httparse::Status::Complete((n, lines))) => {
                    let mut t = String::new();
                    fields(&mut t, "trailer ", lines);
                    (body, t, Some(at + n))
                }
                _ => (body, String::new(), None),
            };
        }
        if buf.len() < at + size + 2 {
            return (body, String::new(), None);
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
    }
}

/// What a client received, normalised: each response (status, fields, body, trailers), then
/// how the connection ended. `heads[i]`: whether the i-th request was HEAD.
fn responses(got: Option<&[u8]>, heads: &[bool]) -> String {
    let Some(mut buf) = got else {
        return "<the proxy did not close the connection>".into();
    };
    let mut out = String::new();
    let mut i = 0;
    while !buf.is_empty() {
        let mut slots = [httparse::EMPTY_HEADER; 128];
        let mut resp = httparse::Response::new(&mut slots);
        let n = match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            other => {
                let _ = writeln!(
                    out,
                    "<unreadable: {other:?} {:?}>",
                    String::from_utf8_lossy(buf)
                );
                return out;
            }
        };
        let code = resp.code.unwrap_or(0);
        // Where this response's summary starts (it is removed if the response broke off).
        let start = out.len();
        let _ = writeln!(out, "HTTP/1.{} {code}", resp.version.unwrap_or(9));
        fields(&mut out, "", resp.headers);
        let value = |name: &str| {
            resp.headers
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))
                .map(|f| String::from_utf8_lossy(f.value).to_ascii_lowercase())
        };
        let chunked = value("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let length = value("content-length").and_then(|v| v.trim().parse::<usize>().ok());
        buf = &buf[n..];
        if (100..200).contains(&code) {
            continue;
        }
        let head = heads.get(i).copied().unwrap_or(false);
        i += 1;
        if head || code == 204 || code == 304 {
            continue;
        }
        if chunked {
            let (body, trailers, used) = dechunk(buf);
            let _ = writeln!(
                out,
                "  body (chunked): {:?}",
                String::from_utf8_lossy(&body)
            );
            match used {
                Some(n) => {
                    out.push_str(&trailers);
                    buf = &buf[n..];
                }
                None => {
                    out.truncate(start);
                    buf = &[];
                }
            }
        } else if let Some(len) = length {
            if buf.len() < len {
                out.truncate(start);
                buf = &[];
            } else {
                let _ = writeln!(out, "  body: {:?}", String::from_utf8_lossy(&buf[..len]));
                buf = &buf[len..];
            }
        } else {
            let _ = writeln!(out, "  body (to close): {:?}", String::from_utf8_lossy(buf));
            buf = &[];
        }
    }
    out.push_str("<closed>\n");
    out
}

/// The requests the tool received, normalised like the responses.
fn requests(received: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for raw in received {
        let mut slots = [httparse::EMPTY_HEADER; 256];
        let mut req = httparse::Request::new(&mut slots);
        let Ok(httparse::Status::Complete(n)) = req.parse(raw) else {
            let _ = writeln!(out, "{}", String::from_utf8_lossy(raw));
            continue;
        };
        let _ = writeln!(
            out,
            "{} {} HTTP/1.{}",
            req.method.unwrap_or(""),
            req.path.unwrap_or(""),
            req.version.unwrap_or(9)
        );
        fields(&mut out, "", req.headers);
        let chunked = req.headers.iter().any(|f| {
            f.name.eq_ignore_ascii_case("transfer-encoding")
                && String::from_utf8_lossy(f.value)
                    .to_ascii_lowercase()
                    .contains("chunked")
        });
        if chunked {
            let (body, trailers, _) = dechunk(&raw[n..]);
            let _ = writeln!(
                out,
                "  body (chunked): {:?}",
                String::from_utf8_lossy(&body)
            );
            out.push_str(&trailers);
        } else {
            let _ = writeln!(out, "  body: {:?}", String::from_utf8_lossy(&raw[n..]));
        }
    }
    out
}

/// Whether each request in `raw` (as far as it can be split) is HEAD, in order.
fn head_flags(raw: &[u8]) -> Vec<bool> {
    let mut flags = Vec::new();
    let mut rest = raw;
    while let Ok(Some((n, method, _))) = request_len(rest) {
        flags.push(method == "HEAD");
        rest = &rest[n..];
    }
    flags.push(false);
    flags
}

/// One path's outcome for a case: (what the client received, what the tool received).
async fn run(rig: &Rig, addr: std::net::SocketAddr, raw: &[u8], s: &Script) -> (String, String) {
    *rig.tool.script.lock().unwrap() = Some(s.clone());
    rig.tool.received.lock().unwrap().clear();
    let got = send(addr, raw).await;
    let client = responses(got.as_deref(), &head_flags(raw));
    let tool = requests(&rig.tool.received.lock().unwrap());
    (client, tool)
}

/// Runs every case on both paths and returns the differences.
async fn compare(rig: &Rig, cases: &[(Vec<u8>, Script)]) -> Vec<String> {
    let mut diffs = Vec::new();
    for (raw, s) in cases {
        let fast = run(rig, rig.fast, raw, s).await;
        let hyper = run(rig, rig.hyper, raw, s).await;
        if fast != hyper {
            diffs.push(format!(
                "request {:?}\ntool answers {:?}\n--- fast path: client got\n{}--- hyper: client got\n{}--- fast path: tool got\n{}--- hyper: tool got\n{}",
                String::from_utf8_lossy(raw),
                String::from_utf8_lossy(&[s.head.as_slice(), &s.body].concat()),
                fast.0,
                hyper.0,
                fast.1,
                hyper.1
            ));
        }
    }
    diffs
}

fn ok() -> Script {
    script(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Tool: a\r\nContent-Length: 5\r\n\r\n",
        "hello",
    )
}

/// Upstream responses: what the tool may answer.
fn responses_of_the_tool() -> Vec<Script> {
    let mut all = vec![
        ok(),
        script(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum, X-Other\r\nTrailer: Set-Cookie\r\n\r\n",
            "5;ext=\"a b\"\r\nhello\r\n1 ;x\r\n!\r\n0\r\nX-Sum: 6\r\nSet-Cookie: a=1\r\nX-Hidden: h\r\nX-Other: o\r\n\r\n",
        ),
        script(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n",
            "3\r\nabc\r\n0\r\n\r\n",
        ),
        script(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nLocation: /x\r\nContent-Length: 2\r\n\r\n",
            "ok",
        ),
        script("HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", ""),
        script(
            "HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\nContent-Length: 10\r\nTrailer: X-Sum\r\n\r\n",
            "",
        ),
        closing(script("HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n", "until the end")),
        script("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", "ok"),
        closing(script("HTTP/1.0 200 OK\r\n\r\n", "old")),
        script(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\nX-Secret: s\r\nProxy-Authenticate: Basic\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\n",
            "ok",
        ),
        script(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
            "ok",
        ),
        script("HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\n\r\n", "ok"),
        script(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
            "ok!",
        ),
        script(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            "2\r\nok\r\n0\r\n\r\n",
        ),
        script(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "2\r\nok\r\n0\r\n\r\n",
        ),
        script(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\n",
            "ok",
        ),
        script("HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n", "ok"),
        script(
            "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\n",
            "ok",
        ),
        script("HTTP/1.1 200 OK\nContent-Length: 2\n\n", "ok"),
        script(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "2\nok\r\n0\r\n\r\n",
        ),
        script(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "2\r\nokXX0\r\n\r\n",
        ),
        script(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "zz\r\nok\r\n0\r\n\r\n",
        ),
        closing(script(
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
            "short",
        )),
        script(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "",
        ),
        script("HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\n", "ok"),
        script("HTTP/1.1 20 Short\r\nContent-Length: 2\r\n\r\n", "ok"),
        script(
            "HTTP/1.1 200 OK\r\nX-Bin: a\u{e9}b\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\n",
            "ok",
        ),
        closing(script("garbage\r\n\r\n", "")),
    ];
    // (Each entry's first byte is the fuzz target's flags, not part of the response.)
    for entry in corpus("upstream_response") {
        all.push(Script {
            head: entry.get(1..).unwrap_or_default().to_vec(),
            body: Vec::new(),
            close: true,
        });
    }
    all
}

/// The files of a fuzzing corpus (`fuzz/corpus/<target>`), sorted by name.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

/// Hand-written requests.
fn requests_of_clients(token: &str) -> Vec<Vec<u8>> {
    let bearer = format!("authorization: Bearer {token}\r\n");
    let big = "x".repeat(40_000);
    let many: String = (0..101).map(|i| format!("x-{i}: 1\r\n")).collect();
    let fifty: String = (0..50).map(|i| format!("x-{i}: {i}\r\n")).collect();
    let list = [
        "GET /pub/a HTTP/1.1\r\nHost: tool\r\n\r\n".to_string(),
        "GET /pub/a?x=1&y=%20 HTTP/1.1\r\nhost: tool:8080\r\nAccept: */*\r\n\r\n".into(),
        "HEAD /pub/a HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "DELETE /pub/a HTTP/1.1\r\nhost: tool\r\ncontent-length: 0\r\n\r\n".into(),
        "OPTIONS /pub/a HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "OPTIONS * HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "GET /pub//a/./b/../c HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "GET /pub/%41%2f HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nte: trailers\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nte: gzip;q=1, trailers\r\nconnection: te\r\n\r\n"
            .into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nconnection: close\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nConnection: CLOSE\r\nconnection: keep-alive\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nconnection: close, \u{e9}\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nte: trailers;q=1\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nte: trailers, \u{e9}\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nconnection: keep-alive, x-drop\r\nx-drop: 1\r\nkeep-alive: 5\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nx-forwarded-user: admin\r\nX_Forwarded_User: admin\r\nx-auth-request-email: a@b\r\nforwarded: for=1.2.3.4\r\nx-forwarded-for: 6.6.6.6\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\ncookie: a=1; _keyway_proxy=x; b=2\r\ncookie: c=3\r\n\r\n".into(),
        format!("GET /api/x HTTP/1.1\r\nhost: tool\r\n{bearer}\r\n"),
        format!("GET /api/x?q HTTP/1.1\r\nhost: tool\r\n{bearer}x-forwarded-user: mallory\r\nte: trailers\r\n\r\n"),
        format!("HEAD /api/x HTTP/1.1\r\nhost: tool\r\n{bearer}\r\n"),
        format!("POST /api/x HTTP/1.1\r\nhost: tool\r\n{bearer}content-length: 5\r\n\r\nhello"),
        "GET /api/x HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "GET /api/x HTTP/1.1\r\nhost: tool\r\naccept: text/html\r\n\r\n".into(),
        "GET /api/x HTTP/1.1\r\nhost: tool\r\nauthorization: Bearer bad.token.here\r\n\r\n"
            .into(),
        "GET /.well-known/oauth-protected-resource HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "POST /pub/a HTTP/1.1\r\nhost: tool\r\ncontent-length: 5\r\n\r\nhello".into(),
        "POST /pub/a HTTP/1.1\r\nhost: tool\r\ntransfer-encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nx-t: 1\r\n\r\n".into(),
        "POST /pub/a HTTP/1.1\r\nhost: tool\r\ntransfer-encoding: chunked\r\ntrailer: x-t\r\nte: trailers\r\n\r\n5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n".into(),
        "POST /pub/a HTTP/1.1\r\nhost: tool\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello".into(),
        "POST /pub/a HTTP/1.1\r\nhost: tool\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!".into(),
        "POST /pub/a HTTP/1.1\r\nhost: tool\r\ncontent-length: 5, 5\r\n\r\nhello".into(),
        "POST /pub/a HTTP/1.1\r\nhost: tool\r\ncontent-length: +5\r\n\r\nhello".into(),
        "POST /pub/a HTTP/1.1\r\nhost: tool\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n".into(),
        "POST /pub/a HTTP/1.1\r\nhost: tool\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n".into(),
        "POST /pub/a HTTP/1.1\r\nhost: tool\r\ntransfer-encoding: chunked, gzip\r\n\r\n0\r\n\r\n".into(),
        "POST /pub/a HTTP/1.1\r\nhost: tool\r\ntransfer-encoding: identity\r\n\r\n".into(),
        "POST /pub/a HTTP/1.1\r\nhost: tool\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n".into(),
        "POST /pub/a HTTP/1.1\r\nhost: tool\r\ntransfer-encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n".into(),
        "POST /pub/a HTTP/1.1\r\nhost: tool\r\ntransfer-encoding: chunked\r\n\r\nz\r\n\r\n".into(),
        "PUT /pub/a HTTP/1.1\r\nhost: tool\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\nok".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nexpect: 100-continue\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nexpect: something\r\n\r\n".into(),
        "GET /pub/ws HTTP/1.1\r\nhost: tool\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nupgrade: h2c\r\n\r\n".into(),
        "GET /pub/a HTTP/1.0\r\nhost: tool\r\n\r\n".into(),
        "GET /pub/a HTTP/1.0\r\n\r\n".into(),
        "GET /pub/a HTTP/1.0\r\nhost: tool\r\nconnection: keep-alive\r\n\r\n".into(),
        "GET http://tool/pub/a HTTP/1.1\r\nhost: other\r\n\r\n".into(),
        "CONNECT tool:443 HTTP/1.1\r\nhost: tool:443\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: a\r\nhost: a\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: a b\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: user@a\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: [::1]:8080\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost:\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nx-a: 1\r\n folded\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\nhost: tool\n\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\nx-a: 1\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost : tool\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nx a: 1\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nx-a: a\u{e9}b\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nx-a: a\x01b\r\n\r\n".into(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nx-empty:\r\nx-space:   \r\n\r\n".into(),
        "GET  /pub/a HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "GET /pub/a  HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "GET /pub/a HTTP/1.2\r\nhost: tool\r\n\r\n".into(),
        "GET /pub/a HTTP/2.0\r\nhost: tool\r\n\r\n".into(),
        "GET /pub/a\r\n\r\n".into(),
        "get /pub/a HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "G\u{e9}T /pub/a HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "GET /pub/a b HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "GET /pub/\x7f HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "GET /pub/a#frag HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "GET pub/a HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "\r\nGET /pub/a HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        format!("GET /pub/{big} HTTP/1.1\r\nhost: tool\r\n\r\n"),
        format!("GET /pub/a HTTP/1.1\r\nhost: tool\r\nx-big: {big}\r\n\r\n"),
        format!("GET /pub/a HTTP/1.1\r\nhost: tool\r\n{many}\r\n"),
        format!("GET /pub/a HTTP/1.1\r\nhost: tool\r\n{fifty}\r\n"),
        "GET /pub/1 HTTP/1.1\r\nhost: tool\r\n\r\nGET /pub/2 HTTP/1.1\r\nhost: tool\r\n\r\nHEAD /pub/3 HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "GET /pub/1 HTTP/1.1\r\nhost: tool\r\n\r\nPOST /pub/2 HTTP/1.1\r\nhost: tool\r\ncontent-length: 2\r\n\r\nhiGET /pub/3 HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "GET /pub/1 HTTP/1.1\r\nhost: tool\r\n\r\nGET /pub/2 HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\nGET /pub/3 HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "GET /pub/1 HTTP/1.1\r\nhost: tool\r\nconnection: close\r\n\r\nGET /pub/2 HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".into(),
    ];
    list.into_iter().map(String::into_bytes).collect()
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[(self.next() % from.len() as u64) as usize]
    }
}

/// Requests made of a seeded mix of methods, targets, versions, fields, framings and line
/// endings, one to three per connection.
fn generated(token: &str, n: usize) -> Vec<Vec<u8>> {
    let methods = [
        "GET", "GET", "HEAD", "DELETE", "POST", "PUT", "OPTIONS", "get", "PATCH",
    ];
    let targets = [
        "/pub/a",
        "/pub/a?x=1",
        "/pub/b/../c",
        "/pub/%7e",
        "/pub//x",
        "/api/x",
        "/pub/a;p",
        "/Pub/a",
        "*",
        "http://tool/pub/a",
        "/pub/%2e%2e/api",
    ];
    let versions = ["HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/1.2"];
    let bearer = format!("authorization: Bearer {token}");
    let hosts = [
        "host: tool",
        "host: tool",
        "host: tool:8080",
        "Host: [::1]",
        "host: x y",
    ];
    let extras = [
        "host: tool",
        "accept: text/html",
        "te: trailers",
        "connection: close",
        "connection: keep-alive",
        "connection: upgrade",
        "upgrade: websocket",
        "expect: 100-continue",
        "x-forwarded-user: mallory",
        "x_forwarded_user: mallory",
        "cookie: a=1",
        "cookie: _keyway_proxy=x",
        "trailer: x-t",
        "content-length: 0",
        bearer.as_str(),
        "x-a:  spaced  ",
        "X-MiXeD: Case",
    ];
    let bodies: [(&str, &str); 8] = [
        ("", ""),
        ("", ""),
        ("content-length: 3", "abc"),
        ("content-length: 3\r\ncontent-length: 3", "abc"),
        ("transfer-encoding: chunked", "3\r\nabc\r\n0\r\n\r\n"),
        (
            "transfer-encoding: chunked",
            "3;x=y\r\nabc\r\n0\r\nx-t: 1\r\n\r\n",
        ),
        (
            "transfer-encoding: chunked\r\ncontent-length: 3",
            "3\r\nabc\r\n0\r\n\r\n",
        ),
        ("content-length: 1", "abc"),
    ];
    let mut rng = Rng(0x6b65_7977_6179_0001);
    (0..n)
        .map(|_| {
            let mut raw = String::new();
            for _ in 0..=(rng.next() % 3) {
                let mut lines = vec![format!(
                    "{} {} {}",
                    rng.pick(&methods),
                    rng.pick(&targets),
                    rng.pick(&versions)
                )];
                if !rng.next().is_multiple_of(8) {
                    lines.push(rng.pick(&hosts).to_string());
                }
                for _ in 0..(rng.next() % 5) {
                    lines.push(rng.pick(&extras).to_string());
                }
                let (framing, body) = *rng.pick(&bodies);
                if !framing.is_empty() {
                    lines.push(framing.to_string());
                }
                let eol = if rng.next().is_multiple_of(16) {
                    "\n"
                } else {
                    "\r\n"
                };
                let mut head = lines.join(eol);
                head.push_str(eol);
                head.push_str(eol);
                if rng.next().is_multiple_of(24) {
                    head = head.replacen(eol, &format!("{eol} folded{eol}"), 2);
                }
                raw.push_str(&head);
                raw.push_str(body);
            }
            raw.into_bytes()
        })
        .collect()
}

fn report(diffs: &[String], cases: usize) {
    assert!(
        diffs.is_empty(),
        "{} of {cases} cases differ between the fast path and hyper:\n\n{}",
        diffs.len(),
        diffs.join("\n========\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_the_tool_and_the_client_alike_on_both_paths() {
    let rig = rig().await;
    let mut cases: Vec<(Vec<u8>, Script)> = requests_of_clients(&rig.token)
        .into_iter()
        .chain(corpus("h1_request"))
        .map(|raw| (raw, ok()))
        .collect();
    cases.extend(
        generated(&rig.token, 500)
            .into_iter()
            .map(|raw| (raw, ok())),
    );
    let diffs = compare(&rig, &cases).await;
    report(&diffs, cases.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_responses_reach_the_client_alike_on_both_paths() {
    let rig = rig().await;
    let asks = [
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\n\r\n".to_string(),
        "GET /pub/a HTTP/1.1\r\nhost: tool\r\nte: trailers\r\n\r\n".into(),
        "HEAD /pub/a HTTP/1.1\r\nhost: tool\r\n\r\n".into(),
        format!(
            "GET /api/a HTTP/1.1\r\nhost: tool\r\nauthorization: Bearer {}\r\nte: trailers\r\n\r\nGET /pub/b HTTP/1.1\r\nhost: tool\r\n\r\n",
            rig.token
        ),
    ];
    let mut cases = Vec::new();
    for s in responses_of_the_tool() {
        for ask in &asks {
            cases.push((ask.clone().into_bytes(), s.clone()));
        }
    }
    let diffs = compare(&rig, &cases).await;
    report(&diffs, cases.len());
}

/// Item 15 of issue 13: trailer fields reach a client that accepts them, on both paths.
#[tokio::test]
async fn trailers_reach_a_client_that_accepts_them_on_both_paths() {
    let rig = rig().await;
    let s = script(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n",
        "2\r\nhi\r\n0\r\nX-Checksum: 42\r\n\r\n",
    );
    let raw = b"GET /pub/a HTTP/1.1\r\nhost: tool\r\nte: trailers\r\n\r\n";
    for addr in [rig.fast, rig.hyper] {
        let (client, tool) = run(&rig, addr, raw, &s).await;
        assert!(
            client.contains("  body (chunked): \"hi\"\n  trailer x-checksum: \"42\"\n"),
            "{addr}: {client}"
        );
        assert!(
            client.contains("  trailer: \"X-Checksum\"\n"),
            "{addr}: {client}"
        );
        assert!(tool.contains("  te: \"trailers\"\n"), "{addr}: {tool}");
    }
}

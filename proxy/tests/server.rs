//! The whole proxy in-process: a stand-in issuer (discovery and JWKS, switchable between failing
//! and serving, with key rotation), an echoing tool, and `Server` on port 0. Covers readiness,
//! RFC 9728 metadata in both forms, bearer decisions, JWKS refetch on an unknown `kid`, metrics
//! and configuration reload, and on raw connections (both the proxy's own HTTP/1.1 loop and
//! hyper's) the RFC 9112 `Host` rules and HEAD answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

struct Key {
    kid: String,
    pkcs8: Vec<u8>,
    jwk: serde_json::Value,
}

fn key(kid: &str) -> Key {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let p = pair.public_key().as_ref();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    Key {
        kid: kid.into(),
        pkcs8: pkcs8.as_ref().to_vec(),
        jwk: serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
            "x": b64.encode(&p[1..33]), "y": b64.encode(&p[33..65])}),
    }
}

/// Serves `handler` over HTTP/1.1 on `listener`.
async fn serve<F>(listener: tokio::net::TcpListener, handler: F)
where
    F: Fn(http::Request<Incoming>) -> http::Response<Full<Bytes>> + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let resp = handler(req);
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

fn json_response(status: u16, body: &serde_json::Value) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

struct Issuer {
    url: String,
    up: Arc<AtomicBool>,
    keys: Arc<Mutex<Vec<serde_json::Value>>>,
}

async fn issuer() -> Issuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let up = Arc::new(AtomicBool::new(false));
    let keys = Arc::new(Mutex::new(Vec::new()));
    let (u, k, iss) = (up.clone(), keys.clone(), url.clone());
    serve(listener, move |req| {
        if !u.load(Ordering::SeqCst) {
            return json_response(503, &serde_json::json!({}));
        }
        match req.uri().path() {
            "/.well-known/openid-configuration" => json_response(
                200,
                &serde_json::json!({"issuer": iss, "authorization_endpoint": format!("{iss}/auth"),
                    "token_endpoint": format!("{iss}/token"), "jwks_uri": format!("{iss}/jwks"),
                    "authorization_response_iss_parameter_supported": true}),
            ),
            "/jwks" => json_response(200, &serde_json::json!({"keys": *k.lock().unwrap()})),
            _ => json_response(404, &serde_json::json!({})),
        }
    })
    .await;
    Issuer { url, up, keys }
}

async fn tool() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    serve(listener, |req| {
        let headers: serde_json::Map<String, serde_json::Value> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
            .collect();
        json_response(
            200,
            &serde_json::json!({"path": req.uri().to_string(), "headers": headers}),
        )
    })
    .await;
    port
}

const RESOURCE: &str = "https://tool.example.com/mcp";

fn token(k: &Key, issuer: &str, scope: &str) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(k.kid.clone());
    h.typ = Some("at+jwt".into());
    let now = proxy::now();
    let claims = serde_json::json!({"iss": issuer, "aud": RESOURCE, "sub": "agent-7", "exp": now + 300,
        "scope": scope, "email": "agent@example.com", "client_id": "ns.agent"});
    jsonwebtoken::encode(&h, &claims, &EncodingKey::from_ec_der(&k.pkcs8)).unwrap()
}

struct Resp {
    status: u16,
    headers: http::HeaderMap,
    body: serde_json::Value,
    text: String,
}

async fn get(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    auth: Option<&str>,
) -> Resp {
    let mut b = http::Request::builder().method(method).uri(url);
    if let Some(t) = auth {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let resp = client
        .request(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    Resp {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        text,
    }
}

/// Sends `raw` on a new connection and returns the status, the header section (lower case) and
/// the body, read until the proxy closes.
async fn raw(addr: std::net::SocketAddr, raw: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(raw.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut got))
        .await
        .expect("the proxy closes the connection")
        .unwrap();
    let got = String::from_utf8(got).unwrap();
    let (head, body) = got.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// A field's value in a header section from [`raw`].
fn field<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

/// RFC 9112 §3.2 and §3.2.2 on both paths: the own loop (plain bodiless HTTP/1.1) and hyper
/// (HTTP/1.0, a body, absolute form).
async fn host_rules(addr: std::net::SocketAddr) {
    for req in [
        "GET /healthz HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nhost: a\r\nhost: a\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nhost: a/b\r\n\r\n",
        "POST /healthz HTTP/1.1\r\ncontent-length: 2\r\n\r\nhi",
        "GET http://a/healthz HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.0\r\nhost: a\r\nhost: b\r\n\r\n",
        "GET /healthz HTTP/1.0\r\nhost: a b\r\n\r\n",
    ] {
        let (status, head, body) = raw(addr, req).await;
        assert_eq!(status, 400, "{req}");
        assert_eq!(field(&head, "connection"), Some("close"), "{req}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "invalid_request", "{req}");
    }
    // HTTP/1.0 may leave `Host` out.
    let (status, _, body) = raw(addr, "GET /healthz HTTP/1.0\r\n\r\n").await;
    assert_eq!(status, 200, "{body}");
    // Absolute form: the target's authority, not `Host`, goes to the tool.
    let req =
        "GET http://tool.example:81/healthz HTTP/1.1\r\nhost: other\r\nconnection: close\r\n\r\n";
    let (status, _, body) = raw(addr, req).await;
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["headers"]["host"], "tool.example:81");
    assert_eq!(body["headers"]["x-forwarded-host"], "tool.example:81");
}

/// The proxy's own answers to HEAD carry the fields GET gets, `Content-Length` included, and no
/// body (RFC 9110 §9.3.2), on both paths.
async fn head_answers(addr: std::net::SocketAddr) {
    for (path, accept) in [
        ("/.well-known/oauth-protected-resource", "*/*"),
        ("/api/x", "*/*"),
        ("/api/x", "text/html"),
    ] {
        let ask = |method: &str, version: &str| {
            format!(
                "{method} {path} HTTP/{version}\r\nhost: a\r\naccept: {accept}\r\nconnection: close\r\n\r\n"
            )
        };
        let (status, get_head, body) = raw(addr, &ask("GET", "1.1")).await;
        let length = body.len().to_string();
        assert_eq!(field(&get_head, "content-length"), Some(length.as_str()));
        for version in ["1.1", "1.0"] {
            let (head_status, head, body) = raw(addr, &ask("HEAD", version)).await;
            let shown = format!("HEAD {path} HTTP/{version}, {accept}");
            assert_eq!(head_status, status, "{shown}");
            assert_eq!(body, "", "{shown}");
            for name in [
                "content-length",
                "content-type",
                "www-authenticate",
                "location",
            ] {
                let expected = field(&get_head, name);
                // (Each redirect has its own state.)
                if name == "location" {
                    assert_eq!(field(&head, name).is_some(), expected.is_some(), "{shown}");
                } else {
                    assert_eq!(field(&head, name), expected, "{shown}: {name}");
                }
            }
        }
    }
}

#[tokio::test]
async fn proxy_end_to_end_in_process() {
    let issuer = issuer().await;
    let tool_port = tool().await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, content: &str| std::fs::write(dir.path().join(name), content).unwrap();
    write("client-id", "tool");
    write("issuer-url", &issuer.url);
    write(
        "cookie-secret",
        &base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
    );
    let policy = serde_json::json!({"resource": RESOURCE, "scopes": ["tool:read", "tool:write"],
        "access": {"delegatedClients": ["ns.agent"],
            "rules": [{"path": "/healthz", "public": true}, {"path": "/api", "scopes": ["tool:read"]},
            {"path": "/api", "methods": ["POST"], "scopes": ["tool:read", "tool:write"]}]}});
    write("policy.json", &policy.to_string());
    let cli = proxy::config::Cli::try_parse_from([
        "keyway-proxy",
        "--config-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--upstream-port",
        &tool_port.to_string(),
        "--config-poll-interval",
        "1",
        "--jwks-min-refresh",
        "0",
    ])
    .unwrap();
    let server = proxy::server::Server::bind(cli.settings().unwrap(), Instant::now())
        .await
        .unwrap();
    let server_addr = server.local_addr().unwrap();
    let base = format!("http://{server_addr}");
    let admin = format!("http://{}", server.admin_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();

    // Before the issuer answers: not ready, protected paths 503, public paths pass.
    assert_eq!(
        get(&client, "GET", &format!("{admin}/healthz"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        get(&client, "GET", &format!("{admin}/readyz"), None)
            .await
            .status,
        503
    );
    let r = get(&client, "GET", &format!("{base}/api/x"), None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["error"], "temporarily_unavailable");
    let r = get(&client, "GET", &format!("{base}/healthz"), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["path"], "/healthz");

    // The issuer comes up with one key: ready within the retry backoff.
    let k1 = key("k1");
    issuer.keys.lock().unwrap().push(k1.jwk.clone());
    issuer.up.store(true, Ordering::SeqCst);
    let start = Instant::now();
    while get(&client, "GET", &format!("{admin}/readyz"), None)
        .await
        .status
        != 200
    {
        assert!(start.elapsed() < Duration::from_secs(5), "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // RFC 9728 metadata, root and path-inserted; other suffixes are the tool's.
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let r = get(&client, "GET", &format!("{base}{path}"), None).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body["resource"], RESOURCE);
        assert_eq!(r.body["authorization_servers"][0], issuer.url.as_str());
    }
    assert_eq!(
        get(
            &client,
            "GET",
            &format!("{base}/.well-known/oauth-protected-resource/other"),
            None
        )
        .await
        .status,
        401
    );

    host_rules(server_addr).await;
    head_answers(server_addr).await;

    // No credentials: 401 with the challenge pointing at the path-inserted metadata.
    let r = get(&client, "GET", &format!("{base}/api/x"), None).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.headers["www-authenticate"],
        "Bearer resource_metadata=\"https://tool.example.com/.well-known/oauth-protected-resource/mcp\", scope=\"tool:read\""
    );

    // A good token passes with identity headers; a missing scope is 403.
    let read = token(&k1, &issuer.url, "tool:read");
    let r = get(&client, "GET", &format!("{base}/api/x?y=1"), Some(&read)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["path"], "/api/x?y=1");
    assert_eq!(r.body["headers"]["x-forwarded-user"], "agent-7");
    assert_eq!(r.body["headers"]["x-forwarded-email"], "agent@example.com");
    let r = get(&client, "POST", &format!("{base}/api/x"), Some(&read)).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"], "insufficient_scope");

    // A client's own token (sub = client_id) needs the client in allowedClients.
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("k1".into());
    h.typ = Some("at+jwt".into());
    let machine = serde_json::json!({"iss": issuer.url, "aud": RESOURCE, "sub": "ns.job", "client_id": "ns.job",
        "exp": proxy::now() + 300, "scope": "tool:read"});
    let machine = jsonwebtoken::encode(&h, &machine, &EncodingKey::from_ec_der(&k1.pkcs8)).unwrap();
    let r = get(&client, "GET", &format!("{base}/api/x"), Some(&machine)).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"], "access_denied");

    // Key rotation: a token signed by a key published later is accepted after a refetch.
    let k2 = key("k2");
    issuer.keys.lock().unwrap().push(k2.jwk.clone());
    let r = get(
        &client,
        "GET",
        &format!("{base}/api/x"),
        Some(&token(&k2, &issuer.url, "tool:read")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let metrics = get(&client, "GET", &format!("{admin}/metrics"), None)
        .await
        .text;
    assert!(
        metrics.contains("keyway_proxy_requests_total{outcome=\"allowed\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keyway_proxy_requests_total{outcome=\"insufficient_scope\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("keyway_proxy_ready 1"), "{metrics}");
    assert!(!metrics.contains(&read), "no token in metrics");

    // A person's token passes only when issued to a client the app admits (`client_id`, else
    // `azp`): the app itself or a delegated client; any other, none, or two that disagree get
    // 401 invalid_token with the challenge, whatever the token's audience and scopes.
    let person = |client: serde_json::Value| {
        let mut c = serde_json::json!({"iss": issuer.url, "aud": RESOURCE, "sub": "alice",
            "exp": proxy::now() + 300, "scope": "tool:read tool:write"});
        for (k, v) in client.as_object().unwrap() {
            c[k] = v.clone();
        }
        jsonwebtoken::encode(&h, &c, &EncodingKey::from_ec_der(&k1.pkcs8)).unwrap()
    };
    for (issued_to, status) in [
        (serde_json::json!({"client_id": "tool"}), 200),
        (serde_json::json!({"client_id": "ns.agent"}), 200),
        (serde_json::json!({"azp": "ns.agent"}), 200),
        (serde_json::json!({"client_id": "ns.other"}), 401),
        (serde_json::json!({"client_id": "NS.AGENT"}), 401),
        (serde_json::json!({"client_id": "dcr.abc"}), 401),
        (serde_json::json!({}), 401),
        (
            serde_json::json!({"client_id": "ns.agent", "azp": "ns.other"}),
            401,
        ),
    ] {
        let token = person(issued_to.clone());
        let r = get(&client, "POST", &format!("{base}/api/x"), Some(&token)).await;
        assert_eq!(r.status, status, "{issued_to}: {}", r.text);
        if status == 401 {
            assert_eq!(r.body["error"], "invalid_token", "{issued_to}");
            let challenge = r.headers["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Bearer resource_metadata=\"https://tool.example.com/.well-known/oauth-protected-resource/mcp\""), "{challenge}");
            assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        }
    }
    // Registered clients pass once the app takes them (`dynamicClients: withConsent`).
    let mut dynamic = policy.clone();
    dynamic["access"]["dynamicClients"] = "withConsent".into();
    write("policy.json", &dynamic.to_string());
    let registered = person(serde_json::json!({"client_id": "dcr.abc"}));
    let start = Instant::now();
    while get(&client, "GET", &format!("{base}/api/x"), Some(&registered))
        .await
        .status
        != 200
    {
        assert!(start.elapsed() < Duration::from_secs(5), "reload not seen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = get(
        &client,
        "GET",
        &format!("{base}/api/x"),
        Some(&person(serde_json::json!({"client_id": "ns.other"}))),
    )
    .await;
    assert_eq!(r.status, 401);

    // A repeated token on one connection is answered by the connection's memo, but only under
    // the configuration that accepted it: after a reload to another resource the same token on
    // the same (pooled) connection is refused.
    for _ in 0..3 {
        let r = get(&client, "GET", &format!("{base}/api/x"), Some(&read)).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let mut moved = policy.clone();
    moved["resource"] = "https://other.example.com/mcp".into();
    write("policy.json", &moved.to_string());
    let start = Instant::now();
    loop {
        let r = get(&client, "GET", &format!("{base}/api/x"), Some(&read)).await;
        if r.status == 401 {
            assert_eq!(r.body["error"], "invalid_token");
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(start.elapsed() < Duration::from_secs(5), "reload not seen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A policy change is picked up without a restart.
    let mut open = policy.clone();
    open["access"]["rules"][1]["public"] = true.into();
    open["access"]["rules"][1]["scopes"] = serde_json::json!([]);
    write("policy.json", &open.to_string());
    let start = Instant::now();
    while get(&client, "GET", &format!("{base}/api/x"), None)
        .await
        .status
        != 200
    {
        assert!(start.elapsed() < Duration::from_secs(5), "reload not seen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

/// What the tool of [`edge_tool`] received: each request head's method, target and fields.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    fields: Vec<(String, String)>,
}

/// A tool that honours any `Upgrade` as hypercorn honours `h2c`: it answers 101 naming the
/// protocol asked for (`h2c` when the target has `/mismatch`) and keeps reading requests on the
/// switched connection, as an HTTP/2 tunnel would carry them. Other requests get 200 `seen`.
async fn edge_tool() -> (u16, Arc<Mutex<Vec<Seen>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut fields = [httparse::EMPTY_HEADER; 64];
                    let mut req = httparse::Request::new(&mut fields);
                    let Ok(httparse::Status::Complete(len)) = req.parse(&buf) else {
                        let mut chunk = [0u8; 4096];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let s = Seen {
                        method: req.method.unwrap_or("").to_string(),
                        target: req.path.unwrap_or("").to_string(),
                        fields: req
                            .headers
                            .iter()
                            .map(|f| {
                                let v = String::from_utf8_lossy(f.value).to_string();
                                (f.name.to_ascii_lowercase(), v)
                            })
                            .collect(),
                    };
                    let field = |n: &str| s.fields.iter().find(|(k, _)| k == n).map(|(_, v)| v);
                    let body: usize = field("content-length").map_or(0, |v| v.parse().unwrap());
                    while buf.len() < len + body {
                        let mut chunk = [0u8; 4096];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..len + body);
                    let answer = match field("upgrade") {
                        Some(p) => {
                            let p = if s.target.contains("/mismatch") {
                                "h2c"
                            } else {
                                p
                            };
                            format!(
                                "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: {p}\r\n\r\n"
                            )
                        }
                        None => "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nseen".to_string(),
                    };
                    log.lock().unwrap().push(s);
                    if conn.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

/// Sends `requests` one after the other on one connection and returns each status (a status
/// line read from the stream, whatever carried it).
async fn on_one_connection(addr: std::net::SocketAddr, requests: &[&str]) -> Vec<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut statuses = Vec::new();
    for req in requests {
        if conn.write_all(req.as_bytes()).await.is_err() {
            break;
        }
        let mut got = Vec::new();
        let status = loop {
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk))
                .await
                .expect("an answer")
                .unwrap_or(0);
            if n == 0 {
                break None;
            }
            got.extend_from_slice(&chunk[..n]);
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut fields);
            if let Ok(httparse::Status::Complete(len)) = resp.parse(&got) {
                let code = resp.code.unwrap();
                let length = resp
                    .headers
                    .iter()
                    .find(|f| f.name.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |f| {
                        std::str::from_utf8(f.value).unwrap().parse().unwrap()
                    });
                if code == 101 || got.len() >= len + length {
                    break Some(code);
                }
            }
        };
        let Some(status) = status else { break };
        statuses.push(status);
    }
    statuses
}

/// Issue 13, items 7–10, in front of a tool that reads requests as tools do: however a request
/// is spelled and whichever of the proxy's parsers reads it (its own HTTP/1.1 loop for bodiless
/// requests, hyper's HTTP/1.1 for bodies and upgrades, HTTP/2), it gets the protection of the
/// rule it means, and no tunnel opens past the proxy.
#[tokio::test]
async fn requests_get_the_rule_the_tool_will_apply() {
    let issuer = issuer().await;
    let k1 = key("k1");
    issuer.keys.lock().unwrap().push(k1.jwk.clone());
    issuer.up.store(true, Ordering::SeqCst);
    let (tool_port, seen) = edge_tool().await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, content: &str| std::fs::write(dir.path().join(name), content).unwrap();
    write("client-id", "tool");
    write("issuer-url", &issuer.url);
    write(
        "cookie-secret",
        &base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
    );
    // An open tool with a protected area, writes and reports.
    let policy = serde_json::json!({"resource": RESOURCE, "access": {"rules": [
        {"path": "/", "public": true},
        {"path": "/admin", "groups": ["admins"]},
        {"path": "/api", "methods": ["POST"], "scopes": ["tool:write"]},
        {"path": "/reports", "methods": ["GET"], "groups": ["admins"]}]}});
    write("policy.json", &policy.to_string());
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
    ])
    .unwrap();
    let server = proxy::server::Server::bind(cli.settings().unwrap(), Instant::now())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let base = format!("http://{addr}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let h1: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let h2: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let start = Instant::now();
    while get(&h1, "GET", &format!("{base}/admin"), None).await.status != 401 {
        assert!(start.elapsed() < Duration::from_secs(5), "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reached = |target: &str| seen.lock().unwrap().iter().any(|s| s.target == target);

    // Item 7: `Upgrade: h2c` on a public path is an ordinary request; the next request on the
    // connection is the proxy's to decide, not the tool's through a tunnel.
    let h2c = "GET /open HTTP/1.1\r\nhost: a\r\nconnection: Upgrade, HTTP2-Settings\r\n\
        upgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n";
    let statuses = on_one_connection(addr, &[h2c, "GET /admin HTTP/1.1\r\nhost: a\r\n\r\n"]).await;
    assert_eq!(statuses, [200, 401], "no tunnel past the proxy");
    assert!(!reached("/admin"), "{:?}", seen.lock().unwrap());
    {
        let seen = seen.lock().unwrap();
        let open = seen.iter().find(|s| s.target == "/open").unwrap();
        for name in ["upgrade", "http2-settings"] {
            assert!(open.fields.iter().all(|(n, _)| n != name), "{open:?}");
        }
        assert!(
            open.fields.iter().all(|(_, v)| !v.contains("pgrade")),
            "{open:?}"
        );
    }
    // A websocket upgrade is spliced when the tool switches to websocket, and only then.
    let ws = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
             sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
    };
    assert_eq!(on_one_connection(addr, &[&ws("/ws")]).await, [101]);
    assert_eq!(on_one_connection(addr, &[&ws("/ws/mismatch")]).await, [502]);
    // Several protocols offered: only websocket goes to the tool.
    let offered = ws("/ws/offered").replace("upgrade: websocket", "upgrade: h2c, websocket");
    assert_eq!(on_one_connection(addr, &[&offered]).await, [101]);
    {
        let seen = seen.lock().unwrap();
        let s = seen.iter().find(|s| s.target == "/ws/offered").unwrap();
        let upgrade: Vec<_> = s.fields.iter().filter(|(n, _)| n == "upgrade").collect();
        assert_eq!(upgrade, [&("upgrade".to_string(), "websocket".to_string())]);
    }

    // CONNECT opens no tunnel either (its authority-form target is no path).
    let connect = "CONNECT tool.example:443 HTTP/1.1\r\nhost: tool.example:443\r\n\r\n";
    assert_eq!(on_one_connection(addr, &[connect]).await, [400]);
    assert!(seen.lock().unwrap().iter().all(|s| s.method != "CONNECT"));

    // Item 8: a lower-case method is refused before any rule (Flask would run the POST view of
    // `post`, which the public rule would let through unauthenticated); a GET rule covers HEAD.
    for (req, path) in [
        ("post /api/x HTTP/1.1\r\nhost: a\r\n\r\n", "fast path"),
        (
            "post /api/x HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\nhi",
            "hyper",
        ),
        (
            "Post /api/x HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\nhi",
            "hyper",
        ),
    ] {
        assert_eq!(
            on_one_connection(addr, &[req]).await,
            [400],
            "{path}: {req}"
        );
    }
    let r = get(&h2, "post", &format!("{base}/api/x"), None).await;
    assert_eq!(r.status, 400, "HTTP/2");
    assert_eq!(r.body["error"], "invalid_request");
    // The proxy's own answer to HEAD over HTTP/2 has no body (a DATA frame would reset it).
    let r = get(&h2, "HEAD", &format!("{base}/admin"), None).await;
    assert_eq!((r.status, r.text.as_str()), (401, ""));
    for client in [&h1, &h2] {
        assert_eq!(
            get(client, "POST", &format!("{base}/api/x"), None)
                .await
                .status,
            401
        );
        assert_eq!(
            get(client, "HEAD", &format!("{base}/reports/q1"), None)
                .await
                .status,
            401
        );
        assert_eq!(
            get(client, "PUT", &format!("{base}/reports/q1"), None)
                .await
                .status,
            200
        );
    }
    let head_reports = seen
        .lock()
        .unwrap()
        .iter()
        .any(|s| s.method == "HEAD" && s.target == "/reports/q1");
    assert!(
        !reached("/api/x") && !head_reports,
        "{:?}",
        seen.lock().unwrap()
    );

    // Item 9: field names that servers read as other names never reach the tool.
    let spoofs = [
        ("X_Forwarded_User", "admin"),
        ("x-forwarded_email", "admin@example.com"),
        ("x_auth_request_groups", "admins"),
    ];
    let mut spoofed = String::new();
    for (n, v) in spoofs {
        spoofed.push_str(&format!("{n}: {v}\r\n"));
    }
    let fast = format!("GET /spoof/fast HTTP/1.1\r\nhost: a\r\n{spoofed}\r\n");
    let slow =
        format!("POST /spoof/hyper HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n{spoofed}\r\nhi");
    assert_eq!(on_one_connection(addr, &[&fast, &slow]).await, [200, 200]);
    let mut b = http::Request::builder().uri(format!("{base}/spoof/h2"));
    for (n, v) in spoofs {
        b = b.header(n.to_ascii_lowercase(), v);
    }
    let resp = h2
        .request(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    for target in ["/spoof/fast", "/spoof/hyper", "/spoof/h2"] {
        let seen = seen.lock().unwrap();
        let s = seen.iter().find(|s| s.target == target).expect(target);
        assert!(s.fields.iter().all(|(n, _)| !n.contains('_')), "{s:?}");
    }

    // Item 10: case and encoding variants of a restricted path get its protection; a variant
    // of a public path is not public; an escape of an escape is refused.
    for path in ["/ADMIN", "/Admin/x", "/%41dmin", "/aDmIn;x", "/adm%C4%B1n"] {
        assert_eq!(
            on_one_connection(addr, &[&format!("GET {path} HTTP/1.1\r\nhost: a\r\n\r\n")]).await,
            [401],
            "{path}"
        );
        assert_eq!(
            get(&h2, "GET", &format!("{base}{path}"), None).await.status,
            401,
            "HTTP/2 {path}"
        );
    }
    assert_eq!(
        get(&h1, "GET", &format!("{base}/%2541dmin"), None)
            .await
            .status,
        400
    );
    let seen_now = seen.lock().unwrap().clone();
    assert!(
        seen_now
            .iter()
            .all(|s| !s.target.to_ascii_lowercase().contains("dm")),
        "{seen_now:?}"
    );
    // Positive control: an admin gets in, in any case.
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("k1".into());
    h.typ = Some("at+jwt".into());
    let admin = serde_json::json!({"iss": issuer.url, "aud": RESOURCE, "sub": "root",
        "client_id": "tool", "exp": proxy::now() + 300, "groups": ["admins"]});
    let admin = jsonwebtoken::encode(&h, &admin, &EncodingKey::from_ec_der(&k1.pkcs8)).unwrap();
    let r = get(&h1, "GET", &format!("{base}/ADMIN"), Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(reached("/ADMIN"));

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

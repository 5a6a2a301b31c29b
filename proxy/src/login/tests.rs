//! Tests of the sign-in flow's bounds and the sign-out.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Parser as _;

use http::{Response, StatusCode};

use std::collections::HashMap;

use super::callback::signout_cookie;
use super::start::return_path;
use super::*;
use crate::app::App;
use crate::clock::now;
use crate::pipeline::respond::redirect as respond;
use crate::session::read_cookies;
use crate::session::{CHUNK, LoginState, Purpose, Session, SignOutHint};
use crate::state::Shared;
use crate::wire::Body;
use http::header;
use oidc::Provider;
use oidc::jwt::Principal;

/// A proxy for `https://tool.example.com` (Secure cookies) and its app.
fn shared(dir: &std::path::Path) -> Shared {
    let key = STANDARD.encode([5u8; 32]);
    for (name, content) in [
        ("client-id", "tool"),
        ("issuer-url", "https://id.example.com"),
        ("cookie-secret", key.as_str()),
    ] {
        std::fs::write(dir.join(name), content).unwrap();
    }
    let settings = crate::config::Cli::try_parse_from([
        "keyway-proxy",
        "--upstream-port",
        "9",
        "--config-dir",
        dir.to_str().unwrap(),
        "--external-url",
        "https://tool.example.com",
    ])
    .unwrap()
    .settings()
    .unwrap();
    let app = App::new(crate::config::load_app(&settings).unwrap(), &settings).unwrap();
    Shared::new(settings, app).unwrap()
}

fn provider() -> Provider {
    let iss = "https://id.example.com";
    Provider::new(
        serde_json::from_value(serde_json::json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/auth"),
            "token_endpoint": format!("{iss}/token"),
            "jwks_uri": format!("{iss}/jwks"),
            "end_session_endpoint": format!("{iss}/end_session"),
        }))
        .unwrap(),
        oidc::KeySet::default(),
    )
}

/// Applies a response's `Set-Cookie` values to a browser's jar, as a browser does.
fn apply(jar: &mut Vec<(String, String)>, resp: &Response<Body>) {
    for v in resp.headers().get_all(header::SET_COOKIE) {
        let (pair, attrs) = v.to_str().unwrap().split_once(';').unwrap();
        let (name, value) = pair.split_once('=').unwrap();
        jar.retain(|(n, _)| n != name);
        if !attrs.split(';').any(|a| a.trim() == "Max-Age=0") {
            jar.push((name.to_string(), value.to_string()));
        }
    }
}

#[test]
fn sign_in_state_cookies_stay_bounded_in_number_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let shared = shared(dir.path());
    let app = shared.app();
    let provider = provider();
    // Return paths at the cap, of a character JSON doubles: the largest login cookies.
    let rd = |i: usize| {
        let head = format!("/page-{i}?q=");
        format!("{head}{}", "\"".repeat(MAX_RETURN_PATH - head.len()))
    };
    let mut jar: Vec<(String, String)> = Vec::new();
    for i in 0..20 {
        let resp = respond(start_login(&app, &provider, None, &rd(i), &jar).unwrap());
        assert_eq!(resp.status(), StatusCode::FOUND);
        apply(&mut jar, &resp);
        assert!(
            jar.len() <= MAX_PENDING_LOGINS,
            "{} login cookies",
            jar.len()
        );
        for (name, value) in &jar {
            // RFC 6265 section 6.1: browsers keep cookies of up to 4096 bytes (name, value
            // and attributes); larger ones are dropped.
            let size = name.len()
                + value.len()
                + "; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=600".len();
            assert!(size <= 4096, "a login cookie of {size} bytes");
        }
    }
    // The newest sign-ins are the ones kept, with their whole return paths.
    let mut kept: Vec<String> = jar
        .iter()
        .map(|(_, v)| {
            app.open::<LoginState>(Purpose::Login, v, now())
                .unwrap()
                .0
                .to
        })
        .collect();
    kept.sort();
    let mut newest: Vec<String> = (16..20).map(rd).collect();
    newest.sort();
    assert_eq!(kept, newest);
    // Cookies that do not open or have expired are deleted too.
    jar.push((
        "__Host-_keyway_proxy_login_AAAAAAAAAAAA".into(),
        "junk".into(),
    ));
    let resp = respond(start_login(&app, &provider, None, "/", &jar).unwrap());
    apply(&mut jar, &resp);
    assert!(!jar.iter().any(|(_, v)| v == "junk"));
    assert_eq!(jar.len(), MAX_PENDING_LOGINS);
}

#[test]
fn an_over_long_return_path_keeps_its_path_or_becomes_the_root() {
    assert_eq!(return_path("/a/b?c=d"), "/a/b?c=d");
    let at_cap = format!("/{}", "x".repeat(MAX_RETURN_PATH - 1));
    assert_eq!(return_path(&at_cap), at_cap);
    let long_query = format!("/reports/42?q={}", "x".repeat(MAX_RETURN_PATH));
    assert_eq!(return_path(&long_query), "/reports/42");
    let long_path = format!("/{}", "x".repeat(MAX_RETURN_PATH));
    assert_eq!(return_path(&long_path), "/");
    for open_redirect in [
        "//evil.example/x".to_string(),
        format!("//evil.example/?{}", "x".repeat(2 * MAX_RETURN_PATH)),
        format!("/\\evil.example/?{}", "x".repeat(2 * MAX_RETURN_PATH)),
        format!("https://evil.example/?{}", "x".repeat(2 * MAX_RETURN_PATH)),
    ] {
        assert_eq!(return_path(&open_redirect), "/", "{open_redirect}");
    }
}

fn cookie_header(pairs: &[(&str, &str)]) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    let line: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
    headers.insert(header::COOKIE, line.join("; ").parse().unwrap());
    headers
}

#[tokio::test]
async fn sign_out_sends_the_id_token_of_its_own_session_only() {
    let dir = tempfile::tempdir().unwrap();
    let shared = shared(dir.path());
    let app = shared.app();
    let provider = provider();
    let t = now();
    let session = |sid: &str| {
        let s = Session {
            sid: sid.into(),
            who: Principal {
                sub: "alice".into(),
                ..Default::default()
            },
            at: None,
            rt: None,
            exp: t + 300,
            end: t + 3600,
        };
        app.sealer.seal(Purpose::Session, &s).unwrap()
    };
    let hint = |purpose, sid: &str| {
        let h = SignOutHint {
            sid: sid.into(),
            id_token: "eyJh.eyJz.c2ln".into(),
        };
        app.sealer.seal(purpose, &h).unwrap()
    };
    let sign_out_with = |pairs: Vec<(&str, String)>| {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let headers = cookie_header(&pairs);
        let shared = &shared;
        let app = &app;
        let provider = &provider;
        async move {
            let cookies = read_cookies(&headers, &app.names);
            let resp = respond(sign_out(shared.login(), app, Some(provider), None, &cookies).await);
            assert_eq!(resp.status(), StatusCode::FOUND);
            let to = url::Url::parse(resp.headers()[header::LOCATION].to_str().unwrap()).unwrap();
            let q: HashMap<String, String> = to.query_pairs().into_owned().collect();
            assert_eq!(q.get("client_id").map(String::as_str), Some("tool"));
            let set: Vec<String> = resp
                .headers()
                .get_all(header::SET_COOKIE)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect();
            (q.get("id_token_hint").cloned(), set)
        }
    };
    let (name_s, name_h) = ("__Host-_keyway_proxy", "__Secure-_keyway_proxy_signout");

    let (sent, set) = sign_out_with(vec![
        (name_s, session("sid-1")),
        (name_h, hint(Purpose::SignOut, "sid-1")),
    ])
    .await;
    assert_eq!(sent.as_deref(), Some("eyJh.eyJz.c2ln"));
    assert!(
        set.iter().any(
            |c| c.starts_with(&format!("{name_h}=; Path=/oauth2/sign_out;"))
                && c.contains("Max-Age=0")
        ),
        "{set:?}"
    );
    // Another session's hint, no session, a hint sealed for another purpose: no hint.
    for pairs in [
        vec![
            (name_s, session("sid-2")),
            (name_h, hint(Purpose::SignOut, "sid-1")),
        ],
        vec![(name_h, hint(Purpose::SignOut, "sid-1"))],
        vec![
            (name_s, session("sid-1")),
            (name_h, hint(Purpose::Login, "sid-1")),
        ],
    ] {
        assert_eq!(sign_out_with(pairs).await.0, None);
    }
}

#[test]
fn the_sign_out_cookie_is_scoped_to_the_sign_out_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let shared = shared(dir.path());
    let app = shared.app();
    let id_token = format!("eyJh.{}.c2ln", "x".repeat(1000));
    let c = signout_cookie(&shared.settings, &app, "sid-1", &id_token, 3600);
    let (pair, attrs) = c.split_once(';').unwrap();
    let (name, value) = pair.split_once('=').unwrap();
    assert_eq!(name, "__Secure-_keyway_proxy_signout");
    assert_eq!(
        attrs,
        " Path=/oauth2/sign_out; HttpOnly; SameSite=Lax; Secure; Max-Age=3600"
    );
    let (h, _) = app
        .open::<SignOutHint>(Purpose::SignOut, value, now())
        .unwrap();
    assert_eq!(
        (h.sid.as_str(), h.id_token.as_str()),
        ("sid-1", id_token.as_str())
    );
    // Too large for one cookie: an older one is deleted instead.
    let huge = format!("eyJh.{}.c2ln", "x".repeat(CHUNK));
    let c = signout_cookie(&shared.settings, &app, "sid-1", &huge, 3600);
    assert!(c.starts_with("__Secure-_keyway_proxy_signout=; Path=/oauth2/sign_out;"));
    assert!(c.ends_with("Max-Age=0"));
}

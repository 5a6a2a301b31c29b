//! A person and a client never share an identifier: a client's own tokens carry its ID as `sub`
//! (RFC 9068 §2.2), so a person whose subject is a client ID would look like that client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http::StatusCode;

const CAROL: &str =
    "- {email: carol@example.com, passwordHash: '{hash}', groups: [engineering], sub: ops}\n";

const OPS_APP: &str = "apiVersion: keyway.dev/v1alpha1\nkind: ConnectedApp\nmetadata: {name: ops}\n\
    spec: {displayName: Ops job, clientID: ops, grantTypes: [client_credentials], scopes: [\"tool:read\"]}\n";

#[tokio::test]
async fn a_static_subject_equal_to_a_client_id_is_refused_at_start() {
    let dan = "- {email: dan@example.com, passwordHash: '{hash}', sub: default.web}\n";
    let problems = harness_with_users(dan).await.err().unwrap();
    assert!(
        problems[0].contains("\"default.web\" is also a ConnectedApp's client ID"),
        "{problems:?}"
    );
    let eve = "- {email: eve@example.com, passwordHash: '{hash}', sub: dcr.abc}\n";
    let problems = harness_with_users(eve).await.err().unwrap();
    assert!(
        problems[0].contains("\"dcr.abc\" starts with"),
        "{problems:?}"
    );
}

async fn carol_code(h: &Harness) -> String {
    let mut b = Browser::default();
    let res = sign_in(
        &mut b,
        &h.app,
        &authorize_path("default.web", "https://web.example/cb", &[]),
        "carol@example.com",
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    res.loc_params()["code"].clone()
}

async fn ops_token(h: &Harness) -> Res {
    post(
        &h.app,
        "/token",
        "grant_type=client_credentials",
        Some(&basic("ops", "ops-secret")),
    )
    .await
}

#[tokio::test]
async fn neither_side_gets_a_token_while_a_new_client_id_equals_a_subject() {
    let h = harness_with_users(CAROL).await.unwrap();
    let code = carol_code(&h).await;
    // A ConnectedApp pinning carol's subject as its client ID appears while the issuer runs.
    let clients = h.dir.path().join("clients");
    std::fs::write(clients.join("ops.yaml"), OPS_APP).unwrap();
    std::fs::write(clients.join("ops.secret"), "ops-secret").unwrap();
    assert_eq!(h.issuer.clients().reload(), Ok(true));
    let res = redeem_web(&h.app, &code).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
    assert_eq!(res.error(), "invalid_grant");
    let res = ops_token(&h).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
    assert_eq!(res.error(), "unauthorized_client");
    // Gone again: carol's tokens are issued as before.
    std::fs::remove_file(clients.join("ops.yaml")).unwrap();
    assert_eq!(h.issuer.clients().reload(), Ok(true));
    let res = redeem_web(&h.app, &carol_code(&h).await).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let (_, at) = jwt_parts(res.json()["access_token"].as_str().unwrap());
    assert_eq!(at["sub"], "ops");
}

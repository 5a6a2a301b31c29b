//! A store that is down gives 503 (`temporarily_unavailable`) on every endpoint that needs it,
//! never a 500, and loses nothing: once it is back, the same requests succeed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use common::*;
use http::StatusCode;
use issuer::store::*;

struct Flaky {
    inner: Arc<dyn Store>,
    down: Arc<AtomicBool>,
}

impl Flaky {
    fn check(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Store for Flaky {
    async fn ping(&self) -> Result<()> {
        self.check()?;
        self.inner.ping().await
    }
    async fn put_code(&self, h: &SecretHash, c: &AuthCode) -> Result<()> {
        self.check()?;
        self.inner.put_code(h, c).await
    }
    async fn peek_code(&self, h: &SecretHash, now: i64) -> Result<Option<AuthCode>> {
        self.check()?;
        self.inner.peek_code(h, now).await
    }
    async fn take_code(&self, h: &SecretHash, now: i64) -> Result<TakenCode> {
        self.check()?;
        self.inner.take_code(h, now).await
    }
    async fn mark_code_issued(&self, h: &SecretHash, i: &CodeIssued) -> Result<bool> {
        self.check()?;
        self.inner.mark_code_issued(h, i).await
    }
    async fn create_refresh_family(&self, f: &RefreshFamily, t: &SecretHash) -> Result<()> {
        self.check()?;
        self.inner.create_refresh_family(f, t).await
    }
    async fn get_refresh(&self, h: &SecretHash) -> Result<Option<RefreshLookup>> {
        self.check()?;
        self.inner.get_refresh(h).await
    }
    async fn get_refresh_family(&self, id: &str) -> Result<Option<RefreshFamily>> {
        self.check()?;
        self.inner.get_refresh_family(id).await
    }
    async fn rotate_refresh(
        &self,
        old: &SecretHash,
        new: &Successor,
        now: i64,
        p: RotationPolicy,
    ) -> Result<Rotation> {
        self.check()?;
        self.inner.rotate_refresh(old, new, now, p).await
    }
    async fn revoke_refresh_family(&self, id: &str) -> Result<bool> {
        self.check()?;
        self.inner.revoke_refresh_family(id).await
    }
    async fn revoke_refresh_for(&self, s: &str, c: &str) -> Result<u64> {
        self.check()?;
        self.inner.revoke_refresh_for(s, c).await
    }
    async fn revoke_access(&self, j: &str, e: i64) -> Result<()> {
        self.check()?;
        self.inner.revoke_access(j, e).await
    }
    async fn is_access_revoked(&self, j: &str) -> Result<bool> {
        self.check()?;
        self.inner.is_access_revoked(j).await
    }
    async fn put_consent(&self, c: &Consent) -> Result<()> {
        self.check()?;
        self.inner.put_consent(c).await
    }
    async fn get_consent(&self, s: &str, c: &str, r: Option<&str>) -> Result<Option<Consent>> {
        self.check()?;
        self.inner.get_consent(s, c, r).await
    }
    async fn list_consents(&self, s: &str) -> Result<Vec<Consent>> {
        self.check()?;
        self.inner.list_consents(s).await
    }
    async fn delete_consent(&self, s: &str, c: &str) -> Result<bool> {
        self.check()?;
        self.inner.delete_consent(s, c).await
    }
    async fn put_session(&self, h: &SecretHash, s: &Session) -> Result<()> {
        self.check()?;
        self.inner.put_session(h, s).await
    }
    async fn get_session(&self, h: &SecretHash, now: i64) -> Result<Option<Session>> {
        self.check()?;
        self.inner.get_session(h, now).await
    }
    async fn touch_session(&self, h: &SecretHash, now: i64, e: i64) -> Result<bool> {
        self.check()?;
        self.inner.touch_session(h, now, e).await
    }
    async fn delete_session(&self, h: &SecretHash) -> Result<Option<Session>> {
        self.check()?;
        self.inner.delete_session(h).await
    }
    async fn put_client(&self, c: &RegisteredClient) -> Result<()> {
        self.check()?;
        self.inner.put_client(c).await
    }
    async fn get_client(&self, id: &str) -> Result<Option<RegisteredClient>> {
        self.check()?;
        self.inner.get_client(id).await
    }
    async fn list_clients(&self) -> Result<Vec<RegisteredClient>> {
        self.check()?;
        self.inner.list_clients().await
    }
    async fn delete_client(&self, id: &str) -> Result<bool> {
        self.check()?;
        self.inner.delete_client(id).await
    }
    async fn touch_client(&self, id: &str, now: i64) -> Result<()> {
        self.check()?;
        self.inner.touch_client(id, now).await
    }
    async fn has_client_origin(&self, o: &str, since: i64) -> Result<bool> {
        self.check()?;
        self.inner.has_client_origin(o, since).await
    }
    async fn expire_clients(&self, since: i64) -> Result<u64> {
        self.check()?;
        self.inner.expire_clients(since).await
    }
    async fn count_event(&self, k: &SecretHash, now: i64, end: i64) -> Result<u64> {
        self.check()?;
        self.inner.count_event(k, now, end).await
    }
    async fn reset_counter(&self, k: &SecretHash) -> Result<()> {
        self.check()?;
        self.inner.reset_counter(k).await
    }
    async fn uncount_event(&self, k: &SecretHash) -> Result<()> {
        self.check()?;
        self.inner.uncount_event(k).await
    }
    async fn remember_device(&self, k: &SecretHash, until: i64) -> Result<()> {
        self.check()?;
        self.inner.remember_device(k, until).await
    }
    async fn is_known_device(&self, k: &SecretHash, now: i64) -> Result<bool> {
        self.check()?;
        self.inner.is_known_device(k, now).await
    }
    async fn cleanup_expired(&self, now: i64) -> Result<Cleanup> {
        self.check()?;
        self.inner.cleanup_expired(now).await
    }
}

#[tokio::test]
async fn store_down_gives_503_and_loses_nothing() {
    let down = Arc::new(AtomicBool::new(false));
    let d2 = down.clone();
    let h = harness_wrapped(&[], move |inner| Arc::new(Flaky { inner, down: d2 })).await;
    let mut b = Browser::default();
    let code = web_code(&mut b, &h.app).await;
    // A sign-in form, fetched while the store is up.
    let mut other = Browser::default();
    let page = other
        .get(
            &h.app,
            &authorize_path("default.web", "https://web.example/cb", &[]),
        )
        .await;
    let sign_in = form(&[
        ("csrf", &hidden(&page.body, "csrf")),
        ("request", &hidden(&page.body, "request")),
        ("email", "alice@example.com"),
        ("password", PASSWORD),
    ]);

    down.store(true, Ordering::SeqCst);
    let res = redeem_web(&h.app, &code).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.error(), "temporarily_unavailable");
    assert_eq!(
        get(&h.app, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let res = b
        .get(
            &h.app,
            &authorize_path("default.web", "https://web.example/cb", &[]),
        )
        .await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        b.get(&h.app, "/account").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // The sign-in throttle and the registration limit live in the store: no store, no
    // password check and no registration (rather than an unlimited budget).
    let res = other.post(&h.app, "/login", &sign_in).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    let dcr_body = r#"{"redirect_uris":["http://127.0.0.1/cb"]}"#;
    let res = post_json(&h.app, "/register", dcr_body).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.error(), "temporarily_unavailable");
    // Discovery and client_credentials need no store.
    assert_eq!(get(&h.app, "/jwks").await.status, StatusCode::OK);
    let cc = post(
        &h.app,
        "/token",
        "grant_type=client_credentials",
        Some(&basic("default.svc", "svc-secret")),
    )
    .await;
    assert_eq!(cc.status, StatusCode::OK);

    // Back up: the code issued before the outage still works, exactly once.
    down.store(false, Ordering::SeqCst);
    assert_eq!(get(&h.app, "/readyz").await.status, StatusCode::OK);
    let res = redeem_web(&h.app, &code).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(redeem_web(&h.app, &code).await.error(), "invalid_grant");
    let res = other.post(&h.app, "/login", &sign_in).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let res = post_json(&h.app, "/register", dcr_body).await;
    assert_eq!(res.status, StatusCode::CREATED);
}

//! The store conformance suite: every [`Store`] implementation runs these cases
//! (`store_sqlite.rs`, `store_postgres.rs`) through [`conformance_suite!`].
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use issuer::store::{
    AuthCode, Claims, CodeIssued, Consent, RefreshFamily, RegisteredClient, Rotation,
    RotationPolicy, SecretHash, Session, Store, StoreError, Successor, TakenCode,
    USED_CODE_RETENTION_SECS,
};

pub type BoxFut = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A fresh, empty store plus how to close it (simulating an outage) and tear it down.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    pub close: Box<dyn Fn() -> BoxFut + Send + Sync>,
    pub teardown: Option<BoxFut>,
}

impl Fixture {
    pub async fn finish(mut self) {
        if let Some(t) = self.teardown.take() {
            t.await;
        }
    }
}

/// Expands to one `#[tokio::test]` per conformance case, each on a fresh store from `$setup`.
#[macro_export]
macro_rules! conformance_suite {
    ($setup:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fx = $setup().await;
                store_conformance::$case(&fx).await;
                fx.finish().await;
            }
        )*
    };
    ($setup:path) => {
        conformance_suite!($setup;
            ping_works,
            code_round_trip_and_single_use,
            code_replay_reports_what_was_issued,
            code_replay_between_take_and_mark_is_reported_to_first_use,
            code_unknown_expired_and_duplicate,
            code_concurrent_take_has_one_winner,
            code_peek_does_not_consume,
            refresh_rotation_and_reuse_detection,
            refresh_grace_window,
            refresh_grace_links_are_forgotten_after_the_window,
            refresh_expiry_idle_and_absolute,
            refresh_rotation_conflict_rolls_back,
            refresh_concurrent_rotation_without_grace,
            refresh_concurrent_rotation_with_grace,
            refresh_revocation,
            access_jti_revocation,
            consents,
            sessions,
            registered_clients,
            registered_client_origins_and_expiry,
            cleanup_expired,
            counters_count_per_window,
            counters_concurrent_events_are_all_counted,
            known_devices,
            claims_and_lists_round_trip,
            closed_store_is_unavailable,
        );
    };
}

pub const NOW: i64 = 1_800_000_000;

pub fn claims() -> Claims {
    Claims {
        email: Some("ada@example.com".into()),
        email_verified: Some(true),
        name: Some("Ada Lovelace".into()),
        preferred_username: Some("ada".into()),
        groups: vec!["eng".into(), "admins".into()],
    }
}

pub fn code(client: &str) -> AuthCode {
    AuthCode {
        client_id: client.into(),
        redirect_uri: "https://app.example.com/cb".into(),
        subject: "user-ada".into(),
        scopes: vec!["openid".into(), "email".into(), "offline_access".into()],
        resources: vec!["https://api.example.com/".into()],
        nonce: Some("n-0S6_WzA2Mj".into()),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        auth_time: NOW - 30,
        session_id: Some("sid-1".into()),
        claims: claims(),
        created_at: NOW,
        expires_at: NOW + 60,
    }
}

pub fn family(id: &str, subject: &str, client: &str) -> RefreshFamily {
    RefreshFamily {
        id: id.into(),
        client_id: client.into(),
        subject: subject.into(),
        scopes: vec!["openid".into(), "offline_access".into()],
        resources: vec!["https://api.example.com/".into()],
        claims: claims(),
        auth_time: NOW - 30,
        session_id: Some("sid-1".into()),
        created_at: NOW,
        expires_at: NOW + 30 * 86_400,
        idle_expires_at: NOW + 86_400,
        revoked: false,
    }
}

pub fn session(id: &str, expires_at: i64) -> Session {
    Session {
        id: id.into(),
        subject: "user-ada".into(),
        claims: claims(),
        source: "static".into(),
        auth_time: NOW,
        created_at: NOW,
        last_seen: NOW,
        expires_at,
    }
}

fn h(s: &str) -> SecretHash {
    SecretHash::of(s)
}

/// The salt the tests use for the successor named `s`.
fn salt(s: &str) -> [u8; 32] {
    *h(&format!("salt of {s}")).as_bytes()
}

/// The successor named `s`: its hash and salt.
fn succ(s: &str) -> Successor {
    Successor {
        hash: h(s),
        salt: salt(s),
    }
}

const NO_GRACE: RotationPolicy = RotationPolicy {
    grace_secs: 0,
    idle_secs: 86_400,
};

pub async fn ping_works(fx: &Fixture) {
    fx.store.ping().await.unwrap();
}

pub async fn code_round_trip_and_single_use(fx: &Fixture) {
    let s = &fx.store;
    let c = code("app");
    s.put_code(&h("code-1"), &c).await.unwrap();
    match s.take_code(&h("code-1"), NOW + 1).await.unwrap() {
        TakenCode::Fresh(got) => assert_eq!(got, c),
        other => panic!("expected fresh, got {other:?}"),
    }
    match s.take_code(&h("code-1"), NOW + 2).await.unwrap() {
        TakenCode::Replayed { code, issued } => {
            assert_eq!(code, c);
            assert_eq!(issued, CodeIssued::default());
        }
        other => panic!("expected replay, got {other:?}"),
    }
    // Another code is unaffected.
    s.put_code(&h("code-2"), &code("app")).await.unwrap();
    assert!(matches!(
        s.take_code(&h("code-2"), NOW + 1).await.unwrap(),
        TakenCode::Fresh(_)
    ));
}

pub async fn code_replay_reports_what_was_issued(fx: &Fixture) {
    let s = &fx.store;
    s.put_code(&h("c"), &code("app")).await.unwrap();
    assert!(matches!(
        s.take_code(&h("c"), NOW).await.unwrap(),
        TakenCode::Fresh(_)
    ));
    let issued = CodeIssued {
        refresh_family_id: Some("fam-1".into()),
        access_jti: Some("jti-1".into()),
        access_exp: Some(NOW + 300),
    };
    assert!(s.mark_code_issued(&h("c"), &issued).await.unwrap());
    // A replay long after the code's expiry (but within retention) is still recognised.
    match s.take_code(&h("c"), NOW + 3600).await.unwrap() {
        TakenCode::Replayed { issued: got, .. } => assert_eq!(got, issued),
        other => panic!("expected replay, got {other:?}"),
    }
}

pub async fn code_replay_between_take_and_mark_is_reported_to_first_use(fx: &Fixture) {
    let s = &fx.store;
    s.put_code(&h("c"), &code("app")).await.unwrap();
    assert!(matches!(
        s.take_code(&h("c"), NOW).await.unwrap(),
        TakenCode::Fresh(_)
    ));
    // The replay arrives before the first use recorded anything.
    match s.take_code(&h("c"), NOW).await.unwrap() {
        TakenCode::Replayed { issued, .. } => assert_eq!(issued, CodeIssued::default()),
        other => panic!("expected replay, got {other:?}"),
    }
    let issued = CodeIssued {
        refresh_family_id: Some("fam".into()),
        access_jti: Some("jti".into()),
        access_exp: Some(NOW + 300),
    };
    // The first use learns it must revoke what it issued.
    assert!(!s.mark_code_issued(&h("c"), &issued).await.unwrap());
    // Marking an unknown code, or one never taken, is NotFound.
    assert!(matches!(
        s.mark_code_issued(&h("nope"), &issued).await,
        Err(StoreError::NotFound)
    ));
    s.put_code(&h("untaken"), &code("app")).await.unwrap();
    assert!(matches!(
        s.mark_code_issued(&h("untaken"), &issued).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn code_peek_does_not_consume(fx: &Fixture) {
    let s = &fx.store;
    assert_eq!(s.peek_code(&h("unknown"), NOW).await.unwrap(), None);
    let c = code("app");
    s.put_code(&h("c"), &c).await.unwrap();
    // Peeking twice leaves the code redeemable.
    assert_eq!(s.peek_code(&h("c"), NOW).await.unwrap(), Some(c.clone()));
    assert_eq!(s.peek_code(&h("c"), NOW).await.unwrap(), Some(c.clone()));
    // Unused and expired: gone for peek as for take.
    assert_eq!(s.peek_code(&h("c"), c.expires_at).await.unwrap(), None);
    assert!(matches!(
        s.take_code(&h("c"), NOW).await.unwrap(),
        TakenCode::Fresh(_)
    ));
    // A used code is still visible (its redemption reports the replay), even past expiry.
    assert_eq!(
        s.peek_code(&h("c"), c.expires_at + 60).await.unwrap(),
        Some(c)
    );
    assert!(matches!(
        s.take_code(&h("c"), NOW).await.unwrap(),
        TakenCode::Replayed { .. }
    ));
}

pub async fn code_unknown_expired_and_duplicate(fx: &Fixture) {
    let s = &fx.store;
    assert!(matches!(
        s.take_code(&h("unknown"), NOW).await,
        Err(StoreError::NotFound)
    ));
    let c = code("app");
    s.put_code(&h("c"), &c).await.unwrap();
    assert!(matches!(
        s.put_code(&h("c"), &c).await,
        Err(StoreError::Conflict)
    ));
    // At expires_at the code is no longer redeemable, and stays so (not a replay).
    assert!(matches!(
        s.take_code(&h("c"), c.expires_at).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.take_code(&h("c"), c.expires_at - 1).await,
        Ok(TakenCode::Fresh(_))
    ));
}

pub async fn code_concurrent_take_has_one_winner(fx: &Fixture) {
    for round in 0..5 {
        let key = format!("race-{round}");
        fx.store.put_code(&h(&key), &code("app")).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = fx.store.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                store.take_code(&h(&key), NOW + 1).await
            }));
        }
        let mut fresh = 0;
        let mut replayed = 0;
        for t in tasks {
            match t.await.unwrap().unwrap() {
                TakenCode::Fresh(_) => fresh += 1,
                TakenCode::Replayed { .. } => replayed += 1,
            }
        }
        assert_eq!((fresh, replayed), (1, 7), "round {round}");
    }
}

pub async fn refresh_rotation_and_reuse_detection(fx: &Fixture) {
    let s = &fx.store;
    let f = family("fam-1", "user-ada", "app");
    s.create_refresh_family(&f, &h("rt-1")).await.unwrap();
    let got = s.get_refresh(&h("rt-1")).await.unwrap().unwrap();
    assert_eq!(got.family, f);
    assert_eq!(got.token.family_id, "fam-1");
    assert_eq!(got.token.created_at, NOW);
    assert_eq!(got.token.rotated_at, None);
    assert!(got.is_active(NOW));
    assert_eq!(
        s.get_refresh_family("fam-1").await.unwrap(),
        Some(f.clone())
    );
    assert_eq!(s.get_refresh(&h("unknown")).await.unwrap(), None);
    assert_eq!(s.get_refresh_family("unknown").await.unwrap(), None);

    // rt-1 → rt-2
    match s
        .rotate_refresh(&h("rt-1"), &succ("rt-2"), NOW + 100, NO_GRACE)
        .await
        .unwrap()
    {
        Rotation::Rotated { family } => {
            assert_eq!(family.idle_expires_at, NOW + 100 + 86_400);
            assert!(!family.revoked);
        }
        other => panic!("expected rotation, got {other:?}"),
    }
    let old = s.get_refresh(&h("rt-1")).await.unwrap().unwrap();
    assert_eq!(old.token.rotated_at, Some(NOW + 100));
    assert!(!old.is_active(NOW + 100));
    let new = s.get_refresh(&h("rt-2")).await.unwrap().unwrap();
    assert!(new.is_active(NOW + 100));
    assert_eq!(new.family.idle_expires_at, NOW + 100 + 86_400);

    // rt-2 → rt-3 still fine.
    assert!(matches!(
        s.rotate_refresh(&h("rt-2"), &succ("rt-3"), NOW + 200, NO_GRACE)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    // Re-presenting rt-1 (rotated long ago): the family is revoked.
    match s
        .rotate_refresh(&h("rt-1"), &succ("rt-x"), NOW + 300, NO_GRACE)
        .await
        .unwrap()
    {
        Rotation::Reused(family) => {
            assert!(family.revoked);
            assert_eq!(family.id, "fam-1");
        }
        other => panic!("expected reuse, got {other:?}"),
    }
    assert!(s.get_refresh(&h("rt-x")).await.unwrap().is_none());
    // The current token (rt-3) is now dead too.
    let cur = s.get_refresh(&h("rt-3")).await.unwrap().unwrap();
    assert!(cur.family.revoked);
    assert!(!cur.is_active(NOW + 300));
    assert!(matches!(
        s.rotate_refresh(&h("rt-3"), &succ("rt-4"), NOW + 301, NO_GRACE)
            .await
            .unwrap(),
        Rotation::Inactive(_)
    ));
    assert!(s.get_refresh(&h("rt-4")).await.unwrap().is_none());
    assert!(matches!(
        s.rotate_refresh(&h("unknown"), &succ("rt-5"), NOW, NO_GRACE)
            .await,
        Err(StoreError::NotFound)
    ));
}

const GRACE: RotationPolicy = RotationPolicy {
    grace_secs: 10,
    idle_secs: 86_400,
};

pub async fn refresh_grace_window(fx: &Fixture) {
    let s = &fx.store;
    s.create_refresh_family(&family("fam", "user-ada", "app"), &h("a"))
        .await
        .unwrap();
    assert!(matches!(
        s.rotate_refresh(&h("a"), &succ("b"), NOW, GRACE)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    // Presented again within the window: the way to the current token (b); nothing new.
    match s
        .rotate_refresh(&h("a"), &succ("c"), NOW + 10, GRACE)
        .await
        .unwrap()
    {
        Rotation::Again {
            family,
            salts,
            current,
        } => {
            assert_eq!((salts, current), (vec![salt("b")], h("b")));
            assert_eq!(family.idle_expires_at, NOW + 10 + 86_400);
            assert!(!family.revoked);
        }
        other => panic!("expected the same successor, got {other:?}"),
    }
    assert!(s.get_refresh(&h("c")).await.unwrap().is_none(), "no fork");
    assert!(
        s.get_refresh(&h("b"))
            .await
            .unwrap()
            .unwrap()
            .is_active(NOW + 10)
    );
    // b → d; a, still within its window, leads to d through b, and b to d.
    assert!(matches!(
        s.rotate_refresh(&h("b"), &succ("d"), NOW + 5, GRACE)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    for (from, salts) in [("a", vec![salt("b"), salt("d")]), ("b", vec![salt("d")])] {
        match s
            .rotate_refresh(&h(from), &succ("e"), NOW + 10, GRACE)
            .await
            .unwrap()
        {
            Rotation::Again {
                salts: got,
                current,
                ..
            } => assert_eq!((got, current), (salts, h("d")), "from {from}"),
            other => panic!("from {from}: {other:?}"),
        }
    }
    assert!(s.get_refresh(&h("e")).await.unwrap().is_none());
    // The rotation time of `a` is the first one: the window does not slide.
    assert_eq!(
        s.get_refresh(&h("a"))
            .await
            .unwrap()
            .unwrap()
            .token
            .rotated_at,
        Some(NOW)
    );
    // Outside the window: reuse, family revoked.
    assert!(matches!(
        s.rotate_refresh(&h("a"), &succ("f"), NOW + 11, GRACE)
            .await
            .unwrap(),
        Rotation::Reused(_)
    ));
    assert!(s.get_refresh(&h("f")).await.unwrap().is_none());
    assert!(
        !s.get_refresh(&h("d"))
            .await
            .unwrap()
            .unwrap()
            .is_active(NOW + 11)
    );

    // A link rotated without a grace window cannot be followed: reuse.
    s.create_refresh_family(&family("nolink", "user-ada", "app"), &h("n0"))
        .await
        .unwrap();
    s.rotate_refresh(&h("n0"), &succ("n1"), NOW, GRACE)
        .await
        .unwrap();
    s.rotate_refresh(&h("n1"), &succ("n2"), NOW + 1, NO_GRACE)
        .await
        .unwrap();
    assert!(matches!(
        s.rotate_refresh(&h("n0"), &succ("n3"), NOW + 2, GRACE)
            .await
            .unwrap(),
        Rotation::Reused(_)
    ));

    // The family's lifetimes hold within the window: past its absolute expiry, inactive.
    let mut short = family("short", "user-ada", "app");
    short.expires_at = NOW + 5;
    s.create_refresh_family(&short, &h("s0")).await.unwrap();
    match s
        .rotate_refresh(&h("s0"), &succ("s1"), NOW, GRACE)
        .await
        .unwrap()
    {
        Rotation::Rotated { family } => assert_eq!(family.idle_expires_at, NOW + 5),
        other => panic!("{other:?}"),
    }
    match s
        .rotate_refresh(&h("s0"), &succ("s2"), NOW + 5, GRACE)
        .await
        .unwrap()
    {
        Rotation::Inactive(family) => assert!(!family.revoked),
        other => panic!("{other:?}"),
    }
}

pub async fn refresh_grace_links_are_forgotten_after_the_window(fx: &Fixture) {
    let s = &fx.store;
    s.create_refresh_family(&family("fam", "user-ada", "app"), &h("a"))
        .await
        .unwrap();
    s.rotate_refresh(&h("a"), &succ("b"), NOW, GRACE)
        .await
        .unwrap();
    s.rotate_refresh(&h("b"), &succ("c"), NOW + 5, GRACE)
        .await
        .unwrap();
    // The last second of a's window: kept.
    assert_eq!(s.cleanup_expired(NOW + 10).await.unwrap().refresh_graces, 0);
    assert!(matches!(
        s.rotate_refresh(&h("a"), &succ("x"), NOW + 10, GRACE)
            .await
            .unwrap(),
        Rotation::Again { .. }
    ));
    assert_eq!(s.cleanup_expired(NOW + 11).await.unwrap().refresh_graces, 1);
    // b's window is still open, and its link kept.
    assert!(matches!(
        s.rotate_refresh(&h("b"), &succ("x"), NOW + 15, GRACE)
            .await
            .unwrap(),
        Rotation::Again { .. }
    ));
    assert_eq!(s.cleanup_expired(NOW + 16).await.unwrap().refresh_graces, 1);
    assert_eq!(s.cleanup_expired(NOW + 16).await.unwrap().refresh_graces, 0);
    // Rotated tokens themselves stay (reuse detection), and the current one still works.
    assert!(s.get_refresh(&h("a")).await.unwrap().is_some());
    assert!(matches!(
        s.rotate_refresh(&h("c"), &succ("d"), NOW + 16, GRACE)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
}

pub async fn refresh_expiry_idle_and_absolute(fx: &Fixture) {
    let s = &fx.store;
    let mut f = family("fam", "user-ada", "app");
    f.expires_at = NOW + 1000;
    f.idle_expires_at = NOW + 100;
    s.create_refresh_family(&f, &h("a")).await.unwrap();
    let policy = RotationPolicy {
        grace_secs: 0,
        idle_secs: 600,
    };
    // Idle expiry moves forward but never past the absolute expiry.
    match s
        .rotate_refresh(&h("a"), &succ("b"), NOW + 50, policy)
        .await
        .unwrap()
    {
        Rotation::Rotated { family, .. } => assert_eq!(family.idle_expires_at, NOW + 650),
        other => panic!("{other:?}"),
    }
    match s
        .rotate_refresh(&h("b"), &succ("c"), NOW + 600, policy)
        .await
        .unwrap()
    {
        Rotation::Rotated { family, .. } => assert_eq!(family.idle_expires_at, NOW + 1000),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.get_refresh_family("fam")
            .await
            .unwrap()
            .unwrap()
            .idle_expires_at,
        NOW + 1000
    );
    // Past the absolute expiry: inactive, nothing changes.
    match s
        .rotate_refresh(&h("c"), &succ("d"), NOW + 1000, policy)
        .await
        .unwrap()
    {
        Rotation::Inactive(family) => assert!(!family.revoked),
        other => panic!("{other:?}"),
    }
    assert!(s.get_refresh(&h("d")).await.unwrap().is_none());
    assert_eq!(
        s.get_refresh(&h("c"))
            .await
            .unwrap()
            .unwrap()
            .token
            .rotated_at,
        None
    );

    // Idle expiry on its own.
    let mut g = family("idle", "user-ada", "app");
    g.idle_expires_at = NOW + 100;
    s.create_refresh_family(&g, &h("i1")).await.unwrap();
    assert!(matches!(
        s.rotate_refresh(&h("i1"), &succ("i2"), NOW + 100, policy)
            .await
            .unwrap(),
        Rotation::Inactive(_)
    ));
    assert!(
        !s.get_refresh(&h("i1"))
            .await
            .unwrap()
            .unwrap()
            .is_active(NOW + 100)
    );
}

pub async fn refresh_rotation_conflict_rolls_back(fx: &Fixture) {
    let s = &fx.store;
    s.create_refresh_family(&family("f1", "user-ada", "app"), &h("a"))
        .await
        .unwrap();
    s.create_refresh_family(&family("f2", "user-ada", "app"), &h("taken"))
        .await
        .unwrap();
    // Duplicate family id or first-token hash.
    assert!(matches!(
        s.create_refresh_family(&family("f1", "user-ada", "app"), &h("z"))
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        s.create_refresh_family(&family("f3", "user-ada", "app"), &h("a"))
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(s.get_refresh_family("f3").await.unwrap(), None);
    // Rotating onto an existing hash fails and changes nothing.
    assert!(matches!(
        s.rotate_refresh(&h("a"), &succ("taken"), NOW + 5, NO_GRACE)
            .await,
        Err(StoreError::Conflict)
    ));
    let a = s.get_refresh(&h("a")).await.unwrap().unwrap();
    assert_eq!(a.token.rotated_at, None);
    assert_eq!(a.family.idle_expires_at, NOW + 86_400);
    assert!(matches!(
        s.rotate_refresh(&h("a"), &succ("b"), NOW + 6, NO_GRACE)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
}

async fn race_rotation(fx: &Fixture, policy: RotationPolicy, n: usize) -> Vec<Rotation> {
    fx.store
        .create_refresh_family(&family("race", "user-ada", "app"), &h("r0"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..n {
        let store = fx.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .rotate_refresh(&h("r0"), &succ(&format!("r1-{i}")), NOW + 1, policy)
                .await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap().unwrap());
    }
    out
}

pub async fn refresh_concurrent_rotation_without_grace(fx: &Fixture) {
    let results = race_rotation(fx, NO_GRACE, 6).await;
    let rotated = results
        .iter()
        .filter(|r| matches!(r, Rotation::Rotated { .. }))
        .count();
    let reused = results
        .iter()
        .filter(|r| matches!(r, Rotation::Reused(_)))
        .count();
    let inactive = results
        .iter()
        .filter(|r| matches!(r, Rotation::Inactive(_)))
        .count();
    // Exactly one wins; the first loser revokes the family, any later ones find it revoked.
    assert_eq!(rotated, 1, "{results:?}");
    assert!(reused >= 1, "{results:?}");
    assert_eq!(rotated + reused + inactive, 6);
    assert!(
        fx.store
            .get_refresh_family("race")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
}

pub async fn refresh_concurrent_rotation_with_grace(fx: &Fixture) {
    let policy = RotationPolicy {
        grace_secs: 30,
        idle_secs: 86_400,
    };
    let results = race_rotation(fx, policy, 6).await;
    let winners: Vec<usize> = (0..6)
        .filter(|i| matches!(results[*i], Rotation::Rotated { .. }))
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let w = format!("r1-{}", winners[0]);
    // Every other presentation gets the winner's successor: one chain.
    for (i, r) in results.iter().enumerate() {
        match r {
            Rotation::Rotated { .. } => {}
            Rotation::Again { salts, current, .. } => {
                assert_eq!((salts, current), (&vec![salt(&w)], &h(&w)), "task {i}");
            }
            other => panic!("task {i}: {other:?}"),
        }
    }
    for i in 0..6 {
        let t = fx.store.get_refresh(&h(&format!("r1-{i}"))).await.unwrap();
        assert_eq!(t.is_some(), format!("r1-{i}") == w, "r1-{i}");
    }
    assert!(
        fx.store
            .get_refresh(&h(&w))
            .await
            .unwrap()
            .unwrap()
            .is_active(NOW + 1)
    );
}

pub async fn refresh_revocation(fx: &Fixture) {
    let s = &fx.store;
    s.create_refresh_family(&family("a1", "ada", "app"), &h("t-a1"))
        .await
        .unwrap();
    s.create_refresh_family(&family("a2", "ada", "app"), &h("t-a2"))
        .await
        .unwrap();
    s.create_refresh_family(&family("a3", "ada", "other"), &h("t-a3"))
        .await
        .unwrap();
    s.create_refresh_family(&family("b1", "bob", "app"), &h("t-b1"))
        .await
        .unwrap();
    assert!(s.revoke_refresh_family("a1").await.unwrap());
    assert!(!s.revoke_refresh_family("a1").await.unwrap());
    assert!(!s.revoke_refresh_family("nope").await.unwrap());
    assert!(
        s.get_refresh(&h("t-a1"))
            .await
            .unwrap()
            .unwrap()
            .family
            .revoked
    );
    // a1 is already revoked: only a2 counts.
    assert_eq!(s.revoke_refresh_for("ada", "app").await.unwrap(), 1);
    assert_eq!(s.revoke_refresh_for("ada", "app").await.unwrap(), 0);
    assert!(s.get_refresh_family("a2").await.unwrap().unwrap().revoked);
    assert!(!s.get_refresh_family("a3").await.unwrap().unwrap().revoked);
    assert!(!s.get_refresh_family("b1").await.unwrap().unwrap().revoked);
}

pub async fn access_jti_revocation(fx: &Fixture) {
    let s = &fx.store;
    assert!(!s.is_access_revoked("jti-1").await.unwrap());
    s.revoke_access("jti-1", NOW + 300).await.unwrap();
    s.revoke_access("jti-1", NOW + 300).await.unwrap();
    assert!(s.is_access_revoked("jti-1").await.unwrap());
    assert!(!s.is_access_revoked("jti-2").await.unwrap());
}

pub async fn consents(fx: &Fixture) {
    let s = &fx.store;
    const R: Option<&str> = Some("https://r.example");
    let c = |client: &str, resource: Option<&str>, scopes: &[&str], at| Consent {
        subject: "ada".into(),
        client_id: client.into(),
        resource: resource.map(str::to_string),
        scopes: scopes.iter().map(|x| x.to_string()).collect(),
        granted_at: at,
    };
    assert_eq!(s.get_consent("ada", "app", None).await.unwrap(), None);
    s.put_consent(&c("zeta", None, &["openid"], NOW))
        .await
        .unwrap();
    s.put_consent(&c("app", None, &["openid"], NOW))
        .await
        .unwrap();
    s.put_consent(&c("app", None, &["openid", "email"], NOW + 5))
        .await
        .unwrap();
    s.put_consent(&Consent {
        subject: "bob".into(),
        ..c("app", None, &["openid"], NOW)
    })
    .await
    .unwrap();
    assert_eq!(
        s.get_consent("ada", "app", None).await.unwrap(),
        Some(c("app", None, &["openid", "email"], NOW + 5))
    );
    // Per resource: a consent for one resource is not one for another, nor for none.
    assert_eq!(s.get_consent("ada", "app", R).await.unwrap(), None);
    s.put_consent(&c("app", R, &["tool:read"], NOW + 7))
        .await
        .unwrap();
    assert_eq!(
        s.get_consent("ada", "app", R).await.unwrap(),
        Some(c("app", R, &["tool:read"], NOW + 7))
    );
    assert_eq!(
        s.get_consent("ada", "app", Some("https://other.example"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.get_consent("ada", "app", None).await.unwrap(),
        Some(c("app", None, &["openid", "email"], NOW + 5))
    );
    let list = s.list_consents("ada").await.unwrap();
    assert_eq!(
        list.iter()
            .map(|c| (c.client_id.as_str(), c.resource.as_deref()))
            .collect::<Vec<_>>(),
        [("app", None), ("app", R), ("zeta", None)]
    );
    assert!(s.list_consents("nobody").await.unwrap().is_empty());

    s.create_refresh_family(&family("f-app", "ada", "app"), &h("t1"))
        .await
        .unwrap();
    s.create_refresh_family(&family("f-zeta", "ada", "zeta"), &h("t2"))
        .await
        .unwrap();
    s.create_refresh_family(&family("f-bob", "bob", "app"), &h("t3"))
        .await
        .unwrap();
    assert!(s.delete_consent("ada", "app").await.unwrap());
    assert!(!s.delete_consent("ada", "app").await.unwrap());
    assert_eq!(s.get_consent("ada", "app", None).await.unwrap(), None);
    assert_eq!(s.get_consent("ada", "app", R).await.unwrap(), None);
    assert!(
        s.get_refresh_family("f-app")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(
        !s.get_refresh_family("f-zeta")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(
        !s.get_refresh_family("f-bob")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(s.get_consent("bob", "app", None).await.unwrap().is_some());
    assert!(s.get_consent("ada", "zeta", None).await.unwrap().is_some());
}

pub async fn sessions(fx: &Fixture) {
    let s = &fx.store;
    let sess = session("sid-1", NOW + 3600);
    s.put_session(&h("cookie-1"), &sess).await.unwrap();
    assert!(matches!(
        s.put_session(&h("cookie-1"), &session("sid-2", NOW + 10))
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        s.put_session(&h("cookie-2"), &session("sid-1", NOW + 10))
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        s.get_session(&h("cookie-1"), NOW).await.unwrap(),
        Some(sess.clone())
    );
    assert_eq!(
        s.get_session(&h("cookie-1"), NOW + 3600).await.unwrap(),
        None
    );
    assert_eq!(s.get_session(&h("other"), NOW).await.unwrap(), None);

    assert!(
        s.touch_session(&h("cookie-1"), NOW + 100, NOW + 7200)
            .await
            .unwrap()
    );
    let touched = s
        .get_session(&h("cookie-1"), NOW + 3600)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (touched.last_seen, touched.expires_at),
        (NOW + 100, NOW + 7200)
    );
    // An expired session cannot be revived.
    assert!(
        !s.touch_session(&h("cookie-1"), NOW + 7200, NOW + 9000)
            .await
            .unwrap()
    );
    assert!(!s.touch_session(&h("nope"), NOW, NOW + 10).await.unwrap());

    assert_eq!(
        s.delete_session(&h("cookie-1"))
            .await
            .unwrap()
            .map(|x| x.id),
        Some("sid-1".into())
    );
    assert_eq!(s.delete_session(&h("cookie-1")).await.unwrap(), None);
}

pub async fn registered_clients(fx: &Fixture) {
    let s = &fx.store;
    let client = |id: &str, at| RegisteredClient {
        client_id: id.into(),
        metadata: serde_json::json!({
            "client_name": "Agent ✓ \"quoted\"",
            "redirect_uris": ["http://127.0.0.1:5555/cb"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }),
        created_at: at,
        last_used: at,
    };
    s.put_client(&client("dcr-b", NOW)).await.unwrap();
    s.put_client(&client("dcr-a", NOW + 1)).await.unwrap();
    s.put_client(&client("dcr-c", NOW)).await.unwrap();
    assert!(matches!(
        s.put_client(&client("dcr-a", NOW)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        s.get_client("dcr-a").await.unwrap(),
        Some(client("dcr-a", NOW + 1))
    );
    assert_eq!(s.get_client("nope").await.unwrap(), None);
    let ids: Vec<_> = s
        .list_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(ids, ["dcr-b", "dcr-c", "dcr-a"]);
    assert!(s.delete_client("dcr-b").await.unwrap());
    assert!(!s.delete_client("dcr-b").await.unwrap());
    assert_eq!(s.list_clients().await.unwrap().len(), 2);
}

/// Registered clients' origins are an index, kept with the clients; `last_used` moves at most
/// once per `CLIENT_TOUCH_SECS`; unused clients expire with their consents and refresh tokens.
pub async fn registered_client_origins_and_expiry(fx: &Fixture) {
    let s = &fx.store;
    let client = |id: &str, uris: &[&str], at| RegisteredClient {
        client_id: id.into(),
        metadata: serde_json::json!({"client_name": id, "redirect_uris": uris}),
        created_at: at,
        last_used: at,
    };
    s.put_client(&client(
        "dcr.old",
        &[
            "https://Agent.Example:443/cb",
            "http://127.0.0.1:7000/cb?x=1",
        ],
        NOW,
    ))
    .await
    .unwrap();
    s.put_client(&client(
        "dcr.new",
        &["https://agent.example/other"],
        NOW + 100,
    ))
    .await
    .unwrap();
    let origin =
        |o: &'static str, since: i64| async move { s.has_client_origin(o, since).await.unwrap() };
    assert!(origin("https://agent.example", NOW).await);
    assert!(origin("http://127.0.0.1:7000", NOW).await);
    assert!(!origin("http://127.0.0.1:7001", NOW).await);
    assert!(!origin("https://agent.example:443", NOW).await);
    // Only clients used since the given time count.
    assert!(!origin("http://127.0.0.1:7000", NOW + 1).await);
    assert!(origin("https://agent.example", NOW + 100).await);
    assert!(!origin("https://agent.example", NOW + 101).await);

    // Touching within the interval writes nothing; after it, last_used moves.
    s.touch_client("dcr.old", NOW + 10).await.unwrap();
    assert_eq!(
        s.get_client("dcr.old").await.unwrap().unwrap().last_used,
        NOW
    );
    let later = NOW + issuer::store::CLIENT_TOUCH_SECS + 1;
    s.touch_client("dcr.old", later).await.unwrap();
    assert_eq!(
        s.get_client("dcr.old").await.unwrap().unwrap().last_used,
        later
    );
    s.touch_client("nobody", later).await.unwrap();

    // Expiry: the new one (last used NOW + 100) goes with its consent and refresh family;
    // the old one, touched since, stays.
    let consent = |client: &str| Consent {
        subject: "ada".into(),
        client_id: client.into(),
        resource: Some("https://r.example".into()),
        scopes: vec!["openid".into()],
        granted_at: NOW,
    };
    s.put_consent(&consent("dcr.new")).await.unwrap();
    s.put_consent(&consent("dcr.old")).await.unwrap();
    s.create_refresh_family(&family("f-new", "ada", "dcr.new"), &h("t-new"))
        .await
        .unwrap();
    s.create_refresh_family(&family("f-old", "ada", "dcr.old"), &h("t-old"))
        .await
        .unwrap();
    assert_eq!(s.expire_clients(NOW + 101).await.unwrap(), 1);
    assert_eq!(s.get_client("dcr.new").await.unwrap(), None);
    assert!(s.get_client("dcr.old").await.unwrap().is_some());
    assert!(origin("https://agent.example", 0).await);
    assert_eq!(
        s.get_consent("ada", "dcr.new", Some("https://r.example"))
            .await
            .unwrap(),
        None
    );
    assert!(
        s.get_consent("ada", "dcr.old", Some("https://r.example"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.get_refresh_family("f-new")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(
        !s.get_refresh_family("f-old")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert_eq!(s.expire_clients(NOW + 101).await.unwrap(), 0);
    // A deleted client's origins go with it.
    assert!(s.delete_client("dcr.old").await.unwrap());
    assert!(!origin("https://agent.example", 0).await);
    assert!(!origin("http://127.0.0.1:7000", 0).await);
}

pub async fn cleanup_expired(fx: &Fixture) {
    let s = &fx.store;
    // Codes: one unused and expired, one live, one used (kept for replay detection).
    let mut expired = code("app");
    expired.expires_at = NOW;
    s.put_code(&h("expired"), &expired).await.unwrap();
    s.put_code(&h("live"), &code("app")).await.unwrap();
    let mut used = code("app");
    used.expires_at = NOW;
    s.put_code(&h("used"), &used).await.unwrap();
    assert!(matches!(
        s.take_code(&h("used"), NOW - 1).await.unwrap(),
        TakenCode::Fresh(_)
    ));
    // Families: absolute-expired, idle-expired, live.
    let mut abs = family("abs", "ada", "app");
    abs.expires_at = NOW;
    s.create_refresh_family(&abs, &h("t-abs")).await.unwrap();
    let mut idle = family("idle", "ada", "app");
    idle.idle_expires_at = NOW - 1;
    s.create_refresh_family(&idle, &h("t-idle")).await.unwrap();
    s.create_refresh_family(&family("live", "ada", "app"), &h("t-live"))
        .await
        .unwrap();
    s.revoke_access("old", NOW).await.unwrap();
    s.revoke_access("new", NOW + 1).await.unwrap();
    s.put_session(&h("s-old"), &session("sid-old", NOW))
        .await
        .unwrap();
    s.put_session(&h("s-new"), &session("sid-new", NOW + 1))
        .await
        .unwrap();

    let done = s.cleanup_expired(NOW).await.unwrap();
    assert_eq!(
        (
            done.codes,
            done.refresh_families,
            done.revoked_jtis,
            done.sessions
        ),
        (1, 2, 1, 1)
    );
    assert!(matches!(
        s.take_code(&h("used"), NOW).await.unwrap(),
        TakenCode::Replayed { .. }
    ));
    assert!(matches!(
        s.take_code(&h("live"), NOW).await.unwrap(),
        TakenCode::Fresh(_)
    ));
    assert!(s.get_refresh(&h("t-abs")).await.unwrap().is_none());
    assert!(s.get_refresh(&h("t-idle")).await.unwrap().is_none());
    assert!(s.get_refresh(&h("t-live")).await.unwrap().is_some());
    assert!(!s.is_access_revoked("old").await.unwrap());
    assert!(s.is_access_revoked("new").await.unwrap());
    assert!(s.get_session(&h("s-new"), NOW).await.unwrap().is_some());
    // The family's tokens are gone with it: the hash can be used again.
    s.create_refresh_family(&family("again", "ada", "app"), &h("t-abs"))
        .await
        .unwrap();

    // Used codes go once the retention after their expiry has passed.
    let later = s
        .cleanup_expired(NOW + 60 + USED_CODE_RETENTION_SECS)
        .await
        .unwrap();
    assert_eq!(later.codes, 2, "the used code and the (taken) live one");
    assert!(matches!(
        s.take_code(&h("used"), NOW).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        s.cleanup_expired(NOW).await.unwrap(),
        issuer::store::Cleanup::default()
    );
}

pub async fn counters_count_per_window(fx: &Fixture) {
    let s = &fx.store;
    // A window opens with the first event and ends at the window_end given with it.
    assert_eq!(s.count_event(&h("a"), NOW, NOW + 300).await.unwrap(), 1);
    assert_eq!(s.count_event(&h("a"), NOW + 1, NOW + 301).await.unwrap(), 2);
    assert_eq!(s.count_event(&h("b"), NOW + 1, NOW + 301).await.unwrap(), 1);
    assert_eq!(
        s.count_event(&h("a"), NOW + 299, NOW + 599).await.unwrap(),
        3
    );
    // At its end a new window opens, ending where the event that opened it says.
    assert_eq!(
        s.count_event(&h("a"), NOW + 300, NOW + 400).await.unwrap(),
        1
    );
    assert_eq!(
        s.count_event(&h("a"), NOW + 399, NOW + 999).await.unwrap(),
        2
    );
    assert_eq!(
        s.count_event(&h("a"), NOW + 400, NOW + 500).await.unwrap(),
        1
    );
    // Reset forgets one key only.
    s.reset_counter(&h("a")).await.unwrap();
    s.reset_counter(&h("never")).await.unwrap();
    assert_eq!(
        s.count_event(&h("a"), NOW + 401, NOW + 500).await.unwrap(),
        1
    );
    assert_eq!(s.count_event(&h("b"), NOW + 2, NOW + 302).await.unwrap(), 2);
    // Uncounting takes one event back, never below zero, and keeps the window.
    s.uncount_event(&h("b")).await.unwrap();
    assert_eq!(s.count_event(&h("b"), NOW + 3, NOW + 999).await.unwrap(), 2);
    for _ in 0..3 {
        s.uncount_event(&h("b")).await.unwrap();
    }
    s.uncount_event(&h("never")).await.unwrap();
    assert_eq!(s.count_event(&h("b"), NOW + 4, NOW + 999).await.unwrap(), 1);
    // Cleanup removes the counters whose window has ended, and only those.
    let done = s.cleanup_expired(NOW + 301).await.unwrap();
    assert_eq!(done.counters, 1);
    assert_eq!(
        s.count_event(&h("a"), NOW + 402, NOW + 500).await.unwrap(),
        2
    );
    let done = s.cleanup_expired(NOW + 500).await.unwrap();
    assert_eq!(done.counters, 1);
    assert_eq!(
        s.count_event(&h("a"), NOW + 500, NOW + 600).await.unwrap(),
        1
    );
}

pub async fn known_devices(fx: &Fixture) {
    let s = &fx.store;
    assert!(!s.is_known_device(&h("d"), NOW).await.unwrap());
    s.remember_device(&h("d"), NOW + 100).await.unwrap();
    assert!(s.is_known_device(&h("d"), NOW + 99).await.unwrap());
    assert!(!s.is_known_device(&h("d"), NOW + 100).await.unwrap());
    assert!(!s.is_known_device(&h("other"), NOW).await.unwrap());
    // A later sign-in replaces the expiry.
    s.remember_device(&h("d"), NOW + 500).await.unwrap();
    assert!(s.is_known_device(&h("d"), NOW + 499).await.unwrap());
    s.remember_device(&h("e"), NOW + 600).await.unwrap();
    let done = s.cleanup_expired(NOW + 500).await.unwrap();
    assert_eq!(done.known_devices, 1);
    assert!(s.is_known_device(&h("e"), NOW + 500).await.unwrap());
}

pub async fn counters_concurrent_events_are_all_counted(fx: &Fixture) {
    let n = 24;
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let s = fx.store.clone();
            tokio::spawn(async move { s.count_event(&h("k"), NOW, NOW + 60).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=n).collect::<Vec<u64>>());
}

pub async fn claims_and_lists_round_trip(fx: &Fixture) {
    let s = &fx.store;
    // Empty lists, no optional fields, non-ASCII text.
    let mut c = code("app");
    c.scopes = vec![];
    c.resources = vec![];
    c.nonce = None;
    c.session_id = None;
    c.claims = Claims {
        name: Some("Zoë O'Brien; DROP TABLE \"x\" --".into()),
        ..Claims::default()
    };
    s.put_code(&h("c"), &c).await.unwrap();
    match s.take_code(&h("c"), NOW).await.unwrap() {
        TakenCode::Fresh(got) => assert_eq!(got, c),
        other => panic!("{other:?}"),
    }
    let mut f = family("f", "ada", "app");
    f.claims = Claims::default();
    f.session_id = None;
    f.resources = vec![];
    s.create_refresh_family(&f, &h("t")).await.unwrap();
    assert_eq!(s.get_refresh_family("f").await.unwrap(), Some(f));
}

pub async fn closed_store_is_unavailable(fx: &Fixture) {
    let s = &fx.store;
    s.put_code(&h("c"), &code("app")).await.unwrap();
    (fx.close)().await;
    fn unavailable<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
        match r {
            Err(e) if e.is_unavailable() => {}
            other => panic!("{what}: expected Unavailable, got {other:?}"),
        }
    }
    unavailable(s.ping().await, "ping");
    unavailable(s.take_code(&h("c"), NOW).await, "take_code");
    unavailable(s.peek_code(&h("c"), NOW).await, "peek_code");
    unavailable(s.put_code(&h("d"), &code("app")).await, "put_code");
    unavailable(
        s.create_refresh_family(&family("f", "ada", "app"), &h("t"))
            .await,
        "create_refresh_family",
    );
    unavailable(
        s.rotate_refresh(&h("t"), &succ("u"), NOW, NO_GRACE).await,
        "rotate_refresh",
    );
    unavailable(s.get_refresh(&h("t")).await, "get_refresh");
    unavailable(s.is_access_revoked("j").await, "is_access_revoked");
    unavailable(s.delete_consent("ada", "app").await, "delete_consent");
    unavailable(s.get_session(&h("s"), NOW).await, "get_session");
    unavailable(s.list_clients().await, "list_clients");
    unavailable(
        s.has_client_origin("https://a.example", NOW).await,
        "has_client_origin",
    );
    unavailable(s.touch_client("dcr.x", NOW).await, "touch_client");
    unavailable(s.expire_clients(NOW).await, "expire_clients");
    unavailable(s.count_event(&h("k"), NOW, NOW + 1).await, "count_event");
    unavailable(s.reset_counter(&h("k")).await, "reset_counter");
    unavailable(s.uncount_event(&h("k")).await, "uncount_event");
    unavailable(s.remember_device(&h("d"), NOW).await, "remember_device");
    unavailable(s.is_known_device(&h("d"), NOW).await, "is_known_device");
    unavailable(s.cleanup_expired(NOW).await, "cleanup_expired");
}

/// What migration 0003 makes of rows written before it: consents become consents without a
/// resource, registered clients get `last_used = created_at` and their origins indexed.
pub async fn check_rows_migrated_by_0003(store: &dyn issuer::store::Store) {
    let c = store
        .get_consent("ada", "app", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.scopes, ["openid", "email"]);
    assert_eq!(c.resource, None);
    assert_eq!(store.list_consents("ada").await.unwrap().len(), 1);
    let client = store.get_client("dcr.x").await.unwrap().unwrap();
    assert_eq!(client.last_used, NOW);
    for origin in [
        "https://agent.example",
        "http://127.0.0.1:7000",
        "http://localhost",
        "https://b.example:8443",
    ] {
        assert!(
            store.has_client_origin(origin, NOW).await.unwrap(),
            "{origin}"
        );
    }
    assert!(
        !store
            .has_client_origin("https://agent.example:443", NOW)
            .await
            .unwrap()
    );
    assert!(
        !store
            .has_client_origin("https://agent.example", NOW + 1)
            .await
            .unwrap()
    );
}

/// The rows [`check_rows_migrated_by_0003`] expects, as written before migration 0003.
pub const ROWS_BEFORE_0003: [&str; 2] = [
    "INSERT INTO consents (subject, client_id, scopes, granted_at) \
     VALUES ('ada', 'app', 'openid email', 1800000000)",
    "INSERT INTO registered_clients (client_id, metadata, created_at) VALUES ('dcr.x', \
     '{\"client_name\":\"X\",\"redirect_uris\":[\"https://Agent.Example:443/cb\",\
     \"http://127.0.0.1:7000/cb?x=1\",\"http://LOCALHOST:80/cb\",\"https://b.example:8443?q\"]}', \
     1800000000)",
];

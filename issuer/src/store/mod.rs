//! The issuer's persistent state: the [`Store`] contract, its record types and [`StoreError`].
//!
//! Two implementations sit beside this contract: [`sqlite::SqliteStore`] (embedded, the default)
//! and [`postgres::PostgresStore`] (for several issuer replicas). Both run the same conformance
//! suite (`issuer/tests/store_*.rs`, shared code in `tests/store_conformance/`).
//!
//! Conventions:
//! - Every timestamp is Unix seconds (`i64`); the caller passes `now`, the store never reads the
//!   clock, so behaviour is deterministic and testable.
//! - Secrets (authorization codes, refresh tokens, sign-in cookies) never reach the store: only
//!   their SHA-256 ([`SecretHash`]). Looking a row up by the hash of a high-entropy secret is not
//!   a timing oracle: the attacker would have to find a SHA-256 preimage.
//! - Identifiers that are not secrets (refresh family ids, session ids, access-token jtis, client
//!   ids) are chosen by the caller and stored as given.
//! - Atomic operations ([`Store::take_code`], [`Store::rotate_refresh`]) are decided by the
//!   database with conditional updates, so they hold across several issuer replicas sharing
//!   one PostgreSQL.
//! - [`StoreError::Unavailable`] means "try again later" (the HTTP layer answers 503); nothing was
//!   changed, or the change was rolled back.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub mod postgres;
mod sql;
pub mod sqlite;

pub use sql::USED_CODE_RETENTION_SECS;

/// Result alias of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded (connection refused, pool closed or timed
    /// out, SQLite busy). Maps to HTTP 503; the operation had no effect.
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The record the operation needs does not exist (or has expired).
    #[error("record not found")]
    NotFound,
    /// A record with the same key already exists.
    #[error("record already exists")]
    Conflict,
    /// A stored row could not be decoded (e.g. corrupt JSON); a bug or tampering, maps to 500.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// The schema could not be brought up to date at start-up.
    #[error("store migration failed")]
    Migration(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Any other database error (a bug: bad SQL, constraint violation other than a duplicate
    /// key). Maps to 500.
    #[error("store error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether the HTTP layer should answer 503 (retry later) rather than 500.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// SHA-256 of a secret (authorization code, refresh token, session cookie value), or of a
/// counter's key (a throttled email address is never stored itself).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    /// Hashes a secret as sent on the wire (the exact bytes of its string form).
    pub fn of(secret: &str) -> Self {
        SecretHash(Sha256::digest(secret.as_bytes()).into())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From raw bytes as stored; `Corrupt` unless exactly 32.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("hash of {} bytes", bytes.len())))?;
        Ok(SecretHash(arr))
    }
}

impl std::fmt::Debug for SecretHash {
    // Only a prefix: enough to correlate in a debugger, never the whole digest in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretHash({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// The snapshot of a person's claims taken at sign-in, carried into codes, refresh families and
/// sessions so that tokens issued later say what the identity source said then.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Email address, if the identity source gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the identity source says the email address is verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Short user name (OIDC `preferred_username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// Group memberships (after mapping the upstream's groups claim).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl Claims {
    /// The email address if the identity source verified it: the only one that may pass
    /// email-based access rules or reach tokens.
    pub(crate) fn verified_email(&self) -> Option<&str> {
        self.email
            .as_deref()
            .filter(|_| self.email_verified == Some(true))
    }
}

/// An authorization code, stored under the hash of the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthCode {
    /// The client the code was issued to.
    pub client_id: String,
    /// The exact redirect URI of the authorization request.
    pub redirect_uri: String,
    /// The person's stable subject identifier.
    pub subject: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// RFC 8707 resource indicators (the access token's audience).
    pub resources: Vec<String>,
    /// OIDC `nonce` of the authorization request.
    pub nonce: Option<String>,
    /// PKCE S256 code challenge (base64url of SHA-256 of the verifier).
    pub code_challenge: String,
    /// When the person authenticated (OIDC `auth_time`).
    pub auth_time: i64,
    /// Public id of the sign-in session (OIDC `sid`), if any.
    pub session_id: Option<String>,
    /// The person's claims at sign-in.
    pub claims: Claims,
    /// When the code was issued.
    pub created_at: i64,
    /// When the code stops being redeemable.
    pub expires_at: i64,
}

/// What was issued from a code, recorded so that a replay can revoke it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeIssued {
    /// The refresh-token family created from the code, if any.
    pub refresh_family_id: Option<String>,
    /// The `jti` of the access token issued from the code.
    pub access_jti: Option<String>,
    /// The `exp` of that access token (kept with the revocation).
    pub access_exp: Option<i64>,
}

/// Outcome of [`Store::take_code`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TakenCode {
    /// First use: the caller verifies client, redirect URI and PKCE, issues tokens and then calls
    /// [`Store::mark_code_issued`].
    Fresh(AuthCode),
    /// The code had already been used. The caller answers `invalid_grant` and revokes `issued`
    /// (refresh family and access jti). `issued` is empty when the first use has not (yet)
    /// recorded anything; [`Store::mark_code_issued`] then tells the first use to revoke.
    Replayed {
        /// The code's record.
        code: AuthCode,
        /// What the first use issued, as far as recorded.
        issued: CodeIssued,
    },
}

/// A refresh-token family: every refresh token descended from one grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshFamily {
    /// Family id (caller-chosen, not secret).
    pub id: String,
    /// The client the family belongs to.
    pub client_id: String,
    /// The person's subject.
    pub subject: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// RFC 8707 resources granted.
    pub resources: Vec<String>,
    /// The person's claims at sign-in.
    pub claims: Claims,
    /// When the person authenticated.
    pub auth_time: i64,
    /// Public id of the sign-in session, if any.
    pub session_id: Option<String>,
    /// When the family was created.
    pub created_at: i64,
    /// Absolute expiry: no refresh after this, whatever the activity.
    pub expires_at: i64,
    /// Idle expiry: moved forward by each rotation (never beyond `expires_at`).
    pub idle_expires_at: i64,
    /// Revoked (by the person, by reuse detection, by code replay, by revocation).
    pub revoked: bool,
}

impl RefreshFamily {
    /// Whether tokens of this family may be used at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        !self.revoked && now < self.expires_at && now < self.idle_expires_at
    }
}

/// One refresh token of a family, stored under its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshToken {
    /// The family it belongs to.
    pub family_id: String,
    /// When it was issued.
    pub created_at: i64,
    /// When it was exchanged for a successor (`None`: current).
    pub rotated_at: Option<i64>,
}

/// A refresh token together with its family, for introspection and revocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshLookup {
    /// The token.
    pub token: RefreshToken,
    /// Its family.
    pub family: RefreshFamily,
}

impl RefreshLookup {
    /// Whether the token itself may be presented at `now` (family active, token not rotated).
    pub fn is_active(&self, now: i64) -> bool {
        self.family.is_active(now) && self.token.rotated_at.is_none()
    }
}

/// Rotation settings, passed on each call so that configuration stays in the issuer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationPolicy {
    /// A token rotated under this policy may be presented again for this many seconds (a retry,
    /// concurrent refreshes from one client): it then leads to the family's current token
    /// ([`Rotation::Again`]) instead of revoking the family, and nothing new is minted. 0
    /// disables the grace window.
    pub grace_secs: i64,
    /// Idle lifetime: the family's idle expiry becomes `now + idle_secs` (capped at its absolute
    /// expiry) on each rotation.
    pub idle_secs: i64,
}

/// The token a rotation puts in place of the presented one.
///
/// The caller derives the new token from the presented one and a random `salt` (see
/// `token::successor`: keyed by the presented token, which only its holder knows), and the store
/// keeps the salt on the presented token's row for the grace window only. A second presentation
/// within the window thus gets the salts from which its holder derives the family's current
/// token ([`Rotation::Again`]), so a family never has two live tokens, while the store alone
/// (its rows hold hashes and salts, neither of them secret) cannot produce any token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Successor {
    /// Hash of the new token.
    pub hash: SecretHash,
    /// The salt the new token was derived with.
    pub salt: [u8; 32],
}

/// Outcome of [`Store::rotate_refresh`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The old token was current: the new token is now the family's current token.
    Rotated {
        /// The family, with its idle expiry moved forward.
        family: RefreshFamily,
    },
    /// The old token had been rotated, and its grace window is not over: nothing was added (the
    /// new token was not stored). The family's current token is the old token's successor
    /// after `salts` (one per rotation since the old token, in order); `current` is its hash.
    Again {
        /// The family, with its idle expiry moved forward.
        family: RefreshFamily,
        /// The salts of the chain from the old token to the current one.
        salts: Vec<[u8; 32]>,
        /// Hash of the family's current token.
        current: SecretHash,
    },
    /// The old token had been rotated before, outside the grace window: the whole family is now
    /// revoked (reuse detection). The caller answers `invalid_grant`.
    Reused(RefreshFamily),
    /// The family was revoked or has expired (absolute or idle); nothing changed.
    Inactive(RefreshFamily),
}

/// Remembered consent of one person for one client and one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consent {
    /// The person's subject.
    pub subject: String,
    /// The client.
    pub client_id: String,
    /// The RFC 8707 resource the consent covers (`None`: requests naming no resource). A
    /// consent never covers another resource.
    pub resource: Option<String>,
    /// The consented scopes.
    pub scopes: Vec<String>,
    /// When consent was (last) given.
    pub granted_at: i64,
}

/// The issuer's own sign-in session, stored under the hash of its cookie value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Public id (OIDC `sid`), not secret.
    pub id: String,
    /// The person's subject.
    pub subject: String,
    /// The person's claims at sign-in.
    pub claims: Claims,
    /// Which identity source authenticated the person (e.g. `static`, or an upstream's name).
    pub source: String,
    /// When the person authenticated.
    pub auth_time: i64,
    /// When the session was created.
    pub created_at: i64,
    /// When it was last used ([`Store::touch_session`]).
    pub last_seen: i64,
    /// When it expires.
    pub expires_at: i64,
}

/// A dynamically registered client (RFC 7591).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredClient {
    /// The client id the issuer assigned.
    pub client_id: String,
    /// The client metadata as registered (RFC 7591 fields), validated by the issuer.
    pub metadata: serde_json::Value,
    /// When it was registered.
    pub created_at: i64,
    /// When it last obtained a token (at registration: `created_at`), to within
    /// [`CLIENT_TOUCH_SECS`]. Unused for the configured idle time, it expires.
    pub last_used: i64,
}

/// [`Store::touch_client`] writes `last_used` only when it is at least this much older than
/// `now`, so that a busy client costs one write per interval, not one per token.
pub const CLIENT_TOUCH_SECS: i64 = 3600;

/// The origins of a registered client's redirect URIs (`metadata.redirect_uris`), in their ASCII
/// serialisation (as browsers send `Origin`): the keys of [`Store::has_client_origin`].
pub fn client_origins(metadata: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = metadata
        .get("redirect_uris")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|u| url::Url::parse(u.as_str()?).ok())
        .map(|u| u.origin())
        .filter(url::Origin::is_tuple)
        .map(|o| o.ascii_serialization())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// How many rows [`Store::cleanup_expired`] removed, per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cleanup {
    /// Authorization codes past expiry.
    pub codes: u64,
    /// Refresh families past absolute or idle expiry (with their tokens).
    pub refresh_families: u64,
    /// Revoked access-token jtis past the token's `exp`.
    pub revoked_jtis: u64,
    /// Sign-in sessions past expiry.
    pub sessions: u64,
    /// Event counters whose window has ended.
    pub counters: u64,
    /// Rotated refresh tokens whose grace window has ended (their successor salt forgotten).
    pub refresh_graces: u64,
    /// Known devices past expiry.
    pub known_devices: u64,
}

/// The issuer's persistent state. Implementations must be safe to share between replicas.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip for readiness probes.
    async fn ping(&self) -> Result<()>;

    // --- authorization codes ---

    /// Stores a new code. `Conflict` if the hash exists.
    async fn put_code(&self, hash: &SecretHash, code: &AuthCode) -> Result<()>;

    /// Reads a code without consuming it, so that the caller can check the client, redirect
    /// URI and PKCE verifier before [`Store::take_code`] (a request that fails them must not burn
    /// the code). `None` if unknown, or unused and expired at `now`; a used code is returned
    /// (its redemption then reports the replay).
    async fn peek_code(&self, hash: &SecretHash, now: i64) -> Result<Option<AuthCode>>;

    /// Atomically consumes a code. `NotFound` if unknown or expired at `now`. Of several
    /// concurrent calls exactly one gets `Fresh`; later ones get `Replayed`.
    async fn take_code(&self, hash: &SecretHash, now: i64) -> Result<TakenCode>;

    /// Records what the first use issued. Returns `false` if the code was replayed meanwhile
    /// (between `take_code` and this call): the caller must then revoke what it just issued.
    /// `NotFound` if the code row is gone.
    async fn mark_code_issued(&self, hash: &SecretHash, issued: &CodeIssued) -> Result<bool>;

    // --- refresh tokens ---

    /// Creates a family with its first token. `Conflict` if the family id or hash exists.
    async fn create_refresh_family(
        &self,
        family: &RefreshFamily,
        first_token: &SecretHash,
    ) -> Result<()>;

    /// A token with its family, whatever their state (the caller checks `is_active`).
    async fn get_refresh(&self, hash: &SecretHash) -> Result<Option<RefreshLookup>>;

    /// A family by id.
    async fn get_refresh_family(&self, id: &str) -> Result<Option<RefreshFamily>>;

    /// Atomically exchanges `old` for `new` (see [`Rotation`]). `NotFound` if `old` is unknown.
    /// Of concurrent calls with one `old`, one rotates and the others get [`Rotation::Again`]
    /// (within the grace window) or [`Rotation::Reused`]: a family has at most one current token.
    async fn rotate_refresh(
        &self,
        old: &SecretHash,
        new: &Successor,
        now: i64,
        policy: RotationPolicy,
    ) -> Result<Rotation>;

    /// Revokes a family. Returns whether it existed and was not revoked yet.
    async fn revoke_refresh_family(&self, id: &str) -> Result<bool>;

    /// Revokes every family of (subject, client). Returns how many were revoked.
    async fn revoke_refresh_for(&self, subject: &str, client_id: &str) -> Result<u64>;

    // --- revoked access tokens ---

    /// Records that the access token `jti` (valid until `exp`) is revoked. Idempotent.
    async fn revoke_access(&self, jti: &str, exp: i64) -> Result<()>;

    /// Whether the access token `jti` was revoked.
    async fn is_access_revoked(&self, jti: &str) -> Result<bool>;

    // --- consents ---

    /// Stores (replaces) the consent of (subject, client, resource).
    async fn put_consent(&self, consent: &Consent) -> Result<()>;

    /// The consent of (subject, client) for `resource` (`None`: for requests naming none).
    async fn get_consent(
        &self,
        subject: &str,
        client_id: &str,
        resource: Option<&str>,
    ) -> Result<Option<Consent>>;

    /// Every consent of a person, ordered by client id, then resource (none first).
    async fn list_consents(&self, subject: &str) -> Result<Vec<Consent>>;

    /// Deletes every consent of (subject, client), whatever the resource, and, in the same
    /// transaction, revokes the person's refresh families for that client. Returns whether a
    /// consent existed.
    async fn delete_consent(&self, subject: &str, client_id: &str) -> Result<bool>;

    // --- sign-in sessions ---

    /// Stores a new session. `Conflict` if the hash or the id exists.
    async fn put_session(&self, hash: &SecretHash, session: &Session) -> Result<()>;

    /// The session, unless unknown or expired at `now`.
    async fn get_session(&self, hash: &SecretHash, now: i64) -> Result<Option<Session>>;

    /// Sets `last_seen = now` and `expires_at` of a live session. Returns whether it was live.
    async fn touch_session(&self, hash: &SecretHash, now: i64, expires_at: i64) -> Result<bool>;

    /// Deletes a session, returning it if it existed.
    async fn delete_session(&self, hash: &SecretHash) -> Result<Option<Session>>;

    // --- dynamically registered clients ---

    /// Stores a new client, with the origins of its redirect URIs ([`client_origins`]) in the
    /// same transaction. `Conflict` if the client id exists.
    async fn put_client(&self, client: &RegisteredClient) -> Result<()>;

    /// A client by id.
    async fn get_client(&self, client_id: &str) -> Result<Option<RegisteredClient>>;

    /// Every registered client, ordered by creation time then id.
    async fn list_clients(&self) -> Result<Vec<RegisteredClient>>;

    /// Deletes a client (with its origins). Returns whether it existed.
    async fn delete_client(&self, client_id: &str) -> Result<bool>;

    /// Records that a client obtained a token at `now`: sets `last_used = now` when it is older
    /// than `now - CLIENT_TOUCH_SECS` (one indexed update that mostly changes nothing).
    async fn touch_client(&self, client_id: &str, now: i64) -> Result<()>;

    /// Whether some registered client used at or after `used_since` has a redirect URI with
    /// this origin: one index lookup, whatever the number of clients.
    async fn has_client_origin(&self, origin: &str, used_since: i64) -> Result<bool>;

    /// Deletes every registered client last used before `used_since`, in one transaction with
    /// its origins and its consents, and revokes its refresh families. Returns how many clients
    /// were deleted.
    async fn expire_clients(&self, used_since: i64) -> Result<u64>;

    // --- event counters (login throttling, the registration rate limit) ---

    /// Counts one event under `key` and returns how many the current window holds, this one
    /// included, in one atomic statement (so every replica shares the budget). A window begins
    /// with the first event after the previous window ended (or after [`Store::reset_counter`])
    /// and ends at the `window_end` given with that event; events before it ends do not move it.
    async fn count_event(&self, key: &SecretHash, now: i64, window_end: i64) -> Result<u64>;

    /// Forgets the counter `key` (a successful sign-in clears its failures).
    async fn reset_counter(&self, key: &SecretHash) -> Result<()>;

    /// Takes one event back from the counter `key` (never below zero; no-op when there is no
    /// counter). A sign-in that succeeds takes its attempt back from the budgets it shares with
    /// other people, so that only failures use them up.
    async fn uncount_event(&self, key: &SecretHash) -> Result<()>;

    // --- known devices (the sign-in throttle) ---

    /// Records `key` (a hash of a device cookie and an account) as known until `expires_at`,
    /// replacing an earlier expiry.
    async fn remember_device(&self, key: &SecretHash, expires_at: i64) -> Result<()>;

    /// Whether `key` is known at `now`.
    async fn is_known_device(&self, key: &SecretHash, now: i64) -> Result<bool>;

    // --- housekeeping ---

    /// Deletes rows expired at `now`: unused codes past expiry (consumed ones are kept
    /// [`USED_CODE_RETENTION_SECS`] longer so that a late replay is still detected), refresh
    /// families past absolute or idle expiry (with their tokens), revoked jtis past their `exp`,
    /// sessions, counters whose window has ended, known devices past expiry; and forgets the
    /// successor salts of rotated refresh tokens whose grace window has ended.
    async fn cleanup_expired(&self, now: i64) -> Result<Cleanup>;
}

/// Opens the store named by a URL: `sqlite:PATH` / `sqlite://PATH` (created if missing, WAL;
/// `sqlite::memory:` for a private in-memory database) or `postgres://…` / `postgresql://…`
/// (query parameters as sqlx reads them, e.g. `?options[search_path]=keyway`). Runs the
/// migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresStore::connect(url).await?))
    } else if let Some(path) = url
        .strip_prefix("sqlite://")
        .or(url.strip_prefix("sqlite:"))
    {
        if path == ":memory:" {
            // One private database: a pool of several connections would open several.
            return Ok(Arc::new(sqlite::SqliteStore::in_memory().await?));
        }
        Ok(Arc::new(sqlite::SqliteStore::open(path).await?))
    } else {
        Err(StoreError::Backend(
            "unsupported store URL scheme (want sqlite: or postgres://)".into(),
        ))
    }
}

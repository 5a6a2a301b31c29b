-- keyway issuer store, SQLite schema. Secrets are stored only as SHA-256 hashes (BLOB);
-- timestamps are Unix seconds; lists are space-separated; claims and metadata are JSON text.

CREATE TABLE auth_codes (
    code_hash BLOB PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    subject TEXT NOT NULL,
    scopes TEXT NOT NULL,
    resources TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT NOT NULL,
    auth_time INTEGER NOT NULL,
    session_id TEXT,
    claims TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    replayed_at INTEGER,
    issued_family_id TEXT,
    issued_access_jti TEXT,
    issued_access_exp INTEGER
);
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE refresh_families (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    scopes TEXT NOT NULL,
    resources TEXT NOT NULL,
    claims TEXT NOT NULL,
    auth_time INTEGER NOT NULL,
    session_id TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX refresh_families_subject_client ON refresh_families (subject, client_id);
CREATE INDEX refresh_families_expires_at ON refresh_families (expires_at);
CREATE INDEX refresh_families_idle_expires_at ON refresh_families (idle_expires_at);

CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL,
    family_id TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    rotated_at INTEGER
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);

CREATE TABLE revoked_access_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX revoked_access_tokens_expires_at ON revoked_access_tokens (expires_at);

CREATE TABLE consents (
    subject TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (subject, client_id)
);

CREATE TABLE sessions (
    cookie_hash BLOB PRIMARY KEY NOT NULL,
    id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    claims TEXT NOT NULL,
    source TEXT NOT NULL,
    auth_time INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE registered_clients (
    client_id TEXT PRIMARY KEY NOT NULL,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

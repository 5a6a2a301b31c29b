-- Fixed-window event counters shared by every replica: failed sign-ins per account and
-- registrations per minute. The key is the SHA-256 of a domain-separated throttle key, never
-- the email address itself; a row is deleted once its window has ended.
CREATE TABLE counters (
    key_hash BYTEA PRIMARY KEY NOT NULL,
    events BIGINT NOT NULL,
    window_end BIGINT NOT NULL
);
CREATE INDEX counters_window_end ON counters (window_end);

-- Fixed-window event counters shared by every replica: failed sign-ins per account and
-- registrations per minute. The key is the SHA-256 of a domain-separated throttle key, never
-- the email address itself; a row is deleted once its window has ended.
CREATE TABLE counters (
    key_hash BLOB PRIMARY KEY NOT NULL,
    events INTEGER NOT NULL,
    window_end INTEGER NOT NULL
);
CREATE INDEX counters_window_end ON counters (window_end);

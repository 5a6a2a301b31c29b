-- Refresh-token grace window without forks: a rotated token keeps, until `grace_until`, the
-- hash of its successor and the random salt from which the issuer derived that successor (keyed
-- by the rotated token itself, which only its holder knows). Presenting it again within the
-- window leads to the family's current token instead of minting a second one. Cleared once the
-- window is over.
ALTER TABLE refresh_tokens ADD COLUMN grace_until BIGINT;
ALTER TABLE refresh_tokens ADD COLUMN successor_hash BYTEA;
ALTER TABLE refresh_tokens ADD COLUMN successor_salt BYTEA;
CREATE INDEX refresh_tokens_grace_until ON refresh_tokens (grace_until)
    WHERE grace_until IS NOT NULL;

-- Browsers a person has signed in with (the sign-in throttle exempts them from the budgets
-- others can use up). The key is the SHA-256 of a domain-separated (device cookie, email) pair,
-- never the cookie or the email itself.
CREATE TABLE known_devices (
    key_hash BYTEA PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX known_devices_expires_at ON known_devices (expires_at);

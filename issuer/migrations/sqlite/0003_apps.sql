-- Consent per resource: a person's consent for a client covers the resource it was given for
-- ('' when the request named none). Consents recorded before this covered no resource in
-- particular: they become consents without one, so clients ask again for each resource.
CREATE TABLE consents_by_resource (
    subject TEXT NOT NULL,
    client_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    scopes TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (subject, client_id, resource)
);
INSERT INTO consents_by_resource (subject, client_id, resource, scopes, granted_at)
    SELECT subject, client_id, '', scopes, granted_at FROM consents;
DROP TABLE consents;
ALTER TABLE consents_by_resource RENAME TO consents;
CREATE INDEX consents_client_id ON consents (client_id);

-- Dynamically registered clients expire when unused: last_used moves with the tokens they get.
ALTER TABLE registered_clients ADD COLUMN last_used INTEGER NOT NULL DEFAULT 0;
UPDATE registered_clients SET last_used = created_at;
CREATE INDEX registered_clients_last_used ON registered_clients (last_used);

-- The origins of registered clients' redirect URIs (ASCII serialisation: lower-case scheme and
-- host, no default port), so that a cross-origin check looks up one origin.
CREATE TABLE registered_client_origins (
    origin TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES registered_clients (client_id) ON DELETE CASCADE,
    PRIMARY KEY (origin, client_id)
);
CREATE INDEX registered_client_origins_client_id ON registered_client_origins (client_id);
INSERT OR IGNORE INTO registered_client_origins (origin, client_id)
    SELECT CASE
            WHEN lower(o) LIKE 'https://%:443' THEN substr(lower(o), 1, length(o) - 4)
            WHEN lower(o) LIKE 'http://%:80' THEN substr(lower(o), 1, length(o) - 3)
            ELSE lower(o)
        END, client_id
    FROM (
        SELECT client_id, substr(u, 1, instr(u, '://') + 2 + CASE
                WHEN instr(rest, '/') > 0 AND (instr(rest, '?') = 0 OR instr(rest, '/') < instr(rest, '?'))
                    THEN instr(rest, '/') - 1
                WHEN instr(rest, '?') > 0 THEN instr(rest, '?') - 1
                ELSE length(rest)
            END) AS o
        FROM (
            SELECT r.client_id, j.value AS u,
                substr(j.value, instr(j.value, '://') + 3) AS rest
            FROM registered_clients r, json_each(r.metadata, '$.redirect_uris') j
            WHERE j.type = 'text' AND instr(j.value, '://') > 0
        )
    );

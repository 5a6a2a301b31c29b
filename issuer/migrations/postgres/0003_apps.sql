-- Consent per resource: a person's consent for a client covers the resource it was given for
-- ('' when the request named none). Consents recorded before this covered no resource in
-- particular: they become consents without one, so clients ask again for each resource.
ALTER TABLE consents ADD COLUMN resource TEXT NOT NULL DEFAULT '';
ALTER TABLE consents DROP CONSTRAINT consents_pkey;
ALTER TABLE consents ADD PRIMARY KEY (subject, client_id, resource);
CREATE INDEX consents_client_id ON consents (client_id);

-- Dynamically registered clients expire when unused: last_used moves with the tokens they get.
ALTER TABLE registered_clients ADD COLUMN last_used BIGINT NOT NULL DEFAULT 0;
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
INSERT INTO registered_client_origins (origin, client_id)
    SELECT DISTINCT regexp_replace(
            regexp_replace(lower(substring(u FROM '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]+')),
                '^(https://.*):443$', '\1'),
            '^(http://.*):80$', '\1'),
        client_id
    FROM (
        SELECT client_id, json_array_elements_text(metadata::json -> 'redirect_uris') AS u
        FROM registered_clients
    ) AS uris
    WHERE substring(u FROM '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]+') IS NOT NULL
ON CONFLICT DO NOTHING;

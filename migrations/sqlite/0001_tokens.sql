-- Admin API access tokens, one per shop and mode (and staff member for online tokens).
CREATE TABLE access_tokens (
    shop                     TEXT    NOT NULL,
    access_mode              TEXT    NOT NULL CHECK (access_mode IN ('offline', 'online')),
    user_id                  INTEGER NOT NULL DEFAULT 0,   -- 0 for offline tokens
    token                    TEXT    NOT NULL,
    scope                    TEXT    NOT NULL DEFAULT '',
    expires_at               INTEGER,                      -- unix seconds; NULL: never expires
    refresh_token            TEXT,
    refresh_token_expires_at INTEGER,
    user_json                TEXT,                         -- the online token's staff member
    updated_at               INTEGER NOT NULL,
    PRIMARY KEY (shop, access_mode, user_id)
);

-- Who is refreshing a token right now: makes refresh single-flight across processes.
CREATE TABLE refresh_leases (
    shop        TEXT    NOT NULL,
    access_mode TEXT    NOT NULL,
    user_id     INTEGER NOT NULL,
    holder      TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (shop, access_mode, user_id)
);

-- Who is refreshing a provider token right now: makes the refresh single-flight across
-- processes (a crashed holder's lease runs out).
CREATE TABLE provider_refresh_leases (
    shop       TEXT    NOT NULL,
    provider   TEXT    NOT NULL,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,                -- unix seconds
    PRIMARY KEY (shop, provider)
);

-- Tokens a provider's callback obtained, not linked yet: the embedded app links one when a
-- session token of the same shop and staff member confirms it, before `expires_at`. Confirmed
-- and expired rows are deleted.
CREATE TABLE provider_pending_connections (
    id               TEXT    PRIMARY KEY,       -- 256 random bits, in the redirect into the admin
    shop             TEXT    NOT NULL,
    provider         TEXT    NOT NULL,
    user_id          TEXT,                      -- the `sub` of the session token that started it
    access_token     TEXT    NOT NULL,
    refresh_token    TEXT,
    scope            TEXT    NOT NULL DEFAULT '',
    token_expires_at INTEGER,                   -- unix seconds; NULL: never expires
    expires_at       INTEGER NOT NULL           -- unix seconds: when the confirmation window closes
);
CREATE INDEX provider_pending_connections_expires_at ON provider_pending_connections (expires_at);

-- Access tokens of third-party OAuth2 providers, one per shop and provider.
CREATE TABLE provider_tokens (
    shop          TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    access_token  TEXT    NOT NULL,
    refresh_token TEXT,
    scope         TEXT    NOT NULL DEFAULT '',
    expires_at    INTEGER,                      -- unix seconds; NULL: never expires
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (shop, provider)
);

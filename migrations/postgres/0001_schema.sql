-- The whole schema on PostgreSQL, as the SQLite migrations (migrations/sqlite) leave it; read
-- those for what each table and column is for. Integers are BIGINT (the app binds i64).

CREATE TABLE access_tokens (
    shop                     TEXT   NOT NULL,
    access_mode              TEXT   NOT NULL CHECK (access_mode IN ('offline', 'online')),
    user_id                  BIGINT NOT NULL DEFAULT 0,
    token                    TEXT   NOT NULL,
    scope                    TEXT   NOT NULL DEFAULT '',
    expires_at               BIGINT,
    refresh_token            TEXT,
    refresh_token_expires_at BIGINT,
    user_json                TEXT,
    updated_at               BIGINT NOT NULL,
    key_id                   TEXT,
    obtained_at              BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (shop, access_mode, user_id)
);

CREATE TABLE refresh_leases (
    shop        TEXT   NOT NULL,
    access_mode TEXT   NOT NULL,
    user_id     BIGINT NOT NULL,
    holder      TEXT   NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (shop, access_mode, user_id)
);

CREATE TABLE webhook_deliveries (
    webhook_id  TEXT    PRIMARY KEY,
    topic       TEXT    NOT NULL,
    shop        TEXT    NOT NULL,
    received_at BIGINT  NOT NULL,
    done        BOOLEAN NOT NULL DEFAULT TRUE,
    claim_id    TEXT
);
CREATE INDEX webhook_deliveries_received_at ON webhook_deliveries (received_at);

CREATE TABLE provider_tokens (
    shop          TEXT   NOT NULL,
    provider      TEXT   NOT NULL,
    access_token  TEXT   NOT NULL,
    refresh_token TEXT,
    scope         TEXT   NOT NULL DEFAULT '',
    expires_at    BIGINT,
    updated_at    BIGINT NOT NULL,
    key_id        TEXT,
    PRIMARY KEY (shop, provider)
);

CREATE TABLE provider_refresh_leases (
    shop       TEXT   NOT NULL,
    provider   TEXT   NOT NULL,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (shop, provider)
);

CREATE TABLE provider_pending_connections (
    id               TEXT   PRIMARY KEY,
    shop             TEXT   NOT NULL,
    provider         TEXT   NOT NULL,
    user_id          TEXT,
    access_token     TEXT   NOT NULL,
    refresh_token    TEXT,
    scope            TEXT   NOT NULL DEFAULT '',
    token_expires_at BIGINT,
    expires_at       BIGINT NOT NULL,
    key_id           TEXT
);
CREATE INDEX provider_pending_connections_expires_at ON provider_pending_connections (expires_at);
-- The uninstall deletes by shop.
CREATE INDEX provider_pending_connections_shop ON provider_pending_connections (shop);

-- Server-side sessions, in the schema and table tower-sessions-sqlx-store's PostgresStore reads
-- (created here, under the migration lock, rather than by the store at every start).
CREATE SCHEMA IF NOT EXISTS tower_sessions;
CREATE TABLE IF NOT EXISTS tower_sessions.session (
    id          TEXT        PRIMARY KEY NOT NULL,
    data        BYTEA       NOT NULL,
    expiry_date TIMESTAMPTZ NOT NULL
);

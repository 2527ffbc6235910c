-- Server-side sessions (tower-sessions-sqlx-store's schema, which the app never creates itself):
-- the OAuth state of top-level flows. Expired rows are deleted at start and every hour.
CREATE TABLE IF NOT EXISTS tower_sessions (
    id          TEXT    PRIMARY KEY NOT NULL,
    data        BLOB    NOT NULL,
    expiry_date INTEGER NOT NULL
);

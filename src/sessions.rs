//! Server-side sessions (tower-sessions, stored in the app's database), for top-level
//! flows only: the OAuth `state` of the provider-connection flow, which only a verified session
//! token can start. (The install flow keeps its state in a signed cookie instead: anyone can
//! start it.) Embedded App Home requests never get this layer: the admin iframe is third-party
//! to the browser, so they authenticate with session tokens instead.

use serde::de::DeserializeOwned;
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion};
use tower_sessions::{Expiry, Session, SessionManagerLayer, SessionStore};

use time::OffsetDateTime;

use crate::db::{Db, on_pool};

pub use tower_sessions::session::Error as SessionError;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "shopify_app_session";
/// How long a session lives after its last change.
pub const LIFETIME: time::Duration = time::Duration::hours(1);

/// The sessions' store: the `tower_sessions` table on SQLite (`migrations/sqlite`), the
/// `tower_sessions.session` table on PostgreSQL (`migrations/postgres`). Rows are those of
/// `tower-sessions-sqlx-store`, which this replaces (its sqlx with default features brought in
/// sqlx's proc-macro crate and with it a second build of SQLite and both drivers): the record
/// in MessagePack, its expiry as sqlx writes an `OffsetDateTime`, so sessions written by either
/// read in the other.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
}

impl Store {
    /// The store in `db`.
    pub fn new(db: &Db) -> Self {
        Self { db: db.clone() }
    }

    /// The table, as each backend names it.
    fn table(&self) -> &'static str {
        match self.db {
            Db::Sqlite { .. } => "tower_sessions",
            Db::Postgres(_) => r#""tower_sessions"."session""#,
        }
    }

    /// Inserts `record` when its id is free (`on_conflict`: nothing, or an update); returns
    /// whether a row was written.
    async fn write(&self, record: &Record, on_conflict: &str) -> session_store::Result<bool> {
        let query = format!(
            "INSERT INTO {} (id, data, expiry_date) VALUES ($1, $2, $3) ON CONFLICT (id) {on_conflict}",
            self.table()
        );
        let data = rmp_serde::to_vec(record).map_err(|error| session_store::Error::Encode(error.to_string()))?;
        let written = on_pool!(&self.db, pool => sqlx::query(&query)
            .bind(record.id.to_string())
            .bind(&data)
            .bind(record.expiry_date)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
        .map_err(backend)?;
        Ok(written > 0)
    }
}

fn backend(error: sqlx::Error) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

#[async_trait::async_trait]
impl SessionStore for Store {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // An id already taken (128 random bits: practically never) gets a new one.
        while !self.write(record, "DO NOTHING").await? {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.write(record, "DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date").await.map(drop)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let query = format!("SELECT data FROM {} WHERE id = $1 AND expiry_date > $2", self.table());
        let data: Option<Vec<u8>> = on_pool!(&self.db, pool => sqlx::query_scalar(&query)
            .bind(id.to_string())
            .bind(OffsetDateTime::now_utc())
            .fetch_optional(pool)
            .await)
        .map_err(backend)?;
        data.map(|data| rmp_serde::from_slice(&data).map_err(|error| session_store::Error::Decode(error.to_string())))
            .transpose()
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let query = format!("DELETE FROM {} WHERE id = $1", self.table());
        on_pool!(&self.db, pool => sqlx::query(&query).bind(id.to_string()).execute(pool).await.map(drop))
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl ExpiredDeletion for Store {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match &self.db {
            Db::Sqlite { pool, .. } => {
                sqlx::query("DELETE FROM tower_sessions WHERE datetime(expiry_date) < datetime('now')")
                    .execute(pool)
                    .await
                    .map(drop)
            }
            Db::Postgres(pool) => {
                sqlx::query(r#"DELETE FROM "tower_sessions"."session" WHERE expiry_date < (now() at time zone 'utc')"#)
                    .execute(pool)
                    .await
                    .map(drop)
            }
        }
        .map_err(backend)?;
        Ok(())
    }
}

/// The session layer over `db`'s [`Store`]: cookies `HttpOnly`, `SameSite=Lax` (sent on the
/// top-level redirect back from Shopify or a provider), `Secure` unless `secure` is false
/// (plain-http localhost only), expiring after [`LIFETIME`].
pub fn layer(db: &Db, secure: bool) -> SessionManagerLayer<Store> {
    SessionManagerLayer::new(Store::new(db))
        .with_name(COOKIE_NAME)
        .with_secure(secure)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(LIFETIME))
}

/// Removes `key` from the session and returns its value, persisting the removal at once, so the
/// value can be used only once, whatever the response turns out to be.
pub async fn take<T: DeserializeOwned>(session: &Session, key: &str) -> Result<Option<T>, SessionError> {
    let value = session.remove::<T>(key).await?;
    if value.is_some() {
        session.save().await?;
    }
    Ok(value)
}

/// 256 random bits from the thread's CSPRNG, URL-safe base64 (43 characters): OAuth `state`.
pub fn random_token() -> String {
    oauth2::CsrfToken::new_random_len(32).into_secret()
}

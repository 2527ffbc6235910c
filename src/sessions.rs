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
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use crate::db::Db;

pub use tower_sessions::session::Error as SessionError;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "shopify_app_session";
/// How long a session lives after its last change.
pub const LIFETIME: time::Duration = time::Duration::hours(1);

/// The sessions' store: the `tower_sessions` table on SQLite (`migrations/sqlite`), the
/// `tower_sessions.session` table on PostgreSQL (`migrations/postgres`).
#[derive(Debug, Clone)]
pub enum Store {
    /// On SQLite.
    Sqlite(SqliteStore),
    /// On PostgreSQL.
    Postgres(PostgresStore),
}

impl Store {
    /// The store in `db`.
    pub fn new(db: &Db) -> Self {
        match db {
            Db::Sqlite { pool, .. } => Self::Sqlite(SqliteStore::new(pool.clone())),
            Db::Postgres(pool) => Self::Postgres(PostgresStore::new(pool.clone())),
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for Store {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(store) => store.create(record).await,
            Self::Postgres(store) => store.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(store) => store.save(record).await,
            Self::Postgres(store) => store.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Self::Sqlite(store) => store.load(id).await,
            Self::Postgres(store) => store.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Self::Sqlite(store) => store.delete(id).await,
            Self::Postgres(store) => store.delete(id).await,
        }
    }
}

#[async_trait::async_trait]
impl ExpiredDeletion for Store {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            Self::Sqlite(store) => store.delete_expired().await,
            Self::Postgres(store) => store.delete_expired().await,
        }
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

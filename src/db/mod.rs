//! The database: a SQLite file (the default: one machine) or a PostgreSQL server (several
//! instances), chosen by `DATABASE_URL`, created where it can be and migrated at start.
//!
//! Every store writes its SQL once, with PostgreSQL's `$1`, `$2`... parameters, which SQLite
//! reads too, and runs it on either pool with [`on_pool!`](crate::db::on_pool). On SQLite the
//! hot writes go through the [`Writer`] thread instead of the pool.

mod migrations;
mod writer;

pub use migrations::Embedded;
pub use writer::Writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::tokens::StoreError;

/// The migrations of a backend, built into the binary. A database that holds more (a newer
/// instance of a rolling deploy ran them) is fine: this instance still starts.
async fn migrations(postgres: bool) -> Result<Migrator, MigrateError> {
    let mut migrator = Migrator::new(if postgres { Embedded::POSTGRES } else { Embedded::SQLITE }).await?;
    migrator.set_ignore_missing(true);
    Ok(migrator)
}

/// How long a request waits for a free connection before it fails (503).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The app's database, cheap to clone.
#[derive(Clone, Debug)]
pub enum Db {
    /// A SQLite file: a pool of readers, and one writer thread for the hot writes.
    Sqlite {
        /// Readers and the occasional write.
        pool: SqlitePool,
        /// The webhook path's writes, group-committed.
        writer: Writer,
    },
    /// A PostgreSQL server, which several app instances share.
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the database's own pool (`&SqlitePool` or `&PgPool`): one
/// source for both backends, type-checked against each.
///
/// ```ignore
/// let deleted = on_pool!(&self.db, pool => sqlx::query("DELETE FROM t WHERE shop = $1").bind(shop).execute(pool).await)?;
/// ```
#[macro_export]
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite { pool: $pool, .. } => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}
pub use on_pool;

/// Declares a struct of named fields and implements [`sqlx::FromRow`] for it on either backend,
/// each field read from the column of the same name: what `#[derive(sqlx::FromRow)]` writes,
/// without sqlx's proc-macro crate (its build compiles SQLite, both drivers and rustls a second
/// time; see `build.rs`). A field that is a row of its own (the derive's `#[sqlx(flatten)]`)
/// takes a hand-written `impl FromRow`.
///
/// ```ignore
/// from_row! {
///     #[derive(Debug)]
///     pub struct Product { pub id: i64, pub title: Option<String> }
/// }
/// let products: Vec<Product> = on_pool!(&db, pool => sqlx::query_as("SELECT id, title FROM products").fetch_all(pool).await)?;
/// ```
#[macro_export]
macro_rules! from_row {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$field_meta:meta])* $field_vis:vis $field:ident: $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $($(#[$field_meta])* $field_vis $field: $ty),*
        }

        impl<'r, R: ::sqlx::Row> ::sqlx::FromRow<'r, R> for $name
        where
            &'r str: ::sqlx::ColumnIndex<R>,
            $($ty: ::sqlx::Decode<'r, R::Database> + ::sqlx::Type<R::Database>,)*
        {
            fn from_row(row: &'r R) -> ::std::result::Result<Self, ::sqlx::Error> {
                Ok(Self { $($field: ::sqlx::Row::try_get(row, stringify!($field))?),* })
            }
        }
    };
}
pub use from_row;

impl Db {
    /// Whether `database_url` names a PostgreSQL server (`postgres://` or `postgresql://`).
    pub fn is_postgres(database_url: &str) -> bool {
        database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
    }

    /// Whether the database answers a query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
    }

    /// Whether every migration of this build is applied (a newer instance may have applied
    /// more: that is fine).
    pub async fn migrated(&self) -> Result<bool, sqlx::Error> {
        let applied: Vec<i64> = on_pool!(self, pool => sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await)?;
        let postgres = matches!(self, Db::Postgres(_));
        Ok(migrations(postgres).await?.iter().all(|migration| applied.contains(&migration.version)))
    }

    /// Closes every connection (and stops the SQLite writer once its last handle is dropped).
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}

/// `database_url` fit for a log line: a PostgreSQL URL loses its password (in the user part or
/// as a `password` parameter); one that does not parse shows its scheme only.
pub fn redacted(database_url: &str) -> String {
    if !Db::is_postgres(database_url) {
        return database_url.to_owned();
    }
    let Ok(mut url) = url::Url::parse(database_url) else {
        return "postgres://(unreadable URL: check its percent-encoding)".to_owned();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(name, value)| {
            let value = if name.eq_ignore_ascii_case("password") { "***".into() } else { value.into_owned() };
            (name.into_owned(), value)
        })
        .collect();
    if !pairs.is_empty() {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// Opens the database at `database_url` and applies the migrations of its backend
/// (`migrations/sqlite` or `migrations/postgres`). A SQLite file is created if missing, private
/// to the app's user; PostgreSQL gets a pool of `pool_size` connections.
pub async fn connect(database_url: &str, pool_size: u32) -> Result<Db, StoreError> {
    if Db::is_postgres(database_url) {
        let options = PgConnectOptions::from_str(database_url)?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        let migrator = migrations(true).await.map_err(sqlx::Error::from)?;
        migrator.run(&pool).await.map_err(sqlx::Error::from)?;
        return Ok(Db::Postgres(pool));
    }
    let options = SqliteConnectOptions::from_str(database_url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    if is_in_memory(database_url) {
        return Err(sqlx::Error::Configuration("an in-memory database has no file for the writer".into()).into());
    }
    create_private(options.get_filename()).map_err(sqlx::Error::Io)?;
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.clone())
        .await?;
    let migrator = migrations(false).await.map_err(sqlx::Error::from)?;
    migrator.run(&pool).await.map_err(sqlx::Error::from)?;
    let writer = Writer::open(options.get_filename())?;
    Ok(Db::Sqlite { pool, writer })
}

/// `sqlite::memory:` or `?mode=memory`: nothing on disk.
pub fn is_in_memory(database_url: &str) -> bool {
    database_url.contains(":memory:") || database_url.contains("mode=memory")
}

/// The database holds access tokens: only the app's own user may read it. Before SQLite opens
/// it, creates the missing folders (0700) and the file (0600), or restricts an existing file
/// and the `-wal` and `-shm` files an earlier run left; SQLite gives the side files it creates
/// the database file's permissions. An existing folder is left as it is (it may be shared).
fn create_private(path: &Path) -> std::io::Result<()> {
    let folder = path.parent().filter(|folder| !folder.as_os_str().is_empty());
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        if let Some(folder) = folder {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(folder)?;
        }
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            // Some mounted file systems refuse a chmod: say so, but start.
            match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(%error, file = %Path::new(&file).display(), "cannot make the database private");
                }
                _ => {}
            }
        }
    }
    #[cfg(not(unix))]
    if let Some(folder) = folder {
        std::fs::create_dir_all(folder)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_database_url_shows_no_password() {
        for url in [
            "postgres://app:s3cret@db:5432/app",
            "postgres://db/app?sslmode=require&password=s3cret",
            "postgresql://app:s3cr/et@db:5432/app",
            "postgres://app:p#s3cret@db/app",
        ] {
            let shown = redacted(url);
            assert!(!shown.contains("s3cr"), "{url} shown as {shown}");
        }
        assert_eq!(redacted("postgres://app:s3cret@db:5432/app"), "postgres://app:***@db:5432/app");
        assert_eq!(redacted("sqlite:data/app.db"), "sqlite:data/app.db");
    }
}

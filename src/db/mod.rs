//! The database: one SQLite pool, created (file and folder included) and migrated at start,
//! and the [`Writer`] for the hot write paths.

mod writer;

pub use writer::Writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// Opens the database at `database_url`, creating it if missing (see [`create_private`]), and
/// applies the migrations in `migrations/`.
pub async fn connect(database_url: &str) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(database_url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    if !is_in_memory(database_url) {
        create_private(options.get_filename())?;
    }
    let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
    sqlx::migrate!().run(&pool).await?;
    Ok(pool)
}

/// The [`Writer`] of the database at `database_url`, which [`connect`] created and migrated.
pub fn open_writer(database_url: &str) -> Result<Writer, crate::tokens::StoreError> {
    if is_in_memory(database_url) {
        return Err(sqlx::Error::Configuration("an in-memory database has no file for the writer".into()).into());
    }
    let options = SqliteConnectOptions::from_str(database_url)?;
    Writer::open(options.get_filename())
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

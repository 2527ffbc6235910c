//! The migrations of each backend, compiled into the binary: `build.rs` lists the `.sql` files
//! of `migrations/sqlite` and `migrations/postgres`, and they are read here by sqlx's rules for
//! a migrations folder (`<VERSION>_<DESCRIPTION>.sql`, `.up.sql`/`.down.sql` for reversible
//! ones, `-- no-transaction` as the first line to run outside a transaction), so a database
//! migrated by an earlier build (with `sqlx::migrate!`) sees the same versions and checksums.
//!
//! `sqlx::migrate!` did the same at compile time, but it needs sqlx's proc-macro crate, whose
//! build compiles SQLite, both drivers and rustls a second time.

use std::borrow::Cow;
use std::future::{Future, ready};
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};

mod files {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// The migration files of one backend, as `(file name, SQL)`, built into the binary.
#[derive(Debug, Clone, Copy)]
pub struct Embedded(&'static [(&'static str, &'static str)]);

impl Embedded {
    /// `migrations/sqlite`.
    pub const SQLITE: Self = Self(files::SQLITE);
    /// `migrations/postgres`.
    pub const POSTGRES: Self = Self(files::POSTGRES);

    /// The migrations, by version. A file whose name does not start with `<VERSION>_` is
    /// ignored, as sqlx ignores it; a version that is not an integer is an error.
    pub fn migrations(self) -> Result<Vec<Migration>, BoxDynError> {
        let mut migrations = Vec::with_capacity(self.0.len());
        for &(file_name, sql) in self.0 {
            let Some((version, rest)) = file_name.split_once('_') else {
                continue;
            };
            if !rest.ends_with(".sql") {
                continue;
            }
            let version: i64 = version.parse().map_err(|_| {
                format!("error parsing migration filename {file_name:?}; expected integer version prefix (e.g. `01_foo.sql`)")
            })?;
            let migration_type = MigrationType::from_filename(rest);
            let description = rest.trim_end_matches(migration_type.suffix()).replace('_', " ");
            let no_tx = sql.starts_with("-- no-transaction");
            migrations.push(Migration::new(
                version,
                Cow::Owned(description),
                migration_type,
                Cow::Borrowed(sql),
                no_tx,
            ));
        }
        migrations.sort_by_key(|migration| migration.version);
        Ok(migrations)
    }
}

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send>> {
        Box::pin(ready(self.migrations()))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use sqlx::migrate::Migrator;

    use super::*;

    /// What sqlx itself reads from the folder (the same reading `sqlx::migrate!` made).
    async fn from_folder(backend: &str) -> Vec<Migration> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
        let migrator = Migrator::new(dir).await.unwrap_or_else(|error| panic!("{backend}: {error}"));
        migrator.iter().cloned().collect()
    }

    #[tokio::test]
    async fn the_embedded_migrations_are_the_folders_as_sqlx_reads_them() {
        for (backend, embedded) in [("sqlite", Embedded::SQLITE), ("postgres", Embedded::POSTGRES)] {
            let ours = embedded.migrations().unwrap();
            let theirs = from_folder(backend).await;
            assert!(!ours.is_empty(), "{backend}: no migration embedded");
            assert_eq!(ours.len(), theirs.len(), "{backend}: every file is embedded");
            for (ours, theirs) in ours.iter().zip(&theirs) {
                assert_eq!(
                    (ours.version, &ours.description, ours.migration_type, &ours.sql, &ours.checksum, ours.no_tx),
                    (
                        theirs.version,
                        &theirs.description,
                        theirs.migration_type,
                        &theirs.sql,
                        &theirs.checksum,
                        theirs.no_tx
                    ),
                    "{backend}"
                );
            }
        }
    }

    #[test]
    fn file_names_are_read_as_sqlx_reads_them() {
        let files: &'static [(&str, &str)] = &[
            ("0002_second_step.up.sql", "-- no-transaction\nCREATE INDEX i ON t (a);"),
            ("0001_first.sql", "CREATE TABLE t (a INTEGER);"),
            ("0002_second_step.down.sql", "DROP INDEX i;"),
            ("README.sql", "not a migration"),
        ];
        let read: Vec<_> = Embedded(files)
            .migrations()
            .unwrap()
            .into_iter()
            .map(|m| (m.version, m.description.into_owned(), m.migration_type, m.no_tx))
            .collect();
        assert_eq!(read.len(), 3);
        assert_eq!(read[0], (1, "first".to_owned(), MigrationType::Simple, false));
        assert!(read[1..].contains(&(2, "second step".to_owned(), MigrationType::ReversibleUp, true)));
        assert!(read[1..].contains(&(2, "second step".to_owned(), MigrationType::ReversibleDown, false)));
        assert!(Embedded(&[("x_y.sql", "")]).migrations().is_err());
    }
}

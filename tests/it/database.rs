//! The database file on disk: created private before SQLite writes anything.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use shopify_app_rust::db;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|error| panic!("{}: {error}", path.display())).permissions().mode() & 0o777
}

#[tokio::test]
async fn a_new_database_and_its_folders_are_created_private() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state/data/app.db");
    let Ok(db::Db::Sqlite { pool, .. }) = db::connect(&format!("sqlite:{}", file.display()), 1).await else {
        panic!("the SQLite file opens");
    };
    sqlx::query(
        "INSERT INTO webhook_deliveries (webhook_id, topic, shop, received_at, done) VALUES ('w', 't', 's', 0, 1)",
    )
    .execute(&pool)
    .await
    .unwrap();

    assert_eq!(mode(&dir.path().join("state")), 0o700);
    assert_eq!(mode(&dir.path().join("state/data")), 0o700);
    // The side files exist while the pool is open, with what SQLite gave them.
    for name in ["app.db", "app.db-wal", "app.db-shm"] {
        assert_eq!(mode(&dir.path().join("state/data").join(name)), 0o600, "{name}");
    }
    pool.close().await;
}

#[tokio::test]
async fn an_existing_readable_database_is_made_private_and_its_shared_folder_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.path().join("app.db");
    for name in ["app.db", "app.db-wal"] {
        std::fs::write(dir.path().join(name), b"").unwrap();
        std::fs::set_permissions(dir.path().join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let Ok(db::Db::Sqlite { pool, .. }) = db::connect(&format!("sqlite:{}", file.display()), 1).await else {
        panic!("the SQLite file opens");
    };
    assert_eq!(mode(dir.path()), 0o755);
    for name in ["app.db", "app.db-wal", "app.db-shm"] {
        assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
    }
    pool.close().await;
}

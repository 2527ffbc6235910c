//! Lists the SQL migrations (`migrations/sqlite/*.sql`, `migrations/postgres/*.sql`) for
//! `src/db/migrations.rs`, which compiles them into the binary with `include_str!`.
//!
//! This replaces `sqlx::migrate!`: that macro lives in sqlx's proc-macro crate, whose build
//! compiles SQLite, both drivers and rustls a second time (for the compiler), about half the
//! work of a cold build. A new migration file is picked up by the next build.

use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let mut code = String::new();
    for backend in ["sqlite", "postgres"] {
        let dir = manifest_dir.join("migrations").join(backend);
        // A folder: cargo runs this again when a file in it is added, removed or changed.
        println!("cargo:rerun-if-changed={}", dir.display());
        code += &format!("pub(super) const {}: &[(&str, &str)] = &[\n", backend.to_uppercase());
        for path in sql_files(&dir) {
            let name = path.file_name().and_then(|name| name.to_str()).expect("migration file names are UTF-8");
            let path = path.to_str().expect("the project's path is UTF-8");
            code += &format!("    ({name:?}, include_str!({path:?})),\n");
        }
        code += "];\n";
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("migrations.rs");
    fs::write(out, code).expect("OUT_DIR is writable");
}

/// The files of `dir` whose names end with `.sql`, by name.
fn sql_files(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a readable migrations folder").path())
        .filter(|path| path.is_file() && path.to_str().is_some_and(|path| path.ends_with(".sql")))
        .collect();
    files.sort();
    files
}

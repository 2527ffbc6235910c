//! `shopify app dev`'s command (`commands.dev` in shopify.web.toml): builds the app, runs it, and
//! when a file it is built from changes, builds it again and restarts it, so an edit shows in the
//! admin without restarting `shopify app dev` (whose tunnel and preview stay up). While a build
//! runs the previous app keeps answering, and a build that fails leaves it running. Files are
//! polled twice a second: nothing else to install. `cargo run` alone still runs the app once.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant, SystemTime};

/// What the app is built from (askama templates, locales and migrations are compiled in), and
/// `.env` is read at start: a change restarts the app.
const WATCHED: &[&str] = &["src", "templates", "locales", "migrations", "build.rs", "Cargo.toml", "Cargo.lock", ".env"];
/// The app's binary.
const APP: &str = env!("CARGO_PKG_NAME");
/// How often the files are looked at.
const POLL: Duration = Duration::from_millis(500);
/// How long the app has to stop after SIGTERM (its graceful shutdown) before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(mut stop_requested) = StopRequests::new() else {
        eprintln!("dev: cannot listen for Ctrl-C or SIGTERM");
        return ExitCode::FAILURE;
    };
    let mut seen = files();
    let mut app = if build() { start() } else { None };
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            () = stop_requested.next() => {
                stop(app.take());
                return ExitCode::SUCCESS;
            }
            _ = tick.tick() => {}
        }
        if let Some(child) = &mut app
            && let Ok(Some(status)) = child.try_wait()
        {
            eprintln!("dev: the app stopped ({status}); waiting for a change to build it again");
            app = None;
        }
        if files() == seen {
            continue;
        }
        // An editor may write a file in several steps: let it finish.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = files();
        let env_changed = stamp_of(&now, Path::new(".env")) != stamp_of(&seen, Path::new(".env"));
        seen = now;
        eprintln!("dev: a change; building");
        // Windows does not let a running program's file be replaced.
        if cfg!(windows) {
            stop(app.take());
        }
        let built_before = app_binary().and_then(|exe| exe.metadata().ok()?.modified().ok());
        if build() {
            let built_now = app_binary().and_then(|exe| exe.metadata().ok()?.modified().ok());
            // A save that changed nothing compiled (a comment in Cargo.toml, the same text
            // again) leaves the running app alone.
            if app.is_none() || env_changed || built_now != built_before {
                stop(app.take());
                app = start();
            }
        } else if app.is_some() {
            eprintln!("dev: the build failed; the previous build keeps running");
        } else {
            eprintln!("dev: the build failed; waiting for a change");
        }
    }
}

/// A watched file: its path, modification time and size.
type Stamp = (PathBuf, Option<SystemTime>, u64);

/// Every watched file with its modification time and size, in a fixed order. Inside the
/// folders, only the kinds of file the build reads count: an editor's swap, backup and
/// temporary files (`.x.swp`, `x~`, `#x#`) do not; links are not followed.
fn files() -> Vec<Stamp> {
    const BUILT_FROM: &[&str] = &["rs", "html", "json", "sql", "toml", "lock"];
    fn walk(path: &Path, top: bool, out: &mut Vec<Stamp>) {
        let Ok(metadata) = path.symlink_metadata() else { return };
        if metadata.is_dir() {
            let Ok(entries) = path.read_dir() else { return };
            for entry in entries.flatten() {
                walk(&entry.path(), false, out);
            }
        } else if metadata.is_file() {
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            let extension = path.extension().and_then(|extension| extension.to_str()).unwrap_or_default();
            if top || (!name.starts_with('.') && BUILT_FROM.contains(&extension)) {
                out.push((path.to_owned(), metadata.modified().ok(), metadata.len()));
            }
        }
    }
    let mut out = Vec::new();
    for path in WATCHED {
        walk(Path::new(path), true, &mut out);
    }
    out.sort();
    out
}

/// `path`'s entry in a list of watched files, if it exists.
fn stamp_of<'a>(files: &'a [Stamp], path: &Path) -> Option<&'a Stamp> {
    files.iter().find(|(file, _, _)| file == path)
}

/// `cargo build --bin <the app>`, its output shown; whether it succeeded.
fn build() -> bool {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    // Without what `cargo run` set for this program: build scripts that read such a variable
    // (ring's reads CARGO_PKG_NAME) would otherwise see it change between this build and the
    // next `cargo run`, and each would rebuild them and everything above them.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_by_cargo_run =
            ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_NAME", "CARGO_BIN_NAME", "CARGO_PRIMARY_PACKAGE", "OUT_DIR"]
                .iter()
                .any(|prefix| name.starts_with(prefix));
        if set_by_cargo_run {
            command.env_remove(name.as_ref());
        }
    }
    command
        .args(["build", "--bin", APP])
        .status()
        .inspect_err(|error| eprintln!("dev: cannot run cargo: {error}"))
        .is_ok_and(|status| status.success())
}

/// The app's binary, next to this program.
fn app_binary() -> Option<PathBuf> {
    Some(std::env::current_exe().ok()?.with_file_name(format!("{APP}{}", std::env::consts::EXE_SUFFIX)))
}

/// Starts the built app, with this process's environment.
fn start() -> Option<Child> {
    let exe = app_binary()?;
    Command::new(&exe).spawn().inspect_err(|error| eprintln!("dev: cannot start {}: {error}", exe.display())).ok()
}

/// Stops the app: SIGTERM (its graceful shutdown) where there is one, killed after
/// [`STOP_GRACE`] or at once elsewhere.
fn stop(app: Option<Child>) {
    let Some(mut child) = app else { return };
    if cfg!(unix) && Command::new("kill").args(["-TERM", &child.id().to_string()]).status().is_ok_and(|s| s.success()) {
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Ctrl-C, and SIGTERM where there is one (what `shopify app dev` sends when it stops). On Unix
/// both are listened for from the start, so one that comes during a build is not lost.
struct StopRequests {
    #[cfg(unix)]
    signals: (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
}

impl StopRequests {
    fn new() -> Option<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Some(Self { signals: (signal(SignalKind::interrupt()).ok()?, signal(SignalKind::terminate()).ok()?) })
        }
        #[cfg(not(unix))]
        {
            Some(Self {})
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            let (interrupt, terminate) = &mut self.signals;
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

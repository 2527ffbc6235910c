//! Conformance runner: plays a folder of conformance cases through the auth core.
//!
//! ```sh
//! cargo run --quiet --example conformance -- CASES_DIR OUT_DIR
//! ```
//!
//! For every `CASES_DIR/NAME.json` it writes `OUT_DIR/NAME.json` with the outcome
//! (`{result, result_type, sleeps, http_requests}`) and prints one summary line. The format is
//! described in `shared/reference/CONFORMANCE.md`. It never touches the network (Shopify's
//! answers are scripted by each case) and never sleeps (the clock is frozen at the case's `now`
//! and records the waits instead). Where the project's decisions differ from Shopify's
//! reference package, the outcome follows the decisions: it reports the module as it is.

#[path = "conformance/play.rs"]
mod play;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [cases_dir, out_dir] = args.as_slice() else {
        eprintln!("usage: cargo run --quiet --example conformance -- CASES_DIR OUT_DIR");
        return ExitCode::from(2);
    };
    match run(cases_dir, out_dir).await {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("conformance: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Plays every case of `cases_dir` into `out_dir` and returns the summary line.
async fn run(cases_dir: &Path, out_dir: &Path) -> Result<String, String> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(cases_dir)
        .map_err(|error| format!("cannot read {}: {error}", cases_dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    cases.sort();
    std::fs::create_dir_all(out_dir).map_err(|error| format!("cannot create {}: {error}", out_dir.display()))?;

    let (mut ok, mut not_ok) = (0usize, 0usize);
    for path in &cases {
        let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let case: Value =
            serde_json::from_str(&text).map_err(|error| format!("{} is not JSON: {error}", path.display()))?;
        let outcome = play::play(&case).await;
        if outcome["result"]["ok"] == Value::Bool(true) {
            ok += 1;
        } else {
            not_ok += 1;
        }
        let name = path.file_name().unwrap_or_default();
        let json = serde_json::to_string_pretty(&outcome)
            .map_err(|error| format!("cannot serialise the outcome of {name:?}: {error}"))?;
        let out = out_dir.join(name);
        std::fs::write(&out, json + "\n").map_err(|error| format!("cannot write {}: {error}", out.display()))?;
    }
    Ok(format!(
        "conformance: played {} cases from {} into {} ({ok} ok, {not_ok} not ok)",
        cases.len(),
        cases_dir.display(),
        out_dir.display()
    ))
}

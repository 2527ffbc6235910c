//! Starts the app: settings, tracing, database, then serve until SIGTERM or Ctrl-C.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use shopify_app_rust::config::Config;
use shopify_app_rust::shopify::clock::SystemClock;
use shopify_app_rust::{AppState, app, db, jobs, server};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::fmt()
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(origin) = &config.shop_origin {
        tracing::warn!(%origin, "SHOPIFY_SHOP_ORIGIN is set: Shopify calls go to this origin, not to the shops (tests and local fakes only)");
    }
    let database_url = config.database_url.expose();
    let db = db::connect(database_url, config.limits.database_connections)
        .await
        .map_err(|error| format!("database {}: {error}", db::redacted(database_url)))?;
    let address = SocketAddr::from(([0, 0, 0, 0], config.port));
    let listener =
        tokio::net::TcpListener::bind(address).await.map_err(|error| format!("cannot listen on {address}: {error}"))?;
    let (app_url, limits) = (config.app_url.clone(), config.limits);
    let state = AppState::new(config, db.clone(), Arc::new(SystemClock))?;
    match &state.config.token_encryption_keys {
        None => tracing::warn!(
            "TOKEN_ENCRYPTION_KEYS is not set: access and refresh tokens are stored in plaintext (see the README)"
        ),
        Some(keys) => tracing::info!(key = keys.current_id(), "stored tokens are encrypted"),
    }
    if state.config.billing.test {
        tracing::warn!(
            "SHOPIFY_BILLING_TEST is true: charges are test charges and no merchant pays (set it false in production)"
        );
    }
    let rewritten = state.reencrypt_tokens().await.map_err(|error| format!("re-encrypting stored tokens: {error}"))?;
    if rewritten > 0 {
        tracing::info!(rewritten, "stored tokens rewritten under the current encryption key");
    }
    // One stop signal for the server and the job workers.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    tracing::info!(workers = state.config.jobs.workers, "running background jobs");
    let workers = tokio::spawn(jobs::run_workers(state.clone(), stopped.clone()));
    if let Some(client_credentials) = &state.client_credentials {
        tracing::info!(shops = ?client_credentials.shops(), "keeping client-credentials tokens renewed");
        tokio::spawn(client_credentials.clone().run());
    }
    tracing::info!(%address, %app_url, "ready to serve");
    let mut server_stopped = stopped;
    let stopping = async move {
        let _ = server_stopped.wait_for(|stop| *stop).await;
    };
    server::serve(listener, app(state), limits, stopping).await;
    // The workers got the same signal: wait for their running jobs (bounded by their grace).
    if let Err(error) = workers.await {
        tracing::error!(%error, "the job workers stopped abnormally");
    }
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (what `shopify app dev` sends when it stops).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

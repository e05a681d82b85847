//! `countersign server`: the reference server, optionally with the demo pages.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use countersign_server::Server;
use countersign_server::config::Config;

use crate::term::outln;

/// Options of `countersign server`.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Listen address (port 0 picks a free port; the real one is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// `sqlite://FILE` (default `sqlite://countersign.db`) or `postgres://user@host:port/db`.
    #[arg(long, env = "COUNTERSIGN_DATABASE_URL")]
    database_url: Option<String>,
    /// Serve the demo web pages under /demo (every demo user's password is `demo`).
    #[arg(long)]
    demo: bool,
    /// Public base URL put into activation offers (default `http://<listen>`).
    #[arg(long)]
    public_url: Option<String>,
    /// A countersign-server TOML configuration file (flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log filter (e.g. `info`, `countersign_server=debug`).
    #[arg(long, default_value = "warn")]
    log: String,
}

/// Runs until Ctrl-C / SIGTERM.
pub async fn run(args: ServerArgs) -> Result<(), String> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    config.listen = args.listen;
    if let Some(url) = args.database_url {
        config.database_url = url;
    }
    if args.public_url.is_some() {
        config.public_url = args.public_url;
    }
    config.demo = config.demo || args.demo;
    config.validate().map_err(|e| e.to_string())?;
    init_logging(&args.log);
    let database = redact_url(&config.database_url);
    let demo = config.demo;
    let server = Server::start(config).await.map_err(|e| {
        format!("{e}\nhint: check --database-url and that the --listen port is free")
    })?;
    let base = server.base_url();
    let state = server.state().clone();
    let rp_id = countersign_server::demo::ensure_rp(&state)
        .await
        .map_err(|e| e.to_string())?;
    let api_key = countersign_server::admin::add_api_key(&state.db, &rp_id)
        .await
        .map_err(|e| e.to_string())?;
    outln!("countersign server listening on {base}");
    outln!("database: {database}");
    if demo {
        outln!("demo pages: {base}/demo/  (enroll, sign in with password \"demo\", transfer)");
    }
    outln!(
        "demo relying party \"{}\" API key (shown once): {api_key}",
        countersign_server::demo::DEMO_RP_NAME
    );
    outln!("press Ctrl-C to stop");
    server.run_until_signal().await;
    Ok(())
}

/// Server log lines go to stderr (`COUNTERSIGN_LOG` overrides `--log`).
fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COUNTERSIGN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The URL without a password (`postgres://user:secret@…`).
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

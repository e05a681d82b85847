//! The command line of the server, shared by `countersign server` and its alias
//! `countersign-server`: configuration from a TOML file (`--config` /
//! `COUNTERSIGN_CONFIG`), then `COUNTERSIGN_*` environment variables (and
//! `DATABASE_URL`), then flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::Server;
use crate::config::Config;

/// A line for the operator on stdout; a closed stdout is not an error worth
/// stopping a server for.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Where the configuration comes from: what the server and `countersign admin`
/// both need to reach the same database with the same master key.
#[derive(Args, Debug, Clone, Default)]
pub struct ConfigArgs {
    /// TOML configuration file (docs/SERVER.md).
    #[arg(long, env = "COUNTERSIGN_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// `sqlite://FILE` (default `sqlite://countersign.db`) or `postgres://user@host:port/db`
    /// (also read from DATABASE_URL).
    #[arg(long, env = "COUNTERSIGN_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// 32-byte master key (hex or base64url) sealing secrets at rest; without
    /// one, a key generated at the first start is kept in the database.
    #[arg(
        long,
        env = "COUNTERSIGN_MASTER_KEY",
        global = true,
        hide_env_values = true
    )]
    pub master_key: Option<String>,
}

impl ConfigArgs {
    /// The configuration file with the environment and these flags applied
    /// (not yet validated).
    pub fn load(&self) -> Result<Config, String> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
            None => Config::default(),
        };
        // Environment without the COUNTERSIGN_ prefix, as most deployments set it.
        if self.database_url.is_none()
            && let Ok(url) = std::env::var("DATABASE_URL")
        {
            config.database_url = url;
        }
        if let Some(v) = &self.database_url {
            config.database_url = v.clone();
        }
        if let Some(v) = &self.master_key {
            config.master_key = Some(v.clone());
        }
        Ok(config)
    }
}

/// Options of `countersign server` (and `countersign-server`).
#[derive(Args, Debug)]
pub struct ServerArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Listen address, e.g. 127.0.0.1:8080 (port 0 picks a free one; the real
    /// address is printed).
    #[arg(long, env = "COUNTERSIGN_LISTEN", global = true)]
    listen: Option<SocketAddr>,
    /// Public base URL put into activation offers (default `http://<listen>`).
    #[arg(long, env = "COUNTERSIGN_PUBLIC_URL", global = true)]
    public_url: Option<String>,
    /// Serve the demo web pages under /demo (every demo user's password is `demo`).
    #[arg(long, global = true)]
    demo: bool,
    /// Log format: `text` or `json` (one object per line).
    #[arg(long, env = "COUNTERSIGN_LOG_FORMAT", global = true)]
    log_format: Option<String>,
    /// Log filter, e.g. `info` or `countersign_server=debug` (`COUNTERSIGN_LOG` overrides it).
    #[arg(long, default_value = "info", global = true)]
    log: String,
    #[command(subcommand)]
    command: Option<ServerCommand>,
}

/// What `countersign server` does.
#[derive(Subcommand, Debug, Clone, Copy)]
pub enum ServerCommand {
    /// Serve until SIGINT / SIGTERM (the default).
    Serve,
    /// Create or update the database schema (migrations) and exit.
    Migrate,
    /// Print the effective configuration (secrets redacted) and exit.
    PrintConfig,
}

impl ServerArgs {
    fn load(&self) -> Result<Config, String> {
        let mut config = self.config.load()?;
        if let Some(v) = self.listen {
            config.listen = v;
        }
        if let Some(v) = &self.public_url {
            config.public_url = Some(v.clone());
        }
        if let Some(v) = &self.log_format {
            config.log_format = v.clone();
        }
        config.demo = config.demo || self.demo;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}

/// Runs `countersign server`: serves until Ctrl-C / SIGTERM, or migrates, or
/// prints the configuration. Log lines go to stderr, what the operator reads
/// (address, the demo key) to stdout.
pub async fn run(args: ServerArgs) -> Result<(), String> {
    let config = args.load()?;
    init_logging(&args.log, &config.log_format);
    match args.command.unwrap_or(ServerCommand::Serve) {
        ServerCommand::Serve => serve(config).await,
        ServerCommand::Migrate => {
            crate::store::Db::connect(&config.database_url, 1)
                .await
                .map_err(|e| e.to_string())?;
            say!("migrations applied");
            Ok(())
        }
        ServerCommand::PrintConfig => {
            let mut shown = config;
            if shown.master_key.is_some() {
                shown.master_key = Some("<redacted>".into());
            }
            for client in shown.radius.iter_mut().flat_map(|r| r.clients.iter_mut()) {
                client.secret = "<redacted>".into();
            }
            let text = toml::to_string_pretty(&shown).map_err(|e| e.to_string())?;
            say!("{text}");
            Ok(())
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    // The connection bound is derived from the soft limit (src/http/edge.rs).
    match crate::http::edge::raise_nofile_limit() {
        Ok(limit) => tracing::debug!(limit, "descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit"),
    }
    let database = redact_url(&config.database_url);
    let demo = config.demo;
    let server = Server::start(config).await.map_err(|e| {
        format!("{e}\nhint: check --database-url and that the --listen port is free")
    })?;
    let base = server.base_url();
    let state = server.state().clone();
    say!("countersign server listening on {base}");
    say!("database: {database}");
    // The demo relying party: for the demo pages, and on an empty database so a
    // first start can be tried at once. Its key is printed only when created.
    let empty = !crate::store::relying_parties::any(&state.db)
        .await
        .map_err(|e| e.to_string())?;
    if demo || empty {
        let (_, created_key) = crate::demo::ensure_rp(&state)
            .await
            .map_err(|e| e.to_string())?;
        let name = crate::demo::DEMO_RP_NAME;
        match created_key {
            Some(key) => say!("demo relying party \"{name}\" API key (shown once): {key}"),
            None => say!(
                "demo relying party \"{name}\": list or create keys with `countersign admin key list --rp {name}`"
            ),
        }
    }
    if demo {
        say!("demo pages: {base}/demo/  (enroll, sign in with password \"demo\", transfer)");
    }
    say!("press Ctrl-C to stop");
    server.run_until_signal().await;
    Ok(())
}

/// Log lines go to stderr; `COUNTERSIGN_LOG` overrides `filter`.
fn init_logging(filter: &str, format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COUNTERSIGN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests running commands in one process) keeps the first.
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The URL without a password (`postgres://user:secret@…`).
pub fn redact_url(url: &str) -> String {
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

//! `countersign-server`: runs the reference server.
//!
//! Configuration: a TOML file (`--config` / `COUNTERSIGN_CONFIG`), then
//! `COUNTERSIGN_*` environment variables (and `DATABASE_URL`), then flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use countersign_server::Server;
use countersign_server::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "countersign-server",
    version,
    about = "Countersign reference server"
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "COUNTERSIGN_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Listen address, e.g. 127.0.0.1:8080 (port 0 picks a free one).
    #[arg(long, env = "COUNTERSIGN_LISTEN", global = true)]
    listen: Option<SocketAddr>,
    /// sqlite://FILE or postgres://… (also read from DATABASE_URL).
    #[arg(long, env = "COUNTERSIGN_DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Public base URL put into activation offers.
    #[arg(long, env = "COUNTERSIGN_PUBLIC_URL", global = true)]
    public_url: Option<String>,
    /// 32-byte master key (hex or base64url) sealing secrets at rest.
    #[arg(
        long,
        env = "COUNTERSIGN_MASTER_KEY",
        global = true,
        hide_env_values = true
    )]
    master_key: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "COUNTERSIGN_LOG_FORMAT", global = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve until SIGINT / SIGTERM (the default).
    Serve,
    /// Create the database schema (migrations) and exit.
    Migrate,
    /// Print the effective configuration (secrets redacted) and exit.
    PrintConfig,
    /// Create a relying party and print its API key (shown once) as JSON.
    CreateRp {
        /// Display name shown on phones.
        #[arg(long)]
        name: String,
        /// Optional webhook URL for challenge outcomes.
        #[arg(long)]
        webhook_url: Option<String>,
    },
    /// Unlock a user's pushes after a "not me" fraud report or a suppression.
    UnlockUser {
        /// The relying party id (`rp_…`).
        #[arg(long)]
        rp: String,
        /// The user name the relying party uses.
        #[arg(long)]
        user: String,
    },
}

fn load(cli: &Cli) -> Result<Config, String> {
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    // Environment without the COUNTERSIGN_ prefix, as most deployments set it.
    if cli.database_url.is_none()
        && let Ok(url) = std::env::var("DATABASE_URL")
    {
        config.database_url = url;
    }
    if let Some(v) = cli.listen {
        config.listen = v;
    }
    if let Some(v) = &cli.database_url {
        config.database_url = v.clone();
    }
    if let Some(v) = &cli.public_url {
        config.public_url = Some(v.clone());
    }
    if let Some(v) = &cli.master_key {
        config.master_key = Some(v.clone());
    }
    if let Some(v) = &cli.log_format {
        config.log_format = v.clone();
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COUNTERSIGN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("countersign-server: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config.log_format);
    // The connection bound is derived from the soft limit (src/http/edge.rs).
    match countersign_server::http::edge::raise_nofile_limit() {
        Ok(limit) => tracing::debug!(limit, "descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("countersign-server: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome: Result<(), String> = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => {
                let server = Server::start(config).await.map_err(|e| e.to_string())?;
                server.run_until_signal().await;
                Ok(())
            }
            Command::Migrate => {
                countersign_server::store::Db::connect(&config.database_url, 1)
                    .await
                    .map_err(|e| e.to_string())?;
                println!("migrations applied");
                Ok(())
            }
            Command::CreateRp { name, webhook_url } => {
                let db = countersign_server::store::Db::connect(&config.database_url, 1)
                    .await
                    .map_err(|e| e.to_string())?;
                let (master, _) =
                    countersign_server::service::secrets::load(&db, config.master_key.as_deref())
                        .await
                        .map_err(|e| e.to_string())?;
                let created = countersign_server::admin::create_rp(
                    &db,
                    &master,
                    &name,
                    webhook_url.as_deref(),
                )
                .await
                .map_err(|e| e.to_string())?;
                let text = serde_json::to_string_pretty(&created).map_err(|e| e.to_string())?;
                println!("{text}");
                Ok(())
            }
            Command::UnlockUser { rp, user } => {
                let db = countersign_server::store::Db::connect(&config.database_url, 1)
                    .await
                    .map_err(|e| e.to_string())?;
                countersign_server::admin::unlock_user(&db, &rp, &user)
                    .await
                    .map_err(|e| e.to_string())?;
                println!("unlocked {user}");
                Ok(())
            }
            Command::PrintConfig => {
                let mut shown = config.clone();
                if shown.master_key.is_some() {
                    shown.master_key = Some("<redacted>".into());
                }
                for client in shown.radius.iter_mut().flat_map(|r| r.clients.iter_mut()) {
                    client.secret = "<redacted>".into();
                }
                let text = toml::to_string_pretty(&shown).map_err(|e| e.to_string())?;
                println!("{text}");
                Ok(())
            }
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("countersign-server: {e}");
            ExitCode::FAILURE
        }
    }
}

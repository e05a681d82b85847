//! Countersign reference server (issue 4): the relying-party API, the device API,
//! push senders (none / FCM HTTP v1 / APNs), on SQLite or PostgreSQL, and an
//! optional RADIUS front ([`radius`]) for VPNs and network devices.
//!
//! Embed it with [`Server::start`], which binds, migrates and serves until
//! [`RunningServer::shutdown`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), countersign_server::StartError> {
//! let mut config = countersign_server::config::Config::default();
//! config.listen = "127.0.0.1:0".parse().unwrap();
//! config.database_url = "sqlite:///tmp/countersign.db".into();
//! let server = countersign_server::Server::start(config).await?;
//! println!("listening on {}", server.addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layers, importing one way: [`http`] (routes, authenticating extractors) →
//! [`service`] (what the server does, typed inputs and results) → [`store`]
//! (every SQL statement). Beside them: configuration, errors, keys, caches,
//! push senders and small helpers, which import none of the layers.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cache;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod push;
mod qr;
pub mod radius;
pub mod service;
pub mod store;
pub mod util;

pub use http::{demo, openapi};
pub use service::admin;
pub use store::notify;

use std::net::SocketAddr;
use std::sync::Arc;

use countersign_protocol::crypto::SigningKey;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::push::PushSender;
use crate::service::auth::{ApiKeyInfo, DeviceInfo};
use crate::store::Db;
use crate::store::notify::Notifier;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The push sender could not be built.
    #[error("push: {0}")]
    Push(#[from] push::PushError),
    /// The server keys could not be loaded.
    #[error("server keys: {0}")]
    Keys(String),
    /// The listening socket could not be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Entries per in-memory cache (a device entry is about 400 bytes).
const CACHE_CAPACITY: usize = 100_000;

/// Shared state of one server instance.
#[derive(Debug)]
pub struct AppState {
    /// The configuration.
    pub config: Config,
    /// The database.
    pub db: Db,
    /// Long-poll wake-ups.
    pub notifier: Notifier,
    /// The push senders (one per provider kind).
    pub senders: Vec<Arc<dyn PushSender>>,
    /// Seals secrets at rest.
    pub master: keys::MasterKey,
    /// The server's long-term signing key S.
    pub signing_key: SigningKey,
    /// HTTP client for webhooks.
    pub http: reqwest::Client,
    /// The externally visible base URL.
    pub public_url: String,
    /// Flips to `true` at shutdown so long-polls return early.
    pub shutting_down: watch::Receiver<bool>,
    /// Devices' immutable data (keys, ids), by device id.
    pub devices: cache::Cache<DeviceInfo>,
    /// API keys' immutable data (hash, relying party), by key id.
    pub api_keys: cache::Cache<ApiKeyInfo>,
    /// Work that outlives its request (webhooks): a short-lived process such as
    /// `countersign admin` waits for it before exiting.
    pub background: tokio_util::task::TaskTracker,
    /// This instance's Prometheus metrics (`GET /metrics`).
    pub metrics: metrics::Metrics,
}

/// What an instance needs before it listens: database, keys, clients, wake-ups.
struct Parts {
    db: Db,
    master: keys::MasterKey,
    signing_key: SigningKey,
    http: reqwest::Client,
    notifier: Notifier,
    listen_task: Option<JoinHandle<()>>,
}

impl Parts {
    /// Connects to (and migrates) the database and loads the server's keys.
    async fn connect(config: &Config) -> Result<Self, StartError> {
        config.validate()?;
        let db = Db::connect_with(
            &config.database_url,
            config.database_connections(),
            config.sqlite_synchronous,
        )
        .await?;
        let (master, signing_key) = service::secrets::load(&db, config.master_key.as_deref())
            .await
            .map_err(|e| StartError::Keys(e.message))?;
        push::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| StartError::Keys(format!("HTTP client: {e}")))?;
        let (notifier, listen_task) = Notifier::start(db.clone()).await?;
        Ok(Self {
            db,
            master,
            signing_key,
            http,
            notifier,
            listen_task,
        })
    }

    fn into_state(
        self,
        config: Config,
        senders: Vec<Arc<dyn PushSender>>,
        public_url: String,
        shutting_down: watch::Receiver<bool>,
    ) -> (Arc<AppState>, Option<JoinHandle<()>>) {
        let state = Arc::new(AppState {
            config,
            db: self.db,
            notifier: self.notifier,
            senders,
            master: self.master,
            signing_key: self.signing_key,
            http: self.http,
            public_url,
            shutting_down,
            devices: cache::Cache::new(CACHE_CAPACITY),
            api_keys: cache::Cache::new(CACHE_CAPACITY),
            background: tokio_util::task::TaskTracker::new(),
            metrics: metrics::Metrics::new(),
        });
        (state, self.listen_task)
    }
}

impl AppState {
    /// The state of an instance that does not listen, for operator commands
    /// (`countersign admin`): the same services, webhooks and wake-ups as a
    /// server (on PostgreSQL, `NOTIFY` reaches the running instances). Call
    /// [`AppState::finish`] before exiting.
    pub async fn open(config: Config) -> Result<Arc<Self>, StartError> {
        let senders = push::all_from_config(&config.push)?;
        let parts = Parts::connect(&config).await?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen))
            .trim_end_matches('/')
            .to_string();
        // Never flips: nothing long-polls on this instance.
        let (_, never) = watch::channel(false);
        let (state, listen_task) = parts.into_state(config, senders, public_url, never);
        if let Some(task) = listen_task {
            task.abort();
        }
        Ok(state)
    }

    /// Waits (at most `limit`) for background work such as webhooks, then
    /// closes the database pool.
    pub async fn finish(&self, limit: std::time::Duration) {
        self.background.close();
        let _ = tokio::time::timeout(limit, self.background.wait()).await;
        self.db.close().await;
    }
}

/// Entry point.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Connects to the database, runs migrations, binds `config.listen` and serves.
    pub async fn start(config: Config) -> Result<RunningServer, StartError> {
        let senders = push::all_from_config(&config.push)?;
        Self::start_with_push(config, senders).await
    }

    /// Like [`Server::start`] with given push senders (tests, custom providers).
    pub async fn start_with_push(
        config: Config,
        senders: Vec<Arc<dyn PushSender>>,
    ) -> Result<RunningServer, StartError> {
        let parts = Parts::connect(&config).await?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_string();
        let (stop_tx, stop_rx) = watch::channel(false);
        let (state, listen_task) = parts.into_state(config, senders, public_url, stop_rx.clone());
        let app = http::router(state.clone());
        let janitor = {
            let state = state.clone();
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let prune_every =
                    std::time::Duration::from_secs(u64::from(state.config.retention.interval_secs));
                let mut last_prune = std::time::Instant::now();
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    if let Err(e) = service::challenge::expire_overdue(&state).await {
                        state.metrics.observe_error(&e);
                        tracing::warn!(error = %e, "expiry sweep failed");
                    }
                    if let Err(e) = service::devices::delete_stale_pending(&state).await {
                        state.metrics.observe_error(&e);
                        tracing::warn!(error = %e, "pending device sweep failed");
                    }
                    if let Err(e) = service::qr_login::delete_expired(&state).await {
                        state.metrics.observe_error(&e);
                        tracing::warn!(error = %e, "QR login sweep failed");
                    }
                    if last_prune.elapsed() >= prune_every {
                        last_prune = std::time::Instant::now();
                        if let Err(e) = service::retention::prune(&state, util::now()).await {
                            state.metrics.observe_error(&e);
                            tracing::warn!(error = %e, "retention pruning failed");
                        }
                    }
                }
            })
        };
        let limits = state.config.http.clone();
        let max_connections =
            http::edge::connection_bound(&limits, state.config.database_connections());
        let stop_rx_radius = stop_rx.clone();
        let serve = tokio::spawn(http::edge::serve(
            listener,
            app,
            limits,
            max_connections,
            stop_rx,
        ));
        tracing::info!(%addr, backend = ?state.db.backend, "countersign server listening");
        let radius = match &state.config.radius {
            Some(config) => {
                let started = radius::Radius::start(state.clone(), config, stop_rx_radius).await;
                match started {
                    Ok(r) => Some(r),
                    Err(source) => {
                        // Stop what already runs before reporting.
                        let _ = stop_tx.send(true);
                        let _ = serve.await;
                        let _ = janitor.await;
                        return Err(StartError::Bind {
                            addr: config.listen,
                            source,
                        });
                    }
                }
            }
            None => None,
        };
        Ok(RunningServer {
            addr,
            stop: stop_tx,
            serve,
            listen_task,
            janitor,
            radius,
            state,
        })
    }
}

/// A server that is serving. Dropping it does not stop it: call [`RunningServer::shutdown`].
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    serve: JoinHandle<()>,
    listen_task: Option<JoinHandle<()>>,
    janitor: JoinHandle<()>,
    radius: Option<radius::Radius>,
    state: Arc<AppState>,
}

impl RunningServer {
    /// The bound address (the real port when `listen` had port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound UDP address of the RADIUS front, when configured (the real
    /// port when `radius.listen` had port 0).
    pub fn radius_addr(&self) -> Option<SocketAddr> {
        self.radius.as_ref().map(radius::Radius::addr)
    }

    /// The RADIUS front's counters (dropped packets and answers), when configured.
    pub fn radius_counters(&self) -> Option<radius::RadiusCounters> {
        self.radius.as_ref().map(radius::Radius::counters)
    }

    /// The shared state (tests inspect the database through it).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Stops accepting connections, lets in-flight requests finish (long-polls
    /// return at once), then closes the database pool.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.serve.await;
        let _ = self.janitor.await;
        if let Some(radius) = self.radius {
            radius.join().await;
        }
        if let Some(task) = self.listen_task {
            task.abort();
        }
        self.state.db.close().await;
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

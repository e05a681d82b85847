//! Server configuration: a TOML file, overridden by `COUNTERSIGN_*` environment
//! variables, overridden by command-line flags (see `main.rs`).
//!
//! Every field has a default so that `Config::default()` runs a working
//! single-instance server on SQLite; tests set `listen` to `127.0.0.1:0` and read
//! the bound address from [`crate::RunningServer::addr`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors while loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML for [`Config`].
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole server configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// `sqlite://path/to/file.db` (default) or `postgres://user@host:port/db`.
    pub database_url: String,
    /// Maximum database connections per instance.
    pub database_max_connections: u32,
    /// The externally reachable base URL of this server, put into activation offers
    /// (devices call the device API there). Defaults to `http://{listen}`.
    pub public_url: Option<String>,
    /// Optional 32-byte key (hex or base64url) that encrypts OTP seeds and the server
    /// signing key at rest. Without it a random key is generated and kept in the
    /// database (protects only against leaks of single columns; see docs/SERVER.md).
    pub master_key: Option<String>,
    /// Display name of this server in activation offers.
    pub server_name: String,
    /// Push providers (at most one per kind: `fcm`, `apns`). Empty: devices long-poll.
    pub push: Vec<PushConfig>,
    /// Rate limits and timeouts.
    pub policy: PolicyConfig,
    /// Limits of the HTTP edge: timeouts, body size, connection bound.
    pub http: crate::http::edge::HttpLimits,
    /// Log format: `text` or `json`.
    pub log_format: String,
    /// Serve the demo web pages under `/demo` (a sample relying party whose users
    /// all share one password). Never in production.
    pub demo: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://countersign.db".into(),
            database_max_connections: 8,
            public_url: None,
            master_key: None,
            server_name: "Countersign".into(),
            push: Vec::new(),
            policy: PolicyConfig::default(),
            http: Default::default(),
            log_format: "text".into(),
            demo: false,
        }
    }
}

impl Config {
    /// Reads a TOML configuration file; missing fields take their defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })
    }

    /// Checks ranges and combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.policy;
        if !(1..=600).contains(&p.default_push_timeout_secs) {
            return Err(ConfigError::Invalid(
                "policy.default_push_timeout_secs must be in 1..=600".into(),
            ));
        }
        if p.max_pending == 0
            || p.push_max_per_window == 0
            || p.push_window_secs == 0
            || p.passcode_max_failures == 0
            || p.passcode_failure_window_secs == 0
            || p.number_match_max_failures == 0
            || p.denials_before_suppression == 0
        {
            return Err(ConfigError::Invalid(
                "policy limits must be positive".into(),
            ));
        }
        if p.enrollment_ttl_secs == 0 || p.enrollment_ttl_secs > 600 {
            return Err(ConfigError::Invalid(
                "policy.enrollment_ttl_secs must be in 1..=600".into(),
            ));
        }
        self.http.validate()?;
        if self.database_max_connections == 0 {
            return Err(ConfigError::Invalid(
                "database_max_connections must be positive".into(),
            ));
        }
        match self.log_format.as_str() {
            "text" | "json" => Ok(()),
            _ => Err(ConfigError::Invalid(
                "log_format must be text or json".into(),
            )),
        }
    }
}

/// Which push provider wakes devices.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase", deny_unknown_fields)]
pub enum PushConfig {
    /// No push: devices long-poll the device API.
    #[default]
    None,
    /// Firebase Cloud Messaging HTTP v1.
    Fcm(FcmConfig),
    /// Apple Push Notification service (token-based authentication).
    Apns(ApnsConfig),
    /// Web Push (RFC 8030, 8291, 8292) to UnifiedPush distributor endpoints.
    #[serde(rename = "unifiedpush", alias = "webpush")]
    UnifiedPush(WebPushConfig),
}

/// FCM HTTP v1 settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmConfig {
    /// Path of the Google service-account JSON (holds the RSA key and `token_uri`).
    pub service_account_file: PathBuf,
    /// Firebase project id; defaults to the service account's `project_id`.
    pub project_id: Option<String>,
    /// Base URL of the FCM API.
    #[serde(default = "default_fcm_base")]
    pub base_url: String,
}

fn default_fcm_base() -> String {
    "https://fcm.googleapis.com".into()
}

/// APNs settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApnsConfig {
    /// Apple developer team id (JWT `iss`).
    pub team_id: String,
    /// Key id of the .p8 key (JWT `kid`).
    pub key_id: String,
    /// Path of the .p8 (PKCS#8 PEM, P-256) signing key.
    pub key_file: PathBuf,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    /// Base URL: production `https://api.push.apple.com`, or the sandbox.
    #[serde(default = "default_apns_base")]
    pub base_url: String,
}

fn default_apns_base() -> String {
    "https://api.push.apple.com".into()
}

/// Web Push (UnifiedPush) settings: the VAPID identity of this server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebPushConfig {
    /// Path of the current VAPID key: PKCS#8 PEM, P-256 (like an APNs .p8).
    /// Its public key is what devices pass to their distributor.
    pub key_file: PathBuf,
    /// Earlier VAPID keys, newest first, still tried when a push service refuses
    /// the current key (401/403) for a subscription made before a rotation.
    #[serde(default)]
    pub previous_key_files: Vec<PathBuf>,
    /// The contact the JWT `sub` claim carries: a `mailto:` or `https:` URI.
    pub subject: String,
    /// An extra trusted root CA (PEM) for push endpoints, beside the system's
    /// (tests, private distributors). Endpoints are https whatever it says.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Also deliver to endpoints on loopback, private, link-local and other
    /// non-public addresses. Off by default: the endpoint is chosen by the
    /// device, and must not aim the server at its own network (SSRF).
    #[serde(default)]
    pub allow_private_endpoints: bool,
}

/// Rate limits, timeouts and windows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Challenge timeout when the RP gives none (1..=600 s).
    pub default_push_timeout_secs: u32,
    /// Maximum pending challenges per account.
    pub max_pending: u32,
    /// Maximum pushes per account per window.
    pub push_max_per_window: u32,
    /// The push rate window.
    pub push_window_secs: u32,
    /// Consecutive denials or unanswered (expired) pushes after which pushes are
    /// suppressed. Only a valid OTP or offline code, an "it was me" signed by an
    /// enrolled device, or an operator lifts it; typing `push` does not (the login
    /// page is the attacker's).
    pub denials_before_suppression: u32,
    /// The wait before the next push after misses (denials, wrong numbers,
    /// timeouts) in a row: none after one (a slow or mistaken answer is common),
    /// this many seconds after the second, doubling with each further one up to
    /// 32 times (0: no wait).
    pub push_backoff_secs: u32,
    /// Wrong numbers a user may type on the phone (`type` matching) before the
    /// challenge ends as denied with reason `wrong_number`. A wrong pick in
    /// `pick` matching ends it at once (one in three would otherwise win).
    pub number_match_max_failures: u32,
    /// How long a "not me" fraud report locks pushes to the user; an operator
    /// may unlock earlier (`countersign-server unlock-user`). For "until an
    /// operator unlocks", set a long time (315360000 is ten years); 0 turns the
    /// lock off (the report is still audited and sent to the RP).
    pub fraud_lock_secs: u32,
    /// Lifetime of an enrollment offer (at most 600 s).
    pub enrollment_ttl_secs: u32,
    /// Activation attempts (`POST /v1/device/activate` calls, right or wrong)
    /// allowed per offer; then `rate_limited` for good.
    pub activation_max_attempts: u32,
    /// Accepted clock skew of device request timestamps.
    pub request_max_skew_secs: u32,
    /// Longest long-poll the server holds open.
    pub long_poll_max_secs: u32,
    /// TOTP steps accepted either side of now.
    pub totp_window: u32,
    /// HOTP look-ahead.
    pub hotp_look_ahead: u32,
    /// Failed passcode validations (OTP, push OTP, offline response) allowed per
    /// user within `passcode_failure_window_secs`; then `rate_limited` until the
    /// window (which starts at the first failure) has passed. A success resets it.
    pub passcode_max_failures: u32,
    /// The failed-passcode window.
    pub passcode_failure_window_secs: u32,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            default_push_timeout_secs: 30,
            max_pending: 3,
            push_max_per_window: 5,
            push_window_secs: 600,
            denials_before_suppression: 3,
            push_backoff_secs: 10,
            number_match_max_failures: 3,
            fraud_lock_secs: 86_400,
            enrollment_ttl_secs: 600,
            activation_max_attempts: 5,
            request_max_skew_secs: 300,
            long_poll_max_secs: 60,
            totp_window: 1,
            hotp_look_ahead: 10,
            passcode_max_failures: 5,
            passcode_failure_window_secs: 300,
        }
    }
}

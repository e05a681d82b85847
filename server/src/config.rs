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
    /// Maximum database connections per instance. Absent: 8 on PostgreSQL and
    /// 1 on SQLite, where one connection does the most logins per CPU-second
    /// (SQLite has one writer at a time, and a connection's page cache is
    /// dropped whenever another connection commits; see BENCHMARKS.md).
    pub database_max_connections: Option<u32>,
    /// SQLite only: when a commit reaches the disk (docs/SERVER.md "Durability").
    pub sqlite_synchronous: SqliteSynchronous,
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
    /// The RADIUS front (RFC 2865) for VPNs and network devices; off when absent.
    pub radius: Option<RadiusConfig>,
    /// Serve Prometheus metrics at `GET /metrics` (no authentication: counts
    /// only, no user names or ids; turn it off where the port is public).
    pub metrics: bool,
    /// How long finished records are kept (the background pruning).
    pub retention: RetentionConfig,
}

/// SQLite's `synchronous` setting in WAL mode: what a commit waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// The WAL is synced to disk at every commit: a commit survives a process
    /// crash, an OS crash and a power cut.
    Full,
    /// The WAL is written at every commit and synced at checkpoints: a commit
    /// survives a process crash; an OS crash or power cut may lose the last
    /// commits (never corrupts the database).
    #[default]
    Normal,
}

impl SqliteSynchronous {
    /// The `PRAGMA synchronous` value.
    pub fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

/// How long finished records are kept before the background pruning deletes
/// them, so the database stays bounded (docs/SERVER.md "Retention").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Challenges (and their sealed copies) this long after they expired; the
    /// relying party can read a challenge's status until then (at least 3600).
    pub challenges_secs: u32,
    /// Activation offers (and their transfers) this long after they expired
    /// (at least 3600).
    pub offers_secs: u32,
    /// Audit records this many days old; 0 keeps them for ever.
    pub audit_days: u32,
    /// Rows deleted per table and statement (smaller batches hold the
    /// database's write lock for shorter).
    pub batch: u32,
    /// Seconds between pruning runs.
    pub interval_secs: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            challenges_secs: 86_400,
            offers_secs: 86_400,
            audit_days: 365,
            batch: 2_000,
            interval_secs: 60,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://countersign.db".into(),
            database_max_connections: None,
            sqlite_synchronous: SqliteSynchronous::default(),
            public_url: None,
            master_key: None,
            server_name: "Countersign".into(),
            push: Vec::new(),
            policy: PolicyConfig::default(),
            http: Default::default(),
            log_format: "text".into(),
            demo: false,
            radius: None,
            metrics: true,
            retention: RetentionConfig::default(),
        }
    }
}

impl Config {
    /// The database connections per instance: the configured number, or the
    /// backend's default.
    pub fn database_connections(&self) -> u32 {
        match self.database_max_connections {
            Some(n) => n,
            None if self.database_url.starts_with("sqlite:") => 1,
            None => 8,
        }
    }

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
        let r = &self.retention;
        // A challenge's push OTP validates for 600 s after its answer, and an
        // RP may read a status late: keep finished records at least an hour.
        if r.challenges_secs < 3600 || r.offers_secs < 3600 || r.batch == 0 || r.interval_secs == 0
        {
            return Err(ConfigError::Invalid(
                "retention.challenges_secs and offers_secs must be at least 3600, batch and interval_secs positive".into(),
            ));
        }
        if self.database_max_connections == Some(0) {
            return Err(ConfigError::Invalid(
                "database_max_connections must be positive".into(),
            ));
        }
        if let Some(radius) = &self.radius {
            radius.validate()?;
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
    /// may unlock earlier (`countersign admin user unlock`). For "until an
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

// ---------------------------------------------------------------------------
// RADIUS (docs/SERVER.md "RADIUS")

/// The RADIUS front: a UDP listener answering Access-Requests from known clients
/// (VPN concentrators, network devices, a FreeRADIUS proxy).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadiusConfig {
    /// UDP address to listen on (1812 is the RADIUS port; port 0 picks a free one,
    /// see [`crate::RunningServer::radius_addr`]).
    pub listen: SocketAddr,
    /// The clients allowed to ask; packets from any other address are dropped.
    /// The first client whose `address` contains the source address answers.
    pub clients: Vec<RadiusClientConfig>,
}

/// How a client waits for a push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RadiusMode {
    /// Hold the Access-Request until the phone answers (Accept / Reject) or
    /// `blocking_wait_secs` pass (Reject).
    #[default]
    Blocking,
    /// Answer at once with an Access-Challenge (State and a Reply-Message); the
    /// next Access-Request with that State and an empty password asks again, one
    /// with a code verifies the code.
    Challenge,
}

/// What the User-Password attribute holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RadiusPassword {
    /// The second factor only: a code, or a push trigger (empty, one
    /// character, `push`).
    #[default]
    Otp,
    /// The user's static password (set through the RP API) followed by the
    /// second factor: `secret123456`, `secretpush`, `secret` (push), or with a
    /// comma, `secret,123456` / `secret,push`.
    PasswordOtp,
}

/// One RADIUS client (NAS) and how it is answered.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadiusClientConfig {
    /// The client's IP address or network (`192.0.2.10`, `10.0.0.0/8`, `::1`).
    pub address: IpNetwork,
    /// The shared secret (RFC 2865 §3); at least 16 characters recommended.
    pub secret: String,
    /// The relying party whose users this client signs in: its id (`rp_…`) or
    /// its name. RADIUS acts with one of its unrevoked API keys: revoking them
    /// all stops RADIUS for it too.
    pub relying_party: String,
    /// `blocking` (default) or `challenge`.
    #[serde(default)]
    pub mode: RadiusMode,
    /// `otp` (default) or `password_otp`.
    #[serde(default)]
    pub password: RadiusPassword,
    /// Drop Access-Requests without a valid Message-Authenticator (BlastRADIUS,
    /// CVE-2024-3596). Turn off only for a legacy client that cannot send it;
    /// every such request is then logged as a warning.
    #[serde(default = "default_true")]
    pub require_message_authenticator: bool,
    /// Blocking mode: how long to hold a request for the phone's answer (the
    /// push expires then too). Keep it below the client's timeout (1..=120).
    #[serde(default = "default_blocking_wait_secs")]
    pub blocking_wait_secs: u32,
    /// Challenge mode: how long the push and its State are valid (1..=600).
    #[serde(default = "default_challenge_secs")]
    pub challenge_secs: u32,
    /// Challenge mode: the Access-Challenge's Reply-Message shows a 2-digit
    /// number the user types on the phone (NIST SP 800-63B-4 number matching).
    /// Only where the client shows the Reply-Message; blocking mode has no
    /// prompt to show it on.
    #[serde(default)]
    pub number_matching: bool,
}

impl std::fmt::Debug for RadiusClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RadiusClientConfig")
            .field("address", &self.address)
            .field("secret", &"<redacted>")
            .field("relying_party", &self.relying_party)
            .field("mode", &self.mode)
            .field("password", &self.password)
            .field(
                "require_message_authenticator",
                &self.require_message_authenticator,
            )
            .field("blocking_wait_secs", &self.blocking_wait_secs)
            .field("challenge_secs", &self.challenge_secs)
            .field("number_matching", &self.number_matching)
            .finish()
    }
}

fn default_true() -> bool {
    true
}

fn default_blocking_wait_secs() -> u32 {
    25
}

fn default_challenge_secs() -> u32 {
    120
}

impl RadiusConfig {
    /// Checks every client.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.clients.is_empty() {
            return Err(ConfigError::Invalid(
                "radius.clients: at least one client is needed".into(),
            ));
        }
        for (n, c) in self.clients.iter().enumerate() {
            let bad = |what: &str| ConfigError::Invalid(format!("radius.clients[{n}]: {what}"));
            // The PAP and HMAC key must be non-empty; RFC 2865 §3 also excludes NUL
            // in practice (most clients cannot enter it).
            if c.secret.is_empty() || c.secret.len() > 128 || c.secret.contains('\0') {
                return Err(bad("secret must be 1-128 bytes without NUL"));
            }
            if c.relying_party.is_empty() || c.relying_party.len() > 64 {
                return Err(bad("relying_party must be an RP id or name"));
            }
            if !(1..=120).contains(&c.blocking_wait_secs) {
                return Err(bad("blocking_wait_secs must be in 1..=120"));
            }
            if !(1..=600).contains(&c.challenge_secs) {
                return Err(bad("challenge_secs must be in 1..=600"));
            }
            if c.number_matching && c.mode != RadiusMode::Challenge {
                return Err(bad("number_matching needs mode = \"challenge\""));
            }
        }
        Ok(())
    }
}

/// An IP address or a network in CIDR notation (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IpNetwork {
    /// The network address (host bits cleared).
    network: std::net::IpAddr,
    /// Prefix length in bits.
    prefix: u8,
}

impl IpNetwork {
    /// Whether `ip` is inside (an IPv4-mapped IPv6 source counts as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

impl TryFrom<String> for IpNetwork {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        use std::net::IpAddr;
        let invalid = || format!("{text:?} is not an IP address or CIDR network");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| invalid())?)),
            None => (text.as_str(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(invalid());
        }
        let network = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        };
        Ok(Self { network, prefix })
    }
}

impl From<IpNetwork> for String {
    fn from(net: IpNetwork) -> Self {
        format!("{}/{}", net.network, net.prefix)
    }
}

#[cfg(test)]
mod radius_tests {
    use super::{Config, IpNetwork, RadiusConfig};

    fn parse(toml_text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn radius_section_parses_with_defaults_and_is_checked() {
        let ok = parse(
            r#"
            [radius]
            listen = "127.0.0.1:1812"
            [[radius.clients]]
            address = "10.0.0.0/8"
            secret = "s3cret-s3cret-s3cret"
            relying_party = "Example VPN"
            "#,
        )
        .unwrap();
        let radius: &RadiusConfig = ok.radius.as_ref().unwrap();
        let client = &radius.clients[0];
        assert!(client.require_message_authenticator);
        assert_eq!(client.blocking_wait_secs, 25);
        assert_eq!(client.challenge_secs, 120);
        assert_eq!(client.mode, super::RadiusMode::Blocking);
        assert_eq!(client.password, super::RadiusPassword::Otp);
        assert!(
            !format!("{client:?}").contains("s3cret"),
            "Debug redacts the secret"
        );
        assert!(parse("").unwrap().radius.is_none(), "off by default");

        let with = |line: &str| {
            parse(&format!(
                "[radius]\nlisten = \"127.0.0.1:0\"\n[[radius.clients]]\n\
                 address = \"127.0.0.1\"\nrelying_party = \"rp\"\n{line}\n"
            ))
        };
        assert!(with(r#"secret = "x""#).is_ok());
        for bad in [
            r#"secret = """#,
            "secret = \"x\"\nblocking_wait_secs = 0",
            "secret = \"x\"\nblocking_wait_secs = 121",
            "secret = \"x\"\nchallenge_secs = 601",
            "secret = \"x\"\nmode = \"wait\"",
            "secret = \"x\"\npassword = \"pin\"",
            "secret = \"x\"\nunknown = 1",
            "secret = \"x\"\nnumber_matching = true",
        ] {
            assert!(with(bad).is_err(), "{bad}");
        }
        assert!(parse("[radius]\nlisten = \"127.0.0.1:0\"\nclients = []").is_err());
        let bad_network = "[radius]\nlisten = \"127.0.0.1:0\"\n[[radius.clients]]\n\
                           address = \"10.0.0.0/40\"\nsecret = \"x\"\nrelying_party = \"rp\"";
        assert!(parse(bad_network).is_err());
    }

    #[test]
    fn networks_contain_what_they_should() {
        let net = |s: &str| IpNetwork::try_from(s.to_owned()).unwrap();
        let ip = |s: &str| s.parse().unwrap();
        assert!(net("10.1.2.3/8").contains(ip("10.200.0.1")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!net("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(net("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(net("::1").contains(ip("::1")));
        assert!(net("2001:db8::/32").contains(ip("2001:db8:1::5")));
        assert!(!net("2001:db8::/32").contains(ip("127.0.0.1")));
        for bad in ["", "10.0.0.0/33", "::/129", "host", "10.0.0.0/x"] {
            assert!(IpNetwork::try_from(bad.to_owned()).is_err(), "{bad}");
        }
        assert_eq!(String::from(net("10.9.8.7/8")), "10.0.0.0/8");
    }
}

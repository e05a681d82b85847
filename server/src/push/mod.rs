//! Push providers behind one trait. A push is only a wake-up: it names the device
//! and the transaction, never the login context, which the device fetches sealed
//! over its own authenticated channel (DESIGN §4).

pub mod apns;
pub mod fcm;
pub mod jwt;
pub mod webpush;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::PushConfig;

/// Why a push failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The provider says the device token is no longer valid: forget it.
    #[error("device token is no longer valid")]
    Unregistered,
    /// The provider rejected the request for another reason.
    #[error("provider rejected the push: HTTP {status} {reason}")]
    Rejected {
        /// HTTP status from the provider.
        status: u16,
        /// The provider's reason string (no secrets: providers echo no tokens).
        reason: String,
    },
    /// Network or transient failure; retrying may help.
    #[error("push transport error: {0}")]
    Transport(String),
    /// The sender is misconfigured (keys, URLs).
    #[error("push configuration error: {0}")]
    Config(String),
}

/// One wake-up for one device.
#[derive(Clone, PartialEq, Eq)]
pub struct WakeUp {
    /// The provider's device token (FCM registration token, APNs device token,
    /// or a Web Push subscription as JSON: it holds the auth secret).
    pub token: String,
    /// The device id (Countersign's, not the provider's).
    pub device_id: String,
    /// The challenge's transaction id.
    pub tx_id: String,
    /// When the challenge expires (Unix seconds); a later delivery is useless.
    pub expires_at: i64,
}

impl std::fmt::Debug for WakeUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeUp")
            .field("device_id", &self.device_id)
            .field("tx_id", &self.tx_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A boxed, sendable future (object-safe async trait methods without extra crates).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that can wake a device.
pub trait PushSender: Send + Sync + std::fmt::Debug {
    /// The provider's name as stored with the device (`none`, `fcm`, `apns`,
    /// `unifiedpush`).
    fn provider(&self) -> &'static str;
    /// Sends one wake-up.
    fn send<'a>(&'a self, wake: &'a WakeUp) -> BoxFuture<'a, Result<(), PushError>>;
    /// The VAPID public key devices register with (base64url, uncompressed
    /// point): Web Push only.
    fn vapid_public_key(&self) -> Option<String> {
        None
    }
}

/// The `none` provider: devices long-poll, so there is nothing to send.
#[derive(Debug, Default)]
pub struct NoPush;

impl PushSender for NoPush {
    fn provider(&self) -> &'static str {
        "none"
    }
    fn send<'a>(&'a self, _wake: &'a WakeUp) -> BoxFuture<'a, Result<(), PushError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Installs rustls' ring provider as the process default (reqwest is built with
/// `rustls-no-provider`, so no aws-lc-rs). Idempotent.
pub fn install_crypto_provider() {
    // An error only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP client for a provider base URL. Plain `http://` URLs (local test
/// endpoints) use HTTP/2 with prior knowledge when `h2` is asked for; `https://`
/// negotiates HTTP/2 through ALPN.
pub fn http_client(base_url: &str, h2: bool) -> Result<reqwest::Client, PushError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .connect_timeout(std::time::Duration::from_secs(5));
    if h2 && base_url.starts_with("http://") {
        builder = builder.http2_prior_knowledge();
    }
    builder
        .build()
        .map_err(|e| PushError::Config(format!("HTTP client: {e}")))
}

/// Parses a provider base URL (`base_url` in the configuration).
pub(crate) fn parse_base_url(base_url: &str) -> Result<url::Url, PushError> {
    let url = url::Url::parse(base_url)
        .map_err(|e| PushError::Config(format!("base URL {base_url}: {e}")))?;
    if url.cannot_be_a_base() {
        return Err(PushError::Config(format!(
            "base URL {base_url}: not a base"
        )));
    }
    Ok(url)
}

/// `base` with `segments` appended to its path, each percent-encoded as one
/// segment (a trailing `/` of `base` does not double).
pub(crate) fn endpoint(base: &url::Url, segments: &[&str]) -> Result<url::Url, PushError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| PushError::Config("base URL cannot have a path".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Builds one configured sender.
pub fn from_config(config: &PushConfig) -> Result<Arc<dyn PushSender>, PushError> {
    Ok(match config {
        PushConfig::None => Arc::new(NoPush),
        PushConfig::Fcm(c) => Arc::new(fcm::FcmSender::from_config(c)?),
        PushConfig::Apns(c) => Arc::new(apns::ApnsSender::from_config(c)?),
        PushConfig::UnifiedPush(c) => Arc::new(webpush::WebPushSender::from_config(c)?),
    })
}

/// Builds every configured sender.
pub fn all_from_config(configs: &[PushConfig]) -> Result<Vec<Arc<dyn PushSender>>, PushError> {
    configs.iter().map(from_config).collect()
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

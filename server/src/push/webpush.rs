//! Web Push to UnifiedPush distributors: RFC 8030 delivery, RFC 8291 message
//! encryption (`aes128gcm`, one record, a fresh ephemeral key and salt per
//! message: `countersign_protocol::crypto::webpush_encrypt`) and RFC 8292 VAPID
//! (`Authorization: vapid t=<ES256 JWT>, k=<public key>`).
//!
//! The device registers `{"type":"unifiedpush","endpoint","p256dh","auth"}`; the
//! server keeps those three fields as a small JSON document in the device's
//! `push_token` column ([`Subscription`]), so no migration is needed and an
//! `Unregistered` answer clears it like any other token.
//!
//! The plaintext is the same wake-up FCM carries, `{"device_id","tx_id"}`, and
//! nothing else: the device fetches the sealed challenge itself.
//!
//! VAPID keys rotate: the sender signs with the current key; when a push
//! service refuses it (401/403: the subscription was made with an earlier key)
//! it tries the previous keys, newest first, and remembers per endpoint which
//! one worked. Devices re-register with the current key (published at
//! `GET /v1/device/webpush`) and the old keys can then be dropped.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use countersign_protocol::crypto::{PublicKey, WEBPUSH_AUTH_LEN, webpush_encrypt};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use super::jwt::Es256;
use super::{BoxFuture, PushError, PushSender, WakeUp, install_crypto_provider, unix_now};
use crate::config::WebPushConfig;

/// Lifetime of a VAPID JWT (RFC 8292 allows at most 24 hours).
pub const JWT_LIFETIME_SECS: i64 = 12 * 3600;

/// A cached JWT is renewed this long before it expires, so none expires in flight.
pub const JWT_RENEW_BEFORE_SECS: i64 = 3600;

/// Bound of the in-memory caches (JWTs per audience, key per endpoint).
const CACHE_MAX: usize = 4096;

/// A device's Web Push subscription, stored as JSON in `push_token`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// The push endpoint (https; a capability URL: never logged).
    pub endpoint: String,
    /// The subscription's P-256 public key, base64url of the 65-byte SEC1 point.
    pub p256dh: String,
    /// The subscription's 16-byte authentication secret, base64url.
    pub auth: String,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.auth);
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription(<redacted>)")
    }
}

impl Subscription {
    /// The `push_token` column value.
    pub fn to_token(&self) -> Result<Zeroizing<String>, PushError> {
        serde_json::to_string(self)
            .map(Zeroizing::new)
            .map_err(|e| PushError::Config(format!("subscription: {e}")))
    }

    /// Parses a `push_token` column value.
    pub fn from_token(token: &str) -> Result<Self, PushError> {
        serde_json::from_str(token).map_err(|_| PushError::Config("stored subscription".into()))
    }
}

#[derive(Serialize)]
struct Header {
    typ: &'static str,
    alg: &'static str,
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    exp: i64,
    sub: &'a str,
}

struct VapidKey {
    signer: Es256,
    /// base64url of the uncompressed public key (`k=`).
    public: String,
}

/// Cached JWTs by (key index, audience): the token and its `exp`.
type JwtCache = HashMap<(usize, String), (String, i64)>;

/// The Web Push sender.
pub struct WebPushSender {
    client: reqwest::Client,
    /// Whether endpoints on non-public addresses are allowed.
    allow_private: bool,
    subject: String,
    /// The current key first, then earlier ones, newest first.
    keys: Vec<VapidKey>,
    jwts: Mutex<JwtCache>,
    /// Endpoints whose subscription needed an earlier key: its index.
    key_for_endpoint: Mutex<HashMap<String, usize>>,
}

impl std::fmt::Debug for WebPushSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebPushSender")
            .field("subject", &self.subject)
            .field("vapid_public_key", &self.vapid_key())
            .field("previous_keys", &self.keys.len().saturating_sub(1))
            .finish_non_exhaustive()
    }
}

fn read_key(path: &std::path::Path) -> Result<Zeroizing<String>, PushError> {
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| PushError::Config(format!("VAPID key file {}: {e}", path.display())))
}

impl WebPushSender {
    /// Builds a sender from configuration (reads the key files and the CA file).
    pub fn from_config(config: &WebPushConfig) -> Result<Self, PushError> {
        let mut pems = vec![read_key(&config.key_file)?];
        for path in &config.previous_key_files {
            pems.push(read_key(path)?);
        }
        let ca = match &config.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                PushError::Config(format!("Web Push CA file {}: {e}", path.display()))
            })?),
            None => None,
        };
        let pems: Vec<&str> = pems.iter().map(|p| p.as_str()).collect();
        Self::new(
            &pems,
            &config.subject,
            ca.as_deref(),
            config.allow_private_endpoints,
        )
    }

    /// Builds a sender from PEM keys (the current one first), the `sub`
    /// contact and optionally extra trusted root certificates (PEM).
    /// `allow_private`: also POST to endpoints on loopback, private and
    /// link-local addresses (tests, a distributor on the LAN).
    pub fn new(
        key_pems: &[&str],
        subject: &str,
        extra_roots: Option<&[u8]>,
        allow_private: bool,
    ) -> Result<Self, PushError> {
        if !(subject.starts_with("mailto:") || subject.starts_with("https://")) {
            return Err(PushError::Config(
                "Web Push subject must be a mailto: or https: URI".into(),
            ));
        }
        if key_pems.is_empty() {
            return Err(PushError::Config("no VAPID key".into()));
        }
        let keys = key_pems
            .iter()
            .map(|pem| {
                let signer = Es256::from_pem(pem)?;
                let public = URL_SAFE_NO_PAD.encode(signer.public_key());
                Ok(VapidKey { signer, public })
            })
            .collect::<Result<Vec<_>, PushError>>()?;
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            // Endpoints are https by protocol rule; a redirect could lead elsewhere.
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none());
        if !allow_private {
            // The endpoint is the device's choice: never let it aim the server
            // at its own network (SSRF). Names resolve to public addresses only.
            builder = builder.dns_resolver(Arc::new(PublicAddressesOnly));
        }
        if let Some(pem) = extra_roots {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| PushError::Config(format!("Web Push CA file: {e}")))?;
            if certs.is_empty() {
                return Err(PushError::Config(
                    "Web Push CA file holds no certificate".into(),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| PushError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            allow_private,
            subject: subject.to_owned(),
            keys,
            jwts: Mutex::new(HashMap::new()),
            key_for_endpoint: Mutex::new(HashMap::new()),
        })
    }

    /// The current VAPID public key, base64url of the uncompressed point: what a
    /// device passes to its UnifiedPush distributor when it registers.
    pub fn vapid_key(&self) -> &str {
        self.keys
            .first()
            .map(|k| k.public.as_str())
            .unwrap_or_default()
    }

    /// The plaintext of a wake-up: the device id and the tx id, nothing else.
    pub fn payload(wake: &WakeUp) -> Vec<u8> {
        serde_json::json!({ "device_id": wake.device_id, "tx_id": wake.tx_id })
            .to_string()
            .into_bytes()
    }

    /// The `Authorization` header for `endpoint` signed with key `index`
    /// (0: the current key). JWTs are cached per audience until an hour before
    /// they expire.
    pub async fn authorization(
        &self,
        index: usize,
        endpoint: &url::Url,
    ) -> Result<String, PushError> {
        let key = self
            .keys
            .get(index)
            .ok_or_else(|| PushError::Config("no such VAPID key".into()))?;
        let aud = endpoint.origin().ascii_serialization();
        let now = unix_now();
        let mut cache = self.jwts.lock().await;
        let cached = cache
            .get(&(index, aud.clone()))
            .filter(|(_, exp)| now < exp - JWT_RENEW_BEFORE_SECS)
            .map(|(jwt, _)| jwt.clone());
        let jwt = match cached {
            Some(jwt) => jwt,
            None => {
                let exp = now + JWT_LIFETIME_SECS;
                let jwt = key.signer.sign(
                    &Header {
                        typ: "JWT",
                        alg: "ES256",
                    },
                    &Claims {
                        aud: &aud,
                        exp,
                        sub: &self.subject,
                    },
                )?;
                if cache.len() >= CACHE_MAX {
                    cache.clear();
                }
                cache.insert((index, aud), (jwt.clone(), exp));
                jwt
            }
        };
        Ok(format!("vapid t={jwt}, k={}", key.public))
    }

    async fn post(
        &self,
        url: &url::Url,
        body: Vec<u8>,
        ttl: i64,
        index: usize,
    ) -> Result<reqwest::StatusCode, PushError> {
        let auth = self.authorization(index, url).await?;
        let resp = self
            .client
            .post(url.clone())
            .header("authorization", auth)
            .header("content-encoding", "aes128gcm")
            .header("content-type", "application/octet-stream")
            .header("ttl", ttl.to_string())
            .header("urgency", "high")
            .body(body)
            .send()
            .await
            // Without the URL: the endpoint is a capability.
            .map_err(|e| PushError::Transport(e.without_url().to_string()))?;
        Ok(resp.status())
    }
}

/// Decodes the subscription's key and secret.
fn subscription_keys(
    sub: &Subscription,
) -> Result<(PublicKey, Zeroizing<[u8; WEBPUSH_AUTH_LEN]>), PushError> {
    let bad = || PushError::Config("stored subscription keys".into());
    let point = URL_SAFE_NO_PAD.decode(&sub.p256dh).map_err(|_| bad())?;
    let key = PublicKey::from_sec1(&point).map_err(|_| bad())?;
    let secret = Zeroizing::new(URL_SAFE_NO_PAD.decode(&sub.auth).map_err(|_| bad())?);
    let mut auth = Zeroizing::new([0u8; WEBPUSH_AUTH_LEN]);
    if secret.len() != WEBPUSH_AUTH_LEN {
        return Err(bad());
    }
    auth.copy_from_slice(&secret);
    Ok((key, auth))
}

impl PushSender for WebPushSender {
    fn provider(&self) -> &'static str {
        "unifiedpush"
    }

    fn vapid_public_key(&self) -> Option<String> {
        Some(self.vapid_key().to_owned())
    }

    fn send<'a>(&'a self, wake: &'a WakeUp) -> BoxFuture<'a, Result<(), PushError>> {
        Box::pin(async move {
            if wake.expires_at <= unix_now() {
                // A wake-up for an expired challenge is useless: never send it.
                tracing::debug!(device = %wake.device_id, tx = %wake.tx_id, "challenge expired; no Web Push sent");
                return Ok(());
            }
            // A stored value that is no subscription can never be delivered: forget it.
            let sub = Subscription::from_token(&wake.token).map_err(|_| PushError::Unregistered)?;
            let url = url::Url::parse(&sub.endpoint).map_err(|_| PushError::Unregistered)?;
            if url.scheme() != "https" {
                return Err(PushError::Unregistered);
            }
            // An address literal skips the resolver: check it here.
            let literal = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                _ => None,
            };
            if !self.allow_private && literal.is_some_and(|ip| !is_public(ip)) {
                tracing::warn!(device = %wake.device_id, "Web Push endpoint is a non-public address; registration dropped");
                return Err(PushError::Unregistered);
            }
            let (ua_public, auth) = subscription_keys(&sub).map_err(|_| PushError::Unregistered)?;
            let payload = Self::payload(wake);
            let first = self
                .key_for_endpoint
                .lock()
                .await
                .get(&sub.endpoint)
                .copied()
                .filter(|i| *i < self.keys.len())
                .unwrap_or(0);
            // The remembered key first, then the others in order (current first).
            let order = std::iter::once(first).chain((0..self.keys.len()).filter(|i| *i != first));
            let mut last = reqwest::StatusCode::FORBIDDEN;
            for index in order {
                // Seconds left, again before each attempt: a retry after a slow
                // refusal must not outlive the challenge either.
                let ttl = wake.expires_at - unix_now();
                if ttl <= 0 {
                    break;
                }
                // Encrypted afresh for each attempt: a new ephemeral key and salt.
                let body = webpush_encrypt(&payload, &ua_public, &auth)
                    .map_err(|e| PushError::Config(format!("Web Push encryption: {e}")))?;
                let status = self.post(&url, body, ttl, index).await?;
                last = status;
                if status.is_success() {
                    let mut remembered = self.key_for_endpoint.lock().await;
                    if index == 0 {
                        remembered.remove(&sub.endpoint);
                    } else if index != first {
                        if remembered.len() >= CACHE_MAX {
                            remembered.clear();
                        }
                        remembered.insert(sub.endpoint.clone(), index);
                    }
                    return Ok(());
                }
                // 401/403: this VAPID key is not the subscription's; try an older one.
                if !matches!(status.as_u16(), 401 | 403) {
                    break;
                }
            }
            Err(classify(last))
        })
    }
}

/// The error for a push service's non-success status.
pub fn classify(status: reqwest::StatusCode) -> PushError {
    match status.as_u16() {
        404 | 410 => PushError::Unregistered,
        429 => PushError::Transport("push service rate limit (429)".into()),
        s if status.is_server_error() => PushError::Transport(format!("push service error ({s})")),
        s => PushError::Rejected {
            status: s,
            reason: status.canonical_reason().unwrap_or_default().to_owned(),
        },
    }
}

/// Whether `ip` is a public unicast address: not loopback, private, link-local,
/// unique-local, shared (CGNAT), benchmarking, documentation, multicast,
/// broadcast, reserved or unspecified. IPv4-mapped IPv6 is judged as IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (b == 18 || b == 19)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8))
        }
    }
}

/// A resolver that keeps only public addresses ([`is_public`]); a name with
/// none fails to resolve, so the push is never sent.
struct PublicAddressesOnly;

impl reqwest::dns::Resolve for PublicAddressesOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err("the push endpoint resolves to no public address".into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use countersign_protocol::crypto::{AgreementKey, Signature, webpush_decrypt};
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

    use super::*;

    fn key_pem() -> String {
        let der =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
    }

    fn wake(token: &str) -> WakeUp {
        WakeUp {
            token: token.into(),
            device_id: "dv_1".into(),
            tx_id: "tx_1".into(),
            expires_at: unix_now() + 30,
        }
    }

    fn json_part(s: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn vapid_jwt_shape_signature_and_cache() {
        let sender =
            WebPushSender::new(&[&key_pem()], "mailto:ops@example.com", None, false).unwrap();
        let url = url::Url::parse("https://push.example:8443/wp/abc?x=1").unwrap();
        let header = sender.authorization(0, &url).await.unwrap();
        let rest = header.strip_prefix("vapid t=").unwrap();
        let (jwt, k) = rest.split_once(", k=").unwrap();
        assert_eq!(k, sender.vapid_key());
        let k = URL_SAFE_NO_PAD.decode(k).unwrap();
        assert_eq!(k.len(), 65);
        assert_eq!(k[0], 4);
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            json_part(parts[0]),
            serde_json::json!({"typ": "JWT", "alg": "ES256"})
        );
        let claims = json_part(parts[1]);
        assert_eq!(claims["aud"], "https://push.example:8443");
        assert_eq!(claims["sub"], "mailto:ops@example.com");
        let exp = claims["exp"].as_i64().unwrap();
        assert!((exp - unix_now() - JWT_LIFETIME_SECS).abs() <= 5);
        assert_eq!(claims.as_object().unwrap().len(), 3);
        let sig = Signature::from_raw(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        PublicKey::from_sec1(&k)
            .unwrap()
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        // Cached per audience; another origin gets its own token.
        assert_eq!(sender.authorization(0, &url).await.unwrap(), header);
        let other = url::Url::parse("https://ntfy.example/up123").unwrap();
        let second = sender.authorization(0, &other).await.unwrap();
        assert_ne!(second, header);
        let claims = json_part(second[8..].split('.').nth(1).unwrap());
        assert_eq!(claims["aud"], "https://ntfy.example");
    }

    #[test]
    fn rotation_keeps_previous_keys_and_publishes_the_current_one() {
        let (new, old) = (key_pem(), key_pem());
        let sender =
            WebPushSender::new(&[&new, &old], "https://example.com/contact", None, false).unwrap();
        assert_eq!(sender.keys.len(), 2);
        assert_eq!(sender.vapid_public_key().unwrap(), sender.keys[0].public);
        assert_ne!(sender.keys[0].public, sender.keys[1].public);
    }

    #[test]
    fn config_errors() {
        let pem = key_pem();
        for subject in ["ops@example.com", "http://example.com", ""] {
            assert!(matches!(
                WebPushSender::new(&[&pem], subject, None, false),
                Err(PushError::Config(_))
            ));
        }
        assert!(WebPushSender::new(&[], "mailto:a@b.c", None, false).is_err());
        assert!(WebPushSender::new(&["not a key"], "mailto:a@b.c", None, false).is_err());
        assert!(WebPushSender::new(&[&pem], "mailto:a@b.c", Some(b"no cert"), false).is_err());
    }

    #[test]
    fn wake_up_encrypts_to_only_device_and_tx_and_decrypts() {
        let ua = AgreementKey::generate().unwrap();
        let auth = [9u8; 16];
        let sub = Subscription {
            endpoint: "https://push.example/x".into(),
            p256dh: URL_SAFE_NO_PAD.encode(ua.public_key().to_sec1()),
            auth: URL_SAFE_NO_PAD.encode(auth),
        };
        let token = sub.to_token().unwrap();
        assert_eq!(Subscription::from_token(&token).unwrap(), sub);
        assert_eq!(format!("{sub:?}"), "Subscription(<redacted>)");
        let w = wake(&token);
        let (key, secret) = subscription_keys(&sub).unwrap();
        let body = webpush_encrypt(&WebPushSender::payload(&w), &key, &secret).unwrap();
        let plain = webpush_decrypt(&body, &ua, &auth).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(v, serde_json::json!({"device_id": "dv_1", "tx_id": "tx_1"}));
    }

    #[tokio::test]
    async fn expired_challenges_and_bad_subscriptions_send_nothing() {
        let sender = WebPushSender::new(&[&key_pem()], "mailto:a@b.c", None, false).unwrap();
        // Expired: Ok without a request (the endpoint would not even resolve).
        let mut w = wake(r#"{"endpoint":"https://nowhere.invalid/x","p256dh":"x","auth":"y"}"#);
        w.expires_at = unix_now() - 1;
        assert_eq!(sender.send(&w).await, Ok(()));
        w.expires_at = unix_now() + 30;
        // Undecodable keys and non-subscriptions: forgotten.
        assert_eq!(sender.send(&w).await, Err(PushError::Unregistered));
        assert_eq!(
            sender.send(&wake("fcm-token")).await,
            Err(PushError::Unregistered)
        );
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn endpoints_on_the_servers_own_network_are_refused() {
        let ua = AgreementKey::generate().unwrap();
        let token = |endpoint: &str| {
            Subscription {
                endpoint: endpoint.into(),
                p256dh: URL_SAFE_NO_PAD.encode(ua.public_key().to_sec1()),
                auth: URL_SAFE_NO_PAD.encode([9u8; 16]),
            }
            .to_token()
            .unwrap()
        };
        let sender = WebPushSender::new(&[&key_pem()], "mailto:a@b.c", None, false).unwrap();
        // Address literals: refused before any connection, and forgotten.
        for endpoint in [
            "https://127.0.0.1:9/x",
            "https://[::1]:9/x",
            "https://169.254.169.254/x",
        ] {
            assert_eq!(
                sender.send(&wake(&token(endpoint))).await,
                Err(PushError::Unregistered),
                "{endpoint}"
            );
        }
        // A name resolving to loopback: the resolver finds no public address,
        // so nothing connects to the listener there.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = sender
            .send(&wake(&token(&format!("https://localhost:{port}/x"))))
            .await;
        assert!(matches!(sent, Err(PushError::Transport(_))), "{sent:?}");
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(
            accepted.is_err(),
            "the server connected to its own loopback"
        );
    }

    #[test]
    fn statuses() {
        use reqwest::StatusCode as S;
        assert_eq!(classify(S::NOT_FOUND), PushError::Unregistered);
        assert_eq!(classify(S::GONE), PushError::Unregistered);
        for s in [
            S::BAD_REQUEST,
            S::FORBIDDEN,
            S::PAYLOAD_TOO_LARGE,
            S::UNAUTHORIZED,
        ] {
            assert!(
                matches!(classify(s), PushError::Rejected { status, .. } if status == s.as_u16())
            );
        }
        for s in [
            S::TOO_MANY_REQUESTS,
            S::INTERNAL_SERVER_ERROR,
            S::SERVICE_UNAVAILABLE,
        ] {
            assert!(matches!(classify(s), PushError::Transport(_)));
        }
    }
}

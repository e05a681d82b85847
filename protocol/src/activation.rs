//! Activation: the server's one-time offer (URI for QR / deep link, or a typed
//! code), the device's signed request and the server's signed result.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::encoding::{
    b64url, b64url_array, check_id, check_opt_text, check_text, check_version,
    crockford_decode_values, crockford_encode, crockford_value, parse_json, push_lp, to_json,
};
use super::error::{ProtocolError, Result};
use super::limits::{
    MAX_DEVICE_NAME_LEN, MAX_ID_LEN, MAX_LABEL_LEN, MAX_OFFER_URI_LEN, MAX_PAYLOAD_LEN,
    MAX_PUSH_ENDPOINT_LEN, MAX_PUSH_TOKEN_LEN, MAX_SEED_LEN, MAX_SERVER_URL_LEN, MIN_SEED_LEN,
};
use super::sealed::{Ephemeral, SealedBox, TAG_LEN};
use super::signed::{MessageSigner, Purpose, SignedMessage, sign_detached, verify_detached};
use super::{VERSION, Verification};
use crate::crypto::{
    AgreementKey, HmacAlgorithm, PublicKey, Signature, ct_eq, hmac, hmac_verify, random_array,
};

/// HMAC label for the offer-secret proof.
pub const OFFER_PROOF_LABEL: &str = "countersign/v1/offer-proof";
/// HPKE `info` for the OTP seed sealed in the activation result.
pub const SEED_HPKE_INFO: &str = "countersign/v1/activation-seed";
/// URI prefix of an activation offer.
pub const OFFER_URI_PREFIX: &str = "countersign://activate?";

/// Length of an offer id in bytes (8 Crockford base32 characters).
pub const OFFER_ID_LEN: usize = 5;
/// Length of an offer secret in bytes (16 Crockford base32 characters, 80 bits).
pub const OFFER_SECRET_LEN: usize = 10;
/// Characters in a typed activation code, without separators (id, secret, check).
pub const CODE_CHARS: usize = 25;

// ---------------------------------------------------------------------------
// Server URL

/// The server's base URL: `https://…`, or `http://` only for a loopback host
/// (`localhost`, 127.0.0.0/8, `::1`) during development. No credentials, query or
/// fragment. Stored in the `url` crate's normalised form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerUrl(String);

impl ServerUrl {
    /// Parses and normalises a server base URL.
    pub fn parse(text: &str) -> Result<Self> {
        const F: &str = "url";
        if text.len() > MAX_SERVER_URL_LEN {
            return Err(ProtocolError::TooLong {
                field: F,
                max: MAX_SERVER_URL_LEN,
            });
        }
        let url = url::Url::parse(text).map_err(|_| ProtocolError::Malformed { field: F })?;
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => return Err(ProtocolError::Malformed { field: F }),
        };
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
        if !scheme_ok
            || !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(ProtocolError::Malformed { field: F });
        }
        let s = String::from(url);
        if s.len() > MAX_SERVER_URL_LEN {
            return Err(ProtocolError::TooLong {
                field: F,
                max: MAX_SERVER_URL_LEN,
            });
        }
        Ok(Self(s))
    }

    /// The normalised URL text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------
// Offer id, secret, credentials and the typed code

/// A one-time activation offer id: 40 random bits, written as 8 Crockford base32
/// characters. Public (it names the offer); the secret authenticates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OfferId(pub [u8; OFFER_ID_LEN]);

impl OfferId {
    /// A fresh random offer id (the server must still check it is not in use).
    pub fn generate() -> Result<Self> {
        Ok(Self(random_array::<OFFER_ID_LEN>()?))
    }

    /// The 8-character text form.
    pub fn to_text(&self) -> String {
        crockford_encode(&self.0)
    }

    /// Parses the text form (case-insensitive; `I`/`L` read as 1, `O` as 0).
    pub fn parse(text: &str) -> Result<Self> {
        let bytes = decode_crockford_field("id", text, OFFER_ID_LEN)?;
        let arr = <[u8; OFFER_ID_LEN]>::try_from(bytes.as_slice())
            .map_err(|_| ProtocolError::BadEncoding { field: "id" })?;
        Ok(Self(arr))
    }
}

impl fmt::Display for OfferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// The offer's secret: 80 random bits. Never sent back to the server: the device
/// proves knowledge with an HMAC bound to its keys. Zeroized on drop; Debug redacts.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct OfferSecret([u8; OFFER_SECRET_LEN]);

impl OfferSecret {
    /// A fresh random secret.
    pub fn generate() -> Result<Self> {
        Ok(Self(random_array::<OFFER_SECRET_LEN>()?))
    }

    /// Wraps known secret bytes (test vectors, server storage).
    pub fn from_bytes(bytes: [u8; OFFER_SECRET_LEN]) -> Self {
        Self(bytes)
    }

    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8; OFFER_SECRET_LEN] {
        &self.0
    }

    /// The 16-character text form (secret: handle with care).
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(crockford_encode(&self.0))
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Self> {
        let bytes = Zeroizing::new(decode_crockford_field("secret", text, OFFER_SECRET_LEN)?);
        let mut out = [0u8; OFFER_SECRET_LEN];
        if bytes.len() != OFFER_SECRET_LEN {
            return Err(ProtocolError::BadEncoding { field: "secret" });
        }
        out.copy_from_slice(&bytes);
        Ok(Self(out))
    }

    /// `HMAC-SHA256(secret, "countersign/v1/offer-proof" || 0x00 || binding)`.
    fn proof(&self, binding: &[u8]) -> Vec<u8> {
        let mut msg = Vec::with_capacity(OFFER_PROOF_LABEL.len() + 1 + binding.len());
        msg.extend_from_slice(OFFER_PROOF_LABEL.as_bytes());
        msg.push(0);
        msg.extend_from_slice(binding);
        hmac(HmacAlgorithm::Sha256, &self.0, &msg)
    }
}

impl fmt::Debug for OfferSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OfferSecret(<redacted>)")
    }
}

fn decode_crockford_field(field: &'static str, text: &str, n: usize) -> Result<Vec<u8>> {
    let want = (n * 8).div_ceil(5);
    if text.len() != want {
        return Err(ProtocolError::BadEncoding { field });
    }
    let values = text
        .chars()
        .map(crockford_value)
        .collect::<Option<Vec<u8>>>()
        .ok_or(ProtocolError::BadEncoding { field })?;
    crockford_decode_values(&values, n).ok_or(ProtocolError::BadEncoding { field })
}

/// Luhn mod 32 check value over Crockford symbol values: detects every single-symbol
/// error and every transposition of adjacent symbols.
fn luhn32_check(values: &[u8]) -> u8 {
    let mut sum: u32 = 0;
    let mut factor: u32 = 2;
    for &v in values.iter().rev() {
        let addend = factor * u32::from(v);
        sum += addend / 32 + addend % 32;
        factor = if factor == 2 { 1 } else { 2 };
    }
    // (32 - sum % 32) % 32 is < 32 and fits in u8.
    ((32 - sum % 32) % 32) as u8
}

/// The offer id and secret: what a device needs, besides the server URL, to activate.
/// The typed code is this value in text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferCredentials {
    /// The offer id.
    pub id: OfferId,
    /// The offer secret.
    pub secret: OfferSecret,
}

impl OfferCredentials {
    /// Fresh random credentials.
    pub fn generate() -> Result<Self> {
        Ok(Self {
            id: OfferId::generate()?,
            secret: OfferSecret::generate()?,
        })
    }

    /// The typed activation code: 25 Crockford base32 characters (8 id, 16 secret,
    /// 1 Luhn mod 32 check) in five groups of five, e.g. `3KX9T-…`.
    pub fn to_code(&self) -> Zeroizing<String> {
        let mut chars = Zeroizing::new(String::with_capacity(CODE_CHARS));
        chars.push_str(&self.id.to_text());
        chars.push_str(&self.secret.to_text());
        let values: Zeroizing<Vec<u8>> =
            Zeroizing::new(chars.chars().filter_map(crockford_value).collect());
        let check = luhn32_check(&values);
        chars.push(
            super::encoding::CROCKFORD
                .get(usize::from(check))
                .map(|&c| char::from(c))
                .unwrap_or('0'),
        );
        let mut out = Zeroizing::new(String::with_capacity(CODE_CHARS + 4));
        for (i, c) in chars.chars().enumerate() {
            if i > 0 && i % 5 == 0 {
                out.push('-');
            }
            out.push(c);
        }
        out
    }

    /// Parses a typed code. Case, spaces and hyphens do not matter; `I`/`L` read as
    /// 1 and `O` as 0. A wrong check character gives [`ProtocolError::InvalidCode`].
    pub fn parse_code(text: &str) -> Result<Self> {
        if text.len() > 64 {
            return Err(ProtocolError::InvalidCode { reason: "too long" });
        }
        let mut values = Zeroizing::new(Vec::with_capacity(CODE_CHARS));
        for c in text.chars() {
            if c == '-' || c == ' ' {
                continue;
            }
            let v = crockford_value(c).ok_or(ProtocolError::InvalidCode {
                reason: "invalid character",
            })?;
            values.push(v);
        }
        if values.len() != CODE_CHARS {
            return Err(ProtocolError::InvalidCode {
                reason: "wrong length",
            });
        }
        let (body, check) = values.split_at(CODE_CHARS - 1);
        if check != [luhn32_check(body)] {
            return Err(ProtocolError::InvalidCode {
                reason: "check character mismatch (typo?)",
            });
        }
        let (id_vals, secret_vals) = body.split_at(8);
        let id =
            crockford_decode_values(id_vals, OFFER_ID_LEN).ok_or(ProtocolError::InvalidCode {
                reason: "invalid offer id",
            })?;
        let secret = Zeroizing::new(
            crockford_decode_values(secret_vals, OFFER_SECRET_LEN).ok_or(
                ProtocolError::InvalidCode {
                    reason: "invalid secret",
                },
            )?,
        );
        let mut id_arr = [0u8; OFFER_ID_LEN];
        let mut secret_arr = [0u8; OFFER_SECRET_LEN];
        if id.len() != OFFER_ID_LEN || secret.len() != OFFER_SECRET_LEN {
            return Err(ProtocolError::InvalidCode {
                reason: "wrong length",
            });
        }
        id_arr.copy_from_slice(&id);
        secret_arr.copy_from_slice(&secret);
        let out = Self {
            id: OfferId(id_arr),
            secret: OfferSecret(secret_arr),
        };
        secret_arr.zeroize();
        Ok(out)
    }
}

// ---------------------------------------------------------------------------
// The offer URI

/// A one-time activation offer as shown in a QR code or deep link:
/// `countersign://activate?v=1&url=…&id=…&secret=…&fp=…[&issuer=…][&label=…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationOffer {
    /// The server's base URL.
    pub server_url: ServerUrl,
    /// Offer id and secret.
    pub credentials: OfferCredentials,
    /// SHA-256 of the server signing key's SPKI DER: the device pins it.
    pub server_key_fingerprint: [u8; 32],
    /// Organisation name to show ("Example Corp").
    pub issuer: Option<String>,
    /// Account label to show ("alice@example.com").
    pub label: Option<String>,
}

/// Characters kept as-is in URI values (RFC 3986 unreserved); all else is %XX.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn pct_encode(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            for nibble in [b >> 4, b & 15] {
                let c = HEX.get(usize::from(nibble)).copied().unwrap_or(b'0');
                out.push(char::from(c));
            }
        }
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Strict percent-decoding: `%XX` escapes, unreserved characters and the RFC 3986
/// query characters `!$'()*,;:@/?` literally; `+`, `&`, `=`, `#`, spaces and controls
/// are rejected; the result must be UTF-8.
fn pct_decode(value: &str) -> Result<String> {
    let bad = ProtocolError::InvalidUri {
        reason: "bad percent-encoding",
    };
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_val);
            let lo = bytes.get(i + 2).copied().and_then(hex_val);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(bad),
            }
            i += 3;
        } else if is_unreserved(b) || b"!$'()*,;:@/?".contains(&b) {
            out.push(b);
            i += 1;
        } else {
            return Err(bad);
        }
    }
    String::from_utf8(out).map_err(|_| bad)
}

impl ActivationOffer {
    /// The canonical URI: parameters in the order `v, url, id, secret, fp, issuer,
    /// label`, every byte outside RFC 3986 "unreserved" percent-encoded (upper-case hex).
    pub fn to_uri(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(256));
        s.push_str(OFFER_URI_PREFIX);
        s.push_str("v=1&url=");
        pct_encode(&mut s, self.server_url.as_str());
        s.push_str("&id=");
        s.push_str(&self.credentials.id.to_text());
        s.push_str("&secret=");
        s.push_str(&self.credentials.secret.to_text());
        s.push_str("&fp=");
        s.push_str(&b64url(&self.server_key_fingerprint));
        if let Some(issuer) = &self.issuer {
            s.push_str("&issuer=");
            pct_encode(&mut s, issuer);
        }
        if let Some(label) = &self.label {
            s.push_str("&label=");
            pct_encode(&mut s, label);
        }
        s
    }

    /// Parses an offer URI strictly: exact scheme and host, no fragment, every
    /// parameter known and present at most once, `v`, `url`, `id`, `secret` and `fp`
    /// required, every value validated. Parameter order does not matter.
    pub fn parse_uri(uri: &str) -> Result<Self> {
        if uri.len() > MAX_OFFER_URI_LEN {
            return Err(ProtocolError::InvalidUri { reason: "too long" });
        }
        let query = uri
            .strip_prefix(OFFER_URI_PREFIX)
            .ok_or(ProtocolError::InvalidUri {
                reason: "not a countersign://activate? URI",
            })?;
        let mut v = None;
        let mut url = None;
        let mut id = None;
        let mut secret: Option<Zeroizing<String>> = None;
        let mut fp = None;
        let mut issuer = None;
        let mut label = None;
        for pair in query.split('&') {
            let (key, raw) = pair.split_once('=').ok_or(ProtocolError::InvalidUri {
                reason: "parameter without value",
            })?;
            let value = Zeroizing::new(pct_decode(raw)?);
            let slot = match key {
                "v" => &mut v,
                "url" => &mut url,
                "id" => &mut id,
                "fp" => &mut fp,
                "issuer" => &mut issuer,
                "label" => &mut label,
                "secret" => {
                    if secret.replace(value).is_some() {
                        return Err(ProtocolError::InvalidUri {
                            reason: "duplicate parameter",
                        });
                    }
                    continue;
                }
                _ => {
                    return Err(ProtocolError::InvalidUri {
                        reason: "unknown parameter",
                    });
                }
            };
            if slot.replace(value.to_string()).is_some() {
                return Err(ProtocolError::InvalidUri {
                    reason: "duplicate parameter",
                });
            }
        }
        let missing = |reason| ProtocolError::InvalidUri { reason };
        let v = v.ok_or(missing("missing v"))?;
        if v != "1" {
            let found = v.parse::<u64>().map_err(|_| ProtocolError::InvalidUri {
                reason: "bad version",
            })?;
            check_version(found)?;
        }
        let server_url = ServerUrl::parse(&url.ok_or(missing("missing url"))?)?;
        let id = OfferId::parse(&id.ok_or(missing("missing id"))?)?;
        let secret = OfferSecret::parse(&secret.ok_or(missing("missing secret"))?)?;
        let fp = b64url_array::<32>("fp", &fp.ok_or(missing("missing fp"))?)?;
        let offer = Self {
            server_url,
            credentials: OfferCredentials { id, secret },
            server_key_fingerprint: fp,
            issuer,
            label,
        };
        offer.validate()?;
        Ok(offer)
    }

    /// Checks the display fields (length, no control or bidi characters).
    pub fn validate(&self) -> Result<()> {
        check_opt_text("issuer", self.issuer.as_deref(), MAX_LABEL_LEN, false)?;
        check_opt_text("label", self.label.as_deref(), MAX_LABEL_LEN, false)
    }
}

// ---------------------------------------------------------------------------
// The device's request

/// The device's platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Android.
    Android,
    /// iOS / iPadOS.
    Ios,
    /// Desktop harness (Linux, macOS, Windows).
    Desktop,
}

/// How the server wakes the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum PushRegistration {
    /// Firebase Cloud Messaging registration token.
    Fcm {
        /// The FCM token.
        token: String,
    },
    /// Apple Push Notification service device token (hex).
    Apns {
        /// The APNs token.
        token: String,
    },
    /// UnifiedPush: Web Push (RFC 8291) to a distributor endpoint.
    #[serde(rename = "unifiedpush")]
    UnifiedPush {
        /// The push endpoint URL (https).
        endpoint: String,
        /// The subscription's P-256 public key, base64url of the 65-byte SEC1 point.
        p256dh: String,
        /// The subscription's 16-byte auth secret, base64url.
        auth: String,
    },
    /// No push: the device long-polls. (A struct variant so that unknown fields
    /// are rejected here too.)
    None {},
}

impl PushRegistration {
    /// Checks bounds and formats.
    pub fn validate(&self) -> Result<()> {
        let token_ok = |t: &str| {
            if t.is_empty() {
                return Err(ProtocolError::TooShort {
                    field: "token",
                    min: 1,
                });
            }
            if t.len() > MAX_PUSH_TOKEN_LEN {
                return Err(ProtocolError::TooLong {
                    field: "token",
                    max: MAX_PUSH_TOKEN_LEN,
                });
            }
            if !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ProtocolError::Malformed { field: "token" });
            }
            Ok(())
        };
        match self {
            Self::Fcm { token } | Self::Apns { token } => token_ok(token),
            Self::UnifiedPush {
                endpoint,
                p256dh,
                auth,
            } => {
                if endpoint.len() > MAX_PUSH_ENDPOINT_LEN {
                    return Err(ProtocolError::TooLong {
                        field: "endpoint",
                        max: MAX_PUSH_ENDPOINT_LEN,
                    });
                }
                let url = url::Url::parse(endpoint)
                    .map_err(|_| ProtocolError::Malformed { field: "endpoint" })?;
                if url.scheme() != "https" || url.as_str() != endpoint {
                    return Err(ProtocolError::Malformed { field: "endpoint" });
                }
                let point = b64url_array::<65>("p256dh", p256dh)?;
                PublicKey::from_sec1(&point)
                    .map_err(|_| ProtocolError::InvalidKey { field: "p256dh" })?;
                b64url_array::<16>("auth", auth)?;
                Ok(())
            }
            Self::None {} => Ok(()),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireActivationRequest {
    v: u64,
    offer: String,
    proof: String,
    dp: String,
    du: String,
    kem: String,
    du_sig: String,
    platform: Platform,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_name: Option<String>,
    push: PushRegistration,
    time: u64,
}

/// The device's activation request (payload of a message signed by Dp with
/// [`Purpose::ActivationRequest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationRequest {
    /// Which offer is being redeemed.
    pub offer_id: OfferId,
    /// `HMAC-SHA256(offer secret, offer-proof label || 0x00 || binding)`.
    pub proof: [u8; 32],
    /// Possession key Dp (signs requests, denials and this message).
    pub possession_key: PublicKey,
    /// User-verification key Du (signs approvals that needed a PIN or biometric).
    pub user_key: PublicKey,
    /// The first KEM key K, for HPKE.
    pub kem_key: PublicKey,
    /// Du's signature over the binding ([`Purpose::ActivationUserKey`]).
    pub user_key_proof: Signature,
    /// The device platform.
    pub platform: Platform,
    /// A name the user chose for the device.
    pub device_name: Option<String>,
    /// How to wake the device.
    pub push: PushRegistration,
    /// Device time, unix seconds.
    pub time: u64,
}

/// `u16be(len id) || id || Dp || Du || K` (SEC1 points): what the offer proof and
/// Du's signature commit to, so neither can be moved to other keys.
fn activation_binding(
    offer: &OfferId,
    dp: &PublicKey,
    du: &PublicKey,
    kem: &PublicKey,
) -> Result<Vec<u8>> {
    let mut b = Vec::with_capacity(2 + 8 + 3 * 65);
    push_lp(&mut b, "offer", offer.to_text().as_bytes())?;
    b.extend_from_slice(&dp.to_sec1());
    b.extend_from_slice(&du.to_sec1());
    b.extend_from_slice(&kem.to_sec1());
    Ok(b)
}

/// Everything the device supplies besides its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device platform.
    pub platform: Platform,
    /// A name the user chose for the device.
    pub device_name: Option<String>,
    /// How to wake the device.
    pub push: PushRegistration,
}

impl ActivationRequest {
    /// Builds a request: computes the offer proof and has Du sign the binding.
    pub fn new(
        offer: &OfferCredentials,
        possession_key: PublicKey,
        user_key: &dyn MessageSigner,
        kem_key: PublicKey,
        info: DeviceInfo,
        time: u64,
    ) -> Result<Self> {
        let du = user_key.public_key();
        let binding = activation_binding(&offer.id, &possession_key, &du, &kem_key)?;
        let tag = offer.secret.proof(&binding);
        let proof = <[u8; 32]>::try_from(tag.as_slice())
            .map_err(|_| ProtocolError::Malformed { field: "proof" })?;
        let user_key_proof = sign_detached(Purpose::ActivationUserKey, &binding, user_key)?;
        let req = Self {
            offer_id: offer.id,
            proof,
            possession_key,
            user_key: du,
            kem_key,
            user_key_proof,
            platform: info.platform,
            device_name: info.device_name,
            push: info.push,
            time,
        };
        req.validate()?;
        Ok(req)
    }

    fn validate(&self) -> Result<()> {
        check_opt_text(
            "device_name",
            self.device_name.as_deref(),
            MAX_DEVICE_NAME_LEN,
            false,
        )?;
        self.push.validate()?;
        if self.possession_key == self.user_key
            || self.possession_key == self.kem_key
            || self.user_key == self.kem_key
        {
            return Err(ProtocolError::Binding {
                what: "device keys must be distinct",
            });
        }
        Ok(())
    }

    /// The exact payload JSON.
    pub fn to_payload(&self) -> Result<Vec<u8>> {
        to_json(
            "activation request",
            &WireActivationRequest {
                v: VERSION,
                offer: self.offer_id.to_text(),
                proof: b64url(&self.proof),
                dp: b64url(&self.possession_key.to_sec1()),
                du: b64url(&self.user_key.to_sec1()),
                kem: b64url(&self.kem_key.to_sec1()),
                du_sig: b64url(self.user_key_proof.as_bytes()),
                platform: self.platform,
                device_name: self.device_name.clone(),
                push: self.push.clone(),
                time: self.time,
            },
        )
    }

    /// Parses a payload. Only [`Self::verify`] should call this on untrusted input.
    pub fn from_payload(bytes: &[u8]) -> Result<Self> {
        let w: WireActivationRequest = parse_json("activation request", bytes, MAX_PAYLOAD_LEN)?;
        check_version(w.v)?;
        let key = |field: &'static str, text: &str| -> Result<PublicKey> {
            let sec1 = b64url_array::<65>(field, text)?;
            PublicKey::from_sec1(&sec1).map_err(|_| ProtocolError::InvalidKey { field })
        };
        let sig = b64url_array::<64>("du_sig", &w.du_sig)?;
        let req = Self {
            offer_id: OfferId::parse(&w.offer)?,
            proof: b64url_array::<32>("proof", &w.proof)?,
            possession_key: key("dp", &w.dp)?,
            user_key: key("du", &w.du)?,
            kem_key: key("kem", &w.kem)?,
            user_key_proof: Signature::from_raw(&sig)
                .map_err(|_| ProtocolError::BadEncoding { field: "du_sig" })?,
            platform: w.platform,
            device_name: w.device_name,
            push: w.push,
            time: w.time,
        };
        req.validate()?;
        Ok(req)
    }

    /// Signs the request with the possession key Dp (which must be `possession_key`).
    pub fn sign(&self, possession: &dyn MessageSigner) -> Result<SignedMessage> {
        if possession.public_key() != self.possession_key {
            return Err(ProtocolError::UnknownKey);
        }
        SignedMessage::sign(Purpose::ActivationRequest, self.to_payload()?, possession)
    }

    /// Server side: checks a signed request is self-consistent: signed by the Dp it
    /// carries, and Du's proof verifies. The payload carries its own key, so it is
    /// parsed (strictly, bounded) before the signature check, and nothing in it is
    /// used until both signatures verify. The caller then looks the offer up by
    /// `offer_id` and calls [`Self::check_offer`].
    pub fn verify(msg: &SignedMessage) -> Result<Self> {
        let req = Self::from_payload(msg.payload_unverified())?;
        msg.verify(Purpose::ActivationRequest, &req.possession_key)?;
        let binding = activation_binding(
            &req.offer_id,
            &req.possession_key,
            &req.user_key,
            &req.kem_key,
        )?;
        verify_detached(
            Purpose::ActivationUserKey,
            &binding,
            &req.user_key,
            &req.user_key_proof,
        )?;
        Ok(req)
    }

    /// Server side: checks the offer proof against the stored secret, in constant time.
    pub fn check_offer(&self, offer: &OfferCredentials) -> Result<()> {
        if offer.id != self.offer_id {
            return Err(ProtocolError::Binding { what: "offer id" });
        }
        let binding = activation_binding(
            &self.offer_id,
            &self.possession_key,
            &self.user_key,
            &self.kem_key,
        )?;
        let mut msg = Vec::with_capacity(OFFER_PROOF_LABEL.len() + 1 + binding.len());
        msg.extend_from_slice(OFFER_PROOF_LABEL.as_bytes());
        msg.push(0);
        msg.extend_from_slice(&binding);
        if hmac_verify(
            HmacAlgorithm::Sha256,
            offer.secret.as_bytes(),
            &msg,
            &self.proof,
        ) {
            Ok(())
        } else {
            Err(ProtocolError::Binding {
                what: "offer proof",
            })
        }
    }
}

// ---------------------------------------------------------------------------
// The server's result

/// HMAC algorithm of the account's OTPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OtpAlgorithm {
    /// HMAC-SHA1 (RFC 4226 default; most compatible).
    #[serde(rename = "SHA1")]
    Sha1,
    /// HMAC-SHA256.
    #[serde(rename = "SHA256")]
    Sha256,
    /// HMAC-SHA512.
    #[serde(rename = "SHA512")]
    Sha512,
}

impl OtpAlgorithm {
    /// The crypto module's HMAC algorithm.
    pub fn hmac(self) -> HmacAlgorithm {
        match self {
            Self::Sha1 => HmacAlgorithm::Sha1,
            Self::Sha256 => HmacAlgorithm::Sha256,
            Self::Sha512 => HmacAlgorithm::Sha512,
        }
    }
}

/// OTP parameters of the account (offline TOTP; the push OTP uses `digits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtpParams {
    /// TOTP HMAC algorithm.
    pub algorithm: OtpAlgorithm,
    /// Code length, 6..=8.
    pub digits: u8,
    /// TOTP time step in seconds, 10..=300.
    pub period: u32,
}

impl OtpParams {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if !(6..=8).contains(&self.digits) {
            return Err(ProtocolError::Malformed { field: "digits" });
        }
        if !(10..=300).contains(&self.period) {
            return Err(ProtocolError::Malformed { field: "period" });
        }
        Ok(())
    }
}

/// How approvals are verified on this account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationPolicy {
    /// Verification a challenge asks for when the server has no risk signal.
    pub default: Verification,
    /// Minimum app PIN length, 4..=16.
    pub pin_min_length: u8,
    /// Wrong PINs before the account is wiped locally, 3..=20.
    pub pin_max_attempts: u8,
    /// Whether biometrics may stand in for the PIN.
    pub biometric_allowed: bool,
}

impl VerificationPolicy {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if !(4..=16).contains(&self.pin_min_length) {
            return Err(ProtocolError::Malformed {
                field: "pin_min_length",
            });
        }
        if !(3..=20).contains(&self.pin_max_attempts) {
            return Err(ProtocolError::Malformed {
                field: "pin_max_attempts",
            });
        }
        if self.default == Verification::Biometric && !self.biometric_allowed {
            return Err(ProtocolError::Malformed { field: "default" });
        }
        Ok(())
    }
}

/// What the server grants: the account and its settings (everything in the
/// activation result except the server key and the sealed seed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationGrant {
    /// The redeemed offer.
    pub offer_id: OfferId,
    /// Account id on this server.
    pub account_id: String,
    /// Device id on this server (used in request headers and challenge headers).
    pub device_id: String,
    /// User label to show ("alice@example.com").
    pub user_label: String,
    /// Organisation to show.
    pub issuer: Option<String>,
    /// Verification policy.
    pub policy: VerificationPolicy,
    /// OTP parameters.
    pub otp: OtpParams,
    /// Server time, unix seconds (lets the device detect a wrong clock).
    pub server_time: u64,
}

impl ActivationGrant {
    fn validate(&self) -> Result<()> {
        check_id("account", &self.account_id, MAX_ID_LEN)?;
        check_id("device", &self.device_id, MAX_ID_LEN)?;
        check_text("user", &self.user_label, MAX_LABEL_LEN, false)?;
        check_opt_text("issuer", self.issuer.as_deref(), MAX_LABEL_LEN, false)?;
        self.policy.validate()?;
        self.otp.validate()
    }

    /// HPKE aad for the seed: `lp(offer) || lp(account) || lp(device)`.
    fn seed_aad(&self) -> Result<Vec<u8>> {
        let mut aad = Vec::with_capacity(160);
        push_lp(&mut aad, "offer", self.offer_id.to_text().as_bytes())?;
        push_lp(&mut aad, "account", self.account_id.as_bytes())?;
        push_lp(&mut aad, "device", self.device_id.as_bytes())?;
        Ok(aad)
    }
}

/// How the device decides to trust the server key in an activation result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKeyPin {
    /// The fingerprint from the offer URI (QR / deep link), or from app configuration.
    Fingerprint([u8; 32]),
    /// Typed code without a configured fingerprint: trust on first use (TLS is then
    /// the only protection of this first exchange).
    TrustOnFirstUse,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireActivationResult {
    v: u64,
    offer: String,
    account: String,
    device: String,
    user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    server_key: String,
    policy: VerificationPolicy,
    otp: OtpParams,
    seed_enc: String,
    seed_ct: String,
    time: u64,
}

/// The server's activation result (payload of a message signed by S with
/// [`Purpose::ActivationResult`]). The OTP seed is HPKE-sealed to the device's K.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationResult {
    /// The account and its settings.
    pub grant: ActivationGrant,
    /// The server signing key S (the device stores it and verifies challenges with it).
    pub server_key: PublicKey,
    /// The OTP seed sealed to the device's K.
    pub sealed_seed: SealedBox,
}

impl ActivationResult {
    /// Server side: seals `seed` (16..=64 bytes) to the device's KEM key.
    pub fn seal(
        grant: ActivationGrant,
        server_key: PublicKey,
        seed: &[u8],
        device_kem: &PublicKey,
        ephemeral: Ephemeral<'_>,
    ) -> Result<Self> {
        grant.validate()?;
        if seed.len() < MIN_SEED_LEN {
            return Err(ProtocolError::TooShort {
                field: "seed",
                min: MIN_SEED_LEN,
            });
        }
        if seed.len() > MAX_SEED_LEN {
            return Err(ProtocolError::TooLong {
                field: "seed",
                max: MAX_SEED_LEN,
            });
        }
        let aad = grant.seed_aad()?;
        let sealed_seed =
            SealedBox::seal(device_kem, SEED_HPKE_INFO.as_bytes(), &aad, seed, ephemeral)?;
        Ok(Self {
            grant,
            server_key,
            sealed_seed,
        })
    }

    /// The exact payload JSON.
    pub fn to_payload(&self) -> Result<Vec<u8>> {
        let g = &self.grant;
        to_json(
            "activation result",
            &WireActivationResult {
                v: VERSION,
                offer: g.offer_id.to_text(),
                account: g.account_id.clone(),
                device: g.device_id.clone(),
                user: g.user_label.clone(),
                issuer: g.issuer.clone(),
                server_key: b64url(&self.server_key.to_sec1()),
                policy: g.policy,
                otp: g.otp,
                seed_enc: self.sealed_seed.enc_text(),
                seed_ct: self.sealed_seed.ct_text(),
                time: g.server_time,
            },
        )
    }

    /// Parses a payload (strict, bounded).
    pub fn from_payload(bytes: &[u8]) -> Result<Self> {
        let w: WireActivationResult = parse_json("activation result", bytes, MAX_PAYLOAD_LEN)?;
        check_version(w.v)?;
        let sec1 = b64url_array::<65>("server_key", &w.server_key)?;
        let server_key = PublicKey::from_sec1(&sec1).map_err(|_| ProtocolError::InvalidKey {
            field: "server_key",
        })?;
        let grant = ActivationGrant {
            offer_id: OfferId::parse(&w.offer)?,
            account_id: w.account,
            device_id: w.device,
            user_label: w.user,
            issuer: w.issuer,
            policy: w.policy,
            otp: w.otp,
            server_time: w.time,
        };
        grant.validate()?;
        let sealed_seed = SealedBox::from_text(
            "seed_enc",
            &w.seed_enc,
            "seed_ct",
            &w.seed_ct,
            MIN_SEED_LEN + TAG_LEN,
            MAX_SEED_LEN + TAG_LEN,
        )?;
        Ok(Self {
            grant,
            server_key,
            sealed_seed,
        })
    }

    /// Signs with the server key S (which must be `server_key`).
    pub fn sign(&self, server: &dyn MessageSigner) -> Result<SignedMessage> {
        if server.public_key() != self.server_key {
            return Err(ProtocolError::UnknownKey);
        }
        SignedMessage::sign(Purpose::ActivationResult, self.to_payload()?, server)
    }

    /// Device side: checks the embedded server key against the pin, the signature,
    /// and that the result answers `offer`. The payload carries S itself, so it is
    /// parsed (strictly, bounded) first; nothing in it is used until S is pinned and
    /// the signature verifies.
    pub fn verify(msg: &SignedMessage, pin: ServerKeyPin, offer: &OfferId) -> Result<Self> {
        let res = Self::from_payload(msg.payload_unverified())?;
        if let ServerKeyPin::Fingerprint(fp) = pin
            && !ct_eq(&fp, &res.server_key.fingerprint())
        {
            return Err(ProtocolError::PinMismatch);
        }
        msg.verify(Purpose::ActivationResult, &res.server_key)?;
        if res.grant.offer_id != *offer {
            return Err(ProtocolError::Binding { what: "offer id" });
        }
        Ok(res)
    }

    /// Device side: opens the OTP seed with the KEM private key sent in the request.
    pub fn open_seed(&self, kem: &AgreementKey) -> Result<Zeroizing<Vec<u8>>> {
        let aad = self.grant.seed_aad()?;
        let seed = self
            .sealed_seed
            .open(kem, SEED_HPKE_INFO.as_bytes(), &aad)?;
        if !(MIN_SEED_LEN..=MAX_SEED_LEN).contains(&seed.len()) {
            return Err(ProtocolError::Malformed { field: "seed" });
        }
        Ok(seed)
    }
}

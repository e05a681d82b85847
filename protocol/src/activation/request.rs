//! The device's activation request: its keys, the offer proof, and how to reach it.

use serde::{Deserialize, Serialize};

use super::{OFFER_PROOF_LABEL, OfferCredentials, OfferId};
use crate::VERSION;
use crate::crypto::{HmacAlgorithm, PublicKey, Signature, hmac_verify};
use crate::encoding::{
    b64url, b64url_array, check_opt_text, check_version, parse_json, push_lp, to_json,
};
use crate::error::{ProtocolError, Result};
use crate::limits::{
    MAX_DEVICE_NAME_LEN, MAX_PAYLOAD_LEN, MAX_PUSH_ENDPOINT_LEN, MAX_PUSH_TOKEN_LEN,
};
use crate::signed::{MessageSigner, Purpose, SignedMessage, sign_detached, verify_detached};

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

//! The server's activation result: the grant (account, policy, OTP parameters)
//! and the OTP seed sealed to the device's KEM key.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{OfferId, SEED_HPKE_INFO, ServerKeyPin};
use crate::crypto::{HmacAlgorithm, KeyAgreement, PublicKey, ct_eq};
use crate::encoding::{
    b64url, b64url_array, check_id, check_opt_text, check_text, check_version, parse_json, push_lp,
    to_json,
};
use crate::error::{ProtocolError, Result};
use crate::limits::{MAX_ID_LEN, MAX_LABEL_LEN, MAX_PAYLOAD_LEN, MAX_SEED_LEN, MIN_SEED_LEN};
use crate::sealed::{Ephemeral, SealedBox, TAG_LEN};
use crate::signed::{MessageSigner, Purpose, SignedMessage};
use crate::{VERSION, Verification};

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

    /// Device side: opens the OTP seed with the KEM key whose public key was sent
    /// in the request (used only through ECDH: it may be a platform keystore key).
    pub fn open_seed(&self, kem: &dyn KeyAgreement) -> Result<Zeroizing<Vec<u8>>> {
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

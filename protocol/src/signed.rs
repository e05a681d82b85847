//! Signed messages: the exact payload bytes, a key id and an ECDSA P-256 signature
//! over a per-purpose domain label, `0x00`, and those bytes.

use serde::{Deserialize, Serialize};

use super::encoding::{b64url, b64url_array, b64url_decode, check_version, parse_json, to_json};
use super::error::{ProtocolError, Result};
use super::limits::{MAX_KID_LEN, MAX_PAYLOAD_LEN, MAX_SIGNED_MESSAGE_LEN};
use crate::crypto::{CryptoError, PublicKey, Signature, SigningKey};

/// Separates the domain label from the payload in every signing input.
pub const LABEL_SEPARATOR: u8 = 0x00;

/// What a signature is for. Each purpose has its own domain label, so a signature
/// made for one purpose never verifies for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Device → server activation request, signed by the possession key Dp.
    ActivationRequest,
    /// The user-verification key Du's proof of possession inside an activation request.
    ActivationUserKey,
    /// Server → device activation result, signed by the server key S.
    ActivationResult,
    /// Server → device sealed challenge envelope, signed by S.
    Challenge,
    /// Device → server answer signed by Dp (denials, and approvals that needed no verification).
    Answer,
    /// Device → server approval signed by Du after a PIN or biometric check.
    AnswerUserVerified,
    /// Device → server HTTP request signature, signed by Dp.
    Request,
    /// Server → device offline (OCRA) QR challenge, signed by S and shown as a QR
    /// code by the relying party; the user types the response.
    OfflineChallenge,
}

impl Purpose {
    /// Every purpose, for tests and documentation.
    pub const ALL: [Purpose; 8] = [
        Purpose::ActivationRequest,
        Purpose::ActivationUserKey,
        Purpose::ActivationResult,
        Purpose::Challenge,
        Purpose::Answer,
        Purpose::AnswerUserVerified,
        Purpose::Request,
        Purpose::OfflineChallenge,
    ];

    /// The domain label that starts the signing input.
    pub fn label(self) -> &'static str {
        match self {
            Purpose::ActivationRequest => "countersign/v1/activation-request",
            Purpose::ActivationUserKey => "countersign/v1/activation-user-key",
            Purpose::ActivationResult => "countersign/v1/activation",
            Purpose::Challenge => "countersign/v1/challenge",
            Purpose::Answer => "countersign/v1/answer",
            Purpose::AnswerUserVerified => "countersign/v1/answer-uv",
            Purpose::Request => "countersign/v1/request",
            Purpose::OfflineChallenge => "countersign/v1/offline-challenge",
        }
    }

    /// `label || 0x00 || message`: the bytes that are actually signed.
    pub fn signing_input(self, message: &[u8]) -> Vec<u8> {
        let label = self.label().as_bytes();
        let mut out = Vec::with_capacity(label.len() + 1 + message.len());
        out.extend_from_slice(label);
        out.push(LABEL_SEPARATOR);
        out.extend_from_slice(message);
        out
    }
}

/// Something that can sign with a P-256 key: a software [`SigningKey`] or a
/// platform key (Secure Enclave, StrongBox) behind the app's key vault.
pub trait MessageSigner {
    /// The public key whose key id goes into signed messages.
    fn public_key(&self) -> PublicKey;
    /// Signs `message` (ECDSA P-256 / SHA-256, raw r||s).
    fn sign(&self, message: &[u8]) -> Result<Signature, CryptoError>;
}

/// Software keys sign with ring's randomised ECDSA.
impl MessageSigner for SigningKey {
    fn public_key(&self) -> PublicKey {
        SigningKey::public_key(self)
    }
    fn sign(&self, message: &[u8]) -> Result<Signature, CryptoError> {
        SigningKey::sign(self, message)
    }
}

/// Signs with RFC 6979 deterministic nonces: used for the published test vectors,
/// where the same inputs must give the same bytes.
#[derive(Debug)]
pub struct DeterministicSigner<'a>(pub &'a SigningKey);

impl MessageSigner for DeterministicSigner<'_> {
    fn public_key(&self) -> PublicKey {
        self.0.public_key()
    }
    fn sign(&self, message: &[u8]) -> Result<Signature, CryptoError> {
        self.0.sign_deterministic(message)
    }
}

/// Signs `purpose`'s signing input over `message` (no envelope): used for the
/// detached proofs and request signatures.
pub fn sign_detached(
    purpose: Purpose,
    message: &[u8],
    signer: &dyn MessageSigner,
) -> Result<Signature> {
    Ok(signer.sign(&purpose.signing_input(message))?)
}

/// Verifies a detached signature made by [`sign_detached`].
pub fn verify_detached(
    purpose: Purpose,
    message: &[u8],
    key: &PublicKey,
    sig: &Signature,
) -> Result<()> {
    key.verify(&purpose.signing_input(message), sig)
        .map_err(|_| ProtocolError::BadSignature)
}

/// The wire form: `{"v":1,"kid":…,"payload":…,"sig":…}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSigned {
    v: u64,
    kid: String,
    payload: String,
    sig: String,
}

/// A signed message: the exact payload bytes, the signer's key id and the signature.
///
/// The payload is verified as bytes and parsed only after verification; it is never
/// re-serialised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedMessage {
    kid: String,
    payload: Vec<u8>,
    sig: Signature,
}

impl SignedMessage {
    /// Signs `payload` for `purpose`.
    pub fn sign(purpose: Purpose, payload: Vec<u8>, signer: &dyn MessageSigner) -> Result<Self> {
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(ProtocolError::TooLong {
                field: "payload",
                max: MAX_PAYLOAD_LEN,
            });
        }
        let sig = sign_detached(purpose, &payload, signer)?;
        Ok(Self {
            kid: signer.public_key().key_id(),
            payload,
            sig,
        })
    }

    /// The signer's key id (see `PublicKey::key_id`), to look the key up.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.sig
    }

    /// The payload bytes **before** verification. Only for messages that carry
    /// their own key (activation requests); everything else uses [`Self::verify`].
    pub fn payload_unverified(&self) -> &[u8] {
        &self.payload
    }

    /// Checks that the message is signed by `key` for `purpose` and returns the
    /// verified payload bytes.
    pub fn verify(&self, purpose: Purpose, key: &PublicKey) -> Result<&[u8]> {
        if self.kid != key.key_id() {
            return Err(ProtocolError::UnknownKey);
        }
        verify_detached(purpose, &self.payload, key, &self.sig)?;
        Ok(&self.payload)
    }

    /// Serialises the envelope to compact JSON.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        to_json(
            "signed message",
            &WireSigned {
                v: super::VERSION,
                kid: self.kid.clone(),
                payload: b64url(&self.payload),
                sig: b64url(self.sig.as_bytes()),
            },
        )
    }

    /// Parses an envelope (no verification yet).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let w: WireSigned = parse_json("signed message", bytes, MAX_SIGNED_MESSAGE_LEN)?;
        check_version(w.v)?;
        // Key ids are base64url of 16 bytes; bound and charset-check before use.
        if w.kid.len() > MAX_KID_LEN {
            return Err(ProtocolError::TooLong {
                field: "kid",
                max: MAX_KID_LEN,
            });
        }
        b64url_array::<16>("kid", &w.kid)?;
        let payload = b64url_decode("payload", &w.payload, MAX_PAYLOAD_LEN)?;
        let raw = b64url_array::<64>("sig", &w.sig)?;
        let sig =
            Signature::from_raw(&raw).map_err(|_| ProtocolError::BadEncoding { field: "sig" })?;
        Ok(Self {
            kid: w.kid,
            payload,
            sig,
        })
    }
}

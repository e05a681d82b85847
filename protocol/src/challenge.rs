//! The push challenge: plaintext JSON, sealed with HPKE to the device's current KEM
//! key with a header as associated data, the whole envelope signed by S.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::encoding::{
    b64url, b64url_bounded, b64url_decode, check_digits, check_id, check_opt_text, check_text,
    check_version, parse_json, to_json,
};
use super::error::{ProtocolError, Result};
use super::limits::{
    MAX_AMOUNT_LEN, MAX_CHALLENGE_CIPHERTEXT_LEN, MAX_CHALLENGE_LEN, MAX_CHALLENGE_LIFETIME,
    MAX_DISPLAY_TEXT_LEN, MAX_HEADER_LEN, MAX_ID_LEN, MAX_IP_LEN, MAX_KID_LEN, MAX_LOCATION_LEN,
    MAX_MATCH_DIGITS, MAX_PAYEE_LEN, MAX_PAYLOAD_LEN, MAX_PICK_CHOICES, MAX_RANDOM_ID_BYTES,
    MAX_RP_NAME_LEN, MAX_USER_AGENT_LEN, MIN_MATCH_DIGITS, MIN_PICK_CHOICES, MIN_RANDOM_ID_BYTES,
};
use super::sealed::{Ephemeral, SealedBox, TAG_LEN};
use super::signed::{MessageSigner, Purpose, SignedMessage};
use super::{VERSION, Verification};
use crate::crypto::{KeyAgreement, PublicKey, random_array, sha256};

/// HPKE `info` for challenges.
pub const CHALLENGE_HPKE_INFO: &str = "countersign/v1/challenge";

/// Login, transaction signing, or approving a move to a new phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeKind {
    /// A login: optional display text, no transaction fields.
    Login,
    /// Transaction signing: `transaction` fields required.
    Transaction,
    /// The user's enrolled device approves a new phone taking over the
    /// account (docs/PROTOCOL.md §14): `text` (naming the new phone) required,
    /// no transaction fields.
    Transfer,
}

/// Where the request comes from, as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeContext {
    /// Relying-party name ("Example VPN").
    pub rp: String,
    /// Client IP address (canonical text form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Coarse location ("Berlin, DE").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// User agent summary ("Firefox on Linux").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl ChallengeContext {
    fn validate(&self) -> Result<()> {
        check_text("rp", &self.rp, MAX_RP_NAME_LEN, false)?;
        if let Some(ip) = &self.ip {
            if ip.len() > MAX_IP_LEN {
                return Err(ProtocolError::TooLong {
                    field: "ip",
                    max: MAX_IP_LEN,
                });
            }
            // Canonical form only, so what is shown is what was signed.
            let parsed: IpAddr = ip
                .parse()
                .map_err(|_| ProtocolError::Malformed { field: "ip" })?;
            if parsed.to_string() != *ip {
                return Err(ProtocolError::Malformed { field: "ip" });
            }
        }
        check_opt_text(
            "location",
            self.location.as_deref(),
            MAX_LOCATION_LEN,
            false,
        )?;
        check_opt_text(
            "user_agent",
            self.user_agent.as_deref(),
            MAX_USER_AGENT_LEN,
            false,
        )
    }
}

/// Transaction fields to display and sign (PSD2 dynamic linking).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionDetails {
    /// Decimal amount: 1–15 digits, optionally `.` and 1–4 digits, no sign or exponent.
    pub amount: String,
    /// ISO 4217 currency code (three upper-case letters).
    pub currency: String,
    /// Payee name or account.
    pub payee: String,
}

impl TransactionDetails {
    fn validate(&self) -> Result<()> {
        let a = &self.amount;
        if a.len() > MAX_AMOUNT_LEN {
            return Err(ProtocolError::TooLong {
                field: "amount",
                max: MAX_AMOUNT_LEN,
            });
        }
        let (int, frac) = match a.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (a.as_str(), None),
        };
        check_digits("amount", int, 1, 15)?;
        if let Some(f) = frac {
            check_digits("amount", f, 1, 4)?;
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ProtocolError::Malformed { field: "currency" });
        }
        check_text("payee", &self.payee, MAX_PAYEE_LEN, false)
    }
}

/// Number matching (NIST SP 800-63B-4 §3.1.3 for `type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum NumberMatching {
    /// No number.
    Off,
    /// The user picks the number shown on the login page from these choices.
    Pick {
        /// 2..=6 distinct numbers of 2..=8 digits.
        choices: Vec<String>,
    },
    /// The user types the number shown on the login page. The number itself is
    /// deliberately absent: the phone must not learn it except from the user.
    Type {
        /// How many digits to expect (2..=8).
        digits: u8,
    },
    /// Reverse matching (QR login): the phone shows this number and the user
    /// types it on the login page; the approval carries no number. A page
    /// relayed by a phisher then needs the user to read the number to them.
    Show {
        /// 2..=8 digits.
        number: String,
    },
}

impl NumberMatching {
    fn validate(&self) -> Result<()> {
        match self {
            Self::Off => Ok(()),
            Self::Pick { choices } => {
                if choices.len() < MIN_PICK_CHOICES {
                    return Err(ProtocolError::TooShort {
                        field: "choices",
                        min: MIN_PICK_CHOICES,
                    });
                }
                if choices.len() > MAX_PICK_CHOICES {
                    return Err(ProtocolError::TooLong {
                        field: "choices",
                        max: MAX_PICK_CHOICES,
                    });
                }
                for (i, c) in choices.iter().enumerate() {
                    check_digits("choices", c, MIN_MATCH_DIGITS, MAX_MATCH_DIGITS)?;
                    if choices.iter().take(i).any(|p| p == c) {
                        return Err(ProtocolError::Malformed { field: "choices" });
                    }
                }
                Ok(())
            }
            Self::Type { digits } => {
                if (MIN_MATCH_DIGITS..=MAX_MATCH_DIGITS).contains(&usize::from(*digits)) {
                    Ok(())
                } else {
                    Err(ProtocolError::Malformed { field: "digits" })
                }
            }
            Self::Show { number } => {
                check_digits("number", number, MIN_MATCH_DIGITS, MAX_MATCH_DIGITS)
            }
        }
    }

    /// Checks a number the user entered or picked has an acceptable shape for this
    /// mode (the server compares the value itself).
    pub fn check_entry(&self, number: Option<&str>) -> Result<()> {
        match (self, number) {
            (Self::Off | Self::Show { .. }, None) => Ok(()),
            (Self::Off | Self::Show { .. }, Some(_)) => Err(ProtocolError::Binding {
                what: "number given but not asked for",
            }),
            (_, None) => Err(ProtocolError::Binding {
                what: "number missing",
            }),
            (Self::Pick { choices }, Some(n)) => {
                if choices.iter().any(|c| c == n) {
                    Ok(())
                } else {
                    Err(ProtocolError::Binding {
                        what: "number is not one of the choices",
                    })
                }
            }
            (Self::Type { digits }, Some(n)) => {
                let d = usize::from(*digits);
                check_digits("number", n, d, d)
            }
        }
    }
}

/// A push challenge as the device shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Transaction id: base64url of 16..=32 random bytes.
    pub tx_id: String,
    /// The account this challenge is for.
    pub account_id: String,
    /// Issued at, unix seconds.
    pub issued_at: u64,
    /// Expires at, unix seconds (1..=600 s after `issued_at`).
    pub expires_at: u64,
    /// Login or transaction.
    pub kind: ChallengeKind,
    /// Where the request comes from.
    pub context: ChallengeContext,
    /// Free display text (newlines allowed).
    pub text: Option<String>,
    /// Transaction fields (required for, and only for, `Transaction`).
    pub transaction: Option<TransactionDetails>,
    /// Verification required before approving.
    pub verification: Verification,
    /// Number matching mode.
    pub number_matching: NumberMatching,
    /// Base64url of 16..=32 random bytes: makes every plaintext (and hash) unique.
    pub nonce: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireChallenge {
    v: u64,
    tx: String,
    account: String,
    iat: u64,
    exp: u64,
    kind: ChallengeKind,
    context: ChallengeContext,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transaction: Option<TransactionDetails>,
    verification: Verification,
    number_matching: NumberMatching,
    nonce: String,
}

/// Fresh random base64url id of 16 bytes (transaction ids, nonces).
pub fn random_id() -> Result<String> {
    Ok(b64url(&random_array::<16>()?))
}

fn check_random_id(field: &'static str, s: &str) -> Result<()> {
    b64url_bounded(field, s, MIN_RANDOM_ID_BYTES, MAX_RANDOM_ID_BYTES).map(|_| ())
}

impl Challenge {
    /// Checks every field and the combinations.
    pub fn validate(&self) -> Result<()> {
        check_random_id("tx", &self.tx_id)?;
        check_id("account", &self.account_id, MAX_ID_LEN)?;
        check_random_id("nonce", &self.nonce)?;
        if self.expires_at <= self.issued_at
            || self.expires_at - self.issued_at > MAX_CHALLENGE_LIFETIME
        {
            return Err(ProtocolError::Malformed { field: "exp" });
        }
        self.context.validate()?;
        check_opt_text("text", self.text.as_deref(), MAX_DISPLAY_TEXT_LEN, true)?;
        match (self.kind, &self.transaction) {
            (ChallengeKind::Login, None) => {}
            (ChallengeKind::Transaction, Some(t)) => t.validate()?,
            // What is being approved is only in the text: it must be there.
            (ChallengeKind::Transfer, None) if self.text.is_some() => {}
            (ChallengeKind::Transfer, None) => {
                return Err(ProtocolError::Malformed { field: "text" });
            }
            _ => {
                return Err(ProtocolError::Malformed {
                    field: "transaction",
                });
            }
        }
        self.number_matching.validate()
    }

    /// The exact plaintext JSON (what is sealed, shown and hashed).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let bytes = to_json(
            "challenge",
            &WireChallenge {
                v: VERSION,
                tx: self.tx_id.clone(),
                account: self.account_id.clone(),
                iat: self.issued_at,
                exp: self.expires_at,
                kind: self.kind,
                context: self.context.clone(),
                text: self.text.clone(),
                transaction: self.transaction.clone(),
                verification: self.verification,
                number_matching: self.number_matching.clone(),
                nonce: self.nonce.clone(),
            },
        )?;
        if bytes.len() > MAX_CHALLENGE_LEN {
            return Err(ProtocolError::MessageTooLarge {
                what: "challenge",
                len: bytes.len(),
                max: MAX_CHALLENGE_LEN,
            });
        }
        Ok(bytes)
    }

    /// Parses plaintext JSON strictly.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_CHALLENGE_LEN {
            return Err(ProtocolError::MessageTooLarge {
                what: "challenge",
                len: bytes.len(),
                max: MAX_CHALLENGE_LEN,
            });
        }
        let w: WireChallenge = parse_json("challenge", bytes, MAX_CHALLENGE_LEN)?;
        check_version(w.v)?;
        let c = Self {
            tx_id: w.tx,
            account_id: w.account,
            issued_at: w.iat,
            expires_at: w.exp,
            kind: w.kind,
            context: w.context,
            text: w.text,
            transaction: w.transaction,
            verification: w.verification,
            number_matching: w.number_matching,
            nonce: w.nonce,
        };
        c.validate()?;
        Ok(c)
    }
}

/// SHA-256 of the exact plaintext bytes the device decrypted and showed.
pub fn challenge_hash(plaintext: &[u8]) -> [u8; 32] {
    sha256(plaintext)
}

/// The cleartext header of a sealed challenge; its exact JSON bytes are the HPKE aad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeHeader {
    /// Transaction id (same as in the challenge).
    pub tx_id: String,
    /// Account id (same as in the challenge).
    pub account_id: String,
    /// The device the challenge is sealed for.
    pub device_id: String,
    /// Key id of the device KEM key used (selects the private key).
    pub kem_kid: String,
    /// Expiry (same as in the challenge).
    pub expires_at: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireHeader {
    v: u64,
    tx: String,
    account: String,
    device: String,
    kem_kid: String,
    exp: u64,
}

impl ChallengeHeader {
    fn validate(&self) -> Result<()> {
        check_random_id("tx", &self.tx_id)?;
        check_id("account", &self.account_id, MAX_ID_LEN)?;
        check_id("device", &self.device_id, MAX_ID_LEN)?;
        if self.kem_kid.len() > MAX_KID_LEN {
            return Err(ProtocolError::TooLong {
                field: "kem_kid",
                max: MAX_KID_LEN,
            });
        }
        super::encoding::b64url_array::<16>("kem_kid", &self.kem_kid).map(|_| ())
    }

    /// The exact header JSON (the HPKE aad).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        self.validate()?;
        to_json(
            "challenge header",
            &WireHeader {
                v: VERSION,
                tx: self.tx_id.clone(),
                account: self.account_id.clone(),
                device: self.device_id.clone(),
                kem_kid: self.kem_kid.clone(),
                exp: self.expires_at,
            },
        )
    }

    /// Parses header JSON strictly.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let w: WireHeader = parse_json("challenge header", bytes, MAX_HEADER_LEN)?;
        check_version(w.v)?;
        let h = Self {
            tx_id: w.tx,
            account_id: w.account,
            device_id: w.device,
            kem_kid: w.kem_kid,
            expires_at: w.exp,
        };
        h.validate()?;
        Ok(h)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSealed {
    v: u64,
    header: String,
    enc: String,
    ct: String,
}

/// Who the device is, for checking a challenge is meant for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceBinding {
    /// This device's account id.
    pub account_id: String,
    /// This device's device id.
    pub device_id: String,
}

/// A sealed challenge: header (cleartext, authenticated as aad) and HPKE box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedChallenge {
    header: ChallengeHeader,
    header_bytes: Vec<u8>,
    sealed: SealedBox,
}

/// A challenge the device has verified, decrypted and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedChallenge {
    /// The challenge.
    pub challenge: Challenge,
    /// The exact decrypted bytes.
    pub plaintext: Vec<u8>,
    /// `challenge_hash(plaintext)`: goes into the answer.
    pub hash: [u8; 32],
}

impl OpenedChallenge {
    /// Re-reads a challenge this device opened earlier and stored (its exact
    /// plaintext): parses it strictly again and recomputes the hash. Checks
    /// nothing else: the envelope was verified when it was received.
    pub fn from_stored_plaintext(plaintext: &[u8]) -> Result<Self> {
        Ok(Self {
            challenge: Challenge::from_json(plaintext)?,
            plaintext: plaintext.to_vec(),
            hash: challenge_hash(plaintext),
        })
    }
}

impl SealedChallenge {
    /// Server side: seals `challenge` to `device_kem` for `device_id`.
    pub fn seal(
        challenge: &Challenge,
        device_id: &str,
        device_kem: &PublicKey,
        ephemeral: Ephemeral<'_>,
    ) -> Result<Self> {
        let plaintext = challenge.to_json()?;
        let header = ChallengeHeader {
            tx_id: challenge.tx_id.clone(),
            account_id: challenge.account_id.clone(),
            device_id: device_id.to_owned(),
            kem_kid: device_kem.key_id(),
            expires_at: challenge.expires_at,
        };
        let header_bytes = header.to_json()?;
        let sealed = SealedBox::seal(
            device_kem,
            CHALLENGE_HPKE_INFO.as_bytes(),
            &header_bytes,
            &plaintext,
            ephemeral,
        )?;
        Ok(Self {
            header,
            header_bytes,
            sealed,
        })
    }

    /// The header.
    pub fn header(&self) -> &ChallengeHeader {
        &self.header
    }

    /// The exact header bytes (HPKE aad).
    pub fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }

    /// The HPKE box.
    pub fn sealed(&self) -> &SealedBox {
        &self.sealed
    }

    /// The exact envelope payload JSON.
    pub fn to_payload(&self) -> Result<Vec<u8>> {
        to_json(
            "sealed challenge",
            &WireSealed {
                v: VERSION,
                header: b64url(&self.header_bytes),
                enc: self.sealed.enc_text(),
                ct: self.sealed.ct_text(),
            },
        )
    }

    /// Parses an envelope payload strictly (call on verified bytes).
    pub fn from_payload(bytes: &[u8]) -> Result<Self> {
        let w: WireSealed = parse_json("sealed challenge", bytes, MAX_PAYLOAD_LEN)?;
        check_version(w.v)?;
        let header_bytes = b64url_decode("header", &w.header, MAX_HEADER_LEN)?;
        let header = ChallengeHeader::from_json(&header_bytes)?;
        let sealed = SealedBox::from_text(
            "enc",
            &w.enc,
            "ct",
            &w.ct,
            TAG_LEN + 1,
            MAX_CHALLENGE_CIPHERTEXT_LEN,
        )?;
        Ok(Self {
            header,
            header_bytes,
            sealed,
        })
    }

    /// Signs the envelope with the server key S.
    pub fn sign(&self, server: &dyn MessageSigner) -> Result<SignedMessage> {
        SignedMessage::sign(Purpose::Challenge, self.to_payload()?, server)
    }

    /// Device side: verifies S's signature, then parses the envelope.
    pub fn verify(msg: &SignedMessage, server_key: &PublicKey) -> Result<Self> {
        let payload = msg.verify(Purpose::Challenge, server_key)?;
        Self::from_payload(payload)
    }

    /// Device side: checks the header is for this device and not expired (with
    /// `max_skew` seconds of clock tolerance), decrypts with the KEM key the header
    /// names, parses the challenge and checks it agrees with the header.
    ///
    /// `kem` is the device's KEM key K as a [`KeyAgreement`]: its public key and
    /// ECDH are all the decryption needs, so K may stay in a platform keystore.
    pub fn open(
        &self,
        kem: &dyn KeyAgreement,
        device: &DeviceBinding,
        now: u64,
        max_skew: u64,
    ) -> Result<OpenedChallenge> {
        let h = &self.header;
        if h.device_id != device.device_id {
            return Err(ProtocolError::Binding { what: "device id" });
        }
        if h.account_id != device.account_id {
            return Err(ProtocolError::Binding { what: "account id" });
        }
        if now > h.expires_at.saturating_add(max_skew) {
            return Err(ProtocolError::Expired {
                expires: h.expires_at,
                now,
            });
        }
        if kem.public_key().key_id() != h.kem_kid {
            return Err(ProtocolError::UnknownKey);
        }
        let plaintext =
            self.sealed
                .open(kem, CHALLENGE_HPKE_INFO.as_bytes(), &self.header_bytes)?;
        let challenge = Challenge::from_json(&plaintext)?;
        if challenge.tx_id != h.tx_id {
            return Err(ProtocolError::Binding { what: "tx id" });
        }
        if challenge.account_id != h.account_id {
            return Err(ProtocolError::Binding { what: "account id" });
        }
        if challenge.expires_at != h.expires_at {
            return Err(ProtocolError::Binding { what: "expiry" });
        }
        if challenge.issued_at > now.saturating_add(max_skew) {
            return Err(ProtocolError::NotYetValid {
                not_before: challenge.issued_at,
                now,
            });
        }
        let hash = challenge_hash(&plaintext);
        Ok(OpenedChallenge {
            challenge,
            plaintext: plaintext.to_vec(),
            hash,
        })
    }
}

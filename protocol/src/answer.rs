//! The device's answer to a challenge: approve or deny, signed by Du when the
//! approval needed user verification, else by Dp.

use std::fmt;

use serde::{Deserialize, Serialize};

use zeroize::Zeroizing;

use super::challenge::{Challenge, NumberMatching, OpenedChallenge};
use super::encoding::{
    b64url, b64url_array, b64url_bounded, check_digits, check_id, check_version, parse_json,
    to_json,
};
use super::error::{ProtocolError, Result};
use super::limits::{
    MAX_ID_LEN, MAX_MATCH_DIGITS, MAX_OTP_DIGITS, MAX_PAYLOAD_LEN, MAX_RANDOM_ID_BYTES,
    MIN_MATCH_DIGITS, MIN_OTP_DIGITS, MIN_RANDOM_ID_BYTES,
};
use super::signed::{MessageSigner, Purpose, SignedMessage};
use super::{VERSION, Verification};
use crate::crypto::{PublicKey, ct_eq};

/// Approve or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The user approves.
    Approve,
    /// The user denies.
    Deny,
}

/// Why the user denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    /// "This wasn't me": a fraud report; the server throttles pushes.
    NotMe,
    /// "I tapped by mistake".
    Mistake,
}

/// The device's answer. `Debug` redacts the push OTP.
#[derive(Clone, PartialEq, Eq)]
pub struct Answer {
    /// The challenge's transaction id.
    pub tx_id: String,
    /// The account id.
    pub account_id: String,
    /// Approve or deny.
    pub decision: Decision,
    /// Required for a denial, absent for an approval.
    pub reason: Option<DenyReason>,
    /// The number the user typed or picked (approvals with number matching only).
    pub number: Option<String>,
    /// The push OTP bound to this challenge (approvals only).
    pub otp: Option<String>,
    /// SHA-256 of the exact challenge plaintext that was shown.
    pub challenge_hash: [u8; 32],
    /// Device time of the decision, unix seconds.
    pub time: u64,
    /// The device's next KEM public key (each answer rotates K).
    pub next_kem: PublicKey,
    /// The verification the user actually passed (`none` for denials).
    pub verification: Verification,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireAnswer {
    v: u64,
    tx: String,
    account: String,
    decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<DenyReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    otp: Option<String>,
    challenge_hash: String,
    time: u64,
    next_kem: String,
    verification: Verification,
}

/// What the server knows about the challenge an answer must match.
#[derive(Debug, Clone, Copy)]
pub struct AnswerExpectation<'a> {
    /// The challenge as the server created it.
    pub challenge: &'a Challenge,
    /// SHA-256 of the exact plaintext the server sealed.
    pub challenge_hash: &'a [u8; 32],
    /// The number shown on the login page (`type`) or the correct choice (`pick`);
    /// `None` when number matching is off.
    pub expected_number: Option<&'a str>,
    /// Server time, unix seconds.
    pub now: u64,
    /// Accepted clock skew between the device's `time` and the server's clock,
    /// seconds (the server uses its request window, 300 s by default).
    pub max_skew: u64,
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("tx_id", &self.tx_id)
            .field("account_id", &self.account_id)
            .field("decision", &self.decision)
            .field("reason", &self.reason)
            .field("number", &self.number)
            .field("otp", &self.otp.as_ref().map(|_| "<redacted>"))
            .field("challenge_hash", &self.challenge_hash)
            .field("time", &self.time)
            .field("next_kem", &self.next_kem)
            .field("verification", &self.verification)
            .finish()
    }
}

/// What the user did when approving. `Debug` redacts the push OTP.
#[derive(Clone, PartialEq, Eq)]
pub struct Approval {
    /// The number typed or picked (number matching), else `None`.
    pub number: Option<String>,
    /// The push OTP (see [`push_otp`]), if the account uses push OTPs.
    pub otp: Option<String>,
    /// The verification the user passed.
    pub verification: Verification,
}

impl fmt::Debug for Approval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Approval")
            .field("number", &self.number)
            .field("otp", &self.otp.as_ref().map(|_| "<redacted>"))
            .field("verification", &self.verification)
            .finish()
    }
}

/// Device side: the push OTP for an opened challenge (`crate::otp::push_otp` over the
/// `tx` field's text bytes and the challenge hash).
pub fn push_otp(opened: &OpenedChallenge, seed: &[u8], digits: u8) -> Result<Zeroizing<String>> {
    crate::otp::push_otp(
        seed,
        opened.challenge.tx_id.as_bytes(),
        &opened.hash,
        digits,
    )
    .map(Zeroizing::new)
    .map_err(|_| ProtocolError::Malformed { field: "otp" })
}

impl Answer {
    /// Device side: approves `opened`. Fails if the challenge needs user
    /// verification and none was done, or the number does not fit the mode.
    pub fn approve(
        opened: &OpenedChallenge,
        approval: Approval,
        next_kem: PublicKey,
        time: u64,
    ) -> Result<Self> {
        let c = &opened.challenge;
        if c.verification != Verification::None && approval.verification == Verification::None {
            return Err(ProtocolError::WrongPurpose);
        }
        c.number_matching.check_entry(approval.number.as_deref())?;
        let a = Self {
            tx_id: c.tx_id.clone(),
            account_id: c.account_id.clone(),
            decision: Decision::Approve,
            reason: None,
            number: approval.number,
            otp: approval.otp,
            challenge_hash: opened.hash,
            time,
            next_kem,
            verification: approval.verification,
        };
        a.validate()?;
        Ok(a)
    }

    /// Device side: denies `opened` (signed with Dp).
    pub fn deny(
        opened: &OpenedChallenge,
        reason: DenyReason,
        next_kem: PublicKey,
        time: u64,
    ) -> Result<Self> {
        let c = &opened.challenge;
        Ok(Self {
            tx_id: c.tx_id.clone(),
            account_id: c.account_id.clone(),
            decision: Decision::Deny,
            reason: Some(reason),
            number: None,
            otp: None,
            challenge_hash: opened.hash,
            time,
            next_kem,
            verification: Verification::None,
        })
    }

    /// Server side: checks the push OTP (constant time) against the account seed.
    pub fn check_push_otp(&self, seed: &[u8], digits: u8) -> Result<()> {
        let code = self.otp.as_deref().ok_or(ProtocolError::Binding {
            what: "otp missing",
        })?;
        let ok = crate::otp::push_otp_verify(
            seed,
            self.tx_id.as_bytes(),
            &self.challenge_hash,
            digits,
            code,
        )
        .map_err(|_| ProtocolError::Malformed { field: "otp" })?;
        if ok {
            Ok(())
        } else {
            Err(ProtocolError::Binding { what: "otp" })
        }
    }

    /// Checks field shapes and combinations.
    pub fn validate(&self) -> Result<()> {
        b64url_bounded("tx", &self.tx_id, MIN_RANDOM_ID_BYTES, MAX_RANDOM_ID_BYTES)?;
        check_id("account", &self.account_id, MAX_ID_LEN)?;
        if let Some(n) = &self.number {
            check_digits("number", n, MIN_MATCH_DIGITS, MAX_MATCH_DIGITS)?;
        }
        if let Some(o) = &self.otp {
            check_digits("otp", o, MIN_OTP_DIGITS, MAX_OTP_DIGITS)?;
        }
        match self.decision {
            Decision::Approve => {
                if self.reason.is_some() {
                    return Err(ProtocolError::Malformed { field: "reason" });
                }
            }
            Decision::Deny => {
                if self.reason.is_none() {
                    return Err(ProtocolError::Malformed { field: "reason" });
                }
                // A denial carries nothing that only makes sense for an approval.
                if self.otp.is_some() || self.number.is_some() {
                    return Err(ProtocolError::Malformed { field: "decision" });
                }
                if self.verification != Verification::None {
                    return Err(ProtocolError::Malformed {
                        field: "verification",
                    });
                }
            }
        }
        Ok(())
    }

    /// The signature purpose: [`Purpose::AnswerUserVerified`] (key Du) for an
    /// approval after a PIN or biometric, else [`Purpose::Answer`] (key Dp).
    pub fn purpose(&self) -> Purpose {
        if self.decision == Decision::Approve && self.verification != Verification::None {
            Purpose::AnswerUserVerified
        } else {
            Purpose::Answer
        }
    }

    /// The exact payload JSON.
    pub fn to_payload(&self) -> Result<Vec<u8>> {
        self.validate()?;
        to_json(
            "answer",
            &WireAnswer {
                v: VERSION,
                tx: self.tx_id.clone(),
                account: self.account_id.clone(),
                decision: self.decision,
                reason: self.reason,
                number: self.number.clone(),
                otp: self.otp.clone(),
                challenge_hash: b64url(&self.challenge_hash),
                time: self.time,
                next_kem: b64url(&self.next_kem.to_sec1()),
                verification: self.verification,
            },
        )
    }

    /// Parses a payload strictly (call on verified bytes).
    pub fn from_payload(bytes: &[u8]) -> Result<Self> {
        let w: WireAnswer = parse_json("answer", bytes, MAX_PAYLOAD_LEN)?;
        check_version(w.v)?;
        let kem = b64url_array::<65>("next_kem", &w.next_kem)?;
        let a = Self {
            tx_id: w.tx,
            account_id: w.account,
            decision: w.decision,
            reason: w.reason,
            number: w.number,
            otp: w.otp,
            challenge_hash: b64url_array::<32>("challenge_hash", &w.challenge_hash)?,
            time: w.time,
            next_kem: PublicKey::from_sec1(&kem)
                .map_err(|_| ProtocolError::InvalidKey { field: "next_kem" })?,
            verification: w.verification,
        };
        a.validate()?;
        Ok(a)
    }

    /// Signs with Du (approval after verification) or Dp (everything else); see
    /// [`Self::purpose`]. The caller passes the matching key.
    pub fn sign(&self, signer: &dyn MessageSigner) -> Result<SignedMessage> {
        SignedMessage::sign(self.purpose(), self.to_payload()?, signer)
    }

    /// Server side: picks Dp or Du by key id, verifies the signature with the
    /// purpose that key implies, parses, and checks the payload's decision and
    /// verification agree with the key that signed it.
    pub fn verify(
        msg: &SignedMessage,
        possession_key: &PublicKey,
        user_key: &PublicKey,
    ) -> Result<Self> {
        let (purpose, key) = if msg.kid() == user_key.key_id() {
            (Purpose::AnswerUserVerified, user_key)
        } else if msg.kid() == possession_key.key_id() {
            (Purpose::Answer, possession_key)
        } else {
            return Err(ProtocolError::UnknownKey);
        };
        let payload = msg.verify(purpose, key)?;
        let answer = Self::from_payload(payload)?;
        if answer.purpose() != purpose {
            return Err(ProtocolError::WrongPurpose);
        }
        Ok(answer)
    }

    /// Server side: checks the answer is for this challenge and satisfies it:
    /// tx and account ids, not expired, the hash of what was shown, a decision
    /// time within `[issued_at - max_skew, now + max_skew]`, the required
    /// verification (any user verification satisfies `pin` or `biometric`, since
    /// platforms fall back from biometrics to the device PIN), and the number
    /// (constant-time). Push-OTP checking is separate (see `crate::otp`); replay
    /// (single use) is the server's state.
    pub fn check(&self, expect: &AnswerExpectation<'_>) -> Result<()> {
        let c = expect.challenge;
        if !ct_eq(self.tx_id.as_bytes(), c.tx_id.as_bytes()) {
            return Err(ProtocolError::Binding { what: "tx id" });
        }
        if self.account_id != c.account_id {
            return Err(ProtocolError::Binding { what: "account id" });
        }
        if expect.now > c.expires_at {
            return Err(ProtocolError::Expired {
                expires: c.expires_at,
                now: expect.now,
            });
        }
        if !ct_eq(&self.challenge_hash, expect.challenge_hash) {
            return Err(ProtocolError::Binding {
                what: "challenge hash",
            });
        }
        // The decision time must fall between the challenge's issue and now,
        // give or take the clock skew: not before the request existed, not
        // from the future. (A queued answer is sent late, so its time may lie
        // up to the challenge lifetime in the past.)
        let not_before = c.issued_at.saturating_sub(expect.max_skew);
        if self.time < not_before {
            return Err(ProtocolError::Expired {
                expires: not_before,
                now: self.time,
            });
        }
        if self.time > expect.now.saturating_add(expect.max_skew) {
            return Err(ProtocolError::NotYetValid {
                not_before: self.time,
                now: expect.now,
            });
        }
        if self.decision == Decision::Deny {
            return Ok(());
        }
        if c.verification != Verification::None && self.verification == Verification::None {
            return Err(ProtocolError::WrongPurpose);
        }
        c.number_matching.check_entry(self.number.as_deref())?;
        match (
            &c.number_matching,
            self.number.as_deref(),
            expect.expected_number,
        ) {
            // Shape checked above: no number was entered on the phone.
            (NumberMatching::Off | NumberMatching::Show { .. }, _, _) => Ok(()),
            (_, Some(got), Some(want)) if ct_eq(got.as_bytes(), want.as_bytes()) => Ok(()),
            _ => Err(ProtocolError::Binding { what: "number" }),
        }
    }
}

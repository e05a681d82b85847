//! The JSON bodies of the device HTTP API and the error codes both HTTP APIs use.
//!
//! The server serialises these and the device core parses them: one definition,
//! so the two sides cannot drift. Routes and semantics are in `docs/PROTOCOL.md`.

use serde::{Deserialize, Serialize};

/// Machine-readable error codes, sent as `{"error":{"code":…,"message":…}}`.
/// Devices and relying parties branch on these, never on the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request body or a parameter is malformed.
    BadRequest,
    /// Missing or wrong API key / device signature header.
    Unauthorized,
    /// The caller may not touch this object.
    Forbidden,
    /// No such object (for this caller).
    NotFound,
    /// The challenge, offer or request timestamp is past its lifetime.
    Expired,
    /// A nonce, offer, OTP or answer was used before.
    Replayed,
    /// A signature does not verify.
    BadSignature,
    /// The number the user entered is not the one shown.
    WrongNumber,
    /// The challenge requires PIN or biometric verification and the approval
    /// lacks it (signed by Dp instead of Du, or a weaker verification).
    VerificationRequired,
    /// The answer signs a different challenge text than the one sent.
    WrongDisplayHash,
    /// The answer or request is bound to another account or device.
    WrongAccount,
    /// The OTP was already accepted once.
    OtpReused,
    /// The OTP is wrong.
    InvalidOtp,
    /// Too many pushes, pending challenges or attempts.
    RateLimited,
    /// Pushes are suppressed after repeated denials or timeouts. Typing `push`
    /// does not lift it: a valid OTP or offline code, an "it was me" from an
    /// enrolled device, or an operator does.
    Suppressed,
    /// Pushes to the user are locked after a "not me" fraud report, for a
    /// configured time or until an operator unlocks them.
    Locked,
    /// The device was removed: its core wipes the account.
    DeviceRemoved,
    /// The challenge was already answered.
    AlreadyAnswered,
    /// The user has no active device.
    NoDevice,
    /// The message uses a protocol version this server does not speak.
    Unsupported,
    /// The old device denied this transfer to a new phone, or did not answer
    /// in time (docs/PROTOCOL.md §14): the new phone drops the account.
    TransferDenied,
    /// The request body is too large.
    PayloadTooLarge,
    /// The request body did not arrive within the server's body timeout.
    RequestTimeout,
    /// The route exists, but not with this HTTP method.
    MethodNotAllowed,
    /// The request body is not `application/json` where JSON is expected.
    UnsupportedMediaType,
    /// The JSON body parses but does not fit the schema (a field missing, of the
    /// wrong type, unknown or out of range).
    InvalidBody,
    /// The server is at its connection limit or shutting down; retry later.
    Unavailable,
    /// Something broke on the server's side.
    Internal,
    /// A code this build does not know (a newer server). Never sent.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every code a server sends (all but [`ErrorCode::Unknown`]), for documents
    /// that list them (the server's OpenAPI document).
    pub const ALL: [ErrorCode; 28] = [
        Self::BadRequest,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::Expired,
        Self::Replayed,
        Self::BadSignature,
        Self::WrongNumber,
        Self::VerificationRequired,
        Self::WrongDisplayHash,
        Self::WrongAccount,
        Self::OtpReused,
        Self::InvalidOtp,
        Self::RateLimited,
        Self::Suppressed,
        Self::Locked,
        Self::DeviceRemoved,
        Self::AlreadyAnswered,
        Self::NoDevice,
        Self::Unsupported,
        Self::TransferDenied,
        Self::PayloadTooLarge,
        Self::RequestTimeout,
        Self::MethodNotAllowed,
        Self::UnsupportedMediaType,
        Self::InvalidBody,
        Self::Unavailable,
        Self::Internal,
    ];

    /// The HTTP status that goes with the code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest | Self::Unsupported => 400,
            Self::Unauthorized | Self::BadSignature => 401,
            Self::Forbidden
            | Self::WrongAccount
            | Self::WrongNumber
            | Self::WrongDisplayHash
            | Self::VerificationRequired
            | Self::InvalidOtp
            | Self::OtpReused
            | Self::Locked => 403,
            Self::NotFound | Self::NoDevice => 404,
            Self::Replayed | Self::AlreadyAnswered => 409,
            Self::Expired | Self::DeviceRemoved | Self::TransferDenied => 410,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::InvalidBody => 422,
            Self::Unavailable => 503,
            Self::RateLimited | Self::Suppressed => 429,
            Self::Internal | Self::Unknown => 500,
        }
    }

    /// The wire name, as in the JSON body.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Expired => "expired",
            Self::Replayed => "replayed",
            Self::BadSignature => "bad_signature",
            Self::WrongNumber => "wrong_number",
            Self::VerificationRequired => "verification_required",
            Self::WrongDisplayHash => "wrong_display_hash",
            Self::WrongAccount => "wrong_account",
            Self::OtpReused => "otp_reused",
            Self::InvalidOtp => "invalid_otp",
            Self::RateLimited => "rate_limited",
            Self::Suppressed => "suppressed",
            Self::Locked => "locked",
            Self::DeviceRemoved => "device_removed",
            Self::AlreadyAnswered => "already_answered",
            Self::NoDevice => "no_device",
            Self::Unsupported => "unsupported",
            Self::TransferDenied => "transfer_denied",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InvalidBody => "invalid_body",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The machine-readable code.
    pub code: ErrorCode,
    /// A short explanation for humans: never secrets or echoed input. Devices do
    /// not show it (a hostile server could put anything here).
    #[serde(default)]
    pub message: String,
}

/// A challenge waiting for a device, as listed by `GET /v1/device/challenges`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChallenge {
    /// Transaction id.
    pub tx: String,
    /// Expiry, server unix seconds.
    pub exp: i64,
}

/// The body of `GET /v1/device/challenges`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingList {
    /// Pending challenges, oldest first.
    pub challenges: Vec<PendingChallenge>,
}

/// The body of an accepted `POST /v1/device/challenges/{tx}/answer`. The same
/// answer posted again (a retry after a lost response) gets the same body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerAccepted {
    /// `approved` or `denied`.
    pub state: String,
    /// Key id of the KEM key the server now seals this device's challenges to
    /// (absent from servers before this field: the device then assumes the
    /// answer's `next_kem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kem_kid: Option<String>,
}

/// The body of `PUT /v1/device/kem`: the device names the KEM public key the
/// server must seal to from now on (resynchronisation after a doubtful answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KemKeyUpdate {
    /// Base64url SEC1 of a KEM public key the device holds the private key of.
    pub kem_key: String,
}

/// The answer to `PUT /v1/device/kem`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KemKeyAccepted {
    /// Key id of the KEM key the server now seals to.
    pub kem_kid: String,
}

/// The answer to `POST /v1/device/activate/confirm` (phase two of activation):
/// the device is active (`200`), or, for an offer a transfer made
/// (docs/PROTOCOL.md §14), waits for the old device's approval (`202`). A
/// repeated confirmation of the same device (its response was lost) gets the
/// same body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationConfirmed {
    /// The device id (the one in the activation result).
    pub device_id: String,
    /// `active`, or `awaiting_approval` (a transfer the old device has not
    /// answered yet).
    pub status: String,
    /// The old device's approval challenge, with `awaiting_approval` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_id: Option<String>,
}

/// The body of `POST /v1/device/transfers` (docs/PROTOCOL.md §14): an
/// enrolled device starts moving its account to a new phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// Remove this device once the new phone is active.
    #[serde(default)]
    pub remove_old: bool,
}

/// The answer to `POST /v1/device/transfers`: an activation offer for the new
/// phone, the fields of the relying party's offer without the rendered QR
/// images (the old device draws the QR itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferStarted {
    /// The offer id.
    pub offer_id: String,
    /// `countersign://activate?…`, for the QR the new phone scans.
    pub offer_uri: String,
    /// The typed code (five groups of five).
    pub code: String,
    /// Unix seconds (server clock).
    pub expires_at: i64,
}

/// Why a device deregisters itself (`DELETE /v1/device`, optional body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeregisterReason {
    /// The device wiped the account itself (too many wrong PINs).
    WipedOnDevice,
}

/// The optional body of `DELETE /v1/device` (an empty body: no reason given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deregistration {
    /// Why the device leaves.
    pub reason: DeregisterReason,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_sent_code_once() {
        use std::collections::HashSet;
        let names: HashSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            // A new variant breaks this match: add it to `ALL` too.
            let listed = match code {
                ErrorCode::Unknown => false,
                ErrorCode::BadRequest
                | ErrorCode::Unauthorized
                | ErrorCode::Forbidden
                | ErrorCode::NotFound
                | ErrorCode::Expired
                | ErrorCode::Replayed
                | ErrorCode::BadSignature
                | ErrorCode::WrongNumber
                | ErrorCode::VerificationRequired
                | ErrorCode::WrongDisplayHash
                | ErrorCode::WrongAccount
                | ErrorCode::OtpReused
                | ErrorCode::InvalidOtp
                | ErrorCode::RateLimited
                | ErrorCode::Suppressed
                | ErrorCode::Locked
                | ErrorCode::DeviceRemoved
                | ErrorCode::AlreadyAnswered
                | ErrorCode::NoDevice
                | ErrorCode::Unsupported
                | ErrorCode::TransferDenied
                | ErrorCode::PayloadTooLarge
                | ErrorCode::RequestTimeout
                | ErrorCode::MethodNotAllowed
                | ErrorCode::UnsupportedMediaType
                | ErrorCode::InvalidBody
                | ErrorCode::Unavailable
                | ErrorCode::Internal => true,
            };
            assert!(listed);
            let text = serde_json::to_string(&code).unwrap();
            assert_eq!(serde_json::from_str::<ErrorCode>(&text).unwrap(), code);
        }
    }

    #[test]
    fn error_codes_round_trip_and_unknown_codes_parse() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":{"code":"device_removed","message":"x"}}"#).unwrap();
        assert_eq!(body.error.code, ErrorCode::DeviceRemoved);
        assert_eq!(body.error.code.http_status(), 410);
        let newer: ErrorBody =
            serde_json::from_str(r#"{"error":{"code":"from_the_future","message":""}}"#).unwrap();
        assert_eq!(newer.error.code, ErrorCode::Unknown);
        let text = serde_json::to_string(&ErrorCode::VerificationRequired).unwrap();
        assert_eq!(
            text,
            format!("\"{}\"", ErrorCode::VerificationRequired.as_str())
        );
    }

    #[test]
    fn deregistration_body_names_the_reason() {
        let body = Deregistration {
            reason: DeregisterReason::WipedOnDevice,
        };
        let text = serde_json::to_string(&body).unwrap();
        assert_eq!(text, r#"{"reason":"wiped_on_device"}"#);
        assert_eq!(serde_json::from_str::<Deregistration>(&text).unwrap(), body);
        assert!(serde_json::from_str::<Deregistration>(r#"{"reason":"bored"}"#).is_err());
    }

    #[test]
    fn answer_accepted_kem_kid_is_optional() {
        // A server without the field still parses; the field round-trips.
        let old: AnswerAccepted = serde_json::from_str(r#"{"state":"approved"}"#).unwrap();
        assert_eq!(old.kem_kid, None);
        let new = AnswerAccepted {
            state: "denied".into(),
            kem_kid: Some("kid".into()),
        };
        let text = serde_json::to_string(&new).unwrap();
        assert_eq!(text, r#"{"state":"denied","kem_kid":"kid"}"#);
        assert_eq!(serde_json::from_str::<AnswerAccepted>(&text).unwrap(), new);
        let none = AnswerAccepted {
            state: "approved".into(),
            kem_kid: None,
        };
        assert_eq!(
            serde_json::to_string(&none).unwrap(),
            r#"{"state":"approved"}"#
        );
    }
}

//! The one error shape of both APIs:
//! `{ "error": { "code": "expired", "message": "..." } }` with a fitting HTTP status.
//!
//! Messages never carry secrets or attacker-chosen values; internal errors are logged
//! (without secrets) and answered with a generic message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Machine-readable error codes. The device core and RPs branch on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
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
    /// Pushes are suppressed after repeated denials; type `push` or an OTP.
    Suppressed,
    /// The device was removed: its core wipes the account.
    DeviceRemoved,
    /// The challenge was already answered.
    AlreadyAnswered,
    /// The user has no active device.
    NoDevice,
    /// The message uses a protocol version this server does not speak.
    Unsupported,
    /// The request body is too large.
    PayloadTooLarge,
    /// Something broke on our side.
    Internal,
}

impl ErrorCode {
    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest | Self::Unsupported => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::BadSignature => StatusCode::UNAUTHORIZED,
            Self::Forbidden
            | Self::WrongAccount
            | Self::WrongNumber
            | Self::WrongDisplayHash
            | Self::VerificationRequired => StatusCode::FORBIDDEN,
            Self::InvalidOtp | Self::OtpReused => StatusCode::FORBIDDEN,
            Self::NotFound | Self::NoDevice => StatusCode::NOT_FOUND,
            Self::Expired => StatusCode::GONE,
            Self::Replayed | Self::AlreadyAnswered => StatusCode::CONFLICT,
            Self::RateLimited | Self::Suppressed => StatusCode::TOO_MANY_REQUESTS,
            Self::DeviceRemoved => StatusCode::GONE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
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
            Self::DeviceRemoved => "device_removed",
            Self::AlreadyAnswered => "already_answered",
            Self::NoDevice => "no_device",
            Self::Unsupported => "unsupported",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Internal => "internal",
        }
    }
}

/// An API error: a code and a human-readable message without secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    /// The machine-readable code.
    pub code: ErrorCode,
    /// A short explanation for humans (never secrets or echoed input).
    pub message: String,
}

impl ApiError {
    /// A new error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// An object that does not exist for this caller.
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// An internal failure; the detail is logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }
}

/// The JSON body of an error response.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ErrorDetail {
    /// The machine-readable code.
    pub code: ErrorCode,
    /// A short explanation.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        (self.code.status(), axum::Json(body)).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(format_args!("database: {e}"))
    }
}

impl From<sqlx::migrate::MigrateError> for ApiError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::internal(format_args!("migration: {e}"))
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

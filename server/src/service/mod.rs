//! The service layer: what the server does, in typed inputs and results
//! ([`ApiError`] on failure). No HTTP here: the `http` layer parses requests,
//! authenticates the caller and calls a service; services read and write the
//! database only through [`crate::store`].

pub mod admin;
pub mod audit;
pub mod auth;
pub mod challenge;
pub mod devices;
pub mod enrollment;
pub mod offline;
pub mod otp;
pub mod passwords;
pub mod policy;
pub mod qr_login;
pub mod retention;
pub mod secrets;
pub mod transfer;
pub mod webhook;

use countersign_protocol::ProtocolError;

use crate::error::{ApiError, ErrorCode};

/// The API error for a protocol check that failed.
pub fn protocol_error(e: ProtocolError) -> ApiError {
    match e {
        ProtocolError::Expired { .. } | ProtocolError::NotYetValid { .. } => {
            ApiError::new(ErrorCode::Expired, "timestamp outside the accepted window")
        }
        ProtocolError::UnsupportedVersion { .. } => {
            ApiError::new(ErrorCode::Unsupported, e.to_string())
        }
        ProtocolError::BadSignature | ProtocolError::UnknownKey | ProtocolError::WrongPurpose => {
            ApiError::new(ErrorCode::BadSignature, "signature does not verify")
        }
        other => ApiError::bad_request(other.to_string()),
    }
}

/// Checks an RP's user name: 1-128 characters without control characters.
pub fn check_user_name(user: &str) -> Result<(), ApiError> {
    if user.is_empty() || user.len() > 128 || user.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "user must be 1-128 characters without control characters",
        ));
    }
    Ok(())
}

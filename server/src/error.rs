//! The one error shape of both APIs:
//! `{ "error": { "code": "expired", "message": "..." } }` with a fitting HTTP status.
//!
//! Messages never carry secrets or attacker-chosen values; internal errors are logged
//! (without secrets) and answered with a generic message. The HTTP layer turns an
//! [`ApiError`] into its response (`crate::http`).

pub use countersign_protocol::api::{ErrorBody, ErrorCode, ErrorDetail};

/// An API error: a code and a human-readable message without secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    /// The machine-readable code.
    pub code: ErrorCode,
    /// A short explanation for humans (never secrets or echoed input).
    pub message: String,
    /// A database statement failed (counted once, where the error is answered).
    database: bool,
}

impl ApiError {
    /// A new error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            database: false,
        }
    }

    /// Whether a database statement failed (`countersign_database_errors_total`).
    pub fn is_database(&self) -> bool {
        self.database
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

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self {
            database: true,
            ..Self::internal(format_args!("database: {e}"))
        }
    }
}

impl From<sqlx::migrate::MigrateError> for ApiError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::internal(format_args!("migration: {e}"))
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

//! Platform hooks (DESIGN §3): the services the authenticator core needs from the
//! app, as traits the FFI crate bridges to foreign (Kotlin / Swift) traits, plus the
//! implementations the core ships.
//!
//! | hook | sync? | shipped implementations |
//! |---|---|---|
//! | [`SecureStorage`] | sync | [`MemoryStorage`], [`FileStorage`] |
//! | [`KeyVault`] | sync | [`SoftwareKeyVault`] |
//! | [`UserVerifier`] | async | none (the app shows its PIN pad / biometric prompt) |
//! | [`HttpClient`] | async | `ReqwestClient` (feature `reqwest-client`) |
//! | [`Clock`] | sync | [`SystemClock`] |
//! | [`Logger`] | sync | [`NoopLogger`] |
//!
//! # Threading and re-entrancy (all hooks)
//!
//! Every hook is `Send + Sync` and may be called from any thread, including
//! several threads at once. The core never calls a hook while it holds one of its
//! own locks, so a hook may call back into the [`crate::authenticator::Authenticator`]
//! without deadlocking (it should not *need* to). Sync hooks may block briefly
//! (disk, keystore) and are called from the caller's thread; they must not wait on
//! the UI thread.
//!
//! # Failures
//!
//! Every hook that can fail returns a result; the logger's failures are
//! ignored. Hooks with no error of their own ([`UserVerifier`], [`Clock`]) fail
//! with [`HookError`], which reaches the app as
//! [`Error::HookFailed`](crate::Error::HookFailed): a Kotlin or Swift exception
//! thrown by the app's implementation becomes that error, never a crash.

mod clock;
mod http;
mod log;
mod storage;
mod vault;
mod verifier;

/// A hook with no error type of its own failed (the app's implementation threw).
/// `0` says what failed, for logs; it never holds secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("platform hook failed: {0}")]
pub struct HookError(pub String);

pub use clock::{Clock, SystemClock};
#[cfg(feature = "reqwest-client")]
pub use http::ReqwestClient;
pub use http::{HttpClient, HttpError, HttpMethod, HttpRequest, HttpResponse};
pub use log::{LogLevel, Logger, NoopLogger};
pub use storage::{FileStorage, KeySource, MemoryStorage, SecureStorage, StorageError};
pub use vault::{KeyPurpose, KeySpec, KeyVault, KeyVaultError, SoftwareKeyVault};
pub use verifier::{UserVerifier, VerificationKind, VerificationOutcome, VerificationPrompt};

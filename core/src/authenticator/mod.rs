//! The authenticator: the root object an app holds (issue 5, DESIGN §3–§6).
//!
//! One [`Authenticator`] manages many accounts on many servers, plus plain
//! `otpauth://` accounts. It is `Send + Sync`; every method takes `&self`.
//!
//! # Keys per push account
//!
//! * Dp (possession): a signing key in the platform [`KeyVault`] (`cs.<id>.dp`);
//!   signs device requests and denials.
//! * Du (user verification): a software key stored only wrapped under a PIN-derived
//!   key and/or a user-verification-bound vault key (see [`userkey`]); signs
//!   approvals that needed a PIN or biometrics.
//! * K (KEM): software P-256 keys in the account record. HPKE decapsulation in
//!   `protocol` takes an [`AgreementKey`](crate::crypto::AgreementKey), so K cannot
//!   live in a platform vault yet; it rotates on every answer and at most
//!   [`MAX_KEM_KEYS`] are kept.
//!
//! # Challenge handling
//!
//! The envelope's signature is checked against the pinned server key S before
//! anything is decrypted; the header must name this device and account, a KEM key
//! still held, and a time not past expiry by the *server's* clock (estimated from
//! S-signed timestamps: the activation result's time and every challenge's
//! issue time). The plaintext is parsed strictly and must agree with the header.
//! The transaction id is then recorded (replay state) and persisted before the
//! request is shown; an answer is persisted (signed bytes and the next KEM key)
//! before it is sent, so a crash or a lost response can only lead to resending
//! the same answer.
//!
//! # Locks
//!
//! Each account has its own lock around its in-memory record; operations on
//! different accounts never wait on each other. The [`UserVerifier`],
//! [`HttpClient`], [`Logger`] and key-vault signing are never called while any
//! lock is held. The account's [`SecureStorage`] write is made under the
//! account's lock: that orders writes, so "persisted before acting" holds and the
//! PIN failure counter can never go backwards (SecureStorage's contract forbids
//! calling back into the core).
//!
//! # Layout
//!
//! The `Authenticator` is defined here; its methods live by job:
//! * `types`: the public records (options, account info, requests, outcomes).
//! * `store`: account slots, record load/save, the read/update helpers, removal.
//! * `session`: a push account's server identity and device API client.
//! * `activation`: redeeming an offer.
//! * `inbox`: push notifications, fetching and opening challenges, pending requests.
//! * `answer`: approving and denying.
//! * `verification`: PIN and biometrics.
//! * `otp`: codes, `otpauth://` import/export, offline QR answers.
//!
//! [`UserVerifier`]: crate::platform::UserVerifier
//! [`HttpClient`]: crate::platform::HttpClient
//! [`Logger`]: crate::platform::Logger
//! [`KeyVault`]: crate::platform::KeyVault
//! [`SecureStorage`]: crate::platform::SecureStorage

mod activation;
mod answer;
mod inbox;
mod otp;
mod record;
mod session;
mod store;
mod types;
pub mod userkey;
mod util;
mod verification;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, RwLock};

use self::inbox::PendingSlot;
use self::store::AccountSlots;
pub use self::types::{
    AccountInfo, AccountKind, ActivationOptions, ApprovalOutcome, AuthenticatorConfig,
    DEFAULT_CLOCK_SKEW_SECS, DEFAULT_PIN_MAX_ATTEMPTS, MAX_KEM_KEYS, OfflineCode, OtpCode,
    PendingRequest, PlatformHooks,
};
pub use self::util::CancelHandle;
use crate::error::Result;
use crate::platform::LogLevel;

/// The root object. See the [module docs](self).
pub struct Authenticator {
    hooks: PlatformHooks,
    config: RwLock<AuthenticatorConfig>,
    accounts: AccountSlots,
    pending: Mutex<HashMap<(String, String), PendingSlot>>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("accounts", &self.account_slots().len())
            .finish()
    }
}

impl Authenticator {
    /// Loads every stored account. An unreadable record is skipped and logged
    /// (it cannot be used, and must not brick the others).
    pub fn new(hooks: PlatformHooks, config: AuthenticatorConfig) -> Result<Self> {
        let accounts = store::load_accounts(&hooks)?;
        Ok(Self {
            hooks,
            config: RwLock::new(config),
            accounts,
            pending: Mutex::new(HashMap::new()),
        })
    }

    fn config(&self) -> AuthenticatorConfig {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.hooks.logger.log(level, message);
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<Authenticator>();
    check::<CancelHandle>();
}

#[cfg(test)]
mod tests;

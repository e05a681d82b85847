//! The authenticator: the root object an app holds (issue 5, DESIGN §3–§6).
//!
//! One [`Authenticator`] manages many accounts on many servers, plus plain
//! `otpauth://` accounts. It is `Send + Sync`; every method takes `&self`.
//!
//! # Keys per push account
//!
//! * Dp (possession): a signing key in the platform [`KeyVault`] (`cs.<id>.dp`);
//!   signs device requests and denials.
//! * Du (user verification): a signing key in the platform [`KeyVault`]
//!   (`cs.<id>.du`), not bound to user verification so one key serves the PIN
//!   and biometrics; the core signs with it only after a PIN-derived key or a
//!   user-verification-bound vault key opened a wrap (see [`userkey`]); signs
//!   approvals that needed a PIN or biometrics. Records of earlier versions
//!   keep a software Du wrapped the same ways.
//! * K (KEM): key-agreement keys in the platform [`KeyVault`]
//!   (`cs.<id>.kem.<random>`); the record holds only their aliases and public
//!   keys. HPKE decapsulation in `protocol` takes any
//!   [`KeyAgreement`](crate::crypto::KeyAgreement) (a public key and ECDH), so
//!   challenges and the activation seed open through [`KeyVault::ecdh`](crate::platform::KeyVault::ecdh). K
//!   rotates on every answer: the new key is created in the vault before the
//!   record names it. A key the server has moved away from is kept for
//!   [`KEM_KEY_GRACE`] seconds (challenges sealed to it may still be pending),
//!   then dropped from the record and, once that is stored, from the vault.
//!   Records of earlier versions hold K's scalar inline; those keys still open
//!   challenges until they rotate out (see `kem`).
//! * The OTP seed (and an imported `otpauth://` account's URI) is sealed by an
//!   AES-256-GCM key in the vault (`cs.<id>.seed`, [`KeyVault::seal`](crate::platform::KeyVault::seal)); the
//!   record holds the alias and the sealed blob, and the core opens it for each
//!   code or push OTP. Earlier records keep the seed inline.
//!
//! The record never holds private key bytes from a vault. What the hardware
//! enforces and what the core enforces is set out on [`KeyVault`]: the keys
//! cannot be copied off the device, the biometric gate is a hardware ECDH, the
//! PIN gate and the wrong-PIN counter are the core's, in the app process.
//!
//! # Challenge handling
//!
//! The envelope's signature is checked against the pinned server key S before
//! anything is decrypted; the header must name this device and account, a KEM key
//! still held, and a time not past expiry by the *server's* clock (estimated from
//! S-signed timestamps: the activation result's time and every challenge's
//! issue time). The plaintext is parsed strictly and must agree with the header.
//! The transaction id and the decrypted challenge are then recorded (replay
//! state and the pending request) and persisted before the request is shown, so
//! approve and deny work in another process or after a restart.
//!
//! # The outbox
//!
//! An answer is persisted (signed bytes and the next KEM key) before it is sent.
//! Until the server acknowledges it, it waits in the outbox and is sent again by
//! every call that talks to a server ([`Authenticator::pending`],
//! [`Authenticator::handle_push`], approve, deny) and by
//! [`Authenticator::deliver_outbox`], which the app calls when it starts. The
//! server answers a repeated answer with the same acceptance, so a crash or a
//! lost response can only lead to resending the same answer. An answer the
//! server finally refuses stays listed with the reason until the app dismisses it.
//!
//! # State, processes and locks
//!
//! [`SecureStorage`] is the truth: every read gets the account's record from
//! it, and every change is a compare-and-swap of the record, re-applied if
//! another thread or process wrote first (see [`SecureStorage`] on several
//! processes). Two `Authenticator`s on one store, in one process or two, never
//! lose or roll back each other's writes, and the wrong-PIN counter and replay
//! state only move forward. The only account state kept between calls is a
//! cache of decoded records, each used only while storage holds exactly the
//! bytes it was decoded from (`cache`): decoding is skipped, reading is not.
//!
//! The core holds no lock while it calls any hook, so a hook may call back into
//! the `Authenticator` (the locks are the settings' read-write lock, held while
//! copying them, and the record cache's, held while copying an entry).
//!
//! # Layout
//!
//! The `Authenticator` is defined here; its methods live by job:
//! * `types`: the public records (options, account info, requests, outcomes).
//! * `store`: account slots, record load/save, the read/update helpers, removal.
//! * `cache`: decoded records, checked against the stored bytes on every read.
//! * `session`: a push account's server identity and device API client.
//! * `activation`: redeeming an offer.
//! * `server_sync`: what the servers must still hear: activations to confirm and
//!   devices wiped after too many wrong PINs, to deregister.
//! * `inbox`: push notifications, fetching and opening challenges, pending requests.
//! * `kem`: the KEM keys K in the vault (aliases, creation, ECDH adapter, deletion).
//! * `answer`: approving and denying.
//! * `verification`: PIN and biometrics.
//! * `otp`: codes, `otpauth://` import/export, offline QR answers.
//! * `transfer`: moving an account to a new phone, approved by this one.
//!
//! [`UserVerifier`]: crate::platform::UserVerifier
//! [`HttpClient`]: crate::platform::HttpClient
//! [`Logger`]: crate::platform::Logger
//! [`KeyVault`]: crate::platform::KeyVault
//! [`SecureStorage`]: crate::platform::SecureStorage

mod activation;
mod answer;
mod cache;
mod inbox;
mod kem;
mod otp;
mod record;
mod server_sync;
mod session;
mod store;
mod transfer;
mod types;
pub mod userkey;
mod util;
mod verification;

use std::fmt;
use std::sync::RwLock;

pub use self::types::{
    AccountInfo, AccountKind, ActivationOptions, ApprovalOutcome, AuthenticatorConfig,
    DEFAULT_CLOCK_SKEW_SECS, DEFAULT_PIN_MAX_ATTEMPTS, Delivery, KEM_KEY_GRACE, MAX_KEM_KEYS,
    MigrationImport, OfflineCode, OtpCode, OutboxEntry, OutboxState, PendingRequest, PlatformHooks,
    SkippedAccount, TransferOffer,
};
pub use self::util::CancelHandle;
use crate::error::Result;
use crate::platform::LogLevel;

/// The root object. See the [module docs](self).
pub struct Authenticator {
    hooks: PlatformHooks,
    config: RwLock<AuthenticatorConfig>,
    /// Decoded records, used only while storage still holds the bytes they
    /// were decoded from.
    cache: cache::RecordCache,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Opens the authenticator on the app's storage. Nothing is loaded ahead:
    /// records are read when needed. Checks that the storage can be listed.
    /// Call [`Self::deliver_outbox`] once the app has started, so answers saved
    /// before the process ended are sent.
    pub fn new(hooks: PlatformHooks, config: AuthenticatorConfig) -> Result<Self> {
        hooks.storage.list(record::RECORD_PREFIX)?;
        Ok(Self {
            hooks,
            config: RwLock::new(config),
            cache: cache::RecordCache::default(),
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

//! The public records of the authenticator API: platform hooks, settings,
//! options, account info, pending requests and the outcomes of calls.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::userkey;
use crate::platform::{Clock, HttpClient, KeyVault, Logger, SecureStorage, UserVerifier};
use crate::protocol::{
    Challenge, Decision, Platform, PushRegistration, Verification, VerificationPolicy,
};

/// Most KEM private keys kept per account. Keys are normally dropped by age
/// (see [`KEM_KEY_GRACE`]); this bounds storage if a server never confirms one.
pub const MAX_KEM_KEYS: usize = 64;
/// Seconds a superseded KEM key is kept: challenges sealed to it before the
/// server moved on can be pending this long (the protocol's longest challenge
/// lifetime, 600 s, plus clock tolerance). After that it is deleted, which is
/// what gives forward secrecy.
pub const KEM_KEY_GRACE: u64 = 660;
/// Default number of consecutive wrong PINs that wipe an account (issue 5).
pub const DEFAULT_PIN_MAX_ATTEMPTS: u32 = 10;
/// Default clock tolerance, seconds, when checking expiry against the estimated
/// server clock.
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 5;

/// The app's platform services.
#[derive(Clone)]
pub struct PlatformHooks {
    /// Where account records (and a software vault's keys) live.
    pub storage: Arc<dyn SecureStorage>,
    /// Where Dp and the biometric key-agreement keys live.
    pub vault: Arc<dyn KeyVault>,
    /// PIN pad / biometric prompt.
    pub verifier: Arc<dyn UserVerifier>,
    /// Network.
    pub http: Arc<dyn HttpClient>,
    /// Wall clock.
    pub clock: Arc<dyn Clock>,
    /// Log sink.
    pub logger: Arc<dyn Logger>,
}

impl fmt::Debug for PlatformHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlatformHooks")
    }
}

/// Device-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatorConfig {
    /// This device's platform (sent at activation).
    pub platform: Platform,
    /// A device name the user chose (sent at activation).
    pub device_name: Option<String>,
    /// How servers wake this device (sent at activation; see
    /// [`Authenticator::update_push_token`](super::Authenticator::update_push_token)).
    pub push: PushRegistration,
    /// Consecutive wrong PINs before an account is wiped.
    pub pin_max_attempts: u32,
    /// PBKDF2 iterations for new PIN wraps.
    pub pin_kdf_iterations: u32,
    /// Clock tolerance for expiry checks, seconds.
    pub clock_skew_secs: u64,
}

impl AuthenticatorConfig {
    /// Defaults for `platform` with long-polling (no push provider).
    pub fn new(platform: Platform) -> Self {
        Self {
            platform,
            device_name: None,
            push: PushRegistration::None {},
            pin_max_attempts: DEFAULT_PIN_MAX_ATTEMPTS,
            pin_kdf_iterations: userkey::PIN_KDF_ITERATIONS,
            clock_skew_secs: DEFAULT_CLOCK_SKEW_SECS,
        }
    }
}

/// How the user-verification key is protected at activation.
#[derive(Default)]
pub struct ActivationOptions {
    /// Protect approvals with this app PIN.
    pub pin: Option<Zeroizing<String>>,
    /// Protect approvals with biometrics (a UV-bound key in the vault).
    pub biometric: bool,
}

impl fmt::Debug for ActivationOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivationOptions")
            .field("pin", &self.pin.as_ref().map(|_| "<redacted>"))
            .field("biometric", &self.biometric)
            .finish()
    }
}

/// What kind of account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountKind {
    /// A push account on a countersign-server.
    Push {
        /// The server's base URL.
        server_url: String,
        /// The server's account id.
        account_id: String,
        /// This device's id on the server.
        device_id: String,
    },
    /// An imported `otpauth://` TOTP or HOTP account.
    Otp,
}

/// The offer a transfer's new phone activates with (docs/PROTOCOL.md §14):
/// show `offer_uri` as a QR code, or `code` to type. Both hold the offer
/// secret: zeroized when dropped, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct TransferOffer {
    /// `countersign://activate?…`.
    pub offer_uri: Zeroizing<String>,
    /// The typed code (five groups of five).
    pub code: Zeroizing<String>,
    /// When the offer expires, server unix seconds.
    pub expires_at: u64,
}

impl std::fmt::Debug for TransferOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferOffer")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An account as the app lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// Local account id (stable; used in every call).
    pub id: String,
    /// User label ("alice@example.com").
    pub label: String,
    /// Organisation.
    pub issuer: Option<String>,
    /// Push or OTP-only.
    pub kind: AccountKind,
    /// Whether an app PIN protects approvals.
    pub pin_set: bool,
    /// Whether biometrics protect approvals.
    pub biometric_enabled: bool,
    /// The verification the user requires for every approval.
    pub min_verification: Verification,
    /// The server's policy (push accounts).
    pub policy: Option<VerificationPolicy>,
    /// Consecutive wrong PINs so far (reset by a right one).
    pub pin_failures: u32,
}

/// A request waiting for the user's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    /// Local account id.
    pub account_id: String,
    /// Transaction id.
    pub tx_id: String,
    /// What to show: context, text, transaction, number matching, verification.
    pub challenge: Challenge,
    /// Expiry, by the server's clock.
    pub expires_at: u64,
    /// Seconds left before expiry (by the estimated server clock).
    pub seconds_left: u64,
}

/// A one-time password and how long it stays valid.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpCode {
    /// The code.
    pub code: Zeroizing<String>,
    /// Seconds before it changes (TOTP); `None` for HOTP.
    pub seconds_left: Option<u32>,
}

impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtpCode")
            .field("code", &"<redacted>")
            .field("seconds_left", &self.seconds_left)
            .finish()
    }
}

/// What an import of a Google Authenticator export did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationImport {
    /// The accounts added, in the export's order.
    pub imported: Vec<AccountInfo>,
    /// The accounts not added, each with its name and why.
    pub skipped: Vec<SkippedAccount>,
}

/// An account of an export that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedAccount {
    /// Its name as the export shows it.
    pub name: String,
    /// Why it was not imported.
    pub reason: String,
}

/// The answer to an offline QR challenge.
#[derive(Clone, PartialEq, Eq)]
pub struct OfflineCode {
    /// Local account id that answered.
    pub account_id: String,
    /// Relying party shown in the QR.
    pub rp: String,
    /// The OCRA response the user types on the login page.
    pub code: Zeroizing<String>,
}

impl fmt::Debug for OfflineCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OfflineCode")
            .field("account_id", &self.account_id)
            .field("rp", &self.rp)
            .field("code", &"<redacted>")
            .finish()
    }
}

/// Whether an answer has reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The server acknowledged it.
    Delivered,
    /// The network failed: the signed answer is saved in the outbox and is sent
    /// again on the next call that talks to a server (see
    /// [`Authenticator::deliver_outbox`](super::Authenticator::deliver_outbox)).
    /// The user's decision stands; do not ask again.
    Queued,
}

/// What an approval produced.
#[derive(Clone, PartialEq, Eq)]
pub struct ApprovalOutcome {
    /// The push OTP sent with the approval (bound to this challenge).
    pub push_otp: Zeroizing<String>,
    /// The verification the user passed.
    pub verification: Verification,
    /// Whether the approval reached the server or waits in the outbox.
    pub delivery: Delivery,
}

impl fmt::Debug for ApprovalOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApprovalOutcome")
            .field("push_otp", &"<redacted>")
            .field("verification", &self.verification)
            .field("delivery", &self.delivery)
            .finish()
    }
}

/// Where an answer in the outbox stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxState {
    /// Saved and not yet acknowledged: it is sent again on the next call that
    /// talks to a server.
    Waiting,
    /// The server refused it for good (`code`: its error code, such as
    /// `already_answered` when another answer was recorded first, or `expired`
    /// when the challenge expired before the answer could be delivered). Tell
    /// the user, then [`dismiss`](super::Authenticator::dismiss_outbox_entry) it.
    Refused {
        /// Machine-readable reason.
        code: String,
    },
}

/// A user's decision that has not been acknowledged by the server, or whose
/// delivery finally failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Local account id.
    pub account_id: String,
    /// Transaction id.
    pub tx_id: String,
    /// What the user decided.
    pub decision: Decision,
    /// Expiry of the challenge, by the server's clock.
    pub expires_at: u64,
    /// Waiting or refused.
    pub state: OutboxState,
}

//! The core's public records and enums, exported as they are, plus the two views
//! whose FFI shape differs from the core's on purpose.
//!
//! Each `#[uniffi::remote(..)]` item repeats a core definition: uniffi emits the
//! FFI conversions for the core's own type (no mirror, no `From` in either
//! direction) and not the item itself, and the compiler checks the repetition
//! (records are built with every field, enums matched exhaustively). The doc
//! comments here are the ones the Kotlin and Swift bindings carry. A
//! `#[uniffi(name = ..)]` keeps a field's foreign name where the core's differs.
//!
//! Codes, PINs and exported secrets are [`SecretString`]s: plain strings on the
//! foreign side (which cannot hold `Zeroizing`), `Zeroizing<String>` here.
//!
//! Times are typed: instants are [`SystemTime`]s (`java.time.Instant` in
//! Kotlin, `Date` in Swift, both built into uniffi) and spans are [`TimeSpan`]s
//! (`kotlin.time.Duration`, Swift `Duration`: a custom type configured in
//! `uniffi.toml`). The core keeps unix seconds; [`unix_time`] and
//! [`TimeSpan::from_secs`] convert at this boundary.
//!
//! Hand-written on purpose (these notes stay out of the foreign docs):
//! * [`PendingRequest`]: a flat view of the core's `PendingRequest` and the
//!   `Challenge` inside it, without the challenge's wire-only fields (nonce, the
//!   server's account id, its own expiry).
//! * [`AuthenticatorConfig`]: its tuning fields are optional and fall back to the
//!   core's defaults (`AuthenticatorConfig::new`), which a remote record could
//!   only repeat as literals; the PIN key-derivation cost stays internal.
//! * [`OtpCode`] and [`OutboxEntry`]: the core's records with typed times
//!   instead of its unix seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use countersign_core::authenticator as core_auth;
use zeroize::Zeroizing;

pub use countersign_core::authenticator::{
    AccountInfo, AccountKind, ActivationOptions, ApprovalOutcome, Delivery, MigrationImport,
    OfflineCode, OutboxState, SkippedAccount,
};
pub use countersign_core::protocol::{
    ChallengeKind, Decision, DenyReason, NumberMatching, Platform, PushRegistration,
    TransactionDetails, Verification, VerificationPolicy,
};

/// A secret string (code, PIN, `otpauth://` URI): zeroized on the Rust side when
/// dropped. Kotlin and Swift see a type alias of their `String`.
pub type SecretString = Zeroizing<String>;

uniffi::custom_type!(SecretString, String, {
    remote,
    lower: |secret| secret.as_str().to_owned(),
    try_lift: |plain| Ok(Zeroizing::new(plain)),
});

/// A span of time (time left, a wait, a tolerance). Kotlin sees
/// `kotlin.time.Duration`, Swift `Duration` (both through `uniffi.toml`); a
/// negative span from the app counts as zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeSpan(pub Duration);

impl TimeSpan {
    /// A span of whole seconds (the core's unit).
    pub fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// Whole seconds, a started second counted as one (waits and tolerances
    /// never shrink to zero by rounding).
    pub fn ceil_secs(self) -> u64 {
        let secs = self.0.as_secs();
        if self.0.subsec_nanos() > 0 {
            secs.saturating_add(1)
        } else {
            secs
        }
    }
}

uniffi::custom_type!(TimeSpan, Duration, {
    lower: |span| span.0,
    try_lift: |duration| Ok(TimeSpan(duration)),
});

/// The latest instant exported: 9999-12-31T23:59:59Z (every platform's date
/// type holds it).
const MAX_UNIX_SECS: u64 = 253_402_300_799;

/// The instant of a unix time in seconds (the core's unit), capped at the year
/// 9999 so that no server value can overflow a platform's date type.
pub fn unix_time(secs: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs.min(MAX_UNIX_SECS)))
        .unwrap_or(UNIX_EPOCH)
}

/// User verification before an approval is signed.
#[uniffi::remote(Enum)]
pub enum Verification {
    /// One tap.
    None,
    /// The app PIN.
    Pin,
    /// Biometrics (with the platform's passcode fallback).
    Biometric,
}

/// The server's verification policy for an account.
#[uniffi::remote(Record)]
pub struct VerificationPolicy {
    /// What a challenge asks for when the server has no risk signal.
    #[uniffi(name = "default_verification")]
    pub default: Verification,
    /// Minimum app PIN length.
    pub pin_min_length: u8,
    /// Wrong PINs before the account is wiped.
    pub pin_max_attempts: u8,
    /// Whether biometrics may stand in for the PIN.
    pub biometric_allowed: bool,
}

/// What kind of account.
#[uniffi::remote(Enum)]
pub enum AccountKind {
    /// A push account on a countersign-server.
    Push {
        /// The server's base URL.
        server_url: String,
        /// The server's account id.
        #[uniffi(name = "server_account_id")]
        account_id: String,
        /// This device's id on the server.
        device_id: String,
    },
    /// An imported `otpauth://` TOTP or HOTP account.
    Otp,
}

/// An account as the app lists it.
#[uniffi::remote(Record)]
pub struct AccountInfo {
    /// Local account id, used in every call.
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

/// Login, transaction signing, or moving the account to a new phone.
#[uniffi::remote(Enum)]
pub enum ChallengeKind {
    /// A login.
    Login,
    /// A transaction to confirm: show [`PendingRequest::transaction`].
    Transaction,
    /// A new phone asks to take over this account (a transfer this device
    /// started): show [`PendingRequest::text`], which names the new phone.
    /// Approving makes it active; deny if it is not the user's phone.
    Transfer,
}

/// Transaction fields to show; the answer signs exactly these.
#[uniffi::remote(Record)]
pub struct TransactionDetails {
    /// Decimal amount ("120.50").
    pub amount: String,
    /// ISO 4217 currency ("EUR").
    pub currency: String,
    /// Payee name or account.
    pub payee: String,
}

/// Number matching: what the user must enter to approve.
#[uniffi::remote(Enum)]
pub enum NumberMatching {
    /// No number.
    Off,
    /// Pick the number shown on the login page from `choices`.
    Pick {
        /// The choices to offer.
        choices: Vec<String>,
    },
    /// Type the number shown on the login page (the phone does not know it).
    Type {
        /// How many digits to expect.
        digits: u8,
    },
    /// Show this number: the user types it on the login page (QR login with
    /// reverse matching); approve without a number.
    Show {
        /// The number to show.
        number: String,
    },
}

/// A push request waiting for the user's decision, with everything to show.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PendingRequest {
    /// Local account id.
    pub account_id: String,
    /// Transaction id.
    pub tx_id: String,
    /// Login or transaction.
    pub kind: ChallengeKind,
    /// Relying party ("Example VPN").
    pub rp: String,
    /// Client IP address.
    pub ip: Option<String>,
    /// Coarse location ("Berlin, DE").
    pub location: Option<String>,
    /// User agent summary ("Firefox on Linux").
    pub user_agent: Option<String>,
    /// Free text to show.
    pub text: Option<String>,
    /// Transaction fields (transaction signing).
    pub transaction: Option<TransactionDetails>,
    /// Verification the challenge asks for.
    pub verification: Verification,
    /// Number matching.
    pub number_matching: NumberMatching,
    /// When the server issued it (server clock).
    pub issued_at: SystemTime,
    /// When it expires (server clock).
    pub expires_at: SystemTime,
    /// Time left when this was produced (estimated server clock): count down
    /// from this rather than comparing `expires_at` with the phone's clock.
    pub time_left: TimeSpan,
}

impl From<core_auth::PendingRequest> for PendingRequest {
    fn from(p: core_auth::PendingRequest) -> Self {
        let c = p.challenge;
        Self {
            account_id: p.account_id,
            tx_id: p.tx_id,
            kind: c.kind,
            rp: c.context.rp,
            ip: c.context.ip,
            location: c.context.location,
            user_agent: c.context.user_agent,
            text: c.text,
            transaction: c.transaction,
            verification: c.verification,
            number_matching: c.number_matching,
            issued_at: unix_time(c.issued_at),
            expires_at: unix_time(p.expires_at),
            time_left: TimeSpan::from_secs(p.seconds_left),
        }
    }
}

/// Why the user denied.
#[uniffi::remote(Enum)]
pub enum DenyReason {
    /// "This wasn't me": reports fraud; the server throttles pushes.
    NotMe,
    /// "I tapped by mistake".
    Mistake,
}

/// This device's platform.
#[uniffi::remote(Enum)]
pub enum Platform {
    /// Android.
    Android,
    /// iOS / iPadOS.
    Ios,
    /// Desktop (tests, harness).
    Desktop,
}

/// How servers wake this device.
#[uniffi::remote(Enum)]
pub enum PushRegistration {
    /// Firebase Cloud Messaging.
    Fcm {
        /// The FCM registration token.
        token: String,
    },
    /// Apple Push Notification service.
    Apns {
        /// The APNs device token (hex).
        token: String,
    },
    /// UnifiedPush (Web Push to a distributor).
    UnifiedPush {
        /// The https push endpoint.
        endpoint: String,
        /// The subscription's P-256 key, base64url of the 65-byte SEC1 point.
        p256dh: String,
        /// The 16-byte auth secret, base64url.
        auth: String,
    },
    /// No push: the app long-polls with `Authenticator.pending`.
    None {},
}

/// Device-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AuthenticatorConfig {
    /// This device's platform.
    pub platform: Platform,
    /// A device name the user chose (sent at activation).
    #[uniffi(default = None)]
    pub device_name: Option<String>,
    /// How servers wake this device.
    pub push: PushRegistration,
    /// Consecutive wrong PINs before an account is wiped; null/nil for the default.
    #[uniffi(default = None)]
    pub pin_max_attempts: Option<u32>,
    /// Clock tolerance for expiry checks (whole seconds, a started one counts);
    /// null/nil for the default.
    #[uniffi(default = None)]
    pub clock_skew: Option<TimeSpan>,
}

impl From<AuthenticatorConfig> for countersign_core::AuthenticatorConfig {
    fn from(c: AuthenticatorConfig) -> Self {
        let mut config = Self::new(c.platform);
        config.device_name = c.device_name;
        config.push = c.push;
        if let Some(n) = c.pin_max_attempts {
            config.pin_max_attempts = n;
        }
        if let Some(skew) = c.clock_skew {
            config.clock_skew_secs = skew.ceil_secs();
        }
        config
    }
}

/// How approvals are protected on a new account.
#[uniffi::remote(Record)]
pub struct ActivationOptions {
    /// Protect approvals with this app PIN.
    #[uniffi(default = None)]
    pub pin: Option<SecretString>,
    /// Protect approvals with biometrics (a user-verification-bound vault key).
    #[uniffi(default = false)]
    pub biometric: bool,
}

/// The offer a transfer's new phone activates with: show `offer_uri` as a QR
/// code (or `code` to type) until `expires_at`. Both hold the offer secret.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct TransferOffer {
    /// `countersign://activate?…` for the QR code.
    pub offer_uri: SecretString,
    /// The typed code (five groups of five).
    pub code: SecretString,
    /// When the offer expires (server clock).
    pub expires_at: SystemTime,
}

impl std::fmt::Debug for TransferOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferOffer")
            .field("offer_uri", &"<redacted>")
            .field("code", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl From<core_auth::TransferOffer> for TransferOffer {
    fn from(o: core_auth::TransferOffer) -> Self {
        Self {
            offer_uri: o.offer_uri,
            code: o.code,
            expires_at: unix_time(o.expires_at),
        }
    }
}

/// A one-time password.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct OtpCode {
    /// The code.
    pub code: SecretString,
    /// Time before it changes (TOTP); null/nil for HOTP.
    pub time_left: Option<TimeSpan>,
}

impl std::fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtpCode")
            .field("code", &"<redacted>")
            .field("time_left", &self.time_left)
            .finish()
    }
}

impl From<core_auth::OtpCode> for OtpCode {
    fn from(otp: core_auth::OtpCode) -> Self {
        Self {
            code: otp.code,
            time_left: otp.seconds_left.map(|s| TimeSpan::from_secs(u64::from(s))),
        }
    }
}

/// The answer to an offline QR challenge.
#[uniffi::remote(Record)]
pub struct OfflineCode {
    /// Local account id that answered.
    pub account_id: String,
    /// Relying party shown in the QR.
    pub rp: String,
    /// The response code the user types on the login page.
    pub code: SecretString,
}

/// What an import of a Google Authenticator export did.
#[uniffi::remote(Record)]
pub struct MigrationImport {
    /// The accounts added, in the export's order.
    pub imported: Vec<AccountInfo>,
    /// The accounts not added, each with its name and why.
    pub skipped: Vec<SkippedAccount>,
}

/// An account of an export that was not imported.
#[uniffi::remote(Record)]
pub struct SkippedAccount {
    /// Its name as the export shows it.
    pub name: String,
    /// Why it was not imported (English, for the user to read).
    pub reason: String,
}

/// Whether an answer has reached the server.
#[uniffi::remote(Enum)]
pub enum Delivery {
    /// The server acknowledged it.
    Delivered,
    /// The network failed: the signed answer is saved in the outbox and sent
    /// again on the next call that talks to a server. The decision stands; do
    /// not ask the user again.
    Queued,
}

/// What an approval produced.
#[uniffi::remote(Record)]
pub struct ApprovalOutcome {
    /// The push OTP sent with the approval (a login form may show it).
    pub push_otp: SecretString,
    /// The verification the user passed.
    pub verification: Verification,
    /// Delivered, or queued in the outbox.
    pub delivery: Delivery,
}

/// Approve or deny.
#[uniffi::remote(Enum)]
pub enum Decision {
    /// The user approved.
    Approve,
    /// The user denied.
    Deny,
}

/// Where an answer in the outbox stands.
#[uniffi::remote(Enum)]
pub enum OutboxState {
    /// Saved, not yet acknowledged: sent again on the next server call.
    Waiting,
    /// Refused for good (`code`: the server's error code, or `expired`): tell
    /// the user, then `dismissOutboxEntry`.
    Refused {
        /// Machine-readable reason.
        code: String,
    },
}

/// A decision not yet acknowledged by the server, or finally refused.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OutboxEntry {
    /// Local account id.
    pub account_id: String,
    /// Transaction id.
    pub tx_id: String,
    /// What the user decided.
    pub decision: Decision,
    /// When the challenge expires (server clock).
    pub expires_at: SystemTime,
    /// Waiting or refused.
    pub state: OutboxState,
}

impl From<core_auth::OutboxEntry> for OutboxEntry {
    fn from(e: core_auth::OutboxEntry) -> Self {
        Self {
            account_id: e.account_id,
            tx_id: e.tx_id,
            decision: e.decision,
            expires_at: unix_time(e.expires_at),
            state: e.state,
        }
    }
}

#[cfg(test)]
mod tests {
    use uniffi::{Lift, Lower};

    use super::*;
    use crate::UniFfiTag;

    fn round_trip<T: Lower<UniFfiTag> + Lift<UniFfiTag>>(value: T) -> T {
        let mut buf = Vec::new();
        T::write(value, &mut buf);
        let mut rest = buf.as_slice();
        let back = T::try_read(&mut rest).unwrap();
        assert!(rest.is_empty(), "{} bytes left over", rest.len());
        back
    }

    #[test]
    fn remote_records_and_enums_round_trip() {
        let info = AccountInfo {
            id: "local-1".into(),
            label: "alice@example.com".into(),
            issuer: Some("Example".into()),
            kind: AccountKind::Push {
                server_url: "https://auth.example.com".into(),
                account_id: "server-7".into(),
                device_id: "device-3".into(),
            },
            pin_set: true,
            biometric_enabled: false,
            min_verification: Verification::Pin,
            policy: Some(VerificationPolicy {
                default: Verification::Biometric,
                pin_min_length: 6,
                pin_max_attempts: 5,
                biometric_allowed: true,
            }),
            pin_failures: 2,
        };
        assert_eq!(round_trip(info.clone()), info);
        let push = PushRegistration::UnifiedPush {
            endpoint: "https://push.example.com/x".into(),
            p256dh: "BKey".into(),
            auth: "secret".into(),
        };
        assert_eq!(round_trip(push.clone()), push);
        assert_eq!(
            round_trip(PushRegistration::None {}),
            PushRegistration::None {}
        );
        let matching = NumberMatching::Pick {
            choices: vec!["12".into(), "34".into()],
        };
        assert_eq!(round_trip(matching.clone()), matching);
    }

    #[test]
    fn secrets_cross_as_plain_strings() {
        let mut secret = Vec::new();
        <SecretString as Lower<UniFfiTag>>::write(Zeroizing::new("246810".into()), &mut secret);
        let mut plain = Vec::new();
        <String as Lower<UniFfiTag>>::write("246810".into(), &mut plain);
        assert_eq!(secret, plain);

        let options = round_trip(ActivationOptions {
            pin: Some(Zeroizing::new("246810".into())),
            biometric: true,
        });
        assert_eq!(options.pin.as_deref().map(String::as_str), Some("246810"));
        assert!(options.biometric);
        let outcome = round_trip(ApprovalOutcome {
            push_otp: Zeroizing::new("123456".into()),
            verification: Verification::None,
            delivery: Delivery::Queued,
        });
        assert_eq!(outcome.delivery, Delivery::Queued);
        let entry = OutboxEntry {
            account_id: "a".into(),
            tx_id: "t".into(),
            decision: Decision::Deny,
            expires_at: unix_time(7),
            state: OutboxState::Refused {
                code: "already_answered".into(),
            },
        };
        assert_eq!(round_trip(entry.clone()), entry);
        assert_eq!(outcome.push_otp.as_str(), "123456");
    }

    #[test]
    fn times_cross_typed() {
        // A span crosses as uniffi's duration (u64 seconds, u32 nanoseconds).
        let mut span = Vec::new();
        <TimeSpan as Lower<UniFfiTag>>::write(TimeSpan(Duration::new(30, 5)), &mut span);
        let mut plain = Vec::new();
        <Duration as Lower<UniFfiTag>>::write(Duration::new(30, 5), &mut plain);
        assert_eq!(span, plain);
        assert_eq!(round_trip(TimeSpan::from_secs(7)), TimeSpan::from_secs(7));
        // Waits and tolerances round a started second up.
        assert_eq!(TimeSpan(Duration::from_millis(1)).ceil_secs(), 1);
        assert_eq!(TimeSpan(Duration::from_millis(2_000)).ceil_secs(), 2);
        assert_eq!(TimeSpan::default().ceil_secs(), 0);
        // Server times become instants, capped at the year 9999.
        assert_eq!(
            unix_time(1_700_000_000).duration_since(UNIX_EPOCH).ok(),
            Some(Duration::from_secs(1_700_000_000))
        );
        assert_eq!(unix_time(u64::MAX), unix_time(MAX_UNIX_SECS));
        let config: countersign_core::AuthenticatorConfig = AuthenticatorConfig {
            platform: Platform::Desktop,
            device_name: None,
            push: PushRegistration::None {},
            pin_max_attempts: None,
            clock_skew: Some(TimeSpan(Duration::from_millis(1_500))),
        }
        .into();
        assert_eq!(config.clock_skew_secs, 2);
        let otp = OtpCode::from(core_auth::OtpCode {
            code: Zeroizing::new("123456".into()),
            seconds_left: Some(12),
        });
        assert_eq!(otp.time_left, Some(TimeSpan::from_secs(12)));
        assert!(
            !format!("{otp:?}").contains("123456"),
            "the code stays out of logs"
        );
        let back = round_trip(otp.clone());
        assert_eq!(back, otp);
    }
}

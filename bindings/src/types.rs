//! Records and enums mirroring the core's public types, with their conversions.
//!
//! Codes, PINs and exported secrets cross the boundary as strings (the foreign
//! side cannot hold `Zeroizing`); their `Debug` output is redacted here.

use std::fmt;

use countersign_core::authenticator as core_auth;
use countersign_core::protocol as proto;
use zeroize::Zeroizing;

/// User verification before an approval is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Verification {
    /// One tap.
    None,
    /// The app PIN.
    Pin,
    /// Biometrics (with the platform's passcode fallback).
    Biometric,
}

impl From<proto::Verification> for Verification {
    fn from(v: proto::Verification) -> Self {
        match v {
            proto::Verification::None => Self::None,
            proto::Verification::Pin => Self::Pin,
            proto::Verification::Biometric => Self::Biometric,
        }
    }
}

impl From<Verification> for proto::Verification {
    fn from(v: Verification) -> Self {
        match v {
            Verification::None => Self::None,
            Verification::Pin => Self::Pin,
            Verification::Biometric => Self::Biometric,
        }
    }
}

/// The server's verification policy for an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct VerificationPolicy {
    /// What a challenge asks for when the server has no risk signal.
    pub default_verification: Verification,
    /// Minimum app PIN length.
    pub pin_min_length: u8,
    /// Wrong PINs before the account is wiped.
    pub pin_max_attempts: u8,
    /// Whether biometrics may stand in for the PIN.
    pub biometric_allowed: bool,
}

impl From<proto::VerificationPolicy> for VerificationPolicy {
    fn from(p: proto::VerificationPolicy) -> Self {
        Self {
            default_verification: p.default.into(),
            pin_min_length: p.pin_min_length,
            pin_max_attempts: p.pin_max_attempts,
            biometric_allowed: p.biometric_allowed,
        }
    }
}

/// What kind of account.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum AccountKind {
    /// A push account on a countersign-server.
    Push {
        /// The server's base URL.
        server_url: String,
        /// The server's account id.
        server_account_id: String,
        /// This device's id on the server.
        device_id: String,
    },
    /// An imported `otpauth://` TOTP or HOTP account.
    Otp,
}

/// An account as the app lists it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
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
}

impl From<core_auth::AccountInfo> for AccountInfo {
    fn from(a: core_auth::AccountInfo) -> Self {
        Self {
            id: a.id,
            label: a.label,
            issuer: a.issuer,
            kind: match a.kind {
                core_auth::AccountKind::Push {
                    server_url,
                    account_id,
                    device_id,
                } => AccountKind::Push {
                    server_url,
                    server_account_id: account_id,
                    device_id,
                },
                core_auth::AccountKind::Otp => AccountKind::Otp,
            },
            pin_set: a.pin_set,
            biometric_enabled: a.biometric_enabled,
            min_verification: a.min_verification.into(),
            policy: a.policy.map(Into::into),
        }
    }
}

/// Login or transaction signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ChallengeKind {
    /// A login.
    Login,
    /// A transaction to confirm: show [`PendingRequest::transaction`].
    Transaction,
}

/// Transaction fields to show; the answer signs exactly these.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TransactionDetails {
    /// Decimal amount ("120.50").
    pub amount: String,
    /// ISO 4217 currency ("EUR").
    pub currency: String,
    /// Payee name or account.
    pub payee: String,
}

/// Number matching: what the user must enter to approve.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
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
    /// Issued at, unix seconds (server clock).
    pub issued_at: u64,
    /// Expiry, unix seconds (server clock).
    pub expires_at: u64,
    /// Seconds left when this was produced (estimated server clock).
    pub seconds_left: u64,
}

impl From<core_auth::PendingRequest> for PendingRequest {
    fn from(p: core_auth::PendingRequest) -> Self {
        let c = p.challenge;
        Self {
            account_id: p.account_id,
            tx_id: p.tx_id,
            kind: match c.kind {
                proto::ChallengeKind::Login => ChallengeKind::Login,
                proto::ChallengeKind::Transaction => ChallengeKind::Transaction,
            },
            rp: c.context.rp,
            ip: c.context.ip,
            location: c.context.location,
            user_agent: c.context.user_agent,
            text: c.text,
            transaction: c.transaction.map(|t| TransactionDetails {
                amount: t.amount,
                currency: t.currency,
                payee: t.payee,
            }),
            verification: c.verification.into(),
            number_matching: match c.number_matching {
                proto::NumberMatching::Off => NumberMatching::Off,
                proto::NumberMatching::Pick { choices } => NumberMatching::Pick { choices },
                proto::NumberMatching::Type { digits } => NumberMatching::Type { digits },
            },
            issued_at: c.issued_at,
            expires_at: p.expires_at,
            seconds_left: p.seconds_left,
        }
    }
}

/// Why the user denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum DenyReason {
    /// "This wasn't me": reports fraud; the server throttles pushes.
    NotMe,
    /// "I tapped by mistake".
    Mistake,
}

impl From<DenyReason> for proto::DenyReason {
    fn from(r: DenyReason) -> Self {
        match r {
            DenyReason::NotMe => Self::NotMe,
            DenyReason::Mistake => Self::Mistake,
        }
    }
}

/// This device's platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Platform {
    /// Android.
    Android,
    /// iOS / iPadOS.
    Ios,
    /// Desktop (tests, harness).
    Desktop,
}

impl From<Platform> for proto::Platform {
    fn from(p: Platform) -> Self {
        match p {
            Platform::Android => Self::Android,
            Platform::Ios => Self::Ios,
            Platform::Desktop => Self::Desktop,
        }
    }
}

/// How servers wake this device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
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
    None,
}

impl From<PushRegistration> for proto::PushRegistration {
    fn from(p: PushRegistration) -> Self {
        match p {
            PushRegistration::Fcm { token } => Self::Fcm { token },
            PushRegistration::Apns { token } => Self::Apns { token },
            PushRegistration::UnifiedPush {
                endpoint,
                p256dh,
                auth,
            } => Self::UnifiedPush {
                endpoint,
                p256dh,
                auth,
            },
            PushRegistration::None => Self::None {},
        }
    }
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
    /// Clock tolerance for expiry checks, seconds; null/nil for the default.
    #[uniffi(default = None)]
    pub clock_skew_secs: Option<u64>,
}

impl From<AuthenticatorConfig> for core_auth::AuthenticatorConfig {
    fn from(c: AuthenticatorConfig) -> Self {
        let mut config = Self::new(c.platform.into());
        config.device_name = c.device_name;
        config.push = c.push.into();
        if let Some(n) = c.pin_max_attempts {
            config.pin_max_attempts = n;
        }
        if let Some(s) = c.clock_skew_secs {
            config.clock_skew_secs = s;
        }
        config
    }
}

/// How approvals are protected on a new account.
#[derive(Clone, PartialEq, Eq, Default, uniffi::Record)]
pub struct ActivationOptions {
    /// Protect approvals with this app PIN.
    #[uniffi(default = None)]
    pub pin: Option<String>,
    /// Protect approvals with biometrics (a user-verification-bound vault key).
    #[uniffi(default = false)]
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

impl From<ActivationOptions> for core_auth::ActivationOptions {
    fn from(o: ActivationOptions) -> Self {
        Self {
            pin: o.pin.map(Zeroizing::new),
            biometric: o.biometric,
        }
    }
}

/// A one-time password.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct OtpCode {
    /// The code.
    pub code: String,
    /// Seconds before it changes (TOTP); null/nil for HOTP.
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

impl From<core_auth::OtpCode> for OtpCode {
    fn from(c: core_auth::OtpCode) -> Self {
        Self {
            code: c.code.as_str().to_owned(),
            seconds_left: c.seconds_left,
        }
    }
}

/// The answer to an offline QR challenge.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct OfflineCode {
    /// Local account id that answered.
    pub account_id: String,
    /// Relying party shown in the QR.
    pub rp: String,
    /// The response code the user types on the login page.
    pub code: String,
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

impl From<core_auth::OfflineCode> for OfflineCode {
    fn from(c: core_auth::OfflineCode) -> Self {
        Self {
            code: c.code.as_str().to_owned(),
            account_id: c.account_id,
            rp: c.rp,
        }
    }
}

/// What an approval produced.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct ApprovalOutcome {
    /// The push OTP sent with the approval (a login form may show it).
    pub push_otp: String,
    /// The verification the user passed.
    pub verification: Verification,
}

impl fmt::Debug for ApprovalOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApprovalOutcome")
            .field("push_otp", &"<redacted>")
            .field("verification", &self.verification)
            .finish()
    }
}

impl From<core_auth::ApprovalOutcome> for ApprovalOutcome {
    fn from(o: core_auth::ApprovalOutcome) -> Self {
        Self {
            push_otp: o.push_otp.as_str().to_owned(),
            verification: o.verification.into(),
        }
    }
}

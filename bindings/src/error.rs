//! The one error of the FFI (`CountersignException` in Kotlin, `CountersignError`
//! in Swift), mapped from the core's error in one place.
//!
//! Apps branch on the variant, or on its stable [`CountersignError::error_code`]
//! (`code` in both facades), and read the data the variant carries
//! (`attempts_left`, `field`, `server_code`). The `Display` texts are English
//! for logs only: apps must not show them to users, nor parse them.

/// Which input was rejected: the `field` of `CountersignError::InvalidInput`,
/// for the app to word its own message ("Check the server address").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum InputField {
    /// The activation offer URI (scanned QR code or deep link).
    ActivationUri,
    /// The typed activation code.
    ActivationCode,
    /// The server URL typed with an activation code.
    ServerUrl,
    /// The server key fingerprint given with an activation code (32 bytes).
    ServerKeyFingerprint,
    /// The PIN: too short, or not digits.
    Pin,
    /// A PIN is already set: change it instead.
    PinAlreadySet,
    /// The required verification (PIN or biometrics) is not set up on the account.
    VerificationNotSetUp,
    /// The number typed or picked for number matching.
    Number,
    /// The push notification's data (missing or malformed `device_id` / `tx_id`).
    PushData,
    /// The `otpauth://` URI.
    OtpauthUri,
    /// The HOTP counter is exhausted: the account can give no more codes.
    HotpCounter,
    /// A scanned QR code (offline challenge, or not a code this app knows).
    QrCode,
    /// The device settings sent at activation (device name, platform).
    DeviceSettings,
    /// The push registration (token, UnifiedPush endpoint or keys).
    PushRegistration,
    /// No `HttpClient` was given and this build has none of its own.
    HttpClient,
    /// A scanned QR login (`countersign://login?…`) that does not parse.
    LoginQr,
    /// Which account: several are on the QR login's server (pass one), or the
    /// one given is not on it.
    Account,
    /// An input this build does not name yet.
    Other,
}

impl InputField {
    /// The field of the core's `InvalidInput { what }` text (the one place that
    /// reads those texts; the bindings' tests check every text the core uses).
    fn from_core(what: &str) -> Self {
        match what {
            "activation URI" => Self::ActivationUri,
            "activation code" => Self::ActivationCode,
            "server URL" => Self::ServerUrl,
            "server key fingerprint" => Self::ServerKeyFingerprint,
            "pin" => Self::Pin,
            "pin already set" => Self::PinAlreadySet,
            "verification method not set up" => Self::VerificationNotSetUp,
            "number" => Self::Number,
            "push data" => Self::PushData,
            "otpauth URI" => Self::OtpauthUri,
            "HOTP counter" => Self::HotpCounter,
            "QR code" => Self::QrCode,
            "device settings" => Self::DeviceSettings,
            "push registration" => Self::PushRegistration,
            "login QR" => Self::LoginQr,
            "account" => Self::Account,
            _ => Self::Other,
        }
    }
}

/// Everything an `Authenticator` call can fail with. Each variant says what the app
/// should do; `code` (Kotlin `CountersignException.code`, Swift
/// `CountersignError.code`) names it as a stable snake_case string for logs,
/// analytics and switch statements. The messages are English for logs only:
/// never show them to users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum CountersignError {
    /// No account is activated: activate first.
    #[error("not activated")]
    NotActivated,
    /// The server removed this device; the account was wiped locally. Re-activate.
    #[error("device deregistered; account wiped")]
    DeviceDeregistered,
    /// No such account on this device.
    #[error("account not found")]
    AccountNotFound,
    /// The user cancelled the PIN or biometric prompt. Nothing was sent.
    #[error("verification cancelled")]
    VerificationCancelled,
    /// The biometric check failed, or no usable verification method is set up.
    #[error("verification failed")]
    VerificationFailed,
    /// The PIN was wrong; `attempts_left` more tries before the account is wiped.
    #[error("wrong PIN ({attempts_left} attempts left)")]
    WrongPin {
        /// Tries left before the account is wiped.
        attempts_left: u32,
    },
    /// Too many wrong PINs: the account was wiped. Re-activate.
    #[error("PIN locked; account wiped")]
    PinLocked,
    /// The request expired: ask the relying party for a new one.
    #[error("request expired")]
    RequestExpired,
    /// No such pending request (already handled, or never received).
    #[error("request not found")]
    RequestNotFound,
    /// The request was already answered.
    #[error("request already answered")]
    AlreadyAnswered,
    /// A signature, decryption or binding check failed: possible attack. Show nothing.
    #[error("message failed verification")]
    Tampered,
    /// A protocol version or feature this build does not support: update the app.
    #[error("unsupported version or feature")]
    Unsupported,
    /// Bad input from the user or a scanned code; `field` names the input.
    #[error("invalid input: {field:?}")]
    InvalidInput {
        /// Which input was rejected.
        field: InputField,
    },
    /// The server could not be reached or timed out: retry later.
    #[error("network error")]
    Network,
    /// The server answered, but not as a Countersign server: check the server URL.
    #[error("not a Countersign server")]
    NotCountersignServer,
    /// The server refused the request with this machine-readable code
    /// (`rate_limited`, `wrong_number`, `suppressed`, …).
    #[error("server rejected the request: {server_code}")]
    ServerRejected {
        /// The server's error code (`code` is `server_rejected`).
        server_code: String,
    },
    /// A transfer's new phone: the activation waits for the approval on the
    /// old device. Poll `confirmPendingActivations`; the account is listed
    /// once approved.
    #[error("awaiting approval on the old device")]
    AwaitingApproval,
    /// The old device denied the move to this phone (or did not answer in
    /// time); the waiting account was dropped.
    #[error("transfer denied by the old device")]
    TransferDenied,
    /// Local storage or the key vault failed.
    #[error("storage failure")]
    Storage,
    /// A hook the app provides (`UserVerifier`, `Clock`) threw or failed.
    /// Nothing was sent.
    #[error("platform hook failed")]
    HookFailed,
    /// The call was cancelled through its `CancelHandle`.
    #[error("cancelled")]
    Cancelled,
    /// A bug or an unexpected local failure.
    #[error("internal error")]
    Internal,
}

#[uniffi::export]
impl CountersignError {
    /// The stable, machine-readable code of this error: the variant's name in
    /// snake_case (`wrong_pin`, `request_not_found`, `server_rejected`, …). The
    /// facades expose it as `code`.
    pub fn error_code(&self) -> String {
        self.code().to_owned()
    }
}

impl CountersignError {
    /// [`Self::error_code`] without allocating.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotActivated => "not_activated",
            Self::DeviceDeregistered => "device_deregistered",
            Self::AccountNotFound => "account_not_found",
            Self::VerificationCancelled => "verification_cancelled",
            Self::VerificationFailed => "verification_failed",
            Self::WrongPin { .. } => "wrong_pin",
            Self::PinLocked => "pin_locked",
            Self::RequestExpired => "request_expired",
            Self::RequestNotFound => "request_not_found",
            Self::AlreadyAnswered => "already_answered",
            Self::Tampered => "tampered",
            Self::Unsupported => "unsupported",
            Self::InvalidInput { .. } => "invalid_input",
            Self::Network => "network",
            Self::NotCountersignServer => "not_countersign_server",
            Self::ServerRejected { .. } => "server_rejected",
            Self::AwaitingApproval => "awaiting_approval",
            Self::TransferDenied => "transfer_denied",
            Self::Storage => "storage",
            Self::HookFailed => "hook_failed",
            Self::Cancelled => "cancelled",
            Self::Internal => "internal",
        }
    }
}

impl From<countersign_core::Error> for CountersignError {
    fn from(e: countersign_core::Error) -> Self {
        use countersign_core::Error as E;
        match e {
            E::NotActivated => Self::NotActivated,
            E::DeviceDeregistered => Self::DeviceDeregistered,
            E::AccountNotFound => Self::AccountNotFound,
            E::VerificationCancelled => Self::VerificationCancelled,
            E::VerificationFailed => Self::VerificationFailed,
            E::WrongPin { attempts_left } => Self::WrongPin { attempts_left },
            E::PinLocked => Self::PinLocked,
            E::RequestExpired => Self::RequestExpired,
            E::RequestNotFound => Self::RequestNotFound,
            E::AlreadyAnswered => Self::AlreadyAnswered,
            E::Tampered => Self::Tampered,
            E::Unsupported => Self::Unsupported,
            E::InvalidInput { what } => Self::InvalidInput {
                field: InputField::from_core(what),
            },
            E::Network => Self::Network,
            E::NotCountersignServer => Self::NotCountersignServer,
            E::ServerRejected { code } => Self::ServerRejected { server_code: code },
            E::AwaitingApproval => Self::AwaitingApproval,
            E::TransferDenied => Self::TransferDenied,
            E::Storage => Self::Storage,
            E::HookFailed => Self::HookFailed,
            E::Cancelled => Self::Cancelled,
            E::Internal => Self::Internal,
        }
    }
}

/// Result of the exported API.
pub type Result<T, E = CountersignError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;

    use super::*;

    #[test]
    fn maps_with_fields() {
        assert_eq!(
            CountersignError::from(countersign_core::Error::WrongPin { attempts_left: 3 }),
            CountersignError::WrongPin { attempts_left: 3 }
        );
        assert_eq!(
            CountersignError::from(countersign_core::Error::InvalidInput { what: "pin" }),
            CountersignError::InvalidInput {
                field: InputField::Pin
            }
        );
        assert_eq!(
            CountersignError::from(countersign_core::Error::ServerRejected {
                code: "wrong_number".into()
            }),
            CountersignError::ServerRejected {
                server_code: "wrong_number".into()
            }
        );
        assert_eq!(InputField::from_core("no such input"), InputField::Other);
    }

    /// Every variant, for the code checks (a new variant fails to compile in
    /// `code`, and must be added here to be checked).
    fn every_error() -> Vec<CountersignError> {
        use CountersignError as E;
        vec![
            E::NotActivated,
            E::DeviceDeregistered,
            E::AccountNotFound,
            E::VerificationCancelled,
            E::VerificationFailed,
            E::WrongPin { attempts_left: 1 },
            E::PinLocked,
            E::RequestExpired,
            E::RequestNotFound,
            E::AlreadyAnswered,
            E::Tampered,
            E::Unsupported,
            E::InvalidInput {
                field: InputField::Pin,
            },
            E::Network,
            E::NotCountersignServer,
            E::ServerRejected {
                server_code: "x".into(),
            },
            E::AwaitingApproval,
            E::TransferDenied,
            E::Storage,
            E::HookFailed,
            E::Cancelled,
            E::Internal,
        ]
    }

    #[test]
    fn codes_are_unique_snake_case_variant_names() {
        let errors = every_error();
        let codes: HashSet<&str> = errors.iter().map(CountersignError::code).collect();
        assert_eq!(codes.len(), errors.len(), "codes must be unique");
        for e in &errors {
            let code = e.code();
            assert!(
                !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
            // The code is the variant name in snake_case.
            let variant = format!("{e:?}");
            let name: String = variant
                .split([' ', '{', '('])
                .next()
                .unwrap_or_default()
                .chars()
                .enumerate()
                .flat_map(|(i, c)| {
                    let lower = c.to_ascii_lowercase();
                    if c.is_ascii_uppercase() && i > 0 {
                        vec!['_', lower]
                    } else {
                        vec![lower]
                    }
                })
                .collect();
            assert_eq!(code, name);
            assert_eq!(e.error_code(), code);
        }
        assert_eq!(
            CountersignError::RequestNotFound.code(),
            "request_not_found"
        );
        assert_eq!(
            CountersignError::WrongPin { attempts_left: 2 }.code(),
            "wrong_pin"
        );
    }

    /// The `what` texts of the core's `InvalidInput` in `dir` (`what: "…"` and
    /// `from_input("…")`), outside test code.
    fn core_input_texts(dir: &Path, out: &mut Vec<(String, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                core_input_texts(&path, out);
                continue;
            }
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.ends_with(".rs") || name == "tests.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for line in code.lines() {
                let line = line.trim_start();
                if line.starts_with("//") {
                    continue;
                }
                for marker in ["InvalidInput { what: \"", "from_input(\""] {
                    for part in line.split(marker).skip(1) {
                        if let Some(text) = part.split('"').next() {
                            out.push((text.to_owned(), path.display().to_string()));
                        }
                    }
                }
                // `what: "…",` on its own line inside `InvalidInput {`.
                if let Some(rest) = line.strip_prefix("what: \"")
                    && let Some(text) = rest.split('"').next()
                {
                    out.push((text.to_owned(), path.display().to_string()));
                }
            }
        }
    }

    #[test]
    fn every_core_input_text_has_a_field() {
        let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/src");
        let mut texts = Vec::new();
        core_input_texts(&core, &mut texts);
        assert!(texts.len() >= 10, "found only {texts:?}");
        for (text, file) in &texts {
            assert_ne!(
                InputField::from_core(text),
                InputField::Other,
                "InvalidInput {{ what: {text:?} }} in {file} has no InputField"
            );
        }
    }
}

//! Foreign traits for the core's platform hooks, and the adapters ("bridges") that
//! make a Kotlin/Swift implementation usable as the core trait.
//!
//! Each hook keeps the core's contract (see `countersign_core::platform`): calls
//! come from any thread, never while the core holds a lock (so an implementation
//! may call back into the `Authenticator`), and every hook returns a result, so an
//! exception thrown by a Kotlin or Swift implementation becomes a typed error. Sync hooks may block briefly (disk,
//! keystore); async hooks (`UserVerifier`, `HttpClient`) are `suspend` in Kotlin and
//! `async` in Swift.
//!
//! Binary values cross the boundary as bytes: public keys as 65-byte uncompressed
//! SEC1 points, signatures as raw 64-byte `r || s` (convert from DER at the edge),
//! shared secrets as the 32-byte x-coordinate.
//!
//! The hooks' plain records and enums are the core's own, exported as uniffi
//! remote types (see [`crate::types`]). Hand-written on purpose:
//! * the callback errors ([`StorageError`], [`KeyVaultError`], [`HttpError`],
//!   [`HookError`]): a
//!   foreign implementation's unexpected failure must convert into them (a `From`
//!   impl the orphan rule forbids on the core's), and the core's variants carry
//!   unnamed fields where the foreign side gets a named `detail`;
//! * [`HttpRequest`] and [`HttpResponse`]: headers as [`HttpHeader`] records (the
//!   core's are tuples) and the timeout in milliseconds (the core's is a
//!   `Duration`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use countersign_core::crypto::{PublicKey, Signature};
use countersign_core::platform as core;
use zeroize::Zeroizing;

pub use countersign_core::platform::{
    HttpMethod, KeyPurpose, KeySpec, LogLevel, VerificationKind, VerificationOutcome,
    VerificationPrompt,
};

use crate::types::{SecretString, TimeSpan};

// ---------------------------------------------------------------------------
// SecureStorage
// ---------------------------------------------------------------------------

/// Why a storage call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum StorageError {
    /// The platform store failed (disk full, I/O error, keychain locked).
    #[error("storage I/O failed: {detail}")]
    Io {
        /// What failed (no stored values).
        detail: String,
    },
    /// Stored data did not decrypt or parse.
    #[error("stored data is corrupt")]
    Corrupt,
    /// The key protecting the store is unavailable (keystore locked or wiped).
    #[error("storage key unavailable: {detail}")]
    KeyUnavailable {
        /// What failed.
        detail: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for StorageError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Io { detail: e.reason }
    }
}

impl From<StorageError> for core::StorageError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Io { detail } => Self::Io(detail),
            StorageError::Corrupt => Self::Corrupt,
            StorageError::KeyUnavailable { detail } => Self::KeyUnavailable(detail),
        }
    }
}

/// Byte blobs by key, kept by the app (Android: Keystore-wrapped files; iOS:
/// Keychain items with `kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly`).
///
/// `put` must be atomic (after a crash the old or the new value, never a mix);
/// `delete` of a missing key succeeds; `list` returns every key starting with
/// `prefix`. Keys are printable ASCII of at most 120 bytes. Values may be secret.
/// Called from any thread, concurrently.
///
/// Several processes: when the app runs the core in more than one process on
/// the same store (an iOS Notification Service Extension in the app group, an
/// Android push service in its own process), `compareAndPut` must be atomic
/// against all of them: hold a cross-process lock (`flock` / `FileChannel.lock`
/// on a lock file in the shared directory, plus an in-process mutex) around its
/// read, compare and write, and around `put` and `delete`. The core changes
/// records only by compare-and-swap and re-applies its change when it loses, so
/// no process loses or rolls back another's write.
#[uniffi::export(foreign)]
pub trait SecureStorage: Send + Sync {
    /// The value stored under `key`, or null/nil.
    fn get(&self, key: String) -> Result<Option<Vec<u8>>, StorageError>;
    /// Stores `value` under `key`, atomically replacing any old value.
    fn put(&self, key: String, value: Vec<u8>) -> Result<(), StorageError>;
    /// Removes `key` (no error if absent).
    fn delete(&self, key: String) -> Result<(), StorageError>;
    /// Every key starting with `prefix`, in any order.
    fn list(&self, prefix: String) -> Result<Vec<String>, StorageError>;
    /// Stores `value` under `key` only if the stored value equals `expected`
    /// (null/nil: no value stored), and returns true; otherwise changes nothing
    /// and returns false. Atomic against every thread and process sharing the store.
    fn compare_and_put(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool, StorageError>;
}

/// Joins a foreign [`SecureStorage`] to the core trait.
pub(crate) struct StorageBridge(pub(crate) Arc<dyn SecureStorage>);

impl core::SecureStorage for StorageBridge {
    fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>, core::StorageError> {
        Ok(self.0.get(key.to_owned())?.map(Zeroizing::new))
    }
    fn put(&self, key: &str, value: &[u8]) -> Result<(), core::StorageError> {
        Ok(self.0.put(key.to_owned(), value.to_vec())?)
    }
    fn delete(&self, key: &str) -> Result<(), core::StorageError> {
        Ok(self.0.delete(key.to_owned())?)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, core::StorageError> {
        Ok(self.0.list(prefix.to_owned())?)
    }
    fn compare_and_put(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, core::StorageError> {
        Ok(self
            .0
            .compare_and_put(key.to_owned(), expected.map(<[u8]>::to_vec), value.to_vec())?)
    }
}

// ---------------------------------------------------------------------------
// KeyVault
// ---------------------------------------------------------------------------

/// What a key is for (a platform key serves one purpose only).
#[uniffi::remote(Enum)]
pub enum KeyPurpose {
    /// ECDSA P-256 with SHA-256 (Android `PURPOSE_SIGN`, `SHA256withECDSA`).
    Signing,
    /// ECDH P-256 (Android `PURPOSE_AGREE_KEY`, API 31+; iOS
    /// `ecdhKeyExchangeStandard`).
    KeyAgreement,
}

/// How to create a key.
#[uniffi::remote(Record)]
pub struct KeySpec {
    /// Signing or key agreement.
    pub purpose: KeyPurpose,
    /// Usable only after user verification: Android
    /// `setUserAuthenticationRequired(true)` + `setInvalidatedByBiometricEnrollment(true)`,
    /// iOS access control `.biometryCurrentSet` / `.userPresence`.
    pub user_verification: bool,
}

/// Why a key vault call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum KeyVaultError {
    /// No key with this alias.
    #[error("no such key")]
    NotFound,
    /// The key exists but serves the other purpose.
    #[error("key used for the wrong purpose")]
    WrongPurpose,
    /// A user-verification-bound key was used without (recent) verification
    /// (Android `UserNotAuthenticatedException`).
    #[error("user verification required")]
    UserVerificationRequired,
    /// The key was permanently invalidated, e.g. by a new biometric enrolment
    /// (Android `KeyPermanentlyInvalidatedException`).
    #[error("key permanently invalidated")]
    KeyInvalidated,
    /// A sealed blob did not open: wrong key or associated data, or damaged
    /// (Java `AEADBadTagException`, CryptoKit `CryptoKitError.authenticationFailure`).
    #[error("sealed data did not open")]
    OpenFailed,
    /// The platform keystore failed, or returned malformed data.
    #[error("key vault failure: {detail}")]
    Platform {
        /// What failed.
        detail: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for KeyVaultError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Platform { detail: e.reason }
    }
}

impl From<KeyVaultError> for core::KeyVaultError {
    fn from(e: KeyVaultError) -> Self {
        match e {
            KeyVaultError::NotFound => Self::NotFound,
            KeyVaultError::WrongPurpose => Self::WrongPurpose,
            KeyVaultError::UserVerificationRequired => Self::UserVerificationRequired,
            KeyVaultError::KeyInvalidated => Self::KeyInvalidated,
            KeyVaultError::OpenFailed => Self::OpenFailed,
            KeyVaultError::Platform { detail } => Self::Platform(detail),
        }
    }
}

/// P-256 keys and AES-256-GCM sealing keys kept by the platform (StrongBox /
/// TEE Keystore; Secure Enclave and Keychain), addressed by alias; private and
/// secret keys never leave it. The core keeps every private key of an account
/// here (possession Dp, user verification Du, the biometric key, the KEM keys)
/// and seals the OTP seed with a sealing key; see the core's `KeyVault` docs
/// for the aliases and for what the hardware enforces.
///
/// Public keys are 65-byte uncompressed SEC1 points (`04 || x || y`; from a Java
/// `ECPublicKey` take the affine x and y, each left-padded to 32 bytes).
/// Signatures are ECDSA P-256 / SHA-256 over `message`, returned as raw 64-byte
/// `r || s` (Java and Apple return DER: convert at the edge). ECDH returns the
/// 32-byte shared x-coordinate. Sealing is AES-256-GCM under a random nonce
/// the vault picks (Android: `setRandomizedEncryptionRequired(true)`, the IV
/// from the cipher); the blob is the vault's own format (e.g.
/// `nonce || ciphertext || tag`), opaque to the core.
///
/// Called from any thread, concurrently for different aliases, off the UI thread;
/// calls may block while the keystore works. Must not call back into the core.
#[uniffi::export(foreign)]
pub trait KeyVault: Send + Sync {
    /// Creates a key under `alias`, replacing any old one, and returns its public key.
    fn create_key(&self, alias: String, spec: KeySpec) -> Result<Vec<u8>, KeyVaultError>;
    /// The public key under `alias`, or null/nil if there is none.
    fn public_key(&self, alias: String) -> Result<Option<Vec<u8>>, KeyVaultError>;
    /// Signs `message` (ECDSA P-256 with SHA-256) with a signing key: raw `r || s`.
    fn sign(&self, alias: String, message: Vec<u8>) -> Result<Vec<u8>, KeyVaultError>;
    /// ECDH between the key-agreement key `alias` and `peer` (65-byte SEC1).
    fn ecdh(&self, alias: String, peer: Vec<u8>) -> Result<Vec<u8>, KeyVaultError>;
    /// Deletes the key, of any kind (no error if absent).
    fn delete_key(&self, alias: String) -> Result<(), KeyVaultError>;
    /// Creates a non-exportable AES-256-GCM key under `alias`, replacing any
    /// old key with that alias. `public_key` of it is `WrongPurpose` (or null).
    fn create_sealing_key(&self, alias: String) -> Result<(), KeyVaultError>;
    /// Encrypts `plaintext` with the sealing key `alias` and associated data
    /// `aad` under a fresh random nonce; returns a blob `open` accepts.
    fn seal(
        &self,
        alias: String,
        aad: Vec<u8>,
        plaintext: Vec<u8>,
    ) -> Result<Vec<u8>, KeyVaultError>;
    /// Opens a blob `seal` made with the same key and `aad`: `OpenFailed` if it
    /// does not authenticate. (The core trait's `open`; named apart because
    /// uniffi escapes `open` in the C header, which Swift cannot import.)
    fn open_sealed(
        &self,
        alias: String,
        aad: Vec<u8>,
        blob: Vec<u8>,
    ) -> Result<Vec<u8>, KeyVaultError>;
}

/// Joins a foreign [`KeyVault`] to the core trait, validating what comes back.
pub(crate) struct KeyVaultBridge(pub(crate) Arc<dyn KeyVault>);

fn malformed(what: &str) -> core::KeyVaultError {
    core::KeyVaultError::Platform(format!("the platform vault returned a malformed {what}"))
}

impl core::KeyVault for KeyVaultBridge {
    fn create_key(
        &self,
        alias: &str,
        spec: core::KeySpec,
    ) -> Result<PublicKey, core::KeyVaultError> {
        let sec1 = self.0.create_key(alias.to_owned(), spec)?;
        PublicKey::from_sec1(&sec1).map_err(|_| malformed("public key"))
    }
    fn public_key(&self, alias: &str) -> Result<Option<PublicKey>, core::KeyVaultError> {
        match self.0.public_key(alias.to_owned())? {
            None => Ok(None),
            Some(sec1) => PublicKey::from_sec1(&sec1)
                .map(Some)
                .map_err(|_| malformed("public key")),
        }
    }
    fn sign(&self, alias: &str, message: &[u8]) -> Result<Signature, core::KeyVaultError> {
        let raw = self.0.sign(alias.to_owned(), message.to_vec())?;
        Signature::from_raw(&raw).map_err(|_| malformed("signature (expected raw r||s)"))
    }
    fn ecdh(
        &self,
        alias: &str,
        peer: &PublicKey,
    ) -> Result<Zeroizing<[u8; 32]>, core::KeyVaultError> {
        let shared = Zeroizing::new(self.0.ecdh(alias.to_owned(), peer.to_sec1().to_vec())?);
        let mut out = Zeroizing::new([0u8; 32]);
        if shared.len() != out.len() {
            return Err(malformed("shared secret"));
        }
        out.copy_from_slice(&shared);
        Ok(out)
    }
    fn delete_key(&self, alias: &str) -> Result<(), core::KeyVaultError> {
        Ok(self.0.delete_key(alias.to_owned())?)
    }
    fn create_sealing_key(&self, alias: &str) -> Result<(), core::KeyVaultError> {
        Ok(self.0.create_sealing_key(alias.to_owned())?)
    }
    fn seal(
        &self,
        alias: &str,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, core::KeyVaultError> {
        // The copy is moved into the foreign call's buffer (uniffi owns it from
        // there); the foreign side's copy is the platform's to clear.
        Ok(self
            .0
            .seal(alias.to_owned(), aad.to_vec(), plaintext.to_vec())?)
    }
    fn open(
        &self,
        alias: &str,
        aad: &[u8],
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, core::KeyVaultError> {
        Ok(Zeroizing::new(self.0.open_sealed(
            alias.to_owned(),
            aad.to_vec(),
            blob.to_vec(),
        )?))
    }
}

// ---------------------------------------------------------------------------
// HookError
// ---------------------------------------------------------------------------

/// The failure of a hook that has no error of its own (`UserVerifier`, `Clock`,
/// `Logger`). Throw it, or anything else: an unexpected Kotlin or Swift
/// exception is turned into it, and the `Authenticator` call then fails with
/// `HookFailed` instead of crashing. (Logger failures are ignored.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum HookError {
    /// The hook failed.
    #[error("hook failed: {detail}")]
    Failed {
        /// What failed (for logs; no secrets).
        detail: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for HookError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Failed { detail: e.reason }
    }
}

impl From<HookError> for core::HookError {
    fn from(e: HookError) -> Self {
        match e {
            HookError::Failed { detail } => Self(detail),
        }
    }
}

// ---------------------------------------------------------------------------
// UserVerifier
// ---------------------------------------------------------------------------

/// What to ask the user for.
#[uniffi::remote(Enum)]
pub enum VerificationKind {
    /// The app PIN: answer with [`VerificationOutcome::Verified`] carrying the PIN
    /// (the core checks it).
    Pin,
    /// Biometrics with the platform's own fallback (BiometricPrompt,
    /// LocalAuthentication); the key then used is bound to user verification.
    Biometric,
}

/// A request to verify the user.
#[uniffi::remote(Record)]
pub struct VerificationPrompt {
    /// PIN or biometrics.
    pub kind: VerificationKind,
    /// Why, as a sentence to show ("Approve sign-in to Example VPN").
    pub reason: String,
    /// The account concerned, to show with the reason.
    pub account_label: String,
}

/// What the user did.
#[uniffi::remote(Enum)]
pub enum VerificationOutcome {
    /// Verified (biometrics), or a PIN was entered (`pin` set; the core checks it).
    Verified {
        /// The PIN typed, for [`VerificationKind::Pin`]; null/nil otherwise.
        pin: Option<SecretString>,
    },
    /// The user cancelled the prompt.
    Cancelled,
    /// The platform check failed (biometric not recognised, locked out).
    Failed,
}

/// Asks the user for a PIN or biometrics (`suspend` in Kotlin, `async` in Swift).
///
/// May be called from several accounts at once: queue prompts, one on screen at a
/// time. The core holds no lock while awaiting it, so take as long as the user
/// needs (and it may call back into the `Authenticator`); cancel by returning
/// `Cancelled`. If it throws, the approval fails with `HookFailed`.
#[uniffi::export(foreign)]
#[async_trait::async_trait]
pub trait UserVerifier: Send + Sync {
    /// Shows the prompt and reports what the user did.
    async fn verify(&self, prompt: VerificationPrompt) -> Result<VerificationOutcome, HookError>;
}

/// Joins a foreign [`UserVerifier`] to the core trait.
pub(crate) struct VerifierBridge(pub(crate) Arc<dyn UserVerifier>);

#[async_trait::async_trait]
impl core::UserVerifier for VerifierBridge {
    async fn verify(
        &self,
        prompt: core::VerificationPrompt,
    ) -> Result<core::VerificationOutcome, core::HookError> {
        Ok(self.0.verify(prompt).await?)
    }
}

// ---------------------------------------------------------------------------
// HttpClient
// ---------------------------------------------------------------------------

/// HTTP method.
#[uniffi::remote(Enum)]
pub enum HttpMethod {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
}

/// One HTTP header.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HttpHeader {
    /// Name (responses: lower-case).
    pub name: String,
    /// Value.
    pub value: String,
}

/// A request from the core to the Countersign server.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HttpRequest {
    /// Method.
    pub method: HttpMethod,
    /// Absolute URL.
    pub url: String,
    /// Headers to send, including the request-signature headers.
    pub headers: Vec<HttpHeader>,
    /// Body (empty for none).
    pub body: Vec<u8>,
    /// Give up after this long (long-polls wait up to this): `kotlin.time.Duration`
    /// in Kotlin, `Duration` in Swift.
    pub timeout: TimeSpan,
}

/// A response, whatever its status (the core interprets error statuses).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers (names lower-case).
    pub headers: Vec<HttpHeader>,
    /// Body.
    pub body: Vec<u8>,
}

/// A transport failure (no HTTP response). All are retryable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum HttpError {
    /// The request timed out.
    #[error("request timed out")]
    Timeout,
    /// No connection (DNS, refused, TLS handshake, reset).
    #[error("connection failed: {detail}")]
    Connect {
        /// What failed (no request data).
        detail: String,
    },
    /// Anything else.
    #[error("transport error: {detail}")]
    Other {
        /// What failed (no request data).
        detail: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for HttpError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Other { detail: e.reason }
    }
}

impl From<HttpError> for core::HttpError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Timeout => Self::Timeout,
            HttpError::Connect { detail } => Self::Connect(detail),
            HttpError::Other { detail } => Self::Other(detail),
        }
    }
}

/// Sends the core's HTTP requests with the app's own network stack (OkHttp,
/// URLSession). Optional: without one the library uses its reqwest client (when
/// built with it). Must verify TLS certificates, follow no redirects and honour
/// `timeout`; requests run concurrently (several long-polls at once).
#[uniffi::export(foreign)]
#[async_trait::async_trait]
pub trait HttpClient: Send + Sync {
    /// Sends one request and returns the response, whatever its status.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError>;
}

fn headers_to_ffi(headers: Vec<(String, String)>) -> Vec<HttpHeader> {
    headers
        .into_iter()
        .map(|(name, value)| HttpHeader { name, value })
        .collect()
}

/// Joins a foreign [`HttpClient`] to the core trait.
pub(crate) struct HttpBridge(pub(crate) Arc<dyn HttpClient>);

#[async_trait::async_trait]
impl core::HttpClient for HttpBridge {
    async fn send(
        &self,
        request: core::HttpRequest,
    ) -> Result<core::HttpResponse, core::HttpError> {
        let request = HttpRequest {
            method: request.method,
            url: request.url,
            headers: headers_to_ffi(request.headers),
            body: request.body,
            timeout: TimeSpan(request.timeout),
        };
        let response = self.0.send(request).await?;
        Ok(core::HttpResponse {
            status: response.status,
            headers: response
                .headers
                .into_iter()
                .map(|h| (h.name.to_ascii_lowercase(), h.value))
                .collect(),
            body: response.body,
        })
    }
}

// ---------------------------------------------------------------------------
// Clock and Logger
// ---------------------------------------------------------------------------

/// The wall clock. Optional (default: the system clock); tests inject a fixed one
/// for deterministic OTPs. Called often, from any thread:
/// must be cheap and must not block. If it throws, the call fails with
/// `HookFailed`.
#[uniffi::export(foreign)]
pub trait Clock: Send + Sync {
    /// The current instant (`java.time.Instant` in Kotlin, `Date` in Swift); the
    /// core uses whole seconds.
    fn now(&self) -> Result<SystemTime, HookError>;
}

/// Joins a foreign [`Clock`] to the core trait.
pub(crate) struct ClockBridge(pub(crate) Arc<dyn Clock>);

impl core::Clock for ClockBridge {
    fn now(&self) -> Result<u64, core::HookError> {
        self.0
            .now()?
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_secs())
            .map_err(|_| core::HookError("the clock is before 1970".into()))
    }
}

/// Severity of a log line.
#[uniffi::remote(Enum)]
pub enum LogLevel {
    /// Detailed flow.
    Debug,
    /// Normal events (activation, answers).
    Info,
    /// Something was rejected (tampered challenge, wrong PIN).
    Warn,
    /// A local failure.
    Error,
}

/// Receives the core's log lines (never secrets, OTPs, PINs or challenge
/// contents). Optional. Called from any thread; must not block for long. A
/// failure (a thrown exception) is ignored: logging never fails a call.
#[uniffi::export(foreign)]
pub trait Logger: Send + Sync {
    /// One log line.
    fn log(&self, level: LogLevel, message: String) -> Result<(), HookError>;
}

/// Joins a foreign [`Logger`] to the core trait.
pub(crate) struct LoggerBridge(pub(crate) Arc<dyn Logger>);

impl core::Logger for LoggerBridge {
    fn log(&self, level: LogLevel, message: &str) {
        // Nowhere to report a failing logger; the call goes on.
        let _ = self.0.log(level, message.to_owned());
    }
}

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
//!   `protocol` takes an [`AgreementKey`], so K cannot live in a platform vault
//!   yet; it rotates on every answer and at most [`MAX_KEM_KEYS`] are kept.
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

mod record;
pub mod userkey;
mod util;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use zeroize::Zeroizing;

use self::record::{
    AccountRecord, KemKey, OtpauthAccount, PushAccount, RECORD_PREFIX, RECORD_VERSION, RecordKind,
    Secret, SeenTx, UserKeyRecord,
};
pub use self::util::CancelHandle;
use self::util::{first_decisive, with_cancel};
use crate::client::{DeviceClient, DeviceIdentity};
use crate::crypto::{AgreementKey, CryptoError, PublicKey, Signature, SigningKey, random_array};
use crate::error::{Error, Result, from_input, from_server, internal};
use crate::otp::{OcraInputs, OcraSuite, TotpParams};
use crate::platform::{
    Clock, HttpClient, KeyPurpose, KeySpec, KeyVault, LogLevel, Logger, SecureStorage,
    UserVerifier, VerificationKind, VerificationOutcome, VerificationPrompt,
};
use crate::protocol::encoding::{b64url, b64url_array};
use crate::protocol::offline::{OFFLINE_KIND, OfflineChallenge};
use crate::protocol::otpauth::{OtpKind, OtpauthUri};
use crate::protocol::{
    ActivationOffer, ActivationRequest, ActivationResult, Answer, Approval, Challenge, DenyReason,
    DeviceBinding, DeviceInfo, MessageSigner, OfferCredentials, OpenedChallenge, Platform, Purpose,
    PushRegistration, SealedChallenge, ServerKeyPin, ServerUrl, SignedMessage, Verification,
    VerificationPolicy,
};

/// KEM private keys kept per account: the one the server last confirmed plus the
/// most recent others (challenges sealed before a rotation may still be pending).
pub const MAX_KEM_KEYS: usize = 4;
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
    /// [`Authenticator::update_push_token`]).
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

/// What an approval produced.
#[derive(Clone, PartialEq, Eq)]
pub struct ApprovalOutcome {
    /// The push OTP sent with the approval (bound to this challenge).
    pub push_otp: Zeroizing<String>,
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

// ---------------------------------------------------------------------------
// Internals

struct AccountSlot {
    record: Mutex<AccountRecord>,
}

#[derive(Clone)]
struct PendingSlot {
    opened: OpenedChallenge,
}

/// Signs with a vault key (Dp).
struct VaultSigner {
    vault: Arc<dyn KeyVault>,
    alias: String,
    public: PublicKey,
}

impl MessageSigner for VaultSigner {
    fn public_key(&self) -> PublicKey {
        self.public.clone()
    }
    fn sign(&self, message: &[u8]) -> std::result::Result<Signature, CryptoError> {
        self.vault
            .sign(&self.alias, message)
            .map_err(|_| CryptoError::InvalidKey)
    }
}

/// What an operation needs from a push record (copied out of the lock).
struct PushView {
    server_url: String,
    device_id: String,
    dp: VaultSigner,
    clock_offset: i64,
}

fn lock(slot: &AccountSlot) -> MutexGuard<'_, AccountRecord> {
    // Records are only replaced whole after a successful save, so a poisoned lock
    // still holds a consistent record.
    slot.record.lock().unwrap_or_else(|e| e.into_inner())
}

fn public_from_text(text: &str) -> Result<PublicKey> {
    let sec1 = b64url_array::<65>("key", text).map_err(|_| Error::Storage)?;
    PublicKey::from_sec1(&sec1).map_err(|_| Error::Storage)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The effective verification: the stronger of what the challenge asks and what
/// the user requires (`biometric` and `pin` are alternatives; see `choose_method`).
fn stronger(a: Verification, b: Verification) -> Verification {
    match (a, b) {
        (Verification::Biometric, _) | (_, Verification::Biometric) => Verification::Biometric,
        (Verification::Pin, _) | (_, Verification::Pin) => Verification::Pin,
        _ => Verification::None,
    }
}

/// The root object. See the [module docs](self).
pub struct Authenticator {
    hooks: PlatformHooks,
    config: RwLock<AuthenticatorConfig>,
    accounts: RwLock<HashMap<String, Arc<AccountSlot>>>,
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
        let keys = hooks.storage.list(RECORD_PREFIX)?;
        let mut accounts = HashMap::new();
        for key in keys {
            match AccountRecord::load(hooks.storage.as_ref(), &key) {
                Ok(Some(rec)) => {
                    accounts.insert(
                        rec.id.clone(),
                        Arc::new(AccountSlot {
                            record: Mutex::new(rec),
                        }),
                    );
                }
                Ok(None) => {}
                Err(_) => hooks
                    .logger
                    .log(LogLevel::Error, "skipping an unreadable account record"),
            }
        }
        Ok(Self {
            hooks,
            config: RwLock::new(config),
            accounts: RwLock::new(accounts),
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

    fn account_slots(&self) -> Vec<Arc<AccountSlot>> {
        self.accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn slot(&self, id: &str) -> Result<Arc<AccountSlot>> {
        self.accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or(Error::AccountNotFound)
    }

    fn pending_map(&self) -> MutexGuard<'_, HashMap<(String, String), PendingSlot>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `f` to a copy of the record, saves it, and only then makes it the
    /// in-memory record. Storage is written under the account lock (see module docs).
    fn update<R>(
        &self,
        slot: &AccountSlot,
        f: impl FnOnce(&mut AccountRecord) -> Result<R>,
    ) -> Result<R> {
        let mut guard = lock(slot);
        let mut copy = guard.clone();
        let out = f(&mut copy)?;
        copy.save(self.hooks.storage.as_ref())?;
        *guard = copy;
        Ok(out)
    }

    fn read<R>(
        &self,
        slot: &AccountSlot,
        f: impl FnOnce(&AccountRecord) -> Result<R>,
    ) -> Result<R> {
        let guard = lock(slot);
        f(&guard)
    }

    fn server_now(&self, offset: i64) -> u64 {
        let local = i64::try_from(self.hooks.clock.now()).unwrap_or(i64::MAX);
        u64::try_from(local.saturating_add(offset)).unwrap_or(0)
    }

    fn push_view(&self, slot: &AccountSlot) -> Result<PushView> {
        self.read(slot, |rec| {
            let p = rec.push()?;
            Ok(PushView {
                server_url: p.server_url.clone(),
                device_id: p.device_id.clone(),
                dp: VaultSigner {
                    vault: self.hooks.vault.clone(),
                    alias: p.dp_alias.clone(),
                    public: public_from_text(&p.dp_public)?,
                },
                clock_offset: p.clock_offset,
            })
        })
    }

    // -----------------------------------------------------------------------
    // Accounts

    /// Every account.
    pub fn accounts(&self) -> Vec<AccountInfo> {
        let mut out: Vec<AccountInfo> = self
            .account_slots()
            .iter()
            .map(|s| info(&lock(s)))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// One account.
    pub fn account(&self, id: &str) -> Result<AccountInfo> {
        let slot = self.slot(id)?;
        let rec = lock(&slot);
        Ok(info(&rec))
    }

    /// Removes a push account: tells the server (which deregisters the device),
    /// then wipes local data. A network failure leaves everything in place and
    /// returns [`Error::Network`] (retry, or [`Self::forget_account`]). OTP-only
    /// accounts are just wiped.
    pub async fn remove_account(&self, id: &str) -> Result<()> {
        let slot = self.slot(id)?;
        if self.read(&slot, |r| Ok(r.push().is_ok()))? {
            let view = self.push_view(&slot)?;
            let who = DeviceIdentity {
                server_url: &view.server_url,
                device_id: &view.device_id,
                signer: &view.dp,
            };
            let now = self.server_now(view.clock_offset);
            match DeviceClient::new(self.hooks.http.as_ref(), now)
                .deregister(&who)
                .await
            {
                Ok(()) | Err(Error::DeviceDeregistered) | Err(Error::RequestNotFound) => {}
                Err(e) => return Err(e),
            }
        }
        self.wipe(id)?;
        self.log(LogLevel::Info, "account removed");
        Ok(())
    }

    /// Wipes an account locally without telling the server.
    pub fn forget_account(&self, id: &str) -> Result<()> {
        self.slot(id)?;
        self.wipe(id)
    }

    /// Deletes every trace of an account: vault keys, the record, pending requests.
    fn wipe(&self, id: &str) -> Result<()> {
        let slot = self
            .accounts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        self.pending_map().retain(|(acct, _), _| acct != id);
        let Some(slot) = slot else {
            return Ok(());
        };
        let aliases = self.read(&slot, |rec| {
            Ok(match &rec.kind {
                RecordKind::Push(p) => {
                    let mut a = vec![p.dp_alias.clone()];
                    if let Some(b) = &p.user_key.bio {
                        a.push(b.alias.clone());
                    }
                    a
                }
                RecordKind::Otpauth(_) => vec![],
            })
        })?;
        // The record goes first: without it the keys are unusable.
        self.hooks.storage.delete(&AccountRecord::storage_key(id))?;
        for alias in aliases {
            if self.hooks.vault.delete_key(&alias).is_err() {
                self.log(
                    LogLevel::Warn,
                    "could not delete a vault key of a wiped account",
                );
            }
        }
        Ok(())
    }

    /// Wipes the account after the server said the device is gone.
    fn deregistered(&self, id: &str) -> Error {
        self.log(
            LogLevel::Warn,
            "server removed this device; wiping the account",
        );
        if self.wipe(id).is_err() {
            self.log(LogLevel::Error, "wiping a deregistered account failed");
        }
        Error::DeviceDeregistered
    }

    /// Maps `DeviceDeregistered` from a server call to a local wipe.
    fn check_deregistered<T>(&self, id: &str, r: Result<T>) -> Result<T> {
        match r {
            Err(Error::DeviceDeregistered) => Err(self.deregistered(id)),
            other => other,
        }
    }

    // -----------------------------------------------------------------------
    // Activation

    /// Activates from an offer URI (QR code or deep link). The server key is pinned
    /// to the fingerprint in the URI.
    pub async fn activate_uri(&self, uri: &str, options: ActivationOptions) -> Result<AccountInfo> {
        let offer = ActivationOffer::parse_uri(uri).map_err(from_input("activation URI"))?;
        self.activate(
            offer.server_url,
            offer.credentials,
            ServerKeyPin::Fingerprint(offer.server_key_fingerprint),
            options,
        )
        .await
    }

    /// Activates from a typed code and the server URL. Without a configured
    /// fingerprint (`server_key_fingerprint`), the server key is trusted on first
    /// use (TLS then protects this first exchange alone).
    pub async fn activate_code(
        &self,
        server_url: &str,
        code: &str,
        server_key_fingerprint: Option<[u8; 32]>,
        options: ActivationOptions,
    ) -> Result<AccountInfo> {
        let url = ServerUrl::parse(server_url).map_err(from_input("server URL"))?;
        let creds = OfferCredentials::parse_code(code).map_err(from_input("activation code"))?;
        let pin =
            server_key_fingerprint.map_or(ServerKeyPin::TrustOnFirstUse, ServerKeyPin::Fingerprint);
        self.activate(url, creds, pin, options).await
    }

    async fn activate(
        &self,
        server_url: ServerUrl,
        creds: OfferCredentials,
        pin: ServerKeyPin,
        options: ActivationOptions,
    ) -> Result<AccountInfo> {
        let config = self.config();
        if let Some(p) = &options.pin {
            userkey::check_pin_shape(p, userkey::MIN_PIN_LEN)?;
        }
        let id = format!("a{}", hex(&random_array::<8>()?));
        let dp_alias = format!("cs.{id}.dp");
        let dp_public = self.hooks.vault.create_key(
            &dp_alias,
            KeySpec {
                purpose: KeyPurpose::Signing,
                user_verification: false,
            },
        )?;
        let result = self
            .activate_with_keys(
                &id, &dp_alias, dp_public, server_url, creds, pin, options, &config,
            )
            .await;
        if result.is_err() {
            let _ = self.hooks.vault.delete_key(&dp_alias);
            let _ = self.hooks.vault.delete_key(&format!("cs.{id}.bio"));
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn activate_with_keys(
        &self,
        id: &str,
        dp_alias: &str,
        dp_public: PublicKey,
        server_url: ServerUrl,
        creds: OfferCredentials,
        pin: ServerKeyPin,
        options: ActivationOptions,
        config: &AuthenticatorConfig,
    ) -> Result<AccountInfo> {
        let du = SigningKey::generate()?;
        let kem = AgreementKey::generate()?;
        let dp = VaultSigner {
            vault: self.hooks.vault.clone(),
            alias: dp_alias.to_owned(),
            public: dp_public.clone(),
        };
        let local_now = self.hooks.clock.now();
        let request = ActivationRequest::new(
            &creds,
            dp_public.clone(),
            &du,
            kem.public_key(),
            DeviceInfo {
                platform: config.platform,
                device_name: config.device_name.clone(),
                push: config.push.clone(),
            },
            local_now,
        )
        .map_err(from_input("device settings"))?;
        let signed = request.sign(&dp).map_err(internal)?;
        let answer = DeviceClient::new(self.hooks.http.as_ref(), local_now)
            .activate(server_url.as_str(), &signed)
            .await?;
        let result = ActivationResult::verify(&answer, pin, &creds.id).map_err(from_server)?;
        let seed = result.open_seed(&kem).map_err(from_server)?;
        let grant = &result.grant;
        let offset = i64::try_from(grant.server_time)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(local_now).unwrap_or(0));

        let du_scalar = du.to_bytes();
        let mut user_key = UserKeyRecord {
            public: b64url(&du.public_key().to_sec1()),
            plain: None,
            pin: None,
            bio: None,
        };
        if let Some(p) = &options.pin {
            userkey::check_pin_shape(p, usize::from(grant.policy.pin_min_length))?;
            user_key.pin = Some(userkey::wrap_with_pin(
                du_scalar.as_slice(),
                p,
                id,
                config.pin_kdf_iterations,
            )?);
        }
        if options.biometric {
            user_key.bio = Some(userkey::wrap_with_vault(
                self.hooks.vault.as_ref(),
                &format!("cs.{id}.bio"),
                du_scalar.as_slice(),
                id,
            )?);
        }
        if user_key.pin.is_none() && user_key.bio.is_none() {
            user_key.plain = Some(Secret::new(du_scalar.as_slice()));
        }
        let kem_kid = kem.public_key().key_id();
        let rec = AccountRecord {
            v: RECORD_VERSION,
            id: id.to_owned(),
            label: grant.user_label.clone(),
            issuer: grant.issuer.clone(),
            created: local_now,
            kind: RecordKind::Push(Box::new(PushAccount {
                server_url: server_url.as_str().to_owned(),
                account_id: grant.account_id.clone(),
                device_id: grant.device_id.clone(),
                server_key: b64url(&result.server_key.to_sec1()),
                policy: grant.policy,
                otp: grant.otp,
                seed: Secret(seed),
                dp_alias: dp_alias.to_owned(),
                dp_public: b64url(&dp_public.to_sec1()),
                user_key,
                clock_offset: offset,
                kem_keys: vec![KemKey {
                    kid: kem_kid.clone(),
                    scalar: Secret::new(kem.to_bytes().as_slice()),
                }],
                server_kem_kid: kem_kid,
                seen: Vec::new(),
                pin_failures: 0,
                min_verification: Verification::None,
            })),
        };
        rec.save(self.hooks.storage.as_ref())?;
        let account = info(&rec);
        self.accounts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id.to_owned(),
                Arc::new(AccountSlot {
                    record: Mutex::new(rec),
                }),
            );
        self.log(LogLevel::Info, "account activated");
        Ok(account)
    }

    // -----------------------------------------------------------------------
    // Push requests

    /// Handles a push notification's data (`device_id` and `tx_id`, as the server
    /// sends them): fetches, verifies and opens the challenge, and returns it as a
    /// pending request to show.
    pub async fn handle_push(&self, data: &HashMap<String, String>) -> Result<PendingRequest> {
        let device_id = data
            .get("device_id")
            .ok_or(Error::InvalidInput { what: "push data" })?;
        let tx_id = data
            .get("tx_id")
            .ok_or(Error::InvalidInput { what: "push data" })?;
        let slot = self
            .account_slots()
            .into_iter()
            .find(|s| {
                lock(s)
                    .push()
                    .map(|p| &p.device_id == device_id)
                    .unwrap_or(false)
            })
            .ok_or(Error::NotActivated)?;
        let id = self.read(&slot, |r| Ok(r.id.clone()))?;
        self.fetch_and_open(&slot, &id, tx_id).await
    }

    async fn fetch_and_open(
        &self,
        slot: &AccountSlot,
        id: &str,
        tx: &str,
    ) -> Result<PendingRequest> {
        // The map guard is dropped before `to_request` reads the clock (a hook).
        let cached = self
            .pending_map()
            .get(&(id.to_owned(), tx.to_owned()))
            .cloned();
        if let Some(p) = cached {
            return self.to_request(slot, id, &p.opened);
        }
        self.read(slot, |r| {
            let p = r.push()?;
            match p.seen.iter().find(|s| s.tx == tx) {
                Some(s) if s.done || s.answer.is_some() => Err(Error::AlreadyAnswered),
                _ => Ok(()),
            }
        })?;
        let view = self.push_view(slot)?;
        let who = DeviceIdentity {
            server_url: &view.server_url,
            device_id: &view.device_id,
            signer: &view.dp,
        };
        let now = self.server_now(view.clock_offset);
        let fetched = DeviceClient::new(self.hooks.http.as_ref(), now)
            .fetch_challenge(&who, tx)
            .await;
        let envelope = self.check_deregistered(id, fetched)?;
        let request = self.receive_envelope(slot, id, &envelope)?;
        if request.tx_id != tx {
            return Err(Error::Tampered);
        }
        Ok(request)
    }

    /// Verifies, opens and records a signed challenge envelope that reached the app
    /// by another channel (a scanned QR in online mode). Same checks as a push.
    pub fn receive_challenge(
        &self,
        account_id: &str,
        envelope_json: &[u8],
    ) -> Result<PendingRequest> {
        let slot = self.slot(account_id)?;
        let msg = SignedMessage::from_json(envelope_json).map_err(from_server)?;
        self.receive_envelope(&slot, account_id, &msg)
    }

    fn receive_envelope(
        &self,
        slot: &AccountSlot,
        id: &str,
        envelope: &SignedMessage,
    ) -> Result<PendingRequest> {
        let skew = self.config().clock_skew_secs;
        // Copy what is needed out of the lock (KEM scalars stay zeroizing).
        let (server_key, binding, kem_keys, offset) = self.read(slot, |r| {
            let p = r.push()?;
            Ok((
                public_from_text(&p.server_key)?,
                DeviceBinding {
                    account_id: p.account_id.clone(),
                    device_id: p.device_id.clone(),
                },
                p.kem_keys.clone(),
                p.clock_offset,
            ))
        })?;
        // 1. S's signature, before anything else is looked at.
        let sealed = SealedChallenge::verify(envelope, &server_key).map_err(|e| {
            self.log(LogLevel::Warn, "challenge envelope failed verification");
            from_server(e)
        })?;
        let header = sealed.header();
        // 2. Replay: a signed header naming an answered transaction.
        self.read(slot, |r| {
            let p = r.push()?;
            match p.seen.iter().find(|s| s.tx == header.tx_id) {
                Some(s) if s.done || s.answer.is_some() => Err(Error::AlreadyAnswered),
                _ => Ok(()),
            }
        })?;
        // 3. The KEM key it names (a deleted key cannot open it: forward secrecy).
        let kem = kem_keys
            .iter()
            .find(|k| k.kid == header.kem_kid)
            .ok_or_else(|| {
                self.log(
                    LogLevel::Warn,
                    "challenge sealed to a KEM key this device no longer holds",
                );
                Error::Tampered
            })
            .and_then(|k| AgreementKey::from_bytes(&k.scalar.0).map_err(|_| Error::Storage))?;
        // 4. Binding, expiry by the server clock, decryption, strict parse.
        let server_now = self.server_now(offset);
        let opened = sealed.open(&kem, &binding, server_now, skew).map_err(|e| {
            self.log(LogLevel::Warn, "challenge rejected");
            from_server(e)
        })?;
        // 5. Record it (and the clock evidence) before showing it.
        let hash = b64url(&opened.hash);
        let tx = opened.challenge.tx_id.clone();
        let exp = opened.challenge.expires_at;
        let iat = opened.challenge.issued_at;
        let local_now = i64::try_from(self.hooks.clock.now()).unwrap_or(0);
        self.update(slot, |r| {
            let p = r.push_mut()?;
            // The server's clock read at least `iat` when it signed the challenge.
            let evidence = i64::try_from(iat).unwrap_or(0).saturating_sub(local_now);
            if evidence > p.clock_offset {
                p.clock_offset = evidence;
            }
            match p.seen.iter().find(|s| s.tx == tx) {
                Some(s) if s.done || s.answer.is_some() => return Err(Error::AlreadyAnswered),
                Some(s) if s.hash != hash => return Err(Error::Tampered),
                Some(_) => {}
                None => p.seen.push(SeenTx {
                    tx: tx.clone(),
                    exp,
                    hash: hash.clone(),
                    answer: None,
                    next_kid: None,
                    done: false,
                }),
            }
            let now = u64::try_from(local_now.saturating_add(p.clock_offset)).unwrap_or(0);
            p.prune_seen(now);
            Ok(())
        })?;
        self.pending_map().insert(
            (id.to_owned(), tx),
            PendingSlot {
                opened: opened.clone(),
            },
        );
        self.to_request(slot, id, &opened)
    }

    fn to_request(
        &self,
        slot: &AccountSlot,
        id: &str,
        opened: &OpenedChallenge,
    ) -> Result<PendingRequest> {
        let offset = self.read(slot, |r| Ok(r.push()?.clock_offset))?;
        let now = self.server_now(offset);
        let exp = opened.challenge.expires_at;
        Ok(PendingRequest {
            account_id: id.to_owned(),
            tx_id: opened.challenge.tx_id.clone(),
            challenge: opened.challenge.clone(),
            expires_at: exp,
            seconds_left: exp.saturating_sub(now),
        })
    }

    /// Lists pending requests of every push account, asking each server; with
    /// `wait_secs > 0` it long-polls until one has something (or the time passes).
    /// `cancel` stops the wait ([`Error::Cancelled`]). A server that reports this
    /// device removed wipes its account (and the call goes on with the others).
    pub async fn pending(
        &self,
        wait_secs: u32,
        cancel: &CancelHandle,
    ) -> Result<Vec<PendingRequest>> {
        with_cancel(self.poll_all(wait_secs), cancel).await?
    }

    async fn poll_all(&self, wait_secs: u32) -> Result<Vec<PendingRequest>> {
        let mut targets = Vec::new();
        for slot in self.account_slots() {
            if lock(&slot).push().is_ok() {
                let id = lock(&slot).id.clone();
                let view = self.push_view(&slot)?;
                targets.push((slot, id, view));
            }
        }
        if targets.is_empty() {
            return Err(Error::NotActivated);
        }
        let http = self.hooks.http.as_ref();
        let polls: Vec<_> = targets
            .iter()
            .enumerate()
            .map(|(i, (_, _, view))| async move {
                let who = DeviceIdentity {
                    server_url: &view.server_url,
                    device_id: &view.device_id,
                    signer: &view.dp,
                };
                let now = self.server_now(view.clock_offset);
                (
                    i,
                    DeviceClient::new(http, now).pending(&who, wait_secs).await,
                )
            })
            .collect();
        let results = first_decisive(polls, |(_, r)| {
            r.as_ref().map(|l| !l.is_empty()).unwrap_or(false)
        })
        .await;
        let mut first_error = None;
        let mut any_ok = false;
        for (i, result) in results {
            let Some((slot, id, _)) = targets.get(i) else {
                continue;
            };
            match result {
                Ok(list) => {
                    any_ok = true;
                    for entry in list {
                        match self.fetch_and_open(slot, id, &entry.tx).await {
                            Ok(_) | Err(Error::AlreadyAnswered) | Err(Error::RequestExpired) => {}
                            Err(Error::DeviceDeregistered) => break,
                            Err(e) => {
                                self.log(LogLevel::Warn, "a pending challenge could not be opened");
                                first_error.get_or_insert(e);
                            }
                        }
                    }
                }
                Err(Error::DeviceDeregistered) => {
                    let _ = self.deregistered(id);
                    first_error.get_or_insert(Error::DeviceDeregistered);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if !any_ok && let Some(e) = first_error {
            return Err(e);
        }
        Ok(self.pending_requests())
    }

    /// The requests already received and not yet answered or expired (no network).
    pub fn pending_requests(&self) -> Vec<PendingRequest> {
        let entries: Vec<((String, String), PendingSlot)> = self
            .pending_map()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out = Vec::new();
        let mut expired = Vec::new();
        for ((id, tx), p) in entries {
            let Ok(slot) = self.slot(&id) else {
                continue;
            };
            match self.to_request(&slot, &id, &p.opened) {
                Ok(r) if r.seconds_left > 0 => out.push(r),
                _ => expired.push((id, tx)),
            }
        }
        let mut map = self.pending_map();
        for k in expired {
            map.remove(&k);
        }
        drop(map);
        out.sort_by(|a, b| (a.expires_at, &a.tx_id).cmp(&(b.expires_at, &b.tx_id)));
        out
    }

    fn take_pending(&self, id: &str, tx: &str) -> Result<PendingSlot> {
        self.pending_map()
            .get(&(id.to_owned(), tx.to_owned()))
            .cloned()
            .ok_or(Error::RequestNotFound)
    }

    fn check_not_expired(
        &self,
        slot: &AccountSlot,
        id: &str,
        opened: &OpenedChallenge,
    ) -> Result<()> {
        let (offset, skew) = (
            self.read(slot, |r| Ok(r.push()?.clock_offset))?,
            self.config().clock_skew_secs,
        );
        if self.server_now(offset) > opened.challenge.expires_at.saturating_add(skew) {
            self.pending_map()
                .remove(&(id.to_owned(), opened.challenge.tx_id.clone()));
            return Err(Error::RequestExpired);
        }
        Ok(())
    }

    /// Approves a pending request. `number` is what the user typed or picked when
    /// the challenge uses number matching. Asks for a PIN or biometrics first when
    /// the challenge or the account requires it. Returns the push OTP sent along.
    pub async fn approve(
        &self,
        account_id: &str,
        tx_id: &str,
        number: Option<&str>,
    ) -> Result<ApprovalOutcome> {
        let slot = self.slot(account_id)?;
        let pending = self.take_pending(account_id, tx_id)?;
        let opened = &pending.opened;
        self.check_not_expired(&slot, account_id, opened)?;
        opened
            .challenge
            .number_matching
            .check_entry(number)
            .map_err(|_| Error::InvalidInput { what: "number" })?;
        let (required, seed, digits) = self.read(&slot, |r| {
            let p = r.push()?;
            Ok((
                stronger(opened.challenge.verification, p.min_verification),
                Secret(p.seed.0.clone()),
                p.otp.digits,
            ))
        })?;
        let rp = opened.challenge.context.rp.clone();
        // User verification: no lock is held while the prompt is open.
        let (du, verification) = match required {
            Verification::None => (None, Verification::None),
            Verification::Pin | Verification::Biometric => {
                let (key, how) = self
                    .unlock_user_key(&slot, account_id, &format!("Approve sign-in to {rp}"))
                    .await?;
                (Some(key), how)
            }
        };
        self.check_not_expired(&slot, account_id, opened)?;
        let otp = crate::protocol::answer::push_otp(opened, &seed.0, digits).map_err(internal)?;
        let next = AgreementKey::generate()?;
        let view = self.push_view(&slot)?;
        let time = self.server_now(view.clock_offset);
        let answer = Answer::approve(
            opened,
            Approval {
                number: number.map(str::to_owned),
                otp: Some(otp.to_string()),
                verification,
            },
            next.public_key(),
            time,
        )
        .map_err(internal)?;
        let signed = match &du {
            Some(k) => answer.sign(k),
            None => answer.sign(&view.dp),
        }
        .map_err(|_| Error::Storage)?;
        drop(du);
        self.send_answer(&slot, account_id, opened, &view, signed, next)
            .await?;
        self.log(LogLevel::Info, "request approved");
        Ok(ApprovalOutcome {
            push_otp: otp,
            verification,
        })
    }

    /// Denies a pending request ("not me" reports fraud to the server).
    pub async fn deny(&self, account_id: &str, tx_id: &str, reason: DenyReason) -> Result<()> {
        let slot = self.slot(account_id)?;
        let pending = self.take_pending(account_id, tx_id)?;
        let opened = &pending.opened;
        self.check_not_expired(&slot, account_id, opened)?;
        let next = AgreementKey::generate()?;
        let view = self.push_view(&slot)?;
        let time = self.server_now(view.clock_offset);
        let answer = Answer::deny(opened, reason, next.public_key(), time).map_err(internal)?;
        let signed = answer.sign(&view.dp).map_err(|_| Error::Storage)?;
        self.send_answer(&slot, account_id, opened, &view, signed, next)
            .await?;
        self.log(LogLevel::Info, "request denied");
        Ok(())
    }

    /// Persists the answer and the next KEM key, sends the answer, and records the
    /// outcome. A stored, unconfirmed answer for the same transaction is resent
    /// instead (the server accepts one answer per challenge).
    async fn send_answer(
        &self,
        slot: &AccountSlot,
        id: &str,
        opened: &OpenedChallenge,
        view: &PushView,
        signed: SignedMessage,
        next: AgreementKey,
    ) -> Result<()> {
        let tx = opened.challenge.tx_id.clone();
        let hash = b64url(&opened.hash);
        let answer_json =
            String::from_utf8(signed.to_json().map_err(internal)?).map_err(|_| Error::Internal)?;
        let next_kid = next.public_key().key_id();
        // Persist before sending: replay state, the answer bytes and the new K.
        let to_send = self.update(slot, |r| {
            let p = r.push_mut()?;
            let entry = match p.seen.iter_mut().find(|s| s.tx == tx) {
                Some(e) => e,
                None => {
                    p.seen.push(SeenTx {
                        tx: tx.clone(),
                        exp: opened.challenge.expires_at,
                        hash: hash.clone(),
                        answer: None,
                        next_kid: None,
                        done: false,
                    });
                    p.seen.last_mut().ok_or(Error::Internal)?
                }
            };
            if entry.done {
                return Err(Error::AlreadyAnswered);
            }
            if let Some(stored) = &entry.answer {
                return Ok(stored.clone());
            }
            entry.answer = Some(answer_json.clone());
            entry.next_kid = Some(next_kid.clone());
            p.kem_keys.push(KemKey {
                kid: next_kid.clone(),
                scalar: Secret::new(next.to_bytes().as_slice()),
            });
            Ok(answer_json.clone())
        })?;
        drop(next);
        let who = DeviceIdentity {
            server_url: &view.server_url,
            device_id: &view.device_id,
            signer: &view.dp,
        };
        let now = self.server_now(view.clock_offset);
        let sent = DeviceClient::new(self.hooks.http.as_ref(), now)
            .answer(&who, &tx, to_send.as_bytes())
            .await;
        match sent {
            Ok(_) => {
                self.update(slot, |r| {
                    let p = r.push_mut()?;
                    let kid = p.seen.iter_mut().find(|s| s.tx == tx).and_then(|e| {
                        e.done = true;
                        e.answer = None;
                        e.next_kid.take()
                    });
                    if let Some(kid) = kid {
                        p.server_kem_kid = kid;
                    }
                    trim_kem_keys(p);
                    Ok(())
                })?;
                self.pending_map().remove(&(id.to_owned(), tx));
                Ok(())
            }
            Err(Error::Network) => Err(Error::Network),
            Err(Error::DeviceDeregistered) => Err(self.deregistered(id)),
            Err(e) => {
                // Definitive refusal: the server did not take the answer or its
                // KEM key. Expired / answered challenges are finished; others
                // (e.g. a wrong number) may be answered again.
                let finished = matches!(e, Error::AlreadyAnswered | Error::RequestExpired);
                self.update(slot, |r| {
                    let p = r.push_mut()?;
                    if let Some(entry) = p.seen.iter_mut().find(|s| s.tx == tx) {
                        entry.answer = None;
                        entry.done = finished;
                        if let Some(kid) = entry.next_kid.take() {
                            p.kem_keys
                                .retain(|k| k.kid != kid || k.kid == p.server_kem_kid);
                        }
                    }
                    Ok(())
                })?;
                if finished {
                    self.pending_map().remove(&(id.to_owned(), tx));
                }
                Err(e)
            }
        }
    }

    // -----------------------------------------------------------------------
    // User verification

    /// Picks the method: biometrics if set up (the platform prompt falls back to
    /// the device passcode; servers accept any user verification for either
    /// level), else the app PIN.
    async fn unlock_user_key(
        &self,
        slot: &AccountSlot,
        id: &str,
        reason: &str,
    ) -> Result<(SigningKey, Verification)> {
        let (has_pin, has_bio, label, public) = self.read(slot, |r| {
            let p = r.push()?;
            Ok((
                p.user_key.pin.is_some(),
                p.user_key.bio.is_some(),
                r.label.clone(),
                p.user_key.public.clone(),
            ))
        })?;
        // Biometrics when the user turned them on (servers accept any user
        // verification for `pin` or `biometric`), else the PIN.
        let kind = match (has_pin, has_bio) {
            (_, true) => VerificationKind::Biometric,
            (true, false) => VerificationKind::Pin,
            // Neither set up: approvals that need verification are impossible.
            (false, false) => return Err(Error::VerificationFailed),
        };
        let scalar = self.verify_user(slot, id, kind, reason, &label).await?;
        let key = userkey::signing_key(&scalar, &public)?;
        let how = match kind {
            VerificationKind::Pin => Verification::Pin,
            VerificationKind::Biometric => Verification::Biometric,
        };
        Ok((key, how))
    }

    /// Runs the prompt and unwraps Du's scalar.
    async fn verify_user(
        &self,
        slot: &AccountSlot,
        id: &str,
        kind: VerificationKind,
        reason: &str,
        label: &str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let outcome = self
            .hooks
            .verifier
            .verify(VerificationPrompt {
                kind,
                reason: reason.to_owned(),
                account_label: label.to_owned(),
            })
            .await;
        match (outcome, kind) {
            (VerificationOutcome::Cancelled, _) => Err(Error::VerificationCancelled),
            (VerificationOutcome::Failed, _) => Err(Error::VerificationFailed),
            (VerificationOutcome::Verified { pin: Some(pin) }, VerificationKind::Pin) => {
                self.check_pin(slot, id, &pin)
            }
            (VerificationOutcome::Verified { .. }, VerificationKind::Pin) => {
                Err(Error::VerificationFailed)
            }
            (VerificationOutcome::Verified { .. }, VerificationKind::Biometric) => {
                let wrap = self
                    .read(slot, |r| Ok(r.push()?.user_key.bio.clone()))?
                    .ok_or(Error::VerificationFailed)?;
                userkey::unwrap_with_vault(self.hooks.vault.as_ref(), &wrap, id)
            }
        }
    }

    /// Checks a PIN: the failure counter is incremented and persisted first, the
    /// PIN-derived key then tried; success resets the counter; the last allowed
    /// failure wipes the account ([`Error::PinLocked`]).
    fn check_pin(&self, slot: &AccountSlot, id: &str, pin: &str) -> Result<Zeroizing<Vec<u8>>> {
        let max = self.config().pin_max_attempts.max(1);
        let (failures, wrap) = self.update(slot, |r| {
            let p = r.push_mut()?;
            let wrap = p.user_key.pin.clone().ok_or(Error::VerificationFailed)?;
            p.pin_failures = p.pin_failures.saturating_add(1);
            Ok((p.pin_failures, wrap))
        })?;
        if failures > max {
            // A crash after the limit was reached but before the wipe.
            self.wipe(id)?;
            return Err(Error::PinLocked);
        }
        match userkey::unwrap_with_pin(&wrap, pin, id)? {
            Some(scalar) => {
                self.update(slot, |r| {
                    r.push_mut()?.pin_failures = 0;
                    Ok(())
                })?;
                Ok(scalar)
            }
            None if failures >= max => {
                self.log(LogLevel::Warn, "too many wrong PINs; wiping the account");
                self.wipe(id)?;
                Err(Error::PinLocked)
            }
            None => {
                self.log(LogLevel::Warn, "wrong PIN");
                Err(Error::WrongPin {
                    attempts_left: max - failures,
                })
            }
        }
    }

    /// Du's scalar for a settings change: from the plain copy, else by asking the
    /// user (biometric preferred, else PIN).
    async fn user_key_for_settings(
        &self,
        slot: &AccountSlot,
        id: &str,
        reason: &str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (plain, has_pin, has_bio, label) = self.read(slot, |r| {
            let p = r.push()?;
            Ok((
                p.user_key.plain.clone(),
                p.user_key.pin.is_some(),
                p.user_key.bio.is_some(),
                r.label.clone(),
            ))
        })?;
        if let Some(plain) = plain {
            return Ok(plain.0);
        }
        let kind = if has_bio {
            VerificationKind::Biometric
        } else if has_pin {
            VerificationKind::Pin
        } else {
            return Err(Error::Internal);
        };
        self.verify_user(slot, id, kind, reason, &label).await
    }

    /// Sets the app PIN of an account that has none (if biometrics protect it, the
    /// user is asked for them first).
    pub async fn set_pin(&self, account_id: &str, new_pin: &str) -> Result<()> {
        let slot = self.slot(account_id)?;
        let (has_pin, min) = self.read(&slot, |r| {
            let p = r.push()?;
            Ok((
                p.user_key.pin.is_some(),
                usize::from(p.policy.pin_min_length),
            ))
        })?;
        if has_pin {
            return Err(Error::InvalidInput {
                what: "pin already set",
            });
        }
        userkey::check_pin_shape(new_pin, min)?;
        let scalar = self
            .user_key_for_settings(&slot, account_id, "Set a PIN")
            .await?;
        self.store_pin_wrap(&slot, account_id, &scalar, new_pin)
    }

    /// Changes the app PIN; a wrong `old_pin` counts as a failed attempt.
    pub async fn change_pin(&self, account_id: &str, old_pin: &str, new_pin: &str) -> Result<()> {
        let slot = self.slot(account_id)?;
        let min = self.read(&slot, |r| Ok(usize::from(r.push()?.policy.pin_min_length)))?;
        userkey::check_pin_shape(new_pin, min)?;
        let scalar = self.check_pin(&slot, account_id, old_pin)?;
        self.store_pin_wrap(&slot, account_id, &scalar, new_pin)
    }

    fn store_pin_wrap(&self, slot: &AccountSlot, id: &str, scalar: &[u8], pin: &str) -> Result<()> {
        let wrap = userkey::wrap_with_pin(scalar, pin, id, self.config().pin_kdf_iterations)?;
        self.update(slot, |r| {
            let p = r.push_mut()?;
            userkey::signing_key(scalar, &p.user_key.public)?;
            p.user_key.pin = Some(wrap);
            p.user_key.plain = None;
            p.pin_failures = 0;
            Ok(())
        })
    }

    /// Protects approvals with biometrics: a user-verification-bound key is created
    /// in the vault and Du is wrapped under it (the user confirms with the current
    /// method first).
    pub async fn enable_biometric(&self, account_id: &str) -> Result<()> {
        let slot = self.slot(account_id)?;
        let allowed = self.read(&slot, |r| Ok(r.push()?.policy.biometric_allowed))?;
        if !allowed {
            return Err(Error::Unsupported);
        }
        let scalar = self
            .user_key_for_settings(&slot, account_id, "Turn on biometric approval")
            .await?;
        let wrap = userkey::wrap_with_vault(
            self.hooks.vault.as_ref(),
            &format!("cs.{account_id}.bio"),
            &scalar,
            account_id,
        )?;
        self.update(&slot, |r| {
            let p = r.push_mut()?;
            p.user_key.bio = Some(wrap);
            p.user_key.plain = None;
            Ok(())
        })
    }

    /// Sets the verification the user requires for every approval on this account
    /// (challenges may still ask for more). Requiring a method that is not set up
    /// is refused.
    pub fn set_min_verification(&self, account_id: &str, level: Verification) -> Result<()> {
        let slot = self.slot(account_id)?;
        self.update(&slot, |r| {
            let p = r.push_mut()?;
            let ok = match level {
                Verification::None => true,
                Verification::Pin | Verification::Biometric => {
                    p.user_key.pin.is_some() || p.user_key.bio.is_some()
                }
            };
            if !ok {
                return Err(Error::InvalidInput {
                    what: "verification method not set up",
                });
            }
            p.min_verification = level;
            Ok(())
        })
    }

    // -----------------------------------------------------------------------
    // Push token

    /// Stores a new push registration and sends it to every server. Returns the
    /// first error (the other servers are still updated).
    pub async fn update_push_token(&self, push: PushRegistration) -> Result<()> {
        push.validate().map_err(from_input("push registration"))?;
        self.config.write().unwrap_or_else(|e| e.into_inner()).push = push.clone();
        let mut first_error = None;
        for slot in self.account_slots() {
            if lock(&slot).push().is_err() {
                continue;
            }
            let id = lock(&slot).id.clone();
            let view = self.push_view(&slot)?;
            let who = DeviceIdentity {
                server_url: &view.server_url,
                device_id: &view.device_id,
                signer: &view.dp,
            };
            let now = self.server_now(view.clock_offset);
            let r = DeviceClient::new(self.hooks.http.as_ref(), now)
                .update_push(&who, &push)
                .await;
            if let Err(e) = self.check_deregistered(&id, r) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    // -----------------------------------------------------------------------
    // OTP

    /// The current OTP of an account and the seconds it has left. Push accounts use
    /// the estimated server clock; an HOTP account's counter is advanced and saved
    /// before the code is returned.
    pub fn otp(&self, account_id: &str) -> Result<OtpCode> {
        let slot = self.slot(account_id)?;
        let local = self.hooks.clock.now();
        let kind = self.read(&slot, |r| {
            Ok(match &r.kind {
                RecordKind::Push(p) => Some((p.otp, Secret(p.seed.0.clone()), p.clock_offset)),
                RecordKind::Otpauth(_) => None,
            })
        })?;
        if let Some((otp, seed, offset)) = kind {
            let now = self.server_now(offset);
            let params = TotpParams::new(otp.algorithm.hmac(), otp.digits, otp.period)
                .map_err(|_| Error::Storage)?;
            let code = crate::otp::totp_at(&params, &seed.0, now).map_err(|_| Error::Storage)?;
            let left = crate::otp::seconds_left(otp.period, now).map_err(|_| Error::Storage)?;
            return Ok(OtpCode {
                code: Zeroizing::new(code),
                seconds_left: Some(left),
            });
        }
        // otpauth: HOTP advances (persisted first), TOTP reads the local clock.
        self.update(&slot, |r| {
            let RecordKind::Otpauth(acct) = &mut r.kind else {
                return Err(Error::Internal);
            };
            let text =
                Zeroizing::new(String::from_utf8(acct.uri.0.to_vec()).map_err(|_| Error::Storage)?);
            let uri = OtpauthUri::parse(&text).map_err(|_| Error::Storage)?;
            let code = Zeroizing::new(uri.code(local).map_err(|_| Error::Storage)?);
            match uri.kind() {
                OtpKind::Totp { period } => Ok(OtpCode {
                    code,
                    seconds_left: Some(
                        crate::otp::seconds_left(period, local).map_err(|_| Error::Storage)?,
                    ),
                }),
                OtpKind::Hotp { counter } => {
                    let next = OtpauthUri::new(
                        OtpKind::Hotp {
                            counter: counter.checked_add(1).ok_or(Error::Unsupported)?,
                        },
                        uri.issuer().map(str::to_owned),
                        uri.account_name().to_owned(),
                        uri.secret().clone(),
                        uri.algorithm(),
                        uri.digits(),
                    )
                    .map_err(|_| Error::Storage)?;
                    acct.uri = Secret::new(next.to_uri().as_bytes());
                    Ok(OtpCode {
                        code,
                        seconds_left: None,
                    })
                }
            }
        })
    }

    /// Imports an `otpauth://` TOTP/HOTP account.
    pub fn import_otpauth(&self, uri: &str) -> Result<AccountInfo> {
        let parsed = OtpauthUri::parse(uri).map_err(|_| Error::InvalidInput {
            what: "otpauth URI",
        })?;
        let id = format!("o{}", hex(&random_array::<8>()?));
        let rec = AccountRecord {
            v: RECORD_VERSION,
            id: id.clone(),
            label: parsed.account_name().to_owned(),
            issuer: parsed.issuer().map(str::to_owned),
            created: self.hooks.clock.now(),
            kind: RecordKind::Otpauth(OtpauthAccount {
                uri: Secret::new(parsed.to_uri().as_bytes()),
            }),
        };
        rec.save(self.hooks.storage.as_ref())?;
        let account = info(&rec);
        self.accounts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id,
                Arc::new(AccountSlot {
                    record: Mutex::new(rec),
                }),
            );
        Ok(account)
    }

    /// Exports an imported `otpauth://` account (with its secret: show it only
    /// after the user confirmed). Push accounts cannot be exported: their seed is
    /// bound to this device's enrollment.
    pub fn export_otpauth(&self, account_id: &str) -> Result<Zeroizing<String>> {
        let slot = self.slot(account_id)?;
        self.read(&slot, |r| match &r.kind {
            RecordKind::Otpauth(a) => Ok(Zeroizing::new(
                String::from_utf8(a.uri.0.to_vec()).map_err(|_| Error::Storage)?,
            )),
            RecordKind::Push(_) => Err(Error::Unsupported),
        })
    }

    // -----------------------------------------------------------------------
    // Offline QR (OCRA)

    /// Answers an offline QR challenge: checks S's signature (the account is found
    /// by the ids in the QR), expiry by the estimated server clock, and returns
    /// the OCRA response for the user to type.
    pub fn answer_offline_qr(&self, qr_payload: &str) -> Result<OfflineCode> {
        let msg = SignedMessage::from_json(qr_payload.as_bytes())
            .map_err(|_| Error::InvalidInput { what: "QR code" })?;
        let payload = msg.payload_unverified();
        let probe: OfflineChallenge =
            serde_json::from_slice(payload).map_err(|_| Error::InvalidInput { what: "QR code" })?;
        let slot = self
            .account_slots()
            .into_iter()
            .find(|s| {
                lock(s)
                    .push()
                    .map(|p| p.account_id == probe.account && p.device_id == probe.device)
                    .unwrap_or(false)
            })
            .ok_or(Error::AccountNotFound)?;
        let (id, server_key, seed, offset) = self.read(&slot, |r| {
            let p = r.push()?;
            Ok((
                r.id.clone(),
                public_from_text(&p.server_key)?,
                Secret(p.seed.0.clone()),
                p.clock_offset,
            ))
        })?;
        // Verify before trusting anything but the lookup ids.
        msg.verify(Purpose::OfflineChallenge, &server_key)
            .map_err(|_| Error::Tampered)?;
        if probe.v != 1 {
            return Err(Error::Unsupported);
        }
        if probe.kind != OFFLINE_KIND {
            return Err(Error::Unsupported);
        }
        if self.server_now(offset) > probe.exp.saturating_add(self.config().clock_skew_secs) {
            return Err(Error::RequestExpired);
        }
        let suite = OcraSuite::parse(&probe.suite).map_err(|_| Error::Unsupported)?;
        // Only question-only suites: the QR carries no counter, PIN or session.
        if suite.uses_counter()
            || suite.pin_hash().is_some()
            || suite.session_len().is_some()
            || suite.time_step().is_some()
        {
            return Err(Error::Unsupported);
        }
        let code = crate::otp::ocra(
            &suite,
            &seed.0,
            &OcraInputs {
                question: &probe.question,
                ..OcraInputs::default()
            },
        )
        .map_err(|_| Error::InvalidInput { what: "QR code" })?;
        Ok(OfflineCode {
            account_id: id,
            rp: probe.rp,
            code: Zeroizing::new(code),
        })
    }

    /// Key ids of the KEM keys an account still holds (oldest first): lets tests
    /// and diagnostics check rotation without exposing keys.
    pub fn kem_key_ids(&self, account_id: &str) -> Result<Vec<String>> {
        let slot = self.slot(account_id)?;
        self.read(&slot, |r| {
            Ok(r.push()?.kem_keys.iter().map(|k| k.kid.clone()).collect())
        })
    }
}

/// Keeps the server's current key and the newest others, at most [`MAX_KEM_KEYS`].
fn trim_kem_keys(p: &mut PushAccount) {
    while p.kem_keys.len() > MAX_KEM_KEYS {
        let Some(pos) = p.kem_keys.iter().position(|k| k.kid != p.server_kem_kid) else {
            break;
        };
        p.kem_keys.remove(pos);
    }
}

fn info(rec: &AccountRecord) -> AccountInfo {
    match &rec.kind {
        RecordKind::Push(p) => AccountInfo {
            id: rec.id.clone(),
            label: rec.label.clone(),
            issuer: rec.issuer.clone(),
            kind: AccountKind::Push {
                server_url: p.server_url.clone(),
                account_id: p.account_id.clone(),
                device_id: p.device_id.clone(),
            },
            pin_set: p.user_key.pin.is_some(),
            biometric_enabled: p.user_key.bio.is_some(),
            min_verification: p.min_verification,
            policy: Some(p.policy),
            pin_failures: p.pin_failures,
        },
        RecordKind::Otpauth(_) => AccountInfo {
            id: rec.id.clone(),
            label: rec.label.clone(),
            issuer: rec.issuer.clone(),
            kind: AccountKind::Otp,
            pin_set: false,
            biometric_enabled: false,
            min_verification: Verification::None,
            policy: None,
            pin_failures: 0,
        },
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

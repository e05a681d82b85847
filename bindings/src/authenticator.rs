//! The exported root object.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use countersign_core::authenticator::CancelHandle as CoreCancel;
use countersign_core::platform as core;

use crate::error::{CountersignError, InputField, Result};
use crate::platform::{
    Clock, ClockBridge, HttpBridge, HttpClient, KeyVault, KeyVaultBridge, Logger, LoggerBridge,
    SecureStorage, StorageBridge, UserVerifier, VerifierBridge,
};
use crate::types::{
    AccountInfo, ActivationOptions, ApprovalOutcome, AuthenticatorConfig, Delivery, DenyReason,
    MigrationImport, OfflineCode, OtpCode, OutboxEntry, PendingRequest, PushRegistration,
    SecretString, TimeSpan, TransferOffer, Verification,
};

/// Cancels a long-running call (`Authenticator.pending` with a wait). Cancelling
/// is permanent; make a new handle for the next call.
#[derive(Debug, Default, uniffi::Object)]
pub struct CancelHandle {
    inner: CoreCancel,
}

#[uniffi::export]
impl CancelHandle {
    /// A fresh handle.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Cancels every call given this handle: they fail with `Cancelled`.
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// Whether `cancel` was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }
}

/// The default HTTP client when the app brings none.
///
/// Never on Android: reqwest's certificate check (rustls-platform-verifier) needs
/// a JNI initialisation there that this library does not perform, and would fail
/// at the first request. The Kotlin library passes `UrlConnectionHttpClient` by
/// default instead, and `cargo xtask android` builds without reqwest.
#[cfg(all(feature = "reqwest-client", not(target_os = "android")))]
fn default_http() -> Result<Arc<dyn core::HttpClient>> {
    let client = core::ReqwestClient::new().map_err(|_| CountersignError::Internal)?;
    Ok(Arc::new(client))
}

/// Without reqwest (or on Android) the app must bring its own client.
#[cfg(any(not(feature = "reqwest-client"), target_os = "android"))]
fn default_http() -> Result<Arc<dyn core::HttpClient>> {
    // This build has no HTTP client of its own: the app must pass an HttpClient.
    Err(CountersignError::InvalidInput {
        field: InputField::HttpClient,
    })
}

/// The authenticator: many accounts on many servers, plus `otpauth://` accounts.
///
/// Thread-safe; every method may be called from any thread. Every method that
/// touches storage, the key vault or the network is `suspend` (Kotlin) / `async`
/// (Swift) and runs on the library's own worker threads, so the app's hooks are
/// never called on the caller's (main) thread; the caller only awaits. Only the
/// constructor reads storage on the caller's thread (one listing, to fail early).
/// Calls into the app's hooks never happen while the core holds a lock.
///
/// Several instances, in one process or several (an iOS Notification Service
/// Extension, an Android push service process), may share one storage: the core
/// keeps no state in memory and changes records by `SecureStorage.compareAndPut`.
/// Call `deliverOutbox` when the app starts.
#[derive(uniffi::Object)]
pub struct Authenticator {
    inner: Arc<countersign_core::Authenticator>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

// No `async_runtime = "tokio"`: the methods only spawn onto `workers()` and await
// the JoinHandle, which works from uniffi's foreign-driven executor as it is.
#[uniffi::export]
impl Authenticator {
    /// Opens the authenticator on the app's storage.
    ///
    /// * `storage`: where account records live (encrypted at rest by the app).
    /// * `verifier`: the PIN pad / biometric prompt.
    /// * `key_vault`: the platform keystore; null/nil uses the core's software
    ///   vault inside `storage` (tests, desktop).
    /// * `http`: the app's network stack; null/nil uses the built-in client.
    /// * `clock`, `logger`: null/nil for the system clock and no logging.
    #[uniffi::constructor(default(key_vault = None, http = None, clock = None, logger = None))]
    pub fn new(
        config: AuthenticatorConfig,
        storage: Arc<dyn SecureStorage>,
        verifier: Arc<dyn UserVerifier>,
        key_vault: Option<Arc<dyn KeyVault>>,
        http: Option<Arc<dyn HttpClient>>,
        clock: Option<Arc<dyn Clock>>,
        logger: Option<Arc<dyn Logger>>,
    ) -> Result<Arc<Self>> {
        let storage: Arc<dyn core::SecureStorage> = Arc::new(StorageBridge(storage));
        let vault: Arc<dyn core::KeyVault> = match key_vault {
            Some(v) => Arc::new(KeyVaultBridge(v)),
            None => Arc::new(core::SoftwareKeyVault::new(storage.clone())),
        };
        let http: Arc<dyn core::HttpClient> = match http {
            Some(h) => Arc::new(HttpBridge(h)),
            None => default_http()?,
        };
        let clock: Arc<dyn core::Clock> = match clock {
            Some(c) => Arc::new(ClockBridge(c)),
            None => Arc::new(core::SystemClock),
        };
        let logger: Arc<dyn core::Logger> = match logger {
            Some(l) => Arc::new(LoggerBridge(l)),
            None => Arc::new(core::NoopLogger),
        };
        let hooks = countersign_core::PlatformHooks {
            storage,
            vault,
            verifier: Arc::new(VerifierBridge(verifier)),
            http,
            clock,
            logger,
        };
        let inner = Arc::new(countersign_core::Authenticator::new(hooks, config.into())?);
        Ok(Arc::new(Self { inner }))
    }

    /// Every account.
    pub async fn accounts(&self) -> Result<Vec<AccountInfo>> {
        self.blocking(|a| Ok(a.accounts()?)).await
    }

    /// One account.
    pub async fn account(&self, account_id: String) -> Result<AccountInfo> {
        self.blocking(move |a| Ok(a.account(&account_id)?)).await
    }

    /// Activates from an offer URI (QR code or deep link); the server key is pinned
    /// to the fingerprint in the URI, and a PIN shorter than the URI's policy is
    /// refused before any request. Two phases: the account is returned once the
    /// server has confirmed it. `Network` after the server answered means the
    /// confirmation is still owed: the account is confirmed (and then listed by
    /// `accounts`) by a later `deliverOutbox`, `pending` or `handlePush`.
    pub async fn activate_uri(
        &self,
        uri: String,
        options: ActivationOptions,
    ) -> Result<AccountInfo> {
        self.run(|a| async move { Ok(a.activate_uri(&uri, options).await?) })
            .await
    }

    /// Activates from a typed code and the server URL. `server_key_fingerprint`
    /// (32 bytes) pins the server key; without it the key is trusted on first use.
    /// The PIN is checked against the server's policy from its signed answer,
    /// before the activation is confirmed. Errors as for `activateUri`.
    pub async fn activate_code(
        &self,
        server_url: String,
        code: String,
        server_key_fingerprint: Option<Vec<u8>>,
        options: ActivationOptions,
    ) -> Result<AccountInfo> {
        let fingerprint = match server_key_fingerprint {
            None => None,
            Some(bytes) => Some(<[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                CountersignError::InvalidInput {
                    field: InputField::ServerKeyFingerprint,
                }
            })?),
        };
        self.run(|a| async move {
            Ok(a.activate_code(&server_url, &code, fingerprint, options)
                .await?)
        })
        .await
    }

    /// Handles a push notification's data payload (FCM `data` / APNs custom keys):
    /// fetches, verifies and opens the challenge and returns it to show.
    pub async fn handle_push(&self, data: HashMap<String, String>) -> Result<PendingRequest> {
        self.run(|a| async move { Ok(a.handle_push(&data).await?.into()) })
            .await
    }

    /// Starts moving push account `account_id` to a new phone: asks for the
    /// PIN or biometrics when the account has them, then returns the offer
    /// to show as a QR code. This device then receives a `Transfer` request
    /// naming the new phone; approving it activates the new phone (and with
    /// `remove_old` removes this device), denying it leaves nothing active.
    #[uniffi::method(default(remove_old = false))]
    pub async fn start_transfer(
        &self,
        account_id: String,
        remove_old: bool,
    ) -> Result<TransferOffer> {
        self.run(|a| async move { Ok(a.start_transfer(&account_id, remove_old).await?.into()) })
            .await
    }

    /// Asks the servers about activations still waiting: on a transfer's new
    /// phone (`activateUri` failed with `AwaitingApproval`), call this every
    /// few seconds. Returns the accounts activated now; `TransferDenied` when
    /// the old device refused (the waiting account is gone); still waiting is
    /// an empty list.
    pub async fn confirm_pending_activations(&self) -> Result<Vec<AccountInfo>> {
        self.run(|a| async move { Ok(a.confirm_pending_activations().await?) })
            .await
    }

    /// Whether an activation still waits for its confirmation (no network).
    pub async fn has_pending_activations(&self) -> Result<bool> {
        self.blocking(|a| Ok(a.has_pending_activations()?)).await
    }

    /// Verifies, opens and records a signed challenge envelope that arrived by
    /// another channel (a scanned QR in online mode).
    pub async fn receive_challenge(
        &self,
        account_id: String,
        envelope_json: Vec<u8>,
    ) -> Result<PendingRequest> {
        self.blocking(move |a| Ok(a.receive_challenge(&account_id, &envelope_json)?.into()))
            .await
    }

    /// Scans a QR login shown on a login page (`countersign://login?…`): claims
    /// it on its server and returns the request to show, with where the browser
    /// is. Answer it with `approve` / `deny` like a push. `account_id` picks the
    /// account when several are on that server (`InvalidInput(Account)`
    /// otherwise); `NotActivated` when none is.
    #[uniffi::method(default(account_id = None))]
    pub async fn scan_login_qr(
        &self,
        uri: String,
        account_id: Option<String>,
    ) -> Result<PendingRequest> {
        self.run(|a| async move { Ok(a.scan_login_qr(&uri, account_id.as_deref()).await?.into()) })
            .await
    }

    /// Asks every server for pending requests; with a non-zero `wait` long-polls
    /// up to that long (whole seconds, a started one counts) until one has
    /// something. `cancel` stops the wait (`Cancelled`).
    #[uniffi::method(default(cancel = None))]
    pub async fn pending(
        &self,
        wait: TimeSpan,
        cancel: Option<Arc<CancelHandle>>,
    ) -> Result<Vec<PendingRequest>> {
        let cancel = cancel.map(|c| c.inner.clone()).unwrap_or_default();
        let wait_secs = u32::try_from(wait.ceil_secs()).unwrap_or(u32::MAX);
        self.run(|a| async move {
            let requests = a.pending(wait_secs, &cancel).await?;
            Ok(requests.into_iter().map(Into::into).collect())
        })
        .await
    }

    /// Requests already received and not yet answered or expired, by this
    /// process or another on the same storage (no network).
    pub async fn pending_requests(&self) -> Result<Vec<PendingRequest>> {
        self.blocking(|a| Ok(a.pending_requests()?.into_iter().map(Into::into).collect()))
            .await
    }

    /// Approves a request. `number` is what the user typed or picked when the
    /// request uses number matching. Asks the `UserVerifier` first when the request
    /// or the account needs a PIN or biometrics. Returns the push OTP sent along
    /// and whether it was delivered or queued in the outbox. Works after a
    /// restart: the request is read from storage or fetched again.
    #[uniffi::method(default(number = None))]
    pub async fn approve(
        &self,
        account_id: String,
        tx_id: String,
        number: Option<String>,
    ) -> Result<ApprovalOutcome> {
        self.run(|a| async move { Ok(a.approve(&account_id, &tx_id, number.as_deref()).await?) })
            .await
    }

    /// Denies a request (`NotMe` reports fraud). Needs no verification, so it
    /// works from a notification action without the app's UI, after a restart.
    /// Returns whether the denial was delivered or queued in the outbox.
    pub async fn deny(
        &self,
        account_id: String,
        tx_id: String,
        reason: DenyReason,
    ) -> Result<Delivery> {
        self.run(|a| async move { Ok(a.deny(&account_id, &tx_id, reason).await?) })
            .await
    }

    /// Sends every answer waiting in the outbox and returns what is still there
    /// (waiting, or refused for good). Call it when the app starts; server calls
    /// (`pending`, `handlePush`, `approve`, `deny`) also flush it. It first
    /// confirms activations still owed and deregisters devices wiped after too
    /// many wrong PINs.
    pub async fn deliver_outbox(&self) -> Result<Vec<OutboxEntry>> {
        self.run(|a| async move {
            let entries = a.deliver_outbox().await?;
            Ok(entries.into_iter().map(Into::into).collect())
        })
        .await
    }

    /// The outbox without sending (no network).
    pub async fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        self.blocking(|a| Ok(a.outbox()?.into_iter().map(Into::into).collect()))
            .await
    }

    /// Removes a refused answer's report once the user has been told.
    pub async fn dismiss_outbox_entry(&self, account_id: String, tx_id: String) -> Result<()> {
        self.blocking(move |a| Ok(a.dismiss_outbox_entry(&account_id, &tx_id)?))
            .await
    }

    /// Sets the app PIN of an account that has none.
    pub async fn set_pin(&self, account_id: String, new_pin: SecretString) -> Result<()> {
        self.run(|a| async move { Ok(a.set_pin(&account_id, &new_pin).await?) })
            .await
    }

    /// Changes the app PIN; a wrong `old_pin` counts as a failed attempt.
    pub async fn change_pin(
        &self,
        account_id: String,
        old_pin: SecretString,
        new_pin: SecretString,
    ) -> Result<()> {
        self.run(|a| async move { Ok(a.change_pin(&account_id, &old_pin, &new_pin).await?) })
            .await
    }

    /// Protects approvals with biometrics (a user-verification-bound vault key).
    pub async fn enable_biometric(&self, account_id: String) -> Result<()> {
        self.run(|a| async move { Ok(a.enable_biometric(&account_id).await?) })
            .await
    }

    /// The verification the user requires for every approval on this account.
    pub async fn set_min_verification(
        &self,
        account_id: String,
        level: Verification,
    ) -> Result<()> {
        self.blocking(move |a| Ok(a.set_min_verification(&account_id, level)?))
            .await
    }

    /// Stores a new push registration (new FCM / APNs token) and sends it to every
    /// server.
    pub async fn update_push_token(&self, push: PushRegistration) -> Result<()> {
        self.run(|a| async move { Ok(a.update_push_token(push).await?) })
            .await
    }

    /// "It was me": lifts the server's push suppression for this account's user
    /// after repeated denials or unanswered requests (a login page cannot).
    /// Not a lock after a "not me" report: that needs its time or an operator.
    pub async fn resume_pushes(&self, account_id: String) -> Result<()> {
        self.run(|a| async move { Ok(a.resume_pushes(&account_id).await?) })
            .await
    }

    /// The current OTP of an account and the time it has left.
    pub async fn otp(&self, account_id: String) -> Result<OtpCode> {
        self.blocking(move |a| Ok(a.otp(&account_id)?.into())).await
    }

    /// Imports an `otpauth://` TOTP or HOTP account.
    pub async fn import_otpauth(&self, uri: SecretString) -> Result<AccountInfo> {
        self.blocking(move |a| Ok(a.import_otpauth(&uri)?)).await
    }

    /// Imports a Google Authenticator export (`otpauth-migration://offline?data=…`,
    /// one QR of a batch): says which accounts were added and which were
    /// skipped, and why.
    pub async fn import_otpauth_migration(&self, uri: SecretString) -> Result<MigrationImport> {
        self.blocking(move |a| Ok(a.import_otpauth_migration(&uri)?))
            .await
    }

    /// Exports an imported `otpauth://` account, secret included: show it only
    /// after the user confirmed.
    pub async fn export_otpauth(&self, account_id: String) -> Result<SecretString> {
        self.blocking(move |a| Ok(a.export_otpauth(&account_id)?))
            .await
    }

    /// Answers an offline QR challenge with the code the user types.
    pub async fn answer_offline_qr(&self, qr_payload: String) -> Result<OfflineCode> {
        self.blocking(move |a| Ok(a.answer_offline_qr(&qr_payload)?))
            .await
    }

    /// Removes an account: tells the server, then wipes local data.
    pub async fn remove_account(&self, account_id: String) -> Result<()> {
        self.run(|a| async move { Ok(a.remove_account(&account_id).await?) })
            .await
    }

    /// Wipes an account locally without telling the server.
    pub async fn forget_account(&self, account_id: String) -> Result<()> {
        self.blocking(move |a| Ok(a.forget_account(&account_id)?))
            .await
    }

    /// Key ids of the account's KEM keys, oldest first (diagnostics and tests:
    /// they change after every answer).
    pub async fn kem_key_ids(&self, account_id: String) -> Result<Vec<String>> {
        self.blocking(move |a| Ok(a.kem_key_ids(&account_id)?))
            .await
    }
}

impl Authenticator {
    /// Runs an async core call on the worker threads.
    async fn run<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: FnOnce(Arc<countersign_core::Authenticator>) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let handle = workers()?.spawn(call(self.inner.clone()));
        joined(AbortOnDrop(handle)).await
    }

    /// Runs a blocking core call (storage and vault only) on the worker runtime's
    /// blocking threads.
    async fn blocking<T, F>(&self, call: F) -> Result<T>
    where
        F: FnOnce(&countersign_core::Authenticator) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.inner.clone();
        let handle = workers()?.spawn_blocking(move || call(&inner));
        joined(AbortOnDrop(handle)).await
    }
}

/// The library's worker threads. Apps call in from their main thread; the hooks
/// (storage, vault, HTTP) then run here, never on that thread. Two workers: core
/// calls are short, and long-polls wait without holding a thread.
fn workers() -> Result<&'static tokio::runtime::Runtime> {
    static WORKERS: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    WORKERS
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("countersign-worker")
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
        .ok_or(CountersignError::Internal)
}

/// Aborts the task when the caller stops waiting (a cancelled coroutine or
/// Swift task drops the call), as if the work had run in the caller's future.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits for a worker task; a task that panicked is an `Internal` error.
async fn joined<T>(mut task: AbortOnDrop<Result<T>>) -> Result<T> {
    match (&mut task.0).await {
        Ok(result) => result,
        Err(e) if e.is_cancelled() => Err(CountersignError::Cancelled),
        Err(_) => Err(CountersignError::Internal),
    }
}

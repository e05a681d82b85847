//! Shared helpers for the end-to-end tests in `tests/`: countersign-servers on
//! loopback tuned for these tests (servers, temporary folders and the
//! relying-party client come from `countersign_test_support`), and devices running
//! the real [`Authenticator`] on [`FileStorage`] (key-file mode) with a
//! [`SoftwareKeyVault`], the shipped reqwest client behind a recording/tampering
//! wrapper, a scripted [`UserVerifier`] and an adjustable clock.
#![forbid(unsafe_code)]
#![allow(clippy::missing_panics_doc)]
// Test support: a panic is how a helper reports a failed step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use countersign_core::authenticator::{ActivationOptions, CancelHandle, PendingRequest};
use countersign_core::platform::{
    Clock, FileStorage, HookError, HttpClient, HttpError, HttpRequest, HttpResponse, KeySource,
    KeyVault, NoopLogger, ReqwestClient, SecureStorage, SoftwareKeyVault, UserVerifier,
    VerificationKind, VerificationOutcome, VerificationPrompt,
};
use countersign_core::protocol::Platform;
use countersign_core::{Authenticator, AuthenticatorConfig, PlatformHooks};
use countersign_server::config::Config;
use countersign_test_support::{Db, TestServer, now};
use zeroize::Zeroizing;

/// Copies a directory tree (a device's storage snapshot).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A countersign-server on loopback with a fresh SQLite database, the push rate
/// limit raised and no wait after misses (tests push more, and faster after a
/// denial, than a user would), then `tweak` applied to the config (policy limits).
pub async fn start_server(tweak: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(Db::Sqlite, |config| {
        config.policy.push_max_per_window = 1000;
        config.policy.push_backoff_secs = 0;
        tweak(config);
    })
    .await
}

// ---------------------------------------------------------------------------
// Device

/// A scripted user: answers prompts from a queue (cancels when it is empty) and
/// records every prompt.
#[derive(Default)]
pub struct ScriptedUser {
    answers: Mutex<VecDeque<Answer>>,
    /// Every prompt shown, in order.
    pub prompts: Mutex<Vec<VerificationPrompt>>,
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Types this PIN.
    Pin(String),
    /// Passes biometrics.
    Biometric,
    /// Cancels.
    Cancel,
    /// Fails biometrics.
    Fail,
}

impl ScriptedUser {
    /// Queues answers.
    pub fn will(&self, answers: impl IntoIterator<Item = Answer>) {
        self.answers.lock().expect("lock").extend(answers);
    }

    /// The kinds of the prompts shown so far.
    pub fn prompt_kinds(&self) -> Vec<VerificationKind> {
        self.prompts
            .lock()
            .expect("lock")
            .iter()
            .map(|p| p.kind)
            .collect()
    }
}

#[async_trait::async_trait]
impl UserVerifier for ScriptedUser {
    async fn verify(&self, prompt: VerificationPrompt) -> Result<VerificationOutcome, HookError> {
        self.prompts.lock().expect("lock").push(prompt);
        let next = self.answers.lock().expect("lock").pop_front();
        Ok(match next {
            Some(Answer::Pin(p)) => VerificationOutcome::Verified {
                pin: Some(Zeroizing::new(p)),
            },
            Some(Answer::Biometric) => VerificationOutcome::Verified { pin: None },
            Some(Answer::Fail) => VerificationOutcome::Failed,
            Some(Answer::Cancel) | None => VerificationOutcome::Cancelled,
        })
    }
}

/// The system clock plus an adjustable offset.
#[derive(Default)]
pub struct ShiftedClock {
    /// Seconds added to the system time.
    pub shift: AtomicI64,
}

impl Clock for ShiftedClock {
    fn now(&self) -> Result<u64, HookError> {
        let t = i64::try_from(now()).unwrap_or(0) + self.shift.load(Ordering::SeqCst);
        Ok(u64::try_from(t).unwrap_or(0))
    }
}

/// A rewrite of responses: `(request, response)` → response.
pub type Rewrite = Box<dyn Fn(&HttpRequest, HttpResponse) -> HttpResponse + Send + Sync>;

/// A network fault for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request never reaches the server.
    Unreachable,
    /// The server processes the request; its response is lost on the way back.
    LoseResponse,
}

/// Picks the fault (if any) for a request.
pub type FaultRule = Box<dyn Fn(&HttpRequest) -> Option<Fault> + Send + Sync>;

/// One request as sent and the response as the server gave it (before any
/// fault or rewrite).
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The request, with its signature headers.
    pub request: HttpRequest,
    /// The server's status.
    pub status: u16,
    /// The server's body.
    pub body: Vec<u8>,
}

/// The shipped reqwest client, recording challenge envelopes it fetched and
/// every exchange, optionally losing requests or responses (a flaky network)
/// and rewriting responses (a man in the middle / a broken server).
pub struct Wire {
    inner: ReqwestClient,
    /// Fetched challenge envelopes by tx id (raw bytes).
    pub envelopes: Mutex<HashMap<String, Vec<u8>>>,
    /// The active rewrite, if any.
    pub rewrite: Mutex<Option<Rewrite>>,
    /// The active fault rule, if any.
    pub faults: Mutex<Option<FaultRule>>,
    /// Every exchange that reached the server, in order.
    pub exchanges: Mutex<Vec<Exchange>>,
}

impl Wire {
    /// Sets (or clears) the rewrite.
    pub fn set_rewrite(&self, r: Option<Rewrite>) {
        *self.rewrite.lock().expect("lock") = r;
    }

    /// Sets (or clears) the fault rule.
    pub fn set_faults(&self, f: Option<FaultRule>) {
        *self.faults.lock().expect("lock") = f;
    }

    /// The exchanges whose URL contains `part`.
    pub fn exchanges_to(&self, part: &str) -> Vec<Exchange> {
        self.exchanges
            .lock()
            .expect("lock")
            .iter()
            .filter(|e| e.request.url.contains(part))
            .cloned()
            .collect()
    }
}

#[async_trait::async_trait]
impl HttpClient for Wire {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let fault = self
            .faults
            .lock()
            .expect("lock")
            .as_ref()
            .and_then(|rule| rule(&request));
        if fault == Some(Fault::Unreachable) {
            return Err(HttpError::Connect("unreachable (test fault)".into()));
        }
        let mut response = self.inner.send(request.clone()).await?;
        self.exchanges.lock().expect("lock").push(Exchange {
            request: request.clone(),
            status: response.status,
            body: response.body.clone(),
        });
        if fault == Some(Fault::LoseResponse) {
            return Err(HttpError::Timeout);
        }
        let path = request.url.split("/v1/device/challenges/").nth(1);
        if let Some(tx) = path
            && !tx.contains('/')
            && response.status == 200
        {
            self.envelopes
                .lock()
                .expect("lock")
                .insert(tx.to_owned(), response.body.clone());
        }
        if let Some(rw) = self.rewrite.lock().expect("lock").as_ref() {
            response = rw(&request, response);
        }
        Ok(response)
    }
}

/// A device: an [`Authenticator`] on FileStorage in its own directory.
pub struct Device {
    /// The authenticator.
    pub auth: Arc<Authenticator>,
    /// The scripted user.
    pub user: Arc<ScriptedUser>,
    /// The clock.
    pub clock: Arc<ShiftedClock>,
    /// The network.
    pub wire: Arc<Wire>,
    /// Storage directory (data + key file).
    pub dir: PathBuf,
}

/// Opens a device on `dir` (key-file mode), with `tweak` applied to the config.
pub fn open_device(dir: &Path, tweak: impl FnOnce(&mut AuthenticatorConfig)) -> Device {
    open_device_with(dir, tweak, |storage| {
        (storage.clone(), Arc::new(SoftwareKeyVault::new(storage)))
    })
}

/// [`open_device`] with the storage and vault the device uses chosen by
/// `hooks` from its FileStorage (e.g. recording wrappers; a [`SoftwareKeyVault`]
/// on that storage by default).
pub fn open_device_with(
    dir: &Path,
    tweak: impl FnOnce(&mut AuthenticatorConfig),
    hooks: impl FnOnce(Arc<dyn SecureStorage>) -> (Arc<dyn SecureStorage>, Arc<dyn KeyVault>),
) -> Device {
    let file: Arc<dyn SecureStorage> = Arc::new(
        FileStorage::open(
            dir.join("data"),
            &KeySource::KeyFile(dir.join("storage.key")),
        )
        .expect("storage"),
    );
    let (storage, vault) = hooks(file);
    let user = Arc::new(ScriptedUser::default());
    let clock = Arc::new(ShiftedClock::default());
    let wire = Arc::new(Wire {
        inner: ReqwestClient::new().expect("http client"),
        envelopes: Mutex::new(HashMap::new()),
        rewrite: Mutex::new(None),
        faults: Mutex::new(None),
        exchanges: Mutex::new(Vec::new()),
    });
    let hooks = PlatformHooks {
        storage,
        vault,
        verifier: user.clone(),
        http: wire.clone(),
        clock: clock.clone(),
        logger: Arc::new(NoopLogger),
    };
    let mut config = AuthenticatorConfig::new(Platform::Desktop);
    config.device_name = Some("e2e device".into());
    tweak(&mut config);
    let auth = Arc::new(Authenticator::new(hooks, config).expect("authenticator"));
    Device {
        auth,
        user,
        clock,
        wire,
        dir: dir.to_owned(),
    }
}

/// Activation options with a PIN.
pub fn with_pin(pin: &str) -> ActivationOptions {
    ActivationOptions {
        pin: Some(Zeroizing::new(pin.to_owned())),
        biometric: false,
    }
}

/// Long-polls until `n` requests are pending (at most `secs` seconds).
pub async fn wait_pending(auth: &Authenticator, n: usize, secs: u64) -> Vec<PendingRequest> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let got = auth
            .pending(2, &CancelHandle::new())
            .await
            .expect("pending");
        if got.len() >= n {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} requests arrived",
            got.len()
        );
    }
}

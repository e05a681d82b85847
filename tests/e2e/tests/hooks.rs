//! The core holds no lock while it calls a hook (issue 11), and hooks that fail
//! give typed errors.
//!
//! * Re-entrant hooks: every hook (storage, HTTP, clock, logger, user verifier)
//!   calls back into the same `Authenticator` on every call. A lock held across
//!   any hook call would deadlock; each flow runs under a timeout.
//! * Blocking hooks: a PIN prompt that stays open, and a storage read that
//!   blocks, while other calls on the same account go on and finish.
//! * Throwing hooks: a user verifier or a clock that fails gives
//!   `Error::HookFailed`, and nothing is sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use countersign_core::authenticator::AccountKind;
use countersign_core::platform::{
    Clock, FileStorage, HookError, HttpClient, HttpError, HttpRequest, HttpResponse, KeySource,
    LogLevel, Logger, ReqwestClient, SecureStorage, SoftwareKeyVault, StorageError, SystemClock,
    UserVerifier, VerificationOutcome, VerificationPrompt,
};
use countersign_core::protocol::{DenyReason, Platform};
use countersign_core::{Authenticator, AuthenticatorConfig, Error, PlatformHooks};
use countersign_e2e::{start_server, with_pin};
use countersign_test_support::{RpClient, temp_dir};
use serde_json::json;
use zeroize::Zeroizing;

/// Where the hooks find the authenticator they call back into.
type Back = Arc<OnceLock<Weak<Authenticator>>>;

thread_local! {
    /// Set while a hook is calling back, so a callback's own hook calls do not
    /// recurse forever.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Calls back into the authenticator (reads only: the account list, stored
/// requests, the outbox), once per hook call, counting the callbacks.
fn call_back(back: &Back, count: &AtomicUsize) {
    if IN_CALLBACK.with(Cell::get) {
        return;
    }
    let Some(auth) = back.get().and_then(Weak::upgrade) else {
        return;
    };
    IN_CALLBACK.with(|f| f.set(true));
    let accounts = auth.accounts();
    let _ = auth.pending_requests();
    let _ = auth.outbox();
    IN_CALLBACK.with(|f| f.set(false));
    assert!(accounts.is_ok(), "callback failed: {accounts:?}");
    count.fetch_add(1, Ordering::SeqCst);
}

struct Reentrant<T> {
    inner: T,
    back: Back,
    calls: Arc<AtomicUsize>,
}

impl<T> Reentrant<T> {
    fn new(inner: T, back: &Back, calls: &Arc<AtomicUsize>) -> Self {
        Self {
            inner,
            back: back.clone(),
            calls: calls.clone(),
        }
    }
    fn call_back(&self) {
        call_back(&self.back, &self.calls);
    }
}

/// File storage that runs `before` ahead of every call (named by operation).
struct Intercepted {
    inner: FileStorage,
    before: Box<dyn Fn(&str) + Send + Sync>,
}

impl SecureStorage for Intercepted {
    fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StorageError> {
        (self.before)("get");
        self.inner.get(key)
    }
    fn put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        (self.before)("put");
        self.inner.put(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), StorageError> {
        (self.before)("delete");
        self.inner.delete(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        (self.before)("list");
        self.inner.list(prefix)
    }
    fn compare_and_put(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, StorageError> {
        (self.before)("compare_and_put");
        self.inner.compare_and_put(key, expected, value)
    }
}

fn file_storage(dir: &std::path::Path) -> FileStorage {
    FileStorage::open(dir.join("data"), &KeySource::KeyFile(dir.join("key"))).unwrap()
}

#[async_trait::async_trait]
impl HttpClient for Reentrant<ReqwestClient> {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.call_back();
        self.inner.send(request).await
    }
}

impl Clock for Reentrant<SystemClock> {
    fn now(&self) -> Result<u64, HookError> {
        self.call_back();
        self.inner.now()
    }
}

impl Logger for Reentrant<()> {
    fn log(&self, _: LogLevel, _: &str) {
        self.call_back();
    }
}

/// The PIN prompt: calls back into the authenticator, then (when `hold` is
/// set) waits until released, then types the PIN; `throw` makes it fail.
struct Prompt {
    back: Back,
    calls: Arc<AtomicUsize>,
    hold: AtomicBool,
    open: tokio::sync::Notify,
    release: tokio::sync::Notify,
    throw: AtomicBool,
}

#[async_trait::async_trait]
impl UserVerifier for Prompt {
    async fn verify(&self, _: VerificationPrompt) -> Result<VerificationOutcome, HookError> {
        call_back(&self.back, &self.calls);
        if self.throw.load(Ordering::SeqCst) {
            return Err(HookError("the app's prompt threw".into()));
        }
        if self.hold.load(Ordering::SeqCst) {
            self.open.notify_one();
            self.release.notified().await;
        }
        Ok(VerificationOutcome::Verified {
            pin: Some(Zeroizing::new(PIN.into())),
        })
    }
}

const PIN: &str = "246810";
/// A deadlock shows as a timeout, not a hung test.
const LIMIT: Duration = Duration::from_secs(20);

struct Phone {
    auth: Arc<Authenticator>,
    prompt: Arc<Prompt>,
    calls: Arc<AtomicUsize>,
    account: String,
    device: String,
    _dir: countersign_test_support::TempDir,
}

async fn phone(rp: &RpClient, clock: Option<Arc<dyn Clock>>) -> Phone {
    let dir = temp_dir("hooks");
    let back: Back = Arc::new(OnceLock::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let storage: Arc<dyn SecureStorage> = Arc::new(Intercepted {
        inner: file_storage(dir.path()),
        before: Box::new({
            let (back, calls) = (back.clone(), calls.clone());
            move |_| call_back(&back, &calls)
        }),
    });
    let prompt = Arc::new(Prompt {
        back: back.clone(),
        calls: calls.clone(),
        hold: AtomicBool::new(false),
        open: tokio::sync::Notify::new(),
        release: tokio::sync::Notify::new(),
        throw: AtomicBool::new(false),
    });
    let hooks = PlatformHooks {
        storage: storage.clone(),
        vault: Arc::new(SoftwareKeyVault::new(storage)),
        verifier: prompt.clone(),
        http: Arc::new(Reentrant::new(ReqwestClient::new().unwrap(), &back, &calls)),
        clock: clock.unwrap_or_else(|| Arc::new(Reentrant::new(SystemClock, &back, &calls))),
        logger: Arc::new(Reentrant::new((), &back, &calls)),
    };
    let mut config = AuthenticatorConfig::new(Platform::Desktop);
    config.pin_kdf_iterations = 1000;
    let auth = Arc::new(Authenticator::new(hooks, config).unwrap());
    back.set(Arc::downgrade(&auth)).unwrap();
    let uri = rp.enroll("alice").await.uri;
    let info = auth.activate_uri(&uri, with_pin(PIN)).await.unwrap();
    let AccountKind::Push { device_id, .. } = info.kind else {
        panic!("not a push account")
    };
    Phone {
        auth,
        prompt,
        calls,
        account: info.id,
        device: device_id,
        _dir: dir,
    }
}

async fn push(rp: &RpClient, p: &Phone, verification: &str) -> String {
    let v = rp
        .start_push(
            json!({ "user": "alice", "number_matching": "off", "verification": verification }),
        )
        .await;
    let tx = v["tx_id"].as_str().unwrap().to_owned();
    let data = HashMap::from([
        ("device_id".to_owned(), p.device.clone()),
        ("tx_id".to_owned(), tx.clone()),
    ]);
    tokio::time::timeout(LIMIT, p.auth.handle_push(&data))
        .await
        .expect("handle_push deadlocked")
        .unwrap();
    tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_that_call_back_into_the_authenticator_do_not_deadlock() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let p = phone(&rp, None).await;
    let tx = push(&rp, &p, "pin").await;
    let approve = p.auth.approve(&p.account, &tx, None);
    tokio::time::timeout(LIMIT, approve)
        .await
        .expect("approve deadlocked")
        .unwrap();
    assert_eq!(rp.status(&tx).await["state"], "approved");
    let tx = push(&rp, &p, "none").await;
    tokio::time::timeout(LIMIT, p.auth.deny(&p.account, &tx, DenyReason::Mistake))
        .await
        .expect("deny deadlocked")
        .unwrap();
    assert_eq!(rp.status(&tx).await["state"], "denied");
    let calls = p.calls.load(Ordering::SeqCst);
    assert!(calls > 20, "the hooks called back only {calls} times");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_prompt_blocks_nothing_else() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let p = phone(&rp, None).await;
    let held = push(&rp, &p, "pin").await;
    let other = push(&rp, &p, "none").await;
    p.prompt.hold.store(true, Ordering::SeqCst);
    let auth = p.auth.clone();
    let (account, tx) = (p.account.clone(), held.clone());
    let waiting = tokio::spawn(async move { auth.approve(&account, &tx, None).await });
    p.prompt.open.notified().await;
    // The PIN prompt is open on this account: everything else still runs.
    let meanwhile = async {
        assert_eq!(p.auth.pending_requests().unwrap().len(), 2);
        p.auth.otp(&p.account).unwrap();
        p.auth
            .deny(&p.account, &other, DenyReason::Mistake)
            .await
            .unwrap();
        p.auth.account(&p.account).unwrap()
    };
    tokio::time::timeout(LIMIT, meanwhile)
        .await
        .expect("a call waited on the open prompt");
    assert_eq!(rp.status(&other).await["state"], "denied");
    p.prompt.release.notify_one();
    tokio::time::timeout(LIMIT, waiting)
        .await
        .expect("approve never finished")
        .unwrap()
        .unwrap();
    assert_eq!(rp.status(&held).await["state"], "approved");
    s.stop().await;
}

/// A storage hook that blocks one thread does not stop another thread's calls
/// on the same account (the core holds no lock around storage calls).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_storage_call_blocks_no_other_call() {
    let dir = temp_dir("hooks-slow");
    let (entered_tx, entered_rx) = std::sync::mpsc::sync_channel(1);
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    let block = Arc::new(AtomicBool::new(false));
    let storage = Arc::new(Intercepted {
        inner: file_storage(dir.path()),
        before: Box::new({
            let block = block.clone();
            move |op| {
                if op == "get" && block.swap(false, Ordering::SeqCst) {
                    entered_tx.send(()).unwrap();
                    let _ = release_rx.lock().unwrap().recv();
                }
            }
        }),
    });
    let auth = Arc::new(
        Authenticator::new(
            PlatformHooks {
                storage: storage.clone(),
                vault: Arc::new(SoftwareKeyVault::new(storage.clone())),
                verifier: Arc::new(NoPrompt),
                http: Arc::new(ReqwestClient::new().unwrap()),
                clock: Arc::new(SystemClock),
                logger: Arc::new(countersign_core::platform::NoopLogger),
            },
            AuthenticatorConfig::new(Platform::Desktop),
        )
        .unwrap(),
    );
    let id = auth
        .import_otpauth(
            "otpauth://hotp/Example:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&counter=0",
        )
        .unwrap()
        .id;
    block.store(true, Ordering::SeqCst);
    let blocked = {
        let (auth, id) = (auth.clone(), id.clone());
        std::thread::spawn(move || auth.otp(&id).map(|c| c.code.to_string()))
    };
    entered_rx.recv_timeout(LIMIT).unwrap();
    // One thread is stuck inside a storage read of this account.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    {
        let (auth, id) = (auth.clone(), id.clone());
        std::thread::spawn(move || {
            let codes: Vec<String> = (0..3)
                .map(|_| auth.otp(&id).unwrap().code.to_string())
                .collect();
            done_tx.send(codes).unwrap();
        });
    }
    let codes = done_rx
        .recv_timeout(LIMIT)
        .expect("calls waited on a blocked storage read");
    release_tx.send(()).unwrap();
    let last = blocked.join().unwrap().unwrap();
    // Four codes, four counters (RFC 4226: 755224, 287082, 359152, 969429).
    let mut all = codes;
    all.push(last);
    all.sort();
    assert_eq!(all, ["287082", "359152", "755224", "969429"]);
}

struct NoPrompt;

#[async_trait::async_trait]
impl UserVerifier for NoPrompt {
    async fn verify(&self, _: VerificationPrompt) -> Result<VerificationOutcome, HookError> {
        Ok(VerificationOutcome::Cancelled)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_hooks_give_typed_errors_and_send_nothing() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let p = phone(&rp, None).await;
    let tx = push(&rp, &p, "pin").await;
    p.prompt.throw.store(true, Ordering::SeqCst);
    assert_eq!(
        p.auth.approve(&p.account, &tx, None).await.err(),
        Some(Error::HookFailed)
    );
    assert_eq!(rp.status(&tx).await["state"], "pending");
    // The request is still there; with a working prompt it is approved.
    p.prompt.throw.store(false, Ordering::SeqCst);
    p.auth.approve(&p.account, &tx, None).await.unwrap();
    assert_eq!(rp.status(&tx).await["state"], "approved");

    // A clock that fails: typed error, the account is untouched.
    struct Broken(AtomicBool);
    impl Clock for Broken {
        fn now(&self) -> Result<u64, HookError> {
            if self.0.load(Ordering::SeqCst) {
                Err(HookError("clock failed".into()))
            } else {
                SystemClock.now()
            }
        }
    }
    let clock = Arc::new(Broken(AtomicBool::new(false)));
    let q = phone(&rp, Some(clock.clone())).await;
    let tx = push(&rp, &q, "none").await;
    clock.0.store(true, Ordering::SeqCst);
    assert_eq!(
        q.auth.approve(&q.account, &tx, None).await.err(),
        Some(Error::HookFailed)
    );
    assert_eq!(q.auth.otp(&q.account).err(), Some(Error::HookFailed));
    clock.0.store(false, Ordering::SeqCst);
    q.auth.approve(&q.account, &tx, None).await.unwrap();
    assert_eq!(rp.status(&tx).await["state"], "approved");
    s.stop().await;
}

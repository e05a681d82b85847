//! Shared helpers for the end-to-end tests in `tests/`: countersign-servers on
//! loopback (SQLite in a temp dir), a relying-party client, and devices running
//! the real [`Authenticator`] on [`FileStorage`] (key-file mode) with a
//! [`SoftwareKeyVault`], the shipped reqwest client behind a recording/tampering
//! wrapper, a scripted [`UserVerifier`] and an adjustable clock.
#![forbid(unsafe_code)]
#![allow(clippy::missing_panics_doc)]
// Test support: a panic is how a helper reports a failed step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use countersign_core::authenticator::{ActivationOptions, CancelHandle, PendingRequest};
use countersign_core::platform::{
    Clock, FileStorage, HttpClient, HttpError, HttpRequest, HttpResponse, KeySource, NoopLogger,
    ReqwestClient, SoftwareKeyVault, UserVerifier, VerificationKind, VerificationOutcome,
    VerificationPrompt,
};
use countersign_core::protocol::Platform;
use countersign_core::{Authenticator, AuthenticatorConfig, PlatformHooks};
use countersign_server::config::Config;
use countersign_server::{RunningServer, Server};
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// Unix seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh temp directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `countersign-e2e-<name>-<pid>-<n>` under the system temp dir.
    pub fn new(name: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "countersign-e2e-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

// ---------------------------------------------------------------------------
// Server and relying party

/// A countersign-server on 127.0.0.1:0 with a fresh SQLite database.
pub struct TestServer {
    /// The server.
    pub server: RunningServer,
    _dir: TempDir,
}

impl TestServer {
    /// Starts a server; `tweak` edits the config (policy limits).
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        countersign_server::push::install_crypto_provider();
        let dir = TempDir::new("server");
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            database_url: format!("sqlite://{}", dir.path().join("server.db").display()),
            ..Config::default()
        };
        // Tests push more than a user would in ten minutes.
        config.policy.push_max_per_window = 1000;
        tweak(&mut config);
        let server = Server::start(config).await.expect("server starts");
        Self { server, _dir: dir }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        self.server.base_url()
    }

    /// A relying party with an API key on this server.
    pub async fn rp(&self, name: &str) -> Rp {
        let st = self.server.state();
        let created = countersign_server::admin::create_rp(&st.db, &st.master, name, None)
            .await
            .expect("create rp");
        Rp {
            base: self.base(),
            key: created.api_key,
            client: reqwest::Client::new(),
        }
    }

    /// The server's signing key fingerprint (what an offer URI pins).
    pub fn key_fingerprint(&self) -> [u8; 32] {
        self.server.state().signing_key.public_key().fingerprint()
    }
}

/// The relying-party API, as a test client.
pub struct Rp {
    base: String,
    key: String,
    client: reqwest::Client,
}

impl Rp {
    async fn call(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let r = req.bearer_auth(&self.key).send().await.expect("rp request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POST.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(self.client.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    /// GET.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(self.client.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Creates an activation offer for `user`: (offer URI, typed code).
    pub async fn enroll(&self, user: &str) -> (String, String) {
        let (s, v) = self
            .post("/v1/rp/enrollments", json!({ "user": user }))
            .await;
        assert_eq!(s, 200, "enroll: {v}");
        (
            v["offer_uri"].as_str().expect("uri").to_owned(),
            v["code"].as_str().expect("code").to_owned(),
        )
    }

    /// Starts a push; returns the response body (tx_id, number, expires_at).
    pub async fn push(&self, body: Value) -> Value {
        let (s, v) = self.post("/v1/rp/push", body).await;
        assert_eq!(s, 200, "push: {v}");
        v
    }

    /// The challenge status (no wait).
    pub async fn status(&self, tx: &str) -> Value {
        let (s, v) = self.get(&format!("/v1/rp/challenges/{tx}")).await;
        assert_eq!(s, 200, "status: {v}");
        v
    }

    /// Validates a passcode; returns (status, body).
    pub async fn validate(&self, user: &str, passcode: &str) -> (u16, Value) {
        self.post(
            "/v1/rp/validate",
            json!({ "user": user, "passcode": passcode }),
        )
        .await
    }
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
    async fn verify(&self, prompt: VerificationPrompt) -> VerificationOutcome {
        self.prompts.lock().expect("lock").push(prompt);
        let next = self.answers.lock().expect("lock").pop_front();
        match next {
            Some(Answer::Pin(p)) => VerificationOutcome::Verified {
                pin: Some(Zeroizing::new(p)),
            },
            Some(Answer::Biometric) => VerificationOutcome::Verified { pin: None },
            Some(Answer::Fail) => VerificationOutcome::Failed,
            Some(Answer::Cancel) | None => VerificationOutcome::Cancelled,
        }
    }
}

/// The system clock plus an adjustable offset.
#[derive(Default)]
pub struct ShiftedClock {
    /// Seconds added to the system time.
    pub shift: AtomicI64,
}

impl Clock for ShiftedClock {
    fn now(&self) -> u64 {
        let t = i64::try_from(now()).unwrap_or(0) + self.shift.load(Ordering::SeqCst);
        u64::try_from(t).unwrap_or(0)
    }
}

/// A rewrite of responses: `(request, response)` → response.
pub type Rewrite = Box<dyn Fn(&HttpRequest, HttpResponse) -> HttpResponse + Send + Sync>;

/// The shipped reqwest client, recording challenge envelopes it fetched and
/// optionally rewriting responses (a man in the middle / a broken server).
pub struct Wire {
    inner: ReqwestClient,
    /// Fetched challenge envelopes by tx id (raw bytes).
    pub envelopes: Mutex<HashMap<String, Vec<u8>>>,
    /// The active rewrite, if any.
    pub rewrite: Mutex<Option<Rewrite>>,
}

impl Wire {
    /// Sets (or clears) the rewrite.
    pub fn set_rewrite(&self, r: Option<Rewrite>) {
        *self.rewrite.lock().expect("lock") = r;
    }
}

#[async_trait::async_trait]
impl HttpClient for Wire {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let mut response = self.inner.send(request.clone()).await?;
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
    let storage = Arc::new(
        FileStorage::open(
            dir.join("data"),
            &KeySource::KeyFile(dir.join("storage.key")),
        )
        .expect("storage"),
    );
    let user = Arc::new(ScriptedUser::default());
    let clock = Arc::new(ShiftedClock::default());
    let wire = Arc::new(Wire {
        inner: ReqwestClient::new().expect("http client"),
        envelopes: Mutex::new(HashMap::new()),
        rewrite: Mutex::new(None),
    });
    let hooks = PlatformHooks {
        storage: storage.clone(),
        vault: Arc::new(SoftwareKeyVault::new(storage)),
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

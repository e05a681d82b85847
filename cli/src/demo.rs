//! `countersign demo`: every flow end to end, on loopback, with a transcript.
//!
//! An embedded countersign-server (SQLite in a temporary folder) plays the
//! server; a small relying party calls its RP API over HTTP as a web app would;
//! the device is the core's [`Authenticator`] in-process, on [`FileStorage`] in
//! the same temporary folder, with a scripted PIN pad standing in for the user.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use countersign_core::authenticator::{
    AccountInfo, AccountKind, ActivationOptions, CancelHandle, PendingRequest,
};
use countersign_core::crypto::ct_eq;
use countersign_core::platform::{
    FileStorage, HookError, KeySource, NoopLogger, ReqwestClient, SoftwareKeyVault, SystemClock,
    UserVerifier, VerificationKind, VerificationOutcome, VerificationPrompt,
};
use countersign_core::protocol::{DenyReason, NumberMatching, Platform, Verification};
use countersign_core::{Authenticator, AuthenticatorConfig, Error, PlatformHooks};
use countersign_server::config::Config;
use countersign_server::{RunningServer, Server};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::term::outln;

/// Options of `countersign demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Print machine-readable results (one JSON document) instead of the transcript.
    #[arg(long)]
    json: bool,
    /// Do not draw the activation QR code.
    #[arg(long)]
    no_qr: bool,
}

const USER: &str = "alice@example.com";
/// The PIN the demo user chose at activation (never printed).
const DEMO_PIN: &str = "482613";

/// The user at the PIN pad: answers with the queued PINs, counts the prompts.
#[derive(Default)]
struct ScriptedUser {
    pins: Mutex<VecDeque<Zeroizing<String>>>,
    prompts: Mutex<Vec<String>>,
}

impl ScriptedUser {
    fn will_type(&self, pins: &[&str]) {
        let mut q = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        q.clear();
        q.extend(pins.iter().map(|p| Zeroizing::new((*p).to_string())));
    }
    fn prompts(&self) -> Vec<String> {
        std::mem::take(&mut *self.prompts.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[async_trait::async_trait]
impl UserVerifier for ScriptedUser {
    async fn verify(&self, prompt: VerificationPrompt) -> Result<VerificationOutcome, HookError> {
        self.prompts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(prompt.reason.clone());
        if prompt.kind != VerificationKind::Pin {
            return Ok(VerificationOutcome::Failed);
        }
        let next = self
            .pins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        Ok(match next {
            Some(pin) => VerificationOutcome::Verified { pin: Some(pin) },
            None => VerificationOutcome::Cancelled,
        })
    }
}

/// The relying party: calls the RP API with its key, as a web app would.
struct RelyingParty {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl RelyingParty {
    async fn call(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
        let r = req
            .bearer_auth(&self.key)
            .send()
            .await
            .map_err(|e| format!("RP API: {e}"))?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }
    async fn post(&self, path: &str, body: Value) -> Result<(u16, Value), String> {
        self.call(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }
    async fn get(&self, path: &str) -> Result<(u16, Value), String> {
        self.call(self.http.get(format!("{}{path}", self.base)))
            .await
    }
    /// The login page's call of a QR login, with its browser handle instead of
    /// the API key.
    async fn page(
        &self,
        path: &str,
        handle: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let url = format!("{}{path}", self.base);
        let req = match body {
            Some(b) => self.http.post(url).json(&b),
            None => self.http.get(url),
        };
        let r = req
            .bearer_auth(handle)
            .send()
            .await
            .map_err(|e| format!("login page: {e}"))?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }
    async fn delete(&self, path: &str) -> Result<(u16, Value), String> {
        self.call(self.http.delete(format!("{}{path}", self.base)))
            .await
    }
    /// POST that must succeed.
    async fn ok(&self, path: &str, body: Value) -> Result<Value, String> {
        match self.post(path, body).await? {
            (200, v) => Ok(v),
            (s, v) => Err(format!("{path} answered {s}: {}", error_code(&v))),
        }
    }
    async fn push(&self, body: Value) -> Result<Value, String> {
        self.ok("/v1/rp/push", body).await
    }
    async fn status(&self, tx: &str, wait: u32) -> Result<Value, String> {
        match self
            .get(&format!("/v1/rp/challenges/{tx}?wait={wait}"))
            .await?
        {
            (200, v) => Ok(v),
            (s, v) => Err(format!("challenge status answered {s}: {}", error_code(&v))),
        }
    }
}

fn error_code(v: &Value) -> String {
    v["error"]["code"].as_str().unwrap_or("?").to_string()
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// One step of the transcript.
struct Step {
    n: usize,
    name: &'static str,
    title: &'static str,
    lines: Vec<String>,
    started: Instant,
}

impl Step {
    fn say(&mut self, line: impl Into<String>) {
        let at = self.started.elapsed().as_secs_f64();
        self.lines.push(format!("{at:6.2}s  {}", line.into()));
    }
}

struct Demo {
    json: bool,
    no_qr: bool,
    rp: RelyingParty,
    device: Authenticator,
    user: Arc<ScriptedUser>,
    account: Option<AccountInfo>,
    /// The tx and push OTP of step 2's approval, checked by the RP in step 3.
    last_push_otp: Option<(String, Zeroizing<String>)>,
    /// The embedded server's database, for the operator's unlock.
    db: countersign_server::store::Db,
    /// The demo relying party.
    rp_id: String,
    results: Vec<Value>,
}

/// The wait after the second miss in a row, shortened for the demo.
const DEMO_BACKOFF_SECS: u32 = 1;

/// The demo's steps: number, name (JSON), title.
const STEPS: [(usize, &str, &str); 11] = [
    (
        1,
        "activation",
        "Activation with the QR drawn in the terminal",
    ),
    (2, "push_login", "Push login with number matching, approved"),
    (
        3,
        "push_otp",
        "Push OTP accepted by the RP check, for its login only",
    ),
    (
        4,
        "attacker_at_the_login_page",
        "Wrong numbers, denials, fatigue suppression, \"it was me\"",
    ),
    (
        5,
        "not_me",
        "\"Not me\": fraud report, pushes locked, operator unlock",
    ),
    (6, "timeout_resend", "Timeout, then resend"),
    (7, "totp_fallback", "TOTP fallback"),
    (8, "offline_ocra", "Offline QR with OCRA"),
    (
        9,
        "qr_login",
        "Sign in with QR (no push service), reverse number matching",
    ),
    (10, "step_up_pin", "Step-up to PIN for a transaction"),
    (11, "deregistration", "Deregistration, then local wipe"),
];

/// Runs the demo; `Err` if any step failed.
pub async fn run(args: DemoArgs) -> Result<(), String> {
    countersign_server::push::install_crypto_provider();
    let started = Instant::now();
    // Removed on drop, whatever the outcome.
    let tmp = tempfile::Builder::new()
        .prefix("countersign-demo-")
        .tempdir()
        .map_err(|e| format!("temp folder: {e}"))?;
    let mut config = Config {
        listen: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        database_url: format!("sqlite://{}", tmp.path().join("server.db").display()),
        ..Config::default()
    };
    // The demo sends more pushes to one user than the production default allows
    // in ten minutes, and waits 1 s (not 10 s) after the second miss in a row;
    // suppression after 3 misses keeps its default.
    config.policy.push_max_per_window = 50;
    config.policy.push_backoff_secs = DEMO_BACKOFF_SECS;
    let server = Server::start(config)
        .await
        .map_err(|e| format!("embedded server: {e}"))?;
    let outcome = run_with(&args, &server, &tmp).await;
    server.shutdown().await;
    let (results, failed) = outcome?;
    let total = started.elapsed();
    if args.json {
        let doc = json!({
            "ok": failed == 0,
            "steps": results,
            "passed": results.len() - failed,
            "failed": failed,
            "total_ms": total.as_millis() as u64,
        });
        outln!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
        );
    } else {
        outln!(
            "\n{} of {} steps OK in {:.2} s{}",
            results.len() - failed,
            results.len(),
            total.as_secs_f64(),
            if failed == 0 {
                ""
            } else {
                " — SOME STEPS FAILED"
            }
        );
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} demo step(s) failed"))
    }
}

async fn run_with(
    args: &DemoArgs,
    server: &RunningServer,
    tmp: &tempfile::TempDir,
) -> Result<(Vec<Value>, usize), String> {
    let state = server.state();
    let created = countersign_server::admin::create_rp(&state.db, &state.master, "Demo Bank", None)
        .await
        .map_err(|e| e.to_string())?;
    let rp = RelyingParty {
        base: server.base_url(),
        key: created.api_key,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?,
    };
    let storage = Arc::new(
        FileStorage::open(
            tmp.path().join("device"),
            &KeySource::KeyFile(tmp.path().join("device.key")),
        )
        .map_err(|e| format!("device storage: {e}"))?,
    );
    let user = Arc::new(ScriptedUser::default());
    let hooks = PlatformHooks {
        storage: storage.clone(),
        vault: Arc::new(SoftwareKeyVault::new(storage)),
        verifier: user.clone(),
        http: Arc::new(ReqwestClient::new().map_err(|e| e.to_string())?),
        clock: Arc::new(SystemClock),
        logger: Arc::new(NoopLogger),
    };
    let mut dev_config = AuthenticatorConfig::new(Platform::Desktop);
    dev_config.device_name = Some("countersign demo device".into());
    let device = Authenticator::new(hooks, dev_config).map_err(|e| e.to_string())?;
    if !args.json {
        outln!("Countersign end-to-end demo");
        outln!(
            "server {} (SQLite in {}), relying party \"Demo Bank\", user {USER}",
            server.base_url(),
            tmp.path().display()
        );
        outln!("device: the Countersign core in this process, storage in the same folder\n");
    }
    let mut demo = Demo {
        json: args.json,
        no_qr: args.no_qr,
        rp,
        device,
        user,
        account: None,
        last_push_otp: None,
        db: state.db.clone(),
        rp_id: created.rp_id.clone(),
        results: Vec::new(),
    };
    for (n, name, title) in STEPS {
        demo.step(n, name, title).await;
    }
    let failed = demo
        .results
        .iter()
        .filter(|r| r["ok"] != Value::Bool(true))
        .count();
    Ok((demo.results, failed))
}

impl Demo {
    async fn step(&mut self, n: usize, name: &'static str, title: &'static str) {
        let mut step = Step {
            n,
            name,
            title,
            lines: Vec::new(),
            started: Instant::now(),
        };
        if !self.json {
            outln!("[{n}/{}] {title}", STEPS.len());
        }
        let result = match n {
            1 => self.activation(&mut step).await,
            2 => self.push_login(&mut step).await,
            3 => self.push_otp(&mut step).await,
            4 => self.attacker_at_the_login_page(&mut step).await,
            5 => self.not_me(&mut step).await,
            6 => self.timeout_resend(&mut step).await,
            7 => self.totp(&mut step).await,
            8 => self.offline(&mut step).await,
            9 => self.qr_login(&mut step).await,
            10 => self.step_up(&mut step).await,
            _ => self.deregistration(&mut step).await,
        };
        let ms = step.started.elapsed().as_millis() as u64;
        let (ok, error) = match &result {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e.clone())),
        };
        if !self.json {
            for l in &step.lines {
                outln!("      {l}");
            }
            match &error {
                None => outln!("      ✔ OK  ({:.2} s)\n", ms as f64 / 1000.0),
                Some(e) => outln!("      ✘ FAILED: {e}  ({:.2} s)\n", ms as f64 / 1000.0),
            }
        }
        self.results.push(json!({
            "step": step.n,
            "name": step.name,
            "title": step.title,
            "ok": ok,
            "ms": ms,
            "error": error,
            "transcript": step.lines,
        }));
    }

    fn account(&self) -> Result<&AccountInfo, String> {
        self.account
            .as_ref()
            .ok_or_else(|| "no activated account (step 1 failed)".to_string())
    }

    /// The device long-polls until the request for `tx` arrives.
    async fn receive(&self, s: &mut Step, tx: &str) -> Result<PendingRequest, String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let list = self
                .device
                .pending(10, &CancelHandle::new())
                .await
                .map_err(|e| format!("device poll: {e}"))?;
            if let Some(r) = list.into_iter().find(|r| r.tx_id == tx) {
                let c = &r.challenge;
                let mut shown = format!("phone shows: \"{}\"", c.context.rp);
                if let Some(t) = &c.text {
                    shown.push_str(&format!(", \"{t}\""));
                }
                if let Some(t) = &c.transaction {
                    shown.push_str(&format!(", {} {} to {}", t.amount, t.currency, t.payee));
                }
                if let Some(ua) = &c.context.user_agent {
                    shown.push_str(&format!(", from {ua}"));
                }
                shown.push_str(&format!(", {} s left", r.seconds_left));
                s.say(shown);
                return Ok(r);
            }
        }
        Err(format!("the device never received {tx}"))
    }

    /// Starts a login push; returns (tx, number shown on the page).
    async fn login_push(&self, s: &mut Step, extra: Value) -> Result<(String, String), String> {
        let mut body = json!({
            "user": USER,
            "context": {"ip": "203.0.113.7", "location": "Berlin, DE", "user_agent": "Firefox on Linux"},
            "text": "Sign in to Demo Bank",
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let started = self.rp.push(body).await?;
        let tx = text(&started, "tx_id");
        let number = text(&started, "number");
        s.say(format!(
            "RP: push started, login page shows number {number}"
        ));
        Ok((tx, number))
    }

    async fn expect_state(&self, s: &mut Step, tx: &str, want: &str) -> Result<Value, String> {
        let st = self.rp.status(tx, 10).await?;
        let got = text(&st, "state");
        if got != want {
            return Err(format!("challenge state is {got}, expected {want}"));
        }
        s.say(format!("RP: challenge state {got}"));
        Ok(st)
    }

    // 1
    async fn activation(&mut self, s: &mut Step) -> Result<(), String> {
        let offer = self
            .rp
            .ok("/v1/rp/enrollments", json!({"user": USER}))
            .await?;
        let uri = text(&offer, "offer_uri");
        s.say(format!(
            "RP: activation offer created ({} bytes, single use, typed code {})",
            uri.len(),
            text(&offer, "code")
        ));
        if !self.json && !self.no_qr {
            let qr = crate::term::qr(&uri)?;
            for line in qr.lines() {
                s.lines.push(format!("        {line}"));
            }
        }
        let account = self
            .device
            .activate_uri(
                &uri,
                ActivationOptions {
                    pin: Some(Zeroizing::new(DEMO_PIN.to_string())),
                    biometric: false,
                },
            )
            .await
            .map_err(|e| format!("activation: {e}"))?;
        let AccountKind::Push { device_id, .. } = &account.kind else {
            return Err("activation produced a non-push account".into());
        };
        s.say(format!(
            "phone: scanned, made its keys, pinned the server key, activated as device {device_id}"
        ));
        s.say("phone: user chose an app PIN (asked only when a request needs it)");
        let (code, devices) = self.rp.get(&format!("/v1/rp/users/{USER}/devices")).await?;
        let active = devices
            .as_array()
            .map(|d| d.iter().filter(|x| x["status"] == "active").count())
            .unwrap_or(0);
        if code != 200 || active != 1 {
            return Err(format!("RP sees {active} active devices (HTTP {code})"));
        }
        s.say("RP: user has 1 active device");
        // An offer is single use.
        let again = self
            .device
            .activate_uri(&uri, ActivationOptions::default())
            .await;
        if again.is_ok() {
            return Err("the same offer activated twice".into());
        }
        s.say("phone: the same QR cannot be used twice (refused)");
        self.account = Some(account);
        Ok(())
    }

    // 2 (and keeps the push OTP for 3)
    async fn push_login(&mut self, s: &mut Step) -> Result<(), String> {
        let id = self.account()?.id.clone();
        let (tx, number) = self.login_push(s, json!({})).await?;
        let req = self.receive(s, &tx).await?;
        match &req.challenge.number_matching {
            NumberMatching::Type { digits } => s.say(format!(
                "phone: asks the user to type the {digits}-digit number"
            )),
            other => return Err(format!("unexpected number matching {other:?}")),
        }
        let outcome = self
            .device
            .approve(&id, &tx, Some(&number))
            .await
            .map_err(|e| format!("approve: {e}"))?;
        s.say(format!(
            "phone: user typed {number} and tapped Approve; answer signed and sent"
        ));
        let st = self.expect_state(s, &tx, "approved").await?;
        let server_otp = text(&st, "push_otp");
        if !ct_eq(server_otp.as_bytes(), outcome.push_otp.as_bytes()) {
            return Err("the RP sees a different push OTP than the phone sent".into());
        }
        self.last_push_otp = Some((tx, Zeroizing::new(server_otp)));
        Ok(())
    }

    // 3
    async fn push_otp(&mut self, s: &mut Step) -> Result<(), String> {
        let (tx, otp) = self.last_push_otp.take().ok_or("no push OTP from step 2")?;
        s.say(format!(
            "RP: the approval carried a {}-digit push OTP; the login form is filled with it",
            otp.len()
        ));
        let (code, alone) = self
            .rp
            .post(
                "/v1/rp/validate",
                json!({"user": USER, "passcode": otp.as_str()}),
            )
            .await?;
        if code == 200 {
            return Err("a push OTP was accepted without its login's tx id".into());
        }
        s.say(format!(
            "RP: without the tx id of its login it is refused ({}): another login cannot use it",
            error_code(&alone)
        ));
        let check = json!({"user": USER, "passcode": otp.as_str(), "tx_id": tx});
        let v = self.rp.ok("/v1/rp/validate", check.clone()).await?;
        if text(&v, "result") != "accepted" || text(&v, "method") != "push_otp" {
            return Err(format!("validate answered {v}"));
        }
        s.say("RP: /v1/rp/validate with the tx id accepted it (method push_otp)");
        let (code, again) = self.rp.post("/v1/rp/validate", check).await?;
        if code == 200 {
            return Err("a push OTP was accepted twice".into());
        }
        s.say(format!(
            "RP: the same push OTP again is refused ({})",
            error_code(&again)
        ));
        Ok(())
    }

    // 4
    async fn attacker_at_the_login_page(&mut self, s: &mut Step) -> Result<(), String> {
        let id = self.account()?.id.clone();
        // The attacker has the password and starts a push; the user, who cannot
        // see the attacker's page, guesses the number.
        let (tx, number) = self.login_push(s, json!({})).await?;
        self.receive(s, &tx).await?;
        let shown: u32 = number.parse().map_err(|_| "odd number".to_string())?;
        for k in 1..=3u32 {
            let guess = format!("{:0width$}", (shown + k) % 100, width = number.len());
            match self.device.approve(&id, &tx, Some(&guess)).await {
                Err(Error::ServerRejected { code }) if code == "wrong_number" => s.say(format!(
                    "phone: user guessed {guess}: refused (wrong_number)"
                )),
                Err(Error::AlreadyAnswered) if k == 3 => s.say(format!(
                    "phone: user guessed {guess}: the request has ended"
                )),
                other => return Err(format!("guess {k} answered {other:?}")),
            }
        }
        let st = self.expect_state(s, &tx, "denied").await?;
        if text(&st, "deny_reason") != "wrong_number" {
            return Err(format!("deny reason {}", st["deny_reason"]));
        }
        s.say("RP: the third wrong number ended it: denied, reason wrong_number");
        // Two more misses: the user denies.
        for i in 2..=3 {
            if i == 3 {
                s.say(format!(
                    "RP: after two misses in a row the next push waits {DEMO_BACKOFF_SECS} s \
                     (10 s by default, doubling)"
                ));
                tokio::time::sleep(Duration::from_millis(
                    u64::from(DEMO_BACKOFF_SECS) * 1000 + 100,
                ))
                .await;
            }
            let (tx, _) = self.login_push(s, json!({})).await?;
            self.receive(s, &tx).await?;
            self.device
                .deny(&id, &tx, DenyReason::Mistake)
                .await
                .map_err(|e| format!("deny: {e}"))?;
            s.say(format!("phone: denial {i} (\"mistake\")"));
            self.expect_state(s, &tx, "denied").await?;
        }
        let (code, body) = self
            .rp
            .post(
                "/v1/rp/push",
                json!({"user": USER, "text": "Sign in to Demo Bank"}),
            )
            .await?;
        if code != 429 || error_code(&body) != "suppressed" {
            return Err(format!(
                "after 3 misses a push answered {code} {}",
                error_code(&body)
            ));
        }
        s.say("RP: the next push is refused: suppressed after 3 misses (push fatigue control)");
        let (code, body) = self
            .rp
            .post("/v1/rp/validate", json!({"user": USER, "passcode": "push"}))
            .await?;
        if code != 429 || error_code(&body) != "suppressed" {
            return Err(format!("typing push answered {code} {body}"));
        }
        s.say("login page: typing `push` is refused too: the attacker could type it");
        self.device
            .resume_pushes(&id)
            .await
            .map_err(|e| format!("resume: {e}"))?;
        s.say("phone: the user opens the app and chooses \"it was me\" (signed by the phone)");
        self.login_approved(s, &id).await
    }

    // 5
    async fn not_me(&mut self, s: &mut Step) -> Result<(), String> {
        let id = self.account()?.id.clone();
        let (tx, _) = self.login_push(s, json!({})).await?;
        self.receive(s, &tx).await?;
        self.device
            .deny(&id, &tx, DenyReason::NotMe)
            .await
            .map_err(|e| format!("deny: {e}"))?;
        s.say("phone: the user denies with \"it was not me\"");
        let st = self.expect_state(s, &tx, "denied").await?;
        if st["fraud_reported"] != Value::Bool(true) {
            return Err(format!("status {st}"));
        }
        s.say("RP: status says fraud_reported (and a challenge.fraud_reported webhook is sent)");
        for (what, body) in [
            ("a push", json!({"user": USER})),
            ("typing `push`", json!({"user": USER, "passcode": "push"})),
        ] {
            let path = if body.get("passcode").is_some() {
                "/v1/rp/validate"
            } else {
                "/v1/rp/push"
            };
            let (code, answer) = self.rp.post(path, body).await?;
            if code != 403 || error_code(&answer) != "locked" {
                return Err(format!("{what} while locked answered {code} {answer}"));
            }
            s.say(format!("RP: {what} is refused: locked"));
        }
        countersign_server::admin::unlock_user(&self.db, &self.rp_id, USER)
            .await
            .map_err(|e| e.to_string())?;
        s.say("operator: `countersign-server unlock-user` unlocks the user");
        self.login_approved(s, &id).await
    }

    /// A login push the user approves with the right number.
    async fn login_approved(&self, s: &mut Step, id: &str) -> Result<(), String> {
        let (tx, number) = self.login_push(s, json!({})).await?;
        self.receive(s, &tx).await?;
        self.device
            .approve(id, &tx, Some(&number))
            .await
            .map_err(|e| format!("approve: {e}"))?;
        s.say(format!("phone: user typed {number} and approved"));
        self.expect_state(s, &tx, "approved").await?;
        Ok(())
    }

    // 6
    async fn timeout_resend(&mut self, s: &mut Step) -> Result<(), String> {
        let id = self.account()?.id.clone();
        let (tx, number) = self.login_push(s, json!({"timeout_secs": 2})).await?;
        self.receive(s, &tx).await?;
        s.say("phone: the user looks away; the 2 s timeout passes");
        tokio::time::sleep(Duration::from_millis(3200)).await;
        self.expect_state(s, &tx, "expired").await?;
        match self.device.approve(&id, &tx, Some(&number)).await {
            Err(Error::RequestExpired) | Err(Error::RequestNotFound) => {
                s.say("phone: a late approval is refused (expired)")
            }
            Ok(_) => return Err("an expired challenge was approved".into()),
            Err(e) => s.say(format!("phone: a late approval is refused ({e})")),
        }
        let (tx2, number2) = self.login_push(s, json!({})).await?;
        s.say("RP: user pressed Resend");
        self.receive(s, &tx2).await?;
        self.device
            .approve(&id, &tx2, Some(&number2))
            .await
            .map_err(|e| format!("approve: {e}"))?;
        s.say(format!("phone: user typed {number2} and approved"));
        self.expect_state(s, &tx2, "approved").await?;
        Ok(())
    }

    // 7
    async fn totp(&mut self, s: &mut Step) -> Result<(), String> {
        let id = self.account()?.id.clone();
        let code = self.device.otp(&id).map_err(|e| format!("otp: {e}"))?;
        s.say(format!(
            "phone: shows a {}-digit TOTP ({} s left); the user types it on the login page",
            code.code.len(),
            code.seconds_left.unwrap_or(0)
        ));
        let v = self
            .rp
            .ok(
                "/v1/rp/validate",
                json!({"user": USER, "passcode": code.code.as_str()}),
            )
            .await?;
        if text(&v, "result") != "accepted" || text(&v, "method") != "totp" {
            return Err(format!("validate answered {v}"));
        }
        s.say("RP: /v1/rp/validate accepted it (method totp)");
        Ok(())
    }

    // 8
    async fn offline(&mut self, s: &mut Step) -> Result<(), String> {
        let off = self.rp.ok("/v1/rp/offline", json!({"user": USER})).await?;
        let payload = text(&off, "qr_payload");
        s.say(format!(
            "RP: login page shows an offline QR (question {}, signed by the server)",
            text(&off, "question")
        ));
        let answer = self
            .device
            .answer_offline_qr(&payload)
            .map_err(|e| format!("offline QR: {e}"))?;
        s.say(format!(
            "phone (no network): verified the QR's signature, shows an {}-digit OCRA response for {}",
            answer.code.len(),
            answer.rp
        ));
        let v = self
            .rp
            .ok(
                &format!("/v1/rp/offline/{}/verify", text(&off, "id")),
                json!({"response": answer.code.as_str()}),
            )
            .await?;
        if text(&v, "result") != "accepted" {
            return Err(format!("verify answered {v}"));
        }
        s.say("RP: OCRA response accepted (RFC 6287, OCRA-1:HOTP-SHA256-8:QN08)");
        Ok(())
    }

    // 9
    async fn qr_login(&mut self, s: &mut Step) -> Result<(), String> {
        let created = self
            .rp
            .ok(
                "/v1/rp/logins",
                json!({"number_matching": "show", "context": {
                    "ip": "203.0.113.9", "location": "Lisbon, PT", "user_agent": "Firefox on macOS"}}),
            )
            .await?;
        let (id, handle, uri) = (
            text(&created, "login_id"),
            text(&created, "browser_handle"),
            text(&created, "uri"),
        );
        s.say("RP: the login page shows a QR (no user name asked) and keeps its browser handle");
        let req = self
            .device
            .scan_login_qr(&uri, None)
            .await
            .map_err(|e| format!("scan: {e}"))?;
        let ctx = &req.challenge.context;
        s.say(format!(
            "phone: scanned and claimed it over its signed channel; shows \"{}\" from {}, {}",
            ctx.rp,
            ctx.location.as_deref().unwrap_or("?"),
            ctx.ip.as_deref().unwrap_or("?")
        ));
        let NumberMatching::Show { number } = req.challenge.number_matching.clone() else {
            return Err(format!(
                "expected reverse number matching, got {:?}",
                req.challenge.number_matching
            ));
        };
        self.device
            .approve(&req.account_id, &req.tx_id, None)
            .await
            .map_err(|e| format!("approve: {e}"))?;
        s.say(format!(
            "phone: user tapped Approve; it shows {number} to type on the page"
        ));
        let (_, st) = self
            .rp
            .page(&format!("/v1/logins/{id}?wait=10"), &handle, None)
            .await?;
        if text(&st, "state") != "number_required" {
            return Err(format!("page poll answered {st}"));
        }
        let (code, st) = self
            .rp
            .page(
                &format!("/v1/logins/{id}/number"),
                &handle,
                Some(json!({ "number": number })),
            )
            .await?;
        if code != 200 || text(&st, "state") != "approved" || text(&st, "user") != USER {
            return Err(format!("number answered {code} {st}"));
        }
        let (code, _) = self
            .rp
            .page(&format!("/v1/logins/{id}"), "AAAAAAAAAAAAAAAAAAAAAA", None)
            .await?;
        if code != 404 {
            return Err(format!("a wrong browser handle got {code}"));
        }
        s.say(format!(
            "page: typed {number}; signed in as {USER} (a wrong browser handle gets 404)"
        ));
        Ok(())
    }

    // 10
    async fn step_up(&mut self, s: &mut Step) -> Result<(), String> {
        let id = self.account()?.id.clone();
        let body = json!({
            "user": USER,
            "text": "Confirm your transfer",
            "transaction": {"amount": "1250.00", "currency": "EUR", "payee": "ACME Supplies Ltd"},
            "verification": "pin",
        });
        let started = self.rp.push(body).await?;
        let tx = text(&started, "tx_id");
        let number = text(&started, "number");
        s.say(format!(
            "RP: transaction push needing a PIN, page shows number {number}"
        ));
        let req = self.receive(s, &tx).await?;
        if req.challenge.verification != Verification::Pin {
            return Err("the challenge does not ask for a PIN".into());
        }
        let wrong: String = DEMO_PIN.chars().rev().collect();
        self.user.will_type(&[&wrong]);
        match self.device.approve(&id, &tx, Some(&number)).await {
            Err(Error::WrongPin { attempts_left }) => s.say(format!(
                "phone: PIN prompt; a wrong PIN is refused ({attempts_left} attempts left)"
            )),
            other => return Err(format!("a wrong PIN gave {other:?}")),
        }
        self.user.will_type(&[DEMO_PIN]);
        let outcome = self
            .device
            .approve(&id, &tx, Some(&number))
            .await
            .map_err(|e| format!("approve: {e}"))?;
        let prompts = self.user.prompts();
        if outcome.verification != Verification::Pin || prompts.len() != 2 {
            return Err(format!(
                "approval verified with {:?} after {} prompts",
                outcome.verification,
                prompts.len()
            ));
        }
        s.say(format!(
            "phone: \"{}\": right PIN; approval signed with the user-verification key",
            prompts.last().cloned().unwrap_or_default()
        ));
        self.expect_state(s, &tx, "approved").await?;
        Ok(())
    }

    // 11
    async fn deregistration(&mut self, s: &mut Step) -> Result<(), String> {
        let account = self.account()?.clone();
        let AccountKind::Push { device_id, .. } = &account.kind else {
            return Err("not a push account".into());
        };
        let (code, v) = self
            .rp
            .delete(&format!("/v1/rp/users/{USER}/devices/{device_id}"))
            .await?;
        if code != 200 {
            return Err(format!("remove device answered {code}: {}", error_code(&v)));
        }
        s.say(format!("RP: removed device {device_id}"));
        match self.device.pending(0, &CancelHandle::new()).await {
            Err(Error::DeviceDeregistered) => {
                s.say("phone: next contact answered device_removed; account wiped")
            }
            other => return Err(format!("the device's next poll gave {other:?}")),
        }
        if !self
            .device
            .accounts()
            .map_err(|e| e.to_string())?
            .is_empty()
        {
            return Err("the account is still on the device".into());
        }
        if self.device.otp(&account.id).is_ok() {
            return Err("the wiped account still makes OTPs".into());
        }
        s.say("phone: no accounts left; its keys and seed are gone");
        let (code, body) = self.rp.post("/v1/rp/push", json!({"user": USER})).await?;
        if code == 200 {
            return Err("a push to a removed device started".into());
        }
        s.say(format!("RP: a new push is refused ({})", error_code(&body)));
        Ok(())
    }
}

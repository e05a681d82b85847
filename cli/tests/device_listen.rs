//! `countersign device` as a real process: activation, scripting commands, and
//! `listen` driven through a pseudo-terminal (approve with the right number, then
//! a wrong number rejected).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use countersign_test_support::{
    Db, RpClient, TempDir, TestServer, assert_secret_service_tools, temp_dir,
};
use serde_json::{Value, json};

/// A server with one relying party, and a folder for the device's home.
struct Fixture {
    rt: tokio::runtime::Runtime,
    server: Option<TestServer>,
    relying_party: RpClient,
    dir: TempDir,
}

impl Fixture {
    fn start(name: &str) -> Self {
        let dir = temp_dir(name);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let server = rt.block_on(TestServer::start(Db::Sqlite));
        let rp = rt.block_on(server.rp("Terminal Bank"));
        Self {
            rt,
            server: Some(server),
            relying_party: rp,
            dir,
        }
    }

    fn rp(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.rt.block_on(async {
            match method {
                "GET" => self.relying_party.get(path).await,
                _ => {
                    self.relying_party
                        .post(path, body.unwrap_or(Value::Null))
                        .await
                }
            }
        });
        assert!((200..300).contains(&status), "{path}: {status}");
        value
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("device")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.stop());
        }
    }
}

fn device_cmd(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_countersign"));
    cmd.arg("device")
        .arg("--home")
        .arg(home)
        .arg("--key-file")
        .args(args);
    cmd
}

fn device(home: &Path, args: &[&str]) -> std::process::Output {
    device_cmd(home, args).output().expect("run countersign")
}

fn activate(f: &Fixture, user: &str) -> Value {
    let offer = f.rp("POST", "/v1/rp/enrollments", Some(json!({"user": user})));
    let uri = offer["offer_uri"].as_str().unwrap();
    let out = device(&f.home(), &["--json", "activate", uri]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn listen_in_a_terminal_approves_the_right_number_and_rejects_a_wrong_one() {
    let f = Fixture::start("listen");
    let account = activate(&f, "carol");
    assert_eq!(account["kind"], "push");

    let mut cmd = device_cmd(&f.home(), &["listen", "--wait", "5"]);
    cmd.env("TERM", "dumb");
    let mut p = rexpect::session::spawn_command(cmd, Some(30_000)).expect("spawn in a pty");
    p.exp_string("Listening for sign-in requests").unwrap();

    // 1. The right number: approved.
    let push = f.rp(
        "POST",
        "/v1/rp/push",
        Some(json!({"user": "carol", "text": "Sign in to the VPN",
                    "context": {"location": "Lisbon, PT"}})),
    );
    let number = push["number"].as_str().unwrap().to_string();
    p.exp_string("Sign-in request").unwrap();
    p.exp_string("Terminal Bank").unwrap();
    p.exp_string("Sign in to the VPN").unwrap();
    p.exp_string("Lisbon, PT").unwrap();
    p.exp_string("[a]pprove").unwrap();
    p.send_line("a").unwrap();
    p.exp_string("Type the 2-digit number").unwrap();
    p.send_line(&number).unwrap();
    p.exp_string("Approved").unwrap();
    let tx = push["tx_id"].as_str().unwrap();
    let st = f.rp("GET", &format!("/v1/rp/challenges/{tx}?wait=5"), None);
    assert_eq!(st["state"], "approved", "{st}");

    // 2. A wrong number: the server refuses, nothing is approved.
    let push = f.rp("POST", "/v1/rp/push", Some(json!({"user": "carol"})));
    let right: u32 = push["number"].as_str().unwrap().parse().unwrap();
    let wrong = format!("{:02}", (right + 1) % 100);
    p.exp_string("Sign-in request").unwrap();
    p.exp_string("[a]pprove").unwrap();
    p.send_line("a").unwrap();
    p.exp_string("Type the 2-digit number").unwrap();
    p.send_line(&wrong).unwrap();
    p.exp_string("Wrong number").unwrap();
    let tx = push["tx_id"].as_str().unwrap();
    let st = f.rp("GET", &format!("/v1/rp/challenges/{tx}"), None);
    assert_eq!(st["state"], "pending", "{st}");

    // The request comes back; deny it as a mistake and stop.
    p.exp_string("[a]pprove").unwrap();
    p.send_line("d").unwrap();
    p.exp_string("Denied.").unwrap();
    let st = f.rp("GET", &format!("/v1/rp/challenges/{tx}?wait=5"), None);
    assert_eq!(st["state"], "denied", "{st}");
    p.send_control('c').unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn scripting_commands_list_otp_add_remove_and_clear_errors() {
    let f = Fixture::start("script");
    let home = f.home();

    // Nothing activated yet: a clear error with the next step.
    let out = device(&home, &["pending"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("countersign device activate"), "{err}");

    let account = activate(&f, "dave");
    let out = device(
        &home,
        &[
            "add",
            "otpauth://totp/Example:dave?secret=JBSWY3DPEHPK3PXP&issuer=Example",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = device(&home, &["--json", "list"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");

    // The push account's TOTP is accepted by the RP.
    let out = device(&home, &["--json", "otp", account["id"].as_str().unwrap()]);
    let codes: Value = serde_json::from_slice(&out.stdout).unwrap();
    let code = codes[0]["code"].as_str().unwrap();
    let v = f.rp(
        "POST",
        "/v1/rp/validate",
        Some(json!({"user": "dave", "passcode": code})),
    );
    assert_eq!(v["result"], "accepted", "{v}");
    assert_eq!(v["method"], "totp", "{v}");

    // Scripted approve: pending → approve with the number.
    let push = f.rp("POST", "/v1/rp/push", Some(json!({"user": "dave"})));
    let out = device(&home, &["--json", "pending", "--wait", "5"]);
    let pending: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pending[0]["tx_id"], push["tx_id"], "{pending}");
    let out = device(
        &home,
        &[
            "approve",
            push["tx_id"].as_str().unwrap(),
            "--number",
            push["number"].as_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Without --key-file the folder refuses clearly instead of reading nothing.
    let out = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["device", "--home"])
        .arg(&home)
        .arg("list")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--key-file"));

    // Removing the push account deregisters it on the server.
    let out = device(&home, &["remove", "dave"]);
    assert!(!out.status.success(), "two accounts are labelled dave");
    let out = device(&home, &["remove", account["id"].as_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let devices = f.rp("GET", "/v1/rp/users/dave/devices", None);
    assert_eq!(devices[0]["status"], "removed", "{devices}");
    std::thread::sleep(Duration::from_millis(10));
}

#[test]
fn os_keyring_mode_keeps_the_storage_key_in_a_secret_service() {
    assert_secret_service_tools();
    let dir = temp_dir("keyring");
    let home = dir.path().join("device");
    // A private session bus and keyring: the user's own keyring is never touched.
    let script = r#"echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
"$BIN" device --home "$HOME_DIR" add 'otpauth://totp/Ex:kr?secret=JBSWY3DPEHPK3PXP&issuer=Ex' >/dev/null || exit 1
"$BIN" device --home "$HOME_DIR" --json list"#;
    let out = Command::new("dbus-run-session")
        .args(["--", "sh", "-c", script])
        .env("BIN", env!("CARGO_BIN_EXE_countersign"))
        .env("HOME_DIR", &home)
        .output()
        .expect("run dbus-run-session");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // dbus-daemon may add a harmless fd-limit warning to stdout: take the JSON line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with('['))
        .unwrap_or_else(|| panic!("no JSON list in {stdout}"));
    let list: Value = serde_json::from_str(line).expect("JSON list");
    assert_eq!(list[0]["label"], "kr", "{list}");
    // No key file: the key is in the keyring, so the data cannot be read without it.
    assert!(!home.join("storage.key").exists());
    let out = device(&home, &["list"]);
    assert!(
        !out.status.success(),
        "--key-file must not read keyring data"
    );
}

/// `countersign device transfer`: the old home prints the offer, the new home's
/// `activate` waits until the old home approves, then the old device is gone.
#[test]
fn transfer_to_a_new_home_approved_by_the_old_one() {
    let f = Fixture::start("transfer");
    let old = f.home();
    let new = f.dir.path().join("new-device");
    let account = activate(&f, "erin");
    let out = device(
        &old,
        &[
            "--json",
            "transfer",
            account["id"].as_str().unwrap(),
            "--remove-old",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let offer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let uri = offer["offer_uri"].as_str().unwrap().to_owned();
    assert!(uri.starts_with("countersign://activate?"), "{offer}");
    assert_eq!(offer["remove_old"], true);

    // The new home activates and waits for the approval.
    let waiting = {
        let new = new.clone();
        std::thread::spawn(move || device(&new, &["--json", "activate", &uri]))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let tx = loop {
        let out = device(&old, &["--json", "pending", "--wait", "2"]);
        let pending: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if let Some(r) = pending.as_array().and_then(|l| l.first()) {
            assert_eq!(r["kind"], "transfer", "{r}");
            assert!(
                r["text"].as_str().unwrap().contains("to a new phone"),
                "{r}"
            );
            break r["tx_id"].as_str().unwrap().to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no transfer request");
    };
    let out = device(&old, &["approve", &tx]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = waiting.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let activated: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(activated["kind"], "push", "{activated}");
    let devices = f.rp("GET", "/v1/rp/users/erin/devices", None);
    let statuses: Vec<&str> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["removed", "active"], "{devices}");
}

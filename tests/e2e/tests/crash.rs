//! Crash safety: a child process entering wrong PINs (each one a persisted
//! counter increment, i.e. an atomic FileStorage write) is killed with SIGKILL
//! 200 times at random moments. After every kill the device must load (old or new
//! state, never a broken one) and the PIN failure counter must never go
//! backwards: at least the last count the child reported, at most one more.
//!
//! Answers survive SIGKILL: a child approves or denies a request and is killed
//! at each step in turn (received, answer persisted, answer sent, acknowledgement
//! persisted), at least 500 times; the restarted child delivers the saved
//! answer, and the server must hold every decision.
//!
//! Activations survive SIGKILL: a child activating is killed when the server
//! has answered the activation, when the account is saved as waiting, and when
//! the server has processed the confirmation. After the restart (and a second
//! scan of the same offer when the phone had saved nothing), the phone lists
//! one account and the server holds exactly that one device, active.
//!
//! Also: FileStorage in OS-keyring mode against a private GNOME Keyring (Secret
//! Service) started under `dbus-run-session`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use countersign_core::authenticator::ActivationOptions;
use countersign_e2e::{open_device, start_server, with_pin};
use countersign_test_support::{RpClient, TestServer, assert_secret_service_tools, temp_dir};
use serde_json::json;

const KILLS: usize = 200;

/// xorshift64: reproducible random delays without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sigkill_during_storage_writes_never_loses_or_rewinds_state() {
    let dir = temp_dir("crash");
    let rt = runtime();
    let account = rt.block_on(async {
        let s = start_server(|_| {}).await;
        let rp = s.rp("Example Bank").await;
        let uri = rp.enroll("alice").await.uri;
        // A cheap KDF so that almost all of the child's time goes to storage writes.
        let dev = open_device(dir.path(), |c| c.pin_kdf_iterations = 1000);
        let acct = dev
            .auth
            .activate_uri(&uri, with_pin("246810"))
            .await
            .unwrap();
        s.stop().await;
        acct.id
    });
    let child_exe = env!("CARGO_BIN_EXE_crash_child");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut previous = 0u32;
    let mut killed_mid_run = 0;
    let started = Instant::now();
    for round in 0..KILLS {
        let mut child = Command::new(child_exe)
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn crash_child");
        std::thread::sleep(Duration::from_micros(4_000 + rng.next() % 30_000));
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(err.is_empty(), "round {round}: child failed: {err}");
        assert!(!status.success(), "round {round}: child exited by itself");
        let reported: Option<u32> = out.lines().filter_map(|l| l.parse().ok()).next_back();
        if reported.is_some() {
            killed_mid_run += 1;
        }
        // Reopen: the record loads, and the counter is old-or-new, never less.
        let dev = open_device(dir.path(), |_| {});
        let info = dev
            .auth
            .account(&account)
            .unwrap_or_else(|e| panic!("round {round}: account lost after SIGKILL: {e:?}"));
        let now = info.pin_failures;
        if let Some(r) = reported {
            assert!(
                now >= r && now <= r + 1,
                "round {round}: child reported {r}, storage has {now}"
            );
        }
        assert!(
            now >= previous,
            "round {round}: counter went backwards {previous} -> {now}"
        );
        if reported.is_none() {
            // At most one increment can land unreported (killed before printing).
            assert!(now <= previous + 1, "round {round}: {previous} -> {now}");
        }
        previous = now;
        // No temp file survives a reopen.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("data"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "round {round}: {leftovers:?}");
    }
    println!(
        "{KILLS} SIGKILLs in {:?}; {killed_mid_run} after at least one write; final counter {previous}",
        started.elapsed()
    );
    assert!(
        previous > 100,
        "the child made too little progress: {previous}"
    );
    assert!(
        killed_mid_run > KILLS / 4,
        "too few kills landed after the child started writing: {killed_mid_run}"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A server (with `tweak`) and a device in `dir` with one push account (no PIN).
async fn server_and_device(
    dir: &std::path::Path,
    tweak: impl FnOnce(&mut countersign_server::config::Config),
) -> (TestServer, RpClient) {
    let s = start_server(tweak).await;
    let rp = s.rp("Example Bank").await;
    let uri = rp.enroll("alice").await.uri;
    let dev = open_device(dir, |_| {});
    dev.auth
        .activate_uri(&uri, ActivationOptions::default())
        .await
        .unwrap();
    (s, rp)
}

/// Kills per step in the answer test (4 steps: 520 kills).
const KILLS_PER_STEP: usize = 130;
const STEPS: [&str; 4] = ["receive", "persist", "send", "ack"];

/// Runs the crash child and returns (exit success, stdout, stderr); with `kill`,
/// waits for its `AT <step>` line and SIGKILLs it there.
fn run_child(args: &[&str], kill: bool) -> (bool, String, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash_child"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn crash_child");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut out = String::new();
    if kill {
        // Blocks until the child stops at its step (or exits early).
        stdout.read_line(&mut out).unwrap();
        child.kill().expect("SIGKILL");
    }
    let status = child.wait().expect("wait");
    stdout.read_to_string(&mut out).unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.success(), out, err)
}

#[test]
fn sigkill_at_every_answer_step_loses_no_decision() {
    let dir = temp_dir("crash-answers");
    let rt = runtime();
    let (server, rp) = rt.block_on(server_and_device(dir.path(), |c| {
        c.policy.push_max_per_window = 100_000;
        // Denials here are "mistake" taps by a scripted user, not fatigue.
        c.policy.denials_before_suppression = u32::MAX;
    }));
    let path = dir.path().to_str().unwrap().to_owned();
    let started = Instant::now();
    let mut kills = 0;
    let mut lost = Vec::new();
    for round in 0..KILLS_PER_STEP * STEPS.len() {
        let step = STEPS[round % STEPS.len()];
        let decision = if round % 3 == 2 { "deny" } else { "approve" };
        let v = rt.block_on(rp.start_push(json!({ "user": "alice", "number_matching": "off" })));
        let tx = v["tx_id"].as_str().unwrap().to_owned();
        let (_, out, err) = run_child(&[&path, "answer", &tx, decision, step], true);
        assert_eq!(
            out.lines().next(),
            Some(format!("AT {step}").as_str()),
            "round {round}: the child did not reach {step}: {err}"
        );
        kills += 1;
        let (ok, out, err) = run_child(&[&path, "recover", &tx, decision, step], false);
        assert!(
            ok && out.contains("recovered"),
            "round {round} ({step}, {decision}): recovery failed: {err}"
        );
        let state = rt.block_on(rp.status(&tx))["state"].clone();
        let want = if decision == "approve" {
            "approved"
        } else {
            "denied"
        };
        if state != want {
            lost.push(format!(
                "round {round} {step} {decision}: server has {state}"
            ));
        }
    }
    println!(
        "{kills} SIGKILLs at {STEPS:?} in {:?}; {} lost decisions",
        started.elapsed(),
        lost.len()
    );
    assert!(kills >= 500);
    assert!(lost.is_empty(), "lost decisions: {lost:#?}");
    rt.block_on(server.stop());
}

/// Kills per step in the activation test (3 steps).
const ACTIVATION_KILLS_PER_STEP: usize = 50;

#[test]
fn sigkill_during_activation_ends_with_one_active_device_on_both_sides() {
    let dir = temp_dir("crash-activation");
    let rt = runtime();
    let server = rt.block_on(start_server(|_| {}));
    let rp = rt.block_on(server.rp("Example Bank"));
    let started = Instant::now();
    let mut kills = 0;
    for round in 0..3 * ACTIVATION_KILLS_PER_STEP {
        let step = ["result", "saved", "sent"][round % 3];
        let user = format!("user{round}");
        let device_dir = dir.path().join(&user);
        let path = device_dir.to_str().unwrap().to_owned();
        let uri = rt.block_on(rp.enroll(&user)).uri;
        let (_, out, err) = run_child(&[&path, "activate", &uri, step], true);
        assert_eq!(
            out.lines().next(),
            Some(format!("AT {step}").as_str()),
            "round {round}: the child did not reach {step}: {err}"
        );
        kills += 1;
        let (ok, out, err) = run_child(&[&path, "reactivate", &uri], false);
        let device_id = out
            .lines()
            .find_map(|l| l.strip_prefix("recovered "))
            .unwrap_or_else(|| panic!("round {round} ({step}): recovery failed: {out}{err}"))
            .to_owned();
        assert!(ok, "round {round} ({step}): {err}");
        rt.block_on(async {
            // The server holds exactly the phone's device, active.
            let (st, list) = rp.get(&format!("/v1/rp/users/{user}/devices")).await;
            assert_eq!(st, 200, "{list}");
            let devices: Vec<(String, String)> = list
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        d["device_id"].as_str().unwrap().to_owned(),
                        d["status"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            assert_eq!(
                devices,
                vec![(device_id.clone(), "active".to_owned())],
                "round {round} ({step})"
            );
            // The phone lists that one account, and it works.
            let dev = open_device(&device_dir, |_| {});
            let accounts = dev.auth.accounts().unwrap();
            assert_eq!(accounts.len(), 1, "round {round} ({step})");
            let v = rp
                .start_push(json!({ "user": user, "number_matching": "off" }))
                .await;
            let tx = v["tx_id"].as_str().unwrap();
            let got = countersign_e2e::wait_pending(&dev.auth, 1, 10).await;
            assert_eq!(got[0].tx_id, tx, "round {round} ({step})");
            dev.auth.approve(&accounts[0].id, tx, None).await.unwrap();
            assert_eq!(rp.status(tx).await["state"], "approved");
        });
    }
    println!(
        "{kills} SIGKILLs during activation (result, saved, sent) in {:?}; every phone ended with one active device",
        started.elapsed()
    );
    rt.block_on(server.stop());
}

/// Two processes on one storage (an app and its push extension) approve
/// different requests of the same account at the same time: every approval
/// reaches the server, and the shared record loses nothing (no request left
/// pending, no answer left unsent, the next push still opens).
#[test]
fn two_processes_on_one_storage_lose_no_decision() {
    const PER_PROCESS: usize = 12;
    let dir = temp_dir("two-processes");
    let rt = runtime();
    let (server, rp) = rt.block_on(server_and_device(dir.path(), |c| {
        c.policy.max_pending = 100;
    }));
    let txs: Vec<String> = (0..2 * PER_PROCESS)
        .map(|_| {
            let v =
                rt.block_on(rp.start_push(json!({ "user": "alice", "number_matching": "off" })));
            v["tx_id"].as_str().unwrap().to_owned()
        })
        .collect();
    let path = dir.path().to_str().unwrap().to_owned();
    let children: Vec<_> = txs
        .chunks(PER_PROCESS)
        .map(|chunk| {
            let mut args = vec![path.clone(), "approve".to_owned()];
            args.extend(chunk.iter().cloned());
            std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                run_child(&args, false)
            })
        })
        .collect();
    for child in children {
        let (ok, out, err) = child.join().unwrap();
        assert!(
            ok && out.contains(&format!("approved {PER_PROCESS}")),
            "{out}
{err}"
        );
    }
    for tx in &txs {
        assert_eq!(rt.block_on(rp.status(tx))["state"], "approved", "{tx}");
    }
    rt.block_on(async {
        let dev = open_device(dir.path(), |_| {});
        assert!(dev.auth.pending_requests().unwrap().is_empty());
        assert!(dev.auth.outbox().unwrap().is_empty());
        // The KEM keys both processes rotated are consistent: the next push opens.
        let v = rp
            .start_push(json!({ "user": "alice", "number_matching": "off" }))
            .await;
        let got = countersign_e2e::wait_pending(&dev.auth, 1, 10).await;
        assert_eq!(got[0].tx_id, v["tx_id"].as_str().unwrap());
    });
    rt.block_on(server.stop());
}

/// FileStorage with its key in the OS keyring (Secret Service). Runs the check in
/// a child under `dbus-run-session` with a fresh, unlocked gnome-keyring-daemon
/// (apt: gnome-keyring dbus dbus-x11); fails with a clear message if missing.
#[test]
fn file_storage_keyring_mode_with_secret_service() {
    assert_secret_service_tools();
    let dir = temp_dir("keyring");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let child_exe = env!("CARGO_BIN_EXE_crash_child");
    let script = format!(
        "echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null && '{}' '{}' keyring",
        child_exe,
        dir.path().display()
    );
    // Output to files, not pipes: the keyring daemon D-Bus starts inherits
    // them and may outlive the session, and a pipe would then never close.
    let (stdout_path, stderr_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let status = Command::new("dbus-run-session")
        .arg("--")
        .arg("sh")
        .arg("-c")
        .arg(&script)
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_RUNTIME_DIR", &home)
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .status()
        .expect("dbus-run-session");
    end_processes_with_home(&home);
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    assert!(
        status.success() && stdout.contains("keyring ok"),
        "keyring child failed: status {status:?}\nstdout: {stdout}\nstderr: {}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
}

/// Ends the processes of this test's session (found by their `HOME`, a fresh
/// temporary directory): a keyring daemon left behind would run on forever.
fn end_processes_with_home(home: &std::path::Path) {
    let needle = format!("HOME={}", home.display());
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if pid.parse::<u32>().is_err() {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            let _ = Command::new("kill").arg(&pid).status();
        }
    }
}

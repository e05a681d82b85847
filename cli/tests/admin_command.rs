//! `countersign admin` (issue 15) as a real process against the database of two
//! running server instances, on SQLite and on PostgreSQL: every command, a
//! revoked key refused at once on both instances, a rotated key working and the
//! old one stopping after its grace period, an unlock lifting a fraud lock, and
//! the audit log's JSON Lines export. Also: `countersign server` prints the demo
//! key only when it creates the demo relying party.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use countersign_server::Server;
use countersign_test_support::{Db, RpClient, TestServer, temp_dir, test_config};
use serde_json::{Value, json};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("COUNTERSIGN_DATABASE_URL")
        .env_remove("COUNTERSIGN_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run countersign")
}

/// `countersign admin --database-url URL --json ARGS`, which must succeed; its
/// JSON lines.
fn admin(db: &str, args: &[&str]) -> Vec<Value> {
    let out = admin_raw(db, args);
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn admin_one(db: &str, args: &[&str]) -> Value {
    let mut lines = admin(db, args);
    assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
    lines.remove(0)
}

fn admin_raw(db: &str, args: &[&str]) -> Output {
    let mut full = vec!["admin", "--database-url", db, "--json"];
    full.extend_from_slice(args);
    run(&full)
}

/// An admin command that must fail with `code` in its message.
fn admin_fails(db: &str, args: &[&str], code: &str) {
    let out = admin_raw(db, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(stderr.contains(code), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn device(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_countersign"))
        .arg("device")
        .arg("--home")
        .arg(home)
        .arg("--key-file")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run countersign device")
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// Whether `key` is accepted by the instance at `base`: a status read of an
/// unknown challenge is 404 with a valid key and 401 without.
async fn accepted(base: &str, key: &str) -> bool {
    let (status, body) = RpClient::new(base, key)
        .get("/v1/rp/challenges/tx_unknown")
        .await;
    match status {
        404 => true,
        401 => false,
        other => panic!("unexpected {other}: {body}"),
    }
}

/// Whether `key` is accepted by both instances (push start is checked too: it
/// is the other hot statement).
async fn accepted_on(bases: &[String], key: &str) -> Vec<bool> {
    let mut seen = Vec::new();
    for base in bases {
        let status_ok = accepted(base, key).await;
        let (push, body) = RpClient::new(base.as_str(), key)
            .push(json!({"user": "nobody-at-all"}))
            .await;
        assert_eq!(status_ok, push != 401, "push {push}: {body}");
        seen.push(status_ok);
    }
    seen
}

async fn admin_commands(db: Db) {
    let a = TestServer::start(db).await;
    let url = a.database().url().to_string();
    let b = Server::start(test_config(&url)).await.unwrap();
    let bases = vec![a.base(), b.base_url()];

    // Relying parties.
    let created = admin_one(
        &url,
        &[
            "rp",
            "create",
            "--name",
            "Ops Bank",
            "--webhook-url",
            "http://127.0.0.1:9/hook",
        ],
    );
    let rp_id = created["rp_id"].as_str().unwrap().to_string();
    let first_key = created["api_key"].as_str().unwrap().to_string();
    assert!(first_key.starts_with("csk_"));
    assert!(created["webhook_secret"].as_str().unwrap().len() >= 43);
    let listed = admin(&url, &["rp", "list"]);
    let row = listed.iter().find(|r| r["id"] == rp_id.as_str()).unwrap();
    assert_eq!(row["name"], "Ops Bank");
    assert_eq!(row["webhook_url"], "http://127.0.0.1:9/hook");
    assert!(
        row.get("webhook_secret").is_none(),
        "secrets are never listed"
    );
    let changed = admin_one(
        &url,
        &[
            "rp",
            "set-webhook",
            "Ops Bank",
            "--url",
            "https://bank.example/hook",
        ],
    );
    assert!(changed["webhook_secret"].as_str().unwrap() != created["webhook_secret"]);
    admin_fails(
        &url,
        &["rp", "set-webhook", "Ops Bank", "--url", "ftp://x"],
        "bad_request",
    );
    admin_fails(
        &url,
        &["rp", "set-webhook", "No Such", "--clear"],
        "not_found",
    );
    let cleared = admin_one(&url, &["rp", "set-webhook", &rp_id, "--clear"]);
    assert_eq!(cleared["webhook_url"], Value::Null);

    // The policy new enrollments get: shown, changed, checked, reset.
    let shown = admin_one(&url, &["rp", "set-policy", "Ops Bank"]);
    assert_eq!(shown["policy"]["pin_min_length"], 6, "{shown}");
    let set = admin_one(
        &url,
        &[
            "rp",
            "set-policy",
            "Ops Bank",
            "--verification",
            "pin",
            "--pin-min-length",
            "8",
        ],
    );
    assert_eq!(set["policy"]["default"], "pin", "{set}");
    assert_eq!(set["policy"]["pin_min_length"], 8, "{set}");
    let offer = RpClient::new(a.base(), first_key.clone())
        .enroll("erin")
        .await;
    assert!(offer.uri.contains("pin=8"), "{}", offer.uri);
    admin_fails(
        &url,
        &["rp", "set-policy", "Ops Bank", "--pin-min-length", "2"],
        "bad_request",
    );
    let reset = admin_one(&url, &["rp", "set-policy", "Ops Bank", "--reset"]);
    assert_eq!(reset["policy"], shown["policy"]);

    // A second key; both keys work (and are cached) on both instances.
    let second = admin_one(
        &url,
        &["key", "create", "--rp", "Ops Bank", "--label", "backend"],
    );
    let second_key = second["api_key"].as_str().unwrap().to_string();
    assert_eq!(accepted_on(&bases, &first_key).await, [true, true]);
    assert_eq!(accepted_on(&bases, &second_key).await, [true, true]);

    // Revoked: refused at once by both instances, the other key unaffected.
    let revoked = admin_one(&url, &["key", "revoke", &second_key]);
    assert!(revoked["revoked_at"].as_i64().unwrap() <= unix_now());
    assert_eq!(accepted_on(&bases, &second_key).await, [false, false]);
    assert_eq!(accepted_on(&bases, &first_key).await, [true, true]);
    admin_fails(&url, &["key", "revoke", &second_key], "revoked already");
    admin_fails(
        &url,
        &["key", "revoke", "csk_nosuchkeyid0000.x"],
        "not_found",
    );

    // Rotated with a grace period: new and old work until it ends, then only the new.
    let rotated = admin_one(&url, &["key", "rotate", &first_key, "--grace", "3s"]);
    let new_key = rotated["api_key"].as_str().unwrap().to_string();
    let ends = rotated["old_key_ends_at"].as_i64().unwrap();
    assert!(
        ends >= unix_now() + 2 && ends <= unix_now() + 3,
        "{rotated}"
    );
    assert_eq!(accepted_on(&bases, &new_key).await, [true, true]);
    assert_eq!(accepted_on(&bases, &first_key).await, [true, true]);
    let keys = admin(&url, &["key", "list", "--rp", &rp_id]);
    let mut states: Vec<(&str, &str)> = keys
        .iter()
        .map(|k| (k["label"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    states.sort();
    let rotated_label = format!("rotated from {}", &first_key[4..20]);
    let mut wanted = vec![
        ("backend", "revoked"),
        ("first key", "expiring"),
        (rotated_label.as_str(), "active"),
    ];
    wanted.sort();
    assert_eq!(states, wanted, "{keys:?}");
    while unix_now() <= ends {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(accepted_on(&bases, &first_key).await, [false, false]);
    assert_eq!(accepted_on(&bases, &new_key).await, [true, true]);
    admin_fails(
        &url,
        &["key", "rotate", &new_key, "--grace", "31d"],
        "30 days",
    );

    // Users and devices.
    let rp = RpClient::new(a.base(), new_key.clone());
    let offer = rp.enroll("dave").await;
    let home = temp_dir("admin-device");
    let out = device(home.path(), &["--json", "activate", &offer.uri]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let users = admin(&url, &["user", "list", "--rp", "Ops Bank"]);
    let names: Vec<&str> = users.iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dave", "erin"]);
    assert_eq!(users[0]["active_devices"], 1);
    assert_eq!(users[1]["active_devices"], 0);
    let devices = admin(
        &url,
        &["device", "list", "--rp", "Ops Bank", "--user", "dave"],
    );
    assert_eq!(devices.len(), 1);
    let device_id = devices[0]["device_id"].as_str().unwrap().to_string();
    admin_one(&url, &["device", "rename", &device_id, "Dave's work phone"]);
    let shown = admin_one(&url, &["user", "show", "--rp", "Ops Bank", "dave"]);
    assert_eq!(shown["devices"][0]["name"], "Dave's work phone");
    admin_fails(&url, &["device", "rename", &device_id, ""], "bad_request");
    admin_fails(&url, &["device", "rename", "dev_nope", "x"], "not_found");
    admin_fails(
        &url,
        &["user", "show", "--rp", "Ops Bank", "nobody"],
        "not_found",
    );

    // A "not me" locks pushes on both instances; an unlock lifts it.
    let push = rp.start_push(json!({"user": "dave"})).await;
    let tx = push["tx_id"].as_str().unwrap().to_string();
    let out = device(home.path(), &["deny", "--not-me", &tx]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for base in &bases {
        let (status, body) = rp.on(base).push(json!({"user": "dave"})).await;
        assert_eq!(body["error"]["code"], "locked", "{status}: {body}");
    }
    let shown = admin_one(&url, &["user", "show", "--rp", "Ops Bank", "dave"]);
    assert!(shown["user"]["locked_until"].as_i64().unwrap() > unix_now());
    admin_fails(
        &url,
        &["user", "unlock", "--rp", "Ops Bank", "nobody"],
        "not_found",
    );
    admin_one(&url, &["user", "unlock", "--rp", "Ops Bank", "dave"]);
    let (status, body) = rp.on(&bases[1]).push(json!({"user": "dave"})).await;
    assert_eq!(status, 200, "{body}");
    let second_tx = body["tx_id"].as_str().unwrap().to_string();

    // Audit: by user, event, tx and time, as JSON Lines.
    let records = admin(&url, &["audit", "--rp", "Ops Bank", "--user", "dave"]);
    let events: Vec<&str> = records
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    for wanted in ["enrollment_offer", "unlocked"] {
        assert!(events.contains(&wanted), "{events:?}");
    }
    let unlocked = admin(&url, &["audit", "--rp", "Ops Bank", "--event", "unlocked"]);
    assert_eq!(unlocked.len(), 1);
    assert_eq!(unlocked[0]["reason"], "by an operator");
    let by_tx = admin(&url, &["audit", "--tx", &tx]);
    assert!(!by_tx.is_empty());
    assert!(by_tx.iter().all(|r| r["tx_id"] == tx.as_str()), "{by_tx:?}");
    assert!(
        by_tx.iter().any(|r| r["event"] == "fraud_report"),
        "{by_tx:?}"
    );
    assert!(admin(&url, &["audit", "--tx", &tx, "--until", "1000"]).is_empty());
    assert_eq!(
        admin(&url, &["audit", "--tx", &tx, "--since", "1h"]).len(),
        by_tx.len()
    );
    let key_events = admin(
        &url,
        &["audit", "--rp", &rp_id, "--event", "api_key_revoked"],
    );
    assert_eq!(key_events.len(), 1);
    let bad = admin_raw(&url, &["audit", "--since", "yesterday-ish"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));

    // Removal: the pending push ends, the device's next request wipes the account.
    let removed = admin_one(&url, &["device", "remove", &device_id]);
    assert_eq!(removed["user"], "dave");
    let status = rp.status(&second_tx).await;
    assert_eq!(status["state"], "expired", "{status}");
    let devices = admin(
        &url,
        &["device", "list", "--rp", "Ops Bank", "--user", "dave"],
    );
    assert_eq!(devices[0]["status"], "removed");
    let out = device(home.path(), &["--json", "pending"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("removed"), "{text}");
    admin_fails(&url, &["device", "remove", &device_id], "not_found");

    b.shutdown().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_commands_on_sqlite_with_two_instances() {
    admin_commands(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_commands_on_postgres_with_two_instances() {
    admin_commands(Db::Postgres).await;
}

/// Starts `countersign server` on `db` and returns what it printed up to
/// "press Ctrl-C", then stops it.
fn server_banner(db: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["server", "--listen", "127.0.0.1:0", "--database-url", db])
        .env("COUNTERSIGN_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("press Ctrl-C") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    banner
}

#[test]
fn the_server_prints_a_key_only_when_it_creates_the_demo_relying_party() {
    let dir = temp_dir("server-banner");
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let first = server_banner(&db);
    assert!(first.contains("API key (shown once): csk_"), "{first}");
    for _ in 0..2 {
        let again = server_banner(&db);
        assert!(again.contains("listening on http://127.0.0.1:"), "{again}");
        assert!(!again.contains("csk_"), "a key on every start: {again}");
    }
    let keys = admin(&db, &["key", "list"]);
    assert_eq!(keys.len(), 1, "{keys:?}");
}

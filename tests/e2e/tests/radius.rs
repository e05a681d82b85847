//! The RADIUS front (issue 14) against the real server on loopback, with the
//! real core as the phone and FreeRADIUS's `radclient` 3.2.1 as the NAS (plus
//! our own codec as a second client where radclient cannot do it: the exact
//! same bytes twice, raw replies checked byte by byte).
//!
//! One server, five clients told apart by source address (radclient's
//! `Packet-Src-IP-Address`): 127.0.0.1 blocking, 127.0.0.2 challenge,
//! 127.0.0.3 static password + OTP, 127.0.0.4 legacy (Message-Authenticator
//! not required), 127.0.0.5 blocking with a 2-second wait. The scenarios run
//! concurrently, each with its own user and phone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use countersign_core::authenticator::ActivationOptions;
use countersign_core::protocol::DenyReason;
use countersign_e2e::{Device, open_device, start_server, wait_pending};
use countersign_server::config::{RadiusClientConfig, RadiusConfig, RadiusMode, RadiusPassword};
use countersign_server::radius::codec::{self, Packet, attr};
use countersign_test_support::{RpClient, TempDir, TestServer, http_client, temp_dir};
use serde_json::json;
use sqlx::Row;
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;

const SECRET: &str = "a long shared secret 0123456789";
const RP: &str = "Example VPN";
const BLOCKING: &str = "127.0.0.1";
const CHALLENGE: &str = "127.0.0.2";
const PASSWORD_OTP: &str = "127.0.0.3";
const LEGACY: &str = "127.0.0.4";
const QUICK: &str = "127.0.0.5";
const NUMBERS: &str = "127.0.0.6";

fn client(address: &str, mode: RadiusMode, password: RadiusPassword) -> RadiusClientConfig {
    RadiusClientConfig {
        address: address.to_owned().try_into().unwrap(),
        secret: SECRET.into(),
        relying_party: RP.into(),
        mode,
        password,
        require_message_authenticator: true,
        blocking_wait_secs: 20,
        challenge_secs: 120,
        number_matching: false,
    }
}

/// What radclient printed about the reply: its code (`None`: no reply) and
/// attributes in order, values unquoted.
#[derive(Debug)]
struct Reply {
    code: Option<String>,
    attributes: Vec<(String, String)>,
    output: String,
}

impl Reply {
    fn get(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the code and that Message-Authenticator came first (radclient
    /// verified it: with a wrong one it prints no reply).
    fn expect(self, code: &str) -> Self {
        assert_eq!(self.code.as_deref(), Some(code), "{}", self.output);
        assert_eq!(
            self.attributes.first().map(|(n, _)| n.as_str()),
            Some("Message-Authenticator"),
            "{}",
            self.output
        );
        self
    }

    fn expect_none(self) {
        assert_eq!(self.code, None, "{}", self.output);
        assert!(
            self.output.contains("No reply from server"),
            "{}",
            self.output
        );
    }
}

/// The RADIUS server and its loopback address.
#[derive(Clone, Copy)]
struct Nas {
    server: SocketAddr,
}

impl Nas {
    /// `radclient -x -t <timeout> -r 1` from `src` with `attrs`.
    async fn send(&self, src: &str, secret: &str, attrs: &str, timeout: &str) -> Reply {
        let mut child = match tokio::process::Command::new("radclient")
            .args(["-x", "-t", timeout, "-r", "1"])
            .arg(self.server.to_string())
            .args(["auth", secret])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!("radclient: {e}: install freeradius-utils (cargo xtask test does)"),
        };
        let line = format!("Packet-Src-IP-Address = {src}, {attrs}\n");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(line.as_bytes()).await.unwrap();
        drop(stdin);
        let out = child.wait_with_output().await.unwrap();
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut code = None;
        let mut attributes = Vec::new();
        let mut in_reply = false;
        for l in output.lines() {
            if let Some(rest) = l.strip_prefix("Received ") {
                code = rest.split_whitespace().next().map(str::to_owned);
                in_reply = true;
            } else if in_reply && l.starts_with('\t') {
                let (name, value) = l.trim().split_once(" = ").unwrap();
                attributes.push((name.to_owned(), value.trim_matches('"').to_owned()));
            } else {
                in_reply = false;
            }
        }
        Reply {
            code,
            attributes,
            output,
        }
    }

    /// An Access-Request with Message-Authenticator from `src`, answered
    /// within 30 s.
    async fn ask(&self, src: &str, attrs: &str) -> Reply {
        self.send(
            src,
            SECRET,
            &format!("{attrs}, Message-Authenticator = 0x00"),
            "30",
        )
        .await
    }
}

/// A phone with an account of `user`: the device, the account id, its folder.
async fn phone(rp: &RpClient, user: &str) -> (Device, String, TempDir) {
    let dir = temp_dir(&format!("radius-{user}"));
    let dev = open_device(dir.path(), |_| {});
    let uri = rp.enroll(user).await.uri;
    let account = dev
        .auth
        .activate_uri(&uri, ActivationOptions::default())
        .await
        .unwrap();
    (dev, account.id, dir)
}

/// Waits for the phone's pending push and approves it; returns the push OTP.
async fn approve(dev: &Device) -> String {
    let p = wait_pending(&dev.auth, 1, 20).await.remove(0);
    let outcome = dev
        .auth
        .approve(&p.account_id, &p.tx_id, None)
        .await
        .unwrap();
    outcome.push_otp.to_string()
}

/// Waits for the phone's pending push and denies it.
async fn deny(dev: &Device) {
    let p = wait_pending(&dev.auth, 1, 20).await.remove(0);
    dev.auth
        .deny(&p.account_id, &p.tx_id, DenyReason::Mistake)
        .await
        .unwrap();
}

/// Pushes started for `user` so far (its challenges in the database).
async fn pushes(s: &TestServer, user: &str) -> i64 {
    sqlx::query(
        "SELECT COUNT(*) AS n FROM challenges c JOIN users u ON u.id = c.user_id WHERE u.name = $1",
    )
    .bind(user)
    .fetch_one(&s.server().state().db.pool)
    .await
    .unwrap()
    .try_get("n")
    .unwrap()
}

/// `user`'s audit events of `event`, reasons in order.
async fn audited(s: &TestServer, user: &str, event: &str) -> Vec<String> {
    sqlx::query(
        "SELECT a.reason FROM audit_log a JOIN users u ON u.id = a.user_id \
         WHERE u.name = $1 AND a.event = $2 ORDER BY a.at, a.id",
    )
    .bind(user)
    .bind(event)
    .fetch_all(&s.server().state().db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get("reason").unwrap())
    .collect()
}

fn current_code(dev: &Device, account: &str) -> String {
    dev.auth.otp(account).unwrap().code.to_string()
}

/// A raw Access-Request of our own codec (PAP, Message-Authenticator first).
fn raw_request(id: u8, user: &str, password: &str) -> (Vec<u8>, [u8; 16]) {
    let authenticator: [u8; 16] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ id);
    let hidden =
        codec::encode_password(password.as_bytes(), SECRET.as_bytes(), &authenticator).unwrap();
    let bytes = codec::encode_request(
        id,
        &authenticator,
        &[
            (attr::USER_NAME, user.as_bytes()),
            (attr::USER_PASSWORD, &hidden),
        ],
        SECRET.as_bytes(),
        true,
    );
    (bytes, authenticator)
}

async fn receive(socket: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn radius_front_with_radclient_and_the_core_as_the_phone() {
    let started = Instant::now();
    let s = start_server(|c| {
        let mut legacy = client(LEGACY, RadiusMode::Blocking, RadiusPassword::Otp);
        legacy.require_message_authenticator = false;
        let mut quick = client(QUICK, RadiusMode::Blocking, RadiusPassword::Otp);
        quick.blocking_wait_secs = 2;
        let mut numbers = client(NUMBERS, RadiusMode::Challenge, RadiusPassword::Otp);
        numbers.number_matching = true;
        c.radius = Some(RadiusConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            clients: vec![
                client(BLOCKING, RadiusMode::Blocking, RadiusPassword::Otp),
                client(CHALLENGE, RadiusMode::Challenge, RadiusPassword::Otp),
                client(
                    PASSWORD_OTP,
                    RadiusMode::Blocking,
                    RadiusPassword::PasswordOtp,
                ),
                legacy,
                quick,
                numbers,
            ],
        });
    })
    .await;
    let rp = s.rp(RP).await;
    let nas = Nas {
        server: s.server().radius_addr().expect("RADIUS configured"),
    };
    let before = s.server().radius_counters().unwrap();

    tokio::join!(
        push_approved_and_denied(&rp, nas),
        totp_once(&rp, nas),
        no_answer_without_the_right_authenticator(&s, nas),
        challenge_mode(&rp, nas),
        retransmission_starts_one_push(&s, &rp, nas),
        static_password_and_otp(&s, &rp, nas),
        blocking_wait_times_out(&rp, nas),
        challenge_with_number_matching(&rp, nas),
    );

    let after = s.server().radius_counters().unwrap();
    println!("RADIUS counters: {after:?}");
    assert!(after.bad_authenticator > before.bad_authenticator);
    assert!(after.missing_authenticator > before.missing_authenticator);
    assert!(after.unknown_client > before.unknown_client);
    assert!(after.legacy_admitted > before.legacy_admitted);
    assert!(after.retransmissions > before.retransmissions);
    // The same counters on /metrics (issue 15).
    let text = s.server().state().metrics.render().unwrap();
    for (outcome, n) in [
        ("accept", after.accepts),
        ("reject", after.rejects),
        ("challenge", after.challenges),
        ("retransmission", after.retransmissions),
        ("unknown_client", after.unknown_client),
        ("bad_authenticator", after.bad_authenticator),
        ("missing_authenticator", after.missing_authenticator),
    ] {
        let line = format!("countersign_radius_requests_total{{outcome=\"{outcome}\"}} {n}\n");
        assert!(text.contains(&line), "{line} in:\n{text}");
    }
    println!("radius scenarios took {:?}", started.elapsed());

    // The listener stops with the server: a request held for the phone ends
    // without an answer (the NAS fails over), and nothing answers afterwards.
    let (_dev, _, _dir) = phone(&rp, "gus").await;
    let socket = UdpSocket::bind((BLOCKING, 0)).await.unwrap();
    let (request, _) = raw_request(7, "gus", "push");
    socket.send_to(&request, nas.server).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    s.stop().await;
    let stopped_in = t0.elapsed();
    assert!(stopped_in < Duration::from_secs(5), "{stopped_in:?}");
    assert_eq!(receive(&socket, Duration::from_millis(300)).await, None);
    let _ = socket
        .send_to(&raw_request(8, "gus", "push").0, nas.server)
        .await;
    assert_eq!(receive(&socket, Duration::from_millis(500)).await, None);
    println!("shutdown with a request held for the phone: {stopped_in:?}, no answer");
}

/// 1: `push`, approved on the phone → Access-Accept. 2: an empty password
/// (radclient leaves it out), denied → Access-Reject with a Reply-Message.
async fn push_approved_and_denied(rp: &RpClient, nas: Nas) {
    let (dev, _, _dir) = phone(rp, "ann").await;
    let (reply, _) = tokio::join!(
        nas.ask(BLOCKING, r#"User-Name = "ann", User-Password = "push""#),
        approve(&dev)
    );
    let reply = reply.expect("Access-Accept");
    assert_eq!(reply.get("Reply-Message"), None);
    println!("1. push + approve: {:?}", reply.code);

    let (reply, ()) = tokio::join!(nas.ask(BLOCKING, r#"User-Name = "ann""#), deny(&dev));
    let reply = reply.expect("Access-Reject");
    assert_eq!(reply.get("Reply-Message"), Some("Denied on the phone"));
    println!(
        "2. empty + deny: {:?} {:?}",
        reply.code,
        reply.get("Reply-Message")
    );
}

/// 3: a valid TOTP → Access-Accept; 4: the same code again → Access-Reject.
async fn totp_once(rp: &RpClient, nas: Nas) {
    let (dev, account, _dir) = phone(rp, "ben").await;
    let code = current_code(&dev, &account);
    let attrs = format!(r#"User-Name = "ben", User-Password = "{code}""#);
    nas.ask(BLOCKING, &attrs).await.expect("Access-Accept");
    let again = nas.ask(BLOCKING, &attrs).await.expect("Access-Reject");
    assert_eq!(
        again.get("Reply-Message"),
        Some("This code was already used")
    );
    println!(
        "3./4. TOTP accepted once, then {:?}",
        again.get("Reply-Message")
    );
}

/// 5: a wrong shared secret gets no answer (radclient times out), nor does an
/// unknown client. 6: no Message-Authenticator → dropped; with it → answered;
/// the legacy client's request without it is admitted.
async fn no_answer_without_the_right_authenticator(s: &TestServer, nas: Nas) {
    let c0 = s.server().radius_counters().unwrap();
    let attrs = r#"User-Name = "cid", User-Password = "000000", Message-Authenticator = 0x00"#;
    nas.send(BLOCKING, "not the shared secret", attrs, "1")
        .await
        .expect_none();
    let c1 = s.server().radius_counters().unwrap();
    assert!(c1.bad_authenticator > c0.bad_authenticator, "{c1:?}");
    println!(
        "5. wrong secret: no answer; bad_authenticator {} -> {}",
        c0.bad_authenticator, c1.bad_authenticator
    );

    nas.send("127.0.0.9", SECRET, attrs, "1")
        .await
        .expect_none();
    let c2 = s.server().radius_counters().unwrap();
    assert!(c2.unknown_client > c1.unknown_client, "{c2:?}");

    let without = r#"User-Name = "cid", User-Password = "000000""#;
    nas.send(BLOCKING, SECRET, without, "1").await.expect_none();
    let c3 = s.server().radius_counters().unwrap();
    assert!(
        c3.missing_authenticator > c2.missing_authenticator,
        "{c3:?}"
    );
    let with = nas
        .send(BLOCKING, SECRET, attrs, "10")
        .await
        .expect("Access-Reject");
    assert_eq!(with.get("Reply-Message"), Some("Wrong code"));
    let legacy = nas
        .send(LEGACY, SECRET, without, "10")
        .await
        .expect("Access-Reject");
    assert_eq!(legacy.get("Reply-Message"), Some("Wrong code"));
    let c4 = s.server().radius_counters().unwrap();
    assert!(c4.legacy_admitted > c3.legacy_admitted, "{c4:?}");
    println!(
        "6. without Message-Authenticator: dropped; with: {:?}; legacy client: {:?}",
        with.code, legacy.code
    );
}

/// 7: challenge mode: Access-Challenge with State; polls while pending get
/// another Challenge, after the approval an Accept; State + TOTP and State +
/// push OTP are accepted too.
async fn challenge_mode(rp: &RpClient, nas: Nas) {
    let (dev, account, _dir) = phone(rp, "cat").await;
    let first = nas
        .ask(CHALLENGE, r#"User-Name = "cat", User-Password = "push""#)
        .await
        .expect("Access-Challenge");
    assert_eq!(
        first.get("Reply-Message"),
        Some("Approve on your phone, or enter a code")
    );
    let state = first.get("State").unwrap().to_owned();
    assert!(state.len() > 60, "an unguessable State: {state}");
    let poll = format!(r#"User-Name = "cat", State = {state}"#);
    let pending = nas.ask(CHALLENGE, &poll).await.expect("Access-Challenge");
    assert_eq!(pending.get("State"), Some(state.as_str()));
    // The State is bound to the user.
    let stolen = format!(r#"User-Name = "cid", State = {state}"#);
    nas.ask(CHALLENGE, &stolen).await.expect("Access-Reject");
    approve(&dev).await;
    nas.ask(CHALLENGE, &poll).await.expect("Access-Accept");
    println!("7. challenge: Challenge, pending poll Challenge, approved poll Accept");

    // State + TOTP.
    let first = nas
        .ask(CHALLENGE, r#"User-Name = "cat", User-Password = "push""#)
        .await
        .expect("Access-Challenge");
    let code = current_code(&dev, &account);
    let with_code = format!(
        r#"User-Name = "cat", User-Password = "{code}", State = {}"#,
        first.get("State").unwrap()
    );
    nas.ask(CHALLENGE, &with_code).await.expect("Access-Accept");
    // That push is still pending on the phone (the code did not withdraw it).
    approve(&dev).await;
    // Approving a push gives a push OTP, good with its own State.
    let first = nas
        .ask(CHALLENGE, r#"User-Name = "cat", User-Password = "push""#)
        .await
        .expect("Access-Challenge");
    let state = first.get("State").unwrap().to_owned();
    let otp = approve(&dev).await;
    let with_otp = format!(r#"User-Name = "cat", User-Password = "{otp}", State = {state}"#);
    nas.ask(CHALLENGE, &with_otp).await.expect("Access-Accept");
    println!("7. challenge: State + TOTP Accept, State + push OTP Accept");
}

/// 7 with number matching: the Reply-Message shows the number to type on
/// the phone, again on each poll; the phone approves with it.
async fn challenge_with_number_matching(rp: &RpClient, nas: Nas) {
    let (dev, _, _dir) = phone(rp, "hal").await;
    let first = nas
        .ask(NUMBERS, r#"User-Name = "hal", User-Password = "push""#)
        .await
        .expect("Access-Challenge");
    let message = first.get("Reply-Message").unwrap().to_owned();
    let number = message
        .strip_prefix("Approve on your phone and enter ")
        .and_then(|m| m.strip_suffix(" there, or enter a code"))
        .unwrap_or_else(|| panic!("{message}"))
        .to_owned();
    assert_eq!(number.len(), 2, "{message}");
    let poll = format!(
        r#"User-Name = "hal", State = {}"#,
        first.get("State").unwrap()
    );
    let pending = nas.ask(NUMBERS, &poll).await.expect("Access-Challenge");
    assert_eq!(
        pending.get("Reply-Message"),
        Some(
            format!(
                "Still waiting: approve on your phone and enter {number} there, or enter a code"
            )
            .as_str()
        )
    );
    let p = wait_pending(&dev.auth, 1, 20).await.remove(0);
    dev.auth
        .approve(&p.account_id, &p.tx_id, Some(&number))
        .await
        .unwrap();
    nas.ask(NUMBERS, &poll).await.expect("Access-Accept");
    println!("7. challenge with number matching: {message:?}, approved with {number}, Accept");
}

/// 8: the same packet twice from the same socket while the first waits for
/// the phone → one push, identical replies (and a late third copy too).
async fn retransmission_starts_one_push(s: &TestServer, rp: &RpClient, nas: Nas) {
    let (dev, _, _dir) = phone(rp, "dan").await;
    let socket = UdpSocket::bind((BLOCKING, 0)).await.unwrap();
    let (request, authenticator) = raw_request(42, "dan", "push");
    socket.send_to(&request, nas.server).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    socket.send_to(&request, nas.server).await.unwrap();
    approve(&dev).await;
    let first = receive(&socket, Duration::from_secs(20)).await.unwrap();
    let second = receive(&socket, Duration::from_secs(20)).await.unwrap();
    assert_eq!(first, second, "a retransmission gets the same bytes");
    assert!(codec::check_response(
        &first,
        SECRET.as_bytes(),
        &authenticator
    ));
    let packet = Packet::decode(&first).unwrap();
    assert_eq!(packet.code, codec::code::ACCESS_ACCEPT);
    assert_eq!(packet.identifier, 42);
    assert_eq!(packet.attributes[0].0, attr::MESSAGE_AUTHENTICATOR);
    // A late copy: answered from the cache.
    socket.send_to(&request, nas.server).await.unwrap();
    let third = receive(&socket, Duration::from_secs(5)).await.unwrap();
    assert_eq!(third, first);
    assert_eq!(pushes(s, "dan").await, 1, "one push for three copies");
    assert_eq!(audited(s, "dan", "push").await.len(), 1);
    assert_eq!(audited(s, "dan", "radius_accept").await, ["push approved"]);
    println!(
        "8. retransmissions: 3 copies, 1 push, identical replies ({} bytes)",
        first.len()
    );
}

/// 9: static password + OTP: right password + push / TOTP → Accept; a wrong
/// password → Reject without a push; no password set → Reject.
async fn static_password_and_otp(s: &TestServer, rp: &RpClient, nas: Nas) {
    let (dev, account, _dir) = phone(rp, "eve").await;
    let url = format!("{}/v1/rp/users/eve/password", rp.base());
    let set = http_client()
        .put(&url)
        .bearer_auth(rp.api_key())
        .json(&json!({"password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status().as_u16(), 200);
    let (reply, _) = tokio::join!(
        nas.ask(
            PASSWORD_OTP,
            r#"User-Name = "eve", User-Password = "correct horsepush""#
        ),
        approve(&dev)
    );
    reply.expect("Access-Accept");
    let code = current_code(&dev, &account);
    let attrs = format!(r#"User-Name = "eve", User-Password = "correct horse,{code}""#);
    nas.ask(PASSWORD_OTP, &attrs).await.expect("Access-Accept");
    let pushed = pushes(s, "eve").await;
    for wrong in [
        "wrong horsepush",
        "wrong horse",
        "correct hors123456",
        "push",
    ] {
        let attrs = format!(r#"User-Name = "eve", User-Password = "{wrong}""#);
        let reply = nas.ask(PASSWORD_OTP, &attrs).await.expect("Access-Reject");
        assert_eq!(
            reply.get("Reply-Message"),
            Some("Wrong password"),
            "{wrong}"
        );
    }
    assert_eq!(
        pushes(s, "eve").await,
        pushed,
        "no push after a wrong password"
    );
    // Removed: the right password no longer passes.
    let removed = http_client()
        .delete(&url)
        .bearer_auth(rp.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status().as_u16(), 200);
    let reply = nas
        .ask(
            PASSWORD_OTP,
            r#"User-Name = "eve", User-Password = "correct horsepush""#,
        )
        .await
        .expect("Access-Reject");
    assert_eq!(reply.get("Reply-Message"), Some("Wrong password"));
    assert_eq!(pushes(s, "eve").await, pushed);
    println!(
        "9. static password + OTP: push Accept, TOTP Accept, wrong password Reject without a push"
    );
}

/// Blocking mode's wait runs out → Access-Reject "timed out".
async fn blocking_wait_times_out(rp: &RpClient, nas: Nas) {
    let (_dev, _, _dir) = phone(rp, "fay").await;
    let t0 = Instant::now();
    let reply = nas
        .ask(QUICK, r#"User-Name = "fay", User-Password = "push""#)
        .await
        .expect("Access-Reject");
    assert_eq!(
        reply.get("Reply-Message"),
        Some("No answer from the phone: timed out")
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "{took:?}"
    );
    println!("blocking wait of 2 s: Reject after {took:?}");
}

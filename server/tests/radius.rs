//! The RADIUS front's store and services on SQLite and PostgreSQL: the static
//! password API, the password check, the relying party lookup, and a push
//! sign-in over UDP with our codec as the NAS and the test as the phone. (The
//! full end-to-end suite with radclient and the core is tests/e2e/tests/radius.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

mod support;

use countersign_server::config::{RadiusClientConfig, RadiusConfig, RadiusMode, RadiusPassword};
use countersign_server::radius::codec::{self, Packet, attr};
use countersign_server::service::{auth, passwords};
use countersign_test_support::{Db, TestServer, both_databases, http_client};
use serde_json::json;
use support::{TestDevice, assert_error};
use zeroize::Zeroizing;

const SECRET: &[u8] = b"shared secret for the tests";

async fn put_password(
    s: &TestServer,
    key: &str,
    user: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = http_client()
        .put(format!("{}/v1/rp/users/{user}/password", s.base()))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn static_passwords(db: Db) {
    let s = TestServer::start(db).await;
    let rp = s.rp("Example VPN").await;
    let key = rp.api_key().to_owned();
    let state = s.server().state().clone();
    let radius_rp = auth::rp_for_radius(&state, "Example VPN")
        .await
        .unwrap()
        .unwrap();
    let by_id = auth::rp_for_radius(&state, &radius_rp.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_id.key_id, radius_rp.key_id);
    assert!(
        auth::rp_for_radius(&state, "Nobody")
            .await
            .unwrap()
            .is_none()
    );

    let (status, body) =
        put_password(&s, &key, "alice", json!({"password": "correct horse"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"user": "alice", "password": "set"}));
    for bad in ["", "a\u{0}b", &"x".repeat(121)] {
        assert_error(
            &put_password(&s, &key, "alice", json!({"password": bad})).await,
            400,
            "bad_request",
        );
    }
    assert_error(
        &put_password(&s, "csk_nope.nope", "alice", json!({"password": "x"})).await,
        401,
        "unauthorized",
    );

    let check = |candidates: &[&str]| {
        let (state, rp) = (state.clone(), radius_rp.clone());
        let candidates: Vec<Zeroizing<String>> = candidates
            .iter()
            .map(|c| Zeroizing::new((*c).to_owned()))
            .collect();
        async move { passwords::check(&state, &rp, "alice", candidates).await }
    };
    let t0 = std::time::Instant::now();
    assert_eq!(check(&["correct horse"]).await.unwrap(), Some(0));
    println!(
        "one Argon2id check (with its two statements): {:?}",
        t0.elapsed()
    );
    assert_eq!(check(&["wrong", "correct horse"]).await.unwrap(), Some(1));
    assert_eq!(check(&["wrong"]).await.unwrap(), None);
    // Replaced: the old one no longer matches.
    put_password(&s, &key, "alice", json!({"password": "battery staple"})).await;
    assert_eq!(
        check(&["correct horse", "battery staple"]).await.unwrap(),
        Some(1)
    );

    let delete = |user: &str| {
        let (url, key) = (
            format!("{}/v1/rp/users/{user}/password", s.base()),
            key.clone(),
        );
        async move {
            let r = http_client()
                .delete(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    assert_eq!(
        delete("alice").await,
        (200, json!({"user": "alice", "password": "removed"}))
    );
    assert_eq!(check(&["battery staple"]).await.unwrap(), None);
    assert_error(&delete("nobody").await, 404, "not_found");
    // Wrong passwords count as failed passcodes: the limit (5) holds.
    let mut refused = None;
    for n in 0..10 {
        if let Err(e) = check(&["guess"]).await {
            refused = Some((n, e.code));
            break;
        }
    }
    assert_eq!(
        refused.map(|(_, code)| code.as_str()),
        Some("rate_limited"),
        "{refused:?}"
    );
    s.stop().await;
}

async fn push_over_udp(db: Db) {
    let s = TestServer::start_with(db, |c| {
        c.radius = Some(RadiusConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            clients: vec![RadiusClientConfig {
                address: "127.0.0.1".to_owned().try_into().unwrap(),
                secret: String::from_utf8(SECRET.to_vec()).unwrap(),
                relying_party: "Example VPN".into(),
                mode: RadiusMode::Blocking,
                password: RadiusPassword::Otp,
                require_message_authenticator: true,
                blocking_wait_secs: 20,
                challenge_secs: 120,
                number_matching: false,
            }],
        });
    })
    .await;
    let rp = s.rp("Example VPN").await;
    let offer = rp.enroll("alice").await;
    let mut dev = TestDevice::activate(&s.base(), &offer.uri).await;
    let server = s.server().radius_addr().unwrap();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let authenticator = [5u8; 16];
    let hidden = codec::encode_password(b"push", SECRET, &authenticator).unwrap();
    let request = codec::encode_request(
        9,
        &authenticator,
        &[
            (attr::USER_NAME, b"alice"),
            (attr::USER_PASSWORD, &hidden),
            (attr::PROXY_STATE, b"hop-1"),
        ],
        SECRET,
        true,
    );
    socket.send_to(&request, server).await.unwrap();
    // The phone: wait for the push, approve it (no number matching over RADIUS).
    let tx = loop {
        let (_, pending) = dev.poll(5).await;
        if let Some(tx) = pending["challenges"][0]["tx"].as_str() {
            break tx.to_owned();
        }
    };
    let opened = dev.fetch(&tx).await;
    let answer = dev.approval(&opened, None);
    assert_eq!(dev.post_answer(&answer).await.0, 200);
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        socket.recv_from(&mut buf),
    )
    .await
    .unwrap()
    .unwrap();
    let reply = &buf[..n];
    assert!(codec::check_response(reply, SECRET, &authenticator));
    let packet = Packet::decode(reply).unwrap();
    assert_eq!(packet.code, codec::code::ACCESS_ACCEPT);
    assert_eq!(
        packet.first(attr::PROXY_STATE),
        Some(&b"hop-1"[..]),
        "Proxy-State copied"
    );
    s.stop().await;
}

both_databases!(static_passwords, push_over_udp);

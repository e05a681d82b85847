//! The FCM and APNs senders against local endpoints that check the real request
//! format: JWT header, claims and signature (verified with the public key),
//! headers, JSON body, and HTTP/2 for APNs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Version};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use countersign_server::push::apns::{ALERT_LOC_KEY, ApnsSender, CATEGORY};
use countersign_server::push::fcm::{FCM_SCOPE, FcmSender, ServiceAccount};
use countersign_server::push::{PushError, PushSender, WakeUp};
use ring::signature::{self, KeyPair};

#[derive(Debug, Clone)]
struct Seen {
    version: Version,
    method: String,
    path: String,
    headers: axum::http::HeaderMap,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Seen>>>;

async fn record(State((log, reply)): State<(Log, Reply)>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let seen = Seen {
        version: parts.version,
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        body,
    };
    let resp = reply(&seen);
    log.lock().unwrap().push(seen);
    resp
}

type Reply = Arc<dyn Fn(&Seen) -> Response + Send + Sync>;

/// Serves `reply` on a loopback port (HTTP/1.1 and h2c prior knowledge).
async fn endpoint(reply: Reply) -> (String, Log) {
    let log: Log = Arc::default();
    let app = Router::new()
        .fallback(record)
        .with_state((log.clone(), reply));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), log)
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Splits and checks a compact JWS; returns (header, claims) after verifying
/// the signature with `alg` and `public_key`.
fn verify_jwt(
    jwt: &str,
    alg: &'static dyn signature::VerificationAlgorithm,
    public_key: &[u8],
) -> (serde_json::Value, serde_json::Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "JWT must have three parts");
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let input = format!("{}.{}", parts[0], parts[1]);
    signature::UnparsedPublicKey::new(alg, public_key)
        .verify(input.as_bytes(), &sig)
        .expect("JWT signature verifies with the public key");
    (header, claims)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn wake(token: &str) -> WakeUp {
    WakeUp {
        token: token.into(),
        device_id: "dev-123".into(),
        tx_id: "tx-456".into(),
        expires_at: now() + 30,
    }
}

/// A 2048-bit RSA key made at test time with the openssl CLI (PKCS#8 PEM).
fn rsa_test_key() -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("the openssl CLI is needed to make a test RSA key (apt-get install openssl)");
    assert!(out.status.success(), "openssl genpkey failed");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn fcm_exchanges_jwt_for_token_and_sends_data_message() {
    let key_pem = rsa_test_key();
    let der = countersign_server::push::jwt::pem_to_der(&key_pem, "PRIVATE KEY").unwrap();
    let public = signature::RsaKeyPair::from_pkcs8(&der)
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();

    let reply: Reply = Arc::new(|seen: &Seen| {
        if seen.path == "/token" {
            (
                StatusCode::OK,
                axum::Json(serde_json::json!({
                    "access_token": "ya29.test-access-token",
                    "expires_in": 3599,
                    "token_type": "Bearer"
                })),
            )
                .into_response()
        } else if seen.body.windows(11).any(|w| w == b"gone-token\"") {
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({
                    "error": {"code": 404, "status": "NOT_FOUND",
                              "details": [{"errorCode": "UNREGISTERED"}]}
                })),
            )
                .into_response()
        } else {
            (
                StatusCode::OK,
                axum::Json(serde_json::json!({"name": "projects/demo-project/messages/1"})),
            )
                .into_response()
        }
    });
    let (base, log) = endpoint(reply).await;
    let token_uri = format!("{base}/token");
    let sa: ServiceAccount = serde_json::from_value(serde_json::json!({
        "type": "service_account",
        "project_id": "demo-project",
        "private_key_id": "kid-1",
        "private_key": key_pem,
        "client_email": "push@demo-project.iam.gserviceaccount.com",
        "token_uri": token_uri,
    }))
    .unwrap();
    let sender = FcmSender::new(sa, "demo-project".into(), &base).unwrap();
    assert_eq!(sender.provider(), "fcm");

    sender.send(&wake("fcm-registration-token")).await.unwrap();
    sender.send(&wake("fcm-registration-token")).await.unwrap();
    assert_eq!(
        sender.send(&wake("gone-token")).await,
        Err(PushError::Unregistered)
    );

    let log = log.lock().unwrap().clone();
    let tokens: Vec<&Seen> = log.iter().filter(|s| s.path == "/token").collect();
    assert_eq!(tokens.len(), 1, "the access token is cached");
    let t = tokens[0];
    assert_eq!(t.method, "POST");
    assert_eq!(
        t.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&t.body).into_owned().collect();
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let (header, claims) = verify_jwt(
        &form["assertion"],
        &signature::RSA_PKCS1_2048_8192_SHA256,
        &public,
    );
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], "kid-1");
    assert_eq!(claims["iss"], "push@demo-project.iam.gserviceaccount.com");
    assert_eq!(claims["scope"], FCM_SCOPE);
    assert_eq!(claims["aud"], token_uri.as_str());
    let iat = claims["iat"].as_i64().unwrap();
    assert!((iat - now()).abs() < 60);
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 3600);

    let sends: Vec<&Seen> = log.iter().filter(|s| s.path != "/token").collect();
    assert_eq!(sends.len(), 3);
    for s in &sends {
        assert_eq!(s.method, "POST");
        assert_eq!(s.path, "/v1/projects/demo-project/messages:send");
        assert_eq!(s.headers["authorization"], "Bearer ya29.test-access-token");
        assert!(
            s.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
    }
    let body: serde_json::Value = serde_json::from_slice(&sends[0].body).unwrap();
    let msg = &body["message"];
    assert_eq!(msg["token"], "fcm-registration-token");
    assert_eq!(
        msg["data"],
        serde_json::json!({"device_id": "dev-123", "tx_id": "tx-456"})
    );
    assert!(
        msg.get("notification").is_none(),
        "data-only: no notification block"
    );
    assert_eq!(msg["android"]["priority"], "HIGH");
    // Only the wake-up: nothing else in the message.
    let keys: Vec<&String> = msg.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["android", "data", "token"]);
}

#[tokio::test]
async fn apns_sends_es256_token_over_http2() {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 =
        signature::EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
    let public = signature::EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .unwrap()
    .public_key()
    .as_ref()
    .to_vec();
    let key_pem = pem("PRIVATE KEY", pkcs8.as_ref());

    let reply: Reply = Arc::new(|seen: &Seen| {
        if seen.path.ends_with("/dead") {
            (
                StatusCode::GONE,
                axum::Json(serde_json::json!({"reason": "Unregistered", "timestamp": 0})),
            )
                .into_response()
        } else if seen.path.ends_with("/bad0") {
            (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({"reason": "PayloadTooLarge"})),
            )
                .into_response()
        } else {
            (
                StatusCode::OK,
                [("apns-id", "00000000-0000-0000-0000-000000000001")],
            )
                .into_response()
        }
    });
    let (base, log) = endpoint(reply).await;
    let sender = ApnsSender::new(
        &key_pem,
        "TEAM123456",
        "KEY1234567",
        "org.example.app",
        &base,
    )
    .unwrap();
    assert_eq!(sender.provider(), "apns");
    let w = wake("a1b2c3d4e5f6");
    sender.send(&w).await.unwrap();
    sender.send(&w).await.unwrap();
    assert_eq!(
        sender.send(&wake("dead")).await,
        Err(PushError::Unregistered)
    );
    assert_eq!(
        sender.send(&wake("bad0")).await,
        Err(PushError::Rejected {
            status: 400,
            reason: "PayloadTooLarge".into()
        })
    );
    assert_eq!(
        sender.send(&wake("../../etc")).await,
        Err(PushError::Unregistered),
        "a token that could change the path is refused locally"
    );

    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 4);
    let first = &log[0];
    assert_eq!(first.version, Version::HTTP_2, "APNs requires HTTP/2");
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/3/device/a1b2c3d4e5f6");
    assert_eq!(first.headers["apns-topic"], "org.example.app");
    assert_eq!(first.headers["apns-push-type"], "alert");
    assert_eq!(first.headers["apns-priority"], "10");
    assert_eq!(
        first.headers["apns-expiration"],
        w.expires_at.to_string().as_str()
    );
    assert_eq!(first.headers["apns-collapse-id"], "tx-456");
    let auth = first.headers["authorization"].to_str().unwrap();
    let jwt = auth
        .strip_prefix("bearer ")
        .expect("authorization: bearer <jwt>");
    let (header, claims) = verify_jwt(jwt, &signature::ECDSA_P256_SHA256_FIXED, &public);
    assert_eq!(
        header,
        serde_json::json!({"alg": "ES256", "kid": "KEY1234567"})
    );
    assert_eq!(claims["iss"], "TEAM123456");
    assert!((claims["iat"].as_i64().unwrap() - now()).abs() < 60);
    assert_eq!(claims.as_object().unwrap().len(), 2);
    // The provider token is reused, not re-signed per push.
    assert_eq!(
        log[1].headers["authorization"],
        first.headers["authorization"]
    );
    let body: serde_json::Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "aps": {"alert": {"loc-key": ALERT_LOC_KEY}, "category": CATEGORY, "mutable-content": 1, "sound": "default"},
            "device_id": "dev-123",
            "tx_id": "tx-456"
        })
    );
    for s in &log {
        assert_eq!(s.version, Version::HTTP_2);
    }
}

#[tokio::test]
async fn apns_renews_expired_provider_token() {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 =
        signature::EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
    let key_pem = pem("PRIVATE KEY", pkcs8.as_ref());
    let calls = Arc::new(Mutex::new(0u32));
    let c = calls.clone();
    let reply: Reply = Arc::new(move |_seen: &Seen| {
        let mut n = c.lock().unwrap();
        *n += 1;
        if *n == 1 {
            (
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({"reason": "ExpiredProviderToken"})),
            )
                .into_response()
        } else {
            StatusCode::OK.into_response()
        }
    });
    let (base, log) = endpoint(reply).await;
    let sender = ApnsSender::new(
        &key_pem,
        "TEAM123456",
        "KEY1234567",
        "org.example.app",
        &base,
    )
    .unwrap();
    sender.send(&wake("abcdef")).await.unwrap();
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 2);
    assert_ne!(
        log[0].headers["authorization"], log[1].headers["authorization"],
        "a fresh provider token after ExpiredProviderToken"
    );
}

#[tokio::test]
async fn no_push_sends_nothing() {
    let sender = countersign_server::push::NoPush;
    assert_eq!(sender.provider(), "none");
    sender.send(&wake("x")).await.unwrap();
}

#[test]
fn service_account_debug_redacts_key() {
    let sa: ServiceAccount = serde_json::from_value(serde_json::json!({
        "private_key": "-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n-----END PRIVATE KEY-----\n",
        "client_email": "a@b",
        "token_uri": "http://127.0.0.1:1/token",
    }))
    .unwrap();
    let dbg = format!("{sa:?}");
    assert!(!dbg.contains("SECRET"));
}

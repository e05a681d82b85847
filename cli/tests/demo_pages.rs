//! The server's demo pages (`config.demo`), over HTTP without a browser: off by
//! default, locked-down headers, the password check, and the API key never
//! reaching the browser.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use countersign_server::Server;
use countersign_server::config::Config;
use serde_json::{Value, json};

async fn server(demo: bool, dir: &std::path::Path) -> countersign_server::RunningServer {
    countersign_server::push::install_crypto_provider();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: format!("sqlite://{}", dir.join("server.db").display()),
        demo,
        ..Config::default()
    };
    Server::start(config).await.expect("server starts")
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("countersign-pages-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn demo_pages_are_off_unless_configured() {
    let dir = temp("off");
    let s = server(false, &dir).await;
    let r = reqwest::get(format!("{}/demo/login", s.base_url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn demo_pages_are_local_and_the_api_checks_the_password() {
    let dir = temp("on");
    let s = server(true, &dir).await;
    let base = s.base_url();
    let http = reqwest::Client::new();
    for page in ["/demo/", "/demo/enroll", "/demo/login", "/demo/transfer"] {
        let r = http.get(format!("{base}{page}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{page}");
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        let html = r.text().await.unwrap();
        // Everything is served from here: no outside scripts, styles or fonts.
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{page}"
        );
    }
    let js = http
        .get(format!("{base}/demo/static/demo.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );

    // Wrong password: refused with the hint.
    let r = http
        .post(format!("{base}/demo/api/login"))
        .json(&json!({"user": "erin", "password": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("demo"),
        "{body}"
    );

    // Right password, but no phone yet: the next step is named.
    let r = http
        .post(format!("{base}/demo/api/login"))
        .json(&json!({"user": "erin", "password": "demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("enroll"),
        "{body}"
    );

    // Enrollment answers the QR and code, never the RP key.
    let r = http
        .post(format!("{base}/demo/api/enroll"))
        .json(&json!({"user": "erin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(!text.contains("csk_"), "the RP API key leaked");
    let offer: Value = serde_json::from_str(&text).unwrap();
    assert!(
        offer["offer_uri"]
            .as_str()
            .unwrap()
            .starts_with("countersign://activate?")
    );
    assert!(offer["qr_svg"].as_str().unwrap().contains("<svg"));

    // A made-up session is refused.
    let r = http
        .get(format!("{base}/demo/api/sessions/ds_nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

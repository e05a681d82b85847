//! The server's demo pages (`config.demo`), over HTTP without a browser: off by
//! default, locked-down headers, the password check, and the API key never
//! reaching the browser.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use countersign_test_support::{Db, TestServer, http_client};
use serde_json::{Value, json};

async fn server(demo: bool) -> TestServer {
    TestServer::start_with(Db::Sqlite, |c| c.demo = demo).await
}

#[tokio::test]
async fn demo_pages_are_off_unless_configured() {
    let s = server(false).await;
    let r = http_client()
        .get(format!("{}/demo/login", s.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

#[tokio::test]
async fn demo_pages_are_local_and_the_api_checks_the_password() {
    let s = server(true).await;
    let base = s.base();
    let http = http_client();
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
    s.stop().await;
}

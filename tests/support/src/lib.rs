//! Test scaffolding shared by the server tests (`server/tests`), the end-to-end
//! tests (`tests/e2e`) and the CLI tests (`cli/tests`): temporary folders, a
//! countersign-server on a free loopback port (SQLite in a temporary folder, or a
//! fresh database in a throwaway PostgreSQL cluster), and a relying-party client
//! over real HTTP.
#![forbid(unsafe_code)]
// Test code: a panic is how a helper reports a failed step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod device;
pub mod postgres;
mod rp;
mod server;

use std::time::{SystemTime, UNIX_EPOCH};

pub use device::{TestDevice, offer_credentials};
/// The HTTP client crate behind [`http_client`] and [`RpClient`].
pub use reqwest;
pub use rp::{Offer, RpClient};
pub use server::{Db, TestDatabase, TestServer, test_config};
pub use tempfile::TempDir;

/// A fresh temporary folder `countersign-<label>-XXXXXX`, removed when dropped.
pub fn temp_dir(label: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("countersign-{label}-"))
        .tempdir()
        .expect("create a temporary folder")
}

/// An HTTP client for loopback servers (rustls on ring, as the server installs it).
pub fn http_client() -> reqwest::Client {
    countersign_server::push::install_crypto_provider();
    reqwest::Client::new()
}

/// Asserts that a private Secret Service can be started for a keyring test:
/// `dbus-run-session` and `gnome-keyring-daemon` are on `PATH`.
pub fn assert_secret_service_tools() {
    for tool in ["dbus-run-session", "gnome-keyring-daemon"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).exists()));
        assert!(
            found,
            "{tool} not found: apt-get install -y --no-install-recommends gnome-keyring dbus dbus-x11 \
             (cargo xtask test does)"
        );
    }
}

/// Unix time in seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// A web server on loopback that is not a Countersign server: a thread that
/// answers every request with a 200 HTML page. Returns its base URL.
pub fn web_page_server() -> String {
    web_page_server_with_status(200)
}

/// The same web server, answering every request with `status` and a web page.
pub fn web_page_server_with_status(status: u16) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = vec![0u8; 64 * 1024];
            let _ = conn.read(&mut buf);
            let body = "<!doctype html><html><body>It works!</body></html>";
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes());
        }
    });
    format!("http://{addr}")
}

//! Test scaffolding shared by the server tests (`server/tests`), the end-to-end
//! tests (`tests/e2e`) and the CLI tests (`cli/tests`): temporary folders, a
//! countersign-server on a free loopback port (SQLite in a temporary folder, or a
//! fresh database in a throwaway PostgreSQL cluster), and a relying-party client
//! over real HTTP.
#![forbid(unsafe_code)]
// Test code: a panic is how a helper reports a failed step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod postgres;
mod rp;
mod server;

use std::time::{SystemTime, UNIX_EPOCH};

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

/// Unix time in seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

//! The offline QR challenge (docs/PROTOCOL.md §11): a payload signed by the
//! server for [`Purpose::OfflineChallenge`](crate::Purpose::OfflineChallenge), which
//! a device answers with an OCRA code the user types.

use serde::{Deserialize, Serialize};

/// The only `kind` of offline challenge in v1.
pub const OFFLINE_KIND: &str = "ocra";

/// The OCRA suite of offline challenges: an 8-digit response to an 8-digit numeric
/// question, keyed with the account's OTP seed.
pub const OFFLINE_SUITE: &str = "OCRA-1:HOTP-SHA256-8:QN08";

/// The signed payload of an offline QR challenge. Fields serialise in this order
/// (`v` first), as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineChallenge {
    /// Protocol version, 1.
    pub v: u64,
    /// [`OFFLINE_KIND`].
    pub kind: String,
    /// The challenge id the relying party verifies the response against.
    pub id: String,
    /// The account id on the server: how the device finds the key to verify with.
    pub account: String,
    /// The device id on the server.
    pub device: String,
    /// The OCRA suite; v1 servers send [`OFFLINE_SUITE`].
    pub suite: String,
    /// The numeric question.
    pub question: String,
    /// The relying party's name, shown to the user.
    pub rp: String,
    /// Expiry, server unix seconds.
    pub exp: u64,
}

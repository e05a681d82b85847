//! The server: its base URL and how the device pins its signing key.

use std::fmt;

use crate::error::{ProtocolError, Result};
use crate::limits::MAX_SERVER_URL_LEN;

/// The server's base URL: `https://…`, or `http://` only for a loopback host
/// (`localhost`, 127.0.0.0/8, `::1`) during development. No credentials, query or
/// fragment. Stored in the `url` crate's normalised form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerUrl(String);

impl ServerUrl {
    /// Parses and normalises a server base URL.
    pub fn parse(text: &str) -> Result<Self> {
        const F: &str = "url";
        if text.len() > MAX_SERVER_URL_LEN {
            return Err(ProtocolError::TooLong {
                field: F,
                max: MAX_SERVER_URL_LEN,
            });
        }
        let url = url::Url::parse(text).map_err(|_| ProtocolError::Malformed { field: F })?;
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => return Err(ProtocolError::Malformed { field: F }),
        };
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
        if !scheme_ok
            || !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(ProtocolError::Malformed { field: F });
        }
        let s = String::from(url);
        if s.len() > MAX_SERVER_URL_LEN {
            return Err(ProtocolError::TooLong {
                field: F,
                max: MAX_SERVER_URL_LEN,
            });
        }
        Ok(Self(s))
    }

    /// The normalised URL text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the device decides to trust the server key in an activation result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKeyPin {
    /// The fingerprint from the offer URI (QR / deep link), or from app configuration.
    Fingerprint([u8; 32]),
    /// Typed code without a configured fingerprint: trust on first use (TLS is then
    /// the only protection of this first exchange).
    TrustOnFirstUse,
}

//! QR login (online, Onegini style): the login page shows a QR code or deep
//! link; the app scans it, claims the login over its signed device channel and
//! gets an ordinary sealed challenge back, which it shows and answers like a
//! push. No push service is involved (docs/PROTOCOL.md §13).

use zeroize::Zeroizing;

use crate::activation::ServerUrl;
use crate::activation::offer::{check_uri_version, pct_encode, uri_params};
use crate::encoding::b64url_bounded;
use crate::error::{ProtocolError, Result};
use crate::limits::{MAX_OFFER_URI_LEN, MAX_RANDOM_ID_BYTES, MIN_RANDOM_ID_BYTES};

/// URI prefix of a QR login.
pub const LOGIN_URI_PREFIX: &str = "countersign://login?";

/// A login request as the page shows it:
/// `countersign://login?v=1&url=…&id=…&secret=…`.
///
/// `id` names the login on the server; `secret` is the one-time proof that the
/// app saw this QR (not just its id). Both are base64url of 16..=32 random bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginQr {
    /// The server's base URL (an account of the app must be on this server).
    pub server_url: ServerUrl,
    /// The login id.
    pub login_id: String,
    /// The one-time secret.
    pub secret: Zeroizing<String>,
}

fn check_random_id(field: &'static str, text: &str) -> Result<()> {
    b64url_bounded(field, text, MIN_RANDOM_ID_BYTES, MAX_RANDOM_ID_BYTES).map(|_| ())
}

impl LoginQr {
    /// The canonical URI: parameters in the order `v, url, id, secret`.
    pub fn to_uri(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(160));
        s.push_str(LOGIN_URI_PREFIX);
        s.push_str("v=1&url=");
        pct_encode(&mut s, self.server_url.as_str());
        s.push_str("&id=");
        s.push_str(&self.login_id);
        s.push_str("&secret=");
        s.push_str(&self.secret);
        s
    }

    /// Parses a login URI strictly: exact prefix, every parameter known and
    /// present once, every value validated. Parameter order does not matter.
    pub fn parse_uri(uri: &str) -> Result<Self> {
        let mut params = uri_params(
            uri,
            LOGIN_URI_PREFIX,
            "not a countersign://login? URI",
            &["v", "url", "id", "secret"],
        )?;
        let missing = |reason| ProtocolError::InvalidUri { reason };
        check_uri_version(&params.remove("v").ok_or(missing("missing v"))?)?;
        let url = params.remove("url");
        let id = params.remove("id").map(|v| v.to_string());
        let secret = params.remove("secret");
        let server_url = ServerUrl::parse(&url.ok_or(missing("missing url"))?)?;
        let login_id = id.ok_or(missing("missing id"))?;
        check_random_id("id", &login_id)?;
        let secret = secret.ok_or(missing("missing secret"))?;
        check_random_id("secret", &secret)?;
        let qr = Self {
            server_url,
            login_id,
            secret,
        };
        // Escaping can triple the URL's length: every login that parses must
        // also parse back from its canonical form.
        if qr.to_uri().len() > MAX_OFFER_URI_LEN {
            return Err(ProtocolError::InvalidUri { reason: "too long" });
        }
        Ok(qr)
    }
}

/// The body of `POST /v1/device/logins/{id}/claim` (signed with Dp like every
/// device request): `{"secret":"…"}`, the QR's one-time secret.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginClaim {
    /// The QR's secret.
    pub secret: String,
}

impl LoginClaim {
    /// Checks the secret's format.
    pub fn validate(&self) -> Result<()> {
        check_random_id("secret", &self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "AAECAwQFBgcICQoLDA0ODw";
    const SECRET: &str = "EBESExQVFhcYGRobHB0eHw";

    fn sample() -> LoginQr {
        LoginQr {
            server_url: ServerUrl::parse("https://auth.example/cs/").unwrap(),
            login_id: ID.into(),
            secret: Zeroizing::new(SECRET.into()),
        }
    }

    #[test]
    fn round_trips_in_canonical_form() {
        let uri = sample().to_uri();
        assert_eq!(
            uri.as_str(),
            "countersign://login?v=1&url=https%3A%2F%2Fauth.example%2Fcs%2F&id=AAECAwQFBgcICQoLDA0ODw&secret=EBESExQVFhcYGRobHB0eHw"
        );
        assert_eq!(LoginQr::parse_uri(&uri).unwrap(), sample());
        let reordered =
            format!("countersign://login?secret={SECRET}&id={ID}&url=https://auth.example/cs/&v=1");
        assert_eq!(LoginQr::parse_uri(&reordered).unwrap(), sample());
    }

    #[test]
    fn refuses_what_is_not_exactly_a_login() {
        let good = sample().to_uri().to_string();
        let cases = [
            good.replace("countersign://login?", "countersign://activate?"),
            good.replace("v=1", "v=2"),
            good.replace(&format!("&secret={SECRET}"), ""),
            good.replace(&format!("id={ID}"), "id=short"),
            good.replace(SECRET, "not+base64"),
            format!("{good}&extra=1"),
            format!("{good}&id={ID}"),
            good.replace("https%3A%2F%2F", "ftp%3A%2F%2F"),
            "x".repeat(2000),
        ];
        for bad in cases {
            assert!(LoginQr::parse_uri(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn claim_is_strict() {
        let claim: LoginClaim =
            serde_json::from_str(&format!("{{\"secret\":\"{SECRET}\"}}")).unwrap();
        claim.validate().unwrap();
        assert!(serde_json::from_str::<LoginClaim>(r#"{"secret":"x","more":1}"#).is_err());
        let short = LoginClaim {
            secret: "abc".into(),
        };
        assert!(short.validate().is_err());
    }
}

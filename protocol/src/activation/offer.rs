//! The offer URI a QR code or deep link carries.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use zeroize::Zeroizing;

use super::{OFFER_URI_PREFIX, OfferCredentials, OfferId, OfferSecret, ServerUrl};
use crate::encoding::{
    b64url, b64url_array, check_opt_text, check_version, percent_escapes_are_strict,
};
use crate::error::{ProtocolError, Result};
use crate::limits::{MAX_LABEL_LEN, MAX_OFFER_URI_LEN};

/// A one-time activation offer as shown in a QR code or deep link:
/// `countersign://activate?v=1&url=…&id=…&secret=…&fp=…[&issuer=…][&label=…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationOffer {
    /// The server's base URL.
    pub server_url: ServerUrl,
    /// Offer id and secret.
    pub credentials: OfferCredentials,
    /// SHA-256 of the server signing key's SPKI DER: the device pins it.
    pub server_key_fingerprint: [u8; 32],
    /// Organisation name to show ("Example Corp").
    pub issuer: Option<String>,
    /// Account label to show ("alice@example.com").
    pub label: Option<String>,
}

/// Bytes percent-encoded in URI values: all but RFC 3986 "unreserved".
const VALUE_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn pct_encode(out: &mut String, value: &str) {
    out.extend(utf8_percent_encode(value, VALUE_ESCAPES));
}

/// Bytes a value may hold literally: unreserved characters and the RFC 3986
/// query characters `!$'()*,;:@/?`; `+`, `&`, `=`, `#`, spaces and controls are not.
fn is_literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$'()*,;:@/?".contains(&b)
}

/// Strict percent-decoding: `%XX` escapes and [`is_literal`] bytes only; the
/// result must be UTF-8.
fn pct_decode(value: &str) -> Result<String> {
    let bad = ProtocolError::InvalidUri {
        reason: "bad percent-encoding",
    };
    if !percent_escapes_are_strict(value, is_literal) {
        return Err(bad);
    }
    percent_decode_str(value)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| bad)
}

impl ActivationOffer {
    /// The canonical URI: parameters in the order `v, url, id, secret, fp, issuer,
    /// label`, every byte outside RFC 3986 "unreserved" percent-encoded (upper-case hex).
    pub fn to_uri(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(256));
        s.push_str(OFFER_URI_PREFIX);
        s.push_str("v=1&url=");
        pct_encode(&mut s, self.server_url.as_str());
        s.push_str("&id=");
        s.push_str(&self.credentials.id.to_text());
        s.push_str("&secret=");
        s.push_str(&self.credentials.secret.to_text());
        s.push_str("&fp=");
        s.push_str(&b64url(&self.server_key_fingerprint));
        if let Some(issuer) = &self.issuer {
            s.push_str("&issuer=");
            pct_encode(&mut s, issuer);
        }
        if let Some(label) = &self.label {
            s.push_str("&label=");
            pct_encode(&mut s, label);
        }
        s
    }

    /// Parses an offer URI strictly: exact scheme and host, no fragment, every
    /// parameter known and present at most once, `v`, `url`, `id`, `secret` and `fp`
    /// required, every value validated. Parameter order does not matter.
    pub fn parse_uri(uri: &str) -> Result<Self> {
        if uri.len() > MAX_OFFER_URI_LEN {
            return Err(ProtocolError::InvalidUri { reason: "too long" });
        }
        let query = uri
            .strip_prefix(OFFER_URI_PREFIX)
            .ok_or(ProtocolError::InvalidUri {
                reason: "not a countersign://activate? URI",
            })?;
        let mut v = None;
        let mut url = None;
        let mut id = None;
        let mut secret: Option<Zeroizing<String>> = None;
        let mut fp = None;
        let mut issuer = None;
        let mut label = None;
        for pair in query.split('&') {
            let (key, raw) = pair.split_once('=').ok_or(ProtocolError::InvalidUri {
                reason: "parameter without value",
            })?;
            let value = Zeroizing::new(pct_decode(raw)?);
            let slot = match key {
                "v" => &mut v,
                "url" => &mut url,
                "id" => &mut id,
                "fp" => &mut fp,
                "issuer" => &mut issuer,
                "label" => &mut label,
                "secret" => {
                    if secret.replace(value).is_some() {
                        return Err(ProtocolError::InvalidUri {
                            reason: "duplicate parameter",
                        });
                    }
                    continue;
                }
                _ => {
                    return Err(ProtocolError::InvalidUri {
                        reason: "unknown parameter",
                    });
                }
            };
            if slot.replace(value.to_string()).is_some() {
                return Err(ProtocolError::InvalidUri {
                    reason: "duplicate parameter",
                });
            }
        }
        let missing = |reason| ProtocolError::InvalidUri { reason };
        let v = v.ok_or(missing("missing v"))?;
        if v != "1" {
            let found = v.parse::<u64>().map_err(|_| ProtocolError::InvalidUri {
                reason: "bad version",
            })?;
            check_version(found)?;
        }
        let server_url = ServerUrl::parse(&url.ok_or(missing("missing url"))?)?;
        let id = OfferId::parse(&id.ok_or(missing("missing id"))?)?;
        let secret = OfferSecret::parse(&secret.ok_or(missing("missing secret"))?)?;
        let fp = b64url_array::<32>("fp", &fp.ok_or(missing("missing fp"))?)?;
        let offer = Self {
            server_url,
            credentials: OfferCredentials { id, secret },
            server_key_fingerprint: fp,
            issuer,
            label,
        };
        offer.validate()?;
        Ok(offer)
    }

    /// Checks the display fields (length, no control or bidi characters).
    pub fn validate(&self) -> Result<()> {
        check_opt_text("issuer", self.issuer.as_deref(), MAX_LABEL_LEN, false)?;
        check_opt_text("label", self.label.as_deref(), MAX_LABEL_LEN, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_percent_encoded_outside_unreserved() {
        let mut out = String::new();
        pct_encode(&mut out, "https://a.example/cs?x=1&y Zürich+~-._@");
        assert_eq!(
            out,
            "https%3A%2F%2Fa.example%2Fcs%3Fx%3D1%26y%20Z%C3%BCrich%2B~-._%40"
        );
        assert_eq!(
            pct_decode(&out).unwrap(),
            "https://a.example/cs?x=1&y Zürich+~-._@"
        );
    }

    #[test]
    fn decoding_is_strict() {
        assert_eq!(pct_decode("a%2fb%2F").unwrap(), "a/b/");
        assert_eq!(pct_decode("!$'()*,;:@/?").unwrap(), "!$'()*,;:@/?");
        assert_eq!(pct_decode("").unwrap(), "");
        for bad in [
            "a+b", "a&b", "a=b", "a#b", "a b", "a\nb", "%ZZ", "%4", "%", "%FF", "é",
        ] {
            assert_eq!(
                pct_decode(bad),
                Err(ProtocolError::InvalidUri {
                    reason: "bad percent-encoding"
                }),
                "{bad:?}"
            );
        }
    }
}

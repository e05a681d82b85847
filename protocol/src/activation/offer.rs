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
/// `countersign://activate?v=1&url=…&id=…&secret=…&fp=…[&issuer=…][&label=…][&pin=…]`.
///
/// `pin` is the server's minimum app PIN length (decimal, 4..=16, the
/// `pin_min_length` of the [`VerificationPolicy`](super::VerificationPolicy) the
/// activation result will carry): the device checks the user's PIN against it
/// before any network call. URIs without it (older servers) still parse; a typed
/// code never carries it, and the device then checks the PIN against the signed
/// result's policy before it confirms.
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
    /// Minimum app PIN length of the server's policy (URI parameter `pin`),
    /// 4..=16; `None` when the URI does not say.
    pub pin_min_length: Option<u8>,
}

/// The range of [`ActivationOffer::pin_min_length`] (as in the policy).
const PIN_MIN_LENGTH_RANGE: std::ops::RangeInclusive<u8> = 4..=16;

/// Bytes percent-encoded in URI values: all but RFC 3986 "unreserved".
const VALUE_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) fn pct_encode(out: &mut String, value: &str) {
    out.extend(utf8_percent_encode(value, VALUE_ESCAPES));
}

/// Bytes a value may hold literally: unreserved characters and the RFC 3986
/// query characters `!$'()*,;:@/?`; `+`, `&`, `=`, `#`, spaces and controls are not.
fn is_literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$'()*,;:@/?".contains(&b)
}

/// The query parameters of a `prefix…` URI (activation offer, QR login): at
/// most [`MAX_OFFER_URI_LEN`] bytes, the exact prefix, every parameter one of
/// `known`, present at most once, with a value, strictly percent-decoded.
/// Values stay zeroizing (one of them may be a secret).
pub(crate) fn uri_params<'a>(
    uri: &'a str,
    prefix: &str,
    not_this_kind: &'static str,
    known: &[&str],
) -> Result<std::collections::HashMap<&'a str, Zeroizing<String>>> {
    if uri.len() > MAX_OFFER_URI_LEN {
        return Err(ProtocolError::InvalidUri { reason: "too long" });
    }
    let query = uri.strip_prefix(prefix).ok_or(ProtocolError::InvalidUri {
        reason: not_this_kind,
    })?;
    let mut params = std::collections::HashMap::new();
    for pair in query.split('&') {
        let (key, raw) = pair.split_once('=').ok_or(ProtocolError::InvalidUri {
            reason: "parameter without value",
        })?;
        if !known.contains(&key) {
            return Err(ProtocolError::InvalidUri {
                reason: "unknown parameter",
            });
        }
        if params
            .insert(key, Zeroizing::new(pct_decode(raw)?))
            .is_some()
        {
            return Err(ProtocolError::InvalidUri {
                reason: "duplicate parameter",
            });
        }
    }
    Ok(params)
}

/// Checks a URI's `v` parameter: `1`, or a number [`check_version`] judges
/// (a later version is `Unsupported`, not malformed).
pub(crate) fn check_uri_version(v: &str) -> Result<()> {
    if v == "1" {
        return Ok(());
    }
    let found = v.parse::<u64>().map_err(|_| ProtocolError::InvalidUri {
        reason: "bad version",
    })?;
    check_version(found)
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
    /// label, pin`, every byte outside RFC 3986 "unreserved" percent-encoded (upper-case hex).
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
        if let Some(pin) = self.pin_min_length {
            s.push_str("&pin=");
            s.push_str(&pin.to_string());
        }
        s
    }

    /// Parses an offer URI strictly: exact scheme and host, no fragment, every
    /// parameter known and present at most once, `v`, `url`, `id`, `secret` and `fp`
    /// required, every value validated. Parameter order does not matter.
    pub fn parse_uri(uri: &str) -> Result<Self> {
        let mut params = uri_params(
            uri,
            OFFER_URI_PREFIX,
            "not a countersign://activate? URI",
            &["v", "url", "id", "secret", "fp", "issuer", "label", "pin"],
        )?;
        let mut take = |key| params.remove(key).map(|v: Zeroizing<String>| v.to_string());
        let (v, url, id, fp) = (take("v"), take("url"), take("id"), take("fp"));
        let (issuer, label, pin) = (take("issuer"), take("label"), take("pin"));
        let secret = params.remove("secret");
        let missing = |reason| ProtocolError::InvalidUri { reason };
        check_uri_version(&v.ok_or(missing("missing v"))?)?;
        let server_url = ServerUrl::parse(&url.ok_or(missing("missing url"))?)?;
        let id = OfferId::parse(&id.ok_or(missing("missing id"))?)?;
        let secret = OfferSecret::parse(&secret.ok_or(missing("missing secret"))?)?;
        let fp = b64url_array::<32>("fp", &fp.ok_or(missing("missing fp"))?)?;
        let pin_min_length = pin.as_deref().map(parse_pin_min_length).transpose()?;
        let offer = Self {
            server_url,
            credentials: OfferCredentials { id, secret },
            server_key_fingerprint: fp,
            issuer,
            label,
            pin_min_length,
        };
        offer.validate()?;
        Ok(offer)
    }

    /// Checks the display fields (length, no control or bidi characters), the
    /// PIN length's range, and that the canonical URI ([`Self::to_uri`]) fits
    /// [`MAX_OFFER_URI_LEN`], so every valid offer parses back from its URI.
    pub fn validate(&self) -> Result<()> {
        check_opt_text("issuer", self.issuer.as_deref(), MAX_LABEL_LEN, false)?;
        check_opt_text("label", self.label.as_deref(), MAX_LABEL_LEN, false)?;
        if let Some(n) = self.pin_min_length
            && !PIN_MIN_LENGTH_RANGE.contains(&n)
        {
            return Err(ProtocolError::InvalidUri { reason: "bad pin" });
        }
        // Escaping can triple a value's length: an input URI within the limit
        // may still have a canonical form beyond it.
        if self.to_uri().len() > MAX_OFFER_URI_LEN {
            return Err(ProtocolError::InvalidUri { reason: "too long" });
        }
        Ok(())
    }
}

/// The `pin` value: canonical decimal (no sign, no leading zero) in range.
fn parse_pin_min_length(value: &str) -> Result<u8> {
    let bad = ProtocolError::InvalidUri { reason: "bad pin" };
    if value.is_empty() || value.len() > 2 || value.starts_with('0') {
        return Err(bad);
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    let n: u8 = value.parse().map_err(|_| bad.clone())?;
    if PIN_MIN_LENGTH_RANGE.contains(&n) {
        Ok(n)
    } else {
        Err(bad)
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
    fn pin_parameter_is_canonical_and_in_range() {
        assert_eq!(parse_pin_min_length("4"), Ok(4));
        assert_eq!(parse_pin_min_length("16"), Ok(16));
        for bad in ["", "3", "17", "06", "+6", "-6", "6a", "100", "255"] {
            assert!(parse_pin_min_length(bad).is_err(), "{bad:?}");
        }
    }

    /// Fuzzing finding: literal `!`, `:` and `/` are one byte in an input URI but
    /// three once re-encoded, so an offer could parse while its canonical URI was
    /// longer than [`MAX_OFFER_URI_LEN`] (and so not parse back).
    #[test]
    fn offer_uri_canonical_form_fits_the_limit() {
        let base = "countersign://activate?v=1&url=https://a.example/&id=04HMASW9\
                    &secret=MND0ZW0H48SM8NB6&fp=oSbXNGtzfMJY1P3flGnzFgKA8dPrGV418yxIHpRqJ90";
        let fits = format!("{base}&label={}", "!".repeat(100));
        let offer = ActivationOffer::parse_uri(&fits).unwrap();
        assert!(offer.to_uri().len() <= MAX_OFFER_URI_LEN);
        assert_eq!(ActivationOffer::parse_uri(&offer.to_uri()), Ok(offer));

        // Short enough as typed, too long once canonical.
        let uri = format!(
            "{}&issuer={}&label={}",
            base.replace("a.example/", &format!("a.example/{}", "a/".repeat(100))),
            "!".repeat(128),
            "/".repeat(128)
        );
        assert!(uri.len() <= MAX_OFFER_URI_LEN);
        assert_eq!(
            ActivationOffer::parse_uri(&uri),
            Err(ProtocolError::InvalidUri { reason: "too long" })
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

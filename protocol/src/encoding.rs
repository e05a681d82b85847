//! Wire encodings shared by every message: base64url, Crockford base32, strict
//! percent-escapes, identifier and text validation, length-prefixed concatenation
//! and bounded JSON parsing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use data_encoding::Encoding;
use serde::de::DeserializeOwned;
use zeroize::Zeroize as _;

use super::error::{ProtocolError, Result};

/// Encodes bytes as base64url without padding (RFC 4648 §5).
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes canonical base64url without padding; `max` bounds the decoded length
/// (checked on the text first, so huge inputs are rejected before decoding).
pub fn b64url_decode(field: &'static str, text: &str, max: usize) -> Result<Vec<u8>> {
    if text.len() > max.div_ceil(3).saturating_mul(4) {
        return Err(ProtocolError::TooLong { field, max });
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| ProtocolError::BadEncoding { field })?;
    if bytes.len() > max {
        return Err(ProtocolError::TooLong { field, max });
    }
    Ok(bytes)
}

/// Decodes canonical base64url that must decode to exactly `N` bytes.
pub fn b64url_array<const N: usize>(field: &'static str, text: &str) -> Result<[u8; N]> {
    let bytes = b64url_decode(field, text, N)?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| ProtocolError::BadEncoding { field })
}

/// Decodes canonical base64url whose decoded length must lie in `min..=max`.
pub fn b64url_bounded(field: &'static str, text: &str, min: usize, max: usize) -> Result<Vec<u8>> {
    let bytes = b64url_decode(field, text, max)?;
    if bytes.len() < min {
        return Err(ProtocolError::TooShort { field, min });
    }
    Ok(bytes)
}

/// Crockford base32 alphabet (no I, L, O, U): easy to read aloud and type.
pub const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Crockford base32 as the activation code writes it: upper case, no padding,
/// non-zero trailing bits rejected (every byte string has one encoding); decoding
/// ignores case and reads the usual confusables `I`/`L` as 1 and `O` as 0. `U`
/// and anything else is rejected.
pub const CROCKFORD_BASE32: Encoding = data_encoding_macro::new_encoding! {
    symbols: "0123456789ABCDEFGHJKMNPQRSTVWXYZ",
    translate_from: "abcdefghjkmnpqrstvwxyzIiLlOo",
    translate_to: "ABCDEFGHJKMNPQRSTVWXYZ111100",
};

/// Encodes bytes as Crockford base32 (upper case, no padding). Trailing bits are
/// zero-padded; the activation code only uses lengths that are multiples of 5 bytes.
pub fn crockford_encode(bytes: &[u8]) -> String {
    CROCKFORD_BASE32.encode(bytes)
}

/// Decodes Crockford base32 text (see [`CROCKFORD_BASE32`]) into exactly `N`
/// bytes; any other length, symbol or non-zero padding bit gives `None`.
pub fn crockford_decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    let input = text.as_bytes();
    if CROCKFORD_BASE32.decode_len(input.len()).ok()? != N {
        return None;
    }
    let mut out = [0u8; N];
    if CROCKFORD_BASE32.decode_mut(input, &mut out).is_err() {
        // It may hold part of an offer secret.
        out.zeroize();
        return None;
    }
    Some(out)
}

/// The value of one Crockford base32 symbol, case-insensitive, with the usual
/// confusables: `I`/`L` read as 1 and `O` as 0. `U` and anything else is rejected.
/// (The typed code's check character is computed over these values.)
pub fn crockford_value(c: char) -> Option<u8> {
    let c = c.to_ascii_uppercase();
    let c = match c {
        'I' | 'L' => '1',
        'O' => '0',
        other => other,
    };
    CROCKFORD
        .iter()
        .position(|&a| char::from(a) == c)
        .and_then(|p| u8::try_from(p).ok())
}

/// True when every `%` starts an escape of two hex digits and every other byte
/// passes `literal`. `percent-encoding` decodes leniently (a bad escape is kept
/// as text), so strict parsers check with this first.
pub fn percent_escapes_are_strict(text: &str, literal: impl Fn(u8) -> bool) -> bool {
    let mut parts = text.split('%');
    let head = parts.next().unwrap_or_default();
    head.bytes().all(&literal)
        && parts.all(|part| match part.as_bytes().split_at_checked(2) {
            Some((hex, rest)) => {
                hex.iter().all(u8::is_ascii_hexdigit) && rest.iter().all(|&b| literal(b))
            }
            None => false,
        })
}

/// Appends `u16be(len) || bytes`; used wherever several values are hashed, MACed or
/// signed together so that no two different tuples share an encoding.
pub fn push_lp(out: &mut Vec<u8>, field: &'static str, bytes: &[u8]) -> Result<()> {
    let len = u16::try_from(bytes.len()).map_err(|_| ProtocolError::TooLong {
        field,
        max: usize::from(u16::MAX),
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Checks an identifier (account, device, offer ids): 1..=`max` bytes of
/// `[A-Za-z0-9_-]`. Ids are chosen by the server; the charset keeps them safe in
/// URLs, headers, logs and file names.
pub fn check_id(field: &'static str, id: &str, max: usize) -> Result<()> {
    if id.is_empty() {
        return Err(ProtocolError::TooShort { field, min: 1 });
    }
    if id.len() > max {
        return Err(ProtocolError::TooLong { field, max });
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ProtocolError::Malformed { field });
    }
    Ok(())
}

/// True for characters that must never appear in text shown to the user: control
/// characters (except `\n` where allowed) and bidirectional overrides/isolates,
/// which can make a payee or amount render differently from its bytes.
fn is_forbidden_display_char(c: char, allow_newline: bool) -> bool {
    if c == '\n' {
        return !allow_newline;
    }
    c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Checks display text: 1..=`max` bytes of UTF-8 with no control or bidi-override characters.
pub fn check_text(field: &'static str, text: &str, max: usize, allow_newline: bool) -> Result<()> {
    if text.is_empty() {
        return Err(ProtocolError::TooShort { field, min: 1 });
    }
    if text.len() > max {
        return Err(ProtocolError::TooLong { field, max });
    }
    if text
        .chars()
        .any(|c| is_forbidden_display_char(c, allow_newline))
    {
        return Err(ProtocolError::Malformed { field });
    }
    Ok(())
}

/// Checks an optional display text.
pub fn check_opt_text(
    field: &'static str,
    text: Option<&str>,
    max: usize,
    allow_newline: bool,
) -> Result<()> {
    match text {
        Some(t) => check_text(field, t, max, allow_newline),
        None => Ok(()),
    }
}

/// Checks a string of ASCII digits with a length in `min..=max`.
pub fn check_digits(field: &'static str, s: &str, min: usize, max: usize) -> Result<()> {
    if s.len() < min {
        return Err(ProtocolError::TooShort { field, min });
    }
    if s.len() > max {
        return Err(ProtocolError::TooLong { field, max });
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProtocolError::Malformed { field });
    }
    Ok(())
}

/// Parses a versioned top-level JSON message after checking the total size bound. serde_json's own messages are
/// dropped because they can quote the input.
pub fn parse_json<T: DeserializeOwned>(what: &'static str, bytes: &[u8], max: usize) -> Result<T> {
    if bytes.len() > max {
        return Err(ProtocolError::MessageTooLarge {
            what,
            len: bytes.len(),
            max,
        });
    }
    // Read the version first, so a newer message reports `UnsupportedVersion`
    // rather than an unknown field.
    if let Ok(probe) = serde_json::from_slice::<VersionProbe>(bytes) {
        check_version(probe.v)?;
    }
    serde_json::from_slice(bytes).map_err(|e| ProtocolError::json(what, &e))
}

/// Only the version of a top-level message (other fields ignored).
#[derive(serde::Deserialize)]
struct VersionProbe {
    v: u64,
}

/// Serialises to compact JSON. Our types contain only strings, integers, booleans,
/// arrays and structs, for which serde_json cannot fail; the error is still typed.
pub fn to_json<T: serde::Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| ProtocolError::json(what, &e))
}

/// Rejects any version other than 1.
pub fn check_version(v: u64) -> Result<()> {
    if v == super::VERSION {
        Ok(())
    } else {
        Err(ProtocolError::UnsupportedVersion {
            found: v,
            supported: super::VERSION,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crockford_round_trip<const N: usize>() {
        let bytes: [u8; N] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
        let s = crockford_encode(&bytes);
        assert_eq!(s.len(), N * 8 / 5);
        assert!(s.chars().all(|c| crockford_value(c).is_some()));
        assert_eq!(crockford_decode::<N>(&s), Some(bytes));
        assert_eq!(crockford_decode::<N>(&s.to_lowercase()), Some(bytes));
    }

    #[test]
    fn crockford_round_trips() {
        crockford_round_trip::<5>();
        crockford_round_trip::<10>();
        crockford_round_trip::<15>();
        assert_eq!(crockford_value('o'), Some(0));
        assert_eq!(crockford_value('l'), Some(1));
        assert_eq!(crockford_value('U'), None);
    }

    #[test]
    fn crockford_matches_the_published_alphabet() {
        // Every symbol's value is its index, and the encoder agrees.
        for (value, &symbol) in CROCKFORD.iter().enumerate() {
            let symbol = char::from(symbol);
            assert_eq!(crockford_value(symbol), Some(value as u8));
            assert_eq!(
                crockford_value(symbol.to_ascii_lowercase()),
                Some(value as u8)
            );
            let bits = [(value as u8) << 3, 0, 0, 0, 0];
            assert!(crockford_encode(&bits).starts_with(symbol));
        }
        // 0x00..: "0000…"; case and confusables decode alike; U, padding bits,
        // wrong lengths and separators do not.
        let bytes = [0x08, 0x42, 0x10, 0x84, 0x21];
        assert_eq!(crockford_encode(&bytes), "11111111");
        assert_eq!(crockford_decode::<5>("1iIlL111"), Some(bytes));
        assert_eq!(crockford_decode::<5>("oO000000"), Some([0; 5]));
        assert_eq!(crockford_decode::<5>("0000000U"), None);
        assert_eq!(crockford_decode::<5>("0000000u"), None);
        assert_eq!(crockford_decode::<5>("0000-000"), None);
        assert_eq!(crockford_decode::<5>("0000000"), None);
        assert_eq!(crockford_decode::<4>("0000000"), Some([0; 4]));
        assert_eq!(crockford_decode::<4>("0000001"), None); // non-zero padding bits
        assert_eq!(crockford_decode::<5>("000000000"), None);
    }

    #[test]
    fn percent_escape_check() {
        let any = |_: u8| true;
        assert!(percent_escapes_are_strict("a%2Fb%c3%a9", any));
        assert!(percent_escapes_are_strict("", any));
        for bad in ["%", "%2", "a%2", "%zz", "%%41", "%4%41", "%+1"] {
            assert!(!percent_escapes_are_strict(bad, any), "{bad}");
        }
        let no_plus = |b: u8| b != b'+';
        assert!(!percent_escapes_are_strict("a+b", no_plus));
        assert!(!percent_escapes_are_strict("%41+", no_plus));
        assert!(percent_escapes_are_strict("%2B", no_plus));
    }

    #[test]
    fn b64_is_canonical() {
        assert!(b64url_decode("x", "AB", 4).is_err()); // non-zero trailing bits
        assert!(b64url_decode("x", "AA==", 4).is_err()); // padding
        assert_eq!(b64url_decode("x", "AA", 4).unwrap(), vec![0]);
        assert!(b64url_array::<2>("x", "AA").is_err());
    }

    #[test]
    fn text_rejects_bidi_and_controls() {
        assert!(check_text("t", "pay \u{202E}01", 100, false).is_err());
        assert!(check_text("t", "a\u{7}", 100, false).is_err());
        assert!(check_text("t", "a\nb", 100, false).is_err());
        assert!(check_text("t", "a\nb", 100, true).is_ok());
        assert!(check_text("t", "Zürich", 100, false).is_ok());
    }
}

//! Wire encodings shared by every message: base64url, Crockford base32, identifier
//! and text validation, length-prefixed concatenation and bounded JSON parsing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;

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

/// Encodes bytes as Crockford base32 (upper case, no padding). Trailing bits are
/// zero-padded; the activation code only uses lengths that are multiples of 5 bytes.
pub fn crockford_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(crockford_char((acc >> bits) & 31));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(crockford_char((acc << (5 - bits)) & 31));
    }
    out
}

fn crockford_char(v: u32) -> char {
    CROCKFORD
        .get(v as usize)
        .map(|&c| char::from(c))
        .unwrap_or('0')
}

/// The value of one Crockford base32 symbol, case-insensitive, with the usual
/// confusables: `I`/`L` read as 1 and `O` as 0. `U` and anything else is rejected.
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

/// Decodes canonical Crockford base32 symbols (already normalised values 0..32)
/// into exactly `n` bytes; non-zero padding bits are rejected so every byte string
/// has one encoding.
pub fn crockford_decode_values(values: &[u8], n: usize) -> Option<Vec<u8>> {
    if values.len() != (n * 8).div_ceil(5) {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &v in values {
        if v >= 32 {
            return None;
        }
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
            acc &= (1 << bits) - 1;
        }
    }
    if acc != 0 || out.len() != n {
        return None;
    }
    Some(out)
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

    #[test]
    fn crockford_round_trip() {
        for n in [5usize, 10, 15] {
            let bytes: Vec<u8> = (0..n as u8)
                .map(|i| i.wrapping_mul(37).wrapping_add(11))
                .collect();
            let s = crockford_encode(&bytes);
            assert_eq!(s.len(), n * 8 / 5);
            let vals: Vec<u8> = s.chars().map(|c| crockford_value(c).unwrap()).collect();
            assert_eq!(crockford_decode_values(&vals, n).unwrap(), bytes);
        }
        assert_eq!(crockford_value('o'), Some(0));
        assert_eq!(crockford_value('l'), Some(1));
        assert_eq!(crockford_value('U'), None);
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

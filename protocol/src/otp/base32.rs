//! RFC 4648 base32 (alphabet `A-Z2-7`) for OTP secrets.
//!
//! Encoding is uppercase without padding (the `otpauth://` convention).
//! Decoding accepts either case, no padding or exactly the RFC padding, and
//! ignores the unused low bits of the last character (as authenticators do).
//! Lengths no encoding can produce (1, 3 or 6 characters past a multiple of 8)
//! are rejected. Decoded bytes are zeroized on drop.

use zeroize::{Zeroize, Zeroizing};

/// Base32 decoding errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base32Error {
    /// A character outside `A-Z`, `a-z`, `2-7` (or `=` outside the padding).
    #[error("invalid base32 character at position {0}")]
    InvalidCharacter(usize),
    /// The number of characters cannot be a base32 encoding.
    #[error("invalid base32 length {0}")]
    InvalidLength(usize),
    /// Padding present but not exactly what RFC 4648 prescribes.
    #[error("invalid base32 padding")]
    InvalidPadding,
}

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Encodes bytes as uppercase base32 without padding.
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buffer: u16 = 0;
    let mut bits = 0u32;
    for &byte in data {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(symbol(buffer >> bits));
        }
        // Keep only the bits not yet written.
        buffer &= (1u16 << bits) - 1;
    }
    if bits > 0 {
        out.push(symbol(buffer << (5 - bits)));
    }
    out
}

fn symbol(index: u16) -> char {
    // `index & 31` keeps the lookup in bounds.
    ALPHABET
        .get(usize::from(index & 31))
        .map_or('A', |&b| char::from(b))
}

fn value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a'),
        b'2'..=b'7' => Some(c - b'2' + 26),
        _ => None,
    }
}

/// Decodes base32 (either case, padding optional but exact if present).
pub fn decode(text: &str) -> Result<Zeroizing<Vec<u8>>, Base32Error> {
    let bytes = text.as_bytes();
    let data_len = bytes.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    let (data, padding) = bytes.split_at(data_len);
    // Valid lengths of the last 8-character group: 0, 2, 4, 5 or 7 characters.
    let rest = data_len % 8;
    if matches!(rest, 1 | 3 | 6) {
        return Err(Base32Error::InvalidLength(data_len));
    }
    if !padding.is_empty() {
        let wanted = if rest == 0 { 0 } else { 8 - rest };
        if padding.len() != wanted {
            return Err(Base32Error::InvalidPadding);
        }
    }
    let mut out = Zeroizing::new(Vec::with_capacity(data_len * 5 / 8));
    let mut buffer: u16 = 0;
    let mut bits = 0u32;
    for (i, &c) in data.iter().enumerate() {
        let v = value(c).ok_or(Base32Error::InvalidCharacter(i))?;
        buffer = (buffer << 5) | u16::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
            buffer &= (1u16 << bits) - 1;
        }
    }
    // The buffer held secret bits.
    buffer.zeroize();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(encode(plain.as_bytes()), enc);
            assert_eq!(decode(enc).unwrap().as_slice(), plain.as_bytes());
            assert_eq!(
                decode(&enc.to_lowercase()).unwrap().as_slice(),
                plain.as_bytes()
            );
        }
        assert_eq!(decode("MZXW6YQ=").unwrap().as_slice(), b"foob");
        assert_eq!(decode("MY======").unwrap().as_slice(), b"f");
    }

    #[test]
    fn errors() {
        assert_eq!(decode("M"), Err(Base32Error::InvalidLength(1)));
        assert_eq!(decode("MZX"), Err(Base32Error::InvalidLength(3)));
        assert_eq!(decode("MZXW6Y"), Err(Base32Error::InvalidLength(6)));
        assert_eq!(decode("MY="), Err(Base32Error::InvalidPadding));
        assert_eq!(decode("MZXW6YTB="), Err(Base32Error::InvalidPadding));
        assert_eq!(decode("MZ1W"), Err(Base32Error::InvalidCharacter(2)));
        assert_eq!(decode("MY=A===="), Err(Base32Error::InvalidCharacter(2)));
        assert_eq!(decode("MZ W"), Err(Base32Error::InvalidCharacter(2)));
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let enc = encode(&data);
            let upper = decode(&enc).unwrap();
            let lower = decode(&enc.to_lowercase()).unwrap();
            prop_assert_eq!(upper.as_slice(), data.as_slice());
            prop_assert_eq!(lower.as_slice(), data.as_slice());
        }

        #[test]
        fn never_panics(s in ".{0,64}") {
            let _ = decode(&s);
        }
    }
}

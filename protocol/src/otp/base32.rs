//! RFC 4648 base32 (alphabet `A-Z2-7`) for OTP secrets, on `data-encoding`.
//!
//! Encoding is uppercase without padding (the `otpauth://` convention).
//! Decoding accepts either case, no padding or exactly the RFC padding, and
//! ignores the unused low bits of the last character (as authenticators do).
//! Lengths no encoding can produce (1, 3 or 6 characters past a multiple of 8)
//! are rejected. Decoded bytes are zeroized on drop.
//!
//! `data_encoding::BASE32` insists on padding and zero trailing bits, and
//! `BASE32_NOPAD` refuses padding; secrets from issuers come both ways, so the
//! padding is checked here and the rest decoded with a lenient encoding.

use data_encoding::{BASE32_NOPAD, DecodeKind, Encoding};
use zeroize::Zeroizing;

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

/// RFC 4648 base32 without padding, either case, unused trailing bits ignored.
const LENIENT_BASE32_NOPAD: Encoding = data_encoding_macro::new_encoding! {
    symbols: "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
    translate_from: "abcdefghijklmnopqrstuvwxyz",
    translate_to: "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    check_trailing_bits: false,
};

/// Encodes bytes as uppercase base32 without padding.
pub fn encode(data: &[u8]) -> String {
    BASE32_NOPAD.encode(data)
}

/// Decodes base32 (either case, padding optional but exact if present).
pub fn decode(text: &str) -> Result<Zeroizing<Vec<u8>>, Base32Error> {
    let bytes = text.as_bytes();
    let data_len = bytes.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    let (data, padding) = bytes.split_at(data_len);
    // Valid lengths of the last 8-character group: 0, 2, 4, 5 or 7 characters.
    let rest = data_len % 8;
    let length_error = Base32Error::InvalidLength(data_len);
    if matches!(rest, 1 | 3 | 6) {
        return Err(length_error);
    }
    if !padding.is_empty() {
        let wanted = if rest == 0 { 0 } else { 8 - rest };
        if padding.len() != wanted {
            return Err(Base32Error::InvalidPadding);
        }
    }
    let len = LENIENT_BASE32_NOPAD
        .decode_len(data_len)
        .map_err(|_| length_error.clone())?;
    // Decode straight into a zeroizing buffer: the bytes are a secret.
    let mut out = Zeroizing::new(vec![0u8; len]);
    let written =
        LENIENT_BASE32_NOPAD
            .decode_mut(data, &mut out)
            .map_err(|partial| match partial.error.kind {
                DecodeKind::Symbol => Base32Error::InvalidCharacter(partial.error.position),
                DecodeKind::Length | DecodeKind::Trailing | DecodeKind::Padding => length_error,
            })?;
    out.truncate(written);
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

//! One-time passwords: HOTP (RFC 4226), TOTP (RFC 6238), OCRA (RFC 6287) and
//! the challenge-bound push OTP of protocol v1.
//!
//! * [`hotp`](mod@hotp): counter-based codes and a constant-time look-ahead verify.
//! * [`totp`]: time-based codes (generated with the `totp-rs` crate), the time
//!   left in the current step and a constant-time verify with ±skew steps.
//! * [`ocra`](mod@ocra): the full OCRA suite grammar, the RFC's exact DataInput and a
//!   constant-time verify.
//! * [`push`]: `push_otp`, the code an approved push sends back, bound to one
//!   transaction and one challenge (derivation in that module's docs).
//! * [`base32`]: RFC 4648 base32 for `otpauth://` secrets (on `data-encoding`).
//!
//! # Parameter bounds
//!
//! | parameter | accepted | why |
//! |---|---|---|
//! | HOTP/TOTP/push digits | 6..=8 | RFC 4226 §5.3 asks for at least 6; 31-bit truncation carries a little over 9 digits, and authenticators show at most 8 |
//! | OCRA digits | 0 or 4..=10 | RFC 6287 §5.1 (`0` = no truncation: the response is the full HMAC in lowercase hex) |
//! | TOTP period | 1..=3600 s | a step longer than an hour is not a one-time password any more |
//! | secret (computation) | 1..=1024 bytes | non-empty and bounded; the 10-byte minimum for imported accounts is enforced by `otpauth://` parsing |
//! | HOTP look-ahead | 0..=1000 counters | RFC 4226 §7.4 look-ahead, bounded so one guess cannot cost unbounded work |
//! | TOTP skew | 0..=10 steps | RFC 6238 §5.2 recommends 1 |
//!
//! Codes are strings of ASCII digits with leading zeros. Every verify compares
//! candidate codes in constant time and walks the whole window whether or not a
//! code matched, so timing reveals neither the code nor where it matched.

pub mod base32;
pub mod hotp;
pub mod ocra;
pub mod push;
pub mod totp;

use std::fmt;

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

pub use crate::crypto::HmacAlgorithm;
pub use hotp::{HotpParams, hotp, hotp_verify};
pub use ocra::{OcraError, OcraInputs, OcraSuite, ocra, ocra_verify};
pub use push::{PUSH_OTP_LABEL, push_otp, push_otp_verify};
pub use totp::{TotpParams, seconds_left, time_step, totp_at, totp_verify};

/// Fewest digits a HOTP, TOTP or push code may have (RFC 4226 §5.3).
pub const MIN_DIGITS: u8 = 6;
/// Most digits a HOTP, TOTP or push code may have.
pub const MAX_DIGITS: u8 = 8;
/// Shortest TOTP period, in seconds.
pub const MIN_PERIOD: u32 = 1;
/// Longest TOTP period, in seconds (one hour).
pub const MAX_PERIOD: u32 = 3600;
/// Longest secret accepted by the code functions, in bytes.
pub const MAX_SECRET_LEN: usize = 1024;
/// Largest HOTP look-ahead window (counters after the expected one).
pub const MAX_LOOK_AHEAD: u32 = 1000;
/// Largest TOTP skew, in steps on either side of the current one.
pub const MAX_SKEW: u8 = 10;

/// Errors of the HOTP, TOTP and push OTP functions.
///
/// Messages name parameters and limits, never secrets or codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtpError {
    /// The number of digits is outside 6..=8.
    #[error("{0} digits is not supported (6 to 8)")]
    InvalidDigits(u8),
    /// The TOTP period is outside 1..=3600 seconds.
    #[error("a period of {0} s is not supported (1 to 3600)")]
    InvalidPeriod(u32),
    /// The secret is empty or longer than [`MAX_SECRET_LEN`].
    #[error("a secret of {0} bytes is not supported (1 to 1024)")]
    SecretLength(usize),
    /// The HOTP look-ahead window is larger than [`MAX_LOOK_AHEAD`].
    #[error("a look-ahead of {0} counters is too large (at most 1000)")]
    LookAheadTooLarge(u32),
    /// The TOTP skew is larger than [`MAX_SKEW`].
    #[error("a skew of {0} steps is too large (at most 10)")]
    SkewTooLarge(u8),
    /// The push transaction id is shorter than 16 or longer than 256 bytes.
    #[error("a transaction id of {0} bytes is not supported (16 to 256)")]
    TxIdLength(usize),
    /// The HMAC was too short to truncate; cannot happen with SHA-1/256/512.
    #[error("HMAC output too short for dynamic truncation")]
    MacTooShort,
}

/// An OTP seed (the HMAC key shared by device and server).
///
/// Zeroized on drop; `Debug` shows only the length; equality is constant time.
#[derive(Clone)]
pub struct OtpSecret(Zeroizing<Vec<u8>>);

impl OtpSecret {
    /// Wraps secret bytes (taken over, not copied).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies secret bytes out of a slice.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Zeroizing<Vec<u8>>> for OtpSecret {
    fn from(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for OtpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OtpSecret(<redacted, {} bytes>)", self.0.len())
    }
}

impl PartialEq for OtpSecret {
    fn eq(&self, other: &Self) -> bool {
        crate::crypto::ct_eq(&self.0, &other.0)
    }
}

impl Eq for OtpSecret {}

/// Checks a HOTP/TOTP/push digit count.
pub(crate) fn check_digits(digits: u8) -> Result<(), OtpError> {
    if (MIN_DIGITS..=MAX_DIGITS).contains(&digits) {
        Ok(())
    } else {
        Err(OtpError::InvalidDigits(digits))
    }
}

/// Checks a secret's length for the code functions.
pub(crate) fn check_secret(secret: &[u8]) -> Result<(), OtpError> {
    if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
        Err(OtpError::SecretLength(secret.len()))
    } else {
        Ok(())
    }
}

/// RFC 4226 §5.3 dynamic truncation: a 31-bit number from four bytes of the
/// MAC chosen by the low nibble of its last byte.
pub(crate) fn dynamic_truncate(mac: &[u8]) -> Result<u32, OtpError> {
    let last = mac.last().ok_or(OtpError::MacTooShort)?;
    let offset = usize::from(last & 0x0f);
    let window = mac.get(offset..offset + 4).ok_or(OtpError::MacTooShort)?;
    let mut four = [0u8; 4];
    four.copy_from_slice(window);
    Ok(u32::from_be_bytes(four) & 0x7fff_ffff)
}

/// Formats `value mod 10^digits` with leading zeros (digits <= 10).
pub(crate) fn format_code(value: u64, digits: u8) -> String {
    let modulus = 10u64.pow(u32::from(digits.min(19)));
    format!("{:0width$}", value % modulus, width = usize::from(digits))
}

/// Whether `code` has the exact shape of a `digits`-digit code.
pub(crate) fn well_formed_code(code: &str, digits: u8) -> bool {
    code.len() == usize::from(digits) && code.bytes().all(|b| b.is_ascii_digit())
}

/// Constant-time search of a window: returns the first candidate (in the order
/// given) whose code equals `code`. All candidates are computed and compared.
pub(crate) fn ct_find<I, F>(
    code: &str,
    candidates: I,
    mut code_for: F,
) -> Result<Option<u64>, OtpError>
where
    I: IntoIterator<Item = u64>,
    F: FnMut(u64) -> Result<Option<String>, OtpError>,
{
    let mut found = Choice::from(0);
    let mut matched = 0u64;
    for candidate in candidates {
        let Some(expected) = code_for(candidate)? else {
            continue;
        };
        let expected = Zeroizing::new(expected);
        let is_match = expected.as_bytes().ct_eq(code.as_bytes());
        let take = is_match & !found;
        matched = u64::conditional_select(&matched, &candidate, take);
        found |= is_match;
    }
    Ok(if bool::from(found) {
        Some(matched)
    } else {
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_redacts_and_eq_is_by_value() {
        let a = OtpSecret::from_slice(b"0123456789");
        let b = OtpSecret::new(b"0123456789".to_vec());
        assert_eq!(a, b);
        assert_ne!(a, OtpSecret::from_slice(b"012345678X"));
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("0123"), "{dbg}");
        assert!(dbg.contains("10 bytes"));
        assert_eq!(a.len(), 10);
        assert!(!a.is_empty());
    }

    #[test]
    fn parameter_checks() {
        assert_eq!(check_digits(5), Err(OtpError::InvalidDigits(5)));
        assert_eq!(check_digits(9), Err(OtpError::InvalidDigits(9)));
        assert!(check_digits(6).is_ok() && check_digits(8).is_ok());
        assert_eq!(check_secret(&[]), Err(OtpError::SecretLength(0)));
        assert_eq!(
            check_secret(&[0u8; MAX_SECRET_LEN + 1]),
            Err(OtpError::SecretLength(MAX_SECRET_LEN + 1))
        );
        assert_eq!(dynamic_truncate(&[]), Err(OtpError::MacTooShort));
        assert_eq!(dynamic_truncate(&[0x0f; 16]), Err(OtpError::MacTooShort));
    }

    #[test]
    fn code_formatting() {
        assert_eq!(format_code(7, 6), "000007");
        assert_eq!(format_code(1_234_567_890, 6), "567890");
        assert_eq!(format_code(2_147_483_647, 10), "2147483647");
        assert!(well_formed_code("012345", 6));
        assert!(!well_formed_code("01234", 6));
        assert!(!well_formed_code("01234a", 6));
        assert!(!well_formed_code("٠١٢٣٤٥", 6));
    }
}

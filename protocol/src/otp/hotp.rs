//! HOTP (RFC 4226): `HOTP(K, C) = Truncate(HMAC(K, C)) mod 10^digits`, with
//! the counter `C` as 8 big-endian bytes and SHA-1, SHA-256 or SHA-512.

use zeroize::Zeroizing;

use super::{
    HmacAlgorithm, MAX_LOOK_AHEAD, OtpError, check_digits, check_secret, ct_find, dynamic_truncate,
    format_code, well_formed_code,
};
use crate::crypto::hmac;

/// HOTP parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HotpParams {
    /// HMAC hash (SHA-1 in RFC 4226; SHA-256/512 as most authenticators allow).
    pub algorithm: HmacAlgorithm,
    /// Code length: 6..=8.
    pub digits: u8,
}

impl HotpParams {
    /// Validated parameters.
    pub fn new(algorithm: HmacAlgorithm, digits: u8) -> Result<Self, OtpError> {
        check_digits(digits)?;
        Ok(Self { algorithm, digits })
    }
}

impl Default for HotpParams {
    /// RFC 4226 defaults: SHA-1, 6 digits.
    fn default() -> Self {
        Self {
            algorithm: HmacAlgorithm::Sha1,
            digits: 6,
        }
    }
}

/// Raw HOTP value (before `mod 10^digits`); shared with the TOTP verify.
pub(crate) fn hotp_value(
    algorithm: HmacAlgorithm,
    secret: &[u8],
    counter: u64,
) -> Result<u32, OtpError> {
    let mac = Zeroizing::new(hmac(algorithm, secret, &counter.to_be_bytes()));
    dynamic_truncate(&mac)
}

/// The HOTP code for `counter`.
pub fn hotp(params: &HotpParams, secret: &[u8], counter: u64) -> Result<String, OtpError> {
    check_digits(params.digits)?;
    check_secret(secret)?;
    let value = hotp_value(params.algorithm, secret, counter)?;
    Ok(format_code(u64::from(value), params.digits))
}

/// Verifies a HOTP code against counters `counter ..= counter + look_ahead`
/// (RFC 4226 §7.4) and returns the counter that matched.
///
/// On a match the server stores `matched + 1` as the next expected counter, so
/// the code cannot be replayed. A code of the wrong shape (length, non-digits)
/// is `Ok(None)`. The window stops at `u64::MAX`. The whole window is computed
/// and compared in constant time.
pub fn hotp_verify(
    params: &HotpParams,
    secret: &[u8],
    code: &str,
    counter: u64,
    look_ahead: u32,
) -> Result<Option<u64>, OtpError> {
    check_digits(params.digits)?;
    check_secret(secret)?;
    if look_ahead > MAX_LOOK_AHEAD {
        return Err(OtpError::LookAheadTooLarge(look_ahead));
    }
    if !well_formed_code(code, params.digits) {
        return Ok(None);
    }
    let last = counter.saturating_add(u64::from(look_ahead));
    ct_find(code, counter..=last, |c| hotp(params, secret, c).map(Some))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_KEY: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc4226_first_values() {
        let p = HotpParams::default();
        assert_eq!(hotp(&p, RFC_KEY, 0).unwrap(), "755224");
        assert_eq!(hotp(&p, RFC_KEY, 9).unwrap(), "520489");
    }

    #[test]
    fn verify_window_returns_matched_counter() {
        let p = HotpParams::default();
        // counter 7 -> 162583 (RFC 4226 Appendix D)
        assert_eq!(hotp_verify(&p, RFC_KEY, "162583", 5, 2).unwrap(), Some(7));
        assert_eq!(hotp_verify(&p, RFC_KEY, "162583", 5, 1).unwrap(), None);
        assert_eq!(hotp_verify(&p, RFC_KEY, "162583", 8, 10).unwrap(), None);
        assert_eq!(hotp_verify(&p, RFC_KEY, "162583", 7, 0).unwrap(), Some(7));
        assert_eq!(hotp_verify(&p, RFC_KEY, "16258", 7, 0).unwrap(), None);
        assert_eq!(hotp_verify(&p, RFC_KEY, "16258x", 7, 0).unwrap(), None);
        // The window ends at u64::MAX instead of wrapping.
        let top = hotp(&p, RFC_KEY, u64::MAX).unwrap();
        assert_eq!(
            hotp_verify(&p, RFC_KEY, &top, u64::MAX - 1, 1000).unwrap(),
            Some(u64::MAX)
        );
    }

    #[test]
    fn errors() {
        let bad = HotpParams {
            algorithm: HmacAlgorithm::Sha1,
            digits: 9,
        };
        assert_eq!(hotp(&bad, RFC_KEY, 0), Err(OtpError::InvalidDigits(9)));
        assert_eq!(
            HotpParams::new(HmacAlgorithm::Sha256, 5),
            Err(OtpError::InvalidDigits(5))
        );
        let p = HotpParams::default();
        assert_eq!(hotp(&p, b"", 0), Err(OtpError::SecretLength(0)));
        assert_eq!(
            hotp_verify(&p, RFC_KEY, "755224", 0, MAX_LOOK_AHEAD + 1),
            Err(OtpError::LookAheadTooLarge(MAX_LOOK_AHEAD + 1))
        );
        assert_eq!(
            hotp_verify(&bad, RFC_KEY, "755224", 0, 1),
            Err(OtpError::InvalidDigits(9))
        );
    }
}

//! Push OTP: the code an approved push sends back, bound to one challenge.
//!
//! When the user approves a push, the device also computes a one-time code from
//! the account's OTP seed (the same seed as its TOTP/HOTP codes), the
//! transaction id and the SHA-256 of the challenge plaintext. The server (or an
//! RP's login form waiting for an OTP) accepts it exactly like a typed code,
//! but it is worthless for any other transaction or challenge.
//!
//! # Derivation (protocol v1)
//!
//! ```text
//! msg  = "countersign/v1/push-otp"          (23 ASCII bytes, no terminator)
//!        || 0x00
//!        || u16be(len(tx_id))               (2 bytes, big-endian)
//!        || tx_id                           (16..=256 bytes)
//!        || challenge_hash                  (32 bytes: SHA-256 of the challenge plaintext)
//! mac  = HMAC-SHA256(key = seed, msg)       (32 bytes, whatever the account's TOTP hash)
//! off  = mac[31] & 0x0f
//! bin  = u32be(mac[off..off+4]) & 0x7fffffff   (RFC 4226 §5.3 dynamic truncation)
//! code = decimal(bin mod 10^digits), left-padded with '0' to `digits` (6..=8)
//! ```
//!
//! The label and the length prefix keep this input apart from any HOTP/TOTP
//! input (always exactly 8 bytes) and make the `tx_id || challenge_hash` split
//! unambiguous. `tx_id` is the transaction id's bytes exactly as the protocol
//! carries them.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{
    OtpError, check_digits, check_secret, dynamic_truncate, format_code, well_formed_code,
};
use crate::crypto::{HmacAlgorithm, hmac};

/// Domain label at the start of the push OTP MAC input.
pub const PUSH_OTP_LABEL: &[u8] = b"countersign/v1/push-otp";
/// Shortest transaction id, in bytes (128 bits).
pub const MIN_TX_ID_LEN: usize = 16;
/// Longest transaction id, in bytes.
pub const MAX_TX_ID_LEN: usize = 256;

fn push_message(tx_id: &[u8], challenge_hash: &[u8; 32]) -> Result<Vec<u8>, OtpError> {
    if !(MIN_TX_ID_LEN..=MAX_TX_ID_LEN).contains(&tx_id.len()) {
        return Err(OtpError::TxIdLength(tx_id.len()));
    }
    let len = u16::try_from(tx_id.len()).map_err(|_| OtpError::TxIdLength(tx_id.len()))?;
    let mut msg = Vec::with_capacity(PUSH_OTP_LABEL.len() + 3 + tx_id.len() + 32);
    msg.extend_from_slice(PUSH_OTP_LABEL);
    msg.push(0x00);
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(tx_id);
    msg.extend_from_slice(challenge_hash);
    Ok(msg)
}

/// The push OTP for one transaction and challenge (derivation in the module docs).
pub fn push_otp(
    seed: &[u8],
    tx_id: &[u8],
    challenge_hash: &[u8; 32],
    digits: u8,
) -> Result<String, OtpError> {
    check_digits(digits)?;
    check_secret(seed)?;
    let msg = push_message(tx_id, challenge_hash)?;
    let mac = Zeroizing::new(hmac(HmacAlgorithm::Sha256, seed, &msg));
    let value = dynamic_truncate(&mac)?;
    Ok(format_code(u64::from(value), digits))
}

/// Checks a push OTP in constant time. A code of the wrong shape is `Ok(false)`.
pub fn push_otp_verify(
    seed: &[u8],
    tx_id: &[u8],
    challenge_hash: &[u8; 32],
    digits: u8,
    code: &str,
) -> Result<bool, OtpError> {
    let expected = Zeroizing::new(push_otp(seed, tx_id, challenge_hash, digits)?);
    if !well_formed_code(code, digits) {
        return Ok(false);
    }
    Ok(bool::from(expected.as_bytes().ct_eq(code.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::sha256;

    const SEED: &[u8] = b"12345678901234567890";
    const TX: &[u8] = b"0123456789abcdef";

    #[test]
    fn matches_the_written_derivation() {
        let ch = sha256(b"challenge");
        let mut msg = b"countersign/v1/push-otp\x00\x00\x10".to_vec();
        msg.extend_from_slice(TX);
        msg.extend_from_slice(&ch);
        let mac = hmac(HmacAlgorithm::Sha256, SEED, &msg);
        let off = usize::from(mac[31] & 0x0f);
        let bin = u32::from_be_bytes(mac[off..off + 4].try_into().unwrap()) & 0x7fff_ffff;
        for digits in 6..=8u8 {
            let want = format!(
                "{:0w$}",
                bin % 10u32.pow(u32::from(digits)),
                w = usize::from(digits)
            );
            assert_eq!(push_otp(SEED, TX, &ch, digits).unwrap(), want);
        }
    }

    #[test]
    fn bound_to_challenge_and_transaction() {
        let ch = sha256(b"challenge");
        let code = push_otp(SEED, TX, &ch, 8).unwrap();
        assert!(push_otp_verify(SEED, TX, &ch, 8, &code).unwrap());
        assert!(!push_otp_verify(SEED, TX, &sha256(b"other"), 8, &code).unwrap());
        assert!(!push_otp_verify(SEED, b"0123456789abcdeX", &ch, 8, &code).unwrap());
        assert!(!push_otp_verify(SEED, TX, &ch, 8, &code[..7]).unwrap());
        assert!(!push_otp_verify(b"another seed", TX, &ch, 8, &code).unwrap());
    }

    #[test]
    fn errors() {
        let ch = [0u8; 32];
        assert_eq!(
            push_otp(SEED, &[1; 15], &ch, 6),
            Err(OtpError::TxIdLength(15))
        );
        assert_eq!(
            push_otp(SEED, &[1; 257], &ch, 6),
            Err(OtpError::TxIdLength(257))
        );
        assert_eq!(push_otp(SEED, TX, &ch, 5), Err(OtpError::InvalidDigits(5)));
        assert_eq!(push_otp(b"", TX, &ch, 6), Err(OtpError::SecretLength(0)));
        assert!(push_otp(SEED, &[1; 256], &ch, 6).is_ok());
        assert_eq!(
            push_otp_verify(SEED, TX, &ch, 9, "123456789"),
            Err(OtpError::InvalidDigits(9))
        );
    }
}

//! Small helpers: time, random ids, encodings.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use countersign_protocol::crypto::random_array;

use crate::error::{ApiError, ApiResult};

/// Unix seconds.
pub fn now() -> i64 {
    crate::push::unix_now()
}

/// Unix seconds as the protocol's `u64`.
pub fn now_u64() -> u64 {
    u64::try_from(now()).unwrap_or(0)
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding.
pub fn unb64(text: &str) -> ApiResult<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| ApiError::internal("stored value: bad base64url"))
}

/// A random id `prefix` + 16 base64url characters (96 bits): valid as a protocol id.
pub fn random_id(prefix: &str) -> ApiResult<String> {
    let r: [u8; 12] = random_array().map_err(ApiError::internal)?;
    Ok(format!("{prefix}{}", b64(&r)))
}

/// A uniformly random number below `bound` (rejection sampling).
pub fn random_below(bound: u32) -> ApiResult<u32> {
    if bound == 0 {
        return Err(ApiError::internal("random_below(0)"));
    }
    let zone = u32::MAX - (u32::MAX % bound);
    loop {
        let r = u32::from_be_bytes(random_array().map_err(ApiError::internal)?);
        if r < zone {
            return Ok(r % bound);
        }
    }
}

/// A random decimal string of exactly `digits` digits (leading zeros allowed).
pub fn random_digits(digits: u8) -> ApiResult<String> {
    let mut s = String::with_capacity(usize::from(digits));
    for _ in 0..digits {
        let d = random_below(10)?;
        s.push(char::from_digit(d, 10).unwrap_or('0'));
    }
    Ok(s)
}

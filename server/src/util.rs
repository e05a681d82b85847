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

/// A transaction id for the wire: base64url of 22 bytes, the millisecond clock
/// (6 bytes, big-endian) and then 16 random bytes, so as unguessable as the
/// protocol's 16 random bytes and within its 16–32.
///
/// The time first is for the database: ids made close in time are close in
/// each index keyed by them (a challenge's, its deliveries'), so a commit
/// touches a few hot pages rather than one random page per id, and the index's
/// working set stays small however many logins the database holds. base64url
/// does not preserve byte order, but ids within the same 64 ms share their
/// first seven characters, which is what keeps them together.
pub fn tx_id() -> ApiResult<String> {
    time_ordered(random_array::<16>().map_err(ApiError::internal)?).map(|id| b64(&id))
}

/// [`random_id`] with the millisecond clock first, for ids only the server
/// keys by (audit records): `prefix` + 24 base64url characters (6 bytes of
/// time, 12 random bytes). Why the time comes first: [`tx_id`].
pub fn time_ordered_id(prefix: &str) -> ApiResult<String> {
    let id = time_ordered(random_array::<12>().map_err(ApiError::internal)?)?;
    Ok(format!("{prefix}{}", b64(&id)))
}

/// `random` after the low 48 bits of the Unix clock in milliseconds.
fn time_ordered<const N: usize>(random: [u8; N]) -> ApiResult<Vec<u8>> {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(ApiError::internal)?
        .as_millis();
    let mut id = Vec::with_capacity(6 + N);
    id.extend_from_slice(&millis.to_be_bytes()[10..]);
    id.extend_from_slice(&random);
    Ok(id)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn millis_now() -> u64 {
        u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap()
    }

    /// The clock part of an id's bytes.
    fn millis_of(id: &[u8]) -> u64 {
        let mut be = [0u8; 8];
        be[2..].copy_from_slice(&id[..6]);
        u64::from_be_bytes(be)
    }

    #[test]
    fn tx_ids_are_protocol_ids_with_the_clock_first() {
        let before = millis_now() & 0xffff_ffff_ffff;
        let a = unb64(&tx_id().unwrap()).unwrap();
        let b = unb64(&tx_id().unwrap()).unwrap();
        let after = millis_now() & 0xffff_ffff_ffff;
        // Within the protocol's 16–32 bytes, with 16 random bytes after the clock.
        assert_eq!(a.len(), 22);
        assert!(
            (countersign_protocol::limits::MIN_RANDOM_ID_BYTES
                ..=countersign_protocol::limits::MAX_RANDOM_ID_BYTES)
                .contains(&a.len())
        );
        for id in [&a, &b] {
            assert!(
                (before..=after).contains(&millis_of(id)),
                "{before} {} {after}",
                millis_of(id)
            );
        }
        assert_ne!(a[6..], b[6..], "the random part differs");
    }

    #[test]
    fn time_ordered_ids_keep_their_prefix_and_clock() {
        let before = millis_now() & 0xffff_ffff_ffff;
        let id = time_ordered_id("au_").unwrap();
        let rest = id.strip_prefix("au_").unwrap();
        assert_eq!(rest.len(), 24);
        let bytes = unb64(rest).unwrap();
        assert!(millis_of(&bytes) >= before);
        assert_ne!(time_ordered_id("au_").unwrap(), id);
    }
}

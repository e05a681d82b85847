//! Hashing and key derivation: SHA-256, HMAC, HKDF-SHA256 and PBKDF2-HMAC-SHA256 (ring).

use std::num::NonZeroU32;

use ring::{digest, hkdf as rhkdf, hmac as rhmac, pbkdf2};
use zeroize::Zeroizing;

use super::{CryptoError, ct_eq};

/// SHA-256 output length in bytes (HKDF-SHA256's `HashLen`).
pub const SHA256_LEN: usize = 32;

/// Largest HKDF-SHA256 output (RFC 5869: `255 * HashLen`).
pub const HKDF_MAX_OUTPUT: usize = 255 * SHA256_LEN;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    // ring's SHA-256 digest is always 32 bytes; copy_from_slice cannot fail here,
    // but zip avoids any panicking path at all.
    for (o, i) in out.iter_mut().zip(d.as_ref()) {
        *o = *i;
    }
    out
}

/// Hash function under HMAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HmacAlgorithm {
    /// HMAC-SHA1: only for HOTP/TOTP/OCRA interoperability (RFC 4226/6238/6287).
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl HmacAlgorithm {
    /// Full tag length in bytes.
    pub const fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    /// Shortest tag [`hmac_verify`] accepts: half the output, and never fewer
    /// than 80 bits (RFC 2104 §5).
    pub const fn min_tag_len(self) -> usize {
        let half = self.output_len() / 2;
        if half < 10 { 10 } else { half }
    }

    fn ring(self) -> rhmac::Algorithm {
        match self {
            Self::Sha1 => rhmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => rhmac::HMAC_SHA256,
            Self::Sha512 => rhmac::HMAC_SHA512,
        }
    }
}

/// HMAC of `msg` under `key`; the full tag (20, 32 or 64 bytes).
pub fn hmac(alg: HmacAlgorithm, key: &[u8], msg: &[u8]) -> Vec<u8> {
    let key = rhmac::Key::new(alg.ring(), key);
    rhmac::sign(&key, msg).as_ref().to_vec()
}

/// Checks an HMAC tag in constant time.
///
/// Accepts the full tag or a left-truncated one (the tag's first bytes, as
/// RFC 2104 §5 describes) no shorter than [`HmacAlgorithm::min_tag_len`]:
/// 10 bytes for SHA-1, 16 for SHA-256, 32 for SHA-512. Anything shorter or
/// longer is rejected. Only the tag length can leak through timing.
pub fn hmac_verify(alg: HmacAlgorithm, key: &[u8], msg: &[u8], tag: &[u8]) -> bool {
    if tag.len() < alg.min_tag_len() || tag.len() > alg.output_len() {
        return false;
    }
    let expected = Zeroizing::new(hmac(alg, key, msg));
    match expected.get(..tag.len()) {
        Some(prefix) => ct_eq(prefix, tag),
        None => false,
    }
}

/// HKDF-Extract with SHA-256 (RFC 5869): `PRK = HMAC-SHA256(salt, ikm)`.
///
/// An empty salt is the same as `HashLen` zero bytes, as RFC 5869 specifies.
pub fn hkdf_extract(salt: &[u8], ikm: &[u8]) -> Zeroizing<[u8; 32]> {
    let key = rhmac::Key::new(rhmac::HMAC_SHA256, salt);
    let tag = rhmac::sign(&key, ikm);
    let mut prk = Zeroizing::new([0u8; 32]);
    for (o, i) in prk.iter_mut().zip(tag.as_ref()) {
        *o = *i;
    }
    prk
}

/// Output length wrapper so ring's HKDF can fill a caller-sized buffer.
struct OutLen(usize);

impl rhkdf::KeyType for OutLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand with SHA-256 (RFC 5869), filling all of `out`.
///
/// `info` is given as parts that are concatenated (saves allocations for
/// HPKE's labelled expansion).
pub(crate) fn hkdf_expand_parts(
    prk: &[u8],
    info: &[&[u8]],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    if out.len() > HKDF_MAX_OUTPUT {
        return Err(CryptoError::InvalidLength);
    }
    let prk = rhkdf::Prk::new_less_safe(rhkdf::HKDF_SHA256, prk);
    let okm = prk
        .expand(info, OutLen(out.len()))
        .map_err(|_| CryptoError::InvalidLength)?;
    okm.fill(out).map_err(|_| CryptoError::InvalidLength)
}

/// HKDF-Expand with SHA-256 (RFC 5869), filling all of `out`.
///
/// Fails with [`CryptoError::InvalidLength`] when `out` is longer than
/// `255 * 32` bytes.
pub fn hkdf_expand(prk: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), CryptoError> {
    hkdf_expand_parts(prk, &[info], out)
}

/// HKDF-SHA256 extract-then-expand (RFC 5869), filling all of `out`.
///
/// Fails with [`CryptoError::InvalidLength`] when `out` is longer than
/// `255 * 32` bytes.
pub fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), CryptoError> {
    if out.len() > HKDF_MAX_OUTPUT {
        return Err(CryptoError::InvalidLength);
    }
    let prk = hkdf_extract(salt, ikm);
    hkdf_expand(prk.as_ref(), info, out)
}

/// PBKDF2-HMAC-SHA256 (RFC 8018), filling all of `out`.
///
/// Fails with [`CryptoError::InvalidLength`] when `iterations` is zero or
/// `out` is empty or longer than `(2^32 - 1) * 32` bytes.
pub fn pbkdf2_hmac_sha256(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let iterations = NonZeroU32::new(iterations).ok_or(CryptoError::InvalidLength)?;
    let max = (u32::MAX as u64).saturating_mul(SHA256_LEN as u64);
    if out.is_empty() || out.len() as u64 > max {
        return Err(CryptoError::InvalidLength);
    }
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iterations, salt, password, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_abc() {
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hmac_rfc4231_case2() {
        let tag = hmac(
            HmacAlgorithm::Sha256,
            b"Jefe",
            b"what do ya want for nothing?",
        );
        assert_eq!(
            hex::encode(&tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(hmac_verify(
            HmacAlgorithm::Sha256,
            b"Jefe",
            b"what do ya want for nothing?",
            &tag
        ));
        assert!(hmac_verify(
            HmacAlgorithm::Sha256,
            b"Jefe",
            b"what do ya want for nothing?",
            &tag[..16]
        ));
        assert!(!hmac_verify(
            HmacAlgorithm::Sha256,
            b"Jefe",
            b"what do ya want for nothing?",
            &tag[..15]
        ));
        assert!(!hmac_verify(
            HmacAlgorithm::Sha256,
            b"Jefe",
            b"what do ya want for nothing!",
            &tag
        ));
        assert!(!hmac_verify(
            HmacAlgorithm::Sha256,
            b"Jefe",
            b"what do ya want for nothing?",
            &[]
        ));
    }

    #[test]
    fn hkdf_rfc5869_case1_and_bound() {
        let ikm = [0x0bu8; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let prk = hkdf_extract(&salt, &ikm);
        assert_eq!(
            hex::encode(prk.as_ref()),
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
        );
        let mut okm = [0u8; 42];
        hkdf(&salt, &ikm, &info, &mut okm).unwrap();
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
        let mut max = vec![0u8; HKDF_MAX_OUTPUT];
        hkdf_expand(prk.as_ref(), b"", &mut max).unwrap();
        let mut too_long = vec![0u8; HKDF_MAX_OUTPUT + 1];
        assert_eq!(
            hkdf_expand(prk.as_ref(), b"", &mut too_long),
            Err(CryptoError::InvalidLength)
        );
        assert_eq!(
            hkdf(&salt, &ikm, b"", &mut too_long),
            Err(CryptoError::InvalidLength)
        );
    }

    #[test]
    fn pbkdf2_bounds() {
        let mut out = [0u8; 32];
        assert_eq!(
            pbkdf2_hmac_sha256(b"p", b"s", 0, &mut out),
            Err(CryptoError::InvalidLength)
        );
        assert_eq!(
            pbkdf2_hmac_sha256(b"p", b"s", 1, &mut []),
            Err(CryptoError::InvalidLength)
        );
        pbkdf2_hmac_sha256(b"password", b"salt", 1, &mut out).unwrap();
        assert_eq!(
            hex::encode(out),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"
        );
    }
}

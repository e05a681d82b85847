//! Randomness from the operating system (via ring's `SystemRandom`).

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use zeroize::Zeroizing;

use super::{CryptoError, SEC1_UNCOMPRESSED_LEN};

/// The start of ring's P-256 PKCS#8 v1 document, up to the private scalar:
/// SEQUENCE { version 0, AlgorithmIdentifier { id-ecPublicKey, prime256v1 },
/// OCTET STRING { ECPrivateKey { version 1, OCTET STRING (32 bytes) ...
const PKCS8_PREFIX: [u8; 36] = [
    0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
    0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30, 0x6b, 0x02,
    0x01, 0x01, 0x04, 0x20,
];
/// Between the scalar and the public key: `[1] { BIT STRING (66 bytes) }`.
const PKCS8_MIDDLE: [u8; 5] = [0xa1, 0x44, 0x03, 0x42, 0x00];
/// The whole document: prefix, scalar, middle, uncompressed point.
const PKCS8_LEN: usize = PKCS8_PREFIX.len() + 32 + PKCS8_MIDDLE.len() + SEC1_UNCOMPRESSED_LEN;

/// A fresh random P-256 key pair from ring: the scalar in `[1, n-1]` (zeroized
/// on drop) and the uncompressed public point (not yet validated by the caller).
///
/// ring's key generation (rejection sampling from the OS RNG, then a base-point
/// multiplication) is several times faster than p256's, and the device makes a
/// new KEM key on every answer. ring hands the pair out only as its fixed
/// PKCS#8 template, so the layout is checked byte for byte.
pub(crate) fn generate_p256()
-> Result<(Zeroizing<[u8; 32]>, [u8; SEC1_UNCOMPRESSED_LEN]), CryptoError> {
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map_err(|_| CryptoError::Rng)?;
    let bytes = Zeroizing::new(doc.as_ref().to_vec());
    if bytes.len() != PKCS8_LEN {
        return Err(CryptoError::InvalidKey);
    }
    let (prefix, rest) = bytes.split_at(PKCS8_PREFIX.len());
    let (scalar, rest) = rest.split_at(32);
    let (middle, point) = rest.split_at(PKCS8_MIDDLE.len());
    if prefix != PKCS8_PREFIX || middle != PKCS8_MIDDLE {
        return Err(CryptoError::InvalidKey);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(scalar);
    let public: [u8; SEC1_UNCOMPRESSED_LEN] =
        point.try_into().map_err(|_| CryptoError::InvalidKey)?;
    Ok((out, public))
}

/// Fills `out` with cryptographically secure random bytes from the OS.
pub fn random_bytes(out: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new().fill(out).map_err(|_| CryptoError::Rng)
}

/// Returns `N` cryptographically secure random bytes from the OS.
pub fn random_array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    random_bytes(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_differs() {
        let a: [u8; 32] = random_array().unwrap();
        let b: [u8; 32] = random_array().unwrap();
        assert_ne!(a, b);
        let mut empty = [0u8; 0];
        random_bytes(&mut empty).unwrap();
    }
}

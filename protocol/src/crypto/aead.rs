//! AES-GCM with 96-bit nonces and 128-bit tags (ring).

use ring::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

use super::CryptoError;

/// AES-GCM tag length in bytes (appended to every ciphertext).
pub const AES_GCM_TAG_LEN: usize = 16;

/// AES-GCM nonce length in bytes.
pub const AES_GCM_NONCE_LEN: usize = 12;

fn key_for(key: &[u8]) -> Result<LessSafeKey, CryptoError> {
    // Only AES-128 and AES-256: ring has no AES-192, and the protocol needs neither more.
    let alg = match key.len() {
        16 => &AES_128_GCM,
        32 => &AES_256_GCM,
        _ => return Err(CryptoError::InvalidKey),
    };
    let unbound = UnboundKey::new(alg, key).map_err(|_| CryptoError::InvalidKey)?;
    Ok(LessSafeKey::new(unbound))
}

/// Encrypts `plaintext` with AES-GCM; returns `ciphertext || 16-byte tag`.
///
/// `key` is 16 bytes (AES-128) or 32 bytes (AES-256), else
/// [`CryptoError::InvalidKey`]. The caller guarantees the nonce is never
/// reused under the same key.
pub fn aes_gcm_seal(
    key: &[u8],
    nonce: &[u8; 12],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let key = key_for(key)?;
    let mut buf = Vec::with_capacity(plaintext.len().saturating_add(AES_GCM_TAG_LEN));
    buf.extend_from_slice(plaintext);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(*nonce),
        Aad::from(aad),
        &mut buf,
    )
    .map_err(|_| CryptoError::InvalidLength)?;
    Ok(buf)
}

/// Decrypts and authenticates `ciphertext || tag` with AES-GCM.
///
/// Fails with [`CryptoError::InvalidKey`] for a key that is not 16 or 32
/// bytes, and with [`CryptoError::Decrypt`] for anything else (too short,
/// wrong key, nonce or associated data, tampering). No plaintext is released
/// on failure; the returned plaintext is zeroized on drop.
pub fn aes_gcm_open(
    key: &[u8],
    nonce: &[u8; 12],
    aad: &[u8],
    ciphertext_and_tag: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let key = key_for(key)?;
    if ciphertext_and_tag.len() < AES_GCM_TAG_LEN {
        return Err(CryptoError::Decrypt);
    }
    // The working buffer is zeroized on drop whatever happens.
    let mut buf = Zeroizing::new(ciphertext_and_tag.to_vec());
    let len = key
        .open_in_place(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            buf.as_mut_slice(),
        )
        .map_err(|_| CryptoError::Decrypt)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        for key_len in [16usize, 32] {
            let key = vec![7u8; key_len];
            let nonce = [1u8; 12];
            let ct = aes_gcm_seal(&key, &nonce, b"aad", b"hello").unwrap();
            assert_eq!(ct.len(), 5 + AES_GCM_TAG_LEN);
            assert_eq!(
                aes_gcm_open(&key, &nonce, b"aad", &ct).unwrap().as_slice(),
                b"hello"
            );
            assert_eq!(
                aes_gcm_open(&key, &nonce, b"aaD", &ct),
                Err(CryptoError::Decrypt)
            );
            let mut bad = ct.clone();
            bad[0] ^= 1;
            assert_eq!(
                aes_gcm_open(&key, &nonce, b"aad", &bad),
                Err(CryptoError::Decrypt)
            );
            assert_eq!(
                aes_gcm_open(&key, &nonce, b"aad", &ct[..15]),
                Err(CryptoError::Decrypt)
            );
        }
    }

    #[test]
    fn key_length_errors() {
        let nonce = [0u8; 12];
        for len in [0usize, 15, 17, 24, 31, 33] {
            let key = vec![0u8; len];
            assert_eq!(
                aes_gcm_seal(&key, &nonce, b"", b"x"),
                Err(CryptoError::InvalidKey)
            );
            assert_eq!(
                aes_gcm_open(&key, &nonce, b"", &[0u8; 17]),
                Err(CryptoError::InvalidKey)
            );
        }
    }
}

//! ECDSA P-256 / SHA-256 signing keys: ring for the fast randomised path,
//! p256 for RFC 6979 deterministic signatures.

use std::fmt;
use std::sync::OnceLock;

use p256::ecdsa::signature::Signer as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use zeroize::Zeroizing;

use super::random::generate_p256;
use super::{CryptoError, PublicKey, Signature};

/// An ECDSA P-256 private key.
///
/// The scalar is kept zeroizing (and by p256's key, zeroized on drop, once
/// deterministic signing needed it); the ring key pair is parsed once and
/// cached, so [`sign`](Self::sign) does not re-parse. `Debug` shows only the
/// public key.
pub struct SigningKey {
    ring: EcdsaKeyPair,
    scalar: Zeroizing<[u8; 32]>,
    /// p256's key (its construction costs a base-point multiplication): made
    /// by [`Self::from_bytes`], or on the first deterministic signature.
    p256: OnceLock<p256::ecdsa::SigningKey>,
    public: PublicKey,
}

impl SigningKey {
    /// Generates a key from the OS random number generator (ring's key
    /// generation: one fast base-point multiplication, which ring checks again
    /// when it loads the pair).
    pub fn generate() -> Result<Self, CryptoError> {
        let (scalar, point) = generate_p256()?;
        let public = PublicKey::from_sec1(&point)?;
        let ring = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            scalar.as_ref(),
            &point,
            &SystemRandom::new(),
        )
        .map_err(|_| CryptoError::InvalidKey)?;
        Ok(Self {
            ring,
            scalar,
            p256: OnceLock::new(),
            public,
        })
    }

    /// Loads a 32-byte big-endian scalar in `[1, n-1]`.
    pub fn from_bytes(scalar: &[u8]) -> Result<Self, CryptoError> {
        if scalar.len() != 32 {
            return Err(CryptoError::InvalidKey);
        }
        let p256 =
            p256::ecdsa::SigningKey::from_slice(scalar).map_err(|_| CryptoError::InvalidKey)?;
        let public = PublicKey::from_p256(&p256::PublicKey::from(p256.verifying_key()))?;
        let ring = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            scalar,
            &public.to_sec1(),
            &SystemRandom::new(),
        )
        .map_err(|_| CryptoError::InvalidKey)?;
        let mut stored = Zeroizing::new([0u8; 32]);
        stored.copy_from_slice(scalar);
        Ok(Self {
            ring,
            scalar: stored,
            p256: OnceLock::from(p256),
            public,
        })
    }

    /// The 32-byte big-endian scalar (zeroized on drop).
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.scalar.clone()
    }

    /// p256's key, made on first use.
    fn p256(&self) -> Result<&p256::ecdsa::SigningKey, CryptoError> {
        if let Some(key) = self.p256.get() {
            return Ok(key);
        }
        let key = p256::ecdsa::SigningKey::from_slice(self.scalar.as_ref())
            .map_err(|_| CryptoError::InvalidKey)?;
        // Another thread may have set it first: same scalar, same key.
        Ok(self.p256.get_or_init(|| key))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    /// Signs `msg` (ECDSA P-256 / SHA-256, ring, random nonce). The hot path.
    pub fn sign(&self, msg: &[u8]) -> Result<Signature, CryptoError> {
        let sig = self
            .ring
            .sign(&SystemRandom::new(), msg)
            .map_err(|_| CryptoError::Rng)?;
        Signature::from_raw(sig.as_ref())
    }

    /// Signs `msg` with an RFC 6979 deterministic nonce (p256): the same key
    /// and message always give the same signature, for published vectors.
    pub fn sign_deterministic(&self, msg: &[u8]) -> Result<Signature, CryptoError> {
        let sig: p256::ecdsa::Signature = self
            .p256()?
            .try_sign(msg)
            .map_err(|_| CryptoError::InvalidKey)?;
        Signature::from_raw(&sig.to_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public.key_id())
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6979 A.2.5 (P-256, SHA-256).
    const X: &str = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";

    #[test]
    fn generated_keys_are_consistent() {
        for _ in 0..16 {
            let key = SigningKey::generate().unwrap();
            let again = SigningKey::from_bytes(key.to_bytes().as_ref()).unwrap();
            assert_eq!(again.public_key(), key.public_key());
            let sig = key.sign(b"m").unwrap();
            key.public_key().verify(b"m", &sig).unwrap();
            // p256's key is made on demand and agrees with a loaded one.
            assert_eq!(
                key.sign_deterministic(b"m").unwrap(),
                again.sign_deterministic(b"m").unwrap()
            );
        }
    }

    #[test]
    fn rfc6979_known_answer_and_ring_verifies() {
        let key = SigningKey::from_bytes(&hex::decode(X).unwrap()).unwrap();
        let sig = key.sign_deterministic(b"sample").unwrap();
        assert_eq!(
            hex::encode(sig.as_bytes()),
            "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716\
             f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"
        );
        key.public_key().verify(b"sample", &sig).unwrap();
        assert_eq!(key.sign_deterministic(b"sample").unwrap(), sig);
        assert_eq!(hex::encode(key.to_bytes().as_ref()), X);
    }

    #[test]
    fn sign_verify_round_trip_and_tamper() {
        let key = SigningKey::generate().unwrap();
        let public = key.public_key();
        let sig = key.sign(b"countersign/v1/answer payload").unwrap();
        public
            .verify(b"countersign/v1/answer payload", &sig)
            .unwrap();
        assert_ne!(
            key.sign(b"countersign/v1/answer payload").unwrap(),
            sig,
            "random nonce"
        );
        assert_eq!(
            public.verify(b"countersign/v1/answer payloaD", &sig),
            Err(CryptoError::BadSignature)
        );
        let mut raw = *sig.as_bytes();
        raw[63] ^= 1;
        if let Ok(bad) = Signature::from_raw(&raw) {
            assert_eq!(
                public.verify(b"countersign/v1/answer payload", &bad),
                Err(CryptoError::BadSignature)
            );
        }
        let other = SigningKey::generate().unwrap().public_key();
        assert_eq!(
            other.verify(b"countersign/v1/answer payload", &sig),
            Err(CryptoError::BadSignature)
        );
        let reloaded = SigningKey::from_bytes(key.to_bytes().as_ref()).unwrap();
        assert_eq!(reloaded.public_key(), public);
    }

    #[test]
    fn rejects_bad_scalars_and_redacts() {
        assert_eq!(
            SigningKey::from_bytes(&[0u8; 32]).err(),
            Some(CryptoError::InvalidKey)
        );
        assert_eq!(
            SigningKey::from_bytes(&[0xffu8; 32]).err(),
            Some(CryptoError::InvalidKey)
        );
        assert_eq!(
            SigningKey::from_bytes(&[1u8; 31]).err(),
            Some(CryptoError::InvalidKey)
        );
        let key = SigningKey::from_bytes(&hex::decode(X).unwrap()).unwrap();
        let dbg = format!("{key:?}");
        assert!(!dbg.to_lowercase().contains(&X[..16]) && dbg.contains("redacted"));
    }
}

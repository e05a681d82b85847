//! Static ECDH P-256 keys (p256: ring cannot load a static agreement key).

use std::fmt;

use zeroize::{Zeroize as _, Zeroizing};

use super::random::generate_p256;
use super::{CryptoError, PublicKey};

/// A static ECDH P-256 private key (e.g. the device's HPKE key K).
///
/// Zeroized on drop (p256's `SecretKey`); `Debug` shows only the public key.
pub struct AgreementKey {
    secret: p256::SecretKey,
    public: PublicKey,
}

impl AgreementKey {
    /// Generates a key from the OS random number generator (ring's key
    /// generation: one fast base-point multiplication; the point is then
    /// validated like any other public key).
    pub fn generate() -> Result<Self, CryptoError> {
        let (scalar, point) = generate_p256()?;
        let secret =
            p256::SecretKey::from_slice(scalar.as_ref()).map_err(|_| CryptoError::InvalidKey)?;
        let public = PublicKey::from_sec1(&point)?;
        Ok(Self { secret, public })
    }

    /// Loads a 32-byte big-endian scalar in `[1, n-1]`.
    pub fn from_bytes(scalar: &[u8]) -> Result<Self, CryptoError> {
        if scalar.len() != 32 {
            return Err(CryptoError::InvalidKey);
        }
        let secret = p256::SecretKey::from_slice(scalar).map_err(|_| CryptoError::InvalidKey)?;
        let public = PublicKey::from_p256(&secret.public_key())?;
        Ok(Self { secret, public })
    }

    /// The 32-byte big-endian scalar (zeroized on drop).
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut bytes = self.secret.to_bytes();
        let mut out = Zeroizing::new([0u8; 32]);
        for (o, i) in out.iter_mut().zip(bytes.iter()) {
            *o = *i;
        }
        bytes.zeroize();
        out
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    /// ECDH: the x-coordinate of `self * peer` (32 bytes, zeroized on drop).
    pub fn diffie_hellman(&self, peer: &PublicKey) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        let peer = peer.to_p256()?;
        // Both the scalar (non-zero, below n) and the point (validated, on a
        // prime-order curve) are valid, so the product is never the identity.
        let shared = p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), peer.as_affine());
        let mut out = Zeroizing::new([0u8; 32]);
        for (o, i) in out.iter_mut().zip(shared.raw_secret_bytes().iter()) {
            *o = *i;
        }
        Ok(out)
    }
}

/// An ECDH P-256 private key seen only through what it can do: its public key
/// and Diffie-Hellman with a peer. The HPKE receiver ([`super::hpke::open`],
/// [`super::hpke::setup_base_receiver`]) and everything built on it take this,
/// so the private key may live where its bytes cannot be read: a platform
/// keystore (StrongBox, the Secure Enclave) that only performs the agreement.
///
/// [`AgreementKey`] implements it with a software scalar.
pub trait KeyAgreement {
    /// The matching public key (HPKE's `pkR`, which DHKEM binds into the
    /// shared secret: it must be the key [`Self::diffie_hellman`] uses).
    fn public_key(&self) -> PublicKey;

    /// ECDH: the x-coordinate of `self * peer` (32 bytes, zeroized on drop).
    /// `peer` is a validated point on P-256.
    fn diffie_hellman(&self, peer: &PublicKey) -> Result<Zeroizing<[u8; 32]>, CryptoError>;
}

impl KeyAgreement for AgreementKey {
    fn public_key(&self) -> PublicKey {
        AgreementKey::public_key(self)
    }

    fn diffie_hellman(&self, peer: &PublicKey) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        AgreementKey::diffie_hellman(self, peer)
    }
}

impl fmt::Debug for AgreementKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgreementKey")
            .field("public", &self.public.key_id())
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_is_symmetric() {
        let a = AgreementKey::generate().unwrap();
        let b = AgreementKey::generate().unwrap();
        let ab = a.diffie_hellman(&b.public_key()).unwrap();
        let ba = b.diffie_hellman(&a.public_key()).unwrap();
        assert_eq!(*ab, *ba);
        let a2 = AgreementKey::from_bytes(a.to_bytes().as_ref()).unwrap();
        assert_eq!(a2.public_key(), a.public_key());
        // ring's generated pair: the public key is the scalar's (p256 agrees).
        for _ in 0..16 {
            let k = AgreementKey::generate().unwrap();
            let again = AgreementKey::from_bytes(k.to_bytes().as_ref()).unwrap();
            assert_eq!(again.public_key(), k.public_key());
        }
        assert!(format!("{a:?}").contains("redacted"));
        assert_eq!(
            AgreementKey::from_bytes(&[0u8; 32]).err(),
            Some(CryptoError::InvalidKey)
        );
    }
}

//! P-256 public keys and ECDSA signatures: validation, encodings, verification.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::pkcs8::DecodePublicKey as _;
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

use super::{CryptoError, sha256};

/// Length of an uncompressed SEC1 P-256 point: `0x04 || X || Y`.
pub const SEC1_UNCOMPRESSED_LEN: usize = 65;

/// The fixed DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed
/// point: SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (66 bytes) }.
const SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Length of the canonical SPKI DER of a P-256 key (26-byte prefix + 65-byte point).
pub const SPKI_DER_LEN: usize = SPKI_PREFIX.len() + SEC1_UNCOMPRESSED_LEN;

/// A validated P-256 public key: a point on the curve, never the identity.
///
/// Only the uncompressed encoding is accepted and produced, so a key has
/// exactly one byte representation (and one fingerprint).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PublicKey {
    sec1: [u8; SEC1_UNCOMPRESSED_LEN],
}

impl PublicKey {
    /// Parses a 65-byte uncompressed SEC1 point (`0x04 || X || Y`).
    ///
    /// Rejects compressed points, coordinates `>= p` and points not on the curve.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, CryptoError> {
        let sec1: [u8; SEC1_UNCOMPRESSED_LEN] =
            bytes.try_into().map_err(|_| CryptoError::InvalidKey)?;
        if sec1[0] != 0x04 {
            return Err(CryptoError::InvalidKey);
        }
        // p256 checks the coordinates are field elements and the point is on the curve.
        p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| CryptoError::InvalidKey)?;
        Ok(Self { sec1 })
    }

    /// Builds a key from a point p256 already validated.
    pub(crate) fn from_p256(key: &p256::PublicKey) -> Result<Self, CryptoError> {
        use p256::elliptic_curve::sec1::ToEncodedPoint as _;
        let point = key.to_encoded_point(false);
        let sec1: [u8; SEC1_UNCOMPRESSED_LEN] = point
            .as_bytes()
            .try_into()
            .map_err(|_| CryptoError::InvalidKey)?;
        Ok(Self { sec1 })
    }

    /// The key as a p256 point (for ECDH).
    pub(crate) fn to_p256(&self) -> Result<p256::PublicKey, CryptoError> {
        p256::PublicKey::from_sec1_bytes(&self.sec1).map_err(|_| CryptoError::InvalidKey)
    }

    /// Parses a DER SubjectPublicKeyInfo (RFC 5480).
    ///
    /// Only the canonical encoding is accepted: algorithm id-ecPublicKey with
    /// the named curve prime256v1 and an uncompressed point, in strict DER.
    /// Explicit curve parameters, compressed points, BER and trailing bytes
    /// are rejected, so a key has exactly one SPKI (its fingerprint is stable).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CryptoError> {
        // p256 validates the ASN.1 structure, the OIDs and the point.
        let parsed =
            p256::PublicKey::from_public_key_der(der).map_err(|_| CryptoError::InvalidKey)?;
        let key = Self::from_p256(&parsed)?;
        if der != key.to_spki_der().as_slice() {
            return Err(CryptoError::InvalidKey);
        }
        Ok(key)
    }

    /// The 65-byte uncompressed SEC1 encoding.
    pub fn to_sec1(&self) -> [u8; 65] {
        self.sec1
    }

    /// The canonical DER SubjectPublicKeyInfo (91 bytes).
    pub fn to_spki_der(&self) -> Vec<u8> {
        let mut der = Vec::with_capacity(SPKI_DER_LEN);
        der.extend_from_slice(&SPKI_PREFIX);
        der.extend_from_slice(&self.sec1);
        der
    }

    /// SHA-256 of the canonical SPKI DER: what apps pin.
    pub fn fingerprint(&self) -> [u8; 32] {
        sha256(&self.to_spki_der())
    }

    /// Short key identifier: base64url (no padding) of the first 16 bytes of
    /// the [fingerprint](Self::fingerprint) (22 characters).
    pub fn key_id(&self) -> String {
        let fp = self.fingerprint();
        URL_SAFE_NO_PAD.encode(fp.get(..16).unwrap_or(&fp))
    }

    /// Verifies an ECDSA P-256 / SHA-256 signature over `msg` (ring).
    ///
    /// Returns [`CryptoError::BadSignature`] when it does not verify.
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), CryptoError> {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.sec1[..])
            .verify(msg, sig.as_bytes())
            .map_err(|_| CryptoError::BadSignature)
    }
}

/// A raw `r || s` ECDSA P-256 signature (IEEE P1363, 64 bytes), with `r` and
/// `s` both in `[1, n-1]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Signature {
    raw: [u8; 64],
}

impl Signature {
    /// Parses a 64-byte `r || s` signature; rejects other lengths and `r` or
    /// `s` equal to zero or not below the group order.
    pub fn from_raw(b: &[u8]) -> Result<Self, CryptoError> {
        let raw: [u8; 64] = b.try_into().map_err(|_| CryptoError::InvalidSignature)?;
        p256::ecdsa::Signature::from_slice(&raw).map_err(|_| CryptoError::InvalidSignature)?;
        Ok(Self { raw })
    }

    /// Parses a strict-DER `SEQUENCE { INTEGER r, INTEGER s }` signature
    /// (BER, missing or extra zero bytes and trailing data are rejected).
    pub fn from_der(der: &[u8]) -> Result<Self, CryptoError> {
        let sig =
            p256::ecdsa::Signature::from_der(der).map_err(|_| CryptoError::InvalidSignature)?;
        Self::from_raw(&sig.to_bytes())
    }

    /// The strict-DER encoding (for platform APIs that want ASN.1 signatures).
    pub fn to_der(&self) -> Vec<u8> {
        match p256::ecdsa::Signature::from_slice(&self.raw) {
            Ok(sig) => sig.to_der().as_bytes().to_vec(),
            // Unreachable: `raw` was validated on construction.
            Err(_) => Vec::new(),
        }
    }

    /// The raw `r || s` bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePublicKey as _;

    // RFC 6979 A.2.5 public key.
    const UX: &str = "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6";
    const UY: &str = "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";

    fn rfc_key() -> PublicKey {
        let sec1 = hex::decode(format!("04{UX}{UY}")).unwrap();
        PublicKey::from_sec1(&sec1).unwrap()
    }

    #[test]
    fn spki_matches_p256_and_round_trips() {
        let key = rfc_key();
        let p = p256::PublicKey::from_sec1_bytes(&key.to_sec1()).unwrap();
        assert_eq!(key.to_spki_der(), p.to_public_key_der().unwrap().as_bytes());
        assert_eq!(PublicKey::from_spki_der(&key.to_spki_der()).unwrap(), key);
        assert_eq!(key.key_id().len(), 22);
        let mut trailing = key.to_spki_der();
        trailing.push(0);
        assert_eq!(
            PublicKey::from_spki_der(&trailing),
            Err(CryptoError::InvalidKey)
        );
    }

    #[test]
    fn rejects_compressed_and_off_curve() {
        let key = rfc_key();
        let sec1 = key.to_sec1();
        let mut compressed = vec![0x02 | (sec1[64] & 1)];
        compressed.extend_from_slice(&sec1[1..33]);
        assert_eq!(
            PublicKey::from_sec1(&compressed),
            Err(CryptoError::InvalidKey)
        );
        let mut off = sec1;
        off[64] ^= 1;
        assert_eq!(PublicKey::from_sec1(&off), Err(CryptoError::InvalidKey));
        assert_eq!(PublicKey::from_sec1(&[]), Err(CryptoError::InvalidKey));
    }

    #[test]
    fn der_raw_round_trip() {
        // RFC 6979 A.2.5, SHA-256, message "sample".
        let r = "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716";
        let s = "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8";
        let raw = hex::decode(format!("{r}{s}")).unwrap();
        let sig = Signature::from_raw(&raw).unwrap();
        let der = sig.to_der();
        assert_eq!(der[0], 0x30);
        assert_eq!(Signature::from_der(&der).unwrap(), sig);
        rfc_key().verify(b"sample", &sig).unwrap();
        assert_eq!(
            rfc_key().verify(b"samplf", &sig),
            Err(CryptoError::BadSignature)
        );
        assert_eq!(
            Signature::from_raw(&raw[..63]),
            Err(CryptoError::InvalidSignature)
        );
        assert_eq!(
            Signature::from_raw(&[0u8; 64]),
            Err(CryptoError::InvalidSignature)
        );
        assert_eq!(
            Signature::from_raw(&[0xffu8; 64]),
            Err(CryptoError::InvalidSignature)
        );
        assert_eq!(
            Signature::from_der(&raw),
            Err(CryptoError::InvalidSignature)
        );
    }
}

//! HPKE-sealed boxes (RFC 9180 base mode, DHKEM(P-256, HKDF-SHA256), HKDF-SHA256,
//! AES-128-GCM) as they travel inside signed payloads.

use zeroize::Zeroizing;

use super::encoding::{b64url, b64url_array, b64url_bounded};
use super::error::{ProtocolError, Result};
use crate::crypto::{AgreementKey, CryptoError, KeyAgreement, PublicKey, hpke};

/// HPKE AEAD tag length (AES-128-GCM).
pub const TAG_LEN: usize = 16;

/// Which ephemeral key HPKE uses.
#[derive(Debug, Clone, Copy)]
pub enum Ephemeral<'a> {
    /// A fresh random ephemeral key (always, in production).
    Random,
    /// A fixed ephemeral key: only for reproducible test vectors.
    Fixed(&'a AgreementKey),
}

/// An HPKE encapsulated key and ciphertext (ciphertext || 16-byte tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBox {
    /// The encapsulated ephemeral public key (65-byte uncompressed SEC1).
    pub enc: [u8; 65],
    /// AEAD ciphertext with the tag appended.
    pub ciphertext: Vec<u8>,
}

impl SealedBox {
    /// Seals `plaintext` to `recipient` with the given HPKE `info` and `aad`.
    pub fn seal(
        recipient: &PublicKey,
        info: &[u8],
        aad: &[u8],
        plaintext: &[u8],
        ephemeral: Ephemeral<'_>,
    ) -> Result<Self> {
        let sealed = match ephemeral {
            Ephemeral::Random => hpke::seal(recipient, info, aad, plaintext),
            Ephemeral::Fixed(eph) => {
                hpke::seal_with_ephemeral(eph, recipient, info, aad, plaintext)
            }
        }?;
        Ok(Self {
            enc: sealed.enc,
            ciphertext: sealed.ciphertext,
        })
    }

    /// Opens the box with the recipient's private key, used only through ECDH
    /// (a software [`AgreementKey`] or a platform keystore key). Any failure
    /// (wrong key, wrong `aad`, tampering, invalid `enc`, a failing ECDH) is
    /// reported as [`ProtocolError::Decrypt`].
    pub fn open(
        &self,
        recipient: &dyn KeyAgreement,
        info: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        hpke::open(recipient, &self.enc, info, aad, &self.ciphertext).map_err(|e| match e {
            CryptoError::Rng => ProtocolError::Rng,
            _ => ProtocolError::Decrypt,
        })
    }

    /// Wire form of `enc` (base64url).
    pub(crate) fn enc_text(&self) -> String {
        b64url(&self.enc)
    }

    /// Wire form of the ciphertext (base64url).
    pub(crate) fn ct_text(&self) -> String {
        b64url(&self.ciphertext)
    }

    /// Parses the wire form, bounding the ciphertext to `min_ct..=max_ct` bytes.
    pub(crate) fn from_text(
        enc_field: &'static str,
        enc: &str,
        ct_field: &'static str,
        ct: &str,
        min_ct: usize,
        max_ct: usize,
    ) -> Result<Self> {
        let enc = b64url_array::<65>(enc_field, enc)?;
        // The encapsulated key must be a valid point; reject early with a typed error.
        PublicKey::from_sec1(&enc).map_err(|_| ProtocolError::InvalidKey { field: enc_field })?;
        let ciphertext = b64url_bounded(ct_field, ct, min_ct, max_ct)?;
        Ok(Self { enc, ciphertext })
    }
}

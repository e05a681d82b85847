//! Cryptographic primitives for protocol v1, built on ring (fast paths:
//! ECDSA signing and verification, HMAC, HKDF, PBKDF2, AES-GCM, randomness)
//! and p256 (static ECDH, key and signature encodings, RFC 6979 signing), and
//! Web Push message encryption (RFC 8291) built from them.
//!
//! Every secret is zeroized on drop and redacted from `Debug`; every secret
//! comparison is constant time. Limitation: ring does not zeroize the key
//! material it keeps internally (the cached ECDSA key pair, expanded AES keys).

mod aead;
mod ecdh;
mod ecdsa;
mod error;
mod hash;
pub mod hpke;
mod keys;
mod random;
mod webpush;

pub use aead::{AES_GCM_NONCE_LEN, AES_GCM_TAG_LEN, aes_gcm_open, aes_gcm_seal};
pub use ecdh::{AgreementKey, KeyAgreement};
pub use ecdsa::SigningKey;
pub use error::CryptoError;
pub use hash::{
    HKDF_MAX_OUTPUT, HmacAlgorithm, SHA256_LEN, hkdf, hkdf_expand, hkdf_extract, hmac, hmac_verify,
    pbkdf2_hmac_sha256, sha256,
};
pub use keys::{PublicKey, SEC1_UNCOMPRESSED_LEN, SPKI_DER_LEN, Signature};
pub use random::{random_array, random_bytes};
pub use webpush::{
    RECORD_SIZE as WEBPUSH_RECORD_SIZE, WEBPUSH_AUTH_LEN, WEBPUSH_HEADER_LEN,
    WEBPUSH_MAX_PLAINTEXT, webpush_decrypt, webpush_encrypt,
};

use subtle::ConstantTimeEq;

/// Compares two byte strings in constant time.
///
/// Time depends only on the lengths (which may leak), never on the contents.
/// Different lengths compare unequal.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_basics() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn types_are_send_and_sync() {
        // Everything crosses threads behind the FFI.
        fn check<T: Send + Sync>() {}
        check::<PublicKey>();
        check::<Signature>();
        check::<SigningKey>();
        check::<AgreementKey>();
        check::<CryptoError>();
        check::<hpke::SenderContext>();
        check::<hpke::ReceiverContext>();
        check::<hpke::Sealed>();
    }
}

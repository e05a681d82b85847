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
///
/// Eight bytes at a time: every byte is read and OR-ed into one difference
/// word, with no branch on the contents, and the word is tested once at the
/// end with `subtle`. `subtle`'s slice comparison puts an optimisation barrier
/// after every byte; here there is one per [`CT_BLOCK`] bytes (so the compiler
/// cannot turn the loop into an early exit either). The core compares whole
/// account records with it on every read (its record cache).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u64;
    for (x, y) in a.chunks(CT_BLOCK).zip(b.chunks(CT_BLOCK)) {
        let (xw, xr) = x.as_chunks::<8>();
        let (yw, yr) = y.as_chunks::<8>();
        for (p, q) in xw.iter().zip(yw) {
            diff |= u64::from_ne_bytes(*p) ^ u64::from_ne_bytes(*q);
        }
        for (p, q) in xr.iter().zip(yr) {
            diff |= u64::from(p ^ q);
        }
        diff = core::hint::black_box(diff);
    }
    bool::from(diff.ct_eq(&0))
}

/// Bytes [`ct_eq`] compares between optimisation barriers.
const CT_BLOCK: usize = 64;

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
    fn ct_eq_sees_every_byte_at_every_length() {
        // Lengths around the word and block sizes; one bit flipped at every
        // position (words, the tail, every block) must make them differ.
        for len in [1, 7, 8, 9, 63, 64, 65, 127, 128, 129, 2050] {
            let a: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            assert!(ct_eq(&a, &a.clone()), "len {len}");
            for pos in 0..len {
                for bit in [0x01u8, 0x80] {
                    let mut b = a.clone();
                    b[pos] ^= bit;
                    assert!(!ct_eq(&a, &b), "len {len} pos {pos} bit {bit:#x}");
                }
            }
            assert!(!ct_eq(&a, &a[..len - 1]), "len {len}");
        }
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

//! Protection of the user-verification key Du.
//!
//! # Du in the vault (every account this version activates)
//!
//! Du is a signing key in the platform [`KeyVault`] under `cs.<account>.du`,
//! created with `user_verification: false`: one key must serve both the app PIN
//! and biometrics, and a platform key bound to user verification would only
//! open after the platform's own prompt, never after the app PIN. The record
//! holds its alias and public key (see `UserKey::Vault`). The PIN and
//! biometric gates are checked by the core: each "wrap" below then protects a
//! fresh random 32-byte token instead of a scalar, and opening it *is* the
//! proof that the PIN was right (the PIN-derived key opens the AEAD) or that
//! the user passed biometrics (the UV-bound hardware ECDH succeeded). Only
//! then does the core have the vault sign with Du.
//!
//! What that buys and what it does not: Du can no longer be copied off the
//! device (the vault never exports it), so someone who copied the storage and
//! its key and brute-forces the PIN offline learns the PIN alone, not a key
//! that signs approvals elsewhere. The PIN gate itself is enforced by the core
//! in the app process (as is the wrong-PIN counter); the biometric proof still
//! comes from hardware. Before any PIN or biometrics is set up, nothing secret
//! is stored for Du: approvals that need verification are refused, and the
//! first setting needs nothing unwrapped.
//!
//! # Legacy records (software Du)
//!
//! Accounts activated by earlier versions keep a software P-256 Du whose scalar
//! is stored only wrapped (AES-256-GCM), and keep working unchanged:
//!
//! * under a **PIN-derived key**: PBKDF2-HMAC-SHA256(PIN, 16-byte random salt,
//!   [`PIN_KDF_ITERATIONS`]) (NIST SP 800-63B-4 §3.2.10: a PIN-protected key held
//!   in software). A wrong PIN is detected by the AEAD failing to open;
//! * under a key agreed (ECDH, then HKDF-SHA256) with a **user-verification-bound
//!   key-agreement key in the platform [`KeyVault`]** (StrongBox / Secure Enclave):
//!   the platform refuses that ECDH until the user passed biometrics, so the
//!   binding is in hardware, not in the core's say-so;
//! * or, only while the user has set up neither, unwrapped (still inside the
//!   encrypted [`crate::platform::SecureStorage`]).
//!
//! The same two wraps protect the vault mode's token. The AEAD associated data
//! binds each wrap to the account and its purpose, so a wrap cannot be moved
//! between accounts.

use zeroize::Zeroizing;

use super::record::{BioWrap, PinWrap, Secret};
use super::session::VaultSigner;
use crate::crypto::{
    AgreementKey, CryptoError, PublicKey, Signature, SigningKey, aes_gcm_open, aes_gcm_seal, hkdf,
    pbkdf2_hmac_sha256, random_array,
};
use crate::error::{Error, Result};
use crate::platform::{KeyPurpose, KeySpec, KeyVault};
use crate::protocol::MessageSigner;
use crate::protocol::encoding::{b64url, b64url_array};

/// PBKDF2-HMAC-SHA256 iterations for PIN-derived keys.
///
/// Target: 100–300 ms per PIN check on a mid-range phone: barely noticeable for
/// the user, and that much per guess for an attacker who copied the storage and
/// its key. Measured (test `pin_kdf_cost`): ring does 5.5 M iterations/s on the
/// x86-64 build host (SHA extensions), so 600 000 take ~110 ms there. ARMv8 phones
/// use ring's SHA-2 instruction path too; a mid-range core (Cortex-A76/A78 class)
/// is estimated at 2–4 M iterations/s, i.e. ~150–300 ms (not measured on a phone
/// here). 600 000 is also OWASP's 2023 figure for PBKDF2-HMAC-SHA256. A 6-digit PIN
/// has only 10^6 values, so the real protection is the attempt counter plus the
/// encrypted storage; the iterations slow an offline attack that already has both.
/// The count is stored with each wrap, so it can be raised later.
pub const PIN_KDF_ITERATIONS: u32 = 600_000;

/// Shortest PIN accepted whatever the server policy says.
pub const MIN_PIN_LEN: usize = 4;
/// Longest PIN accepted.
pub const MAX_PIN_LEN: usize = 64;

/// Length of the random token the wraps protect when Du is in the vault.
pub(crate) const TOKEN_LEN: usize = 32;

const PIN_AAD: &str = "countersign/v1/du-pin";
const BIO_AAD: &str = "countersign/v1/du-bio";
const BIO_INFO: &str = "countersign/v1/du-bio-kek";

fn aad(label: &str, account: &str) -> Vec<u8> {
    let mut a = label.as_bytes().to_vec();
    a.push(0);
    a.extend_from_slice(account.as_bytes());
    a
}

/// Checks a PIN's shape: `min..=64` characters, no control characters.
pub(crate) fn check_pin_shape(pin: &str, min: usize) -> Result<()> {
    let n = pin.chars().count();
    if n < min.max(MIN_PIN_LEN) || n > MAX_PIN_LEN || pin.chars().any(char::is_control) {
        return Err(Error::InvalidInput { what: "pin" });
    }
    Ok(())
}

fn pin_kek(pin: &str, salt: &[u8], iterations: u32) -> Result<Zeroizing<[u8; 32]>> {
    let mut kek = Zeroizing::new([0u8; 32]);
    pbkdf2_hmac_sha256(pin.as_bytes(), salt, iterations, kek.as_mut_slice())?;
    Ok(kek)
}

/// The vault alias of account `id`'s Du.
pub(crate) fn du_alias(id: &str) -> String {
    format!("cs.{id}.du")
}

/// The vault alias of account `id`'s UV-bound biometric key.
pub(crate) fn bio_alias(id: &str) -> String {
    format!("cs.{id}.bio")
}

/// The spec Du is created with in the vault. Not bound to user verification:
/// the one key serves both the app PIN (which the platform cannot check) and
/// biometrics; the core checks the gate (the PIN wrap opening, or the UV-bound
/// biometric key's hardware ECDH) before it asks the vault to sign.
pub(crate) const DU_SPEC: KeySpec = KeySpec {
    purpose: KeyPurpose::Signing,
    user_verification: false,
};

/// A fresh random token for a vault-mode wrap.
pub(crate) fn new_token() -> Result<Zeroizing<Vec<u8>>> {
    Ok(Zeroizing::new(random_array::<TOKEN_LEN>()?.to_vec()))
}

/// Du, ready to sign: a key in the vault, or a legacy record's software key
/// (unwrapped for this one use). Callers sign without caring which.
pub(super) enum UserKey {
    /// A legacy record's software Du (boxed: ring's key is large).
    Software(Box<SigningKey>),
    /// Du in the vault: signing goes through [`KeyVault::sign`].
    Vault(VaultSigner),
}

impl UserKey {
    /// Signs `message` (ECDSA P-256 / SHA-256) with Du.
    pub(super) fn sign(&self, message: &[u8]) -> std::result::Result<Signature, CryptoError> {
        match self {
            Self::Software(k) => k.sign(message),
            Self::Vault(v) => v.sign(message),
        }
    }
}

impl MessageSigner for UserKey {
    fn public_key(&self) -> PublicKey {
        match self {
            Self::Software(k) => k.public_key(),
            Self::Vault(v) => v.public_key(),
        }
    }
    fn sign(&self, message: &[u8]) -> std::result::Result<Signature, CryptoError> {
        UserKey::sign(self, message)
    }
}

/// Wraps Du's unlock secret (a legacy scalar, or a vault-mode token) under `pin`.
pub(crate) fn wrap_with_pin(
    scalar: &[u8],
    pin: &str,
    account: &str,
    iterations: u32,
) -> Result<PinWrap> {
    let salt = random_array::<16>()?;
    let nonce = random_array::<12>()?;
    let kek = pin_kek(pin, &salt, iterations)?;
    let ct = aes_gcm_seal(kek.as_slice(), &nonce, &aad(PIN_AAD, account), scalar)?;
    Ok(PinWrap {
        salt: Secret::new(&salt),
        iterations,
        nonce: Secret::new(&nonce),
        ct: Secret::new(&ct),
    })
}

/// Unwraps with `pin`: `Ok(None)` when the PIN is wrong.
pub(crate) fn unwrap_with_pin(
    wrap: &PinWrap,
    pin: &str,
    account: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let kek = pin_kek(pin, &wrap.salt.0, wrap.iterations)?;
    let nonce: [u8; 12] = wrap
        .nonce
        .0
        .as_slice()
        .try_into()
        .map_err(|_| Error::Storage)?;
    Ok(aes_gcm_open(kek.as_slice(), &nonce, &aad(PIN_AAD, account), &wrap.ct.0).ok())
}

fn bio_kek(shared: &[u8; 32], account: &str) -> Result<Zeroizing<[u8; 32]>> {
    let mut kek = Zeroizing::new([0u8; 32]);
    hkdf(&[], shared, &aad(BIO_INFO, account), kek.as_mut_slice())?;
    Ok(kek)
}

/// Creates the UV-bound vault key `alias` and wraps Du's unlock secret under it.
pub(crate) fn wrap_with_vault(
    vault: &dyn KeyVault,
    alias: &str,
    scalar: &[u8],
    account: &str,
) -> Result<BioWrap> {
    let vault_key = vault.create_key(
        alias,
        KeySpec {
            purpose: KeyPurpose::KeyAgreement,
            user_verification: true,
        },
    )?;
    let eph = AgreementKey::generate()?;
    let shared = eph.diffie_hellman(&vault_key)?;
    let kek = bio_kek(&shared, account)?;
    let nonce = random_array::<12>()?;
    let ct = aes_gcm_seal(kek.as_slice(), &nonce, &aad(BIO_AAD, account), scalar)?;
    Ok(BioWrap {
        alias: alias.to_owned(),
        ephemeral: b64url(&eph.public_key().to_sec1()),
        nonce: Secret::new(&nonce),
        ct: Secret::new(&ct),
    })
}

/// Unwraps through the vault (the platform enforces user verification).
pub(crate) fn unwrap_with_vault(
    vault: &dyn KeyVault,
    wrap: &BioWrap,
    account: &str,
) -> Result<Zeroizing<Vec<u8>>> {
    let eph = b64url_array::<65>("ephemeral", &wrap.ephemeral).map_err(|_| Error::Storage)?;
    let eph = PublicKey::from_sec1(&eph).map_err(|_| Error::Storage)?;
    let shared = vault.ecdh(&wrap.alias, &eph)?;
    let kek = bio_kek(&shared, account)?;
    let nonce: [u8; 12] = wrap
        .nonce
        .0
        .as_slice()
        .try_into()
        .map_err(|_| Error::Storage)?;
    aes_gcm_open(kek.as_slice(), &nonce, &aad(BIO_AAD, account), &wrap.ct.0)
        .map_err(|_| Error::VerificationFailed)
}

/// A signing key from an unwrapped scalar, checked against the expected public key.
pub(crate) fn signing_key(scalar: &[u8], expected_public: &str) -> Result<SigningKey> {
    let key = SigningKey::from_bytes(scalar).map_err(|_| Error::Storage)?;
    if b64url(&key.public_key().to_sec1()) != expected_public {
        return Err(Error::Storage);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::platform::{MemoryStorage, SoftwareKeyVault};

    #[test]
    fn pin_wrap_round_trip_and_wrong_pin() {
        let du = SigningKey::generate().unwrap();
        let w = wrap_with_pin(du.to_bytes().as_slice(), "123456", "acct1", 1000).unwrap();
        let back = unwrap_with_pin(&w, "123456", "acct1").unwrap().unwrap();
        assert_eq!(back.as_slice(), du.to_bytes().as_slice());
        assert!(unwrap_with_pin(&w, "123457", "acct1").unwrap().is_none());
        // Bound to the account.
        assert!(unwrap_with_pin(&w, "123456", "acct2").unwrap().is_none());
        let pubtext = b64url(&du.public_key().to_sec1());
        assert!(signing_key(&back, &pubtext).is_ok());
        let other = SigningKey::generate().unwrap();
        assert_eq!(
            signing_key(other.to_bytes().as_slice(), &pubtext).err(),
            Some(Error::Storage)
        );
    }

    #[test]
    fn vault_wrap_round_trip() {
        let vault = SoftwareKeyVault::new(Arc::new(MemoryStorage::new()));
        let w = wrap_with_vault(&vault, "bio", b"0123456789abcdef0123456789abcdef", "a").unwrap();
        let back = unwrap_with_vault(&vault, &w, "a").unwrap();
        assert_eq!(back.as_slice(), b"0123456789abcdef0123456789abcdef");
        assert_eq!(
            unwrap_with_vault(&vault, &w, "b").err(),
            Some(Error::VerificationFailed)
        );
        vault.delete_key("bio").unwrap();
        assert_eq!(
            unwrap_with_vault(&vault, &w, "a").err(),
            Some(Error::Storage)
        );
    }

    #[test]
    fn pin_shapes() {
        assert!(check_pin_shape("123456", 6).is_ok());
        assert!(check_pin_shape("12345", 6).is_err());
        assert!(check_pin_shape("123", 0).is_err());
        assert!(check_pin_shape("12\n45", 4).is_err());
        assert!(check_pin_shape(&"1".repeat(65), 4).is_err());
    }

    /// Measures the PIN KDF on this machine and prints it (the figure quoted on
    /// [`PIN_KDF_ITERATIONS`]); fails only if it is absurdly fast or slow.
    #[test]
    fn pin_kdf_cost() {
        let start = Instant::now();
        pin_kek("123456", &[7u8; 16], PIN_KDF_ITERATIONS).unwrap();
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        println!(
            "PBKDF2-HMAC-SHA256 x {PIN_KDF_ITERATIONS}: {ms:.0} ms ({:.0} iterations/s)",
            f64::from(PIN_KDF_ITERATIONS) / (ms / 1000.0)
        );
        assert!(ms > 5.0, "PIN KDF is implausibly fast: {ms} ms");
        assert!(ms < 20_000.0, "PIN KDF is implausibly slow: {ms} ms");
    }
}

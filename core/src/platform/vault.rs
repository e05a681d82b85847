//! Key vault: P-256 keys addressed by alias, never exported.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::storage::{SecureStorage, StorageError};
use crate::crypto::{AgreementKey, PublicKey, Signature, SigningKey};

/// What a key is for (a platform key is created for one use only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// ECDSA P-256 / SHA-256 signing.
    Signing,
    /// ECDH P-256 key agreement.
    KeyAgreement,
}

/// How to create a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// Signing or key agreement.
    pub purpose: KeyPurpose,
    /// Usable only after user verification (biometric / device credential): on
    /// Android `setUserAuthenticationRequired`, on iOS an access control with
    /// `.userPresence` / `.biometryCurrentSet`. The platform then shows or checks its
    /// prompt when the key is used; the core asks [`super::UserVerifier`] first.
    pub user_verification: bool,
}

/// Key vault failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyVaultError {
    /// No key with this alias.
    #[error("no such key")]
    NotFound,
    /// The key exists but is for the other purpose.
    #[error("key used for the wrong purpose")]
    WrongPurpose,
    /// A user-verification-bound key was used without (recent) verification.
    #[error("user verification required")]
    UserVerificationRequired,
    /// The key was invalidated (e.g. biometrics enrolment changed).
    #[error("key permanently invalidated")]
    KeyInvalidated,
    /// The platform keystore failed.
    #[error("key vault failure: {0}")]
    Platform(String),
}

/// P-256 keys in the platform keystore (StrongBox / Secure Enclave), addressed by
/// alias; private keys never leave it.
///
/// Every private key of a push account lives here: Dp (`cs.<id>.dp`, signing),
/// the biometric key-wrapping key (`cs.<id>.bio`, key agreement, UV-bound) and
/// the KEM keys K (`cs.<id>.kem.<16 hex digits>`, key agreement, one per
/// rotation). HPKE opens challenges with K through [`Self::ecdh`], so the core
/// never holds private key bytes from a vault: its records hold aliases
/// (handles) and public keys. The trait only ever hands the core public keys,
/// signatures and ECDH shared secrets; there is no export.
///
/// The core creates a key before any record names it and deletes it only after
/// the record no longer does, so a crash may leave an unnamed key behind (the
/// trait has no listing to collect it) but never a record naming a missing key.
///
/// Signatures are ECDSA P-256 with SHA-256 over `message`, returned raw (r||s);
/// platform glue converts from DER. ECDH returns the 32-byte x-coordinate.
///
/// Threading: called from any thread, concurrently for different aliases; calls may
/// block while the keystore works (or while the platform checks a UV-bound key's
/// authorisation), so the core calls them off the UI thread and never while holding
/// a lock. Implementations must not call back into the core.
pub trait KeyVault: Send + Sync {
    /// Creates a key under `alias`, replacing any old key with that alias, and
    /// returns its public key.
    fn create_key(&self, alias: &str, spec: KeySpec) -> Result<PublicKey, KeyVaultError>;
    /// The public key under `alias`, if it exists.
    fn public_key(&self, alias: &str) -> Result<Option<PublicKey>, KeyVaultError>;
    /// Signs with a [`KeyPurpose::Signing`] key.
    fn sign(&self, alias: &str, message: &[u8]) -> Result<Signature, KeyVaultError>;
    /// ECDH with a [`KeyPurpose::KeyAgreement`] key.
    fn ecdh(&self, alias: &str, peer: &PublicKey) -> Result<Zeroizing<[u8; 32]>, KeyVaultError>;
    /// Deletes the key (no error if absent).
    fn delete_key(&self, alias: &str) -> Result<(), KeyVaultError>;
}

/// Software keys: the private scalars sealed in a [`SecureStorage`] (which encrypts
/// them at rest), under `vault/<alias>`.
///
/// It cannot bind a key to user verification: `user_verification` is recorded but
/// enforced only by the core asking the [`super::UserVerifier`] first. Use a
/// platform vault on phones.
pub struct SoftwareKeyVault {
    storage: Arc<dyn SecureStorage>,
}

impl fmt::Debug for SoftwareKeyVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SoftwareKeyVault")
    }
}

/// A stored key: purpose tag and private scalar.
type StoredKey = (u8, Zeroizing<Vec<u8>>);

const TAG_SIGNING: u8 = 1;
const TAG_AGREEMENT: u8 = 2;

fn storage_err(e: StorageError) -> KeyVaultError {
    KeyVaultError::Platform(e.to_string())
}

impl SoftwareKeyVault {
    /// A vault keeping its keys in `storage`.
    pub fn new(storage: Arc<dyn SecureStorage>) -> Self {
        Self { storage }
    }

    fn slot(alias: &str) -> String {
        format!("vault/{alias}")
    }

    /// `(purpose tag, scalar)`.
    fn load(&self, alias: &str) -> Result<Option<StoredKey>, KeyVaultError> {
        let Some(blob) = self.storage.get(&Self::slot(alias)).map_err(storage_err)? else {
            return Ok(None);
        };
        match blob.split_first() {
            Some((&tag, rest)) if rest.len() == 33 => Ok(Some((
                tag,
                Zeroizing::new(rest.get(1..).unwrap_or_default().to_vec()),
            ))),
            _ => Err(KeyVaultError::Platform("corrupt key record".into())),
        }
    }

    fn signing_key(&self, alias: &str) -> Result<SigningKey, KeyVaultError> {
        match self.load(alias)? {
            None => Err(KeyVaultError::NotFound),
            Some((TAG_SIGNING, scalar)) => SigningKey::from_bytes(&scalar)
                .map_err(|_| KeyVaultError::Platform("corrupt key".into())),
            Some(_) => Err(KeyVaultError::WrongPurpose),
        }
    }

    fn agreement_key(&self, alias: &str) -> Result<AgreementKey, KeyVaultError> {
        match self.load(alias)? {
            None => Err(KeyVaultError::NotFound),
            Some((TAG_AGREEMENT, scalar)) => AgreementKey::from_bytes(&scalar)
                .map_err(|_| KeyVaultError::Platform("corrupt key".into())),
            Some(_) => Err(KeyVaultError::WrongPurpose),
        }
    }
}

impl KeyVault for SoftwareKeyVault {
    fn create_key(&self, alias: &str, spec: KeySpec) -> Result<PublicKey, KeyVaultError> {
        let rng = |_| KeyVaultError::Platform("key generation failed".into());
        let (tag, scalar, public) = match spec.purpose {
            KeyPurpose::Signing => {
                let k = SigningKey::generate().map_err(rng)?;
                (TAG_SIGNING, k.to_bytes(), k.public_key())
            }
            KeyPurpose::KeyAgreement => {
                let k = AgreementKey::generate().map_err(rng)?;
                (TAG_AGREEMENT, k.to_bytes(), k.public_key())
            }
        };
        let mut blob = Zeroizing::new(Vec::with_capacity(34));
        blob.push(tag);
        blob.push(u8::from(spec.user_verification));
        blob.extend_from_slice(scalar.as_slice());
        self.storage
            .put(&Self::slot(alias), &blob)
            .map_err(storage_err)?;
        Ok(public)
    }

    fn public_key(&self, alias: &str) -> Result<Option<PublicKey>, KeyVaultError> {
        match self.load(alias)? {
            None => Ok(None),
            Some((TAG_SIGNING, _)) => Ok(Some(self.signing_key(alias)?.public_key())),
            Some(_) => Ok(Some(self.agreement_key(alias)?.public_key())),
        }
    }

    fn sign(&self, alias: &str, message: &[u8]) -> Result<Signature, KeyVaultError> {
        self.signing_key(alias)?
            .sign(message)
            .map_err(|_| KeyVaultError::Platform("signing failed".into()))
    }

    fn ecdh(&self, alias: &str, peer: &PublicKey) -> Result<Zeroizing<[u8; 32]>, KeyVaultError> {
        self.agreement_key(alias)?
            .diffie_hellman(peer)
            .map_err(|_| KeyVaultError::Platform("key agreement failed".into()))
    }

    fn delete_key(&self, alias: &str) -> Result<(), KeyVaultError> {
        self.storage.delete(&Self::slot(alias)).map_err(storage_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::MemoryStorage;

    #[test]
    fn software_vault_round_trip() {
        let storage = Arc::new(MemoryStorage::new());
        let v = SoftwareKeyVault::new(storage.clone());
        let spec = |purpose| KeySpec {
            purpose,
            user_verification: false,
        };
        let pk = v.create_key("a", spec(KeyPurpose::Signing)).unwrap();
        assert_eq!(v.public_key("a").unwrap(), Some(pk.clone()));
        let sig = v.sign("a", b"msg").unwrap();
        pk.verify(b"msg", &sig).unwrap();
        assert_eq!(v.ecdh("a", &pk), Err(KeyVaultError::WrongPurpose));

        let ka = v.create_key("b", spec(KeyPurpose::KeyAgreement)).unwrap();
        let other = AgreementKey::generate().unwrap();
        let s1 = v.ecdh("b", &other.public_key()).unwrap();
        let s2 = other.diffie_hellman(&ka).unwrap();
        assert_eq!(*s1, *s2);
        assert_eq!(v.sign("b", b"m"), Err(KeyVaultError::WrongPurpose));

        v.delete_key("a").unwrap();
        assert_eq!(v.public_key("a").unwrap(), None);
        assert_eq!(v.sign("a", b"m"), Err(KeyVaultError::NotFound));
        assert!(format!("{v:?}").contains("SoftwareKeyVault"));
    }
}

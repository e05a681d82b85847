//! Key vault: P-256 keys and AES-256-GCM sealing keys addressed by alias, never
//! exported.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

use super::storage::{SecureStorage, StorageError};
use crate::crypto::{
    AgreementKey, PublicKey, Signature, SigningKey, aes_gcm_open, aes_gcm_seal, ct_eq, random_array,
};

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
    /// Sealed data did not open under this key: wrong key, wrong associated
    /// data, or the blob was damaged or tampered with.
    #[error("sealed data did not open")]
    OpenFailed,
    /// The platform keystore failed.
    #[error("key vault failure: {0}")]
    Platform(String),
}

/// Keys in the platform keystore (StrongBox / TEE Keystore, Secure Enclave and
/// Keychain), addressed by alias; private and secret keys never leave it.
///
/// Every private key of a push account lives here:
/// * Dp (`cs.<id>.dp`, signing): the possession key;
/// * Du (`cs.<id>.du`, signing, *not* bound to user verification): the
///   user-verification key (accounts activated before it moved here keep a
///   software Du, see [`crate::authenticator::userkey`]);
/// * the biometric key-wrapping key (`cs.<id>.bio`, key agreement, UV-bound);
/// * the KEM keys K (`cs.<id>.kem.<16 hex digits>`, key agreement, one per
///   rotation);
/// * the sealing key of the OTP seed (`cs.<id>.seed`, AES-256-GCM), which also
///   seals an imported `otpauth://` account's URI.
///
/// HPKE opens challenges with K through [`Self::ecdh`], so the core never holds
/// private key bytes from a vault: its records hold aliases (handles), public
/// keys and sealed blobs. The trait only ever hands the core public keys,
/// signatures, ECDH shared secrets and the plaintexts it was asked to seal;
/// there is no export.
///
/// What the hardware enforces and what the core does: the platform keeps every
/// key on the device (none can be copied off it, even by someone who reads the
/// app's storage and its storage key) and enforces user verification for the
/// UV-bound biometric key. Du is deliberately not UV-bound: one key serves both
/// the app PIN and biometrics, and the platform cannot check an app PIN. So the
/// PIN gate (and the decision to ask for biometrics at all) is enforced by the
/// core in the app process; the biometric proof still comes from the UV-bound
/// hardware key agreement. Someone who can run code in the app process can make
/// Du sign; someone who copied the storage can at best brute-force the PIN
/// offline (the PIN wrap holds a random token, not Du), which yields the PIN
/// itself, never Du.
///
/// The core creates a key before any record names it and deletes it only after
/// the record no longer does, so a crash may leave an unnamed key behind (the
/// trait has no listing to collect it) but never a record naming a missing key.
///
/// Signatures are ECDSA P-256 with SHA-256 over `message`, returned raw (r||s);
/// platform glue converts from DER. ECDH returns the 32-byte x-coordinate.
/// Sealing is AES-256-GCM with a nonce the vault chooses at random per call
/// (Android: `setRandomizedEncryptionRequired(true)`, the IV from the cipher);
/// the blob is opaque to the core (e.g. `nonce || ciphertext || tag`).
///
/// Threading: called from any thread, concurrently for different aliases; calls may
/// block while the keystore works (or while the platform checks a UV-bound key's
/// authorisation), so the core calls them off the UI thread and never while holding
/// a lock. Implementations must not call back into the core.
pub trait KeyVault: Send + Sync {
    /// Creates a key under `alias`, replacing any old key with that alias, and
    /// returns its public key.
    fn create_key(&self, alias: &str, spec: KeySpec) -> Result<PublicKey, KeyVaultError>;
    /// The public key under `alias`, if it exists ([`KeyVaultError::WrongPurpose`]
    /// for a sealing key, which has none).
    fn public_key(&self, alias: &str) -> Result<Option<PublicKey>, KeyVaultError>;
    /// Signs with a [`KeyPurpose::Signing`] key.
    fn sign(&self, alias: &str, message: &[u8]) -> Result<Signature, KeyVaultError>;
    /// ECDH with a [`KeyPurpose::KeyAgreement`] key.
    fn ecdh(&self, alias: &str, peer: &PublicKey) -> Result<Zeroizing<[u8; 32]>, KeyVaultError>;
    /// Deletes the key, of any kind (no error if absent).
    fn delete_key(&self, alias: &str) -> Result<(), KeyVaultError>;
    /// Creates a non-exportable AES-256-GCM key under `alias`, replacing any old
    /// key with that alias.
    fn create_sealing_key(&self, alias: &str) -> Result<(), KeyVaultError>;
    /// Encrypts and authenticates `plaintext` with the sealing key `alias` and
    /// associated data `aad`, under a fresh random nonce the vault chooses;
    /// returns an opaque blob holding everything [`Self::open`] needs besides
    /// the key and `aad`.
    fn seal(&self, alias: &str, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KeyVaultError>;
    /// Opens a blob [`Self::seal`] made with the same key and `aad`;
    /// [`KeyVaultError::OpenFailed`] if it does not authenticate.
    fn open(
        &self,
        alias: &str,
        aad: &[u8],
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyVaultError>;
}

/// Software keys: the private scalars and sealing keys (32 random bytes) kept in
/// a [`SecureStorage`] (which encrypts them at rest), under `vault/<alias>`.
///
/// It cannot bind a key to user verification: `user_verification` is recorded but
/// enforced only by the core asking the [`super::UserVerifier`] first. Use a
/// platform vault on phones.
///
/// Parsed keys are cached in memory (loading a P-256 scalar costs a base-point
/// multiplication, more than the signature or ECDH itself). The storage stays the
/// truth: every call still reads the key's slot, and a cached key is used only
/// when its scalar equals the stored one (compared in constant time), so a key
/// replaced or deleted by another process or vault is never used stale. Cached
/// scalars are zeroized when dropped (ring's own copy inside a signing key pair
/// is not: see [`crate::crypto`]).
pub struct SoftwareKeyVault {
    storage: Arc<dyn SecureStorage>,
    cache: Mutex<HashMap<String, CachedKey>>,
}

/// A parsed key and the stored scalar it was parsed from.
#[derive(Clone)]
struct CachedKey {
    scalar: Arc<Zeroizing<Vec<u8>>>,
    key: ParsedKey,
}

#[derive(Clone)]
enum ParsedKey {
    Signing(Arc<SigningKey>),
    Agreement(Arc<AgreementKey>),
}

/// Parsed keys kept at most (a phone holds a few per account); past it the cache
/// starts again empty.
const MAX_CACHED_KEYS: usize = 64;

impl fmt::Debug for SoftwareKeyVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SoftwareKeyVault")
    }
}

/// A stored key: purpose tag and private scalar (or AES key).
type StoredKey = (u8, Zeroizing<Vec<u8>>);

const TAG_SIGNING: u8 = 1;
const TAG_AGREEMENT: u8 = 2;
const TAG_SEALING: u8 = 3;
/// AES-GCM nonce length (the sealed blob is `nonce || ciphertext || tag`).
const NONCE_LEN: usize = 12;

fn storage_err(e: StorageError) -> KeyVaultError {
    KeyVaultError::Platform(e.to_string())
}

impl SoftwareKeyVault {
    /// A vault keeping its keys in `storage`.
    pub fn new(storage: Arc<dyn SecureStorage>) -> Self {
        Self {
            storage,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedKey>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached key for `alias` if it was parsed from exactly `scalar`.
    fn cached(&self, alias: &str, scalar: &[u8]) -> Option<ParsedKey> {
        let entry = self.cache().get(alias).cloned()?;
        ct_eq(entry.scalar.as_slice(), scalar).then_some(entry.key)
    }

    fn remember(&self, alias: &str, scalar: Zeroizing<Vec<u8>>, key: ParsedKey) {
        let mut cache = self.cache();
        if cache.len() >= MAX_CACHED_KEYS && !cache.contains_key(alias) {
            cache.clear();
        }
        cache.insert(
            alias.to_owned(),
            CachedKey {
                scalar: Arc::new(scalar),
                key,
            },
        );
    }

    fn forget(&self, alias: &str) {
        self.cache().remove(alias);
    }

    fn slot(alias: &str) -> String {
        format!("vault/{alias}")
    }

    /// `(purpose tag, scalar or AES key)`. The slot is tag, UV flag, 32 bytes.
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

    fn signing_key(&self, alias: &str) -> Result<Arc<SigningKey>, KeyVaultError> {
        match self.load(alias)? {
            None => Err(KeyVaultError::NotFound),
            Some((TAG_SIGNING, scalar)) => {
                if let Some(ParsedKey::Signing(key)) = self.cached(alias, &scalar) {
                    return Ok(key);
                }
                let key = Arc::new(
                    SigningKey::from_bytes(&scalar)
                        .map_err(|_| KeyVaultError::Platform("corrupt key".into()))?,
                );
                self.remember(alias, scalar, ParsedKey::Signing(key.clone()));
                Ok(key)
            }
            Some(_) => Err(KeyVaultError::WrongPurpose),
        }
    }

    fn agreement_key(&self, alias: &str) -> Result<Arc<AgreementKey>, KeyVaultError> {
        match self.load(alias)? {
            None => Err(KeyVaultError::NotFound),
            Some((TAG_AGREEMENT, scalar)) => {
                if let Some(ParsedKey::Agreement(key)) = self.cached(alias, &scalar) {
                    return Ok(key);
                }
                let key = Arc::new(
                    AgreementKey::from_bytes(&scalar)
                        .map_err(|_| KeyVaultError::Platform("corrupt key".into()))?,
                );
                self.remember(alias, scalar, ParsedKey::Agreement(key.clone()));
                Ok(key)
            }
            Some(_) => Err(KeyVaultError::WrongPurpose),
        }
    }

    fn sealing_key(&self, alias: &str) -> Result<Zeroizing<Vec<u8>>, KeyVaultError> {
        match self.load(alias)? {
            None => Err(KeyVaultError::NotFound),
            Some((TAG_SEALING, key)) => Ok(key),
            Some(_) => Err(KeyVaultError::WrongPurpose),
        }
    }

    fn store(&self, alias: &str, tag: u8, uv: bool, secret: &[u8]) -> Result<(), KeyVaultError> {
        let mut blob = Zeroizing::new(Vec::with_capacity(34));
        blob.push(tag);
        blob.push(u8::from(uv));
        blob.extend_from_slice(secret);
        self.storage
            .put(&Self::slot(alias), &blob)
            .map_err(storage_err)
    }
}

impl KeyVault for SoftwareKeyVault {
    fn create_key(&self, alias: &str, spec: KeySpec) -> Result<PublicKey, KeyVaultError> {
        let rng = |_| KeyVaultError::Platform("key generation failed".into());
        let (tag, scalar, public, parsed) = match spec.purpose {
            KeyPurpose::Signing => {
                let k = SigningKey::generate().map_err(rng)?;
                let (scalar, public) = (k.to_bytes(), k.public_key());
                (TAG_SIGNING, scalar, public, ParsedKey::Signing(Arc::new(k)))
            }
            KeyPurpose::KeyAgreement => {
                let k = AgreementKey::generate().map_err(rng)?;
                let (scalar, public) = (k.to_bytes(), k.public_key());
                (
                    TAG_AGREEMENT,
                    scalar,
                    public,
                    ParsedKey::Agreement(Arc::new(k)),
                )
            }
        };
        self.forget(alias);
        self.store(alias, tag, spec.user_verification, scalar.as_slice())?;
        self.remember(alias, Zeroizing::new(scalar.to_vec()), parsed);
        Ok(public)
    }

    fn public_key(&self, alias: &str) -> Result<Option<PublicKey>, KeyVaultError> {
        match self.load(alias)? {
            None => Ok(None),
            Some((TAG_SIGNING, _)) => Ok(Some(self.signing_key(alias)?.public_key())),
            Some((TAG_AGREEMENT, _)) => Ok(Some(self.agreement_key(alias)?.public_key())),
            Some(_) => Err(KeyVaultError::WrongPurpose),
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
        self.forget(alias);
        self.storage.delete(&Self::slot(alias)).map_err(storage_err)
    }

    fn create_sealing_key(&self, alias: &str) -> Result<(), KeyVaultError> {
        self.forget(alias);
        let key = Zeroizing::new(
            random_array::<32>()
                .map_err(|_| KeyVaultError::Platform("key generation failed".into()))?,
        );
        self.store(alias, TAG_SEALING, false, key.as_slice())
    }

    fn seal(&self, alias: &str, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KeyVaultError> {
        let key = self.sealing_key(alias)?;
        let nonce = random_array::<NONCE_LEN>()
            .map_err(|_| KeyVaultError::Platform("random nonce failed".into()))?;
        let sealed = aes_gcm_seal(key.as_slice(), &nonce, aad, plaintext)
            .map_err(|_| KeyVaultError::Platform("sealing failed".into()))?;
        let mut blob = Vec::with_capacity(NONCE_LEN.saturating_add(sealed.len()));
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    fn open(
        &self,
        alias: &str,
        aad: &[u8],
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyVaultError> {
        let key = self.sealing_key(alias)?;
        let (nonce, sealed) = blob
            .split_first_chunk::<NONCE_LEN>()
            .ok_or(KeyVaultError::OpenFailed)?;
        aes_gcm_open(key.as_slice(), nonce, aad, sealed).map_err(|_| KeyVaultError::OpenFailed)
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

    #[test]
    fn cached_keys_follow_the_storage() {
        let storage = Arc::new(MemoryStorage::new());
        let a = SoftwareKeyVault::new(storage.clone());
        let b = SoftwareKeyVault::new(storage.clone());
        let spec = |purpose| KeySpec {
            purpose,
            user_verification: false,
        };
        let first = a.create_key("k", spec(KeyPurpose::Signing)).unwrap();
        first.verify(b"m", &a.sign("k", b"m").unwrap()).unwrap();
        // Another vault (another process) replaces the key: `a` signs with the new one.
        let second = b.create_key("k", spec(KeyPurpose::Signing)).unwrap();
        assert_ne!(first, second);
        second.verify(b"m", &a.sign("k", b"m").unwrap()).unwrap();
        assert_eq!(a.public_key("k").unwrap(), Some(second));
        // ... or turns it into an agreement key, or deletes it.
        let agreement = b.create_key("k", spec(KeyPurpose::KeyAgreement)).unwrap();
        assert_eq!(a.sign("k", b"m"), Err(KeyVaultError::WrongPurpose));
        let peer = AgreementKey::generate().unwrap();
        assert_eq!(
            *a.ecdh("k", &peer.public_key()).unwrap(),
            *peer.diffie_hellman(&agreement).unwrap()
        );
        b.delete_key("k").unwrap();
        assert_eq!(a.sign("k", b"m"), Err(KeyVaultError::NotFound));
        assert_eq!(
            a.ecdh("k", &peer.public_key()),
            Err(KeyVaultError::NotFound)
        );
        // The cache stays bounded.
        for i in 0..(MAX_CACHED_KEYS + 3) {
            a.create_key(&format!("n{i}"), spec(KeyPurpose::Signing))
                .unwrap();
        }
        assert!(a.cache().len() <= MAX_CACHED_KEYS);
        a.sign("n0", b"m").unwrap();
    }

    #[test]
    fn software_vault_seals_and_opens() {
        let storage = Arc::new(MemoryStorage::new());
        let v = SoftwareKeyVault::new(storage.clone());
        assert_eq!(v.seal("s", b"aad", b"x"), Err(KeyVaultError::NotFound));
        v.create_sealing_key("s").unwrap();
        let blob = v.seal("s", b"aad", b"the seed").unwrap();
        // nonce || ciphertext || tag, a fresh nonce every time.
        assert_eq!(blob.len(), 12 + 8 + 16);
        assert_ne!(blob, v.seal("s", b"aad", b"the seed").unwrap());
        assert!(!blob.windows(8).any(|w| w == b"the seed"));
        assert_eq!(v.open("s", b"aad", &blob).unwrap().as_slice(), b"the seed");
        assert_eq!(v.open("s", b"AAD", &blob), Err(KeyVaultError::OpenFailed));
        let mut bad = blob.clone();
        bad[20] ^= 1;
        assert_eq!(v.open("s", b"aad", &bad), Err(KeyVaultError::OpenFailed));
        assert_eq!(
            v.open("s", b"aad", &blob[..5]),
            Err(KeyVaultError::OpenFailed)
        );
        // A sealing key has no public key and neither signs nor agrees; the
        // other keys do not seal.
        assert_eq!(v.public_key("s"), Err(KeyVaultError::WrongPurpose));
        assert_eq!(v.sign("s", b"m"), Err(KeyVaultError::WrongPurpose));
        let spec = KeySpec {
            purpose: KeyPurpose::Signing,
            user_verification: false,
        };
        v.create_key("k", spec).unwrap();
        assert_eq!(v.seal("k", b"", b"x"), Err(KeyVaultError::WrongPurpose));
        // A new key under the same alias opens nothing of the old one's.
        v.create_sealing_key("s").unwrap();
        assert_eq!(v.open("s", b"aad", &blob), Err(KeyVaultError::OpenFailed));
        v.delete_key("s").unwrap();
        assert_eq!(v.open("s", b"aad", &blob), Err(KeyVaultError::NotFound));
    }
}

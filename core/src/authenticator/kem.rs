//! The KEM keys K (the device's HPKE receiver keys) in the platform
//! [`KeyVault`]: created there, used there through ECDH, deleted there.
//!
//! The core never holds a K private key: the account record names each key by
//! its vault alias, `cs.<account>.kem.<16 random hex digits>` (random, because
//! the key id is only known once the key exists, and so a new key can never
//! replace a live one: [`KeyVault::create_key`] replaces an old key with the
//! same alias), with its public key. Challenges and the activation seed open
//! through [`VaultKem`], which hands HPKE the public key and an ECDH function
//! calling [`KeyVault::ecdh`].
//!
//! Ordering (the record is written by compare-and-swap, the vault separately):
//! * a new key is created in the vault *before* the record naming it is
//!   written, and deleted again if that write does not happen;
//! * a retired key is deleted from the vault only *after* the record without it
//!   was written; a wiped account's record goes before its keys.
//!
//! A crash between the two steps can leak a vault key no record names (harmless
//! and unreachable), never leave a record naming a missing key.
//!
//! Records written before K moved to the vault hold the scalar inline (see
//! [`KemKey`]); such a key still opens challenges in software until it rotates
//! out (the next answer names a vault key; the old one is dropped after its
//! grace period like any other). It cannot be moved into the vault: platform
//! keystores generate their keys and import none here.

use std::sync::{Arc, OnceLock};

use zeroize::Zeroizing;

use super::Authenticator;
use super::record::KemKey;
use super::store::public_from_text;
use crate::crypto::{AgreementKey, CryptoError, KeyAgreement, PublicKey, random_array};
use crate::error::{Error, Result, from_server};
use crate::platform::{KeyPurpose, KeySpec, KeyVault, KeyVaultError, LogLevel};
use crate::protocol::ProtocolError;

/// The vault alias for a new KEM key of account `id` (local account id).
fn new_alias(id: &str) -> Result<String> {
    Ok(format!("cs.{id}.kem.{}", hex::encode(random_array::<8>()?)))
}

/// A KEM key just created in the vault, not yet (or just) named by a record.
#[derive(Debug, Clone)]
pub(super) struct NewKem {
    /// Its vault alias.
    pub alias: String,
    /// Its public key, as the vault returned it.
    pub public: PublicKey,
}

impl NewKem {
    /// The record entry naming it.
    pub(super) fn record(&self) -> KemKey {
        KemKey::in_vault(self.public.key_id(), self.alias.clone(), &self.public)
    }
}

/// A KEM key in the vault as HPKE sees it: a public key and ECDH through
/// [`KeyVault::ecdh`]. The first vault error is kept, so the caller reports it
/// rather than the "decryption failed" HPKE makes of it.
pub(super) struct VaultKem {
    vault: Arc<dyn KeyVault>,
    alias: String,
    public: PublicKey,
    failure: OnceLock<KeyVaultError>,
}

impl KeyAgreement for VaultKem {
    fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    fn diffie_hellman(
        &self,
        peer: &PublicKey,
    ) -> std::result::Result<Zeroizing<[u8; 32]>, CryptoError> {
        self.vault.ecdh(&self.alias, peer).map_err(|e| {
            let _ = self.failure.set(e);
            CryptoError::InvalidKey
        })
    }
}

/// A held KEM key, ready to open what was sealed to it.
pub(super) enum KemOpener {
    /// In the vault (every key this version creates).
    Vault(VaultKem),
    /// A legacy record's inline scalar.
    Inline(AgreementKey),
}

impl KemOpener {
    /// The key as HPKE's recipient.
    pub(super) fn agreement(&self) -> &dyn KeyAgreement {
        match self {
            Self::Vault(v) => v,
            Self::Inline(k) => k,
        }
    }

    /// The error for a failed open: the vault's own failure if ECDH failed
    /// there (a missing or unusable key is not the server's fault), else the
    /// protocol error as from the server.
    pub(super) fn error(&self, e: ProtocolError) -> Error {
        match self {
            Self::Vault(v) => match v.failure.get() {
                Some(f) => Error::from(f.clone()),
                None => from_server(e),
            },
            Self::Inline(_) => from_server(e),
        }
    }
}

impl Authenticator {
    /// Creates a new KEM key for account `id` in the vault (before any record
    /// names it).
    pub(super) fn create_kem_key(&self, id: &str) -> Result<NewKem> {
        let alias = new_alias(id)?;
        let public = self.hooks.vault.create_key(
            &alias,
            KeySpec {
                purpose: KeyPurpose::KeyAgreement,
                user_verification: false,
            },
        )?;
        Ok(NewKem { alias, public })
    }

    /// An opener for a key of the record: the vault adapter, or the inline
    /// scalar of a legacy record.
    pub(super) fn kem_opener(&self, key: &KemKey) -> Result<KemOpener> {
        match (&key.alias, &key.public, &key.scalar) {
            (Some(alias), Some(public), None) => Ok(KemOpener::Vault(VaultKem {
                vault: self.hooks.vault.clone(),
                alias: alias.clone(),
                public: public_from_text(public)?,
                failure: OnceLock::new(),
            })),
            (None, None, Some(scalar)) => AgreementKey::from_bytes(&scalar.0)
                .map(KemOpener::Inline)
                .map_err(|_| Error::Storage),
            _ => Err(Error::Storage),
        }
    }

    /// An opener for a key just created (the activation, before the record
    /// exists).
    pub(super) fn new_kem_opener(&self, key: &NewKem) -> KemOpener {
        KemOpener::Vault(VaultKem {
            vault: self.hooks.vault.clone(),
            alias: key.alias.clone(),
            public: key.public.clone(),
            failure: OnceLock::new(),
        })
    }

    /// Deletes retired KEM keys from the vault: call only once the record
    /// without them is stored. Failures are logged (the key leaks, unnamed).
    pub(super) fn delete_kem_keys(&self, aliases: &[String]) {
        for alias in aliases {
            if self.hooks.vault.delete_key(alias).is_err() {
                self.log(LogLevel::Warn, "could not delete a retired KEM key");
            }
        }
    }

    /// After a failed answer: deletes the new KEM key `alias` unless account
    /// `id`'s record names it (it was stored before the failure). If the record
    /// cannot be read, the key is left (a leak is harmless; a record naming a
    /// missing key is not).
    pub(super) fn discard_kem_key_unless_named(&self, id: &str, alias: &str) {
        let named = self.read(id, |r| {
            Ok(r.push()?
                .kem_keys
                .iter()
                .any(|k| k.alias.as_deref() == Some(alias)))
        });
        match named {
            Ok(true) => {}
            Ok(false) | Err(Error::AccountNotFound) => self.delete_kem_keys(&[alias.to_owned()]),
            Err(_) => self.log(LogLevel::Warn, "left an unused KEM key in the vault"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::authenticator::record::{AccountRecord, test_push_account, test_push_record};
    use crate::authenticator::tests::{NoNetwork, NoUser};
    use crate::authenticator::{AuthenticatorConfig, PlatformHooks};
    use crate::crypto::{Signature, SigningKey};
    use crate::platform::{
        Clock, HookError, MemoryStorage, NoopLogger, SecureStorage, SoftwareKeyVault,
    };
    use crate::protocol::encoding::b64url;
    use crate::protocol::{
        Challenge, ChallengeContext, ChallengeKind, Ephemeral, NumberMatching, Platform, SealedBox,
        SealedChallenge, Verification,
    };

    #[test]
    fn aliases_are_per_account_and_random() {
        let a = new_alias("a0011").unwrap();
        let b = new_alias("a0011").unwrap();
        assert!(a.starts_with("cs.a0011.kem."));
        assert_eq!(a.len(), "cs.a0011.kem.".len() + 16);
        assert_ne!(a, b);
    }

    #[test]
    fn vault_kem_opens_through_ecdh_and_reports_vault_failures() {
        let vault: Arc<dyn KeyVault> =
            Arc::new(SoftwareKeyVault::new(Arc::new(MemoryStorage::new())));
        let spec = KeySpec {
            purpose: KeyPurpose::KeyAgreement,
            user_verification: false,
        };
        let public = vault.create_key("k", spec).unwrap();
        let sealed =
            SealedBox::seal(&public, b"info", b"aad", b"secret", Ephemeral::Random).unwrap();
        let opener = || {
            KemOpener::Vault(VaultKem {
                vault: vault.clone(),
                alias: "k".into(),
                public: public.clone(),
                failure: OnceLock::new(),
            })
        };
        let kem = opener();
        let plain = sealed.open(kem.agreement(), b"info", b"aad").unwrap();
        assert_eq!(plain.as_slice(), b"secret");
        // Tampering is the server's fault...
        let e = sealed.open(kem.agreement(), b"info", b"AAD").unwrap_err();
        assert_eq!(kem.error(e), Error::Tampered);
        // ...a key missing from the vault is not.
        vault.delete_key("k").unwrap();
        let kem = opener();
        let e = sealed.open(kem.agreement(), b"info", b"aad").unwrap_err();
        assert_eq!(e, ProtocolError::Decrypt);
        assert_eq!(kem.error(e), Error::Storage);
    }

    /// A software vault counting its ECDH calls.
    struct CountingVault {
        inner: SoftwareKeyVault,
        ecdh: AtomicUsize,
    }

    impl KeyVault for CountingVault {
        fn create_key(
            &self,
            alias: &str,
            spec: KeySpec,
        ) -> std::result::Result<PublicKey, KeyVaultError> {
            self.inner.create_key(alias, spec)
        }
        fn public_key(&self, alias: &str) -> std::result::Result<Option<PublicKey>, KeyVaultError> {
            self.inner.public_key(alias)
        }
        fn sign(
            &self,
            alias: &str,
            message: &[u8],
        ) -> std::result::Result<Signature, KeyVaultError> {
            self.inner.sign(alias, message)
        }
        fn ecdh(
            &self,
            alias: &str,
            peer: &PublicKey,
        ) -> std::result::Result<Zeroizing<[u8; 32]>, KeyVaultError> {
            self.ecdh.fetch_add(1, Ordering::SeqCst);
            self.inner.ecdh(alias, peer)
        }
        fn delete_key(&self, alias: &str) -> std::result::Result<(), KeyVaultError> {
            self.inner.delete_key(alias)
        }
        fn create_sealing_key(&self, alias: &str) -> std::result::Result<(), KeyVaultError> {
            self.inner.create_sealing_key(alias)
        }
        fn seal(
            &self,
            alias: &str,
            aad: &[u8],
            plaintext: &[u8],
        ) -> std::result::Result<Vec<u8>, KeyVaultError> {
            self.inner.seal(alias, aad, plaintext)
        }
        fn open(
            &self,
            alias: &str,
            aad: &[u8],
            blob: &[u8],
        ) -> std::result::Result<Zeroizing<Vec<u8>>, KeyVaultError> {
            self.inner.open(alias, aad, blob)
        }
    }

    struct At59;

    impl Clock for At59 {
        fn now(&self) -> std::result::Result<u64, HookError> {
            Ok(59)
        }
    }

    fn challenge() -> Challenge {
        Challenge {
            tx_id: crate::protocol::challenge::random_id().unwrap(),
            account_id: "acct".into(),
            issued_at: 50,
            expires_at: 100,
            kind: ChallengeKind::Login,
            context: ChallengeContext {
                rp: "VPN".into(),
                ip: None,
                location: None,
                user_agent: None,
            },
            text: None,
            transaction: None,
            verification: Verification::None,
            number_matching: NumberMatching::Off,
            nonce: crate::protocol::challenge::random_id().unwrap(),
        }
    }

    #[test]
    fn legacy_inline_and_vault_kem_keys_both_open_challenges() {
        let storage = Arc::new(MemoryStorage::new());
        let vault = Arc::new(CountingVault {
            inner: SoftwareKeyVault::new(storage.clone()),
            ecdh: AtomicUsize::new(0),
        });
        let hooks = PlatformHooks {
            storage: storage.clone(),
            vault: vault.clone(),
            verifier: Arc::new(NoUser),
            http: Arc::new(NoNetwork),
            clock: Arc::new(At59),
            logger: Arc::new(NoopLogger),
        };
        let auth = Authenticator::new(hooks, AuthenticatorConfig::new(Platform::Desktop)).unwrap();

        // A record with a legacy inline key (the old serde shape: the scalar in
        // the record) and two vault keys.
        let server = SigningKey::generate().unwrap();
        let legacy = AgreementKey::generate().unwrap();
        let legacy_json = serde_json::json!({
            "kid": legacy.public_key().key_id(),
            "scalar": b64url(legacy.to_bytes().as_slice()),
        });
        let v1 = auth.create_kem_key("a1").unwrap();
        let v2 = auth.create_kem_key("a1").unwrap();
        let mut p = test_push_account();
        p.server_key = b64url(&server.public_key().to_sec1());
        p.kem_keys = vec![
            serde_json::from_value(legacy_json).unwrap(),
            v1.record(),
            v2.record(),
        ];
        p.server_kem_kid = legacy.public_key().key_id();
        let rec = test_push_record(p);
        let key = AccountRecord::storage_key("a1");
        storage.put(&key, &rec.to_bytes().unwrap()).unwrap();
        let stored = storage.get(&key).unwrap().unwrap();
        let text = String::from_utf8(stored.to_vec()).unwrap();
        assert!(text.contains(&v1.alias) && text.contains(&v2.alias));

        let envelope = |to: &PublicKey| {
            SealedChallenge::seal(&challenge(), "dev", to, Ephemeral::Random)
                .unwrap()
                .sign(&server)
                .unwrap()
                .to_json()
                .unwrap()
        };
        // The legacy key opens in software.
        auth.receive_challenge("a1", &envelope(&legacy.public_key()))
            .unwrap();
        assert_eq!(vault.ecdh.load(Ordering::SeqCst), 0);
        // A vault key opens through the vault.
        auth.receive_challenge("a1", &envelope(&v1.public)).unwrap();
        assert_eq!(vault.ecdh.load(Ordering::SeqCst), 1);
        // A vault key gone from the vault: a storage failure, not tampering.
        vault.delete_key(&v2.alias).unwrap();
        assert_eq!(
            auth.receive_challenge("a1", &envelope(&v2.public)).err(),
            Some(Error::Storage)
        );
        // Forgetting the account deletes its vault keys.
        auth.forget_account("a1").unwrap();
        assert_eq!(vault.public_key(&v1.alias).unwrap(), None);
    }
}

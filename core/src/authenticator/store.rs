//! Account records in storage: reading them, changing them by compare-and-swap
//! (so two processes on one store never lose each other's writes), the
//! read/update helpers every operation goes through, and removal.
//!
//! Storage is the truth. Each operation reads the record it needs, and each
//! change re-reads, applies and swaps it in (see
//! [`SecureStorage`](crate::platform::SecureStorage) on several processes).
//! Decoded records are kept in memory only as a cache of stored bytes: a read
//! still gets the bytes from storage and decodes them again unless they are
//! exactly the cached ones (see [`super::cache`]). No lock is held across any
//! hook call.

use std::sync::Arc;

use zeroize::Zeroizing;

use super::Authenticator;
use super::cache::StoredBytes;
use super::record::{AccountRecord, RECORD_PREFIX, RecordKind, Sealed, StoredSecret};
use super::types::{AccountInfo, AccountKind};
use crate::crypto::{PublicKey, random_array};
use crate::error::{Error, Result};
use crate::platform::LogLevel;
use crate::protocol::Verification;
use crate::protocol::encoding::{b64url, b64url_array};

/// A record's stored bytes and the record they hold.
pub(super) type Loaded = (StoredBytes, Arc<AccountRecord>);

/// Bytes a record update may add (a signed answer, a request) without the
/// buffer it is written to having to grow.
const RECORD_SLACK: usize = 2048;

/// How many times a change is re-applied when other writers keep winning the
/// swap before the core gives up with [`Error::Storage`].
const MAX_SWAP_ATTEMPTS: usize = 64;

/// A fresh local account id: `prefix` and 16 random hex digits.
pub(super) fn new_local_id(prefix: char) -> Result<String> {
    Ok(format!("{prefix}{}", hex::encode(random_array::<8>()?)))
}

/// The vault alias of account `id`'s sealing key (its OTP seed, or an
/// `otpauth://` account's URI).
pub(super) fn seed_alias(id: &str) -> String {
    format!("cs.{id}.seed")
}

/// A stored public key (base64url SEC1); unreadable means a damaged record.
pub(super) fn public_from_text(text: &str) -> Result<PublicKey> {
    let sec1 = b64url_array::<65>("key", text).map_err(|_| Error::Storage)?;
    PublicKey::from_sec1(&sec1).map_err(|_| Error::Storage)
}

/// What the app sees of a record.
pub(super) fn account_info(rec: &AccountRecord) -> AccountInfo {
    match &rec.kind {
        RecordKind::Push(p) => AccountInfo {
            id: rec.id.clone(),
            label: rec.label.clone(),
            issuer: rec.issuer.clone(),
            kind: AccountKind::Push {
                server_url: p.server_url.clone(),
                account_id: p.account_id.clone(),
                device_id: p.device_id.clone(),
            },
            pin_set: p.user_key.pin.is_some(),
            biometric_enabled: p.user_key.bio.is_some(),
            min_verification: p.min_verification,
            policy: Some(p.policy),
            pin_failures: p.pin_failures,
        },
        RecordKind::Otpauth(_) => AccountInfo {
            id: rec.id.clone(),
            label: rec.label.clone(),
            issuer: rec.issuer.clone(),
            kind: AccountKind::Otp,
            pin_set: false,
            biometric_enabled: false,
            min_verification: Verification::None,
            policy: None,
            pin_failures: 0,
        },
    }
}

impl Authenticator {
    /// The stored bytes of an account's record and the record they hold.
    pub(super) fn load(&self, id: &str) -> Result<Loaded> {
        self.load_key(&AccountRecord::storage_key(id))?
            .ok_or(Error::AccountNotFound)
    }

    /// The stored bytes under `key` and the record they hold (`None`: no
    /// record).
    fn load_key(&self, key: &str) -> Result<Option<Loaded>> {
        match self.hooks.storage.get(key)? {
            Some(bytes) => self.decode(key, bytes).map(Some),
            None => {
                self.cache.forget(key);
                Ok(None)
            }
        }
    }

    /// The record `bytes` (just read under `key`) hold: the cached one if it
    /// was decoded from exactly these bytes, else decoded now and cached.
    fn decode(&self, key: &str, bytes: Zeroizing<Vec<u8>>) -> Result<Loaded> {
        if let Some(hit) = self.cache.get(key, &bytes) {
            return Ok(hit);
        }
        let rec = Arc::new(AccountRecord::parse(key, &bytes)?);
        let bytes = Arc::new(bytes);
        self.cache.remember(key, bytes.clone(), rec.clone());
        Ok((bytes, rec))
    }

    /// Every readable account record, by id. An unreadable one is skipped and
    /// logged (it cannot be used, and must not brick the others).
    pub(super) fn records(&self) -> Result<Vec<Arc<AccountRecord>>> {
        let mut keys = self.hooks.storage.list(RECORD_PREFIX)?;
        keys.sort();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match self.hooks.storage.get(&key) {
                Ok(None) => self.cache.forget(&key), // removed since it was listed
                Ok(Some(bytes)) => match self.decode(&key, bytes) {
                    Ok((_, rec)) => out.push(rec),
                    Err(_) => self.log(LogLevel::Error, "skipping an unreadable account record"),
                },
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// Ids of the push accounts.
    pub(super) fn push_account_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .records()?
            .into_iter()
            .filter(|r| r.push().is_ok())
            .map(|r| r.id.clone())
            .collect())
    }

    /// Fails with [`Error::AccountNotFound`] unless the account exists.
    pub(super) fn check_account(&self, id: &str) -> Result<()> {
        self.load(id).map(|_| ())
    }

    /// Saves a new account's record; returns its info.
    pub(super) fn add_account(&self, rec: AccountRecord) -> Result<AccountInfo> {
        let bytes = rec.to_bytes()?;
        let key = AccountRecord::storage_key(&rec.id);
        if !self.hooks.storage.compare_and_put(&key, None, &bytes)? {
            // A random 64-bit id already taken: never overwrite it.
            return Err(Error::Internal);
        }
        Ok(account_info(&rec))
    }

    /// Changes an account's record: reads the stored record, applies `f` and
    /// swaps the result in if nobody wrote in between; otherwise reads again and
    /// re-applies `f` (so `f` must only change the record). Returns `f`'s value
    /// once its change is stored. An error from `f` stores nothing.
    pub(super) fn update<R>(
        &self,
        id: &str,
        f: impl FnMut(&mut AccountRecord) -> Result<R>,
    ) -> Result<R> {
        self.update_from(id, None, f).map(|(out, _)| out)
    }

    /// [`Self::update`], first applying `f` to `base` (a [`Self::load`] made
    /// earlier in the same call, or what an earlier update stored) instead of
    /// reading the record again. The swap still only succeeds if storage holds
    /// exactly `base`'s bytes; if another writer came in between, the record
    /// is read again and `f` re-applied, as in [`Self::update`]. Returns `f`'s
    /// value and the record as stored now, to chain a later update from it.
    pub(super) fn update_from<R>(
        &self,
        id: &str,
        mut base: Option<Loaded>,
        mut f: impl FnMut(&mut AccountRecord) -> Result<R>,
    ) -> Result<(R, Loaded)> {
        let key = AccountRecord::storage_key(id);
        for _ in 0..MAX_SWAP_ATTEMPTS {
            // A given base saves a storage read; the swap below checks it.
            let (fresh, (old, cached)) = match base.take() {
                Some(loaded) => (false, loaded),
                None => (true, self.load(id)?),
            };
            // `f` changes a copy: the cached record stays what storage holds.
            let mut rec = AccountRecord::clone(&cached);
            let out = f(&mut rec)?;
            // Room for the old record and an answer or a request more.
            let new = rec.to_bytes_sized(old.len().saturating_add(RECORD_SLACK))?;
            if new.as_slice() == old.as_slice() {
                if fresh {
                    return Ok((out, (old, cached)));
                }
                // Nothing to write, but only if `base` is still what storage
                // holds: read it to make sure.
                continue;
            }
            drop(cached);
            if self
                .hooks
                .storage
                .compare_and_put(&key, Some(old.as_slice()), &new)?
            {
                // Stored: from now on these bytes are the record.
                let stored = (Arc::new(new), Arc::new(rec));
                self.cache
                    .remember(&key, stored.0.clone(), stored.1.clone());
                return Ok((out, stored));
            }
        }
        self.log(
            LogLevel::Error,
            "storage kept changing under a record update",
        );
        Err(Error::Storage)
    }

    /// The account's current record, to read several things from one read of
    /// storage. It is a copy of what was stored: never write it back (changes
    /// go through [`Self::update`]).
    pub(super) fn snapshot(&self, id: &str) -> Result<Arc<AccountRecord>> {
        self.load(id).map(|(_, rec)| rec)
    }

    /// Runs `f` on the account's current record.
    pub(super) fn read<R>(
        &self,
        id: &str,
        f: impl FnOnce(&AccountRecord) -> Result<R>,
    ) -> Result<R> {
        let (_, rec) = self.load(id)?;
        f(&rec)
    }

    /// Creates the sealing key `alias` in the vault (replacing any old one)
    /// and seals `plaintext` under it, bound to account `id` and `label`. The
    /// caller names the key in a record only after this, and deletes it if
    /// that record is never stored.
    pub(super) fn seal_new(
        &self,
        alias: &str,
        label: &str,
        id: &str,
        plaintext: &[u8],
    ) -> Result<Sealed> {
        self.hooks.vault.create_sealing_key(alias)?;
        self.seal_with(alias, label, id, plaintext)
    }

    /// Seals `plaintext` under the existing sealing key `alias`.
    pub(super) fn seal_with(
        &self,
        alias: &str,
        label: &str,
        id: &str,
        plaintext: &[u8],
    ) -> Result<Sealed> {
        let blob = self
            .hooks
            .vault
            .seal(alias, &Sealed::aad(label, id), plaintext)?;
        Ok(Sealed {
            alias: alias.to_owned(),
            blob: b64url(&blob),
        })
    }

    /// A record's secret in the clear: opened by the vault, or the legacy
    /// inline copy. Call it outside any record closure (it calls the vault).
    pub(super) fn open_secret(
        &self,
        stored: &StoredSecret,
        label: &str,
        id: &str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        match stored {
            StoredSecret::Inline(secret) => Ok(secret.0.clone()),
            StoredSecret::Sealed(sealed) => Ok(self.hooks.vault.open(
                &sealed.alias,
                &Sealed::aad(label, id),
                &sealed.blob_bytes()?,
            )?),
        }
    }

    // -----------------------------------------------------------------------
    // Accounts

    /// Every account.
    pub fn accounts(&self) -> Result<Vec<AccountInfo>> {
        Ok(self.records()?.iter().map(|r| account_info(r)).collect())
    }

    /// One account.
    pub fn account(&self, id: &str) -> Result<AccountInfo> {
        self.read(id, |rec| Ok(account_info(rec)))
    }

    /// Removes a push account: tells the server (which deregisters the device),
    /// then wipes local data. A network failure leaves everything in place and
    /// returns [`Error::Network`] (retry, or [`Self::forget_account`]). OTP-only
    /// accounts are just wiped.
    pub async fn remove_account(&self, id: &str) -> Result<()> {
        if self.read(id, |r| Ok(r.push().is_ok()))? {
            let session = self.session(id)?;
            let call = self.connect(&session)?;
            match call.client.deregister(&call.who, None).await {
                Ok(()) | Err(Error::DeviceDeregistered) | Err(Error::RequestNotFound) => {}
                Err(e) => return Err(e),
            }
        }
        self.wipe(id)?;
        self.log(LogLevel::Info, "account removed");
        Ok(())
    }

    /// Wipes an account locally without telling the server.
    pub fn forget_account(&self, id: &str) -> Result<()> {
        self.check_account(id)?;
        self.wipe(id)
    }

    /// Key ids of the KEM keys an account still holds (oldest first): lets tests
    /// and diagnostics check rotation without exposing keys.
    pub fn kem_key_ids(&self, account_id: &str) -> Result<Vec<String>> {
        self.read(account_id, |r| {
            Ok(r.push()?.kem_keys.iter().map(|k| k.kid.clone()).collect())
        })
    }

    /// Deletes every trace of an account: the record (with its pending requests
    /// and outbox) and its vault keys.
    pub(super) fn wipe(&self, id: &str) -> Result<()> {
        self.wipe_keeping(id, None)
    }

    /// [`Self::wipe`], keeping the vault key `keep` (Dp, while a tombstone still
    /// needs it to sign the deregistration).
    pub(super) fn wipe_keeping(&self, id: &str, keep: Option<&str>) -> Result<()> {
        let aliases = match self.read(id, |rec| Ok(vault_aliases(rec))) {
            Ok(aliases) => aliases,
            Err(Error::AccountNotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        // The record goes first: without it the keys are unusable.
        let key = AccountRecord::storage_key(id);
        self.hooks.storage.delete(&key)?;
        self.cache.forget(&key);
        for alias in aliases {
            if Some(alias.as_str()) == keep {
                continue;
            }
            if self.hooks.vault.delete_key(&alias).is_err() {
                self.log(
                    LogLevel::Warn,
                    "could not delete a vault key of a wiped account",
                );
            }
        }
        Ok(())
    }

    /// Wipes the account after the server said the device is gone.
    pub(super) fn deregistered(&self, id: &str) -> Error {
        self.log(
            LogLevel::Warn,
            "server removed this device; wiping the account",
        );
        if self.wipe(id).is_err() {
            self.log(LogLevel::Error, "wiping a deregistered account failed");
        }
        Error::DeviceDeregistered
    }

    /// Maps `DeviceDeregistered` from a server call to a local wipe.
    pub(super) fn check_deregistered<T>(&self, id: &str, r: Result<T>) -> Result<T> {
        match r {
            Err(Error::DeviceDeregistered) => Err(self.deregistered(id)),
            other => other,
        }
    }
}

/// The vault keys an account names: Dp, Du, the biometric key, the KEM keys
/// and the seed's sealing key of a push account; the sealing key of an
/// `otpauth://` account. (Legacy records name fewer: an inline KEM key, a
/// software Du or an inline seed has no vault key.)
pub(super) fn vault_aliases(rec: &AccountRecord) -> Vec<String> {
    match &rec.kind {
        RecordKind::Push(p) => {
            let mut a = vec![p.dp_alias.clone()];
            a.extend(p.user_key.vault_alias.clone());
            if let Some(b) = &p.user_key.bio {
                a.push(b.alias.clone());
            }
            a.extend(p.kem_keys.iter().filter_map(|k| k.alias.clone()));
            a.extend(p.sealed_seed.as_ref().map(|s| s.alias.clone()));
            a
        }
        RecordKind::Otpauth(o) => o.sealed_uri.iter().map(|s| s.alias.clone()).collect(),
    }
}

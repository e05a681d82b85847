//! Account slots: the in-memory records (one lock each), loading and saving
//! them, the read/update helpers every operation goes through, and removal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use super::Authenticator;
use super::record::{AccountRecord, RECORD_PREFIX, RecordKind};
use super::types::{AccountInfo, AccountKind, PlatformHooks};
use crate::crypto::{PublicKey, random_array};
use crate::error::{Error, Result};
use crate::platform::LogLevel;
use crate::protocol::Verification;
use crate::protocol::encoding::b64url_array;

/// One account's record behind its own lock.
pub(super) struct AccountSlot {
    record: Mutex<AccountRecord>,
}

impl AccountSlot {
    fn new(record: AccountRecord) -> Arc<Self> {
        Arc::new(Self {
            record: Mutex::new(record),
        })
    }
}

/// Every account by local id.
pub(super) type AccountSlots = RwLock<HashMap<String, Arc<AccountSlot>>>;

/// Locks one account's record.
pub(super) fn lock(slot: &AccountSlot) -> MutexGuard<'_, AccountRecord> {
    // Records are only replaced whole after a successful save, so a poisoned lock
    // still holds a consistent record.
    slot.record.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads every stored record. An unreadable one is skipped and logged.
pub(super) fn load_accounts(hooks: &PlatformHooks) -> Result<AccountSlots> {
    let keys = hooks.storage.list(RECORD_PREFIX)?;
    let mut accounts = HashMap::new();
    for key in keys {
        match AccountRecord::load(hooks.storage.as_ref(), &key) {
            Ok(Some(rec)) => {
                accounts.insert(rec.id.clone(), AccountSlot::new(rec));
            }
            Ok(None) => {}
            Err(_) => hooks
                .logger
                .log(LogLevel::Error, "skipping an unreadable account record"),
        }
    }
    Ok(RwLock::new(accounts))
}

/// A fresh local account id: `prefix` and 16 random hex digits.
pub(super) fn new_local_id(prefix: char) -> Result<String> {
    Ok(format!("{prefix}{}", hex::encode(random_array::<8>()?)))
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
    pub(super) fn account_slots(&self) -> Vec<Arc<AccountSlot>> {
        self.accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub(super) fn slot(&self, id: &str) -> Result<Arc<AccountSlot>> {
        self.accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or(Error::AccountNotFound)
    }

    /// Saves a new account's record, then makes it available; returns its info.
    pub(super) fn add_account(&self, rec: AccountRecord) -> Result<AccountInfo> {
        rec.save(self.hooks.storage.as_ref())?;
        let account = account_info(&rec);
        self.accounts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rec.id.clone(), AccountSlot::new(rec));
        Ok(account)
    }

    /// Applies `f` to a copy of the record, saves it, and only then makes it the
    /// in-memory record. Storage is written under the account lock (see module docs).
    pub(super) fn update<R>(
        &self,
        slot: &AccountSlot,
        f: impl FnOnce(&mut AccountRecord) -> Result<R>,
    ) -> Result<R> {
        let mut guard = lock(slot);
        let mut copy = guard.clone();
        let out = f(&mut copy)?;
        copy.save(self.hooks.storage.as_ref())?;
        *guard = copy;
        Ok(out)
    }

    /// Runs `f` on the record under its lock (`f` must not call a hook).
    pub(super) fn read<R>(
        &self,
        slot: &AccountSlot,
        f: impl FnOnce(&AccountRecord) -> Result<R>,
    ) -> Result<R> {
        let guard = lock(slot);
        f(&guard)
    }

    // -----------------------------------------------------------------------
    // Accounts

    /// Every account.
    pub fn accounts(&self) -> Vec<AccountInfo> {
        let mut out: Vec<AccountInfo> = self
            .account_slots()
            .iter()
            .map(|s| account_info(&lock(s)))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// One account.
    pub fn account(&self, id: &str) -> Result<AccountInfo> {
        let slot = self.slot(id)?;
        let rec = lock(&slot);
        Ok(account_info(&rec))
    }

    /// Removes a push account: tells the server (which deregisters the device),
    /// then wipes local data. A network failure leaves everything in place and
    /// returns [`Error::Network`] (retry, or [`Self::forget_account`]). OTP-only
    /// accounts are just wiped.
    pub async fn remove_account(&self, id: &str) -> Result<()> {
        let slot = self.slot(id)?;
        if self.read(&slot, |r| Ok(r.push().is_ok()))? {
            let session = self.session(&slot)?;
            let call = self.connect(&session);
            match call.client.deregister(&call.who).await {
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
        self.slot(id)?;
        self.wipe(id)
    }

    /// Key ids of the KEM keys an account still holds (oldest first): lets tests
    /// and diagnostics check rotation without exposing keys.
    pub fn kem_key_ids(&self, account_id: &str) -> Result<Vec<String>> {
        let slot = self.slot(account_id)?;
        self.read(&slot, |r| {
            Ok(r.push()?.kem_keys.iter().map(|k| k.kid.clone()).collect())
        })
    }

    /// Deletes every trace of an account: vault keys, the record, pending requests.
    pub(super) fn wipe(&self, id: &str) -> Result<()> {
        let slot = self
            .accounts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        self.pending_map().retain(|(acct, _), _| acct != id);
        let Some(slot) = slot else {
            return Ok(());
        };
        let aliases = self.read(&slot, |rec| Ok(vault_aliases(rec)))?;
        // The record goes first: without it the keys are unusable.
        self.hooks.storage.delete(&AccountRecord::storage_key(id))?;
        for alias in aliases {
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

/// The vault keys an account owns: Dp and the biometric key of a push account.
fn vault_aliases(rec: &AccountRecord) -> Vec<String> {
    match &rec.kind {
        RecordKind::Push(p) => {
            let mut a = vec![p.dp_alias.clone()];
            if let Some(b) = &p.user_key.bio {
                a.push(b.alias.clone());
            }
            a
        }
        RecordKind::Otpauth(_) => vec![],
    }
}

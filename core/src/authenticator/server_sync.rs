//! What the server must still hear about, kept durably until it has: new
//! accounts whose activation is not confirmed yet, and accounts wiped on the
//! device (too many wrong PINs) whose device the server still holds.
//!
//! # Confirming an activation
//!
//! Activation has two phases (docs/PROTOCOL.md §3.5): the server answers the
//! activation request with a *pending* device, and only the device's signed
//! confirmation makes it active. The core saves the new account under
//! [`CONFIRMING_PREFIX`] (not listed, not usable) before it confirms, so a crash
//! or a lost response cannot leave the server with a device the phone forgot.
//! The confirmation is tried a few times at once; a server that cannot be
//! reached leaves the account waiting, and every retry point (the outbox's:
//! [`Authenticator::deliver_outbox`], `pending`, `handle_push`, approve, deny)
//! tries again. The server answers a repeated confirmation with the same
//! success. Once confirmed, the record moves to `acct/` and the account is
//! listed; a final refusal (the offer expired, another activation of the offer
//! replaced this one) deletes the record and its vault keys.
//!
//! # Telling the server about a local wipe
//!
//! A wipe after too many wrong PINs keeps a tombstone under
//! [`TOMBSTONE_PREFIX`] (server URL, device id, the vault alias and public key of
//! Dp, the clock offset: nothing secret) and keeps Dp in the vault. The
//! tombstone is sent as a signed `DELETE /v1/device` with reason
//! `wiped_on_device` right away and again at every retry point, until the server
//! accepts it or says the device is already gone; only then are Dp and the
//! tombstone deleted.

use serde::{Deserialize, Serialize};

use super::Authenticator;
use super::record::AccountRecord;
use super::store::{account_info, vault_aliases};
use super::types::AccountInfo;
use crate::client::{Confirmed, DeregisterReason};
use crate::error::{Error, Result};
use crate::platform::LogLevel;

/// Storage prefix of accounts whose activation awaits the server's confirmation.
pub(crate) const CONFIRMING_PREFIX: &str = "confirming/";
/// Storage prefix of wiped accounts the server has not yet removed.
pub(crate) const TOMBSTONE_PREFIX: &str = "tombstone/";
/// Confirmation attempts right after activation before it is left to the
/// retry points (a lost response is retried at once).
const CONFIRM_TRIES: usize = 3;
/// Version of the tombstone format.
const TOMBSTONE_VERSION: u32 = 1;

/// A wiped account's device, to deregister.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tombstone {
    v: u32,
    server_url: String,
    device_id: String,
    /// Vault alias of Dp (kept until the server has removed the device).
    dp_alias: String,
    /// Base64url SEC1 of Dp.
    dp_public: String,
    clock_offset: i64,
}

/// What became of one confirmation attempt.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Confirmation {
    /// The server made the device active; the account is listed.
    Done(AccountInfo),
    /// The server could not be reached (or answered "retry"): still waiting.
    Waiting,
    /// A transfer's new phone: the old device must approve first (§14);
    /// still waiting, with nothing to retry at once.
    AwaitingApproval,
}

/// Whether the server's refusal of a deregistration means the device is gone
/// already (removed, or unknown to it): nothing left to tell.
fn is_gone(e: &Error) -> bool {
    match e {
        Error::DeviceDeregistered | Error::RequestNotFound => true,
        Error::ServerRejected { code } => code == "unauthorized",
        _ => false,
    }
}

/// Whether the server's refusal of a confirmation is final (the offer expired,
/// the activation was replaced or the device removed); the rest is retried.
fn is_final(e: &Error) -> bool {
    match e {
        Error::RequestExpired
        | Error::DeviceDeregistered
        | Error::RequestNotFound
        | Error::TransferDenied => true,
        Error::ServerRejected { code } => !matches!(
            code.as_str(),
            "rate_limited" | "replayed" | "unavailable" | "internal"
        ),
        _ => false,
    }
}

fn confirming_key(id: &str) -> String {
    format!("{CONFIRMING_PREFIX}{id}")
}

fn tombstone_key(id: &str) -> String {
    format!("{TOMBSTONE_PREFIX}{id}")
}

/// The local id of a prefixed storage key.
fn id_of<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    key.strip_prefix(prefix).filter(|id| !id.is_empty())
}

impl Authenticator {
    // -----------------------------------------------------------------------
    // Activation confirmation

    /// Saves a new push account as waiting for confirmation.
    pub(super) fn save_confirming(&self, rec: &AccountRecord) -> Result<()> {
        let bytes = rec.to_bytes()?;
        if !self
            .hooks
            .storage
            .compare_and_put(&confirming_key(&rec.id), None, &bytes)?
        {
            return Err(Error::Internal);
        }
        Ok(())
    }

    /// The waiting record of account `id`, if any.
    fn confirming_record(&self, id: &str) -> Result<Option<AccountRecord>> {
        match self.hooks.storage.get(&confirming_key(id))? {
            None => Ok(None),
            // Parsed as the `acct/` record it will become.
            Some(bytes) => AccountRecord::parse(&AccountRecord::storage_key(id), &bytes).map(Some),
        }
    }

    /// Confirms a new activation, retrying at once a few times (a lost response
    /// gets the same success). A final refusal drops the account (record and
    /// vault keys) and is returned.
    pub(super) async fn confirm_new(&self, id: &str) -> Result<Confirmation> {
        let mut outcome = Ok(Confirmation::Waiting);
        for _ in 0..CONFIRM_TRIES {
            outcome = self.confirm(id).await;
            if !matches!(outcome, Ok(Confirmation::Waiting)) {
                break;
            }
        }
        outcome
    }

    /// One confirmation attempt of the waiting account `id`.
    async fn confirm(&self, id: &str) -> Result<Confirmation> {
        let Some(rec) = self.confirming_record(id)? else {
            // Confirmed meanwhile (another call or process).
            return self
                .account(id)
                .map(Confirmation::Done)
                .map_err(|_| Error::NotActivated);
        };
        let p = rec.push()?;
        let session = self.session_of(p)?;
        let call = self.connect(&session)?;
        match call.client.confirm_activation(&call.who).await {
            Ok(Confirmed::Active) => {
                let info = self.finish_confirmed(&rec)?;
                self.log(LogLevel::Info, "account activated");
                Ok(Confirmation::Done(info))
            }
            Ok(Confirmed::AwaitingApproval { .. }) => {
                self.log(
                    LogLevel::Info,
                    "activation awaits the approval of the old device",
                );
                Ok(Confirmation::AwaitingApproval)
            }
            Err(e) if is_final(&e) => {
                self.log(
                    LogLevel::Warn,
                    &format!("activation refused by the server: {e}; dropping the account"),
                );
                self.drop_confirming(&rec);
                Err(e)
            }
            Err(e) => {
                self.log(
                    LogLevel::Warn,
                    &format!("activation confirmation not delivered yet: {e}"),
                );
                Ok(Confirmation::Waiting)
            }
        }
    }

    /// Moves a confirmed record to `acct/` (kept if it is there already: a
    /// second confirmation of the same account), then deletes the waiting copy.
    fn finish_confirmed(&self, rec: &AccountRecord) -> Result<AccountInfo> {
        let key = AccountRecord::storage_key(&rec.id);
        let bytes = rec.to_bytes()?;
        if !self.hooks.storage.compare_and_put(&key, None, &bytes)?
            && self.hooks.storage.get(&key)?.is_none()
        {
            return Err(Error::Storage);
        }
        self.hooks.storage.delete(&confirming_key(&rec.id))?;
        self.account(&rec.id).or_else(|_| Ok(account_info(rec)))
    }

    /// Deletes a waiting account the server refused: record, then vault keys.
    fn drop_confirming(&self, rec: &AccountRecord) {
        if self.hooks.storage.delete(&confirming_key(&rec.id)).is_err() {
            self.log(LogLevel::Error, "could not delete a refused activation");
            return;
        }
        for alias in vault_aliases(rec) {
            if self.hooks.vault.delete_key(&alias).is_err() {
                self.log(
                    LogLevel::Warn,
                    "could not delete a vault key of a refused activation",
                );
            }
        }
    }

    /// Drops a waiting account locally without telling the server (the
    /// activation itself failed before the confirmation could be sent).
    pub(super) fn discard_confirming(&self, id: &str) {
        if let Ok(Some(rec)) = self.confirming_record(id)
            && rec.push().is_ok()
        {
            self.drop_confirming(&rec);
        }
    }

    /// Tries every waiting confirmation once; returns the accounts it
    /// activated and the first final refusal (whose account was dropped).
    async fn confirm_waiting(&self) -> Result<(Vec<AccountInfo>, Option<Error>)> {
        let mut done = Vec::new();
        let mut refused = None;
        for key in self.hooks.storage.list(CONFIRMING_PREFIX)? {
            let Some(id) = id_of(&key, CONFIRMING_PREFIX) else {
                continue;
            };
            // Outcomes are logged; a refusal already dropped the account.
            match self.confirm(id).await {
                Ok(Confirmation::Done(info)) => done.push(info),
                Ok(Confirmation::Waiting | Confirmation::AwaitingApproval) => {}
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        Ok((done, refused))
    }

    /// Asks the servers once about every activation still waiting: a
    /// transfer's new phone polls this while the old device decides
    /// (docs/PROTOCOL.md §14); the other retry points do the same quietly.
    /// Returns the accounts activated now (they are listed from now on). A
    /// final refusal ([`Error::TransferDenied`], the offer expired, …) drops its
    /// account and is returned as the error once the others were tried; an
    /// activation still waiting (approval not given yet, server unreachable)
    /// stays waiting and is not an error.
    pub async fn confirm_pending_activations(&self) -> Result<Vec<AccountInfo>> {
        let (done, refused) = self.confirm_waiting().await?;
        match refused {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// Whether an activation is waiting for its confirmation (a transfer's
    /// new phone waiting for the old device, or a server not reached yet).
    pub fn has_pending_activations(&self) -> Result<bool> {
        Ok(self
            .hooks
            .storage
            .list(CONFIRMING_PREFIX)?
            .iter()
            .any(|k| id_of(k, CONFIRMING_PREFIX).is_some()))
    }

    // -----------------------------------------------------------------------
    // Deregistration after a local wipe

    /// Wipes account `id` after too many wrong PINs, keeping a tombstone (and
    /// Dp) so the server hears of it: a push account's device is deregistered
    /// by [`Self::deliver_tombstones`]. An OTP-only account is just wiped.
    pub(super) fn wipe_and_tell_server(&self, id: &str) -> Result<()> {
        let tomb = match self.read(id, |rec| {
            Ok(rec.push().ok().map(|p| Tombstone {
                v: TOMBSTONE_VERSION,
                server_url: p.server_url.clone(),
                device_id: p.device_id.clone(),
                dp_alias: p.dp_alias.clone(),
                dp_public: p.dp_public.clone(),
                clock_offset: p.clock_offset,
            }))
        }) {
            Ok(tomb) => tomb,
            Err(Error::AccountNotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        let Some(tomb) = tomb else {
            return self.wipe(id);
        };
        let bytes = serde_json::to_vec(&tomb).map_err(|_| Error::Internal)?;
        // The tombstone first: a crash before the wipe repeats both.
        self.hooks.storage.put(&tombstone_key(id), &bytes)?;
        self.wipe_keeping(id, Some(&tomb.dp_alias))
    }

    /// Sends every tombstone's deregistration once; one the server accepted
    /// (or whose device it no longer knows) is deleted with its Dp. Failures
    /// are logged and leave the tombstone for the next retry point.
    pub(super) async fn deliver_tombstones(&self) {
        let keys = match self.hooks.storage.list(TOMBSTONE_PREFIX) {
            Ok(keys) => keys,
            Err(_) => {
                self.log(LogLevel::Error, "could not list wiped devices");
                return;
            }
        };
        for key in keys {
            let tomb = match self.hooks.storage.get(&key) {
                Ok(Some(bytes)) => serde_json::from_slice::<Tombstone>(&bytes).ok(),
                Ok(None) => continue,
                Err(_) => None,
            };
            let Some(tomb) = tomb.filter(|t| t.v == TOMBSTONE_VERSION) else {
                self.log(
                    LogLevel::Error,
                    "skipping an unreadable wiped-device record",
                );
                continue;
            };
            let sent = match self.session_for(
                &tomb.server_url,
                &tomb.device_id,
                &tomb.dp_alias,
                &tomb.dp_public,
                tomb.clock_offset,
            ) {
                Ok(session) => match self.connect(&session) {
                    Ok(call) => {
                        call.client
                            .deregister(&call.who, Some(DeregisterReason::WipedOnDevice))
                            .await
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match sent {
                // Removed now, or already gone (removed, or unknown to the server).
                Ok(()) => {}
                Err(e) if is_gone(&e) => {}
                Err(e) => {
                    self.log(
                        LogLevel::Warn,
                        &format!("wiped device not deregistered yet: {e}"),
                    );
                    continue;
                }
            }
            if self.hooks.storage.delete(&key).is_err() {
                self.log(LogLevel::Error, "could not delete a wiped-device record");
                continue;
            }
            if self.hooks.vault.delete_key(&tomb.dp_alias).is_err() {
                self.log(
                    LogLevel::Warn,
                    "could not delete the vault key of a wiped device",
                );
            }
            self.log(LogLevel::Info, "wiped device deregistered");
        }
    }

    /// Everything the servers must still hear about: waiting confirmations,
    /// then tombstones. Failures are logged only.
    pub(super) async fn sync_with_servers(&self) {
        if let Err(e) = self
            .confirm_waiting()
            .await
            .and_then(|(_, refused)| match refused {
                Some(e) => Err(e),
                None => Ok(()),
            })
        {
            self.log(LogLevel::Warn, &format!("activation confirmations: {e}"));
        }
        self.deliver_tombstones().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_refusals_and_retries() {
        assert!(is_final(&Error::RequestExpired));
        assert!(is_final(&Error::DeviceDeregistered));
        assert!(is_final(&Error::TransferDenied));
        assert!(!is_final(&Error::AwaitingApproval));
        assert!(is_final(&Error::ServerRejected {
            code: "unauthorized".into()
        }));
        assert!(!is_final(&Error::Network));
        assert!(!is_final(&Error::Tampered));
        for code in ["rate_limited", "replayed", "unavailable", "internal"] {
            assert!(!is_final(&Error::ServerRejected { code: code.into() }));
        }
        assert!(is_gone(&Error::DeviceDeregistered));
        assert!(is_gone(&Error::ServerRejected {
            code: "unauthorized".into()
        }));
        assert!(!is_gone(&Error::Network));
        assert!(!is_gone(&Error::RequestExpired));
    }

    #[test]
    fn prefixed_ids() {
        assert_eq!(id_of("confirming/a12", CONFIRMING_PREFIX), Some("a12"));
        assert_eq!(id_of("confirming/", CONFIRMING_PREFIX), None);
        assert_eq!(id_of("acct/a12", CONFIRMING_PREFIX), None);
    }
}

//! Talking to an account's server: the one place that builds a push account's
//! server identity (URL, device id, Dp) and the device API client for it, the
//! estimated server clock, and the push-token update sent to every server.

use std::sync::Arc;

use super::Authenticator;
use super::record::PushAccount;
use super::store::public_from_text;
use crate::client::{DeviceClient, DeviceIdentity};
use crate::crypto::{CryptoError, PublicKey, Signature};
use crate::error::{Result, from_input};
use crate::platform::KeyVault;
use crate::protocol::{MessageSigner, PushRegistration};

/// Signs with a vault key (Dp).
pub(super) struct VaultSigner {
    vault: Arc<dyn KeyVault>,
    alias: String,
    public: PublicKey,
}

impl MessageSigner for VaultSigner {
    fn public_key(&self) -> PublicKey {
        self.public.clone()
    }
    fn sign(&self, message: &[u8]) -> std::result::Result<Signature, CryptoError> {
        self.vault
            .sign(&self.alias, message)
            .map_err(|_| CryptoError::InvalidKey)
    }
}

/// What a server call needs from a push record, copied out of the lock.
pub(super) struct Session {
    server_url: String,
    device_id: String,
    /// Signs requests and denials.
    pub(super) dp: VaultSigner,
    /// Estimated `server time - device time`, seconds.
    pub(super) clock_offset: i64,
}

/// A device API client for one session, its requests timestamped by the
/// estimated server clock.
pub(super) struct SessionCall<'a> {
    /// The client.
    pub(super) client: DeviceClient<'a>,
    /// Who is calling.
    pub(super) who: DeviceIdentity<'a>,
}

/// Local unix time shifted by the estimated server offset (never below 0).
pub(super) fn shifted_clock(local: u64, offset: i64) -> u64 {
    let local = i64::try_from(local).unwrap_or(i64::MAX);
    u64::try_from(local.saturating_add(offset)).unwrap_or(0)
}

impl Authenticator {
    /// The server's clock, estimated from the local one and `offset`.
    pub(super) fn server_now(&self, offset: i64) -> Result<u64> {
        Ok(shifted_clock(self.hooks.clock.now()?, offset))
    }

    /// A signer for the vault key `alias` whose public key is `public`.
    pub(super) fn vault_signer(&self, alias: &str, public: PublicKey) -> VaultSigner {
        VaultSigner {
            vault: self.hooks.vault.clone(),
            alias: alias.to_owned(),
            public,
        }
    }

    /// The session of a push account ([`Error::Unsupported`](crate::Error::Unsupported)
    /// for an OTP-only one).
    pub(super) fn session(&self, id: &str) -> Result<Session> {
        self.read(id, |rec| self.session_of(rec.push()?))
    }

    /// The session of a push account record (also one not stored under `acct/`).
    pub(super) fn session_of(&self, p: &PushAccount) -> Result<Session> {
        self.session_for(
            &p.server_url,
            &p.device_id,
            &p.dp_alias,
            &p.dp_public,
            p.clock_offset,
        )
    }

    /// A session from its parts (`dp_public`: base64url SEC1).
    pub(super) fn session_for(
        &self,
        server_url: &str,
        device_id: &str,
        dp_alias: &str,
        dp_public: &str,
        clock_offset: i64,
    ) -> Result<Session> {
        Ok(Session {
            server_url: server_url.to_owned(),
            device_id: device_id.to_owned(),
            dp: self.vault_signer(dp_alias, public_from_text(dp_public)?),
            clock_offset,
        })
    }

    /// A device API client for `session`, its requests timestamped now: call
    /// it right before the request.
    pub(super) fn connect<'a>(&'a self, session: &'a Session) -> Result<SessionCall<'a>> {
        let now = self.server_now(session.clock_offset)?;
        Ok(SessionCall {
            client: DeviceClient::new(self.hooks.http.as_ref(), now),
            who: DeviceIdentity {
                server_url: &session.server_url,
                device_id: &session.device_id,
                signer: &session.dp,
            },
        })
    }

    // -----------------------------------------------------------------------
    // Push token

    /// Stores a new push registration and sends it to every server, then sends
    /// any answers waiting in the outbox. Returns the first error (the other
    /// servers are still updated).
    pub async fn update_push_token(&self, push: PushRegistration) -> Result<()> {
        push.validate().map_err(from_input("push registration"))?;
        self.config.write().unwrap_or_else(|e| e.into_inner()).push = push.clone();
        let mut first_error = None;
        for id in self.push_account_ids()? {
            let session = self.session(&id)?;
            let call = self.connect(&session)?;
            let r = call.client.update_push(&call.who, &push).await;
            if let Err(e) = self.check_deregistered(&id, r) {
                first_error.get_or_insert(e);
            }
        }
        if first_error.is_none() {
            self.deliver_outbox_quietly().await;
        }
        first_error.map_or(Ok(()), Err)
    }

    /// "It was me": after repeated denials or unanswered requests the server
    /// suppresses pushes to the user, and nothing typed on a login page lifts
    /// that (the attacker may be the one typing). The user lifts it from the
    /// app with this call, signed by the device's possession key. A lock after
    /// a "not me" report stays until it ends or an operator unlocks it.
    pub async fn resume_pushes(&self, account_id: &str) -> Result<()> {
        let session = self.session(account_id)?;
        let call = self.connect(&session)?;
        let r = call.client.resume_pushes(&call.who).await;
        self.check_deregistered(account_id, r)
    }
}

#[cfg(test)]
mod tests {
    use super::shifted_clock;

    #[test]
    fn server_clock_saturates() {
        assert_eq!(shifted_clock(1_000, 25), 1_025);
        assert_eq!(shifted_clock(1_000, -25), 975);
        // A server far behind cannot push the time below zero.
        assert_eq!(shifted_clock(10, -25), 0);
        // Local times past i64::MAX are read as i64::MAX.
        assert_eq!(shifted_clock(u64::MAX, 0), i64::MAX as u64);
        assert_eq!(shifted_clock(u64::MAX, i64::MAX), i64::MAX as u64);
        assert_eq!(shifted_clock(0, i64::MIN), 0);
    }
}

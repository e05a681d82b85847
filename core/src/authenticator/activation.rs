//! Activation: redeeming an offer (URI or typed code) for a new push account.
//! Dp, Du and the first KEM key K are created in the vault first, the seed's
//! sealing key once the seed is open, all before the record names them, and
//! deleted again if anything fails.
//!
//! Two phases (docs/PROTOCOL.md §4): the activation request gets the signed
//! result while the server holds the device as *pending*; the core checks the
//! result (the pinned server key, its PIN policy), saves the account as waiting
//! and only then confirms (`POST /v1/device/activate/confirm`). A result the
//! device refuses is never confirmed, so the server never activates a device
//! the phone does not hold; the offer can be tried again until it expires or
//! its attempts run out. See `server_sync` for a confirmation that cannot be
//! delivered at once.

use super::kem::NewKem;
use super::record::{
    AccountRecord, PushAccount, RECORD_VERSION, RecordKind, SEED_AAD, UserKeyRecord,
};
use super::server_sync::Confirmation;
use super::store::{new_local_id, seed_alias};
use super::types::{AccountInfo, ActivationOptions, AuthenticatorConfig};
use super::{Authenticator, userkey};
use crate::client::DeviceClient;
use crate::crypto::PublicKey;
use crate::error::{Error, Result, from_input, from_server, internal};
use crate::platform::{KeyPurpose, KeySpec, LogLevel};
use crate::protocol::api::ErrorCode;
use crate::protocol::encoding::b64url;
use crate::protocol::{
    ActivationOffer, ActivationRequest, ActivationResult, DeviceInfo, OfferCredentials,
    ServerKeyPin, ServerUrl, Verification,
};

/// Estimated `server time - device time` from the result's signed server time.
fn clock_offset(server_time: u64, local_now: u64) -> i64 {
    i64::try_from(server_time)
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::try_from(local_now).unwrap_or(0))
}

/// Errors of the activation call, in activation words: the device API client
/// speaks of push requests. An answer that is not a signed message at all comes
/// from something that is not a Countersign server (the key pinned in the offer
/// is only checked after this), and "not found" is about the offer.
fn activation_error(e: Error) -> Error {
    match e {
        Error::Tampered => Error::NotCountersignServer,
        Error::RequestNotFound => Error::ServerRejected {
            code: ErrorCode::NotFound.as_str().to_owned(),
        },
        other => other,
    }
}

impl Authenticator {
    /// Activates from an offer URI (QR code or deep link). The server key is pinned
    /// to the fingerprint in the URI; a PIN shorter than the URI's `pin`
    /// (the server's minimum) is refused before any network call.
    ///
    /// An unknown offer is `ServerRejected { code: "not_found" }`, a used one
    /// `"replayed"`, one tried too often `"rate_limited"`, an expired one
    /// [`Error::RequestExpired`]; a server key that does not match the pin is
    /// [`Error::Tampered`]; an answer that is not a Countersign response is
    /// [`Error::NotCountersignServer`]; a PIN the server's policy refuses is
    /// `InvalidInput { what: "pin" }`. None of these leave an account on either
    /// side, and the offer can be tried again.
    ///
    /// [`Error::Network`] once the server has answered means the confirmation
    /// could not be delivered: the account waits (unlisted) and is confirmed by
    /// the next retry point ([`Self::deliver_outbox`], `pending`, `handle_push`);
    /// it is listed by [`Self::accounts`] once confirmed, or dropped if the
    /// server refuses (the offer expired or was used again meanwhile).
    ///
    /// [`Error::AwaitingApproval`]: the offer came from a transfer (§14) and
    /// the old device must approve this phone. The account waits, unlisted;
    /// poll [`Self::confirm_pending_activations`] (it is listed once approved;
    /// [`Error::TransferDenied`] drops it).
    pub async fn activate_uri(&self, uri: &str, options: ActivationOptions) -> Result<AccountInfo> {
        let offer = ActivationOffer::parse_uri(uri).map_err(from_input("activation URI"))?;
        self.activate(
            offer.server_url,
            offer.credentials,
            ServerKeyPin::Fingerprint(offer.server_key_fingerprint),
            offer.pin_min_length,
            options,
        )
        .await
    }

    /// Activates from a typed code and the server URL. Without a configured
    /// fingerprint (`server_key_fingerprint`), the server key is trusted on first
    /// use (TLS then protects this first exchange alone). The code is too short
    /// to carry the server's PIN policy: the PIN is checked against the signed
    /// result's policy, before the activation is confirmed.
    /// Errors as for [`Self::activate_uri`].
    pub async fn activate_code(
        &self,
        server_url: &str,
        code: &str,
        server_key_fingerprint: Option<[u8; 32]>,
        options: ActivationOptions,
    ) -> Result<AccountInfo> {
        let url = ServerUrl::parse(server_url).map_err(from_input("server URL"))?;
        let creds = OfferCredentials::parse_code(code).map_err(from_input("activation code"))?;
        let pin =
            server_key_fingerprint.map_or(ServerKeyPin::TrustOnFirstUse, ServerKeyPin::Fingerprint);
        self.activate(url, creds, pin, None, options).await
    }

    async fn activate(
        &self,
        server_url: ServerUrl,
        creds: OfferCredentials,
        pin: ServerKeyPin,
        pin_min_length: Option<u8>,
        options: ActivationOptions,
    ) -> Result<AccountInfo> {
        let config = self.config();
        if let Some(p) = &options.pin {
            let min = pin_min_length.map_or(userkey::MIN_PIN_LEN, usize::from);
            userkey::check_pin_shape(p, min)?;
        }
        let id = new_local_id('a')?;
        let dp_alias = format!("cs.{id}.dp");
        let dp_public = self.hooks.vault.create_key(
            &dp_alias,
            KeySpec {
                purpose: KeyPurpose::Signing,
                user_verification: false,
            },
        )?;
        // K, the first KEM key: in the vault too, before any record names it.
        let kem = match self.create_kem_key(&id) {
            Ok(kem) => kem,
            Err(e) => {
                let _ = self.hooks.vault.delete_key(&dp_alias);
                return Err(e);
            }
        };
        let result = self
            .activate_with_keys(
                &id, &dp_alias, dp_public, &kem, server_url, creds, pin, options, &config,
            )
            .await;
        if let Err(e) = result {
            self.discard_confirming(&id);
            for alias in [
                dp_alias,
                kem.alias,
                userkey::du_alias(&id),
                userkey::bio_alias(&id),
                seed_alias(&id),
            ] {
                let _ = self.hooks.vault.delete_key(&alias);
            }
            return Err(e);
        }
        // Saved as waiting: phase two. A final refusal drops the account.
        match self.confirm_new(&id).await? {
            Confirmation::Done(info) => Ok(info),
            Confirmation::Waiting => Err(Error::Network),
            Confirmation::AwaitingApproval => Err(Error::AwaitingApproval),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn activate_with_keys(
        &self,
        id: &str,
        dp_alias: &str,
        dp_public: PublicKey,
        kem: &NewKem,
        server_url: ServerUrl,
        creds: OfferCredentials,
        pin: ServerKeyPin,
        options: ActivationOptions,
        config: &AuthenticatorConfig,
    ) -> Result<()> {
        // Du in the vault (see `userkey` on why it is not UV-bound).
        let du_alias = userkey::du_alias(id);
        let du_public = self.hooks.vault.create_key(&du_alias, userkey::DU_SPEC)?;
        let du = self.vault_signer(&du_alias, du_public.clone());
        let dp = self.vault_signer(dp_alias, dp_public.clone());
        let local_now = self.hooks.clock.now()?;
        let request = ActivationRequest::new(
            &creds,
            dp_public.clone(),
            &du,
            kem.public.clone(),
            DeviceInfo {
                platform: config.platform,
                device_name: config.device_name.clone(),
                push: config.push.clone(),
            },
            local_now,
        )
        .map_err(from_input("device settings"))?;
        let signed = request.sign(&dp).map_err(internal)?;
        let answer = DeviceClient::new(self.hooks.http.as_ref(), local_now)
            .activate(server_url.as_str(), &signed)
            .await
            .map_err(activation_error)?;
        let result = ActivationResult::verify(&answer, pin, &creds.id).map_err(from_server)?;
        // The seed opens through the vault's ECDH: K never leaves the vault.
        let opener = self.new_kem_opener(kem);
        let seed = result
            .open_seed(opener.agreement())
            .map_err(|e| opener.error(e))?;
        let grant = &result.grant;
        let offset = clock_offset(grant.server_time, local_now);

        // The wraps protect a random token (opening one is the proof); with
        // neither, nothing secret is stored.
        let token = userkey::new_token()?;
        let mut user_key = UserKeyRecord {
            public: b64url(&du_public.to_sec1()),
            vault_alias: Some(du_alias),
            plain: None,
            pin: None,
            bio: None,
        };
        if let Some(p) = &options.pin {
            userkey::check_pin_shape(p, usize::from(grant.policy.pin_min_length))?;
            user_key.pin = Some(userkey::wrap_with_pin(
                token.as_slice(),
                p,
                id,
                config.pin_kdf_iterations,
            )?);
        }
        if options.biometric {
            user_key.bio = Some(userkey::wrap_with_vault(
                self.hooks.vault.as_ref(),
                &userkey::bio_alias(id),
                token.as_slice(),
                id,
            )?);
        }
        // The seed, sealed by its own vault key before the record names it.
        let sealed_seed = self.seal_new(&seed_alias(id), SEED_AAD, id, &seed)?;
        drop(seed);
        let kem_key = kem.record();
        let kem_kid = kem_key.kid.clone();
        let rec = AccountRecord {
            v: RECORD_VERSION,
            id: id.to_owned(),
            label: grant.user_label.clone(),
            issuer: grant.issuer.clone(),
            created: local_now,
            kind: RecordKind::Push(Box::new(PushAccount {
                server_url: server_url.as_str().to_owned(),
                account_id: grant.account_id.clone(),
                device_id: grant.device_id.clone(),
                server_key: b64url(&result.server_key.to_sec1()),
                policy: grant.policy,
                otp: grant.otp,
                seed: None,
                sealed_seed: Some(sealed_seed),
                dp_alias: dp_alias.to_owned(),
                dp_public: b64url(&dp_public.to_sec1()),
                user_key,
                clock_offset: offset,
                kem_keys: vec![kem_key],
                server_kem_kid: kem_kid,
                seen: Vec::new(),
                pin_failures: 0,
                min_verification: Verification::None,
            })),
        };
        // Saved before the confirmation is sent: once the server has made the
        // device active, the phone must hold the account (see `server_sync`).
        self.save_confirming(&rec)?;
        self.log(LogLevel::Info, "activation result accepted; confirming");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{activation_error, clock_offset};
    use crate::error::Error;

    #[test]
    fn activation_errors_speak_of_the_offer_and_the_server() {
        assert_eq!(
            activation_error(Error::Tampered),
            Error::NotCountersignServer
        );
        assert_eq!(
            activation_error(Error::RequestNotFound),
            Error::ServerRejected {
                code: "not_found".into()
            }
        );
        assert_eq!(activation_error(Error::Network), Error::Network);
        assert_eq!(
            activation_error(Error::RequestExpired),
            Error::RequestExpired
        );
    }

    #[test]
    fn clock_offset_is_server_minus_local() {
        assert_eq!(clock_offset(1_000, 990), 10);
        assert_eq!(clock_offset(990, 1_000), -10);
        assert_eq!(clock_offset(u64::MAX, 0), i64::MAX);
        assert_eq!(clock_offset(0, u64::MAX), 0);
    }
}

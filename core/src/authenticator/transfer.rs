//! Moving an account to a new phone, approved by this one (docs/PROTOCOL.md
//! §14). The old phone asks its server for an activation offer
//! ([`Authenticator::start_transfer`], after the user's PIN or biometrics
//! when the account has them) and shows it as a QR code; the new phone
//! activates with it as with any offer and waits (`Error::AwaitingApproval`,
//! `confirm_pending_activations`) until the old phone approves the `transfer`
//! request the server then sends it, like any other request.

use zeroize::Zeroizing;

use super::Authenticator;
use super::answer::stronger;
use super::record::PushAccount;
use super::store::public_from_text;
use super::types::TransferOffer;
use crate::crypto::ct_eq;
use crate::error::{Error, Result};
use crate::platform::LogLevel;
use crate::protocol::{ActivationOffer, OfferCredentials, ServerUrl, Verification};

/// The verification moving account `p` needs: what its policy and its user
/// require, and at least a PIN or biometrics whenever one is set up (handing
/// the account to another phone is at least as strong an act as any approval).
pub(super) fn transfer_verification(p: &PushAccount) -> Verification {
    let required = stronger(p.policy.default, p.min_verification);
    if p.user_key.pin.is_some() || p.user_key.bio.is_some() {
        stronger(required, Verification::Pin)
    } else {
        required
    }
}

/// The new phone pins what the offer URI says: it must name this account's
/// server (`server_url`) and pinned key (`pinned`, S's fingerprint), and the
/// typed `code` the same offer. Anything else is [`Error::Tampered`].
fn check_offer(uri: &str, code: &str, server_url: &str, pinned: &[u8; 32]) -> Result<()> {
    let offer = ActivationOffer::parse_uri(uri).map_err(|_| Error::Tampered)?;
    let typed = OfferCredentials::parse_code(code).map_err(|_| Error::Tampered)?;
    let ours = ServerUrl::parse(server_url).map_err(|_| Error::Internal)?;
    let same = offer.server_url.as_str() == ours.as_str()
        && ct_eq(&offer.server_key_fingerprint, pinned)
        && offer.credentials.id == typed.id
        && ct_eq(offer.credentials.secret.as_bytes(), typed.secret.as_bytes());
    if same { Ok(()) } else { Err(Error::Tampered) }
}

impl Authenticator {
    /// Starts moving push account `account_id` to a new phone: asks for the
    /// PIN or biometrics when the account has them (or its policy requires
    /// them), then for an activation offer from the account's server. Show
    /// the returned URI as a QR code (or the code) to the new phone. When it
    /// has activated, this phone receives a `transfer` request naming it:
    /// approving it makes the new phone active (and, with `remove_old`,
    /// removes this device, whose account is then wiped here at its next
    /// contact with the server); denying it leaves nothing active.
    ///
    /// Errors: the verification's; [`Error::DeviceDeregistered`] (the account
    /// is wiped); [`Error::Tampered`] when the server's offer does not name this
    /// account's server and pinned key; network and server refusals.
    pub async fn start_transfer(
        &self,
        account_id: &str,
        remove_old: bool,
    ) -> Result<TransferOffer> {
        let (required, server_url, server_key) = self.read(account_id, |r| {
            let p = r.push()?;
            Ok((
                transfer_verification(p),
                p.server_url.clone(),
                p.server_key.clone(),
            ))
        })?;
        if required != Verification::None {
            // Only the proof is needed; the unlocked key is dropped at once.
            let (key, _) = self
                .unlock_user_key(account_id, "Move this account to a new phone")
                .await?;
            drop(key);
        }
        let session = self.session(account_id)?;
        let call = self.connect(&session)?;
        let started = call.client.start_transfer(&call.who, remove_old).await;
        let started = self.check_deregistered(account_id, started)?;
        let offer_uri = Zeroizing::new(started.offer_uri);
        let code = Zeroizing::new(started.code);
        let pinned = public_from_text(&server_key)?.fingerprint();
        check_offer(&offer_uri, &code, &server_url, &pinned)?;
        self.log(
            LogLevel::Info,
            "transfer started; show the offer to the new phone",
        );
        Ok(TransferOffer {
            offer_uri,
            code,
            expires_at: u64::try_from(started.expires_at).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{check_offer, transfer_verification};
    use crate::authenticator::record::test_push_account;
    use crate::error::Error;
    use crate::protocol::{ActivationOffer, OfferCredentials, ServerUrl, Verification};

    #[test]
    fn the_offer_must_name_our_server_key_and_code() {
        let creds = OfferCredentials::generate().unwrap();
        let offer = |url: &str, fp: [u8; 32]| ActivationOffer {
            server_url: ServerUrl::parse(url).unwrap(),
            credentials: creds.clone(),
            server_key_fingerprint: fp,
            issuer: None,
            label: Some("alice".into()),
            pin_min_length: None,
        };
        let code = creds.to_code().to_string();
        let ours = "https://cs.example/";
        let good = offer(ours, [7; 32]).to_uri().to_string();
        assert_eq!(check_offer(&good, &code, ours, &[7; 32]), Ok(()));
        // Another key, another server, another offer's code: refused.
        assert_eq!(
            check_offer(&good, &code, ours, &[8; 32]),
            Err(Error::Tampered)
        );
        let elsewhere = offer("https://evil.example/", [7; 32]).to_uri().to_string();
        assert_eq!(
            check_offer(&elsewhere, &code, ours, &[7; 32]),
            Err(Error::Tampered)
        );
        let other = OfferCredentials::generate().unwrap().to_code().to_string();
        assert_eq!(
            check_offer(&good, &other, ours, &[7; 32]),
            Err(Error::Tampered)
        );
        assert_eq!(
            check_offer("https://not-an-offer", &code, ours, &[7; 32]),
            Err(Error::Tampered)
        );
    }

    #[test]
    fn moving_an_account_asks_for_what_is_set_up() {
        let mut p = test_push_account();
        assert_eq!(transfer_verification(&p), Verification::None);
        p.min_verification = Verification::Biometric;
        assert_eq!(transfer_verification(&p), Verification::Biometric);
        p.min_verification = Verification::None;
        p.policy.default = Verification::Pin;
        assert_eq!(transfer_verification(&p), Verification::Pin);
    }
}

//! User verification: unlocking Du with the app PIN (failure counter persisted
//! first, the account wiped at the limit) or biometrics, and the settings that
//! change how approvals are protected.
//!
//! Both forms of Du (see [`userkey`]) go through the same steps: the prompt,
//! then opening a wrap. What the wrap held (a vault-mode token, or a legacy
//! record's scalar) is the *unlock secret*; [`UserKey`] hides which form signs.

use zeroize::Zeroizing;

use super::store::public_from_text;
use super::userkey::UserKey;
use super::{Authenticator, userkey};
use crate::error::{Error, Result};
use crate::platform::{LogLevel, VerificationKind, VerificationOutcome, VerificationPrompt};
use crate::protocol::Verification;

/// The method to ask for: biometrics when the user turned them on (the platform
/// prompt falls back to the device passcode, and servers accept any user
/// verification for `pin` or `biometric`), else the app PIN; `None` when neither
/// is set up.
fn preferred_method(has_pin: bool, has_bio: bool) -> Option<VerificationKind> {
    match (has_pin, has_bio) {
        (_, true) => Some(VerificationKind::Biometric),
        (true, false) => Some(VerificationKind::Pin),
        (false, false) => None,
    }
}

/// The verification an answer reports after the user passed `kind`.
fn verification_level(kind: VerificationKind) -> Verification {
    match kind {
        VerificationKind::Pin => Verification::Pin,
        VerificationKind::Biometric => Verification::Biometric,
    }
}

impl Authenticator {
    /// Picks the method: biometrics if set up (the platform prompt falls back to
    /// the device passcode; servers accept any user verification for either
    /// level), else the app PIN.
    pub(super) async fn unlock_user_key(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<(UserKey, Verification)> {
        let (has_pin, has_bio, label, public, vault_alias) = self.read(id, |r| {
            let p = r.push()?;
            Ok((
                p.user_key.pin.is_some(),
                p.user_key.bio.is_some(),
                r.label.clone(),
                p.user_key.public.clone(),
                p.user_key.vault_alias.clone(),
            ))
        })?;
        // Neither set up: approvals that need verification are impossible.
        let kind = preferred_method(has_pin, has_bio).ok_or(Error::VerificationFailed)?;
        let unlocked = self.verify_user(id, kind, reason, &label).await?;
        let key = match vault_alias {
            // The wrap opened: that was the proof. Du signs in the vault.
            Some(alias) => UserKey::Vault(self.vault_signer(&alias, public_from_text(&public)?)),
            None => UserKey::Software(Box::new(userkey::signing_key(&unlocked, &public)?)),
        };
        let how = verification_level(kind);
        Ok((key, how))
    }

    /// Runs the prompt and opens a wrap: the unlock secret.
    async fn verify_user(
        &self,
        id: &str,
        kind: VerificationKind,
        reason: &str,
        label: &str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let outcome = self
            .hooks
            .verifier
            .verify(VerificationPrompt {
                kind,
                reason: reason.to_owned(),
                account_label: label.to_owned(),
            })
            .await?;
        match (outcome, kind) {
            (VerificationOutcome::Cancelled, _) => Err(Error::VerificationCancelled),
            (VerificationOutcome::Failed, _) => Err(Error::VerificationFailed),
            (VerificationOutcome::Verified { pin: Some(pin) }, VerificationKind::Pin) => {
                let checked = self.check_pin(id, &pin);
                if matches!(checked, Err(Error::PinLocked)) {
                    // Wiped: tell the server now if the network allows (else
                    // the tombstone waits for the next retry point).
                    self.deliver_tombstones().await;
                }
                checked
            }
            (VerificationOutcome::Verified { .. }, VerificationKind::Pin) => {
                Err(Error::VerificationFailed)
            }
            (VerificationOutcome::Verified { .. }, VerificationKind::Biometric) => {
                let wrap = self
                    .read(id, |r| Ok(r.push()?.user_key.bio.clone()))?
                    .ok_or(Error::VerificationFailed)?;
                userkey::unwrap_with_vault(self.hooks.vault.as_ref(), &wrap, id)
            }
        }
    }

    /// Checks a PIN: the failure counter is incremented and persisted first, the
    /// PIN-derived key then tried; success resets the counter; the last allowed
    /// failure wipes the account ([`Error::PinLocked`]), keeping a tombstone so
    /// the server deregisters the device (see `server_sync`).
    fn check_pin(&self, id: &str, pin: &str) -> Result<Zeroizing<Vec<u8>>> {
        let max = self.config().pin_max_attempts.max(1);
        let (failures, wrap) = self.update(id, |r| {
            let p = r.push_mut()?;
            let wrap = p.user_key.pin.clone().ok_or(Error::VerificationFailed)?;
            p.pin_failures = p.pin_failures.saturating_add(1);
            Ok((p.pin_failures, wrap))
        })?;
        if failures > max {
            // A crash after the limit was reached but before the wipe.
            self.wipe_and_tell_server(id)?;
            return Err(Error::PinLocked);
        }
        match userkey::unwrap_with_pin(&wrap, pin, id)? {
            Some(scalar) => {
                self.update(id, |r| {
                    r.push_mut()?.pin_failures = 0;
                    Ok(())
                })?;
                Ok(scalar)
            }
            None if failures >= max => {
                self.log(LogLevel::Warn, "too many wrong PINs; wiping the account");
                self.wipe_and_tell_server(id)?;
                Err(Error::PinLocked)
            }
            None => {
                self.log(LogLevel::Warn, "wrong PIN");
                Err(Error::WrongPin {
                    attempts_left: max - failures,
                })
            }
        }
    }

    /// The unlock secret a settings change wraps anew. Legacy record: Du's
    /// scalar, from the plain copy, else by asking the user (biometric
    /// preferred, else PIN). Du in the vault: a fresh token when nothing is set
    /// up yet (there is nothing to unwrap), else the token the user's check
    /// opened.
    async fn user_key_for_settings(&self, id: &str, reason: &str) -> Result<Zeroizing<Vec<u8>>> {
        let (plain, has_pin, has_bio, label, in_vault) = self.read(id, |r| {
            let p = r.push()?;
            Ok((
                p.user_key.plain.clone(),
                p.user_key.pin.is_some(),
                p.user_key.bio.is_some(),
                r.label.clone(),
                p.user_key.vault_alias.is_some(),
            ))
        })?;
        if in_vault {
            return match preferred_method(has_pin, has_bio) {
                None => userkey::new_token(),
                Some(kind) => self.verify_user(id, kind, reason, &label).await,
            };
        }
        if let Some(plain) = plain {
            return Ok(plain.0);
        }
        // A record with neither a plain copy nor a wrap is damaged.
        let kind = preferred_method(has_pin, has_bio).ok_or(Error::Internal)?;
        self.verify_user(id, kind, reason, &label).await
    }

    /// Sets the app PIN of an account that has none (if biometrics protect it, the
    /// user is asked for them first).
    pub async fn set_pin(&self, account_id: &str, new_pin: &str) -> Result<()> {
        let (has_pin, min) = self.read(account_id, |r| {
            let p = r.push()?;
            Ok((
                p.user_key.pin.is_some(),
                usize::from(p.policy.pin_min_length),
            ))
        })?;
        if has_pin {
            return Err(Error::InvalidInput {
                what: "pin already set",
            });
        }
        userkey::check_pin_shape(new_pin, min)?;
        let scalar = self.user_key_for_settings(account_id, "Set a PIN").await?;
        self.store_pin_wrap(account_id, &scalar, new_pin)
    }

    /// Changes the app PIN; a wrong `old_pin` counts as a failed attempt.
    pub async fn change_pin(&self, account_id: &str, old_pin: &str, new_pin: &str) -> Result<()> {
        let min = self.read(account_id, |r| {
            Ok(usize::from(r.push()?.policy.pin_min_length))
        })?;
        userkey::check_pin_shape(new_pin, min)?;
        let scalar = self.check_pin(account_id, old_pin)?;
        self.store_pin_wrap(account_id, &scalar, new_pin)
    }

    fn store_pin_wrap(&self, id: &str, scalar: &[u8], pin: &str) -> Result<()> {
        let wrap = userkey::wrap_with_pin(scalar, pin, id, self.config().pin_kdf_iterations)?;
        self.update(id, |r| {
            let p = r.push_mut()?;
            check_unlock_secret(&p.user_key, scalar)?;
            p.user_key.pin = Some(wrap.clone());
            p.user_key.plain = None;
            p.pin_failures = 0;
            Ok(())
        })
    }

    /// Protects approvals with biometrics: a user-verification-bound key is created
    /// in the vault and Du's unlock secret is wrapped under it (the user confirms
    /// with the current method first).
    pub async fn enable_biometric(&self, account_id: &str) -> Result<()> {
        let allowed = self.read(account_id, |r| Ok(r.push()?.policy.biometric_allowed))?;
        if !allowed {
            return Err(Error::Unsupported);
        }
        let scalar = self
            .user_key_for_settings(account_id, "Turn on biometric approval")
            .await?;
        let wrap = userkey::wrap_with_vault(
            self.hooks.vault.as_ref(),
            &userkey::bio_alias(account_id),
            &scalar,
            account_id,
        )?;
        self.update(account_id, |r| {
            let p = r.push_mut()?;
            check_unlock_secret(&p.user_key, &scalar)?;
            p.user_key.bio = Some(wrap.clone());
            p.user_key.plain = None;
            Ok(())
        })
    }

    /// Sets the verification the user requires for every approval on this account
    /// (challenges may still ask for more). Requiring a method that is not set up
    /// is refused.
    pub fn set_min_verification(&self, account_id: &str, level: Verification) -> Result<()> {
        self.update(account_id, |r| {
            let p = r.push_mut()?;
            let ok = match level {
                Verification::None => true,
                Verification::Pin | Verification::Biometric => {
                    p.user_key.pin.is_some() || p.user_key.bio.is_some()
                }
            };
            if !ok {
                return Err(Error::InvalidInput {
                    what: "verification method not set up",
                });
            }
            p.min_verification = level;
            Ok(())
        })
    }
}

/// Checks that `secret` is what `user_key`'s wraps must hold: a legacy
/// record's Du scalar (matching its public key), or a vault-mode token.
fn check_unlock_secret(user_key: &super::record::UserKeyRecord, secret: &[u8]) -> Result<()> {
    match user_key.vault_alias {
        Some(_) if secret.len() == userkey::TOKEN_LEN => Ok(()),
        Some(_) => Err(Error::Storage),
        None => userkey::signing_key(secret, &user_key.public).map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn biometrics_are_preferred_over_the_pin() {
        assert_eq!(
            preferred_method(true, true),
            Some(VerificationKind::Biometric)
        );
        assert_eq!(
            preferred_method(false, true),
            Some(VerificationKind::Biometric)
        );
        assert_eq!(preferred_method(true, false), Some(VerificationKind::Pin));
        assert_eq!(preferred_method(false, false), None);
    }

    #[test]
    fn answers_report_the_method_used() {
        assert_eq!(verification_level(VerificationKind::Pin), Verification::Pin);
        assert_eq!(
            verification_level(VerificationKind::Biometric),
            Verification::Biometric
        );
    }
}

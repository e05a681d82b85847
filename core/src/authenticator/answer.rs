//! Answering a pending request: approve (after user verification when needed)
//! or deny. The signed answer and the next KEM key are persisted before they are
//! sent, so a retry resends the same answer (the server answers a repeated
//! answer with the same acceptance). KEM keys are only dropped once the server
//! has confirmed which one it seals to (`kem_kid`), never on a refusal.

use super::Authenticator;
use super::record::{KemKey, Secret, SeenTx};
use super::session::Session;
use super::store::AccountSlot;
use super::types::ApprovalOutcome;
use crate::crypto::AgreementKey;
use crate::error::{Error, Result, internal};
use crate::platform::LogLevel;
use crate::protocol::encoding::b64url;
use crate::protocol::{Answer, Approval, DenyReason, OpenedChallenge, SignedMessage, Verification};

/// The effective verification: the stronger of what the challenge asks and what
/// the user requires (`biometric` and `pin` are alternatives; see `unlock_user_key`).
fn stronger(a: Verification, b: Verification) -> Verification {
    match (a, b) {
        (Verification::Biometric, _) | (_, Verification::Biometric) => Verification::Biometric,
        (Verification::Pin, _) | (_, Verification::Pin) => Verification::Pin,
        _ => Verification::None,
    }
}

impl Authenticator {
    /// Approves a pending request. `number` is what the user typed or picked when
    /// the challenge uses number matching. Asks for a PIN or biometrics first when
    /// the challenge or the account requires it. Returns the push OTP sent along.
    pub async fn approve(
        &self,
        account_id: &str,
        tx_id: &str,
        number: Option<&str>,
    ) -> Result<ApprovalOutcome> {
        let slot = self.slot(account_id)?;
        let pending = self.take_pending(account_id, tx_id)?;
        let opened = &pending.opened;
        self.check_not_expired(&slot, account_id, opened)?;
        opened
            .challenge
            .number_matching
            .check_entry(number)
            .map_err(|_| Error::InvalidInput { what: "number" })?;
        let (required, seed, digits) = self.read(&slot, |r| {
            let p = r.push()?;
            Ok((
                stronger(opened.challenge.verification, p.min_verification),
                Secret(p.seed.0.clone()),
                p.otp.digits,
            ))
        })?;
        let rp = opened.challenge.context.rp.clone();
        // User verification: no lock is held while the prompt is open.
        let (du, verification) = match required {
            Verification::None => (None, Verification::None),
            Verification::Pin | Verification::Biometric => {
                let (key, how) = self
                    .unlock_user_key(&slot, account_id, &format!("Approve sign-in to {rp}"))
                    .await?;
                (Some(key), how)
            }
        };
        self.check_not_expired(&slot, account_id, opened)?;
        let otp = crate::protocol::answer::push_otp(opened, &seed.0, digits).map_err(internal)?;
        let next = AgreementKey::generate()?;
        let session = self.session(&slot)?;
        let time = self.server_now(session.clock_offset);
        let answer = Answer::approve(
            opened,
            Approval {
                number: number.map(str::to_owned),
                otp: Some(otp.to_string()),
                verification,
            },
            next.public_key(),
            time,
        )
        .map_err(internal)?;
        let signed = match &du {
            Some(k) => answer.sign(k),
            None => answer.sign(&session.dp),
        }
        .map_err(|_| Error::Storage)?;
        drop(du);
        self.send_answer(&slot, account_id, opened, &session, signed, next)
            .await?;
        self.log(LogLevel::Info, "request approved");
        Ok(ApprovalOutcome {
            push_otp: otp,
            verification,
        })
    }

    /// Denies a pending request ("not me" reports fraud to the server).
    pub async fn deny(&self, account_id: &str, tx_id: &str, reason: DenyReason) -> Result<()> {
        let slot = self.slot(account_id)?;
        let pending = self.take_pending(account_id, tx_id)?;
        let opened = &pending.opened;
        self.check_not_expired(&slot, account_id, opened)?;
        let next = AgreementKey::generate()?;
        let session = self.session(&slot)?;
        let time = self.server_now(session.clock_offset);
        let answer = Answer::deny(opened, reason, next.public_key(), time).map_err(internal)?;
        let signed = answer.sign(&session.dp).map_err(|_| Error::Storage)?;
        self.send_answer(&slot, account_id, opened, &session, signed, next)
            .await?;
        self.log(LogLevel::Info, "request denied");
        Ok(())
    }

    /// Persists the answer and the next KEM key, sends the answer, and records the
    /// outcome. A stored, unconfirmed answer for the same transaction is resent
    /// instead (the server accepts one answer per challenge).
    async fn send_answer(
        &self,
        slot: &AccountSlot,
        id: &str,
        opened: &OpenedChallenge,
        session: &Session,
        signed: SignedMessage,
        next: AgreementKey,
    ) -> Result<()> {
        let tx = opened.challenge.tx_id.clone();
        let hash = b64url(&opened.hash);
        let answer_json =
            String::from_utf8(signed.to_json().map_err(internal)?).map_err(|_| Error::Internal)?;
        let next_kid = next.public_key().key_id();
        // Persist before sending: replay state, the answer bytes and the new K.
        let to_send = self.update(slot, |r| {
            let p = r.push_mut()?;
            let entry = match p.seen.iter_mut().find(|s| s.tx == tx) {
                Some(e) => e,
                None => {
                    p.seen.push(SeenTx {
                        tx: tx.clone(),
                        exp: opened.challenge.expires_at,
                        hash: hash.clone(),
                        answer: None,
                        next_kid: None,
                        done: false,
                    });
                    p.seen.last_mut().ok_or(Error::Internal)?
                }
            };
            if entry.done {
                return Err(Error::AlreadyAnswered);
            }
            if let Some(stored) = &entry.answer {
                return Ok(stored.clone());
            }
            entry.answer = Some(answer_json.clone());
            entry.next_kid = Some(next_kid.clone());
            p.kem_keys.push(KemKey {
                kid: next_kid.clone(),
                scalar: Secret::new(next.to_bytes().as_slice()),
            });
            Ok(answer_json.clone())
        })?;
        drop(next);
        let call = self.connect(session);
        let sent = call.client.answer(&call.who, &tx, to_send.as_bytes()).await;
        match sent {
            Ok(accepted) => {
                let confirmed = self.update(slot, |r| {
                    let p = r.push_mut()?;
                    let kid = p.seen.iter_mut().find(|s| s.tx == tx).and_then(|e| {
                        e.done = true;
                        e.answer = None;
                        e.next_kid.take()
                    });
                    // A server without `kem_kid` rotated to the answer's key.
                    let confirmed = match accepted.kem_kid.as_deref().or(kid.as_deref()) {
                        Some(k) => p.confirm_kem_key(k),
                        None => false,
                    };
                    p.trim_kem_keys();
                    Ok(confirmed)
                })?;
                self.pending_map().remove(&(id.to_owned(), tx));
                if !confirmed {
                    self.log(
                        LogLevel::Warn,
                        "the server seals to a KEM key this device does not hold",
                    );
                    self.resync_kem_key(slot, id, session).await;
                }
                Ok(())
            }
            Err(Error::Network) => Err(Error::Network),
            Err(Error::DeviceDeregistered) => Err(self.deregistered(id)),
            Err(e) => {
                // Definitive refusal. Expired / answered challenges are finished;
                // others (e.g. a wrong number) may be answered again. The answer's
                // next KEM key is kept (bounded by trimming): an earlier copy
                // whose response was lost may have been taken.
                let finished = matches!(e, Error::AlreadyAnswered | Error::RequestExpired);
                self.update(slot, |r| {
                    let p = r.push_mut()?;
                    if let Some(entry) = p.seen.iter_mut().find(|s| s.tx == tx) {
                        entry.answer = None;
                        entry.done = finished;
                        entry.next_kid = None;
                    }
                    p.trim_kem_keys();
                    Ok(())
                })?;
                if finished {
                    self.pending_map().remove(&(id.to_owned(), tx));
                }
                if e == Error::AlreadyAnswered {
                    // Which key the server seals to is in doubt: name one we hold.
                    self.resync_kem_key(slot, id, session).await;
                }
                Err(e)
            }
        }
    }

    /// Names this device's newest KEM key to the server (`PUT /v1/device/kem`)
    /// and confirms it. Runs when the device cannot tell which of its keys the
    /// server seals to. Best effort: on failure every key stays, and the next
    /// accepted answer, challenge or resync settles it.
    async fn resync_kem_key(&self, slot: &AccountSlot, id: &str, session: &Session) {
        let newest = self.read(slot, |r| {
            let key = r.push()?.kem_keys.last().ok_or(Error::Storage)?;
            AgreementKey::from_bytes(&key.scalar.0)
                .map(|k| k.public_key())
                .map_err(|_| Error::Storage)
        });
        let Ok(public) = newest else {
            self.log(LogLevel::Error, "no KEM key to resynchronise");
            return;
        };
        let call = self.connect(session);
        let named = call.client.update_kem_key(&call.who, &public).await;
        let result = match named {
            Ok(kid) if kid == public.key_id() => self.update(slot, |r| {
                let p = r.push_mut()?;
                p.confirm_kem_key(&kid);
                p.trim_kem_keys();
                Ok(())
            }),
            Ok(_) => Err(Error::Tampered),
            Err(Error::DeviceDeregistered) => Err(self.deregistered(id)),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => self.log(LogLevel::Info, "KEM key resynchronised"),
            Err(_) => self.log(LogLevel::Warn, "KEM key resynchronisation failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_levels_combine() {
        use Verification::*;
        assert_eq!(stronger(None, None), None);
        assert_eq!(stronger(Pin, None), Pin);
        assert_eq!(stronger(None, Biometric), Biometric);
        assert_eq!(stronger(Pin, Biometric), Biometric);
    }
}

//! Answering a pending request: approve (after user verification when needed)
//! or deny. The signed answer and the next KEM key are persisted before they are
//! sent, so a retry resends the same answer.

use super::Authenticator;
use super::record::{KemKey, PushAccount, Secret, SeenTx};
use super::session::Session;
use super::store::AccountSlot;
use super::types::{ApprovalOutcome, MAX_KEM_KEYS};
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

/// Keeps the server's current key and the newest others, at most [`MAX_KEM_KEYS`].
fn trim_kem_keys(p: &mut PushAccount) {
    while p.kem_keys.len() > MAX_KEM_KEYS {
        let Some(pos) = p.kem_keys.iter().position(|k| k.kid != p.server_kem_kid) else {
            break;
        };
        p.kem_keys.remove(pos);
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
            Ok(_) => {
                self.update(slot, |r| {
                    let p = r.push_mut()?;
                    let kid = p.seen.iter_mut().find(|s| s.tx == tx).and_then(|e| {
                        e.done = true;
                        e.answer = None;
                        e.next_kid.take()
                    });
                    if let Some(kid) = kid {
                        p.server_kem_kid = kid;
                    }
                    trim_kem_keys(p);
                    Ok(())
                })?;
                self.pending_map().remove(&(id.to_owned(), tx));
                Ok(())
            }
            Err(Error::Network) => Err(Error::Network),
            Err(Error::DeviceDeregistered) => Err(self.deregistered(id)),
            Err(e) => {
                // Definitive refusal: the server did not take the answer or its
                // KEM key. Expired / answered challenges are finished; others
                // (e.g. a wrong number) may be answered again.
                let finished = matches!(e, Error::AlreadyAnswered | Error::RequestExpired);
                self.update(slot, |r| {
                    let p = r.push_mut()?;
                    if let Some(entry) = p.seen.iter_mut().find(|s| s.tx == tx) {
                        entry.answer = None;
                        entry.done = finished;
                        if let Some(kid) = entry.next_kid.take() {
                            p.kem_keys
                                .retain(|k| k.kid != kid || k.kid == p.server_kem_kid);
                        }
                    }
                    Ok(())
                })?;
                if finished {
                    self.pending_map().remove(&(id.to_owned(), tx));
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authenticator::record::test_push_account;

    #[test]
    fn verification_levels_combine() {
        use Verification::*;
        assert_eq!(stronger(None, None), None);
        assert_eq!(stronger(Pin, None), Pin);
        assert_eq!(stronger(None, Biometric), Biometric);
        assert_eq!(stronger(Pin, Biometric), Biometric);
    }

    fn kem(kid: &str) -> KemKey {
        KemKey {
            kid: kid.into(),
            scalar: Secret::new(&[1; 32]),
        }
    }

    #[test]
    fn kem_keys_keep_the_servers_and_the_newest() {
        let mut p = test_push_account();
        p.kem_keys = ["k0", "k1", "k2", "k3", "k4", "k5"]
            .into_iter()
            .map(kem)
            .collect();
        p.server_kem_kid = "k1".into();
        trim_kem_keys(&mut p);
        let kids: Vec<&str> = p.kem_keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, ["k1", "k3", "k4", "k5"]);
        assert_eq!(kids.len(), MAX_KEM_KEYS);

        // Nothing else to drop: the server's key alone is never removed.
        p.kem_keys = vec![kem("k1")];
        trim_kem_keys(&mut p);
        assert_eq!(p.kem_keys.len(), 1);
    }
}

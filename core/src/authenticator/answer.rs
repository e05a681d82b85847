//! Answering a pending request: approve (after user verification when needed)
//! or deny, and the outbox that delivers the answers.
//!
//! The signed answer and the next KEM key (a new key in the vault, named by its
//! alias in the record) are persisted before they are sent,
//! so a retry resends the same answer (the server answers a repeated answer
//! with the same acceptance). An answer stays in the outbox until the server
//! acknowledges it or refuses it for good. KEM keys are only dropped once the
//! server has confirmed which one it seals to (`kem_kid`), never on a refusal;
//! a dropped key is deleted from the vault once the record without it is stored.

use zeroize::Zeroizing;

use super::Authenticator;
use super::inbox::stored_request_in;
use super::kem::NewKem;
use super::record::SEEN_GRACE;
use super::record::{PushAccount, SEED_AAD, SeenTx};
use super::session::Session;
use super::store::Loaded;
use super::transfer::transfer_verification;
use super::types::{ApprovalOutcome, Delivery, OutboxEntry, OutboxState};
use crate::error::{Error, Result, internal};
use crate::platform::LogLevel;
use crate::protocol::encoding::b64url;
use crate::protocol::{
    Answer, Approval, ChallengeKind, Decision, DenyReason, OpenedChallenge, SignedMessage,
    Verification,
};

/// The effective verification: the stronger of what the challenge asks and what
/// the user requires (`biometric` and `pin` are alternatives; see `unlock_user_key`).
pub(super) fn stronger(a: Verification, b: Verification) -> Verification {
    match (a, b) {
        (Verification::Biometric, _) | (_, Verification::Biometric) => Verification::Biometric,
        (Verification::Pin, _) | (_, Verification::Pin) => Verification::Pin,
        _ => Verification::None,
    }
}

/// The reason code an outbox entry reports for a final refusal.
fn refusal_code(e: &Error) -> String {
    match e {
        Error::AlreadyAnswered => "already_answered".into(),
        Error::RequestExpired => "expired".into(),
        Error::RequestNotFound => "not_found".into(),
        Error::VerificationFailed => "verification_required".into(),
        Error::Unsupported => "unsupported".into(),
        Error::ServerRejected { code } => code.clone(),
        _ => "failed".into(),
    }
}

/// Fresh requests made when the network keeps duplicating the answer's request
/// (each duplicate's refusal is `replayed`); after that it stays queued.
const REPLAYED_RETRIES: usize = 3;

/// The server saw this exact request before (a duplicate on the network): it
/// says nothing about the answer.
fn is_replayed<T>(r: &Result<T>) -> bool {
    matches!(r, Err(Error::ServerRejected { code }) if code == "replayed")
}

/// A refusal that may pass (the server is throttling, the network duplicates
/// requests): the answer stays queued.
fn is_transient(e: &Error) -> bool {
    matches!(e, Error::Network)
        || matches!(e, Error::ServerRejected { code } if code == "rate_limited" || code == "replayed")
}

/// The answer saved for `tx` in push account `p` and not yet acknowledged, if any.
fn saved_answer_in(p: &PushAccount, tx: &str) -> Result<Option<Answer>> {
    p.seen
        .iter()
        .find(|s| s.tx == tx && s.waiting())
        .and_then(|s| s.answer.as_ref())
        .map(|json| {
            SignedMessage::from_json(json.as_bytes())
                .and_then(|m| Answer::from_payload(m.payload_unverified()))
                .map_err(|_| Error::Storage)
        })
        .transpose()
}

/// An answer to save and send (see `save_and_send`).
struct Saving<'a> {
    opened: &'a OpenedChallenge,
    signed: SignedMessage,
    decision: Decision,
    next: &'a NewKem,
    /// Sends it (the record's session when the answer was made).
    session: &'a Session,
    /// The record the answer was made from, if this call read it (saves
    /// reading it again; the swap still checks it).
    base: Option<Loaded>,
}

/// A stored answer to send (see `send_saved`).
struct Saved<'a> {
    tx: &'a str,
    /// The signed answer's JSON, as stored.
    answer: &'a str,
    /// The challenge's expiry (server time).
    exp: u64,
    session: &'a Session,
    /// The record as this call last read or stored it, to record the outcome
    /// from (the swap still checks it).
    base: Option<Loaded>,
}

/// Whether the outbox tells the app about a refused answer (background
/// deliveries) or the caller gets the error itself (approve, deny).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Report {
    InOutbox,
    ToCaller,
}

impl Authenticator {
    /// Approves a pending request. `number` is what the user typed or picked when
    /// the challenge uses number matching. Asks for a PIN or biometrics first when
    /// the challenge or the account requires it. Returns the push OTP sent along
    /// and whether the approval reached the server or waits in the outbox.
    ///
    /// Works after a restart or in another process: the request is read from
    /// storage, or fetched again by account and tx id. If this approval was
    /// already saved (the app died before it was sent), it is delivered without
    /// asking the user again.
    pub async fn approve(
        &self,
        account_id: &str,
        tx_id: &str,
        number: Option<&str>,
    ) -> Result<ApprovalOutcome> {
        let outcome = self.approve_now(account_id, tx_id, number).await;
        // The server is reachable: send what other calls left in the outbox.
        if matches!(&outcome, Ok(o) if o.delivery == Delivery::Delivered) {
            self.deliver_outbox_quietly().await;
        }
        outcome
    }

    async fn approve_now(
        &self,
        account_id: &str,
        tx_id: &str,
        number: Option<&str>,
    ) -> Result<ApprovalOutcome> {
        // One read of the record for the saved answer, the stored request, the
        // expiry, what verification is required, the seed and the session;
        // the answer's save starts from it too (see `update_from`).
        let mut loaded = self.load(account_id)?;
        if let Some(saved) = saved_answer_in(loaded.1.push()?, tx_id)? {
            if saved.decision != Decision::Approve {
                return Err(Error::AlreadyAnswered);
            }
            drop(loaded);
            let delivery = self.deliver(account_id, tx_id, Report::ToCaller).await?;
            return Ok(ApprovalOutcome {
                push_otp: Zeroizing::new(saved.otp.clone().unwrap_or_default()),
                verification: saved.verification,
                delivery,
            });
        }
        let opened = match stored_request_in(loaded.1.push()?, tx_id)? {
            Some(opened) => opened,
            None => {
                // Not stored (e.g. a notification action after a restart):
                // fetched, opened and recorded, so the record is read again.
                drop(loaded);
                let opened = self.request_to_answer(account_id, tx_id).await?;
                loaded = self.load(account_id)?;
                opened
            }
        };
        let opened = &opened;
        let p = loaded.1.push()?;
        self.check_not_expired_at(p.clock_offset, opened)?;
        opened
            .challenge
            .number_matching
            .check_entry(number)
            .map_err(|_| Error::InvalidInput { what: "number" })?;
        let transfer = opened.challenge.kind == ChallengeKind::Transfer;
        let mut required = stronger(opened.challenge.verification, p.min_verification);
        if transfer {
            // Handing the account to another phone: at least what starting
            // a transfer asks (see `transfer`).
            required = stronger(required, transfer_verification(p));
        }
        let (seed, digits) = (p.seed_secret()?, p.otp.digits);
        let session = self.session_of(p)?;
        let rp = opened.challenge.context.rp.clone();
        let reason = if transfer {
            format!("Approve moving your {rp} account to a new phone")
        } else {
            format!("Approve sign-in to {rp}")
        };
        // User verification: no lock is held while the prompt is open.
        let (du, verification) = match required {
            Verification::None => (None, Verification::None),
            Verification::Pin | Verification::Biometric => {
                let (key, how) = self.unlock_user_key(account_id, &reason).await?;
                (Some(key), how)
            }
        };
        let session = if du.is_some() {
            // The user took their time: read the record again (a challenge
            // received meanwhile may have moved the clock offset). Expired
            // meanwhile?
            loaded = self.load(account_id)?;
            let p = loaded.1.push()?;
            self.check_not_expired_at(p.clock_offset, opened)?;
            self.session_of(p)?
        } else {
            session
        };
        let seed = self.open_secret(&seed, SEED_AAD, account_id)?;
        let otp = crate::protocol::answer::push_otp(opened, &seed, digits).map_err(internal)?;
        drop(seed);
        let time = self.server_now(session.clock_offset)?;
        // The next KEM key, created in the vault before the record names it.
        let next = self.create_kem_key(account_id)?;
        let signed = Answer::approve(
            opened,
            Approval {
                number: number.map(str::to_owned),
                otp: Some(otp.to_string()),
                verification,
            },
            next.public.clone(),
            time,
        )
        .map_err(internal)
        .and_then(|answer| {
            match &du {
                Some(k) => answer.sign(k),
                None => answer.sign(&session.dp),
            }
            .map_err(|_| Error::Storage)
        });
        drop(du);
        let delivery = match signed {
            Ok(signed) => {
                let saving = Saving {
                    opened,
                    signed,
                    decision: Decision::Approve,
                    next: &next,
                    session: &session,
                    base: Some(loaded),
                };
                self.save_and_send(account_id, saving).await
            }
            Err(e) => Err(e),
        };
        if delivery.is_err() {
            self.discard_kem_key_unless_named(account_id, &next.alias);
        }
        let delivery = delivery?;
        self.log(LogLevel::Info, "request approved");
        Ok(ApprovalOutcome {
            push_otp: otp,
            verification,
            delivery,
        })
    }

    /// Denies a pending request ("not me" reports fraud to the server). Works
    /// without the app's UI after a restart (a notification action): the
    /// request is read from storage or fetched again. Returns whether the
    /// denial reached the server or waits in the outbox.
    pub async fn deny(
        &self,
        account_id: &str,
        tx_id: &str,
        reason: DenyReason,
    ) -> Result<Delivery> {
        let delivery = self.deny_now(account_id, tx_id, reason).await;
        if delivery == Ok(Delivery::Delivered) {
            self.deliver_outbox_quietly().await;
        }
        delivery
    }

    async fn deny_now(
        &self,
        account_id: &str,
        tx_id: &str,
        reason: DenyReason,
    ) -> Result<Delivery> {
        if let Some(saved) = self.saved_answer(account_id, tx_id)? {
            if saved.decision != Decision::Deny {
                return Err(Error::AlreadyAnswered);
            }
            return self.deliver(account_id, tx_id, Report::ToCaller).await;
        }
        let opened = self.request_to_answer(account_id, tx_id).await?;
        self.check_not_expired(account_id, &opened)?;
        let session = self.session(account_id)?;
        let time = self.server_now(session.clock_offset)?;
        let next = self.create_kem_key(account_id)?;
        let signed = Answer::deny(&opened, reason, next.public.clone(), time)
            .map_err(internal)
            .and_then(|answer| answer.sign(&session.dp).map_err(|_| Error::Storage));
        let delivery = match signed {
            Ok(signed) => {
                let saving = Saving {
                    opened: &opened,
                    signed,
                    decision: Decision::Deny,
                    next: &next,
                    session: &session,
                    base: None,
                };
                self.save_and_send(account_id, saving).await
            }
            Err(e) => Err(e),
        };
        if delivery.is_err() {
            self.discard_kem_key_unless_named(account_id, &next.alias);
        }
        let delivery = delivery?;
        self.log(LogLevel::Info, "request denied");
        Ok(delivery)
    }

    /// The answer saved for `tx` and not yet acknowledged, if any.
    fn saved_answer(&self, id: &str, tx: &str) -> Result<Option<Answer>> {
        saved_answer_in(self.snapshot(id)?.push()?, tx)
    }

    /// Persists the answer and the next KEM key's handle (the outbox), then
    /// delivers it. The key is already in the vault; on an error the caller
    /// deletes it unless the record names it.
    async fn save_and_send(&self, id: &str, saving: Saving<'_>) -> Result<Delivery> {
        let Saving {
            opened,
            signed,
            decision,
            next,
            session,
            base,
        } = saving;
        let tx = opened.challenge.tx_id.clone();
        let hash = b64url(&opened.hash);
        let answer_json =
            String::from_utf8(signed.to_json().map_err(internal)?).map_err(|_| Error::Internal)?;
        let next_key = next.record();
        let ((), stored) = self.update_from(id, base, |r| {
            let p = r.push_mut()?;
            let entry = match p.seen.iter_mut().position(|s| s.tx == tx) {
                Some(i) => p.seen.get_mut(i).ok_or(Error::Internal)?,
                None => {
                    p.seen
                        .push(SeenTx::new(&tx, opened.challenge.expires_at, &hash));
                    p.seen.last_mut().ok_or(Error::Internal)?
                }
            };
            // Another process answered first: its answer stands.
            if entry.done || entry.answer.is_some() {
                return Err(Error::AlreadyAnswered);
            }
            entry.answer = Some(answer_json.clone());
            entry.decision = Some(decision);
            entry.next_kid = Some(next_key.kid.clone());
            p.kem_keys.push(next_key.clone());
            Ok(())
        })?;
        // Stored: sent as it is, without reading it back (the acknowledgement
        // is swapped in against what was just stored).
        let saved = Saved {
            tx: &tx,
            answer: &answer_json,
            exp: opened.challenge.expires_at,
            session,
            base: Some(stored),
        };
        self.send_saved(id, saved, Report::ToCaller).await
    }

    /// Sends the saved answer of `tx` and records the outcome: acknowledged
    /// (done, KEM key confirmed), still queued (network failure, throttled) or
    /// refused for good (reported to the caller or kept in the outbox).
    async fn deliver(&self, id: &str, tx: &str, report: Report) -> Result<Delivery> {
        // One read of the record for the answer and the session; the
        // acknowledgement's update starts from it.
        let loaded = self.load(id)?;
        let (answer, exp, session) = {
            let p = loaded.1.push()?;
            let (answer, exp) = match p.seen.iter().find(|s| s.tx == tx) {
                // Acknowledged meanwhile (another process delivered it).
                Some(s) if s.done => return Ok(Delivery::Delivered),
                Some(s) => match &s.answer {
                    Some(answer) => (answer.clone(), s.exp),
                    None => return Err(Error::RequestNotFound),
                },
                None => return Err(Error::RequestNotFound),
            };
            (answer, exp, self.session_of(p)?)
        };
        let saved = Saved {
            tx,
            answer: &answer,
            exp,
            session: &session,
            base: Some(loaded),
        };
        self.send_saved(id, saved, report).await
    }

    /// Sends a stored answer and records the outcome (see [`Self::deliver`]).
    async fn send_saved(&self, id: &str, saved: Saved<'_>, report: Report) -> Result<Delivery> {
        let Saved {
            tx,
            answer,
            exp,
            session,
            base,
        } = saved;
        let call = self.connect(session)?;
        let mut sent = call.client.answer(&call.who, tx, answer.as_bytes()).await;
        for _ in 0..REPLAYED_RETRIES {
            if !is_replayed(&sent) {
                break;
            }
            // The network delivered this very request twice and we got the
            // second copy's refusal: ask again in a new signed request to learn
            // what became of the first (a repeated answer gets the same reply).
            let call = self.connect(session)?;
            sent = call.client.answer(&call.who, tx, answer.as_bytes()).await;
        }
        let now = self.server_now(session.clock_offset)?;
        match sent {
            Ok(accepted) => {
                let ((confirmed, retired), _) = self.update_from(id, base, |r| {
                    let p = r.push_mut()?;
                    let kid = p.seen.iter_mut().find(|s| s.tx == tx).and_then(|e| {
                        e.done = true;
                        e.answer = None;
                        e.shown = None;
                        e.next_kid.take()
                    });
                    // A server without `kem_kid` rotated to the answer's key.
                    let confirmed = match accepted.kem_kid.as_deref().or(kid.as_deref()) {
                        Some(k) => p.confirm_kem_key(k, now),
                        None => false,
                    };
                    Ok((confirmed, p.trim_kem_keys(now)))
                })?;
                // Stored without them: the retired keys can go.
                self.delete_kem_keys(&retired);
                if !confirmed {
                    self.log(
                        LogLevel::Warn,
                        "the server seals to a KEM key this device does not hold",
                    );
                    self.resync_kem_key(id, session).await;
                }
                Ok(Delivery::Delivered)
            }
            Err(Error::DeviceDeregistered) => Err(self.deregistered(id)),
            Err(e) if is_transient(&e) => {
                // Undeliverable long after expiry: the server would refuse it.
                if now > exp.saturating_add(SEEN_GRACE) {
                    self.refused(id, tx, &Error::RequestExpired, report)?;
                    return Err(Error::RequestExpired);
                }
                Ok(Delivery::Queued)
            }
            Err(e) => {
                self.refused(id, tx, &e, report)?;
                if e == Error::AlreadyAnswered {
                    // Which key the server seals to is in doubt: name one we hold.
                    self.resync_kem_key(id, session).await;
                }
                Err(e)
            }
        }
    }

    /// Records a final refusal. Expired and answered challenges are finished;
    /// others (e.g. a wrong number) may be answered again. The answer's next
    /// KEM key is kept (bounded by trimming): an earlier copy whose response was
    /// lost may have been taken.
    fn refused(&self, id: &str, tx: &str, e: &Error, report: Report) -> Result<()> {
        let offset = self.read(id, |r| Ok(r.push()?.clock_offset))?;
        let now = self.server_now(offset)?;
        let finished = matches!(e, Error::AlreadyAnswered | Error::RequestExpired);
        self.log(
            LogLevel::Warn,
            &format!("answer to {tx} of account {id} refused: {e}"),
        );
        let retired = self.update(id, |r| {
            let p = r.push_mut()?;
            if let Some(entry) = p.seen.iter_mut().find(|s| s.tx == tx) {
                entry.answer = None;
                entry.next_kid = None;
                entry.done = finished;
                if finished {
                    entry.shown = None;
                }
                if report == Report::InOutbox {
                    entry.refused = Some(refusal_code(e));
                } else {
                    entry.decision = None;
                }
            }
            Ok(p.trim_kem_keys(now))
        })?;
        self.delete_kem_keys(&retired);
        Ok(())
    }

    /// Sends every answer waiting in the outbox (saved before a crash, a lost
    /// response or a network failure) and returns what is still there: answers
    /// still waiting and answers the server refused for good. Call it when the
    /// app starts; `pending`, `handle_push`, `approve` and `deny` also call it.
    /// A network failure leaves answers waiting and is not an error.
    ///
    /// It first tells the servers what they must still hear: activations
    /// waiting for their confirmation (the account is listed once confirmed)
    /// and devices wiped after too many wrong PINs (deregistered).
    pub async fn deliver_outbox(&self) -> Result<Vec<OutboxEntry>> {
        self.send_outbox().await?;
        self.outbox()
    }

    /// What [`Self::deliver_outbox`] sends, without listing what is left.
    async fn send_outbox(&self) -> Result<()> {
        self.sync_with_servers().await;
        for rec in self.records()? {
            let Ok(p) = rec.push() else { continue };
            let waiting: Vec<String> = p
                .seen
                .iter()
                .filter(|s| s.waiting())
                .map(|s| s.tx.clone())
                .collect();
            for tx in waiting {
                match self.deliver(&rec.id, &tx, Report::InOutbox).await {
                    Ok(_) => {}
                    Err(Error::DeviceDeregistered) => break,
                    // Recorded in the outbox entry (and logged).
                    Err(_) => {}
                }
            }
        }
        Ok(())
    }

    /// [`Self::deliver_outbox`] before or after another call: failures are
    /// logged only, and what is left is not listed (nobody would read it).
    pub(super) async fn deliver_outbox_quietly(&self) {
        if let Err(e) = self.send_outbox().await {
            self.log(LogLevel::Warn, &format!("outbox delivery failed: {e}"));
        }
    }

    /// The answers waiting to be delivered and those refused for good and not
    /// yet dismissed, oldest expiry first (no network).
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        let mut out = Vec::new();
        for rec in self.records()? {
            let Ok(p) = rec.push() else { continue };
            for s in &p.seen {
                let state = match (&s.refused, s.waiting()) {
                    (Some(code), _) => OutboxState::Refused { code: code.clone() },
                    (None, true) => OutboxState::Waiting,
                    (None, false) => continue,
                };
                let Some(decision) = s.decision else { continue };
                out.push(OutboxEntry {
                    account_id: rec.id.clone(),
                    tx_id: s.tx.clone(),
                    decision,
                    expires_at: s.exp,
                    state,
                });
            }
        }
        out.sort_by(|a, b| (a.expires_at, &a.tx_id).cmp(&(b.expires_at, &b.tx_id)));
        Ok(out)
    }

    /// Removes a refused answer's report once the app has told the user.
    pub fn dismiss_outbox_entry(&self, account_id: &str, tx_id: &str) -> Result<()> {
        self.update(account_id, |r| {
            let p = r.push_mut()?;
            let entry = p
                .seen
                .iter_mut()
                .find(|s| s.tx == tx_id && s.refused.is_some())
                .ok_or(Error::RequestNotFound)?;
            entry.refused = None;
            entry.decision = None;
            Ok(())
        })
    }

    /// Names this device's newest KEM key to the server (`PUT /v1/device/kem`)
    /// and confirms it. Runs when the device cannot tell which of its keys the
    /// server seals to. Best effort: on failure every key stays, and the next
    /// accepted answer, challenge or resync settles it.
    pub(super) async fn resync_kem_key(&self, id: &str, session: &Session) {
        let newest = self.read(id, |r| {
            r.push()?
                .kem_keys
                .last()
                .ok_or(Error::Storage)?
                .public_key()
        });
        let Ok(public) = newest else {
            self.log(LogLevel::Error, "no KEM key to resynchronise");
            return;
        };
        let named = match self.connect(session) {
            Ok(call) => call.client.update_kem_key(&call.who, &public).await,
            Err(e) => Err(e),
        };
        let result = match named {
            Ok(kid) if kid == public.key_id() => {
                self.server_now(session.clock_offset).and_then(|now| {
                    self.update(id, |r| {
                        let p = r.push_mut()?;
                        p.confirm_kem_key(&kid, now);
                        Ok(p.trim_kem_keys(now))
                    })
                    .map(|retired| self.delete_kem_keys(&retired))
                })
            }
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

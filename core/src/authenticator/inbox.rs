//! The inbox: push notifications, fetching, verifying and opening challenges
//! (recorded before they are shown), long-polling every server, and the
//! pending requests waiting for the user.

use std::collections::HashMap;

use super::Authenticator;
use super::record::{PushAccount, Secret, SeenTx};
use super::session::{Session, shifted_clock};
use super::store::public_from_text;
use super::types::PendingRequest;
use super::util::{CancelHandle, first_decisive, with_cancel};
use crate::client::PendingEntry;
use crate::error::{Error, Result, from_input, from_server};
use crate::platform::LogLevel;
use crate::protocol::encoding::b64url;
use crate::protocol::login::LoginQr;
use crate::protocol::{DeviceBinding, OpenedChallenge, SealedChallenge, ServerUrl, SignedMessage};

/// The stored, unanswered request `tx` of push account `p`, if any.
pub(super) fn stored_request_in(p: &PushAccount, tx: &str) -> Result<Option<OpenedChallenge>> {
    p.seen
        .iter()
        .find(|s| s.tx == tx && !s.done && s.answer.is_none())
        .and_then(|s| s.shown.as_ref())
        .map(|plain| OpenedChallenge::from_stored_plaintext(&plain.0).map_err(|_| Error::Storage))
        .transpose()
}

/// Whether a server's list differs from the ids held (`known`) as a set.
fn differs(list: &[PendingEntry], known: &[String]) -> bool {
    list.len() != known.len() || list.iter().any(|e| !known.contains(&e.tx))
}

impl Authenticator {
    /// Handles a push notification's data (`device_id` and `tx_id`, as the server
    /// sends them): fetches, verifies and opens the challenge, records it, and
    /// returns it as a pending request to show. Also sends any answers waiting in
    /// the outbox.
    pub async fn handle_push(&self, data: &HashMap<String, String>) -> Result<PendingRequest> {
        let device_id = data
            .get("device_id")
            .ok_or(Error::InvalidInput { what: "push data" })?;
        let tx_id = data
            .get("tx_id")
            .ok_or(Error::InvalidInput { what: "push data" })?;
        let id = self
            .records()?
            .into_iter()
            .find(|r| r.push().map(|p| &p.device_id == device_id).unwrap_or(false))
            .map(|r| r.id.clone())
            .ok_or(Error::NotActivated)?;
        let request = self.fetch_and_open(&id, tx_id).await;
        self.deliver_outbox_quietly().await;
        request
    }

    /// The pending request `tx` of account `id`: the stored one, or fetched from
    /// the server, verified, opened and recorded.
    pub(super) async fn fetch_and_open(&self, id: &str, tx: &str) -> Result<PendingRequest> {
        // One read of the record for the stored request, the replay check and
        // the session.
        let session = {
            let rec = self.snapshot(id)?;
            let p = rec.push()?;
            if let Some(opened) = stored_request_in(p, tx)? {
                return self.to_request(id, &opened, p.clock_offset);
            }
            p.check_unanswered(tx)?;
            self.session_of(p)?
        };
        let call = self.connect(&session)?;
        let fetched = call.client.fetch_challenge(&call.who, tx).await;
        let envelope = self.check_deregistered(id, fetched)?;
        let request = match self.receive_envelope(id, &envelope) {
            Err(Error::Tampered) if self.sealed_to_a_key_not_held(id, &envelope) => {
                // S signed it, but for a KEM key this device no longer holds: the
                // server's idea of our key is stale. Name one we hold, so the
                // next challenge opens.
                let session = self.session(id)?;
                self.resync_kem_key(id, &session).await;
                return Err(Error::Tampered);
            }
            other => other?,
        };
        if request.tx_id != tx {
            return Err(Error::Tampered);
        }
        Ok(request)
    }

    /// Whether a genuine (S-signed) envelope names a KEM key this device does
    /// not hold.
    fn sealed_to_a_key_not_held(&self, id: &str, envelope: &SignedMessage) -> bool {
        let held = self.read(id, |r| {
            let p = r.push()?;
            let sealed = SealedChallenge::verify(envelope, &public_from_text(&p.server_key)?)
                .map_err(|_| Error::Tampered)?;
            let kid = &sealed.header().kem_kid;
            Ok(p.kem_keys.iter().any(|k| &k.kid == kid))
        });
        held == Ok(false)
    }

    /// Scans a QR login shown on a login page (`countersign://login?…`,
    /// docs/PROTOCOL.md §13): claims it on its server with the QR's one-time
    /// secret, then verifies, opens and records the challenge the server seals
    /// for this device, exactly like a push. Show it (its context says where the
    /// browser is) and answer it with [`Self::approve`] / [`Self::deny`], under
    /// the same verification policy. No push service is involved.
    ///
    /// `account_id` picks the account when the app has several on that server
    /// (else [`Error::InvalidInput`] `account`); with one it may be `None`.
    /// [`Error::NotActivated`]: no account on that server. Scanning again after
    /// a lost response returns the same request; another device's scan first
    /// is [`Error::AlreadyAnswered`], an expired QR [`Error::RequestExpired`].
    pub async fn scan_login_qr(
        &self,
        uri: &str,
        account_id: Option<&str>,
    ) -> Result<PendingRequest> {
        let qr = LoginQr::parse_uri(uri.trim()).map_err(from_input("login QR"))?;
        let on_server: Vec<String> = self
            .records()?
            .into_iter()
            .filter(|r| {
                r.push()
                    .ok()
                    .and_then(|p| ServerUrl::parse(&p.server_url).ok())
                    .is_some_and(|url| url == qr.server_url)
            })
            .map(|r| r.id.clone())
            .collect();
        let id = match (account_id, on_server.as_slice()) {
            (Some(chosen), _) if on_server.iter().any(|i| i == chosen) => chosen.to_owned(),
            (Some(_), _) => return Err(Error::InvalidInput { what: "account" }),
            (None, [only]) => only.clone(),
            (None, []) => return Err(Error::NotActivated),
            (None, _) => return Err(Error::InvalidInput { what: "account" }),
        };
        let session = self.session(&id)?;
        let call = self.connect(&session)?;
        let claimed = call
            .client
            .claim_login(&call.who, &qr.login_id, &qr.secret)
            .await;
        let envelope = self.check_deregistered(&id, claimed)?;
        let request = self.receive_envelope(&id, &envelope);
        if matches!(request, Err(Error::Tampered)) && self.sealed_to_a_key_not_held(&id, &envelope)
        {
            // As for a push: name a key we hold; scanning again then opens.
            self.resync_kem_key(&id, &session).await;
        }
        self.deliver_outbox_quietly().await;
        request
    }

    /// Verifies, opens and records a signed challenge envelope that reached the app
    /// by another channel (a scanned QR in online mode). Same checks as a push.
    pub fn receive_challenge(
        &self,
        account_id: &str,
        envelope_json: &[u8],
    ) -> Result<PendingRequest> {
        let msg = SignedMessage::from_json(envelope_json).map_err(from_server)?;
        self.receive_envelope(account_id, &msg)
    }

    fn receive_envelope(&self, id: &str, envelope: &SignedMessage) -> Result<PendingRequest> {
        let skew = self.config().clock_skew_secs;
        // One read of the record for the checks (a copy: KEM keys are vault
        // handles; a legacy inline scalar stays zeroizing). The update below
        // starts from it and checks the replay state again on the record it
        // changes.
        let loaded = self.load(id)?;
        let p = loaded.1.push()?;
        let server_key = public_from_text(&p.server_key)?;
        let binding = DeviceBinding {
            account_id: p.account_id.clone(),
            device_id: p.device_id.clone(),
        };
        let offset = p.clock_offset;
        // 1. S's signature, before anything else is looked at.
        let sealed = SealedChallenge::verify(envelope, &server_key).map_err(|e| {
            self.log(LogLevel::Warn, "challenge envelope failed verification");
            from_server(e)
        })?;
        let header = sealed.header();
        // 2. Replay: a signed header naming an answered transaction.
        p.check_unanswered(&header.tx_id)?;
        // 3. The KEM key it names (a deleted key cannot open it: forward secrecy).
        let kem = p
            .kem_keys
            .iter()
            .find(|k| k.kid == header.kem_kid)
            .ok_or_else(|| {
                self.log(
                    LogLevel::Warn,
                    "challenge sealed to a KEM key this device no longer holds",
                );
                Error::Tampered
            })
            .and_then(|k| self.kem_opener(k))?;
        let sealed_to = header.kem_kid.clone();
        // 4. Binding, expiry by the server clock, decryption, strict parse.
        let local_now = self.hooks.clock.now()?;
        let server_now = shifted_clock(local_now, offset);
        // HPKE opens through the vault's ECDH: K never leaves the vault.
        let opened = sealed
            .open(kem.agreement(), &binding, server_now, skew)
            .map_err(|e| {
                self.log(LogLevel::Warn, "challenge rejected");
                kem.error(e)
            })?;
        // 5. Record it, the clock evidence and the request itself before showing it.
        let hash = b64url(&opened.hash);
        let tx = opened.challenge.tx_id.clone();
        let exp = opened.challenge.expires_at;
        let iat = opened.challenge.issued_at;
        let local_now = i64::try_from(local_now).unwrap_or(i64::MAX);
        let (offset, _) = self.update_from(id, Some(loaded), |r| {
            let p = r.push_mut()?;
            // The server's clock read at least `iat` when it signed the challenge.
            let evidence = i64::try_from(iat).unwrap_or(0).saturating_sub(local_now);
            if evidence > p.clock_offset {
                p.clock_offset = evidence;
            }
            // S sealed this to one of our keys: the server has moved to it.
            p.saw_kem_key_used(&sealed_to, server_now);
            match p.seen.iter_mut().find(|s| s.tx == tx) {
                Some(s) if s.done || s.answer.is_some() => return Err(Error::AlreadyAnswered),
                Some(s) if s.hash != hash => return Err(Error::Tampered),
                Some(s) => s.shown = Some(Secret::new(&opened.plaintext)),
                None => p.seen.push(SeenTx {
                    shown: Some(Secret::new(&opened.plaintext)),
                    ..SeenTx::new(&tx, exp, &hash)
                }),
            }
            let now = u64::try_from(local_now.saturating_add(p.clock_offset)).unwrap_or(0);
            p.prune_seen(now);
            Ok(p.clock_offset)
        })?;
        self.to_request(id, &opened, offset)
    }

    /// The request to show for `opened`, its time left by the server clock
    /// estimated with `offset` (the account's stored clock offset).
    fn to_request(
        &self,
        id: &str,
        opened: &OpenedChallenge,
        offset: i64,
    ) -> Result<PendingRequest> {
        let now = self.server_now(offset)?;
        let exp = opened.challenge.expires_at;
        Ok(PendingRequest {
            account_id: id.to_owned(),
            tx_id: opened.challenge.tx_id.clone(),
            challenge: opened.challenge.clone(),
            expires_at: exp,
            seconds_left: exp.saturating_sub(now),
        })
    }

    /// The stored, unanswered request `tx` of account `id`, if any.
    pub(super) fn stored_request(&self, id: &str, tx: &str) -> Result<Option<OpenedChallenge>> {
        stored_request_in(self.snapshot(id)?.push()?, tx)
    }

    /// Lists pending requests of every push account, asking each server; with
    /// `wait_secs > 0` it long-polls until one server's list differs from the
    /// requests already held for that account (a new request, or a held one
    /// answered on another device, ended or expired), or the time passes; then
    /// it asks the other servers once more without waiting, so one call returns
    /// the requests of every account on every server. So while a request waits
    /// for the user the call waits too, instead of returning at once. Held
    /// requests the server no longer lists leave the list (the result can be
    /// empty after an answer).
    /// `cancel` stops the wait ([`Error::Cancelled`]). A server that reports this
    /// device removed wipes its account (and the call goes on with the others).
    ///
    /// A listed challenge that cannot be fetched ([`Error::Network`]) or does not
    /// verify ([`Error::Tampered`], logged with its account and tx id) fails the
    /// call with that error; the requests that did open are still in
    /// [`Self::pending_requests`].
    pub async fn pending(
        &self,
        wait_secs: u32,
        cancel: &CancelHandle,
    ) -> Result<Vec<PendingRequest>> {
        with_cancel(self.poll_all(wait_secs), cancel).await?
    }

    async fn poll_all(&self, wait_secs: u32) -> Result<Vec<PendingRequest>> {
        // Answers saved earlier go first: a waiting decision is older news.
        self.deliver_outbox_quietly().await;
        let mut targets = Vec::new();
        for id in self.push_account_ids()? {
            let session = self.session(&id)?;
            targets.push((id, session));
        }
        if targets.is_empty() {
            return Err(Error::NotActivated);
        }
        // What each account already holds: its server answers when that changes.
        let mut known = Vec::new();
        for (id, _) in &targets {
            known.push(self.held_tx_ids(id)?);
        }
        let known_of = |i: usize| known.get(i).map(Vec::as_slice).unwrap_or_default();
        let polls: Vec<_> = targets
            .iter()
            .enumerate()
            .map(|(i, (_, session))| self.poll_server(i, session, wait_secs, known_of(i)))
            .collect();
        let mut results = first_decisive(polls, |(i, r)| {
            r.as_ref()
                .map(|l| differs(l, known_of(*i)))
                .unwrap_or(false)
        })
        .await;
        // The long-polls cut short when one server answered: ask those servers
        // again without waiting, so no account's requests wait for the next call.
        let cut_short: Vec<_> = targets
            .iter()
            .enumerate()
            .filter(|(i, _)| !results.iter().any(|(done, _)| done == i))
            .map(|(i, (_, session))| self.poll_server(i, session, 0, known_of(i)))
            .collect();
        if !cut_short.is_empty() {
            results.extend(first_decisive(cut_short, |_| false).await);
        }
        let mut poll_error = None;
        let mut fetch_error = None;
        let mut any_ok = false;
        for (i, result) in results {
            let Some((id, _)) = targets.get(i) else {
                continue;
            };
            match result {
                Ok(list) => {
                    any_ok = true;
                    let gone: Vec<&str> = known_of(i)
                        .iter()
                        .filter(|t| !list.iter().any(|e| &e.tx == *t))
                        .map(String::as_str)
                        .collect();
                    self.forget_ended(id, &gone);
                    for entry in list {
                        match self.fetch_and_open(id, &entry.tx).await {
                            // Answered, expired or withdrawn since it was listed.
                            Ok(_)
                            | Err(Error::AlreadyAnswered)
                            | Err(Error::RequestExpired)
                            | Err(Error::RequestNotFound) => {}
                            Err(Error::DeviceDeregistered) => break,
                            Err(e) => {
                                // Ids only: the challenge's contents are never logged.
                                self.log(
                                    LogLevel::Warn,
                                    &format!(
                                        "challenge {} of account {id} could not be opened: {e}",
                                        entry.tx
                                    ),
                                );
                                fetch_error.get_or_insert(e);
                            }
                        }
                    }
                }
                Err(Error::DeviceDeregistered) => {
                    let _ = self.deregistered(id);
                    poll_error.get_or_insert(Error::DeviceDeregistered);
                }
                Err(e) => {
                    poll_error.get_or_insert(e);
                }
            }
        }
        // A request the server listed is never turned into "nothing pending".
        if let Some(e) = fetch_error {
            return Err(e);
        }
        if !any_ok && let Some(e) = poll_error {
            return Err(e);
        }
        self.pending_requests()
    }

    /// One server's list of pending challenges for one account (`i` tags the
    /// result), waiting while it equals `known`.
    async fn poll_server(
        &self,
        i: usize,
        session: &Session,
        wait_secs: u32,
        known: &[String],
    ) -> (usize, Result<Vec<PendingEntry>>) {
        let call = match self.connect(session) {
            Ok(call) => call,
            Err(e) => return (i, Err(e)),
        };
        (i, call.client.pending(&call.who, wait_secs, known).await)
    }

    /// The tx ids of account `id`'s requests held for the user (received, not
    /// answered): what its polls name as `known`. Also those past their expiry
    /// by this device's estimate, while the server may still list them.
    fn held_tx_ids(&self, id: &str) -> Result<Vec<String>> {
        self.read(id, |r| {
            Ok(r.push()?
                .seen
                .iter()
                .filter(|s| s.shown.is_some() && !s.done && s.answer.is_none())
                .map(|s| s.tx.clone())
                .collect())
        })
    }

    /// Forgets the contents of account `id`'s held requests in `gone`: held when
    /// the poll started and no longer pending on the server (answered on another
    /// device, ended, expired, withdrawn). They leave [`Self::pending_requests`];
    /// answering one anyway fetches it again and gets the server's verdict.
    fn forget_ended(&self, id: &str, gone: &[&str]) {
        if gone.is_empty() {
            return;
        }
        let forgotten = self.update(id, |r| {
            for s in &mut r.push_mut()?.seen {
                if gone.contains(&s.tx.as_str()) && !s.done && s.answer.is_none() {
                    s.shown = None;
                }
            }
            Ok(())
        });
        if let Err(e) = forgotten {
            self.log(
                LogLevel::Warn,
                &format!("ended requests of account {id} could not be forgotten: {e}"),
            );
        }
    }

    /// The requests already received and not yet answered or expired, from
    /// storage (no network): also those another process received, or received
    /// before a restart.
    pub fn pending_requests(&self) -> Result<Vec<PendingRequest>> {
        let mut out = Vec::new();
        for rec in self.records()? {
            let Ok(p) = rec.push() else { continue };
            let now = self.server_now(p.clock_offset)?;
            for s in &p.seen {
                let Some(plain) = s.shown.as_ref() else {
                    continue;
                };
                if s.done || s.answer.is_some() || s.exp <= now {
                    continue;
                }
                let Ok(opened) = OpenedChallenge::from_stored_plaintext(&plain.0) else {
                    self.log(LogLevel::Error, "skipping an unreadable stored request");
                    continue;
                };
                out.push(PendingRequest {
                    account_id: rec.id.clone(),
                    tx_id: s.tx.clone(),
                    challenge: opened.challenge,
                    expires_at: s.exp,
                    seconds_left: s.exp.saturating_sub(now),
                });
            }
        }
        out.sort_by(|a, b| (a.expires_at, &a.tx_id).cmp(&(b.expires_at, &b.tx_id)));
        Ok(out)
    }

    /// The request to answer: the stored one, or (after the app was restarted
    /// without it, e.g. a notification action) fetched again from the server.
    pub(super) async fn request_to_answer(&self, id: &str, tx: &str) -> Result<OpenedChallenge> {
        if let Some(opened) = self.stored_request(id, tx)? {
            return Ok(opened);
        }
        self.fetch_and_open(id, tx).await?;
        self.stored_request(id, tx)?.ok_or(Error::RequestNotFound)
    }

    /// Fails with [`Error::RequestExpired`] once the request has expired by the
    /// estimated server clock.
    pub(super) fn check_not_expired(&self, id: &str, opened: &OpenedChallenge) -> Result<()> {
        let offset = self.read(id, |r| Ok(r.push()?.clock_offset))?;
        self.check_not_expired_at(offset, opened)
    }

    /// [`Self::check_not_expired`] with the account's clock offset already read.
    pub(super) fn check_not_expired_at(&self, offset: i64, opened: &OpenedChallenge) -> Result<()> {
        let skew = self.config().clock_skew_secs;
        if self.server_now(offset)? > opened.challenge.expires_at.saturating_add(skew) {
            return Err(Error::RequestExpired);
        }
        Ok(())
    }
}

//! One-time passwords: codes of push and imported accounts, `otpauth://`
//! import and export, and answers to offline QR challenges (OCRA).

use zeroize::Zeroizing;

use super::Authenticator;
use super::record::{
    AccountRecord, OTPAUTH_AAD, OtpauthAccount, RECORD_VERSION, RecordKind, SEED_AAD, Secret,
    StoredSecret,
};
use super::store::{new_local_id, public_from_text, seed_alias};
use super::types::{AccountInfo, MigrationImport, OfflineCode, OtpCode, SkippedAccount};
use crate::crypto::ct_eq;
use crate::error::{Error, Result};
use crate::otp::{OcraInputs, OcraSuite, TotpParams};
use crate::platform::LogLevel;
use crate::protocol::offline::{OFFLINE_KIND, OfflineChallenge};
use crate::protocol::otpauth::{OtpKind, OtpauthError, OtpauthUri};
use crate::protocol::otpauth_migration::{MigratedAccount, parse_migration_uri};
use crate::protocol::{Purpose, SignedMessage};

/// How many times an HOTP code is computed again when other writers keep
/// advancing the counter first.
const MAX_HOTP_ATTEMPTS: usize = 64;

/// Whether a record still keeps the secret `seen` was read from (the inline
/// bytes compared in constant time).
fn same_secret(now: &StoredSecret, seen: &StoredSecret) -> bool {
    match (now, seen) {
        (StoredSecret::Sealed(a), StoredSecret::Sealed(b)) => a == b,
        (StoredSecret::Inline(a), StoredSecret::Inline(b)) => ct_eq(&a.0, &b.0),
        _ => false,
    }
}

/// The same HOTP account with its counter moved past `counter`.
fn next_hotp(uri: &OtpauthUri, counter: u64) -> Result<OtpauthUri> {
    OtpauthUri::new(
        OtpKind::Hotp {
            counter: counter.checked_add(1).ok_or(Error::Unsupported)?,
        },
        uri.issuer().map(str::to_owned),
        uri.account_name().to_owned(),
        uri.secret().clone(),
        uri.algorithm(),
        uri.digits(),
    )
    .map_err(|_| Error::Storage)
}

/// The OCRA suite of an offline QR challenge. Only question-only suites: the QR
/// carries no counter, PIN or session, and no time.
fn offline_suite(text: &str) -> Result<OcraSuite> {
    let suite = OcraSuite::parse(text).map_err(|_| Error::Unsupported)?;
    if suite.uses_counter()
        || suite.pin_hash().is_some()
        || suite.session_len().is_some()
        || suite.time_step().is_some()
    {
        return Err(Error::Unsupported);
    }
    Ok(suite)
}

impl Authenticator {
    /// The current OTP of an account and the seconds it has left. Push accounts use
    /// the estimated server clock; an HOTP account's counter is advanced and saved
    /// before the code is returned.
    pub fn otp(&self, account_id: &str) -> Result<OtpCode> {
        let local = self.hooks.clock.now()?;
        let kind = self.read(account_id, |r| {
            Ok(match &r.kind {
                RecordKind::Push(p) => Some((p.otp, p.seed_secret()?, p.clock_offset)),
                RecordKind::Otpauth(_) => None,
            })
        })?;
        if let Some((otp, seed, offset)) = kind {
            let now = self.server_now(offset)?;
            let params = TotpParams::new(otp.algorithm.hmac(), otp.digits, otp.period)
                .map_err(|_| Error::Storage)?;
            let seed = self.open_secret(&seed, SEED_AAD, account_id)?;
            let code = crate::otp::totp_at(&params, &seed, now).map_err(|_| Error::Storage)?;
            let left = crate::otp::seconds_left(otp.period, now).map_err(|_| Error::Storage)?;
            return Ok(OtpCode {
                code: Zeroizing::new(code),
                seconds_left: Some(left),
            });
        }
        self.otpauth_code(account_id, local)
    }

    /// The URI of an `otpauth://` account: where it is kept, and its text.
    fn otpauth_uri(&self, id: &str) -> Result<(StoredSecret, Zeroizing<String>)> {
        let stored = self.read(id, |r| match &r.kind {
            RecordKind::Otpauth(a) => a.uri_secret(),
            RecordKind::Push(_) => Err(Error::Unsupported),
        })?;
        let bytes = self.open_secret(&stored, OTPAUTH_AAD, id)?;
        let text = Zeroizing::new(String::from_utf8(bytes.to_vec()).map_err(|_| Error::Storage)?);
        Ok((stored, text))
    }

    /// An `otpauth://` account's code: TOTP reads the local clock; HOTP
    /// advances its counter, and the new URI (sealed again under the same
    /// vault key, or inline in a legacy record) is stored before the code is
    /// returned. The swap only happens if nobody advanced the counter
    /// meanwhile (another thread or process); otherwise it starts again.
    fn otpauth_code(&self, id: &str, local: u64) -> Result<OtpCode> {
        for _ in 0..MAX_HOTP_ATTEMPTS {
            let (stored, text) = self.otpauth_uri(id)?;
            let uri = OtpauthUri::parse(&text).map_err(|_| Error::Storage)?;
            let code = Zeroizing::new(uri.code(local).map_err(|_| Error::Storage)?);
            let counter = match uri.kind() {
                OtpKind::Totp { period } => {
                    return Ok(OtpCode {
                        code,
                        seconds_left: Some(
                            crate::otp::seconds_left(period, local).map_err(|_| Error::Storage)?,
                        ),
                    });
                }
                OtpKind::Hotp { counter } => counter,
            };
            let next = Zeroizing::new(next_hotp(&uri, counter)?.to_uri());
            let replacement = match &stored {
                StoredSecret::Inline(_) => StoredSecret::Inline(Secret::new(next.as_bytes())),
                StoredSecret::Sealed(s) => StoredSecret::Sealed(self.seal_with(
                    &s.alias,
                    OTPAUTH_AAD,
                    id,
                    next.as_bytes(),
                )?),
            };
            let swapped = self.update(id, |r| {
                let RecordKind::Otpauth(acct) = &mut r.kind else {
                    return Err(Error::Internal);
                };
                if !same_secret(&acct.uri_secret()?, &stored) {
                    return Ok(false);
                }
                match &replacement {
                    StoredSecret::Inline(s) => acct.uri = Some(s.clone()),
                    StoredSecret::Sealed(s) => acct.sealed_uri = Some(s.clone()),
                }
                Ok(true)
            })?;
            if swapped {
                return Ok(OtpCode {
                    code,
                    seconds_left: None,
                });
            }
        }
        self.log(
            LogLevel::Error,
            "an HOTP counter kept changing under a code",
        );
        Err(Error::Storage)
    }

    /// Imports an `otpauth://` TOTP/HOTP account. An HOTP account at the last
    /// counter (2^64-1), which could never give out a code, is refused
    /// (`InvalidInput { what: "HOTP counter" }`). The parser's exact reason is
    /// [`OtpauthUri::parse_new_account`]'s error.
    pub fn import_otpauth(&self, uri: &str) -> Result<AccountInfo> {
        let parsed = OtpauthUri::parse_new_account(uri).map_err(|e| match e {
            OtpauthError::CounterExhausted => Error::InvalidInput {
                what: "HOTP counter",
            },
            _ => Error::InvalidInput {
                what: "otpauth URI",
            },
        })?;
        let id = new_local_id('o')?;
        let created = self.hooks.clock.now()?;
        // The URI (with the secret) sealed by a vault key created first; the
        // key goes again if the record is not stored.
        let alias = seed_alias(&id);
        let text = Zeroizing::new(parsed.to_uri());
        let added = self
            .seal_new(&alias, OTPAUTH_AAD, &id, text.as_bytes())
            .and_then(|sealed| {
                self.add_account(AccountRecord {
                    v: RECORD_VERSION,
                    id: id.clone(),
                    label: parsed.account_name().to_owned(),
                    issuer: parsed.issuer().map(str::to_owned),
                    created,
                    kind: RecordKind::Otpauth(OtpauthAccount {
                        uri: None,
                        sealed_uri: Some(sealed),
                    }),
                })
            });
        if added.is_err() {
            let _ = self.hooks.vault.delete_key(&alias);
        }
        added
    }

    /// Imports Google Authenticator's export (`otpauth-migration://offline?data=…`,
    /// one QR of a batch): every account it holds that this app can keep, each
    /// like [`Self::import_otpauth`]. The result says which were added and
    /// which were skipped and why (MD5, an unknown type, …); one that fails to
    /// store is skipped with the error, the others are still added.
    /// [`Error::InvalidInput`] `otpauth URI` when the text is no readable export.
    pub fn import_otpauth_migration(&self, uri: &str) -> Result<MigrationImport> {
        let accounts = parse_migration_uri(uri).map_err(|_| Error::InvalidInput {
            what: "otpauth URI",
        })?;
        let mut report = MigrationImport {
            imported: Vec::new(),
            skipped: Vec::new(),
        };
        for account in accounts {
            match account {
                MigratedAccount::Account(parsed) => {
                    let name = match parsed.issuer() {
                        Some(i) => format!("{i}: {}", parsed.account_name()),
                        None => parsed.account_name().to_owned(),
                    };
                    match self.import_otpauth(&parsed.to_uri()) {
                        Ok(info) => report.imported.push(info),
                        Err(e) => report.skipped.push(SkippedAccount {
                            name,
                            reason: e.to_string(),
                        }),
                    }
                }
                MigratedAccount::Skipped { name, reason } => {
                    report.skipped.push(SkippedAccount { name, reason });
                }
            }
        }
        Ok(report)
    }

    /// Exports an imported `otpauth://` account (with its secret: show it only
    /// after the user confirmed). Push accounts cannot be exported: their seed is
    /// bound to this device's enrollment.
    pub fn export_otpauth(&self, account_id: &str) -> Result<Zeroizing<String>> {
        Ok(self.otpauth_uri(account_id)?.1)
    }

    // -----------------------------------------------------------------------
    // Offline QR (OCRA)

    /// Answers an offline QR challenge: checks S's signature (the account is found
    /// by the ids in the QR), expiry by the estimated server clock, and returns
    /// the OCRA response for the user to type.
    pub fn answer_offline_qr(&self, qr_payload: &str) -> Result<OfflineCode> {
        let msg = SignedMessage::from_json(qr_payload.as_bytes())
            .map_err(|_| Error::InvalidInput { what: "QR code" })?;
        let payload = msg.payload_unverified();
        let probe: OfflineChallenge =
            serde_json::from_slice(payload).map_err(|_| Error::InvalidInput { what: "QR code" })?;
        let (id, server_key, seed, offset) = self
            .records()?
            .into_iter()
            .find_map(|r| {
                let p = r.push().ok()?;
                (p.account_id == probe.account && p.device_id == probe.device).then(|| {
                    Ok::<_, Error>((
                        r.id.clone(),
                        public_from_text(&p.server_key)?,
                        p.seed_secret()?,
                        p.clock_offset,
                    ))
                })
            })
            .ok_or(Error::AccountNotFound)??;
        // Verify before trusting anything but the lookup ids.
        msg.verify(Purpose::OfflineChallenge, &server_key)
            .map_err(|_| Error::Tampered)?;
        if probe.v != 1 {
            return Err(Error::Unsupported);
        }
        if probe.kind != OFFLINE_KIND {
            return Err(Error::Unsupported);
        }
        if self.server_now(offset)? > probe.exp.saturating_add(self.config().clock_skew_secs) {
            return Err(Error::RequestExpired);
        }
        let suite = offline_suite(&probe.suite)?;
        let seed = self.open_secret(&seed, SEED_AAD, &id)?;
        let code = crate::otp::ocra(
            &suite,
            &seed,
            &OcraInputs {
                question: &probe.question,
                ..OcraInputs::default()
            },
        )
        .map_err(|_| Error::InvalidInput { what: "QR code" })?;
        Ok(OfflineCode {
            account_id: id,
            rp: probe.rp,
            code: Zeroizing::new(code),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_suites_are_question_only() {
        assert!(offline_suite("OCRA-1:HOTP-SHA256-8:QA08").is_ok());
        assert!(offline_suite("OCRA-1:HOTP-SHA1-6:QN08").is_ok());
        for refused in [
            "OCRA-1:HOTP-SHA1-6:C-QN08",
            "OCRA-1:HOTP-SHA256-8:QN08-PSHA1",
            "OCRA-1:HOTP-SHA512-8:QN08-S064",
            "OCRA-1:HOTP-SHA512-8:QN08-T1M",
            "not a suite",
        ] {
            assert_eq!(
                offline_suite(refused).err(),
                Some(Error::Unsupported),
                "{refused}"
            );
        }
    }

    #[test]
    fn hotp_counter_advances_and_stops_at_the_end() {
        let uri = OtpauthUri::parse(
            "otpauth://hotp/Example:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example&counter=41",
        )
        .unwrap();
        let next = next_hotp(&uri, 41).unwrap();
        assert_eq!(next.kind(), OtpKind::Hotp { counter: 42 });
        assert_eq!(next.issuer(), Some("Example"));
        assert_eq!(next.account_name(), "bob");
        assert_eq!(next.secret(), uri.secret());
        assert_eq!(next_hotp(&uri, u64::MAX).err(), Some(Error::Unsupported));
    }
}

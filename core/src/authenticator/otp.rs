//! One-time passwords: codes of push and imported accounts, `otpauth://`
//! import and export, and answers to offline QR challenges (OCRA).

use zeroize::Zeroizing;

use super::Authenticator;
use super::record::{AccountRecord, OtpauthAccount, RECORD_VERSION, RecordKind, Secret};
use super::store::{new_local_id, public_from_text};
use super::types::{AccountInfo, OfflineCode, OtpCode};
use crate::error::{Error, Result};
use crate::otp::{OcraInputs, OcraSuite, TotpParams};
use crate::protocol::offline::{OFFLINE_KIND, OfflineChallenge};
use crate::protocol::otpauth::{OtpKind, OtpauthError, OtpauthUri};
use crate::protocol::{Purpose, SignedMessage};

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
                RecordKind::Push(p) => Some((p.otp, Secret(p.seed.0.clone()), p.clock_offset)),
                RecordKind::Otpauth(_) => None,
            })
        })?;
        if let Some((otp, seed, offset)) = kind {
            let now = self.server_now(offset)?;
            let params = TotpParams::new(otp.algorithm.hmac(), otp.digits, otp.period)
                .map_err(|_| Error::Storage)?;
            let code = crate::otp::totp_at(&params, &seed.0, now).map_err(|_| Error::Storage)?;
            let left = crate::otp::seconds_left(otp.period, now).map_err(|_| Error::Storage)?;
            return Ok(OtpCode {
                code: Zeroizing::new(code),
                seconds_left: Some(left),
            });
        }
        // otpauth: HOTP advances (persisted first), TOTP reads the local clock.
        self.update(account_id, |r| {
            let RecordKind::Otpauth(acct) = &mut r.kind else {
                return Err(Error::Internal);
            };
            let text =
                Zeroizing::new(String::from_utf8(acct.uri.0.to_vec()).map_err(|_| Error::Storage)?);
            let uri = OtpauthUri::parse(&text).map_err(|_| Error::Storage)?;
            let code = Zeroizing::new(uri.code(local).map_err(|_| Error::Storage)?);
            match uri.kind() {
                OtpKind::Totp { period } => Ok(OtpCode {
                    code,
                    seconds_left: Some(
                        crate::otp::seconds_left(period, local).map_err(|_| Error::Storage)?,
                    ),
                }),
                OtpKind::Hotp { counter } => {
                    let next = next_hotp(&uri, counter)?;
                    acct.uri = Secret::new(next.to_uri().as_bytes());
                    Ok(OtpCode {
                        code,
                        seconds_left: None,
                    })
                }
            }
        })
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
        let rec = AccountRecord {
            v: RECORD_VERSION,
            id: new_local_id('o')?,
            label: parsed.account_name().to_owned(),
            issuer: parsed.issuer().map(str::to_owned),
            created: self.hooks.clock.now()?,
            kind: RecordKind::Otpauth(OtpauthAccount {
                uri: Secret::new(parsed.to_uri().as_bytes()),
            }),
        };
        self.add_account(rec)
    }

    /// Exports an imported `otpauth://` account (with its secret: show it only
    /// after the user confirmed). Push accounts cannot be exported: their seed is
    /// bound to this device's enrollment.
    pub fn export_otpauth(&self, account_id: &str) -> Result<Zeroizing<String>> {
        self.read(account_id, |r| match &r.kind {
            RecordKind::Otpauth(a) => Ok(Zeroizing::new(
                String::from_utf8(a.uri.0.to_vec()).map_err(|_| Error::Storage)?,
            )),
            RecordKind::Push(_) => Err(Error::Unsupported),
        })
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
                        Secret(p.seed.0.clone()),
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
        let code = crate::otp::ocra(
            &suite,
            &seed.0,
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

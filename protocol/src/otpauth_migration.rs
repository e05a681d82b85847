//! Google Authenticator's export, `otpauth-migration://offline?data=…`: a
//! base64 protobuf `MigrationPayload` holding one or more OTP accounts (a large
//! export is split over several QR codes, each a complete batch). Each account
//! becomes a validated [`OtpauthUri`]; those this app cannot hold are listed as
//! skipped with the reason, never dropped silently.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use percent_encoding::percent_decode_str;
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::HmacAlgorithm;
use crate::otp::OtpSecret;
use crate::otpauth::{OtpKind, OtpauthUri};

/// URI prefix of an export.
pub const MIGRATION_URI_PREFIX: &str = "otpauth-migration://offline?data=";

/// Longest export URI accepted (a full QR code holds under 3 KB).
const MAX_MIGRATION_URI_LEN: usize = 16 * 1024;

/// Most accounts in one export.
const MAX_ACCOUNTS: usize = 200;

/// Why an export URI cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrationError {
    /// Not `otpauth-migration://offline?data=…`, or longer than 16 KiB.
    #[error("not an otpauth-migration://offline?data= URI")]
    NotMigration,
    /// `data` is not percent-encoded base64.
    #[error("the export's data is not base64")]
    Encoding,
    /// `data` is not a migration payload.
    #[error("the export's data is not a Google Authenticator payload")]
    Payload,
    /// More than 200 accounts.
    #[error("the export holds more than 200 accounts")]
    TooMany,
}

/// One account of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigratedAccount {
    /// Importable.
    Account(OtpauthUri),
    /// Not importable here, and why.
    Skipped {
        /// The account's name as the export has it (issuer and name).
        name: String,
        /// Why (no secret, MD5, an unknown type, …).
        reason: String,
    },
}

// The payload's protobuf schema (Google Authenticator's `MigrationPayload`).
#[derive(Clone, PartialEq, prost::Message)]
struct MigrationPayload {
    #[prost(message, repeated, tag = "1")]
    otp_parameters: Vec<OtpParameters>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OtpParameters {
    #[prost(bytes = "vec", tag = "1")]
    secret: Vec<u8>,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(string, tag = "3")]
    issuer: String,
    /// 0 unspecified (SHA-1), 1 SHA-1, 2 SHA-256, 3 SHA-512, 4 MD5.
    #[prost(int32, tag = "4")]
    algorithm: i32,
    /// 0 unspecified (6), 1 six, 2 eight.
    #[prost(int32, tag = "5")]
    digits: i32,
    /// 0 unspecified, 1 HOTP, 2 TOTP.
    #[prost(int32, tag = "6")]
    kind: i32,
    #[prost(int64, tag = "7")]
    counter: i64,
}

impl Drop for OtpParameters {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

/// Base64 with or without padding (exports differ), standard alphabet.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Reads an export: every account it holds, importable or skipped with the
/// reason. A Google label "Issuer:name" with the same issuer field keeps the
/// issuer once.
pub fn parse_migration_uri(uri: &str) -> Result<Vec<MigratedAccount>, MigrationError> {
    let data = uri
        .trim()
        .strip_prefix(MIGRATION_URI_PREFIX)
        .filter(|d| uri.len() <= MAX_MIGRATION_URI_LEN && !d.contains(['&', '#']))
        .ok_or(MigrationError::NotMigration)?;
    let data = percent_decode_str(data)
        .decode_utf8()
        .map_err(|_| MigrationError::Encoding)?;
    let bytes = Zeroizing::new(
        LENIENT_BASE64
            .decode(data.as_bytes())
            .map_err(|_| MigrationError::Encoding)?,
    );
    let payload = <MigrationPayload as prost::Message>::decode(bytes.as_slice())
        .map_err(|_| MigrationError::Payload)?;
    if payload.otp_parameters.len() > MAX_ACCOUNTS {
        return Err(MigrationError::TooMany);
    }
    Ok(payload.otp_parameters.iter().map(account).collect())
}

fn account(p: &OtpParameters) -> MigratedAccount {
    // The name is a Key URI label: "Issuer:name" (Google writes it so when
    // both are set), or a plain name.
    let (label_issuer, label_name) = match p.name.split_once(':') {
        Some((i, n)) => (Some(i.trim()), n.trim_start()),
        None => (None, p.name.as_str()),
    };
    let issuer = match (p.issuer.as_str(), label_issuer) {
        ("", Some(i)) if !i.is_empty() => Some(i.to_owned()),
        ("", _) => None,
        (i, _) => Some(i.to_owned()),
    };
    let name = match label_issuer {
        Some(i) if issuer.as_deref() == Some(i) => label_name.to_owned(),
        _ => p.name.clone(),
    };
    let shown = match &issuer {
        Some(i) => format!("{i}: {name}"),
        None => name.clone(),
    };
    let skip = |reason: &str| MigratedAccount::Skipped {
        name: shown.clone(),
        reason: reason.to_owned(),
    };
    let algorithm = match p.algorithm {
        0 | 1 => HmacAlgorithm::Sha1,
        2 => HmacAlgorithm::Sha256,
        3 => HmacAlgorithm::Sha512,
        4 => return skip("MD5 is not supported"),
        _ => return skip("unknown algorithm"),
    };
    let digits = match p.digits {
        0 | 1 => 6,
        2 => 8,
        _ => return skip("unknown number of digits"),
    };
    let kind = match p.kind {
        1 => match u64::try_from(p.counter) {
            Ok(counter) => OtpKind::Hotp { counter },
            Err(_) => return skip("negative HOTP counter"),
        },
        2 => OtpKind::Totp { period: 30 },
        _ => return skip("neither TOTP nor HOTP"),
    };
    match OtpauthUri::new(
        kind,
        issuer,
        name,
        OtpSecret::from_slice(&p.secret),
        algorithm,
        digits,
    ) {
        Ok(uri) => MigratedAccount::Account(uri),
        Err(e) => skip(&e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Exports made by Google Authenticator and their expected accounts, from the
    // test data of scito/extract_otp_secrets (example_export.txt and
    // tests/data/url_list_output.txt); the secret is the Raspberry Pi blog's
    // two-factor example.
    const SECRET: &str = "7KSQL2JTUDIS5EF65KLMRQIIGY";
    const ONE_TOTP_WITH_ISSUER: &str = "otpauth-migration://offline?data=CjUKEPqlBekzoNEukL7qlsjBCDYSDnBpQHJhc3BiZXJyeXBpGgtyYXNwYmVycnlwaSABKAEwAhABGAEgACjr4JKK%2B%2F%2F%2F%2F%2F8B";
    const TWO_TOTP: &str = "otpauth-migration://offline?data=CigKEPqlBekzoNEukL7qlsjBCDYSDnBpQHJhc3BiZXJyeXBpIAEoATACCjUKEPqlBekzoNEukL7qlsjBCDYSDnBpQHJhc3BiZXJyeXBpGgtyYXNwYmVycnlwaSABKAEwAhABGAEgACiQ7OOa%2Bf%2F%2F%2F%2F8B";
    const ONE_HOTP: &str = "otpauth-migration://offline?data=CiUKEPqlBekzoNEukL7qlsjBCDYSCWhvdHAgZGVtbyABKAEwATgEEAEYASAAKNuv15j6%2F%2F%2F%2F%2FwE%3D";
    const UNICODE_NAME: &str = "otpauth-migration://offline?data=CjYKEPqlBekzoNEukL7qlsjBCDYSHGVuY29kaW5nOiDCv8Okw4TDqcOJPyAoZGVtbykgASgBMAIQARgBIAAorfCurv%2F%2F%2F%2F%2F%2FAQ%3D%3D";

    fn accounts(uri: &str) -> Vec<OtpauthUri> {
        parse_migration_uri(uri)
            .unwrap()
            .into_iter()
            .map(|a| match a {
                MigratedAccount::Account(u) => u,
                MigratedAccount::Skipped { name, reason } => panic!("{name} skipped: {reason}"),
            })
            .collect()
    }

    fn params(secret: Vec<u8>, name: &str, algorithm: i32, kind: i32) -> OtpParameters {
        let mut p = OtpParameters::default();
        p.secret = secret;
        p.name = name.into();
        p.algorithm = algorithm;
        p.kind = kind;
        p
    }

    fn secret(u: &OtpauthUri) -> String {
        crate::otp::base32::encode(u.secret().as_bytes())
    }

    #[test]
    fn google_exports_give_the_expected_accounts() {
        let one = accounts(ONE_TOTP_WITH_ISSUER);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].issuer(), Some("raspberrypi"));
        assert_eq!(one[0].account_name(), "pi@raspberrypi");
        assert_eq!(secret(&one[0]), SECRET);
        assert_eq!(one[0].kind(), OtpKind::Totp { period: 30 });

        let two = accounts(TWO_TOTP);
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].issuer(), None);
        assert_eq!(two[1].issuer(), Some("raspberrypi"));
        assert!(two.iter().all(|u| secret(u) == SECRET));

        let hotp = accounts(ONE_HOTP);
        assert_eq!(hotp[0].account_name(), "hotp demo");
        assert_eq!(hotp[0].kind(), OtpKind::Hotp { counter: 4 });

        let unicode = accounts(UNICODE_NAME);
        // Its name is the Key URI label "encoding: ¿äÄéÉ? (demo)": issuer and name.
        assert_eq!(unicode[0].issuer(), Some("encoding"));
        assert_eq!(unicode[0].account_name(), "¿äÄéÉ? (demo)");
        // The re-made URI parses back to the same account.
        let again = OtpauthUri::parse(&unicode[0].to_uri()).unwrap();
        assert_eq!(again, unicode[0]);
    }

    #[test]
    fn what_cannot_be_read_is_refused_or_skipped_with_the_reason() {
        assert_eq!(
            parse_migration_uri("otpauth://totp/a?secret=JBSWY3DP"),
            Err(MigrationError::NotMigration)
        );
        assert_eq!(
            parse_migration_uri("otpauth-migration://offline?data=***"),
            Err(MigrationError::Encoding)
        );
        // Valid base64, not a payload (field 1 with a wrong wire type).
        assert_eq!(
            parse_migration_uri("otpauth-migration://offline?data=CP8B"),
            Err(MigrationError::Payload)
        );
        // An MD5 account, an unknown type and an empty secret are skipped.
        let payload = MigrationPayload {
            otp_parameters: vec![
                params(vec![1; 20], "md5", 4, 2),
                params(vec![1; 20], "odd", 0, 9),
                params(vec![], "empty", 0, 2),
                params(vec![1; 20], "ok", 0, 2),
            ],
        };
        let data = base64::engine::general_purpose::STANDARD
            .encode(prost::Message::encode_to_vec(&payload));
        let uri = format!(
            "{MIGRATION_URI_PREFIX}{}",
            data.replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")
        );
        let got = parse_migration_uri(&uri).unwrap();
        let skipped: Vec<(&str, &str)> = got
            .iter()
            .filter_map(|a| match a {
                MigratedAccount::Skipped { name, reason } => Some((name.as_str(), reason.as_str())),
                MigratedAccount::Account(_) => None,
            })
            .collect();
        assert_eq!(skipped.len(), 3, "{got:?}");
        assert_eq!(skipped[0], ("md5", "MD5 is not supported"));
        assert_eq!(skipped[1], ("odd", "neither TOTP nor HOTP"));
        assert!(matches!(got[3], MigratedAccount::Account(_)));
    }
}

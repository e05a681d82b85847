//! `otpauth://` key URIs (the Google Authenticator "Key Uri Format"), parsed
//! strictly into an [`OtpauthUri`] and formatted back in one canonical form.
//!
//! ```text
//! otpauth://TYPE/LABEL?PARAMETERS
//! TYPE       = totp | hotp                       (either case on input)
//! LABEL      = [issuer ":" *" "] account_name   (percent-encoded UTF-8)
//! PARAMETERS = secret=BASE32 (required)
//!              issuer=…      (must equal the label's issuer if both are present)
//!              algorithm=SHA1|SHA256|SHA512 (default SHA1, either case)
//!              digits=6|7|8  (default 6)
//!              period=1..3600 (totp only, default 30)
//!              counter=0..2^64-1 (hotp only, required)
//! ```
//!
//! Rules, each failure a distinct [`OtpauthError`]:
//! * The URI is at most 8192 bytes of printable ASCII (anything else must be
//!   percent-encoded) with no fragment.
//! * Percent-escapes are `%` and two hex digits; the decoded text must be
//!   UTF-8. In parameter values `+` means a space (form encoding); in the
//!   label it is a literal `+`.
//! * The label is 1..=256 characters. The issuer (label or parameter) and the
//!   account name are non-empty, contain no `:` and no control characters,
//!   and do not begin or end with whitespace (the spaces the format allows
//!   after the label's colon are skipped).
//! * The secret is base32 (RFC 4648, either case, padding optional) of
//!   10..=128 bytes. RFC 4226 asks for at least 128 bits, but many issuers
//!   still hand out 80-bit secrets, so 80 bits is the floor.
//! * A parameter may appear only once; `period` on hotp and `counter` on totp
//!   are rejected; unknown parameters (`image`, `color`, …) are ignored.
//!
//! The canonical form ([`OtpauthUri::to_uri`]) puts the issuer in both the
//! label and the `issuer` parameter, writes every parameter (`secret`,
//! `issuer`, `algorithm`, `digits`, then `period` or `counter`), encodes the
//! secret as uppercase unpadded base32 and percent-encodes everything except
//! `A-Z a-z 0-9 - . _ ~ @`. Parsing a canonical URI gives back the same value.
//!
//! (The code is under 600 lines; the rest of the file tests every rule above.)

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use zeroize::Zeroizing;

use crate::crypto::HmacAlgorithm;
use crate::encoding::percent_escapes_are_strict;
use crate::otp::base32::{self, Base32Error};
use crate::otp::{self, HotpParams, OtpError, OtpSecret, TotpParams};

/// Longest URI accepted, in bytes.
pub const MAX_URI_LEN: usize = 8192;
/// Longest label (`issuer:account`), in characters after decoding.
pub const MAX_LABEL_LEN: usize = 256;
/// Shortest secret, in bytes (80 bits).
pub const MIN_SECRET_LEN: usize = 10;
/// Longest secret, in bytes.
pub const MAX_SECRET_LEN: usize = 128;
/// TOTP period when the URI does not say.
pub const DEFAULT_PERIOD: u32 = 30;
/// Digits when the URI does not say.
pub const DEFAULT_DIGITS: u8 = 6;

/// Everything that can be wrong with an `otpauth://` URI or account.
///
/// Messages name the part at fault, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtpauthError {
    /// The URI is longer than [`MAX_URI_LEN`].
    #[error("otpauth URI is {0} bytes (at most 8192)")]
    TooLong(usize),
    /// A byte that is not printable ASCII (space, control, non-ASCII).
    #[error("otpauth URI has an invalid character at byte {0}")]
    InvalidCharacter(usize),
    /// The URI does not start with `otpauth://`.
    #[error("not an otpauth:// URI")]
    Scheme,
    /// The type is neither `totp` nor `hotp`.
    #[error("otpauth type must be totp or hotp")]
    UnknownType,
    /// The URI has a `#fragment`.
    #[error("otpauth URI must not have a fragment")]
    Fragment,
    /// There is no label (path) or it is empty.
    #[error("otpauth URI has no label")]
    MissingLabel,
    /// A `%` is not followed by two hex digits.
    #[error("invalid percent-encoding in the {0}")]
    InvalidPercentEncoding(&'static str),
    /// Percent-decoded text is not UTF-8.
    #[error("the {0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// The label is longer than [`MAX_LABEL_LEN`] characters.
    #[error("label is {0} characters (at most 256)")]
    LabelTooLong(usize),
    /// The account name is empty.
    #[error("account name is empty")]
    EmptyAccountName,
    /// The issuer (label prefix or parameter) is empty.
    #[error("issuer is empty")]
    EmptyIssuer,
    /// The account name contains a `:`.
    #[error("account name must not contain ':'")]
    ColonInAccountName,
    /// The issuer contains a `:`.
    #[error("issuer must not contain ':'")]
    ColonInIssuer,
    /// The issuer or account name contains a control character.
    #[error("the {0} contains a control character")]
    ControlCharacter(&'static str),
    /// The issuer or account name begins or ends with whitespace.
    #[error("the {0} begins or ends with whitespace")]
    SurroundingWhitespace(&'static str),
    /// The label's issuer and the `issuer` parameter differ.
    #[error("label issuer and issuer parameter differ")]
    IssuerMismatch,
    /// The query is not `name=value` pairs joined by `&`.
    #[error("malformed otpauth query")]
    MalformedQuery,
    /// A parameter appears more than once.
    #[error("parameter {0} appears more than once")]
    DuplicateParameter(String),
    /// A parameter not allowed for this type (`period` on hotp, `counter` on totp).
    #[error("parameter {0} is not allowed for this OTP type")]
    ParameterNotAllowed(&'static str),
    /// No `secret` parameter.
    #[error("otpauth URI has no secret")]
    MissingSecret,
    /// The secret is not valid base32.
    #[error("secret is not valid base32: {0}")]
    InvalidSecret(#[source] Base32Error),
    /// The secret is shorter than 10 or longer than 128 bytes.
    #[error("a secret of {0} bytes is not accepted (10 to 128)")]
    SecretLength(usize),
    /// The algorithm is not SHA1, SHA256 or SHA512.
    #[error("unknown algorithm (SHA1, SHA256 or SHA512)")]
    UnknownAlgorithm,
    /// Digits is not 6, 7 or 8.
    #[error("digits must be 6, 7 or 8")]
    InvalidDigits,
    /// The period is not a number in 1..=3600.
    #[error("period must be a number of seconds from 1 to 3600")]
    InvalidPeriod,
    /// A hotp URI without `counter`.
    #[error("hotp URI has no counter")]
    MissingCounter,
    /// The counter is not a decimal number below 2^64.
    #[error("counter must be a decimal number below 2^64")]
    InvalidCounter,
    /// A new HOTP account at counter 2^64-1: it could never give out a code,
    /// since the counter cannot move past it ([`OtpauthUri::parse_new_account`]).
    #[error("counter must be below 2^64-1 so that at least one code is left")]
    CounterExhausted,
}

/// TOTP or HOTP, with the moving factor's parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtpKind {
    /// Time-based: the step length in seconds (1..=3600).
    Totp {
        /// Period in seconds.
        period: u32,
    },
    /// Counter-based: the next counter value.
    Hotp {
        /// Counter.
        counter: u64,
    },
}

/// A validated OTP account as carried by an `otpauth://` URI.
///
/// Every value of this type is valid: fields are private and set only by
/// [`OtpauthUri::new`] and [`OtpauthUri::parse`]. `Debug` redacts the secret.
/// There is deliberately no `Display`: the URI contains the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtpauthUri {
    kind: OtpKind,
    issuer: Option<String>,
    account_name: String,
    secret: OtpSecret,
    algorithm: HmacAlgorithm,
    digits: u8,
}

fn check_name(text: &str, what: &'static str) -> Result<(), OtpauthError> {
    if text.contains(':') {
        return Err(if what == "issuer" {
            OtpauthError::ColonInIssuer
        } else {
            OtpauthError::ColonInAccountName
        });
    }
    if text.chars().any(char::is_control) {
        return Err(OtpauthError::ControlCharacter(what));
    }
    if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        return Err(OtpauthError::SurroundingWhitespace(what));
    }
    Ok(())
}

fn algorithm_name(algorithm: HmacAlgorithm) -> &'static str {
    match algorithm {
        HmacAlgorithm::Sha1 => "SHA1",
        HmacAlgorithm::Sha256 => "SHA256",
        HmacAlgorithm::Sha512 => "SHA512",
    }
}

/// Strict percent-decoding; `plus_is_space` for form-encoded query parts.
fn percent_decode(
    text: &str,
    plus_is_space: bool,
    what: &'static str,
) -> Result<Zeroizing<String>, OtpauthError> {
    if !percent_escapes_are_strict(text, |_| true) {
        return Err(OtpauthError::InvalidPercentEncoding(what));
    }
    let mut out = Zeroizing::new(Vec::with_capacity(text.len()));
    if plus_is_space {
        // A `+` is never part of an escape, so the pieces between them decode alone.
        for (i, piece) in text.split('+').enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend(percent_decode_str(piece));
        }
    } else {
        out.extend(percent_decode_str(text));
    }
    let bytes = std::mem::take(&mut *out);
    match String::from_utf8(bytes) {
        Ok(s) => Ok(Zeroizing::new(s)),
        Err(e) => {
            // Wipe the rejected bytes too: they may be part of a secret.
            let _wiped = Zeroizing::new(e.into_bytes());
            Err(OtpauthError::InvalidUtf8(what))
        }
    }
}

/// Bytes [`OtpauthUri::to_uri`] percent-encodes: all but `A-Z a-z 0-9 - . _ ~ @`.
const LABEL_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');

/// Percent-encodes everything but `A-Z a-z 0-9 - . _ ~ @` (upper-case hex).
fn percent_encode(text: &str, out: &mut String) {
    out.extend(utf8_percent_encode(text, LABEL_ESCAPES));
}

fn all_digits(text: &str, max_len: usize) -> bool {
    !text.is_empty() && text.len() <= max_len && text.bytes().all(|b| b.is_ascii_digit())
}

impl OtpauthUri {
    /// A validated account (the same rules as parsing; see the module docs).
    pub fn new(
        kind: OtpKind,
        issuer: Option<String>,
        account_name: String,
        secret: OtpSecret,
        algorithm: HmacAlgorithm,
        digits: u8,
    ) -> Result<Self, OtpauthError> {
        let mut label_len = account_name.chars().count();
        if let Some(issuer) = &issuer {
            if issuer.is_empty() {
                return Err(OtpauthError::EmptyIssuer);
            }
            check_name(issuer, "issuer")?;
            label_len += issuer.chars().count() + 1;
        }
        if account_name.is_empty() {
            return Err(OtpauthError::EmptyAccountName);
        }
        check_name(&account_name, "account name")?;
        if label_len > MAX_LABEL_LEN {
            return Err(OtpauthError::LabelTooLong(label_len));
        }
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len()) {
            return Err(OtpauthError::SecretLength(secret.len()));
        }
        if !(otp::MIN_DIGITS..=otp::MAX_DIGITS).contains(&digits) {
            return Err(OtpauthError::InvalidDigits);
        }
        if let OtpKind::Totp { period } = kind
            && !(otp::MIN_PERIOD..=otp::MAX_PERIOD).contains(&period)
        {
            return Err(OtpauthError::InvalidPeriod);
        }
        Ok(Self {
            kind,
            issuer,
            account_name,
            secret,
            algorithm,
            digits,
        })
    }

    /// Parses the URI of an account being added (a scan or an import): as
    /// [`Self::parse`], and the account must have a code left. An HOTP counter
    /// of 2^64-1 parses (a stored account that used its last code), but a new
    /// account there could never give out a code: [`OtpauthError::CounterExhausted`].
    pub fn parse_new_account(uri: &str) -> Result<Self, OtpauthError> {
        let parsed = Self::parse(uri)?;
        if parsed.kind == (OtpKind::Hotp { counter: u64::MAX }) {
            return Err(OtpauthError::CounterExhausted);
        }
        Ok(parsed)
    }

    /// Parses an `otpauth://` URI strictly (rules in the module docs).
    pub fn parse(uri: &str) -> Result<Self, OtpauthError> {
        if uri.len() > MAX_URI_LEN {
            return Err(OtpauthError::TooLong(uri.len()));
        }
        if let Some(i) = uri.bytes().position(|b| !(0x21..=0x7e).contains(&b)) {
            return Err(OtpauthError::InvalidCharacter(i));
        }
        if uri.contains('#') {
            return Err(OtpauthError::Fragment);
        }
        const SCHEME: &str = "otpauth://";
        let rest = match uri.get(..SCHEME.len()) {
            Some(s) if s.eq_ignore_ascii_case(SCHEME) => uri.get(SCHEME.len()..).unwrap_or(""),
            _ => return Err(OtpauthError::Scheme),
        };
        let (kind_text, rest) = rest.split_once('/').ok_or(OtpauthError::MissingLabel)?;
        let is_totp = if kind_text.eq_ignore_ascii_case("totp") {
            true
        } else if kind_text.eq_ignore_ascii_case("hotp") {
            false
        } else {
            return Err(OtpauthError::UnknownType);
        };
        let (label_raw, query) = match rest.split_once('?') {
            Some(parts) => parts,
            None => (rest, ""),
        };

        let label = percent_decode(label_raw, false, "label")?;
        if label.is_empty() {
            return Err(OtpauthError::MissingLabel);
        }
        let label_len = label.chars().count();
        if label_len > MAX_LABEL_LEN {
            return Err(OtpauthError::LabelTooLong(label_len));
        }
        let (label_issuer, account) = match label.split_once(':') {
            Some((issuer, account)) => {
                if issuer.is_empty() {
                    return Err(OtpauthError::EmptyIssuer);
                }
                (Some(issuer), account.trim_start_matches(' '))
            }
            None => (None, label.as_str()),
        };

        let mut seen: Vec<String> = Vec::new();
        let mut secret = None;
        let mut issuer_param = None;
        let mut algorithm = None;
        let mut digits = None;
        let mut period = None;
        let mut counter = None;
        if !query.is_empty() {
            for pair in query.split('&') {
                let (name, value) = pair.split_once('=').ok_or(OtpauthError::MalformedQuery)?;
                let name = percent_decode(name, true, "parameter name")?;
                if name.is_empty() {
                    return Err(OtpauthError::MalformedQuery);
                }
                if seen.iter().any(|n| n == name.as_str()) {
                    return Err(OtpauthError::DuplicateParameter(name.to_string()));
                }
                seen.push(name.to_string());
                match name.as_str() {
                    "secret" => secret = Some(percent_decode(value, true, "secret")?),
                    "issuer" => issuer_param = Some(percent_decode(value, true, "issuer")?),
                    "algorithm" => algorithm = Some(percent_decode(value, true, "algorithm")?),
                    "digits" => digits = Some(percent_decode(value, true, "digits")?),
                    "period" => period = Some(percent_decode(value, true, "period")?),
                    "counter" => counter = Some(percent_decode(value, true, "counter")?),
                    // Unknown parameters (image, color, …) carry nothing we use.
                    _ => {}
                }
            }
        }

        let issuer = match (label_issuer, issuer_param.as_deref()) {
            (Some(a), Some(b)) if a != b.as_str() => return Err(OtpauthError::IssuerMismatch),
            (Some(a), _) => Some(a.to_owned()),
            (None, Some(b)) if b.is_empty() => return Err(OtpauthError::EmptyIssuer),
            (None, Some(b)) => Some(b.to_string()),
            (None, None) => None,
        };

        let secret_text = secret.ok_or(OtpauthError::MissingSecret)?;
        if secret_text.is_empty() {
            return Err(OtpauthError::MissingSecret);
        }
        let secret = base32::decode(&secret_text).map_err(OtpauthError::InvalidSecret)?;

        let algorithm = match algorithm.as_deref().map(|a| a.to_ascii_uppercase()) {
            None => HmacAlgorithm::Sha1,
            Some(a) => match a.as_str() {
                "SHA1" => HmacAlgorithm::Sha1,
                "SHA256" => HmacAlgorithm::Sha256,
                "SHA512" => HmacAlgorithm::Sha512,
                _ => return Err(OtpauthError::UnknownAlgorithm),
            },
        };
        let digits = match digits.as_deref().map(String::as_str) {
            None => DEFAULT_DIGITS,
            Some("6") => 6,
            Some("7") => 7,
            Some("8") => 8,
            Some(_) => return Err(OtpauthError::InvalidDigits),
        };

        let kind = if is_totp {
            if counter.is_some() {
                return Err(OtpauthError::ParameterNotAllowed("counter"));
            }
            let period = match period.as_deref() {
                None => DEFAULT_PERIOD,
                Some(p) if all_digits(p, 10) => {
                    p.parse().map_err(|_| OtpauthError::InvalidPeriod)?
                }
                Some(_) => return Err(OtpauthError::InvalidPeriod),
            };
            OtpKind::Totp { period }
        } else {
            if period.is_some() {
                return Err(OtpauthError::ParameterNotAllowed("period"));
            }
            let counter = match counter.as_deref() {
                None => return Err(OtpauthError::MissingCounter),
                Some(c) if all_digits(c, 20) => {
                    c.parse().map_err(|_| OtpauthError::InvalidCounter)?
                }
                Some(_) => return Err(OtpauthError::InvalidCounter),
            };
            OtpKind::Hotp { counter }
        };

        Self::new(
            kind,
            issuer,
            account.to_owned(),
            OtpSecret::from(secret),
            algorithm,
            digits,
        )
    }

    /// The canonical URI (see the module docs). It contains the secret.
    pub fn to_uri(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(128));
        out.push_str(match self.kind {
            OtpKind::Totp { .. } => "otpauth://totp/",
            OtpKind::Hotp { .. } => "otpauth://hotp/",
        });
        if let Some(issuer) = &self.issuer {
            percent_encode(issuer, &mut out);
            out.push(':');
        }
        percent_encode(&self.account_name, &mut out);
        out.push_str("?secret=");
        let secret = Zeroizing::new(base32::encode(self.secret.as_bytes()));
        out.push_str(&secret);
        if let Some(issuer) = &self.issuer {
            out.push_str("&issuer=");
            percent_encode(issuer, &mut out);
        }
        out.push_str("&algorithm=");
        out.push_str(algorithm_name(self.algorithm));
        out.push_str("&digits=");
        out.push_str(&self.digits.to_string());
        match self.kind {
            OtpKind::Totp { period } => {
                out.push_str("&period=");
                out.push_str(&period.to_string());
            }
            OtpKind::Hotp { counter } => {
                out.push_str("&counter=");
                out.push_str(&counter.to_string());
            }
        }
        out
    }

    /// TOTP or HOTP, with period or counter.
    pub fn kind(&self) -> OtpKind {
        self.kind
    }

    /// The issuer, if the URI names one.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The account name (the label without the issuer).
    pub fn account_name(&self) -> &str {
        &self.account_name
    }

    /// The decoded secret.
    pub fn secret(&self) -> &OtpSecret {
        &self.secret
    }

    /// HMAC hash.
    pub fn algorithm(&self) -> HmacAlgorithm {
        self.algorithm
    }

    /// Code length (6..=8).
    pub fn digits(&self) -> u8 {
        self.digits
    }

    /// TOTP parameters, for a totp account.
    pub fn totp_params(&self) -> Option<TotpParams> {
        match self.kind {
            OtpKind::Totp { period } => Some(TotpParams {
                algorithm: self.algorithm,
                digits: self.digits,
                period,
            }),
            OtpKind::Hotp { .. } => None,
        }
    }

    /// HOTP parameters (valid for either kind: TOTP is HOTP of the time step).
    pub fn hotp_params(&self) -> HotpParams {
        HotpParams {
            algorithm: self.algorithm,
            digits: self.digits,
        }
    }

    /// The code to show now: TOTP at `unix_time`, or HOTP at the stored counter.
    pub fn code(&self, unix_time: u64) -> Result<String, OtpError> {
        match self.kind {
            OtpKind::Totp { period } => otp::totp_at(
                &TotpParams {
                    algorithm: self.algorithm,
                    digits: self.digits,
                    period,
                },
                self.secret.as_bytes(),
                unix_time,
            ),
            OtpKind::Hotp { counter } => {
                otp::hotp(&self.hotp_params(), self.secret.as_bytes(), counter)
            }
        }
    }
}

impl std::str::FromStr for OtpauthUri {
    type Err = OtpauthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_codec() {
        let mut out = String::new();
        percent_encode("Big+Co: Zürich/ü@x.io~-._", &mut out);
        assert_eq!(out, "Big%2BCo%3A%20Z%C3%BCrich%2F%C3%BC@x.io~-._");
        let label = percent_decode(&out, false, "label").unwrap();
        assert_eq!(label.as_str(), "Big+Co: Zürich/ü@x.io~-._");
        // `+` is a space only in query values; `%2B` is always a plus.
        assert_eq!(
            percent_decode("a+b%2B", true, "x").unwrap().as_str(),
            "a b+"
        );
        assert_eq!(
            percent_decode("a+b%2b", false, "x").unwrap().as_str(),
            "a+b+"
        );
        assert_eq!(
            percent_decode("a%2", true, "x"),
            Err(OtpauthError::InvalidPercentEncoding("x"))
        );
        assert_eq!(
            percent_decode("%C3", true, "x"),
            Err(OtpauthError::InvalidUtf8("x"))
        );
    }
    use proptest::prelude::*;

    // "12345678901234567890" in base32.
    const B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn parse(uri: &str) -> Result<OtpauthUri, OtpauthError> {
        OtpauthUri::parse(uri)
    }

    #[test]
    fn google_example() {
        let u =
            parse("otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example")
                .unwrap();
        assert_eq!(u.kind(), OtpKind::Totp { period: 30 });
        assert_eq!(u.issuer(), Some("Example"));
        assert_eq!(u.account_name(), "alice@google.com");
        assert_eq!(u.secret().as_bytes(), b"Hello!\xde\xad\xbe\xef");
        assert_eq!(u.algorithm(), HmacAlgorithm::Sha1);
        assert_eq!(u.digits(), 6);
        assert_eq!(
            u.to_uri().as_str(),
            "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example&algorithm=SHA1&digits=6&period=30"
        );
        assert!(!format!("{u:?}").contains("Hello"));
    }

    #[test]
    fn lenient_where_the_format_is() {
        // Type and algorithm in any case, %3A as the label colon, spaces after
        // it, issuer only as a parameter, padded lowercase secret, + as space.
        let u = parse(&format!(
            "OTPAUTH://HOTP/ACME%20Co%3A%20%20john?secret={}====&issuer=ACME+Co&algorithm=sha512&digits=8&counter=42&image=x",
            "jbswy3dpehpk3pxp"
        ));
        // "jbswy3dpehpk3pxp" needs no padding: 16 characters.
        assert_eq!(
            u,
            Err(OtpauthError::InvalidSecret(Base32Error::InvalidPadding))
        );
        let u = parse(
            "OTPAUTH://HOTP/ACME%20Co%3A%20%20john?secret=jbswy3dpehpk3pxp&issuer=ACME+Co&algorithm=sha512&digits=8&counter=42&image=x",
        )
        .unwrap();
        assert_eq!(u.kind(), OtpKind::Hotp { counter: 42 });
        assert_eq!(u.issuer(), Some("ACME Co"));
        assert_eq!(u.account_name(), "john");
        assert_eq!(u.algorithm(), HmacAlgorithm::Sha512);
        assert_eq!(u.digits(), 8);
        let u = parse("otpauth://totp/bob?secret=GEZDGNBVGY3TQOJQ&issuer=Big%2BCorp").unwrap();
        assert_eq!(u.issuer(), Some("Big+Corp"));
        assert_eq!(
            u.to_uri().as_str(),
            "otpauth://totp/Big%2BCorp:bob?secret=GEZDGNBVGY3TQOJQ&issuer=Big%2BCorp&algorithm=SHA1&digits=6&period=30"
        );
        let u = parse("otpauth://totp/a+b?secret=GEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(u.account_name(), "a+b");
        assert_eq!(u.issuer(), None);
    }

    #[test]
    fn codes_from_the_account() {
        let u = parse(&format!("otpauth://totp/x?secret={B32}&digits=8")).unwrap();
        assert_eq!(u.code(59).unwrap(), "94287082");
        assert_eq!(u.totp_params().unwrap().period, 30);
        let h = parse(&format!("otpauth://hotp/x?secret={B32}&counter=1")).unwrap();
        assert_eq!(h.code(0).unwrap(), "287082");
        assert_eq!(h.totp_params(), None);
        assert_eq!(h.hotp_params().digits, 6);
    }

    #[test]
    fn every_parse_error() {
        use OtpauthError::*;
        let long = format!("otpauth://totp/{}?secret={B32}", "a".repeat(MAX_URI_LEN));
        let label = format!("otpauth://totp/{}?secret={B32}", "a".repeat(257));
        let big = base32::encode(&[7u8; 129]);
        let cases: Vec<(String, OtpauthError)> = vec![
            (long.clone(), TooLong(long.len())),
            ("otpauth://totp/a b?secret=x".into(), InvalidCharacter(16)),
            ("otpauth://totp/é?secret=x".into(), InvalidCharacter(15)),
            ("otpauth://totp/a?secret=x#f".into(), Fragment),
            ("https://totp/a?secret=x".into(), Scheme),
            ("otpauth:/totp/a?secret=x".into(), Scheme),
            ("otp".into(), Scheme),
            ("otpauth://motp/a?secret=x".into(), UnknownType),
            ("otpauth://user@totp/a?secret=x".into(), UnknownType),
            ("otpauth://totp".into(), MissingLabel),
            (format!("otpauth://totp/?secret={B32}"), MissingLabel),
            (
                format!("otpauth://totp/a%2?secret={B32}"),
                InvalidPercentEncoding("label"),
            ),
            (
                format!("otpauth://totp/a%zz?secret={B32}"),
                InvalidPercentEncoding("label"),
            ),
            (
                format!("otpauth://totp/a%FF?secret={B32}"),
                InvalidUtf8("label"),
            ),
            (
                "otpauth://totp/a?secret=GEZ%ZZ".into(),
                InvalidPercentEncoding("secret"),
            ),
            (label, LabelTooLong(257)),
            (
                format!("otpauth://totp/Iss:?secret={B32}"),
                EmptyAccountName,
            ),
            (
                format!("otpauth://totp/Iss:%20%20?secret={B32}"),
                EmptyAccountName,
            ),
            (format!("otpauth://totp/:bob?secret={B32}"), EmptyIssuer),
            (
                format!("otpauth://totp/bob?secret={B32}&issuer="),
                EmptyIssuer,
            ),
            (
                format!("otpauth://totp/a:b:c?secret={B32}"),
                ColonInAccountName,
            ),
            (
                format!("otpauth://totp/bob?secret={B32}&issuer=a%3Ab"),
                ColonInIssuer,
            ),
            (
                format!("otpauth://totp/bo%0Ab?secret={B32}"),
                ControlCharacter("account name"),
            ),
            (
                format!("otpauth://totp/I%00:b?secret={B32}"),
                ControlCharacter("issuer"),
            ),
            (
                format!("otpauth://totp/bob%20?secret={B32}"),
                SurroundingWhitespace("account name"),
            ),
            (
                format!("otpauth://totp/%20I:bob?secret={B32}"),
                SurroundingWhitespace("issuer"),
            ),
            (
                format!("otpauth://totp/A:bob?secret={B32}&issuer=B"),
                IssuerMismatch,
            ),
            (
                format!("otpauth://totp/A:bob?secret={B32}&issuer="),
                IssuerMismatch,
            ),
            (format!("otpauth://totp/bob?secret={B32}&"), MalformedQuery),
            (
                format!("otpauth://totp/bob?secret={B32}&&digits=6"),
                MalformedQuery,
            ),
            (
                format!("otpauth://totp/bob?secret={B32}&digits"),
                MalformedQuery,
            ),
            (
                format!("otpauth://totp/bob?secret={B32}&=6"),
                MalformedQuery,
            ),
            (
                format!("otpauth://totp/bob?secret={B32}&secret={B32}"),
                DuplicateParameter("secret".into()),
            ),
            (
                format!("otpauth://totp/bob?image=a&secret={B32}&image=b"),
                DuplicateParameter("image".into()),
            ),
            (
                format!("otpauth://totp/bob?secret={B32}&digits=6&digits=6"),
                DuplicateParameter("digits".into()),
            ),
            (
                format!("otpauth://hotp/bob?secret={B32}&counter=1&period=30"),
                ParameterNotAllowed("period"),
            ),
            (
                format!("otpauth://totp/bob?secret={B32}&counter=1"),
                ParameterNotAllowed("counter"),
            ),
            ("otpauth://totp/bob".into(), MissingSecret),
            ("otpauth://totp/bob?issuer=x".into(), MissingSecret),
            ("otpauth://totp/bob?secret=".into(), MissingSecret),
            (
                "otpauth://totp/bob?secret=GEZDGNBVGY3TQOJ1".into(),
                InvalidSecret(Base32Error::InvalidCharacter(15)),
            ),
            (
                "otpauth://totp/bob?secret=GEZDGNBVGY3TQOJQG".into(),
                InvalidSecret(Base32Error::InvalidLength(17)),
            ),
            (
                "otpauth://totp/bob?secret=GEZDGNBVGY3TQ%3D%3D%3D".into(),
                SecretLength(8),
            ),
            (
                "otpauth://totp/bob?secret=GEZDGNBVGY3TQOI".into(),
                SecretLength(9),
            ),
            (
                format!("otpauth://totp/bob?secret={big}"),
                SecretLength(129),
            ),
            (
                format!("otpauth://totp/bob?secret={B32}&algorithm=MD5"),
                UnknownAlgorithm,
            ),
            (
                format!("otpauth://totp/bob?secret={B32}&algorithm="),
                UnknownAlgorithm,
            ),
            (
                format!("otpauth://totp/bob?secret={B32}&digits=5"),
                InvalidDigits,
            ),
            (
                format!("otpauth://totp/bob?secret={B32}&digits=06"),
                InvalidDigits,
            ),
            (
                format!("otpauth://totp/bob?secret={B32}&digits=9"),
                InvalidDigits,
            ),
            (
                format!("otpauth://totp/bob?secret={B32}&period=0"),
                InvalidPeriod,
            ),
            (
                format!("otpauth://totp/bob?secret={B32}&period=3601"),
                InvalidPeriod,
            ),
            (
                format!("otpauth://totp/bob?secret={B32}&period=-30"),
                InvalidPeriod,
            ),
            (
                format!("otpauth://totp/bob?secret={B32}&period=99999999999"),
                InvalidPeriod,
            ),
            (format!("otpauth://hotp/bob?secret={B32}"), MissingCounter),
            (
                format!("otpauth://hotp/bob?secret={B32}&counter="),
                InvalidCounter,
            ),
            (
                format!("otpauth://hotp/bob?secret={B32}&counter=+1"),
                InvalidCounter,
            ),
            (
                format!("otpauth://hotp/bob?secret={B32}&counter=18446744073709551616"),
                InvalidCounter,
            ),
        ];
        for (uri, err) in cases {
            assert_eq!(parse(&uri), Err(err), "{uri}");
        }
        let max = parse(&format!(
            "otpauth://hotp/bob?secret={B32}&counter=18446744073709551615"
        ));
        assert_eq!(max.unwrap().kind(), OtpKind::Hotp { counter: u64::MAX });
    }

    #[test]
    fn a_new_account_needs_a_code_left() {
        let last = format!("otpauth://hotp/bob?secret={B32}&counter=18446744073709551615");
        assert_eq!(
            OtpauthUri::parse_new_account(&last).err(),
            Some(OtpauthError::CounterExhausted)
        );
        let one_left = format!("otpauth://hotp/bob?secret={B32}&counter=18446744073709551614");
        assert_eq!(
            OtpauthUri::parse_new_account(&one_left).map(|u| u.kind()),
            Ok(OtpKind::Hotp {
                counter: u64::MAX - 1
            })
        );
        // Everything else is refused exactly as `parse` refuses it.
        assert_eq!(
            OtpauthUri::parse_new_account("otpauth://totp/bob?secret=GEZDGNBV").err(),
            Some(OtpauthError::SecretLength(5))
        );
    }

    #[test]
    fn new_validates_like_parse() {
        use OtpauthError::*;
        let s = || OtpSecret::from_slice(&[1u8; 20]);
        let totp = OtpKind::Totp { period: 30 };
        let mk = |issuer: Option<&str>, account: &str, secret: OtpSecret, digits, kind| {
            OtpauthUri::new(
                kind,
                issuer.map(str::to_owned),
                account.to_owned(),
                secret,
                HmacAlgorithm::Sha256,
                digits,
            )
        };
        assert!(mk(Some("I"), "a", s(), 6, totp).is_ok());
        assert_eq!(mk(Some(""), "a", s(), 6, totp), Err(EmptyIssuer));
        assert_eq!(mk(None, "", s(), 6, totp), Err(EmptyAccountName));
        assert_eq!(mk(Some("a:b"), "a", s(), 6, totp), Err(ColonInIssuer));
        assert_eq!(mk(None, "a:b", s(), 6, totp), Err(ColonInAccountName));
        assert_eq!(
            mk(None, " a", s(), 6, totp),
            Err(SurroundingWhitespace("account name"))
        );
        assert_eq!(
            mk(None, "a\u{7}", s(), 6, totp),
            Err(ControlCharacter("account name"))
        );
        let long = "x".repeat(200);
        assert_eq!(mk(Some(&long), &long, s(), 6, totp), Err(LabelTooLong(401)));
        assert_eq!(
            mk(None, "a", OtpSecret::from_slice(&[1; 9]), 6, totp),
            Err(SecretLength(9))
        );
        assert_eq!(mk(None, "a", s(), 9, totp), Err(InvalidDigits));
        assert_eq!(
            mk(None, "a", s(), 6, OtpKind::Totp { period: 0 }),
            Err(InvalidPeriod)
        );
    }

    fn name() -> impl Strategy<Value = String> {
        "\\PC{1,40}"
    }

    fn account() -> impl Strategy<Value = OtpauthUri> {
        (
            prop_oneof![
                any::<u64>().prop_map(|counter| OtpKind::Hotp { counter }),
                (1u32..=3600).prop_map(|period| OtpKind::Totp { period }),
            ],
            proptest::option::of(name()),
            name(),
            proptest::collection::vec(any::<u8>(), MIN_SECRET_LEN..=MAX_SECRET_LEN),
            prop_oneof![
                Just(HmacAlgorithm::Sha1),
                Just(HmacAlgorithm::Sha256),
                Just(HmacAlgorithm::Sha512)
            ],
            6u8..=8,
        )
            .prop_filter_map(
                "invalid account",
                |(kind, issuer, account, secret, alg, digits)| {
                    OtpauthUri::new(kind, issuer, account, OtpSecret::new(secret), alg, digits).ok()
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn format_then_parse_is_identity(u in account()) {
            let uri = u.to_uri();
            let back = OtpauthUri::parse(&uri).unwrap();
            prop_assert_eq!(&back, &u);
            prop_assert_eq!(back.to_uri(), uri);
        }

        #[test]
        fn arbitrary_strings_return_typed_errors(s in any::<String>()) {
            let _ = OtpauthUri::parse(&s);
        }

        #[test]
        fn uri_shaped_strings_never_panic(
            kind in "(totp|hotp|TOTP|xotp)",
            label in "[ -~]{0,40}",
            query in "((secret|issuer|algorithm|digits|period|counter|x)=[ -~&&[^&#]]{0,40}&?){0,8}",
        ) {
            let _ = OtpauthUri::parse(&format!("otpauth://{kind}/{label}?{query}"));
        }

        #[test]
        fn mutated_valid_uris_never_panic(u in account(), pos in any::<usize>(), byte in any::<u8>()) {
            let mut bytes = u.to_uri().as_bytes().to_vec();
            let i = pos % bytes.len();
            bytes[i] = byte;
            if let Ok(s) = String::from_utf8(bytes) {
                let _ = OtpauthUri::parse(&s);
            }
        }
    }
}

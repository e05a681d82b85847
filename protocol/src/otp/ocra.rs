//! OCRA (RFC 6287): challenge-response codes, used by Countersign for offline
//! QR approval. (The code is under 600 lines; the rest of the file is its
//! RFC 6287 vectors and one test per rejection.)
//!
//! # Suite grammar accepted by [`OcraSuite::parse`]
//!
//! ```text
//! OCRA-1:HOTP-<SHA1|SHA256|SHA512>-<t>:[C-]QFxx[-PH][-Snnn][-TG]
//! t   = 0 | 4..10               (0 = no truncation)
//! F   = A | N | H               (alphanumeric, numeric, hexadecimal)
//! xx  = 04..64                  (two digits: the length of one challenge)
//! PH  = PSHA1 | PSHA256 | PSHA512
//! nnn = 001..512                (three digits: session information bytes)
//! TG  = T<1..59>S | T<1..59>M | T<1..48>H
//! ```
//!
//! Strictness, all documented deviations from a lax reading of the RFC:
//! the suite is case-sensitive (it is hashed verbatim into the DataInput);
//! the question is mandatory (RFC 6287 §5.1); components appear at most once,
//! in DataInput order C, Q, P, S, T; `T0H` (a zero time step, which the RFC
//! table allows but which cannot count time) is rejected; the suite is at most
//! 64 characters.
//!
//! # DataInput (RFC 6287 §5.1)
//!
//! `suite || 0x00 || C (8 bytes BE) || Q (128 bytes) || P (hash) || S (nnn bytes) || T (8 bytes BE)`,
//! only the parts the suite names. Q is the question's hex nibbles, padded on
//! the right with zero nibbles to 128 bytes: for `N` the decimal question
//! converted to hexadecimal (no leading zeros, `0` for zero), for `H` the hex
//! digits as given, for `A` the ASCII bytes. The response is the HOTP dynamic
//! truncation of `HMAC(key, DataInput)` with `t` digits, or for `t = 0` the
//! whole HMAC in lowercase hex.
//!
//! # Inputs
//!
//! * The question may be up to 2·xx characters, so that mutual-mode
//!   challenges (server question and client question concatenated, RFC 6287
//!   §7.3) fit; `A` questions are ASCII letters and digits, `N` decimal digits,
//!   `H` hex digits of either case.
//! * The PIN is passed already hashed with the suite's P hash.
//! * The session information must be exactly nnn bytes.
//! * The timestamp is the RFC's T: the number of time steps since the Unix
//!   epoch; [`OcraSuite::timestamp_for`] computes it from Unix seconds.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{HmacAlgorithm, MAX_SECRET_LEN, dynamic_truncate, format_code};
use crate::crypto::hmac;

/// Longest suite string accepted.
pub const MAX_SUITE_LEN: usize = 64;
/// Size of the Q field in the DataInput.
const Q_FIELD_LEN: usize = 128;

/// OCRA suite and input errors. Messages never quote the inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OcraError {
    /// The suite string is longer than [`MAX_SUITE_LEN`].
    #[error("OCRA suite is {0} characters (at most 64)")]
    SuiteTooLong(usize),
    /// The suite does not have exactly three `:`-separated parts.
    #[error("OCRA suite must be Algorithm:CryptoFunction:DataInput")]
    SuiteParts,
    /// The algorithm part is not `OCRA-1`.
    #[error("unsupported OCRA version (only OCRA-1)")]
    UnsupportedVersion,
    /// The crypto function is not `HOTP-<hash>-<digits>`.
    #[error("malformed OCRA crypto function (HOTP-SHAx-t)")]
    InvalidCryptoFunction,
    /// A hash name (crypto function or PIN) is not SHA1, SHA256 or SHA512.
    #[error("unsupported OCRA hash (SHA1, SHA256 or SHA512)")]
    UnsupportedHash,
    /// The truncation length is not 0 or 4..=10.
    #[error("{0} OCRA digits is not supported (0 or 4 to 10)")]
    InvalidDigits(u8),
    /// A DataInput component is empty or not one of C, Q, P, S, T.
    #[error("unknown OCRA DataInput component at position {0}")]
    UnknownComponent(usize),
    /// A DataInput component is repeated or out of the order C, Q, P, S, T.
    #[error("OCRA DataInput component at position {0} is repeated or out of order")]
    ComponentOrder(usize),
    /// The DataInput has no question component (it is mandatory).
    #[error("OCRA DataInput has no question (QFxx)")]
    MissingQuestion,
    /// The question component is not `Q` + A/N/H + two digits.
    #[error("malformed OCRA question component (QFxx)")]
    InvalidQuestionComponent,
    /// The question length `xx` is outside 04..=64.
    #[error("OCRA question length {0} is outside 04 to 64")]
    QuestionLengthOutOfRange(u8),
    /// The session component is not `S` + three digits in 001..=512.
    #[error("malformed OCRA session component (S001 to S512)")]
    InvalidSession,
    /// The timestamp component is not a valid `TG`.
    #[error("malformed OCRA timestamp component (T1S-T59S, T1M-T59M, T1H-T48H)")]
    InvalidTimeStep,
    /// The key is empty or longer than 1024 bytes.
    #[error("an OCRA key of {0} bytes is not supported (1 to 1024)")]
    KeyLength(usize),
    /// The suite requires an input that was not given.
    #[error("the OCRA suite requires a {0}")]
    MissingInput(&'static str),
    /// An input was given that the suite does not use.
    #[error("the OCRA suite does not use a {0}")]
    UnexpectedInput(&'static str),
    /// The question is empty or longer than the suite allows.
    #[error("OCRA question is {len} characters (1 to {max})")]
    QuestionLength {
        /// Characters given.
        len: usize,
        /// Most characters accepted (2·xx).
        max: usize,
    },
    /// The question has a character its format does not allow.
    #[error("OCRA question has an invalid character at position {0}")]
    QuestionCharacter(usize),
    /// The PIN hash length does not match the suite's P hash.
    #[error("OCRA PIN hash is {got} bytes, the suite needs {expected}")]
    PinHashLength {
        /// Bytes the suite needs.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The session information length does not match the suite's nnn.
    #[error("OCRA session information is {got} bytes, the suite needs {expected}")]
    SessionLength {
        /// Bytes the suite needs.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The HMAC was too short to truncate; cannot happen with SHA-1/256/512.
    #[error("HMAC output too short for dynamic truncation")]
    MacTooShort,
}

/// How the question is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuestionFormat {
    /// `A`: ASCII letters and digits, hashed as their bytes.
    Alphanumeric,
    /// `N`: decimal digits, converted to hexadecimal.
    Numeric,
    /// `H`: hexadecimal digits.
    Hex,
}

/// A parsed, validated OCRA suite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcraSuite {
    text: String,
    algorithm: HmacAlgorithm,
    digits: u8,
    counter: bool,
    question_format: QuestionFormat,
    question_len: u8,
    pin: Option<HmacAlgorithm>,
    session_len: Option<u16>,
    time_step: Option<u32>,
}

/// The inputs of one OCRA computation. Only the ones the suite names may be set.
#[derive(Clone, Copy, Default)]
pub struct OcraInputs<'a> {
    /// C: the counter (suites with `C`).
    pub counter: Option<u64>,
    /// Q: the question (mutual mode: both questions concatenated).
    pub question: &'a str,
    /// P: the PIN hashed with the suite's P hash (suites with `PH`).
    pub pin_hash: Option<&'a [u8]>,
    /// S: the session information, exactly nnn bytes (suites with `Snnn`).
    pub session: Option<&'a [u8]>,
    /// T: time steps since the Unix epoch (suites with `TG`); see
    /// [`OcraSuite::timestamp_for`].
    pub timestamp: Option<u64>,
}

impl fmt::Debug for OcraInputs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OcraInputs")
            .field("counter", &self.counter)
            .field("question", &self.question)
            .field("pin_hash", &self.pin_hash.map(|_| "<redacted>"))
            .field("session", &self.session.map(<[u8]>::len))
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

fn parse_hash(name: &str) -> Result<HmacAlgorithm, OcraError> {
    match name {
        "SHA1" => Ok(HmacAlgorithm::Sha1),
        "SHA256" => Ok(HmacAlgorithm::Sha256),
        "SHA512" => Ok(HmacAlgorithm::Sha512),
        _ => Err(OcraError::UnsupportedHash),
    }
}

/// A canonical decimal number of at most `max_len` digits (no leading zeros
/// unless `allow_leading_zeros`).
fn parse_decimal(text: &str, max_len: usize, allow_leading_zeros: bool) -> Option<u32> {
    let b = text.as_bytes();
    if b.is_empty() || b.len() > max_len || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if !allow_leading_zeros && b.len() > 1 && b.first() == Some(&b'0') {
        return None;
    }
    text.parse().ok()
}

fn parse_question(component: &str) -> Result<(QuestionFormat, u8), OcraError> {
    let rest = component
        .strip_prefix('Q')
        .ok_or(OcraError::InvalidQuestionComponent)?;
    let mut chars = rest.chars();
    let format = match chars.next() {
        Some('A') => QuestionFormat::Alphanumeric,
        Some('N') => QuestionFormat::Numeric,
        Some('H') => QuestionFormat::Hex,
        _ => return Err(OcraError::InvalidQuestionComponent),
    };
    let digits = chars.as_str();
    if digits.len() != 2 {
        return Err(OcraError::InvalidQuestionComponent);
    }
    let len = parse_decimal(digits, 2, true).ok_or(OcraError::InvalidQuestionComponent)?;
    let len = u8::try_from(len).map_err(|_| OcraError::InvalidQuestionComponent)?;
    if !(4..=64).contains(&len) {
        return Err(OcraError::QuestionLengthOutOfRange(len));
    }
    Ok((format, len))
}

fn parse_session(component: &str) -> Result<u16, OcraError> {
    let digits = component
        .strip_prefix('S')
        .ok_or(OcraError::InvalidSession)?;
    if digits.len() != 3 {
        return Err(OcraError::InvalidSession);
    }
    let n = parse_decimal(digits, 3, true).ok_or(OcraError::InvalidSession)?;
    match u16::try_from(n) {
        Ok(n @ 1..=512) => Ok(n),
        _ => Err(OcraError::InvalidSession),
    }
}

fn parse_time_step(component: &str) -> Result<u32, OcraError> {
    let rest = component
        .strip_prefix('T')
        .ok_or(OcraError::InvalidTimeStep)?;
    let (number, unit, max) = if let Some(n) = rest.strip_suffix('S') {
        (n, 1, 59)
    } else if let Some(n) = rest.strip_suffix('M') {
        (n, 60, 59)
    } else if let Some(n) = rest.strip_suffix('H') {
        (n, 3600, 48)
    } else {
        return Err(OcraError::InvalidTimeStep);
    };
    let n = parse_decimal(number, 2, false).ok_or(OcraError::InvalidTimeStep)?;
    if !(1..=max).contains(&n) {
        return Err(OcraError::InvalidTimeStep);
    }
    Ok(n * unit)
}

impl OcraSuite {
    /// Parses and validates a suite string (grammar in the module docs).
    pub fn parse(text: &str) -> Result<Self, OcraError> {
        if text.len() > MAX_SUITE_LEN {
            return Err(OcraError::SuiteTooLong(text.len()));
        }
        let parts: Vec<&str> = text.split(':').collect();
        let [version, function, data_input] = parts.as_slice() else {
            return Err(OcraError::SuiteParts);
        };
        if *version != "OCRA-1" {
            return Err(OcraError::UnsupportedVersion);
        }
        let function = function
            .strip_prefix("HOTP-")
            .ok_or(OcraError::InvalidCryptoFunction)?;
        let (hash, digits) = function
            .rsplit_once('-')
            .ok_or(OcraError::InvalidCryptoFunction)?;
        let algorithm = parse_hash(hash)?;
        let digits = parse_decimal(digits, 2, false).ok_or(OcraError::InvalidCryptoFunction)?;
        let digits = u8::try_from(digits).map_err(|_| OcraError::InvalidCryptoFunction)?;
        if !(digits == 0 || (4..=10).contains(&digits)) {
            return Err(OcraError::InvalidDigits(digits));
        }

        let mut suite = Self {
            text: text.to_owned(),
            algorithm,
            digits,
            counter: false,
            question_format: QuestionFormat::Numeric,
            question_len: 0,
            pin: None,
            session_len: None,
            time_step: None,
        };
        let mut question = None;
        // Rank of the last component seen, in DataInput order C, Q, P, S, T.
        let mut last_rank = 0u8;
        for (position, component) in data_input.split('-').enumerate() {
            let rank = match component.as_bytes().first() {
                Some(b'C') => 1,
                Some(b'Q') => 2,
                Some(b'P') => 3,
                Some(b'S') => 4,
                Some(b'T') => 5,
                _ => return Err(OcraError::UnknownComponent(position)),
            };
            if rank <= last_rank {
                return Err(OcraError::ComponentOrder(position));
            }
            last_rank = rank;
            match rank {
                1 if component == "C" => suite.counter = true,
                1 => return Err(OcraError::UnknownComponent(position)),
                2 => question = Some(parse_question(component)?),
                3 => {
                    let hash = component.strip_prefix('P').unwrap_or(component);
                    suite.pin = Some(parse_hash(hash)?);
                }
                4 => suite.session_len = Some(parse_session(component)?),
                _ => suite.time_step = Some(parse_time_step(component)?),
            }
        }
        let (format, len) = question.ok_or(OcraError::MissingQuestion)?;
        suite.question_format = format;
        suite.question_len = len;
        Ok(suite)
    }

    /// The suite string, exactly as parsed.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// HMAC hash of the crypto function.
    pub fn algorithm(&self) -> HmacAlgorithm {
        self.algorithm
    }

    /// Response digits; 0 means no truncation (full HMAC in hex).
    pub fn digits(&self) -> u8 {
        self.digits
    }

    /// Whether the suite uses a counter (`C`).
    pub fn uses_counter(&self) -> bool {
        self.counter
    }

    /// Question format (`F` of `QFxx`).
    pub fn question_format(&self) -> QuestionFormat {
        self.question_format
    }

    /// Question length (`xx` of `QFxx`).
    pub fn question_len(&self) -> u8 {
        self.question_len
    }

    /// PIN hash (`PH`), if the suite uses a PIN.
    pub fn pin_hash(&self) -> Option<HmacAlgorithm> {
        self.pin
    }

    /// Session information length in bytes (`Snnn`), if used.
    pub fn session_len(&self) -> Option<u16> {
        self.session_len
    }

    /// Time step in seconds (`TG`), if the suite uses a timestamp.
    pub fn time_step(&self) -> Option<u32> {
        self.time_step
    }

    /// The RFC's T for `unix_time` (whole time steps since the epoch), or
    /// `None` if the suite has no timestamp.
    pub fn timestamp_for(&self, unix_time: u64) -> Option<u64> {
        self.time_step
            .filter(|&s| s > 0)
            .map(|s| unix_time / u64::from(s))
    }

    /// Builds the DataInput (RFC 6287 §5.1) after checking every input.
    fn data_input(&self, inputs: &OcraInputs<'_>) -> Result<Zeroizing<Vec<u8>>, OcraError> {
        let counter = match (self.counter, inputs.counter) {
            (true, Some(c)) => Some(c),
            (true, None) => return Err(OcraError::MissingInput("counter")),
            (false, Some(_)) => return Err(OcraError::UnexpectedInput("counter")),
            (false, None) => None,
        };
        let pin_hash = match (self.pin, inputs.pin_hash) {
            (Some(alg), Some(h)) if h.len() == alg.output_len() => Some(h),
            (Some(alg), Some(h)) => {
                return Err(OcraError::PinHashLength {
                    expected: alg.output_len(),
                    got: h.len(),
                });
            }
            (Some(_), None) => return Err(OcraError::MissingInput("PIN hash")),
            (None, Some(_)) => return Err(OcraError::UnexpectedInput("PIN hash")),
            (None, None) => None,
        };
        let session = match (self.session_len, inputs.session) {
            (Some(n), Some(s)) if s.len() == usize::from(n) => Some(s),
            (Some(n), Some(s)) => {
                return Err(OcraError::SessionLength {
                    expected: usize::from(n),
                    got: s.len(),
                });
            }
            (Some(_), None) => return Err(OcraError::MissingInput("session information")),
            (None, Some(_)) => return Err(OcraError::UnexpectedInput("session information")),
            (None, None) => None,
        };
        let timestamp = match (self.time_step, inputs.timestamp) {
            (Some(_), Some(t)) => Some(t),
            (Some(_), None) => return Err(OcraError::MissingInput("timestamp")),
            (None, Some(_)) => return Err(OcraError::UnexpectedInput("timestamp")),
            (None, None) => None,
        };
        let q = self.question_field(inputs.question)?;

        let mut data = Zeroizing::new(Vec::with_capacity(
            self.text.len() + 1 + 8 + Q_FIELD_LEN + 64 + 512 + 8,
        ));
        data.extend_from_slice(self.text.as_bytes());
        data.push(0x00);
        if let Some(c) = counter {
            data.extend_from_slice(&c.to_be_bytes());
        }
        data.extend_from_slice(&q[..]);
        if let Some(p) = pin_hash {
            data.extend_from_slice(p);
        }
        if let Some(s) = session {
            data.extend_from_slice(s);
        }
        if let Some(t) = timestamp {
            data.extend_from_slice(&t.to_be_bytes());
        }
        Ok(data)
    }

    /// The 128-byte Q field: the question's hex nibbles, right-padded with zeros.
    fn question_field(&self, question: &str) -> Result<[u8; Q_FIELD_LEN], OcraError> {
        let max = 2 * usize::from(self.question_len);
        let len = question.chars().count();
        if len == 0 || len > max {
            return Err(OcraError::QuestionLength { len, max });
        }
        let bytes = question.as_bytes();
        let nibbles: Vec<u8> = match self.question_format {
            QuestionFormat::Alphanumeric => {
                if let Some(i) = bytes.iter().position(|b| !b.is_ascii_alphanumeric()) {
                    return Err(OcraError::QuestionCharacter(i));
                }
                bytes.iter().flat_map(|&b| [b >> 4, b & 0x0f]).collect()
            }
            QuestionFormat::Hex => bytes
                .iter()
                .enumerate()
                .map(|(i, &b)| hex_nibble(b).ok_or(OcraError::QuestionCharacter(i)))
                .collect::<Result<_, _>>()?,
            QuestionFormat::Numeric => decimal_to_hex_nibbles(bytes)?,
        };
        let mut field = [0u8; Q_FIELD_LEN];
        if nibbles.len() > 2 * Q_FIELD_LEN {
            return Err(OcraError::QuestionLength { len, max });
        }
        for (i, nibble) in nibbles.iter().enumerate() {
            let shift = if i % 2 == 0 { 4 } else { 0 };
            if let Some(byte) = field.get_mut(i / 2) {
                *byte |= nibble << shift;
            }
        }
        Ok(field)
    }
}

impl fmt::Display for OcraSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for OcraSuite {
    type Err = OcraError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// One hex digit's value (either case). The question is a run of nibbles that
/// may be odd in length, so it is read digit by digit rather than as hex bytes.
fn hex_nibble(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok())
}

/// A decimal string as hexadecimal nibbles, most significant first, without
/// leading zeros (`[0]` for zero), as the RFC's reference code does.
fn decimal_to_hex_nibbles(digits: &[u8]) -> Result<Vec<u8>, OcraError> {
    // Big-endian base-256 magnitude, grown as needed.
    let mut magnitude: Vec<u8> = Vec::new();
    for (i, &d) in digits.iter().enumerate() {
        if !d.is_ascii_digit() {
            return Err(OcraError::QuestionCharacter(i));
        }
        let mut carry = u16::from(d - b'0');
        for byte in magnitude.iter_mut().rev() {
            let v = u16::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        if carry > 0 {
            magnitude.insert(0, (carry & 0xff) as u8);
        }
    }
    let mut nibbles: Vec<u8> = magnitude
        .iter()
        .flat_map(|&b| [b >> 4, b & 0x0f])
        .skip_while(|&n| n == 0)
        .collect();
    if nibbles.is_empty() {
        nibbles.push(0);
    }
    Ok(nibbles)
}

fn check_key(key: &[u8]) -> Result<(), OcraError> {
    if key.is_empty() || key.len() > MAX_SECRET_LEN {
        Err(OcraError::KeyLength(key.len()))
    } else {
        Ok(())
    }
}

/// Computes the OCRA response for `suite`, `key` and `inputs`.
pub fn ocra(suite: &OcraSuite, key: &[u8], inputs: &OcraInputs<'_>) -> Result<String, OcraError> {
    check_key(key)?;
    let data = suite.data_input(inputs)?;
    let mac = Zeroizing::new(hmac(suite.algorithm, key, &data));
    if suite.digits == 0 {
        return Ok(hex::encode(&*mac));
    }
    let value = dynamic_truncate(&mac).map_err(|_| OcraError::MacTooShort)?;
    Ok(format_code(u64::from(value), suite.digits))
}

/// Checks an OCRA response in constant time (exact match; for `t = 0` suites
/// the hex must be lowercase).
pub fn ocra_verify(
    suite: &OcraSuite,
    key: &[u8],
    inputs: &OcraInputs<'_>,
    response: &str,
) -> Result<bool, OcraError> {
    let expected = Zeroizing::new(ocra(suite, key, inputs)?);
    Ok(bool::from(expected.as_bytes().ct_eq(response.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K20: &[u8] = b"12345678901234567890";

    fn inputs(q: &str) -> OcraInputs<'_> {
        OcraInputs {
            question: q,
            ..OcraInputs::default()
        }
    }

    #[test]
    fn parses_full_grammar() {
        let s = OcraSuite::parse("OCRA-1:HOTP-SHA512-10:C-QH64-PSHA256-S512-T48H").unwrap();
        assert_eq!(s.algorithm(), HmacAlgorithm::Sha512);
        assert_eq!(s.digits(), 10);
        assert!(s.uses_counter());
        assert_eq!(s.question_format(), QuestionFormat::Hex);
        assert_eq!(s.question_len(), 64);
        assert_eq!(s.pin_hash(), Some(HmacAlgorithm::Sha256));
        assert_eq!(s.session_len(), Some(512));
        assert_eq!(s.time_step(), Some(48 * 3600));
        assert_eq!(
            s.to_string(),
            "OCRA-1:HOTP-SHA512-10:C-QH64-PSHA256-S512-T48H"
        );
        let s: OcraSuite = "OCRA-1:HOTP-SHA1-0:QA04-T30S".parse().unwrap();
        assert_eq!(s.digits(), 0);
        assert_eq!(s.time_step(), Some(30));
        assert_eq!(s.timestamp_for(95), Some(3));
        let s = OcraSuite::parse("OCRA-1:HOTP-SHA1-6:QN08").unwrap();
        assert_eq!(s.timestamp_for(95), None);
        assert_eq!(s.pin_hash(), None);
        assert!(!s.uses_counter());
    }

    #[test]
    fn every_suite_error() {
        use OcraError::*;
        let long = format!("OCRA-1:HOTP-SHA1-6:QN08{}", "-".repeat(50));
        for (suite, err) in [
            (long.as_str(), SuiteTooLong(long.len())),
            ("OCRA-1:HOTP-SHA1-6", SuiteParts),
            ("OCRA-1:HOTP-SHA1-6:QN08:X", SuiteParts),
            ("OCRA-2:HOTP-SHA1-6:QN08", UnsupportedVersion),
            ("ocra-1:HOTP-SHA1-6:QN08", UnsupportedVersion),
            ("OCRA-1:TOTP-SHA1-6:QN08", InvalidCryptoFunction),
            ("OCRA-1:HOTP-SHA1:QN08", InvalidCryptoFunction),
            ("OCRA-1:HOTP-SHA1-06:QN08", InvalidCryptoFunction),
            ("OCRA-1:HOTP-SHA1-x:QN08", InvalidCryptoFunction),
            ("OCRA-1:HOTP-SHA1-:QN08", InvalidCryptoFunction),
            ("OCRA-1:HOTP-MD5-6:QN08", UnsupportedHash),
            ("OCRA-1:HOTP-SHA1-3:QN08", InvalidDigits(3)),
            ("OCRA-1:HOTP-SHA1-11:QN08", InvalidDigits(11)),
            ("OCRA-1:HOTP-SHA1-6:", UnknownComponent(0)),
            ("OCRA-1:HOTP-SHA1-6:QN08-", UnknownComponent(1)),
            ("OCRA-1:HOTP-SHA1-6:X-QN08", UnknownComponent(0)),
            ("OCRA-1:HOTP-SHA1-6:CC-QN08", UnknownComponent(0)),
            ("OCRA-1:HOTP-SHA1-6:QN08-C", ComponentOrder(1)),
            ("OCRA-1:HOTP-SHA1-6:QN08-QN08", ComponentOrder(1)),
            ("OCRA-1:HOTP-SHA1-6:QN08-T1M-PSHA1", ComponentOrder(2)),
            ("OCRA-1:HOTP-SHA1-6:C", MissingQuestion),
            ("OCRA-1:HOTP-SHA1-6:C-PSHA1", MissingQuestion),
            ("OCRA-1:HOTP-SHA1-6:QX08", InvalidQuestionComponent),
            ("OCRA-1:HOTP-SHA1-6:QN8", InvalidQuestionComponent),
            ("OCRA-1:HOTP-SHA1-6:QN+8", InvalidQuestionComponent),
            ("OCRA-1:HOTP-SHA1-6:QN03", QuestionLengthOutOfRange(3)),
            ("OCRA-1:HOTP-SHA1-6:QN65", QuestionLengthOutOfRange(65)),
            ("OCRA-1:HOTP-SHA1-6:QN08-PMD5", UnsupportedHash),
            ("OCRA-1:HOTP-SHA1-6:QN08-P", UnsupportedHash),
            ("OCRA-1:HOTP-SHA1-6:QN08-S64", InvalidSession),
            ("OCRA-1:HOTP-SHA1-6:QN08-S000", InvalidSession),
            ("OCRA-1:HOTP-SHA1-6:QN08-S513", InvalidSession),
            ("OCRA-1:HOTP-SHA1-6:QN08-T", InvalidTimeStep),
            ("OCRA-1:HOTP-SHA1-6:QN08-T0H", InvalidTimeStep),
            ("OCRA-1:HOTP-SHA1-6:QN08-T60S", InvalidTimeStep),
            ("OCRA-1:HOTP-SHA1-6:QN08-T60M", InvalidTimeStep),
            ("OCRA-1:HOTP-SHA1-6:QN08-T49H", InvalidTimeStep),
            ("OCRA-1:HOTP-SHA1-6:QN08-T1D", InvalidTimeStep),
            ("OCRA-1:HOTP-SHA1-6:QN08-T01M", InvalidTimeStep),
            ("OCRA-1:HOTP-SHA1-6:QN08-TM", InvalidTimeStep),
        ] {
            assert_eq!(OcraSuite::parse(suite), Err(err), "{suite}");
        }
    }

    #[test]
    fn every_input_error() {
        use OcraError::*;
        let s = OcraSuite::parse("OCRA-1:HOTP-SHA1-6:C-QN08-PSHA1-S004-T1M").unwrap();
        let pin = [0u8; 20];
        let ok = OcraInputs {
            counter: Some(1),
            question: "1234",
            pin_hash: Some(&pin),
            session: Some(b"abcd"),
            timestamp: Some(7),
        };
        assert!(ocra(&s, K20, &ok).is_ok());
        let cases: Vec<(OcraInputs<'_>, OcraError)> = vec![
            (
                OcraInputs {
                    counter: None,
                    ..ok
                },
                MissingInput("counter"),
            ),
            (
                OcraInputs {
                    pin_hash: None,
                    ..ok
                },
                MissingInput("PIN hash"),
            ),
            (
                OcraInputs {
                    session: None,
                    ..ok
                },
                MissingInput("session information"),
            ),
            (
                OcraInputs {
                    timestamp: None,
                    ..ok
                },
                MissingInput("timestamp"),
            ),
            (
                OcraInputs {
                    pin_hash: Some(&pin[..19]),
                    ..ok
                },
                PinHashLength {
                    expected: 20,
                    got: 19,
                },
            ),
            (
                OcraInputs {
                    session: Some(b"abc"),
                    ..ok
                },
                SessionLength {
                    expected: 4,
                    got: 3,
                },
            ),
            (
                OcraInputs { question: "", ..ok },
                QuestionLength { len: 0, max: 16 },
            ),
            (
                OcraInputs {
                    question: "12345678901234567",
                    ..ok
                },
                QuestionLength { len: 17, max: 16 },
            ),
            (
                OcraInputs {
                    question: "12a4",
                    ..ok
                },
                QuestionCharacter(2),
            ),
        ];
        for (input, err) in cases {
            assert_eq!(ocra(&s, K20, &input), Err(err));
        }
        assert_eq!(ocra(&s, b"", &ok), Err(KeyLength(0)));

        let bare = OcraSuite::parse("OCRA-1:HOTP-SHA1-6:QA08").unwrap();
        let q = inputs("ABCD");
        assert_eq!(
            ocra(
                &bare,
                K20,
                &OcraInputs {
                    counter: Some(1),
                    ..q
                }
            ),
            Err(UnexpectedInput("counter"))
        );
        assert_eq!(
            ocra(
                &bare,
                K20,
                &OcraInputs {
                    pin_hash: Some(&pin),
                    ..q
                }
            ),
            Err(UnexpectedInput("PIN hash"))
        );
        assert_eq!(
            ocra(
                &bare,
                K20,
                &OcraInputs {
                    session: Some(b"x"),
                    ..q
                }
            ),
            Err(UnexpectedInput("session information"))
        );
        assert_eq!(
            ocra(
                &bare,
                K20,
                &OcraInputs {
                    timestamp: Some(1),
                    ..q
                }
            ),
            Err(UnexpectedInput("timestamp"))
        );
        assert_eq!(ocra(&bare, K20, &inputs("AB-D")), Err(QuestionCharacter(2)));
        let hex = OcraSuite::parse("OCRA-1:HOTP-SHA1-6:QH08").unwrap();
        assert_eq!(ocra(&hex, K20, &inputs("00fG")), Err(QuestionCharacter(3)));
        assert!(ocra(&hex, K20, &inputs("00fF")).is_ok());
    }

    #[test]
    fn numeric_question_is_converted_to_hex() {
        assert_eq!(decimal_to_hex_nibbles(b"0").unwrap(), vec![0]);
        assert_eq!(decimal_to_hex_nibbles(b"00000000").unwrap(), vec![0]);
        // 12345678 = 0xBC614E
        assert_eq!(
            decimal_to_hex_nibbles(b"12345678").unwrap(),
            vec![0xB, 0xC, 0x6, 0x1, 0x4, 0xE]
        );
        // 4095 = 0xFFF: an odd number of nibbles, padded on the right.
        assert_eq!(
            decimal_to_hex_nibbles(b"4095").unwrap(),
            vec![0xF, 0xF, 0xF]
        );
        let s = OcraSuite::parse("OCRA-1:HOTP-SHA1-6:QN08").unwrap();
        let field = s.question_field("4095").unwrap();
        assert_eq!(&field[..3], &[0xFF, 0xF0, 0x00]);
        // N and H agree on the same number.
        let h = OcraSuite::parse("OCRA-1:HOTP-SHA1-6:QH08").unwrap();
        assert_eq!(h.question_field("fff").unwrap(), field);
        // A 128-digit decimal question still fits.
        let big = OcraSuite::parse("OCRA-1:HOTP-SHA1-6:QN64").unwrap();
        assert!(big.question_field(&"9".repeat(128)).is_ok());
    }

    #[test]
    fn rfc_vector_and_verify() {
        let s = OcraSuite::parse("OCRA-1:HOTP-SHA1-6:QN08").unwrap();
        assert_eq!(ocra(&s, K20, &inputs("00000000")).unwrap(), "237653");
        assert!(ocra_verify(&s, K20, &inputs("00000000"), "237653").unwrap());
        assert!(!ocra_verify(&s, K20, &inputs("00000000"), "237654").unwrap());
        assert!(!ocra_verify(&s, K20, &inputs("00000000"), "23765").unwrap());
        let full = OcraSuite::parse("OCRA-1:HOTP-SHA256-0:QN08").unwrap();
        let r = ocra(&full, K20, &inputs("1")).unwrap();
        assert_eq!(r.len(), 64);
        assert!(
            r.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let ten = OcraSuite::parse("OCRA-1:HOTP-SHA1-10:QN08").unwrap();
        assert_eq!(ocra(&ten, K20, &inputs("1")).unwrap().len(), 10);
    }

    #[test]
    fn debug_redacts_pin() {
        let pin = [0xAAu8; 20];
        let i = OcraInputs {
            pin_hash: Some(&pin),
            ..inputs("1")
        };
        let d = format!("{i:?}");
        assert!(d.contains("redacted") && !d.contains("170"), "{d}");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_suites_return_typed_errors(s in any::<String>()) {
                let _ = OcraSuite::parse(&s);
            }

            #[test]
            fn suite_shaped_strings_never_panic(
                s in "OCRA-1:HOTP-SHA(1|256|512|9)-[0-9]{0,3}:(C-)?(Q[ANHX][0-9]{1,3})?(-P[A-Z0-9]{0,6})?(-S[0-9]{0,4})?(-T[0-9]{0,3}[SMHD]?)?",
                q in "[ -~]{0,130}",
                c in proptest::option::of(any::<u64>()),
                t in proptest::option::of(any::<u64>()),
            ) {
                if let Ok(suite) = OcraSuite::parse(&s) {
                    prop_assert_eq!(suite.as_str(), s.as_str());
                    let pin = [0u8; 64];
                    let session = [0u8; 512];
                    let inputs = OcraInputs {
                        counter: c,
                        question: &q,
                        pin_hash: suite.pin_hash().and_then(|a| pin.get(..a.output_len())),
                        session: suite.session_len().and_then(|n| session.get(..usize::from(n))),
                        timestamp: t,
                    };
                    if let Ok(r) = ocra(&suite, K20, &inputs) {
                        let want = if suite.digits() == 0 {
                            2 * suite.algorithm().output_len()
                        } else {
                            usize::from(suite.digits())
                        };
                        prop_assert_eq!(r.len(), want);
                    }
                }
            }
        }
    }
}

//! Offer credentials: the offer id and secret, and the typed activation code
//! (Crockford base32 with a Luhn mod 32 check character).

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{CODE_CHARS, OFFER_ID_LEN, OFFER_PROOF_LABEL, OFFER_SECRET_LEN};
use crate::crypto::{HmacAlgorithm, hmac, random_array};
use crate::encoding::{CROCKFORD, crockford_decode, crockford_encode, crockford_value};
use crate::error::{ProtocolError, Result};

/// Characters of the offer id in the typed code (the secret follows).
const OFFER_ID_CHARS: usize = 8;

/// A one-time activation offer id: 40 random bits, written as 8 Crockford base32
/// characters. Public (it names the offer); the secret authenticates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OfferId(pub [u8; OFFER_ID_LEN]);

impl OfferId {
    /// A fresh random offer id (the server must still check it is not in use).
    pub fn generate() -> Result<Self> {
        Ok(Self(random_array::<OFFER_ID_LEN>()?))
    }

    /// The 8-character text form.
    pub fn to_text(&self) -> String {
        crockford_encode(&self.0)
    }

    /// Parses the text form (case-insensitive; `I`/`L` read as 1, `O` as 0).
    pub fn parse(text: &str) -> Result<Self> {
        crockford_decode(text)
            .map(Self)
            .ok_or(ProtocolError::BadEncoding { field: "id" })
    }
}

impl fmt::Display for OfferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// The offer's secret: 80 random bits. Never sent back to the server: the device
/// proves knowledge with an HMAC bound to its keys. Zeroized on drop; Debug redacts.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct OfferSecret([u8; OFFER_SECRET_LEN]);

impl OfferSecret {
    /// A fresh random secret.
    pub fn generate() -> Result<Self> {
        Ok(Self(random_array::<OFFER_SECRET_LEN>()?))
    }

    /// Wraps known secret bytes (test vectors, server storage).
    pub fn from_bytes(bytes: [u8; OFFER_SECRET_LEN]) -> Self {
        Self(bytes)
    }

    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8; OFFER_SECRET_LEN] {
        &self.0
    }

    /// The 16-character text form (secret: handle with care).
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(crockford_encode(&self.0))
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Self> {
        crockford_decode(text)
            .map(Self)
            .ok_or(ProtocolError::BadEncoding { field: "secret" })
    }

    /// `HMAC-SHA256(secret, "countersign/v1/offer-proof" || 0x00 || binding)`.
    pub(super) fn proof(&self, binding: &[u8]) -> Vec<u8> {
        let mut msg = Vec::with_capacity(OFFER_PROOF_LABEL.len() + 1 + binding.len());
        msg.extend_from_slice(OFFER_PROOF_LABEL.as_bytes());
        msg.push(0);
        msg.extend_from_slice(binding);
        hmac(HmacAlgorithm::Sha256, &self.0, &msg)
    }
}

impl fmt::Debug for OfferSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OfferSecret(<redacted>)")
    }
}

/// Luhn mod 32 check value over Crockford symbol values: detects every single-symbol
/// error and every transposition of adjacent symbols.
fn luhn32_check(values: &[u8]) -> u8 {
    let mut sum: u32 = 0;
    let mut factor: u32 = 2;
    for &v in values.iter().rev() {
        let addend = factor * u32::from(v);
        sum += addend / 32 + addend % 32;
        factor = if factor == 2 { 1 } else { 2 };
    }
    // (32 - sum % 32) % 32 is < 32 and fits in u8.
    ((32 - sum % 32) % 32) as u8
}

/// The offer id and secret: what a device needs, besides the server URL, to activate.
/// The typed code is this value in text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferCredentials {
    /// The offer id.
    pub id: OfferId,
    /// The offer secret.
    pub secret: OfferSecret,
}

impl OfferCredentials {
    /// Fresh random credentials.
    pub fn generate() -> Result<Self> {
        Ok(Self {
            id: OfferId::generate()?,
            secret: OfferSecret::generate()?,
        })
    }

    /// The typed activation code: 25 Crockford base32 characters (8 id, 16 secret,
    /// 1 Luhn mod 32 check) in five groups of five, e.g. `3KX9T-…`.
    pub fn to_code(&self) -> Zeroizing<String> {
        let mut chars = Zeroizing::new(String::with_capacity(CODE_CHARS));
        chars.push_str(&self.id.to_text());
        chars.push_str(&self.secret.to_text());
        let values: Zeroizing<Vec<u8>> =
            Zeroizing::new(chars.chars().filter_map(crockford_value).collect());
        let check = luhn32_check(&values);
        chars.push(
            CROCKFORD
                .get(usize::from(check))
                .map(|&c| char::from(c))
                .unwrap_or('0'),
        );
        let mut out = Zeroizing::new(String::with_capacity(CODE_CHARS + 4));
        for (i, c) in chars.chars().enumerate() {
            if i > 0 && i % 5 == 0 {
                out.push('-');
            }
            out.push(c);
        }
        out
    }

    /// Parses a typed code. Case, spaces and hyphens do not matter; `I`/`L` read as
    /// 1 and `O` as 0. A wrong check character gives [`ProtocolError::InvalidCode`].
    pub fn parse_code(text: &str) -> Result<Self> {
        if text.len() > 64 {
            return Err(ProtocolError::InvalidCode { reason: "too long" });
        }
        // The symbols as typed (separators dropped) and their values for the check.
        let mut symbols = Zeroizing::new(String::with_capacity(CODE_CHARS));
        let mut values = Zeroizing::new(Vec::with_capacity(CODE_CHARS));
        for c in text.chars() {
            if c == '-' || c == ' ' {
                continue;
            }
            let v = crockford_value(c).ok_or(ProtocolError::InvalidCode {
                reason: "invalid character",
            })?;
            symbols.push(c);
            values.push(v);
        }
        if values.len() != CODE_CHARS {
            return Err(ProtocolError::InvalidCode {
                reason: "wrong length",
            });
        }
        let (body, check) = values.split_at(CODE_CHARS - 1);
        if check != [luhn32_check(body)] {
            return Err(ProtocolError::InvalidCode {
                reason: "check character mismatch (typo?)",
            });
        }
        // Every symbol is ASCII, so character and byte positions agree.
        let id_text = symbols.get(..OFFER_ID_CHARS).unwrap_or_default();
        let secret_text = symbols
            .get(OFFER_ID_CHARS..CODE_CHARS - 1)
            .unwrap_or_default();
        let id = crockford_decode(id_text).ok_or(ProtocolError::InvalidCode {
            reason: "invalid offer id",
        })?;
        let secret = Zeroizing::new(crockford_decode(secret_text).ok_or(
            ProtocolError::InvalidCode {
                reason: "invalid secret",
            },
        )?);
        Ok(Self {
            id: OfferId(id),
            secret: OfferSecret(*secret),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_mod_32_check_values() {
        assert_eq!(luhn32_check(&[]), 0);
        assert_eq!(luhn32_check(&[0]), 0);
        assert_eq!(luhn32_check(&[1]), 30);
        assert_eq!(luhn32_check(&[1, 1]), 29);
        // 2 × 16 = 32 sums its base-32 digits: 1 + 0.
        assert_eq!(luhn32_check(&[16]), 31);
    }

    #[test]
    fn typed_code_layout() {
        let creds = OfferCredentials {
            id: OfferId([0x08, 0x42, 0x10, 0x84, 0x21]),
            secret: OfferSecret::from_bytes([0; OFFER_SECRET_LEN]),
        };
        assert_eq!(creds.id.to_text(), "11111111");
        assert_eq!(creds.to_code().as_str(), "11111-11100-00000-00000-0000M");
        let typed = OfferCredentials::parse_code("iLil1 111oo-OOOOO 00000 0000m").unwrap();
        assert_eq!(typed, creds);
        assert_eq!(
            OfferCredentials::parse_code("11111-11100-00000-00000-0000U"),
            Err(ProtocolError::InvalidCode {
                reason: "invalid character"
            })
        );
    }
}

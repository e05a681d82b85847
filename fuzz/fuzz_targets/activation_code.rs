//! The typed activation code and the offer id and secret text forms.
//!
//! Asserts: no panic; a parsed code prints canonically and parses back to the same
//! credentials; changing any one symbol of a valid code is caught by the check
//! character; id and secret text forms round-trip.
#![no_main]

use countersign_protocol::{OfferCredentials, OfferId, OfferSecret};
use libfuzzer_sys::fuzz_target;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fuzz_target!(
    init: countersign_fuzz::write_seeds_if_asked("activation_code"),
    |data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(creds) = OfferCredentials::parse_code(text) {
            let code = creds.to_code();
            assert_eq!(OfferCredentials::parse_code(&code).as_ref(), Ok(&creds));
            // One symbol changed (position and new value picked by the input).
            let symbols: Vec<u8> = code.bytes().filter(|&b| b != b'-').collect();
            let pos = data.len() % symbols.len();
            let old = CROCKFORD.iter().position(|&c| c == symbols[pos]).expect("canonical symbol");
            let new = (old + 1 + usize::from(data[0]) % 31) % 32;
            let mut typo = symbols.clone();
            typo[pos] = CROCKFORD[new];
            let typo = String::from_utf8(typo).expect("ascii");
            assert!(OfferCredentials::parse_code(&typo).is_err(), "typo accepted: {typo}");
        }
        if let Ok(id) = OfferId::parse(text) {
            assert_eq!(OfferId::parse(&id.to_text()), Ok(id));
        }
        if let Ok(secret) = OfferSecret::parse(text) {
            assert_eq!(OfferSecret::parse(&secret.to_text()), Ok(secret));
        }
    }
);

//! `otpauth://` URIs (scanned or imported accounts).
//!
//! Asserts: no panic; a parsed URI re-serialises to a canonical URI that parses
//! back to the same account and serialises identically; `parse_new_account`
//! accepts only what `parse` accepts; a parsed account can give a code.
#![no_main]

use countersign_protocol::otpauth::{OtpKind, OtpauthUri};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: countersign_fuzz::write_seeds_if_asked("otpauth"),
    |data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let parsed = OtpauthUri::parse(text);
        if let Ok(account) = OtpauthUri::parse_new_account(text) {
            assert_eq!(parsed.as_ref(), Ok(&account));
        }
        if let Ok(account) = parsed {
            let uri = account.to_uri();
            let again = OtpauthUri::parse(&uri).expect("canonical URI parses");
            assert_eq!(again, account);
            assert_eq!(again.to_uri(), uri);
            let code = account.code(countersign_fuzz::T0);
            if !matches!(account.kind(), OtpKind::Hotp { counter: u64::MAX }) {
                let code = code.expect("a valid account gives a code");
                assert_eq!(code.len(), usize::from(account.digits()));
            }
        }
    }
);

//! The signed-message envelope every signed payload travels in, and its
//! signature check under every purpose and fixture key.
//!
//! Asserts: no panic; a parsed envelope re-serialises and parses back to the same
//! message; whatever verifies (key, purpose) is exactly a payload the fixture
//! signed with that key for that purpose; a verified payload with any one byte
//! changed, or under another purpose, no longer verifies.
#![no_main]

use countersign_protocol::crypto::Signature;
use countersign_protocol::signed::verify_detached;
use countersign_protocol::{Purpose, SignedMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: countersign_fuzz::write_seeds_if_asked("signed_message"),
    |data: &[u8]| {
        let f = countersign_fuzz::fixture();
        if let Ok(sig) = Signature::from_der(data) {
            assert_eq!(Signature::from_der(&sig.to_der()).as_ref(), Ok(&sig));
        }
        let Ok(msg) = SignedMessage::from_json(data) else {
            return;
        };
        let json = msg.to_json().expect("a parsed message serialises");
        assert_eq!(SignedMessage::from_json(&json).as_ref(), Ok(&msg));
        for key in f.public_keys() {
            for purpose in Purpose::ALL {
                let Ok(payload) = msg.verify(purpose, &key) else {
                    continue;
                };
                assert!(
                    f.signed(purpose, msg.kid(), payload),
                    "a payload the fixture never signed verified for {purpose:?}"
                );
                for other in Purpose::ALL.into_iter().filter(|&p| p != purpose) {
                    assert!(msg.verify(other, &key).is_err(), "{purpose:?} verified as {other:?}");
                }
                if !payload.is_empty() {
                    let mut changed = payload.to_vec();
                    let i = data.len() % changed.len();
                    changed[i] ^= 1 << (data[0] % 8);
                    assert!(
                        verify_detached(purpose, &changed, &key, msg.signature()).is_err(),
                        "a changed payload verified"
                    );
                }
            }
        }
    }
);

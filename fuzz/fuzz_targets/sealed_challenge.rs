//! Push challenges: the signed envelope from S, the sealed payload (header and
//! HPKE box), opening with the device's KEM key, and the challenge plaintext.
//!
//! Asserts: no panic; only challenges the fixture signed verify; an opened
//! challenge is bound to its header (tx, account, expiry), hashes to its plaintext
//! and is what was sealed; parsed sealed payloads, headers and challenges
//! re-serialise and parse back to the same value.
#![no_main]

use countersign_fuzz::{SKEW, T0};
use countersign_protocol::challenge::ChallengeHeader;
use countersign_protocol::{
    Challenge, OpenedChallenge, Purpose, SealedChallenge, SignedMessage, challenge_hash,
};
use libfuzzer_sys::fuzz_target;

fn check_opened(sealed: &SealedChallenge, opened: &OpenedChallenge) {
    let h = sealed.header();
    let c = &opened.challenge;
    assert_eq!(c.tx_id, h.tx_id);
    assert_eq!(c.account_id, h.account_id);
    assert_eq!(c.expires_at, h.expires_at);
    assert_eq!(opened.hash, challenge_hash(&opened.plaintext));
    assert_eq!(Challenge::from_json(&opened.plaintext).as_ref(), Ok(c));
}

fuzz_target!(
    init: countersign_fuzz::write_seeds_if_asked("sealed_challenge"),
    |data: &[u8]| {
        let f = countersign_fuzz::fixture();
        let now = T0 + u64::from(data.first().copied().unwrap_or(0));
        if let Ok(msg) = SignedMessage::from_json(data)
            && let Ok(sealed) = SealedChallenge::verify(&msg, &f.s.public_key())
        {
            assert!(f.signed(Purpose::Challenge, msg.kid(), msg.payload_unverified()));
            if let Ok(opened) = sealed.open(&f.k, &f.binding, now, SKEW) {
                check_opened(&sealed, &opened);
                assert!(
                    f.challenges.iter().any(|e| e.opened == opened),
                    "opened a challenge the fixture never sealed"
                );
            }
            // The wrong KEM key never opens.
            assert!(sealed.open(&f.next_k, &f.binding, now, SKEW).is_err());
        }
        if let Ok(sealed) = SealedChallenge::from_payload(data) {
            let payload = sealed.to_payload().expect("a parsed payload serialises");
            assert_eq!(SealedChallenge::from_payload(&payload).as_ref(), Ok(&sealed));
            if let Ok(opened) = sealed.open(&f.k, &f.binding, now, SKEW) {
                check_opened(&sealed, &opened);
            }
        }
        if let Ok(header) = ChallengeHeader::from_json(data) {
            let json = header.to_json().expect("a parsed header serialises");
            assert_eq!(ChallengeHeader::from_json(&json).as_ref(), Ok(&header));
        }
        if let Ok(challenge) = Challenge::from_json(data) {
            let json = challenge.to_json().expect("a parsed challenge serialises");
            assert_eq!(Challenge::from_json(&json).as_ref(), Ok(&challenge));
            let opened = OpenedChallenge::from_stored_plaintext(data).expect("stored plaintext");
            assert_eq!(opened.hash, challenge_hash(data));
        }
    }
);

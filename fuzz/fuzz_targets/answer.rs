//! The device's signed answer: parsing, signature and purpose check (Dp or Du),
//! and the server's check against the challenge it sent.
//!
//! Asserts: no panic; only answers the fixture signed verify, and the purpose
//! matches the key; parsed answers re-serialise and parse back to the same value;
//! an answer that passes the check is bound to the challenge (tx, account, hash),
//! approves only with the number shown and with user verification when the
//! challenge asked for it.
#![no_main]

use countersign_fuzz::{Expected, OTP_DIGITS, SEED, SKEW, T0};
use countersign_protocol::{
    Answer, AnswerExpectation, Decision, NumberMatching, SignedMessage, Verification,
};
use libfuzzer_sys::fuzz_target;

fn check(answer: &Answer, now: u64) {
    let f = countersign_fuzz::fixture();
    let expected: &Expected = f
        .challenges
        .iter()
        .find(|e| e.opened.challenge.tx_id == answer.tx_id)
        .unwrap_or(&f.challenges[0]);
    let c = &expected.opened.challenge;
    let expect = AnswerExpectation {
        challenge: c,
        challenge_hash: &expected.opened.hash,
        expected_number: expected.number.as_deref(),
        now,
        max_skew: SKEW,
    };
    let _ = answer.check_push_otp(SEED, OTP_DIGITS);
    if answer.check(&expect).is_err() {
        return;
    }
    assert_eq!(answer.tx_id, c.tx_id);
    assert_eq!(answer.account_id, c.account_id);
    assert_eq!(answer.challenge_hash, expected.opened.hash);
    assert!(answer.time <= now + SKEW);
    if answer.decision == Decision::Approve {
        if c.verification != Verification::None {
            assert_ne!(answer.verification, Verification::None);
        }
        if c.number_matching != NumberMatching::Off {
            assert_eq!(answer.number.as_deref(), expected.number.as_deref());
        }
    }
}

fuzz_target!(
    init: countersign_fuzz::write_seeds_if_asked("answer"),
    |data: &[u8]| {
        let f = countersign_fuzz::fixture();
        // A clock on either side of the challenges' expiry (T0 + 60), picked by the
        // input's length so that valid JSON (which starts with `{`) reaches both.
        let now = T0 + 1 + (data.len() % 90) as u64;
        if let Ok(msg) = SignedMessage::from_json(data)
            && let Ok(answer) = Answer::verify(&msg, &f.dp.public_key(), &f.du.public_key())
        {
            assert!(
                f.signed(answer.purpose(), msg.kid(), msg.payload_unverified()),
                "an answer the fixture never signed verified"
            );
            // Swapping the keys never verifies.
            assert!(Answer::verify(&msg, &f.du.public_key(), &f.s.public_key()).is_err()
                || msg.kid() == f.du.public_key().key_id());
            check(&answer, now);
        }
        if let Ok(answer) = Answer::from_payload(data) {
            let payload = answer.to_payload().expect("a parsed answer serialises");
            let again = Answer::from_payload(&payload).expect("canonical answer parses");
            assert_eq!(again, answer);
            check(&answer, now);
        }
    }
);

//! The offline QR payload: the signed envelope, the unverified lookup the device
//! does to find the account, S's signature, and the OCRA suite and response.
//!
//! Asserts: no panic; only payloads the fixture signed verify; parsed payloads
//! round-trip through JSON; a parsed suite's text parses to the same suite; a
//! verified fixture challenge gives an OCRA response of the suite's length.
#![no_main]

use countersign_fuzz::SEED;
use countersign_protocol::offline::OfflineChallenge;
use countersign_protocol::otp::{OcraInputs, OcraSuite, ocra};
use countersign_protocol::{Purpose, SignedMessage};
use libfuzzer_sys::fuzz_target;

fn respond(challenge: &OfflineChallenge) -> Option<String> {
    let suite = OcraSuite::parse(&challenge.suite).ok()?;
    assert_eq!(OcraSuite::parse(suite.as_str()).as_ref(), Ok(&suite));
    ocra(
        &suite,
        SEED,
        &OcraInputs {
            question: &challenge.question,
            ..OcraInputs::default()
        },
    )
    .ok()
}

fuzz_target!(
    init: countersign_fuzz::write_seeds_if_asked("offline_qr"),
    |data: &[u8]| {
        let f = countersign_fuzz::fixture();
        if let Ok(msg) = SignedMessage::from_json(data) {
            // The device reads the ids before it knows which key to verify with.
            if let Ok(probe) = serde_json::from_slice::<OfflineChallenge>(msg.payload_unverified()) {
                let verified = msg.verify(Purpose::OfflineChallenge, &f.s.public_key()).is_ok();
                if verified {
                    assert!(f.signed(Purpose::OfflineChallenge, msg.kid(), msg.payload_unverified()));
                    let code = respond(&probe).expect("a fixture challenge gets a response");
                    let suite = OcraSuite::parse(&probe.suite).expect("fixture suite");
                    assert_eq!(code.len(), usize::from(suite.digits()));
                } else {
                    let _ = respond(&probe);
                }
            }
        }
        if let Ok(challenge) = serde_json::from_slice::<OfflineChallenge>(data) {
            let json = serde_json::to_vec(&challenge).expect("serialises");
            let again: OfflineChallenge = serde_json::from_slice(&json).expect("parses back");
            assert_eq!(again, challenge);
            let _ = respond(&challenge);
        }
        if let Ok(text) = std::str::from_utf8(data)
            && let Ok(suite) = OcraSuite::parse(text)
        {
            assert_eq!(OcraSuite::parse(suite.as_str()).as_ref(), Ok(&suite));
        }
    }
);

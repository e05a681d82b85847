//! Both halves of activation: the request a phone sends the server (checked
//! there before any offer is looked up) and the result the server sends back
//! (checked on the phone against the pinned server key, then opened with K).
//!
//! Asserts: no panic; parsed payloads re-serialise and parse back to the same
//! bytes; a request verifies only if the fixture signed it, and only the
//! fixture's request passes the offer-proof check; a result verifies only if the
//! fixture's S signed it, never under another pinned key, opens to the fixture's
//! seed with K and never with another KEM key.
#![no_main]

use countersign_fuzz::SEED;
use countersign_protocol::{
    ActivationRequest, ActivationResult, OfferId, Purpose, ServerKeyPin, SignedMessage,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: countersign_fuzz::write_seeds_if_asked("activation"),
    |data: &[u8]| {
        let f = countersign_fuzz::fixture();
        if let Ok(req) = ActivationRequest::from_payload(data) {
            let bytes = req.to_payload().expect("a parsed request serialises");
            let again = ActivationRequest::from_payload(&bytes).expect("its payload parses");
            assert_eq!(again.to_payload().expect("serialises"), bytes);
        }
        if let Ok(res) = ActivationResult::from_payload(data) {
            let bytes = res.to_payload().expect("a parsed result serialises");
            let again = ActivationResult::from_payload(&bytes).expect("its payload parses");
            assert_eq!(again.to_payload().expect("serialises"), bytes);
        }
        let Ok(msg) = SignedMessage::from_json(data) else {
            return;
        };
        let payload = msg.payload_unverified();

        // Server side.
        if let Ok(req) = ActivationRequest::verify(&msg) {
            assert!(
                f.signed(Purpose::ActivationRequest, msg.kid(), payload),
                "an activation request the fixture never signed verified"
            );
            assert!(req.check_offer(&f.offer_credentials).is_ok());
        }

        // Device side.
        let offer = f.offer_credentials.id;
        let pinned = ServerKeyPin::Fingerprint(f.s.public_key().fingerprint());
        for pin in [pinned, ServerKeyPin::TrustOnFirstUse] {
            let Ok(res) = ActivationResult::verify(&msg, pin, &offer) else {
                continue;
            };
            assert!(
                f.signed(Purpose::ActivationResult, msg.kid(), payload),
                "an activation result the fixture never signed verified"
            );
            let seed = res.open_seed(&f.k).expect("the fixture's result opens with K");
            assert_eq!(seed.as_slice(), SEED);
            assert!(res.open_seed(&f.next_k).is_err(), "opened with another KEM key");
        }
        let other_key = ServerKeyPin::Fingerprint(f.dp.public_key().fingerprint());
        assert!(ActivationResult::verify(&msg, other_key, &offer).is_err());
        assert!(ActivationResult::verify(&msg, pinned, &OfferId([0; 5])).is_err());
    }
);

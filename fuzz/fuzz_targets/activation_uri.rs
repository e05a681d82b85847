//! The activation offer URI (QR code / deep link), the QR login URI, and the
//! server URL inside them.
//!
//! Asserts: no panic; a parsed offer is valid, its canonical URI fits the 1024-byte
//! limit and parses back to the same offer; the same for a QR login; canonical
//! forms are stable; a parsed server URL is its own normal form.
#![no_main]

use countersign_protocol::limits::MAX_OFFER_URI_LEN;
use countersign_protocol::login::LoginQr;
use countersign_protocol::{ActivationOffer, ServerUrl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: countersign_fuzz::write_seeds_if_asked("activation_uri"),
    |data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(offer) = ActivationOffer::parse_uri(text) {
            assert_eq!(offer.validate(), Ok(()));
            let uri = offer.to_uri();
            assert!(uri.len() <= MAX_OFFER_URI_LEN, "canonical URI too long: {}", uri.len());
            let again = ActivationOffer::parse_uri(&uri).expect("canonical URI parses");
            assert_eq!(again, offer);
            assert_eq!(again.to_uri(), uri);
        }
        if let Ok(login) = LoginQr::parse_uri(text) {
            let uri = login.to_uri();
            assert!(uri.len() <= MAX_OFFER_URI_LEN, "canonical login URI too long: {}", uri.len());
            let again = LoginQr::parse_uri(&uri).expect("canonical login URI parses");
            assert_eq!(again, login);
            assert_eq!(again.to_uri(), uri);
        }
        if let Ok(url) = ServerUrl::parse(text) {
            let again = ServerUrl::parse(url.as_str()).expect("normal form parses");
            assert_eq!(again, url);
        }
    }
);

//! Device-request authentication: the four signature headers, the method, path
//! and body, and the server's signature and clock check with Dp.
//!
//! Input: device, timestamp, nonce and signature header values, method and path,
//! one per line, then the body. Asserts: no panic; parsed headers round-trip
//! through their wire pairs; only a request the fixture signed (same method,
//! path, device, time, nonce and body) verifies, and only within the clock skew.
#![no_main]

use countersign_fuzz::{SKEW, T0};
use countersign_protocol::RequestHeaders;
use countersign_protocol::request::{
    HEADER_DEVICE, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, verify_request,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: countersign_fuzz::write_seeds_if_asked("device_request"),
    |data: &[u8]| {
        let f = countersign_fuzz::fixture();
        let mut parts = data.splitn(7, |&b| b == b'\n');
        let mut field = || parts.next().and_then(|p| std::str::from_utf8(p).ok());
        let (device, ts, nonce, sig) = (field(), field(), field(), field());
        let (method, path) = (field().unwrap_or(""), field().unwrap_or(""));
        let body = parts.next().unwrap_or_default();
        let lookup = |name: &'static str| match name {
            HEADER_DEVICE => device,
            HEADER_TIMESTAMP => ts,
            HEADER_NONCE => nonce,
            HEADER_SIGNATURE => sig,
            _ => None,
        };
        let Ok(headers) = RequestHeaders::from_lookup(lookup) else {
            return;
        };
        let pairs = headers.to_pairs();
        let again = RequestHeaders::from_lookup(|name| {
            pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
        });
        assert_eq!(again.as_ref(), Ok(&headers));
        // The server clock moves within the skew with the body's last byte; the
        // timestamp header moves the request outside it.
        let now = T0 + u64::from(body.last().copied().unwrap_or(0) % 4) * 100;
        let key = f.dp.public_key();
        if verify_request(&key, &headers, method, path, body, now, SKEW).is_ok() {
            assert!(headers.timestamp.abs_diff(now) <= SKEW);
            assert!(
                f.requests.iter().any(|r| r.method == method
                    && r.path == path
                    && r.body == body
                    && r.headers.device_id == headers.device_id
                    && r.headers.timestamp == headers.timestamp
                    && r.headers.nonce == headers.nonce),
                "a request the fixture never signed verified"
            );
            // Another device's key never verifies it.
            assert!(verify_request(&f.du.public_key(), &headers, method, path, body, now, SKEW).is_err());
        }
    }
);

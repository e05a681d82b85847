//! Known-answer tests: every OTP vector in `tests/vectors/otp/` (RFC 4226
//! Appendix D, RFC 6238 Appendix B, RFC 6287 Appendix C).
//!
//! The files are in `tests/vectors/` of this crate (sources in its README).
//! A missing or malformed file fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::path::PathBuf;

use countersign_protocol::otp::{
    HmacAlgorithm, HotpParams, OcraInputs, OcraSuite, TotpParams, hotp, hotp_verify, ocra,
    ocra_verify, time_step, totp_at, totp_verify,
};
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    // The known-answer files live in the repository (see tests/vectors/README.md).
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors"))
}

fn load(name: &str) -> Value {
    let path = vectors_dir().join("otp").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read vector file {} ({e})", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"))
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("missing string field {key:?} in {v}"))
}

fn u64_field(v: &Value, key: &str) -> u64 {
    v.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("missing integer field {key:?} in {v}"))
}

fn cases(doc: &Value) -> &Vec<Value> {
    doc.get("vectors")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no \"vectors\" array"))
}

fn algorithm(name: &str) -> HmacAlgorithm {
    match name {
        "SHA1" => HmacAlgorithm::Sha1,
        "SHA256" => HmacAlgorithm::Sha256,
        "SHA512" => HmacAlgorithm::Sha512,
        other => panic!("unknown algorithm {other:?} in vectors"),
    }
}

fn report(file: &str, total: usize, passed: usize, failures: &[String], expected: usize) {
    println!("{file}: {total} cases, {passed} passed");
    assert!(
        failures.is_empty(),
        "{file} failures:\n{}",
        failures.join("\n")
    );
    assert_eq!(total, expected, "{file}: expected {expected} cases");
    assert_eq!(passed, expected);
}

#[test]
fn rfc4226_hotp() {
    let file = "rfc4226-hotp.json";
    let doc = load(file);
    let secret = hex::decode(str_field(&doc, "secret_hex")).unwrap();
    let digits = u8::try_from(u64_field(&doc, "digits")).unwrap();
    let params = HotpParams::new(algorithm(str_field(&doc, "algorithm")), digits).unwrap();
    let (mut passed, mut failures) = (0, Vec::new());
    for case in cases(&doc) {
        let counter = u64_field(case, "counter");
        let want = str_field(case, "otp");
        let got = hotp(&params, &secret, counter).unwrap();
        // The verify must find exactly this counter from a few steps back.
        let found = hotp_verify(&params, &secret, want, counter.saturating_sub(3), 5).unwrap();
        let found_exact = hotp_verify(&params, &secret, want, counter, 0).unwrap();
        if got == want && found_exact == Some(counter) && found.is_some() {
            passed += 1;
        } else {
            failures.push(format!(
                "counter {counter}: got {got}, want {want}, verify {found:?}/{found_exact:?}"
            ));
        }
    }
    report(file, cases(&doc).len(), passed, &failures, 10);
}

#[test]
fn rfc6238_totp() {
    let file = "rfc6238-totp.json";
    let doc = load(file);
    let digits = u8::try_from(u64_field(&doc, "digits")).unwrap();
    let period = u32::try_from(u64_field(&doc, "period")).unwrap();
    assert_eq!(u64_field(&doc, "t0"), 0, "only T0 = 0 is supported");
    let seeds = doc.get("seeds_hex").expect("seeds_hex");
    let (mut passed, mut failures) = (0, Vec::new());
    for case in cases(&doc) {
        let alg_name = str_field(case, "algorithm");
        let secret = hex::decode(str_field(seeds, alg_name)).unwrap();
        let params = TotpParams::new(algorithm(alg_name), digits, period).unwrap();
        let time = u64_field(case, "time");
        let want = str_field(case, "otp");
        let got = totp_at(&params, &secret, time).unwrap();
        let step = time_step(period, time).unwrap();
        let verified = totp_verify(&params, &secret, want, time, 1).unwrap();
        // A server whose clock is one step ahead still finds the code, one step back.
        let verified_late =
            totp_verify(&params, &secret, want, time + u64::from(period), 1).unwrap();
        let as_hotp = hotp(
            &HotpParams::new(params.algorithm, digits).unwrap(),
            &secret,
            step,
        )
        .unwrap();
        if got == want && verified == Some(step) && verified_late == Some(step) && as_hotp == want {
            passed += 1;
        } else {
            failures.push(format!(
                "{alg_name} t={time}: got {got}, want {want}, hotp {as_hotp}, verify {verified:?}/{verified_late:?}"
            ));
        }
    }
    report(file, cases(&doc).len(), passed, &failures, 18);
}

#[test]
fn rfc6287_ocra() {
    let file = "rfc6287-ocra.json";
    let doc = load(file);
    let keys = doc.get("keys_hex").expect("keys_hex");
    let pin_hash = hex::decode(str_field(&doc, "pin_hash_sha1")).unwrap();
    let timestamp = u64::from_str_radix(str_field(&doc, "timestamp_hex"), 16).unwrap();
    let (mut passed, mut failures) = (0, Vec::new());
    for case in cases(&doc) {
        let suite_text = str_field(case, "suite");
        let suite = match OcraSuite::parse(suite_text) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{suite_text}: parse error {e}"));
                continue;
            }
        };
        let key = hex::decode(str_field(keys, str_field(case, "key"))).unwrap();
        let flag = |name: &str| case.get(name).and_then(Value::as_bool).unwrap_or(false);
        let inputs = OcraInputs {
            counter: case.get("counter").map(|_| u64_field(case, "counter")),
            question: str_field(case, "question"),
            pin_hash: flag("pin").then_some(pin_hash.as_slice()),
            session: None,
            timestamp: flag("timestamp").then_some(timestamp),
        };
        if inputs.timestamp.is_some() {
            // The vectors' T is in the suite's step (T1M: minutes since the epoch).
            let step = u64::from(suite.time_step().expect("T suite"));
            assert_eq!(
                suite.timestamp_for(timestamp * step + step - 1),
                Some(timestamp)
            );
        }
        let want = str_field(case, "response");
        match ocra(&suite, &key, &inputs) {
            Ok(got) if got == want && ocra_verify(&suite, &key, &inputs, want).unwrap() => {
                passed += 1
            }
            Ok(got) => failures.push(format!(
                "{suite_text} q={}: got {got}, want {want}",
                inputs.question
            )),
            Err(e) => failures.push(format!("{suite_text} q={}: error {e}", inputs.question)),
        }
    }
    report(file, cases(&doc).len(), passed, &failures, 70);
}

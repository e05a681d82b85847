//! Unit tests for every rejection, and property tests: every wire type round-trips
//! and every parser turns arbitrary input into a typed error, never a panic.

use proptest::prelude::*;

use super::activation::OfferSecret;
use super::answer::push_otp;
use super::request::{HEADER_DEVICE, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use super::*;
use crate::crypto::{AgreementKey, PublicKey, SigningKey, sha256};

const T0: u64 = 1_767_225_600;
const SEED: &[u8] = b"0123456789abcdef0123";

fn sk(label: &str) -> SigningKey {
    SigningKey::from_bytes(&sha256(label.as_bytes())).unwrap()
}
fn ak(label: &str) -> AgreementKey {
    AgreementKey::from_bytes(&sha256(label.as_bytes())).unwrap()
}

struct Keys {
    s: SigningKey,
    dp: SigningKey,
    du: SigningKey,
    k: AgreementKey,
    k2: AgreementKey,
}

fn keys() -> Keys {
    Keys {
        s: sk("S"),
        dp: sk("Dp"),
        du: sk("Du"),
        k: ak("K"),
        k2: ak("K2"),
    }
}

fn binding() -> DeviceBinding {
    DeviceBinding {
        account_id: "acct1".into(),
        device_id: "dev1".into(),
    }
}

fn challenge() -> Challenge {
    Challenge {
        tx_id: "AAECAwQFBgcICQoLDA0ODw".into(),
        account_id: "acct1".into(),
        issued_at: T0,
        expires_at: T0 + 30,
        kind: ChallengeKind::Login,
        context: ChallengeContext {
            rp: "VPN".into(),
            ip: Some("2001:db8::1".into()),
            location: None,
            user_agent: None,
        },
        text: None,
        transaction: None,
        verification: Verification::Pin,
        number_matching: NumberMatching::Type { digits: 2 },
        nonce: "EBESExQVFhcYGRobHB0eHw".into(),
    }
}

fn sealed_msg(k: &Keys, c: &Challenge) -> SignedMessage {
    SealedChallenge::seal(c, "dev1", &k.k.public_key(), Ephemeral::Random)
        .unwrap()
        .sign(&k.s)
        .unwrap()
}

fn opened(k: &Keys) -> OpenedChallenge {
    let msg = sealed_msg(k, &challenge());
    SealedChallenge::verify(&msg, &k.s.public_key())
        .unwrap()
        .open(&k.k, &binding(), T0 + 1, 0)
        .unwrap()
}

fn offer(k: &Keys) -> ActivationOffer {
    ActivationOffer {
        server_url: ServerUrl::parse("https://example.com").unwrap(),
        credentials: OfferCredentials {
            id: OfferId([1, 2, 3, 4, 5]),
            secret: OfferSecret::from_bytes([9; 10]),
        },
        server_key_fingerprint: k.s.public_key().fingerprint(),
        issuer: None,
        label: None,
        pin_min_length: None,
    }
}

fn device_info() -> DeviceInfo {
    DeviceInfo {
        platform: Platform::Ios,
        device_name: None,
        push: PushRegistration::None {},
    }
}

fn grant() -> ActivationGrant {
    ActivationGrant {
        offer_id: OfferId([1, 2, 3, 4, 5]),
        account_id: "acct1".into(),
        device_id: "dev1".into(),
        user_label: "alice".into(),
        issuer: None,
        policy: VerificationPolicy {
            default: Verification::None,
            pin_min_length: 4,
            pin_max_attempts: 5,
            biometric_allowed: false,
        },
        otp: OtpParams {
            algorithm: OtpAlgorithm::Sha256,
            digits: 8,
            period: 30,
        },
        server_time: T0,
    }
}

fn with_field(json: &[u8], key: &str, value: serde_json::Value) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(json).unwrap();
    v[key] = value;
    serde_json::to_vec(&v).unwrap()
}

// ----------------------------------------------------------------- rejections

#[test]
fn unknown_versions_are_rejected() {
    let c = challenge().to_json().unwrap();
    let v2 = with_field(&c, "v", 2.into());
    assert_eq!(
        Challenge::from_json(&v2),
        Err(ProtocolError::UnsupportedVersion {
            found: 2,
            supported: 1
        })
    );
    // A newer message with new fields still reports the version, not the field.
    let v2x = with_field(&v2, "new_field", true.into());
    assert!(matches!(
        Challenge::from_json(&v2x),
        Err(ProtocolError::UnsupportedVersion { found: 2, .. })
    ));
    let k = keys();
    let env = sealed_msg(&k, &challenge()).to_json().unwrap();
    assert!(matches!(
        SignedMessage::from_json(&with_field(&env, "v", 0.into())),
        Err(ProtocolError::UnsupportedVersion { found: 0, .. })
    ));
    let uri = offer(&k).to_uri().replace("v=1", "v=2");
    assert!(matches!(
        ActivationOffer::parse_uri(&uri),
        Err(ProtocolError::UnsupportedVersion { found: 2, .. })
    ));
}

#[test]
fn unknown_fields_are_rejected() {
    let c = challenge().to_json().unwrap();
    assert!(matches!(
        Challenge::from_json(&with_field(&c, "extra", 1.into())),
        Err(ProtocolError::InvalidJson { .. })
    ));
    let mut v: serde_json::Value = serde_json::from_slice(&c).unwrap();
    v["context"]["extra"] = 1.into();
    assert!(matches!(
        Challenge::from_json(&serde_json::to_vec(&v).unwrap()),
        Err(ProtocolError::InvalidJson { .. })
    ));
    let push = r#"{"type":"none","token":"x"}"#;
    assert!(serde_json::from_str::<PushRegistration>(push).is_err());
    assert_eq!(
        serde_json::from_str::<PushRegistration>(r#"{"type":"none"}"#).unwrap(),
        PushRegistration::None {}
    );
    // Duplicate keys are rejected too (no parser differentials).
    let dup = String::from_utf8(c)
        .unwrap()
        .replacen("\"v\":1,", "\"v\":1,\"v\":1,", 1);
    assert!(matches!(
        Challenge::from_json(dup.as_bytes()),
        Err(ProtocolError::InvalidJson { .. })
    ));
}

#[test]
fn oversize_fields_and_messages_are_rejected() {
    let mut c = challenge();
    c.context.rp = "x".repeat(limits::MAX_RP_NAME_LEN + 1);
    assert_eq!(
        c.validate(),
        Err(ProtocolError::TooLong {
            field: "rp",
            max: limits::MAX_RP_NAME_LEN
        })
    );
    let mut c = challenge();
    c.number_matching = NumberMatching::Pick {
        choices: (10..17).map(|i| i.to_string()).collect(),
    };
    assert!(matches!(
        c.validate(),
        Err(ProtocolError::TooLong {
            field: "choices",
            ..
        })
    ));
    let mut c = challenge();
    c.expires_at = c.issued_at + limits::MAX_CHALLENGE_LIFETIME + 1;
    assert_eq!(c.validate(), Err(ProtocolError::Malformed { field: "exp" }));
    let big = vec![b' '; limits::MAX_SIGNED_MESSAGE_LEN + 1];
    assert!(matches!(
        SignedMessage::from_json(&big),
        Err(ProtocolError::MessageTooLarge { .. })
    ));
    assert!(matches!(
        Challenge::from_json(&vec![b' '; limits::MAX_CHALLENGE_LEN + 1]),
        Err(ProtocolError::MessageTooLarge { .. })
    ));
    let k = keys();
    let long_uri = format!("{}&label={}", offer(&k).to_uri().as_str(), "a".repeat(1000));
    assert!(matches!(
        ActivationOffer::parse_uri(&long_uri),
        Err(ProtocolError::InvalidUri { reason: "too long" })
    ));
}

#[test]
fn display_text_cannot_spoof() {
    let mut c = challenge();
    c.kind = ChallengeKind::Transaction;
    c.transaction = Some(TransactionDetails {
        amount: "10.00".into(),
        currency: "EUR".into(),
        payee: "Bob\u{202E}moc.evil".into(),
    });
    assert_eq!(
        c.validate(),
        Err(ProtocolError::Malformed { field: "payee" })
    );
    for bad in ["1e5", "-1", "1.", ".5", "1.23456", "１"] {
        c.transaction = Some(TransactionDetails {
            amount: bad.into(),
            currency: "EUR".into(),
            payee: "Bob".into(),
        });
        assert!(c.validate().is_err(), "{bad}");
    }
    let mut c = challenge();
    c.transaction = Some(TransactionDetails {
        amount: "1".into(),
        currency: "EUR".into(),
        payee: "Bob".into(),
    });
    assert!(c.validate().is_err(), "login with transaction fields");
    let mut c = challenge();
    c.context.ip = Some("010.0.0.1".into());
    assert!(c.validate().is_err());
}

#[test]
fn type_mode_does_not_carry_the_number() {
    let json = String::from_utf8(challenge().to_json().unwrap()).unwrap();
    assert!(json.contains(r#""number_matching":{"mode":"type","digits":2}"#));
}

#[test]
fn bad_signature_wrong_key_and_wrong_purpose() {
    let k = keys();
    let msg = sealed_msg(&k, &challenge());
    // Tampered payload.
    let mut v: serde_json::Value = serde_json::from_slice(&msg.to_json().unwrap()).unwrap();
    let mut payload =
        encoding::b64url_decode("p", v["payload"].as_str().unwrap(), 1 << 16).unwrap();
    payload[10] ^= 1;
    v["payload"] = encoding::b64url(&payload).into();
    let tampered = SignedMessage::from_json(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(
        SealedChallenge::verify(&tampered, &k.s.public_key()),
        Err(ProtocolError::BadSignature)
    );
    // Wrong key.
    assert_eq!(
        SealedChallenge::verify(&msg, &k.dp.public_key()),
        Err(ProtocolError::UnknownKey)
    );
    // Same key, other purpose.
    assert_eq!(
        msg.verify(Purpose::ActivationResult, &k.s.public_key()),
        Err(ProtocolError::BadSignature)
    );
    // An approval that needed verification, signed by Dp under the Du purpose label
    // would not verify; signed by Dp under its own label it is the wrong purpose.
    let o = opened(&k);
    let a = Answer::approve(
        &o,
        Approval {
            number: Some("42".into()),
            otp: None,
            verification: Verification::Pin,
        },
        k.k2.public_key(),
        T0,
    )
    .unwrap();
    let forged = SignedMessage::sign(Purpose::Answer, a.to_payload().unwrap(), &k.dp).unwrap();
    assert_eq!(
        Answer::verify(&forged, &k.dp.public_key(), &k.du.public_key()),
        Err(ProtocolError::WrongPurpose)
    );
    let wrong = a.sign(&k.dp).unwrap(); // Du's purpose, Dp's key
    assert_eq!(
        Answer::verify(&wrong, &k.dp.public_key(), &k.du.public_key()),
        Err(ProtocolError::BadSignature)
    );
    let stranger = a.sign(&k.s).unwrap();
    assert_eq!(
        Answer::verify(&stranger, &k.dp.public_key(), &k.du.public_key()),
        Err(ProtocolError::UnknownKey)
    );
    // Approving without verification where it is required is refused up front.
    assert_eq!(
        Answer::approve(
            &o,
            Approval {
                number: Some("42".into()),
                otp: None,
                verification: Verification::None
            },
            k.k2.public_key(),
            T0
        ),
        Err(ProtocolError::WrongPurpose)
    );
}

#[test]
fn tampered_ciphertext_and_header_fail_to_decrypt() {
    let k = keys();
    let sealed =
        SealedChallenge::seal(&challenge(), "dev1", &k.k.public_key(), Ephemeral::Random).unwrap();
    let payload = sealed.to_payload().unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let mut ct = encoding::b64url_decode("ct", v["ct"].as_str().unwrap(), 1 << 16).unwrap();
    ct[0] ^= 0x80;
    v["ct"] = encoding::b64url(&ct).into();
    // Re-signed by S: only the AEAD can catch it.
    let msg =
        SignedMessage::sign(Purpose::Challenge, serde_json::to_vec(&v).unwrap(), &k.s).unwrap();
    let s = SealedChallenge::verify(&msg, &k.s.public_key()).unwrap();
    assert_eq!(s.open(&k.k, &binding(), T0, 0), Err(ProtocolError::Decrypt));

    // A different (valid) header as aad.
    let mut h = sealed.header().clone();
    h.expires_at += 1;
    let mut v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    v["header"] = encoding::b64url(&h.to_json().unwrap()).into();
    let msg =
        SignedMessage::sign(Purpose::Challenge, serde_json::to_vec(&v).unwrap(), &k.s).unwrap();
    let s = SealedChallenge::verify(&msg, &k.s.public_key()).unwrap();
    assert_eq!(s.open(&k.k, &binding(), T0, 0), Err(ProtocolError::Decrypt));

    // Wrong KEM key, wrong device.
    assert_eq!(
        sealed.open(&k.k2, &binding(), T0, 0),
        Err(ProtocolError::UnknownKey)
    );
    let other = DeviceBinding {
        account_id: "acct1".into(),
        device_id: "dev2".into(),
    };
    assert!(matches!(
        sealed.open(&k.k, &other, T0, 0),
        Err(ProtocolError::Binding { .. })
    ));

    // Seed sealed in an activation result: tampering is a decrypt error.
    let mut res = ActivationResult::seal(
        grant(),
        k.s.public_key(),
        SEED,
        &k.k.public_key(),
        Ephemeral::Random,
    )
    .unwrap();
    assert_eq!(res.open_seed(&k.k).unwrap().as_slice(), SEED);
    assert_eq!(res.open_seed(&k.k2), Err(ProtocolError::Decrypt));
    res.grant.device_id = "dev2".into();
    assert_eq!(res.open_seed(&k.k), Err(ProtocolError::Decrypt));
}

#[test]
fn expiry_is_enforced() {
    let k = keys();
    let s = SealedChallenge::verify(&sealed_msg(&k, &challenge()), &k.s.public_key()).unwrap();
    assert!(s.open(&k.k, &binding(), T0 + 30, 0).is_ok());
    assert_eq!(
        s.open(&k.k, &binding(), T0 + 31, 0),
        Err(ProtocolError::Expired {
            expires: T0 + 30,
            now: T0 + 31
        })
    );
    assert!(s.open(&k.k, &binding(), T0 + 31, 5).is_ok());
    assert!(matches!(
        s.open(&k.k, &binding(), T0 - 10, 5),
        Err(ProtocolError::NotYetValid { .. })
    ));

    let o = opened(&k);
    let a = Answer::deny(&o, DenyReason::Mistake, k.k2.public_key(), T0).unwrap();
    let c = challenge();
    let mut expect = AnswerExpectation {
        challenge: &c,
        challenge_hash: &o.hash,
        expected_number: Some("42"),
        now: T0 + 31,
        max_skew: 300,
    };
    assert!(matches!(
        a.check(&expect),
        Err(ProtocolError::Expired { .. })
    ));
    expect.now = T0 + 30;
    assert!(a.check(&expect).is_ok());

    // The decision time must lie between issue and now, within the skew.
    let c = challenge();
    let early = Answer::deny(
        &o,
        DenyReason::Mistake,
        k.k2.public_key(),
        c.issued_at - 301,
    )
    .unwrap();
    assert!(matches!(
        early.check(&expect),
        Err(ProtocolError::Expired { .. })
    ));
    let skewed = Answer::deny(
        &o,
        DenyReason::Mistake,
        k.k2.public_key(),
        c.issued_at - 300,
    )
    .unwrap();
    assert!(skewed.check(&expect).is_ok());
    let future = Answer::deny(&o, DenyReason::Mistake, k.k2.public_key(), T0 + 30 + 301).unwrap();
    assert!(matches!(
        future.check(&expect),
        Err(ProtocolError::NotYetValid { .. })
    ));
    let late_but_skewed =
        Answer::deny(&o, DenyReason::Mistake, k.k2.public_key(), T0 + 30 + 300).unwrap();
    assert!(late_but_skewed.check(&expect).is_ok());

    let h = request::sign_request(&k.dp, "dev1", "GET", "/v1/x", b"", T0).unwrap();
    let pk = k.dp.public_key();
    assert!(verify_request(&pk, &h, "GET", "/v1/x", b"", T0 + 60, 60).is_ok());
    assert!(matches!(
        verify_request(&pk, &h, "GET", "/v1/x", b"", T0 + 61, 60),
        Err(ProtocolError::Expired { .. })
    ));
    assert!(matches!(
        verify_request(&pk, &h, "GET", "/v1/x", b"", T0 - 61, 60),
        Err(ProtocolError::NotYetValid { .. })
    ));
    assert_eq!(
        verify_request(&pk, &h, "GET", "/v1/y", b"", T0, 60),
        Err(ProtocolError::BadSignature)
    );
    assert_eq!(
        verify_request(&pk, &h, "GET", "/v1/x", b"x", T0, 60),
        Err(ProtocolError::BadSignature)
    );
    assert_eq!(
        verify_request(&k.du.public_key(), &h, "GET", "/v1/x", b"", T0, 60),
        Err(ProtocolError::BadSignature)
    );
}

#[test]
fn answer_binding_checks() {
    let k = keys();
    let o = opened(&k);
    let otp = push_otp(&o, SEED, 8).unwrap();
    let a = Answer::approve(
        &o,
        Approval {
            number: Some("42".into()),
            otp: Some(otp.to_string()),
            verification: Verification::Biometric,
        },
        k.k2.public_key(),
        T0,
    )
    .unwrap();
    let msg = a.sign(&k.du).unwrap();
    let a = Answer::verify(&msg, &k.dp.public_key(), &k.du.public_key()).unwrap();
    let c = challenge();
    let expect = |n: Option<&'static str>, h: &'static [u8; 32]| AnswerExpectation {
        challenge: Box::leak(Box::new(c.clone())),
        challenge_hash: h,
        expected_number: n,
        now: T0 + 1,
        max_skew: 300,
    };
    let hash: &'static [u8; 32] = Box::leak(Box::new(o.hash));
    assert!(a.check(&expect(Some("42"), hash)).is_ok());
    assert_eq!(
        a.check(&expect(Some("43"), hash)),
        Err(ProtocolError::Binding { what: "number" })
    );
    assert_eq!(
        a.check(&expect(Some("42"), &[0; 32])),
        Err(ProtocolError::Binding {
            what: "challenge hash"
        })
    );
    assert!(a.check_push_otp(SEED, 8).is_ok());
    assert!(
        !format!("{a:?}").contains(otp.as_str()),
        "Debug must redact the OTP"
    );
    assert!(a.check_push_otp(b"another seed value!!", 8).is_err());
    // Number shape is checked against the mode.
    assert!(
        Answer::approve(
            &o,
            Approval {
                number: Some("123".into()),
                otp: None,
                verification: Verification::Pin
            },
            k.k2.public_key(),
            T0
        )
        .is_err()
    );
}

#[test]
fn activation_end_to_end_and_rejections() {
    let k = keys();
    let offer = offer(&k);
    let req = ActivationRequest::new(
        &offer.credentials,
        k.dp.public_key(),
        &k.du,
        k.k.public_key(),
        device_info(),
        T0,
    )
    .unwrap();
    let msg = req.sign(&k.dp).unwrap();
    let got =
        ActivationRequest::verify(&SignedMessage::from_json(&msg.to_json().unwrap()).unwrap())
            .unwrap();
    assert_eq!(got, req);
    got.check_offer(&offer.credentials).unwrap();
    let wrong = OfferCredentials {
        id: offer.credentials.id,
        secret: OfferSecret::from_bytes([8; 10]),
    };
    assert_eq!(
        got.check_offer(&wrong),
        Err(ProtocolError::Binding {
            what: "offer proof"
        })
    );
    // Signed by another key than the Dp inside.
    assert_eq!(req.sign(&k.du), Err(ProtocolError::UnknownKey));
    let forged =
        SignedMessage::sign(Purpose::ActivationRequest, req.to_payload().unwrap(), &k.du).unwrap();
    assert_eq!(
        ActivationRequest::verify(&forged),
        Err(ProtocolError::UnknownKey)
    );
    // Du's proof must be Du's.
    let mut bad = req.clone();
    bad.user_key = k.s.public_key();
    let m = bad.sign(&k.dp).unwrap();
    assert_eq!(
        ActivationRequest::verify(&m),
        Err(ProtocolError::BadSignature)
    );

    let res = ActivationResult::seal(
        grant(),
        k.s.public_key(),
        SEED,
        &k.k.public_key(),
        Ephemeral::Random,
    )
    .unwrap();
    let msg = res.sign(&k.s).unwrap();
    let pin = ServerKeyPin::Fingerprint(offer.server_key_fingerprint);
    let got = ActivationResult::verify(&msg, pin, &offer.credentials.id).unwrap();
    assert_eq!(got, res);
    assert_eq!(
        ActivationResult::verify(
            &msg,
            ServerKeyPin::Fingerprint([0; 32]),
            &offer.credentials.id
        ),
        Err(ProtocolError::PinMismatch)
    );
    assert!(
        ActivationResult::verify(&msg, ServerKeyPin::TrustOnFirstUse, &offer.credentials.id)
            .is_ok()
    );
    assert!(matches!(
        ActivationResult::verify(&msg, pin, &OfferId([0; 5])),
        Err(ProtocolError::Binding { .. })
    ));
    // A result signed by a key other than the one it names.
    let forged =
        SignedMessage::sign(Purpose::ActivationResult, res.to_payload().unwrap(), &k.dp).unwrap();
    assert_eq!(
        ActivationResult::verify(
            &forged,
            ServerKeyPin::TrustOnFirstUse,
            &offer.credentials.id
        ),
        Err(ProtocolError::UnknownKey)
    );
}

#[test]
fn server_urls() {
    assert!(ServerUrl::parse("https://a.example/x/").is_ok());
    assert!(ServerUrl::parse("http://127.0.0.1:8080").is_ok());
    assert!(ServerUrl::parse("http://localhost:8080").is_ok());
    assert!(ServerUrl::parse("http://[::1]:8080").is_ok());
    for bad in [
        "http://example.com",
        "ftp://example.com",
        "https://u:p@example.com",
        "https://example.com/?q",
        "https://example.com/#f",
        "example.com",
    ] {
        assert!(ServerUrl::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn offer_uri_is_strict() {
    let k = keys();
    let uri = offer(&k).to_uri();
    assert!(ActivationOffer::parse_uri(&uri).is_ok());
    for (from, to) in [
        ("countersign://activate?", "countersign://Activate?"),
        ("&id=", "&id=&id="),
        ("v=1&", "v=1&x=1&"),
        ("v=1&", "v=1&v=1&"),
        ("v=1&", ""),
    ] {
        let bad = uri.replacen(from, to, 1);
        assert!(ActivationOffer::parse_uri(&bad).is_err(), "{bad}");
    }
    assert!(ActivationOffer::parse_uri(&format!("{}#frag", uri.as_str())).is_err());
    assert!(ActivationOffer::parse_uri(&format!("{}&label=a+b", uri.as_str())).is_err());
    assert!(ActivationOffer::parse_uri(&format!("{}&label=%ZZ", uri.as_str())).is_err());
    assert!(ActivationOffer::parse_uri(&format!("{}&label=%FF", uri.as_str())).is_err());
    assert!(ActivationOffer::parse_uri(&format!("{}&label=%0A", uri.as_str())).is_err());
}

#[test]
fn offer_uri_pin_parameter_is_optional_and_checked() {
    let k = keys();
    // An older URI without `pin` parses, with no PIN length.
    let old = offer(&k).to_uri();
    assert!(!old.contains("pin="));
    assert_eq!(
        ActivationOffer::parse_uri(&old).unwrap().pin_min_length,
        None
    );
    let with = ActivationOffer {
        pin_min_length: Some(6),
        ..offer(&k)
    };
    let uri = with.to_uri();
    assert!(uri.ends_with("&pin=6"), "{}", uri.as_str());
    assert_eq!(ActivationOffer::parse_uri(&uri).unwrap(), with);
    for bad in [
        "&pin=3",
        "&pin=17",
        "&pin=06",
        "&pin=",
        "&pin=six",
        "&pin=6&pin=6",
    ] {
        let bad = format!("{}{bad}", old.as_str());
        assert!(ActivationOffer::parse_uri(&bad).is_err(), "{bad}");
    }
    assert!(
        ActivationOffer {
            pin_min_length: Some(2),
            ..offer(&k)
        }
        .validate()
        .is_err()
    );
}

#[test]
fn typed_code_catches_typos() {
    let k = keys();
    let creds = offer(&k).credentials;
    let code = creds.to_code();
    assert_eq!(code.len(), 29);
    assert_eq!(OfferCredentials::parse_code(&code).unwrap(), creds);
    assert_eq!(
        OfferCredentials::parse_code(&code.to_lowercase().replace('-', " ")).unwrap(),
        creds
    );
    let chars: Vec<char> = code.chars().filter(|c| *c != '-').collect();
    // Every single substitution and every adjacent transposition is caught.
    for i in 0..chars.len() {
        for &c in encoding::CROCKFORD {
            let c = char::from(c);
            if c == chars[i] {
                continue;
            }
            let mut t = chars.clone();
            t[i] = c;
            let s: String = t.into_iter().collect();
            assert!(OfferCredentials::parse_code(&s).is_err(), "{s}");
        }
        if i + 1 < chars.len() && chars[i] != chars[i + 1] {
            let mut t = chars.clone();
            t.swap(i, i + 1);
            let s: String = t.into_iter().collect();
            assert!(OfferCredentials::parse_code(&s).is_err(), "{s}");
        }
    }
    assert!(matches!(
        OfferCredentials::parse_code("ABC"),
        Err(ProtocolError::InvalidCode { .. })
    ));
    assert!(format!("{:?}", creds.secret).contains("redacted"));
}

#[test]
fn purposes_have_distinct_labels() {
    let labels: std::collections::HashSet<_> = Purpose::ALL.iter().map(|p| p.label()).collect();
    assert_eq!(labels.len(), Purpose::ALL.len());
    assert_eq!(
        Purpose::Answer.signing_input(b"x"),
        b"countersign/v1/answer\0x"
    );
}

#[test]
fn error_messages_do_not_quote_input() {
    let secret_text = br#"{"v":1,"tx":"SECRET-VALUE-1234"}"#;
    let e = Challenge::from_json(secret_text).unwrap_err();
    assert!(!e.to_string().contains("SECRET"), "{e}");
    let e = serde_json::from_slice::<Verification>(br#""SECRET""#).unwrap_err();
    assert!(!ProtocolError::json("x", &e).to_string().contains("SECRET"));
}

// ----------------------------------------------------------------- properties

fn id_strategy() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,64}"
}
fn text_strategy(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            proptest::char::range('a', 'z'),
            proptest::char::range('A', 'Z'),
            Just(' '),
            Just('é'),
            Just('€'),
            Just('&'),
            Just('%'),
            Just('='),
            Just('+'),
            Just('/'),
        ],
        1..=max / 3,
    )
    .prop_map(|v| v.into_iter().collect())
}
fn rand_id_strategy() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<u8>(), 16..=32).prop_map(|b| encoding::b64url(&b))
}

prop_compose! {
    fn challenge_strategy()(
        tx in rand_id_strategy(),
        account in id_strategy(),
        iat in 0u64..4_000_000_000,
        life in 1u64..=600,
        transaction in proptest::option::of((
            "[0-9]{1,15}(\\.[0-9]{1,4})?", "[A-Z]{3}", text_strategy(128))),
        rp in text_strategy(64),
        ip in proptest::option::of(any::<std::net::IpAddr>()),
        location in proptest::option::of(text_strategy(64)),
        ua in proptest::option::of(text_strategy(256)),
        text in proptest::option::of(text_strategy(1024)),
        verification in prop_oneof![Just(Verification::None), Just(Verification::Pin), Just(Verification::Biometric)],
        nm in prop_oneof![
            Just(NumberMatching::Off),
            (2u8..=8).prop_map(|digits| NumberMatching::Type { digits }),
            proptest::collection::hash_set("[0-9]{2,8}", 2..=6)
                .prop_map(|s| NumberMatching::Pick { choices: s.into_iter().collect() }),
        ],
        nonce in rand_id_strategy(),
    ) -> Challenge {
        let (kind, transaction) = match transaction {
            Some((amount, currency, payee)) => (
                ChallengeKind::Transaction,
                Some(TransactionDetails { amount, currency, payee }),
            ),
            None => (ChallengeKind::Login, None),
        };
        Challenge {
            tx_id: tx,
            account_id: account,
            issued_at: iat,
            expires_at: iat + life,
            kind,
            context: ChallengeContext { rp, ip: ip.map(|i| i.to_string()), location, user_agent: ua },
            text,
            transaction,
            verification,
            number_matching: nm,
            nonce,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn challenge_round_trips(c in challenge_strategy()) {
        let bytes = c.to_json().unwrap();
        prop_assert_eq!(Challenge::from_json(&bytes).unwrap(), c);
    }

    #[test]
    fn header_round_trips(tx in rand_id_strategy(), account in id_strategy(), device in id_strategy(),
                          kid in proptest::array::uniform16(any::<u8>()), exp in any::<u64>()) {
        let h = ChallengeHeader { tx_id: tx, account_id: account, device_id: device,
                                  kem_kid: encoding::b64url(&kid), expires_at: exp };
        prop_assert_eq!(ChallengeHeader::from_json(&h.to_json().unwrap()).unwrap(), h);
    }

    #[test]
    fn offer_uri_round_trips(id in any::<[u8; 5]>(), secret in any::<[u8; 10]>(), fp in any::<[u8; 32]>(),
                             host in "[a-z]{1,20}\\.example", path in "(/[a-z0-9]{1,8}){0,3}",
                             issuer in proptest::option::of(text_strategy(128)),
                             label in proptest::option::of(text_strategy(128)),
                             pin_min_length in proptest::option::of(4u8..=16)) {
        let offer = ActivationOffer {
            server_url: ServerUrl::parse(&format!("https://{host}{path}")).unwrap(),
            credentials: OfferCredentials { id: OfferId(id), secret: OfferSecret::from_bytes(secret) },
            server_key_fingerprint: fp,
            issuer,
            label,
            pin_min_length,
        };
        let uri = offer.to_uri();
        let back = ActivationOffer::parse_uri(&uri).unwrap();
        prop_assert_eq!(&back, &offer);
        prop_assert_eq!(back.to_uri(), uri);
    }

    #[test]
    fn typed_code_round_trips(id in any::<[u8; 5]>(), secret in any::<[u8; 10]>()) {
        let creds = OfferCredentials { id: OfferId(id), secret: OfferSecret::from_bytes(secret) };
        prop_assert_eq!(OfferCredentials::parse_code(&creds.to_code()).unwrap(), creds);
    }

    #[test]
    fn request_headers_round_trip(device in id_strategy(), ts in any::<u64>(), nonce in rand_id_strategy(),
                                  path in "/[!-~]{0,100}", body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let k = sk("Dp");
        let h = request::sign_request_with_nonce(&k, &device, "PUT", &path, &body, ts, nonce).unwrap();
        let pairs = h.to_pairs();
        let back = RequestHeaders::from_lookup(|n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str())).unwrap();
        prop_assert_eq!(&back, &h);
        prop_assert!(verify_request(&k.public_key(), &back, "PUT", &path, &body, ts, 0).is_ok());
    }

    #[test]
    fn text_parsers_never_panic(s in "\\PC{0,200}", raw in proptest::collection::vec(any::<u8>(), 0..300)) {
        let lossy = String::from_utf8_lossy(&raw).into_owned();
        for input in [s.as_str(), lossy.as_str()] {
            let _ = ActivationOffer::parse_uri(input);
            let _ = ActivationOffer::parse_uri(&format!("countersign://activate?{input}"));
            let _ = OfferCredentials::parse_code(input);
            let _ = OfferId::parse(input);
            let _ = OfferSecret::parse(input);
            let _ = ServerUrl::parse(input);
            let _ = RequestHeaders::from_lookup(|n| match n {
                HEADER_DEVICE => Some(input),
                HEADER_TIMESTAMP => Some(input),
                HEADER_NONCE => Some(input),
                HEADER_SIGNATURE => Some(input),
                _ => None,
            });
        }
    }

    #[test]
    fn json_parsers_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = SignedMessage::from_json(&raw);
        let _ = Challenge::from_json(&raw);
        let _ = ChallengeHeader::from_json(&raw);
        let _ = SealedChallenge::from_payload(&raw);
        let _ = ActivationRequest::from_payload(&raw);
        let _ = ActivationResult::from_payload(&raw);
        let _ = Answer::from_payload(&raw);
    }

    #[test]
    fn plausible_json_never_panics(fields in proptest::collection::btree_map(
        prop_oneof![Just("v".to_string()), Just("tx".to_string()), Just("kid".to_string()),
                    Just("payload".to_string()), Just("sig".to_string()), Just("header".to_string()),
                    Just("enc".to_string()), Just("ct".to_string()), "[a-z_]{1,12}"],
        prop_oneof![any::<u64>().prop_map(serde_json::Value::from),
                    "\\PC{0,40}".prop_map(serde_json::Value::from),
                    Just(serde_json::Value::Null),
                    Just(serde_json::json!({"mode": "type", "digits": 300}))],
        0..12)) {
        let v = serde_json::Value::Object(fields.into_iter().collect());
        let raw = serde_json::to_vec(&v).unwrap();
        let _ = SignedMessage::from_json(&raw);
        let _ = Challenge::from_json(&raw);
        let _ = SealedChallenge::from_payload(&raw);
        let _ = Answer::from_payload(&raw);
        let _ = ActivationRequest::from_payload(&raw);
        let _ = ActivationResult::from_payload(&raw);
    }
}

proptest! {
    // Public-key operations are slower: fewer cases.
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn signed_message_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..2048),
                                  flip in any::<proptest::sample::Index>()) {
        let k = sk("S");
        let msg = SignedMessage::sign(Purpose::Request, payload.clone(), &k).unwrap();
        let back = SignedMessage::from_json(&msg.to_json().unwrap()).unwrap();
        prop_assert_eq!(&back, &msg);
        prop_assert_eq!(back.verify(Purpose::Request, &k.public_key()).unwrap(), payload.as_slice());
        // Any single-bit change of the payload breaks the signature.
        if !payload.is_empty() {
            let mut p = payload.clone();
            let i = flip.index(p.len());
            p[i] ^= 1;
            let wire = serde_json::json!({"v": 1, "kid": msg.kid(), "payload": encoding::b64url(&p),
                "sig": encoding::b64url(msg.signature().as_bytes())});
            let t = SignedMessage::from_json(&serde_json::to_vec(&wire).unwrap()).unwrap();
            prop_assert_eq!(t.verify(Purpose::Request, &k.public_key()), Err(ProtocolError::BadSignature));
        }
    }

    #[test]
    fn sealed_challenge_round_trips(c in challenge_strategy(), device in id_strategy()) {
        let k = keys();
        let sealed = SealedChallenge::seal(&c, &device, &k.k.public_key(), Ephemeral::Random).unwrap();
        let back = SealedChallenge::from_payload(&sealed.to_payload().unwrap()).unwrap();
        prop_assert_eq!(&back, &sealed);
        let b = DeviceBinding { account_id: c.account_id.clone(), device_id: device };
        let opened = back.open(&k.k, &b, c.issued_at, 0).unwrap();
        prop_assert_eq!(opened.challenge, c);
    }

    #[test]
    fn activation_request_round_trips(name in proptest::option::of(text_strategy(64)), time in any::<u64>(),
                                      token in "[!-~]{1,200}", which in 0u8..4,
                                      secret in any::<[u8; 10]>()) {
        let k = keys();
        let push = match which {
            0 => PushRegistration::Fcm { token },
            1 => PushRegistration::Apns { token },
            2 => PushRegistration::UnifiedPush {
                endpoint: format!("https://push.example/{}", token.len()),
                p256dh: encoding::b64url(&k.k2.public_key().to_sec1()),
                auth: encoding::b64url(&[7; 16]),
            },
            _ => PushRegistration::None {},
        };
        let creds = OfferCredentials { id: OfferId([1; 5]), secret: OfferSecret::from_bytes(secret) };
        let info = DeviceInfo { platform: Platform::Desktop, device_name: name, push };
        let req = ActivationRequest::new(&creds, k.dp.public_key(), &k.du, k.k.public_key(), info, time).unwrap();
        prop_assert_eq!(&ActivationRequest::from_payload(&req.to_payload().unwrap()).unwrap(), &req);
        let v = ActivationRequest::verify(&req.sign(&k.dp).unwrap()).unwrap();
        prop_assert!(v.check_offer(&creds).is_ok());
    }

    #[test]
    fn activation_result_round_trips(account in id_strategy(), device in id_strategy(),
                                     user in text_strategy(128), seed in proptest::collection::vec(any::<u8>(), 16..=64),
                                     digits in 6u8..=8, period in 10u32..=300) {
        let k = keys();
        let mut g = grant();
        g.account_id = account;
        g.device_id = device;
        g.user_label = user;
        g.otp.digits = digits;
        g.otp.period = period;
        let res = ActivationResult::seal(g, k.s.public_key(), &seed, &k.k.public_key(), Ephemeral::Random).unwrap();
        prop_assert_eq!(&ActivationResult::from_payload(&res.to_payload().unwrap()).unwrap(), &res);
        let opened = res.open_seed(&k.k).unwrap();
        prop_assert_eq!(opened.as_slice(), seed.as_slice());
    }

    #[test]
    fn answer_round_trips(tx in rand_id_strategy(), account in id_strategy(), approve in any::<bool>(),
                          number in proptest::option::of("[0-9]{2,8}"), otp in proptest::option::of("[0-9]{6,10}"),
                          hash in any::<[u8; 32]>(), time in any::<u64>(), uv in any::<bool>(), not_me in any::<bool>()) {
        let k = keys();
        let a = if approve {
            Answer { tx_id: tx, account_id: account, decision: Decision::Approve, reason: None, number, otp,
                     challenge_hash: hash, time, next_kem: k.k2.public_key(),
                     verification: if uv { Verification::Pin } else { Verification::None } }
        } else {
            Answer { tx_id: tx, account_id: account, decision: Decision::Deny,
                     reason: Some(if not_me { DenyReason::NotMe } else { DenyReason::Mistake }),
                     number: None, otp: None, challenge_hash: hash, time, next_kem: k.k2.public_key(),
                     verification: Verification::None }
        };
        prop_assert_eq!(&Answer::from_payload(&a.to_payload().unwrap()).unwrap(), &a);
        let signer: &dyn MessageSigner = if a.purpose() == Purpose::AnswerUserVerified { &k.du } else { &k.dp };
        let msg = a.sign(signer).unwrap();
        prop_assert_eq!(Answer::verify(&msg, &k.dp.public_key(), &k.du.public_key()).unwrap(), a);
    }
}

#[test]
fn public_key_type_is_usable_in_sets() {
    // PublicKey equality is what binds Dp/Du/K distinctness in activation.
    let k = keys();
    let a: PublicKey = k.dp.public_key();
    assert_eq!(a, k.dp.public_key());
    assert_ne!(a, k.du.public_key());
}

#[test]
fn transfer_challenges_need_text_and_no_transaction() {
    let k = keys();
    let mut c = challenge();
    c.kind = ChallengeKind::Transfer;
    c.number_matching = NumberMatching::Off;
    assert_eq!(
        c.validate(),
        Err(ProtocolError::Malformed { field: "text" })
    );
    c.text = Some("Move alice to a new phone: Pixel 9 (android)".into());
    c.validate().unwrap();
    let json = String::from_utf8(c.to_json().unwrap()).unwrap();
    assert!(json.contains(r#""kind":"transfer""#), "{json}");
    // Sealed, signed and opened like any challenge.
    let opened = SealedChallenge::verify(&sealed_msg(&k, &c), &k.s.public_key())
        .unwrap()
        .open(&k.k, &binding(), T0 + 1, 0)
        .unwrap();
    assert_eq!(opened.challenge.kind, ChallengeKind::Transfer);
    c.transaction = Some(TransactionDetails {
        amount: "1".into(),
        currency: "EUR".into(),
        payee: "Bob".into(),
    });
    assert_eq!(
        c.validate(),
        Err(ProtocolError::Malformed {
            field: "transaction"
        })
    );
}

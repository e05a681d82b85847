//! Protocol v1 published test vectors.
//!
//! Regenerates every vector from fixed inputs (fixed key scalars, RFC 6979
//! signatures, fixed HPKE ephemeral keys, fixed times) and fails if the result
//! differs from `docs/vectors/protocol-v1.json` or from the copy in
//! `docs/PROTOCOL.md`. With `COUNTERSIGN_BLESS=1` it rewrites both instead.
//! It then checks the published bytes with the normal (randomised) API: parse,
//! verify, open.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::path::PathBuf;

use countersign_protocol::activation::{ActivationOffer, OfferSecret};
use countersign_protocol::crypto::{AgreementKey, PublicKey, SigningKey, sha256};
use countersign_protocol::request::{request_message, sign_request_with_nonce};
use countersign_protocol::*;
use serde_json::{Value, json};

const MD_BEGIN: &str = "<!-- protocol-v1-vectors:begin -->";
const MD_END: &str = "<!-- protocol-v1-vectors:end -->";

const T0: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// The OCRA response of the vector account (key: the OTP seed) to `question`.
fn offline_ocra(question: &str) -> String {
    let suite = otp::OcraSuite::parse(offline::OFFLINE_SUITE).unwrap();
    let inputs = otp::OcraInputs {
        question,
        ..otp::OcraInputs::default()
    };
    otp::ocra(&suite, SEED, &inputs).unwrap()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scalar(label: &str) -> [u8; 32] {
    sha256(format!("countersign/v1/test-vector/{label}").as_bytes())
}

fn signing_key(label: &str) -> SigningKey {
    SigningKey::from_bytes(&scalar(label)).unwrap()
}

fn agreement_key(label: &str) -> AgreementKey {
    AgreementKey::from_bytes(&scalar(label)).unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn key_json(label: &str, public: &PublicKey) -> Value {
    json!({
        "scalar_hex": hex::encode(scalar(label)),
        "scalar_derivation": format!("SHA-256(\"countersign/v1/test-vector/{label}\")"),
        "public_sec1_hex": hex::encode(public.to_sec1()),
        "kid": public.key_id(),
        "fingerprint_hex": hex::encode(public.fingerprint()),
    })
}

struct Fixed {
    s: SigningKey,
    dp: SigningKey,
    du: SigningKey,
    k1: AgreementKey,
    k2: AgreementKey,
    eph_seed: AgreementKey,
    eph_challenge: AgreementKey,
}

fn fixed() -> Fixed {
    Fixed {
        s: signing_key("server-S"),
        dp: signing_key("device-Dp"),
        du: signing_key("device-Du"),
        k1: agreement_key("device-K1"),
        k2: agreement_key("device-K2"),
        eph_seed: agreement_key("hpke-ephemeral-seed"),
        eph_challenge: agreement_key("hpke-ephemeral-challenge"),
    }
}

const SEED: &[u8; 20] = b"12345678901234567890";

fn offer(f: &Fixed) -> ActivationOffer {
    ActivationOffer {
        server_url: ServerUrl::parse("https://auth.example.com/countersign/").unwrap(),
        credentials: OfferCredentials {
            id: OfferId([0x01, 0x23, 0x45, 0x67, 0x89]),
            secret: OfferSecret::from_bytes([
                0xA5, 0x5A, 0x0F, 0xF0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
            ]),
        },
        server_key_fingerprint: f.s.public_key().fingerprint(),
        issuer: Some("Example Corp".into()),
        label: Some("alice@example.com".into()),
        pin_min_length: None,
    }
}

/// The fixed offer as a server with a PIN policy writes it (`pin` parameter).
fn offer_with_pin(f: &Fixed) -> ActivationOffer {
    ActivationOffer {
        pin_min_length: Some(6),
        ..offer(f)
    }
}

fn device_info() -> DeviceInfo {
    DeviceInfo {
        platform: Platform::Android,
        device_name: Some("Alice's Pixel".into()),
        push: PushRegistration::Fcm {
            token: "fcm-token-0123456789".into(),
        },
    }
}

fn grant() -> ActivationGrant {
    ActivationGrant {
        offer_id: OfferId([0x01, 0x23, 0x45, 0x67, 0x89]),
        account_id: "acct_7f3a9c".into(),
        device_id: "dev_41b2e8".into(),
        user_label: "alice@example.com".into(),
        issuer: Some("Example Corp".into()),
        policy: VerificationPolicy {
            default: Verification::Pin,
            pin_min_length: 6,
            pin_max_attempts: 5,
            biometric_allowed: true,
        },
        otp: OtpParams {
            algorithm: OtpAlgorithm::Sha1,
            digits: 6,
            period: 30,
        },
        server_time: T0 + 5,
    }
}

fn challenge() -> Challenge {
    Challenge {
        tx_id: "AAECAwQFBgcICQoLDA0ODw".into(),
        account_id: "acct_7f3a9c".into(),
        issued_at: T0 + 100,
        expires_at: T0 + 130,
        kind: ChallengeKind::Transaction,
        context: ChallengeContext {
            rp: "Example Bank".into(),
            ip: Some("203.0.113.7".into()),
            location: Some("Berlin, DE".into()),
            user_agent: Some("Firefox on Linux".into()),
        },
        text: Some("Confirm payment".into()),
        transaction: Some(TransactionDetails {
            amount: "1250.00".into(),
            currency: "EUR".into(),
            payee: "ACME GmbH".into(),
        }),
        verification: Verification::Pin,
        number_matching: NumberMatching::Type { digits: 2 },
        nonce: "EBESExQVFhcYGRobHB0eHw".into(),
    }
}

fn device_binding() -> DeviceBinding {
    DeviceBinding {
        account_id: "acct_7f3a9c".into(),
        device_id: "dev_41b2e8".into(),
    }
}

/// Builds every vector from the fixed inputs.
fn generate() -> Value {
    let f = fixed();
    let det_s = DeterministicSigner(&f.s);
    let det_dp = DeterministicSigner(&f.dp);
    let det_du = DeterministicSigner(&f.du);

    // Activation.
    let offer = offer(&f);
    let uri = offer.to_uri();
    let code = offer.credentials.to_code();
    let req = ActivationRequest::new(
        &offer.credentials,
        f.dp.public_key(),
        &det_du,
        f.k1.public_key(),
        device_info(),
        T0,
    )
    .unwrap();
    let req_payload = req.to_payload().unwrap();
    let req_msg = req.sign(&det_dp).unwrap();
    let result = ActivationResult::seal(
        grant(),
        f.s.public_key(),
        SEED,
        &f.k1.public_key(),
        Ephemeral::Fixed(&f.eph_seed),
    )
    .unwrap();
    let res_payload = result.to_payload().unwrap();
    let res_msg = result.sign(&det_s).unwrap();

    // Challenge.
    let ch = challenge();
    let plaintext = ch.to_json().unwrap();
    let sealed = SealedChallenge::seal(
        &ch,
        "dev_41b2e8",
        &f.k1.public_key(),
        Ephemeral::Fixed(&f.eph_challenge),
    )
    .unwrap();
    let env_payload = sealed.to_payload().unwrap();
    let ch_msg = sealed.sign(&det_s).unwrap();

    // Answers (approval signed by Du, denial by Dp).
    let opened = OpenedChallenge {
        challenge: ch.clone(),
        plaintext: plaintext.clone(),
        hash: challenge_hash(&plaintext),
    };
    let otp = answer::push_otp(&opened, SEED, 6).unwrap();
    let approve = Answer::approve(
        &opened,
        Approval {
            number: Some("42".into()),
            otp: Some(otp.to_string()),
            verification: Verification::Pin,
        },
        f.k2.public_key(),
        T0 + 112,
    )
    .unwrap();
    let approve_msg = approve.sign(&det_du).unwrap();
    let deny = Answer::deny(&opened, DenyReason::NotMe, f.k2.public_key(), T0 + 112).unwrap();
    let deny_msg = deny.sign(&det_dp).unwrap();

    // A signed device request: posting the denial above (docs/PROTOCOL.md §12.3).
    let deny_body = deny_msg.to_json().unwrap();
    let body = deny_body.as_slice();
    let nonce = "MDEyMzQ1Njc4OWFiY2RlZg".to_string();
    let path = "/v1/device/challenges/AAECAwQFBgcICQoLDA0ODw/answer";
    let canonical = request_message("POST", path, "dev_41b2e8", T0 + 112, &nonce, body).unwrap();
    let headers =
        sign_request_with_nonce(&det_dp, "dev_41b2e8", "POST", path, body, T0 + 112, nonce)
            .unwrap();
    let header_map: serde_json::Map<String, Value> = headers
        .to_pairs()
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect();

    // An offline QR challenge (§11) and the OCRA response to it.
    let offline_payload = serde_json::to_vec(&offline::OfflineChallenge {
        v: 1,
        kind: offline::OFFLINE_KIND.to_owned(),
        id: "off_5x2Kq9".to_owned(),
        account: "acct_7f3a9c".to_owned(),
        device: "dev_41b2e8".to_owned(),
        suite: offline::OFFLINE_SUITE.to_owned(),
        question: "48213307".to_owned(),
        rp: "Example Bank".to_owned(),
        exp: T0 + 300,
    })
    .unwrap();
    let offline_msg =
        SignedMessage::sign(Purpose::OfflineChallenge, offline_payload.clone(), &det_s).unwrap();
    let offline_response = offline_ocra("48213307");

    let labels: serde_json::Map<String, Value> = Purpose::ALL
        .iter()
        .map(|p| (format!("{p:?}"), Value::String(p.label().to_string())))
        .collect();

    json!({
        "description": "Countersign protocol v1 test vectors. Signatures are ECDSA P-256/SHA-256 with RFC 6979 nonces; HPKE is RFC 9180 base mode DHKEM(P-256, HKDF-SHA256)/HKDF-SHA256/AES-128-GCM with the fixed ephemeral keys given. Message strings are exact bytes (UTF-8).",
        "version": 1,
        "signing_labels": labels,
        "keys": {
            "server_S": key_json("server-S", &f.s.public_key()),
            "device_Dp": key_json("device-Dp", &f.dp.public_key()),
            "device_Du": key_json("device-Du", &f.du.public_key()),
            "device_K1": key_json("device-K1", &f.k1.public_key()),
            "device_K2": key_json("device-K2", &f.k2.public_key()),
            "hpke_ephemeral_seed": key_json("hpke-ephemeral-seed", &f.eph_seed.public_key()),
            "hpke_ephemeral_challenge": key_json("hpke-ephemeral-challenge", &f.eph_challenge.public_key()),
        },
        "activation": {
            "offer_id_hex": hex::encode(offer.credentials.id.0),
            "offer_secret_hex": hex::encode(offer.credentials.secret.as_bytes()),
            "offer_uri": uri.as_str(),
            "offer_uri_with_pin": offer_with_pin(&f).to_uri().as_str(),
            "typed_code": code.as_str(),
            "request_time": T0,
            "request_payload": text(&req_payload),
            "request_message": text(&req_msg.to_json().unwrap()),
            "otp_seed_hex": hex::encode(SEED),
            "result_seed_enc_hex": hex::encode(result.sealed_seed.enc),
            "result_seed_ciphertext_hex": hex::encode(&result.sealed_seed.ciphertext),
            "result_payload": text(&res_payload),
            "result_message": text(&res_msg.to_json().unwrap()),
        },
        "challenge": {
            "device_id": "dev_41b2e8",
            "plaintext": text(&plaintext),
            "challenge_hash_hex": hex::encode(challenge_hash(&plaintext)),
            "header": text(sealed.header_bytes()),
            "enc_hex": hex::encode(sealed.sealed().enc),
            "ciphertext_hex": hex::encode(&sealed.sealed().ciphertext),
            "envelope_payload": text(&env_payload),
            "signed_message": text(&ch_msg.to_json().unwrap()),
        },
        "answer_approve": {
            "typed_number": "42",
            "push_otp": otp.as_str(),
            "payload": text(&approve.to_payload().unwrap()),
            "signed_message": text(&approve_msg.to_json().unwrap()),
        },
        "answer_deny": {
            "payload": text(&deny.to_payload().unwrap()),
            "signed_message": text(&deny_msg.to_json().unwrap()),
        },
        "offline": {
            "payload": text(&offline_payload),
            "signed_message": text(&offline_msg.to_json().unwrap()),
            "ocra_key_hex": hex::encode(SEED),
            "response": offline_response,
        },
        "request": {
            "method": "POST",
            "path_and_query": path,
            "body": text(body),
            "canonical_message": text(&canonical),
            "headers": header_map,
        },
    })
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap();
    s.push('\n');
    s
}

fn md_block(json: &str) -> String {
    format!("{MD_BEGIN}\n```json\n{json}```\n{MD_END}")
}

fn bless() -> bool {
    std::env::var("COUNTERSIGN_BLESS").is_ok_and(|v| v == "1")
}

/// Checks the published bytes with the normal API. Returns how many checks ran.
fn verify_published(v: &Value) -> usize {
    let f = fixed();
    let s = |path: &[&str]| -> String {
        let mut cur = v;
        for p in path {
            cur = &cur[*p];
        }
        cur.as_str()
            .unwrap_or_else(|| panic!("vector field {path:?} missing"))
            .to_string()
    };
    let mut n = 0;

    // Offer URI and typed code parse back to the fixed offer.
    let offer = ActivationOffer::parse_uri(&s(&["activation", "offer_uri"])).unwrap();
    assert_eq!(offer, self::offer(&f));
    let with_pin = ActivationOffer::parse_uri(&s(&["activation", "offer_uri_with_pin"])).unwrap();
    assert_eq!(with_pin, offer_with_pin(&f));
    assert_eq!(with_pin.pin_min_length, Some(6));
    n += 1;
    let creds = OfferCredentials::parse_code(&s(&["activation", "typed_code"])).unwrap();
    assert_eq!(creds, offer.credentials);
    n += 2;

    // Activation request: server verifies signatures and the offer proof.
    let msg = SignedMessage::from_json(s(&["activation", "request_message"]).as_bytes()).unwrap();
    let req = ActivationRequest::verify(&msg).unwrap();
    req.check_offer(&offer.credentials).unwrap();
    assert_eq!(req.possession_key, f.dp.public_key());
    assert_eq!(req.user_key, f.du.public_key());
    n += 1;

    // Activation result: device pins S, verifies, opens the seed with K1.
    let msg = SignedMessage::from_json(s(&["activation", "result_message"]).as_bytes()).unwrap();
    let res = ActivationResult::verify(
        &msg,
        ServerKeyPin::Fingerprint(offer.server_key_fingerprint),
        &offer.credentials.id,
    )
    .unwrap();
    assert_eq!(res.open_seed(&f.k1).unwrap().as_slice(), SEED);
    n += 1;

    // Challenge: verify with S, open with K1, hash matches.
    let msg = SignedMessage::from_json(s(&["challenge", "signed_message"]).as_bytes()).unwrap();
    let sealed = SealedChallenge::verify(&msg, &f.s.public_key()).unwrap();
    let opened = sealed.open(&f.k1, &device_binding(), T0 + 110, 60).unwrap();
    assert_eq!(
        opened.plaintext,
        s(&["challenge", "plaintext"]).into_bytes()
    );
    assert_eq!(
        hex::encode(opened.hash),
        s(&["challenge", "challenge_hash_hex"])
    );
    assert_eq!(opened.challenge, challenge());
    n += 1;

    // Answers: server verifies the approval (Du) and the denial (Dp) and checks them.
    let server_plain = challenge().to_json().unwrap();
    let server_hash = challenge_hash(&server_plain);
    let ch = challenge();
    let expect = AnswerExpectation {
        challenge: &ch,
        challenge_hash: &server_hash,
        expected_number: Some("42"),
        now: T0 + 113,
        max_skew: 300,
    };
    for (name, want) in [
        ("answer_approve", Decision::Approve),
        ("answer_deny", Decision::Deny),
    ] {
        let msg = SignedMessage::from_json(s(&[name, "signed_message"]).as_bytes()).unwrap();
        let a = Answer::verify(&msg, &f.dp.public_key(), &f.du.public_key()).unwrap();
        assert_eq!(a.decision, want);
        a.check(&expect).unwrap();
        if want == Decision::Approve {
            a.check_push_otp(SEED, 6).unwrap();
        }
        n += 1;
    }

    // The offline QR: S's signature, then the OCRA response from the seed.
    let msg = SignedMessage::from_json(s(&["offline", "signed_message"]).as_bytes()).unwrap();
    let payload = msg
        .verify(Purpose::OfflineChallenge, &f.s.public_key())
        .unwrap();
    assert_eq!(payload, s(&["offline", "payload"]).as_bytes());
    let probe: offline::OfflineChallenge = serde_json::from_slice(payload).unwrap();
    assert_eq!(offline_ocra(&probe.question), s(&["offline", "response"]));
    n += 1;

    // Request signature headers.
    let hdrs = v["request"]["headers"].as_object().unwrap();
    let headers =
        RequestHeaders::from_lookup(|name| hdrs.get(name).and_then(Value::as_str)).unwrap();
    verify_request(
        &f.dp.public_key(),
        &headers,
        &s(&["request", "method"]),
        &s(&["request", "path_and_query"]),
        s(&["request", "body"]).as_bytes(),
        T0 + 120,
        60,
    )
    .unwrap();
    n += 1;

    // Fresh randomised signing and sealing of the same objects also round-trip.
    let sealed = SealedChallenge::seal(
        &challenge(),
        "dev_41b2e8",
        &f.k1.public_key(),
        Ephemeral::Random,
    )
    .unwrap();
    let msg = sealed.sign(&f.s).unwrap();
    let again = SealedChallenge::verify(
        &SignedMessage::from_json(&msg.to_json().unwrap()).unwrap(),
        &f.s.public_key(),
    )
    .unwrap();
    let opened2 = again.open(&f.k1, &device_binding(), T0 + 110, 60).unwrap();
    assert_eq!(opened2.hash, opened.hash, "same plaintext, same hash");
    n += 1;
    n
}

#[test]
fn protocol_vectors() {
    let generated = generate();
    let json = pretty(&generated);
    let json_path = root().join("docs/vectors/protocol-v1.json");
    let md_path = root().join("docs/PROTOCOL.md");
    let md = std::fs::read_to_string(&md_path)
        .unwrap_or_else(|e| panic!("{} is required: {e}", md_path.display()));
    let (before, rest) = md
        .split_once(MD_BEGIN)
        .unwrap_or_else(|| panic!("{} lacks the marker {MD_BEGIN}", md_path.display()));
    let (_, after) = rest
        .split_once(MD_END)
        .unwrap_or_else(|| panic!("{} lacks the marker {MD_END}", md_path.display()));
    let new_md = format!("{before}{}{after}", md_block(&json));

    if bless() {
        std::fs::write(&json_path, &json).unwrap();
        std::fs::write(&md_path, &new_md).unwrap();
        eprintln!("blessed {} and {}", json_path.display(), md_path.display());
    } else {
        let on_disk = std::fs::read_to_string(&json_path).unwrap_or_else(|e| {
            panic!(
                "{} is required ({e}); run with COUNTERSIGN_BLESS=1 to create it",
                json_path.display()
            )
        });
        assert!(
            on_disk == json,
            "{} differs from the regenerated vectors; if the change is intended, rerun with COUNTERSIGN_BLESS=1",
            json_path.display()
        );
        assert!(
            md == new_md,
            "the vectors in {} differ from the regenerated ones; rerun with COUNTERSIGN_BLESS=1",
            md_path.display()
        );
    }

    // Check the published file (not just the regenerated value) with the normal API.
    let published: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let mut n = verify_published(&published);
    // Every leaf value of the file was compared with the regenerated one.
    n += count_leaves(&published);
    println!("protocol vectors: {n} checked");
}

fn count_leaves(v: &Value) -> usize {
    match v {
        Value::Object(m) => m.values().map(count_leaves).sum(),
        Value::Array(a) => a.iter().map(count_leaves).sum(),
        _ => 1,
    }
}

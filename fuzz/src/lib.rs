//! Shared fixtures of the fuzz targets: fixed keys, valid signed messages built
//! deterministically from them, and the seed inputs of every target.
//!
//! The fuzzer cannot forge a signature or an AEAD tag, so targets that verify or
//! open start from these valid messages (the committed corpora hold them) and
//! assert that whatever verifies is exactly something the fixture signed.

use std::path::Path;
use std::sync::OnceLock;

use countersign_protocol::answer::push_otp;
use countersign_protocol::crypto::{AgreementKey, PublicKey, SigningKey, sha256};
use countersign_protocol::offline::{OFFLINE_KIND, OFFLINE_SUITE, OfflineChallenge};
use countersign_protocol::{
    ActivationGrant, ActivationRequest, ActivationResult, DeviceInfo, OtpAlgorithm, OtpParams,
    Platform, PushRegistration, VerificationPolicy,
};
use countersign_protocol::{
    ActivationOffer, Answer, Approval, Challenge, ChallengeContext, ChallengeKind, DenyReason,
    DeterministicSigner, DeviceBinding, Ephemeral, NumberMatching, OfferCredentials, OfferId,
    OfferSecret, OpenedChallenge, Purpose, SealedChallenge, ServerUrl, SignedMessage,
    TransactionDetails, Verification, sign_request_with_nonce,
};

/// The fixture's server clock (unix seconds).
pub const T0: u64 = 1_767_225_600;
/// Clock skew allowed by the targets, seconds.
pub const SKEW: u64 = 300;
/// The push OTP seed of the fixture account.
pub const SEED: &[u8] = b"0123456789abcdef0123";
/// Digits of the fixture's push OTP.
pub const OTP_DIGITS: u8 = 6;

/// A device request the fixture signed, and its wire form.
pub struct SignedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Request body.
    pub body: Vec<u8>,
    /// The four headers as sent.
    pub headers: countersign_protocol::RequestHeaders,
}

/// An opened challenge and the number the relying party expects for it.
pub struct Expected {
    /// The challenge as the server stored it.
    pub opened: OpenedChallenge,
    /// The number shown to the user (number matching), if any.
    pub number: Option<String>,
}

/// Fixed keys and everything the fixture signed with them.
pub struct Fixture {
    /// The server key S.
    pub s: SigningKey,
    /// The device possession key Dp.
    pub dp: SigningKey,
    /// The device user-verification key Du.
    pub du: SigningKey,
    /// The device KEM key K.
    pub k: AgreementKey,
    /// The device's next KEM key (in answers).
    pub next_k: AgreementKey,
    /// Account and device ids the challenges are sealed for.
    pub binding: DeviceBinding,
    /// Challenges as opened by the device, with the expected number.
    pub challenges: Vec<Expected>,
    /// Sealed challenges signed by S.
    pub sealed: Vec<SignedMessage>,
    /// Answers signed by Dp or Du.
    pub answers: Vec<SignedMessage>,
    /// Requests signed by Dp.
    pub requests: Vec<SignedRequest>,
    /// Offline QR challenges signed by S.
    pub offline: Vec<SignedMessage>,
    /// Offer URIs (unsigned).
    pub offers: Vec<String>,
    /// The credentials of the first offer (what the server checks a request's proof with).
    pub offer_credentials: OfferCredentials,
    /// An activation request signed by Dp (with Du's proof), then the server's
    /// activation result signed by S, with [`SEED`] sealed to K.
    pub activations: Vec<SignedMessage>,
    /// Every `(purpose, key id, payload)` the fixture signed.
    pub signed: Vec<(Purpose, String, Vec<u8>)>,
}

fn signing_key(label: &str) -> SigningKey {
    SigningKey::from_bytes(&sha256(label.as_bytes())).expect("fixed scalar is valid")
}

fn agreement_key(label: &str) -> AgreementKey {
    AgreementKey::from_bytes(&sha256(label.as_bytes())).expect("fixed scalar is valid")
}

fn challenges() -> Vec<(Challenge, Option<String>)> {
    let base = Challenge {
        tx_id: "AAECAwQFBgcICQoLDA0ODw".into(),
        account_id: "acct1".into(),
        issued_at: T0,
        expires_at: T0 + 60,
        kind: ChallengeKind::Login,
        context: ChallengeContext {
            rp: "VPN".into(),
            ip: Some("2001:db8::1".into()),
            location: Some("Berlin, DE".into()),
            user_agent: Some("Firefox on Linux".into()),
        },
        text: None,
        transaction: None,
        verification: Verification::Pin,
        number_matching: NumberMatching::Type { digits: 2 },
        nonce: "EBESExQVFhcYGRobHB0eHw".into(),
    };
    let transaction = Challenge {
        tx_id: "ICEiIyQlJicoKSorLC0uLzAxMjM".into(),
        kind: ChallengeKind::Transaction,
        context: ChallengeContext {
            rp: "Bank".into(),
            ip: Some("192.0.2.7".into()),
            location: None,
            user_agent: None,
        },
        text: Some("Pay rent\nMarch".into()),
        transaction: Some(TransactionDetails {
            amount: "1250.50".into(),
            currency: "EUR".into(),
            payee: "ACME Flats".into(),
        }),
        verification: Verification::Biometric,
        number_matching: NumberMatching::Pick {
            choices: vec!["17".into(), "42".into(), "93".into()],
        },
        nonce: "MDEyMzQ1Njc4OWFiY2RlZg".into(),
        ..base.clone()
    };
    let plain = Challenge {
        tx_id: "QEFCQ0RFRkdISUpLTE1OTw".into(),
        context: ChallengeContext {
            rp: "Mail".into(),
            ip: None,
            location: None,
            user_agent: None,
        },
        verification: Verification::None,
        number_matching: NumberMatching::Off,
        nonce: "UFFSU1RVVldYWVpbXF1eXw".into(),
        ..base.clone()
    };
    vec![
        (base, Some("42".into())),
        (transaction, Some("42".into())),
        (plain, None),
    ]
}

fn build() -> Fixture {
    let s = signing_key("fuzz/S");
    let dp = signing_key("fuzz/Dp");
    let du = signing_key("fuzz/Du");
    let k = agreement_key("fuzz/K");
    let next_k = agreement_key("fuzz/K2");
    let eph = agreement_key("fuzz/ephemeral");
    let binding = DeviceBinding {
        account_id: "acct1".into(),
        device_id: "dev1".into(),
    };
    let det_s = DeterministicSigner(&s);
    let det_dp = DeterministicSigner(&dp);
    let det_du = DeterministicSigner(&du);
    let mut signed = Vec::new();
    let mut record = |purpose: Purpose, key: &SigningKey, msg: &SignedMessage| {
        signed.push((
            purpose,
            key.public_key().key_id(),
            msg.payload_unverified().to_vec(),
        ));
    };

    let mut expected = Vec::new();
    let mut sealed = Vec::new();
    let mut answers = Vec::new();
    for (c, number) in challenges() {
        let box_ = SealedChallenge::seal(&c, "dev1", &k.public_key(), Ephemeral::Fixed(&eph))
            .expect("fixture challenge seals");
        let msg = box_.sign(&det_s).expect("fixture challenge signs");
        record(Purpose::Challenge, &s, &msg);
        let opened = SealedChallenge::verify(&msg, &s.public_key())
            .and_then(|b| b.open(&k, &binding, T0 + 1, SKEW))
            .expect("fixture challenge opens");
        sealed.push(msg);

        let otp = push_otp(&opened, SEED, OTP_DIGITS).expect("push otp");
        let verification = match c.verification {
            Verification::None => Verification::None,
            v => v,
        };
        let approve = Answer::approve(
            &opened,
            Approval {
                number: number.clone(),
                otp: Some(otp.to_string()),
                verification,
            },
            next_k.public_key(),
            T0 + 5,
        )
        .expect("fixture approval");
        let signer: (&DeterministicSigner<'_>, &SigningKey) = if verification == Verification::None
        {
            (&det_dp, &dp)
        } else {
            (&det_du, &du)
        };
        let msg = approve.sign(signer.0).expect("approval signs");
        record(approve.purpose(), signer.1, &msg);
        answers.push(msg);
        let deny = Answer::deny(&opened, DenyReason::NotMe, next_k.public_key(), T0 + 6)
            .expect("fixture denial");
        let msg = deny.sign(&det_dp).expect("denial signs");
        record(deny.purpose(), &dp, &msg);
        answers.push(msg);
        expected.push(Expected { opened, number });
    }

    let mut requests = Vec::new();
    for (method, path, body) in [
        ("GET", "/v1/device/challenges?wait=25", Vec::new()),
        (
            "POST",
            "/v1/device/answer",
            answers
                .first()
                .and_then(|a| a.to_json().ok())
                .unwrap_or_default(),
        ),
        ("DELETE", "/v1/device", b"{}".to_vec()),
    ] {
        let headers = sign_request_with_nonce(
            &det_dp,
            "dev1",
            method,
            path,
            &body,
            T0,
            "AAECAwQFBgcICQoLDA0ODw".into(),
        )
        .expect("fixture request signs");
        requests.push(SignedRequest {
            method: method.into(),
            path: path.into(),
            body,
            headers,
        });
    }

    let mut offline = Vec::new();
    for (id, question, suite) in [
        ("off_5x2Kq9", "48213307", OFFLINE_SUITE),
        ("off_7", "00000001", "OCRA-1:HOTP-SHA1-6:QA08"),
    ] {
        let payload = serde_json::to_vec(&OfflineChallenge {
            v: 1,
            kind: OFFLINE_KIND.into(),
            id: id.into(),
            account: "acct1".into(),
            device: "dev1".into(),
            suite: suite.into(),
            question: question.into(),
            rp: "Example Bank".into(),
            exp: T0 + 300,
        })
        .expect("offline payload");
        let msg =
            SignedMessage::sign(Purpose::OfflineChallenge, payload, &det_s).expect("offline signs");
        record(Purpose::OfflineChallenge, &s, &msg);
        offline.push(msg);
    }

    let offer = ActivationOffer {
        server_url: ServerUrl::parse("https://auth.example.com/countersign/").expect("url"),
        credentials: OfferCredentials {
            id: OfferId([1, 35, 69, 103, 137]),
            secret: OfferSecret::from_bytes([
                0xa5, 0x5a, 0x0f, 0xf0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
            ]),
        },
        server_key_fingerprint: s.public_key().fingerprint(),
        issuer: Some("Example Corp".into()),
        label: Some("alice@example.com".into()),
        pin_min_length: Some(6),
    };
    let mut plain = offer.clone();
    plain.server_url = ServerUrl::parse("http://127.0.0.1:8443").expect("url");
    plain.issuer = None;
    plain.label = Some("Zürich!".into());
    plain.pin_min_length = None;
    let offers = vec![offer.to_uri().to_string(), plain.to_uri().to_string()];

    let offer_credentials = offer.credentials.clone();
    let request = ActivationRequest::new(
        &offer_credentials,
        dp.public_key(),
        &det_du,
        k.public_key(),
        DeviceInfo {
            platform: Platform::Android,
            device_name: Some("Pixel 9".into()),
            push: PushRegistration::Fcm {
                token: "fcm-token-1".into(),
            },
        },
        T0,
    )
    .expect("fixture activation request");
    let request = request.sign(&det_dp).expect("activation request signs");
    record(Purpose::ActivationRequest, &dp, &request);
    let grant = ActivationGrant {
        offer_id: offer_credentials.id,
        account_id: "acct1".into(),
        device_id: "dev1".into(),
        user_label: "alice@example.com".into(),
        issuer: Some("Example Corp".into()),
        policy: VerificationPolicy {
            default: Verification::Pin,
            pin_min_length: 6,
            pin_max_attempts: 10,
            biometric_allowed: true,
        },
        otp: OtpParams {
            algorithm: OtpAlgorithm::Sha256,
            digits: OTP_DIGITS,
            period: 30,
        },
        server_time: T0,
    };
    let ephemeral = agreement_key("fuzz/activation-ephemeral");
    let result = ActivationResult::seal(
        grant,
        s.public_key(),
        SEED,
        &k.public_key(),
        Ephemeral::Fixed(&ephemeral),
    )
    .expect("fixture activation result")
    .sign(&det_s)
    .expect("activation result signs");
    record(Purpose::ActivationResult, &s, &result);
    let activations = vec![request, result];

    Fixture {
        s,
        dp,
        du,
        k,
        next_k,
        binding,
        challenges: expected,
        sealed,
        answers,
        requests,
        offline,
        offers,
        offer_credentials,
        activations,
        signed,
    }
}

/// The fixture, built once per process.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build)
}

impl Fixture {
    /// Whether the fixture signed `payload` for `purpose` with the key `kid`.
    pub fn signed(&self, purpose: Purpose, kid: &str, payload: &[u8]) -> bool {
        self.signed
            .iter()
            .any(|(p, k, m)| *p == purpose && k == kid && m == payload)
    }

    /// The fixture's signing keys' public halves.
    pub fn public_keys(&self) -> [PublicKey; 3] {
        [
            self.s.public_key(),
            self.dp.public_key(),
            self.du.public_key(),
        ]
    }
}

/// A device request as one fuzz input: the header values, method and path on
/// lines of their own, then the body (which may hold newlines).
pub fn request_input(
    device: &str,
    timestamp: &str,
    nonce: &str,
    signature: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut out =
        format!("{device}\n{timestamp}\n{nonce}\n{signature}\n{method}\n{path}\n").into_bytes();
    out.extend_from_slice(body);
    out
}

/// The valid inputs a target's corpus starts from.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let f = fixture();
    let json = |m: &SignedMessage| m.to_json().unwrap_or_default();
    match target {
        "activation_uri" => {
            let mut out: Vec<Vec<u8>> = f.offers.iter().map(|u| u.clone().into_bytes()).collect();
            out.push(b"https://auth.example.com/countersign/".to_vec());
            out.push(b"http://[::1]:8080/a/b".to_vec());
            out
        }
        // radclient's packets and the responses it accepted (the codec's
        // known-answer vectors, server/tests/data), plus a bare header.
        "radius_packet" => {
            let mut out = vec![[1u8, 0, 0, 20].iter().chain(&[0u8; 16]).copied().collect()];
            for text in [
                include_str!("../../server/tests/data/radius_requests.json"),
                include_str!("../../server/tests/data/radius_responses.json"),
            ] {
                let vectors: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
                for v in vectors.as_array().into_iter().flatten() {
                    for field in ["packet", "request", "response"] {
                        if let Some(bytes) = v[field].as_str().and_then(|h| hex::decode(h).ok()) {
                            out.push(bytes);
                        }
                    }
                }
            }
            out
        }
        "activation_code" => {
            let creds = OfferCredentials {
                id: OfferId([1, 35, 69, 103, 137]),
                secret: OfferSecret::from_bytes([7; 10]),
            };
            let code = creds.to_code().to_string();
            vec![
                code.clone().into_bytes(),
                code.to_lowercase().replace('-', " ").into_bytes(),
                b"04HMASW9".to_vec(),
                b"MND0ZW0H48SM8NB6".to_vec(),
            ]
        }
        "otpauth" => [
            "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example",
            "otpauth://hotp/Example:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example&counter=41",
            "otpauth://TOTP/Big%2BCorp:%20%20b%C3%B6b?secret=gezdgnbvgy3tqojq&issuer=Big+Corp&algorithm=sha512&digits=8&period=60",
            "otpauth://totp/a+b?secret=GEZDGNBVGY3TQOJQ====&image=x",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        "signed_message" => f
            .sealed
            .iter()
            .chain(&f.answers)
            .chain(&f.offline)
            .map(json)
            .collect(),
        "sealed_challenge" => {
            let mut out: Vec<Vec<u8>> = f.sealed.iter().map(json).collect();
            out.extend(f.sealed.iter().map(|m| m.payload_unverified().to_vec()));
            out.extend(f.challenges.iter().map(|e| e.opened.plaintext.clone()));
            out
        }
        "answer" => {
            let mut out: Vec<Vec<u8>> = f.answers.iter().map(json).collect();
            out.extend(f.answers.iter().map(|m| m.payload_unverified().to_vec()));
            out
        }
        "device_request" => f
            .requests
            .iter()
            .map(|r| {
                let pairs = r.headers.to_pairs();
                request_input(
                    &pairs[0].1,
                    &pairs[1].1,
                    &pairs[2].1,
                    &pairs[3].1,
                    &r.method,
                    &r.path,
                    &r.body,
                )
            })
            .collect(),
        "activation" => {
            let mut out: Vec<Vec<u8>> = f.activations.iter().map(json).collect();
            out.extend(f.activations.iter().map(|m| m.payload_unverified().to_vec()));
            out
        }
        "offline_qr" => {
            let mut out: Vec<Vec<u8>> = f.offline.iter().map(json).collect();
            out.extend(f.offline.iter().map(|m| m.payload_unverified().to_vec()));
            out
        }
        _ => Vec::new(),
    }
}

/// When `COUNTERSIGN_FUZZ_WRITE_SEEDS` names a directory, writes `target`'s seeds
/// there (file names are the SHA-256 of the content) and exits: `cargo xtask fuzz
/// --seeds` runs every target this way.
pub fn write_seeds_if_asked(target: &str) {
    let Some(dir) = std::env::var_os("COUNTERSIGN_FUZZ_WRITE_SEEDS") else {
        // Build the fixture before the first input, so its cost is no timeout.
        let _ = fixture();
        return;
    };
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).expect("create seed directory");
    let seeds = seeds(target);
    for seed in &seeds {
        let name: String = sha256(seed).iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(dir.join(format!("seed-{}", &name[..16])), seed).expect("write seed");
    }
    println!(
        "{target}: {} seeds written to {}",
        seeds.len(),
        dir.display()
    );
    std::process::exit(0);
}

//! A simulated device for tests and benchmarks: it speaks the protocol through
//! countersign_protocol's functions only, as a real app's core does (activation,
//! signed fetch, open, approve or deny).

use countersign_protocol::crypto::{AgreementKey, PublicKey, SigningKey};
use countersign_protocol::{
    ActivationOffer, ActivationRequest, ActivationResult, Answer, Approval, DenyReason,
    DeviceBinding, DeviceInfo, OfferCredentials, OpenedChallenge, Platform, PushRegistration,
    SealedChallenge, ServerKeyPin, SignedMessage, Verification, answer::push_otp, sign_request,
};
use serde_json::Value;

use crate::{http_client, now, reqwest};

/// A device with its keys.
pub struct TestDevice {
    /// The server's base URL.
    pub base: String,
    /// The device's HTTP client.
    pub client: reqwest::Client,
    /// The possession key (signs requests and plain answers).
    pub dp: SigningKey,
    /// The user-verification key (signs answers after a biometric check).
    pub du: SigningKey,
    /// The KEM keys held, oldest first (challenges are sealed to one of them).
    pub kems: Vec<AgreementKey>,
    /// The server's id of this device.
    pub device_id: String,
    /// The account the device is bound to.
    pub account_id: String,
    /// The server's signing key (verifies sealed challenges).
    pub server_key: PublicKey,
    /// The OTP seed.
    pub seed: Vec<u8>,
    /// OTP digits.
    pub digits: u8,
    /// TOTP period in seconds.
    pub period: u32,
}

/// Parses an offer URI into the offer and its credentials.
pub fn offer_credentials(offer_uri: &str) -> (ActivationOffer, OfferCredentials) {
    let offer = ActivationOffer::parse_uri(offer_uri).unwrap();
    let creds = offer.credentials.clone();
    (offer, creds)
}

impl TestDevice {
    /// The signed activation request for `creds` with fresh keys.
    pub fn activation_request(
        creds: &OfferCredentials,
    ) -> (SigningKey, SigningKey, AgreementKey, Vec<u8>) {
        let dp = SigningKey::generate().unwrap();
        let du = SigningKey::generate().unwrap();
        let kem = AgreementKey::generate().unwrap();
        let req = ActivationRequest::new(
            creds,
            dp.public_key(),
            &du,
            kem.public_key(),
            DeviceInfo {
                platform: Platform::Android,
                device_name: Some("Test phone".into()),
                push: PushRegistration::Fcm {
                    token: "fcm-test-token".into(),
                },
            },
            now(),
        )
        .unwrap();
        let msg = req.sign(&dp).unwrap().to_json().unwrap();
        (dp, du, kem, msg)
    }

    /// Activates from an offer URI (as from the QR code) and confirms.
    pub async fn activate(base: &str, offer_uri: &str) -> Self {
        let device = Self::activate_unconfirmed(base, offer_uri).await;
        let (status, body) = device
            .json("POST", "/v1/device/activate/confirm", b"{}".to_vec())
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "active");
        device
    }

    /// Phase one of activation only: the server holds the device as pending.
    pub async fn activate_unconfirmed(base: &str, offer_uri: &str) -> Self {
        let (offer, creds) = offer_credentials(offer_uri);
        let (dp, du, kem, body) = Self::activation_request(&creds);
        let client = http_client();
        let r = client
            .post(format!("{base}/v1/device/activate"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let bytes = r.bytes().await.unwrap();
        let msg = SignedMessage::from_json(&bytes).unwrap();
        let result = ActivationResult::verify(
            &msg,
            ServerKeyPin::Fingerprint(offer.server_key_fingerprint),
            &creds.id,
        )
        .expect("activation result signed by the pinned server key");
        let seed = result.open_seed(&kem).unwrap().to_vec();
        Self {
            base: base.to_string(),
            client,
            dp,
            du,
            kems: vec![kem],
            device_id: result.grant.device_id.clone(),
            account_id: result.grant.account_id.clone(),
            server_key: result.server_key.clone(),
            seed,
            digits: result.grant.otp.digits,
            period: result.grant.otp.period,
        }
    }

    /// Sends a signed request (signed with `signer`, at `ts`).
    pub async fn send_as(
        &self,
        signer: &SigningKey,
        ts: u64,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let hdrs = sign_request(signer, &self.device_id, method, path, &body, ts).unwrap();
        self.send_with(&hdrs.to_pairs(), method, path, body).await
    }

    /// Sends a request with the given signature headers.
    pub async fn send_with(
        &self,
        pairs: &[(&'static str, String)],
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut rb = self.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", self.base),
        );
        for (k, v) in pairs {
            rb = rb.header(*k, v);
        }
        rb.body(body).send().await.unwrap()
    }

    /// Sends a request signed with Dp now.
    pub async fn send(&self, method: &str, path: &str, body: Vec<u8>) -> reqwest::Response {
        self.send_as(&self.dp, now(), method, path, body).await
    }

    /// Sends a signed request; answers the status and the JSON body (or null).
    pub async fn json(&self, method: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
        let r = self.send(method, path, body).await;
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// Long-polls for pending challenges.
    pub async fn poll(&self, wait: u32) -> (u16, Value) {
        self.json("GET", &format!("/v1/device/challenges?wait={wait}"), vec![])
            .await
    }

    /// Long-polls naming the challenges the device already holds (`known`).
    pub fn poll_known(
        &self,
        wait: u32,
        known: &[&str],
    ) -> impl std::future::Future<Output = (u16, Value)> + '_ {
        let path = format!(
            "/v1/device/challenges?wait={wait}&known={}",
            known.join(",")
        );
        async move { self.json("GET", &path, vec![]).await }
    }

    /// Fetches, verifies (S) and opens one challenge.
    pub async fn fetch(&self, tx: &str) -> OpenedChallenge {
        let r = self
            .send("GET", &format!("/v1/device/challenges/{tx}"), vec![])
            .await;
        assert_eq!(r.status(), 200);
        self.open(&r.bytes().await.unwrap())
    }

    /// Verifies (S) and opens a fetched challenge's bytes.
    pub fn open(&self, bytes: &[u8]) -> OpenedChallenge {
        let msg = SignedMessage::from_json(bytes).unwrap();
        let sealed = SealedChallenge::verify(&msg, &self.server_key).expect("signed by S");
        let kid = sealed.header().kem_kid.clone();
        let kem = self
            .kems
            .iter()
            .find(|k| k.public_key().key_id() == kid)
            .expect("a KEM key we hold");
        sealed
            .open(
                kem,
                &DeviceBinding {
                    account_id: self.account_id.clone(),
                    device_id: self.device_id.clone(),
                },
                now(),
                60,
            )
            .unwrap()
    }

    fn next_kem(&mut self) -> PublicKey {
        let k = AgreementKey::generate().unwrap();
        let p = k.public_key();
        self.kems.push(k);
        p
    }

    /// Approves with `number` (and the push OTP).
    pub fn approval(&mut self, opened: &OpenedChallenge, number: Option<&str>) -> Answer {
        let otp = push_otp(opened, &self.seed, self.digits)
            .unwrap()
            .to_string();
        let next = self.next_kem();
        Answer::approve(
            opened,
            Approval {
                number: number.map(str::to_string),
                otp: Some(otp),
                verification: Verification::None,
            },
            next,
            now(),
        )
        .unwrap()
    }

    /// Denies with `reason`.
    pub fn denial(&mut self, opened: &OpenedChallenge, reason: DenyReason) -> Answer {
        let next = self.next_kem();
        Answer::deny(opened, reason, next, now()).unwrap()
    }

    /// Posts a signed answer (Dp-signed unless `uv`).
    pub async fn post_answer(&self, answer: &Answer) -> (u16, Value) {
        let signer = if answer.purpose() == countersign_protocol::Purpose::AnswerUserVerified {
            &self.du
        } else {
            &self.dp
        };
        let body = answer.sign(signer).unwrap().to_json().unwrap();
        self.json(
            "POST",
            &format!("/v1/device/challenges/{}/answer", answer.tx_id),
            body,
        )
        .await
    }
}

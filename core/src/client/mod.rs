//! The device API client: the HTTP calls a device makes to a countersign-server
//! (`/v1/device/…`), each signed with the possession key Dp (see
//! `protocol::request`), over the app's [`HttpClient`].
//!
//! | call | route | body → answer |
//! |---|---|---|
//! | [`DeviceClient::activate`] | `POST /v1/device/activate` | signed activation request → signed result (unsigned HTTP: the body is signed) |
//! | [`DeviceClient::confirm_activation`] | `POST /v1/device/activate/confirm` | `{}` → `{"device_id","status","tx_id"}` |
//! | [`DeviceClient::start_transfer`] | `POST /v1/device/transfers` | `{"remove_old"}` → `{"offer_id","offer_uri","code","expires_at"}` |
//! | [`DeviceClient::pending`] | `GET /v1/device/challenges?wait=N&known=T1,T2` | → `{"challenges":[{"tx","exp"}]}` |
//! | [`DeviceClient::fetch_challenge`] | `GET /v1/device/challenges/{tx}` | → challenge envelope signed by S |
//! | [`DeviceClient::answer`] | `POST /v1/device/challenges/{tx}/answer` | signed answer → `{"state","kem_kid"}` |
//! | [`DeviceClient::update_push`] | `PUT /v1/device/push` | push registration JSON |
//! | [`DeviceClient::update_kem_key`] | `PUT /v1/device/kem` | `{"kem_key"}` → `{"kem_kid"}` |
//! | [`DeviceClient::deregister`] | `DELETE /v1/device` | nothing, or `{"reason":"wiped_on_device"}` |
//!
//! Errors come back as `{"error":{"code","message"}}`; the code is mapped onto
//! [`Error`] (a removed device's `device_removed` becomes
//! [`Error::DeviceDeregistered`]). Server messages are never passed on.

use std::time::Duration;

use url::{Position, Url};

use crate::error::{Error, Result, from_server, from_server_code, internal};
use crate::platform::{HttpClient, HttpMethod, HttpRequest, HttpResponse};
use crate::protocol::limits::MAX_SIGNED_MESSAGE_LEN;
use crate::protocol::{MessageSigner, PushRegistration, SignedMessage, sign_request};

/// Longest long-poll the client asks for, in seconds.
pub const MAX_WAIT_SECS: u32 = 60;

/// Most challenge ids a poll names as `known` (the server's bound); with more
/// held, the poll names none and the server answers at once, as before.
pub const MAX_KNOWN: usize = 64;
/// Largest response body the client reads.
pub const MAX_RESPONSE_LEN: usize = MAX_SIGNED_MESSAGE_LEN;

/// Timeout of a call that does not long-poll.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

use crate::crypto::PublicKey;
/// The outcome the server recorded for an answer.
pub use crate::protocol::api::AnswerAccepted;
pub use crate::protocol::api::DeregisterReason;
/// A pending challenge as listed by the server.
pub use crate::protocol::api::PendingChallenge as PendingEntry;
/// The server's offer for a transfer's new phone.
pub use crate::protocol::api::TransferStarted;
use crate::protocol::api::{
    ActivationConfirmed, Deregistration, ErrorBody, KemKeyAccepted, KemKeyUpdate, PendingList,
    TransferRequest,
};

/// What the server said to an activation confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// The device is active.
    Active,
    /// A transfer's new phone: the old device has been asked to approve
    /// (challenge `tx_id`); confirm again later.
    AwaitingApproval {
        /// The old device's approval challenge.
        tx_id: String,
    },
}
use crate::protocol::encoding::b64url;

/// Who is calling: a device id on a server, and its possession key.
pub struct DeviceIdentity<'a> {
    /// Server base URL (as stored at activation, with a trailing `/` or not).
    pub server_url: &'a str,
    /// Device id on that server.
    pub device_id: &'a str,
    /// Signs requests with Dp.
    pub signer: &'a (dyn MessageSigner + Sync),
}

/// Makes device API calls over an [`HttpClient`].
pub struct DeviceClient<'a> {
    http: &'a dyn HttpClient,
    now: u64,
}

/// Joins a server base URL and an absolute API path (`/v1/…`, with its query):
/// a server mounted below the root (`https://h/prefix`, with a trailing `/` or
/// not) keeps its prefix.
pub fn join_url(base: &str, path: &str) -> Result<Url> {
    let mut url = Url::parse(base).map_err(|_| Error::InvalidInput { what: "server URL" })?;
    if !url.path().ends_with('/') {
        let dir = format!("{}/", url.path());
        url.set_path(&dir);
    }
    url.join(path.trim_start_matches('/'))
        .map_err(|_| Error::InvalidInput { what: "server URL" })
}

/// The poll's path and query: `wait` capped at [`MAX_WAIT_SECS`], `known`
/// comma-separated (each id percent-encoded; none when there are too many or
/// one is not a valid id).
fn pending_path(wait_secs: u32, known: &[String]) -> String {
    let wait = wait_secs.min(MAX_WAIT_SECS);
    let mut path = format!("/v1/device/challenges?wait={wait}");
    let usable = known.len() <= MAX_KNOWN && known.iter().all(|t| check_path_segment(t).is_ok());
    if usable && !known.is_empty() {
        let ids: Vec<String> = known
            .iter()
            .map(|t| url::form_urlencoded::byte_serialize(t.as_bytes()).collect())
            .collect();
        path.push_str("&known=");
        path.push_str(&ids.join(","));
    }
    path
}

/// Checks an id that goes into a URL path (tx ids are base64url).
fn check_path_segment(s: &str) -> Result<()> {
    if s.is_empty()
        || s.len() > 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::Tampered);
    }
    Ok(())
}

impl<'a> DeviceClient<'a> {
    /// A client using `http`, signing with timestamp `now` (device unix seconds).
    pub fn new(http: &'a dyn HttpClient, now: u64) -> Self {
        Self { http, now }
    }

    /// Sends a request; any status is returned (bodies over the limit are not).
    async fn send_any_status(&self, request: HttpRequest) -> Result<HttpResponse> {
        let response = self.http.send(request).await?;
        if response.body.len() > MAX_RESPONSE_LEN {
            return Err(Error::Tampered);
        }
        Ok(response)
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        let response = self.send_any_status(request).await?;
        if (200..300).contains(&response.status) {
            return Ok(response);
        }
        Err(error_from_response(&response))
    }

    async fn signed(
        &self,
        who: &DeviceIdentity<'_>,
        method: HttpMethod,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<HttpResponse> {
        let url = join_url(who.server_url, path)?;
        // What the server sees: the full path below the host, with the query.
        let signed_path = &url[Position::BeforePath..];
        let headers = sign_request(
            who.signer,
            who.device_id,
            method.as_str(),
            signed_path,
            &body,
            self.now,
        )
        .map_err(internal)?;
        let mut hdrs: Vec<(String, String)> = headers
            .to_pairs()
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v))
            .collect();
        if !body.is_empty() {
            hdrs.push(("content-type".into(), "application/json".into()));
        }
        self.send(HttpRequest {
            method,
            url: url.into(),
            headers: hdrs,
            body,
            timeout,
        })
        .await
    }

    /// Redeems an activation offer: posts the signed request, returns the signed
    /// result (verified by the caller against the pinned key).
    pub async fn activate(
        &self,
        server_url: &str,
        request: &SignedMessage,
    ) -> Result<SignedMessage> {
        let body = request.to_json().map_err(internal)?;
        let response = self
            .send_any_status(HttpRequest {
                method: HttpMethod::Post,
                url: join_url(server_url, "/v1/device/activate")?.into(),
                headers: vec![("content-type".into(), "application/json".into())],
                body,
                timeout: CALL_TIMEOUT,
            })
            .await?;
        if (200..300).contains(&response.status) {
            return SignedMessage::from_json(&response.body).map_err(from_server);
        }
        // A Countersign server refuses with a JSON error body; a web page or a
        // bare 4xx comes from something else at that URL. (Busy or failing
        // servers, 408/429/5xx, stay network errors: retry.)
        let countersign_refusal = serde_json::from_slice::<ErrorBody>(&response.body).is_ok();
        match error_from_response(&response) {
            Error::RequestNotFound | Error::ServerRejected { .. } if !countersign_refusal => {
                Err(Error::NotCountersignServer)
            }
            e => Err(e),
        }
    }

    /// Lists pending challenges, waiting up to `wait_secs` (capped at
    /// [`MAX_WAIT_SECS`]) for the list to differ from `known`, the challenge
    /// ids the device already holds (docs/PROTOCOL.md §12.4): a new one, or a
    /// known one answered or ended. With `known` empty (or over [`MAX_KNOWN`]
    /// ids) it waits for one to appear. An older server ignores `known` and
    /// answers at once while anything is pending.
    pub async fn pending(
        &self,
        who: &DeviceIdentity<'_>,
        wait_secs: u32,
        known: &[String],
    ) -> Result<Vec<PendingEntry>> {
        let path = pending_path(wait_secs, known);
        let wait = wait_secs.min(MAX_WAIT_SECS);
        let timeout = CALL_TIMEOUT + Duration::from_secs(u64::from(wait));
        let response = self
            .signed(who, HttpMethod::Get, &path, Vec::new(), timeout)
            .await
            .map_err(duplicate_is_network)?;
        let list: PendingList =
            serde_json::from_slice(&response.body).map_err(|_| Error::Tampered)?;
        if list.challenges.len() > 256 {
            return Err(Error::Tampered);
        }
        for c in &list.challenges {
            check_path_segment(&c.tx)?;
        }
        Ok(list.challenges)
    }

    /// Fetches one sealed challenge (the envelope signed by S).
    pub async fn fetch_challenge(
        &self,
        who: &DeviceIdentity<'_>,
        tx: &str,
    ) -> Result<SignedMessage> {
        check_path_segment(tx)?;
        let path = format!("/v1/device/challenges/{tx}");
        let response = self
            .signed(who, HttpMethod::Get, &path, Vec::new(), CALL_TIMEOUT)
            .await
            .map_err(duplicate_is_network)?;
        SignedMessage::from_json(&response.body).map_err(from_server)
    }

    /// Claims a scanned QR login (docs/PROTOCOL.md §13): posts its one-time
    /// secret, gets the login's challenge sealed for this device and signed by
    /// S. Claiming again after a lost response returns the same challenge.
    pub async fn claim_login(
        &self,
        who: &DeviceIdentity<'_>,
        login_id: &str,
        secret: &str,
    ) -> Result<SignedMessage> {
        check_path_segment(login_id)?;
        let path = format!("/v1/device/logins/{login_id}/claim");
        let body = serde_json::to_vec(&crate::protocol::login::LoginClaim {
            secret: secret.to_owned(),
        })
        .map_err(|_| Error::Internal)?;
        let response = self
            .signed(who, HttpMethod::Post, &path, body, CALL_TIMEOUT)
            .await
            .map_err(duplicate_is_network)?;
        SignedMessage::from_json(&response.body).map_err(from_server)
    }

    /// Posts a signed answer (exact bytes, so a retry resends the same answer).
    pub async fn answer(
        &self,
        who: &DeviceIdentity<'_>,
        tx: &str,
        answer_json: &[u8],
    ) -> Result<AnswerAccepted> {
        check_path_segment(tx)?;
        let path = format!("/v1/device/challenges/{tx}/answer");
        let response = self
            .signed(
                who,
                HttpMethod::Post,
                &path,
                answer_json.to_vec(),
                CALL_TIMEOUT,
            )
            .await?;
        serde_json::from_slice(&response.body).map_err(|_| Error::Tampered)
    }

    /// Replaces the device's push registration.
    pub async fn update_push(
        &self,
        who: &DeviceIdentity<'_>,
        push: &PushRegistration,
    ) -> Result<()> {
        let body = serde_json::to_vec(push).map_err(|_| Error::Internal)?;
        self.signed(who, HttpMethod::Put, "/v1/device/push", body, CALL_TIMEOUT)
            .await
            .map(|_| ())
    }

    /// Names the KEM public key the server must seal to from now on (the device
    /// holds its private key); returns the key id the server now seals to.
    pub async fn update_kem_key(
        &self,
        who: &DeviceIdentity<'_>,
        kem_key: &PublicKey,
    ) -> Result<String> {
        let body = serde_json::to_vec(&KemKeyUpdate {
            kem_key: b64url(&kem_key.to_sec1()),
        })
        .map_err(|_| Error::Internal)?;
        let response = self
            .signed(who, HttpMethod::Put, "/v1/device/kem", body, CALL_TIMEOUT)
            .await?;
        let accepted: KemKeyAccepted =
            serde_json::from_slice(&response.body).map_err(|_| Error::Tampered)?;
        Ok(accepted.kem_kid)
    }

    /// "It was me" (`POST /v1/device/resume`): lifts the server's push
    /// suppression for this device's user after misses.
    pub async fn resume_pushes(&self, who: &DeviceIdentity<'_>) -> Result<()> {
        self.signed(
            who,
            HttpMethod::Post,
            "/v1/device/resume",
            b"{}".to_vec(),
            CALL_TIMEOUT,
        )
        .await
        .map(|_| ())
    }

    /// Confirms the activation (phase two): the server makes the pending device
    /// active, or, for a transfer's offer, answers that the old device's
    /// approval is awaited ([`Confirmed::AwaitingApproval`]). A repeat after a
    /// lost response gets the same answer; a copy the network delivered twice
    /// (`replayed`) is a network error to retry.
    pub async fn confirm_activation(&self, who: &DeviceIdentity<'_>) -> Result<Confirmed> {
        let response = self
            .signed(
                who,
                HttpMethod::Post,
                "/v1/device/activate/confirm",
                b"{}".to_vec(),
                CALL_TIMEOUT,
            )
            .await
            .map_err(duplicate_is_network)?;
        confirmed_of(&response.body, who.device_id)
    }

    /// Starts moving this device's account to a new phone (docs/PROTOCOL.md
    /// §14): the server's activation offer for the new phone. Not retried on a
    /// lost response (a second call makes a second offer; an unused one
    /// expires).
    pub async fn start_transfer(
        &self,
        who: &DeviceIdentity<'_>,
        remove_old: bool,
    ) -> Result<TransferStarted> {
        let body =
            serde_json::to_vec(&TransferRequest { remove_old }).map_err(|_| Error::Internal)?;
        let response = self
            .signed(
                who,
                HttpMethod::Post,
                "/v1/device/transfers",
                body,
                CALL_TIMEOUT,
            )
            .await
            .map_err(duplicate_is_network)?;
        serde_json::from_slice(&response.body).map_err(|_| Error::Tampered)
    }

    /// Deregisters the device (the server marks it removed), saying why when
    /// `reason` is given.
    pub async fn deregister(
        &self,
        who: &DeviceIdentity<'_>,
        reason: Option<DeregisterReason>,
    ) -> Result<()> {
        let body = match reason {
            Some(reason) => {
                serde_json::to_vec(&Deregistration { reason }).map_err(|_| Error::Internal)?
            }
            None => Vec::new(),
        };
        self.signed(who, HttpMethod::Delete, "/v1/device", body, CALL_TIMEOUT)
            .await
            .map_err(duplicate_is_network)
            .map(|_| ())
    }
}

/// Reads a confirmation answer for `device_id`: `active` alone, or
/// `awaiting_approval` with the challenge; anything else does not come from a
/// Countersign server speaking for this device.
fn confirmed_of(body: &[u8], device_id: &str) -> Result<Confirmed> {
    let confirmed: ActivationConfirmed =
        serde_json::from_slice(body).map_err(|_| Error::Tampered)?;
    if confirmed.device_id != device_id {
        return Err(Error::Tampered);
    }
    match (confirmed.status.as_str(), confirmed.tx_id) {
        ("active", None) => Ok(Confirmed::Active),
        ("awaiting_approval", Some(tx)) => Ok(Confirmed::AwaitingApproval { tx_id: tx }),
        _ => Err(Error::Tampered),
    }
}

/// A read refused as `replayed` was delivered twice by the network (the
/// server saw this exact signed request before) and we got the second copy's
/// refusal: nothing is wrong with the request, so it is a network error (retry).
fn duplicate_is_network(e: Error) -> Error {
    match e {
        Error::ServerRejected { code }
            if code == crate::protocol::api::ErrorCode::Replayed.as_str() =>
        {
            Error::Network
        }
        other => other,
    }
}

/// Maps an error response: the JSON error code if there is one, else the status.
fn error_from_response(response: &HttpResponse) -> Error {
    match serde_json::from_slice::<ErrorBody>(&response.body) {
        Ok(body) => from_server_code(response.status, body.error.code),
        Err(_) => match response.status {
            408 | 429 | 500..=599 => Error::Network,
            404 => Error::RequestNotFound,
            s => Error::ServerRejected {
                code: format!("http_{s}"),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_path_names_the_known_ids() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(pending_path(25, &[]), "/v1/device/challenges?wait=25");
        assert_eq!(pending_path(99, &[]), "/v1/device/challenges?wait=60");
        assert_eq!(
            pending_path(5, &ids(&["tx_a", "tx-B1"])),
            "/v1/device/challenges?wait=5&known=tx_a,tx-B1"
        );
        // Not an id, or too many: none named (the server answers at once).
        assert_eq!(
            pending_path(5, &ids(&["a,b"])),
            "/v1/device/challenges?wait=5"
        );
        let many: Vec<String> = (0..=MAX_KNOWN).map(|i| format!("t{i}")).collect();
        assert_eq!(pending_path(5, &many), "/v1/device/challenges?wait=5");
        assert!(pending_path(5, &many[..MAX_KNOWN]).contains("known=t0,t1,"));
        assert!(join_url("https://a.example/cs", &pending_path(5, &ids(&["x", "y"]))).is_ok());
    }

    #[test]
    fn urls_and_paths() {
        let joined = |base, path| join_url(base, path).map(String::from);
        let signed =
            |base, path| join_url(base, path).map(|u| u[Position::BeforePath..].to_owned());
        assert_eq!(
            joined("http://127.0.0.1:5/", "/v1/x"),
            Ok("http://127.0.0.1:5/v1/x".into())
        );
        assert_eq!(
            joined("http://127.0.0.1:5", "/v1/x"),
            Ok("http://127.0.0.1:5/v1/x".into())
        );
        assert_eq!(
            joined("https://a.example/cs/", "/v1/x"),
            Ok("https://a.example/cs/v1/x".into())
        );
        assert_eq!(
            joined("https://a.example/cs", "/v1/device/challenges?wait=5"),
            Ok("https://a.example/cs/v1/device/challenges?wait=5".into())
        );
        assert_eq!(
            signed("https://a.example/cs/", "/v1/device/challenges?wait=5"),
            Ok("/cs/v1/device/challenges?wait=5".into())
        );
        assert_eq!(signed("http://127.0.0.1:5/", "/v1/x"), Ok("/v1/x".into()));
        assert_eq!(
            joined("not a url", "/v1/x"),
            Err(Error::InvalidInput { what: "server URL" })
        );
        assert!(check_path_segment("AAECAwQFBgcICQoLDA0ODw").is_ok());
        assert_eq!(check_path_segment("../admin"), Err(Error::Tampered));
        assert_eq!(check_path_segment(""), Err(Error::Tampered));
    }

    #[test]
    fn confirmation_answers() {
        let c = |body: &str| confirmed_of(body.as_bytes(), "dev1");
        assert_eq!(
            c(r#"{"device_id":"dev1","status":"active"}"#),
            Ok(Confirmed::Active)
        );
        assert_eq!(
            c(r#"{"device_id":"dev1","status":"awaiting_approval","tx_id":"T"}"#),
            Ok(Confirmed::AwaitingApproval { tx_id: "T".into() })
        );
        for bad in [
            r#"{"device_id":"dev2","status":"active"}"#,
            r#"{"device_id":"dev1","status":"awaiting_approval"}"#,
            r#"{"device_id":"dev1","status":"active","tx_id":"T"}"#,
            r#"{"device_id":"dev1","status":"pending"}"#,
            "<html>",
        ] {
            assert_eq!(c(bad), Err(Error::Tampered), "{bad}");
        }
    }

    #[test]
    fn error_bodies_map_to_actions() {
        // A hostile or newer server's code never reaches the app as text.
        assert_eq!(
            error_from_response(&HttpResponse {
                status: 400,
                headers: vec![],
                body: br#"{"error":{"code":"<script>alert(1)</script>","message":"x"}}"#.to_vec(),
            }),
            Error::ServerRejected {
                code: "unknown".into()
            }
        );
        let r = |status, body: &str| HttpResponse {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        };
        assert_eq!(
            error_from_response(&r(
                410,
                r#"{"error":{"code":"device_removed","message":"x"}}"#
            )),
            Error::DeviceDeregistered
        );
        assert_eq!(
            error_from_response(&r(
                403,
                r#"{"error":{"code":"wrong_number","message":"x"}}"#
            )),
            Error::ServerRejected {
                code: "wrong_number".into()
            }
        );
        assert_eq!(error_from_response(&r(503, "busy")), Error::Network);
        assert_eq!(
            error_from_response(&r(418, "")),
            Error::ServerRejected {
                code: "http_418".into()
            }
        );
    }
}

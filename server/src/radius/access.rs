//! One Access-Request: the user, the (static password and) second factor, the
//! push and its wait, and the answer. The checks themselves are the services'
//! (`otp::validate` verifies and consumes codes and starts pushes through the
//! same fatigue gate as the RP API; `passwords::check` verifies static
//! passwords); this module maps RADIUS onto them.
//!
//! Static password and code in one User-Password (`password_otp`), as
//! privacyIDEA and Duo accept them: `password,factor` (Duo's comma), or the
//! factor appended — `password123456`, `passwordpush` — or the password alone
//! (a push). The possible splits are tried in that order against the stored
//! hash; the first that matches gives the factor.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use super::codec::{self, Packet, attr, code};
use super::{RadiusStats, bump};
use crate::AppState;
use crate::config::{RadiusClientConfig, RadiusMode, RadiusPassword};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::service::audit::{AuditSubject, audit};
use crate::service::auth::{Rp, rp_for_radius};
use crate::service::challenge::{self, ContextIn, MatchMode, PushRequest};
use crate::service::otp::{self, ValidateRequest, ValidateResponse};
use crate::service::{check_user_name, passwords};
use crate::store;
use crate::util::now;

/// How an Access-Request is answered.
enum Outcome {
    Accept,
    Reject(&'static str),
    Challenge { state: Vec<u8>, message: String },
}

/// What the audit record says about the answer: a fixed phrase.
struct Decision {
    outcome: Outcome,
    reason: &'static str,
    tx: Option<String>,
}

fn reject(message: &'static str, reason: &'static str) -> Decision {
    Decision {
        outcome: Outcome::Reject(message),
        reason,
        tx: None,
    }
}

fn accept(reason: &'static str, tx: Option<String>) -> Decision {
    Decision {
        outcome: Outcome::Accept,
        reason,
        tx,
    }
}

/// The Reply-Message of a refusal by a service (never secrets or input).
fn refusal(e: &ApiError) -> Decision {
    match e.code {
        ErrorCode::InvalidOtp => reject("Wrong code", "invalid code"),
        ErrorCode::OtpReused => reject("This code was already used", "code reused"),
        ErrorCode::RateLimited => reject("Too many attempts; try again later", "rate limited"),
        ErrorCode::Suppressed => reject(
            "Push requests are paused: enter a code from your app",
            "push suppressed",
        ),
        ErrorCode::Locked => reject(
            "Push requests are locked: ask your administrator",
            "push locked",
        ),
        ErrorCode::NoDevice => reject("Sign-in rejected", "no device"),
        ErrorCode::Expired => reject("The request has expired", "expired"),
        _ => reject("Sign-in rejected", "refused"),
    }
}

/// The answer to `packet` from `client` (at `src`), or `None` for no answer
/// (an internal error or a shutdown: the client may try another server).
pub(super) async fn answer(
    state: &Arc<AppState>,
    client: &RadiusClientConfig,
    packet: &Packet,
    src: SocketAddr,
    stats: &RadiusStats,
) -> Option<Vec<u8>> {
    let user = packet
        .first(attr::USER_NAME)
        .and_then(|v| std::str::from_utf8(v).ok())
        .filter(|u| check_user_name(u).is_ok());
    let Some(user) = user else {
        return Some(encode(
            client,
            packet,
            stats,
            &reject("User-Name is missing or invalid", "bad user name").outcome,
        ));
    };
    let rp = match rp_for_radius(state, &client.relying_party).await {
        Ok(Some(rp)) => rp,
        Ok(None) => {
            tracing::error!(
                relying_party = %client.relying_party,
                "RADIUS client's relying party is unknown or has no unrevoked API key"
            );
            let refused = reject("Sign-in rejected", "no relying party");
            return Some(encode(client, packet, stats, &refused.outcome));
        }
        Err(_) => return None,
    };
    let decision = match decide(state, client, &rp, user, packet).await {
        Ok(d) => d,
        Err(e) if matches!(e.code, ErrorCode::Internal | ErrorCode::Unavailable) => return None,
        Err(e) => refusal(&e),
    };
    let event = match decision.outcome {
        Outcome::Accept => "radius_accept",
        Outcome::Reject(_) => "radius_reject",
        Outcome::Challenge { .. } => "radius_challenge",
    };
    let user_id = store::users::find_id(&state.db, &rp.id, user).await.ok()?;
    let who = AuditSubject {
        rp: Some(&rp.id),
        user: user_id.as_deref(),
        tx: decision.tx.as_deref(),
        ..Default::default()
    };
    audit(&state.db, who, event, decision.reason).await.ok()?;
    tracing::debug!(%src, event, reason = decision.reason, "RADIUS answer");
    Some(encode(client, packet, stats, &decision.outcome))
}

/// The response bytes: Message-Authenticator first (codec), then
/// Reply-Message, State, and the request's Proxy-States unchanged.
fn encode(
    client: &RadiusClientConfig,
    packet: &Packet,
    stats: &RadiusStats,
    outcome: &Outcome,
) -> Vec<u8> {
    let mut attributes: Vec<(u8, &[u8])> = Vec::new();
    let reply_code = match outcome {
        Outcome::Accept => {
            bump(&stats.accepts);
            code::ACCESS_ACCEPT
        }
        Outcome::Reject(message) => {
            bump(&stats.rejects);
            attributes.push((attr::REPLY_MESSAGE, message.as_bytes()));
            code::ACCESS_REJECT
        }
        Outcome::Challenge { state, message } => {
            bump(&stats.challenges);
            attributes.push((attr::REPLY_MESSAGE, message.as_bytes()));
            attributes.push((attr::STATE, state));
            code::ACCESS_CHALLENGE
        }
    };
    attributes.extend(
        packet
            .all(attr::PROXY_STATE)
            .map(|v| (attr::PROXY_STATE, v)),
    );
    codec::encode_response(
        reply_code,
        packet.identifier,
        &packet.authenticator,
        &attributes,
        client.secret.as_bytes(),
    )
}

async fn decide(
    state: &Arc<AppState>,
    client: &RadiusClientConfig,
    rp: &Rp,
    user: &str,
    packet: &Packet,
) -> ApiResult<Decision> {
    if packet.first(attr::CHAP_PASSWORD).is_some() {
        return Ok(reject("Only PAP is supported", "not PAP"));
    }
    // No User-Password reads as an empty one (a push trigger, or a poll with a
    // State): clients such as radclient leave an empty password out.
    let typed = match packet.first(attr::USER_PASSWORD) {
        Some(hidden) => {
            codec::decode_password(hidden, client.secret.as_bytes(), &packet.authenticator)
                .and_then(|p| String::from_utf8(p.to_vec()).ok())
                .map(Zeroizing::new)
        }
        None => Some(Zeroizing::new(String::new())),
    };
    let Some(typed) = typed else {
        return Ok(reject("User-Password is malformed", "bad password"));
    };
    if let Some(sealed) = packet.first(attr::STATE) {
        return follow_up(state, client, rp, user, sealed, &typed).await;
    }
    let factor = match client.password {
        RadiusPassword::Otp => typed,
        RadiusPassword::PasswordOtp => {
            let splits = splits(&typed);
            let candidates = splits.iter().map(|(p, _)| p.clone()).collect();
            match passwords::check(state, rp, user, candidates).await? {
                Some(n) => match splits.into_iter().nth(n) {
                    Some((_, factor)) => factor,
                    None => return Err(ApiError::internal("password split index")),
                },
                None => return Ok(reject("Wrong password", "wrong static password")),
            }
        }
    };
    let calling_ip = packet
        .first(attr::CALLING_STATION_ID)
        .and_then(|v| std::str::from_utf8(v).ok())
        .filter(|v| v.parse::<IpAddr>().is_ok())
        .map(str::to_owned);
    let timeout = match client.mode {
        RadiusMode::Blocking => client.blocking_wait_secs,
        RadiusMode::Challenge => client.challenge_secs,
    };
    let push = PushRequest {
        context: ContextIn {
            ip: calling_ip,
            ..ContextIn::default()
        },
        // Blocking mode has no prompt to show a number on; challenge mode can
        // show it in the Reply-Message.
        number_matching: Some(if client.number_matching {
            MatchMode::Type
        } else {
            MatchMode::Off
        }),
        timeout_secs: Some(timeout),
        ..PushRequest::default()
    };
    let req = ValidateRequest {
        user: user.to_owned(),
        passcode: factor.as_str().to_owned(),
        tx_id: None,
        push: Some(push),
    };
    let started = match otp::validate(state, rp, req).await? {
        ValidateResponse::Accepted { method, .. } => {
            return Ok(accept(method_reason(&method), None));
        }
        ValidateResponse::PushStarted(started) => started,
    };
    match client.mode {
        RadiusMode::Blocking => {
            let wait = Duration::from_secs(u64::from(client.blocking_wait_secs));
            let status = wait_for_answer(state, rp, &started.tx_id, wait).await?;
            if status.state == "pending" && *state.shutting_down.borrow() {
                // Cut short by the shutdown, not timed out: no answer, so the
                // client retries or fails over to another server.
                return Err(ApiError::new(ErrorCode::Unavailable, "shutting down"));
            }
            Ok(push_result(&status, started.tx_id))
        }
        RadiusMode::Challenge => {
            let push = StatePush {
                tx: started.tx_id.clone(),
                number: started.number.clone(),
                expires_at: started.expires_at,
            };
            let sealed = seal_state(state, client, user, &push)?;
            let message = prompt("Approve on your phone", push.number.as_deref());
            Ok(Decision {
                outcome: Outcome::Challenge {
                    state: sealed.into_bytes(),
                    message,
                },
                reason: "push started",
                tx: Some(started.tx_id),
            })
        }
    }
}

fn method_reason(method: &str) -> &'static str {
    match method {
        "totp" => "totp",
        "hotp" => "hotp",
        "push_otp" => "push otp",
        _ => "code",
    }
}

/// The decision for a challenge's state once it is no longer pending (or the
/// wait is over).
fn push_result(status: &challenge::ChallengeStatus, tx: String) -> Decision {
    let tx = Some(tx);
    match status.state.as_str() {
        "approved" => accept("push approved", tx),
        "denied" => Decision {
            tx,
            ..reject("Denied on the phone", "push denied")
        },
        _ => Decision {
            tx,
            ..reject("No answer from the phone: timed out", "push timed out")
        },
    }
}

/// Waits up to `wait` for the challenge's answer, without a thread or a
/// database connection (`wait_status`, in slices it caps).
async fn wait_for_answer(
    state: &AppState,
    rp: &Rp,
    tx: &str,
    wait: Duration,
) -> ApiResult<challenge::ChallengeStatus> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let secs =
            u32::try_from(left.as_secs() + u64::from(left.subsec_nanos() > 0)).unwrap_or(u32::MAX);
        let status = challenge::wait_status(state, rp, tx, Some(secs)).await?;
        if status.state != "pending"
            || tokio::time::Instant::now() >= deadline
            || *state.shutting_down.borrow()
        {
            return Ok(status);
        }
    }
}

/// The Reply-Message of a challenge: `lead`, the number to type on the phone
/// (number matching), and the alternative.
fn prompt(lead: &str, number: Option<&str>) -> String {
    match number {
        Some(number) => format!("{lead} and enter {number} there, or enter a code"),
        None => format!("{lead}, or enter a code"),
    }
}

/// The AEAD context of a State: it is bound to the client and the user.
fn state_context(client: &RadiusClientConfig, user: &str) -> String {
    format!("radius:state:{}:{user}", String::from(client.address))
}

/// What a State carries (sealed): the push, its number and its expiry.
struct StatePush {
    tx: String,
    number: Option<String>,
    expires_at: i64,
}

/// A State for `push` of `user` at `client`: sealed under the master key
/// (unguessable, tamper-proof, good on every instance sharing the database).
/// Plaintext: expiry (8 bytes), number length (1 byte), number, tx id.
fn seal_state(
    state: &AppState,
    client: &RadiusClientConfig,
    user: &str,
    push: &StatePush,
) -> ApiResult<String> {
    let number = push.number.as_deref().unwrap_or_default();
    let mut plain = Zeroizing::new(push.expires_at.to_be_bytes().to_vec());
    plain.push(u8::try_from(number.len()).map_err(ApiError::internal)?);
    plain.extend_from_slice(number.as_bytes());
    plain.extend_from_slice(push.tx.as_bytes());
    state.master.seal(&state_context(client, user), &plain)
}

/// The push of a State, if it opens for this client and user and has not
/// expired.
fn open_state(
    state: &AppState,
    client: &RadiusClientConfig,
    user: &str,
    sealed: &[u8],
) -> Option<StatePush> {
    let text = std::str::from_utf8(sealed).ok()?;
    let plain = state.master.try_open(&state_context(client, user), text)?;
    let (exp, rest) = plain.split_at_checked(8)?;
    let expires_at = i64::from_be_bytes(exp.try_into().ok()?);
    let (len, rest) = rest.split_first()?;
    let (number, tx) = rest.split_at_checked(usize::from(*len))?;
    let number = (!number.is_empty()).then(|| String::from_utf8(number.to_vec()).ok());
    (now() <= expires_at).then_some(())?;
    Some(StatePush {
        tx: String::from_utf8(tx.to_vec()).ok()?,
        number: number.flatten(),
        expires_at,
    })
}

/// A follow-up Access-Request with a State: an empty password (or a push
/// trigger) asks for the push's answer; anything else is a code for it.
async fn follow_up(
    state: &Arc<AppState>,
    client: &RadiusClientConfig,
    rp: &Rp,
    user: &str,
    sealed: &[u8],
    typed: &str,
) -> ApiResult<Decision> {
    let Some(StatePush { tx, number, .. }) = open_state(state, client, user, sealed) else {
        return Ok(reject(
            "The request has expired; sign in again",
            "unknown or expired state",
        ));
    };
    let poll = typed.eq_ignore_ascii_case("push") || typed.chars().count() <= 1;
    if poll {
        let status = challenge::wait_status(state, rp, &tx, Some(0)).await?;
        if status.state == "pending" {
            return Ok(Decision {
                outcome: Outcome::Challenge {
                    state: sealed.to_vec(),
                    message: prompt("Still waiting: approve on your phone", number.as_deref()),
                },
                reason: "push pending",
                tx: Some(tx),
            });
        }
        return Ok(push_result(&status, tx));
    }
    let req = ValidateRequest {
        user: user.to_owned(),
        passcode: typed.to_owned(),
        tx_id: Some(tx.clone()),
        push: None,
    };
    match otp::validate(state, rp, req).await {
        Ok(ValidateResponse::Accepted { method, .. }) => {
            Ok(accept(method_reason(&method), Some(tx)))
        }
        Ok(ValidateResponse::PushStarted(_)) => {
            Err(ApiError::internal("trigger after a poll check"))
        }
        Err(e) if e.code == ErrorCode::Internal => Err(e),
        Err(e) => Ok(Decision {
            tx: Some(tx),
            ..refusal(&e)
        }),
    }
}

/// The ways `typed` may be a static password followed by a second factor, in
/// the order they are tried (module doc).
fn splits(typed: &str) -> Vec<(Zeroizing<String>, Zeroizing<String>)> {
    let mut out: Vec<(Zeroizing<String>, Zeroizing<String>)> = Vec::new();
    let mut add = |password: &str, factor: &str| {
        if !password.is_empty() && !out.iter().any(|(p, _)| p.as_str() == password) {
            out.push((
                Zeroizing::new(password.to_owned()),
                Zeroizing::new(factor.to_owned()),
            ));
        }
    };
    if let Some((password, factor)) = typed.rsplit_once(',') {
        add(password, factor);
    }
    let len = typed.len();
    if let Some(tail) = len.checked_sub(4).and_then(|at| typed.get(at..))
        && tail.eq_ignore_ascii_case("push")
    {
        add(typed.get(..len - 4).unwrap_or_default(), tail);
    }
    let digits = typed.bytes().rev().take_while(u8::is_ascii_digit).count();
    for k in [6, 8, 7] {
        if k <= digits {
            add(
                typed.get(..len - k).unwrap_or_default(),
                typed.get(len - k..).unwrap_or_default(),
            );
        }
    }
    add(typed, "");
    out
}

#[cfg(test)]
mod tests {
    use super::splits;

    fn show(typed: &str) -> Vec<(String, String)> {
        splits(typed)
            .into_iter()
            .map(|(p, f)| (p.to_string(), f.to_string()))
            .collect()
    }

    #[test]
    fn password_and_factor_splits() {
        let pair = |p: &str, f: &str| (p.to_owned(), f.to_owned());
        assert_eq!(
            show("secret123456"),
            [pair("secret", "123456"), pair("secret123456", "")]
        );
        assert_eq!(
            show("s3cret12345678"),
            [
                pair("s3cret12", "345678"),
                pair("s3cret", "12345678"),
                pair("s3cret1", "2345678"),
                pair("s3cret12345678", "")
            ]
        );
        assert_eq!(
            show("secretPUSH"),
            [pair("secret", "PUSH"), pair("secretPUSH", "")]
        );
        assert_eq!(
            show("se,cret,push"),
            [
                pair("se,cret", "push"),
                pair("se,cret,", "push"),
                pair("se,cret,push", "")
            ]
        );
        assert_eq!(show("secret"), [pair("secret", "")]);
        assert_eq!(show("123456"), [pair("123456", "")]);
        assert!(show("").is_empty());
        // Multi-byte characters never split inside a character.
        assert_eq!(show("pässwörd"), [pair("pässwörd", "")]);
    }
}

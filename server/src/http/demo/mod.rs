//! Demo web pages (issue 7), served under `/demo` when [`Config::demo`] is set.
//!
//! A tiny "Demo Bank" relying party: an enrollment page with the activation QR
//! and typed code, a login page (demo password, then "approve on your phone"
//! with the number to type, live status by long-poll, resend, "use a code
//! instead" with TOTP or an offline OCRA QR), a "sign in with QR" page (QR
//! login, usernameless, optionally with reverse number matching) and a
//! transaction-signing page.
//! Everything is plain HTML and vanilla JS compiled into the binary; no CDN.
//!
//! The pages never see an RP API key: their `/demo/api/…` endpoints call the
//! services in-process as the demo RP, with a key only the server holds (minted
//! at first use, so the services' revocation checks hold), and keep the
//! browser's login state in a short-lived in-memory session (id in the page).
//! Push OTPs stay server-side too: an approval signs the session in by validating
//! the push OTP the device returned, as a Thales-style OTP form would.
//!
//! Never enable this in production: any user name with the demo password signs in.
//!
//! [`Config::demo`]: crate::config::Config::demo

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use countersign_protocol::{TransactionDetails, Verification};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::extract::{Json, Path, Query};
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::service::admin;
use crate::service::auth::{self, PresentedKey, Rp};
use crate::service::challenge::{self, ContextIn, PushRequest};
use crate::service::enrollment::{self, EnrollmentRequest};
use crate::service::offline::{self, OfflineRequest, OfflineVerifyRequest};
use crate::service::otp::{self, ValidateRequest, ValidateResponse};
use crate::service::qr_login::{self, QrLoginRequest, QrMatchMode};
use crate::util::random_id;

/// Name of the relying party the demo pages act as.
pub const DEMO_RP_NAME: &str = "Countersign Demo Bank";
/// The password every demo user signs in with (shown on the login page).
pub const DEMO_PASSWORD: &str = "demo";
/// Sessions kept at most (the oldest is dropped beyond this).
const MAX_SESSIONS: usize = 1000;
/// Idle sessions are forgotten after this long.
const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Longest status long-poll the pages may ask for.
const MAX_WAIT_SECS: u32 = 25;

const INDEX_HTML: &str = include_str!("assets/index.html");
const ENROLL_HTML: &str = include_str!("assets/enroll.html");
const LOGIN_HTML: &str = include_str!("assets/login.html");
const TRANSFER_HTML: &str = include_str!("assets/transfer.html");
const QR_HTML: &str = include_str!("assets/qr.html");
const DEMO_JS: &str = include_str!("assets/demo.js");
const DEMO_CSS: &str = include_str!("assets/demo.css");

/// Security headers of every demo page: scripts and styles only from this server.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Finds the demo relying party, creating it on first use; returns its id and,
/// when this call created it, its first API key (shown once).
pub async fn ensure_rp(state: &AppState) -> ApiResult<(String, Option<String>)> {
    admin::ensure_rp(&state.db, &state.master, DEMO_RP_NAME).await
}

/// The demo routes (`/demo`, `/demo/api/…`); empty unless `state.config.demo`.
pub fn router<S: Clone + Send + Sync + 'static>(state: Arc<AppState>) -> Router<S> {
    if !state.config.demo {
        return Router::new();
    }
    let demo = Arc::new(Demo {
        app: state,
        rp: OnceCell::new(),
        sessions: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/", get(|| async { Redirect::to("/demo/") }))
        .route("/demo", get(|| async { Redirect::to("/demo/") }))
        .route("/demo/", get(|| async { page(INDEX_HTML) }))
        .route("/demo/enroll", get(|| async { page(ENROLL_HTML) }))
        .route("/demo/login", get(|| async { page(LOGIN_HTML) }))
        .route("/demo/transfer", get(|| async { page(TRANSFER_HTML) }))
        .route("/demo/qr", get(|| async { page(QR_HTML) }))
        .route(
            "/demo/static/demo.js",
            get(|| async { asset("text/javascript; charset=utf-8", DEMO_JS) }),
        )
        .route(
            "/demo/static/demo.css",
            get(|| async { asset("text/css; charset=utf-8", DEMO_CSS) }),
        )
        .route("/demo/api/enroll", post(enroll))
        .route("/demo/api/login", post(login))
        .route("/demo/api/sessions/{sid}", get(status))
        .route("/demo/api/sessions/{sid}/resend", post(resend))
        .route("/demo/api/sessions/{sid}/code", post(code))
        .route("/demo/api/sessions/{sid}/offline", post(offline))
        .route("/demo/api/sessions/{sid}/transfer", post(transfer))
        .route("/demo/api/qr", post(qr_start))
        .route("/demo/api/qr/finish", post(qr_finish))
        .with_state(demo)
}

fn secured(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn page(html: &'static str) -> Response {
    secured(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    secured(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

// ---------------------------------------------------------------------------
// State

struct Demo {
    app: Arc<AppState>,
    /// The demo RP, authenticated with an API key minted at first use and held
    /// only in memory.
    rp: OnceCell<Rp>,
    sessions: Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Demo")
    }
}

/// What a push in a session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Purpose {
    Login,
    Transfer,
}

#[derive(Debug, Clone)]
struct Push {
    tx_id: String,
    number: Option<String>,
    expires_at: i64,
    purpose: Purpose,
    transaction: Option<TransactionDetails>,
    /// `approved`, `denied`, `expired` once known.
    outcome: Option<String>,
    deny_reason: Option<String>,
}

#[derive(Debug, Clone)]
struct Session {
    user: String,
    push: Option<Push>,
    offline_id: Option<String>,
    signed_in: Option<String>,
    /// Signed transfers (payee and amount), newest last.
    transfers: Vec<TransactionDetails>,
    touched: Instant,
}

impl Demo {
    async fn rp(&self) -> ApiResult<&Rp> {
        self.rp
            .get_or_try_init(|| async {
                let (rp_id, _) = ensure_rp(&self.app).await?;
                let key = zeroize::Zeroizing::new(
                    admin::replace_process_key(&self.app.db, &rp_id, "demo pages").await?,
                );
                auth::authenticate_rp(&self.app, PresentedKey::parse(&key)?).await
            })
            .await
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A poisoned map still holds whole sessions (each is replaced whole).
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn session(&self, sid: &str) -> ApiResult<Session> {
        let mut map = self.sessions();
        let s = map
            .get_mut(sid)
            .filter(|s| s.touched.elapsed() < SESSION_IDLE)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NotFound,
                    "demo session not found or expired: sign in again",
                )
            })?;
        s.touched = Instant::now();
        Ok(s.clone())
    }

    fn update(&self, sid: &str, f: impl FnOnce(&mut Session)) {
        if let Some(s) = self.sessions().get_mut(sid) {
            f(s);
        }
    }

    fn insert(&self, session: Session) -> ApiResult<String> {
        let sid = random_id("ds_")?;
        let mut map = self.sessions();
        map.retain(|_, s| s.touched.elapsed() < SESSION_IDLE);
        while map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.touched)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(sid.clone(), session);
        Ok(sid)
    }

    async fn start_push(
        &self,
        user: &str,
        request_headers: &HeaderMap,
        timeout_secs: Option<u32>,
        transaction: Option<TransactionDetails>,
    ) -> ApiResult<Push> {
        let user_agent = request_headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(200).collect::<String>());
        let purpose = if transaction.is_some() {
            Purpose::Transfer
        } else {
            Purpose::Login
        };
        let text = match &transaction {
            Some(t) => Some(format!(
                "Transfer {} {} to {}",
                t.amount, t.currency, t.payee
            )),
            None => Some("Sign in to Countersign Demo Bank".to_string()),
        };
        let req = PushRequest {
            user: user.to_string(),
            context: ContextIn {
                rp: None,
                ip: None,
                location: Some("Demo web page".into()),
                user_agent,
            },
            text,
            // Transfers need the app PIN (step-up), sign-ins one tap.
            verification: Some(if transaction.is_some() {
                Verification::Pin
            } else {
                Verification::None
            }),
            transaction: transaction.clone(),
            timeout_secs,
            ..PushRequest::default()
        };
        let started = challenge::start_push(&self.app, self.rp().await?, &req)
            .await
            .map_err(explain)?;
        Ok(Push {
            tx_id: started.tx_id,
            number: started.number,
            expires_at: started.expires_at,
            purpose,
            transaction,
            outcome: None,
            deny_reason: None,
        })
    }
}

/// Adds the next step to errors a person can act on.
fn explain(e: ApiError) -> ApiError {
    let hint = match e.code {
        ErrorCode::NoDevice => {
            "no phone is enrolled for this user: enroll one on the Enroll page first"
        }
        ErrorCode::Suppressed => {
            "pushes are paused after repeated denials or unanswered requests: sign in with a \
             code instead (a TOTP from your phone, or the offline QR), or open the app and \
             choose \"it was me\""
        }
        ErrorCode::Locked => {
            "pushes are locked because \"not me\" was reported: sign in with a code from your \
             phone, change your password, or ask an operator to unlock"
        }
        ErrorCode::RateLimited => "too many requests for this user: wait a few minutes",
        ErrorCode::InvalidOtp => "that code is not valid: check the account and try again",
        ErrorCode::OtpReused => "that code was already used: wait for the next one",
        _ => return e,
    };
    ApiError::new(e.code, hint)
}

fn check_user(user: &str) -> ApiResult<String> {
    let user = user.trim();
    if user.is_empty() || user.len() > 64 || user.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "the user name must be 1-64 printable characters",
        ));
    }
    Ok(user.to_string())
}

fn push_json(sid: &str, p: &Push) -> Value {
    json!({
        "session": sid,
        "tx_id": p.tx_id,
        "number": p.number,
        "expires_at": p.expires_at,
        "purpose": p.purpose,
        "transaction": p.transaction.as_ref().map(|t| json!({
            "amount": t.amount, "currency": t.currency, "payee": t.payee
        })),
    })
}

// ---------------------------------------------------------------------------
// Handlers

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollIn {
    user: String,
}

async fn enroll(State(demo): State<Arc<Demo>>, Json(body): Json<EnrollIn>) -> ApiResult<Response> {
    let user = check_user(&body.user)?;
    let offer = enrollment::create(
        &demo.app,
        demo.rp().await?,
        EnrollmentRequest {
            user: user.clone(),
            label: None,
            issuer: None,
        },
    )
    .await?;
    Ok(secured(
        Json(json!({
            "user": user,
            "offer_uri": offer.offer_uri,
            "code": offer.code,
            "server_url": demo.app.public_url,
            "qr_svg": offer.qr_svg,
            "expires_at": offer.expires_at,
        }))
        .into_response(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginIn {
    user: String,
    password: String,
    timeout_secs: Option<u32>,
}

/// A request timeout the page may choose (tests use a short one).
fn timeout(t: Option<u32>) -> ApiResult<Option<u32>> {
    match t {
        Some(t) if !(2..=120).contains(&t) => {
            Err(ApiError::bad_request("timeout_secs must be in 2..=120"))
        }
        other => Ok(other),
    }
}

async fn login(
    State(demo): State<Arc<Demo>>,
    headers: HeaderMap,
    Json(body): Json<LoginIn>,
) -> ApiResult<Response> {
    let user = check_user(&body.user)?;
    let timeout_secs = timeout(body.timeout_secs)?;
    if !countersign_protocol::crypto::ct_eq(body.password.as_bytes(), DEMO_PASSWORD.as_bytes()) {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            format!("wrong password: every demo user's password is \"{DEMO_PASSWORD}\""),
        ));
    }
    let mut session = Session {
        user: user.clone(),
        push: None,
        offline_id: None,
        signed_in: None,
        transfers: Vec::new(),
        touched: Instant::now(),
    };
    // The password is right: the session exists even if the push cannot start
    // (suppressed, no device), so "use a code instead" still works.
    let pushed = demo.start_push(&user, &headers, timeout_secs, None).await;
    let started = match pushed {
        Ok(p) => Some(p),
        Err(e)
            if matches!(
                e.code,
                ErrorCode::Suppressed | ErrorCode::Locked | ErrorCode::RateLimited
            ) =>
        {
            let sid = demo.insert(session)?;
            return Ok(secured(
                Json(json!({
                    "session": sid,
                    "push_error": { "code": e.code, "message": e.message },
                }))
                .into_response(),
            ));
        }
        Err(e) => return Err(e),
    };
    session.push = started.clone();
    let sid = demo.insert(session)?;
    let body = match &started {
        Some(p) => push_json(&sid, p),
        None => json!({ "session": sid }),
    };
    Ok(secured(Json(body).into_response()))
}

#[derive(Debug, Deserialize)]
struct StatusQuery {
    wait: Option<u32>,
}

async fn status(
    State(demo): State<Arc<Demo>>,
    Path(sid): Path<String>,
    Query(q): Query<StatusQuery>,
) -> ApiResult<Response> {
    let session = demo.session(&sid)?;
    let mut out = json!({
        "session": sid,
        "user": session.user,
        "signed_in": session.signed_in.is_some(),
        "method": session.signed_in,
        "transfers": session.transfers.len(),
    });
    let Some(push) = session.push.clone() else {
        return Ok(secured(Json(out).into_response()));
    };
    let mut push = push;
    if push.outcome.is_none() {
        let wait = q.wait.unwrap_or(0).min(MAX_WAIT_SECS);
        let st =
            challenge::wait_status(&demo.app, demo.rp().await?, &push.tx_id, Some(wait)).await?;
        if st.state != "pending" {
            let mut signed_in = session.signed_in.clone();
            let mut transfers = session.transfers.clone();
            if st.state == "approved" {
                match push.purpose {
                    Purpose::Login => {
                        // The approval carried a push OTP: the "OTP form" is filled
                        // and validated like any code the user could have typed.
                        let method = match &st.push_otp {
                            Some(otp) => {
                                validate(&demo, &session.user, otp, Some(&push.tx_id)).await?;
                                "push + push OTP"
                            }
                            None => "push",
                        };
                        signed_in = Some(method.to_string());
                    }
                    Purpose::Transfer => {
                        if let Some(t) = &push.transaction {
                            transfers.push(t.clone());
                        }
                    }
                }
            }
            push.outcome = Some(st.state.clone());
            push.deny_reason = st.deny_reason.clone();
            let stored = push.clone();
            demo.update(&sid, |s| {
                if s.push.as_ref().map(|p| &p.tx_id) == Some(&stored.tx_id) {
                    s.push = Some(stored);
                }
                s.signed_in = signed_in;
                s.transfers = transfers;
            });
        }
    }
    let session = demo.session(&sid)?;
    out["signed_in"] = json!(session.signed_in.is_some());
    out["method"] = json!(session.signed_in);
    out["transfers"] = json!(session.transfers.len());
    out["tx_id"] = json!(push.tx_id);
    out["purpose"] = json!(push.purpose);
    out["number"] = json!(push.number);
    out["expires_at"] = json!(push.expires_at);
    out["state"] = json!(push.outcome.as_deref().unwrap_or("pending"));
    out["deny_reason"] = json!(push.deny_reason);
    Ok(secured(Json(out).into_response()))
}

/// Validates what the user typed; `tx` binds a push OTP to the login it came with.
async fn validate(
    demo: &Demo,
    user: &str,
    passcode: &str,
    tx: Option<&str>,
) -> ApiResult<ValidateResponse> {
    otp::validate(
        &demo.app,
        demo.rp().await?,
        ValidateRequest {
            user: user.to_string(),
            passcode: passcode.to_string(),
            tx_id: tx.map(str::to_owned),
            push: None,
        },
    )
    .await
    .map_err(explain)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResendIn {
    timeout_secs: Option<u32>,
}

async fn resend(
    State(demo): State<Arc<Demo>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Option<Json<ResendIn>>,
) -> ApiResult<Response> {
    let session = demo.session(&sid)?;
    let body = body.map(|b| b.0).unwrap_or_default();
    let t = timeout(body.timeout_secs)?;
    let transaction = session
        .push
        .as_ref()
        .filter(|p| p.purpose == Purpose::Transfer)
        .and_then(|p| p.transaction.clone());
    let push = demo
        .start_push(&session.user, &headers, t, transaction)
        .await?;
    let stored = push.clone();
    demo.update(&sid, |s| s.push = Some(stored));
    Ok(secured(Json(push_json(&sid, &push)).into_response()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeIn {
    code: String,
    /// `otp` (TOTP / HOTP / push OTP) or `ocra` (the offline QR's response).
    #[serde(default)]
    kind: Option<String>,
}

async fn code(
    State(demo): State<Arc<Demo>>,
    Path(sid): Path<String>,
    Json(body): Json<CodeIn>,
) -> ApiResult<Response> {
    let session = demo.session(&sid)?;
    let typed: String = body.code.chars().filter(|c| !c.is_whitespace()).collect();
    let method = match body.kind.as_deref().unwrap_or("otp") {
        "ocra" => {
            let id = session.offline_id.clone().ok_or_else(|| {
                ApiError::bad_request("show the offline QR first (\"Scan a QR instead\")")
            })?;
            offline::verify(
                &demo.app,
                demo.rp().await?,
                &id,
                OfflineVerifyRequest { response: typed },
            )
            .await
            .map_err(explain)?;
            "offline QR (OCRA)".to_string()
        }
        "otp" => match validate(&demo, &session.user, &typed, None).await? {
            ValidateResponse::Accepted { method, .. } => method,
            ValidateResponse::PushStarted(started) => {
                // The code was a push trigger (empty, one character or `push`).
                let push = Push {
                    tx_id: started.tx_id,
                    number: started.number,
                    expires_at: started.expires_at,
                    purpose: Purpose::Login,
                    transaction: None,
                    outcome: None,
                    deny_reason: None,
                };
                let stored = push.clone();
                demo.update(&sid, |s| s.push = Some(stored));
                let mut out = push_json(&sid, &push);
                out["push_started"] = json!(true);
                return Ok(secured(Json(out).into_response()));
            }
        },
        _ => return Err(ApiError::bad_request("kind must be otp or ocra")),
    };
    let stored = method.clone();
    demo.update(&sid, |s| s.signed_in = Some(stored));
    Ok(secured(
        Json(json!({ "session": sid, "signed_in": true, "method": method })).into_response(),
    ))
}

async fn offline(State(demo): State<Arc<Demo>>, Path(sid): Path<String>) -> ApiResult<Response> {
    let session = demo.session(&sid)?;
    let created = offline::create(
        &demo.app,
        demo.rp().await?,
        OfflineRequest {
            user: session.user.clone(),
            device_id: None,
            timeout_secs: None,
        },
    )
    .await
    .map_err(explain)?;
    let id = created.id.clone();
    demo.update(&sid, |s| s.offline_id = Some(id));
    Ok(secured(
        Json(json!({
            "session": sid,
            "question": created.question,
            "qr_svg": created.qr_svg,
            "qr_payload": created.qr_payload,
            "expires_at": created.expires_at,
        }))
        .into_response(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferIn {
    amount: String,
    currency: String,
    payee: String,
    timeout_secs: Option<u32>,
}

async fn transfer(
    State(demo): State<Arc<Demo>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Json(body): Json<TransferIn>,
) -> ApiResult<Response> {
    let session = demo.session(&sid)?;
    if session.signed_in.is_none() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "sign in first (Sign in page), then sign transfers",
        ));
    }
    let t = timeout(body.timeout_secs)?;
    let details = TransactionDetails {
        amount: body.amount.trim().to_string(),
        currency: body.currency.trim().to_ascii_uppercase(),
        payee: body.payee.trim().to_string(),
    };
    let push = demo
        .start_push(&session.user, &headers, t, Some(details))
        .await?;
    let stored = push.clone();
    demo.update(&sid, |s| s.push = Some(stored));
    Ok(secured(Json(push_json(&sid, &push)).into_response()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QrStartIn {
    #[serde(default)]
    reverse_number: bool,
    timeout_secs: Option<u32>,
}

/// "Sign in with QR": a usernameless QR login. The page gets the browser
/// handle and polls `/v1/logins/{id}` itself, as an RP's page would.
async fn qr_start(
    State(demo): State<Arc<Demo>>,
    headers: HeaderMap,
    Json(body): Json<QrStartIn>,
) -> ApiResult<Response> {
    let timeout_secs = match body.timeout_secs {
        Some(t) if !(10..=120).contains(&t) => {
            return Err(ApiError::bad_request("timeout_secs must be in 10..=120"));
        }
        other => other,
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(200).collect::<String>());
    let req = QrLoginRequest {
        context: ContextIn {
            rp: None,
            ip: None,
            location: Some("Demo web page".into()),
            user_agent,
        },
        text: Some("Sign in to Countersign Demo Bank".into()),
        number_matching: Some(if body.reverse_number {
            QrMatchMode::Show
        } else {
            QrMatchMode::Off
        }),
        timeout_secs,
        ..QrLoginRequest::default()
    };
    let created = qr_login::create(&demo.app, demo.rp().await?, req).await?;
    Ok(secured(
        Json(json!({
            "login_id": created.login_id,
            "uri": created.uri,
            "qr_svg": created.qr_svg,
            "browser_handle": created.browser_handle,
            "expires_at": created.expires_at,
        }))
        .into_response(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QrFinishIn {
    login_id: String,
    browser_handle: String,
}

/// The page says its QR login was approved: the backend asks the server itself
/// (never trusting the page) and signs a session in as the scanning user.
async fn qr_finish(
    State(demo): State<Arc<Demo>>,
    Json(body): Json<QrFinishIn>,
) -> ApiResult<Response> {
    let status =
        qr_login::wait_status(&demo.app, &body.login_id, &body.browser_handle, Some(0)).await?;
    let user = match (status.state.as_str(), status.user) {
        ("approved", Some(user)) => user,
        (state, _) => {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("the QR login is {state}, not approved"),
            ));
        }
    };
    let method = "QR code scanned and approved on the phone";
    let sid = demo.insert(Session {
        user: user.clone(),
        push: None,
        offline_id: None,
        signed_in: Some(method.into()),
        transfers: Vec::new(),
        touched: Instant::now(),
    })?;
    Ok(secured(
        Json(json!({ "session": sid, "user": user, "method": method })).into_response(),
    ))
}

//! Activation offers: single-use, short-lived invitations for a user's device
//! (URI / QR code and a typed code).

use countersign_protocol::api::TransferStarted;
use countersign_protocol::{ActivationOffer, OfferCredentials, ServerUrl};
use serde::{Deserialize, Serialize};

use super::audit::{AuditSubject, audit_on};
use super::auth::Rp;
use super::check_user_name;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::store;
use crate::util::{now, random_id};

/// `POST /v1/rp/enrollments`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentRequest {
    /// The RP's user name (unique per RP).
    pub user: String,
    /// Label shown in the app (defaults to `user`).
    pub label: Option<String>,
    /// Issuer shown in the app (defaults to the RP name).
    pub issuer: Option<String>,
}

/// The created offer.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnrollmentResponse {
    /// The offer id.
    pub offer_id: String,
    /// `countersign://activate?…` (QR / deep link).
    pub offer_uri: String,
    /// The typed code (five groups of five).
    pub code: String,
    /// The offer URI as an SVG QR code.
    pub qr_svg: String,
    /// The offer URI as a PNG QR code, base64 (standard alphabet).
    pub qr_png_base64: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Creates a single-use activation offer (creating the user if needed).
pub async fn create(
    state: &AppState,
    rp: &Rp,
    req: EnrollmentRequest,
) -> ApiResult<EnrollmentResponse> {
    check_user_name(&req.user)?;
    let t = now();
    store::users::insert_if_absent(&state.db, &random_id("u_")?, &rp.id, &req.user, t).await?;
    let user_id = store::users::find_id(&state.db, &rp.id, &req.user)
        .await?
        .ok_or_else(|| ApiError::internal("user vanished"))?;
    let label = req.label.unwrap_or_else(|| req.user.clone());
    let issuer = req.issuer.unwrap_or_else(|| rp.name.clone());
    let policy = super::devices::account_policy_for(&state.db, &rp.id).await?;
    let mut conn = state.db.conn().await?;
    let offer = new_offer(
        state,
        &mut conn,
        &user_id,
        &label,
        &issuer,
        policy.pin_min_length,
        t,
    )
    .await?;
    // The operator's offer is audited with its user: after a lost phone this
    // is the record that a new activation was handed out.
    audit_on(
        &mut conn,
        AuditSubject {
            rp: Some(&rp.id),
            user: Some(&user_id),
            ..Default::default()
        },
        "enrollment_offer",
        "offer created",
    )
    .await?;
    let (qr_svg, qr_png) = crate::qr::render(offer.offer_uri.as_bytes())?;
    Ok(EnrollmentResponse {
        offer_id: offer.offer_id,
        offer_uri: offer.offer_uri,
        code: offer.code,
        qr_svg,
        qr_png_base64: qr_png,
        expires_at: offer.expires_at,
    })
}

/// Makes and stores a new offer for `user_id` on `conn` (the RP's, or a
/// transfer's in the transaction that records the transfer).
pub(crate) async fn new_offer(
    state: &AppState,
    conn: &mut crate::store::Conn,
    user_id: &str,
    label: &str,
    issuer: &str,
    pin_min_length: u8,
    t: i64,
) -> ApiResult<TransferStarted> {
    let creds = OfferCredentials::generate().map_err(ApiError::internal)?;
    let server_url = ServerUrl::parse(&state.public_url)
        .map_err(|e| ApiError::internal(format_args!("public_url: {e}")))?;
    let offer = ActivationOffer {
        server_url,
        credentials: creds.clone(),
        server_key_fingerprint: state.signing_key.public_key().fingerprint(),
        issuer: Some(issuer.to_owned()),
        label: Some(label.to_owned()),
        // The device checks the user's PIN against this before any network call.
        pin_min_length: Some(pin_min_length),
    };
    offer
        .validate()
        .map_err(|e| ApiError::bad_request(format!("offer: {e}")))?;
    let uri = offer.to_uri();
    let code = creds.to_code();
    let offer_id = creds.id.to_text();
    let expires_at = t + i64::from(state.config.policy.enrollment_ttl_secs);
    let sealed = state.master.seal(
        &format!("enrollment_offers:{offer_id}"),
        creds.secret.as_bytes(),
    )?;
    store::offers::insert(
        conn,
        &store::offers::NewOffer {
            id: &offer_id,
            user_id,
            secret: &sealed,
            issuer,
            label,
            created_at: t,
            expires_at,
        },
    )
    .await?;
    Ok(TransferStarted {
        offer_id,
        offer_uri: uri.to_string(),
        code: code.to_string(),
        expires_at,
    })
}

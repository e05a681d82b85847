//! The page's side of a QR login (`/v1/logins/…`), authenticated with the
//! browser handle the RP got when it created the login. The RP's backend may
//! call these itself or let its page do so; either way it must learn the
//! outcome from here, never from the page's word.

use std::sync::Arc;

use axum::extract::State;

use super::auth::BrowserHandle;
use super::extract::{Json, Path, Query};
use super::rp::WaitQuery;
use crate::AppState;
use crate::error::ApiResult;
use crate::service::qr_login::{self, QrLoginStatus, QrNumber};

/// `GET /v1/logins/{id}?wait=N`: the login's state, waiting up to N seconds
/// while it is `waiting` or `scanned`.
pub async fn status(
    State(state): State<Arc<AppState>>,
    BrowserHandle(handle): BrowserHandle,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Json<QrLoginStatus>> {
    Ok(Json(
        qr_login::wait_status(&state, &id, &handle, q.wait).await?,
    ))
}

/// `POST /v1/logins/{id}/number`: the number the phone shows, typed on the page.
pub async fn number(
    State(state): State<Arc<AppState>>,
    BrowserHandle(handle): BrowserHandle,
    Path(id): Path<String>,
    Json(body): Json<QrNumber>,
) -> ApiResult<Json<QrLoginStatus>> {
    Ok(Json(
        qr_login::enter_number(&state, &id, &handle, body).await?,
    ))
}

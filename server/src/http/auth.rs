//! Extractors that authenticate the caller before a handler runs: relying
//! parties by API key (`Authorization: Bearer csk_<key id>.<secret>`), devices
//! by a request signed with Dp (the extractor reads the body, which the
//! signature covers).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use countersign_protocol::RequestHeaders;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::service::auth::{self, Device, PresentedKey, Rp, SignedRequest};

/// The API key of `Authorization: Bearer csk_<key id>.<secret>`.
fn presented_key(parts: &Parts) -> ApiResult<PresentedKey<'_>> {
    let value = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(auth::unauthorized)?;
    let key = value
        .strip_prefix("Bearer ")
        .ok_or_else(auth::unauthorized)?;
    PresentedKey::parse(key)
}

/// A relying party whose API key was checked against the database.
#[derive(Debug, Clone)]
pub struct RpAuth(pub Rp);

impl FromRequestParts<Arc<AppState>> for RpAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let key = presented_key(parts)?;
        Ok(Self(auth::authenticate_rp(state, key).await?))
    }
}

/// A relying party whose API key was checked against the cached hash: for the
/// hot endpoints, whose service statement re-checks the key's revocation.
#[derive(Debug, Clone)]
pub struct CachedRpAuth(pub Rp);

impl FromRequestParts<Arc<AppState>> for CachedRpAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let key = presented_key(parts)?;
        Ok(Self(auth::authenticate_rp_cached(state, key).await?))
    }
}

/// A device request whose Dp signature verified and whose nonce was recorded,
/// with its body.
#[derive(Debug, Clone)]
pub struct SignedDevice {
    /// The device.
    pub device: Device,
    /// The request body (covered by the signature).
    pub body: Bytes,
}

impl FromRequest<Arc<AppState>> for SignedDevice {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        signed_device(req, state, false).await
    }
}

/// [`SignedDevice`] that also admits a device whose activation is pending: the
/// extractor of the activation confirmation alone.
#[derive(Debug, Clone)]
pub struct ConfirmingDevice(pub SignedDevice);

impl FromRequest<Arc<AppState>> for ConfirmingDevice {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        signed_device(req, state, true).await.map(Self)
    }
}

/// Verifies a device request (a pending device only if `allow_pending`).
async fn signed_device(
    req: Request,
    state: &Arc<AppState>,
    allow_pending: bool,
) -> Result<SignedDevice, Response> {
    let (parts, body) = req.into_parts();
    // The path as the device signed it, also when the router was nested.
    let uri = match parts.extensions.get::<OriginalUri>() {
        Some(OriginalUri(uri)) => uri.clone(),
        None => parts.uri.clone(),
    };
    let method = parts.method.clone();
    let headers = parts.headers.clone();
    let body = Bytes::from_request(Request::from_parts(parts, body), state)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    let hdrs = RequestHeaders::from_lookup(|name| headers.get(name).and_then(|v| v.to_str().ok()))
        .map_err(|e| {
            ApiError::new(ErrorCode::Unauthorized, format!("request signature: {e}"))
                .into_response()
        })?;
    let req = SignedRequest {
        headers: &hdrs,
        method: method.as_str(),
        path: uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        body: &body,
    };
    let device = if allow_pending {
        auth::authenticate_confirming_device(state, req).await
    } else {
        auth::authenticate_device(state, req).await
    }
    .map_err(IntoResponse::into_response)?;
    Ok(SignedDevice { device, body })
}

/// The browser handle of a QR login (`Authorization: Bearer <handle>`): what
/// only the page that created the login holds. The service compares it.
#[derive(Debug, Clone)]
pub struct BrowserHandle(pub String);

impl FromRequestParts<Arc<AppState>> for BrowserHandle {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let handle = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|h| !h.is_empty() && h.len() <= 64)
            .ok_or_else(auth::unauthorized)?;
        Ok(Self(handle.to_owned()))
    }
}
